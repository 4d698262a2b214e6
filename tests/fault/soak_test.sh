#!/usr/bin/env bash
# soak_test.sh RILL_WORKER RILL_LOAD IO_URING_PROBE — 60 s at about half of the maximum
# rate through rill-worker (2 loop threads) to a rill-load acting as the sink. The maximum
# rate is measured first (5 s at full speed against the same worker). The worker's RSS
# (/proc/PID/status) is sampled once it is ready (the baseline), after the calibration and
# every 2 s of the soak: its growth over the baseline must stay under the bound that the
# documented memory caps give (see RSS_BOUND below); its open descriptors
# (/proc/PID/fd) must be constant after a 10 s warm-up. Every frame sent must arrive, and
# the worker must exit 0 on SIGTERM. Label soak: scripts/test runs it in the Release suite
# only. Exits 77 when the environment cannot run it.
set -u

if [ $# -ne 3 ]; then
    echo "usage: $0 <rill-worker> <rill-load> <io_uring_probe>" >&2
    exit 2
fi
WORKER=$1
LOAD=$2
PROBE=$3
SOAK_S=${SOAK_SECONDS:-60}
WARMUP_S=10
# 16 MiB per loop: the full-speed calibration reaches the pause watermark, so the
# worker's output buffers have their working size before the soak starts (with the
# 64 MiB default they may still grow, by doubling, at a later burst: bounded, but a
# step in RSS). Not smaller: see "Sizing the sink buffer" in docs/operations.md.
SINK_BUFFER=$((16 << 20))
THREADS=2
SOAK_CONNS=4

# The bound on the worker's RSS growth over its idle baseline, from the memory caps that
# docs/operations.md states ("Limits and defaults", "Limits under stress"); the kernel's
# socket buffers are not process memory. As in tests/fault/backpressure_test.c:
#   per loop:       2 x sink_buffer (the queue, capped at sink_buffer, and the buffer being
#                   sent, which was a queue before)
#                 + 2 x the handoff stage limit (8 MiB; the sources pause above it, one
#                   iteration may overshoot it and doubling capacity rounds that up)
#                 + the receive buffers (64 x 16 KiB, the provided buffer ring)
#   per worker:     the handoff rings, threads^2 x clamp(32 MiB / threads^2, 256 KiB, 4 MiB)
#   per connection: a carry of at most max_frame (1 MiB) for a frame split across receive
#                   buffers; at most SOAK_CONNS + 1 (the sink's trickle) are open at once
#   slack:          16 MiB for malloc arenas and stacks of the worker's threads
#   RSS_BOUND = threads x (2 x sink_buffer + 2 x stage + 1 MiB) + rings + conns x max_frame
#               + 16 MiB  (2 loops, 16 MiB sink buffer: 98 + 16 + 5 + 16 = 135 MiB)
# A leak proportional to the traffic (the soak moves gigabytes) would exceed it.
MIB=$((1 << 20))
STAGE_HIGH=$((8 * MIB))
RECV_BUFS=$((64 * 16 << 10))
MAX_FRAME=$MIB
ring=$((32 * MIB / (THREADS * THREADS)))
[ "$ring" -lt $((256 << 10)) ] && ring=$((256 << 10))
[ "$ring" -gt $((4 * MIB)) ] && ring=$((4 * MIB))
RSS_BOUND=$((THREADS * (2 * SINK_BUFFER + 2 * STAGE_HIGH + RECV_BUFS) + THREADS * THREADS * ring +
    (SOAK_CONNS + 1) * MAX_FRAME + 16 * MIB))
[ -x "$WORKER" ] && [ -x "$LOAD" ] && [ -x "$PROBE" ] ||
    { echo "soak: missing binaries"; exit 77; }
# io_uring: the probe makes the C tests' check (exit 77 and the reason on ENOSYS or EPERM);
# rill-worker's own "cannot start: <error>" does not say which call failed.
"$PROBE" soak
case $? in
0) ;;
77) exit 77 ;;
*) echo "soak: $PROBE failed"; exit 1 ;;
esac
[ -r /proc/self/status ] || { echo "soak: no /proc"; exit 77; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/soak.XXXXXX")
PIDS=()
cleanup()
{
    local p
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'echo "soak: interrupted"; exit 1' INT TERM

fail() { echo "FAIL: $*"; echo "soak: 0 passed, 1 failed"; exit 1; }

. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../../scripts/lib/free-port.sh" # free_port
json_num()
{
    grep -o "\"$2\"[[:space:]]*:[[:space:]]*-\{0,1\}[0-9][0-9.eE+-]*" "$1" | head -n1 |
        sed 's/.*:[[:space:]]*//'
}

# start_worker LOG: a worker on $port with its sink on $sink; sets WPID.
start_worker()
{
    "$WORKER" --listen "127.0.0.1:$port" --sink "127.0.0.1:$sink" --threads "$THREADS" --quiet \
        --sink-buffer "$SINK_BUFFER" \
        </dev/null >"$1" 2>&1 &
    WPID=$!
    PIDS+=("$WPID")
    for _ in $(seq 100); do
        grep -q '^rill-worker: ready' "$1" && return 0
        kill -0 "$WPID" 2>/dev/null || break
        sleep 0.1
    done
    cat "$1"
    fail "worker not ready"
}
# stop_worker: SIGTERM, sets WRC to the exit status or "timeout".
stop_worker()
{
    kill -TERM "$WPID"
    WRC=timeout
    for _ in $(seq 300); do
        if ! kill -0 "$WPID" 2>/dev/null; then wait "$WPID"; WRC=$?; return; fi
        sleep 0.1
    done
}

port=$(free_port) && sink=$(free_port) && [ "$port" != "$sink" ] || fail "no free ports"

# The sink: a rill-load that listens for the worker's output for the whole test (and
# sends a trickle of its own); it counts every frame the worker emits, whoever sent it.
# One sink throughout: a worker whose sink went away learns it only when a send fails,
# and that send's data is gone.
timeout -k 5 $((SOAK_S + 120)) "$LOAD" --target "127.0.0.1:$port" \
    --sink-listen "127.0.0.1:$sink" --rate 10 --duration $((SOAK_S + 25)) --drain 15 \
    --json --quiet </dev/null >"$TMP/sink.json" 2>"$TMP/sink.err" &
SPID=$!
PIDS+=("$SPID")
for _ in $(seq 50); do
    grep -Eq "^ *[0-9]+: [0-9A-F]{8}:$(printf '%04X' "$sink") [0-9A-F]{8}:[0-9A-F]{4} 0A " \
        /proc/net/tcp && break
    sleep 0.1
done
start_worker "$TMP/worker.log"
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$WPID/status" 2>/dev/null; }
rss_base=$(rss_kb)
[ -n "$rss_base" ] || fail "no VmRSS for the worker"
rss_peak=$rss_base

# 1. the maximum rate on this machine, now; full speed also grows the worker's buffers
# to their working size before the measurement starts.
timeout -k 5 60 "$LOAD" --target "127.0.0.1:$port" --connections "$SOAK_CONNS" --duration 5 --json \
    --quiet </dev/null >"$TMP/max.json" 2>"$TMP/max.err" ||
    { cat "$TMP/max.err"; fail "calibration run failed"; }
max_rate=$(json_num "$TMP/max.json" send_rate)
rate=$(awk -v r="$max_rate" 'BEGIN { printf "%d", r / 2 }')
[ -n "$rate" ] && [ "$rate" -gt 0 ] || fail "no rate from the calibration run"
r=$(rss_kb)
[ -n "$r" ] || fail "worker gone after the calibration"
[ "$r" -gt "$rss_peak" ] && rss_peak=$r
echo "soak: maximum ${max_rate} frames/s; soaking ${SOAK_S} s at $rate frames/s"
echo "soak: rss ${rss_base} kB when ready, ${r} kB after the calibration"

# 2. the soak
timeout -k 5 $((SOAK_S + 60)) "$LOAD" --target "127.0.0.1:$port" --connections "$SOAK_CONNS" \
    --rate "$rate" --duration "$SOAK_S" --json --quiet </dev/null >"$TMP/soak.json" \
    2>"$TMP/soak.err" &
LPID=$!
PIDS+=("$LPID")
t0=$SECONDS
rss=()
fds=()
while kill -0 "$LPID" 2>/dev/null && [ $((SECONDS - t0)) -lt "$SOAK_S" ]; do
    sleep 2
    el=$((SECONDS - t0))
    r=$(rss_kb)
    f=$(ls "/proc/$WPID/fd" 2>/dev/null | wc -l)
    [ -n "$r" ] || fail "worker gone during the soak"
    [ "$r" -gt "$rss_peak" ] && rss_peak=$r
    echo "soak: t=${el}s rss=${r} kB fds=$f"
    if [ "$el" -ge "$WARMUP_S" ] && [ "$el" -lt "$SOAK_S" ]; then
        rss+=("$r")
        fds+=("$f")
    fi
done
lrc=0
wait "$LPID" || lrc=$?
[ "$lrc" -eq 0 ] || { cat "$TMP/soak.err"; fail "rill-load exited $lrc"; }
srcs=0
wait "$SPID" || srcs=$?
[ "$srcs" -eq 0 ] || { cat "$TMP/sink.err"; fail "the sink's rill-load exited $srcs"; }
sent=$(( $(json_num "$TMP/max.json" sent) + $(json_num "$TMP/soak.json" sent) +
    $(json_num "$TMP/sink.json" sent) ))
# The sink counts the frames of its own run as received and those of the two other
# rill-load runs (the rate probe and the soak itself) as foreign: all of them count here.
recv=$(( $(json_num "$TMP/sink.json" received) + $(json_num "$TMP/sink.json" foreign) ))
[ "${#rss[@]}" -ge 5 ] || fail "only ${#rss[@]} samples after the warm-up"

read -r rmin rmax < <(printf '%s\n' "${rss[@]}" | sort -n | sed -n '1p;$p' | tr '\n' ' ')
read -r fmin fmax < <(printf '%s\n' "${fds[@]}" | sort -n | sed -n '1p;$p' | tr '\n' ' ')
echo "soak: after warm-up: rss ${rmin}..${rmax} kB, fds ${fmin}..${fmax}, sent $sent, received $recv"
growth=$((rss_peak - rss_base))
bound_kb=$((RSS_BOUND / 1024))
echo "soak: rss growth: measured ${growth} kB (peak ${rss_peak} kB - baseline ${rss_base} kB)," \
    "bound ${bound_kb} kB from the caps"

passed=0
failed=0
check() { if eval "$2"; then passed=$((passed + 1)); echo "PASS: $1"; else failed=$((failed + 1)); echo "FAIL: $1"; fi; }
check "RSS growth within the caps (+${growth} kB, bound +${bound_kb} kB)" "[ $growth -le $bound_kb ]"
check "descriptor count constant (${fmin}..${fmax})" "[ $fmin -eq $fmax ]"
check "every frame arrived (sent $sent, received $recv)" "[ -n '$sent' ] && [ '$sent' = '$recv' ] && [ '$sent' -gt 0 ]"

stop_worker
check "worker exits 0 on SIGTERM (got $WRC)" "[ '$WRC' = 0 ]"
grep '^rill-worker: final' "$TMP/worker.log"
echo "soak: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
