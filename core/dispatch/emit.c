/* The emit calls of rill.h: what a computation's callback sends on. Sinks and peer
 * links are appended through link/, other loops through handoff/, this loop's own
 * computations through the local queue. */
#include "dispatch/dispatch.h"

#include "util/stat.h"

int rill_emit_sink(rill_emitter_t *em, int sink, uint32_t comp_id, uint64_t key, const void *data,
                   size_t len)
{
    if (!em || !em->d || (len && !data))
        return RILL_EINVAL;
    rill__dispatch_t *d = em->d;
    if ((unsigned)sink >= d->links->nsinks || len > d->max_payload ||
        comp_id == RILL_CONTROL_COMP_ID)
        return RILL_EINVAL;
    int rc = rill__link_append(d->links, &d->links->sinks[sink], comp_id, key, data, (uint32_t)len);
    if (rc == 0)
        d->emitted++;
    return rc;
}

size_t rill_emit_sink_room(const rill_emitter_t *em, int sink)
{
    if (!em || !em->d || (unsigned)sink >= em->d->links->nsinks)
        return 0;
    return rill__link_room(em->d->links, &em->d->links->sinks[sink]);
}

int rill_emit_sink_msgs(rill_emitter_t *em, int sink, const rill_msg_t *msgs, size_t n)
{
    if (!em || !em->d || (n && !msgs))
        return RILL_EINVAL;
    rill__dispatch_t *d = em->d;
    if ((unsigned)sink >= d->links->nsinks)
        return RILL_EINVAL;
    uint32_t max = d->max_payload;
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        if (msgs[i].len > max || (msgs[i].len && !msgs[i].data) ||
            msgs[i].comp_id == RILL_CONTROL_COMP_ID)
            return RILL_EINVAL;
        bytes += rill__frame_size(msgs[i].len);
    }
    size_t queued = rill__link_append_msgs(d->links, &d->links->sinks[sink], msgs, n, bytes);
    d->emitted += queued;
    return (int)queued;
}

int rill_emit_comp(rill_emitter_t *em, uint32_t comp_id, uint64_t key, const void *data, size_t len)
{
    if (!em || !em->d || (len && !data))
        return RILL_EINVAL;
    rill__dispatch_t *d = em->d;
    if (len > d->max_payload || comp_id == RILL_CONTROL_COMP_ID)
        return RILL_EINVAL;
    const rill_view_t *view = d->view;
    if (view && view->n) {
        int owner = rill__view_owner(view, key);
        if (owner != view->self) {
            rill_msg_t m = {data, (uint32_t)len, comp_id, key};
            int rc = rill__dispatch_forward(d, owner, &m);
            if (rc == 0)
                RILL_STAT_ADD(d->stats->forwarded, 1);
            return rc;
        }
    } else if (d->clustered) {
        RILL_STAT_ADD(d->stats->misrouted, 1); /* no view yet: applied without an owner */
    }
    unsigned dst = rill__dispatch_key_loop(d, key);
    if (dst != d->idx) { /* a stateless computation runs on the loop that emitted to it */
        const rill__comp_t *c = rill__dispatch_lookup(d, comp_id);
        if (c && (c->flags & RILL_COMP_STATELESS))
            dst = d->idx;
    }
    if (dst != d->idx) {
        int rc = rill__handoff_stage(d->handoff, dst, d->origin, comp_id, key, data, (uint32_t)len);
        if (rc == 0)
            RILL_STAT_ADD(d->stats->handoff_msgs, 1);
        return rc;
    }
    long fs =
        rill__origin_put(&d->local, &d->local_origin, d->origin, comp_id, key, data, (uint32_t)len);
    if (fs < 0) {
        RILL_STAT_ADD(d->stats->handoff_dropped, 1);
        return RILL_ENOMEM;
    }
    atomic_fetch_add_explicit(d->inflight, fs, memory_order_relaxed);
    return 0;
}
