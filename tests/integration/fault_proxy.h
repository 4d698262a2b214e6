/* A TCP fault proxy for tests: it sits on a link between a sender and a receiver (a source
 * and a worker, a worker and its sink, two cluster members) and can cut the link (reset
 * both ends, as when a network path dies), stall it (nothing moves, connections stay
 * open), or make the receiver look down (new connections closed at once).
 *
 * The proxy listens on a free 127.0.0.1 port and forwards every connection it accepts to
 * 127.0.0.1:target_port, both directions, from a thread of its own (poll(), non-blocking
 * sockets). Each direction of a connection goes through a bounded buffer (FP_BUF_BYTES):
 * a receiver that does not read pushes back on its sender through TCP, as it would without
 * the proxy, instead of the proxy buffering without limit. A half-close (FIN) is passed on
 * once what preceded it was forwarded; an error on either side resets the other.
 *
 * Every fault call may come from any thread but the proxy's own (no callback ever runs on
 * it), and returns once the proxy thread has applied it: after fp_stall(p, 1) returns
 * nothing more is forwarded, after fp_cut(p) returns every connection that was open (or
 * waiting in the listen backlog) has been reset. Functions that can fail return 0 or
 * -errno; NULL is -EINVAL, and a fault call returns -EPIPE when the proxy's thread has
 * ended (its poll failed; the reason is printed). */
#ifndef RILL_TESTS_FAULT_PROXY_H
#define RILL_TESTS_FAULT_PROXY_H

#include <stdint.h>

/* Bytes a connection holds in the proxy, per direction. */
#define FP_BUF_BYTES (64u * 1024u)

typedef struct fp fp_t;

/* The proxy's counters since fp_new. Read together under the proxy's lock (fp_stats). */
typedef struct fp_stats {
    uint64_t accepted;   /* connections accepted from clients (all of them) */
    uint64_t refused;    /* of which closed at once because fp_refuse was on */
    uint64_t failed;     /* of which reset because the target could not be reached */
    uint64_t connected;  /* of which connected through to the target */
    uint64_t open;       /* gauge: proxied connections open now (connecting included) */
    uint64_t bytes_up;   /* bytes forwarded client -> target (handed to the target's socket) */
    uint64_t bytes_down; /* bytes forwarded target -> client */
    uint64_t cuts;       /* cuts done: fp_cut calls and fp_cut_after triggers */
    uint64_t conns_cut;  /* connections reset by those cuts */
} fp_stats_t;

/* Starts a proxy on a free 127.0.0.1 port towards 127.0.0.1:target_port. The target need
 * not listen yet: a connection accepted while it does not is reset (counted in failed).
 * On success stores the proxy in *out (the caller owns it: fp_destroy) and returns 0; on
 * failure stores NULL and returns -errno. */
int fp_new(fp_t **out, uint16_t target_port);
/* Stops the proxy's thread, closes its listener and every connection (a plain close, no
 * reset), frees p. NULL is a no-op. */
void fp_destroy(fp_t *p);
/* The port the proxy listens on; 0 for NULL. */
uint16_t fp_port(const fp_t *p);
/* "127.0.0.1:PORT", e.g. for rill_config_add_sink(). Owned by p; "" for NULL. */
const char *fp_addr(const fp_t *p);

/* Resets every current connection on both sides at once (SO_LINGER 0, then close): both
 * ends see ECONNRESET (or EPIPE on a later send); bytes buffered in the proxy are lost.
 * The proxy goes on accepting. Counts one cut. */
int fp_cut(fp_t *p);
/* on != 0: stops forwarding and reading in both directions (connections stay open; new
 * ones are accepted and connected to the target, and wait as well; a close by either end
 * goes unnoticed until the stall ends). on == 0: resumes. */
int fp_stall(fp_t *p, int on);
/* on != 0: new connections are accepted and reset at once (the target looks down;
 * counted in refused); open ones are left alone. on == 0: connections are proxied again. */
int fp_refuse(fp_t *p, int on);
/* Arms a cut after `bytes` more bytes have been forwarded towards the target (counted
 * over all connections from this call on): exactly that many are handed to the target,
 * the proxy then forwards nothing more, waits (2 s at most) until the target's kernel has
 * acknowledged them, so that the target can read every one of them, and cuts as fp_cut
 * does. bytes == 0 disarms a cut not yet done. A later call replaces an earlier one. */
int fp_cut_after(fp_t *p, uint64_t bytes);

/* Copies the counters. Returns 0 or -EINVAL. */
int fp_stats(fp_t *p, fp_stats_t *out);
/* Waits until at least n connections were connected through to the target (stats
 * connected >= n). Returns 0, -ETIMEDOUT or -EINVAL. */
int fp_wait_connected(fp_t *p, uint64_t n, int timeout_ms);
/* Waits until at least n cuts were done (stats cuts >= n; for fp_cut_after). Returns 0,
 * -ETIMEDOUT or -EINVAL. */
int fp_wait_cuts(fp_t *p, uint64_t n, int timeout_ms);

#endif /* RILL_TESTS_FAULT_PROXY_H */
