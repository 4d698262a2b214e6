#!/usr/bin/env bash
# cluster_acked_test.sh RILL_WORKER RILL_LOAD ZK_SERVER IO_URING_PROBE — acknowledged
# delivery through a cluster of rill-worker processes (two loops each) coordinated by a
# real ZooKeeper server: rill-load --acked sources (--target W1,W2,W3: each connection
# fails over to the next worker) into W1, which forwards most keys to their owners over
# acked peer links; every worker's output goes to one acked sink (rill-load, recording
# every frame it counts with --dump).
#   1. crash: W3 is killed with kill -9 under load. The sources' frames whose effects
#      were on W3 stay unacknowledged until W3's session expires and its keys move; then
#      W1 sends them to their new owners. Every frame any source sent reaches the sink at
#      least once, and the sources end with nothing unacknowledged.
#   2. leave and stop: in a second cluster, W2 leaves with SIGTERM under load, then the
#      whole cluster stops with SIGTERM: every frame reaches the sink.
#   3. redirect: in a third cluster the sources know only W2 (--target W2). W2 leaves
#      with SIGTERM under load; its GOAWAY names another member's source address (from
#      the member data in ZooKeeper), the sources move there, and every frame reaches
#      the sink.
# Prints PASS/FAIL per check and "cluster_acked: N passed, N failed"; exits 1 on any
# failure, 77 when io_uring is unavailable or java, zookeeperd or bash's /dev/tcp are
# missing.
set -u

. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib/procs.sh"
cluster_test_args cluster_acked "$@"
for tool in sort awk uniq; do
    command -v "$tool" >/dev/null 2>&1 || { echo "cluster_acked: SKIP: $tool is not installed"; exit 77; }
done

SESSION_MS=3000 # how long the survivors take to learn of the crash
# Failure bound for every wait. Generous on purpose (2 shared cores, ZooKeeper's JVM):
# how long a wait took is printed, never asserted.
DEADLINE_MS=60000
TMP=$(mktemp -d "${TMPDIR:-/tmp}/cluster_acked.XXXXXX")
declare -A WPID WLOG WPORT
SINKPID=""
LOADPID=""
passed=0
failed=0
zk_started=0

pass() { passed=$((passed + 1)); echo "PASS: $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }

cleanup()
{
    local id p
    for p in "$LOADPID" "$SINKPID"; do
        [ -n "$p" ] && kill -KILL "$p" 2>/dev/null && wait "$p" 2>/dev/null
    done
    for id in "${!WPID[@]}"; do
        p=${WPID[$id]}
        [ -n "$p" ] && kill -KILL "$p" 2>/dev/null && wait "$p" 2>/dev/null
    done
    [ "$zk_started" = 1 ] && "$ZKS" stop "$TMP/zk"
    if [ "$failed" -gt 0 ] || [ -n "${KEEP_TMP:-}" ]; then
        echo "cluster_acked: logs kept in $TMP"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'echo "cluster_acked: interrupted"; exit 1' INT TERM

ZKPORT=$("$ZKS" start "$TMP/zk")
rc=$?
if [ $rc = 77 ]; then
    echo "cluster_acked: SKIP: zk-server cannot run here"
    exit 77
fi
if [ $rc != 0 ] || [ -z "$ZKPORT" ]; then
    echo "cluster_acked: FAIL: cannot start ZooKeeper (see $TMP/zk/zk.log)"
    failed=1
    exit 1
fi
zk_started=1
ZK=127.0.0.1:$ZKPORT
echo "cluster_acked: ZooKeeper on $ZK"

CONNS=4
PER_CONN=25000 # per connection; at --rate 20000 over all, about 5 s of sending

# run_cluster NAME: ZooKeeper root, an acked sink, three members N1..N3 (two loops
# each); the sources start into N1. Sets SINK_PORT, DUMP, RUN, and IDS.
run_cluster()
{
    local name=$1 id
    ROOT=/rill/acked-$name-$$
    SINK_PORT=$(free_port) || { fail "$name: no free port"; return 1; }
    DUMP=$TMP/$name.dump
    RUN=$(printf '0x%04x%04x%04x%04x' $RANDOM $RANDOM $RANDOM $RANDOM)
    "$LOAD" --connections 0 --sink-listen "127.0.0.1:$SINK_PORT" --run-id "$RUN" --dump "$DUMP" \
        --duration 600 --quiet --json </dev/null >"$TMP/$name.sink.json" 2>"$TMP/$name.sink.err" &
    SINKPID=$!
    IDS="${name}1 ${name}2 ${name}3"
    for id in $IDS; do
        start_worker "$id" --threads 2 --sink "127.0.0.1:$SINK_PORT,delivery=acked"
    done
    for id in $IDS; do
        wait_ready "$id" || { fail "$name: $id did not get ready"; show_log "${WLOG[$id]}"; return 1; }
    done
    local members
    members=$(echo "$IDS" | tr ' ' ',')
    # shellcheck disable=SC2086
    if ! wait_agree "$DEADLINE_MS" "$members" $IDS; then
        fail "$name: the three members never agreed"
        return 1
    fi
    pass "$name: $members agree on epoch $AGREED_EPOCH"
    local targets=""
    for id in ${TARGET_IDS:-$IDS}; do targets="$targets${targets:+,}127.0.0.1:${WPORT[$id]}"; done
    "$LOAD" --acked --target "$targets" --run-id "$RUN" --count "$PER_CONN" --connections "$CONNS" \
        --keys 5000 --rate 20000 --retry-for 30 --quiet --json </dev/null \
        >"$TMP/$name.src.json" 2>"$TMP/$name.src.err" &
    LOADPID=$!
    return 0
}

# wait_recorded N: until the sink recorded N frames (DEADLINE_MS at most).
wait_recorded()
{
    local _
    for _ in $(seq $((DEADLINE_MS / 100))); do
        [ -s "$DUMP" ] && [ "$(lines "$DUMP")" -ge "$1" ] && return 0
        sleep 0.1
    done
    return 1
}

# finish NAME: waits for the sources, stops the named members still running (SIGTERM),
# stops the sink, and checks what it recorded.
finish()
{
    local name=$1 id rc=0 cov
    wait "$LOADPID" || rc=$?
    LOADPID=""
    if [ "$rc" = 0 ]; then
        pass "$name: the sources got every frame acknowledged"
    else
        fail "$name: the sources exited $rc: $(tail -n 3 "$TMP/$name.src.err")"
    fi
    grep 'acknowledged' "$TMP/$name.src.err" | sed 's/^/    /'
    for id in $IDS; do
        [ -n "${WPID[$id]}" ] || continue
        stop_worker "$id" TERM
        [ "$WRC" = 0 ] || { fail "$name: $id exit status $WRC after SIGTERM"; show_log "${WLOG[$id]}"; }
    done
    for id in $IDS; do
        echo "    $id: in=$(final_stat "$id" in) fwd=$(final_stat "$id" fwd) peer_in=$(final_stat "$id" peer_in) acked_in=$(final_stat "$id" acked_in) dup_skipped=$(final_stat "$id" dup_skipped) rerouted=$(final_stat "$id" rerouted) resent=$(final_stat "$id" resent) dropped=$(final_stat "$id" dropped) peer_dropped=$(final_stat "$id" peer_dropped)"
    done
    kill -TERM "$SINKPID" 2>/dev/null
    wait "$SINKPID" 2>/dev/null
    SINKPID=""
    if cov=$(covered "$PER_CONN" "$CONNS" "$DUMP"); then
        pass "$name: every frame the sources sent reached the sink at least once ($cov)"
    else
        fail "$name: the sink misses frames ($cov)"
    fi
    echo "    $name: frames recorded more than once: $(sort "$DUMP" | uniq -d | wc -l | tr -d ' ')"
}

# ------------------------------------------------------------------ 1. crash

if run_cluster c; then
    if wait_recorded 20000; then
        t_kill=$(now_ms)
        kill -KILL "${WPID[c3]}"
        wait "${WPID[c3]}" 2>/dev/null
        WPID[c3]=""
        pass "crash: c3 killed with kill -9 after $(lines "$DUMP") frames recorded"
        if wait_agree "$DEADLINE_MS" c1,c2 c1 c2; then
            pass "crash: c1 and c2 agree without c3 $(($(now_ms) - t_kill)) ms after the kill"
        else
            fail "crash: the survivors did not converge"
        fi
    else
        fail "crash: the sink did not record 20000 frames"
    fi
    finish c
fi

# ------------------------------------------------------------------ 2. leave, then stop all

if run_cluster l; then
    if wait_recorded 20000; then
        t0=$(now_ms)
        stop_worker l2 TERM
        if [ "$WRC" = 0 ]; then
            pass "leave: l2 drained and exited 0 in $(($(now_ms) - t0)) ms"
        else
            fail "leave: l2 exit status $WRC"
            show_log "${WLOG[l2]}"
        fi
        wait_agree "$DEADLINE_MS" l1,l3 l1 l3 || fail "leave: l1 and l3 did not converge"
    else
        fail "leave: the sink did not record 20000 frames"
    fi
    finish l
fi

# ------------------------------------------------------------------ 3. GOAWAY names a member

TARGET_IDS=r2
if run_cluster r; then
    if wait_recorded 20000; then
        stop_worker r2 TERM
        [ "$WRC" = 0 ] || { fail "redirect: r2 exit status $WRC"; show_log "${WLOG[r2]}"; }
        wait_agree "$DEADLINE_MS" r1,r3 r1 r3 || fail "redirect: r1 and r3 did not converge"
    else
        fail "redirect: the sink did not record 20000 frames"
    fi
    finish r
    redirects=$(sed -n 's/.*"goaway_redirects": *\([0-9]*\).*/\1/p' "$TMP/r.src.json")
    if [ "${redirects:-0}" -ge 1 ]; then
        pass "redirect: $redirects GOAWAYs named another member's source address"
    else
        fail "redirect: no GOAWAY named an address (goaway_redirects ${redirects:-missing})"
    fi
fi
unset TARGET_IDS

echo "cluster_acked: $passed passed, $failed failed"
[ "$failed" = 0 ]
