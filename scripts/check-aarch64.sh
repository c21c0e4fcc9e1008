#!/usr/bin/env bash
# Type-check every crate of the workspace (the ten steps, the tests and the probe) for 64-bit Arm
# Linux, aarch64-unknown-linux-gnu, which learners on Apple Silicon VMs and Raspberry Pis build
# for: an item that the libc crate has on x86_64 only (libc::SYS_iopl, say) fails here instead of
# on their machine. `cargo check` links nothing and runs nothing for the target, so it needs no Arm
# machine, emulator or cross linker: only a compiler with the standard library for aarch64, taken
# from the first of
#
#   1. this machine's own, when it is an aarch64 machine;
#   2. rustup's, when it has the target (`rustup target add aarch64-unknown-linux-gnu`), or when
#      this is not root and rustup is there: then it adds the target (a download, once);
#   3. Debian's: the compiler (rustc-web on Debian 12, from bookworm-security) with its standard
#      library for this machine and for arm64 (libstd-rust-web-dev is a multiarch package), and
#      the libraries it loads that this machine lacks (LLVM), downloaded with apt and unpacked in
#      target/aarch64-check/, never installed. apt reads package lists for both architectures
#      kept there too: the machine's own lists and dpkg's architectures are left as they are.
#      About 120 MB the first time (560 MB unpacked), nothing after that: delete
#      target/aarch64-check for a newer compiler.
#
# The workspace's dependencies build on this machine as usual (crates.io; their build scripts and
# proc macros run here, which needs cc). Fails on any compile error, listing each one once.
#
# Usage: scripts/check-aarch64.sh            (the third way as root, for apt-get update)
#        scripts/check-aarch64.sh --debian   the third way even where one of the others would do
set -euo pipefail
debian=no
[ "${1:-}" = --debian ] && debian=yes
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
target=aarch64-unknown-linux-gnu
work="$top/target/aarch64-check"

say() { echo "check-aarch64: $*"; }
die() { echo "check-aarch64: error: $1" >&2; [ $# -lt 2 ] || echo "hint: $2" >&2; exit 1; }
# download_debs, runtime_closure: Debian packages downloaded with apt, once, not installed.
. scripts/debs.sh

command -v cargo >/dev/null || die "cargo is not installed" "install Rust with rustup (https://rustup.rs)"
command -v cc >/dev/null || die "cc is missing: the dependencies' build scripts are linked for this machine" \
    "apt-get install gcc (scripts/setup.sh does)"

# has_std RUSTC: whether RUSTC has the standard library for the target.
has_std() { compgen -G "$("$@" --print target-libdir --target "$target" 2>/dev/null)/libcore-*" >/dev/null; }

cargo_env=("CARGO_TARGET_DIR=$work/build")
if [ $debian = no ] && [ "$(uname -m)" = aarch64 ]; then
    how="this aarch64 machine's compiler"
elif [ $debian = no ] && has_std "${RUSTC:-rustc}"; then
    how="${RUSTC:-rustc} and its $target standard library"
elif [ $debian = no ] && [ "$(id -u)" -ne 0 ] && command -v rustup >/dev/null; then
    # A learner's machine: rustup downloads the target's standard library, no root needed.
    say "adding rustup's $target standard library (once)"
    rustup target add "$target" >/dev/null
    how="rustup's $target standard library"
else
    { command -v apt-get && command -v dpkg-deb; } >/dev/null ||
        die "no compiler here has the $target standard library, and this is not a Debian/Ubuntu system" \
            "rustup target add $target"
    native=$(dpkg --print-architecture)
    # Package lists of our own, for this machine's architecture and arm64; no dpkg status: nothing
    # here is installed, and the machine's apt state is not read or changed.
    apt_options=(-o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache=$work/apt/cache"
        -o "Dir::State::status=/dev/null" -o "APT::Architectures::=$native" -o "APT::Architectures::=arm64"
        -o "Acquire::Languages=none" -o "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false"
        -o "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false"
        -o "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false"
        -o "Acquire::IndexTargets::deb::DEP-11-icons-hidpi::DefaultEnabled=false")
    # The unpacked compiler, once: target/aarch64-check/rust-VERSION/.complete.
    root=$( (ls -d "$work"/rust-*/.complete 2>/dev/null || true) | sort -V | tail -n1 | xargs -r dirname)
    if [ -z "$root" ]; then
        say "reading Debian's package lists for $native and arm64"
        [ "$(id -u)" -eq 0 ] || die "downloading Debian's Rust compiler needs root (for apt-get update)" \
            "run this as root once, or: rustup target add $target"
        mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial"
        apt-get "${apt_options[@]}" update -qq >"$work/apt/update.log" 2>&1 ||
            { tail -5 "$work/apt/update.log" >&2; die "apt-get update failed (log: $work/apt/update.log)" "check that apt reaches Debian's archive"; }
        candidate() { apt-cache "${apt_options[@]}" policy "$1" 2>/dev/null | sed -n 's/ *Candidate: //p'; }
        # The compiler and its standard library, newest first, at least the workspace's rust-version.
        minimum=$(sed -n 's/^rust-version *= *"\(.*\)"/\1/p' Cargo.toml)
        compiler=""
        for pair in rustc-web:libstd-rust-web-dev rustc:libstd-rust-dev; do
            version=$(candidate "${pair%%:*}")
            case "$version" in ""|"(none)") continue ;; esac
            dpkg --compare-versions "$version" ge "$minimum" || continue
            [ "$(candidate "${pair#*:}:arm64")" = "$version" ] || continue
            compiler=${pair%%:*} std=${pair#*:}
            break
        done
        [ -n "$compiler" ] || die "apt knows no Rust compiler >= $minimum with an arm64 standard library (libstd-rust-web-dev:arm64)" \
            "on Debian 12 keep bookworm-security in apt's sources; elsewhere: rustup target add $target"
        # The compiler's own packages always (one version, with the standard library for both
        # architectures); the libraries they load only where this machine lacks them.
        packages=("$compiler=$version" "$std=$version" "$std:arm64=$version")
        for package in $(runtime_closure "$std"); do
            case "$package" in
            "$std") ;;
            libstd-rust*) packages+=("$package=$version") ;;
            *) dpkg-query -W -f '${db:Status-Status}' "$package" 2>/dev/null | grep -qx installed || packages+=("$package") ;;
            esac
        done
        debs="$work/debs-$version"
        download_debs "$debs" "Debian's Rust $version: ${packages[*]}" "${packages[@]}"
        say "downloaded $(du -ch "$debs"/*.deb | tail -n1 | cut -f1) in $(ls "$debs"/*.deb | wc -l) packages; unpacking"
        root="$work/rust-$version"
        rm -rf "$root" && mkdir -p "$root"
        for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$root"; done
        touch "$root/.complete"
        # Only the unpacked compiler is kept: an update needs new package lists anyway.
        find "$work" -mindepth 1 -maxdepth 1 \( -name 'rust-*' -o -name 'debs-*' -o -name apt \) ! -path "$root" \
            -exec rm -rf {} +
    fi
    # Its libraries, found by the compiler through a wrapper rather than set for all of cargo.
    driver=$(ls "$root"/usr/lib/*/librustc_driver-*.so 2>/dev/null | head -n1) ||
        die "$root has no librustc_driver" "delete $work and run this again"
    multiarch=$(basename "$(dirname "$driver")")
    cat > "$work/rustc" <<WRAPPER
#!/bin/sh
LD_LIBRARY_PATH="$root/usr/lib/$multiarch:$root/lib/$multiarch\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$root/usr/bin/rustc" "\$@"
WRAPPER
    chmod +x "$work/rustc"
    "$work/rustc" -V >/dev/null || die "Debian's compiler in $root does not start here (above: why)" \
        "it is built for Debian 12 (glibc 2.36 or later); elsewhere: rustup target add $target"
    has_std "$work/rustc" || die "Debian's compiler in $root has no $target standard library" "delete $work and run this again"
    cargo_env+=("RUSTC=$work/rustc")
    how="Debian's $("$work/rustc" -V | cut -d' ' -f1-2) ($root)"
fi

say "type-checking every crate for $target with $how"
log="$work/check.log"
mkdir -p "$work"
status=0
# Each message once: a crate's binary and its tests report the same errors.
env "${cargo_env[@]}" cargo check --quiet --workspace --exclude 'exercise*' --all-targets --locked \
    --keep-going --target "$target" --message-format=short 2>&1 | awk '!seen[$0]++' | tee "$log" || status=$?
if [ "$status" -ne 0 ]; then
    # What the libc crate lacks for the target, and where it is used.
    libc_errors=$(sed -n -E 's/^([^:]+):[0-9]+:[0-9]+: error.*(cannot find [a-z ]+ `([A-Za-z0-9_]+)` in crate `libc`|unresolved import `libc::([A-Za-z0-9_]+)`).*/\1 \3\4/p' "$log")
    if [ -n "$libc_errors" ]; then
        names=$(cut -d' ' -f2 <<<"$libc_errors" | sort -u | tr '\n' ' ')
        files=$(cut -d' ' -f1 <<<"$libc_errors" | sort -u | tr '\n' ' ')
        die "the libc crate has no ${names% } for $target, used in ${files% } (errors above)" \
            "these are x86_64-only: put #[cfg(target_arch = \"x86_64\")] on what uses them, then run this again"
    fi
    die "the workspace does not compile for $target (errors above)" "see which target_arch each item needs"
fi
say "every crate type-checks for $target"
