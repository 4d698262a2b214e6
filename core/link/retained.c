/* The retained stream of an acked link (see retained.h and acked.h). */
#include "link/retained.h"

#include <stdlib.h>
#include <string.h>

/* A batch up to this size joins the newest chunk when that has room without growing
 * (a copy of a few cache lines beats a chunk per small batch); a chunk built that way
 * stays below CHUNK_JOIN_MAX, so that releasing whole chunks stays fine-grained. */
#define BATCH_JOIN_MAX (16u << 10)
#define CHUNK_JOIN_MAX (256u << 10)

/* Marks are RILL_RET_MARK_STEP apart: a batch appended to pend past the next step records
 * one (one compare per batch), and so does a window the credit cut that had to be
 * measured frame by frame past the last mark. Head steps over frames itself only when
 * acknowledged frames reach WALK_MIN_FRAMES past it (no mark near). */
#define WALK_MIN_FRAMES 1024u

/* Spare buffers nobody took for this long are freed (an idle link gives its memory back). */
#define SPARE_IDLE_NS (1000ull * 1000000ull)

void rill__ret_free(rill__acked_t *a)
{
    for (unsigned i = 0; i < a->qlen; i++)
        rill__buf_free(&rill__ret_chunk(a, i)->b);
    free(a->q);
    a->q = NULL;
    a->qlen = a->qcap = a->q0 = 0;
    rill__buf_free(&a->spare[0]);
    rill__buf_free(&a->spare[1]);
    rill__buf_free(&a->limbo);
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
            q[i] = *rill__ret_chunk(a, i);
        free(a->q);
        a->q = q;
        a->qcap = cap;
        a->q0 = 0;
    }
    rill__ret_chunk_t *c = rill__ret_chunk(a, a->qlen++);
    *c = (rill__ret_chunk_t){.pos = a->end_pos, .seq = a->end_seq};
    return 0;
}

/* Releases the chunks every frame of which is acknowledged (a pointer step each). */
static void release_chunks(rill__acked_t *a)
{
    while (a->qlen) {
        rill__ret_chunk_t *c = rill__ret_chunk(a, 0);
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
    k->mark_at = k->pend.len + RILL_RET_MARK_STEP;
}

void rill__acked_clear_pend_marks(rill__link_t *k)
{
    if (!k->ack)
        return;
    k->ack->npmarks = 0;
    k->mark_at = RILL_RET_MARK_STEP;
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

void rill__ret_advance_head(rill__acked_t *a)
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

/* Over whole chunks and marks, then frame by frame within the oldest chunk. */
void rill__ret_settle_head(rill__acked_t *a)
{
    rill__ret_advance_head(a);
    if (!a->qlen || a->acked < a->head_seq)
        return;
    rill__ret_chunk_t *c = rill__ret_chunk(a, 0);
    size_t off = (size_t)(a->head_pos - c->pos);
    while (a->head_seq <= a->acked) {
        off += frame_at(c->b.data, off);
        a->head_seq++;
    }
    a->head_pos = c->pos + off;
}

/* An ACK may be read before the completion of the send that carried its last frames:
 * only what was wholly sent counts. */
void rill__ret_take_acks(rill__acked_t *a)
{
    uint64_t through = a->peer_acked < a->done_seq ? a->peer_acked : a->done_seq - 1;
    if (through > a->acked)
        a->acked = through;
    release_chunks(a);
}

void rill__ret_rewind(rill__acked_t *a)
{
    rill__ret_settle_head(a);
    a->snd_ci = 0;
    a->snd_pos = a->win_pos = a->head_pos;
    a->done_seq = a->win_seq = a->head_seq;
    a->peer_acked = a->acked;
    a->mlen = 0; /* sends of the new connection record theirs, in order */
}

void rill__ret_sent(rill__acked_t *a)
{
    rill__ret_chunk_t *c = rill__ret_chunk(a, a->snd_ci);
    a->done_seq = a->win_seq;
    push_mark(a, a->snd_pos, a->done_seq);
    if (a->snd_pos > a->max_pos) {
        a->max_pos = a->snd_pos;
        a->max_seq = a->done_seq;
    }
    if (a->snd_pos == c->pos + c->b.len)
        a->snd_ci++;
}

void rill__ret_refill(rill__link_t *k)
{
    rill__acked_t *a = k->ack;
    if (a->snd_ci < a->qlen || k->pend.len == 0)
        return; /* frames to send (again) come first */
    size_t n = k->pend.len;
    uint64_t frames = k->pend.frames;
    rill__ret_chunk_t *t = a->qlen ? rill__ret_chunk(a, a->qlen - 1) : NULL;
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
        rill__ret_chunk(a, a->qlen - 1)->b = k->pend;
        k->pend = take_spare(a);
    }
    a->end_pos += n;
    a->end_seq += frames;
}

/* Bytes the credit allows past snd. */
static size_t credit_room(const rill__acked_t *a)
{
    uint64_t out = a->snd_pos - a->head_pos;
    return a->credit > out ? (size_t)(a->credit - out) : 0;
}

size_t rill__ret_window(rill__acked_t *a)
{
    rill__ret_chunk_t *c = rill__ret_chunk(a, a->snd_ci);
    size_t room = credit_room(a);
    size_t off = (size_t)(a->snd_pos - c->pos), w = c->b.len - off;
    uint64_t wf = c->seq + c->b.frames - a->done_seq;
    if (w > room && a->acked >= a->head_seq) {
        /* The credit may be freer than head says: move it to the marks, and step over
         * frames only when no mark is near (a whole chunk went in one send). */
        rill__ret_advance_head(a);
        if (a->acked >= a->head_seq + WALK_MIN_FRAMES)
            rill__ret_settle_head(a);
        c = rill__ret_chunk(a, a->snd_ci);
        room = credit_room(a);
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
            if (w - marked >= RILL_RET_MARK_STEP) {
                push_mark(a, a->snd_pos + w, a->done_seq + wf);
                marked = w;
            }
        }
    }
    a->win_pos = a->snd_pos + w;
    a->win_seq = a->done_seq + wf;
    return w;
}

int rill__ret_copy_from(const rill__acked_t *a, uint64_t pos, uint64_t seq, rill__buf_t *r)
{
    size_t n = (size_t)(a->end_pos - pos);
    if (!n)
        return 0;
    if (rill__buf_reserve(r, n, SIZE_MAX) < 0)
        return RILL_ENOMEM;
    for (unsigned i = 0; i < a->qlen; i++) {
        const rill__ret_chunk_t *c = rill__ret_chunk(a, i);
        uint64_t from = pos > c->pos ? pos : c->pos, to = c->pos + c->b.len;
        if (from < to) {
            memcpy(r->data + r->len, c->b.data + (from - c->pos), (size_t)(to - from));
            r->len += (size_t)(to - from);
        }
    }
    r->frames += a->end_seq - seq;
    return 0;
}

/* Frees chunk buffer b, unless the send in flight reads it: then it waits in limbo
 * until the link is released. */
static void drop_buf(rill__acked_t *a, rill__buf_t *b, int in_flight)
{
    if (in_flight) {
        rill__buf_free(&a->limbo);
        a->limbo = *b;
        *b = (rill__buf_t){0};
        return;
    }
    rill__buf_free(b);
}

void rill__ret_cut(rill__acked_t *a, uint64_t pos, uint64_t seq, int in_flight)
{
    /* Chunks wholly past pos go, the one pos is in ends there. */
    while (a->qlen && rill__ret_chunk(a, a->qlen - 1)->pos >= pos) {
        unsigned last = a->qlen - 1;
        drop_buf(a, &rill__ret_chunk(a, last)->b, in_flight && last == a->snd_ci);
        a->qlen--;
    }
    if (a->qlen) {
        rill__ret_chunk_t *c = rill__ret_chunk(a, a->qlen - 1);
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
}
