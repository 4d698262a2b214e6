/* net_listen_test: listening sockets (core/net/listen.c, bound by rill_worker_new) with real
 * sockets and real io_uring: a port that a worker listens on cannot be bound by a second
 * worker, even of the same process (no SO_REUSEPORT group to join); the loops all accept
 * from the one socket of a listener; a worker restarts on its port while the previous
 * one's connections are in TIME_WAIT (SO_REUSEADDR). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "integration/tcp_util.h"
#include "loop/loop.h"
#include "rill/rill.h"
#include "util/stat.h"
#include "worker_internal.h"

#define SHORT_MS 20000 /* failure bound */
#define NCONN 16

/* A worker with `threads` loops and one v1 listener on addr. Returns 0 or the failing
 * call's code; *w is NULL on failure. */
static int worker_on(rill_worker_t **w, unsigned threads, const char *addr)
{
    *w = NULL;
    rill_config_t *cfg = rill_config_new();
    if (!cfg)
        return RILL_ENOMEM;
    int rc = rill_config_set_threads(cfg, threads);
    if (rc == 0)
        rc = rill_config_add_listener(cfg, addr, RILL_FRAMING_RILL, 0, 0, 0);
    if (rc == 0)
        rc = rill_worker_new(w, cfg);
    rill_config_destroy(cfg);
    return rc;
}

static unsigned accepted_by(rill_worker_t *w, unsigned loop)
{
    return (unsigned)RILL_STAT_GET(w->loops[loop]->stats.conns_accepted);
}

/* ------------------------------------------------------------ a port in use */

static int port_in_use(void)
{
    rill_worker_t *w1, *w2;
    ASSERT_EQ(worker_on(&w1, 2, "127.0.0.1:0"), 0);
    int port = rill_worker_listener_port(w1, 0);
    ASSERT_GT(port, 0);
    ASSERT_EQ(rill_worker_start(w1), 0);

    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    for (unsigned threads = 1; threads <= 2; threads++) {
        int rc = worker_on(&w2, threads, addr);
        if (rc == 0)
            rill_worker_destroy(w2);
        ASSERT_EQ(rc, -EADDRINUSE);
    }
    /* Also on the wildcard address, which overlaps 127.0.0.1. */
    snprintf(addr, sizeof addr, "0.0.0.0:%d", port);
    int rc = worker_on(&w2, 1, addr);
    if (rc == 0)
        rill_worker_destroy(w2);
    ASSERT_EQ(rc, -EADDRINUSE);

    /* The first worker still gets every connection. */
    int fds[NCONN];
    for (unsigned i = 0; i < NCONN; i++)
        ASSERT_GE(fds[i] = tu_connect((uint16_t)port, SHORT_MS), 0);
    uint64_t got = 0;
    ASSERT_EQ(tu_wait_stat_eq(w1, TU_STAT(conns_accepted), NCONN, SHORT_MS, &got), 0);
    for (unsigned i = 0; i < NCONN; i++)
        close(fds[i]);
    rill_worker_destroy(w1);
    return 0;
}

/* ------------------------------------------------------------ every loop accepts */

/* Connections made one at a time (each after the previous one was accepted) reach every
 * loop: each loop's accept waits on the listener's one socket, and a loop whose accept
 * completed queues behind the others. The loops start on their own threads, so the first
 * connections may all go to a loop that was armed first; the bound is generous. */
static int every_loop_accepts(void)
{
    rill_worker_t *w;
    ASSERT_EQ(worker_on(&w, 2, "127.0.0.1:0"), 0);
    int port = rill_worker_listener_port(w, 0);
    ASSERT_GT(port, 0);
    ASSERT_EQ(rill_worker_start(w), 0);

    unsigned n = 0;
    int64_t end = tu_now_ms() + SHORT_MS;
    while ((accepted_by(w, 0) == 0 || accepted_by(w, 1) == 0) && n < 1000 && tu_now_ms() < end) {
        int fd = tu_connect((uint16_t)port, SHORT_MS);
        ASSERT_GE(fd, 0);
        n++;
        uint64_t got = 0;
        int rc = tu_wait_stat_eq(w, TU_STAT(conns_accepted), n, SHORT_MS, &got);
        close(fd);
        ASSERT_EQ(rc, 0);
    }
    fprintf(stderr, "  %u connections: loop 0 accepted %u, loop 1 accepted %u\n", n,
            accepted_by(w, 0), accepted_by(w, 1));
    ASSERT_GE(accepted_by(w, 0), 1);
    ASSERT_GE(accepted_by(w, 1), 1);

    /* From now on they take turns. */
    unsigned a0 = accepted_by(w, 0), a1 = accepted_by(w, 1);
    for (unsigned i = 0; i < NCONN; i++) {
        int fd = tu_connect((uint16_t)port, SHORT_MS);
        ASSERT_GE(fd, 0);
        n++;
        uint64_t got = 0;
        int rc = tu_wait_stat_eq(w, TU_STAT(conns_accepted), n, SHORT_MS, &got);
        close(fd);
        ASSERT_EQ(rc, 0);
    }
    fprintf(stderr, "  then %u more: loop 0 accepted %u, loop 1 accepted %u\n", NCONN,
            accepted_by(w, 0) - a0, accepted_by(w, 1) - a1);
    ASSERT_GE(accepted_by(w, 0) - a0, 1);
    ASSERT_GE(accepted_by(w, 1) - a1, 1);
    rill_worker_destroy(w);
    return 0;
}

/* A burst of connects kept open is shared between the loops: a loop more than one
 * connection ahead of the other leaves the next ones to it (conn.c accept_turn). Without
 * that, the loop that happens to run takes a whole burst (64 / 0 seen here). */
#define BURST 64
static int burst_balanced(void)
{
    rill_worker_t *w;
    ASSERT_EQ(worker_on(&w, 2, "127.0.0.1:0"), 0);
    int port = rill_worker_listener_port(w, 0);
    ASSERT_GT(port, 0);
    ASSERT_EQ(rill_worker_start(w), 0);
    int fds[BURST];
    for (int i = 0; i < BURST; i++) {
        fds[i] = tu_connect((uint16_t)port, SHORT_MS);
        ASSERT_GE(fds[i], 0);
    }
    uint64_t got = 0;
    ASSERT_EQ(tu_wait_stat_eq(w, TU_STAT(conns_open), BURST, SHORT_MS, &got), 0);
    unsigned a0 = accepted_by(w, 0), a1 = accepted_by(w, 1);
    fprintf(stderr, "  a burst of %d connections: loop 0 accepted %u, loop 1 accepted %u\n", BURST,
            a0, a1);
    /* Both loops count concurrently, so a few more than one apart can happen; a burst
     * landing on one loop cannot. */
    ASSERT_LE(a0 > a1 ? a0 - a1 : a1 - a0, 8);
    for (int i = 0; i < BURST; i++)
        close(fds[i]);
    rill_worker_destroy(w);
    return 0;
}

/* ------------------------------------------------------------ restart in TIME_WAIT */

/* Sockets on 127.0.0.1:port in TIME_WAIT (state 06), from /proc/net/tcp; -1 without it. */
static int time_wait_on(int port)
{
    FILE *f = fopen("/proc/net/tcp", "r");
    if (!f)
        return -1;
    char line[256];
    int n = 0;
    unsigned lport, st;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, " %*d: %*8X:%4X %*8X:%*4X %2X", &lport, &st) == 2 && (int)lport == port &&
            st == 0x06)
            n++;
    fclose(f);
    return n;
}

static int restart_in_time_wait(void)
{
    rill_worker_t *w;
    ASSERT_EQ(worker_on(&w, 2, "127.0.0.1:0"), 0);
    int port = rill_worker_listener_port(w, 0);
    ASSERT_GT(port, 0);
    ASSERT_EQ(rill_worker_start(w), 0);
    int fds[4];
    for (unsigned i = 0; i < 4; i++)
        ASSERT_GE(fds[i] = tu_connect((uint16_t)port, SHORT_MS), 0);
    uint64_t got = 0;
    ASSERT_EQ(tu_wait_stat_eq(w, TU_STAT(conns_accepted), 4, SHORT_MS, &got), 0);
    /* The worker closes first, so its side of each connection ends in TIME_WAIT. */
    ASSERT_EQ(rill_worker_stop(w), 0);
    for (unsigned i = 0; i < 4; i++) {
        ASSERT_TRUE(tu_closed_rc(tu_wait_peer_closed(fds[i], SHORT_MS)));
        close(fds[i]);
    }
    rill_worker_destroy(w);
    int tw = -1;
    for (int64_t end = tu_now_ms() + SHORT_MS; tu_now_ms() < end; tu_sleep_ms(10))
        if ((tw = time_wait_on(port)) != 0)
            break;
    if (tw < 0)
        T_SKIP("/proc/net/tcp is not readable");
    ASSERT_GE(tw, 1);

    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    ASSERT_EQ(worker_on(&w, 2, addr), 0);
    ASSERT_EQ(rill_worker_listener_port(w, 0), port);
    ASSERT_EQ(rill_worker_start(w), 0);
    int fd = tu_connect((uint16_t)port, SHORT_MS);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(tu_wait_stat_eq(w, TU_STAT(conns_accepted), 1, SHORT_MS, &got), 0);
    close(fd);
    rill_worker_destroy(w);
    return 0;
}

static const t_case_t cases[] = {
    {"port_in_use", port_in_use},
    {"every_loop_accepts", every_loop_accepts},
    {"burst_balanced", burst_balanced},
    {"restart_in_time_wait", restart_in_time_wait},
    {NULL, NULL},
};

int main(int argc, char **argv)
{
    t_require_io_uring("net_listen_test");
    tu_ignore_sigpipe();
    return t_run("net_listen_test", cases, argc, argv);
}
