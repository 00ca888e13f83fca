/*
 * sse.h - reading a text/event-stream (Server-Sent Events, the WHATWG
 * HTML standard's "event stream interpretation"): `wfo events tail` reads
 * GET /v1/events/stream with it.
 */
#ifndef WFO_COMMON_SSE_H
#define WFO_COMMON_SSE_H

#include <stddef.h>

#include "buf.h"

/* One event: data is its data lines joined with "\n"; event is NULL when
 * the stream gave no `event:` field; id is the last id seen in the stream
 * (it carries over to later events, as the standard says), NULL if none. */
struct sse_event {
    const char *id;
    const char *event;
    const char *data;
};

/* Called for each event; a non-zero return stops sse_feed, which returns it. */
typedef int (*sse_event_cb)(void *ud, const struct sse_event *ev);

struct sse_reader {
    struct wfo_buf line;  /* the line being read */
    struct wfo_buf data;  /* data lines of the event being read */
    struct wfo_buf event; /* its event field */
    struct wfo_buf id;    /* the last id */
    int has_data, has_event, has_id, skip_lf, started;
    int overlong; /* the line being read is too long: skipped to its end */
    sse_event_cb cb;
    void *ud;
};

void sse_init(struct sse_reader *r, sse_event_cb cb, void *ud);
void sse_release(struct sse_reader *r);

/* Reads n more bytes of the stream (any split: a line or a UTF-8
 * character may continue in the next call). Returns 0, or what a callback
 * returned to stop. A line longer than max bytes (WFO_BUF's limit of the
 * reader's buffers: 1 MiB) is dropped, with the event it belongs to. */
int sse_feed(struct sse_reader *r, const char *p, size_t n);

/* The last id seen, for a reconnection's Last-Event-ID; NULL if none. */
const char *sse_last_id(const struct sse_reader *r);

#endif
