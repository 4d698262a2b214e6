#include "cluster/view.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame/frame.h"

rill_view_t *rill__view_alloc(unsigned n, unsigned groups)
{
    if (groups == 0 || groups > RILL_MAX_KEY_GROUPS || n > RILL_MAX_MEMBERS)
        return NULL;
    rill_view_t *v = calloc(1, sizeof *v + (size_t)n * sizeof v->m[0] + groups);
    if (v) {
        v->self = -1;
        v->cap = n;
        v->groups = groups;
    }
    return v;
}

size_t rill__view_bytes(const rill_view_t *v)
{
    return sizeof *v + (size_t)v->cap * sizeof v->m[0] + v->groups;
}

static int by_id(const void *a, const void *b)
{
    return strcmp(((const rill__member_t *)a)->id, ((const rill__member_t *)b)->id);
}

void rill__view_finish(rill_view_t *v, const char *self_id)
{
    qsort(v->m, v->n, sizeof v->m[0], by_id);
    v->self = -1;
    for (unsigned i = 0; i < v->n; i++) {
        v->m[i].h = rill__hash_bytes(v->m[i].id, strlen(v->m[i].id));
        if (self_id && strcmp(v->m[i].id, self_id) == 0)
            v->self = (int)i;
    }
    uint8_t *owner = (uint8_t *)rill__view_table(v);
    for (unsigned g = 0; g < v->groups; g++) {
        unsigned best = 0;
        uint64_t bw = 0;
        for (unsigned i = 0; i < v->n; i++) {
            uint64_t w = rill__hrw_weight(g, v->m[i].h);
            if (i == 0 || w > bw) {
                best = i;
                bw = w;
            }
        }
        owner[g] = (uint8_t)best;
    }
}

int rill__view_runner_up(const rill_view_t *v, unsigned g)
{
    int owner = rill__view_table(v)[g], best = -1;
    uint64_t bw = 0;
    for (unsigned i = 0; i < v->n; i++) {
        uint64_t w = rill__hrw_weight(g, v->m[i].h);
        if ((int)i != owner && (best < 0 || w > bw)) {
            best = (int)i;
            bw = w;
        }
    }
    return best;
}

int rill__view_same_members(const rill_view_t *a, const rill_view_t *b)
{
    if (!a || !b || a->n != b->n)
        return 0;
    for (unsigned i = 0; i < a->n; i++)
        if (strcmp(a->m[i].id, b->m[i].id) || a->m[i].since != b->m[i].since ||
            strcmp(a->m[i].addr, b->m[i].addr) || strcmp(a->m[i].source, b->m[i].source))
            return 0;
    return 1;
}

/* Finds "name":"value" in a flat JSON object and copies value. Member data is written by
 * rill itself, so a strict subset is enough; anything else is rejected as malformed. */
static int json_string(const char *data, size_t len, const char *name, char *out, size_t size)
{
    char key[32];
    int kl = snprintf(key, sizeof key, "\"%s\"", name);
    for (size_t i = 0; i + (size_t)kl <= len; i++) {
        if (memcmp(data + i, key, (size_t)kl) != 0)
            continue;
        size_t j = i + (size_t)kl;
        while (j < len && (data[j] == ' ' || data[j] == ':'))
            j++;
        if (j >= len || data[j] != '"')
            return -1;
        j++;
        size_t o = 0;
        while (j < len && data[j] != '"') {
            if (data[j] == '\\' || (unsigned char)data[j] < 0x20 || o + 1 >= size)
                return -1;
            out[o++] = data[j++];
        }
        if (j >= len)
            return -1;
        out[o] = '\0';
        return 0;
    }
    return -1;
}

int rill__member_parse(rill__member_t *m, const char *id, const char *data, size_t len)
{
    memset(m, 0, sizeof *m);
    if (!id || strlen(id) >= sizeof m->id || !data || len < 2 || data[0] != '{' ||
        data[len - 1] != '}')
        return RILL_EINVAL;
    strcpy(m->id, id);
    if (json_string(data, len, "addr", m->addr, sizeof m->addr) < 0)
        return RILL_EINVAL;
    if (rill__addr_parse(&m->sa, m->addr) < 0)
        return RILL_EINVAL;
    /* A member may publish no source address (older ones, or one without a host to give). */
    rill__addr_t sa;
    if (json_string(data, len, "source", m->source, sizeof m->source) < 0 ||
        rill__addr_parse(&sa, m->source) < 0)
        m->source[0] = '\0';
    return 0;
}

int rill__member_format(char *buf, size_t size, const char *id, const char *addr,
                        const char *source)
{
    int n = source && source[0]
                ? snprintf(buf, size,
                           "{\"id\":\"%s\",\"addr\":\"%s\",\"source\":\"%s\",\"version\":\"%s\"}",
                           id, addr, source, rill_version_string())
                : snprintf(buf, size, "{\"id\":\"%s\",\"addr\":\"%s\",\"version\":\"%s\"}", id,
                           addr, rill_version_string());
    return n < 0 || (size_t)n >= size ? RILL_ERANGE : n;
}

/* ---------------------------------------------------------------- public accessors */

void rill_view_destroy(rill_view_t *v)
{
    free(v);
}
uint64_t rill_view_epoch(const rill_view_t *v)
{
    return v ? v->epoch : 0;
}
unsigned rill_view_size(const rill_view_t *v)
{
    return v ? v->n : 0;
}
int rill_view_self(const rill_view_t *v)
{
    return v ? v->self : -1;
}

const char *rill_view_member(const rill_view_t *v, unsigned i)
{
    return v && i < v->n ? v->m[i].id : NULL;
}

const char *rill_view_member_addr(const rill_view_t *v, unsigned i)
{
    return v && i < v->n ? v->m[i].addr : NULL;
}

const char *rill_view_member_source(const rill_view_t *v, unsigned i)
{
    return v && i < v->n ? v->m[i].source : NULL;
}

int rill_view_owner(const rill_view_t *v, uint64_t key)
{
    return v && v->n ? rill__view_owner(v, key) : -1;
}

unsigned rill_view_key_groups(const rill_view_t *v)
{
    return v ? v->groups : 0;
}

unsigned rill_view_key_group(const rill_view_t *v, uint64_t key)
{
    return v ? rill__key_group(key, v->groups) : 0;
}

int rill_view_group_owner(const rill_view_t *v, unsigned group)
{
    return v && v->n && group < v->groups ? rill__view_table(v)[group] : -1;
}
