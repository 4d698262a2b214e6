/* Acknowledged delivery on a link (docs/protocol.md, "Control frames"): the link is the
 * sender of one stream. Every frame it sends stays retained until the receiver
 * acknowledges it; after a reconnect the link sends HELLO with its oldest unacknowledged
 * seq and, once the WELCOME says what the receiver already holds, sends the rest again.
 * Credit (the receiver's grant of unacknowledged bytes) bounds what is in flight.
 *
 * The retained stream is a FIFO of chunks, each a queue buffer taken whole from pend when
 * everything before it was sent (small batches join the newest chunk instead), so no
 * frame is copied or moved to be retained. Places in the stream are byte positions since
 * it began, each with the seq of the frame there:
 *
 *   head  oldest frame not yet released; frames up to `acked` are acknowledged, and
 *         head may lag behind them: whole chunks are released as ACKs cover them, head
 *         moves to recorded frame boundaries (marks: one per 64 KiB of appended batches,
 *         and where sends measured a window) when the credit needs it, and
 *         frames are stepped over one by one only for an exact place (a reconnect, a
 *         hand-back) or when no mark is near: an ACK costs no walk over frames that
 *         left the cache long ago
 *   snd   next byte to send on this connection; win: end of the send in flight
 *   max   furthest sent on any connection: [head, max) is retained, [max, end) queued
 *   end   end of the retained stream; pend follows it
 *
 * A chunk's memory is never reallocated or freed while a send from it is in flight.
 * This file's functions speak the protocol (acked.c); link/retained.h keeps the stream. */
#ifndef RILL_CORE_LINK_ACKED_H
#define RILL_CORE_LINK_ACKED_H

#include "frame/control.h"
#include "link/link.h"

#define RILL_ACK_RX_BUF 512 /* control frames are at most RILL_CTL_FRAME_MAX bytes */

/* One piece of the retained stream: a queue buffer taken whole (b.frames frames). */
typedef struct rill__ret_chunk {
    rill__buf_t b;
    uint64_t pos; /* stream position of its first byte */
    uint64_t seq; /* seq of its first frame */
} rill__ret_chunk_t;

/* A frame boundary of the stream: the frame at pos has seq seq. */
typedef struct rill__ret_mark {
    uint64_t pos, seq;
} rill__ret_mark_t;

#define RILL_ACK_MARKS 256
#define RILL_ACK_PEND_MARKS 128

typedef struct rill__acked {
    uint64_t stream_id;
    rill__ret_chunk_t *q; /* the chunks, oldest first: a ring of qcap (a power of two) */
    unsigned qcap, q0, qlen;
    unsigned snd_ci;             /* chunk snd is in (from the oldest); qlen: at the end */
    uint64_t head_pos, head_seq; /* a frame boundary; head_seq starts at 1 */
    uint64_t snd_pos, done_seq;  /* done_seq: first frame not wholly sent on this connection */
    uint64_t win_pos, win_seq;   /* end of the send in flight (== snd, done_seq when none) */
    uint64_t max_pos, max_seq;
    uint64_t end_pos, end_seq;
    uint64_t acked;      /* every seq <= acked is acknowledged */
    uint64_t peer_acked; /* the receiver's latest through_seq on this connection */
    /* Frame boundaries, oldest first: from pend (one per 64 KiB of appended batches), from
     * windows the sends measured, and every window's end. Head moves to them, and a window
     * the credit cuts ends at one, without stepping over frames. */
    rill__ret_mark_t marks[RILL_ACK_MARKS];
    unsigned m0, mlen;
    /* Boundaries in pend, recorded as batches were appended (pos: offset in pend, seq:
     * frames before it); they become marks when pend becomes retained. */
    rill__ret_mark_t pmarks[RILL_ACK_PEND_MARKS];
    unsigned npmarks;
    rill__buf_t spare[2]; /* released chunks' buffers, for pend to take */
    uint64_t spare_seen;  /* when the service first saw a spare untaken (0: not yet) */
    rill__buf_t limbo;    /* a handed-back chunk's buffer a send in flight still reads */
    uint32_t credit;      /* bytes the receiver allows unacknowledged (from WELCOME / ACK) */
    uint8_t welcomed;     /* WELCOME received on this connection */
    uint8_t rx_armed;     /* a recv for control frames is outstanding */
    uint8_t waiting;      /* credit ran out with frames queued (counted once per wait) */
    int failed;         /* the connection broke while a send was in flight: down when it reports */
    uint8_t draining;   /* retiring peer link: waits for the ACK of what the member was sent */
    uint8_t challenged; /* peer link with credentials: waits for CHALLENGE to send HELLO */
    uint64_t retire_at; /* draining: when it gives up waiting (ns; 0 until serviced) */
    uint32_t rx_conn;   /* the connection (conn_seq) that recv belongs to */
    uint8_t ctl[RILL_CTL_FRAME_MAX]; /* HELLO being sent */
    size_t ctl_len, ctl_off;
    uint8_t rx[RILL_ACK_RX_BUF];
    rill__decoder_t rx_dec;
} rill__acked_t;

void rill__acked_free(rill__acked_t *a);

/* The connection is up: arm the control recv and send HELLO. */
void rill__acked_on_up(rill__links_t *ls, rill__link_t *k);
/* The connection went down: everything unacknowledged is sent again on the next one. */
void rill__acked_on_down(rill__link_t *k);
/* The member left. What it was sent on the live connection stays until it acknowledges
 * it (a member that leaves still processes what reached it) or the link fails or waits
 * too long; everything else it held goes to ls->reroute now, in seq order. Returns
 * non-zero when the link keeps waiting (draining). Frames handed back count as resolved
 * in the link's figures. */
int rill__acked_retire(rill__links_t *ls, rill__link_t *k);
/* Hands back everything k still holds (unacknowledged, then queued) and stops draining. */
void rill__acked_hand_back(rill__links_t *ls, rill__link_t *k);
/* A draining link: gives up at its deadline (the frames go to ls->reroute). */
void rill__acked_drain_service(rill__links_t *ls, rill__link_t *k, uint64_t now);
/* pend reached k->mark_at after a batch: records the boundary there (or, for a link that
 * is not acked, moves mark_at out of reach). */
void rill__acked_mark_pend(rill__link_t *k);
/* pend was emptied other than into the retained stream: its boundaries are void. */
void rill__acked_clear_pend_marks(rill__link_t *k);
/* Frees spare buffers that went untaken for a second (called from the links' service). */
void rill__acked_trim(rill__acked_t *a, uint64_t now);
/* Starts the next send if WELCOME came, nothing is in flight and credit allows. */
void rill__acked_kick(rill__links_t *ls, rill__link_t *k);
/* A send completed with res > 0. */
void rill__acked_sent(rill__links_t *ls, rill__link_t *k, int res);
/* A RILL_OP_LINK_RECV completion. */
void rill__acked_on_recv(rill__links_t *ls, const struct io_uring_cqe *cqe, uint64_t now);

/* Bytes sent and not yet released (the retained_bytes gauge: at most the credit, or one
 * frame larger than it), and bytes taken from pend but never sent (queued). */
static inline size_t rill__acked_retained(const rill__acked_t *a)
{
    return (size_t)(a->max_pos - a->head_pos);
}
static inline size_t rill__acked_unsent(const rill__acked_t *a)
{
    return (size_t)(a->end_pos - a->max_pos);
}
/* Frames the link holds that the receiver has not acknowledged. */
static inline uint64_t rill__acked_held(const rill__acked_t *a)
{
    return a->end_seq - 1 - a->acked;
}

/* The figures of core/barrier: frames acknowledged since the link began, and frames
 * given to the link (acknowledged, retained, or queued behind them). */
static inline uint64_t rill__acked_safe(const rill__link_t *k)
{
    return k->ack->acked;
}
static inline uint64_t rill__acked_appended(const rill__link_t *k)
{
    return k->ack->end_seq - 1 + k->pend.frames;
}

#endif
