/* Peer links follow the cluster view: one link per other member, opened when a member
 * appears, retired when it leaves (what was queued for it is routed again). */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "link/internal.h"

/* A member left: route what was queued for it again, under the new view. */
static void retire(rill__links_t *ls, rill__link_t *k)
{
    rill__link_move_to_reroute(ls, k);
    k->retiring = 1;
    rill__link_hup_cancel(ls, k);
    if (k->sending || k->op_pending) {
        if (k->fd >= 0)
            shutdown(k->fd, SHUT_RDWR); /* completes the outstanding operation promptly */
    } else {
        rill__link_release(k);
    }
}

static int same_member(const rill__link_t *k, const rill__member_t *m)
{
    return strcmp(k->id, m->id) == 0 && memcmp(&k->addr, &m->sa, sizeof k->addr) == 0;
}

void rill__links_adopt_view(rill__links_t *ls, const rill_view_t *v)
{
    int keep[RILL_MAX_MEMBERS] = {0};
    for (unsigned i = 0; i < v->n; i++) {
        ls->peer_of[i] = -1;
        if ((int)i == v->self)
            continue;
        int found = -1, free_slot = -1;
        for (int p = 0; p < RILL_MAX_MEMBERS; p++) {
            rill__link_t *k = &ls->peers[p];
            if (k->in_use && !k->retiring && same_member(k, &v->m[i]))
                found = p;
            else if (!k->in_use && !k->retiring && free_slot < 0)
                free_slot = p;
        }
        if (found < 0 && free_slot >= 0) {
            rill__link_t *k = &ls->peers[free_slot];
            rill__link_release(k); /* a clean slot, with a new generation */
            k->addr = v->m[i].sa;
            snprintf(k->id, sizeof k->id, "%s", v->m[i].id);
            k->in_use = 1;
            k->state = RILL_LINK_DOWN;
            k->retry_at = 0; /* connect on this iteration */
            found = free_slot;
        }
        if (found >= 0) {
            keep[found] = 1;
            ls->peer_of[i] = (int16_t)found;
        }
    }
    for (int p = 0; p < RILL_MAX_MEMBERS; p++)
        if (ls->peers[p].in_use && !ls->peers[p].retiring && !keep[p])
            retire(ls, &ls->peers[p]);
}
