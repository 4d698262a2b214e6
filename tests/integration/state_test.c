/* state_test: managed state (docs/state.md) in an in-process worker, through rill.h only,
 * with real sockets and real io_uring: exact per-key values over many keys and two loops,
 * a key's value always on one loop and seen in order, flush going through every value,
 * all-zero values absent and their memory reclaimed, the registration's rules, and the
 * state_bytes gauge. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "integration/tcp_util.h"
#include "rill/rill.h"

#define WAIT_MS 60000
#define COMP 7
#define NCONN 8
#define KEYS_PER_CONN 1250 /* 10 000 keys */
#define FRAMES_PER_CONN 40000

static int make_worker(rill_worker_t **w, unsigned threads, const tu_sink_t *sink, uint16_t *port)
{
    rill_config_t *cfg = rill_config_new();
    if (!cfg)
        return RILL_ENOMEM;
    int rc = rill_config_set_threads(cfg, threads);
    if (rc == 0)
        rc = rill_config_add_listener(cfg, "127.0.0.1:0", RILL_FRAMING_RILL, 0, 0, 0);
    if (rc == 0 && sink)
        rc = rill_config_add_sink(cfg, tu_sink_addr(sink));
    if (rc == 0)
        rc = rill_worker_new(w, cfg);
    rill_config_destroy(cfg);
    if (rc == 0)
        *port = (uint16_t)rill_worker_listener_port(*w, 0);
    return rc;
}

/* Sends bufs[i] on one connection each and closes them; 0 once all is written. */
static int send_all(uint16_t port, tu_buf_t *bufs, unsigned n)
{
    int fds[NCONN];
    uint8_t *data[NCONN];
    size_t lens[NCONN];
    for (unsigned i = 0; i < n; i++) {
        if ((fds[i] = tu_connect(port, WAIT_MS)) < 0)
            return -1;
        data[i] = bufs[i].data;
        lens[i] = bufs[i].len;
    }
    tu_sender_t *snd;
    if (tu_send_start(&snd, fds, data, lens, n, 4, 64 * 1024) != 0)
        return -1;
    int rc = tu_send_join(snd);
    for (unsigned i = 0; i < n; i++)
        close(fds[i]);
    return rc;
}

static int wait_msgs(rill_worker_t *w, uint32_t id, uint64_t n)
{
    int64_t end = tu_now_ms() + WAIT_MS;
    rill_comp_stats_t cs;
    while (rill_comp_stats(w, id, &cs, sizeof cs) == 0 && cs.msgs < n) {
        if (tu_now_ms() > end) {
            fprintf(stderr, "  computation %u ran %llu of %llu frames\n", id,
                    (unsigned long long)cs.msgs, (unsigned long long)n);
            return -1;
        }
        tu_sleep_ms(5);
    }
    return 0;
}

static uint64_t state_bytes(rill_worker_t *w)
{
    rill_stats_t st;
    return rill_worker_stats(w, &st, sizeof st) == 0 ? st.state_bytes : UINT64_MAX;
}

/* ------------------------------------------------------------ exact counts */

/* One key's value: what a computation that counts and checks order keeps. */
typedef struct tally {
    uint64_t count;
    uint32_t next_seq; /* the seq the key's next frame must carry */
    uint32_t loop1;    /* 1 + the loop that holds the value */
} tally_t;

static atomic_ulong g_out_of_order, g_wrong_loop, g_misaligned, g_scan_err;
static atomic_uint g_released;

static int tally_batch(uintptr_t ctx, unsigned loop, const rill_msg_t *m, void *const *values,
                       size_t n, rill_emitter_t *em)
{
    (void)ctx, (void)em;
    for (size_t i = 0; i < n; i++) {
        tally_t *t = values[i];
        if ((uintptr_t)t % 8)
            atomic_fetch_add(&g_misaligned, 1);
        uint32_t seq = tu_get_be32(m[i].data);
        if (seq != t->next_seq)
            atomic_fetch_add(&g_out_of_order, 1);
        if (t->loop1 && t->loop1 != loop + 1)
            atomic_fetch_add(&g_wrong_loop, 1);
        t->next_seq = seq + 1;
        t->loop1 = loop + 1;
        t->count++;
    }
    return 0;
}

/* Emits every key's count to sink 0 (u64 big-endian), 100 values per scan. */
static void tally_flush(uintptr_t ctx, unsigned loop, rill_emitter_t *em)
{
    (void)ctx, (void)loop;
    uint64_t cursor = 0, keys[100];
    void *values[100];
    int got;
    while ((got = rill_state_scan(em, &cursor, keys, values, 100)) > 0)
        for (int i = 0; i < got; i++) {
            uint8_t p[8];
            tu_put_be64(p, ((tally_t *)values[i])->count);
            rill_emit_sink(em, 0, COMP, keys[i], p, 8);
        }
    if (got < 0)
        atomic_fetch_add(&g_scan_err, 1);
}

static void tally_release(uintptr_t ctx)
{
    (void)ctx;
    atomic_fetch_add(&g_released, 1);
}

static const rill_state_ops_t tally_ops = {tally_batch, tally_flush, tally_release};

/* 8 connections x 40 000 frames over 10 000 keys (each key on one connection, so its
 * frames carry one sequence), two loops: every key's value counts exactly its frames, in
 * order, on one loop; the flush at stop emits each key once with its count. */
static int counts_exact(void)
{
    tu_sink_t *sink;
    ASSERT_EQ(tu_sink_new(&sink, NULL, NULL), 0);
    rill_worker_t *w;
    uint16_t port;
    ASSERT_EQ(make_worker(&w, 2, sink, &port), 0);
    ASSERT_EQ(rill_comp_register_state(w, COMP, "tally", &tally_ops, 0, sizeof(tally_t)), 0);
    ASSERT_EQ(rill_worker_start(w), 0);

    static uint32_t seq[NCONN * KEYS_PER_CONN];
    memset(seq, 0, sizeof seq);
    static tu_buf_t bufs[NCONN];
    uint64_t rng = 42;
    for (unsigned c = 0; c < NCONN; c++) {
        memset(&bufs[c], 0, sizeof bufs[c]);
        for (unsigned i = 0; i < FRAMES_PER_CONN; i++) {
            uint64_t k = c * KEYS_PER_CONN + tu_rand(&rng) % KEYS_PER_CONN;
            uint8_t p[4];
            tu_put_be32(p, seq[k]++);
            tu_buf_frame(&bufs[c], COMP, k * 0x9E3779B1ull, p, 4); /* keys spread out */
        }
    }
    ASSERT_EQ(send_all(port, bufs, NCONN), 0);
    ASSERT_EQ(wait_msgs(w, COMP, (uint64_t)NCONN * FRAMES_PER_CONN), 0);
    uint64_t bytes = state_bytes(w);
    /* At least a slot per key; at most what a table at a quarter of its slots would take,
     * plus the per-group headers of both loops. */
    ASSERT_U64_GE(bytes, NCONN * KEYS_PER_CONN * (uint64_t)(8 + sizeof(tally_t)));
    ASSERT_U64_LE(bytes, NCONN * KEYS_PER_CONN * 4ull * (9 + sizeof(tally_t)) + (1u << 20));
    fprintf(stderr, "  state_bytes %llu for %u keys\n", (unsigned long long)bytes,
            NCONN * KEYS_PER_CONN);

    ASSERT_EQ(rill_worker_stop(w), 0);
    ASSERT_EQ(tu_sink_wait_count(sink, NCONN * KEYS_PER_CONN, WAIT_MS), 0);
    ASSERT_U64_EQ(atomic_load(&g_out_of_order), 0);
    ASSERT_U64_EQ(atomic_load(&g_wrong_loop), 0);
    ASSERT_U64_EQ(atomic_load(&g_misaligned), 0);
    ASSERT_U64_EQ(atomic_load(&g_scan_err), 0);

    static uint8_t emitted[NCONN * KEYS_PER_CONN];
    memset(emitted, 0, sizeof emitted);
    size_t nf, sent_keys = 0;
    tu_sink_lock(sink);
    const tu_frame_t *f = tu_sink_frames(sink, &nf);
    unsigned bad = 0;
    for (size_t i = 0; i < nf; i++) {
        uint64_t k = f[i].key / 0x9E3779B1ull;
        if (f[i].key % 0x9E3779B1ull || k >= NCONN * KEYS_PER_CONN || f[i].len != 8 ||
            emitted[k]++ || tu_get_be64(f[i].payload) != seq[k])
            bad++;
    }
    tu_sink_unlock(sink);
    for (size_t k = 0; k < NCONN * KEYS_PER_CONN; k++)
        sent_keys += seq[k] != 0;
    ASSERT_EQ(bad, 0u);
    ASSERT_U64_EQ(nf, sent_keys);

    rill_stats_t st;
    ASSERT_EQ(rill_worker_stats(w, &st, sizeof st), 0);
    ASSERT_U64_EQ(st.comp_errors, 0);
    ASSERT_U64_GE(st.handoff_msgs, 1); /* two loops: keys of the other loop's groups moved */
    rill_worker_destroy(w);
    ASSERT_EQ(atomic_load(&g_released), 1u);
    for (unsigned c = 0; c < NCONN; c++)
        tu_buf_free(&bufs[c]);
    tu_sink_destroy(sink);
    return 0;
}

/* ------------------------------------------------------------ zero values */

/* A payload "set" makes the key's value 1 + its key; anything else only touches it. */
static int touch_batch(uintptr_t ctx, unsigned loop, const rill_msg_t *m, void *const *values,
                       size_t n, rill_emitter_t *em)
{
    (void)ctx, (void)loop, (void)em;
    for (size_t i = 0; i < n; i++)
        if (m[i].len == 3 && memcmp(m[i].data, "set", 3) == 0) {
            uint64_t v = m[i].key + 1;
            memcpy(values[i], &v, 8);
            ((uint8_t *)values[i])[12] = 0x5a; /* the value's last byte */
        }
    return 0;
}

static void touch_flush(uintptr_t ctx, unsigned loop, rill_emitter_t *em)
{
    (void)ctx, (void)loop;
    uint64_t cursor = 0, keys[7];
    void *values[7];
    int got;
    while ((got = rill_state_scan(em, &cursor, keys, values, 7)) > 0)
        for (int i = 0; i < got; i++)
            rill_emit_sink(em, 0, COMP, keys[i], values[i], 13);
}

/* 400 000 keys that are only touched leave no value: a scan does not see them and their
 * slots are reclaimed (a table of all of them would take well over 10 MB); the 1 000
 * keys that were set are scanned, each once, with their 13 bytes intact. */
static int zero_is_absent(void)
{
    enum { TOUCHED = 400000, SET = 1000 };
    tu_sink_t *sink;
    ASSERT_EQ(tu_sink_new(&sink, NULL, NULL), 0);
    rill_worker_t *w;
    uint16_t port;
    ASSERT_EQ(make_worker(&w, 2, sink, &port), 0);
    static const rill_state_ops_t ops = {touch_batch, touch_flush, NULL};
    ASSERT_EQ(rill_comp_register_state(w, COMP, "touch", &ops, 0, 13), 0);
    ASSERT_EQ(rill_worker_start(w), 0);
    tu_buf_t b[2] = {{0}, {0}};
    for (uint64_t k = 0; k < TOUCHED; k++)
        tu_buf_frame(&b[0], COMP, k, "t", 1);
    for (uint64_t k = 0; k < SET; k++)
        tu_buf_frame(&b[1], COMP, 1000000 + k * 7, "set", 3);
    ASSERT_EQ(send_all(port, b, 1), 0);
    ASSERT_EQ(wait_msgs(w, COMP, TOUCHED), 0);
    uint64_t bytes = state_bytes(w);
    fprintf(stderr, "  state_bytes %llu after %u keys touched\n", (unsigned long long)bytes,
            TOUCHED);
    ASSERT_U64_LE(bytes, 4u << 20);
    ASSERT_EQ(send_all(port, b + 1, 1), 0);
    ASSERT_EQ(wait_msgs(w, COMP, TOUCHED + SET), 0);
    ASSERT_EQ(rill_worker_stop(w), 0);
    ASSERT_EQ(tu_sink_wait_count(sink, SET, WAIT_MS), 0);
    tu_sleep_ms(100); /* nothing more may come */
    size_t nf;
    unsigned bad = 0;
    static uint8_t seen[SET];
    tu_sink_lock(sink);
    const tu_frame_t *f = tu_sink_frames(sink, &nf);
    for (size_t i = 0; i < nf; i++) {
        uint64_t j = (f[i].key - 1000000) / 7, v;
        memcpy(&v, f[i].payload, 8);
        if (f[i].key < 1000000 || j >= SET || seen[j]++ || f[i].len != 13 || v != f[i].key + 1 ||
            f[i].payload[12] != 0x5a)
            bad++;
    }
    tu_sink_unlock(sink);
    ASSERT_EQ(bad, 0u);
    ASSERT_U64_EQ(nf, SET);
    rill_worker_destroy(w);
    tu_buf_free(&b[0]);
    tu_buf_free(&b[1]);
    tu_sink_destroy(sink);
    return 0;
}

/* ------------------------------------------------------------ rules */

static atomic_int g_plain_scan = 1;

static int plain_batch(uintptr_t ctx, unsigned loop, const rill_msg_t *m, size_t n,
                       rill_emitter_t *em)
{
    (void)ctx, (void)loop, (void)m, (void)n;
    uint64_t cursor = 0, key;
    void *value;
    atomic_store(&g_plain_scan, rill_state_scan(em, &cursor, &key, &value, 1));
    return 0;
}

static int big_batch(uintptr_t ctx, unsigned loop, const rill_msg_t *m, void *const *values,
                     size_t n, rill_emitter_t *em)
{
    (void)ctx, (void)loop, (void)m, (void)em;
    for (size_t i = 0; i < n; i++) {
        uint8_t *v = values[i];
        if (v[RILL_STATE_VALUE_MAX - 1] != (uint8_t)(v[0] * 3))
            atomic_fetch_add(&g_out_of_order, 1);
        v[0]++;
        v[RILL_STATE_VALUE_MAX - 1] = (uint8_t)(v[0] * 3);
    }
    return 0;
}

/* What registration refuses; scan from an unmanaged computation; values of the largest
 * size; unregistering frees the values (state_bytes back to 0) after release. */
static int rules(void)
{
    atomic_store(&g_released, 0);
    atomic_store(&g_out_of_order, 0);
    rill_worker_t *w;
    uint16_t port;
    ASSERT_EQ(make_worker(&w, 1, NULL, &port), 0);
    static const rill_state_ops_t no_batch = {NULL, NULL, NULL};
    static const rill_comp_ops_t plain = {plain_batch, NULL, NULL};
    static const rill_state_ops_t big = {big_batch, NULL, tally_release};
    ASSERT_EQ(rill_comp_register_state(w, 1, "x", &tally_ops, 0, 0), RILL_EINVAL);
    ASSERT_EQ(rill_comp_register_state(w, 1, "x", &tally_ops, 0, RILL_STATE_VALUE_MAX + 1),
              RILL_EINVAL);
    ASSERT_EQ(rill_comp_register_state(w, 1, "x", NULL, 0, 8), RILL_EINVAL);
    ASSERT_EQ(rill_comp_register_state(w, 1, "x", &no_batch, 0, 8), RILL_EINVAL);
    ASSERT_EQ(rill_comp_register_state(NULL, 1, "x", &tally_ops, 0, 8), RILL_EINVAL);
    ASSERT_EQ(rill_comp_register_state(w, RILL_CONTROL_COMP_ID, "x", &tally_ops, 0, 8),
              RILL_EINVAL);
    ASSERT_EQ(rill_comp_register(w, 1, "plain", &plain, 0), 0);
    ASSERT_EQ(rill_comp_register_state(w, 1, "x", &tally_ops, 0, 8), RILL_EEXIST);
    ASSERT_EQ(rill_comp_register_state(w, 2, "big", &big, 0, RILL_STATE_VALUE_MAX), 0);
    ASSERT_EQ(rill_state_scan(NULL, &(uint64_t){0}, &(uint64_t){0}, &(void *){0}, 1), RILL_EINVAL);
    ASSERT_EQ(rill_worker_start(w), 0);
    tu_buf_t b = {0};
    tu_buf_frame(&b, 1, 5, "p", 1);
    for (unsigned r = 0; r < 50; r++)
        for (uint64_t k = 0; k < 200; k++)
            tu_buf_frame(&b, 2, k, "b", 1);
    ASSERT_EQ(send_all(port, &b, 1), 0);
    ASSERT_EQ(wait_msgs(w, 2, 50 * 200), 0);
    ASSERT_EQ(wait_msgs(w, 1, 1), 0);
    ASSERT_EQ(atomic_load(&g_plain_scan), RILL_EINVAL);
    ASSERT_U64_EQ(atomic_load(&g_out_of_order), 0);
    ASSERT_U64_GE(state_bytes(w), 200u * RILL_STATE_VALUE_MAX);
    ASSERT_EQ(rill_comp_unregister(w, 2), 0);
    ASSERT_EQ(atomic_load(&g_released), 1u);
    ASSERT_U64_EQ(state_bytes(w), 0);
    ASSERT_EQ(rill_worker_stop(w), 0);
    rill_worker_destroy(w);
    tu_buf_free(&b);
    return 0;
}

int main(int argc, char **argv)
{
    t_require_io_uring("state_test");
    tu_ignore_sigpipe();
    static const t_case_t cases[] = {
        {"counts_exact", counts_exact},
        {"zero_is_absent", zero_is_absent},
        {"rules", rules},
        {NULL, NULL},
    };
    return t_run("state", cases, argc, argv);
}
