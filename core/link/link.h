/* Outbound links of one loop: its connection to each sink and, in a cluster, to each
 * other member (peer links). This module owns their queues: every frame that leaves
 * the loop over TCP is appended here (emits, forwards, re-queued frames of a failed
 * send), under one cap per link (sink_buffer) with one drop accounting, and sent from
 * here: connect with backoff, one send in flight per link, short sends finished before
 * anything newer, hang-up detection, and re-queueing of what a failed send did not hand
 * to the kernel.
 *
 * All of it runs on the loop's thread; completions arrive through
 * rill__links_on_completion with the RILL_OP_LINK_* user_data of ring/ring.h. */
#ifndef RILL_CORE_LINK_H
#define RILL_CORE_LINK_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/view.h"
#include "frame/frame.h"
#include "net/addr.h"
#include "ring/ring.h"
#include "stats/loop_stats.h"
#include "util/buf.h"
#include "util/limits.h"
#include "util/log.h"

enum { RILL_LINK_DOWN, RILL_LINK_CONNECTING, RILL_LINK_UP };

/* Peer slots: one link per member and depth (util/limits.h: RILL_PEER_DEPTHS, then the
 * standby link, RILL_STANDBY_DEPTH), a member's group of slots g holding its depth-d link
 * at g * RILL_PEER_LINKS + d - 1. */
#define RILL_PEER_LINKS RILL_STANDBY_DEPTH
#define RILL_PEER_SLOTS (RILL_MAX_MEMBERS * RILL_PEER_LINKS)

/* Outputs a loop's barriers track: its sinks, then its peer slots. */
#define RILL_LINK_OUTPUTS (RILL_MAX_SINKS + RILL_PEER_SLOTS)

/* The depth of the link in peer slot p. */
static inline unsigned rill__link_slot_depth(unsigned p)
{
    return p % RILL_PEER_LINKS + 1;
}

typedef struct rill__link {
    int fd;
    int state;
    rill__addr_t addr;
    uint32_t gen;            /* bumped on reuse so stale completions are recognised */
    uint8_t in_use;          /* peer links: slot holds a member's link */
    uint8_t retiring;        /* peer links: member left; freed once its last operation completes */
    uint8_t op_pending;      /* a connect is outstanding */
    uint8_t hup_armed;       /* a poll for the other side's hang-up is outstanding */
    uint8_t sending;         /* a send is outstanding (fly) */
    uint8_t lazy;            /* peer links deeper than 1: no connect before a frame is queued */
    uint8_t refused;         /* the last connect was refused (nobody listens at addr), and
                              * none succeeded since */
    uint32_t conn_seq;       /* which connection of the link that poll watches */
    char id[RILL_ID_MAX];    /* peer links: member id; empty for sinks */
    uint64_t retry_at;       /* RILL_LINK_DOWN: next connect attempt (ns) */
    uint64_t backoff;        /* ns */
    rill__buf_t pend;        /* frames queued, not yet sent */
    rill__buf_t fly;         /* frames being sent (one send in flight at most) */
    size_t fly_off;          /* bytes of fly the kernel has taken */
    uint64_t *dropped;       /* where this link's drops are counted (sink_ or peer_dropped) */
    struct rill__acked *ack; /* acknowledged delivery (HELLO / WELCOME / ACK), or NULL */
    uint64_t base;           /* peer slots: frames of earlier uses of the slot, all resolved
                              * (acknowledged or handed back): keeps its figures monotonic */
    size_t mark_at;          /* acked links: pend length at which the next batch appended
                              * records a frame boundary (rill__acked_mark_pend) */
} rill__link_t;

typedef struct rill__links {
    rill__ring_t *ring;
    rill__loop_stats_t *stats;
    rill__log_flags_t *logged;
    size_t cap;        /* bytes one link may queue */
    uint32_t conn_seq; /* numbers link connections (hang-up polls name theirs) */
    unsigned nsinks;
    int clustered;
    rill__link_t sinks[RILL_MAX_SINKS];
    rill__link_t peers[RILL_PEER_SLOTS];
    int16_t peer_of[RILL_MAX_MEMBERS]; /* member of the adopted view -> slot group, or -1 */
    /* Frames to route again under the current view: queued for a member that left, or
     * left unsent by the failed send of such a member's link; reroute[d - 1] those of its
     * depth-d link. The loop takes them. */
    rill__buf_t reroute[RILL_PEER_LINKS];
    /* Peer links are acknowledged streams; their ids derive from this and the member. */
    uint64_t stream_seed;
    /* When set (the cluster has credentials), a peer link answers the peer listener's
     * CHALLENGE with a HELLO that carries an HMAC under this key (RILL_CTL_MAC_LEN). */
    const uint8_t *peer_key;
    /* The acked links' figures (rill__links_figures) as last published for other loops,
     * which read them to tell when frames they handed to this loop are safe. */
    unsigned nacked;
    _Atomic uint64_t pub_appended[RILL_LINK_OUTPUTS], pub_safe[RILL_LINK_OUTPUTS];
} rill__links_t;

/* An acked stream's id from the worker's random seed and what names the stream within it
 * (loop and sink, or loop and member): stable for the worker's life, different across
 * workers, never 0. */
static inline uint64_t rill__stream_id(uint64_t seed, uint64_t name)
{
    uint64_t x = seed ^ name * 0x9e3779b97f4a7c15ull;
    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 29;
    return x ? x : 1;
}

/* Sets up the links to the given sinks (nothing connects before rill__links_service).
 * cap: bytes each link may queue; stream_seed: peer links' stream ids derive from it. */
void rill__links_init(rill__links_t *ls, rill__ring_t *ring, rill__loop_stats_t *stats,
                      rill__log_flags_t *logged, size_t cap, const rill__addr_t *sinks,
                      unsigned nsinks, int clustered, uint64_t stream_seed);
/* Makes link k an acknowledged stream with the given stream id (a sink before the loop
 * runs; a peer link when it opens). Returns 0 or RILL_ENOMEM. */
int rill__link_make_acked(rill__links_t *ls, rill__link_t *k, uint64_t stream_id);
/* Closes every descriptor and frees every queue. */
void rill__links_free(rill__links_t *ls);
/* Closes the descriptors only (the loop's ring is gone; queues stay for the counters). */
void rill__links_close(rill__links_t *ls);

/* Makes room for bytes more bytes (frames frames) in k's queue. Returns 0, or RILL_EFULL
 * (the queue is at the cap) / RILL_ENOMEM, and then counts the frames as dropped. */
int rill__link_reserve(rill__links_t *ls, rill__link_t *k, size_t bytes, uint64_t frames);

/* Bytes of frames k's queue still takes before an append returns RILL_EFULL (SIZE_MAX for
 * an acked link, which is never full). */
size_t rill__link_room(const rill__links_t *ls, const rill__link_t *k);

/* Appends one v1 frame to k's queue. Returns 0, RILL_EFULL or RILL_ENOMEM (dropped and
 * counted). Inline: it runs once per emitted message. */
static inline int rill__link_append(rill__links_t *ls, rill__link_t *k, uint32_t comp_id,
                                    uint64_t key, const void *data, uint32_t len)
{
    size_t fs = rill__frame_size(len);
    if (__builtin_expect(k->pend.len + fs > k->pend.cap, 0)) {
        int rc = rill__link_reserve(ls, k, fs, 1);
        if (rc < 0)
            return rc;
    }
    rill__frame_encode(k->pend.data + k->pend.len, comp_id, key, data, len);
    k->pend.len += fs;
    k->pend.frames++;
    return 0;
}

/* Appends n frames (bytes: their total wire size) with one capacity check; when they do
 * not all fit, frame by frame. Returns how many were queued (the others are counted). */
size_t rill__link_append_msgs(rill__links_t *ls, rill__link_t *k, const rill_msg_t *m, size_t n,
                              size_t bytes);

/* Drops what k has queued without counting it (benchmark drivers that never send). */
void rill__link_discard(rill__link_t *k);

/* The depth-`depth` link (1 .. RILL_PEER_LINKS) to member `member` of the adopted view,
 * or NULL (itself, or no free slot). */
static inline rill__link_t *rill__links_peer(rill__links_t *ls, int member, unsigned depth)
{
    int g = ls->peer_of[member];
    return g >= 0 ? &ls->peers[(unsigned)g * RILL_PEER_LINKS + depth - 1] : NULL;
}

/* For each member of the view ls follows now: whether its depth-1 link's connects are
 * refused (refused[i] != 0), which says that the member's process is gone, crashed: a
 * member that leaves keeps its listener until what it sent is out (loop/drain.c). */
void rill__links_refused(const rill__links_t *ls, unsigned n, uint8_t *refused);

/* Adopts view v: opens links to members it has not seen (depth 1 at once, the deeper
 * ones when a frame is first queued on them), retires the links of members that left
 * (their queued frames move to ls->reroute). */
void rill__links_adopt_view(rill__links_t *ls, const rill_view_t *v);

/* Starts the connects that are due (when may_connect) and a send on every link that is
 * up, idle and has frames queued. */
void rill__links_service(rill__links_t *ls, uint64_t now, int may_connect);

/* Handles a RILL_OP_LINK_* completion. */
void rill__links_on_completion(rill__links_t *ls, const struct io_uring_cqe *cqe, uint64_t now);

/* Non-zero when no link has anything queued or in flight. */
int rill__links_idle(const rill__links_t *ls);
/* Bytes queued or in flight over all links. */
size_t rill__links_queued(const rill__links_t *ls);
/* Bytes acked links hold until their receivers acknowledge them. */
size_t rill__links_retained(const rill__links_t *ls);
/* Backpressure: *high when some link's queue is above hi bytes, *low when every one is
 * at or below lo. */
void rill__links_pressure(const rill__links_t *ls, size_t hi, size_t lo, int *high, int *low);
/* Nanoseconds until the next connect attempt is due (0: now), UINT64_MAX when none. */
uint64_t rill__links_next_retry(const rill__links_t *ls, uint64_t now);
/* Outputs with figures: the sinks, then (in a cluster) every peer slot. */
static inline unsigned rill__links_outputs(const rill__links_t *ls)
{
    return ls->nsinks + (ls->clustered ? RILL_PEER_SLOTS : 0);
}
/* Per output o (sink s is o = s, peer slot p is o = nsinks + p): frames given to it since
 * the loop began (appended[o]) and frames its receiver acknowledged or that were handed
 * back for re-routing (safe[o]); both 0 for a best-effort sink, which keeps nothing it
 * could send again. The outputs' figures of core/barrier. */
void rill__links_figures(const rill__links_t *ls, uint64_t *appended, uint64_t *safe);
/* Publishes the figures for other loops (release): called before this loop reports a
 * handoff as processed, so that a loop which sees nothing in flight also sees every
 * frame those handoffs produced. */
void rill__links_publish(rill__links_t *ls);

/* The drain gave up: counts everything still queued or in flight as dropped. */
void rill__links_count_unsent(rill__links_t *ls);

#endif
