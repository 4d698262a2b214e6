#include "cluster/internal.h"

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
void rill__cluster_zk_error(rill__cluster_t *c, const char *what, int zrc)
{
    atomic_fetch_add(&c->zk_errors, 1);
    rill__log("cluster: %s: %s", what, zerror(zrc));
}

/* Runs on ZooKeeper's completion thread: record and wake, nothing else. */
void rill__cluster_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
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

void rill__cluster_publish(rill__cluster_t *c, rill_view_t *v)
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
    rill__cluster_publish(c, v);
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
    zhandle_t *zh = zookeeper_init(c->w->cfg.zk_hosts, rill__cluster_watcher,
                                   (int)c->w->cfg.session_ms, NULL, c, 0);
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
            rill__cluster_zk_error(c, "adding digest authentication", rc);
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
            rill__znodes_register(c);
        if (c->connected && (children || !c->view))
            rill__znodes_reread(c);
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
            rill__cluster_zk_error(c, "deleting the member node", rc);
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
