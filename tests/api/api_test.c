/* api_test: the public header as a user sees it (rill.h only, through the shared library).
 * Versions, build features, error names, config and registration misuse, worker lifecycle,
 * stats, and a tiny end-to-end roundtrip with a sink made of plain sockets. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "rill/rill.h"

/* ------------------------------------------------------------ version and errors */

static int version(void)
{
    ASSERT_EQ(RILL_VERSION_HEX,
              (RILL_VERSION_MAJOR << 16) | (RILL_VERSION_MINOR << 8) | RILL_VERSION_PATCH);
    ASSERT_EQ(rill_version(), RILL_VERSION_HEX);
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", RILL_VERSION_MAJOR, RILL_VERSION_MINOR,
             RILL_VERSION_PATCH);
    ASSERT_TRUE(rill_version_string() != NULL);
    ASSERT_STR_EQ(rill_version_string(), want);
    return 0;
}

/* rill_features: only bits rill.h names, and the cluster bit is what the cluster calls do
 * (cluster_test and cluster_none_test check those calls in each build). */
static int features(void)
{
    unsigned f = rill_features();
    ASSERT_EQ(f & ~(unsigned)RILL_FEATURE_CLUSTER, 0);
    rill_config_t *cfg = rill_config_new();
    ASSERT_TRUE(cfg != NULL);
    ASSERT_EQ(rill_config_set_cluster(cfg, "127.0.0.1:2181", "/rill/api", "w-1", "127.0.0.1:0"),
              (f & RILL_FEATURE_CLUSTER) ? 0 : RILL_EUNSUPPORTED);
    rill_config_destroy(cfg);
    return 0;
}

static int error_strings(void)
{
    /* every rill code: its name and its text come from the one table */
#define CHECK_CODE_(name, value, text)                                                             \
    ASSERT_EQ(RILL_##name, value);                                                                 \
    ASSERT_LT(RILL_##name, -4095); /* far below any errno */                                       \
    ASSERT_STR_EQ(rill_err_name(RILL_##name), "RILL_" #name);                                      \
    ASSERT_STR_EQ(rill_strerror(RILL_##name), text);
    RILL_ERRNO_MAP(CHECK_CODE_)
#undef CHECK_CODE_
    ASSERT_STR_EQ(rill_err_name(RILL_EINVAL), "RILL_EINVAL");
    ASSERT_STR_EQ(rill_strerror(RILL_EINVAL), "invalid argument");

    /* -errno passes through */
    ASSERT_STR_EQ(rill_err_name(-ECONNRESET), "ECONNRESET");
    ASSERT_STR_EQ(rill_err_name(-EINVAL), "EINVAL");
    const char *s = rill_strerror(-ECONNRESET);
    ASSERT_TRUE(s != NULL && s[0] != '\0');
    ASSERT_TRUE(strcmp(s, rill_strerror(RILL_EINVAL)) != 0);

    /* unknown codes */
    ASSERT_STR_EQ(rill_err_name(-29999), "UNKNOWN");
    ASSERT_STR_EQ(rill_err_name(-40000), "UNKNOWN");
    s = rill_strerror(-40000);
    ASSERT_TRUE(s != NULL && s[0] != '\0');
    return 0;
}

/* ------------------------------------------------------------ config misuse */

static int config_errors(void)
{
    rill_config_t *cfg = rill_config_new();
    ASSERT_TRUE(cfg != NULL);

    ASSERT_EQ(rill_config_set_threads(cfg, 0), RILL_ERANGE);
    ASSERT_EQ(rill_config_set_threads(cfg, 65), RILL_ERANGE);
    ASSERT_EQ(rill_config_set_threads(cfg, 64), 0);
    ASSERT_EQ(rill_config_set_threads(cfg, 1), 0);
    ASSERT_EQ(rill_config_set_threads(NULL, 1), RILL_EINVAL);

    ASSERT_EQ(rill_config_set_max_frame(cfg, 11), RILL_ERANGE);
    ASSERT_EQ(rill_config_set_max_frame(cfg, (1u << 30) + 1), RILL_ERANGE);
    ASSERT_EQ(rill_config_set_max_frame(cfg, 12), 0);
    ASSERT_EQ(rill_config_set_max_frame(cfg, 1u << 20), 0);
    ASSERT_EQ(rill_config_set_max_frame(NULL, 4096), RILL_EINVAL);

    ASSERT_EQ(rill_config_set_flush_interval_ms(cfg, 3600u * 1000u + 1), RILL_ERANGE);
    ASSERT_EQ(rill_config_set_busy_wait_us(cfg, 10001), RILL_ERANGE);
    ASSERT_EQ(rill_config_set_busy_wait_us(cfg, 10000), 0);
    ASSERT_EQ(rill_config_set_busy_wait_us(NULL, 50), RILL_EINVAL);
    ASSERT_EQ(rill_config_set_flush_interval_ms(cfg, 0), 0);
    ASSERT_EQ(rill_config_set_flush_interval_ms(NULL, 0), RILL_EINVAL);
    ASSERT_EQ(rill_config_set_sink_buffer(NULL, 1 << 20), RILL_EINVAL);

    ASSERT_EQ(rill_config_add_listener(NULL, "127.0.0.1:0", RILL_FRAMING_RILL, 0, 0, 0),
              RILL_EINVAL);
    ASSERT_EQ(rill_config_add_listener(cfg, NULL, RILL_FRAMING_RILL, 0, 0, 0), RILL_EINVAL);
    ASSERT_EQ(rill_config_add_listener(cfg, "nonsense", RILL_FRAMING_RILL, 0, 0, 0), RILL_EADDR);
    ASSERT_EQ(rill_config_add_listener(cfg, "127.0.0.1", RILL_FRAMING_RILL, 0, 0, 0), RILL_EADDR);
    ASSERT_EQ(rill_config_add_listener(cfg, "127.0.0.1:99999", RILL_FRAMING_RILL, 0, 0, 0),
              RILL_EADDR);
    ASSERT_EQ(rill_config_add_listener(cfg, "127.0.0.1:port", RILL_FRAMING_RILL, 0, 0, 0),
              RILL_EADDR);
    ASSERT_EQ(rill_config_add_listener(cfg, "", RILL_FRAMING_RILL, 0, 0, 0), RILL_EADDR);

    ASSERT_EQ(rill_config_add_sink(NULL, "127.0.0.1:1"), RILL_EINVAL);
    ASSERT_EQ(rill_config_add_sink(cfg, NULL), RILL_EINVAL);
    ASSERT_EQ(rill_config_add_sink(cfg, "bad address"), RILL_EADDR);
    ASSERT_EQ(rill_config_set_dead_letter_sink(NULL, -1), RILL_EINVAL);
    ASSERT_EQ(rill_config_set_dead_letter_sink(cfg, -1), 0);

    /* valid listeners get indices 0, 1, ... (failed calls above added nothing) */
    ASSERT_EQ(rill_config_add_listener(cfg, "127.0.0.1:0", RILL_FRAMING_RILL, 0, 0, 0), 0);
    ASSERT_EQ(rill_config_add_listener(cfg, "localhost:0", RILL_FRAMING_LINE, 9, 1, 42), 1);

    rill_worker_t *w = (rill_worker_t *)&w; /* garbage: must be overwritten with NULL */
    ASSERT_EQ(rill_worker_new(&w, NULL), RILL_EINVAL);
    ASSERT_TRUE(w == NULL);
    ASSERT_EQ(rill_worker_new(NULL, cfg), RILL_EINVAL);

    rill_config_destroy(cfg);
    rill_config_destroy(NULL);
    return 0;
}

/* ------------------------------------------------------------ worker and registry */

typedef struct ctr {
    int batches;
    int releases;
} ctr_t;

static int nop_batch(uintptr_t ctx, unsigned loop, const rill_msg_t *msgs, size_t n,
                     rill_emitter_t *em)
{
    (void)ctx;
    (void)loop;
    (void)msgs;
    (void)n;
    (void)em;
    return 0;
}

static void ctr_release(uintptr_t ctx)
{
    ((ctr_t *)ctx)->releases++;
}

static int new_worker(rill_worker_t **w, unsigned threads)
{
    rill_config_t *cfg = rill_config_new();
    ASSERT_TRUE(cfg != NULL);
    ASSERT_EQ(rill_config_set_threads(cfg, threads), 0);
    ASSERT_EQ(rill_config_add_listener(cfg, "127.0.0.1:0", RILL_FRAMING_RILL, 0, 0, 0), 0);
    ASSERT_EQ(rill_worker_new(w, cfg), 0);
    rill_config_destroy(cfg); /* the worker keeps its own copy */
    ASSERT_TRUE(*w != NULL);
    return 0;
}

static int worker_basics(void)
{
    rill_worker_t *w;
    if (new_worker(&w, 2))
        return 1;
    ASSERT_EQ(rill_worker_threads(w), 2);
    int port = rill_worker_listener_port(w, 0);
    ASSERT_GT(port, 0);
    ASSERT_LE(port, 65535);
    ASSERT_EQ(rill_worker_listener_port(w, 1), RILL_EINVAL);
    ASSERT_EQ(rill_worker_listener_port(NULL, 0), RILL_EINVAL);
    ASSERT_EQ(rill_worker_run(w, 2), RILL_EINVAL);

    /* the port is bound at rill_worker_new: binding it again fails */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_NE(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    close(fd);

    ctr_t a = {0, 0}, b = {0, 0};
    rill_comp_ops_t ops = {nop_batch, NULL, ctr_release};
    rill_comp_ops_t no_batch = {NULL, NULL, ctr_release};
    ASSERT_EQ(rill_comp_register(w, 7, "seven", &ops, (uintptr_t)&a), 0);
    ASSERT_EQ(rill_comp_register(w, 7, "again", &ops, (uintptr_t)&b), RILL_EEXIST);
    ASSERT_EQ(rill_comp_register(w, 8, NULL, NULL, (uintptr_t)&b), RILL_EINVAL);
    ASSERT_EQ(rill_comp_register(w, 8, NULL, &no_batch, (uintptr_t)&b), RILL_EINVAL);
    ASSERT_EQ(rill_comp_register(NULL, 8, NULL, &ops, (uintptr_t)&b), RILL_EINVAL);
    /* the control frames' comp id is reserved (docs/protocol.md) */
    ASSERT_EQ(rill_comp_register(w, RILL_CONTROL_COMP_ID, "ctl", &ops, (uintptr_t)&b), RILL_EINVAL);
    ASSERT_EQ(b.releases, 0); /* a failed registration never releases */
    ASSERT_EQ(rill_comp_unregister(w, 8), RILL_ENOENT);
    ASSERT_EQ(rill_comp_unregister(NULL, 7), RILL_EINVAL);

    rill_comp_stats_t cs;
    memset(&cs, 0xFF, sizeof cs);
    ASSERT_EQ(rill_comp_stats(w, 7, &cs, sizeof cs), 0);
    ASSERT_U64_EQ(cs.msgs, 0);
    ASSERT_U64_EQ(cs.batches, 0);
    ASSERT_U64_EQ(cs.errors, 0);
    ASSERT_U64_EQ(cs.batch_ns, 0);
    for (unsigned k = 0; k < RILL_BATCH_BUCKETS; k++)
        ASSERT_U64_EQ(cs.batch_buckets[k], 0);
    ASSERT_EQ(rill_comp_stats(w, 8, &cs, sizeof cs), RILL_ENOENT);
    ASSERT_EQ(rill_comp_stats(w, 7, NULL, sizeof cs), RILL_EINVAL);

    ASSERT_EQ(rill_comp_unregister(w, 7), 0);
    ASSERT_EQ(a.releases, 1);
    ASSERT_EQ(rill_comp_unregister(w, 7), RILL_ENOENT);
    ASSERT_EQ(a.releases, 1);
    /* the id is free again; destroy releases what is still registered */
    ASSERT_EQ(rill_comp_register(w, 7, "seven", &ops, (uintptr_t)&b), 0);
    rill_worker_destroy(w);
    ASSERT_EQ(b.releases, 1);
    ASSERT_EQ(a.releases, 1);
    rill_worker_destroy(NULL);
    return 0;
}

static int stats_size(void)
{
    rill_worker_t *w;
    if (new_worker(&w, 1))
        return 1;
    rill_stats_t st;
    memset(&st, 0xFF, sizeof st);
    ASSERT_EQ(rill_worker_stats(w, &st, sizeof st), 0);
    ASSERT_U64_EQ(st.msgs_in, 0);
    ASSERT_U64_EQ(st.conns_open, 0);
    ASSERT_U64_EQ(st.enobufs, 0);
    ASSERT_EQ(rill_worker_stats(w, NULL, sizeof st), RILL_EINVAL);
    ASSERT_EQ(rill_worker_stats(NULL, &st, sizeof st), RILL_EINVAL);

    /* an older caller with a shorter struct: only its prefix is written */
    unsigned char buf[sizeof(rill_stats_t) + 16];
    memset(buf, 0xAA, sizeof buf);
    size_t older = offsetof(rill_stats_t, msgs_out);
    ASSERT_EQ(rill_worker_stats(w, (rill_stats_t *)(void *)buf, older), 0);
    for (size_t i = 0; i < older; i++)
        ASSERT_EQ(buf[i], 0);
    for (size_t i = older; i < sizeof buf; i++)
        ASSERT_EQ(buf[i], 0xAA);
    rill_worker_destroy(w);
    return 0;
}

/* The batch time histogram's buckets: 1-2.5-5 per decade from 1 us to 1 s, then one
 * unbounded; a caller compiled before the histogram gets only its prefix written. */
static int batch_buckets(void)
{
    static const uint64_t want[RILL_BATCH_BUCKETS - 1] = {
        1000,     2500,      5000,      10000,     25000,      50000,    100000,
        250000,   500000,    1000000,   2500000,   5000000,    10000000, 25000000,
        50000000, 100000000, 250000000, 500000000, 1000000000,
    };
    for (unsigned k = 0; k < RILL_BATCH_BUCKETS - 1; k++)
        ASSERT_U64_EQ(rill_batch_bucket_le_ns(k), want[k]);
    ASSERT_U64_EQ(rill_batch_bucket_le_ns(RILL_BATCH_BUCKETS - 1), UINT64_MAX);
    ASSERT_U64_EQ(rill_batch_bucket_le_ns(RILL_BATCH_BUCKETS), 0);
    ASSERT_U64_EQ(rill_batch_bucket_le_ns(UINT32_MAX), 0);

    rill_worker_t *w;
    if (new_worker(&w, 1))
        return 1;
    rill_comp_ops_t ops = {nop_batch, NULL, NULL};
    ASSERT_EQ(rill_comp_register(w, 4, "four", &ops, 0), 0);
    unsigned char buf[sizeof(rill_comp_stats_t) + 16];
    memset(buf, 0xAA, sizeof buf);
    size_t older = offsetof(rill_comp_stats_t, batch_ns);
    ASSERT_EQ(rill_comp_stats(w, 4, (rill_comp_stats_t *)(void *)buf, older), 0);
    for (size_t i = older; i < sizeof buf; i++)
        ASSERT_EQ(buf[i], 0xAA);
    rill_worker_destroy(w);
    return 0;
}

/* rill_comp_list + the name in rill_comp_stats: what a dashboard needs to list the
 * computations (rill's /metrics renders them this way). */
static int comp_list(void)
{
    rill_worker_t *w;
    if (new_worker(&w, 1))
        return 1;
    uint32_t ids[8];
    ASSERT_EQ(rill_comp_list(w, NULL, 0), 0);
    ASSERT_EQ(rill_comp_list(w, ids, 8), 0);

    ctr_t c = {0, 0};
    rill_comp_ops_t ops = {nop_batch, NULL, ctr_release};
    static const char long_name[] = "a-name-longer-than-sixty-three-bytes-is-cut-in-the-stats-"
                                    "struct-not-in-the-registry";
    ASSERT_GT(sizeof long_name - 1, 63);
    ASSERT_EQ(rill_comp_register(w, 9, "nine", &ops, (uintptr_t)&c), 0);
    ASSERT_EQ(rill_comp_register(w, 3, NULL, &ops, (uintptr_t)&c), 0);
    ASSERT_EQ(rill_comp_register(w, 5, long_name, &ops, (uintptr_t)&c), 0);

    /* the total, and the ids in registration order */
    ASSERT_EQ(rill_comp_list(w, NULL, 0), 3);
    memset(ids, 0xFF, sizeof ids);
    ASSERT_EQ(rill_comp_list(w, ids, 8), 3);
    ASSERT_EQ(ids[0], 9);
    ASSERT_EQ(ids[1], 3);
    ASSERT_EQ(ids[2], 5);
    ASSERT_EQ(ids[3], 0xFFFFFFFFu); /* nothing written past the total */
    /* a short array: filled, and the total says it was too short */
    memset(ids, 0xFF, sizeof ids);
    ASSERT_EQ(rill_comp_list(w, ids, 2), 3);
    ASSERT_EQ(ids[0], 9);
    ASSERT_EQ(ids[1], 3);
    ASSERT_EQ(ids[2], 0xFFFFFFFFu);
    ASSERT_EQ(rill_comp_list(NULL, ids, 8), RILL_EINVAL);
    ASSERT_EQ(rill_comp_list(w, NULL, 1), RILL_EINVAL);

    /* names come with the counters */
    rill_comp_stats_t cs;
    memset(&cs, 0xFF, sizeof cs);
    ASSERT_EQ(rill_comp_stats(w, 9, &cs, sizeof cs), 0);
    ASSERT_STR_EQ(cs.name, "nine");
    ASSERT_U64_EQ(cs.msgs, 0);
    memset(&cs, 0xFF, sizeof cs);
    ASSERT_EQ(rill_comp_stats(w, 3, &cs, sizeof cs), 0);
    ASSERT_STR_EQ(cs.name, "");
    memset(&cs, 0xFF, sizeof cs);
    ASSERT_EQ(rill_comp_stats(w, 5, &cs, sizeof cs), 0);
    ASSERT_EQ(strlen(cs.name), sizeof cs.name - 1);
    ASSERT_MEM_EQ(cs.name, long_name, sizeof cs.name - 1);
    /* an older caller (counters only, no name): only its prefix is written */
    unsigned char buf[sizeof(rill_comp_stats_t)];
    memset(buf, 0xAA, sizeof buf);
    size_t older = offsetof(rill_comp_stats_t, name);
    ASSERT_EQ(rill_comp_stats(w, 9, (rill_comp_stats_t *)(void *)buf, older), 0);
    for (size_t i = older; i < sizeof buf; i++)
        ASSERT_EQ(buf[i], 0xAA);

    /* unregistered: gone from the list, the others keep their order */
    ASSERT_EQ(rill_comp_unregister(w, 3), 0);
    ASSERT_EQ(rill_comp_list(w, ids, 8), 2);
    ASSERT_EQ(ids[0], 9);
    ASSERT_EQ(ids[1], 5);
    ASSERT_EQ(rill_comp_stats(w, 3, &cs, sizeof cs), RILL_ENOENT);
    rill_worker_destroy(w);
    ASSERT_EQ(c.releases, 3);
    return 0;
}

static int lifecycle(void)
{
    rill_worker_t *w;
    if (new_worker(&w, 2))
        return 1;
    ASSERT_EQ(rill_worker_start(w), 0);
    ASSERT_EQ(rill_worker_start(w), RILL_ESTATE);
    ASSERT_EQ(rill_worker_run(w, 0), RILL_ESTATE); /* loops belong to rill's threads */
    ASSERT_EQ(rill_worker_stop(w), 0);
    ASSERT_EQ(rill_worker_stop(w), 0); /* idempotent */
    rill_worker_shutdown(w);           /* idempotent too */
    ASSERT_EQ(rill_worker_start(w), RILL_ESTATE);
    rill_worker_destroy(w);

    /* stop without start, destroy without stop */
    if (new_worker(&w, 1))
        return 1;
    ASSERT_EQ(rill_worker_stop(w), 0);
    rill_worker_destroy(w);
    if (new_worker(&w, 1))
        return 1;
    ASSERT_EQ(rill_worker_start(w), 0);
    rill_worker_destroy(w);
    ASSERT_EQ(rill_worker_start(NULL), RILL_EINVAL);
    ASSERT_EQ(rill_worker_stop(NULL), RILL_EINVAL);
    return 0;
}

/* ------------------------------------------------------------ roundtrip */

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static uint32_t get_be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Reads exactly n bytes within ms milliseconds; 0 on success. */
static int read_n(int fd, unsigned char *buf, size_t n, int ms)
{
    while (n > 0) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, ms) <= 0)
            return -1;
        ssize_t k = recv(fd, buf, n, 0);
        if (k <= 0)
            return -1;
        buf += k;
        n -= (size_t)k;
    }
    return 0;
}

static int passthrough(uintptr_t ctx, unsigned loop, const rill_msg_t *msgs, size_t n,
                       rill_emitter_t *em)
{
    (void)loop;
    ctr_t *c = (ctr_t *)ctx;
    c->batches++; /* one loop thread: no race */
    for (size_t i = 0; i < n; i++)
        if (rill_emit_sink(em, 0, msgs[i].comp_id + 100, msgs[i].key, msgs[i].data, msgs[i].len))
            return -1;
    return 0;
}

/* Passes whole batches on with rill_emit_sink_msgs, after checking its misuse errors. */
static int passthrough_msgs(uintptr_t ctx, unsigned loop, const rill_msg_t *msgs, size_t n,
                            rill_emitter_t *em)
{
    (void)loop;
    ctr_t *c = (ctr_t *)ctx;
    c->batches++;
    if (rill_emit_sink_msgs(em, 1, msgs, n) != RILL_EINVAL || /* no sink 1 */
        rill_emit_sink_msgs(em, 0, NULL, n) != RILL_EINVAL)
        return -1;
    return rill_emit_sink_msgs(em, 0, msgs, n) == (int)n ? 0 : -1;
}

/* A worker between a client socket and a sink socket: frames (comp 1, key k, "msg-k") in,
 * checked at the sink with the comp id the computation gives them. */
static int run_roundtrip(rill_batch_cb cb, unsigned nframes, uint32_t comp_out)
{
    /* the sink: a plain listening socket */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(lfd, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    ASSERT_EQ(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    ASSERT_EQ(listen(lfd, 8), 0);
    ASSERT_EQ(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
    char sink_addr[32];
    snprintf(sink_addr, sizeof sink_addr, "127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));

    rill_config_t *cfg = rill_config_new();
    ASSERT_TRUE(cfg != NULL);
    ASSERT_EQ(rill_config_add_listener(cfg, "127.0.0.1:0", RILL_FRAMING_RILL, 0, 0, 0), 0);
    ASSERT_EQ(rill_config_add_sink(cfg, sink_addr), 0);
    rill_worker_t *w;
    ASSERT_EQ(rill_worker_new(&w, cfg), 0);
    rill_config_destroy(cfg);
    ctr_t c = {0, 0};
    rill_comp_ops_t ops = {cb, NULL, ctr_release};
    ASSERT_EQ(rill_comp_register(w, 1, "pass", &ops, (uintptr_t)&c), 0);
    ASSERT_EQ(rill_worker_start(w), 0);

    /* the loop connects to the sink when it starts */
    struct pollfd p = {lfd, POLLIN, 0};
    ASSERT_EQ(poll(&p, 1, 20000), 1);
    int sfd = accept(lfd, NULL, NULL);
    ASSERT_GE(sfd, 0);

    int port = rill_worker_listener_port(w, 0);
    int cfd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(cfd, 0);
    sa.sin_port = htons((uint16_t)port);
    ASSERT_EQ(connect(cfd, (struct sockaddr *)&sa, sizeof sa), 0);
    unsigned char frames[8][16 + 5];
    ASSERT_LE(nframes, 8);
    for (unsigned i = 0; i < nframes; i++) {
        put_be32(frames[i], 12 + 5);
        put_be32(frames[i] + 4, 1);
        put_be32(frames[i] + 8, 0x01020304);
        put_be32(frames[i] + 12, 0x05060700 + i);
        memcpy(frames[i] + 16, "msg-", 4);
        frames[i][20] = (unsigned char)('0' + i);
    }
    size_t total = nframes * sizeof frames[0];
    ASSERT_EQ(send(cfd, frames, total, MSG_NOSIGNAL), (ssize_t)total);

    for (unsigned i = 0; i < nframes; i++) {
        unsigned char got[16 + 5];
        ASSERT_EQ(read_n(sfd, got, sizeof got, 20000), 0);
        ASSERT_EQ(get_be32(got), 12 + 5);
        ASSERT_EQ(get_be32(got + 4), comp_out);
        ASSERT_EQ(get_be32(got + 8), 0x01020304);
        ASSERT_EQ(get_be32(got + 12), 0x05060700 + i); /* in order */
        ASSERT_MEM_EQ(got + 16, frames[i] + 16, 5);
    }

    rill_stats_t st;
    ASSERT_EQ(rill_worker_stats(w, &st, sizeof st), 0);
    ASSERT_U64_EQ(st.msgs_in, nframes);
    ASSERT_U64_EQ(st.bytes_in, total);
    ASSERT_U64_EQ(st.msgs_dispatched, nframes);
    ASSERT_U64_EQ(st.msgs_out, nframes);
    ASSERT_U64_EQ(st.comp_errors, 0);
    ASSERT_U64_EQ(st.conns_accepted, 1);
    rill_comp_stats_t cs;
    ASSERT_EQ(rill_comp_stats(w, 1, &cs, sizeof cs), 0);
    ASSERT_U64_EQ(cs.msgs, nframes);

    ASSERT_EQ(rill_worker_stop(w), 0);
    ASSERT_U64_EQ(cs.batches, c.batches); /* read after the loop thread has been joined */
    /* the sink connection is closed once the loop has drained */
    unsigned char x;
    ASSERT_EQ(read_n(sfd, &x, 1, 20000), -1);
    rill_worker_destroy(w);
    ASSERT_EQ(c.releases, 1);
    close(cfd);
    close(sfd);
    close(lfd);
    return 0;
}

static int roundtrip(void)
{
    return run_roundtrip(passthrough, 1, 101);
}
static int roundtrip_batch(void)
{
    return run_roundtrip(passthrough_msgs, 5, 1);
}

/* ------------------------------------------------------------ sink room */

typedef struct room_seen {
    atomic_int done;
    int ok;           /* every prediction of rill_emit_sink_room held */
    unsigned queued;  /* frames queued before the buffer was full */
    size_t first;     /* the room at the start of the callback */
    size_t acked;     /* the acked sink's room */
    size_t bad_index; /* the room of a sink that does not exist */
} room_seen_t;

/* Emits 100-byte frames to sink 0 until it is full, checking before each one that
 * rill_emit_sink_room said whether it would fit; then the acked sink 1 and a bad index. */
static int room_batch(uintptr_t ctx, unsigned loop, const rill_msg_t *msgs, size_t n,
                      rill_emitter_t *em)
{
    (void)loop, (void)msgs, (void)n;
    room_seen_t *r = (room_seen_t *)ctx;
    if (atomic_load(&r->done))
        return 0;
    static const char payload[100];
    r->ok = 1;
    r->first = rill_emit_sink_room(em, 0);
    for (;;) {
        size_t room = rill_emit_sink_room(em, 0);
        int rc = rill_emit_sink(em, 0, 9, 0, payload, sizeof payload);
        if (rc == RILL_EFULL) {
            r->ok &= room < 16 + sizeof payload && rill_emit_sink_room(em, 0) == room;
            break;
        }
        r->ok &= rc == 0 && room >= 16 + sizeof payload &&
                 rill_emit_sink_room(em, 0) == room - (16 + sizeof payload);
        if (!r->ok || ++r->queued > 100000)
            break;
    }
    r->acked = rill_emit_sink_room(em, 1);
    r->bad_index = rill_emit_sink_room(em, 2) + rill_emit_sink_room(NULL, 0);
    atomic_store(&r->done, 1);
    return 0;
}

/* rill_emit_sink_room predicts RILL_EFULL exactly: a sink nobody accepts from fills up
 * within one callback; an acked sink is never full. */
static int sink_room(void)
{
    rill_config_t *cfg = rill_config_new();
    ASSERT_TRUE(cfg != NULL);
    ASSERT_EQ(rill_config_set_max_frame(cfg, 1024), 0);
    ASSERT_EQ(rill_config_set_sink_buffer(cfg, 16384), 0);
    ASSERT_EQ(rill_config_add_listener(cfg, "127.0.0.1:0", RILL_FRAMING_RILL, 0, 0, 0), 0);
    ASSERT_EQ(rill_config_add_sink(cfg, "127.0.0.1:9"), 0); /* discard port: refused */
    ASSERT_EQ(rill_config_add_sink(cfg, "127.0.0.1:9"), 1);
    ASSERT_EQ(rill_config_set_sink_delivery(cfg, 1, RILL_DELIVERY_ACKED), 0);
    rill_worker_t *w;
    ASSERT_EQ(rill_worker_new(&w, cfg), 0);
    rill_config_destroy(cfg);
    static room_seen_t r;
    rill_comp_ops_t ops = {room_batch, NULL, NULL};
    ASSERT_EQ(rill_comp_register(w, 1, "room", &ops, (uintptr_t)&r), 0);
    ASSERT_EQ(rill_worker_start(w), 0);
    int cfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)rill_worker_listener_port(w, 0)),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ASSERT_EQ(connect(cfd, (struct sockaddr *)&sa, sizeof sa), 0);
    unsigned char f[16];
    put_be32(f, 12); /* no payload */
    put_be32(f + 4, 1);
    memset(f + 8, 0, 8);
    ASSERT_EQ(send(cfd, f, sizeof f, MSG_NOSIGNAL), (ssize_t)sizeof f);
    for (int i = 0; i < 2000 && !atomic_load(&r.done); i++)
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    ASSERT_EQ(atomic_load(&r.done), 1);
    ASSERT_EQ(r.ok, 1);
    ASSERT_U64_EQ(r.first, 16384); /* nothing queued yet: the whole sink buffer */
    ASSERT_EQ(r.queued, 16384 / 116);
    ASSERT_TRUE(r.acked == SIZE_MAX);
    ASSERT_U64_EQ(r.bad_index, 0);
    rill_stats_t st;
    ASSERT_EQ(rill_worker_stats(w, &st, sizeof st), 0);
    ASSERT_U64_EQ(st.sink_dropped, 1); /* the one frame that did not fit */
    close(cfd);
    ASSERT_EQ(rill_worker_stop(w), 0);
    rill_worker_destroy(w);
    return 0;
}

/* ------------------------------------------------------------ log callback */

typedef struct log_seen {
    pthread_mutex_t mu;
    unsigned n;
    rill_log_level_t level[8];
    char msg[8][512];
} log_seen_t;

static void collect(uintptr_t ctx, rill_log_level_t level, const char *msg)
{
    log_seen_t *s = (log_seen_t *)ctx;
    pthread_mutex_lock(&s->mu);
    if (s->n < 8) {
        s->level[s->n] = level;
        snprintf(s->msg[s->n], sizeof s->msg[0], "%s", msg);
        s->n++;
    }
    pthread_mutex_unlock(&s->mu);
}

/* The first logged line that contains needle, or -1; its level in *level. */
static int seen(log_seen_t *s, const char *needle, rill_log_level_t *level)
{
    int at = -1;
    pthread_mutex_lock(&s->mu);
    for (unsigned i = 0; i < s->n && at < 0; i++)
        if (strstr(s->msg[i], needle)) {
            at = (int)i;
            *level = s->level[i];
        }
    pthread_mutex_unlock(&s->mu);
    return at;
}

static void *last_error_elsewhere(void *out)
{
    snprintf(out, 256, "%s", rill_last_error());
    return NULL;
}

/* Library log lines reach the callback, with their level and without "rill: ": an
 * error from the calling thread (a port in use), a warning from a loop thread (a frame
 * shorter than its header); then stderr again. */
static int log_callback(void)
{
    static log_seen_t s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    rill_set_log_callback(collect, (uintptr_t)&s);
    rill_worker_t *a = NULL, *b = NULL;
    rill_config_t *cfg = rill_config_new();
    ASSERT_TRUE(cfg != NULL);
    ASSERT_EQ(rill_config_add_listener(cfg, "127.0.0.1:0", RILL_FRAMING_RILL, 0, 0, 0), 0);
    ASSERT_EQ(rill_worker_new(&a, cfg), 0);
    rill_config_destroy(cfg);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", rill_worker_listener_port(a, 0));
    cfg = rill_config_new();
    ASSERT_EQ(rill_config_add_listener(cfg, addr, RILL_FRAMING_RILL, 0, 0, 0), 0);
    ASSERT_EQ(rill_worker_new(&b, cfg), -EADDRINUSE);
    rill_config_destroy(cfg);
    rill_log_level_t level;
    char want[96];
    snprintf(want, sizeof want, "cannot listen on %s", addr);
    int at = seen(&s, want, &level);
    ASSERT_TRUE(at >= 0);
    ASSERT_EQ(level, RILL_LOG_ERROR);
    ASSERT_TRUE(strncmp(s.msg[at], "rill: ", 6) != 0 && !strchr(s.msg[at], '\n'));
    /* The same text, from rill_last_error on this thread; a success clears it. */
    ASSERT_TRUE(strstr(rill_last_error(), want) != NULL);
    ASSERT_TRUE(strstr(rill_last_error(), "Address already in use") != NULL);
    pthread_t other;
    char other_saw[256] = "unset";
    ASSERT_EQ(pthread_create(&other, NULL, last_error_elsewhere, other_saw), 0);
    pthread_join(other, NULL);
    ASSERT_EQ(strcmp(other_saw, ""), 0); /* another thread's failure is not this one's */
    cfg = rill_config_new();
    ASSERT_EQ(rill_config_add_listener(cfg, "127.0.0.1:0", RILL_FRAMING_RILL, 0, 0, 0), 0);
    ASSERT_EQ(rill_worker_new(&b, cfg), 0);
    rill_config_destroy(cfg);
    rill_worker_destroy(b);
    ASSERT_EQ(strcmp(rill_last_error(), ""), 0);

    ASSERT_EQ(rill_worker_start(a), 0);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)rill_worker_listener_port(a, 0)),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ASSERT_EQ(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    const uint8_t bad[8] = {0, 0, 0, 3, 0, 0, 0, 1}; /* length 3: below the 12 of a header */
    ASSERT_EQ(write(fd, bad, sizeof bad), (ssize_t)sizeof bad);
    for (int i = 0; i < 3000 && seen(&s, "frame length below 12", &level) < 0; i++)
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    close(fd);
    ASSERT_TRUE(seen(&s, "frame length below 12", &level) >= 0);
    ASSERT_EQ(level, RILL_LOG_WARNING);
    ASSERT_EQ(rill_worker_stop(a), 0);
    rill_worker_destroy(a);
    rill_set_log_callback(NULL, 0);
    return 0;
}

static const t_case_t cases[] = {
    {"version", version},
    {"features", features},
    {"error_strings", error_strings},
    {"config_errors", config_errors},
    {"worker_basics", worker_basics},
    {"stats_size", stats_size},
    {"batch_buckets", batch_buckets},
    {"comp_list", comp_list},
    {"lifecycle", lifecycle},
    {"roundtrip", roundtrip},
    {"roundtrip_batch", roundtrip_batch},
    {"log_callback", log_callback},
    {"sink_room", sink_room},
    {NULL, NULL},
};

int main(int argc, char **argv)
{
    t_require_io_uring("api_test");
    signal(SIGPIPE, SIG_IGN);
    return t_run("api_test", cases, argc, argv);
}
