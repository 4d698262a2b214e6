/* The per-thread io_uring loop: accept, multishot recv into a provided buffer ring,
 * decode + dispatch, batched sends to sinks, cross-thread handoff, drain on stop.
 *
 * One submit-and-wait per iteration; every completion of the iteration is handled, then
 * the work they produced (handoffs, local emits, sink sends) is pushed out once. Nothing
 * on the per-message path makes a syscall, takes a lock or allocates (buffers grow by
 * doubling and are then reused). */
#include "loop/loop.h"

#include <errno.h>
#include <poll.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cluster/cluster.h"
#include "dispatch/dispatch.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/stat.h"

__thread rill__loop_t *rill__current_loop;

/* A small buffer ring sized for the cache, not for the peak: a kernel that always finds
 * buffers keeps pulling data the loop then parses cold. -ENOBUFS is ordinary backpressure. */
#define BUF_GROUP 1
#define BUF_COUNT RILL_BUF_COUNT
/* Overridable at compile time (-DRILL_BUF_COUNT=.. -DRILL_BUF_SIZE=..) for experiments:
 * 16 x 64 KiB and 32 x 32 KiB measured within noise of this default on 2 cores. */
#ifndef RILL_BUF_SIZE
#define RILL_BUF_SIZE (16u * 1024u)
#endif
#define BUF_SIZE RILL_BUF_SIZE
#define RING_ENTRIES 1024
#define CQ_ENTRIES 8192
#define LISTEN_BACKLOG 4096
#define SINK_BACKOFF_MIN_NS (50ull * 1000000ull)
#define SINK_BACKOFF_MAX_NS (1000ull * 1000000ull)
#define DRAIN_POLL_NS (2ull * 1000000ull)
#define STAGE_RETRY_NS (200ull * 1000ull)
#define LOCAL_ROUNDS 16
#define HANDOFF_STEP ((size_t)256 << 10)
/* A handoff stage above this pauses the sources; below the low mark they resume. */
#define STAGE_HIGH ((size_t)8 << 20)
#define STAGE_LOW ((size_t)2 << 20)

/* user_data: op (8 bits) | index (24 bits) | generation (32 bits). */
enum { OP_ACCEPT = 1, OP_RECV, OP_CANCEL, OP_EFD, OP_SINK_CONNECT, OP_SINK_SEND, OP_SINK_HUP };
#define UD(op, idx, gen) (((uint64_t)(op) << 56) | ((uint64_t)(idx) << 32) | (uint32_t)(gen))
#define UD_OP(ud) ((unsigned)((ud) >> 56))
#define UD_IDX(ud) ((unsigned)(((ud) >> 32) & 0xffffffu))
#define UD_GEN(ud) ((uint32_t)(ud))

static void update_paused(rill__loop_t *l);

/* Drain phases, in order (see drain_step). */
enum { PH_RUN, PH_CLOSING, PH_WAIT_CLOSED, PH_WAIT_FLUSHED, PH_SINKS, PH_DONE };

int rill__buf_reserve(rill__buf_t *b, size_t n, size_t max)
{
    if (b->len + n <= b->cap)
        return 0;
    if (b->len + n > max)
        return RILL_EFULL;
    size_t cap = b->cap ? b->cap : 64 * 1024;
    while (cap < b->len + n)
        cap *= 2;
    if (cap > max)
        cap = max;
    uint8_t *p = realloc(b->data, cap);
    if (!p)
        return RILL_EFULL;
    b->data = p;
    b->cap = cap;
    return 0;
}

static void buf_free(rill__buf_t *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

/* Output links share one index space: sinks 0..RILL_MAX_SINKS-1, then peer links. */
#define PEER_BASE RILL_MAX_SINKS

static rill__sink_t *link_at(rill__loop_t *l, unsigned li)
{
    return li < PEER_BASE ? &l->sinks[li] : &l->peers[li - PEER_BASE];
}

static void link_free(rill__sink_t *s)
{
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    buf_free(&s->pend);
    buf_free(&s->fly);
    s->in_use = 0;
    s->retiring = 0;
    s->sending = 0;
    s->op_pending = 0;
    s->state = SINK_DOWN;
    s->gen++;
}

int rill__loop_new(rill__loop_t **out, rill_worker_t *w, unsigned idx)
{
    rill__loop_t *l = aligned_alloc(64, (sizeof *l + 63) & ~(size_t)63);
    if (!l)
        return RILL_ENOMEM;
    memset(l, 0, sizeof *l);
    /* Every link slot starts without a descriptor (0 would be stdin: never close it). */
    for (unsigned s = 0; s < RILL_MAX_SINKS; s++)
        l->sinks[s].fd = -1;
    for (unsigned p = 0; p < RILL_MAX_MEMBERS; p++)
        l->peers[p].fd = -1;
    l->w = w;
    l->idx = idx;
    l->nloops = w->nloops;
    l->efd = eventfd(0, EFD_CLOEXEC);
    if (l->efd < 0) {
        int err = -errno;
        free(l);
        return err;
    }
    unsigned n = w->nloops;
    l->out = calloc(n, sizeof *l->out);
    l->in = calloc(n, sizeof *l->in);
    l->in_dec = calloc(n, sizeof *l->in_dec);
    l->stage = calloc(n, sizeof *l->stage);
    if (!l->out || !l->in || !l->in_dec || !l->stage) {
        rill__loop_free(l);
        return RILL_ENOMEM;
    }
    /* Handoff frames are v1 frames rill wrote itself; lp/line payloads may be up to
     * max_frame long, so their v1 length field can be 12 more. */
    uint32_t inner_max = w->cfg.max_frame > UINT32_MAX - 12 ? UINT32_MAX : w->cfg.max_frame + 12;
    for (unsigned d = 0; d < n; d++) {
        l->out[d] = &w->rings[idx * n + d];
        l->in[d] = &w->rings[d * n + idx];
        rill__decoder_init(&l->in_dec[d], RILL_FRAMING_RILL, inner_max, 0, 0, 0);
    }
    rill__decoder_init(&l->local_dec, RILL_FRAMING_RILL, inner_max, 0, 0, 0);
    l->nsinks = w->cfg.nsinks;
    for (unsigned s = 0; s < l->nsinks; s++)
        l->sinks[s].addr = w->cfg.sinks[s];

    l->conns_cap = 0;
    *out = l;
    return 0;
}

void rill__loop_free(rill__loop_t *l)
{
    if (!l)
        return;
    if (l->efd >= 0)
        close(l->efd);
    for (unsigned i = 0; i < l->nconns; i++) {
        if (l->conns[i].in_use) {
            close(l->conns[i].fd);
            rill__decoder_free(&l->conns[i].dec);
        }
    }
    free(l->conns);
    for (unsigned li = 0; li < PEER_BASE + RILL_MAX_MEMBERS; li++)
        link_free(link_at(l, li));
    if (l->in_dec)
        for (unsigned d = 0; d < l->nloops; d++)
            rill__decoder_free(&l->in_dec[d]);
    if (l->stage)
        for (unsigned d = 0; d < l->nloops; d++)
            buf_free(&l->stage[d]);
    rill__decoder_free(&l->local_dec);
    buf_free(&l->local);
    buf_free(&l->local_run);
    free(l->out);
    free(l->in);
    free(l->in_dec);
    free(l->stage);
    free(l);
}

void rill__loop_wake(rill__loop_t *l)
{
    uint64_t one = 1;
    ssize_t rc = write(l->efd, &one, sizeof one);
    (void)rc; /* EAGAIN only when the counter is saturated: the loop is awake anyway. */
}

/* ------------------------------------------------------------------ ring set-up */

static int ring_setup(rill__loop_t *l)
{
    /* SINGLE_ISSUER + DEFER_TASKRUN: completions run only when this thread asks, which
     * batches task work and avoids IPIs; older kernels refuse the flags, so fall back. */
    static const unsigned flag_sets[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL,
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL,
        0,
    };
    int rc = -EINVAL;
    for (size_t i = 0; i < sizeof flag_sets / sizeof flag_sets[0]; i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof p);
        p.flags = flag_sets[i] | IORING_SETUP_CQSIZE;
        p.cq_entries = CQ_ENTRIES;
        rc = io_uring_queue_init_params(RING_ENTRIES, &l->ring, &p);
        if (rc == 0)
            break;
        if (rc != -EINVAL)
            return rc;
    }
    if (rc < 0)
        return rc;
    l->ring_ready = 1;

    /* liburing 2.3 has no io_uring_setup_buf_ring: map, init, register by hand. */
    l->nbufs = BUF_COUNT;
    l->buf_size = BUF_SIZE;
    l->br_len = (size_t)l->nbufs * sizeof(struct io_uring_buf);
    void *br = mmap(NULL, l->br_len, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (br == MAP_FAILED)
        return -errno;
    l->br = br;
    io_uring_buf_ring_init(l->br);
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (uint64_t)(uintptr_t)l->br;
    reg.ring_entries = l->nbufs;
    reg.bgid = BUF_GROUP;
    rc = io_uring_register_buf_ring(&l->ring, &reg, 0);
    if (rc < 0)
        return rc == -EINVAL ? RILL_EUNSUPPORTED : rc;
    l->bufs = aligned_alloc(4096, (size_t)l->nbufs * l->buf_size);
    if (!l->bufs)
        return RILL_ENOMEM;
    unsigned mask = io_uring_buf_ring_mask(l->nbufs);
    for (unsigned i = 0; i < l->nbufs; i++)
        io_uring_buf_ring_add(l->br, l->bufs + (size_t)i * l->buf_size, l->buf_size,
                              (unsigned short)i, (int)mask, (int)i);
    io_uring_buf_ring_advance(l->br, (int)l->nbufs);
    return 0;
}

static void ring_teardown(rill__loop_t *l)
{
    if (l->ring_ready) {
        if (l->br)
            io_uring_unregister_buf_ring(&l->ring, BUF_GROUP);
        io_uring_queue_exit(&l->ring);
        l->ring_ready = 0;
    }
    if (l->br)
        munmap(l->br, l->br_len);
    l->br = NULL;
    free(l->bufs);
    l->bufs = NULL;
}

static struct io_uring_sqe *get_sqe(rill__loop_t *l)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);
    while (!sqe) {
        /* SQ full: submit what is queued (completions are not reaped here). */
        io_uring_submit(&l->ring);
        sqe = io_uring_get_sqe(&l->ring);
    }
    return sqe;
}

static void return_buffer(rill__loop_t *l, unsigned bid)
{
    io_uring_buf_ring_add(l->br, l->bufs + (size_t)bid * l->buf_size, l->buf_size,
                          (unsigned short)bid, (int)io_uring_buf_ring_mask(l->nbufs), 0);
    io_uring_buf_ring_advance(l->br, 1);
}

/* ------------------------------------------------------------------ sources */

static void arm_accept(rill__loop_t *l, unsigned li)
{
    struct io_uring_sqe *sqe = get_sqe(l);
    /* Single-shot: on a socket shared by every loop, a multishot accept stays first in line
     * and takes every connection; a single-shot one goes to the back when it completes. */
    io_uring_prep_accept(sqe, l->w->listen_fds[li], NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, UD(OP_ACCEPT, li, 0));
    l->accept_armed[li] = 1;
}

static void arm_recv(rill__loop_t *l, unsigned slot)
{
    rill__conn_t *c = &l->conns[slot];
    struct io_uring_sqe *sqe = get_sqe(l);
    io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BUF_GROUP;
    io_uring_sqe_set_data64(sqe, UD(OP_RECV, slot, c->gen));
    c->recv_armed = 1;
}

static void arm_efd(rill__loop_t *l)
{
    struct io_uring_sqe *sqe = get_sqe(l);
    io_uring_prep_read(sqe, l->efd, &l->efd_val, sizeof l->efd_val, 0);
    io_uring_sqe_set_data64(sqe, UD(OP_EFD, 0, 0));
    l->efd_armed = 1;
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

static void conn_finish_close(rill__loop_t *l, rill__conn_t *c)
{
    close(c->fd);
    c->fd = -1;
    rill__decoder_free(&c->dec);
    c->in_use = 0;
    c->closing = 0;
    c->gen++;
    l->conns_open--;
    atomic_fetch_sub_explicit(&l->w->conns_open, 1, memory_order_relaxed);
    RILL_STAT_SET(l->stats.conns_open, l->conns_open);
}

static void conn_close(rill__loop_t *l, unsigned slot, int reason)
{
    rill__conn_t *c = &l->conns[slot];
    if (c->closing)
        return;
    c->closing = 1;
    c->close_reason = reason;
    if (!c->recv_armed) {
        conn_finish_close(l, c);
        return;
    }
    /* Cancel before close: the fd is closed only after the recv's last completion, so
     * no completion can ever refer to a reused descriptor. */
    struct io_uring_sqe *sqe = get_sqe(l);
    io_uring_prep_cancel64(sqe, UD(OP_RECV, slot, c->gen), 0);
    io_uring_sqe_set_data64(sqe, UD(OP_CANCEL, slot, c->gen));
}

static void on_accept(rill__loop_t *l, struct io_uring_cqe *cqe)
{
    unsigned li = UD_IDX(cqe->user_data);
    if (!(cqe->flags & IORING_CQE_F_MORE))
        l->accept_armed[li] = 0;
    if (cqe->res < 0) {
        if (cqe->res != -ECANCELED)
            rill__log_once(&l->w->logged.conn_err, "accept failed: %s (counted in err_conn)",
                           rill_strerror(cqe->res));
        if (cqe->res != -ECANCELED)
            RILL_STAT_ADD(l->stats.err_conn, 1);
    } else if (l->phase != PH_RUN) {
        close(cqe->res);
    } else if (atomic_fetch_add_explicit(&l->w->conns_open, 1, memory_order_relaxed) >=
               l->w->cfg.max_conns) {
        atomic_fetch_sub_explicit(&l->w->conns_open, 1, memory_order_relaxed);
        close(cqe->res);
        RILL_STAT_ADD(l->stats.conns_refused, 1);
        rill__log_once(&l->w->logged.refused,
                       "refusing connections beyond max_conns %u (counted in conns_refused)",
                       l->w->cfg.max_conns);
    } else {
        int slot = conn_slot(l);
        if (slot < 0) {
            atomic_fetch_sub_explicit(&l->w->conns_open, 1, memory_order_relaxed);
            close(cqe->res);
            RILL_STAT_ADD(l->stats.err_conn, 1);
        } else {
            rill__conn_t *c = &l->conns[slot];
            const rill__listener_cfg_t *lc = &l->w->cfg.listeners[li];
            c->fd = cqe->res;
            c->in_use = 1;
            c->closing = 0;
            c->recv_armed = 0;
            c->listener = (uint8_t)li;
            c->close_reason = 0;
            c->frame_since = 0;
            c->peer = (uint8_t)lc->peer;
            rill__decoder_init(&c->dec, lc->framing, l->w->cfg.max_frame, lc->comp_id,
                               lc->has_key, lc->key);
            l->conns_open++;
            RILL_STAT_ADD(l->stats.conns_accepted, 1);
            RILL_STAT_SET(l->stats.conns_open, l->conns_open);
            arm_recv(l, (unsigned)slot);
        }
    }
    if (!l->accept_armed[li] && l->phase == PH_RUN && cqe->res != -ECANCELED)
        arm_accept(l, li);
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
                       "closing a connection: frame length above max_frame %u (further cases "
                       "only counted)",
                       w->cfg.max_frame);
    } else {
        RILL_STAT_ADD(l->stats.err_conn, 1);
        rill__log_once(&w->logged.conn_err, "closing a connection: %s", rill_strerror(err));
    }
    conn_close(l, slot, err);
}

static void on_data(rill__loop_t *l, unsigned slot, const uint8_t *data, size_t len)
{
    rill__conn_t *c = &l->conns[slot];
    RILL_STAT_ADD(l->stats.bytes_in, len);
    size_t pos = 0;
    uint64_t msgs = 0;
    while (pos < len) {
        int n = rill__decode(&c->dec, data, len, &pos, l->views, RILL_BATCH_MAX);
        if (n < 0) {
            protocol_error(l, slot, n);
            break;
        }
        if (n > 0) {
            msgs += (uint64_t)n;
            rill__dispatch(l, l->views, (size_t)n, c->peer ? 2 : 1);
        }
    }
    if (c->peer)
        RILL_STAT_ADD(l->stats.peer_in, msgs);
    else
        RILL_STAT_ADD(l->stats.msgs_in, msgs);
    /* When did the frame now pending begin? A new one if frames completed here. */
    if (!rill__decoder_midframe(&c->dec))
        c->frame_since = 0;
    else if (msgs || !c->frame_since)
        c->frame_since = l->now;
}

/* What a recv completion's result means for its connection, once its data (if any) has
 * been processed: EOF, errors, re-arming, finishing a close. */
static void recv_result(rill__loop_t *l, unsigned slot, int res)
{
    rill__conn_t *c = &l->conns[slot];
    if (res == 0) {
        if (rill__decoder_midframe(&c->dec)) {
            RILL_STAT_ADD(l->stats.err_midframe, 1);
            rill__log_once(&l->w->logged.midframe,
                           "a connection closed inside a frame; the partial frame is dropped "
                           "(further cases only counted)");
        }
        conn_close(l, slot, 0);
    } else if (res == -ENOBUFS) {
        RILL_STAT_ADD(l->stats.enobufs, 1);
    } else if (res < 0 && res != -ECANCELED) {
        RILL_STAT_ADD(l->stats.err_conn, 1);
        rill__log_once(&l->w->logged.conn_err, "connection failed: %s (counted in err_conn)",
                       rill_strerror(res));
        conn_close(l, slot, res);
    }
    if (!c->in_use || c->recv_armed)
        return;
    if (c->closing)
        conn_finish_close(l, c); /* the recv's last completion: now the fd may go */
    else if (res > 0 || res == -ENOBUFS) {
        if (l->paused) {
            c->rearm = 1; /* backpressure: leave the data in the kernel for now */
            l->rearm_pending++;
        }
        else
            arm_recv(l, slot); /* multishot ended (e.g. buffers ran dry): re-arm */
    } else
        conn_close(l, slot, res);
}

static void on_recv(rill__loop_t *l, struct io_uring_cqe *cqe)
{
    unsigned slot = UD_IDX(cqe->user_data);
    rill__conn_t *c = slot < l->nconns ? &l->conns[slot] : NULL;
    int valid = c && c->in_use && c->gen == UD_GEN(cqe->user_data);
    int res = cqe->res;
    if (cqe->flags & IORING_CQE_F_BUFFER) {
        unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
        if (res > 0 && valid && !c->closing && (l->paused || l->held_count)) {
            /* Held in arrival order (behind anything held before), processed on resume. */
            unsigned tail = (l->held_head + l->held_count) % RILL_BUF_COUNT;
            l->held[tail] = (struct rill__held){slot, bid, (unsigned)res, c->gen};
            l->held_count++;
            c->held++;
        } else {
            if (res > 0 && valid && !c->closing) {
                on_data(l, slot, l->bufs + (size_t)bid * l->buf_size, (size_t)res);
                /* Per buffer, not per iteration: one iteration may bring 64 buffers, more
                 * than the headroom above the high watermark. */
                update_paused(l);
            }
            /* Back after the batch it fed was dispatched: views point into it. */
            return_buffer(l, bid);
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
    recv_result(l, slot, res);
}

static void update_paused(rill__loop_t *l)
{
    int sink_high = 0, sink_low = 1, stage_high = 0, stage_low = 1;
    size_t hi = l->w->cfg.sink_buffer / 2, lo = l->w->cfg.sink_buffer / 4;
    for (unsigned s = 0; s < l->nsinks; s++) {
        sink_high |= l->sinks[s].pend.len > hi;
        sink_low &= l->sinks[s].pend.len <= lo;
    }
    if (l->w->cluster) {
        for (unsigned p = 0; p < RILL_MAX_MEMBERS; p++) {
            sink_high |= l->peers[p].pend.len > hi;
            sink_low &= l->peers[p].pend.len <= lo;
        }
    }
    for (unsigned d = 0; d < l->nloops; d++) {
        stage_high |= l->stage[d].len > STAGE_HIGH;
        stage_low &= l->stage[d].len <= STAGE_LOW;
    }
    if (!l->sink_paused && sink_high)
        l->sink_paused = 1;
    else if (l->sink_paused && sink_low)
        l->sink_paused = 0;
    if (!l->paused && (sink_high || stage_high)) {
        l->paused = 1;
        RILL_STAT_ADD(l->stats.paused, 1);
    }
    else if (l->paused && sink_low && stage_low)
        l->paused = 0;
}

/* Processes held buffers in arrival order while the outbound queues allow it, then
 * re-arms the connections whose recv was left unarmed. */
static void release_held(rill__loop_t *l)
{
    while (l->held_count && !l->paused) {
        struct rill__held h = l->held[l->held_head];
        l->held_head = (l->held_head + 1) % RILL_BUF_COUNT;
        l->held_count--;
        rill__conn_t *c = &l->conns[h.slot];
        if (c->in_use && c->gen == h.gen) {
            c->held--;
            if (!c->closing)
                on_data(l, h.slot, l->bufs + (size_t)h.bid * l->buf_size, h.len);
            if (c->in_use && c->held == 0 && c->end_held) {
                c->end_held = 0;
                recv_result(l, h.slot, c->end_res);
            }
        }
        return_buffer(l, h.bid);
        update_paused(l);
    }
    if (l->paused || !l->rearm_pending)
        return;
    l->rearm_pending = 0;
    for (unsigned i = 0; i < l->nconns; i++) {
        rill__conn_t *c = &l->conns[i];
        if (c->rearm) {
            c->rearm = 0;
            if (c->in_use && !c->closing && !c->recv_armed)
                arm_recv(l, i);
        }
    }
}

/* Drain deadline passed while sources were paused: give held data up (logged). */
static void drop_held(rill__loop_t *l)
{
    size_t bytes = 0;
    while (l->held_count) {
        struct rill__held h = l->held[l->held_head];
        l->held_head = (l->held_head + 1) % RILL_BUF_COUNT;
        l->held_count--;
        rill__conn_t *c = &l->conns[h.slot];
        if (c->in_use && c->gen == h.gen) {
            c->held--;
            bytes += h.len;
            if (c->held == 0 && c->end_held) {
                c->end_held = 0;
                conn_close(l, h.slot, c->end_res);
            }
        }
        return_buffer(l, h.bid);
    }
    if (bytes)
        rill__log("loop %u: drain deadline passed with outputs blocked; %zu received bytes "
                  "were not processed",
                  l->idx, bytes);
}

/* ------------------------------------------------------------------ sinks and peer links */

/* Stops watching a link's connection for hang-up (before its fd is closed). */
static void hup_cancel(rill__loop_t *l, rill__sink_t *s, unsigned li)
{
    if (!s->hup_armed)
        return;
    struct io_uring_sqe *sqe = get_sqe(l);
    io_uring_prep_cancel64(sqe, UD(OP_SINK_HUP, li, s->conn_seq), 0);
    io_uring_sqe_set_data64(sqe, UD(OP_CANCEL, 0, 0));
    s->hup_armed = 0;
}

static unsigned link_index(rill__loop_t *l, const rill__sink_t *s)
{
    return s >= l->peers ? PEER_BASE + (unsigned)(s - l->peers) : (unsigned)(s - l->sinks);
}

static void sink_down(rill__loop_t *l, rill__sink_t *s, int err, uint64_t now)
{
    hup_cancel(l, s, link_index(l, s));
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    s->state = SINK_DOWN;
    s->backoff = s->backoff ? s->backoff * 2 : SINK_BACKOFF_MIN_NS;
    if (s->backoff > SINK_BACKOFF_MAX_NS)
        s->backoff = SINK_BACKOFF_MAX_NS;
    s->retry_at = now + s->backoff;
    RILL_STAT_ADD(l->stats.sink_errors, 1);
    char addr[96];
    rill__addr_format(&s->addr, addr, sizeof addr);
    if (s->id[0])
        rill__log_once(&l->w->logged.peer_err,
                       "peer %s at %s: %s; retrying with backoff (failures counted in "
                       "sink_errors)",
                       s->id, addr, rill_strerror(err));
    else
        rill__log_once(&l->w->logged.sink_err,
                       "sink %s: %s; retrying with backoff (failures counted in sink_errors)",
                       addr, rill_strerror(err));
}

static void sink_connect(rill__loop_t *l, unsigned li, uint64_t now)
{
    rill__sink_t *s = link_at(l, li);
    int fd = socket(s->addr.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        sink_down(l, s, -errno, now);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    s->fd = fd;
    s->state = SINK_CONNECTING;
    s->op_pending = 1;
    struct io_uring_sqe *sqe = get_sqe(l);
    io_uring_prep_connect(sqe, fd, (const struct sockaddr *)&s->addr.ss, s->addr.len);
    io_uring_sqe_set_data64(sqe, UD(OP_SINK_CONNECT, li, s->gen));
}

static void sink_send_fly(rill__loop_t *l, unsigned li)
{
    rill__sink_t *s = link_at(l, li);
    struct io_uring_sqe *sqe = get_sqe(l);
    io_uring_prep_send(sqe, s->fd, s->fly.data + s->fly_off, s->fly.len - s->fly_off,
                       MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, UD(OP_SINK_SEND, li, s->gen));
    s->sending = 1;
}

/* At most one send in flight per link: emits made meanwhile accumulate in pend and
 * leave in one send when the current one completes. */
static void sink_kick(rill__loop_t *l, unsigned li)
{
    rill__sink_t *s = link_at(l, li);
    if (s->state != SINK_UP || s->sending || s->pend.len == 0)
        return;
    rill__buf_t t = s->fly;
    s->fly = s->pend;
    s->pend = t;
    s->pend.len = 0;
    s->pend.frames = 0;
    s->fly_off = 0;
    sink_send_fly(l, li);
}

/* A completion for a link: NULL when it belongs to an earlier use of a peer slot. */
static rill__sink_t *link_of_cqe(rill__loop_t *l, struct io_uring_cqe *cqe)
{
    unsigned li = UD_IDX(cqe->user_data);
    if (li >= PEER_BASE + RILL_MAX_MEMBERS)
        return NULL;
    rill__sink_t *s = link_at(l, li);
    return s->gen == UD_GEN(cqe->user_data) ? s : NULL;
}

static void on_sink_connect(rill__loop_t *l, struct io_uring_cqe *cqe, uint64_t now)
{
    rill__sink_t *s = link_of_cqe(l, cqe);
    if (!s)
        return;
    s->op_pending = 0;
    if (s->retiring) {
        link_free(s);
        return;
    }
    if (cqe->res < 0) {
        sink_down(l, s, cqe->res, now);
        return;
    }
    s->state = SINK_UP;
    s->backoff = 0;
    /* Nothing is ever read from a sink: watch for its hang-up instead, so a sink that goes
     * away is noticed at once, not by the first send after it (which the kernel would
     * still accept, and lose). */
    unsigned li = UD_IDX(cqe->user_data);
    s->conn_seq = ++l->conn_seq;
    struct io_uring_sqe *sqe = get_sqe(l);
    io_uring_prep_poll_add(sqe, s->fd, POLLRDHUP | POLLHUP | POLLERR);
    io_uring_sqe_set_data64(sqe, UD(OP_SINK_HUP, li, s->conn_seq));
    s->hup_armed = 1;
}

static void on_sink_hup(rill__loop_t *l, struct io_uring_cqe *cqe, uint64_t now)
{
    unsigned li = UD_IDX(cqe->user_data);
    if (li >= PEER_BASE + RILL_MAX_MEMBERS || cqe->res == -ECANCELED)
        return;
    rill__sink_t *s = link_at(l, li);
    if (!s->hup_armed || s->conn_seq != UD_GEN(cqe->user_data))
        return; /* an earlier connection of this link */
    s->hup_armed = 0;
    if (s->sending) {
        /* Make the send in flight fail: its frames are then queued again. */
        shutdown(s->fd, SHUT_RDWR);
        return;
    }
    sink_down(l, s, cqe->res < 0 ? cqe->res : -ECONNRESET, now);
}

static void reroute_buf(rill__loop_t *l, rill__buf_t *b);

/* A send failed: nothing of it reached the kernel, and the bytes before fly_off did (the
 * earlier short sends). Frames from the one cut at fly_off onwards go back in front of
 * pend, to be sent again whole after the reconnect (or re-routed). Frames the kernel
 * had taken are beyond rill's knowledge: TCP without acknowledgements cannot tell
 * whether the other side read them, so they are not counted as dropped either.
 * Returns the frames given back. */
static uint64_t requeue_unsent(rill__loop_t *l, rill__sink_t *s)
{
    size_t off = 0, keep = s->fly.len;
    uint64_t frames = 0;
    while (off + 4 <= s->fly.len) {
        size_t next = off + 4 + rill__load_be32(s->fly.data + off);
        if (next > s->fly_off) { /* the first frame not wholly handed to the kernel */
            if (keep == s->fly.len)
                keep = off;
            frames++;
        }
        off = next;
    }
    size_t rest = s->fly.len - keep;
    if (rest && rill__buf_reserve(&s->fly, s->pend.len, SIZE_MAX) == 0) {
        memmove(s->fly.data, s->fly.data + keep, rest);
        memcpy(s->fly.data + rest, s->pend.data, s->pend.len);
        s->fly.len = rest + s->pend.len;
        s->fly.frames = frames + s->pend.frames;
        rill__buf_t t = s->pend;
        s->pend = s->fly;
        s->fly = t;
    } else if (rest) {
        RILL_STAT_ADD(l->stats.sink_dropped, frames); /* no memory to merge them */
        frames = 0;
    }
    s->fly.len = 0;
    s->fly.frames = 0;
    s->fly_off = 0;
    return frames;
}

static void on_sink_send(rill__loop_t *l, struct io_uring_cqe *cqe, uint64_t now)
{
    unsigned li = UD_IDX(cqe->user_data);
    rill__sink_t *s = link_of_cqe(l, cqe);
    if (!s)
        return;
    s->sending = 0;
    if (cqe->res <= 0) {
        requeue_unsent(l, s);
        if (s->retiring) {
            /* The member left: what it did not take goes to the keys' new owners. */
            rill__buf_t queued = s->pend;
            memset(&s->pend, 0, sizeof s->pend);
            link_free(s);
            reroute_buf(l, &queued);
            return;
        }
        sink_down(l, s, cqe->res ? cqe->res : -EPIPE, now);
        return;
    }
    RILL_STAT_ADD(l->stats.bytes_out, (uint64_t)cqe->res);
    s->fly_off += (size_t)cqe->res;
    if (s->fly_off < s->fly.len) {
        sink_send_fly(l, li); /* short send: the rest, before anything newer */
        return;
    }
    s->fly.len = 0;
    s->fly.frames = 0;
    if (s->retiring) {
        link_free(s);
        return;
    }
    sink_kick(l, li);
}

void rill__peer_forward(rill__loop_t *l, int member, const rill_msg_t *m)
{
    int pi = l->peer_of[member];
    size_t fs = rill__frame_size(m->len);
    rill__sink_t *s = pi >= 0 ? &l->peers[pi] : NULL;
    if (!s || rill__buf_reserve(&s->pend, fs, l->w->cfg.sink_buffer) < 0) {
        RILL_STAT_ADD(l->stats.sink_dropped, 1);
        return;
    }
    rill__frame_encode(s->pend.data + s->pend.len, m->comp_id, m->key, m->data, m->len);
    s->pend.len += fs;
    s->pend.frames++;
}

/* A member left: route what was queued for it again, under the new view. */
static void peer_retire(rill__loop_t *l, unsigned pi)
{
    rill__sink_t *s = &l->peers[pi];
    rill__buf_t queued = s->pend;
    memset(&s->pend, 0, sizeof s->pend);
    s->retiring = 1;
    hup_cancel(l, s, PEER_BASE + pi);
    if (s->sending || s->op_pending) {
        if (s->fd >= 0)
            shutdown(s->fd, SHUT_RDWR); /* completes the outstanding operation promptly */
    } else {
        link_free(s);
    }
    reroute_buf(l, &queued);
}

/* Routes the frames of b (rill's own v1 encoding) again under the current view, and
 * frees b. */
static void reroute_buf(rill__loop_t *l, rill__buf_t *b)
{
    if (b->len) {
        rill__decoder_t dec;
        rill__decoder_init(&dec, RILL_FRAMING_RILL, UINT32_MAX, 0, 0, 0);
        size_t pos = 0;
        while (pos < b->len) {
            int n = rill__decode(&dec, b->data, b->len, &pos, l->views, RILL_BATCH_MAX);
            if (n < 0)
                break;
            RILL_STAT_ADD(l->stats.rerouted, (uint64_t)n);
            rill__dispatch(l, l->views, (size_t)n, 1);
        }
        rill__decoder_free(&dec);
    }
    buf_free(b);
}

/* Adopts a new view: links to new members, re-routing for members that left. Inside the
 * iteration's registry section (the view lives as long as the section). */
static void view_sync(rill__loop_t *l)
{
    uint64_t gen;
    const rill_view_t *v = rill__cluster_view(l->w->cluster, &gen);
    l->view = v;
    if (gen == l->view_gen || !v)
        return;
    l->view_gen = gen;
    int keep[RILL_MAX_MEMBERS] = {0};
    for (unsigned i = 0; i < v->n; i++) {
        l->peer_of[i] = -1;
        if ((int)i == v->self)
            continue;
        int found = -1, free_slot = -1;
        for (int p = 0; p < RILL_MAX_MEMBERS; p++) {
            rill__sink_t *s = &l->peers[p];
            if (s->in_use && !s->retiring && strcmp(s->id, v->m[i].id) == 0 &&
                memcmp(&s->addr, &v->m[i].sa, sizeof s->addr) == 0)
                found = p;
            else if (!s->in_use && !s->retiring && free_slot < 0)
                free_slot = p;
        }
        if (found < 0 && free_slot >= 0) {
            rill__sink_t *s = &l->peers[free_slot];
            uint32_t gen_keep = s->gen;
            memset(s, 0, sizeof *s);
            s->gen = gen_keep + 1;
            s->fd = -1;
            s->addr = v->m[i].sa;
            snprintf(s->id, sizeof s->id, "%s", v->m[i].id);
            s->in_use = 1;
            s->state = SINK_DOWN;
            s->retry_at = 0; /* connect on this iteration */
            found = free_slot;
        }
        if (found >= 0) {
            keep[found] = 1;
            l->peer_of[i] = (int16_t)found;
        }
    }
    for (int p = 0; p < RILL_MAX_MEMBERS; p++)
        if (l->peers[p].in_use && !l->peers[p].retiring && !keep[p])
            peer_retire(l, (unsigned)p);
    if (l->idx == 0 && l->w->cfg.view_cb)
        l->w->cfg.view_cb(l->w->cfg.view_ctx, v);
}

static void service_link(rill__loop_t *l, unsigned li, uint64_t now)
{
    rill__sink_t *s = link_at(l, li);
    if (s->state == SINK_DOWN && now >= s->retry_at && l->phase != PH_DONE)
        sink_connect(l, li, now);
    sink_kick(l, li);
}

/* Connect attempts due, and a send for every link with output waiting. */
static void service_links(rill__loop_t *l, uint64_t now)
{
    for (unsigned si = 0; si < l->nsinks; si++)
        service_link(l, si, now);
    if (l->w->cluster)
        for (unsigned p = 0; p < RILL_MAX_MEMBERS; p++)
            if (l->peers[p].in_use && !l->peers[p].retiring)
                service_link(l, PEER_BASE + p, now);
}

/* ------------------------------------------------------------------ handoff & local */

static void drain_incoming(rill__loop_t *l)
{
    /* A loop whose sink is behind leaves handoffs in their rings, so the loops feeding it
     * fill their stages and pause their own sources: backpressure crosses threads. (Only
     * sink pressure does this: two loops paused on each other's stages would deadlock.)
     * The sink's send completions wake this loop when it can go on. */
    if (l->sink_paused)
        return;
    for (unsigned s = 0; s < l->nloops; s++) {
        if (s == l->idx)
            continue;
        rill__spsc_t *r = l->in[s];
        const uint8_t *p;
        size_t len;
        /* Steps of at most HANDOFF_STEP bytes (a frame cut by a step waits in the decoder's
         * carry), so that a loop whose output fills checks its watermark often; 4 MiB at
         * most per ring and iteration, to stay fair to sockets. */
        for (int steps = 0; steps < 16 && !l->sink_paused && (len = rill__spsc_peek(r, &p)) > 0;
             steps++) {
            if (len > HANDOFF_STEP)
                len = HANDOFF_STEP;
            size_t pos = 0;
            while (pos < len) {
                int n = rill__decode(&l->in_dec[s], p, len, &pos, l->views, RILL_BATCH_MAX);
                if (n < 0) { /* cannot happen: rill encoded these frames itself */
                    rill__log("internal: handoff stream from loop %u undecodable: %s", s,
                              rill_strerror(n));
                    abort();
                }
                rill__dispatch(l, l->views, (size_t)n, 0);
            }
            rill__spsc_consume(r, len);
            atomic_fetch_sub_explicit(&l->w->inflight, (long long)len, memory_order_release);
            update_paused(l);
        }
        if (rill__spsc_used(r) > 0)
            l->pending_work = 1;
    }
}

static void run_local(rill__loop_t *l)
{
    for (int round = 0; round < LOCAL_ROUNDS && l->local.len; round++) {
        /* Swap generations: emits made while this one runs go to the fresh buffer. */
        rill__buf_t t = l->local_run;
        l->local_run = l->local;
        l->local = t;
        l->local.len = 0;
        size_t pos = 0, len = l->local_run.len;
        while (pos < len) {
            int n = rill__decode(&l->local_dec, l->local_run.data, len, &pos, l->views,
                                 RILL_BATCH_MAX);
            if (n < 0)
                abort(); /* rill's own encoding */
            rill__dispatch(l, l->views, (size_t)n, 0);
        }
        l->local_run.len = 0;
        atomic_fetch_sub_explicit(&l->w->inflight, (long long)len, memory_order_release);
    }
    if (l->local.len)
        l->pending_work = 1; /* a computation chain that keeps emitting: continue next turn */
}

static void push_stages(rill__loop_t *l)
{
    for (unsigned d = 0; d < l->nloops; d++) {
        rill__buf_t *b = &l->stage[d];
        if (b->len == 0)
            continue;
        size_t n = rill__spsc_push(l->out[d], b->data, b->len);
        if (n) {
            memmove(b->data, b->data + n, b->len - n);
            b->len -= n;
            l->wake_mask[d / 64] |= 1ull << (d % 64);
        }
    }
    /* One wakeup per destination and iteration, never one per message. */
    for (unsigned d = 0; d < l->nloops; d++) {
        if (l->wake_mask[d / 64] & (1ull << (d % 64))) {
            l->wake_mask[d / 64] &= ~(1ull << (d % 64));
            rill__loop_wake(l->w->loops[d]);
        }
    }
}

static int stages_empty(const rill__loop_t *l)
{
    for (unsigned d = 0; d < l->nloops; d++)
        if (l->stage[d].len)
            return 0;
    return 1;
}

/* Half the idle timeout, between 10 ms and 1 s: a stalled connection goes within 1.5x. */
static uint64_t sweep_interval(const rill_worker_t *w)
{
    uint64_t ns = (uint64_t)w->cfg.idle_ms * 500000u;
    return ns < 10000000u ? 10000000u : ns > 1000000000u ? 1000000000u : ns;
}

/* Closes connections that have been inside one frame for longer than idle_ms: a stuck
 * sender, or one trickling bytes to hold a carry buffer (slowloris). Connections idle
 * between frames stay. */
static void sweep_idle(rill__loop_t *l, uint64_t now)
{
    uint64_t limit = (uint64_t)l->w->cfg.idle_ms * 1000000u;
    for (unsigned i = 0; i < l->nconns; i++) {
        rill__conn_t *c = &l->conns[i];
        if (c->in_use && !c->closing && !c->held && c->frame_since &&
            now - c->frame_since > limit) {
            RILL_STAT_ADD(l->stats.err_idle, 1);
            rill__log_once(&l->w->logged.idle,
                           "closing a connection stalled inside a frame for over %u ms (further "
                           "cases only counted in err_idle)",
                           l->w->cfg.idle_ms);
            conn_close(l, i, -ETIMEDOUT);
        }
    }
}

/* ------------------------------------------------------------------ drain */

static int sinks_idle(const rill__loop_t *l)
{
    for (unsigned s = 0; s < l->nsinks; s++)
        if (l->sinks[s].pend.len || l->sinks[s].sending)
            return 0;
    if (l->w->cluster)
        for (unsigned p = 0; p < RILL_MAX_MEMBERS; p++)
            if (l->peers[p].in_use && (l->peers[p].pend.len || l->peers[p].sending))
                return 0;
    return 1;
}

static int quiet(rill__loop_t *l)
{
    return l->local.len == 0 && stages_empty(l) &&
           atomic_load_explicit(&l->w->inflight, memory_order_acquire) == 0;
}

/* Stop sequence: stop accepting and close sources (their received data is still
 * processed), wait until every loop has, exchange handoffs until nothing is in flight
 * anywhere, flush computations, wait for that output to settle, send to sinks, exit.
 * Waiting on other loops is bounded by the drain deadline, so a loop that never runs
 * cannot hold the others forever. */
static void drain_step(rill__loop_t *l, uint64_t now)
{
    rill_worker_t *w = l->w;
    int late = now > l->drain_deadline;
    switch (l->phase) {
    case PH_RUN:
        if (!atomic_load_explicit(&w->stopping, memory_order_acquire))
            return;
        if (!l->drain_deadline)
            l->drain_deadline = now + RILL_DRAIN_DEADLINE_NS;
        late = now > l->drain_deadline;
        if (w->cluster && !late) {
            /* Leave first and keep serving a moment: members that forwarded frames here
             * before they saw the new view still get them processed. */
            uint64_t left = rill__cluster_left_at(w->cluster);
            if (!left || now < left + RILL_LEAVE_GRACE_NS)
                return;
        }
        l->drain_deadline = now + RILL_DRAIN_DEADLINE_NS;
        for (unsigned li = 0; li < w->cfg.nlisteners; li++) {
            if (l->accept_armed[li]) {
                struct io_uring_sqe *sqe = get_sqe(l);
                io_uring_prep_cancel64(sqe, UD(OP_ACCEPT, li, 0), 0);
                io_uring_sqe_set_data64(sqe, UD(OP_CANCEL, 0, 0));
            }
        }
        for (unsigned i = 0; i < l->nconns; i++) {
            rill__conn_t *c = &l->conns[i];
            if (!c->in_use)
                continue;
            if (!c->held) {
                conn_close(l, i, 0);
                continue;
            }
            /* Data of this connection is still held: stop receiving, close after it. */
            c->rearm = 0;
            c->end_held = 1;
            c->end_res = -ECANCELED;
            if (c->recv_armed) {
                struct io_uring_sqe *sqe = get_sqe(l);
                io_uring_prep_cancel64(sqe, UD(OP_RECV, i, c->gen), 0);
                io_uring_sqe_set_data64(sqe, UD(OP_CANCEL, i, c->gen));
            }
        }
        l->phase = PH_CLOSING;
        /* fall through */
    case PH_CLOSING:
        if (late && l->held_count)
            drop_held(l);
        if (l->conns_open)
            return;
        for (unsigned li = 0; li < w->cfg.nlisteners; li++)
            if (l->accept_armed[li])
                return;
        if (atomic_fetch_add(&w->drain_closed, 1) + 1 == w->nloops)
            rill__worker_close_listeners(w); /* shared by the loops: the last one out closes */
        l->phase = PH_WAIT_CLOSED;
        /* fall through */
    case PH_WAIT_CLOSED:
        if (!late && (atomic_load(&w->drain_closed) < w->nloops || !quiet(l)))
            return;
        rill__dispatch_flush(l);
        atomic_fetch_add(&w->drain_flushed, 1);
        l->phase = PH_WAIT_FLUSHED;
        return; /* let the flush output move first */
    case PH_WAIT_FLUSHED:
        if (!late && (atomic_load(&w->drain_flushed) < w->nloops || !quiet(l)))
            return;
        l->phase = PH_SINKS;
        l->drain_deadline = now + RILL_DRAIN_DEADLINE_NS;
        late = 0;
        /* fall through */
    case PH_SINKS:
        if (!sinks_idle(l) && !late)
            return;
        for (unsigned li = 0; li < PEER_BASE + RILL_MAX_MEMBERS; li++) {
            rill__sink_t *k = link_at(l, li);
            RILL_STAT_ADD(l->stats.sink_dropped, k->pend.frames + (k->sending ? k->fly.frames : 0));
        }
        l->phase = PH_DONE;
        return;
    default:
        return;
    }
}

/* Queue depths for stats and metrics, once per iteration. */
static void publish_gauges(rill__loop_t *l)
{
    size_t sinkq = 0, stageq = 0;
    for (unsigned si = 0; si < l->nsinks; si++)
        sinkq += l->sinks[si].pend.len + (l->sinks[si].sending ? l->sinks[si].fly.len : 0);
    if (l->w->cluster)
        for (unsigned p = 0; p < RILL_MAX_MEMBERS; p++)
            if (l->peers[p].in_use)
                sinkq += l->peers[p].pend.len + (l->peers[p].sending ? l->peers[p].fly.len : 0);
    for (unsigned d = 0; d < l->nloops; d++)
        stageq += l->stage[d].len;
    RILL_STAT_SET(l->stats.sink_queued_bytes, sinkq);
    RILL_STAT_SET(l->stats.stage_queued_bytes, stageq);
    RILL_STAT_SET(l->stats.held_buffers, l->held_count);
}

/* ------------------------------------------------------------------ the loop */

static uint64_t next_wait(rill__loop_t *l, uint64_t now)
{
    if (l->pending_work)
        return 0;
    uint64_t wait = UINT64_MAX;
#define UNTIL(t) ((t) > now ? (t) - now : 0)
    for (unsigned s = 0; s < l->nsinks; s++)
        if (l->sinks[s].state == SINK_DOWN && UNTIL(l->sinks[s].retry_at) < wait)
            wait = UNTIL(l->sinks[s].retry_at);
    if (l->w->cluster)
        for (unsigned p = 0; p < RILL_MAX_MEMBERS; p++)
            if (l->peers[p].in_use && !l->peers[p].retiring && l->peers[p].state == SINK_DOWN &&
                UNTIL(l->peers[p].retry_at) < wait)
                wait = UNTIL(l->peers[p].retry_at);
    if (l->w->cfg.flush_ms && l->phase == PH_RUN && UNTIL(l->next_flush) < wait)
        wait = UNTIL(l->next_flush);
    if (l->w->cfg.idle_ms && l->conns_open && UNTIL(l->next_sweep) < wait)
        wait = UNTIL(l->next_sweep);
    if (!stages_empty(l) && STAGE_RETRY_NS < wait)
        wait = STAGE_RETRY_NS;
    if ((l->phase != PH_RUN || atomic_load_explicit(&l->w->stopping, memory_order_relaxed)) &&
        DRAIN_POLL_NS < wait)
        wait = DRAIN_POLL_NS;
#undef UNTIL
    return wait;
}

static void handle_cqe(rill__loop_t *l, struct io_uring_cqe *cqe, uint64_t now)
{
    switch (UD_OP(cqe->user_data)) {
    case OP_ACCEPT:
        on_accept(l, cqe);
        break;
    case OP_RECV:
        on_recv(l, cqe);
        break;
    case OP_EFD:
        l->efd_armed = 0;
        break;
    case OP_SINK_CONNECT:
        on_sink_connect(l, cqe, now);
        break;
    case OP_SINK_SEND:
        on_sink_send(l, cqe, now);
        break;
    case OP_SINK_HUP:
        on_sink_hup(l, cqe, now);
        break;
    default: /* OP_CANCEL: the cancelled operation reports on its own */
        break;
    }
}

int rill__loop_run(rill__loop_t *l)
{
    rill_worker_t *w = l->w;
    int rc = ring_setup(l);
    if (rc < 0) {
        rill__log("loop %u: io_uring set-up failed: %s", l->idx, rill_strerror(rc));
        ring_teardown(l);
        return rc;
    }
    rill__current_loop = l;
    uint64_t now = rill__now_ns();
    l->now = now;
    l->next_sweep = now + sweep_interval(w);
    if (w->cfg.flush_ms)
        l->next_flush = now + (uint64_t)w->cfg.flush_ms * 1000000u;
    arm_efd(l);
    for (unsigned li = 0; li < w->cfg.nlisteners; li++)
        arm_accept(l, li);
    for (unsigned s = 0; s < l->nsinks; s++)
        sink_connect(l, s, now);

    while (l->phase != PH_DONE) {
        uint64_t wait = next_wait(l, rill__now_ns());
        l->pending_work = 0;
        if (wait == UINT64_MAX) {
            rc = io_uring_submit_and_wait(&l->ring, 1);
        } else {
            struct __kernel_timespec ts = {.tv_sec = (long long)(wait / 1000000000u),
                                           .tv_nsec = (long long)(wait % 1000000000u)};
            struct io_uring_cqe *unused;
            rc = io_uring_submit_and_wait_timeout(&l->ring, &unused, 1, &ts, NULL);
        }
        if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY && rc != -EAGAIN) {
            rill__log("loop %u: io_uring wait failed: %s", l->idx, rill_strerror(rc));
            break;
        }
        now = rill__now_ns();
        l->now = now;
        /* One registry read section per iteration: every dispatch below runs inside it,
         * and it ends before the loop can block. */
        rill__registry_enter(w->reg, l->idx);
        l->cache_comp = NULL;
        unsigned head, seen = 0;
        struct io_uring_cqe *cqe;
        if (w->cluster)
            view_sync(l);
        io_uring_for_each_cqe(&l->ring, head, cqe)
        {
            handle_cqe(l, cqe, now);
            seen++;
        }
        io_uring_cq_advance(&l->ring, seen);

        drain_incoming(l);
        run_local(l);
        push_stages(l);
        if (!l->efd_armed)
            arm_efd(l);
        if (w->cfg.idle_ms && now >= l->next_sweep) {
            sweep_idle(l, now);
            l->next_sweep = now + sweep_interval(w);
        }
        if (w->cfg.flush_ms && l->phase == PH_RUN && now >= l->next_flush) {
            rill__dispatch_flush(l);
            l->next_flush = now + (uint64_t)w->cfg.flush_ms * 1000000u;
            run_local(l);
            push_stages(l);
        }
        service_links(l, now);
        update_paused(l);
        if (!l->paused && (l->held_count || l->rearm_pending)) {
            release_held(l);
            run_local(l);
            push_stages(l);
            service_links(l, now);
        }
        drain_step(l, now);
        publish_gauges(l);
        rill__registry_exit(w->reg, l->idx);
    }

    ring_teardown(l);
    for (unsigned li = 0; li < PEER_BASE + RILL_MAX_MEMBERS; li++) {
        rill__sink_t *k = link_at(l, li);
        if (k->fd >= 0)
            close(k->fd);
        k->fd = -1;
    }
    rill__current_loop = NULL;
    return rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY && rc != -EAGAIN ? rc : 0;
}
