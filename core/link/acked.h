/* Acknowledged delivery on a link (docs/protocol.md, "Control frames"): the link is the
 * sender of one stream. Every frame it sends stays in `ret` until the receiver
 * acknowledges it; after a reconnect the link sends HELLO with its oldest unacknowledged
 * seq and, once the WELCOME says what the receiver already holds, sends the rest again.
 * Credit (the receiver's grant of unacknowledged bytes) bounds what is in flight.
 *
 *   ret:  [0 .. head)       acknowledged, not yet compacted away
 *         [head .. sent)    handed to the kernel on this connection, not acknowledged
 *         [sent .. ret.len) retained from an earlier connection, or moved from pend and
 *                           not yet sent: sent next, in order
 *   pend: frames queued after ret's, not yet given a place in the credit window
 *
 * ret is never reallocated or moved while a send from it is in flight (sends reference
 * its memory); compaction and moves from pend happen only between sends. */
#ifndef RILL_CORE_LINK_ACKED_H
#define RILL_CORE_LINK_ACKED_H

#include "frame/control.h"
#include "link/link.h"

#define RILL_ACK_RX_BUF 512 /* control frames are at most RILL_CTL_FRAME_MAX bytes */

typedef struct rill__acked {
    uint64_t stream_id;
    uint64_t head_seq; /* seq of the frame at head (the oldest unacknowledged) */
    uint64_t unacked;  /* frames in ret from head */
    rill__buf_t ret;
    size_t head, sent, window_end; /* window_end: end of the send in flight */
    uint32_t credit;    /* bytes the receiver allows unacknowledged (from WELCOME / ACK) */
    uint8_t welcomed;   /* WELCOME received on this connection */
    uint8_t rx_armed;   /* a recv for control frames is outstanding */
    uint8_t waiting;    /* credit ran out with frames queued (counted once per wait) */
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
/* Starts the next send if WELCOME came, nothing is in flight and credit allows. */
void rill__acked_kick(rill__links_t *ls, rill__link_t *k);
/* A send completed with res > 0. */
void rill__acked_sent(rill__links_t *ls, rill__link_t *k, int res);
/* A RILL_OP_LINK_RECV completion. */
void rill__acked_on_recv(rill__links_t *ls, const struct io_uring_cqe *cqe, uint64_t now);

/* Bytes and frames retained (unacknowledged), for gauges and the drain. */
static inline size_t rill__acked_retained(const rill__acked_t *a)
{
    return a->ret.len - a->head;
}

/* The figures of core/barrier: frames acknowledged since the link began (head_seq
 * starts at 1 and moves past every acknowledged frame), and frames given to the link
 * (acknowledged, retained, or queued behind them). */
static inline uint64_t rill__acked_safe(const rill__link_t *k)
{
    return k->ack->head_seq - 1;
}
static inline uint64_t rill__acked_appended(const rill__link_t *k)
{
    return k->ack->head_seq - 1 + k->ack->unacked + k->pend.frames;
}

#endif
