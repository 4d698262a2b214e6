/* Shared between the files of link/ only. */
#ifndef RILL_CORE_LINK_INTERNAL_H
#define RILL_CORE_LINK_INTERNAL_H

#include "link/link.h"

/* Sinks and peer links share one index space in user_data: sinks first. */
#define RILL_LINK_PEER_BASE RILL_MAX_SINKS

rill__link_t *rill__link_at(rill__links_t *ls, unsigned li); /* NULL for a bad index */
unsigned rill__link_index(const rill__links_t *ls, const rill__link_t *k);
/* The connection failed (err): close it, retry with backoff. */
void rill__link_down(rill__links_t *ls, rill__link_t *k, int err, uint64_t now);
void rill__link_release(rill__link_t *k);
/* Releases a retiring peer slot once none of its operations is outstanding. */
void rill__link_release_when_idle(rill__link_t *k);
void rill__link_hup_cancel(rill__links_t *ls, rill__link_t *k);
void rill__link_move_to_reroute(rill__links_t *ls, rill__link_t *k);

/* Where what peer link k hands back waits to be routed again: the buffer of its depth. */
static inline rill__buf_t *rill__link_reroute_buf(rill__links_t *ls, const rill__link_t *k)
{
    return &ls->reroute[(unsigned)(k - ls->peers) % RILL_PEER_LINKS];
}

/* A lazy link (a peer link of depth 2 or deeper) connects once a frame is queued on it. */
static inline int rill__link_wants_connect(const rill__link_t *k)
{
    return !k->lazy || k->pend.len != 0;
}

#endif
