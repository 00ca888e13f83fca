/*
 * test_sse.c - unit tests of src/common/sse.c: reading text/event-stream.
 */
#include "common/compat.h"

#include <string.h>

#include "common/sse.h"
#include "../tap.h"

/* Every event as "id|event|data\n" ("~" for NULL). */
static int collect(void *ud, const struct sse_event *ev)
{
    struct wfo_buf *out = ud;
    wfo_buf_addf(out, "%s|%s|%s\n", ev->id ? ev->id : "~", ev->event ? ev->event : "~", ev->data);
    return 0;
}

/* Feeds text in pieces of step bytes; returns what was collected. */
static char *read_all(const char *text, size_t step)
{
    static struct wfo_buf out;
    struct sse_reader r;
    size_t n = strlen(text);

    wfo_buf_release(&out);
    wfo_buf_init(&out, 0);
    sse_init(&r, collect, &out);
    for (size_t i = 0; i < n; i += step)
        sse_feed(&r, text + i, i + step <= n ? step : n - i);
    sse_release(&r);
    return out.buf ? out.buf : "";
}

TEST(fields)
{
    const char *s = ": keep-alive\n"
                    "id: 1\nevent: order.paid\ndata: {\"a\": 1}\n\n"
                    "data: first\ndata: second\n\n"
                    "id: 3\ndata:no space\nretry: 10\nunknown: x\n\n";
    const char *want = "1|order.paid|{\"a\": 1}\n"
                       "1|~|first\nsecond\n"
                       "3|~|no space\n";
    for (size_t step = 1; step <= strlen(s); step *= 3)
        is_str(read_all(s, step), want, "in pieces of %zu bytes", step);
}

TEST(line_ends_and_bom)
{
    is_str(read_all("\xEF\xBB\xBF"
                    "data: a\r\n\r\ndata: b\r\rdata: c\n\n",
                    1),
           "~|~|a\n~|~|b\n~|~|c\n", "CRLF, CR and LF; a leading BOM dropped");
    is_str(read_all("data: a\r", 1), "", "no event before its blank line");
    is_str(read_all("data: a\r\n\r\n", 2), "~|~|a\n", "a CRLF split between two reads");
}

TEST(what_is_not_an_event)
{
    is_str(read_all("event: x\n\nid: 7\n\n", 4), "", "no data, no event");
    is_str(read_all("id: 7\n\ndata: y\n\n", 4), "7|~|y\n", "an id carries over");
    is_str(read_all("data\n\n", 4), "~|~|\n", "a field without a colon is empty");
    is_str(read_all("data:  two spaces\n\n", 4), "~|~| two spaces\n", "only one space is taken");
}

TEST(overlong_line)
{
    struct wfo_buf big = WFO_BUF_INIT;
    wfo_buf_adds(&big, "data: start\ndata: ");
    for (int i = 0; i < (1 << 20) + 10; i++)
        wfo_buf_addch(&big, 'x');
    wfo_buf_adds(&big, "\n\ndata: after\n\n");
    is_str(read_all(big.buf, 4096), "~|~|after\n", "a line over 1 MiB drops its event only");
    wfo_buf_release(&big);
}

static int stop_at_second(void *ud, const struct sse_event *ev)
{
    int *n = ud;
    return ++*n == 2 ? 42 : 0;
}

TEST(callback_stops)
{
    struct sse_reader r;
    int n = 0;
    const char *s = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
    sse_init(&r, stop_at_second, &n);
    is_int(sse_feed(&r, s, strlen(s)), 42, "the callback's value");
    is_int(n, 2, "no event after it");
    ok(sse_last_id(&r) == NULL, "no id seen");
    sse_release(&r);
}

int main(void)
{
    return tap_run();
}
