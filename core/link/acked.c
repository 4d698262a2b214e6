/* The sender's side of an acknowledged stream on a link (see acked.h). */
#include "link/acked.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "link/internal.h"
#include "util/stat.h"

/* A batch up to this size joins the newest chunk when that has room without growing
 * (a copy of a few cache lines beats a chunk per small batch); a chunk built that way
 * stays below CHUNK_JOIN_MAX, so that releasing whole chunks stays fine-grained. */
#define BATCH_JOIN_MAX (16u << 10)
#define CHUNK_JOIN_MAX (256u << 10)

/* Marks are MARK_STEP apart: a batch appended to pend past the next step records one
 * (one compare per batch), and so does a window the credit cut that had to be measured
 * frame by frame past the last mark. Head steps over frames itself only when
 * acknowledged frames reach WALK_MIN_FRAMES past it (no mark near). */
#define MARK_STEP (64u << 10)
#define WALK_MIN_FRAMES 1024u

/* Spare buffers nobody took for this long are freed (an idle link gives its memory back). */
#define SPARE_IDLE_NS (1000ull * 1000000ull)

void rill__acked_free(rill__acked_t *a)
{
    if (!a)
        return;
    for (unsigned i = 0; i < a->qlen; i++)
        rill__buf_free(&a->q[(a->q0 + i) & (a->qcap - 1)].b);
    free(a->q);
    rill__buf_free(&a->spare[0]);
    rill__buf_free(&a->spare[1]);
    rill__buf_free(&a->limbo);
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
    k->mark_at = MARK_STEP;
    if (k < ls->peers || k >= ls->peers + RILL_MAX_MEMBERS)
        ls->nacked++; /* a sink (peer links are published whenever the loop is clustered) */
    return 0;
}

/* Chunk i of the retained stream, 0 the oldest. */
static inline rill__ret_chunk_t *chunk(const rill__acked_t *a, unsigned i)
{
    return &a->q[(a->q0 + i) & (a->qcap - 1)];
}

/* Size of the frame at off in b (rill wrote it: the length is valid). */
static inline size_t frame_at(const uint8_t *b, size_t off)
{
    return 4 + (size_t)rill__load_be32(b + off);
}

/* A released chunk's buffer: kept for pend to take (two at most; freeing and growing
 * a large queue again costs page faults on every byte, measured at a tenth of a loop's
 * time with a credit-bound sink), else freed. rill__acked_trim frees what stays unused. */
static void recycle(rill__acked_t *a, rill__buf_t *b)
{
    /* Keep the two largest: a queue that outgrows the buffer it took grows by realloc,
     * and every new page costs a fault on first touch. */
    int i = !a->spare[0].data                   ? 0
            : !a->spare[1].data                 ? 1
            : a->spare[0].cap < a->spare[1].cap ? 0
                                                : 1;
    if (a->spare[i].data && a->spare[i].cap >= b->cap) {
        rill__buf_free(b);
        return;
    }
    rill__buf_free(&a->spare[i]);
    a->spare[i] = *b;
    a->spare[i].len = 0;
    a->spare[i].frames = 0;
    *b = (rill__buf_t){0};
}

/* An empty buffer for pend: the larger spare one when there is one. */
static rill__buf_t take_spare(rill__acked_t *a)
{
    int i = a->spare[0].cap >= a->spare[1].cap ? 0 : 1;
    rill__buf_t b = a->spare[i];
    a->spare[i] = (rill__buf_t){0};
    if (b.data)
        a->spare_seen = 0;
    return b;
}

void rill__acked_trim(rill__acked_t *a, uint64_t now)
{
    if (!a->spare[0].data && !a->spare[1].data)
        return;
    if (!a->spare_seen) {
        a->spare_seen = now;
    } else if (now - a->spare_seen >= SPARE_IDLE_NS) {
        rill__buf_free(&a->spare[0]);
        rill__buf_free(&a->spare[1]);
        a->spare_seen = 0;
    }
}

/* Appends an empty chunk at the end of the ring. Returns 0 or RILL_ENOMEM. */
static int push_chunk(rill__acked_t *a)
{
    if (a->qlen == a->qcap) {
        unsigned cap = a->qcap ? a->qcap * 2 : 16;
        rill__ret_chunk_t *q = malloc(cap * sizeof *q);
        if (!q)
            return RILL_ENOMEM;
        for (unsigned i = 0; i < a->qlen; i++)
            q[i] = *chunk(a, i);
        free(a->q);
        a->q = q;
        a->qcap = cap;
        a->q0 = 0;
    }
    rill__ret_chunk_t *c = chunk(a, a->qlen++);
    *c = (rill__ret_chunk_t){.pos = a->end_pos, .seq = a->end_seq};
    return 0;
}

/* Releases the chunks every frame of which is acknowledged (a pointer step each). */
static void release_chunks(rill__acked_t *a)
{
    while (a->qlen) {
        rill__ret_chunk_t *c = chunk(a, 0);
        if (a->acked < c->seq + c->b.frames - 1) /* chunks hold one frame at least */
            return;
        a->head_pos = c->pos + c->b.len;
        a->head_seq = c->seq + c->b.frames;
        recycle(a, &c->b);
        a->q0 = (a->q0 + 1) & (a->qcap - 1);
        a->qlen--;
        a->snd_ci = a->snd_ci ? a->snd_ci - 1 : 0;
    }
}

/* Records a frame boundary the sends found (when the marks are full, the newest one
 * replaces the last: the end of what was sent is the most useful). */
static void push_mark(rill__acked_t *a, uint64_t pos, uint64_t seq)
{
    unsigned i = a->mlen < RILL_ACK_MARKS ? a->mlen++ : RILL_ACK_MARKS - 1;
    a->marks[(a->m0 + i) % RILL_ACK_MARKS] = (rill__ret_mark_t){pos, seq};
}

void rill__acked_mark_pend(rill__link_t *k)
{
    rill__acked_t *a = k->ack;
    if (!a || a->npmarks == RILL_ACK_PEND_MARKS) {
        k->mark_at = SIZE_MAX; /* not acked, or no room: no more until pend is taken */
        return;
    }
    a->pmarks[a->npmarks++] = (rill__ret_mark_t){k->pend.len, k->pend.frames};
    k->mark_at = k->pend.len + MARK_STEP;
}

void rill__acked_clear_pend_marks(rill__link_t *k)
{
    if (!k->ack)
        return;
    k->ack->npmarks = 0;
    k->mark_at = MARK_STEP;
}

/* pend's boundaries, now at stream position pos and seq seq (where pend's first frame
 * went), become marks. */
static void take_pend_marks(rill__link_t *k, uint64_t pos, uint64_t seq)
{
    rill__acked_t *a = k->ack;
    for (unsigned i = 0; i < a->npmarks; i++)
        if (a->pmarks[i].pos < k->pend.len) /* one at pend's end is the chunk's end */
            push_mark(a, pos + a->pmarks[i].pos, seq + a->pmarks[i].seq);
    rill__acked_clear_pend_marks(k);
}

/* The furthest mark in (from, to] (stream positions), or NULL. */
static const rill__ret_mark_t *mark_within(const rill__acked_t *a, uint64_t from, uint64_t to)
{
    const rill__ret_mark_t *best = NULL;
    for (unsigned i = 0; i < a->mlen; i++) {
        const rill__ret_mark_t *m = &a->marks[(a->m0 + i) % RILL_ACK_MARKS];
        if (m->pos > from && m->pos <= to && (!best || m->pos > best->pos))
            best = m;
    }
    return best;
}

/* Moves head over whole chunks, then to the last mark that acknowledged frames reach. */
static void advance_head(rill__acked_t *a)
{
    release_chunks(a);
    while (a->mlen) {
        rill__ret_mark_t m = a->marks[a->m0];
        if (m.pos > a->head_pos && m.seq - 1 > a->acked)
            return;
        if (m.pos > a->head_pos) {
            a->head_pos = m.pos;
            a->head_seq = m.seq;
        }
        a->m0 = (a->m0 + 1) % RILL_ACK_MARKS;
        a->mlen--;
    }
}

/* Moves head to the exact place after the last acknowledged frame: over whole chunks and
 * marks, then frame by frame within the oldest chunk. */
static void settle_head(rill__acked_t *a)
{
    advance_head(a);
    if (!a->qlen || a->acked < a->head_seq)
        return;
    rill__ret_chunk_t *c = chunk(a, 0);
    size_t off = (size_t)(a->head_pos - c->pos);
    while (a->head_seq <= a->acked) {
        off += frame_at(c->b.data, off);
        a->head_seq++;
    }
    a->head_pos = c->pos + off;
}

/* Takes in what the receiver acknowledged, as far as this connection sent it wholly (an
 * ACK may be read before the completion of the send that carried its last frames). */
static void take_acks(rill__acked_t *a)
{
    uint64_t through = a->peer_acked < a->done_seq ? a->peer_acked : a->done_seq - 1;
    if (through > a->acked)
        a->acked = through;
    release_chunks(a);
}

/* Sending starts over at head (a new connection). */
static void rewind_to_head(rill__acked_t *a)
{
    settle_head(a);
    a->snd_ci = 0;
    a->snd_pos = a->win_pos = a->head_pos;
    a->done_seq = a->win_seq = a->head_seq;
    a->peer_acked = a->acked;
    a->mlen = 0; /* sends of the new connection record theirs, in order */
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
    rewind_to_head(a);
    rill__decoder_free(&a->rx_dec); /* a partial control frame of the last connection */
    rill__decoder_init(&a->rx_dec, RILL_FRAMING_RILL, RILL_CTL_FRAME_MAX, 0, 0, 0);
    arm_recv(ls, k);
    a->ctl_len = a->ctl_off = 0;
    if (ls->peer_key && k >= ls->peers && k < ls->peers + RILL_MAX_MEMBERS) {
        a->challenged = 1; /* the peer listener speaks first: HELLO answers its nonce */
        return;
    }
    a->challenged = 0;
    /* HELLO names the oldest frame still held: the receiver may have it already. */
    a->ctl_len = rill__ctl_put_hello(a->ctl, a->stream_id, a->head_seq);
    send_span(ls, k, a->ctl, a->ctl_len);
}

void rill__acked_on_down(rill__link_t *k)
{
    rill__acked_t *a = k->ack;
    a->welcomed = 0;
    rewind_to_head(a);
    a->ctl_len = a->ctl_off = 0;
}

/* How long a retiring peer link waits for the ACK of what the member was sent: the
 * member's leave grace and drain, with room to spare. */
#define RETIRE_WAIT_NS (10ull * 1000000000ull)

/* Frees chunk buffer b, unless the send in flight reads it: then it waits in limbo
 * until the link is released. */
static void drop_buf(rill__link_t *k, rill__buf_t *b, int in_flight)
{
    rill__acked_t *a = k->ack;
    if (in_flight && k->sending) {
        rill__buf_free(&a->limbo);
        a->limbo = *b;
        *b = (rill__buf_t){0};
        return;
    }
    rill__buf_free(b);
}

/* Moves the stream from pos (a frame boundary, seq seq) to its end, then pend, to
 * ls->reroute, in that order, and cuts the stream at pos. */
static void hand_back_from(rill__links_t *ls, rill__link_t *k, uint64_t pos, uint64_t seq)
{
    rill__acked_t *a = k->ack;
    rill__buf_t *r = &ls->reroute;
    uint64_t frames = a->end_seq - seq;
    size_t n = (size_t)(a->end_pos - pos);
    if (n && rill__buf_reserve(r, n, SIZE_MAX) == 0) {
        for (unsigned i = 0; i < a->qlen; i++) {
            rill__ret_chunk_t *c = chunk(a, i);
            uint64_t from = pos > c->pos ? pos : c->pos, to = c->pos + c->b.len;
            if (from < to) {
                memcpy(r->data + r->len, c->b.data + (from - c->pos), (size_t)(to - from));
                r->len += (size_t)(to - from);
            }
        }
        r->frames += frames;
    } else if (n) {
        RILL_STAT_ADD(*k->dropped, frames); /* no memory to hand them back */
    }
    /* Cut: chunks wholly past pos go, the one pos is in ends there. */
    while (a->qlen && chunk(a, a->qlen - 1)->pos >= pos) {
        unsigned last = a->qlen - 1;
        drop_buf(k, &chunk(a, last)->b, last == a->snd_ci);
        a->qlen--;
    }
    if (a->qlen) {
        rill__ret_chunk_t *c = chunk(a, a->qlen - 1);
        if (c->pos + c->b.len > pos) {
            c->b.len = (size_t)(pos - c->pos);
            c->b.frames = seq - c->seq;
        }
    }
    a->end_pos = pos;
    a->end_seq = seq;
    a->mlen = 0;
    if (a->max_pos > pos) {
        a->max_pos = pos;
        a->max_seq = seq;
    }
    if (a->snd_ci > a->qlen)
        a->snd_ci = a->qlen;
    uint64_t queued = k->pend.frames;
    rill__link_move_to_reroute(ls, k);
    /* Resolved for the figures: handed back, and waited for where they go next. */
    k->base += frames + queued;
}

void rill__acked_hand_back(rill__links_t *ls, rill__link_t *k)
{
    rill__acked_t *a = k->ack;
    settle_head(a);
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

/* Between sends, once everything retained was sent: pend becomes the next chunk (its
 * buffer, not a copy), or joins the newest one when it is small. */
static void refill(rill__link_t *k)
{
    rill__acked_t *a = k->ack;
    if (a->snd_ci < a->qlen || k->pend.len == 0)
        return; /* frames to send (again) come first */
    size_t n = k->pend.len;
    uint64_t frames = k->pend.frames;
    rill__ret_chunk_t *t = a->qlen ? chunk(a, a->qlen - 1) : NULL;
    if (t && n <= BATCH_JOIN_MAX && t->b.len + n <= CHUNK_JOIN_MAX && t->b.cap - t->b.len >= n) {
        /* No send reads past the newest chunk's end, and it does not grow: safe to add. */
        take_pend_marks(k, a->end_pos, a->end_seq);
        memcpy(t->b.data + t->b.len, k->pend.data, n);
        t->b.len += n;
        t->b.frames += frames;
        a->snd_ci = a->qlen - 1;
        k->pend.len = 0;
        k->pend.frames = 0;
    } else {
        if (push_chunk(a) < 0)
            return; /* no memory now: the frames wait in pend */
        take_pend_marks(k, a->end_pos, a->end_seq);
        chunk(a, a->qlen - 1)->b = k->pend;
        k->pend = take_spare(a);
    }
    a->end_pos += n;
    a->end_seq += frames;
}

void rill__acked_kick(rill__links_t *ls, rill__link_t *k)
{
    rill__acked_t *a = k->ack;
    if (k->state != RILL_LINK_UP || k->sending || !a->welcomed || a->draining)
        return;
    refill(k);
    if (a->snd_ci >= a->qlen)
        return;
    rill__ret_chunk_t *c = chunk(a, a->snd_ci);
    size_t room = a->credit > a->snd_pos - a->head_pos ? a->credit - (a->snd_pos - a->head_pos) : 0;
    size_t off = (size_t)(a->snd_pos - c->pos), w = c->b.len - off;
    uint64_t wf = c->seq + c->b.frames - a->done_seq;
    if (w > room && a->acked >= a->head_seq) {
        /* The credit may be freer than head says: move it to the marks, and step over
         * frames only when no mark is near (a whole chunk went in one send). */
        advance_head(a);
        if (a->acked >= a->head_seq + WALK_MIN_FRAMES)
            settle_head(a);
        c = chunk(a, a->snd_ci);
        room = a->credit > a->snd_pos - a->head_pos ? a->credit - (a->snd_pos - a->head_pos) : 0;
    }
    if (w > room) { /* as many whole frames as the credit allows */
        size_t marked = 0;
        w = 0;
        wf = 0;
        /* Up to the furthest boundary recorded within the credit, then frame by frame. */
        const rill__ret_mark_t *m = mark_within(a, a->snd_pos, a->snd_pos + room);
        if (m && m->pos <= c->pos + c->b.len) {
            w = marked = (size_t)(m->pos - a->snd_pos);
            wf = m->seq - a->done_seq;
        }
        while (off + w < c->b.len) {
            size_t f = frame_at(c->b.data, off + w);
            /* A frame larger than the whole credit goes alone, when nothing is
             * unacknowledged: otherwise it could never be sent. */
            if (w + f > room && !(wf == 0 && a->snd_pos == a->head_pos))
                break;
            w += f;
            wf++;
            if (w - marked >= MARK_STEP) {
                push_mark(a, a->snd_pos + w, a->done_seq + wf);
                marked = w;
            }
        }
    }
    if (!w) {
        if (!a->waiting) {
            a->waiting = 1;
            RILL_STAT_ADD(ls->stats->credit_waits, 1);
        }
        return;
    }
    a->waiting = 0;
    a->win_pos = a->snd_pos + w;
    a->win_seq = a->done_seq + wf;
    send_span(ls, k, c->b.data + off, w);
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
    rill__ret_chunk_t *c = chunk(a, a->snd_ci);
    if (a->snd_pos < a->win_pos) { /* short send: the rest of the window first */
        send_span(ls, k, c->b.data + (a->snd_pos - c->pos), (size_t)(a->win_pos - a->snd_pos));
        return;
    }
    a->done_seq = a->win_seq;
    push_mark(a, a->snd_pos, a->done_seq);
    if (a->snd_pos > a->max_pos) {
        a->max_pos = a->snd_pos;
        a->max_seq = a->done_seq;
    }
    if (a->snd_pos == c->pos + c->b.len)
        a->snd_ci++;
    take_acks(a); /* an ACK for these frames may have been read already */
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
        a->ctl_len =
            rill__ctl_put_hello_auth(a->ctl, a->stream_id, a->head_seq, c.nonce, ls->peer_key);
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
        rewind_to_head(a);
        if (a->max_seq > a->head_seq)
            RILL_STAT_ADD(ls->stats->resent, a->max_seq - a->head_seq);
        return 0;
    case RILL_CTL_ACK:
        if (!a->welcomed)
            return RILL_ECONTROL;
        a->credit = c.credit;
        if (c.seq > a->peer_acked)
            a->peer_acked = c.seq;
        take_acks(a);
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
