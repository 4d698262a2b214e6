/* Acknowledged delivery to a sink (core/link/acked.c), with an in-process worker, real
 * sockets and the acked sink of acked_peers.c (written from the wire table of
 * docs/protocol.md, "Control frames", not from rill's own codec):
 *   - every frame reaches the sink once, in order per key, and nothing stays retained;
 *   - the sink is killed (connections reset) and restarted three times mid-stream: it
 *     remembers what it counted, so every frame arrives exactly once; frames the worker
 *     had sent but not seen acknowledged are sent again;
 *   - the sink restarts without memory: every frame arrives at least once;
 *   - the sink stops reading: the worker keeps at most the sink's credit unacknowledged,
 *     pauses its sources, drops nothing, and delivers everything once the sink reads;
 *     with a sink buffer smaller than one iteration's reads too;
 *   - the connection to the sink goes through a fault proxy that resets it five times
 *     mid-stream: nothing is lost;
 *   - frames of mixed sizes, some larger than the whole credit, over a link reset three
 *     times: nothing is lost, and the sink (which checks it) never receives more than
 *     its credit unacknowledged;
 *   - a sink that sends garbage instead of WELCOME: the connection is closed and counted
 *     (err_control), the worker reconnects, and delivery goes on once the sink behaves.
 * Waits are failure bounds only. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fault/acked_peers.h"
#include "harness.h"
#include "integration/fault_proxy.h"
#include "integration/tcp_util.h"
#include "rill/rill.h"

#define COMP 1
#define NSRC 4
#define WAIT_MS 60000

/* ------------------------------------------------------------ worker and sources */

static int worker_up(rill_worker_t **w, const char *sink, unsigned threads, size_t sink_buffer)
{
    rill_config_t *cfg = ap_worker_config(sink, threads);
    if (!cfg)
        return -1;
    if ((sink_buffer && rill_config_set_sink_buffer(cfg, sink_buffer) < 0) ||
        rill_config_set_sink_delivery(cfg, 0, (rill_delivery_t)7) != RILL_EINVAL) {
        rill_config_destroy(cfg);
        return -1;
    }
    return ap_worker_start(w, cfg, COMP, tu_pass_batch);
}

typedef struct sources {
    int fd[NSRC];
    uint8_t *buf[NSRC];
    size_t len[NSRC];
    tu_sender_t *snd;
} sources_t;

/* Padding after a frame's ap_pay_t in the mixed-size case: from none to more than the
 * whole credit of that case (MIXED_CREDIT), spread over the frames. */
static const size_t mixed_pad[] = {0, 40, 700, 3000, 9000};
#define MIXED_CREDIT 8192u
#define MIXED_PAD_MAX 9000u

/* NSRC connections, each sending per_src frames with key = its index (one key per source,
 * so the order per key is the order per connection); mixed: payloads of mixed sizes. */
static int sources_start_sized(sources_t *s, uint16_t port, uint64_t per_src, int mixed)
{
    static uint8_t pay[sizeof(ap_pay_t) + MIXED_PAD_MAX];
    memset(s, 0, sizeof *s);
    for (uint32_t i = 0; i < NSRC; i++) {
        tu_buf_t b = {0};
        for (uint64_t q = 0; q < per_src; q++) {
            ap_pay_t y = {AP_MAGIC, i, q};
            size_t pad = mixed ? mixed_pad[(q * 2654435761u >> 7) % 5] : 0;
            memcpy(pay, &y, sizeof y);
            memset(pay + sizeof y, 0x5a, pad);
            tu_buf_frame(&b, COMP, i, pay, sizeof y + pad);
        }
        s->buf[i] = b.data;
        s->len[i] = b.len;
        s->fd[i] = tu_connect(port, 5000);
        if (s->fd[i] < 0)
            return -1;
    }
    return tu_send_start(&s->snd, s->fd, s->buf, s->len, NSRC, 2, 64 * 1024);
}

static int sources_start(sources_t *s, uint16_t port, uint64_t per_src)
{
    return sources_start_sized(s, port, per_src, 0);
}

static int sources_join(sources_t *s)
{
    int rc = tu_send_join(s->snd);
    for (int i = 0; i < NSRC; i++) {
        close(s->fd[i]);
        free(s->buf[i]);
    }
    return rc;
}

static void print_stats(const char *what, rill_worker_t *w, asink_t *s)
{
    rill_stats_t st;
    rill_worker_stats(w, &st, sizeof st);
    fprintf(stderr,
            "  %s: sink counted %llu (dups %llu, out of order %llu, bad %llu), hellos %u, kills "
            "%u; worker out %llu, resent %llu, credit_waits %llu, retained %llu B, "
            "sink_errors %llu, sink_dropped %llu, paused %llu, err_control %llu\n",
            what, (unsigned long long)asink_frames(s), (unsigned long long)s->dups,
            (unsigned long long)s->gaps, (unsigned long long)s->bad, atomic_load(&s->hellos),
            atomic_load(&s->kills), (unsigned long long)st.msgs_out, (unsigned long long)st.resent,
            (unsigned long long)st.credit_waits, (unsigned long long)st.retained_bytes,
            (unsigned long long)st.sink_errors, (unsigned long long)st.sink_dropped,
            (unsigned long long)st.paused, (unsigned long long)st.err_control);
}

static int wait_frames(asink_t *s, uint64_t n)
{
    int64_t end = tu_now_ms() + WAIT_MS;
    while (asink_frames(s) < n && tu_now_ms() < end)
        tu_sleep_ms(10);
    return asink_frames(s) >= n ? 0 : -1;
}

/* Waits (a failure bound only) until every frame of the run has reached the sink; the
 * asserts after it say what was missing. */
static void wait_complete(asink_t *s)
{
    int64_t end = tu_now_ms() + WAIT_MS;
    while (asink_missing(s) && tu_now_ms() < end)
        tu_sleep_ms(20);
}

/* ------------------------------------------------------------ cases */

#define PER_SRC 50000u

static int test_delivery(void)
{
    asink_t s;
    ASSERT_EQ(asink_start(&s, 1u << 20, NSRC, PER_SRC), 0);
    rill_worker_t *w;
    ASSERT_EQ(worker_up(&w, s.addr, 2, 0), 0);
    sources_t src;
    ASSERT_EQ(sources_start(&src, (uint16_t)rill_worker_listener_port(w, 0), PER_SRC), 0);
    ASSERT_EQ(sources_join(&src), 0);
    ASSERT_EQ(wait_frames(&s, NSRC * PER_SRC), 0);
    ASSERT_EQ(rill_worker_stop(w), 0); /* waits for the last acknowledgements */
    rill_stats_t st;
    ASSERT_EQ(rill_worker_stats(w, &st, sizeof st), 0);
    print_stats("delivery", w, &s);
    ASSERT_U64_EQ(asink_missing(&s), 0);
    ASSERT_U64_EQ(s.over_credit, 0);
    ASSERT_U64_EQ(s.dups, 0);
    ASSERT_U64_EQ(s.gaps, 0);
    ASSERT_U64_EQ(s.bad, 0);
    ASSERT_GE(atomic_load(&s.hellos), 2); /* one acked stream per loop */
    ASSERT_U64_EQ(st.retained_bytes, 0);
    ASSERT_U64_EQ(st.sink_dropped, 0);
    ASSERT_U64_EQ(st.resent, 0);
    rill_worker_destroy(w);
    asink_stop(&s);
    return 0;
}

/* Kills the sink `kills` times while the sources send, then lets everything arrive. */
static int restarts(int forget, asink_t *s, rill_worker_t **wp)
{
    ASSERT_EQ(asink_start(s, 256u << 10, NSRC, PER_SRC), 0);
    atomic_store(&s->forget, forget);
    rill_worker_t *w;
    ASSERT_EQ(worker_up(&w, s->addr, 2, 0), 0);
    *wp = w;
    sources_t src;
    ASSERT_EQ(sources_start(&src, (uint16_t)rill_worker_listener_port(w, 0), PER_SRC), 0);
    for (unsigned k = 1; k <= 3; k++) {
        /* at about k quarters of the stream */
        while (asink_frames(s) < k * NSRC * PER_SRC / 4 && atomic_load(&s->kills) < k)
            tu_sleep_ms(2);
        atomic_store(&s->kill, 1);
        while (atomic_load(&s->kills) < k)
            tu_sleep_ms(2);
    }
    ASSERT_EQ(sources_join(&src), 0);
    wait_complete(s);
    ASSERT_EQ(rill_worker_stop(w), 0);
    return 0;
}

static int test_sink_restart(void)
{
    asink_t s;
    rill_worker_t *w = NULL;
    if (restarts(0, &s, &w))
        return 1;
    rill_stats_t st;
    ASSERT_EQ(rill_worker_stats(w, &st, sizeof st), 0);
    print_stats("sink killed 3 times, remembers", w, &s);
    ASSERT_EQ(atomic_load(&s.kills), 3);
    ASSERT_U64_EQ(asink_missing(&s), 0);
    ASSERT_U64_EQ(s.dups, 0); /* it said what it held: nothing came twice */
    ASSERT_U64_EQ(s.gaps, 0);
    ASSERT_U64_EQ(s.bad, 0);
    ASSERT_GE(st.sink_errors, 3);
    ASSERT_U64_EQ(st.sink_dropped, 0);
    ASSERT_U64_EQ(st.retained_bytes, 0);
    rill_worker_destroy(w);
    asink_stop(&s);
    return 0;
}

static int test_sink_amnesia(void)
{
    asink_t s;
    rill_worker_t *w = NULL;
    if (restarts(1, &s, &w))
        return 1;
    rill_stats_t st;
    ASSERT_EQ(rill_worker_stats(w, &st, sizeof st), 0);
    print_stats("sink killed 3 times, forgets", w, &s);
    ASSERT_U64_EQ(asink_missing(&s), 0); /* at least once */
    ASSERT_U64_EQ(s.bad, 0);
    ASSERT_U64_EQ(st.sink_dropped, 0);
    rill_worker_destroy(w);
    asink_stop(&s);
    return 0;
}

#define STALL_CREDIT (256u << 10)
#define STALL_PER_SRC 400000u /* ~10 MiB per source on the wire */

/* The sink welcomes worker w, then stops reading (and acknowledging); sources send
 * per_src frames each. Once the worker paused them, samples the gauge at gauge_off for
 * half a second (largest value in *gauge_max) and checks that nothing was dropped; then
 * the sink reads again, and every frame must arrive once, within the credit. Stops w. */
static int stall_and_resume(asink_t *s, rill_worker_t *w, uint64_t per_src, size_t gauge_off,
                            uint64_t *gauge_max, const char *what)
{
    int64_t end = tu_now_ms() + WAIT_MS;
    while (atomic_load(&s->hellos) < 1 && tu_now_ms() < end)
        tu_sleep_ms(5);
    ASSERT_EQ(atomic_load(&s->hellos), 1);
    tu_sleep_ms(50);
    atomic_store(&s->stall, 1);
    sources_t src;
    ASSERT_EQ(sources_start(&src, (uint16_t)rill_worker_listener_port(w, 0), per_src), 0);
    ASSERT_EQ(tu_wait_stat_ge(w, offsetof(rill_stats_t, paused), 1, WAIT_MS, NULL), 0);
    *gauge_max = 0;
    for (int i = 0; i < 50; i++) {
        uint64_t g = tu_stat(w, gauge_off);
        if (g > *gauge_max)
            *gauge_max = g;
        tu_sleep_ms(10);
    }
    print_stats(what, w, s);
    ASSERT_U64_EQ(tu_stat(w, offsetof(rill_stats_t, sink_dropped)), 0);
    ASSERT_GE(tu_stat(w, offsetof(rill_stats_t, credit_waits)), 1);
    atomic_store(&s->stall, 0);
    ASSERT_EQ(sources_join(&src), 0);
    ASSERT_EQ(wait_frames(s, NSRC * per_src), 0);
    ASSERT_EQ(rill_worker_stop(w), 0);
    print_stats("resumed", w, s);
    ASSERT_U64_EQ(asink_missing(s), 0);
    ASSERT_U64_EQ(s->over_credit, 0);
    ASSERT_U64_EQ(s->dups, 0);
    ASSERT_U64_EQ(s->gaps, 0);
    ASSERT_U64_EQ(tu_stat(w, offsetof(rill_stats_t, sink_dropped)), 0);
    return 0;
}

static int test_stalled_sink(void)
{
    asink_t s;
    ASSERT_EQ(asink_start(&s, STALL_CREDIT, NSRC, STALL_PER_SRC), 0);
    rill_worker_t *w;
    ASSERT_EQ(worker_up(&w, s.addr, 1, 4u << 20), 0);
    uint64_t max_retained;
    ASSERT_EQ(stall_and_resume(&s, w, STALL_PER_SRC, offsetof(rill_stats_t, retained_bytes),
                               &max_retained, "stalled"),
              0);
    fprintf(stderr, "  largest retained while stalled: %llu B (credit %u)\n",
            (unsigned long long)max_retained, STALL_CREDIT);
    ASSERT_U64_LE(max_retained, STALL_CREDIT);
    rill_worker_destroy(w);
    asink_stop(&s);
    return 0;
}

/* Frames from 20 B to more than the whole credit, over a link the fault proxy resets
 * three times: the worker sends whole frames within the credit, a larger one alone when
 * nothing is unacknowledged, and loses nothing. */
#define MIXED_PER_SRC 1500u
static int test_mixed_sizes(void)
{
    asink_t s;
    ASSERT_EQ(asink_start(&s, MIXED_CREDIT, NSRC, MIXED_PER_SRC), 0);
    fp_t *fp;
    ASSERT_EQ(fp_new(&fp, s.port), 0);
    rill_worker_t *w;
    ASSERT_EQ(worker_up(&w, fp_addr(fp), 1, 0), 0);
    sources_t src;
    ASSERT_EQ(
        sources_start_sized(&src, (uint16_t)rill_worker_listener_port(w, 0), MIXED_PER_SRC, 1), 0);
    for (uint64_t k = 1; k <= 3; k++) {
        /* The link reconnected since the last cut (or a cut could find nothing to cut). */
        int64_t end = tu_now_ms() + WAIT_MS;
        while ((asink_frames(&s) < k * NSRC * MIXED_PER_SRC / 4 || atomic_load(&s.hellos) < k) &&
               tu_now_ms() < end)
            tu_sleep_ms(2);
        ASSERT_EQ(fp_cut(fp), 0);
    }
    ASSERT_EQ(sources_join(&src), 0);
    wait_complete(&s);
    ASSERT_EQ(rill_worker_stop(w), 0);
    print_stats("mixed sizes, link reset 3 times", w, &s);
    ASSERT_U64_EQ(asink_missing(&s), 0);
    ASSERT_U64_EQ(s.dups, 0);
    ASSERT_U64_EQ(s.gaps, 0);
    ASSERT_U64_EQ(s.bad, 0);
    ASSERT_U64_EQ(s.over_credit, 0);
    ASSERT_GE(tu_stat(w, offsetof(rill_stats_t, credit_waits)), 1);
    ASSERT_U64_EQ(tu_stat(w, offsetof(rill_stats_t, sink_dropped)), 0);
    ASSERT_U64_EQ(tu_stat(w, offsetof(rill_stats_t, retained_bytes)), 0);
    rill_worker_destroy(w);
    fp_destroy(fp);
    asink_stop(&s);
    return 0;
}

/* A sink buffer far below what one loop iteration can read (64 provided buffers of
 * 16 KiB): while the sink is stalled, the iteration that crosses the watermark still
 * runs every buffer it got, and a best-effort queue would drop the rest. An acked queue
 * takes it (a frame it dropped would be acknowledged upstream all the same), so nothing
 * is dropped, and the backpressure keeps what waits near the watermark. */
#define SMALL_BUFFER (16u << 10)
static int test_small_buffer(void)
{
    asink_t s;
    ASSERT_EQ(asink_start(&s, STALL_CREDIT, NSRC, STALL_PER_SRC / 4), 0);
    rill_config_t *cfg = ap_worker_config(s.addr, 1);
    ASSERT_TRUE(cfg != NULL);
    ASSERT_EQ(rill_config_set_max_frame(cfg, 4096), 0);
    ASSERT_EQ(rill_config_set_sink_buffer(cfg, SMALL_BUFFER), 0);
    rill_worker_t *w;
    ASSERT_EQ(ap_worker_start(&w, cfg, COMP, tu_pass_batch), 0);
    uint64_t max_queued;
    ASSERT_EQ(stall_and_resume(&s, w, STALL_PER_SRC / 4, offsetof(rill_stats_t, sink_queued_bytes),
                               &max_queued, "small sink buffer, stalled"),
              0);
    fprintf(stderr, "  largest queued while stalled: %llu B (sink buffer %u)\n",
            (unsigned long long)max_queued, SMALL_BUFFER);
    rill_worker_destroy(w);
    asink_stop(&s);
    return 0;
}

/* The sink link through a fault proxy, reset five times mid-stream. */
static int test_link_cuts(void)
{
    asink_t s;
    ASSERT_EQ(asink_start(&s, 256u << 10, NSRC, PER_SRC), 0);
    fp_t *fp;
    ASSERT_EQ(fp_new(&fp, s.port), 0);
    rill_worker_t *w;
    ASSERT_EQ(worker_up(&w, fp_addr(fp), 2, 0), 0);
    sources_t src;
    ASSERT_EQ(sources_start(&src, (uint16_t)rill_worker_listener_port(w, 0), PER_SRC), 0);
    for (uint64_t k = 1; k <= 5; k++) {
        /* Both loops' links reconnected since the last cut, or a cut could find one down. */
        int64_t end = tu_now_ms() + WAIT_MS;
        while ((asink_frames(&s) < k * NSRC * PER_SRC / 6 || atomic_load(&s.hellos) < 2 * k) &&
               tu_now_ms() < end)
            tu_sleep_ms(2);
        ASSERT_EQ(fp_cut(fp), 0);
    }
    ASSERT_EQ(sources_join(&src), 0);
    wait_complete(&s);
    ASSERT_EQ(rill_worker_stop(w), 0);
    fp_stats_t ps;
    ASSERT_EQ(fp_stats(fp, &ps), 0);
    print_stats("link reset 5 times by the proxy", w, &s);
    fprintf(stderr, "  proxy: %llu connections, %llu cut\n", (unsigned long long)ps.connected,
            (unsigned long long)ps.conns_cut);
    ASSERT_U64_EQ(asink_missing(&s), 0);
    ASSERT_U64_EQ(s.dups, 0); /* the sink keeps what it counted: nothing twice */
    ASSERT_U64_EQ(s.gaps, 0);
    ASSERT_U64_EQ(s.bad, 0);
    ASSERT_U64_EQ(s.over_credit, 0);
    ASSERT_GE(ps.conns_cut, 5);
    ASSERT_U64_EQ(tu_stat(w, offsetof(rill_stats_t, sink_dropped)), 0);
    rill_worker_destroy(w);
    fp_destroy(fp);
    asink_stop(&s);
    return 0;
}

static int test_bad_control(void)
{
    asink_t s;
    ASSERT_EQ(asink_start(&s, 1u << 20, NSRC, 1000), 0);
    atomic_store(&s.garbage, 1);
    rill_worker_t *w;
    ASSERT_EQ(worker_up(&w, s.addr, 1, 0), 0);
    ASSERT_EQ(tu_wait_stat_ge(w, offsetof(rill_stats_t, err_control), 1, WAIT_MS, NULL), 0);
    atomic_store(&s.garbage, 0); /* the sink behaves from now on */
    sources_t src;
    ASSERT_EQ(sources_start(&src, (uint16_t)rill_worker_listener_port(w, 0), 1000), 0);
    ASSERT_EQ(sources_join(&src), 0);
    ASSERT_EQ(wait_frames(&s, NSRC * 1000), 0);
    ASSERT_EQ(rill_worker_stop(w), 0);
    print_stats("bad control frame", w, &s);
    ASSERT_U64_EQ(asink_missing(&s), 0);
    ASSERT_GE(tu_stat(w, offsetof(rill_stats_t, err_control)), 1);
    rill_worker_destroy(w);
    asink_stop(&s);
    return 0;
}

int main(int argc, char **argv)
{
    t_require_io_uring("acked_sink");
    tu_ignore_sigpipe();
    static const t_case_t cases[] = {
        {"delivery", test_delivery},
        {"sink_restart", test_sink_restart},
        {"sink_amnesia", test_sink_amnesia},
        {"stalled_sink", test_stalled_sink},
        {"link_cuts", test_link_cuts},
        {"mixed_sizes", test_mixed_sizes},
        {"small_buffer", test_small_buffer},
        {"bad_control", test_bad_control},
        {NULL, NULL},
    };
    return t_run("acked_sink", cases, argc, argv);
}
