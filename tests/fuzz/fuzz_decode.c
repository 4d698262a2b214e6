/* libFuzzer target for core/frame/decode.c, built once per framing (FUZZ_KIND = 0 rill,
 * 1 lp, 2 line; see CMakeLists.txt).
 *
 * Input: byte 0 picks max_frame (small, so length limits are hit often; 255 = 1 MiB),
 * byte 1 the view capacity per call (1..8), byte 2 bit 0 a fixed key; the rest is a
 * sequence of pieces, each one length byte followed by that many stream bytes (the last
 * piece takes what is left), so the fuzzer chooses where the stream is split.
 *
 * The pieces go through rill__decode as a loop would feed them. Checked:
 *   - every view lies inside the current piece or the decoder's carry, and len == 0 has
 *     data == NULL; counts stay within cap; each call makes progress;
 *   - every piece is consumed entirely (pos == len) unless the stream broke;
 *   - errors are sticky (the same code on every later call, for any input);
 *   - the messages, the error and the mid-frame state equal those of a plain reference
 *     decoder run over the whole stream at once (splitting changes nothing). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame/frame.h"

/* FUZZ_KIND is a number (0 rill, 1 lp, 2 line) because #if cannot see enum constants. */
#if !defined(FUZZ_KIND) || FUZZ_KIND < 0 || FUZZ_KIND > 2
#error "define FUZZ_KIND as 0 (rill), 1 (lp) or 2 (line)"
#endif
#if FUZZ_KIND == 0
#define FUZZ_FRAMING RILL_FRAMING_RILL
#elif FUZZ_KIND == 1
#define FUZZ_FRAMING RILL_FRAMING_LP
#else
#define FUZZ_FRAMING RILL_FRAMING_LINE
#endif

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_decode: check failed at line %d: %s\n", __LINE__, #c);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define FIXED_COMP 77u
#define FIXED_KEY 0x1234567890abcdefull

typedef struct msg {
    uint32_t comp;
    uint64_t key;
    size_t off, len; /* payload in the message arena */
} msg_t;

typedef struct msgs {
    msg_t *m;
    size_t n, cap;
    uint8_t *arena;
    size_t alen, acap;
} msgs_t;

static void msgs_add(msgs_t *s, uint32_t comp, uint64_t key, const uint8_t *p, size_t len)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->m = realloc(s->m, s->cap * sizeof *s->m);
        CHECK(s->m);
    }
    if (s->alen + len > s->acap) {
        while (s->alen + len > s->acap)
            s->acap = s->acap ? s->acap * 2 : 4096;
        s->arena = realloc(s->arena, s->acap);
        CHECK(s->arena);
    }
    if (len)
        memcpy(s->arena + s->alen, p, len);
    s->m[s->n++] = (msg_t){comp, key, s->alen, len};
    s->alen += len;
}

static void msgs_free(msgs_t *s)
{
    free(s->m);
    free(s->arena);
}

/* The reference: the whole stream at once, written for clarity. Returns 0 (ok, *midframe
 * set) or the error code. */
static int reference(const uint8_t *p, size_t len, uint32_t max, int has_key, msgs_t *out,
                     int *midframe)
{
    size_t pos = 0;
    *midframe = 0;
#if FUZZ_KIND == 2
    while (pos < len) {
        const uint8_t *nl = memchr(p + pos, '\n', len - pos);
        if (!nl) {
            size_t pending = len - pos;
            uint8_t last = p[len - 1];
            if (pending > (size_t)max + 1 || (pending == (size_t)max + 1 && last != '\r'))
                return RILL_EFRAME_LONG;
            *midframe = 1;
            return 0;
        }
        size_t l = (size_t)(nl - (p + pos));
        if (l && p[pos + l - 1] == '\r')
            l--;
        if (l > max)
            return RILL_EFRAME_LONG;
        if (l)
            msgs_add(out, FIXED_COMP, has_key ? FIXED_KEY : rill__hash_bytes(p + pos, l), p + pos,
                     l);
        pos = (size_t)(nl - p) + 1;
    }
    return 0;
#else
    const int v1 = FUZZ_KIND == 0;
    const uint32_t min = v1 ? 12 : 0;
    if (v1 && max < 12)
        max = 12;
    while (pos < len) {
        if (len - pos < 4) {
            *midframe = 1;
            return 0;
        }
        uint32_t flen = rill__load_be32(p + pos);
        if (flen < min)
            return RILL_EFRAME_SHORT;
        if (flen > max)
            return RILL_EFRAME_LONG;
        if (len - pos - 4 < flen) {
            *midframe = 1;
            return 0;
        }
        if (v1)
            msgs_add(out, rill__load_be32(p + pos + 4), rill__load_be64(p + pos + 8), p + pos + 16,
                     flen - 12);
        else
            msgs_add(out, FIXED_COMP, has_key ? FIXED_KEY : rill__hash_bytes(p + pos + 4, flen),
                     p + pos + 4, flen);
        pos += 4 + (size_t)flen;
    }
    return 0;
#endif
}

static int inside(const uint8_t *d, size_t len, const uint8_t *base, size_t blen)
{
    return base && d >= base && len <= blen && (size_t)(d - base) <= blen - len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    uint32_t max = data[0] == 255 ? (1u << 20) : data[0];
    size_t cap = 1 + data[1] % 8;
    int has_key = data[2] & 1;
    const uint8_t *in = data + 3;
    size_t in_len = size - 3;

    /* The pieces, and the stream they make up. */
    uint8_t *stream = malloc(in_len ? in_len : 1);
    size_t *starts = malloc((in_len + 1) * sizeof *starts);
    size_t *lens = malloc((in_len + 1) * sizeof *lens);
    CHECK(stream && starts && lens);
    size_t npieces = 0, slen = 0;
    for (size_t i = 0; i < in_len;) {
        size_t l = in[i++];
        if (l > in_len - i)
            l = in_len - i;
        starts[npieces] = slen;
        lens[npieces++] = l;
        memcpy(stream + slen, in + i, l);
        slen += l;
        i += l;
    }

    rill__decoder_t d;
    rill__decoder_init(&d, FUZZ_FRAMING, max, FIXED_COMP, has_key, FIXED_KEY);
    msgs_t got = {0};
    rill_msg_t out[8];
    int err = 0;
    for (size_t k = 0; k < npieces; k++) {
        /* Each piece in its own allocation, so that ASan sees any read beyond it. */
        size_t len = lens[k];
        uint8_t *buf = len ? malloc(len) : NULL;
        if (len)
            memcpy(buf, stream + starts[k], len);
        size_t pos = 0;
        while (!err && pos < len) {
            size_t before = pos;
            int n = rill__decode(&d, buf, len, &pos, out, cap);
            if (n < 0) {
                CHECK(n == RILL_EFRAME_SHORT || n == RILL_EFRAME_LONG);
                err = n;
                break;
            }
            CHECK((size_t)n <= cap);
            CHECK(pos <= len);
            CHECK(n > 0 || pos > before); /* progress, or the caller would spin */
            for (int i = 0; i < n; i++) {
                const rill_msg_t *m = &out[i];
                if (m->len == 0) {
                    CHECK(m->data == NULL);
                } else {
                    CHECK(inside(m->data, m->len, buf, len) ||
                          inside(m->data, m->len, d.carry, d.carry_len));
                }
#if FUZZ_KIND == 0
                CHECK((uint64_t)m->len + 12 <= (max < 12 ? 12 : max));
#else
                CHECK(m->len <= max);
                CHECK(m->comp_id == FIXED_COMP);
#endif
                msgs_add(&got, m->comp_id, m->key, m->data, m->len);
            }
        }
        if (err) {
            /* Sticky: again on this piece, on an empty call and on a good piece. */
            size_t p2 = pos;
            CHECK(rill__decode(&d, buf, len, &p2, out, cap) == err);
            static const uint8_t good[] = {0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, '\n'};
            size_t p3 = 0;
            CHECK(rill__decode(&d, good, sizeof good, &p3, out, cap) == err);
        } else {
            CHECK(pos == len); /* every byte of the piece consumed */
        }
        free(buf);
        if (err)
            break;
    }

    msgs_t want = {0};
    int mid = 0;
    int werr = reference(stream, slen, max, has_key, &want, &mid);
    CHECK(werr == err);
    CHECK(got.n == want.n);
    for (size_t i = 0; i < got.n; i++) {
        CHECK(got.m[i].comp == want.m[i].comp);
        CHECK(got.m[i].key == want.m[i].key);
        CHECK(got.m[i].len == want.m[i].len);
        CHECK(got.m[i].len == 0 ||
              memcmp(got.arena + got.m[i].off, want.arena + want.m[i].off, got.m[i].len) == 0);
    }
    if (!err)
        CHECK(rill__decoder_midframe(&d) == mid);

    rill__decoder_free(&d);
    msgs_free(&got);
    msgs_free(&want);
    free(stream);
    free(starts);
    free(lens);
    return 0;
}
