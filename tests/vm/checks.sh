#!/bin/sh
# Runs inside the VM that scripts/vm-test.sh boots: a stock Debian kernel with a cgroup v2
# (unified) hierarchy only. For every step, the behaviours of the matrix that make sense here,
# one line each: "PASS stepNN what" or "FAIL stepNN what: wanted …, got …". The host parses them.
IMAGE=/work/rootfs
echo "host-only file, outside the image" > /work/host-secret

run() { step=$1; shift; "/work/bin/$step" --rootfs "$IMAGE" "$@"; }
number() { echo "$1" | sed 's/^step0*//'; }
. /work/expect.sh
cgroup_file() { cat "/sys/fs/cgroup/box-$1/$2" 2>/dev/null | tr '\n' ' ' | sed 's/ *$//'; }

if [ -f /sys/fs/cgroup/cgroup.controllers ] && ! grep -q ' cgroup ' /proc/mounts; then
    pass vm "cgroup v2 unified hierarchy ($(cat /sys/fs/cgroup/cgroup.controllers | tr ' ' ','))"
else
    fail vm "cgroup v2 unified hierarchy" "not what this VM mounted"
fi

expect_match vm "scripts/doctor: every step can run here" "this machine can run every step" sh /work/scripts/doctor
expect_match vm "scripts/doctor: v2 controllers available" "ok +memory +cgroup v2, available to /.*ok +pids +cgroup v2.*ok +cpu +cgroup v2" sh /work/scripts/doctor

for bin in /work/bin/step*; do
    s=$(basename "$bin")
    n=$(number "$s")
    expect "$s" "exit status propagates" 42 status_of run "$s" -- /bin/sh -c 'exit 42'
    expect_match "$s" "root is the image" "box workshop image" run "$s" -- /bin/cat /etc/box-image
    if [ "$n" -ge 2 ]; then
        expect "$s" "hostname" vmbox run "$s" --hostname vmbox -- /bin/hostname
    fi
    if [ "$n" -ge 3 ]; then
        expect "$s" "PID 1 is init, the command is 2" "2 1" run "$s" -- /bin/sh -c 'echo $$ $PPID'
    fi
    if [ "$n" -ge 4 ]; then
        expect "$s" "/proc shows only the container" "proc: pids 1 2" sh -c "/work/bin/$s --rootfs $IMAGE -- /bin/box-probe report | grep '^proc:'"
        expect_match "$s" "pivot_root: the chroot escape is blocked" "^escape: blocked" run "$s" -- /bin/box-probe escape /work/host-secret
    fi
    if [ "$n" -ge 5 ]; then
        expect_match "$s" "masked /proc/keys" "^/proc/keys: empty" run "$s" -- /bin/box-probe check /proc/keys
        expect_match "$s" "masked /proc/kcore (kernel memory)" "^/proc/kcore: empty" run "$s" -- /bin/box-probe check /proc/kcore
        expect_match "$s" "read-only core_pattern" "read-only" run "$s" -- /bin/box-probe check /proc/sys/kernel/core_pattern
    fi
    if [ "$n" -eq 6 ]; then
        # The hole step 7 closes: root in the container keeps CAP_MKNOD, and no device policy.
        expect "$s" "no device policy yet: mknod b 7 0 works" "made" \
            run "$s" -- /bin/sh -c 'mknod /tmp/vmblk b 7 0 && echo made; rm -f /tmp/vmblk'
    fi
    if [ "$n" -ge 6 ]; then
        expect "$s" "capabilities, no_new_privs, seccomp" "CapEff: 00000000a80425fb NoNewPrivs: 1 Seccomp: 2" \
            run "$s" -- /bin/sh -c "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status | tr -s '\t' ' '"
        expect_match "$s" "mount(2) refused" "refused \(EPERM\)" run "$s" -- /bin/box-probe try mount
    fi
    if [ "$n" -ge 7 ]; then
        # The limits, read back from the container's v2 cgroup while it runs; gone afterwards.
        run "$s" --name vmlim --memory 32m --pids 16 --cpus 0.5 -- /bin/sleep 3 >/dev/null 2>&1 &
        wait_for grep -q . /sys/fs/cgroup/box-vmlim/cgroup.procs
        limits="$(cgroup_file vmlim memory.max) $(cgroup_file vmlim pids.max) $(cgroup_file vmlim cpu.max)"
        wait
        expect "$s" "v2 limits read back (memory.max pids.max cpu.max)" "33554432 16 50000 100000" echo "$limits"
        expect "$s" "v2 cgroup removed after the run" "gone" sh -c '[ -e /sys/fs/cgroup/box-vmlim ] && echo there || echo gone'
        expect "$s" "v2 --pids 16 stops a fork loop" "forks: 14 of 100 (EAGAIN)" run "$s" --pids 16 -- /bin/box-probe forks 100
        expect_match "$s" "v2 --memory 32m: OOM kill, reported" "ran out of memory.*status 137" \
            sh -c "/work/bin/$s --rootfs $IMAGE --memory 32m -- /bin/box-probe hog 256; echo status \$?"
        run "$s" --name vmcpu --cpus 0.5 -- /bin/box-probe spin 3 >/dev/null 2>&1 &
        wait_for sh -c "grep -q '^nr_throttled [1-9]' /sys/fs/cgroup/box-vmcpu/cpu.stat"
        throttled=$(grep '^nr_throttled' /sys/fs/cgroup/box-vmcpu/cpu.stat 2>/dev/null | cut -d' ' -f2)
        wait
        expect "$s" "v2 --cpus 0.5 throttles a busy loop" "throttled" sh -c "[ '${throttled:-0}' -gt 0 ] && echo throttled || echo 'nr_throttled=${throttled:-none}'"
        # The device policy: an eBPF program made from the table, attached to the container's cgroup.
        expect_match "$s" "v2 device policy: the trace loads and attaches the eBPF program" \
            "bpf\(BPF_PROG_LOAD, BPF_PROG_TYPE_CGROUP_DEVICE, 47 instructions: 8 rules\).*bpf\(BPF_PROG_ATTACH, \"/sys/fs/cgroup/box-vmtrace\", BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI\)" \
            run "$s" --name vmtrace --trace -- /bin/true
        expect "$s" "v2 device policy: mknod c 1 3 works, the node reads as /dev/null" "null-ok" \
            run "$s" -- /bin/sh -c 'mknod /tmp/vmnull c 1 3 && cat /tmp/vmnull && echo null-ok; rm -f /tmp/vmnull'
        expect "$s" "v2 device policy: mknod b 7 0 refused" "mknod: /tmp/vmblk: Operation not permitted" \
            run "$s" -- /bin/sh -c 'mknod /tmp/vmblk b 7 0; rm -f /tmp/vmblk'
        mknod "$IMAGE/tmp/vmdisk" b 7 0
        expect "$s" "v2 device policy: a block device node in the image cannot be opened" \
            "cat: can't open '/tmp/vmdisk': Operation not permitted" run "$s" -- /bin/cat /tmp/vmdisk
        rm -f "$IMAGE/tmp/vmdisk"
        # The cgroup namespace: the container's cgroup is its root, mounted read-only.
        expect "$s" "cgroup namespace: /proc/self/cgroup is 0::/" "0::/" run "$s" -- /bin/cat /proc/self/cgroup
        expect "$s" "cgroup namespace: /sys/fs/cgroup is the container's, read-only" \
            "33554432 /bin/sh: can't create /sys/fs/cgroup/memory.max: Read-only file system" \
            run "$s" --memory 32m -- /bin/sh -c 'cat /sys/fs/cgroup/memory.max; echo 1 > /sys/fs/cgroup/memory.max'
        expect "$s" "no container cgroup left" "" sh -c 'ls -d /sys/fs/cgroup/box-* 2>/dev/null'
    fi
    if [ "$n" -ge 8 ]; then
        expect "$s" "overlay: a write stays in the container" "mine absent" \
            sh -c "/work/bin/$s --rootfs $IMAGE -- /bin/sh -c 'echo mine > /note; cat /note'; [ -e $IMAGE/note ] && echo present || echo absent"
    fi
    if [ "$n" -ge 9 ]; then
        expect "$s" "veth: the container pings the host's end" "answers" \
            run "$s" --net veth -- /bin/sh -c 'ping -c 1 -W 5 $(ip route | awk "/default/ {print \$3}") >/dev/null && echo answers'
    fi
    if [ "$n" -ge 10 ]; then
        # The first container says its address, then stays; the second pings it.
        run "$s" --name vma -- /bin/sh -c 'ip -4 -o addr show eth0; sleep 4' > /tmp/first 2>&1 &
        first=$!
        wait_for grep -q inet /tmp/first
        address=$(awk '{print $4}' /tmp/first | cut -d/ -f1)
        expect "$s" "bridge: one container pings another" "answers" \
            run "$s" -- /bin/sh -c "ping -c 1 -W 5 $address >/dev/null && echo answers"
        wait "$first"
        # The runtime itself in the background (not the function run, whose $! is a subshell's).
        "/work/bin/$s" --rootfs "$IMAGE" --publish 8080:80 --layer /work/layers/web -- /usr/local/bin/serve >/dev/null 2>&1 &
        server=$!
        wait_for wget -q -O - http://127.0.0.1:8080/
        expect_match "$s" "--publish 8080:80 serves the page on localhost" "Hello from a container" wget -q -O - http://127.0.0.1:8080/
        kill "$server"
        wait "$server"
        expect "$s" "the bridge goes with the last container" "gone" sh -c '[ -e /sys/class/net/box-br0 ] && echo there || echo gone'
    fi
done
