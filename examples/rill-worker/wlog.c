/* rill-worker's log lines (see wlog.h). */
#include "wlog.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int g_format = WLOG_TEXT;
static int g_level = RILL_LOG_INFO;

static const char *const level_names[] = {"error", "warning", "info"};

int wlog_set_format(const char *name)
{
    static const char *const names[] = {"text", "logfmt", "json"};
    for (int i = 0; i < 3; i++)
        if (strcmp(name, names[i]) == 0) {
            g_format = i;
            return 0;
        }
    return -1;
}

int wlog_set_level(const char *name)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(name, level_names[i]) == 0) {
            g_level = i;
            return 0;
        }
    return -1;
}

int wlog_format(void)
{
    return g_format;
}

/* RFC 3339 UTC with milliseconds. */
static void timestamp(char *out, size_t cap)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, cap - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

/* msg quoted for logfmt or json: backslash, quote and control characters escaped. */
static size_t quote(char *out, size_t cap, const char *msg)
{
    size_t n = 0;
    if (n < cap)
        out[n++] = '"';
    for (const unsigned char *p = (const unsigned char *)msg; *p && n + 8 < cap; p++) {
        if (*p == '"' || *p == '\\') {
            out[n++] = '\\';
            out[n++] = (char)*p;
        } else if (*p < 0x20) {
            n += (size_t)snprintf(out + n, cap - n, "\\u%04x", *p);
        } else {
            out[n++] = (char)*p;
        }
    }
    if (n < cap)
        out[n++] = '"';
    return n;
}

/* Writes one line: the head (ts, level, src, msg), then extra (already formatted for the
 * format), in one fprintf so that lines from different threads do not interleave. */
static void emit(rill_log_level_t level, const char *src, const char *msg, const char *extra)
{
    if ((int)level > g_level)
        return;
    if (g_format == WLOG_TEXT) {
        fprintf(stderr, "%s: %s%s\n", src, msg, extra ? extra : "");
        return;
    }
    char ts[40], q[1200];
    timestamp(ts, sizeof ts);
    size_t qn = quote(q, sizeof q, msg);
    q[qn < sizeof q ? qn : sizeof q - 1] = '\0';
    const char *lv = level_names[level <= RILL_LOG_INFO ? level : RILL_LOG_INFO];
    if (g_format == WLOG_LOGFMT)
        fprintf(stderr, "ts=%s level=%s src=%s msg=%s%s\n", ts, lv, src, q, extra ? extra : "");
    else
        fprintf(stderr, "{\"ts\":\"%s\",\"level\":\"%s\",\"src\":\"%s\",\"msg\":%s%s}\n", ts, lv,
                src, q, extra ? extra : "");
}

static void library_line(uintptr_t ctx, rill_log_level_t level, const char *msg)
{
    (void)ctx;
    emit(level, "rill", msg, NULL);
}

void wlog_route_library(void)
{
    rill_set_log_callback(library_line, 0);
}

void wlog(rill_log_level_t level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    emit(level, "rill-worker", msg, NULL);
}

void wlog_fields(const char *text, const char *tag, const wlog_field_t *f, unsigned n)
{
    if (g_format == WLOG_TEXT) {
        emit(RILL_LOG_INFO, "rill-worker", text, NULL);
        return;
    }
    char extra[2048];
    size_t len = 0;
    for (unsigned i = 0; i < n && len < sizeof extra; i++)
        len += (size_t)snprintf(extra + len, sizeof extra - len,
                                g_format == WLOG_LOGFMT ? " %s=%" PRIu64 : ",\"%s\":%" PRIu64,
                                f[i].key, f[i].value);
    emit(RILL_LOG_INFO, "rill-worker", tag, extra);
}
