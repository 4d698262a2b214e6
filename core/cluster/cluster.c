#include "cluster/cluster.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zookeeper/zookeeper.h>

#include "cluster/fence.h"
#include "util/clock.h"
#include "util/log.h"
#include "worker_internal.h"

#define POLL_MS 50 /* the thread notices a stop this often */
#define RETRY_MIN_MS 100
#define RETRY_MAX_MS 5000
#define DATA_MAX 1024

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

static const char *zk_state_name(int s)
{
    if (s == ZOO_CONNECTED_STATE)
        return "connected";
    if (s == ZOO_CONNECTING_STATE)
        return "connecting";
    if (s == ZOO_ASSOCIATING_STATE)
        return "associating";
    if (s == ZOO_EXPIRED_SESSION_STATE)
        return "session expired";
    if (s == ZOO_AUTH_FAILED_STATE)
        return "authentication failed";
    return "not connected";
}

/* ZooKeeper's error codes collide with -errno (ZCONNECTIONLOSS is -4): report them by
 * name, never pass them on as rill codes. */
static void zk_error(rill__cluster_t *c, const char *what, int zrc)
{
    atomic_fetch_add(&c->zk_errors, 1);
    rill__log("cluster: %s: %s", what, zerror(zrc));
}

/* Runs on ZooKeeper's completion thread: record and wake, nothing else. */
static void watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    (void)zh, (void)path;
    rill__cluster_t *c = ctx;
    pthread_mutex_lock(&c->mu);
    if (type == ZOO_SESSION_EVENT)
        c->ev_state = state;
    else if (type == ZOO_CHILD_EVENT)
        c->ev_children = 1;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->mu);
}

/* Every timed wait on c->cond runs on CLOCK_MONOTONIC: a wall-clock step (NTP, date -s)
 * must not stretch a 50 ms poll into hours and stall the feeder of view changes or a stop. */
static void cond_init_monotonic(pthread_cond_t *cond)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(cond, &ca);
    pthread_condattr_destroy(&ca);
}

/* Absolute CLOCK_MONOTONIC time POLL_MS from now, for pthread_cond_timedwait on c->cond. */
static struct timespec poll_deadline(void)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_nsec += POLL_MS * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    return until;
}

static int is_wildcard(const rill__addr_t *a)
{
    if (a->ss.ss_family == AF_INET)
        return ((const struct sockaddr_in *)&a->ss)->sin_addr.s_addr == htonl(INADDR_ANY);
    return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&a->ss)->sin6_addr);
}

static void set_port(rill__addr_t *a, int port)
{
    if (a->ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&a->ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)&a->ss)->sin6_port = htons((uint16_t)port);
}

/* The source address this worker publishes (see rill_config_set_source_advertise), or
 * an empty string. peer: the peer address it publishes. */
static void source_address(const rill_worker_t *w, const rill__addr_t *peer, char *out, size_t size)
{
    const rill_config_t *cfg = &w->cfg;
    out[0] = '\0';
    if (cfg->has_source_advertise) {
        rill__addr_format(&cfg->source_advertise, out, size);
        return;
    }
    for (unsigned i = 0; i < cfg->nlisteners; i++) {
        const rill__listener_cfg_t *lc = &cfg->listeners[i];
        if ((int)i == w->peer_listener || lc->peer || lc->framing != RILL_FRAMING_RILL)
            continue;
        rill__addr_t a = lc->addr;
        if (is_wildcard(&a)) {
            if (is_wildcard(peer))
                return; /* no host to give */
            a = *peer;
        }
        set_port(&a, w->ports[i]);
        rill__addr_format(&a, out, size);
        return;
    }
}

int rill__cluster_supported(void)
{
    return 1;
}

int rill__cluster_new(rill__cluster_t **out, rill_worker_t *w, int peer_port,
                      void (*notify)(void *ctx), void *notify_ctx)
{
    rill__cluster_t *c = calloc(1, sizeof *c);
    if (!c)
        return RILL_ENOMEM;
    c->w = w;
    c->notify = notify;
    c->notify_ctx = notify_ctx;
    pthread_mutex_init(&c->mu, NULL);
    cond_init_monotonic(&c->cond);
    const rill_config_t *cfg = &w->cfg;
    snprintf(c->members_path, sizeof c->members_path, "%s/members", cfg->root);
    snprintf(c->node_path, sizeof c->node_path, "%s/%s", c->members_path, cfg->worker_id);
    rill__addr_t a = cfg->peer_addr;
    if (cfg->has_peer_advertise)
        a = cfg->peer_advertise; /* NAT, mapped ports, a proxy: its port as given */
    else
        set_port(&a, peer_port);
    char addr[96], source[96];
    rill__addr_format(&a, addr, sizeof addr);
    source_address(w, &a, source, sizeof source);
    if (rill__member_format(c->node_data, sizeof c->node_data, cfg->worker_id, addr, source) < 0) {
        free(c);
        return RILL_EINVAL;
    }
    c->retry_ms = RETRY_MIN_MS;
    *out = c;
    return 0;
}

static struct ACL_vector *node_acl(rill__cluster_t *c)
{
    /* With auth: anyone may read, only the authenticated identity may change. */
    if (!c->w->cfg.auth[0])
        return &ZOO_OPEN_ACL_UNSAFE;
    c->acl[0].perms = ZOO_PERM_READ;
    c->acl[0].id = ZOO_ANYONE_ID_UNSAFE;
    c->acl[1].perms = ZOO_PERM_ALL;
    c->acl[1].id = ZOO_AUTH_IDS;
    c->acl_vec.count = 2;
    c->acl_vec.data = c->acl;
    return &c->acl_vec;
}

/* Creates every missing ancestor of path (an existing one is fine). The cluster's own
 * nodes (the root and below) get the cluster's ACL; ancestors above the root are shared
 * namespace (other clusters live beside this one) and stay open. */
static int create_parents(rill__cluster_t *c, const char *path)
{
    char p[600];
    size_t root_len = strlen(c->w->cfg.root);
    snprintf(p, sizeof p, "%s", path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        struct ACL_vector *acl = (size_t)(s - p) < root_len ? &ZOO_OPEN_ACL_UNSAFE : node_acl(c);
        int rc = zoo_create(c->zh, p, NULL, -1, acl, 0, NULL, 0);
        *s = '/';
        if (rc != ZOK && rc != ZNODEEXISTS)
            return rc;
    }
    int rc = zoo_create(c->zh, path, NULL, -1, node_acl(c), 0, NULL, 0);
    return rc == ZNODEEXISTS ? ZOK : rc;
}

static void register_node(rill__cluster_t *c)
{
    int rc = create_parents(c, c->members_path);
    if (rc != ZOK) {
        zk_error(c, "creating the cluster path", rc);
        return;
    }
    rc = zoo_create(c->zh, c->node_path, c->node_data, (int)strlen(c->node_data), node_acl(c),
                    ZOO_EPHEMERAL, NULL, 0);
    if (rc == ZOK) {
        c->node_created = 1;
        rill__log_info("cluster: joined as %s", c->node_path);
        return;
    }
    if (rc == ZNODEEXISTS) {
        /* Our own node from an expired session lingers until the server drops it; another
         * live worker with the same id would hold it for good. Either way: retry. */
        rill__log_once(&c->logged_id_taken,
                       "cluster: %s exists (an earlier session of this id, or a duplicate "
                       "worker id); retrying until it is free",
                       c->node_path);
        return;
    }
    zk_error(c, "creating the member node", rc);
}

static void publish(rill__cluster_t *c, rill_view_t *v)
{
    pthread_mutex_lock(&c->mu);
    rill_view_t *old = c->view;
    c->view = v;
    atomic_store_explicit(&c->view_pub, v, memory_order_release);
    atomic_fetch_add_explicit(&c->view_gen, 1, memory_order_release);
    atomic_fetch_add(&c->view_changes, 1);
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->mu);
    c->notify(c->notify_ctx);
    if (old) {
        /* Loops read views inside their registry sections only. */
        rill__registry_wait_readers(c->w->reg);
        free(old);
    }
}

/* The cluster's number of key groups: the first member to get here writes its setting to
 * <root>/key_groups (persistent: it outlives every member, so the owner of a key never
 * changes for a number's sake), and every member uses what it finds there. */
static int agree_groups(rill__cluster_t *c)
{
    if (c->groups)
        return ZOK;
    const rill_config_t *cfg = &c->w->cfg;
    char path[600], data[16];
    snprintf(path, sizeof path, "%s/key_groups", cfg->root);
    int len = snprintf(data, sizeof data, "%u", cfg->key_groups);
    int rc = create_parents(c, c->members_path); /* the root, too */
    if (rc == ZOK)
        rc = zoo_create(c->zh, path, data, len, node_acl(c), 0, NULL, 0);
    if (rc == ZOK) {
        c->groups = cfg->key_groups;
        return ZOK;
    }
    if (rc != ZNODEEXISTS)
        return rc;
    char got[16];
    len = sizeof got - 1;
    rc = zoo_get(c->zh, path, 0, got, &len, NULL);
    if (rc != ZOK)
        return rc;
    got[len < 0 ? 0 : len] = '\0';
    char *end;
    unsigned long n = strtoul(got, &end, 10);
    if (len <= 0 || *end || n < 1 || n > RILL_MAX_KEY_GROUPS) {
        if (!atomic_load(&c->logged_groups)) /* retried every turn: counted once */
            atomic_fetch_add(&c->zk_errors, 1);
        rill__log_once(&c->logged_groups,
                       "cluster: %s holds no key group count (1..%u); no view until it does "
                       "(counted in zk_errors)",
                       path, RILL_MAX_KEY_GROUPS);
        return ZBADARGUMENTS;
    }
    c->groups = (unsigned)n;
    if (c->groups != cfg->key_groups)
        rill__log("cluster: the cluster has %u key groups (%s); this worker's setting, %u, "
                  "is not used",
                  c->groups, path, cfg->key_groups);
    return ZOK;
}

/* Reads the member list (re-arming the children watch) and every member's data. */
static void reread(rill__cluster_t *c)
{
    int grc = agree_groups(c);
    if (grc != ZOK) {
        if (grc != ZBADARGUMENTS)
            zk_error(c, "reading the cluster's key groups", grc);
        c->ev_children = 1; /* try again on the next turn */
        return;
    }
    struct String_vector kids = {0, NULL};
    struct Stat st;
    int rc = zoo_wget_children2(c->zh, c->members_path, watcher, c, &kids, &st);
    if (rc == ZNONODE) {
        rc = create_parents(c, c->members_path);
        if (rc == ZOK)
            rc = zoo_wget_children2(c->zh, c->members_path, watcher, c, &kids, &st);
    }
    if (rc != ZOK) {
        zk_error(c, "reading the member list", rc);
        c->ev_children = 1; /* try again on the next turn */
        return;
    }
    unsigned n = kids.count > RILL_MAX_MEMBERS ? RILL_MAX_MEMBERS : (unsigned)kids.count;
    rill_view_t *v = rill__view_alloc(n, c->groups);
    if (!v) {
        deallocate_String_vector(&kids);
        return;
    }
    unsigned k = 0;
    for (unsigned i = 0; i < n; i++) {
        char path[700], data[DATA_MAX];
        int len = sizeof data - 1;
        snprintf(path, sizeof path, "%s/%s", c->members_path, kids.data[i]);
        struct Stat mst;
        memset(&mst, 0, sizeof mst);
        rc = zoo_get(c->zh, path, 0, data, &len, &mst);
        if (rc == ZNONODE)
            continue; /* left between the two reads; the next event brings the list */
        if (rc != ZOK) {
            zk_error(c, "reading member data", rc);
            continue;
        }
        if (len < 0 || rill__member_parse(&v->m[k], kids.data[i], data, (size_t)len) < 0) {
            atomic_fetch_add(&c->zk_errors, 1);
            rill__log_once(&c->logged_bad_member,
                           "cluster: member %s has malformed data; it is not routed to "
                           "(further cases only counted in zk_errors)",
                           kids.data[i]);
            continue;
        }
        v->m[k].since = (uint64_t)mst.czxid;
        k++;
    }
    deallocate_String_vector(&kids);
    v->n = k;
    v->epoch = (uint64_t)(uint32_t)st.cversion;
    v->session = c->session;
    rill__view_finish(v, c->w->cfg.worker_id);
    pthread_mutex_lock(&c->mu);
    int same = c->view && c->view->epoch == v->epoch && c->view->session == v->session &&
               rill__view_same_members(c->view, v);
    pthread_mutex_unlock(&c->mu);
    if (same) {
        free(v);
        return;
    }
    int self_in = v->self >= 0;
    publish(c, v);
    /* After the view (fence.h): a loop that sees the fence lifted sees this view too. */
    if (rill__fence_view(&c->fence, self_in))
        rill__log("cluster: back with a new session; managed key groups run again once "
                  "their state is here");
}

/* Leaving: stop owning keys before the others take them over. Publishes the current view
 * without this worker (self = -1, epoch + 1: the cversion the delete of our node will
 * give, when nothing else changes meanwhile), so from now on every frame from this
 * worker's sources, its emits and its re-routed frames go to the keys' new owners over
 * the peer links the loops already have; frames arriving over the peer listener are
 * still processed here (misrouted), never sent back. publish() returns only after every
 * loop has left the registry sections that could still route by the old view, so once
 * the node is deleted no frame of this worker's sources is applied here. When this
 * worker was the only member there is nobody to hand keys to: it keeps its view. */
static void publish_departure(rill__cluster_t *c)
{
    const rill_view_t *cur = c->view; /* written by this thread only */
    if (!cur || cur->self < 0 || cur->n < 2)
        return;
    rill_view_t *v = rill__view_alloc(cur->n - 1, cur->groups);
    if (!v)
        return; /* no memory: the loops keep the old view through the grace window */
    unsigned k = 0;
    for (unsigned i = 0; i < cur->n; i++)
        if ((int)i != cur->self)
            v->m[k++] = cur->m[i];
    v->n = k;
    v->epoch = cur->epoch + 1;
    v->session = cur->session;
    rill__view_finish(v, NULL); /* self -1; the groups it owned go to their next choices */
    publish(c, v);
}

static void close_session(rill__cluster_t *c)
{
    /* Unpublish under mu, close outside it: zookeeper_close joins the completion thread,
     * whose watcher takes mu. */
    pthread_mutex_lock(&c->mu);
    zhandle_t *zh = c->zh;
    c->zh = NULL;
    pthread_mutex_unlock(&c->mu);
    if (zh)
        zookeeper_close(zh); /* on this thread, never from a callback */
    c->connected = 0;
    c->node_created = 0;
}

static void open_session(rill__cluster_t *c, uint64_t now)
{
    zhandle_t *zh =
        zookeeper_init(c->w->cfg.zk_hosts, watcher, (int)c->w->cfg.session_ms, NULL, c, 0);
    pthread_mutex_lock(&c->mu);
    c->zh = zh;
    pthread_mutex_unlock(&c->mu);
    if (zh)
        c->session++;
    if (!c->zh) {
        rill__log_once(&c->logged_unreachable,
                       "cluster: cannot start a ZooKeeper session with %s (%s); retrying "
                       "with backoff",
                       c->w->cfg.zk_hosts, strerror(errno));
        c->retry_at = now + (uint64_t)c->retry_ms * 1000000u;
        c->retry_ms = c->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : c->retry_ms * 2;
        return;
    }
    if (c->w->cfg.auth[0]) {
        int rc =
            zoo_add_auth(c->zh, "digest", c->w->cfg.auth, (int)strlen(c->w->cfg.auth), NULL, NULL);
        if (rc != ZOK)
            zk_error(c, "adding digest authentication", rc);
    }
    if (!c->disconnected_at)
        c->disconnected_at = now;
}

/* Whether this worker is in its current view (cluster thread). */
static int is_member(const rill__cluster_t *c)
{
    return c->view && c->view->n && c->view->self >= 0;
}

static void log_fenced(void)
{
    rill__log("cluster: the ZooKeeper session may be gone: managed key groups are held back "
              "(fenced) until it is known that this member still owns them");
}

static void on_state(rill__cluster_t *c, int state, uint64_t now)
{
    if (state == ZOO_CONNECTED_STATE) {
        if (!c->connected)
            rill__log_info("cluster: %s to ZooKeeper", c->given_up ? "reconnected" : "connected");
        c->connected = 1;
        c->ever_connected = 1;
        c->disconnected_at = 0;
        c->given_up = 0;
        c->retry_ms = RETRY_MIN_MS;
        c->ev_children = 1; /* re-read: events may have been missed while away */
        if (rill__fence_connected(&c->fence))
            rill__log("cluster: the session is back; managed key groups run again");
    } else if (state == ZOO_EXPIRED_SESSION_STATE || state == ZOO_AUTH_FAILED_STATE) {
        atomic_fetch_add(&c->zk_errors, 1);
        rill__log("cluster: %s; opening a new session", zk_state_name(state));
        if (rill__fence_expired(&c->fence, is_member(c)))
            log_fenced();
        close_session(c);
        c->disconnected_at = now;
        c->retry_at = now; /* reconnect at once: the worker keeps its last view meanwhile */
    } else if (c->connected) {
        c->connected = 0;
        c->disconnected_at = now;
        rill__log("cluster: lost the ZooKeeper connection (%s); serving with the last view",
                  zk_state_name(state));
    }
}

static void *cluster_main(void *arg)
{
    rill__cluster_t *c = arg;
    rill_worker_t *w = c->w;
    /* The client's DEBUG level hits ZOOKEEPER-4809; keep it at WARN. */
    zoo_set_debug_level(ZOO_LOG_LEVEL_WARN);
    while (!atomic_load(&w->stopping)) {
        uint64_t now = rill__now_ns();
        if (!c->zh && now >= c->retry_at)
            open_session(c, now);

        pthread_mutex_lock(&c->mu);
        struct timespec until = poll_deadline();
        while (!c->ev_state && !c->ev_children && !atomic_load(&w->stopping))
            if (pthread_cond_timedwait(&c->cond, &c->mu, &until) == ETIMEDOUT)
                break;
        int state = c->ev_state, children = c->ev_children;
        c->ev_state = 0;
        c->ev_children = 0;
        pthread_mutex_unlock(&c->mu);

        now = rill__now_ns();
        if (state)
            on_state(c, state, now);
        if (!c->zh)
            continue;
        if (c->connected && !c->node_created)
            register_node(c);
        if (c->connected && (children || !c->view))
            reread(c);
        if (!c->connected && rill__fence_disconnected(&c->fence, is_member(c), c->disconnected_at,
                                                      w->cfg.session_ms, now))
            log_fenced();
        if (!c->connected && !c->given_up && c->disconnected_at &&
            now - c->disconnected_at > (uint64_t)w->cfg.session_ms * 1000000u) {
            c->given_up = 1;
            if (c->ever_connected)
                rill__log("cluster: no ZooKeeper session for %u ms: membership given up; "
                          "serving with the last view until it is back",
                          w->cfg.session_ms);
            else
                rill__log("cluster: cannot reach ZooKeeper at %s for %u ms; still trying "
                          "(serving alone meanwhile)",
                          w->cfg.zk_hosts, w->cfg.session_ms);
        }
    }
    /* Leave: delete the node so that the others take our keys over at once, instead of
     * after the session times out; hand our keys up first (publish_departure). Skipped
     * when ZooKeeper is unreachable: the node then stays until the session expires, and
     * until then the others still route our keys here, so we keep owning them. */
    if (c->zh && c->connected && c->node_created) {
        publish_departure(c);
        int rc = zoo_delete(c->zh, c->node_path, -1);
        if (rc != ZOK && rc != ZNONODE)
            zk_error(c, "deleting the member node", rc);
        else
            rill__log_info("cluster: left (%s deleted)", c->node_path);
    }
    close_session(c);
    atomic_store(&c->left_at, rill__now_ns());
    c->notify(c->notify_ctx);
    return NULL;
}

int rill__cluster_start(rill__cluster_t *c)
{
    if (c->started)
        return 0;
    int e = pthread_create(&c->thread, NULL, cluster_main, c);
    if (e) {
        /* Never joined, so nothing to leave: the loops need not wait for a departure. */
        atomic_store(&c->left_at, rill__now_ns() - RILL_LEAVE_GRACE_NS);
        return -e;
    }
    c->started = 1;
    return 0;
}

void rill__cluster_stop(rill__cluster_t *c)
{
    if (!c || !c->started)
        return;
    pthread_mutex_lock(&c->mu);
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    c->started = 0;
}

void rill__cluster_free(rill__cluster_t *c)
{
    if (!c)
        return;
    rill__cluster_stop(c);
    close_session(c);
    free(c->view);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cond);
    free(c);
}

uint64_t rill__cluster_left_at(const rill__cluster_t *c)
{
    return atomic_load(&((rill__cluster_t *)c)->left_at);
}

const rill_view_t *rill__cluster_view(const rill__cluster_t *c, uint64_t *gen)
{
    rill__cluster_t *m = (rill__cluster_t *)c;
    *gen = atomic_load_explicit(&m->view_gen, memory_order_acquire);
    return atomic_load_explicit(&m->view_pub, memory_order_acquire);
}

rill_view_t *rill__cluster_view_copy(rill__cluster_t *c)
{
    rill_view_t *copy = NULL;
    pthread_mutex_lock(&c->mu);
    if (c->view) {
        size_t size = rill__view_bytes(c->view);
        copy = malloc(size);
        if (copy)
            memcpy(copy, c->view, size);
    }
    pthread_mutex_unlock(&c->mu);
    return copy;
}

int rill__cluster_view_wait(rill__cluster_t *c, uint64_t epoch, int timeout_ms)
{
    uint64_t deadline =
        timeout_ms < 0 ? UINT64_MAX : rill__now_ns() + (uint64_t)timeout_ms * 1000000u;
    int changed = 0;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        if (c->view && c->view->epoch != epoch) {
            changed = 1;
            break;
        }
        /* rill_worker_shutdown is async-signal-safe and cannot signal a condition
         * variable: waiters poll the stop flag instead. */
        if (atomic_load(&c->w->stopping) || rill__now_ns() >= deadline)
            break;
        struct timespec until = poll_deadline();
        pthread_cond_timedwait(&c->cond, &c->mu, &until);
    }
    pthread_mutex_unlock(&c->mu);
    return changed;
}

int rill__cluster_client_id(rill_worker_t *w, int64_t *session_id, char passwd[16])
{
    rill__cluster_t *c = w ? w->cluster : NULL;
    if (!c)
        return RILL_EINVAL;
    /* The handle changes only under mu and is closed only after it was unpublished. */
    int rc = RILL_ESTATE;
    pthread_mutex_lock(&c->mu);
    if (c->zh && zoo_state(c->zh) == ZOO_CONNECTED_STATE) {
        const clientid_t *id = zoo_client_id(c->zh);
        *session_id = id->client_id;
        memcpy(passwd, id->passwd, 16);
        rc = 0;
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

uint64_t rill__cluster_view_changes(const rill__cluster_t *c)
{
    return c ? atomic_load(&((rill__cluster_t *)c)->view_changes) : 0;
}

uint64_t rill__cluster_zk_errors(const rill__cluster_t *c)
{
    return c ? atomic_load(&((rill__cluster_t *)c)->zk_errors) : 0;
}

uint64_t rill__cluster_fenced(const rill__cluster_t *c)
{
    return c ? atomic_load(&((rill__cluster_t *)c)->fence.count) : 0;
}

int rill__cluster_fence_on(const rill__cluster_t *c)
{
    return c ? rill__fence_on(&((rill__cluster_t *)c)->fence) : 0;
}
