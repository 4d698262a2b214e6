/* Computation registry: ck_hs (SPMC, object mode) + ck_epoch; see registry.h.
 *
 * Writers (add, remove, stats) serialize on r->lock. Readers only run ck_hs_get and load
 * the snapshot pointer. Two kinds of memory wait for readers:
 *   - hash-set maps replaced by a resize and list snapshots replaced by add/remove are
 *     handed to ck_epoch_call on r->wrec and reclaimed by ck_epoch_poll. Both run only
 *     under r->lock: ck_epoch_call pushes with ck_stack_push_spnc (one producer, no
 *     concurrent dispatch), so the writer record must never be used by two threads at once.
 *   - a removed entry is freed by its remover after ck_epoch_synchronize_wait, which runs
 *     outside r->lock: add may be called from a loop thread inside a reader section (a
 *     batch callback registering something), and a remover holding the lock while it
 *     waits for that reader would deadlock with it. synchronize_wait touches only the
 *     global epoch, so concurrent removers need no record of their own.
 * Release callbacks run with no lock held, so they may call back into the registry. */
#include "registry/registry.h"

#include <assert.h>
#include <pthread.h>
#include <sched.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ck_epoch.h>
#include <ck_hs.h>
#include <ck_malloc.h>
#include <ck_pr.h>

/* libck is not built with -fsanitize=thread, so TSan sees neither the publication of an
 * entry through ck_hs nor the grace period ck_epoch establishes: both happen in
 * uninstrumented code. These annotations state the two happens-before edges ck provides
 * (ck_hs_put's store fence -> ck_hs_get; a reader's ck_epoch_end -> the writer returning
 * from a grace period). They compile to nothing outside TSan builds. */
#if defined(__SANITIZE_THREAD__)
#define RILL_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RILL_TSAN 1
#endif
#endif
#ifdef RILL_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define TSAN_ACQUIRE(p) __tsan_acquire((void *)(p))
#define TSAN_RELEASE(p) __tsan_release((void *)(p))
#else
#define TSAN_ACQUIRE(p) ((void)(p))
#define TSAN_RELEASE(p) ((void)(p))
#endif

#define CACHELINE 64
/* Rebuild the map (dropping tombstones) once removals since the last rebuild exceed the
 * live entries by this many. */
#define TOMBSTONE_SLACK 64

typedef struct reader {
    ck_epoch_record_t rec;
} reader_t;

/* Header in front of every block that may be freed through the epoch. */
typedef struct deferred {
    ck_epoch_entry_t ee;
    rill__registry_t *r;
} deferred_t;
#define DEFERRED_HDR ((sizeof(deferred_t) + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1))

typedef struct snapshot {
    size_t n;
    const rill__comp_t *items[];
} snapshot_t;

struct rill__registry {
    ck_epoch_record_t wrec; /* writer record: only under lock */
    ck_epoch_t epoch;
    ck_hs_t hs;
    pthread_mutex_t lock;
    snapshot_t *snap; /* published with release stores; loaded with acquire */
    unsigned long seed;
    unsigned long removals; /* since the map was last rebuilt; under lock */
    unsigned nreaders;
    reader_t *readers;
};

/* ck_malloc has no context argument; the registry whose writer is inside a ck_hs call is
 * passed to hs_free through this (set only under that registry's lock). */
static _Thread_local rill__registry_t *tl_writer;

static size_t round_up(size_t n, size_t a)
{
    return (n + a - 1) / a * a;
}

static void *deferred_alloc(size_t size)
{
    if (size > SIZE_MAX - DEFERRED_HDR)
        return NULL;
    char *b = malloc(DEFERRED_HDR + size);
    return b ? b + DEFERRED_HDR : NULL;
}

static deferred_t *deferred_hdr(void *p)
{
    return (deferred_t *)((char *)p - DEFERRED_HDR);
}

static void acquire_readers(rill__registry_t *r)
{
#ifdef RILL_TSAN
    for (unsigned i = 0; i < r->nreaders; i++)
        TSAN_ACQUIRE(&r->readers[i]);
#else
    (void)r;
#endif
}

static void deferred_cb(ck_epoch_entry_t *ee)
{
    deferred_t *d = (deferred_t *)ee;
    acquire_readers(d->r); /* the grace period ck_epoch just observed */
    free(d);
}

/* Under r->lock. p was unpublished before this call. */
static void deferred_free(rill__registry_t *r, void *p)
{
    deferred_t *d = deferred_hdr(p);
    d->r = r;
    /* Order the unpublishing store before ck_epoch_call's load of the global epoch, which
     * picks the bucket (ck_epoch_call itself has no fence). */
    ck_pr_fence_memory();
    ck_epoch_call(&r->wrec, &d->ee, deferred_cb);
}

static void *hs_malloc(size_t size)
{
    return deferred_alloc(size);
}

static void hs_free(void *p, size_t size, bool defer)
{
    (void)size;
    if (p == NULL)
        return;
    if (defer) {
        assert(tl_writer != NULL);
        deferred_free(tl_writer, p);
    } else {
        free(deferred_hdr(p));
    }
}

static struct ck_malloc hs_allocator = {.malloc = hs_malloc, .realloc = NULL, .free = hs_free};

static unsigned long hash_id(uint32_t id, unsigned long seed)
{
    /* splitmix64 finalizer: ck_hs uses the low bits for the slot and bits 25.. for pointer
     * packing, so every output bit must depend on every input bit. */
    uint64_t x = (uint64_t)id ^ (uint64_t)seed;
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return (unsigned long)(x ^ (x >> 31));
}

static unsigned long hs_hash(const void *obj, unsigned long seed)
{
    return hash_id(((const rill__comp_t *)obj)->id, seed);
}

static bool hs_compare(const void *stored, const void *key)
{
    TSAN_ACQUIRE(stored); /* pairs with the release in rill__registry_add */
    return ((const rill__comp_t *)stored)->id == ((const rill__comp_t *)key)->id;
}

static void publish(rill__registry_t *r, snapshot_t *s)
{
    snapshot_t *old = r->snap;
    __atomic_store_n(&r->snap, s, __ATOMIC_RELEASE);
    deferred_free(r, old);
}

static snapshot_t *snapshot_alloc(size_t n)
{
    snapshot_t *s = deferred_alloc(sizeof(snapshot_t) + n * sizeof(s->items[0]));
    if (s)
        s->n = n;
    return s;
}

/* Non-blocking: frees what earlier grace periods made safe. Under r->lock. */
static void reclaim(rill__registry_t *r)
{
    ck_epoch_poll(&r->wrec);
}

int rill__registry_new(rill__registry_t **out, unsigned nreaders)
{
    if (out == NULL)
        return RILL_EINVAL;
    *out = NULL;
    if (nreaders == 0)
        return RILL_EINVAL;

    rill__registry_t *r = aligned_alloc(CACHELINE, round_up(sizeof(*r), CACHELINE));
    if (r == NULL)
        return RILL_ENOMEM;
    memset(r, 0, sizeof(*r));
    r->nreaders = nreaders;
    r->readers = aligned_alloc(CACHELINE, round_up(sizeof(reader_t) * nreaders, CACHELINE));
    r->snap = snapshot_alloc(0);
    if (r->readers == NULL || r->snap == NULL)
        goto fail;
    memset(r->readers, 0, sizeof(reader_t) * nreaders);

    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    r->seed = hash_id((uint32_t)ts.tv_nsec ^ (uint32_t)(uintptr_t)r, (unsigned long)ts.tv_sec);

    if (!ck_hs_init(&r->hs, CK_HS_MODE_SPMC | CK_HS_MODE_OBJECT, hs_hash, hs_compare, &hs_allocator,
                    64, r->seed))
        goto fail;
    if (pthread_mutex_init(&r->lock, NULL) != 0) {
        ck_hs_destroy(&r->hs);
        goto fail;
    }
    ck_epoch_init(&r->epoch);
    ck_epoch_register(&r->epoch, &r->wrec, NULL);
    for (unsigned i = 0; i < nreaders; i++)
        ck_epoch_register(&r->epoch, &r->readers[i].rec, r);
    *out = r;
    return 0;

fail:
    if (r->snap)
        free(deferred_hdr(r->snap));
    free(r->readers);
    free(r);
    return RILL_ENOMEM;
}

void rill__registry_destroy(rill__registry_t *r)
{
    if (r == NULL)
        return;
    /* Through remove, so a release callback that registers something (the last one
     * standing) is released as well. No reader is in a section: each wait is one scan. */
    for (;;) {
        pthread_mutex_lock(&r->lock);
        snapshot_t *s = r->snap;
        uint32_t id = s->n ? s->items[s->n - 1]->id : 0;
        size_t n = s->n;
        pthread_mutex_unlock(&r->lock);
        if (n == 0)
            break;
        rill__registry_remove(r, id);
    }
    pthread_mutex_lock(&r->lock);
    tl_writer = r;
    ck_hs_destroy(&r->hs);
    tl_writer = NULL;
    free(deferred_hdr(r->snap));
    ck_epoch_synchronize_wait(&r->epoch, NULL, NULL);
    ck_epoch_reclaim(&r->wrec);
    pthread_mutex_unlock(&r->lock);
    pthread_mutex_destroy(&r->lock);
    free(r->readers);
    free(r);
}

static rill__comp_t *get_locked(rill__registry_t *r, uint32_t id)
{
    rill__comp_t key = {.id = id};
    return ck_hs_get(&r->hs, hash_id(id, r->seed), &key);
}

int rill__registry_add(rill__registry_t *r, uint32_t id, const char *name,
                       const rill_comp_ops_t *ops, uintptr_t ctx)
{
    return rill__registry_add_flags(r, id, name, ops, ctx, 0);
}

/* Adds the entry e describes (ops, ctx, flags, state_batch, state): the registry owns it
 * from here on, success or not. */
static int add_entry(rill__registry_t *r, uint32_t id, const char *name, const rill__comp_t *e)
{
    if (name == NULL)
        name = "";

    /* One block: the entry, nreaders counter lines, the name. */
    size_t name_len = strlen(name);
    size_t head = round_up(sizeof(rill__comp_t), CACHELINE);
    size_t counters = sizeof(rill__comp_counters_t) * r->nreaders;
    size_t size = round_up(head + counters + name_len + 1, CACHELINE);
    char *block = aligned_alloc(CACHELINE, size);
    if (block == NULL) {
        rill__state_free(e->state);
        rill__state_free(e->standby);
        return RILL_ENOMEM;
    }
    rill__comp_t *c = (rill__comp_t *)block;
    *c = *e;
    c->id = id;
    c->counters = (rill__comp_counters_t *)(block + head);
    memset(c->counters, 0, counters);
    c->name = block + head + counters;
    memcpy(c->name, name, name_len + 1);

    pthread_mutex_lock(&r->lock);
    int rc = 0;
    snapshot_t *s = NULL;
    if (get_locked(r, id) != NULL) {
        rc = RILL_EEXIST;
        goto out;
    }
    s = snapshot_alloc(r->snap->n + 1);
    if (s == NULL) {
        rc = RILL_ENOMEM;
        goto out;
    }
    memcpy(s->items, r->snap->items, r->snap->n * sizeof(s->items[0]));
    s->items[r->snap->n] = c;

    TSAN_RELEASE(c); /* pairs with the acquires in hs_compare and lookup */
    tl_writer = r;
    bool ok = ck_hs_put(&r->hs, hash_id(id, r->seed), c);
    tl_writer = NULL;
    if (!ok) {
        rc = RILL_ENOMEM; /* the map could not grow: nothing was published */
        goto out;
    }
    publish(r, s);
    s = NULL;
    c = NULL;
    reclaim(r);
out:
    pthread_mutex_unlock(&r->lock);
    if (s)
        free(deferred_hdr(s));
    if (c) {
        rill__state_free(c->state);
        rill__state_free(c->standby);
    }
    free(c);
    return rc;
}

int rill__registry_add_flags(rill__registry_t *r, uint32_t id, const char *name,
                             const rill_comp_ops_t *ops, uintptr_t ctx, unsigned flags)
{
    if (r == NULL || ops == NULL || ops->batch == NULL || (flags & ~RILL_COMP_STATELESS))
        return RILL_EINVAL;
    return add_entry(r, id, name, &(rill__comp_t){.ops = *ops, .ctx = ctx, .flags = flags});
}

int rill__registry_add_state(rill__registry_t *r, uint32_t id, const char *name,
                             const rill_state_ops_t *ops, uintptr_t ctx, uint32_t vsize)
{
    if (r == NULL || ops == NULL || ops->batch == NULL || vsize == 0 ||
        vsize > RILL_STATE_VALUE_MAX)
        return RILL_EINVAL;
    rill__state_t *st = rill__state_new(r->nreaders, vsize);
    rill__state_t *sb = rill__state_new(r->nreaders, vsize);
    if (!st || !sb) {
        rill__state_free(st);
        rill__state_free(sb);
        return RILL_ENOMEM;
    }
    rill__comp_t e = {
        .ops = {NULL, ops->flush, ops->release},
        .ctx = ctx,
        .state_batch = ops->batch,
        .state = st,
        .standby = sb,
    };
    return add_entry(r, id, name, &e);
}

static void wait_cb(ck_epoch_t *e, ck_epoch_record_t *rec, void *arg)
{
    (void)e, (void)rec, (void)arg;
    /* A reader is still in an older section: let it run (it may share our CPU). */
    sched_yield();
}

int rill__registry_remove(rill__registry_t *r, uint32_t id)
{
    if (r == NULL)
        return RILL_EINVAL;
    pthread_mutex_lock(&r->lock);
    rill__comp_t *c = get_locked(r, id);
    if (c == NULL) {
        pthread_mutex_unlock(&r->lock);
        return RILL_ENOENT;
    }
    size_t n = r->snap->n;
    snapshot_t *s;
    /* remove cannot fail once id is known; a snapshot one pointer smaller than the current
     * one is a small allocation, so wait for memory rather than report a failure the
     * contract has no room for. */
    while ((s = snapshot_alloc(n - 1)) == NULL) {
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    size_t j = 0;
    for (size_t i = 0; i < n; i++)
        if (r->snap->items[i] != c)
            s->items[j++] = r->snap->items[i];
    assert(j == n - 1);

    rill__comp_t key = {.id = id};
    tl_writer = r;
    void *removed = ck_hs_remove(&r->hs, hash_id(id, r->seed), &key);
    assert(removed == c);
    (void)removed;
    publish(r, s);
    /* ck_hs_remove leaves a tombstone; rebuilding (a same-size resize) drops them so that
     * misses stay short under churn. Failure only means the old map is kept. */
    if (++r->removals > ck_hs_count(&r->hs) + TOMBSTONE_SLACK) {
        if (ck_hs_rebuild(&r->hs))
            r->removals = 0;
    }
    tl_writer = NULL;
    pthread_mutex_unlock(&r->lock);

    /* Every reader section that could have seen c began before this wait. */
    ck_epoch_synchronize_wait(&r->epoch, wait_cb, NULL);
    acquire_readers(r);

    pthread_mutex_lock(&r->lock);
    reclaim(r);
    pthread_mutex_unlock(&r->lock);

    if (c->ops.release)
        c->ops.release(c->ctx);
    rill__state_free(c->state);
    rill__state_free(c->standby);
    free(c);
    return 0;
}

uint64_t rill__registry_state_bytes(rill__registry_t *r)
{
    uint64_t b = 0;
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->snap->n; i++)
        if (r->snap->items[i]->state)
            b += rill__state_bytes(r->snap->items[i]->state) +
                 rill__state_bytes(r->snap->items[i]->standby);
    pthread_mutex_unlock(&r->lock);
    return b;
}

void rill__registry_enter(rill__registry_t *r, unsigned reader)
{
    assert(reader < r->nreaders);
    ck_epoch_begin(&r->readers[reader].rec, NULL);
}

void rill__registry_exit(rill__registry_t *r, unsigned reader)
{
    assert(reader < r->nreaders);
    TSAN_RELEASE(&r->readers[reader]);
    ck_epoch_end(&r->readers[reader].rec, NULL);
}

const rill__comp_t *rill__registry_lookup(rill__registry_t *r, uint32_t id)
{
    rill__comp_t key = {.id = id};
    const rill__comp_t *c = ck_hs_get(&r->hs, hash_id(id, r->seed), &key);
    if (c)
        TSAN_ACQUIRE(c);
    return c;
}

const rill__comp_t *const *rill__registry_list(rill__registry_t *r, size_t *count)
{
    const snapshot_t *s = __atomic_load_n(&r->snap, __ATOMIC_ACQUIRE);
    *count = s->n;
    return s->items;
}

/* 19 bounds, then UINT64_MAX: the last bucket's, and padding to 32 for the search. */
const uint64_t rill__batch_le_ns[32] = {
    1000,       2500,       5000,       10000,      25000,      50000,      100000,     250000,
    500000,     1000000,    2500000,    5000000,    10000000,   25000000,   50000000,   100000000,
    250000000,  500000000,  1000000000, UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX,
    UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX,
};
_Static_assert(RILL_BATCH_BUCKETS == 20, "19 bounds and UINT64_MAX in rill__batch_le_ns");

/* One writer per slot: relaxed load + store, no read-modify-write. */
#define SLOT_ADD(field, v)                                                                         \
    __atomic_store_n(&(field), __atomic_load_n(&(field), __ATOMIC_RELAXED) + (v), __ATOMIC_RELAXED)

void rill__comp_count(const rill__comp_t *comp, unsigned reader, uint64_t msgs, uint64_t errors,
                      uint64_t ns)
{
    rill__comp_counters_t *k = &comp->counters[reader];
    /* The bucket = how many bounds are below ns: five halving steps over the padded table,
     * the same instructions whatever ns is (callgrind's count of the hot path stays
     * independent of the time it measured). */
    unsigned b = 0;
    for (unsigned step = 16; step; step >>= 1)
        if (rill__batch_le_ns[b + step - 1] < ns)
            b += step;
    SLOT_ADD(k->batches, 1);
    SLOT_ADD(k->batch_ns, ns);
    SLOT_ADD(k->buckets[b], 1);
    if (errors)
        SLOT_ADD(k->errors, errors);
    /* msgs last, with release: a reader that sees it (acquire, first) sees this batch's
     * other counts too, so once traffic stops a snapshot's buckets add up to its batches. */
    __atomic_store_n(&k->msgs, __atomic_load_n(&k->msgs, __ATOMIC_RELAXED) + msgs,
                     __ATOMIC_RELEASE);
}

int rill__registry_stats(rill__registry_t *r, uint32_t id, rill_comp_stats_t *out)
{
    if (r == NULL || out == NULL)
        return RILL_EINVAL;
    pthread_mutex_lock(&r->lock); /* keeps the entry alive: remove frees it only after
                                     taking it out under this lock */
    const rill__comp_t *c = get_locked(r, id);
    if (c == NULL) {
        pthread_mutex_unlock(&r->lock);
        return RILL_ENOENT;
    }
    rill_comp_stats_t st;
    memset(&st, 0, sizeof st);
    for (unsigned i = 0; i < r->nreaders; i++) {
        const rill__comp_counters_t *k = &c->counters[i];
        st.msgs += __atomic_load_n(&k->msgs, __ATOMIC_ACQUIRE); /* first: see rill__comp_count */
        st.batches += __atomic_load_n(&k->batches, __ATOMIC_RELAXED);
        st.errors += __atomic_load_n(&k->errors, __ATOMIC_RELAXED);
        st.batch_ns += __atomic_load_n(&k->batch_ns, __ATOMIC_RELAXED);
        for (unsigned b = 0; b < RILL_BATCH_BUCKETS; b++)
            st.batch_buckets[b] += __atomic_load_n(&k->buckets[b], __ATOMIC_RELAXED);
    }
    memcpy(st.name, c->name, strnlen(c->name, sizeof st.name - 1));
    pthread_mutex_unlock(&r->lock);
    *out = st;
    return 0;
}

size_t rill__registry_ids(rill__registry_t *r, uint32_t *ids, size_t max)
{
    if (r == NULL)
        return 0;
    pthread_mutex_lock(&r->lock); /* the snapshot cannot be replaced or freed meanwhile */
    const snapshot_t *s = r->snap;
    size_t n = s->n;
    for (size_t i = 0; i < n && i < max && ids; i++)
        ids[i] = s->items[i]->id;
    pthread_mutex_unlock(&r->lock);
    return n;
}

void rill__registry_wait_readers(rill__registry_t *r)
{
    ck_epoch_synchronize_wait(&r->epoch, wait_cb, NULL);
    acquire_readers(r);
}
