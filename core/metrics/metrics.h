/* Metrics endpoint: a small HTTP/1.x server on its own thread that answers
 * GET /metrics with the worker's counters in the Prometheus text exposition format 0.0.4,
 * and the probes GET /healthz (liveness: 200 whenever it answers) and GET /readyz
 * (readiness: 200, or 503 with the reason, from rill_worker_ready).
 *
 * One poll() loop over non-blocking sockets serves several scrapes at once; a client that
 * sends nothing useful, or does not read its answer, is closed after a few seconds. Every
 * answer carries Content-Length and "Connection: close". The text is rendered from the
 * public calls only (rill_worker_stats, rill_comp_list, rill_comp_stats,
 * rill_batch_bucket_le_ns, rill_worker_threads), which any thread may make, so a scrape
 * never slows a loop down beyond a few relaxed loads; the counter samples, HELP and TYPE
 * lines come from the counter table (stats/counters.h). */
#ifndef RILL_CORE_METRICS_H
#define RILL_CORE_METRICS_H

#include "net/addr.h"
#include "rill/rill.h"

typedef struct rill__metrics rill__metrics_t;

/* Binds addr (port 0 picks a free one), listens and starts the server thread. On success
 * stores the server in *out (freed by rill__metrics_stop, which must run before w is
 * destroyed) and returns 0; on failure stores NULL and returns -errno (socket, bind,
 * thread creation) or RILL_EINVAL / RILL_ENOMEM. Any thread but a loop thread. */
int rill__metrics_start(rill__metrics_t **out, rill_worker_t *w, const rill__addr_t *addr);

/* Returns the TCP port the server listens on, or RILL_EINVAL for NULL. Any thread. */
int rill__metrics_port(const rill__metrics_t *m);

/* Stops the thread (closing every client), joins it and frees m. NULL is a no-op. Not
 * from the server thread; any other thread. */
void rill__metrics_stop(rill__metrics_t *m);

/* Writes the exposition text for w into a malloc'd buffer (*out, *len; the caller frees
 * *out). Returns 0 or RILL_ENOMEM / RILL_EINVAL. Any thread (used by the server and by
 * tests). */
int rill__metrics_render(rill_worker_t *w, char **out, size_t *len);

#endif /* RILL_CORE_METRICS_H */
