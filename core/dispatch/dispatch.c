/* Routing, lookup and computation calls: the per-message path between the decoder and
 * the computations. */
#include "dispatch/dispatch.h"
#include "dispatch/internal.h"

#include <stdlib.h>
#include <string.h>

#include "util/clock.h"
#include "util/stat.h"

#define LOCAL_ROUNDS 16

void rill__dispatch_init(rill__dispatch_t *d, unsigned idx, unsigned nloops, unsigned groups,
                         int clustered, int dead_letter, uint32_t max_frame, rill__registry_t *reg,
                         rill__links_t *links, rill__handoff_t *handoff, rill__loop_stats_t *stats,
                         rill__log_flags_t *logged, atomic_llong *inflight)
{
    *d = (rill__dispatch_t){
        .idx = idx,
        .nloops = nloops,
        .groups = groups,
        .clustered = clustered,
        .dead_letter = dead_letter,
        .max_payload = max_frame - RILL_FRAME_MIN_LEN,
        .reg = reg,
        .links = links,
        .handoff = handoff,
        .stats = stats,
        .logged = logged,
        .inflight = inflight,
        .local_origin = RILL_ORIGINS,
    };
    rill__decoder_init(&d->local_dec, RILL_FRAMING_RILL, UINT32_MAX, 0, 0, 0);
}

void rill__dispatch_free(rill__dispatch_t *d)
{
    rill__decoder_free(&d->local_dec);
    rill__buf_free(&d->local);
    rill__buf_free(&d->local_run);
    rill__buf_free(&d->ahead);
    rill__buf_free(&d->split);
    for (unsigned g = 0; d->park && g < d->park_groups; g++)
        if (d->park[g]) {
            rill__buf_free(&d->park[g]->buf);
            free(d->park[g]);
        }
    free(d->park);
    free(d->arrived_epoch); /* arrived, standby_ok, promoted and stale with it */
}

/* rill_emit_sink counts in a plain field; stats see it once per callback. */
static inline void publish_emitted(rill__dispatch_t *d)
{
    if (d->emitted) {
        RILL_STAT_ADD(d->stats->msgs_out, d->emitted);
        d->emitted = 0;
    }
}

void rill__dispatch_unknown(rill__dispatch_t *d, const rill_msg_t *v, size_t n)
{
    RILL_STAT_ADD(d->stats->unknown_comp, n);
    rill__log_once(&d->logged->unknown,
                   "frames for unregistered computation %u (further ones only counted in "
                   "unknown_comp)",
                   v[0].comp_id);
    if (d->dead_letter < 0 || v[0].comp_id == RILL_CONTROL_COMP_ID)
        return; /* a sink would take the reserved id for a control frame */
    struct rill_emitter em = {d, NULL};
    rill_emit_sink_msgs(&em, d->dead_letter, v, n);
    publish_emitted(d);
}

void rill__dispatch_call(rill__dispatch_t *d, const rill__comp_t *c, const rill_msg_t *v, size_t n)
{
    struct rill_emitter em = {d, c};
    uint64_t t0 = rill__now_ns(); /* per batch, never per message */
    int rc, no_state = 0;
    if (!c->state)
        rc = c->ops.batch(c->ctx, d->idx, v, n, &em);
    else if ((rc = rill__state_prepare(c->state, d->idx, d->groups, v, n, d->values)) == 0)
        rc = c->state_batch(c->ctx, d->idx, v, d->values, n, &em);
    else
        no_state = 1; /* not called: its values could not be made */
    uint64_t ns = rill__now_ns() - t0;
    publish_emitted(d);
    uint64_t errors = 0;
    if (rc < 0) {
        errors = n;
        RILL_STAT_ADD(d->stats->comp_errors, n);
        if (no_state)
            rill__log_once(&d->logged->comp_err,
                           "computation %u (%s): no memory for its state; batches it could not "
                           "be given are counted in comp_errors",
                           c->id, c->name);
        else
            rill__log_once(&d->logged->comp_err,
                           "computation %u (%s) returned %d; its failures are counted in "
                           "comp_errors",
                           c->id, c->name, rc);
    }
    rill__comp_count(c, d->idx, n, errors, ns);
}

/* Queues m on the link to member `member`. Returns 0 or the reason it was dropped
 * (counted in peer_dropped). */
int rill__dispatch_forward(rill__dispatch_t *d, int member, const rill_msg_t *m)
{
    rill__link_t *k = rill__links_peer(d->links, member, rill__origin_link_depth(d->origin));
    if (!k) { /* no link slot for that member */
        RILL_STAT_ADD(d->stats->peer_dropped, 1);
        return RILL_EFULL;
    }
    return rill__link_append(d->links, k, m->comp_id, m->key, m->data, m->len);
}

/* Control frames among n views: origin markers in a handoff ring or the local queue
 * (route LOCAL; the last one sets the origin of what follows), chunks of managed state
 * from a member or handed over by the loop that read them. A control comp id from a
 * source is an unknown computation. Returns the chunks among them (frames, unlike
 * markers). */
static size_t markers(rill__dispatch_t *d, const rill_msg_t *v, size_t n, int route)
{
    if (route == RILL_ROUTE_SOURCE && !d->rerouting) {
        rill__dispatch_unknown(d, v, n);
        return 0;
    }
    size_t chunks = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i].key == RILL_STATE_FRAME_KEY && route == RILL_ROUTE_SOURCE) {
            rill__dispatch_rechunk(d, &v[i]);
        } else if (v[i].key == RILL_STATE_FRAME_KEY) {
            rill__dispatch_chunk(d, &v[i]);
            chunks++;
            if (route == RILL_ROUTE_LOCAL)
                d->ran_local[d->origin]++;
        } else if (route == RILL_ROUTE_LOCAL) {
            d->origin = v[i].key < RILL_ORIGINS ? (unsigned)v[i].key : RILL_ORIGIN_LAST;
        } else {
            rill__dispatch_unknown(d, &v[i], 1);
        }
    }
    return chunks;
}

void rill__dispatch(rill__dispatch_t *d, const rill_msg_t *v, size_t n, int route, unsigned origin)
{
    if (route != RILL_ROUTE_LOCAL)
        d->origin = origin < RILL_ORIGINS ? origin : RILL_ORIGIN_LAST;
    const rill_view_t *view = route != RILL_ROUTE_LOCAL ? d->view : NULL;
    if (view && view->n == 0)
        view = NULL;
    if (!view && route != RILL_ROUTE_LOCAL && d->clustered)
        RILL_STAT_ADD(d->stats->misrouted, n); /* no view yet: applied without an owner */
    if (view || (route != RILL_ROUTE_LOCAL && d->nloops > 1)) {
        /* Keep this loop's frames (in order); stage the others for their owners: another
         * member of the cluster, or another loop of this worker. */
        size_t m = 0;
        unsigned me = d->idx;
        uint64_t handed = 0, forwarded = 0, misrouted = 0;
        for (size_t i = 0; i < n; i++) {
            if (view) {
                int owner = rill__view_owner(view, v[i].key);
                if (owner != view->self && v[i].comp_id != RILL_CONTROL_COMP_ID) {
                    const rill__comp_t *c = rill__dispatch_lookup(d, v[i].comp_id);
                    if (c && c->state) {
                        /* Managed: the group's loop forwards it, behind the group's state
                         * and in order with the group's other frames (call_managed). */
                    } else if (route == RILL_ROUTE_SOURCE) {
                        forwarded += rill__dispatch_forward(d, owner, &v[i]) == 0;
                        continue;
                    } else {
                        /* Forwarded by a member whose view differs: process it here,
                         * never send it back (no ping-pong while views converge). */
                        misrouted++;
                    }
                }
            }
            unsigned dst = rill__dispatch_key_loop(d, v[i].key);
            if (v[i].comp_id == RILL_CONTROL_COMP_ID && v[i].key == RILL_STATE_FRAME_KEY &&
                route == RILL_ROUTE_PEER && v[i].len >= RILL_CHUNK_HDR && d->nloops > 1) {
                if (rill__chunk_flags(v[i].data) & RILL_CHUNK_MULTI) {
                    /* Standby changes of many groups: each loop gets those of its own. */
                    handed += rill__dispatch_split_changes(d, &v[i]);
                    continue;
                }
                /* A chunk of a group's state: to the loop that runs the group. */
                uint32_t g = rill__chunk_group(v[i].data);
                dst = g < d->groups ? rill__group_loop(g, d->nloops) : me;
                if (dst != me) {
                    handed += rill__handoff_stage(d->handoff, dst, d->origin, v[i].comp_id,
                                                  v[i].key, v[i].data, v[i].len) == 0;
                    continue;
                }
            }
            if (dst != me) { /* a stateless computation runs where its frame was read */
                const rill__comp_t *c = rill__dispatch_lookup(d, v[i].comp_id);
                if (c && (c->flags & RILL_COMP_STATELESS))
                    dst = me;
            }
            /* A control comp id stays here, an unknown computation: another loop would
             * read it as an origin marker, a member as a control frame. */
            if (dst == me || v[i].comp_id == RILL_CONTROL_COMP_ID)
                d->mine[m++] = v[i];
            else
                handed += rill__handoff_stage(d->handoff, dst, d->origin, v[i].comp_id, v[i].key,
                                              v[i].data, v[i].len) == 0;
        }
        if (handed)
            RILL_STAT_ADD(d->stats->handoff_msgs, handed);
        if (forwarded)
            RILL_STAT_ADD(d->stats->forwarded, forwarded);
        if (misrouted)
            RILL_STAT_ADD(d->stats->misrouted, misrouted);
        v = d->mine;
        n = m;
    }
    if (n == 0)
        return;
    uint64_t batches = 0;
    size_t i = 0, nmarks = 0;
    while (i < n) {
        uint32_t id = v[i].comp_id;
        size_t j = i + 1;
        while (j < n && v[j].comp_id == id)
            j++;
        if (id == RILL_CONTROL_COMP_ID) {
            size_t chunks = markers(d, v + i, j - i, route);
            if (route == RILL_ROUTE_LOCAL)
                nmarks += j - i - chunks; /* not frames: not dispatched, not counted */
            i = j;
            continue;
        }
        if (route == RILL_ROUTE_LOCAL)
            d->ran_local[d->origin] += j - i;
        const rill__comp_t *c = rill__dispatch_lookup(d, id);
        if (c) {
            if (c->state)
                rill__dispatch_call_managed(d, c, v + i, j - i);
            else
                rill__dispatch_call(d, c, v + i, j - i);
            batches++;
        } else {
            rill__dispatch_unknown(d, v + i, j - i);
        }
        i = j;
    }
    RILL_STAT_ADD(d->stats->msgs_dispatched, n - nmarks);
    RILL_STAT_ADD(d->stats->batches, batches);
}

void rill__dispatch_flush(rill__dispatch_t *d)
{
    /* What flush emits comes of a computation's state, not of frames being acknowledged:
     * the origin that never waits on members. */
    d->origin = RILL_ORIGIN_LAST;
    size_t count;
    const rill__comp_t *const *all = rill__registry_list(d->reg, &count);
    for (size_t i = 0; i < count; i++) {
        if (all[i]->ops.flush) {
            struct rill_emitter em = {d, all[i]};
            all[i]->ops.flush(all[i]->ctx, d->idx, &em);
            publish_emitted(d);
        }
    }
}

/* Decodes and dispatches every frame of buf[0..len) (rill's own encoding). */
static void dispatch_encoded(rill__dispatch_t *d, rill__decoder_t *dec, const uint8_t *buf,
                             size_t len, int route, unsigned origin, uint64_t *frames)
{
    size_t pos = 0;
    while (pos < len) {
        int n = rill__decode(dec, buf, len, &pos, d->scratch, RILL_BATCH_MAX);
        if (n < 0)
            abort(); /* rill's own encoding */
        if (frames)
            *frames += (uint64_t)n;
        rill__dispatch(d, d->scratch, (size_t)n, route, origin);
    }
}

int rill__dispatch_run_local(rill__dispatch_t *d)
{
    for (int round = 0; round < LOCAL_ROUNDS && d->local.len; round++) {
        /* Swap generations: emits made while this one runs go to the fresh buffer. */
        rill__buf_t t = d->local_run;
        d->local_run = d->local;
        d->local = t;
        d->local.len = 0;
        d->local_origin = RILL_ORIGINS; /* the next generation begins with a marker */
        size_t len = d->local_run.len;
        dispatch_encoded(d, &d->local_dec, d->local_run.data, len, RILL_ROUTE_LOCAL, 0, NULL);
        d->local_run.len = 0;
        rill__links_publish(d->links); /* before the release: see rill__links_publish */
        atomic_fetch_sub_explicit(d->inflight, (long long)len, memory_order_release);
    }
    return d->local.len != 0;
}

void rill__dispatch_reroute(rill__dispatch_t *d, rill__buf_t *b, unsigned origin)
{
    if (b->len) {
        rill__decoder_t dec;
        rill__decoder_init(&dec, RILL_FRAMING_RILL, UINT32_MAX, 0, 0, 0);
        uint64_t frames = 0;
        d->rerouting = 1;
        dispatch_encoded(d, &dec, b->data, b->len, RILL_ROUTE_SOURCE, origin, &frames);
        d->rerouting = 0;
        RILL_STAT_ADD(d->stats->rerouted, frames);
        rill__decoder_free(&dec);
    }
    b->len = 0;
    b->frames = 0;
}
