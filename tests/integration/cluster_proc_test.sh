#!/usr/bin/env bash
# cluster_proc_test.sh RILL_WORKER RILL_LOAD ZK_SERVER IO_URING_PROBE — a cluster of
# rill-worker processes coordinated by a real ZooKeeper server (scripts/zk-server): join,
# graceful leave (SIGTERM), crash (SIGKILL) of one member, convergence of the survivors'
# views (read from their 'rill-worker: view epoch=N members=... self=...' log lines), and
# delivery of every frame sent to a survivor after convergence (rill-load as sender and
# sink, passthrough).
# Prints PASS/FAIL per check and "cluster_proc: N passed, N failed"; exits 1 on any
# failure, 77 when io_uring is unavailable or java, zookeeperd or bash's /dev/tcp are
# missing.
set -u

. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib/procs.sh"
cluster_test_args cluster_proc "$@"

SESSION_MS=3000 # the survivors learn of a crash when this session timeout expires
# Failure bound for every wait (ready, views agree). Generous on purpose: the machines are
# shared (2 cores, ZooKeeper's JVM); the time a wait took is printed, never asserted.
DEADLINE_MS=60000
TMP=$(mktemp -d "${TMPDIR:-/tmp}/cluster_proc.XXXXXX")
ROOT=/rill/proc-$$
declare -A WPID WLOG WPORT
passed=0
failed=0
zk_started=0

cleanup()
{
    local id p
    for id in "${!WPID[@]}"; do
        p=${WPID[$id]}
        [ -n "$p" ] && kill -TERM "$p" 2>/dev/null
    done
    for id in "${!WPID[@]}"; do
        p=${WPID[$id]}
        [ -n "$p" ] || continue
        for _ in $(seq 50); do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    [ "$zk_started" = 1 ] && "$ZKS" stop "$TMP/zk"
    if [ "$failed" -gt 0 ] || [ -n "${KEEP_TMP:-}" ]; then
        echo "cluster_proc: logs kept in $TMP"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'echo "cluster_proc: interrupted"; exit 1' INT TERM

pass() { passed=$((passed + 1)); echo "PASS: $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }


# ------------------------------------------------------------------ ZooKeeper

ZKPORT=$("$ZKS" start "$TMP/zk")
rc=$?
if [ $rc = 77 ]; then
    echo "cluster_proc: SKIP: zk-server cannot run here"
    exit 77
fi
if [ $rc != 0 ] || [ -z "$ZKPORT" ]; then
    echo "cluster_proc: FAIL: cannot start ZooKeeper (see $TMP/zk/zk.log)"
    failed=1
    exit 1
fi
zk_started=1
ZK=127.0.0.1:$ZKPORT
SINK_PORT=$(free_port) || { echo "cluster_proc: no free port"; exit 1; }
echo "cluster_proc: ZooKeeper on $ZK, cluster root $ROOT, sink port $SINK_PORT"

# ------------------------------------------------------------------ workers

# ------------------------------------------------------------------ join

t0=$(now_ms)
for id in w1 w2 w3; do start_worker "$id" --sink "127.0.0.1:$SINK_PORT"; done
ok=1
for id in w1 w2 w3; do
    wait_ready "$id" || { ok=0; fail "$id did not get ready"; show_log "${WLOG[$id]}"; }
done
[ "$ok" = 1 ] || exit 1
t_ready=$(now_ms)
if wait_agree "$DEADLINE_MS" w1,w2,w3 w1 w2 w3; then
    pass "join: w1, w2, w3 agree on epoch $AGREED_EPOCH, $((t_ready + AGREE_MS - t0)) ms after the first start"
else
    fail "join: three workers never agreed"
    for id in w1 w2 w3; do show_log "${WLOG[$id]}"; done
    exit 1
fi

# Traffic for the count computation (no sink output until shutdown) through w1 only.
"$LOAD" --target "127.0.0.1:${WPORT[w1]}" --comp 2 --keys 10000 --count 30000 --quiet --json \
    >"$TMP/load-count.json" 2>"$TMP/load-count.err"
if grep -q '"sent": 30000' "$TMP/load-count.json"; then
    pass "count traffic: 30000 frames sent to w1"
else
    fail "count traffic to w1: $(cat "$TMP/load-count.json" "$TMP/load-count.err" | tail -n 3)"
fi

# ------------------------------------------------------------------ graceful leave

start_worker w4 --sink "127.0.0.1:$SINK_PORT"
if wait_ready w4 && wait_agree "$DEADLINE_MS" w1,w2,w3,w4 w1 w2 w3 w4; then
    pass "a fourth worker joins: all four agree on epoch $AGREED_EPOCH, $AGREE_MS ms after it was ready"
    t0=$(now_ms)
    stop_worker w4 TERM
    stop_ms=$(($(now_ms) - t0))
    if [ "$WRC" = 0 ]; then pass "SIGTERM: w4 drained and exited 0 in $stop_ms ms"; else fail "SIGTERM: w4 exit status $WRC"; show_log "${WLOG[w4]}"; fi
    if wait_agree "$DEADLINE_MS" w1,w2,w3 w1 w2 w3; then
        pass "graceful leave: w1..w3 agree without w4 $(($(now_ms) - t0)) ms after SIGTERM (epoch $AGREED_EPOCH)"
    else
        fail "graceful leave: survivors did not converge within $DEADLINE_MS ms"
    fi
    if grep -q 'cluster: left' "${WLOG[w4]}"; then
        pass "w4 logged that it left the cluster"
    else
        fail "w4 did not log leaving the cluster"
        show_log "${WLOG[w4]}"
    fi
    # Before its node went, w4 handed its keys to the others: its last view is theirs,
    # without itself.
    read -r e m s <<<"$(last_view w4)"
    if [ "$m" = w1,w2,w3 ] && [ "$s" = - ]; then
        pass "w4's last view: members=$m self=$s (epoch $e): it stopped owning keys as it left"
    else
        fail "w4's last view: members=${m:-?} self=${s:-?}, expected members=w1,w2,w3 self=-"
        show_log "${WLOG[w4]}"
    fi
else
    fail "w4 did not join"
    show_log "${WLOG[w4]}"
fi

# ------------------------------------------------------------------ crash

# Traffic to w1 while w3 is killed (count computation again: its output only at shutdown).
"$LOAD" --target "127.0.0.1:${WPORT[w1]}" --comp 2 --keys 10000 --rate 20000 --duration 3 \
    --quiet --json >"$TMP/load-crash.json" 2>"$TMP/load-crash.err" &
load_pid=$!
sleep 1
t_kill=$(now_ms)
kill -KILL "${WPID[w3]}"
wait "${WPID[w3]}" 2>/dev/null
WPID[w3]=""
if wait_agree "$DEADLINE_MS" w1,w2 w1 w2; then
    pass "crash: w1 and w2 agree without w3 $(($(now_ms) - t_kill)) ms after SIGKILL (session timeout $SESSION_MS ms)"
else
    fail "crash: the survivors did not converge within $DEADLINE_MS ms"
    show_log "${WLOG[w1]}"
    show_log "${WLOG[w2]}"
fi
wait "$load_pid"
load_rc=$?
if [ "$load_rc" = 0 ]; then
    pass "w1 kept accepting traffic while w3 crashed ($(sed -n 's/.*"sent": \([0-9]*\).*/\1/p' "$TMP/load-crash.json") frames)"
else
    fail "rill-load to w1 during the crash exited $load_rc: $(tail -n 2 "$TMP/load-crash.err")"
fi
for id in w1 w2; do
    if kill -0 "${WPID[$id]}" 2>/dev/null; then pass "$id survived the crash of w3"; else fail "$id died"; show_log "${WLOG[$id]}"; fi
done

# ------------------------------------------------------------------ delivery after convergence

# rill-load is now the sink (the workers' sink connections come up within their backoff).
N=40000
"$LOAD" --target "127.0.0.1:${WPORT[w2]}" --sink-listen "127.0.0.1:$SINK_PORT" --comp 1 \
    --keys 5000 --count "$N" --drain 20 --quiet --json >"$TMP/load-pass.json" 2>"$TMP/load-pass.err"
sent=$(sed -n 's/.*"sent": \([0-9]*\).*/\1/p' "$TMP/load-pass.json")
recv=$(sed -n 's/.*"received": \([0-9]*\).*/\1/p' "$TMP/load-pass.json")
if [ "$sent" = "$N" ] && [ "$recv" = "$N" ]; then
    pass "after convergence: all $N frames sent to w2 reached the sink (some through w1)"
else
    fail "after convergence: sent ${sent:-?}, the sink received ${recv:-?} of $N"
    cat "$TMP/load-pass.err" | tail -n 5
fi

# ------------------------------------------------------------------ shutdown

# rill-load's sink has exited by now: count output the workers still flush has nowhere to
# go, and a drain that drops frames says how many and exits 3 (0 when there were none).
for id in w1 w2; do
    stop_worker "$id" TERM
    if [ "$WRC" = 3 ] && grep -q '^rill-worker: the drain dropped [0-9]* frames' "${WLOG[$id]}"; then
        pass "$id exit status 3 after SIGTERM: $(grep -m1 'the drain dropped' "${WLOG[$id]}")"
    elif [ "$WRC" != 0 ]; then
        fail "$id exit status $WRC after SIGTERM"
        show_log "${WLOG[$id]}"
    fi
done
fwd1=$(final_stat w1 fwd)
pin2=$(final_stat w2 peer_in)
fwd2=$(final_stat w2 fwd)
mis=$(( $(final_stat w1 misrouted || echo 0) + $(final_stat w2 misrouted || echo 0) ))
echo "    w1 final: in=$(final_stat w1 in) fwd=$fwd1 peer_in=$(final_stat w1 peer_in) dropped=$(final_stat w1 dropped) rerouted=$(final_stat w1 rerouted)"
echo "    w2 final: in=$(final_stat w2 in) fwd=$fwd2 peer_in=$pin2 dropped=$(final_stat w2 dropped) rerouted=$(final_stat w2 rerouted)"
if [ -n "$fwd1" ] && [ "$fwd1" -gt 0 ] && [ -n "$fwd2" ] && [ "$fwd2" -gt 0 ]; then
    pass "both survivors forwarded frames to their owners (w1 fwd=$fwd1, w2 fwd=$fwd2)"
else
    fail "forwarding counters: w1 fwd=${fwd1:-?} w2 fwd=${fwd2:-?}"
fi
echo "    misrouted (w1+w2): $mis"

echo "cluster_proc: $passed passed, $failed failed"
[ "$failed" = 0 ]
