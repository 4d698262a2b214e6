#include "notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "wlog.h"

int notify_service(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !path[0])
        return 0;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t n = strlen(path);
    /* "/path" or, for an abstract socket, "@name" (a leading NUL on the wire). */
    if ((path[0] != '/' && path[0] != '@') || n >= sizeof sa.sun_path) {
        wlog(RILL_LOG_WARNING, "NOTIFY_SOCKET '%s' is not a unix socket path; not notifying", path);
        return -1;
    }
    memcpy(sa.sun_path, path, n);
    if (path[0] == '@')
        sa.sun_path[0] = '\0';
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    ssize_t k = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, len);
    int err = errno;
    close(fd);
    if (k < 0) {
        wlog(RILL_LOG_WARNING, "cannot notify the service manager at %s: %s", path, strerror(err));
        return -1;
    }
    return 1;
}
