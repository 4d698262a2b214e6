/* peer-uv: the rill-worker job written over libuv, one thread (the default loop).
 *
 * uv_read_start on every accepted connection with a shared 64 KiB read buffer (the read
 * callback consumes it before returning), frames decoded in place (a straddling frame
 * goes through a per-connection carry), computation looked up in a direct table, output
 * appended to one buffer. A uv_check handle (runs once per loop iteration, after the I/O
 * callbacks) sends the batch: uv_try_write first, the rest handed to uv_write (the buffer
 * goes with the request). Above PEER_OUT_HIGH queued bytes every source stops reading
 * until the sink's queue is below PEER_OUT_LOW. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "peer_common.h"

#define PROG "peer-uv"

typedef struct conn {
    uv_tcp_t h;
    peer_conn_dec_t dec;
    struct conn *prev, *next;
} conn_t;

typedef struct wreq {
    uv_write_t req;
    uint8_t *data;
} wreq_t;

static peer_ctx_t P;
static uv_loop_t *loop;
static uv_tcp_t server, sink;
static uv_check_t check;
static uv_signal_t sigterm, sigint;
static uv_timer_t deadline;
static int paused, stopping;
static conn_t conns; /* list head */
static uint8_t rbuf[PEER_READ_BUF];

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h, (void)suggested;
    *buf = uv_buf_init((char *)rbuf, sizeof rbuf);
}

static void free_conn(uv_handle_t *h)
{
    conn_t *c = (conn_t *)h;
    peer_dec_free(&c->dec);
    free(c);
}

static void close_conn(conn_t *c)
{
    c->prev->next = c->next;
    c->next->prev = c->prev;
    P.st.conns_open--;
    uv_close((uv_handle_t *)&c->h, free_conn);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    conn_t *c = (conn_t *)s;
    if (nread > 0) {
        if (peer_feed(&P, &c->dec, rbuf, (size_t)nread) < 0)
            close_conn(c);
    } else if (nread < 0) {
        close_conn(c);
    }
}

static void set_paused(int p)
{
    if (p == paused)
        return;
    paused = p;
    for (conn_t *c = conns.next; c != &conns; c = c->next) {
        if (p)
            uv_read_stop((uv_stream_t *)&c->h);
        else
            uv_read_start((uv_stream_t *)&c->h, alloc_cb, read_cb);
    }
}

static void write_cb(uv_write_t *req, int status)
{
    wreq_t *w = (wreq_t *)req;
    free(w->data);
    free(w);
    if (status < 0 && P.has_sink) {
        fprintf(stderr, PROG ": sink write failed: %s\n", uv_strerror(status));
        P.has_sink = 0;
    }
    if (paused && sink.write_queue_size < PEER_OUT_LOW)
        set_paused(0);
    if (stopping && sink.write_queue_size == 0)
        uv_stop(loop);
}

/* Sends the output of this loop iteration. */
static void flush(void)
{
    if (!P.has_sink || !peer_out_pending(&P))
        return;
    if (sink.write_queue_size == 0) {
        uv_buf_t b = uv_buf_init((char *)P.out.data + P.out.off, (unsigned)peer_out_pending(&P));
        int n = uv_try_write((uv_stream_t *)&sink, &b, 1);
        if (n > 0)
            peer_out_consumed(&P, (size_t)n);
        if (!peer_out_pending(&P))
            return;
    }
    /* Hand the buffer to a write request; the next emits start a fresh one. */
    wreq_t *w = malloc(sizeof *w);
    if (!w)
        abort();
    w->data = P.out.data;
    uv_buf_t b = uv_buf_init((char *)P.out.data + P.out.off, (unsigned)peer_out_pending(&P));
    size_t pending = peer_out_pending(&P);
    P.out.data = NULL;
    P.out.len = P.out.off = P.out.cap = 0;
    P.st.bytes_out += pending;
    int rc = uv_write(&w->req, (uv_stream_t *)&sink, &b, 1, write_cb);
    if (rc < 0) {
        fprintf(stderr, PROG ": sink write failed: %s\n", uv_strerror(rc));
        free(w->data);
        free(w);
        P.has_sink = 0;
        return;
    }
    if (sink.write_queue_size > PEER_OUT_HIGH)
        set_paused(1);
}

static void check_cb(uv_check_t *h)
{
    (void)h;
    flush();
}

static void on_connection(uv_stream_t *srv, int status)
{
    if (status < 0)
        return;
    conn_t *c = calloc(1, sizeof *c);
    if (!c)
        return;
    uv_tcp_init(loop, &c->h);
    if (uv_accept(srv, (uv_stream_t *)&c->h) < 0) {
        uv_close((uv_handle_t *)&c->h, free_conn);
        return;
    }
    c->next = &conns;
    c->prev = conns.prev;
    conns.prev->next = c;
    conns.prev = c;
    P.st.conns++;
    P.st.conns_open++;
    if (!paused)
        uv_read_start((uv_stream_t *)&c->h, alloc_cb, read_cb);
}

static void deadline_cb(uv_timer_t *t)
{
    (void)t;
    uv_stop(loop);
}

static void signal_cb(uv_signal_t *h, int sig)
{
    (void)h, (void)sig;
    if (stopping)
        return;
    stopping = 1;
    while (conns.next != &conns)
        close_conn(conns.next);
    uv_close((uv_handle_t *)&server, NULL);
    flush();
    if (!P.has_sink || sink.write_queue_size == 0) {
        uv_stop(loop);
        return;
    }
    uv_timer_init(loop, &deadline);
    uv_timer_start(&deadline, deadline_cb, 5000, 0);
}

int main(int argc, char **argv)
{
    peer_opts_t o;
    int rc = peer_parse_args(PROG,
                             "Decodes v1 frames and runs passthrough (1) / count (2), "
                             "over libuv.",
                             argc, argv, &o);
    if (rc)
        return rc == 1 ? 0 : rc;
    signal(SIGPIPE, SIG_IGN);
    peer_ctx_init(&P, o.has_sink);
    conns.next = conns.prev = &conns;
    loop = uv_default_loop();

    struct sockaddr_in addr;
    if ((rc = uv_ip4_addr(o.listen_host, o.listen_port, &addr)) < 0 ||
        (rc = uv_tcp_init(loop, &server)) < 0 ||
        (rc = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0)) < 0 ||
        (rc = uv_listen((uv_stream_t *)&server, 4096, on_connection)) < 0) {
        fprintf(stderr, PROG ": cannot listen on %s:%d: %s\n", o.listen_host, o.listen_port,
                uv_strerror(rc));
        return 1;
    }
    if (o.has_sink) {
        int fd = peer_connect_retry(o.sink_host, o.sink_port);
        if (fd < 0) {
            fprintf(stderr, PROG ": cannot connect to the sink %s:%d\n", o.sink_host, o.sink_port);
            return 1;
        }
        uv_tcp_init(loop, &sink);
        uv_tcp_open(&sink, fd); /* sets O_NONBLOCK */
        uv_tcp_nodelay(&sink, 1);
    }
    uv_check_init(loop, &check);
    uv_check_start(&check, check_cb);
    uv_signal_init(loop, &sigterm);
    uv_signal_start(&sigterm, signal_cb, SIGTERM);
    uv_signal_init(loop, &sigint);
    uv_signal_start(&sigint, signal_cb, SIGINT);
    fprintf(stderr, PROG ": listening on %s:%d\n" PROG ": ready (1 thread%s)\n", o.listen_host,
            o.listen_port, o.has_sink ? ", sink" : "");

    uv_run(loop, UV_RUN_DEFAULT);
    peer_print_final(PROG, &P.st);
    return 0;
}
