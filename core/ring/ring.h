/* One loop's io_uring: set-up with the fastest flags the kernel accepts, the provided
 * buffer ring that multishot recv fills, SQE access, and the user_data encoding every
 * completion carries.
 *
 * Owned by one thread: with SINGLE_ISSUER only the thread that created the ring may
 * submit to it, so rill__ring_setup runs on the loop's own thread. */
#ifndef RILL_CORE_RING_H
#define RILL_CORE_RING_H

#include <liburing.h>
#include <stddef.h>
#include <stdint.h>

/* A small buffer ring sized for the cache, not for the peak: a kernel that always finds
 * buffers keeps pulling data the loop then parses cold. -ENOBUFS is ordinary backpressure.
 * Overridable at compile time (-DRILL_BUF_COUNT=.. -DRILL_BUF_SIZE=..) for experiments:
 * 16 x 64 KiB and 32 x 32 KiB measured within noise of this default on 2 cores. */
#ifndef RILL_BUF_COUNT
#define RILL_BUF_COUNT 64
#endif
#ifndef RILL_BUF_SIZE
#define RILL_BUF_SIZE (16u * 1024u)
#endif
#define RILL_BUF_GROUP 1

/* user_data: op (8 bits) | index (24 bits) | generation (32 bits). The generation lets
 * a completion for an earlier use of a slot be recognised and ignored. */
enum {
    RILL_OP_ACCEPT = 1,
    RILL_OP_RECV,
    RILL_OP_CANCEL,
    RILL_OP_EFD,
    RILL_OP_LINK_CONNECT,
    RILL_OP_LINK_SEND,
    RILL_OP_LINK_HUP,
    RILL_OP_LINK_RECV,
    RILL_OP_CONN_SEND, /* control frames to an acked source (WELCOME, ACK, GOAWAY) */
};
#define RILL_UD(op, idx, gen) (((uint64_t)(op) << 56) | ((uint64_t)(idx) << 32) | (uint32_t)(gen))
#define RILL_UD_OP(ud) ((unsigned)((ud) >> 56))
#define RILL_UD_IDX(ud) ((unsigned)(((ud) >> 32) & 0xffffffu))
#define RILL_UD_GEN(ud) ((uint32_t)(ud))

typedef struct rill__ring {
    struct io_uring uring;
    int ready;
    struct io_uring_buf_ring *br;
    uint8_t *bufs;
    unsigned nbufs, buf_size;
    size_t br_len;
} rill__ring_t;

/* Creates the ring and registers its provided buffers, on the calling thread. Returns 0,
 * -errno (e.g. -EPERM where io_uring is forbidden), RILL_EUNSUPPORTED (no provided
 * buffer rings) or RILL_ENOMEM. On failure call rill__ring_teardown. */
int rill__ring_setup(rill__ring_t *r);
void rill__ring_teardown(rill__ring_t *r);

/* An SQE to fill; when the SQ is full, what is queued is submitted first. Never NULL. */
struct io_uring_sqe *rill__ring_sqe(rill__ring_t *r);

/* Queues a cancel of the operation with user_data ud; its own completion is ignored. */
void rill__ring_cancel(rill__ring_t *r, uint64_t ud);

/* Provided buffer bid's memory. */
static inline uint8_t *rill__ring_buffer(const rill__ring_t *r, unsigned bid)
{
    return r->bufs + (size_t)bid * r->buf_size;
}

/* Gives buffer bid back to the kernel. */
static inline void rill__ring_return_buffer(rill__ring_t *r, unsigned bid)
{
    io_uring_buf_ring_add(r->br, rill__ring_buffer(r, bid), r->buf_size, (unsigned short)bid,
                          (int)io_uring_buf_ring_mask(r->nbufs), 0);
    io_uring_buf_ring_advance(r->br, 1);
}

#endif
