/* The links' I/O: connect with backoff, one send in flight per link, hang-up detection,
 * and what a failed send means for the frames it carried. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "link/acked.h"
#include "link/internal.h"
#include "util/stat.h"

#define BACKOFF_MIN_NS (50ull * 1000000ull)
#define BACKOFF_MAX_NS (1000ull * 1000000ull)

#define PEER_BASE RILL_LINK_PEER_BASE

rill__link_t *rill__link_at(rill__links_t *ls, unsigned li)
{
    if (li >= PEER_BASE + RILL_PEER_SLOTS)
        return NULL;
    return li < PEER_BASE ? &ls->sinks[li] : &ls->peers[li - PEER_BASE];
}

static int link_is_sink(const rill__links_t *ls, const rill__link_t *k)
{
    return k >= ls->sinks && k < ls->sinks + RILL_MAX_SINKS;
}

unsigned rill__link_index(const rill__links_t *ls, const rill__link_t *k)
{
    return k >= ls->peers ? PEER_BASE + (unsigned)(k - ls->peers) : (unsigned)(k - ls->sinks);
}

#define link_at rill__link_at
#define link_index rill__link_index

/* A peer slot is given up: its descriptor closed, its queues freed, its generation moved
 * on so that completions of its last use are ignored. */
void rill__link_release(rill__link_t *k)
{
    if (k->fd >= 0)
        close(k->fd);
    uint32_t gen = k->gen + 1;
    uint64_t *dropped = k->dropped;
    /* Everything this use of the slot was given is resolved: the next use counts on. */
    uint64_t base = k->base + (k->ack ? rill__acked_appended(k) : 0);
    rill__buf_free(&k->pend);
    rill__buf_free(&k->fly);
    rill__acked_free(k->ack);
    memset(k, 0, sizeof *k);
    k->fd = -1;
    k->gen = gen;
    k->dropped = dropped;
    k->base = base;
}

void rill__link_release_when_idle(rill__link_t *k)
{
    if (!k->sending && !k->op_pending && !(k->ack && k->ack->rx_armed))
        rill__link_release(k);
}

/* Stops watching a link's connection for hang-up (before its fd is closed). */
void rill__link_hup_cancel(rill__links_t *ls, rill__link_t *k)
{
    if (!k->hup_armed)
        return;
    rill__ring_cancel(ls->ring, RILL_UD(RILL_OP_LINK_HUP, link_index(ls, k), k->conn_seq));
    k->hup_armed = 0;
}

void rill__link_down(rill__links_t *ls, rill__link_t *k, int err, uint64_t now)
{
    rill__link_hup_cancel(ls, k);
    if (k->ack) {
        /* Cancel before close, as for sources; the recv's buffer stays until it reports. */
        if (k->ack->rx_armed)
            rill__ring_cancel(ls->ring,
                              RILL_UD(RILL_OP_LINK_RECV, link_index(ls, k), k->ack->rx_conn));
        rill__acked_on_down(k);
    }
    if (k->fd >= 0)
        close(k->fd);
    k->fd = -1;
    if (k->state == RILL_LINK_UP && link_is_sink(ls, k))
        RILL_STAT_SUB(ls->stats->sinks_up, 1);
    k->state = RILL_LINK_DOWN;
    k->backoff = k->backoff ? k->backoff * 2 : BACKOFF_MIN_NS;
    if (k->backoff > BACKOFF_MAX_NS)
        k->backoff = BACKOFF_MAX_NS;
    k->retry_at = now + k->backoff;
    RILL_STAT_ADD(ls->stats->sink_errors, 1);
    char addr[96];
    rill__addr_format(&k->addr, addr, sizeof addr);
    if (k->id[0])
        rill__log_once(&ls->logged->peer_err,
                       "peer %s at %s: %s; retrying with backoff (failures counted in "
                       "sink_errors)",
                       k->id, addr, rill_strerror(err));
    else
        rill__log_once(&ls->logged->sink_err,
                       "sink %s: %s; retrying with backoff (failures counted in sink_errors)", addr,
                       rill_strerror(err));
}

static void link_connect(rill__links_t *ls, rill__link_t *k, uint64_t now)
{
    k->lazy = 0; /* in use from now on: reconnects like any link */
    int fd = socket(k->addr.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rill__link_down(ls, k, -errno, now);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    k->fd = fd;
    k->state = RILL_LINK_CONNECTING;
    k->op_pending = 1;
    struct io_uring_sqe *sqe = rill__ring_sqe(ls->ring);
    io_uring_prep_connect(sqe, fd, (const struct sockaddr *)&k->addr.ss, k->addr.len);
    io_uring_sqe_set_data64(sqe, RILL_UD(RILL_OP_LINK_CONNECT, link_index(ls, k), k->gen));
}

static void send_fly(rill__links_t *ls, rill__link_t *k)
{
    struct io_uring_sqe *sqe = rill__ring_sqe(ls->ring);
    io_uring_prep_send(sqe, k->fd, k->fly.data + k->fly_off, k->fly.len - k->fly_off, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, RILL_UD(RILL_OP_LINK_SEND, link_index(ls, k), k->gen));
    k->sending = 1;
}

/* At most one send in flight per link: frames queued meanwhile accumulate in pend and
 * leave in one send when the current one completes. */
static void kick(rill__links_t *ls, rill__link_t *k)
{
    if (k->ack) {
        rill__acked_kick(ls, k);
        return;
    }
    if (k->state != RILL_LINK_UP || k->sending || k->pend.len == 0)
        return;
    rill__buf_t t = k->fly;
    k->fly = k->pend;
    k->pend = t;
    k->pend.len = 0;
    k->pend.frames = 0;
    k->fly_off = 0;
    send_fly(ls, k);
}

static void service(rill__links_t *ls, rill__link_t *k, uint64_t now, int may_connect)
{
    /* An acked link's control recv must have reported before its buffer serves again. */
    if (k->state == RILL_LINK_DOWN && now >= k->retry_at && may_connect &&
        !(k->ack && k->ack->rx_armed) && rill__link_wants_connect(k))
        link_connect(ls, k, now);
    kick(ls, k);
    if (k->ack)
        rill__acked_trim(k->ack, now);
}

void rill__links_service(rill__links_t *ls, uint64_t now, int may_connect)
{
    for (unsigned s = 0; s < ls->nsinks; s++)
        service(ls, &ls->sinks[s], now, may_connect);
    for (unsigned p = 0; ls->clustered && p < RILL_PEER_SLOTS; p++) {
        rill__link_t *k = &ls->peers[p];
        if (k->in_use && !k->retiring)
            service(ls, k, now, may_connect);
        else if (k->retiring && k->ack && k->ack->draining)
            rill__acked_drain_service(ls, k, now);
    }
}

/* A send failed: nothing of it reached the kernel, and the bytes before fly_off did (the
 * earlier short sends). Frames from the one cut at fly_off onwards go back in front of
 * pend, to be sent again whole after the reconnect (or re-routed). Frames the kernel
 * had taken are beyond rill's knowledge: TCP without acknowledgements cannot tell
 * whether the other side read them, so they are not counted as dropped either. */
static void requeue_unsent(rill__link_t *k)
{
    size_t off = 0, keep = k->fly.len;
    uint64_t frames = 0;
    while (off + 4 <= k->fly.len) {
        size_t next = off + 4 + rill__load_be32(k->fly.data + off);
        if (next > k->fly_off) { /* the first frame not wholly handed to the kernel */
            if (keep == k->fly.len)
                keep = off;
            frames++;
        }
        off = next;
    }
    size_t rest = k->fly.len - keep;
    /* They were queued within the cap once: no cap now, only memory can refuse them. */
    if (rest && rill__buf_reserve(&k->fly, k->pend.len, SIZE_MAX) == 0) {
        memmove(k->fly.data, k->fly.data + keep, rest);
        memcpy(k->fly.data + rest, k->pend.data, k->pend.len);
        k->fly.len = rest + k->pend.len;
        k->fly.frames = frames + k->pend.frames;
        rill__buf_t t = k->pend;
        k->pend = k->fly;
        k->fly = t;
    } else if (rest) {
        RILL_STAT_ADD(*k->dropped, frames); /* no memory to merge them */
    }
    k->fly.len = 0;
    k->fly.frames = 0;
    k->fly_off = 0;
}

/* Moves everything k has queued to ls->reroute (the member left). */
void rill__link_move_to_reroute(rill__links_t *ls, rill__link_t *k)
{
    rill__buf_t *r = rill__link_reroute_buf(ls, k);
    if (k->pend.len == 0)
        return;
    if (r->len == 0) {
        rill__buf_t t = *r;
        *r = k->pend;
        k->pend = t;
    } else if (rill__buf_reserve(r, k->pend.len, SIZE_MAX) == 0) {
        memcpy(r->data + r->len, k->pend.data, k->pend.len);
        r->len += k->pend.len;
        r->frames += k->pend.frames;
    } else {
        RILL_STAT_ADD(*k->dropped, k->pend.frames);
    }
    k->pend.len = 0;
    k->pend.frames = 0;
    rill__acked_clear_pend_marks(k);
}

/* The link a completion names: NULL when it belongs to an earlier use of the slot. */
static rill__link_t *link_of(rill__links_t *ls, const struct io_uring_cqe *cqe)
{
    unsigned li = RILL_UD_IDX(cqe->user_data);
    if (li >= PEER_BASE + RILL_PEER_SLOTS)
        return NULL;
    rill__link_t *k = link_at(ls, li);
    return k->gen == RILL_UD_GEN(cqe->user_data) ? k : NULL;
}

static void on_connect(rill__links_t *ls, const struct io_uring_cqe *cqe, uint64_t now)
{
    rill__link_t *k = link_of(ls, cqe);
    if (!k)
        return;
    k->op_pending = 0;
    if (k->retiring) {
        rill__link_release_when_idle(k);
        return;
    }
    if (cqe->res < 0) {
        k->refused = cqe->res == -ECONNREFUSED;
        rill__link_down(ls, k, cqe->res, now);
        return;
    }
    k->refused = 0;
    k->state = RILL_LINK_UP;
    if (link_is_sink(ls, k))
        RILL_STAT_ADD(ls->stats->sinks_up, 1);
    k->backoff = 0;
    k->conn_seq = ++ls->conn_seq;
    if (k->ack) {
        rill__acked_on_up(ls, k); /* HELLO; its recv notices a hang-up too */
        return;
    }
    /* Nothing is ever read from a link: watch for its hang-up instead, so a receiver that
     * goes away is noticed at once, not by the first send after it (which the kernel
     * would still accept, and lose). */
    struct io_uring_sqe *sqe = rill__ring_sqe(ls->ring);
    io_uring_prep_poll_add(sqe, k->fd, POLLRDHUP | POLLHUP | POLLERR);
    io_uring_sqe_set_data64(sqe, RILL_UD(RILL_OP_LINK_HUP, link_index(ls, k), k->conn_seq));
    k->hup_armed = 1;
}

static void on_hup(rill__links_t *ls, const struct io_uring_cqe *cqe, uint64_t now)
{
    unsigned li = RILL_UD_IDX(cqe->user_data);
    if (li >= PEER_BASE + RILL_PEER_SLOTS || cqe->res == -ECANCELED)
        return;
    rill__link_t *k = link_at(ls, li);
    if (!k->hup_armed || k->conn_seq != RILL_UD_GEN(cqe->user_data))
        return; /* an earlier connection of this link */
    k->hup_armed = 0;
    if (k->sending) {
        /* Make the send in flight fail: its frames are then queued again. */
        shutdown(k->fd, SHUT_RDWR);
        return;
    }
    rill__link_down(ls, k, cqe->res < 0 ? cqe->res : -ECONNRESET, now);
}

static void on_send(rill__links_t *ls, const struct io_uring_cqe *cqe, uint64_t now)
{
    rill__link_t *k = link_of(ls, cqe);
    if (!k)
        return;
    k->sending = 0;
    if (k->ack && k->retiring) {
        rill__acked_t *a = k->ack;
        if (a->draining && cqe->res > 0) { /* a send to a member that left: let it finish */
            rill__acked_sent(ls, k, cqe->res);
            if (k->sending || rill__acked_held(a))
                return;
            /* Its ACK was read before this completion: nothing left to wait for. */
            rill__acked_hand_back(ls, k);
            shutdown(k->fd, SHUT_RDWR);
        }
        if (a->draining) { /* it failed: hand everything back */
            rill__acked_hand_back(ls, k);
            shutdown(k->fd, SHUT_RDWR);
        }
        rill__link_release_when_idle(k);
        return;
    }
    if (k->ack) { /* everything sent stays retained until acknowledged: no requeue */
        if (cqe->res <= 0 || k->ack->failed)
            rill__link_down(ls, k,
                            cqe->res < 0     ? cqe->res
                            : k->ack->failed ? k->ack->failed
                                             : -EPIPE,
                            now);
        else if (k->state == RILL_LINK_UP)
            rill__acked_sent(ls, k, cqe->res);
        return;
    }
    if (cqe->res <= 0) {
        requeue_unsent(k);
        if (k->retiring) {
            /* The member left: what it did not take goes to the keys' new owners. */
            rill__link_move_to_reroute(ls, k);
            rill__link_release(k);
            return;
        }
        rill__link_down(ls, k, cqe->res ? cqe->res : -EPIPE, now);
        return;
    }
    RILL_STAT_ADD(ls->stats->bytes_out, (uint64_t)cqe->res);
    k->fly_off += (size_t)cqe->res;
    if (k->fly_off < k->fly.len) {
        send_fly(ls, k); /* short send: the rest, before anything newer */
        return;
    }
    k->fly.len = 0;
    k->fly.frames = 0;
    if (k->retiring) {
        rill__link_release(k);
        return;
    }
    kick(ls, k);
}

void rill__links_on_completion(rill__links_t *ls, const struct io_uring_cqe *cqe, uint64_t now)
{
    switch (RILL_UD_OP(cqe->user_data)) {
    case RILL_OP_LINK_CONNECT:
        on_connect(ls, cqe, now);
        break;
    case RILL_OP_LINK_SEND:
        on_send(ls, cqe, now);
        break;
    case RILL_OP_LINK_HUP:
        on_hup(ls, cqe, now);
        break;
    case RILL_OP_LINK_RECV:
        rill__acked_on_recv(ls, cqe, now);
        break;
    default:
        break;
    }
}
