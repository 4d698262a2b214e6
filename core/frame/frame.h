/* Frame decoding and encoding: pure functions over bytes, no I/O.
 *
 * A decoder turns a byte stream that arrives in arbitrary pieces into message views
 * (rill_msg_t). Views point into the piece being decoded or, for a frame that straddled
 * two pieces, into the decoder's carry buffer; they stay valid until the next call on the
 * same decoder. A length is checked against max_frame before anything is copied or
 * allocated for it. */
#ifndef RILL_CORE_FRAME_H
#define RILL_CORE_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "rill/rill.h"

#define RILL_FRAME_HEADER 16u  /* u32 length + u32 comp_id + u64 key */
#define RILL_FRAME_MIN_LEN 12u /* smallest valid length field (empty payload) */

typedef struct rill__decoder {
    rill_framing_t framing;
    uint32_t max_frame; /* largest length field (v1, lp) or line length (line) */
    uint32_t comp_id;   /* lp/line: comp id given to every message */
    int has_key;        /* lp/line: key fixed instead of hashed */
    uint64_t key;
    int error;      /* sticky RILL_EFRAME_* once the stream broke the rules */
    int carry_done; /* the carry held a complete frame handed out last call */
    uint8_t *carry; /* bytes of a frame that straddles pieces */
    size_t carry_len;
    size_t carry_cap;
} rill__decoder_t;

/* Initialises d. No allocation happens until a frame straddles two pieces. */
void rill__decoder_init(rill__decoder_t *d, rill_framing_t framing, uint32_t max_frame,
                        uint32_t comp_id, int has_key, uint64_t key);
/* Frees the carry buffer. */
void rill__decoder_free(rill__decoder_t *d);

/*
 * Decodes up to cap messages from buf[*pos..len) into out, advancing *pos. Call it in a
 * loop until *pos == len, consuming the returned views between calls:
 *     while (pos < len) { n = rill__decode(d, buf, len, &pos, out, cap); if (n < 0) ...; use(out,
 * n); } Returns the number of views (possibly 0), or a negative RILL_EFRAME_SHORT /
 * RILL_EFRAME_LONG / RILL_ENOMEM once the stream is broken (views of the good frames
 * before the bad one are returned first; the error comes on the next call and stays).
 * An incomplete trailing frame is copied into the carry, and *pos then equals len.
 */
int rill__decode(rill__decoder_t *d, const uint8_t *buf, size_t len, size_t *pos, rill_msg_t *out,
                 size_t cap);

/* Non-zero when the decoder holds part of a frame (a stream that ends now ends mid-frame). */
int rill__decoder_midframe(const rill__decoder_t *d);

/* Bytes of a partial frame the decoder holds (0 between frames). */
static inline size_t rill__decoder_carried(const rill__decoder_t *d)
{
    return d->carry_done ? 0 : d->carry_len;
}

/* Between frames, frees a carry buffer larger than keep bytes, so that one large frame
 * does not pin its memory for the rest of the connection. Call only once the views of
 * the last decode call are no longer used. */
void rill__decoder_trim(rill__decoder_t *d, size_t keep);

/* Bytes a v1 frame with a payload of len bytes occupies on the wire. */
static inline size_t rill__frame_size(size_t payload_len)
{
    return RILL_FRAME_HEADER + payload_len;
}

/* 64-bit hash of a byte string (used as the key of lp and line messages). */
uint64_t rill__hash_bytes(const void *data, size_t len);

/* Big-endian loads and stores: memcpy + byte swap compile to one load or store and a
 * bswap (the byte-by-byte form costs GCC dozens of instructions on the emit path). */
static inline uint32_t rill__load_be32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return __builtin_bswap32(v);
}
static inline uint64_t rill__load_be64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return __builtin_bswap64(v);
}
static inline void rill__store_be32(uint8_t *p, uint32_t v)
{
    v = __builtin_bswap32(v);
    memcpy(p, &v, 4);
}
static inline void rill__store_be64(uint8_t *p, uint64_t v)
{
    v = __builtin_bswap64(v);
    memcpy(p, &v, 8);
}

/* Writes a v1 frame header for a payload of len bytes (len <= UINT32_MAX - 12) into
 * out[0..16). */
static inline void rill__frame_put_header(uint8_t *out, uint32_t comp_id, uint64_t key,
                                          uint32_t len)
{
    rill__store_be32(out, RILL_FRAME_MIN_LEN + len);
    rill__store_be32(out + 4, comp_id);
    rill__store_be64(out + 8, key);
}

/* Writes a whole v1 frame into out, which must hold rill__frame_size(len) bytes. Returns
 * the bytes written. Inline: it runs once per emitted message. */
static inline size_t rill__frame_encode(uint8_t *out, uint32_t comp_id, uint64_t key,
                                        const void *data, uint32_t len)
{
    rill__frame_put_header(out, comp_id, key, len);
    if (len)
        memcpy(out + RILL_FRAME_HEADER, data, len);
    return rill__frame_size(len);
}

#endif /* RILL_CORE_FRAME_H */
