/* The TCP fault proxy; see fault_proxy.h.
 *
 * One thread owns every socket. Fault calls only change requests under the lock, wake the
 * thread through a pipe and wait until it has taken them: the thread reads the requests at
 * the top of an iteration and publishes that it did before it polls or forwards anything,
 * so a call that returned is in force for everything the thread does next.
 *
 * A connection is pumped (every direction tried, EAGAIN is fine) whenever poll reports
 * anything on either of its sockets; a socket is polled only for what its buffers allow
 * (read while there is room, write while there is data), and not at all when neither, so
 * a hang-up on a socket the proxy cannot serve yet does not make poll spin. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "fault_proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* How long a cut armed by fp_cut_after waits for the target to acknowledge its bytes. */
#define DRAIN_MS 2000

typedef struct fp_dir {
    uint8_t *data; /* FP_BUF_BYTES */
    size_t off, len;
    int eof;  /* the source sent FIN */
    int shut; /* ... and it was passed on (shutdown(SHUT_WR) of the destination) */
} fp_dir_t;

typedef struct fp_conn {
    int cfd, tfd; /* client side (accepted), target side */
    int connecting;
    fp_dir_t up, down; /* client -> target, target -> client */
} fp_conn_t;

struct fp {
    int lfd;
    int wake[2];
    uint16_t port;
    struct sockaddr_in target;
    char addr[32];
    pthread_t thr;

    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC */
    /* Requests (under mu). */
    uint64_t req_seq, done_seq;
    int stall, refuse, stop, dead;
    uint64_t cut_req;
    uint64_t arm_gen, arm_bytes;
    fp_stats_t st;

    /* Proxy thread only. */
    fp_conn_t *conns;
    size_t nconns, capconns;
    uint64_t cut_seen, arm_seen;
    int budget_on, draining;
    uint64_t budget;
    int64_t drain_until;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void stat_add(fp_t *p, uint64_t *field, uint64_t n, int wake_waiters)
{
    pthread_mutex_lock(&p->mu);
    *field += n;
    if (wake_waiters)
        pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* Closes fd with a reset: SO_LINGER 0 makes close() send RST and drop what is queued. */
static void fd_reset(int fd)
{
    struct linger l = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd);
}

static void nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* ------------------------------------------------------------ connections */

static void conn_remove(fp_t *p, size_t i, int reset)
{
    fp_conn_t *c = &p->conns[i];
    if (reset) {
        fd_reset(c->cfd);
        fd_reset(c->tfd);
    } else {
        close(c->cfd);
        close(c->tfd);
    }
    free(c->up.data);
    free(c->down.data);
    p->conns[i] = p->conns[--p->nconns];
    pthread_mutex_lock(&p->mu);
    p->st.open--;
    pthread_mutex_unlock(&p->mu);
}

/* A connection accepted from a client: open its target side. */
static void conn_start(fp_t *p, int cfd)
{
    int tfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    /* Counted before the reset, so that a client that saw it sees the count too. */
    if (tfd < 0) {
        stat_add(p, &p->st.failed, 1, 1);
        fd_reset(cfd);
        return;
    }
    nodelay(cfd);
    nodelay(tfd);
    int connecting = 0;
    if (connect(tfd, (const struct sockaddr *)&p->target, sizeof p->target) < 0) {
        if (errno != EINPROGRESS) {
            stat_add(p, &p->st.failed, 1, 1);
            close(tfd);
            fd_reset(cfd);
            return;
        }
        connecting = 1;
    }
    if (p->nconns == p->capconns) {
        size_t cap = p->capconns ? p->capconns * 2 : 16;
        fp_conn_t *a = realloc(p->conns, cap * sizeof *a);
        if (!a)
            abort();
        p->conns = a;
        p->capconns = cap;
    }
    fp_conn_t *c = &p->conns[p->nconns++];
    memset(c, 0, sizeof *c);
    c->cfd = cfd;
    c->tfd = tfd;
    c->connecting = connecting;
    c->up.data = malloc(FP_BUF_BYTES);
    c->down.data = malloc(FP_BUF_BYTES);
    if (!c->up.data || !c->down.data)
        abort();
    pthread_mutex_lock(&p->mu);
    p->st.open++;
    if (!connecting)
        p->st.connected++;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* Accepts every connection waiting in the backlog. reset: reset each at once (a cut). */
static void accept_all(fp_t *p, int refuse, int reset)
{
    for (;;) {
        int fd = accept4(p->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return; /* EAGAIN, or a resource error: the backlog keeps it for later */
        }
        pthread_mutex_lock(&p->mu);
        p->st.accepted++;
        if (reset)
            p->st.conns_cut++;
        else if (refuse)
            p->st.refused++;
        pthread_mutex_unlock(&p->mu);
        if (reset || refuse)
            fd_reset(fd);
        else
            conn_start(p, fd);
    }
}

static void cut_all(fp_t *p)
{
    accept_all(p, 0, 1);
    uint64_t n = p->nconns;
    while (p->nconns)
        conn_remove(p, p->nconns - 1, 1);
    pthread_mutex_lock(&p->mu);
    p->st.cuts++;
    p->st.conns_cut += n;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static size_t dir_room(const fp_dir_t *d)
{
    return FP_BUF_BYTES - d->off - d->len;
}

/* Reads from fd into d. Returns 0, or -1 on a socket error. */
static int dir_fill(fp_dir_t *d, int fd)
{
    if (d->eof)
        return 0;
    if (d->len == 0)
        d->off = 0;
    else if (dir_room(d) == 0 && d->off > 0) {
        memmove(d->data, d->data + d->off, d->len);
        d->off = 0;
    }
    if (dir_room(d) == 0)
        return 0;
    ssize_t k = recv(fd, d->data + d->off + d->len, dir_room(d), 0);
    if (k > 0)
        d->len += (size_t)k;
    else if (k == 0)
        d->eof = 1;
    else if (errno != EAGAIN && errno != EINTR)
        return -1;
    return 0;
}

/* Writes at most max bytes of d to fd. Returns the bytes written, or -1 on a socket
 * error. */
static ssize_t dir_flush(fp_dir_t *d, int fd, size_t max)
{
    size_t n = d->len < max ? d->len : max;
    if (n == 0)
        return 0;
    ssize_t k = send(fd, d->data + d->off, n, MSG_NOSIGNAL);
    if (k < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -1;
    d->off += (size_t)k;
    d->len -= (size_t)k;
    return k;
}

/* Passes a FIN on once everything before it was forwarded. */
static void dir_shut(fp_dir_t *d, int dst)
{
    if (d->eof && d->len == 0 && !d->shut) {
        shutdown(dst, SHUT_WR);
        d->shut = 1;
    }
}

/* Moves what it can in both directions of connection i. Returns -1 when the connection
 * failed and must be reset, 1 when both directions are closed, 0 otherwise. */
static int conn_pump(fp_t *p, size_t i)
{
    fp_conn_t *c = &p->conns[i];
    if (c->connecting) {
        int err = 0;
        socklen_t sl = sizeof err;
        if (getsockopt(c->tfd, SOL_SOCKET, SO_ERROR, &err, &sl) < 0)
            err = errno;
        if (err == EINPROGRESS || err == EALREADY)
            return 0;
        if (err) {
            stat_add(p, &p->st.failed, 1, 1);
            return -1;
        }
        struct pollfd w = {c->tfd, POLLOUT, 0};
        if (poll(&w, 1, 0) != 1)
            return 0; /* not connected yet: POLLOUT comes later */
        c->connecting = 0;
        stat_add(p, &p->st.connected, 1, 1);
    }

    if (dir_fill(&c->up, c->cfd) < 0)
        return -1;
    size_t max = SIZE_MAX;
    if (p->budget_on && p->budget < max)
        max = (size_t)p->budget;
    ssize_t k = dir_flush(&c->up, c->tfd, max);
    if (k < 0)
        return -1;
    if (k > 0) {
        stat_add(p, &p->st.bytes_up, (uint64_t)k, 0);
        if (p->budget_on) {
            p->budget -= (uint64_t)k;
            if (p->budget == 0) {
                /* The armed cut: forward nothing more, wait for the acknowledgements. */
                p->draining = 1;
                p->drain_until = now_ms() + DRAIN_MS;
                return 0;
            }
        }
    }
    dir_shut(&c->up, c->tfd);

    if (dir_fill(&c->down, c->tfd) < 0)
        return -1;
    k = dir_flush(&c->down, c->cfd, SIZE_MAX);
    if (k < 0)
        return -1;
    if (k > 0)
        stat_add(p, &p->st.bytes_down, (uint64_t)k, 0);
    dir_shut(&c->down, c->cfd);

    return c->up.shut && c->down.shut ? 1 : 0;
}

/* The poll events connection c's sockets are waited on for. */
static void conn_events(const fp_conn_t *c, short *ce, short *te)
{
    *ce = *te = 0;
    if (c->connecting) {
        *te = POLLOUT; /* the client is read once the target side is up */
        return;
    }
    if (!c->up.eof && (dir_room(&c->up) > 0 || c->up.off > 0))
        *ce |= POLLIN;
    if (c->down.len)
        *ce |= POLLOUT;
    if (!c->down.eof && (dir_room(&c->down) > 0 || c->down.off > 0))
        *te |= POLLIN;
    if (c->up.len)
        *te |= POLLOUT;
}

/* Non-zero when the target side of every connection has nothing unacknowledged. */
static int all_acked(const fp_t *p)
{
    for (size_t i = 0; i < p->nconns; i++) {
        int outq = 0;
        if (p->conns[i].connecting)
            continue;
        if (ioctl(p->conns[i].tfd, SIOCOUTQ, &outq) == 0 && outq > 0)
            return 0;
    }
    return 1;
}

/* ------------------------------------------------------------ the thread */

static void *proxy_thread(void *arg)
{
    fp_t *p = arg;
    struct pollfd *pfds = NULL;
    size_t cappfds = 0;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        uint64_t seq = p->req_seq, cut_req = p->cut_req, arm_gen = p->arm_gen;
        uint64_t arm_bytes = p->arm_bytes;
        int stall = p->stall, refuse = p->refuse, stop = p->stop;
        pthread_mutex_unlock(&p->mu);
        if (stop)
            break;
        if (arm_gen != p->arm_seen) {
            p->arm_seen = arm_gen;
            p->budget_on = arm_bytes > 0;
            p->budget = arm_bytes;
            p->draining = 0;
        }
        if (cut_req != p->cut_seen) {
            p->cut_seen = cut_req;
            if (p->draining) /* this cut is the armed one */
                p->draining = p->budget_on = 0;
            cut_all(p);
        }
        pthread_mutex_lock(&p->mu);
        p->done_seq = seq;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);

        if (p->draining && (all_acked(p) || now_ms() >= p->drain_until)) {
            p->draining = 0;
            p->budget_on = 0;
            cut_all(p);
        }

        size_t npolled = stall || p->draining ? 0 : p->nconns;
        size_t n = 2 + 2 * npolled;
        if (n > cappfds) {
            cappfds = n * 2;
            pfds = realloc(pfds, cappfds * sizeof *pfds);
            if (!pfds)
                abort();
        }
        pfds[0] = (struct pollfd){p->wake[0], POLLIN, 0};
        pfds[1] = (struct pollfd){p->lfd, POLLIN, 0};
        for (size_t i = 0; i < npolled; i++) {
            short ce, te;
            conn_events(&p->conns[i], &ce, &te);
            pfds[2 + 2 * i] = (struct pollfd){ce ? p->conns[i].cfd : -1, ce, 0};
            pfds[3 + 2 * i] = (struct pollfd){te ? p->conns[i].tfd : -1, te, 0};
        }
        int r = poll(pfds, n, p->draining ? 1 : -1);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            perror("fault_proxy: poll");
            break;
        }
        if (pfds[0].revents) {
            char junk[64];
            while (read(p->wake[0], junk, sizeof junk) > 0) {
            }
        }
        /* Backwards: a removed connection's slot takes the last one, already served. */
        for (size_t i = npolled; i-- > 0;) {
            if (!pfds[2 + 2 * i].revents && !pfds[3 + 2 * i].revents)
                continue;
            if (p->draining)
                break;
            int rc = conn_pump(p, i);
            if (rc != 0)
                conn_remove(p, i, rc < 0);
        }
        if (pfds[1].revents & POLLIN)
            accept_all(p, refuse, 0);
    }
    free(pfds);
    pthread_mutex_lock(&p->mu);
    p->dead = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* ------------------------------------------------------------ API */

int fp_new(fp_t **out, uint16_t target_port)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    fp_t *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->wake[0] = p->wake[1] = -1;
    p->target.sin_family = AF_INET;
    p->target.sin_port = htons(target_port);
    p->target.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int err;
    p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (p->lfd < 0)
        goto fail_errno;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    if (bind(p->lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(p->lfd, 128) < 0 ||
        getsockname(p->lfd, (struct sockaddr *)&sa, &sl) < 0)
        goto fail_errno;
    p->port = ntohs(sa.sin_port);
    snprintf(p->addr, sizeof p->addr, "127.0.0.1:%u", (unsigned)p->port);
    if (pipe2(p->wake, O_CLOEXEC | O_NONBLOCK) < 0)
        goto fail_errno;
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    err = pthread_create(&p->thr, NULL, proxy_thread, p);
    if (err) {
        pthread_cond_destroy(&p->cv);
        pthread_mutex_destroy(&p->mu);
        goto fail;
    }
    *out = p;
    return 0;
fail_errno:
    err = errno;
fail:
    if (p->lfd >= 0)
        close(p->lfd);
    if (p->wake[0] >= 0) {
        close(p->wake[0]);
        close(p->wake[1]);
    }
    free(p);
    return -err;
}

static void wake(fp_t *p)
{
    char b = 1;
    /* A full pipe already holds a wakeup. */
    while (write(p->wake[1], &b, 1) < 0 && errno == EINTR) {
    }
}

void fp_destroy(fp_t *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_mutex_unlock(&p->mu);
    wake(p);
    pthread_join(p->thr, NULL);
    while (p->nconns)
        conn_remove(p, p->nconns - 1, 0);
    free(p->conns);
    close(p->lfd);
    close(p->wake[0]);
    close(p->wake[1]);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

uint16_t fp_port(const fp_t *p)
{
    return p ? p->port : 0;
}

const char *fp_addr(const fp_t *p)
{
    return p ? p->addr : "";
}

/* Called with p->mu held after a request was changed: wakes the thread and waits until it
 * has taken the request. Returns with p->mu released. */
static int request(fp_t *p)
{
    uint64_t seq = ++p->req_seq;
    pthread_mutex_unlock(&p->mu);
    wake(p);
    pthread_mutex_lock(&p->mu);
    while (p->done_seq < seq && !p->dead)
        pthread_cond_wait(&p->cv, &p->mu);
    int rc = p->done_seq >= seq ? 0 : -EPIPE;
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int fp_cut(fp_t *p)
{
    if (!p)
        return -EINVAL;
    pthread_mutex_lock(&p->mu);
    p->cut_req++;
    return request(p);
}

int fp_stall(fp_t *p, int on)
{
    if (!p)
        return -EINVAL;
    pthread_mutex_lock(&p->mu);
    p->stall = on != 0;
    return request(p);
}

int fp_refuse(fp_t *p, int on)
{
    if (!p)
        return -EINVAL;
    pthread_mutex_lock(&p->mu);
    p->refuse = on != 0;
    return request(p);
}

int fp_cut_after(fp_t *p, uint64_t bytes)
{
    if (!p)
        return -EINVAL;
    pthread_mutex_lock(&p->mu);
    p->arm_gen++;
    p->arm_bytes = bytes;
    return request(p);
}

int fp_stats(fp_t *p, fp_stats_t *out)
{
    if (!p || !out)
        return -EINVAL;
    pthread_mutex_lock(&p->mu);
    *out = p->st;
    pthread_mutex_unlock(&p->mu);
    return 0;
}

static int wait_field(fp_t *p, size_t off, uint64_t n, int timeout_ms)
{
    if (!p)
        return -EINVAL;
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    int rc = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        uint64_t v;
        memcpy(&v, (const char *)&p->st + off, sizeof v);
        if (v >= n)
            break;
        if (p->dead || pthread_cond_timedwait(&p->cv, &p->mu, &dl) == ETIMEDOUT) {
            memcpy(&v, (const char *)&p->st + off, sizeof v);
            rc = v >= n ? 0 : -ETIMEDOUT;
            break;
        }
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int fp_wait_connected(fp_t *p, uint64_t n, int timeout_ms)
{
    return wait_field(p, offsetof(fp_stats_t, connected), n, timeout_ms);
}

int fp_wait_cuts(fp_t *p, uint64_t n, int timeout_ms)
{
    return wait_field(p, offsetof(fp_stats_t, cuts), n, timeout_ms);
}
