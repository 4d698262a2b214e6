#!/usr/bin/env bash
# systemd_unit_test.sh RILL_WORKER NOTIFY_LISTEN UNIT — the example unit's ExecStart runs
# as systemd would run it: Type=notify is honoured (READY=1 once serving, STOPPING=1 when
# the drain begins), and SIGTERM (KillSignal) ends it with status 0. Its addresses are
# replaced by free loopback ports; the binary by the one just built. With
# systemd-analyze installed, the unit is also verified.
set -u
if [ $# -ne 3 ]; then
    echo "usage: $0 <rill-worker> <notify_listen> <unit>" >&2
    exit 2
fi
W=$1
NL=$2
UNIT=$3
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
. "$(cd "$(dirname "$0")" && pwd)/../lib/check.sh" # check, check_summary
check "Type=notify" grep -q '^Type=notify$' "$UNIT"
check "KillSignal=SIGTERM (the drain)" grep -q '^KillSignal=SIGTERM$' "$UNIT"
exec_start=$(sed -n 's/^ExecStart=//p' "$UNIT")
check "one ExecStart" test "$(printf '%s\n' "$exec_start" | grep -c .)" -eq 1
# The unit's command line, on free ports, with this build's binary.
read -r -a argv <<<"$exec_start"
argv[0]=$W
for i in "${!argv[@]}"; do
    case "${argv[$i]}" in
    *:[0-9]*) argv[$i]=$(printf '%s' "${argv[$i]}" | sed 's/^[^,]*:[0-9][0-9]*/127.0.0.1:0/') ;;
    esac
done
"$NL" "$T/notify.sock" "${argv[@]}" >"$T/out" 2>"$T/err"
sed 's/^/    /' "$T/out"
check "READY=1 sent" grep -q '^notify: READY=1$' "$T/out"
check "STOPPING=1 after READY=1" \
    sh -c "grep -n '^notify: ' '$T/out' | grep -A99 'READY=1' | grep -q 'STOPPING=1'"
check "SIGTERM: exit status 0" grep -q '^exit: 0$' "$T/out"
check "logs in logfmt as the unit asks" grep -q '^ts=.* level=info src=rill-worker msg="ready' "$T/err"
if command -v systemd-analyze >/dev/null 2>&1; then
    sed "s#^ExecStart=[^ ]*#ExecStart=$W#" "$UNIT" >"$T/rill-worker.service"
    check "systemd-analyze verify" systemd-analyze verify --man=no "$T/rill-worker.service"
else
    echo "note: systemd-analyze is not installed here; the unit's syntax was not verified"
fi
check_summary "systemd unit"
