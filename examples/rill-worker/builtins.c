#include "builtins.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passthrough_batch(uintptr_t ctx, unsigned loop, const rill_msg_t *m, size_t n,
                             rill_emitter_t *em)
{
    (void)loop;
    int sink = (int)ctx - 1;
    if (sink < 0)
        return 0;
    rill_emit_sink_msgs(em, sink, m, n); /* what does not fit is counted as dropped */
    return 0;
}

/* count: one open-addressing table per loop thread. A key always lands on the same loop,
 * so a table is only touched by its own thread and needs no lock. */
typedef struct count_entry {
    uint64_t key;
    uint64_t count;   /* 0 = empty slot */
    uint64_t emitted; /* count at the last emission */
} count_entry_t;

typedef struct count_table {
    count_entry_t *slots;
    size_t cap, used;
    char pad[64 - sizeof(void *) - 2 * sizeof(size_t)];
} count_table_t;

typedef struct count_state {
    int sink;
    uint64_t every;
    unsigned nloops;
    count_table_t tables[];
} count_state_t;

static inline size_t slot_of(uint64_t key, size_t cap)
{
    key ^= key >> 31;
    key *= 0x7fb5d329728ea185ull;
    key ^= key >> 27;
    return (size_t)key & (cap - 1);
}

static int table_grow(count_table_t *t)
{
    size_t cap = t->cap ? t->cap * 2 : 1024;
    count_entry_t *s = calloc(cap, sizeof *s);
    if (!s)
        return -1;
    for (size_t i = 0; i < t->cap; i++) {
        if (!t->slots[i].count)
            continue;
        size_t j = slot_of(t->slots[i].key, cap);
        while (s[j].count)
            j = (j + 1) & (cap - 1);
        s[j] = t->slots[i];
    }
    free(t->slots);
    t->slots = s;
    t->cap = cap;
    return 0;
}

static void emit_count(rill_emitter_t *em, int sink, count_entry_t *e)
{
    char text[24];
    int len = snprintf(text, sizeof text, "%llu", (unsigned long long)e->count);
    rill_emit_sink(em, sink, BUILTIN_COUNT_ID, e->key, text, (size_t)len);
    e->emitted = e->count;
}

static int count_batch(uintptr_t ctx, unsigned loop, const rill_msg_t *m, size_t n,
                       rill_emitter_t *em)
{
    count_state_t *st = (count_state_t *)ctx;
    count_table_t *t = &st->tables[loop];
    for (size_t i = 0; i < n; i++) {
        if (2 * (t->used + 1) > t->cap && table_grow(t) < 0)
            return -1;
        size_t j = slot_of(m[i].key, t->cap);
        while (t->slots[j].count && t->slots[j].key != m[i].key)
            j = (j + 1) & (t->cap - 1);
        count_entry_t *e = &t->slots[j];
        if (!e->count) {
            e->key = m[i].key;
            t->used++;
        }
        e->count++;
        if (st->every && st->sink >= 0 && e->count % st->every == 0)
            emit_count(em, st->sink, e);
    }
    return 0;
}

static void count_flush(uintptr_t ctx, unsigned loop, rill_emitter_t *em)
{
    count_state_t *st = (count_state_t *)ctx;
    count_table_t *t = &st->tables[loop];
    if (st->sink < 0)
        return;
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i].count && t->slots[i].count != t->slots[i].emitted)
            emit_count(em, st->sink, &t->slots[i]);
}

static void count_release(uintptr_t ctx)
{
    count_state_t *st = (count_state_t *)ctx;
    for (unsigned i = 0; i < st->nloops; i++)
        free(st->tables[i].slots);
    free(st);
}

int builtins_register(rill_worker_t *w, int sink, uint64_t count_every)
{
    static const rill_comp_ops_t passthrough = {passthrough_batch, NULL, NULL};
    /* No state per key: it runs on the loop that read the frame (no handoff). */
    int rc = rill_comp_register_flags(w, BUILTIN_PASSTHROUGH_ID, "passthrough", &passthrough,
                                      (uintptr_t)(sink + 1), RILL_COMP_STATELESS);
    if (rc < 0)
        return rc;
    unsigned nloops = rill_worker_threads(w);
    count_state_t *st = calloc(1, sizeof *st + nloops * sizeof st->tables[0]);
    if (!st)
        return RILL_ENOMEM;
    st->sink = sink;
    st->every = count_every;
    st->nloops = nloops;
    static const rill_comp_ops_t count = {count_batch, count_flush, count_release};
    rc = rill_comp_register(w, BUILTIN_COUNT_ID, "count", &count, (uintptr_t)st);
    if (rc < 0)
        count_release((uintptr_t)st);
    return rc;
}
