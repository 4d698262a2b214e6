/* core/util/histogram.c: quantiles within 1/RILL_HIST_SUB, min/max/count/sum, merge, edges. */
#include "harness.h"
#include "histogram.h"

#include <math.h> /* NAN only: no libm needed */

static rill__hist_t g_h, g_h2; /* too big for comfortable stack use in every case */

/* The quantile estimate must be >= the exact value and within 1/SUB above it. */
static int within(uint64_t est, uint64_t exact)
{
    if (est < exact)
        return 0;
    return (double)(est - exact) <= (double)exact / RILL_HIST_SUB;
}

#define ASSERT_WITHIN(est, exact)                                                                  \
    do {                                                                                           \
        uint64_t e_ = (est), x_ = (exact);                                                         \
        if (!within(e_, x_))                                                                       \
            T_FAIL_AT_("%s = %llu not within 1/%u above %s = %llu", #est, (unsigned long long)e_,  \
                       RILL_HIST_SUB, #exact, (unsigned long long)x_);                             \
    } while (0)

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Exact quantile by the same rank rule: the sample of rank ceil(q * n). */
static uint64_t exact_q(const uint64_t *sorted, size_t n, double q)
{
    double r = q * (double)n;
    size_t rank = (size_t)r;
    if ((double)rank < r)
        rank++;
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return sorted[rank - 1];
}

static const double qs[] = {0.0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 0.9999, 1.0};

static int check_against_sorted(uint64_t *v, size_t n)
{
    rill__hist_init(&g_h);
    for (size_t i = 0; i < n; i++)
        rill__hist_record(&g_h, v[i]);
    qsort(v, n, sizeof v[0], cmp_u64);
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++)
        ASSERT_WITHIN(rill__hist_quantile(&g_h, qs[i]), exact_q(v, n, qs[i]));
    ASSERT_U64_EQ(g_h.count, n);
    ASSERT_U64_EQ(g_h.min, v[0]);
    ASSERT_U64_EQ(g_h.max, v[n - 1]);
    ASSERT_U64_EQ(rill__hist_quantile(&g_h, 0.0), v[0]);
    ASSERT_U64_EQ(rill__hist_quantile(&g_h, 1.0), v[n - 1]);
    return 0;
}

static int t_empty(void)
{
    rill__hist_init(&g_h);
    ASSERT_U64_EQ(g_h.count, 0);
    ASSERT_U64_EQ(g_h.sum, 0);
    ASSERT_U64_EQ(g_h.max, 0);
    ASSERT_U64_EQ(rill__hist_quantile(&g_h, 0.0), 0);
    ASSERT_U64_EQ(rill__hist_quantile(&g_h, 0.5), 0);
    ASSERT_U64_EQ(rill__hist_quantile(&g_h, 1.0), 0);
    /* Merging an empty histogram changes nothing, in either direction. */
    rill__hist_init(&g_h2);
    rill__hist_merge(&g_h, &g_h2);
    ASSERT_U64_EQ(g_h.count, 0);
    ASSERT_U64_EQ(rill__hist_quantile(&g_h, 0.99), 0);
    rill__hist_record(&g_h2, 77);
    rill__hist_merge(&g_h2, &g_h);
    ASSERT_U64_EQ(g_h2.count, 1);
    ASSERT_U64_EQ(g_h2.min, 77);
    ASSERT_U64_EQ(g_h2.max, 77);
    return 0;
}

static int t_zero(void)
{
    rill__hist_init(&g_h);
    for (int i = 0; i < 10; i++)
        rill__hist_record(&g_h, 0);
    ASSERT_U64_EQ(g_h.count, 10);
    ASSERT_U64_EQ(g_h.sum, 0);
    ASSERT_U64_EQ(g_h.min, 0);
    ASSERT_U64_EQ(g_h.max, 0);
    ASSERT_U64_EQ(rill__hist_quantile(&g_h, 0.5), 0);
    ASSERT_U64_EQ(rill__hist_quantile(&g_h, 0.999), 0);
    rill__hist_record(&g_h, 1000);
    ASSERT_U64_EQ(rill__hist_quantile(&g_h, 0.5), 0);
    ASSERT_U64_EQ(rill__hist_quantile(&g_h, 1.0), 1000);
    return 0;
}

/* Small values (below RILL_HIST_SUB, and up to 2 * SUB) are recorded exactly. */
static int t_small_exact(void)
{
    for (uint64_t v = 0; v < 2 * RILL_HIST_SUB; v++) {
        rill__hist_init(&g_h);
        rill__hist_record(&g_h, 0);
        rill__hist_record(&g_h, v);
        rill__hist_record(&g_h, 10000);
        ASSERT_U64_EQ(rill__hist_quantile(&g_h, 0.5), v);
    }
    return 0;
}

static int t_single_values_all_magnitudes(void)
{
    /* Every power of two, its neighbours and values inside each sub-bucket: a lone sample
     * is reported exactly (clamped to max), and in a crowd within 1/SUB. */
    for (int e = 0; e < 64; e++) {
        uint64_t p = (uint64_t)1 << e;
        uint64_t vals[] = {p - 1, p, p + 1, p + p / 3, p + p / 2 + 7, p | (p - 1)};
        for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
            uint64_t v = vals[i];
            rill__hist_init(&g_h);
            rill__hist_record(&g_h, v);
            ASSERT_U64_EQ(rill__hist_quantile(&g_h, 0.5), v);
            rill__hist_record(&g_h, UINT64_MAX);
            rill__hist_record(&g_h, UINT64_MAX);
            /* rank ceil(0.3 * 3) = 1: the bucket of v, reported as its upper bound */
            ASSERT_WITHIN(rill__hist_quantile(&g_h, 0.3), v);
        }
    }
    return 0;
}

static int t_huge(void)
{
    rill__hist_init(&g_h);
    rill__hist_record(&g_h, UINT64_MAX);
    ASSERT_U64_EQ(g_h.count, 1);
    ASSERT_U64_EQ(g_h.max, UINT64_MAX);
    ASSERT_U64_EQ(g_h.min, UINT64_MAX);
    ASSERT_U64_EQ(g_h.sum, UINT64_MAX);
    ASSERT_U64_EQ(g_h.buckets[RILL_HIST_BUCKETS - 1], 1);
    ASSERT_U64_EQ(rill__hist_quantile(&g_h, 0.5), UINT64_MAX);
    rill__hist_record(&g_h, UINT64_MAX - 1);
    rill__hist_record(&g_h, UINT64_MAX / 2 + 1); /* 2^63 */
    ASSERT_U64_EQ(g_h.count, 3);
    ASSERT_U64_EQ(g_h.sum, UINT64_MAX); /* saturated, not wrapped */
    ASSERT_U64_EQ(g_h.min, (uint64_t)1 << 63);
    ASSERT_WITHIN(rill__hist_quantile(&g_h, 0.1), (uint64_t)1 << 63);
    ASSERT_U64_EQ(rill__hist_quantile(&g_h, 1.0), UINT64_MAX);
    ASSERT_U64_EQ(rill__hist_quantile(&g_h, 0.9), UINT64_MAX);
    return 0;
}

static int t_count_sum_minmax(void)
{
    rill__hist_init(&g_h);
    uint64_t sum = 0;
    for (uint64_t v = 5; v <= 100000; v += 5) {
        rill__hist_record(&g_h, v);
        sum += v;
    }
    ASSERT_U64_EQ(g_h.count, 20000);
    ASSERT_U64_EQ(g_h.sum, sum);
    ASSERT_U64_EQ(g_h.min, 5);
    ASSERT_U64_EQ(g_h.max, 100000);
    uint64_t total = 0;
    for (unsigned i = 0; i < RILL_HIST_BUCKETS; i++)
        total += g_h.buckets[i];
    ASSERT_U64_EQ(total, 20000);
    return 0;
}

static int t_uniform(void)
{
    enum { N = 200000 };
    static uint64_t v[N];
    for (size_t i = 0; i < N; i++)
        v[i] = 1000 + rng() % 1000000;
    return check_against_sorted(v, N);
}

static int t_linear_ramp(void)
{
    enum { N = 100000 };
    static uint64_t v[N];
    for (size_t i = 0; i < N; i++)
        v[i] = i + 1;
    if (check_against_sorted(v, N))
        return 1;
    /* On a ramp 1..N, quantile q is about q * N. */
    ASSERT_WITHIN(rill__hist_quantile(&g_h, 0.5), 50000);
    ASSERT_WITHIN(rill__hist_quantile(&g_h, 0.99), 99000);
    ASSERT_WITHIN(rill__hist_quantile(&g_h, 0.999), 99900);
    return 0;
}

static int t_heavy_tail(void)
{
    /* Latency-like in ns: a 10 us floor plus a Pareto (alpha 1) tail reaching seconds. */
    enum { N = 200000 };
    static uint64_t v[N];
    for (size_t i = 0; i < N; i++) {
        double u = ((double)(rng() >> 11) + 0.5) * 0x1.0p-53;
        v[i] = 10000 + (uint64_t)(5000.0 / u);
    }
    return check_against_sorted(v, N);
}

static int t_log_uniform(void)
{
    /* Spread over every magnitude up to 2^64. */
    enum { N = 100000 };
    static uint64_t v[N];
    for (size_t i = 0; i < N; i++) {
        unsigned e = (unsigned)(rng() % 64);
        uint64_t r = rng();
        v[i] = e == 63 ? r | ((uint64_t)1 << 63)
                       : (r & ((((uint64_t)1) << (e + 1)) - 1)) | ((uint64_t)1 << e);
    }
    return check_against_sorted(v, N);
}

static int t_merge(void)
{
    enum { N = 100000 };
    static uint64_t v[2 * N];
    rill__hist_init(&g_h);
    rill__hist_init(&g_h2);
    for (size_t i = 0; i < 2 * N; i++) {
        /* Two different distributions: the merge must look like one histogram of both. */
        v[i] = i < N ? 100 + rng() % 10000 : 50000 + rng() % 5000000;
        rill__hist_record(i < N ? &g_h : &g_h2, v[i]);
    }
    uint64_t sum = g_h.sum + g_h2.sum;
    rill__hist_merge(&g_h, &g_h2);
    ASSERT_U64_EQ(g_h.count, 2 * N);
    ASSERT_U64_EQ(g_h.sum, sum);
    qsort(v, 2 * N, sizeof v[0], cmp_u64);
    ASSERT_U64_EQ(g_h.min, v[0]);
    ASSERT_U64_EQ(g_h.max, v[2 * N - 1]);
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++)
        ASSERT_WITHIN(rill__hist_quantile(&g_h, qs[i]), exact_q(v, 2 * N, qs[i]));

    /* Merging equals recording everything into one histogram, bucket for bucket. */
    static rill__hist_t one;
    rill__hist_init(&one);
    for (size_t i = 0; i < 2 * N; i++)
        rill__hist_record(&one, v[i]);
    ASSERT_U64_EQ(one.count, g_h.count);
    ASSERT_U64_EQ(one.sum, g_h.sum);
    ASSERT_MEM_EQ(one.buckets, g_h.buckets, sizeof one.buckets);
    return 0;
}

static int t_quantile_monotonic(void)
{
    rill__hist_init(&g_h);
    for (int i = 0; i < 50000; i++)
        rill__hist_record(&g_h, rng() >> (rng() % 64));
    uint64_t prev = 0;
    for (int i = 0; i <= 1000; i++) {
        uint64_t x = rill__hist_quantile(&g_h, i / 1000.0);
        ASSERT_U64_GE(x, prev);
        ASSERT_U64_LE(x, g_h.max);
        prev = x;
    }
    /* Out-of-range q clamps instead of misbehaving. */
    ASSERT_U64_EQ(rill__hist_quantile(&g_h, -1.0), g_h.min);
    ASSERT_U64_EQ(rill__hist_quantile(&g_h, 2.0), g_h.max);
    ASSERT_U64_EQ(rill__hist_quantile(&g_h, NAN), g_h.min);
    return 0;
}

static const t_case_t cases[] = {
    {"empty", t_empty},
    {"zero", t_zero},
    {"small_exact", t_small_exact},
    {"single_values_all_magnitudes", t_single_values_all_magnitudes},
    {"huge", t_huge},
    {"count_sum_minmax", t_count_sum_minmax},
    {"uniform", t_uniform},
    {"linear_ramp", t_linear_ramp},
    {"heavy_tail", t_heavy_tail},
    {"log_uniform", t_log_uniform},
    {"merge", t_merge},
    {"quantile_monotonic", t_quantile_monotonic},
    {NULL, NULL},
};

int main(int argc, char **argv)
{
    return t_run("histogram", cases, argc, argv);
}
