/* The stop sequence of one loop, advanced once per iteration by rill__drain_step.
 *
 * Stop accepting and close sources (their received data is still processed), wait until
 * every loop has, exchange handoffs until nothing is in flight anywhere, flush
 * computations, wait for that output to settle, send to sinks, exit. Waiting on other
 * loops is bounded by the drain deadline, so a loop that never runs cannot hold the
 * others forever. */
#include <errno.h>
#include <unistd.h>

#include "cluster/cluster.h"
#include "loop/internal.h"

static int quiet(rill__loop_t *l)
{
    return rill__dispatch_local_bytes(&l->dispatch) == 0 &&
           rill__handoff_staged(&l->handoff, NULL) == 0 &&
           atomic_load_explicit(&l->w->inflight, memory_order_acquire) == 0;
}

/* Stops accepting and closes the sources; connections with held data close after it. */
static void close_sources(rill__loop_t *l)
{
    rill_worker_t *w = l->w;
    for (unsigned li = 0; li < w->cfg.nlisteners; li++)
        if (l->accept_armed[li])
            rill__ring_cancel(&l->ring, RILL_UD(RILL_OP_ACCEPT, li, 0));
    for (unsigned i = 0; i < l->nconns; i++) {
        rill__conn_t *c = &l->conns[i];
        if (!c->in_use || c->closing)
            continue;
        if (c->mode == RILL_CONN_ACKED) {
            rill__ackin_goaway(l, i); /* closes once what it brought is acknowledged */
            continue;
        }
        if (!c->held) {
            rill__conn_close(l, i, 0);
            continue;
        }
        /* Data of this connection is still held: stop receiving, close after it. */
        c->rearm = 0;
        c->end_held = 1;
        c->end_res = -ECANCELED;
        if (c->recv_armed)
            rill__ring_cancel(&l->ring, RILL_UD(RILL_OP_RECV, i, c->gen));
    }
}

void rill__drain_step(rill__loop_t *l, uint64_t now)
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
        close_sources(l);
        l->phase = PH_CLOSING;
        /* fall through */
    case PH_CLOSING:
        if (late && l->held_count)
            rill__bp_drop(l);
        rill__ackin_close_settled(l, late);
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
        rill__dispatch_flush(&l->dispatch);
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
        if (!rill__links_idle(&l->links) && !late)
            return;
        rill__links_count_unsent(&l->links);
        l->phase = PH_DONE;
        return;
    default:
        return;
    }
}

void rill__drain_abandon(rill__loop_t *l)
{
    /* A loop that ends without draining (its ring failed) must not hold the others at
     * the phases that wait for every loop. */
    if (l->phase < PH_WAIT_CLOSED)
        atomic_fetch_add(&l->w->drain_closed, 1);
    if (l->phase < PH_WAIT_FLUSHED)
        atomic_fetch_add(&l->w->drain_flushed, 1);
    l->phase = PH_DONE;
}
