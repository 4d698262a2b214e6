/* Acked sources: the receiver's side of acknowledged streams on source connections
 * (docs/protocol.md, "Control frames"; docs/delivery.md).
 *
 * A v1 connection whose first frame is HELLO is attached to its stream (created if new)
 * and answered with WELCOME: the credit, and the highest seq of the stream already safe
 * here. A stream lives on one loop, chosen from its id; a HELLO that arrives on another
 * loop hands its connection there. Data frames then take seqs in order; a frame whose
 * seq already ran (a sender resending after a reconnect) is skipped. When the frames are
 * safe (ack_barriers.c), the connection gets one cumulative ACK per iteration.
 *
 * With cluster credentials, the peer listener sends CHALLENGE first, and a peer
 * connection's HELLO must carry the MAC over its nonce.
 *
 * Leaving (the drain): GOAWAY on every acked connection, no more reads, and once
 * everything that ran from it is acknowledged, FIN; what the sender still sent is read
 * and dropped until it closes (or the drain deadline passes). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loop/internal.h"
#include "util/sha256.h"
#include "util/stat.h"

int rill__ackin_init(rill__loop_t *l)
{
    return rill__ackb_init(l);
}

void rill__ackin_free(rill__loop_t *l)
{
    for (unsigned i = 0; i < l->nstreams; i++)
        free(l->streams[i]);
    free(l->streams);
    free(l->pending);
    rill__ackb_free(l);
}

/* ------------------------------------------------------------------ streams */

/* The loop that holds a stream: the same for every connection of it, wherever accepted. */
static unsigned stream_home(const rill__loop_t *l, uint64_t id)
{
    return l->nloops > 1 ? rill__key_loop(id, l->nloops) : l->idx;
}

static rill__stream_t *stream_find(rill__loop_t *l, uint64_t id)
{
    for (unsigned i = 0; i < l->nstreams; i++)
        if (l->streams[i]->id == id)
            return l->streams[i];
    return NULL;
}

/* A new stream; when the table is full, the least recently used stream that no
 * connection holds and that waits for nothing is reused. NULL when there is none. */
static rill__stream_t *stream_new(rill__loop_t *l, uint64_t id)
{
    rill__stream_t *s = NULL;
    if (l->nstreams == l->streams_cap && l->streams_cap < RILL_STREAMS_PER_LOOP) {
        unsigned cap = l->streams_cap ? l->streams_cap * 2 : 16;
        rill__stream_t **t = realloc(l->streams, cap * sizeof *t);
        rill__stream_t **p = t ? realloc(l->pending, cap * sizeof *p) : NULL;
        if (t)
            l->streams = t;
        if (p) {
            l->pending = p;
            l->streams_cap = cap;
        }
    }
    if (l->nstreams < l->streams_cap) {
        s = calloc(1, sizeof *s);
        if (!s)
            return NULL;
        l->streams[l->nstreams++] = s;
    } else {
        for (unsigned i = 0; i < l->nstreams; i++) {
            rill__stream_t *c = l->streams[i];
            if (c->conn < 0 && !c->pending && (!s || c->last_used < s->last_used))
                s = c;
        }
        if (!s)
            return NULL;
        memset(s, 0, sizeof *s);
    }
    s->id = id;
    s->conn = -1;
    return s;
}

static void stream_mark_pending(rill__loop_t *l, rill__stream_t *s)
{
    if (!s->pending) {
        s->pending = 1;
        l->pending[l->npending++] = s;
    }
}

/* ------------------------------------------------------------------ sending */

static void tx_arm(rill__loop_t *l, unsigned slot)
{
    rill__conn_t *c = &l->conns[slot];
    struct io_uring_sqe *sqe = rill__ring_sqe(&l->ring);
    io_uring_prep_send(sqe, c->fd, c->tx->buf + c->tx->off, c->tx->len - c->tx->off, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, RILL_UD(RILL_OP_CONN_SEND, slot, c->gen));
    c->tx_armed = 1;
}

uint32_t rill__ackin_credit(rill_worker_t *w)
{
    uint32_t floor = w->cfg.source_credit;
    unsigned n = atomic_load_explicit(&w->acked_open, memory_order_relaxed);
    uint64_t share = w->cfg.source_credit_pool / (n ? n : 1);
    if (share <= floor)
        return floor;
    return share < RILL_CREDIT_GRANT_MAX ? (uint32_t)share : RILL_CREDIT_GRANT_MAX;
}

/* Sends what the connection owes its sender, in one send: WELCOME first, then an ACK of
 * what became safe, then GOAWAY. Nothing while a send is in flight: its completion
 * calls this again, and an ACK built then covers everything safe by then. */
void rill__ackin_kick(rill__loop_t *l, unsigned slot)
{
    rill__conn_t *c = &l->conns[slot];
    rill__conn_tx_t *tx = c->tx;
    if (!tx || c->tx_armed || c->closing)
        return;
    uint32_t credit = rill__ackin_credit(l->w);
    rill__stream_t *s = c->stream;
    size_t len = 0;
    if (tx->challenge_due) {
        len += rill__ctl_put_challenge(tx->buf + len, tx->nonce);
        tx->challenge_due = 0;
    }
    if (tx->welcome_due) {
        len += rill__ctl_put_welcome(tx->buf + len, credit, tx->welcome_seq);
        tx->welcome_due = 0;
    }
    /* Never beyond what this connection brought: a frame that ran before a reconnect
     * is acknowledged once the sender has sent it again (and it was skipped), so a
     * sender never sees an ACK above what it wrote on this connection. */
    uint64_t through = s ? (s->q.safe < s->next_seq - 1 ? s->q.safe : s->next_seq - 1) : 0;
    if (s && through > s->acked_sent) {
        len += rill__ctl_put_ack(tx->buf + len, through, credit);
        s->acked_sent = through;
        RILL_STAT_ADD(l->stats.acks_sent, 1);
    }
    if (tx->goaway_due) {
        len += rill__ctl_put_goaway(tx->buf + len, tx->goaway_addr, tx->goaway_len);
        tx->goaway_due = 0;
    }
    if (!len)
        return;
    tx->len = len;
    tx->off = 0;
    tx_arm(l, slot);
}

void rill__ackin_on_send(rill__loop_t *l, const struct io_uring_cqe *cqe)
{
    unsigned slot = RILL_UD_IDX(cqe->user_data);
    rill__conn_t *c = slot < l->nconns ? &l->conns[slot] : NULL;
    if (!c || !c->in_use || c->gen != RILL_UD_GEN(cqe->user_data) || !c->tx_armed)
        return;
    c->tx_armed = 0;
    if (c->closing) {
        rill__conn_maybe_finish(l, slot);
        return;
    }
    if (cqe->res <= 0) {
        RILL_STAT_ADD(l->stats.err_conn, 1);
        rill__log_once(&l->w->logged.conn_err, "connection failed: %s (counted in err_conn)",
                       rill_strerror(cqe->res < 0 ? cqe->res : -EPIPE));
        rill__conn_close(l, slot, cqe->res < 0 ? cqe->res : -EPIPE);
        return;
    }
    c->tx->off += (size_t)cqe->res;
    if (c->tx->off < c->tx->len) {
        tx_arm(l, slot); /* short send */
        return;
    }
    rill__ackin_kick(l, slot);
}

/* ------------------------------------------------------------------ receiving */

/* HELLO on connection slot: attach it to its stream and owe the sender a WELCOME. */
static int on_hello(rill__loop_t *l, unsigned slot, const rill__ctl_t *h)
{
    rill__conn_t *c = &l->conns[slot];
    rill__stream_t *s = stream_find(l, h->stream_id);
    uint64_t known = 0; /* WELCOME's acked_seq */
    if (s && s->conn >= 0) {
        /* The sender reconnected while its old connection still looks open here: that
         * one is dead to the sender; what it had not yet brought is sent again. */
        rill__conn_t *old = &l->conns[s->conn];
        old->stream = NULL;
        rill__conn_close(l, (unsigned)s->conn, -ECONNRESET);
        s->conn = -1;
    }
    if (s && h->seq - 1 > s->q.processed && !s->q.n) {
        /* The sender holds nothing from before first_seq (acknowledged elsewhere): start
         * from there. */
        rill__ackq_reset(&s->q, h->seq - 1);
    }
    if (s) {
        known = s->q.safe;
    } else {
        s = stream_new(l, h->stream_id);
        if (!s) {
            rill__log_once(&l->w->logged.streams,
                           "refusing an acked source: %u streams per loop are held already "
                           "(further cases only counted in err_conn)",
                           RILL_STREAMS_PER_LOOP);
            return RILL_EFULL;
        }
        rill__ackq_reset(&s->q, h->seq - 1);
    }
    if (!c->tx && !(c->tx = calloc(1, sizeof *c->tx)))
        return RILL_ENOMEM;
    s->conn = (int)slot;
    s->last_used = l->now;
    /* depth checked by the caller; the standby stream's frames wait on no member */
    s->cls = !c->peer                      ? RILL_ACK_FROM_SOURCE
             : h->depth < RILL_ORIGIN_LAST ? h->depth
                                           : RILL_ORIGIN_LAST;
    s->next_seq = h->seq > known + 1 ? h->seq : known + 1;
    /* The sender takes everything before next_seq as acknowledged. */
    s->acked_sent = s->next_seq - 1;
    c->stream = s;
    c->standby_in = c->peer && h->depth == RILL_STANDBY_DEPTH;
    c->mode = RILL_CONN_ACKED;
    c->tx->welcome_due = 1;
    c->tx->welcome_seq = known;
    RILL_STAT_ADD(l->stats.acked_conns, 1);
    atomic_fetch_add_explicit(&l->w->acked_open, 1, memory_order_relaxed);
    rill__ackin_kick(l, slot);
    return 0;
}

/* A peer connection that cannot prove the cluster's credentials. */
static int auth_error(rill__loop_t *l)
{
    RILL_STAT_ADD(l->stats.err_auth, 1);
    rill__log_once(&l->w->logged.auth,
                   "refusing a peer connection that does not prove the cluster's credentials "
                   "(further cases only counted in err_auth)");
    return -EACCES;
}

void rill__ackin_challenge(rill__loop_t *l, unsigned slot)
{
    rill__conn_t *c = &l->conns[slot];
    if (!c->tx && !(c->tx = calloc(1, sizeof *c->tx))) {
        rill__conn_close(l, slot, RILL_ENOMEM);
        return;
    }
    if (getrandom(c->tx->nonce, sizeof c->tx->nonce, GRND_NONBLOCK) != sizeof c->tx->nonce) {
        /* No entropy yet (early boot): a nonce that never repeats in this process. */
        uint64_t x[2] = {l->w->stream_seed ^ (uint64_t)l->now, ++l->nonces};
        memcpy(c->tx->nonce, x, sizeof x);
    }
    c->tx->challenge_due = 1;
    rill__ackin_kick(l, slot);
}

static int control_error(rill__loop_t *l)
{
    RILL_STAT_ADD(l->stats.err_control, 1);
    rill__log_once(&l->w->logged.control,
                   "closing a source connection: a malformed or unexpected control frame "
                   "(further cases only counted in err_control)");
    return RILL_ECONTROL;
}

/* Whether v[i] may not be among a stream's data frames: every control frame but, on a
 * peer connection, the chunks of a key group's managed state (state/handoff.h). */
static int misplaced_control(const rill__conn_t *c, const rill_msg_t *m)
{
    return rill__is_control(m) && !(c->peer && m->key == RILL_STATE_FRAME_KEY);
}

int rill__ackin_filter(rill__loop_t *l, unsigned slot, rill_msg_t *v, size_t n, uint64_t *data)
{
    rill__conn_t *c = &l->conns[slot];
    size_t i = 0;
    if (c->mode == RILL_CONN_NEW) {
        /* A challenged peer connection must answer with an authenticated HELLO. */
        int challenged = c->tx && c->peer && l->w->has_peer_key;
        if (!rill__is_control(&v[0])) {
            if (challenged)
                return auth_error(l);
            c->mode = RILL_CONN_PLAIN; /* best-effort, exactly as without HELLO */
            *data += n;
            return (int)n;
        }
        rill__ctl_t h;
        if (rill__ctl_parse(&v[0], &h) < 0 || h.type != RILL_CTL_HELLO)
            return challenged ? auth_error(l) : control_error(l);
        if (challenged) {
            uint8_t want[RILL_CTL_MAC_LEN];
            if (!h.mac)
                return auth_error(l);
            rill__ctl_hello_mac(l->w->peer_key, c->tx->nonce, h.stream_id, h.seq, want);
            if (rill__ct_compare(want, h.mac, sizeof want))
                return auth_error(l);
        }
        if (c->peer && h.depth > RILL_STANDBY_DEPTH)
            return control_error(l); /* a depth this build does not have */
        unsigned home = stream_home(l, h.stream_id);
        if (home != l->idx) {
            /* The stream lives on another loop: the connection goes there, so that what
             * ran of it before a reconnect is known wherever the reconnect lands. A
             * sender sends nothing before the WELCOME, so nothing else is lost here. */
            c->handing = 1;
            c->hand_stream = h.stream_id;
            c->hand_first = h.seq;
            c->hand_depth = h.depth;
            rill__conn_close(l, slot, 0);
            return 0;
        }
        int rc = on_hello(l, slot, &h);
        if (rc < 0)
            return rc;
        i = 1;
    }
    rill__stream_t *s = c->stream;
    if (!s)
        return 0; /* superseded by a newer connection of its sender (closing) */
    size_t keep = 0;
    uint64_t dups = 0;
    if (i == 0 && s->next_seq > s->q.processed) {
        /* Nothing of this batch ran before (the usual case): no frame is skipped, so
         * the only per-frame work is the check that no control frame is among them. */
        unsigned ctl = 0; /* four at a time: one branch per four frames */
        for (; i + 4 <= n; i += 4)
            ctl |= (unsigned)rill__is_control(&v[i]) | (unsigned)rill__is_control(&v[i + 1]) |
                   (unsigned)rill__is_control(&v[i + 2]) | (unsigned)rill__is_control(&v[i + 3]);
        for (; i < n; i++)
            ctl |= (unsigned)rill__is_control(&v[i]);
        for (i = 0; ctl && i < n; i++)
            if (misplaced_control(c, &v[i]))
                return control_error(l);
        *data += n;
        s->next_seq += n;
        s->q.processed = s->next_seq - 1;
        RILL_STAT_ADD(l->stats.acked_in, n);
        stream_mark_pending(l, s);
        return (int)n;
    }
    for (; i < n; i++) {
        if (misplaced_control(c, &v[i]))
            return control_error(l); /* only HELLO comes from a sender, and only first */
        (*data)++;
        uint64_t seq = s->next_seq++;
        if (seq <= s->q.processed) {
            dups++; /* ran before this reconnect: its ACK comes when it is safe */
            continue;
        }
        if (keep != i)
            v[keep] = v[i];
        keep++;
    }
    if (s->next_seq - 1 > s->q.processed)
        s->q.processed = s->next_seq - 1;
    if (dups)
        RILL_STAT_ADD(l->stats.dup_skipped, dups);
    if (keep)
        RILL_STAT_ADD(l->stats.acked_in, keep);
    if (keep || dups)
        stream_mark_pending(l, s);
    return (int)keep;
}

void rill__ackin_detach(rill__loop_t *l, rill__conn_t *c)
{
    if (c->mode == RILL_CONN_ACKED) {
        RILL_STAT_SUB(l->stats.acked_conns, 1);
        atomic_fetch_sub_explicit(&l->w->acked_open, 1, memory_order_relaxed);
    }
    if (c->stream) {
        c->stream->conn = -1;
        c->stream->last_used = l->now;
        c->stream = NULL;
    }
}

void rill__ackin_hand_over(rill__loop_t *l, rill__conn_t *c)
{
    rill__loop_t *home = l->w->loops[stream_home(l, c->hand_stream)];
    rill__handover_t *h = malloc(sizeof *h);
    if (!h) {
        close(c->fd); /* the sender reconnects */
        atomic_fetch_sub_explicit(&l->w->conns_open, 1, memory_order_relaxed);
        return;
    }
    *h = (rill__handover_t){c->fd, c->listener, c->hand_stream, c->hand_first, c->hand_depth, NULL};
    pthread_mutex_lock(&home->handover_mu);
    h->next = home->handovers;
    home->handovers = h;
    pthread_mutex_unlock(&home->handover_mu);
    atomic_store_explicit(&home->handover_pending, 1, memory_order_release);
    rill__loop_wake(home);
}

void rill__ackin_adopt(rill__loop_t *l)
{
    if (!atomic_load_explicit(&l->handover_pending, memory_order_acquire))
        return;
    atomic_store_explicit(&l->handover_pending, 0, memory_order_relaxed);
    pthread_mutex_lock(&l->handover_mu);
    rill__handover_t *h = l->handovers;
    l->handovers = NULL;
    pthread_mutex_unlock(&l->handover_mu);
    while (h) {
        rill__handover_t *next = h->next;
        int slot = rill__conn_adopt(l, h->listener, h->fd);
        if (slot >= 0) {
            rill__ctl_t hello = {.type = RILL_CTL_HELLO,
                                 .stream_id = h->stream_id,
                                 .seq = h->first_seq,
                                 .depth = h->depth};
            int rc = on_hello(l, (unsigned)slot, &hello);
            rill__conn_arm_recv(l, (unsigned)slot);
            if (rc < 0) {
                RILL_STAT_ADD(l->stats.err_conn, 1);
                rill__conn_close(l, (unsigned)slot, rc);
            }
        }
        free(h);
        h = next;
    }
}

/* ------------------------------------------------------------------ leaving */

/* The address a GOAWAY names: the source address of another member of the view, chosen
 * by the stream's id so that a leaving member's sources spread over the others; empty
 * when no other member published one. */
static size_t goaway_target(const rill__loop_t *l, const rill__stream_t *s, char *out, size_t size)
{
    const rill_view_t *v = l->dispatch.view;
    unsigned n = 0;
    for (unsigned i = 0; v && i < v->n; i++)
        n += (int)i != v->self && v->m[i].source[0];
    if (!n)
        return 0;
    unsigned pick = (unsigned)(((s ? s->id : 0) * 0x9e3779b97f4a7c15ull >> 32) % n);
    for (unsigned i = 0; i < v->n; i++) {
        if ((int)i == v->self || !v->m[i].source[0])
            continue;
        if (pick-- == 0) {
            size_t len = strlen(v->m[i].source);
            if (len >= size)
                return 0;
            memcpy(out, v->m[i].source, len);
            return len;
        }
    }
    return 0;
}

void rill__ackin_goaway(rill__loop_t *l, unsigned slot)
{
    rill__conn_t *c = &l->conns[slot];
    c->leaving = 1;
    c->rearm = 0;
    if (c->tx) {
        c->tx->goaway_due = 1;
        /* A member's peer connections are left alone: a peer knows the view itself. */
        c->tx->goaway_len = c->peer ? 0
                                    : (uint8_t)goaway_target(l, c->stream, c->tx->goaway_addr,
                                                             sizeof c->tx->goaway_addr);
        rill__ackin_kick(l, slot);
    }
    if (c->recv_armed)
        rill__ring_cancel(&l->ring, RILL_UD(RILL_OP_RECV, slot, c->gen));
}

void rill__ackin_close_settled(rill__loop_t *l, int late)
{
    for (unsigned i = 0; i < l->nconns; i++) {
        rill__conn_t *c = &l->conns[i];
        if (!c->in_use || c->closing || !c->leaving)
            continue;
        if (late) {
            rill__conn_close(l, i, 0);
            continue;
        }
        rill__stream_t *s = c->stream;
        int settled = !c->discard && !c->recv_armed && !c->held && !c->tx_armed &&
                      (!s || (!rill__ackq_busy(&s->q) && s->acked_sent >= s->next_seq - 1));
        if (!settled)
            continue;
        /* Everything that ran is acknowledged. Close gracefully: FIN after the last ACK,
         * then read (and drop) until the sender closes. A close with unread bytes would
         * reset the connection, and a reset can destroy that ACK before the sender reads
         * it. */
        shutdown(c->fd, SHUT_WR);
        c->discard = 1;
        c->rearm = 0;
        rill__conn_arm_recv(l, i);
    }
}
