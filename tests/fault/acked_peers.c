/* The test ends of acknowledged streams (see acked_peers.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "fault/acked_peers.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "integration/tcp_util.h"

#define CTL 0xFFFFFFFFu
enum { T_HELLO = 1, T_WELCOME = 2, T_ACK = 3, T_GOAWAY = 4 };

/* ------------------------------------------------------------ control frames */

/* u32 length, u32 comp id = 0xFFFFFFFF, u64 key = type, big-endian fields. */
static size_t put_ctl_head(uint8_t *f, uint32_t payload, uint64_t type)
{
    tu_put_be32(f, 12 + payload);
    tu_put_be32(f + 4, CTL);
    tu_put_be64(f + 8, type);
    return 16 + payload;
}

static void send_welcome(int fd, uint32_t credit, uint64_t acked)
{
    uint8_t f[16 + 12];
    put_ctl_head(f, 12, T_WELCOME);
    tu_put_be32(f + 16, credit);
    tu_put_be64(f + 20, acked);
    tu_write_all(fd, f, sizeof f);
}

static void send_ack(int fd, uint64_t through, uint32_t credit)
{
    uint8_t f[16 + 12];
    put_ctl_head(f, 12, T_ACK);
    tu_put_be64(f + 16, through);
    tu_put_be32(f + 24, credit);
    tu_write_all(fd, f, sizeof f);
}

/* ------------------------------------------------------------ the sink */

static void count(asink_t *s, const uint8_t *p, uint32_t len, uint64_t key)
{
    ap_pay_t y;
    pthread_mutex_lock(&s->mu);
    if (len < sizeof y) { /* a payload may carry padding after it */
        s->bad++;
        pthread_mutex_unlock(&s->mu);
        return;
    }
    memcpy(&y, p, sizeof y);
    if (y.magic != AP_MAGIC || y.src >= s->nsrc || key != y.src || y.seq >= s->per_src) {
        s->bad++;
    } else {
        uint64_t *bits = &s->seen[y.src][y.seq / 64];
        if (*bits & (1ull << (y.seq % 64)))
            s->dups++;
        else
            *bits |= 1ull << (y.seq % 64);
        if (y.seq > s->next[y.src])
            s->gaps++; /* out of order within a key */
        if (y.seq >= s->next[y.src])
            s->next[y.src] = y.seq + 1;
        s->frames++;
    }
    pthread_mutex_unlock(&s->mu);
}

static int find_stream(asink_t *s, uint64_t id)
{
    for (unsigned i = 0; i < s->nstreams; i++)
        if (s->stream_id[i] == id)
            return (int)i;
    if (s->nstreams == AP_MAXS)
        return -1;
    s->stream_id[s->nstreams] = id;
    s->counted[s->nstreams] = 0;
    return (int)s->nstreams++;
}

/* Handles the frames in c's buffer; returns -1 when the connection must go. */
static int handle(asink_t *s, ap_sconn_t *c)
{
    size_t pos = 0;
    int counted_any = 0;
    while (c->len - pos >= 4) {
        uint32_t flen = tu_get_be32(c->buf + pos);
        if (flen < 12 || c->len - pos < 4 + (size_t)flen)
            break;
        const uint8_t *f = c->buf + pos;
        uint32_t comp = tu_get_be32(f + 4);
        uint64_t key = tu_get_be64(f + 8);
        const uint8_t *p = f + 16;
        uint32_t plen = flen - 12;
        pos += 4 + flen;
        if (c->stream < 0) { /* the first frame must be HELLO */
            if (comp != CTL || key != T_HELLO || plen < 20 || p[0] != 0 || p[1] != 2)
                return -1;
            uint64_t id = tu_get_be64(p + 4), first = tu_get_be64(p + 12);
            c->stream = find_stream(s, id);
            if (c->stream < 0 || id == 0 || first == 0)
                return -1;
            atomic_fetch_add(&s->hellos, 1);
            uint64_t acked = s->counted[c->stream];
            c->next_seq = first > acked + 1 ? first : acked + 1;
            send_welcome(c->fd, s->credit, acked);
            c->unacked = 0;
            continue;
        }
        if (comp == CTL)
            return -1; /* a sender sends no other control frame */
        /* What the sender has unacknowledged is at least what arrived since this sink's
         * last ACK (its view of the ACKs lags behind). */
        if (c->unacked && c->unacked + 4 + flen > s->credit) {
            pthread_mutex_lock(&s->mu);
            s->over_credit++;
            pthread_mutex_unlock(&s->mu);
        }
        c->unacked += 4 + flen;
        uint64_t seq = c->next_seq++;
        if (seq <= s->counted[c->stream])
            continue; /* held already (cannot happen with a sender that follows WELCOME) */
        count(s, p, plen, key);
        s->counted[c->stream] = seq;
        counted_any = 1;
    }
    memmove(c->buf, c->buf + pos, c->len - pos);
    c->len -= pos;
    if (counted_any) { /* one ACK per read, never one per frame */
        send_ack(c->fd, s->counted[c->stream], s->credit);
        c->unacked = 0;
    }
    return 0;
}

static void drop_conn(asink_t *s, unsigned i, int reset)
{
    if (reset) {
        struct linger lg = {1, 0};
        setsockopt(s->c[i].fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close(s->c[i].fd);
    free(s->c[i].buf);
    s->c[i] = s->c[--s->nc];
}

static void *asink_thread(void *arg)
{
    asink_t *s = arg;
    while (!atomic_load(&s->stop)) {
        if (atomic_load(&s->kill)) {
            /* A crash: every connection reset, the port closed for a moment. */
            while (s->nc)
                drop_conn(s, 0, 1);
            close(s->lfd);
            if (atomic_load(&s->forget))
                s->nstreams = 0;
            tu_sleep_ms(200);
            uint16_t p;
            s->lfd = tu_listen(s->port, &p);
            if (s->lfd < 0)
                abort();
            atomic_fetch_add(&s->kills, 1);
            atomic_store(&s->kill, 0);
        }
        int stall = atomic_load(&s->stall);
        struct pollfd pfd[1 + AP_MAXC];
        pfd[0] = (struct pollfd){s->lfd, POLLIN, 0};
        for (unsigned i = 0; i < s->nc; i++)
            pfd[1 + i] = (struct pollfd){s->c[i].fd, stall ? 0 : POLLIN, 0};
        if (poll(pfd, 1 + s->nc, 10) <= 0)
            continue;
        for (unsigned i = s->nc; i-- > 0;) {
            if (!pfd[1 + i].revents)
                continue;
            ap_sconn_t *c = &s->c[i];
            if (c->cap - c->len < 65536) {
                c->cap = c->cap ? c->cap * 2 : 262144;
                c->buf = realloc(c->buf, c->cap);
            }
            ssize_t k = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
            if (k <= 0 && !(k < 0 && (errno == EAGAIN || errno == EINTR))) {
                drop_conn(s, i, 0);
                continue;
            }
            if (k > 0) {
                c->len += (size_t)k;
                if (handle(s, c) < 0)
                    drop_conn(s, i, 1);
            }
        }
        if (pfd[0].revents & POLLIN) {
            int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (fd >= 0 && s->nc < AP_MAXC && !atomic_load(&s->garbage)) {
                s->c[s->nc++] = (ap_sconn_t){.fd = fd, .stream = -1};
            } else if (fd >= 0) {
                if (atomic_load(&s->garbage)) {
                    /* Not a WELCOME: a frame of the reserved id with an unknown type. */
                    uint8_t g[16 + 4] = {0, 0, 0, 16, 0xff, 0xff, 0xff, 0xff,
                                         0, 0, 0, 0,  0,    0,    0,    9};
                    tu_write_all(fd, g, sizeof g);
                    tu_sleep_ms(20);
                }
                close(fd);
            }
        }
    }
    while (s->nc)
        drop_conn(s, 0, 0);
    close(s->lfd);
    return NULL;
}

int asink_start(asink_t *s, uint32_t credit, unsigned nsrc, uint64_t per_src)
{
    memset(s, 0, sizeof *s);
    if (nsrc > AP_MAXSRC)
        return -1;
    pthread_mutex_init(&s->mu, NULL);
    s->credit = credit;
    s->nsrc = nsrc;
    s->per_src = per_src;
    for (unsigned i = 0; i < nsrc; i++)
        s->seen[i] = calloc((per_src + 63) / 64, sizeof(uint64_t));
    s->lfd = tu_listen(0, &s->port);
    if (s->lfd < 0)
        return -1;
    snprintf(s->addr, sizeof s->addr, "127.0.0.1:%u", (unsigned)s->port);
    return pthread_create(&s->thr, NULL, asink_thread, s) ? -1 : 0;
}

void asink_stop(asink_t *s)
{
    atomic_store(&s->stop, 1);
    pthread_join(s->thr, NULL);
    for (unsigned i = 0; i < s->nsrc; i++)
        free(s->seen[i]);
    pthread_mutex_destroy(&s->mu);
}

uint64_t asink_missing(asink_t *s)
{
    uint64_t missing = 0;
    pthread_mutex_lock(&s->mu);
    for (unsigned i = 0; i < s->nsrc; i++)
        for (uint64_t q = 0; q < s->per_src; q++)
            missing += !(s->seen[i][q / 64] & (1ull << (q % 64)));
    pthread_mutex_unlock(&s->mu);
    return missing;
}

uint64_t asink_frames(asink_t *s)
{
    pthread_mutex_lock(&s->mu);
    uint64_t n = s->frames;
    pthread_mutex_unlock(&s->mu);
    return n;
}

int asink_has(asink_t *s, unsigned src, uint64_t from, uint64_t upto)
{
    int all = 1;
    pthread_mutex_lock(&s->mu);
    for (uint64_t q = from; q < upto && all; q++)
        all = src < s->nsrc && q < s->per_src && (s->seen[src][q / 64] & (1ull << (q % 64)));
    pthread_mutex_unlock(&s->mu);
    return all;
}

/* ------------------------------------------------------------ the sources */

#define FRAME (16u + (uint32_t)sizeof(ap_pay_t))
#define BURST 256

static void conn_drop(asrc_t *a, ap_conn_t *c, int fail_over)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->welcomed = 0;
    c->goaway = 0;
    c->rxlen = 0;
    c->outlen = c->outoff = 0;
    if (c->next - 1 > c->acked)
        atomic_fetch_add(&a->resent, c->next - 1 - c->acked);
    c->next = c->acked + 1; /* everything unacknowledged goes again */
    if (fail_over)
        c->port_ix = (c->port_ix + 1) % a->nports;
    c->retry_at = tu_now_ms() + 10;
    atomic_fetch_add(&a->reconnects, 1);
}

static void conn_open(asrc_t *a, ap_conn_t *c)
{
    int fd = tu_connect(a->ports[c->port_ix], 200);
    if (fd < 0) {
        c->port_ix = (c->port_ix + 1) % a->nports;
        c->retry_at = tu_now_ms() + 20;
        return;
    }
    uint8_t h[16 + 20];
    put_ctl_head(h, 20, T_HELLO);
    tu_put_be32(h + 16, 2u << 16); /* version 2, flags 0 */
    tu_put_be64(h + 20, c->stream_id);
    tu_put_be64(h + 28, c->acked + 1);
    if (tu_write_all(fd, h, sizeof h) < 0) {
        close(fd);
        c->retry_at = tu_now_ms() + 20;
        return;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    c->fd = fd;
}

/* Checks that the sink counted every frame up to through before it was acknowledged. */
static void check_ack(asrc_t *a, unsigned i, ap_conn_t *c, uint64_t through)
{
    if (a->check && through > c->verified) {
        if (!asink_has(a->check, i, c->verified, through))
            atomic_fetch_add(&a->early_acks, 1);
        c->verified = through;
    }
}

/* Parses what the worker sent; returns -1 when the connection must go (protocol). */
static void note_grant(ap_conn_t *c)
{
    if (c->credit > atomic_load_explicit(&c->granted_max, memory_order_relaxed))
        atomic_store_explicit(&c->granted_max, c->credit, memory_order_relaxed);
}

static int on_rx(asrc_t *a, unsigned i, ap_conn_t *c)
{
    size_t pos = 0;
    while (c->rxlen - pos >= 16) {
        uint32_t flen = tu_get_be32(c->rx + pos);
        if (flen < 12 || flen > sizeof c->rx - 4)
            return -1;
        if (c->rxlen - pos < 4 + (size_t)flen)
            break;
        const uint8_t *f = c->rx + pos, *p = f + 16;
        uint32_t plen = flen - 12;
        uint64_t type = tu_get_be64(f + 8);
        pos += 4 + flen;
        if (tu_get_be32(f + 4) != CTL)
            return -1;
        if (type == T_WELCOME && plen >= 12 && !c->welcomed) {
            uint64_t held = tu_get_be64(p + 4);
            c->credit = tu_get_be32(p);
            note_grant(c);
            c->welcomed = 1;
            atomic_fetch_add(&a->welcomes, 1);
            if (held > c->acked && held <= c->sent_max) { /* it holds these: skip them */
                check_ack(a, i, c, held);
                atomic_fetch_add(&a->acked_total, held - c->acked);
                c->acked = held;
            }
            c->next = c->acked + 1;
        } else if (type == T_ACK && plen >= 12 && c->welcomed) {
            uint64_t through = tu_get_be64(p);
            c->credit = tu_get_be32(p + 8);
            note_grant(c);
            if (through > c->next - 1)
                return -1; /* acknowledges what this connection did not send */
            if (through > c->acked) {
                check_ack(a, i, c, through);
                atomic_fetch_add(&a->acked_total, through - c->acked);
                c->acked = through;
            }
        } else if (type == T_GOAWAY && plen >= 2) {
            if (!c->goaway)
                atomic_fetch_add(&a->goaways, 1);
            c->goaway = 1;
        } else {
            return -1;
        }
    }
    memmove(c->rx, c->rx + pos, c->rxlen - pos);
    c->rxlen -= pos;
    return 0;
}

/* Fills c->out with the next frames the credit allows. */
static void fill(asrc_t *a, unsigned i, ap_conn_t *c)
{
    size_t n = 0;
    while (n < BURST && c->next <= a->per_src &&
           (c->next - 1 - c->acked + 1) * FRAME <= c->credit) {
        ap_pay_t y = {AP_MAGIC, i, c->next - 1};
        tu_frame_encode(c->out + n * FRAME, a->comp, i, &y, sizeof y);
        if (c->next > c->sent_max)
            c->sent_max = c->next;
        c->next++;
        n++;
    }
    c->outlen = n * FRAME;
    c->outoff = 0;
}

static void *asrc_thread(void *arg)
{
    asrc_t *a = arg;
    while (!atomic_load(&a->stop)) {
        struct pollfd pfd[AP_MAXSRC];
        int64_t now = tu_now_ms();
        int all_done = 1;
        for (unsigned i = 0; i < a->nsrc; i++) {
            ap_conn_t *c = &a->c[i];
            pfd[i] = (struct pollfd){-1, 0, 0};
            if (c->acked < a->per_src)
                all_done = 0;
            if (c->fd < 0 && c->acked < a->per_src && now >= c->retry_at)
                conn_open(a, c);
            if (c->fd < 0)
                continue;
            if (c->goaway && c->acked + 1 >= c->next) {
                conn_drop(a, c, 1); /* everything it sent is acknowledged: move */
                continue;
            }
            if (c->welcomed && !c->goaway && c->outoff == c->outlen)
                fill(a, i, c);
            pfd[i] = (struct pollfd){c->fd, POLLIN | (c->outoff < c->outlen ? POLLOUT : 0), 0};
        }
        if (all_done) {
            atomic_store(&a->done, 1);
            break;
        }
        if (poll(pfd, a->nsrc, 5) <= 0)
            continue;
        for (unsigned i = 0; i < a->nsrc; i++) {
            ap_conn_t *c = &a->c[i];
            if (pfd[i].fd < 0 || !pfd[i].revents)
                continue;
            if (pfd[i].revents & POLLOUT) {
                ssize_t k = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);
                if (k > 0)
                    c->outoff += (size_t)k;
                else if (k < 0 && errno != EAGAIN && errno != EINTR) {
                    conn_drop(a, c, 1);
                    continue;
                }
            }
            if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) {
                ssize_t k = recv(c->fd, c->rx + c->rxlen, sizeof c->rx - c->rxlen, 0);
                if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR)) {
                    conn_drop(a, c, 1);
                    continue;
                }
                if (k > 0) {
                    c->rxlen += (size_t)k;
                    if (on_rx(a, i, c) < 0) {
                        atomic_fetch_add(&a->protocol, 1);
                        conn_drop(a, c, 1);
                    }
                }
            }
        }
    }
    for (unsigned i = 0; i < a->nsrc; i++)
        if (a->c[i].fd >= 0)
            close(a->c[i].fd);
    return NULL;
}

int asrc_start(asrc_t *a, const uint16_t *ports, unsigned nports, unsigned nsrc, uint64_t per_src,
               uint32_t comp, asink_t *check)
{
    memset(a, 0, sizeof *a);
    if (nsrc > AP_MAXSRC || nports == 0 || nports > AP_MAXPORTS)
        return -1;
    memcpy(a->ports, ports, nports * sizeof *ports);
    a->nports = nports;
    a->nsrc = nsrc;
    a->per_src = per_src;
    a->comp = comp;
    a->check = check;
    uint64_t run = (uint64_t)tu_now_ms() << 20 ^ (uint64_t)getpid() << 8;
    for (unsigned i = 0; i < nsrc; i++) {
        ap_conn_t *c = &a->c[i];
        c->fd = -1;
        c->port_ix = 0;
        c->stream_id = (run | i) ? (run | i) : 1;
        c->next = 1;
        c->out = malloc((size_t)BURST * FRAME);
        if (!c->out)
            return -1;
    }
    return pthread_create(&a->thr, NULL, asrc_thread, a) ? -1 : 0;
}

int asrc_join(asrc_t *a, int timeout_ms)
{
    int64_t end = tu_now_ms() + timeout_ms;
    while (!atomic_load(&a->done) && tu_now_ms() < end)
        tu_sleep_ms(10);
    atomic_store(&a->stop, 1);
    pthread_join(a->thr, NULL);
    int done = atomic_load(&a->done);
    for (unsigned i = 0; i < a->nsrc; i++) {
        ap_conn_t *c = &a->c[i];
        if (!done && timeout_ms > 0)
            fprintf(stderr,
                    "  asrc stream %u: acked %llu of %llu, next %llu, sent up to %llu, "
                    "connected %d, welcomed %d, goaway %d, credit %u\n",
                    i, (unsigned long long)c->acked, (unsigned long long)a->per_src,
                    (unsigned long long)c->next, (unsigned long long)c->sent_max, c->fd >= 0,
                    c->welcomed, c->goaway, c->credit);
        free(c->out);
    }
    return done ? 0 : -1;
}

uint32_t asrc_granted_max(asrc_t *a, unsigned i)
{
    return atomic_load_explicit(&a->c[i].granted_max, memory_order_relaxed);
}

uint64_t asrc_acked(asrc_t *a)
{
    return atomic_load(&a->acked_total);
}

/* ------------------------------------------------------------ the worker between them */

rill_config_t *ap_worker_config(const char *sink, unsigned threads)
{
    rill_config_t *cfg = rill_config_new();
    if (!cfg || rill_config_set_threads(cfg, threads) < 0 ||
        rill_config_add_listener(cfg, "127.0.0.1:0", RILL_FRAMING_RILL, 0, 0, 0) < 0) {
        rill_config_destroy(cfg);
        return NULL;
    }
    if (sink) {
        int s = rill_config_add_sink(cfg, sink);
        if (s < 0 || rill_config_set_sink_delivery(cfg, s, RILL_DELIVERY_ACKED) < 0) {
            rill_config_destroy(cfg);
            return NULL;
        }
    }
    return cfg;
}

int ap_worker_start(rill_worker_t **w, rill_config_t *cfg, uint32_t comp, rill_batch_cb batch)
{
    int rc = rill_worker_new(w, cfg);
    rill_config_destroy(cfg);
    if (rc < 0)
        return rc;
    rill_comp_ops_t ops = {batch, NULL, NULL};
    if ((rc = rill_comp_register(*w, comp, "passthrough", &ops, 0)) < 0)
        return rc;
    return rill_worker_start(*w);
}
