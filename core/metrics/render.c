/* The text exposition of /metrics (format 0.0.4), from the worker's public calls only:
 * the counter table's samples (stats/counters.h), the loops, and per computation its
 * counters and batch time histogram. See metrics.h. */
#include "metrics/metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats/counters.h"

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
} sbuf_t;

static void sb_printf(sbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf_t *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if (b->p && (size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + (size_t)n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

/* Label values escape backslash, double quote and newline (exposition format 0.0.4). */
static void sb_label_value(sbuf_t *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\')
            sb_printf(b, "\\\\");
        else if (*v == '"')
            sb_printf(b, "\\\"");
        else if (*v == '\n')
            sb_printf(b, "\\n");
        else
            sb_printf(b, "%c", *v);
    }
}

/* name{id="ID",name="NAME" -- the caller closes the label set. */
static void comp_labels(sbuf_t *b, const char *metric, uint32_t id, const char *name)
{
    sb_printf(b, "%s{id=\"%" PRIu32 "\",name=\"", metric, id);
    sb_label_value(b, name);
    sb_printf(b, "\"");
}

static void family(sbuf_t *b, const char *name, const char *type, const char *help)
{
    sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One sample per row of the counter table (stats/counters.h), in table order. */
static const struct counter_metric {
    const char *sample; /* name, or name{label="value"} */
    const char *type, *help;
    size_t off;
} counter_metrics[] = {
#define COUNTER_METRIC_(name, kind, source, line, metric, help)                                    \
    {metric, RILL__COUNTER_TYPE_##kind, help, offsetof(rill_stats_t, name)},
    RILL__COUNTERS(COUNTER_METRIC_)
#undef COUNTER_METRIC_
};
#define NCOUNTERS (sizeof counter_metrics / sizeof counter_metrics[0])

/* Length of sample's family name (the part before any '{'). */
static size_t family_len(const char *sample)
{
    return strcspn(sample, "{");
}

static int same_family(const char *a, const char *b)
{
    size_t n = family_len(a);
    return n == family_len(b) && memcmp(a, b, n) == 0;
}

/* A family in seconds holds a field counted in nanoseconds (stats/counters.h). */
static int in_seconds(const char *sample)
{
    const char *u = strstr(sample, "_seconds");
    return u && (size_t)(u - sample) < family_len(sample);
}

/* The counters: a family's HELP and TYPE lines, then all its samples (table rows of one
 * family need not be adjacent). A labelled family's HELP joins its rows' help texts, each
 * after its label. */
static void render_counters(sbuf_t *b, const rill_stats_t *st)
{
    for (size_t i = 0; i < NCOUNTERS; i++) {
        const struct counter_metric *m = &counter_metrics[i];
        size_t j = 0;
        while (j < i && !same_family(counter_metrics[j].sample, m->sample))
            j++;
        if (j < i)
            continue; /* rendered with the family's first row */
        int fl = (int)family_len(m->sample);
        sb_printf(b, "# HELP %.*s ", fl, m->sample);
        if (m->sample[fl] == '\0') {
            sb_printf(b, "%s", m->help);
        } else {
            const char *sep = "";
            for (size_t k = i; k < NCOUNTERS; k++) {
                const struct counter_metric *r = &counter_metrics[k];
                if (!same_family(r->sample, m->sample))
                    continue;
                /* {reason="idle"} -> reason=idle */
                sb_printf(b, "%s", sep);
                for (const char *p = r->sample + fl + 1; *p && *p != '}'; p++)
                    if (*p != '"')
                        sb_printf(b, "%c", *p);
                sb_printf(b, ": %s", r->help);
                sep = " ";
            }
        }
        sb_printf(b, "\n# TYPE %.*s %s\n", fl, m->sample, m->type);
        for (size_t k = i; k < NCOUNTERS; k++) {
            const struct counter_metric *r = &counter_metrics[k];
            if (!same_family(r->sample, m->sample))
                continue;
            uint64_t v;
            memcpy(&v, (const char *)st + r->off, sizeof v);
            if (in_seconds(r->sample))
                sb_printf(b, "%s %" PRIu64 ".%09" PRIu64 "\n", r->sample, v / 1000000000u,
                          v % 1000000000u);
            else
                sb_printf(b, "%s %" PRIu64 "\n", r->sample, v);
        }
    }
}

int rill__metrics_render(rill_worker_t *w, char **out, size_t *len)
{
    if (!w || !out || !len)
        return RILL_EINVAL;
    *out = NULL;
    *len = 0;
    rill_stats_t st;
    int rc = rill_worker_stats(w, &st, sizeof st);
    if (rc < 0)
        return rc;
    sbuf_t b = {0};

    family(&b, "rill_build_info", "gauge", "Always 1; the version of the rill library.");
    sb_printf(&b, "rill_build_info{version=\"%s\"} 1\n", rill_version_string());
    family(&b, "rill_loops", "gauge", "Loop threads of the worker.");
    sb_printf(&b, "rill_loops %u\n", rill_worker_threads(w));
    render_counters(&b, &st);

    /* Per computation: the ids first, then each one's counters and name (read together,
     * so a name never labels another registration's counters); one unregistered in
     * between is skipped, one registered in between waits for the next scrape. */
    int total = rill_comp_list(w, NULL, 0);
    size_t n = total > 0 ? (size_t)total + 8 : 0, got = 0; /* + registrations racing */
    uint32_t *ids = NULL;
    rill_comp_stats_t *cs = NULL;
    if (n) {
        ids = malloc(n * sizeof *ids);
        cs = malloc(n * sizeof *cs);
        if (!ids || !cs) {
            b.oom = 1;
        } else {
            total = rill_comp_list(w, ids, n);
            size_t listed = total < 0 ? 0 : (size_t)total < n ? (size_t)total : n;
            for (size_t i = 0; i < listed; i++)
                if (rill_comp_stats(w, ids[i], &cs[got], sizeof cs[got]) == 0)
                    ids[got++] = ids[i];
        }
    }
    static const struct {
        const char *name, *help;
    } comp_families[] = {
        {"rill_comp_messages_total", "Messages delivered to the computation."},
        {"rill_comp_batches_total", "Callback invocations of the computation."},
        {"rill_comp_errors_total", "Messages in the computation's batches that returned an error."},
    };
    for (size_t f = 0; f < 3; f++) {
        family(&b, comp_families[f].name, "counter", comp_families[f].help);
        for (size_t i = 0; i < got; i++) {
            uint64_t v = f == 0 ? cs[i].msgs : f == 1 ? cs[i].batches : cs[i].errors;
            comp_labels(&b, comp_families[f].name, ids[i], cs[i].name);
            sb_printf(&b, "} %" PRIu64 "\n", v);
        }
    }
    /* The buckets are cumulative here (not in rill_comp_stats_t), and _count is their sum,
     * so +Inf equals _count in every scrape even while the loops count. */
    family(&b, "rill_comp_batch_seconds", "histogram",
           "Time the computation's batch callbacks took (the clock read before and after "
           "each call).");
    for (size_t i = 0; i < got; i++) {
        uint64_t cum = 0;
        for (unsigned k = 0; k < RILL_BATCH_BUCKETS; k++) {
            cum += cs[i].batch_buckets[k];
            comp_labels(&b, "rill_comp_batch_seconds_bucket", ids[i], cs[i].name);
            if (k < RILL_BATCH_BUCKETS - 1)
                sb_printf(&b, ",le=\"%g\"} %" PRIu64 "\n", (double)rill_batch_bucket_le_ns(k) / 1e9,
                          cum);
            else
                sb_printf(&b, ",le=\"+Inf\"} %" PRIu64 "\n", cum);
        }
        comp_labels(&b, "rill_comp_batch_seconds_sum", ids[i], cs[i].name);
        sb_printf(&b, "} %" PRIu64 ".%09" PRIu64 "\n", cs[i].batch_ns / 1000000000u,
                  cs[i].batch_ns % 1000000000u);
        comp_labels(&b, "rill_comp_batch_seconds_count", ids[i], cs[i].name);
        sb_printf(&b, "} %" PRIu64 "\n", cum);
    }
    free(ids);
    free(cs);
    if (b.oom) {
        free(b.p);
        return RILL_ENOMEM;
    }
    *out = b.p;
    *len = b.len;
    return 0;
}
