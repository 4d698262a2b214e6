/* Peer links follow the cluster view: a group of links per other member, one per hop
 * depth and one for standby copies (util/limits.h), opened when a member appears (all but
 * depth 1 once a frame is queued on them), retired when it leaves (what was queued for it
 * is routed again). */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "link/acked.h"
#include "link/internal.h"
#include "util/log.h"

/* A member left: route what was queued for it again, under the new view. An acked link
 * hands back what the member had not acknowledged too, ahead of what it had queued;
 * what it had already sent on a live connection first waits for the member's ACK (a
 * leaving member processes what reached it), and is handed back only if none comes. */
static void retire(rill__links_t *ls, rill__link_t *k)
{
    if (k->ack && rill__acked_retire(ls, k)) {
        /* Still up: waits for the member's ACK of what it was sent (the connection and
         * its control recv stay), then goes. */
        k->retiring = 1;
        rill__link_hup_cancel(ls, k);
        return;
    }
    if (!k->ack)
        rill__link_move_to_reroute(ls, k);
    k->retiring = 1;
    rill__link_hup_cancel(ls, k);
    if (k->ack && k->ack->rx_armed)
        rill__ring_cancel(ls->ring,
                          RILL_UD(RILL_OP_LINK_RECV, rill__link_index(ls, k), k->ack->rx_conn));
    if (k->sending || k->op_pending || (k->ack && k->ack->rx_armed)) {
        if (k->fd >= 0)
            shutdown(k->fd, SHUT_RDWR); /* completes the outstanding operations promptly */
    } else {
        rill__link_release(k);
    }
}

/* One stream per (worker, loop, member incarnation, depth): stable across the link's
 * reconnects. The loop's part is in seed (ls->stream_seed). A member that joins again
 * under its id (a new session) gets new streams: the links to its earlier incarnation may
 * still be draining into the same process, and two connections of one stream would
 * supersede each other there (the older one's frames would be handed back and run twice,
 * the newer one's taken for frames that already ran). */
static uint64_t peer_stream_id(uint64_t seed, const rill__member_t *m, unsigned depth)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a over the member id, then its incarnation */
    for (const char *p = m->id; *p; p++)
        h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
    for (unsigned i = 0; i < 8; i++)
        h = (h ^ (uint8_t)(m->since >> (8 * i))) * 0x100000001b3ull;
    return rill__stream_id(seed, h + depth - 1);
}

/* Opens group g's links to member m: depth 1 connects on this iteration, the others once
 * a frame is queued on them. */
static void open_group(rill__links_t *ls, unsigned g, const rill__member_t *m)
{
    for (unsigned d = 1; d <= RILL_PEER_LINKS; d++) {
        rill__link_t *k = &ls->peers[g * RILL_PEER_LINKS + d - 1];
        rill__link_release(k); /* a clean slot, with a new generation */
        k->addr = m->sa;
        snprintf(k->id, sizeof k->id, "%s", m->id);
        k->in_use = 1;
        k->lazy = d > 1;
        k->state = RILL_LINK_DOWN;
        k->retry_at = 0;
        /* Peer links are always acked: what a member took is acknowledged once its
         * effects are safe there; without memory for that, the link is best-effort. */
        if (rill__link_make_acked(ls, k, peer_stream_id(ls->stream_seed, m, d)) < 0)
            rill__log("peer %s: no memory for an acked link; it is best-effort", k->id);
    }
}

/* A group can be opened once none of its links is in use or still retiring. */
static int group_free(const rill__links_t *ls, unsigned g)
{
    for (unsigned d = 0; d < RILL_PEER_LINKS; d++) {
        const rill__link_t *k = &ls->peers[g * RILL_PEER_LINKS + d];
        if (k->in_use || k->retiring)
            return 0;
    }
    return 1;
}

static int same_member(const rill__link_t *k, const rill__member_t *m)
{
    return strcmp(k->id, m->id) == 0 && memcmp(&k->addr, &m->sa, sizeof k->addr) == 0;
}

void rill__links_refused(const rill__links_t *ls, unsigned n, uint8_t *refused)
{
    for (unsigned i = 0; i < n && i < RILL_MAX_MEMBERS; i++) {
        int g = ls->peer_of[i];
        const rill__link_t *k = g >= 0 ? &ls->peers[(unsigned)g * RILL_PEER_LINKS] : NULL;
        refused[i] = k && k->in_use && !k->retiring && k->refused;
    }
}

void rill__links_adopt_view(rill__links_t *ls, const rill_view_t *v)
{
    int keep[RILL_MAX_MEMBERS] = {0};
    for (unsigned i = 0; i < v->n; i++) {
        ls->peer_of[i] = -1;
        if ((int)i == v->self)
            continue;
        int found = -1, free_group = -1;
        for (unsigned g = 0; g < RILL_MAX_MEMBERS; g++) {
            rill__link_t *k = &ls->peers[g * RILL_PEER_LINKS];
            if (k->in_use && !k->retiring && same_member(k, &v->m[i]))
                found = (int)g;
            else if (free_group < 0 && group_free(ls, g))
                free_group = (int)g;
        }
        if (found < 0 && free_group >= 0) {
            open_group(ls, (unsigned)free_group, &v->m[i]);
            found = free_group;
        }
        if (found >= 0) {
            keep[found] = 1;
            ls->peer_of[i] = (int16_t)found;
        }
    }
    for (unsigned p = 0; p < RILL_PEER_SLOTS; p++)
        if (ls->peers[p].in_use && !ls->peers[p].retiring && !keep[p / RILL_PEER_LINKS])
            retire(ls, &ls->peers[p]);
}
