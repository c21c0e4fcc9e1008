#!/usr/bin/env bash
# The one test command (CI runs it too): set up what is missing, build, run every test,
# check the carried-forward modules and the generated diffs, build the book, and make sure the
# whole run left nothing behind on the host.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
step() { echo; echo "==> $*"; }

step "set-up"
scripts/setup.sh

# The workshop's own crates: not the learner's exercises/ (scripts/exercise.sh), which are theirs
# to format and to leave half-written.
ours=(-p box-tests -p box-probe)
for dir in steps/step[0-9][0-9]; do ours+=(-p "${dir#steps/}"); done
all=(--workspace --exclude 'exercise*')

step "format and lints"
cargo fmt --check "${ours[@]}"
cargo clippy --quiet "${all[@]}" --all-targets --locked -- -D warnings

step "build"
cargo build --quiet "${all[@]}" --locked

step "every crate type-checks for aarch64 (Apple Silicon VMs, Raspberry Pis)"
scripts/check-aarch64.sh

step "tests (each runs under the leak guard)"
mounts_before=$(mktemp)
trap 'rm -f "$mounts_before"' EXIT
awk '{print $5}' /proc/self/mountinfo | sort > "$mounts_before"
forward_before=$(cat /proc/sys/net/ipv4/ip_forward)
# A changed snapshot fails the run and leaves a .snap.new beside it: review with `cargo insta review`.
# The tests run on one CPU, as on the smallest learners' machines (built first, on all of them):
# no snapshot may hold a fact of the machine that recorded it. The VM test below runs on four.
cargo test "${all[@]}" --locked --no-run --quiet
taskset -c 0 cargo test "${all[@]}" --locked

step "the exercise track: for each step, its skeleton fails its checks, and its own code passes them"
if compgen -G 'exercises/exercise*/Cargo.toml' >/dev/null; then
    echo "test.sh: SKIPPED the exercise track's self-test: exercises/ holds your own work (CI runs it)"
else
    scripts/exercise.sh selftest
fi

step "the tests as a learner who is not root, with sudo and rustup"
if [ "$(id -u)" -eq 0 ]; then
    scripts/test-as-learner.sh
else
    echo "test.sh: you are that learner: the tests above ran through sudo"
fi

step "steps carried forward, generated diffs"
scripts/check-steps.sh
scripts/gen-diffs.sh --check

step "book, and every page of it in headless Chromium"
if command -v chromedriver >/dev/null || [ -n "${CI:-}" ]; then
    scripts/build-book.sh --check-browser
else
    scripts/build-book.sh
    echo "test.sh: SKIPPED the book's browser check: chromedriver is not installed (CI runs it; on Debian, BOX_CHECK_BOOK=1 scripts/setup.sh installs it)"
fi

step "every step on a cgroup v2 kernel, in a VM"
if command -v qemu-system-x86_64 >/dev/null && [ "$(uname -m)" = x86_64 ]; then
    scripts/vm-test.sh
else
    echo "test.sh: SKIPPED the VM test: qemu-system-x86_64 is not installed (scripts/setup.sh installs it on x86_64)"
fi

step "nothing left behind"
scripts/cleanup.sh --check
if ! awk '{print $5}' /proc/self/mountinfo | sort | diff "$mounts_before" - >/dev/null; then
    echo "test.sh: error: the mount table changed during the tests:" >&2
    awk '{print $5}' /proc/self/mountinfo | sort | diff "$mounts_before" - >&2 || true
    exit 1
fi
if [ "$(cat /proc/sys/net/ipv4/ip_forward)" != "$forward_before" ]; then
    echo "test.sh: error: net.ipv4.ip_forward was $forward_before before the tests, and is not now" >&2
    exit 1
fi
echo "test.sh: all checks passed"
