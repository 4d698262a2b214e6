/* core/loop/handoff.c: the single-producer single-consumer byte ring between loops. */
#include <pthread.h>

#include "harness.h"
#include "handoff/spsc.h"

static int basic(void)
{
    rill__spsc_t r;
    ASSERT_EQ(rill__spsc_init(&r, 5000), 0);
    ASSERT_U64_EQ(r.cap, 8192); /* rounded up to a power of two */
    uint8_t in[10000], out[10000];
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (uint8_t)(i * 7);
    ASSERT_U64_EQ(rill__spsc_push(&r, in, 10000), 8192); /* only what fits */
    ASSERT_U64_EQ(rill__spsc_used(&r), 8192);
    ASSERT_U64_EQ(rill__spsc_push(&r, in, 1), 0);
    const uint8_t *p;
    size_t n = rill__spsc_peek(&r, &p);
    ASSERT_U64_EQ(n, 8192);
    ASSERT_MEM_EQ(p, in, 8192);
    rill__spsc_consume(&r, 100);
    /* Wrap: 100 bytes fit at the start again, readable as a second span. */
    ASSERT_U64_EQ(rill__spsc_push(&r, in + 8192, 100), 100);
    size_t got = 0;
    while ((n = rill__spsc_peek(&r, &p)) > 0) {
        memcpy(out + got, p, n);
        got += n;
        rill__spsc_consume(&r, n);
    }
    ASSERT_U64_EQ(got, 8192);
    ASSERT_MEM_EQ(out, in + 100, 8192);
    ASSERT_U64_EQ(rill__spsc_used(&r), 0);
    rill__spsc_free(&r);
    return 0;
}

#define STREAM_BYTES (64u << 20)

typedef struct xfer {
    rill__spsc_t r;
    int bad;
} xfer_t;

static uint8_t pattern(uint64_t i)
{
    return (uint8_t)((i * 2654435761u) >> 13);
}

static void *producer(void *arg)
{
    xfer_t *x = arg;
    uint8_t chunk[3000];
    uint64_t sent = 0, seed = 88172645463325252ull;
    while (sent < STREAM_BYTES) {
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        size_t n = 1 + seed % sizeof chunk;
        if (n > STREAM_BYTES - sent)
            n = STREAM_BYTES - sent;
        for (size_t i = 0; i < n; i++)
            chunk[i] = pattern(sent + i);
        size_t off = 0;
        while (off < n)
            off += rill__spsc_push(&x->r, chunk + off, n - off);
        sent += n;
    }
    return NULL;
}

static int two_threads(void)
{
    xfer_t x = {.bad = 0};
    ASSERT_EQ(rill__spsc_init(&x.r, 16384), 0);
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, producer, &x), 0);
    uint64_t got = 0, mismatches = 0;
    while (got < STREAM_BYTES) {
        const uint8_t *p;
        size_t n = rill__spsc_peek(&x.r, &p);
        for (size_t i = 0; i < n; i++)
            mismatches += p[i] != pattern(got + i);
        got += n;
        rill__spsc_consume(&x.r, n);
    }
    pthread_join(t, NULL);
    ASSERT_U64_EQ(got, STREAM_BYTES);
    ASSERT_U64_EQ(mismatches, 0); /* every byte, in order, across wraps */
    ASSERT_U64_EQ(rill__spsc_used(&x.r), 0);
    rill__spsc_free(&x.r);
    return 0;
}

int main(int argc, char **argv)
{
    static const t_case_t cases[] = {
        {"basic", basic},
        {"two_threads", two_threads},
        {NULL, NULL},
    };
    return t_run("handoff", cases, argc, argv);
}
