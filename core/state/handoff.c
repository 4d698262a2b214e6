/* Moving a key group's managed state: see handoff.h. */
#include "state/handoff.h"

#include <string.h>

#include "util/key_group.h"
#include "util/stat.h"

#define CHUNK_VERSION 1

static void put_u32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

static uint32_t get_u32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static void put_header(uint8_t *p, uint8_t flags, uint32_t comp_id, uint32_t group, uint32_t groups,
                       uint32_t vsize, uint32_t n)
{
    p[0] = CHUNK_VERSION;
    p[1] = flags;
    p[2] = p[3] = 0;
    put_u32(p + 4, comp_id);
    put_u32(p + 8, group);
    put_u32(p + 12, groups);
    put_u32(p + 16, vsize);
    put_u32(p + 20, n);
}

uint32_t rill__chunk_group(const uint8_t *p)
{
    return get_u32(p + 8);
}

int rill__chunk_parse(const uint8_t *p, size_t len, rill__chunk_t *out)
{
    if (len < RILL_CHUNK_HDR || p[0] != CHUNK_VERSION)
        return RILL_EINVAL;
    *out = (rill__chunk_t){
        .flags = p[1],
        .comp_id = get_u32(p + 4),
        .group = get_u32(p + 8),
        .groups = get_u32(p + 12),
        .value_size = get_u32(p + 16),
        .n = get_u32(p + 20),
        .entries = p + RILL_CHUNK_HDR,
    };
    if (out->group >= out->groups)
        return RILL_EINVAL;
    if (out->flags & RILL_CHUNK_END)
        return out->n == 0 && len == RILL_CHUNK_HDR ? 0 : RILL_EINVAL;
    if (out->value_size == 0 || out->value_size > RILL_STATE_VALUE_MAX ||
        (uint64_t)out->n * (8 + out->value_size) != len - RILL_CHUNK_HDR)
        return RILL_EINVAL;
    return 0;
}

void rill__chunk_end(uint8_t *p, unsigned group, unsigned groups)
{
    put_header(p, RILL_CHUNK_END, 0, group, groups, 0, 0);
}

long rill__state_ship(rill__state_t *s, unsigned loop, uint32_t comp_id, unsigned group,
                      unsigned groups, uint32_t max, rill__chunk_out out, void *ctx)
{
    rill__state_loop_t *l = &s->loops[loop];
    if (l->groups != groups || group >= groups || !l->tables[group].cap)
        return 0;
    rill__state_table_t *t = &l->tables[group];
    uint32_t entry = 8 + s->vsize;
    uint32_t per = max > RILL_CHUNK_HDR + entry ? (max - RILL_CHUNK_HDR) / entry : 1;
    rill__buf_t b = {0};
    long sent = 0;
    int err = 0;
    uint32_t pos = 0, n = 0;
    uint64_t key;
    void *value;
    if (rill__buf_reserve(&b, RILL_CHUNK_HDR + (size_t)per * entry, SIZE_MAX) < 0)
        err = RILL_ENOMEM;
    for (int more = !err; more;) {
        more = rill__state_table_next(t, s->stride, s->vsize, &pos, &key, &value);
        if (more) {
            uint8_t *e = b.data + RILL_CHUNK_HDR + (size_t)n * entry;
            memcpy(e, &key, 8);
            memcpy(e + 8, value, s->vsize);
            n++;
        }
        if (n && (!more || n == per)) {
            put_header(b.data, 0, comp_id, group, groups, s->vsize, n);
            int rc = out(ctx, b.data, RILL_CHUNK_HDR + n * entry);
            if (rc < 0 && !err)
                err = rc;
            sent += n;
            n = 0;
        }
    }
    rill__buf_free(&b);
    uint64_t before = rill__state_table_bytes(t, s->stride);
    rill__state_table_free(t);
    RILL_STAT_SUB(l->bytes, before);
    return err ? err : sent;
}

int rill__state_install(rill__state_t *s, unsigned loop, unsigned groups, const rill__chunk_t *c)
{
    rill__state_loop_t *l = &s->loops[loop];
    if (c->value_size != s->vsize || c->groups != groups || c->group >= groups)
        return RILL_EINVAL;
    if (rill__state_groups(s, loop, groups) < 0)
        return RILL_ENOMEM;
    rill__state_table_t *t = &l->tables[c->group];
    uint64_t before = rill__state_table_bytes(t, s->stride);
    int rc = 0;
    if (c->n && rill__state_table_reserve(t, s->stride, s->vsize, c->n, 0) < 0)
        rc = RILL_ENOMEM;
    for (uint32_t i = 0; i < c->n && rc == 0; i++) {
        const uint8_t *e = c->entries + (size_t)i * (8 + s->vsize);
        uint64_t key;
        memcpy(&key, e, 8);
        if (rill__key_group(key, groups) != c->group)
            rc = RILL_EINVAL;
        else
            memcpy(rill__state_table_get(t, s->stride, key), e + 8, s->vsize);
    }
    RILL_STAT_ADD(l->bytes, rill__state_table_bytes(t, s->stride) - before);
    return rc;
}
