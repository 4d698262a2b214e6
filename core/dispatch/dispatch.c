/* Dispatch and emit: the per-message path between the decoder and the computations. */
#include "dispatch/dispatch.h"

#include <stdatomic.h>
#include <string.h>

#include "util/log.h"
#include "util/stat.h"

/* Registry lookup with a one-entry cache: a run of frames for one computation costs one
 * lookup, and so does a stream that keeps addressing the same id. Valid within the
 * loop's current read section only (the loop clears it when a section begins). */
static inline const rill__comp_t *lookup(rill__loop_t *l, uint32_t id)
{
    if (l->cache_comp && l->cache_id == id)
        return l->cache_comp;
    const rill__comp_t *c = rill__registry_lookup(l->w->reg, id);
    l->cache_id = id;
    l->cache_comp = c;
    return c;
}

void rill__stage_frame(rill__loop_t *l, unsigned dst, uint32_t comp_id, uint64_t key,
                       const void *data, uint32_t len)
{
    rill__buf_t *b = &l->stage[dst];
    size_t fs = rill__frame_size(len);
    if (rill__buf_reserve(b, fs, SIZE_MAX) < 0) {
        RILL_STAT_ADD(l->stats.sink_dropped, 1); /* out of memory: counted, never silent */
        return;
    }
    rill__frame_encode(b->data + b->len, comp_id, key, data, len);
    b->len += fs;
    atomic_fetch_add_explicit(&l->w->inflight, (long long)fs, memory_order_relaxed);
}

/* rill_emit_sink counts in a plain field; stats see it once per callback. */
static inline void publish_emitted(rill__loop_t *l)
{
    if (l->emitted) {
        RILL_STAT_ADD(l->stats.msgs_out, l->emitted);
        l->emitted = 0;
    }
}

static void unknown(rill__loop_t *l, const rill_msg_t *v, size_t n)
{
    rill_worker_t *w = l->w;
    RILL_STAT_ADD(l->stats.unknown_comp, n);
    rill__log_once(&w->logged.unknown,
                   "frames for unregistered computation %u (further ones only counted in "
                   "unknown_comp)",
                   v[0].comp_id);
    int dl = w->cfg.dead_letter_sink;
    if (dl < 0)
        return;
    struct rill_emitter em = {l};
    rill_emit_sink_msgs(&em, dl, v, n);
    publish_emitted(l);
}

static void call(rill__loop_t *l, const rill__comp_t *c, const rill_msg_t *v, size_t n)
{
    struct rill_emitter em = {l};
    int rc = c->ops.batch(c->ctx, l->idx, v, n, &em);
    publish_emitted(l);
    uint64_t errors = 0;
    if (rc < 0) {
        errors = n;
        RILL_STAT_ADD(l->stats.comp_errors, n);
        rill__log_once(&l->w->logged.comp_err,
                       "computation %u (%s) returned %d; its failures are counted in comp_errors",
                       c->id, c->name, rc);
    }
    rill__comp_count(c, l->idx, n, errors);
}

void rill__dispatch(rill__loop_t *l, const rill_msg_t *v, size_t n, int route)
{
    const rill_view_t *view = route ? l->view : NULL;
    if (view && view->n == 0)
        view = NULL;
    if (view || (route && l->nloops > 1)) {
        /* Keep this loop's frames (in order); stage the others for their owners: another
         * member of the cluster, or another loop of this worker. */
        size_t m = 0;
        unsigned me = l->idx;
        uint64_t handed = 0, forwarded = 0, misrouted = 0;
        for (size_t i = 0; i < n; i++) {
            if (view) {
                int owner = rill__view_owner(view, v[i].key);
                if (owner != view->self) {
                    if (route == 1) {
                        rill__peer_forward(l, owner, &v[i]);
                        forwarded++;
                        continue;
                    }
                    /* Forwarded by a member whose view differs: process it here, never
                     * send it back (no ping-pong while views converge). */
                    misrouted++;
                }
            }
            unsigned d = l->nloops > 1 ? rill__key_loop(v[i].key, l->nloops) : me;
            if (d == me) {
                l->mine[m++] = v[i];
            } else {
                rill__stage_frame(l, d, v[i].comp_id, v[i].key, v[i].data, v[i].len);
                handed++;
            }
        }
        if (handed)
            RILL_STAT_ADD(l->stats.handoff_msgs, handed);
        if (forwarded)
            RILL_STAT_ADD(l->stats.forwarded, forwarded);
        if (misrouted)
            RILL_STAT_ADD(l->stats.misrouted, misrouted);
        v = l->mine;
        n = m;
    }
    if (n == 0)
        return;
    uint64_t batches = 0;
    size_t i = 0;
    while (i < n) {
        uint32_t id = v[i].comp_id;
        size_t j = i + 1;
        while (j < n && v[j].comp_id == id)
            j++;
        const rill__comp_t *c = lookup(l, id);
        if (c) {
            call(l, c, v + i, j - i);
            batches++;
        } else {
            unknown(l, v + i, j - i);
        }
        i = j;
    }
    RILL_STAT_ADD(l->stats.msgs_dispatched, n);
    RILL_STAT_ADD(l->stats.batches, batches);
}

void rill__dispatch_flush(rill__loop_t *l)
{
    size_t count;
    const rill__comp_t *const *all = rill__registry_list(l->w->reg, &count);
    for (size_t i = 0; i < count; i++) {
        if (all[i]->ops.flush) {
            struct rill_emitter em = {l};
            all[i]->ops.flush(all[i]->ctx, l->idx, &em);
            publish_emitted(l);
        }
    }
}

int rill_emit_sink(rill_emitter_t *em, int sink, uint32_t comp_id, uint64_t key,
                   const void *data, size_t len)
{
    if (!em || !em->loop || (len && !data))
        return RILL_EINVAL;
    rill__loop_t *l = em->loop;
    if ((unsigned)sink >= l->nsinks || len > l->w->cfg.max_frame)
        return RILL_EINVAL;
    rill__sink_t *s = &l->sinks[sink];
    size_t fs = rill__frame_size(len);
    /* Fast path: room in the buffer (the usual case once it has grown). */
    if (__builtin_expect(s->pend.len + fs > s->pend.cap, 0) &&
        rill__buf_reserve(&s->pend, fs, l->w->cfg.sink_buffer) < 0) {
        RILL_STAT_ADD(l->stats.sink_dropped, 1);
        return RILL_EFULL;
    }
    rill__frame_encode(s->pend.data + s->pend.len, comp_id, key, data, (uint32_t)len);
    s->pend.len += fs;
    s->pend.frames++;
    l->emitted++;
    return 0;
}

int rill_emit_sink_msgs(rill_emitter_t *em, int sink, const rill_msg_t *msgs, size_t n)
{
    if (!em || !em->loop || (n && !msgs))
        return RILL_EINVAL;
    rill__loop_t *l = em->loop;
    if ((unsigned)sink >= l->nsinks)
        return RILL_EINVAL;
    uint32_t max = l->w->cfg.max_frame;
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        if (msgs[i].len > max || (msgs[i].len && !msgs[i].data))
            return RILL_EINVAL;
        bytes += rill__frame_size(msgs[i].len);
    }
    rill__sink_t *s = &l->sinks[sink];
    /* One capacity check for the batch; if it does not fit whole, frame by frame. */
    if (s->pend.len + bytes > s->pend.cap &&
        rill__buf_reserve(&s->pend, bytes, l->w->cfg.sink_buffer) < 0) {
        size_t queued = 0; /* each frame that does not fit is counted by rill_emit_sink */
        for (size_t i = 0; i < n; i++)
            queued += rill_emit_sink(em, sink, msgs[i].comp_id, msgs[i].key, msgs[i].data,
                                     msgs[i].len) == 0;
        return (int)queued;
    }
    uint8_t *out = s->pend.data + s->pend.len;
    for (size_t i = 0; i < n; i++)
        out += rill__frame_encode(out, msgs[i].comp_id, msgs[i].key, msgs[i].data, msgs[i].len);
    s->pend.len += bytes;
    s->pend.frames += n;
    l->emitted += n;
    return (int)n;
}

int rill_emit_comp(rill_emitter_t *em, uint32_t comp_id, uint64_t key, const void *data,
                   size_t len)
{
    if (!em || !em->loop || (len && !data))
        return RILL_EINVAL;
    rill__loop_t *l = em->loop;
    if (len > l->w->cfg.max_frame)
        return RILL_EINVAL;
    const rill_view_t *view = l->view;
    if (view && view->n) {
        int owner = rill__view_owner(view, key);
        if (owner != view->self) {
            rill_msg_t m = {data, (uint32_t)len, comp_id, key};
            rill__peer_forward(l, owner, &m);
            RILL_STAT_ADD(l->stats.forwarded, 1);
            return 0;
        }
    }
    unsigned d = l->nloops > 1 ? rill__key_loop(key, l->nloops) : l->idx;
    if (d != l->idx) {
        rill__stage_frame(l, d, comp_id, key, data, (uint32_t)len);
        RILL_STAT_ADD(l->stats.handoff_msgs, 1);
        return 0;
    }
    size_t fs = rill__frame_size(len);
    if (rill__buf_reserve(&l->local, fs, SIZE_MAX) < 0) {
        RILL_STAT_ADD(l->stats.sink_dropped, 1);
        return RILL_ENOMEM;
    }
    rill__frame_encode(l->local.data + l->local.len, comp_id, key, data, (uint32_t)len);
    l->local.len += fs;
    atomic_fetch_add_explicit(&l->w->inflight, (long long)fs, memory_order_relaxed);
    return 0;
}
