/* The worker and config objects behind the public handles; shared by the core's modules. */
#ifndef RILL_CORE_WORKER_INTERNAL_H
#define RILL_CORE_WORKER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "handoff/spsc.h"
#include "net/addr.h"
#include "registry/registry.h"
#include "util/limits.h"
#include "util/log.h"
#include "rill/rill.h"

#define RILL_DEFAULT_MAX_FRAME (1u << 20)
#define RILL_DEFAULT_SINK_BUFFER ((size_t)64 << 20)
#define RILL_DEFAULT_CARRY_BUDGET ((size_t)256 << 20)
#define RILL_DEFAULT_SOURCE_CREDIT (4u << 20)
/* Unless set, the credit pool is this many connections' credit. */
#define RILL_DEFAULT_CREDIT_POOL_CONNS 4u
#define RILL_SOURCE_CREDIT_POOL_MAX (1ull << 36)
/* Acked source streams a loop remembers (attached to a connection or not). */
#define RILL_STREAMS_PER_LOOP 4096u
enum { LOOP_IDLE, LOOP_RUNNING, LOOP_DONE };

#define RILL_DEFAULT_MAX_CONNS 10000u
#define RILL_DEFAULT_IDLE_MS 30000u
#define RILL_DEFAULT_SESSION_MS 10000u
#define RILL_DEFAULT_KEY_GROUPS 4096u
/* After leaving the cluster, keep serving this long so frames the others sent before
 * they saw the new view are still processed here. */
#define RILL_LEAVE_GRACE_NS (300ull * 1000000ull)
#define RILL_DRAIN_DEADLINE_NS (5ull * 1000000000ull)

typedef struct rill__listener_cfg {
    rill__addr_t addr;
    rill_framing_t framing;
    uint32_t comp_id;
    int has_key;
    uint64_t key;
    int peer; /* frames forwarded by other cluster members */
} rill__listener_cfg_t;

struct rill_config {
    unsigned threads;
    uint32_t max_frame;
    size_t sink_buffer;
    size_t carry_budget;
    uint32_t source_credit;      /* credit granted to each acked source connection, at least */
    uint64_t source_credit_pool; /* shared by few acked connections (0: none) */
    int has_credit_pool;         /* set by the user (else 4 x source_credit) */
    unsigned flush_ms;
    unsigned busy_wait_us; /* batching under load (rill_config_set_busy_wait_us); 0: off */
    unsigned max_conns;
    unsigned idle_ms;
    int dead_letter_sink;
    unsigned nlisteners;
    unsigned nsinks;
    rill__listener_cfg_t listeners[RILL_MAX_LISTENERS];
    rill__addr_t sinks[RILL_MAX_SINKS];
    uint8_t sink_acked[RILL_MAX_SINKS]; /* RILL_DELIVERY_ACKED */

    int has_metrics;
    rill__addr_t metrics_addr;

    /* Cluster (clustered != 0). */
    int clustered;
    char zk_hosts[1024];
    char root[256];
    char worker_id[64];
    rill__addr_t peer_addr;
    int has_peer_advertise;
    rill__addr_t peer_advertise; /* published instead of peer_addr when set */
    int has_source_advertise;
    rill__addr_t source_advertise; /* published as the source address when set */
    unsigned session_ms;
    unsigned key_groups; /* asked for; the cluster's number is agreed in ZooKeeper */
    char auth[256];      /* "user:password", never logged */
    rill_view_cb view_cb;
    uintptr_t view_ctx;
};

typedef struct rill__loop rill__loop_t;

struct rill_worker {
    rill_config_t cfg;
    unsigned nloops;
    rill__registry_t *reg;
    rill__loop_t **loops;
    /* One listening socket per listener, shared by every loop (each arms its own accept on
     * it); closed once no loop can accept any more (rill__worker_close_listeners). */
    int listen_fds[RILL_MAX_LISTENERS];
    int ports[RILL_MAX_LISTENERS];
    rill__spsc_t *rings;                  /* nloops * nloops handoff rings: [src * nloops + dst] */
    uint8_t loop_state[RILL_MAX_THREADS]; /* LOOP_IDLE / LOOP_RUNNING / LOOP_DONE, under lock */

    /* Lifecycle. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int started;      /* rill_worker_start() spawned threads */
    unsigned running; /* loops currently inside run (under lock) */
    unsigned exited;  /* loops that finished (under lock) */
    unsigned ready;   /* started loops whose ring set-up has finished (under lock) */
    int start_error;  /* first ring set-up failure of a started loop (under lock) */
    int loop_error;   /* first error a loop exited with (under lock) */
    pthread_t threads[RILL_MAX_THREADS];
    atomic_int stopping;

    /* Drain: quiescence across loops (see loop/drain.c). */
    atomic_uint drain_closed;  /* loops whose sources are all closed */
    atomic_uint drain_flushed; /* loops that ran their final flush */
    atomic_llong inflight;     /* bytes handed between or within loops, not yet processed */
    atomic_uint conns_open;    /* source connections over all loops (max_conns) */
    atomic_uint acked_open; /* of them (and of peer connections) acked: the credit pool's share */

    rill__log_flags_t logged;
    uint64_t stream_seed; /* random per worker: acked streams' ids derive from it */
    /* Peer links prove the cluster's credentials with it (when the cluster has them):
     * SHA-256 of a label and the digest credentials, never the credentials themselves. */
    int has_peer_key;
    uint8_t peer_key[32];

    struct rill__cluster *cluster; /* NULL unless clustered */
    struct rill__metrics *metrics; /* NULL unless configured */
    int peer_listener;             /* index of the peer listener, -1 when not clustered */
};

/* The decoder limit of a listener's connections: max_frame bounds a v1 length field
 * (12 + payload), and every framing's payload is at most max_frame - 12, so that any
 * message rill accepted can be re-encoded as a v1 frame within max_frame. The peer
 * listener accepts up to the largest max_frame any member may have. */
static inline uint32_t rill__listener_frame_limit(const rill_worker_t *w,
                                                  const rill__listener_cfg_t *lc)
{
    if (lc->peer)
        return RILL_MAX_FRAME_LIMIT;
    if (lc->framing == RILL_FRAMING_RILL)
        return w->cfg.max_frame;
    return w->cfg.max_frame - 12; /* lp and line limit the payload itself */
}

/* Closes the listening sockets (idempotent). Only once no loop has an accept armed or can
 * still arm one: by the last loop through its drain, or after every loop has exited. */
void rill__worker_close_listeners(rill_worker_t *w);

#endif
