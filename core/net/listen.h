/* Listening TCP sockets (cold path: worker and metrics set-up). */
#ifndef RILL_CORE_NET_LISTEN_H
#define RILL_CORE_NET_LISTEN_H

#include "net/addr.h"

/* Creates a listening TCP socket bound to a. SO_REUSEADDR (a restart binds while old
 * connections are in TIME_WAIT), never SO_REUSEPORT: a port that another socket listens
 * on fails with -EADDRINUSE, even in a process of the same user. Returns the fd or -errno. */
int rill__listen_socket(const rill__addr_t *a, int backlog);

/* Port of a bound socket, or -errno. */
int rill__socket_port(int fd);

#endif
