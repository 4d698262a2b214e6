/* A program built outside rill's tree against an installed rill (install_test.sh builds
 * it through pkg-config and through CMake, shared and static): a worker on a loopback
 * port runs one computation over a frame sent to it. Prints "app: ok VERSION" and exits
 * 0 when the frame ran. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <rill/rill.h>

static int count_batch(uintptr_t ctx, unsigned loop, const rill_msg_t *m, size_t n,
                       rill_emitter_t *em)
{
    (void)loop, (void)m, (void)em;
    __atomic_add_fetch((size_t *)ctx, n, __ATOMIC_RELAXED);
    return 0;
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "app: %s: %s\n", what, rc < 0 ? rill_strerror(rc) : "failed");
    return 1;
}

int main(void)
{
    static size_t ran;
    rill_config_t *cfg = rill_config_new();
    rill_worker_t *w = NULL;
    int rc;
    if (!cfg)
        return fail("rill_config_new", 0);
    if ((rc = rill_config_add_listener(cfg, "127.0.0.1:0", RILL_FRAMING_RILL, 0, 0, 0)) < 0 ||
        (rc = rill_worker_new(&w, cfg)) < 0)
        return fail("worker", rc);
    rill_config_destroy(cfg);
    rill_comp_ops_t ops = {.batch = count_batch};
    if ((rc = rill_comp_register(w, 7, "count", &ops, (uintptr_t)&ran)) < 0 ||
        (rc = rill_worker_start(w)) < 0)
        return fail("start", rc);

    /* One v1 frame: length, comp_id, key, payload. */
    uint8_t f[4 + 12 + 5];
    uint32_t len = htonl(12 + 5), comp = htonl(7);
    memcpy(f, &len, 4);
    memcpy(f + 4, &comp, 4);
    memset(f + 8, 0, 8);
    memcpy(f + 16, "hello", 5);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)rill_worker_listener_port(w, 0)),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        write(fd, f, sizeof f) != (ssize_t)sizeof f)
        return fail("send", 0);
    for (int i = 0; i < 3000 && !__atomic_load_n(&ran, __ATOMIC_RELAXED); i++)
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    close(fd);
    if ((rc = rill_worker_stop(w)) < 0)
        return fail("stop", rc);
    rill_worker_destroy(w);
    if (ran != 1)
        return fail("the frame did not run", 0);
    printf("app: ok %s\n", rill_version_string());
    return 0;
}
