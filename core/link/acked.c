/* The sender's side of an acknowledged stream on a link (see acked.h). */
#include "link/acked.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "link/internal.h"
#include "link/retained.h"
#include "util/stat.h"

void rill__acked_free(rill__acked_t *a)
{
    if (!a)
        return;
    rill__ret_free(a);
    rill__decoder_free(&a->rx_dec);
    free(a);
}

int rill__link_make_acked(rill__links_t *ls, rill__link_t *k, uint64_t stream_id)
{
    rill__acked_t *a = calloc(1, sizeof *a);
    if (!a)
        return RILL_ENOMEM;
    a->stream_id = stream_id ? stream_id : 1;
    a->head_seq = a->done_seq = a->win_seq = a->max_seq = a->end_seq = 1;
    /* Control frames are small: anything longer than the largest is not one of ours. */
    rill__decoder_init(&a->rx_dec, RILL_FRAMING_RILL, RILL_CTL_FRAME_MAX, 0, 0, 0);
    k->ack = a;
    k->mark_at = RILL_RET_MARK_STEP;
    if (k < ls->peers || k >= ls->peers + RILL_PEER_SLOTS)
        ls->nacked++; /* a sink (peer links are published whenever the loop is clustered) */
    return 0;
}

static void arm_recv(rill__links_t *ls, rill__link_t *k)
{
    rill__acked_t *a = k->ack;
    struct io_uring_sqe *sqe = rill__ring_sqe(ls->ring);
    io_uring_prep_recv(sqe, k->fd, a->rx, sizeof a->rx, 0);
    io_uring_sqe_set_data64(sqe, RILL_UD(RILL_OP_LINK_RECV, rill__link_index(ls, k), k->conn_seq));
    a->rx_armed = 1;
    a->rx_conn = k->conn_seq;
}

static void send_span(rill__links_t *ls, rill__link_t *k, const uint8_t *p, size_t n)
{
    struct io_uring_sqe *sqe = rill__ring_sqe(ls->ring);
    io_uring_prep_send(sqe, k->fd, p, n, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, RILL_UD(RILL_OP_LINK_SEND, rill__link_index(ls, k), k->gen));
    k->sending = 1;
}

void rill__acked_on_up(rill__links_t *ls, rill__link_t *k)
{
    rill__acked_t *a = k->ack;
    a->welcomed = 0;
    a->failed = 0;
    rill__ret_rewind(a);
    rill__decoder_free(&a->rx_dec); /* a partial control frame of the last connection */
    rill__decoder_init(&a->rx_dec, RILL_FRAMING_RILL, RILL_CTL_FRAME_MAX, 0, 0, 0);
    arm_recv(ls, k);
    a->ctl_len = a->ctl_off = 0;
    int peer = k >= ls->peers && k < ls->peers + RILL_PEER_SLOTS;
    if (ls->peer_key && peer) {
        a->challenged = 1; /* the peer listener speaks first: HELLO answers its nonce */
        return;
    }
    a->challenged = 0;
    /* HELLO names the oldest frame still held: the receiver may have it already. */
    a->ctl_len = peer ? rill__ctl_put_peer_hello(a->ctl, a->stream_id, a->head_seq,
                                                 rill__link_slot_depth((unsigned)(k - ls->peers)),
                                                 NULL, NULL)
                      : rill__ctl_put_hello(a->ctl, a->stream_id, a->head_seq);
    send_span(ls, k, a->ctl, a->ctl_len);
}

void rill__acked_on_down(rill__link_t *k)
{
    rill__acked_t *a = k->ack;
    a->welcomed = 0;
    rill__ret_rewind(a);
    a->ctl_len = a->ctl_off = 0;
}

/* How long a retiring peer link waits for the ACK of what the member was sent: the
 * member's leave grace and drain, with room to spare. */
#define RETIRE_WAIT_NS (10ull * 1000000000ull)

/* Moves the stream from pos (a frame boundary, seq seq) to its end, then pend, to
 * ls->reroute, in that order, and cuts the stream at pos. */
static void hand_back_from(rill__links_t *ls, rill__link_t *k, uint64_t pos, uint64_t seq)
{
    rill__acked_t *a = k->ack;
    uint64_t frames = a->end_seq - seq;
    if (rill__ret_copy_from(a, pos, seq, rill__link_reroute_buf(ls, k)) < 0)
        RILL_STAT_ADD(*k->dropped, frames); /* no memory to hand them back */
    rill__ret_cut(a, pos, seq, k->sending);
    uint64_t queued = k->pend.frames;
    rill__link_move_to_reroute(ls, k);
    /* Resolved for the figures: handed back, and waited for where they go next. */
    k->base += frames + queued;
}

void rill__acked_hand_back(rill__links_t *ls, rill__link_t *k)
{
    rill__acked_t *a = k->ack;
    rill__ret_settle_head(a);
    hand_back_from(ls, k, a->head_pos, a->head_seq);
    a->draining = 0;
}

int rill__acked_retire(rill__links_t *ls, rill__link_t *k)
{
    rill__acked_t *a = k->ack;
    /* What is on its way to the member (sent, or in the send now in flight). */
    uint64_t kept_pos = k->sending ? a->win_pos : a->snd_pos;
    uint64_t kept_seq = k->sending ? a->win_seq : a->done_seq;
    if (k->state != RILL_LINK_UP || !a->welcomed || kept_seq - 1 <= a->acked) {
        rill__acked_hand_back(ls, k);
        return 0;
    }
    hand_back_from(ls, k, kept_pos, kept_seq);
    a->draining = 1;
    a->retire_at = 0;
    return 1;
}

void rill__acked_drain_service(rill__links_t *ls, rill__link_t *k, uint64_t now)
{
    rill__acked_t *a = k->ack;
    if (!a->retire_at)
        a->retire_at = now + RETIRE_WAIT_NS;
    if (now < a->retire_at)
        return;
    rill__acked_hand_back(ls, k);
    if (k->fd >= 0)
        shutdown(k->fd, SHUT_RDWR); /* its operations report soon; then it is released */
}

void rill__acked_kick(rill__links_t *ls, rill__link_t *k)
{
    rill__acked_t *a = k->ack;
    if (k->state != RILL_LINK_UP || k->sending || !a->welcomed || a->draining)
        return;
    rill__ret_refill(k);
    if (a->snd_ci >= a->qlen)
        return;
    size_t w = rill__ret_window(a);
    if (!w) {
        if (!a->waiting) {
            a->waiting = 1;
            RILL_STAT_ADD(ls->stats->credit_waits, 1);
        }
        return;
    }
    a->waiting = 0;
    rill__ret_chunk_t *c = rill__ret_chunk(a, a->snd_ci);
    send_span(ls, k, c->b.data + (a->snd_pos - c->pos), w);
}

void rill__acked_sent(rill__links_t *ls, rill__link_t *k, int res)
{
    rill__acked_t *a = k->ack;
    if (a->ctl_off < a->ctl_len) { /* the HELLO */
        a->ctl_off += (size_t)res;
        if (a->ctl_off < a->ctl_len)
            send_span(ls, k, a->ctl + a->ctl_off, a->ctl_len - a->ctl_off);
        else
            rill__acked_kick(ls, k); /* data may follow once WELCOME came */
        return;
    }
    RILL_STAT_ADD(ls->stats->bytes_out, (uint64_t)res);
    a->snd_pos += (size_t)res;
    if (a->snd_pos < a->win_pos) { /* short send: the rest of the window first */
        rill__ret_chunk_t *c = rill__ret_chunk(a, a->snd_ci);
        send_span(ls, k, c->b.data + (a->snd_pos - c->pos), (size_t)(a->win_pos - a->snd_pos));
        return;
    }
    rill__ret_sent(a);
    rill__ret_take_acks(a); /* an ACK for these frames may have been read already */
    rill__acked_kick(ls, k);
}

/* A control frame from the receiver. Returns 0, or RILL_ECONTROL when it breaks the
 * protocol (then the link is taken down). */
static int on_control(rill__links_t *ls, rill__link_t *k, const rill_msg_t *m)
{
    rill__acked_t *a = k->ack;
    rill__ctl_t c;
    if (!rill__is_control(m) || rill__ctl_parse(m, &c) < 0)
        return RILL_ECONTROL;
    if (a->challenged) { /* nothing but the CHALLENGE comes first */
        if (c.type != RILL_CTL_CHALLENGE || k->sending)
            return RILL_ECONTROL;
        a->challenged = 0;
        a->ctl_len = rill__ctl_put_peer_hello(a->ctl, a->stream_id, a->head_seq,
                                              rill__link_slot_depth((unsigned)(k - ls->peers)),
                                              c.nonce, ls->peer_key);
        a->ctl_off = 0;
        send_span(ls, k, a->ctl, a->ctl_len);
        return 0;
    }
    switch (c.type) {
    case RILL_CTL_WELCOME:
        if (a->welcomed)
            return RILL_ECONTROL;
        a->welcomed = 1;
        a->credit = c.credit;
        /* What the receiver already holds is not sent again; the rest is. */
        if (c.seq > a->acked)
            a->acked = c.seq < a->end_seq ? c.seq : a->end_seq - 1;
        rill__ret_rewind(a);
        if (a->max_seq > a->head_seq)
            RILL_STAT_ADD(ls->stats->resent, a->max_seq - a->head_seq);
        return 0;
    case RILL_CTL_ACK:
        if (!a->welcomed)
            return RILL_ECONTROL;
        a->credit = c.credit;
        if (c.seq > a->peer_acked)
            a->peer_acked = c.seq;
        rill__ret_take_acks(a);
        return 0;
    case RILL_CTL_GOAWAY:
        return 0; /* a sink has no other member to go to: it acknowledges, then closes */
    default:
        return RILL_ECONTROL; /* HELLO is the sender's */
    }
}

void rill__acked_on_recv(rill__links_t *ls, const struct io_uring_cqe *cqe, uint64_t now)
{
    unsigned li = RILL_UD_IDX(cqe->user_data);
    rill__link_t *k = rill__link_at(ls, li);
    if (!k || !k->ack)
        return;
    rill__acked_t *a = k->ack;
    if (a->rx_conn != RILL_UD_GEN(cqe->user_data) || !a->rx_armed)
        return;
    a->rx_armed = 0;
    if (k->retiring && !a->draining) {
        rill__link_release_when_idle(k); /* its buffer is free now */
        return;
    }
    if (k->state != RILL_LINK_UP || k->conn_seq != a->rx_conn)
        return; /* an earlier connection's recv, cancelled */
    int err = cqe->res < 0 ? cqe->res : cqe->res == 0 ? -ECONNRESET : 0;
    size_t pos = 0, len = cqe->res > 0 ? (size_t)cqe->res : 0;
    rill_msg_t v[8];
    while (!err && pos < len) {
        int n = rill__decode(&a->rx_dec, a->rx, len, &pos, v, 8);
        if (n < 0)
            err = RILL_ECONTROL;
        for (int i = 0; i < n && !err; i++)
            err = on_control(ls, k, &v[i]);
    }
    if (a->draining) {
        /* A member that left: once it acknowledged all it was sent, or the link failed,
         * the slot goes (what is left unacknowledged is handed back). */
        if (err || rill__acked_held(a) == 0) {
            rill__acked_hand_back(ls, k);
            shutdown(k->fd, SHUT_RDWR);
            rill__link_release_when_idle(k);
        } else {
            arm_recv(ls, k);
        }
        return;
    }
    if (err) {
        if (err == RILL_ECONTROL)
            RILL_STAT_ADD(ls->stats->err_control, 1);
        if (k->sending) {
            a->failed = err;
            shutdown(k->fd, SHUT_RDWR); /* the send in flight reports soon: down then */
        } else
            rill__link_down(ls, k, err, now);
        return;
    }
    arm_recv(ls, k);
    rill__acked_kick(ls, k);
}
