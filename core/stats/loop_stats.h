/* Per-loop counters: written only by their loop's thread (RILL_STAT_ADD), read by stats
 * snapshots from any thread. */
#ifndef RILL_CORE_LOOP_STATS_H
#define RILL_CORE_LOOP_STATS_H

#include <stdint.h>

typedef struct rill__loop_stats {
    uint64_t msgs_in, bytes_in, msgs_dispatched, batches, msgs_out, bytes_out, handoff_msgs;
    uint64_t conns_accepted, conns_open;
    uint64_t err_frame_short, err_frame_long, err_midframe, err_conn, unknown_comp;
    uint64_t comp_errors, sink_dropped, sink_errors, enobufs;
    uint64_t conns_refused, err_idle, paused;
    uint64_t forwarded, peer_in, misrouted, rerouted;
    uint64_t sink_queued_bytes, stage_queued_bytes, held_buffers; /* gauges */
    uint64_t peer_dropped, handoff_dropped;
    uint64_t err_carry, carry_bytes; /* carry_bytes: gauge */
} rill__loop_stats_t;

#endif
