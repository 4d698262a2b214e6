/* HOST:PORT addresses: parsing and formatting (cold path: configuration, logs). */
#ifndef RILL_CORE_NET_ADDR_H
#define RILL_CORE_NET_ADDR_H

#include <stddef.h>
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

#endif
