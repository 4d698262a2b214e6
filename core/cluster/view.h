/* Cluster views: an immutable snapshot of the members (sorted by id) and rendezvous
 * (highest-random-weight) ownership of keys over them. A view is published by the
 * cluster thread and read by loops inside their registry read section; it is freed
 * only after every loop has left the sections that could see it. */
#ifndef RILL_CORE_VIEW_H
#define RILL_CORE_VIEW_H

#include <stddef.h>
#include <stdint.h>

#include "net/addr.h"
#include "rill/rill.h"

#define RILL_MAX_MEMBERS 64
#define RILL_ID_MAX 64

typedef struct rill__member {
    char id[RILL_ID_MAX];
    char addr[96];   /* peer address as published, "HOST:PORT" */
    char source[96]; /* source listener address as published, or empty (none published) */
    rill__addr_t sa;
    uint64_t h; /* hash of id: the member's rendezvous seed */
} rill__member_t;

struct rill_view {
    uint64_t epoch; /* cversion of <root>/members */
    unsigned n;
    int self; /* index of this worker, -1 if absent */
    rill__member_t m[];
};

/* Allocates a view for n members (zeroed). */
rill_view_t *rill__view_alloc(unsigned n);

/* Sorts members by id, computes their seeds and self (the member named self_id). */
void rill__view_finish(rill_view_t *v, const char *self_id);

/* Non-zero when a and b have the same members with the same addresses. */
int rill__view_same_members(const rill_view_t *a, const rill_view_t *b);

/* Parses member data {"id":"..","addr":"HOST:PORT","source":"HOST:PORT",..} into m (id
 * given by the znode name; "source" is optional, and one that does not parse is left
 * out). Returns 0 or RILL_EINVAL (malformed, or the peer address does not parse). */
int rill__member_parse(rill__member_t *m, const char *id, const char *data, size_t len);

/* Formats this worker's member data into buf (source may be empty: not published). */
int rill__member_format(char *buf, size_t size, const char *id, const char *addr,
                        const char *source);

/* Weight of key at a member: a 64-bit mix of both. */
static inline uint64_t rill__hrw_weight(uint64_t key, uint64_t seed)
{
    uint64_t x = key ^ seed;
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

/* The member with the highest weight owns the key: a view change moves only the keys
 * of the members that joined or left. */
static inline int rill__view_owner(const rill_view_t *v, uint64_t key)
{
    int best = -1;
    uint64_t bw = 0;
    for (unsigned i = 0; i < v->n; i++) {
        uint64_t w = rill__hrw_weight(key, v->m[i].h);
        if (best < 0 || w > bw) {
            best = (int)i;
            bw = w;
        }
    }
    return best;
}

#endif
