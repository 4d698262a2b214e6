#!/usr/bin/env bash
# bench/acked_sink_bench.sh [BUILD_DIR] [ROUNDS] — rill-worker passthrough into a sink, best-effort
# against delivery=acked, alternating in the same run; 64-byte frames, 1 and 64 source
# connections, 4 s each; the sink is rill-load's own (--sink-listen), which answers HELLO
# and acknowledges what it counted. Prints each run's end-to-end rate and, per round and
# connection count, the ratio acked / best-effort. A benchmark, not a test: the machine's
# noise shows in the spread of the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
rounds=${2:-3}
W=$build/examples/rill-worker
L=$build/bench/rill-load
. scripts/lib/free-port.sh
[ -x "$W" ] && [ -x "$L" ] || { echo "acked_sink_bench: build $build first (scripts/setup)" >&2; exit 2; }

# run MODE CONNS: prints the end-to-end rate in frames/s
run()
{
    local mode=$1 c=$2 wp sp sink out
    wp=$(free_port)
    sp=$(free_port)
    sink="127.0.0.1:$sp"
    [ "$mode" = acked ] && sink="$sink,delivery=acked"
    "$W" --listen "127.0.0.1:$wp" --sink "$sink" --quiet 2>/dev/null &
    local wpid=$!
    sleep 0.5
    out=$("$L" --target "127.0.0.1:$wp" --sink-listen "127.0.0.1:$sp" --connections "$c" \
        --size 64 --duration 4 --quiet --json 2>/dev/null)
    kill -TERM "$wpid"
    wait "$wpid" 2>/dev/null || true
    sed -n 's/.*"recv_rate": *\([0-9.]*\).*/\1/p' <<<"$out"
}

for r in $(seq "$rounds"); do
    for c in 1 64; do
        be=$(run best-effort "$c")
        ak=$(run acked "$c")
        awk -v r="$r" -v c="$c" -v be="$be" -v ak="$ak" 'BEGIN {
            printf "round %d, %2d connections: best-effort %.2f M/s, acked %.2f M/s, acked/best-effort %.2f\n",
                   r, c, be / 1e6, ak / 1e6, ak / be }'
    done
done
