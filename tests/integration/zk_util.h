/* Helpers for cluster tests: a real ZooKeeper 3.8 server (Debian's zookeeperd) started on
 * a free loopback port with its own data directory, and raw ZooKeeper client handles that
 * act on a worker's znodes from outside (read, tamper, expire its session). The server
 * is the same as scripts/zk-server starts. Timeouts are failure bounds only. */
#ifndef RILL_TESTS_ZK_UTIL_H
#define RILL_TESTS_ZK_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The multi-threaded client declares its synchronous API only with THREADED (the
 * ZooKeeper::zookeeper_mt target defines it too). */
#ifndef THREADED
#define THREADED
#endif
#include <zookeeper/zookeeper.h>

typedef struct zk_server {
    pid_t pid;      /* java, in its own session; 0 when stopped */
    uint16_t port;  /* kept across zk_server_restart */
    int own_dir;    /* dir was created by zk_server_start and is removed by _destroy */
    char dir[256];  /* zoo.cfg, data/, zk.log */
    char hosts[64]; /* "127.0.0.1:PORT" */
} zk_server_t;

/* Returns 1 when java and /usr/share/java/zookeeper.jar are there; otherwise 0 and a
 * reason in why (for a skip message). */
int zk_available(char *why, size_t whylen);

/* Starts a standalone server in dir (created if missing; NULL = a new temp dir), on a free
 * 127.0.0.1 port, and waits until it serves (ruok -> imok, then srvr answers), at most
 * ~20 s. The child gets SIGKILL if the calling thread dies (PR_SET_PDEATHSIG). Returns 0
 * or -errno (-ETIMEDOUT when it never answered; the tail of zk.log is printed). */
int zk_server_start(zk_server_t *z, const char *dir);
/* SIGTERM, SIGKILL after 3 s, waitpid. Keeps port, dir and data. Returns 0 (also when not
 * running). */
int zk_server_stop(zk_server_t *z);
/* Starts the server again on the same port with the same data (sessions survive). Returns
 * 0 or -errno. */
int zk_server_restart(zk_server_t *z);
/* Stops it and removes dir when zk_server_start created it. */
void zk_server_destroy(zk_server_t *z);
/* "127.0.0.1:PORT", owned by z. */
const char *zk_server_connect_string(const zk_server_t *z);

/* Sends a four-letter word and returns the answer in out (NUL-terminated, truncated to
 * cap). Returns the answer's length or -errno. */
int zk_four_letter(uint16_t port, const char *cmd, char *out, size_t cap);

/* A raw client handle, connected (waits up to timeout_ms). auth = "user:password" adds a
 * digest identity first (NULL: none). Returns NULL on failure (reason printed). Close
 * with zk_raw_close. */
zhandle_t *zk_raw_connect(const char *hosts, int timeout_ms, const char *auth);
void zk_raw_close(zhandle_t *zh);

/* Makes the session (id, passwd) expire: opens a second handle with the same session id
 * and password, waits until it is connected (the server moves the session to it), then
 * closes it, which ends the session for good. Returns 0, -ETIMEDOUT (the second handle
 * never connected), or -EIO (refused: the session is already gone). */
int zk_expire_session(const char *hosts, int64_t session_id, const char passwd[16], int timeout_ms);

/* Creates path and any missing parents (persistent, open ACL); data goes to the last
 * node. Returns a ZooKeeper code (ZOK, or ZNODEEXISTS when path itself existed). */
int zk_create_path(zhandle_t *zh, const char *path, const char *data, int len, int mode);

/* "ZNOAUTH", "ZOK", ... for a ZooKeeper return code. */
const char *zk_code_name(int rc);

#endif /* RILL_TESTS_ZK_UTIL_H */
