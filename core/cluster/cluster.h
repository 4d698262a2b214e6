/* Cluster membership over ZooKeeper.
 *
 * One thread per clustered worker owns the ZooKeeper handle. ZooKeeper's callbacks run
 * on the client's completion thread and only record the event and wake that thread; every
 * ZooKeeper request and zookeeper_close() happen on the cluster thread, never in a
 * callback. The thread keeps <root>/members/<id> alive, re-reads the full member list
 * after every children event (re-arming the watch with the same read), and publishes each
 * new view to the loops; when the worker stops, a last one without itself. */
#ifndef RILL_CORE_CLUSTER_H
#define RILL_CORE_CLUSTER_H

#include <stdint.h>

#include "cluster/view.h"
#include "rill/rill.h"

typedef struct rill__cluster rill__cluster_t;

/* 1 with cluster support (cluster.c); 0 in a build without it (RILL_CLUSTER=OFF), whose
 * cluster/none.c implements this interface as a worker that is never clustered and the
 * cluster calls of rill.h as RILL_EUNSUPPORTED. */
int rill__cluster_supported(void);

/* Prepares (does not start) the cluster state of w; peer_port is the bound port of the
 * worker's peer listener. notify(notify_ctx) runs on the cluster thread whenever the
 * loops have something to look at: a new view, or the worker has left. Returns 0,
 * RILL_EINVAL or RILL_ENOMEM. */
int rill__cluster_new(rill__cluster_t **out, rill_worker_t *w, int peer_port,
                      void (*notify)(void *ctx), void *notify_ctx);
/* Starts the cluster thread (once). Returns 0 or -errno. */
int rill__cluster_start(rill__cluster_t *c);
/* Leaves the cluster and joins the thread: publishes a view without this worker (once no
 * loop routes by the old one, its sources' frames all go to the keys' new owners), then
 * deletes the member node and closes the session. */
void rill__cluster_stop(rill__cluster_t *c);
void rill__cluster_free(rill__cluster_t *c);

/* Monotonic time (ns) at which this worker left the cluster during a stop, 0 before. */
uint64_t rill__cluster_left_at(const rill__cluster_t *c);

/* The current view (loops: inside their registry section only) and its generation. */
const rill_view_t *rill__cluster_view(const rill__cluster_t *c, uint64_t *gen);

/* A copy of the current view (caller frees), or NULL. */
rill_view_t *rill__cluster_view_copy(rill__cluster_t *c);
/* See rill_worker_view_wait. */
int rill__cluster_view_wait(rill__cluster_t *c, uint64_t epoch, int timeout_ms);

/* Session id and password of the live ZooKeeper session (tests expire it on purpose).
 * Returns 0, or RILL_ESTATE when not connected. */
int rill__cluster_client_id(rill_worker_t *w, int64_t *session_id, char passwd[16]);

/* Counters for rill_worker_stats. */
uint64_t rill__cluster_view_changes(const rill__cluster_t *c);
uint64_t rill__cluster_zk_errors(const rill__cluster_t *c);
/* Times this worker was fenced (cluster/fence.h). */
uint64_t rill__cluster_fenced(const rill__cluster_t *c);
/* Whether the worker is fenced now: its loops hold managed key groups back. Read it before
 * the view (rill__cluster_view) of the same iteration. */
int rill__cluster_fence_on(const rill__cluster_t *c);

#endif
