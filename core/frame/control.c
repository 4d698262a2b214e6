#include "frame/control.h"

#include <string.h>

#include "frame/frame.h"
#include "util/sha256.h"

static inline uint16_t load_be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static inline void store_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

int rill__ctl_parse(const rill_msg_t *m, rill__ctl_t *out)
{
    memset(out, 0, sizeof *out);
    const uint8_t *p = m->data;
    size_t len = m->len;
    if (m->comp_id != RILL_CONTROL_COMP || m->key == 0 || m->key > RILL_CTL_CHALLENGE)
        return RILL_ECONTROL;
    out->type = (unsigned)m->key;
    switch (out->type) {
    case RILL_CTL_HELLO:
        if (len < RILL_CTL_HELLO_LEN)
            return RILL_ECONTROL;
        out->version = load_be16(p);
        out->flags = load_be16(p + 2);
        out->stream_id = rill__load_be64(p + 4);
        out->seq = rill__load_be64(p + 12);
        if (out->version != RILL_ACK_VERSION || out->stream_id == 0 || out->seq == 0)
            return RILL_ECONTROL;
        size_t at = RILL_CTL_HELLO_LEN; /* the optional fields, in the order of their bits */
        if (out->flags & RILL_HELLO_F_AUTH) {
            if (len < at + RILL_CTL_MAC_LEN)
                return RILL_ECONTROL;
            out->mac = p + at;
            at += RILL_CTL_MAC_LEN;
        }
        out->depth = 1;
        if (out->flags & RILL_HELLO_F_DEPTH) {
            if (len < at + 1 || p[at] == 0)
                return RILL_ECONTROL;
            out->depth = p[at];
        }
        return 0;
    case RILL_CTL_CHALLENGE:
        if (len < RILL_CTL_NONCE_LEN)
            return RILL_ECONTROL;
        out->nonce = p;
        return 0;
    case RILL_CTL_WELCOME:
        if (len < RILL_CTL_WELCOME_LEN)
            return RILL_ECONTROL;
        out->credit = rill__load_be32(p);
        out->seq = rill__load_be64(p + 4);
        return 0;
    case RILL_CTL_ACK:
        if (len < RILL_CTL_ACK_LEN)
            return RILL_ECONTROL;
        out->seq = rill__load_be64(p);
        out->credit = rill__load_be32(p + 8);
        return 0;
    default: /* RILL_CTL_GOAWAY */
        if (len < RILL_CTL_GOAWAY_MIN)
            return RILL_ECONTROL;
        out->addr_len = load_be16(p);
        if ((size_t)out->addr_len > len - RILL_CTL_GOAWAY_MIN)
            return RILL_ECONTROL;
        out->addr = out->addr_len ? (const char *)p + RILL_CTL_GOAWAY_MIN : NULL;
        return 0;
    }
}

size_t rill__ctl_put_hello(uint8_t *out, uint64_t stream_id, uint64_t first_seq)
{
    rill__frame_put_header(out, RILL_CONTROL_COMP, RILL_CTL_HELLO, RILL_CTL_HELLO_LEN);
    uint8_t *p = out + RILL_FRAME_HEADER;
    store_be16(p, RILL_ACK_VERSION);
    store_be16(p + 2, 0);
    rill__store_be64(p + 4, stream_id);
    rill__store_be64(p + 12, first_seq);
    return rill__frame_size(RILL_CTL_HELLO_LEN);
}

size_t rill__ctl_put_welcome(uint8_t *out, uint32_t credit, uint64_t acked_seq)
{
    rill__frame_put_header(out, RILL_CONTROL_COMP, RILL_CTL_WELCOME, RILL_CTL_WELCOME_LEN);
    rill__store_be32(out + RILL_FRAME_HEADER, credit);
    rill__store_be64(out + RILL_FRAME_HEADER + 4, acked_seq);
    return rill__frame_size(RILL_CTL_WELCOME_LEN);
}

size_t rill__ctl_put_ack(uint8_t *out, uint64_t through_seq, uint32_t credit)
{
    rill__frame_put_header(out, RILL_CONTROL_COMP, RILL_CTL_ACK, RILL_CTL_ACK_LEN);
    rill__store_be64(out + RILL_FRAME_HEADER, through_seq);
    rill__store_be32(out + RILL_FRAME_HEADER + 8, credit);
    return rill__frame_size(RILL_CTL_ACK_LEN);
}

size_t rill__ctl_put_goaway(uint8_t *out, const char *addr, size_t addr_len)
{
    if (addr_len > 255)
        addr_len = 255;
    uint32_t len = RILL_CTL_GOAWAY_MIN + (uint32_t)addr_len;
    rill__frame_put_header(out, RILL_CONTROL_COMP, RILL_CTL_GOAWAY, len);
    store_be16(out + RILL_FRAME_HEADER, (uint16_t)addr_len);
    if (addr_len)
        memcpy(out + RILL_FRAME_HEADER + RILL_CTL_GOAWAY_MIN, addr, addr_len);
    return rill__frame_size(len);
}

size_t rill__ctl_put_challenge(uint8_t *out, const uint8_t nonce[RILL_CTL_NONCE_LEN])
{
    rill__frame_put_header(out, RILL_CONTROL_COMP, RILL_CTL_CHALLENGE, RILL_CTL_NONCE_LEN);
    memcpy(out + RILL_FRAME_HEADER, nonce, RILL_CTL_NONCE_LEN);
    return rill__frame_size(RILL_CTL_NONCE_LEN);
}

void rill__ctl_hello_mac(const uint8_t *key, const uint8_t nonce[RILL_CTL_NONCE_LEN],
                         uint64_t stream_id, uint64_t first_seq, uint8_t mac[RILL_CTL_MAC_LEN])
{
    static const char label[] = "rill peer hello 1";
    uint8_t ids[16];
    rill__store_be64(ids, stream_id);
    rill__store_be64(ids + 8, first_seq);
    const void *parts[3] = {label, nonce, ids};
    const size_t lens[3] = {sizeof label - 1, RILL_CTL_NONCE_LEN, sizeof ids};
    rill__hmac_sha256(key, RILL_SHA256_LEN, parts, lens, 3, mac);
}

size_t rill__ctl_put_peer_hello(uint8_t *out, uint64_t stream_id, uint64_t first_seq,
                                unsigned depth, const uint8_t nonce[RILL_CTL_NONCE_LEN],
                                const uint8_t *key)
{
    uint16_t flags =
        (uint16_t)((key ? RILL_HELLO_F_AUTH : 0) | (depth > 1 ? RILL_HELLO_F_DEPTH : 0));
    uint32_t len = RILL_CTL_HELLO_LEN + (key ? RILL_CTL_MAC_LEN : 0) + (depth > 1 ? 1 : 0);
    rill__frame_put_header(out, RILL_CONTROL_COMP, RILL_CTL_HELLO, len);
    uint8_t *p = out + RILL_FRAME_HEADER;
    store_be16(p, RILL_ACK_VERSION);
    store_be16(p + 2, flags);
    rill__store_be64(p + 4, stream_id);
    rill__store_be64(p + 12, first_seq);
    size_t at = RILL_CTL_HELLO_LEN;
    if (key) {
        rill__ctl_hello_mac(key, nonce, stream_id, first_seq, p + at);
        at += RILL_CTL_MAC_LEN;
    }
    if (depth > 1)
        p[at] = (uint8_t)depth;
    return rill__frame_size(len);
}
