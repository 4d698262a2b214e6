/* SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), for proving knowledge of the cluster's
 * credentials on peer links without sending them. Small and dependency-free; checked
 * against the FIPS and RFC 4231 test vectors (tests/unit/sha256_test.c). */
#ifndef RILL_CORE_SHA256_H
#define RILL_CORE_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define RILL_SHA256_LEN 32

typedef struct rill__sha256 {
    uint32_t h[8];
    uint64_t len; /* bytes hashed so far */
    uint8_t buf[64];
    size_t fill;
} rill__sha256_t;

void rill__sha256_init(rill__sha256_t *s);
void rill__sha256_update(rill__sha256_t *s, const void *data, size_t n);
void rill__sha256_final(rill__sha256_t *s, uint8_t out[RILL_SHA256_LEN]);

/* HMAC-SHA256 of the concatenation of parts[0..nparts) under key. */
void rill__hmac_sha256(const void *key, size_t key_len, const void *const *parts,
                       const size_t *lens, size_t nparts, uint8_t out[RILL_SHA256_LEN]);

/* Compares n bytes in time that does not depend on where they differ. Returns 0 when equal. */
int rill__ct_compare(const uint8_t *a, const uint8_t *b, size_t n);

#endif
