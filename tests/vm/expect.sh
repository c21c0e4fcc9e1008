# Sourced by the VM checks (tests/vm/checks.sh, tests/vm/systemd-checks.sh): one result line per
# check, "PASS WHO what" or "FAIL WHO what: wanted …, got …", which scripts/vm-test.sh parses.
pass() { echo "PASS $1 $2"; }
fail() { echo "FAIL $1 $2: $3"; }
# expect WHO WHAT WANTED COMMAND...: the command's output, on one line, must be WANTED.
expect() {
    who=$1 what=$2 wanted=$3; shift 3
    got=$("$@" 2>&1 | tr '\n' ' ' | sed 's/ *$//')
    if [ "$got" = "$wanted" ]; then pass "$who" "$what"; else fail "$who" "$what" "wanted [$wanted], got [$got]"; fi
}
# expect_match WHO WHAT PATTERN COMMAND...: the output, on one line, must match PATTERN (grep -E).
expect_match() {
    who=$1 what=$2 pattern=$3; shift 3
    got=$("$@" 2>&1 | tr '\n' ' ' | sed 's/ *$//')
    if echo "$got" | grep -qE "$pattern"; then pass "$who" "$what"; else fail "$who" "$what" "wanted /$pattern/, got [$got]"; fi
}
status_of() { "$@" >/dev/null 2>&1; echo $?; }
# wait_for COMMAND...: retry every tenth of a second, for up to 20 s, until the command succeeds.
wait_for() {
    tries=0
    until "$@" >/dev/null 2>&1; do
        tries=$((tries + 1)); [ $tries -lt 200 ] || return 1
        sleep 0.1
    done
}
