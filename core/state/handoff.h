/* Moving a key group's managed state between members (docs/state.md#handoff): the
 * chunks a group's state travels in, and the frames a new owner parks until it arrives.
 * Pure data: the loop decides when (loop/group_moves.c), the peer link carries them.
 *
 * A chunk is a frame on a peer link with comp id RILL_CONTROL_COMP_ID and key
 * RILL_STATE_FRAME_KEY. Its payload, in the sender's byte order (members of a cluster
 * share an architecture; rill keeps values as the computation wrote them):
 *   u8 version (1), u8 flags, u16 epoch (the low 16 bits of the sender's view epoch),
 *   u32 comp_id, u32 group,
 *   u32 groups, u32 value_size, u32 n, then n entries: u64 key, value_size bytes.
 * A group's state is the chunks of every managed computation for it, then one END chunk
 * (comp_id 0, n 0): the receiver applies the group's frames only after the END.
 *
 * Chunks with RILL_CHUNK_STANDBY keep the group's standby copy on its second rendezvous
 * choice instead: a snapshot (BEGIN, chunks, END, all with STANDBY: the receiver drops the
 * copy it had at BEGIN and holds a whole one at END), then, as the owner's batches change
 * values, chunks of the values their keys have now (all zero: the key is gone). Those
 * changes carry RILL_CHUNK_MULTI: their entries are of every group the owner has with that
 * standby, each key filed under its own group (`group` is the first entry's), so that an
 * iteration's changes take one chunk rather than one per group. */
#ifndef RILL_CORE_STATE_HANDOFF_H
#define RILL_CORE_STATE_HANDOFF_H

#include <stddef.h>
#include <stdint.h>

#include "frame/control.h" /* RILL_STATE_FRAME_KEY */
#include "state/state.h"
#include "util/buf.h"

#define RILL_CHUNK_HDR 24u
#define RILL_CHUNK_END 0x01u
#define RILL_CHUNK_STANDBY 0x02u
#define RILL_CHUNK_BEGIN 0x04u
/* With END: "nothing here for this group" from a member in its first view, not a state. */
#define RILL_CHUNK_EMPTY 0x08u
/* A group's state sent from the sender's standby copy: it never ran the group, so a
 * receiver that kept values it ran itself (it joined again after a session expiry) keeps
 * those instead. */
#define RILL_CHUNK_COPY 0x10u
/* With STANDBY: changes whose entries are of several groups (see above). */
#define RILL_CHUNK_MULTI 0x20u

typedef struct rill__chunk {
    uint8_t flags;
    uint16_t epoch; /* the low bits of the sender's view epoch */
    uint32_t comp_id, group, groups, value_size, n;
    const uint8_t *entries; /* n * (8 + value_size) bytes */
} rill__chunk_t;

/* Parses a chunk's payload. Returns 0 or RILL_EINVAL (unknown version, a length that
 * does not match n entries, an END or BEGIN with entries). */
int rill__chunk_parse(const uint8_t *p, size_t len, rill__chunk_t *out);

/* The group a chunk's payload is for, and its flags (it must be at least RILL_CHUNK_HDR
 * long), so that the loop that read it can hand it to the group's loop without parsing
 * the rest. */
uint32_t rill__chunk_group(const uint8_t *p);
static inline unsigned rill__chunk_flags(const uint8_t *p)
{
    return p[1];
}

/* Called with each chunk payload to send; returns 0 or a negative error. */
typedef int (*rill__chunk_out)(void *ctx, const uint8_t *payload, uint32_t len);

/* Sends the values loop `loop` holds for group `group` (of `groups`) as chunks of at most
 * max bytes (>= RILL_CHUNK_HDR + one entry), then forgets them. Returns the keys sent, or
 * the first error of out (the values are forgotten all the same: they left or are lost).
 * Nothing is sent for a group the loop has no values for. */
long rill__state_ship(rill__state_t *s, unsigned loop, uint32_t comp_id, unsigned group,
                      unsigned groups, uint32_t max, unsigned epoch, rill__chunk_out out,
                      void *ctx);

/* Sends the values loop `loop` holds for group `group` as chunks with `flags` (a standby
 * snapshot), keeping them. Returns as rill__state_ship. */
long rill__state_copy(rill__state_t *s, unsigned loop, uint32_t comp_id, unsigned group,
                      unsigned groups, uint32_t max, unsigned flags, unsigned epoch,
                      rill__chunk_out out, void *ctx);

/* Sends the values keys[0..n) have now on loop (all zero for a key without one), keys of
 * any groups, as standby changes (RILL_CHUNK_STANDBY | RILL_CHUNK_MULTI). Returns as
 * rill__state_ship. */
long rill__state_send_keys(rill__state_t *s, unsigned loop, uint32_t comp_id, unsigned groups,
                           const uint64_t *keys, size_t n, uint32_t max, unsigned epoch,
                           rill__chunk_out out, void *ctx);

/* Writes a chunk without entries (END, BEGIN; with RILL_CHUNK_STANDBY or not) into p
 * (RILL_CHUNK_HDR bytes). */
void rill__chunk_mark(uint8_t *p, unsigned flags, unsigned group, unsigned groups, unsigned epoch);

/* Stores a chunk's values in loop's tables (a key already there takes the chunk's value),
 * each under its own group when the chunk has RILL_CHUNK_MULTI. Returns 0, RILL_EINVAL
 * (value size or number of groups differ from s and groups, or, without MULTI, a key of
 * another group) or RILL_ENOMEM. */
int rill__state_install(rill__state_t *s, unsigned loop, unsigned groups, const rill__chunk_t *c);

/* Frames of one group a new owner holds back until the group's state has arrived: v1
 * frames behind origin markers, as in the handoff stages. */
typedef struct rill__park {
    rill__buf_t buf;
    uint8_t origin;    /* of buf's last frame (RILL_ORIGINS: none yet) */
    uint8_t ready;     /* the END arrived, or the loop gave up waiting: replay buf */
    uint8_t lost;      /* gave up waiting: the group runs on without its state */
    uint8_t standby;   /* the old owner is gone and this loop holds the group's standby
                        * copy: a leaving owner's state may still come, else the copy
                        * takes over at the (short) deadline */
    uint8_t fence;     /* held back only because the member was fenced: no state to wait
                        * for, replayed when the fence lifts */
    uint64_t since_ns; /* when the loop began waiting */
    uint64_t frames;
} rill__park_t;

#endif
