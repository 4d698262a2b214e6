/* Which key group a key belongs to: the one function that the cluster (a group's owner),
 * dispatch (a group's loop) and managed state (a group's table) all file keys by. */
#ifndef RILL_CORE_UTIL_KEY_GROUP_H
#define RILL_CORE_UTIL_KEY_GROUP_H

#include <stdint.h>

/* A key mixed (applications often use small sequential keys): its group comes from the
 * high bits, and a group's table (state/table.h) uses the others. */
static inline uint64_t rill__key_mix(uint64_t key)
{
    key ^= key >> 31;
    key *= 0x7fb5d329728ea185ull;
    key ^= key >> 27;
    return key;
}

/* The group of a mixed key among groups: spread evenly by a multiply-shift. */
static inline unsigned rill__mix_group(uint64_t h, unsigned groups)
{
    return (unsigned)(((unsigned __int128)h * groups) >> 64);
}

/* The key group of key among groups. */
static inline unsigned rill__key_group(uint64_t key, unsigned groups)
{
    return rill__mix_group(rill__key_mix(key), groups);
}

#endif
