/* Diagnostics: to the process's log callback (rill_set_log_callback), else to stderr as
 * "rill: ..." lines. The hot path never logs: a condition that can repeat per message or
 * per connection is counted, and logged only the first time (rill__log_once). */
#ifndef RILL_CORE_LOG_H
#define RILL_CORE_LOG_H

#include <stdatomic.h>

/* RILL_LOG_WARNING: something went wrong that rill works around (a connection closed, a
 * sink retried, a frame dropped and counted). */
void rill__log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* RILL_LOG_ERROR: something the worker cannot do (bind, a loop's ring, a thread). Inside
 * rill_worker_new the line also becomes the calling thread's rill_last_error(). */
void rill__log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Around a call whose failure rill_last_error describes (rill_worker_new): begin forgets
 * the calling thread's last error line and records the error lines that follow, until
 * end. */
void rill__last_error_begin(void);
void rill__last_error_end(void);
/* RILL_LOG_INFO: a change of state an operator wants to see (joined, left, connected). */
void rill__log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Logs (a warning) only if *flag was still clear; thread-safe. */
void rill__log_once(atomic_int *flag, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One worker's log-once flags: each reason is logged the first time it happens, by
 * whichever loop meets it first. */
typedef struct rill__log_flags {
    atomic_int frame_short, frame_long, midframe, conn_err, sink_err, comp_err, unknown, refused,
        idle, peer_err, carry, control, streams, auth, park_full, state_chunk, state_lost;
} rill__log_flags_t;

#endif
