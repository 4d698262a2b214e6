/* loop_test: real sockets, real io_uring, an in-process worker driven through rill.h only.
 * Checks exactly-once delivery and per-(connection, key) ordering at a sink, key affinity
 * (a key lives on one loop thread), flush at stop, registration churn under traffic,
 * emit_comp chaining, embedder-owned loop threads and clean shutdown. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "integration/tcp_util.h"
#include "rill/rill.h"

#define WAIT_MS 60000  /* failure bound for bulk traffic (ASan builds are slower) */
#define SHORT_MS 20000 /* failure bound for everything else */

#define MAXCONN 96
#define NKEYJ 4    /* keys per connection */
#define MAXKEY 256 /* keys are small integers below this */
#define MAXLOOPS 8

/* ------------------------------------------------------------ traffic */

/* Key j of connection c. Keys 0..2 are c*2+j, so neighbouring connections share one key;
 * key 3 is one of five keys shared by every fifth connection. */
static uint64_t key_of(unsigned c, unsigned j)
{
    return j < 3 ? (uint64_t)c * 2 + j : 200 + c % 5;
}

/* Generates frames for one connection, continuing its per-key sequence numbers. Payload:
 * u32 conn, u32 j, u32 seq, u32 n, then n pattern bytes. */
typedef struct conn_gen {
    unsigned c;
    uint32_t seq[NKEYJ];
    uint64_t rng;
} conn_gen_t;

static void gen_init(conn_gen_t *g, unsigned c)
{
    memset(g, 0, sizeof *g);
    g->c = c;
    g->rng = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)c * 0x100000001B3ULL) ^ 1;
}

static uint8_t pattern(unsigned c, uint32_t seq, uint32_t i)
{
    return (uint8_t)(c * 7u + seq * 13u + i);
}

/* Appends n frames for comp to b; per_key (may be NULL) counts frames per key. */
static void gen_frames(conn_gen_t *g, tu_buf_t *b, unsigned n, uint32_t comp, uint64_t *per_key)
{
    uint8_t p[16 + 32];
    for (unsigned i = 0; i < n; i++) {
        unsigned j = (unsigned)(tu_rand(&g->rng) % NKEYJ);
        uint32_t seq = g->seq[j]++;
        uint32_t extra = seq % 29;
        tu_put_be32(p, g->c);
        tu_put_be32(p + 4, j);
        tu_put_be32(p + 8, seq);
        tu_put_be32(p + 12, extra);
        for (uint32_t k = 0; k < extra; k++)
            p[16 + k] = pattern(g->c, seq, k);
        uint64_t key = key_of(g->c, j);
        tu_buf_frame(b, comp, key, p, 16 + extra);
        if (per_key)
            per_key[key]++;
    }
}

/* A set of connections, each with its generated stream. */
typedef struct traffic {
    unsigned nconn;
    int fds[MAXCONN];
    uint8_t *bufs[MAXCONN];
    size_t lens[MAXCONN];
    conn_gen_t gen[MAXCONN];
    tu_buf_t tb[MAXCONN];
    uint64_t frames, bytes;
    uint64_t per_key[MAXKEY];
} traffic_t;

/* Builds nconn streams of per_conn frames (connection indices base..base+nconn-1) and
 * connects them to port. Returns 0 or -errno. */
static int traffic_open(traffic_t *t, unsigned base, unsigned nconn, unsigned per_conn,
                        uint32_t comp, uint16_t port)
{
    memset(t, 0, sizeof *t);
    t->nconn = nconn;
    for (unsigned i = 0; i < nconn; i++)
        t->fds[i] = -1;
    for (unsigned i = 0; i < nconn; i++) {
        gen_init(&t->gen[i], base + i);
        gen_frames(&t->gen[i], &t->tb[i], per_conn, comp, t->per_key);
        t->bufs[i] = t->tb[i].data;
        t->lens[i] = t->tb[i].len;
        t->frames += per_conn;
        t->bytes += t->tb[i].len;
    }
    for (unsigned i = 0; i < nconn; i++) {
        int fd = tu_connect(port, SHORT_MS);
        if (fd < 0)
            return fd;
        t->fds[i] = fd;
    }
    return 0;
}

static void traffic_close(traffic_t *t)
{
    for (unsigned i = 0; i < t->nconn; i++) {
        if (t->fds[i] >= 0)
            close(t->fds[i]);
        t->fds[i] = -1;
        tu_buf_free(&t->tb[i]);
    }
}

/* ------------------------------------------------------------ sink-side checker */

/* Verifies every frame a sink receives: payload intact, key matches (conn, j), and per
 * (conn, key) sequence numbers exactly 0,1,2,... (or, with allow_gaps, strictly
 * increasing: frames may be missing, never duplicated or reordered). Also checks that a
 * key always arrives on the same sink connection (= the same loop thread). Runs on the
 * sink thread with the sink's mutex held. */
typedef struct checker {
    uint32_t comp;
    int allow_gaps;
    uint32_t next[MAXCONN][NKEYJ];
    int key_conn[MAXKEY];
    uint64_t frames, errors;
} checker_t;

static void checker_init(checker_t *ck, uint32_t comp, int allow_gaps)
{
    memset(ck, 0, sizeof *ck);
    ck->comp = comp;
    ck->allow_gaps = allow_gaps;
    for (int i = 0; i < MAXKEY; i++)
        ck->key_conn[i] = -1;
}

#define CK_ERR(...)                                                                                \
    do {                                                                                           \
        if (ck->errors++ < 10) {                                                                   \
            fprintf(stderr, "  checker: ");                                                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
        return;                                                                                    \
    } while (0)

static void checker_cb(void *arg, unsigned sconn, uint32_t comp, uint64_t key, const uint8_t *p,
                       uint32_t len)
{
    checker_t *ck = arg;
    ck->frames++;
    if (comp != ck->comp)
        CK_ERR("comp_id %u, expected %u", comp, ck->comp);
    if (len < 16)
        CK_ERR("payload of %u bytes", len);
    uint32_t c = tu_get_be32(p), j = tu_get_be32(p + 4), seq = tu_get_be32(p + 8),
             extra = tu_get_be32(p + 12);
    if (c >= MAXCONN || j >= NKEYJ)
        CK_ERR("bad conn %u / j %u", c, j);
    if (len != 16 + extra)
        CK_ERR("conn %u seq %u: len %u, expected %u", c, seq, len, 16 + extra);
    if (extra != seq % 29)
        CK_ERR("conn %u seq %u: extra %u", c, seq, extra);
    for (uint32_t k = 0; k < extra; k++)
        if (p[16 + k] != pattern(c, seq, k))
            CK_ERR("conn %u seq %u: payload byte %u", c, seq, k);
    if (key != key_of(c, j))
        CK_ERR("conn %u j %u: key %llu, expected %llu", c, j, (unsigned long long)key,
               (unsigned long long)key_of(c, j));
    if (key < MAXKEY) {
        if (ck->key_conn[key] < 0)
            ck->key_conn[key] = (int)sconn;
        else if (ck->key_conn[key] != (int)sconn)
            CK_ERR("key %llu arrived on sink connections %d and %u (two loop threads)",
                   (unsigned long long)key, ck->key_conn[key], sconn);
    }
    uint32_t want = ck->next[c][j];
    if (ck->allow_gaps ? seq < want : seq != want)
        CK_ERR("conn %u key %llu: seq %u arrived, expected %s%u (%s)", c, (unsigned long long)key,
               seq, ck->allow_gaps ? ">= " : "", want,
               seq < want ? "duplicate or reordered" : "lost or reordered");
    ck->next[c][j] = seq + 1;
}

/* ------------------------------------------------------------ computations */

typedef struct pt_ctx {
    unsigned nthreads;
    uint32_t to_comp; /* 0: emit to sink 0; else rill_emit_comp to this id */
    atomic_ullong msgs;
    atomic_ullong emit_fail;
    atomic_ullong bad_view; /* loop index out of range, or a view with a wrong comp_id */
    atomic_int released;
    uint32_t self; /* expected m->comp_id */
} pt_ctx_t;

static void pt_init(pt_ctx_t *c, unsigned nthreads, uint32_t self, uint32_t to_comp)
{
    memset(c, 0, sizeof *c);
    c->nthreads = nthreads;
    c->self = self;
    c->to_comp = to_comp;
}

static int pt_batch(uintptr_t ctx, unsigned loop, const rill_msg_t *msgs, size_t n,
                    rill_emitter_t *em)
{
    pt_ctx_t *c = (pt_ctx_t *)ctx;
    if (loop >= c->nthreads)
        atomic_fetch_add(&c->bad_view, 1);
    for (size_t i = 0; i < n; i++) {
        const rill_msg_t *m = &msgs[i];
        if (m->comp_id != c->self || (m->len > 0 && m->data == NULL))
            atomic_fetch_add(&c->bad_view, 1);
        int rc = c->to_comp ? rill_emit_comp(em, c->to_comp, m->key, m->data, m->len)
                            : rill_emit_sink(em, 0, m->comp_id, m->key, m->data, m->len);
        if (rc != 0)
            atomic_fetch_add(&c->emit_fail, 1);
    }
    atomic_fetch_add(&c->msgs, n);
    return 0;
}

static void pt_release(uintptr_t ctx)
{
    atomic_fetch_add(&((pt_ctx_t *)ctx)->released, 1);
}

static const rill_comp_ops_t pt_ops = {pt_batch, NULL, pt_release};

/* ------------------------------------------------------------ worker helpers */

static void dump_stats(const rill_worker_t *w)
{
    rill_stats_t s;
    memset(&s, 0, sizeof s);
    if (rill_worker_stats(w, &s, sizeof s) != 0)
        return;
    fprintf(stderr,
            "  stats: in %llu bytes_in %llu dispatched %llu batches %llu out %llu bytes_out %llu "
            "handoff %llu accepted %llu open %llu short %llu long %llu midframe %llu conn %llu "
            "unknown %llu comp_err %llu sink_dropped %llu sink_err %llu enobufs %llu\n",
            (unsigned long long)s.msgs_in, (unsigned long long)s.bytes_in,
            (unsigned long long)s.msgs_dispatched, (unsigned long long)s.batches,
            (unsigned long long)s.msgs_out, (unsigned long long)s.bytes_out,
            (unsigned long long)s.handoff_msgs, (unsigned long long)s.conns_accepted,
            (unsigned long long)s.conns_open, (unsigned long long)s.err_frame_short,
            (unsigned long long)s.err_frame_long, (unsigned long long)s.err_midframe,
            (unsigned long long)s.err_conn, (unsigned long long)s.unknown_comp,
            (unsigned long long)s.comp_errors, (unsigned long long)s.sink_dropped,
            (unsigned long long)s.sink_errors, (unsigned long long)s.enobufs);
}

/* Creates a worker with `threads` loops, one v1 listener on 127.0.0.1:0 and one sink (when
 * sink != NULL). Returns 0 or the failing call's code. */
static unsigned g_busy_wait_us; /* rill_config_set_busy_wait_us for make_worker; 0: off */

static int make_worker(rill_worker_t **w, unsigned threads, const tu_sink_t *sink, uint16_t *port)
{
    *w = NULL;
    rill_config_t *cfg = rill_config_new();
    if (!cfg)
        return RILL_ENOMEM;
    int rc = rill_config_set_threads(cfg, threads);
    if (rc == 0)
        rc = rill_config_add_listener(cfg, "127.0.0.1:0", RILL_FRAMING_RILL, 0, 0, 0);
    if (rc == 0 && sink)
        rc = rill_config_add_sink(cfg, tu_sink_addr(sink));
    if (rc == 0)
        rc = rill_config_set_busy_wait_us(cfg, g_busy_wait_us);
    if (rc == 0)
        rc = rill_worker_new(w, cfg);
    rill_config_destroy(cfg);
    if (rc != 0) {
        fprintf(stderr, "  make_worker: %s (%d)\n", rill_err_name(rc), rc);
        return rc;
    }
    int p = rill_worker_listener_port(*w, 0);
    if (p <= 0 || p > 65535)
        return RILL_EINVAL;
    *port = (uint16_t)p;
    return 0;
}

/* ------------------------------------------------------------ passthrough */

static int passthrough(unsigned threads, unsigned nconn, unsigned per_conn)
{
    static checker_t ck;
    checker_init(&ck, 1, 0);
    tu_sink_t *sink;
    ASSERT_EQ(tu_sink_new(&sink, checker_cb, &ck), 0);

    rill_worker_t *w;
    uint16_t port;
    ASSERT_EQ(make_worker(&w, threads, sink, &port), 0);
    ASSERT_EQ(rill_worker_threads(w), threads);
    pt_ctx_t pt;
    pt_init(&pt, threads, 1, 0);
    ASSERT_EQ(rill_comp_register(w, 1, "passthrough", &pt_ops, (uintptr_t)&pt), 0);
    ASSERT_EQ(rill_worker_start(w), 0);

    static traffic_t t;
    ASSERT_EQ(traffic_open(&t, 0, nconn, per_conn, 1, port), 0);
    tu_sender_t *snd;
    ASSERT_EQ(tu_send_start(&snd, t.fds, t.bufs, t.lens, nconn, 4, 64 * 1024), 0);

    int wrc = tu_sink_wait_count(sink, t.frames, WAIT_MS);
    if (wrc != 0) {
        fprintf(stderr, "  sink has %zu of %llu frames\n", tu_sink_count(sink),
                (unsigned long long)t.frames);
        dump_stats(w);
    }
    ASSERT_EQ(wrc, 0);
    ASSERT_EQ(tu_send_join(snd), 0);

    ASSERT_EQ(rill_worker_stop(w), 0);
    rill_stats_t st;
    ASSERT_EQ(rill_worker_stats(w, &st, sizeof st), 0);
    ASSERT_U64_EQ(st.msgs_in, t.frames);
    ASSERT_U64_EQ(st.bytes_in, t.bytes);
    ASSERT_U64_EQ(st.msgs_dispatched, t.frames);
    ASSERT_U64_GE(st.batches, 1);
    ASSERT_U64_LE(st.batches, t.frames);
    ASSERT_U64_EQ(st.msgs_out, t.frames);
    ASSERT_U64_EQ(st.bytes_out, t.bytes); /* passthrough: same frames, same bytes */
    ASSERT_U64_EQ(st.conns_accepted, nconn);
    ASSERT_U64_EQ(st.unknown_comp, 0);
    ASSERT_U64_EQ(st.comp_errors, 0);
    ASSERT_U64_EQ(st.err_frame_short + st.err_frame_long + st.err_midframe, 0);
    ASSERT_U64_EQ(st.sink_dropped, 0);
    ASSERT_U64_EQ(st.sink_errors, 0);
    if (threads == 1)
        ASSERT_U64_EQ(st.handoff_msgs, 0);

    rill_comp_stats_t cs;
    ASSERT_EQ(rill_comp_stats(w, 1, &cs, sizeof cs), 0);
    ASSERT_U64_EQ(cs.msgs, t.frames);
    ASSERT_U64_EQ(cs.errors, 0);
    ASSERT_U64_EQ(atomic_load(&pt.msgs), t.frames);
    ASSERT_U64_EQ(atomic_load(&pt.emit_fail), 0);
    ASSERT_U64_EQ(atomic_load(&pt.bad_view), 0);

    ASSERT_EQ(atomic_load(&pt.released), 0);
    traffic_close(&t);
    rill_worker_destroy(w);
    ASSERT_EQ(atomic_load(&pt.released), 1);

    /* Destroy closed the sink connections: nothing more can arrive. */
    ASSERT_EQ(tu_sink_wait_all_closed(sink, threads, SHORT_MS), 0);
    tu_sink_info_t si;
    tu_sink_info(sink, &si);
    ASSERT_EQ(si.accepted, threads); /* one sink connection per loop thread */
    ASSERT_EQ(si.bad, 0);
    ASSERT_EQ(si.partial, 0);
    tu_sink_lock(sink);
    uint64_t frames = ck.frames, errors = ck.errors;
    tu_sink_unlock(sink);
    ASSERT_U64_EQ(errors, 0);
    ASSERT_U64_EQ(frames, t.frames); /* exactly once: no loss, no duplicate */
    for (unsigned c = 0; c < nconn; c++)
        for (unsigned j = 0; j < NKEYJ; j++)
            ASSERT_EQ(ck.next[c][j], t.gen[c].seq[j]);
    tu_sink_destroy(sink);
    return 0;
}

static int passthrough_1thread(void)
{
    return passthrough(1, 64, 10000);
}
/* Batching under load at its longest wait (10 ms): the passthrough's checks (every frame
 * once, in order per connection and key) hold, and so does the tail of the traffic, which
 * arrives while a loop waits for more completions than will come. */
static int busy_wait(void)
{
    g_busy_wait_us = 10000;
    int rc = passthrough(2, 16, 2000);
    g_busy_wait_us = 0;
    return rc;
}

static int passthrough_2threads(void)
{
    return passthrough(2, 64, 10000);
}

/* ------------------------------------------------------------ count with flush */

typedef struct count_ctx {
    unsigned nthreads;
    uint64_t counts[MAXLOOPS][MAXKEY]; /* [loop][key]: a key lives on one loop, no lock */
    atomic_int owner[MAXKEY];          /* loop that saw the key first, -1 if none */
    atomic_ullong violations;
    atomic_ullong emit_fail;
    atomic_uint flushes[MAXLOOPS];
    atomic_ullong msgs;
    atomic_int released;
} count_ctx_t;

static int count_batch(uintptr_t ctx, unsigned loop, const rill_msg_t *msgs, size_t n,
                       rill_emitter_t *em)
{
    (void)em;
    count_ctx_t *c = (count_ctx_t *)ctx;
    if (loop >= c->nthreads || loop >= MAXLOOPS) {
        atomic_fetch_add(&c->violations, 1);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t key = msgs[i].key;
        if (key >= MAXKEY) {
            atomic_fetch_add(&c->violations, 1);
            continue;
        }
        int expect = -1;
        if (!atomic_compare_exchange_strong(&c->owner[key], &expect, (int)loop) &&
            expect != (int)loop) {
            if (atomic_fetch_add(&c->violations, 1) < 5)
                fprintf(stderr, "  key %llu seen on loop %u and loop %d\n", (unsigned long long)key,
                        loop, expect);
        }
        c->counts[loop][key]++;
    }
    atomic_fetch_add(&c->msgs, n);
    return 0;
}

static void count_flush(uintptr_t ctx, unsigned loop, rill_emitter_t *em)
{
    count_ctx_t *c = (count_ctx_t *)ctx;
    if (loop >= c->nthreads || loop >= MAXLOOPS) {
        atomic_fetch_add(&c->violations, 1);
        return;
    }
    atomic_fetch_add(&c->flushes[loop], 1);
    for (unsigned k = 0; k < MAXKEY; k++) {
        if (!c->counts[loop][k])
            continue;
        char txt[32];
        int len = snprintf(txt, sizeof txt, "%llu", (unsigned long long)c->counts[loop][k]);
        if (rill_emit_sink(em, 0, 2, k, txt, (size_t)len) != 0)
            atomic_fetch_add(&c->emit_fail, 1);
        c->counts[loop][k] = 0;
    }
}

static void count_release(uintptr_t ctx)
{
    atomic_fetch_add(&((count_ctx_t *)ctx)->released, 1);
}

static int count_test(unsigned threads)
{
    tu_sink_t *sink;
    ASSERT_EQ(tu_sink_new(&sink, NULL, NULL), 0);
    rill_worker_t *w;
    uint16_t port;
    ASSERT_EQ(make_worker(&w, threads, sink, &port), 0);

    count_ctx_t *cc = calloc(1, sizeof *cc);
    ASSERT_TRUE(cc != NULL);
    cc->nthreads = threads;
    for (int k = 0; k < MAXKEY; k++)
        atomic_init(&cc->owner[k], -1);
    static const rill_comp_ops_t ops = {count_batch, count_flush, count_release};
    ASSERT_EQ(rill_comp_register(w, 1, "count", &ops, (uintptr_t)cc), 0);
    ASSERT_EQ(rill_worker_start(w), 0);

    static traffic_t t;
    ASSERT_EQ(traffic_open(&t, 0, 32, 5000, 1, port), 0);
    tu_sender_t *snd;
    ASSERT_EQ(tu_send_start(&snd, t.fds, t.bufs, t.lens, t.nconn, 4, 32 * 1024), 0);
    ASSERT_EQ(tu_send_join(snd), 0);

    /* Wait until the computation has seen everything, then stop: the flush at stop emits. */
    int64_t end = tu_now_ms() + WAIT_MS;
    while (atomic_load(&cc->msgs) < t.frames && tu_now_ms() < end)
        tu_sleep_ms(5);
    if (atomic_load(&cc->msgs) != t.frames)
        dump_stats(w);
    ASSERT_U64_EQ(atomic_load(&cc->msgs), t.frames);
    for (unsigned l = 0; l < threads; l++)
        ASSERT_EQ(atomic_load(&cc->flushes[l]), 0);

    ASSERT_EQ(rill_worker_stop(w), 0);
    ASSERT_U64_EQ(atomic_load(&cc->violations), 0);
    ASSERT_U64_EQ(atomic_load(&cc->emit_fail), 0);
    /* flush interval 0: each loop flushes exactly once, when the worker stops */
    for (unsigned l = 0; l < threads; l++)
        ASSERT_EQ(atomic_load(&cc->flushes[l]), 1);
    rill_stats_t st;
    ASSERT_EQ(rill_worker_stats(w, &st, sizeof st), 0);
    ASSERT_U64_EQ(st.sink_dropped, 0);
    traffic_close(&t);
    rill_worker_destroy(w);
    ASSERT_EQ(atomic_load(&cc->released), 1);
    for (unsigned l = 0; l < threads; l++)
        ASSERT_EQ(atomic_load(&cc->flushes[l]), 1);
    ASSERT_EQ(tu_sink_wait_all_closed(sink, threads, SHORT_MS), 0);
    ASSERT_U64_EQ(tu_sink_count(sink), st.msgs_out);

    uint64_t got[MAXKEY] = {0};
    unsigned seen[MAXKEY] = {0};
    size_t n;
    tu_sink_lock(sink);
    const tu_frame_t *f = tu_sink_frames(sink, &n);
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        char txt[32];
        if (f[i].comp_id != 2 || f[i].key >= MAXKEY || f[i].len == 0 || f[i].len >= sizeof txt) {
            bad++;
            continue;
        }
        memcpy(txt, f[i].payload, f[i].len);
        txt[f[i].len] = 0;
        char *endp;
        unsigned long long v = strtoull(txt, &endp, 10);
        if (*endp) {
            bad++;
            continue;
        }
        got[f[i].key] += v;
        seen[f[i].key]++;
    }
    tu_sink_unlock(sink);
    ASSERT_EQ(bad, 0);
    for (unsigned k = 0; k < MAXKEY; k++) {
        if (got[k] != t.per_key[k])
            fprintf(stderr, "  key %u: counted %llu, sent %llu\n", k, (unsigned long long)got[k],
                    (unsigned long long)t.per_key[k]);
        ASSERT_U64_EQ(got[k], t.per_key[k]);
        /* one loop owns the key and flushes once: one frame per key */
        ASSERT_EQ(seen[k], t.per_key[k] ? 1 : 0);
    }
    free(cc);
    tu_sink_destroy(sink);
    return 0;
}

static int count_1thread(void)
{
    return count_test(1);
}
static int count_2threads(void)
{
    return count_test(2);
}

/* ------------------------------------------------------------ register/unregister churn */

#define NREG 400

typedef struct churn_pred_arg {
    pt_ctx_t *regs;
    unsigned nregs;
    uint64_t total;
} churn_pred_arg_t;

static uint64_t delivered_sum(const pt_ctx_t *regs, unsigned n)
{
    uint64_t s = 0;
    for (unsigned i = 0; i < n; i++)
        s += atomic_load(&regs[i].msgs);
    return s;
}

static int churn_pred(const rill_stats_t *st, void *arg)
{
    churn_pred_arg_t *a = arg;
    return delivered_sum(a->regs, a->nregs) + st->unknown_comp >= a->total;
}

static int register_churn(void)
{
    const unsigned threads = 2;
    static checker_t ck;
    checker_init(&ck, 1, 1);
    tu_sink_t *sink;
    ASSERT_EQ(tu_sink_new(&sink, checker_cb, &ck), 0);
    rill_worker_t *w;
    uint16_t port;
    ASSERT_EQ(make_worker(&w, threads, sink, &port), 0);

    static pt_ctx_t regs[NREG];
    for (unsigned i = 0; i < NREG; i++)
        pt_init(&regs[i], threads, 1, 0);
    unsigned used = 0;
    ASSERT_EQ(rill_comp_register(w, 1, "churn", &pt_ops, (uintptr_t)&regs[used++]), 0);
    ASSERT_EQ(rill_worker_start(w), 0);

    static traffic_t t;
    ASSERT_EQ(traffic_open(&t, 0, 8, 20000, 1, port), 0);
    tu_sender_t *snd;
    /* ~220 rounds of 4 KiB per connection, 4 ms apart: about a second of traffic */
    ASSERT_EQ(tu_send_start_paced(&snd, t.fds, t.bufs, t.lens, t.nconn, 2, 4096, 4000), 0);

    pt_ctx_t dup;
    pt_init(&dup, threads, 1, 0);
    /* frames each registration had when its unregister returned: no loop may call it
     * afterwards, so the count must never move again */
    static uint64_t at_unregister[NREG];
    unsigned cycles = 0;
    while (!tu_send_done(snd) && used < NREG - 2) {
        pt_ctx_t *cur = &regs[used - 1];
        ASSERT_EQ(rill_comp_unregister(w, 1), 0);
        at_unregister[used - 1] = atomic_load(&cur->msgs);
        /* release runs on this thread before unregister returns, exactly once */
        ASSERT_EQ(atomic_load(&cur->released), 1);
        ASSERT_EQ(rill_comp_unregister(w, 1), RILL_ENOENT);
        ASSERT_EQ(rill_comp_register(w, 1, "churn", &pt_ops, (uintptr_t)&regs[used++]), 0);
        ASSERT_EQ(rill_comp_register(w, 1, "dup", &pt_ops, (uintptr_t)&dup), RILL_EEXIST);
        cycles++;
        tu_sleep_ms(3);
    }
    ASSERT_EQ(tu_send_join(snd), 0);
    /* Registrations replaced while the sender was still sending (each cycle started
     * before it was done), and how many of them a loop's lookup found: those that got
     * frames. Without both the case would test nothing. */
    const unsigned churned = used - 1;
    unsigned saw = 0;
    uint64_t churn_msgs = 0;
    for (unsigned i = 0; i < churned; i++) {
        saw += at_unregister[i] > 0;
        churn_msgs += at_unregister[i];
    }
    fprintf(stderr,
            "  %u unregister/register cycles during traffic; %u of the %u registrations "
            "replaced got frames (%llu frames)\n",
            cycles, saw, churned, (unsigned long long)churn_msgs);
    ASSERT_GT(cycles, 0);
    ASSERT_GT(saw, 0);

    churn_pred_arg_t pa = {regs, used, t.frames};
    rill_stats_t st;
    int wrc = tu_wait_stats(w, churn_pred, &pa, WAIT_MS, &st);
    if (wrc != 0)
        dump_stats(w);
    ASSERT_EQ(wrc, 0);
    uint64_t delivered = delivered_sum(regs, used);
    ASSERT_U64_EQ(delivered + st.unknown_comp, t.frames);
    ASSERT_U64_EQ(st.msgs_in, t.frames);

    /* A window with no registration: frames on a fresh connection are all unknown. */
    ASSERT_EQ(rill_comp_unregister(w, 1), 0);
    at_unregister[used - 1] = atomic_load(&regs[used - 1].msgs);
    const unsigned unregistered = used; /* regs[0 .. used-1] are all unregistered now */
    ASSERT_EQ(atomic_load(&regs[used - 1].released), 1);
    uint64_t unknown0 = st.unknown_comp;
    int fd = tu_connect(port, SHORT_MS);
    ASSERT_GE(fd, 0);
    conn_gen_t g;
    gen_init(&g, 8);
    tu_buf_t b = {0};
    gen_frames(&g, &b, 100, 1, NULL);
    ASSERT_EQ(tu_write_all(fd, b.data, b.len), 0);
    uint64_t u;
    ASSERT_EQ(tu_wait_stat_ge(w, TU_STAT(unknown_comp), unknown0 + 100, SHORT_MS, &u), 0);
    ASSERT_U64_EQ(u, unknown0 + 100);

    /* Registered again: the same connection's next frames are delivered. */
    ASSERT_EQ(rill_comp_register(w, 1, "churn", &pt_ops, (uintptr_t)&regs[used++]), 0);
    b.len = 0;
    gen_frames(&g, &b, 100, 1, NULL);
    ASSERT_EQ(tu_write_all(fd, b.data, b.len), 0);
    int64_t end = tu_now_ms() + SHORT_MS;
    while (atomic_load(&regs[used - 1].msgs) < 100 && tu_now_ms() < end)
        tu_sleep_ms(5);
    ASSERT_U64_EQ(atomic_load(&regs[used - 1].msgs), 100);
    delivered = delivered_sum(regs, used);
    ASSERT_EQ(tu_sink_wait_count(sink, delivered, SHORT_MS), 0);

    ASSERT_EQ(rill_worker_stop(w), 0);
    ASSERT_EQ(rill_worker_stats(w, &st, sizeof st), 0);
    ASSERT_U64_EQ(st.unknown_comp + delivered, t.frames + 200);
    ASSERT_U64_EQ(st.msgs_out, delivered);
    ASSERT_U64_EQ(st.sink_dropped, 0);
    for (unsigned i = 0; i < used; i++)
        ASSERT_U64_EQ(atomic_load(&regs[i].emit_fail), 0);
    /* nothing reached a registration after its unregister returned */
    for (unsigned i = 0; i < unregistered; i++) {
        uint64_t m = atomic_load(&regs[i].msgs);
        if (m != at_unregister[i])
            T_FAIL_AT_("registration %u: %llu frames when its unregister returned, %llu now", i,
                       (unsigned long long)at_unregister[i], (unsigned long long)m);
    }

    close(fd);
    tu_buf_free(&b);
    traffic_close(&t);
    rill_worker_destroy(w);
    for (unsigned i = 0; i < NREG; i++)
        ASSERT_EQ(atomic_load(&regs[i].released), i < used ? 1 : 0);
    ASSERT_EQ(atomic_load(&dup.released), 0);
    ASSERT_U64_EQ(atomic_load(&dup.msgs), 0);

    ASSERT_EQ(tu_sink_wait_all_closed(sink, threads, SHORT_MS), 0);
    tu_sink_lock(sink);
    uint64_t frames = ck.frames, errors = ck.errors;
    tu_sink_unlock(sink);
    ASSERT_U64_EQ(errors, 0); /* no duplicate, no reordering */
    ASSERT_U64_EQ(frames, delivered);
    tu_sink_destroy(sink);
    return 0;
}

/* ------------------------------------------------------------ emit_comp chaining */

static int emit_comp_chain(void)
{
    const unsigned threads = 2;
    static checker_t ck;
    checker_init(&ck, 3, 0);
    tu_sink_t *sink;
    ASSERT_EQ(tu_sink_new(&sink, checker_cb, &ck), 0);
    rill_worker_t *w;
    uint16_t port;
    ASSERT_EQ(make_worker(&w, threads, sink, &port), 0);
    pt_ctx_t first, last;
    pt_init(&first, threads, 1, 3); /* comp 1 -> rill_emit_comp(3) */
    pt_init(&last, threads, 3, 0);  /* comp 3 -> sink 0, comp id 3 */
    ASSERT_EQ(rill_comp_register(w, 1, "first", &pt_ops, (uintptr_t)&first), 0);
    ASSERT_EQ(rill_comp_register(w, 3, "last", &pt_ops, (uintptr_t)&last), 0);
    ASSERT_EQ(rill_worker_start(w), 0);

    static traffic_t t;
    ASSERT_EQ(traffic_open(&t, 0, 16, 5000, 1, port), 0);
    tu_sender_t *snd;
    ASSERT_EQ(tu_send_start(&snd, t.fds, t.bufs, t.lens, t.nconn, 2, 32 * 1024), 0);
    int wrc = tu_sink_wait_count(sink, t.frames, WAIT_MS);
    if (wrc != 0) {
        fprintf(stderr, "  sink has %zu of %llu frames\n", tu_sink_count(sink),
                (unsigned long long)t.frames);
        dump_stats(w);
    }
    ASSERT_EQ(wrc, 0);
    ASSERT_EQ(tu_send_join(snd), 0);
    ASSERT_EQ(rill_worker_stop(w), 0);
    ASSERT_U64_EQ(atomic_load(&first.msgs), t.frames);
    ASSERT_U64_EQ(atomic_load(&last.msgs), t.frames);
    ASSERT_U64_EQ(atomic_load(&first.emit_fail) + atomic_load(&last.emit_fail), 0);
    ASSERT_U64_EQ(atomic_load(&first.bad_view) + atomic_load(&last.bad_view), 0);
    rill_stats_t st;
    ASSERT_EQ(rill_worker_stats(w, &st, sizeof st), 0);
    ASSERT_U64_EQ(st.msgs_in, t.frames);
    ASSERT_U64_EQ(st.msgs_dispatched, 2 * t.frames); /* counts emit_comp messages too */
    ASSERT_U64_EQ(st.msgs_out, t.frames);
    rill_comp_stats_t cs;
    ASSERT_EQ(rill_comp_stats(w, 3, &cs, sizeof cs), 0);
    ASSERT_U64_EQ(cs.msgs, t.frames);

    traffic_close(&t);
    rill_worker_destroy(w);
    ASSERT_EQ(atomic_load(&first.released), 1);
    ASSERT_EQ(atomic_load(&last.released), 1);

    ASSERT_EQ(tu_sink_wait_all_closed(sink, threads, SHORT_MS), 0);
    tu_sink_lock(sink);
    uint64_t frames = ck.frames, errors = ck.errors;
    tu_sink_unlock(sink);
    ASSERT_U64_EQ(errors, 0);
    ASSERT_U64_EQ(frames, t.frames);
    for (unsigned c = 0; c < t.nconn; c++)
        for (unsigned j = 0; j < NKEYJ; j++)
            ASSERT_EQ(ck.next[c][j], t.gen[c].seq[j]);
    tu_sink_destroy(sink);
    return 0;
}

/* ------------------------------------------------------------ stateless computations */

/* Where each connection's frames ran, and whether each (connection, key) stayed in order. */
typedef struct sl_ctx {
    uint32_t self, to_comp;        /* to_comp 0: to sink 0 */
    atomic_int conn_loop[MAXCONN]; /* loop + 1 that ran the connection's frames; 0: none */
    uint32_t next[MAXCONN][NKEYJ]; /* written only by the loop in conn_loop */
    atomic_ullong msgs, errors;
} sl_ctx_t;

static int sl_batch(uintptr_t ctx, unsigned loop, const rill_msg_t *msgs, size_t n,
                    rill_emitter_t *em)
{
    sl_ctx_t *c = (sl_ctx_t *)ctx;
    for (size_t i = 0; i < n; i++) {
        const rill_msg_t *m = &msgs[i];
        if (m->len < 16 || m->comp_id != c->self) {
            atomic_fetch_add(&c->errors, 1);
            continue;
        }
        uint32_t conn = tu_get_be32(m->data), j = tu_get_be32(m->data + 4),
                 seq = tu_get_be32(m->data + 8);
        if (conn >= MAXCONN || j >= NKEYJ) {
            atomic_fetch_add(&c->errors, 1);
            continue;
        }
        int expect = 0;
        if (!atomic_compare_exchange_strong(&c->conn_loop[conn], &expect, (int)loop + 1) &&
            expect != (int)loop + 1) {
            atomic_fetch_add(&c->errors, 1); /* a connection's frames on two loops */
            continue;
        }
        if (seq != c->next[conn][j]++)
            atomic_fetch_add(&c->errors, 1);
        int rc = c->to_comp ? rill_emit_comp(em, c->to_comp, m->key, m->data, m->len)
                            : rill_emit_sink(em, 0, m->comp_id, m->key, m->data, m->len);
        if (rc != 0)
            atomic_fetch_add(&c->errors, 1);
    }
    atomic_fetch_add(&c->msgs, n);
    return 0;
}

static const rill_comp_ops_t sl_ops = {sl_batch, NULL, NULL};

/* RILL_COMP_STATELESS: frames run on the loop that read them, also through rill_emit_comp
 * (comp 1 -> comp 3 -> the sink), in order per connection and key, with nothing handed
 * between the two loops. The same keys for a keyed computation are handed over (so the
 * first part is not true by luck of the keys). */
static int stateless_runs_where_read(void)
{
    const unsigned threads = 2;
    tu_sink_t *sink;
    ASSERT_EQ(tu_sink_new(&sink, NULL, NULL), 0);
    rill_worker_t *w;
    uint16_t port;
    ASSERT_EQ(make_worker(&w, threads, sink, &port), 0);
    static sl_ctx_t first, last;
    memset(&first, 0, sizeof first);
    memset(&last, 0, sizeof last);
    first.self = 1, first.to_comp = 3, last.self = 3;
    ASSERT_EQ(rill_comp_register_flags(w, 1, "first", &sl_ops, (uintptr_t)&first, 1u << 7),
              RILL_EINVAL); /* an unknown flag */
    ASSERT_EQ(
        rill_comp_register_flags(w, 1, "first", &sl_ops, (uintptr_t)&first, RILL_COMP_STATELESS),
        0);
    ASSERT_EQ(
        rill_comp_register_flags(w, 3, "last", &sl_ops, (uintptr_t)&last, RILL_COMP_STATELESS), 0);
    pt_ctx_t keyed;
    pt_init(&keyed, threads, 5, 0);
    ASSERT_EQ(rill_comp_register(w, 5, "keyed", &pt_ops, (uintptr_t)&keyed), 0);
    ASSERT_EQ(rill_worker_start(w), 0);

    static traffic_t t;
    ASSERT_EQ(traffic_open(&t, 0, 16, 3000, 1, port), 0);
    tu_sender_t *snd;
    ASSERT_EQ(tu_send_start(&snd, t.fds, t.bufs, t.lens, t.nconn, 2, 32 * 1024), 0);
    ASSERT_EQ(tu_sink_wait_count(sink, t.frames, WAIT_MS), 0);
    ASSERT_EQ(tu_send_join(snd), 0);
    rill_stats_t st;
    ASSERT_EQ(rill_worker_stats(w, &st, sizeof st), 0);
    ASSERT_U64_EQ(st.handoff_msgs, 0);
    ASSERT_U64_EQ(atomic_load(&first.msgs), t.frames);
    ASSERT_U64_EQ(atomic_load(&last.msgs), t.frames);
    ASSERT_U64_EQ(atomic_load(&first.errors) + atomic_load(&last.errors), 0);
    for (unsigned c = 0; c < t.nconn; c++) {
        ASSERT_TRUE(atomic_load(&first.conn_loop[c]) != 0);
        ASSERT_EQ(atomic_load(&last.conn_loop[c]), atomic_load(&first.conn_loop[c]));
        for (unsigned j = 0; j < NKEYJ; j++)
            ASSERT_EQ(last.next[c][j], t.gen[c].seq[j]);
    }

    /* The same keys for the keyed computation: handed over. */
    static traffic_t k;
    ASSERT_EQ(traffic_open(&k, 0, 16, 300, 5, port), 0);
    ASSERT_EQ(tu_send_start(&snd, k.fds, k.bufs, k.lens, k.nconn, 2, 32 * 1024), 0);
    ASSERT_EQ(tu_sink_wait_count(sink, t.frames + k.frames, WAIT_MS), 0);
    ASSERT_EQ(tu_send_join(snd), 0);
    ASSERT_EQ(rill_worker_stats(w, &st, sizeof st), 0);
    ASSERT_U64_GE(st.handoff_msgs, 1);

    ASSERT_EQ(rill_worker_stop(w), 0);
    traffic_close(&t);
    traffic_close(&k);
    rill_worker_destroy(w);
    tu_sink_destroy(sink);
    return 0;
}

/* ------------------------------------------------------------ embedder-owned threads */

typedef struct run_arg {
    rill_worker_t *w;
    unsigned i;
    int rc;
} run_arg_t;

static void *run_thread(void *arg)
{
    run_arg_t *a = arg;
    a->rc = rill_worker_run(a->w, a->i);
    return NULL;
}

static int join_within(pthread_t t, int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    return pthread_timedjoin_np(t, NULL, &ts);
}

static int worker_run_own_threads(void)
{
    const unsigned threads = 2;
    static checker_t ck;
    checker_init(&ck, 1, 0);
    tu_sink_t *sink;
    ASSERT_EQ(tu_sink_new(&sink, checker_cb, &ck), 0);
    rill_worker_t *w;
    uint16_t port;
    ASSERT_EQ(make_worker(&w, threads, sink, &port), 0);
    pt_ctx_t pt;
    pt_init(&pt, threads, 1, 0);
    ASSERT_EQ(rill_comp_register(w, 1, "passthrough", &pt_ops, (uintptr_t)&pt), 0);

    pthread_t thr[2];
    run_arg_t ra[2];
    for (unsigned i = 0; i < threads; i++) {
        ra[i] = (run_arg_t){w, i, -99999};
        ASSERT_EQ(pthread_create(&thr[i], NULL, run_thread, &ra[i]), 0);
    }

    static traffic_t t;
    ASSERT_EQ(traffic_open(&t, 0, 8, 5000, 1, port), 0);
    tu_sender_t *snd;
    ASSERT_EQ(tu_send_start(&snd, t.fds, t.bufs, t.lens, t.nconn, 2, 32 * 1024), 0);
    int wrc = tu_sink_wait_count(sink, t.frames, WAIT_MS);
    if (wrc != 0)
        dump_stats(w);
    ASSERT_EQ(wrc, 0);
    ASSERT_EQ(tu_send_join(snd), 0);

    /* Loops are running on our threads: misuse is refused, not obeyed. */
    ASSERT_EQ(rill_worker_start(w), RILL_ESTATE);
    ASSERT_EQ(rill_worker_run(w, 0), RILL_ESTATE);
    ASSERT_EQ(rill_worker_run(w, threads), RILL_EINVAL);

    ASSERT_EQ(rill_worker_stop(w), 0);
    for (unsigned i = 0; i < threads; i++) {
        ASSERT_EQ(join_within(thr[i], SHORT_MS), 0);
        ASSERT_EQ(ra[i].rc, 0);
    }
    ASSERT_U64_EQ(atomic_load(&pt.bad_view), 0);
    ASSERT_EQ(rill_worker_start(w), RILL_ESTATE); /* stopped for good */

    traffic_close(&t);
    rill_worker_destroy(w);
    ASSERT_EQ(atomic_load(&pt.released), 1);
    ASSERT_EQ(tu_sink_wait_all_closed(sink, threads, SHORT_MS), 0);
    tu_sink_lock(sink);
    uint64_t frames = ck.frames, errors = ck.errors;
    tu_sink_unlock(sink);
    ASSERT_U64_EQ(errors, 0);
    ASSERT_U64_EQ(frames, t.frames);
    tu_sink_destroy(sink);
    return 0;
}

/* ------------------------------------------------------------ shutdown */

/* Stop with source connections still open (one of them inside a frame): stop returns,
 * every source connection is closed by the worker, a second stop is a no-op. */
static int stop_with_open_connections(void)
{
    const unsigned threads = 2;
    static checker_t ck;
    checker_init(&ck, 1, 0);
    tu_sink_t *sink;
    ASSERT_EQ(tu_sink_new(&sink, checker_cb, &ck), 0);
    rill_worker_t *w;
    uint16_t port;
    ASSERT_EQ(make_worker(&w, threads, sink, &port), 0);
    pt_ctx_t pt;
    pt_init(&pt, threads, 1, 0);
    ASSERT_EQ(rill_comp_register(w, 1, "passthrough", &pt_ops, (uintptr_t)&pt), 0);
    ASSERT_EQ(rill_worker_start(w), 0);

    static traffic_t t;
    ASSERT_EQ(traffic_open(&t, 0, 6, 1000, 1, port), 0);
    for (unsigned i = 0; i < t.nconn; i++)
        ASSERT_EQ(tu_write_all(t.fds[i], t.bufs[i], t.lens[i]), 0);
    ASSERT_EQ(tu_sink_wait_count(sink, t.frames, WAIT_MS), 0);
    /* half a frame on the last connection */
    uint8_t half[16 + 8];
    tu_frame_encode(half, 1, 5, "abcdefgh", 8);
    ASSERT_EQ(tu_write_all(t.fds[t.nconn - 1], half, 10), 0);
    ASSERT_EQ(tu_wait_stat_eq(w, TU_STAT(conns_open), t.nconn, SHORT_MS, NULL), 0);

    ASSERT_EQ(rill_worker_stop(w), 0);
    for (unsigned i = 0; i < t.nconn; i++) {
        int rc = tu_wait_peer_closed(t.fds[i], SHORT_MS);
        if (!tu_closed_rc(rc))
            fprintf(stderr, "  connection %u: %d\n", i, rc);
        ASSERT_TRUE(tu_closed_rc(rc));
    }
    ASSERT_EQ(rill_worker_stop(w), 0);            /* idempotent */
    ASSERT_EQ(rill_worker_start(w), RILL_ESTATE); /* no restart */
    rill_stats_t st;
    ASSERT_EQ(rill_worker_stats(w, &st, sizeof st), 0);
    ASSERT_U64_EQ(st.conns_open, 0);
    ASSERT_U64_EQ(st.msgs_in, t.frames);

    traffic_close(&t);
    rill_worker_destroy(w);
    ASSERT_EQ(atomic_load(&pt.released), 1);
    ASSERT_EQ(tu_sink_wait_all_closed(sink, threads, SHORT_MS), 0);
    tu_sink_lock(sink);
    uint64_t frames = ck.frames, errors = ck.errors;
    tu_sink_unlock(sink);
    ASSERT_U64_EQ(errors, 0);
    ASSERT_U64_EQ(frames, t.frames); /* the half frame was never delivered */
    tu_sink_destroy(sink);
    return 0;
}

/* Destroy a running worker directly (it stops itself) while a sender is still writing. */
static int destroy_while_running(void)
{
    const unsigned threads = 2;
    tu_sink_t *sink;
    ASSERT_EQ(tu_sink_new(&sink, NULL, NULL), 0);
    rill_worker_t *w;
    uint16_t port;
    ASSERT_EQ(make_worker(&w, threads, sink, &port), 0);
    pt_ctx_t pt;
    pt_init(&pt, threads, 1, 0);
    ASSERT_EQ(rill_comp_register(w, 1, "passthrough", &pt_ops, (uintptr_t)&pt), 0);
    ASSERT_EQ(rill_worker_start(w), 0);

    static traffic_t t;
    ASSERT_EQ(traffic_open(&t, 0, 4, 50000, 1, port), 0);
    tu_sender_t *snd;
    ASSERT_EQ(tu_send_start(&snd, t.fds, t.bufs, t.lens, t.nconn, 2, 4096), 0);
    ASSERT_EQ(tu_sink_wait_count(sink, 1000, WAIT_MS), 0);
    rill_worker_destroy(w);
    ASSERT_EQ(atomic_load(&pt.released), 1);
    /* the worker is gone: the sender ends (EPIPE/ECONNRESET or done) */
    (void)tu_send_join(snd);
    for (unsigned i = 0; i < t.nconn; i++)
        ASSERT_TRUE(tu_closed_rc(tu_wait_peer_closed(t.fds[i], SHORT_MS)));
    ASSERT_EQ(tu_sink_wait_all_closed(sink, threads, SHORT_MS), 0);
    traffic_close(&t);
    tu_sink_destroy(sink);

    /* A worker that never ran destroys cleanly too. */
    ASSERT_EQ(make_worker(&w, threads, NULL, &port), 0);
    pt_init(&pt, threads, 1, 0);
    ASSERT_EQ(rill_comp_register(w, 1, "idle", &pt_ops, (uintptr_t)&pt), 0);
    rill_worker_destroy(w);
    ASSERT_EQ(atomic_load(&pt.released), 1);
    return 0;
}

/* rill_worker_shutdown from inside a batch callback: loops drain and close connections;
 * rill_worker_stop from the test thread then returns. */
typedef struct sd_ctx {
    rill_worker_t *w;
    atomic_int asked;
} sd_ctx_t;

static int sd_batch(uintptr_t ctx, unsigned loop, const rill_msg_t *msgs, size_t n,
                    rill_emitter_t *em)
{
    (void)loop;
    sd_ctx_t *c = (sd_ctx_t *)ctx;
    for (size_t i = 0; i < n; i++) {
        rill_emit_sink(em, 0, msgs[i].comp_id, msgs[i].key, msgs[i].data, msgs[i].len);
        if (msgs[i].len == 4 && memcmp(msgs[i].data, "stop", 4) == 0) {
            atomic_store(&c->asked, 1); /* before: another loop may close the client at once */
            rill_worker_shutdown(c->w);
        }
    }
    return 0;
}

static int shutdown_from_callback(void)
{
    tu_sink_t *sink;
    ASSERT_EQ(tu_sink_new(&sink, NULL, NULL), 0);
    rill_worker_t *w;
    uint16_t port;
    ASSERT_EQ(make_worker(&w, 2, sink, &port), 0);
    sd_ctx_t sd = {w, 0};
    static const rill_comp_ops_t ops = {sd_batch, NULL, NULL};
    ASSERT_EQ(rill_comp_register(w, 1, "sd", &ops, (uintptr_t)&sd), 0);
    ASSERT_EQ(rill_worker_start(w), 0);
    int fd = tu_connect(port, SHORT_MS);
    ASSERT_GE(fd, 0);
    uint8_t f[16 + 4];
    tu_frame_encode(f, 1, 77, "stop", 4);
    ASSERT_EQ(tu_write_all(fd, f, sizeof f), 0);
    ASSERT_TRUE(tu_closed_rc(tu_wait_peer_closed(fd, SHORT_MS)));
    ASSERT_EQ(atomic_load(&sd.asked), 1);
    ASSERT_EQ(rill_worker_stop(w), 0);
    close(fd);
    rill_worker_destroy(w);
    ASSERT_EQ(tu_sink_wait_all_closed(sink, 2, SHORT_MS), 0);
    ASSERT_EQ(tu_sink_count(sink), 1); /* the frame processed before the drain went out */
    tu_sink_destroy(sink);
    return 0;
}

/* Calls that wait for loops are refused on a loop thread of any worker, not only of
 * their own: the callback of worker b calls them for worker a. */
typedef struct lt_ctx {
    rill_worker_t *other;
    atomic_int unregister_other, unregister_own, view_wait, stop_other, start_other, ran;
} lt_ctx_t;

static rill_worker_t *lt_own;

static int lt_batch(uintptr_t ctx, unsigned loop, const rill_msg_t *msgs, size_t n,
                    rill_emitter_t *em)
{
    (void)loop, (void)msgs, (void)n, (void)em;
    lt_ctx_t *c = (lt_ctx_t *)ctx;
    atomic_store(&c->unregister_other, rill_comp_unregister(c->other, 1));
    atomic_store(&c->unregister_own, rill_comp_unregister(lt_own, 1));
    atomic_store(&c->view_wait, rill_worker_view_wait(c->other, 0, 0));
    atomic_store(&c->stop_other, rill_worker_stop(c->other));
    atomic_store(&c->start_other, rill_worker_start(c->other));
    atomic_store(&c->ran, 1);
    return 0;
}

static int loop_thread_refusals(void)
{
    tu_sink_t *sink;
    ASSERT_EQ(tu_sink_new(&sink, NULL, NULL), 0);
    rill_worker_t *a, *b;
    uint16_t pa, pb;
    ASSERT_EQ(make_worker(&a, 1, sink, &pa), 0);
    ASSERT_EQ(make_worker(&b, 1, sink, &pb), 0);
    lt_own = b;
    lt_ctx_t lt;
    memset(&lt, 0, sizeof lt);
    lt.other = a;
    static const rill_comp_ops_t ops = {lt_batch, NULL, NULL};
    ASSERT_EQ(rill_comp_register(a, 1, "a", &ops, (uintptr_t)&lt), 0); /* a never starts */
    ASSERT_EQ(rill_comp_register(b, 1, "b", &ops, (uintptr_t)&lt), 0);
    ASSERT_EQ(rill_worker_start(b), 0);
    int fd = tu_connect(pb, SHORT_MS);
    ASSERT_GE(fd, 0);
    uint8_t f[16 + 1];
    tu_frame_encode(f, 1, 5, "x", 1);
    ASSERT_EQ(tu_write_all(fd, f, sizeof f), 0);
    int64_t end = tu_now_ms() + SHORT_MS;
    while (!atomic_load(&lt.ran) && tu_now_ms() < end)
        tu_sleep_ms(10);
    ASSERT_EQ(atomic_load(&lt.ran), 1);
    fprintf(stderr,
            "  from b's loop: unregister(a) %s, unregister(b) %s, view_wait(a) %s, "
            "stop(a) %s, start(a) %s\n",
            rill_err_name(atomic_load(&lt.unregister_other)),
            rill_err_name(atomic_load(&lt.unregister_own)),
            rill_err_name(atomic_load(&lt.view_wait)), rill_err_name(atomic_load(&lt.stop_other)),
            rill_err_name(atomic_load(&lt.start_other)));
    ASSERT_EQ(atomic_load(&lt.unregister_other), RILL_ELOOPTHREAD);
    ASSERT_EQ(atomic_load(&lt.unregister_own), RILL_ELOOPTHREAD);
    ASSERT_EQ(atomic_load(&lt.view_wait), RILL_ELOOPTHREAD);
    ASSERT_EQ(atomic_load(&lt.stop_other), RILL_ELOOPTHREAD);
    ASSERT_EQ(atomic_load(&lt.start_other), RILL_ELOOPTHREAD);
    close(fd);
    ASSERT_EQ(rill_worker_stop(b), 0);
    rill_worker_destroy(b);
    ASSERT_EQ(rill_comp_unregister(a, 1), 0); /* still registered: the refusal changed nothing */
    rill_worker_destroy(a);
    tu_sink_destroy(sink);
    return 0;
}

static const t_case_t cases[] = {
    {"passthrough_1thread", passthrough_1thread},
    {"passthrough_2threads", passthrough_2threads},
    {"count_1thread", count_1thread},
    {"count_2threads", count_2threads},
    {"register_churn", register_churn},
    {"emit_comp_chain", emit_comp_chain},
    {"stateless_runs_where_read", stateless_runs_where_read},
    {"busy_wait", busy_wait},
    {"worker_run_own_threads", worker_run_own_threads},
    {"stop_with_open_connections", stop_with_open_connections},
    {"destroy_while_running", destroy_while_running},
    {"shutdown_from_callback", shutdown_from_callback},
    {"loop_thread_refusals", loop_thread_refusals},
    {NULL, NULL},
};

int main(int argc, char **argv)
{
    t_require_io_uring("loop_test");
    tu_ignore_sigpipe();
    return t_run("loop_test", cases, argc, argv);
}
