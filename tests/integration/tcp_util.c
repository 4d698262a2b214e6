/* Helpers for integration tests; see tcp_util.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "tcp_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ bytes and frames */

void tu_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

void tu_put_be64(uint8_t *p, uint64_t v)
{
    tu_put_be32(p, (uint32_t)(v >> 32));
    tu_put_be32(p + 4, (uint32_t)v);
}

uint32_t tu_get_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

uint64_t tu_get_be64(const uint8_t *p)
{
    return ((uint64_t)tu_get_be32(p) << 32) | tu_get_be32(p + 4);
}

size_t tu_frame_encode(uint8_t *out, uint32_t comp, uint64_t key, const void *payload, uint32_t len)
{
    tu_put_be32(out, 12u + len);
    tu_put_be32(out + 4, comp);
    tu_put_be64(out + 8, key);
    if (len)
        memcpy(out + TU_HDR, payload, len);
    return TU_HDR + len;
}

static void buf_reserve(tu_buf_t *b, size_t extra)
{
    if (b->len + extra <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra)
        cap *= 2;
    uint8_t *p = realloc(b->data, cap);
    if (!p) {
        fprintf(stderr, "tu_buf: out of memory\n");
        abort();
    }
    b->data = p;
    b->cap = cap;
}

void tu_buf_frame(tu_buf_t *b, uint32_t comp, uint64_t key, const void *payload, uint32_t len)
{
    buf_reserve(b, TU_HDR + len);
    b->len += tu_frame_encode(b->data + b->len, comp, key, payload, len);
}

void tu_buf_append(tu_buf_t *b, const void *data, size_t len)
{
    buf_reserve(b, len);
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
}

void tu_buf_free(tu_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

uint64_t tu_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* ------------------------------------------------------------ time */

int64_t tu_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tu_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void deadline_ts(struct timespec *ts, int timeout_ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += timeout_ms / 1000;
    ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* ------------------------------------------------------------ client sockets */

void tu_ignore_sigpipe(void)
{
    signal(SIGPIPE, SIG_IGN);
}

int tu_connect(uint16_t port, int timeout_ms)
{
    int64_t end = tu_now_ms() + timeout_ms;
    for (;;) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return -errno;
        struct sockaddr_in sa;
        memset(&sa, 0, sizeof sa);
        sa.sin_family = AF_INET;
        sa.sin_port = htons(port);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
            return fd;
        int err = errno;
        close(fd);
        if ((err != ECONNREFUSED && err != EAGAIN && err != EINTR && err != ETIMEDOUT) ||
            tu_now_ms() >= end)
            return -err;
        tu_sleep_ms(20);
    }
}

int tu_set_nodelay(int fd)
{
    int one = 1;
    return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0 ? 0 : -errno;
}

int tu_write_all(int fd, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

int tu_read_exact(int fd, void *buf, size_t n, int timeout_ms)
{
    uint8_t *p = buf;
    int64_t end = tu_now_ms() + timeout_ms;
    while (n > 0) {
        int64_t left = end - tu_now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd pfd = {fd, POLLIN, 0};
        int r = poll(&pfd, 1, (int)left);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            return -ETIMEDOUT;
        ssize_t k = recv(fd, p, n, 0);
        if (k < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return -errno;
        }
        if (k == 0)
            return -EPIPE;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

int tu_wait_peer_closed(int fd, int timeout_ms)
{
    uint8_t junk[4096];
    int64_t end = tu_now_ms() + timeout_ms;
    for (;;) {
        int64_t left = end - tu_now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd pfd = {fd, POLLIN, 0};
        int r = poll(&pfd, 1, (int)left);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            return -ETIMEDOUT;
        ssize_t k = recv(fd, junk, sizeof junk, 0);
        if (k == 0)
            return 0;
        if (k < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return -errno;
        }
    }
}

int tu_closed_rc(int rc)
{
    return rc == 0 || rc == -ECONNRESET || rc == -EPIPE;
}

/* ------------------------------------------------------------ sink server */

typedef struct sink_conn {
    int fd;
    unsigned id;
    uint8_t *buf;
    size_t len, cap;
} sink_conn_t;

struct tu_sink {
    int lfd;
    int wake[2];
    uint16_t port;
    char addr[32];
    tu_frame_cb cb;
    void *arg;
    pthread_t thr;

    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC */
    size_t count;
    unsigned accepted, closed, bad, partial;
    tu_frame_t *frames;
    size_t nframes, capframes;

    sink_conn_t *conns; /* sink thread only */
    size_t nconns, capconns;
};

/* Largest length field the sink accepts: far above anything rill sends in tests. */
#define SINK_MAX_LEN (64u << 20)

static void sink_store(tu_sink_t *s, unsigned conn, uint32_t comp, uint64_t key,
                       const uint8_t *payload, uint32_t len)
{
    if (s->cb) {
        s->cb(s->arg, conn, comp, key, payload, len);
        return;
    }
    if (s->nframes == s->capframes) {
        size_t cap = s->capframes ? s->capframes * 2 : 1024;
        tu_frame_t *f = realloc(s->frames, cap * sizeof *f);
        if (!f)
            abort();
        s->frames = f;
        s->capframes = cap;
    }
    tu_frame_t *f = &s->frames[s->nframes++];
    f->conn = conn;
    f->comp_id = comp;
    f->key = key;
    f->len = len;
    f->payload = NULL;
    if (len) {
        f->payload = malloc(len);
        if (!f->payload)
            abort();
        memcpy(f->payload, payload, len);
    }
}

/* Decodes every complete frame in c->buf. Returns 0, or -1 when the stream is bad. */
static int sink_decode(tu_sink_t *s, sink_conn_t *c)
{
    size_t pos = 0;
    int rc = 0, any = 0;
    pthread_mutex_lock(&s->mu);
    while (c->len - pos >= 4) {
        uint32_t flen = tu_get_be32(c->buf + pos);
        if (flen < 12 || flen > SINK_MAX_LEN) {
            fprintf(stderr, "  tu_sink: connection %u sent a bad length field %u\n", c->id, flen);
            rc = -1;
            break;
        }
        if (c->len - pos < 4 + (size_t)flen)
            break;
        const uint8_t *f = c->buf + pos;
        uint32_t plen = flen - 12;
        sink_store(s, c->id, tu_get_be32(f + 4), tu_get_be64(f + 8), plen ? f + TU_HDR : NULL,
                   plen);
        s->count++;
        any = 1;
        pos += 4 + (size_t)flen;
    }
    if (any)
        pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (pos) {
        memmove(c->buf, c->buf + pos, c->len - pos);
        c->len -= pos;
    }
    return rc;
}

static void sink_close_conn(tu_sink_t *s, size_t i, int bad)
{
    sink_conn_t *c = &s->conns[i];
    pthread_mutex_lock(&s->mu);
    s->closed++;
    if (bad)
        s->bad++;
    else if (c->len)
        s->partial++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (!bad && c->len)
        fprintf(stderr, "  tu_sink: connection %u closed inside a frame (%zu bytes left)\n", c->id,
                c->len);
    close(c->fd);
    free(c->buf);
    s->conns[i] = s->conns[--s->nconns];
}

static void *sink_thread(void *arg)
{
    tu_sink_t *s = arg;
    struct pollfd *pfds = NULL;
    size_t cappfds = 0;
    for (;;) {
        size_t n = 2 + s->nconns;
        if (n > cappfds) {
            cappfds = n * 2;
            pfds = realloc(pfds, cappfds * sizeof *pfds);
            if (!pfds)
                abort();
        }
        pfds[0] = (struct pollfd){s->wake[0], POLLIN, 0};
        pfds[1] = (struct pollfd){s->lfd, POLLIN, 0};
        for (size_t i = 0; i < s->nconns; i++)
            pfds[2 + i] = (struct pollfd){s->conns[i].fd, POLLIN, 0};
        int r = poll(pfds, n, -1);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            perror("tu_sink: poll");
            break;
        }
        if (pfds[0].revents)
            break;
        /* Connections first (indices shift when one closes: walk backwards). */
        for (size_t i = s->nconns; i-- > 0;) {
            if (!pfds[2 + i].revents)
                continue;
            sink_conn_t *c = &s->conns[i];
            if (c->cap - c->len < 65536) {
                size_t cap = c->cap ? c->cap * 2 : 262144;
                while (cap - c->len < 65536)
                    cap *= 2;
                uint8_t *b = realloc(c->buf, cap);
                if (!b)
                    abort();
                c->buf = b;
                c->cap = cap;
            }
            ssize_t k = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
            if (k < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (k <= 0) {
                sink_close_conn(s, i, 0);
                continue;
            }
            c->len += (size_t)k;
            if (sink_decode(s, c) < 0)
                sink_close_conn(s, i, 1);
        }
        if (pfds[1].revents & POLLIN) {
            int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
            if (fd >= 0) {
                if (s->nconns == s->capconns) {
                    s->capconns = s->capconns ? s->capconns * 2 : 8;
                    s->conns = realloc(s->conns, s->capconns * sizeof *s->conns);
                    if (!s->conns)
                        abort();
                }
                pthread_mutex_lock(&s->mu);
                unsigned id = s->accepted++;
                pthread_cond_broadcast(&s->cv);
                pthread_mutex_unlock(&s->mu);
                s->conns[s->nconns++] = (sink_conn_t){fd, id, NULL, 0, 0};
            }
        }
    }
    free(pfds);
    return NULL;
}

int tu_sink_new(tu_sink_t **out, tu_frame_cb cb, void *arg)
{
    *out = NULL;
    tu_sink_t *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->cb = cb;
    s->arg = arg;
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->lfd < 0)
        goto fail;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    if (bind(s->lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(s->lfd, 128) < 0 ||
        getsockname(s->lfd, (struct sockaddr *)&sa, &sl) < 0)
        goto fail;
    s->port = ntohs(sa.sin_port);
    snprintf(s->addr, sizeof s->addr, "127.0.0.1:%u", (unsigned)s->port);
    if (pipe2(s->wake, O_CLOEXEC) < 0)
        goto fail;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    int e = pthread_create(&s->thr, NULL, sink_thread, s);
    if (e) {
        errno = e;
        close(s->wake[0]);
        close(s->wake[1]);
        goto fail;
    }
    *out = s;
    return 0;
fail:;
    int err = errno;
    if (s->lfd >= 0)
        close(s->lfd);
    free(s);
    return -err;
}

void tu_sink_destroy(tu_sink_t *s)
{
    if (!s)
        return;
    char b = 1;
    while (write(s->wake[1], &b, 1) < 0 && errno == EINTR) {
    }
    pthread_join(s->thr, NULL);
    for (size_t i = 0; i < s->nconns; i++) {
        close(s->conns[i].fd);
        free(s->conns[i].buf);
    }
    free(s->conns);
    for (size_t i = 0; i < s->nframes; i++)
        free(s->frames[i].payload);
    free(s->frames);
    close(s->wake[0]);
    close(s->wake[1]);
    close(s->lfd);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

uint16_t tu_sink_port(const tu_sink_t *s)
{
    return s->port;
}
const char *tu_sink_addr(const tu_sink_t *s)
{
    return s->addr;
}

size_t tu_sink_count(tu_sink_t *s)
{
    pthread_mutex_lock(&s->mu);
    size_t n = s->count;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* Waits on the sink's condvar until done(s) holds. Called with s->mu held. */
static int sink_wait(tu_sink_t *s, int (*done)(tu_sink_t *, const void *), const void *arg,
                     int timeout_ms)
{
    struct timespec dl;
    deadline_ts(&dl, timeout_ms);
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    while (!done(s, arg)) {
        if (pthread_cond_timedwait(&s->cv, &s->mu, &dl) == ETIMEDOUT) {
            rc = done(s, arg) ? 0 : -ETIMEDOUT;
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int done_count(tu_sink_t *s, const void *arg)
{
    return s->count >= *(const size_t *)arg;
}
static int done_closed(tu_sink_t *s, const void *arg)
{
    return s->accepted >= *(const unsigned *)arg && s->closed == s->accepted;
}
static int done_accepted(tu_sink_t *s, const void *arg)
{
    return s->accepted >= *(const unsigned *)arg;
}

int tu_sink_wait_count(tu_sink_t *s, size_t n, int timeout_ms)
{
    return sink_wait(s, done_count, &n, timeout_ms);
}

int tu_sink_wait_all_closed(tu_sink_t *s, unsigned min_accepted, int timeout_ms)
{
    return sink_wait(s, done_closed, &min_accepted, timeout_ms);
}

int tu_sink_wait_accepted(tu_sink_t *s, unsigned n, int timeout_ms)
{
    return sink_wait(s, done_accepted, &n, timeout_ms);
}

void tu_sink_info(tu_sink_t *s, tu_sink_info_t *out)
{
    pthread_mutex_lock(&s->mu);
    out->frames = s->count;
    out->accepted = s->accepted;
    out->closed = s->closed;
    out->bad = s->bad;
    out->partial = s->partial;
    pthread_mutex_unlock(&s->mu);
}

void tu_sink_lock(tu_sink_t *s)
{
    pthread_mutex_lock(&s->mu);
}
void tu_sink_unlock(tu_sink_t *s)
{
    pthread_mutex_unlock(&s->mu);
}

const tu_frame_t *tu_sink_frames(tu_sink_t *s, size_t *n)
{
    *n = s->nframes;
    return s->frames;
}

/* ------------------------------------------------------------ background senders */

struct tu_sender {
    const int *fds;
    uint8_t *const *bufs;
    const size_t *lens;
    unsigned nconn, nthreads;
    size_t chunk;
    unsigned pause_us;
    pthread_t *thr;
    unsigned started;
    atomic_uint finished;
    atomic_int err;
};

typedef struct sender_arg {
    tu_sender_t *s;
    unsigned idx;
} sender_arg_t;

static void *sender_thread(void *arg)
{
    tu_sender_t *s = ((sender_arg_t *)arg)->s;
    unsigned idx = ((sender_arg_t *)arg)->idx;
    free(arg);
    unsigned mine = 0;
    for (unsigned c = idx; c < s->nconn; c += s->nthreads)
        mine++;
    size_t *off = calloc(mine ? mine : 1, sizeof *off);
    if (!off)
        abort();
    int left = 1;
    while (left) {
        left = 0;
        unsigned m = 0;
        for (unsigned c = idx; c < s->nconn; c += s->nthreads, m++) {
            if (off[m] >= s->lens[c])
                continue;
            size_t n = s->lens[c] - off[m];
            if (n > s->chunk)
                n = s->chunk;
            int rc = tu_write_all(s->fds[c], s->bufs[c] + off[m], n);
            if (rc < 0) {
                int zero = 0;
                atomic_compare_exchange_strong(&s->err, &zero, rc);
                off[m] = s->lens[c]; /* give this connection up */
                continue;
            }
            off[m] += n;
            if (off[m] < s->lens[c])
                left = 1;
        }
        if (left && s->pause_us)
            usleep(s->pause_us);
    }
    free(off);
    atomic_fetch_add(&s->finished, 1);
    return NULL;
}

int tu_send_start(tu_sender_t **out, const int *fds, uint8_t *const *bufs, const size_t *lens,
                  unsigned nconn, unsigned nthreads, size_t chunk)
{
    return tu_send_start_paced(out, fds, bufs, lens, nconn, nthreads, chunk, 0);
}

int tu_send_start_paced(tu_sender_t **out, const int *fds, uint8_t *const *bufs, const size_t *lens,
                        unsigned nconn, unsigned nthreads, size_t chunk, unsigned pause_us)
{
    *out = NULL;
    if (nthreads == 0 || chunk == 0)
        return -EINVAL;
    if (nthreads > nconn)
        nthreads = nconn ? nconn : 1;
    tu_sender_t *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->fds = fds;
    s->bufs = bufs;
    s->lens = lens;
    s->nconn = nconn;
    s->nthreads = nthreads;
    s->chunk = chunk;
    s->pause_us = pause_us;
    s->thr = calloc(nthreads, sizeof *s->thr);
    if (!s->thr) {
        free(s);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < nthreads; i++) {
        sender_arg_t *a = malloc(sizeof *a);
        if (!a)
            abort();
        a->s = s;
        a->idx = i;
        int e = pthread_create(&s->thr[i], NULL, sender_thread, a);
        if (e) {
            free(a);
            /* let the ones started finish; report the failure at join */
            int zero = 0;
            atomic_compare_exchange_strong(&s->err, &zero, -e);
            break;
        }
        s->started++;
    }
    /* threads that never started count as finished */
    atomic_fetch_add(&s->finished, nthreads - s->started);
    *out = s;
    return 0;
}

int tu_send_done(tu_sender_t *s)
{
    return atomic_load(&s->finished) == s->nthreads;
}

int tu_send_join(tu_sender_t *s)
{
    if (!s)
        return 0;
    for (unsigned i = 0; i < s->started; i++)
        pthread_join(s->thr[i], NULL);
    int rc = atomic_load(&s->err);
    free(s->thr);
    free(s);
    return rc;
}

/* ------------------------------------------------------------ worker stats */

uint64_t tu_stat(const rill_worker_t *w, size_t off)
{
    rill_stats_t st;
    if (rill_worker_stats(w, &st, sizeof st) != 0)
        return UINT64_MAX;
    uint64_t v;
    memcpy(&v, (const char *)&st + off, sizeof v);
    return v;
}

int tu_wait_stats(const rill_worker_t *w, tu_stats_pred pred, void *arg, int timeout_ms,
                  rill_stats_t *last)
{
    rill_stats_t st;
    int64_t end = tu_now_ms() + timeout_ms;
    for (;;) {
        memset(&st, 0, sizeof st);
        int rc = rill_worker_stats(w, &st, sizeof st);
        if (last)
            *last = st;
        if (rc != 0)
            return rc;
        if (pred(&st, arg))
            return 0;
        if (tu_now_ms() >= end)
            return -ETIMEDOUT;
        tu_sleep_ms(5);
    }
}

typedef struct stat_cmp {
    size_t off;
    uint64_t val;
    int eq;
} stat_cmp_t;

static int pred_cmp(const rill_stats_t *st, void *arg)
{
    const stat_cmp_t *c = arg;
    uint64_t v;
    memcpy(&v, (const char *)st + c->off, sizeof v);
    return c->eq ? v == c->val : v >= c->val;
}

static int wait_stat(const rill_worker_t *w, size_t off, uint64_t val, int eq, int timeout_ms,
                     uint64_t *last)
{
    stat_cmp_t c = {off, val, eq};
    rill_stats_t st;
    int rc = tu_wait_stats(w, pred_cmp, &c, timeout_ms, &st);
    if (last)
        memcpy(last, (const char *)&st + off, sizeof *last);
    return rc;
}

int tu_wait_stat_ge(const rill_worker_t *w, size_t off, uint64_t min, int timeout_ms,
                    uint64_t *last)
{
    return wait_stat(w, off, min, 0, timeout_ms, last);
}

int tu_wait_stat_eq(const rill_worker_t *w, size_t off, uint64_t val, int timeout_ms,
                    uint64_t *last)
{
    return wait_stat(w, off, val, 1, timeout_ms, last);
}

int tu_pass_batch(uintptr_t ctx, unsigned loop, const rill_msg_t *m, size_t n, rill_emitter_t *em)
{
    (void)ctx;
    (void)loop;
    for (size_t i = 0; i < n; i++)
        rill_emit_sink(em, 0, m[i].comp_id, m[i].key, m[i].data, m[i].len);
    return 0;
}

/* ------------------------------------------------------------ memory */

size_t tu_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return 0;
    char line[256];
    size_t kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %zu kB", &kb) == 1)
            break;
    fclose(f);
    return kb * 1024;
}

static void *rss_thread(void *arg)
{
    tu_rss_mon_t *m = arg;
    while (!atomic_load(&m->stop)) {
        size_t r = tu_rss_bytes();
        if (r > atomic_load(&m->max))
            atomic_store(&m->max, r);
        tu_sleep_ms(20);
    }
    return NULL;
}

int tu_rss_mon_start(tu_rss_mon_t *m)
{
    atomic_store(&m->stop, 0);
    atomic_store(&m->max, tu_rss_bytes());
    return pthread_create(&m->thr, NULL, rss_thread, m) ? -1 : 0;
}

size_t tu_rss_mon_max(tu_rss_mon_t *m)
{
    return atomic_load(&m->max);
}

size_t tu_rss_mon_stop(tu_rss_mon_t *m)
{
    atomic_store(&m->stop, 1);
    pthread_join(m->thr, NULL);
    return atomic_load(&m->max);
}

int tu_listen(uint16_t port, uint16_t *bound)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons(port);
    socklen_t sl = sizeof sa;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 16) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    *bound = ntohs(sa.sin_port);
    return fd;
}
