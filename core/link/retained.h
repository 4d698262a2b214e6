/* The retained stream of an acked link (its places are described in acked.h): the FIFO of
 * chunks, the marks that let head and the credit's windows move without stepping over
 * frames, and the spare buffers pend takes. Pure bookkeeping over memory: no I/O, no
 * counters. Shared by the files of link/ only; rill__acked_mark_pend,
 * rill__acked_clear_pend_marks and rill__acked_trim (acked.h) are here too. */
#ifndef RILL_CORE_LINK_RETAINED_H
#define RILL_CORE_LINK_RETAINED_H

#include "link/acked.h"

/* Marks are RILL_RET_MARK_STEP apart in pend (see rill__ret_mark_pend). */
#define RILL_RET_MARK_STEP (64u << 10)

/* Chunk i of the retained stream, 0 the oldest. */
static inline rill__ret_chunk_t *rill__ret_chunk(const rill__acked_t *a, unsigned i)
{
    return &a->q[(a->q0 + i) & (a->qcap - 1)];
}

/* Frees everything the stream holds (chunks, spares, limbo). */
void rill__ret_free(rill__acked_t *a);

/* Moves head over whole chunks, then to the last mark that acknowledged frames reach. */
void rill__ret_advance_head(rill__acked_t *a);
/* Moves head to the exact place after the last acknowledged frame. */
void rill__ret_settle_head(rill__acked_t *a);
/* Takes in what the receiver acknowledged, as far as this connection sent it wholly, and
 * releases the chunks it covers. */
void rill__ret_take_acks(rill__acked_t *a);
/* Sending starts over at head (a new connection). */
void rill__ret_rewind(rill__acked_t *a);
/* A send of [snd, win) completed wholly: snd moves there and records a mark. */
void rill__ret_sent(rill__acked_t *a);

/* Between sends, once everything retained was sent: pend becomes the next chunk (its
 * buffer, not a copy), or joins the newest one when it is small. */
void rill__ret_refill(rill__link_t *k);
/* The next window to send from snd, within the credit: returns its bytes (0 when the
 * credit allows none) and sets win_pos/win_seq to its end. A window never crosses a
 * chunk's end. */
size_t rill__ret_window(rill__acked_t *a);

/* Appends [pos, end) to r (pos a frame boundary, seq seq); returns 0 or RILL_ENOMEM. */
int rill__ret_copy_from(const rill__acked_t *a, uint64_t pos, uint64_t seq, rill__buf_t *r);
/* Cuts the stream at pos (a frame boundary, seq seq): what lies past it is gone. A chunk
 * buffer the send in flight reads (in_flight) waits in limbo until the link is released. */
void rill__ret_cut(rill__acked_t *a, uint64_t pos, uint64_t seq, int in_flight);

#endif
