/* Dispatch: from decoded views to computation calls.
 *
 * Views of one decoded piece are split by owning loop (frames for keys another loop owns
 * are appended to that loop's handoff staging), the local ones keep their order, and
 * each run of consecutive views for one computation id reaches it in one call. */
#ifndef RILL_CORE_DISPATCH_H
#define RILL_CORE_DISPATCH_H

#include <stddef.h>

#include "loop/loop.h"

/* The emitter handed to callbacks. */
struct rill_emitter {
    rill__loop_t *loop;
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

/* Dispatches n views received by loop l. route 1: source traffic, which may belong to
 * another member of the cluster or another loop; route 2: frames forwarded by a member,
 * which stay in this worker (they may still belong to another loop); route 0: frames
 * known to be l's (handoff and local traffic). */
void rill__dispatch(rill__loop_t *l, const rill_msg_t *v, size_t n, int route);

/* Runs every registered computation's flush callback on loop l. */
void rill__dispatch_flush(rill__loop_t *l);

/* Appends one v1 frame to loop l's handoff staging for loop dst. */
void rill__stage_frame(rill__loop_t *l, unsigned dst, uint32_t comp_id, uint64_t key,
                       const void *data, uint32_t len);

#endif
