/* bad_input_test: malformed and unusual input, through rill.h with real sockets.
 * Every case checks that the worker keeps running, that a well-behaved connection sending
 * in parallel delivers all of its frames (and more afterwards), that the matching reason
 * counter moves, and that a protocol error closes only the offending connection. Each case
 * runs with one loop thread (the good and bad connections share it) and with two. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "integration/tcp_util.h"
#include "rill/rill.h"

#define WAIT_MS 20000 /* failure bound only */
#define MAX_FRAME 4096u
#define GOOD_FRAMES 3000u

/* ------------------------------------------------------------ computations */

typedef struct pt_ctx {
    atomic_ullong msgs;
    atomic_ullong emit_fail;
    atomic_int released;
} pt_ctx_t;

static int pt_batch(uintptr_t ctx, unsigned loop, const rill_msg_t *msgs, size_t n,
                    rill_emitter_t *em)
{
    (void)loop;
    pt_ctx_t *c = (pt_ctx_t *)ctx;
    for (size_t i = 0; i < n; i++)
        if (rill_emit_sink(em, 0, msgs[i].comp_id, msgs[i].key, msgs[i].data, msgs[i].len) != 0)
            atomic_fetch_add(&c->emit_fail, 1);
    atomic_fetch_add(&c->msgs, n);
    return 0;
}

static void pt_release(uintptr_t ctx)
{
    atomic_fetch_add(&((pt_ctx_t *)ctx)->released, 1);
}

static const rill_comp_ops_t pt_ops = {pt_batch, NULL, pt_release};

/* ------------------------------------------------------------ fixture */

typedef struct fx {
    unsigned threads;
    rill_worker_t *w;
    tu_sink_t *sink; /* sink 0 */
    tu_sink_t *dl;   /* sink 1 = dead-letter sink, when asked for */
    uint16_t port;
    pt_ctx_t pt;
} fx_t;

static void dump_stats(const rill_worker_t *w)
{
    rill_stats_t s;
    memset(&s, 0, sizeof s);
    if (rill_worker_stats(w, &s, sizeof s) != 0)
        return;
    fprintf(stderr,
            "  stats: in %llu dispatched %llu out %llu accepted %llu open %llu short %llu "
            "long %llu midframe %llu conn %llu unknown %llu comp_err %llu sink_dropped %llu "
            "sink_err %llu\n",
            (unsigned long long)s.msgs_in, (unsigned long long)s.msgs_dispatched,
            (unsigned long long)s.msgs_out, (unsigned long long)s.conns_accepted,
            (unsigned long long)s.conns_open, (unsigned long long)s.err_frame_short,
            (unsigned long long)s.err_frame_long, (unsigned long long)s.err_midframe,
            (unsigned long long)s.err_conn, (unsigned long long)s.unknown_comp,
            (unsigned long long)s.comp_errors, (unsigned long long)s.sink_dropped,
            (unsigned long long)s.sink_errors);
}

/* Worker with `threads` loops, max_frame 4096, one v1 listener, sink 0 (and a dead-letter
 * sink 1 when dead_letter), comp 1 = passthrough to sink 0; started. */
static int fx_open(fx_t *f, unsigned threads, int dead_letter)
{
    memset(f, 0, sizeof *f);
    f->threads = threads;
    ASSERT_EQ(tu_sink_new(&f->sink, NULL, NULL), 0);
    if (dead_letter)
        ASSERT_EQ(tu_sink_new(&f->dl, NULL, NULL), 0);
    rill_config_t *cfg = rill_config_new();
    ASSERT_TRUE(cfg != NULL);
    ASSERT_EQ(rill_config_set_threads(cfg, threads), 0);
    ASSERT_EQ(rill_config_set_max_frame(cfg, MAX_FRAME), 0);
    ASSERT_EQ(rill_config_add_listener(cfg, "127.0.0.1:0", RILL_FRAMING_RILL, 0, 0, 0), 0);
    ASSERT_EQ(rill_config_add_sink(cfg, tu_sink_addr(f->sink)), 0);
    if (dead_letter) {
        ASSERT_EQ(rill_config_add_sink(cfg, tu_sink_addr(f->dl)), 1);
        ASSERT_EQ(rill_config_set_dead_letter_sink(cfg, 1), 0);
    }
    int rc = rill_worker_new(&f->w, cfg);
    rill_config_destroy(cfg);
    ASSERT_EQ(rc, 0);
    int port = rill_worker_listener_port(f->w, 0);
    ASSERT_GT(port, 0);
    f->port = (uint16_t)port;
    ASSERT_EQ(rill_comp_register(f->w, 1, "passthrough", &pt_ops, (uintptr_t)&f->pt), 0);
    ASSERT_EQ(rill_worker_start(f->w), 0);
    return 0;
}

/* Stops and destroys the worker (which closes its sink connections), then checks the
 * sinks saw well-formed streams only. The sinks stay for inspection. */
static int fx_finish(fx_t *f)
{
    ASSERT_EQ(rill_worker_stop(f->w), 0);
    rill_stats_t st;
    ASSERT_EQ(rill_worker_stats(f->w, &st, sizeof st), 0);
    ASSERT_U64_EQ(st.sink_dropped, 0);
    ASSERT_U64_EQ(st.sink_errors, 0);
    rill_worker_destroy(f->w);
    f->w = NULL;
    ASSERT_EQ(atomic_load(&f->pt.released), 1);
    ASSERT_U64_EQ(atomic_load(&f->pt.emit_fail), 0);
    tu_sink_t *sinks[2] = {f->sink, f->dl};
    for (int i = 0; i < 2; i++) {
        if (!sinks[i])
            continue;
        ASSERT_EQ(tu_sink_wait_all_closed(sinks[i], f->threads, WAIT_MS), 0);
        tu_sink_info_t si;
        tu_sink_info(sinks[i], &si);
        ASSERT_EQ(si.accepted, f->threads);
        ASSERT_EQ(si.bad, 0);
        ASSERT_EQ(si.partial, 0);
    }
    return 0;
}

static void fx_free(fx_t *f)
{
    tu_sink_destroy(f->sink);
    tu_sink_destroy(f->dl);
    f->sink = f->dl = NULL;
}

static int fx_close(fx_t *f)
{
    int rc = fx_finish(f);
    fx_free(f);
    return rc;
}

/* ------------------------------------------------------------ tagged good traffic */

/* Good frames: comp, key = tag*16 + seq%4, payload "GOOD", u32 tag, u32 seq, seq%40 bytes. */
static void good_frame(tu_buf_t *b, uint32_t comp, uint32_t tag, uint32_t seq)
{
    uint8_t p[12 + 40];
    memcpy(p, "GOOD", 4);
    tu_put_be32(p + 4, tag);
    tu_put_be32(p + 8, seq);
    uint32_t extra = seq % 40;
    for (uint32_t i = 0; i < extra; i++)
        p[12 + i] = (uint8_t)(tag + seq + i);
    tu_buf_frame(b, comp, (uint64_t)tag * 16 + seq % 4, p, 12 + extra);
}

static void good_frames(tu_buf_t *b, uint32_t comp, uint32_t tag, uint32_t from, uint32_t to)
{
    for (uint32_t s = from; s < to; s++)
        good_frame(b, comp, tag, s);
}

typedef struct tag_res {
    uint32_t count, dup, range, order, corrupt;
} tag_res_t;

/* Scans a sink's stored frames for tag: each seq in [0, n) at most once, intact, and in
 * order per key. */
static void tag_scan(tu_sink_t *s, uint32_t tag, uint32_t n, tag_res_t *r)
{
    memset(r, 0, sizeof *r);
    uint8_t *seen = calloc(n ? n : 1, 1);
    int64_t last[4] = {-1, -1, -1, -1};
    size_t nf;
    tu_sink_lock(s);
    const tu_frame_t *f = tu_sink_frames(s, &nf);
    for (size_t i = 0; i < nf; i++) {
        if (f[i].len < 12 || memcmp(f[i].payload, "GOOD", 4) != 0)
            continue;
        if (tu_get_be32(f[i].payload + 4) != tag)
            continue;
        uint32_t seq = tu_get_be32(f[i].payload + 8);
        r->count++;
        if (seq >= n) {
            r->range++;
            continue;
        }
        if (seen[seq]++)
            r->dup++;
        int bad = f[i].len != 12 + seq % 40 || f[i].key != (uint64_t)tag * 16 + seq % 4;
        for (uint32_t k = 0; !bad && k < seq % 40; k++)
            bad = f[i].payload[12 + k] != (uint8_t)(tag + seq + k);
        if (bad)
            r->corrupt++;
        if ((int64_t)seq < last[seq % 4])
            r->order++;
        last[seq % 4] = seq;
    }
    tu_sink_unlock(s);
    free(seen);
}

/* Waits until tag has n frames at the sink, then asserts exactly n, intact, in order. */
static int expect_tag(tu_sink_t *s, uint32_t tag, uint32_t n)
{
    tag_res_t r;
    int64_t end = tu_now_ms() + WAIT_MS;
    for (;;) {
        tag_scan(s, tag, n, &r);
        if (r.count >= n || tu_now_ms() >= end)
            break;
        tu_sleep_ms(10);
    }
    if (r.count != n || r.dup || r.range || r.order || r.corrupt)
        fprintf(stderr,
                "  tag %u: %u frames of %u (dup %u, out of range %u, misordered %u, "
                "corrupt %u)\n",
                tag, r.count, n, r.dup, r.range, r.order, r.corrupt);
    ASSERT_EQ(r.count, n);
    ASSERT_EQ(r.dup + r.range + r.order + r.corrupt, 0);
    return 0;
}

/* A well-behaved connection that sends GOOD_FRAMES frames (tag 1) from a background thread
 * in small chunks while a case misbehaves on other connections. */
typedef struct good {
    int fd;
    uint32_t tag, sent;
    tu_buf_t b;
    uint8_t *bufs[1];
    size_t lens[1];
    tu_sender_t *snd;
} good_t;

static int good_start(fx_t *f, good_t *g, uint32_t tag)
{
    memset(g, 0, sizeof *g);
    g->tag = tag;
    g->fd = tu_connect(f->port, WAIT_MS);
    ASSERT_GE(g->fd, 0);
    good_frames(&g->b, 1, tag, 0, GOOD_FRAMES);
    g->sent = GOOD_FRAMES;
    g->bufs[0] = g->b.data;
    g->lens[0] = g->b.len;
    ASSERT_EQ(tu_send_start(&g->snd, &g->fd, g->bufs, g->lens, 1, 1, 512), 0);
    return 0;
}

/* Joins the sender, checks every frame arrived, then sends 200 more on the same
 * connection and checks those too: the connection was not affected. */
static int good_finish(fx_t *f, good_t *g)
{
    ASSERT_EQ(tu_send_join(g->snd), 0);
    g->snd = NULL;
    if (expect_tag(f->sink, g->tag, g->sent)) {
        dump_stats(f->w);
        return 1;
    }
    g->b.len = 0;
    good_frames(&g->b, 1, g->tag, g->sent, g->sent + 200);
    g->sent += 200;
    ASSERT_EQ(tu_write_all(g->fd, g->b.data, g->b.len), 0);
    if (expect_tag(f->sink, g->tag, g->sent))
        return 1;
    return 0;
}

static void good_close(good_t *g)
{
    if (g->fd >= 0)
        close(g->fd);
    g->fd = -1;
    tu_buf_free(&g->b);
}

/* A new connection after the incident works too. */
static int fresh_connection_works(fx_t *f, uint32_t tag)
{
    int fd = tu_connect(f->port, WAIT_MS);
    ASSERT_GE(fd, 0);
    tu_buf_t b = {0};
    good_frames(&b, 1, tag, 0, 100);
    ASSERT_EQ(tu_write_all(fd, b.data, b.len), 0);
    int rc = expect_tag(f->sink, tag, 100);
    close(fd);
    tu_buf_free(&b);
    return rc;
}

/* Asserts the worker closed fd (the client reads EOF or ECONNRESET). */
static int expect_closed(int fd)
{
    int rc = tu_wait_peer_closed(fd, WAIT_MS);
    if (!tu_closed_rc(rc))
        fprintf(stderr, "  connection not closed by the worker: %d (%s)\n", rc, strerror(-rc));
    ASSERT_TRUE(tu_closed_rc(rc));
    return 0;
}

static int expect_stat(fx_t *f, size_t off, const char *name, uint64_t want)
{
    uint64_t v = 0;
    int rc = tu_wait_stat_ge(f->w, off, want, WAIT_MS, &v);
    if (rc == 0) {
        tu_sleep_ms(50); /* let a wrong extra count show up, if there is one */
        v = tu_stat(f->w, off);
    }
    if (v != want) {
        fprintf(stderr, "  %s = %llu, expected %llu\n", name, (unsigned long long)v,
                (unsigned long long)want);
        dump_stats(f->w);
    }
    ASSERT_U64_EQ(v, want);
    return 0;
}
#define EXPECT_STAT(f, field, want)                                                                \
    do {                                                                                           \
        if (expect_stat((f), TU_STAT(field), #field, (want)))                                      \
            return 1;                                                                              \
    } while (0)

static uint64_t raw_header(uint8_t *out, uint32_t len, uint32_t comp, uint64_t key)
{
    tu_put_be32(out, len);
    tu_put_be32(out + 4, comp);
    tu_put_be64(out + 8, key);
    return TU_HDR;
}

/* ------------------------------------------------------------ cases */

/* Length fields 11 and 0; a valid frame before the bad one is still delivered; an empty
 * payload (length exactly 12) is valid. */
static int frame_short(unsigned threads)
{
    fx_t f;
    if (fx_open(&f, threads, 0))
        return 1;
    good_t g;
    if (good_start(&f, &g, 1))
        return 1;

    uint8_t b[64];
    int b1 = tu_connect(f.port, WAIT_MS), b2 = tu_connect(f.port, WAIT_MS);
    ASSERT_GE(b1, 0);
    ASSERT_GE(b2, 0);
    /* b1: one valid frame (tag 2, seq 0), then length 11 */
    tu_buf_t v = {0};
    good_frames(&v, 1, 2, 0, 1);
    raw_header(b, 11, 1, 1);
    tu_buf_append(&v, b, 4 + 11);
    ASSERT_EQ(tu_write_all(b1, v.data, v.len), 0);
    /* b2: length 0 */
    memset(b, 0xAB, sizeof b);
    raw_header(b, 0, 1, 1);
    ASSERT_EQ(tu_write_all(b2, b, 32), 0);

    if (expect_closed(b1) || expect_closed(b2))
        return 1;
    EXPECT_STAT(&f, err_frame_short, 2);
    if (expect_tag(f.sink, 2, 1))
        return 1; /* the frame before the bad one */

    /* length exactly 12: an empty payload is valid */
    int e = tu_connect(f.port, WAIT_MS);
    ASSERT_GE(e, 0);
    raw_header(b, 12, 1, 4242);
    ASSERT_EQ(tu_write_all(e, b, TU_HDR), 0);

    if (good_finish(&f, &g))
        return 1;
    if (fresh_connection_works(&f, 3))
        return 1;
    int found = 0;
    int64_t end = tu_now_ms() + WAIT_MS;
    while (!found && tu_now_ms() < end) {
        size_t n;
        tu_sink_lock(f.sink);
        const tu_frame_t *fr = tu_sink_frames(f.sink, &n);
        for (size_t i = 0; i < n; i++)
            if (fr[i].key == 4242 && fr[i].comp_id == 1 && fr[i].len == 0)
                found++;
        tu_sink_unlock(f.sink);
        if (!found)
            tu_sleep_ms(10);
    }
    ASSERT_EQ(found, 1);

    rill_stats_t st;
    ASSERT_EQ(rill_worker_stats(f.w, &st, sizeof st), 0);
    ASSERT_U64_EQ(st.err_frame_short, 2);
    ASSERT_U64_EQ(st.err_frame_long, 0);
    ASSERT_U64_EQ(st.err_midframe, 0);
    ASSERT_U64_EQ(st.unknown_comp, 0);
    EXPECT_STAT(&f, conns_open, 2); /* good + e */

    close(b1);
    close(b2);
    close(e);
    tu_buf_free(&v);
    good_close(&g);
    return fx_close(&f);
}

/* Length max_frame + 1 and 0xFFFFFFFF: closed at once (the body is never awaited);
 * length exactly max_frame is delivered intact. */
static int frame_long(unsigned threads)
{
    fx_t f;
    if (fx_open(&f, threads, 0))
        return 1;
    good_t g;
    if (good_start(&f, &g, 1))
        return 1;

    uint8_t b[TU_HDR + 100];
    memset(b, 0x5A, sizeof b);
    int b1 = tu_connect(f.port, WAIT_MS), b2 = tu_connect(f.port, WAIT_MS);
    ASSERT_GE(b1, 0);
    ASSERT_GE(b2, 0);
    raw_header(b, MAX_FRAME + 1, 1, 1);
    ASSERT_EQ(tu_write_all(b1, b, sizeof b), 0);
    raw_header(b, 0xFFFFFFFFu, 1, 1);
    ASSERT_EQ(tu_write_all(b2, b, sizeof b), 0);
    if (expect_closed(b1) || expect_closed(b2))
        return 1;
    EXPECT_STAT(&f, err_frame_long, 2);

    /* the largest valid frame */
    int e = tu_connect(f.port, WAIT_MS);
    ASSERT_GE(e, 0);
    uint32_t plen = MAX_FRAME - 12;
    uint8_t *big = malloc(TU_HDR + plen);
    ASSERT_TRUE(big != NULL);
    uint8_t *payload = malloc(plen);
    ASSERT_TRUE(payload != NULL);
    for (uint32_t i = 0; i < plen; i++)
        payload[i] = (uint8_t)(i * 31 + 7);
    tu_frame_encode(big, 1, 4096, payload, plen);
    ASSERT_EQ(tu_write_all(e, big, TU_HDR + plen), 0);

    if (good_finish(&f, &g))
        return 1;
    if (fresh_connection_works(&f, 3))
        return 1;
    int found = 0, intact = 0;
    int64_t end = tu_now_ms() + WAIT_MS;
    while (!found && tu_now_ms() < end) {
        size_t n;
        tu_sink_lock(f.sink);
        const tu_frame_t *fr = tu_sink_frames(f.sink, &n);
        for (size_t i = 0; i < n; i++)
            if (fr[i].key == 4096 && fr[i].comp_id == 1) {
                found++;
                intact = fr[i].len == plen && memcmp(fr[i].payload, payload, plen) == 0;
            }
        tu_sink_unlock(f.sink);
        if (!found)
            tu_sleep_ms(10);
    }
    ASSERT_EQ(found, 1);
    ASSERT_TRUE(intact);

    rill_stats_t st;
    ASSERT_EQ(rill_worker_stats(f.w, &st, sizeof st), 0);
    ASSERT_U64_EQ(st.err_frame_long, 2);
    ASSERT_U64_EQ(st.err_frame_short, 0);
    ASSERT_U64_EQ(st.err_midframe, 0);
    EXPECT_STAT(&f, conns_open, 2); /* good + e */

    close(b1);
    close(b2);
    close(e);
    free(big);
    free(payload);
    good_close(&g);
    return fx_close(&f);
}

/* Random bytes on 8 connections. Each stream is redrawn until its first length field is
 * invalid, so every connection must be closed (a valid random length would just make the
 * worker wait for its body); the expected reason is then known exactly. */
static int garbage(unsigned threads)
{
    enum { NG = 8, GLEN = 16384 };
    fx_t f;
    if (fx_open(&f, threads, 0))
        return 1;
    good_t g;
    if (good_start(&f, &g, 1))
        return 1;

    int fds[NG];
    uint64_t want_short = 0, want_long = 0;
    static uint8_t junk[NG][GLEN];
    for (int i = 0; i < NG; i++) {
        uint64_t st = 0x1234567ULL + (uint64_t)i * 7919;
        uint32_t len;
        do {
            for (int k = 0; k < GLEN; k++)
                junk[i][k] = (uint8_t)tu_rand(&st);
            len = tu_get_be32(junk[i]);
        } while (len >= 12 && len <= MAX_FRAME);
        if (len < 12)
            want_short++;
        else
            want_long++;
        fds[i] = tu_connect(f.port, WAIT_MS);
        ASSERT_GE(fds[i], 0);
    }
    for (int i = 0; i < NG; i++)
        (void)tu_write_all(fds[i], junk[i], GLEN); /* may hit EPIPE */
    for (int i = 0; i < NG; i++)
        if (expect_closed(fds[i]))
            return 1;
    EXPECT_STAT(&f, err_frame_long, want_long);
    EXPECT_STAT(&f, err_frame_short, want_short);

    if (good_finish(&f, &g))
        return 1;
    if (fresh_connection_works(&f, 3))
        return 1;
    EXPECT_STAT(&f, conns_open, 1);
    rill_stats_t st;
    ASSERT_EQ(rill_worker_stats(f.w, &st, sizeof st), 0);
    ASSERT_U64_EQ(st.err_midframe, 0);

    for (int i = 0; i < NG; i++)
        close(fds[i]);
    good_close(&g);
    return fx_close(&f);
}

/* The client closes inside a frame (inside the body, and inside the header): counted in
 * err_midframe; the complete frames before are delivered; a close at a frame boundary is
 * not counted. */
static int midframe_close(unsigned threads)
{
    fx_t f;
    if (fx_open(&f, threads, 0))
        return 1;
    good_t g;
    if (good_start(&f, &g, 1))
        return 1;

    int b1 = tu_connect(f.port, WAIT_MS), b2 = tu_connect(f.port, WAIT_MS);
    ASSERT_GE(b1, 0);
    ASSERT_GE(b2, 0);
    tu_buf_t v = {0};
    good_frames(&v, 1, 2, 0, 10);
    uint8_t b[TU_HDR + 20];
    memset(b, 0x11, sizeof b);
    raw_header(b, 12 + 100, 1, 1);
    tu_buf_append(&v, b, sizeof b); /* a frame of 100 payload bytes, 20 of them sent */
    ASSERT_EQ(tu_write_all(b1, v.data, v.len), 0);
    ASSERT_EQ(tu_write_all(b2, b, 6), 0); /* 6 bytes of a header */
    if (expect_tag(f.sink, 2, 10))
        return 1;
    ASSERT_EQ(shutdown(b1, SHUT_WR), 0);
    ASSERT_EQ(shutdown(b2, SHUT_WR), 0);
    if (expect_closed(b1) || expect_closed(b2))
        return 1;
    EXPECT_STAT(&f, err_midframe, 2);

    if (good_finish(&f, &g))
        return 1;
    if (fresh_connection_works(&f, 3))
        return 1;                          /* closes at a frame boundary */
    ASSERT_EQ(shutdown(g.fd, SHUT_WR), 0); /* so does the good connection */
    if (expect_closed(g.fd))
        return 1;
    EXPECT_STAT(&f, conns_open, 0);
    rill_stats_t st;
    ASSERT_EQ(rill_worker_stats(f.w, &st, sizeof st), 0);
    ASSERT_U64_EQ(st.err_midframe, 2);
    ASSERT_U64_EQ(st.err_frame_short + st.err_frame_long, 0);
    ASSERT_U64_EQ(st.err_conn, 0);

    close(b1);
    close(b2);
    tu_buf_free(&v);
    good_close(&g);
    return fx_close(&f);
}

/* Frames for an unregistered id are counted and dropped; the connection stays open and its
 * later frames are delivered. */
static int unknown_comp(unsigned threads)
{
    fx_t f;
    if (fx_open(&f, threads, 0))
        return 1;
    good_t g;
    if (good_start(&f, &g, 1))
        return 1;

    int u = tu_connect(f.port, WAIT_MS);
    ASSERT_GE(u, 0);
    tu_buf_t v = {0};
    for (uint32_t i = 0; i < 5; i++)
        good_frame(&v, 99, 9, i); /* tag 9 must never arrive */
    good_frames(&v, 1, 2, 0, 100);
    ASSERT_EQ(tu_write_all(u, v.data, v.len), 0);
    if (expect_tag(f.sink, 2, 100))
        return 1;
    EXPECT_STAT(&f, unknown_comp, 5);

    v.len = 0;
    for (uint32_t i = 5; i < 10; i++)
        good_frame(&v, 99, 9, i);
    good_frames(&v, 1, 2, 100, 150);
    ASSERT_EQ(tu_write_all(u, v.data, v.len), 0);
    if (expect_tag(f.sink, 2, 150))
        return 1;
    EXPECT_STAT(&f, unknown_comp, 10);

    if (good_finish(&f, &g))
        return 1;
    if (fresh_connection_works(&f, 3))
        return 1;
    tag_res_t r;
    tag_scan(f.sink, 9, 10, &r);
    ASSERT_EQ(r.count, 0);
    EXPECT_STAT(&f, conns_open, 2); /* good + u */
    rill_stats_t st;
    ASSERT_EQ(rill_worker_stats(f.w, &st, sizeof st), 0);
    ASSERT_U64_EQ(st.err_frame_short + st.err_frame_long + st.err_midframe, 0);

    close(u);
    tu_buf_free(&v);
    good_close(&g);
    return fx_close(&f);
}

/* Computation 4 fails every batch that holds a "FAIL" message, after emitting the other
 * messages of that batch (which the header says are kept). */
typedef struct fail_ctx {
    atomic_ullong failed_msgs; /* messages in batches we failed */
    atomic_ullong seen;
    atomic_ullong emit_fail;
} fail_ctx_t;

static int fail_batch(uintptr_t ctx, unsigned loop, const rill_msg_t *msgs, size_t n,
                      rill_emitter_t *em)
{
    (void)loop;
    fail_ctx_t *c = (fail_ctx_t *)ctx;
    int fail = 0;
    for (size_t i = 0; i < n; i++) {
        if (msgs[i].len >= 4 && memcmp(msgs[i].data, "FAIL", 4) == 0) {
            fail = 1;
            continue;
        }
        if (rill_emit_sink(em, 0, msgs[i].comp_id, msgs[i].key, msgs[i].data, msgs[i].len))
            atomic_fetch_add(&c->emit_fail, 1);
    }
    if (fail)
        atomic_fetch_add(&c->failed_msgs, n);
    atomic_fetch_add(&c->seen, n);
    return fail ? -1 : (int)n;
}

static int comp_error(unsigned threads)
{
    fx_t f;
    if (fx_open(&f, threads, 0))
        return 1;
    static fail_ctx_t fc;
    memset(&fc, 0, sizeof fc);
    static const rill_comp_ops_t ops = {fail_batch, NULL, NULL};
    ASSERT_EQ(rill_comp_register(f.w, 4, "failing", &ops, (uintptr_t)&fc), 0);
    good_t g;
    if (good_start(&f, &g, 1))
        return 1;

    int x = tu_connect(f.port, WAIT_MS);
    ASSERT_GE(x, 0);
    tu_buf_t v = {0};
    uint32_t ok = 0;
    uint8_t fp[8] = {'F', 'A', 'I', 'L', 0, 0, 0, 0};
    for (int round = 0; round < 10; round++) {
        good_frames(&v, 4, 2, ok, ok + 50);
        ok += 50;
        for (int k = 0; k < 10; k++)
            tu_buf_frame(&v, 4, (uint64_t)(round * 10 + k), fp, sizeof fp);
    }
    ASSERT_EQ(tu_write_all(x, v.data, v.len), 0);
    int64_t end = tu_now_ms() + WAIT_MS;
    while (atomic_load(&fc.seen) < 600 && tu_now_ms() < end)
        tu_sleep_ms(5);
    ASSERT_U64_EQ(atomic_load(&fc.seen), 600);
    /* every non-FAIL message was emitted, also from failed batches */
    if (expect_tag(f.sink, 2, ok))
        return 1;
    uint64_t failed = atomic_load(&fc.failed_msgs);
    ASSERT_U64_GE(failed, 100);
    EXPECT_STAT(&f, comp_errors, failed);
    rill_comp_stats_t cs;
    ASSERT_EQ(rill_comp_stats(f.w, 4, &cs, sizeof cs), 0);
    ASSERT_U64_EQ(cs.errors, failed);
    ASSERT_U64_EQ(cs.msgs, 600);

    /* later batches are fine, on the same connection */
    v.len = 0;
    good_frames(&v, 4, 2, ok, ok + 100);
    ok += 100;
    ASSERT_EQ(tu_write_all(x, v.data, v.len), 0);
    if (expect_tag(f.sink, 2, ok))
        return 1;
    EXPECT_STAT(&f, comp_errors, failed);
    ASSERT_U64_EQ(atomic_load(&fc.failed_msgs), failed);
    ASSERT_U64_EQ(atomic_load(&fc.emit_fail), 0);

    if (good_finish(&f, &g))
        return 1;
    rill_stats_t st;
    ASSERT_EQ(rill_worker_stats(f.w, &st, sizeof st), 0);
    ASSERT_U64_EQ(st.err_frame_short + st.err_frame_long + st.err_midframe, 0);
    ASSERT_U64_EQ(st.unknown_comp, 0);
    EXPECT_STAT(&f, conns_open, 2);

    close(x);
    tu_buf_free(&v);
    good_close(&g);
    return fx_close(&f);
}

/* Frames for unknown ids go unchanged to the dead-letter sink (sink 1); the rest to sink 0. */
static int dead_letter(unsigned threads)
{
    enum { NDL = 200, NEMPTY = 3 };
    fx_t f;
    if (fx_open(&f, threads, 1))
        return 1;
    good_t g;
    if (good_start(&f, &g, 1))
        return 1;

    int d = tu_connect(f.port, WAIT_MS);
    ASSERT_GE(d, 0);
    tu_buf_t v = {0};
    uint8_t p[4 + 64];
    for (uint32_t i = 0; i < NDL; i++) {
        tu_put_be32(p, i);
        for (uint32_t k = 0; k < i % 64; k++)
            p[4 + k] = (uint8_t)(i ^ k);
        tu_buf_frame(&v, 77, 10000 + i, p, 4 + i % 64); /* key identifies the frame */
        if (i % 2 == 0)
            good_frame(&v, 1, 2, i / 2); /* interleaved good frames */
    }
    for (uint32_t i = 0; i < NEMPTY; i++)
        tu_buf_frame(&v, 78, 20000 + i, NULL, 0);
    ASSERT_EQ(tu_write_all(d, v.data, v.len), 0);

    if (expect_tag(f.sink, 2, NDL / 2))
        return 1;
    ASSERT_EQ(tu_sink_wait_count(f.dl, NDL + NEMPTY, WAIT_MS), 0);
    EXPECT_STAT(&f, unknown_comp, NDL + NEMPTY);
    if (good_finish(&f, &g))
        return 1;

    close(d);
    tu_buf_free(&v);
    good_close(&g);
    if (fx_finish(&f))
        return 1; /* afterwards nothing more can arrive */
    uint8_t seen[NDL + NEMPTY] = {0};
    int bad = 0;
    size_t n;
    tu_sink_lock(f.dl);
    const tu_frame_t *fr = tu_sink_frames(f.dl, &n);
    for (size_t i = 0; i < n; i++) {
        if (fr[i].comp_id == 77 && fr[i].key >= 10000 && fr[i].key < 10000 + NDL) {
            uint32_t idx = (uint32_t)(fr[i].key - 10000);
            int ok = fr[i].len == 4 + idx % 64 && tu_get_be32(fr[i].payload) == idx;
            for (uint32_t k = 0; ok && k < idx % 64; k++)
                ok = fr[i].payload[4 + k] == (uint8_t)(idx ^ k);
            if (!ok)
                bad++;
            seen[idx]++;
        } else if (fr[i].comp_id == 78 && fr[i].key >= 20000 && fr[i].key < 20000 + NEMPTY) {
            if (fr[i].len != 0)
                bad++;
            seen[NDL + (fr[i].key - 20000)]++;
        } else {
            bad++;
        }
    }
    tu_sink_unlock(f.dl);
    ASSERT_EQ(bad, 0);
    ASSERT_EQ(n, NDL + NEMPTY);
    for (int i = 0; i < NDL + NEMPTY; i++)
        ASSERT_EQ(seen[i], 1);
    /* nothing for 77/78 at sink 0 */
    tu_sink_lock(f.sink);
    fr = tu_sink_frames(f.sink, &n);
    int stray = 0;
    for (size_t i = 0; i < n; i++)
        stray += fr[i].comp_id != 1;
    tu_sink_unlock(f.sink);
    ASSERT_EQ(stray, 0);
    tu_sink_info_t si;
    tu_sink_info(f.dl, &si);
    ASSERT_EQ(si.bad + si.partial, 0);
    fx_free(&f);
    return 0;
}

/* A stream written one byte per send() (TCP_NODELAY) still decodes into intact frames. */
static int one_byte_writes(unsigned threads)
{
    fx_t f;
    if (fx_open(&f, threads, 0))
        return 1;
    good_t g;
    if (good_start(&f, &g, 1))
        return 1;

    int o = tu_connect(f.port, WAIT_MS);
    ASSERT_GE(o, 0);
    ASSERT_EQ(tu_set_nodelay(o), 0);
    static const uint32_t sizes[] = {1, 100, 300, 0, 57};
    enum { NS = sizeof sizes / sizeof sizes[0] };
    tu_buf_t v = {0};
    uint8_t p[300];
    for (uint32_t i = 0; i < NS; i++) {
        for (uint32_t k = 0; k < sizes[i]; k++)
            p[k] = (uint8_t)(i * 50 + k);
        tu_buf_frame(&v, 1, 7000 + i % 2, p, sizes[i]); /* two keys, order checked */
    }
    for (size_t i = 0; i < v.len; i++) {
        ASSERT_EQ(tu_write_all(o, v.data + i, 1), 0);
        if (i < 40)
            tu_sleep_ms(1); /* the first frames surely in separate segments */
    }
    ASSERT_EQ(tu_sink_wait_count(f.sink, NS, WAIT_MS), 0);
    int64_t end = tu_now_ms() + WAIT_MS;
    uint32_t got = 0;
    int bad = 0;
    while (tu_now_ms() < end) {
        got = 0;
        bad = 0;
        int64_t last[2] = {-1, -1};
        size_t n;
        tu_sink_lock(f.sink);
        const tu_frame_t *fr = tu_sink_frames(f.sink, &n);
        for (size_t i = 0; i < n; i++) {
            if (fr[i].key != 7000 && fr[i].key != 7001)
                continue;
            /* identify the frame by its first byte (i * 50) or, when empty, by elimination */
            int idx = -1;
            for (uint32_t s = 0; s < NS; s++)
                if (fr[i].len == sizes[s] &&
                    (sizes[s] == 0 || fr[i].payload[0] == (uint8_t)(s * 50)))
                    idx = (int)s;
            if (idx < 0 || fr[i].key != 7000u + (unsigned)idx % 2) {
                bad++;
                continue;
            }
            for (uint32_t k = 0; k < sizes[idx]; k++)
                if (fr[i].payload[k] != (uint8_t)(idx * 50 + k))
                    bad++;
            if (idx < last[idx % 2])
                bad++;
            last[idx % 2] = idx;
            got++;
        }
        tu_sink_unlock(f.sink);
        if (got >= NS)
            break;
        tu_sleep_ms(10);
    }
    ASSERT_EQ(bad, 0);
    ASSERT_EQ(got, NS);

    if (good_finish(&f, &g))
        return 1;
    rill_stats_t st;
    ASSERT_EQ(rill_worker_stats(f.w, &st, sizeof st), 0);
    ASSERT_U64_EQ(st.err_frame_short + st.err_frame_long + st.err_midframe, 0);
    EXPECT_STAT(&f, conns_open, 2);

    close(o);
    tu_buf_free(&v);
    good_close(&g);
    return fx_close(&f);
}

/* ------------------------------------------------------------ one payload limit */

/* The largest payload is max_frame - 12 on every path: an lp or line payload of that
 * size is delivered and passed on to a sink intact, one byte more closes its connection
 * (err_frame_long); emits accept exactly that size and refuse one byte more. */
typedef struct probe_ctx {
    atomic_int sink_ok, sink_over, comp_ok, comp_over, ran;
} probe_ctx_t;

static uint8_t probe_buf[MAX_FRAME];

static int probe_batch(uintptr_t ctx, unsigned loop, const rill_msg_t *msgs, size_t n,
                       rill_emitter_t *em)
{
    (void)loop, (void)msgs, (void)n;
    probe_ctx_t *c = (probe_ctx_t *)ctx;
    atomic_store(&c->sink_ok, rill_emit_sink(em, 0, 9, 1, probe_buf, MAX_FRAME - 12));
    atomic_store(&c->sink_over, rill_emit_sink(em, 0, 9, 1, probe_buf, MAX_FRAME - 11));
    atomic_store(&c->comp_ok, rill_emit_comp(em, 1, 2, probe_buf, MAX_FRAME - 12));
    atomic_store(&c->comp_over, rill_emit_comp(em, 1, 2, probe_buf, MAX_FRAME - 11));
    atomic_store(&c->ran, 1);
    return 0;
}

static int sink_has(tu_sink_t *s, uint64_t key, uint32_t len)
{
    size_t n;
    int found = 0;
    tu_sink_lock(s);
    const tu_frame_t *fr = tu_sink_frames(s, &n);
    for (size_t i = 0; i < n && !found; i++)
        found = fr[i].key == key && fr[i].len == len;
    tu_sink_unlock(s);
    return found;
}

static int wait_sink_has(tu_sink_t *s, uint64_t key, uint32_t len)
{
    int64_t end = tu_now_ms() + WAIT_MS;
    while (!sink_has(s, key, len) && tu_now_ms() < end)
        tu_sleep_ms(10);
    return sink_has(s, key, len);
}

static int payload_limit(void)
{
    tu_sink_t *sink;
    ASSERT_EQ(tu_sink_new(&sink, NULL, NULL), 0);
    rill_config_t *cfg = rill_config_new();
    ASSERT_TRUE(cfg != NULL);
    ASSERT_EQ(rill_config_set_max_frame(cfg, MAX_FRAME), 0);
    ASSERT_EQ(rill_config_add_listener(cfg, "127.0.0.1:0", RILL_FRAMING_RILL, 0, 0, 0), 0);
    ASSERT_EQ(rill_config_add_listener(cfg, "127.0.0.1:0", RILL_FRAMING_LP, 1, 1, 77), 1);
    ASSERT_EQ(rill_config_add_listener(cfg, "127.0.0.1:0", RILL_FRAMING_LINE, 1, 1, 78), 2);
    ASSERT_EQ(rill_config_add_sink(cfg, tu_sink_addr(sink)), 0);
    rill_worker_t *w;
    int rc = rill_worker_new(&w, cfg);
    rill_config_destroy(cfg);
    ASSERT_EQ(rc, 0);
    pt_ctx_t pt;
    memset(&pt, 0, sizeof pt);
    probe_ctx_t probe;
    memset(&probe, 0, sizeof probe);
    static const rill_comp_ops_t probe_ops = {probe_batch, NULL, NULL};
    ASSERT_EQ(rill_comp_register(w, 1, "passthrough", &pt_ops, (uintptr_t)&pt), 0);
    ASSERT_EQ(rill_comp_register(w, 2, "probe", &probe_ops, (uintptr_t)&probe), 0);
    ASSERT_EQ(rill_worker_start(w), 0);
    uint16_t v1 = (uint16_t)rill_worker_listener_port(w, 0);
    uint16_t lp = (uint16_t)rill_worker_listener_port(w, 1);
    uint16_t line = (uint16_t)rill_worker_listener_port(w, 2);

    uint8_t *msg = malloc(4 + MAX_FRAME);
    ASSERT_TRUE(msg != NULL);
    /* lp: the largest payload is delivered and passed on; one byte more is refused. */
    int a = tu_connect(lp, WAIT_MS), b = tu_connect(lp, WAIT_MS);
    ASSERT_GE(a, 0);
    ASSERT_GE(b, 0);
    memset(msg + 4, 'p', MAX_FRAME);
    tu_put_be32(msg, MAX_FRAME - 12);
    ASSERT_EQ(tu_write_all(a, msg, 4 + MAX_FRAME - 12), 0);
    tu_put_be32(msg, MAX_FRAME - 11);
    ASSERT_EQ(tu_write_all(b, msg, 4 + MAX_FRAME - 11), 0);
    if (expect_closed(b))
        return 1;
    ASSERT_TRUE(wait_sink_has(sink, 77, MAX_FRAME - 12));

    /* line: the same limit (the newline does not count). */
    int c = tu_connect(line, WAIT_MS), d = tu_connect(line, WAIT_MS);
    ASSERT_GE(c, 0);
    ASSERT_GE(d, 0);
    memset(msg, 'l', MAX_FRAME);
    msg[MAX_FRAME - 12] = '\n';
    ASSERT_EQ(tu_write_all(c, msg, MAX_FRAME - 11), 0);
    msg[MAX_FRAME - 12] = 'l';
    msg[MAX_FRAME - 11] = '\n';
    ASSERT_EQ(tu_write_all(d, msg, MAX_FRAME - 10), 0);
    if (expect_closed(d))
        return 1;
    ASSERT_TRUE(wait_sink_has(sink, 78, MAX_FRAME - 12));

    /* emits: exactly max_frame - 12, from a v1 frame for the probe. */
    int e = tu_connect(v1, WAIT_MS);
    ASSERT_GE(e, 0);
    size_t fl = tu_frame_encode(msg, 2, 5, "x", 1);
    ASSERT_EQ(tu_write_all(e, msg, fl), 0);
    int64_t end = tu_now_ms() + WAIT_MS;
    while (!atomic_load(&probe.ran) && tu_now_ms() < end)
        tu_sleep_ms(10);
    ASSERT_EQ(atomic_load(&probe.ran), 1);
    ASSERT_EQ(atomic_load(&probe.sink_ok), 0);
    ASSERT_EQ(atomic_load(&probe.sink_over), RILL_EINVAL);
    ASSERT_EQ(atomic_load(&probe.comp_ok), 0);
    ASSERT_EQ(atomic_load(&probe.comp_over), RILL_EINVAL);
    ASSERT_TRUE(wait_sink_has(sink, 1, MAX_FRAME - 12)); /* probe's own emit */
    ASSERT_TRUE(wait_sink_has(sink, 2, MAX_FRAME - 12)); /* through emit_comp, passthrough */

    ASSERT_EQ(rill_worker_stop(w), 0);
    rill_stats_t st;
    ASSERT_EQ(rill_worker_stats(w, &st, sizeof st), 0);
    fprintf(stderr, "  err_frame_long %llu, passthrough emit failures %llu\n",
            (unsigned long long)st.err_frame_long, (unsigned long long)atomic_load(&pt.emit_fail));
    ASSERT_U64_EQ(st.err_frame_long, 2);
    ASSERT_U64_EQ(atomic_load(&pt.emit_fail), 0);
    ASSERT_U64_EQ(st.sink_dropped, 0);
    rill_worker_destroy(w);
    close(a), close(b), close(c), close(d), close(e);
    free(msg);
    tu_sink_destroy(sink);
    return 0;
}

// clang-format off
#define BOTH(fn)                                  \
    static int fn##_1(void) { return fn(1); }     \
    static int fn##_2(void) { return fn(2); }
BOTH(frame_short)
BOTH(frame_long)
BOTH(garbage)
BOTH(midframe_close)
BOTH(unknown_comp)
BOTH(comp_error)
BOTH(dead_letter)
BOTH(one_byte_writes)

#define CASES(fn) {#fn "_1thread", fn##_1}, {#fn "_2threads", fn##_2}
static const t_case_t cases[] = {
    CASES(frame_short),
    CASES(frame_long),
    CASES(garbage),
    CASES(midframe_close),
    CASES(unknown_comp),
    CASES(comp_error),
    CASES(dead_letter),
    CASES(one_byte_writes),
    {"payload_limit", payload_limit},
    {NULL, NULL},
};
// clang-format on

int main(int argc, char **argv)
{
    t_require_io_uring("bad_input_test");
    tu_ignore_sigpipe();
    return t_run("bad_input_test", cases, argc, argv);
}
