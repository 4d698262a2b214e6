/* One loop's side of the cross-loop handoff: per-destination staging in front of the
 * SPSC rings it produces into, and the decoding of the rings it consumes.
 *
 * A frame whose key another loop owns is encoded once into stage[dst]; once per
 * iteration the stages are pushed into the rings (what does not fit waits for the next
 * push) and each destination that got bytes is woken once. The consumer reads a ring in
 * steps of contiguous bytes and decodes them like a socket stream: a frame cut by the
 * end of a step or by the ring's wrap waits in the source's decoder carry. Every staged
 * byte is counted in the worker's inflight total until its consumer has processed it,
 * which is how the drain knows that nothing is in flight anywhere.
 *
 * Every frame has an origin: 0 for frames from sources, d for frames that made d member
 * hops (util/limits.h, RILL_PEER_DEPTHS), and RILL_ORIGIN_LAST also for what flush emits.
 * It says which peer links running the frame may wait on (those one depth deeper, none
 * for the last origin): core/loop/ack_barriers.c keeps the origins apart so that members
 * never wait on each other in a circle. A stage writes a marker frame
 * (RILL_CONTROL_COMP_ID, key = the origin, no payload) where the origin of the frames it
 * carries changes; the consumer's dispatch reads it as the origin of what follows. Frames
 * are counted per origin; markers are not counted. */
#ifndef RILL_CORE_STAGE_H
#define RILL_CORE_STAGE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "frame/frame.h"
#include "handoff/spsc.h"
#include "util/buf.h"
#include "util/limits.h"

enum {
    RILL_ORIGIN_SOURCE = 0,
    RILL_ORIGIN_LAST = RILL_PEER_DEPTHS, /* waits on no member: flush output too */
    RILL_ORIGINS = RILL_PEER_DEPTHS + 1
};

/* The depth of the peer link that frames of origin o travel on to another member. */
static inline unsigned rill__origin_link_depth(unsigned o)
{
    return o < RILL_PEER_DEPTHS ? o + 1 : RILL_PEER_DEPTHS;
}

typedef struct rill__handoff {
    unsigned self, n;        /* this loop, loops in the worker */
    rill__spsc_t **out;      /* out[d]: this loop's ring to loop d */
    rill__spsc_t **in;       /* in[s]: loop s's ring to this loop */
    rill__decoder_t *in_dec; /* in_dec[s]: frames cut by a step of in[s] */
    rill__buf_t *stage;      /* stage[d]: frames for loop d not yet in out[d] */
    atomic_llong *inflight;  /* the worker's bytes handed over, not yet processed */
    /* out_frames[d * RILL_ORIGINS + o]: frames of origin o staged for loop d since the
     * start; in_frames[s * RILL_ORIGINS + o]: those of loop s's ring that ran here (the
     * loop counts them). */
    uint64_t *out_frames, *in_frames;
    uint8_t *stage_origin; /* stage_origin[d]: origin of the last frame staged for loop d */
    uint8_t *in_origin;    /* in_origin[s]: origin of what follows in loop s's ring */
    uint64_t *dropped;     /* frames dropped for lack of memory (handoff_dropped) */
    /* The step being read (rill__handoff_begin .. rill__handoff_end). */
    const uint8_t *step;
    size_t step_len, step_pos;
} rill__handoff_t;

/* Sets up loop self's side of the n x n rings (rings[src * n + dst]). Returns 0 or
 * RILL_ENOMEM. */
int rill__handoff_init(rill__handoff_t *h, unsigned self, unsigned n, rill__spsc_t *rings,
                       atomic_llong *inflight, uint64_t *dropped);
void rill__handoff_free(rill__handoff_t *h);

/* Appends one v1 frame of origin `origin` to b, behind a marker when *last (the origin of
 * b's last frame, updated) differs. Returns the bytes appended, or RILL_ENOMEM. The
 * stages use it, and so does the emit_comp queue. */
long rill__origin_put(rill__buf_t *b, uint8_t *last, unsigned origin, uint32_t comp_id,
                      uint64_t key, const void *data, uint32_t len);

/* Appends one v1 frame of origin `origin` for loop dst to its stage (behind a marker
 * when the origin changes). Returns 0, or RILL_ENOMEM when the stage cannot grow (the
 * frame is dropped and counted). comp_id is never RILL_CONTROL_COMP_ID. */
int rill__handoff_stage(rill__handoff_t *h, unsigned dst, unsigned origin, uint32_t comp_id,
                        uint64_t key, const void *data, uint32_t len);

/* Moves staged bytes into the rings, and calls wake(ctx, dst) once for each destination
 * that received bytes. */
void rill__handoff_push(rill__handoff_t *h, void (*wake)(void *ctx, unsigned dst), void *ctx);

/* Bytes staged for all destinations, and for the fullest one. */
size_t rill__handoff_staged(const rill__handoff_t *h, size_t *largest);

/* Reading ring src: begin takes the next step of at most max bytes (returns its length,
 * 0 when the ring is empty); next decodes up to cap views of it (0 when the step is
 * used up; the views stay valid until the next call); end releases the step. */
size_t rill__handoff_begin(rill__handoff_t *h, unsigned src, size_t max);
size_t rill__handoff_next(rill__handoff_t *h, unsigned src, rill_msg_t *views, size_t cap);
void rill__handoff_end(rill__handoff_t *h, unsigned src);

/* Bytes waiting in ring src (a snapshot). */
static inline size_t rill__handoff_waiting(const rill__handoff_t *h, unsigned src)
{
    return rill__spsc_used(h->in[src]);
}

#endif
