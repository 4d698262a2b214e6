/* Dispatch: from decoded views to computation calls, and the emits that come back.
 *
 * Views are routed by key: to the member that owns the key (its peer link), to the loop
 * that owns it (handoff staging), or kept; the kept ones keep their order, and each run
 * of consecutive views for one computation id reaches it in one call. Emits to a
 * computation on this same loop wait in the local queue until the current batch has
 * returned (rill__dispatch_run_local). */
#ifndef RILL_CORE_DISPATCH_H
#define RILL_CORE_DISPATCH_H

#include <stdatomic.h>
#include <stddef.h>

#include "cluster/view.h"
#include "frame/frame.h"
#include "handoff/stage.h"
#include "link/link.h"
#include "registry/registry.h"
#include "state/handoff.h"
#include "stats/loop_stats.h"
#include "util/buf.h"
#include "util/log.h"

#define RILL_BATCH_MAX 256 /* views handed to one dispatch call at most */

/* Where views come from, which decides how far they may still travel. */
enum {
    RILL_ROUTE_LOCAL = 0,  /* known to be this loop's: handoff and local traffic */
    RILL_ROUTE_SOURCE = 1, /* from a source: may belong to another member or loop */
    RILL_ROUTE_PEER = 2,   /* forwarded by a member: stays in this worker (another loop
                            * perhaps), never sent back */
};

typedef struct rill__dispatch {
    unsigned idx, nloops;
    int clustered;
    int dead_letter;      /* sink for unknown computation ids, or -1 */
    uint32_t max_payload; /* largest payload an emit accepts: max_frame - 12 */
    rill__registry_t *reg;
    rill__links_t *links;
    rill__handoff_t *handoff;
    rill__loop_stats_t *stats;
    rill__log_flags_t *logged;
    atomic_llong *inflight;
    const rill_view_t *view; /* the view of the current registry section, or NULL */
    unsigned groups;         /* key groups: the view's number, else the configured one */

    uint64_t emitted;  /* frames emitted to sinks, not yet added to stats.msgs_out */
    uint32_t cache_id; /* one-entry lookup cache, valid within one read section */
    const rill__comp_t *cache_comp;
    rill_msg_t mine[RILL_BATCH_MAX];
    rill_msg_t scratch[RILL_BATCH_MAX];
    void *values[RILL_BATCH_MAX];     /* a managed computation's values for its batch */
    rill_msg_t apply[RILL_BATCH_MAX]; /* the part of a managed batch that runs here */

    /* Managed state's handoff (state/handoff.h, loop/group_moves.c), per key group:
     * park[g] holds g's frames back until its state arrives (NULL: g runs), arrived[g]
     * says its state came before this loop owned it. Allocated at the first need. */
    rill__park_t **park;
    uint8_t *arrived;
    uint8_t *standby_ok;     /* per group: this loop holds a whole standby copy of it */
    uint8_t *promoted;       /* per group: its standby copy became its state at this view */
    uint16_t *arrived_epoch; /* per group: the view epoch (low bits) its arrived state was for
                              * (the allocation the per-group arrays share) */
    uint8_t *stale;          /* per group: values kept from before the member joined again
                              * (after a session expiry): state that arrives replaces them */
    unsigned park_groups;    /* entries of park and arrived (d->groups when allocated) */
    unsigned parked_groups;  /* parks */
    unsigned ready_groups;   /* parks whose state arrived (or that gave up): to replay */
    size_t park_bytes;       /* the parks' bytes and the chunks put ahead */
    uint64_t held_frames;    /* frames in the parks */
    int preview_expired;     /* a wait for the first view ran out: no more such waits */
    int was_member;          /* a view of this loop had this member in it */
    int rerouting; /* rill__dispatch_reroute runs: control frames are chunks handed back */
    int fenced;    /* the member is fenced (cluster/fence.h): owned groups are held back */
    uint64_t fenced_since;
    rill__buf_t ahead; /* chunks sent under a view this loop has not adopted yet (u32 length,
                        * payload): taken again after the next view (rill__dispatch_ahead) */
    rill__buf_t split; /* one loop's part of standby changes (rill__dispatch_split_changes) */

    /* emit_comp to a key this loop owns: processed after the current batch. Origin
     * markers as in the handoff rings (handoff/stage.h) keep each frame's origin. */
    rill__buf_t local;
    rill__buf_t local_run; /* the generation of local being processed */
    rill__decoder_t local_dec;
    uint8_t local_origin; /* origin of the last frame in local (RILL_ORIGINS: none yet) */

    /* The origin (RILL_ORIGIN_*) of the frames being run, and so of what they emit to
     * other loops and to the local queue: set from the route (sources, members), by the
     * markers of handoff rings and the local queue, and by the loop. */
    unsigned origin;
    /* Frames run with RILL_ROUTE_LOCAL (handoff rings and the local queue), per origin. */
    uint64_t ran_local[RILL_ORIGINS];
} rill__dispatch_t;

_Static_assert(RILL_BATCH_MAX <= RILL_STATE_BATCH_MAX, "a run of views fits one state lookup");

/* The emitter handed to callbacks. */
struct rill_emitter {
    rill__dispatch_t *d;
    const rill__comp_t *c; /* the computation called back */
};

/* Which loop owns key among n loops. Keys are mixed first: applications often use
 * small sequential keys. */
static inline unsigned rill__key_loop(uint64_t key, unsigned n)
{
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdull;
    key ^= key >> 33;
    return (unsigned)(((unsigned __int128)key * n) >> 64);
}

/* Which of n loops runs the frames of key group `group`. A group stays on one loop, its
 * managed state with it: the group, not the key, is what moves between members. */
static inline unsigned rill__group_loop(unsigned group, unsigned n)
{
    return rill__key_loop(group, n);
}

/* Which loop of this worker runs the frames of key. */
static inline unsigned rill__dispatch_key_loop(const rill__dispatch_t *d, uint64_t key)
{
    return d->nloops > 1 ? rill__group_loop(rill__key_group(key, d->groups), d->nloops) : d->idx;
}

/* Fills d for loop idx of nloops, with `groups` key groups until a view says otherwise
 * (the pointers stay owned by the caller). */
void rill__dispatch_init(rill__dispatch_t *d, unsigned idx, unsigned nloops, unsigned groups,
                         int clustered, int dead_letter, uint32_t max_frame, rill__registry_t *reg,
                         rill__links_t *links, rill__handoff_t *handoff, rill__loop_stats_t *stats,
                         rill__log_flags_t *logged, atomic_llong *inflight);
void rill__dispatch_free(rill__dispatch_t *d);

/* A registry read section began: the lookup cache is void, view is the current one. */
static inline void rill__dispatch_begin(rill__dispatch_t *d, const rill_view_t *view)
{
    d->cache_comp = NULL;
    d->view = view;
    if (view && view->groups)
        d->groups = view->groups;
}

/* Registry lookup with a one-entry cache: a run of frames for one computation costs one
 * lookup, and so does a stream (or a computation's emits) that keeps addressing the same
 * id. Valid within the loop's current read section only (rill__dispatch_begin clears
 * it). */
static inline const rill__comp_t *rill__dispatch_lookup(rill__dispatch_t *d, uint32_t id)
{
    if (d->cache_comp && d->cache_id == id)
        return d->cache_comp;
    const rill__comp_t *c = rill__registry_lookup(d->reg, id);
    d->cache_id = id;
    d->cache_comp = c;
    return c;
}

/* Dispatches n views; route is a RILL_ROUTE_* value, origin the views' origin
 * (handoff/stage.h: the depth of the stream they came on) unless route is
 * RILL_ROUTE_LOCAL, whose markers say it. */
void rill__dispatch(rill__dispatch_t *d, const rill_msg_t *v, size_t n, int route, unsigned origin);

/* Queues m on the link to view member `member` that frames of the current origin take.
 * Returns 0, or the reason it was dropped (RILL_EFULL, RILL_ENOMEM; counted in
 * peer_dropped). */
int rill__dispatch_forward(rill__dispatch_t *d, int member, const rill_msg_t *m);

/* Runs every registered computation's flush callback. */
void rill__dispatch_flush(rill__dispatch_t *d);

/* Processes the local queue, a bounded number of generations (a chain of computations
 * that keeps emitting continues next time). Returns non-zero when frames remain. */
int rill__dispatch_run_local(rill__dispatch_t *d);

/* Frames waiting in the local queue (bytes). */
static inline size_t rill__dispatch_local_bytes(const rill__dispatch_t *d)
{
    return d->local.len;
}

/* Whether d holds frames back (for their group's state, or fenced) or is fenced: then no
 * frame of this loop may be acknowledged yet (core/loop/ack_barriers.c). A held frame
 * counts as run in its stream's figures, so an acknowledgement taken now would cover it
 * before it ran, and a crash would lose it. */
static inline int rill__dispatch_holds_frames(const rill__dispatch_t *d)
{
    return d->fenced || d->held_frames > 0;
}

/* Makes sure the handoff's per-group arrays exist for d->groups. Returns 0 or
 * RILL_ENOMEM. */
int rill__dispatch_park_init(rill__dispatch_t *d);

/* Starts holding back group g's managed frames (now: the time). Returns 0 or RILL_ENOMEM. */
int rill__dispatch_park(rill__dispatch_t *d, unsigned g, uint64_t now);

/* Stops waiting for group g's state (lost: it will not come); its frames are replayed at
 * the loop's next step. g must have a park. */
void rill__dispatch_park_ready(rill__dispatch_t *d, unsigned g, int lost);

/* A chunk of standby changes of many groups (RILL_CHUNK_MULTI) that came from a member:
 * the entries of each loop's groups go to that loop as a chunk of their own (this loop's
 * are taken at once). Returns the chunks handed to other loops. */
size_t rill__dispatch_split_changes(rill__dispatch_t *d, const rill_msg_t *m);

/* Takes the chunks put aside for a newer view again, after the loop adopted one. */
void rill__dispatch_ahead(rill__dispatch_t *d);

/* Runs (or forwards, or parks again) the frames p held back, p no longer being group's
 * park, and frees p. Outside any other dispatch call. */
void rill__dispatch_replay(rill__dispatch_t *d, rill__park_t *p);

/* Routes the frames of b (rill's own v1 encoding) again under the current view, as
 * frames of the given origin, counted as rerouted, and empties b. */
void rill__dispatch_reroute(rill__dispatch_t *d, rill__buf_t *b, unsigned origin);

#endif
