/* peer-epoll: the rill-worker job written by hand over epoll, one thread.
 *
 * Level-triggered epoll; one read (up to 64 KiB into a shared buffer) per readable
 * connection per wakeup, frames decoded in place (a straddling frame goes through a per-
 * connection carry), computation looked up in a direct table, output appended to one
 * buffer that is written to the sink after each epoll batch. EAGAIN on the sink keeps the
 * rest pending (EPOLLOUT armed); above PEER_OUT_HIGH pending bytes the loop blocks on the
 * sink until it is below PEER_OUT_LOW, which stops reading and lets TCP push back. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "peer_common.h"

#define PROG "peer-epoll"

typedef struct conn {
    int fd;
    peer_conn_dec_t dec;
} conn_t;

static peer_ctx_t P;
static int ep, sink_fd = -1, sink_out_armed;
static uint8_t rbuf[PEER_READ_BUF];
static const int LISTEN_TAG = 1, SIGNAL_TAG = 2, SINK_TAG = 3;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void set_nonblock(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* Writes what it can; returns 0, or -1 when the sink failed (output is then dropped). */
static int sink_flush(void)
{
    while (peer_out_pending(&P)) {
        ssize_t n = write(sink_fd, P.out.data + P.out.off, peer_out_pending(&P));
        if (n > 0) {
            peer_out_consumed(&P, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        fprintf(stderr, PROG ": sink write failed: %s\n", n < 0 ? strerror(errno) : "closed");
        P.st.dropped += P.st.msgs_out; /* approximate: the sink is gone */
        P.has_sink = 0;
        P.out.len = P.out.off = 0;
        return -1;
    }
    int want = peer_out_pending(&P) != 0;
    if (want != sink_out_armed) {
        struct epoll_event ev = {.events = want ? EPOLLOUT : 0, .data.ptr = (void *)&SINK_TAG};
        epoll_ctl(ep, EPOLL_CTL_MOD, sink_fd, &ev);
        sink_out_armed = want;
    }
    return 0;
}

/* Blocks until pending output is below `below` or the deadline passes. */
static void sink_wait_below(size_t below, double deadline)
{
    while (P.has_sink && peer_out_pending(&P) > below && now_s() < deadline) {
        struct pollfd pfd = {.fd = sink_fd, .events = POLLOUT};
        poll(&pfd, 1, 100);
        if (sink_flush() < 0)
            break;
    }
}

static void close_conn(conn_t *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    peer_dec_free(&c->dec);
    free(c);
    P.st.conns_open--;
}

static void on_accept(int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or an error the next wakeup will see again */
        conn_t *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            close(fd);
            free(c);
            continue;
        }
        P.st.conns++;
        P.st.conns_open++;
    }
}

static void on_readable(conn_t *c)
{
    ssize_t n = read(c->fd, rbuf, sizeof rbuf);
    if (n > 0) {
        if (peer_feed(&P, &c->dec, rbuf, (size_t)n) < 0)
            close_conn(c);
    } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        close_conn(c);
    }
}

int main(int argc, char **argv)
{
    peer_opts_t o;
    int rc = peer_parse_args(PROG,
                             "Decodes v1 frames and runs passthrough (1) / count (2), "
                             "over epoll.",
                             argc, argv, &o);
    if (rc)
        return rc == 1 ? 0 : rc;
    signal(SIGPIPE, SIG_IGN);
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigprocmask(SIG_BLOCK, &sigs, NULL);
    int sfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);

    peer_ctx_init(&P, o.has_sink);
    int lfd = peer_listen(o.listen_host, o.listen_port);
    if (lfd < 0) {
        fprintf(stderr, PROG ": cannot listen on %s:%d: %s\n", o.listen_host, o.listen_port,
                strerror(errno));
        return 1;
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = (void *)&LISTEN_TAG};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    ev.data.ptr = (void *)&SIGNAL_TAG;
    epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);
    if (o.has_sink) {
        sink_fd = peer_connect_retry(o.sink_host, o.sink_port);
        if (sink_fd < 0) {
            fprintf(stderr, PROG ": cannot connect to the sink %s:%d\n", o.sink_host, o.sink_port);
            return 1;
        }
        set_nonblock(sink_fd);
        ev.events = 0;
        ev.data.ptr = (void *)&SINK_TAG;
        epoll_ctl(ep, EPOLL_CTL_ADD, sink_fd, &ev);
    }
    fprintf(stderr, PROG ": listening on %s:%d\n" PROG ": ready (1 thread%s)\n", o.listen_host,
            o.listen_port, o.has_sink ? ", sink" : "");

    struct epoll_event evs[256];
    int stop = 0;
    while (!stop) {
        int n = epoll_wait(ep, evs, 256, -1);
        if (n < 0 && errno != EINTR)
            break;
        for (int i = 0; i < n; i++) {
            void *tag = evs[i].data.ptr;
            if (tag == &LISTEN_TAG)
                on_accept(lfd);
            else if (tag == &SIGNAL_TAG)
                stop = 1;
            else if (tag == &SINK_TAG)
                ; /* flushed below */
            else
                on_readable(tag);
        }
        if (P.has_sink && peer_out_pending(&P)) {
            sink_flush();
            if (peer_out_pending(&P) > PEER_OUT_HIGH)
                sink_wait_below(PEER_OUT_LOW, now_s() + 3600);
        }
    }
    /* What was decoded is in the output buffer: send it (up to 5 s). */
    if (P.has_sink)
        sink_wait_below(0, now_s() + 5);
    peer_print_final(PROG, &P.st);
    peer_ctx_free(&P);
    return 0;
}
