/* Diagnostics to stderr. The hot path never logs: a condition that can repeat per
 * message or per connection is counted, and logged only the first time (rill__log_once). */
#ifndef RILL_CORE_LOG_H
#define RILL_CORE_LOG_H

#include <stdatomic.h>

void rill__log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Logs only if *flag was still clear; thread-safe. */
void rill__log_once(atomic_int *flag, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One worker's log-once flags: each reason is logged the first time it happens, by
 * whichever loop meets it first. */
typedef struct rill__log_flags {
    atomic_int frame_short, frame_long, midframe, conn_err, sink_err, comp_err, unknown, refused,
        idle, peer_err, carry, control, streams, auth;
} rill__log_flags_t;

#endif
