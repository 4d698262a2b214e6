/*
 * rill.h — the whole public C API of rill, an embeddable stream-processing worker core.
 *
 * An application creates a worker from a config, registers computations under 32-bit ids,
 * and runs the worker's loops (on threads rill starts, or on threads it brings itself).
 * Each loop owns one io_uring: it accepts TCP connections on the configured listeners,
 * decodes frames, looks each frame's computation up by id and hands the computation whole
 * batches of message views. Computations emit through an emitter, to a sink (an outbound
 * TCP connection, framed like the input) or to another computation.
 *
 * Conventions (they hold for every function below unless its comment says otherwise):
 *   - Fallible functions return int: >= 0 on success, < 0 on failure. Operating-system
 *     failures are returned as -errno; rill's own conditions are the RILL_E* codes, which
 *     lie far below any errno. rill_strerror()/rill_err_name() describe both.
 *   - There is no thread-local "last error": every failure is in the return value.
 *   - Misuse (NULL arguments, unknown ids, wrong state) returns RILL_EINVAL or RILL_ESTATE,
 *     never undefined behaviour.
 *   - "Any thread" means any thread, including a loop thread inside a callback, unless the
 *     comment adds "not from a callback".
 *
 * Nothing here needs varargs, unions, bitfields or inline functions, so cgo and other FFIs
 * can call every entry point directly.
 */
#ifndef RILL_H
#define RILL_H

#include <stddef.h>
#include <stdint.h>

#include "rill/version.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(RILL_STATIC)
#define RILL_EXTERN
#elif defined(RILL_BUILDING_LIBRARY)
#define RILL_EXTERN __attribute__((visibility("default")))
#else
#define RILL_EXTERN
#endif

/* ---------------------------------------------------------------- errors */

/* rill's own error codes. errno values pass through as -errno and never reach this range. */
#define RILL_ERRNO_MAP(X)                                                                          \
    X(EINVAL, -30001, "invalid argument")                                                          \
    X(ESTATE, -30002, "operation not valid in the object's current state")                         \
    X(ENOMEM, -30003, "out of memory")                                                             \
    X(EEXIST, -30004, "a computation with this id is already registered")                          \
    X(ENOENT, -30005, "no computation with this id is registered")                                 \
    X(EADDR, -30006, "cannot parse address (expected HOST:PORT)")                                  \
    X(EFRAME_SHORT, -30007, "frame length below the 12-byte minimum")                              \
    X(EFRAME_LONG, -30008, "frame length above max_frame")                                         \
    X(ELOOPTHREAD, -30009, "call not allowed from a loop thread")                                  \
    X(ERANGE, -30010, "value out of range")                                                        \
    X(EFULL, -30011, "outbound queue full")                                                        \
    X(EUNSUPPORTED, -30012, "not supported by this kernel (io_uring) or this build of rill")       \
    X(ECONTROL, -30013, "malformed control frame")

enum {
#define RILL_ERR_ENUM_(name, value, text) RILL_##name = (value),
    RILL_ERRNO_MAP(RILL_ERR_ENUM_)
#undef RILL_ERR_ENUM_
};

/* Returns a static, human-readable description of err (a RILL_E* code or a -errno). */
RILL_EXTERN const char *rill_strerror(int err);
/* Returns a static name for err: "RILL_EINVAL", "ECONNRESET", ..., "OK" for err >= 0, or
 * "UNKNOWN". */
RILL_EXTERN const char *rill_err_name(int err);

/* Returns RILL_VERSION_HEX of the library actually linked. Any thread. */
RILL_EXTERN unsigned rill_version(void);
/* Returns the version as a static "MAJOR.MINOR.PATCH" string. Any thread. */
RILL_EXTERN const char *rill_version_string(void);

/* Optional parts a build of rill may leave out (rill_features). */
enum {
    /* Cluster membership over ZooKeeper (the cluster section below); a library built with
     * RILL_CLUSTER=OFF has none and does not link libzookeeper_mt. */
    RILL_FEATURE_CLUSTER = 1 << 0
};
/* Returns the RILL_FEATURE_* bits of the library actually linked: a run-time answer, since
 * one header serves both builds and a program may run against a librill.so other than the
 * one it was built with. Any thread. */
RILL_EXTERN unsigned rill_features(void);

/* ---------------------------------------------------------------- config */

/*
 * A config collects settings before a worker is created. rill_worker_new() copies what it
 * needs, so a config may be destroyed or reused right after. Configs are not thread-safe:
 * use one from one thread at a time.
 */
typedef struct rill_config rill_config_t;

/* A worker: its loops, listeners, sinks, registry and (optionally) cluster membership. */
typedef struct rill_worker rill_worker_t;

/* Framing of a listener's byte stream. */
typedef enum rill_framing {
    /* v1: u32 length (12 + payload), u32 comp_id, u64 key, payload; big-endian. */
    RILL_FRAMING_RILL = 0,
    /* u32 big-endian payload length + payload; comp id fixed per listener,
     * key = 64-bit hash of the payload unless the listener fixes one. */
    RILL_FRAMING_LP = 1,
    /* newline-terminated text (a trailing "\r" is dropped); comp id fixed per listener,
     * key = hash of the line unless the listener fixes one. */
    RILL_FRAMING_LINE = 2
} rill_framing_t;

/* A config has no lock: every rill_config_* call may come from any thread, one thread at
 * a time per config. Setters copy what they are given and return RILL_EINVAL for a NULL
 * config. rill_worker_new() copies the config; it may be destroyed right after. */

/* Returns a new config with defaults (1 loop thread, max_frame 1 MiB), or NULL when out of
 * memory. The caller owns it and frees it with rill_config_destroy(). Any thread. */
RILL_EXTERN rill_config_t *rill_config_new(void);
/* Frees cfg. NULL is a no-op. */
RILL_EXTERN void rill_config_destroy(rill_config_t *cfg);

/* Number of loop threads, 1..64 (default 1). Returns 0 or RILL_ERANGE. */
RILL_EXTERN int rill_config_set_threads(rill_config_t *cfg, unsigned n);
/* Largest v1 length field, 12..1 GiB (default 1 MiB). One rule everywhere: a payload is
 * at most max_frame - 12 bytes, whatever carries it — a v1 frame, an lp frame or a line
 * from a source (longer ones are protocol errors) and every emit (longer ones are
 * RILL_EINVAL) — so whatever rill accepted fits a v1 frame within max_frame. The peer
 * listener of a clustered worker accepts frames up to 1 GiB, so a frame a member
 * accepted is never refused by the member it is forwarded to (give members one
 * max_frame anyway: an owner's computations cannot emit a payload above its own
 * limit). Returns 0 or RILL_ERANGE. */
RILL_EXTERN int rill_config_set_max_frame(rill_config_t *cfg, uint32_t bytes);
/* Upper bound, per loop and per sink, on output bytes waiting to be sent (default 64 MiB;
 * raised at rill_worker_new() to twice the largest frame if smaller). Above half of it the
 * loop stops reading its sources (backpressure) until it is below a quarter; output that
 * still does not fit is dropped and counted in sink_dropped. The same bound holds for each
 * peer link of a clustered worker (drops counted in peer_dropped). Returns 0 or
 * RILL_ERANGE. */
RILL_EXTERN int rill_config_set_sink_buffer(rill_config_t *cfg, size_t bytes);
/* Upper bound, for the whole worker, on the bytes held in source connections' partial
 * frames (a frame that straddles received pieces is carried until its last byte
 * arrives; default 256 MiB, 64 KiB..1 TiB, raised at rill_worker_new() to one largest
 * frame if smaller). Without it, max_conns connections that each send all but the last
 * byte of a max_frame frame hold max_conns x max_frame bytes. Above it, the connections
 * holding the largest carries are closed (counted in err_carry) until the total is
 * below it again; the carry_bytes gauge shows the total. After a frame above 64 KiB the
 * carry's memory is returned. Kafka's queued.max.request.bytes plays the same part.
 * Returns 0 or RILL_ERANGE. */
RILL_EXTERN int rill_config_set_carry_budget(rill_config_t *cfg, size_t bytes);
/* Most source connections open at once across all loops (default 10000); beyond it new
 * connections are closed right after accept and counted in conns_refused. 1..1000000.
 * Returns 0 or RILL_ERANGE. */
RILL_EXTERN int rill_config_set_max_conns(rill_config_t *cfg, unsigned n);
/* A source connection that has been inside one frame for this long — stalled, or
 * trickling bytes — is closed and counted in err_idle (default 30000 ms; 0 = never).
 * Connections idle between frames are left alone. Returns 0 or RILL_ERANGE (above 1 hour). */
RILL_EXTERN int rill_config_set_idle_timeout_ms(rill_config_t *cfg, unsigned ms);
/* Interval at which every computation's flush callback runs on every loop; 0 (default)
 * means flush only when the worker stops. Returns 0 or RILL_ERANGE (above 1 hour). */
RILL_EXTERN int rill_config_set_flush_interval_ms(rill_config_t *cfg, unsigned ms);
/* Batching under load: when a loop's last iteration handled 4 or more completions, its
 * next wait returns once as many completions are in (up to 32) or after us microseconds,
 * whichever comes first, instead of at the first one. Fewer, larger iterations cost less
 * CPU per frame, for up to us of extra latency while busy; an idle or lightly loaded
 * loop waits as before. 0 (default) turns it off. Returns 0 or RILL_ERANGE (above
 * 10000). docs/benchmarks.md has what 50 and 200 us did. */
RILL_EXTERN int rill_config_set_busy_wait_us(rill_config_t *cfg, unsigned us);

/*
 * Adds a TCP listener. addr is "HOST:PORT" (IPv4 dotted quad, "[v6]" or "localhost"; port 0
 * picks a free port, see rill_worker_listener_port()). comp_id and key are used only by the
 * lp and line framings: every message gets comp_id, and key when has_key is non-zero
 * (otherwise a hash of the payload). Returns the listener's index (0, 1, ...) or
 * RILL_EINVAL / RILL_EADDR / RILL_ERANGE (more than 16 listeners). The address is resolved here;
 * nothing is bound until rill_worker_new().
 */
RILL_EXTERN int rill_config_add_listener(rill_config_t *cfg, const char *addr,
                                         rill_framing_t framing, uint32_t comp_id, int has_key,
                                         uint64_t key);
/*
 * Adds a sink: each loop thread opens one TCP connection to addr when it starts and sends
 * emitted frames (v1 framing) there in batches. Returns the sink's index, which
 * computations pass to rill_emit_sink(), or RILL_EINVAL / RILL_EADDR / RILL_ERANGE (more
 * than 16 sinks).
 */
RILL_EXTERN int rill_config_add_sink(rill_config_t *cfg, const char *addr);
/* Frames for an unregistered computation go unchanged to this sink (index from
 * rill_config_add_sink) instead of being dropped; -1 (default) drops them. Both are
 * counted in unknown_comp. Returns 0 or RILL_EINVAL. */
RILL_EXTERN int rill_config_set_dead_letter_sink(rill_config_t *cfg, int sink);

/* How frames reach a sink. */
typedef enum rill_delivery {
    /* Sent as they are emitted; what the kernel had accepted when the connection broke is
     * lost (not counted: rill cannot know). The default. */
    RILL_DELIVERY_BEST_EFFORT = 0,
    /* An acknowledged stream (docs/protocol.md, "Control frames"): each loop's connection
     * starts with HELLO, the sink answers WELCOME and acknowledges (ACK) what it holds
     * safe; every frame stays retained until acknowledged and is sent again after a
     * reconnect, so a sink restart or a cut connection loses nothing the worker holds. At
     * most the sink's credit is unacknowledged; frames beyond it wait in the sink buffer
     * (then backpressure). A stop waits (up to its 5 s sink deadline) for the
     * acknowledgements; frames still unacknowledged then are counted in sink_dropped. */
    RILL_DELIVERY_ACKED = 1
} rill_delivery_t;

/* Sets how frames reach sink `sink` (index from rill_config_add_sink). Returns 0 or
 * RILL_EINVAL (no such sink, or an unknown delivery). */
RILL_EXTERN int rill_config_set_sink_delivery(rill_config_t *cfg, int sink, rill_delivery_t d);

/* Acked sources: a source connection whose first frame is HELLO (docs/protocol.md,
 * "Control frames") is an acknowledged stream. The worker answers WELCOME and
 * acknowledges (ACK, cumulative, at most one per connection and loop iteration) a frame
 * once its batch ran and everything the batch emitted to acked sinks was acknowledged by
 * them; after a reconnect to the same loop, frames that already ran are skipped
 * (dup_skipped) and only acknowledged once safe. The sender may have `bytes` of frames
 * unacknowledged per connection: the credit of WELCOME and every ACK (default 4 MiB).
 * Returns 0, RILL_EINVAL or RILL_ERANGE (below 4 KiB or above 1 GiB). */
RILL_EXTERN int rill_config_set_source_credit(rill_config_t *cfg, uint32_t bytes);

/* A credit pool that few acked connections share (acked sources and connections from
 * other members alike): each is granted max(source credit, pool / n), n being the acked
 * connections open in the worker when the WELCOME or ACK is sent (at most 1 GiB). One
 * connection can then keep a long pipeline busy, while many stay at the source credit
 * each. A grant shrinks with a connection's next ACK once others open. Default: 4 times
 * the source credit (16 MiB); 0 turns sharing off. Returns 0, RILL_EINVAL or RILL_ERANGE
 * (not 0 and below 4 KiB or above 64 GiB). */
RILL_EXTERN int rill_config_set_source_credit_pool(rill_config_t *cfg, uint64_t bytes);

/* Serves the worker's counters at http://addr/metrics in the Prometheus text format
 * (0.0.4), from a small thread of its own, from rill_worker_new() until
 * rill_worker_destroy(). addr is HOST:PORT (port 0 picks one: rill_worker_metrics_port).
 * Returns 0, RILL_EINVAL or RILL_EADDR. */
RILL_EXTERN int rill_config_set_metrics_listener(rill_config_t *cfg, const char *addr);

/* ---------------------------------------------------------------- logging */
typedef enum rill_log_level {
    RILL_LOG_ERROR = 0,   /* something the worker cannot do: bind, a loop's ring, a thread */
    RILL_LOG_WARNING = 1, /* something rill works around: a connection closed, a sink retried,
                           * frames dropped (and counted) */
    RILL_LOG_INFO = 2,    /* a change of state: joined or left the cluster, connected */
} rill_log_level_t;
/* Receives one log line: no trailing newline, no "rill: " prefix, at most 511 bytes,
 * valid during the call only. Called on whichever thread logs (a loop thread, the
 * cluster or metrics thread, or the caller of a rill_* function): it must not block for
 * long and must not call rill_* functions other than rill_strerror. */
typedef void (*rill_log_cb)(uintptr_t ctx, rill_log_level_t level, const char *msg);
/* Sends every log line of the library, of every worker in the process, to cb (NULL:
 * back to stderr, "rill: " lines, the default). Set it before creating workers; changing
 * it while they run is allowed, but not twice within one callback's run. The ZooKeeper
 * client's own log (zoo_set_log_stream) is not included. Any thread. */
RILL_EXTERN void rill_set_log_callback(rill_log_cb cb, uintptr_t ctx);

/* ---------------------------------------------------------------- cluster */

/*
 * A build without cluster support (RILL_CLUSTER=OFF; rill_features() lacks
 * RILL_FEATURE_CLUSTER) has every function of this section, so that programs link
 * unchanged, but cannot cluster: the rill_config_set_* calls below and
 * rill_worker_view_wait return RILL_EUNSUPPORTED, whatever their arguments;
 * rill_worker_view returns NULL, and the rill_view_* accessors, having no view to be
 * given, return what they return for NULL.
 */

/*
 * Makes the worker a member of a cluster coordinated by ZooKeeper. zk_hosts is the
 * ZooKeeper connect string ("127.0.0.1:2181,..."), root the cluster's path ("/rill/demo"),
 * worker_id this worker's name in the cluster (1..63 characters of [A-Za-z0-9_.-]; NULL
 * generates "w-<host>-<pid>-<random>", stable for the life of the process), and peer_addr the
 * HOST:PORT on which this worker accepts frames forwarded by other members (port 0 picks a
 * free port; the address must be reachable by the other members).
 * Once its loops run, the worker creates the ephemeral znode <root>/members/<worker_id>,
 * watches <root>/members, and routes every frame to the member that owns its key
 * (rendezvous hashing over the current view). Returns 0, RILL_EINVAL or RILL_EADDR
 * (RILL_EUNSUPPORTED without cluster support, like every setter below).
 */
RILL_EXTERN int rill_config_set_cluster(rill_config_t *cfg, const char *zk_hosts, const char *root,
                                        const char *worker_id, const char *peer_addr);
/* The HOST:PORT other members are told to send forwarded frames to, when it is not the
 * peer listener's own address: behind NAT, in a container with mapped ports, or through
 * a proxy. Default: the peer listener's address and bound port. Returns 0, RILL_EINVAL
 * or RILL_EADDR. */
RILL_EXTERN int rill_config_set_peer_advertise(rill_config_t *cfg, const char *addr);
/* The HOST:PORT this worker publishes as its source address: when another member
 * leaves, its GOAWAY to acked sources may name this address (docs/protocol.md). Default:
 * the first rill-framed source listener's address and bound port, its host replaced by
 * the published peer address's host when it listens on a wildcard (0.0.0.0, ::); when
 * both are wildcards nothing is published and GOAWAYs name no address. Returns 0,
 * RILL_EINVAL or RILL_EADDR. */
RILL_EXTERN int rill_config_set_source_advertise(rill_config_t *cfg, const char *addr);
/* ZooKeeper session timeout (default 10000 ms; 1000..120000). After losing the connection
 * for this long the worker considers its membership given up (it keeps serving with the
 * last view and rejoins when it reconnects). Returns 0 or RILL_ERANGE. */
RILL_EXTERN int rill_config_set_session_timeout_ms(rill_config_t *cfg, unsigned ms);
/* Key groups of the cluster (default 4096; 1..65536): every key belongs to one group, and
 * groups, not single keys, are what members own (docs/cluster.md). The number is the
 * cluster's, agreed through ZooKeeper: the first member to join a root writes its setting
 * there, and every member uses the number it finds (a different setting is logged and
 * not used). Returns 0 or RILL_ERANGE. */
RILL_EXTERN int rill_config_set_key_groups(rill_config_t *cfg, unsigned groups);
/* Digest authentication "user:password" (copied; never logged). The cluster's znodes are
 * then created with an ACL that lets anyone read them and only this identity change
 * them. NULL clears it. Returns 0 or RILL_EINVAL (no ':'). */
RILL_EXTERN int rill_config_set_cluster_auth(rill_config_t *cfg, const char *user_password);

/* A snapshot of the cluster's membership: the members sorted by id, and an epoch that
 * grows with every change ZooKeeper records in the members' parent (its cversion). */
typedef struct rill_view rill_view_t;

/* Called on loop thread 0 each time the view changes (v is valid during the call only),
 * and once when a stopping worker leaves, with a view of the others in which
 * rill_view_self is -1. Same rules as rill_batch_cb: must not block. */
typedef void (*rill_view_cb)(uintptr_t ctx, const rill_view_t *v);
/* Registers a view-change callback. ctx is passed back as given; rill never frees it, and
 * it must stay valid until rill_worker_destroy() of every worker made from this config
 * has returned (the callback may run until the loops have exited). Returns 0 or
 * RILL_EINVAL. */
RILL_EXTERN int rill_config_set_view_cb(rill_config_t *cfg, rill_view_cb cb, uintptr_t ctx);

/* Returns a copy of the current view, owned by the caller (rill_view_destroy), or NULL
 * when w is NULL or not clustered (always, without cluster support), has no view yet, or
 * memory is short. Any thread. */
RILL_EXTERN rill_view_t *rill_worker_view(rill_worker_t *w);
/*
 * Waits until the view's epoch differs from `epoch` (pass 0 to wait for the first view),
 * at most timeout_ms (-1 = no limit; the wait is measured on the monotonic clock). Returns
 * 1 when it changed, 0 on timeout or when the worker stops (rill_worker_shutdown wakes
 * every waiter), RILL_EINVAL (w NULL or not clustered), or RILL_ELOOPTHREAD when called
 * from a loop thread (of any worker: it would block that loop); RILL_EUNSUPPORTED without
 * cluster support. Any thread but a loop thread; meant for a thread that feeds membership
 * changes to an application.
 */
RILL_EXTERN int rill_worker_view_wait(rill_worker_t *w, uint64_t epoch, int timeout_ms);
/* Frees a view returned by rill_worker_view(). NULL is a no-op. Never pass the view a
 * rill_view_cb received (rill owns that one). Any thread. */
RILL_EXTERN void rill_view_destroy(rill_view_t *v);
/* The view's epoch: the cversion of <root>/members when it was read (for the view a
 * leaving worker adopts without itself: one above its last view); a later view of the
 * same cluster has a larger one. 0 for NULL. Any thread (v is immutable). */
RILL_EXTERN uint64_t rill_view_epoch(const rill_view_t *v);
/* Number of members in v (0 for NULL). Any thread. */
RILL_EXTERN unsigned rill_view_size(const rill_view_t *v);
/* Member i's id and peer address (valid while v lives), or NULL for a bad index. Members
 * are sorted by id. Any thread. */
RILL_EXTERN const char *rill_view_member(const rill_view_t *v, unsigned i);
RILL_EXTERN const char *rill_view_member_addr(const rill_view_t *v, unsigned i);
/* Member i's source address as it published it (rill_config_set_source_advertise: where
 * acked sources may be sent), "" when it published none, NULL for a bad index. */
RILL_EXTERN const char *rill_view_member_source(const rill_view_t *v, unsigned i);
/* Index of this worker in v, or -1 when it is not (or no longer) a member. Any thread. */
RILL_EXTERN int rill_view_self(const rill_view_t *v);
/* Index of the member that owns key in v (the owner of its key group), or -1 for an
 * empty view. Any thread. */
RILL_EXTERN int rill_view_owner(const rill_view_t *v, uint64_t key);
/* The cluster's number of key groups (0 for NULL), the group of key (0 .. groups - 1),
 * and the index of the member that owns a group (rendezvous hashing of the group over
 * the members; -1 for an empty view or a bad group). Any thread. */
RILL_EXTERN unsigned rill_view_key_groups(const rill_view_t *v);
RILL_EXTERN unsigned rill_view_key_group(const rill_view_t *v, uint64_t key);
RILL_EXTERN int rill_view_group_owner(const rill_view_t *v, unsigned group);

/* ---------------------------------------------------------------- computations */
/* The comp id of control frames (docs/protocol.md): no computation may be registered
 * under it and no emit may use it. */
#define RILL_CONTROL_COMP_ID 0xFFFFFFFFu

/* A view of one message. Valid only during the callback that receives it: copy what
 * must outlive the call. */
typedef struct rill_msg {
    const uint8_t *data; /* payload; NULL when len == 0 */
    uint32_t len;        /* payload bytes */
    uint32_t comp_id;    /* computation the frame was addressed to */
    uint64_t key;        /* partition key */
} rill_msg_t;

/* Opaque handle through which a callback emits output. Valid only during that callback. */
typedef struct rill_emitter rill_emitter_t;

/*
 * A batch of messages for one computation. Runs on a loop thread (loop = its index,
 * 0..threads-1). Every message of a given key is delivered on the same loop thread, in the
 * order its source connection sent it, so per-key state kept per loop needs no lock.
 * Returns >= 0 on success; a negative return counts the whole batch as failed
 * (errors counter) and keeps what was already emitted. Must not block; must not call
 * rill_worker_stop(), rill_worker_destroy() or rill_comp_unregister().
 */
typedef int (*rill_batch_cb)(uintptr_t ctx, unsigned loop, const rill_msg_t *msgs, size_t n,
                             rill_emitter_t *em);
/* Called on each loop thread when the worker flushes (every flush interval, and once
 * when it stops), so that computations holding state can emit it. Same rules as
 * rill_batch_cb. Optional (NULL). */
typedef void (*rill_flush_cb)(uintptr_t ctx, unsigned loop, rill_emitter_t *em);
/* Called exactly once when a registration ends (unregister or worker destroy), after no
 * loop can still call the computation. Runs on the thread that unregisters or destroys.
 * Optional (NULL). */
typedef void (*rill_release_cb)(uintptr_t ctx);

typedef struct rill_comp_ops {
    rill_batch_cb batch;     /* required */
    rill_flush_cb flush;     /* optional */
    rill_release_cb release; /* optional */
} rill_comp_ops_t;

/*
 * The batch callback of a computation whose per-key state rill keeps (managed state,
 * docs/state.md). values[i] points to the value of msgs[i].key: value_size bytes (as
 * registered), 8-byte aligned, all zero for a key the loop has no value for, read and
 * written in place. Messages of one key in a batch share one value, so a callback that
 * goes through msgs in order sees each message's effect in the next one. A value that is
 * all zero counts as absent: writing zeros deletes the key. The pointers are valid only
 * during the call. Otherwise the rules of rill_batch_cb.
 */
typedef int (*rill_state_batch_cb)(uintptr_t ctx, unsigned loop, const rill_msg_t *msgs,
                                   void *const *values, size_t n, rill_emitter_t *em);

typedef struct rill_state_ops {
    rill_state_batch_cb batch; /* required */
    rill_flush_cb flush;       /* optional: it may go through the loop's values with
                                * rill_state_scan */
    rill_release_cb release;   /* optional */
} rill_state_ops_t;

/* Largest value_size of a managed computation. */
#define RILL_STATE_VALUE_MAX 4096u

/* ---------------------------------------------------------------- worker */

/*
 * Creates a worker: binds every listener (so ports and address errors are known now),
 * prepares loops. No thread starts and no connection is made until the loops run.
 * On success stores the worker in *out (the caller owns it: rill_worker_destroy()) and
 * returns 0; on failure stores NULL and returns -errno (bind, socket) or a RILL_E* code.
 * Each listener is one socket without SO_REUSEPORT, so a port another process (or
 * worker) listens on gives -EADDRINUSE, and the address is named in a log line and in
 * rill_last_error(). Any thread.
 */
RILL_EXTERN int rill_worker_new(rill_worker_t **out, const rill_config_t *cfg);

/* Returns what the calling thread's last rill_worker_new could not do, naming the address
 * ("cannot listen on 127.0.0.1:7700: Address already in use"), the same text as its
 * error-level log line; "" when that call succeeded or its return code says all there is
 * (RILL_EINVAL, RILL_ENOMEM). Thread-local, never NULL; valid until the thread's next
 * rill_worker_new. Lets a caller (or a binding) report one error that names what failed
 * without parsing the log. */
RILL_EXTERN const char *rill_last_error(void);

/* Returns the number of loop threads. Any thread. */
RILL_EXTERN unsigned rill_worker_threads(const rill_worker_t *w);
/* Returns the port of the metrics endpoint, or RILL_EINVAL when none is configured. */
RILL_EXTERN int rill_worker_metrics_port(const rill_worker_t *w);
/* Returns the TCP port listener i is bound to (useful with port 0), or RILL_EINVAL. */
RILL_EXTERN int rill_worker_listener_port(const rill_worker_t *w, unsigned i);
/* Readiness, for a load balancer's or an orchestrator's probe: 1 when every loop runs,
 * the worker is not stopping and no loop failed, every loop's connection to every sink
 * is up, and, in a cluster, the worker is a member of its current view; else 0, with the first
 * reason not met written to why (NUL-terminated, cut to whylen; why may be NULL). RILL_EINVAL for a
 * NULL worker. Any thread (it takes the worker's lifecycle lock briefly: not per message). */
RILL_EXTERN int rill_worker_ready(rill_worker_t *w, char *why, size_t whylen);

/*
 * Starts one thread per loop and returns once every loop's io_uring exists (and, when
 * clustered, the cluster thread runs). Returns 0, RILL_EINVAL (w NULL), RILL_ESTATE
 * (already started or stopped, or a loop is being run by rill_worker_run()),
 * RILL_ELOOPTHREAD (called from a loop thread), RILL_ENOMEM / -errno from thread
 * creation, or the first loop's ring set-up error (-EPERM or -ENOSYS where io_uring is
 * forbidden or absent, RILL_EUNSUPPORTED, RILL_ENOMEM). On any failure no thread is left
 * running and the worker cannot be started again: destroy it. Any thread, not from a
 * callback.
 */
RILL_EXTERN int rill_worker_start(rill_worker_t *w);

/*
 * Runs loop i on the calling thread until the worker stops: for embedders that bring
 * their own threads (each of the threads loops must be run for traffic to flow, and for
 * a stop to complete). The loop's io_uring is created on this thread. Returns 0 after a
 * clean drain, RILL_ESTATE if loop i runs already (or the worker was started), RILL_EINVAL
 * for a bad index, RILL_ELOOPTHREAD from a loop thread, -errno / RILL_EUNSUPPORTED /
 * RILL_ENOMEM when the ring cannot be set up (the worker's other loops are then shut
 * down), or -errno from the cluster thread's creation (the first run of a clustered
 * worker starts it). Not from a callback.
 */
RILL_EXTERN int rill_worker_run(rill_worker_t *w, unsigned i);

/*
 * Asks every loop to drain and exit, and returns at once: loops stop accepting, close
 * their source connections (data rill already received is processed; data still in the
 * kernel's socket buffers is not read), deliver cross-thread work, call every
 * computation's flush callback (bounded by a 5 s deadline), send what is queued for
 * sinks (another 5 s at most), then return. Idempotent. Async-signal-safe; any thread,
 * callbacks included.
 */
RILL_EXTERN void rill_worker_shutdown(rill_worker_t *w);

/*
 * Waits until every loop has exited — after rill_worker_shutdown() was called from
 * elsewhere (a signal handler, a callback, another thread) — and joins the threads
 * rill_worker_start() created. Returns 0 when every loop drained cleanly, the first
 * error a loop exited with (its ring set-up failed, or its io_uring wait failed; the
 * worker's other loops were then shut down), RILL_EINVAL, or RILL_ELOOPTHREAD when called
 * from a loop thread. Any other thread.
 */
RILL_EXTERN int rill_worker_wait(rill_worker_t *w);

/*
 * rill_worker_shutdown() followed by rill_worker_wait(): returns once the worker has
 * drained and every loop has exited. Returns what rill_worker_wait() returns. Any thread
 * but a loop thread.
 */
RILL_EXTERN int rill_worker_stop(rill_worker_t *w);

/*
 * Stops the worker if needed, calls the release callback of every computation still
 * registered, closes everything and frees w. NULL is a no-op. Not from a loop thread
 * (it then returns without doing anything: a misuse that would otherwise deadlock).
 */
RILL_EXTERN void rill_worker_destroy(rill_worker_t *w);

/*
 * Registers a computation under id. name (may be NULL) is copied. ctx is opaque to rill
 * (a pointer, an index, a Go cgo.Handle). id 0xFFFFFFFF (RILL_CONTROL_COMP_ID) is reserved
 * for control frames and refused with RILL_EINVAL. On success returns 0 and the
 * registration owns ctx until its release callback runs; on failure returns RILL_EEXIST /
 * RILL_EINVAL / RILL_ENOMEM and does not call release (the caller keeps ctx). Any
 * thread, also while traffic flows; lookups by loops never wait for it.
 */
RILL_EXTERN int rill_comp_register(rill_worker_t *w, uint32_t id, const char *name,
                                   const rill_comp_ops_t *ops, uintptr_t ctx);

/* Flags for rill_comp_register_flags. */
enum {
    /* The computation keeps no state per key: a frame for it runs on the loop thread
     * that read it (or, from rill_emit_comp, on the loop that emitted it) instead of
     * being handed to the loop that owns its key, which saves the handoff. Frames of one
     * key may then run on several loops at once; those of one connection still run in
     * the order it sent them. Across members nothing changes: a clustered worker still
     * forwards a frame to the member that owns its key. */
    RILL_COMP_STATELESS = 1u << 0
};

/* rill_comp_register with RILL_COMP_* flags (RILL_EINVAL for an unknown bit). */
RILL_EXTERN int rill_comp_register_flags(rill_worker_t *w, uint32_t id, const char *name,
                                         const rill_comp_ops_t *ops, uintptr_t ctx, unsigned flags);

/*
 * Registers a computation with managed state: rill keeps a value of value_size bytes
 * (1..RILL_STATE_VALUE_MAX) per key, in memory of its own, and hands each batch the
 * values of its keys (rill_state_batch_cb). A key's value lives with its key group
 * (rill_view_key_group) on the loop that runs the group. The values are freed when the
 * registration ends, after release. Returns as rill_comp_register (RILL_EINVAL also for a
 * value_size out of range). docs/state.md says what is and is not kept across a
 * membership change.
 */
RILL_EXTERN int rill_comp_register_state(rill_worker_t *w, uint32_t id, const char *name,
                                         const rill_state_ops_t *ops, uintptr_t ctx,
                                         uint32_t value_size);

/*
 * Goes through the calling loop's values of the managed computation being called back
 * (from its batch or flush callback, with that callback's emitter): stores up to max
 * keys and pointers to their values, from *cursor on (0 to begin), advances *cursor and
 * returns how many it stored, 0 once there are no more. Keys whose value is all zero are
 * skipped. The pointers are valid, and writable, until the callback returns. Returns
 * RILL_EINVAL when em is not a managed computation's or an argument is NULL.
 */
RILL_EXTERN int rill_state_scan(rill_emitter_t *em, uint64_t *cursor, uint64_t *keys, void **values,
                                size_t max);

/*
 * Removes the computation registered under id, waits until no loop can still call it,
 * then runs its release callback on this thread. Frames that arrive for id afterwards are
 * counted as unknown_comp. Returns 0, RILL_EINVAL (w NULL), RILL_ENOENT, or
 * RILL_ELOOPTHREAD from a loop thread of any worker (waiting for this worker's loops
 * would deadlock one of its own and stall another's). Any thread but a loop thread.
 */
RILL_EXTERN int rill_comp_unregister(rill_worker_t *w, uint32_t id);

/* ---------------------------------------------------------------- emitting */

/*
 * Queues one v1 frame (comp_id, key, data[0..len)) for sink `sink`; data is copied.
 * Returns 0, RILL_EINVAL (bad sink index, a NULL argument, comp_id RILL_CONTROL_COMP_ID,
 * or len above max_frame - 12), RILL_EFULL when the sink's buffer is full or RILL_ENOMEM
 * when it cannot grow (either way the frame is dropped and counted in sink_dropped). An
 * acked sink's buffer is never full: it grows past sink_buffer rather than drop a frame
 * whose source frame would be acknowledged, and the loop's backpressure bounds it.
 * Only from the callback that received em.
 */
RILL_EXTERN int rill_emit_sink(rill_emitter_t *em, int sink, uint32_t comp_id, uint64_t key,
                               const void *data, size_t len);

/*
 * Queues msgs[0..n) for sink `sink` as v1 frames, each with its own comp_id, key and
 * payload (copied): a whole batch passed on in one call. Returns the number queued (n,
 * or fewer when the sink's buffer filled or could not grow: the rest are dropped and
 * counted in sink_dropped), or RILL_EINVAL (bad sink index, a NULL argument, a comp_id
 * RILL_CONTROL_COMP_ID, or a payload above max_frame - 12; then nothing is queued). Only
 * from the callback that received em.
 */
RILL_EXTERN int rill_emit_sink_msgs(rill_emitter_t *em, int sink, const rill_msg_t *msgs, size_t n);

/*
 * Returns how many bytes of frames (16 + payload each, on the wire) sink `sink` still takes from
 * this callback before rill_emit_sink returns RILL_EFULL: SIZE_MAX for an acked sink (never full),
 * 0 for a bad index or a NULL em. Only what the callback queues lowers it while the callback runs
 * (the loop sends between callbacks), so a computation (or a binding that queues emits and hands
 * them over later) can tell in advance which frames fit. Only from the callback that received em.
 */
RILL_EXTERN size_t rill_emit_sink_room(const rill_emitter_t *em, int sink);

/*
 * Sends one message to computation comp_id, routed by key like an ingested frame (it may
 * run on another loop thread or, clustered, on the member that owns key); data is
 * copied. It is processed after the current callback returns. Returns 0, RILL_EINVAL (a
 * NULL argument, comp_id RILL_CONTROL_COMP_ID, or len above max_frame - 12), or the
 * reason it was dropped: RILL_EFULL (no link to the owning member; counted in
 * peer_dropped) or RILL_ENOMEM (no memory to queue it; counted in handoff_dropped, or
 * peer_dropped when bound for another member). Only from the callback that received em.
 */
RILL_EXTERN int rill_emit_comp(rill_emitter_t *em, uint32_t comp_id, uint64_t key, const void *data,
                               size_t len);

/* ---------------------------------------------------------------- statistics */

/*
 * The worker's counters since it was created, summed over its loops: monotonic, except the
 * four marked "gauge" (a current value). Fields are only ever added at the end; callers
 * pass the sizeof they compiled (see rill_worker_stats), so their fields never move.
 * rill-worker's stats line and the /metrics endpoint show the same fields
 * (docs/operations.md names each one).
 *
 * Three counters count dropped frames, by where the frame was going: sink_dropped (a
 * sink), peer_dropped (another cluster member), handoff_dropped (another loop of this
 * worker, or an emit_comp to this loop). A frame whose send failed is queued again, not
 * dropped; bytes the kernel had accepted before a connection vanished cannot be counted.
 */
typedef struct rill_stats {
    uint64_t msgs_in;            /* frames decoded from sources */
    uint64_t bytes_in;           /* bytes received from sources */
    uint64_t msgs_dispatched;    /* messages routed to a computation id (incl. emit_comp and
                                    unknown ids) */
    uint64_t batches;            /* computation calls */
    uint64_t msgs_out;           /* frames queued for sinks (incl. dead letters) */
    uint64_t bytes_out;          /* bytes written to sinks */
    uint64_t handoff_msgs;       /* messages passed to another loop thread */
    uint64_t conns_accepted;     /* source connections accepted */
    uint64_t conns_open;         /* gauge: source connections open now */
    uint64_t err_frame_short;    /* connections closed: length below 12 */
    uint64_t err_frame_long;     /* connections closed: v1 length above max_frame, or an lp or
                                    line payload above max_frame - 12 */
    uint64_t err_midframe;       /* connections that closed inside a frame */
    uint64_t err_conn;           /* socket errors, failed accepts, no memory for a connection */
    uint64_t unknown_comp;       /* frames for an unregistered computation */
    uint64_t comp_errors;        /* messages in batches whose callback returned < 0 */
    uint64_t sink_dropped;       /* frames for a sink dropped: its buffer full, no memory, or
                                    still queued at the stop deadline */
    uint64_t sink_errors;        /* sink and peer link connection failures (connects, sends) */
    uint64_t enobufs;            /* recv re-arms after the buffer ring ran dry (backpressure) */
    uint64_t conns_refused;      /* connections closed at once: max_conns reached */
    uint64_t err_idle;           /* connections closed: stalled inside a frame past idle_timeout */
    uint64_t paused;             /* times a loop stopped reading its sources (backpressure) */
    uint64_t forwarded;          /* frames sent to the member that owns their key */
    uint64_t peer_in;            /* frames received from other members */
    uint64_t misrouted;          /* frames processed here although this worker's view does not
                                    give it their key: forwarded by a member whose view
                                    differs (never sent back), or from a source while the
                                    worker had no view yet */
    uint64_t rerouted;           /* frames queued for a member that left, routed again */
    uint64_t view_changes;       /* views this worker adopted (including the one a leaving
                                    worker adopts without itself) */
    uint64_t zk_errors;          /* ZooKeeper failures, malformed member data */
    uint64_t sink_queued_bytes;  /* gauge: output waiting for sinks and peer links */
    uint64_t stage_queued_bytes; /* gauge: frames waiting to be handed to another loop */
    uint64_t held_buffers;       /* gauge: received buffers held back by backpressure */
    uint64_t peer_dropped;       /* frames for another cluster member dropped: no link to that
                                    member, no memory to queue it, or still queued when a
                                    drain deadline passed */
    uint64_t handoff_dropped;    /* frames for another loop of this worker, or for the emitting
                                    loop's own emit_comp queue, dropped: no memory */
    uint64_t err_carry;          /* connections closed: the worker's partial frames were above
                                    the carry budget (the largest carries go first) */
    uint64_t carry_bytes;        /* gauge: bytes held in source connections' partial frames */
    uint64_t resent;             /* frames an acked link sent again after a reconnect */
    uint64_t credit_waits;       /* times an acked link had frames queued and no credit */
    uint64_t err_control;        /* connections closed for a malformed or unexpected control
                                    frame */
    uint64_t retained_bytes;     /* gauge: bytes acked links hold until acknowledged */
    uint64_t acked_in;           /* data frames that ran from acked source streams */
    uint64_t dup_skipped;        /* resent frames of acked sources that had already run */
    uint64_t acks_sent;          /* ACK frames sent to acked sources */
    uint64_t ack_barriers;       /* points where acked frames waited for downstream ACKs */
    uint64_t ack_wait_ns;        /* how long those waited, summed */
    uint64_t acked_conns;        /* gauge: source connections that began with HELLO */
    uint64_t err_auth;           /* peer connections refused: no proof of the credentials */
    uint64_t sinks_up;           /* gauge: sink connections up, over all loops */
    uint64_t state_bytes;        /* gauge: memory managed state holds (docs/state.md) */
    uint64_t groups_owned;       /* gauge: key groups this member owns */
    uint64_t groups_moved;       /* key groups whose state this member sent to a new owner */
    uint64_t handoff_wait_ns;    /* time new groups held frames back for their state */
    uint64_t state_lost_groups;  /* key groups that ran on without their state */
    uint64_t state_rejected;     /* chunks of managed state refused */
    uint64_t groups_promoted;    /* key groups whose standby copy here took over */
    uint64_t fenced;             /* times managed groups were held back: session maybe lost */
    uint64_t groups_waiting;     /* gauge: key groups holding frames back for their state */
    uint64_t standby_bytes;      /* bytes of managed state sent to standby copies */
} rill_stats_t;

/*
 * Fills out with a snapshot of the worker's counters (summed over loops; each counter is
 * read atomically, the set is not a single instant). size = sizeof(rill_stats_t) as the
 * caller compiled it, so an older caller keeps working with a newer library: the first
 * size bytes are written. Returns 0 or RILL_EINVAL (w or out NULL, size 0). Any thread.
 */
RILL_EXTERN int rill_worker_stats(const rill_worker_t *w, rill_stats_t *out, size_t size);

/* Buckets of the batch time histogram (rill_comp_stats_t.batch_buckets): fixed upper
 * bounds 1, 2.5 and 5 times each power of ten from 1 us to 1 s (19 bounds), and a last
 * bucket above 1 s. rill_batch_bucket_le_ns gives the bounds. */
#define RILL_BATCH_BUCKETS 20

/* Returns the upper bound of histogram bucket i in nanoseconds (1000 for i = 0, ...,
 * 1000000000 for i = 18; inclusive), UINT64_MAX for the last bucket
 * (i = RILL_BATCH_BUCKETS - 1), 0 for i >= RILL_BATCH_BUCKETS. Any thread. */
RILL_EXTERN uint64_t rill_batch_bucket_le_ns(unsigned i);

/* One computation's counters since it was registered, summed over loops. Fields are only
 * ever added at the end (callers pass the sizeof they compiled). */
typedef struct rill_comp_stats {
    uint64_t msgs;    /* messages delivered */
    uint64_t batches; /* callback invocations */
    uint64_t errors;  /* messages in batches that returned < 0 */
    char name[64];    /* the name given to rill_comp_register ("" for NULL), cut to 63
                         bytes; always NUL-terminated. Read in the same step as the
                         counters, so both belong to one registration */
    /* How long the batch callbacks took: the loop reads the monotonic clock before and
     * after each call (time the callback spent emitting included; flush not counted). */
    uint64_t batch_ns;                          /* nanoseconds, summed over the calls */
    uint64_t batch_buckets[RILL_BATCH_BUCKETS]; /* calls per bucket, not cumulative: [i]
                         counts those that took more than bucket i - 1's bound and at most
                         rill_batch_bucket_le_ns(i). They add up to batches once the loops
                         are at rest (each field is read on its own while they run) */
} rill_comp_stats_t;

/* Fills out with computation id's counters (the first size bytes of it; size =
 * sizeof(rill_comp_stats_t) as the caller compiled it). Returns 0, RILL_ENOENT (id not
 * registered) or RILL_EINVAL (w or out NULL, size 0). Any thread. */
RILL_EXTERN int rill_comp_stats(rill_worker_t *w, uint32_t id, rill_comp_stats_t *out, size_t size);

/*
 * Lists the registered computations: copies the ids of the first min(n, total) of them, in
 * registration order, into ids[0..), and returns total, the number registered now (which
 * may exceed n: call again with a larger array; ids may be NULL when n is 0). Returns
 * RILL_EINVAL when w is NULL, or ids is NULL and n > 0. The caller owns ids; rill keeps no
 * pointer to it. The list is one consistent snapshot, but a computation may be
 * unregistered right after (rill_comp_stats then returns RILL_ENOENT for its id). Any
 * thread; it never waits for the loops.
 */
RILL_EXTERN int rill_comp_list(rill_worker_t *w, uint32_t *ids, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* RILL_H */
