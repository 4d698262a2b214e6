#!/usr/bin/env bash
# prometheus_scrape_test.sh RILL_WORKER RILL_LOAD IO_URING_PROBE — a real Prometheus server
# (Debian's prometheus 2.42, installed by scripts/setup) scrapes a running rill-worker:
# the worker on free ports with --metrics, N frames sent with rill-load, Prometheus in a
# temp dir with its own config (scrape every 1 s, the worker as its only target). Passes
# when Prometheus's HTTP API reports the target up, rill_msgs_in_total = N and the
# passthrough's batch histogram count = its batches, and promtool check metrics finds
# nothing to say about /metrics. Every process is stopped on exit.
# Prints PASS/FAIL per check and "prometheus_scrape: N passed, N failed"; exits 1 on any
# failure or when prometheus, promtool or curl is missing (setup installs them), 77 when
# io_uring is unavailable here.
set -u

if [ $# -ne 3 ]; then
    echo "usage: $0 <path-to-rill-worker> <path-to-rill-load> <path-to-io_uring_probe>" >&2
    exit 2
fi
WORKER=$1
LOAD=$2
PROBE=$3
for b in "$WORKER" "$LOAD" "$PROBE"; do
    if [ ! -x "$b" ]; then
        echo "prometheus_scrape: $b is not an executable" >&2
        exit 1
    fi
done
# Not a skip: scripts/setup installs them, and a test that skipped whenever they were
# missing would never run where nobody noticed.
for t in prometheus promtool curl; do
    if ! command -v "$t" >/dev/null 2>&1; then
        echo "prometheus_scrape: FAIL: $t is not installed (scripts/setup installs the" \
            "prometheus and curl packages)"
        echo "prometheus_scrape: 0 passed, 1 failed"
        exit 1
    fi
done

"$PROBE" prometheus_scrape
case $? in
0) ;;
77) exit 77 ;;
*) echo "prometheus_scrape: $PROBE failed"; exit 1 ;;
esac

. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../../scripts/lib/free-port.sh" # free_port

TMP=$(mktemp -d "${TMPDIR:-/tmp}/prometheus_scrape.XXXXXX")
PIDS=()
passed=0
failed=0

cleanup()
{
    local p
    for p in "${PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null
    done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 50); do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'echo "prometheus_scrape: interrupted"; exit 1' INT TERM

pass() { passed=$((passed + 1)); echo "PASS: $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }
show_log()
{
    echo "    --- last lines of $1:"
    tail -n 15 "$1" 2>/dev/null | sed 's/^/    | /'
}
finish()
{
    echo "prometheus_scrape: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}
now_ms() { local t; t=$(date +%s%N); echo $((t / 1000000)); }
# Failure bound of every wait; generous on purpose (2 shared cores). How long a wait took is
# printed, never asserted.
WAIT_S=60

N_CONNS=2
N_PER_CONN=50000
N=$((N_CONNS * N_PER_CONN))

# ------------------------------------------------------------------ the worker
# Port 0 everywhere: the worker prints the ports it got.
WLOG=$TMP/worker.log
"$WORKER" --listen 127.0.0.1:0 --metrics 127.0.0.1:0 --threads 2 --quiet \
    </dev/null >"$WLOG" 2>&1 &
WPID=$!
PIDS+=("$WPID")
t0=$(now_ms)
for _ in $(seq $((WAIT_S * 10))); do
    grep -q '^rill-worker: ready' "$WLOG" && break
    kill -0 "$WPID" 2>/dev/null || break
    sleep 0.1
done
PORT=$(sed -n 's/^rill-worker: listening on [^ ]*:\([0-9][0-9]*\) framing=rill.*/\1/p' "$WLOG" |
    head -n1)
MPORT=$(sed -n 's/^rill-worker: metrics on port \([0-9][0-9]*\).*/\1/p' "$WLOG" | head -n1)
if ! grep -q '^rill-worker: ready' "$WLOG" || [ -z "$PORT" ] || [ -z "$MPORT" ]; then
    fail "rill-worker ready with a listener and a metrics port within ${WAIT_S} s"
    show_log "$WLOG"
    finish
fi
pass "rill-worker ready in $(($(now_ms) - t0)) ms (frames on $PORT, metrics on $MPORT)"

# ------------------------------------------------------------------ N frames
if timeout -k 5 120 "$LOAD" --target "127.0.0.1:$PORT" --connections "$N_CONNS" \
    --count "$N_PER_CONN" --quiet </dev/null >"$TMP/load.out" 2>&1; then
    pass "rill-load sent $N_CONNS x $N_PER_CONN frames"
else
    fail "rill-load (exit $?)"
    show_log "$TMP/load.out"
    finish
fi

# ------------------------------------------------------------------ Prometheus
# start_prometheus: on a free port (another one if a race took it); sets PPORT and PROM_PID.
PLOG=$TMP/prometheus.log
start_prometheus()
{
    local try
    for try in 1 2 3; do
        PPORT=$(free_port) || return 1
        cat >"$TMP/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: rill
    static_configs:
      - targets: ['127.0.0.1:$MPORT']
EOF
        prometheus --config.file="$TMP/prometheus.yml" --storage.tsdb.path="$TMP/tsdb" \
            --web.listen-address="127.0.0.1:$PPORT" </dev/null >"$PLOG" 2>&1 &
        PROM_PID=$!
        PIDS+=("$PROM_PID")
        for _ in $(seq $((WAIT_S * 10))); do
            curl -sf "http://127.0.0.1:$PPORT/-/ready" >/dev/null 2>&1 && return 0
            kill -0 "$PROM_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$PROM_PID" 2>/dev/null || ! grep -q 'address already in use' "$PLOG"; then
            return 1
        fi
        wait "$PROM_PID" 2>/dev/null
    done
    return 1
}
t0=$(now_ms)
if ! start_prometheus; then
    fail "prometheus ready within ${WAIT_S} s ($(prometheus --version 2>&1 | head -n1))"
    show_log "$PLOG"
    finish
fi
pass "prometheus ready on $PPORT in $(($(now_ms) - t0)) ms ($(prometheus --version 2>&1 |
    head -n1))"

# query EXPR: the value of the first sample of an instant query, as Prometheus prints it
# ("1", "100000", ...); empty when the result is empty or the query failed.
query()
{
    curl -sf -G --max-time 5 "http://127.0.0.1:$PPORT/api/v1/query" \
        --data-urlencode "query=$1" 2>/dev/null |
        sed -n 's/.*"value":\[[^,]*,"\([^"]*\)"\].*/\1/p'
}
TARGET="job=\"rill\",instance=\"127.0.0.1:$MPORT\""
# wait_value EXPR WANT: polls until query EXPR = WANT; sets GOT and WAITED_MS.
wait_value()
{
    local t0
    t0=$(now_ms)
    for _ in $(seq $((WAIT_S * 2))); do
        GOT=$(query "$1")
        [ "$GOT" = "$2" ] && { WAITED_MS=$(($(now_ms) - t0)); return 0; }
        sleep 0.5
    done
    return 1
}

if wait_value "up{$TARGET}" 1; then
    pass "Prometheus scrapes the worker: up{$TARGET} = 1 after $WAITED_MS ms"
else
    fail "up{$TARGET} = 1 within ${WAIT_S} s (last: '${GOT}')"
    curl -s "http://127.0.0.1:$PPORT/api/v1/targets" | head -c 2000
    echo
    show_log "$PLOG"
fi
if wait_value "rill_msgs_in_total{$TARGET}" "$N"; then
    pass "rill_msgs_in_total{$TARGET} = $N in Prometheus after $WAITED_MS ms"
else
    fail "rill_msgs_in_total{$TARGET} = $N within ${WAIT_S} s (last: '${GOT}')"
    show_log "$WLOG"
fi
# The histogram as Prometheus stored it: its count is the passthrough's batches, and a
# quantile of it is a number (all traffic has stopped, so both series are at rest).
COMP="$TARGET,id=\"1\""
if wait_value "rill_comp_batch_seconds_count{$COMP} - rill_comp_batches_total{$COMP}" 0 &&
    [ "$(query "rill_comp_batches_total{$COMP} > 0")" != "" ]; then
    pass "rill_comp_batch_seconds_count = rill_comp_batches_total = $(query \
        "rill_comp_batches_total{$COMP}") for the passthrough"
else
    fail "rill_comp_batch_seconds_count{$COMP} = rill_comp_batches_total > 0 (difference" \
        "'${GOT}', batches '$(query "rill_comp_batches_total{$COMP}")')"
fi
P99=$(query "histogram_quantile(0.99, rill_comp_batch_seconds_bucket{$COMP})")
case "$P99" in
[0-9]*) pass "histogram_quantile(0.99) of the passthrough's batch time: $P99 s" ;;
*) fail "histogram_quantile(0.99, rill_comp_batch_seconds_bucket{$COMP}) is '$P99'" ;;
esac

# ------------------------------------------------------------------ promtool's lint
if curl -sf --max-time 10 "http://127.0.0.1:$MPORT/metrics" >"$TMP/metrics.txt"; then
    promtool check metrics <"$TMP/metrics.txt" >"$TMP/promtool.out" 2>&1
    rc=$?
    if [ "$rc" -eq 0 ] && [ ! -s "$TMP/promtool.out" ]; then
        pass "promtool check metrics: clean ($(grep -c -v '^#' "$TMP/metrics.txt") samples)"
    else
        fail "promtool check metrics (exit $rc):"
        sed 's/^/    | /' "$TMP/promtool.out" | head -n 20
    fi
else
    fail "curl /metrics for promtool"
fi

if kill -0 "$WPID" 2>/dev/null && kill -0 "$PROM_PID" 2>/dev/null; then
    pass "rill-worker and prometheus still running at the end"
else
    fail "a process exited early"
    show_log "$WLOG"
    show_log "$PLOG"
fi
finish
