/* cluster_clock_test: the cluster's condition waits (core/cluster/cluster.c) measure time on
 * CLOCK_MONOTONIC, so a step of the wall clock neither stretches rill_worker_view_wait (the
 * Go binding's membership feeder waits there) nor keeps the cluster thread from noticing a
 * stop. A real worker, a real ZooKeeper server (zk_util), real sockets.
 *
 * The wall clock is not stepped for real: that needs CAP_SYS_TIME and moves the clock of
 * every process on the machine (other tests' timeouts, build timestamps, the ZooKeeper
 * server). Instead this executable defines clock_gettime() itself, so every call in this
 * process (rill's, linked statically, and the ZooKeeper client's) reads CLOCK_REALTIME an
 * hour ahead while a case says so; the kernel's own clock is untouched. To code that takes
 * a CLOCK_REALTIME deadline for a timed wait, that is exactly a step back by an hour
 * between reading the clock and waiting: the wait would last an hour. Other clocks pass
 * through unchanged. Exits 77 when java or ZooKeeper's server jar is missing. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "integration/tcp_util.h"
#include "integration/zk_util.h"
#include "rill/rill.h"

#define SKEW_NS (3600ll * 1000000000ll) /* the wall clock reads this much ahead */
#define VIEW_MS 20000                   /* failure bound for the first view */
#define BOUND_MS 10000                  /* failure bound for a wait that should take 300 ms */
#define WAIT_MS 300

/* libzookeeper_mt 3.8.0 leaks in zookeeper_close (ZOOKEEPER-2894); see cluster_test.c. */
__attribute__((visibility("default"))) const char *__lsan_default_suppressions(void);
__attribute__((visibility("default"))) const char *__lsan_default_suppressions(void)
{
    return "leak:libzookeeper_mt.so\n";
}

static atomic_llong g_skew_ns;
static _Thread_local unsigned t_clock_reads; /* calls on this thread, any clock */

int clock_gettime(clockid_t id, struct timespec *ts)
{
    t_clock_reads++;
    if (syscall(SYS_clock_gettime, id, ts) != 0)
        return -1;
    long long skew = atomic_load_explicit(&g_skew_ns, memory_order_relaxed);
    if (id == CLOCK_REALTIME && skew) {
        long long ns = (long long)ts->tv_sec * 1000000000ll + ts->tv_nsec + skew;
        ts->tv_sec = (time_t)(ns / 1000000000ll);
        ts->tv_nsec = (long)(ns % 1000000000ll);
    }
    return 0;
}

/* Steps the wall clock as this process sees it; the first call checks that it did. */
static int step_clock(long long skew_ns)
{
    atomic_store(&g_skew_ns, skew_ns);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    time_t kernel = time(NULL); /* the vDSO, not the clock_gettime above */
    long long off = (long long)(ts.tv_sec - kernel);
    return off >= skew_ns / 1000000000ll - 2 && off <= skew_ns / 1000000000ll + 2;
}

static zk_server_t g_zk;
static unsigned g_case_no;

/* A started worker, member of a cluster of its own, that has its first view. */
static int member_new(rill_worker_t **out, uint64_t *epoch)
{
    *out = NULL;
    char root[96];
    snprintf(root, sizeof root, "/rill/clock-%d-%u", (int)getpid(), ++g_case_no);
    rill_config_t *cfg = rill_config_new();
    if (!cfg)
        return RILL_ENOMEM;
    rill_worker_t *w = NULL;
    int rc = rill_config_add_listener(cfg, "127.0.0.1:0", RILL_FRAMING_RILL, 0, 0, 0);
    if (rc == 0)
        rc =
            rill_config_set_cluster(cfg, zk_server_connect_string(&g_zk), root, "a", "127.0.0.1:0");
    if (rc == 0)
        rc = rill_worker_new(&w, cfg);
    rill_config_destroy(cfg);
    if (rc == 0)
        rc = rill_worker_start(w);
    if (rc == 0 && rill_worker_view_wait(w, 0, VIEW_MS) != 1)
        rc = -ETIMEDOUT;
    rill_view_t *v = rc == 0 ? rill_worker_view(w) : NULL;
    if (rc == 0 && !v)
        rc = RILL_ENOMEM;
    if (rc < 0) {
        fprintf(stderr, "  member_new: %s\n", rill_strerror(rc));
        rill_worker_destroy(w);
        return rc;
    }
    *epoch = rill_view_epoch(v);
    rill_view_destroy(v);
    *out = w;
    return 0;
}

/* ------------------------------------------------------------ view_wait */

typedef struct waiter {
    rill_worker_t *w;
    uint64_t epoch;
    atomic_int started, done;
    int rc;
    int64_t ms;     /* how long the call took (CLOCK_MONOTONIC) */
    int64_t cpu_us; /* CPU time of the waiting thread during the call */
    unsigned reads; /* clock reads inside the call: rill's own go through clock_gettime() */
} waiter_t;

static int64_t thread_cpu_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void *waiter_main(void *arg)
{
    waiter_t *t = arg;
    atomic_store(&t->started, 1);
    int64_t t0 = tu_now_ms(), c0 = thread_cpu_us();
    unsigned r0 = t_clock_reads;
    t->rc = rill_worker_view_wait(t->w, t->epoch, WAIT_MS);
    t->reads = t_clock_reads - r0;
    t->cpu_us = thread_cpu_us() - c0;
    t->ms = tu_now_ms() - t0;
    atomic_store(&t->done, 1);
    return NULL;
}

/* A view_wait of 300 ms with the wall clock stepped back an hour while it waits returns
 * after about 300 ms, having slept (not spun) meanwhile. */
static int view_wait_step(void)
{
    static waiter_t t;
    memset(&t, 0, sizeof t);
    ASSERT_EQ(member_new(&t.w, &t.epoch), 0);
    pthread_t thr;
    ASSERT_EQ(pthread_create(&thr, NULL, waiter_main, &t), 0);
    while (!atomic_load(&t.started))
        tu_sleep_ms(1);
    tu_sleep_ms(100); /* a few polls into the wait */
    int stepped = step_clock(SKEW_NS);
    int64_t end = tu_now_ms() + BOUND_MS;
    while (!atomic_load(&t.done) && tu_now_ms() < end)
        tu_sleep_ms(5);
    step_clock(0); /* at once, whatever happened */
    int done = atomic_load(&t.done);
    if (!done)
        fprintf(stderr, "  rill_worker_view_wait(%d ms) still waiting after %d ms\n", WAIT_MS,
                BOUND_MS);
    /* A waiter stuck on the wall clock wakes up for the stop (rill_worker_wait signals). */
    ASSERT_EQ(rill_worker_stop(t.w), 0);
    pthread_join(thr, NULL);
    rill_worker_destroy(t.w);
    ASSERT_TRUE(stepped);
    ASSERT_TRUE(done);
    fprintf(stderr, "  returned %d after %lld ms, %lld us of CPU, %u clock reads\n", t.rc,
            (long long)t.ms, (long long)t.cpu_us, t.reads);
    ASSERT_GT(t.reads, 0); /* else the stepped clock never reached rill and proves nothing */
    ASSERT_EQ(t.rc, 0);    /* timed out: no view change */
    ASSERT_GE(t.ms, WAIT_MS - 10);
    ASSERT_LT(t.ms, BOUND_MS);
    /* Waits whose deadline and clock disagree return at once: the call would spin. */
    ASSERT_LT(t.cpu_us, 50000);
    return 0;
}

/* ------------------------------------------------------------ stop */

/* With the wall clock stepped back an hour, a stop still makes the cluster thread leave at
 * once: the loops wait for that leave, and only without it do they go on after the 5 s
 * drain deadline. Stopping takes the 300 ms leave grace plus the leave itself. */
static int stop_step(void)
{
    rill_worker_t *w;
    uint64_t epoch;
    ASSERT_EQ(member_new(&w, &epoch), 0);
    int stepped = step_clock(SKEW_NS);
    tu_sleep_ms(200); /* the cluster thread's next polls start under the stepped clock */
    int64_t t0 = tu_now_ms();
    int rc = rill_worker_stop(w);
    int64_t ms = tu_now_ms() - t0;
    step_clock(0);
    rill_worker_destroy(w);
    ASSERT_TRUE(stepped);
    ASSERT_EQ(rc, 0);
    fprintf(stderr, "  rill_worker_stop took %lld ms\n", (long long)ms);
    ASSERT_LT(ms, 4000);
    return 0;
}

int main(int argc, char **argv)
{
    t_require_io_uring("cluster_clock_test");
    char why[256];
    if (!zk_available(why, sizeof why)) {
        printf("cluster_clock_test: SKIP: %s\n", why);
        return T_EXIT_SKIP;
    }
    tu_ignore_sigpipe();
    int rc = zk_server_start(&g_zk, NULL);
    if (rc < 0) {
        printf("cluster_clock_test: cannot start a ZooKeeper server: %s\n", strerror(-rc));
        return 1;
    }
    static const t_case_t cases[] = {
        {"view_wait_step", view_wait_step},
        {"stop_step", stop_step},
        {NULL, NULL},
    };
    rc = t_run("cluster_clock", cases, argc, argv);
    zk_server_destroy(&g_zk);
    return rc;
}
