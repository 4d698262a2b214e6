/* accept_spread: how connections to one listener spread over loop threads.
 *
 * Four layouts, measured in one run on the same kernel:
 *   worker        a real rill worker with L loops (w->loops[i]->stats.conns_accepted), in
 *                 whatever listening-socket layout the linked library has;
 *   shared        L threads, each with its own io_uring set up like a loop's
 *                 (SINGLE_ISSUER | DEFER_TASKRUN, falling back), all arming a multishot
 *                 accept on ONE listening socket (no SO_REUSEPORT);
 *   shared-1shot  the same with a single-shot accept, armed again after each completion
 *                 (rill's layout since the listener became one socket);
 *   reuseport     the same threads with multishot accepts, each on its own SO_REUSEPORT
 *                 socket of the port (rill's earlier layout).
 *
 * Each round opens N client connections from one thread, either in a burst (back to back)
 * or paced (the next one only after the previous one was accepted), and counts what each
 * loop or thread accepted. The figures depend on the kernel and the machine's load: this
 * is a measurement, not a pass mark.
 *
 *   accept-spread [--loops L] [--conns N] [--rounds R] [--mode burst|paced] */
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "loop/loop.h"
#include "rill/rill.h"
#include "util/stat.h"
#include "worker_internal.h"

#define MAX_LOOPS 8
#define MAX_CONNS 4096
#define WAIT_NS (10ull * 1000000000ull) /* failure bound for one round */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_us(unsigned us)
{
    struct timespec ts = {0, (long)us * 1000};
    nanosleep(&ts, NULL);
}

static int listen_on(uint16_t port, int reuseport)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) ||
        bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 4096) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

static int port_of(int fd)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    if (getsockname(fd, (struct sockaddr *)&a, &len) < 0)
        return -errno;
    return ntohs(a.sin_port);
}

static int connect_to(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

/* ------------------------------------------------------------ accepting threads */

typedef struct acceptor {
    pthread_t thr;
    int lfd;
    atomic_uint accepted;
    atomic_int armed;
    atomic_int *stop;
    int oneshot; /* io_uring_prep_accept, armed again after each completion */
    int err;
} acceptor_t;

static void *acceptor_main(void *arg)
{
    acceptor_t *a = arg;
    static const unsigned flag_sets[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL,
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL,
        0,
    };
    struct io_uring ring;
    int rc = -EINVAL;
    for (size_t i = 0; i < sizeof flag_sets / sizeof flag_sets[0] && rc == -EINVAL; i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof p);
        p.flags = flag_sets[i];
        rc = io_uring_queue_init_params(64, &ring, &p);
    }
    if (rc < 0) {
        a->err = rc;
        atomic_store(&a->armed, 1);
        return NULL;
    }
    int *fds = calloc(MAX_CONNS, sizeof *fds);
    unsigned nfds = 0;
    int arm = 1;
    while (!atomic_load(a->stop)) {
        if (arm) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
            if (a->oneshot)
                io_uring_prep_accept(sqe, a->lfd, NULL, NULL, SOCK_CLOEXEC);
            else
                io_uring_prep_multishot_accept(sqe, a->lfd, NULL, NULL, SOCK_CLOEXEC);
            arm = 0;
        }
        struct __kernel_timespec ts = {0, 10 * 1000000};
        struct io_uring_cqe *cqe;
        io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &ts, NULL);
        atomic_store(&a->armed, 1); /* the first submit armed the accept */
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&ring, head, cqe)
        {
            if (cqe->res >= 0) {
                if (fds && nfds < MAX_CONNS)
                    fds[nfds++] = cqe->res;
                else
                    close(cqe->res);
                atomic_fetch_add(&a->accepted, 1);
            }
            if (!(cqe->flags & IORING_CQE_F_MORE))
                arm = 1;
            seen++;
        }
        io_uring_cq_advance(&ring, seen);
    }
    io_uring_queue_exit(&ring);
    for (unsigned i = 0; i < nfds; i++)
        close(fds[i]);
    free(fds);
    return NULL;
}

/* ------------------------------------------------------------ one round */

typedef unsigned (*total_fn)(void *ctx);

/* Opens n connections to port; returns 0 once total(ctx) reached n, or -errno / -ETIMEDOUT. */
static int drive(uint16_t port, unsigned n, int paced, total_fn total, void *ctx, int *cfds)
{
    uint64_t deadline = now_ns() + WAIT_NS;
    for (unsigned i = 0; i < n; i++) {
        if ((cfds[i] = connect_to(port)) < 0)
            return cfds[i];
        while (paced && total(ctx) < i + 1)
            if (now_ns() > deadline)
                return -ETIMEDOUT;
            else
                sleep_us(50);
    }
    while (total(ctx) < n)
        if (now_ns() > deadline)
            return -ETIMEDOUT;
        else
            sleep_us(100);
    return 0;
}

typedef struct threads_ctx {
    acceptor_t a[MAX_LOOPS];
    unsigned n;
} threads_ctx_t;

static unsigned threads_total(void *p)
{
    threads_ctx_t *t = p;
    unsigned s = 0;
    for (unsigned i = 0; i < t->n; i++)
        s += atomic_load(&t->a[i].accepted);
    return s;
}

static int round_threads(unsigned loops, unsigned n, int paced, int reuseport, int oneshot,
                         unsigned *out)
{
    static threads_ctx_t t;
    static int cfds[MAX_CONNS];
    memset(&t, 0, sizeof t);
    t.n = loops;
    atomic_int stop = 0;
    int rc = listen_on(0, reuseport);
    if (rc < 0)
        return rc;
    int first = rc;
    uint16_t port = (uint16_t)port_of(first);
    for (unsigned i = 0; i < loops; i++) {
        t.a[i].lfd = i == 0 || !reuseport ? first : listen_on(port, 1);
        if (t.a[i].lfd < 0)
            return t.a[i].lfd;
        t.a[i].stop = &stop;
        t.a[i].oneshot = oneshot;
        pthread_create(&t.a[i].thr, NULL, acceptor_main, &t.a[i]);
    }
    for (unsigned i = 0; i < loops; i++)
        while (!atomic_load(&t.a[i].armed))
            sleep_us(100);
    for (unsigned i = 0; i < loops; i++)
        if (t.a[i].err)
            rc = t.a[i].err;
    for (unsigned i = 0; i < n; i++)
        cfds[i] = -1;
    if (rc >= 0)
        rc = drive(port, n, paced, threads_total, &t, cfds);
    atomic_store(&stop, 1);
    for (unsigned i = 0; i < loops; i++) {
        pthread_join(t.a[i].thr, NULL);
        out[i] = atomic_load(&t.a[i].accepted);
        if (reuseport && i > 0)
            close(t.a[i].lfd);
    }
    close(first);
    for (unsigned i = 0; i < n; i++)
        if (cfds[i] >= 0)
            close(cfds[i]);
    return rc < 0 ? rc : 0;
}

static unsigned worker_total(void *p)
{
    rill_stats_t st;
    if (rill_worker_stats(p, &st, sizeof st) < 0)
        return 0;
    return (unsigned)st.conns_accepted;
}

static int round_worker(unsigned loops, unsigned n, int paced, unsigned *out)
{
    static int cfds[MAX_CONNS];
    rill_config_t *cfg = rill_config_new();
    if (!cfg)
        return RILL_ENOMEM;
    rill_worker_t *w = NULL;
    int rc = rill_config_set_threads(cfg, loops);
    if (rc == 0)
        rc = rill_config_add_listener(cfg, "127.0.0.1:0", RILL_FRAMING_RILL, 0, 0, 0);
    if (rc == 0)
        rc = rill_worker_new(&w, cfg);
    rill_config_destroy(cfg);
    if (rc < 0)
        return rc;
    if ((rc = rill_worker_start(w)) < 0) {
        rill_worker_destroy(w);
        return rc;
    }
    /* Loops arm their accepts when they start running: give them that moment. */
    sleep_us(200 * 1000);
    for (unsigned i = 0; i < n; i++)
        cfds[i] = -1;
    rc = drive((uint16_t)rill_worker_listener_port(w, 0), n, paced, worker_total, w, cfds);
    for (unsigned i = 0; i < loops; i++)
        out[i] = (unsigned)RILL_STAT_GET(w->loops[i]->stats.conns_accepted);
    for (unsigned i = 0; i < n; i++)
        if (cfds[i] >= 0)
            close(cfds[i]);
    rill_worker_destroy(w);
    return rc;
}

/* ------------------------------------------------------------ main */

static void usage(void)
{
    fprintf(stderr, "usage: accept-spread [--loops L (2)] [--conns N (64)] [--rounds R (10)] "
                    "[--mode burst|paced (burst)]\n");
}

int main(int argc, char **argv)
{
    unsigned loops = 2, conns = 64, rounds = 10;
    int paced = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--loops") && v)
            loops = (unsigned)strtoul(v, NULL, 10), i++;
        else if (!strcmp(a, "--conns") && v)
            conns = (unsigned)strtoul(v, NULL, 10), i++;
        else if (!strcmp(a, "--rounds") && v)
            rounds = (unsigned)strtoul(v, NULL, 10), i++;
        else if (!strcmp(a, "--mode") && v && (!strcmp(v, "burst") || !strcmp(v, "paced")))
            paced = !strcmp(v, "paced"), i++;
        else {
            usage();
            return 2;
        }
    }
    if (loops < 1 || loops > MAX_LOOPS || conns < 1 || conns > MAX_CONNS || rounds < 1) {
        usage();
        return 2;
    }
    enum { WORKER, SHARED, SHARED_1SHOT, REUSEPORT, NLAYOUTS };
    static const char *names[] = {"worker", "shared", "shared-1shot", "reuseport"};
    unsigned sum[NLAYOUTS][MAX_LOOPS] = {{0}};
    printf("%u loops, %u connections per round, %s, %u rounds\n", loops, conns,
           paced ? "paced" : "burst", rounds);
    for (unsigned r = 0; r < rounds; r++) {
        for (int k = 0; k < NLAYOUTS; k++) {
            unsigned got[MAX_LOOPS] = {0};
            int rc = k == WORKER ? round_worker(loops, conns, paced, got)
                                 : round_threads(loops, conns, paced, k == REUSEPORT,
                                                 k == SHARED_1SHOT, got);
            if (rc < 0) {
                fprintf(stderr, "accept_spread: %s round %u: %s\n", names[k], r + 1,
                        rill_strerror(rc));
                return 1;
            }
            printf("round %2u %-12s", r + 1, names[k]);
            for (unsigned i = 0; i < loops; i++) {
                printf(" %4u", got[i]);
                sum[k][i] += got[i];
            }
            printf("\n");
        }
    }
    printf("total (%% of %u):\n", conns * rounds);
    for (int k = 0; k < NLAYOUTS; k++) {
        printf("  %-12s", names[k]);
        for (unsigned i = 0; i < loops; i++)
            printf(" %5u (%3.0f%%)", sum[k][i], 100.0 * sum[k][i] / (conns * rounds));
        printf("\n");
    }
    return 0;
}
