/* One loop thread: its io_uring, source connections, sink connections, cross-thread
 * handoff rings and counters. Everything here belongs to one thread, except the
 * counters (read by stats snapshots), the incoming handoff rings' consumer side, and
 * the eventfd (written by other loops and by shutdown). */
#ifndef RILL_CORE_LOOP_H
#define RILL_CORE_LOOP_H

#include <liburing.h>
#include <stdint.h>

#include "frame/frame.h"
#include "cluster/view.h"
#include "loop/handoff.h"
#include "worker_internal.h"

#define RILL_BATCH_MAX 256 /* views handed to one dispatch call at most */
#ifndef RILL_BUF_COUNT
#define RILL_BUF_COUNT 64 /* provided buffers per loop */
#endif

/* A growable byte buffer (output staging). */
typedef struct rill__buf {
    uint8_t *data;
    size_t len;
    size_t cap;
    uint64_t frames; /* frames held, for drop accounting */
} rill__buf_t;

/* Per-loop counters: written only by the loop thread (RILL_STAT_ADD), read by snapshots. */
typedef struct rill__loop_stats {
    uint64_t msgs_in, bytes_in, msgs_dispatched, batches, msgs_out, bytes_out, handoff_msgs;
    uint64_t conns_accepted, conns_open;
    uint64_t err_frame_short, err_frame_long, err_midframe, err_conn, unknown_comp;
    uint64_t comp_errors, sink_dropped, sink_errors, enobufs;
    uint64_t conns_refused, err_idle, paused;
    uint64_t forwarded, peer_in, misrouted, rerouted;
    uint64_t sink_queued_bytes, stage_queued_bytes, held_buffers; /* gauges */
} rill__loop_stats_t;

typedef struct rill__conn {
    int fd;
    uint32_t gen;       /* bumped on reuse so stale completions are recognised */
    uint8_t in_use;
    uint8_t recv_armed; /* a multishot recv is outstanding */
    uint8_t closing;    /* cancel sent; close when the recv's last completion arrives */
    uint8_t listener;
    uint8_t rearm;      /* recv ended while paused: re-arm on resume */
    uint8_t peer;       /* accepted on the peer listener: frames forwarded by members */
    uint8_t end_held;   /* EOF/error seen while its data was held: apply it after */
    int end_res;        /* that completion's result */
    unsigned held;      /* buffers of this connection held while paused */
    int close_reason;   /* RILL_E* / -errno that closed it, 0 for EOF */
    uint64_t frame_since; /* when the frame now pending began (ns), 0 between frames */
    rill__decoder_t dec;
} rill__conn_t;

enum { SINK_DOWN, SINK_CONNECTING, SINK_UP };

typedef struct rill__sink {
    int fd;
    int state;
    rill__addr_t addr;
    uint32_t gen;       /* peer links: bumped on reuse so stale completions are recognised */
    uint8_t in_use;     /* peer links: slot holds a member's link */
    uint8_t retiring;   /* peer links: member left; freed once its last operation completes */
    int op_pending;     /* a connect is outstanding */
    int hup_armed;      /* a poll for the peer's hang-up is outstanding */
    uint32_t conn_seq;  /* which connection of the link that poll watches */
    char id[64];        /* peer links: member id */
    uint64_t retry_at;  /* SINK_DOWN: next connect attempt (ns) */
    uint64_t backoff;   /* ns */
    rill__buf_t pend;   /* frames emitted, not yet sent */
    rill__buf_t fly;    /* frames being sent (one send in flight at most) */
    size_t fly_off;
    int sending;
} rill__sink_t;

struct rill__loop {
    rill_worker_t *w;
    unsigned idx;
    unsigned nloops;
    struct io_uring ring;
    int ring_ready;
    int efd;             /* wakeups: other loops' handoffs, shutdown */
    uint64_t efd_val;    /* read target of the pending eventfd read */
    int efd_armed;

    struct io_uring_buf_ring *br;
    uint8_t *bufs;
    unsigned nbufs, buf_size;
    size_t br_len;

    rill__conn_t *conns;
    unsigned nconns, conns_cap, conns_open;
    int accept_armed[RILL_MAX_LISTENERS];

    rill__sink_t sinks[RILL_MAX_SINKS];
    unsigned nsinks;

    /* Cluster: one link per other member, the member -> link map of the current view,
     * and the view itself (valid inside the iteration's registry section only). */
    rill__sink_t peers[RILL_MAX_MEMBERS];
    int16_t peer_of[RILL_MAX_MEMBERS];
    const rill_view_t *view;
    uint64_t view_gen;
    uint32_t conn_seq;  /* numbers link connections (hang-up polls name theirs) */

    /* Cross-thread handoff: out[d] is this loop's ring to loop d (owned by worker),
     * in[s] the ring from loop s; stage[d] holds bytes that did not fit yet. */
    rill__spsc_t **out;
    rill__spsc_t **in;
    rill__decoder_t *in_dec;
    rill__buf_t *stage;
    uint64_t wake_mask[RILL_MAX_THREADS / 64];

    /* emit_comp to a key this loop owns: processed after the current batch. */
    rill__buf_t local;
    rill__buf_t local_run; /* the generation of local being processed */
    rill__decoder_t local_dec;

    /* Dispatch scratch. */
    rill_msg_t views[RILL_BATCH_MAX];
    rill_msg_t mine[RILL_BATCH_MAX];
    uint64_t emitted;    /* frames emitted to sinks, not yet added to stats.msgs_out */
    uint32_t cache_id;
    const rill__comp_t *cache_comp;

    /* Backpressure: while an outbound queue is above its high watermark, received buffers
     * are held (in arrival order) instead of processed and recv is not re-armed, so the
     * kernel runs out of buffers and TCP pushes back on the senders. */
    int paused;
    int sink_paused;     /* paused because a sink is behind: incoming handoffs wait too */
    struct rill__held {
        unsigned slot, bid, len;
        uint32_t gen;
    } held[RILL_BUF_COUNT];
    unsigned held_head, held_count;
    unsigned rearm_pending; /* connections with rearm set */

    uint64_t next_flush;
    uint64_t next_sweep; /* idle-connection check, once a second */
    uint64_t now;        /* time of the current iteration */
    int phase;           /* drain progress, see loop.c */
    uint64_t drain_deadline;
    int pending_work;    /* something to do without waiting */

    rill__loop_stats_t stats;
};

/* Allocates loop idx of w (no ring yet: that is created by the thread that runs it).
 * Returns 0 or RILL_ENOMEM / -errno. */
int rill__loop_new(rill__loop_t **out, rill_worker_t *w, unsigned idx);
void rill__loop_free(rill__loop_t *l);

/* Runs the loop on the calling thread until the worker has stopped and drained. */
int rill__loop_run(rill__loop_t *l);

/* Wakes the loop (any thread; async-signal-safe). */
void rill__loop_wake(rill__loop_t *l);

/* The loop the calling thread runs, or NULL (misuse checks: no blocking calls from loops). */
extern __thread rill__loop_t *rill__current_loop;

/* Makes room for n more bytes in b (capacity grows by doubling, never beyond max).
 * Returns 0, or RILL_EFULL when b would exceed max or memory is short. */
int rill__buf_reserve(rill__buf_t *b, size_t n, size_t max);

/* Appends one v1 frame to this loop's link to view member `member` (cluster forwarding). */
void rill__peer_forward(rill__loop_t *l, int member, const rill_msg_t *m);

#endif
