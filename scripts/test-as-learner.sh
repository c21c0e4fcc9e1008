#!/usr/bin/env bash
# The README's commands as a learner who is not root runs them: an ordinary user with sudo
# rights (Debian's default sudoers, secure_path and all), Rust installed by rustup in their own
# ~/.cargo/bin, and a clone of the workshop of their own. As that user: scripts/setup.sh,
# `cargo run -p step01`, a test that builds the probe and the steps through the test runner's
# sudo, and the exercise track's first exercise, filled and checked; then nothing in their clone
# may belong to root.
#
# Run as root (scripts/test.sh does). Nothing on the host changes: the user, its sudo rights and
# its home exist only in a private mount namespace (bind mounts over /etc/passwd, /etc/group,
# /etc/shadow and /etc/sudoers, made inside it), and its home is a scratch directory removed
# afterwards. The toolchain is this machine's: rustup's directory is bind-mounted, read-only,
# into the user's home, with its proxies as the user's ~/.cargo/bin.
# Usage: scripts/test-as-learner.sh [TEST-FILTER]   (default: one lifecycle test)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
filter=${1:-sigterm_to_the_runtime_stops_the_container}

say() { echo "test-as-learner: $*"; }
die() { echo "test-as-learner: error: $1" >&2; [ $# -lt 2 ] || echo "hint: $2" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "this makes a user of its own, so it runs as root" "run it with sudo"
command -v sudo >/dev/null || die "sudo is not installed" "run scripts/setup.sh as root (it installs sudo), or apt-get install sudo"
command -v rustup >/dev/null || die "rustup is not on PATH: this test gives the learner rustup's proxies" \
    "install Rust with rustup (https://rustup.rs)"
rustup_home=$(rustup show home)
cargo_bin=$(dirname "$(command -v rustup)")

# A uid and gid nobody has.
uid=4242
while getent passwd "$uid" >/dev/null || getent group "$uid" >/dev/null; do uid=$((uid + 1)); done

work=$(mktemp -d /tmp/learner.XXXXXX)
# Removed from the host's mount namespace, where the bind mounts below never existed.
trap 'rm -rf --one-file-system "$work"' EXIT
chmod 0755 "$work"
home=$work/home
mkdir -p "$home/.rustup" "$home/.cargo/bin"

cp /etc/passwd "$work/passwd" && echo "learner:x:$uid:$uid:Learner:$home:/bin/bash" >> "$work/passwd"
cp /etc/group "$work/group" && echo "learner:x:$uid:" >> "$work/group"
cp -p /etc/shadow "$work/shadow" && echo "learner:*:20000:0:99999:7:::" >> "$work/shadow"
cat > "$work/sudoers" <<'SUDOERS'
# As Debian and Ubuntu install it, with the learner in the sudo group's place.
Defaults env_reset
Defaults mail_badpass
Defaults secure_path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
Defaults use_pty
root    ALL=(ALL:ALL) ALL
learner ALL=(ALL:ALL) NOPASSWD: ALL
SUDOERS
chmod 0440 "$work/sudoers"

# Their own clone, as `git clone` would make it, with the image that setup.sh builds.
git clone -q "$top" "$home/box"
chown -R "$uid:$uid" "$home"

say "as user learner (uid $uid), with rustup's proxies in ~/.cargo/bin and sudo"
unshare --mount --propagation private -- bash -s "$work" "$home" "$uid" "$rustup_home" "$cargo_bin" "$filter" <<'INSIDE'
set -euo pipefail
work=$1 home=$2 uid=$3 rustup_home=$4 cargo_bin=$5 filter=$6
for file in passwd group shadow sudoers; do mount --bind "$work/$file" "/etc/$file"; done
mount --bind -o ro "$rustup_home" "$home/.rustup"
mount -o remount,bind,ro "$home/.rustup"
mount --bind -o ro "$cargo_bin" "$home/.cargo/bin"
mount -o remount,bind,ro "$home/.cargo/bin"
setpriv --reuid="$uid" --regid="$uid" --clear-groups --reset-env -- \
    env HOME="$home" USER=learner LOGNAME=learner PATH="$home/.cargo/bin:/usr/local/bin:/usr/bin:/bin" \
    bash -euc '
        cd ~/box
        echo "learner\$ scripts/setup.sh"
        scripts/setup.sh
        echo "learner\$ cargo run -p step01 -- /bin/echo hello from step01"
        out=$(cargo run --quiet --locked -p step01 -- /bin/echo hello from step01)
        [ "$out" = "hello from step01" ] || { echo "test-as-learner: error: step01 printed: $out" >&2; exit 1; }
        echo "learner\$ cargo test -p box-tests --test lifecycle -- '"$filter"'"
        cargo test --quiet --locked -p box-tests --test lifecycle -- "'"$filter"'"
        echo "learner\$ scripts/exercise.sh start 01; ... fill 01; check 01"
        scripts/exercise.sh start 01 >/dev/null
        scripts/exercise.sh fill 01 >/dev/null
        out=$(scripts/exercise.sh check 01) || { echo "$out" >&2; exit 1; }
        echo "$out" | tail -n 1
        owned=$(find . -user 0 -print | head)
        if [ -n "$owned" ]; then
            echo "test-as-learner: error: files in the learner'\''s clone belong to root:" >&2
            echo "$owned" >&2
            exit 1
        fi
    '
INSIDE
say "a learner with sudo set up, ran step01 and ran the tests; their clone is all theirs"
