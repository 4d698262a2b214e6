/* One key group's managed state: key -> value of a fixed size (docs/state.md).
 *
 * Open addressing with linear probing from the mixed key's low bits. A slot is the key
 * (8 bytes) followed by the value, padded to 8 bytes so that every value is 8-byte
 * aligned; a control byte per slot says whether it is taken and holds 7 bits of the
 * key's hash (its tag). A lookup reads the key's own slot first, without the tag (a hit
 * there reads the slot anyway, and most lookups hit there); the slots after it only when
 * their tag matches, so that a probe rarely reads another key's slot. Keys are never
 * removed one by one: a value that is all zero bytes counts as absent (never scanned,
 * never shipped) and its slot is reclaimed when the table is rebuilt. Inserting never
 * moves a value once rill__state_table_reserve made room, so the pointers handed to one
 * batch stay valid through it.
 *
 * A table belongs to the loop that runs its group: no locks. */
#ifndef RILL_CORE_STATE_TABLE_H
#define RILL_CORE_STATE_TABLE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "util/key_group.h"

typedef struct rill__state_table {
    uint8_t *ctrl;  /* cap bytes: 0 = free, else its key's tag (rill__state_tag); an empty
                     * table's is rill__state_no_ctrl (one free slot: a lookup needs no
                     * test for emptiness), or NULL before rill__state_table_init */
    uint8_t *slots; /* cap slots of `stride` bytes */
    uint32_t cap;   /* a power of two, or 0 before the first key */
    uint32_t used;  /* taken slots, values that became all zero included */
    uint32_t mask;  /* cap - 1, or 0 when empty */
    uint32_t unused;
} rill__state_table_t; /* 32 bytes: a loop's tables are indexed with a shift */

/* The control byte of every empty table: a free slot, never written. */
extern uint8_t rill__state_no_ctrl[1];

/* Makes t an empty table that lookups may be made in. */
static inline void rill__state_table_init(rill__state_table_t *t)
{
    *t = (rill__state_table_t){.ctrl = rill__state_no_ctrl};
}

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

/* The value of key (mixed: h), or NULL when the table has no slot for it. t must have been
 * made by rill__state_table_init (an empty table has one free slot, so a lookup in it
 * ends at once). Inline: it runs once per message of a managed computation. */
static inline void *rill__state_table_find_h(const rill__state_table_t *t, uint32_t stride,
                                             uint64_t key, uint64_t h)
{
    size_t mask = t->mask, i = (size_t)h & mask; /* size_t: no zero extension per probe */
    if (!t->ctrl[i])
        return NULL;
    /* The key's own slot first, without its tag: a hit reads the slot anyway. */
    uint8_t *s = t->slots + i * stride;
    uint64_t k;
    memcpy(&k, s, 8);
    if (k == key)
        return s + 8;
    /* Further slots only when their tag matches. */
    uint8_t tag = rill__state_tag(h);
    for (i = (i + 1) & mask; t->ctrl[i]; i = (i + 1) & mask) {
        if (t->ctrl[i] != tag)
            continue;
        s = t->slots + i * stride;
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
