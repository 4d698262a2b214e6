/* cluster_none_test: rill built without cluster support (RILL_CLUSTER=OFF, so
 * core/cluster/none.c instead of the ZooKeeper client), seen through rill.h only, as a
 * program linked unchanged sees it. rill_features() says so; every cluster call exists and
 * returns RILL_EUNSUPPORTED (or the documented NULL / -1 / 0), with good arguments as with
 * bad ones; a config on which they all failed still makes a worker, which is not
 * clustered and runs frames of many keys from a real source socket across two loops to a
 * real sink socket, each key's frames in order. Registered only in an OFF build. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "rill/rill.h"

/* ------------------------------------------------------------ features */

static int features(void)
{
    ASSERT_EQ(rill_features() & RILL_FEATURE_CLUSTER, 0);
    ASSERT_EQ(rill_features() & ~(unsigned)RILL_FEATURE_CLUSTER, 0); /* no bit rill.h lacks */
    /* the code's text names both causes */
    ASSERT_TRUE(strstr(rill_strerror(RILL_EUNSUPPORTED), "this build of rill") != NULL);
    ASSERT_STR_EQ(rill_err_name(RILL_EUNSUPPORTED), "RILL_EUNSUPPORTED");
    return 0;
}

/* ------------------------------------------------------------ the cluster section */

static void view_cb(uintptr_t ctx, const rill_view_t *v)
{
    (void)v;
    ++*(int *)ctx;
}

/* Every setter of the cluster section on cfg (which may be NULL), with good arguments. */
static int setters_unsupported(rill_config_t *cfg, int *views)
{
    ASSERT_EQ(rill_config_set_cluster(cfg, "127.0.0.1:2181", "/rill/none", "w-1", "127.0.0.1:0"),
              RILL_EUNSUPPORTED);
    ASSERT_EQ(rill_config_set_cluster(cfg, "127.0.0.1:2181", "/rill/none", NULL, "127.0.0.1:0"),
              RILL_EUNSUPPORTED);
    ASSERT_EQ(rill_config_set_peer_advertise(cfg, "10.0.0.1:7000"), RILL_EUNSUPPORTED);
    ASSERT_EQ(rill_config_set_source_advertise(cfg, "10.0.0.1:7700"), RILL_EUNSUPPORTED);
    ASSERT_EQ(rill_config_set_session_timeout_ms(cfg, 10000), RILL_EUNSUPPORTED);
    ASSERT_EQ(rill_config_set_key_groups(cfg, 4096), RILL_EUNSUPPORTED);
    ASSERT_EQ(rill_config_set_cluster_auth(cfg, "user:password"), RILL_EUNSUPPORTED);
    ASSERT_EQ(rill_config_set_cluster_auth(cfg, NULL), RILL_EUNSUPPORTED);
    ASSERT_EQ(rill_config_set_view_cb(cfg, view_cb, (uintptr_t)views), RILL_EUNSUPPORTED);
    return 0;
}

static int cluster_calls(void)
{
    int views = 0;
    rill_config_t *cfg = rill_config_new();
    ASSERT_TRUE(cfg != NULL);
    if (setters_unsupported(cfg, &views) || setters_unsupported(NULL, &views))
        return 1;
    /* bad arguments: still the build's answer, not the argument's */
    ASSERT_EQ(rill_config_set_cluster(cfg, NULL, NULL, "bad id!", "nonsense"), RILL_EUNSUPPORTED);
    ASSERT_EQ(rill_config_set_peer_advertise(cfg, NULL), RILL_EUNSUPPORTED);
    ASSERT_EQ(rill_config_set_source_advertise(cfg, "nonsense"), RILL_EUNSUPPORTED);
    ASSERT_EQ(rill_config_set_session_timeout_ms(cfg, 1), RILL_EUNSUPPORTED);
    ASSERT_EQ(rill_config_set_key_groups(cfg, 0), RILL_EUNSUPPORTED);
    ASSERT_EQ(rill_config_set_cluster_auth(cfg, "no colon"), RILL_EUNSUPPORTED);
    ASSERT_EQ(rill_config_set_view_cb(NULL, NULL, 0), RILL_EUNSUPPORTED);

    /* the config is still good for a worker: one listener, no peer listener added */
    ASSERT_EQ(rill_config_add_listener(cfg, "127.0.0.1:0", RILL_FRAMING_RILL, 0, 0, 0), 0);
    rill_worker_t *w;
    ASSERT_EQ(rill_worker_new(&w, cfg), 0);
    rill_config_destroy(cfg);
    ASSERT_GT(rill_worker_listener_port(w, 0), 0);
    ASSERT_EQ(rill_worker_listener_port(w, 1), RILL_EINVAL);

    ASSERT_TRUE(rill_worker_view(w) == NULL);
    ASSERT_TRUE(rill_worker_view(NULL) == NULL);
    /* returns at once, even with no time limit: there is no view to wait for */
    ASSERT_EQ(rill_worker_view_wait(w, 0, -1), RILL_EUNSUPPORTED);
    ASSERT_EQ(rill_worker_view_wait(w, 7, 0), RILL_EUNSUPPORTED);
    ASSERT_EQ(rill_worker_view_wait(NULL, 0, 0), RILL_EUNSUPPORTED);
    ASSERT_EQ(rill_worker_start(w), 0);
    ASSERT_TRUE(rill_worker_view(w) == NULL);
    ASSERT_EQ(rill_worker_view_wait(w, 0, -1), RILL_EUNSUPPORTED);
    ASSERT_EQ(rill_worker_stop(w), 0);
    rill_worker_destroy(w);

    /* the view accessors: no view exists, so they only ever see NULL */
    ASSERT_U64_EQ(rill_view_epoch(NULL), 0);
    ASSERT_EQ(rill_view_size(NULL), 0);
    ASSERT_TRUE(rill_view_member(NULL, 0) == NULL);
    ASSERT_TRUE(rill_view_member_addr(NULL, 0) == NULL);
    ASSERT_TRUE(rill_view_member_source(NULL, 0) == NULL);
    ASSERT_EQ(rill_view_self(NULL), -1);
    ASSERT_EQ(rill_view_owner(NULL, 42), -1);
    ASSERT_EQ(rill_view_key_groups(NULL), 0);
    ASSERT_EQ(rill_view_key_group(NULL, 42), 0);
    ASSERT_EQ(rill_view_group_owner(NULL, 0), -1);
    rill_view_destroy(NULL);
    ASSERT_EQ(views, 0);
    return 0;
}

/* ------------------------------------------------------------ a plain worker end to end */

#define KEYS 16
#define FRAMES 4000 /* FRAMES / KEYS per key */
#define PAYLOAD 8   /* u32 key index, u32 sequence number within the key */
#define FRAME (16 + PAYLOAD)

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

static int passthrough(uintptr_t ctx, unsigned loop, const rill_msg_t *msgs, size_t n,
                       rill_emitter_t *em)
{
    (void)ctx, (void)loop;
    return rill_emit_sink_msgs(em, 0, msgs, n) == (int)n ? 0 : -1;
}

/* One sink connection per loop: what arrived on it so far. */
typedef struct sink_conn {
    int fd;
    unsigned char buf[FRAME];
    size_t have;
} sink_conn_t;

static int listen_loopback(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 8) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(sa.sin_port);
    return fd;
}

static int plain_worker(void)
{
    int sink_port;
    int lfd = listen_loopback(&sink_port);
    ASSERT_GE(lfd, 0);
    char sink_addr[32];
    snprintf(sink_addr, sizeof sink_addr, "127.0.0.1:%d", sink_port);

    /* a program written for both builds: it tries to cluster and goes on without */
    int views = 0;
    rill_config_t *cfg = rill_config_new();
    ASSERT_TRUE(cfg != NULL);
    if (setters_unsupported(cfg, &views))
        return 1;
    ASSERT_EQ(rill_config_set_threads(cfg, 2), 0);
    ASSERT_EQ(rill_config_add_listener(cfg, "127.0.0.1:0", RILL_FRAMING_RILL, 0, 0, 0), 0);
    ASSERT_EQ(rill_config_add_sink(cfg, sink_addr), 0);
    rill_worker_t *w;
    ASSERT_EQ(rill_worker_new(&w, cfg), 0);
    rill_config_destroy(cfg);
    rill_comp_ops_t ops = {passthrough, NULL, NULL};
    ASSERT_EQ(rill_comp_register(w, 1, "pass", &ops, 0), 0);
    ASSERT_EQ(rill_worker_start(w), 0);

    /* each loop connects to the sink when it starts */
    sink_conn_t sinks[2];
    for (int i = 0; i < 2; i++) {
        struct pollfd p = {lfd, POLLIN, 0};
        ASSERT_EQ(poll(&p, 1, 20000), 1);
        sinks[i].fd = accept(lfd, NULL, NULL);
        ASSERT_GE(sinks[i].fd, 0);
        sinks[i].have = 0;
    }
    /* Ready once both loops' sink connections are up: no cluster view to wait for. */
    char why[64] = "unset";
    for (int i = 0; i < 20000 && rill_worker_ready(w, why, sizeof why) != 1; i++)
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    ASSERT_EQ(rill_worker_ready(w, why, sizeof why), 1);
    ASSERT_STR_EQ(why, "");

    int cfd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(cfd, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)rill_worker_listener_port(w, 0));
    ASSERT_EQ(connect(cfd, (struct sockaddr *)&sa, sizeof sa), 0);
    static unsigned char frames[FRAMES][FRAME];
    for (uint32_t i = 0; i < FRAMES; i++) {
        uint32_t k = i % KEYS;
        put_be32(frames[i], 12 + PAYLOAD);
        put_be32(frames[i] + 4, 1);
        put_be32(frames[i] + 8, 0);
        put_be32(frames[i] + 12, 0x1000 + k * 0x9e37u); /* keys spread over both loops */
        put_be32(frames[i] + 16, k);
        put_be32(frames[i] + 20, i / KEYS);
    }
    ASSERT_EQ(send(cfd, frames, sizeof frames, MSG_NOSIGNAL), (ssize_t)sizeof frames);

    /* every frame at the sink, unchanged, each key's in the order sent */
    uint32_t next[KEYS] = {0};
    unsigned got = 0, per_conn[2] = {0, 0};
    while (got < FRAMES) {
        struct pollfd p[2] = {{sinks[0].fd, POLLIN, 0}, {sinks[1].fd, POLLIN, 0}};
        ASSERT_GT(poll(p, 2, 20000), 0);
        for (int i = 0; i < 2; i++) {
            if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            sink_conn_t *s = &sinks[i];
            ssize_t n = recv(s->fd, s->buf + s->have, FRAME - s->have, 0);
            ASSERT_GT(n, 0);
            s->have += (size_t)n;
            if (s->have < FRAME)
                continue;
            s->have = 0;
            ASSERT_EQ(get_be32(s->buf), 12 + PAYLOAD);
            ASSERT_EQ(get_be32(s->buf + 4), 1);
            uint32_t k = get_be32(s->buf + 16);
            ASSERT_LT(k, KEYS);
            ASSERT_EQ(get_be32(s->buf + 12), 0x1000 + k * 0x9e37u);
            ASSERT_EQ(get_be32(s->buf + 20), next[k]);
            next[k]++;
            per_conn[i]++;
            got++;
        }
    }
    ASSERT_GT(per_conn[0], 0); /* both loops ran keys: routing between loops, no view */
    ASSERT_GT(per_conn[1], 0);

    rill_stats_t st;
    ASSERT_EQ(rill_worker_stats(w, &st, sizeof st), 0);
    ASSERT_U64_EQ(st.msgs_in, FRAMES);
    ASSERT_U64_EQ(st.msgs_out, FRAMES);
    ASSERT_U64_EQ(st.comp_errors, 0);
    ASSERT_U64_EQ(st.forwarded, 0);
    ASSERT_U64_EQ(st.peer_in, 0);
    ASSERT_U64_EQ(st.misrouted, 0);
    ASSERT_U64_EQ(st.view_changes, 0);
    ASSERT_U64_EQ(st.zk_errors, 0);
    ASSERT_U64_EQ(st.peer_dropped, 0);
    ASSERT_EQ(rill_worker_stop(w), 0);
    rill_worker_destroy(w);
    ASSERT_EQ(views, 0);
    close(cfd);
    close(sinks[0].fd);
    close(sinks[1].fd);
    close(lfd);
    return 0;
}

static const t_case_t cases[] = {
    {"features", features},
    {"cluster_calls", cluster_calls},
    {"plain_worker", plain_worker},
    {NULL, NULL},
};

int main(int argc, char **argv)
{
    t_require_io_uring("cluster_none_test");
    signal(SIGPIPE, SIG_IGN);
    return t_run("cluster_none_test", cases, argc, argv);
}
