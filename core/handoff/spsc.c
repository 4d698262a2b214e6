#include "handoff/spsc.h"

#include <stdlib.h>
#include <string.h>

#include "rill/rill.h"

int rill__spsc_init(rill__spsc_t *r, size_t cap)
{
    size_t c = 4096;
    while (c < cap)
        c <<= 1;
    memset(r, 0, sizeof *r);
    r->buf = malloc(c);
    if (!r->buf)
        return RILL_ENOMEM;
    r->cap = c;
    return 0;
}

void rill__spsc_free(rill__spsc_t *r)
{
    free(r->buf);
    r->buf = NULL;
}

size_t rill__spsc_push(rill__spsc_t *r, const void *p, size_t n)
{
    uint64_t tail = r->tail; /* only this thread writes it */
    size_t space = r->cap - (size_t)(tail - r->head_cache);
    if (space < n) {
        /* Acquire pairs with the consumer's release in consume: the bytes it has
         * released are no longer read, so overwriting them is safe. */
        r->head_cache = __atomic_load_n(&r->head, __ATOMIC_ACQUIRE);
        space = r->cap - (size_t)(tail - r->head_cache);
    }
    if (n > space)
        n = space;
    if (n == 0)
        return 0;
    size_t off = (size_t)tail & (r->cap - 1);
    size_t first = r->cap - off < n ? r->cap - off : n;
    memcpy(r->buf + off, p, first);
    memcpy(r->buf, (const uint8_t *)p + first, n - first);
    /* Release: the consumer that sees the new tail sees the bytes. */
    __atomic_store_n(&r->tail, tail + n, __ATOMIC_RELEASE);
    return n;
}

size_t rill__spsc_peek(rill__spsc_t *r, const uint8_t **p)
{
    uint64_t head = r->head;
    if (r->tail_cache == head)
        r->tail_cache = __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
    size_t avail = (size_t)(r->tail_cache - head);
    if (avail == 0)
        return 0;
    size_t off = (size_t)head & (r->cap - 1);
    *p = r->buf + off;
    return r->cap - off < avail ? r->cap - off : avail;
}

void rill__spsc_consume(rill__spsc_t *r, size_t n)
{
    __atomic_store_n(&r->head, r->head + n, __ATOMIC_RELEASE);
}

size_t rill__spsc_used(const rill__spsc_t *r)
{
    uint64_t tail = __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
    uint64_t head = __atomic_load_n(&r->head, __ATOMIC_ACQUIRE);
    return (size_t)(tail - head);
}
