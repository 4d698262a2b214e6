/* A build without cluster support (RILL_CLUSTER=OFF), compiled instead of cluster.c and
 * settings.c so that nothing needs libzookeeper_mt.
 *
 * rill.h's cluster calls stay (programs link unchanged) and say that this build cannot
 * cluster: the setters and rill_worker_view_wait return RILL_EUNSUPPORTED, whatever their
 * arguments, so that a program finds out at the first call rather than when it expects
 * members that never come. Since rill_config_set_cluster never succeeds, no worker is
 * ever clustered (w->cluster stays NULL) and the core never calls the internal interface
 * below on a cluster; it is implemented anyway, as "not clustered", so that each entry
 * has a defined answer. The view accessors (view.c) remain: no view exists to pass them,
 * and for NULL they return their documented values. */
#include <stddef.h>

#include "cluster/cluster.h"

int rill__cluster_supported(void)
{
    return 0;
}

/* ---------------------------------------------------------------- rill.h */

int rill_config_set_cluster(rill_config_t *cfg, const char *zk_hosts, const char *root,
                            const char *worker_id, const char *peer_addr)
{
    (void)cfg, (void)zk_hosts, (void)root, (void)worker_id, (void)peer_addr;
    return RILL_EUNSUPPORTED;
}

int rill_config_set_peer_advertise(rill_config_t *cfg, const char *addr)
{
    (void)cfg, (void)addr;
    return RILL_EUNSUPPORTED;
}

int rill_config_set_source_advertise(rill_config_t *cfg, const char *addr)
{
    (void)cfg, (void)addr;
    return RILL_EUNSUPPORTED;
}

int rill_config_set_session_timeout_ms(rill_config_t *cfg, unsigned ms)
{
    (void)cfg, (void)ms;
    return RILL_EUNSUPPORTED;
}

int rill_config_set_key_groups(rill_config_t *cfg, unsigned groups)
{
    (void)cfg, (void)groups;
    return RILL_EUNSUPPORTED;
}

int rill_config_set_cluster_auth(rill_config_t *cfg, const char *user_password)
{
    (void)cfg, (void)user_password;
    return RILL_EUNSUPPORTED;
}

int rill_config_set_view_cb(rill_config_t *cfg, rill_view_cb cb, uintptr_t ctx)
{
    (void)cfg, (void)cb, (void)ctx;
    return RILL_EUNSUPPORTED;
}

/* ---------------------------------------------------------------- cluster.h */

int rill__cluster_new(rill__cluster_t **out, rill_worker_t *w, int peer_port,
                      void (*notify)(void *ctx), void *notify_ctx)
{
    (void)w, (void)peer_port, (void)notify, (void)notify_ctx;
    if (out)
        *out = NULL;
    return RILL_EUNSUPPORTED;
}

int rill__cluster_start(rill__cluster_t *c)
{
    (void)c;
    return RILL_EUNSUPPORTED;
}

void rill__cluster_stop(rill__cluster_t *c)
{
    (void)c;
}

void rill__cluster_free(rill__cluster_t *c)
{
    (void)c;
}

uint64_t rill__cluster_left_at(const rill__cluster_t *c)
{
    (void)c;
    return 0;
}

const rill_view_t *rill__cluster_view(const rill__cluster_t *c, uint64_t *gen)
{
    (void)c;
    *gen = 0;
    return NULL;
}

rill_view_t *rill__cluster_view_copy(rill__cluster_t *c)
{
    (void)c;
    return NULL;
}

int rill__cluster_view_wait(rill__cluster_t *c, uint64_t epoch, int timeout_ms)
{
    (void)c, (void)epoch, (void)timeout_ms;
    return RILL_EUNSUPPORTED;
}

int rill__cluster_client_id(rill_worker_t *w, int64_t *session_id, char passwd[16])
{
    (void)w, (void)session_id, (void)passwd;
    return RILL_EUNSUPPORTED;
}

uint64_t rill__cluster_view_changes(const rill__cluster_t *c)
{
    (void)c;
    return 0;
}

uint64_t rill__cluster_zk_errors(const rill__cluster_t *c)
{
    (void)c;
    return 0;
}

uint64_t rill__cluster_fenced(const rill__cluster_t *c)
{
    (void)c;
    return 0;
}

int rill__cluster_fence_on(const rill__cluster_t *c)
{
    (void)c;
    return 0;
}
