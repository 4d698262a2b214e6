/* notify_listen SOCKET CMD [ARGS...] — a service manager's side of the notify protocol,
 * for tests: binds a unix datagram socket at SOCKET, runs CMD with NOTIFY_SOCKET=SOCKET,
 * prints every line of every datagram as "notify: LINE", sends SIGTERM once READY=1
 * arrived (as `systemctl stop` would), and prints "exit: N" (or "signal: N") when CMD
 * ends. Gives up after 60 s without READY=1, or 60 s after the SIGTERM (kills CMD,
 * exits 1). */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s SOCKET CMD [ARGS...]\n", argv[0]);
        return 2;
    }
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(argv[1]) >= sizeof sa.sun_path) {
        fprintf(stderr, "notify_listen: socket path too long\n");
        return 2;
    }
    strcpy(sa.sun_path, argv[1]);
    unlink(argv[1]);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        perror("notify_listen: bind");
        return 1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        setenv("NOTIFY_SOCKET", argv[1], 1);
        execv(argv[2], argv + 2);
        perror("notify_listen: exec");
        _exit(127);
    }
    int ready = 0, status = 0;
    time_t give_up = time(NULL) + 60;
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 100) > 0) {
            char buf[4096];
            ssize_t k = recv(fd, buf, sizeof buf - 1, 0);
            if (k > 0) {
                buf[k] = 0;
                int got_ready = 0;
                for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
                    printf("notify: %s\n", line);
                    got_ready |= strcmp(line, "READY=1") == 0;
                }
                fflush(stdout);
                if (!ready && got_ready) {
                    ready = 1;
                    give_up = time(NULL) + 60; /* now for the drain to end */
                    kill(pid, SIGTERM);
                }
            }
            continue; /* drain every datagram before looking at the child */
        }
        if (waitpid(pid, &status, WNOHANG) == pid)
            break;
        if (time(NULL) > give_up) {
            fprintf(stderr, ready ? "notify_listen: still running 60 s after SIGTERM\n"
                                  : "notify_listen: no READY=1 within 60 s\n");
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            unlink(argv[1]);
            return 1;
        }
    }
    if (WIFEXITED(status))
        printf("exit: %d\n", WEXITSTATUS(status));
    else
        printf("signal: %d\n", WTERMSIG(status));
    unlink(argv[1]);
    return 0;
}
