/* Helpers for integration tests: client sockets, a v1 frame encoder written independently
 * of core/frame (so the tests check the wire format, not the library against itself), a
 * sink server that decodes what workers send, background senders, and stats polling.
 * Timeouts here are failure bounds only, never performance assertions. */
#ifndef RILL_TESTS_TCP_UTIL_H
#define RILL_TESTS_TCP_UTIL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "rill/rill.h"

#define TU_HDR 16u /* u32 length + u32 comp_id + u64 key */

/* ------------------------------------------------------------ memory */

/* The process's resident set (VmRSS) in bytes, 0 when /proc does not tell. */
size_t tu_rss_bytes(void);

/* Samples the RSS every 20 ms on a thread of its own and keeps the largest value. */
typedef struct tu_rss_mon {
    pthread_t thr;
    atomic_int stop;
    atomic_size_t max;
} tu_rss_mon_t;
int tu_rss_mon_start(tu_rss_mon_t *m);
/* The largest RSS seen so far (the monitor goes on). */
size_t tu_rss_mon_max(tu_rss_mon_t *m);
/* Stops the monitor; returns the largest RSS it saw. */
size_t tu_rss_mon_stop(tu_rss_mon_t *m);

/* ------------------------------------------------------------ bytes and frames */

void tu_put_be32(uint8_t *p, uint32_t v);
void tu_put_be64(uint8_t *p, uint64_t v);
uint32_t tu_get_be32(const uint8_t *p);
uint64_t tu_get_be64(const uint8_t *p);

/* Writes a v1 frame (length = 12 + len, comp, key, payload) into out, which must hold
 * TU_HDR + len bytes. Returns TU_HDR + len. payload may be NULL when len == 0. */
size_t tu_frame_encode(uint8_t *out, uint32_t comp, uint64_t key, const void *payload,
                       uint32_t len);

/* A growable byte buffer for building streams of frames. */
typedef struct tu_buf {
    uint8_t *data;
    size_t len, cap;
} tu_buf_t;
/* Appends one frame; aborts the process when out of memory. */
void tu_buf_frame(tu_buf_t *b, uint32_t comp, uint64_t key, const void *payload, uint32_t len);
void tu_buf_append(tu_buf_t *b, const void *data, size_t len);
void tu_buf_free(tu_buf_t *b);

/* Deterministic PRNG (xorshift64*); state must be non-zero. */
uint64_t tu_rand(uint64_t *state);

/* ------------------------------------------------------------ client sockets */

/* Ignores SIGPIPE for the process (writes to closed sockets then fail with EPIPE). */
void tu_ignore_sigpipe(void);

/* Connects to 127.0.0.1:port, retrying ECONNREFUSED/EAGAIN for up to timeout_ms. Returns a
 * blocking fd or -errno. */
int tu_connect(uint16_t port, int timeout_ms);
/* A non-blocking listening socket on 127.0.0.1:port (0: a free port, stored in *bound),
 * with SO_REUSEADDR so a test can listen again on the port it just closed. Returns the fd
 * or -errno. */
int tu_listen(uint16_t port, uint16_t *bound);
/* Sets TCP_NODELAY. Returns 0 or -errno. */
int tu_set_nodelay(int fd);
/* Writes all of buf (blocking). Returns 0 or -errno (EPIPE, ECONNRESET, ...). */
int tu_write_all(int fd, const void *buf, size_t n);
/* Reads exactly n bytes, waiting at most timeout_ms in total. Returns 0, -ETIMEDOUT,
 * -ECONNRESET-like -errno, or -EPIPE when the peer closed first. */
int tu_read_exact(int fd, void *buf, size_t n, int timeout_ms);
/* Waits until the peer has closed fd (read returns 0 or fails), discarding anything that
 * arrives. Returns 0 on EOF, -errno on a read error (e.g. -ECONNRESET: also "closed"), or
 * -ETIMEDOUT when the connection is still open after timeout_ms. */
int tu_wait_peer_closed(int fd, int timeout_ms);
/* Returns 1 when rc (from tu_wait_peer_closed) means "the peer closed the connection". */
int tu_closed_rc(int rc);

/* Milliseconds from a monotonic clock. */
int64_t tu_now_ms(void);
void tu_sleep_ms(int ms);

/* ------------------------------------------------------------ sink server */

/* One decoded frame as stored by a sink without a callback. payload is a private copy
 * (NULL when len == 0). conn = index of the sink connection, in accept order. */
typedef struct tu_frame {
    unsigned conn;
    uint32_t comp_id;
    uint64_t key;
    uint32_t len;
    uint8_t *payload;
} tu_frame_t;

/* Called on the sink's thread for every decoded frame, with the sink's mutex held (so a
 * test that takes tu_sink_lock() sees a consistent state). Must not call tu_sink_*. */
typedef void (*tu_frame_cb)(void *arg, unsigned conn, uint32_t comp_id, uint64_t key,
                            const uint8_t *payload, uint32_t len);

typedef struct tu_sink tu_sink_t;

/* Listens on 127.0.0.1:0 and serves any number of connections from a background thread.
 * With cb == NULL frames are stored (see tu_sink_frames); otherwise cb is called. Returns
 * 0 or -errno. */
int tu_sink_new(tu_sink_t **out, tu_frame_cb cb, void *arg);
/* Stops the thread, closes everything, frees stored frames. NULL is a no-op. */
void tu_sink_destroy(tu_sink_t *s);
uint16_t tu_sink_port(const tu_sink_t *s);
/* "127.0.0.1:PORT", for rill_config_add_sink(). Owned by the sink. */
const char *tu_sink_addr(const tu_sink_t *s);

/* Frames decoded so far (all connections). */
size_t tu_sink_count(tu_sink_t *s);
/* Waits until at least n frames were decoded. Returns 0 or -ETIMEDOUT. */
int tu_sink_wait_count(tu_sink_t *s, size_t n, int timeout_ms);
/* Waits until at least min_accepted connections were accepted and every accepted
 * connection has been closed by its peer. Returns 0 or -ETIMEDOUT. */
int tu_sink_wait_all_closed(tu_sink_t *s, unsigned min_accepted, int timeout_ms);
/* Waits until at least n connections were accepted. Returns 0 or -ETIMEDOUT. */
int tu_sink_wait_accepted(tu_sink_t *s, unsigned n, int timeout_ms);

typedef struct tu_sink_info {
    size_t frames;
    unsigned accepted; /* connections accepted */
    unsigned closed;   /* of which the peer closed */
    unsigned bad;      /* connections closed by the sink: length field below 12 or huge */
    unsigned partial;  /* connections whose peer closed inside a frame */
} tu_sink_info_t;
void tu_sink_info(tu_sink_t *s, tu_sink_info_t *out);

/* Stored frames (cb == NULL). Hold the lock while using the array: it may be reallocated. */
void tu_sink_lock(tu_sink_t *s);
void tu_sink_unlock(tu_sink_t *s);
const tu_frame_t *tu_sink_frames(tu_sink_t *s, size_t *n);

/* ------------------------------------------------------------ background senders */

/* Writes bufs[i] (lens[i] bytes) to fds[i] for i < nconn, from nthreads threads; each
 * thread owns every nthreads-th connection and writes `chunk` bytes to each in turn
 * (chunks ignore frame boundaries). fds stay open and owned by the caller. */
typedef struct tu_sender tu_sender_t;
int tu_send_start(tu_sender_t **out, const int *fds, uint8_t *const *bufs, const size_t *lens,
                  unsigned nconn, unsigned nthreads, size_t chunk);
/* Same, sleeping pause_us after each round over a thread's connections (to spread the
 * traffic over time, e.g. while a test changes registrations). */
int tu_send_start_paced(tu_sender_t **out, const int *fds, uint8_t *const *bufs, const size_t *lens,
                        unsigned nconn, unsigned nthreads, size_t chunk, unsigned pause_us);
/* Non-zero once every thread has finished writing. */
int tu_send_done(tu_sender_t *s);
/* Joins and frees. Returns 0 or the first -errno a write failed with. */
int tu_send_join(tu_sender_t *s);

/* ------------------------------------------------------------ worker stats */

#define TU_STAT(field) offsetof(rill_stats_t, field)

/* Returns one counter (by offset, see TU_STAT) of a fresh snapshot; UINT64_MAX on error. */
uint64_t tu_stat(const rill_worker_t *w, size_t off);

typedef int (*tu_stats_pred)(const rill_stats_t *st, void *arg);
/* Polls rill_worker_stats until pred returns non-zero. The last snapshot goes to *last
 * (may be NULL). Returns 0 or -ETIMEDOUT (or the rill_worker_stats error). */
int tu_wait_stats(const rill_worker_t *w, tu_stats_pred pred, void *arg, int timeout_ms,
                  rill_stats_t *last);
/* Polls until counter `off` >= min (resp. == val). *last (may be NULL) gets its final value.
 * Returns 0 or -ETIMEDOUT. */
int tu_wait_stat_ge(const rill_worker_t *w, size_t off, uint64_t min, int timeout_ms,
                    uint64_t *last);
int tu_wait_stat_eq(const rill_worker_t *w, size_t off, uint64_t val, int timeout_ms,
                    uint64_t *last);

/* A computation that passes every message to sink 0 unchanged, frame by frame. */
int tu_pass_batch(uintptr_t ctx, unsigned loop, const rill_msg_t *m, size_t n, rill_emitter_t *em);

#endif /* RILL_TESTS_TCP_UTIL_H */
