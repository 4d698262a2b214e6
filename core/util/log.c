#include "util/log.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

#include "rill/rill.h"

/* The process's log callback (rill_set_log_callback); NULL: stderr. The callback and
 * its context are published together in one pointer, so a logging thread never pairs
 * one callback with another's context. */
typedef struct log_sink {
    rill_log_cb cb;
    uintptr_t ctx;
} log_sink_t;
static log_sink_t g_sinks[2];
/* The calling thread's last error-level line of its last rill_worker_new
 * (rill_last_error); t_capturing while that call runs, so that no other line replaces it. */
static _Thread_local char t_last_error[512];
static _Thread_local int t_capturing;
static _Atomic(const log_sink_t *) g_sink;
static atomic_int g_next;

void rill_set_log_callback(rill_log_cb cb, uintptr_t ctx)
{
    if (!cb) {
        atomic_store_explicit(&g_sink, NULL, memory_order_release);
        return;
    }
    /* Two slots, used in turn: a thread still reading the previous one sees it whole as
     * long as callbacks are not changed twice while it logs (documented). */
    int i = atomic_fetch_add_explicit(&g_next, 1, memory_order_relaxed) & 1;
    g_sinks[i] = (log_sink_t){cb, ctx};
    atomic_store_explicit(&g_sink, &g_sinks[i], memory_order_release);
}

static void vlog(rill_log_level_t level, const char *fmt, va_list ap)
{
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    if (level == RILL_LOG_ERROR && t_capturing)
        snprintf(t_last_error, sizeof t_last_error, "%s", line);
    const log_sink_t *s = atomic_load_explicit(&g_sink, memory_order_acquire);
    if (s) {
        s->cb(s->ctx, level, line);
        return;
    }
    /* One fprintf per line so lines from different threads do not interleave. */
    fprintf(stderr, "rill: %s\n", line);
}

void rill__last_error_begin(void)
{
    t_last_error[0] = 0;
    t_capturing = 1;
}

void rill__last_error_end(void)
{
    t_capturing = 0;
}

const char *rill_last_error(void)
{
    return t_last_error;
}

#define LOG_AT(level)                                                                              \
    do {                                                                                           \
        va_list ap;                                                                                \
        va_start(ap, fmt);                                                                         \
        vlog(level, fmt, ap);                                                                      \
        va_end(ap);                                                                                \
    } while (0)

void rill__log(const char *fmt, ...)
{
    LOG_AT(RILL_LOG_WARNING);
}

void rill__log_error(const char *fmt, ...)
{
    LOG_AT(RILL_LOG_ERROR);
}

void rill__log_info(const char *fmt, ...)
{
    LOG_AT(RILL_LOG_INFO);
}

void rill__log_once(atomic_int *flag, const char *fmt, ...)
{
    if (atomic_exchange_explicit(flag, 1, memory_order_relaxed))
        return;
    LOG_AT(RILL_LOG_WARNING);
}
