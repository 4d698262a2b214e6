/* Fencing: a member that may have lost its ZooKeeper session stops running the key groups
 * of managed computations until it knows it still owns them (docs/state.md#fencing).
 *
 * Other members take a member's groups over once its session expires on the server,
 * which is session_ms after the server last heard from it. Its own client notices a
 * silent connection after 2/3 of the timeout at the latest (a refused or reset one at
 * once), so a member fenced RILL_FENCE_AFTER_DIV-th of the timeout after it noticed is
 * fenced before the server can expire its session, and a new owner also waits for a
 * leaving owner's state before it runs a group (RILL_STANDBY_WAIT_MS). A fence lifts when
 * the same session reconnects (its node never went away: nobody took a group over), or,
 * after the session expired, with the first view of the new session (whose loops then
 * take their groups back as a member that joins, loop/group_moves.c).
 *
 * The cluster thread drives it; loops read rill__fence_on() once per iteration, before
 * they read the view (see fence_view: a lifted fence is stored after that view). */
#ifndef RILL_CORE_FENCE_H
#define RILL_CORE_FENCE_H

#include <stdatomic.h>
#include <stdint.h>

#define RILL_FENCE_AFTER_DIV 6 /* fenced session_ms / 6 after the connection was lost */

typedef struct rill__fence {
    atomic_int on;       /* managed groups are held back */
    atomic_ullong count; /* times fenced */
    int session_lost;    /* the session expired: fenced until a view of the new one */
} rill__fence_t;

/* Whether fence f is on (for loops). */
static inline int rill__fence_on(rill__fence_t *f)
{
    return atomic_load_explicit(&f->on, memory_order_acquire);
}

/* The connection has been lost since disconnected_at (ns): fences once that is longer
 * than session_ms / RILL_FENCE_AFTER_DIV, when the worker is a member of its view
 * (member != 0). Returns 1 when this call fenced. */
int rill__fence_disconnected(rill__fence_t *f, int member, uint64_t disconnected_at,
                             unsigned session_ms, uint64_t now);

/* The session expired (or its authentication failed): a member is fenced at once, until
 * a view of its next session (rill__fence_view). Returns 1 when this call fenced. */
int rill__fence_expired(rill__fence_t *f, int member);

/* The session is connected again: lifts a fence that no expiry made. Returns 1 when this
 * call lifted it. */
int rill__fence_connected(rill__fence_t *f);

/* A view of the current session was published, with self_in != 0 when it has this worker
 * in it: lifts the fence an expiry made. Returns 1 when this call lifted it. */
int rill__fence_view(rill__fence_t *f, int self_in);

#endif
