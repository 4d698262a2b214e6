/* Acked sources (core/loop/acked_in.c): connections that begin with HELLO, with an
 * in-process worker, real sockets, and the acked source and sink of acked_peers.c
 * (written from the wire table of docs/protocol.md, not from rill's own codec). The
 * source checks on every ACK that the sink had already counted every frame it covers:
 * an acknowledgement before the effect was safe downstream is a failure in every case.
 *   - delivery with one loop and with two (frames handed between loops): every frame
 *     acknowledged and delivered once, ACKs batched;
 *   - no sink: frames are acknowledged once they ran;
 *   - the sink killed three times under load: nothing acknowledged early, nothing lost;
 *   - the sink stalled: acknowledgements stop with it, the sources wait on credit;
 *   - the source connections cut five times by a fault proxy: the worker skips what
 *     already ran (dup_skipped), so the sink gets every frame exactly once;
 *   - shutdown: every acked source gets GOAWAY and an ACK for everything that ran;
 *   - failover: a worker stopped mid-stream, its sources move to a second worker:
 *     every frame arrives, none twice;
 *   - chain: a worker whose acked sink is another worker: the guarantee holds through
 *     both while the sink is killed;
 *   - the credit pool: few connections share it, many get the source credit each;
 *   - bad control frames close only their connection; best-effort connections are
 *     unchanged (a control frame after data is an unknown computation there).
 * Waits are failure bounds only. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fault/acked_peers.h"
#include "harness.h"
#include "integration/fault_proxy.h"
#include "integration/tcp_util.h"
#include "rill/rill.h"

#define COMP 1
#define NSRC 4
#define WAIT_MS 60000
#define CTL 0xFFFFFFFFu

static int nothing_batch(uintptr_t ctx, unsigned loop, const rill_msg_t *m, size_t n,
                         rill_emitter_t *em)
{
    (void)ctx, (void)loop, (void)m, (void)n, (void)em;
    return 0;
}

/* A worker whose computation passes every frame to its acked sink (none when sink is
 * NULL: the frames only run). */
static int worker_up(rill_worker_t **w, const char *sink, unsigned threads, uint32_t credit)
{
    rill_config_t *cfg = ap_worker_config(sink, threads);
    if (!cfg)
        return -1;
    if ((credit && rill_config_set_source_credit(cfg, credit) < 0) ||
        rill_config_set_source_credit(cfg, 100) != RILL_ERANGE) {
        rill_config_destroy(cfg);
        return -1;
    }
    return ap_worker_start(w, cfg, COMP, sink ? tu_pass_batch : nothing_batch);
}

static uint16_t port_of(rill_worker_t *w)
{
    return (uint16_t)rill_worker_listener_port(w, 0);
}

static void print_stats(const char *what, rill_worker_t *w, asrc_t *a, asink_t *s)
{
    rill_stats_t st;
    rill_worker_stats(w, &st, sizeof st);
    fprintf(stderr,
            "  %s: source acked %llu (early %llu, goaways %llu, reconnects %llu, resent %llu, "
            "protocol %llu); worker in %llu, acked_in %llu, dup_skipped %llu, acks_sent %llu, "
            "barriers %llu (mean wait %.0f us), err_control %llu, sink_dropped %llu",
            what, (unsigned long long)asrc_acked(a), (unsigned long long)a->early_acks,
            (unsigned long long)a->goaways, (unsigned long long)a->reconnects,
            (unsigned long long)a->resent, (unsigned long long)a->protocol,
            (unsigned long long)st.msgs_in, (unsigned long long)st.acked_in,
            (unsigned long long)st.dup_skipped, (unsigned long long)st.acks_sent,
            (unsigned long long)st.ack_barriers,
            st.ack_barriers ? (double)st.ack_wait_ns / (double)st.ack_barriers / 1e3 : 0.0,
            (unsigned long long)st.err_control, (unsigned long long)st.sink_dropped);
    if (s)
        fprintf(stderr, "; sink counted %llu (dups %llu, out of order %llu, bad %llu)",
                (unsigned long long)asink_frames(s), (unsigned long long)s->dups,
                (unsigned long long)s->gaps, (unsigned long long)s->bad);
    fputc('\n', stderr);
}

/* ------------------------------------------------------------ cases */

#define PER_SRC 100000u

static int delivery(unsigned threads)
{
    asink_t s;
    ASSERT_EQ(asink_start(&s, 1u << 20, NSRC, PER_SRC), 0);
    rill_worker_t *w;
    ASSERT_EQ(worker_up(&w, s.addr, threads, 0), 0);
    uint16_t port = port_of(w);
    asrc_t a;
    ASSERT_EQ(asrc_start(&a, &port, 1, NSRC, PER_SRC, COMP, &s), 0);
    ASSERT_EQ(asrc_join(&a, WAIT_MS), 0);
    ASSERT_EQ(rill_worker_stop(w), 0);
    rill_stats_t st;
    ASSERT_EQ(rill_worker_stats(w, &st, sizeof st), 0);
    print_stats(threads == 1 ? "one loop" : "two loops", w, &a, &s);
    ASSERT_U64_EQ(asrc_acked(&a), NSRC * PER_SRC);
    ASSERT_U64_EQ(a.early_acks, 0);
    ASSERT_U64_EQ(a.protocol, 0);
    ASSERT_U64_EQ(asink_missing(&s), 0);
    ASSERT_U64_EQ(s.dups, 0);
    ASSERT_U64_EQ(s.gaps, 0);
    ASSERT_U64_EQ(s.bad, 0);
    ASSERT_U64_EQ(st.acked_in, NSRC * PER_SRC);
    ASSERT_U64_EQ(st.msgs_in, NSRC * PER_SRC);
    ASSERT_U64_EQ(st.dup_skipped, 0);
    ASSERT_U64_EQ(st.err_control, 0);
    ASSERT_U64_EQ(st.acked_conns, 0);
    ASSERT_GE(st.ack_barriers, 1);
    /* Cumulative and batched: far fewer ACKs than frames. */
    ASSERT_GE(st.acks_sent, NSRC);
    ASSERT_U64_LE(st.acks_sent, st.acked_in / 16);
    if (threads > 1)
        ASSERT_GE(st.handoff_msgs, 1); /* some keys belong to the other loop */
    rill_worker_destroy(w);
    asink_stop(&s);
    return 0;
}

static int test_delivery_one_loop(void)
{
    return delivery(1);
}

static int test_delivery_two_loops(void)
{
    return delivery(2);
}

static int test_no_sink(void)
{
    rill_worker_t *w;
    ASSERT_EQ(worker_up(&w, NULL, 2, 0), 0);
    uint16_t port = port_of(w);
    asrc_t a;
    ASSERT_EQ(asrc_start(&a, &port, 1, NSRC, PER_SRC, COMP, NULL), 0);
    ASSERT_EQ(asrc_join(&a, WAIT_MS), 0);
    ASSERT_EQ(rill_worker_stop(w), 0);
    print_stats("no sink", w, &a, NULL);
    ASSERT_U64_EQ(asrc_acked(&a), NSRC * PER_SRC);
    ASSERT_U64_EQ(tu_stat(w, offsetof(rill_stats_t, acked_in)), NSRC * PER_SRC);
    rill_worker_destroy(w);
    return 0;
}

static int test_sink_killed(void)
{
    asink_t s;
    ASSERT_EQ(asink_start(&s, 256u << 10, NSRC, PER_SRC), 0);
    rill_worker_t *w;
    ASSERT_EQ(worker_up(&w, s.addr, 1, 256u << 10), 0);
    uint16_t port = port_of(w);
    asrc_t a;
    ASSERT_EQ(asrc_start(&a, &port, 1, NSRC, PER_SRC, COMP, &s), 0);
    for (unsigned k = 1; k <= 3; k++) {
        int64_t end = tu_now_ms() + WAIT_MS;
        while (asink_frames(&s) < k * NSRC * PER_SRC / 4 && tu_now_ms() < end)
            tu_sleep_ms(2);
        atomic_store(&s.kill, 1);
        while (atomic_load(&s.kills) < k)
            tu_sleep_ms(2);
    }
    ASSERT_EQ(asrc_join(&a, WAIT_MS), 0);
    ASSERT_EQ(rill_worker_stop(w), 0);
    print_stats("sink killed 3 times", w, &a, &s);
    ASSERT_EQ(atomic_load(&s.kills), 3);
    ASSERT_U64_EQ(a.early_acks, 0);
    ASSERT_U64_EQ(asrc_acked(&a), NSRC * PER_SRC);
    ASSERT_U64_EQ(asink_missing(&s), 0);
    ASSERT_U64_EQ(s.dups, 0);
    ASSERT_U64_EQ(s.bad, 0);
    rill_worker_destroy(w);
    asink_stop(&s);
    return 0;
}

#define SMALL_CREDIT (64u << 10)   /* the sink's */
#define SOURCE_CREDIT (128u << 10) /* each source's: together more than the sink's */

static int test_stalled_sink(void)
{
    asink_t s;
    ASSERT_EQ(asink_start(&s, SMALL_CREDIT, NSRC, PER_SRC), 0);
    rill_worker_t *w;
    ASSERT_EQ(worker_up(&w, s.addr, 1, SOURCE_CREDIT), 0);
    int64_t end = tu_now_ms() + WAIT_MS;
    while (atomic_load(&s.hellos) < 1 && tu_now_ms() < end)
        tu_sleep_ms(5);
    ASSERT_EQ(atomic_load(&s.hellos), 1);
    atomic_store(&s.stall, 1);
    uint16_t port = port_of(w);
    asrc_t a;
    ASSERT_EQ(asrc_start(&a, &port, 1, NSRC, PER_SRC, COMP, &s), 0);
    /* The worker's sink link runs out of credit; from then on nothing is acknowledged. */
    ASSERT_EQ(tu_wait_stat_ge(w, offsetof(rill_stats_t, credit_waits), 1, WAIT_MS, NULL), 0);
    tu_sleep_ms(100);
    uint64_t acked = asrc_acked(&a), in = tu_stat(w, offsetof(rill_stats_t, acked_in));
    tu_sleep_ms(500);
    uint64_t acked_later = asrc_acked(&a), in_later = tu_stat(w, offsetof(rill_stats_t, acked_in));
    fprintf(stderr,
            "  stalled: acked %llu -> %llu over 500 ms, ran %llu -> %llu, sink counted %llu\n",
            (unsigned long long)acked, (unsigned long long)acked_later, (unsigned long long)in,
            (unsigned long long)in_later, (unsigned long long)asink_frames(&s));
    ASSERT_U64_EQ(acked_later, acked);
    ASSERT_U64_LE(acked, asink_frames(&s));
    /* Each source waits on credit: at most what it was granted (its share of the credit
     * pool, 4 x SOURCE_CREDIT by default, when it opened before the others; never less
     * than SOURCE_CREDIT) of frames (32 B each) beyond what was acknowledged ran. */
    uint64_t granted = 0;
    for (unsigned i = 0; i < NSRC; i++) {
        ASSERT_GE(asrc_granted_max(&a, i), SOURCE_CREDIT);
        ASSERT_U64_LE(asrc_granted_max(&a, i), 4 * SOURCE_CREDIT);
        granted += asrc_granted_max(&a, i);
    }
    ASSERT_U64_LE(in_later, acked + granted / 32);
    atomic_store(&s.stall, 0);
    ASSERT_EQ(asrc_join(&a, WAIT_MS), 0);
    ASSERT_EQ(rill_worker_stop(w), 0);
    print_stats("resumed", w, &a, &s);
    ASSERT_U64_EQ(a.early_acks, 0);
    ASSERT_U64_EQ(asink_missing(&s), 0);
    ASSERT_U64_EQ(s.dups, 0);
    ASSERT_U64_EQ(tu_stat(w, offsetof(rill_stats_t, sink_dropped)), 0);
    rill_worker_destroy(w);
    asink_stop(&s);
    return 0;
}

/* With two loops the reconnects land on either loop; each connection goes to the loop
 * that holds its stream, so the skip works there too. */
static int source_cuts(unsigned threads)
{
    asink_t s;
    ASSERT_EQ(asink_start(&s, 1u << 20, NSRC, PER_SRC), 0);
    rill_worker_t *w;
    ASSERT_EQ(worker_up(&w, s.addr, threads, 256u << 10), 0);
    fp_t *fp;
    ASSERT_EQ(fp_new(&fp, port_of(w)), 0);
    uint16_t port = fp_port(fp);
    asrc_t a;
    ASSERT_EQ(asrc_start(&a, &port, 1, NSRC, PER_SRC, COMP, &s), 0);
    for (uint64_t k = 1; k <= 5; k++) {
        int64_t end = tu_now_ms() + WAIT_MS;
        while (asink_frames(&s) < k * NSRC * PER_SRC / 6 && tu_now_ms() < end)
            tu_sleep_ms(2);
        ASSERT_EQ(fp_cut(fp), 0);
    }
    int joined = asrc_join(&a, WAIT_MS);
    ASSERT_EQ(rill_worker_stop(w), 0);
    print_stats(threads == 1 ? "source connections cut 5 times, one loop"
                             : "source connections cut 5 times, two loops",
                w, &a, &s);
    ASSERT_EQ(joined, 0);
    fp_stats_t ps;
    ASSERT_EQ(fp_stats(fp, &ps), 0);
    ASSERT_GE(ps.conns_cut, 5);
    ASSERT_U64_EQ(a.early_acks, 0);
    ASSERT_U64_EQ(asrc_acked(&a), NSRC * PER_SRC);
    ASSERT_U64_EQ(asink_missing(&s), 0);
    ASSERT_U64_EQ(s.dups, 0); /* what ran before a cut was skipped when it came again */
    ASSERT_U64_EQ(s.gaps, 0);
    ASSERT_U64_EQ(tu_stat(w, offsetof(rill_stats_t, acked_in)), NSRC * PER_SRC);
    rill_worker_destroy(w);
    fp_destroy(fp);
    asink_stop(&s);
    return 0;
}

static int test_source_cuts(void)
{
    return source_cuts(1);
}

static int test_source_cuts_two_loops(void)
{
    return source_cuts(2);
}

#define LONG_PER_SRC 4000000u /* longer than the test: the sources are still sending */

static int test_shutdown_goaway(void)
{
    asink_t s;
    ASSERT_EQ(asink_start(&s, 1u << 20, NSRC, LONG_PER_SRC), 0);
    rill_worker_t *w;
    ASSERT_EQ(worker_up(&w, s.addr, 2, 256u << 10), 0);
    uint16_t port = port_of(w);
    asrc_t a;
    ASSERT_EQ(asrc_start(&a, &port, 1, NSRC, LONG_PER_SRC, COMP, &s), 0);
    int64_t end = tu_now_ms() + WAIT_MS;
    while (asrc_acked(&a) < NSRC * 20000u && tu_now_ms() < end)
        tu_sleep_ms(5);
    ASSERT_EQ(rill_worker_stop(w), 0);
    while (atomic_load(&a.goaways) < NSRC && tu_now_ms() < end)
        tu_sleep_ms(5);
    tu_sleep_ms(100); /* the last ACKs came before the close; let the source read them */
    rill_stats_t st;
    ASSERT_EQ(rill_worker_stats(w, &st, sizeof st), 0);
    uint64_t acked = asrc_acked(&a);
    ASSERT_EQ(asrc_join(&a, 0), -1); /* not finished: the worker went away */
    print_stats("shutdown", w, &a, &s);
    ASSERT_U64_EQ(a.goaways, NSRC);
    ASSERT_U64_EQ(a.early_acks, 0);
    /* Everything that ran was acknowledged before the connections closed. */
    ASSERT_U64_EQ(acked, st.acked_in);
    ASSERT_U64_EQ(st.sink_dropped, 0);
    rill_worker_destroy(w);
    asink_stop(&s);
    return 0;
}

static int test_failover(void)
{
    asink_t s;
    ASSERT_EQ(asink_start(&s, 1u << 20, NSRC, PER_SRC), 0);
    rill_worker_t *w1, *w2;
    ASSERT_EQ(worker_up(&w1, s.addr, 1, 256u << 10), 0);
    ASSERT_EQ(worker_up(&w2, s.addr, 1, 256u << 10), 0);
    uint16_t ports[2] = {port_of(w1), port_of(w2)};
    asrc_t a;
    ASSERT_EQ(asrc_start(&a, ports, 2, NSRC, PER_SRC, COMP, &s), 0);
    int64_t end = tu_now_ms() + WAIT_MS;
    while (asrc_acked(&a) < NSRC * PER_SRC / 3 && tu_now_ms() < end)
        tu_sleep_ms(2);
    ASSERT_EQ(rill_worker_stop(w1), 0);
    ASSERT_EQ(asrc_join(&a, WAIT_MS), 0);
    ASSERT_EQ(rill_worker_stop(w2), 0);
    print_stats("first worker", w1, &a, &s);
    print_stats("second worker", w2, &a, &s);
    rill_stats_t st1, st2;
    ASSERT_EQ(rill_worker_stats(w1, &st1, sizeof st1), 0);
    ASSERT_EQ(rill_worker_stats(w2, &st2, sizeof st2), 0);
    ASSERT_U64_EQ(a.goaways, NSRC);
    ASSERT_U64_EQ(a.early_acks, 0);
    ASSERT_U64_EQ(asrc_acked(&a), NSRC * PER_SRC);
    ASSERT_U64_EQ(asink_missing(&s), 0);
    /* The first worker acknowledged all that ran there; the rest ran on the second. */
    ASSERT_U64_EQ(s.dups, 0);
    ASSERT_U64_EQ(st1.acked_in + st2.acked_in, NSRC * PER_SRC);
    ASSERT_GE(st2.acked_in, 1);
    rill_worker_destroy(w1);
    rill_worker_destroy(w2);
    asink_stop(&s);
    return 0;
}

/* Worker to worker: A's acked sink is B's source listener, B's is the sink. A
 * acknowledges its sources only once B acknowledged A, which B does only once the sink
 * acknowledged B: the guarantee holds through both, also while the sink is killed. */
static int test_chain(void)
{
    asink_t s;
    ASSERT_EQ(asink_start(&s, 256u << 10, NSRC, PER_SRC), 0);
    rill_worker_t *b, *a;
    ASSERT_EQ(worker_up(&b, s.addr, 1, 256u << 10), 0);
    char baddr[32];
    snprintf(baddr, sizeof baddr, "127.0.0.1:%u", (unsigned)port_of(b));
    ASSERT_EQ(worker_up(&a, baddr, 2, 256u << 10), 0);
    uint16_t port = port_of(a);
    asrc_t src;
    ASSERT_EQ(asrc_start(&src, &port, 1, NSRC, PER_SRC, COMP, &s), 0);
    for (unsigned k = 1; k <= 2; k++) {
        int64_t end = tu_now_ms() + WAIT_MS;
        while (asink_frames(&s) < k * NSRC * PER_SRC / 3 && tu_now_ms() < end)
            tu_sleep_ms(2);
        atomic_store(&s.kill, 1);
        while (atomic_load(&s.kills) < k)
            tu_sleep_ms(2);
    }
    ASSERT_EQ(asrc_join(&src, WAIT_MS), 0);
    ASSERT_EQ(rill_worker_stop(a), 0);
    ASSERT_EQ(rill_worker_stop(b), 0);
    print_stats("chain: first worker", a, &src, &s);
    print_stats("chain: second worker", b, &src, &s);
    ASSERT_U64_EQ(src.early_acks, 0);
    ASSERT_U64_EQ(asrc_acked(&src), NSRC * PER_SRC);
    ASSERT_U64_EQ(asink_missing(&s), 0);
    ASSERT_U64_EQ(s.bad, 0);
    ASSERT_U64_EQ(tu_stat(b, offsetof(rill_stats_t, acked_in)), NSRC * PER_SRC);
    rill_worker_destroy(a);
    rill_worker_destroy(b);
    asink_stop(&s);
    return 0;
}

/* ------------------------------------------------------------ bad control frames */

static size_t put_hello(uint8_t *f, uint16_t version, uint64_t stream, uint64_t first)
{
    tu_put_be32(f, 12 + 20);
    tu_put_be32(f + 4, CTL);
    tu_put_be64(f + 8, 1);
    tu_put_be32(f + 16, (uint32_t)version << 16);
    tu_put_be64(f + 20, stream);
    tu_put_be64(f + 28, first);
    return 36;
}

/* Sends bytes on a fresh connection; returns 1 when the worker then closes it. */
static int closed_after(uint16_t port, const uint8_t *b, size_t n, int read_welcome)
{
    int fd = tu_connect(port, 5000);
    if (fd < 0)
        return -1;
    uint8_t hello[36];
    if (read_welcome) { /* a good HELLO first: the WELCOME must come */
        put_hello(hello, 2, 77, 1);
        uint8_t wl[28];
        if (tu_write_all(fd, hello, sizeof hello) < 0 ||
            tu_read_exact(fd, wl, sizeof wl, 5000) < 0 || tu_get_be32(wl + 4) != CTL ||
            tu_get_be64(wl + 8) != 2) {
            close(fd);
            return -1;
        }
    }
    tu_write_all(fd, b, n);
    int rc = tu_wait_peer_closed(fd, 5000);
    close(fd);
    return tu_closed_rc(rc);
}

/* ------------------------------------------------------------ the credit pool */

#define POOL_CREDIT (64u << 10)

/* Opens an acked connection for stream `stream`; returns its fd and the WELCOME's credit. */
static int open_acked(uint16_t port, uint64_t stream, uint32_t *credit)
{
    int fd = tu_connect(port, 5000);
    if (fd < 0)
        return -1;
    uint8_t hello[36], wl[28];
    put_hello(hello, 2, stream, 1);
    if (tu_write_all(fd, hello, sizeof hello) < 0 || tu_read_exact(fd, wl, sizeof wl, 5000) < 0 ||
        tu_get_be32(wl + 4) != CTL || tu_get_be64(wl + 8) != 2) {
        close(fd);
        return -1;
    }
    *credit = tu_get_be32(wl + 16);
    return fd;
}

/* Sends data frame seq on fd; returns the credit of the ACK that covers it (0: none). */
static uint32_t ack_credit(int fd, uint64_t seq)
{
    uint8_t f[20], ack[28];
    tu_put_be32(f, 16);
    tu_put_be32(f + 4, COMP);
    tu_put_be64(f + 8, 0);
    tu_put_be32(f + 16, (uint32_t)seq);
    if (tu_write_all(fd, f, sizeof f) < 0 || tu_read_exact(fd, ack, sizeof ack, 5000) < 0 ||
        tu_get_be32(ack + 4) != CTL || tu_get_be64(ack + 8) != 3 || tu_get_be64(ack + 16) != seq)
        return 0;
    return tu_get_be32(ack + 24);
}

static int pool_worker(rill_worker_t **w, int64_t pool)
{
    rill_config_t *cfg = ap_worker_config(NULL, 1);
    if (!cfg)
        return -1;
    if (rill_config_set_source_credit(cfg, POOL_CREDIT) < 0 ||
        (pool >= 0 && rill_config_set_source_credit_pool(cfg, (uint64_t)pool) < 0) ||
        rill_config_set_source_credit_pool(cfg, 100) != RILL_ERANGE ||
        rill_config_set_source_credit_pool(cfg, 1ull << 40) != RILL_ERANGE) {
        rill_config_destroy(cfg);
        return -1;
    }
    return ap_worker_start(w, cfg, COMP, nothing_batch);
}

/* Few acked connections share the credit pool: each WELCOME and ACK grants max(source
 * credit, pool / open acked connections), shrinking as connections open and growing
 * back as they close; the default pool is 4 source credits; 0 turns sharing off. */
static int test_credit_pool(void)
{
    rill_worker_t *w;
    ASSERT_EQ(pool_worker(&w, 4 * POOL_CREDIT), 0);
    uint16_t port = port_of(w);
    int fd[5];
    uint32_t credit[5];
    for (unsigned i = 0; i < 5; i++) {
        fd[i] = open_acked(port, 100 + i, &credit[i]);
        ASSERT_GE(fd[i], 0);
    }
    fprintf(stderr, "  WELCOME credits: %u %u %u %u %u\n", credit[0], credit[1], credit[2],
            credit[3], credit[4]);
    ASSERT_EQ(credit[0], 4 * POOL_CREDIT);
    ASSERT_EQ(credit[1], 2 * POOL_CREDIT);
    ASSERT_EQ(credit[2], 4 * POOL_CREDIT / 3);
    ASSERT_EQ(credit[3], POOL_CREDIT);
    ASSERT_EQ(credit[4], POOL_CREDIT); /* never below the source credit */
    /* With five open, the first connection's next ACK shrinks its grant. */
    ASSERT_EQ(ack_credit(fd[0], 1), POOL_CREDIT);
    for (unsigned i = 1; i < 5; i++)
        close(fd[i]);
    ASSERT_EQ(tu_wait_stat_eq(w, offsetof(rill_stats_t, acked_conns), 1, WAIT_MS, NULL), 0);
    ASSERT_EQ(ack_credit(fd[0], 2), 4 * POOL_CREDIT); /* alone again: the whole pool */
    close(fd[0]);
    ASSERT_EQ(rill_worker_stop(w), 0);
    rill_worker_destroy(w);

    /* Default: 4 source credits. Off: the source credit alone. */
    for (int off = 0; off < 2; off++) {
        ASSERT_EQ(pool_worker(&w, off ? 0 : -1), 0);
        uint32_t c;
        int f = open_acked(port_of(w), 7, &c);
        ASSERT_GE(f, 0);
        ASSERT_EQ(c, off ? POOL_CREDIT : 4 * POOL_CREDIT);
        close(f);
        ASSERT_EQ(rill_worker_stop(w), 0);
        rill_worker_destroy(w);
    }
    return 0;
}

static int test_bad_control(void)
{
    asink_t s;
    ASSERT_EQ(asink_start(&s, 1u << 20, NSRC, 1000), 0);
    rill_worker_t *w;
    ASSERT_EQ(worker_up(&w, s.addr, 1, 0), 0);
    uint16_t port = port_of(w);
    /* Good acked sources for keys 0..2 run alongside. */
    asrc_t a;
    ASSERT_EQ(asrc_start(&a, &port, 1, NSRC - 1, 1000, COMP, &s), 0);

    uint8_t f[64];
    put_hello(f, 3, 5, 1); /* version 3 */
    ASSERT_EQ(closed_after(port, f, 36, 0), 1);
    put_hello(f, 2, 0, 1); /* stream id 0 */
    ASSERT_EQ(closed_after(port, f, 36, 0), 1);
    put_hello(f, 2, 6, 1); /* a second HELLO on an acked connection */
    ASSERT_EQ(closed_after(port, f, 36, 1), 1);
    tu_put_be32(f, 12 + 12); /* an ACK from the sender */
    tu_put_be32(f + 4, CTL);
    tu_put_be64(f + 8, 3);
    memset(f + 16, 0, 12);
    ASSERT_EQ(closed_after(port, f, 28, 1), 1);
    ASSERT_EQ(tu_wait_stat_ge(w, offsetof(rill_stats_t, err_control), 4, WAIT_MS, NULL), 0);

    /* Best-effort as before: data first, then a control frame, then data again. */
    int fd = tu_connect(port, 5000);
    ASSERT_GE(fd, 0);
    tu_buf_t b = {0};
    for (uint64_t q = 0; q < 1000; q++) {
        ap_pay_t y = {AP_MAGIC, NSRC - 1, q};
        tu_buf_frame(&b, COMP, NSRC - 1, &y, sizeof y);
        if (q == 500)
            tu_buf_append(&b, f, 28); /* the ACK-shaped frame: an unknown computation here */
    }
    ASSERT_EQ(tu_write_all(fd, b.data, b.len), 0);
    tu_buf_free(&b);
    ASSERT_EQ(asrc_join(&a, WAIT_MS), 0);
    int64_t end = tu_now_ms() + WAIT_MS;
    while (asink_missing(&s) && tu_now_ms() < end)
        tu_sleep_ms(10);
    close(fd);
    ASSERT_EQ(rill_worker_stop(w), 0);
    print_stats("bad control frames", w, &a, &s);
    ASSERT_U64_EQ(asink_missing(&s), 0);
    ASSERT_U64_EQ(a.early_acks, 0);
    ASSERT_U64_EQ(tu_stat(w, offsetof(rill_stats_t, err_control)), 4);
    ASSERT_U64_EQ(tu_stat(w, offsetof(rill_stats_t, unknown_comp)), 1);
    rill_worker_destroy(w);
    asink_stop(&s);
    return 0;
}

int main(int argc, char **argv)
{
    t_require_io_uring("acked_source");
    tu_ignore_sigpipe();
    static const t_case_t cases[] = {
        {"delivery_one_loop", test_delivery_one_loop},
        {"delivery_two_loops", test_delivery_two_loops},
        {"no_sink", test_no_sink},
        {"sink_killed", test_sink_killed},
        {"stalled_sink", test_stalled_sink},
        {"source_cuts", test_source_cuts},
        {"source_cuts_two_loops", test_source_cuts_two_loops},
        {"shutdown_goaway", test_shutdown_goaway},
        {"failover", test_failover},
        {"chain", test_chain},
        {"bad_control", test_bad_control},
        {"credit_pool", test_credit_pool},
        {NULL, NULL},
    };
    return t_run("acked_source", cases, argc, argv);
}
