/* rill_config_* of rill.h's cluster section: the settings of a clustered worker. A build
 * without cluster support (RILL_CLUSTER=OFF) compiles cluster/none.c instead. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cluster/view.h"
#include "worker_internal.h"

static int valid_id(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n >= 64)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = id[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.' || ch == '-'))
            return 0;
    }
    return 1;
}

int rill_config_set_cluster(rill_config_t *cfg, const char *zk_hosts, const char *root,
                            const char *worker_id, const char *peer_addr)
{
    if (!cfg || !zk_hosts || !*zk_hosts || !root || root[0] != '/' || strlen(root) < 2 ||
        root[strlen(root) - 1] == '/' || !peer_addr)
        return RILL_EINVAL;
    if (strlen(zk_hosts) >= sizeof cfg->zk_hosts || strlen(root) >= sizeof cfg->root)
        return RILL_EINVAL;
    if (worker_id && !valid_id(worker_id))
        return RILL_EINVAL;
    rill__addr_t a;
    int rc = rill__addr_parse(&a, peer_addr);
    if (rc < 0)
        return rc;
    strcpy(cfg->zk_hosts, zk_hosts);
    strcpy(cfg->root, root);
    if (worker_id) {
        strcpy(cfg->worker_id, worker_id);
    } else {
        /* Generated once per config: stable for the life of the worker made from it. */
        char host[32] = "host";
        gethostname(host, sizeof host - 1);
        for (char *p = host; *p; p++)
            if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
                *p = '-';
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        snprintf(cfg->worker_id, sizeof cfg->worker_id, "w-%.20s-%d-%04lx", host, (int)getpid(),
                 (unsigned long)((ts.tv_nsec ^ (long)(uintptr_t)cfg) & 0xffff));
    }
    cfg->peer_addr = a;
    cfg->clustered = 1;
    return 0;
}

/* An advertised address: parsed into *out, *has set; unchanged on error. */
static int set_advertise(rill__addr_t *out, int *has, const char *addr)
{
    if (!addr)
        return RILL_EINVAL;
    rill__addr_t a;
    int rc = rill__addr_parse(&a, addr);
    if (rc < 0)
        return rc;
    *out = a;
    *has = 1;
    return 0;
}

int rill_config_set_peer_advertise(rill_config_t *cfg, const char *addr)
{
    return cfg ? set_advertise(&cfg->peer_advertise, &cfg->has_peer_advertise, addr) : RILL_EINVAL;
}

int rill_config_set_source_advertise(rill_config_t *cfg, const char *addr)
{
    return cfg ? set_advertise(&cfg->source_advertise, &cfg->has_source_advertise, addr)
               : RILL_EINVAL;
}

int rill_config_set_session_timeout_ms(rill_config_t *cfg, unsigned ms)
{
    if (!cfg)
        return RILL_EINVAL;
    if (ms < 1000 || ms > 120000)
        return RILL_ERANGE;
    cfg->session_ms = ms;
    return 0;
}

int rill_config_set_key_groups(rill_config_t *cfg, unsigned groups)
{
    if (!cfg)
        return RILL_EINVAL;
    if (groups < 1 || groups > RILL_MAX_KEY_GROUPS)
        return RILL_ERANGE;
    cfg->key_groups = groups;
    return 0;
}

int rill_config_set_cluster_auth(rill_config_t *cfg, const char *user_password)
{
    if (!cfg)
        return RILL_EINVAL;
    if (!user_password) {
        memset(cfg->auth, 0, sizeof cfg->auth);
        return 0;
    }
    if (!strchr(user_password, ':') || strlen(user_password) >= sizeof cfg->auth)
        return RILL_EINVAL;
    strcpy(cfg->auth, user_password);
    return 0;
}

int rill_config_set_view_cb(rill_config_t *cfg, rill_view_cb cb, uintptr_t ctx)
{
    if (!cfg)
        return RILL_EINVAL;
    cfg->view_cb = cb;
    cfg->view_ctx = ctx;
    return 0;
}
