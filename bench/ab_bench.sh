#!/usr/bin/env bash
# bench/ab_bench.sh WORKER_A WORKER_B [options] — two builds of rill-worker (before and
# after a change) under the same load, alternating A B A B ... round after round, with
# rill-load on the same machine as the load and the sink. Prints per round each one's
# receive rate, CPU time per frame (user + system of the worker process over its whole
# run, from /proc/PID/stat) and rill-load's latency p50 / p99 (with --rate; 0 in a closed
# loop), then the medians of the per-round ratios B/A.
#
#   --threads N     loop threads of both workers (default 2)
#   --rate R        frames per second (default 0 = closed loop, as fast as it goes)
#   --comp ID       1 passthrough (default), 2 count
#   --size B        payload bytes (default 64)
#   --conns N       connections (default 64)
#   --rounds N      rounds (default 5)
#   --duration S    seconds per run (default 3)
#   --load PATH     rill-load (default: build/bench/rill-load)
#
# CPU per frame is the figure to compare at a fixed rate (both receive the same frames);
# the rate is, in a closed loop (on a small machine the load generator shares the cores,
# so it measures the pair).
set -euo pipefail
usage() { sed -n '2,19s/^# \{0,1\}//p' "$0"; }
[ $# -ge 2 ] || { usage >&2; exit 2; }
A=$1 B=$2
shift 2
here=$(cd "$(dirname "$0")/.." && pwd)
threads=2 rate=0 comp=1 size=64 conns=64 rounds=5 dur=3 load=$here/build/bench/rill-load
while [ $# -gt 0 ]; do
    case $1 in
    --threads) threads=$2 ;;
    --rate) rate=$2 ;;
    --comp) comp=$2 ;;
    --size) size=$2 ;;
    --conns) conns=$2 ;;
    --rounds) rounds=$2 ;;
    --duration) dur=$2 ;;
    --load) load=$2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "ab_bench: unknown option $1" >&2; exit 2 ;;
    esac
    shift 2
done
for f in "$A" "$B" "$load"; do [ -x "$f" ] || { echo "ab_bench: $f is not executable" >&2; exit 2; }; done
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
hz=$(getconf CLK_TCK)

. "$here/scripts/lib/free-port.sh" # free_port

# one_run WORKER -> "rate cpu_ns_per_frame p50_us p99_us"; fails (says why) when a run did not complete
one_run()
{
    local w=$1 lp sp
    lp=$(free_port)
    sp=$(free_port)
    [ "$sp" != "$lp" ] || sp=$(free_port)
    local largs=(--target "127.0.0.1:$lp" --connections "$conns" --size "$size" --comp "$comp"
        --keys 1024 --duration "$dur" --batch 16 --sink-listen "127.0.0.1:$sp" --drain 3 --json --quiet)
    [ "$rate" != 0 ] && largs+=(--rate "$rate")
    "$load" "${largs[@]}" >"$T/load.json" 2>"$T/load.err" &
    local lpid=$!
    "$w" --listen "127.0.0.1:$lp" --threads "$threads" --quiet --sink "127.0.0.1:$sp" 2>"$T/w.err" &
    local wpid=$!
    if ! wait $lpid; then
        echo "ab_bench: rill-load failed: $(tail -1 "$T/load.err"); worker: $(tail -1 "$T/w.err")" >&2
        kill $wpid 2>/dev/null
        wait $wpid 2>/dev/null
        return 1
    fi
    local ticks
    ticks=$(awk '{print $14 + $15}' "/proc/$wpid/stat")
    kill -TERM $wpid
    wait $wpid 2>/dev/null || true
    local r n p50 p99
    field() { grep -o "\"$1\": [0-9.e+]*" "$T/load.json" | head -1 | cut -d: -f2 | tr -d ' '; }
    r=$(field recv_rate)
    n=$(field received)
    p50=$(field lat_p50_us)
    p99=$(field lat_p99_us)
    awk -v r="$r" -v n="$n" -v t="$ticks" -v hz="$hz" -v a="${p50:-0}" -v b="${p99:-0}" \
        'BEGIN { printf "%.0f %.0f %.0f %.0f\n", r, (n > 0 ? t * 1e9 / hz / n : 0), a, b }'
}

printf 'round\tA_rate\tA_cpu_ns\tA_p50_us\tA_p99_us\tB_rate\tB_cpu_ns\tB_p50_us\tB_p99_us\n'
# A run that did not complete (a port taken meanwhile: the machine is shared) is tried
# again, up to three times.
run3()
{
    one_run "$1" || one_run "$1" || one_run "$1"
}
for i in $(seq "$rounds"); do
    ra=$(run3 "$A")
    rb=$(run3 "$B")
    printf '%s\t%s\t%s\n' "$i" "${ra// /$'\t'}" "${rb// /$'\t'}"
done | tee "$T/rounds"
awk 'function median(v, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
         if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
         return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2 }
     { n++; rate[n] = $6 / $2; cpu[n] = $7 / $3; p50[n] = $4 > 0 ? $8 / $4 : 0; p99[n] = $5 > 0 ? $9 / $5 : 0 }
     END { printf "B/A median over %d rounds: rate %.2f, CPU per frame %.2f, latency p50 %.2f, p99 %.2f\n",
                  n, median(rate, n), median(cpu, n), median(p50, n), median(p99, n) }' "$T/rounds"
