#!/bin/sh
# Runs inside the second VM that scripts/vm-test.sh boots: the same kernel, with Debian's systemd
# as PID 1, as on most learners' machines. It runs as a systemd service, so this shell shares
# its cgroup (system.slice/checks.service) with every process it starts, as a learner's
# shell shares its login session's. Checks that scripts/as-root, the runner `cargo run` uses,
# gives each step from step 7 on a delegated cgroup of its own, and that the limits then work.
# One line per check: "PASS systemd what" or "FAIL systemd what: wanted …, got …".
IMAGE=/work/rootfs

. /work/expect.sh
# The way `cargo run -p stepNN` starts a step: through the runner, from the learner's cgroup.
as_root() { step=$1; shift; /work/as-root "/work/bin/$step" --rootfs "$IMAGE" "$@"; }
# The running container's cgroup directory box-NAME, wherever the runner put it.
find_cgroup() { find /sys/fs/cgroup -type d -name "box-$1" 2>/dev/null | head -n1; }
has_processes() { dir=$(find_cgroup "$1"); [ -n "$dir" ] && [ -n "$(cat "$dir/cgroup.procs" 2>/dev/null)" ]; }

expect systemd "PID 1 is systemd, on cgroup v2" "systemd cgroup2" \
    sh -c 'echo "$(cat /proc/1/comm) $(awk "\$2 == \"/sys/fs/cgroup\" {print \$3}" /proc/mounts)"'
expect_match systemd "this shell is in a service's cgroup, not alone" "^0::/system.slice/checks.service$" cat /proc/self/cgroup

expect_match systemd "scripts/doctor: every step can run here, in a delegated scope" \
    "ok +memory +cgroup v2; cargo run starts steps 7-10 in a delegated systemd scope.*this machine can run every step" \
    sh /work/scripts/doctor

# Without the runner's scope, step 7 cannot switch controllers on in a cgroup it shares: it says
# so and how to fix it, and leaves nothing behind.
expect_match systemd "without a scope: a clear error and its fix" \
    "other processes are in that cgroup.*hint: run the step in a cgroup of its own.*status 125" \
    sh -c "BOX_NO_SCOPE=1 /work/as-root /work/bin/step07 --rootfs $IMAGE --memory 32m -- /bin/true; echo status \$?"

for s in step07 step08 step09 step10; do
    as_root "$s" --name "sd$s" --memory 32m --pids 16 --cpus 0.5 -- /bin/sleep 2 >/dev/null 2>&1 &
    runner=$!
    wait_for has_processes "sd$s"
    dir=$(find_cgroup "sd$s")
    limits=""
    [ -n "$dir" ] && limits="$(cat "$dir/memory.max") $(cat "$dir/pids.max") $(cat "$dir/cpu.max")"
    wait "$runner"
    expect_match systemd "$s: the runner gives the runtime a delegated scope of its own" \
        "^/sys/fs/cgroup/system.slice/run-[^/]+\.scope/box-sd$s$" echo "$dir"
    expect systemd "$s: limits read back in the scope (memory.max pids.max cpu.max)" "33554432 16 50000 100000" echo "$limits"
    expect_match systemd "$s: --memory 32m: OOM kill, reported" "ran out of memory.*status 137" \
        sh -c "/work/as-root /work/bin/$s --rootfs $IMAGE --memory 32m -- /bin/box-probe hog 256; echo status \$?"
    expect systemd "$s: --pids 16 stops a fork loop" "forks: 14 of 100 (EAGAIN)" as_root "$s" --pids 16 -- /bin/box-probe forks 100
    # The device policy's eBPF program, attached inside systemd's delegated scope.
    expect_match systemd "$s: the device program is attached in the scope" \
        "bpf\(BPF_PROG_ATTACH, \"/sys/fs/cgroup/system.slice/run-[^/]+\.scope/box-sdt${s#step}\", BPF_CGROUP_DEVICE" \
        as_root "$s" --name "sdt${s#step}" --trace -- /bin/true
    expect systemd "$s: device policy: mknod b 7 0 refused" "mknod: /tmp/sdblk: Operation not permitted" \
        as_root "$s" -- /bin/sh -c 'mknod /tmp/sdblk b 7 0; rm -f /tmp/sdblk'
    # The cgroup namespace: the scope and the runtime's path are out of sight.
    expect systemd "$s: cgroup namespace: /proc/self/cgroup is 0::/" "0::/" as_root "$s" -- /bin/cat /proc/self/cgroup
    expect systemd "$s: cgroup namespace: /sys/fs/cgroup is the container's, read-only" \
        "33554432 /bin/sh: can't create /sys/fs/cgroup/memory.max: Read-only file system" \
        as_root "$s" --memory 32m -- /bin/sh -c 'cat /sys/fs/cgroup/memory.max; echo 1 > /sys/fs/cgroup/memory.max'
done

# systemd removes a transient scope when its process ends (--collect even if it failed).
sleep 0.5
expect systemd "nothing left: no container cgroup, no scope" "" \
    sh -c 'find /sys/fs/cgroup -type d \( -name "box-*" -o -name "run-*.scope" \) 2>/dev/null'
