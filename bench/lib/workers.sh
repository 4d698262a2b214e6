# bench/lib/workers.sh — rill-worker processes for the cluster benchmarks
# (bench/cluster_bench.sh, bench/state_bench.sh). Sourced; the caller sets WORKER (the
# rill-worker binary), tmp (a directory for the logs) and say (a function that prints a
# line to stderr), and declares the associative arrays pid, log and port.
# shellcheck shell=bash disable=SC2154,SC2034  # tmp, WORKER, say and port are the caller's

# worker_start ID ARGS...: starts "$WORKER" --listen 127.0.0.1:0 --quiet ARGS... with
# stdin closed and its output in a log under $tmp; returns once it logged that it is
# ready, with pid[ID], log[ID] and port[ID] (its listener's port) set. Exits the script,
# with the log on stderr, when the worker does not start within 10 s.
worker_start()
{
    local id=$1 _
    shift
    log[$id]=$tmp/$id.$RANDOM.log
    "$WORKER" --listen 127.0.0.1:0 --quiet "$@" </dev/null >"${log[$id]}" 2>&1 &
    pid[$id]=$!
    for _ in $(seq 200); do
        if grep -q '^rill-worker: ready' "${log[$id]}"; then
            port[$id]=$(sed -n 's/^rill-worker: listening on [^ ]*:\([0-9][0-9]*\) framing=rill.*/\1/p' \
                "${log[$id]}" | head -n1)
            return 0
        fi
        kill -0 "${pid[$id]}" 2>/dev/null || break
        sleep 0.05
    done
    say "$id did not start:"; cat "${log[$id]}" >&2
    exit 1
}

# worker_halt ID [SIGNAL]: sends SIGNAL (default TERM) and waits for the worker to end.
worker_halt()
{
    local id=$1 sig=${2:-TERM}
    [ -n "${pid[$id]:-}" ] || return 0
    kill "-$sig" "${pid[$id]}" 2>/dev/null || true
    wait "${pid[$id]}" 2>/dev/null || true
    pid[$id]=""
}

# members_of ID: "EPOCH MEMBERS" of the last view the worker logged.
members_of()
{
    sed -n 's/^rill-worker: view epoch=\([0-9]*\) members=\([^ ]*\) self=.*/\1 \2/p' "${log[$1]}" |
        tail -n1
}

# converged MEMBERS ID...: whether every ID's last view has MEMBERS (a comma-separated
# list), all with one epoch.
converged()
{
    local want=$1 id e m epoch=""
    shift
    for id in "$@"; do
        read -r e m <<<"$(members_of "$id")"
        [ "$m" = "$want" ] || return 1
        [ -z "$epoch" ] || [ "$e" = "$epoch" ] || return 1
        epoch=$e
    done
}

# median: the median of the numbers on stdin, one per line ("-" for none).
median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) print "-"; else if (NR%2) print a[(NR+1)/2]; else printf "%.10g\n", (a[NR/2]+a[NR/2+1])/2}'; }
