/* Helpers for cluster tests; see zk_util.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "zk_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* libzookeeper_mt 3.8.0 formats a server's endpoint for its log messages with sprintf
 * into one static buffer (format_endpoint_info), from each handle's I/O thread: with
 * several workers (handles) in one process, as in every test that links this file,
 * their reconnect messages race there. That buffer is the library's, not rill's; only
 * that frame is suppressed. */
__attribute__((visibility("default"))) const char *__tsan_default_suppressions(void);
__attribute__((visibility("default"))) const char *__tsan_default_suppressions(void)
{
    return "race:__sprintf_chk\n";
}

#define ZK_JAR "/usr/share/java/zookeeper.jar"
#define ZK_CONF "/etc/zookeeper/conf"
#define START_TIMEOUT_MS 20000

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ------------------------------------------------------------ server */

static int find_java(char *out, size_t cap)
{
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    const char *p = path;
    while (*p) {
        const char *e = strchr(p, ':');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n > 0 && n + 6 < cap) {
            memcpy(out, p, n);
            memcpy(out + n, "/java", 6);
            if (access(out, X_OK) == 0)
                return 0;
        }
        p += n;
        if (*p == ':')
            p++;
    }
    return -1;
}

int zk_available(char *why, size_t whylen)
{
    char java[512];
    if (find_java(java, sizeof java) < 0) {
        snprintf(why, whylen, "java is not installed (zookeeperd pulls a JRE; run scripts/setup)");
        return 0;
    }
    if (access(ZK_JAR, R_OK) != 0) {
        snprintf(why, whylen, "%s is missing (install zookeeperd: scripts/setup)", ZK_JAR);
        return 0;
    }
    return 1;
}

/* A port the kernel just handed out on 127.0.0.1; free again once we close it. */
static int pick_port(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    *port = ntohs(sa.sin_port);
    close(fd);
    return 0;
}

int zk_four_letter(uint16_t port, const char *cmd, char *out, size_t cap)
{
    if (cap)
        out[0] = '\0';
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    if (send(fd, cmd, strlen(cmd), MSG_NOSIGNAL) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    size_t len = 0;
    int64_t end = now_ms() + 2000;
    for (;;) {
        int left = (int)(end - now_ms());
        if (left <= 0)
            break;
        struct pollfd pfd = {fd, POLLIN, 0};
        int r = poll(&pfd, 1, left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        char tmp[1024];
        ssize_t k = recv(fd, tmp, sizeof tmp, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        for (ssize_t i = 0; i < k && len + 1 < cap; i++)
            out[len++] = tmp[i];
    }
    if (cap)
        out[len < cap ? len : cap - 1] = '\0';
    close(fd);
    return (int)len;
}

/* ruok answers imok as soon as the process listens, before it serves: check srvr too. */
static int serving(uint16_t port)
{
    char buf[2048];
    if (zk_four_letter(port, "ruok", buf, sizeof buf) < 0 || strcmp(buf, "imok") != 0)
        return 0;
    if (zk_four_letter(port, "srvr", buf, sizeof buf) < 0)
        return 0;
    return strstr(buf, "Zookeeper version") != NULL;
}

static void print_log_tail(const zk_server_t *z)
{
    char path[300];
    snprintf(path, sizeof path, "%s/zk.log", z->dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    static char buf[4096];
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, sz > (long)sizeof buf - 1 ? sz - (long)sizeof buf + 1 : 0, SEEK_SET);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    fprintf(stderr, "  zk_util: --- end of %s:\n%s\n  zk_util: ---\n", path, buf);
}

static int write_cfg(const zk_server_t *z)
{
    char path[300];
    snprintf(path, sizeof path, "%s/zoo.cfg", z->dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return -errno;
    fprintf(f,
            "# written by tests/integration/zk_util.c\n"
            "tickTime=200\ninitLimit=10\nsyncLimit=5\n"
            "dataDir=%s/data\nclientPort=%u\nclientPortAddress=127.0.0.1\n"
            "admin.enableServer=false\n4lw.commands.whitelist=ruok,srvr,mntr\n"
            "minSessionTimeout=400\nmaxSessionTimeout=120000\nmaxClientCnxns=0\n",
            z->dir, (unsigned)z->port);
    return fclose(f) == 0 ? 0 : -errno;
}

static int spawn(zk_server_t *z)
{
    char java[512], cfg[300], logp[300], cp[1024];
    if (find_java(java, sizeof java) < 0)
        return -ENOENT;
    snprintf(cfg, sizeof cfg, "%s/zoo.cfg", z->dir);
    snprintf(logp, sizeof logp, "%s/zk.log", z->dir);
    const char *binding = "";
    if (access("/usr/share/java/slf4j-simple.jar", R_OK) == 0)
        binding = ":/usr/share/java/slf4j-simple.jar";
    else if (access("/usr/share/java/slf4j-log4j12.jar", R_OK) == 0)
        binding = ":/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar";
    else if (access("/usr/share/java/slf4j-nop.jar", R_OK) == 0)
        binding = ":/usr/share/java/slf4j-nop.jar";
    snprintf(cp, sizeof cp, "%s:%s%s", ZK_CONF, ZK_JAR, binding);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        setsid();
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int fd = open(logp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (nul >= 0)
            dup2(nul, 0);
        /* Unblock everything the test may have blocked (the JVM relies on signals). */
        sigset_t all;
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        char *argv[] = {java,
                        "-Xmx256m",
                        "-XX:+UseSerialGC",
                        "-XX:TieredStopAtLevel=1",
                        "-Dzookeeper.jmx.log4j.disable=true",
                        "-cp",
                        cp,
                        "org.apache.zookeeper.server.quorum.QuorumPeerMain",
                        cfg,
                        NULL};
        execv(java, argv);
        _exit(127);
    }
    z->pid = pid;
    int64_t end = now_ms() + START_TIMEOUT_MS;
    while (now_ms() < end) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            z->pid = 0;
            return -ECHILD;
        }
        if (serving(z->port))
            return 0;
        sleep_ms(50);
    }
    zk_server_stop(z);
    return -ETIMEDOUT;
}

static int log_says_in_use(const zk_server_t *z)
{
    char path[300], line[1024];
    snprintf(path, sizeof path, "%s/zk.log", z->dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int found = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, "Address already in use"))
            found = 1;
    fclose(f);
    return found;
}

int zk_server_start(zk_server_t *z, const char *dir)
{
    memset(z, 0, sizeof *z);
    if (dir) {
        if (strlen(dir) >= sizeof z->dir - 16)
            return -ENAMETOOLONG;
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
            return -errno;
        snprintf(z->dir, sizeof z->dir, "%s", dir);
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(z->dir, sizeof z->dir, "%s/rill-zk.XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(z->dir))
            return -errno;
        z->own_dir = 1;
    }
    char data[300];
    snprintf(data, sizeof data, "%s/data", z->dir);
    if (mkdir(data, 0755) < 0 && errno != EEXIST)
        return -errno;
    int rc = -EADDRINUSE;
    for (int attempt = 0; attempt < 3; attempt++) {
        if ((rc = pick_port(&z->port)) < 0)
            return rc;
        snprintf(z->hosts, sizeof z->hosts, "127.0.0.1:%u", (unsigned)z->port);
        if ((rc = write_cfg(z)) < 0)
            return rc;
        rc = spawn(z);
        if (rc == 0)
            return 0;
        if (rc != -ECHILD || !log_says_in_use(z))
            break; /* a lost port race is retried */
    }
    fprintf(stderr, "  zk_util: the ZooKeeper server did not start (%s)\n", strerror(-rc));
    print_log_tail(z);
    return rc;
}

int zk_server_stop(zk_server_t *z)
{
    if (z->pid <= 0)
        return 0;
    kill(z->pid, SIGTERM);
    int64_t end = now_ms() + 3000;
    int st;
    for (;;) {
        pid_t r = waitpid(z->pid, &st, WNOHANG);
        if (r == z->pid || (r < 0 && errno == ECHILD))
            break;
        if (now_ms() >= end) {
            kill(z->pid, SIGKILL);
            while (waitpid(z->pid, &st, 0) < 0 && errno == EINTR) {
            }
            break;
        }
        sleep_ms(20);
    }
    z->pid = 0;
    return 0;
}

int zk_server_restart(zk_server_t *z)
{
    zk_server_stop(z);
    int rc = -EADDRINUSE;
    /* The old listening socket may linger briefly; the server sets SO_REUSEADDR, but retry
     * a few times anyway. */
    for (int attempt = 0; attempt < 5; attempt++) {
        rc = spawn(z);
        if (rc == 0)
            return 0;
        if (rc != -ECHILD)
            break;
        sleep_ms(300);
    }
    fprintf(stderr, "  zk_util: restart on port %u failed (%s)\n", (unsigned)z->port,
            strerror(-rc));
    print_log_tail(z);
    return rc;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void zk_server_destroy(zk_server_t *z)
{
    zk_server_stop(z);
    if (z->own_dir && z->dir[0] && !getenv("RILL_TEST_KEEP_ZK"))
        nftw(z->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    z->dir[0] = '\0';
}

const char *zk_server_connect_string(const zk_server_t *z)
{
    return z->hosts;
}

/* ------------------------------------------------------------ raw clients */

typedef struct conn_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int state; /* last session state seen */
    int seen;
} conn_wait_t;

static conn_wait_t *cw_new(void)
{
    conn_wait_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cv, &ca);
    pthread_condattr_destroy(&ca);
    return c;
}

static void cw_free(conn_wait_t *c)
{
    if (!c)
        return;
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* Runs on the client's completion thread: record the state, wake the waiter, nothing else. */
static void cw_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    (void)zh;
    (void)path;
    conn_wait_t *c = ctx;
    if (type != ZOO_SESSION_EVENT || !c)
        return;
    pthread_mutex_lock(&c->mu);
    c->state = state;
    c->seen++;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* Waits until the handle is connected, or a terminal state. Returns the state. */
static int cw_wait(conn_wait_t *c, int timeout_ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&c->mu);
    while (c->state != ZOO_CONNECTED_STATE && c->state != ZOO_EXPIRED_SESSION_STATE &&
           c->state != ZOO_AUTH_FAILED_STATE) {
        if (pthread_cond_timedwait(&c->cv, &c->mu, &dl) == ETIMEDOUT)
            break;
    }
    int st = c->state;
    pthread_mutex_unlock(&c->mu);
    return st;
}

static pthread_mutex_t raw_mu = PTHREAD_MUTEX_INITIALIZER;
/* Handles and their waiters, so zk_raw_close frees the waiter after zookeeper_close. */
static struct {
    zhandle_t *zh;
    conn_wait_t *cw;
} raw_tab[32];

zhandle_t *zk_raw_connect(const char *hosts, int timeout_ms, const char *auth)
{
    conn_wait_t *cw = cw_new();
    if (!cw)
        return NULL;
    zhandle_t *zh = zookeeper_init(hosts, cw_watcher, 10000, NULL, cw, 0);
    if (!zh) {
        fprintf(stderr, "  zk_util: zookeeper_init(%s): %s\n", hosts, strerror(errno));
        cw_free(cw);
        return NULL;
    }
    int st = cw_wait(cw, timeout_ms);
    if (st != ZOO_CONNECTED_STATE) {
        fprintf(stderr, "  zk_util: raw client not connected to %s after %d ms (state %d)\n", hosts,
                timeout_ms, st);
        zookeeper_close(zh);
        cw_free(cw);
        return NULL;
    }
    if (auth) {
        /* zoo_add_auth is async; a sync call after it is ordered behind it. */
        int rc = zoo_add_auth(zh, "digest", auth, (int)strlen(auth), NULL, NULL);
        struct Stat stat;
        if (rc == ZOK)
            rc = zoo_exists(zh, "/", 0, &stat);
        if (rc != ZOK) {
            fprintf(stderr, "  zk_util: adding digest auth failed: %s\n", zk_code_name(rc));
            zookeeper_close(zh);
            cw_free(cw);
            return NULL;
        }
    }
    pthread_mutex_lock(&raw_mu);
    for (size_t i = 0; i < sizeof raw_tab / sizeof raw_tab[0]; i++) {
        if (!raw_tab[i].zh) {
            raw_tab[i].zh = zh;
            raw_tab[i].cw = cw;
            cw = NULL;
            break;
        }
    }
    pthread_mutex_unlock(&raw_mu);
    if (cw) {
        /* table full: leak the small waiter rather than free it under a live handle */
        fprintf(stderr, "  zk_util: too many raw handles\n");
    }
    return zh;
}

void zk_raw_close(zhandle_t *zh)
{
    if (!zh)
        return;
    zookeeper_close(zh);
    pthread_mutex_lock(&raw_mu);
    for (size_t i = 0; i < sizeof raw_tab / sizeof raw_tab[0]; i++) {
        if (raw_tab[i].zh == zh) {
            cw_free(raw_tab[i].cw);
            raw_tab[i].zh = NULL;
            raw_tab[i].cw = NULL;
        }
    }
    pthread_mutex_unlock(&raw_mu);
}

int zk_expire_session(const char *hosts, int64_t session_id, const char passwd[16], int timeout_ms)
{
    conn_wait_t *cw = cw_new();
    if (!cw)
        return -ENOMEM;
    clientid_t cid;
    memset(&cid, 0, sizeof cid);
    cid.client_id = session_id;
    memcpy(cid.passwd, passwd, sizeof cid.passwd);
    zhandle_t *zh = zookeeper_init(hosts, cw_watcher, 10000, &cid, cw, 0);
    if (!zh) {
        int e = errno;
        cw_free(cw);
        return e ? -e : -EIO;
    }
    int st = cw_wait(cw, timeout_ms);
    int rc = 0;
    if (st == ZOO_CONNECTED_STATE) {
        const clientid_t *got = zoo_client_id(zh);
        if (!got || got->client_id != session_id) {
            fprintf(stderr, "  zk_util: second handle got session 0x%llx, not 0x%llx\n",
                    got ? (unsigned long long)got->client_id : 0ull,
                    (unsigned long long)session_id);
            rc = -EIO;
        }
    } else if (st == ZOO_EXPIRED_SESSION_STATE) {
        rc = -EIO;
    } else {
        rc = -ETIMEDOUT;
    }
    zookeeper_close(zh); /* sends closeSession: the session ends for its first owner too */
    cw_free(cw);
    return rc;
}

int zk_create_path(zhandle_t *zh, const char *path, const char *data, int len, int mode)
{
    char buf[512];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf || path[0] != '/')
        return ZBADARGUMENTS;
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int rc = zoo_create(zh, buf, NULL, -1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0);
        *p = '/';
        if (rc != ZOK && rc != ZNODEEXISTS)
            return rc;
    }
    return zoo_create(zh, path, data, data ? len : -1, &ZOO_OPEN_ACL_UNSAFE, mode, NULL, 0);
}

const char *zk_code_name(int rc)
{
    switch (rc) {
    case ZOK:
        return "ZOK";
    case ZSYSTEMERROR:
        return "ZSYSTEMERROR";
    case ZRUNTIMEINCONSISTENCY:
        return "ZRUNTIMEINCONSISTENCY";
    case ZDATAINCONSISTENCY:
        return "ZDATAINCONSISTENCY";
    case ZCONNECTIONLOSS:
        return "ZCONNECTIONLOSS";
    case ZMARSHALLINGERROR:
        return "ZMARSHALLINGERROR";
    case ZUNIMPLEMENTED:
        return "ZUNIMPLEMENTED";
    case ZOPERATIONTIMEOUT:
        return "ZOPERATIONTIMEOUT";
    case ZBADARGUMENTS:
        return "ZBADARGUMENTS";
    case ZINVALIDSTATE:
        return "ZINVALIDSTATE";
    case ZAPIERROR:
        return "ZAPIERROR";
    case ZNONODE:
        return "ZNONODE";
    case ZNOAUTH:
        return "ZNOAUTH";
    case ZBADVERSION:
        return "ZBADVERSION";
    case ZNOCHILDRENFOREPHEMERALS:
        return "ZNOCHILDRENFOREPHEMERALS";
    case ZNODEEXISTS:
        return "ZNODEEXISTS";
    case ZNOTEMPTY:
        return "ZNOTEMPTY";
    case ZSESSIONEXPIRED:
        return "ZSESSIONEXPIRED";
    case ZINVALIDCALLBACK:
        return "ZINVALIDCALLBACK";
    case ZINVALIDACL:
        return "ZINVALIDACL";
    case ZAUTHFAILED:
        return "ZAUTHFAILED";
    case ZCLOSING:
        return "ZCLOSING";
    case ZNOTHING:
        return "ZNOTHING";
    case ZSESSIONMOVED:
        return "ZSESSIONMOVED";
    default:
        return "Z?";
    }
}
