#!/usr/bin/env bash
# Build an optional image of a real distribution: a minimal Debian root filesystem made from
# Debian's own packages by mmdebstrap (variant minbase, about what docker's debian image holds),
# plus ps, ip and ping. Any step runs on it with `--rootfs DIR`. It is not the workshop's image:
# it has no /etc/box-image (the tests look for that one), but /etc/box-distro.
#
#   scripts/mkdistro.sh [--force] [DIR]     DIR defaults to images/debian
#
# Needs root (through sudo otherwise) and the network: it downloads about 45 MB of packages
# from the Debian mirror this host uses (MIRROR=URL to pick another, SUITE=NAME for another
# release than bookworm). Installs mmdebstrap and debian-archive-keyring if they are missing.
# Runs again in no time: an image that is already built is left alone (--force rebuilds it).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
suite=${SUITE:-bookworm}
# A few tools the chapters use, which minbase lacks: ps and top (procps), ip (iproute2), ping.
packages=(procps iproute2 iputils-ping)
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

say() { echo "mkdistro: $*"; }
die() { echo "mkdistro: error: $1" >&2; [ $# -lt 2 ] || echo "hint: $2" >&2; exit 1; }

force=0 dir=''
while [ $# -gt 0 ]; do
    case "$1" in
        --force) force=1 ;;
        -h|--help) sed -n '2,12s/^# \{0,1\}//p' "$0"; exit 0 ;;
        -*) die "unknown option '$1'" "scripts/mkdistro.sh [--force] [DIR]" ;;
        *) [ -z "$dir" ] || die "more than one directory given" "scripts/mkdistro.sh [--force] [DIR]"
           dir=$1 ;;
    esac
    shift
done
# Absolute and without "..", as /proc/self/mountinfo names mount points (see mounts_under).
dir=$(realpath -m "${dir:-$top/images/debian}")
marker="$dir/etc/box-distro"

# Already built: say what it is and stop.
if [ -f "$marker" ] && [ "$force" = 0 ]; then
    say "$dir is already built ($(sed -n 2p "$marker")); --force rebuilds it"
    exit 0
fi
# Never empty a directory this script did not fill: DIR may be a typo for something precious.
if [ -e "$dir" ] && [ ! -f "$marker" ] && [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then
    die "$dir is not empty, and not an image this script built" \
        "give another directory, or empty this one yourself"
fi

# Root, for two reasons: the files of the image must belong to root and the system users, as
# in any Debian system, and mmdebstrap mounts /proc and /sys in it while the packages install.
# (mmdebstrap's unshare mode works as a normal user, but then the files of a directory image
# belong to subordinate user ids, not to root, and the steps run the image as the real root.)
as_root=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "needs root, and sudo is not installed" "run it as root"
    as_root=(sudo)
fi

# What builds the image: mmdebstrap, and Debian's signing keys (an Ubuntu host lacks them).
missing=()
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
[ -f "$keyring" ] || missing+=(debian-archive-keyring)
if [ ${#missing[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || die "missing: ${missing[*]}, and this is not a Debian/Ubuntu system" \
        "install mmdebstrap and Debian's archive keyring with your package manager, or use an image from docker (chapter 8)"
    say "installing ${missing[*]}"
    "${as_root[@]}" apt-get -o DPkg::Lock::Timeout=120 update -qq
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 \
        install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The mirror: the host's own Debian mirror if it has one (a nearby mirror or a proxy the
# machine already uses), else Debian's redirector. An Ubuntu host's mirror has no Debian.
host_mirror() {
    local files=() file
    for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -f "$file" ] && files+=("$file")
    done
    [ ${#files[@]} -gt 0 ] || return 0
    # One-line entries ("deb [options] URI suite ...") and deb822 stanzas ("URIs: URI ...").
    sed -n -E -e 's/^[[:space:]]*deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+).*/\2/p' \
        -e 's/^URIs:[[:space:]]*//p' "${files[@]}" | tr -s '[:space:]' '\n' \
        | grep -m1 -E '^https?://[^[:space:]]+/debian/?$' | sed 's#/$##' || true
}
mirror=${MIRROR:-$(host_mirror)}
mirror=${mirror:-http://deb.debian.org/debian}
mirror=${mirror%/}
# apt in the image needs the certificate authorities to check an https mirror.
case "$mirror" in https://*) packages+=(ca-certificates) ;; esac

# The network, checked first, so that its absence is one clear line, not mmdebstrap's pages.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
helper=/usr/lib/apt/apt-helper
if [ -x "$helper" ] && ! "${as_root[@]}" "$helper" -o APT::Sandbox::User=root -o Acquire::Retries=0 \
        download-file "$mirror/dists/$suite/Release" "$tmp/Release" >"$tmp/check" 2>&1; then
    # apt's own words, less the URL: "Could not resolve 'deb.debian.org'", "404  Not Found".
    cause=$(sed -n -E 's/^E: Failed to fetch [^ ]+ +//p' "$tmp/check" | head -n1)
    case "$cause" in
        *"Not Found"*) die "the mirror $mirror has no release $suite: $cause" \
                           "check SUITE (a Debian release name: bookworm, trixie) and MIRROR" ;;
        *) die "cannot reach the Debian mirror $mirror: ${cause:-no answer}" \
               "this needs the network; check it, or set MIRROR to a Debian mirror you can reach" ;;
    esac
fi

# Anything mounted under the image (a build killed before mmdebstrap unmounted /proc and /sys)
# must never be removed with it: rm would walk into the host's /proc, /sys or /dev.
mounts_under() {
    local mnt
    while read -r mnt; do
        mnt=$(printf '%b' "$mnt")
        case "$mnt" in "$1"|"$1"/*) echo "$mnt" ;; esac
    done < <(awk '{print $5}' /proc/self/mountinfo)
}
remove_image() {
    local left
    left=$(mounts_under "$dir")
    [ -z "$left" ] || die "still mounted under $dir, so it was not removed: $(echo "$left" | tr '\n' ' ')" \
        "unmount each one (sudo umount -l PATH), remove $dir, and run this again"
    "${as_root[@]}" rm -rf --one-file-system "$dir"
}

if [ "$force" = 1 ] && [ -f "$marker" ]; then
    say "removing the old image in $dir"
    remove_image
fi

arch=$(dpkg --print-architecture 2>/dev/null || uname -m)
what="Debian $suite ($arch), minbase + ${packages[*]}, from $mirror"
say "building $dir: $what"
mkdir -p "$(dirname "$dir")" 2>/dev/null || "${as_root[@]}" mkdir -p "$(dirname "$dir")"
# A build that fails or is interrupted leaves no half-made image behind.
built=0
trap 'rm -rf "$tmp"; if [ "$built" = 0 ] && [ -d "$dir" ]; then remove_image; fi' EXIT
# --dpkgopt: no documentation, manual pages or translations, as in docker's slim images (this
# stays in the image, for what apt installs in it later). The sources line names the keyring
# itself, so the same command works on an Ubuntu host, whose apt does not trust Debian's keys.
include=$(IFS=,; echo "${packages[*]}")
# Merged /usr (/bin a link to usr/bin, as Debian 12 has it) made by mmdebstrap's own hook, as
# debootstrap makes it: otherwise apt satisfies it with the usrmerge package, which brings all
# of perl along (50 MB). "maybe-": only for releases that have merged /usr.
hooks=()
for hook in /usr/share/mmdebstrap/hooks/maybe-merged-usr /usr/share/mmdebstrap/hooks/merged-usr; do
    if [ -d "$hook" ]; then hooks=(--hook-dir="$hook"); break; fi
done
# Only mmdebstrap's own progress lines are shown; all of its output goes to a log, whose end
# is shown if it fails. tee and grep ignore Ctrl-C: mmdebstrap handles it, unmounts and says
# so, and must not die of a broken pipe before it has unmounted.
log="$tmp/mmdebstrap.log"
interrupted=0
trap 'interrupted=1' INT TERM
if ! "${as_root[@]}" mmdebstrap --mode=root --variant=minbase --include="$include" "${hooks[@]}" \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --skip=check/signed-by \
    "$suite" "$dir" "deb [signed-by=$keyring] $mirror $suite main" 2>&1 \
    | (trap '' INT TERM; tee "$log") | (trap '' INT TERM; grep --line-buffered -E '^(I|W|E): ' | cut -c1-200); then
    [ "$interrupted" = 0 ] || die "interrupted: the half-made image is removed"
    echo "mkdistro: the end of mmdebstrap's output:" >&2
    tail -n 15 "$log" >&2
    die "mmdebstrap failed" \
        "a download error means the network or the mirror; run again, or set MIRROR to another mirror"
fi
trap - INT TERM

# What makes it an image rather than a copy of this host. mmdebstrap copies the host's
# /etc/hostname and /etc/resolv.conf in, and makes device nodes in /dev: an image holds none
# of these. The runtime gives each container its hostname, its name servers (step 10 writes
# resolv.conf) and its devices (step 5 mounts a /dev of its own). /proc, /sys and /dev stay, as
# empty mount points, as in the workshop's image.
if [ -n "$(mounts_under "$dir")" ]; then
    built=1 # not to be removed by the exit trap either
    die "mmdebstrap left mounts under $dir: $(mounts_under "$dir" | tr '\n' ' ')" \
        "unmount each one (sudo umount -l PATH), remove $dir, and run this again"
fi
# shellcheck disable=SC2016 # the script is for sh -c, which expands it
"${as_root[@]}" sh -eu -c '
    dir=$1
    echo box > "$dir/etc/hostname"
    chmod 0644 "$dir/etc/hostname"
    printf "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" > "$dir/etc/hosts"
    rm -f "$dir/etc/resolv.conf"
    find "$dir/dev" -xdev -mindepth 1 -delete
    mkdir -p "$dir/proc" "$dir/sys" "$dir/dev" "$dir/tmp"
    chmod 1777 "$dir/tmp"
    printf "Debian image for the box workshop, built by scripts/mkdistro.sh\n%s\n" "$2" > "$dir/etc/box-distro"
' mkdistro "$dir" "$what, $(date -u +%F)"
built=1

say "done in ${SECONDS}s: $("${as_root[@]}" du -sh "$dir" | cut -f1) in $dir"
say "try it: cargo run -p step08 -- --rootfs ${dir#"$PWD"/} /bin/bash"
