#!/usr/bin/env bash
# Check that every module a step carries forward from the step before is byte-identical to it,
# unless steps/CHANGED lists it as changed on purpose (with the reason). main.rs (the
# orchestration) and Cargo.toml change from step to step by design and are not checked.
# Fix a module in one step and carry it forward with scripts/carry-forward.sh.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

# steps/CHANGED: one "stepNN/src/FILE  reason" per line; '#' starts a comment.
listed() { grep -qE "^$1[[:space:]]" steps/CHANGED 2>/dev/null; }

fail=0
steps=$(ls -d steps/step[0-9][0-9] | sort)
prev=""
for dir in $steps; do
    step=$(basename "$dir")
    if [ -n "$prev" ]; then
        for old in "$prev"/src/*.rs; do
            file=$(basename "$old")
            [ "$file" = main.rs ] && continue
            new="$dir/src/$file"
            if [ ! -f "$new" ]; then
                if ! listed "$step/src/$file"; then
                    echo "check-steps: $step dropped $file, which $(basename "$prev") has" >&2
                    echo "  list it in steps/CHANGED with why, if the chapter removes it on purpose" >&2
                    fail=1
                fi
            elif ! cmp -s "$old" "$new"; then
                if ! listed "$step/src/$file"; then
                    echo "check-steps: $step/src/$file differs from $(basename "$prev")/src/$file" >&2
                    echo "  carry the change forward (scripts/carry-forward.sh), or list it in steps/CHANGED with why" >&2
                    fail=1
                fi
            elif listed "$step/src/$file"; then
                echo "check-steps: steps/CHANGED lists $step/src/$file, but it is identical to $(basename "$prev")'s: remove the line" >&2
                fail=1
            fi
        done
    fi
    prev=$dir
done
# Every line of steps/CHANGED must name a file that exists.
if [ -f steps/CHANGED ]; then
    while read -r path _; do
        case "$path" in ''|'#'*) continue ;; esac
        # A removed module is named by the step that removed it: its earlier copy must exist.
        step=${path%%/*}; n=$((10#${step#step})); rest=${path#*/}
        earlier=$(printf 'steps/step%02d/%s' $((n - 1)) "$rest")
        [ -f "steps/$path" ] || [ -f "$earlier" ] || { echo "check-steps: steps/CHANGED names steps/$path, which does not exist" >&2; fail=1; }
    done < steps/CHANGED
fi
[ "$fail" = 0 ] && echo "check-steps: every carried-forward module matches its earlier copy"
exit "$fail"
