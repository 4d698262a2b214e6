/* Control frames of acknowledged streams: v1 frames with the reserved comp id
 * RILL_CONTROL_COMP, the control type in the key, and big-endian fields in the payload
 * (docs/protocol.md has the wire table). Pure functions over bytes, like the decoder.
 *
 *   HELLO   sender -> receiver   u16 version (2), u16 flags (0), u64 stream_id (!= 0),
 *                                u64 first_seq (>= 1)
 *   WELCOME receiver -> sender   u32 credit_bytes, u64 acked_seq
 *   ACK     receiver -> sender   u64 through_seq, u32 credit_bytes
 *   GOAWAY  receiver -> sender   u16 n, n bytes of HOST:PORT (n may be 0)
 *
 * A receiver ignores bytes after a control frame's fixed fields (later versions may add
 * fields, announced by a flag bit), and unknown flag bits. */
#ifndef RILL_CORE_CONTROL_H
#define RILL_CORE_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#include "rill/rill.h"

#define RILL_CONTROL_COMP RILL_CONTROL_COMP_ID /* rill.h: no data frame may use it */
#define RILL_ACK_VERSION 2

enum {
    RILL_CTL_HELLO = 1,
    RILL_CTL_WELCOME = 2,
    RILL_CTL_ACK = 3,
    RILL_CTL_GOAWAY = 4,
    /* Peer links of a cluster with credentials only (between rill members): the peer
     * listener's first frame, u8[16] nonce; the member answers with an authenticated
     * HELLO. Not part of the source and sink contract. */
    RILL_CTL_CHALLENGE = 5,
};

/* Peer links only (between rill members): a chunk of a key group's managed state travels
 * as a data frame of the stream with the control comp id and this key (state/handoff.h
 * has its payload). Not part of the source and sink contract: a source's stream may not
 * carry it. */
#define RILL_STATE_FRAME_KEY 0x5354415445ull /* "STATE" */

/* HELLO flag: an HMAC-SHA256 (u8[32]) follows the fixed fields, over the peer listener's
 * CHALLENGE nonce, the stream id and first_seq (rill__ctl_hello_mac). */
#define RILL_HELLO_F_AUTH 0x0001u
/* HELLO flag: a u8 depth follows (after the MAC, when there is one): a peer link's hop
 * depth (util/limits.h, RILL_PEER_DEPTHS), 1 when absent. Between rill members only. */
#define RILL_HELLO_F_DEPTH 0x0002u
#define RILL_CTL_NONCE_LEN 16u
#define RILL_CTL_MAC_LEN 32u

/* Payload sizes of the fixed fields. */
#define RILL_CTL_HELLO_LEN 20u
#define RILL_CTL_WELCOME_LEN 12u
#define RILL_CTL_ACK_LEN 12u
#define RILL_CTL_GOAWAY_MIN 2u
/* The largest v1 frame an encoder below writes (GOAWAY with a 255-byte address; a peer
 * link's HELLO is 69 at most). */
#define RILL_CTL_FRAME_MAX (16u + 2u + 255u)

typedef struct rill__ctl {
    unsigned type; /* RILL_CTL_* */
    uint16_t version, flags;
    uint64_t stream_id;
    uint64_t seq;     /* HELLO first_seq, WELCOME acked_seq, ACK through_seq */
    uint32_t credit;  /* WELCOME, ACK */
    const char *addr; /* GOAWAY: points into the parsed payload; not NUL-terminated */
    uint16_t addr_len;
    const uint8_t *mac;   /* HELLO with RILL_HELLO_F_AUTH: RILL_CTL_MAC_LEN bytes, or NULL */
    uint8_t depth;        /* HELLO: RILL_HELLO_F_DEPTH's depth (>= 1), else 1 */
    const uint8_t *nonce; /* CHALLENGE: RILL_CTL_NONCE_LEN bytes */
} rill__ctl_t;

/* Non-zero when m is a control frame (its comp id is the reserved one). */
static inline int rill__is_control(const rill_msg_t *m)
{
    return m->comp_id == RILL_CONTROL_COMP;
}

/* Parses the control frame m into out. Returns 0, or RILL_ECONTROL when the type is
 * unknown, the payload is shorter than the type's fixed fields, or a field is out of
 * range (HELLO: version other than 2, stream_id 0, first_seq 0, depth 0; GOAWAY: n
 * beyond the payload). out->addr points into m's payload. */
int rill__ctl_parse(const rill_msg_t *m, rill__ctl_t *out);

/* Encoders: write one whole v1 control frame at out and return its size on the wire
 * (out must hold RILL_CTL_FRAME_MAX bytes). */
size_t rill__ctl_put_hello(uint8_t *out, uint64_t stream_id, uint64_t first_seq);
size_t rill__ctl_put_welcome(uint8_t *out, uint32_t credit, uint64_t acked_seq);
size_t rill__ctl_put_ack(uint8_t *out, uint64_t through_seq, uint32_t credit);
/* addr_len is cut to 255. */
size_t rill__ctl_put_goaway(uint8_t *out, const char *addr, size_t addr_len);
size_t rill__ctl_put_challenge(uint8_t *out, const uint8_t nonce[RILL_CTL_NONCE_LEN]);
/* A peer link's HELLO: with RILL_HELLO_F_AUTH and its MAC under key (RILL_CTL_MAC_LEN
 * bytes) over nonce when key is not NULL, with RILL_HELLO_F_DEPTH when depth > 1. */
size_t rill__ctl_put_peer_hello(uint8_t *out, uint64_t stream_id, uint64_t first_seq,
                                unsigned depth, const uint8_t nonce[RILL_CTL_NONCE_LEN],
                                const uint8_t *key);
/* The MAC an authenticated HELLO carries: HMAC-SHA256 under key (RILL_CTL_MAC_LEN bytes)
 * of "rill peer hello 1", the nonce, stream_id and first_seq (big-endian). */
void rill__ctl_hello_mac(const uint8_t *key, const uint8_t nonce[RILL_CTL_NONCE_LEN],
                         uint64_t stream_id, uint64_t first_seq, uint8_t mac[RILL_CTL_MAC_LEN]);

#endif
