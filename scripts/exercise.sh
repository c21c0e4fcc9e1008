#!/usr/bin/env bash
# The exercise track: write each step's mechanism yourself, and let the tests check it.
#
#   scripts/exercise.sh start NN [--reset]  make exercises/exerciseNN: step NN with the code of its
#                                           mechanism cut out, a hint and a todo!() in its place
#                                           (`cargo run -p exerciseNN` runs it); your work is kept
#                                           unless you --reset it
#   scripts/exercise.sh check NN            build it, run step NN's checks against it (the behaviour
#                                           matrix's rows up to step NN), and say what holds
#   scripts/exercise.sh solution NN         your code next to step NN's, as a diff
#   scripts/exercise.sh fill NN             put step NN's own code into the blanks (for instructors)
#   scripts/exercise.sh selftest [NN ...]   for CI: for each step, the skeleton builds, its checks
#                                           fail, and with the step's own code in the blanks they pass
#
# The blanks are listed in steps/EXERCISES and marked in the steps' code, so the skeletons never
# drift from the steps. A check runs under the tests' leak guard, with a time limit on every run
# of your code; whatever it leaves on the host, scripts/cleanup.sh removes afterwards.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

say() { echo "exercise: $*"; }
die() { echo "exercise: error: $1" >&2; [ $# -lt 2 ] || echo "hint: $2" >&2; exit 1; }
usage() { die "usage: scripts/exercise.sh start|check|solution|fill NN, or selftest [NN ...]" "NN is a step, 01 to 10"; }

list=steps/EXERCISES
target_dir=${CARGO_TARGET_DIR:-$top/target}

# step NN: "07" for 7, 07 or step07; dies on anything else.
step() {
    local n=${1#step}
    [[ "$n" =~ ^[0-9]{1,2}$ ]] && [ "$((10#$n))" -ge 1 ] && [ -d "steps/step$(printf %02d "$((10#$n))")" ] ||
        die "no step '$1'" "name a step from 01 to $(ls -d steps/step[0-9][0-9] | tail -n1 | sed 's/.*step//')"
    printf %02d "$((10#$n))"
}

# blanks NN: the step's blanks, "FILE NAME" a line, in order.
blanks() { sed -n "s/^\[$1 \([^ ]*\) \([^ ]*\)\]\$/\1 \2/p" "$list"; }

# replacement NN NAME: the lines that stand in a blank's place in the skeleton.
replacement() {
    awk -v key="[$1 " -v name="$2]" '
        index($0, key) == 1 && substr($0, length($0) - length(name) + 1) == name { on = 1; next }
        on && (/^\[/ || /^$/) { exit }
        on { print }' "$list"
}

# cut FILE NAME LINES: put LINES (a file), indented like the markers, between the markers NAME.
cut_blank() {
    local file=$1 name=$2 lines=$3 tmp
    tmp=$(mktemp)
    awk -v begin="// ANCHOR: $name" -v end="// ANCHOR_END: $name" -v lines="$lines" -v indent_only="${4:-}" '
        function trim(s) { sub(/^[ \t]+/, "", s); return s }
        trim($0) == begin {
            print
            indent = substr($0, 1, index($0, "/") - 1)
            while ((getline line < lines) > 0) print (indent_only == "as-is" ? line : indent line)
            skipping = 1
            next
        }
        trim($0) == end { skipping = 0 }
        !skipping { print }' "$file" > "$tmp"
    grep -q "// ANCHOR_END: $name" "$tmp" || { rm -f "$tmp"; die "$file has no blank $name" "steps/EXERCISES and the step's code disagree"; }
    cat "$tmp" > "$file" && rm -f "$tmp"
}

# region FILE NAME: the code between the markers NAME.
region() {
    awk -v begin="// ANCHOR: $2" -v end="// ANCHOR_END: $2" '
        function trim(s) { sub(/^[ \t]+/, "", s); return s }
        trim($0) == end { exit }
        on { print }
        trim($0) == begin { on = 1 }' "$1"
}

# make_skeleton NN DIR CRATE: step NN as the crate CRATE in DIR, with its blanks cut out.
make_skeleton() {
    local n=$1 dir=$2 crate=$3 file name lines
    rm -rf "$dir" && mkdir -p "$dir"
    cp -r "steps/step$n/Cargo.toml" "steps/step$n/src" "$dir/"
    sed -i -e "s/^name = \"step$n\"/name = \"$crate\"/" \
        -e "s/^description = \".*\"/description = \"Exercise $n of the container workshop: step $n, written by you (scripts\/exercise.sh)\"/" \
        "$dir/Cargo.toml"
    # Until the blanks are filled, some of the step's code is unused: no warnings for that.
    sed -i '0,/^[^/]/s//#![allow(unused, unreachable_code)] \/\/ scripts\/exercise.sh: until the blanks are filled\n\n&/' \
        "$dir/src/main.rs"
    lines=$(mktemp)
    while read -r file name; do
        replacement "$n" "$name" > "$lines"
        [ -s "$lines" ] || die "steps/EXERCISES has no lines for $name"
        cut_blank "$dir/$file" "$name" "$lines"
    done < <(blanks "$n")
    rm -f "$lines"
}

# fill_blanks NN DIR: put step NN's own code into DIR's blanks.
fill_blanks() {
    local n=$1 dir=$2 file name lines
    lines=$(mktemp)
    while read -r file name; do
        region "steps/step$n/$file" "$name" > "$lines"
        cut_blank "$dir/$file" "$name" "$lines" as-is
    done < <(blanks "$n")
    rm -f "$lines"
}

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# run_check NN CRATE [first-failure]: build CRATE and run step NN's checks against it. Prints the
# checks; returns 0 when they all hold.
run_check() {
    local n=$1 crate=$2 mode=${3:-} out status=0
    if ! cargo build --quiet -p "$crate" 2>&1; then
        say "$crate does not build yet: fix what the compiler says above, then check again"
        return 1
    fi
    out=$(mktemp)
    # Every run of the learner's code is killed after BOX_RUN_TIMEOUT seconds, the whole check
    # after ten minutes. The test binary runs as root (cargo's runner, scripts/as-root).
    env BOX_EXERCISE_STEP="$n" BOX_EXERCISE_BINARY="$target_dir/debug/$crate" BOX_RUN_TIMEOUT="${BOX_RUN_TIMEOUT:-20}" \
        ${mode:+BOX_EXERCISE_FIRST_FAILURE=1} \
        timeout --kill-after=10 600 cargo test --quiet --locked -p box-tests --test matrix -- \
        --ignored --exact exercise_check --nocapture --test-threads=1 > "$out" 2>&1 || status=$?
    if grep -q '^exercise: ' "$out"; then
        sed -n 's/^exercise: /  /p' "$out"
    else
        tail -n 20 "$out"
    fi
    [ "$status" -eq 124 ] && say "the check took more than ten minutes and was stopped"
    rm -f "$out"
    # Whatever the learner's code left on the host (a killed run's cgroup, mount or link) goes.
    if ! as_root scripts/cleanup.sh --check >/dev/null 2>&1; then
        say "your code left things on the host; removing them (scripts/cleanup.sh):"
        as_root scripts/cleanup.sh | sed 's/^/  /'
    fi
    return "$status"
}

command=${1:-}
case "$command" in
start)
    [ $# -ge 2 ] || usage
    n=$(step "$2")
    dir=exercises/exercise$n
    if [ -d "$dir" ] && [ "${3:-}" != --reset ]; then
        say "$dir exists: your work is kept (\`scripts/exercise.sh start $n --reset\` starts again)"
    else
        make_skeleton "$n" "$dir" "exercise$n"
        # The crate is a member of the workspace: Cargo.lock names it from now on (nothing else in
        # it changes), so that the workshop's `--locked` builds (scripts/test.sh) accept it.
        cargo tree --quiet -p "exercise$n" --depth 0 > /dev/null
        say "made $dir: step $n, with $(blanks "$n" | wc -l) blanks for you to fill"
        say "Cargo.lock now lists exercise$n; \`git checkout Cargo.lock\` before you pull undoes that"
    fi
    echo "Fill them in this order (each has a hint above its todo!()):"
    blanks "$n" | while read -r file name; do
        echo "  $dir/$file:$(grep -n "// ANCHOR: $name\$" "$dir/$file" | cut -d: -f1)"
    done
    echo "Then: cargo run -p exercise$n -- --trace /bin/true, and scripts/exercise.sh check $n"
    ;;
check)
    [ $# -eq 2 ] || usage
    n=$(step "$2")
    [ -d "exercises/exercise$n" ] || die "there is no exercise $n yet" "scripts/exercise.sh start $n"
    say "checking exercise$n against step $n's behaviour"
    if run_check "$n" "exercise$n"; then
        say "exercise $n is done. Compare with the real step: scripts/exercise.sh solution $n"
    else
        say "not done yet: fix the first check that does not hold, then check again"
        exit 1
    fi
    ;;
solution)
    [ $# -eq 2 ] || usage
    n=$(step "$2")
    [ -d "exercises/exercise$n" ] || die "there is no exercise $n yet" "scripts/exercise.sh start $n"
    # Your code (+) against the step's (-), the blanks only; the rest is the step's anyway.
    blanks "$n" | while read -r file name; do
        diff -u --label "step$n/$file ($name)" --label "exercise$n/$file (yours)" \
            <(region "steps/step$n/$file" "$name") <(region "exercises/exercise$n/$file" "$name") || true
    done
    ;;
fill)
    [ $# -eq 2 ] || usage
    n=$(step "$2")
    [ -d "exercises/exercise$n" ] || die "there is no exercise $n yet" "scripts/exercise.sh start $n"
    fill_blanks "$n" "exercises/exercise$n"
    say "exercises/exercise$n has step $n's own code in its blanks"
    ;;
selftest)
    shift
    steps=()
    for arg in "$@"; do steps+=("$(step "$arg")"); done
    [ ${#steps[@]} -gt 0 ] || mapfile -t steps < <(sed -n 's/^\[\([0-9][0-9]\) .*/\1/p' "$list" | uniq)
    # A self-test that was killed may have left its crates: they are its own, never a learner's.
    rm -rf exercises/selftest-*
    # Its crates join the workspace for a while: Cargo.lock is put back as it was afterwards.
    lock=$(mktemp)
    cp Cargo.lock "$lock"
    dirs=("$lock")
    trap 'rm -rf "${dirs[@]:1}"; cat "$lock" > Cargo.lock; rm -f "$lock"' EXIT
    packages=()
    for n in "${steps[@]}"; do
        dirs+=("exercises/selftest-$n")
        packages+=(-p "exercise-selftest-$n")
        make_skeleton "$n" "exercises/selftest-$n" "exercise-selftest-$n"
    done
    cargo build --quiet "${packages[@]}"
    say "the skeletons of steps ${steps[*]} build"
    out=$(mktemp)
    dirs+=("$out")
    for n in "${steps[@]}"; do
        if run_check "$n" "exercise-selftest-$n" first-failure > "$out" 2>&1; then
            die "the checks of step $n hold with its blanks empty" "the blanks of step $n in steps/EXERCISES cut too little"
        fi
        # A todo!() ends the learner's run early: the step's own clean-up must still leave nothing.
        if grep -q "left these on the host\|your code left things" "$out"; then
            cat "$out" >&2
            die "step $n's skeleton left things on the host" "the step's clean-up misses a way out"
        fi
        say "step $n: its checks fail before the blanks are filled, and leave nothing behind"
        fill_blanks "$n" "exercises/selftest-$n"
    done
    cargo build --quiet "${packages[@]}"
    for n in "${steps[@]}"; do
        run_check "$n" "exercise-selftest-$n" > "$out" 2>&1 || {
            cat "$out" >&2
            die "step $n's checks fail with its own code in the blanks" \
                "run: scripts/exercise.sh start $n && scripts/exercise.sh fill $n && scripts/exercise.sh check $n"
        }
        say "step $n: with the step's own code in the blanks, every check holds"
    done
    # A learner's code that never ends: init's loop that never reaps (step 3 on) hangs every run.
    # The check must say so within its time limit, and leave nothing behind.
    hang=""
    for n in "${steps[@]}"; do [ "$((10#$n))" -ge 3 ] && hang=$n; done
    if [ -n "$hang" ]; then
        echo 'loop { std::thread::sleep(std::time::Duration::from_secs(1)); }' > "$out"
        cut_blank "exercises/selftest-$hang/src/init.rs" exercise03_supervise "$out"
        cargo build --quiet -p "exercise-selftest-$hang"
        if BOX_RUN_TIMEOUT=3 run_check "$hang" "exercise-selftest-$hang" > "$out" 2>&1; then
            die "a step $hang whose init never reaps passed its checks" "exercise_check in tests/tests/matrix.rs"
        fi
        grep -q "did not finish within 3s" "$out" || { cat "$out" >&2; die "the hang was not reported as one"; }
        as_root scripts/cleanup.sh --check > /dev/null ||
            die "the hanging exercise left things on the host" "scripts/cleanup.sh --check lists them"
        say "step $hang with an init that never reaps: stopped after 3 s, reported, nothing left behind"
    fi
    ;;
*) usage ;;
esac
