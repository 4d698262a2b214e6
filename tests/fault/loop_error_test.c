/* Loop failures reach the caller (core/worker.c): a kernel or container that forbids
 * io_uring is simulated for real with a seccomp filter that makes io_uring_setup fail
 * with EPERM on the filtered thread and the threads it creates afterwards.
 *   - rill_worker_start returns -EPERM (not 0 plus a log line) and leaves no thread;
 *   - rill_worker_run returns -EPERM, and rill_worker_wait returns the first loop error
 *     while the worker's other loop, run on an unfiltered thread, drains and exits. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "harness.h"
#include "rill/rill.h"

/* Makes io_uring_setup fail with EPERM on this thread and its future threads. */
static int forbid_io_uring(void)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {(unsigned short)(sizeof f / sizeof f[0]), f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return -errno;
    /* SECCOMP_SET_MODE_FILTER without TSYNC: this thread only (and threads it creates). */
    if (syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
        return -errno;
    return 0;
}

static int threads_now(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* A client connection to 127.0.0.1:port, or -1. */
static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || port <= 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static rill_worker_t *new_worker(unsigned threads)
{
    rill_config_t *cfg = rill_config_new();
    if (!cfg)
        return NULL;
    rill_worker_t *w = NULL;
    if (rill_config_set_threads(cfg, threads) < 0 ||
        rill_config_add_listener(cfg, "127.0.0.1:0", RILL_FRAMING_RILL, 0, 0, 0) < 0 ||
        rill_worker_new(&w, cfg) < 0)
        w = NULL;
    rill_config_destroy(cfg);
    return w;
}

/* ------------------------------------------------------------ start */

typedef struct start_result {
    int filter, start, wait, threads_before, threads_after;
} start_result_t;

static void *start_filtered(void *p)
{
    start_result_t *r = p;
    r->filter = forbid_io_uring();
    if (r->filter < 0)
        return NULL;
    rill_worker_t *w = new_worker(2);
    if (!w) {
        r->start = RILL_ENOMEM;
        return NULL;
    }
    r->threads_before = threads_now();
    r->start = rill_worker_start(w);
    r->threads_after = threads_now();
    r->wait = rill_worker_wait(w);
    rill_worker_destroy(w);
    return NULL;
}

static int test_start_reports_ring_error(void)
{
    start_result_t r = {0};
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, start_filtered, &r), 0);
    pthread_join(t, NULL);
    if (r.filter < 0)
        T_SKIP("cannot install a seccomp filter: %s", strerror(-r.filter));
    fprintf(stderr, "  start: %s, wait: %s, threads %d -> %d\n", rill_err_name(r.start),
            rill_err_name(r.wait), r.threads_before, r.threads_after);
    ASSERT_EQ(r.start, -EPERM);
    ASSERT_EQ(r.threads_after, r.threads_before); /* no loop thread left running */
    ASSERT_EQ(r.wait, -EPERM);
    return 0;
}

/* ------------------------------------------------------------ run + wait */

typedef struct run_arg {
    rill_worker_t *w;
    unsigned loop;
    int filtered;
    int filter, rc;
} run_arg_t;

static void *run_loop(void *p)
{
    run_arg_t *a = p;
    if (a->filtered && (a->filter = forbid_io_uring()) < 0) {
        rill_worker_shutdown(a->w); /* let the other loop go */
        return NULL;
    }
    a->rc = rill_worker_run(a->w, a->loop);
    return NULL;
}

static int test_wait_returns_loop_error(void)
{
    rill_worker_t *w = new_worker(2);
    ASSERT_TRUE(w != NULL);
    run_arg_t good = {w, 0, 0, 0, 1}, bad = {w, 1, 1, 0, 1};
    pthread_t tg, tb;
    ASSERT_EQ(pthread_create(&tg, NULL, run_loop, &good), 0);
    /* Loop 0 must be inside rill_worker_run before loop 1 fails: a loop nobody has
     * entered yet is retired by the shutdown that failure causes (then run says
     * RILL_ESTATE). It runs once it has accepted a connection. */
    int fd = connect_to(rill_worker_listener_port(w, 0));
    ASSERT_GE(fd, 0);
    rill_stats_t st;
    for (int i = 0; i < 3000; i++) {
        ASSERT_EQ(rill_worker_stats(w, &st, sizeof st), 0);
        if (st.conns_accepted)
            break;
        usleep(10000);
    }
    ASSERT_EQ(st.conns_accepted, 1);
    ASSERT_EQ(pthread_create(&tb, NULL, run_loop, &bad), 0);
    pthread_join(tb, NULL);
    int wait_rc = rill_worker_wait(w); /* returns once loop 0 has drained too */
    pthread_join(tg, NULL);
    close(fd);
    rill_worker_destroy(w);
    if (bad.filter < 0)
        T_SKIP("cannot install a seccomp filter: %s", strerror(-bad.filter));
    fprintf(stderr, "  run(0): %s, run(1): %s, wait: %s\n", rill_err_name(good.rc),
            rill_err_name(bad.rc), rill_err_name(wait_rc));
    ASSERT_EQ(bad.rc, -EPERM);
    ASSERT_EQ(good.rc, 0); /* the healthy loop drained cleanly */
    ASSERT_EQ(wait_rc, -EPERM);
    return 0;
}

int main(int argc, char **argv)
{
    /* The cases forbid io_uring on some threads and need it on the others. */
    t_require_io_uring("loop_error");
    static const t_case_t cases[] = {
        {"start_reports_ring_error", test_start_reports_ring_error},
        {"wait_returns_loop_error", test_wait_returns_loop_error},
        {NULL, NULL},
    };
    return t_run("loop_error", cases, argc, argv);
}
