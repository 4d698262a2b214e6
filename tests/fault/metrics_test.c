/* core/metrics: the Prometheus endpoint of an in-process worker, scraped over real
 * sockets (a plain HTTP client here, and curl when it is installed). The exposition text
 * is parsed strictly (every line a comment or `name{labels} value`, every sample after its
 * TYPE) and its numbers compared with rill_worker_stats / rill_comp_stats and the frames
 * the test sent. Also: 404 / 405 / HEAD, an idle client closed by the server without
 * holding up other scrapes, several scrapes at once, probes answered behind more slow
 * clients than the server has slots. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "integration/tcp_util.h"
#include "metrics/metrics.h"
#include "net/addr.h"
#include "rill/rill.h"
#include "stats/counters.h"

#define COMP_PASS 1
#define COMP_FAIL 7
#define FAIL_NAME "we\"ird\\name" /* label escaping */
#define N_CONNS 2
#define N_PER_CONN 2000
#define N_FAIL 10
#define N_UNKNOWN 5

#define COMP_SLOW 3
#define SLOW_NS 3000000ull /* each of its batches sleeps this long */
#define N_SLOW_MSGS 200

static int slow_batch(uintptr_t ctx, unsigned loop, const rill_msg_t *m, size_t n,
                      rill_emitter_t *em)
{
    (void)ctx;
    (void)loop;
    (void)m;
    (void)n;
    (void)em;
    struct timespec ts = {0, (long)SLOW_NS};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
    return 0;
}

static int fail_batch(uintptr_t ctx, unsigned loop, const rill_msg_t *m, size_t n,
                      rill_emitter_t *em)
{
    (void)ctx;
    (void)loop;
    (void)m;
    (void)n;
    (void)em;
    return -1;
}

/* ------------------------------------------------------------ exposition parsing */

typedef struct sample {
    char name[128];
    char labels[256]; /* raw text between the braces, "" when none */
    double value;
} sample_t;

typedef struct expo {
    sample_t *s;
    size_t n, cap;
    char types[64][128]; /* metric names with a TYPE line */
    char kinds[64][16];  /* and their types */
    size_t ntypes;
} expo_t;

static int name_char(int c, int first)
{
    return isalpha(c) || c == '_' || c == ':' || (!first && isdigit(c));
}

static int has_type(const expo_t *e, const char *name)
{
    for (size_t i = 0; i < e->ntypes; i++)
        if (strcmp(e->types[i], name) == 0)
            return 1;
    return 0;
}

static const char *expo_type(const expo_t *e, const char *name);

/* The family a sample belongs to, into fam: its own name, or for a histogram's samples
 * the name without _bucket, _sum or _count. Returns 0, or -1 when no TYPE line covers it. */
static int sample_family(const expo_t *e, const char *name, char *fam, size_t cap)
{
    snprintf(fam, cap, "%s", name);
    if (has_type(e, fam))
        return 0;
    static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
    size_t l = strlen(name);
    for (size_t i = 0; i < 3; i++) {
        size_t sl = strlen(suffixes[i]);
        if (l > sl && strcmp(name + l - sl, suffixes[i]) == 0) {
            snprintf(fam, cap, "%.*s", (int)(l - sl), name);
            const char *t = expo_type(e, fam);
            if (t && strcmp(t, "histogram") == 0)
                return 0;
        }
    }
    return -1;
}

/* Parses one line strictly. Returns 0, or -1 with a message on stderr. */
static int parse_line(expo_t *e, const char *line, size_t len)
{
    char buf[1024];
    if (len == 0 || len >= sizeof buf) {
        fprintf(stderr, "  bad line length %zu\n", len);
        return -1;
    }
    memcpy(buf, line, len);
    buf[len] = '\0';
    if (buf[0] == '#') {
        char kind[8], name[128];
        int off = 0;
        if (sscanf(buf, "# %7s %127s %n", kind, name, &off) < 2)
            return 0; /* a plain comment */
        if (strcmp(kind, "TYPE") == 0) {
            const char *t = buf + off;
            if (strcmp(t, "counter") && strcmp(t, "gauge") && strcmp(t, "histogram") &&
                strcmp(t, "summary") && strcmp(t, "untyped")) {
                fprintf(stderr, "  bad TYPE: %s\n", buf);
                return -1;
            }
            if (has_type(e, name)) {
                fprintf(stderr, "  TYPE given twice: %s\n", buf);
                return -1;
            }
            if (e->ntypes == 64 || strlen(t) >= sizeof e->kinds[0])
                return -1;
            strcpy(e->kinds[e->ntypes], t);
            strcpy(e->types[e->ntypes++], name);
        }
        return 0;
    }
    const char *p = buf;
    if (!name_char(*p, 1)) {
        fprintf(stderr, "  bad metric name: %s\n", buf);
        return -1;
    }
    while (name_char(*p, 0))
        p++;
    sample_t s;
    memset(&s, 0, sizeof s);
    if ((size_t)(p - buf) >= sizeof s.name)
        return -1;
    memcpy(s.name, buf, (size_t)(p - buf));
    if (*p == '{') {
        const char *lb = ++p;
        for (;;) { /* label="value" pairs */
            if (!name_char(*p, 1)) {
                fprintf(stderr, "  bad label name: %s\n", buf);
                return -1;
            }
            while (name_char(*p, 0))
                p++;
            if (p[0] != '=' || p[1] != '"') {
                fprintf(stderr, "  bad label syntax: %s\n", buf);
                return -1;
            }
            p += 2;
            while (*p && *p != '"') {
                if (*p == '\\') {
                    if (p[1] != '\\' && p[1] != '"' && p[1] != 'n') {
                        fprintf(stderr, "  bad escape: %s\n", buf);
                        return -1;
                    }
                    p++;
                }
                p++;
            }
            if (*p != '"')
                return -1;
            p++;
            if (*p == ',') {
                p++;
                continue;
            }
            if (*p == '}')
                break;
            fprintf(stderr, "  bad label list: %s\n", buf);
            return -1;
        }
        if ((size_t)(p - lb) >= sizeof s.labels)
            return -1;
        memcpy(s.labels, lb, (size_t)(p - lb));
        p++;
    }
    if (*p != ' ') {
        fprintf(stderr, "  no space before the value: %s\n", buf);
        return -1;
    }
    p++;
    char *end;
    errno = 0;
    s.value = strtod(p, &end);
    if (end == p || *end != '\0' || errno) {
        fprintf(stderr, "  bad value (timestamps are not expected either): %s\n", buf);
        return -1;
    }
    char fam[128];
    if (sample_family(e, s.name, fam, sizeof fam) < 0) {
        fprintf(stderr, "  sample before its TYPE line: %s\n", buf);
        return -1;
    }
    if (e->n == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 64;
        e->s = realloc(e->s, e->cap * sizeof *e->s);
        if (!e->s)
            abort();
    }
    e->s[e->n++] = s;
    return 0;
}

static int parse_expo(expo_t *e, const char *body, size_t len)
{
    memset(e, 0, sizeof *e);
    if (len == 0 || body[len - 1] != '\n') {
        fprintf(stderr, "  body does not end with a newline\n");
        return -1;
    }
    size_t pos = 0;
    while (pos < len) {
        const char *nl = memchr(body + pos, '\n', len - pos);
        size_t l = (size_t)(nl - (body + pos));
        if (memchr(body + pos, '\r', l)) {
            fprintf(stderr, "  carriage return in the body\n");
            return -1;
        }
        if (parse_line(e, body + pos, l) < 0)
            return -1;
        pos += l + 1;
    }
    return 0;
}

/* TYPE of family name; NULL when it has none. */
static const char *expo_type(const expo_t *e, const char *name)
{
    for (size_t i = 0; i < e->ntypes; i++)
        if (strcmp(e->types[i], name) == 0)
            return e->kinds[i];
    return NULL;
}

/* Value of name{labels}; -1 when absent. */
static double expo_get(const expo_t *e, const char *name, const char *labels)
{
    for (size_t i = 0; i < e->n; i++)
        if (strcmp(e->s[i].name, name) == 0 && strcmp(e->s[i].labels, labels) == 0)
            return e->s[i].value;
    return -1;
}

/* ------------------------------------------------------------ HTTP client */

typedef struct resp {
    int status;
    char *raw;
    size_t raw_len;
    const char *body;
    size_t body_len;
    long content_length;
    int conn_close;
    int ctype_ok;
} resp_t;

static void resp_free(resp_t *r)
{
    free(r->raw);
    memset(r, 0, sizeof *r);
}

/* Sends req, reads to EOF (10 s at most), splits the answer. Returns 0 or -1. */
static int http(uint16_t port, const char *req, resp_t *r)
{
    memset(r, 0, sizeof *r);
    int fd = tu_connect(port, 5000);
    if (fd < 0)
        return -1;
    if (tu_write_all(fd, req, strlen(req)) < 0) {
        close(fd);
        return -1;
    }
    size_t cap = 65536;
    r->raw = malloc(cap);
    int64_t end = tu_now_ms() + 10000;
    for (;;) {
        struct pollfd pfd = {fd, POLLIN, 0};
        int left = (int)(end - tu_now_ms());
        if (left <= 0 || poll(&pfd, 1, left) <= 0) {
            fprintf(stderr, "  http: no EOF within 10 s\n");
            close(fd);
            return -1;
        }
        if (r->raw_len + 4096 > cap) {
            cap *= 2;
            r->raw = realloc(r->raw, cap);
        }
        ssize_t k = recv(fd, r->raw + r->raw_len, cap - r->raw_len - 1, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        r->raw_len += (size_t)k;
    }
    close(fd);
    r->raw[r->raw_len] = '\0';
    return 0;
}

static int split_resp(resp_t *r)
{
    if (sscanf(r->raw, "HTTP/1.%*d %d", &r->status) != 1)
        return -1;
    char *hend = strstr(r->raw, "\r\n\r\n");
    if (!hend)
        return -1;
    r->body = hend + 4;
    r->body_len = r->raw_len - (size_t)(r->body - r->raw);
    r->content_length = -1;
    for (char *h = strstr(r->raw, "\r\n") + 2; h < hend; h = strstr(h, "\r\n") + 2) {
        if (strncasecmp(h, "Content-Length:", 15) == 0)
            r->content_length = strtol(h + 15, NULL, 10);
        else if (strncasecmp(h, "Connection: close", 17) == 0)
            r->conn_close = 1;
        else if (strncasecmp(h, "Content-Type: text/plain; version=0.0.4", 39) == 0)
            r->ctype_ok = 1;
    }
    return 0;
}

static int scrape(uint16_t port, const char *req, resp_t *r)
{
    if (http(port, req, r) < 0 || split_resp(r) < 0) {
        resp_free(r);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ fixture */

typedef struct fix {
    tu_sink_t *sink;
    rill_worker_t *w;
    rill__metrics_t *m;
    uint16_t port, mport;
} fix_t;

static int fix_up(fix_t *f)
{
    memset(f, 0, sizeof *f);
    tu_ignore_sigpipe();
    if (tu_sink_new(&f->sink, NULL, NULL) < 0)
        return -1;
    rill_config_t *cfg = rill_config_new();
    rill_config_set_threads(cfg, 2);
    rill_config_add_listener(cfg, "127.0.0.1:0", RILL_FRAMING_RILL, 0, 0, 0);
    rill_config_add_sink(cfg, tu_sink_addr(f->sink));
    int rc = rill_worker_new(&f->w, cfg);
    rill_config_destroy(cfg);
    if (rc < 0) {
        fprintf(stderr, "  rill_worker_new: %s\n", rill_strerror(rc));
        return -1;
    }
    rill_comp_ops_t pass = {tu_pass_batch, NULL, NULL}, fail = {fail_batch, NULL, NULL};
    if (rill_comp_register(f->w, COMP_PASS, "passthrough", &pass, 0) < 0 ||
        rill_comp_register(f->w, COMP_FAIL, FAIL_NAME, &fail, 0) < 0 || rill_worker_start(f->w) < 0)
        return -1;
    f->port = (uint16_t)rill_worker_listener_port(f->w, 0);
    rill__addr_t a;
    if (rill__addr_parse(&a, "127.0.0.1:0") < 0 ||
        (rc = rill__metrics_start(&f->m, f->w, &a)) < 0) {
        fprintf(stderr, "  rill__metrics_start: %s\n", rill_strerror(rc));
        return -1;
    }
    f->mport = (uint16_t)rill__metrics_port(f->m);
    return 0;
}

static void fix_down(fix_t *f)
{
    rill__metrics_stop(f->m);
    if (f->w)
        rill_worker_destroy(f->w);
    tu_sink_destroy(f->sink);
}

/* Sends the test traffic: N_CONNS x N_PER_CONN frames to the passthrough, N_FAIL to the
 * failing computation, N_UNKNOWN to an unregistered id, one frame with length 1; then
 * waits until the worker has processed it all and every connection is closed. */
static int send_traffic(fix_t *f)
{
    tu_buf_t b = {0};
    for (int c = 0; c < N_CONNS; c++) {
        int fd = tu_connect(f->port, 5000);
        if (fd < 0)
            return -1;
        b.len = 0;
        for (uint32_t i = 0; i < N_PER_CONN; i++)
            tu_buf_frame(&b, COMP_PASS, (uint64_t)c << 32 | i, &i, sizeof i);
        if (c == 0) {
            for (uint32_t i = 0; i < N_FAIL; i++)
                tu_buf_frame(&b, COMP_FAIL, i, "x", 1);
            for (uint32_t i = 0; i < N_UNKNOWN; i++)
                tu_buf_frame(&b, 99, i, "y", 1);
        }
        if (tu_write_all(fd, b.data, b.len) < 0)
            return -1;
        close(fd);
    }
    tu_buf_free(&b);
    int fd = tu_connect(f->port, 5000);
    static const uint8_t bad[] = {0, 0, 0, 1, 'z'};
    if (fd < 0 || tu_write_all(fd, bad, sizeof bad) < 0)
        return -1;
    tu_wait_peer_closed(fd, 5000);
    close(fd);
    const uint64_t total = N_CONNS * N_PER_CONN + N_FAIL + N_UNKNOWN;
    if (tu_wait_stat_eq(f->w, TU_STAT(msgs_in), total, 20000, NULL) < 0 ||
        tu_wait_stat_eq(f->w, TU_STAT(err_frame_short), 1, 20000, NULL) < 0 ||
        tu_wait_stat_eq(f->w, TU_STAT(conns_open), 0, 20000, NULL) < 0 ||
        tu_sink_wait_count(f->sink, N_CONNS * N_PER_CONN, 20000) < 0)
        return -1;
    /* The sink can have read every frame before the loop has seen its send complete:
     * wait for the counters of the sends too, so that they stay put while checked. */
    const uint64_t out_bytes = (uint64_t)N_CONNS * N_PER_CONN * (16 + sizeof(uint32_t));
    if (tu_wait_stat_eq(f->w, TU_STAT(bytes_out), out_bytes, 20000, NULL) < 0 ||
        tu_wait_stat_eq(f->w, TU_STAT(sink_queued_bytes), 0, 20000, NULL) < 0)
        return -1;
    return 0;
}

/* Checks computation labels' rill_comp_batch_seconds histogram: typed histogram,
 * RILL_BATCH_BUCKETS buckets in order of increasing le, cumulative counts that never
 * decrease, +Inf = _count = batches. Stores _sum (seconds) in *sum. */
static int check_hist(const expo_t *e, const char *labels, uint64_t batches, double *sum)
{
    ASSERT_TRUE(expo_type(e, "rill_comp_batch_seconds") != NULL);
    ASSERT_STR_EQ(expo_type(e, "rill_comp_batch_seconds"), "histogram");
    char prefix[300];
    snprintf(prefix, sizeof prefix, "%s,le=\"", labels);
    size_t pl = strlen(prefix), nb = 0;
    double last_le = -1, last = 0, inf = -1;
    for (size_t i = 0; i < e->n; i++) {
        const sample_t *x = &e->s[i];
        if (strcmp(x->name, "rill_comp_batch_seconds_bucket") != 0 ||
            strncmp(x->labels, prefix, pl) != 0)
            continue;
        const char *le = x->labels + pl;
        double bound = strncmp(le, "+Inf\"", 5) == 0 ? 1e300 : strtod(le, NULL);
        if (!(bound > last_le))
            T_FAIL_AT_("%s: bucket le=%s after le=%g", labels, le, last_le);
        if (x->value < last)
            T_FAIL_AT_("%s: bucket le=%s holds %g, below the previous %g", labels, le, x->value,
                       last);
        last_le = bound;
        last = x->value;
        if (bound == 1e300)
            inf = x->value;
        nb++;
    }
    ASSERT_EQ(nb, RILL_BATCH_BUCKETS);
    double count = expo_get(e, "rill_comp_batch_seconds_count", labels);
    *sum = expo_get(e, "rill_comp_batch_seconds_sum", labels);
    ASSERT_TRUE(*sum >= 0);
    ASSERT_U64_EQ((uint64_t)inf, (uint64_t)count);
    ASSERT_U64_EQ((uint64_t)count, batches);
    return 0;
}

/* Checks a parsed exposition against the worker's own numbers (traffic has stopped). */
static int check_expo(fix_t *f, const expo_t *e)
{
    rill_stats_t st;
    ASSERT_EQ(rill_worker_stats(f->w, &st, sizeof st), 0);
    const uint64_t total = N_CONNS * N_PER_CONN + N_FAIL + N_UNKNOWN;
    ASSERT_U64_EQ(st.msgs_in, total);
    ASSERT_U64_EQ((uint64_t)expo_get(e, "rill_msgs_in_total", ""), total);
    ASSERT_U64_EQ((uint64_t)expo_get(e, "rill_bytes_in_total", ""), st.bytes_in);
    ASSERT_U64_EQ((uint64_t)expo_get(e, "rill_msgs_dispatched_total", ""), st.msgs_dispatched);
    ASSERT_U64_EQ((uint64_t)expo_get(e, "rill_batches_total", ""), st.batches);
    ASSERT_U64_EQ((uint64_t)expo_get(e, "rill_msgs_out_total", ""), N_CONNS * N_PER_CONN);
    ASSERT_U64_EQ((uint64_t)expo_get(e, "rill_msgs_out_total", ""), st.msgs_out);
    ASSERT_U64_EQ((uint64_t)expo_get(e, "rill_bytes_out_total", ""), st.bytes_out);
    ASSERT_U64_EQ((uint64_t)expo_get(e, "rill_handoff_msgs_total", ""), st.handoff_msgs);
    ASSERT_U64_EQ((uint64_t)expo_get(e, "rill_conns_accepted_total", ""), N_CONNS + 1);
    ASSERT_EQ(expo_get(e, "rill_conns_open", ""), 0);
    ASSERT_EQ(expo_get(e, "rill_conns_refused_total", ""), 0);
    ASSERT_U64_EQ((uint64_t)expo_get(e, "rill_conn_errors_total", ""), st.err_conn);
    ASSERT_EQ(expo_get(e, "rill_unknown_comp_total", ""), N_UNKNOWN);
    ASSERT_EQ(expo_get(e, "rill_failed_msgs_total", ""), N_FAIL);
    ASSERT_EQ(expo_get(e, "rill_sink_dropped_total", ""), 0);
    ASSERT_U64_EQ((uint64_t)expo_get(e, "rill_sink_errors_total", ""), st.sink_errors);
    ASSERT_U64_EQ((uint64_t)expo_get(e, "rill_recv_enobufs_total", ""), st.enobufs);
    ASSERT_U64_EQ((uint64_t)expo_get(e, "rill_paused_total", ""), st.paused);
    ASSERT_EQ(expo_get(e, "rill_protocol_errors_total", "reason=\"frame_short\""), 1);
    ASSERT_EQ(expo_get(e, "rill_protocol_errors_total", "reason=\"frame_long\""), 0);
    ASSERT_EQ(expo_get(e, "rill_protocol_errors_total", "reason=\"midframe\""), 0);
    ASSERT_EQ(expo_get(e, "rill_protocol_errors_total", "reason=\"idle\""), 0);
    ASSERT_EQ(expo_get(e, "rill_loops", ""), 2);
    /* Everything was delivered: the queue gauges are back to zero. */
    ASSERT_EQ(expo_get(e, "rill_sink_queued_bytes", ""), 0);
    ASSERT_EQ(expo_get(e, "rill_stage_queued_bytes", ""), 0);
    ASSERT_EQ(expo_get(e, "rill_held_buffers", ""), 0);
    ASSERT_EQ(expo_get(e, "rill_forwarded_total", ""), 0); /* not clustered */

    rill_comp_stats_t cs;
    ASSERT_EQ(rill_comp_stats(f->w, COMP_PASS, &cs, sizeof cs), 0);
    const char *pl = "id=\"1\",name=\"passthrough\"";
    ASSERT_EQ(expo_get(e, "rill_comp_messages_total", pl), N_CONNS * N_PER_CONN);
    ASSERT_U64_EQ((uint64_t)expo_get(e, "rill_comp_batches_total", pl), cs.batches);
    ASSERT_GT(cs.batches, 0);
    ASSERT_EQ(expo_get(e, "rill_comp_errors_total", pl), 0);
    double sum;
    if (check_hist(e, pl, cs.batches, &sum))
        return 1;
    /* The C API's buckets (not cumulative) add up to the batches too. */
    uint64_t in_buckets = 0;
    for (unsigned k = 0; k < RILL_BATCH_BUCKETS; k++)
        in_buckets += cs.batch_buckets[k];
    ASSERT_U64_EQ(in_buckets, cs.batches);
    const char *fl = "id=\"7\",name=\"we\\\"ird\\\\name\"";
    ASSERT_EQ(expo_get(e, "rill_comp_messages_total", fl), N_FAIL);
    ASSERT_EQ(expo_get(e, "rill_comp_errors_total", fl), N_FAIL);
    ASSERT_EQ(rill_comp_stats(f->w, COMP_FAIL, &cs, sizeof cs), 0);
    ASSERT_U64_EQ((uint64_t)expo_get(e, "rill_comp_batches_total", fl), cs.batches);
    if (check_hist(e, fl, cs.batches, &sum))
        return 1;

    /* Every counter of the table is exported, typed as the table says, with the value
     * rill_worker_stats gives. */
    size_t rows = 0;
#define CHECK_ROW_(name, kind, source, line, metric, help)                                         \
    do {                                                                                           \
        char fam[128], lab[128];                                                                   \
        size_t fl = strcspn(metric, "{");                                                          \
        snprintf(fam, sizeof fam, "%.*s", (int)fl, metric);                                        \
        snprintf(lab, sizeof lab, "%s", metric[fl] ? metric + fl + 1 : "");                        \
        if (lab[0])                                                                                \
            lab[strlen(lab) - 1] = '\0'; /* the closing brace */                                   \
        const char *type = expo_type(e, fam);                                                      \
        if (!type)                                                                                 \
            T_FAIL_AT_("%s (%s): no TYPE line for %s", #name, metric, fam);                        \
        ASSERT_STR_EQ(type, RILL__COUNTER_TYPE_##kind);                                            \
        if (expo_get(e, fam, lab) < 0)                                                             \
            T_FAIL_AT_("%s: no sample %s", #name, metric);                                         \
        if (strstr(fam, "_seconds")) /* a field in ns, exported in seconds */                      \
            ASSERT_U64_EQ((uint64_t)(expo_get(e, fam, lab) * 1e9 + 0.5), st.name);                 \
        else                                                                                       \
            ASSERT_U64_EQ((uint64_t)expo_get(e, fam, lab), st.name);                               \
        rows++;                                                                                    \
    } while (0);
    RILL__COUNTERS(CHECK_ROW_)
#undef CHECK_ROW_
    ASSERT_EQ(rows, RILL__COUNTER_COUNT);
    ASSERT_EQ(expo_get(e, "rill_peer_dropped_total", ""), 0);
    ASSERT_EQ(expo_get(e, "rill_handoff_dropped_total", ""), 0);

    /* Every counter family is named *_total (the exposition format's convention). */
    for (size_t i = 0; i < e->n; i++) {
        char fam[128];
        ASSERT_EQ(sample_family(e, e->s[i].name, fam, sizeof fam), 0);
        if (strcmp(expo_type(e, fam), "histogram") == 0)
            continue;
        size_t l = strlen(e->s[i].name);
        int total_suffix = l > 6 && strcmp(e->s[i].name + l - 6, "_total") == 0;
        int gauge = strcmp(expo_type(e, e->s[i].name), "gauge") == 0;
        if (total_suffix == gauge)
            T_FAIL_AT_("%s is a %s", e->s[i].name,
                       gauge ? "gauge named *_total" : "counter not named *_total");
    }
    return 0;
}

/* ------------------------------------------------------------ cases */

static int test_scrape_parse(void)
{
    fix_t f;
    if (fix_up(&f) < 0) {
        fix_down(&f);
        T_FAIL_AT_("fixture set-up failed");
    }
    int rc = 1;
    resp_t r = {0};
    expo_t e = {0};
    if (send_traffic(&f) < 0) {
        fprintf(stderr, "  FAIL: traffic did not go through\n");
        goto out;
    }
    if (scrape(f.mport, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &r) < 0) {
        fprintf(stderr, "  FAIL: scrape\n");
        goto out;
    }
    if (r.status != 200 || !r.ctype_ok || !r.conn_close || r.content_length != (long)r.body_len) {
        fprintf(stderr, "  FAIL: status %d ctype_ok %d close %d length %ld body %zu\n", r.status,
                r.ctype_ok, r.conn_close, r.content_length, r.body_len);
        goto out;
    }
    if (parse_expo(&e, r.body, r.body_len) < 0) {
        fprintf(stderr, "  FAIL: the exposition does not parse:\n%s\n", r.body);
        goto out;
    }
    rc = check_expo(&f, &e);
    if (rc)
        fprintf(stderr, "%s", r.body);
out:
    free(e.s);
    resp_free(&r);
    fix_down(&f);
    return rc;
}

static int test_curl(void)
{
    if (system("command -v curl >/dev/null 2>&1") != 0)
        T_SKIP("curl is not installed (scripts/setup installs it)");
    fix_t f;
    if (fix_up(&f) < 0) {
        fix_down(&f);
        T_FAIL_AT_("fixture set-up failed");
    }
    int rc = 1;
    expo_t e = {0};
    char *body = NULL;
    size_t len = 0, cap = 0;
    if (send_traffic(&f) < 0) {
        fprintf(stderr, "  FAIL: traffic did not go through\n");
        goto out;
    }
    char cmd[256];
    snprintf(cmd, sizeof cmd,
             "curl -sS --fail --max-time 10 -H 'Accept: text/plain' http://127.0.0.1:%u/metrics",
             (unsigned)f.mport);
    FILE *p = popen(cmd, "r");
    if (!p)
        goto out;
    for (;;) {
        if (len + 4096 > cap) {
            cap = cap ? cap * 2 : 65536;
            body = realloc(body, cap);
        }
        size_t k = fread(body + len, 1, cap - len, p);
        if (k == 0)
            break;
        len += k;
    }
    int st = pclose(p);
    if (st != 0) {
        fprintf(stderr, "  FAIL: curl exited with status %d\n", st);
        goto out;
    }
    if (parse_expo(&e, body, len) < 0) {
        fprintf(stderr, "  FAIL: curl's body does not parse\n");
        goto out;
    }
    rc = check_expo(&f, &e);
out:
    free(e.s);
    free(body);
    fix_down(&f);
    return rc;
}

static int test_errors_and_head(void)
{
    fix_t f;
    if (fix_up(&f) < 0) {
        fix_down(&f);
        T_FAIL_AT_("fixture set-up failed");
    }
    resp_t r;
    int rc = 1;
    if (scrape(f.mport, "GET /nope HTTP/1.1\r\n\r\n", &r) < 0 || r.status != 404 ||
        r.content_length != (long)r.body_len || !r.conn_close) {
        fprintf(stderr, "  FAIL: 404 for /nope (status %d)\n", r.status);
        goto out;
    }
    resp_free(&r);
    if (scrape(f.mport, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", &r) < 0 ||
        r.status != 405) {
        fprintf(stderr, "  FAIL: 405 for POST (status %d)\n", r.status);
        goto out;
    }
    resp_free(&r);
    if (scrape(f.mport, "HEAD /metrics HTTP/1.0\r\n\r\n", &r) < 0 || r.status != 200 ||
        r.body_len != 0 || r.content_length <= 0) {
        fprintf(stderr, "  FAIL: HEAD (status %d, body %zu, length %ld)\n", r.status, r.body_len,
                r.content_length);
        goto out;
    }
    resp_free(&r);
    if (scrape(f.mport, "GET /metrics?name[]=x HTTP/1.1\r\n\r\n", &r) < 0 || r.status != 200) {
        fprintf(stderr, "  FAIL: a query string is ignored (status %d)\n", r.status);
        goto out;
    }
    resp_free(&r);
    if (scrape(f.mport, "garbage\r\n\r\n", &r) < 0 || r.status != 400) {
        fprintf(stderr, "  FAIL: 400 for garbage (status %d)\n", r.status);
        goto out;
    }
    resp_free(&r);
    /* A request that never ends: 431 once the buffer is full, or closed. */
    {
        int fd = tu_connect(f.mport, 5000);
        char big[4096];
        memset(big, 'a', sizeof big);
        memcpy(big, "GET /metrics HTTP/1.1\r\nX: ", 26);
        for (int i = 0; i < 3 && fd >= 0; i++)
            if (tu_write_all(fd, big, sizeof big) < 0)
                break;
        char head[16] = {0};
        if (fd < 0 || tu_read_exact(fd, head, 12, 10000) < 0 || memcmp(head, "HTTP/1.1 431", 12)) {
            fprintf(stderr, "  FAIL: 431 for an overlong request (got '%s')\n", head);
            if (fd >= 0)
                close(fd);
            goto out;
        }
        close(fd);
    }
    rc = 0;
out:
    resp_free(&r);
    fix_down(&f);
    return rc;
}

typedef struct scraper {
    uint16_t port;
    int ok;
} scraper_t;

static void *scrape_thread(void *arg)
{
    scraper_t *s = arg;
    for (int i = 0; i < 20; i++) {
        resp_t r;
        expo_t e = {0};
        if (scrape(s->port, "GET /metrics HTTP/1.1\r\n\r\n", &r) < 0)
            return NULL;
        int good = r.status == 200 && r.content_length == (long)r.body_len &&
                   parse_expo(&e, r.body, r.body_len) == 0;
        free(e.s);
        resp_free(&r);
        if (!good)
            return NULL;
    }
    s->ok = 1;
    return NULL;
}

/* Idle and half-request clients hold a slot each but block nobody; the server closes them
 * by its deadline; 4 threads scraping at once all get whole answers. */
/* GET path on port: returns the status and copies the body into out (NUL-terminated). */
static int probe(uint16_t port, const char *path, char *out, size_t cap)
{
    char req[64];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\n\r\n", path);
    resp_t r;
    if (scrape(port, req, &r) < 0)
        return -1;
    int status = r.status;
    size_t n = r.body_len < cap - 1 ? r.body_len : cap - 1;
    memcpy(out, r.body ? r.body : "", n);
    out[n] = '\0';
    resp_free(&r);
    return status;
}

/* Waits until rill_worker_ready(w) is want with reason why_want (ignored for 1). */
static int wait_ready(rill_worker_t *w, int want, const char *why_want)
{
    char why[64];
    for (int64_t end = tu_now_ms() + 30000; tu_now_ms() < end; tu_sleep_ms(5)) {
        int r = rill_worker_ready(w, why, sizeof why);
        if (r == want && (want == 1 || strcmp(why, why_want) == 0))
            return 0;
    }
    fprintf(stderr, "  FAIL: ready never became %d ('%s'); last reason '%s'\n", want,
            why_want ? why_want : "", why);
    return -1;
}

/* A sink that is not connected makes the worker unready: before its listener exists,
 * ready once it accepts (the gauge sinks_up = 1), unready again after it closes. */
static int test_probes_sink(void)
{
    tu_ignore_sigpipe();
    uint16_t port;
    int lfd = tu_listen(0, &port); /* a free port, released until the sink should come up */
    if (lfd < 0)
        T_FAIL_AT_("listen");
    close(lfd);
    char sink[32];
    snprintf(sink, sizeof sink, "127.0.0.1:%u", (unsigned)port);
    rill_config_t *cfg = rill_config_new();
    rill_config_add_listener(cfg, "127.0.0.1:0", RILL_FRAMING_RILL, 0, 0, 0);
    rill_config_add_sink(cfg, sink);
    rill_worker_t *w = NULL;
    int rc = rill_worker_new(&w, cfg);
    rill_config_destroy(cfg);
    rill__metrics_t *m = NULL;
    rill__addr_t a;
    int ok = rc == 0 && rill_worker_start(w) == 0 && rill__addr_parse(&a, "127.0.0.1:0") == 0 &&
             rill__metrics_start(&m, w, &a) == 0;
    char body[256];
    int cfd = -1;
    rill_stats_t st;
    rc = 1;
    if (!ok) {
        fprintf(stderr, "  FAIL: set-up\n");
        goto out;
    }
    uint16_t mport = (uint16_t)rill__metrics_port(m);
    if (wait_ready(w, 0, "a sink is not connected") < 0)
        goto out;
    if (probe(mport, "/readyz", body, sizeof body) != 503 ||
        strcmp(body, "not ready: a sink is not connected\n") != 0) {
        fprintf(stderr, "  FAIL: /readyz without the sink ('%s')\n", body);
        goto out;
    }
    uint16_t again;
    if ((lfd = tu_listen(port, &again)) < 0) {
        fprintf(stderr, "  FAIL: listen on the sink's port again: %s\n", rill_strerror(lfd));
        goto out;
    }
    if (wait_ready(w, 1, NULL) < 0)
        goto out;
    rill_worker_stats(w, &st, sizeof st);
    if (st.sinks_up != 1 || probe(mport, "/readyz", body, sizeof body) != 200) {
        fprintf(stderr, "  FAIL: sink up: sinks_up %llu, /readyz '%s'\n",
                (unsigned long long)st.sinks_up, body);
        goto out;
    }
    /* The sink goes away: the worker notices the hang-up. */
    for (int64_t end = tu_now_ms() + 10000; cfd < 0 && tu_now_ms() < end; tu_sleep_ms(5))
        cfd = accept(lfd, NULL, NULL);
    close(lfd);
    lfd = -1;
    if (cfd >= 0)
        close(cfd);
    cfd = -1;
    if (wait_ready(w, 0, "a sink is not connected") < 0)
        goto out;
    rill_worker_stats(w, &st, sizeof st);
    if (st.sinks_up != 0) {
        fprintf(stderr, "  FAIL: sink gone: sinks_up %llu\n", (unsigned long long)st.sinks_up);
        goto out;
    }
    rc = 0;
out:
    if (lfd >= 0)
        close(lfd);
    if (m)
        rill__metrics_stop(m);
    if (w)
        rill_worker_destroy(w);
    return rc;
}

/* /healthz answers while the server runs; /readyz follows rill_worker_ready: ready while
 * the loops run, 503 with the reason before the start and once the worker stops. */
static int test_probes(void)
{
    fix_t f;
    if (fix_up(&f) < 0) {
        fix_down(&f);
        T_FAIL_AT_("fixture set-up failed");
    }
    char body[256], why[64];
    int rc = 1;
    if (probe(f.mport, "/healthz", body, sizeof body) != 200 || strcmp(body, "ok\n") != 0) {
        fprintf(stderr, "  FAIL: /healthz ('%s')\n", body);
        goto out;
    }
    /* The loops' rings may still be being set up right after the start. */
    int64_t end = tu_now_ms() + 30000;
    while (rill_worker_ready(f.w, why, sizeof why) != 1 && tu_now_ms() < end)
        tu_sleep_ms(5);
    if (probe(f.mport, "/readyz", body, sizeof body) != 200 || strcmp(body, "ready\n") != 0) {
        fprintf(stderr, "  FAIL: /readyz while running ('%s')\n", body);
        goto out;
    }
    rill_worker_stop(f.w);
    if (rill_worker_ready(f.w, why, sizeof why) != 0 || strcmp(why, "stopping") != 0 ||
        probe(f.mport, "/readyz", body, sizeof body) != 503 ||
        strcmp(body, "not ready: stopping\n") != 0) {
        fprintf(stderr, "  FAIL: /readyz after the stop ('%s', why '%s')\n", body, why);
        goto out;
    }
    if (probe(f.mport, "/healthz", body, sizeof body) != 200) {
        fprintf(stderr, "  FAIL: /healthz after the stop ('%s')\n", body);
        goto out;
    }
    /* A worker that was never started. */
    rill_config_t *cfg = rill_config_new();
    rill_worker_t *idle = NULL;
    if (!cfg || rill_config_add_listener(cfg, "127.0.0.1:0", RILL_FRAMING_RILL, 0, 0, 0) < 0 ||
        rill_worker_new(&idle, cfg) < 0) {
        rill_config_destroy(cfg);
        fprintf(stderr, "  FAIL: a second worker\n");
        goto out;
    }
    rill_config_destroy(cfg);
    int ready = rill_worker_ready(idle, why, sizeof why);
    rill_worker_destroy(idle);
    if (ready != 0 || strcmp(why, "loops not running") != 0 ||
        rill_worker_ready(NULL, NULL, 0) != RILL_EINVAL) {
        fprintf(stderr, "  FAIL: not started: %d '%s'\n", ready, why);
        goto out;
    }
    rc = 0;
out:
    fix_down(&f);
    return rc;
}

static int test_concurrent_and_idle(void)
{
    fix_t f;
    if (fix_up(&f) < 0) {
        fix_down(&f);
        T_FAIL_AT_("fixture set-up failed");
    }
    int rc = 1;
    int idle = tu_connect(f.mport, 5000);
    int half = tu_connect(f.mport, 5000);
    if (idle < 0 || half < 0 || tu_write_all(half, "GET /metr", 9) < 0)
        goto out;
    scraper_t s[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        s[i] = (scraper_t){f.mport, 0};
        pthread_create(&t[i], NULL, scrape_thread, &s[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 4; i++)
        if (!s[i].ok) {
            fprintf(stderr, "  FAIL: scraper %d did not get 20 good answers\n", i);
            goto out;
        }
    /* Closed by the server's 2 s header timeout (failure bound 20 s). */
    int a = tu_wait_peer_closed(idle, 20000), b = tu_wait_peer_closed(half, 20000);
    if (!tu_closed_rc(a) || !tu_closed_rc(b)) {
        fprintf(stderr, "  FAIL: idle clients not closed by the server (%d, %d)\n", a, b);
        goto out;
    }
    rc = 0;
out:
    if (idle >= 0)
        close(idle);
    if (half >= 0)
        close(half);
    fix_down(&f);
    return rc;
}

/* More slow clients than slots (each sent half a request line and holds its connection):
 * /metrics, /healthz and /readyz still answer 200 at the first try, and the server closes
 * every held connection by itself. Also: 64 clients that come and go without a word. */
#define N_SLOW 300

static int test_slow_clients(void)
{
    /* N_SLOW descriptors here, as many in the server (same process). */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 4 * N_SLOW) {
        rl.rlim_cur = rl.rlim_max < 4 * N_SLOW ? rl.rlim_max : 4 * N_SLOW;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    fix_t f;
    if (fix_up(&f) < 0) {
        fix_down(&f);
        T_FAIL_AT_("fixture set-up failed");
    }
    int fds[N_SLOW], rc = 1;
    for (int i = 0; i < N_SLOW; i++)
        fds[i] = -1;
    char why[64], body[256];
    int64_t end = tu_now_ms() + 30000;
    while (rill_worker_ready(f.w, why, sizeof why) != 1 && tu_now_ms() < end)
        tu_sleep_ms(5);
    for (int i = 0; i < 64; i++) {
        int fd = tu_connect(f.mport, 5000);
        if (fd >= 0)
            close(fd);
    }
    int64_t t0 = tu_now_ms();
    for (int i = 0; i < N_SLOW; i++) {
        fds[i] = tu_connect(f.mport, 5000);
        if (fds[i] < 0 || tu_write_all(fds[i], "GET /metr", 9) < 0) {
            fprintf(stderr, "  FAIL: slow client %d: connect or write failed\n", i);
            goto out;
        }
    }
    int64_t t1 = tu_now_ms();
    static const char *const paths[] = {"/metrics", "/healthz", "/readyz"};
    int64_t took[3];
    for (int p = 0; p < 3; p++) {
        int64_t s0 = tu_now_ms();
        int status = probe(f.mport, paths[p], body, sizeof body);
        took[p] = tu_now_ms() - s0;
        if (status != 200) {
            fprintf(stderr, "  FAIL: %s answered %d behind %d slow clients\n", paths[p], status,
                    N_SLOW);
            goto out;
        }
    }
    /* The answer above came whole, with the slow clients held: check one parses too. */
    resp_t r;
    expo_t e = {0};
    if (scrape(f.mport, "GET /metrics HTTP/1.1\r\n\r\n", &r) < 0 || r.status != 200 ||
        parse_expo(&e, r.body, r.body_len) < 0) {
        fprintf(stderr, "  FAIL: a whole /metrics behind %d slow clients\n", N_SLOW);
        free(e.s);
        resp_free(&r);
        goto out;
    }
    free(e.s);
    resp_free(&r);
    /* Every held connection is closed by the server: evicted, or by its header timeout. */
    end = tu_now_ms() + 30000;
    for (int i = 0; i < N_SLOW; i++) {
        int64_t left = end - tu_now_ms();
        int w = tu_wait_peer_closed(fds[i], left > 0 ? (int)left : 1);
        if (!tu_closed_rc(w)) {
            fprintf(stderr, "  FAIL: slow client %d not closed by the server (%d)\n", i, w);
            goto out;
        }
    }
    fprintf(stderr,
            "  %d slow clients opened in %lld ms; /metrics %lld ms, /healthz %lld ms, /readyz "
            "%lld ms; all closed by the server %lld ms after the last opened\n",
            N_SLOW, (long long)(t1 - t0), (long long)took[0], (long long)took[1],
            (long long)took[2], (long long)(tu_now_ms() - t1));
    rc = 0;
out:
    for (int i = 0; i < N_SLOW; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    fix_down(&f);
    return rc;
}

/* A computation that sleeps 3 ms in every batch: its histogram counts every batch
 * (_count = rill_comp_batches_total = rill_comp_stats' batches), _sum is at least
 * batches x 3 ms, no batch sits in a bucket below 3 ms, and the C API's histogram agrees. */
static int test_batch_histogram(void)
{
    fix_t f;
    if (fix_up(&f) < 0) {
        fix_down(&f);
        T_FAIL_AT_("fixture set-up failed");
    }
    int rc = 1;
    resp_t r = {0};
    expo_t e = {0};
    rill_comp_ops_t slow = {slow_batch, NULL, NULL};
    if (rill_comp_register(f.w, COMP_SLOW, "sleepy", &slow, 0) < 0) {
        fprintf(stderr, "  FAIL: register\n");
        goto out;
    }
    /* Frames in 20 writes a few ms apart, so the loops see them in many batches. */
    int fd = tu_connect(f.port, 5000);
    if (fd < 0)
        goto out;
    tu_buf_t b = {0};
    for (uint32_t i = 0; i < N_SLOW_MSGS; i++) {
        tu_buf_frame(&b, COMP_SLOW, i, &i, sizeof i);
        if ((i + 1) % (N_SLOW_MSGS / 20) == 0) {
            if (tu_write_all(fd, b.data, b.len) < 0) {
                close(fd);
                tu_buf_free(&b);
                goto out;
            }
            b.len = 0;
            tu_sleep_ms(2);
        }
    }
    tu_buf_free(&b);
    close(fd);
    rill_comp_stats_t cs;
    int64_t t0 = tu_now_ms(), end = t0 + 30000;
    while ((rill_comp_stats(f.w, COMP_SLOW, &cs, sizeof cs) < 0 || cs.msgs < N_SLOW_MSGS) &&
           tu_now_ms() < end)
        tu_sleep_ms(10);
    if (cs.msgs != N_SLOW_MSGS) {
        fprintf(stderr, "  FAIL: %llu of %d messages ran within 30 s\n",
                (unsigned long long)cs.msgs, N_SLOW_MSGS);
        goto out;
    }
    if (scrape(f.mport, "GET /metrics HTTP/1.1\r\n\r\n", &r) < 0 || r.status != 200 ||
        parse_expo(&e, r.body, r.body_len) < 0) {
        fprintf(stderr, "  FAIL: scrape\n");
        goto out;
    }
    const char *sl = "id=\"3\",name=\"sleepy\"";
    double batches = expo_get(&e, "rill_comp_batches_total", sl), sum;
    if (check_hist(&e, sl, cs.batches, &sum))
        goto out;
    ASSERT_U64_EQ((uint64_t)batches, cs.batches);
    ASSERT_GT(cs.batches, 1);
    ASSERT_TRUE(sum >= (double)cs.batches * (double)SLOW_NS / 1e9);
    ASSERT_U64_EQ(cs.batch_ns, (uint64_t)(sum * 1e9 + 0.5));
    ASSERT_TRUE(cs.batch_ns >= cs.batches * SLOW_NS);
    /* Each batch took 3 ms or more: every bucket whose bound is below 3 ms is empty, in the
     * exposition and in rill_comp_stats_t. */
    uint64_t in_buckets = 0;
    for (unsigned k = 0; k < RILL_BATCH_BUCKETS; k++) {
        in_buckets += cs.batch_buckets[k];
        uint64_t le = rill_batch_bucket_le_ns(k);
        if (le >= SLOW_NS)
            continue;
        char lab[128];
        snprintf(lab, sizeof lab, "%s,le=\"%g\"", sl, (double)le / 1e9);
        ASSERT_EQ(expo_get(&e, "rill_comp_batch_seconds_bucket", lab), 0);
        ASSERT_U64_EQ(cs.batch_buckets[k], 0);
    }
    ASSERT_U64_EQ(in_buckets, cs.batches);
    fprintf(stderr, "  %llu batches, %.6f s in the callbacks (%.3f ms each on average)\n",
            (unsigned long long)cs.batches, sum, sum * 1e3 / (double)cs.batches);
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "%s", r.body ? r.body : "");
    free(e.s);
    resp_free(&r);
    fix_down(&f);
    return rc;
}

static int test_start_errors(void)
{
    rill__metrics_t *m = (rill__metrics_t *)1;
    rill__addr_t a;
    ASSERT_EQ(rill__addr_parse(&a, "127.0.0.1:0"), 0);
    ASSERT_EQ(rill__metrics_start(&m, NULL, &a), RILL_EINVAL);
    ASSERT_TRUE(m == NULL);
    ASSERT_EQ(rill__metrics_port(NULL), RILL_EINVAL);
    rill__metrics_stop(NULL);
    /* A port in use: -EADDRINUSE. */
    fix_t f;
    if (fix_up(&f) < 0) {
        fix_down(&f);
        T_FAIL_AT_("fixture set-up failed");
    }
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", (unsigned)f.mport);
    ASSERT_EQ(rill__addr_parse(&a, addr), 0);
    int rc = rill__metrics_start(&m, f.w, &a);
    fix_down(&f);
    ASSERT_EQ(rc, -EADDRINUSE);
    return 0;
}

int main(int argc, char **argv)
{
    t_require_io_uring("metrics");
    static const t_case_t cases[] = {
        {"scrape_parse", test_scrape_parse},
        {"curl", test_curl},
        {"errors_and_head", test_errors_and_head},
        {"probes", test_probes},
        {"probes_sink", test_probes_sink},
        {"concurrent_and_idle", test_concurrent_and_idle},
        {"slow_clients", test_slow_clients},
        {"batch_histogram", test_batch_histogram},
        {"start_errors", test_start_errors},
        {NULL, NULL},
    };
    return t_run("metrics", cases, argc, argv);
}
