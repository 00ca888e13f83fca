/*
 * sse.c - an incremental reader of text/event-stream (sse.h).
 *
 * Lines end with CRLF, LF or CR; a first line may start with a UTF-8 BOM,
 * which is dropped. A line "FIELD: VALUE" (one space after the colon is
 * not part of the value) sets data (appended, lines joined with "\n"),
 * event or id (an id with a NUL byte is ignored); a line starting with ":"
 * is a comment (the keep-alives); other fields are ignored. An empty line
 * dispatches the event when it has data, then forgets data and event but
 * not id.
 */
#include "common/compat.h"

#include <string.h>

#include "sse.h"

#define SSE_MAX_LINE (1u << 20)

void sse_init(struct sse_reader *r, sse_event_cb cb, void *ud)
{
    memset(r, 0, sizeof(*r));
    wfo_buf_init(&r->line, SSE_MAX_LINE);
    wfo_buf_init(&r->data, SSE_MAX_LINE);
    wfo_buf_init(&r->event, SSE_MAX_LINE);
    wfo_buf_init(&r->id, SSE_MAX_LINE);
    r->cb = cb;
    r->ud = ud;
}

void sse_release(struct sse_reader *r)
{
    wfo_buf_release(&r->line);
    wfo_buf_release(&r->data);
    wfo_buf_release(&r->event);
    wfo_buf_release(&r->id);
}

const char *sse_last_id(const struct sse_reader *r)
{
    return r->has_id ? r->id.buf : NULL;
}

static int dispatch(struct sse_reader *r)
{
    int rc = 0;

    if (r->has_data) {
        struct sse_event ev = {r->has_id ? r->id.buf : NULL, r->has_event ? r->event.buf : NULL,
                               r->data.buf ? r->data.buf : ""};
        rc = r->cb(r->ud, &ev);
    }
    wfo_buf_reset(&r->data);
    wfo_buf_reset(&r->event);
    r->has_data = r->has_event = 0;
    return rc;
}

static void field(struct sse_reader *r, const char *line, size_t len)
{
    const char *colon = memchr(line, ':', len);
    size_t name_len = colon ? (size_t)(colon - line) : len;
    const char *value = colon ? colon + 1 : line + len;
    size_t value_len = (size_t)(line + len - value);

    if (value_len && *value == ' ') {
        value++;
        value_len--;
    }
    if (name_len == 4 && memcmp(line, "data", 4) == 0) {
        if (r->has_data)
            wfo_buf_addch(&r->data, '\n');
        wfo_buf_add(&r->data, value, value_len);
        r->has_data = 1;
    } else if (name_len == 5 && memcmp(line, "event", 5) == 0) {
        wfo_buf_reset(&r->event);
        wfo_buf_add(&r->event, value, value_len);
        r->has_event = 1;
    } else if (name_len == 2 && memcmp(line, "id", 2) == 0 && !memchr(value, '\0', value_len)) {
        wfo_buf_reset(&r->id);
        wfo_buf_add(&r->id, value, value_len);
        r->has_id = 1;
    }
}

/* One whole line (without its end). */
static int line_end(struct sse_reader *r)
{
    const char *p = r->line.buf ? r->line.buf : "";
    size_t len = r->line.len;
    int rc = 0;

    if (!r->started) {
        r->started = 1;
        if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) {
            p += 3;
            len -= 3;
        }
    }
    if (len == 0)
        rc = dispatch(r);
    else if (p[0] != ':')
        field(r, p, len);
    wfo_buf_reset(&r->line);
    return rc;
}

int sse_feed(struct sse_reader *r, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        int rc;

        if (ch == '\n' && r->skip_lf) { /* the LF of a CRLF */
            r->skip_lf = 0;
            continue;
        }
        r->skip_lf = 0;
        if (ch == '\r' || ch == '\n') {
            r->skip_lf = ch == '\r';
            if (r->overlong) {
                r->overlong = 0;
                continue;
            }
            if ((rc = line_end(r)) != 0)
                return rc;
            continue;
        }
        if (!r->overlong && wfo_buf_addch(&r->line, ch) < 0) {
            /* too long: drop the line and the event it belongs to */
            r->overlong = 1;
            wfo_buf_reset(&r->line);
            wfo_buf_reset(&r->data);
            r->has_data = 0;
        }
    }
    return 0;
}
