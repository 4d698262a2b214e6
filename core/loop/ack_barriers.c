/* When acked frames are safe: the barriers of one loop (core/barrier), by class.
 *
 * At the end of an iteration in which acked frames ran, the loop takes a barrier over its
 * acked outputs: the frames are safe once every acked sink and peer link acknowledged
 * what had been appended to it by then, and every other loop acknowledged back the frames
 * handed to it. Classes (loop.h, RILL_ACK_*): one per origin, the depth of a frame's
 * member hops (handoff/stage.h); a class's barriers count only the peer links one depth
 * deeper (none for the last origin), so a wait always goes deeper and members that
 * forward to each other never wait on each other in a circle. Frames handed over by
 * another loop count this loop's sinks (and its peer links of the next depth), and, when
 * running them handed something on again, wait for a moment when nothing is in flight
 * in the worker (the inflight figure is 0), with every loop's published figures read
 * after it. What of another loop's frames of each origin is safe is published for that
 * loop in safe_from[][origin]; a loop's barriers count the frames it handed on of their
 * own origin only, so that no frame waits, through another loop, for links of a depth
 * it may not wait on. */
#include <stdlib.h>
#include <string.h>

#include "link/acked.h"
#include "loop/internal.h"
#include "util/stat.h"

#define BARRIERS 64

static inline int is_loop_class(unsigned cls)
{
    return cls >= RILL_ACK_LOOP;
}

/* The origin of the frames a class's barriers cover. */
static inline unsigned class_origin(unsigned cls)
{
    return cls % RILL_ORIGINS;
}

static inline unsigned loop_class(unsigned origin)
{
    return RILL_ACK_LOOP + origin;
}

static inline rill__ackq_t *from_loop(rill__loop_t *l, unsigned src, unsigned origin)
{
    return &l->from_loop[src * RILL_ORIGINS + origin];
}

/* Snapshot layout: per loop j, its links' figures at j * outputs; then, with several
 * loops, the frames this loop handed to loop d at handoff_base(l) + d. */
static unsigned handoff_base(const rill__loop_t *l)
{
    return l->nloops * rill__links_outputs(&l->links);
}

int rill__ackb_init(rill__loop_t *l)
{
    unsigned width = handoff_base(l) + (l->nloops > 1 ? l->nloops : 0);
    if (!width)
        width = 1;
    l->fig_a = calloc(width, sizeof *l->fig_a);
    l->fig_s = calloc(width, sizeof *l->fig_s);
    l->from_loop = calloc((size_t)l->nloops * RILL_ORIGINS, sizeof *l->from_loop);
    if (!l->fig_a || !l->fig_s || !l->from_loop)
        return RILL_ENOMEM;
    for (unsigned k = 0; k < RILL_ACK_CLASSES; k++)
        if (rill__barriers_init(&l->barriers[k], width, BARRIERS) < 0)
            return RILL_ENOMEM;
    return 0;
}

void rill__ackb_free(rill__loop_t *l)
{
    free(l->fig_a);
    free(l->fig_s);
    free(l->from_loop);
    for (unsigned k = 0; k < RILL_ACK_CLASSES; k++)
        rill__barriers_free(&l->barriers[k]);
}

/* Every loop's published sink figures (this loop's own are exact), read after the worker
 * was seen with nothing in flight. */
static void read_all_figures(rill__loop_t *l, uint64_t *appended, uint64_t *safe)
{
    unsigned ns = rill__links_outputs(&l->links);
    for (unsigned j = 0; j < l->nloops; j++) {
        if (j == l->idx) {
            uint64_t own[RILL_LINK_OUTPUTS];
            rill__links_figures(&l->links, appended ? appended + j * ns : own, safe + j * ns);
            continue;
        }
        rill__links_t *o = &l->w->loops[j]->links;
        for (unsigned k = 0; k < ns; k++) {
            if (appended)
                appended[j * ns + k] =
                    atomic_load_explicit(&o->pub_appended[k], memory_order_relaxed);
            safe[j * ns + k] = atomic_load_explicit(&o->pub_safe[k], memory_order_relaxed);
        }
    }
}

static int any_pending(const rill__loop_t *l)
{
    for (unsigned k = 0; k < RILL_ACK_CLASSES; k++)
        if (rill__barriers_pending(&l->barriers[k]))
            return 1;
    return 0;
}

int rill__ackin_waiting(const rill__loop_t *l)
{
    return l->nloops > 1 && any_pending(l);
}

/* A class of origin o counts only the peer links of depth o + 1, the links that frames
 * of origin o are sent on, and the standby links, which carry what they changed in
 * managed state (none for the last origin). */
static void mask_peer_slots(const rill__loop_t *l, uint64_t *fig, unsigned origin)
{
    unsigned ns = rill__links_outputs(&l->links), nsinks = l->links.nsinks;
    for (unsigned j = 0; j < l->nloops; j++)
        for (unsigned p = 0; p < ns - nsinks; p++) {
            unsigned depth = rill__link_slot_depth(p);
            if (origin == RILL_ORIGIN_LAST || (depth != origin + 1 && depth != RILL_STANDBY_DEPTH))
                fig[j * ns + nsinks + p] = 0;
        }
}

/* What this loop has handed on so far: to other loops, to its emit_comp queue, to
 * members. A change while frames of other loops ran means those frames handed on. */
static uint64_t handed_on(const rill__loop_t *l)
{
    uint64_t n = rill__dispatch_local_bytes(&l->dispatch);
    for (unsigned d = 0; d < l->nloops * RILL_ORIGINS; d++)
        n += l->handoff.out_frames[d];
    for (unsigned p = 0; l->links.clustered && p < RILL_PEER_SLOTS; p++)
        n += l->links.peers[p].pend.frames + l->links.peers[p].base +
             (l->links.peers[p].ack ? rill__acked_appended(&l->links.peers[p]) : 0);
    return n;
}

void rill__ackin_loop_begin(rill__loop_t *l)
{
    l->chain_mark = handed_on(l);
}

void rill__ackin_loop_ran(rill__loop_t *l, unsigned src)
{
    int chained = handed_on(l) != l->chain_mark;
    for (unsigned o = 0; o < RILL_ORIGINS; o++) {
        rill__ackq_t *q = from_loop(l, src, o);
        uint64_t ran = l->handoff.in_frames[src * RILL_ORIGINS + o];
        if (ran == q->processed)
            continue;
        q->processed = ran;
        l->from_loop_busy = 1;
        if (chained) /* which origin handed on is not told apart: both wait */
            l->chained[o] = 1;
    }
}

static int class_unnoted(rill__loop_t *l, unsigned cls)
{
    if (is_loop_class(cls)) {
        for (unsigned s = 0; l->from_loop_busy && s < l->nloops; s++)
            if (rill__ackq_unnoted(from_loop(l, s, class_origin(cls))))
                return 1;
        return 0;
    }
    for (unsigned i = 0; i < l->npending; i++)
        if (l->pending[i]->cls == cls && rill__ackq_unnoted(&l->pending[i]->q))
            return 1;
    return 0;
}

/* Fills fig_s with what the barriers of class cls compare against: every loop's
 * published figures (this loop's own exact), and what each other loop says is safe of
 * the frames of the class's origin this one handed it. */
static void safe_figures(rill__loop_t *l, unsigned cls)
{
    unsigned o = class_origin(cls);
    unsigned ns = rill__links_outputs(&l->links), hb = handoff_base(l);
    if (l->nloops > 1)
        read_all_figures(l, NULL, l->fig_s);
    else if (ns)
        rill__links_figures(&l->links, l->fig_a, l->fig_s);
    for (unsigned d = 0; l->nloops > 1 && d < l->nloops; d++)
        l->fig_s[hb + d] = d == l->idx ? 0
                                       : atomic_load_explicit(&l->w->loops[d]->safe_from[l->idx][o],
                                                              memory_order_acquire);
}

/* One class's barriers: take one for what ran since the last, seal, complete. */
static void step_class(rill__loop_t *l, unsigned cls, int quiet)
{
    rill__barriers_t *b = &l->barriers[cls];
    unsigned o = class_origin(cls);
    unsigned ns = rill__links_outputs(&l->links), width = b->width, hb = handoff_base(l);
    /* A barrier for what ran since the last one, once the local queue is empty (frames
     * still in it would emit after the snapshot) and no frame is held back (it has not
     * run: what it emits comes later). */
    if (rill__dispatch_local_bytes(&l->dispatch) == 0 &&
        !rill__dispatch_holds_frames(&l->dispatch) && class_unnoted(l, cls)) {
        memset(l->fig_a, 0, width * sizeof *l->fig_a);
        if (ns)
            rill__links_figures(&l->links, l->fig_a + l->idx * ns, l->fig_s + l->idx * ns);
        mask_peer_slots(l, l->fig_a, o);
        int sealed = 1;
        if (is_loop_class(cls)) {
            sealed = !l->chained[o]; /* what they handed on: wait for a quiet moment */
            l->chained[o] = 0;
        } else {
            for (unsigned d = 0; l->nloops > 1 && d < l->nloops; d++)
                l->fig_a[hb + d] = d == l->idx ? 0 : l->handoff.out_frames[d * RILL_ORIGINS + o];
        }
        uint64_t id = rill__barriers_take(b, l->fig_a, sealed, l->now);
        if (is_loop_class(cls)) {
            for (unsigned s = 0; s < l->nloops; s++)
                rill__ackq_note(from_loop(l, s, o), id);
        } else {
            for (unsigned i = 0; i < l->npending; i++)
                if (l->pending[i]->cls == cls)
                    rill__ackq_note(&l->pending[i]->q, id);
        }
    }
    if (quiet && rill__barriers_unsealed(b)) {
        memset(l->fig_a, 0, width * sizeof *l->fig_a);
        read_all_figures(l, l->fig_a, l->fig_s);
        mask_peer_slots(l, l->fig_a, o);
        rill__barriers_seal_all(b, l->fig_a);
    }
    if (rill__barriers_pending(b)) {
        safe_figures(l, cls);
        uint64_t wait = 0, count = 0;
        rill__barriers_complete(b, l->fig_s, l->now, &wait, &count);
        if (count) {
            RILL_STAT_ADD(l->stats.ack_barriers, count);
            RILL_STAT_ADD(l->stats.ack_wait_ns, wait);
        }
    }
}

/* Frames of other loops that became safe: published for them, and they are woken. */
static void advance_from_loops(rill__loop_t *l)
{
    if (!l->from_loop_busy)
        return;
    int busy = 0;
    for (unsigned s = 0; s < l->nloops; s++) {
        if (s == l->idx)
            continue;
        int advanced = 0;
        for (unsigned o = 0; o < RILL_ORIGINS; o++) {
            rill__ackq_t *q = from_loop(l, s, o);
            if (rill__ackq_advance(q, rill__barriers_done(&l->barriers[loop_class(o)]))) {
                atomic_store_explicit(&l->safe_from[s][o], q->safe, memory_order_release);
                advanced = 1;
            }
            busy |= rill__ackq_busy(q);
        }
        if (advanced && atomic_load_explicit(&l->w->loops[s]->ack_waiting, memory_order_acquire))
            rill__loop_wake(l->w->loops[s]);
    }
    l->from_loop_busy = busy;
}

void rill__ackin_step(rill__loop_t *l)
{
    if (!l->npending && !any_pending(l) && !l->from_loop_busy)
        return;
    rill__links_publish(&l->links);
    /* With several loops, a moment with nothing in flight anywhere in the worker seals
     * the barriers taken before it. */
    int quiet = l->nloops > 1 && atomic_load_explicit(&l->w->inflight, memory_order_acquire) == 0;
    for (unsigned k = 0; k < RILL_ACK_CLASSES; k++)
        step_class(l, k, quiet);
    advance_from_loops(l);
    if (l->nloops > 1) {
        int waiting = 0;
        for (unsigned o = 0; o < RILL_ORIGINS; o++)
            waiting |= rill__barriers_pending(&l->barriers[o]);
        if (waiting != atomic_load_explicit(&l->ack_waiting, memory_order_relaxed))
            atomic_store_explicit(&l->ack_waiting, waiting, memory_order_release);
    }
    for (unsigned i = 0; i < l->npending;) {
        rill__stream_t *s = l->pending[i];
        rill__ackq_advance(&s->q, rill__barriers_done(&l->barriers[s->cls]));
        if (s->conn >= 0)
            rill__ackin_kick(l, (unsigned)s->conn); /* also when skipped frames caught up */
        if (!rill__ackq_busy(&s->q)) {
            s->pending = 0;
            l->pending[i] = l->pending[--l->npending];
        } else {
            i++;
        }
    }
}

void rill__ackin_rerouted(rill__loop_t *l)
{
    unsigned ns = rill__links_outputs(&l->links), hb = handoff_base(l);
    if (!any_pending(l) || !ns)
        return;
    for (unsigned k = 0; k < RILL_ACK_CLASSES; k++) {
        rill__barriers_t *b = &l->barriers[k];
        if (!rill__barriers_pending(b))
            continue;
        memset(l->fig_a, 0, b->width * sizeof *l->fig_a);
        rill__links_figures(&l->links, l->fig_a + l->idx * ns, l->fig_s + l->idx * ns);
        unsigned o = class_origin(k);
        mask_peer_slots(l, l->fig_a, o);
        if (!is_loop_class(k))
            for (unsigned d = 0; l->nloops > 1 && d < l->nloops; d++)
                l->fig_a[hb + d] = d == l->idx ? 0 : l->handoff.out_frames[d * RILL_ORIGINS + o];
        /* Frames of other loops that were handed back here may have gone anywhere: those
         * barriers wait for a quiet moment again. */
        rill__barriers_widen_all(b, l->fig_a, is_loop_class(k) && l->nloops > 1);
    }
}
