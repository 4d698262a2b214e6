/* Barriers: when what a loop did with a frame is safe, so that the frame may be
 * acknowledged to its sender.
 *
 * A frame's effects leave the process over acked links (sinks today), which keep every
 * frame until the receiver acknowledges it. Each such output counts two monotonic
 * figures: frames given to it (appended) and frames the receiver acknowledged (safe).
 * A barrier is a snapshot of every output's appended figure, taken at the end of an
 * iteration in which acked inputs advanced, after the frames they brought ran; it is
 * complete once every output's safe figure has reached the snapshot. Snapshots only grow,
 * so barriers complete in the order they were taken and "every barrier up to id is
 * complete" is one number.
 *
 * Each acked input keeps a short FIFO of (barrier id, highest seq it had processed when
 * that barrier was taken). When the barrier completes, every frame through that seq is
 * safe. Both structures are bounded: a full ring widens its newest barrier instead of
 * taking a new one, and a full FIFO moves its newest entry forward; either only delays
 * an acknowledgement, never makes one early.
 *
 * Pure data structures of one thread; the loop decides what the outputs are. */
#ifndef RILL_CORE_BARRIER_H
#define RILL_CORE_BARRIER_H

#include <stddef.h>
#include <stdint.h>

typedef struct rill__barriers {
    unsigned width;       /* outputs per snapshot */
    unsigned cap;         /* barriers in the ring */
    uint64_t *snap;       /* cap x width appended figures */
    uint64_t *taken_at;   /* cap: when each was taken (ns), for the wait figures */
    uint8_t *sealed;      /* cap: the snapshot is complete (see rill__barriers_seal) */
    uint64_t first, next; /* ids in the ring: [first, next); the first id is 1 */
} rill__barriers_t;

/* Returns 0 or -1 (no memory). */
int rill__barriers_init(rill__barriers_t *b, unsigned width, unsigned cap);
void rill__barriers_free(rill__barriers_t *b);

/* Non-zero when a barrier waits for completion. */
static inline int rill__barriers_pending(const rill__barriers_t *b)
{
    return b->first < b->next;
}

/* Every barrier with an id up to this one is complete (0: none yet). */
static inline uint64_t rill__barriers_done(const rill__barriers_t *b)
{
    return b->first - 1;
}

/* Takes a barrier: appended[0..width) are the outputs' figures now. sealed says whether
 * they are the whole snapshot; when not, rill__barriers_seal_all completes it later (a figure
 * that is only known once other threads are quiet). Returns its id. When the ring is
 * full, the newest barrier is widened to these figures and its id returned. */
uint64_t rill__barriers_take(rill__barriers_t *b, const uint64_t *appended, int sealed,
                             uint64_t now);

/* Other threads were seen quiet: every pending barrier was taken before, so floor
 * (width figures read after that moment) completes their snapshots. Each figure is
 * raised to the floor's, and every pending barrier is sealed. */
void rill__barriers_seal_all(rill__barriers_t *b, const uint64_t *floor);

/* Frames that pending barriers counted were handed back and appended again elsewhere
 * (a member left): raises every pending barrier's figures to floor (the outputs' figures
 * now), and with unseal, makes them wait for a new floor (rill__barriers_seal_all). */
void rill__barriers_widen_all(rill__barriers_t *b, const uint64_t *floor, int unseal);

/* Non-zero when some pending barrier is not sealed yet. */
int rill__barriers_unsealed(const rill__barriers_t *b);

/* Completes the sealed barriers whose snapshot safe[0..width) reaches, oldest first;
 * adds each one's wait (now - taken) to *wait_ns and one to *count. Returns the new
 * rill__barriers_done. */
uint64_t rill__barriers_complete(rill__barriers_t *b, const uint64_t *safe, uint64_t now,
                                 uint64_t *wait_ns, uint64_t *count);

/* ------------------------------------------------------------------ acked inputs */

#define RILL_ACKQ_LEN 16

typedef struct rill__ackq {
    uint64_t processed; /* highest seq that ran */
    uint64_t noted;     /* highest seq a barrier covers */
    uint64_t safe;      /* highest seq whose effects are safe */
    unsigned head, n;
    struct {
        uint64_t id, seq;
    } e[RILL_ACKQ_LEN];
} rill__ackq_t;

/* Starts q with everything through seq counted as safe. */
void rill__ackq_reset(rill__ackq_t *q, uint64_t seq);

/* Non-zero when q has frames that ran and are not yet covered by a barrier. */
static inline int rill__ackq_unnoted(const rill__ackq_t *q)
{
    return q->processed > q->noted;
}

/* Non-zero when q waits for barriers or has frames no barrier covers yet. */
static inline int rill__ackq_busy(const rill__ackq_t *q)
{
    return q->n || q->processed > q->noted;
}

/* Barrier id was taken: everything q processed so far waits for it. */
void rill__ackq_note(rill__ackq_t *q, uint64_t id);

/* Barriers up to done are complete: moves q->safe forward. Returns non-zero when it moved. */
int rill__ackq_advance(rill__ackq_t *q, uint64_t done);

#endif
