/* peer-discard: reads bytes and throws them away, parsing nothing (epoll, one thread).
 * The ceiling the kernel's copy sets: no receiver that looks at the bytes can be faster
 * on one connection. Counts bytes; --frame-size S turns them into a message count. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "peer_common.h"

#define PROG "peer-discard"

static uint8_t rbuf[PEER_READ_BUF];

int main(int argc, char **argv)
{
    peer_opts_t o;
    int rc = peer_parse_args(PROG,
                             "Reads and discards bytes (no parsing); counts bytes. "
                             "--sink is accepted and ignored.",
                             argc, argv, &o);
    if (rc)
        return rc == 1 ? 0 : rc;
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigprocmask(SIG_BLOCK, &sigs, NULL);
    int sfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
    int lfd = peer_listen(o.listen_host, o.listen_port);
    if (lfd < 0) {
        fprintf(stderr, PROG ": cannot listen on %s:%d: %s\n", o.listen_host, o.listen_port,
                strerror(errno));
        return 1;
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    ev.data.fd = sfd;
    epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);
    fprintf(stderr, PROG ": listening on %s:%d\n" PROG ": ready (1 thread)\n", o.listen_host,
            o.listen_port);
    uint64_t bytes = 0, conns = 0;
    struct epoll_event evs[256];
    for (int stop = 0; !stop;) {
        int n = epoll_wait(ep, evs, 256, -1);
        if (n < 0 && errno != EINTR)
            break;
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == sfd) {
                stop = 1;
            } else if (fd == lfd) {
                int c;
                while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    struct epoll_event ce = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
                    conns++;
                }
            } else {
                ssize_t r = read(fd, rbuf, sizeof rbuf);
                if (r > 0)
                    bytes += (uint64_t)r;
                else if (r == 0 || (errno != EAGAIN && errno != EINTR))
                    close(fd); /* closing removes it from the epoll set */
            }
        }
    }
    fprintf(stderr, PROG ": final in=0 out=0 bytes_in=%" PRIu64 " conns=%" PRIu64 "\n", bytes,
            conns);
    return 0;
}
