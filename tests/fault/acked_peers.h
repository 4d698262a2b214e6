/* The two ends of acknowledged streams for the fault tests, written from the wire table
 * of docs/protocol.md ("Control frames"), not from rill's own codec:
 *   - asink: an acked sink. Answers HELLO with WELCOME (what it counted of that stream),
 *     counts data frames and acknowledges them (one ACK per read). It can be killed (all
 *     connections reset, the port closed for 200 ms) with or without keeping what it
 *     counted, stalled (stops reading), or made to answer HELLO with garbage.
 *   - asrc: acked sources. Each connection is one stream that keeps every frame until
 *     acknowledged (frames are regenerated from their seq), honours credit, reconnects
 *     after a failure or GOAWAY (to the next port of its list) with HELLO from its oldest
 *     unacknowledged seq. Given a sink, it checks on every ACK that the sink already
 *     counted every frame the ACK covers (an early acknowledgement is a violation).
 *
 * Frames: key = source index, payload pay_t {MAGIC, source, seq - 1}. */
#ifndef RILL_TEST_ACKED_PEERS_H
#define RILL_TEST_ACKED_PEERS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "rill/rill.h"

#define AP_MAGIC 0x41434b53u
#define AP_MAXSRC 16 /* sources a sink checks, and connections of one asrc */
#define AP_MAXC 32   /* connections a sink holds */
#define AP_MAXS 32   /* streams a sink remembers */
#define AP_MAXPORTS 4

typedef struct ap_pay {
    uint32_t magic, src;
    uint64_t seq; /* 0-based: the frame of stream seq s carries s - 1 */
} ap_pay_t;

typedef struct ap_sconn {
    int fd;
    uint8_t *buf;
    size_t len, cap;
    int stream;        /* index into streams, -1 before HELLO */
    uint64_t next_seq; /* seq of the next data frame */
    uint64_t unacked;  /* bytes of data frames received since the last ACK it sent */
} ap_sconn_t;

typedef struct asink {
    int lfd;
    uint16_t port;
    char addr[32];
    pthread_t thr;
    uint32_t credit;
    atomic_int stop, stall, kill, forget, garbage;
    atomic_uint hellos, kills;
    ap_sconn_t c[AP_MAXC];
    unsigned nc;
    /* per stream: the highest seq counted (kept across kills unless forget) */
    uint64_t stream_id[AP_MAXS], counted[AP_MAXS];
    unsigned nstreams;
    /* checker */
    unsigned nsrc;
    pthread_mutex_t mu;
    uint64_t next[AP_MAXSRC]; /* next expected seq per source (= key) */
    uint64_t *seen[AP_MAXSRC];
    uint64_t per_src;
    uint64_t frames, dups, gaps, bad;
    /* Data frames that arrived beyond the credit: more unacknowledged bytes than it
     * granted, other than one frame larger than the whole credit sent alone. */
    uint64_t over_credit;
} asink_t;

/* Listens on a free loopback port; checks nsrc sources of per_src frames each. */
int asink_start(asink_t *s, uint32_t credit, unsigned nsrc, uint64_t per_src);
void asink_stop(asink_t *s);
/* Frames that never arrived (each source's 0..per_src-1). */
uint64_t asink_missing(asink_t *s);
uint64_t asink_frames(asink_t *s);
/* Non-zero when the sink counted every frame of source src with pay seq < upto. */
int asink_has(asink_t *s, unsigned src, uint64_t from, uint64_t upto);

typedef struct ap_conn {
    int fd;
    unsigned port_ix; /* which of the ports it uses */
    uint64_t stream_id;
    uint64_t acked;    /* every seq <= acked is acknowledged */
    uint64_t next;     /* seq of the next frame to send */
    uint64_t sent_max; /* highest seq ever sent */
    uint64_t verified; /* frames up to this seq were checked at the sink */
    uint32_t credit;
    _Atomic uint32_t granted_max; /* the largest credit a WELCOME or ACK granted it */
    int welcomed, goaway;
    int64_t retry_at; /* ms: the next connect attempt */
    uint8_t rx[4096];
    size_t rxlen;
    uint8_t *out; /* frames being written */
    size_t outlen, outoff;
} ap_conn_t;

typedef struct asrc {
    uint16_t ports[AP_MAXPORTS];
    unsigned nports, nsrc;
    uint64_t per_src;
    uint32_t comp;
    asink_t *check; /* or NULL */
    pthread_t thr;
    atomic_int stop, done;
    ap_conn_t c[AP_MAXSRC];
    /* counters, read after asrc_join (or atomically while it runs) */
    atomic_ullong acked_total, early_acks, goaways, reconnects, resent, welcomes, protocol;
} asrc_t;

/* nsrc streams of per_src frames each for computation comp, to ports[0] (failing over
 * to the next port on a failure or GOAWAY); check, when not NULL, is the sink whose
 * counts every ACK is checked against. */
int asrc_start(asrc_t *a, const uint16_t *ports, unsigned nports, unsigned nsrc, uint64_t per_src,
               uint32_t comp, asink_t *check);
/* Waits until every frame is acknowledged or timeout_ms passed; stops the thread.
 * Returns 0 when everything was acknowledged. */
int asrc_join(asrc_t *a, int timeout_ms);
/* Frames acknowledged so far, over all streams. */
uint64_t asrc_acked(asrc_t *a);
/* The largest credit granted to stream i so far. */
uint32_t asrc_granted_max(asrc_t *a, unsigned i);

/* ------------------------------------------------------------ the worker between them */

/* A config for a test worker: threads loops, a v1 listener on a free loopback port, and,
 * when sink is not NULL, that sink as sink 0 with RILL_DELIVERY_ACKED. NULL on failure. */
rill_config_t *ap_worker_config(const char *sink, unsigned threads);
/* Creates a worker from cfg (destroyed either way), registers batch as computation comp
 * and starts it. Returns 0 or a rill error. */
int ap_worker_start(rill_worker_t **w, rill_config_t *cfg, uint32_t comp, rill_batch_cb batch);

#endif
