#!/usr/bin/env bash
# Measurements, not tests: how long a container that runs /bin/true takes from start to end in
# each step, next to the floor (`unshare … chroot`: the same namespaces and nothing else) and two
# real runtimes, crun and runc, all on the workshop's image; the peak memory of each; the size of
# the step binaries. hyperfine times each group in one run, so the rows of a group are measured
# alike: the group without a network namespace, and the group with one. The results go to
# book/src/bench/bench.md, which Appendix D includes; the issue's targets are printed as ratios.
# Run as root on an idle machine where nothing else uses the workshop (about a minute, after the
# build); numbers vary from machine to machine.
#   sudo scripts/bench.sh [RUNS]        (default 50 timed runs per command)
# shellcheck disable=SC2016 # backquotes in single quotes are Markdown's, for the table
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
runs=${1:-50}
rss_runs=5
out=book/src/bench/bench.md

say() { echo "bench: $*"; }
die() { echo "bench: error: $1" >&2; [ $# -lt 2 ] || echo "hint: $2" >&2; exit 1; }

case "$runs" in '' | *[!0-9]* | 0) die "RUNS must be a whole number above 0, not '$runs'" "usage: sudo scripts/bench.sh [RUNS]" ;; esac
[ "$(id -u)" -eq 0 ] || die "the benchmark needs root: every step does" "run it with sudo"

# What the benchmark runs, as "command package" pairs; installed when missing, as setup.sh does.
missing=()
for need in hyperfine:hyperfine /usr/bin/time:time crun:crun runc:runc jq:jq ip:iproute2 \
    iptables:iptables nsenter:util-linux; do
    command -v "${need%%:*}" >/dev/null || missing+=("${need#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || die "missing: ${missing[*]}, and this is not a Debian/Ubuntu system" \
        "install them with your distribution's package manager"
    say "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The image and release builds. Under sudo, as the user who asked: root often has no cargo, and
# a rootfs/ or target/ owned by root would get in the learner's way afterwards.
as_user() {
    if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
        local home
        home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
        runuser -u "$SUDO_USER" -- env PATH="$home/.cargo/bin:$PATH" HOME="$home" "$@"
    else
        "$@"
    fi
}
as_user scripts/mkrootfs.sh
packages=()
for n in 01 02 03 04 05 06 07 08 09 10; do packages+=(-p "step$n"); done
as_user sh -c 'command -v cargo >/dev/null' ||
    die "cargo is not installed${SUDO_USER:+ for $SUDO_USER}" "install Rust with rustup (https://rustup.rs)"
as_user cargo build --quiet --release --locked "${packages[@]}"
bin=${CARGO_TARGET_DIR:-target}/release

# A host the workshop already uses would skew the numbers, and could not be checked afterwards.
scripts/cleanup.sh --check >/dev/null ||
    die "the workshop left things behind on this host (scripts/cleanup.sh --check lists them)" \
        "run scripts/cleanup.sh, then the benchmark again"
for state in /run/box-*; do
    if [ -d "$state" ] && [ ! -L "$state" ]; then
        die "a workshop container is running ($state): it would disturb the benchmark, and be disturbed" \
            "wait for it to end, then run the benchmark again"
    fi
done
[ -z "$(ls -A /sys/class/net/box-br0/brif 2>/dev/null)" ] ||
    die "a container is on the workshop's bridge: step 10 cannot be measured alone on it" \
        "stop the workshop's containers first"

# Everything the benchmark makes lives in one directory, named like a container's state
# (/run/box-bench-PID, with its runtime.pid, made whole then renamed), so scripts/cleanup.sh leaves
# it alone while the benchmark runs and removes it if the benchmark is killed. crun's and runc's
# containers are named box-bench-PID-…, and their state is kept here (--root), not in /run/crun.
id=box-bench-$$
scratch=/run/$id
holder_pid=$scratch/holder.pid
veth_ns=''
finish() {
    local status=$?
    trap - EXIT INT TERM
    set +e
    [ -x "$scratch/holder" ] && "$scratch/holder" down
    if [ -n "$veth_ns" ]; then kill "$veth_ns" 2>/dev/null; wait "$veth_ns" 2>/dev/null; fi
    for runtime in crun runc; do
        for state in "$scratch/state-$runtime"/*; do
            [ -e "$state" ] || continue
            say "removing $runtime's container ${state##*/}, left by an interrupted run"
            "$runtime" --root "$scratch/state-$runtime" delete --force "${state##*/}" 2>/dev/null || true
        done
    done
    ip -o link show | grep -o "box-b$$-[0-9]*" | sort -u | while read -r link; do ip link delete "$link"; done
    rm -rf "$scratch" "$scratch.new-$$"
    if [ -n "${cgroup:-}" ]; then rmdir "$cgroup" "$cgroup-holder" 2>/dev/null || true; fi
    if ! scripts/cleanup.sh --check; then
        echo "bench: error: the benchmark left the above on the host" >&2
        status=1
    fi
    exit "$status"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir "$scratch.new-$$"
# shellcheck disable=SC2046 # the fields of /proc/PID/stat after the command name, as cleanup.sh reads them
set -- $(sed 's/^.*) //' /proc/$$/stat)
echo "$$ ${20}" > "$scratch.new-$$/runtime.pid"
mv "$scratch.new-$$" "$scratch"

# On cgroup v2, step 7 switches controllers on for its containers only from a cgroup it is alone
# in (the no-internal-processes rule), so every command first moves into an empty cgroup of the
# benchmark's (one write, in every row's time), and the container that holds the bridge into
# another. v1 and hybrid hosts need none of this.
enter='' enter_holder=''
cgroup=''
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    cgroup=/sys/fs/cgroup/$id
    mkdir "$cgroup" "$cgroup-holder"
    enter="echo \$\$ > $cgroup/cgroup.procs && "
    enter_holder="echo \$\$ > $cgroup-holder/cgroup.procs && "
fi

# The OCI bundles for crun and runc: runc's default spec (the same namespaces as step 10,
# without a cgroup namespace), on a copy of the image, running /bin/true without a terminal;
# one bundle keeps the spec's network namespace, one drops it.
cp -a rootfs "$scratch/rootfs"
(cd "$scratch" && runc spec)
for bundle in net nonet; do
    mkdir "$scratch/$bundle"
    filter='.process.terminal = false | .process.args = ["/bin/true"] | .root.path = $root'
    [ "$bundle" = nonet ] && filter+=' | .linux.namespaces |= map(select(.type != "network"))'
    jq --arg root "$scratch/rootfs" "$filter" "$scratch/config.json" > "$scratch/$bundle/config.json"
done

# Run a command once as hyperfine will, quietly; if it fails, print why (the last line it
# printed, or its exit status) in a form a Markdown table can hold.
run_once() {
    local why status=0
    why=$(sh -c "$enter exec $1" </dev/null 2>&1 >/dev/null) || status=$?
    [ "$status" -eq 0 ] && return 0
    why=$(echo "$why" | tail -n1)
    echo "could not run here: ${why:-exit status $status}" | sed 's/|/\\|/g'
    return 1
}

# How this host lets a runtime run: plainly, or (crun on a hybrid host, which it refuses) in a
# mount namespace of its own where the empty cgroup2 hierarchy is unmounted. Prints the command,
# with a fresh container id for every run ($$ of the shell that runs it), or why none works.
runtime_command() {
    local runtime=$1 bundle=$scratch/$2 plain try why
    plain="$runtime --root $scratch/state-$runtime run --bundle $bundle $id-$runtime"
    for try in "$plain-\$\$" \
        "unshare --mount sh -c 'umount /sys/fs/cgroup/unified && exec $plain-\$\$'"; do
        case "$try" in unshare*) mountpoint -q /sys/fs/cgroup/unified || continue ;; esac
        if why=$(run_once "$try"); then
            echo "$try"
            return 0
        fi
    done
    echo "$why"
    return 1
}
crun_nonet=$(runtime_command crun nonet) || true
runc_nonet=$(runtime_command runc nonet) || true
crun_net=$(runtime_command crun net) || true
runc_net=$(runtime_command runc net) || true
crun_version=$(crun --root "$scratch/state-crun" --version | sed -n 's/^crun version //p')
runc_version=$(runc --version | sed -n 's/^runc version //p')

# The step 10 container that keeps the bridge up for the "shared" row (`holder up`), or not
# (`holder down`): run by hyperfine before each run of a row, so both rows are in one run.
cat > "$scratch/holder" <<EOF
#!/bin/sh
# Alive and not a zombie (it is no one's child once the shell that started it has exited).
alive() { [ -n "\$1" ] && [ -r /proc/\$1/stat ] && ! sed 's/^.*) //' /proc/\$1/stat | grep -q '^Z'; }
pid=\$(cat $holder_pid 2>/dev/null) || pid=''
case \$1 in
up)
    alive "\$pid" && exit 0
    sh -c '$enter_holder exec setsid $bin/step10 --net bridge --stop-timeout 1 -- /bin/sleep 3600' </dev/null >/dev/null 2>&1 &
    echo \$! > $holder_pid
    for _ in \$(seq 100); do
        [ -n "\$(ls -A /sys/class/net/box-br0/brif 2>/dev/null)" ] && exit 0
        sleep 0.05
    done
    echo "bench: the step 10 container that holds the bridge did not come up" >&2
    exit 1 ;;
down)
    [ -n "\$pid" ] || exit 0
    kill -TERM "\$pid" 2>/dev/null
    for _ in \$(seq 200); do alive "\$pid" || break; sleep 0.05; done
    rm -f $holder_pid ;;
esac
EOF
chmod +x "$scratch/holder"

# The rows of one group: a key (for the targets below), a label, a command (run by hyperfine's
# shell, after `exec`), and what to run before each of its runs.
keys=() labels=() commands=() prepares=()
row() { keys+=("$1"); labels+=("$2"); commands+=("$3"); prepares+=("${4:-true}"); }
runtime_row() {
    case "$3" in
        unshare*) row "$1" "$2 ¹" "$3" ;;
        *) row "$@" ;;
    esac
}

# Time a group with hyperfine, then take each command's peak RSS; append the group's table to
# $table. A row whose command fails once is reported and left out.
table=$scratch/table.md
results=$scratch/results
: > "$results"
measure() {
    local title=$1 i mean sd args=() timed=0 why peak rss base=''
    say "$title: checking that each command runs"
    for i in "${!commands[@]}"; do
        case "${commands[$i]}" in "could not run here"*) continue ;; esac
        sh -c "${prepares[$i]}"
        if ! why=$(run_once "${commands[$i]}"); then
            commands[i]=$why
            continue
        fi
        timed=$((timed + 1))
        args+=(--prepare "${prepares[$i]}" --command-name "${labels[$i]}" "$enter exec ${commands[$i]}")
    done
    "$scratch/holder" down
    say "$title: timing $timed commands, $runs runs each"
    hyperfine --style basic --warmup 3 --runs "$runs" --export-json "$scratch/times.json" "${args[@]}"
    "$scratch/holder" down
    {
        printf '\n**%s**\n\n' "$title"
        echo "| command | mean ± σ (ms) | × first row | peak RSS (KiB) |"
        echo "|---|--:|--:|--:|"
    } >> "$table"
    for i in "${!commands[@]}"; do
        case "${commands[$i]}" in
            "could not run here"*)
                echo "| ${labels[$i]} | ${commands[$i]} | | |" >> "$table"
                continue ;;
        esac
        read -r mean sd < <(jq -r --arg name "${labels[$i]}" \
            '.results[] | select(.command == $name) | "\(.mean * 1000) \((.stddev // 0) * 1000)"' "$scratch/times.json")
        peak=0
        for _ in $(seq "$rss_runs"); do
            sh -c "${prepares[$i]}"
            /usr/bin/time -f %M -o "$scratch/rss" sh -c "$enter exec ${commands[$i]}" </dev/null >/dev/null 2>&1
            rss=$(tail -n1 "$scratch/rss")
            [ "$rss" -gt "$peak" ] && peak=$rss
        done
        [ -n "$base" ] || base=$mean
        printf '%s\t%s\t%s\t%s\n' "${keys[$i]}" "${labels[$i]}" "$mean" "$peak" >> "$results"
        awk -v l="${labels[$i]}" -v m="$mean" -v s="$sd" -v b="$base" -v p="$peak" \
            'BEGIN { f = m < 10 ? "%.2f" : "%.1f"; printf "| %s | " f " ± " f " | %.2f | %d |\n", l, m, s, m / b, p }' >> "$table"
    done
    keys=() labels=() commands=() prepares=()
}

: > "$table"
# In a VM, the hypervisor may run other machines on our CPUs (steal time, in /proc/stat): the
# share it took while the benchmark ran says how far to trust the numbers.
cpu_before=$(head -n1 /proc/stat)
row floor '`unshare … chroot`' "unshare --fork --uts --pid --mount --ipc chroot rootfs /bin/true"
for n in 01 02 03 04 05 06 07 08; do row "step$n" "step$n" "$bin/step$n -- /bin/true"; done
row step09-none 'step09 `--net none` ²' "$bin/step09 --net none -- /bin/true"
row step10-none 'step10 `--net none` ²' "$bin/step10 --net none -- /bin/true"
runtime_row crun "crun $crun_version" "$crun_nonet"
runtime_row runc "runc $runc_version" "$runc_nonet"
measure "Without a network namespace"

row floor-net '`unshare --net … chroot`' "unshare --fork --uts --pid --mount --ipc --net chroot rootfs /bin/true"
runtime_row crun-net "crun $crun_version (no interfaces)" "$crun_net"
runtime_row runc-net "runc $runc_version (no interfaces)" "$runc_net"
row step09-veth 'step09 `--net veth`' "$bin/step09 --net veth -- /bin/true"
row step10-alone 'step10 `--net bridge`, alone on the bridge' "$bin/step10 --net bridge -- /bin/true" \
    "$scratch/holder down"
row step10-shared 'step10 `--net bridge`, another container on the bridge' "$bin/step10 --net bridge -- /bin/true" \
    "$scratch/holder up"
measure "With a network namespace"
steal=$(printf '%s\n%s\n' "$cpu_before" "$(head -n1 /proc/stat)" | awk '
    { for (i = 2; i <= 9; i++) total[NR] += $i; stolen[NR] = $9 }
    END { d = total[2] - total[1]; printf "%d", (d > 0 ? 100 * (stolen[2] - stolen[1]) / d : 0) }')
[ "$steal" -lt 2 ] || say "warning: the hypervisor took $steal% of the CPU time while the benchmark ran (steal time): the numbers are less certain than they look"

# Chapter 9: the container's end of a veth pair made in its namespace, or made on the host and
# moved there; 20 pairs each, in one `ip -batch`.
unshare --net sleep 600 &
veth_ns=$!
sleep 0.2
pairs=20
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }
direct=$(for i in $(seq $pairs); do echo "link add box-b$$-$i type veth peer name p$i netns $veth_ns"; done)
moved=$(for i in $(seq $pairs); do echo "link add box-b$$-$i type veth peer name p$i"; echo "link set p$i netns $veth_ns"; done)
delete=$(for i in $(seq $pairs); do echo "link delete box-b$$-$i"; done)
start=$(date +%s%N); echo "$direct" | ip -batch -; t_direct=$(ms_since "$start")
echo "$delete" | ip -batch -
start=$(date +%s%N); echo "$moved" | ip -batch -; t_moved=$(ms_since "$start")
echo "$delete" | ip -batch -
kill "$veth_ns"; wait "$veth_ns" 2>/dev/null || true; veth_ns=''

# The machine, as the table's label.
cpu=$(sed -n 's/^\(model name\|Hardware\|cpu model\)[[:space:]]*: //p' /proc/cpuinfo | head -n1)
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    layout="cgroup v2"
elif mountpoint -q /sys/fs/cgroup/unified; then
    if [ -s /sys/fs/cgroup/unified/cgroup.controllers ]; then layout="hybrid (cgroup v1 and v2 controllers)"
    else layout="hybrid (cgroup v1 controllers, cgroup2 without controllers at /sys/fs/cgroup/unified)"; fi
else
    layout="cgroup v1"
fi
para() { echo "$*"; echo; }
kib() { echo $(($(stat -c %s "$1") / 1024)); }

mkdir -p "$(dirname "$out")"
{
    echo "<!-- Generated by scripts/bench.sh: do not edit. \`sudo scripts/bench.sh\` measures your machine. -->"
    echo
    echo "Measured on $(date -u +%Y-%m-%d): ${cpu:-$(uname -m)}, $(nproc) cores, Linux $(uname -r)" \
        "($(uname -m)), $layout; hyperfine $(hyperfine --version | cut -d' ' -f2), $runs runs per" \
        "command after 3 warm-up runs; peak RSS is the largest of $rss_runs runs. Every command runs" \
        "\`/bin/true\` in the workshop's image; the steps are release builds.$(
            [ "$steal" -lt 2 ] || echo " The hypervisor took $steal% of the CPU time while it ran (steal time).")"
    cat "$table"
    echo
    [ -z "$cgroup" ] || para "On this cgroup v2 host every command first moved into an" \
        "empty cgroup (as step 7 needs): that write is in every time."
    case "$crun_nonet$runc_nonet" in *unshare*)
        para "¹ This runtime refuses a hybrid cgroup host; it ran as \`unshare --mount sh -c" \
            "'umount /sys/fs/cgroup/unified && exec …'\`, which its time and RSS include." ;;
    esac
    para "² Steps 9 and 10 always make a network namespace: with \`--net none\` it has \`lo\`" \
        "only (brought up through netlink, from the runtime)."
    para "Peak RSS is that of the largest process among the command and those it waited" \
        "for (\`/usr/bin/time -f %M\`), not their sum."
    echo "**A veth pair, the container's end made in its namespace or moved there** ($pairs pairs, one \`ip -batch\` each)"
    echo
    echo "| how | µs per pair |"
    echo "|---|--:|"
    echo "| \`ip link add … peer name eth0 netns PID\` | $((t_direct * 1000 / pairs)) |"
    echo "| \`ip link add … peer name eth0\`, then \`ip link set eth0 netns PID\` | $((t_moved * 1000 / pairs)) |"
    echo
    echo "**Release binaries**"
    echo
    echo "| binary | size (KiB) |"
    echo "|---|--:|"
    for n in 01 02 03 04 05 06 07 08 09 10; do echo "| step$n | $(kib "$bin/step$n") |"; done
    echo "| crun $crun_version | $(kib "$(command -v crun)") |"
    echo "| runc $runc_version | $(kib "$(command -v runc)") |"
    echo
    echo "The files alone: each of them also loads the C library, and crun and runc more (\`ldd\` lists them)."
} > "$out.new"
mv "$out.new" "$out"
chown --reference=book/src "$(dirname "$out")" "$out"
say "wrote $out"

# The issue's targets, as ratios of the measured means (and peaks): reported, not enforced.
ratio() {
    local what=$1 target=$2 a=$3 b=$4
    if [ -z "$a" ] || [ -z "$b" ]; then
        printf '  %-58s   n/a  (target ≤ %s×; a row is missing)\n' "$what" "$target"
    else
        awk -v w="$what" -v t="$target" -v a="$a" -v b="$b" 'BEGIN {
            r = a / b; printf "  %-58s %5.2f× (target ≤ %s×: %s)\n", w, r, t, r <= t ? "met" : "not met" }'
    fi
}
value() { awk -F'\t' -v k="$1" -v c="$2" '$1 == k { print $c }' "$results"; }
step_peak=$(awk -F'\t' '$1 ~ /^step/ && $4 > m { m = $4; s = $2 } END { print m "\t" s }' "$results")
echo
echo "Targets (issue 13), from this run:"
ratio "step06 / unshare+chroot" 1.0 "$(value step06 3)" "$(value floor 3)"
ratio "step08 / crun, no network namespace" 0.7 "$(value step08 3)" "$(value crun 3)"
ratio "step09 veth / crun, a bare network namespace" 1.5 "$(value step09-veth 3)" "$(value crun-net 3)"
ratio "step10 alone on its bridge / runc, no network namespace" 1.0 "$(value step10-alone 3)" "$(value runc 3)"
ratio "largest step peak RSS (${step_peak#*$'\t'}) / crun's" 1.0 "${step_peak%$'\t'*}" "$(value crun 4)"
