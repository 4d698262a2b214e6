#include "ring/ring.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "rill/rill.h"

#define RING_ENTRIES 1024
#define CQ_ENTRIES 8192

int rill__ring_setup(rill__ring_t *r)
{
    /* SINGLE_ISSUER + DEFER_TASKRUN: completions run only when this thread asks, which
     * batches task work and avoids IPIs; older kernels refuse the flags, so fall back. */
    static const unsigned flag_sets[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL,
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL,
        0,
    };
    int rc = -EINVAL;
    for (size_t i = 0; i < sizeof flag_sets / sizeof flag_sets[0]; i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof p);
        p.flags = flag_sets[i] | IORING_SETUP_CQSIZE;
        p.cq_entries = CQ_ENTRIES;
        rc = io_uring_queue_init_params(RING_ENTRIES, &r->uring, &p);
        if (rc == 0)
            break;
        if (rc != -EINVAL)
            return rc;
    }
    if (rc < 0)
        return rc;
    r->ready = 1;

    /* liburing 2.3 has no io_uring_setup_buf_ring: map, init, register by hand. */
    r->nbufs = RILL_BUF_COUNT;
    r->buf_size = RILL_BUF_SIZE;
    r->br_len = (size_t)r->nbufs * sizeof(struct io_uring_buf);
    void *br = mmap(NULL, r->br_len, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (br == MAP_FAILED)
        return -errno;
    r->br = br;
    io_uring_buf_ring_init(r->br);
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (uint64_t)(uintptr_t)r->br;
    reg.ring_entries = r->nbufs;
    reg.bgid = RILL_BUF_GROUP;
    rc = io_uring_register_buf_ring(&r->uring, &reg, 0);
    if (rc < 0)
        return rc == -EINVAL ? RILL_EUNSUPPORTED : rc;
    r->bufs = aligned_alloc(4096, (size_t)r->nbufs * r->buf_size);
    if (!r->bufs)
        return RILL_ENOMEM;
    unsigned mask = io_uring_buf_ring_mask(r->nbufs);
    for (unsigned i = 0; i < r->nbufs; i++)
        io_uring_buf_ring_add(r->br, rill__ring_buffer(r, i), r->buf_size, (unsigned short)i,
                              (int)mask, (int)i);
    io_uring_buf_ring_advance(r->br, (int)r->nbufs);
    return 0;
}

void rill__ring_teardown(rill__ring_t *r)
{
    if (r->ready) {
        if (r->br)
            io_uring_unregister_buf_ring(&r->uring, RILL_BUF_GROUP);
        io_uring_queue_exit(&r->uring);
        r->ready = 0;
    }
    if (r->br)
        munmap(r->br, r->br_len);
    r->br = NULL;
    free(r->bufs);
    r->bufs = NULL;
}

struct io_uring_sqe *rill__ring_sqe(rill__ring_t *r)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->uring);
    while (!sqe) {
        /* SQ full: submit what is queued (completions are not reaped here). */
        io_uring_submit(&r->uring);
        sqe = io_uring_get_sqe(&r->uring);
    }
    return sqe;
}

void rill__ring_cancel(rill__ring_t *r, uint64_t ud)
{
    struct io_uring_sqe *sqe = rill__ring_sqe(r);
    io_uring_prep_cancel64(sqe, ud, 0);
    io_uring_sqe_set_data64(sqe, RILL_UD(RILL_OP_CANCEL, 0, 0));
}
