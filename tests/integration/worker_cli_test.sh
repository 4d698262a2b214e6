#!/usr/bin/env bash
# worker_cli_test.sh RILL_WORKER RILL_LOAD IO_URING_PROBE [cluster|no-cluster] — rill-worker
# as a process, over real sockets: flags and their errors, passthrough to a sink, signals,
# the stats line and its error counters, line framing, a second worker on a port in use,
# the exit status of a drain that dropped frames and of a second signal, and the cluster
# flags of a build without cluster support (the fourth argument, the build's RILL_CLUSTER;
# default cluster). Each case starts its own processes; all are stopped on exit.
# Prints PASS/FAIL per check and "worker_cli: N passed, N failed"; exits 1 on any failure,
# 77 when the environment cannot run it (io_uring unavailable, bash without /dev/tcp, no
# /proc).
set -u

if [ $# -lt 3 ] || [ $# -gt 4 ] || { [ $# -eq 4 ] && [ "$4" != cluster ] && [ "$4" != no-cluster ]; }; then
    echo "usage: $0 <path-to-rill-worker> <path-to-rill-load> <path-to-io_uring_probe>" \
        "[cluster|no-cluster]" >&2
    exit 2
fi
WORKER=$1
LOAD=$2
PROBE=$3
FLAVOUR=${4:-cluster}
for b in "$WORKER" "$LOAD" "$PROBE"; do
    if [ ! -x "$b" ]; then
        echo "worker_cli: $b is not an executable" >&2
        exit 1
    fi
done

# io_uring: the probe (built with the tests) makes the C tests' check and exits 77 with the
# reason when io_uring_setup fails with ENOSYS or EPERM. Not rill-worker's own failure:
# "cannot start: Operation not permitted" does not say which call failed, and a skip that
# matched log text would hang on its wording.
"$PROBE" worker_cli
case $? in
0) ;;
77) exit 77 ;;
*) echo "worker_cli: $PROBE failed"; exit 1 ;;
esac

# bash's /dev/tcp is how this test talks TCP; a bash built without it says "No such file".
probe=$( (exec 3<>/dev/tcp/127.0.0.1/1) 2>&1 )
case "$probe" in
*"No such file"*|*"not supported"*)
    echo "worker_cli: SKIP: this bash has no /dev/tcp support ($probe)"
    exit 77 ;;
esac
if [ ! -r /proc/net/tcp ] || [ ! -r /proc/sys/net/ipv4/ip_local_port_range ]; then
    echo "worker_cli: SKIP: /proc is not mounted"
    exit 77
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/worker_cli.XXXXXX")
PIDS=()
passed=0
failed=0

stop_all()
{
    local p
    for p in "${PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null
    done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 30); do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    PIDS=()
}
cleanup()
{
    stop_all
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'echo "worker_cli: interrupted"; exit 1' INT TERM

pass() { passed=$((passed + 1)); echo "PASS: $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }
alive() { kill -0 "$1" 2>/dev/null; }
# check NAME COMMAND...: PASS when COMMAND succeeds.
check()
{
    local name=$1
    shift
    if "$@"; then pass "$name"; else fail "$name"; fi
}
# show_log FILE: the tail of a log, indented, after a failure.
show_log()
{
    echo "    --- last lines of $1:"
    tail -n 15 "$1" 2>/dev/null | sed 's/^/    | /'
}

. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../../scripts/lib/free-port.sh" # free_port

# tcp_state PORT WHICH STATE: true when /proc/net/tcp has a socket whose local (WHICH=local)
# or remote (WHICH=rem) port is PORT in STATE (0A = LISTEN, 01 = ESTABLISHED).
tcp_state()
{
    local hex
    hex=$(printf '%04X' "$1")
    if [ "$2" = local ]; then
        grep -Eq "^ *[0-9]+: [0-9A-F]{8}:$hex [0-9A-F]{8}:[0-9A-F]{4} $3 " /proc/net/tcp
    else
        grep -Eq "^ *[0-9]+: [0-9A-F]{8}:[0-9A-F]{4} [0-9A-F]{8}:$hex $3 " /proc/net/tcp
    fi
}
now_ms() { local t; t=$(date +%s%N); echo $((t / 1000000)); }
# Failure bound for waiting on the worker (ready, a stats line, a counter, an exit after a
# signal). Generous on purpose: the machines are shared (2 cores, other builds); how long a
# wait took is printed, never asserted. The waits tied to rill-load's own fixed timers (it
# retries its target for 5 s; case 6 runs it for 8 s) keep their short bounds.
WAIT_S=60
# wait_for SECONDS COMMAND...: polls COMMAND every 0.1 s; sets WAITED_MS.
wait_for()
{
    local n=$(($1 * 10)) t0
    t0=$(now_ms)
    shift
    while [ "$n" -gt 0 ]; do
        "$@" && { WAITED_MS=$(($(now_ms) - t0)); return 0; }
        sleep 0.1
        n=$((n - 1))
    done
    return 1
}

# start_worker LOG ARGS...: starts rill-worker with stderr+stdout in LOG; sets WPID.
start_worker()
{
    local log=$1
    shift
    "$WORKER" "$@" </dev/null >"$log" 2>&1 &
    WPID=$!
    PIDS+=("$WPID")
}
# wait_ready LOG PID: waits up to WAIT_S for "rill-worker: ready".
wait_ready()
{
    local _
    for _ in $(seq $((WAIT_S * 10))); do
        grep -q '^rill-worker: ready' "$1" && return 0
        kill -0 "$2" 2>/dev/null || { grep -q '^rill-worker: ready' "$1"; return; }
        sleep 0.1
    done
    return 1
}
# listen_port LOG FRAMING: the port of the first listener with that framing.
listen_port()
{
    sed -n "s/^rill-worker: listening on [^ ]*:\([0-9][0-9]*\) framing=$2\( .*\)\{0,1\}\$/\1/p" \
        "$1" | head -n1
}
# stop_worker PID SIGNAL SECONDS: sends SIGNAL, waits; sets WRC to the exit status, or to
# "timeout" (then the worker is killed), and STOP_MS to the time it waited.
stop_worker()
{
    local pid=$1 sig=$2 n=$(($3 * 10)) t0
    t0=$(now_ms)
    kill "-$sig" "$pid" 2>/dev/null
    while [ "$n" -gt 0 ]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid"
            WRC=$?
            STOP_MS=$(($(now_ms) - t0))
            return 0
        fi
        sleep 0.1
        n=$((n - 1))
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    WRC=timeout
    STOP_MS=$(($(now_ms) - t0))
}
# json_num FILE KEY: the number after "KEY": in a JSON object (rill-load --json).
json_num()
{
    grep -o "\"$2\"[[:space:]]*:[[:space:]]*-\{0,1\}[0-9][0-9.eE+-]*" "$1" | head -n1 |
        sed 's/.*:[[:space:]]*//'
}
# stat_field LOG FIELD: FIELD's value in the last stats line.
stat_field()
{
    grep '^rill-worker: stats' "$1" | tail -n1 | grep -o "\(^\| \)$2=[0-9]*" | sed 's/.*=//'
}
# run_load OUT ARGS...: rill-load with a 120 s cap; stdout (JSON) in OUT, stderr in OUT.err.
run_load()
{
    local out=$1
    shift
    timeout -k 5 120 "$LOAD" "$@" </dev/null >"$out" 2>"$out.err"
}
# expect_delivery NAME JSON N: sent == received == N in rill-load's JSON.
expect_delivery()
{
    local sent recv
    sent=$(json_num "$2" sent)
    recv=$(json_num "$2" received)
    if [ "$sent" = "$3" ] && [ "$recv" = "$3" ]; then
        pass "$1: sent=$sent received=$recv"
    else
        fail "$1: expected sent=received=$3, got sent=${sent:-?} received=${recv:-?}"
        sed 's/^/    | /' "$2" "$2.err" | tail -n 15
    fi
}

# ------------------------------------------------------------------ 1. --help
case_help()
{
    local rc=0 f missing=""
    timeout -k 2 10 "$WORKER" --help >"$TMP/help.out" 2>"$TMP/help.err" || rc=$?
    check "--help exits 0 (got $rc)" [ "$rc" -eq 0 ]
    cat "$TMP/help.out" "$TMP/help.err" >"$TMP/help.all"
    for f in --listen --threads --sink --max-frame --count-every --flush-ms --dead-letter \
        --quiet --help; do
        grep -q -e "$f" "$TMP/help.all" || missing="$missing $f"
    done
    check "--help mentions every flag${missing:+ (missing:$missing)}" [ -z "$missing" ]
}

# ------------------------------------------------------------------ 2. bad flags
# bad_args NAME WORD ARGS...: the worker must exit non-zero (not hang) and say WORD on stderr.
bad_args()
{
    local name=$1 word=$2 rc=0
    shift 2
    timeout -k 2 10 "$WORKER" "$@" </dev/null >"$TMP/bad.out" 2>"$TMP/bad.err" || rc=$?
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] &&
        grep -qi -e "$word" "$TMP/bad.err"; then
        pass "$name: exit $rc, $(head -n1 "$TMP/bad.err")"
    else
        fail "$name: exit $rc (124 = still running after 10 s), stderr:"
        sed 's/^/    | /' "$TMP/bad.err" | head -n 5
    fi
}
case_bad_flags()
{
    bad_args "unknown flag is rejected and named" --no-such-flag \
        --listen 127.0.0.1:0 --no-such-flag
    bad_args "--threads 0 is rejected" threads --listen 127.0.0.1:0 --threads 0
    bad_args "--threads abc is not a number" 'not a number' --listen 127.0.0.1:0 --threads abc
    bad_args "--threads 99 is out of range" 'out of range' --listen 127.0.0.1:0 --threads 99
    bad_args "--listen garbage is rejected" 'garbage\|listen' --listen garbage
}

# ------------------------------------------------------------------ 2b. cluster flags
# With cluster support the flags are taken (a bad root is the library's RILL_EINVAL);
# without it each is refused at once with exit 2, naming the flag and the build option,
# and --help says so.
# refused FLAG VALUE: exit 2 and the one line that says this build cannot cluster.
refused()
{
    local rc=0 want="^rill-worker: $1: this rill-worker was built without cluster support (RILL_CLUSTER=OFF)\$"
    timeout -k 2 10 "$WORKER" --listen 127.0.0.1:0 "$1" "$2" </dev/null >"$TMP/nc.out" \
        2>"$TMP/nc.err" || rc=$?
    if [ "$rc" -eq 2 ] && grep -q -e "$want" "$TMP/nc.err"; then
        pass "no cluster support: $1 exits 2: $(head -n1 "$TMP/nc.err")"
    else
        fail "no cluster support: $1: exit $rc (want 2), stderr:"
        sed 's/^/    | /' "$TMP/nc.err" | head -n 5
    fi
}
case_cluster_flags()
{
    local rc=0
    timeout -k 2 10 "$WORKER" --help >"$TMP/help.out" 2>&1 || rc=$?
    check "--help: the cluster flags need a build with cluster support" \
        grep -q 'need a rill-worker built with cluster support' "$TMP/help.out"
    if [ "$FLAVOUR" = cluster ]; then
        check "cluster build: --help does not say it was built without" \
            bash -c "! grep -q 'built without cluster support' '$TMP/help.out'"
        bad_args "cluster build: --zk with a bad --cluster-root is the library's error" \
            'bad cluster settings.*invalid argument' --listen 127.0.0.1:0 \
            --zk 127.0.0.1:1 --cluster-root no-slash
        bad_args "cluster build: --key-groups 0 is refused with its range" \
            'bad --key-groups (1..65536)' --listen 127.0.0.1:0 --key-groups 0
        bad_args "cluster build: --key-groups 65537 is refused with its range" \
            'bad --key-groups (1..65536)' --listen 127.0.0.1:0 --key-groups 65537
        return
    fi
    check "no cluster support: --help exits 0 (got $rc) and says it was built without" \
        bash -c "[ $rc -eq 0 ] && grep -q 'built without cluster support (RILL_CLUSTER=OFF)' '$TMP/help.out'"
    refused --zk 127.0.0.1:2181
    refused --cluster-root /rill/x
    refused --worker-id w1
    refused --peer-listen 127.0.0.1:0
    refused --peer-advertise 10.0.0.1:7000
    refused --source-advertise 10.0.0.1:7700
    refused --session-timeout-ms 5000
    refused --key-groups 64
    refused --zk-auth-file /dev/null
}

# ------------------------------------------------------------------ 3. passthrough
# rill-load's sink listens before the worker starts, so this checks the data path on its
# own; the worker's port is picked here because rill-load needs it up front (rill-load
# retries connecting to its target for 5 s). Case 5 checks a sink that comes up later.
case_passthrough()
{
    local log=$TMP/pass.log sink port lpid rc=0 got
    if ! sink=$(free_port) || ! port=$(free_port) || [ "$sink" = "$port" ]; then
        fail "passthrough: no free ports"
        return
    fi
    timeout -k 5 120 "$LOAD" --target "127.0.0.1:$port" --sink-listen "127.0.0.1:$sink" \
        --count 20000 --connections 4 --drain 10 --json --quiet \
        </dev/null >"$TMP/pass.json" 2>"$TMP/pass.json.err" &
    lpid=$!
    PIDS+=("$lpid")
    if ! wait_for 5 tcp_state "$sink" local 0A; then
        fail "passthrough: rill-load listens on its sink port within 5 s"
        sed 's/^/    | /' "$TMP/pass.json.err" | tail -n 5
        stop_all
        return
    fi
    start_worker "$log" --listen "127.0.0.1:$port" --sink "127.0.0.1:$sink" --threads 2
    if ! wait_ready "$log" "$WPID"; then
        fail "passthrough: worker ready within $WAIT_S s"
        show_log "$log"
        stop_all
        return
    fi
    got=$(listen_port "$log" rill)
    check "passthrough: worker reports 'listening on 127.0.0.1:$port framing=rill' (got ${got:-none})" \
        [ "$got" = "$port" ]

    wait "$lpid" || rc=$?
    check "passthrough: rill-load exits 0 (got $rc)" [ "$rc" -eq 0 ]
    expect_delivery "passthrough: 4 x 20000 frames through the worker" "$TMP/pass.json" 80000

    stop_worker "$WPID" TERM "$WAIT_S"
    check "passthrough: worker exits 0 after SIGTERM (got $WRC after $STOP_MS ms)" [ "$WRC" = 0 ]
    [ "$WRC" = 0 ] || show_log "$log"
    stop_all
}

# ------------------------------------------------------------------ 4. signals
case_signals()
{
    local sig log
    for sig in TERM INT; do
        log=$TMP/sig$sig.log
        start_worker "$log" --listen 127.0.0.1:0
        if ! wait_ready "$log" "$WPID"; then
            fail "SIG$sig: worker ready within $WAIT_S s"
            show_log "$log"
            stop_all
            continue
        fi
        stop_worker "$WPID" "$sig" "$WAIT_S"
        check "SIG$sig: worker exits 0 (got $WRC after $STOP_MS ms)" [ "$WRC" = 0 ]
        [ "$WRC" = 0 ] || show_log "$log"
        stop_all
    done
}

# ------------------------------------------------------------------ 5. stats line
stats_complete()
{
    local line f
    line=$(grep '^rill-worker: stats' "$1" | tail -n1)
    [ -n "$line" ] || return 1
    for f in in out conns short long midframe unknown comp_err dropped; do
        case " $line" in
        *" $f="*) ;;
        *) return 1 ;;
        esac
    done
}
short_is_one() { [ "$(stat_field "$1" short)" = 1 ]; }
in_is() { [ "$(stat_field "$1" in)" = "$2" ]; }
case_stats()
{
    local log=$TMP/stats.log sink port
    sink=$(free_port) || { fail "stats: no free port"; return; }
    start_worker "$log" --listen 127.0.0.1:0 --sink "127.0.0.1:$sink"
    if ! wait_ready "$log" "$WPID"; then
        fail "stats: worker ready within $WAIT_S s"
        show_log "$log"
        stop_all
        return
    fi
    port=$(listen_port "$log" rill)
    [ -n "$port" ] || { fail "stats: no listening port"; show_log "$log"; stop_all; return; }

    if wait_for "$WAIT_S" stats_complete "$log"; then
        pass "stats: a stats line with in= out= conns= short= long= midframe= unknown= comp_err= dropped= ($WAITED_MS ms after ready)"
    else
        fail "stats: a complete stats line within $WAIT_S s"
        show_log "$log"
    fi
    check "stats: short=0 before any bad input (got $(stat_field "$log" short))" \
        [ "$(stat_field "$log" short)" = 0 ]

    # length field 1 < 12: a protocol error for this connection only.
    printf '\x00\x00\x00\x01garbage' 2>/dev/null >"/dev/tcp/127.0.0.1/$port"
    if wait_for "$WAIT_S" short_is_one "$log"; then
        pass "stats: short=1 after a frame with length 1 (in the stats line $WAITED_MS ms later)"
    else
        fail "stats: short=1 within $WAIT_S s after a frame with length 1 (got $(stat_field "$log" short))"
        show_log "$log"
    fi

    local rc=0 in0
    check "stats: worker still running after bad input" alive "$WPID"
    in0=$(stat_field "$log" in)
    # The worker has been running with nothing listening on its sink port; rill-load now
    # brings the sink up, so delivery also needs the worker to (re)connect to it.
    run_load "$TMP/stats.json" --target "127.0.0.1:$port" --sink-listen "127.0.0.1:$sink" \
        --count 5000 --connections 2 --drain 10 --json --quiet || rc=$?
    check "stats: rill-load after bad input exits 0 (got $rc)" [ "$rc" -eq 0 ]
    if wait_for "$WAIT_S" in_is "$log" $((${in0:-0} + 10000)); then
        pass "stats: worker keeps serving after bad input (in= grew by 10000, seen $WAITED_MS ms after rill-load ended)"
    else
        fail "stats: in= should grow from ${in0:-?} by the 10000 frames sent (got $(stat_field "$log" in))"
        show_log "$log"
    fi
    expect_delivery "stats: a sink that starts after the worker gets every frame" \
        "$TMP/stats.json" 10000

    stop_worker "$WPID" TERM "$WAIT_S"
    check "stats: worker exits 0 after SIGTERM (got $WRC after $STOP_MS ms)" [ "$WRC" = 0 ]
    [ "$WRC" = 0 ] || show_log "$log"
    stop_all
}

# ------------------------------------------------------------------ 6. line framing
# rill-load cannot send 0 frames (--count takes N >= 1), so it acts as the sink while it
# sends a trickle of frames to a computation id that no one registered: the worker must
# count those as unknown and drop them, and the sink must see exactly the 3 lines.
UNKNOWN_COMP=4000000000
unknown_is() { [ "$(stat_field "$1" unknown)" = "$2" ]; }
case_line()
{
    local log=$TMP/line.log sink lport vport got lpid rc=0
    if ! sink=$(free_port) || ! vport=$(free_port) || [ "$sink" = "$vport" ]; then
        fail "line: no free ports"
        return
    fi
    # rill-load first, so that the sink listens before the worker connects to it.
    timeout -k 5 60 "$LOAD" --target "127.0.0.1:$vport" --sink-listen "127.0.0.1:$sink" \
        --comp "$UNKNOWN_COMP" --rate 20 --duration 8 --drain 1 --json --quiet \
        </dev/null >"$TMP/line.json" 2>"$TMP/line.json.err" &
    lpid=$!
    PIDS+=("$lpid")
    if ! wait_for 5 tcp_state "$sink" local 0A; then
        fail "line: rill-load listens on its sink port within 5 s"
        sed 's/^/    | /' "$TMP/line.json.err" | tail -n 5
        stop_all
        return
    fi
    start_worker "$log" --listen 127.0.0.1:0,framing=line,comp=1 --listen "127.0.0.1:$vport" \
        --sink "127.0.0.1:$sink"
    if ! wait_ready "$log" "$WPID"; then
        fail "line: worker ready within $WAIT_S s"
        show_log "$log"
        stop_all
        return
    fi
    lport=$(listen_port "$log" line)
    got=$(listen_port "$log" rill)
    if [ -z "$lport" ] || [ "$got" != "$vport" ]; then
        fail "line: listening lines for framing=line (got port '$lport') and framing=rill" \
            "(expected $vport, got '$got')"
        show_log "$log"
        stop_all
        return
    fi
    # Send once the worker's sink connection is up, well within rill-load's 8 s.
    if ! wait_for 5 tcp_state "$sink" rem 01; then
        fail "line: worker connects to the sink within 5 s"
        show_log "$log"
        sed 's/^/    | /' "$TMP/line.json.err" | tail -n 5
        stop_all
        return
    fi
    printf 'one\ntwo\r\nthree\n' 2>/dev/null >"/dev/tcp/127.0.0.1/$lport"
    wait "$lpid" || rc=$?
    check "line: rill-load exits 0 (got $rc)" [ "$rc" -eq 0 ]
    local recv sent
    recv=$(json_num "$TMP/line.json" received)
    sent=$(json_num "$TMP/line.json" sent)
    if [ "$recv" = 3 ]; then
        pass "line: the sink received the 3 lines as 3 frames"
    else
        fail "line: the sink received ${recv:-?} frames, expected 3 (the lines only)"
        sed 's/^/    | /' "$TMP/line.json" "$TMP/line.json.err" | tail -n 10
        show_log "$log"
    fi
    if [ -n "$sent" ] && [ "$sent" -gt 0 ] && wait_for "$WAIT_S" unknown_is "$log" "$sent"; then
        pass "line: $sent frames for unregistered comp $UNKNOWN_COMP counted as unknown=$sent"
    else
        fail "line: unknown= should equal the ${sent:-?} frames rill-load sent to comp" \
            "$UNKNOWN_COMP (got $(stat_field "$log" unknown))"
    fi
    stop_worker "$WPID" TERM "$WAIT_S"
    check "line: worker exits 0 after SIGTERM (got $WRC after $STOP_MS ms)" [ "$WRC" = 0 ]
    [ "$WRC" = 0 ] || show_log "$log"
    stop_all
}

# ------------------------------------------------------------------ 7. port in use
# A second rill-worker on the port of a running one must fail (exit 1, naming the address
# and "Address already in use") instead of joining it and taking part of its connections;
# the first one keeps serving every connection.
case_port_in_use()
{
    local log=$TMP/inuse1.log log2=$TMP/inuse2.log sink port pid2 n rc=0
    if ! sink=$(free_port) || ! port=$(free_port) || [ "$sink" = "$port" ]; then
        fail "port in use: no free ports"
        return
    fi
    start_worker "$log" --listen "127.0.0.1:$port" --sink "127.0.0.1:$sink" --threads 2
    if ! wait_ready "$log" "$WPID"; then
        fail "port in use: first worker ready within 10 s"
        show_log "$log"
        stop_all
        return
    fi
    local pid1=$WPID
    start_worker "$log2" --listen "127.0.0.1:$port" --threads 2
    pid2=$WPID
    n=100
    while [ "$n" -gt 0 ] && alive "$pid2"; do
        sleep 0.1
        n=$((n - 1))
    done
    if alive "$pid2"; then
        fail "port in use: a second worker on 127.0.0.1:$port exits within 10 s (still running)"
        show_log "$log2"
    else
        wait "$pid2" || rc=$?
        check "port in use: the second worker exits 1 (got $rc)" [ "$rc" -eq 1 ]
        if grep -q "127\.0\.0\.1:$port: Address already in use" "$log2"; then
            pass "port in use: the second worker says $(grep -m1 'Address already in use' "$log2")"
        else
            fail "port in use: the second worker names 127.0.0.1:$port and 'Address already in use'"
            show_log "$log2"
        fi
    fi
    # Traffic for the port, with the second worker (if it is still there) running: every
    # frame must go through the first worker to the sink.
    rc=0
    run_load "$TMP/inuse.json" --target "127.0.0.1:$port" --sink-listen "127.0.0.1:$sink" \
        --count 5000 --connections 8 --drain 5 --json --quiet || rc=$?
    check "port in use: rill-load exits 0 (got $rc)" [ "$rc" -eq 0 ]
    expect_delivery "port in use: 8 x 5000 frames through the first worker" "$TMP/inuse.json" 40000
    if wait_for 3 in_is "$log" 40000; then
        pass "port in use: the first worker counted all 40000 frames (in=40000)"
    else
        fail "port in use: the first worker's in= should be 40000 (got $(stat_field "$log" in))"
        show_log "$log"
    fi
    stop_worker "$pid1" TERM 10
    check "port in use: the first worker exits 0 after SIGTERM (got $WRC)" [ "$WRC" = 0 ]
    [ "$WRC" = 0 ] || show_log "$log"
    stop_all
}

# ------------------------------------------------------------------ 8. drain outcome
# Frames queued for a sink that never comes up: the drain gives up at its deadline, counts
# them and exits 3; a second SIGTERM during that drain exits at once with 128 + 15.
case_drain()
{
    local log sinkp port second
    for second in no yes; do
        log=$TMP/drain_$second.log
        if ! sinkp=$(free_port); then
            fail "drain: no free port"
            return
        fi
        start_worker "$log" --listen 127.0.0.1:0 --sink "127.0.0.1:$sinkp"
        if ! wait_ready "$log" "$WPID"; then
            fail "drain: worker ready within $WAIT_S s"
            show_log "$log"
            stop_all
            continue
        fi
        port=$(listen_port "$log" rill)
        run_load "$TMP/drain.json" --target "127.0.0.1:$port" --count 1000 --connections 1 \
            --json --quiet
        if ! wait_for "$WAIT_S" in_is "$log" 1000; then
            fail "drain: the worker took in 1000 frames within $WAIT_S s"
            show_log "$log"
            stop_all
            continue
        fi
        if [ "$second" = yes ]; then
            kill -TERM "$WPID"
            wait_for "$WAIT_S" grep -q 'draining' "$log"
            stop_worker "$WPID" TERM "$WAIT_S"
            check "drain: a second SIGTERM exits at once with 143 (got $WRC after $STOP_MS ms)" \
                [ "$WRC" = 143 ]
            check "drain: the worker says it did not finish the drain" \
                grep -q 'second signal: exiting without finishing the drain' "$log"
        else
            stop_worker "$WPID" TERM "$WAIT_S"
            check "drain: 1000 frames left for an unreachable sink: exit 3 (got $WRC after $STOP_MS ms)" \
                [ "$WRC" = 3 ]
            check "drain: the worker names what it dropped" \
                grep -q 'the drain dropped 1000 frames' "$log"
        fi
        [ "$WRC" = 3 ] || [ "$WRC" = 143 ] || show_log "$log"
        stop_all
    done
}

# ------------------------------------------------------------------ 9. log formats
# --log-format logfmt and json: every line, the worker's and the library's (a sink that
# refuses), has a timestamp, a level, a source and a message, the stats as fields;
# --log-level warning keeps only the warnings.
LOGFMT_RE='^ts=[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]{12}Z level=(error|warning|info) src=(rill|rill-worker) msg="([^"\\]|\\.)*"( [a-z_]+=[0-9]+)*$'
JSON_RE='^\{"ts":"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]{12}Z","level":"(error|warning|info)","src":"(rill|rill-worker)","msg":"([^"\\]|\\.)*"(,"[a-z_]+":[0-9]+)*\}$'
case_log_format()
{
    local fmt log sinkp re bad
    for fmt in logfmt json; do
        log=$TMP/log_$fmt.log
        re=$LOGFMT_RE
        [ "$fmt" = json ] && re=$JSON_RE
        sinkp=$(free_port) || { fail "log format: no free port"; return; }
        start_worker "$log" --listen 127.0.0.1:0 --sink "127.0.0.1:$sinkp" --log-format "$fmt"
        if ! wait_for "$WAIT_S" grep -q '"stats"' "$log"; then
            fail "log format $fmt: a stats line within $WAIT_S s"
            show_log "$log"
            stop_all
            continue
        fi
        stop_worker "$WPID" TERM "$WAIT_S"
        check "log format $fmt: exit 0 (got $WRC)" [ "$WRC" = 0 ]
        bad=$(grep -Evc "$re" "$log")
        check "log format $fmt: all $(wc -l <"$log") lines parse ($bad do not)" [ "$bad" = 0 ]
        [ "$bad" = 0 ] || grep -Ev "$re" "$log" | head -n 3 | sed 's/^/    | /'
        check "log format $fmt: the library's sink warning is among them" \
            grep -Eq '(level=|"level":")warning' "$log"
        check "log format $fmt: the stats carry their rates as fields" \
            grep -Eq '(in_rate=|"in_rate":)[0-9]+' "$log"
        stop_all
    done
    log=$TMP/log_level.log
    sinkp=$(free_port) || { fail "log level: no free port"; return; }
    start_worker "$log" --listen 127.0.0.1:0 --sink "127.0.0.1:$sinkp" --log-format logfmt \
        --log-level warning
    if wait_for "$WAIT_S" grep -q 'level=warning' "$log"; then
        stop_worker "$WPID" TERM "$WAIT_S"
        check "log level warning: exit 0 (got $WRC)" [ "$WRC" = 0 ]
        check "log level warning: no info lines" bash -c "! grep -q 'level=info' '$log'"
    else
        fail "log level warning: the sink warning within $WAIT_S s"
        show_log "$log"
    fi
    stop_all
    bad_args "--log-format xml is rejected" 'text, logfmt or json' --log-format xml
}

# WORKER_CLI_CASES="stats line" runs only those cases (for debugging).
for c in ${WORKER_CLI_CASES:-help bad_flags cluster_flags passthrough signals stats line port_in_use drain log_format}; do
    "case_$c"
done

echo "worker_cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
