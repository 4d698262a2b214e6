/* v1 frame encoding and the byte-string hash that keys lp and line messages. */
#include <string.h>

#include "frame/frame.h"

/*
 * Hash: 16-byte blocks folded with a 64x64->128 multiply whose halves are xored (one wide
 * multiply mixes every input bit into the middle of the product), then a splitmix-style
 * xor-shift-multiply finaliser. The running state enters both factors, so no fixed input
 * pattern can zero a factor and wipe what came before. Reads are explicit little-endian
 * so a key is the same on every host (keys may cross machines in sink frames).
 */
#define K0 0x9e3779b97f4a7c15ull
#define K1 0xbf58476d1ce4e5b9ull
#define K2 0x94d049bb133111ebull
#define K3 0xd6e8feb86659fd93ull

#ifdef __SIZEOF_INT128__
__extension__ typedef unsigned __int128 u128;
#endif

static inline uint64_t mix(uint64_t a, uint64_t b)
{
#ifdef __SIZEOF_INT128__
    u128 r = (u128)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
#else
    uint64_t al = (uint32_t)a, ah = a >> 32, bl = (uint32_t)b, bh = b >> 32;
    uint64_t ll = al * bl, lh = al * bh, hl = ah * bl, hh = ah * bh;
    uint64_t mid = (ll >> 32) + (uint32_t)lh + (uint32_t)hl;
    uint64_t lo = (mid << 32) | (uint32_t)ll;
    uint64_t hi = hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
    return lo ^ hi;
#endif
}

static inline uint64_t rotl64(uint64_t x, unsigned r)
{
    return (x << r) | (x >> (64 - r));
}

static inline uint64_t le64(const uint8_t *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
           (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 |
           (uint64_t)p[7] << 56;
}

static inline uint64_t le32(const uint8_t *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24;
}

static inline uint64_t round16(uint64_t h, uint64_t a, uint64_t b)
{
    return mix(a ^ K1 ^ h, b ^ K2 ^ rotl64(h, 32));
}

uint64_t rill__hash_bytes(const void *data, size_t len)
{
    const uint8_t *p = data;
    size_t n = len;
    uint64_t h = K0 ^ ((uint64_t)len * K3);
    uint64_t a = 0, b = 0;

    while (n > 16) {
        h = round16(h, le64(p), le64(p + 8));
        p += 16;
        n -= 16;
    }
    /* 1..16 bytes left (or 0 for an empty string); overlapping reads cover them all, and
     * len in the seed and the finaliser tells overlapping tails of different lengths apart. */
    if (n >= 8) {
        a = le64(p);
        b = le64(p + n - 8);
    } else if (n >= 4) {
        a = le32(p);
        b = le32(p + n - 4);
    } else if (n > 0) {
        a = (uint64_t)p[0] << 16 | (uint64_t)p[n >> 1] << 8 | p[n - 1];
    }
    h = round16(h, a, b);

    h ^= (uint64_t)len;
    h ^= h >> 31;
    h *= K1;
    h ^= h >> 29;
    h *= K2;
    h ^= h >> 32;
    return h;
}
