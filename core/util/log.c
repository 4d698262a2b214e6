#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>

static void vlog(const char *fmt, va_list ap)
{
    /* One fprintf per line so lines from different threads do not interleave. */
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    fprintf(stderr, "rill: %s\n", line);
}

void rill__log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(fmt, ap);
    va_end(ap);
}

void rill__log_once(atomic_int *flag, const char *fmt, ...)
{
    if (atomic_exchange_explicit(flag, 1, memory_order_relaxed))
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog(fmt, ap);
    va_end(ap);
}
