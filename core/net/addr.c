#include "net/addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rill/rill.h"

int rill__addr_parse(rill__addr_t *out, const char *text)
{
    if (!out || !text)
        return RILL_EINVAL;
    char host[256];
    const char *colon;
    size_t hlen;
    if (text[0] == '[') {
        const char *end = strchr(text, ']');
        if (!end || end[1] != ':')
            return RILL_EADDR;
        hlen = (size_t)(end - text - 1);
        if (hlen >= sizeof host)
            return RILL_EADDR;
        memcpy(host, text + 1, hlen);
        colon = end + 1;
    } else {
        colon = strrchr(text, ':');
        if (!colon)
            return RILL_EADDR;
        hlen = (size_t)(colon - text);
        if (hlen >= sizeof host)
            return RILL_EADDR;
        memcpy(host, text, hlen);
    }
    host[hlen] = '\0';
    char *endp;
    errno = 0;
    long port = strtol(colon + 1, &endp, 10);
    if (colon[1] == '\0' || *endp != '\0' || errno || port < 0 || port > 65535)
        return RILL_EADDR;

    memset(out, 0, sizeof *out);
    if (hlen == 0 || strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    struct sockaddr_in *in4 = (struct sockaddr_in *)&out->ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&out->ss;
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        out->len = sizeof *in4;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        out->len = sizeof *in6;
        return 0;
    }
    return RILL_EADDR;
}

void rill__addr_format(const rill__addr_t *a, char *buf, size_t size)
{
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (a->ss.ss_family == AF_INET) {
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)&a->ss;
        inet_ntop(AF_INET, &in4->sin_addr, host, sizeof host);
        port = ntohs(in4->sin_port);
        snprintf(buf, size, "%s:%u", host, port);
    } else {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a->ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        port = ntohs(in6->sin6_port);
        snprintf(buf, size, "[%s]:%u", host, port);
    }
}
