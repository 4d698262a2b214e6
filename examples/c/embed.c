/* Embedding rill: one computation that upper-cases text lines and sends them to a sink.
 *
 *   embed_example LISTEN_ADDR SINK_ADDR     e.g. 127.0.0.1:7800 127.0.0.1:7801
 *   nc -l 127.0.0.1 7801 | xxd &            (the sink: receives v1 frames)
 *   printf 'hello\nworld\n' | nc -q1 127.0.0.1 7800
 * Ctrl-C stops it. */
#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <rill/rill.h>

#define UPPER_ID 7

/* Runs on a loop thread with a whole batch; views are valid only during the call. */
static int upper_batch(uintptr_t ctx, unsigned loop, const rill_msg_t *msgs, size_t n,
                       rill_emitter_t *em)
{
    int sink = (int)ctx;
    (void)loop;
    for (size_t i = 0; i < n; i++) {
        char out[256];
        size_t len = msgs[i].len < sizeof out ? msgs[i].len : sizeof out;
        for (size_t j = 0; j < len; j++)
            out[j] = (char)toupper(msgs[i].data[j]);
        int rc = rill_emit_sink(em, sink, UPPER_ID, msgs[i].key, out, len); /* copies */
        if (rc < 0)
            return rc; /* counted as a computation error by rill */
    }
    return 0;
}

static rill_worker_t *worker;
static void on_signal(int sig)
{
    (void)sig;
    rill_worker_shutdown(worker); /* async-signal-safe */
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s LISTEN_ADDR SINK_ADDR\n", argv[0]);
        return 2;
    }
    rill_config_t *cfg = rill_config_new();
    /* Text lines, every one addressed to UPPER_ID, keyed by a hash of the line. */
    int rc = rill_config_add_listener(cfg, argv[1], RILL_FRAMING_LINE, UPPER_ID, 0, 0);
    int sink = rc < 0 ? rc : rill_config_add_sink(cfg, argv[2]);
    if (rc < 0 || sink < 0 || (rc = rill_worker_new(&worker, cfg)) < 0) {
        fprintf(stderr, "set-up failed: %s\n", rill_strerror(rc < 0 ? rc : sink));
        return 1;
    }
    rill_config_destroy(cfg);

    static const rill_comp_ops_t ops = {upper_batch, NULL, NULL};
    if ((rc = rill_comp_register(worker, UPPER_ID, "upper", &ops, (uintptr_t)sink)) < 0 ||
        (rc = rill_worker_start(worker)) < 0) {
        fprintf(stderr, "start failed: %s\n", rill_strerror(rc));
        rill_worker_destroy(worker);
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    printf("listening on port %d; Ctrl-C to stop\n", rill_worker_listener_port(worker, 0));

    rill_worker_wait(worker); /* returns once a signal has made the loops drain and exit */
    rill_stats_t st;
    rill_worker_stats(worker, &st, sizeof st);
    printf("%llu lines in, %llu frames out\n", (unsigned long long)st.msgs_in,
           (unsigned long long)st.msgs_out);
    rill_worker_destroy(worker);
    return 0;
}
