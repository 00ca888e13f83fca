/*
 * test_buf.c - unit tests of src/common/buf.c: growth, the bound, formatted
 * adds and detaching.
 */
#include "common/compat.h"

#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/error.h"
#include "../tap.h"

TEST(init_is_empty_string)
{
    struct wfo_buf b = WFO_BUF_INIT;

    ok(b.buf != NULL, "buf is never NULL");
    is_str(b.buf, "", "starts as \"\"");
    is_int(b.len, 0, "len 0");
    wfo_buf_reset(&b);
    is_str(b.buf, "", "reset of an empty buffer");
    wfo_buf_release(&b);
    is_str(b.buf, "", "release of an empty buffer");
    is_str(wfo_buf_empty, "", "the shared empty string was never written");
}

TEST(add_and_grow)
{
    struct wfo_buf b;
    char big[5000];

    wfo_buf_init(&b, 0);
    is_int(wfo_buf_adds(&b, "hello"), 0, "adds");
    is_int(wfo_buf_addch(&b, ' '), 0, "addch");
    is_int(wfo_buf_add(&b, "world!!", 5), 0, "add with length");
    is_str(b.buf, "hello world", "content");
    is_int(b.len, 11, "len");
    memset(big, 'x', sizeof(big));
    is_int(wfo_buf_add(&b, big, sizeof(big)), 0, "large add");
    is_int(b.len, 5011, "len after large add");
    ok(b.alloc > b.len, "room for the NUL");
    is_int(b.buf[b.len], 0, "NUL-terminated");
    is_int(wfo_buf_add(&b, NULL, 0), 0, "adding nothing is fine");
    wfo_buf_reset(&b);
    is_int(b.len, 0, "reset empties");
    is_str(b.buf, "", "reset content");
    wfo_buf_release(&b);
}

TEST(embedded_nul)
{
    struct wfo_buf b = WFO_BUF_INIT;

    wfo_buf_add(&b, "a\0b", 3);
    is_int(b.len, 3, "binary data keeps its length");
    ok(memcmp(b.buf, "a\0b", 4) == 0, "bytes and trailing NUL");
    wfo_buf_release(&b);
}

TEST(addf)
{
    struct wfo_buf b = WFO_BUF_INIT;
    char want[400];

    is_int(wfo_buf_addf(&b, "%d-%s", 42, "x"), 0, "addf into an empty buffer");
    is_str(b.buf, "42-x", "formatted");
    /* Longer than what is left: must grow and format again. */
    memset(want, 'y', 300);
    want[300] = '\0';
    is_int(wfo_buf_addf(&b, "%s", want), 0, "addf that grows");
    is_int(b.len, 304, "len");
    ok(strncmp(b.buf, "42-xyyy", 7) == 0 && b.buf[303] == 'y' && b.buf[304] == '\0',
       "content after growth");
    wfo_buf_release(&b);
}

TEST(bound_refuses_and_keeps)
{
    struct wfo_buf b;

    wfo_buf_init(&b, 10);
    is_int(wfo_buf_adds(&b, "0123456789"), 0, "exactly max bytes fit");
    is_int(b.len, 10, "len at max");
    is_int(wfo_buf_addch(&b, 'x'), WFO_ETOOBIG, "one more byte is too big");
    is_str(b.buf, "0123456789", "content unchanged");
    wfo_buf_reset(&b);
    is_int(wfo_buf_adds(&b, "abc"), 0, "add after reset");
    is_int(wfo_buf_adds(&b, "12345678"), WFO_ETOOBIG, "add past the bound");
    is_str(b.buf, "abc", "failed add left the buffer as it was");
    is_int(b.len, 3, "len unchanged");
    is_int(wfo_buf_addf(&b, "%s", "12345678"), WFO_ETOOBIG, "addf past the bound");
    is_str(b.buf, "abc", "failed addf left the buffer as it was");
    is_int(b.len, 3, "len unchanged after addf");
    is_int(wfo_buf_addf(&b, "%d", 1234567), 0, "addf up to the bound");
    is_str(b.buf, "abc1234567", "content at the bound");
    is_int(wfo_buf_grow(&b, (size_t)-1), WFO_ETOOBIG, "huge grow refused, no overflow");
    wfo_buf_release(&b);
    is_int(b.max, 10, "release keeps the bound");
}

TEST(unbounded_overflowing_grow)
{
    struct wfo_buf b = WFO_BUF_INIT;

    wfo_buf_adds(&b, "ab");
    is_int(wfo_buf_grow(&b, (size_t)-1), WFO_ETOOBIG, "size_t overflow refused");
    is_str(b.buf, "ab", "content unchanged");
    wfo_buf_release(&b);
}

TEST(bounded_addf_on_fresh_buffer)
{
    struct wfo_buf b;

    wfo_buf_init(&b, 4);
    is_int(wfo_buf_addf(&b, "%s", "hello"), WFO_ETOOBIG, "too big on a fresh buffer");
    is_str(b.buf, "", "still empty");
    is_str(wfo_buf_empty, "", "shared empty string untouched");
    wfo_buf_release(&b);
}

TEST(detach)
{
    struct wfo_buf b = WFO_BUF_INIT;
    size_t len = 99;
    char *s;

    s = wfo_buf_detach(&b, &len);
    ok(s != NULL && s != wfo_buf_empty, "detach of an empty buffer allocates");
    is_str(s, "", "empty string");
    is_int(len, 0, "len 0");
    free(s);
    wfo_buf_adds(&b, "kept");
    s = wfo_buf_detach(&b, &len);
    is_str(s, "kept", "detached content");
    is_int(len, 4, "detached len");
    is_str(b.buf, "", "buffer is empty after detach");
    is_int(b.len, 0, "len reset");
    wfo_buf_adds(&b, "again");
    is_str(b.buf, "again", "buffer reusable");
    free(s);
    wfo_buf_release(&b);
}

int main(void)
{
    return tap_run();
}
