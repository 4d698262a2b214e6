/* The per-thread io_uring loop: its life cycle and the iteration.
 *
 * One submit-and-wait per iteration; every completion of the iteration is handled, then
 * the work they produced (handoffs, local emits, link sends) is pushed out once. Nothing
 * on the per-message path makes a syscall, takes a lock or allocates (buffers grow by
 * doubling and are then reused). */
#include "loop/loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "cluster/cluster.h"
#include "loop/internal.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/stat.h"

__thread rill__loop_t *rill__current_loop;

#define DRAIN_POLL_NS (2ull * 1000000ull)
#define STAGE_RETRY_NS (200ull * 1000ull)
/* While a key group waits for its state: how often the loop looks at the deadline. */
#define MOVES_POLL_NS (20ull * 1000000ull)
/* Batching under load (rill_config_set_busy_wait_us): an iteration that handled this many
 * completions makes the next wait for as many again, up to the most. */
#define BUSY_MIN_CQES 4u
#define BUSY_MAX_CQES 32u
/* A loop reads a handoff ring in steps of at most this many bytes, so that a loop whose
 * output fills checks its watermark often; 16 steps at most per ring and iteration, to
 * stay fair to sockets. */
#define HANDOFF_STEP ((size_t)256 << 10)
#define HANDOFF_STEPS 16

/* The stream id of loop idx's acked stream to sink s: one per (worker, loop, sink); s =
 * 0xff seeds the loop's peer links. */
static uint64_t stream_id(uint64_t seed, unsigned idx, unsigned s)
{
    return rill__stream_id(seed, (uint64_t)idx << 8 | s);
}

int rill__loop_new(rill__loop_t **out, rill_worker_t *w, unsigned idx)
{
    rill__loop_t *l = aligned_alloc(64, (sizeof *l + 63) & ~(size_t)63);
    if (!l)
        return RILL_ENOMEM;
    memset(l, 0, sizeof *l);
    l->w = w;
    l->idx = idx;
    l->nloops = w->nloops;
    rill__links_init(&l->links, &l->ring, &l->stats, &w->logged, w->cfg.sink_buffer, w->cfg.sinks,
                     w->cfg.nsinks, w->cfg.clustered, stream_id(w->stream_seed, idx, 0xff));
    l->links.peer_key = w->has_peer_key ? w->peer_key : NULL;
    for (unsigned s = 0; s < w->cfg.nsinks; s++)
        if (w->cfg.sink_acked[s] && rill__link_make_acked(&l->links, &l->links.sinks[s],
                                                          stream_id(w->stream_seed, idx, s)) < 0) {
            rill__links_free(&l->links);
            free(l);
            return RILL_ENOMEM;
        }
    l->efd = eventfd(0, EFD_CLOEXEC);
    if (l->efd < 0) {
        int err = -errno;
        free(l);
        return err;
    }
    if (rill__handoff_init(&l->handoff, idx, w->nloops, w->rings, &w->inflight,
                           &l->stats.handoff_dropped) < 0) {
        rill__loop_free(l);
        return RILL_ENOMEM;
    }
    rill__dispatch_init(&l->dispatch, idx, w->nloops, w->cfg.key_groups, w->cfg.clustered,
                        w->cfg.dead_letter_sink, w->cfg.max_frame, w->reg, &l->links, &l->handoff,
                        &l->stats, &w->logged, &w->inflight);
    pthread_mutex_init(&l->handover_mu, NULL);
    if (rill__ackin_init(l) < 0) {
        rill__loop_free(l);
        return RILL_ENOMEM;
    }
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
            free(l->conns[i].tx);
        }
    }
    free(l->conns);
    rill__links_free(&l->links);
    rill__handoff_free(&l->handoff);
    rill__dispatch_free(&l->dispatch);
    rill__moves_free(l);
    rill__ackin_free(l);
    for (rill__handover_t *h = l->handovers, *next; h; h = next) {
        next = h->next;
        close(h->fd);
        free(h);
    }
    free(l);
}

void rill__loop_wake(rill__loop_t *l)
{
    uint64_t one = 1;
    ssize_t rc = write(l->efd, &one, sizeof one);
    (void)rc; /* EAGAIN only when the counter is saturated: the loop is awake anyway. */
}

static void arm_efd(rill__loop_t *l)
{
    struct io_uring_sqe *sqe = rill__ring_sqe(&l->ring);
    io_uring_prep_read(sqe, l->efd, &l->efd_val, sizeof l->efd_val, 0);
    io_uring_sqe_set_data64(sqe, RILL_UD(RILL_OP_EFD, 0, 0));
    l->efd_armed = 1;
}

/* Routes again what the links gave back (frames for members that left), each depth's
 * as frames of the origin that sends on it, so that they travel on links of the same
 * depth and the barriers that waited for them wait for them again (the standby link's:
 * chunks, which rill__dispatch_reroute sends to whom they are for now). */
static void reroute(rill__loop_t *l)
{
    int any = 0;
    for (unsigned d = 0; d < RILL_PEER_LINKS; d++)
        if (l->links.reroute[d].len) {
            rill__dispatch_reroute(&l->dispatch, &l->links.reroute[d],
                                   d < RILL_ORIGIN_LAST ? d : RILL_ORIGIN_LAST);
            any = 1;
        }
    if (any)
        rill__ackin_rerouted(l);
}

/* Adopts the cluster's current view, inside the iteration's registry section (the view
 * lives as long as the section): links follow its members, dispatch routes by it. */
static void view_sync(rill__loop_t *l)
{
    uint64_t gen;
    const rill_view_t *v = rill__cluster_view(l->w->cluster, &gen);
    rill__dispatch_begin(&l->dispatch, v);
    if (gen == l->view_gen || !v)
        return;
    l->view_gen = gen;
    /* Which members of the view before are gone for sure (for their groups' standby
     * copies, group_moves.c): asked of the links before they follow the new view. */
    uint8_t refused[RILL_MAX_MEMBERS] = {0};
    if (l->moves_prev)
        rill__links_refused(&l->links, l->moves_prev->n, refused);
    rill__links_adopt_view(&l->links, v);
    rill__moves_adopt(l, v, refused); /* before reroute: a group's state goes ahead of its frames */
    rill__dispatch_ahead(&l->dispatch);
    reroute(l);
    if (l->idx == 0 && l->w->cfg.view_cb)
        l->w->cfg.view_cb(l->w->cfg.view_ctx, v);
}

static void wake_loop(void *ctx, unsigned dst)
{
    rill_worker_t *w = ctx;
    rill__loop_wake(w->loops[dst]);
}

/* Frames other loops handed to this one. A loop whose link is behind leaves them in
 * their rings, so the loops feeding it fill their stages and pause their own sources:
 * backpressure crosses threads. (Only link pressure does this: two loops paused on each
 * other's stages would deadlock.) The link's send completions wake this loop when it can
 * go on. */
static void drain_incoming(rill__loop_t *l)
{
    if (l->sink_paused)
        return;
    for (unsigned s = 0; s < l->nloops; s++) {
        if (s == l->idx)
            continue;
        for (int steps = 0; steps < HANDOFF_STEPS && !l->sink_paused &&
                            rill__handoff_begin(&l->handoff, s, HANDOFF_STEP) > 0;
             steps++) {
            size_t n;
            rill__dispatch_t *d = &l->dispatch;
            uint64_t ran[RILL_ORIGINS];
            memcpy(ran, d->ran_local, sizeof ran);
            rill__ackin_loop_begin(l);
            d->origin = l->handoff.in_origin[s]; /* the ring's markers change it */
            while ((n = rill__handoff_next(&l->handoff, s, l->views, RILL_BATCH_MAX)) > 0)
                rill__dispatch(d, l->views, n, RILL_ROUTE_LOCAL, 0);
            l->handoff.in_origin[s] = (uint8_t)d->origin;
            for (unsigned o = 0; o < RILL_ORIGINS; o++)
                l->handoff.in_frames[s * RILL_ORIGINS + o] += d->ran_local[o] - ran[o];
            rill__ackin_loop_ran(l, s);
            rill__links_publish(&l->links); /* before the release: see rill__links_publish */
            rill__handoff_end(&l->handoff, s);
            rill__bp_update(l);
        }
        if (rill__handoff_waiting(&l->handoff, s) > 0)
            l->pending_work = 1;
    }
}

/* Local emits, then everything staged for other loops. */
static void run_local_and_push(rill__loop_t *l)
{
    if (rill__dispatch_run_local(&l->dispatch))
        l->pending_work = 1; /* a computation chain that keeps emitting: continue next turn */
    rill__handoff_push(&l->handoff, wake_loop, l->w);
}

/* Queue depths for stats and metrics, once per iteration, and the carry budget check
 * that needs every loop's published figure. */
static void publish_gauges(rill__loop_t *l)
{
    rill__links_publish(&l->links); /* acked sinks' figures: other loops' barriers read them */
    RILL_STAT_SET(l->stats.sink_queued_bytes, rill__links_queued(&l->links));
    RILL_STAT_SET(l->stats.retained_bytes, rill__links_retained(&l->links));
    RILL_STAT_SET(l->stats.stage_queued_bytes, rill__handoff_staged(&l->handoff, NULL));
    RILL_STAT_SET(l->stats.held_buffers, l->held_count);
    RILL_STAT_SET(l->stats.groups_waiting, l->dispatch.parked_groups);
    rill__conn_settle_carries(l);
}

static uint64_t next_wait(rill__loop_t *l, uint64_t now)
{
    if (l->pending_work)
        return 0;
#define UNTIL(t) ((t) > now ? (t)-now : 0)
    uint64_t wait = rill__links_next_retry(&l->links, now);
    if (l->w->cfg.flush_ms && l->phase == PH_RUN && UNTIL(l->next_flush) < wait)
        wait = UNTIL(l->next_flush);
    if (l->w->cfg.idle_ms && l->conns_open && UNTIL(l->next_sweep) < wait)
        wait = UNTIL(l->next_sweep);
    if (rill__handoff_staged(&l->handoff, NULL) && STAGE_RETRY_NS < wait)
        wait = STAGE_RETRY_NS;
    if (rill__ackin_waiting(l) && RILL_ACK_POLL_NS < wait)
        wait = RILL_ACK_POLL_NS;
    if (rill__moves_waiting(l) && MOVES_POLL_NS < wait)
        wait = MOVES_POLL_NS;
    if ((l->phase != PH_RUN || atomic_load_explicit(&l->w->stopping, memory_order_relaxed)) &&
        DRAIN_POLL_NS < wait)
        wait = DRAIN_POLL_NS;
#undef UNTIL
    return wait;
}

static void handle_cqe(rill__loop_t *l, struct io_uring_cqe *cqe, uint64_t now)
{
    switch (RILL_UD_OP(cqe->user_data)) {
    case RILL_OP_ACCEPT:
        rill__conn_on_accept(l, cqe);
        break;
    case RILL_OP_RECV:
        rill__conn_on_recv(l, cqe);
        break;
    case RILL_OP_EFD:
        l->efd_armed = 0;
        break;
    case RILL_OP_CONN_SEND:
        rill__ackin_on_send(l, cqe);
        break;
    case RILL_OP_LINK_CONNECT:
    case RILL_OP_LINK_SEND:
    case RILL_OP_LINK_HUP:
    case RILL_OP_LINK_RECV:
        rill__links_on_completion(&l->links, cqe, now);
        break;
    default: /* RILL_OP_CANCEL: the cancelled operation reports on its own */
        break;
    }
}

static int wait_failed(int rc)
{
    return rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY && rc != -EAGAIN;
}

/* One iteration's work after the wait, inside the registry read section. */
static void iterate(rill__loop_t *l, uint64_t now)
{
    rill_worker_t *w = l->w;
    unsigned head, seen = 0;
    struct io_uring_cqe *cqe;
    if (w->cluster) {
        int fenced = rill__cluster_fence_on(w->cluster); /* before the view (cluster.h) */
        view_sync(l);
        rill__moves_fence(l, fenced, now);
    } else
        rill__dispatch_begin(&l->dispatch, NULL);
    io_uring_for_each_cqe(&l->ring.uring, head, cqe)
    {
        handle_cqe(l, cqe, now);
        seen++;
    }
    io_uring_cq_advance(&l->ring.uring, seen);
    l->last_seen = seen;
    reroute(l);
    rill__ackin_adopt(l);

    drain_incoming(l);
    if (rill__moves_waiting(l))
        rill__moves_step(l, now);
    run_local_and_push(l);
    if (!l->efd_armed)
        arm_efd(l);
    if (l->accept_deferred)
        rill__conn_resume_accepts(l);
    if (w->cfg.idle_ms && now >= l->next_sweep) {
        rill__conn_sweep_idle(l, now);
        l->next_sweep = now + rill__conn_sweep_interval(w);
    }
    if (w->cfg.flush_ms && l->phase == PH_RUN && now >= l->next_flush) {
        rill__dispatch_flush(&l->dispatch);
        l->next_flush = now + (uint64_t)w->cfg.flush_ms * 1000000u;
        run_local_and_push(l);
    }
    rill__moves_sync(l);
    rill__links_service(&l->links, now, l->phase != PH_DONE);
    rill__bp_update(l);
    if (!l->paused && (l->held_count || l->rearm_pending)) {
        rill__bp_release(l);
        run_local_and_push(l);
        rill__moves_sync(l);
        rill__links_service(&l->links, now, l->phase != PH_DONE);
    }
    rill__drain_step(l, now);
    rill__ackin_step(l);
    publish_gauges(l);
}

int rill__loop_run(rill__loop_t *l, void (*ready)(void *ctx, int rc), void *ctx)
{
    rill_worker_t *w = l->w;
    int rc = rill__ring_setup(&l->ring);
    if (rc < 0) {
        rill__log_error("loop %u: io_uring set-up failed: %s", l->idx, rill_strerror(rc));
        rill__ring_teardown(&l->ring);
        rill__drain_abandon(l);
        if (ready)
            ready(ctx, rc);
        return rc;
    }
    if (ready)
        ready(ctx, 0);
    rill__current_loop = l;
    uint64_t now = rill__now_ns();
    l->now = now;
    l->next_sweep = now + rill__conn_sweep_interval(w);
    if (w->cfg.flush_ms)
        l->next_flush = now + (uint64_t)w->cfg.flush_ms * 1000000u;
    arm_efd(l);
    for (unsigned li = 0; li < w->cfg.nlisteners; li++)
        rill__conn_arm_accept(l, li);
    rill__links_service(&l->links, now, 1);

    const uint64_t busy_ns = (uint64_t)w->cfg.busy_wait_us * 1000u;
    while (l->phase != PH_DONE) {
        uint64_t wait = next_wait(l, rill__now_ns());
        l->pending_work = 0;
        /* Busy (the last iteration had BUSY_MIN_CQES or more): wait for about as many
         * completions again, at most busy_ns, so that one iteration and one send per link
         * serve them all. */
        unsigned want = 1;
        if (busy_ns && l->last_seen >= BUSY_MIN_CQES && wait != 0) {
            want = l->last_seen < BUSY_MAX_CQES ? l->last_seen : BUSY_MAX_CQES;
            if (wait > busy_ns)
                wait = busy_ns;
        }
        if (wait == UINT64_MAX) {
            rc = io_uring_submit_and_wait(&l->ring.uring, 1);
        } else {
            struct __kernel_timespec ts = {.tv_sec = (long long)(wait / 1000000000u),
                                           .tv_nsec = (long long)(wait % 1000000000u)};
            struct io_uring_cqe *unused;
            rc = io_uring_submit_and_wait_timeout(&l->ring.uring, &unused, want, &ts, NULL);
        }
        if (wait_failed(rc)) {
            rill__log_error("loop %u: io_uring wait failed: %s", l->idx, rill_strerror(rc));
            break;
        }
        now = rill__now_ns();
        l->now = now;
        /* One registry read section per iteration: every dispatch runs inside it, and it
         * ends before the loop can block. */
        rill__registry_enter(w->reg, l->idx);
        iterate(l, now);
        rill__registry_exit(w->reg, l->idx);
    }

    if (l->phase != PH_DONE)
        rill__drain_abandon(l);
    rill__ring_teardown(&l->ring);
    rill__links_close(&l->links);
    rill__current_loop = NULL;
    return wait_failed(rc) ? rc : 0;
}
