/* One key group's managed state: key -> value of a fixed size (docs/state.md).
 *
 * Open addressing with linear probing. A slot is the key (8 bytes) followed by the
 * value, padded to 8 bytes so that every value is 8-byte aligned; a control byte per
 * slot says whether it is taken and holds 7 bits of the key's hash, so that a probe
 * rarely reads a slot of another key. Keys are never removed one by one: a value that is
 * all zero bytes counts as absent (never scanned, never shipped) and its slot is reclaimed
 * when the table is rebuilt. Inserting never moves a value once rill__state_table_reserve
 * made room, so the pointers handed to one batch stay valid through it.
 *
 * A table belongs to the loop that runs its group: no locks. */
#ifndef RILL_CORE_STATE_TABLE_H
#define RILL_CORE_STATE_TABLE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "util/key_group.h"

typedef struct rill__state_table {
    uint8_t *ctrl;  /* cap bytes: 0 = free, else 0x80 | the hash's top 7 bits */
    uint8_t *slots; /* cap slots of `stride` bytes */
    uint32_t cap;   /* a power of two, or 0 before the first key */
    uint32_t used;  /* taken slots, values that became all zero included */
} rill__state_table_t;

/* Bytes of a slot for values of vsize bytes. */
static inline uint32_t rill__state_stride(uint32_t vsize)
{
    return 8 + ((vsize + 7u) & ~7u);
}

/* Memory a table holds (bytes). */
static inline uint64_t rill__state_table_bytes(const rill__state_table_t *t, uint32_t stride)
{
    return (uint64_t)t->cap * (1 + stride);
}

/* Whether `extra` more keys fit without a rebuild (at most 3/4 of the slots taken). */
static inline int rill__state_table_fits(const rill__state_table_t *t, uint32_t extra)
{
    return (uint64_t)t->used + extra <= (uint64_t)t->cap / 4 * 3;
}

/* Makes room for `extra` more keys: when they do not fit, rebuilds the table (which
 * moves every value) and, unless keep_zero, drops the keys whose values are all zero.
 * Returns 0 or RILL_ENOMEM (the table is then unchanged). */
int rill__state_table_reserve(rill__state_table_t *t, uint32_t stride, uint32_t vsize,
                              uint32_t extra, int keep_zero);

/* A slot's control byte for a key of mixed value h (rill__key_mix). The probe starts at
 * h's low bits; the tag takes 7 bits from the middle, since the keys of one group share
 * h's high bits. */
static inline uint8_t rill__state_tag(uint64_t h)
{
    return (uint8_t)(0x80u | ((h >> 32) & 0x7fu));
}

/* The value of key (mixed: h), or NULL when the table has no slot for it. Inline: it runs
 * once per message of a managed computation. */
static inline void *rill__state_table_find_h(const rill__state_table_t *t, uint32_t stride,
                                             uint64_t key, uint64_t h)
{
    if (!t->cap)
        return NULL;
    uint32_t mask = t->cap - 1;
    uint8_t tag = rill__state_tag(h);
    for (uint32_t i = (uint32_t)h & mask; t->ctrl[i]; i = (i + 1) & mask) {
        if (t->ctrl[i] != tag)
            continue;
        uint8_t *s = t->slots + (size_t)i * stride;
        uint64_t k;
        memcpy(&k, s, 8);
        if (k == key)
            return s + 8;
    }
    return NULL;
}

/* Inserts key (mixed: h; known absent, room reserved); returns its value, all zero. */
void *rill__state_table_insert_h(rill__state_table_t *t, uint32_t stride, uint64_t key, uint64_t h);

/* The value of key, inserted (all zero) when absent. Room must have been reserved. */
static inline void *rill__state_table_get_h(rill__state_table_t *t, uint32_t stride, uint64_t key,
                                            uint64_t h)
{
    void *v = rill__state_table_find_h(t, stride, key, h);
    return v ? v : rill__state_table_insert_h(t, stride, key, h);
}

static inline void *rill__state_table_get(rill__state_table_t *t, uint32_t stride, uint64_t key)
{
    return rill__state_table_get_h(t, stride, key, rill__key_mix(key));
}

/* The value of key, or NULL when the table has no slot for it. */
static inline void *rill__state_table_find(const rill__state_table_t *t, uint32_t stride,
                                           uint64_t key)
{
    return rill__state_table_find_h(t, stride, key, rill__key_mix(key));
}

/* The next key from slot *pos on whose value is not all zero: stores it and its value,
 * moves *pos past it and returns 1; returns 0 at the end. */
int rill__state_table_next(const rill__state_table_t *t, uint32_t stride, uint32_t vsize,
                           uint32_t *pos, uint64_t *key, void **value);

/* Whether the vsize bytes at v are all zero (an absent value). */
int rill__state_value_is_zero(const void *v, uint32_t vsize);

void rill__state_table_free(rill__state_table_t *t);

#endif
