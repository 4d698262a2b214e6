/* Frame decoder: v1, lp and line framings over a byte stream that arrives in pieces.
 *
 * The fast path (whole frames inside buf) neither copies nor allocates: views point into
 * buf. Only a frame that straddles pieces goes through the carry buffer.
 *
 * Carry lifetime: a frame completed in the carry is handed out as a view into it, so the
 * carry must survive until the next call. Such a call therefore never stashes its trailing
 * partial frame: it returns with *pos < len, the caller calls again, that call clears the
 * carry (carry_done) and stashes the tail.
 *
 * Messages with len == 0 get data == NULL (as rill.h's rill_msg_t documents). */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "frame/frame.h"

#if defined(__GNUC__)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define always_inline inline __attribute__((always_inline))
#else
#define unlikely(x) (x)
#define always_inline inline
#endif

void rill__decoder_init(rill__decoder_t *d, rill_framing_t framing, uint32_t max_frame,
                        uint32_t comp_id, int has_key, uint64_t key)
{
    memset(d, 0, sizeof *d);
    d->framing = framing;
    /* No v1 frame is shorter than 12: a smaller limit (which rill_config_set_max_frame
     * refuses anyway) would reject everything, and the hot loop relies on max >= 12. */
    if (framing == RILL_FRAMING_RILL && max_frame < RILL_FRAME_MIN_LEN)
        max_frame = RILL_FRAME_MIN_LEN;
    d->max_frame = max_frame;
    d->comp_id = comp_id;
    d->has_key = has_key != 0;
    d->key = key;
}

void rill__decoder_free(rill__decoder_t *d)
{
    free(d->carry);
    d->carry = NULL;
    d->carry_len = d->carry_cap = 0;
    d->carry_done = 0;
}

void rill__decoder_trim(rill__decoder_t *d, size_t keep)
{
    if (d->carry_cap > keep && rill__decoder_carried(d) == 0)
        rill__decoder_free(d);
}

int rill__decoder_midframe(const rill__decoder_t *d)
{
    return d->carry_len != 0 && !d->carry_done;
}

/* Records a sticky error; the views already in out (n of them) are returned first. */
static int fail(rill__decoder_t *d, int err, size_t n)
{
    d->error = err;
    return n ? (int)n : err;
}

/* Grows the carry to exactly need bytes (v1/lp: need is the frame's size). */
static int carry_reserve(rill__decoder_t *d, size_t need)
{
    if (need <= d->carry_cap)
        return 0;
    uint8_t *p = realloc(d->carry, need);
    if (!p)
        return RILL_ENOMEM;
    d->carry = p;
    d->carry_cap = need;
    return 0;
}

static inline void emit_v1(rill_msg_t *m, const uint8_t *f, uint32_t flen)
{
    m->len = flen - RILL_FRAME_MIN_LEN;
    m->data = m->len ? f + RILL_FRAME_HEADER : NULL;
    m->comp_id = rill__load_be32(f + 4);
    m->key = rill__load_be64(f + 8);
}

static inline void emit_raw(const rill__decoder_t *d, rill_msg_t *m, const uint8_t *data,
                            size_t len)
{
    m->len = (uint32_t)len;
    m->data = len ? data : NULL;
    m->comp_id = d->comp_id;
    m->key = d->has_key ? d->key : rill__hash_bytes(data, len);
}

static inline void emit_len(const rill__decoder_t *d, rill_msg_t *m, const uint8_t *f,
                            uint32_t flen, const int v1)
{
    if (v1)
        emit_v1(m, f, flen);
    else
        emit_raw(d, m, f + 4, flen);
}

static inline int bad_len(uint32_t flen, uint32_t min)
{
    return flen < min ? RILL_EFRAME_SHORT : RILL_EFRAME_LONG;
}

/*
 * Feeds buf[*pp..len) into a length-prefixed frame held in the carry. Returns 1 when the
 * frame is complete, 0 when all of buf went into the carry, or a negative error.
 */
static int carry_fill_len(rill__decoder_t *d, const uint8_t *buf, size_t len, size_t *pp,
                          uint32_t min)
{
    size_t p = *pp, avail = len - p, take;
    uint32_t flen;

    if (d->carry_len < 4) { /* the length field itself straddles */
        take = 4 - d->carry_len;
        if (take > avail)
            take = avail;
        memcpy(d->carry + d->carry_len, buf + p, take);
        d->carry_len += take;
        p += take;
        avail -= take;
        *pp = p;
        if (d->carry_len < 4)
            return 0;
        flen = rill__load_be32(d->carry);
        if (flen < min || flen > d->max_frame)
            return bad_len(flen, min);
        if (carry_reserve(d, 4 + (size_t)flen) < 0)
            return RILL_ENOMEM;
    }
    flen = rill__load_be32(d->carry);
    size_t total = 4 + (size_t)flen;
    take = total - d->carry_len;
    if (take > avail)
        take = avail;
    memcpy(d->carry + d->carry_len, buf + p, take);
    d->carry_len += take;
    *pp = p + take;
    return d->carry_len == total;
}

/* v1 (v1 = 1: u32 length | u32 comp | u64 key | payload) and lp (v1 = 0: u32 length |
 * payload); inlined twice so v1 is a constant in each copy of the loop. */
static always_inline int decode_len(rill__decoder_t *d, const uint8_t *buf, size_t len, size_t *pos,
                                    rill_msg_t *out, size_t cap, const int v1)
{
    const uint32_t min = v1 ? RILL_FRAME_MIN_LEN : 0, max = d->max_frame;
    size_t p = *pos, n = 0;

    if (d->carry_len) {
        int rc = carry_fill_len(d, buf, len, &p, min);
        *pos = p;
        if (rc <= 0)
            return rc < 0 ? fail(d, rc, 0) : 0;
        emit_len(d, &out[n++], d->carry, rill__load_be32(d->carry), v1);
        d->carry_done = 1;
    }

    /* The hot loop: pointers instead of indices, one unsigned compare for both limits. */
    const uint8_t *f = buf + p, *const end = buf + len;
    rill_msg_t *o = out + n, *const oend = out + cap;
    const uint32_t span = max - min; /* max >= min: see rill__decoder_init */
    while (o < oend) {
        size_t avail = (size_t)(end - f);
        if (avail < 4)
            break;
        uint32_t flen = rill__load_be32(f);
        if (unlikely(flen - min > span)) {
            *pos = (size_t)(f - buf);
            return fail(d, bad_len(flen, min), (size_t)(o - out));
        }
        if (flen > avail - 4)
            break;
        emit_len(d, o++, f, flen, v1);
        f += 4 + (size_t)flen;
    }
    p = (size_t)(f - buf);
    n = (size_t)(o - out);
    *pos = p;
    if (n == cap || d->carry_done || p == len)
        return (int)n;

    /* Stash the incomplete trailing frame; its length (if known) was validated above. */
    size_t avail = len - p;
    size_t need = avail < 4 ? 4 : 4 + (size_t)rill__load_be32(buf + p);
    if (carry_reserve(d, need) < 0)
        return fail(d, RILL_ENOMEM, n);
    memcpy(d->carry, buf + p, avail);
    d->carry_len = avail;
    *pos = len;
    return (int)n;
}

/* A pending line of `pending` bytes with no newline yet, ending in `last`, can no longer
 * become a line of at most max bytes (the limit excludes a trailing '\r'). */
static inline int line_overlong(size_t pending, uint8_t last, uint32_t max)
{
    return pending > (size_t)max + 1 || (pending == (size_t)max + 1 && last != '\r');
}

/* Grows the line carry geometrically (a long line may trickle in), never past max + 1. */
static int line_reserve(rill__decoder_t *d, size_t need)
{
    if (need <= d->carry_cap)
        return 0;
    size_t want = d->carry_cap * 2, lim = (size_t)d->max_frame + 1;
    if (want > lim)
        want = lim;
    if (want < need)
        want = need;
    return carry_reserve(d, want);
}

/*
 * line: '\n'-terminated text; the view excludes '\n' and one trailing '\r'. Empty lines
 * (including "\r\n") are skipped, not delivered: a blank line typed into nc is not a
 * message. A final line without '\n' stays in the carry (midframe) until its newline.
 */
static int decode_line(rill__decoder_t *d, const uint8_t *buf, size_t len, size_t *pos,
                       rill_msg_t *out, size_t cap)
{
    const uint32_t max = d->max_frame;
    size_t p = *pos, n = 0;

    if (d->carry_len) {
        const uint8_t *s = buf + p;
        const uint8_t *nl = memchr(s, '\n', len - p);
        size_t seg = nl ? (size_t)(nl - s) : len - p;
        size_t total = d->carry_len + seg;
        uint8_t last = seg ? s[seg - 1] : d->carry[d->carry_len - 1];
        size_t l = total - (last == '\r');
        if (nl ? l > max : line_overlong(total, last, max)) {
            *pos = p;
            return fail(d, RILL_EFRAME_LONG, 0);
        }
        if (line_reserve(d, total) < 0)
            return fail(d, RILL_ENOMEM, 0);
        memcpy(d->carry + d->carry_len, s, seg);
        d->carry_len = total;
        if (!nl) {
            *pos = len;
            return 0;
        }
        p += seg + 1;
        if (l) {
            emit_raw(d, &out[n++], d->carry, l);
            d->carry_done = 1;
        } else {
            d->carry_len = 0; /* empty line: nothing handed out, the carry is free again */
        }
    }

    while (n < cap && p < len) {
        const uint8_t *s = buf + p;
        const uint8_t *nl = memchr(s, '\n', len - p);
        if (!nl)
            break;
        size_t l = (size_t)(nl - s);
        if (l && s[l - 1] == '\r')
            l--;
        if (unlikely(l > max)) {
            *pos = p;
            return fail(d, RILL_EFRAME_LONG, n);
        }
        p = (size_t)(nl - buf) + 1;
        if (l)
            emit_raw(d, &out[n++], s, l);
    }
    *pos = p;
    if (n == cap || d->carry_done || p == len)
        return (int)n;

    size_t pending = len - p;
    if (line_overlong(pending, buf[len - 1], max))
        return fail(d, RILL_EFRAME_LONG, n);
    if (line_reserve(d, pending) < 0)
        return fail(d, RILL_ENOMEM, n);
    memcpy(d->carry, buf + p, pending);
    d->carry_len = pending;
    *pos = len;
    return (int)n;
}

int rill__decode(rill__decoder_t *d, const uint8_t *buf, size_t len, size_t *pos, rill_msg_t *out,
                 size_t cap)
{
    if (!d || !pos || !out || cap == 0)
        return RILL_EINVAL;
    if (d->error)
        return d->error;
    if (*pos > len || (!buf && len))
        return RILL_EINVAL;
    if (d->carry_done) { /* the views of the last call are dead now */
        d->carry_done = 0;
        d->carry_len = 0;
    }
    if (*pos == len)
        return 0;
    if (cap > INT_MAX)
        cap = INT_MAX;

    switch (d->framing) {
    case RILL_FRAMING_RILL:
        return decode_len(d, buf, len, pos, out, cap, 1);
    case RILL_FRAMING_LP:
        return decode_len(d, buf, len, pos, out, cap, 0);
    case RILL_FRAMING_LINE:
        return decode_line(d, buf, len, pos, out, cap);
    }
    return RILL_EINVAL;
}
