/* idle-conns: opens N TCP connections to a receiver and keeps them open, sending nothing,
 * until SIGTERM/SIGINT; then resets them (SO_LINGER 0, so no TIME_WAIT piles up across
 * runs). Prints 'idle-conns: N open' on stderr once all are connected. Raise the file
 * descriptor limit (ulimit -n) first for large N.
 *
 *   idle-conns --target HOST:PORT --n N */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    const char *target = "127.0.0.1:7700";
    long n = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--target"))
            target = argv[i + 1];
        else if (!strcmp(argv[i], "--n"))
            n = strtol(argv[i + 1], NULL, 10);
        else {
            fprintf(stderr, "usage: idle-conns --target HOST:PORT --n N\n");
            return 2;
        }
    }
    char host[128];
    const char *colon = strrchr(target, ':');
    if (!colon || (size_t)(colon - target) >= sizeof host || n < 0) {
        fprintf(stderr, "idle-conns: bad arguments\n");
        return 2;
    }
    memcpy(host, target, (size_t)(colon - target));
    host[colon - target] = '\0';
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "idle-conns: bad host '%s'\n", host);
        return 2;
    }
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < (rlim_t)n + 64) {
        rl.rlim_cur = rl.rlim_max < (rlim_t)n + 64 ? rl.rlim_max : (rlim_t)n + 64;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigprocmask(SIG_BLOCK, &sigs, NULL);
    int *fds = calloc((size_t)n + 1, sizeof *fds);
    struct linger lg = {1, 0};
    for (long i = 0; i < n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            fprintf(stderr, "idle-conns: socket #%ld: %s\n", i, strerror(errno));
            return 1;
        }
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
            fprintf(stderr, "idle-conns: connect #%ld: %s\n", i, strerror(errno));
            return 1;
        }
        fds[i] = fd;
    }
    fprintf(stderr, "idle-conns: %ld open\n", n);
    int sig;
    sigwait(&sigs, &sig);
    for (long i = 0; i < n; i++)
        close(fds[i]);
    free(fds);
    return 0;
}
