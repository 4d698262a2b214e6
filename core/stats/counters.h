/* The worker's counters, listed once. Everything that names them is generated from this
 * table or checked against it:
 *   - rill__loop_stats_t (core/stats/loop_stats.h): one field per LOOPS row, generated;
 *   - rill_worker_stats (core/worker.c): the sums over loops and the cluster reads, generated;
 *   - /metrics (core/metrics/metrics.c): sample names, HELP and TYPE lines, generated;
 *   - rill-worker's stats line (examples/rill-worker/main.c): its tokens, generated;
 *   - rill_stats_t (rill.h): written out for cgo and users, checked below at compile time
 *     (every row a uint64_t field, at the row's position, and nothing else in the struct);
 *   - Go's Stats (api/go/stats.go) and the docs: checked by tests (stats_test.go,
 *     tests/unit/stats_counters_test.c).
 *
 * X(name, kind, source, line, metric, help)
 *   name    the field in rill_stats_t and, for LOOPS rows, in rill__loop_stats_t
 *   kind    COUNTER (monotonic) or GAUGE (a current value, may go down)
 *   source  LOOPS: each loop counts its own (RILL_STAT_ADD/SET on its loop stats) and
 *           rill_worker_stats sums the loops; CLUSTER: read from rill__cluster_<name>()
 *           (0 for a worker that is not clustered); REGISTRY: read from
 *           rill__registry_<name>() (summed over the registered computations)
 *   line    the token in rill-worker's stats line ("" when the line does not show it)
 *   metric  the sample's name in /metrics; rows of one family (same name before '{') differ
 *           by a label given as {label="value"}. Units are Prometheus's base units, never
 *           abbreviated (promtool's lint): a family named *_seconds* exports a field
 *           counted in nanoseconds (its name ends in _ns) divided by 1e9
 *   help    one line: what it counts (the HELP text)
 *
 * A new counter is a new row at the END (rill_stats_t is size-versioned: callers pass the
 * sizeof they compiled, so existing fields never move) plus the same field at the end of
 * rill_stats_t, a Go Stats field and a line in the docs; the build or the tests fail until
 * all are there. */
#ifndef RILL_CORE_STATS_COUNTERS_H
#define RILL_CORE_STATS_COUNTERS_H

#include <stddef.h>
#include <stdint.h>

#include "rill/rill.h"

/* clang-format off */
#define RILL__COUNTERS(X)                                                                      \
    X(msgs_in, COUNTER, LOOPS, "in", "rill_msgs_in_total",                                     \
      "Frames decoded from source connections.")                                               \
    X(bytes_in, COUNTER, LOOPS, "", "rill_bytes_in_total",                                     \
      "Bytes received from source connections.")                                               \
    X(msgs_dispatched, COUNTER, LOOPS, "", "rill_msgs_dispatched_total",                       \
      "Messages routed to a computation id (including emit_comp and unknown ids).")            \
    X(batches, COUNTER, LOOPS, "", "rill_batches_total",                                       \
      "Computation callback invocations.")                                                     \
    X(msgs_out, COUNTER, LOOPS, "out", "rill_msgs_out_total",                                  \
      "Frames queued for sinks (including dead letters).")                                     \
    X(bytes_out, COUNTER, LOOPS, "", "rill_bytes_out_total",                                   \
      "Bytes written to sinks.")                                                               \
    X(handoff_msgs, COUNTER, LOOPS, "", "rill_handoff_msgs_total",                             \
      "Messages passed to another loop thread.")                                               \
    X(conns_accepted, COUNTER, LOOPS, "", "rill_conns_accepted_total",                         \
      "Source connections accepted.")                                                          \
    X(conns_open, GAUGE, LOOPS, "conns", "rill_conns_open",                                    \
      "Source connections open now.")                                                          \
    X(err_frame_short, COUNTER, LOOPS, "short", "rill_protocol_errors_total{reason=\"frame_short\"}", \
      "Source connections closed because a v1 frame length was below 12.")                   \
    X(err_frame_long, COUNTER, LOOPS, "long", "rill_protocol_errors_total{reason=\"frame_long\"}", \
      "Source connections closed because a v1 length was above max_frame, or an lp/line payload above max_frame - 12.") \
    X(err_midframe, COUNTER, LOOPS, "midframe", "rill_protocol_errors_total{reason=\"midframe\"}", \
      "Source connections that closed inside a frame.")                                        \
    X(err_conn, COUNTER, LOOPS, "conn_err", "rill_conn_errors_total",                          \
      "Source socket errors, failed accepts, connections without memory.")                     \
    X(unknown_comp, COUNTER, LOOPS, "unknown", "rill_unknown_comp_total",                      \
      "Frames for an unregistered computation id.")                                            \
    X(comp_errors, COUNTER, LOOPS, "comp_err", "rill_failed_msgs_total",                       \
      "Messages in batches whose callback returned an error (all computations).")              \
    X(sink_dropped, COUNTER, LOOPS, "dropped", "rill_sink_dropped_total",                      \
      "Frames for a sink dropped: its buffer full, no memory, or still queued at the stop deadline.") \
    X(sink_errors, COUNTER, LOOPS, "sink_err", "rill_sink_errors_total",                       \
      "Sink and peer link connection failures (failed connects and sends).")                   \
    X(enobufs, COUNTER, LOOPS, "", "rill_recv_enobufs_total",                                  \
      "Receive re-arms after the loop's buffer ring ran dry (backpressure).")                  \
    X(conns_refused, COUNTER, LOOPS, "refused", "rill_conns_refused_total",                    \
      "Source connections closed right after accept because max_conns was reached.")           \
    X(err_idle, COUNTER, LOOPS, "idle", "rill_protocol_errors_total{reason=\"idle\"}",         \
      "Source connections closed because they stalled inside a frame past idle_timeout.")      \
    X(paused, COUNTER, LOOPS, "paused", "rill_paused_total",                                   \
      "Times a loop stopped reading its sources because an outbound queue was above its high watermark.") \
    X(forwarded, COUNTER, LOOPS, "fwd", "rill_forwarded_total",                                \
      "Frames sent to the cluster member that owns their key.")                                \
    X(peer_in, COUNTER, LOOPS, "peer_in", "rill_peer_in_total",                                \
      "Frames received from other cluster members.")                                           \
    X(misrouted, COUNTER, LOOPS, "misrouted", "rill_misrouted_total",                          \
      "Frames processed here without being this worker's in its view: forwarded by a member whose view differs, or from a source while the worker had no view yet.") \
    X(rerouted, COUNTER, LOOPS, "rerouted", "rill_rerouted_total",                             \
      "Frames queued for a member that left, routed again.")                                   \
    X(view_changes, COUNTER, CLUSTER, "", "rill_view_changes_total",                           \
      "Cluster views adopted (including the one a leaving worker adopts without itself).") \
    X(zk_errors, COUNTER, CLUSTER, "zk_err", "rill_zk_errors_total",                           \
      "ZooKeeper failures and malformed member data.")                                         \
    X(sink_queued_bytes, GAUGE, LOOPS, "", "rill_sink_queued_bytes",                           \
      "Output bytes waiting for sinks and peer links.")                                        \
    X(stage_queued_bytes, GAUGE, LOOPS, "", "rill_stage_queued_bytes",                         \
      "Bytes waiting to be handed to another loop thread.")                                    \
    X(held_buffers, GAUGE, LOOPS, "", "rill_held_buffers",                                     \
      "Received buffers held back by backpressure.")                                           \
    X(peer_dropped, COUNTER, LOOPS, "peer_dropped", "rill_peer_dropped_total",                 \
      "Frames for another cluster member dropped: no link to it, no memory to queue it, still queued at a drain deadline, or held back by a fenced member when it stopped.") \
    X(handoff_dropped, COUNTER, LOOPS, "handoff_dropped", "rill_handoff_dropped_total",        \
      "Frames for another loop of this worker, or for the emitting loop's own emit_comp queue, dropped for lack of memory.") \
    X(err_carry, COUNTER, LOOPS, "carry", "rill_protocol_errors_total{reason=\"carry_budget\"}", \
      "Source connections closed because the worker's partial frames exceeded the carry budget (largest first).") \
    X(carry_bytes, GAUGE, LOOPS, "", "rill_carry_bytes",                                       \
      "Bytes held in source connections' partial frames (bounded by the carry budget).") \
    X(resent, COUNTER, LOOPS, "resent", "rill_resent_total",                                   \
      "Frames an acked link sent again after a reconnect (the receiver did not hold them).") \
    X(credit_waits, COUNTER, LOOPS, "", "rill_credit_waits_total",                             \
      "Times an acked link had frames queued and no credit left to send them.")              \
    X(err_control, COUNTER, LOOPS, "", "rill_protocol_errors_total{reason=\"control\"}",       \
      "Connections closed for a malformed or unexpected control frame.")                     \
    X(retained_bytes, GAUGE, LOOPS, "", "rill_retained_bytes",                                 \
      "Bytes acked links hold until their receivers acknowledge them.")                       \
    X(acked_in, COUNTER, LOOPS, "acked_in", "rill_acked_in_total",                             \
      "Data frames that ran from acked source streams (resent ones that already ran excluded).") \
    X(dup_skipped, COUNTER, LOOPS, "dup_skipped", "rill_dup_skipped_total",                    \
      "Frames an acked source sent again that had already run here: skipped.")               \
    X(acks_sent, COUNTER, LOOPS, "", "rill_acks_sent_total",                                   \
      "ACK frames sent to acked sources.")                                                     \
    X(ack_barriers, COUNTER, LOOPS, "", "rill_ack_barriers_total",                             \
      "Points at which acked source frames waited for their effects to be acknowledged downstream, completed.") \
    X(ack_wait_ns, COUNTER, LOOPS, "", "rill_ack_wait_seconds_total",                          \
      "Seconds those points waited, summed (mean wait: divided by rill_ack_barriers_total).") \
    X(acked_conns, GAUGE, LOOPS, "acked_conns", "rill_acked_conns",                            \
      "Source connections open now that began with HELLO.")                                   \
    X(err_auth, COUNTER, LOOPS, "", "rill_protocol_errors_total{reason=\"auth\"}",            \
      "Peer connections refused: they did not prove the cluster's credentials.")              \
    X(sinks_up, GAUGE, LOOPS, "", "rill_sink_connections_up",                                  \
      "Sink connections up now, over all loops (each loop has one to each sink).")            \
    X(state_bytes, GAUGE, REGISTRY, "state", "rill_state_bytes",                               \
      "Memory the managed state of the registered computations holds now (bytes).")          \
    X(groups_owned, GAUGE, LOOPS, "groups", "rill_groups_owned",                               \
      "Key groups this member owns in its current view (counted when managed state is registered).") \
    X(groups_moved, COUNTER, LOOPS, "moved", "rill_groups_moved_total",                        \
      "Key groups whose managed state this member sent to their new owner.")                   \
    X(handoff_wait_ns, COUNTER, LOOPS, "", "rill_handoff_wait_seconds_total",                  \
      "Seconds key groups new to this member held their frames back for their state, summed.") \
    X(state_lost_groups, COUNTER, LOOPS, "lost_groups", "rill_state_lost_groups_total",        \
      "Key groups that ran on without their managed state: it did not arrive in time or could not be sent.") \
    X(state_rejected, COUNTER, LOOPS, "", "rill_state_rejected_total",                         \
      "Chunks of managed state refused: malformed, for a computation without managed state here, or late.") \
    X(groups_promoted, COUNTER, LOOPS, "promoted", "rill_groups_promoted_total",               \
      "Key groups whose standby copy here became their state when their owner left or died.") \
    X(fenced, COUNTER, CLUSTER, "fenced", "rill_fenced_total",                                 \
      "Times this member held its managed key groups back because its ZooKeeper session may have been lost.") \
    X(groups_waiting, GAUGE, LOOPS, "waiting", "rill_groups_waiting",                          \
      "Key groups new to this member holding their frames back for their state now.")          \
    X(standby_bytes, COUNTER, LOOPS, "", "rill_standby_bytes_total",                           \
      "Bytes of managed state this member sent to the standby copies of the groups it owns.")
/* clang-format on */

/* Prometheus TYPE of a kind. */
#define RILL__COUNTER_TYPE_COUNTER "counter"
#define RILL__COUNTER_TYPE_GAUGE "gauge"

/* Row positions, and the number of rows. */
enum {
#define RILL__COUNTER_POS_(name, kind, source, line, metric, help) RILL__COUNTER_POS_##name,
    RILL__COUNTERS(RILL__COUNTER_POS_)
#undef RILL__COUNTER_POS_
        RILL__COUNTER_COUNT
};

/* rill_stats_t holds exactly the rows, in table order, each a uint64_t. */
#define RILL__COUNTER_CHECK_(name, kind, source, line, metric, help)                               \
    _Static_assert(offsetof(rill_stats_t, name) == RILL__COUNTER_POS_##name * sizeof(uint64_t),    \
                   "rill_stats_t." #name " is not at its place in the counter table");             \
    _Static_assert(sizeof(((rill_stats_t *)0)->name) == sizeof(uint64_t),                          \
                   "rill_stats_t." #name " is not a uint64_t");
RILL__COUNTERS(RILL__COUNTER_CHECK_)
#undef RILL__COUNTER_CHECK_
_Static_assert(sizeof(rill_stats_t) == RILL__COUNTER_COUNT * sizeof(uint64_t),
               "rill_stats_t has a field that the counter table (core/stats/counters.h) lacks");

#endif /* RILL_CORE_STATS_COUNTERS_H */
