/* A managed computation's state: see state.h. */
#include "state/state.h"

#include <stdlib.h>
#include <string.h>

#include "util/key_group.h"
#include "util/stat.h"

rill__state_t *rill__state_new(unsigned nloops, uint32_t vsize)
{
    rill__state_t *s = aligned_alloc(64, (sizeof *s + nloops * sizeof s->loops[0] + 63) / 64 * 64);
    if (!s)
        return NULL;
    memset(s, 0, sizeof *s + nloops * sizeof s->loops[0]);
    s->vsize = vsize;
    s->stride = rill__state_stride(vsize);
    s->nloops = nloops;
    return s;
}

static void tables_free(rill__state_table_t *t, unsigned groups)
{
    if (!t)
        return;
    for (unsigned g = 0; g < groups; g++)
        rill__state_table_free(&t[g]);
    free(t);
}

void rill__state_free(rill__state_t *s)
{
    if (!s)
        return;
    for (unsigned i = 0; i < s->nloops; i++) {
        tables_free(s->loops[i].tables, s->loops[i].groups);
        free(s->loops[i].dirty);
        rill__buf_free(&s->loops[i].chunk);
    }
    free(s);
}

void rill__state_track(rill__state_t *s, unsigned loop, int on)
{
    s->loops[loop].track = on;
    if (!on)
        s->loops[loop].ndirty = 0;
}

/* Logs n keys of a batch; RILL_ENOMEM when the log cannot grow. */
static int log_keys(rill__state_loop_t *l, const rill_msg_t *v, size_t n)
{
    if (l->ndirty + n > l->capdirty) {
        size_t cap = l->capdirty ? l->capdirty : 1024;
        while (cap < l->ndirty + n)
            cap *= 2;
        uint64_t *d = realloc(l->dirty, cap * sizeof *d);
        if (!d)
            return RILL_ENOMEM;
        l->dirty = d;
        l->capdirty = cap;
    }
    for (size_t i = 0; i < n; i++)
        l->dirty[l->ndirty++] = v[i].key;
    return 0;
}

static uint64_t tables_bytes(const rill__state_t *s, const rill__state_table_t *t, unsigned groups)
{
    uint64_t b = (uint64_t)groups * sizeof *t;
    for (unsigned g = 0; g < groups; g++)
        b += rill__state_table_bytes(&t[g], s->stride);
    return b;
}

/* Files the loop's keys under `groups` groups: the loop started before its worker knew the
 * cluster's number. */
static int regroup(rill__state_t *s, rill__state_loop_t *l, unsigned groups)
{
    rill__state_table_t *n = malloc(groups * sizeof *n);
    if (!n)
        return RILL_ENOMEM;
    for (unsigned g = 0; g < groups; g++)
        rill__state_table_init(&n[g]);
    for (unsigned g = 0; g < l->groups; g++) {
        const rill__state_table_t *t = &l->tables[g];
        uint32_t pos = 0;
        uint64_t key;
        void *value;
        while (rill__state_table_next(t, s->stride, s->vsize, &pos, &key, &value)) {
            rill__state_table_t *to = &n[rill__key_group(key, groups)];
            if (rill__state_table_reserve(to, s->stride, s->vsize, 1, 1) < 0) {
                tables_free(n, groups);
                return RILL_ENOMEM;
            }
            memcpy(rill__state_table_get(to, s->stride, key), value, s->vsize);
        }
    }
    tables_free(l->tables, l->groups);
    l->tables = n;
    l->groups = groups;
    RILL_STAT_SET(l->bytes, tables_bytes(s, n, groups));
    return 0;
}

int rill__state_groups(rill__state_t *s, unsigned loop, unsigned groups)
{
    rill__state_loop_t *l = &s->loops[loop];
    return l->groups == groups ? 0 : regroup(s, l, groups);
}

/* A key new to table t (group g) must go in but t is full: rebuilds it. The rebuild moves
 * the values already handed to this batch (v[0..i), values): a table the batch used keeps
 * its new (still zero) keys and they are looked up again; one it has not used yet drops
 * its zero values instead. Returns 0 or RILL_ENOMEM. */
static int make_room(rill__state_t *s, rill__state_loop_t *l, rill__state_table_t *t, unsigned g,
                     unsigned groups, const rill_msg_t *v, size_t i, void **values)
{
    int used = 0;
    for (size_t j = 0; j < i && !used; j++)
        used = rill__key_group(v[j].key, groups) == g;
    uint64_t before = rill__state_table_bytes(t, s->stride);
    if (rill__state_table_reserve(t, s->stride, s->vsize, 1, used) < 0)
        return RILL_ENOMEM;
    RILL_STAT_ADD(l->bytes, rill__state_table_bytes(t, s->stride) - before);
    for (size_t j = 0; j < i && used; j++)
        if (rill__key_group(v[j].key, groups) == g)
            values[j] = rill__state_table_find(t, s->stride, v[j].key);
    return 0;
}

/* The value of v[i] (mixed key h), a key new to its group's table: inserted, after a
 * rebuild when the table is full. NULL without memory. Out of line and out of the loop
 * that finds the values (find_run). */
__attribute__((noinline, cold)) static void *insert_new(rill__state_t *s, rill__state_loop_t *l,
                                                        unsigned groups, const rill_msg_t *v,
                                                        size_t i, void **values, uint64_t h)
{
    unsigned g = rill__mix_group(h, groups);
    rill__state_table_t *t = &l->tables[g];
    if (!rill__state_table_fits(t, 1) && make_room(s, l, t, g, groups, v, i, values) < 0)
        return NULL;
    return rill__state_table_insert_h(t, s->stride, v[i].key, h);
}

/* Finds the values of v[0..n) while their keys are in their tables; returns how many it
 * found (n, or the index of the first key new to its table). Makes no call, so that what
 * the loop needs stays in registers. */
static inline size_t find_run(const rill__state_table_t *tables, uint32_t stride, unsigned groups,
                              const rill_msg_t *v, size_t n, void **values)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t key = v[i].key, h = rill__key_mix(key);
        void *value = rill__state_table_find_h(&tables[rill__mix_group(h, groups)], stride, key, h);
        if (__builtin_expect(!value, 0))
            return i;
        values[i] = value;
    }
    return n;
}

int rill__state_prepare(rill__state_t *s, unsigned loop, unsigned groups, const rill_msg_t *v,
                        size_t n, void **values)
{
    rill__state_loop_t *l = &s->loops[loop];
    if (l->groups != groups && regroup(s, l, groups) < 0)
        return RILL_ENOMEM;
    if (l->track && log_keys(l, v, n) < 0)
        return RILL_ENOMEM;
    const rill__state_table_t *tables = l->tables; /* a rebuild replaces a table's slots only */
    for (size_t i = 0;;) {
        i += find_run(tables, s->stride, groups, v + i, n - i, values + i);
        if (i == n)
            return 0;
        void *value = insert_new(s, l, groups, v, i, values, rill__key_mix(v[i].key));
        if (!value)
            return RILL_ENOMEM;
        values[i++] = value;
    }
}

int rill__state_scan(rill__state_t *s, unsigned loop, uint64_t *cursor, uint64_t *keys,
                     void **values, size_t max)
{
    rill__state_loop_t *l = &s->loops[loop];
    uint64_t g = *cursor >> 32;
    uint32_t pos = (uint32_t)*cursor;
    size_t got = 0;
    while (got < max && g < l->groups) {
        if (rill__state_table_next(&l->tables[g], s->stride, s->vsize, &pos, &keys[got],
                                   &values[got])) {
            got++;
        } else {
            g++;
            pos = 0;
        }
    }
    if (g >= l->groups)
        g = l->groups, pos = 0;
    *cursor = g << 32 | pos;
    return (int)got;
}

void *rill__state_find(rill__state_t *s, unsigned loop, unsigned groups, uint64_t key)
{
    rill__state_loop_t *l = &s->loops[loop];
    if (l->groups != groups)
        return NULL;
    return rill__state_table_find(&l->tables[rill__key_group(key, groups)], s->stride, key);
}

int rill__state_take_group(rill__state_t *to, rill__state_t *from, unsigned loop, unsigned g,
                           unsigned groups)
{
    if (to->vsize != from->vsize || rill__state_groups(to, loop, groups) < 0 ||
        rill__state_groups(from, loop, groups) < 0)
        return RILL_ENOMEM;
    rill__state_loop_t *t = &to->loops[loop], *f = &from->loops[loop];
    uint64_t old = rill__state_table_bytes(&t->tables[g], to->stride);
    uint64_t moved = rill__state_table_bytes(&f->tables[g], from->stride);
    rill__state_table_free(&t->tables[g]);
    t->tables[g] = f->tables[g];
    rill__state_table_init(&f->tables[g]);
    RILL_STAT_ADD(t->bytes, moved - old);
    RILL_STAT_SUB(f->bytes, moved);
    return 0;
}

void rill__state_drop_group(rill__state_t *s, unsigned loop, unsigned g)
{
    rill__state_loop_t *l = &s->loops[loop];
    if (g >= l->groups || !l->tables[g].cap)
        return;
    RILL_STAT_SUB(l->bytes, rill__state_table_bytes(&l->tables[g], s->stride));
    rill__state_table_free(&l->tables[g]);
}

uint64_t rill__state_bytes(const rill__state_t *s)
{
    uint64_t b = 0;
    for (unsigned i = 0; i < s->nloops; i++)
        b += RILL_STAT_GET(s->loops[i].bytes);
    return b;
}
