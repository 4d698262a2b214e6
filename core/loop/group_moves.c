/* Managed state follows its key groups between members (docs/state.md: Handoff, Standby
 * copies).
 *
 * Each loop looks at the groups it runs whenever it adopts a view:
 *   - a group it owned and no longer owns: it sends the group's values of every managed
 *     computation to the new owner, then the group's END, and forgets them (on the
 *     standby link when the new owner held the group's standby copy, else on the depth-1
 *     link). From then on dispatch forwards the group's frames (call_managed).
 *   - a group new to it: when the old owner is gone and this loop holds the group's whole
 *     standby copy, the copy becomes the state (promote); otherwise it holds the group's
 *     managed frames back (dispatch parks them) until the END arrives, then runs them in
 *     the order they came (moves_step). A group whose state does not arrive within
 *     RILL_HANDOFF_WAIT_MS runs on without it and is counted in state_lost_groups.
 *   - a group it keeps, or one whose state just arrived: its standby (second rendezvous
 *     choice) gets a whole copy when it is new (snapshot), and every iteration the values
 *     its batches changed (rill__moves_sync), on the standby link.
 * A worker's first view has no "before": it waits for the groups it owns from their
 * second rendezvous choice (their owner while it was not a member), and tells the owner
 * of each group it would own but for that owner that it holds nothing for it (an empty
 * END), so that members that start together do not wait on each other. The first view
 * of a new ZooKeeper session (after an expiry: the others may have run this member's
 * groups meanwhile) is a first view too: the loop forgets its standby copies and the
 * values of groups that are not its own, and keeps its own groups' values only until
 * their state arrives (or their second choice says it has none).
 * While the member is fenced (cluster/fence.h) nothing runs: the groups it owns are held
 * back too, and no wait runs out. Unmanaged computations are never held back, and nothing
 * happens while none is registered. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "loop/internal.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/stat.h"

typedef struct ship_ctx {
    rill__links_t *links;
    rill__link_t *k;
    rill__loop_stats_t *standby; /* counts what goes to a standby copy (standby_bytes), or NULL */
} ship_ctx_t;

static int ship_out(void *ctx, const uint8_t *payload, uint32_t len)
{
    ship_ctx_t *s = ctx;
    int rc =
        rill__link_append(s->links, s->k, RILL_CONTROL_COMP_ID, RILL_STATE_FRAME_KEY, payload, len);
    if (rc == 0 && s->standby)
        RILL_STAT_ADD(s->standby->standby_bytes, rill__frame_size(len));
    return rc;
}

/* The low bits of the loop's current view epoch, which chunks carry (state/handoff.h). */
static unsigned view_epoch(const rill__dispatch_t *d)
{
    return d->view ? (unsigned)(d->view->epoch & 0xffffu) : 0;
}

static int drop_out(void *ctx, const uint8_t *payload, uint32_t len)
{
    (void)ctx, (void)payload, (void)len;
    return 0;
}

/* Forgets this loop's standby copy of group g. */
static void drop_copy(rill__loop_t *l, const rill__comp_t *const *all, size_t n, unsigned g)
{
    for (size_t i = 0; i < n; i++)
        if (all[i]->standby)
            rill__state_drop_group(all[i]->standby, l->idx, g);
    l->dispatch.standby_ok[g] = 0;
}

/* Sends group g's state (of every managed computation: all[0..n)) to view member `to` on
 * its link of `depth`, then its END. how: 0, the state; RILL_CHUNK_EMPTY, an empty END
 * alone; RILL_CHUNK_COPY, this loop's standby copy of the group (it never ran it), which it
 * then forgets. The caller picks the standby link when `to` held the group's standby copy:
 * the state then travels behind the copy's last changes, so the copy has all of it if `to`
 * promotes it first. */
static void ship_on(rill__loop_t *l, const rill__comp_t *const *all, size_t n, unsigned g, int to,
                    unsigned how, unsigned depth)
{
    rill__dispatch_t *d = &l->dispatch;
    rill__link_t *k = rill__links_peer(&l->links, to, depth);
    ship_ctx_t sc = {&l->links, k, NULL};
    uint32_t max = d->max_payload < RILL_CHUNK_MAX ? d->max_payload : RILL_CHUNK_MAX;
    int failed = !k, empty = how == RILL_CHUNK_EMPTY;
    for (size_t i = 0; i < n && !empty; i++) {
        if (!all[i]->state || !k)
            continue;
        long rc = how == RILL_CHUNK_COPY
                      ? rill__state_copy(all[i]->standby, l->idx, all[i]->id, g, d->groups, max,
                                         RILL_CHUNK_COPY, view_epoch(d), ship_out, &sc)
                      : rill__state_ship(all[i]->state, l->idx, all[i]->id, g, d->groups, max,
                                         view_epoch(d), ship_out, &sc);
        if (rc < 0)
            failed = 1;
    }
    if (how == RILL_CHUNK_COPY)
        drop_copy(l, all, n, g);
    uint8_t end[RILL_CHUNK_HDR];
    rill__chunk_mark(end, RILL_CHUNK_END | how, g, d->groups, view_epoch(d));
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
                rill__state_ship(all[i]->state, l->idx, all[i]->id, g, d->groups, max, 0, drop_out,
                                 NULL);
    } else if (!empty) {
        RILL_STAT_ADD(l->stats.groups_moved, 1);
    }
}

static void ship(rill__loop_t *l, const rill__comp_t *const *all, size_t n, unsigned g, int to,
                 unsigned how)
{
    ship_on(l, all, n, g, to, how, 1);
}

static int is_self(const rill_view_t *v, unsigned g)
{
    return v && v->n && v->self >= 0 && (int)rill__view_table(v)[g] == v->self;
}

/* Sends group g's standby copy to view member `to`: BEGIN, every managed computation's
 * values, END. */
static void snapshot(rill__loop_t *l, const rill__comp_t *const *all, size_t n, unsigned g, int to)
{
    rill__dispatch_t *d = &l->dispatch;
    rill__link_t *k = to >= 0 ? rill__links_peer(&l->links, to, RILL_STANDBY_DEPTH) : NULL;
    if (!k)
        return; /* no standby: the group's state lives on its owner alone */
    ship_ctx_t sc = {&l->links, k, &l->stats};
    uint32_t max = d->max_payload < RILL_CHUNK_MAX ? d->max_payload : RILL_CHUNK_MAX;
    uint8_t mark[RILL_CHUNK_HDR];
    rill__chunk_mark(mark, RILL_CHUNK_STANDBY | RILL_CHUNK_BEGIN, g, d->groups, view_epoch(d));
    int rc = ship_out(&sc, mark, sizeof mark);
    for (size_t i = 0; i < n && rc >= 0; i++)
        if (all[i]->state)
            rc = (int)rill__state_copy(all[i]->state, l->idx, all[i]->id, g, d->groups, max,
                                       RILL_CHUNK_STANDBY, view_epoch(d), ship_out, &sc);
    rill__chunk_mark(mark, RILL_CHUNK_STANDBY | RILL_CHUNK_END, g, d->groups, view_epoch(d));
    if (rc >= 0)
        ship_out(&sc, mark, sizeof mark);
}

/* The standby of group g in v: its second rendezvous choice, -1 when v has one member. */
static int standby_of(const rill_view_t *v, unsigned g)
{
    return v->n >= 2 ? rill__view_runner_up(v, g) : -1;
}

/* Whether member i of a is member j of b, the same incarnation (-1: none in both). */
static int same_member(const rill_view_t *a, int i, const rill_view_t *b, int j)
{
    if (i < 0 || j < 0)
        return i < 0 && j < 0;
    return strcmp(a->m[i].id, b->m[j].id) == 0 && a->m[i].since == b->m[j].since;
}

/* Whether member i of a (that incarnation) is in v. */
static int has_member(const rill_view_t *v, const rill_view_t *a, int i)
{
    for (unsigned j = 0; j < v->n; j++)
        if (same_member(v, (int)j, a, i))
            return 1;
    return 0;
}

/* Whether member i of a and member j of b have one id, but b's joined again since. */
static int joined_again(const rill_view_t *a, int i, const rill_view_t *b, int j)
{
    return i >= 0 && j >= 0 && strcmp(a->m[i].id, b->m[j].id) == 0 &&
           a->m[i].since != b->m[j].since;
}

/* Whether this loop holds values of group g (of any managed computation). */
static int holds_values(rill__loop_t *l, const rill__comp_t *const *all, size_t n, unsigned g)
{
    for (size_t i = 0; i < n; i++) {
        const rill__state_loop_t *sl = all[i]->state ? &all[i]->state->loops[l->idx] : NULL;
        if (sl && g < sl->groups && sl->tables[g].used)
            return 1;
    }
    return 0;
}

/* A group new to this loop whose owner is gone (left or died): its standby copy here
 * becomes its state, for every managed computation. */
static void promote(rill__loop_t *l, const rill__comp_t *const *all, size_t n, unsigned g)
{
    rill__dispatch_t *d = &l->dispatch;
    for (size_t i = 0; i < n; i++)
        if (all[i]->state)
            rill__state_take_group(all[i]->state, all[i]->standby, l->idx, g, d->groups);
    d->standby_ok[g] = 0;
    d->promoted[g] = 1;
    RILL_STAT_ADD(l->stats.groups_promoted, 1);
}

/* Joining again with a new session: what this loop kept of group g may be older than what
 * the group's owners since then made of it. */
static void forget_session(rill__loop_t *l, const rill__comp_t *const *all, size_t n, unsigned g,
                           int mine)
{
    rill__dispatch_t *d = &l->dispatch;
    drop_copy(l, all, n, g);
    d->arrived[g] = 0;
    if (d->park[g])
        d->park[g]->fence = 0; /* now it waits for the group's state */
    d->stale[g] = (uint8_t)(mine && holds_values(l, all, n, g));
    for (size_t i = 0; i < n && !mine; i++)
        if (all[i]->state)
            rill__state_drop_group(all[i]->state, l->idx, g);
}

void rill__moves_fence(rill__loop_t *l, int fenced, uint64_t now)
{
    rill__dispatch_t *d = &l->dispatch;
    if (fenced == d->fenced)
        return;
    d->fenced = fenced;
    if (fenced) {
        d->fenced_since = now;
        return;
    }
    /* Lifted: the time fenced does not count against a wait for state, and what was held
     * back only for the fence runs at the next step. */
    uint64_t held = now > d->fenced_since ? now - d->fenced_since : 0;
    for (unsigned g = 0; g < d->park_groups && d->parked_groups; g++) {
        rill__park_t *p = d->park[g];
        if (!p)
            continue;
        p->since_ns += held;
        if (p->fence)
            rill__dispatch_park_ready(d, g, 0);
    }
}

/* A fenced member stops: it cannot know who owns the groups it held back, so their frames
 * are dropped, counted in peer_dropped. */
static void drop_fenced(rill__loop_t *l)
{
    rill__dispatch_t *d = &l->dispatch;
    uint64_t frames = 0;
    for (unsigned g = 0; g < d->park_groups && d->parked_groups; g++) {
        rill__park_t *p = d->park[g];
        if (!p)
            continue;
        frames += p->frames;
        d->park[g] = NULL;
        d->parked_groups--;
        d->ready_groups -= p->ready;
        d->held_frames -= p->frames;
        d->park_bytes -= p->buf.len;
        rill__buf_free(&p->buf);
        free(p);
    }
    if (frames) {
        RILL_STAT_ADD(l->stats.peer_dropped, frames);
        rill__log("loop %u: stopped while fenced: %" PRIu64 " frames of managed key groups held "
                  "back are dropped (counted in peer_dropped)",
                  l->idx, frames);
    }
}

void rill__moves_adopt(rill__loop_t *l, const rill_view_t *v, const uint8_t *refused)
{
    rill__dispatch_t *d = &l->dispatch;
    size_t n;
    const rill__comp_t *const *all = rill__registry_list(l->w->reg, &n);
    int managed = 0;
    for (size_t i = 0; i < n && !managed; i++)
        managed = all[i]->state != NULL;
    const rill_view_t *prev = l->moves_prev;
    /* Back with a new session after an expiry: a member that joins again. */
    int rejoined = prev && prev->session != v->session && d->was_member && v->self >= 0;
    if (prev && (prev->groups != v->groups || rejoined))
        prev = NULL; /* a first view again; or the agreed number replaced the configured
                      * one: nothing to compare */
    if (v->n && v->self >= 0)
        d->was_member = 1;
    if (managed && v->n && v->groups == d->groups && rill__dispatch_park_init(d) == 0) {
        /* Keep a log of the keys batches change when there is a standby to tell. */
        for (size_t i = 0; i < n; i++)
            if (all[i]->state)
                rill__state_track(all[i]->state, l->idx, v->n >= 2 && v->self >= 0);
        /* Which members of the previous view are still here. */
        uint8_t stays[RILL_MAX_MEMBERS] = {0};
        for (unsigned i = 0; prev && i < prev->n; i++)
            stays[i] = (uint8_t)has_member(v, prev, (int)i);
        const uint8_t *owner = rill__view_table(v);
        uint64_t owned = 0, now = l->now, crashed_groups = 0;
        for (unsigned g = 0; g < v->groups; g++) {
            if (l->nloops > 1 && rill__group_loop(g, l->nloops) != l->idx)
                continue;
            int mine = is_self(v, g);
            int sb = mine ? standby_of(v, g) : -1;
            owned += (uint64_t)mine;
            d->promoted[g] = 0;
            if (rejoined)
                forget_session(l, all, n, g, mine);
            if (!mine && standby_of(v, g) != v->self)
                drop_copy(l, all, n, g); /* not its standby (any more) */
            if (!mine && d->arrived[g] && (int16_t)((uint16_t)v->epoch - d->arrived_epoch[g]) >= 0)
                d->arrived[g] = 0; /* state sent for a view this one has replaced */
            if (!prev) {
                int second = standby_of(v, g);
                if (mine && v->n >= 2 && !d->arrived[g]) {
                    rill__dispatch_park(d, g, now); /* (it may hold frames already) */
                } else {
                    if (d->park[g]) /* not its own, its state came, or nobody to wait for */
                        rill__dispatch_park_ready(d, g, 0);
                    if (mine)
                        snapshot(l, all, n, g, sb);
                }
                if (!mine && v->self >= 0 && second == v->self)
                    ship(l, all, n, g, owner[g], RILL_CHUNK_EMPTY); /* "nothing here for it" */
                d->arrived[g] = 0;
                continue;
            }
            int was = is_self(prev, g);
            int prev_owner = prev->n ? rill__view_table(prev)[g] : -1;
            if (was && !mine) {
                d->arrived[g] = 0;
                int psb = standby_of(prev, g);
                int to_standby = psb >= 0 && strcmp(prev->m[psb].id, v->m[owner[g]].id) == 0;
                /* Still waiting to know whether its old owner crashed: it never ran the
                 * group, and sends the copy it holds (the old owner, back again, keeps
                 * what it ran instead). */
                rill__park_t *p = d->park[g];
                unsigned how = p && p->standby && !p->ready ? RILL_CHUNK_COPY : 0;
                ship_on(l, all, n, g, owner[g], how, to_standby ? RILL_STANDBY_DEPTH : 1);
                /* Moved on again before its state came: what it held back follows it, at
                 * the next step (forwarded, behind what was just sent). */
                if (d->park[g])
                    rill__dispatch_park_ready(d, g, 0);
            } else if (!was && mine) {
                int gone = prev_owner >= 0 && !stays[prev_owner];
                if (d->arrived[g]) {
                    if (d->park[g])
                        rill__dispatch_park_ready(d, g, 0);
                    snapshot(l, all, n, g, sb);
                    drop_copy(l, all, n, g);
                } else if (gone && d->standby_ok[g]) {
                    /* A leaving owner's state may still come (it has all of it); if not
                     * within RILL_STANDBY_WAIT_MS, the owner crashed and the copy takes
                     * over (moves_step). When its address refuses connections already,
                     * it crashed: nothing more comes, and the copy takes over now. */
                    if (rill__dispatch_park(d, g, now) == 0) {
                        d->park[g]->standby = 1;
                        if (refused[prev_owner] && !d->fenced) {
                            promote(l, all, n, g);
                            rill__dispatch_park_ready(d, g, 0);
                            crashed_groups++;
                        }
                    }
                } else {
                    rill__dispatch_park(d, g, now); /* its snapshot follows its state */
                    drop_copy(l, all, n, g);
                }
                d->arrived[g] = 0;
            } else if (was && mine) {
                /* Kept: a new standby (or one that joined again, without its copies) gets
                 * a whole copy. */
                int psb = standby_of(prev, g);
                if (sb >= 0 && !same_member(v, sb, prev, psb) && !d->park[g])
                    snapshot(l, all, n, g, sb);
            } else if (joined_again(prev, prev_owner, v, owner[g])) {
                /* Its owner joined again (a new session) before this loop saw it gone: it
                 * waits for the group from its second choice, which never ran it. The
                 * copy, if this loop is that choice and holds one, else "nothing here". */
                if (d->park[g])
                    rill__dispatch_park_ready(d, g, 0);
                if (v->self >= 0 && standby_of(v, g) == v->self)
                    ship(l, all, n, g, owner[g],
                         d->standby_ok[g] ? RILL_CHUNK_COPY : RILL_CHUNK_EMPTY);
            } else {
                /* Frames held back at the last hop while views differed: on to the owner
                 * this view names. */
                if (d->park[g])
                    rill__dispatch_park_ready(d, g, 0);
                /* Leaving with values of a group it never owned (its state came before a
                 * view that would have made it the owner): they go to the owner. */
                if (v->self < 0 && holds_values(l, all, n, g))
                    ship(l, all, n, g, owner[g], 0);
            }
        }
        RILL_STAT_SET(l->stats.groups_owned, owned);
        if (crashed_groups)
            rill__log("loop %u: %" PRIu64 " key groups of members whose address refuses "
                      "connections (crashed) run from their standby copies here at once",
                      l->idx, crashed_groups);
    }
    size_t bytes = rill__view_bytes(v);
    rill_view_t *copy = realloc(l->moves_prev, bytes);
    if (copy) {
        memcpy(copy, v, bytes);
        l->moves_prev = copy;
    }
}

static int by_group_key(const void *a, const void *b)
{
    const uint64_t *x = a, *y = b;
    if (x[0] != y[0])
        return x[0] < y[0] ? -1 : 1;
    return x[1] < y[1] ? -1 : x[1] > y[1];
}

void rill__moves_sync(rill__loop_t *l)
{
    rill__dispatch_t *d = &l->dispatch;
    const rill_view_t *v = d->view;
    if (!v || v->n < 2 || v->self < 0 || v->groups != d->groups)
        return;
    size_t n;
    const rill__comp_t *const *all = rill__registry_list(l->w->reg, &n);
    uint32_t max = d->max_payload < RILL_CHUNK_MAX ? d->max_payload : RILL_CHUNK_MAX;
    for (size_t i = 0; i < n; i++) {
        rill__state_t *s = all[i]->state;
        size_t nd;
        const uint64_t *keys = s ? rill__state_dirty(s, l->idx, &nd) : NULL;
        if (!keys || !nd)
            continue;
        /* (group, key) pairs, sorted: one run per group, each key once; then the keys of
         * one standby member (run). The loop keeps the memory for its next iterations. */
        rill__buf_t *b = &l->moves_sync;
        b->len = 0;
        if (rill__buf_reserve(b, nd * 3 * sizeof(uint64_t), SIZE_MAX) < 0)
            continue; /* kept for the next sync */
        uint64_t *pairs = (uint64_t *)(void *)b->data, *run = pairs + 2 * nd;
        for (size_t j = 0; j < nd; j++) {
            pairs[2 * j] = rill__key_group(keys[j], d->groups);
            pairs[2 * j + 1] = keys[j];
        }
        qsort(pairs, nd, 2 * sizeof *pairs, by_group_key);
        /* Each key once, with its group's standby (-1: none, or the group is held back);
         * then one run of changes per standby member, whatever their groups. */
        size_t m = 0;
        uint8_t seen[RILL_MAX_MEMBERS] = {0};
        int sb = -1;
        for (size_t j = 0, g = SIZE_MAX; j < nd; j++) {
            uint64_t key = pairs[2 * j + 1];
            if (m && pairs[2 * (m - 1) + 1] == key)
                continue; /* the same key again (pairs are sorted) */
            if (pairs[2 * j] != g) {
                g = (size_t)pairs[2 * j];
                sb = is_self(v, (unsigned)g) && !d->park[g] ? standby_of(v, (unsigned)g) : -1;
            }
            /* In place (m <= j): the pair becomes (standby, key). */
            pairs[2 * m] = (uint64_t)(int64_t)sb;
            pairs[2 * m + 1] = key;
            m++;
            if (sb >= 0)
                seen[sb] = 1;
        }
        for (unsigned to = 0; to < v->n; to++) {
            rill__link_t *k =
                seen[to] ? rill__links_peer(&l->links, (int)to, RILL_STANDBY_DEPTH) : NULL;
            if (!k)
                continue;
            size_t nk = 0;
            for (size_t j = 0; j < m; j++)
                if (pairs[2 * j] == to)
                    run[nk++] = pairs[2 * j + 1];
            ship_ctx_t sc = {&l->links, k, &l->stats};
            rill__state_send_keys(s, l->idx, all[i]->id, d->groups, run, nk, max, view_epoch(d),
                                  ship_out, &sc);
        }
        rill__state_dirty_clear(s, l->idx);
    }
}

void rill__moves_step(rill__loop_t *l, uint64_t now)
{
    rill__dispatch_t *d = &l->dispatch;
    const uint64_t wait_ns = (uint64_t)RILL_HANDOFF_WAIT_MS * 1000000u;
    const uint64_t standby_ns = (uint64_t)RILL_STANDBY_WAIT_MS * 1000000u;
    int stopping = l->phase != PH_RUN;
    if (d->fenced) {
        if (stopping)
            drop_fenced(l);
        return;
    }
    size_t n;
    const rill__comp_t *const *all = rill__registry_list(l->w->reg, &n);
    for (unsigned g = 0; g < d->park_groups && d->parked_groups; g++) {
        rill__park_t *p = d->park[g];
        if (!p)
            continue;
        uint64_t waited = now > p->since_ns ? now - p->since_ns : 0;
        if (!p->ready && p->standby && (stopping || waited > standby_ns)) {
            promote(l, all, n, g); /* no state came: the owner crashed */
            p->ready = 1;
            d->ready_groups++;
        } else if (!p->ready && (stopping || waited > wait_ns)) {
            p->ready = p->lost = 1;
            d->ready_groups++;
            if (!d->view || !d->view->n)
                d->preview_expired = 1;
        }
        if (!p->ready)
            continue;
        if (p->standby && !d->promoted[g])
            drop_copy(l, all, n, g); /* the leaving owner's state came: the copy goes */
        if (p->lost) {
            RILL_STAT_ADD(l->stats.state_lost_groups, 1);
            rill__log_once(&l->w->logged.state_lost,
                           "key group %u: its state did not arrive within %u ms; it runs on "
                           "without it (counted in state_lost_groups)",
                           g, RILL_HANDOFF_WAIT_MS);
        }
        if (!p->fence)
            RILL_STAT_ADD(l->stats.handoff_wait_ns, waited);
        d->stale[g] = 0; /* what it kept is the state now, if none came */
        d->park[g] = NULL;
        d->parked_groups--;
        d->ready_groups--;
        const rill_view_t *v = d->view;
        if (v && v->n >= 2 && is_self(v, g) && v->groups == d->groups) {
            /* Its state is here: its standby gets a whole copy, ahead of the changes the
             * replay makes. */
            snapshot(l, all, n, g, standby_of(v, g));
        }
        rill__dispatch_replay(d, p);
    }
}

void rill__moves_free(rill__loop_t *l)
{
    free(l->moves_prev);
    l->moves_prev = NULL;
    rill__buf_free(&l->moves_sync);
}
