/* Shared parts of the baseline peers (bench/peers): what a C developer would write
 * instead of rill for the same job. A straightforward v1 frame decoder that handles
 * frames split across reads, a direct table of computation function pointers keyed by
 * comp id, the two built-in computations (passthrough = 1, count = 2) and a growable
 * output buffer. Single-threaded: every peer runs one event loop on one thread. */
#ifndef RILL_BENCH_PEER_COMMON_H
#define RILL_BENCH_PEER_COMMON_H

#include <stddef.h>
#include <stdint.h>

#define PEER_MAX_FRAME (1u << 20) /* largest length field, as rill-worker's default */
#define PEER_READ_BUF (64u * 1024u)
#define PEER_OUT_HIGH ((size_t)16 << 20) /* stop reading sources above this much pending output */
#define PEER_OUT_LOW ((size_t)4 << 20)   /* and resume below this */
#define PEER_COMP_TABLE 64               /* direct table: comp ids 0..63 */

typedef struct peer_out {
    uint8_t *data;
    size_t len, off, cap; /* bytes [off, len) are pending */
} peer_out_t;

typedef struct peer_stats {
    uint64_t msgs_in, bytes_in, msgs_out, bytes_out, unknown, conns, conns_open, bad_frames,
        dropped;
} peer_stats_t;

struct peer_ctx;
typedef void (*peer_comp_fn)(struct peer_ctx *p, uint32_t comp_id, uint64_t key,
                             const uint8_t *payload, uint32_t len);

/* A connection's decoder state: the bytes of a frame that straddles reads. */
typedef struct peer_conn_dec {
    uint8_t *carry;
    size_t carry_len, carry_cap;
} peer_conn_dec_t;

typedef struct count_slot {
    uint64_t key, count; /* count 0 = empty */
} count_slot_t;

typedef struct peer_ctx {
    peer_comp_fn table[PEER_COMP_TABLE];
    int has_sink;
    peer_out_t out;
    count_slot_t *slots;
    size_t cap, used;
    peer_stats_t st;
} peer_ctx_t;

void peer_ctx_init(peer_ctx_t *p, int has_sink);
void peer_ctx_free(peer_ctx_t *p);

/* Decodes buf[0..len) of one connection: runs every complete frame's computation and keeps
 * a trailing partial frame in d. Returns 0, or -1 on a malformed frame (close the
 * connection). */
int peer_feed(peer_ctx_t *p, peer_conn_dec_t *d, const uint8_t *buf, size_t len);
void peer_dec_free(peer_conn_dec_t *d);

/* Pending output bytes. */
static inline size_t peer_out_pending(const peer_ctx_t *p)
{
    return p->out.len - p->out.off;
}
/* Marks n pending bytes written. */
void peer_out_consumed(peer_ctx_t *p, size_t n);

/* Command line shared by the peers: --listen ADDR --sink ADDR --threads 1. Returns 0, or
 * prints the problem and returns 2 (1 for --help, after printing usage). */
typedef struct peer_opts {
    char listen_host[128];
    int listen_port;
    char sink_host[128];
    int sink_port;
    int has_sink;
} peer_opts_t;
int peer_parse_args(const char *prog, const char *what, int argc, char **argv, peer_opts_t *o);

/* A non-blocking listening socket (SO_REUSEADDR, backlog 4096), or -1. */
int peer_listen(const char *host, int port);
/* A connected, blocking TCP socket with TCP_NODELAY, retried for up to 5 s, or -1. */
int peer_connect_retry(const char *host, int port);

void peer_print_final(const char *prog, const peer_stats_t *st);

#endif
