/* A managed computation's state (docs/state.md): a value of a fixed size per key, in
 * memory rill owns, kept per key group so that a group's state can move as one piece.
 *
 * Each loop keeps the tables of the groups it runs (rill__group_loop) and is the only
 * thread that touches them; stats read the loops' byte counts with relaxed loads. */
#ifndef RILL_CORE_STATE_H
#define RILL_CORE_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "rill/rill.h"
#include "state/table.h"
#include "util/buf.h"

#define RILL_STATE_BATCH_MAX 256 /* messages one rill__state_prepare call resolves */

typedef struct rill__state_loop {
    _Alignas(64) rill__state_table_t *tables; /* one per key group; NULL until first needed */
    unsigned groups;                          /* entries of tables */
    int track;                                /* log the keys each batch is given */
    uint64_t bytes;                           /* memory the loop's tables hold (relaxed atomics) */
    /* The keys handed to batches since rill__state_dirty_clear, when track is set: what a
     * standby copy must be told of (loop/group_moves.c). */
    uint64_t *dirty;
    size_t ndirty, capdirty;
    rill__buf_t chunk; /* the chunk being written (state/handoff.c), kept between calls */
} rill__state_loop_t;

typedef struct rill__state {
    uint32_t vsize;  /* value bytes, as registered */
    uint32_t stride; /* bytes of a table slot */
    unsigned nloops;
    rill__state_loop_t loops[];
} rill__state_t;

/* State for values of vsize bytes on nloops loops; NULL without memory. */
rill__state_t *rill__state_new(unsigned nloops, uint32_t vsize);
void rill__state_free(rill__state_t *s);

/* On loop `loop`, with `groups` key groups: stores in values[i] the value of v[i].key
 * (inserted, all zero, when new) for n <= RILL_STATE_BATCH_MAX messages. The pointers stay
 * valid until the loop's next call. When the number of groups changed, the loop's keys
 * are first filed under the new groups. Returns 0 or RILL_ENOMEM. */
int rill__state_prepare(rill__state_t *s, unsigned loop, unsigned groups, const rill_msg_t *v,
                        size_t n, void **values);

/* Files the loop's keys under `groups` groups (allocating its tables on the first call).
 * Returns 0 or RILL_ENOMEM. */
int rill__state_groups(rill__state_t *s, unsigned loop, unsigned groups);

/* rill_state_scan for loop `loop`. */
int rill__state_scan(rill__state_t *s, unsigned loop, uint64_t *cursor, uint64_t *keys,
                     void **values, size_t max);

/* The keys logged since the last clear (the loop's track flag on); may repeat. */
static inline const uint64_t *rill__state_dirty(const rill__state_t *s, unsigned loop, size_t *n)
{
    *n = s->loops[loop].ndirty;
    return s->loops[loop].dirty;
}
static inline void rill__state_dirty_clear(rill__state_t *s, unsigned loop)
{
    s->loops[loop].ndirty = 0;
}
/* Starts or stops logging the keys of loop's batches. */
void rill__state_track(rill__state_t *s, unsigned loop, int on);

/* The value of key on loop (NULL when it has none). */
void *rill__state_find(rill__state_t *s, unsigned loop, unsigned groups, uint64_t key);

/* Moves loop's values of group g from `from` into `to` (to's own values of g are
 * dropped): a standby copy becomes the state. Both must have the same value size. */
int rill__state_take_group(rill__state_t *to, rill__state_t *from, unsigned loop, unsigned g,
                           unsigned groups);

/* Forgets loop's values of group g. */
void rill__state_drop_group(rill__state_t *s, unsigned loop, unsigned g);

/* Memory every loop's tables hold (bytes). Any thread. */
uint64_t rill__state_bytes(const rill__state_t *s);

#endif
