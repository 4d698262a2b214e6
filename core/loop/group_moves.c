/* Managed state follows its key groups between members (docs/state.md#handoff).
 *
 * Each loop looks at the groups it runs whenever it adopts a view:
 *   - a group it owned and no longer owns: it sends the group's values of every managed
 *     computation to the new owner on the depth-1 peer link, then the group's END, and
 *     forgets them. From then on dispatch forwards the group's frames (call_managed),
 *     on the same link behind the state when they pass through this loop.
 *   - a group new to it: it holds the group's managed frames back (dispatch parks them)
 *     until the END arrives, then runs them in the order they came (moves_step). A group
 *     whose state does not arrive within RILL_HANDOFF_WAIT_MS runs on without it and is
 *     counted in state_lost_groups (its owner crashed: nothing holds a copy yet).
 * A worker's first view has no "before": it waits for the groups it owns from their
 * second rendezvous choice (their owner while it was not a member), and tells the owner
 * of each group it would own but for that owner that it holds nothing for it (an empty
 * END), so that members that start together do not wait on each other. Unmanaged
 * computations are never held back, and nothing happens while none is registered. */
#include <stdlib.h>
#include <string.h>

#include "loop/internal.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/stat.h"

typedef struct ship_ctx {
    rill__links_t *links;
    rill__link_t *k;
} ship_ctx_t;

static int ship_out(void *ctx, const uint8_t *payload, uint32_t len)
{
    ship_ctx_t *s = ctx;
    return rill__link_append(s->links, s->k, RILL_CONTROL_COMP_ID, RILL_STATE_FRAME_KEY, payload,
                             len);
}

static int drop_out(void *ctx, const uint8_t *payload, uint32_t len)
{
    (void)ctx, (void)payload, (void)len;
    return 0;
}

/* Sends group g's state (of every managed computation: all[0..n)) to view member `to`,
 * then its END; an empty END alone when `empty`. */
static void ship(rill__loop_t *l, const rill__comp_t *const *all, size_t n, unsigned g, int to,
                 int empty)
{
    rill__dispatch_t *d = &l->dispatch;
    rill__link_t *k = rill__links_peer(&l->links, to, 1);
    ship_ctx_t sc = {&l->links, k};
    uint32_t max = d->max_payload < RILL_CHUNK_MAX ? d->max_payload : RILL_CHUNK_MAX;
    int failed = !k;
    for (size_t i = 0; i < n && !empty; i++) {
        if (!all[i]->state)
            continue;
        long rc = k ? rill__state_ship(all[i]->state, l->idx, all[i]->id, g, d->groups, max,
                                       ship_out, &sc)
                    : 0;
        if (rc < 0)
            failed = 1;
    }
    uint8_t end[RILL_CHUNK_HDR];
    rill__chunk_end(end, g, d->groups);
    if (!failed && ship_out(&sc, end, sizeof end) < 0)
        failed = 1;
    if (failed) {
        RILL_STAT_ADD(l->stats.state_lost_groups, 1);
        rill__log_once(&l->w->logged.state_lost,
                       "key group %u: its state could not be sent to its new owner (no link or "
                       "no memory); it is lost (counted in state_lost_groups)",
                       g);
        /* Forget the values all the same: the new owner runs the group from now on. */
        for (size_t i = 0; i < n && !k; i++)
            if (all[i]->state)
                rill__state_ship(all[i]->state, l->idx, all[i]->id, g, d->groups, max, drop_out,
                                 NULL);
    } else if (!empty) {
        RILL_STAT_ADD(l->stats.groups_moved, 1);
    }
}

static int is_self(const rill_view_t *v, unsigned g)
{
    return v && v->n && v->self >= 0 && (int)rill__view_table(v)[g] == v->self;
}

void rill__moves_adopt(rill__loop_t *l, const rill_view_t *v)
{
    rill__dispatch_t *d = &l->dispatch;
    size_t n;
    const rill__comp_t *const *all = rill__registry_list(l->w->reg, &n);
    int managed = 0;
    for (size_t i = 0; i < n && !managed; i++)
        managed = all[i]->state != NULL;
    const rill_view_t *prev = l->moves_prev;
    if (prev && prev->groups != v->groups)
        prev = NULL; /* the agreed number replaced the configured one: nothing to compare */
    if (managed && v->n && v->groups == d->groups && rill__dispatch_park_init(d) == 0) {
        const uint8_t *owner = rill__view_table(v);
        uint64_t owned = 0, now = l->now;
        for (unsigned g = 0; g < v->groups; g++) {
            if (l->nloops > 1 && rill__group_loop(g, l->nloops) != l->idx)
                continue;
            int mine = is_self(v, g);
            owned += (uint64_t)mine;
            if (!prev) {
                int second = v->n >= 2 ? rill__view_runner_up(v, g) : -1;
                if (mine && v->n >= 2 && !d->arrived[g])
                    rill__dispatch_park(d, g, now); /* (it may hold frames already) */
                else if (d->park[g])
                    rill__dispatch_park_ready(d, g, 0); /* not its own, or nobody to wait for */
                if (!mine && v->self >= 0 && second == v->self)
                    ship(l, all, n, g, owner[g], 1); /* "nothing here for it" */
                d->arrived[g] = 0;
                continue;
            }
            int was = is_self(prev, g);
            if (was && !mine) {
                d->arrived[g] = 0;
                ship(l, all, n, g, owner[g], 0);
                /* Moved on again before its state came: what it held back follows it, at
                 * the next step (forwarded, behind what was just sent). */
                if (d->park[g])
                    rill__dispatch_park_ready(d, g, 0);
            } else if (!was && mine) {
                if (!d->arrived[g])
                    rill__dispatch_park(d, g, now);
                else if (d->park[g])
                    rill__dispatch_park_ready(d, g, 0);
                d->arrived[g] = 0;
            } else if (!mine && d->park[g]) {
                /* Frames held back at the last hop while views differed: on to the owner
                 * this view names. */
                rill__dispatch_park_ready(d, g, 0);
            }
        }
        RILL_STAT_SET(l->stats.groups_owned, owned);
    }
    size_t bytes = rill__view_bytes(v);
    rill_view_t *copy = realloc(l->moves_prev, bytes);
    if (copy) {
        memcpy(copy, v, bytes);
        l->moves_prev = copy;
    }
}

void rill__moves_step(rill__loop_t *l, uint64_t now)
{
    rill__dispatch_t *d = &l->dispatch;
    const uint64_t wait_ns = (uint64_t)RILL_HANDOFF_WAIT_MS * 1000000u;
    int stopping = l->phase != PH_RUN;
    for (unsigned g = 0; g < d->park_groups && d->parked_groups; g++) {
        rill__park_t *p = d->park[g];
        if (!p)
            continue;
        uint64_t waited = now > p->since_ns ? now - p->since_ns : 0;
        if (!p->ready && (stopping || waited > wait_ns)) {
            p->ready = p->lost = 1;
            d->ready_groups++;
            if (!d->view || !d->view->n)
                d->preview_expired = 1;
        }
        if (!p->ready)
            continue;
        if (p->lost) {
            RILL_STAT_ADD(l->stats.state_lost_groups, 1);
            rill__log_once(&l->w->logged.state_lost,
                           "key group %u: its state did not arrive within %u ms; it runs on "
                           "without it (counted in state_lost_groups)",
                           g, RILL_HANDOFF_WAIT_MS);
        }
        RILL_STAT_ADD(l->stats.handoff_wait_ns, waited);
        d->park[g] = NULL;
        d->parked_groups--;
        d->ready_groups--;
        rill__dispatch_replay(d, p);
    }
}

void rill__moves_free(rill__loop_t *l)
{
    free(l->moves_prev);
    l->moves_prev = NULL;
}
