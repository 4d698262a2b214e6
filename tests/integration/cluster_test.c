/* Cluster membership and key-partitioned routing (core/cluster/), through rill.h: workers
 * in this process, one loop thread each, a real ZooKeeper server (zk_util), real sockets.
 * Each case uses its own cluster root, so a failed case cannot confuse the next one.
 * Exits 77 when java or ZooKeeper's server jar is missing. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cluster/cluster.h" /* rill__cluster_client_id, for the session-expiry case */
#include "harness.h"
#include "integration/fault_proxy.h"
#include "integration/tcp_util.h"
#include "integration/zk_util.h"
#include "rill/rill.h"

#define COMP_PASS 1
#define COMP_COUNT 2
#define COMP_SEQ 3 /* seq_batch: records which worker applied each sequence number */
#define NKEYS 10000u
#define KEY_BASE 0x5eed0000000000ull
#define MAXW 4
/* Failure bound for views to agree (after a join or a disruption). Generous on purpose:
 * the machines are shared (2 cores, a JVM); how long convergence took is printed instead,
 * for the log, never asserted. */
#define VIEW_MS 60000
#define SINK_MS 30000 /* failure bound for frames to reach the sink */

/* libzookeeper_mt 3.8.0's zookeeper_close() leaks the fake responses it makes for
 * requests still in flight (ZOOKEEPER-2894); the session-expiry case closes handles in
 * that state. The allocations are the library's own: only frames inside it are
 * suppressed, so a leak in rill still fails the test. */
__attribute__((visibility("default"))) const char *__lsan_default_suppressions(void);
__attribute__((visibility("default"))) const char *__lsan_default_suppressions(void)
{
    return "leak:libzookeeper_mt.so\n";
}

static zk_server_t g_zk;
static unsigned g_case_no;

/* ------------------------------------------------------------ workers */

typedef struct tw {
    rill_worker_t *w;
    char id[16];
    unsigned idx;              /* index in the cluster's w[] */
    uint16_t port;             /* source listener */
    atomic_uint counts[NKEYS]; /* count computation: frames per key index, on this worker */
    atomic_ullong counted, stray;
    atomic_ullong big;         /* count computation: frames with a payload of BIG_PAYLOAD */
    atomic_ullong seq_applied; /* seq computation: frames applied here */
    atomic_ullong seq_after;   /* ... of which from the watched worker's source (seq below
                                  SEQ_OTHER), applied after g_seq.gone was set */
    atomic_uint view_cbs;
    atomic_ullong cb_epoch, cb_size;
    atomic_int cb_self;
} tw_t;

/* Options of one worker (cl_start_opts); zeroes mean the defaults of cl_start. */
typedef struct tw_opts {
    const char *zk_hosts;         /* NULL: the test's server */
    uint32_t max_frame;           /* 0: rill's default */
    const char *peer_listen;      /* NULL: 127.0.0.1:0 */
    const char *peer_advertise;   /* NULL: the listener's own address */
    const char *listen;           /* NULL: 127.0.0.1:0 */
    const char *source_advertise; /* NULL: derived from the listener */
    unsigned key_groups;          /* 0: rill's default */
} tw_opts_t;

/* The seq computation's record (the leave_hands_keys_over case): how often each sequence
 * number was applied and on which workers, and whether a member other than `watch` has
 * seen a view without `watch` (set by that member's view callback, on its loop). The
 * watched worker's source sends seqs below SEQ_OTHER, another member's source the rest. */
#define SEQ_CAP (4u << 20)
#define SEQ_OTHER (SEQ_CAP / 2)
static struct {
    atomic_uchar times[SEQ_CAP];
    atomic_uchar where[SEQ_CAP]; /* bit i: applied on worker i */
    _Atomic(const char *) watch; /* a string literal; NULL while no case watches */
    atomic_int gone;
} g_seq;

#define BIG_PAYLOAD (100u * 1024u) /* the max_frame case: above B's limit, below A's */

typedef struct cl {
    char root[128];
    tw_t *w[MAXW];
    unsigned n;
    tu_sink_t *sink;
    zhandle_t *raw;
    const char *auth;
    unsigned session_ms;
} cl_t;

static int count_batch(uintptr_t ctx, unsigned loop, const rill_msg_t *m, size_t n,
                       rill_emitter_t *em)
{
    (void)loop;
    (void)em;
    tw_t *t = (tw_t *)ctx;
    for (size_t i = 0; i < n; i++) {
        uint64_t k = m[i].key - KEY_BASE;
        if (m[i].key >= KEY_BASE && k < NKEYS)
            atomic_fetch_add_explicit(&t->counts[k], 1, memory_order_relaxed);
        else
            atomic_fetch_add_explicit(&t->stray, 1, memory_order_relaxed);
    }
    for (size_t i = 0; i < n; i++) {
        if (m[i].len != BIG_PAYLOAD)
            continue;
        /* payload: the low byte of the key, over and over */
        if (m[i].data[0] == (uint8_t)m[i].key && m[i].data[m[i].len - 1] == (uint8_t)m[i].key)
            atomic_fetch_add_explicit(&t->big, 1, memory_order_relaxed);
        else
            atomic_fetch_add_explicit(&t->stray, 1, memory_order_relaxed);
    }
    atomic_fetch_add_explicit(&t->counted, n, memory_order_release);
    return 0;
}

static int seq_batch(uintptr_t ctx, unsigned loop, const rill_msg_t *m, size_t n,
                     rill_emitter_t *em)
{
    (void)loop;
    (void)em;
    tw_t *t = (tw_t *)ctx;
    uint64_t after = 0, applied = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t seq = m[i].len == 8 ? tu_get_be64(m[i].data) : UINT64_MAX;
        if (seq >= SEQ_CAP) {
            atomic_fetch_add_explicit(&t->stray, 1, memory_order_relaxed);
            continue;
        }
        atomic_fetch_add_explicit(&g_seq.times[seq], 1, memory_order_relaxed);
        atomic_fetch_or_explicit(&g_seq.where[seq], (unsigned char)(1u << t->idx),
                                 memory_order_relaxed);
        applied++;
        after += seq < SEQ_OTHER && atomic_load_explicit(&g_seq.gone, memory_order_acquire);
    }
    atomic_fetch_add_explicit(&t->seq_after, after, memory_order_relaxed);
    atomic_fetch_add_explicit(&t->seq_applied, applied, memory_order_release);
    return 0;
}

static int view_has(const rill_view_t *v, const char *id)
{
    for (unsigned i = 0; i < rill_view_size(v); i++)
        if (strcmp(rill_view_member(v, i), id) == 0)
            return 1;
    return 0;
}

static void view_cb(uintptr_t ctx, const rill_view_t *v)
{
    tw_t *t = (tw_t *)ctx;
    /* size, then epoch, then the count: a reader that sees an epoch sees its size */
    atomic_store(&t->cb_size, rill_view_size(v));
    atomic_store(&t->cb_self, rill_view_self(v));
    atomic_store(&t->cb_epoch, rill_view_epoch(v));
    atomic_fetch_add(&t->view_cbs, 1);
    /* another member adopted a view without the watched one: it owns the watched one's
     * keys from now on */
    const char *watch = atomic_load(&g_seq.watch);
    if (watch && strcmp(t->id, watch) != 0 && rill_view_size(v) && !view_has(v, watch))
        atomic_store_explicit(&g_seq.gone, 1, memory_order_release);
}

static void cl_init(cl_t *c, unsigned session_ms, const char *auth)
{
    memset(c, 0, sizeof *c);
    snprintf(c->root, sizeof c->root, "/rill/test-%d-%u", (int)getpid(), ++g_case_no);
    c->session_ms = session_ms;
    c->auth = auth;
}

/* Creates and starts worker i with id `id` and options o (NULL: defaults). Returns 0 or a
 * rill error. */
static int cl_start_opts(cl_t *c, unsigned i, const char *id, const tw_opts_t *o)
{
    static const tw_opts_t defaults = {0};
    if (!o)
        o = &defaults;
    tw_t *t = calloc(1, sizeof *t);
    if (!t)
        return RILL_ENOMEM;
    snprintf(t->id, sizeof t->id, "%s", id);
    t->idx = i;
    atomic_init(&t->cb_self, -2);
    c->w[i] = t;
    if (i >= c->n)
        c->n = i + 1;
    if (!c->sink) {
        int rc = tu_sink_new(&c->sink, NULL, NULL);
        if (rc < 0)
            return rc;
    }
    rill_config_t *cfg = rill_config_new();
    if (!cfg)
        return RILL_ENOMEM;
    int rc;
    if ((rc = rill_config_add_listener(cfg, o->listen ? o->listen : "127.0.0.1:0",
                                       RILL_FRAMING_RILL, 0, 0, 0)) < 0 ||
        (rc = rill_config_add_sink(cfg, tu_sink_addr(c->sink))) < 0 ||
        (rc = rill_config_set_cluster(
             cfg, o->zk_hosts ? o->zk_hosts : zk_server_connect_string(&g_zk), c->root, id,
             o->peer_listen ? o->peer_listen : "127.0.0.1:0")) < 0 ||
        (o->peer_advertise && (rc = rill_config_set_peer_advertise(cfg, o->peer_advertise)) < 0) ||
        (o->source_advertise &&
         (rc = rill_config_set_source_advertise(cfg, o->source_advertise)) < 0) ||
        (o->max_frame && (rc = rill_config_set_max_frame(cfg, o->max_frame)) < 0) ||
        (o->key_groups && (rc = rill_config_set_key_groups(cfg, o->key_groups)) < 0) ||
        (c->session_ms && (rc = rill_config_set_session_timeout_ms(cfg, c->session_ms)) < 0) ||
        (c->auth && (rc = rill_config_set_cluster_auth(cfg, c->auth)) < 0) ||
        (rc = rill_config_set_view_cb(cfg, view_cb, (uintptr_t)t)) < 0) {
        fprintf(stderr, "  config for %s: %s\n", id, rill_strerror(rc));
        rill_config_destroy(cfg);
        return rc;
    }
    rc = rill_worker_new(&t->w, cfg);
    rill_config_destroy(cfg);
    if (rc < 0) {
        fprintf(stderr, "  rill_worker_new(%s): %s\n", id, rill_strerror(rc));
        return rc;
    }
    t->port = (uint16_t)rill_worker_listener_port(t->w, 0);
    static const rill_comp_ops_t pass = {tu_pass_batch, NULL, NULL};
    static const rill_comp_ops_t count = {count_batch, NULL, NULL};
    static const rill_comp_ops_t seq = {seq_batch, NULL, NULL};
    if ((rc = rill_comp_register(t->w, COMP_PASS, "pass", &pass, 0)) < 0 ||
        (rc = rill_comp_register(t->w, COMP_COUNT, "count", &count, (uintptr_t)t)) < 0 ||
        (rc = rill_comp_register(t->w, COMP_SEQ, "seq", &seq, (uintptr_t)t)) < 0 ||
        (rc = rill_worker_start(t->w)) < 0) {
        fprintf(stderr, "  starting %s: %s\n", id, rill_strerror(rc));
        return rc;
    }
    return 0;
}

static int cl_start(cl_t *c, unsigned i, const char *id)
{
    return cl_start_opts(c, i, id, NULL);
}

static void cl_destroy(cl_t *c)
{
    for (unsigned i = 0; i < c->n; i++) {
        if (!c->w[i])
            continue;
        rill_worker_destroy(c->w[i]->w);
        free(c->w[i]);
        c->w[i] = NULL;
    }
    tu_sink_destroy(c->sink);
    c->sink = NULL;
    zk_raw_close(c->raw);
    c->raw = NULL;
}

static int cl_raw(cl_t *c)
{
    if (!c->raw)
        c->raw = zk_raw_connect(zk_server_connect_string(&g_zk), 10000, NULL);
    return c->raw ? 0 : -1;
}

static void print_stats(const tw_t *t)
{
    rill_stats_t s;
    memset(&s, 0, sizeof s);
    if (!t || !t->w || rill_worker_stats(t->w, &s, sizeof s) < 0)
        return;
    fprintf(stderr,
            "    %s: in=%" PRIu64 " dispatched=%" PRIu64 " out=%" PRIu64 " forwarded=%" PRIu64
            " peer_in=%" PRIu64 " misrouted=%" PRIu64 " rerouted=%" PRIu64 " view_changes=%" PRIu64
            " zk_errors=%" PRIu64 " sink_dropped=%" PRIu64 " midframe=%" PRIu64 " conn_err=%" PRIu64
            " sink_errors=%" PRIu64 "\n      peer_dropped=%" PRIu64 " acked_in=%" PRIu64
            " resent=%" PRIu64 " dup_skipped=%" PRIu64 " acks_sent=%" PRIu64 " err_control=%" PRIu64
            " paused=%" PRIu64 " handoff_dropped=%" PRIu64 " retained_bytes=%" PRIu64 "\n",
            t->id, s.msgs_in, s.msgs_dispatched, s.msgs_out, s.forwarded, s.peer_in, s.misrouted,
            s.rerouted, s.view_changes, s.zk_errors, s.sink_dropped, s.err_midframe, s.err_conn,
            s.sink_errors, s.peer_dropped, s.acked_in, s.resent, s.dup_skipped, s.acks_sent,
            s.err_control, s.paused, s.handoff_dropped, s.retained_bytes);
}

static void print_all_stats(const cl_t *c)
{
    for (unsigned i = 0; i < c->n; i++)
        print_stats(c->w[i]);
}

/* ------------------------------------------------------------ views */

/* "epoch=E members=a,b,c self=i" for messages, or "(no view)". */
static void view_str(rill_worker_t *w, char *out, size_t cap)
{
    rill_view_t *v = rill_worker_view(w);
    if (!v) {
        snprintf(out, cap, "(no view)");
        return;
    }
    size_t len = (size_t)snprintf(out, cap, "epoch=%" PRIu64 " members=", rill_view_epoch(v));
    for (unsigned i = 0; i < rill_view_size(v) && len < cap; i++)
        len += (size_t)snprintf(out + len, cap - len, "%s%s", i ? "," : "", rill_view_member(v, i));
    if (len < cap)
        snprintf(out + len, cap - len, " self=%d", rill_view_self(v));
    rill_view_destroy(v);
}

/* Members of v joined with ',' (the API sorts them by id). */
static void members_str(const rill_view_t *v, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    for (unsigned i = 0; i < rill_view_size(v) && len < cap; i++)
        len += (size_t)snprintf(out + len, cap - len, "%s%s", i ? "," : "", rill_view_member(v, i));
}

/* True when the workers in `which` (indices into c->w, k of them) all have a view whose
 * members are exactly `expect` ("a,b,c"), with one epoch, each naming itself. */
static int views_agree(cl_t *c, const unsigned *which, unsigned k, const char *expect,
                       uint64_t *epoch)
{
    uint64_t e0 = 0;
    for (unsigned j = 0; j < k; j++) {
        tw_t *t = c->w[which[j]];
        rill_view_t *v = rill_worker_view(t->w);
        if (!v)
            return 0;
        char m[512];
        members_str(v, m, sizeof m);
        int self = rill_view_self(v);
        int ok = strcmp(m, expect) == 0 && self >= 0 &&
                 strcmp(rill_view_member(v, (unsigned)self), t->id) == 0;
        uint64_t e = rill_view_epoch(v);
        rill_view_destroy(v);
        if (!ok)
            return 0;
        if (j == 0)
            e0 = e;
        else if (e != e0)
            return 0;
    }
    if (epoch)
        *epoch = e0;
    return 1;
}

/* Polls views_agree every 5 ms. Returns the elapsed ms, or -1 on timeout (after printing
 * every worker's view). */
static int64_t wait_agree(cl_t *c, const unsigned *which, unsigned k, const char *expect,
                          int timeout_ms, uint64_t *epoch)
{
    int64_t t0 = tu_now_ms(), end = t0 + timeout_ms;
    for (;;) {
        if (views_agree(c, which, k, expect, epoch))
            return tu_now_ms() - t0;
        if (tu_now_ms() >= end)
            break;
        tu_sleep_ms(5);
    }
    fprintf(stderr, "  views did not agree on [%s] within %d ms:\n", expect, timeout_ms);
    for (unsigned j = 0; j < k; j++) {
        char s[512];
        view_str(c->w[which[j]]->w, s, sizeof s);
        fprintf(stderr, "    %s: %s\n", c->w[which[j]]->id, s);
    }
    print_all_stats(c);
    return -1;
}

static const unsigned ALL3[] = {0, 1, 2};

/* Starts workers a, b, c and waits until they agree. Returns 0 or -1. */
static int start3(cl_t *c, uint64_t *epoch)
{
    static const char *ids[] = {"a", "b", "c"};
    for (unsigned i = 0; i < 3; i++)
        if (cl_start(c, i, ids[i]) < 0)
            return -1;
    return wait_agree(c, ALL3, 3, "a,b,c", VIEW_MS, epoch) < 0 ? -1 : 0;
}

/* ------------------------------------------------------------ traffic */

/* Key of frame number seq when nkeys keys are used round-robin. */
static uint64_t key_of(uint64_t seq, unsigned nkeys)
{
    return KEY_BASE + seq % nkeys;
}

/* Sends frames seq0..seq0+n-1 (payload = seq, 8 bytes big-endian; key = key_of) for comp
 * to 127.0.0.1:port on one connection, then closes it. Returns 0 or -errno. */
static int send_frames(uint16_t port, uint32_t comp, uint64_t seq0, uint64_t n, unsigned nkeys)
{
    tu_buf_t b = {0};
    for (uint64_t s = seq0; s < seq0 + n; s++) {
        uint8_t p[8];
        tu_put_be64(p, s);
        tu_buf_frame(&b, comp, key_of(s, nkeys), p, sizeof p);
    }
    int fd = tu_connect(port, 5000);
    if (fd < 0) {
        tu_buf_free(&b);
        return fd;
    }
    int rc = tu_write_all(fd, b.data, b.len);
    close(fd);
    tu_buf_free(&b);
    return rc;
}

/* Checks that the sink got every seq in [lo, hi) of comp COMP_PASS exactly once. Returns
 * the number of problems (missing + duplicated + foreign) and prints a summary. */
static uint64_t check_once(tu_sink_t *s, uint64_t lo, uint64_t hi, const char *what)
{
    uint64_t n = hi - lo, missing = 0, dup = 0, foreign = 0;
    uint8_t *seen = calloc(n ? n : 1, 1);
    if (!seen)
        abort();
    size_t nf;
    tu_sink_lock(s);
    const tu_frame_t *f = tu_sink_frames(s, &nf);
    for (size_t i = 0; i < nf; i++) {
        if (f[i].comp_id != COMP_PASS || f[i].len != 8) {
            foreign++;
            continue;
        }
        uint64_t seq = tu_get_be64(f[i].payload);
        if (seq < lo || seq >= hi)
            continue;
        if (seen[seq - lo]++)
            dup++;
    }
    tu_sink_unlock(s);
    uint64_t first_missing = UINT64_MAX;
    for (uint64_t i = 0; i < n; i++)
        if (!seen[i]) {
            if (first_missing == UINT64_MAX)
                first_missing = lo + i;
            missing++;
        }
    free(seen);
    if (missing || dup || foreign)
        fprintf(stderr,
                "  %s: frames %" PRIu64 "..%" PRIu64 ": %" PRIu64 " missing (first seq %" PRIu64
                "), %" PRIu64 " duplicated, %" PRIu64 " unexpected frames at the sink\n",
                what, lo, hi - 1, missing, first_missing == UINT64_MAX ? 0 : first_missing, dup,
                foreign);
    return missing + dup + foreign;
}

/* Sends n frames to worker w and waits until the sink holds `expect_total` frames. */
static int send_and_wait(cl_t *c, tw_t *t, uint64_t seq0, uint64_t n, unsigned nkeys,
                         size_t expect_total)
{
    int rc = send_frames(t->port, COMP_PASS, seq0, n, nkeys);
    if (rc < 0) {
        fprintf(stderr, "  sending to %s: %s\n", t->id, strerror(-rc));
        return -1;
    }
    if (tu_sink_wait_count(c->sink, expect_total, SINK_MS) < 0) {
        fprintf(stderr, "  sink has %zu frames, expected %zu, after %d ms\n",
                tu_sink_count(c->sink), expect_total, SINK_MS);
        print_all_stats(c);
        return -1;
    }
    return 0;
}

static uint64_t stat_of(const tw_t *t, size_t off)
{
    return tu_stat(t->w, off);
}

/* ------------------------------------------------------------ cases */

static int join_body(cl_t *c)
{
    static const char *ids[] = {"a", "b", "c"};
    int64_t t_last = 0;
    for (unsigned i = 0; i < 3; i++) {
        ASSERT_EQ(cl_start(c, i, ids[i]), 0);
        t_last = tu_now_ms();
    }
    uint64_t epoch = 0;
    int64_t ms = wait_agree(c, ALL3, 3, "a,b,c", VIEW_MS, &epoch);
    if (ms < 0)
        T_FAIL_AT_("3 workers did not agree on a view within %d ms", VIEW_MS);
    fprintf(stderr,
            "  join: 3 views agree %" PRId64 " ms after the last start (epoch %" PRIu64 ")\n",
            tu_now_ms() - t_last, epoch);
    for (unsigned i = 0; i < 3; i++) {
        tw_t *t = c->w[i];
        /* the first view is there: waiting for epoch 0 to change returns at once */
        ASSERT_EQ(rill_worker_view_wait(t->w, 0, 1000), 1);
        /* nothing changes now: a wait for a new epoch times out */
        ASSERT_EQ(rill_worker_view_wait(t->w, epoch, 200), 0);
        rill_view_t *v = rill_worker_view(t->w);
        ASSERT_PTR_NE(v, NULL);
        ASSERT_EQ(rill_view_size(v), 3);
        ASSERT_STR_EQ(rill_view_member(v, (unsigned)rill_view_self(v)), t->id);
        for (unsigned m = 0; m < 3; m++) {
            const char *addr = rill_view_member_addr(v, m);
            ASSERT_PTR_NE(addr, NULL);
            ASSERT_TRUE(strncmp(addr, "127.0.0.1:", 10) == 0);
        }
        ASSERT_TRUE(rill_view_member(v, 3) == NULL);
        rill_view_destroy(v);
        /* the view callback runs on the loop, possibly after the view is published: it
         * ran and saw the final view */
        uint64_t cbe = 0;
        unsigned cbs = 0;
        int64_t cb_end = tu_now_ms() + VIEW_MS;
        while (((cbe = atomic_load(&t->cb_epoch)) != epoch ||
                (cbs = atomic_load(&t->view_cbs)) == 0) &&
               tu_now_ms() < cb_end)
            tu_sleep_ms(5);
        ASSERT_U64_EQ(cbe, epoch);
        ASSERT_GE(cbs, 1);
        ASSERT_U64_EQ(atomic_load(&t->cb_size), 3);
        ASSERT_U64_GE(stat_of(t, TU_STAT(view_changes)), 1);
    }
    /* each member node carries the worker's peer address */
    ASSERT_EQ(cl_raw(c), 0);
    struct String_vector kids = {0, NULL};
    char path[256];
    snprintf(path, sizeof path, "%s/members", c->root);
    ASSERT_EQ(zoo_get_children(c->raw, path, 0, &kids), ZOK);
    int nkids = kids.count;
    deallocate_String_vector(&kids);
    ASSERT_EQ(nkids, 3);
    return 0;
}

/* count: 10k keys, each sent 5 times, to worker A only (spread = 0) or over all three. */
static int count_body(cl_t *c, int spread)
{
    const unsigned reps = 5;
    ASSERT_EQ(start3(c, NULL), 0);
    rill_view_t *v = rill_worker_view(c->w[0]->w);
    ASSERT_PTR_NE(v, NULL);
    /* owner index in the view -> worker index (the view is sorted by id: a, b, c) */
    int owner_w[NKEYS];
    unsigned share[3] = {0, 0, 0};
    for (unsigned k = 0; k < NKEYS; k++) {
        int o = rill_view_owner(v, KEY_BASE + k);
        ASSERT_TRUE(o >= 0 && o < 3);
        const char *id = rill_view_member(v, (unsigned)o);
        owner_w[k] = id[0] - 'a';
        share[owner_w[k]]++;
    }
    rill_view_destroy(v);
    fprintf(stderr, "  ownership of %u keys: a=%u b=%u c=%u\n", NKEYS, share[0], share[1],
            share[2]);
    for (unsigned i = 0; i < 3; i++)
        ASSERT_GT(share[i], NKEYS / 6); /* rendezvous spreads */

    /* one connection per target worker; rep r of key k goes to worker (k + r) % 3 */
    tu_buf_t b[3] = {{0}, {0}, {0}};
    uint64_t expect_fwd[3] = {0, 0, 0};
    for (unsigned r = 0; r < reps; r++)
        for (unsigned k = 0; k < NKEYS; k++) {
            unsigned to = spread ? (k + r) % 3 : 0;
            tu_buf_frame(&b[to], COMP_COUNT, KEY_BASE + k, "x", 1);
            if ((int)to != owner_w[k])
                expect_fwd[to]++;
        }
    int fds[3];
    uint8_t *bufs[3];
    size_t lens[3];
    unsigned nconn = 0;
    for (unsigned i = 0; i < 3; i++) {
        if (!b[i].len)
            continue;
        fds[nconn] = tu_connect(c->w[i]->port, 5000);
        ASSERT_GE(fds[nconn], 0);
        bufs[nconn] = b[i].data;
        lens[nconn] = b[i].len;
        nconn++;
    }
    tu_sender_t *snd;
    ASSERT_EQ(tu_send_start(&snd, fds, bufs, lens, nconn, nconn, 64 * 1024), 0);
    int src = tu_send_join(snd);
    for (unsigned i = 0; i < nconn; i++)
        close(fds[i]);
    for (unsigned i = 0; i < 3; i++)
        tu_buf_free(&b[i]);
    ASSERT_EQ(src, 0);

    const uint64_t total = (uint64_t)NKEYS * reps;
    int64_t end = tu_now_ms() + SINK_MS;
    uint64_t got = 0;
    while (tu_now_ms() < end) {
        got = 0;
        for (unsigned i = 0; i < 3; i++)
            got += atomic_load(&c->w[i]->counted);
        if (got >= total)
            break;
        tu_sleep_ms(10);
    }
    tu_sleep_ms(300); /* anything extra (a duplicate) would show up now */
    got = 0;
    for (unsigned i = 0; i < 3; i++)
        got += atomic_load(&c->w[i]->counted);
    if (got != total) {
        print_all_stats(c);
        T_FAIL_AT_("counted %" PRIu64 " frames in all, sent %" PRIu64, got, total);
    }
    unsigned bad_multi = 0, bad_total = 0, bad_owner = 0;
    for (unsigned k = 0; k < NKEYS; k++) {
        unsigned where = 0, on = 3, sum = 0;
        for (unsigned i = 0; i < 3; i++) {
            unsigned n = atomic_load(&c->w[i]->counts[k]);
            if (n) {
                where++;
                on = i;
            }
            sum += n;
        }
        if (where != 1) {
            if (bad_multi++ < 5)
                fprintf(stderr, "  key %u counted on %u workers (a=%u b=%u c=%u)\n", k, where,
                        atomic_load(&c->w[0]->counts[k]), atomic_load(&c->w[1]->counts[k]),
                        atomic_load(&c->w[2]->counts[k]));
        } else if ((int)on != owner_w[k]) {
            if (bad_owner++ < 5)
                fprintf(stderr, "  key %u counted on %s, owner is %s\n", k, c->w[on]->id,
                        c->w[owner_w[k]]->id);
        }
        if (sum != reps && bad_total++ < 5)
            fprintf(stderr, "  key %u: total %u\n", k, sum);
    }
    for (unsigned i = 0; i < 3; i++)
        ASSERT_U64_EQ(atomic_load(&c->w[i]->stray), 0);
    if (bad_multi || bad_owner || bad_total)
        print_all_stats(c);
    ASSERT_EQ(bad_multi, 0);
    ASSERT_EQ(bad_owner, 0);
    ASSERT_EQ(bad_total, 0);

    /* stats: with stable, agreeing views every non-owned frame is forwarded once */
    uint64_t fwd = 0, pin = 0;
    for (unsigned i = 0; i < 3; i++) {
        rill_stats_t s;
        ASSERT_EQ(rill_worker_stats(c->w[i]->w, &s, sizeof s), 0);
        if (s.forwarded != expect_fwd[i]) {
            print_all_stats(c);
            T_FAIL_AT_("%s forwarded %" PRIu64 " frames, %" PRIu64 " of the frames sent to it "
                       "belong to other members",
                       c->w[i]->id, s.forwarded, expect_fwd[i]);
        }
        ASSERT_U64_EQ(s.misrouted, 0);
        fwd += s.forwarded;
        pin += s.peer_in;
    }
    ASSERT_U64_EQ(pin, fwd);
    return 0;
}

static int count_body_a(cl_t *c)
{
    return count_body(c, 0);
}
static int count_body_spread(cl_t *c)
{
    return count_body(c, 1);
}

static int leave_body(cl_t *c)
{
    ASSERT_EQ(start3(c, NULL), 0);
    rill_view_t *v3 = rill_worker_view(c->w[0]->w);
    ASSERT_PTR_NE(v3, NULL);

    /* ~1.5 s of traffic to A over 5000 keys; C stops in the middle of it */
    const uint64_t n = 60000;
    const unsigned nkeys = 5000;
    tu_buf_t b = {0};
    for (uint64_t s = 0; s < n; s++) {
        uint8_t p[8];
        tu_put_be64(p, s);
        tu_buf_frame(&b, COMP_PASS, key_of(s, nkeys), p, sizeof p);
    }
    int fd = tu_connect(c->w[0]->port, 5000);
    ASSERT_GE(fd, 0);
    uint8_t *bufs[1] = {b.data};
    size_t lens[1] = {b.len};
    tu_sender_t *snd;
    ASSERT_EQ(tu_send_start_paced(&snd, &fd, bufs, lens, 1, 1, 12 * 1024, 10000), 0);
    tu_sleep_ms(400);
    size_t before_stop = tu_sink_count(c->sink);
    int64_t t0 = tu_now_ms();
    ASSERT_EQ(rill_worker_stop(c->w[2]->w), 0);
    int64_t stop_ms = tu_now_ms() - t0;
    static const unsigned AB[] = {0, 1};
    int64_t conv = wait_agree(c, AB, 2, "a,b", VIEW_MS, NULL);
    ASSERT_GE(conv, 0);
    fprintf(stderr,
            "  leave: rill_worker_stop(c) took %" PRId64 " ms; a and b agree on [a,b] "
            "%" PRId64 " ms later; sink had %zu frames when c stopped\n",
            stop_ms, conv, before_stop);
    int sent_while_leaving = !tu_send_done(snd);
    ASSERT_EQ(tu_send_join(snd), 0);
    close(fd);
    tu_buf_free(&b);
    if (!sent_while_leaving)
        fprintf(stderr, "  note: the sender had finished before a and b converged\n");

    /* only C's keys moved */
    rill_view_t *v2 = rill_worker_view(c->w[0]->w);
    ASSERT_PTR_NE(v2, NULL);
    unsigned moved = 0, c_keys = 0, wrong = 0;
    for (uint64_t k = 0; k < 20000; k++) {
        const char *o3 = rill_view_member(v3, (unsigned)rill_view_owner(v3, KEY_BASE + k));
        const char *o2 = rill_view_member(v2, (unsigned)rill_view_owner(v2, KEY_BASE + k));
        if (strcmp(o3, "c") == 0)
            c_keys++;
        if (strcmp(o3, o2) != 0) {
            moved++;
            if (strcmp(o3, "c") != 0 && wrong++ < 5)
                fprintf(stderr, "  key %" PRIu64 " moved from %s to %s\n", k, o3, o2);
        }
    }
    rill_view_destroy(v3);
    rill_view_destroy(v2);
    ASSERT_EQ(wrong, 0);
    ASSERT_EQ(moved, c_keys);
    ASSERT_GT(c_keys, 0);

    /* every frame A accepted reaches the sink once (through A, B, or C before it left) */
    if (tu_sink_wait_count(c->sink, n, SINK_MS) < 0 || check_once(c->sink, 0, n, "leave")) {
        fprintf(stderr, "  sink has %zu of %" PRIu64 " frames; stats (c stopped):\n",
                tu_sink_count(c->sink), n);
        check_once(c->sink, 0, n, "leave");
        print_all_stats(c);
        T_FAIL_AT_("frames accepted by a were lost when c left gracefully");
    }
    print_all_stats(c);
    ASSERT_U64_EQ(stat_of(c->w[0], TU_STAT(sink_dropped)), 0);
    ASSERT_U64_EQ(stat_of(c->w[1], TU_STAT(sink_dropped)), 0);
    ASSERT_U64_EQ(stat_of(c->w[2], TU_STAT(sink_dropped)), 0);
    /* the survivors keep serving in the new view */
    ASSERT_EQ(send_and_wait(c, c->w[1], n, 5000, nkeys, n + 5000), 0);
    ASSERT_EQ(check_once(c->sink, 0, n + 5000, "after leave"), 0);
    return 0;
}

static int zk_restart_body(cl_t *c)
{
    c->session_ms = 2000;
    uint64_t e0;
    ASSERT_EQ(start3(c, &e0), 0);
    uint64_t seq = 0;
    size_t total = 0;
    ASSERT_EQ(zk_server_stop(&g_zk), 0);
    int64_t down_at = tu_now_ms();
    /* ZooKeeper is gone: traffic to every worker still flows with the last view */
    for (unsigned i = 0; i < 3; i++) {
        total += 5000;
        ASSERT_EQ(send_and_wait(c, c->w[i], seq, 5000, 3000, total), 0);
        seq += 5000;
    }
    ASSERT_EQ(check_once(c->sink, 0, seq, "zk down"), 0);
    /* past the session timeout the membership is given up; the workers still serve */
    while (tu_now_ms() - down_at < (int64_t)c->session_ms * 3 / 2 + 500)
        tu_sleep_ms(50);
    for (unsigned i = 0; i < 3; i++) {
        total += 5000;
        ASSERT_EQ(send_and_wait(c, c->w[i], seq, 5000, 3000, total), 0);
        seq += 5000;
    }
    ASSERT_EQ(check_once(c->sink, 0, seq, "zk down past the session timeout"), 0);
    int64_t up0 = tu_now_ms();
    ASSERT_EQ(zk_server_restart(&g_zk), 0);
    int64_t up = tu_now_ms();
    uint64_t e1;
    int64_t conv = wait_agree(c, ALL3, 3, "a,b,c", VIEW_MS, &e1);
    ASSERT_GE(conv, 0);
    fprintf(stderr,
            "  zk restart: server serving after %" PRId64 " ms; views agree %" PRId64
            " ms later (epoch %" PRIu64 " -> %" PRIu64 ")\n",
            up - up0, conv, e0, e1);
    /* the sessions may have survived, so agreeing proves little: a new member must be seen
     * by everyone, which needs re-armed watches */
    ASSERT_EQ(cl_start(c, 3, "d"), 0);
    static const unsigned ALL4[] = {0, 1, 2, 3};
    conv = wait_agree(c, ALL4, 4, "a,b,c,d", VIEW_MS, &e1);
    ASSERT_GE(conv, 0);
    fprintf(stderr,
            "  zk restart: a new member d is in every view %" PRId64 " ms after it "
            "started (epoch %" PRIu64 ")\n",
            conv, e1);
    for (unsigned i = 0; i < 3; i++) {
        total += 3000;
        ASSERT_EQ(send_and_wait(c, c->w[i], seq, 3000, 3000, total), 0);
        seq += 3000;
    }
    ASSERT_EQ(check_once(c->sink, 0, seq, "after restart"), 0);
    print_all_stats(c);
    return 0;
}

static int expire_body(cl_t *c)
{
    uint64_t e0;
    ASSERT_EQ(start3(c, &e0), 0);
    ASSERT_EQ(cl_raw(c), 0);
    int64_t sid = 0;
    char pw[16];
    ASSERT_EQ(rill__cluster_client_id(c->w[2]->w, &sid, pw), 0);
    char path[256];
    snprintf(path, sizeof path, "%s/members/c", c->root);
    struct Stat st;
    ASSERT_EQ(zoo_exists(c->raw, path, 0, &st), ZOK);
    ASSERT_U64_EQ((uint64_t)st.ephemeralOwner, (uint64_t)sid);
    uint64_t zk_err0 = stat_of(c->w[2], TU_STAT(zk_errors));
    int64_t t0 = tu_now_ms();
    /* The takeover races with the worker's own reconnect: when the worker's client gets
     * the session back before the second handle closes it, the server refuses that close
     * (session moved) and the session lives on. Then the node keeps its owner: try again. */
    int back = 0, attempts = 0, still_owned = 0;
    while (!back && attempts < 5) {
        attempts++;
        int rc = zk_expire_session(zk_server_connect_string(&g_zk), sid, pw, 10000);
        if (rc != 0 && rc != -EIO) /* -EIO: refused, the session is gone already */
            T_FAIL_AT_("could not take over session 0x%" PRIx64 ": %s", sid, strerror(-rc));
        /* A closed session takes its ephemeral node at once; a node still owned by the
         * old session a second later means the close was refused. */
        int64_t t1 = tu_now_ms();
        int gone = 0;
        still_owned = 0;
        while (tu_now_ms() - t1 < VIEW_MS) {
            memset(&st, 0, sizeof st);
            int zrc = zoo_exists(c->raw, path, 0, &st);
            if (zrc == ZOK && st.ephemeralOwner != 0 && st.ephemeralOwner != sid) {
                back = 1;
                break;
            }
            if (zrc == ZNONODE)
                gone = 1;
            still_owned = zrc == ZOK && st.ephemeralOwner == sid;
            if (!gone && still_owned && tu_now_ms() - t1 > 1000)
                break;
            tu_sleep_ms(10);
        }
        if (!back && !gone && still_owned)
            fprintf(stderr,
                    "  the worker kept session 0x%" PRIx64 " (it reconnected first); "
                    "taking it over again\n",
                    sid);
        else if (!back)
            break;
    }
    if (!back) {
        print_all_stats(c);
        T_FAIL_AT_("%s was not re-created by a new session (%d takeovers; node still owned "
                   "by the old session: %s)",
                   path, attempts, still_owned ? "yes" : "no");
    }
    int64_t node_ms = tu_now_ms() - t0;
    int64_t sid2 = 0;
    ASSERT_EQ(rill__cluster_client_id(c->w[2]->w, &sid2, pw), 0);
    ASSERT_U64_EQ((uint64_t)st.ephemeralOwner, (uint64_t)sid2);
    uint64_t e1 = 0;
    int64_t end = tu_now_ms() + VIEW_MS;
    int ok = 0;
    while (tu_now_ms() < end) {
        if (views_agree(c, ALL3, 3, "a,b,c", &e1) && e1 > e0) {
            ok = 1;
            break;
        }
        tu_sleep_ms(5);
    }
    if (!ok) {
        wait_agree(c, ALL3, 3, "a,b,c", 0, NULL);
        T_FAIL_AT_("views did not agree on a,b,c with an epoch above %" PRIu64, e0);
    }
    fprintf(stderr,
            "  expiry: node re-created %" PRId64 " ms after the takeover, views agree "
            "at epoch %" PRIu64 " (was %" PRIu64 ")\n",
            node_ms, e1, e0);
    ASSERT_U64_GE(stat_of(c->w[2], TU_STAT(zk_errors)), zk_err0 + 1);
    /* C serves and routes again */
    ASSERT_EQ(send_and_wait(c, c->w[2], 0, 6000, 3000, 6000), 0);
    ASSERT_EQ(check_once(c->sink, 0, 6000, "after expiry"), 0);
    ASSERT_GT(stat_of(c->w[2], TU_STAT(forwarded)), 0);
    return 0;
}

/* Scans a file for a string. Returns 1 when found. */
static int file_contains(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[4096];
    int found = 0;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

static int auth_body(cl_t *c)
{
    /* rill must never log the password: catch stderr while the workers live */
    char logp[] = "/tmp/rill-cluster-auth-XXXXXX";
    int lfd = mkstemp(logp);
    ASSERT_GE(lfd, 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(lfd, 2);
    close(lfd);
    int rc = start3(c, NULL);
    char path[256], mpath[256];
    snprintf(mpath, sizeof mpath, "%s/members", c->root);
    snprintf(path, sizeof path, "%s/members/b", c->root);
    int raw = cl_raw(c);
    int get = -1, del = -1, set = -1, create = -1, setm = -1, setr = -1, delm = -1;
    char data[1024];
    int dlen = sizeof data - 1;
    if (rc == 0 && raw == 0) {
        get = zoo_get(c->raw, path, 0, data, &dlen, NULL);
        del = zoo_delete(c->raw, path, -1);
        set = zoo_set(c->raw, path, "{}", 2, -1);
        char ipath[300];
        static const char idata[] = "{\"id\":\"intruder\",\"addr\":\"127.0.0.1:9\"}";
        snprintf(ipath, sizeof ipath, "%s/intruder", mpath);
        create = zoo_create(c->raw, ipath, idata, (int)strlen(idata), &ZOO_OPEN_ACL_UNSAFE,
                            ZOO_EPHEMERAL, NULL, 0);
        setm = zoo_set(c->raw, mpath, "x", 1, -1);
        setr = zoo_set(c->raw, c->root, "x", 1, -1);
        delm = zoo_delete(c->raw, mpath, -1);
    }
    int agree = rc == 0 ? views_agree(c, ALL3, 3, "a,b,c", NULL) : 0;
    /* stop the workers (their shutdown logs too) before looking at the log */
    cl_destroy(c);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    int leaked = file_contains(logp, "secret");
    if (rc != 0 || leaked || getenv("RILL_TEST_VERBOSE")) {
        FILE *f = fopen(logp, "r");
        char line[1024];
        fprintf(stderr, "  --- stderr of the auth case:\n");
        while (f && fgets(line, sizeof line, f))
            fprintf(stderr, "  | %s", line);
        if (f)
            fclose(f);
    }
    unlink(logp);
    ASSERT_EQ(rc, 0);
    ASSERT_EQ(raw, 0);
    fprintf(stderr,
            "  unauthenticated client on %s: get=%s delete=%s set=%s; create under "
            "members=%s; set members=%s, root=%s; delete members=%s\n",
            path, zk_code_name(get), zk_code_name(del), zk_code_name(set), zk_code_name(create),
            zk_code_name(setm), zk_code_name(setr), zk_code_name(delm));
    ASSERT_EQ(get, ZOK);
    data[dlen > 0 ? dlen : 0] = '\0';
    ASSERT_TRUE(strstr(data, "secret") == NULL);
    if (del != ZNOAUTH)
        T_FAIL_AT_("delete of a member node: %s, expected ZNOAUTH", zk_code_name(del));
    if (set != ZNOAUTH)
        T_FAIL_AT_("set on a member node: %s, expected ZNOAUTH", zk_code_name(set));
    if (create != ZNOAUTH)
        T_FAIL_AT_("creating a member next to the workers: %s, expected ZNOAUTH (anyone could "
                   "join the cluster and take keys)",
                   zk_code_name(create));
    if (setm != ZNOAUTH || setr != ZNOAUTH)
        T_FAIL_AT_("set on members / root: %s / %s, expected ZNOAUTH", zk_code_name(setm),
                   zk_code_name(setr));
    ASSERT_TRUE(delm == ZNOAUTH || delm == ZNOTEMPTY);
    ASSERT_TRUE(agree);
    if (leaked)
        T_FAIL_AT_("the password appears in the workers' log output");
    return 0;
}

/* A member znode whose data is not JSON: counted, logged, never routed to. */
static int bad_member_body(cl_t *c)
{
    ASSERT_EQ(start3(c, NULL), 0);
    ASSERT_EQ(cl_raw(c), 0);
    uint64_t err0[3];
    for (unsigned i = 0; i < 3; i++)
        err0[i] = stat_of(c->w[i], TU_STAT(zk_errors));
    char path[256];
    snprintf(path, sizeof path, "%s/members/bogus", c->root);
    ASSERT_EQ(
        zoo_create(c->raw, path, "not json", 8, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0),
        ZOK);
    for (unsigned i = 0; i < 3; i++) {
        uint64_t last = 0;
        if (tu_wait_stat_ge(c->w[i]->w, TU_STAT(zk_errors), err0[i] + 1, VIEW_MS, &last) < 0) {
            print_all_stats(c);
            T_FAIL_AT_("%s: zk_errors stayed at %" PRIu64 " after a malformed member appeared",
                       c->w[i]->id, last);
        }
    }
    /* views leave bogus out (nobody can route to it) */
    tu_sleep_ms(300);
    ASSERT_GE(wait_agree(c, ALL3, 3, "a,b,c", VIEW_MS, NULL), 0);
    ASSERT_EQ(send_and_wait(c, c->w[0], 0, 10000, 10000, 10000), 0);
    ASSERT_EQ(check_once(c->sink, 0, 10000, "bogus member"), 0);
    /* a second event with the bad node still there: still serving, still agreeing */
    char p2[256];
    snprintf(p2, sizeof p2, "%s/members/bogus2", c->root);
    ASSERT_EQ(zoo_create(c->raw, p2, "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0), ZOK);
    ASSERT_EQ(zoo_delete(c->raw, p2, -1), ZOK);
    ASSERT_EQ(zoo_delete(c->raw, path, -1), ZOK);
    ASSERT_GE(wait_agree(c, ALL3, 3, "a,b,c", VIEW_MS, NULL), 0);
    ASSERT_EQ(send_and_wait(c, c->w[1], 10000, 5000, 10000, 15000), 0);
    ASSERT_EQ(check_once(c->sink, 0, 15000, "bogus member removed"), 0);
    return 0;
}

/* Replaces the value of "key":"..." in json with val. Returns 0 or -1. */
static int json_replace(char *json, size_t cap, const char *key, const char *val)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    char *p = strstr(json, pat);
    if (!p)
        return -1;
    p += strlen(pat);
    while (*p == ' ' || *p == ':')
        p++;
    if (*p != '"')
        return -1;
    char *q = strchr(p + 1, '"');
    if (!q)
        return -1;
    char tail[1024];
    snprintf(tail, sizeof tail, "%s", q + 1);
    size_t off = (size_t)(p - json);
    snprintf(json + off, cap - off, "\"%s\"%s", val, tail);
    return 0;
}

/* A member whose peer address refuses connections: frames it owns wait on the link and
 * are re-routed when its node goes away. */
static int ghost_body(cl_t *c)
{
    ASSERT_EQ(start3(c, NULL), 0);
    ASSERT_EQ(cl_raw(c), 0);
    /* the ghost's data is a real member's data with another id and address */
    char apath[256], gpath[256], data[1024];
    snprintf(apath, sizeof apath, "%s/members/a", c->root);
    snprintf(gpath, sizeof gpath, "%s/members/ghost", c->root);
    int dlen = sizeof data - 1;
    ASSERT_EQ(zoo_get(c->raw, apath, 0, data, &dlen, NULL), ZOK);
    data[dlen] = '\0';
    fprintf(stderr, "  member data of a: %s\n", data);
    if (json_replace(data, sizeof data, "addr", "127.0.0.1:1") < 0)
        snprintf(data, sizeof data, "{\"id\":\"ghost\",\"addr\":\"127.0.0.1:1\"}");
    json_replace(data, sizeof data, "id", "ghost");
    ASSERT_EQ(zoo_create(c->raw, gpath, data, (int)strlen(data), &ZOO_OPEN_ACL_UNSAFE,
                         ZOO_PERSISTENT, NULL, 0),
              ZOK);
    ASSERT_GE(wait_agree(c, ALL3, 3, "a,b,c,ghost", VIEW_MS, NULL), 0);
    rill_view_t *v = rill_worker_view(c->w[0]->w);
    ASSERT_PTR_NE(v, NULL);
    const uint64_t n = 8000;
    const unsigned nkeys = 8000;
    uint64_t ghost_frames = 0;
    for (uint64_t s = 0; s < n; s++) {
        int o = rill_view_owner(v, key_of(s, nkeys));
        if (strcmp(rill_view_member(v, (unsigned)o), "ghost") == 0)
            ghost_frames++;
    }
    rill_view_destroy(v);
    ASSERT_GT(ghost_frames, 0);
    uint64_t rr0 = stat_of(c->w[0], TU_STAT(rerouted));
    ASSERT_EQ(send_and_wait(c, c->w[0], 0, n, nkeys, (size_t)(n - ghost_frames)), 0);
    tu_sleep_ms(500);
    size_t held = tu_sink_count(c->sink);
    fprintf(stderr,
            "  ghost owns %" PRIu64 " of %" PRIu64 " frames; sink has %zu while it is "
            "a member\n",
            ghost_frames, n, held);
    print_stats(c->w[0]);
    ASSERT_U64_EQ(held, n - ghost_frames);
    int64_t t0 = tu_now_ms();
    ASSERT_EQ(zoo_delete(c->raw, gpath, -1), ZOK);
    ASSERT_GE(wait_agree(c, ALL3, 3, "a,b,c", VIEW_MS, NULL), 0);
    if (tu_sink_wait_count(c->sink, n, SINK_MS) < 0) {
        print_all_stats(c);
        T_FAIL_AT_("after the ghost left the sink has %zu of %" PRIu64 " frames: the %" PRIu64
                   " queued for the ghost were not re-routed",
                   tu_sink_count(c->sink), n, ghost_frames);
    }
    fprintf(stderr,
            "  frames queued for the ghost delivered %" PRId64 " ms after its node was "
            "deleted\n",
            tu_now_ms() - t0);
    ASSERT_EQ(check_once(c->sink, 0, n, "ghost"), 0);
    uint64_t rr = stat_of(c->w[0], TU_STAT(rerouted)) - rr0;
    if (rr < ghost_frames) {
        print_all_stats(c);
        T_FAIL_AT_("a counted %" PRIu64 " rerouted frames, %" PRIu64 " were queued for the ghost",
                   rr, ghost_frames);
    }
    ASSERT_EQ(send_and_wait(c, c->w[0], n, 3000, nkeys, n + 3000), 0);
    return 0;
}

/* Every member publishes a source address that GOAWAYs may name: a listener on a wildcard
 * host publishes the peer address's host with the listener's port, one on a given host
 * its own address, and an advertised one exactly what was configured. */
/* Key groups: the first member's setting is the cluster's (in <root>/key_groups), a
 * member asking for another number uses the cluster's; every key's owner is its group's,
 * both members agree on every group, and the groups spread over the members. */
static int key_groups_body(cl_t *c)
{
    tw_opts_t oa = {.key_groups = 64}, ob = {.key_groups = 128};
    ASSERT_EQ(cl_start_opts(c, 0, "a", &oa), 0);
    static const unsigned A[] = {0};
    ASSERT_GE(wait_agree(c, A, 1, "a", VIEW_MS, NULL), 0);
    ASSERT_EQ(cl_start_opts(c, 1, "b", &ob), 0);
    static const unsigned AB[] = {0, 1};
    ASSERT_GE(wait_agree(c, AB, 2, "a,b", VIEW_MS, NULL), 0);
    ASSERT_EQ(cl_raw(c), 0);
    char path[300], data[32];
    int dlen = sizeof data - 1;
    snprintf(path, sizeof path, "%s/key_groups", c->root);
    ASSERT_EQ(zoo_get(c->raw, path, 0, data, &dlen, NULL), ZOK);
    data[dlen] = '\0';
    ASSERT_STR_EQ(data, "64");
    rill_view_t *va = rill_worker_view(c->w[0]->w), *vb = rill_worker_view(c->w[1]->w);
    ASSERT_PTR_NE(va, NULL);
    ASSERT_PTR_NE(vb, NULL);
    ASSERT_EQ(rill_view_key_groups(va), 64);
    ASSERT_EQ(rill_view_key_groups(vb), 64);
    unsigned owned[2] = {0, 0};
    for (unsigned g = 0; g < 64; g++) {
        int o = rill_view_group_owner(va, g);
        ASSERT_TRUE(o == 0 || o == 1);
        ASSERT_EQ(rill_view_group_owner(vb, g), o);
        owned[o]++;
    }
    ASSERT_EQ(rill_view_group_owner(va, 64), -1);
    unsigned used[64] = {0};
    for (uint64_t k = 0; k < 100000; k++) {
        unsigned g = rill_view_key_group(va, k);
        ASSERT_TRUE(g < 64);
        ASSERT_EQ(rill_view_key_group(vb, k), g);
        ASSERT_EQ(rill_view_owner(va, k), rill_view_group_owner(va, g));
        used[g]++;
    }
    for (unsigned g = 0; g < 64; g++) /* 100000 / 64 keys each on average */
        ASSERT_TRUE(used[g] > 1000 && used[g] < 2200);
    fprintf(stderr, "  64 groups: a owns %u, b %u\n", owned[0], owned[1]);
    ASSERT_TRUE(owned[0] >= 16 && owned[1] >= 16);
    rill_view_destroy(va);
    rill_view_destroy(vb);
    /* a leaves: b owns every group; the number stays with the cluster */
    ASSERT_EQ(rill_worker_stop(c->w[0]->w), 0);
    static const unsigned B[] = {1};
    ASSERT_GE(wait_agree(c, B, 1, "b", VIEW_MS, NULL), 0);
    vb = rill_worker_view(c->w[1]->w);
    ASSERT_PTR_NE(vb, NULL);
    ASSERT_EQ(rill_view_key_groups(vb), 64);
    for (unsigned g = 0; g < 64; g++)
        ASSERT_EQ(rill_view_group_owner(vb, g), 0);
    rill_view_destroy(vb);
    return 0;
}

static int key_groups(void)
{
    static cl_t c;
    cl_init(&c, 0, NULL);
    int rc = key_groups_body(&c);
    cl_destroy(&c);
    return rc;
}

static int source_address_body(cl_t *c)
{
    const tw_opts_t oa = {.listen = "0.0.0.0:0"}, oc = {.source_advertise = "10.9.8.7:7000"};
    ASSERT_EQ(cl_start_opts(c, 0, "a", &oa), 0);
    ASSERT_EQ(cl_start(c, 1, "b"), 0);
    ASSERT_EQ(cl_start_opts(c, 2, "c", &oc), 0);
    ASSERT_GE(wait_agree(c, ALL3, 3, "a,b,c", VIEW_MS, NULL), 0);
    char want[3][64];
    snprintf(want[0], sizeof want[0], "127.0.0.1:%u", c->w[0]->port);
    snprintf(want[1], sizeof want[1], "127.0.0.1:%u", c->w[1]->port);
    snprintf(want[2], sizeof want[2], "10.9.8.7:7000");
    for (unsigned w = 0; w < 3; w++) {
        rill_view_t *v = rill_worker_view(c->w[w]->w);
        ASSERT_PTR_NE(v, NULL);
        for (unsigned i = 0; i < rill_view_size(v); i++) {
            const char *id = rill_view_member(v, i), *src = rill_view_member_source(v, i);
            ASSERT_PTR_NE(src, NULL);
            fprintf(stderr, "  %s sees %s: source %s\n", c->w[w]->id, id, src);
            ASSERT_STR_EQ(src, want[id[0] - 'a']);
        }
        ASSERT_TRUE(rill_view_member_source(v, rill_view_size(v)) == NULL);
        rill_view_destroy(v);
    }
    return 0;
}

/* A raw client on a worker's peer port sends half a frame and closes. */
static int peer_midframe_body(cl_t *c)
{
    ASSERT_EQ(start3(c, NULL), 0);
    rill_view_t *v = rill_worker_view(c->w[0]->w);
    ASSERT_PTR_NE(v, NULL);
    const char *addr = rill_view_member_addr(v, (unsigned)rill_view_self(v));
    ASSERT_PTR_NE(addr, NULL);
    const char *colon = strrchr(addr, ':');
    ASSERT_PTR_NE(colon, NULL);
    int pport = atoi(colon + 1);
    rill_view_destroy(v);
    ASSERT_GT(pport, 0);
    uint64_t mid0 = stat_of(c->w[0], TU_STAT(err_midframe));
    int fd = tu_connect((uint16_t)pport, 5000);
    ASSERT_GE(fd, 0);
    uint8_t half[16 + 10];
    tu_put_be32(half, 12 + 100); /* promises 100 bytes of payload, sends 10 */
    tu_put_be32(half + 4, COMP_PASS);
    tu_put_be64(half + 8, KEY_BASE);
    memset(half + 16, 'h', 10);
    ASSERT_EQ(tu_write_all(fd, half, sizeof half), 0);
    tu_sleep_ms(100);
    close(fd);
    uint64_t last = 0;
    if (tu_wait_stat_ge(c->w[0]->w, TU_STAT(err_midframe), mid0 + 1, SINK_MS, &last) < 0) {
        print_all_stats(c);
        T_FAIL_AT_("a peer connection closed inside a frame was not counted (err_midframe %" PRIu64
                   ")",
                   last);
    }
    /* still serving: frames to a (some forwarded) and to b (some forwarded to a) */
    ASSERT_EQ(send_and_wait(c, c->w[0], 0, 6000, 3000, 6000), 0);
    ASSERT_EQ(send_and_wait(c, c->w[1], 6000, 6000, 3000, 12000), 0);
    ASSERT_EQ(check_once(c->sink, 0, 12000, "after a broken peer connection"), 0);
    ASSERT_TRUE(views_agree(c, ALL3, 3, "a,b,c", NULL));
    return 0;
}

/* ------------------------------------------------------------ leaving hands keys over */

typedef struct seq_sender {
    pthread_t th;
    int fd;
    unsigned nkeys;
    uint64_t seq0, seq_end; /* sends seq0, seq0 + 1, ... below seq_end */
    atomic_int stop;
    atomic_ullong sent; /* frames written (handed to the kernel) */
    int err;            /* the -errno that ended the writes, 0 */
} seq_sender_t;

/* Writes COMP_SEQ frames (payload = seq, key = key_of(seq)) in bursts of 256, a
 * millisecond apart, until told to stop, until a write fails (the worker closed the
 * connection) or until seq_end. */
static void *seq_send_main(void *arg)
{
    seq_sender_t *s = arg;
    uint8_t buf[256 * (TU_HDR + 8)];
    uint64_t seq = s->seq0;
    while (!atomic_load(&s->stop) && seq < s->seq_end) {
        size_t len = 0;
        uint64_t burst = 0;
        for (; burst < 256 && seq < s->seq_end; burst++, seq++) {
            uint8_t p[8];
            tu_put_be64(p, seq);
            len += tu_frame_encode(buf + len, COMP_SEQ, key_of(seq, s->nkeys), p, sizeof p);
        }
        int rc = tu_write_all(s->fd, buf, len);
        if (rc < 0) {
            s->err = rc;
            break;
        }
        atomic_fetch_add(&s->sent, burst);
        tu_sleep_ms(1);
    }
    return NULL;
}

static int seq_send_start(seq_sender_t *s, uint16_t port, unsigned nkeys, uint64_t seq0,
                          uint64_t seq_end)
{
    memset(s, 0, sizeof *s);
    s->nkeys = nkeys;
    s->seq0 = seq0;
    s->seq_end = seq_end;
    s->fd = tu_connect(port, 5000);
    if (s->fd < 0)
        return s->fd;
    int e = pthread_create(&s->th, NULL, seq_send_main, s);
    if (e) {
        close(s->fd);
        return -e;
    }
    return 0;
}

static void seq_send_stop(seq_sender_t *s)
{
    atomic_store(&s->stop, 1);
    pthread_join(s->th, NULL);
    close(s->fd);
}

static uint64_t seq_applied_all(const cl_t *c)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < c->n; i++)
        n += atomic_load_explicit(&c->w[i]->seq_applied, memory_order_acquire);
    return n;
}

/* Checks seqs [lo, hi): the first `read` of them (what a source's worker decoded) applied
 * exactly once each, by the owner of its key (A in the view of three, B or C in theirs),
 * and none beyond. Returns the number of problems (and prints the first ones). */
static uint64_t check_seqs(uint64_t lo, uint64_t hi, uint64_t read, const rill_view_t *v3,
                           const rill_view_t *v2, unsigned nkeys, const char *what)
{
    uint64_t missing = 0, dup = 0, beyond = 0, bad_owner = 0, first_missing = 0;
    for (uint64_t q = lo; q < hi; q++) {
        unsigned n = atomic_load(&g_seq.times[q]);
        if (q >= lo + read) {
            beyond += n != 0;
            continue;
        }
        if (n == 0 && missing++ == 0)
            first_missing = q;
        dup += n > 1;
        unsigned where = atomic_load(&g_seq.where[q]);
        uint64_t key = key_of(q, nkeys);
        const char *o3 = rill_view_member(v3, (unsigned)rill_view_owner(v3, key));
        const char *o2 = rill_view_member(v2, (unsigned)rill_view_owner(v2, key));
        int ok = where == 0 || (where == 1u && strcmp(o3, "a") == 0) ||
                 (where == 2u && strcmp(o2, "b") == 0) || (where == 4u && strcmp(o2, "c") == 0);
        if (!ok && bad_owner++ < 5)
            fprintf(stderr, "  %s: seq %" PRIu64 " (key owned by %s, then %s) applied on %s%s%s\n",
                    what, q, o3, o2, where & 1 ? "a " : "", where & 2 ? "b " : "",
                    where & 4 ? "c" : "");
    }
    if (missing || dup || beyond || bad_owner)
        fprintf(stderr,
                "  %s: of the %" PRIu64 " frames read %" PRIu64 " were never applied (first seq "
                "%" PRIu64 "), %" PRIu64 " more than once, %" PRIu64 " not by their owner; %" PRIu64
                " applied beyond them\n",
                what, read, missing, first_missing, dup, bad_owner, beyond);
    return missing + dup + beyond + bad_owner;
}

/* A stops while its source keeps sending, and so does B's: from the moment another member
 * can see that A left, A applies none of its own source's frames (their keys belong to B
 * and C now: A forwards them), while what B forwarded to A before it saw A leave is still
 * processed there; every frame A and B read from their sources is applied exactly once, by
 * the owner of its key. */
static int handover_body(cl_t *c)
{
    const unsigned nkeys = 5000;
    ASSERT_EQ(start3(c, NULL), 0);
    rill_view_t *v3 = rill_worker_view(c->w[0]->w);
    ASSERT_PTR_NE(v3, NULL);
    /* The views agree once published; each loop calls back when it adopts one, possibly
     * later. A member that joined before a can still call back with a view without it
     * (its first): watch only once every callback has seen the three members. */
    int64_t cb_end = tu_now_ms() + VIEW_MS;
    for (unsigned i = 0; i < 3; i++)
        while (atomic_load(&c->w[i]->cb_epoch) != rill_view_epoch(v3) && tu_now_ms() < cb_end)
            tu_sleep_ms(5);
    for (unsigned i = 0; i < 3; i++)
        ASSERT_U64_EQ(atomic_load(&c->w[i]->cb_epoch), rill_view_epoch(v3));
    atomic_store(&g_seq.gone, 0);
    atomic_store(&g_seq.watch, "a"); /* the views have agreed: from now on */
    tw_t *a = c->w[0], *b = c->w[1];

    seq_sender_t sa, sb;
    ASSERT_EQ(seq_send_start(&sa, a->port, nkeys, 0, SEQ_OTHER), 0);
    if (seq_send_start(&sb, b->port, nkeys, SEQ_OTHER, SEQ_CAP) < 0) {
        seq_send_stop(&sa);
        T_FAIL_AT_("cannot start the sender to b");
    }
    int64_t end = tu_now_ms() + SINK_MS;
    while (seq_applied_all(c) < 40000 && tu_now_ms() < end)
        tu_sleep_ms(5);
    uint64_t before = seq_applied_all(c);
    int64_t t0 = tu_now_ms();
    int stop_rc = rill_worker_stop(a->w);
    int64_t stop_ms = tu_now_ms() - t0;
    seq_send_stop(&sa);
    static const unsigned BC[] = {1, 2};
    int64_t conv = wait_agree(c, BC, 2, "b,c", VIEW_MS, NULL);
    tu_sleep_ms(100); /* b's source goes on a little in the new view */
    seq_send_stop(&sb);
    ASSERT_U64_GE(before, 40000);
    ASSERT_EQ(stop_rc, 0);
    ASSERT_GE(conv, 0);
    ASSERT_TRUE(atomic_load(&g_seq.gone));

    /* A's last view: the others, and itself no longer a member */
    rill_view_t *va = rill_worker_view(a->w);
    ASSERT_PTR_NE(va, NULL);
    char m[256];
    members_str(va, m, sizeof m);
    int a_self = rill_view_self(va);
    rill_view_destroy(va);
    int cb_self = atomic_load(&a->cb_self);
    fprintf(stderr, "  a's view after its stop: members=%s self=%d (its view callback: self=%d)\n",
            m, a_self, cb_self);

    /* every frame A and B decoded from their sources is applied, once */
    uint64_t b_sent = atomic_load(&sb.sent), b_in = 0;
    end = tu_now_ms() + SINK_MS;
    while ((b_in = stat_of(b, TU_STAT(msgs_in))) < b_sent && tu_now_ms() < end)
        tu_sleep_ms(10);
    uint64_t a_in = stat_of(a, TU_STAT(msgs_in));
    while (seq_applied_all(c) < a_in + b_in && tu_now_ms() < end)
        tu_sleep_ms(10);
    tu_sleep_ms(300); /* anything extra (a duplicate) would show up now */
    uint64_t applied = seq_applied_all(c);
    rill_view_t *v2 = rill_worker_view(b->w);
    ASSERT_PTR_NE(v2, NULL);
    uint64_t bad_a = check_seqs(0, SEQ_OTHER, a_in, v3, v2, nkeys, "a's source");
    uint64_t bad_b = check_seqs(SEQ_OTHER, SEQ_CAP, b_in, v3, v2, nkeys, "b's source");
    rill_view_destroy(v2);
    rill_view_destroy(v3);
    uint64_t a_after = atomic_load(&a->seq_after);
    uint64_t bc_after = atomic_load(&c->w[1]->seq_after) + atomic_load(&c->w[2]->seq_after);
    fprintf(stderr,
            "  leave: rill_worker_stop(a) took %" PRId64 " ms; b and c agree on [b,c] %" PRId64
            " ms later; a read %" PRIu64 " frames (%" PRIu64 " written), b %" PRIu64
            "; applied: a %" PRIu64 ", b %" PRIu64 ", c %" PRIu64 "; of a's source's frames "
            "after b or c saw a leave: %" PRIu64 " applied on a, %" PRIu64 " on b and c\n",
            stop_ms, conv, a_in, (uint64_t)atomic_load(&sa.sent), b_in,
            (uint64_t)atomic_load(&a->seq_applied), (uint64_t)atomic_load(&b->seq_applied),
            (uint64_t)atomic_load(&c->w[2]->seq_applied), a_after, bc_after);
    print_all_stats(c);
    if (a_after)
        T_FAIL_AT_("a applied %" PRIu64 " frames from its own source after another member "
                   "saw it leave (they own those keys now)",
                   a_after);
    ASSERT_STR_EQ(m, "b,c");
    ASSERT_EQ(a_self, -1);
    ASSERT_EQ(cb_self, -1);
    ASSERT_U64_EQ(bad_a, 0);
    ASSERT_U64_EQ(bad_b, 0);
    ASSERT_U64_EQ(applied, a_in + b_in);
    for (unsigned i = 0; i < 3; i++)
        ASSERT_U64_EQ(atomic_load(&c->w[i]->stray), 0);
    /* the leave window carried traffic, which the new owners applied */
    if (bc_after == 0)
        T_FAIL_AT_("no frame of a's source was applied after b or c saw a leave: the source "
                   "had stopped (%" PRIu64 " frames written, write error %d), so nothing was "
                   "checked",
                   (uint64_t)atomic_load(&sa.sent), sa.err);
    return 0;
}

static int leave_hands_keys_over(void)
{
    static cl_t c;
    cl_init(&c, 0, NULL);
    int rc = handover_body(&c);
    cl_destroy(&c);
    atomic_store(&g_seq.watch, NULL);
    return rc;
}

/* ------------------------------------------------------------ no ZooKeeper */

/* A clustered worker that never reaches ZooKeeper has no view: it processes every frame
 * itself and counts each in misrouted (applied without an owner). */
static int no_zk_body(cl_t *c)
{
    /* a loopback port that refuses connections: bound, never listening, held meanwhile */
    int hold = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(hold, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    if (bind(hold, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        getsockname(hold, (struct sockaddr *)&sa, &sl) < 0) {
        close(hold);
        T_FAIL_AT_("cannot bind a loopback port: %s", strerror(errno));
    }
    char hosts[64];
    snprintf(hosts, sizeof hosts, "127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
    tw_opts_t o = {.zk_hosts = hosts};
    int rc = cl_start_opts(c, 0, "alone", &o);
    tw_t *t = c->w[0];
    const uint64_t n = 5000;
    int sent = rc == 0 ? send_frames(t->port, COMP_COUNT, 0, n, NKEYS) : -1;
    int64_t end = tu_now_ms() + SINK_MS;
    while (sent == 0 && atomic_load(&t->counted) < n && tu_now_ms() < end)
        tu_sleep_ms(5);
    tu_sleep_ms(300);
    rill_view_t *v = rc == 0 ? rill_worker_view(t->w) : NULL;
    print_all_stats(c);
    close(hold);
    ASSERT_EQ(rc, 0);
    ASSERT_EQ(sent, 0);
    fprintf(stderr,
            "  ZooKeeper at %s (refuses connections): %s; %" PRIu64 " of %" PRIu64
            " frames counted\n",
            hosts, v ? "a view" : "no view", (uint64_t)atomic_load(&t->counted), n);
    ASSERT_TRUE(v == NULL);
    ASSERT_U64_EQ(atomic_load(&t->counted), n);
    ASSERT_U64_EQ(stat_of(t, TU_STAT(msgs_in)), n);
    ASSERT_U64_EQ(stat_of(t, TU_STAT(misrouted)), n);
    ASSERT_U64_EQ(stat_of(t, TU_STAT(forwarded)), 0);
    return 0;
}

/* ------------------------------------------------------------ max_frame across members */

/* A (max_frame 256 KiB) forwards 100 KiB frames to their owner B (max_frame 64 KiB): B's
 * peer listener takes them (its computation counts them and emits nothing: it could not
 * emit a payload above its own limit), and the frames behind them on the same peer link
 * arrive too. */
static int peer_max_frame_body(cl_t *c)
{
    const tw_opts_t oa = {.max_frame = 256u * 1024u}, ob = {.max_frame = 64u * 1024u};
    ASSERT_EQ(cl_start_opts(c, 0, "a", &oa), 0);
    ASSERT_EQ(cl_start_opts(c, 1, "b", &ob), 0);
    static const unsigned AB[] = {0, 1};
    ASSERT_GE(wait_agree(c, AB, 2, "a,b", VIEW_MS, NULL), 0);
    rill_view_t *v = rill_worker_view(c->w[0]->w);
    ASSERT_PTR_NE(v, NULL);
    enum { NBIG = 32, NSMALL = 64 };
    unsigned bk[NKEYS], ak[NKEYS], nb = 0, na = 0;
    for (unsigned k = 0; k < NKEYS; k++) {
        const char *o = rill_view_member(v, (unsigned)rill_view_owner(v, KEY_BASE + k));
        if (strcmp(o, "b") == 0)
            bk[nb++] = k;
        else
            ak[na++] = k;
    }
    rill_view_destroy(v);
    ASSERT_GE(nb, NBIG);
    ASSERT_GT(na, 0);

    /* one connection: a big frame for a key of B, then small frames for keys of both;
     * NBIG times; then small frames for B's keys only */
    static unsigned expect[NKEYS];
    memset(expect, 0, sizeof expect);
    uint8_t *big = malloc(BIG_PAYLOAD);
    ASSERT_PTR_NE(big, NULL);
    tu_buf_t b = {0};
    uint64_t to_b = 0, to_a = 0;
    for (unsigned i = 0; i < NBIG; i++) {
        unsigned k = bk[i];
        memset(big, (uint8_t)(KEY_BASE + k), BIG_PAYLOAD);
        tu_buf_frame(&b, COMP_COUNT, KEY_BASE + k, big, BIG_PAYLOAD);
        expect[k]++, to_b++;
        for (unsigned j = 0; j < NSMALL; j++) {
            unsigned kb = bk[(i * NSMALL + j) % nb], ka = ak[(i * NSMALL + j) % na];
            tu_buf_frame(&b, COMP_COUNT, KEY_BASE + kb, "s", 1);
            tu_buf_frame(&b, COMP_COUNT, KEY_BASE + ka, "s", 1);
            expect[kb]++, to_b++;
            expect[ka]++, to_a++;
        }
    }
    for (unsigned j = 0; j < 2000; j++) {
        unsigned kb = bk[j % nb];
        tu_buf_frame(&b, COMP_COUNT, KEY_BASE + kb, "t", 1);
        expect[kb]++, to_b++;
    }
    free(big);
    int fd = tu_connect(c->w[0]->port, 5000);
    ASSERT_GE(fd, 0);
    int wrc = tu_write_all(fd, b.data, b.len);
    close(fd);
    size_t bytes = b.len;
    tu_buf_free(&b);
    ASSERT_EQ(wrc, 0);

    tw_t *ta = c->w[0], *tb = c->w[1];
    int64_t t0 = tu_now_ms(), end = t0 + SINK_MS;
    while ((atomic_load(&ta->counted) < to_a || atomic_load(&tb->counted) < to_b) &&
           tu_now_ms() < end)
        tu_sleep_ms(10);
    int64_t ms = tu_now_ms() - t0;
    tu_sleep_ms(300); /* anything extra (a duplicate) would show up now */
    uint64_t ga = atomic_load(&ta->counted), gb = atomic_load(&tb->counted);
    fprintf(stderr,
            "  %zu bytes to a: b counted %" PRIu64 " of %" PRIu64 " frames (%" PRIu64
            " of %u of 100 KiB), a %" PRIu64 " of %" PRIu64 ", after %" PRId64 " ms\n",
            bytes, gb, to_b, (uint64_t)atomic_load(&tb->big), NBIG, ga, to_a, ms);
    fprintf(stderr, "    b: err_frame_long=%" PRIu64 "; a: sink_errors=%" PRIu64 "\n",
            stat_of(tb, TU_STAT(err_frame_long)), stat_of(ta, TU_STAT(sink_errors)));
    print_all_stats(c);
    ASSERT_U64_EQ(stat_of(tb, TU_STAT(err_frame_long)), 0); /* the peer link was never cut */
    ASSERT_U64_EQ(stat_of(ta, TU_STAT(sink_errors)), 0);
    ASSERT_U64_EQ(gb, to_b);
    ASSERT_U64_EQ(ga, to_a);
    ASSERT_U64_EQ(atomic_load(&tb->big), NBIG);
    ASSERT_U64_EQ(atomic_load(&ta->big), 0);
    ASSERT_U64_EQ(atomic_load(&ta->stray) + atomic_load(&tb->stray), 0);
    unsigned bad = 0;
    for (unsigned k = 0; k < NKEYS; k++) {
        unsigned got = atomic_load(&ta->counts[k]) + atomic_load(&tb->counts[k]);
        if (got != expect[k] && bad++ < 5)
            fprintf(stderr, "  key %u: counted %u, sent %u\n", k, got, expect[k]);
    }
    ASSERT_EQ(bad, 0);
    ASSERT_U64_EQ(stat_of(ta, TU_STAT(forwarded)), to_b);
    ASSERT_U64_EQ(stat_of(tb, TU_STAT(peer_in)), to_b);
    ASSERT_U64_EQ(stat_of(tb, TU_STAT(msgs_out)), 0); /* b emitted nothing */
    return 0;
}

/* The peer link from a to b goes through a fault proxy (b advertises the proxy's
 * address), which resets it five times while a forwards b's keys: the link keeps what b
 * did not acknowledge and sends it again, and b skips what already ran, so the sink gets
 * every frame exactly once. */
static int peer_link_cuts_body(cl_t *c)
{
    uint16_t bport;
    int probe = tu_listen(0, &bport); /* a free port for b's peer listener */
    ASSERT_GE(probe, 0);
    close(probe);
    fp_t *fp;
    ASSERT_EQ(fp_new(&fp, bport), 0);
    char listen_at[32];
    snprintf(listen_at, sizeof listen_at, "127.0.0.1:%u", (unsigned)bport);
    tw_opts_t ob = {.peer_listen = listen_at, .peer_advertise = fp_addr(fp)};
    int rc = cl_start(c, 0, "a");
    if (rc == 0)
        rc = cl_start_opts(c, 1, "b", &ob);
    if (rc < 0) {
        fp_destroy(fp);
        T_FAIL_AT_("starting a and b: %s", rill_strerror(rc));
    }
    static const unsigned AB[] = {0, 1};
    int64_t conv = wait_agree(c, AB, 2, "a,b", VIEW_MS, NULL);
    if (conv < 0) {
        fp_destroy(fp);
        T_FAIL_AT_("a and b do not agree on [a,b]");
    }
    const uint64_t chunk = 50000, chunks = 6;
    for (uint64_t k = 0; k < chunks; k++) {
        if (send_frames(c->w[0]->port, COMP_PASS, k * chunk, chunk, NKEYS) < 0) {
            fp_destroy(fp);
            T_FAIL_AT_("sending to a");
        }
        if (k + 1 == chunks)
            break;
        /* Cut the link's current connection (the k+1-th through the proxy). */
        fp_stats_t now;
        int64_t end = tu_now_ms() + VIEW_MS;
        while (fp_stats(fp, &now) == 0 && now.connected < k + 1 && tu_now_ms() < end)
            tu_sleep_ms(2);
        if (fp_cut(fp) < 0) {
            fp_destroy(fp);
            T_FAIL_AT_("cutting the proxy");
        }
    }
    int waited = tu_sink_wait_count(c->sink, chunk * chunks, SINK_MS);
    tu_sleep_ms(300); /* a duplicate would show up now */
    fp_stats_t ps;
    fp_stats(fp, &ps);
    fprintf(stderr,
            "  proxy: %llu connections, %llu cut; a: forwarded %llu, resent %llu; b: peer_in "
            "%llu, dup_skipped %llu, acks_sent %llu\n",
            (unsigned long long)ps.connected, (unsigned long long)ps.conns_cut,
            (unsigned long long)stat_of(c->w[0], TU_STAT(forwarded)),
            (unsigned long long)stat_of(c->w[0], TU_STAT(resent)),
            (unsigned long long)stat_of(c->w[1], TU_STAT(peer_in)),
            (unsigned long long)stat_of(c->w[1], TU_STAT(dup_skipped)),
            (unsigned long long)stat_of(c->w[1], TU_STAT(acks_sent)));
    print_all_stats(c);
    uint64_t bad = check_once(c->sink, 0, chunk * chunks, "through the cut peer link");
    fp_destroy(fp);
    ASSERT_EQ(waited, 0);
    ASSERT_U64_EQ(bad, 0);
    ASSERT_GE(ps.conns_cut, chunks - 1);
    ASSERT_GE(stat_of(c->w[0], TU_STAT(forwarded)), chunk); /* b's keys went over the link */
    ASSERT_U64_EQ(stat_of(c->w[0], TU_STAT(peer_dropped)), 0);
    return 0;
}

/* Connects to port, reads the peer listener's first frame (it must be a CHALLENGE),
 * sends bytes, and returns 1 when the member then closes the connection. */
static int rogue_closed(uint16_t port, const uint8_t *b, size_t n)
{
    int fd = tu_connect(port, 5000);
    if (fd < 0)
        return -1;
    uint8_t ch[32];
    if (tu_read_exact(fd, ch, sizeof ch, 5000) < 0 || tu_get_be32(ch) != 28 ||
        tu_get_be32(ch + 4) != 0xFFFFFFFFu || tu_get_be64(ch + 8) != 5) {
        close(fd);
        return -2; /* no CHALLENGE first */
    }
    tu_write_all(fd, b, n);
    int rc = tu_wait_peer_closed(fd, 5000);
    close(fd);
    return tu_closed_rc(rc);
}

/* With cluster credentials, peer links prove them: a and b forward to each other as
 * usual, while a process that reaches b's peer port without them gets a CHALLENGE and is
 * refused whatever it sends (data, a plain HELLO, a HELLO with a wrong MAC): counted in
 * err_auth, and none of its frames is applied. */
static int peer_auth_body(cl_t *c)
{
    ASSERT_EQ(cl_start(c, 0, "a"), 0);
    ASSERT_EQ(cl_start(c, 1, "b"), 0);
    static const unsigned AB[] = {0, 1};
    ASSERT_GE(wait_agree(c, AB, 2, "a,b", VIEW_MS, NULL), 0);
    ASSERT_EQ(send_and_wait(c, c->w[0], 0, 20000, NKEYS, 20000), 0);
    ASSERT_U64_EQ(check_once(c->sink, 0, 20000, "authenticated peer links"), 0);
    ASSERT_GE(stat_of(c->w[0], TU_STAT(forwarded)), 1);

    rill_view_t *v = rill_worker_view(c->w[0]->w);
    ASSERT_PTR_NE(v, NULL);
    const char *baddr = NULL;
    for (unsigned i = 0; i < rill_view_size(v); i++)
        if (strcmp(rill_view_member(v, i), "b") == 0)
            baddr = rill_view_member_addr(v, i);
    ASSERT_PTR_NE(baddr, NULL);
    const char *colon = strrchr(baddr, ':');
    ASSERT_PTR_NE(colon, NULL);
    uint16_t bport = (uint16_t)atoi(colon + 1);
    rill_view_destroy(v);

    uint8_t f[128];
    uint8_t p8[8];
    tu_put_be64(p8, 99999999); /* a seq the sink would show */
    size_t n = tu_frame_encode(f, COMP_PASS, KEY_BASE, p8, sizeof p8);
    ASSERT_EQ(rogue_closed(bport, f, n), 1); /* data instead of HELLO */
    uint8_t h[16 + 20 + 32];
    tu_put_be32(h, 12 + 20);
    tu_put_be32(h + 4, 0xFFFFFFFFu);
    tu_put_be64(h + 8, 1);
    tu_put_be32(h + 16, 2u << 16);
    tu_put_be64(h + 20, 12345);
    tu_put_be64(h + 28, 1);
    ASSERT_EQ(rogue_closed(bport, h, 36), 1); /* HELLO without a MAC */
    tu_put_be32(h, 12 + 20 + 32);
    tu_put_be32(h + 16, 2u << 16 | 1u); /* the AUTH flag, and a MAC that is not one */
    memset(h + 36, 0x5a, 32);
    ASSERT_EQ(rogue_closed(bport, h, sizeof h), 1);
    ASSERT_EQ(tu_wait_stat_ge(c->w[1]->w, TU_STAT(err_auth), 3, SINK_MS, NULL), 0);
    /* the members' own links are unaffected, and nothing of the intruder was applied */
    ASSERT_EQ(send_and_wait(c, c->w[0], 20000, 20000, NKEYS, 40000), 0);
    tu_sleep_ms(200);
    ASSERT_U64_EQ(check_once(c->sink, 0, 40000, "after the intruder"), 0);
    ASSERT_EQ(tu_sink_count(c->sink), 40000);
    ASSERT_U64_EQ(stat_of(c->w[1], TU_STAT(err_auth)), 3);
    ASSERT_U64_EQ(stat_of(c->w[0], TU_STAT(err_auth)), 0);
    return 0;
}

/* ------------------------------------------------------------ table */

#define CASE(name, body, session)                                                                  \
    static int name(void)                                                                          \
    {                                                                                              \
        static cl_t c;                                                                             \
        cl_init(&c, session, NULL);                                                                \
        int rc = body(&c);                                                                         \
        cl_destroy(&c);                                                                            \
        return rc;                                                                                 \
    }

CASE(join, join_body, 0)
CASE(count_to_one, count_body_a, 0)
CASE(count_spread, count_body_spread, 0)
CASE(graceful_leave, leave_body, 0)
CASE(zk_restart, zk_restart_body, 2000)
CASE(session_expiry, expire_body, 4000)
CASE(bad_member_data, bad_member_body, 0)
CASE(unreachable_peer, ghost_body, 0)
CASE(peer_midframe, peer_midframe_body, 0)
CASE(source_address, source_address_body, 0)
CASE(no_zookeeper, no_zk_body, 0)
CASE(peer_frame_above_owner_limit, peer_max_frame_body, 0)
CASE(peer_link_cuts, peer_link_cuts_body, 0)

static int digest_auth(void)
{
    static cl_t c;
    cl_init(&c, 0, "rill:secret");
    int rc = auth_body(&c);
    cl_destroy(&c);
    return rc;
}

static int peer_auth(void)
{
    static cl_t c;
    cl_init(&c, 0, "rill:secret");
    int rc = peer_auth_body(&c);
    cl_destroy(&c);
    return rc;
}

int main(int argc, char **argv)
{
    t_require_io_uring("cluster_test");
    char why[256];
    if (!zk_available(why, sizeof why)) {
        printf("cluster_test: SKIP: %s\n", why);
        return T_EXIT_SKIP;
    }
    tu_ignore_sigpipe();
    int64_t t0 = tu_now_ms();
    int rc = zk_server_start(&g_zk, NULL);
    if (rc < 0) {
        printf("cluster_test: cannot start a ZooKeeper server: %s\n", strerror(-rc));
        return 1;
    }
    /* The ZooKeeper client logs every reconnect attempt; while the server is down on
     * purpose that is hundreds of lines. They go to a file unless RILL_TEST_ZK_LOG is set. */
    FILE *zklog = NULL;
    if (!getenv("RILL_TEST_ZK_LOG")) {
        char p[300];
        snprintf(p, sizeof p, "%s/client.log", g_zk.dir);
        zklog = fopen(p, "a");
        if (zklog) {
            setvbuf(zklog, NULL, _IOLBF, 0);
            zoo_set_log_stream(zklog);
        }
    }
    fprintf(stderr, "cluster_test: ZooKeeper on %s (dir %s), serving after %" PRId64 " ms\n",
            zk_server_connect_string(&g_zk), g_zk.dir, tu_now_ms() - t0);
    static const t_case_t cases[] = {
        {"join", join},
        {"count_to_one", count_to_one},
        {"count_spread", count_spread},
        {"graceful_leave", graceful_leave},
        {"session_expiry", session_expiry},
        {"digest_auth", digest_auth},
        {"bad_member_data", bad_member_data},
        {"unreachable_peer", unreachable_peer},
        {"peer_midframe", peer_midframe},
        {"source_address", source_address},
        {"key_groups", key_groups},
        {"leave_hands_keys_over", leave_hands_keys_over},
        {"no_zookeeper", no_zookeeper},
        {"peer_frame_above_owner_limit", peer_frame_above_owner_limit},
        {"peer_link_cuts", peer_link_cuts},
        {"peer_auth", peer_auth},
        {"zk_restart", zk_restart},
        {NULL, NULL},
    };
    rc = t_run("cluster", cases, argc, argv);
    if (zklog) {
        zoo_set_log_stream(stderr);
        fclose(zklog);
    }
    if (rc == 1) {
        g_zk.own_dir = 0; /* keep zk.log and client.log for the post-mortem */
        fprintf(stderr, "cluster_test: ZooKeeper's logs kept in %s\n", g_zk.dir);
    }
    zk_server_destroy(&g_zk);
    return rc;
}
