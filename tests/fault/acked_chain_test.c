/* Acked sources through a chain of computations that crosses loops and members, with a
 * real ZooKeeper server and two in-process workers (two loops each), the acked source
 * and sink of acked_peers.c. The chain, for a frame of source key k:
 *   comp 1 (on k's owner)          emit_comp -> comp 3, a key of the same member's other
 *                                  loop (a handoff between loops)
 *   comp 3 (that other loop)       emit_comp -> comp 2, a key member b owns (a peer link,
 *                                  unless this already is b)
 *   comp 2 (on b)                  the frame to the acked sink, keyed by its source again
 * Every frame of member a thus reaches the sink through a loop handoff and then a peer
 * link, emitted by frames that another loop handed over. The source checks on every ACK
 * that the sink had already counted every frame it covers: the sink is stalled and then
 * reset under load, three times, and an acknowledgement that came before the sink had the
 * frame is a failure. Then a best-effort frame with the control comp id, for a key b
 * owns, stays an unknown computation on a (forwarded, it would break the peer link).
 *
 * The members_thrice case runs a chain that crosses members three times (the hop depths
 * rill waits for, util/limits.h RILL_PEER_DEPTHS), under the same stalls:
 *   comp 4 (on k's owner)          emit_comp -> comp 5, a key b owns
 *   comp 5 (on b)                  emit_comp -> comp 6, a key a owns
 *   comp 6 (on a)                  emit_comp -> comp 2, a key b owns
 *   comp 2 (on b)                  the frame to the acked sink
 * A frame of a key a owns goes a -> b -> a -> b; one of a key b owns is forwarded to b
 * first, then b -> a -> b. Waits are failure bounds only. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch/dispatch.h" /* rill__group_loop: which loop of a worker runs a key group */
#include "fault/acked_peers.h"
#include "harness.h"
#include "integration/tcp_util.h"
#include "integration/zk_util.h"
#include "rill/rill.h"

#define COMP_FIRST 1
#define COMP_LAST 2
#define COMP_MIDDLE 3
#define COMP_THRICE_FIRST 4
#define COMP_THRICE_B 5
#define COMP_THRICE_A 6
#define COMP_NONE 9 /* registered nowhere */
#define NSRC 8
#define PER_SRC 100000u
#define LOOPS 2
#define WAIT_MS 60000
#define KEY_BASE 0x636861696e000000ull
#define SOURCE_CREDIT (64u << 10)
#define SINK_CREDIT (16u << 10) /* small: a stall holds few frames in b's links */

static zk_server_t g_zk;

/* key_on[m][l]: a key that member m (view index) owns on its loop l. Written before the
 * sources start, read by the loops. */
static _Atomic uint64_t key_on[2][LOOPS];
static atomic_int member_b = -1; /* view index of member "b" */

typedef struct member {
    rill_worker_t *w;
    atomic_int self; /* view index */
    uint16_t port;
} member_t;

/* Every message to computation comp under key. */
static int emit_all(rill_emitter_t *em, uint32_t comp, uint64_t key, const rill_msg_t *m, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (rill_emit_comp(em, comp, key, m[i].data, m[i].len) < 0)
            return -1;
    return 0;
}

static int first_batch(uintptr_t ctx, unsigned loop, const rill_msg_t *m, size_t n,
                       rill_emitter_t *em)
{
    member_t *me = (member_t *)ctx;
    int self = atomic_load(&me->self);
    return emit_all(em, COMP_MIDDLE, atomic_load(&key_on[self][(loop + 1) % LOOPS]), m, n);
}

static int middle_batch(uintptr_t ctx, unsigned loop, const rill_msg_t *m, size_t n,
                        rill_emitter_t *em)
{
    (void)ctx, (void)loop;
    return emit_all(em, COMP_LAST, atomic_load(&key_on[atomic_load(&member_b)][0]), m, n);
}

/* The members_thrice chain: to b, to a, to b (then comp 2 sends to the sink). */
static int member_a(void)
{
    return 1 - atomic_load(&member_b);
}

static int thrice_first(uintptr_t ctx, unsigned loop, const rill_msg_t *m, size_t n,
                        rill_emitter_t *em)
{
    (void)ctx, (void)loop;
    return emit_all(em, COMP_THRICE_B, atomic_load(&key_on[atomic_load(&member_b)][0]), m, n);
}

static int thrice_b(uintptr_t ctx, unsigned loop, const rill_msg_t *m, size_t n, rill_emitter_t *em)
{
    (void)ctx, (void)loop;
    return emit_all(em, COMP_THRICE_A, atomic_load(&key_on[member_a()][0]), m, n);
}

static int thrice_a(uintptr_t ctx, unsigned loop, const rill_msg_t *m, size_t n, rill_emitter_t *em)
{
    (void)ctx, (void)loop;
    return emit_all(em, COMP_LAST, atomic_load(&key_on[atomic_load(&member_b)][1]), m, n);
}

static int last_batch(uintptr_t ctx, unsigned loop, const rill_msg_t *m, size_t n,
                      rill_emitter_t *em)
{
    (void)ctx, (void)loop;
    for (size_t i = 0; i < n; i++) {
        ap_pay_t y;
        if (m[i].len < sizeof y)
            return -1;
        memcpy(&y, m[i].data, sizeof y);
        if (rill_emit_sink(em, 0, COMP_LAST, y.src, m[i].data, m[i].len) < 0)
            return -1;
    }
    return 0;
}

static int member_start(member_t *mb, const char *id, const char *root, const char *sink)
{
    rill_config_t *cfg = ap_worker_config(sink, LOOPS);
    if (!cfg)
        return -1;
    /* A small credit, so that the sources depend on the ACKs while the sink stalls. */
    int rc = rill_config_set_cluster(cfg, zk_server_connect_string(&g_zk), root, id, "127.0.0.1:0");
    if (rc == 0)
        rc = rill_config_set_source_credit(cfg, SOURCE_CREDIT);
    if (rc == 0)
        rc = rill_config_set_source_credit_pool(cfg, 0);
    if (rc < 0 || (rc = rill_worker_new(&mb->w, cfg)) < 0) {
        rill_config_destroy(cfg);
        return rc;
    }
    rill_config_destroy(cfg);
    mb->port = (uint16_t)rill_worker_listener_port(mb->w, 0);
    const rill_comp_ops_t first = {first_batch, NULL, NULL}, middle = {middle_batch, NULL, NULL},
                          last = {last_batch, NULL, NULL}, t1 = {thrice_first, NULL, NULL},
                          t2 = {thrice_b, NULL, NULL}, t3 = {thrice_a, NULL, NULL};
    if ((rc = rill_comp_register(mb->w, COMP_FIRST, "first", &first, (uintptr_t)mb)) < 0 ||
        (rc = rill_comp_register(mb->w, COMP_MIDDLE, "middle", &middle, 0)) < 0 ||
        (rc = rill_comp_register(mb->w, COMP_LAST, "last", &last, 0)) < 0 ||
        (rc = rill_comp_register(mb->w, COMP_THRICE_FIRST, "thrice-first", &t1, 0)) < 0 ||
        (rc = rill_comp_register(mb->w, COMP_THRICE_B, "thrice-b", &t2, 0)) < 0 ||
        (rc = rill_comp_register(mb->w, COMP_THRICE_A, "thrice-a", &t3, 0)) < 0)
        return rc;
    return rill_worker_start(mb->w);
}

/* Waits until both members see a view of a and b; sets self, member_b and key_on. */
static int views_ready(member_t *mb)
{
    int64_t end = tu_now_ms() + WAIT_MS;
    for (;;) {
        int ok = 1;
        for (unsigned i = 0; i < 2 && ok; i++) {
            rill_view_t *v = rill_worker_view(mb[i].w);
            ok = v && rill_view_size(v) == 2 && rill_view_self(v) >= 0;
            if (ok) {
                mb[i].self = rill_view_self(v);
                member_b = strcmp(rill_view_member(v, 0), "b") == 0 ? 0 : 1;
                for (unsigned m = 0; m < 2; m++)
                    for (unsigned l = 0; l < LOOPS; l++)
                        for (uint64_t k = KEY_BASE;; k++)
                            if (rill_view_owner(v, k) == (int)m &&
                                rill__group_loop(rill_view_key_group(v, k), LOOPS) == l) {
                                atomic_store(&key_on[m][l], k);
                                break;
                            }
            }
            rill_view_destroy(v);
        }
        if (ok)
            return 0;
        if (tu_now_ms() > end)
            return -1;
        tu_sleep_ms(10);
    }
}

static uint64_t stat_of(rill_worker_t *w, size_t off)
{
    return tu_stat(w, off);
}

/* Two members a and b sharing the sink s, in their own cluster root; 0 once both are
 * ready, *a then names member a. */
static int members_start(member_t *mb, asink_t *s, const char *name, const member_t **a)
{
    static unsigned cluster_no;
    char root[64];
    snprintf(root, sizeof root, "/rill/chain-%d-%s-%u", (int)getpid(), name, ++cluster_no);
    ASSERT_EQ(member_start(&mb[0], "a", root, s->addr), 0);
    ASSERT_EQ(member_start(&mb[1], "b", root, s->addr), 0);
    ASSERT_EQ(views_ready(mb), 0);
    for (unsigned i = 0; i < 2; i++) { /* members of the view, loops running */
        char why[64];
        int64_t end = tu_now_ms() + WAIT_MS;
        while (rill_worker_ready(mb[i].w, why, sizeof why) != 1 && tu_now_ms() < end)
            tu_sleep_ms(5);
        ASSERT_EQ(rill_worker_ready(mb[i].w, why, sizeof why), 1);
    }
    *a = mb[0].self == member_b ? &mb[1] : &mb[0];
    return 0;
}

/* All sources connect to a and send to computation first. Three times under load the
 * sink stalls, then resets every connection; every ACK must come after the sink had the
 * frames it covers, and every frame must reach the sink. */
static int chain_under_stalls(member_t *mb, asink_t *s, const member_t *a, uint32_t first)
{
    asrc_t src;
    ASSERT_EQ(asrc_start(&src, &a->port, 1, NSRC, PER_SRC, first, s), 0);
    /* Three times under load, the sink stops reading: acknowledgements must stop with it,
     * wherever the frames wait (b's sink link, the peer link from a, a's loops); then it
     * reads again and resets every connection. */
    int64_t end;
    for (unsigned round = 0; round < 3; round++) {
        uint64_t at = (uint64_t)NSRC * PER_SRC * (1 + 6 * round) / 20;
        end = tu_now_ms() + WAIT_MS;
        while (asink_frames(s) < at && tu_now_ms() < end)
            tu_sleep_ms(5);
        ASSERT_GE(asink_frames(s), at);
        atomic_store(&s->stall, 1);
        /* Until the acknowledgements stand still (they may still cover what the sink
         * counted before it stalled). */
        int64_t t0 = tu_now_ms(), settled;
        uint64_t last = asrc_acked(&src);
        end = t0 + WAIT_MS;
        for (;;) {
            tu_sleep_ms(300);
            uint64_t now = asrc_acked(&src);
            if (now == last || tu_now_ms() > end)
                break;
            last = now;
        }
        settled = tu_now_ms() - t0;
        uint64_t acked = asrc_acked(&src);
        tu_sleep_ms(500);
        uint64_t acked_later = asrc_acked(&src), counted = asink_frames(s);
        fprintf(stderr,
                "  stall %u: ACKs stood still after %" PRId64 " ms; acked %" PRIu64 " -> %" PRIu64
                " over 500 ms more, sink counted %" PRIu64 "\n",
                round + 1, settled, acked, acked_later, counted);
        ASSERT_U64_EQ(acked_later, acked);
        ASSERT_U64_LE(acked, counted);
        atomic_store(&s->stall, 0);
        tu_sleep_ms(100);
        atomic_store(&s->kill, 1);
        end = tu_now_ms() + WAIT_MS;
        while (atomic_load(&s->kill) && tu_now_ms() < end)
            tu_sleep_ms(5);
    }

    ASSERT_EQ(asrc_join(&src, WAIT_MS), 0);
    end = tu_now_ms() + WAIT_MS;
    while (asink_missing(s) && tu_now_ms() < end)
        tu_sleep_ms(10);
    for (unsigned i = 0; i < 2; i++) {
        rill_stats_t st;
        rill_worker_stats(mb[i].w, &st, sizeof st);
        fprintf(stderr,
                "  %s: in %llu, acked_in %llu, handoffs %llu, forwarded %llu, peer_in %llu, "
                "acks_sent %llu, barriers %llu, credit_waits %llu\n",
                &mb[i] == a ? "a" : "b", (unsigned long long)st.msgs_in,
                (unsigned long long)st.acked_in, (unsigned long long)st.handoff_msgs,
                (unsigned long long)st.forwarded, (unsigned long long)st.peer_in,
                (unsigned long long)st.acks_sent, (unsigned long long)st.ack_barriers,
                (unsigned long long)st.credit_waits);
    }
    fprintf(stderr,
            "  source: acked %llu, early %llu, reconnects %llu; sink: counted %llu, missing "
            "%llu, dups %llu, bad %llu, kills %u\n",
            (unsigned long long)asrc_acked(&src), (unsigned long long)src.early_acks,
            (unsigned long long)src.reconnects, (unsigned long long)asink_frames(s),
            (unsigned long long)asink_missing(s), (unsigned long long)s->dups,
            (unsigned long long)s->bad, atomic_load(&s->kills));
    ASSERT_U64_EQ(src.early_acks, 0);
    ASSERT_U64_EQ(src.protocol, 0);
    ASSERT_U64_EQ(asrc_acked(&src), NSRC * PER_SRC);
    ASSERT_U64_EQ(asink_missing(s), 0);
    ASSERT_U64_EQ(s->bad, 0);
    return 0;
}

static int test_loop_then_member(void)
{
    asink_t s;
    ASSERT_EQ(asink_start(&s, SINK_CREDIT, NSRC, PER_SRC), 0);
    static member_t mb[2];
    const member_t *a = NULL;
    ASSERT_EQ(members_start(mb, &s, "loop", &a), 0);
    ASSERT_EQ(chain_under_stalls(mb, &s, a, COMP_FIRST), 0);
    /* The paths under test ran: a handed frames between its loops and forwarded what
     * those emitted to b. */
    ASSERT_GE(stat_of(a->w, offsetof(rill_stats_t, handoff_msgs)), NSRC);
    ASSERT_GE(stat_of(a->w, offsetof(rill_stats_t, forwarded)), NSRC);
    /* A best-effort frame with the control comp id, for a key b owns: an unknown
     * computation on a, never forwarded (on the peer link it would be a control frame
     * out of place, and on another loop an origin marker). */
    const member_t *b = &mb[0] == a ? &mb[1] : &mb[0];
    uint64_t unknown = stat_of(a->w, offsetof(rill_stats_t, unknown_comp));
    uint64_t peer_in = stat_of(b->w, offsetof(rill_stats_t, peer_in));
    int fd = tu_connect(a->port, 5000);
    ASSERT_GE(fd, 0);
    /* A data frame first: a first frame with the control comp id would be a bad HELLO. */
    uint8_t f[2 * (16 + 4)];
    uint64_t bkey = atomic_load(&key_on[atomic_load(&member_b)][1]);
    size_t n = tu_frame_encode(f, COMP_NONE, bkey, "data", 4);
    n += tu_frame_encode(f + n, RILL_CONTROL_COMP_ID, bkey, "ctl?", 4);
    ASSERT_EQ(tu_write_all(fd, f, sizeof f), 0);
    ASSERT_EQ(
        tu_wait_stat_ge(a->w, offsetof(rill_stats_t, unknown_comp), unknown + 1, WAIT_MS, NULL), 0);
    close(fd);
    /* b got the data frame (an unknown computation there), not the control one. */
    ASSERT_EQ(tu_wait_stat_ge(b->w, offsetof(rill_stats_t, unknown_comp), 1, WAIT_MS, NULL), 0);
    ASSERT_U64_EQ(stat_of(b->w, offsetof(rill_stats_t, peer_in)), peer_in + 1);
    ASSERT_U64_EQ(stat_of(a->w, offsetof(rill_stats_t, err_control)), 0);
    ASSERT_U64_EQ(stat_of(b->w, offsetof(rill_stats_t, err_control)), 0);
    for (unsigned i = 0; i < 2; i++) {
        ASSERT_EQ(rill_worker_stop(mb[i].w), 0);
        rill_worker_destroy(mb[i].w);
    }
    asink_stop(&s);
    return 0;
}

/* Each frame crosses members three times; a member's peer links of every depth carry
 * traffic, and ACKs wait for the sink through all of them. */
static int test_members_thrice(void)
{
    asink_t s;
    ASSERT_EQ(asink_start(&s, SINK_CREDIT, NSRC, PER_SRC), 0);
    static member_t mb[2];
    const member_t *a = NULL;
    ASSERT_EQ(members_start(mb, &s, "thrice", &a), 0);
    const member_t *b = &mb[0] == a ? &mb[1] : &mb[0];
    ASSERT_EQ(chain_under_stalls(mb, &s, a, COMP_THRICE_FIRST), 0);
    /* Every frame went a -> b -> a -> b (or was forwarded to b first): each member
     * forwarded at least one frame per frame sent, over links of every depth. */
    uint64_t total = (uint64_t)NSRC * PER_SRC;
    ASSERT_U64_GE(stat_of(a->w, offsetof(rill_stats_t, forwarded)), total);
    ASSERT_U64_GE(stat_of(b->w, offsetof(rill_stats_t, forwarded)), total);
    ASSERT_U64_GE(stat_of(b->w, offsetof(rill_stats_t, peer_in)), total * 2);
    ASSERT_U64_EQ(stat_of(a->w, offsetof(rill_stats_t, err_control)), 0);
    ASSERT_U64_EQ(stat_of(b->w, offsetof(rill_stats_t, err_control)), 0);
    for (unsigned i = 0; i < 2; i++) {
        ASSERT_EQ(rill_worker_stop(mb[i].w), 0);
        rill_worker_destroy(mb[i].w);
    }
    asink_stop(&s);
    return 0;
}

int main(int argc, char **argv)
{
    t_require_io_uring("acked_chain");
    char why[256];
    if (!zk_available(why, sizeof why)) {
        printf("acked_chain_test: SKIP: %s\n", why);
        return T_EXIT_SKIP;
    }
    tu_ignore_sigpipe();
    int rc = zk_server_start(&g_zk, NULL);
    if (rc < 0) {
        printf("acked_chain_test: cannot start a ZooKeeper server: %s\n", strerror(-rc));
        return 1;
    }
    static const t_case_t cases[] = {
        {"loop_then_member", test_loop_then_member},
        {"members_thrice", test_members_thrice},
        {NULL, NULL},
    };
    rc = t_run("acked_chain", cases, argc, argv);
    zk_server_destroy(&g_zk);
    return rc;
}
