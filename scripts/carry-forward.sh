#!/usr/bin/env bash
# Carry a fix forward: after editing steps/stepNN/src/FILE, copy it into every later step whose
# copy was still identical to the old version (as committed), stopping at the first step that
# changed the module on purpose.  Usage: scripts/carry-forward.sh steps/step03/src/trace.rs
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
[ $# -eq 1 ] || { echo "usage: scripts/carry-forward.sh steps/stepNN/src/FILE" >&2; exit 2; }
path=${1#./}
[[ "$path" =~ ^steps/step([0-9][0-9])/src/(.+)$ ]] || { echo "carry-forward: not a step module: $path" >&2; exit 2; }
from=$((10#${BASH_REMATCH[1]}))
file=${BASH_REMATCH[2]}
old=$(mktemp)
trap 'rm -f "$old"' EXIT
git show "HEAD:$path" > "$old" 2>/dev/null || { echo "carry-forward: $path is not committed yet; nothing to compare with" >&2; exit 1; }
for dir in $(ls -d steps/step[0-9][0-9] | sort); do
    n=$((10#${dir#steps/step}))
    [ "$n" -le "$from" ] && continue
    target="$dir/src/$file"
    if [ -f "$target" ] && cmp -s "$target" "$old"; then
        cp "$path" "$target"
        echo "carry-forward: updated $target"
    else
        echo "carry-forward: stopped at $target (changed on purpose, or absent)"
        break
    fi
done
