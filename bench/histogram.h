/* Log-linear latency histogram: values (e.g. nanoseconds) fall into power-of-two ranges,
 * each split into RILL_HIST_SUB linear sub-buckets, so any recorded value is reported
 * within 1/RILL_HIST_SUB (about 3 %) of itself at any magnitude, in fixed memory.
 * Not thread-safe: keep one per thread and merge. */
#ifndef RILL_BENCH_HISTOGRAM_H
#define RILL_BENCH_HISTOGRAM_H

#include <stddef.h>
#include <stdint.h>

#define RILL_HIST_SUB_BITS 5
#define RILL_HIST_SUB (1u << RILL_HIST_SUB_BITS)
#define RILL_HIST_BUCKETS ((64 - RILL_HIST_SUB_BITS + 1) * RILL_HIST_SUB)

typedef struct rill__hist {
    uint64_t count;
    uint64_t sum;
    uint64_t min;
    uint64_t max;
    uint64_t buckets[RILL_HIST_BUCKETS];
} rill__hist_t;

void rill__hist_init(rill__hist_t *h);
void rill__hist_record(rill__hist_t *h, uint64_t value);
/* Adds every sample of src into dst. */
void rill__hist_merge(rill__hist_t *dst, const rill__hist_t *src);
/* Returns the value at quantile q (0..1): an upper bound of the bucket holding it, never
 * above the recorded maximum. 0 when empty. */
uint64_t rill__hist_quantile(const rill__hist_t *h, double q);

#endif /* RILL_BENCH_HISTOGRAM_H */
