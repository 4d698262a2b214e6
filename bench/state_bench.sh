#!/usr/bin/env bash
# bench/state_bench.sh — what managed keyed state costs, and how long its groups take to
# move, with rill-worker processes, rill-load and a throwaway ZooKeeper server
# (scripts/zk-server) on loopback.
#
#   bench/state_bench.sh [--keys K1,K2,...] [--rate R] [--runs N] [--frames N]
#                        [--session-timeout-ms MS] [--key-groups N] [--build-dir DIR]
#
# Cost (N runs each, default 3, alternating): rill-hotpath drives --frames 64-byte frames
# (default 100000000) through one loop's decode and dispatch in-process, once into `count`
# keeping its own table and once into `count` in managed state, over 1 024 keys and over
# 1 000 000 keys (rill-hotpath --keys: the tables leave the caches); the figure is frames
# per second of wall time, and managed / own table is the ratio.
#
# Moves, for each key count K (default 10000 and 1000000), N runs each: workers w1 and w2
# (one loop each, `count` with --count-every 1, so every frame a member counts sends one
# frame to the sink) form a cluster; rill-load fills the state with 5 x K frames over the
# K keys, then sends R frames/s (default 200000) into w1 for 26 s; a separate rill-load
# process is the sink and prints what it received every 0.1 s. At 8 s w3 joins; once every
# member reports no group waiting (rill_groups_waiting) and the join's 5-s window (below)
# has passed, w3 is killed with SIGKILL. Each member's /metrics is read every 0.05 s. Figures:
#   state per key  rill_state_bytes summed over w1, w2 after the fill, over K: both the
#                  owner's values and the standby copy (two copies of every key)
#   standby B/frame  rill_standby_bytes_total summed, over the frames the sink received,
#                  between 3 s and 7 s of the steady load
#   join: view     from w3's start until all three log the same 3-member view
#   join: settled  from w3's start until, after that, no member has a group waiting
#   crash: view    from the SIGKILL until w1 and w2 log a 2-member view; bounded below by
#                  the session timeout (default 2000 ms): ZooKeeper decides that w3 is gone
#   crash: settled from the SIGKILL until no member has a group waiting after that
#   dip            the lowest 0.1-s sink rate within 5 s after the join (the kill), over R
#   backlog        the most frames the sink trailed behind the frames sent, in that window,
#                  as seconds of load (frames / R)
# On 2 CPUs the three workers, the sender and the sink share them: the absolute figures
# are this machine's, the shape (what a join or a crash costs against steady load) is
# the point. Prints a table; writes nothing else. Builds nothing: run scripts/setup first.
set -euo pipefail
cd "$(dirname "$0")/.."

keys_list=10000,1000000
rate=200000
runs=3
frames=100000000
session_ms=2000
groups=4096
build_dir=build
while [ $# -gt 0 ]; do
    case "$1" in
    --keys) keys_list="${2:?}"; shift 2 ;;
    --rate) rate="${2:?}"; shift 2 ;;
    --runs) runs="${2:?}"; shift 2 ;;
    --frames) frames="${2:?}"; shift 2 ;;
    --session-timeout-ms) session_ms="${2:?}"; shift 2 ;;
    --key-groups) groups="${2:?}"; shift 2 ;;
    --build-dir) build_dir="${2:?}"; shift 2 ;;
    -h|--help) sed -n '2,36s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "state_bench: unknown option '$1' (try --help)" >&2; exit 2 ;;
    esac
done
for v in "$rate" "$runs" "$frames" "$session_ms" "$groups" ${keys_list//,/ }; do
    case "$v" in ''|*[!0-9]*|0) echo "state_bench: '$v' is not a positive integer" >&2; exit 2 ;; esac
done

WORKER=$build_dir/examples/rill-worker
LOAD=$build_dir/bench/rill-load
HOTPATH=$build_dir/bench/rill-hotpath
for b in "$WORKER" "$LOAD" "$HOTPATH"; do
    [ -x "$b" ] || { echo "state_bench: $b is missing (run scripts/setup)" >&2; exit 1; }
done
command -v curl >/dev/null || { echo "state_bench: needs curl (apt-get install curl)" >&2; exit 1; }

say() { printf 'state_bench: %s\n' "$*" >&2; }
now_ms() { local t; t=$(date +%s%N); echo $((t / 1000000)); }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/state_bench.XXXXXX")
declare -A pid log port mport
zk_up=0

# shellcheck disable=SC2317
cleanup()
{
    local id p
    for id in "${!pid[@]}"; do
        p=${pid[$id]}
        [ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true
    done
    for id in "${!pid[@]}"; do
        p=${pid[$id]}
        [ -n "$p" ] && wait "$p" 2>/dev/null || true
    done
    [ "$zk_up" = 1 ] && ./scripts/zk-server stop "$tmp/zk" || true
    if [ -n "${KEEP_TMP:-}" ]; then say "logs kept in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM

. scripts/lib/free-port.sh # free_port (the working directory is the repository root)
. bench/lib/workers.sh     # worker_start, worker_halt, members_of, converged, median

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0 && a != "-") printf "%.2f", a / b; else print "-" }'; }

# ------------------------------------------------------------------ cost

# hotpath_rate COMP KEYS: frames per second of wall time through rill-hotpath, its keys
# cycling over KEYS.
hotpath_rate()
{
    local t0 t1
    t0=$(date +%s%N)
    "$HOTPATH" --frames "$frames" --comp "$1" --keys "$2" >/dev/null
    t1=$(date +%s%N)
    awk -v n="$frames" -v ns=$((t1 - t0)) 'BEGIN { printf "%.0f\n", n / (ns / 1e9) }'
}

# cost KEYS: fills own[KEYS], managed[KEYS] and ratios[KEYS] with the runs' figures.
declare -A own managed ratios
cost()
{
    local k=$1 r o m
    for r in $(seq "$runs"); do
        if [ $((r % 2)) = 1 ]; then
            o=$(hotpath_rate 2 "$k"); m=$(hotpath_rate 3 "$k")
        else
            m=$(hotpath_rate 3 "$k"); o=$(hotpath_rate 2 "$k")
        fi
        say "  $k keys, run $r: own table $o frames/s, managed $m frames/s"
        own[$k]+="$o "; managed[$k]+="$m "; ratios[$k]+="$(ratio "$m" "$o") "
    done
}
say "cost: $runs runs of $frames frames each, count with its own table and in managed state"
cost_keys="1024 1000000"
for k in $cost_keys; do cost "$k"; done

# ------------------------------------------------------------------ moves

zkport=$(./scripts/zk-server start "$tmp/zk") || { rc=$?; say "cannot start ZooKeeper"; exit "$rc"; }
zk_up=1
ZK=127.0.0.1:$zkport

# start ID ROOT SINKPORT: a clustered worker running count; sets pid/log/port/mport.
start()
{
    local id=$1 root=$2 sp=$3
    mport[$id]=$(free_port)
    worker_start "$id" --zk "$ZK" --cluster-root "$root" --worker-id "$id" \
        --peer-listen 127.0.0.1:0 --session-timeout-ms "$session_ms" --key-groups "$groups" \
        --sink "127.0.0.1:$sp" --count-every 1 --metrics "127.0.0.1:${mport[$id]}"
}

# metric NAME ID...: the sample NAME summed over the members' /metrics.
metric()
{
    local name=$1 id sum=0 v
    shift
    for id in "$@"; do
        v=$(curl -s --max-time 2 "http://127.0.0.1:${mport[$id]}/metrics" |
            awk -v n="$name" '$1 == n { printf "%.0f", $2 }')
        sum=$((sum + ${v:-0}))
    done
    echo "$sum"
}

# settle MEMBERS ID...: from T0, the ms until the members converged on MEMBERS ("view")
# and then until none has a group waiting ("settled"); prints "VIEW SETTLED". Fails
# after 60 s.
settle()
{
    local want=$1 view="" t
    shift
    while :; do
        t=$(( $(now_ms) - T0 ))
        [ "$t" -lt 60000 ] || return 1
        if [ -z "$view" ]; then
            converged "$want" "$@" && view=$t
        elif [ "$(metric rill_groups_waiting "$@")" = 0 ]; then
            echo "$view $t"
            return 0
        fi
        sleep 0.05
    done
}

# sink_recv FILE: the last cumulative recv count in a sink's progress lines.
sink_recv() { sed -n 's/.*  recv \([0-9][0-9]*\).*/\1/p' "$1" | tail -n1; }

# dip_backlog FILE FROM_MS: the lowest 0.1-s rate over R (dip) and the largest lag of the
# received total behind the sent total over R (backlog, seconds) in the 5 s after FROM_MS
# (sink time), less the lag of the steady load (its mean between 3 s and 7 s of it). The
# sent total is the rate times the time since SEND_MS (sink time).
dip_backlog()
{
    awk -v from="$2" -v send="$SEND_MS" -v r="$rate" -v base="$SEND_BASE" '
        /^\[ *[0-9.]+s\] sent\/s/ {
            match($0, /[0-9.]+s\]/); t = (substr($0, RSTART, RLENGTH - 2) + 0) * 1000
            for (i = 1; i <= NF; i++) if ($i == "recv" && $(i+1) ~ /^[0-9]+$/) c = $(i+1)
            lag = base + r * (t - send) / 1000 - c
            if (t >= send + 3000 && t <= send + 7000) { slag += lag; ns++ }
            if (t >= from && t <= from + 5000) {
                if (have && t > pt) { rt = (c - pc) / ((t - pt) / 1000); if (!hr || rt < lo) { lo = rt; hr = 1 } }
                if (!hl || lag > mlag) { mlag = lag; hl = 1 }
            }
            pt = t; pc = c; have = 1
        }
        END { printf "%.2f %.3f\n", (hr ? lo / r : -1), (mlag - (ns ? slag / ns : 0)) / r }
    ' "$1"
}

declare -A res # res[K,FIELD]: the runs' figures, space-separated; FIELD names a variable below
fields="per_key sb_frame jv js moved jdip jlag cv cs cdip clag lost"
say "moves: $runs runs per key count ($keys_list), $rate frames/s, $groups key groups, session timeout $session_ms ms"
for K in ${keys_list//,/ }; do
    for r in $(seq "$runs"); do
        root=/rill/state-bench-$$-$K-$r
        sp=$(free_port)
        slog=$tmp/sink.$K.$r.log
        "$LOAD" --connections 0 --sink-listen "127.0.0.1:$sp" --duration 100000 --progress 0.1 \
            </dev/null >/dev/null 2>"$slog" &
        pid[sink]=$!
        SINK_T0=$(now_ms)
        start w1 "$root" "$sp"
        start w2 "$root" "$sp"
        T0=$(now_ms)
        settle w1,w2 w1 w2 >/dev/null || { say "w1, w2 did not converge"; exit 1; }

        fill=$((5 * K))
        "$LOAD" --target "127.0.0.1:${port[w1]}" --comp 2 --keys "$K" --count "$fill" --quiet \
            --seed "$r" >/dev/null 2>&1
        deadline=$(( $(now_ms) + 120000 ))
        while [ "$(sink_recv "$slog")" -lt "$fill" ] 2>/dev/null || [ -z "$(sink_recv "$slog")" ]; do
            [ "$(now_ms)" -lt "$deadline" ] || { say "the fill did not reach the sink"; exit 1; }
            sleep 0.1
        done
        sleep 0.5
        per_key=$(awk -v b="$(metric rill_state_bytes w1 w2)" -v k="$K" 'BEGIN { printf "%.0f", b / k }')

        SEND_BASE=$(sink_recv "$slog")
        "$LOAD" --target "127.0.0.1:${port[w1]}" --comp 2 --keys "$K" --rate "$rate" --duration 26 \
            --quiet --seed $((r + 100)) >/dev/null 2>&1 &
        pid[load]=$!
        SEND_MS=$(( $(now_ms) - SINK_T0 ))
        sleep 3
        sb0=$(metric rill_standby_bytes_total w1 w2); c0=$(sink_recv "$slog")
        sleep 4
        sb1=$(metric rill_standby_bytes_total w1 w2); c1=$(sink_recv "$slog")
        sb_frame=$(awk -v a=$((sb1 - sb0)) -v b=$((c1 - c0)) 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "-" }')
        sleep 1

        moved0=$(metric rill_groups_moved_total w1 w2)
        T0=$(now_ms)
        join_at=$((T0 - SINK_T0))
        start w3 "$root" "$sp"
        read -r jv js <<<"$(settle w1,w2,w3 w1 w2 w3)" || { say "the join did not settle"; exit 1; }
        moved=$(( $(metric rill_groups_moved_total w1 w2 w3) - moved0 ))
        rest=$(( (5000 - js + 999) / 1000 + 1 )) # the join's 5-s window ends before the kill
        sleep $(( rest > 1 ? rest : 1 ))
        T0=$(now_ms)
        kill_at=$((T0 - SINK_T0))
        worker_halt w3 KILL
        read -r cv cs <<<"$(settle w1,w2 w1 w2)" || { say "the crash did not settle"; exit 1; }
        promoted=$(metric rill_groups_promoted_total w1 w2)
        lost=$(metric rill_state_lost_groups_total w1 w2)
        wait "${pid[load]}" 2>/dev/null || true
        pid[load]=""
        sleep 1
        read -r jdip jlag <<<"$(dip_backlog "$slog" "$join_at")"
        read -r cdip clag <<<"$(dip_backlog "$slog" "$kill_at")"
        worker_halt w1
        worker_halt w2
        worker_halt sink
        say "  K=$K run $r: state $per_key B/key, standby $sb_frame B/frame; join: view $jv ms, settled $js ms, $moved groups moved, dip $jdip, backlog $jlag s; crash: view $cv ms, settled $cs ms, $promoted promoted, $lost lost, dip $cdip, backlog $clag s"
        for f in $fields; do res[$K,$f]+="${!f} "; done
    done
done

# ------------------------------------------------------------------ table

med() { printf '%s\n' $1 | grep -v '^-$' | median; }
rows=("per_key|state per key, both copies (B)" "sb_frame|standby traffic per frame (B)"
    "jv|join: view agreed (ms)" "js|join: every group settled (ms)" "moved|join: groups moved"
    "jdip|join: lowest 0.1-s rate / offered" "jlag|join: largest backlog (s of load)"
    "cv|crash: view agreed (ms)" "cs|crash: every group settled (ms)"
    "cdip|crash: lowest 0.1-s rate / offered" "clag|crash: largest backlog (s of load)"
    "lost|crash: groups lost")
echo
echo "rill managed-state benchmark: $(nproc) CPUs, $groups key groups, session timeout $session_ms ms, $rate frames/s"
for k in $cost_keys; do
    printf '%-36s %14s %s\n' "cost (64 B, one loop), $k keys" "median fr/s" "runs (frames/s)"
    printf '%-36s %14s %s\n' "count, its own table" "$(med "${own[$k]}")" "${own[$k]}"
    printf '%-36s %14s %s\n' "count, managed state" "$(med "${managed[$k]}")" "${managed[$k]}"
    printf '%-36s %14s %s\n' "managed / own table (target 0.8)" "$(med "${ratios[$k]}")" "${ratios[$k]}"
done
for K in ${keys_list//,/ }; do
    echo
    printf '%-36s %10s %s\n' "$K keys" "median" "runs"
    for row in "${rows[@]}"; do
        f=${row%%|*}
        printf '%-36s %10s %s\n' "${row#*|}" "$(med "${res[$K,$f]}")" "${res[$K,$f]}"
    done
done
