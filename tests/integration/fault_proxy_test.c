/* The fault proxy (fault_proxy.c) with real sockets: forwarding is byte-exact both ways,
 * stall holds data, cut resets both ends, refuse closes new connections at once, cut_after
 * cuts at exactly its byte count; and a rill worker whose sink link is cut mid-stream.
 * Timeouts are failure bounds only. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "harness.h"
#include "integration/fault_proxy.h"
#include "integration/tcp_util.h"

#define WAIT_MS 30000
#define MIB (1024u * 1024u)

/* ------------------------------------------------------------ helpers */

/* A blocking listening socket on a free 127.0.0.1 port. Returns the fd or -errno. */
static int listen_any(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 64) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    *port = ntohs(sa.sin_port);
    return fd;
}

/* Accepts one connection within timeout_ms. Returns the fd, -ETIMEDOUT or -errno. */
static int accept_within(int lfd, int timeout_ms)
{
    struct pollfd pfd = {lfd, POLLIN, 0};
    int r = poll(&pfd, 1, timeout_ms);
    if (r < 0)
        return -errno;
    if (r == 0)
        return -ETIMEDOUT;
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

/* A client connected through the proxy and the target's end of it. Returns 0 or -errno. */
static int pair_open(fp_t *p, int lfd, int *cfd, int *sfd)
{
    *cfd = *sfd = -1;
    int c = tu_connect(fp_port(p), WAIT_MS);
    if (c < 0)
        return c;
    int s = accept_within(lfd, WAIT_MS);
    if (s < 0) {
        close(c);
        return s;
    }
    *cfd = c;
    *sfd = s;
    return 0;
}

static void pair_close(int cfd, int sfd)
{
    if (cfd >= 0)
        close(cfd);
    if (sfd >= 0)
        close(sfd);
}

static uint8_t *random_bytes(size_t n, uint64_t seed)
{
    uint8_t *b = malloc(n);
    if (!b)
        abort();
    uint64_t st = seed | 1;
    for (size_t i = 0; i < n; i += 8) {
        uint64_t v = tu_rand(&st);
        memcpy(b + i, &v, n - i < 8 ? n - i : 8);
    }
    return b;
}

/* 1 when nothing (no byte, no close) becomes readable on fd within ms. */
static int quiet_for(int fd, int ms)
{
    struct pollfd pfd = {fd, POLLIN, 0};
    return poll(&pfd, 1, ms) == 0;
}

/* Reads until the peer closes (EOF or error) or timeout_ms passes, keeping the first cap
 * bytes in buf; *got = bytes read in all. Returns what tu_wait_peer_closed would. */
static int read_until_closed(int fd, uint8_t *buf, size_t cap, size_t *got, int timeout_ms)
{
    uint8_t junk[65536];
    int64_t end = tu_now_ms() + timeout_ms;
    *got = 0;
    for (;;) {
        int64_t left = end - tu_now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd pfd = {fd, POLLIN, 0};
        int r = poll(&pfd, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            return -ETIMEDOUT;
        uint8_t *dst = *got < cap ? buf + *got : junk;
        size_t room = *got < cap ? cap - *got : sizeof junk;
        ssize_t k = recv(fd, dst, room, 0);
        if (k == 0)
            return 0;
        if (k < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return -errno;
        }
        *got += (size_t)k;
    }
}

/* Sends n bytes and reads them at the other end: the path works. */
static int roundtrip(int from, int to, size_t n)
{
    uint8_t *out = random_bytes(n, n * 7919), *in = malloc(n);
    if (!in)
        abort();
    int rc = tu_write_all(from, out, n);
    if (rc == 0)
        rc = tu_read_exact(to, in, n, WAIT_MS);
    if (rc == 0 && memcmp(in, out, n) != 0)
        rc = -EBADMSG;
    free(out);
    free(in);
    return rc;
}

static int wait_open(fp_t *p, uint64_t n, int timeout_ms)
{
    int64_t end = tu_now_ms() + timeout_ms;
    fp_stats_t st;
    for (;;) {
        fp_stats(p, &st);
        if (st.open == n)
            return 0;
        if (tu_now_ms() >= end)
            return -ETIMEDOUT;
        tu_sleep_ms(5);
    }
}

/* Waits until the proxy has counted up and down bytes forwarded (it counts a send after it
 * returned, so a reader may see the bytes a moment before the count). */
static void wait_bytes(fp_t *p, uint64_t up, uint64_t down, fp_stats_t *st)
{
    int64_t end = tu_now_ms() + WAIT_MS;
    for (;;) {
        fp_stats(p, st);
        if ((st->bytes_up >= up && st->bytes_down >= down) || tu_now_ms() >= end)
            return;
        tu_sleep_ms(5);
    }
}

/* ------------------------------------------------------------ forwarding */

#define FWD_CONNS 4
#define FWD_BYTES ((size_t)8 * MIB) /* per connection and direction */

/* Random data, both directions of several connections at once, far above the proxy's
 * buffers: every byte arrives, in order; half-closes pass through in order. */
static int test_forward_exact(void)
{
    uint16_t tport;
    int lfd = listen_any(&tport);
    ASSERT_GE(lfd, 0);
    fp_t *p = NULL;
    ASSERT_EQ(fp_new(&p, tport), 0);
    ASSERT_GT(fp_port(p), 0);

    int fds[2 * FWD_CONNS];
    uint8_t *bufs[2 * FWD_CONNS];
    size_t lens[2 * FWD_CONNS];
    for (int i = 0; i < FWD_CONNS; i++) {
        ASSERT_EQ(pair_open(p, lfd, &fds[i], &fds[FWD_CONNS + i]), 0);
        bufs[i] = random_bytes(FWD_BYTES, 100 + (uint64_t)i);             /* up */
        bufs[FWD_CONNS + i] = random_bytes(FWD_BYTES, 200 + (uint64_t)i); /* down */
        lens[i] = lens[FWD_CONNS + i] = FWD_BYTES;
    }
    /* One thread per socket, so that no direction waits on another. */
    tu_sender_t *snd = NULL;
    ASSERT_EQ(tu_send_start(&snd, fds, bufs, lens, 2 * FWD_CONNS, 2 * FWD_CONNS, 100003), 0);
    uint8_t *got = malloc(FWD_BYTES);
    ASSERT_TRUE(got != NULL);
    for (int i = 0; i < FWD_CONNS; i++) {
        ASSERT_EQ(tu_read_exact(fds[FWD_CONNS + i], got, FWD_BYTES, WAIT_MS), 0);
        ASSERT_MEM_EQ(got, bufs[i], FWD_BYTES);
        ASSERT_EQ(tu_read_exact(fds[i], got, FWD_BYTES, WAIT_MS), 0);
        ASSERT_MEM_EQ(got, bufs[FWD_CONNS + i], FWD_BYTES);
    }
    ASSERT_EQ(tu_send_join(snd), 0);

    fp_stats_t st;
    wait_bytes(p, (uint64_t)FWD_CONNS * FWD_BYTES, (uint64_t)FWD_CONNS * FWD_BYTES, &st);
    fprintf(stderr, "  %d connections, %zu MiB each way each: bytes up %llu, down %llu\n",
            FWD_CONNS, FWD_BYTES / MIB, (unsigned long long)st.bytes_up,
            (unsigned long long)st.bytes_down);
    ASSERT_U64_EQ(st.bytes_up, (uint64_t)FWD_CONNS * FWD_BYTES);
    ASSERT_U64_EQ(st.bytes_down, (uint64_t)FWD_CONNS * FWD_BYTES);
    ASSERT_U64_EQ(st.accepted, FWD_CONNS);
    ASSERT_U64_EQ(st.connected, FWD_CONNS);
    ASSERT_U64_EQ(st.open, FWD_CONNS);
    ASSERT_U64_EQ(st.cuts, 0);

    /* Half-closes: the client's FIN reaches the target, which still answers; then its FIN
     * reaches the client after the answer. */
    for (int i = 0; i < FWD_CONNS; i++) {
        int c = fds[i], s = fds[FWD_CONNS + i];
        ASSERT_EQ(shutdown(c, SHUT_WR), 0);
        ASSERT_EQ(tu_wait_peer_closed(s, WAIT_MS), 0);
        ASSERT_EQ(tu_write_all(s, "last", 4), 0);
        ASSERT_EQ(shutdown(s, SHUT_WR), 0);
        char last[4];
        ASSERT_EQ(tu_read_exact(c, last, 4, WAIT_MS), 0);
        ASSERT_MEM_EQ(last, "last", 4);
        ASSERT_EQ(tu_wait_peer_closed(c, WAIT_MS), 0);
        pair_close(c, s);
    }
    ASSERT_EQ(wait_open(p, 0, WAIT_MS), 0);
    for (int i = 0; i < 2 * FWD_CONNS; i++)
        free(bufs[i]);
    free(got);
    fp_destroy(p);
    close(lfd);
    return 0;
}

/* ------------------------------------------------------------ stall */

#define STALL_BYTES ((size_t)256 * 1024)

/* Nothing moves while stalled, in either direction; everything arrives after resuming. */
static int test_stall_holds(void)
{
    uint16_t tport;
    int lfd = listen_any(&tport);
    ASSERT_GE(lfd, 0);
    fp_t *p = NULL;
    ASSERT_EQ(fp_new(&p, tport), 0);
    int fds[2];
    ASSERT_EQ(pair_open(p, lfd, &fds[0], &fds[1]), 0);
    ASSERT_EQ(roundtrip(fds[0], fds[1], 1000), 0);
    ASSERT_EQ(roundtrip(fds[1], fds[0], 1000), 0);

    ASSERT_EQ(fp_stall(p, 1), 0);
    fp_stats_t before, st;
    ASSERT_EQ(fp_stats(p, &before), 0);
    uint8_t *bufs[2] = {random_bytes(STALL_BYTES, 1), random_bytes(STALL_BYTES, 2)};
    size_t lens[2] = {STALL_BYTES, STALL_BYTES};
    tu_sender_t *snd = NULL;
    ASSERT_EQ(tu_send_start(&snd, fds, bufs, lens, 2, 2, 4096), 0);
    /* Not a timing assertion: a stall that leaked would show within this window, a
     * stall that holds passes however slow the machine is. */
    ASSERT_TRUE(quiet_for(fds[1], 300));
    ASSERT_TRUE(quiet_for(fds[0], 100));
    ASSERT_EQ(fp_stats(p, &st), 0);
    ASSERT_U64_EQ(st.bytes_up, before.bytes_up);
    ASSERT_U64_EQ(st.bytes_down, before.bytes_down);
    ASSERT_U64_EQ(st.open, 1);

    ASSERT_EQ(fp_stall(p, 0), 0);
    uint8_t *got = malloc(STALL_BYTES);
    ASSERT_TRUE(got != NULL);
    ASSERT_EQ(tu_read_exact(fds[1], got, STALL_BYTES, WAIT_MS), 0);
    ASSERT_MEM_EQ(got, bufs[0], STALL_BYTES);
    ASSERT_EQ(tu_read_exact(fds[0], got, STALL_BYTES, WAIT_MS), 0);
    ASSERT_MEM_EQ(got, bufs[1], STALL_BYTES);
    ASSERT_EQ(tu_send_join(snd), 0);
    wait_bytes(p, before.bytes_up + STALL_BYTES, before.bytes_down + STALL_BYTES, &st);
    ASSERT_U64_EQ(st.bytes_up, before.bytes_up + STALL_BYTES);
    ASSERT_U64_EQ(st.bytes_down, before.bytes_down + STALL_BYTES);
    ASSERT_U64_EQ(st.cuts, 0);

    free(got);
    free(bufs[0]);
    free(bufs[1]);
    pair_close(fds[0], fds[1]);
    fp_destroy(p);
    close(lfd);
    return 0;
}

/* ------------------------------------------------------------ cut */

#define CUT_CONNS 4

/* Every connection is reset at both ends; bytes held in the proxy (a stalled one) are
 * lost; the proxy serves new connections afterwards. */
static int test_cut_resets(void)
{
    uint16_t tport;
    int lfd = listen_any(&tport);
    ASSERT_GE(lfd, 0);
    fp_t *p = NULL;
    ASSERT_EQ(fp_new(&p, tport), 0);
    int c[CUT_CONNS], s[CUT_CONNS];
    for (int i = 0; i < CUT_CONNS; i++) {
        ASSERT_EQ(pair_open(p, lfd, &c[i], &s[i]), 0);
        ASSERT_EQ(roundtrip(c[i], s[i], 5000), 0);
        ASSERT_EQ(roundtrip(s[i], c[i], 5000), 0);
    }
    /* Bytes in flight at the cut: held by a stall, and the target's unread ones. */
    ASSERT_EQ(fp_stall(p, 1), 0);
    uint8_t blob[8192];
    memset(blob, 0x5a, sizeof blob);
    ASSERT_EQ(tu_write_all(c[0], blob, sizeof blob), 0);
    ASSERT_EQ(tu_write_all(s[1], blob, sizeof blob), 0);
    ASSERT_EQ(fp_cut(p), 0);
    ASSERT_EQ(fp_stall(p, 0), 0);

    for (int i = 0; i < CUT_CONNS; i++) {
        /* The client: a reset, and no byte (the target's blob for c[1] stayed in the
         * proxy). */
        size_t got = 0;
        uint8_t sink[8192];
        int rc = read_until_closed(c[i], sink, sizeof sink, &got, WAIT_MS);
        ASSERT_EQ(rc, -ECONNRESET);
        ASSERT_EQ(got, 0);
        ssize_t k = send(c[i], "x", 1, MSG_NOSIGNAL);
        int err = errno;
        ASSERT_EQ(k, -1);
        ASSERT_TRUE(err == EPIPE || err == ECONNRESET);
        /* The target: a reset or EOF, and no byte (c[0]'s blob stayed in the proxy). */
        rc = read_until_closed(s[i], sink, sizeof sink, &got, WAIT_MS);
        ASSERT_TRUE(tu_closed_rc(rc));
        ASSERT_EQ(got, 0);
        pair_close(c[i], s[i]);
    }
    fp_stats_t st;
    ASSERT_EQ(fp_stats(p, &st), 0);
    ASSERT_U64_EQ(st.cuts, 1);
    ASSERT_U64_EQ(st.conns_cut, CUT_CONNS);
    ASSERT_U64_EQ(st.open, 0);

    /* A cut with no connection counts, and a new connection works afterwards. */
    ASSERT_EQ(fp_cut(p), 0);
    int c2, s2;
    ASSERT_EQ(pair_open(p, lfd, &c2, &s2), 0);
    ASSERT_EQ(roundtrip(c2, s2, 100000), 0);
    ASSERT_EQ(roundtrip(s2, c2, 100000), 0);
    ASSERT_EQ(fp_stats(p, &st), 0);
    ASSERT_U64_EQ(st.cuts, 2);
    ASSERT_U64_EQ(st.conns_cut, CUT_CONNS);
    ASSERT_U64_EQ(st.open, 1);
    pair_close(c2, s2);
    fp_destroy(p);
    close(lfd);
    return 0;
}

/* ------------------------------------------------------------ refuse, target down */

/* While refusing, new connections are closed at once and never reach the target; open
 * ones are left alone. A target that is down gets the same answer. */
static int test_refuse(void)
{
    uint16_t tport;
    int lfd = listen_any(&tport);
    ASSERT_GE(lfd, 0);
    fp_t *p = NULL;
    ASSERT_EQ(fp_new(&p, tport), 0);
    int c0, s0;
    ASSERT_EQ(pair_open(p, lfd, &c0, &s0), 0);

    ASSERT_EQ(fp_refuse(p, 1), 0);
    for (int i = 0; i < 3; i++) {
        int c = tu_connect(fp_port(p), WAIT_MS);
        ASSERT_GE(c, 0);
        int rc = tu_wait_peer_closed(c, WAIT_MS);
        ASSERT_TRUE(tu_closed_rc(rc));
        close(c);
    }
    ASSERT_EQ(accept_within(lfd, 200), -ETIMEDOUT); /* nothing reached the target */
    ASSERT_EQ(roundtrip(c0, s0, 10000), 0);         /* the open one still works */
    ASSERT_EQ(roundtrip(s0, c0, 10000), 0);
    fp_stats_t st;
    ASSERT_EQ(fp_stats(p, &st), 0);
    ASSERT_U64_EQ(st.accepted, 4);
    ASSERT_U64_EQ(st.refused, 3);
    ASSERT_U64_EQ(st.connected, 1);

    ASSERT_EQ(fp_refuse(p, 0), 0);
    int c1, s1;
    ASSERT_EQ(pair_open(p, lfd, &c1, &s1), 0);
    ASSERT_EQ(roundtrip(c1, s1, 10000), 0);
    pair_close(c1, s1);
    pair_close(c0, s0);
    fp_destroy(p);

    /* The target down: a port that is bound but does not listen refuses connects. */
    int dead = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(dead, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    ASSERT_EQ(bind(dead, (struct sockaddr *)&sa, sizeof sa), 0);
    ASSERT_EQ(getsockname(dead, (struct sockaddr *)&sa, &sl), 0);
    ASSERT_EQ(fp_new(&p, ntohs(sa.sin_port)), 0);
    int c = tu_connect(fp_port(p), WAIT_MS);
    ASSERT_GE(c, 0);
    ASSERT_TRUE(tu_closed_rc(tu_wait_peer_closed(c, WAIT_MS)));
    close(c);
    ASSERT_EQ(wait_open(p, 0, WAIT_MS), 0);
    ASSERT_EQ(fp_stats(p, &st), 0);
    ASSERT_U64_EQ(st.accepted, 1);
    ASSERT_U64_EQ(st.failed, 1);
    ASSERT_U64_EQ(st.connected, 0);
    fp_destroy(p);
    close(dead);
    close(lfd);
    return 0;
}

/* ------------------------------------------------------------ cut_after */

/* Arms a cut after `at` bytes, sends `total` from the client (from a thread: it may block)
 * and checks that the target read exactly the first `at` of them, then a close. */
static int cut_after_case(fp_t *p, int lfd, uint64_t at, size_t total)
{
    int fds[2];
    ASSERT_EQ(pair_open(p, lfd, &fds[0], &fds[1]), 0);
    fp_stats_t before, st;
    ASSERT_EQ(fp_stats(p, &before), 0);
    ASSERT_EQ(fp_cut_after(p, at), 0);
    uint8_t *data = random_bytes(total, at);
    tu_sender_t *snd = NULL;
    ASSERT_EQ(tu_send_start(&snd, fds, &data, &total, 1, 1, 65536), 0);
    uint8_t *got = malloc(total);
    ASSERT_TRUE(got != NULL);
    size_t n = 0;
    int rc = read_until_closed(fds[1], got, total, &n, WAIT_MS);
    fprintf(stderr, "  cut after %llu bytes: the target read %zu, then %s\n",
            (unsigned long long)at, n, rc == 0 ? "EOF" : strerror(-rc));
    /* The client's socket was reset: the sender ends (0 if the kernel had taken it all). */
    int send_rc = tu_send_join(snd);
    ASSERT_TRUE(tu_closed_rc(rc));
    ASSERT_U64_EQ(n, at);
    ASSERT_MEM_EQ(got, data, n);
    /* The reset is reported once, to the first call that meets it: the sender's send, or
     * else this read. */
    int recv_rc = read_until_closed(fds[0], got, total, &n, WAIT_MS);
    fprintf(stderr, "  the client saw: send %s, then recv %s\n",
            send_rc ? strerror(-send_rc) : "ok", recv_rc ? strerror(-recv_rc) : "EOF");
    ASSERT_TRUE(recv_rc == -ECONNRESET || (recv_rc == 0 && send_rc == -ECONNRESET));
    ASSERT_EQ(fp_wait_cuts(p, before.cuts + 1, WAIT_MS), 0);
    ASSERT_EQ(fp_stats(p, &st), 0);
    ASSERT_U64_EQ(st.bytes_up - before.bytes_up, at);
    ASSERT_U64_EQ(st.cuts, before.cuts + 1);
    ASSERT_U64_EQ(st.conns_cut, before.conns_cut + 1);
    ASSERT_U64_EQ(st.open, 0);
    free(got);
    free(data);
    pair_close(fds[0], fds[1]);
    return 0;
}

static int test_cut_after_exact(void)
{
    uint16_t tport;
    int lfd = listen_any(&tport);
    ASSERT_GE(lfd, 0);
    fp_t *p = NULL;
    ASSERT_EQ(fp_new(&p, tport), 0);
    if (cut_after_case(p, lfd, 1000, 4000))
        return 1;
    if (cut_after_case(p, lfd, 1, 100))
        return 1;
    /* Several times the proxy's buffer, at an odd offset. */
    if (cut_after_case(p, lfd, 5 * FP_BUF_BYTES + 7, 4 * MIB))
        return 1;

    /* Disarmed before it is reached: no cut. */
    int c, s;
    ASSERT_EQ(pair_open(p, lfd, &c, &s), 0);
    ASSERT_EQ(fp_cut_after(p, 10), 0);
    ASSERT_EQ(fp_cut_after(p, 0), 0);
    ASSERT_EQ(roundtrip(c, s, 100000), 0);
    fp_stats_t st;
    ASSERT_EQ(fp_stats(p, &st), 0);
    ASSERT_U64_EQ(st.cuts, 3);
    ASSERT_U64_EQ(st.open, 1);
    pair_close(c, s);
    fp_destroy(p);
    close(lfd);
    return 0;
}

/* ------------------------------------------------------------ a worker's sink link */

#define COMP 7u
#define PAYLOAD 48u
#define FRAME (TU_HDR + PAYLOAD) /* 64 bytes */
#define N0 100u                  /* frames before the cut is armed */
#define NCUT 1000u               /* whole frames of phase 1 forwarded before the cut */
#define N1 20000u                /* phase 1: the stream that is cut */
#define N2 1000u                 /* phase 2: sent after the reconnect */

static uint64_t frame_key(unsigned phase, unsigned seq)
{
    return ((uint64_t)phase << 32) | seq;
}

static void frame_payload(uint8_t *b, uint64_t key)
{
    for (unsigned i = 0; i < PAYLOAD; i++)
        b[i] = (uint8_t)(key * 131 + i * 7 + (key >> 32));
}

typedef struct seen {
    uint8_t n0[N0], n1[N1], n2[N2]; /* times each frame arrived */
    unsigned conn0;                 /* frames on the sink's first connection */
    unsigned bad;                   /* wrong comp id, key, length or payload */
    atomic_uint got2;               /* distinct phase-2 frames */
} seen_t;

static void on_frame(void *arg, unsigned conn, uint32_t comp_id, uint64_t key,
                     const uint8_t *payload, uint32_t len)
{
    seen_t *s = arg;
    uint8_t want[PAYLOAD];
    frame_payload(want, key);
    unsigned phase = (unsigned)(key >> 32), seq = (unsigned)key;
    uint8_t *slot = NULL;
    if (phase == 0 && seq < N0)
        slot = &s->n0[seq];
    else if (phase == 1 && seq < N1)
        slot = &s->n1[seq];
    else if (phase == 2 && seq < N2)
        slot = &s->n2[seq];
    if (!slot || comp_id != COMP || len != PAYLOAD || memcmp(payload, want, PAYLOAD) != 0) {
        s->bad++;
        return;
    }
    if (conn == 0)
        s->conn0++;
    if (phase == 2 && *slot == 0)
        atomic_fetch_add(&s->got2, 1);
    if (*slot < 255)
        (*slot)++;
}

/* Frames of one phase that arrived at least once; adds the extra arrivals to *dup. */
static unsigned arrived(const uint8_t *times, unsigned n, unsigned *dup)
{
    unsigned got = 0;
    for (unsigned i = 0; i < n; i++) {
        got += times[i] > 0;
        *dup += times[i] > 1 ? times[i] - 1u : 0;
    }
    return got;
}

static int send_phase(int fd, unsigned phase, unsigned n)
{
    tu_buf_t b = {0};
    uint8_t pl[PAYLOAD];
    for (unsigned i = 0; i < n; i++) {
        uint64_t key = frame_key(phase, i);
        frame_payload(pl, key);
        tu_buf_frame(&b, COMP, key, pl, PAYLOAD);
    }
    int rc = tu_write_all(fd, b.data, b.len);
    tu_buf_free(&b);
    return rc;
}

/* A worker whose sink sits behind the proxy. The link is cut in the middle of a frame of a
 * stream: the worker counts the failure, reconnects through the proxy, and what is sent
 * after the reconnect arrives. Links are at most once today: the frames the kernel had
 * taken when the link died are lost, and the count is printed, not asserted. */
static int test_worker_sink_cut(void)
{
    char why[256];
    if (t_io_uring_unavailable(why, sizeof why))
        T_SKIP("io_uring unavailable: %s", why);
    static seen_t seen;
    memset(&seen, 0, sizeof seen);
    tu_sink_t *sink = NULL;
    ASSERT_EQ(tu_sink_new(&sink, on_frame, &seen), 0);
    fp_t *p = NULL;
    ASSERT_EQ(fp_new(&p, tu_sink_port(sink)), 0);

    rill_config_t *cfg = rill_config_new();
    ASSERT_TRUE(cfg != NULL);
    ASSERT_EQ(rill_config_add_listener(cfg, "127.0.0.1:0", RILL_FRAMING_RILL, 0, 0, 0), 0);
    ASSERT_EQ(rill_config_add_sink(cfg, fp_addr(p)), 0);
    rill_worker_t *w = NULL;
    int rc = rill_worker_new(&w, cfg);
    rill_config_destroy(cfg);
    ASSERT_EQ(rc, 0);
    rill_comp_ops_t ops = {tu_pass_batch, NULL, NULL};
    ASSERT_EQ(rill_comp_register(w, COMP, "passthrough", &ops, 0), 0);
    ASSERT_EQ(rill_worker_start(w), 0);
    ASSERT_EQ(fp_wait_connected(p, 1, WAIT_MS), 0); /* the loop's sink link */
    int src = tu_connect((uint16_t)rill_worker_listener_port(w, 0), WAIT_MS);
    ASSERT_GE(src, 0);

    /* Phase 0: the link carries frames. */
    ASSERT_EQ(send_phase(src, 0, N0), 0);
    ASSERT_EQ(tu_sink_wait_count(sink, N0, WAIT_MS), 0);

    /* Phase 1: cut inside frame NCUT of the stream. */
    ASSERT_EQ(fp_cut_after(p, (uint64_t)NCUT * FRAME + FRAME / 2), 0);
    ASSERT_EQ(send_phase(src, 1, N1), 0);
    ASSERT_EQ(fp_wait_cuts(p, 1, WAIT_MS), 0);
    uint64_t errs = 0;
    ASSERT_EQ(tu_wait_stat_ge(w, TU_STAT(sink_errors), 1, WAIT_MS, &errs), 0);
    ASSERT_EQ(fp_wait_connected(p, 2, WAIT_MS), 0); /* the worker reconnected */
    ASSERT_EQ(tu_sink_wait_accepted(sink, 2, WAIT_MS), 0);

    /* Phase 2: sent after the reconnect, all of it arrives. */
    ASSERT_EQ(send_phase(src, 2, N2), 0);
    int64_t end = tu_now_ms() + WAIT_MS;
    while (atomic_load(&seen.got2) < N2 && tu_now_ms() < end)
        tu_sleep_ms(10);
    tu_sink_info_t si;
    tu_sink_info(sink, &si);
    while (si.closed < 1 && tu_now_ms() < end) { /* the sink has seen the cut connection go */
        tu_sleep_ms(10);
        tu_sink_info(sink, &si);
    }

    rill_stats_t st;
    ASSERT_EQ(rill_worker_stats(w, &st, sizeof st), 0);
    fp_stats_t ps;
    ASSERT_EQ(fp_stats(p, &ps), 0);
    tu_sink_lock(sink);
    unsigned dup = 0;
    unsigned got0 = arrived(seen.n0, N0, &dup), got1 = arrived(seen.n1, N1, &dup);
    unsigned got2 = arrived(seen.n2, N2, &dup);
    unsigned conn0 = seen.conn0, bad = seen.bad;
    tu_sink_unlock(sink);
    fprintf(stderr,
            "  sink link cut inside frame %u of %u: sink_errors %llu, proxied connections "
            "%llu, sink connections %u (partial frames %u)\n"
            "  phase 1: %u of %u frames arrived, %u lost at the cut (taken by the kernel: "
            "links are at most once today); phase 2: %u of %u; duplicates %u, bad %u\n",
            NCUT, N1, (unsigned long long)st.sink_errors, (unsigned long long)ps.connected,
            si.accepted, si.partial, got1, N1, N1 - got1, got2, N2, dup, bad);
    ASSERT_EQ(bad, 0);
    ASSERT_EQ(got0, N0);
    ASSERT_EQ(got2, N2);
    ASSERT_EQ(conn0, N0 + NCUT); /* the cut came exactly inside frame NCUT */
    ASSERT_EQ(si.partial, 1);
    ASSERT_GE(got1, NCUT);
    ASSERT_EQ(dup, 0);
    ASSERT_U64_GE(st.sink_errors, 1);
    ASSERT_U64_EQ(st.sink_dropped, 0);
    ASSERT_U64_GE(ps.connected, 2);

    close(src);
    rill_worker_destroy(w);
    fp_destroy(p);
    tu_sink_destroy(sink);
    return 0;
}

static const t_case_t cases[] = {
    {"forward_exact", test_forward_exact},
    {"stall_holds", test_stall_holds},
    {"cut_resets", test_cut_resets},
    {"refuse", test_refuse},
    {"cut_after_exact", test_cut_after_exact},
    {"worker_sink_cut", test_worker_sink_cut},
    {NULL, NULL},
};

int main(int argc, char **argv)
{
    tu_ignore_sigpipe();
    return t_run("fault_proxy_test", cases, argc, argv);
}
