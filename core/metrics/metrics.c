/* Metrics endpoint (see metrics.h): one thread, one poll() loop, non-blocking sockets.
 *
 * A probe must not be starved by slow clients: a kubelet's /healthz or a scraper's
 * /metrics has to find a slot whatever a few hundred idle or half-sent connections do.
 * So, as production servers do (nginx's client_header_timeout, Go's ReadHeaderTimeout):
 *   - a client has HEADER_TIMEOUT_MS from its accept for the whole request to arrive (a
 *     scraper's request follows its connect within a round trip), and then, separately,
 *     ANSWER_TIMEOUT_MS for the answer to leave;
 *   - slots are cheap (a pointer each; the client and its request buffer are allocated
 *     at accept), so there are many: MAX_CLIENTS;
 *   - when every slot is taken, the newcomer takes the slot of the oldest (in accept
 *     order) client still reading its request. That one has had the longest to send a
 *     few hundred bytes and has not; a well-behaved client is the newest reader right
 *     after its connect and is evicted last, so a flood of half-requests only ever evicts
 *     itself. Only clients that went through a poll since their accept are candidates:
 *     a request already in the socket buffer has then been read, so a burst larger than
 *     the free slots evicts no one unread; the rest of the burst waits in the backlog
 *     for the next round. A client that sent its request but does not read the answer
 *     (writing, lingering) is a candidate once SLOW_ANSWER_MS have passed since; when no
 *     client is a candidate the newcomer is closed, and the scraper retries.
 * When accept fails for want of descriptors (EMFILE, ENFILE: the loops' accepts share
 * the process's descriptors, and may take the one freed) one candidate is evicted and
 * accepting goes on; a second failure, one with no candidate, or another error rests the
 * listener for ACCEPT_PAUSE_MS (poll() would report it readable at once, over and over).
 * After the answer the write side is shut down and the socket read until the client
 * closes (briefly): closing with unread request bytes would send a reset that can destroy
 * the answer before the client has read it. */
#include "metrics/metrics.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "net/listen.h"

#define MAX_CLIENTS 256
#define REQUEST_MAX 8192
#define HEADER_TIMEOUT_MS 2000 /* from the accept until the request is complete */
#define ANSWER_TIMEOUT_MS 5000 /* from the complete request until the answer is sent */
#define LINGER_MS 500          /* after the answer: wait this long for the client's close */
#define ACCEPT_PAUSE_MS 100    /* accept failed and nothing could be evicted: rest */
#define SLOW_ANSWER_MS 1000    /* a client not reading its answer may be evicted after this */
#define LISTEN_BACKLOG 256

enum { C_READ, C_WRITE, C_LINGER };

typedef struct client {
    int fd;
    int state;
    uint64_t seq;     /* accept order: the oldest candidate is evicted first */
    uint64_t round;   /* the poll round it was accepted in */
    int64_t phase_at; /* when it left C_READ (its request complete) */
    int64_t deadline;
    size_t req_len;
    char req[REQUEST_MAX];
    char *resp;
    size_t resp_len, resp_off;
} client_t;

struct rill__metrics {
    rill_worker_t *w;
    int lfd;
    int efd; /* stop request */
    int port;
    pthread_t thr;
    int64_t accept_resume; /* the listener is not polled before this time */
    uint64_t round;        /* poll rounds so far */
    uint64_t accepted;     /* clients accepted so far (their seq) */
    client_t *clients[MAX_CLIENTS];
    struct pollfd pfds[2 + MAX_CLIENTS];
    int idx[2 + MAX_CLIENTS]; /* pfds[k] is clients[idx[k]] from k = 2 on */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------ HTTP */

static void client_free(client_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    free(c->resp);
    free(c);
}

static int respond(client_t *c, int status, const char *reason, const char *ctype,
                   const char *extra_hdr, const char *body, size_t body_len, int head_only)
{
    char head[512];
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%sConnection: "
                      "close\r\n\r\n",
                      status, reason, ctype, body_len, extra_hdr ? extra_hdr : "");
    if (hl < 0 || (size_t)hl >= sizeof head)
        return -1;
    size_t n = (size_t)hl + (head_only ? 0 : body_len);
    char *p = malloc(n);
    if (!p)
        return -1;
    memcpy(p, head, (size_t)hl);
    if (n > (size_t)hl)
        memcpy(p + hl, body, body_len);
    c->resp = p;
    c->resp_len = n;
    c->resp_off = 0;
    c->state = C_WRITE;
    c->phase_at = now_ms();
    c->deadline = c->phase_at + ANSWER_TIMEOUT_MS;
    return 0;
}

static int respond_text(client_t *c, int status, const char *reason, const char *extra_hdr,
                        const char *text, int head_only)
{
    return respond(c, status, reason, "text/plain; charset=utf-8", extra_hdr, text, strlen(text),
                   head_only);
}

/* The request is complete (headers ended): choose the answer. Returns 0 or -1 (no memory:
 * close). */
static int handle_request(rill__metrics_t *m, client_t *c)
{
    char *sp1 = memchr(c->req, ' ', c->req_len);
    char *eol = memchr(c->req, '\n', c->req_len);
    if (!sp1 || !eol || sp1 > eol)
        return respond_text(c, 400, "Bad Request", NULL, "bad request\n", 0);
    char *target = sp1 + 1;
    char *sp2 = memchr(target, ' ', (size_t)(eol - target));
    if (!sp2 || (size_t)(eol - sp2) < 9 || memcmp(sp2 + 1, "HTTP/1.", 7) != 0)
        return respond_text(c, 400, "Bad Request", NULL, "bad request\n", 0);
    size_t mlen = (size_t)(sp1 - c->req), tlen = (size_t)(sp2 - target);
    int get = mlen == 3 && memcmp(c->req, "GET", 3) == 0;
    int head = mlen == 4 && memcmp(c->req, "HEAD", 4) == 0;
    if (!get && !head)
        return respond_text(c, 405, "Method Not Allowed", "Allow: GET, HEAD\r\n",
                            "method not allowed\n", 0);
    char *q = memchr(target, '?', tlen);
    size_t plen = q ? (size_t)(q - target) : tlen;
    /* Liveness: this thread answers. Readiness: rill_worker_ready. */
    if (plen == 8 && memcmp(target, "/healthz", 8) == 0)
        return respond_text(c, 200, "OK", NULL, "ok\n", head);
    if (plen == 7 && memcmp(target, "/readyz", 7) == 0) {
        char why[96], text[128];
        if (rill_worker_ready(m->w, why, sizeof why) == 1)
            return respond_text(c, 200, "OK", NULL, "ready\n", head);
        snprintf(text, sizeof text, "not ready: %s\n", why);
        return respond_text(c, 503, "Service Unavailable", NULL, text, head);
    }
    if (plen != 8 || memcmp(target, "/metrics", 8) != 0)
        return respond_text(c, 404, "Not Found", NULL,
                            "not found; try /metrics, /healthz or /readyz\n", head);
    char *body;
    size_t len;
    if (rill__metrics_render(m->w, &body, &len) < 0)
        return respond_text(c, 503, "Service Unavailable", NULL, "out of memory\n", head);
    int rc =
        respond(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", NULL, body, len, head);
    free(body);
    return rc;
}

static int headers_complete(const client_t *c)
{
    for (size_t i = 0; i + 1 < c->req_len; i++) {
        if (c->req[i] == '\n' &&
            (c->req[i + 1] == '\n' ||
             (c->req[i + 1] == '\r' && i + 2 < c->req_len && c->req[i + 2] == '\n')))
            return 1;
    }
    return 0;
}

/* Advances one client after poll said it is ready. Returns 0 to keep it, -1 to close. */
static int client_step(rill__metrics_t *m, client_t *c, int64_t now)
{
    if (c->state == C_READ) {
        ssize_t k = recv(c->fd, c->req + c->req_len, sizeof c->req - c->req_len, 0);
        if (k < 0)
            return errno == EAGAIN || errno == EINTR ? 0 : -1;
        if (k == 0)
            return -1; /* closed before a whole request */
        c->req_len += (size_t)k;
        if (headers_complete(c)) {
            if (handle_request(m, c) < 0)
                return -1;
        } else if (c->req_len == sizeof c->req) {
            if (respond_text(c, 431, "Request Header Fields Too Large", NULL, "request too large\n",
                             0) < 0)
                return -1;
        } else {
            return 0;
        }
        /* fall through to write at once: usually the answer fits the socket buffer */
    }
    if (c->state == C_WRITE) {
        while (c->resp_off < c->resp_len) {
            ssize_t k = send(c->fd, c->resp + c->resp_off, c->resp_len - c->resp_off, MSG_NOSIGNAL);
            if (k < 0)
                return errno == EAGAIN || errno == EINTR ? 0 : -1;
            c->resp_off += (size_t)k;
        }
        shutdown(c->fd, SHUT_WR);
        c->state = C_LINGER;
        c->deadline = now + LINGER_MS;
        return 0;
    }
    /* C_LINGER: discard whatever the client still sends until it closes. */
    char junk[1024];
    for (;;) {
        ssize_t k = recv(c->fd, junk, sizeof junk, 0);
        if (k > 0)
            continue;
        if (k < 0 && (errno == EAGAIN || errno == EINTR))
            return 0;
        return -1;
    }
}

/* May c give its slot to a newcomer? Only after a poll since its accept (so what it sent
 * has been read): a reader still without a whole request, or one that has not taken its
 * answer for SLOW_ANSWER_MS. */
static int evictable(const rill__metrics_t *m, const client_t *c, int64_t now)
{
    if (c->round >= m->round)
        return 0;
    return c->state == C_READ || now - c->phase_at >= SLOW_ANSWER_MS;
}

/* Closes the oldest evictable client and returns its slot; -1 when there is none, with
 * *fresh set when some client was accepted this round (it may be evictable next). */
static int evict_oldest(rill__metrics_t *m, int64_t now, int *fresh)
{
    int oldest = -1;
    *fresh = 0;
    for (int i = 0; i < MAX_CLIENTS; i++) {
        const client_t *c = m->clients[i];
        if (!c)
            continue;
        *fresh |= c->round >= m->round;
        if (evictable(m, c, now) &&
            (oldest < 0 || (c->state == C_READ) > (m->clients[oldest]->state == C_READ) ||
             ((c->state == C_READ) == (m->clients[oldest]->state == C_READ) &&
              c->seq < m->clients[oldest]->seq)))
            oldest = i; /* readers before slow answer-takers, each oldest first */
    }
    if (oldest >= 0) {
        client_free(m->clients[oldest]);
        m->clients[oldest] = NULL;
    }
    return oldest;
}

static void accept_clients(rill__metrics_t *m, int64_t now)
{
    int evicted_for_fd = 0, fresh;
    for (;;) {
        int slot = -1;
        for (int i = 0; i < MAX_CLIENTS && slot < 0; i++)
            if (!m->clients[i])
                slot = i;
        if (slot < 0 && (slot = evict_oldest(m, now, &fresh)) < 0 && fresh)
            return; /* the burst's rest waits in the backlog until its peers were polled */
        int fd = accept4(m->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED)
                return; /* EINTR, ECONNABORTED: the next poll reports what is left */
            if ((errno == EMFILE || errno == ENFILE) && !evicted_for_fd &&
                evict_oldest(m, now, &fresh) >= 0) {
                evicted_for_fd = 1;
                continue;
            }
            m->accept_resume = now + ACCEPT_PAUSE_MS;
            return;
        }
        client_t *c = slot >= 0 ? malloc(sizeof *c) : NULL;
        if (!c) {
            close(fd); /* no slot can be freed (or no memory): the scraper retries */
            continue;
        }
        c->fd = fd;
        c->state = C_READ;
        c->seq = m->accepted++;
        c->round = m->round;
        c->phase_at = now;
        c->deadline = now + HEADER_TIMEOUT_MS;
        c->req_len = 0;
        c->resp = NULL;
        c->resp_len = c->resp_off = 0;
        m->clients[slot] = c;
    }
}

static void *metrics_thread(void *arg)
{
    rill__metrics_t *m = arg;
    struct pollfd *pfds = m->pfds;
    int *idx = m->idx;
    for (;;) {
        int64_t now = now_ms(), wait = 1000;
        m->round++;
        nfds_t n = 0;
        pfds[n++] = (struct pollfd){m->efd, POLLIN, 0};
        /* fd -1: poll ignores the entry while the listener rests */
        int listening = now >= m->accept_resume;
        pfds[n++] = (struct pollfd){listening ? m->lfd : -1, POLLIN, 0};
        if (!listening && m->accept_resume - now < wait)
            wait = m->accept_resume - now;
        for (int i = 0; i < MAX_CLIENTS; i++) {
            client_t *c = m->clients[i];
            if (!c)
                continue;
            if (now >= c->deadline) {
                client_free(c);
                m->clients[i] = NULL;
                continue;
            }
            if (c->deadline - now < wait)
                wait = c->deadline - now;
            idx[n] = i;
            pfds[n++] = (struct pollfd){c->fd, c->state == C_WRITE ? POLLOUT : POLLIN, 0};
        }
        int r = poll(pfds, n, (int)wait);
        if (r < 0 && errno != EINTR)
            break;
        if (r <= 0)
            continue;
        if (pfds[0].revents)
            break;
        now = now_ms();
        for (nfds_t k = 2; k < n; k++) {
            if (!pfds[k].revents)
                continue;
            client_t *c = m->clients[idx[k]];
            if (client_step(m, c, now) < 0) {
                client_free(c);
                m->clients[idx[k]] = NULL;
            }
        }
        if (pfds[1].revents)
            accept_clients(m, now);
    }
    for (int i = 0; i < MAX_CLIENTS; i++) {
        if (m->clients[i]) {
            client_free(m->clients[i]);
            m->clients[i] = NULL;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------ life cycle */

int rill__metrics_start(rill__metrics_t **out, rill_worker_t *w, const rill__addr_t *addr)
{
    if (!out)
        return RILL_EINVAL;
    *out = NULL;
    if (!w || !addr)
        return RILL_EINVAL;
    rill__metrics_t *m = calloc(1, sizeof *m);
    if (!m)
        return RILL_ENOMEM;
    m->w = w;
    m->efd = -1;
    int rc;
    m->lfd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (m->lfd < 0) {
        rc = -errno;
        goto fail;
    }
    int one = 1;
    setsockopt(m->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(m->lfd, (const struct sockaddr *)&addr->ss, addr->len) < 0 ||
        listen(m->lfd, LISTEN_BACKLOG) < 0) {
        rc = -errno;
        goto fail;
    }
    if ((rc = rill__socket_port(m->lfd)) < 0)
        goto fail;
    m->port = rc;
    m->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (m->efd < 0) {
        rc = -errno;
        goto fail;
    }
    /* The server thread takes no signals: the embedding process decides where they go. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int e = pthread_create(&m->thr, NULL, metrics_thread, m);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e) {
        rc = -e;
        goto fail;
    }
    *out = m;
    return 0;
fail:
    if (m->lfd >= 0)
        close(m->lfd);
    if (m->efd >= 0)
        close(m->efd);
    free(m);
    return rc;
}

int rill__metrics_port(const rill__metrics_t *m)
{
    return m ? m->port : RILL_EINVAL;
}

void rill__metrics_stop(rill__metrics_t *m)
{
    if (!m)
        return;
    uint64_t one = 1;
    while (write(m->efd, &one, sizeof one) < 0 && errno == EINTR) {
    }
    pthread_join(m->thr, NULL);
    close(m->lfd);
    close(m->efd);
    free(m);
}
