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

static void put_header(uint8_t *p, uint8_t flags, unsigned epoch, uint32_t comp_id, uint32_t group,
                       uint32_t groups, uint32_t vsize, uint32_t n)
{
    p[0] = CHUNK_VERSION;
    p[1] = flags;
    uint16_t e = (uint16_t)epoch;
    memcpy(p + 2, &e, 2);
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
        .epoch = (uint16_t)(p[2] | p[3] << 8),
        .comp_id = get_u32(p + 4),
        .group = get_u32(p + 8),
        .groups = get_u32(p + 12),
        .value_size = get_u32(p + 16),
        .n = get_u32(p + 20),
        .entries = p + RILL_CHUNK_HDR,
    };
    if (out->group >= out->groups)
        return RILL_EINVAL;
    if (out->flags & (RILL_CHUNK_END | RILL_CHUNK_BEGIN))
        return out->n == 0 && len == RILL_CHUNK_HDR && !(out->flags & RILL_CHUNK_MULTI)
                   ? 0
                   : RILL_EINVAL;
    if ((out->flags & RILL_CHUNK_MULTI) && !(out->flags & RILL_CHUNK_STANDBY))
        return RILL_EINVAL;
    if (out->value_size == 0 || out->value_size > RILL_STATE_VALUE_MAX ||
        (uint64_t)out->n * (8 + out->value_size) != len - RILL_CHUNK_HDR)
        return RILL_EINVAL;
    return 0;
}

void rill__chunk_mark(uint8_t *p, unsigned flags, unsigned group, unsigned groups, unsigned epoch)
{
    put_header(p, (uint8_t)flags, epoch, 0, group, groups, 0, 0);
}

/* Chunks of group's values: of every key in the table (keys NULL), or of keys[0..nkeys),
 * each found in its own group's table (the chunks' group is then their first key's). */
static long send_values(rill__state_t *s, unsigned loop, uint32_t comp_id, unsigned group,
                        unsigned groups, const uint64_t *keys, size_t nkeys, uint32_t max,
                        unsigned flags, unsigned epoch, rill__chunk_out out, void *ctx)
{
    rill__state_loop_t *l = &s->loops[loop];
    if (l->groups != groups || group >= groups || (!keys && !l->tables[group].cap))
        return 0;
    rill__state_table_t *t = &l->tables[group];
    uint32_t first = group; /* the group of the chunk's first entry */
    uint32_t entry = 8 + s->vsize;
    uint32_t per = max > RILL_CHUNK_HDR + entry ? (max - RILL_CHUNK_HDR) / entry : 1;
    rill__buf_t *b = &l->chunk; /* the loop's own: kept for its next chunks */
    long sent = 0;
    int err = 0;
    uint32_t pos = 0, n = 0;
    uint64_t key;
    void *value;
    b->len = 0;
    if (rill__buf_reserve(b, RILL_CHUNK_HDR + (size_t)per * entry, SIZE_MAX) < 0)
        err = RILL_ENOMEM;
    size_t ki = 0;
    for (int more = !err; more;) {
        if (keys) {
            more = ki < nkeys;
            if (more) {
                key = keys[ki++];
                unsigned g = rill__key_group(key, groups);
                value = rill__state_table_find(&l->tables[g], s->stride, key);
                if (!n)
                    first = g;
            }
        } else {
            more = rill__state_table_next(t, s->stride, s->vsize, &pos, &key, &value);
        }
        if (more) {
            uint8_t *e = b->data + RILL_CHUNK_HDR + (size_t)n * entry;
            memcpy(e, &key, 8);
            if (value)
                memcpy(e + 8, value, s->vsize);
            else
                memset(e + 8, 0, s->vsize);
            n++;
        }
        if (n && (!more || n == per)) {
            put_header(b->data, (uint8_t)flags, epoch, comp_id, keys ? first : group, groups,
                       s->vsize, n);
            int rc = out(ctx, b->data, RILL_CHUNK_HDR + n * entry);
            if (rc < 0 && !err)
                err = rc;
            sent += n;
            n = 0;
        }
    }
    return err ? err : sent;
}

long rill__state_ship(rill__state_t *s, unsigned loop, uint32_t comp_id, unsigned group,
                      unsigned groups, uint32_t max, unsigned epoch, rill__chunk_out out, void *ctx)
{
    long rc = send_values(s, loop, comp_id, group, groups, NULL, 0, max, 0, epoch, out, ctx);
    rill__state_drop_group(s, loop, group);
    return rc;
}

long rill__state_copy(rill__state_t *s, unsigned loop, uint32_t comp_id, unsigned group,
                      unsigned groups, uint32_t max, unsigned flags, unsigned epoch,
                      rill__chunk_out out, void *ctx)
{
    return send_values(s, loop, comp_id, group, groups, NULL, 0, max, flags, epoch, out, ctx);
}

long rill__state_send_keys(rill__state_t *s, unsigned loop, uint32_t comp_id, unsigned groups,
                           const uint64_t *keys, size_t n, uint32_t max, unsigned epoch,
                           rill__chunk_out out, void *ctx)
{
    if (!n)
        return 0;
    return send_values(s, loop, comp_id, rill__key_group(keys[0], groups), groups, keys, n, max,
                       RILL_CHUNK_STANDBY | RILL_CHUNK_MULTI, epoch, out, ctx);
}

/* A RILL_CHUNK_MULTI chunk's entries, each into its own group's table. */
static int install_each(rill__state_t *s, rill__state_loop_t *l, unsigned groups,
                        const rill__chunk_t *c)
{
    int rc = 0;
    for (uint32_t i = 0; i < c->n && rc == 0; i++) {
        const uint8_t *e = c->entries + (size_t)i * (8 + s->vsize);
        uint64_t key;
        memcpy(&key, e, 8);
        rill__state_table_t *t = &l->tables[rill__key_group(key, groups)];
        uint64_t before = rill__state_table_bytes(t, s->stride);
        if (rill__state_table_reserve(t, s->stride, s->vsize, 1, 0) < 0)
            rc = RILL_ENOMEM;
        else
            memcpy(rill__state_table_get(t, s->stride, key), e + 8, s->vsize);
        RILL_STAT_ADD(l->bytes, rill__state_table_bytes(t, s->stride) - before);
    }
    return rc;
}

int rill__state_install(rill__state_t *s, unsigned loop, unsigned groups, const rill__chunk_t *c)
{
    rill__state_loop_t *l = &s->loops[loop];
    if (c->value_size != s->vsize || c->groups != groups || c->group >= groups)
        return RILL_EINVAL;
    if (rill__state_groups(s, loop, groups) < 0)
        return RILL_ENOMEM;
    if (c->flags & RILL_CHUNK_MULTI)
        return install_each(s, l, groups, c);
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
