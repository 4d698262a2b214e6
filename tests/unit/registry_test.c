/* core/registry/registry.c: add/lookup/remove and their errors, list snapshots, stats,
 * release exactly once (also from re-entrant release callbacks and destroy), removal
 * waiting for readers, and lookups racing 100k registrations and a 5000-entry growth. */
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "registry/registry.h"

#define LOAD(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)

/* ------------------------------------------------------------------ contexts */

typedef struct tctx {
    uint32_t id;
    int released; /* release calls */
    int poisoned; /* set by release: a reader must never see it inside a section */
    /* re-entrant release: register reg_id with reg_ctx, remove rem_id */
    rill__registry_t *r;
    uint32_t reg_id, rem_id;
    struct tctx *reg_ctx;
    int reg_rc, rem_rc;
} tctx_t;

static int dummy_batch(uintptr_t ctx, unsigned loop, const rill_msg_t *msgs, size_t n,
                       rill_emitter_t *em)
{
    (void)ctx, (void)loop, (void)msgs, (void)em;
    return (int)n;
}

static void release_cb(uintptr_t ctx);

static const rill_comp_ops_t ops = {.batch = dummy_batch, .release = release_cb};

static void release_cb(uintptr_t ctx)
{
    tctx_t *t = (tctx_t *)ctx;
    STORE(&t->poisoned, 1);
    __atomic_add_fetch(&t->released, 1, __ATOMIC_ACQ_REL);
    if (t->reg_id)
        t->reg_rc = rill__registry_add(t->r, t->reg_id, "reentrant", &ops, (uintptr_t)t->reg_ctx);
    if (t->rem_id)
        t->rem_rc = rill__registry_remove(t->r, t->rem_id);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Looks id up in reader section `rd` (a short section of its own). */
static const rill__comp_t *lookup1(rill__registry_t *r, unsigned rd, uint32_t id, uintptr_t *ctx)
{
    rill__registry_enter(r, rd);
    const rill__comp_t *c = rill__registry_lookup(r, id);
    if (c && ctx)
        *ctx = c->ctx;
    rill__registry_exit(r, rd);
    return c;
}

/* ------------------------------------------------------------------ basic */

static int t_new_errors(void)
{
    rill__registry_t *r = (rill__registry_t *)1;
    ASSERT_EQ(rill__registry_new(&r, 0), RILL_EINVAL);
    ASSERT_TRUE(r == NULL);
    ASSERT_EQ(rill__registry_new(NULL, 1), RILL_EINVAL);
    ASSERT_EQ(rill__registry_new(&r, 4), 0);
    ASSERT_TRUE(r != NULL);
    rill__registry_destroy(r);
    rill__registry_destroy(NULL);
    return 0;
}

static int t_add_lookup_remove(void)
{
    rill__registry_t *r;
    ASSERT_EQ(rill__registry_new(&r, 2), 0);
    tctx_t a = {.id = 7}, b = {.id = 7}, c = {.id = 8};

    ASSERT_EQ(rill__registry_add(r, 7, "seven", &ops, (uintptr_t)&a), 0);
    ASSERT_EQ(rill__registry_add(r, 7, "again", &ops, (uintptr_t)&b), RILL_EEXIST);
    ASSERT_EQ(b.released, 0); /* failed add leaves ctx to the caller */

    rill__registry_enter(r, 0);
    const rill__comp_t *e = rill__registry_lookup(r, 7);
    ASSERT_TRUE(e != NULL);
    ASSERT_EQ(e->id, 7);
    ASSERT_TRUE(e->ctx == (uintptr_t)&a); /* the first registration is unchanged */
    ASSERT_STR_EQ(e->name, "seven");
    ASSERT_TRUE(e->ops.batch == dummy_batch);
    ASSERT_TRUE(e->ops.release == release_cb);
    ASSERT_TRUE(e->ops.flush == NULL);
    ASSERT_TRUE(rill__registry_lookup(r, 8) == NULL);
    ASSERT_TRUE(rill__registry_lookup(r, 0) == NULL);
    rill__registry_exit(r, 0);

    /* id 0 and UINT32_MAX are ordinary ids */
    tctx_t z = {.id = 0}, m = {.id = UINT32_MAX};
    ASSERT_EQ(rill__registry_add(r, 0, NULL, &ops, (uintptr_t)&z), 0);
    ASSERT_EQ(rill__registry_add(r, UINT32_MAX, "max", &ops, (uintptr_t)&m), 0);
    uintptr_t got = 0;
    ASSERT_TRUE(lookup1(r, 1, 0, &got) != NULL);
    ASSERT_TRUE(got == (uintptr_t)&z);
    ASSERT_TRUE(lookup1(r, 1, UINT32_MAX, &got) != NULL);
    ASSERT_TRUE(got == (uintptr_t)&m);

    ASSERT_EQ(rill__registry_remove(r, 8), RILL_ENOENT);
    ASSERT_EQ(rill__registry_remove(r, 7), 0);
    ASSERT_EQ(a.released, 1);
    ASSERT_TRUE(lookup1(r, 0, 7, NULL) == NULL);
    ASSERT_EQ(rill__registry_remove(r, 7), RILL_ENOENT);
    ASSERT_EQ(a.released, 1);

    /* the id can be registered again */
    ASSERT_EQ(rill__registry_add(r, 7, "seven-2", &ops, (uintptr_t)&c), 0);
    ASSERT_TRUE(lookup1(r, 0, 7, &got) != NULL);
    ASSERT_TRUE(got == (uintptr_t)&c);

    rill__registry_destroy(r);
    ASSERT_EQ(a.released, 1);
    ASSERT_EQ(b.released, 0);
    ASSERT_EQ(c.released, 1);
    ASSERT_EQ(z.released, 1);
    ASSERT_EQ(m.released, 1);
    return 0;
}

static int t_einval(void)
{
    rill__registry_t *r;
    ASSERT_EQ(rill__registry_new(&r, 1), 0);
    tctx_t a = {.id = 1};
    rill_comp_ops_t no_batch = {.batch = NULL, .release = release_cb};
    ASSERT_EQ(rill__registry_add(r, 1, "x", NULL, (uintptr_t)&a), RILL_EINVAL);
    ASSERT_EQ(rill__registry_add(r, 1, "x", &no_batch, (uintptr_t)&a), RILL_EINVAL);
    ASSERT_EQ(rill__registry_add(NULL, 1, "x", &ops, (uintptr_t)&a), RILL_EINVAL);
    ASSERT_TRUE(lookup1(r, 0, 1, NULL) == NULL);
    rill_comp_stats_t st;
    ASSERT_EQ(rill__registry_stats(r, 1, &st), RILL_ENOENT);
    ASSERT_EQ(rill__registry_stats(r, 1, NULL), RILL_EINVAL);
    rill__registry_destroy(r);
    ASSERT_EQ(a.released, 0);
    return 0;
}

static int t_name_and_ops_copied(void)
{
    rill__registry_t *r;
    ASSERT_EQ(rill__registry_new(&r, 1), 0);
    char name[32];
    strcpy(name, "counter");
    rill_comp_ops_t o = {.batch = dummy_batch, .release = NULL};
    ASSERT_EQ(rill__registry_add(r, 1, name, &o, 11), 0);
    ASSERT_EQ(rill__registry_add(r, 2, NULL, &o, 22), 0);
    memset(name, 'X', sizeof(name) - 1);
    o.batch = NULL;

    rill__registry_enter(r, 0);
    const rill__comp_t *e1 = rill__registry_lookup(r, 1);
    const rill__comp_t *e2 = rill__registry_lookup(r, 2);
    ASSERT_TRUE(e1 && e2);
    ASSERT_TRUE(e1->name != name);
    ASSERT_STR_EQ(e1->name, "counter");
    ASSERT_STR_EQ(e2->name, "");
    ASSERT_TRUE(e1->ops.batch == dummy_batch);
    ASSERT_TRUE(e1->ctx == 11);
    ASSERT_TRUE(e2->ctx == 22);
    rill__registry_exit(r, 0);
    rill__registry_destroy(r); /* release is NULL: nothing to call */
    return 0;
}

static int has_id(const rill__comp_t *const *v, size_t n, uint32_t id)
{
    int k = 0;
    for (size_t i = 0; i < n; i++)
        k += v[i]->id == id;
    return k;
}

typedef struct {
    rill__registry_t *r;
    uint32_t id;
    int rc;
    int done;
} remover_t;

static void *remover(void *arg)
{
    remover_t *m = arg;
    m->rc = rill__registry_remove(m->r, m->id);
    STORE(&m->done, 1);
    return NULL;
}

static int t_list_snapshot(void)
{
    rill__registry_t *r;
    ASSERT_EQ(rill__registry_new(&r, 2), 0);
    size_t n = 99;
    rill__registry_enter(r, 0);
    (void)rill__registry_list(r, &n);
    ASSERT_EQ(n, 0);
    rill__registry_exit(r, 0);

    tctx_t c[5];
    for (uint32_t i = 0; i < 5; i++) {
        c[i] = (tctx_t){.id = 100 + i};
        ASSERT_EQ(rill__registry_add(r, 100 + i, "l", &ops, (uintptr_t)&c[i]), 0);
    }
    ASSERT_EQ(rill__registry_remove(r, 102), 0);

    /* Hold a snapshot in reader 0's section while another thread removes 101: the remove
     * must wait for the section; the old snapshot stays intact and readable. */
    rill__registry_enter(r, 0);
    const rill__comp_t *const *v = rill__registry_list(r, &n);
    ASSERT_EQ(n, 4);
    for (uint32_t id = 100; id < 105; id++)
        ASSERT_EQ(has_id(v, n, id), id == 102 ? 0 : 1);

    remover_t m = {.r = r, .id = 101};
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, remover, &m), 0);
    /* an add from inside a section (a loop registering from a callback) does not wait */
    tctx_t late = {.id = 200};
    ASSERT_EQ(rill__registry_add(r, 200, "late", &ops, (uintptr_t)&late), 0);
    struct timespec ms50 = {0, 50 * 1000000};
    nanosleep(&ms50, NULL);
    ASSERT_EQ(LOAD(&m.done), 0);
    ASSERT_EQ(LOAD(&c[1].released), 0);
    ASSERT_EQ(n, 4); /* the snapshot taken before is unchanged */
    ASSERT_EQ(has_id(v, n, 101), 1);
    ASSERT_EQ(has_id(v, n, 200), 0);
    for (size_t i = 0; i < n; i++) {
        const tctx_t *t = (const tctx_t *)v[i]->ctx;
        ASSERT_EQ(t->id, v[i]->id);
        ASSERT_EQ(LOAD(&t->poisoned), 0);
    }
    rill__registry_exit(r, 0);
    ASSERT_EQ(pthread_join(th, NULL), 0);
    ASSERT_EQ(m.rc, 0);
    ASSERT_EQ(c[1].released, 1);

    rill__registry_enter(r, 1);
    v = rill__registry_list(r, &n);
    ASSERT_EQ(n, 4);
    ASSERT_EQ(has_id(v, n, 100), 1);
    ASSERT_EQ(has_id(v, n, 101), 0);
    ASSERT_EQ(has_id(v, n, 103), 1);
    ASSERT_EQ(has_id(v, n, 104), 1);
    ASSERT_EQ(has_id(v, n, 200), 1);
    rill__registry_exit(r, 1);

    rill__registry_destroy(r);
    for (int i = 0; i < 5; i++)
        ASSERT_EQ(c[i].released, 1);
    ASSERT_EQ(late.released, 1);
    return 0;
}

static int t_stats(void)
{
    rill__registry_t *r;
    ASSERT_EQ(rill__registry_new(&r, 3), 0);
    ASSERT_EQ(rill__registry_add(r, 5, "s", &(rill_comp_ops_t){.batch = dummy_batch}, 0), 0);
    ASSERT_EQ(rill__registry_add(r, 6, "t", &(rill_comp_ops_t){.batch = dummy_batch}, 0), 0);
    for (unsigned rd = 0; rd < 3; rd++) {
        rill__registry_enter(r, rd);
        const rill__comp_t *c = rill__registry_lookup(r, 5);
        ASSERT_TRUE(c != NULL);
        for (unsigned k = 0; k <= rd; k++)
            rill__comp_count(c, rd, 10 * (rd + 1), rd, 1000 * (rd + 1));
        rill__registry_exit(r, rd);
    }
    rill_comp_stats_t st;
    ASSERT_EQ(rill__registry_stats(r, 5, &st), 0);
    /* reader 0: 1 batch of 10; reader 1: 2 of 20 (1 error each); reader 2: 3 of 30 (2 each) */
    ASSERT_U64_EQ(st.batches, 1 + 2 + 3);
    ASSERT_U64_EQ(st.msgs, 10 + 2 * 20 + 3 * 30);
    ASSERT_U64_EQ(st.errors, 0 + 2 * 1 + 3 * 2);
    ASSERT_EQ(rill__registry_stats(r, 6, &st), 0);
    ASSERT_U64_EQ(st.batches, 0);
    ASSERT_U64_EQ(st.msgs, 0);
    ASSERT_U64_EQ(st.errors, 0);
    ASSERT_EQ(rill__registry_stats(r, 7, &st), RILL_ENOENT);
    ASSERT_EQ(rill__registry_remove(r, 5), 0);
    ASSERT_EQ(rill__registry_stats(r, 5, &st), RILL_ENOENT);
    /* a new registration under the same id starts from zero */
    ASSERT_EQ(rill__registry_add(r, 5, "s2", &(rill_comp_ops_t){.batch = dummy_batch}, 0), 0);
    ASSERT_EQ(rill__registry_stats(r, 5, &st), 0);
    ASSERT_U64_EQ(st.msgs, 0);
    rill__registry_destroy(r);
    return 0;
}

/* ------------------------------------------------------------------ release */

static int t_release_once(void)
{
    rill__registry_t *r;
    ASSERT_EQ(rill__registry_new(&r, 1), 0);
    tctx_t c[4];
    for (uint32_t i = 0; i < 4; i++) {
        c[i] = (tctx_t){.id = i + 1};
        ASSERT_EQ(rill__registry_add(r, i + 1, "r", &ops, (uintptr_t)&c[i]), 0);
    }
    ASSERT_EQ(rill__registry_remove(r, 2), 0);
    ASSERT_EQ(c[1].released, 1);
    ASSERT_EQ(c[0].released + c[2].released + c[3].released, 0);
    ASSERT_EQ(rill__registry_remove(r, 2), RILL_ENOENT);
    ASSERT_EQ(c[1].released, 1);
    rill__registry_destroy(r);
    for (int i = 0; i < 4; i++)
        ASSERT_EQ(c[i].released, 1);
    return 0;
}

static int t_release_reenters(void)
{
    rill__registry_t *r;
    ASSERT_EQ(rill__registry_new(&r, 1), 0);
    tctx_t b = {.id = 20}, c = {.id = 30};
    tctx_t a = {
        .id = 10, .r = r, .reg_id = 20, .reg_ctx = &b, .rem_id = 30, .reg_rc = 1, .rem_rc = 1};
    ASSERT_EQ(rill__registry_add(r, 10, "a", &ops, (uintptr_t)&a), 0);
    ASSERT_EQ(rill__registry_add(r, 30, "c", &ops, (uintptr_t)&c), 0);

    ASSERT_EQ(rill__registry_remove(r, 10), 0); /* release registers 20 and removes 30 */
    ASSERT_EQ(a.released, 1);
    ASSERT_EQ(a.reg_rc, 0);
    ASSERT_EQ(a.rem_rc, 0);
    ASSERT_EQ(c.released, 1);
    uintptr_t got = 0;
    ASSERT_TRUE(lookup1(r, 0, 20, &got) != NULL);
    ASSERT_TRUE(got == (uintptr_t)&b);
    ASSERT_TRUE(lookup1(r, 0, 30, NULL) == NULL);
    ASSERT_TRUE(lookup1(r, 0, 10, NULL) == NULL);

    rill__registry_destroy(r);
    ASSERT_EQ(a.released, 1);
    ASSERT_EQ(b.released, 1);
    ASSERT_EQ(c.released, 1);
    return 0;
}

/* A release callback run by destroy registers another id: destroy releases that one too. */
static int t_destroy_release_reenters(void)
{
    rill__registry_t *r;
    ASSERT_EQ(rill__registry_new(&r, 2), 0);
    tctx_t b = {.id = 2};
    tctx_t a = {.id = 1, .r = r, .reg_id = 2, .reg_ctx = &b, .reg_rc = 1};
    ASSERT_EQ(rill__registry_add(r, 1, "a", &ops, (uintptr_t)&a), 0);
    rill__registry_destroy(r);
    ASSERT_EQ(a.released, 1);
    ASSERT_EQ(a.reg_rc, 0);
    ASSERT_EQ(b.released, 1);
    return 0;
}

/* ------------------------------------------------------------------ concurrency */

#define NSTABLE 8
#define STABLE_BASE 1u
#define NCHURN 64
#define CHURN_BASE 1000u
#define CYCLES 100000

typedef struct rthread {
    rill__registry_t *r;
    unsigned idx;
    int *stop;
    uint32_t id_lo, id_hi; /* churn range looked up */
    uint32_t stable_hi;    /* stable ids STABLE_BASE..stable_hi-1 must always be found */
    int grow_only;         /* list length never shrinks */
    uint64_t iters, hits;
    int failed;
    char why[200];
} rthread_t;

#define RFAIL(t, ...)                                                                              \
    do {                                                                                           \
        snprintf((t)->why, sizeof((t)->why), __VA_ARGS__);                                         \
        (t)->failed = 1;                                                                           \
        goto out;                                                                                  \
    } while (0)

static void *reader_main(void *arg)
{
    rthread_t *t = arg;
    uint64_t x = 0x9e3779b97f4a7c15ULL * (t->idx + 1);
    size_t last_n = 0;
    rill__registry_t *r = t->r;
    while (!LOAD(t->stop)) {
        rill__registry_enter(r, t->idx);
        for (uint32_t s = STABLE_BASE; s < t->stable_hi; s++) {
            const rill__comp_t *c = rill__registry_lookup(r, s);
            if (c == NULL)
                RFAIL(t, "stable id %u not found", s);
            const tctx_t *k = (const tctx_t *)c->ctx;
            if (c->id != s || k->id != s)
                RFAIL(t, "stable id %u: entry %u ctx %u", s, c->id, k->id);
            if (LOAD(&k->poisoned))
                RFAIL(t, "stable id %u released", s);
            rill__comp_count(c, t->idx, 1, 0, 0);
        }
        const rill__comp_t *seen[4];
        for (int j = 0; j < 4; j++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            uint32_t id = t->id_lo + (uint32_t)(x % (t->id_hi - t->id_lo));
            const rill__comp_t *c = seen[j] = rill__registry_lookup(r, id);
            if (c == NULL)
                continue;
            t->hits++;
            const tctx_t *k = (const tctx_t *)c->ctx;
            if (c->id != id || k->id != id)
                RFAIL(t, "id %u: entry %u ctx %u", id, c->id, k->id);
            if (c->name[0] != 'c')
                RFAIL(t, "id %u: bad name", id);
            if (LOAD(&k->poisoned))
                RFAIL(t, "id %u: released entry observed", id);
        }
        if ((t->iters & 15) == 0) {
            size_t n;
            const rill__comp_t *const *v = rill__registry_list(r, &n);
            unsigned stable = 0;
            for (size_t i = 0; i < n; i++) {
                const tctx_t *k = (const tctx_t *)v[i]->ctx;
                if (k->id != v[i]->id)
                    RFAIL(t, "list: entry %u ctx %u", v[i]->id, k->id);
                if (LOAD(&k->poisoned))
                    RFAIL(t, "list: released entry %u", v[i]->id);
                stable += v[i]->id >= STABLE_BASE && v[i]->id < t->stable_hi;
            }
            if (stable != t->stable_hi - STABLE_BASE)
                RFAIL(t, "list holds %u stable ids", stable);
            if (t->grow_only && n < last_n)
                RFAIL(t, "list shrank %zu -> %zu", last_n, n);
            last_n = n;
        }
        /* still held at the end of the section: not released */
        for (int j = 0; j < 4; j++)
            if (seen[j] && LOAD(&((const tctx_t *)seen[j]->ctx)->poisoned))
                RFAIL(t, "id %u released while held", seen[j]->id);
        rill__registry_exit(r, t->idx);
        t->iters++;
        /* Loop threads spend time outside sections (in io_uring waits); on a small
         * machine this also lets the writer run. */
        if ((t->iters & 15) == 0)
            sched_yield();
        continue;
    out:
        rill__registry_exit(r, t->idx);
        break;
    }
    return NULL;
}

static int t_stress_churn(void)
{
    rill__registry_t *r;
    ASSERT_EQ(rill__registry_new(&r, 3), 0); /* readers 0, 1: threads; 2: this thread */
    size_t npool = CYCLES + NCHURN + NSTABLE;
    tctx_t *pool = calloc(npool, sizeof(*pool));
    ASSERT_TRUE(pool != NULL);
    size_t used = 0;
    for (uint32_t s = STABLE_BASE; s < STABLE_BASE + NSTABLE; s++) {
        tctx_t *k = &pool[used++];
        k->id = s;
        ASSERT_EQ(rill__registry_add(r, s, "stable", &ops, (uintptr_t)k), 0);
    }

    int stop = 0;
    rthread_t rt[2];
    pthread_t th[2];
    for (unsigned i = 0; i < 2; i++) {
        rt[i] = (rthread_t){.r = r,
                            .idx = i,
                            .stop = &stop,
                            .id_lo = CHURN_BASE,
                            .id_hi = CHURN_BASE + NCHURN,
                            .stable_hi = STABLE_BASE + NSTABLE};
        ASSERT_EQ(pthread_create(&th[i], NULL, reader_main, &rt[i]), 0);
    }

    tctx_t *present[NCHURN] = {0};
    uint64_t x = 88172645463325252ULL;
    unsigned adds = 0, removes = 0;
    double t0 = now_s();
    int fail_line = 0;
    for (unsigned cyc = 0; cyc < CYCLES && !fail_line; cyc++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        unsigned k = (unsigned)(x % NCHURN);
        uint32_t id = CHURN_BASE + k;
        if (present[k]) {
            if (rill__registry_remove(r, id) != 0)
                fail_line = __LINE__;
            if (LOAD(&present[k]->released) != 1)
                fail_line = __LINE__;
            present[k] = NULL;
            removes++;
            if ((cyc & 7) == 0 && rill__registry_remove(r, id) != RILL_ENOENT)
                fail_line = __LINE__;
        }
        tctx_t *c = &pool[used++];
        c->id = id;
        char name[16];
        snprintf(name, sizeof name, "c%u", id);
        if (rill__registry_add(r, id, name, &ops, (uintptr_t)c) != 0)
            fail_line = __LINE__;
        present[k] = c;
        adds++;
        if ((cyc & 7) == 1) {
            tctx_t dup = {.id = id};
            if (rill__registry_add(r, id, "cdup", &ops, (uintptr_t)&dup) != RILL_EEXIST)
                fail_line = __LINE__;
            uintptr_t got = 0;
            if (lookup1(r, 2, id, &got) == NULL || got != (uintptr_t)c)
                fail_line = __LINE__;
        }
        if ((cyc & 1023) == 0 && (LOAD(&rt[0].failed) || LOAD(&rt[1].failed)))
            break;
    }
    double dt = now_s() - t0;
    STORE(&stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    fprintf(stderr,
            "  %u adds, %u removes in %.2f s; reader iterations %llu + %llu (hits %llu + %llu)\n",
            adds, removes, dt, (unsigned long long)rt[0].iters, (unsigned long long)rt[1].iters,
            (unsigned long long)rt[0].hits, (unsigned long long)rt[1].hits);
    for (int i = 0; i < 2; i++)
        if (rt[i].failed)
            T_FAIL_AT_("reader %d: %s", i, rt[i].why);
    if (fail_line)
        T_FAIL_AT_("writer check at line %d failed", fail_line);
    ASSERT_EQ(adds, CYCLES);
    ASSERT_GT(rt[0].iters, 0);
    ASSERT_GT(rt[1].iters, 0);
    ASSERT_GT(rt[0].hits + rt[1].hits, 0);

    /* each completed reader iteration counted one batch of one message per stable id */
    for (uint32_t s = STABLE_BASE; s < STABLE_BASE + NSTABLE; s++) {
        rill_comp_stats_t st;
        ASSERT_EQ(rill__registry_stats(r, s, &st), 0);
        ASSERT_U64_EQ(st.msgs, rt[0].iters + rt[1].iters);
        ASSERT_U64_EQ(st.batches, rt[0].iters + rt[1].iters);
        ASSERT_U64_EQ(st.errors, 0);
    }
    for (size_t i = 0; i < used; i++) {
        int live = i < NSTABLE;
        for (unsigned k = 0; k < NCHURN; k++)
            live |= present[k] == &pool[i];
        ASSERT_EQ(pool[i].released, live ? 0 : 1);
    }
    rill__registry_destroy(r);
    for (size_t i = 0; i < used; i++)
        ASSERT_EQ(pool[i].released, 1);
    free(pool);
    return 0;
}

#define NGROW 5000
#define GROW_STABLE 16

static int t_growth(void)
{
    rill__registry_t *r;
    ASSERT_EQ(rill__registry_new(&r, 3), 0);
    tctx_t *c = calloc(NGROW + 1, sizeof(*c));
    ASSERT_TRUE(c != NULL);
    for (uint32_t id = 1; id <= GROW_STABLE; id++) {
        c[id].id = id;
        ASSERT_EQ(rill__registry_add(r, id, "c-stable", &ops, (uintptr_t)&c[id]), 0);
    }
    int stop = 0;
    rthread_t rt[2];
    pthread_t th[2];
    for (unsigned i = 0; i < 2; i++) {
        rt[i] = (rthread_t){.r = r,
                            .idx = i,
                            .stop = &stop,
                            .id_lo = 1,
                            .id_hi = NGROW + 1,
                            .stable_hi = 1 + GROW_STABLE,
                            .grow_only = 1};
        ASSERT_EQ(pthread_create(&th[i], NULL, reader_main, &rt[i]), 0);
    }
    int fail_line = 0;
    double t0 = now_s();
    for (uint32_t id = GROW_STABLE + 1; id <= NGROW && !fail_line; id++) {
        c[id].id = id;
        if (rill__registry_add(r, id, "c", &ops, (uintptr_t)&c[id]) != 0)
            fail_line = __LINE__;
        uintptr_t got = 0;
        if (lookup1(r, 2, id, &got) == NULL || got != (uintptr_t)&c[id])
            fail_line = __LINE__;
        if ((id & 31) == 0)
            sched_yield(); /* let the readers see intermediate maps */
    }
    double dt = now_s() - t0;
    STORE(&stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    fprintf(stderr, "  %d adds in %.2f s; reader iterations %llu + %llu\n", NGROW - GROW_STABLE, dt,
            (unsigned long long)rt[0].iters, (unsigned long long)rt[1].iters);
    for (int i = 0; i < 2; i++)
        if (rt[i].failed)
            T_FAIL_AT_("reader %d: %s", i, rt[i].why);
    if (fail_line)
        T_FAIL_AT_("writer check at line %d failed", fail_line);

    rill__registry_enter(r, 0);
    size_t n;
    const rill__comp_t *const *v = rill__registry_list(r, &n);
    ASSERT_EQ(n, NGROW);
    for (size_t i = 0; i < n; i++)
        ASSERT_EQ(v[i]->id, i + 1); /* insertion order */
    for (uint32_t id = 1; id <= NGROW; id++) {
        const rill__comp_t *e = rill__registry_lookup(r, id);
        ASSERT_TRUE(e != NULL);
        ASSERT_TRUE(e->ctx == (uintptr_t)&c[id]);
    }
    ASSERT_TRUE(rill__registry_lookup(r, NGROW + 1) == NULL);
    rill__registry_exit(r, 0);

    for (uint32_t id = 2; id <= NGROW; id += 2)
        ASSERT_EQ(rill__registry_remove(r, id), 0);
    for (uint32_t id = 2; id <= NGROW; id += 2)
        ASSERT_EQ(rill__registry_remove(r, id), RILL_ENOENT);
    rill__registry_enter(r, 1);
    v = rill__registry_list(r, &n);
    ASSERT_EQ(n, NGROW / 2);
    for (size_t i = 0; i < n; i++)
        ASSERT_EQ(v[i]->id, 2 * i + 1);
    for (uint32_t id = 1; id <= NGROW; id++)
        ASSERT_EQ(rill__registry_lookup(r, id) != NULL, id & 1);
    rill__registry_exit(r, 1);
    for (uint32_t id = 1; id <= NGROW; id++)
        ASSERT_EQ(c[id].released, (id & 1) ? 0 : 1);
    rill__registry_destroy(r);
    for (uint32_t id = 1; id <= NGROW; id++)
        ASSERT_EQ(c[id].released, 1);
    free(c);
    return 0;
}

int main(int argc, char **argv)
{
    static const t_case_t cases[] = {
        {"new_errors", t_new_errors},
        {"add_lookup_remove", t_add_lookup_remove},
        {"einval", t_einval},
        {"name_and_ops_copied", t_name_and_ops_copied},
        {"list_snapshot", t_list_snapshot},
        {"stats", t_stats},
        {"release_once", t_release_once},
        {"release_reenters", t_release_reenters},
        {"destroy_release_reenters", t_destroy_release_reenters},
        {"stress_churn", t_stress_churn},
        {"growth", t_growth},
        {NULL, NULL},
    };
    return t_run("registry", cases, argc, argv);
}
