#include "peer_common.h"

#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Network byte order the way most C code does it: htonl/ntohl over an unaligned copy. */
static inline uint32_t be32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return ntohl(v);
}

static inline uint64_t be64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return be64toh(v);
}

static void out_reserve(peer_out_t *o, size_t n)
{
    if (o->len + n <= o->cap)
        return;
    if (o->off) { /* reclaim the written prefix first */
        memmove(o->data, o->data + o->off, o->len - o->off);
        o->len -= o->off;
        o->off = 0;
        if (o->len + n <= o->cap)
            return;
    }
    size_t cap = o->cap ? o->cap : 256 * 1024;
    while (cap < o->len + n)
        cap *= 2;
    uint8_t *d = realloc(o->data, cap);
    if (!d) {
        perror("realloc");
        abort();
    }
    o->data = d;
    o->cap = cap;
}

void peer_out_consumed(peer_ctx_t *p, size_t n)
{
    p->out.off += n;
    p->st.bytes_out += n;
    if (p->out.off == p->out.len)
        p->out.off = p->out.len = 0;
}

static void emit(peer_ctx_t *p, uint32_t comp_id, uint64_t key, const uint8_t *payload,
                 uint32_t len)
{
    out_reserve(&p->out, 16 + (size_t)len);
    uint8_t *f = p->out.data + p->out.len;
    uint32_t h[2] = {htonl(12 + len), htonl(comp_id)};
    uint64_t k = htobe64(key);
    memcpy(f, h, 8);
    memcpy(f + 8, &k, 8);
    memcpy(f + 16, payload, len);
    p->out.len += 16 + (size_t)len;
    p->st.msgs_out++;
}

/* ---------------------------------------------------------------- computations */

static void passthrough(peer_ctx_t *p, uint32_t comp_id, uint64_t key, const uint8_t *payload,
                        uint32_t len)
{
    if (p->has_sink)
        emit(p, comp_id, key, payload, len);
}

static inline size_t slot_of(uint64_t key, size_t cap)
{
    key ^= key >> 31;
    key *= 0x7fb5d329728ea185ull;
    key ^= key >> 27;
    return (size_t)key & (cap - 1);
}

static void count_grow(peer_ctx_t *p)
{
    size_t cap = p->cap ? p->cap * 2 : 1024;
    count_slot_t *s = calloc(cap, sizeof *s);
    if (!s) {
        perror("calloc");
        abort();
    }
    for (size_t i = 0; i < p->cap; i++) {
        if (!p->slots[i].count)
            continue;
        size_t j = slot_of(p->slots[i].key, cap);
        while (s[j].count)
            j = (j + 1) & (cap - 1);
        s[j] = p->slots[i];
    }
    free(p->slots);
    p->slots = s;
    p->cap = cap;
}

static void count(peer_ctx_t *p, uint32_t comp_id, uint64_t key, const uint8_t *payload,
                  uint32_t len)
{
    (void)comp_id, (void)payload, (void)len;
    if (2 * (p->used + 1) > p->cap)
        count_grow(p);
    size_t j = slot_of(key, p->cap);
    while (p->slots[j].count && p->slots[j].key != key)
        j = (j + 1) & (p->cap - 1);
    if (!p->slots[j].count) {
        p->slots[j].key = key;
        p->used++;
    }
    p->slots[j].count++;
}

void peer_ctx_init(peer_ctx_t *p, int has_sink)
{
    memset(p, 0, sizeof *p);
    p->has_sink = has_sink;
    p->table[1] = passthrough;
    p->table[2] = count;
}

void peer_ctx_free(peer_ctx_t *p)
{
    free(p->out.data);
    free(p->slots);
}

/* ---------------------------------------------------------------- decoder */

static inline void run_frame(peer_ctx_t *p, const uint8_t *f, uint32_t flen)
{
    uint32_t comp = be32(f + 4);
    uint64_t key = be64(f + 8);
    p->st.msgs_in++;
    if (comp < PEER_COMP_TABLE && p->table[comp])
        p->table[comp](p, comp, key, f + 16, flen - 12);
    else
        p->st.unknown++;
}

static void carry_append(peer_conn_dec_t *d, const uint8_t *b, size_t n)
{
    if (d->carry_len + n > d->carry_cap) {
        size_t cap = d->carry_cap ? d->carry_cap : 256;
        while (cap < d->carry_len + n)
            cap *= 2;
        uint8_t *c = realloc(d->carry, cap);
        if (!c) {
            perror("realloc");
            abort();
        }
        d->carry = c;
        d->carry_cap = cap;
    }
    memcpy(d->carry + d->carry_len, b, n);
    d->carry_len += n;
}

int peer_feed(peer_ctx_t *p, peer_conn_dec_t *d, const uint8_t *buf, size_t len)
{
    size_t pos = 0;
    p->st.bytes_in += len;
    if (d->carry_len) {
        /* Complete the frame that straddled the previous read. */
        if (d->carry_len < 4) {
            size_t take = 4 - d->carry_len;
            if (take > len)
                take = len;
            carry_append(d, buf, take);
            pos += take;
            if (d->carry_len < 4)
                return 0;
        }
        uint32_t flen = be32(d->carry);
        if (flen < 12 || flen > PEER_MAX_FRAME)
            return -1;
        size_t need = 4 + (size_t)flen - d->carry_len, take = len - pos < need ? len - pos : need;
        carry_append(d, buf + pos, take);
        pos += take;
        if (take < need)
            return 0;
        run_frame(p, d->carry, flen);
        d->carry_len = 0;
    }
    while (len - pos >= 4) {
        uint32_t flen = be32(buf + pos);
        if (flen < 12 || flen > PEER_MAX_FRAME) {
            p->st.bad_frames++;
            return -1;
        }
        if (len - pos < 4 + (size_t)flen)
            break;
        run_frame(p, buf + pos, flen);
        pos += 4 + (size_t)flen;
    }
    if (pos < len)
        carry_append(d, buf + pos, len - pos);
    return 0;
}

void peer_dec_free(peer_conn_dec_t *d)
{
    free(d->carry);
    memset(d, 0, sizeof *d);
}

/* ---------------------------------------------------------------- CLI and sockets */

static int split_addr(const char *s, char *host, size_t hcap, int *port)
{
    const char *c = strrchr(s, ':');
    if (!c || (size_t)(c - s) >= hcap)
        return -1;
    memcpy(host, s, (size_t)(c - s));
    host[c - s] = '\0';
    char *end;
    long v = strtol(c + 1, &end, 10);
    if (*end || v < 0 || v > 65535)
        return -1;
    *port = (int)v;
    return 0;
}

int peer_parse_args(const char *prog, const char *what, int argc, char **argv, peer_opts_t *o)
{
    memset(o, 0, sizeof *o);
    strcpy(o->listen_host, "127.0.0.1");
    o->listen_port = 7700;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help")) {
            printf("usage: %s [--listen HOST:PORT] [--sink HOST:PORT] [--threads 1] [--quiet]\n"
                   "%s\n"
                   "Single-threaded (--threads accepts only 1). IPv4 only. Prints '%s: ready'\n"
                   "on stderr once listening; SIGTERM/SIGINT: flush (up to 5 s), print\n"
                   "'%s: final in=N out=N bytes_in=N ...' and exit 0.\n",
                   prog, what, prog, prog);
            return 1;
        } else if (!strcmp(a, "--quiet")) {
            continue;
        } else if (!v) {
            fprintf(stderr, "%s: option '%s' needs a value or is unknown\n", prog, a);
            return 2;
        } else if (!strcmp(a, "--listen")) {
            if (split_addr(v, o->listen_host, sizeof o->listen_host, &o->listen_port) < 0)
                goto bad;
        } else if (!strcmp(a, "--sink")) {
            if (split_addr(v, o->sink_host, sizeof o->sink_host, &o->sink_port) < 0)
                goto bad;
            o->has_sink = 1;
        } else if (!strcmp(a, "--threads")) {
            if (strcmp(v, "1") != 0) {
                fprintf(stderr, "%s: peers are single-threaded: --threads must be 1\n", prog);
                return 2;
            }
        } else {
            fprintf(stderr, "%s: unknown option '%s'\n", prog, a);
            return 2;
        }
        i++;
        continue;
    bad:
        fprintf(stderr, "%s: bad address '%s' for %s (HOST:PORT)\n", prog, v, a);
        return 2;
    }
    return 0;
}

int peer_listen(const char *host, int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 4096) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int peer_connect_retry(const char *host, int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return -1;
    for (int attempt = 0; attempt < 100; attempt++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return -1;
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            return fd;
        }
        close(fd);
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return -1;
}

void peer_print_final(const char *prog, const peer_stats_t *st)
{
    fprintf(stderr,
            "%s: final in=%" PRIu64 " out=%" PRIu64 " bytes_in=%" PRIu64 " bytes_out=%" PRIu64
            " conns=%" PRIu64 " unknown=%" PRIu64 " bad_frames=%" PRIu64 " dropped=%" PRIu64 "\n",
            prog, st->msgs_in, st->msgs_out, st->bytes_in, st->bytes_out, st->conns, st->unknown,
            st->bad_frames, st->dropped);
}
