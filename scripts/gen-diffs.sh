#!/usr/bin/env bash
# Generate the step-to-step diffs the book shows, two per step: book/src/generated/stepNN-main.diff
# is what changed in main.rs from step N-1 (the orchestration: each chapter shows it inline), and
# stepNN-rest.diff what changed in every other file both steps have, with the modules step N adds
# (the chapter shows those whole, by anchor) and removes listed (shown behind a <details>).
# The files are committed; `scripts/gen-diffs.sh --check` fails when they are stale.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
out=book/src/generated
check=0
[ "${1:-}" = "--check" ] && check=1

# A file as the diffs show it: without the exercise track's markers (steps/EXERCISES), which mark
# blanks of one step's exercise, not changes from step to step.
code() { grep -v -E '// ANCHOR(_END)?: exercise[0-9]{2}_' "$1" || true; }

generate() {
    local dest=$1 prev="" dir
    mkdir -p "$dest"
    for dir in $(ls -d steps/step[0-9][0-9] | sort); do
        if [ -n "$prev" ]; then
            local a b file
            a=$(basename "$prev"); b=$(basename "$dir")
            # diff exits 1 when the files differ: that is the point here.
            diff -u --label "$a/src/main.rs" --label "$b/src/main.rs" <(code "$prev/src/main.rs") \
                <(code "$dir/src/main.rs") > "$dest/$b-main.diff" || true
            {
                for file in Cargo.toml $(cd "$dir" && ls src/*.rs | sort); do
                    [ "$file" = src/main.rs ] && continue
                    if [ -f "$prev/$file" ]; then
                        diff -u --label "$a/$file" --label "$b/$file" <(code "$prev/$file") <(code "$dir/$file") || true
                    else
                        echo "# new in $b: $file ($(code "$dir/$file" | wc -l) lines)"
                    fi
                done
                for file in $(cd "$prev" && ls src/*.rs | sort); do
                    [ -f "$dir/$file" ] || echo "# removed in $b: $file (was $(code "$prev/$file" | wc -l) lines)"
                done
            } > "$dest/$b-rest.diff"
        fi
        prev=$dir
    done
}

if [ "$check" = 1 ]; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    generate "$tmp"
    if ! diff -r "$out" "$tmp" >/dev/null 2>&1 && { [ -d "$out" ] || [ -n "$(ls -A "$tmp")" ]; }; then
        echo "gen-diffs: $out is stale: run scripts/gen-diffs.sh and commit the result" >&2
        diff -r "$out" "$tmp" | head -20 >&2 || true
        exit 1
    fi
    echo "gen-diffs: $out is current"
else
    rm -rf "$out"
    generate "$out"
    echo "gen-diffs: wrote $(ls "$out" | wc -l) diffs to $out"
fi
