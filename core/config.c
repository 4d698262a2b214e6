/* rill_config_*: settings collected before a worker exists. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <stdio.h>

#include "worker_internal.h"

rill_config_t *rill_config_new(void)
{
    rill_config_t *cfg = calloc(1, sizeof *cfg);
    if (!cfg)
        return NULL;
    cfg->threads = 1;
    cfg->max_frame = RILL_DEFAULT_MAX_FRAME;
    cfg->sink_buffer = RILL_DEFAULT_SINK_BUFFER;
    cfg->carry_budget = RILL_DEFAULT_CARRY_BUDGET;
    cfg->source_credit = RILL_DEFAULT_SOURCE_CREDIT;
    cfg->dead_letter_sink = -1;
    cfg->max_conns = RILL_DEFAULT_MAX_CONNS;
    cfg->idle_ms = RILL_DEFAULT_IDLE_MS;
    cfg->session_ms = RILL_DEFAULT_SESSION_MS;
    return cfg;
}

void rill_config_destroy(rill_config_t *cfg)
{
    if (cfg)
        explicit_bzero(cfg->auth,
                       sizeof cfg->auth); /* a password must not linger in freed memory */
    free(cfg);
}

int rill_config_set_threads(rill_config_t *cfg, unsigned n)
{
    if (!cfg)
        return RILL_EINVAL;
    if (n < 1 || n > RILL_MAX_THREADS)
        return RILL_ERANGE;
    cfg->threads = n;
    return 0;
}

int rill_config_set_max_frame(rill_config_t *cfg, uint32_t bytes)
{
    if (!cfg)
        return RILL_EINVAL;
    if (bytes < 12 || bytes > (1u << 30))
        return RILL_ERANGE;
    cfg->max_frame = bytes;
    return 0;
}

int rill_config_set_carry_budget(rill_config_t *cfg, size_t bytes)
{
    if (!cfg)
        return RILL_EINVAL;
    if (bytes < ((size_t)64 << 10) || bytes > ((size_t)1 << 40))
        return RILL_ERANGE;
    cfg->carry_budget = bytes;
    return 0;
}

int rill_config_set_sink_buffer(rill_config_t *cfg, size_t bytes)
{
    if (!cfg)
        return RILL_EINVAL;
    /* At least one largest frame must fit, or such a frame could never be sent. */
    if (bytes < (size_t)cfg->max_frame + 4 || bytes > ((size_t)1 << 40))
        return RILL_ERANGE;
    cfg->sink_buffer = bytes;
    return 0;
}

int rill_config_set_flush_interval_ms(rill_config_t *cfg, unsigned ms)
{
    if (!cfg)
        return RILL_EINVAL;
    if (ms > 3600u * 1000u)
        return RILL_ERANGE;
    cfg->flush_ms = ms;
    return 0;
}

int rill_config_add_listener(rill_config_t *cfg, const char *addr, rill_framing_t framing,
                             uint32_t comp_id, int has_key, uint64_t key)
{
    if (!cfg || !addr)
        return RILL_EINVAL;
    if (framing != RILL_FRAMING_RILL && framing != RILL_FRAMING_LP && framing != RILL_FRAMING_LINE)
        return RILL_EINVAL;
    if (cfg->nlisteners == RILL_MAX_LISTENERS)
        return RILL_ERANGE;
    rill__listener_cfg_t *l = &cfg->listeners[cfg->nlisteners];
    int rc = rill__addr_parse(&l->addr, addr);
    if (rc < 0)
        return rc;
    l->framing = framing;
    l->comp_id = comp_id;
    l->has_key = has_key != 0;
    l->key = key;
    return (int)cfg->nlisteners++;
}

int rill_config_add_sink(rill_config_t *cfg, const char *addr)
{
    if (!cfg || !addr)
        return RILL_EINVAL;
    if (cfg->nsinks == RILL_MAX_SINKS)
        return RILL_ERANGE;
    int rc = rill__addr_parse(&cfg->sinks[cfg->nsinks], addr);
    if (rc < 0)
        return rc;
    return (int)cfg->nsinks++;
}

int rill_config_set_sink_delivery(rill_config_t *cfg, int sink, rill_delivery_t d)
{
    if (!cfg || sink < 0 || sink >= (int)cfg->nsinks ||
        (d != RILL_DELIVERY_BEST_EFFORT && d != RILL_DELIVERY_ACKED))
        return RILL_EINVAL;
    cfg->sink_acked[sink] = d == RILL_DELIVERY_ACKED;
    return 0;
}

int rill_config_set_source_credit(rill_config_t *cfg, uint32_t bytes)
{
    if (!cfg)
        return RILL_EINVAL;
    if (bytes < (4u << 10) || bytes > (1u << 30))
        return RILL_ERANGE;
    cfg->source_credit = bytes;
    return 0;
}

int rill_config_set_source_credit_pool(rill_config_t *cfg, uint64_t bytes)
{
    if (!cfg)
        return RILL_EINVAL;
    if (bytes && (bytes < (4u << 10) || bytes > RILL_SOURCE_CREDIT_POOL_MAX))
        return RILL_ERANGE;
    cfg->source_credit_pool = bytes;
    cfg->has_credit_pool = 1;
    return 0;
}

int rill_config_set_dead_letter_sink(rill_config_t *cfg, int sink)
{
    if (!cfg || sink < -1 || sink >= (int)cfg->nsinks)
        return RILL_EINVAL;
    cfg->dead_letter_sink = sink;
    return 0;
}

int rill_config_set_max_conns(rill_config_t *cfg, unsigned n)
{
    if (!cfg)
        return RILL_EINVAL;
    if (n < 1 || n > 1000000)
        return RILL_ERANGE;
    cfg->max_conns = n;
    return 0;
}

int rill_config_set_idle_timeout_ms(rill_config_t *cfg, unsigned ms)
{
    if (!cfg)
        return RILL_EINVAL;
    if (ms > 3600u * 1000u)
        return RILL_ERANGE;
    cfg->idle_ms = ms;
    return 0;
}

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

int rill_config_set_metrics_listener(rill_config_t *cfg, const char *addr)
{
    if (!cfg || !addr)
        return RILL_EINVAL;
    int rc = rill__addr_parse(&cfg->metrics_addr, addr);
    if (rc < 0)
        return rc;
    cfg->has_metrics = 1;
    return 0;
}
