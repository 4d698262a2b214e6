/* rill_worker_*, rill_comp_*: lifecycle of a worker and its loops. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "cluster/cluster.h"
#include "loop/loop.h"
#include "metrics/metrics.h"
#include "net/listen.h"
#include "util/log.h"
#include "util/sha256.h"
#include "util/stat.h"
#include "worker_internal.h"

/* Handoff ring per ordered loop pair: large enough to absorb a few iterations of one
 * loop's traffic, shrinking with the thread count so that n^2 rings stay affordable. */
static size_t handoff_ring_size(unsigned n)
{
    size_t total = (size_t)32 << 20;
    size_t each = total / ((size_t)n * n);
    return each < ((size_t)256 << 10) ? ((size_t)256 << 10)
           : each > ((size_t)4 << 20) ? ((size_t)4 << 20)
                                      : each;
}

/* The cluster's notification: every loop looks at the new view (or the departure). */
static void wake_loops(void *ctx)
{
    rill_worker_t *w = ctx;
    for (unsigned i = 0; i < w->nloops; i++)
        rill__loop_wake(w->loops[i]);
}

static void worker_free(rill_worker_t *w)
{
    if (w->metrics)
        rill__metrics_stop(w->metrics);
    rill__cluster_free(w->cluster);
    explicit_bzero(w->cfg.auth, sizeof w->cfg.auth);
    explicit_bzero(w->peer_key, sizeof w->peer_key);
    rill__worker_close_listeners(w);
    if (w->loops)
        for (unsigned i = 0; i < w->nloops; i++)
            rill__loop_free(w->loops[i]);
    free(w->loops);
    if (w->rings)
        for (unsigned i = 0; i < w->nloops * w->nloops; i++)
            rill__spsc_free(&w->rings[i]);
    free(w->rings);
    if (w->reg)
        rill__registry_destroy(w->reg);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    free(w);
}

unsigned rill_features(void)
{
    return rill__cluster_supported() ? RILL_FEATURE_CLUSTER : 0u;
}

static int worker_new(rill_worker_t **out, const rill_config_t *cfg);

int rill_worker_new(rill_worker_t **out, const rill_config_t *cfg)
{
    rill__last_error_begin();
    int rc = worker_new(out, cfg);
    rill__last_error_end();
    return rc;
}

static int worker_new(rill_worker_t **out, const rill_config_t *cfg)
{
    if (!out)
        return RILL_EINVAL;
    *out = NULL;
    if (!cfg)
        return RILL_EINVAL;
    rill_worker_t *w = calloc(1, sizeof *w);
    if (!w)
        return RILL_ENOMEM;
    w->cfg = *cfg;
    if (!cfg->has_credit_pool)
        w->cfg.source_credit_pool = (uint64_t)cfg->source_credit * RILL_DEFAULT_CREDIT_POOL_CONNS;
    w->nloops = cfg->threads;
    /* A sink buffer must hold the largest frame with room to spare, whatever order the
     * two settings were made in. */
    size_t min_sink = 2 * rill__frame_size(cfg->max_frame);
    if (w->cfg.sink_buffer < min_sink)
        w->cfg.sink_buffer = min_sink;
    /* The carry budget must let one largest frame be carried whole. */
    if (w->cfg.carry_budget < 4 + (size_t)cfg->max_frame)
        w->cfg.carry_budget = 4 + (size_t)cfg->max_frame;
    /* Acked streams need ids that a receiver does not confuse with another worker's:
     * random per worker, stable for its life (its reconnects resume the same streams). */
    if (getrandom(&w->stream_seed, sizeof w->stream_seed, GRND_NONBLOCK) != sizeof w->stream_seed)
        w->stream_seed = (uint64_t)getpid() << 32 ^ (uint64_t)time(NULL) ^ (uintptr_t)w;
    if (cfg->clustered && cfg->auth[0]) {
        static const char label[] = "rill peer key 1";
        rill__sha256_t h;
        rill__sha256_init(&h);
        rill__sha256_update(&h, label, sizeof label - 1);
        rill__sha256_update(&h, cfg->auth, strlen(cfg->auth));
        rill__sha256_final(&h, w->peer_key);
        w->has_peer_key = 1;
    }
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    for (unsigned li = 0; li < RILL_MAX_LISTENERS; li++)
        w->listen_fds[li] = -1;

    w->peer_listener = -1;
    int rc = rill__registry_new(&w->reg, w->nloops);
    if (rc < 0)
        goto fail;
    if (cfg->clustered) {
        /* Members forward frames to a listener of their own; its connections are marked
         * so that their frames are never forwarded again. */
        if (w->cfg.nlisteners == RILL_MAX_LISTENERS) {
            rc = RILL_ERANGE;
            goto fail;
        }
        rill__listener_cfg_t *pl = &w->cfg.listeners[w->cfg.nlisteners];
        memset(pl, 0, sizeof *pl);
        pl->addr = cfg->peer_addr;
        pl->framing = RILL_FRAMING_RILL;
        pl->peer = 1;
        w->peer_listener = (int)w->cfg.nlisteners++;
    }

    /* One socket per listener, without SO_REUSEPORT: a SO_REUSEPORT group admits any
     * socket of the same user, so a second process would join it silently and take part
     * of the traffic. Without it, a port in use fails here. */
    for (unsigned li = 0; li < w->cfg.nlisteners; li++) {
        const rill__addr_t *a = &w->cfg.listeners[li].addr;
        if ((rc = rill__listen_socket(a, 4096)) < 0) {
            char text[96];
            rill__addr_format(a, text, sizeof text);
            rill__log_error("cannot listen on %s%s: %s", text,
                            (int)li == w->peer_listener ? " (peer listener)" : "",
                            rill_strerror(rc));
            goto fail;
        }
        w->listen_fds[li] = rc;
        if ((rc = rill__socket_port(rc)) < 0)
            goto fail;
        w->ports[li] = rc;
    }

    w->rings = calloc((size_t)w->nloops * w->nloops, sizeof *w->rings);
    w->loops = calloc(w->nloops, sizeof *w->loops);
    if (!w->rings || !w->loops) {
        rc = RILL_ENOMEM;
        goto fail;
    }
    size_t ring_size = handoff_ring_size(w->nloops);
    for (unsigned s = 0; s < w->nloops; s++)
        for (unsigned d = 0; d < w->nloops; d++)
            if (s != d && (rc = rill__spsc_init(&w->rings[s * w->nloops + d], ring_size)) < 0)
                goto fail;
    for (unsigned i = 0; i < w->nloops; i++)
        if ((rc = rill__loop_new(&w->loops[i], w, i)) < 0)
            goto fail;
    if (cfg->clustered &&
        (rc = rill__cluster_new(&w->cluster, w, w->ports[w->peer_listener], wake_loops, w)) < 0)
        goto fail;
    if (cfg->has_metrics && (rc = rill__metrics_start(&w->metrics, w, &cfg->metrics_addr)) < 0) {
        char text[96];
        rill__addr_format(&cfg->metrics_addr, text, sizeof text);
        rill__log_error("cannot serve metrics on %s: %s", text, rill_strerror(rc));
        goto fail;
    }
    *out = w;
    return 0;
fail:
    worker_free(w);
    return rc;
}

void rill__worker_close_listeners(rill_worker_t *w)
{
    for (unsigned li = 0; li < RILL_MAX_LISTENERS; li++) {
        if (w->listen_fds[li] >= 0)
            close(w->listen_fds[li]);
        w->listen_fds[li] = -1;
    }
}

unsigned rill_worker_threads(const rill_worker_t *w)
{
    return w ? w->nloops : 0;
}

int rill_worker_metrics_port(const rill_worker_t *w)
{
    return w && w->metrics ? rill__metrics_port(w->metrics) : RILL_EINVAL;
}

int rill_worker_listener_port(const rill_worker_t *w, unsigned i)
{
    if (!w || i >= w->cfg.nlisteners || (int)i == w->peer_listener)
        return RILL_EINVAL;
    return w->ports[i];
}

static int not_ready(char *why, size_t whylen, const char *reason)
{
    if (why && whylen)
        snprintf(why, whylen, "%s", reason);
    return 0;
}

int rill_worker_ready(rill_worker_t *w, char *why, size_t whylen)
{
    if (!w)
        return RILL_EINVAL;
    if (atomic_load(&w->stopping))
        return not_ready(why, whylen, "stopping");
    pthread_mutex_lock(&w->lock);
    int running = 1, failed = w->loop_error || w->start_error;
    for (unsigned i = 0; i < w->nloops; i++)
        running &= w->loop_state[i] == LOOP_RUNNING;
    if (w->started && w->ready < w->nloops)
        running = 0; /* a loop's ring is still being set up */
    pthread_mutex_unlock(&w->lock);
    if (failed)
        return not_ready(why, whylen, "a loop failed");
    if (!running)
        return not_ready(why, whylen, "loops not running");
    if (w->cfg.nsinks) {
        rill_stats_t st;
        rill_worker_stats(w, &st, sizeof st);
        if (st.sinks_up < (uint64_t)w->cfg.nsinks * w->nloops)
            return not_ready(why, whylen, "a sink is not connected");
    }
    if (w->cluster) {
        rill_view_t *v = rill__cluster_view_copy(w->cluster);
        int have = v != NULL, self = v ? rill_view_self(v) : -1;
        rill_view_destroy(v);
        if (self < 0)
            return not_ready(why, whylen,
                             have ? "not a member of the cluster view" : "no cluster view yet");
    }
    if (why && whylen)
        why[0] = '\0';
    return 1;
}

/* A started loop's ring exists, or could not be created (rc < 0). */
static void loop_ready(void *ctx, int rc)
{
    rill_worker_t *w = ctx;
    pthread_mutex_lock(&w->lock);
    w->ready++;
    if (rc < 0 && !w->start_error)
        w->start_error = rc;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

/* Runs loop i; the caller has marked it LOOP_RUNNING. */
static int run_marked(rill_worker_t *w, unsigned i, int started)
{
    int rc = rill__loop_run(w->loops[i], started ? loop_ready : NULL, w);
    pthread_mutex_lock(&w->lock);
    w->loop_state[i] = LOOP_DONE;
    w->exited++;
    if (rc < 0 && !w->loop_error)
        w->loop_error = rc;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    if (rc < 0)
        rill_worker_shutdown(w); /* a loop that cannot run must not leave the others hanging */
    return rc;
}

typedef struct thread_arg {
    rill_worker_t *w;
    unsigned i;
} thread_arg_t;

static void *thread_main(void *p)
{
    thread_arg_t a = *(thread_arg_t *)p;
    free(p);
    run_marked(a.w, a.i, 1);
    return NULL;
}

/* Loop i will never run: it counts as exited and drained, so that the running ones need
 * not wait for it. Under the lock. */
static void retire_loop(rill_worker_t *w, unsigned i)
{
    w->loop_state[i] = LOOP_DONE;
    w->exited++;
    atomic_fetch_add(&w->drain_closed, 1);
    atomic_fetch_add(&w->drain_flushed, 1);
}

/* A start failed after made threads were created: stop them and wait for them, so that
 * no thread is left running. Called with the lock held; returns with it released. */
static void abandon_start(rill_worker_t *w, unsigned made)
{
    for (unsigned i = made; i < w->nloops; i++)
        retire_loop(w, i); /* no thread was made for them */
    w->started = made;
    pthread_mutex_unlock(&w->lock);
    rill_worker_shutdown(w);
    for (unsigned i = 0; i < made; i++)
        pthread_join(w->threads[i], NULL);
    pthread_mutex_lock(&w->lock);
    w->started = 0;
    pthread_mutex_unlock(&w->lock);
}

int rill_worker_start(rill_worker_t *w)
{
    if (!w)
        return RILL_EINVAL;
    if (rill__current_loop)
        return RILL_ELOOPTHREAD;
    pthread_mutex_lock(&w->lock);
    int busy = w->started || atomic_load(&w->stopping);
    for (unsigned i = 0; i < w->nloops; i++)
        busy |= w->loop_state[i] != LOOP_IDLE;
    if (busy) {
        pthread_mutex_unlock(&w->lock);
        return RILL_ESTATE;
    }
    for (unsigned i = 0; i < w->nloops; i++)
        w->loop_state[i] = LOOP_RUNNING;
    w->started = 1;
    unsigned made = 0;
    int rc = 0;
    for (; made < w->nloops; made++) {
        thread_arg_t *a = malloc(sizeof *a);
        if (!a) {
            rc = RILL_ENOMEM;
            break;
        }
        a->w = w;
        a->i = made;
        int e = pthread_create(&w->threads[made], NULL, thread_main, a);
        if (e) {
            free(a);
            rc = -e;
            break;
        }
    }
    /* Return only once every ring exists: a kernel or container that forbids io_uring
     * must show up here, not as a worker that runs and never serves. */
    while (w->ready < made)
        pthread_cond_wait(&w->cond, &w->lock);
    if (rc == 0 && w->start_error)
        rc = w->start_error;
    if (rc == 0 && w->cluster && (rc = rill__cluster_start(w->cluster)) < 0)
        rill__log_error("cannot start the cluster thread: %s", rill_strerror(rc));
    if (rc < 0) {
        abandon_start(w, made);
        return rc;
    }
    pthread_mutex_unlock(&w->lock);
    return 0;
}

int rill_worker_run(rill_worker_t *w, unsigned i)
{
    if (!w || i >= w->nloops)
        return RILL_EINVAL;
    if (rill__current_loop)
        return RILL_ELOOPTHREAD;
    pthread_mutex_lock(&w->lock);
    if (w->started || w->loop_state[i] != LOOP_IDLE) {
        pthread_mutex_unlock(&w->lock);
        return RILL_ESTATE;
    }
    w->loop_state[i] = LOOP_RUNNING;
    int rc = w->cluster ? rill__cluster_start(w->cluster) : 0; /* once, by the first loop */
    if (rc < 0) {
        w->loop_state[i] = LOOP_IDLE;
        pthread_mutex_unlock(&w->lock);
        rill__log_error("cannot start the cluster thread: %s", rill_strerror(rc));
        return rc;
    }
    pthread_mutex_unlock(&w->lock);
    return run_marked(w, i, 0);
}

void rill_worker_shutdown(rill_worker_t *w)
{
    if (!w)
        return;
    atomic_store(&w->stopping, 1);
    for (unsigned i = 0; i < w->nloops; i++)
        rill__loop_wake(w->loops[i]);
}

int rill_worker_wait(rill_worker_t *w)
{
    if (!w)
        return RILL_EINVAL;
    if (rill__current_loop)
        return RILL_ELOOPTHREAD;
    pthread_mutex_lock(&w->lock);
    while (w->exited < w->nloops) {
        /* Once stopping, loops nobody runs will never run: count them as drained so that
         * the running ones need not wait for them. */
        if (atomic_load(&w->stopping)) {
            for (unsigned i = 0; i < w->nloops; i++)
                if (w->loop_state[i] == LOOP_IDLE)
                    retire_loop(w, i);
            if (w->exited == w->nloops)
                break;
        }
        pthread_cond_wait(&w->cond, &w->lock);
    }
    /* Every loop is out of its run call: none can accept any more. Under the lock, so that
     * two waiters do not both close. */
    rill__worker_close_listeners(w);
    unsigned to_join = w->started;
    int rc = w->loop_error;
    w->started = 0;
    pthread_mutex_unlock(&w->lock);
    if (to_join)
        for (unsigned i = 0; i < w->nloops; i++)
            pthread_join(w->threads[i], NULL);
    if (w->cluster && atomic_load(&w->stopping))
        rill__cluster_stop(w->cluster);
    return rc;
}

int rill_worker_stop(rill_worker_t *w)
{
    if (!w)
        return RILL_EINVAL;
    if (rill__current_loop)
        return RILL_ELOOPTHREAD;
    rill_worker_shutdown(w);
    return rill_worker_wait(w);
}

void rill_worker_destroy(rill_worker_t *w)
{
    if (!w || rill__current_loop)
        return;
    rill_worker_stop(w);
    worker_free(w);
}

int rill_comp_register(rill_worker_t *w, uint32_t id, const char *name, const rill_comp_ops_t *ops,
                       uintptr_t ctx)
{
    if (!w || id == RILL_CONTROL_COMP_ID) /* reserved for control frames */
        return RILL_EINVAL;
    return rill__registry_add(w->reg, id, name, ops, ctx);
}

int rill_comp_register_flags(rill_worker_t *w, uint32_t id, const char *name,
                             const rill_comp_ops_t *ops, uintptr_t ctx, unsigned flags)
{
    if (!w || id == RILL_CONTROL_COMP_ID)
        return RILL_EINVAL;
    return rill__registry_add_flags(w->reg, id, name, ops, ctx, flags);
}

int rill_comp_register_state(rill_worker_t *w, uint32_t id, const char *name,
                             const rill_state_ops_t *ops, uintptr_t ctx, uint32_t value_size)
{
    if (!w || id == RILL_CONTROL_COMP_ID)
        return RILL_EINVAL;
    return rill__registry_add_state(w->reg, id, name, ops, ctx, value_size);
}

int rill_comp_unregister(rill_worker_t *w, uint32_t id)
{
    if (!w)
        return RILL_EINVAL;
    if (rill__current_loop)
        return RILL_ELOOPTHREAD; /* waiting for loops would wait for (or stall) this one */
    return rill__registry_remove(w->reg, id);
}

int rill_comp_stats(rill_worker_t *w, uint32_t id, rill_comp_stats_t *out, size_t size)
{
    if (!w || !out || size == 0)
        return RILL_EINVAL;
    rill_comp_stats_t s;
    int rc = rill__registry_stats(w->reg, id, &s);
    if (rc < 0)
        return rc;
    memcpy(out, &s, size < sizeof s ? size : sizeof s);
    return 0;
}

uint64_t rill_batch_bucket_le_ns(unsigned i)
{
    return i < RILL_BATCH_BUCKETS ? rill__batch_le_ns[i] : 0;
}

int rill_comp_list(rill_worker_t *w, uint32_t *ids, size_t n)
{
    if (!w || (!ids && n))
        return RILL_EINVAL;
    size_t total = rill__registry_ids(w->reg, ids, n);
    return total > INT_MAX ? INT_MAX : (int)total;
}

/* Generated from the counter table (stats/counters.h): LOOPS rows are summed over the
 * loops, CLUSTER rows read from the cluster module, REGISTRY rows from the registry. */
#define SUM_LOOPS_(name) s.name += RILL_STAT_GET(ls->name);
#define SUM_CLUSTER_(name)
#define SUM_REGISTRY_(name)
#define SUM_(name, kind, source, line, metric, help) SUM_##source##_(name)
#define READ_LOOPS_(name)
#define READ_CLUSTER_(name) s.name = rill__cluster_##name(w->cluster);
#define READ_REGISTRY_(name) s.name = rill__registry_##name(w->reg);
#define READ_(name, kind, source, line, metric, help) READ_##source##_(name)

int rill_worker_stats(const rill_worker_t *w, rill_stats_t *out, size_t size)
{
    if (!w || !out || size == 0)
        return RILL_EINVAL;
    rill_stats_t s;
    memset(&s, 0, sizeof s);
    for (unsigned i = 0; i < w->nloops; i++) {
        const rill__loop_stats_t *ls = &w->loops[i]->stats;
        RILL__COUNTERS(SUM_)
    }
    RILL__COUNTERS(READ_)
    memcpy(out, &s, size < sizeof s ? size : sizeof s);
    return 0;
}

#undef SUM_LOOPS_
#undef SUM_CLUSTER_
#undef SUM_REGISTRY_
#undef SUM_
#undef READ_LOOPS_
#undef READ_CLUSTER_
#undef READ_REGISTRY_
#undef READ_

rill_view_t *rill_worker_view(rill_worker_t *w)
{
    return w && w->cluster ? rill__cluster_view_copy(w->cluster) : NULL;
}

int rill_worker_view_wait(rill_worker_t *w, uint64_t epoch, int timeout_ms)
{
    if (!rill__cluster_supported())
        return RILL_EUNSUPPORTED; /* whatever the arguments, like the cluster setters */
    if (!w)
        return RILL_EINVAL;
    if (rill__current_loop)
        return RILL_ELOOPTHREAD;
    if (!w->cluster)
        return RILL_EINVAL;
    return rill__cluster_view_wait(w->cluster, epoch, timeout_ms);
}
