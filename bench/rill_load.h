/* rill-load's pieces shared by its files: options, the frame layout it sends, the sender
 * threads' shared state, the sink (load_sink.c) and the acknowledged sender (load_acked.c).
 * Internal to bench/; nothing here is rill API. */
#ifndef RILL_BENCH_RILL_LOAD_H
#define RILL_BENCH_RILL_LOAD_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "frame/frame.h"

#define MAX_SIZE (64u * 1024u * 1024u)
#define MAX_TARGETS 64

/* ------------------------------------------------------------------ options */

typedef struct opts {
    const char *target;               /* as given: one HOST:PORT or a comma-separated list */
    const char *targets[MAX_TARGETS]; /* the list, split */
    int ntargets;
    int connections; /* 0 = sink only */
    int threads;
    uint32_t size;
    uint64_t keys;
    double zipf;
    uint32_t comp;
    double rate;
    int batch; /* 0 = not given */
    double duration;
    uint64_t count; /* 0 = use duration */
    const char *sink_listen;
    int sink_threads;
    double drain;
    bool json;
    bool quiet;
    double progress; /* seconds between progress lines */
    uint64_t seed;
    /* acknowledged delivery and checks */
    bool acked;
    uint64_t credit; /* WELCOME/ACK credit the sink grants */
    bool verify;
    const char *dump;
    bool has_run_id;
    uint64_t run_id;
    double retry_for;
    uint64_t goaway_after; /* 0 = never */
    uint64_t close_after;  /* 0 = never */
    const char *goaway_to;
} opts_t;

extern opts_t g_o;
extern uint64_t g_start_ns;
extern int g_batch;
extern uint64_t g_run_id;
extern volatile sig_atomic_t g_sigint;
extern atomic_bool g_stop_send; /* senders stop at their next burst */
extern atomic_bool g_stop_sink; /* sink threads exit */

/* ------------------------------------------------------------------ payload layout */

/* Payload bytes (after the 16-byte header), little-endian: */
#define PL_TS 0                  /* u64 send time, ns of CLOCK_MONOTONIC */
#define PL_SEQ 8                 /* u64 frame index within its connection, from 0 */
#define PL_CONN 16               /* u32 connection index (frames of >= 36 bytes) */
#define PL_RUN 20                /* u64 run id (frames of >= 48 bytes) */
#define PL_TAG 28                /* u32 PL_TAG_VALUE: the run id is there (frames of >= 48 bytes) */
#define PL_TAG_VALUE 0x31646c72u /* "rld1" */
#define SIZE_WITH_CONN 36u
#define SIZE_WITH_RUN 48u

static inline void store_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline void store_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint64_t load_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}
static inline uint32_t load_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Writes the parts of n frames that never change in a run (length, comp id, filler, run id
 * and tag); load_fill then writes the rest. */
void load_frame_template(uint8_t *buf, size_t n);
/* Fills n frames of connection index starting at payload seq seq0: key, time stamp(s),
 * seq, connection index. */
void load_fill(uint8_t *buf, uint32_t n, uint32_t index, uint64_t seq0, uint64_t *rng,
               bool ts_per_frame);
/* The key generator's state for sender thread id (same seed, same keys). */
uint64_t load_rng_init(int id);

/* ------------------------------------------------------------------ time, sockets */

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct addrinfo;
int load_resolve(const char *hostport, bool passive, struct addrinfo **out, char *err,
                 size_t errcap);

/* ------------------------------------------------------------------ senders */

typedef struct conn {
    int fd;
    uint32_t index;
    uint64_t seq; /* frames sent on it */
    bool active;
} conn_t;

struct aconn; /* load_acked.c */

typedef struct sender {
    _Alignas(64) atomic_uint_fast64_t frames; /* distinct frames sent (not resends) */
    atomic_uint_fast64_t bytes;
    atomic_uint_fast64_t acked; /* --acked: frames acknowledged */
    atomic_bool done;
    pthread_t tid;
    int id;
    conn_t **conns;
    struct aconn *aconns; /* --acked: this thread's connections instead of conns */
    int nconns;
    uint64_t end_ns;
    int errors;
    uint8_t *buf;
    /* --acked, read after the thread ended */
    uint64_t resent, reconnects, goaways, redirects, credit_waits, unacked;
    /* --acked: for every ACK, now - the send time stamp of the newest frame it covers
     * (a rill__hist_t of ns; NULL when the frames carry no time stamp) */
    struct rill__hist *ack_hist;
} sender_t;

/* --acked: sets up t's nconns connections, indexes first..first + nconns - 1 spaced by
 * stride (the connection index i goes to thread i % threads). Returns 0 or -1 (message
 * printed). */
int load_acked_setup(sender_t *t, int first, int stride);
void *load_acked_main(void *arg);
/* Frames generated on connection slot i of t (payload seqs 0..n-1). */
uint64_t load_acked_sent(const sender_t *t, int i, uint32_t *index);
void load_acked_free(sender_t *t);

/* ------------------------------------------------------------------ sink */

typedef struct load_sink_totals {
    uint64_t frames, bytes, last_ns; /* frames of this run or without a run id */
    uint64_t foreign;                /* frames of other runs */
    uint64_t errors;                 /* connections closed on a malformed frame */
    uint64_t hellos, acks;           /* acknowledged streams welcomed, ACKs sent */
} load_sink_totals_t;

/* Starts listening and the sink threads. Returns 0 or -1 (message printed). */
int load_sink_start(void);
void load_sink_totals(load_sink_totals_t *t);
/* Stops the sink threads, merges their latency histograms into hist (a rill__hist_t), fills
 * t with the final totals and closes everything. */
void load_sink_stop(void *hist, load_sink_totals_t *t);

/* --verify: received frames per (connection, seq), one bit each. */
int load_verify_init(int connections, uint64_t count);
/* The frames sent on connection index: payload seqs 0..n-1. */
void load_verify_sent(uint32_t index, uint64_t n);
/* After the sink stopped: the counts, and frees the record. */
void load_verify_result(uint64_t *missing, uint64_t *duplicates, uint64_t *unexpected);

#endif /* RILL_BENCH_RILL_LOAD_H */
