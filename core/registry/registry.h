/* Computation registry: computation id -> entry, read lock-free by loop threads.
 *
 * A ck_hs in SPMC mode (one writer at a time, serialized by a mutex; any number of
 * readers without locks). Readers bracket their lookups with rill__registry_enter/exit
 * (a ck_epoch section); entries and replaced tables are freed only once no reader can
 * still hold them. An entry's release callback runs exactly once, on the thread that
 * unregisters it (or destroys the registry), after every reader has left the sections
 * that could have seen it. */
#ifndef RILL_CORE_REGISTRY_H
#define RILL_CORE_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "rill/rill.h"
#include "state/state.h"

/* Upper bounds of the batch time buckets in ns (inclusive), UINT64_MAX for the last one
 * and beyond: the table behind rill_batch_bucket_le_ns. */
extern const uint64_t rill__batch_le_ns[32];

/* Per-loop counters of one computation, on cache lines of their own (3): each loop
 * writes only its own slot (relaxed atomics), a stats snapshot sums the slots. */
typedef struct rill__comp_counters {
    uint64_t msgs;
    uint64_t batches;
    uint64_t errors;
    uint64_t batch_ns;
    uint64_t buckets[RILL_BATCH_BUCKETS]; /* not cumulative */
} rill__comp_counters_t;
_Static_assert(sizeof(rill__comp_counters_t) % 64 == 0, "counter slots fill whole cache lines");

typedef struct rill__comp {
    uint32_t id;
    char *name; /* NUL-terminated copy; "" when none was given */
    rill_comp_ops_t ops;
    uintptr_t ctx;
    unsigned flags;                  /* RILL_COMP_* given at registration */
    rill__comp_counters_t *counters; /* nreaders slots */
    /* A managed computation (rill_comp_register_state): its batch callback and its state;
     * ops.batch is then NULL. */
    rill_state_batch_cb state_batch;
    rill__state_t *state;
    rill__state_t *standby; /* the copies this member keeps of other members' groups */
} rill__comp_t;

typedef struct rill__registry rill__registry_t;

/* Creates a registry whose readers are numbered 0..nreaders-1 (one per loop thread).
 * Returns 0 or RILL_ENOMEM / RILL_EINVAL. */
int rill__registry_new(rill__registry_t **out, unsigned nreaders);

/* Releases every remaining entry (release callbacks run here) and frees r. No reader may
 * be inside a section. */
void rill__registry_destroy(rill__registry_t *r);

/* Adds an entry. Returns 0, RILL_EEXIST, RILL_EINVAL (ops or ops->batch NULL) or RILL_ENOMEM
 * (then ctx was not taken). Any thread; serialized with other writers. */
int rill__registry_add(rill__registry_t *r, uint32_t id, const char *name,
                       const rill_comp_ops_t *ops, uintptr_t ctx);
/* The same, with RILL_COMP_* flags (RILL_EINVAL for an unknown bit). */
int rill__registry_add_flags(rill__registry_t *r, uint32_t id, const char *name,
                             const rill_comp_ops_t *ops, uintptr_t ctx, unsigned flags);

/* Adds a managed computation whose values take vsize bytes (1..RILL_STATE_VALUE_MAX).
 * Returns as rill__registry_add. */
int rill__registry_add_state(rill__registry_t *r, uint32_t id, const char *name,
                             const rill_state_ops_t *ops, uintptr_t ctx, uint32_t vsize);

/* Memory the managed state of every registered computation holds (bytes). Any thread. */
uint64_t rill__registry_state_bytes(rill__registry_t *r);

/* Removes id, waits until no reader can still use the entry, runs its release callback
 * on this thread and frees it. Returns 0 or RILL_ENOENT. Must not be called by a thread
 * that is inside a reader section (it would wait for itself). */
int rill__registry_remove(rill__registry_t *r, uint32_t id);

/* Reader section for reader i: every pointer returned by lookup or list is valid until
 * the matching exit. Sections are cheap (no atomic read-modify-write) and must be short:
 * writers wait for them. */
void rill__registry_enter(rill__registry_t *r, unsigned reader);
void rill__registry_exit(rill__registry_t *r, unsigned reader);

/* Returns the entry for id or NULL. Only inside a section. Lock-free. */
const rill__comp_t *rill__registry_lookup(rill__registry_t *r, uint32_t id);

/* Returns a consistent snapshot of all entries as an array of *count pointers (for flush
 * callbacks). Only inside a section; the array is valid until exit. */
const rill__comp_t *const *rill__registry_list(rill__registry_t *r, size_t *count);

/* Counts one batch of msgs messages that took ns nanoseconds (errors = messages of it that
 * failed, 0 when the batch succeeded) in reader `reader`'s counters of comp (only that
 * reader's thread calls this). */
void rill__comp_count(const rill__comp_t *comp, unsigned reader, uint64_t msgs, uint64_t errors,
                      uint64_t ns);

/* Copies the ids of up to max registered computations, in registration order, into ids[]
 * (may be NULL when max is 0). Returns how many are registered (which may exceed max).
 * Taken under the writer mutex, which is never held while waiting for readers: any
 * thread, also one inside a reader section. */
size_t rill__registry_ids(rill__registry_t *r, uint32_t *ids, size_t max);

/* Sums id's counters (the batch time histogram too) over readers, and copies its name (cut
 * to 63 bytes). Returns 0,
 * RILL_ENOENT or RILL_EINVAL. Any thread. */
int rill__registry_stats(rill__registry_t *r, uint32_t id, rill_comp_stats_t *out);

/* Waits until every reader section that began before the call has ended: afterwards,
 * memory that readers could only reach through a pointer replaced before the call may be
 * freed (cluster views use this). Not from inside a section. */
void rill__registry_wait_readers(rill__registry_t *r);

#endif /* RILL_CORE_REGISTRY_H */
