#!/usr/bin/env bash
# Run the steps on a stock Debian kernel with a cgroup v2 (unified) hierarchy, in QEMU. This
# machine and CI are cgroup v1/hybrid hosts: this is where step 7's v2 code runs for real. Three
# VMs boot, one after the other, from initramfs images built here:
#
#   1. busybox as init: every step's checks (tests/vm/checks.sh);
#   2. Debian's systemd as PID 1, as on most learners' machines: scripts/as-root's delegated
#      scope for steps 7-10 (tests/vm/systemd-checks.sh);
#   3. the same, with the tools the tests use: the whole Rust test suite, as `cargo test` runs it.
#
# Into them go the release step binaries (the debug ones for the suite), the workshop image and
# the probe, the host's ip/nsenter/iptables with their libraries, the kernel modules the steps
# need, and Debian's packages for systemd and the tools: all downloaded with apt and unpacked,
# never installed on this machine. Boots with KVM when KVM works, or else with software emulation
# (TCG), and parses one PASS/FAIL line per check.
#
# Usage: scripts/vm-test.sh            (as root; needs qemu-system-x86, see scripts/setup.sh)
#        scripts/vm-test.sh --record   records the snapshots that depend on the cgroup layout as
#                                      the systemd VM sees them (tests/snapshots/NAME@v2-systemd.snap)
set -euo pipefail
record=no
[ "${1:-}" = --record ] && record=yes
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
work="$top/target/vm"
mkdir -p "$work"

say() { echo "vm-test: $*"; }
die() { echo "vm-test: error: $1" >&2; [ $# -lt 2 ] || echo "hint: $2" >&2; exit 1; }
# download_closure: Debian packages and their libraries as .deb files, downloaded once.
. scripts/debs.sh

[ "$(uname -m)" = x86_64 ] || die "the VM test boots an x86_64 kernel; this is $(uname -m)"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 is missing" "apt-get install qemu-system-x86 (scripts/setup.sh does)"
[ -x rootfs/bin/busybox ] || die "the workshop image is not built" "run scripts/setup.sh"

# 1. The kernel: the package linux-image-amd64 depends on, downloaded once.
kernel_package() { apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/.*Depends: linux-image-\(.*\)/\1/p' | head -n1; }
version=$(kernel_package)
# A fresh machine may not have read the package lists yet.
[ -n "$version" ] || { apt-get update -qq && version=$(kernel_package); }
[ -n "$version" ] || die "apt does not know linux-image-amd64" "run apt-get update"
kernel_dir="$work/kernel-$version"
if [ ! -f "$kernel_dir/vmlinuz" ]; then
    say "downloading linux-image-$version"
    rm -rf "$kernel_dir" && mkdir -p "$kernel_dir"
    (cd "$kernel_dir" && apt-get download -q "linux-image-$version" 2>/dev/null && dpkg-deb -x linux-image-*.deb unpacked && rm linux-image-*.deb)
    cp "$kernel_dir/unpacked/boot/vmlinuz-$version" "$kernel_dir/vmlinuz"
    depmod -b "$kernel_dir/unpacked" "$version"
fi

# 2. The binaries.
say "building the steps (release) and the probe"
cargo build --quiet --release --workspace --exclude 'exercise*' --bins
cargo rustc --quiet -p box-probe --release --target-dir target/probe -- -C target-feature=+crt-static

# 3. The initramfs.
initrd="$work/initramfs"
rm -rf "$initrd"
mkdir -p "$initrd"/{bin,sbin,proc,sys,dev,tmp,run,var/tmp,work/bin,etc,lib/modules}
cp -a rootfs/bin/busybox "$initrd/bin/"
for applet in $("$initrd/bin/busybox" --list); do [ "$applet" = busybox ] || ln -sf busybox "$initrd/bin/$applet"; done
# The host's tools the steps run, with every library they load.
copy_with_libs() {
    local file=$1 lib
    mkdir -p "$initrd$(dirname "$file")"
    cp -L "$file" "$initrd$file"
    for lib in $(ldd "$file" 2>/dev/null | grep -oE '/[^ ]+\.so[^ ]*'); do
        [ -e "$initrd$lib" ] || { mkdir -p "$initrd$(dirname "$lib")"; cp -L "$lib" "$initrd$lib"; }
    done
}
for tool in /usr/bin/ip /usr/bin/nsenter /usr/sbin/xtables-nft-multi; do copy_with_libs "$tool"; done
for plugin in /usr/lib/x86_64-linux-gnu/xtables/*.so; do copy_with_libs "$plugin"; done
for name in ip nsenter; do ln -sf "/usr/bin/$name" "$initrd/sbin/$name"; done
for name in iptables iptables-save iptables-restore; do ln -sf /usr/sbin/xtables-nft-multi "$initrd/sbin/$name"; done
rm -f "$initrd/bin/ip" "$initrd/bin/nsenter"   # the host's, not busybox's (-batch)
cp /etc/protocols /etc/services "$initrd/etc/" 2>/dev/null || true
for step in target/release/step[0-9][0-9]; do copy_with_libs "$top/$step"; cp "$step" "$initrd/work/bin/"; done
cp -a rootfs "$initrd/work/rootfs"
cp target/probe/release/box-probe "$initrd/work/rootfs/bin/box-probe"
mkdir -p "$initrd/work/layers" && cp -a layers/web "$initrd/work/layers/web"
cp tests/vm/checks.sh tests/vm/expect.sh "$initrd/work/"
mkdir -p "$initrd/work/scripts" && cp scripts/doctor "$initrd/work/scripts/doctor"
# Kernel modules, in the order modprobe would load them.
modules_root="$kernel_dir/unpacked"
: > "$initrd/work/modules"
for module in loop overlay veth bridge nf_tables nft_compat nft_chain_nat xt_MASQUERADE xt_comment xt_conntrack xt_tcpudp; do
    modprobe -d "$modules_root" -S "$version" --show-depends "$module" | awk '$1 == "insmod" {print $2}' |
        while read -r path; do
            name=$(basename "$path")
            grep -qx "$name" "$initrd/work/modules" && continue
            cp "$path" "$initrd/lib/modules/$name"
            echo "$name" >> "$initrd/work/modules"
        done
done
# /init: stage 1 moves to a tmpfs (pivot_root refuses the initramfs itself as the old root);
# stage 2 mounts the kernel's filesystems with cgroup v2 only, loads the modules, and either
# runs the checks itself or hands over to systemd, which mounts them itself.
write_init() {
    local dir=$1 stage2=$2
    cat > "$dir/init" <<INIT
#!/bin/sh
mount -t proc proc /proc
if [ ! -e /run/stage2 ]; then
    mkdir -p /newroot && mount -t tmpfs -o size=800m tmpfs /newroot
    for entry in /*; do
        case "\$entry" in /newroot|/proc|/sys|/dev) continue ;; esac
        cp -a "\$entry" /newroot/
    done
    mkdir -p /newroot/proc /newroot/sys /newroot/dev && touch /newroot/run/stage2
    umount /proc
    exec switch_root /newroot /init
fi
while read -r module; do insmod "/lib/modules/\$module" 2>/dev/null; done < /work/modules
echo "VM-READY kernel \$(uname -r)"
$stage2
INIT
    chmod +x "$dir/init"
}
write_init "$initrd" 'mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t cgroup2 cgroup2 /sys/fs/cgroup
ip link set lo up
# Not on the console: from step 5 a terminal on stdin gets the container a pty (lines end in \r\n).
sh /work/checks.sh </dev/null
echo "CHECKS-DONE"
poweroff -f'
pack() { (cd "$1" && find . | "$initrd/bin/busybox" cpio -o -H newc 2>/dev/null | gzip -1) > "$2"; }
pack "$initrd" "$work/initramfs.gz"
say "initramfs: $(du -h "$work/initramfs.gz" | cut -f1), kernel $version"

# 4. The same, with Debian's systemd as PID 1 (its package and the libraries it needs, unpacked,
# not installed): the runner scripts/as-root must give step 7 on a delegated scope there.
systemd_version=$(apt-cache policy systemd 2>/dev/null | sed -n 's/ *Candidate: //p')
[ -n "$systemd_version" ] && [ "$systemd_version" != "(none)" ] || die "apt does not know the systemd package" "run apt-get update"
debs="$work/systemd-$systemd_version"
download_closure "$debs" "systemd $systemd_version and its libraries" systemd
systemd_root="$work/initramfs-systemd"
rm -rf "$systemd_root" && mkdir -p "$systemd_root"
for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$systemd_root"; done
cp -a -n "$initrd/." "$systemd_root/"   # busybox fills in only what Debian's packages lack
cp scripts/as-root "$systemd_root/work/as-root"
cp tests/vm/systemd-checks.sh "$systemd_root/work/systemd-checks.sh"
echo "root:x:0:0:root:/root:/bin/sh" > "$systemd_root/etc/passwd"
echo "root:x:0:" > "$systemd_root/etc/group"
echo 0123456789abcdef0123456789abcdef > "$systemd_root/etc/machine-id"   # not a first boot
units="$systemd_root/etc/systemd/system"
# systemd_units UNITS NAME WHAT SCRIPT: a target NAME.target that starts the service NAME.service,
# which runs SCRIPT with its output on the serial console, then powers the VM off.
systemd_units() {
    local units=$1 name=$2 what=$3 script=$4
    mkdir -p "$units"
    printf '[Unit]\nDescription=%s\nWants=%s.service\n' "$what" "$name" > "$units/$name.target"
    cat > "$units/$name.service" <<UNIT
[Unit]
Description=$what
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'sh $script; echo CHECKS-DONE'
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0
TimeoutStartSec=infinity
ExecStopPost=/bin/systemctl poweroff --force --force
UNIT
}
systemd_units "$units" checks "The workshop's checks under systemd" /work/systemd-checks.sh
write_init "$systemd_root" 'umount /proc
exec /lib/systemd/systemd'
pack "$systemd_root" "$work/initramfs-systemd.gz"
say "initramfs with systemd $systemd_version: $(du -h "$work/initramfs-systemd.gz" | cut -f1)"

# 5. The whole Rust test suite, in the systemd VM: what a learner on a cgroup v2 distribution
# with systemd runs. The test binaries (built here) run from the same path as on this machine,
# with the step binaries and the probe in place (BOX_PREBUILT: there is no cargo in the VM), and
# the host tools the tests use from Debian's packages.
say "building the test suite"
cargo test --quiet --workspace --exclude 'exercise*' --locked --no-run
tests=$(cargo test --workspace --exclude 'exercise*' --locked --no-run --message-format=json 2>/dev/null |
    sed -n 's/.*"kind":\["test"\].*"executable":"\([^"]*\)".*/\1/p')
[ -n "$tests" ] || die "found no test binaries to run in the VM"
tool_debs="$work/tools-$systemd_version"
download_closure "$tool_debs" "the tools the tests use" coreutils findutils procps util-linux bsdutils grep sed mawk dash bash
suite_root="$work/initramfs-suite"
rm -rf "$suite_root" && cp -a "$systemd_root" "$suite_root"
for deb in "$tool_debs"/*.deb; do dpkg-deb -x "$deb" "$suite_root"; done
ln -sf dash "$suite_root/bin/sh"
printf '127.0.0.1 localhost\n' > "$suite_root/etc/hosts"
echo boxvm > "$suite_root/etc/hostname"
mirror="$suite_root$top"
mkdir -p "$mirror/target/debug/deps" "$mirror/target/probe/release" "$mirror/tests/probe"
cp -a rootfs layers scripts steps "$mirror/"
mkdir -p "$mirror/book" && cp -a book/src book/book.toml book/diagrams "$mirror/book/"
cp -a tests/snapshots "$mirror/tests/" && cp -a tests/probe/src "$mirror/tests/probe/"
for step in target/debug/step[0-9][0-9]; do strip -o "$mirror/$step" "$step"; done
cp target/probe/release/box-probe "$mirror/target/probe/release/"
: > "$suite_root/work/suite-tests"
# cleanup.rs last: its tests kill runtimes and sweep the whole host, as a real clean-up would.
for exe in $(printf '%s\n' $tests | grep -v '/cleanup-') $(printf '%s\n' $tests | grep '/cleanup-'); do
    strip -o "$suite_root$exe" "$exe"; echo "$exe" >> "$suite_root/work/suite-tests"
done
cat > "$suite_root/work/suite.sh" <<SUITE
#!/bin/sh
# Each test binary as cargo test runs it: from the package's directory, one after another.
hostname boxvm
cd $top/tests
export BOX_PREBUILT=1 BOX_QUICK=1 INSTA_UPDATE=$([ $record = yes ] && echo always || echo no) CI=true PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
while read -r exe; do
    name=\$(basename "\$exe" | sed 's/-[0-9a-f]*\$//')
    "\$exe" --test-threads=2 > /tmp/out 2>&1
    status=\$?
    grep -E '^test .* (ok|FAILED|ignored)\$' /tmp/out | sed "s/^test /test \$name: /"
    grep '^note: ' /tmp/out | sed 's/^note: /NOTE /'
    if [ \$status -eq 0 ]; then echo "PASS suite \$name"; else sed 's/^/    /' /tmp/out; echo "FAIL suite \$name: exit status \$status"; fi
done < /work/suite-tests
if [ $record = yes ]; then
    for snapshot in $top/tests/snapshots/*@v2-systemd.snap; do
        echo "SNAPSHOT-BEGIN \$(basename "\$snapshot")"; cat "\$snapshot"; echo "SNAPSHOT-END"
    done
fi
SUITE
units="$suite_root/etc/systemd/system"
# systemd would mount a tmpfs on /tmp and empty it at boot (tmp.mount, tmpfiles.d/tmp.conf),
# which would take the mirror of a checkout that lives there with it.
ln -sf /dev/null "$units/tmp.mount"
mkdir -p "$suite_root/etc/tmpfiles.d" && : > "$suite_root/etc/tmpfiles.d/tmp.conf"
systemd_units "$units" suite "The workshop's test suite under systemd" /work/suite.sh
sed -i 's/size=800m/size=2g/' "$suite_root/init"
pack "$suite_root" "$work/initramfs-suite.gz"
say "initramfs with the test suite: $(du -h "$work/initramfs-suite.gz" | cut -f1)"

# 6. Boot each: KVM when it works (it reaches our first line within seconds), else TCG.
# boot ACCEL INITRAMFS APPEND LOG FIRST_LINE_WITHIN LIMIT [MEMORY_MB [CPUS]]
boot() {
    local accel=$1 image=$2 append=$3 log=$4 first_line_within=$5 limit=$6 memory=${7:-1536} cpus=${8:-2} waited=0
    qemu-system-x86_64 -accel "$accel" -m "$memory" -smp "$cpus" -nographic -no-reboot \
        -kernel "$kernel_dir/vmlinuz" -initrd "$image" \
        -append "console=ttyS0 quiet panic=-1 rdinit=/init $append" > "$log" 2>&1 &
    local qemu=$!
    while kill -0 "$qemu" 2>/dev/null; do
        if [ "$waited" -ge "$limit" ] || { [ "$waited" -ge "$first_line_within" ] && ! grep -q VM-READY "$log"; }; then
            kill "$qemu" 2>/dev/null; wait "$qemu" 2>/dev/null || true
            return 1
        fi
        sleep 1; waited=$((waited + 1))
    done
    wait "$qemu" 2>/dev/null || true
    grep -q VM-READY "$log"
}
# results NAME LOG: print the check lines; fail unless they all passed and the checks finished.
passed=0 failed=0
results() {
    local name=$1 log=$2
    grep -q "VM-READY" "$log" || { tail -30 "$log" >&2; die "the $name VM did not boot (console: $log)"; }
    say "$name: $(tr -d '\r' < "$log" | grep -o 'VM-READY.*' | head -n1)"
    tr -d '\r' < "$log" | grep -E '^(PASS|FAIL|NOTE) ' | sed 's/^/  /'
    # A failed test binary's own output, indented under its FAIL line.
    if tr -d '\r' < "$log" | grep -q '^FAIL '; then tr -d '\r' < "$log" | grep -E '^    ' | sed 's/^/  /'; fi
    passed=$((passed + $(tr -d '\r' < "$log" | grep -c '^PASS ' || true)))
    failed=$((failed + $(tr -d '\r' < "$log" | grep -c '^FAIL ' || true)))
    grep -q "CHECKS-DONE" "$log" || { tail -20 "$log" >&2; die "the $name VM's checks did not finish (console: $log)"; }
}
if [ -w /dev/kvm ] && boot kvm "$work/initramfs.gz" "" "$work/console.log" 20 600; then
    accel=kvm
else
    accel=tcg
    boot tcg "$work/initramfs.gz" "" "$work/console.log" 120 600 || true
fi
say "accelerator: $accel"
results "busybox-init" "$work/console.log"
boot "$accel" "$work/initramfs-systemd.gz" "systemd.unit=checks.target systemd.show_status=0 systemd.firstboot=off" \
    "$work/console-systemd.log" 120 600 || true
results "systemd" "$work/console-systemd.log"
boot "$accel" "$work/initramfs-suite.gz" "systemd.unit=suite.target systemd.show_status=0 systemd.firstboot=off" \
    "$work/console-suite.log" 120 1200 3072 4 || true
# The suite runs on four CPUs (the host's run is on one): no snapshot may depend on the count.
results "test-suite" "$work/console-suite.log"
tr -d '\r' < "$work/console-suite.log" | grep -c '^test .*: .* ok$' | sed 's/^/vm-test: Rust tests passed in the systemd VM: /'
if [ $record = yes ]; then
    # Copy each recorded snapshot out of the console log, between its markers.
    tr -d '\r' < "$work/console-suite.log" | awk -v dir="$top/tests/snapshots" '
        /^SNAPSHOT-BEGIN / { file = dir "/" $2; printf "" > file; next }
        /^SNAPSHOT-END$/ { close(file); file = ""; next }
        file != "" { print >> file }'
    say "recorded: $(cd tests/snapshots && ls -- *@v2-systemd.snap | tr '\n' ' ')"
    say "--record runs the suite with INSTA_UPDATE=always: its results above are not a test"
    exit 0
fi
echo "vm: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
