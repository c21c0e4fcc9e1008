#!/usr/bin/env bash
# Run every step on a stock Debian kernel with a cgroup v2 (unified) hierarchy, in QEMU, and
# check the behaviours that make sense there (tests/vm/checks.sh). This machine and CI are
# cgroup v1/hybrid hosts: this is where step 7's v2 code runs for real.
#
# Builds an initramfs with the release step binaries, the workshop image and the probe, the
# host's ip/nsenter/iptables with their libraries, and the kernel modules the steps need (from
# the linux-image package, downloaded with apt and unpacked, not installed). Boots it with KVM
# when KVM works, or else with software emulation (TCG), and parses one PASS/FAIL line per
# check. Usage: scripts/vm-test.sh   (as root; needs qemu-system-x86, see scripts/setup.sh)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
work="$top/target/vm"
mkdir -p "$work"

say() { echo "vm-test: $*"; }
die() { echo "vm-test: error: $1" >&2; [ $# -lt 2 ] || echo "hint: $2" >&2; exit 1; }

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
cargo build --quiet --release --workspace --bins
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
ln -sf /usr/sbin/xtables-nft-multi "$initrd/sbin/iptables"
rm -f "$initrd/bin/ip" "$initrd/bin/nsenter"   # the host's, not busybox's (-batch)
cp /etc/protocols /etc/services "$initrd/etc/" 2>/dev/null || true
for step in target/release/step[0-9][0-9]; do copy_with_libs "$top/$step"; cp "$step" "$initrd/work/bin/"; done
cp -a rootfs "$initrd/work/rootfs"
cp target/probe/release/box-probe "$initrd/work/rootfs/bin/box-probe"
mkdir -p "$initrd/work/layers" && cp -a layers/web "$initrd/work/layers/web"
cp tests/vm/checks.sh "$initrd/work/checks.sh"
# Kernel modules, in the order modprobe would load them.
modules_root="$kernel_dir/unpacked"
: > "$initrd/work/modules"
for module in overlay veth bridge nf_tables nft_compat nft_chain_nat xt_MASQUERADE xt_comment xt_conntrack xt_tcpudp; do
    modprobe -d "$modules_root" -S "$version" --show-depends "$module" | awk '$1 == "insmod" {print $2}' |
        while read -r path; do
            name=$(basename "$path")
            grep -qx "$name" "$initrd/work/modules" && continue
            cp "$path" "$initrd/lib/modules/$name"
            echo "$name" >> "$initrd/work/modules"
        done
done
cat > "$initrd/init" <<'INIT'
#!/bin/sh
# Stage 1: pivot_root refuses the initramfs itself as the old root, so move to a tmpfs first.
mount -t proc proc /proc
if [ ! -e /run/stage2 ]; then
    mkdir -p /newroot && mount -t tmpfs -o size=800m tmpfs /newroot
    for entry in /*; do
        case "$entry" in /newroot|/proc|/sys|/dev) continue ;; esac
        cp -a "$entry" /newroot/
    done
    mkdir -p /newroot/proc /newroot/sys /newroot/dev && touch /newroot/run/stage2
    umount /proc
    exec switch_root /newroot /init
fi
# Stage 2: the kernel's filesystems, cgroup v2 only, the modules, then the checks.
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t cgroup2 cgroup2 /sys/fs/cgroup
while read -r module; do insmod "/lib/modules/$module" 2>/dev/null; done < /work/modules
ip link set lo up
echo "VM-READY kernel $(uname -r)"
sh /work/checks.sh
echo "CHECKS-DONE"
poweroff -f
INIT
chmod +x "$initrd/init"
(cd "$initrd" && find . | bin/busybox cpio -o -H newc 2>/dev/null | gzip -1) > "$work/initramfs.gz"
say "initramfs: $(du -h "$work/initramfs.gz" | cut -f1), kernel $version"

# 4. Boot: KVM when it works (it reaches our first line within seconds), else TCG.
boot() {
    local accel=$1 first_line_within=$2 limit=$3 waited=0
    qemu-system-x86_64 -accel "$accel" -m 1536 -smp 2 -nographic -no-reboot \
        -kernel "$kernel_dir/vmlinuz" -initrd "$work/initramfs.gz" \
        -append "console=ttyS0 quiet panic=-1 rdinit=/init" > "$work/console.log" 2>&1 &
    local qemu=$!
    while kill -0 "$qemu" 2>/dev/null; do
        if [ "$waited" -ge "$limit" ] || { [ "$waited" -ge "$first_line_within" ] && ! grep -q VM-READY "$work/console.log"; }; then
            kill "$qemu" 2>/dev/null; wait "$qemu" 2>/dev/null || true
            return 1
        fi
        sleep 1; waited=$((waited + 1))
    done
    wait "$qemu" 2>/dev/null || true
    grep -q VM-READY "$work/console.log"
}
if [ -w /dev/kvm ] && boot kvm 20 600; then
    accel=kvm
else
    accel=tcg
    boot tcg 120 600 || true
fi
say "accelerator: $accel"
grep -q "VM-READY" "$work/console.log" || { tail -30 "$work/console.log" >&2; die "the VM did not boot (console: $work/console.log)"; }
say "$(tr -d '\r' < "$work/console.log" | grep -o 'VM-READY.*' | head -n1)"

# 5. The results.
tr -d '\r' < "$work/console.log" | grep -E '^(PASS|FAIL) ' | sed 's/^/  /'
passed=$(tr -d '\r' < "$work/console.log" | grep -c '^PASS ' || true)
failed=$(tr -d '\r' < "$work/console.log" | grep -c '^FAIL ' || true)
grep -q "CHECKS-DONE" "$work/console.log" || { tail -20 "$work/console.log" >&2; die "the checks did not finish (console: $work/console.log)"; }
echo "vm: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
