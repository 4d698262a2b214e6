/* Cluster views: an immutable snapshot of the members (sorted by id) and who owns each
 * key group. A key belongs to one of the cluster's key groups (a fixed number, agreed
 * through ZooKeeper); a group belongs to the member of highest rendezvous
 * (highest-random-weight) weight for it, computed once per view into a table, so the
 * owner of a frame's key is a table lookup. A view is published by the cluster thread
 * and read by loops inside their registry read section; it is freed only after every
 * loop has left the sections that could see it. */
#ifndef RILL_CORE_VIEW_H
#define RILL_CORE_VIEW_H

#include <stddef.h>
#include <stdint.h>

#include "net/addr.h"
#include "rill/rill.h"
#include "util/key_group.h"

#define RILL_MAX_MEMBERS 64
#define RILL_ID_MAX 64
#define RILL_MAX_KEY_GROUPS 65536u

typedef struct rill__member {
    char id[RILL_ID_MAX];
    char addr[96];   /* peer address as published, "HOST:PORT" */
    char source[96]; /* source listener address as published, or empty (none published) */
    rill__addr_t sa;
    uint64_t h;     /* hash of id: the member's rendezvous seed */
    uint64_t since; /* the zxid that created its node: a member that joins again (a new
                     * session) under the same id is another incarnation */
} rill__member_t;

struct rill_view {
    uint64_t epoch; /* cversion of <root>/members */
    unsigned n;
    int self;         /* index of this worker, -1 if absent */
    unsigned cap;     /* members allocated; the group table follows m[cap] */
    unsigned groups;  /* key groups of the cluster (>= 1) */
    uint32_t session; /* which of this worker's ZooKeeper sessions saw it (a new one after an
                       * expiry: the member joined again, loop/group_moves.c) */
    rill__member_t m[];
};

/* Allocates a view for up to n members and groups key groups (zeroed). */
rill_view_t *rill__view_alloc(unsigned n, unsigned groups);

/* Bytes of v's allocation (a copy takes as many). */
size_t rill__view_bytes(const rill_view_t *v);

/* group_owner[g]: the index of the member that owns key group g. */
static inline const uint8_t *rill__view_table(const rill_view_t *v)
{
    return (const uint8_t *)&v->m[v->cap];
}

/* Sorts members by id, computes their seeds, self (the member named self_id) and the
 * owner of every key group. */
void rill__view_finish(rill_view_t *v, const char *self_id);

/* The member that would own group g if its owner were not in v (the group's second
 * rendezvous choice), or -1 when v has one member. */
int rill__view_runner_up(const rill_view_t *v, unsigned g);

/* Non-zero when a and b have the same members (the same incarnations) with the same
 * addresses. */
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

/* The owner of key's group (v has members): the member of highest weight for the
 * group, so a view change moves only the groups of the members that joined or left. */
static inline int rill__view_owner(const rill_view_t *v, uint64_t key)
{
    return rill__view_table(v)[rill__key_group(key, v->groups)];
}

#endif
