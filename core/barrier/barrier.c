/* Barriers and acked-input FIFOs (see barrier.h). */
#include "barrier/barrier.h"

#include <stdlib.h>
#include <string.h>

int rill__barriers_init(rill__barriers_t *b, unsigned width, unsigned cap)
{
    memset(b, 0, sizeof *b);
    b->width = width ? width : 1;
    b->cap = cap;
    b->snap = calloc((size_t)cap * b->width, sizeof *b->snap);
    b->taken_at = calloc(cap, sizeof *b->taken_at);
    b->sealed = calloc(cap, 1);
    b->first = b->next = 1;
    if (!b->snap || !b->taken_at || !b->sealed) {
        rill__barriers_free(b);
        return -1;
    }
    return 0;
}

void rill__barriers_free(rill__barriers_t *b)
{
    free(b->snap);
    free(b->taken_at);
    free(b->sealed);
    memset(b, 0, sizeof *b);
}

static inline uint64_t *snap_of(const rill__barriers_t *b, uint64_t id)
{
    return b->snap + (size_t)(id % b->cap) * b->width;
}

uint64_t rill__barriers_take(rill__barriers_t *b, const uint64_t *appended, int sealed,
                             uint64_t now)
{
    if (b->next - b->first == b->cap) {
        /* Full: widen the newest. Its waiters then wait for more, never for less. */
        uint64_t id = b->next - 1;
        uint64_t *s = snap_of(b, id);
        for (unsigned i = 0; i < b->width; i++)
            if (appended[i] > s[i])
                s[i] = appended[i];
        if (!sealed)
            b->sealed[id % b->cap] = 0;
        return id;
    }
    uint64_t id = b->next++;
    memcpy(snap_of(b, id), appended, b->width * sizeof *appended);
    b->taken_at[id % b->cap] = now;
    b->sealed[id % b->cap] = (uint8_t)(sealed != 0);
    return id;
}

void rill__barriers_seal_all(rill__barriers_t *b, const uint64_t *floor)
{
    for (uint64_t id = b->first; id < b->next; id++) {
        if (b->sealed[id % b->cap])
            continue;
        uint64_t *s = snap_of(b, id);
        for (unsigned i = 0; i < b->width; i++)
            if (floor[i] > s[i])
                s[i] = floor[i];
        b->sealed[id % b->cap] = 1;
    }
}

void rill__barriers_widen_all(rill__barriers_t *b, const uint64_t *floor, int unseal)
{
    for (uint64_t id = b->first; id < b->next; id++) {
        uint64_t *s = snap_of(b, id);
        for (unsigned i = 0; i < b->width; i++)
            if (floor[i] > s[i])
                s[i] = floor[i];
        if (unseal)
            b->sealed[id % b->cap] = 0;
    }
}

int rill__barriers_unsealed(const rill__barriers_t *b)
{
    for (uint64_t id = b->first; id < b->next; id++)
        if (!b->sealed[id % b->cap])
            return 1;
    return 0;
}

uint64_t rill__barriers_complete(rill__barriers_t *b, const uint64_t *safe, uint64_t now,
                                 uint64_t *wait_ns, uint64_t *count)
{
    while (b->first < b->next) {
        uint64_t id = b->first;
        if (!b->sealed[id % b->cap])
            break;
        const uint64_t *s = snap_of(b, id);
        unsigned i = 0;
        while (i < b->width && safe[i] >= s[i])
            i++;
        if (i < b->width)
            break;
        uint64_t t = b->taken_at[id % b->cap];
        *wait_ns += now > t ? now - t : 0;
        (*count)++;
        b->first++;
    }
    return b->first - 1;
}

void rill__ackq_reset(rill__ackq_t *q, uint64_t seq)
{
    memset(q, 0, sizeof *q);
    q->processed = q->noted = q->safe = seq;
}

void rill__ackq_note(rill__ackq_t *q, uint64_t id)
{
    if (q->processed <= q->noted)
        return;
    unsigned last = (q->head + q->n - 1) % RILL_ACKQ_LEN;
    if (q->n && (q->e[last].id == id || q->n == RILL_ACKQ_LEN)) {
        /* Same barrier (a widened one), or no room: the newest entry waits for more. */
        q->e[last].id = id;
        q->e[last].seq = q->processed;
    } else {
        unsigned at = (q->head + q->n) % RILL_ACKQ_LEN;
        q->e[at].id = id;
        q->e[at].seq = q->processed;
        q->n++;
    }
    q->noted = q->processed;
}

int rill__ackq_advance(rill__ackq_t *q, uint64_t done)
{
    uint64_t safe = q->safe;
    while (q->n && q->e[q->head].id <= done) {
        if (q->e[q->head].seq > safe)
            safe = q->e[q->head].seq;
        q->head = (q->head + 1) % RILL_ACKQ_LEN;
        q->n--;
    }
    if (safe == q->safe)
        return 0;
    q->safe = safe;
    return 1;
}
