/* Which key group a key belongs to: the one function that the cluster (a group's owner),
 * dispatch (a group's loop) and managed state (a group's table) all file keys by. */
#ifndef RILL_CORE_UTIL_KEY_GROUP_H
#define RILL_CORE_UTIL_KEY_GROUP_H

#include <stdint.h>

/* The key group of key among groups: keys are mixed first (applications often use small
 * sequential keys), then spread evenly by a multiply-shift. */
static inline unsigned rill__key_group(uint64_t key, unsigned groups)
{
    key ^= key >> 31;
    key *= 0x7fb5d329728ea185ull;
    key ^= key >> 27;
    return (unsigned)(((unsigned __int128)key * groups) >> 64);
}

#endif
