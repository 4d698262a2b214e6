/* shim.h — the C side of the Go binding: the rill_comp_ops_t that every Go computation is
 * registered with, and the per-loop scratch buffer through which Go emits. Not public. */
#ifndef RILL_GO_SHIM_H
#define RILL_GO_SHIM_H

#include <stddef.h>
#include <stdint.h>

#include <rill/rill.h>

/* One emit recorded by Go during a callback; replayed by the shim after Go returns. */
typedef struct rillgo_rec {
    uint64_t key;
    uint32_t comp_id; /* the frame's computation id */
    int32_t sink;     /* sink index, or -1: to computation comp_id (rill_emit_comp) */
    uint32_t off;     /* payload offset in the scratch data area */
    uint32_t len;     /* payload bytes */
} rillgo_rec_t;

/* One per loop of a worker, C memory (Go writes into it, C reads it; no Go pointers). */
typedef struct rillgo_scratch {
    rillgo_rec_t *recs;
    uint8_t *data;
    uint32_t nrec; /* records written by Go in this call */
    uint32_t caprec;
    uint32_t cap;        /* bytes in data */
    int rc;              /* the Go computation's result for this call */
    uint64_t *scan_keys; /* RILLGO_SCAN keys and values for one rill_state_scan */
    void **scan_values;
} rillgo_scratch_t;

#define RILLGO_SCAN 256

/* Returns n scratch buffers (one per loop), or NULL when out of memory. */
rillgo_scratch_t *rillgo_scratch_new(unsigned n, uint32_t caprec, uint32_t cap);
void rillgo_scratch_free(rillgo_scratch_t *s, unsigned n);

/* Replays s->recs[0..nrec) through em in order and empties s. Returns 0 or the first
 * error other than RILL_EFULL (a full sink drops the frame and counts it in sink_dropped). */
int rillgo_replay(rillgo_scratch_t *s, rill_emitter_t *em);

/* One emit straight from (Go) memory, for payloads larger than the scratch area. */
int rillgo_emit(rill_emitter_t *em, int32_t sink, uint32_t comp_id, uint64_t key, const void *data,
                size_t len);

/* rill_worker_new, then rill_last_error() copied into detail (same thread: one cgo call). */
int rillgo_worker_new(rill_worker_t **out, const rill_config_t *cfg, char *detail, size_t len);

/* Sends the library's log lines to the Go side (rillgoLog). */
void rillgo_set_log_callback(void);

/* Registers handle h under id with the Go ops (with or without a flush callback) and
 * RILL_COMP_* flags. */
int rillgo_register(rill_worker_t *w, uint32_t id, const char *name, uintptr_t h, int with_flush,
                    unsigned flags);

/* Registers handle h under id as a computation with managed state of vsize bytes per
 * key (rill_comp_register_state). */
int rillgo_register_state(rill_worker_t *w, uint32_t id, const char *name, uintptr_t h,
                          int with_flush, uint32_t vsize);

/* Benchmark hook: calls the Go batch callback of handle h `iters` times with the same
 * batch, on the calling thread (new_thread = 0) or on a new pthread (new_thread = 1).
 * Returns elapsed nanoseconds, or a negative value on failure. */
int64_t rillgo_bench_calls(uintptr_t h, const rill_msg_t *msgs, size_t n, int64_t iters,
                           int new_thread);

#endif
