#!/usr/bin/env bash
# Measurements, not tests: how big the step binaries are, how long a container takes to start
# and stop in each step, and (for step 9) what creating a veth peer directly inside the
# container's namespace saves over creating it on the host and moving it. Run as root on an
# idle machine; numbers vary from machine to machine.
#   scripts/bench.sh [RUNS]        (default 20 runs per measurement)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
runs=${1:-20}
[ "$(id -u)" -eq 0 ] || { echo "bench: run as root (sudo scripts/bench.sh)" >&2; exit 1; }
cargo build --quiet --release --workspace --bins

ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

echo "== release binaries"
for bin in target/release/step[0-9][0-9]; do
    printf '%s  %s\n' "$(du -k "$bin" | cut -f1) KiB" "${bin##*/}"
done

echo
echo "== container start and stop: \`stepNN -- /bin/true\`, mean of $runs runs"
for bin in target/release/step[0-9][0-9]; do
    "$bin" -- /bin/true >/dev/null 2>&1 || { echo "${bin##*/}: failed, skipped"; continue; }
    start=$(date +%s%N)
    for _ in $(seq "$runs"); do "$bin" -- /bin/true >/dev/null; done
    echo "${bin##*/}: $(( $(ms_since "$start") * 1000 / runs )) µs"
done

echo
echo "== veth pair, peer made in the namespace vs moved there, $runs pairs each (one ip -batch)"
unshare --net sleep 60 &
holder=$!
sleep 0.2
trap 'kill $holder 2>/dev/null || true' EXIT
direct=$(for i in $(seq "$runs"); do echo "link add box-bench$i type veth peer name p$i netns $holder"; done)
moved=$(for i in $(seq "$runs"); do echo "link add box-bench$i type veth peer name p$i"; echo "link set p$i netns $holder"; done)
delete=$(for i in $(seq "$runs"); do echo "link delete box-bench$i"; done)
start=$(date +%s%N); echo "$direct" | ip -batch -; t_direct=$(ms_since "$start")
echo "$delete" | ip -batch -
start=$(date +%s%N); echo "$moved" | ip -batch -; t_moved=$(ms_since "$start")
echo "$delete" | ip -batch -
echo "peer made in the namespace: $(( t_direct * 1000 / runs )) µs per pair"
echo "peer made, then moved:      $(( t_moved * 1000 / runs )) µs per pair"
