/* Connection limits against hostile or broken clients (core/loop/loop.c: max_conns, the
 * idle sweep, protocol errors), with an in-process worker and real sockets:
 *   - more connections than max_conns: the extra ones are closed and counted, the others
 *     deliver everything, and a slot freed by a close can be used again;
 *   - slowloris: a connection stalled inside a frame is closed by the idle timeout, one
 *     idle between frames stays open and delivers later;
 *   - random garbage on 8 connections while 8 well-behaved ones deliver every frame
 *     exactly once and in order.
 * Waits are failure bounds only (generous: a loaded 2-core machine, sanitizers). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "integration/tcp_util.h"
#include "rill/rill.h"

#define COMP 1
#define MAGIC 0x52494c4cu /* payloads of well-behaved senders start with it */
#define WAIT_MS 30000

/* ------------------------------------------------------------ exactly-once checker */

/* Payload of a checked frame: magic, connection, sequence (key = connection: one key per
 * connection, so the worker keeps each connection's order). */
typedef struct seqpay {
    uint32_t magic, conn, seq, pad;
} seqpay_t;

#define MAX_CHECK_CONNS 16

typedef struct checker {
    uint32_t next[MAX_CHECK_CONNS]; /* next expected sequence per connection */
    uint64_t good, dup_or_gap, foreign;
} checker_t;

static void check_frame(void *arg, unsigned conn, uint32_t comp, uint64_t key, const uint8_t *p,
                        uint32_t len)
{
    (void)conn;
    checker_t *c = arg;
    seqpay_t s;
    if (comp != COMP || len < sizeof s) {
        c->foreign++;
        return;
    }
    memcpy(&s, p, sizeof s);
    if (s.magic != MAGIC || s.conn >= MAX_CHECK_CONNS || key != s.conn) {
        c->foreign++;
        return;
    }
    if (s.seq != c->next[s.conn]) {
        if (c->dup_or_gap++ < 5)
            fprintf(stderr, "  conn %u: got seq %u, expected %u\n", s.conn, s.seq, c->next[s.conn]);
        c->next[s.conn] = s.seq + 1;
        return;
    }
    c->next[s.conn]++;
    c->good++;
}

/* Builds conn's stream of n checked frames with pay bytes of payload (>= 16). */
static void build_stream(tu_buf_t *b, uint32_t conn, uint32_t n, uint32_t pay)
{
    uint8_t p[256];
    memset(p, 0xab, sizeof p);
    for (uint32_t i = 0; i < n; i++) {
        seqpay_t s = {MAGIC, conn, i, 0};
        memcpy(p, &s, sizeof s);
        tu_buf_frame(b, COMP, conn, p, pay);
    }
}

/* ------------------------------------------------------------ fixture */

typedef struct fix {
    tu_sink_t *sink;
    rill_worker_t *w;
    uint16_t port;
    checker_t chk;
} fix_t;

static int fix_up(fix_t *f, unsigned threads, unsigned max_conns, unsigned idle_ms,
                  uint32_t max_frame)
{
    memset(f, 0, sizeof *f);
    tu_ignore_sigpipe();
    if (tu_sink_new(&f->sink, check_frame, &f->chk) < 0)
        return -1;
    rill_config_t *cfg = rill_config_new();
    rill_config_set_threads(cfg, threads);
    if (max_conns)
        rill_config_set_max_conns(cfg, max_conns);
    rill_config_set_idle_timeout_ms(cfg, idle_ms);
    if (max_frame)
        rill_config_set_max_frame(cfg, max_frame);
    rill_config_add_listener(cfg, "127.0.0.1:0", RILL_FRAMING_RILL, 0, 0, 0);
    rill_config_add_sink(cfg, tu_sink_addr(f->sink));
    int rc = rill_worker_new(&f->w, cfg);
    rill_config_destroy(cfg);
    if (rc < 0)
        return -1;
    rill_comp_ops_t ops = {tu_pass_batch, NULL, NULL};
    if (rill_comp_register(f->w, COMP, "passthrough", &ops, 0) < 0 || rill_worker_start(f->w) < 0)
        return -1;
    f->port = (uint16_t)rill_worker_listener_port(f->w, 0);
    return 0;
}

static void fix_down(fix_t *f)
{
    if (f->w)
        rill_worker_destroy(f->w);
    tu_sink_destroy(f->sink);
}

static void chk_read(fix_t *f, checker_t *out)
{
    tu_sink_lock(f->sink);
    *out = f->chk;
    tu_sink_unlock(f->sink);
}

/* ------------------------------------------------------------ max_conns */

#define MC_LIMIT 4
#define MC_EXTRA 4
#define MC_FRAMES 20000

static int test_max_conns(void)
{
    fix_t f;
    if (fix_up(&f, 2, MC_LIMIT, 30000, 0) < 0) {
        fix_down(&f);
        T_FAIL_AT_("fixture set-up failed");
    }
    int served[MC_LIMIT], extra[MC_EXTRA];
    tu_buf_t bufs[MC_LIMIT];
    uint8_t *data[MC_LIMIT];
    size_t lens[MC_LIMIT];
    memset(bufs, 0, sizeof bufs);
    for (int i = 0; i < MC_LIMIT; i++) {
        served[i] = tu_connect(f.port, 5000);
        ASSERT_GE(served[i], 0);
        build_stream(&bufs[i], (uint32_t)i, MC_FRAMES, 32);
        data[i] = bufs[i].data;
        lens[i] = bufs[i].len;
    }
    ASSERT_EQ(tu_wait_stat_eq(f.w, TU_STAT(conns_open), MC_LIMIT, WAIT_MS, NULL), 0);

    /* The served connections send while the extra ones arrive and are turned away. */
    tu_sender_t *snd;
    ASSERT_EQ(tu_send_start_paced(&snd, served, data, lens, MC_LIMIT, 2, 4096, 200), 0);
    for (int i = 0; i < MC_EXTRA; i++) {
        extra[i] = tu_connect(f.port, 5000);
        ASSERT_GE(extra[i], 0);
    }
    for (int i = 0; i < MC_EXTRA; i++) {
        int rc = tu_wait_peer_closed(extra[i], WAIT_MS);
        if (!tu_closed_rc(rc))
            T_FAIL_AT_("extra connection %d was not closed by the worker (%d)", i, rc);
        close(extra[i]);
    }
    ASSERT_EQ(tu_send_join(snd), 0);
    uint64_t refused;
    ASSERT_EQ(tu_wait_stat_eq(f.w, TU_STAT(conns_refused), MC_EXTRA, WAIT_MS, &refused), 0);
    ASSERT_EQ(tu_sink_wait_count(f.sink, (size_t)MC_LIMIT * MC_FRAMES, WAIT_MS), 0);
    checker_t c;
    chk_read(&f, &c);
    ASSERT_U64_EQ(c.good, (uint64_t)MC_LIMIT * MC_FRAMES);
    ASSERT_U64_EQ(c.dup_or_gap, 0);
    ASSERT_U64_EQ(c.foreign, 0);
    rill_stats_t st;
    ASSERT_EQ(rill_worker_stats(f.w, &st, sizeof st), 0);
    ASSERT_U64_EQ(st.conns_open, MC_LIMIT);
    ASSERT_U64_EQ(st.conns_accepted, MC_LIMIT); /* refused ones are not "accepted" */
    ASSERT_U64_EQ(st.conns_refused, MC_EXTRA);

    /* Freed slots are usable again. */
    for (int i = 0; i < MC_LIMIT; i++)
        close(served[i]);
    ASSERT_EQ(tu_wait_stat_eq(f.w, TU_STAT(conns_open), 0, WAIT_MS, NULL), 0);
    int again = tu_connect(f.port, 5000);
    ASSERT_GE(again, 0);
    tu_buf_t one = {0};
    build_stream(&one, 5, 10, 32);
    ASSERT_EQ(tu_write_all(again, one.data, one.len), 0);
    ASSERT_EQ(tu_sink_wait_count(f.sink, (size_t)MC_LIMIT * MC_FRAMES + 10, WAIT_MS), 0);
    ASSERT_U64_EQ(tu_stat(f.w, TU_STAT(conns_refused)), MC_EXTRA);
    close(again);
    tu_buf_free(&one);
    for (int i = 0; i < MC_LIMIT; i++)
        tu_buf_free(&bufs[i]);
    fix_down(&f);
    return 0;
}

/* ------------------------------------------------------------ slowloris */

#define IDLE_MS 300

static int test_slowloris(void)
{
    fix_t f;
    if (fix_up(&f, 2, 0, IDLE_MS, 0) < 0) {
        fix_down(&f);
        T_FAIL_AT_("fixture set-up failed");
    }
    tu_buf_t a = {0}, b = {0};
    build_stream(&a, 0, 2, 64); /* a: one frame, then half of the second */
    build_stream(&b, 1, 2, 64); /* b: one frame, a pause between frames, the second */
    size_t fsz = a.len / 2;
    int fa = tu_connect(f.port, 5000), fb = tu_connect(f.port, 5000);
    ASSERT_GE(fa, 0);
    ASSERT_GE(fb, 0);
    ASSERT_EQ(tu_write_all(fa, a.data, fsz + fsz / 2), 0);
    ASSERT_EQ(tu_write_all(fb, b.data, fsz), 0);
    int64_t t0 = tu_now_ms();

    /* The stalled one goes: the sweep runs every IDLE_MS / 2, so within ~1.5 x IDLE_MS on
     * an idle machine; 30 s is the failure bound. */
    int rc = tu_wait_peer_closed(fa, WAIT_MS);
    if (!tu_closed_rc(rc))
        T_FAIL_AT_("the stalled connection is still open after %d ms (%d)", WAIT_MS, rc);
    int64_t took = tu_now_ms() - t0;
    fprintf(stderr, "  stalled connection closed after %lld ms (idle timeout %d ms)\n",
            (long long)took, IDLE_MS);
    uint64_t idle;
    ASSERT_EQ(tu_wait_stat_eq(f.w, TU_STAT(err_idle), 1, WAIT_MS, &idle), 0);

    /* The one idle between frames is still open well past the timeout... */
    int64_t until = t0 + 6 * IDLE_MS;
    if (tu_now_ms() < until)
        tu_sleep_ms((int)(until - tu_now_ms()));
    rc = tu_wait_peer_closed(fb, 10);
    if (rc != -ETIMEDOUT)
        T_FAIL_AT_("the connection idle between frames was closed (%d)", rc);
    /* ...and delivers its next frame. */
    ASSERT_EQ(tu_write_all(fb, b.data + fsz, fsz), 0);
    ASSERT_EQ(tu_sink_wait_count(f.sink, 3, WAIT_MS), 0);
    checker_t c;
    chk_read(&f, &c);
    ASSERT_U64_EQ(c.good, 3);
    ASSERT_U64_EQ(c.next[0], 1);
    ASSERT_U64_EQ(c.next[1], 2);
    rill_stats_t st;
    ASSERT_EQ(rill_worker_stats(f.w, &st, sizeof st), 0);
    ASSERT_U64_EQ(st.err_idle, 1);
    ASSERT_U64_EQ(st.err_midframe, 0); /* the idle close is not also a mid-frame close */
    ASSERT_U64_EQ(st.conns_open, 1);
    close(fa);
    close(fb);
    ASSERT_EQ(tu_wait_stat_eq(f.w, TU_STAT(conns_open), 0, WAIT_MS, NULL), 0);
    ASSERT_U64_EQ(tu_stat(f.w, TU_STAT(err_midframe)), 0);
    tu_buf_free(&a);
    tu_buf_free(&b);
    fix_down(&f);
    return 0;
}

/* ------------------------------------------------------------ garbage */

#define G_GOOD 8
#define G_BAD 8
#define G_FRAMES 20000
#define G_MAX_FRAME 65536

/* A hostile stream: frames for unknown computations, runs of random bytes, random
 * lengths; it ends with 3 bytes, so that it cannot end on a frame boundary unless the
 * random part left exactly 3 bytes of a frame to come (the seeds here do not). */
static void build_garbage(tu_buf_t *b, uint64_t seed)
{
    uint64_t st = seed * 0x9E3779B97F4A7C15ull + 1;
    uint8_t junk[4096];
    for (int seg = 0; seg < 64; seg++) {
        uint64_t r = tu_rand(&st);
        switch (r % 4) {
        case 0: /* a valid frame for an unregistered computation */
            for (size_t i = 0; i < 64; i++)
                junk[i] = (uint8_t)tu_rand(&st);
            tu_buf_frame(b, 1000 + (uint32_t)(r >> 8) % 1000, r, junk, (uint32_t)(r >> 40) % 64);
            break;
        case 1: { /* random bytes */
            size_t n = 1 + (size_t)(r >> 12) % sizeof junk;
            for (size_t i = 0; i < n; i++)
                junk[i] = (uint8_t)tu_rand(&st);
            tu_buf_append(b, junk, n);
            break;
        }
        case 2: { /* a length field below 12, or above max_frame */
            uint8_t h[4];
            tu_put_be32(h, (r >> 20) & 1 ? (uint32_t)(r >> 24) % 12
                                         : G_MAX_FRAME + 1 + (uint32_t)(r >> 24) % 100000);
            tu_buf_append(b, h, 4);
            break;
        }
        default: /* a plausible header, then fewer bytes than it announces */
        {
            uint8_t h[16];
            tu_put_be32(h, 12 + (uint32_t)(r >> 16) % 5000);
            tu_put_be32(h + 4, 999); /* unregistered: completed by chance, it is unknown */
            tu_put_be64(h + 8, r);
            tu_buf_append(b, h, 16);
            break;
        }
        }
    }
    tu_buf_append(b, "\x00\x00\x00", 3);
}

static int test_garbage(void)
{
    fix_t f;
    /* A short idle timeout: a garbage stream that stops inside a plausible frame is
     * closed by the sweep even if its sender lingers. */
    if (fix_up(&f, 2, 0, 1000, G_MAX_FRAME) < 0) {
        fix_down(&f);
        T_FAIL_AT_("fixture set-up failed");
    }
    int fds[G_GOOD + G_BAD];
    tu_buf_t bufs[G_GOOD + G_BAD];
    uint8_t *data[G_GOOD + G_BAD];
    size_t lens[G_GOOD + G_BAD];
    memset(bufs, 0, sizeof bufs);
    for (int i = 0; i < G_GOOD + G_BAD; i++) {
        /* interleaved: good, bad, good, bad, ... so both kinds land on both loops */
        int good = i % 2 == 0;
        if (good)
            build_stream(&bufs[i], (uint32_t)(i / 2), G_FRAMES, 24);
        else
            build_garbage(&bufs[i], (uint64_t)i);
        data[i] = bufs[i].data;
        lens[i] = bufs[i].len;
        fds[i] = tu_connect(f.port, 5000);
        ASSERT_GE(fds[i], 0);
    }
    tu_sender_t *snd;
    ASSERT_EQ(tu_send_start_paced(&snd, fds, data, lens, G_GOOD + G_BAD, 4, 2048, 100), 0);
    int err = tu_send_join(snd); /* garbage connections see EPIPE / ECONNRESET: expected */
    (void)err;
    ASSERT_EQ(tu_sink_wait_count(f.sink, (size_t)G_GOOD * G_FRAMES, WAIT_MS), 0);
    for (int i = 0; i < G_GOOD + G_BAD; i++)
        close(fds[i]);
    ASSERT_EQ(tu_wait_stat_eq(f.w, TU_STAT(conns_open), 0, WAIT_MS, NULL), 0);
    tu_sleep_ms(200); /* anything late would show up as a duplicate or foreign frame */

    checker_t c;
    chk_read(&f, &c);
    ASSERT_U64_EQ(c.good, (uint64_t)G_GOOD * G_FRAMES);
    ASSERT_U64_EQ(c.dup_or_gap, 0);
    ASSERT_U64_EQ(c.foreign, 0);
    for (int i = 0; i < G_GOOD; i++)
        ASSERT_U64_EQ(c.next[i], G_FRAMES);
    rill_stats_t st;
    ASSERT_EQ(rill_worker_stats(f.w, &st, sizeof st), 0);
    uint64_t closes = st.err_frame_short + st.err_frame_long + st.err_midframe + st.err_idle;
    fprintf(stderr,
            "  garbage: short %llu long %llu midframe %llu idle %llu conn_err %llu unknown "
            "%llu\n",
            (unsigned long long)st.err_frame_short, (unsigned long long)st.err_frame_long,
            (unsigned long long)st.err_midframe, (unsigned long long)st.err_idle,
            (unsigned long long)st.err_conn, (unsigned long long)st.unknown_comp);
    /* Every garbage connection is closed for exactly one protocol reason; good ones for
     * none. */
    ASSERT_U64_EQ(closes, G_BAD);
    ASSERT_U64_EQ(st.conns_accepted, G_GOOD + G_BAD);
    ASSERT_U64_EQ(st.sink_dropped, 0);
    ASSERT_GT(st.unknown_comp, 0);
    for (int i = 0; i < G_GOOD + G_BAD; i++)
        tu_buf_free(&bufs[i]);
    fix_down(&f);
    return 0;
}

/* ------------------------------------------------------------ carry budget */

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CB_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define CB_SANITIZED 1
#endif
#endif
#ifndef CB_SANITIZED
#define CB_SANITIZED 0
#endif

#define MIB ((size_t)1 << 20)
#define CB_MAX_FRAME (1u << 20)
#define CB_BUDGET (32 * MIB)
#define CB_CONNS 160 /* x ~1 MiB of partial frames: five times the budget */
#define CB_LOOPS 2

/* Connections that each send all but the last byte of a max_frame frame would hold
 * CB_CONNS MiB; with a 32 MiB carry budget the worker closes the connections with the
 * largest carries (err_carry), its RSS stays under the budget plus a stated overhead,
 * and a well-behaved connection afterwards still delivers every frame. */
static int test_carry_budget(void)
{
    fix_t f;
    memset(&f, 0, sizeof f);
    tu_ignore_sigpipe();
    ASSERT_EQ(tu_sink_new(&f.sink, check_frame, &f.chk), 0);
    rill_config_t *cfg = rill_config_new();
    rill_config_set_threads(cfg, CB_LOOPS);
    rill_config_set_max_frame(cfg, CB_MAX_FRAME);
    ASSERT_EQ(rill_config_set_carry_budget(cfg, CB_BUDGET), 0);
    ASSERT_EQ(rill_config_set_carry_budget(cfg, 1000), RILL_ERANGE);
    rill_config_set_idle_timeout_ms(cfg, 0);
    rill_config_add_listener(cfg, "127.0.0.1:0", RILL_FRAMING_RILL, 0, 0, 0);
    rill_config_add_sink(cfg, tu_sink_addr(f.sink));
    int rc = rill_worker_new(&f.w, cfg);
    rill_config_destroy(cfg);
    ASSERT_EQ(rc, 0);
    rill_comp_ops_t ops = {tu_pass_batch, NULL, NULL};
    ASSERT_EQ(rill_comp_register(f.w, COMP, "passthrough", &ops, 0), 0);
    ASSERT_EQ(rill_worker_start(f.w), 0);
    f.port = (uint16_t)rill_worker_listener_port(f.w, 0);

    /* One frame of max_frame, less its last byte: the same bytes for every connection. */
    const size_t part = 4 + CB_MAX_FRAME - 1;
    uint8_t *frame = malloc(4 + CB_MAX_FRAME);
    ASSERT_TRUE(frame != NULL);
    memset(frame, 0x77, 4 + CB_MAX_FRAME);
    tu_frame_encode(frame, COMP, 1, frame + 16, CB_MAX_FRAME - 12);
    tu_sleep_ms(200); /* the worker's start-up allocations are in the baseline */
    size_t base = tu_rss_bytes();
    tu_rss_mon_t mon;
    ASSERT_EQ(tu_rss_mon_start(&mon), 0);
    int fds[CB_CONNS];
    unsigned sent = 0;
    for (int i = 0; i < CB_CONNS; i++) {
        fds[i] = tu_connect(f.port, WAIT_MS);
        ASSERT_GE(fds[i], 0);
        sent += tu_write_all(fds[i], frame, part) == 0; /* a closed one fails: fine */
    }
    /* Until the worker has taken in what it will take: bytes_in stops moving. */
    uint64_t last = 0;
    int64_t still = tu_now_ms(), t0 = still;
    while (tu_now_ms() - still < 500 && tu_now_ms() - t0 < WAIT_MS) {
        tu_sleep_ms(20);
        uint64_t in = tu_stat(f.w, offsetof(rill_stats_t, bytes_in));
        if (in != last) {
            last = in;
            still = tu_now_ms();
        }
    }
    size_t peak = tu_rss_mon_stop(&mon);
    rill_stats_t st;
    ASSERT_EQ(rill_worker_stats(f.w, &st, sizeof st), 0);
    /* The bound: the budget; one more carry per loop (a loop closes the largest only once
     * the total is over, so it can overshoot by the frame being carried); the receive
     * buffers (64 x 16 KiB per loop, touched as data comes in) and 16 MiB of slack for
     * connection slots, malloc arenas of the loop threads and the sink's buffers. */
    const size_t bound = CB_BUDGET + CB_LOOPS * (CB_MAX_FRAME + 4 + MIB) + 16 * MIB;
    fprintf(stderr,
            "  %d connections x %zu bytes of partial frame (%u written whole): err_carry %llu, "
            "carry_bytes %.1f MiB, bytes_in %.1f MiB; RSS +%.1f MiB over %.1f MiB, bound "
            "+%.1f MiB%s\n",
            CB_CONNS, part, sent, (unsigned long long)st.err_carry, (double)st.carry_bytes / MIB,
            (double)st.bytes_in / MIB, (double)(peak - base) / MIB, (double)base / MIB,
            (double)bound / MIB, CB_SANITIZED ? " (sanitizer build: RSS not asserted)" : "");
    ASSERT_GT(st.err_carry, 0);
    ASSERT_U64_LE(st.carry_bytes, CB_BUDGET);
    /* At most budget / frame carries can stay, so at least the rest were closed. */
    ASSERT_U64_GE(st.err_carry, CB_CONNS - CB_BUDGET / (part + 1) - 1);
    if (!CB_SANITIZED)
        ASSERT_U64_LE(peak - base, bound);

    /* A well-behaved connection still delivers everything. */
    int g = tu_connect(f.port, WAIT_MS);
    ASSERT_GE(g, 0);
    tu_buf_t b = {0};
    build_stream(&b, 0, 5000, 64);
    ASSERT_EQ(tu_write_all(g, b.data, b.len), 0);
    ASSERT_EQ(tu_sink_wait_count(f.sink, 5000, WAIT_MS), 0);
    checker_t c;
    chk_read(&f, &c);
    ASSERT_U64_EQ(c.good, 5000);
    ASSERT_U64_EQ(c.dup_or_gap, 0);
    tu_buf_free(&b);
    close(g);
    for (int i = 0; i < CB_CONNS; i++)
        close(fds[i]);
    /* Once the connections are gone, so are their carries. */
    ASSERT_EQ(tu_wait_stat_eq(f.w, offsetof(rill_stats_t, carry_bytes), 0, WAIT_MS, NULL), 0);
    free(frame);
    fix_down(&f);
    return 0;
}

int main(int argc, char **argv)
{
    t_require_io_uring("limits");
    static const t_case_t cases[] = {
        {"max_conns", test_max_conns},
        {"slowloris", test_slowloris},
        {"garbage", test_garbage},
        {"carry_budget", test_carry_budget},
        {NULL, NULL},
    };
    return t_run("limits", cases, argc, argv);
}
