#!/usr/bin/env bash
# bench/cluster_bench.sh — cluster membership convergence and forwarding throughput, with
# rill-worker processes and a throwaway ZooKeeper server (scripts/zk-server) on loopback.
#
#   bench/cluster_bench.sh [--runs N] [--duration SEC] [--session-timeout-ms MS]
#                          [--tput-runs N] [--build-dir DIR]
#
# Convergence (N runs each, default 5), from the signal or process start to the moment
# every remaining member has logged the same new view ('rill-worker: view epoch=...'
# lines, polled every ~10 ms, so figures carry ~10-20 ms of polling granularity):
#   join   w3 starts while w1, w2 run          -> all three log members=w1,w2,w3
#   leave  SIGTERM to w3 (it leaves, drains)   -> w1, w2 log members=w1,w2
#   crash  SIGKILL to w3                       -> w1, w2 log members=w1,w2; bounded below
#          by ZooKeeper's session expiry, so it tracks --session-timeout-ms (default 2000)
# Throughput (default 3 runs each, alternating): rill-load sends 64-byte passthrough frames
# over 10000 uniform keys for --duration s (default 8) to one worker and is the sink;
# steady-state rate = frames received per second between t=2 s and the end of sending
# (from rill-load's progress totals). "cluster": three workers, load into w1, so w1 keeps
# the third it owns and forwards two thirds over peer links; "single": one unclustered
# worker on the same load. Both: one loop thread per worker. The machine's CPU count is
# printed: on 2 cores the three workers, the sender and the sink share them.
# Prints a table; writes nothing else. Builds nothing: run scripts/setup first.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=5
duration=8
session_ms=2000
tput_runs=3
build_dir=build
while [ $# -gt 0 ]; do
    case "$1" in
    --runs) runs="${2:?}"; shift 2 ;;
    --duration) duration="${2:?}"; shift 2 ;;
    --session-timeout-ms) session_ms="${2:?}"; shift 2 ;;
    --tput-runs) tput_runs="${2:?}"; shift 2 ;;
    --build-dir) build_dir="${2:?}"; shift 2 ;;
    -h|--help) sed -n '2,24s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "cluster_bench: unknown option '$1' (try --help)" >&2; exit 2 ;;
    esac
done
for v in "$runs" "$duration" "$session_ms" "$tput_runs"; do
    case "$v" in ''|*[!0-9]*) echo "cluster_bench: '$v' is not a positive integer" >&2; exit 2 ;; esac
done

WORKER=$build_dir/examples/rill-worker
LOAD=$build_dir/bench/rill-load
for b in "$WORKER" "$LOAD"; do
    [ -x "$b" ] || { echo "cluster_bench: $b is missing (run scripts/setup)" >&2; exit 1; }
done

say() { printf 'cluster_bench: %s\n' "$*" >&2; }
now_ms() { local t; t=$(date +%s%N); echo $((t / 1000000)); }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cluster_bench.XXXXXX")
declare -A pid log port
zk_up=0

# shellcheck disable=SC2317
cleanup()
{
    local id p
    for id in "${!pid[@]}"; do
        p=${pid[$id]}
        [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true
    done
    for id in "${!pid[@]}"; do
        p=${pid[$id]}
        [ -n "$p" ] || continue
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    [ "$zk_up" = 1 ] && ./scripts/zk-server stop "$tmp/zk" || true
    if [ -n "${KEEP_TMP:-}" ]; then say "logs kept in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM

zkport=$(./scripts/zk-server start "$tmp/zk") || { rc=$?; say "cannot start ZooKeeper"; exit "$rc"; }
zk_up=1
ZK=127.0.0.1:$zkport

. scripts/lib/free-port.sh # free_port (the working directory is the repository root)

. bench/lib/workers.sh # worker_start, worker_halt, members_of, converged, median

# start ID ROOT [extra args]: a worker (ROOT "-" = not clustered); sets pid/log/port.
start()
{
    local id=$1 root=$2
    shift 2
    local args=()
    [ "$root" = - ] || args+=(--zk "$ZK" --cluster-root "$root" --worker-id "$id"
        --peer-listen 127.0.0.1:0 --session-timeout-ms "$session_ms")
    worker_start "$id" "${args[@]}" "$@"
}

# converge MEMBERS ID...: polls until every ID's last view has MEMBERS with one epoch;
# prints the ms waited since T0 (global). Fails after 60 s.
converge()
{
    local want=$1 t
    shift
    while :; do
        t=$(now_ms)
        if converged "$want" "$@"; then echo $((t - T0)); return 0; fi
        [ $((t - T0)) -lt 60000 ] || return 1
        sleep 0.01
    done
}

maxof() { sort -n | tail -n1; }

# ------------------------------------------------------------------ convergence

join_ms=()
leave_ms=()
crash_ms=()
say "convergence: $runs runs (session timeout $session_ms ms)"
for r in $(seq "$runs"); do
    root=/rill/bench-$$-$r
    start w1 "$root"
    start w2 "$root"
    T0=$(now_ms)
    converge w1,w2 w1 w2 >/dev/null || { say "w1, w2 did not converge"; exit 1; }

    T0=$(now_ms)
    start w3 "$root"
    v=$(converge w1,w2,w3 w1 w2 w3) || { say "join did not converge"; exit 1; }
    join_ms+=("$v")

    T0=$(now_ms)
    kill -TERM "${pid[w3]}"
    v=$(converge w1,w2 w1 w2) || { say "leave did not converge"; exit 1; }
    leave_ms+=("$v")
    wait "${pid[w3]}" 2>/dev/null || true
    pid[w3]=""

    start w3 "$root"
    T0=$(now_ms)
    converge w1,w2,w3 w1 w2 w3 >/dev/null || { say "rejoin did not converge"; exit 1; }
    sleep 0.3 # let the session settle (pings) before the crash
    T0=$(now_ms)
    { kill -KILL "${pid[w3]}"; wait "${pid[w3]}"; } 2>/dev/null || true
    pid[w3]=""
    v=$(converge w1,w2 w1 w2) || { say "crash did not converge"; exit 1; }
    crash_ms+=("$v")
    worker_halt w1
    worker_halt w2
    say "  run $r: join ${join_ms[-1]} ms, leave ${leave_ms[-1]} ms, crash ${crash_ms[-1]} ms"
done

# ------------------------------------------------------------------ throughput

# steady RATE from rill-load's progress lines on stderr: (recv at last line with t <= D) -
# (recv at first line with t >= 2) over the time between them.
steady()
{
    awk -v d="$duration" '
        /^\[ *[0-9.]+s\] sent\/s/ {
            match($0, /[0-9.]+s\]/); t = substr($0, RSTART, RLENGTH - 2) + 0
            for (i = 1; i <= NF; i++) if ($i == "recv" && $(i+1) ~ /^[0-9]+$/) r = $(i+1)
            if (t >= 2 && !have0) { t0 = t; r0 = r; have0 = 1 }
            if (t <= d + 0.05) { t1 = t; r1 = r }
        }
        END { if (have0 && t1 > t0) printf "%.0f\n", (r1 - r0) / (t1 - t0); else print "-" }
    ' "$1"
}

json_field() { sed -n "s/.*\"$2\": \([0-9.]*\).*/\1/p" "$1"; }

single=()
cluster=()
fwd_frac=()
say "throughput: $tput_runs runs of $duration s each, single worker and 3-worker cluster"
run_single()
{
    local sp; sp=$(free_port)
    start s1 - --sink "127.0.0.1:$sp"
    "$LOAD" --target "127.0.0.1:${port[s1]}" --sink-listen "127.0.0.1:$sp" --comp 1 --keys 10000 \
        --duration "$duration" --json >"$tmp/single.json" 2>"$tmp/single.err" || true
    worker_halt s1
    single+=("$(steady "$tmp/single.err")")
    say "  single: ${single[-1]} frames/s steady (rill-load: sent $(json_field "$tmp/single.json" sent), lost $(json_field "$tmp/single.json" lost))"
}
run_cluster()
{
    local sp root=/rill/tput-$$-$1
    sp=$(free_port)
    start w1 "$root" --sink "127.0.0.1:$sp"
    start w2 "$root" --sink "127.0.0.1:$sp"
    start w3 "$root" --sink "127.0.0.1:$sp"
    T0=$(now_ms)
    converge w1,w2,w3 w1 w2 w3 >/dev/null || { say "cluster did not form"; exit 1; }
    "$LOAD" --target "127.0.0.1:${port[w1]}" --sink-listen "127.0.0.1:$sp" --comp 1 --keys 10000 \
        --duration "$duration" --json >"$tmp/cluster.json" 2>"$tmp/cluster.err" || true
    worker_halt w1
    worker_halt w2
    worker_halt w3
    cluster+=("$(steady "$tmp/cluster.err")")
    local in fwd
    in=$(grep '^rill-worker: final ' "${log[w1]}" | tr ' ' '\n' | sed -n 's/^in=//p')
    fwd=$(grep '^rill-worker: final ' "${log[w1]}" | tr ' ' '\n' | sed -n 's/^fwd=//p')
    fwd_frac+=("$(awk -v a="${fwd:-0}" -v b="${in:-0}" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "-" }')")
    say "  cluster: ${cluster[-1]} frames/s steady, w1 forwarded ${fwd_frac[-1]} of its input (rill-load: sent $(json_field "$tmp/cluster.json" sent), lost $(json_field "$tmp/cluster.json" lost))"
}
for r in $(seq "$tput_runs"); do
    if [ $((r % 2)) = 1 ]; then run_single; run_cluster "$r"; else run_cluster "$r"; run_single; fi
done

# ------------------------------------------------------------------ table

echo
echo "rill cluster benchmark: $(nproc) CPUs, ZooKeeper tickTime 200 ms, session timeout $session_ms ms"
printf '%-34s %10s %10s %6s\n' "membership convergence" "median ms" "max ms" "runs"
printf '%-34s %10s %10s %6s\n' "join (3rd member starts)" "$(printf '%s\n' "${join_ms[@]}" | median)" \
    "$(printf '%s\n' "${join_ms[@]}" | maxof)" "${#join_ms[@]}"
printf '%-34s %10s %10s %6s\n' "graceful leave (SIGTERM)" "$(printf '%s\n' "${leave_ms[@]}" | median)" \
    "$(printf '%s\n' "${leave_ms[@]}" | maxof)" "${#leave_ms[@]}"
printf '%-34s %10s %10s %6s\n' "crash (SIGKILL)" "$(printf '%s\n' "${crash_ms[@]}" | median)" \
    "$(printf '%s\n' "${crash_ms[@]}" | maxof)" "${#crash_ms[@]}"
echo
sm=$(printf '%s\n' "${single[@]}" | grep -v '^-$' | median)
cm=$(printf '%s\n' "${cluster[@]}" | grep -v '^-$' | median)
printf '%-34s %14s %s\n' "throughput (64 B passthrough)" "median fr/s" "runs (frames/s)"
printf '%-34s %14s %s\n' "single worker" "$sm" "${single[*]}"
printf '%-34s %14s %s\n' "3-worker cluster, load into w1" "$cm" "${cluster[*]}"
printf '%-34s %14s\n' "cluster / single" "$(awk -v a="$cm" -v b="$sm" 'BEGIN { if (b > 0 && a != "-") printf "%.2f", a / b; else print "-" }')"
printf '%-34s %14s\n' "w1 forwarded / w1 input" "${fwd_frac[*]}"
