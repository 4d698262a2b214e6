/* core/frame/decode.c and encode.c: framings split at every point, caps, protocol errors,
 * carry lifetime, encode/decode round trip, and the key hash. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame/frame.h"
#include "harness.h"

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (x)                                                                                     \
            return 1;                                                                              \
    } while (0)

/* ------------------------------------------------------------------ recorder */

#define MAXMSG 512
#define ARENA (32u << 10)

typedef struct {
    uint32_t comp;
    uint64_t key;
    const uint8_t *data;
    size_t len;
} exp_t;

typedef struct {
    rill_framing_t framing;
    uint32_t max_frame;
    uint32_t comp_id;
    int has_key;
    uint64_t key;
} cfg_t;

/* Feeds pieces through a decoder the way a connection does and keeps copies of every
 * view, taken right after the call that returned it (so a carry overwritten within that
 * call would show up as wrong bytes). */
typedef struct {
    rill__decoder_t d;
    size_t cap;
    int err;
    size_t n;
    uint32_t comp[MAXMSG];
    uint64_t key[MAXMSG];
    size_t off[MAXMSG], len[MAXMSG];
    size_t arena_len;
    uint8_t arena[ARENA];
} rec_t;

static rec_t *rec_new(const cfg_t *c, size_t cap)
{
    rec_t *r = calloc(1, sizeof *r);
    if (!r)
        abort();
    rill__decoder_init(&r->d, c->framing, c->max_frame, c->comp_id, c->has_key, c->key);
    r->cap = cap;
    return r;
}

static void rec_free(rec_t *r)
{
    rill__decoder_free(&r->d);
    free(r);
}

static int in_range(const uint8_t *p, size_t n, const uint8_t *lo, size_t lo_len)
{
    return lo && p >= lo && p + n <= lo + lo_len;
}

/* Feeds one piece (a malloc'd copy of exactly len bytes, so ASan sees over-reads). */
static int feed(rec_t *r, const uint8_t *src, size_t len)
{
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        abort();
    buf[0] = 0;
    if (len)
        memcpy(buf, src, len);
    rill_msg_t out[64];
    size_t pos = 0;

    if (r->err) { /* sticky: any later piece gets the same error and is not consumed */
        int rc = rill__decode(&r->d, buf, len, &pos, out, r->cap);
        if (len)
            ASSERT_EQ(rc, r->err);
        ASSERT_EQ(pos, 0);
        free(buf);
        return 0;
    }
    while (pos < len) {
        size_t before = pos;
        int rc = rill__decode(&r->d, buf, len, &pos, out, r->cap);
        if (rc < 0) {
            r->err = rc;
            size_t p2 = pos;
            ASSERT_EQ(rill__decode(&r->d, buf, len, &p2, out, r->cap), rc);
            ASSERT_EQ(p2, pos);
            break;
        }
        ASSERT_LE(rc, (long long)r->cap);
        ASSERT_LE(pos, len);
        ASSERT_GE(pos, before);
        if (rc == 0)
            ASSERT_EQ(pos, len); /* no progress without views would spin the caller */
        for (int i = 0; i < rc; i++) {
            const rill_msg_t *m = &out[i];
            if (m->len == 0) {
                ASSERT_TRUE(m->data == NULL);
            } else {
                ASSERT_TRUE(in_range(m->data, m->len, buf, len) ||
                            in_range(m->data, m->len, r->d.carry, r->d.carry_len));
            }
            ASSERT_LT(r->n, MAXMSG);
            ASSERT_LE(r->arena_len + m->len, ARENA);
            r->comp[r->n] = m->comp_id;
            r->key[r->n] = m->key;
            r->off[r->n] = r->arena_len;
            r->len[r->n] = m->len;
            if (m->len)
                memcpy(r->arena + r->arena_len, m->data, m->len);
            r->arena_len += m->len;
            r->n++;
        }
    }
    free(buf);
    return 0;
}

static int check(const rec_t *r, const exp_t *e, size_t ne, int experr)
{
    ASSERT_EQ(r->err, experr);
    ASSERT_EQ(r->n, ne);
    for (size_t i = 0; i < ne; i++) {
        ASSERT_EQ(r->comp[i], e[i].comp);
        ASSERT_U64_EQ(r->key[i], e[i].key);
        ASSERT_EQ(r->len[i], e[i].len);
        if (e[i].len)
            ASSERT_MEM_EQ(r->arena + r->off[i], e[i].data, e[i].len);
    }
    return 0;
}

/* Feeds s[0..n) cut at cuts[0..ncuts) (ascending) and checks the delivered sequence. */
static int run_cuts(const cfg_t *c, size_t cap, const uint8_t *s, size_t n, const size_t *cuts,
                    size_t ncuts, const exp_t *e, size_t ne, int experr)
{
    rec_t *r = rec_new(c, cap);
    size_t prev = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : n;
        CHECK(feed(r, s + prev, end - prev));
        prev = end;
    }
    CHECK(check(r, e, ne, experr));
    if (!experr)
        ASSERT_EQ(rill__decoder_midframe(&r->d), 0);
    rec_free(r);
    return 0;
}

static const size_t caps[] = {1, 3, 64};
#define NCAPS (sizeof caps / sizeof caps[0])

/* Every split into 2 pieces, byte by byte, and (if all3) every split into 3 pieces. */
static int run_all_splits(const cfg_t *c, const uint8_t *s, size_t n, const exp_t *e, size_t ne,
                          int experr, int all3)
{
    for (size_t k = 0; k < NCAPS; k++) {
        for (size_t a = 0; a <= n; a++) {
            if (run_cuts(c, caps[k], s, n, &a, 1, e, ne, experr)) {
                fprintf(stderr, "  split at %zu, cap %zu\n", a, caps[k]);
                return 1;
            }
        }
        size_t *cuts = malloc((n ? n : 1) * sizeof *cuts);
        for (size_t i = 1; i < n; i++)
            cuts[i - 1] = i;
        if (run_cuts(c, caps[k], s, n, cuts, n ? n - 1 : 0, e, ne, experr)) {
            fprintf(stderr, "  byte by byte, cap %zu\n", caps[k]);
            return 1;
        }
        free(cuts);
        if (!all3)
            continue;
        for (size_t a = 0; a <= n; a++) {
            for (size_t b = a; b <= n; b++) {
                size_t ab[2] = {a, b};
                if (run_cuts(c, caps[k], s, n, ab, 2, e, ne, experr)) {
                    fprintf(stderr, "  split at %zu and %zu, cap %zu\n", a, b, caps[k]);
                    return 1;
                }
            }
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ builders */

static uint8_t pool[4096];

static void pool_init(void)
{
    for (size_t i = 0; i < sizeof pool; i++)
        pool[i] = (uint8_t)(i * 131u + (i >> 3));
}

static size_t put_v1(uint8_t *out, uint32_t length_field, uint32_t comp, uint64_t key,
                     const uint8_t *pay, size_t plen)
{
    rill__store_be32(out, length_field);
    rill__store_be32(out + 4, comp);
    rill__store_be64(out + 8, key);
    if (plen)
        memcpy(out + 16, pay, plen);
    return 16 + plen;
}

/* v1 stream of frames with the given payload sizes; returns its length. */
static size_t build_v1(uint8_t *s, exp_t *e, const size_t *sizes, size_t nf)
{
    size_t n = 0, po = 0;
    for (size_t i = 0; i < nf; i++) {
        e[i].comp = (uint32_t)(i * 7 + 1) | (i == 3 ? 0x80000000u : 0);
        e[i].key = 0x0123456789abcdefull * (i + 1) ^ ((uint64_t)i << 63);
        e[i].data = pool + po;
        e[i].len = sizes[i];
        n += put_v1(s + n, (uint32_t)(12 + sizes[i]), e[i].comp, e[i].key, e[i].data, sizes[i]);
        po += sizes[i] + 1;
    }
    return n;
}

static const cfg_t V1 = {RILL_FRAMING_RILL, 1u << 20, 0, 0, 0};

/* ------------------------------------------------------------------ v1 */

static int v1_whole_piece(void)
{
    static const size_t sizes[] = {0, 1, 5, 12, 3, 40, 0, 17};
    uint8_t s[512];
    exp_t e[8];
    size_t n = build_v1(s, e, sizes, 8);
    for (size_t k = 0; k < NCAPS; k++) {
        size_t none[1] = {0};
        CHECK(run_cuts(&V1, caps[k], s, n, none, 0, e, 8, 0));
    }
    /* the fast path hands out views into buf and allocates nothing */
    rill__decoder_t d;
    rill__decoder_init(&d, RILL_FRAMING_RILL, 1u << 20, 0, 0, 0);
    rill_msg_t out[16];
    size_t pos = 0;
    ASSERT_EQ(rill__decode(&d, s, n, &pos, out, 16), 8);
    ASSERT_EQ(pos, n);
    ASSERT_TRUE(d.carry == NULL);
    ASSERT_EQ(rill__decoder_midframe(&d), 0);
    for (int i = 0; i < 8; i++)
        if (out[i].len)
            ASSERT_TRUE(in_range(out[i].data, out[i].len, s, n));
    rill__decoder_free(&d);
    return 0;
}

static int v1_split_every_point(void)
{
    static const size_t sizes[] = {0, 1, 5, 12, 3, 40, 0, 17};
    uint8_t s[512];
    exp_t e[8];
    size_t n = build_v1(s, e, sizes, 8);
    return run_all_splits(&V1, s, n, e, 8, 0, 0);
}

static int v1_split_three_pieces(void)
{
    static const size_t sizes[] = {3, 0, 9, 1};
    uint8_t s[128];
    exp_t e[4];
    size_t n = build_v1(s, e, sizes, 4);
    return run_all_splits(&V1, s, n, e, 4, 0, 1);
}

static int v1_midframe_bytewise(void)
{
    static const size_t sizes[] = {0, 4, 1, 20};
    uint8_t s[256];
    exp_t e[4];
    size_t n = build_v1(s, e, sizes, 4);
    size_t bound[5] = {0};
    for (int i = 0; i < 4; i++)
        bound[i + 1] = bound[i] + 16 + sizes[i];
    rec_t *r = rec_new(&V1, 64);
    int b = 1;
    for (size_t i = 0; i < n; i++) {
        CHECK(feed(r, s + i, 1));
        int at_boundary = (i + 1 == bound[b]);
        if (at_boundary) {
            ASSERT_EQ(r->n, (size_t)b);
            b++;
        }
        ASSERT_EQ(rill__decoder_midframe(&r->d), !at_boundary);
    }
    CHECK(check(r, e, 4, 0));
    /* the carry grew to the largest straddling frame only */
    ASSERT_LE(r->d.carry_cap, 16 + 20);
    rec_free(r);
    return 0;
}

/* A frame completed in the carry stays intact while the rest of the piece is decoded, and
 * the trailing partial frame is stashed only on the next call. */
static int v1_carry_view_survives(void)
{
    static const size_t sizes[] = {30, 2, 25};
    uint8_t s[256];
    exp_t e[3];
    size_t n = build_v1(s, e, sizes, 3);
    size_t cut1 = 10, end_b = 16 + 30 + 16 + 2, cut2 = end_b + 5;
    rill__decoder_t d;
    rill__decoder_init(&d, RILL_FRAMING_RILL, 1u << 20, 0, 0, 0);
    rill_msg_t out[8];
    size_t pos = 0;
    ASSERT_EQ(rill__decode(&d, s, cut1, &pos, out, 8), 0);
    ASSERT_EQ(pos, cut1);
    ASSERT_TRUE(rill__decoder_midframe(&d));

    uint8_t *p2 = malloc(cut2 - cut1);
    memcpy(p2, s + cut1, cut2 - cut1);
    size_t len2 = cut2 - cut1;
    pos = 0;
    ASSERT_EQ(rill__decode(&d, p2, len2, &pos, out, 8), 2);
    ASSERT_EQ(pos, end_b - cut1); /* tail not stashed yet: the carry holds frame A's view */
    ASSERT_LT(pos, len2);
    ASSERT_TRUE(in_range(out[0].data, 30, d.carry, d.carry_len));
    ASSERT_MEM_EQ(out[0].data, e[0].data, 30);
    ASSERT_TRUE(in_range(out[1].data, 2, p2, len2));
    ASSERT_EQ(rill__decoder_midframe(&d), 0);
    ASSERT_EQ(rill__decode(&d, p2, len2, &pos, out, 8), 0);
    ASSERT_EQ(pos, len2);
    ASSERT_TRUE(rill__decoder_midframe(&d));
    free(p2);

    pos = 0;
    ASSERT_EQ(rill__decode(&d, s + cut2, n - cut2, &pos, out, 8), 1);
    ASSERT_EQ(pos, n - cut2);
    ASSERT_EQ(out[0].len, 25);
    ASSERT_MEM_EQ(out[0].data, e[2].data, 25);
    ASSERT_U64_EQ(out[0].key, e[2].key);
    ASSERT_EQ(out[0].comp_id, e[2].comp);
    rill__decoder_free(&d);
    ASSERT_TRUE(d.carry == NULL);
    return 0;
}

static int v1_oversize_before_allocation(void)
{
    uint8_t hdr[4];
    rill__store_be32(hdr, (1u << 30) + 12); /* a 1 GiB payload */
    rill__decoder_t d;
    rill_msg_t out[4];
    size_t pos = 0;

    rill__decoder_init(&d, RILL_FRAMING_RILL, 1u << 20, 0, 0, 0);
    ASSERT_EQ(rill__decode(&d, hdr, 4, &pos, out, 4), RILL_EFRAME_LONG);
    ASSERT_TRUE(d.carry == NULL);
    ASSERT_EQ(d.carry_cap, 0);
    pos = 0;
    ASSERT_EQ(rill__decode(&d, hdr, 4, &pos, out, 4), RILL_EFRAME_LONG); /* sticky */
    rill__decoder_free(&d);

    /* the length field split 1+3, 2+2, 3+1: error on the byte that completes it */
    for (size_t k = 1; k < 4; k++) {
        rill__decoder_init(&d, RILL_FRAMING_RILL, 1u << 20, 0, 0, 0);
        pos = 0;
        ASSERT_EQ(rill__decode(&d, hdr, k, &pos, out, 4), 0);
        ASSERT_EQ(pos, k);
        ASSERT_TRUE(rill__decoder_midframe(&d));
        pos = 0;
        ASSERT_EQ(rill__decode(&d, hdr + k, 4 - k, &pos, out, 4), RILL_EFRAME_LONG);
        ASSERT_LE(d.carry_cap, 4); /* only the length field was ever held */
        rill__decoder_free(&d);
    }

    /* limits: max_frame is accepted, max_frame + 1 is not */
    uint8_t f[64];
    exp_t e = {5, 6, pool, 36};
    size_t n = put_v1(f, 48, 5, 6, pool, 36);
    cfg_t c = V1;
    c.max_frame = 48;
    CHECK(run_all_splits(&c, f, n, &e, 1, 0, 0));
    c.max_frame = 47;
    CHECK(run_all_splits(&c, f, n, &e, 0, RILL_EFRAME_LONG, 0));
    return 0;
}

static int v1_undersize(void)
{
    static const size_t sizes[] = {2, 0};
    for (uint32_t bad = 0; bad < 12; bad++) {
        uint8_t s[128];
        exp_t e[2];
        size_t n = build_v1(s, e, sizes, 2);
        n += put_v1(s + n, bad, 9, 9, pool, 0); /* 16 bytes: a bad length plus junk */
        n += put_v1(s + n, 12, 1, 1, pool, 0);  /* never reached */
        if (run_all_splits(&V1, s, n, e, 2, RILL_EFRAME_SHORT, 0)) {
            fprintf(stderr, "  length field %u\n", bad);
            return 1;
        }
    }
    return 0;
}

/* Good frames before a bad one come first; the error then sticks for every later call. */
static int v1_error_after_good_frames_is_sticky(void)
{
    static const size_t sizes[] = {1, 2, 3};
    uint8_t s[256];
    exp_t e[3];
    size_t n = build_v1(s, e, sizes, 3);
    size_t bad_at = n;
    rill__store_be32(s + n, 0xffffffffu);
    n += 4;
    n += put_v1(s + n, 13, 1, 1, pool, 1);

    rill__decoder_t d;
    rill__decoder_init(&d, RILL_FRAMING_RILL, 1u << 20, 0, 0, 0);
    rill_msg_t out[8];
    size_t pos = 0;
    ASSERT_EQ(rill__decode(&d, s, n, &pos, out, 8), 3);
    ASSERT_EQ(pos, bad_at);
    ASSERT_EQ(out[2].len, 3);
    ASSERT_MEM_EQ(out[2].data, e[2].data, 3);
    ASSERT_EQ(rill__decode(&d, s, n, &pos, out, 8), RILL_EFRAME_LONG);
    ASSERT_EQ(pos, bad_at);
    ASSERT_EQ(rill__decode(&d, s, n, &pos, out, 8), RILL_EFRAME_LONG);
    size_t p2 = 0;
    ASSERT_EQ(rill__decode(&d, s, 20, &p2, out, 8), RILL_EFRAME_LONG); /* a fresh piece too */
    ASSERT_EQ(p2, 0);
    rill__decoder_free(&d);

    /* and with cap 1 the frames trickle out one per call before the error */
    rill__decoder_init(&d, RILL_FRAMING_RILL, 1u << 20, 0, 0, 0);
    pos = 0;
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(rill__decode(&d, s, n, &pos, out, 1), 1);
    ASSERT_EQ(rill__decode(&d, s, n, &pos, out, 1), RILL_EFRAME_LONG);
    rill__decoder_free(&d);
    return 0;
}

/* ------------------------------------------------------------------ lp */

static size_t build_lp(uint8_t *s, exp_t *e, const size_t *sizes, size_t nf, const cfg_t *c)
{
    size_t n = 0, po = 0;
    for (size_t i = 0; i < nf; i++) {
        e[i].comp = c->comp_id;
        e[i].data = pool + po;
        e[i].len = sizes[i];
        e[i].key = c->has_key ? c->key : rill__hash_bytes(e[i].data, sizes[i]);
        rill__store_be32(s + n, (uint32_t)sizes[i]);
        if (sizes[i])
            memcpy(s + n + 4, e[i].data, sizes[i]);
        n += 4 + sizes[i];
        po += sizes[i] * 3 + 1;
    }
    return n;
}

static int lp_splits(void)
{
    static const size_t sizes[] = {0, 3, 1, 20, 0, 7, 64};
    uint8_t s[512];
    exp_t e[7];
    cfg_t c = {RILL_FRAMING_LP, 1u << 20, 42, 0, 0};
    size_t n = build_lp(s, e, sizes, 7, &c);
    ASSERT_TRUE(e[1].key != e[2].key && e[0].key == e[4].key);
    CHECK(run_all_splits(&c, s, n, e, 7, 0, 0));
    c.has_key = 1;
    c.key = 0xfeedfacecafebeefull;
    n = build_lp(s, e, sizes, 7, &c);
    CHECK(run_all_splits(&c, s, n, e, 7, 0, 0));

    static const size_t small[] = {2, 0, 5};
    n = build_lp(s, e, small, 3, &c);
    return run_all_splits(&c, s, n, e, 3, 0, 1);
}

static int lp_limits(void)
{
    static const size_t sizes[] = {4, 16};
    uint8_t s[128];
    exp_t e[2];
    cfg_t c = {RILL_FRAMING_LP, 16, 7, 0, 0};
    size_t n = build_lp(s, e, sizes, 2, &c);
    CHECK(run_all_splits(&c, s, n, e, 2, 0, 0)); /* payload == max_frame is fine */
    c.max_frame = 15;
    CHECK(run_all_splits(&c, s, n, e, 1, RILL_EFRAME_LONG, 0));

    uint8_t hdr[4];
    rill__store_be32(hdr, 1u << 30);
    rill__decoder_t d;
    rill_msg_t out[2];
    size_t pos = 0;
    rill__decoder_init(&d, RILL_FRAMING_LP, 1u << 20, 7, 0, 0);
    ASSERT_EQ(rill__decode(&d, hdr, 4, &pos, out, 2), RILL_EFRAME_LONG);
    ASSERT_TRUE(d.carry == NULL);
    rill__decoder_free(&d);
    return 0;
}

/* ------------------------------------------------------------------ line */

static void line_exp(exp_t *e, const cfg_t *c, const char *text)
{
    e->comp = c->comp_id;
    e->data = (const uint8_t *)text;
    e->len = strlen(text);
    e->key = c->has_key ? c->key : rill__hash_bytes(text, e->len);
}

static int line_splits(void)
{
    static const char text[] = "hello\nworld\r\n\n\r\nfoo bar\n\nx\na\rb\ntrailing\r\r\n";
    static const char *lines[] = {"hello", "world", "foo bar", "x", "a\rb", "trailing\r"};
    cfg_t c = {RILL_FRAMING_LINE, 1u << 20, 3, 0, 0};
    exp_t e[6];
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < 6; i++)
            line_exp(&e[i], &c, lines[i]);
        CHECK(run_all_splits(&c, (const uint8_t *)text, sizeof text - 1, e, 6, 0, 0));
        c.has_key = 1;
        c.key = 77;
    }
    static const char small[] = "ab\r\n\ncd\n";
    static const char *sl[] = {"ab", "cd"};
    for (int i = 0; i < 2; i++)
        line_exp(&e[i], &c, sl[i]);
    return run_all_splits(&c, (const uint8_t *)small, sizeof small - 1, e, 2, 0, 1);
}

static int line_only_blank_lines(void)
{
    static const char text[] = "\n\r\n\n\n";
    cfg_t c = {RILL_FRAMING_LINE, 1u << 20, 3, 0, 0};
    return run_all_splits(&c, (const uint8_t *)text, sizeof text - 1, NULL, 0, 0, 1);
}

static int line_limits(void)
{
    cfg_t c = {RILL_FRAMING_LINE, 16, 3, 0, 0};
    exp_t e[3];
    char s[128];

    /* exactly max_frame, with \n and with \r\n, is fine */
    snprintf(s, sizeof s, "ok\n%s\n%s\r\nz\n", "aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb");
    line_exp(&e[0], &c, "ok");
    line_exp(&e[1], &c, "aaaaaaaaaaaaaaaa");
    line_exp(&e[2], &c, "bbbbbbbbbbbbbbbb");
    exp_t e3[4] = {e[0], e[1], e[2]};
    line_exp(&e3[3], &c, "z");
    CHECK(run_all_splits(&c, (const uint8_t *)s, strlen(s), e3, 4, 0, 0));

    /* one byte more (with or without newline, or a \r that is not trailing) is not */
    static const char *bad[] = {"ok\naaaaaaaaaaaaaaaaa\nz\n", "ok\naaaaaaaaaaaaaaaaa",
                                "ok\naaaaaaaaaaaaaaaa\rb\n", "ok\naaaaaaaaaaaaaaaa\r\r\n"};
    for (int i = 0; i < 4; i++) {
        if (run_all_splits(&c, (const uint8_t *)bad[i], strlen(bad[i]), e, 1, RILL_EFRAME_LONG,
                           0)) {
            fprintf(stderr, "  case %d\n", i);
            return 1;
        }
    }

    /* detected as soon as the pending bytes exceed max_frame, not at the newline */
    rill__decoder_t d;
    rill_msg_t out[2];
    uint8_t a = 'a', cr = '\r', x = 'x', nl = '\n';
    size_t pos;
    rill__decoder_init(&d, RILL_FRAMING_LINE, 16, 3, 0, 0);
    for (int i = 0; i < 16; i++) {
        pos = 0;
        ASSERT_EQ(rill__decode(&d, &a, 1, &pos, out, 2), 0);
        ASSERT_TRUE(rill__decoder_midframe(&d));
    }
    pos = 0;
    ASSERT_EQ(rill__decode(&d, &a, 1, &pos, out, 2), RILL_EFRAME_LONG);
    ASSERT_LE(d.carry_cap, 17);
    rill__decoder_free(&d);

    rill__decoder_init(&d, RILL_FRAMING_LINE, 16, 3, 0, 0);
    uint8_t big[17];
    memset(big, 'a', sizeof big);
    pos = 0;
    ASSERT_EQ(rill__decode(&d, big, 17, &pos, out, 2), RILL_EFRAME_LONG);
    ASSERT_TRUE(d.carry == NULL);
    rill__decoder_free(&d);

    for (int last = 0; last < 2; last++) { /* 16 x 'a', '\r', then 'x' (error) or '\n' */
        rill__decoder_init(&d, RILL_FRAMING_LINE, 16, 3, 0, 0);
        pos = 0;
        ASSERT_EQ(rill__decode(&d, big, 16, &pos, out, 2), 0);
        pos = 0;
        ASSERT_EQ(rill__decode(&d, &cr, 1, &pos, out, 2), 0);
        pos = 0;
        if (last) {
            ASSERT_EQ(rill__decode(&d, &nl, 1, &pos, out, 2), 1);
            ASSERT_EQ(out[0].len, 16);
            ASSERT_MEM_EQ(out[0].data, big, 16);
            ASSERT_EQ(rill__decoder_midframe(&d), 0);
        } else {
            ASSERT_EQ(rill__decode(&d, &x, 1, &pos, out, 2), RILL_EFRAME_LONG);
        }
        rill__decoder_free(&d);
    }
    return 0;
}

static int line_midframe(void)
{
    rill__decoder_t d;
    rill_msg_t out[2];
    size_t pos = 0;
    rill__decoder_init(&d, RILL_FRAMING_LINE, 1024, 9, 1, 5);
    ASSERT_EQ(rill__decoder_midframe(&d), 0);
    ASSERT_EQ(rill__decode(&d, (const uint8_t *)"abc", 3, &pos, out, 2), 0);
    ASSERT_TRUE(rill__decoder_midframe(&d));
    pos = 0;
    ASSERT_EQ(rill__decode(&d, (const uint8_t *)"\nd", 2, &pos, out, 2), 1);
    ASSERT_EQ(out[0].len, 3);
    ASSERT_MEM_EQ(out[0].data, "abc", 3);
    ASSERT_EQ(out[0].comp_id, 9);
    ASSERT_U64_EQ(out[0].key, 5);
    ASSERT_EQ(pos, 1);
    ASSERT_EQ(rill__decoder_midframe(&d), 0);
    ASSERT_EQ(rill__decode(&d, (const uint8_t *)"\nd", 2, &pos, out, 2), 0);
    ASSERT_EQ(pos, 2);
    ASSERT_TRUE(rill__decoder_midframe(&d));
    rill__decoder_free(&d);
    return 0;
}

/* ------------------------------------------------------------------ misc */

static int decode_misuse(void)
{
    rill__decoder_t d;
    rill_msg_t out[2];
    uint8_t b[4] = {0};
    size_t pos = 0;
    rill__decoder_init(&d, RILL_FRAMING_RILL, 1024, 0, 0, 0);
    ASSERT_EQ(rill__decode(&d, b, 4, &pos, out, 0), RILL_EINVAL);
    ASSERT_EQ(rill__decode(&d, b, 4, &pos, NULL, 2), RILL_EINVAL);
    ASSERT_EQ(rill__decode(&d, b, 4, NULL, out, 2), RILL_EINVAL);
    ASSERT_EQ(rill__decode(NULL, b, 4, &pos, out, 2), RILL_EINVAL);
    ASSERT_EQ(rill__decode(&d, NULL, 4, &pos, out, 2), RILL_EINVAL);
    pos = 5;
    ASSERT_EQ(rill__decode(&d, b, 4, &pos, out, 2), RILL_EINVAL);
    pos = 0;
    ASSERT_EQ(rill__decode(&d, NULL, 0, &pos, out, 2), 0); /* an empty piece */
    ASSERT_EQ(d.error, 0);
    rill__decoder_free(&d);
    rill__decoder_init(&d, (rill_framing_t)99, 1024, 0, 0, 0);
    ASSERT_EQ(rill__decode(&d, b, 4, &pos, out, 2), RILL_EINVAL);
    rill__decoder_free(&d);
    return 0;
}

static uint64_t rng_state = 0x853c49e6748fea9bull;
static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static int encode_roundtrip(void)
{
    enum { NF = 300 };
    static uint8_t s[NF * (16 + 100)];
    static exp_t e[NF];
    size_t n = 0;
    for (int i = 0; i < NF; i++) {
        uint32_t len = (uint32_t)(rnd() % 100);
        if (i % 10 == 0)
            len = 0;
        e[i].comp = (uint32_t)rnd();
        e[i].key = rnd();
        e[i].data = pool + rnd() % 1024;
        e[i].len = len;
        uint8_t hdr[16];
        rill__frame_put_header(hdr, e[i].comp, e[i].key, len);
        size_t w = rill__frame_encode(s + n, e[i].comp, e[i].key, e[i].data, len);
        ASSERT_EQ(w, rill__frame_size(len));
        ASSERT_EQ(w, 16 + len);
        ASSERT_MEM_EQ(hdr, s + n, 16);
        ASSERT_EQ(rill__load_be32(s + n), 12 + len);
        ASSERT_EQ(rill__load_be32(s + n + 4), e[i].comp);
        ASSERT_U64_EQ(rill__load_be64(s + n + 8), e[i].key);
        n += w;
    }
    ASSERT_EQ(rill__frame_encode(s, 1, 2, NULL, 0), 16); /* empty payload, no data pointer */
    rill__frame_encode(s, e[0].comp, e[0].key, e[0].data, 0);

    /* decode it in random pieces, several times */
    static rec_t r;
    for (int round = 0; round < 20; round++) {
        cfg_t c = V1;
        memset(&r, 0, sizeof r);
        rill__decoder_init(&r.d, c.framing, c.max_frame, 0, 0, 0);
        r.cap = 1 + rnd() % 8;
        for (size_t p = 0; p < n;) {
            size_t k = 1 + rnd() % (round < 10 ? 64 : 1500);
            if (k > n - p)
                k = n - p;
            CHECK(feed(&r, s + p, k));
            p += k;
        }
        ASSERT_EQ(r.err, 0);
        ASSERT_EQ(rill__decoder_midframe(&r.d), 0);
        ASSERT_LE(r.d.carry_cap, 16 + 99);
        CHECK(check(&r, e, NF, 0));
        rill__decoder_free(&r.d);
    }
    return 0;
}

static int hash_stable(void)
{
    uint8_t buf[300 + 8];
    for (size_t len = 0; len <= 300; len++) {
        uint64_t h = rill__hash_bytes(pool, len);
        ASSERT_U64_EQ(rill__hash_bytes(pool, len), h);
        for (size_t off = 1; off < 8; off++) { /* alignment does not matter */
            memcpy(buf + off, pool, len);
            ASSERT_U64_EQ(rill__hash_bytes(buf + off, len), h);
        }
    }
    /* pinned: keys must not change between releases (they route messages) */
    ASSERT_U64_EQ(rill__hash_bytes("", 0), rill__hash_bytes(NULL, 0));
    ASSERT_U64_EQ(rill__hash_bytes("", 0), 0xc9ed0c5396f377acull);
    ASSERT_U64_EQ(rill__hash_bytes("hello", 5), 0xbf696dc8b677e343ull);
    ASSERT_U64_EQ(rill__hash_bytes(pool, 100), 0x80d56dd69b3f8303ull);
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int hash_distinct(void)
{
    /* "", every 1-byte and every 2-byte string, 3..64 zero bytes, 300 pool bytes */
    size_t nh = 1 + 256 + 65536 + 62 + 1, k = 0;
    uint64_t *h = malloc(nh * sizeof *h);
    uint8_t z[64] = {0}, b[2];
    h[k++] = rill__hash_bytes("", 0);
    for (int i = 0; i < 256; i++) {
        b[0] = (uint8_t)i;
        h[k++] = rill__hash_bytes(b, 1);
    }
    for (int i = 0; i < 65536; i++) {
        b[0] = (uint8_t)i;
        b[1] = (uint8_t)(i >> 8);
        h[k++] = rill__hash_bytes(b, 2);
    }
    for (size_t len = 3; len <= 64; len++)
        h[k++] = rill__hash_bytes(z, len);
    ASSERT_EQ(k, nh - 1);
    h[k++] = rill__hash_bytes(pool, 300);
    qsort(h, nh, sizeof *h, cmp_u64);
    for (size_t i = 1; i < nh; i++)
        if (h[i] == h[i - 1])
            T_FAIL_AT_("collision at sorted index %zu: %016llx", i, (unsigned long long)h[i]);
    free(h);

    /* avalanche: flipping any one input bit flips about half the output bits */
    uint8_t in[40];
    unsigned long long flips = 0, trials = 0;
    for (int t = 0; t < 200; t++) {
        size_t len = 1 + rnd() % 40;
        for (size_t i = 0; i < len; i++)
            in[i] = (uint8_t)rnd();
        uint64_t base = rill__hash_bytes(in, len);
        for (size_t bit = 0; bit < len * 8; bit++) {
            in[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            uint64_t d = rill__hash_bytes(in, len) ^ base;
            in[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            ASSERT_TRUE(d != 0);
            flips += (unsigned long long)__builtin_popcountll(d);
            trials++;
        }
    }
    ASSERT_GE(flips * 100 / trials, 3000); /* mean flipped bits x100, ideal 3200 */
    ASSERT_LE(flips * 100 / trials, 3400);
    return 0;
}

static int free_releases_carry(void)
{
    rill__decoder_t d;
    rill_msg_t out[2];
    uint8_t s[64];
    size_t n = put_v1(s, 12 + 20, 1, 2, pool, 20), pos = 0;
    rill__decoder_init(&d, RILL_FRAMING_RILL, 1024, 0, 0, 0);
    ASSERT_EQ(rill__decode(&d, s, n - 1, &pos, out, 2), 0);
    ASSERT_TRUE(d.carry != NULL);
    ASSERT_EQ(d.carry_cap, n);
    ASSERT_TRUE(rill__decoder_midframe(&d));
    rill__decoder_free(&d);
    ASSERT_TRUE(d.carry == NULL);
    return 0;
}

/* A frame carried across pieces leaves no large buffer behind once it is done (trim),
 * while a partial frame's carry is kept, and carried() counts only a partial frame. */
static int trim_after_large_frame(void)
{
    enum { BIG = 100000 };
    uint8_t *s = malloc(16 + BIG + 64);
    ASSERT_TRUE(s != NULL);
    uint8_t *payload = calloc(1, BIG);
    ASSERT_TRUE(payload != NULL);
    size_t n = put_v1(s, 12 + BIG, 1, 2, payload, BIG);
    n += put_v1(s + n, 12 + 20, 1, 3, pool, 20);
    rill__decoder_t d;
    rill_msg_t out[4];
    rill__decoder_init(&d, RILL_FRAMING_RILL, 1u << 20, 0, 0, 0);
    size_t pos = 0, half = (16 + BIG) / 2;
    ASSERT_EQ(rill__decode(&d, s, half, &pos, out, 4), 0);
    ASSERT_U64_EQ(rill__decoder_carried(&d), half);
    rill__decoder_trim(&d, 64 << 10); /* mid-frame: kept */
    ASSERT_TRUE(d.carry != NULL);
    const uint8_t *rest = s + half;
    size_t rest_len = n - half;
    pos = 0;
    int got = 0;
    while (pos < rest_len) {
        int k = rill__decode(&d, rest, rest_len, &pos, out, 4);
        ASSERT_GE(k, 0);
        got += k;
    }
    ASSERT_EQ(got, 2);
    ASSERT_U64_EQ(rill__decoder_carried(&d), 0);
    rill__decoder_trim(&d, 64 << 10);
    ASSERT_TRUE(d.carry == NULL); /* the 100 KB carry went back */
    ASSERT_U64_EQ(d.carry_cap, 0);
    /* and the decoder goes on as before */
    pos = 0;
    ASSERT_EQ(rill__decode(&d, s + 16 + BIG, 36, &pos, out, 4), 1);
    ASSERT_U64_EQ(out[0].key, 3);
    rill__decoder_free(&d);
    free(s);
    free(payload);
    return 0;
}

int main(int argc, char **argv)
{
    pool_init();
    static const t_case_t cases[] = {
        {"v1_whole_piece", v1_whole_piece},
        {"v1_split_every_point", v1_split_every_point},
        {"v1_split_three_pieces", v1_split_three_pieces},
        {"v1_midframe_bytewise", v1_midframe_bytewise},
        {"v1_carry_view_survives", v1_carry_view_survives},
        {"v1_oversize_before_allocation", v1_oversize_before_allocation},
        {"v1_undersize", v1_undersize},
        {"v1_error_after_good_frames_is_sticky", v1_error_after_good_frames_is_sticky},
        {"lp_splits", lp_splits},
        {"lp_limits", lp_limits},
        {"line_splits", line_splits},
        {"line_only_blank_lines", line_only_blank_lines},
        {"line_limits", line_limits},
        {"line_midframe", line_midframe},
        {"decode_misuse", decode_misuse},
        {"encode_roundtrip", encode_roundtrip},
        {"hash_stable", hash_stable},
        {"hash_distinct", hash_distinct},
        {"free_releases_carry", free_releases_carry},
        {"trim_after_large_frame", trim_after_large_frame},
        {NULL, NULL},
    };
    return t_run("frame_decode", cases, argc, argv);
}
