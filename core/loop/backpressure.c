/* Backpressure: while an outbound queue (a link, or a handoff stage) is above its high
 * watermark, received buffers are held in arrival order instead of processed and recv is
 * not re-armed, so the kernel runs out of buffers and TCP pushes back on the senders.
 * Below the low watermarks the held buffers are processed and recv re-armed. */
#include "loop/internal.h"
#include "util/stat.h"

/* A handoff stage above this pauses the sources; below the low mark they resume. */
#define STAGE_HIGH ((size_t)8 << 20)
#define STAGE_LOW ((size_t)2 << 20)

void rill__bp_update(rill__loop_t *l)
{
    int link_high, link_low;
    rill__links_pressure(&l->links, l->w->cfg.sink_buffer / 2, l->w->cfg.sink_buffer / 4,
                         &link_high, &link_low);
    size_t largest;
    rill__handoff_staged(&l->handoff, &largest);
    int stage_high = largest > STAGE_HIGH, stage_low = largest <= STAGE_LOW;
    if (!l->sink_paused && link_high)
        l->sink_paused = 1;
    else if (l->sink_paused && link_low)
        l->sink_paused = 0;
    if (!l->paused && (link_high || stage_high)) {
        l->paused = 1;
        RILL_STAT_ADD(l->stats.paused, 1);
    } else if (l->paused && link_low && stage_low) {
        l->paused = 0;
        l->resumed_at = l->now;
    }
}

void rill__bp_hold(rill__loop_t *l, unsigned slot, unsigned bid, unsigned len)
{
    unsigned tail = (l->held_head + l->held_count) % RILL_BUF_COUNT;
    l->held[tail] = (struct rill__held){slot, bid, len, l->conns[slot].gen};
    l->held_count++;
    l->conns[slot].held++;
}

/* Takes the oldest held buffer; NULL connection when it no longer exists. */
static rill__conn_t *take_held(rill__loop_t *l, struct rill__held *h)
{
    *h = l->held[l->held_head];
    l->held_head = (l->held_head + 1) % RILL_BUF_COUNT;
    l->held_count--;
    rill__conn_t *c = &l->conns[h->slot];
    if (!c->in_use || c->gen != h->gen)
        return NULL;
    c->held--;
    return c;
}

void rill__bp_release(rill__loop_t *l)
{
    while (l->held_count && !l->paused) {
        struct rill__held h;
        rill__conn_t *c = take_held(l, &h);
        if (c) {
            if (!c->closing)
                rill__conn_on_data(l, h.slot, rill__ring_buffer(&l->ring, h.bid), h.len);
            if (c->in_use && c->held == 0 && c->end_held) {
                c->end_held = 0;
                rill__conn_recv_result(l, h.slot, c->end_res);
            }
        }
        rill__ring_return_buffer(&l->ring, h.bid);
        rill__bp_update(l);
    }
    if (l->paused || !l->rearm_pending)
        return;
    l->rearm_pending = 0;
    for (unsigned i = 0; i < l->nconns; i++) {
        rill__conn_t *c = &l->conns[i];
        if (c->rearm) {
            c->rearm = 0;
            if (c->in_use && !c->closing && !c->recv_armed)
                rill__conn_arm_recv(l, i);
        }
    }
}

void rill__bp_drop(rill__loop_t *l)
{
    size_t bytes = 0;
    while (l->held_count) {
        struct rill__held h;
        rill__conn_t *c = take_held(l, &h);
        if (c) {
            bytes += h.len;
            if (c->held == 0 && c->end_held) {
                c->end_held = 0;
                rill__conn_close(l, h.slot, c->end_res);
            }
        }
        rill__ring_return_buffer(&l->ring, h.bid);
    }
    if (bytes)
        rill__log("loop %u: drain deadline passed with outputs blocked; %zu received bytes "
                  "were not processed",
                  l->idx, bytes);
}
