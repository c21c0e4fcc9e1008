#!/usr/bin/env bash
# Remove everything the workshop's steps ever left on this host: all of it is named with the
# prefix "box-" (state directories /run/box-ID, scratch areas /var/tmp/box-ID, cgroups box-ID,
# links box-ID, network namespaces, firewall rules commented box-… and the chain box-forward they
# live in). A container whose runtime is still alive is left alone.
#   scripts/cleanup.sh          remove leftovers, saying what was removed
#   scripts/cleanup.sh --kept   also remove the scratch areas kept on purpose with --keep
#   scripts/cleanup.sh --check  only list them; exit 1 if there are any (CI's final check)
set -uo pipefail
PREFIX=box-
check=0 kept=0
case "${1:-}" in
    --check) check=1 ;;
    --kept) kept=1 ;;
    '') ;;
    *) echo "usage: scripts/cleanup.sh [--check | --kept]" >&2; exit 125 ;;
esac
if [ "$(id -u)" -ne 0 ]; then
    if [ "$check" = 0 ] && command -v sudo >/dev/null; then exec sudo "$0" "$@"; fi
    echo "cleanup: error: needs root to see and remove mounts, cgroups and links" >&2
    echo "hint: run it with sudo" >&2
    exit 125
fi

found=0
# Say what is left; in clean-up mode, also remove it. Usage: act "what" command...
act() {
    local what=$1; shift
    found=1
    if [ "$check" = 1 ]; then
        echo "left behind: $what"
    elif "$@" 2>/dev/null; then
        echo "removed: $what"
    else
        echo "cleanup: could not remove $what" >&2
    fi
}

# A container is alive while its runtime is: /run/box-ID/runtime.pid holds the runtime's pid
# and the time the kernel started it (field 22 of /proc/PID/stat), so that a pid reused by
# another process is not taken for the runtime. A record is made whole under the name
# box-ID.new-PID and then renamed, so one without a pid is a runtime's that died removing it.
# A resource belongs to container ID when it is named box-ID or box-ID-something.
started() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    # shellcheck disable=SC2086 # the fields after the command name, split on purpose
    set -- ${stat##*) }
    echo "${20}"
}
live_ids=()
for state in /run/$PREFIX*; do
    [ -d "$state" ] && [ ! -L "$state" ] || continue
    name=${state##*/}
    case "$name" in
        *.new-*) kill -0 "${name##*.new-}" 2>/dev/null && live_ids+=("$name"); continue ;;
    esac
    pid='' start=''
    [ -f "$state/runtime.pid" ] && read -r pid start < "$state/runtime.pid"
    if [ -n "$pid" ] && [ -n "$start" ]; then
        [ "$(started "$pid")" = "$start" ] && live_ids+=("$name")
    elif [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        live_ids+=("$name")
    fi
done
alive() {
    local name=${1##*/} id
    for id in "${live_ids[@]}"; do
        [ "$name" = "$id" ] || [ "${name#"$id"-}" != "$name" ] && return 0
    done
    return 1
}

# Mounts, deepest first.
while read -r mnt; do
    mnt=$(printf '%b' "$mnt")
    alive "$(echo "$mnt" | grep -oE "$PREFIX[^/]+" | head -n1)" && continue
    act "mount $mnt" umount -l "$mnt"
done < <(awk '{print $5}' /proc/self/mountinfo | grep -E "/$PREFIX[^/]*" | sort -r)

# Network namespaces and links.
for ns in /run/netns/$PREFIX*; do
    [ -e "$ns" ] || continue
    alive "$ns" && continue
    act "network namespace ${ns##*/}" ip netns delete "${ns##*/}"
done
# The bridge (step 10) belongs to every container on it: it is in use while a link is attached
# to it, as step 10 itself decides, and it is the workshop's if step 10 made it (its alias,
# which also keeps the host's old ip_forward; a bridge without one is a runtime's killed
# between making it and naming it, before it changed ip_forward).
bridge=/sys/class/net/${PREFIX}br0
bridge_in_use() { [ -n "$(ls -A "$bridge/brif" 2>/dev/null)" ]; }
ours() { case "$(cat "$bridge/ifalias" 2>/dev/null)" in "box workshop bridge"*|"") return 0 ;; esac; return 1; }
if command -v ip >/dev/null; then
    # The containers' links first: a dead container's link may still be attached to the bridge.
    for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep "^$PREFIX"); do
        [ "$link" = "${PREFIX}br0" ] && continue
        alive "$link" && continue
        act "link $link" ip link delete "$link"
    done
    if [ -e "$bridge" ] && ours && ! bridge_in_use; then
        # Put ip_forward back first, as step 10 does: to 0 only if the bridge switched it on and
        # it is still on.
        if [ "$check" = 0 ]; then
            was=$(sed -n 's/.*ip_forward was \([01]\).*/\1/p' "$bridge/ifalias" 2>/dev/null)
            if [ "$was" = 0 ] && [ "$(cat /proc/sys/net/ipv4/ip_forward)" = 1 ]; then
                echo 0 > /proc/sys/net/ipv4/ip_forward && echo "restored: net.ipv4.ip_forward = 0"
            fi
        fi
        act "link ${PREFIX}br0" ip link delete "${PREFIX}br0"
    fi
fi

# Firewall rules the steps tagged with a "box-" comment (the bridge's stay while it is in use),
# then the chains of the workshop's own (box-forward, which the top of FORWARD jumps to), which
# belong to the bridge too.
for tool in iptables ip6tables; do
    command -v "$tool" >/dev/null || continue
    for table in nat filter; do
        while read -r rule; do
            case "$rule" in *"--comment ${PREFIX}br0 "*|*"--comment \"${PREFIX}br0\""*) bridge_in_use && continue ;; esac
            act "$tool -t $table rule: $rule" sh -c "$tool -t $table $(echo "$rule" | sed 's/^-A /-D /')"
        done < <("$tool" -t "$table" -S 2>/dev/null | grep -- "--comment \"\?$PREFIX")
        while read -r chain; do
            bridge_in_use && continue
            act "$tool -t $table chain: $chain" sh -c "$tool -t $table -F $chain && $tool -t $table -X $chain"
        done < <("$tool" -t "$table" -S 2>/dev/null | sed -n "s/^-N \(${PREFIX}[^ ]*\)\$/\1/p")
    done
done

# Cgroups, deepest first: kill what is still inside, then remove the directory.
remove_cgroup() {
    if [ -f "$1/cgroup.procs" ]; then
        while read -r pid; do kill -9 "$pid" 2>/dev/null; done < "$1/cgroup.procs"
    fi
    # The kernel needs a moment to let go of processes that were just killed.
    for _ in 1 2 3 4 5 6 7 8 9 10; do rmdir "$1" 2>/dev/null && return 0; sleep 0.1; done
    return 1
}
while read -r cg; do
    alive "$cg" && continue
    act "cgroup $cg" remove_cgroup "$cg"
done < <(find /sys/fs/cgroup -mindepth 1 -type d -name "$PREFIX*" 2>/dev/null | sort -r)

# State and scratch directories, and subnet claims (symlinks to a state directory). A scratch
# area kept on purpose (`--keep`, marked `kept`) stays unless --kept asks for it too.
for dir in /run/$PREFIX* /var/tmp/$PREFIX*; do
    [ -e "$dir" ] || [ -L "$dir" ] || continue
    if [ -L "$dir" ] && [ -e "$dir" ]; then
        alive "$(readlink "$dir")" && continue
    fi
    alive "$dir" && continue
    if [ -e "$dir/kept" ] && [ "$kept" = 0 ]; then
        [ "$check" = 1 ] || rm -rf "$dir/work" "$dir/merged" 2>/dev/null
        echo "cleanup: kept on purpose (--keep): $dir; scripts/cleanup.sh --kept removes it too"
        continue
    fi
    act "directory $dir" rm -rf "$dir"
done

if [ "$found" = 0 ]; then
    echo "cleanup: nothing left behind by the workshop"
elif [ "$check" = 1 ]; then
    echo "hint: scripts/cleanup.sh removes these; then find the code path that leaked them" >&2
    exit 1
fi
exit 0
