/* shim.c — C side of the Go binding (see shim.h). The batch and flush callbacks make one
 * C->Go call each, then replay what Go recorded in the loop's scratch buffer, so that a
 * Go emit costs a copy into C memory instead of a Go->C call. */
#include "shim.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "_cgo_export.h"

rillgo_scratch_t *rillgo_scratch_new(unsigned n, uint32_t caprec, uint32_t cap)
{
    rillgo_scratch_t *s = calloc(n, sizeof *s);
    if (!s)
        return NULL;
    for (unsigned i = 0; i < n; i++) {
        s[i].recs = malloc((size_t)caprec * sizeof *s[i].recs);
        s[i].data = malloc(cap);
        s[i].caprec = caprec;
        s[i].cap = cap;
        s[i].scan_keys = malloc(RILLGO_SCAN * sizeof *s[i].scan_keys);
        s[i].scan_values = malloc(RILLGO_SCAN * sizeof *s[i].scan_values);
        if (!s[i].recs || !s[i].data || !s[i].scan_keys || !s[i].scan_values) {
            rillgo_scratch_free(s, n);
            return NULL;
        }
    }
    return s;
}

void rillgo_scratch_free(rillgo_scratch_t *s, unsigned n)
{
    if (!s)
        return;
    for (unsigned i = 0; i < n; i++) {
        free(s[i].recs);
        free(s[i].data);
        free(s[i].scan_keys);
        free(s[i].scan_values);
    }
    free(s);
}

int rillgo_emit(rill_emitter_t *em, int32_t sink, uint32_t comp_id, uint64_t key, const void *data,
                size_t len)
{
    if (sink >= 0)
        return rill_emit_sink(em, sink, comp_id, key, data, len);
    return rill_emit_comp(em, comp_id, key, data, len);
}

int rillgo_replay(rillgo_scratch_t *s, rill_emitter_t *em)
{
    int first = 0;
    for (uint32_t i = 0; i < s->nrec; i++) {
        const rillgo_rec_t *r = &s->recs[i];
        int rc =
            rillgo_emit(em, r->sink, r->comp_id, r->key, r->len ? s->data + r->off : NULL, r->len);
        if (rc < 0 && rc != RILL_EFULL && first == 0)
            first = rc;
    }
    s->nrec = 0;
    return first;
}

/* Go returns the loop's scratch with rc and the recorded emits (NULL: stale handle). */
static int shim_batch(uintptr_t ctx, unsigned loop, const rill_msg_t *msgs, size_t n,
                      rill_emitter_t *em)
{
    rillgo_scratch_t *s = rillgoBatch(ctx, loop, (rill_msg_t *)msgs, n, em);
    if (!s)
        return RILL_EINVAL;
    int rc = s->rc;
    int rrc = s->nrec ? rillgo_replay(s, em) : 0;
    return rc < 0 ? rc : rrc;
}

/* The same for a computation with managed state: one C->Go call with the batch and its
 * values. */
static int shim_state_batch(uintptr_t ctx, unsigned loop, const rill_msg_t *msgs,
                            void *const *values, size_t n, rill_emitter_t *em)
{
    rillgo_scratch_t *s = rillgoBatchState(ctx, loop, (rill_msg_t *)msgs, (void **)values, n, em);
    if (!s)
        return RILL_EINVAL;
    int rc = s->rc;
    int rrc = s->nrec ? rillgo_replay(s, em) : 0;
    return rc < 0 ? rc : rrc;
}

static void shim_flush(uintptr_t ctx, unsigned loop, rill_emitter_t *em)
{
    rillgo_scratch_t *s = rillgoFlush(ctx, loop, em);
    if (s && s->nrec)
        rillgo_replay(s, em);
}

static void shim_release(uintptr_t ctx)
{
    rillgoRelease(ctx);
}

static const rill_comp_ops_t ops_flush = {shim_batch, shim_flush, shim_release};
static const rill_comp_ops_t ops_plain = {shim_batch, NULL, shim_release};

int rillgo_register(rill_worker_t *w, uint32_t id, const char *name, uintptr_t h, int with_flush,
                    unsigned flags)
{
    return rill_comp_register_flags(w, id, name, with_flush ? &ops_flush : &ops_plain, h, flags);
}

static const rill_state_ops_t state_ops_flush = {shim_state_batch, shim_flush, shim_release};
static const rill_state_ops_t state_ops_plain = {shim_state_batch, NULL, shim_release};

int rillgo_register_state(rill_worker_t *w, uint32_t id, const char *name, uintptr_t h,
                          int with_flush, uint32_t vsize)
{
    return rill_comp_register_state(w, id, name, with_flush ? &state_ops_flush : &state_ops_plain,
                                    h, vsize);
}

/* ---------------------------------------------------------------- benchmark hook */

struct bench_args {
    uintptr_t h;
    const rill_msg_t *msgs;
    size_t n;
    int64_t iters;
    int64_t ns;
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *bench_run(void *p)
{
    struct bench_args *a = p;
    /* em = NULL: the benchmark computation must not emit. */
    shim_batch(a->h, 0, a->msgs, a->n, NULL); /* warm: the first call binds the thread */
    int64_t t0 = now_ns();
    for (int64_t i = 0; i < a->iters; i++)
        shim_batch(a->h, 0, a->msgs, a->n, NULL);
    a->ns = now_ns() - t0;
    return NULL;
}

int64_t rillgo_bench_calls(uintptr_t h, const rill_msg_t *msgs, size_t n, int64_t iters,
                           int new_thread)
{
    struct bench_args a = {h, msgs, n, iters, 0};
    if (!new_thread) {
        bench_run(&a);
        return a.ns;
    }
    pthread_t t;
    if (pthread_create(&t, NULL, bench_run, &a) != 0)
        return -1;
    pthread_join(t, NULL);
    return a.ns;
}

int rillgo_worker_new(rill_worker_t **out, const rill_config_t *cfg, char *detail, size_t len)
{
    int rc = rill_worker_new(out, cfg);
    snprintf(detail, len, "%s", rc < 0 ? rill_last_error() : "");
    return rc;
}

static void shim_log(uintptr_t ctx, rill_log_level_t level, const char *msg)
{
    (void)ctx;
    rillgoLog((int)level, (char *)msg);
}

void rillgo_set_log_callback(void)
{
    rill_set_log_callback(shim_log, 0);
}
