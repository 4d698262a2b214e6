/* One loop thread: its io_uring, source connections, outbound links, cross-thread
 * handoff and counters. Everything here belongs to one thread, except the counters (read
 * by stats snapshots), the incoming handoff rings' consumer side, and the eventfd
 * (written by other loops, the cluster thread and shutdown).
 *
 * The loop's files: loop.c (life cycle and the iteration), conn.c (source connections),
 * backpressure.c (pausing sources while outputs are behind), drain.c (the stop
 * sequence). */
#ifndef RILL_CORE_LOOP_H
#define RILL_CORE_LOOP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "barrier/barrier.h"
#include "dispatch/dispatch.h"
#include "frame/control.h"
#include "frame/frame.h"
#include "handoff/stage.h"
#include "link/link.h"
#include "ring/ring.h"
#include "stats/loop_stats.h"
#include "worker_internal.h"

/* What a source connection is, decided by its first frame (acked_in.c). */
enum {
    RILL_CONN_NEW = 0, /* v1 framing, no frame yet: HELLO makes it acked */
    RILL_CONN_PLAIN,   /* best-effort: another first frame, lp/line, or the peer listener */
    RILL_CONN_ACKED,   /* began with HELLO: frames are acknowledged once safe */
};

/* An acked source stream: the receiver's side of HELLO / WELCOME / ACK. It outlives its
 * connection, so that a sender that reconnects to this loop is told what is already
 * safe and its resent frames that already ran are skipped. */
typedef struct rill__stream {
    uint64_t id;
    uint64_t next_seq;   /* seq of the next data frame on the attached connection */
    uint64_t acked_sent; /* highest seq the attached connection's sender was told is safe */
    int conn;            /* slot of the attached connection, -1 when none */
    uint8_t pending;     /* on the loop's pending list */
    uint64_t last_used;  /* ns: the oldest detached stream goes first when the table is full */
    uint8_t cls;         /* its origin (0: a source; a peer link's depth): its barriers */
    rill__ackq_t q;
} rill__stream_t;

/* Barrier classes, one per origin (handoff/stage.h) for the frames that arrived on this
 * loop's streams (class = origin: 0 from sources, d from a member's depth-d peer link),
 * and one per origin for frames handed over by another loop (RILL_ACK_LOOP + origin).
 * Frames may leave through every output (sinks, peer links when forwarded to their key's
 * owner or emitted to a key another member owns, other loops when handed to their key's
 * loop); a class's barriers count the sinks and only the peer links one depth deeper
 * than its origin (none for the last): every wait goes deeper, which is what keeps two
 * members that forward to each other from each waiting for the other's acknowledgement.
 * (So what a frame of the last depth sends to another member is not waited for.) The
 * barriers of frames handed over by another loop count this loop's outputs; when running
 * them handed anything on (to a loop, a member or this loop's emit_comp queue) they wait
 * for a moment when nothing is in flight in the worker and then count every loop's
 * outputs; counting those on-handed frames instead could make two loops wait on each
 * other. */
enum {
    RILL_ACK_FROM_SOURCE = RILL_ORIGIN_SOURCE,
    RILL_ACK_LOOP = RILL_ORIGINS, /* + origin: handed over by another loop */
    RILL_ACK_CLASSES = 2 * RILL_ORIGINS
};

/* The control frames an acked connection sends, one send in flight at a time. */
typedef struct rill__conn_tx {
    uint8_t buf[3 * RILL_CTL_FRAME_MAX];
    size_t len, off;
    uint8_t welcome_due, goaway_due, challenge_due;
    uint8_t goaway_len;   /* GOAWAY: the length of the address it names (0: none) */
    char goaway_addr[96]; /* another member's source address, from the view */
    uint64_t welcome_seq;
    uint8_t nonce[RILL_CTL_NONCE_LEN]; /* peer listener with credentials: its CHALLENGE's */
} rill__conn_tx_t;

typedef struct rill__conn {
    int fd;
    uint32_t gen; /* bumped on reuse so stale completions are recognised */
    uint8_t in_use;
    uint8_t recv_armed; /* a multishot recv is outstanding */
    uint8_t closing;    /* cancel sent; close when the recv's last completion arrives */
    uint8_t listener;
    uint8_t rearm;        /* recv ended while paused: re-arm on resume */
    uint8_t peer;         /* accepted on the peer listener: frames forwarded by members */
    uint8_t standby_in;   /* peer, HELLO depth RILL_STANDBY_DEPTH: another member's standby
                           * copies, read also while paused (see rill__conn_unpaused) */
    uint8_t end_held;     /* EOF/error seen while its data was held: apply it after */
    int end_res;          /* that completion's result */
    unsigned held;        /* buffers of this connection held while paused */
    int close_reason;     /* RILL_E* / -errno that closed it, 0 for EOF */
    uint64_t frame_since; /* when the frame now pending began (ns), 0 between frames */
    size_t carried;       /* bytes of its partial frame counted in the loop's carried */
    rill__decoder_t dec;
    uint8_t mode;           /* RILL_CONN_* */
    uint8_t tx_armed;       /* acked: a send of control frames is outstanding */
    uint8_t leaving;        /* acked, draining: GOAWAY sent, no more reads, close once acked */
    uint8_t discard;        /* leaving and acknowledged: FIN sent, what still comes is read
                             * and dropped (never run, so never acknowledged) until EOF */
    rill__stream_t *stream; /* acked: its stream */
    rill__conn_tx_t *tx;    /* acked: control frames out */
    uint8_t handing;        /* its stream lives on another loop: the descriptor moves there
                             * once this loop's operations on it are done */
    uint8_t hand_depth;     /* handing: the HELLO's depth */
    uint64_t hand_stream, hand_first; /* handing: the HELLO's stream id and first_seq */
} rill__conn_t;

/* A connection on its way to the loop that holds its stream (see acked_in.c). */
typedef struct rill__handover {
    int fd;
    unsigned listener;
    uint64_t stream_id, first_seq;
    uint8_t depth;
    struct rill__handover *next;
} rill__handover_t;

struct rill__loop {
    rill_worker_t *w;
    unsigned idx;
    unsigned nloops;
    rill__ring_t ring;
    int efd;          /* wakeups: other loops' handoffs, the cluster thread, shutdown */
    uint64_t efd_val; /* read target of the pending eventfd read */
    int efd_armed;

    rill__conn_t *conns;
    unsigned nconns, conns_cap, conns_open;
    size_t carried; /* bytes held in this loop's connections' partial frames */
    int accept_armed[RILL_MAX_LISTENERS];
    int accept_deferred; /* an accept was left unarmed: this loop is ahead of the others */

    rill__links_t links;              /* sinks and peer links */
    rill__handoff_t handoff;          /* other loops */
    rill__dispatch_t dispatch;        /* computations */
    uint64_t view_gen;                /* generation of the view the links follow */
    rill_view_t *moves_prev;          /* the view adopted before (group_moves.c), or NULL */
    rill__buf_t moves_sync;           /* rill__moves_sync's sorted keys, kept between calls */
    rill_msg_t views[RILL_BATCH_MAX]; /* decoded from a source buffer */

    /* Backpressure: while an outbound queue is above its high watermark, received buffers
     * are held (in arrival order) instead of processed and recv is not re-armed, so the
     * kernel runs out of buffers and TCP pushes back on the senders. */
    int paused;
    int sink_paused; /* paused because a link is behind: incoming handoffs wait too */
    struct rill__held {
        unsigned slot, bid, len;
        uint32_t gen;
    } held[RILL_BUF_COUNT];
    unsigned held_head, held_count;
    unsigned rearm_pending; /* connections with rearm set */
    uint64_t resumed_at;    /* when the loop last stopped being paused (ns) */

    uint64_t next_flush;
    uint64_t next_sweep; /* idle-connection check */
    uint64_t now;        /* time of the current iteration */
    int phase;           /* drain progress, see drain.c */
    uint64_t drain_deadline;
    int pending_work;   /* something to do without waiting */
    unsigned last_seen; /* completions the last iteration handled (batching under load) */

    /* Acked sources (acked_in.c): streams by id, the ones with work, and the barriers
     * that tell when their frames' effects are safe. Snapshots have one figure per
     * (loop, sink): index loop * nsinks + sink. */
    rill__stream_t **streams;
    unsigned nstreams, streams_cap;
    rill__stream_t **pending;
    unsigned npending;
    rill__barriers_t barriers[RILL_ACK_CLASSES];
    /* Frames other loops handed here, as acked inputs, per origin o: from_loop[s *
     * RILL_ORIGINS + o] counts what ran of loop s's frames of that origin (processed) and
     * what of them is safe, published in safe_from[s][o] for loop s, whose barriers
     * count the frames it handed here. */
    rill__ackq_t *from_loop;
    _Atomic uint64_t safe_from[RILL_MAX_THREADS][RILL_ORIGINS];
    int from_loop_busy;        /* some from_loop[] waits or has unnoted frames */
    atomic_int ack_waiting;    /* this loop's barriers wait for other loops: wake it on news */
    int chained[RILL_ORIGINS]; /* frames handed here handed something on since the last barrier */
    uint64_t chain_mark;       /* what this loop had handed on before the frames being run */
    uint64_t *fig_a, *fig_s;   /* scratch: appended and safe figures, one per snapshot slot */
    uint64_t nonces;           /* CHALLENGE nonces made without the kernel's entropy */
    /* Connections other loops hand to this one (their streams live here). Written by
     * those loops under the mutex, taken by this loop once per iteration. */
    pthread_mutex_t handover_mu;
    rill__handover_t *handovers;
    atomic_int handover_pending;

    rill__loop_stats_t stats;
};

/* Allocates loop idx of w (no ring yet: that is created by the thread that runs it).
 * Returns 0 or RILL_ENOMEM / -errno. */
int rill__loop_new(rill__loop_t **out, rill_worker_t *w, unsigned idx);
void rill__loop_free(rill__loop_t *l);

/* Runs the loop on the calling thread until the worker has stopped and drained. ready,
 * when not NULL, is called once the loop's ring exists (or could not be created: then
 * with the error), before anything else happens. Returns 0 or the error that ended the
 * loop (ring set-up, or a failed wait). */
int rill__loop_run(rill__loop_t *l, void (*ready)(void *ctx, int rc), void *ctx);

/* Wakes the loop (any thread; async-signal-safe). */
void rill__loop_wake(rill__loop_t *l);

/* The loop the calling thread runs, or NULL (misuse checks: no blocking calls from loops). */
extern __thread rill__loop_t *rill__current_loop;

#endif
