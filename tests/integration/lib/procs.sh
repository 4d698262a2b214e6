# Helpers of the shell tests that run rill-worker processes in a cluster and check what
# reached a sink. Sourced; before calling the worker helpers the caller sets WORKER, ZK,
# ROOT, SESSION_MS, DEADLINE_MS and TMP, declares the associative arrays WPID, WLOG and
# WPORT, and defines pass and fail.

. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../../../scripts/lib/free-port.sh" # free_port

# cluster_test_args NAME ARGS...: the arguments of a cluster process test (rill-worker,
# rill-load, scripts/zk-server, io_uring_probe) into WORKER, LOAD, ZKS and PROBE; exits 2
# on bad usage, 1 when one is not an executable, 77 (skip, reason printed) when io_uring,
# ZooKeeper (zookeeperd and a JRE) or bash's /dev/tcp are missing.
cluster_test_args()
{
    local name=$1 b probe
    shift
    if [ $# -ne 4 ]; then
        echo "usage: $0 <rill-worker> <rill-load> <scripts/zk-server> <io_uring_probe>" >&2
        exit 2
    fi
    WORKER=$1
    LOAD=$2
    ZKS=$3
    PROBE=$4
    for b in "$WORKER" "$LOAD" "$ZKS" "$PROBE"; do
        [ -x "$b" ] || { echo "$name: $b is not an executable" >&2; exit 1; }
    done
    # io_uring: the probe makes the C tests' check (exit 77 and the reason on ENOSYS or
    # EPERM); rill-worker's own "cannot start: <error>" does not say which call failed.
    "$PROBE" "$name"
    case $? in
    0) ;;
    77) exit 77 ;;
    *) echo "$name: $PROBE failed"; exit 1 ;;
    esac
    if ! command -v java >/dev/null 2>&1; then
        echo "$name: SKIP: java is not installed (zookeeperd pulls a JRE; run scripts/setup)"
        exit 77
    fi
    if [ ! -r /usr/share/java/zookeeper.jar ]; then
        echo "$name: SKIP: /usr/share/java/zookeeper.jar is missing (zookeeperd; run scripts/setup)"
        exit 77
    fi
    probe=$( (exec 3<>/dev/tcp/127.0.0.1/1) 2>&1 )
    case "$probe" in
    *"No such file"*|*"not supported"*)
        echo "$name: SKIP: this bash has no /dev/tcp support ($probe)"
        exit 77 ;;
    esac
}

show_log()
{
    echo "    --- last lines of $1:"
    grep -v '^rill-worker: stats ' "$1" 2>/dev/null | tail -n 15 | sed 's/^/    | /'
}
now_ms() { local t; t=$(date +%s%N); echo $((t / 1000000)); }

# start_worker ID ARGS...: rill-worker as member ID of the cluster at ROOT, with ARGS
# (its sink, loop count, ...) added.
start_worker()
{
    local id=$1 log=$TMP/$1.log
    shift
    "$WORKER" --listen 127.0.0.1:0 --zk "$ZK" --cluster-root "$ROOT" --worker-id "$id" \
        --peer-listen 127.0.0.1:0 --session-timeout-ms "$SESSION_MS" --quiet "$@" \
        </dev/null >"$log" 2>&1 &
    WPID[$id]=$!
    WLOG[$id]=$log
    WPORT[$id]=""
}

# wait_ready ID: waits up to DEADLINE_MS for "rill-worker: ready"; sets WPORT[ID].
wait_ready()
{
    local id=$1 _
    for _ in $(seq $((DEADLINE_MS / 100))); do
        if grep -q '^rill-worker: ready' "${WLOG[$id]}"; then
            WPORT[$id]=$(sed -n 's/^rill-worker: listening on [^ ]*:\([0-9][0-9]*\) framing=rill.*/\1/p' \
                "${WLOG[$id]}" | head -n1)
            [ -n "${WPORT[$id]}" ] && return 0
        fi
        kill -0 "${WPID[$id]}" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# last_view ID: "EPOCH MEMBERS SELF" from the worker's last view line, or nothing.
last_view()
{
    sed -n 's/^rill-worker: view epoch=\([0-9]*\) members=\([^ ]*\) self=\([^ ]*\)$/\1 \2 \3/p' \
        "${WLOG[$1]}" | tail -n1
}

# agree MEMBERS ID...: true when every ID's last view has exactly MEMBERS, one epoch, and
# names itself. Sets AGREED_EPOCH.
agree()
{
    local want=$1 id e m s epoch=""
    shift
    for id in "$@"; do
        read -r e m s <<<"$(last_view "$id")"
        [ "$m" = "$want" ] && [ "$s" = "$id" ] || return 1
        if [ -z "$epoch" ]; then epoch=$e; elif [ "$e" != "$epoch" ]; then return 1; fi
    done
    AGREED_EPOCH=$epoch
    return 0
}

# wait_agree MS MEMBERS ID...: polls agree every 20 ms; sets AGREE_MS (ms waited).
wait_agree()
{
    local limit=$1 t0 t
    shift
    t0=$(now_ms)
    while :; do
        if agree "$@"; then
            t=$(now_ms)
            AGREE_MS=$((t - t0))
            return 0
        fi
        t=$(now_ms)
        [ $((t - t0)) -lt "$limit" ] || break
        sleep 0.02
    done
    local want=$1 id
    shift
    echo "    views did not agree on [$want] within $limit ms:"
    for id in "$@"; do echo "    $id: $(last_view "$id")"; done
    return 1
}

# final_stat ID FIELD: a counter from the worker's final stats line.
final_stat()
{
    grep '^rill-worker: final ' "${WLOG[$1]}" | tail -n1 | tr ' ' '\n' | sed -n "s/^$2=//p"
}

# stop_worker ID SIGNAL: sends SIGNAL and waits up to 15 s; sets WRC.
stop_worker()
{
    local id=$1 p=${WPID[$1]} _
    kill "-$2" "$p" 2>/dev/null
    WRC=timeout
    for _ in $(seq 150); do
        if ! kill -0 "$p" 2>/dev/null; then
            wait "$p"
            WRC=$?
            break
        fi
        sleep 0.1
    done
    if [ "$WRC" = timeout ]; then
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    fi
    WPID[$id]=""
}

# covered N C FILES...: every line "CONN SEQ" with CONN < C and SEQ < N is in the union
# of FILES (rill-load --dump records), and nothing else is. Prints "distinct=...
# out_of_range=... missing=..." and succeeds when nothing is missing or out of range.
covered()
{
    local n=$1 c=$2
    shift 2
    sort -u "$@" | awk -v n="$n" -v c="$c" '
        NF != 2 || $1 >= c || $2 >= n || $1 < 0 || $2 < 0 { bad++; next }
        { ok++ }
        END { miss = n * c - ok; printf "distinct=%d out_of_range=%d missing=%d\n", ok, bad, miss;
              exit (bad || miss) ? 1 : 0 }'
}
lines() { wc -l <"$1" | tr -d ' '; }
