/*
 * stream.c - GET /v1/events/stream (SPEC 2.5, 4): the outbox as
 * Server-Sent Events. docs/interfaces/api.md "The event stream",
 * docs/implementation/event_processing.md "The outbox and the stream".
 *
 * The handler answers with a streamed body (struct api_stream): http.c
 * sends the headers at once and then asks read() for more, on the
 * connection's thread, for as long as the client stays. read() reads the
 * outbox from the store through core (engine_outbox_read), never from the
 * engine's memory, so a slow reader holds nothing but its own connection
 * (core/events.c O3); between reads it sleeps on the outbox's commit
 * counter (engine_outbox_wait), at most STREAM_SLICE_MS at a time. With a
 * pool of HTTP threads, http.c asks try_read() instead, and a waiter
 * thread does the sleeping (wait()) while the connection is suspended.
 *
 *   S1. seq is the last outbox seq this stream has read (sent or
 *       filtered out). It starts at the seq of Last-Event-ID's row, else at
 *       the namespace's last seq when the request came; rows commit in seq
 *       order (O2), so reading on from seq misses nothing and repeats
 *       nothing, across reconnects too.
 *   S2. A message is written whole into `out` before any of it is
 *       handed to the transport: a client never sees half a message
 *       followed by another one.
 */
#include "common/compat.h"

#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "../core/engine.h"
#include "../common/duration.h"
#include "../common/log.h"
#include "../common/util.h"

#define STREAM_SLICE_MS 250
#define STREAM_KEEPALIVE_MS 10000 /* SPEC: at least every 15 s */
#define STREAM_BATCH 256          /* outbox rows read at once */
#define STREAM_TYPES_MAX 32

struct api_event_stream {
    struct api_stream base; /* first */
    struct api *a;
    char *ns;
    char *types[STREAM_TYPES_MAX];
    int n_types;
    char *exec;
    int64_t seq; /* S1 */
    int64_t gen; /* the outbox's commit counter before the last read */
    struct wfo_buf out;
    size_t off;
    int64_t last_sent; /* wfo_mono_ms of the last bytes handed over */
    int started;
    int (*gone)(void *conn);
    void *conn;
};

static int type_matches(const struct api_event_stream *st, const char *type)
{
    if (st->n_types == 0)
        return 1;
    for (int i = 0; i < st->n_types; i++)
        if (wfo_type_matches(st->types[i], type))
            return 1;
    return 0;
}

/* A field of one line: CR and LF would end it (and start another). */
static void add_line_field(struct wfo_buf *b, const char *name, const char *v)
{
    wfo_buf_adds(b, name);
    for (const char *p = v ? v : ""; *p; p++) {
        char c = (*p == '\n' || *p == '\r') ? ' ' : *p;
        wfo_buf_add(b, &c, 1);
    }
    wfo_buf_adds(b, "\n");
}

static int stream_row(void *ud, const struct engine_outbox_row *r)
{
    struct api_event_stream *st = ud;
    st->seq = r->seq;
    if (!type_matches(st, r->type))
        return 0;
    if (st->exec && (!r->exec_id || strcmp(st->exec, r->exec_id) != 0))
        return 0;
    add_line_field(&st->out, "id: ", r->id);
    add_line_field(&st->out, "event: ", r->type);
    add_line_field(&st->out, "data: ", r->event); /* compact JSON: one line */
    wfo_buf_adds(&st->out, "\n");
    return 0;
}

/* Up to max bytes of the stream into buf if some are ready: the count, 0
 * when none are yet (stream_wait, then again), or -1 at its end (the
 * server stops, the client left, the engine failed). */
static long stream_try_read(struct api_stream *base, char *buf, size_t max)
{
    struct api_event_stream *st = (struct api_event_stream *)base;
    for (;;) {
        if (st->off < st->out.len) {
            size_t n = st->out.len - st->off;
            if (n > max)
                n = max;
            memcpy(buf, st->out.buf + st->off, n);
            st->off += n;
            if (st->off == st->out.len) {
                wfo_buf_reset(&st->out);
                st->off = 0;
            }
            st->last_sent = wfo_mono_ms();
            return (long)n;
        }
        if (atomic_load(&st->a->stopping))
            return -1;
        if (!st->started) {
            /* something at once, so the headers go out with it */
            st->started = 1;
            wfo_buf_adds(&st->out, ": wfo event stream\n\n");
            continue;
        }
        struct wfo_error err = WFO_ERROR_INIT;
        st->gen = engine_outbox_wait(st->a->engine, -1, 0);
        int rc =
            engine_outbox_read(st->a->engine, st->ns, st->seq, STREAM_BATCH, stream_row, st, &err);
        if (rc < 0) {
            if (rc != WFO_ESTORE && rc != WFO_EIO && rc != WFO_EBUSY)
                return -1;
            wfo_debug(NULL, NULL, "events stream: reading the outbox: %s", err.message);
        }
        if (st->out.len)
            continue;
        if (wfo_mono_ms() - st->last_sent >= STREAM_KEEPALIVE_MS) {
            wfo_buf_adds(&st->out, ": keep-alive\n\n");
            continue;
        }
        if (st->gone && st->gone(st->conn))
            return -1;
        return 0;
    }
}

/* Sleeps until the outbox may have more than stream_try_read saw (a
 * commit since), a keep-alive is due, or a slice has passed. */
static void stream_wait(struct api_stream *base)
{
    struct api_event_stream *st = (struct api_event_stream *)base;
    int64_t wait = STREAM_KEEPALIVE_MS - (wfo_mono_ms() - st->last_sent);
    if (wait > 0)
        engine_outbox_wait(st->a->engine, st->gen, wait < STREAM_SLICE_MS ? wait : STREAM_SLICE_MS);
}

/* stream_try_read, waiting until some bytes are ready. */
static long stream_read(struct api_stream *base, char *buf, size_t max)
{
    for (;;) {
        long n = stream_try_read(base, buf, max);
        if (n != 0)
            return n;
        stream_wait(base);
    }
}

static void stream_free(struct api_stream *base)
{
    struct api_event_stream *st = (struct api_event_stream *)base;
    for (int i = 0; i < st->n_types; i++)
        free(st->types[i]);
    free(st->ns);
    free(st->exec);
    wfo_buf_release(&st->out);
    free(st);
}

/* ?types=a,b.*&execution=ID; Last-Event-ID resumes after that event. */
int api_event_stream(struct api *a, struct api_req *req, struct api_resp *resp,
                     struct wfo_error *err)
{
    const char *types = api_query(req, "types");
    const char *exec = api_query(req, "execution");
    const char *last = api_header(req, "Last-Event-ID");
    int64_t seq = 0;
    int rc;
    if (!a->engine)
        return wfo_error_set(err, WFO_ESHUTDOWN, "no engine");
    if (last && *last) {
        rc = engine_outbox_seq(a->engine, req->ns, last, &seq, err);
        if (rc == WFO_ENOTFOUND) {
            /* gone by retention, or never ours: from now on */
            memset(err, 0, sizeof(*err));
            rc = engine_outbox_seq(a->engine, req->ns, NULL, &seq, err);
        }
    } else {
        rc = engine_outbox_seq(a->engine, req->ns, NULL, &seq, err);
    }
    if (rc < 0)
        return rc;
    struct api_event_stream *st = wfo_calloc(1, sizeof(*st));
    st->base.read = stream_read;
    st->base.try_read = stream_try_read;
    st->base.wait = stream_wait;
    st->base.free = stream_free;
    st->a = a;
    st->ns = wfo_strdup(req->ns);
    st->exec = exec && *exec ? wfo_strdup(exec) : NULL;
    st->seq = seq;
    st->gone = req->gone;
    st->conn = req->conn;
    st->last_sent = wfo_mono_ms();
    wfo_buf_init(&st->out, 0);
    for (const char *p = types; p && *p;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        while (n && *p == ' ')
            p++, n--;
        while (n && p[n - 1] == ' ')
            n--;
        if (n) {
            if (st->n_types == STREAM_TYPES_MAX) {
                stream_free(&st->base);
                return wfo_error_set(err, WFO_EINVAL, "types: at most %d patterns",
                                     STREAM_TYPES_MAX);
            }
            st->types[st->n_types++] = wfo_strndup(p, n);
        }
        p = comma ? comma + 1 : p + strlen(p);
    }
    resp->status = 200;
    resp->stream = &st->base;
    resp->content_type = "text/event-stream";
    return 0;
}
