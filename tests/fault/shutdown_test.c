/* SIGTERM under load, for the rill-worker process (path in argv[1], from ctest): the
 * worker runs with a sink (tu_sink), 4 connections send as fast as they can, and SIGTERM
 * arrives mid-stream. The worker must exit 0, and every frame it accepted (in= of its
 * final stats line) must reach the sink exactly once, in order per connection, with
 * nothing dropped. Frames still in the kernel's socket buffers at the signal are not
 * "accepted" (rill_worker_shutdown documents that they are not read). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "integration/tcp_util.h"

#define NCONN 4
#define MAGIC 0x53485554u

static const char *g_worker;

/* ------------------------------------------------------------ checker (sink thread) */

typedef struct pay {
    uint32_t magic, conn, seq, pad;
} pay_t;

typedef struct checker {
    uint32_t next[NCONN];
    uint64_t good, bad;
} checker_t;

static void on_frame(void *arg, unsigned sc, uint32_t comp, uint64_t key, const uint8_t *p,
                     uint32_t len)
{
    (void)sc;
    checker_t *c = arg;
    pay_t s;
    if (comp != 1 || len != sizeof s) {
        c->bad++;
        return;
    }
    memcpy(&s, p, sizeof s);
    if (s.magic != MAGIC || s.conn >= NCONN || key != s.conn || s.seq != c->next[s.conn]) {
        if (c->bad++ < 5)
            fprintf(stderr, "  sink: unexpected frame conn %u seq %u\n", s.conn, s.seq);
        return;
    }
    c->next[s.conn]++;
    c->good++;
}

/* ------------------------------------------------------------ the worker's stderr */

typedef struct out {
    int fd;
    pthread_t thr;
    pthread_mutex_t mu;
    char buf[1 << 20];
    size_t len;
} out_t;

static void *out_thread(void *arg)
{
    out_t *o = arg;
    char tmp[4096];
    for (;;) {
        ssize_t k = read(o->fd, tmp, sizeof tmp);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        pthread_mutex_lock(&o->mu);
        size_t room = sizeof o->buf - 1 - o->len;
        if ((size_t)k > room) { /* keep the tail: the final line matters */
            size_t drop = (size_t)k - room;
            if (drop > o->len)
                drop = o->len;
            memmove(o->buf, o->buf + drop, o->len - drop);
            o->len -= drop;
            room += drop;
        }
        memcpy(o->buf + o->len, tmp, (size_t)k < room ? (size_t)k : room);
        o->len += (size_t)k < room ? (size_t)k : room;
        o->buf[o->len] = '\0';
        pthread_mutex_unlock(&o->mu);
    }
    return NULL;
}

/* Copies the last line that contains `what` (NUL-terminated) into line. */
static int out_find(out_t *o, const char *what, char *line, size_t size)
{
    int found = 0;
    pthread_mutex_lock(&o->mu);
    const char *p = o->buf, *hit = NULL;
    while ((p = strstr(p, what)) != NULL)
        hit = p++;
    if (hit) {
        const char *b = hit;
        while (b > o->buf && b[-1] != '\n')
            b--;
        const char *e = strchr(hit, '\n');
        if (e) {
            size_t n = (size_t)(e - b) < size - 1 ? (size_t)(e - b) : size - 1;
            memcpy(line, b, n);
            line[n] = '\0';
            found = 1;
        }
    }
    pthread_mutex_unlock(&o->mu);
    return found;
}

static int field(const char *line, const char *name, unsigned long long *v)
{
    char key[32];
    snprintf(key, sizeof key, " %s=", name);
    const char *p = strstr(line, key);
    return p && sscanf(p + strlen(key), "%llu", v) == 1 ? 0 : -1;
}

/* ------------------------------------------------------------ senders */

typedef struct sender {
    pthread_t thr;
    int fd;
    uint32_t conn;
    atomic_int stop;
    atomic_ullong sent;
} sender_t;

static void *sender_thread(void *arg)
{
    sender_t *s = arg;
    enum { BATCH = 256 };
    uint8_t buf[BATCH * (TU_HDR + sizeof(pay_t))];
    uint32_t seq = 0;
    while (!atomic_load(&s->stop)) {
        size_t len = 0;
        for (int i = 0; i < BATCH; i++, seq++) {
            pay_t p = {MAGIC, s->conn, seq, 0};
            len += tu_frame_encode(buf + len, 1, s->conn, &p, sizeof p);
        }
        if (tu_write_all(s->fd, buf, len) < 0)
            break; /* the worker closed the connection: expected after SIGTERM */
        atomic_store(&s->sent, seq);
    }
    return NULL;
}

static int test_sigterm_under_load(void)
{
    if (!g_worker || access(g_worker, X_OK) != 0)
        T_SKIP("no rill-worker path given (argv[1])");
    tu_ignore_sigpipe();
    checker_t chk;
    memset(&chk, 0, sizeof chk);
    tu_sink_t *sink;
    ASSERT_EQ(tu_sink_new(&sink, on_frame, &chk), 0);

    int pfd[2];
    ASSERT_EQ(pipe2(pfd, O_CLOEXEC), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        dup2(pfd[1], 2);
        dup2(pfd[1], 1);
        execl(g_worker, g_worker, "--listen", "127.0.0.1:0", "--sink", tu_sink_addr(sink),
              "--threads", "2", (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    static out_t out;
    out.fd = pfd[0];
    pthread_mutex_init(&out.mu, NULL);
    pthread_create(&out.thr, NULL, out_thread, &out);

    char line[1024];
    int64_t end = tu_now_ms() + 20000;
    while (!out_find(&out, "rill-worker: ready", line, sizeof line) && tu_now_ms() < end)
        tu_sleep_ms(20);
    unsigned port = 0;
    if (!out_find(&out, "listening on 127.0.0.1:", line, sizeof line) ||
        sscanf(strstr(line, "127.0.0.1:") + 10, "%u", &port) != 1 || port == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        T_FAIL_AT_("rill-worker did not become ready:\n%s", out.buf);
    }
    ASSERT_EQ(tu_sink_wait_accepted(sink, 2, 20000), 0);

    sender_t snd[NCONN];
    for (uint32_t i = 0; i < NCONN; i++) {
        memset(&snd[i], 0, sizeof snd[i]);
        snd[i].conn = i;
        snd[i].fd = tu_connect((uint16_t)port, 5000);
        ASSERT_GE(snd[i].fd, 0);
        pthread_create(&snd[i].thr, NULL, sender_thread, &snd[i]);
    }
    /* Mid-stream: traffic is flowing through to the sink. */
    ASSERT_EQ(tu_sink_wait_count(sink, 50000, 30000), 0);
    ASSERT_EQ(kill(pid, SIGTERM), 0);

    int status = 0;
    end = tu_now_ms() + 40000; /* the drain's own deadlines are 5 + 5 s */
    pid_t r;
    while ((r = waitpid(pid, &status, WNOHANG)) == 0 && tu_now_ms() < end)
        tu_sleep_ms(20);
    if (r == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    for (int i = 0; i < NCONN; i++) {
        atomic_store(&snd[i].stop, 1);
        shutdown(snd[i].fd, SHUT_RDWR); /* unblocks a writer if the worker did not close */
        pthread_join(snd[i].thr, NULL);
        close(snd[i].fd);
    }
    pthread_join(out.thr, NULL);
    close(pfd[0]);
    if (r == 0)
        T_FAIL_AT_("rill-worker still running 40 s after SIGTERM:\n%s", out.buf);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        T_FAIL_AT_("rill-worker exit status %d:\n%s", status, out.buf);

    unsigned long long in = 0, dropped = 1, outn = 0;
    if (!out_find(&out, "rill-worker: final", line, sizeof line) || field(line, "in", &in) < 0 ||
        field(line, "dropped", &dropped) < 0 || field(line, "out", &outn) < 0)
        T_FAIL_AT_("no final stats line:\n%s", out.buf);
    fprintf(stderr, "  %s\n", line);
    /* The worker closed its sink connections on exit: the sink has all there is. */
    ASSERT_EQ(tu_sink_wait_all_closed(sink, 2, 20000), 0);
    tu_sink_lock(sink);
    checker_t c = chk;
    tu_sink_unlock(sink);
    uint64_t sent = 0;
    for (int i = 0; i < NCONN; i++)
        sent += atomic_load(&snd[i].sent);
    fprintf(stderr, "  sent (written to sockets) >= %llu, accepted in=%llu, delivered %llu\n",
            (unsigned long long)sent, in, (unsigned long long)c.good);
    ASSERT_U64_EQ(c.bad, 0);
    ASSERT_U64_EQ(dropped, 0);
    ASSERT_U64_EQ(outn, in);
    ASSERT_U64_EQ(c.good, in);
    ASSERT_GE(in, 50000);
    tu_sink_destroy(sink);
    return 0;
}

int main(int argc, char **argv)
{
    t_require_io_uring("shutdown");
    g_worker = argc > 1 ? argv[1] : NULL;
    static const t_case_t cases[] = {
        {"sigterm_under_load", test_sigterm_under_load},
        {NULL, NULL},
    };
    char *args[] = {argv[0], argc > 2 ? argv[2] : NULL};
    return t_run("shutdown", cases, argc > 2 ? 2 : 1, args);
}
