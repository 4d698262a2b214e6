/* rill-worker: a standalone rill worker with the built-in computations, for benchmarks,
 * demos and as a template. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rill/rill.h>

#include "../../core/stats/counters.h" /* the counter table: the stats line's tokens */
#include "builtins.h"
#include "notify.h"
#include "wlog.h"

static const char usage[] =
    "usage: rill-worker [options]\n"
    "\n"
    "Runs a rill worker: accepts framed messages on TCP listeners, dispatches them to the\n"
    "built-in computations and sends their output to a sink.\n"
    "\n"
    "Built-in computations:\n"
    "  1  passthrough  every message to the sink unchanged; stateless, so it runs on\n"
    "                  the loop thread that read the message (in order per connection)\n"
    "  2  count        a counter per key; emits (comp id 2, key, running count as decimal\n"
    "                  text) every --count-every messages of a key, on each flush and at\n"
    "                  shutdown (keys whose count changed since their last emission);\n"
    "                  its counts are managed state (docs/state.md): in a cluster they\n"
    "                  move with their keys when members join or leave\n"
    "\n"
    "Options:\n"
    "  --listen ADDR[,framing=rill|lp|line][,comp=ID][,key=K]\n"
    "                      accept connections on ADDR (HOST:PORT; port 0 picks a free port).\n"
    "                      Repeatable. framing: rill = v1 frames (u32 length, u32 comp id,\n"
    "                      u64 key, payload; default), lp = u32 length + payload, line =\n"
    "                      newline-terminated text; lp and line deliver every message to\n"
    "                      computation ID (default 1) with key K (default: hash of the\n"
    "                      payload). Default: 127.0.0.1:7700\n"
    "  --sink ADDR[,delivery=best-effort|acked]\n"
    "                      connect to ADDR (HOST:PORT) and send output frames there (one\n"
    "                      connection per loop thread, reconnecting with backoff). Without\n"
    "                      it the computations run and their output is discarded.\n"
    "                      delivery=acked: an acknowledged stream (HELLO / WELCOME / ACK,\n"
    "                      docs/protocol.md); frames stay retained until the sink\n"
    "                      acknowledges them and are sent again after a reconnect\n"
    "  --threads N         loop threads, each with its own io_uring (1..64, default 1)\n"
    "  --max-frame BYTES   largest v1 length field (default 1048576): payloads of every\n"
    "                      framing are at most BYTES - 12; a longer one closes its\n"
    "                      connection as a protocol error\n"
    "  --count-every N     count: emit a key's count every N of its messages (default 0 =\n"
    "                      only on flush and at shutdown)\n"
    "  --flush-ms MS       run every computation's flush each MS milliseconds (default 0 =\n"
    "                      only at shutdown)\n"
    "  --busy-wait-us US   batching under load: once an iteration handled 4 or more\n"
    "                      completions, wait up to US microseconds for as many again\n"
    "                      (fewer, larger iterations: less CPU per frame, up to US more\n"
    "                      latency while busy; 0..10000, default 0 = off)\n"
    "  --max-conns N       most source connections open at once (default 10000); more are\n"
    "                      closed right after accept and counted (refused=)\n"
    "  --idle-timeout-ms MS  close a connection that stopped inside a frame for MS ms\n"
    "                      (default 30000, 0 = never; counted as idle=)\n"
    "  --sink-buffer BYTES output bytes queued per loop for the sink (default 67108864);\n"
    "                      above half of it the loop stops reading its sources until the\n"
    "                      sink catches up (backpressure; counted as paused=)\n"
    "  --carry-budget BYTES  bytes all source connections together may hold in partial\n"
    "                      frames (default 268435456); above it the connections with\n"
    "                      the largest partial frames are closed (counted as carry=)\n"
    "  --source-credit BYTES  acked sources (connections that begin with HELLO): bytes of\n"
    "                      frames each may have unacknowledged (default 4194304). A frame\n"
    "                      is acknowledged once it ran and acked sinks acknowledged its\n"
    "                      output; resent frames that already ran are skipped\n"
    "  --source-credit-pool BYTES  credit few acked connections share: each gets\n"
    "                      max(source credit, pool / open acked connections), so one\n"
    "                      connection keeps a longer pipeline busy (default 4 x the\n"
    "                      source credit; 0: no sharing)\n"
    "  --dead-letter       send frames for unknown computation ids to the sink unchanged\n"
    "                      instead of dropping them (they are counted either way)\n"
    "  Cluster flags (--zk to --zk-auth-file) need a rill-worker built with cluster support\n"
    "  (CMake option RILL_CLUSTER, on by default); without it each exits with status 2:\n"
    "  --zk HOSTS          join a cluster coordinated by ZooKeeper at HOSTS\n"
    "                      (host:port[,host:port...]); frames are routed to the member that\n"
    "                      owns their key (rendezvous hashing over the members)\n"
    "  --cluster-root PATH the cluster's znode path (default /rill/default)\n"
    "  --worker-id ID      this worker's member name ([A-Za-z0-9_.-], default generated)\n"
    "  --peer-listen ADDR  where other members send forwarded frames (default\n"
    "                      127.0.0.1:0; must be reachable by them)\n"
    "  --peer-advertise ADDR  the address other members are told to use instead (NAT,\n"
    "                      mapped container ports, a proxy)\n"
    "  --source-advertise ADDR  the source address this worker publishes: when another\n"
    "                      member leaves, its GOAWAY may send acked sources here (default:\n"
    "                      the first --listen's address and port, a wildcard host replaced\n"
    "                      by the peer address's host)\n"
    "  --session-timeout-ms MS  ZooKeeper session timeout (default 10000)\n"
    "  --key-groups N      key groups of the cluster, 1..65536 (default 4096): members own\n"
    "                      groups of keys; the first member to join the root sets the\n"
    "                      number, the others use it\n"
    "  --zk-auth-file PATH digest credentials 'user:password' for the cluster's znodes, read\n"
    "                      from PATH (or from the environment variable RILL_ZK_AUTH); never\n"
    "                      logged. The znodes then only let that identity change them.\n"
    "  --metrics ADDR      serve counters at http://ADDR/metrics (Prometheus text format)\n"
    "                      and the probes /healthz (200 while it answers) and /readyz\n"
    "                      (200 when ready: loops running, the sink connected, a member\n"
    "                      of the cluster view; 503 and the reason when not)\n"
    "  --quiet             no stats line each second\n"
    "  --log-format text|logfmt|json  how log lines look (default text: 'rill-worker: ...'\n"
    "                      and the library's 'rill: ...'); logfmt: ts=... level=... src=...\n"
    "                      msg=\"...\" with the stats as fields (in=N in_rate=R ...); json: one\n"
    "                      object per line with the same keys\n"
    "  --log-level error|warning|info  drop lines below it (default info)\n"
    "  --version           print the version and exit\n"
    "  --help              this text\n"
    "\n"
    "Output on stderr: one 'rill-worker: listening on HOST:PORT framing=F' line per\n"
    "listener, then 'rill-worker: ready', then a stats line each second:\n"
    "  in, out (messages and rate), conns (open), and the error counters short / long\n"
    "  (frame length below 12 / above max-frame), midframe (connection closed inside a\n"
    "  frame), conn_err, unknown (unregistered computation id), comp_err (messages in\n"
    "  failed batches), dropped (frames for the sink that could not be queued or sent),\n"
    "  sink_err, refused (connections beyond --max-conns), idle (closed by\n"
    "  --idle-timeout-ms), paused (times the sources were paused for backpressure);\n"
    "  clustered: fwd (frames forwarded to their owner), peer_in, misrouted, rerouted,\n"
    "  zk_err; then peer_dropped (frames for another member that were dropped) and\n"
    "  handoff_dropped (frames between loops dropped for lack of memory), carry\n"
    "  (connections closed over --carry-budget), resent (frames an acked sink link sent\n"
    "  again), acked_in / dup_skipped (frames from acked sources that ran / that had\n"
    "  already run), acked_conns; with managed state (count): state (bytes), groups\n"
    "  (owned), moved (sent to a new owner), lost_groups, promoted (standby copies that\n"
    "  took over), fenced (times the ZooKeeper session may have been lost) and waiting\n"
    "  (groups holding frames back for their state). Each cluster view change is logged as\n"
    "  'rill-worker: view epoch=N members=a,b,c self=a'.\n"
    "SIGINT or SIGTERM: stop accepting, process what was received, flush, send what is\n"
    "queued (up to 5 s), print final stats and exit 0, or 3 when the drain dropped\n"
    "frames (sink_dropped, peer_dropped, handoff_dropped). Acked sources get GOAWAY and\n"
    "are closed once what they sent is acknowledged. A second SIGINT or SIGTERM during\n"
    "the drain exits at once with 128 + the signal number (130, 143).\n"
    "Under a service manager that sets NOTIFY_SOCKET (systemd Type=notify): READY=1 once\n"
    "every listener is bound and the loops run, STOPPING=1 when the drain begins.\n"
    "Exit status: 0 clean, 1 cannot start, 2 bad arguments, 3 the drain dropped frames.\n";

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || end == s || *end || s[0] == '-')
        return -1;
    *out = v;
    return 0;
}

static const char *framing_name(rill_framing_t f)
{
    return f == RILL_FRAMING_LP ? "lp" : f == RILL_FRAMING_LINE ? "line" : "rill";
}

typedef struct listen_spec {
    char addr[256];
    rill_framing_t framing;
    uint32_t comp;
    int has_key;
    uint64_t key;
} listen_spec_t;

/* "ADDR[,framing=..][,comp=..][,key=..]" */
static int parse_listen(const char *arg, listen_spec_t *ls)
{
    memset(ls, 0, sizeof *ls);
    ls->framing = RILL_FRAMING_RILL;
    ls->comp = BUILTIN_PASSTHROUGH_ID;
    char buf[512];
    if (strlen(arg) >= sizeof buf)
        return -1;
    strcpy(buf, arg);
    char *save = NULL;
    char *tok = strtok_r(buf, ",", &save);
    if (!tok || strlen(tok) >= sizeof ls->addr)
        return -1;
    strcpy(ls->addr, tok);
    while ((tok = strtok_r(NULL, ",", &save))) {
        uint64_t v;
        if (strncmp(tok, "framing=", 8) == 0) {
            const char *f = tok + 8;
            if (!strcmp(f, "rill"))
                ls->framing = RILL_FRAMING_RILL;
            else if (!strcmp(f, "lp"))
                ls->framing = RILL_FRAMING_LP;
            else if (!strcmp(f, "line"))
                ls->framing = RILL_FRAMING_LINE;
            else
                return -1;
        } else if (strncmp(tok, "comp=", 5) == 0 && parse_u64(tok + 5, &v) == 0 &&
                   v <= UINT32_MAX) {
            ls->comp = (uint32_t)v;
        } else if (strncmp(tok, "key=", 4) == 0 && parse_u64(tok + 4, &v) == 0) {
            ls->has_key = 1;
            ls->key = v;
        } else {
            return -1;
        }
    }
    return 0;
}

/* The stats line shows every counter whose row in the counter table has a token, in table
 * order; in= and out= also carry their rate since the previous line. */
static const struct line_counter {
    const char *token;
    size_t off;
} line_counters[] = {
#define LINE_COUNTER_(name, kind, source, line, metric, help) {line, offsetof(rill_stats_t, name)},
    RILL__COUNTERS(LINE_COUNTER_)
#undef LINE_COUNTER_
};

static uint64_t stat_at(const rill_stats_t *s, size_t off)
{
    uint64_t v;
    memcpy(&v, (const char *)s + off, sizeof v);
    return v;
}

static void print_stats(const rill_stats_t *s, const rill_stats_t *prev, double secs,
                        const char *tag)
{
    char line[2048];
    /* The same numbers as fields for logfmt and json, rates as TOKEN_rate. */
    enum { NLINE = sizeof line_counters / sizeof line_counters[0] };
    wlog_field_t f[NLINE + 2];
    char rate_key[2][32];
    unsigned nf = 0, nr = 0;
    size_t len = (size_t)snprintf(line, sizeof line, "%s", tag);
    for (size_t i = 0; i < NLINE; i++) {
        const struct line_counter *c = &line_counters[i];
        if (!c->token[0] || len >= sizeof line)
            continue;
        uint64_t v = stat_at(s, c->off);
        len += (size_t)snprintf(line + len, sizeof line - len, " %s=%" PRIu64, c->token, v);
        f[nf++] = (wlog_field_t){c->token, v};
        if (len < sizeof line && (c->off == offsetof(rill_stats_t, msgs_in) ||
                                  c->off == offsetof(rill_stats_t, msgs_out))) {
            double rate = secs > 0 ? (double)(v - stat_at(prev, c->off)) / secs : 0;
            len += (size_t)snprintf(line + len, sizeof line - len, " (%.0f/s)", rate);
            snprintf(rate_key[nr], sizeof rate_key[nr], "%s_rate", c->token);
            f[nf++] = (wlog_field_t){rate_key[nr++], (uint64_t)(rate + 0.5)};
        }
    }
    wlog_fields(line, tag, f, nf);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Cluster credentials from a file (first line) or RILL_ZK_AUTH: returns 1 when found, 0
 * when none was given, -1 on error (reported). Never printed. */
static int read_auth(const char *path, char *out, size_t size)
{
    if (!path) {
        const char *env = getenv("RILL_ZK_AUTH");
        if (!env || !*env)
            return 0;
        if (strlen(env) >= size) {
            fprintf(stderr, "rill-worker: RILL_ZK_AUTH is too long\n");
            return -1;
        }
        strcpy(out, env);
        return 1;
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "rill-worker: cannot read --zk-auth-file '%s': %s\n", path,
                strerror(errno));
        return -1;
    }
    int ok = fgets(out, (int)size, f) != NULL;
    fclose(f);
    if (!ok) {
        fprintf(stderr, "rill-worker: --zk-auth-file '%s' is empty\n", path);
        return -1;
    }
    out[strcspn(out, "\r\n")] = '\0';
    return 1;
}

/* Runs on loop 0 at each view change: one line, as operators and tests read it. */
static void log_view(uintptr_t ctx, const rill_view_t *v)
{
    (void)ctx;
    char line[4096];
    size_t off = 0;
    unsigned n = rill_view_size(v);
    for (unsigned i = 0; i < n && off < sizeof line - 80; i++)
        off += (size_t)snprintf(line + off, sizeof line - off, "%s%s", i ? "," : "",
                                rill_view_member(v, i));
    line[off] = '\0';
    int self = rill_view_self(v);
    wlog(RILL_LOG_INFO, "view epoch=%llu members=%s self=%s",
         (unsigned long long)rill_view_epoch(v), n ? line : "-",
         self >= 0 ? rill_view_member(v, (unsigned)self) : "-");
}

static int fail(const char *what, const char *arg, int rc)
{
    fprintf(stderr, "rill-worker: %s '%s': %s\n", what, arg, rill_strerror(rc));
    return 2;
}

/* A cluster flag of a rill-worker built without cluster support (RILL_CLUSTER=OFF): said
 * at once, not as a worker that runs and never meets the other members. */
static int no_cluster(const char *flag)
{
    fprintf(stderr,
            "rill-worker: --%s: this rill-worker was built without cluster support "
            "(RILL_CLUSTER=OFF)\n",
            flag);
    return 2;
}

/* Exit statuses besides 0 (a clean run), 1 (cannot start) and 2 (bad arguments). */
#define EXIT_DRAIN_DROPPED 3 /* the drain after SIGINT / SIGTERM dropped frames */
/* A second SIGINT / SIGTERM during the drain: 128 + the signal, as a shell reports it. */

static uint64_t dropped_total(const rill_stats_t *st)
{
    return st->sink_dropped + st->peer_dropped + st->handoff_dropped;
}

/* Runs during the drain: a second SIGINT or SIGTERM ends the process at once. */
static void *second_signal(void *arg)
{
    int sig;
    if (sigwait((const sigset_t *)arg, &sig) == 0) {
        wlog(RILL_LOG_WARNING, "second signal: exiting without finishing the drain");
        _exit(128 + sig);
    }
    return NULL;
}

/* A numeric option's bad value: not a number at all, or outside the option's range. */
static int fail_num(const char *what, const char *arg)
{
    uint64_t v;
    fprintf(stderr, "rill-worker: %s '%s': %s\n", what, arg,
            parse_u64(arg, &v) < 0 ? "not a number (decimal, 0x hex or 0 octal)"
                                   : "value out of range");
    return 2;
}

#if defined(__SANITIZE_ADDRESS__)
/* In sanitizer builds: libzookeeper_mt 3.8.0's zookeeper_close() leaks the fake responses
 * it makes for requests still in flight (ZOOKEEPER-2894). Only frames inside that library
 * are suppressed. */
__attribute__((visibility("default"))) const char *__lsan_default_suppressions(void);
__attribute__((visibility("default"))) const char *__lsan_default_suppressions(void)
{
    return "leak:libzookeeper_mt.so\n";
}
#endif

/* Early exits free the config (sanitizer builds check for leaks on every exit). */
#define BAIL(code)                                                                                 \
    do {                                                                                           \
        rill_config_destroy(cfg);                                                                  \
        return (code);                                                                             \
    } while (0)

int main(int argc, char **argv)
{
    enum {
        O_LISTEN = 256,
        O_SINK,
        O_THREADS,
        O_MAXFRAME,
        O_COUNTEVERY,
        O_FLUSH,
        O_BUSYWAIT,
        O_DEAD,
        O_QUIET,
        O_LOG_FORMAT,
        O_LOG_LEVEL,
        O_VERSION,
        O_HELP,
        O_MAXCONNS,
        O_IDLE,
        O_SINKBUF,
        O_ZK,
        O_ROOT,
        O_ID,
        O_PEER,
        O_SESSION,
        O_KEY_GROUPS,
        O_AUTHFILE,
        O_METRICS,
        O_CARRY,
        O_CREDIT,
        O_CREDIT_POOL,
        O_ADVERTISE,
        O_SOURCE_ADVERTISE
    };
    static const struct option opts[] = {
        {"listen", required_argument, 0, O_LISTEN},
        {"sink", required_argument, 0, O_SINK},
        {"threads", required_argument, 0, O_THREADS},
        {"max-frame", required_argument, 0, O_MAXFRAME},
        {"count-every", required_argument, 0, O_COUNTEVERY},
        {"flush-ms", required_argument, 0, O_FLUSH},
        {"busy-wait-us", required_argument, 0, O_BUSYWAIT},
        {"dead-letter", no_argument, 0, O_DEAD},
        {"max-conns", required_argument, 0, O_MAXCONNS},
        {"idle-timeout-ms", required_argument, 0, O_IDLE},
        {"sink-buffer", required_argument, 0, O_SINKBUF},
        {"carry-budget", required_argument, 0, O_CARRY},
        {"source-credit", required_argument, 0, O_CREDIT},
        {"source-credit-pool", required_argument, 0, O_CREDIT_POOL},
        {"zk", required_argument, 0, O_ZK},
        {"cluster-root", required_argument, 0, O_ROOT},
        {"worker-id", required_argument, 0, O_ID},
        {"peer-listen", required_argument, 0, O_PEER},
        {"peer-advertise", required_argument, 0, O_ADVERTISE},
        {"source-advertise", required_argument, 0, O_SOURCE_ADVERTISE},
        {"session-timeout-ms", required_argument, 0, O_SESSION},
        {"key-groups", required_argument, 0, O_KEY_GROUPS},
        {"zk-auth-file", required_argument, 0, O_AUTHFILE},
        {"metrics", required_argument, 0, O_METRICS},
        {"quiet", no_argument, 0, O_QUIET},
        {"log-format", required_argument, 0, O_LOG_FORMAT},
        {"log-level", required_argument, 0, O_LOG_LEVEL},
        {"version", no_argument, 0, O_VERSION},
        {"help", no_argument, 0, O_HELP},
        {0, 0, 0, 0},
    };
    rill_config_t *cfg = rill_config_new();
    if (!cfg)
        return 1;
    listen_spec_t listens[16];
    unsigned nlistens = 0;
    const char *sink = NULL;
    uint64_t count_every = 0, v;
    int dead_letter = 0, quiet = 0, rc;
    const char *zk = NULL, *root = "/rill/default", *worker_id = NULL;
    const char *peer = "127.0.0.1:0", *auth_file = NULL;
    int c, opt_index;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, &opt_index)) != -1) {
        /* The cluster flags, in a build that cannot cluster: refused before their values
         * are looked at. */
        switch (c) {
        case O_ZK:
        case O_ROOT:
        case O_ID:
        case O_PEER:
        case O_ADVERTISE:
        case O_SOURCE_ADVERTISE:
        case O_SESSION:
        case O_KEY_GROUPS:
        case O_AUTHFILE:
            if (!(rill_features() & RILL_FEATURE_CLUSTER))
                BAIL(no_cluster(opts[opt_index].name));
            break;
        default:
            break;
        }
        switch (c) {
        case O_LISTEN:
            if (nlistens == 16 || parse_listen(optarg, &listens[nlistens]) < 0) {
                fprintf(stderr,
                        "rill-worker: bad --listen '%s' (expected "
                        "ADDR[,framing=rill|lp|line][,comp=ID][,key=K])\n",
                        optarg);
                BAIL(2);
            }
            nlistens++;
            break;
        case O_SINK:
            sink = optarg;
            break;
        case O_THREADS:
            if (parse_u64(optarg, &v) < 0 || (rc = rill_config_set_threads(cfg, (unsigned)v)) < 0 ||
                v > 64)
                BAIL(fail_num("bad --threads", optarg));
            break;
        case O_MAXFRAME:
            if (parse_u64(optarg, &v) < 0 || v > UINT32_MAX ||
                (rc = rill_config_set_max_frame(cfg, (uint32_t)v)) < 0)
                BAIL(fail_num("bad --max-frame", optarg));
            break;
        case O_COUNTEVERY:
            if (parse_u64(optarg, &count_every) < 0)
                BAIL(fail_num("bad --count-every", optarg));
            break;
        case O_FLUSH:
            if (parse_u64(optarg, &v) < 0 || v > UINT32_MAX ||
                (rc = rill_config_set_flush_interval_ms(cfg, (unsigned)v)) < 0)
                BAIL(fail_num("bad --flush-ms", optarg));
            break;
        case O_BUSYWAIT:
            if (parse_u64(optarg, &v) < 0 || v > UINT32_MAX ||
                (rc = rill_config_set_busy_wait_us(cfg, (unsigned)v)) < 0)
                BAIL(fail_num("bad --busy-wait-us", optarg));
            break;
        case O_DEAD:
            dead_letter = 1;
            break;
        case O_MAXCONNS:
            if (parse_u64(optarg, &v) < 0 || v > UINT32_MAX ||
                rill_config_set_max_conns(cfg, (unsigned)v) < 0)
                BAIL(fail_num("bad --max-conns", optarg));
            break;
        case O_IDLE:
            if (parse_u64(optarg, &v) < 0 || v > UINT32_MAX ||
                rill_config_set_idle_timeout_ms(cfg, (unsigned)v) < 0)
                BAIL(fail_num("bad --idle-timeout-ms", optarg));
            break;
        case O_ZK:
            zk = optarg;
            break;
        case O_ROOT:
            root = optarg;
            break;
        case O_ID:
            worker_id = optarg;
            break;
        case O_PEER:
            peer = optarg;
            break;
        case O_ADVERTISE:
            if ((rc = rill_config_set_peer_advertise(cfg, optarg)) < 0)
                BAIL(fail("bad --peer-advertise address", optarg, rc));
            break;
        case O_SOURCE_ADVERTISE:
            if ((rc = rill_config_set_source_advertise(cfg, optarg)) < 0)
                BAIL(fail("bad --source-advertise address", optarg, rc));
            break;
        case O_SESSION:
            if (parse_u64(optarg, &v) < 0 || v > UINT32_MAX ||
                rill_config_set_session_timeout_ms(cfg, (unsigned)v) < 0)
                BAIL(fail_num("bad --session-timeout-ms", optarg));
            break;
        case O_KEY_GROUPS:
            if (parse_u64(optarg, &v) < 0 || v > UINT32_MAX ||
                rill_config_set_key_groups(cfg, (unsigned)v) < 0)
                BAIL(fail_num("bad --key-groups (1..65536)", optarg));
            break;
        case O_AUTHFILE:
            auth_file = optarg;
            break;
        case O_METRICS:
            if ((rc = rill_config_set_metrics_listener(cfg, optarg)) < 0)
                BAIL(fail("bad --metrics address", optarg, rc));
            break;
        case O_SINKBUF:
            if (parse_u64(optarg, &v) < 0 || rill_config_set_sink_buffer(cfg, (size_t)v) < 0)
                BAIL(fail_num("bad --sink-buffer", optarg));
            break;
        case O_CARRY:
            if (parse_u64(optarg, &v) < 0 || rill_config_set_carry_budget(cfg, (size_t)v) < 0)
                BAIL(fail_num("bad --carry-budget", optarg));
            break;
        case O_CREDIT:
            if (parse_u64(optarg, &v) < 0 || v > UINT32_MAX ||
                rill_config_set_source_credit(cfg, (uint32_t)v) < 0)
                BAIL(fail_num("bad --source-credit", optarg));
            break;
        case O_CREDIT_POOL:
            if (parse_u64(optarg, &v) < 0 || rill_config_set_source_credit_pool(cfg, v) < 0)
                BAIL(fail_num("bad --source-credit-pool", optarg));
            break;
        case O_LOG_FORMAT:
            if (wlog_set_format(optarg) < 0) {
                fprintf(stderr, "rill-worker: bad --log-format '%s': text, logfmt or json\n",
                        optarg);
                BAIL(2);
            }
            break;
        case O_LOG_LEVEL:
            if (wlog_set_level(optarg) < 0) {
                fprintf(stderr, "rill-worker: bad --log-level '%s': error, warning or info\n",
                        optarg);
                BAIL(2);
            }
            break;
        case O_QUIET:
            quiet = 1;
            break;
        case O_VERSION:
            printf("rill-worker %s\n", rill_version_string());
            BAIL(0);
        case O_HELP:
            fputs(usage, stdout);
            if (!(rill_features() & RILL_FEATURE_CLUSTER))
                fputs("This rill-worker was built without cluster support (RILL_CLUSTER=OFF): "
                      "the cluster flags\nexit with status 2.\n",
                      stdout);
            BAIL(0);
        default:
            fprintf(stderr, "rill-worker: unknown or incomplete option '%s' (see --help)\n",
                    argv[optind - 1]);
            BAIL(2);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "rill-worker: unexpected argument '%s' (see --help)\n", argv[optind]);
        BAIL(2);
    }
    if (nlistens == 0) {
        parse_listen("127.0.0.1:7700", &listens[0]);
        nlistens = 1;
    }
    for (unsigned i = 0; i < nlistens; i++) {
        rc = rill_config_add_listener(cfg, listens[i].addr, listens[i].framing, listens[i].comp,
                                      listens[i].has_key, listens[i].key);
        if (rc < 0)
            BAIL(fail("bad --listen address", listens[i].addr, rc));
    }
    int sink_idx = -1;
    if (sink) {
        /* ADDR[,delivery=best-effort|acked] */
        char sink_addr[512];
        rill_delivery_t delivery = RILL_DELIVERY_BEST_EFFORT;
        snprintf(sink_addr, sizeof sink_addr, "%s", sink);
        char *opt = strchr(sink_addr, ',');
        if (opt) {
            *opt++ = '\0';
            if (!strcmp(opt, "delivery=acked"))
                delivery = RILL_DELIVERY_ACKED;
            else if (strcmp(opt, "delivery=best-effort") != 0) {
                fprintf(stderr,
                        "rill-worker: bad --sink '%s' (expected "
                        "ADDR[,delivery=best-effort|acked])\n",
                        sink);
                BAIL(2);
            }
        }
        sink_idx = rill_config_add_sink(cfg, sink_addr);
        if (sink_idx < 0)
            BAIL(fail("bad --sink address", sink_addr, sink_idx));
        rill_config_set_sink_delivery(cfg, sink_idx, delivery);
        if (dead_letter)
            rill_config_set_dead_letter_sink(cfg, sink_idx);
    } else if (dead_letter) {
        fprintf(stderr, "rill-worker: --dead-letter needs --sink\n");
        BAIL(2);
    }
    if (zk) {
        if ((rc = rill_config_set_cluster(cfg, zk, root, worker_id, peer)) < 0) {
            fprintf(stderr,
                    "rill-worker: bad cluster settings (--zk '%s', --cluster-root '%s', "
                    "--worker-id, --peer-listen '%s'): %s\n",
                    zk, root, peer, rill_strerror(rc));
            BAIL(2);
        }
        char auth[256];
        if ((rc = read_auth(auth_file, auth, sizeof auth)) < 0)
            BAIL(2);
        if (rc > 0 && rill_config_set_cluster_auth(cfg, auth) < 0) {
            fprintf(stderr, "rill-worker: the cluster credentials must read user:password\n");
            explicit_bzero(auth, sizeof auth);
            BAIL(2);
        }
        explicit_bzero(auth, sizeof auth);
        rill_config_set_view_cb(cfg, log_view, 0);
    } else if (auth_file || worker_id) {
        fprintf(stderr, "rill-worker: --zk-auth-file and --worker-id need --zk\n");
        BAIL(2);
    }

    /* Signals are taken synchronously by the main thread; loop threads inherit the mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    wlog_route_library(); /* the library's lines in the same format */
    rill_worker_t *w;
    rc = rill_worker_new(&w, cfg);
    rill_config_destroy(cfg);
    if (rc < 0) {
        wlog(RILL_LOG_ERROR, "cannot create the worker: %s", rill_strerror(rc));
        return 1;
    }
    if ((rc = builtins_register(w, sink_idx, count_every)) < 0) {
        wlog(RILL_LOG_ERROR, "cannot register computations: %s", rill_strerror(rc));
        rill_worker_destroy(w);
        return 1;
    }
    for (unsigned i = 0; i < nlistens; i++) {
        char host[256];
        strcpy(host, listens[i].addr);
        char *colon = strrchr(host, ':');
        if (colon)
            *colon = '\0';
        wlog(RILL_LOG_INFO, "listening on %s:%d framing=%s", host, rill_worker_listener_port(w, i),
             framing_name(listens[i].framing));
    }
    if ((rc = rill_worker_start(w)) < 0) {
        wlog(RILL_LOG_ERROR, "cannot start: %s", rill_strerror(rc));
        rill_worker_destroy(w);
        return 1;
    }
    if (rill_worker_metrics_port(w) > 0)
        wlog(RILL_LOG_INFO, "metrics on port %d", rill_worker_metrics_port(w));
    wlog(RILL_LOG_INFO, "ready (%u loop thread%s%s%s)", rill_worker_threads(w),
         rill_worker_threads(w) == 1 ? "" : "s", sink ? ", sink " : "", sink ? sink : "");
    notify_service("READY=1\nSTATUS=serving");

    rill_stats_t prev, cur;
    memset(&prev, 0, sizeof prev);
    double t_prev = now_s(), t_start = t_prev;
    struct timespec tick = {1, 0};
    int sig;
    for (;;) {
        sig = sigtimedwait(&sigs, NULL, &tick);
        if (sig == SIGINT || sig == SIGTERM)
            break;
        double t = now_s();
        if (t - t_prev < 0.5)
            continue;
        rill_worker_stats(w, &cur, sizeof cur);
        if (!quiet)
            print_stats(&cur, &prev, t - t_prev, "stats");
        prev = cur;
        t_prev = t;
    }
    wlog(RILL_LOG_INFO, "%s: draining", sig == SIGINT ? "SIGINT" : "SIGTERM");
    notify_service("STOPPING=1\nSTATUS=draining");
    rill_stats_t before;
    rill_worker_stats(w, &before, sizeof before);
    pthread_t forced;
    int watching = pthread_create(&forced, NULL, second_signal, &sigs) == 0;
    rill_worker_stop(w);
    if (watching) {
        pthread_cancel(forced); /* sigwait is a cancellation point */
        pthread_join(forced, NULL);
    }
    rill_worker_stats(w, &cur, sizeof cur);
    memset(&prev, 0, sizeof prev);
    print_stats(&cur, &prev, now_s() - t_start, "final");
    uint64_t lost = dropped_total(&cur) - dropped_total(&before);
    if (lost)
        wlog(RILL_LOG_WARNING,
             "the drain dropped %llu frames (counted in sink_dropped, peer_dropped, "
             "handoff_dropped)",
             (unsigned long long)lost);
    rill_worker_destroy(w);
    return lost ? EXIT_DRAIN_DROPPED : 0;
}
