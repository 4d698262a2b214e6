/* rill-load: load generator for rill workers (v1 frames over TCP), with an optional sink
 * listener that counts what the worker emits and measures end-to-end latency from the
 * send time stamp each frame carries. With --acked both ends speak acknowledged streams
 * (HELLO / WELCOME / ACK / GOAWAY, docs/protocol.md): load_acked.c is the sender,
 * load_sink.c the sink. Run with --help for the flags. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h> /* isfinite only: the target does not link libm */
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "histogram.h"
#include "rill_load.h"

#define CONNECT_RETRY_NS 5000000000ull
#define STOP_GRACE_NS 1000000000ull /* then blocked writers are unstuck with shutdown() */
#define MAX_WRITE_BYTES (16u * 1024u * 1024u)
#define SINK_QUIET_NS 200000000ull /* sink only: the drain ends after this long without frames */
#define VERIFY_MAX_FRAMES (1ull << 33) /* --verify: connections x count, one bit each (1 GiB) */

/* ------------------------------------------------------------------ options */

opts_t g_o;
uint64_t g_start_ns;
int g_batch;
uint64_t g_run_id;

static void usage(FILE *f)
{
    fputs(
        "usage: rill-load [options]\n"
        "Sends v1 frames (u32 length, u32 comp id, u64 key, payload; big-endian) to a rill\n"
        "worker and, with --sink-listen, receives what the worker emits to measure throughput\n"
        "and end-to-end latency.\n"
        "\n"
        "  --target HOST:PORT       worker to send to (default 127.0.0.1:7700). Connecting is\n"
        "                           retried for up to 5 s (the worker may still be starting).\n"
        "                           With --acked, a comma-separated list A,B,C: a connection\n"
        "                           fails over to the next one on a failure or GOAWAY\n"
        "  --connections C          TCP connections to the target (default 1); 0 = send\n"
        "                           nothing, only act as the sink (--sink-listen) for --duration\n"
        "                           seconds or until SIGINT/SIGTERM\n"
        "  --threads T              sender threads (default 1); connections are spread over them\n"
        "                           and each thread writes to its connections in turn\n"
        "  --size S                 bytes per frame on the wire, including the 16-byte header\n"
        "                           (default 64, min 32)\n"
        "  --keys K                 keys uniform over 0..K-1 (default 1024)\n"
        "  --zipf A                 draw keys from a zipf distribution with exponent A over the\n"
        "                           K keys instead (key 0 most frequent)\n"
        "  --comp ID                computation id written in every frame (default 1)\n"
        "  --rate R                 total frames per second across all connections; 0 = as fast\n"
        "                           as possible (default 0). Paced in small bursts; each\n"
        "                           frame carries the time it was due, not the time it was\n"
        "                           written, so latency includes the time a sender that fell\n"
        "                           behind waited (coordinated omission corrected, as wrk2)\n"
        "  --batch B                frames per write() call (default 256 at full speed; with\n"
        "                           --rate, about 1 ms worth of frames per connection, <= 256)\n"
        "  --duration SEC           send for this long (default 10; fractions allowed)\n"
        "  --count N                instead of a duration: send exactly N frames per connection\n"
        "  --sink-listen HOST:PORT  also act as the worker's sink: listen there from the start,\n"
        "                           accept any number of connections, count the v1 frames and\n"
        "                           bytes received and the latency now - send time stamp. A\n"
        "                           connection whose first frame is HELLO is an acknowledged\n"
        "                           stream: answered with WELCOME, then ACKs of what was counted\n"
        "  --sink-threads N         threads reading sink connections (default: CPUs, max 8)\n"
        "  --drain SEC              after sending stops, keep reading the sink until it has\n"
        "                           received as many frames as were sent, or SEC pass (default 3)\n"
        "                           (--acked: senders first wait that long for the last ACKs)\n"
        "  --json                   print the final summary as one JSON object on stdout (the\n"
        "                           human summary then goes to stderr)\n"
        "  --quiet                  no progress lines on stderr\n"
        "  --progress SEC           seconds between progress lines (default 1; down to 0.05)\n"
        "  --seed N                 seed of the key generator (default 1; same seed, same keys)\n"
        "\n"
        "Acknowledged delivery (docs/protocol.md, \"Control frames\"):\n"
        "  --acked                  each connection is an acknowledged stream: HELLO (stream id\n"
        "                           from the run id and the connection index), no data before\n"
        "                           WELCOME, every frame kept until ACKed, at most the granted\n"
        "                           credit unacknowledged; on a failure or GOAWAY, reconnect\n"
        "                           (backoff 10 ms..1 s) and resend from the oldest\n"
        "                           unacknowledged frame. Memory: up to the credit per connection\n"
        "  --retry-for SEC          --acked: a connection that makes no progress (no WELCOME,\n"
        "                           no ACK) for SEC while it has work gives up (default 10)\n"
        "  --credit BYTES           sink: credit granted to acknowledged streams (default\n"
        "                           4194304); a sender may have that much unacknowledged\n"
        "  --goaway-after N         sink: after counting N frames, send GOAWAY on every\n"
        "                           acknowledged stream (and answer new HELLOs with GOAWAY)\n"
        "  --goaway-to HOST:PORT    sink: the address the GOAWAY names (default: none)\n"
        "  --close-after N          sink: close each acknowledged connection once it counted N\n"
        "                           frames on it, before acknowledging the last of them (the\n"
        "                           sender reconnects; WELCOME says what the sink holds)\n"
        "\n"
        "Checks:\n"
        "  --run-id N               this run's id (default: random). The sink counts frames of\n"
        "                           its own run (and frames without a run id); frames of other\n"
        "                           runs are counted apart (foreign). Give a sender's run id to\n"
        "                           a separate sink process (--connections 0) to count its frames\n"
        "  --verify                 with --sink-listen and --count: at the end, report frames\n"
        "                           sent but never counted by the sink (missing) and counted\n"
        "                           more than once (duplicates); exit 3 when any is missing.\n"
        "                           One bit per frame: connections x count <= 2^33 (1 GiB);\n"
        "                           needs --size 48 or more\n"
        "  --dump FILE              sink: append 'CONN SEQ' (decimal, one line per frame) for\n"
        "                           every frame of this run it counts, written before the frame\n"
        "                           is acknowledged (so it survives a kill of this process)\n"
        "  --help                   this text\n"
        "\n"
        "Payload of each frame (S - 16 bytes): bytes 0..7 send time in ns from CLOCK_MONOTONIC\n"
        "(little-endian), 8..15 sequence number within its connection (LE), 16..19 connection\n"
        "index (LE u32, when S >= 36), 20..27 run id (LE) and 28..31 the tag \"rld1\" (when\n"
        "S >= 48), the rest filler. Latency is measured on every received frame with a payload\n"
        "of 16 bytes or more, whatever its comp id, so sender and sink must share a clock (same\n"
        "host).\n"
        "\n"
        "Progress each second (--progress) on stderr: elapsed, sent/s, received/s, totals.\n"
        "SIGINT stops sending and prints the summary (a second SIGINT skips the drain).\n"
        "Exit status: 0 on success; 1 when a connection could not be made or failed while\n"
        "sending, or (--acked) frames were left unacknowledged; 2 on bad usage; 3 when\n"
        "--verify found frames missing.\n",
        f);
}

static void die_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "rill-load: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(see rill-load --help)\n");
    exit(2);
}

static uint64_t parse_u64(const char *flag, const char *s, uint64_t min, uint64_t max)
{
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-')
        die_usage("%s needs a non-negative integer", flag);
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || *end)
        die_usage("%s: not an integer", flag);
    if (v < min || v > max) {
        fprintf(stderr, "rill-load: %s must be between %" PRIu64 " and %" PRIu64 "\n", flag, min,
                max);
        exit(2);
    }
    return v;
}

static double parse_double(const char *flag, const char *s, double min)
{
    char *end;
    errno = 0;
    if (!s || !*s)
        die_usage("%s needs a number", flag);
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || v < min)
        die_usage("%s: not a valid number", flag);
    return v;
}

static void parse_opts(int argc, char **argv, opts_t *o)
{
    *o = (opts_t){.target = "127.0.0.1:7700",
                  .connections = 1,
                  .threads = 1,
                  .size = 64,
                  .keys = 1024,
                  .comp = 1,
                  .duration = 10,
                  .drain = 3,
                  .progress = 1,
                  .seed = 1,
                  .credit = 4u << 20,
                  .retry_for = 10};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        char flag[64];
        /* Accept both "--flag value" and "--flag=value". */
        const char *eq = strchr(a, '=');
        if (strncmp(a, "--", 2) == 0 && eq && (size_t)(eq - a) < sizeof flag) {
            memcpy(flag, a, (size_t)(eq - a));
            flag[eq - a] = 0;
            val = eq + 1;
            a = flag;
        }
#define NEXT() (val ? val : (i + 1 < argc ? argv[++i] : (die_usage("%s needs a value", a), "")))
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--target"))
            o->target = NEXT();
        else if (!strcmp(a, "--connections"))
            o->connections = (int)parse_u64(a, NEXT(), 0, 65536);
        else if (!strcmp(a, "--threads"))
            o->threads = (int)parse_u64(a, NEXT(), 1, 1024);
        else if (!strcmp(a, "--size"))
            o->size = (uint32_t)parse_u64(a, NEXT(), 32, MAX_SIZE);
        else if (!strcmp(a, "--keys"))
            o->keys = parse_u64(a, NEXT(), 1, UINT64_MAX);
        else if (!strcmp(a, "--zipf"))
            o->zipf = parse_double(a, NEXT(), 0);
        else if (!strcmp(a, "--comp"))
            o->comp = (uint32_t)parse_u64(a, NEXT(), 0, UINT32_MAX);
        else if (!strcmp(a, "--rate"))
            o->rate = parse_double(a, NEXT(), 0);
        else if (!strcmp(a, "--batch"))
            o->batch = (int)parse_u64(a, NEXT(), 1, 1 << 20);
        else if (!strcmp(a, "--duration"))
            o->duration = parse_double(a, NEXT(), 0);
        else if (!strcmp(a, "--count"))
            o->count = parse_u64(a, NEXT(), 1, UINT64_MAX);
        else if (!strcmp(a, "--sink-listen"))
            o->sink_listen = NEXT();
        else if (!strcmp(a, "--sink-threads"))
            o->sink_threads = (int)parse_u64(a, NEXT(), 1, 256);
        else if (!strcmp(a, "--drain"))
            o->drain = parse_double(a, NEXT(), 0);
        else if (!strcmp(a, "--json"))
            o->json = true;
        else if (!strcmp(a, "--quiet"))
            o->quiet = true;
        else if (!strcmp(a, "--progress")) {
            o->progress = parse_double(a, NEXT(), 0);
            if (o->progress < 0.05)
                die_usage("%s must be 0.05 s or more", a);
        } else if (!strcmp(a, "--seed"))
            o->seed = parse_u64(a, NEXT(), 0, UINT64_MAX);
        else if (!strcmp(a, "--acked"))
            o->acked = true;
        else if (!strcmp(a, "--retry-for"))
            o->retry_for = parse_double(a, NEXT(), 0);
        else if (!strcmp(a, "--credit"))
            o->credit = parse_u64(a, NEXT(), 1, UINT32_MAX);
        else if (!strcmp(a, "--goaway-after"))
            o->goaway_after = parse_u64(a, NEXT(), 1, UINT64_MAX);
        else if (!strcmp(a, "--close-after"))
            o->close_after = parse_u64(a, NEXT(), 1, UINT64_MAX);
        else if (!strcmp(a, "--goaway-to"))
            o->goaway_to = NEXT();
        else if (!strcmp(a, "--run-id")) {
            o->run_id = parse_u64(a, NEXT(), 0, UINT64_MAX);
            o->has_run_id = true;
        } else if (!strcmp(a, "--verify"))
            o->verify = true;
        else if (!strcmp(a, "--dump"))
            o->dump = NEXT();
        else
            die_usage("unknown option %s", argv[i]);
#undef NEXT
        if (val && (!strcmp(a, "--json") || !strcmp(a, "--quiet") || !strcmp(a, "--help") ||
                    !strcmp(a, "--acked") || !strcmp(a, "--verify")))
            die_usage("%s takes no value", a);
    }
    /* --target A,B,C: the list, in order. */
    const char *t = o->target;
    for (;;) {
        const char *comma = strchr(t, ',');
        size_t n = comma ? (size_t)(comma - t) : strlen(t);
        if (!n)
            die_usage("--target: empty address in '%s'", o->target);
        if (o->ntargets == MAX_TARGETS)
            die_usage("--target: at most 64 addresses (%s)", o->target);
        char *one = strndup(t, n);
        if (!one)
            die_usage("out of memory%s", "");
        o->targets[o->ntargets++] = one;
        if (!comma)
            break;
        t = comma + 1;
    }
    if (o->ntargets > 1 && !o->acked)
        die_usage("--target with several addresses needs --acked (%s)", o->target);
    if (!o->connections) {
        if (!o->sink_listen)
            die_usage("--connections 0 (sink only) needs --sink-listen%s", "");
        if (o->acked || o->count || o->verify)
            die_usage("--connections 0 sends nothing: no --acked, --count or --verify%s", "");
    }
    if (o->verify) {
        if (!o->sink_listen || !o->count)
            die_usage("--verify needs --sink-listen and --count%s", "");
        if (o->size < SIZE_WITH_RUN)
            die_usage("--verify needs --size 48 or more (the run id is in bytes 20..31 of the "
                      "payload)%s",
                      "");
        if ((uint64_t)o->connections > VERIFY_MAX_FRAMES / o->count)
            die_usage("--verify: connections x count is above 2^33%s", "");
    }
    if ((o->dump || o->goaway_after || o->goaway_to || o->close_after) && !o->sink_listen)
        die_usage("--dump, --goaway-after, --goaway-to and --close-after are for the sink: they "
                  "need --sink-listen%s",
                  "");
    if (o->goaway_to && strlen(o->goaway_to) > 255)
        die_usage("--goaway-to: address too long%s", "");

    if (o->zipf > 0 && o->keys > 100000000)
        die_usage("--zipf supports at most %s keys", "100000000");
    if (o->threads > o->connections)
        o->threads = o->connections;
    if (!o->sink_threads) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        o->sink_threads = n < 1 ? 1 : n > 8 ? 8 : (int)n;
    }
}

/* ------------------------------------------------------------------ time, signals */

static void sleep_until(uint64_t t)
{
    struct timespec ts = {.tv_sec = (time_t)(t / 1000000000ull),
                          .tv_nsec = (long)(t % 1000000000ull)};
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL); /* EINTR: the caller re-checks */
}

volatile sig_atomic_t g_sigint;
atomic_bool g_stop_send;
atomic_bool g_stop_sink;

static void on_sigint(int sig)
{
    (void)sig;
    g_sigint++;
    atomic_store_explicit(&g_stop_send, true, memory_order_relaxed);
}

/* ------------------------------------------------------------------ sockets */

static int split_hostport(const char *s, char *host, size_t hostcap, char *port, size_t portcap)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || !colon[1])
        return -1;
    const char *h = s, *he = colon;
    if (*h == '[') {
        if (he[-1] != ']')
            return -1;
        h++, he--;
    }
    if ((size_t)(he - h) >= hostcap || strlen(colon + 1) >= portcap)
        return -1;
    memcpy(host, h, (size_t)(he - h));
    host[he - h] = 0;
    strcpy(port, colon + 1);
    return 0;
}

int load_resolve(const char *hostport, bool passive, struct addrinfo **out, char *err,
                 size_t errcap)
{
    char host[256], port[32];
    if (split_hostport(hostport, host, sizeof host, port, sizeof port) < 0) {
        snprintf(err, errcap, "'%s' is not HOST:PORT", hostport);
        return -1;
    }
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = passive ? AI_PASSIVE : 0};
    int rc = getaddrinfo(*host ? host : NULL, port, &hints, out);
    if (rc) {
        snprintf(err, errcap, "cannot resolve '%s': %s", hostport, gai_strerror(rc));
        return -1;
    }
    return 0;
}

/* Connects to hostport, retrying until deadline (the worker may still be starting). */
static int connect_retry(const char *hostport, uint64_t deadline, char *err, size_t errcap)
{
    int last = 0;
    for (;;) {
        struct addrinfo *ai;
        if (load_resolve(hostport, false, &ai, err, errcap) == 0) {
            for (struct addrinfo *p = ai; p; p = p->ai_next) {
                int fd = socket(p->ai_family, p->ai_socktype | SOCK_CLOEXEC, p->ai_protocol);
                if (fd < 0) {
                    last = errno;
                    continue;
                }
                if (connect(fd, p->ai_addr, p->ai_addrlen) == 0) {
                    int one = 1;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    freeaddrinfo(ai);
                    return fd;
                }
                last = errno;
                close(fd);
            }
            freeaddrinfo(ai);
            snprintf(err, errcap, "cannot connect to %s: %s", hostport, strerror(last));
        }
        if (g_sigint) {
            snprintf(err, errcap, "interrupted while connecting to %s", hostport);
            return -1;
        }
        uint64_t t = now_ns();
        if (t >= deadline)
            return -1;
        uint64_t next = t + 50000000ull;
        sleep_until(next < deadline ? next : deadline);
    }
}

/* Writes all of buf; returns 0 or -errno. */
static int write_all(int fd, const uint8_t *buf, size_t len)
{
    while (len) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* ------------------------------------------------------------------ keys */

static inline uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t xorshift64s(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* x^-a for x >= 1 without libm (the bench target links only rill_internal): exp(-a ln x)
 * through series that are exact to double precision on the reduced ranges. */
static double pow_neg(double x, double a)
{
    uint64_t bits;
    memcpy(&bits, &x, sizeof bits);
    int e = (int)((bits >> 52) & 0x7ff) - 1023;
    bits = (bits & ~(0x7ffull << 52)) | (1023ull << 52);
    double m, ln2 = 0.6931471805599453;
    memcpy(&m, &bits, sizeof m); /* x = m * 2^e, m in [1, 2) */
    double t = (m - 1) / (m + 1), t2 = t * t, term = t, lnm = 0;
    for (int k = 1; k < 60; k += 2, term *= t2)
        lnm += term / k;
    double y = -a * (2 * lnm + e * ln2); /* ln of the result, <= 0 */
    double kf = (double)(int64_t)(y / ln2) - 1;
    if (kf < -1020)
        return 0;
    double r = y - kf * ln2, er = 1, tt = 1; /* r in [0, 2 ln 2) */
    for (int k = 1; k < 30; k++) {
        tt *= r / k;
        er += tt;
    }
    uint64_t sb = (uint64_t)((int64_t)kf + 1023) << 52;
    double scale;
    memcpy(&scale, &sb, sizeof scale);
    return er * scale;
}

static double *g_zipf_cdf; /* cumulative probabilities of keys 0..K-1; last is 1 */
/* Guide table: g_zipf_guide[j] = first key whose cdf exceeds j / ZIPF_GUIDE, so a search
 * starts from a narrow range instead of the whole (cache-missing) table. */
#define ZIPF_GUIDE 65536u
static uint32_t g_zipf_guide[ZIPF_GUIDE + 1];

static int zipf_build(uint64_t k, double a)
{
    g_zipf_cdf = malloc(k * sizeof *g_zipf_cdf);
    if (!g_zipf_cdf)
        return -1;
    double sum = 0;
    for (uint64_t i = 0; i < k; i++) {
        sum += pow_neg((double)(i + 1), a);
        g_zipf_cdf[i] = sum;
    }
    for (uint64_t i = 0; i < k; i++)
        g_zipf_cdf[i] /= sum;
    g_zipf_cdf[k - 1] = 1.0;
    uint64_t i = 0;
    for (uint32_t j = 0; j < ZIPF_GUIDE; j++) {
        double u = (double)j / ZIPF_GUIDE;
        while (i < k - 1 && g_zipf_cdf[i] <= u)
            i++;
        g_zipf_guide[j] = (uint32_t)i;
    }
    g_zipf_guide[ZIPF_GUIDE] = (uint32_t)(k - 1);
    return 0;
}

static inline uint64_t next_key(uint64_t *rng, uint64_t k)
{
    uint64_t r = xorshift64s(rng);
    if (g_zipf_cdf) {
        double u = (double)(r >> 11) * 0x1.0p-53;
        uint32_t j = (uint32_t)(u * ZIPF_GUIDE);
        uint64_t lo = g_zipf_guide[j], hi = g_zipf_guide[j + 1]; /* first i with cdf[i] > u */
        while (lo < hi) {
            uint64_t mid = lo + (hi - lo) / 2;
            if (g_zipf_cdf[mid] > u)
                hi = mid;
            else
                lo = mid + 1;
        }
        return lo;
    }
    return (uint64_t)(((unsigned __int128)r * k) >> 64);
}

/* ------------------------------------------------------------------ senders */

/* A paced sender's schedule: its frame number j is due at g_start_ns + j / rate_ns. */
typedef struct sched {
    double rate_ns; /* frames per ns */
    uint64_t first; /* the number of the first frame being filled */
} sched_t;

/* Fills n frames into buf. Headers' length and comp fields, the filler and the run id were
 * written once at start (load_frame_template); only key, time stamp, sequence and connection
 * index change. The time stamp is when the frame was due by sched (open loop: a sender
 * that fell behind, because the receiver stopped reading, does not hide that wait from the
 * latency, as wrk2 corrects for coordinated omission), else now. */
static inline void fill_frames(uint8_t *buf, uint32_t n, uint32_t index, uint64_t seq0,
                               uint64_t *rng, bool ts_per_frame, const sched_t *sched)
{
    const uint32_t s = g_o.size;
    const uint64_t k = g_o.keys;
    uint64_t ts = now_ns();
    for (uint32_t i = 0; i < n; i++) {
        uint8_t *f = buf + (size_t)i * s;
        rill__store_be64(f + 8, next_key(rng, k));
        if (sched)
            ts = g_start_ns + (uint64_t)((double)(sched->first + i) / sched->rate_ns);
        else if (ts_per_frame && i)
            ts = now_ns();
        store_le64(f + 16 + PL_TS, ts);
        store_le64(f + 16 + PL_SEQ, seq0 + i);
        if (s >= SIZE_WITH_CONN)
            store_le32(f + 16 + PL_CONN, index);
    }
}

void load_fill(uint8_t *buf, uint32_t n, uint32_t index, uint64_t seq0, uint64_t *rng,
               bool ts_per_frame)
{
    fill_frames(buf, n, index, seq0, rng, ts_per_frame, NULL);
}

void load_frame_template(uint8_t *buf, size_t n)
{
    const uint32_t s = g_o.size;
    for (size_t f = 0; f < n; f++) {
        uint8_t *p = buf + f * s;
        rill__store_be32(p, s - 4);
        rill__store_be32(p + 4, g_o.comp);
        memset(p + 16, 0xa5, s - 16);
        if (s >= SIZE_WITH_RUN) {
            store_le64(p + 16 + PL_RUN, g_run_id);
            store_le32(p + 16 + PL_TAG, PL_TAG_VALUE);
        }
    }
}

uint64_t load_rng_init(int id)
{
    uint64_t rng = g_o.seed ^ 0x5851f42d4c957f2dull;
    for (int i = 0; i <= id; i++)
        splitmix64(&rng);
    return splitmix64(&rng) | 1; /* xorshift state must not be 0 */
}

static void *sender_main(void *arg)
{
    sender_t *t = arg;
    const uint32_t s = g_o.size;
    uint64_t rng = load_rng_init(t->id);

    const bool paced = g_o.rate > 0;
    /* This thread's share of the rate, in frames per ns, and the smallest burst worth a
     * wake-up (about 100 us of frames). */
    const double rate_ns = paced ? g_o.rate * t->nconns / g_o.connections / 1e9 : 0;
    uint64_t min_burst = 1;
    if (paced) {
        double b = rate_ns * 100000.0;
        min_burst = b < 1 ? 1 : b > g_batch ? (uint64_t)g_batch : (uint64_t)b;
    }
    const uint64_t end = g_o.count ? UINT64_MAX : g_start_ns + (uint64_t)(g_o.duration * 1e9);
    uint64_t sent = 0, bytes = 0;
    int live = 0;
    for (int i = 0; i < t->nconns; i++)
        live += t->conns[i]->active;
    int next = 0;

    while (live > 0 && !atomic_load_explicit(&g_stop_send, memory_order_relaxed)) {
        uint64_t now = now_ns();
        if (now >= end)
            break;
        uint64_t n = (uint64_t)g_batch;
        if (paced) {
            uint64_t target = (uint64_t)((double)(now - g_start_ns) * rate_ns);
            uint64_t due = target > sent ? target - sent : 0;
            if (due < min_burst) {
                /* Sleep until min_burst frames are due, at most 10 ms at a time so that a stop
                 * request is seen promptly. */
                uint64_t wake = g_start_ns + (uint64_t)((double)(sent + min_burst) / rate_ns);
                if (wake > now + 10000000ull)
                    wake = now + 10000000ull;
                if (wake > end)
                    wake = end;
                sleep_until(wake);
                continue;
            }
            if (due < n)
                n = due;
        }
        conn_t *c;
        do {
            c = t->conns[next];
            next = (next + 1) % t->nconns;
        } while (!c->active);
        if (g_o.count && n > g_o.count - c->seq)
            n = g_o.count - c->seq;

        sched_t sc = {rate_ns, sent};
        fill_frames(t->buf, (uint32_t)n, c->index, c->seq, &rng, paced, paced ? &sc : NULL);
        int rc = write_all(c->fd, t->buf, (size_t)n * s);
        if (rc < 0) {
            if (!atomic_load_explicit(&g_stop_send, memory_order_relaxed)) {
                fprintf(stderr, "rill-load: connection %u: write failed: %s; stopping it\n",
                        c->index, strerror(-rc));
                t->errors++;
            }
            c->active = false;
            live--;
            continue;
        }
        c->seq += n;
        sent += n;
        bytes += n * s;
        atomic_store_explicit(&t->frames, sent, memory_order_relaxed);
        atomic_store_explicit(&t->bytes, bytes, memory_order_relaxed);
        if (g_o.count && c->seq >= g_o.count) {
            c->active = false;
            live--;
        }
    }
    t->end_ns = now_ns();
    atomic_store_explicit(&t->done, true, memory_order_release);
    return NULL;
}

/* ------------------------------------------------------------------ main */

static uint64_t total_sent(sender_t *ts, int n, uint64_t *bytes)
{
    uint64_t f = 0, b = 0;
    for (int i = 0; i < n; i++) {
        f += atomic_load_explicit(&ts[i].frames, memory_order_relaxed);
        b += atomic_load_explicit(&ts[i].bytes, memory_order_relaxed);
    }
    if (bytes)
        *bytes = b;
    return f;
}

static uint64_t total_recv(uint64_t *bytes, uint64_t *last)
{
    if (!g_o.sink_listen) {
        if (bytes)
            *bytes = 0;
        if (last)
            *last = 0;
        return 0;
    }
    load_sink_totals_t t;
    load_sink_totals(&t);
    if (bytes)
        *bytes = t.bytes;
    if (last)
        *last = t.last_ns;
    return t.frames;
}

static uint64_t total_acked(sender_t *ts, int n)
{
    uint64_t a = 0;
    for (int i = 0; i < n; i++)
        a += atomic_load_explicit(&ts[i].acked, memory_order_relaxed);
    return a;
}

static uint64_t random_run_id(void)
{
    uint64_t v = 0;
    if (getrandom(&v, sizeof v, GRND_NONBLOCK) != (ssize_t)sizeof v) {
        uint64_t z = now_ns() ^ ((uint64_t)getpid() << 32);
        v = splitmix64(&z);
    }
    return v ? v : 1;
}

static void fmt_rate(char *out, size_t cap, double r)
{
    if (r >= 1e6)
        snprintf(out, cap, "%.2fM", r / 1e6);
    else if (r >= 1e3)
        snprintf(out, cap, "%.1fk", r / 1e3);
    else
        snprintf(out, cap, "%.0f", r);
}

int main(int argc, char **argv)
{
    parse_opts(argc, argv, &g_o);
    setvbuf(stderr, NULL, _IOLBF, 0);
    g_run_id = g_o.has_run_id ? g_o.run_id : random_run_id();

    struct sigaction sa = {.sa_handler = on_sigint}; /* no SA_RESTART: sleeps wake up */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (g_o.batch)
        g_batch = g_o.batch;
    else if (g_o.rate > 0 && g_o.connections) {
        double b = g_o.rate / g_o.connections / 1000.0; /* ~1 ms of frames per connection */
        g_batch = b < 1 ? 1 : b > 256 ? 256 : (int)b;
    } else
        g_batch = 256;
    if ((uint64_t)g_batch * g_o.size > MAX_WRITE_BYTES) {
        int b = (int)(MAX_WRITE_BYTES / g_o.size);
        if (b < 1)
            b = 1;
        if (!g_o.quiet)
            fprintf(stderr,
                    "rill-load: --batch %d x --size %u is too large for one write; using %d\n",
                    g_batch, g_o.size, b);
        g_batch = b;
    }
    if (g_o.zipf > 0 && zipf_build(g_o.keys, g_o.zipf) < 0) {
        fprintf(stderr, "rill-load: out of memory for the zipf table of %" PRIu64 " keys\n",
                g_o.keys);
        return 1;
    }
    if (g_o.verify && load_verify_init(g_o.connections, g_o.count) < 0)
        return 1;

    /* The sink listens from the start, before anything connects anywhere. */
    if (g_o.sink_listen && load_sink_start() < 0)
        return 1;
    int exit_code = 0;

    /* Connect everything before sending anything (--acked: each sender thread connects and
     * reconnects its own). */
    size_t nthreads = g_o.threads ? (size_t)g_o.threads : 1;
    conn_t *conns = calloc(g_o.connections ? (size_t)g_o.connections : 1, sizeof *conns);
    sender_t *ts = aligned_alloc(64, sizeof(sender_t) * nthreads);
    if (!conns || !ts) {
        fprintf(stderr, "rill-load: out of memory\n");
        return 1;
    }
    memset(ts, 0, sizeof(sender_t) * nthreads);
    uint64_t deadline = now_ns() + CONNECT_RETRY_NS;
    int nconnected = 0;
    for (int i = 0; i < g_o.connections && !g_o.acked; i++) {
        char err[512];
        conns[i].fd = connect_retry(g_o.target, deadline, err, sizeof err);
        if (conns[i].fd < 0) {
            fprintf(stderr, "rill-load: %s%s\n", err, g_sigint ? "" : " (retried for 5 s)");
            exit_code = 1;
            break;
        }
        conns[i].index = (uint32_t)i;
        conns[i].active = true;
        nconnected++;
    }

    if (!exit_code) {
        for (int i = 0; i < g_o.threads; i++) {
            sender_t *t = &ts[i];
            t->id = i;
            t->conns = calloc((size_t)g_o.connections / (size_t)g_o.threads + 1, sizeof *t->conns);
            t->buf = g_o.acked ? NULL : malloc((size_t)g_batch * g_o.size);
            if (!t->conns || (!g_o.acked && !t->buf)) {
                fprintf(stderr, "rill-load: out of memory\n");
                return 1;
            }
            if (t->buf)
                load_frame_template(t->buf, (size_t)g_batch);
        }
        for (int i = 0; i < g_o.connections; i++) {
            sender_t *t = &ts[i % g_o.threads];
            t->conns[t->nconns++] = &conns[i];
        }
        for (int i = 0; i < g_o.threads && g_o.acked; i++)
            if (load_acked_setup(&ts[i], i, g_o.threads) < 0) {
                fprintf(stderr, "rill-load: out of memory\n");
                return 1;
            }
        g_start_ns = now_ns();
        for (int i = 0; i < g_o.threads; i++)
            if (pthread_create(&ts[i].tid, NULL, g_o.acked ? load_acked_main : sender_main,
                               &ts[i])) {
                fprintf(stderr, "rill-load: cannot start sender thread\n");
                return 1;
            }

        /* Progress and supervision until every sender is done (sink only: until the duration
         * passed or a signal). */
        uint64_t last_print = g_start_ns, last_sent = 0, last_recv = 0, stop_at = 0;
        bool shut = false;
        for (;;) {
            int done = 0;
            for (int i = 0; i < g_o.threads; i++)
                done += atomic_load_explicit(&ts[i].done, memory_order_acquire);
            uint64_t now = now_ns();
            if (done == g_o.threads &&
                (g_o.connections || g_sigint || now >= g_start_ns + (uint64_t)(g_o.duration * 1e9)))
                break;
            if (g_sigint && !stop_at)
                stop_at = now;
            /* A sender blocked in write() (the worker stopped reading) would never see the
             * stop flag: after a grace period, shut its sockets to unblock it. */
            if (!g_o.count && !stop_at && now >= g_start_ns + (uint64_t)(g_o.duration * 1e9)) {
                stop_at = now;
                atomic_store(&g_stop_send, true);
            }
            if (stop_at && !shut && now >= stop_at + STOP_GRACE_NS) {
                for (int i = 0; i < nconnected; i++)
                    shutdown(conns[i].fd, SHUT_WR);
                shut = true;
            }
            if (now >= last_print + (uint64_t)(g_o.progress * 1e9)) {
                uint64_t s = total_sent(ts, g_o.threads, NULL), r = total_recv(NULL, NULL);
                double dt = (double)(now - last_print) / 1e9;
                if (!g_o.quiet) {
                    char a[32], b[32], acked[48] = "";
                    fmt_rate(a, sizeof a, (double)(s - last_sent) / dt);
                    fmt_rate(b, sizeof b, (double)(r - last_recv) / dt);
                    if (g_o.acked)
                        snprintf(acked, sizeof acked, "  acked %" PRIu64,
                                 total_acked(ts, g_o.threads));
                    fprintf(stderr,
                            "[%7.2fs] sent/s %-8s recv/s %-8s  sent %" PRIu64 "  recv %" PRIu64
                            "%s%s\n",
                            (double)(now - g_start_ns) / 1e9, a, g_o.sink_listen ? b : "-", s, r,
                            g_o.sink_listen ? "" : " (no sink)", acked);
                }
                last_print = now;
                last_sent = s;
                last_recv = r;
            }
            uint64_t wake = now + 20000000ull;
            sleep_until(wake);
        }
        for (int i = 0; i < g_o.threads; i++)
            pthread_join(ts[i].tid, NULL);
    }

    uint64_t sent_bytes = 0;
    uint64_t sent = total_sent(ts, g_o.threads, &sent_bytes);
    uint64_t send_end = g_start_ns;
    int conn_errors = 0;
    uint64_t acked = 0, unacked = 0, resent = 0, reconnects = 0, goaways = 0, redirects = 0,
             credit_waits = 0;
    for (int i = 0; i < g_o.threads; i++) {
        if (ts[i].end_ns > send_end)
            send_end = ts[i].end_ns;
        conn_errors += ts[i].errors;
        acked += atomic_load(&ts[i].acked);
        unacked += ts[i].unacked;
        resent += ts[i].resent;
        reconnects += ts[i].reconnects;
        goaways += ts[i].goaways;
        redirects += ts[i].redirects;
        credit_waits += ts[i].credit_waits;
    }
    double send_s = exit_code ? 0 : (double)(send_end - g_start_ns) / 1e9;
    if (g_o.verify && !exit_code) {
        for (int i = 0; i < g_o.threads; i++)
            for (int k = 0; k < ts[i].nconns; k++) {
                uint32_t index;
                uint64_t n;
                if (g_o.acked) {
                    n = load_acked_sent(&ts[i], k, &index);
                } else {
                    n = ts[i].conns[k]->seq;
                    index = ts[i].conns[k]->index;
                }
                load_verify_sent(index, n);
            }
    }

    /* Drain: wait for the sink to see as many frames as were sent. */
    if (g_o.sink_listen && !exit_code) {
        int sig0 = g_sigint;
        uint64_t t0 = now_ns(), until = t0 + (uint64_t)(g_o.drain * 1e9), last_print = t0;
        uint64_t last_recv = total_recv(NULL, NULL);
        for (;;) {
            uint64_t last, r = total_recv(NULL, &last), now = now_ns();
            if ((g_o.connections && r >= sent) || now >= until || g_sigint > sig0)
                break;
            /* Sink only: read what is still arriving, until nothing came for a moment. */
            if (!g_o.connections && now >= t0 + SINK_QUIET_NS && now >= last + SINK_QUIET_NS)
                break;
            if (!g_o.quiet && now >= last_print + (uint64_t)(g_o.progress * 1e9)) {
                char b[32];
                fmt_rate(b, sizeof b, (double)(r - last_recv) / ((double)(now - last_print) / 1e9));
                fprintf(stderr, "[%7.2fs] draining: recv/s %-8s recv %" PRIu64 " of %" PRIu64 "\n",
                        (double)(now - g_start_ns) / 1e9, b, r, sent);
                last_print = now;
                last_recv = r;
            }
            sleep_until(now + 2000000ull);
        }
    }
    for (int i = 0; i < nconnected; i++)
        close(conns[i].fd);

    rill__hist_t hist;
    rill__hist_init(&hist);
    uint64_t recv = 0, recv_bytes = 0, recv_last = 0, sink_errors = 0, foreign = 0;
    uint64_t missing = 0, duplicates = 0, unexpected = 0;
    if (g_o.sink_listen) {
        load_sink_totals_t st;
        load_sink_stop(&hist, &st);
        recv = st.frames;
        recv_bytes = st.bytes;
        recv_last = st.last_ns;
        sink_errors = st.errors;
        foreign = st.foreign;
    }
    if (g_o.verify)
        load_verify_result(&missing, &duplicates, &unexpected);
    rill__hist_t ack_hist; /* --acked: send -> ACK of the newest frame an ACK covers */
    rill__hist_init(&ack_hist);
    for (int i = 0; i < g_o.threads; i++) {
        if (ts[i].ack_hist)
            rill__hist_merge(&ack_hist, ts[i].ack_hist);
        free(ts[i].conns);
        free(ts[i].buf);
        load_acked_free(&ts[i]);
    }
    free(ts);
    free(conns);
    free(g_zipf_cdf);
    if (exit_code) {
        if (g_o.json)
            printf("{\"error\": \"connect failed\", \"target\": \"%s\"}\n", g_o.target);
        return exit_code;
    }
    if (conn_errors || unacked)
        exit_code = 1;
    else if (missing)
        exit_code = 3;

    double send_rate = send_s > 0 ? (double)sent / send_s : 0;
    double recv_s = recv_last > g_start_ns ? (double)(recv_last - g_start_ns) / 1e9 : 0;
    double recv_rate = recv_s > 0 ? (double)recv / recv_s : 0;
    double p50 = (double)rill__hist_quantile(&hist, 0.50) / 1e3;
    double p99 = (double)rill__hist_quantile(&hist, 0.99) / 1e3;
    double p999 = (double)rill__hist_quantile(&hist, 0.999) / 1e3;
    double pmax = (double)hist.max / 1e3;
    /* The spectrum: where the tail begins and how it grows. */
    static const double spectrum_q[] = {0.50, 0.75, 0.90, 0.95, 0.99, 0.999, 0.9999};
    static const char *const spectrum_name[] = {"p50", "p75",   "p90",   "p95",
                                                "p99", "p99.9", "p99.99"};
    enum { SPECTRUM = sizeof spectrum_q / sizeof spectrum_q[0] };
    double spectrum[SPECTRUM];
    for (unsigned i = 0; i < SPECTRUM; i++)
        spectrum[i] = (double)rill__hist_quantile(&hist, spectrum_q[i]) / 1e3;
    /* Paced frames carry the time they were due (fill_frames), the others their write's. */
    const char *lat_from = g_o.rate > 0 && !g_o.acked ? "intended" : "write";

    FILE *h = g_o.json ? stderr : stdout;
    fprintf(h,
            "rill-load: sent %" PRIu64 " frames (%.1f MB) of %u bytes in %.3f s over %d "
            "connection%s: %.0f frames/s, %.1f MB/s%s\n",
            sent, (double)sent_bytes / 1e6, g_o.size, send_s, g_o.connections,
            g_o.connections == 1 ? "" : "s", send_rate,
            send_s > 0 ? (double)sent_bytes / 1e6 / send_s : 0, g_sigint ? " (interrupted)" : "");
    if (conn_errors)
        fprintf(h, "rill-load: %d connection%s failed while sending\n", conn_errors,
                conn_errors == 1 ? "" : "s");
    if (g_o.acked)
        fprintf(h,
                "rill-load: acknowledged %" PRIu64 " of %" PRIu64 " frames (%" PRIu64
                " unacknowledged); resent %" PRIu64 ", reconnects %" PRIu64 ", goaways %" PRIu64
                " (%" PRIu64 " naming another address), credit waits %" PRIu64 "\n",
                acked, sent, unacked, resent, reconnects, goaways, redirects, credit_waits);
    if (g_o.acked && ack_hist.count)
        fprintf(h,
                "rill-load: ack latency us (send time stamp of the newest frame an ACK covers "
                "-> the ACK): p50 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  (%" PRIu64 " ACKs)\n",
                (double)rill__hist_quantile(&ack_hist, 0.50) / 1e3,
                (double)rill__hist_quantile(&ack_hist, 0.99) / 1e3,
                (double)rill__hist_quantile(&ack_hist, 0.999) / 1e3, (double)ack_hist.max / 1e3,
                ack_hist.count);
    if (g_o.sink_listen) {
        fprintf(h,
                "rill-load: received %" PRIu64
                " frames (%.1f MB) at the sink: %.0f frames/s, %.1f MB/s\n",
                recv, (double)recv_bytes / 1e6, recv_rate,
                recv_s > 0 ? (double)recv_bytes / 1e6 / recv_s : 0);
        if (foreign)
            fprintf(h,
                    "rill-load: %" PRIu64 " more frames of other runs at the sink (foreign; this "
                    "run is 0x%016" PRIx64 ")\n",
                    foreign, g_run_id);
        if (hist.count)
            fprintf(h,
                    "rill-load: latency us: p50 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  (%" PRIu64
                    " samples)\n",
                    p50, p99, p999, pmax, hist.count);
        if (hist.count) {
            fprintf(h, "rill-load: latency spectrum us (from %s):",
                    strcmp(lat_from, "intended") == 0 ? "each frame's due time"
                                                      : "each frame's write");
            for (unsigned i = 0; i < SPECTRUM; i++)
                fprintf(h, " %s %.1f", spectrum_name[i], spectrum[i]);
            fprintf(h, " max %.1f\n", pmax);
        } else
            fprintf(h, "rill-load: latency: no samples\n");
        if (g_o.connections)
            fprintf(h, "rill-load: lost %" PRId64 " (sent - received)%s\n", (int64_t)(sent - recv),
                    sink_errors ? "; the sink saw malformed frames" : "");
        else if (sink_errors)
            fprintf(h, "rill-load: the sink saw malformed frames\n");
    }
    if (g_o.verify)
        fprintf(h,
                "rill-load: verify: %" PRIu64 " missing, %" PRIu64 " duplicates, %" PRIu64
                " unexpected (of %" PRIu64 " frames sent)\n",
                missing, duplicates, unexpected, sent);
    if (g_o.json) {
        printf("{\"sent\": %" PRIu64 ", \"sent_bytes\": %" PRIu64 ", \"send_seconds\": %.6f, "
               "\"send_rate\": %.1f, \"send_mb_per_s\": %.3f, ",
               sent, sent_bytes, send_s, send_rate,
               send_s > 0 ? (double)sent_bytes / 1e6 / send_s : 0);
        if (g_o.sink_listen) {
            printf("\"received\": %" PRIu64 ", \"received_bytes\": %" PRIu64
                   ", \"recv_rate\": %.1f, ",
                   recv, recv_bytes, recv_rate);
            if (g_o.connections)
                printf("\"lost\": %" PRId64 ", ", (int64_t)(sent - recv));
            else
                printf("\"lost\": null, ");
            if (hist.count)
                printf("\"lat_p50_us\": %.3f, \"lat_p99_us\": %.3f, \"lat_p999_us\": %.3f, "
                       "\"lat_max_us\": %.3f, \"lat_p75_us\": %.3f, \"lat_p90_us\": %.3f, "
                       "\"lat_p95_us\": %.3f, \"lat_p9999_us\": %.3f, \"lat_from\": \"%s\", ",
                       p50, p99, p999, pmax, spectrum[1], spectrum[2], spectrum[3], spectrum[6],
                       lat_from);
            else
                printf("\"lat_p50_us\": null, \"lat_p99_us\": null, \"lat_p999_us\": null, "
                       "\"lat_max_us\": null, \"lat_p75_us\": null, \"lat_p90_us\": null, "
                       "\"lat_p95_us\": null, \"lat_p9999_us\": null, \"lat_from\": null, ");
        } else {
            printf("\"received\": null, \"received_bytes\": null, \"recv_rate\": null, \"lost\": "
                   "null, "
                   "\"lat_p50_us\": null, \"lat_p99_us\": null, \"lat_p999_us\": null, "
                   "\"lat_max_us\": null, \"lat_p75_us\": null, \"lat_p90_us\": null, "
                   "\"lat_p95_us\": null, \"lat_p9999_us\": null, \"lat_from\": null, ");
        }
        printf(
            "\"connections\": %d, \"threads\": %d, \"size\": %u, \"comp\": %u, \"keys\": %" PRIu64
            ", "
            "\"rate_target\": %.1f, \"batch\": %d, \"conn_errors\": %d, \"interrupted\": %s, ",
            g_o.connections, g_o.threads, g_o.size, g_o.comp, g_o.keys, g_o.rate, g_batch,
            conn_errors, g_sigint ? "true" : "false");
        printf("\"run_id\": \"0x%016" PRIx64 "\", ", g_run_id);
        if (g_o.sink_listen)
            printf("\"foreign\": %" PRIu64 ", ", foreign);
        else
            printf("\"foreign\": null, ");
        if (g_o.acked)
            printf("\"acked\": %" PRIu64 ", \"unacked\": %" PRIu64 ", \"resent\": %" PRIu64
                   ", \"reconnects\": %" PRIu64 ", \"goaways\": %" PRIu64
                   ", \"goaway_redirects\": %" PRIu64 ", \"credit_waits\": %" PRIu64 ", ",
                   acked, unacked, resent, reconnects, goaways, redirects, credit_waits);
        else
            printf("\"acked\": null, \"unacked\": null, \"resent\": null, \"reconnects\": null, "
                   "\"goaways\": null, \"goaway_redirects\": null, \"credit_waits\": null, ");
        if (g_o.acked && ack_hist.count)
            printf("\"ack_p50_us\": %.3f, \"ack_p99_us\": %.3f, \"ack_p999_us\": %.3f, ",
                   (double)rill__hist_quantile(&ack_hist, 0.50) / 1e3,
                   (double)rill__hist_quantile(&ack_hist, 0.99) / 1e3,
                   (double)rill__hist_quantile(&ack_hist, 0.999) / 1e3);
        else
            printf("\"ack_p50_us\": null, \"ack_p99_us\": null, \"ack_p999_us\": null, ");
        if (g_o.verify)
            printf("\"missing\": %" PRIu64 ", \"duplicates\": %" PRIu64 ", \"unexpected\": %" PRIu64
                   "}\n",
                   missing, duplicates, unexpected);
        else
            printf("\"missing\": null, \"duplicates\": null, \"unexpected\": null}\n");
        fflush(stdout);
    }
    return exit_code;
}
