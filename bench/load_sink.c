/* rill-load's sink (--sink-listen): counts the v1 frames it receives, measures latency from
 * their send time stamps, and tells this run's frames from other runs' by the run id in the
 * payload. A connection whose first frame is HELLO is an acknowledged stream: the sink
 * answers WELCOME and acknowledges cumulatively what it counted. It also keeps --verify's
 * per-frame record and writes --dump.
 *
 * Threads: sink 0 accepts and deals connections out round-robin; from then on only the
 * thread whose epoll holds a connection touches it (main closes what is left after joining
 * them). Per-stream state (the highest seq counted, which connection owns the stream) is
 * shared by all threads: it outlives connections so that a sender reconnecting on another
 * connection is told what is already held. A stream's lock is held while one of its batches
 * is counted, so a HELLO on a new connection (which takes the stream over) never interleaves
 * with the old connection's counting: frames the old one had not counted yet are resent by
 * the sender on the new one, never counted twice. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "histogram.h"
#include "load_wire.h"
#include "rill_load.h"

#define SINK_READ_CHUNK (256u * 1024u)
#define SINK_MAX_FRAME (64u * 1024u * 1024u) /* length fields above this are a broken stream */
#define SINK_PEEK 48u /* the header and the payload fields rill-load writes */
/* An acknowledged stream's counted frames are acknowledged after the batch that counted
 * them once they reach a quarter of the credit, else within ACK_DELAY_NS (the idle ACK, so a
 * sender never waits on a partial batch). */
#define ACK_DELAY_NS 2000000ull
#define STREAM_BUCKETS 4096u
#define DUMP_BUF (64u * 1024u)

enum { CLS_OWN, CLS_UNTAGGED, CLS_FOREIGN, CLS_CONTROL };
/* MODE_FIRST: no frame yet; MODE_PLAIN: best-effort (first frame was not HELLO); MODE_ACKED:
 * welcomed; MODE_REFUSED: HELLO answered with GOAWAY (this sink is leaving). */
enum { MODE_FIRST, MODE_PLAIN, MODE_ACKED, MODE_REFUSED };

typedef struct stream {
    struct stream *next;
    uint64_t id;
    pthread_mutex_t lock;
    uint64_t highest; /* highest seq counted, 0 = none */
    uint64_t gen;     /* bumped by every HELLO: the newest connection owns the stream */
} stream_t;

struct sink;

typedef struct sink_conn {
    struct sink_conn *prev, *next;   /* all open sink connections, to free them at exit */
    struct sink_conn *aprev, *anext; /* the owner's acknowledged (or refused) connections */
    struct sink *owner;
    int fd;
    uint8_t *buf;
    size_t have;
    uint64_t skip; /* bytes of the current frame still to discard (frame already seen) */
    uint64_t skip_frame_bytes;
    int skip_cls; /* the skipped frame, counted when its last byte arrives */
    uint32_t skip_conn;
    uint64_t skip_seq;
    int mode;
    stream_t *stream;
    uint64_t gen;
    uint64_t next_seq;   /* seq of the next data frame */
    uint64_t counted;    /* data frames counted since WELCOME (--close-after) */
    uint64_t pend_bytes; /* counted since the last ACK */
    uint64_t pend_since; /* when the first of those was counted; 0 = nothing pending */
    bool listed, goaway_sent, want_out, dead;
    uint32_t out_off, out_len; /* control frames not yet written */
    uint8_t out[1024];
} sink_conn_t;

typedef struct sink {
    _Alignas(64) atomic_uint_fast64_t frames;
    atomic_uint_fast64_t bytes;
    atomic_uint_fast64_t last_ns; /* arrival of the last frame */
    atomic_uint_fast64_t foreign;
    atomic_uint_fast64_t hellos;
    atomic_uint_fast64_t acks;
    pthread_t tid;
    int id;
    int epfd;
    int listen_fd; /* sink 0 accepts and deals connections out round-robin */
    uint64_t accepted;
    uint64_t errors;
    rill__hist_t hist;
    sink_conn_t *acked; /* this thread's MODE_ACKED and MODE_REFUSED connections */
    uint64_t npending;  /* of those, with pend_since set */
    bool goaway_done;
    char *dump;
    size_t dump_len;
} sink_t;

static sink_t *g_sinks;
static int g_nsinks;
static int g_listen_fd = -1;
static pthread_mutex_t g_sink_conns_lock = PTHREAD_MUTEX_INITIALIZER;
static sink_conn_t *g_sink_conns;
static pthread_mutex_t g_streams_lock = PTHREAD_MUTEX_INITIALIZER;
static stream_t *g_streams[STREAM_BUCKETS];
static int g_dump_fd = -1;
static atomic_bool g_goaway;
static atomic_uint_fast64_t g_counted; /* for --goaway-after */
static atomic_bool g_dump_failed;

/* ------------------------------------------------------------------ --verify */

static _Atomic uint64_t *g_vbits; /* g_vconns rows of g_vwords words */
static int g_vconns;
static uint64_t g_vcount, g_vwords;
static uint64_t *g_vsent;
static atomic_uint_fast64_t g_vdup, g_vunexpected;

int load_verify_init(int connections, uint64_t count)
{
    g_vconns = connections;
    g_vcount = count;
    g_vwords = (count + 63) / 64;
    g_vbits = calloc((size_t)connections * g_vwords, sizeof *g_vbits);
    g_vsent = calloc((size_t)connections, sizeof *g_vsent);
    if (!g_vbits || !g_vsent) {
        fprintf(stderr, "rill-load: --verify: out of memory for %" PRIu64 " frames\n",
                (uint64_t)connections * count);
        return -1;
    }
    return 0;
}

static void verify_record(uint32_t conn, uint64_t seq)
{
    if (conn >= (uint32_t)g_vconns || seq >= g_vcount) {
        atomic_fetch_add_explicit(&g_vunexpected, 1, memory_order_relaxed);
        return;
    }
    uint64_t bit = 1ull << (seq & 63);
    uint64_t old =
        atomic_fetch_or_explicit(&g_vbits[conn * g_vwords + seq / 64], bit, memory_order_relaxed);
    if (old & bit)
        atomic_fetch_add_explicit(&g_vdup, 1, memory_order_relaxed);
}

void load_verify_sent(uint32_t index, uint64_t n)
{
    if (g_vsent && index < (uint32_t)g_vconns)
        g_vsent[index] = n < g_vcount ? n : g_vcount;
}

/* Counted after the sink threads ended. Frames counted beyond what a connection sent (a
 * write that failed half-way) are unexpected, not missing. */
void load_verify_result(uint64_t *missing, uint64_t *duplicates, uint64_t *unexpected)
{
    if (!g_vbits) {
        *missing = *duplicates = *unexpected = 0;
        return;
    }
    uint64_t miss = 0, extra = atomic_load(&g_vunexpected);
    for (int c = 0; c < g_vconns; c++) {
        const _Atomic uint64_t *row = g_vbits + (uint64_t)c * g_vwords;
        uint64_t sent = g_vsent[c];
        for (uint64_t w = 0; w < g_vwords; w++) {
            uint64_t bits = atomic_load_explicit(&row[w], memory_order_relaxed);
            uint64_t lo = w * 64, hi = lo + 64; /* seqs lo..hi-1 */
            uint64_t sent_mask = sent >= hi ? ~0ull : sent <= lo ? 0 : (1ull << (sent - lo)) - 1;
            miss += (uint64_t)__builtin_popcountll(~bits & sent_mask);
            extra += (uint64_t)__builtin_popcountll(bits & ~sent_mask);
        }
    }
    *missing = miss;
    *duplicates = atomic_load(&g_vdup);
    *unexpected = extra;
    free(g_vbits);
    free(g_vsent);
    g_vbits = NULL;
    g_vsent = NULL;
}

/* ------------------------------------------------------------------ streams, dump */

static stream_t *stream_get(uint64_t id)
{
    uint32_t b = (uint32_t)((id * 0x9e3779b97f4a7c15ull) >> 52) % STREAM_BUCKETS;
    pthread_mutex_lock(&g_streams_lock);
    stream_t *st = g_streams[b];
    while (st && st->id != id)
        st = st->next;
    if (!st && (st = calloc(1, sizeof *st))) {
        st->id = id;
        pthread_mutex_init(&st->lock, NULL);
        st->next = g_streams[b];
        g_streams[b] = st;
    }
    pthread_mutex_unlock(&g_streams_lock);
    return st;
}

/* Writes the thread's dump lines. A plain write(2): once it returned, the lines survive a
 * kill of this process, so they are written before the frames are acknowledged. */
static void dump_flush(sink_t *s)
{
    size_t off = 0;
    while (off < s->dump_len) {
        ssize_t n = write(g_dump_fd, s->dump + off, s->dump_len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (!atomic_exchange(&g_dump_failed, true))
                fprintf(stderr, "rill-load: --dump: write failed: %s\n", strerror(errno));
            break;
        }
        off += (size_t)n;
    }
    s->dump_len = 0;
}

static void dump_line(sink_t *s, uint32_t conn, uint64_t seq)
{
    if (s->dump_len > DUMP_BUF - 40)
        dump_flush(s);
    char tmp[24], *p = s->dump + s->dump_len;
    int n = 0;
    do
        tmp[n++] = (char)('0' + conn % 10);
    while (conn /= 10);
    while (n)
        *p++ = tmp[--n];
    *p++ = ' ';
    do
        tmp[n++] = (char)('0' + seq % 10);
    while (seq /= 10);
    while (n)
        *p++ = tmp[--n];
    *p++ = '\n';
    s->dump_len = (size_t)(p - s->dump);
}

/* ------------------------------------------------------------------ connections */

static int listen_on(const char *hostport)
{
    struct addrinfo *ai;
    char err[512];
    if (load_resolve(hostport, true, &ai, err, sizeof err) < 0) {
        fprintf(stderr, "rill-load: --sink-listen: %s\n", err);
        return -1;
    }
    int fd = -1, e = 0;
    for (struct addrinfo *p = ai; p; p = p->ai_next) {
        fd = socket(p->ai_family, p->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, p->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, p->ai_addr, p->ai_addrlen) == 0 && listen(fd, 1024) == 0)
            break;
        e = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd < 0)
        fprintf(stderr, "rill-load: cannot listen on %s: %s\n", hostport, strerror(e));
    return fd;
}

static void unlist(sink_conn_t *c)
{
    sink_t *o = c->owner;
    if (!c->listed)
        return;
    if (c->aprev)
        c->aprev->anext = c->anext;
    else
        o->acked = c->anext;
    if (c->anext)
        c->anext->aprev = c->aprev;
    c->listed = false;
    if (c->pend_since) {
        c->pend_since = 0;
        o->npending--;
    }
}

static void sink_close(sink_conn_t *c)
{
    epoll_ctl(c->owner->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    unlist(c);
    pthread_mutex_lock(&g_sink_conns_lock);
    if (c->prev)
        c->prev->next = c->next;
    else
        g_sink_conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pthread_mutex_unlock(&g_sink_conns_lock);
    free(c->buf);
    free(c);
}

static void sink_accept(sink_t *s)
{
    for (;;) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNABORTED)
                fprintf(stderr, "rill-load: sink accept: %s\n", strerror(errno));
            return;
        }
        sink_conn_t *c = calloc(1, sizeof *c);
        if (c)
            c->buf = malloc(SINK_READ_CHUNK);
        if (!c || !c->buf) {
            fprintf(stderr, "rill-load: sink: out of memory\n");
            if (c)
                free(c);
            close(fd);
            continue;
        }
        c->fd = fd;
        pthread_mutex_lock(&g_sink_conns_lock);
        c->next = g_sink_conns;
        if (g_sink_conns)
            g_sink_conns->prev = c;
        g_sink_conns = c;
        pthread_mutex_unlock(&g_sink_conns_lock);
        sink_t *to = &g_sinks[s->accepted++ % (uint64_t)g_nsinks];
        c->owner = to;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
        if (epoll_ctl(to->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            fprintf(stderr, "rill-load: sink epoll_ctl: %s\n", strerror(errno));
            sink_close(c);
        }
    }
}

/* Writes what is queued in c->out; the rest waits for EPOLLOUT. */
static void sink_flush(sink_conn_t *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n =
            send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            c->dead = true; /* the sender went away: the next read sees it */
            c->out_off = c->out_len = 0;
            return;
        }
        c->out_off += (uint32_t)n;
    }
    bool more = c->out_off < c->out_len;
    if (!more)
        c->out_off = c->out_len = 0;
    if (more != c->want_out) {
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | (more ? EPOLLOUT : 0),
                                 .data.ptr = c};
        epoll_ctl(c->owner->epfd, EPOLL_CTL_MOD, c->fd, &ev);
        c->want_out = more;
    }
}

/* Room for a control frame of up to n bytes at the end of c->out, or NULL. */
static uint8_t *sink_room(sink_conn_t *c, size_t n)
{
    return c->out_len + n <= sizeof c->out ? c->out + c->out_len : NULL;
}

/* Acknowledges everything c counted. An ACK waits while an earlier control frame is still
 * queued (it is cumulative: the later one says it all). */
static void sink_ack(sink_t *s, sink_conn_t *c)
{
    if (!c->pend_bytes || c->out_len || c->mode != MODE_ACKED)
        return;
    c->out_len += (uint32_t)wire_ack(c->out, c->next_seq - 1, (uint32_t)g_o.credit);
    c->pend_bytes = 0;
    if (c->pend_since) {
        c->pend_since = 0;
        s->npending--;
    }
    atomic_fetch_add_explicit(&s->acks, 1, memory_order_relaxed);
    sink_flush(c);
}

static void sink_goaway(sink_t *s, sink_conn_t *c)
{
    const char *to = g_o.goaway_to ? g_o.goaway_to : "";
    sink_ack(s, c);
    if (c->pend_bytes)
        return;            /* the ACK waits for room: GOAWAY after it, at the next scan */
    size_t n = strlen(to); /* <= 255 (parse_opts) */
    uint8_t *p = sink_room(c, WIRE_HEADER + WIRE_GOAWAY_FIXED + n);
    if (p) {
        c->out_len += (uint32_t)wire_goaway(p, to, (uint16_t)n);
        c->goaway_sent = true;
        sink_flush(c);
    }
}

static int classify(const uint8_t *f, uint32_t flen, uint32_t *conn, uint64_t *seq)
{
    const uint8_t *p = f + 16;
    if (flen - 12 < SIZE_WITH_RUN - 16 || load_le32(p + PL_TAG) != PL_TAG_VALUE)
        return CLS_UNTAGGED;
    if (load_le64(p + PL_RUN) != g_run_id)
        return CLS_FOREIGN;
    *conn = load_le32(p + PL_CONN);
    *seq = load_le64(p + PL_SEQ);
    return CLS_OWN;
}

typedef struct batch {
    uint64_t frames, bytes, foreign;
} batch_t;

static void count_frame(sink_t *s, sink_conn_t *c, int cls, uint32_t conn, uint64_t seq,
                        uint64_t total, batch_t *b)
{
    if (cls == CLS_CONTROL)
        return;
    if (c->mode == MODE_ACKED) {
        c->next_seq++;
        c->counted++;
        c->pend_bytes += total;
    }
    if (cls == CLS_FOREIGN) {
        b->foreign++;
        return;
    }
    b->frames++;
    b->bytes += total;
    if (cls == CLS_OWN) {
        if (g_vbits)
            verify_record(conn, seq);
        if (g_dump_fd >= 0)
            dump_line(s, conn, seq);
    }
}

/* The first frame is HELLO: welcome the stream (or send it away). Returns the stream, locked,
 * or NULL (refused or out of memory: then *ok says which). */
static stream_t *sink_hello(sink_t *s, sink_conn_t *c, const wire_ctl_t *h, bool *ok)
{
    c->aprev = NULL;
    c->anext = s->acked;
    if (s->acked)
        s->acked->aprev = c;
    s->acked = c;
    c->listed = true;
    if (atomic_load_explicit(&g_goaway, memory_order_relaxed)) {
        c->mode = MODE_REFUSED;
        sink_goaway(s, c);
        return NULL;
    }
    stream_t *st = stream_get(h->stream_id);
    if (!st) {
        fprintf(stderr, "rill-load: sink: out of memory for a stream\n");
        *ok = false;
        return NULL;
    }
    pthread_mutex_lock(&st->lock);
    st->gen++;
    c->gen = st->gen;
    c->stream = st;
    c->mode = MODE_ACKED;
    c->next_seq = h->seq > st->highest + 1 ? h->seq : st->highest + 1;
    c->out_len = (uint32_t)wire_welcome(c->out, (uint32_t)g_o.credit, st->highest); /* first */
    atomic_fetch_add_explicit(&s->hellos, 1, memory_order_relaxed);
    sink_flush(c);
    return st;
}

static void protocol_error(sink_t *s, const char *what)
{
    static atomic_bool said;
    s->errors++;
    if (!atomic_exchange(&said, true))
        fprintf(stderr,
                "rill-load: sink: %s; closing that connection (further cases only "
                "counted)\n",
                what);
}

/* Reads once from c; returns false when the connection is finished. */
static bool sink_read(sink_t *s, sink_conn_t *c)
{
    if (c->dead)
        return false;
    ssize_t n = read(c->fd, c->buf + c->have, SINK_READ_CHUNK - c->have);
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return true;
        if (errno != ECONNRESET)
            fprintf(stderr, "rill-load: sink read: %s\n", strerror(errno));
        return false;
    }
    if (n == 0)
        return false;
    const uint64_t now = now_ns();
    size_t len = c->have + (size_t)n, off = 0;
    batch_t b = {0};
    bool ok = true;
    stream_t *locked = NULL;

    if (c->mode == MODE_ACKED) {
        pthread_mutex_lock(&c->stream->lock);
        locked = c->stream;
        if (locked->gen != c->gen) {
            /* A HELLO on a newer connection took the stream over; the sender gave this one
             * up and resends there what this one did not count. */
            pthread_mutex_unlock(&locked->lock);
            return false;
        }
    }
    if (c->skip) {
        size_t d = c->skip < len ? (size_t)c->skip : len;
        off += d;
        c->skip -= d;
        if (!c->skip)
            count_frame(s, c, c->skip_cls, c->skip_conn, c->skip_seq, c->skip_frame_bytes, &b);
    }
    while (len - off >= 4) {
        const uint8_t *f = c->buf + off;
        uint32_t flen = rill__load_be32(f);
        if (flen < RILL_FRAME_MIN_LEN || flen > SINK_MAX_FRAME) {
            fprintf(stderr, "rill-load: sink: bad frame length %u; closing that connection\n",
                    flen);
            s->errors++;
            ok = false;
            break;
        }
        uint64_t total = 4 + (uint64_t)flen;
        /* Needed to look at the frame: all of it, or the header and the payload fields
         * rill-load writes (time stamp, seq, connection, run id). */
        size_t need = total < SINK_PEEK ? (size_t)total : SINK_PEEK;
        if (len - off < need)
            break;
        bool control = rill__load_be32(f + 4) == WIRE_CONTROL_COMP;
        int cls;
        uint32_t conn = 0;
        uint64_t seq = 0;
        if (c->mode == MODE_FIRST)
            c->mode = control && rill__load_be64(f + 8) == WIRE_HELLO ? MODE_FIRST : MODE_PLAIN;
        if (c->mode == MODE_FIRST) {
            wire_ctl_t h;
            const char *bad = wire_parse(f, (size_t)total, &h);
            if (bad) {
                protocol_error(s, bad);
                ok = false;
                break;
            }
            locked = sink_hello(s, c, &h, &ok);
            if (!ok)
                break;
            cls = CLS_CONTROL;
        } else if (c->mode != MODE_PLAIN && control) {
            protocol_error(s, "a control frame from the sender after its HELLO");
            ok = false;
            break;
        } else if (c->mode == MODE_REFUSED) {
            protocol_error(s, "data frames after GOAWAY and no WELCOME");
            ok = false;
            break;
        } else {
            if (flen - 12 >= 16) {
                uint64_t ts = load_le64(f + 16 + PL_TS);
                if (ts <= now)
                    rill__hist_record(&s->hist, now - ts);
            }
            cls = classify(f, flen, &conn, &seq);
        }
        if (len - off >= total) {
            off += (size_t)total;
            count_frame(s, c, cls, conn, seq, total, &b);
        } else {
            /* A large frame: the rest is discarded as it arrives; counted when complete. */
            c->skip = total - (len - off);
            c->skip_frame_bytes = total;
            c->skip_cls = cls;
            c->skip_conn = conn;
            c->skip_seq = seq;
            off = len;
        }
    }
    c->have = len - off;
    if (c->have)
        memmove(c->buf, c->buf + off, c->have);
    /* What was counted is on record (dump) before the stream says it holds it. */
    if (s->dump_len)
        dump_flush(s);
    if (locked) {
        if (c->next_seq - 1 > locked->highest)
            locked->highest = c->next_seq - 1;
        pthread_mutex_unlock(&locked->lock);
    }
    if (b.frames || b.foreign) {
        atomic_store_explicit(&s->frames,
                              atomic_load_explicit(&s->frames, memory_order_relaxed) + b.frames,
                              memory_order_relaxed);
        atomic_store_explicit(&s->bytes,
                              atomic_load_explicit(&s->bytes, memory_order_relaxed) + b.bytes,
                              memory_order_relaxed);
        atomic_store_explicit(&s->foreign,
                              atomic_load_explicit(&s->foreign, memory_order_relaxed) + b.foreign,
                              memory_order_relaxed);
        atomic_store_explicit(&s->last_ns, now, memory_order_relaxed);
        if (g_o.goaway_after &&
            atomic_fetch_add(&g_counted, b.frames + b.foreign) + b.frames + b.foreign >=
                g_o.goaway_after)
            atomic_store(&g_goaway, true);
    }
    if (ok && c->mode == MODE_ACKED && g_o.close_after && c->counted >= g_o.close_after)
        return false; /* --close-after: this batch counted (and held) but never acknowledged */
    if (ok && c->mode == MODE_ACKED && c->pend_bytes) {
        if (!c->pend_since) {
            c->pend_since = now;
            s->npending++;
        }
        if (c->pend_bytes >= g_o.credit / 4 || now - c->pend_since >= ACK_DELAY_NS)
            sink_ack(s, c);
    }
    return ok && !c->dead;
}

/* Idle ACKs, and GOAWAY once --goaway-after is reached. */
static void sink_scan(sink_t *s)
{
    bool goaway = atomic_load_explicit(&g_goaway, memory_order_relaxed) && !s->goaway_done;
    if (!s->npending && !goaway)
        return;
    uint64_t now = now_ns();
    bool all = true;
    for (sink_conn_t *c = s->acked, *next; c; c = next) {
        next = c->anext;
        if (c->pend_since && now - c->pend_since >= ACK_DELAY_NS)
            sink_ack(s, c);
        if (goaway && !c->goaway_sent) {
            sink_goaway(s, c);
            all &= c->goaway_sent;
        }
        if (c->dead)
            sink_close(c);
    }
    if (goaway && all)
        s->goaway_done = true;
}

static void *sink_main(void *arg)
{
    sink_t *s = arg;
    struct epoll_event evs[64];
    while (!atomic_load_explicit(&g_stop_sink, memory_order_relaxed)) {
        int n = epoll_wait(s->epfd, evs, 64, s->npending ? 1 : 50);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "rill-load: sink epoll_wait: %s\n", strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL) {
                sink_accept(s);
                continue;
            }
            sink_conn_t *c = evs[i].data.ptr;
            if (evs[i].events & EPOLLOUT)
                sink_flush(c);
            if ((evs[i].events & ~(uint32_t)EPOLLOUT) && !sink_read(s, c))
                sink_close(c);
        }
        sink_scan(s);
    }
    return NULL;
}

/* ------------------------------------------------------------------ start, totals, stop */

int load_sink_start(void)
{
    int listen_fd = listen_on(g_o.sink_listen);
    if (listen_fd < 0)
        return -1;
    g_listen_fd = listen_fd;
    if (g_o.dump) {
        g_dump_fd = open(g_o.dump, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (g_dump_fd < 0) {
            fprintf(stderr, "rill-load: --dump %s: %s\n", g_o.dump, strerror(errno));
            return -1;
        }
    }
    g_nsinks = g_o.sink_threads;
    g_sinks = aligned_alloc(64, sizeof(sink_t) * (size_t)g_nsinks);
    if (!g_sinks) {
        fprintf(stderr, "rill-load: out of memory\n");
        return -1;
    }
    memset(g_sinks, 0, sizeof(sink_t) * (size_t)g_nsinks);
    for (int i = 0; i < g_nsinks; i++) {
        sink_t *s = &g_sinks[i];
        s->id = i;
        s->listen_fd = listen_fd;
        rill__hist_init(&s->hist);
        if (g_dump_fd >= 0 && !(s->dump = malloc(DUMP_BUF))) {
            fprintf(stderr, "rill-load: out of memory\n");
            return -1;
        }
        s->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (s->epfd < 0) {
            perror("rill-load: epoll_create1");
            return -1;
        }
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(g_sinks[0].epfd, EPOLL_CTL_ADD, listen_fd, &ev);
    for (int i = 0; i < g_nsinks; i++)
        if (pthread_create(&g_sinks[i].tid, NULL, sink_main, &g_sinks[i])) {
            fprintf(stderr, "rill-load: cannot start sink thread\n");
            return -1;
        }
    return 0;
}

void load_sink_totals(load_sink_totals_t *t)
{
    memset(t, 0, sizeof *t);
    for (int i = 0; i < g_nsinks; i++) {
        sink_t *s = &g_sinks[i];
        t->frames += atomic_load_explicit(&s->frames, memory_order_relaxed);
        t->bytes += atomic_load_explicit(&s->bytes, memory_order_relaxed);
        t->foreign += atomic_load_explicit(&s->foreign, memory_order_relaxed);
        t->hellos += atomic_load_explicit(&s->hellos, memory_order_relaxed);
        t->acks += atomic_load_explicit(&s->acks, memory_order_relaxed);
        uint64_t x = atomic_load_explicit(&s->last_ns, memory_order_relaxed);
        if (x > t->last_ns)
            t->last_ns = x;
    }
}

void load_sink_stop(void *hist, load_sink_totals_t *t)
{
    atomic_store(&g_stop_sink, true);
    for (int i = 0; i < g_nsinks; i++)
        pthread_join(g_sinks[i].tid, NULL);
    /* What was counted is acknowledged before the connections close: a sender then holds
     * nothing that this sink counted. */
    for (sink_conn_t *c = g_sink_conns; c; c = c->next)
        if (c->mode == MODE_ACKED && !c->dead)
            sink_ack(c->owner, c);
    load_sink_totals(t);
    for (int i = 0; i < g_nsinks; i++) {
        rill__hist_merge(hist, &g_sinks[i].hist);
        t->errors += g_sinks[i].errors;
    }
    while (g_sink_conns)
        sink_close(g_sink_conns); /* EPOLL_CTL_DEL may fail: harmless */
    for (int i = 0; i < g_nsinks; i++) {
        close(g_sinks[i].epfd);
        free(g_sinks[i].dump);
    }
    close(g_listen_fd);
    if (g_dump_fd >= 0)
        close(g_dump_fd);
    free(g_sinks);
    g_sinks = NULL;
    g_nsinks = 0;
    for (uint32_t b = 0; b < STREAM_BUCKETS; b++)
        while (g_streams[b]) {
            stream_t *st = g_streams[b];
            g_streams[b] = st->next;
            pthread_mutex_destroy(&st->lock);
            free(st);
        }
}
