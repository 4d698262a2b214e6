#!/usr/bin/env bash
# bench/acked_bench.sh [BUILD_DIR] [ROUNDS] [THREADS] — what acknowledged delivery costs:
# rill-worker passthrough (THREADS loops, default 1) into rill-load's own sink, in three
# modes alternating in the same run, 64-byte frames, 1 and 64 source connections, 4 s each:
#   best-effort  plain sources, --sink ADDR
#   acked-sink   plain sources, --sink ADDR,delivery=acked
#   acked        rill-load --acked sources (HELLO, retained until ACK) and the acked sink
# Per run: the end-to-end rate, the worker's CPU per frame (user + system time from
# /proc, over the frames the sink received), and for acked sources the ack latency
# (rill-load: send time stamp of the newest frame an ACK covers -> the ACK) p50 / p99.
# Per round and connection count: each acked mode's rate and CPU per frame as a ratio
# to best-effort's. A benchmark, not a test: the machine's noise shows in the spread.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
rounds=${2:-3}
threads=${3:-1}
W=$build/examples/rill-worker
L=$build/bench/rill-load
. scripts/lib/free-port.sh
[ -x "$W" ] && [ -x "$L" ] || { echo "acked_bench: build $build first (scripts/setup)" >&2; exit 2; }
tick_ns=$((1000000000 / $(getconf CLK_TCK)))

num() { sed -n "s/.*\"$1\": *\([0-9.]*\).*/\1/p" <<<"$2"; }

# run MODE CONNS: prints "RATE CPU_NS_PER_FRAME ACK_P50_US ACK_P99_US" (- when n/a)
run()
{
    local mode=$1 c=$2 wp sp sink out acked="" t0 t1
    wp=$(free_port)
    sp=$(free_port)
    sink="127.0.0.1:$sp"
    [ "$mode" != best-effort ] && sink="$sink,delivery=acked"
    [ "$mode" = acked ] && acked=--acked
    "$W" --listen "127.0.0.1:$wp" --threads "$threads" --sink "$sink" --quiet 2>/dev/null &
    local wpid=$!
    sleep 0.5
    t0=$(awk '{print $14 + $15}' "/proc/$wpid/stat")
    out=$("$L" --target "127.0.0.1:$wp" --sink-listen "127.0.0.1:$sp" --connections "$c" \
        --size 64 --duration 4 $acked --quiet --json 2>/dev/null) || true
    t1=$(awk '{print $14 + $15}' "/proc/$wpid/stat")
    kill -TERM "$wpid"
    wait "$wpid" 2>/dev/null || true
    local rate recv p50 p99
    rate=$(num recv_rate "$out")
    recv=$(num received "$out")
    p50=$(num ack_p50_us "$out")
    p99=$(num ack_p99_us "$out")
    awk -v r="$rate" -v n="$recv" -v t="$((t1 - t0))" -v tick="$tick_ns" -v p50="${p50:--}" \
        -v p99="${p99:--}" 'BEGIN { printf "%s %.1f %s %s\n", r, n ? t * tick / n : 0, p50, p99 }'
}

echo "acked_bench: $threads loop(s), 64-byte frames, 4 s per run"
for r in $(seq "$rounds"); do
    for c in 1 64; do
        read -r be_r be_c _ _ <<<"$(run best-effort "$c")"
        read -r as_r as_c _ _ <<<"$(run acked-sink "$c")"
        read -r ak_r ak_c ak_p50 ak_p99 <<<"$(run acked "$c")"
        awk -v r="$r" -v c="$c" -v be_r="$be_r" -v be_c="$be_c" -v as_r="$as_r" -v as_c="$as_c" \
            -v ak_r="$ak_r" -v ak_c="$ak_c" -v p50="$ak_p50" -v p99="$ak_p99" 'BEGIN {
            printf "round %d, %2d conns: best-effort %.2f M/s %.0f ns/frame | acked sink %.2f M/s " \
                   "%.0f ns (rate x%.2f, cpu x%.2f) | acked both %.2f M/s %.0f ns (rate x%.2f, " \
                   "cpu x%.2f), ack p50 %s us p99 %s us\n",
                   r, c, be_r / 1e6, be_c, as_r / 1e6, as_c, as_r / be_r, as_c / be_c,
                   ak_r / 1e6, ak_c, ak_r / be_r, ak_c / be_c, p50, p99 }'
    done
done
