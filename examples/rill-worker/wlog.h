/* rill-worker's log lines, its own and the library's (through rill_set_log_callback), in
 * one of three formats on stderr:
 *   text    "rill-worker: MSG" / "rill: MSG" (the default, unchanged from before)
 *   logfmt  ts=2026-12-01T12:00:00.123Z level=info src=rill-worker msg="MSG" [k=v ...]
 *   json    {"ts":"...","level":"info","src":"rill-worker","msg":"MSG"[,"k":v ...]}
 * Lines below the chosen level are dropped. */
#ifndef RILL_WORKER_WLOG_H
#define RILL_WORKER_WLOG_H

#include <stdint.h>

#include <rill/rill.h>

enum { WLOG_TEXT, WLOG_LOGFMT, WLOG_JSON };

/* Parses a --log-format / --log-level value; returns 0 or -1. */
int wlog_set_format(const char *name);
int wlog_set_level(const char *name);
/* Routes the library's lines here too (call once, before creating the worker). */
void wlog_route_library(void);
int wlog_format(void);

/* One line of rill-worker's own, at level. */
void wlog(rill_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A line of named numbers (the stats line): text keeps "rill-worker: TAG k=v ..." as the
 * caller wrote it in text; logfmt and json get msg=TAG and one field per number. */
typedef struct wlog_field {
    const char *key;
    uint64_t value;
} wlog_field_t;
void wlog_fields(const char *text, const char *tag, const wlog_field_t *f, unsigned n);

#endif
