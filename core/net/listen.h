/* Listening TCP sockets (cold path: worker and metrics set-up). */
#ifndef RILL_CORE_NET_LISTEN_H
#define RILL_CORE_NET_LISTEN_H

#include "net/addr.h"

/* Creates a listening TCP socket bound to a with SO_REUSEPORT (so each
 * loop can own one socket of the same port). Returns the fd or -errno. */
int rill__listen_socket(const rill__addr_t *a, int backlog);

/* Port of a bound socket, or -errno. */
int rill__socket_port(int fd);

#endif
