/* core/stats/counters.h: the counter table itself (names, metric samples, stats-line tokens
 * and help texts well-formed and unique), and the docs that list the counters: every row
 * must be in docs/operations.md (the stats-line table when it has a token, the metrics
 * table), docs/c-api.md (the rill_stats_t table) and docs/go-api.md (the Stats table),
 * and those tables must not list a counter the table lacks. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "harness.h"
#include "stats/counters.h"

#ifndef RILL_SOURCE_DIR
#error "RILL_SOURCE_DIR (the source tree, for the docs) must be defined"
#endif

typedef struct row {
    const char *name, *type, *source, *line, *metric, *help;
} row_t;

static const row_t rows[] = {
#define ROW_(name, kind, source, line, metric, help)                                               \
    {#name, RILL__COUNTER_TYPE_##kind, #source, line, metric, help},
    RILL__COUNTERS(ROW_)
#undef ROW_
};
#define NROWS (sizeof rows / sizeof rows[0])

/* Family name of a sample (before any '{') into out. */
static void family_of(const char *metric, char *out, size_t size)
{
    snprintf(out, size, "%.*s", (int)strcspn(metric, "{"), metric);
}

/* Reads a file of the source tree; NULL (with a message) when it cannot. */
static char *read_doc(const char *rel)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", RILL_SOURCE_DIR, rel);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "  cannot open %s\n", path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
        free(s);
        s = NULL;
    }
    fclose(f);
    if (s)
        s[n] = '\0';
    return s;
}

/* The line of doc that starts with prefix (the first such), copied into out; 0 or -1. */
static int find_line(const char *doc, const char *prefix, char *out, size_t size)
{
    size_t pl = strlen(prefix);
    for (const char *p = doc; *p;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len >= pl && memcmp(p, prefix, pl) == 0) {
            snprintf(out, size, "%.*s", (int)len, p);
            return 0;
        }
        p += len + (eol ? 1 : 0);
    }
    return -1;
}

/* 1 when s contains `word` (in backticks). */
static int has_code(const char *s, const char *word)
{
    char w[256];
    snprintf(w, sizeof w, "`%s`", word);
    return strstr(s, w) != NULL;
}

/* ------------------------------------------------------------ the table */

static int table_well_formed(void)
{
    ASSERT_EQ(NROWS, RILL__COUNTER_COUNT);
    ASSERT_EQ(sizeof(rill_stats_t), NROWS * sizeof(uint64_t));
    for (size_t i = 0; i < NROWS; i++) {
        const row_t *r = &rows[i];
        char fam[128];
        family_of(r->metric, fam, sizeof fam);
        if (strncmp(fam, "rill_", 5) != 0)
            T_FAIL_AT_("%s: metric %s does not start with rill_", r->name, r->metric);
        for (const char *p = fam; *p; p++)
            if (!(isalnum((unsigned char)*p) || *p == '_'))
                T_FAIL_AT_("%s: bad metric name %s", r->name, fam);
        size_t fl = strlen(fam);
        int total = fl > 6 && strcmp(fam + fl - 6, "_total") == 0;
        if (total != (strcmp(r->type, "counter") == 0))
            T_FAIL_AT_("%s: a %s named %s (counters end in _total, gauges do not)", r->name,
                       r->type, fam);
        /* Base units, not abbreviated (promtool check metrics): *_seconds* families
         * export a field in nanoseconds, and no family names nanoseconds itself. */
        size_t nl = strlen(r->name);
        int ns_field = nl > 3 && strcmp(r->name + nl - 3, "_ns") == 0;
        if ((strstr(fam, "_seconds") != NULL) != ns_field)
            T_FAIL_AT_("%s: exported as %s (fields in _ns are exported as *_seconds*)", r->name,
                       fam);
        if (strstr(fam, "_ns_") || (fl > 3 && strcmp(fam + fl - 3, "_ns") == 0))
            T_FAIL_AT_("%s: %s abbreviates its unit", r->name, fam);
        const char *lab = r->metric + fl;
        if (*lab) { /* {label="value"} */
            const char *eq = strchr(lab, '=');
            size_t ll = strlen(lab);
            if (lab[0] != '{' || !eq || eq[1] != '"' || ll < 6 || lab[ll - 1] != '}' ||
                lab[ll - 2] != '"')
                T_FAIL_AT_("%s: bad label in %s", r->name, r->metric);
        }
        if (!r->help[0] || strchr(r->help, '\n') || strchr(r->help, '\\'))
            T_FAIL_AT_("%s: help must be one line without backslashes", r->name);
        if (strcmp(r->source, "LOOPS") && strcmp(r->source, "CLUSTER") &&
            strcmp(r->source, "REGISTRY"))
            T_FAIL_AT_("%s: unknown source %s", r->name, r->source);
        for (size_t j = 0; j < i; j++) {
            const row_t *o = &rows[j];
            if (strcmp(o->metric, r->metric) == 0)
                T_FAIL_AT_("%s and %s are both %s", o->name, r->name, r->metric);
            if (r->line[0] && strcmp(o->line, r->line) == 0)
                T_FAIL_AT_("%s and %s share the stats-line token %s", o->name, r->name, r->line);
            char ofam[128];
            family_of(o->metric, ofam, sizeof ofam);
            if (strcmp(ofam, fam) == 0 && strcmp(o->type, r->type) != 0)
                T_FAIL_AT_("family %s is both %s and %s", fam, o->type, r->type);
        }
    }
    return 0;
}

/* ------------------------------------------------------------ the docs */

static int operations_md(void)
{
    char *doc = read_doc("docs/operations.md");
    ASSERT_TRUE(doc != NULL);
    char line[2048];
    int rc = 0;
    for (size_t i = 0; i < NROWS && rc == 0; i++) {
        const row_t *r = &rows[i];
        char fam[128], prefix[160];
        family_of(r->metric, fam, sizeof fam);
        /* the metrics table: "| `family` |" or "| `family{label}` |" naming the field */
        snprintf(prefix, sizeof prefix, "| `%s`", fam);
        if (find_line(doc, prefix, line, sizeof line) < 0) {
            snprintf(prefix, sizeof prefix, "| `%s{", fam);
            if (find_line(doc, prefix, line, sizeof line) < 0) {
                fprintf(stderr, "  FAIL: operations.md's metrics table lacks %s (%s)\n", fam,
                        r->name);
                rc = 1;
                break;
            }
        }
        if (!has_code(line, r->name)) {
            fprintf(stderr, "  FAIL: operations.md's row for %s does not name `%s`\n", fam,
                    r->name);
            rc = 1;
        }
        const char *lab = strchr(r->metric, '"');
        if (lab) { /* the label value, e.g. `frame_short` */
            char v[64];
            snprintf(v, sizeof v, "%.*s", (int)strcspn(lab + 1, "\""), lab + 1);
            if (!has_code(line, v)) {
                fprintf(stderr, "  FAIL: operations.md's row for %s lacks `%s`\n", fam, v);
                rc = 1;
            }
        }
        /* the stats-line table: "| `token` | `name` |" */
        if (r->line[0]) {
            snprintf(prefix, sizeof prefix, "| `%s` | `%s` |", r->line, r->name);
            if (find_line(doc, prefix, line, sizeof line) < 0) {
                fprintf(stderr, "  FAIL: operations.md's stats-line table lacks \"%s\"\n", prefix);
                rc = 1;
            }
        }
    }
    /* and lists no metric the table lacks */
    static const char *const others[] = {"rill_build_info",          "rill_loops",
                                         "rill_comp_messages_total", "rill_comp_batches_total",
                                         "rill_comp_errors_total",   "rill_comp_batch_seconds"};
    for (const char *p = strstr(doc, "\n| `rill_"); p && rc == 0; p = strstr(p + 1, "\n| `rill_")) {
        char fam[128];
        snprintf(fam, sizeof fam, "%.*s", (int)strcspn(p + 4, "`{"), p + 4);
        int known = 0;
        for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
            known |= strcmp(fam, others[i]) == 0;
        for (size_t i = 0; i < NROWS; i++) {
            char f[128];
            family_of(rows[i].metric, f, sizeof f);
            known |= strcmp(fam, f) == 0;
        }
        if (!known) {
            fprintf(stderr, "  FAIL: operations.md lists %s, which is no metric\n", fam);
            rc = 1;
        }
    }
    free(doc);
    return rc;
}

static int c_api_md(void)
{
    char *doc = read_doc("docs/c-api.md");
    ASSERT_TRUE(doc != NULL);
    char line[2048], prefix[160];
    int rc = 0;
    for (size_t i = 0; i < NROWS; i++) {
        snprintf(prefix, sizeof prefix, "| `%s` |", rows[i].name);
        if (find_line(doc, prefix, line, sizeof line) < 0) {
            fprintf(stderr, "  FAIL: c-api.md's rill_stats_t table lacks %s\n", rows[i].name);
            rc = 1;
        }
    }
    free(doc);
    return rc;
}

/* go-api.md's Stats table: "| `GoName` | `c_name` | ...", GoName being c_name without
 * underscores, compared without case (MsgsIn, ENOBUFS, ZKErrors). */
static int go_api_md(void)
{
    char *doc = read_doc("docs/go-api.md");
    ASSERT_TRUE(doc != NULL);
    int rc = 0;
    for (size_t i = 0; i < NROWS; i++) {
        const char *name = rows[i].name;
        char want[128];
        size_t k = 0;
        for (const char *p = name; *p && k + 1 < sizeof want; p++)
            if (*p != '_')
                want[k++] = *p;
        want[k] = '\0';
        char c_col[160];
        snprintf(c_col, sizeof c_col, "` | `%s` |", name);
        int found = 0;
        for (const char *p = strstr(doc, c_col); p && !found; p = strstr(p + 1, c_col)) {
            const char *bol = p;
            while (bol > doc && bol[-1] != '\n')
                bol--;
            if (strncmp(bol, "| `", 3) == 0 && (size_t)(p - (bol + 3)) == k &&
                strncasecmp(bol + 3, want, k) == 0)
                found = 1;
        }
        if (!found) {
            fprintf(stderr, "  FAIL: go-api.md's Stats table lacks a row for %s\n", name);
            rc = 1;
        }
    }
    free(doc);
    return rc;
}

static const t_case_t cases[] = {
    {"table_well_formed", table_well_formed},
    {"operations_md", operations_md},
    {"c_api_md", c_api_md},
    {"go_api_md", go_api_md},
    {NULL, NULL},
};

int main(int argc, char **argv)
{
    return t_run("stats_counters", cases, argc, argv);
}
