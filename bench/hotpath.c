/* hotpath: a deterministic in-process driver of rill's per-message path, for callgrind.
 *
 * Creates a worker (never started: no threads, no io_uring, no sockets but an unconnected
 * sink slot), registers passthrough (id 1, emitting to sink 0), count keeping its own
 * table (id 2) and count in managed state (id 3, docs/state.md), and feeds
 * a prepared 16 KiB piece of 64-byte v1 frames (the size of one provided buffer) through
 * rill__decode + rill__dispatch of loop 0 inside a registry read section, the way
 * on_data() does, discarding what the sink queued between pieces. Only user-space
 * work is measured: decode + lookup + dispatch + the computation + emit.
 *
 * With --impl peer the same bytes go through the baseline peers' decoder and table
 * (bench/peers/peer_common.c) instead.
 *
 * With --acked the pieces arrive on an acknowledged stream, as after a HELLO: every
 * decoded batch goes through rill__ackin_filter (seqs, the duplicate check) and every
 * piece ends with rill__ackin_step (a barrier, the stream's ACK queue), as one loop
 * iteration would. The sink stays best-effort (its link is not running here), so the
 * barriers complete at once; what an acked sink adds is per send and per ACK, not per
 * frame (core/link/acked.c), and shows in bench/acked_bench.sh.
 *
 * Instructions per message = (Ir(N2) - Ir(N1)) / (N2 - N1) over two runs under
 * `valgrind --tool=callgrind`: set-up costs cancel out.
 *
 * Keys cycle over 1024 values, all in the piece, which is fed again and again. With
 * --keys N (more than 1024) each piece's keys are written anew before it is fed, walking
 * over N keys, so that the tables of both counts grow to N keys and their lookups leave
 * the caches (the rewrite costs both counts the same).
 *
 *   hotpath --frames N [--comp 1|2|3] [--size 64] [--keys 1024] [--impl rill|peer]
 *           [--acked 1] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "barrier/barrier.h"
#include "dispatch/dispatch.h"
#include "frame/frame.h"
#include "loop/internal.h"
#include "loop/loop.h"
#include "peers/peer_common.h"
#include "registry/registry.h"
#include "worker_internal.h"

#define PIECE (16u * 1024u)

static int passthrough_batch(uintptr_t ctx, unsigned loop, const rill_msg_t *m, size_t n,
                             rill_emitter_t *em)
{
    (void)ctx, (void)loop;
    rill_emit_sink_msgs(em, 0, m, n); /* as rill-worker's passthrough: the batch at once */
    return 0;
}

/* The same open-addressing counter as rill-worker's count (examples/rill-worker/builtins.c). */
typedef struct {
    uint64_t key, count;
} slot_t;
static slot_t *slots;
static size_t cap = 1u << 16, used; /* cap: at least twice the keys (main) */

static int count_batch(uintptr_t ctx, unsigned loop, const rill_msg_t *m, size_t n,
                       rill_emitter_t *em)
{
    (void)ctx, (void)loop, (void)em;
    for (size_t i = 0; i < n; i++) {
        uint64_t k = m[i].key;
        k ^= k >> 31;
        k *= 0x7fb5d329728ea185ull;
        k ^= k >> 27;
        size_t j = (size_t)k & (cap - 1);
        while (slots[j].count && slots[j].key != m[i].key)
            j = (j + 1) & (cap - 1);
        if (!slots[j].count) {
            slots[j].key = m[i].key;
            used++;
        }
        slots[j].count++;
    }
    return 0;
}

/* count with its counts in managed state: what rill-worker's count does. */
static int managed_count_batch(uintptr_t ctx, unsigned loop, const rill_msg_t *m,
                               void *const *values, size_t n, rill_emitter_t *em)
{
    (void)ctx, (void)loop, (void)m, (void)em;
    for (size_t i = 0; i < n; i++)
        ++*(uint64_t *)values[i];
    return 0;
}

/* Connection slot 0 of loop l as an acked source after its HELLO (stream 1, first_seq 1):
 * what on_hello leaves behind, minus the WELCOME (there is no ring to send it on). */
static int acked_stream(rill__loop_t *l)
{
    l->conns = calloc(1, sizeof *l->conns);
    l->streams = calloc(1, sizeof *l->streams);
    l->pending = calloc(1, sizeof *l->pending);
    rill__stream_t *s = calloc(1, sizeof *s);
    if (!l->conns || !l->streams || !l->pending || !s)
        return -1;
    l->conns_cap = l->nconns = 1;
    l->streams_cap = l->nstreams = 1;
    l->streams[0] = s;
    s->id = 1;
    s->conn = -1; /* no connection to send ACKs on: the ACK queue still advances */
    s->cls = RILL_ACK_FROM_SOURCE;
    s->next_seq = 1;
    rill__ackq_reset(&s->q, 0);
    l->conns[0].fd = -1;
    l->conns[0].mode = RILL_CONN_ACKED;
    l->conns[0].stream = s;
    return 0;
}

int main(int argc, char **argv)
{
    long frames = 100000, size = 64, nkeys = 1024;
    unsigned comp = 1;
    int peer = 0, acked = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--frames"))
            frames = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--size"))
            size = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--comp"))
            comp = (unsigned)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--impl"))
            peer = !strcmp(argv[i + 1], "peer");
        else if (!strcmp(argv[i], "--acked"))
            acked = atoi(argv[i + 1]) != 0;
        else if (!strcmp(argv[i], "--keys"))
            nkeys = atol(argv[i + 1]);
        else {
            fprintf(stderr, "usage: hotpath --frames N [--comp 1|2|3] [--size 64] [--keys 1024] "
                            "[--impl rill|peer] [--acked 1]\n");
            return 2;
        }
    }
    if (size < 32 || size > (long)PIECE || frames <= 0 || comp < 1 || comp > 3 ||
        (peer && comp == 3) || nkeys < 1024 || nkeys > (1l << 28) || (peer && nkeys != 1024)) {
        fprintf(stderr, "hotpath: bad arguments\n");
        return 2;
    }
    while (cap < 2 * (size_t)nkeys)
        cap *= 2;
    slots = calloc(cap, sizeof *slots);

    /* One piece of whole frames; keys cycle over 1024 values. */
    size_t per_piece = PIECE / (size_t)size, piece_len = per_piece * (size_t)size;
    uint8_t *piece = calloc(1, piece_len);
    uint8_t payload[PIECE];
    memset(payload, 0xab, sizeof payload);
    for (size_t i = 0; i < per_piece; i++)
        rill__frame_encode(piece + i * (size_t)size, comp, (uint64_t)(i * 7919u % 1024u), payload,
                           (uint32_t)(size - 16));

    long done = 0;
    if (peer) {
        peer_ctx_t p;
        peer_ctx_init(&p, 1);
        peer_conn_dec_t d;
        memset(&d, 0, sizeof d);
        while (done < frames) {
            if (peer_feed(&p, &d, piece, piece_len) < 0)
                return 1;
            p.out.len = p.out.off = 0;
            done += (long)per_piece;
        }
        printf("hotpath: impl=peer comp=%u frames=%ld in=%llu\n", comp, done,
               (unsigned long long)p.st.msgs_in);
        peer_ctx_free(&p);
        return 0;
    }

    rill_config_t *cfg = rill_config_new();
    rill_config_set_threads(cfg, 1);
    if (rill_config_add_sink(cfg, "127.0.0.1:9") < 0)
        return 1;
    rill_worker_t *w;
    if (rill_worker_new(&w, cfg) < 0)
        return 1;
    rill_config_destroy(cfg);
    static const rill_comp_ops_t pt = {passthrough_batch, NULL, NULL};
    static const rill_comp_ops_t ct = {count_batch, NULL, NULL};
    rill_comp_register(w, 1, "passthrough", &pt, 0);
    rill_comp_register(w, 2, "count", &ct, 0);
    static const rill_state_ops_t mct = {managed_count_batch, NULL, NULL};
    rill_comp_register_state(w, 3, "count-managed", &mct, 0, sizeof(uint64_t));

    rill__loop_t *l = w->loops[0];
    if (acked && acked_stream(l) < 0)
        return 1;
    rill__decoder_t dec;
    rill__decoder_init(&dec, RILL_FRAMING_RILL, 1u << 20, 0, 0, 0);
    uint64_t in = 0, data = 0, next_key = 0;
    while (done < frames) {
        for (size_t i = 0; nkeys > 1024 && i < per_piece; i++) {
            rill__store_be64(piece + i * (size_t)size + 8, next_key);
            next_key = next_key + 7919 < (uint64_t)nkeys ? next_key + 7919
                                                         : (next_key + 7919) % (uint64_t)nkeys;
        }
        /* on_data(), minus the socket: one piece, decoded and dispatched in batches. */
        rill__registry_enter(w->reg, 0);
        rill__dispatch_begin(&l->dispatch, NULL);
        size_t pos = 0;
        while (pos < piece_len) {
            int n = rill__decode(&dec, piece, piece_len, &pos, l->views, RILL_BATCH_MAX);
            if (n < 0)
                return 1;
            in += (uint64_t)n;
            if (acked && (n = rill__ackin_filter(l, 0, l->views, (size_t)n, &data)) < 0)
                return 1;
            rill__dispatch(&l->dispatch, l->views, (size_t)n, RILL_ROUTE_SOURCE,
                           RILL_ORIGIN_SOURCE);
        }
        rill__registry_exit(w->reg, 0);
        if (acked)
            rill__ackin_step(l);
        rill__link_discard(&l->links.sinks[0]);
        done += (long)per_piece;
    }
    printf("hotpath: impl=rill comp=%u acked=%d frames=%ld in=%llu out=%llu acked_in=%llu\n", comp,
           acked, done, (unsigned long long)in, (unsigned long long)l->stats.msgs_out,
           (unsigned long long)l->stats.acked_in);
    rill__decoder_free(&dec);
    rill_worker_destroy(w);
    free(piece);
    free(slots);
    return 0;
}
