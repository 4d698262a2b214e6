/* Address parsing and socket setup (cold path: configuration and connection set-up). */
#ifndef RILL_CORE_NETADDR_H
#define RILL_CORE_NETADDR_H

#include <sys/socket.h>

typedef struct rill__addr {
    struct sockaddr_storage ss;
    socklen_t len;
} rill__addr_t;

/* Parses "HOST:PORT" ("127.0.0.1:7700", "[::1]:7700", "localhost:7700"). Returns 0 or
 * RILL_EADDR. No DNS beyond "localhost": a worker must not block on a resolver. */
int rill__addr_parse(rill__addr_t *out, const char *text);

/* Formats a as "HOST:PORT" into buf. */
void rill__addr_format(const rill__addr_t *a, char *buf, size_t size);

/* Creates a listening TCP socket bound to a with SO_REUSEPORT (so each
 * loop can own one socket of the same port). Returns the fd or -errno. */
int rill__listen_socket(const rill__addr_t *a, int backlog);

/* Port of a bound socket, or -errno. */
int rill__socket_port(int fd);

#endif
