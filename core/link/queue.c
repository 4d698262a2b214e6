/* The links' queues: set-up, the one capacity check and drop accounting, and the
 * figures the loop reads for backpressure, gauges and the drain. */
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "link/acked.h"
#include "link/internal.h"
#include "util/stat.h"

static void link_reset(rill__link_t *k, uint64_t *dropped)
{
    memset(k, 0, sizeof *k);
    k->fd = -1; /* never 0: that would be stdin, and closing it would hurt the embedder */
    k->dropped = dropped;
}

void rill__links_init(rill__links_t *ls, rill__ring_t *ring, rill__loop_stats_t *stats,
                      rill__log_flags_t *logged, size_t cap, const rill__addr_t *sinks,
                      unsigned nsinks, int clustered, uint64_t stream_seed)
{
    *ls = (rill__links_t){
        .ring = ring,
        .stats = stats,
        .logged = logged,
        .cap = cap,
        .nsinks = nsinks,
        .clustered = clustered,
        .stream_seed = stream_seed,
    };
    for (unsigned s = 0; s < RILL_MAX_SINKS; s++) {
        link_reset(&ls->sinks[s], &stats->sink_dropped);
        if (s < nsinks)
            ls->sinks[s].addr = sinks[s];
    }
    for (unsigned p = 0; p < RILL_PEER_SLOTS; p++)
        link_reset(&ls->peers[p], &stats->peer_dropped);
    for (unsigned m = 0; m < RILL_MAX_MEMBERS; m++)
        ls->peer_of[m] = -1;
}

void rill__links_close(rill__links_t *ls)
{
    for (unsigned s = 0; s < RILL_MAX_SINKS; s++) {
        if (ls->sinks[s].fd >= 0) {
            close(ls->sinks[s].fd);
            ls->sinks[s].fd = -1;
        }
        if (ls->sinks[s].state == RILL_LINK_UP) /* the sinks_up gauge goes with it */
            RILL_STAT_SUB(ls->stats->sinks_up, 1);
        ls->sinks[s].state = RILL_LINK_DOWN;
    }
    for (unsigned p = 0; p < RILL_PEER_SLOTS; p++)
        if (ls->peers[p].fd >= 0) {
            close(ls->peers[p].fd);
            ls->peers[p].fd = -1;
        }
}

void rill__links_free(rill__links_t *ls)
{
    rill__links_close(ls);
    for (unsigned s = 0; s < RILL_MAX_SINKS; s++) {
        rill__buf_free(&ls->sinks[s].pend);
        rill__buf_free(&ls->sinks[s].fly);
        rill__acked_free(ls->sinks[s].ack);
        ls->sinks[s].ack = NULL;
    }
    for (unsigned p = 0; p < RILL_PEER_SLOTS; p++) {
        rill__buf_free(&ls->peers[p].pend);
        rill__buf_free(&ls->peers[p].fly);
        rill__acked_free(ls->peers[p].ack);
        ls->peers[p].ack = NULL;
    }
    for (unsigned d = 0; d < RILL_PEER_LINKS; d++)
        rill__buf_free(&ls->reroute[d]);
}

/* The most a link may queue: the cap for a best-effort link. An acked link is never
 * refused for its size: a frame it drops would still be acknowledged upstream (its
 * source frame ran). The loop's backpressure (rill__links_pressure) bounds it instead,
 * and only memory can refuse. */
static inline size_t link_cap(const rill__links_t *ls, const rill__link_t *k)
{
    return k->ack ? SIZE_MAX : ls->cap;
}

size_t rill__link_room(const rill__links_t *ls, const rill__link_t *k)
{
    size_t cap = link_cap(ls, k);
    return cap == SIZE_MAX ? SIZE_MAX : cap > k->pend.len ? cap - k->pend.len : 0;
}

int rill__link_reserve(rill__links_t *ls, rill__link_t *k, size_t bytes, uint64_t frames)
{
    int rc = rill__buf_reserve(&k->pend, bytes, link_cap(ls, k));
    if (rc < 0)
        RILL_STAT_ADD(*k->dropped, frames);
    return rc;
}

size_t rill__link_append_msgs(rill__links_t *ls, rill__link_t *k, const rill_msg_t *m, size_t n,
                              size_t bytes)
{
    if (k->pend.len + bytes > k->pend.cap &&
        rill__buf_reserve(&k->pend, bytes, link_cap(ls, k)) < 0) {
        size_t queued = 0; /* each frame that does not fit is counted by the append */
        for (size_t i = 0; i < n; i++)
            queued += rill__link_append(ls, k, m[i].comp_id, m[i].key, m[i].data, m[i].len) == 0;
        return queued;
    }
    uint8_t *out = k->pend.data + k->pend.len;
    for (size_t i = 0; i < n; i++)
        out += rill__frame_encode(out, m[i].comp_id, m[i].key, m[i].data, m[i].len);
    k->pend.len += bytes;
    k->pend.frames += n;
    if (k->pend.len >= k->mark_at)
        rill__acked_mark_pend(k); /* a boundary for the acked link's windows, per 64 KiB */
    return n;
}

void rill__link_discard(rill__link_t *k)
{
    k->pend.len = 0;
    k->pend.frames = 0;
    rill__acked_clear_pend_marks(k);
}

/* Calls fn for every link in use: the configured sinks and the peer links. */
#define FOR_EACH_LINK(ls, k, body)                                                                 \
    do {                                                                                           \
        for (unsigned i_ = 0; i_ < (ls)->nsinks; i_++) {                                           \
            const rill__link_t *k = &(ls)->sinks[i_];                                              \
            body;                                                                                  \
        }                                                                                          \
        for (unsigned i_ = 0; (ls)->clustered && i_ < RILL_PEER_SLOTS; i_++) {                     \
            const rill__link_t *k = &(ls)->peers[i_];                                              \
            if (k->in_use) {                                                                       \
                body;                                                                              \
            }                                                                                      \
        }                                                                                          \
    } while (0)

int rill__links_idle(const rill__links_t *ls)
{
    int idle = 1;
    /* An acked link is idle once the receiver has acknowledged everything. */
    FOR_EACH_LINK(ls, k,
                  idle &=
                  k->pend.len == 0 && !k->sending && (!k->ack || rill__acked_held(k->ack) == 0));
    return idle;
}

size_t rill__links_queued(const rill__links_t *ls)
{
    size_t bytes = 0;
    FOR_EACH_LINK(ls, k,
                  bytes += k->pend.len + (k->sending ? k->fly.len : 0) +
                           (k->ack ? rill__acked_unsent(k->ack) : 0));
    return bytes;
}

size_t rill__links_retained(const rill__links_t *ls)
{
    size_t bytes = 0;
    FOR_EACH_LINK(ls, k, bytes += k->ack ? rill__acked_retained(k->ack) : 0);
    return bytes;
}

void rill__links_pressure(const rill__links_t *ls, size_t hi, size_t lo, int *high, int *low)
{
    int h = 0, w = 1;
    /* An acked link's queue goes on past pend: what it took from pend and has not sent. */
    FOR_EACH_LINK(ls, k, {
        size_t q = k->pend.len + (k->ack ? rill__acked_unsent(k->ack) : 0);
        h |= q > hi;
        w &= q <= lo;
    });
    *high = h;
    *low = w;
}

uint64_t rill__links_next_retry(const rill__links_t *ls, uint64_t now)
{
    uint64_t wait = UINT64_MAX;
    FOR_EACH_LINK(ls, k, {
        if (k->state == RILL_LINK_DOWN && !k->retiring && rill__link_wants_connect(k)) {
            uint64_t until = k->retry_at > now ? k->retry_at - now : 0;
            if (until < wait)
                wait = until;
        } else if (k->retiring && k->ack && k->ack->draining) {
            uint64_t at = k->ack->retire_at ? k->ack->retire_at : now;
            uint64_t until = at > now ? at - now : 0;
            if (until < wait)
                wait = until;
        }
    });
    return wait;
}

/* One output's figures (see rill__links_figures). */
static void link_figures(const rill__link_t *k, uint64_t *appended, uint64_t *safe)
{
    *appended = k->base + (k->ack ? rill__acked_appended(k) : 0);
    *safe = k->base + (k->ack ? rill__acked_safe(k) : 0);
}

void rill__links_figures(const rill__links_t *ls, uint64_t *appended, uint64_t *safe)
{
    unsigned n = rill__links_outputs(ls);
    for (unsigned o = 0; o < n; o++) {
        const rill__link_t *k = o < ls->nsinks ? &ls->sinks[o] : &ls->peers[o - ls->nsinks];
        link_figures(k, &appended[o], &safe[o]);
    }
}

void rill__links_publish(rill__links_t *ls)
{
    if (!ls->nacked && !ls->clustered)
        return;
    unsigned n = rill__links_outputs(ls);
    for (unsigned o = 0; o < n; o++) {
        const rill__link_t *k = o < ls->nsinks ? &ls->sinks[o] : &ls->peers[o - ls->nsinks];
        uint64_t a, s;
        link_figures(k, &a, &s);
        atomic_store_explicit(&ls->pub_appended[o], a, memory_order_relaxed);
        atomic_store_explicit(&ls->pub_safe[o], s, memory_order_relaxed);
    }
}

void rill__links_count_unsent(rill__links_t *ls)
{
    for (unsigned s = 0; s < RILL_MAX_SINKS; s++) {
        rill__link_t *k = &ls->sinks[s];
        RILL_STAT_ADD(*k->dropped, k->pend.frames + (k->sending ? k->fly.frames : 0) +
                                       (k->ack ? rill__acked_held(k->ack) : 0));
    }
    for (unsigned p = 0; p < RILL_PEER_SLOTS; p++) {
        rill__link_t *k = &ls->peers[p];
        RILL_STAT_ADD(*k->dropped, k->pend.frames + (k->sending ? k->fly.frames : 0));
    }
}
