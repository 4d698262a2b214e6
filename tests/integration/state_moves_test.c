/* state_moves_test: managed state follows its key groups across joins and leaves, live,
 * with a real ZooKeeper server, real peer links and io_uring (docs/state.md#handoff).
 *
 * scale_2_3_2: workers a and b (two loops each) count 10 000 keys in managed state while a
 * source streams frames into a; c joins, then leaves again, under that load. At the end
 * each key's count, asked of whichever member owns it now, equals the frames sent for
 * it: nothing was counted twice or left behind, and no group ran without its state. The
 * values also count frames that arrived out of their key's order; the case prints them
 * per kind of move (it asserts only that keys which never moved kept their order). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "integration/tcp_util.h"
#include "integration/zk_util.h"
#include "rill/rill.h"

#define COMP 2
#define NKEYS 10000u
#define KEY_BASE 0x5eed0000000000ull
#define WAIT_MS 60000
#define LOOPS 2

static zk_server_t g_zk;
static char g_root[96];
static tu_sink_t *g_sink;

/* ------------------------------------------------------------ the computation */

/* A key's value: its count, the sequence number its next frame should carry, and how many
 * frames came out of that order. */
typedef struct tally {
    uint64_t count;
    uint32_t next_seq;
    uint32_t out_of_order;
} tally_t;

/* A frame with a 4-byte payload (the key's sequence number) counts; one with "?" asks for
 * the key's value, which goes to the sink as 12 bytes (count, out of order). */
static int count_batch(uintptr_t ctx, unsigned loop, const rill_msg_t *m, void *const *values,
                       size_t n, rill_emitter_t *em)
{
    (void)ctx, (void)loop;
    for (size_t i = 0; i < n; i++) {
        tally_t *t = values[i];
        if (m[i].len == 1 && m[i].data[0] == '?') {
            uint8_t p[12];
            tu_put_be64(p, t->count);
            tu_put_be32(p + 8, t->out_of_order);
            rill_emit_sink(em, 0, COMP, m[i].key, p, sizeof p);
        } else if (m[i].len == 4) {
            uint32_t seq = tu_get_be32(m[i].data);
            t->out_of_order += seq != t->next_seq;
            t->next_seq = seq + 1;
            t->count++;
        }
    }
    return 0;
}

static const rill_state_ops_t count_ops = {count_batch, NULL, NULL};

/* ------------------------------------------------------------ workers */

typedef struct member {
    rill_worker_t *w;
    const char *id;
    uint16_t port;
} member_t;

static int member_start(member_t *m, const char *id)
{
    m->id = id;
    rill_config_t *cfg = rill_config_new();
    int rc = cfg ? 0 : RILL_ENOMEM;
    if (rc == 0)
        rc = rill_config_set_threads(cfg, LOOPS);
    if (rc == 0)
        rc = rill_config_add_listener(cfg, "127.0.0.1:0", RILL_FRAMING_RILL, 0, 0, 0);
    if (rc == 0)
        rc = rill_config_add_sink(cfg, tu_sink_addr(g_sink));
    if (rc == 0)
        rc = rill_config_set_cluster(cfg, zk_server_connect_string(&g_zk), g_root, id,
                                     "127.0.0.1:0");
    if (rc == 0)
        rc = rill_worker_new(&m->w, cfg);
    rill_config_destroy(cfg);
    if (rc == 0)
        rc = rill_comp_register_state(m->w, COMP, "count", &count_ops, 0, sizeof(tally_t));
    if (rc == 0)
        rc = rill_worker_start(m->w);
    if (rc < 0) {
        fprintf(stderr, "  starting %s: %s\n", id, rill_strerror(rc));
        return rc;
    }
    m->port = (uint16_t)rill_worker_listener_port(m->w, 0);
    return 0;
}

static rill_stats_t stats_of(const member_t *m)
{
    rill_stats_t s;
    memset(&s, 0, sizeof s);
    rill_worker_stats(m->w, &s, sizeof s);
    return s;
}

static void print_stats(const member_t *m)
{
    rill_stats_t s = stats_of(m);
    fprintf(stderr,
            "    %s: in=%" PRIu64 " forwarded=%" PRIu64 " peer_in=%" PRIu64 " misrouted=%" PRIu64
            " rerouted=%" PRIu64 " groups_owned=%" PRIu64 " groups_moved=%" PRIu64
            " state_lost_groups=%" PRIu64 " state_rejected=%" PRIu64 " handoff_wait_ms=%" PRIu64
            " state_bytes=%" PRIu64 " peer_dropped=%" PRIu64 " handoff_dropped=%" PRIu64 "\n",
            m->id, s.msgs_in, s.forwarded, s.peer_in, s.misrouted, s.rerouted, s.groups_owned,
            s.groups_moved, s.state_lost_groups, s.state_rejected, s.handoff_wait_ns / 1000000,
            s.state_bytes, s.peer_dropped, s.handoff_dropped);
}

/* Waits until every member in ms[0..n) sees a view of exactly those n members. */
static int views_agree(member_t *const *ms, unsigned n)
{
    int64_t t0 = tu_now_ms(), end = t0 + WAIT_MS;
    for (;;) {
        unsigned ok = 0;
        for (unsigned i = 0; i < n; i++) {
            rill_view_t *v = rill_worker_view(ms[i]->w);
            ok += v && rill_view_size(v) == n && rill_view_self(v) >= 0;
            rill_view_destroy(v);
        }
        if (ok == n) {
            fprintf(stderr, "  %u members agree after %lld ms\n", n, (long long)(tu_now_ms() - t0));
            return 0;
        }
        if (tu_now_ms() > end)
            return -1;
        tu_sleep_ms(20);
    }
}

/* ------------------------------------------------------------ the source */

static struct {
    pthread_t thread;
    uint16_t port;
    atomic_int stop;
    atomic_ullong sent;
    uint32_t per_key[NKEYS];
    int failed;
} g_src;

/* Streams frames into a in writes of 500, at most ~100 000 frames a second (a pace the
 * two-core test machine keeps up with while members join and leave). */
static void *source_main(void *arg)
{
    (void)arg;
    int fd = tu_connect(g_src.port, WAIT_MS);
    if (fd < 0) {
        g_src.failed = 1;
        return NULL;
    }
    uint64_t rng = 7;
    tu_buf_t b = {0};
    while (!atomic_load(&g_src.stop)) {
        b.len = 0;
        for (unsigned i = 0; i < 500; i++) {
            uint32_t k = (uint32_t)(tu_rand(&rng) % NKEYS);
            uint8_t p[4];
            tu_put_be32(p, g_src.per_key[k]++);
            tu_buf_frame(&b, COMP, KEY_BASE + k, p, 4);
        }
        if (tu_write_all(fd, b.data, b.len) < 0) {
            g_src.failed = 1;
            break;
        }
        atomic_fetch_add(&g_src.sent, 500);
        usleep(5000);
    }
    tu_buf_free(&b);
    close(fd);
    return NULL;
}

static int wait_sent(uint64_t more)
{
    uint64_t want = atomic_load(&g_src.sent) + more;
    int64_t end = tu_now_ms() + WAIT_MS;
    while (atomic_load(&g_src.sent) < want && !g_src.failed) {
        if (tu_now_ms() > end)
            return -1;
        tu_sleep_ms(10);
    }
    return g_src.failed ? -1 : 0;
}

/* ------------------------------------------------------------ the case */

static uint64_t applied(member_t *const *ms, unsigned n)
{
    uint64_t sum = 0;
    for (unsigned i = 0; i < n; i++) {
        rill_comp_stats_t cs;
        if (rill_comp_stats(ms[i]->w, COMP, &cs, sizeof cs) == 0)
            sum += cs.msgs;
    }
    return sum;
}

/* owner[k]: the first letter of the id of key k's owner in w's view. */
static int owners(rill_worker_t *w, char *owner)
{
    rill_view_t *v = rill_worker_view(w);
    if (!v)
        return -1;
    for (uint32_t k = 0; k < NKEYS; k++)
        owner[k] = rill_view_member(
            v, (unsigned)rill_view_group_owner(v, rill_view_key_group(v, KEY_BASE + k)))[0];
    rill_view_destroy(v);
    return 0;
}

static int scale_2_3_2(void)
{
    static char owner2[NKEYS], owner3[NKEYS];
    snprintf(g_root, sizeof g_root, "/rill/state-moves-%d", (int)getpid());
    ASSERT_EQ(tu_sink_new(&g_sink, NULL, NULL), 0);
    static member_t a, b, c;
    member_t *two[] = {&a, &b}, *three[] = {&a, &b, &c};
    ASSERT_EQ(member_start(&a, "a"), 0);
    ASSERT_EQ(member_start(&b, "b"), 0);
    ASSERT_EQ(views_agree(two, 2), 0);
    ASSERT_EQ(owners(a.w, owner2), 0);

    g_src.port = a.port;
    ASSERT_EQ(pthread_create(&g_src.thread, NULL, source_main, NULL), 0);
    ASSERT_EQ(wait_sent(50000), 0);

    ASSERT_EQ(member_start(&c, "c"), 0); /* join under load */
    ASSERT_EQ(views_agree(three, 3), 0);
    ASSERT_EQ(owners(a.w, owner3), 0);
    ASSERT_EQ(wait_sent(50000), 0);

    ASSERT_EQ(rill_worker_stop(c.w), 0); /* leave under load */
    ASSERT_EQ(views_agree(two, 2), 0);
    ASSERT_EQ(wait_sent(50000), 0);
    atomic_store(&g_src.stop, 1);
    pthread_join(g_src.thread, NULL);
    ASSERT_EQ(g_src.failed, 0);
    uint64_t sent = atomic_load(&g_src.sent);

    /* Every frame sent was applied once, somewhere (c's applications included). */
    int64_t end = tu_now_ms() + WAIT_MS;
    while (applied(three, 3) < sent && tu_now_ms() < end)
        tu_sleep_ms(20);
    uint64_t got = applied(three, 3);
    if (got != sent) {
        fprintf(stderr, "  applied %" PRIu64 " of %" PRIu64 " frames\n", got, sent);
        print_stats(&a), print_stats(&b), print_stats(&c);
    }
    ASSERT_U64_EQ(got, sent);

    /* Ask each key's owner for its count. */
    tu_buf_t q = {0};
    for (uint32_t k = 0; k < NKEYS; k++)
        tu_buf_frame(&q, COMP, KEY_BASE + k, "?", 1);
    int fd = tu_connect(b.port, WAIT_MS);
    ASSERT_TRUE(fd >= 0);
    ASSERT_EQ(tu_write_all(fd, q.data, q.len), 0);
    close(fd);
    tu_buf_free(&q);
    ASSERT_EQ(tu_sink_wait_count(g_sink, NKEYS, WAIT_MS), 0);
    tu_sleep_ms(200); /* an answer too many would arrive now */

    static uint8_t seen[NKEYS];
    unsigned wrong = 0, twice = 0, shown = 0;
    /* Frames out of order, by kind of key: never moved; moved a -> c -> a (the source's
     * member is the old owner, then the new one); moved b -> c -> b (a third member). */
    uint64_t disorder[3] = {0}, keys_of[3] = {0};
    size_t nf;
    tu_sink_lock(g_sink);
    const tu_frame_t *f = tu_sink_frames(g_sink, &nf);
    for (size_t i = 0; i < nf; i++) {
        uint64_t k = f[i].key - KEY_BASE;
        if (f[i].len != 12 || k >= NKEYS) {
            wrong++;
            continue;
        }
        twice += seen[k]++ > 0;
        uint64_t have = tu_get_be64(f[i].payload);
        int kind = owner2[k] == owner3[k] ? 0 : owner2[k] == 'a' ? 1 : 2;
        disorder[kind] += tu_get_be32(f[i].payload + 8);
        keys_of[kind]++;
        if (have != g_src.per_key[k]) {
            wrong++;
            if (shown++ < 5)
                fprintf(stderr, "  key %" PRIu64 ": count %" PRIu64 ", sent %u\n", k, have,
                        g_src.per_key[k]);
        }
    }
    tu_sink_unlock(g_sink);
    rill_stats_t sa = stats_of(&a), sb = stats_of(&b), sc = stats_of(&c);
    print_stats(&a), print_stats(&b), print_stats(&c);
    fprintf(stderr, "  %" PRIu64 " frames over %u keys; %u counts wrong\n", sent, NKEYS, wrong);
    fprintf(stderr,
            "  frames out of their key's order: %" PRIu64 " over %" PRIu64 " keys that never "
            "moved, %" PRIu64 " over %" PRIu64 " keys a -> c -> a, %" PRIu64 " over %" PRIu64
            " keys b -> c -> b\n",
            disorder[0], keys_of[0], disorder[1], keys_of[1], disorder[2], keys_of[2]);
    ASSERT_U64_EQ(disorder[0], 0);
    ASSERT_EQ(wrong, 0u);
    ASSERT_EQ(twice, 0u);
    ASSERT_U64_EQ(nf, NKEYS);
    ASSERT_U64_GE(sa.groups_moved + sb.groups_moved, 1); /* to c when it joined */
    ASSERT_U64_GE(sc.groups_moved, 1);                   /* from c when it left */
    ASSERT_U64_EQ(sa.state_lost_groups + sb.state_lost_groups + sc.state_lost_groups, 0);
    ASSERT_U64_EQ(sa.state_rejected + sb.state_rejected + sc.state_rejected, 0);
    ASSERT_U64_EQ(sa.groups_owned + sb.groups_owned, 4096);
    /* c handed every value over: what it holds is the empty per-group table headers. */
    ASSERT_U64_LE(sc.state_bytes, LOOPS * 4096u * 24u);

    rill_worker_destroy(c.w);
    rill_worker_destroy(b.w);
    rill_worker_destroy(a.w);
    tu_sink_destroy(g_sink);
    return 0;
}

int main(int argc, char **argv)
{
    t_require_io_uring("state_moves_test");
    char why[256];
    if (!zk_available(why, sizeof why)) {
        printf("state_moves_test: SKIP: %s\n", why);
        return T_EXIT_SKIP;
    }
    tu_ignore_sigpipe();
    int rc = zk_server_start(&g_zk, NULL);
    if (rc < 0) {
        printf("state_moves_test: cannot start a ZooKeeper server: %s\n", strerror(-rc));
        return 1;
    }
    char p[300];
    snprintf(p, sizeof p, "%s/client.log", g_zk.dir);
    FILE *zklog = fopen(p, "a");
    if (zklog)
        zoo_set_log_stream(zklog);
    static const t_case_t cases[] = {
        {"scale_2_3_2", scale_2_3_2},
        {NULL, NULL},
    };
    rc = t_run("state_moves", cases, argc, argv);
    zk_server_destroy(&g_zk);
    if (zklog)
        fclose(zklog);
    return rc;
}
