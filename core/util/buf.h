/* A growable byte buffer: output queues and staging. It grows by doubling up to a cap
 * and is then reused, so steady traffic allocates nothing. */
#ifndef RILL_CORE_BUF_H
#define RILL_CORE_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct rill__buf {
    uint8_t *data;
    size_t len;
    size_t cap;
    uint64_t frames; /* frames held, for drop accounting */
} rill__buf_t;

/* Makes room for n more bytes in b (capacity grows by doubling, never beyond max).
 * Returns 0, RILL_EFULL when b would exceed max, or RILL_ENOMEM when memory is short. */
int rill__buf_reserve(rill__buf_t *b, size_t n, size_t max);

/* Frees b's memory and empties it. */
void rill__buf_free(rill__buf_t *b);

/* Drops the first n bytes of b, moving the rest to the front. */
void rill__buf_consume(rill__buf_t *b, size_t n);

#endif
