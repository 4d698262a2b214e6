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

#define RILL_STATE_BATCH_MAX 256 /* messages one rill__state_prepare call resolves */

typedef struct rill__state_loop {
    rill__state_table_t *tables; /* one per key group; NULL until the loop's first batch */
    unsigned groups;             /* entries of tables */
    uint64_t bytes;              /* memory the loop's tables hold (relaxed atomics) */
    char pad[64 - sizeof(void *) - sizeof(unsigned) - 4 - sizeof(uint64_t)];
} rill__state_loop_t;
_Static_assert(sizeof(rill__state_loop_t) == 64, "a loop's state header is one cache line");

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

/* Memory every loop's tables hold (bytes). Any thread. */
uint64_t rill__state_bytes(const rill__state_t *s);

#endif
