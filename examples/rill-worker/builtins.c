#include "builtins.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passthrough_batch(uintptr_t ctx, unsigned loop, const rill_msg_t *m, size_t n,
                             rill_emitter_t *em)
{
    (void)loop;
    int sink = (int)ctx - 1;
    if (sink < 0)
        return 0;
    rill_emit_sink_msgs(em, sink, m, n); /* what does not fit is counted as dropped */
    return 0;
}

/* count: a managed computation (docs/state.md). rill keeps each key's value and hands the
 * batch a pointer to it per message, so count keeps no table of its own. */
typedef struct count_value {
    uint64_t count;   /* frames of the key (0: the key has none) */
    uint64_t emitted; /* count at the last emission */
} count_value_t;

typedef struct count_cfg {
    int sink;
    uint64_t every;
} count_cfg_t;

static void emit_count(rill_emitter_t *em, int sink, uint64_t key, count_value_t *v)
{
    char text[24];
    int len = snprintf(text, sizeof text, "%llu", (unsigned long long)v->count);
    rill_emit_sink(em, sink, BUILTIN_COUNT_ID, key, text, (size_t)len);
    v->emitted = v->count;
}

static int count_batch(uintptr_t ctx, unsigned loop, const rill_msg_t *m, void *const *values,
                       size_t n, rill_emitter_t *em)
{
    (void)loop;
    const count_cfg_t *cfg = (const count_cfg_t *)ctx;
    for (size_t i = 0; i < n; i++) {
        count_value_t *v = values[i];
        v->count++;
        if (cfg->every && cfg->sink >= 0 && v->count % cfg->every == 0)
            emit_count(em, cfg->sink, m[i].key, v);
    }
    return 0;
}

/* Emits every count that changed since it was last emitted. */
static void count_flush(uintptr_t ctx, unsigned loop, rill_emitter_t *em)
{
    (void)loop;
    const count_cfg_t *cfg = (const count_cfg_t *)ctx;
    if (cfg->sink < 0)
        return;
    uint64_t cursor = 0, keys[256];
    void *values[256];
    int got;
    while ((got = rill_state_scan(em, &cursor, keys, values, 256)) > 0)
        for (int i = 0; i < got; i++) {
            count_value_t *v = values[i];
            if (v->count != v->emitted)
                emit_count(em, cfg->sink, keys[i], v);
        }
}

static void count_release(uintptr_t ctx)
{
    free((count_cfg_t *)ctx);
}

int builtins_register(rill_worker_t *w, int sink, uint64_t count_every)
{
    static const rill_comp_ops_t passthrough = {passthrough_batch, NULL, NULL};
    /* No state per key: it runs on the loop that read the frame (no handoff). */
    int rc = rill_comp_register_flags(w, BUILTIN_PASSTHROUGH_ID, "passthrough", &passthrough,
                                      (uintptr_t)(sink + 1), RILL_COMP_STATELESS);
    if (rc < 0)
        return rc;
    count_cfg_t *cfg = malloc(sizeof *cfg);
    if (!cfg)
        return RILL_ENOMEM;
    cfg->sink = sink;
    cfg->every = count_every;
    static const rill_state_ops_t count = {count_batch, count_flush, count_release};
    rc = rill_comp_register_state(w, BUILTIN_COUNT_ID, "count", &count, (uintptr_t)cfg,
                                  sizeof(count_value_t));
    if (rc < 0)
        count_release((uintptr_t)cfg);
    return rc;
}
