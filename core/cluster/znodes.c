/* The cluster's nodes in ZooKeeper: the root and its members path, this worker's
 * ephemeral member node, the agreed number of key groups, and the member list read back
 * into a view (docs/cluster.md has the layout). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/internal.h"
#include "util/log.h"
#include "worker_internal.h"

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

void rill__znodes_register(rill__cluster_t *c)
{
    int rc = create_parents(c, c->members_path);
    if (rc != ZOK) {
        rill__cluster_zk_error(c, "creating the cluster path", rc);
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
    rill__cluster_zk_error(c, "creating the member node", rc);
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

void rill__znodes_reread(rill__cluster_t *c)
{
    int grc = agree_groups(c);
    if (grc != ZOK) {
        if (grc != ZBADARGUMENTS)
            rill__cluster_zk_error(c, "reading the cluster's key groups", grc);
        c->ev_children = 1; /* try again on the next turn */
        return;
    }
    struct String_vector kids = {0, NULL};
    struct Stat st;
    int rc = zoo_wget_children2(c->zh, c->members_path, rill__cluster_watcher, c, &kids, &st);
    if (rc == ZNONODE) {
        rc = create_parents(c, c->members_path);
        if (rc == ZOK)
            rc = zoo_wget_children2(c->zh, c->members_path, rill__cluster_watcher, c, &kids, &st);
    }
    if (rc != ZOK) {
        rill__cluster_zk_error(c, "reading the member list", rc);
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
            rill__cluster_zk_error(c, "reading member data", rc);
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
    if (!self_in && c->node_created && c->view && c->view->self >= 0 &&
        rill__fence_expired(&c->fence, 1))
        /* Our node went while we are a member: only the server removes it, when the
         * session expired, and this view may come before the expiry does. */
        rill__log("cluster: this member's node is gone (its session expired); managed key "
                  "groups are held back until it is back with a new session");
    rill__cluster_publish(c, v);
    /* After the view (fence.h): a loop that sees the fence lifted sees this view too. */
    if (rill__fence_view(&c->fence, self_in))
        rill__log("cluster: back with a new session; managed key groups run again once "
                  "their state is here");
}
