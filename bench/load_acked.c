/* rill-load --acked: each connection is a retaining sender of an acknowledged stream
 * (docs/protocol.md, "Control frames").
 *
 * A stream's frames live in a ring from the oldest unacknowledged one (seq acked + 1) to the
 * newest generated (next_gen - 1); seq s is payload seq s - 1, so a frame resent after a
 * reconnect is byte for byte the one sent first. On each connection: HELLO with first_seq =
 * acked + 1, nothing before WELCOME, then frames from max(first_seq, acked_seq + 1) on;
 * frames are committed to the connection only while the committed-but-unacknowledged ones
 * stay within the credit (whole frames), and generated only when committed, so the ring
 * holds at most about one credit. An ACK frees what it covers; a failure or GOAWAY closes
 * the connection, and the next one (after a backoff, on the next target) resends from the
 * oldest unacknowledged frame.
 *
 * One thread runs its connections with non-blocking sockets and an epoll of its own. */
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "histogram.h"
#include "load_wire.h"
#include "rill_load.h"

#define BACKOFF_MIN_NS 10000000ull
#define BACKOFF_MAX_NS 1000000000ull
#define HANDSHAKE_NS 5000000000ull  /* for the connect, then again for the WELCOME */
#define LEAVE_WAIT_NS 1000000000ull /* after GOAWAY: for the ACK of what was sent */
#define IN_MAX (1u << 20)           /* largest control frame taken from a receiver */
#define IN_START 4096u

enum { ST_DOWN, ST_CONNECTING, ST_WELCOME, ST_STREAMING, ST_LEAVING, ST_DONE };

typedef struct aconn {
    uint32_t index;
    uint64_t stream;
    int fd;
    int state;
    int tgt;            /* into g_o.targets */
    char redirect[256]; /* a GOAWAY's address: the next connection tries it first */
    char peer[256];     /* the current connection's address */
    char why[512];      /* why the last connection ended */
    uint64_t retry_at, backoff;
    uint64_t deadline;   /* of the connect, the WELCOME, or leaving after GOAWAY */
    uint64_t stall_ns;   /* since when the stream waits: for a WELCOME, or for an ACK of what
                          * it sent (0 = it waits for nothing) */
    uint64_t gen_end_ns; /* generation ended for this stream (0 = not yet) */
    bool welcomed_once, out_blocked, out_armed, waiting_credit, failed;
    uint8_t *ring; /* cap frames of g_o.size bytes; seq s in slot (s - 1) & (cap - 1) */
    uint64_t cap;
    uint64_t acked;    /* every seq <= acked is acknowledged */
    uint64_t next_gen; /* the next seq to generate */
    uint64_t commit;   /* [wr_seq, commit) are committed to the connection, not all written */
    uint64_t wr_seq;
    uint64_t wr_off; /* bytes of frame wr_seq already written */
    uint64_t credit;
    uint8_t ctl[64]; /* HELLO, until written */
    uint32_t ctl_off, ctl_len;
    uint8_t *in;
    size_t in_have, in_cap;
    uint64_t resent, reconnects, goaways, redirects, credit_waits;
} aconn_t;

typedef struct actx {
    sender_t *t;
    int epfd;
    uint64_t rng;
    bool ts_per_frame;
    uint64_t generated;
} actx_t;

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int load_acked_setup(sender_t *t, int first, int stride)
{
    t->aconns = calloc((size_t)t->nconns, sizeof *t->aconns);
    t->ack_hist = malloc(sizeof *t->ack_hist);
    if (!t->aconns || !t->ack_hist)
        return -1;
    rill__hist_init(t->ack_hist);
    uint64_t cap = 64;
    while (cap < 2 * (uint64_t)g_batch)
        cap *= 2;
    for (int i = 0; i < t->nconns; i++) {
        aconn_t *c = &t->aconns[i];
        c->index = (uint32_t)(first + i * stride);
        /* Stable across the stream's reconnects, distinct across runs and connections. */
        c->stream = mix64(g_run_id ^ (0x9e3779b97f4a7c15ull * (c->index + 1ull)));
        if (!c->stream)
            c->stream = 1;
        c->fd = -1;
        c->next_gen = c->commit = c->wr_seq = 1;
        c->backoff = BACKOFF_MIN_NS;
        c->cap = cap;
        c->ring = malloc(cap * g_o.size);
        c->in_cap = IN_START;
        c->in = malloc(c->in_cap);
        if (!c->ring || !c->in)
            return -1;
        load_frame_template(c->ring, cap);
    }
    return 0;
}

uint64_t load_acked_sent(const sender_t *t, int i, uint32_t *index)
{
    *index = t->aconns[i].index;
    return t->aconns[i].next_gen - 1;
}

void load_acked_free(sender_t *t)
{
    free(t->ack_hist);
    t->ack_hist = NULL;
    if (!t->aconns)
        return;
    for (int i = 0; i < t->nconns; i++) {
        free(t->aconns[i].ring);
        free(t->aconns[i].in);
    }
    free(t->aconns);
    t->aconns = NULL;
}

static inline uint8_t *slot(const aconn_t *c, uint64_t seq)
{
    return c->ring + ((seq - 1) & (c->cap - 1)) * g_o.size;
}

/* Makes room for n retained frames; false when out of memory. */
static bool ring_reserve(aconn_t *c, uint64_t n)
{
    if (n <= c->cap)
        return true;
    uint64_t cap = c->cap;
    while (cap < n)
        cap *= 2;
    uint8_t *ring = malloc(cap * g_o.size);
    if (!ring)
        return false;
    load_frame_template(ring, cap);
    for (uint64_t s = c->acked + 1; s < c->next_gen; s++)
        memcpy(ring + ((s - 1) & (cap - 1)) * g_o.size, slot(c, s), g_o.size);
    free(c->ring);
    c->ring = ring;
    c->cap = cap;
    return true;
}

static void arm_out(actx_t *x, aconn_t *c, bool on)
{
    if (c->out_armed == on)
        return;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | (on ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(x->epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->out_armed = on;
}

/* Closes the connection. failover: the next connection goes to the next target (unless a
 * GOAWAY named one); soon: no backoff (a GOAWAY after WELCOME: the receiver asked us to move). */
static void conn_drop(actx_t *x, aconn_t *c, uint64_t now, const char *why, bool soon)
{
    (void)x;
    if (c->fd >= 0)
        close(c->fd);
    if ((c->state == ST_STREAMING || c->state == ST_LEAVING) && !g_o.quiet)
        fprintf(stderr,
                "rill-load: connection %u to %s: %s; reconnecting (%" PRIu64
                " frames unacknowledged)\n",
                c->index, c->peer, why, c->next_gen - 1 - c->acked);
    snprintf(c->why, sizeof c->why, "%s: %s", c->peer, why);
    c->fd = -1;
    c->state = ST_DOWN;
    if (!c->stall_ns)
        c->stall_ns = now;
    c->commit = c->wr_seq = c->acked + 1; /* nothing is committed to the next connection yet */
    c->out_blocked = c->out_armed = false;
    c->in_have = 0;
    c->ctl_off = c->ctl_len = 0;
    c->wr_off = 0;
    if (!c->redirect[0] && g_o.ntargets > 1)
        c->tgt = (c->tgt + 1) % g_o.ntargets;
    if (soon) {
        c->retry_at = now;
    } else {
        c->retry_at = now + c->backoff;
        c->backoff = c->backoff * 2 > BACKOFF_MAX_NS ? BACKOFF_MAX_NS : c->backoff * 2;
    }
}

static void conn_start(actx_t *x, aconn_t *c, uint64_t now)
{
    snprintf(c->peer, sizeof c->peer, "%s", c->redirect[0] ? c->redirect : g_o.targets[c->tgt]);
    c->redirect[0] = 0;
    struct addrinfo *ai;
    char err[512];
    if (load_resolve(c->peer, false, &ai, err, sizeof err) < 0) {
        conn_drop(x, c, now, err, false);
        return;
    }
    int fd = -1, e = 0;
    for (struct addrinfo *p = ai; p; p = p->ai_next) {
        fd = socket(p->ai_family, p->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, p->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, p->ai_addr, p->ai_addrlen) == 0 || errno == EINPROGRESS)
            break;
        e = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd < 0) {
        conn_drop(x, c, now, strerror(e), false);
        return;
    }
    c->fd = fd;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(x->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        conn_drop(x, c, now, strerror(errno), false);
        return;
    }
    c->out_armed = true;
    c->state = ST_CONNECTING;
    c->deadline = now + HANDSHAKE_NS;
}

/* Writes the HELLO, then the committed frames; stops at EAGAIN (EPOLLOUT resumes). Returns 1
 * when it wrote something, 0 when not, -1 when the connection was dropped. */
static int conn_write(actx_t *x, aconn_t *c, uint64_t now)
{
    const uint64_t S = g_o.size;
    int wrote = 0;
    if (c->out_blocked)
        return 0;
    while (c->ctl_off < c->ctl_len) {
        ssize_t n = send(c->fd, c->ctl + c->ctl_off, c->ctl_len - c->ctl_off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            c->out_blocked = true;
            arm_out(x, c, true);
            return 0;
        }
        if (n < 0) {
            conn_drop(x, c, now, strerror(errno), false);
            return -1;
        }
        c->ctl_off += (uint32_t)n;
        wrote = 1;
    }
    c->ctl_off = c->ctl_len = 0;
    while (c->wr_seq < c->commit) {
        uint64_t frames = c->commit - c->wr_seq;
        if (frames > (uint64_t)g_batch)
            frames = (uint64_t)g_batch;
        uint64_t at = (c->wr_seq - 1) & (c->cap - 1);
        uint64_t first = frames < c->cap - at ? frames : c->cap - at;
        struct iovec iov[2] = {
            {.iov_base = c->ring + at * S + c->wr_off, .iov_len = (size_t)(first * S - c->wr_off)},
            {.iov_base = c->ring, .iov_len = (size_t)((frames - first) * S)}};
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = frames > first ? 2 : 1};
        ssize_t n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            c->out_blocked = true;
            arm_out(x, c, true);
            return wrote;
        }
        if (n < 0) {
            conn_drop(x, c, now, strerror(errno), false);
            return -1;
        }
        uint64_t done = c->wr_off + (uint64_t)n;
        c->wr_seq += done / S;
        c->wr_off = done % S;
        wrote = 1;
    }
    return wrote;
}

static void fail_stream(aconn_t *c, const char *why)
{
    fprintf(stderr, "rill-load: connection %u: %s; giving up (%" PRIu64 " frames unacknowledged)\n",
            c->index, why, c->next_gen - 1 - c->acked);
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->failed = true;
    c->state = ST_DONE;
}

/* A receiver's control frame m. Returns false when the connection was dropped or the stream
 * failed. */
static bool on_control(actx_t *x, aconn_t *c, const wire_ctl_t *m, uint64_t now)
{
    char why[512];
    switch (m->type) {
    case WIRE_WELCOME:
        if (c->state != ST_WELCOME)
            break;
        if (m->seq > c->next_gen - 1) {
            snprintf(why, sizeof why,
                     "WELCOME says the receiver holds seq %" PRIu64
                     ", above the last sent (%" PRIu64 ")",
                     m->seq, c->next_gen - 1);
            conn_drop(x, c, now, why, false);
            return false;
        }
        if (m->credit < g_o.size) {
            snprintf(why, sizeof why, "%s grants %u bytes of credit, less than one %u-byte frame",
                     c->peer, m->credit, g_o.size);
            fail_stream(c, why);
            return false;
        }
        if (m->seq > c->acked)
            c->acked = m->seq;                /* held safe: freed */
        c->commit = c->wr_seq = c->acked + 1; /* = max(first_seq, acked_seq + 1) */
        c->wr_off = 0;
        c->credit = m->credit;
        c->stall_ns = 0;
        c->backoff = BACKOFF_MIN_NS;
        if (c->welcomed_once)
            c->reconnects++;
        c->welcomed_once = true;
        c->state = ST_STREAMING;
        return true;
    case WIRE_ACK:
        if (c->state != ST_STREAMING && c->state != ST_LEAVING)
            break;
        if (m->seq > c->wr_seq - 1) {
            snprintf(why, sizeof why,
                     "ACK through seq %" PRIu64 ", above the last frame written (%" PRIu64 ")",
                     m->seq, c->wr_seq - 1);
            conn_drop(x, c, now, why, false);
            return false;
        }
        if (m->seq > c->acked) {
            /* Ack latency: from the send time stamp of the newest frame it covers. */
            uint64_t sent_at = load_le64(slot(c, m->seq) + 16 + PL_TS);
            if (x->t->ack_hist && now > sent_at)
                rill__hist_record(x->t->ack_hist, now - sent_at);
            c->acked = m->seq;
            c->stall_ns = c->commit - 1 > c->acked ? now : 0;
        }
        if (m->credit < g_o.size) {
            snprintf(why, sizeof why, "%s grants %u bytes of credit, less than one %u-byte frame",
                     c->peer, m->credit, g_o.size);
            fail_stream(c, why);
            return false;
        }
        c->credit = m->credit;
        return true;
    case WIRE_GOAWAY:
        if (c->state != ST_WELCOME && c->state != ST_STREAMING && c->state != ST_LEAVING)
            break;
        c->goaways++;
        if (m->addr_len && m->addr_len < sizeof c->redirect) {
            c->redirects++;
            memcpy(c->redirect, m->addr, m->addr_len);
            c->redirect[m->addr_len] = 0;
        }
        if (c->state == ST_WELCOME) {
            /* Refused before any frame: back off, or a receiver that keeps refusing spins. */
            conn_drop(x, c, now, "GOAWAY instead of WELCOME", false);
            return false;
        }
        /* Stop committing; finish the frame being written and wait a little for the ACK of
         * what was sent, so that less is resent elsewhere. */
        c->commit = c->wr_seq + (c->wr_off ? 1 : 0);
        c->state = ST_LEAVING;
        c->deadline = now + LEAVE_WAIT_NS;
        return true;
    default:
        break;
    }
    snprintf(why, sizeof why, "unexpected control frame type %u from the receiver", m->type);
    conn_drop(x, c, now, why, false);
    return false;
}

/* Reads the receiver's control frames. Returns false when the connection was dropped. */
static bool conn_read(actx_t *x, aconn_t *c, uint64_t now)
{
    for (;;) {
        ssize_t n = recv(c->fd, c->in + c->in_have, c->in_cap - c->in_have, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        if (n <= 0) {
            conn_drop(x, c, now, n ? strerror(errno) : "closed by the receiver", false);
            return false;
        }
        c->in_have += (size_t)n;
        size_t off = 0;
        while (c->in_have - off >= 4) {
            const uint8_t *f = c->in + off;
            uint32_t flen = wire_get32(f);
            const char *bad = NULL;
            if (flen < 12 || flen > IN_MAX - 4)
                bad = "a frame length out of bounds from the receiver";
            size_t total = 4 + (size_t)flen;
            if (!bad && c->in_have - off < total) {
                if (total > c->in_cap) {
                    memmove(c->in, f, c->in_have - off);
                    c->in_have -= off;
                    off = 0;
                    uint8_t *in = realloc(c->in, total);
                    if (!in) {
                        conn_drop(x, c, now, "out of memory", false);
                        return false;
                    }
                    c->in = in;
                    c->in_cap = total;
                }
                break;
            }
            wire_ctl_t m;
            if (!bad && wire_get32(f + 4) != WIRE_CONTROL_COMP)
                bad = "a data frame from the receiver";
            if (!bad)
                bad = wire_parse(f, total, &m);
            if (bad) {
                conn_drop(x, c, now, bad, false);
                return false;
            }
            if (!on_control(x, c, &m, now))
                return false;
            off += total;
        }
        c->in_have -= off;
        if (c->in_have && off)
            memmove(c->in, c->in + off, c->in_have);
    }
}

static void connected(actx_t *x, aconn_t *c, uint64_t now)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err) {
        conn_drop(x, c, now, strerror(err), false);
        return;
    }
    arm_out(x, c, false);
    c->ctl_len = (uint32_t)wire_hello(c->ctl, c->stream, c->acked + 1);
    c->ctl_off = 0;
    c->state = ST_WELCOME;
    c->deadline = now + HANDSHAKE_NS;
    conn_write(x, c, now);
}

static void finish(aconn_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->state = ST_DONE;
}

/* Commits what the credit allows (resends first, then new frames) and writes. */
static int stream_send(actx_t *x, aconn_t *c, uint64_t now, uint64_t *quota, bool gen_done)
{
    const uint64_t S = g_o.size;
    if (c->out_blocked)
        return 0;
    uint64_t inflight = c->commit - 1 - c->acked;
    uint64_t room = c->credit / S > inflight ? c->credit / S - inflight : 0;
    uint64_t resend = c->next_gen - c->commit;
    bool gen = !gen_done && *quota > 0;
    if (!room) {
        if ((resend || gen) && !c->waiting_credit) {
            c->credit_waits++;
            c->waiting_credit = true;
        }
    } else {
        c->waiting_credit = false;
    }
    uint64_t b = (uint64_t)g_batch;
    uint64_t k = room < resend ? room : resend;
    if (k > b)
        k = b;
    c->commit += k;
    c->resent += k;
    room -= k;
    if (room && gen && k < b) {
        uint64_t m = b - k;
        if (m > room)
            m = room;
        if (m > *quota)
            m = *quota;
        if (g_o.count && m > g_o.count - (c->next_gen - 1))
            m = g_o.count - (c->next_gen - 1);
        if (!ring_reserve(c, c->next_gen - 1 - c->acked + m)) {
            fail_stream(c, "out of memory for unacknowledged frames");
            return -1;
        }
        uint64_t at = (c->next_gen - 1) & (c->cap - 1);
        uint64_t first = m < c->cap - at ? m : c->cap - at;
        load_fill(slot(c, c->next_gen), (uint32_t)first, c->index, c->next_gen - 1, &x->rng,
                  x->ts_per_frame);
        if (m > first)
            load_fill(c->ring, (uint32_t)(m - first), c->index, c->next_gen - 1 + first, &x->rng,
                      x->ts_per_frame);
        c->next_gen += m;
        c->commit += m;
        *quota -= m;
        x->generated += m;
    }
    if (c->commit - 1 > c->acked && !c->stall_ns)
        c->stall_ns = now;
    return conn_write(x, c, now);
}

/* One round for c. Returns true when it wrote (the loop then polls without waiting). */
static bool step(actx_t *x, aconn_t *c, uint64_t now, uint64_t *quota, bool stop, bool skip_drain)
{
    bool gen_done = stop || (g_o.count && c->next_gen - 1 >= g_o.count);
    if (gen_done && !c->gen_end_ns)
        c->gen_end_ns = now;
    uint64_t unacked = c->next_gen - 1 - c->acked;
    if (gen_done &&
        (!unacked || skip_drain || now >= c->gen_end_ns + (uint64_t)(g_o.drain * 1e9))) {
        finish(c);
        return false;
    }
    if (c->stall_ns && now - c->stall_ns > (uint64_t)(g_o.retry_for * 1e9)) {
        char why[640];
        snprintf(why, sizeof why, "no WELCOME or ACK for %.1f s (%s)", g_o.retry_for,
                 c->why[0] ? c->why : c->peer);
        fail_stream(c, why);
        return false;
    }
    switch (c->state) {
    case ST_DOWN:
        if (now >= c->retry_at)
            conn_start(x, c, now);
        return false;
    case ST_CONNECTING:
    case ST_WELCOME:
        if (now >= c->deadline)
            conn_drop(x, c, now,
                      c->state == ST_CONNECTING ? "connect timed out"
                                                : "no WELCOME (does the receiver speak "
                                                  "acknowledged streams?)",
                      false);
        else if (c->state == ST_WELCOME)
            conn_write(x, c, now); /* the rest of the HELLO, if any */
        return false;
    case ST_LEAVING:
        if (conn_write(x, c, now) < 0)
            return false;
        if (c->acked + 1 >= c->commit || now >= c->deadline)
            conn_drop(x, c, now, "GOAWAY", true);
        return false;
    case ST_STREAMING:
        return stream_send(x, c, now, quota, gen_done) > 0;
    default:
        return false;
    }
}

static uint64_t wake_of(const aconn_t *c)
{
    switch (c->state) {
    case ST_DOWN:
        return c->retry_at;
    case ST_CONNECTING:
    case ST_WELCOME:
    case ST_LEAVING:
        return c->deadline;
    default:
        return UINT64_MAX;
    }
}

void *load_acked_main(void *arg)
{
    sender_t *t = arg;
    actx_t x = {.t = t, .rng = load_rng_init(t->id), .ts_per_frame = g_o.rate > 0};
    x.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (x.epfd < 0) {
        perror("rill-load: epoll_create1");
        for (int i = 0; i < t->nconns; i++) {
            t->aconns[i].failed = true;
            t->aconns[i].state = ST_DONE;
        }
    }
    const bool paced = g_o.rate > 0;
    const double rate_ns = paced ? g_o.rate * t->nconns / g_o.connections / 1e9 : 0;
    uint64_t min_burst = 1;
    if (paced) {
        double b = rate_ns * 100000.0;
        min_burst = b < 1 ? 1 : b > g_batch ? (uint64_t)g_batch : (uint64_t)b;
    }
    const uint64_t end = g_o.count ? UINT64_MAX : g_start_ns + (uint64_t)(g_o.duration * 1e9);
    for (int i = 0; i < t->nconns; i++)
        t->aconns[i].stall_ns = g_start_ns;
    uint64_t stop_ns = 0;
    int sig0 = 0, rr = 0;
    struct epoll_event evs[64];

    for (;;) {
        uint64_t now = now_ns();
        if (!stop_ns && (atomic_load_explicit(&g_stop_send, memory_order_relaxed) || now >= end)) {
            stop_ns = now;
            sig0 = g_sigint;
        }
        bool skip_drain = stop_ns && g_sigint > sig0; /* a second SIGINT */
        uint64_t quota = UINT64_MAX, wake = now + 10000000ull;
        if (paced) {
            uint64_t target = (uint64_t)((double)(now - g_start_ns) * rate_ns);
            quota = target > x.generated ? target - x.generated : 0;
            if (quota < min_burst) {
                quota = 0;
                uint64_t due = g_start_ns + (uint64_t)((double)(x.generated + min_burst) / rate_ns);
                if (due < wake)
                    wake = due;
            }
        }
        int live = 0;
        bool busy = false;
        uint64_t acked = 0;
        for (int k = 0; k < t->nconns; k++) {
            aconn_t *c = &t->aconns[(rr + k) % t->nconns];
            if (c->state != ST_DONE)
                busy |= step(&x, c, now, &quota, stop_ns != 0, skip_drain);
            if (c->state != ST_DONE) {
                live++;
                uint64_t w = wake_of(c);
                if (w < wake)
                    wake = w;
            }
            acked += c->acked;
        }
        rr = (rr + 1) % t->nconns;
        atomic_store_explicit(&t->frames, x.generated, memory_order_relaxed);
        atomic_store_explicit(&t->bytes, x.generated * g_o.size, memory_order_relaxed);
        atomic_store_explicit(&t->acked, acked, memory_order_relaxed);
        if (!live)
            break;
        int timeout = 0;
        if (!busy) {
            now = now_ns();
            timeout = wake <= now ? 0 : (int)((wake - now + 999999) / 1000000);
            if (timeout > 10)
                timeout = 10;
        }
        int n = epoll_wait(x.epfd, evs, 64, timeout);
        now = now_ns();
        for (int i = 0; i < n; i++) {
            aconn_t *c = evs[i].data.ptr;
            if (c->fd < 0)
                continue; /* dropped by an earlier event of this round */
            if (c->state == ST_CONNECTING) {
                connected(&x, c, now);
                continue;
            }
            if ((evs[i].events & EPOLLOUT) && c->out_blocked) {
                c->out_blocked = false;
                arm_out(&x, c, false);
            }
            if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
                conn_read(&x, c, now);
        }
    }
    if (x.epfd >= 0)
        close(x.epfd);
    for (int i = 0; i < t->nconns; i++) {
        aconn_t *c = &t->aconns[i];
        t->resent += c->resent;
        t->reconnects += c->reconnects;
        t->goaways += c->goaways;
        t->redirects += c->redirects;
        t->credit_waits += c->credit_waits;
        t->unacked += c->next_gen - 1 - c->acked;
        t->errors += c->failed;
    }
    t->end_ns = now_ns();
    atomic_store_explicit(&t->done, true, memory_order_release);
    return NULL;
}
