/* One key group's managed state: see table.h. */
#include "state/table.h"

#include <stdlib.h>
#include <string.h>

#include "rill/rill.h"

#define MIN_CAP 8u

uint8_t rill__state_no_ctrl[1];

int rill__state_value_is_zero(const void *v, uint32_t vsize)
{
    const uint8_t *p = v;
    /* Values start 8-byte aligned: whole words first, then the tail. */
    uint32_t words = vsize / 8;
    for (uint32_t i = 0; i < words; i++) {
        uint64_t w;
        memcpy(&w, p + 8 * i, 8);
        if (w)
            return 0;
    }
    for (uint32_t i = words * 8; i < vsize; i++)
        if (p[i])
            return 0;
    return 1;
}

static uint8_t *slot_at(const rill__state_table_t *t, uint32_t stride, uint32_t i)
{
    return t->slots + (size_t)i * stride;
}

/* Puts key (known absent) in a table with room; returns its slot. */
static uint8_t *place(rill__state_table_t *t, uint32_t stride, uint64_t key, uint64_t h)
{
    uint32_t mask = t->cap - 1, i = (uint32_t)h & mask;
    while (t->ctrl[i])
        i = (i + 1) & mask;
    t->ctrl[i] = rill__state_tag(h);
    t->used++;
    uint8_t *s = slot_at(t, stride, i);
    memcpy(s, &key, 8);
    return s;
}

/* Whether slot i is dropped by a rebuild. */
static int dropped(const rill__state_table_t *t, uint32_t stride, uint32_t vsize, uint32_t i,
                   int keep_zero)
{
    return !t->ctrl[i] ||
           (!keep_zero && rill__state_value_is_zero(slot_at(t, stride, i) + 8, vsize));
}

int rill__state_table_reserve(rill__state_table_t *t, uint32_t stride, uint32_t vsize,
                              uint32_t extra, int keep_zero)
{
    if (rill__state_table_fits(t, extra))
        return 0;
    uint64_t live = 0;
    for (uint32_t i = 0; i < t->cap; i++)
        live += !dropped(t, stride, vsize, i, keep_zero);
    uint64_t cap = MIN_CAP;
    while ((live + extra) > cap / 4 * 3)
        cap *= 2;
    if (cap > (1ull << 31))
        return RILL_ENOMEM;
    rill__state_table_t n = {
        .ctrl = calloc(cap, 1),
        .slots = calloc(cap, stride),
        .cap = (uint32_t)cap,
        .mask = (uint32_t)cap - 1,
    };
    if (!n.ctrl || !n.slots) {
        free(n.ctrl);
        free(n.slots);
        return RILL_ENOMEM;
    }
    for (uint32_t i = 0; i < t->cap; i++) {
        if (dropped(t, stride, vsize, i, keep_zero))
            continue;
        const uint8_t *s = slot_at(t, stride, i);
        uint64_t key;
        memcpy(&key, s, 8);
        memcpy(place(&n, stride, key, rill__key_mix(key)), s, stride);
    }
    rill__state_table_free(t);
    *t = n;
    return 0;
}

void *rill__state_table_insert_h(rill__state_table_t *t, uint32_t stride, uint64_t key, uint64_t h)
{
    return place(t, stride, key, h) + 8;
}

int rill__state_table_next(const rill__state_table_t *t, uint32_t stride, uint32_t vsize,
                           uint32_t *pos, uint64_t *key, void **value)
{
    for (uint32_t i = *pos; i < t->cap; i++) {
        uint8_t *s = slot_at(t, stride, i);
        if (!t->ctrl[i] || rill__state_value_is_zero(s + 8, vsize))
            continue;
        memcpy(key, s, 8);
        *value = s + 8;
        *pos = i + 1;
        return 1;
    }
    *pos = t->cap;
    return 0;
}

void rill__state_table_free(rill__state_table_t *t)
{
    if (t->cap) {
        free(t->ctrl);
        free(t->slots);
    }
    rill__state_table_init(t);
}
