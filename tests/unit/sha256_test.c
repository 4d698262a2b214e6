/* core/util/sha256.c against the FIPS 180-4 examples and the RFC 4231 HMAC-SHA256 test
 * cases, and splitting the input anywhere gives the same digest. */
#include <string.h>

#include "harness.h"
#include "util/sha256.h"

static void hex(const uint8_t *d, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

static int sha(const char *msg, size_t n, const char *want)
{
    rill__sha256_t s;
    uint8_t d[32];
    char h[65];
    rill__sha256_init(&s);
    rill__sha256_update(&s, msg, n);
    rill__sha256_final(&s, d);
    hex(d, 32, h);
    ASSERT_STR_EQ(h, want);
    return 0;
}

static int fips(void)
{
    if (sha("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") ||
        sha("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") ||
        sha("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56,
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"))
        return 1;
    /* a million 'a', fed in uneven pieces */
    rill__sha256_t s;
    rill__sha256_init(&s);
    char a[1000];
    memset(a, 'a', sizeof a);
    size_t left = 1000000, step = 1;
    while (left) {
        size_t n = step < left ? step : left;
        rill__sha256_update(&s, a, n);
        left -= n;
        step = step % 997 + 1;
    }
    uint8_t d[32];
    char h[65];
    rill__sha256_final(&s, d);
    hex(d, 32, h);
    ASSERT_STR_EQ(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    return 0;
}

static int hmac(const void *key, size_t kl, const void *msg, size_t ml, const char *want)
{
    uint8_t d[32];
    char h[65];
    /* in two parts, split in the middle: the same as one */
    const void *parts[2] = {msg, (const uint8_t *)msg + ml / 2};
    size_t lens[2] = {ml / 2, ml - ml / 2};
    rill__hmac_sha256(key, kl, parts, lens, 2, d);
    hex(d, 32, h);
    ASSERT_STR_EQ(h, want);
    return 0;
}

static int rfc4231(void)
{
    uint8_t k1[20], k3[20], d3[50], k6[131];
    memset(k1, 0x0b, sizeof k1);
    memset(k3, 0xaa, sizeof k3);
    memset(d3, 0xdd, sizeof d3);
    memset(k6, 0xaa, sizeof k6);
    const char *m6 = "Test Using Larger Than Block-Size Key - Hash Key First";
    if (hmac(k1, 20, "Hi There", 8,
             "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7") ||
        hmac("Jefe", 4, "what do ya want for nothing?", 28,
             "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843") ||
        hmac(k3, 20, d3, 50, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe") ||
        hmac(k6, 131, m6, strlen(m6),
             "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"))
        return 1;
    return 0;
}

static int compare(void)
{
    uint8_t a[32] = {1, 2, 3}, b[32] = {1, 2, 3};
    ASSERT_EQ(rill__ct_compare(a, b, 32), 0);
    b[31] = 9;
    ASSERT_EQ(rill__ct_compare(a, b, 32), 1);
    return 0;
}

int main(int argc, char **argv)
{
    static const t_case_t cases[] = {
        {"fips", fips},
        {"rfc4231", rfc4231},
        {"compare", compare},
        {NULL, NULL},
    };
    return t_run("sha256", cases, argc, argv);
}
