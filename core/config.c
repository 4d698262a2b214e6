/* rill_config_*: settings collected before a worker exists. The cluster section's setters
 * are cluster/settings.c's (cluster/none.c's in a build without cluster support). */
#include <stdlib.h>
#include <string.h>

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
    cfg->key_groups = RILL_DEFAULT_KEY_GROUPS;
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

int rill_config_set_busy_wait_us(rill_config_t *cfg, unsigned us)
{
    if (!cfg)
        return RILL_EINVAL;
    if (us > 10000u)
        return RILL_ERANGE;
    cfg->busy_wait_us = us;
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
