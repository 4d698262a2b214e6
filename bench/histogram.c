/* Log-linear histogram. Values below RILL_HIST_SUB each have their own bucket; above that,
 * a value v with highest set bit e lands in group (e - SUB_BITS + 1), whose RILL_HIST_SUB
 * buckets are 2^(e - SUB_BITS) wide. A bucket's width is thus at most 1/RILL_HIST_SUB of
 * its lower bound, which is the promised relative error. UINT64_MAX lands in the last
 * bucket, RILL_HIST_BUCKETS - 1. */
#include "histogram.h"

#include <string.h>

static inline unsigned hist_index(uint64_t v)
{
    if (v < RILL_HIST_SUB)
        return (unsigned)v;
    unsigned shift = (unsigned)(63 - __builtin_clzll(v)) - RILL_HIST_SUB_BITS;
    /* (shift + 1) * SUB + (v >> shift) - SUB, folded. */
    return (shift << RILL_HIST_SUB_BITS) + (unsigned)(v >> shift);
}

/* Largest value that falls into bucket i. */
static uint64_t hist_upper(unsigned i)
{
    if (i < RILL_HIST_SUB)
        return i;
    unsigned shift = (i >> RILL_HIST_SUB_BITS) - 1;
    uint64_t mant = (uint64_t)(i & (RILL_HIST_SUB - 1)) + RILL_HIST_SUB + 1;
    /* The last bucket's bound is 2^64 - 1: the shift would overflow, so say it outright. */
    if (shift + RILL_HIST_SUB_BITS + 1 >= 64 && mant == 2 * RILL_HIST_SUB)
        return UINT64_MAX;
    return (mant << shift) - 1;
}

void rill__hist_init(rill__hist_t *h)
{
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

void rill__hist_record(rill__hist_t *h, uint64_t value)
{
    h->buckets[hist_index(value)]++;
    h->count++;
    /* The sum saturates rather than wrapping: a mean from a wrapped sum would be nonsense. */
    uint64_t s = h->sum + value;
    h->sum = s < value ? UINT64_MAX : s;
    if (value < h->min)
        h->min = value;
    if (value > h->max)
        h->max = value;
}

void rill__hist_merge(rill__hist_t *dst, const rill__hist_t *src)
{
    if (src->count == 0)
        return;
    for (unsigned i = 0; i < RILL_HIST_BUCKETS; i++)
        dst->buckets[i] += src->buckets[i];
    dst->count += src->count;
    uint64_t s = dst->sum + src->sum;
    dst->sum = s < src->sum ? UINT64_MAX : s;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t rill__hist_quantile(const rill__hist_t *h, double q)
{
    if (h->count == 0)
        return 0;
    if (!(q > 0))
        return h->min; /* also catches NaN */
    if (q >= 1)
        return h->max;
    /* The sample of rank ceil(q * count), 1-based. */
    double r = q * (double)h->count;
    uint64_t rank = (uint64_t)r;
    if ((double)rank < r)
        rank++;
    if (rank < 1)
        rank = 1;
    if (rank > h->count)
        rank = h->count;
    uint64_t seen = 0;
    for (unsigned i = 0; i < RILL_HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t v = hist_upper(i);
            if (v > h->max)
                v = h->max;
            if (v < h->min)
                v = h->min;
            return v;
        }
    }
    return h->max;
}
