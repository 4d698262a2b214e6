/* What the ZooKeeper side of the cluster shares: cluster.c (the session, its thread and
 * the views it publishes) and znodes.c (the nodes it writes and reads). */
#ifndef RILL_CORE_CLUSTER_INTERNAL_H
#define RILL_CORE_CLUSTER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <zookeeper/zookeeper.h>

#include "cluster/cluster.h"
#include "cluster/fence.h"

#define DATA_MAX 1024 /* a member node's data, read back */

struct rill__cluster {
    rill_worker_t *w;
    pthread_t thread;
    int started;

    /* Filled by the ZooKeeper completion thread (watcher), drained by the cluster thread. */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int ev_state;    /* latest session state reported, 0 = none pending */
    int ev_children; /* a children event arrived */

    /* Cluster thread only. */
    zhandle_t *zh;
    int connected;
    int node_created;
    uint64_t disconnected_at; /* ns; 0 while connected */
    int given_up;
    uint64_t retry_at;
    unsigned retry_ms;
    char members_path[512];
    char node_path[600];
    char node_data[512];
    struct ACL acl[2];
    struct ACL_vector acl_vec;
    int ever_connected;
    uint32_t session; /* sessions opened so far: a view carries the number of its own */
    unsigned groups;  /* the cluster's key groups, once agreed (0: not yet) */

    /* Published view: under mu, plus an atomic copy of the pointer for loops. */
    rill_view_t *view;
    _Atomic(rill_view_t *) view_pub;
    atomic_ullong view_gen;
    atomic_ullong left_at;
    atomic_ullong view_changes;
    atomic_ullong zk_errors;
    rill__fence_t fence;
    atomic_int logged_bad_member, logged_unreachable, logged_id_taken, logged_groups;

    /* Called (on the cluster thread) after a new view is published and after leaving. */
    void (*notify)(void *ctx);
    void *notify_ctx;
};

/* Counts a ZooKeeper error (zk_errors) and logs it by name. */
void rill__cluster_zk_error(rill__cluster_t *c, const char *what, int zrc);

/* The watcher of the session and of the member list (ZooKeeper's completion thread). */
void rill__cluster_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx);

/* Publishes v as the current view (the old one is freed once no loop reads it) and tells
 * the worker. */
void rill__cluster_publish(rill__cluster_t *c, rill_view_t *v);

/* Creates this worker's ephemeral member node (and the cluster's path); sets
 * c->node_created once it exists. Errors are counted and logged; the caller retries. */
void rill__znodes_register(rill__cluster_t *c);

/* Agrees the cluster's number of key groups, reads the member list (re-arming the
 * children watch) and every member's data, and publishes the view when it changed. On
 * an error sets c->ev_children so that the next turn tries again. */
void rill__znodes_reread(rill__cluster_t *c);

#endif
