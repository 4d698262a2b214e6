/* core/frame/control.c: the control frames of acknowledged streams (docs/protocol.md,
 * "Control frames"): each type encoded, carried through the v1 decoder split at every
 * point, and parsed back; malformed layouts refused; bytes after the fixed fields and
 * unknown flags ignored. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame/control.h"
#include "frame/frame.h"
#include "harness.h"

/* Decodes s[0..n) cut at `cut` and parses the single frame it holds into out. */
static int decode_one(const uint8_t *s, size_t n, size_t cut, rill__ctl_t *out, int *parse_rc)
{
    rill__decoder_t d;
    rill__decoder_init(&d, RILL_FRAMING_RILL, 1u << 20, 0, 0, 0);
    rill_msg_t v[4];
    int got = 0;
    const uint8_t *piece[2] = {s, s + cut};
    size_t len[2] = {cut, n - cut};
    for (int p = 0; p < 2; p++) {
        size_t pos = 0;
        while (pos < len[p]) {
            int k = rill__decode(&d, piece[p], len[p], &pos, v, 4);
            ASSERT_GE(k, 0);
            for (int i = 0; i < k; i++) {
                ASSERT_TRUE(rill__is_control(&v[i]));
                *parse_rc = rill__ctl_parse(&v[i], out);
                /* The view (and so addr) may point into the decoder's carry: keep a copy. */
                static char addr[256];
                if (*parse_rc == 0 && out->addr_len) {
                    memcpy(addr, out->addr, out->addr_len);
                    out->addr = addr;
                }
                got++;
            }
        }
    }
    rill__decoder_free(&d);
    ASSERT_EQ(got, 1);
    return 0;
}

static int every_split(const uint8_t *s, size_t n, const rill__ctl_t *want)
{
    for (size_t cut = 0; cut <= n; cut++) {
        rill__ctl_t c;
        int rc = -1;
        if (decode_one(s, n, cut, &c, &rc))
            return 1;
        ASSERT_EQ(rc, 0);
        ASSERT_EQ(c.type, want->type);
        ASSERT_U64_EQ(c.stream_id, want->stream_id);
        ASSERT_U64_EQ(c.seq, want->seq);
        ASSERT_U64_EQ(c.credit, want->credit);
        ASSERT_EQ(c.addr_len, want->addr_len);
        if (want->addr_len)
            ASSERT_MEM_EQ(c.addr, want->addr, want->addr_len);
    }
    return 0;
}

static int roundtrip_every_split(void)
{
    uint8_t f[RILL_CTL_FRAME_MAX];
    size_t n = rill__ctl_put_hello(f, 0x0102030405060708ull, 42);
    ASSERT_EQ(n, 16 + RILL_CTL_HELLO_LEN);
    /* The wire bytes of the contract: length, comp id, key = type, then the fields. */
    static const uint8_t hello[] = {0, 0, 0, 32, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0,
                                    0, 0, 0, 1,  0,    2,    0,    0,    1, 2, 3, 4,
                                    5, 6, 7, 8,  0,    0,    0,    0,    0, 0, 0, 42};
    ASSERT_EQ(n, sizeof hello);
    ASSERT_MEM_EQ(f, hello, sizeof hello);
    rill__ctl_t w = {.type = RILL_CTL_HELLO, .stream_id = 0x0102030405060708ull, .seq = 42};
    if (every_split(f, n, &w))
        return 1;

    n = rill__ctl_put_welcome(f, 1u << 20, 7);
    static const uint8_t welcome[] = {0, 0, 0, 24,   0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0,
                                      0, 2, 0, 0x10, 0,    0,    0,    0,    0, 0, 0, 0, 0, 7};
    ASSERT_EQ(n, sizeof welcome);
    ASSERT_MEM_EQ(f, welcome, sizeof welcome);
    w = (rill__ctl_t){.type = RILL_CTL_WELCOME, .credit = 1u << 20, .seq = 7};
    if (every_split(f, n, &w))
        return 1;

    n = rill__ctl_put_ack(f, UINT64_MAX, 65536);
    static const uint8_t ack[] = {0, 0, 0,    24,   0xff, 0xff, 0xff, 0xff, 0,    0,    0, 0, 0, 0,
                                  0, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 1, 0, 0};
    ASSERT_EQ(n, sizeof ack);
    ASSERT_MEM_EQ(f, ack, sizeof ack);
    w = (rill__ctl_t){.type = RILL_CTL_ACK, .credit = 65536, .seq = UINT64_MAX};
    if (every_split(f, n, &w))
        return 1;

    const char *addr = "127.0.0.1:7701";
    n = rill__ctl_put_goaway(f, addr, strlen(addr));
    ASSERT_EQ(n, 16 + 2 + strlen(addr));
    w = (rill__ctl_t){.type = RILL_CTL_GOAWAY, .addr = addr, .addr_len = (uint16_t)strlen(addr)};
    if (every_split(f, n, &w))
        return 1;
    n = rill__ctl_put_goaway(f, NULL, 0); /* n may be 0: no other member to name */
    w = (rill__ctl_t){.type = RILL_CTL_GOAWAY};
    return every_split(f, n, &w);
}

static int parse_raw(uint64_t type, const uint8_t *payload, uint32_t len, rill__ctl_t *c)
{
    rill_msg_t m = {len ? payload : NULL, len, RILL_CONTROL_COMP, type};
    return rill__ctl_parse(&m, c);
}

static int malformed(void)
{
    uint8_t p[64];
    memset(p, 0, sizeof p);
    rill__ctl_t c;
    /* unknown types */
    ASSERT_EQ(parse_raw(0, p, 20, &c), RILL_ECONTROL);
    ASSERT_EQ(parse_raw(6, p, 20, &c), RILL_ECONTROL);
    ASSERT_EQ(parse_raw(RILL_CTL_CHALLENGE, p, RILL_CTL_NONCE_LEN - 1, &c), RILL_ECONTROL);
    ASSERT_EQ(parse_raw(1ull << 40 | 1, p, 20, &c), RILL_ECONTROL);
    /* a comp id that is not the control id */
    rill_msg_t m = {p, 12, 7, RILL_CTL_ACK};
    ASSERT_EQ(rill__ctl_parse(&m, &c), RILL_ECONTROL);
    /* one byte short of each type's fixed fields */
    uint8_t f[RILL_CTL_FRAME_MAX];
    rill__ctl_put_hello(f, 9, 1);
    ASSERT_EQ(parse_raw(RILL_CTL_HELLO, f + 16, RILL_CTL_HELLO_LEN - 1, &c), RILL_ECONTROL);
    ASSERT_EQ(parse_raw(RILL_CTL_HELLO, f + 16, RILL_CTL_HELLO_LEN, &c), 0);
    ASSERT_EQ(parse_raw(RILL_CTL_WELCOME, p, RILL_CTL_WELCOME_LEN - 1, &c), RILL_ECONTROL);
    ASSERT_EQ(parse_raw(RILL_CTL_ACK, p, RILL_CTL_ACK_LEN - 1, &c), RILL_ECONTROL);
    ASSERT_EQ(parse_raw(RILL_CTL_GOAWAY, p, 1, &c), RILL_ECONTROL);
    ASSERT_EQ(parse_raw(RILL_CTL_GOAWAY, NULL, 0, &c), RILL_ECONTROL);
    /* HELLO: version 2 only, stream_id != 0, first_seq >= 1 */
    uint8_t h[RILL_CTL_HELLO_LEN];
    memcpy(h, f + 16, sizeof h);
    h[1] = 1;
    ASSERT_EQ(parse_raw(RILL_CTL_HELLO, h, sizeof h, &c), RILL_ECONTROL);
    h[1] = 3;
    ASSERT_EQ(parse_raw(RILL_CTL_HELLO, h, sizeof h, &c), RILL_ECONTROL);
    rill__ctl_put_hello(f, 0, 1);
    ASSERT_EQ(parse_raw(RILL_CTL_HELLO, f + 16, RILL_CTL_HELLO_LEN, &c), RILL_ECONTROL);
    rill__ctl_put_hello(f, 5, 0);
    ASSERT_EQ(parse_raw(RILL_CTL_HELLO, f + 16, RILL_CTL_HELLO_LEN, &c), RILL_ECONTROL);
    /* HELLO that says a MAC follows, without it */
    memcpy(h, f + 16, sizeof h);
    h[3] = RILL_HELLO_F_AUTH;
    ASSERT_EQ(parse_raw(RILL_CTL_HELLO, h, sizeof h, &c), RILL_ECONTROL);
    /* GOAWAY: n beyond the payload */
    uint8_t g[8] = {0, 7, 'a', 'b', 'c', 'd', 'e', 'f'};
    ASSERT_EQ(parse_raw(RILL_CTL_GOAWAY, g, sizeof g, &c), RILL_ECONTROL);
    g[1] = 6;
    ASSERT_EQ(parse_raw(RILL_CTL_GOAWAY, g, sizeof g, &c), 0);
    ASSERT_EQ(c.addr_len, 6);
    return 0;
}

/* Bytes after the fixed fields, and flags, are for later versions: ignored. */
static int extensions_ignored(void)
{
    uint8_t p[RILL_CTL_HELLO_LEN + 9];
    uint8_t f[RILL_CTL_FRAME_MAX];
    rill__ctl_put_hello(f, 77, 3);
    memcpy(p, f + 16, RILL_CTL_HELLO_LEN);
    memset(p + RILL_CTL_HELLO_LEN, 0xee, 9);
    p[2] = 0x80; /* a flag bit this version does not know: "fields follow" */
    rill__ctl_t c;
    ASSERT_EQ(parse_raw(RILL_CTL_HELLO, p, sizeof p, &c), 0);
    ASSERT_U64_EQ(c.stream_id, 77);
    ASSERT_U64_EQ(c.seq, 3);
    ASSERT_EQ(c.flags, 0x8000);
    ASSERT_TRUE(c.mac == NULL);
    uint8_t a[RILL_CTL_ACK_LEN + 4] = {0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 1, 0, 1, 2, 3, 4};
    ASSERT_EQ(parse_raw(RILL_CTL_ACK, a, sizeof a, &c), 0);
    ASSERT_U64_EQ(c.seq, 9);
    ASSERT_U64_EQ(c.credit, 256);
    return 0;
}

static int goaway_address_cut(void)
{
    char addr[300];
    memset(addr, 'h', sizeof addr);
    uint8_t f[RILL_CTL_FRAME_MAX];
    size_t n = rill__ctl_put_goaway(f, addr, sizeof addr);
    ASSERT_EQ(n, RILL_CTL_FRAME_MAX);
    rill_msg_t m = {f + 16, (uint32_t)(n - 16), RILL_CONTROL_COMP, RILL_CTL_GOAWAY};
    rill__ctl_t c;
    ASSERT_EQ(rill__ctl_parse(&m, &c), 0);
    ASSERT_EQ(c.addr_len, 255);
    return 0;
}

/* Peer links: CHALLENGE carries the nonce, the authenticated HELLO a MAC over it. */
static int auth_hello(void)
{
    uint8_t key[32], nonce[RILL_CTL_NONCE_LEN], f[RILL_CTL_FRAME_MAX], want[RILL_CTL_MAC_LEN];
    for (unsigned i = 0; i < sizeof key; i++)
        key[i] = (uint8_t)(i * 7 + 1);
    for (unsigned i = 0; i < sizeof nonce; i++)
        nonce[i] = (uint8_t)(0xa0 + i);
    size_t n = rill__ctl_put_challenge(f, nonce);
    ASSERT_EQ(n, 16 + RILL_CTL_NONCE_LEN);
    rill__ctl_t c;
    ASSERT_EQ(parse_raw(RILL_CTL_CHALLENGE, f + 16, (uint32_t)(n - 16), &c), 0);
    ASSERT_MEM_EQ(c.nonce, nonce, RILL_CTL_NONCE_LEN);
    n = rill__ctl_put_peer_hello(f, 0x1122, 9, 1, nonce, key);
    ASSERT_EQ(n, 16 + RILL_CTL_HELLO_LEN + RILL_CTL_MAC_LEN);
    ASSERT_EQ(parse_raw(RILL_CTL_HELLO, f + 16, (uint32_t)(n - 16), &c), 0);
    ASSERT_EQ(c.flags, RILL_HELLO_F_AUTH);
    ASSERT_TRUE(c.mac != NULL);
    rill__ctl_hello_mac(key, nonce, 0x1122, 9, want);
    ASSERT_MEM_EQ(c.mac, want, RILL_CTL_MAC_LEN);
    /* another nonce, stream, first_seq or key: another MAC */
    uint8_t other[RILL_CTL_MAC_LEN];
    nonce[0] ^= 1;
    rill__ctl_hello_mac(key, nonce, 0x1122, 9, other);
    ASSERT_TRUE(memcmp(other, want, sizeof want) != 0);
    nonce[0] ^= 1;
    rill__ctl_hello_mac(key, nonce, 0x1122, 10, other);
    ASSERT_TRUE(memcmp(other, want, sizeof want) != 0);
    key[5] ^= 1;
    rill__ctl_hello_mac(key, nonce, 0x1122, 9, other);
    ASSERT_TRUE(memcmp(other, want, sizeof want) != 0);
    return 0;
}

/* A peer link's hop depth: a byte after the fixed fields (and after the MAC when there
 * is one), flagged; absent means 1; a flagged frame without it, or depth 0, is malformed. */
static int peer_hello_depth(void)
{
    uint8_t key[32] = {1, 2, 3}, nonce[RILL_CTL_NONCE_LEN] = {9}, f[RILL_CTL_FRAME_MAX];
    rill__ctl_t c;
    size_t n = rill__ctl_put_peer_hello(f, 0x77, 5, 1, NULL, NULL);
    ASSERT_EQ(n, 16 + RILL_CTL_HELLO_LEN); /* depth 1: the plain HELLO of the contract */
    ASSERT_EQ(parse_raw(RILL_CTL_HELLO, f + 16, (uint32_t)(n - 16), &c), 0);
    ASSERT_EQ(c.flags, 0);
    ASSERT_EQ(c.depth, 1);
    n = rill__ctl_put_peer_hello(f, 0x77, 5, 3, NULL, NULL);
    ASSERT_EQ(n, 16 + RILL_CTL_HELLO_LEN + 1);
    ASSERT_EQ(f[16 + RILL_CTL_HELLO_LEN], 3);
    rill__ctl_t w = {.type = RILL_CTL_HELLO, .stream_id = 0x77, .seq = 5};
    if (every_split(f, n, &w))
        return 1;
    ASSERT_EQ(parse_raw(RILL_CTL_HELLO, f + 16, (uint32_t)(n - 16), &c), 0);
    ASSERT_EQ(c.flags, RILL_HELLO_F_DEPTH);
    ASSERT_EQ(c.depth, 3);
    ASSERT_TRUE(c.mac == NULL);
    /* flagged, but the byte is missing; or it is 0 */
    ASSERT_EQ(parse_raw(RILL_CTL_HELLO, f + 16, (uint32_t)(n - 17), &c), RILL_ECONTROL);
    f[16 + RILL_CTL_HELLO_LEN] = 0;
    ASSERT_EQ(parse_raw(RILL_CTL_HELLO, f + 16, (uint32_t)(n - 16), &c), RILL_ECONTROL);
    /* with a MAC: the depth follows it, and the MAC is the one of an undeep HELLO */
    n = rill__ctl_put_peer_hello(f, 0x77, 5, 2, nonce, key);
    ASSERT_EQ(n, 16 + RILL_CTL_HELLO_LEN + RILL_CTL_MAC_LEN + 1);
    ASSERT_EQ(parse_raw(RILL_CTL_HELLO, f + 16, (uint32_t)(n - 16), &c), 0);
    ASSERT_EQ(c.flags, RILL_HELLO_F_AUTH | RILL_HELLO_F_DEPTH);
    ASSERT_EQ(c.depth, 2);
    uint8_t want[RILL_CTL_MAC_LEN];
    rill__ctl_hello_mac(key, nonce, 0x77, 5, want);
    ASSERT_MEM_EQ(c.mac, want, RILL_CTL_MAC_LEN);
    ASSERT_EQ(parse_raw(RILL_CTL_HELLO, f + 16, (uint32_t)(n - 17), &c), RILL_ECONTROL);
    return 0;
}

int main(int argc, char **argv)
{
    static const t_case_t cases[] = {
        {"roundtrip_every_split", roundtrip_every_split},
        {"malformed", malformed},
        {"extensions_ignored", extensions_ignored},
        {"goaway_address_cut", goaway_address_cut},
        {"auth_hello", auth_hello},
        {"peer_hello_depth", peer_hello_depth},
        {NULL, NULL},
    };
    return t_run("frame_control", cases, argc, argv);
}
