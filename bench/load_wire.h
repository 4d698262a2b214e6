/* rill-load's side of the control frames of acknowledged streams (docs/protocol.md, "Control
 * frames"). Written from that table on purpose, not from core/frame/control.h: two
 * implementations of one contract check each other.
 *
 * A control frame is a v1 frame with comp_id 0xFFFFFFFF and the type in the key; its payload
 * fields are big-endian. A receiver ignores bytes after a type's fixed fields and unknown flag
 * bits. */
#ifndef RILL_BENCH_LOAD_WIRE_H
#define RILL_BENCH_LOAD_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define WIRE_CONTROL_COMP 0xFFFFFFFFu
#define WIRE_HEADER 16u /* u32 length, u32 comp_id, u64 key */

enum { WIRE_HELLO = 1, WIRE_WELCOME = 2, WIRE_ACK = 3, WIRE_GOAWAY = 4 };

#define WIRE_HELLO_FIXED 20u   /* u16 version, u16 flags, u64 stream_id, u64 first_seq */
#define WIRE_WELCOME_FIXED 12u /* u32 credit_bytes, u64 acked_seq */
#define WIRE_ACK_FIXED 12u     /* u64 through_seq, u32 credit_bytes */
#define WIRE_GOAWAY_FIXED 2u   /* u16 n, then n bytes of HOST:PORT */
#define WIRE_HELLO_VERSION 2u

static inline void wire_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline void wire_put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (24 - 8 * i));
}
static inline void wire_put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}
static inline uint16_t wire_get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}
static inline uint32_t wire_get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t wire_get64(const uint8_t *p)
{
    return (uint64_t)wire_get32(p) << 32 | wire_get32(p + 4);
}

/* Each encoder writes one whole frame at out and returns its size on the wire. */
static inline size_t wire_header(uint8_t *out, uint32_t type, size_t payload)
{
    wire_put32(out, (uint32_t)(12 + payload));
    wire_put32(out + 4, WIRE_CONTROL_COMP);
    wire_put64(out + 8, type);
    return WIRE_HEADER + payload;
}
static inline size_t wire_hello(uint8_t *out, uint64_t stream_id, uint64_t first_seq)
{
    uint8_t *p = out + WIRE_HEADER;
    wire_put16(p, WIRE_HELLO_VERSION);
    wire_put16(p + 2, 0);
    wire_put64(p + 4, stream_id);
    wire_put64(p + 12, first_seq);
    return wire_header(out, WIRE_HELLO, WIRE_HELLO_FIXED);
}
static inline size_t wire_welcome(uint8_t *out, uint32_t credit, uint64_t acked_seq)
{
    wire_put32(out + WIRE_HEADER, credit);
    wire_put64(out + WIRE_HEADER + 4, acked_seq);
    return wire_header(out, WIRE_WELCOME, WIRE_WELCOME_FIXED);
}
static inline size_t wire_ack(uint8_t *out, uint64_t through_seq, uint32_t credit)
{
    wire_put64(out + WIRE_HEADER, through_seq);
    wire_put32(out + WIRE_HEADER + 8, credit);
    return wire_header(out, WIRE_ACK, WIRE_ACK_FIXED);
}
/* addr: n bytes (n <= 65535), not NUL-terminated on the wire. */
static inline size_t wire_goaway(uint8_t *out, const char *addr, uint16_t n)
{
    wire_put16(out + WIRE_HEADER, n);
    memcpy(out + WIRE_HEADER + 2, addr, n);
    return wire_header(out, WIRE_GOAWAY, WIRE_GOAWAY_FIXED + (size_t)n);
}

typedef struct wire_ctl {
    uint32_t type;
    uint64_t stream_id, seq; /* HELLO: first_seq; WELCOME: acked_seq; ACK: through_seq */
    uint32_t credit;         /* WELCOME, ACK */
    const uint8_t *addr;     /* GOAWAY: n bytes inside the frame */
    uint16_t addr_len;
} wire_ctl_t;

/* Parses the whole frame at f (total bytes on the wire, >= 16, comp_id already known to be
 * the control id). Returns 0, or a reason (a static string) when the frame is malformed. */
static inline const char *wire_parse(const uint8_t *f, size_t total, wire_ctl_t *out)
{
    const uint8_t *p = f + WIRE_HEADER;
    size_t len = total - WIRE_HEADER;
    uint64_t type = wire_get64(f + 8);
    memset(out, 0, sizeof *out);
    out->type = (uint32_t)type;
    switch (type) {
    case WIRE_HELLO:
        if (len < WIRE_HELLO_FIXED)
            return "HELLO shorter than its fields";
        if (wire_get16(p) != WIRE_HELLO_VERSION)
            return "HELLO with a version other than 2";
        out->stream_id = wire_get64(p + 4);
        out->seq = wire_get64(p + 12);
        if (!out->stream_id)
            return "HELLO with stream_id 0";
        if (!out->seq)
            return "HELLO with first_seq 0";
        return 0;
    case WIRE_WELCOME:
        if (len < WIRE_WELCOME_FIXED)
            return "WELCOME shorter than its fields";
        out->credit = wire_get32(p);
        out->seq = wire_get64(p + 4);
        return 0;
    case WIRE_ACK:
        if (len < WIRE_ACK_FIXED)
            return "ACK shorter than its fields";
        out->seq = wire_get64(p);
        out->credit = wire_get32(p + 8);
        return 0;
    case WIRE_GOAWAY:
        if (len < WIRE_GOAWAY_FIXED)
            return "GOAWAY shorter than its fields";
        out->addr_len = wire_get16(p);
        if (out->addr_len > len - WIRE_GOAWAY_FIXED)
            return "GOAWAY address beyond the payload";
        out->addr = p + 2;
        return 0;
    default:
        return "unknown control frame type";
    }
}

#endif /* RILL_BENCH_LOAD_WIRE_H */
