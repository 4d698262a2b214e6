/* Source connections: accept, multishot recv, decoding into dispatch, protocol errors,
 * cancel-then-close, and the idle sweep. */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loop/internal.h"
#include "util/stat.h"

void rill__conn_arm_accept(rill__loop_t *l, unsigned li)
{
    struct io_uring_sqe *sqe = rill__ring_sqe(&l->ring);
    /* Single-shot: on a socket shared by every loop, a multishot accept stays first in line
     * and takes every connection; a single-shot one goes to the back when it completes. */
    io_uring_prep_accept(sqe, l->w->listen_fds[li], NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, RILL_UD(RILL_OP_ACCEPT, li, 0));
    l->accept_armed[li] = 1;
}

void rill__conn_arm_recv(rill__loop_t *l, unsigned slot)
{
    rill__conn_t *c = &l->conns[slot];
    struct io_uring_sqe *sqe = rill__ring_sqe(&l->ring);
    io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = RILL_BUF_GROUP;
    io_uring_sqe_set_data64(sqe, RILL_UD(RILL_OP_RECV, slot, c->gen));
    c->recv_armed = 1;
}

static int conn_slot(rill__loop_t *l)
{
    for (unsigned i = 0; i < l->nconns; i++)
        if (!l->conns[i].in_use)
            return (int)i;
    if (l->nconns == l->conns_cap) {
        unsigned cap = l->conns_cap ? l->conns_cap * 2 : 64;
        if (cap > 0xffffffu)
            return RILL_EFULL;
        rill__conn_t *c = realloc(l->conns, cap * sizeof *c);
        if (!c)
            return RILL_ENOMEM;
        memset(c + l->conns_cap, 0, (cap - l->conns_cap) * sizeof *c);
        l->conns = c;
        l->conns_cap = cap;
    }
    return (int)l->nconns++;
}

/* A carry above this is freed once its frame is done (rill__decoder_trim). */
#define CARRY_KEEP ((size_t)64 << 10)

/* The connection's partial frame is gone (closed): its bytes leave the loop's total. */
static void drop_carry(rill__loop_t *l, rill__conn_t *c)
{
    l->carried -= c->carried;
    c->carried = 0;
    rill__decoder_free(&c->dec);
}

static void conn_finish_close(rill__loop_t *l, rill__conn_t *c)
{
    free(c->tx);
    c->tx = NULL;
    if (c->handing) {
        /* Nothing of this loop refers to it any more: the loop of its stream takes it (it
         * stays counted in the worker's open connections). */
        rill__ackin_hand_over(l, c);
    } else {
        close(c->fd);
        atomic_fetch_sub_explicit(&l->w->conns_open, 1, memory_order_relaxed);
    }
    c->handing = 0;
    c->fd = -1;
    drop_carry(l, c);
    c->in_use = 0;
    c->closing = 0;
    c->gen++;
    l->conns_open--;
    RILL_STAT_SET(l->stats.conns_open, l->conns_open);
}

void rill__conn_close(rill__loop_t *l, unsigned slot, int reason)
{
    rill__conn_t *c = &l->conns[slot];
    if (c->closing)
        return;
    c->closing = 1;
    c->close_reason = reason;
    drop_carry(l, c); /* nothing is decoded for a closing connection */
    rill__ackin_detach(l, c);
    /* Cancel before close: the fd is closed only after the last completion of its
     * operations, so no completion can ever refer to a reused descriptor. */
    if (c->recv_armed)
        rill__ring_cancel(&l->ring, RILL_UD(RILL_OP_RECV, slot, c->gen));
    if (c->tx_armed)
        rill__ring_cancel(&l->ring, RILL_UD(RILL_OP_CONN_SEND, slot, c->gen));
    rill__conn_maybe_finish(l, slot);
}

void rill__conn_maybe_finish(rill__loop_t *l, unsigned slot)
{
    rill__conn_t *c = &l->conns[slot];
    if (c->in_use && c->closing && !c->recv_armed && !c->tx_armed)
        conn_finish_close(l, c);
}

/* Refuses an accepted descriptor: the worker is full or stopping. */
static int over_limit(rill__loop_t *l)
{
    if (atomic_fetch_add_explicit(&l->w->conns_open, 1, memory_order_relaxed) < l->w->cfg.max_conns)
        return 0;
    atomic_fetch_sub_explicit(&l->w->conns_open, 1, memory_order_relaxed);
    RILL_STAT_ADD(l->stats.conns_refused, 1);
    rill__log_once(&l->w->logged.refused,
                   "refusing connections beyond max_conns %u (counted in conns_refused)",
                   l->w->cfg.max_conns);
    return 1;
}

/* Opens a slot for fd, accepted on listener li (counted in the worker's open
 * connections already). Returns the slot, or -1 when it was closed instead. */
static int conn_open(rill__loop_t *l, unsigned li, int fd)
{
    int slot = conn_slot(l);
    if (slot < 0) {
        atomic_fetch_sub_explicit(&l->w->conns_open, 1, memory_order_relaxed);
        close(fd);
        RILL_STAT_ADD(l->stats.err_conn, 1);
        return -1;
    }
    rill__conn_t *c = &l->conns[slot];
    const rill__listener_cfg_t *lc = &l->w->cfg.listeners[li];
    c->fd = fd;
    c->in_use = 1;
    c->closing = 0;
    c->recv_armed = 0;
    c->listener = (uint8_t)li;
    c->close_reason = 0;
    c->frame_since = 0;
    c->peer = (uint8_t)lc->peer;
    /* Only a v1 connection (a source's or a member's peer link) can begin with HELLO. */
    c->mode = lc->framing == RILL_FRAMING_RILL ? RILL_CONN_NEW : RILL_CONN_PLAIN;
    c->tx_armed = 0;
    c->leaving = 0;
    c->discard = 0;
    c->handing = 0;
    c->stream = NULL;
    c->tx = NULL;
    rill__decoder_init(&c->dec, lc->framing, rill__listener_frame_limit(l->w, lc), lc->comp_id,
                       lc->has_key, lc->key);
    l->conns_open++;
    RILL_STAT_ADD(l->stats.conns_accepted, 1);
    RILL_STAT_SET(l->stats.conns_open, l->conns_open);
    return slot;
}

static void conn_accepted(rill__loop_t *l, unsigned li, int fd)
{
    int slot = conn_open(l, li, fd);
    if (slot < 0)
        return;
    rill__conn_t *c = &l->conns[slot];
    rill__conn_arm_recv(l, (unsigned)slot);
    if (c->peer && l->w->has_peer_key)
        rill__ackin_challenge(l, (unsigned)slot);
}

int rill__conn_adopt(rill__loop_t *l, unsigned li, int fd)
{
    if (l->phase != PH_RUN) {
        close(fd);
        atomic_fetch_sub_explicit(&l->w->conns_open, 1, memory_order_relaxed);
        return -1;
    }
    int slot = conn_open(l, li, fd);
    if (slot >= 0)
        RILL_STAT_SUB(l->stats.conns_accepted, 1); /* accepted once, by the loop it came from */
    return slot;
}

/* Whether this loop takes the next connection. Every loop's single-shot accept waits on
 * the one listening socket, and the kernel hands a burst of connects to whichever loop
 * is running; so a loop with more connections open than the fewest any loop has, plus
 * one, leaves the next ones to the others (measured with bench/accept-spread). */
static int accept_turn(const rill__loop_t *l)
{
    uint64_t least = l->conns_open;
    for (unsigned i = 0; i < l->nloops; i++) {
        uint64_t n = RILL_STAT_GET(l->w->loops[i]->stats.conns_open);
        if (i != l->idx && n < least)
            least = n;
    }
    return l->conns_open <= least + 1;
}

void rill__conn_on_accept(rill__loop_t *l, const struct io_uring_cqe *cqe)
{
    unsigned li = RILL_UD_IDX(cqe->user_data);
    if (!(cqe->flags & IORING_CQE_F_MORE))
        l->accept_armed[li] = 0;
    if (cqe->res < 0) {
        if (cqe->res != -ECANCELED) {
            rill__log_once(&l->w->logged.conn_err, "accept failed: %s (counted in err_conn)",
                           rill_strerror(cqe->res));
            RILL_STAT_ADD(l->stats.err_conn, 1);
        }
    } else if (l->phase != PH_RUN || over_limit(l)) {
        close(cqe->res);
    } else {
        conn_accepted(l, li, cqe->res);
    }
    if (!l->accept_armed[li] && l->phase == PH_RUN && cqe->res != -ECANCELED) {
        if (accept_turn(l)) {
            rill__conn_arm_accept(l, li);
        } else {
            /* Ahead of another loop: leave the next connection to the others, and wake
             * them in case one of them was waiting for its turn. */
            l->accept_deferred = 1;
            for (unsigned i = 0; i < l->nloops; i++)
                if (i != l->idx)
                    rill__loop_wake(l->w->loops[i]);
        }
    }
}

void rill__conn_resume_accepts(rill__loop_t *l)
{
    if (l->phase != PH_RUN || !accept_turn(l))
        return;
    l->accept_deferred = 0;
    for (unsigned li = 0; li < l->w->cfg.nlisteners; li++)
        if (!l->accept_armed[li])
            rill__conn_arm_accept(l, li);
}

static void protocol_error(rill__loop_t *l, unsigned slot, int err)
{
    rill_worker_t *w = l->w;
    if (err == RILL_EFRAME_SHORT) {
        RILL_STAT_ADD(l->stats.err_frame_short, 1);
        rill__log_once(&w->logged.frame_short,
                       "closing a connection: frame length below 12 (further cases only counted)");
    } else if (err == RILL_EFRAME_LONG) {
        RILL_STAT_ADD(l->stats.err_frame_long, 1);
        rill__log_once(&w->logged.frame_long,
                       "closing a connection: frame length above max_frame %u, or an lp/line "
                       "payload above %u (further cases only counted)",
                       w->cfg.max_frame, w->cfg.max_frame - 12);
    } else {
        RILL_STAT_ADD(l->stats.err_conn, 1);
        rill__log_once(&w->logged.conn_err, "closing a connection: %s", rill_strerror(err));
    }
    rill__conn_close(l, slot, err);
}

void rill__conn_publish_carried(rill__loop_t *l)
{
    RILL_STAT_SET(l->stats.carry_bytes, l->carried);
}

/* Bytes carried by the whole worker: this loop's own figure, the others' published. */
static size_t worker_carried(const rill__loop_t *l)
{
    size_t total = l->carried;
    for (unsigned i = 0; i < l->nloops; i++)
        if (i != l->idx)
            total += RILL_STAT_GET(l->w->loops[i]->stats.carry_bytes);
    return total;
}

/* The worker holds more partial-frame bytes than its budget: close this loop's
 * connections with the largest carries until it does not (or this loop holds none). A
 * sender that trickles huge frames, or thousands that each stop one byte short, then
 * cost the budget at most, not max_conns x max_frame. */
static void shed_carries(rill__loop_t *l)
{
    size_t budget = l->w->cfg.carry_budget;
    while (l->carried && worker_carried(l) > budget) {
        unsigned worst = 0;
        size_t most = 0;
        for (unsigned i = 0; i < l->nconns; i++)
            if (l->conns[i].in_use && !l->conns[i].closing && l->conns[i].carried > most) {
                most = l->conns[i].carried;
                worst = i;
            }
        if (!most)
            break;
        RILL_STAT_ADD(l->stats.err_carry, 1);
        rill__log_once(&l->w->logged.carry,
                       "closing the connection with the largest partial frame: the worker "
                       "carries more than its carry budget of %zu bytes (further cases only "
                       "counted in err_carry)",
                       budget);
        rill__conn_close(l, worst, RILL_EFULL);
    }
    rill__conn_publish_carried(l);
}

/* With several loops, a loop that grows its carries checks the others' figures as last
 * published, so two loops growing at once can both stay under the budget in their own
 * sums and together end above it; at rest nothing would check again. So every iteration
 * ends by publishing its figure and then reading the others' (a fence between: of two
 * loops doing so, at least one sees the other's final figure), and sheds if the total is
 * over. */
void rill__conn_settle_carries(rill__loop_t *l)
{
    rill__conn_publish_carried(l);
    if (l->nloops == 1 || !l->carried)
        return; /* one loop: its growth check sums exactly */
    atomic_thread_fence(memory_order_seq_cst);
    if (worker_carried(l) > l->w->cfg.carry_budget)
        shed_carries(l);
}

/* Frames from a source have origin 0; those a member forwarded the depth of its link
 * (known from its HELLO; 1 for a best-effort link). */
static inline unsigned frames_origin(const rill__conn_t *c)
{
    return !c->peer ? RILL_ORIGIN_SOURCE : c->stream ? c->stream->cls : 1;
}

void rill__conn_on_data(rill__loop_t *l, unsigned slot, const uint8_t *data, size_t len)
{
    rill__conn_t *c = &l->conns[slot];
    RILL_STAT_ADD(l->stats.bytes_in, len);
    if (c->discard)
        return; /* a leaving acked source's last bytes: its sender sends them elsewhere */
    int route = c->peer ? RILL_ROUTE_PEER : RILL_ROUTE_SOURCE;
    size_t pos = 0;
    uint64_t msgs = 0;
    while (pos < len) {
        int n = rill__decode(&c->dec, data, len, &pos, l->views, RILL_BATCH_MAX);
        if (n < 0) {
            protocol_error(l, slot, n);
            break;
        }
        if (n > 0 && c->mode != RILL_CONN_PLAIN) {
            n = rill__ackin_filter(l, slot, l->views, (size_t)n, &msgs);
            if (n < 0) {
                rill__conn_close(l, slot, n); /* counted where it was found */
                break;
            }
            if (c->closing)
                break; /* handed to the loop of its stream */
        } else {
            msgs += (uint64_t)n;
        }
        if (n > 0)
            rill__dispatch(&l->dispatch, l->views, (size_t)n, route, frames_origin(c));
    }
    if (c->peer)
        RILL_STAT_ADD(l->stats.peer_in, msgs);
    else
        RILL_STAT_ADD(l->stats.msgs_in, msgs);
    if (c->closing)
        return;
    /* When did the frame now pending begin? A new one if frames completed here. */
    if (!rill__decoder_midframe(&c->dec))
        c->frame_since = 0;
    else if (msgs || !c->frame_since)
        c->frame_since = l->now;
    size_t carried = rill__decoder_carried(&c->dec);
    if (carried == c->carried)
        return;
    if (carried == 0)
        rill__decoder_trim(&c->dec, CARRY_KEEP); /* its views have been dispatched */
    l->carried += carried - c->carried;
    int grew = carried > c->carried;
    c->carried = carried;
    if (grew && l->carried > l->w->cfg.carry_budget / l->nloops / 4 &&
        worker_carried(l) > l->w->cfg.carry_budget)
        shed_carries(l);
}

void rill__conn_recv_result(rill__loop_t *l, unsigned slot, int res)
{
    rill__conn_t *c = &l->conns[slot];
    if (res == 0) {
        if (rill__decoder_midframe(&c->dec) && !c->discard) {
            RILL_STAT_ADD(l->stats.err_midframe, 1);
            rill__log_once(&l->w->logged.midframe,
                           "a connection closed inside a frame; the partial frame is dropped "
                           "(further cases only counted)");
        }
        rill__conn_close(l, slot, 0);
    } else if (res == -ENOBUFS) {
        RILL_STAT_ADD(l->stats.enobufs, 1);
    } else if (res < 0 && res != -ECANCELED) {
        RILL_STAT_ADD(l->stats.err_conn, 1);
        rill__log_once(&l->w->logged.conn_err, "connection failed: %s (counted in err_conn)",
                       rill_strerror(res));
        rill__conn_close(l, slot, res);
    }
    if (!c->in_use || c->recv_armed)
        return;
    if (c->closing) {
        rill__conn_maybe_finish(l, slot); /* the recv's last completion: the fd may go */
    } else if (c->leaving && !c->discard && (res == -ECANCELED || res > 0 || res == -ENOBUFS)) {
        /* Draining an acked source: reads stopped, it closes once acknowledged. */
    } else if (res > 0 || res == -ENOBUFS) {
        if (l->paused && !c->discard && !rill__conn_unpaused(c)) {
            c->rearm = 1; /* backpressure: leave the data in the kernel for now */
            l->rearm_pending++;
        } else {
            rill__conn_arm_recv(l, slot); /* multishot ended (e.g. buffers ran dry): re-arm */
        }
    } else {
        rill__conn_close(l, slot, res);
    }
}

void rill__conn_on_recv(rill__loop_t *l, const struct io_uring_cqe *cqe)
{
    unsigned slot = RILL_UD_IDX(cqe->user_data);
    rill__conn_t *c = slot < l->nconns ? &l->conns[slot] : NULL;
    int valid = c && c->in_use && c->gen == RILL_UD_GEN(cqe->user_data);
    int res = cqe->res;
    if (cqe->flags & IORING_CQE_F_BUFFER) {
        unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
        if (res > 0 && valid && !c->closing && (l->paused || l->held_count) &&
            !(rill__conn_unpaused(c) && c->held == 0)) {
            rill__bp_hold(l, slot, bid, (unsigned)res); /* processed on resume, in order */
        } else {
            if (res > 0 && valid && !c->closing) {
                rill__conn_on_data(l, slot, rill__ring_buffer(&l->ring, bid), (size_t)res);
                /* Per buffer, not per iteration: one iteration may bring 64 buffers, more
                 * than the headroom above the high watermark. */
                rill__bp_update(l);
            }
            /* Back after the batch it fed was dispatched: views point into it. */
            rill__ring_return_buffer(&l->ring, bid);
        }
    }
    if (!valid)
        return;
    if (!(cqe->flags & IORING_CQE_F_MORE))
        c->recv_armed = 0;
    if (c->held && res <= 0 && res != -ENOBUFS) {
        c->end_held = 1; /* EOF or error after held data: apply it once that is processed */
        c->end_res = res;
        return;
    }
    rill__conn_recv_result(l, slot, res);
}

/* Half the idle timeout, between 10 ms and 1 s: a stalled connection goes within 1.5x. */
uint64_t rill__conn_sweep_interval(const rill_worker_t *w)
{
    uint64_t ns = (uint64_t)w->cfg.idle_ms * 500000u;
    return ns < 10000000u ? 10000000u : ns > 1000000000u ? 1000000000u : ns;
}

/* Closes connections that have been inside one frame for longer than idle_ms: a stuck
 * sender, or one trickling bytes to hold a carry buffer (slowloris). Connections idle
 * between frames stay. So do connections the loop itself stopped reading: while it is
 * paused for backpressure nothing is idle, and the time before it resumed does not
 * count. */
void rill__conn_sweep_idle(rill__loop_t *l, uint64_t now)
{
    if (l->paused)
        return;
    uint64_t limit = (uint64_t)l->w->cfg.idle_ms * 1000000u;
    for (unsigned i = 0; i < l->nconns; i++) {
        rill__conn_t *c = &l->conns[i];
        uint64_t since = c->frame_since > l->resumed_at ? c->frame_since : l->resumed_at;
        if (c->in_use && !c->closing && !c->held && c->frame_since && now - since > limit) {
            RILL_STAT_ADD(l->stats.err_idle, 1);
            rill__log_once(&l->w->logged.idle,
                           "closing a connection stalled inside a frame for over %u ms (further "
                           "cases only counted in err_idle)",
                           l->w->cfg.idle_ms);
            rill__conn_close(l, i, -ETIMEDOUT);
        }
    }
}
