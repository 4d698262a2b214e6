/* Managed computations in dispatch (docs/state.md): each frame only on its key group's
 * owner, held back until the group's state is here; the chunks a group's state travels
 * in; the frames held back, replayed. The routing and batching around them is
 * dispatch.c's. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch/dispatch.h"
#include "dispatch/internal.h"
#include "state/state.h"
#include "util/clock.h"
#include "util/stat.h"

/* ------------------------------------------------------------ managed state's handoff */

int rill__dispatch_park_init(rill__dispatch_t *d)
{
    if (d->park && d->park_groups == d->groups)
        return 0;
    if (d->parked_groups)
        return RILL_ENOMEM; /* the groups changed under parks: cannot happen (views keep them) */
    rill__park_t **park = calloc(d->groups, sizeof *park);
    uint16_t *epochs = calloc(d->groups, sizeof *epochs + 4); /* and four flag bytes each */
    if (!park || !epochs) {
        free(park);
        free(epochs);
        return RILL_ENOMEM;
    }
    free(d->park);
    free(d->arrived_epoch); /* the per-group arrays are one allocation */
    uint8_t *flags = (uint8_t *)(epochs + d->groups);
    d->park = park;
    d->arrived_epoch = epochs;
    d->arrived = flags;
    d->standby_ok = flags + d->groups;
    d->promoted = flags + 2 * (size_t)d->groups;
    d->stale = flags + 3 * (size_t)d->groups;
    d->park_groups = d->groups;
    return 0;
}

int rill__dispatch_park(rill__dispatch_t *d, unsigned g, uint64_t now)
{
    if (d->park[g])
        return 0;
    rill__park_t *p = calloc(1, sizeof *p);
    if (!p)
        return RILL_ENOMEM;
    p->origin = RILL_ORIGINS;
    p->since_ns = now;
    d->park[g] = p;
    d->parked_groups++;
    return 0;
}

/* Stops waiting for group g's state (it arrived, or lost says it never will): its frames
 * are replayed at the loop's next step. */
static void park_ready(rill__dispatch_t *d, rill__park_t *p, int lost)
{
    if (p->ready)
        return;
    p->ready = 1;
    p->lost = (uint8_t)lost;
    d->ready_groups++;
}

void rill__dispatch_park_ready(rill__dispatch_t *d, unsigned g, int lost)
{
    park_ready(d, d->park[g], lost);
}

static void park_put(rill__dispatch_t *d, rill__park_t *p, const rill_msg_t *m)
{
    long fs = rill__origin_put(&p->buf, &p->origin, d->origin, m->comp_id, m->key, m->data, m->len);
    if (fs < 0) {
        RILL_STAT_ADD(d->stats->handoff_dropped, 1);
        park_ready(d, p, 1);
        return;
    }
    p->frames++;
    d->held_frames++;
    d->park_bytes += (size_t)fs;
    if (d->park_bytes > RILL_PARK_MAX_BYTES) {
        rill__log_once(&d->logged->park_full,
                       "loop %u holds back over %u MiB of frames waiting for key groups' state: "
                       "those groups run on without it (counted in state_lost_groups)",
                       d->idx, RILL_PARK_MAX_BYTES >> 20);
        park_ready(d, p, 1);
    }
}

/* A managed computation's batch in a cluster: each frame runs only on the member that
 * owns its key group (any other member forwards it there, up to the last hop depth) and
 * only once the group's state is here (until then it is held back). */
void rill__dispatch_call_managed(rill__dispatch_t *d, const rill__comp_t *c, const rill_msg_t *v,
                                 size_t n)
{
    const rill_view_t *view = d->view;
    if (!view || !view->n) {
        /* A member without its first view does not know which groups are its own: it
         * holds their frames back until it does (rill__moves_adopt), unless such a wait
         * already ran out (no ZooKeeper: it serves alone, as an unclustered worker). */
        if (!d->clustered || d->preview_expired || rill__dispatch_park_init(d) < 0) {
            rill__dispatch_call(d, c, v, n);
            return;
        }
        for (size_t i = 0; i < n; i++) {
            unsigned g = rill__key_group(v[i].key, d->groups);
            if (d->park[g] || rill__dispatch_park(d, g, rill__now_ns()) == 0)
                park_put(d, d->park[g], &v[i]);
            else
                rill__dispatch_call(d, c, &v[i], 1);
        }
        return;
    }
    if (view->groups != d->groups || (d->park && d->park_groups != d->groups)) {
        rill__dispatch_call(d, c, v, n);
        return;
    }
    const uint8_t *owner = rill__view_table(view);
    size_t m = 0;
    uint64_t forwarded = 0, misrouted = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned g = rill__key_group(v[i].key, d->groups);
        if ((int)owner[g] != view->self) {
            /* A member that left its view runs nothing of a group; the others forward up
             * to the last hop depth. */
            if (d->origin < RILL_ORIGIN_LAST || view->self < 0) {
                forwarded += rill__dispatch_forward(d, owner[g], &v[i]) == 0;
                continue;
            }
            /* The last hop, and the members' views still differ: hold it back until this
             * member's view changes (rill__moves_adopt), at most RILL_HANDOFF_WAIT_MS. */
            misrouted++;
            if (d->park && (d->park[g] || rill__dispatch_park(d, g, rill__now_ns()) == 0)) {
                park_put(d, d->park[g], &v[i]);
                continue;
            }
        }
        rill__park_t *p = d->park ? d->park[g] : NULL;
        if (!p && d->fenced && rill__dispatch_park_init(d) == 0 &&
            rill__dispatch_park(d, g, rill__now_ns()) == 0) {
            p = d->park[g]; /* fenced: the group may be another member's by now */
            p->fence = 1;
        }
        if (p) {
            park_put(d, p, &v[i]);
            continue;
        }
        d->apply[m++] = v[i];
    }
    if (forwarded)
        RILL_STAT_ADD(d->stats->forwarded, forwarded);
    if (misrouted)
        RILL_STAT_ADD(d->stats->misrouted, misrouted);
    if (m)
        rill__dispatch_call(d, c, d->apply, m);
}

static void chunk_refused(rill__dispatch_t *d, const rill__chunk_t *ch, int rc)
{
    RILL_STAT_ADD(d->stats->state_rejected, 1);
    rill__log_once(&d->logged->state_chunk,
                   "state of key group %u for computation %u cannot be kept here (%s): "
                   "dropped (further ones only counted in state_rejected)",
                   ch->group, ch->comp_id, rill_strerror(rc));
}

/* A chunk of the standby copy this member keeps of another member's group. */
static void standby_chunk(rill__dispatch_t *d, const rill__chunk_t *ch)
{
    if (d->view && d->view->n && d->view->self < 0 && d->was_member)
        return; /* leaving: it keeps nobody's copy (its view tells the others soon) */
    if (ch->flags & RILL_CHUNK_BEGIN) {
        size_t n;
        const rill__comp_t *const *all = rill__registry_list(d->reg, &n);
        for (size_t i = 0; i < n; i++)
            if (all[i]->standby)
                rill__state_drop_group(all[i]->standby, d->idx, ch->group);
        d->standby_ok[ch->group] = 0;
        return;
    }
    if (ch->flags & RILL_CHUNK_END) {
        d->standby_ok[ch->group] = 1;
        return;
    }
    const rill__comp_t *c = rill__dispatch_lookup(d, ch->comp_id);
    int rc = c && c->standby ? rill__state_install(c->standby, d->idx, d->groups, ch) : RILL_ENOENT;
    if (rc < 0)
        chunk_refused(d, ch, rc);
}

size_t rill__dispatch_split_changes(rill__dispatch_t *d, const rill_msg_t *m)
{
    rill__chunk_t ch;
    if (rill__chunk_parse(m->data, m->len, &ch) < 0 || ch.groups != d->groups) {
        rill__dispatch_chunk(d, m); /* refused there, counted once */
        return 0;
    }
    size_t entry = 8 + (size_t)ch.value_size, handed = 0;
    if (rill__buf_reserve(&d->split, m->len, SIZE_MAX) < 0) {
        chunk_refused(d, &ch, RILL_ENOMEM);
        return 0;
    }
    for (unsigned loop = 0; loop < d->nloops; loop++) {
        uint8_t *out = d->split.data + RILL_CHUNK_HDR;
        uint32_t n = 0, first = 0;
        for (uint32_t i = 0; i < ch.n; i++) {
            const uint8_t *e = ch.entries + (size_t)i * entry;
            uint64_t key;
            memcpy(&key, e, 8);
            uint32_t g = rill__key_group(key, d->groups);
            if (rill__group_loop(g, d->nloops) != loop)
                continue;
            if (!n)
                first = g;
            memcpy(out + (size_t)n++ * entry, e, entry);
        }
        if (!n)
            continue;
        /* The chunk's header with this part's first group and count. */
        memcpy(d->split.data, m->data, RILL_CHUNK_HDR);
        memcpy(d->split.data + 8, &first, 4);
        memcpy(d->split.data + 20, &n, 4);
        rill_msg_t part = *m;
        part.data = d->split.data;
        part.len = (uint32_t)(RILL_CHUNK_HDR + (size_t)n * entry);
        if (loop == d->idx)
            rill__dispatch_chunk(d, &part);
        else
            handed += rill__handoff_stage(d->handoff, loop, d->origin, part.comp_id, part.key,
                                          part.data, part.len) == 0;
    }
    return handed;
}

/* Puts chunk m aside until the loop adopts a newer view (counted with the frames held
 * back). Returns 0, or RILL_ENOMEM / RILL_EFULL (then it is taken as it is). */
static int put_ahead(rill__dispatch_t *d, const rill_msg_t *m)
{
    if (d->park_bytes + m->len + 4 > RILL_PARK_MAX_BYTES ||
        rill__buf_reserve(&d->ahead, m->len + 4, RILL_PARK_MAX_BYTES) < 0)
        return RILL_EFULL;
    uint8_t *w = d->ahead.data + d->ahead.len;
    memcpy(w, &m->len, 4);
    memcpy(w + 4, m->data, m->len);
    d->ahead.len += m->len + 4;
    d->park_bytes += m->len + 4;
    return 0;
}

void rill__dispatch_ahead(rill__dispatch_t *d)
{
    if (!d->ahead.len)
        return;
    rill__buf_t b = d->ahead; /* what is still ahead goes back into a new one */
    memset(&d->ahead, 0, sizeof d->ahead);
    d->park_bytes -= b.len;
    for (size_t pos = 0; pos + 4 <= b.len;) {
        rill_msg_t m = {.comp_id = RILL_CONTROL_COMP_ID, .key = RILL_STATE_FRAME_KEY};
        memcpy(&m.len, b.data + pos, 4);
        m.data = b.data + pos + 4;
        pos += 4 + (size_t)m.len;
        rill__dispatch_chunk(d, &m);
    }
    rill__buf_free(&b);
}

/* Forgets group g's values of every managed computation on this loop. */
static void drop_values(rill__dispatch_t *d, unsigned g)
{
    size_t n;
    const rill__comp_t *const *all = rill__registry_list(d->reg, &n);
    for (size_t i = 0; i < n; i++)
        if (all[i]->state)
            rill__state_drop_group(all[i]->state, d->idx, g);
}

/* A chunk of a key group's managed state from the member that owned it. */
void rill__dispatch_chunk(rill__dispatch_t *d, const rill_msg_t *m)
{
    rill__chunk_t ch;
    const rill_view_t *view = d->view;
    if (rill__chunk_parse(m->data, m->len, &ch) < 0 || ch.groups != d->groups ||
        rill__dispatch_park_init(d) < 0) {
        RILL_STAT_ADD(d->stats->state_rejected, 1);
        rill__log_once(&d->logged->state_chunk,
                       "a chunk of managed state that does not parse or is for another number "
                       "of key groups: dropped (further ones only counted in state_rejected)");
        return;
    }
    if (ch.flags & RILL_CHUNK_STANDBY) {
        standby_chunk(d, &ch);
        return;
    }
    if (view && view->n && view->self < 0 && d->was_member && view->groups == d->groups) {
        /* Leaving: a group's state that reaches it now is for the group's owner. */
        rill__link_t *k = rill__links_peer(d->links, rill__view_table(view)[ch.group], 1);
        if (!k || rill__link_append(d->links, k, m->comp_id, m->key, m->data, m->len) < 0)
            chunk_refused(d, &ch, RILL_ENOMEM);
        return;
    }
    rill__park_t *p = d->park[ch.group];
    int owner = view && view->n && view->self >= 0 && view->groups == d->groups &&
                (int)rill__view_table(view)[ch.group] == view->self;
    if (!owner && view && view->n && (int16_t)((uint16_t)view->epoch - ch.epoch) >= 0) {
        /* Sent under a view this loop has too (or an older one), in which the group is
         * not this member's: state for an owner that is another member now. */
        if (!(ch.flags & RILL_CHUNK_END))
            chunk_refused(d, &ch, RILL_ESTATE);
        return;
    }
    if (owner && (!p || p->fence) && (int16_t)(ch.epoch - (uint16_t)view->epoch) > 0 &&
        put_ahead(d, m) == 0)
        return; /* the sender's view is newer: in it this member may have been gone */
    if (owner && (!p || p->fence)) {
        /* This loop owns the group and is not waiting for it: its values run on. An
         * empty END from a member that started with this one says nothing new, nor does
         * the state a leaving owner sent after its standby copy here took over (the
         * copy had all of it: the same link carried both, the copy's changes first). */
        if ((ch.flags & RILL_CHUNK_END) || d->promoted[ch.group])
            return;
        RILL_STAT_ADD(d->stats->state_rejected, 1);
        rill__log_once(&d->logged->state_chunk,
                       "state of key group %u arrived after the group stopped waiting for it: "
                       "dropped (further ones only counted in state_rejected)",
                       ch.group);
        return;
    }
    if (owner && d->stale[ch.group]) {
        /* The first of the group's state since this member joined again: it replaces the
         * values kept from before, unless nobody ran the group meanwhile: the sender has
         * none ("nothing here") or only its standby copy, older than what this member
         * ran (a copy's chunks are skipped up to its END). */
        if (ch.flags & (RILL_CHUNK_EMPTY | RILL_CHUNK_COPY)) {
            if (!(ch.flags & RILL_CHUNK_END))
                return;
        } else {
            drop_values(d, ch.group);
        }
        d->stale[ch.group] = 0;
    }
    if (ch.flags & RILL_CHUNK_END) {
        if (p && owner)
            park_ready(d, p, 0);
        else if (!(ch.flags & RILL_CHUNK_EMPTY) || !view || !view->n) {
            d->arrived[ch.group] = 1; /* before this loop's view makes it the owner (a
                                       * park without a view holds on until the view) */
            d->arrived_epoch[ch.group] = ch.epoch;
        }
        /* else "nothing here" for a group that is another member's in this loop's view
         * (the sender's first view saw an older cluster): nothing to remember */
        return;
    }
    const rill__comp_t *c = rill__dispatch_lookup(d, ch.comp_id);
    int rc = c && c->state ? rill__state_install(c->state, d->idx, d->groups, &ch) : RILL_ENOENT;
    if (rc < 0)
        chunk_refused(d, &ch, rc);
}

/* A chunk a retiring link handed back (its member left before it took it): a group's state
 * to the group's owner now, here when that is this loop (the loop that sent it runs the
 * group); a standby copy's chunk is dropped. */
void rill__dispatch_rechunk(rill__dispatch_t *d, const rill_msg_t *m)
{
    const rill_view_t *view = d->view;
    uint32_t g = m->len >= RILL_CHUNK_HDR ? rill__chunk_group(m->data) : UINT32_MAX;
    if (m->len >= RILL_CHUNK_HDR && (m->data[1] & RILL_CHUNK_STANDBY))
        return; /* for a standby that left: the group's next standby gets a whole copy */
    if (view && view->n && g < view->groups && (int)rill__view_table(view)[g] != view->self) {
        rill__link_t *k = rill__links_peer(d->links, rill__view_table(view)[g], 1);
        if (k && rill__link_append(d->links, k, m->comp_id, m->key, m->data, m->len) == 0)
            return;
    }
    rill__dispatch_chunk(d, m);
}

int rill_state_scan(rill_emitter_t *em, uint64_t *cursor, uint64_t *keys, void **values, size_t max)
{
    if (!em || !em->c || !em->c->state || !cursor || !keys || !values)
        return RILL_EINVAL;
    if (max > INT_MAX)
        max = INT_MAX;
    return rill__state_scan(em->c->state, em->d->idx, cursor, keys, values, max);
}

void rill__dispatch_replay(rill__dispatch_t *d, rill__park_t *p)
{
    rill__decoder_t dec;
    rill__decoder_init(&dec, RILL_FRAMING_RILL, UINT32_MAX, 0, 0, 0);
    size_t pos = 0;
    while (pos < p->buf.len) {
        int n = rill__decode(&dec, p->buf.data, p->buf.len, &pos, d->scratch, RILL_BATCH_MAX);
        if (n < 0)
            abort(); /* rill's own encoding */
        for (int i = 0, j; i < n; i = j) {
            uint32_t id = d->scratch[i].comp_id;
            for (j = i + 1; j < n && d->scratch[j].comp_id == id; j++)
                ;
            if (id == RILL_CONTROL_COMP_ID) { /* origin markers only */
                uint64_t o = d->scratch[j - 1].key;
                d->origin = o < RILL_ORIGINS ? (unsigned)o : RILL_ORIGIN_LAST;
                continue;
            }
            const rill__comp_t *c = rill__dispatch_lookup(d, id);
            if (c && c->state)
                rill__dispatch_call_managed(d, c, d->scratch + i, (size_t)(j - i));
            else if (c)
                rill__dispatch_call(d, c, d->scratch + i, (size_t)(j - i));
            else
                rill__dispatch_unknown(d, d->scratch + i, (size_t)(j - i));
        }
    }
    rill__decoder_free(&dec);
    d->held_frames -= p->frames;
    d->park_bytes -= p->buf.len;
    rill__buf_free(&p->buf);
    free(p);
}
