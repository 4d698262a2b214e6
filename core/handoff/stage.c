#include "handoff/stage.h"

#include <stdio.h>
#include <stdlib.h>

#include "util/log.h"
#include "util/stat.h"

int rill__handoff_init(rill__handoff_t *h, unsigned self, unsigned n, rill__spsc_t *rings,
                       atomic_llong *inflight, uint64_t *dropped)
{
    memset(h, 0, sizeof *h);
    h->self = self;
    h->n = n;
    h->inflight = inflight;
    h->dropped = dropped;
    h->out = calloc(n, sizeof *h->out);
    h->in = calloc(n, sizeof *h->in);
    h->in_dec = calloc(n, sizeof *h->in_dec);
    h->stage = calloc(n, sizeof *h->stage);
    h->out_frames = calloc((size_t)n * RILL_ORIGINS, sizeof *h->out_frames);
    h->in_frames = calloc((size_t)n * RILL_ORIGINS, sizeof *h->in_frames);
    h->stage_origin = calloc(n, 1); /* both ends start at RILL_ORIGIN_SOURCE */
    h->in_origin = calloc(n, 1);
    if (!h->out || !h->in || !h->in_dec || !h->stage || !h->out_frames || !h->in_frames ||
        !h->stage_origin || !h->in_origin) {
        rill__handoff_free(h);
        return RILL_ENOMEM;
    }
    for (unsigned d = 0; d < n; d++) {
        h->out[d] = &rings[self * n + d];
        h->in[d] = &rings[d * n + self];
        /* rill encoded these frames itself: any length it wrote is one to accept. */
        rill__decoder_init(&h->in_dec[d], RILL_FRAMING_RILL, UINT32_MAX, 0, 0, 0);
    }
    return 0;
}

void rill__handoff_free(rill__handoff_t *h)
{
    for (unsigned d = 0; h->in_dec && d < h->n; d++)
        rill__decoder_free(&h->in_dec[d]);
    for (unsigned d = 0; h->stage && d < h->n; d++)
        rill__buf_free(&h->stage[d]);
    free(h->out);
    free(h->in);
    free(h->in_dec);
    free(h->stage);
    free(h->out_frames);
    free(h->in_frames);
    free(h->stage_origin);
    free(h->in_origin);
    memset(h, 0, sizeof *h);
}

long rill__origin_put(rill__buf_t *b, uint8_t *last, unsigned origin, uint32_t comp_id,
                      uint64_t key, const void *data, uint32_t len)
{
    size_t fs = rill__frame_size(len);
    int mark = *last != origin;
    if (__builtin_expect(mark, 0))
        fs += rill__frame_size(0);
    if (rill__buf_reserve(b, fs, SIZE_MAX) < 0)
        return RILL_ENOMEM;
    if (mark) {
        static const uint8_t none;
        rill__frame_encode(b->data + b->len, RILL_CONTROL_COMP_ID, origin, &none, 0);
        b->len += rill__frame_size(0);
        *last = (uint8_t)origin;
    }
    rill__frame_encode(b->data + b->len, comp_id, key, data, len);
    b->len += rill__frame_size(len);
    return (long)fs;
}

int rill__handoff_stage(rill__handoff_t *h, unsigned dst, unsigned origin, uint32_t comp_id,
                        uint64_t key, const void *data, uint32_t len)
{
    long fs =
        rill__origin_put(&h->stage[dst], &h->stage_origin[dst], origin, comp_id, key, data, len);
    if (fs < 0) {
        RILL_STAT_ADD(*h->dropped, 1);
        return RILL_ENOMEM;
    }
    h->out_frames[dst * RILL_ORIGINS + origin]++;
    atomic_fetch_add_explicit(h->inflight, fs, memory_order_relaxed);
    return 0;
}

void rill__handoff_push(rill__handoff_t *h, void (*wake)(void *ctx, unsigned dst), void *ctx)
{
    for (unsigned d = 0; d < h->n; d++) {
        rill__buf_t *b = &h->stage[d];
        if (b->len == 0)
            continue;
        size_t n = rill__spsc_push(h->out[d], b->data, b->len);
        if (n) {
            rill__buf_consume(b, n);
            wake(ctx, d); /* one wakeup per destination and push, never one per message */
        }
    }
}

size_t rill__handoff_staged(const rill__handoff_t *h, size_t *largest)
{
    size_t all = 0, max = 0;
    for (unsigned d = 0; d < h->n; d++) {
        all += h->stage[d].len;
        if (h->stage[d].len > max)
            max = h->stage[d].len;
    }
    if (largest)
        *largest = max;
    return all;
}

size_t rill__handoff_begin(rill__handoff_t *h, unsigned src, size_t max)
{
    size_t len = rill__spsc_peek(h->in[src], &h->step);
    h->step_len = len < max ? len : max;
    h->step_pos = 0;
    return h->step_len;
}

size_t rill__handoff_next(rill__handoff_t *h, unsigned src, rill_msg_t *views, size_t cap)
{
    while (h->step_pos < h->step_len) {
        int n = rill__decode(&h->in_dec[src], h->step, h->step_len, &h->step_pos, views, cap);
        if (n < 0) { /* cannot happen: rill encoded these frames itself */
            rill__log_error("internal: handoff stream from loop %u undecodable: %s", src,
                            rill_strerror(n));
            abort();
        }
        if (n > 0)
            return (size_t)n;
    }
    return 0;
}

void rill__handoff_end(rill__handoff_t *h, unsigned src)
{
    rill__spsc_consume(h->in[src], h->step_len);
    atomic_fetch_sub_explicit(h->inflight, (long long)h->step_len, memory_order_release);
    h->step_len = h->step_pos = 0;
}
