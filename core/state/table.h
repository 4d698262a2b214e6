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

/* The value of key, inserted (all zero) when absent. Room must have been reserved. */
void *rill__state_table_get(rill__state_table_t *t, uint32_t stride, uint64_t key);

/* The value of key, or NULL when the table has no slot for it. */
void *rill__state_table_find(const rill__state_table_t *t, uint32_t stride, uint64_t key);

/* The next key from slot *pos on whose value is not all zero: stores it and its value,
 * moves *pos past it and returns 1; returns 0 at the end. */
int rill__state_table_next(const rill__state_table_t *t, uint32_t stride, uint32_t vsize,
                           uint32_t *pos, uint64_t *key, void **value);

/* Whether the vsize bytes at v are all zero (an absent value). */
int rill__state_value_is_zero(const void *v, uint32_t vsize);

void rill__state_table_free(rill__state_table_t *t);

#endif
