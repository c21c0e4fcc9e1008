#!/usr/bin/env bash
# One command to set up a Debian or Ubuntu machine for the workshop: install what is missing,
# build the image in rootfs/, and check the host (root, kernel, cgroups, overlayfs).
# Idempotent: the second run installs nothing and only re-checks.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

say() { echo "setup: $*"; }
die() { echo "setup: error: $1" >&2; [ $# -lt 2 ] || echo "hint: $2" >&2; exit 1; }

[ "$(uname -s)" = Linux ] || die "containers are a Linux kernel feature; this is $(uname -s)" \
    "run the workshop in a Linux VM: see book/src/appendix-setup.md"

as_root=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "not root, and sudo is not installed" "run this as root, or install sudo"
    as_root=(sudo)
fi

# What the steps and tests need, as "command-or-file package" pairs.
missing=()
static_busybox() {
    local bb
    for bb in /bin/busybox /usr/bin/busybox; do
        [ -x "$bb" ] || continue
        case "$(ldd "$bb" 2>&1 || true)" in *"not a dynamic executable"*|*"statically linked"*) return 0 ;; esac
    done
    return 1
}
static_busybox || missing+=(busybox-static)
command -v ip >/dev/null || missing+=(iproute2)
command -v iptables >/dev/null || missing+=(iptables)
command -v cc >/dev/null || missing+=(gcc)
# The tests' probe is linked statically, which needs libc.a.
if ! { command -v cc >/dev/null && [ -f "$(cc -print-file-name=libc.a)" ]; }; then missing+=(libc6-dev); fi
command -v mount >/dev/null || missing+=(mount)
command -v ps >/dev/null || missing+=(procps)
# For scripts/test-as-learner.sh, which runs the tests as a user who has sudo, as learners do.
command -v sudo >/dev/null || missing+=(sudo)
# For scripts/build-book.sh, which draws the book's diagrams with Graphviz.
command -v dot >/dev/null || missing+=(graphviz)
# For scripts/vm-test.sh, which runs every step on a cgroup v2 kernel in QEMU.
if [ "$(uname -m)" = x86_64 ]; then
    command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
    command -v depmod >/dev/null || missing+=(kmod)
fi
# For scripts/test.sh's book check, which opens every page in headless Chromium: in CI, or when
# BOX_CHECK_BOOK=1 asks (about 360 MB, which a learner does not need), where apt has Chromium
# (Debian; Ubuntu's chromium-browser installs a snap). Elsewhere test.sh skips the check.
if command -v apt-get >/dev/null && { [ -n "${CI:-}" ] || [ "${BOX_CHECK_BOOK:-}" = 1 ]; }; then
    case "$(. /etc/os-release 2>/dev/null; echo " ${ID:-} ${ID_LIKE:-} ")" in
        *" ubuntu "*) ;;
        *)
            command -v chromium >/dev/null || missing+=(chromium)
            command -v chromedriver >/dev/null || missing+=(chromium-driver)
            # Debian's Python, which is the one that sees Debian's python3-selenium.
            /usr/bin/python3 -c 'import selenium' 2>/dev/null || missing+=(python3-selenium)
            ;;
    esac
fi

if [ ${#missing[@]} -gt 0 ]; then
    if command -v apt-get >/dev/null; then
        say "installing ${missing[*]}"
        "${as_root[@]}" apt-get update -qq
        "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        die "missing: ${missing[*]}, and this is not a Debian/Ubuntu system" \
            "install the equivalent packages with your distribution's package manager, then run this again"
    fi
fi

command -v cargo >/dev/null || die "cargo is not installed" \
    "install Rust with rustup (https://rustup.rs), open a new shell, and run scripts/setup.sh again"

scripts/mkrootfs.sh

# The host, as the steps will find it: what each step needs, checked.
say "checking the host (scripts/doctor)"
"${as_root[@]}" scripts/doctor || die "this machine cannot run every step (the FAIL lines above say why)" \
    "fix what they name and run scripts/setup.sh again, or see book/src/appendix-troubleshooting.md"
say "ready: try \`cargo run -p step01\`, and \`scripts/test.sh\` to run the tests"
