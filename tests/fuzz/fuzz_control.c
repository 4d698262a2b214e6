/* libFuzzer target: control frames of acknowledged streams (core/frame/control.c) as a
 * receiver meets them: bytes through the v1 decoder, every control frame parsed. A frame
 * that parses must re-encode (for its fixed fields) to what was parsed; nothing may
 * crash or read outside the view. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame/control.h"
#include "frame/frame.h"

static void check(const rill_msg_t *m)
{
    rill__ctl_t c, again;
    if (rill__ctl_parse(m, &c) < 0)
        return;
    uint8_t f[RILL_CTL_FRAME_MAX];
    size_t n;
    switch (c.type) {
    case RILL_CTL_HELLO:
        n = rill__ctl_put_peer_hello(f, c.stream_id, c.seq, c.depth, NULL, NULL);
        break;
    case RILL_CTL_WELCOME:
        n = rill__ctl_put_welcome(f, c.credit, c.seq);
        break;
    case RILL_CTL_ACK:
        n = rill__ctl_put_ack(f, c.seq, c.credit);
        break;
    case RILL_CTL_CHALLENGE:
        n = rill__ctl_put_challenge(f, c.nonce);
        break;
    default:
        n = rill__ctl_put_goaway(f, c.addr, c.addr_len);
        break;
    }
    rill_msg_t m2 = {f + 16, (uint32_t)(n - 16), rill__load_be32(f + 4), rill__load_be64(f + 8)};
    if (rill__ctl_parse(&m2, &again) < 0 || again.type != c.type || again.seq != c.seq ||
        again.credit != c.credit || again.stream_id != c.stream_id || again.depth != c.depth)
        abort();
    if (c.type == RILL_CTL_CHALLENGE && memcmp(again.nonce, c.nonce, RILL_CTL_NONCE_LEN))
        abort();
    if (c.type == RILL_CTL_GOAWAY && c.addr_len <= 255 &&
        (again.addr_len != c.addr_len || (c.addr_len && memcmp(again.addr, c.addr, c.addr_len))))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rill__decoder_t d;
    rill__decoder_init(&d, RILL_FRAMING_RILL, 1u << 16, 0, 0, 0);
    rill_msg_t v[64];
    size_t pos = 0;
    while (pos < size) {
        int k = rill__decode(&d, data, size, &pos, v, 64);
        if (k < 0)
            break;
        for (int i = 0; i < k; i++)
            if (rill__is_control(&v[i]))
                check(&v[i]);
    }
    rill__decoder_free(&d);
    return 0;
}
