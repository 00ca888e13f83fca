/*
 * buf.c - the growable, bounded byte buffer of common/buf.h (STYLE rule 10;
 * docs/interfaces/internal.md, "Common building blocks").
 *
 * Invariants:
 *  1. b->buf[b->len] == '\0' at every return.
 *  2. b->alloc == 0 means b->buf is wfo_buf_empty, which is never written.
 *  3. with b->max != 0, b->len <= b->max; a failed add leaves b unchanged.
 */
#include "common/compat.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/error.h"
#include "common/util.h"

char wfo_buf_empty[1];

void wfo_buf_init(struct wfo_buf *b, size_t max)
{
    b->buf = wfo_buf_empty;
    b->len = 0;
    b->alloc = 0;
    b->max = max;
}

void wfo_buf_release(struct wfo_buf *b)
{
    if (b->alloc)
        free(b->buf);
    wfo_buf_init(b, b->max);
}

void wfo_buf_reset(struct wfo_buf *b)
{
    b->len = 0;
    if (b->alloc)
        b->buf[0] = '\0';
}

char *wfo_buf_detach(struct wfo_buf *b, size_t *len)
{
    char *s;

    if (len)
        *len = b->len;
    if (b->alloc)
        s = b->buf;
    else
        s = wfo_calloc(1, 1);
    wfo_buf_init(b, b->max);
    return s;
}

int wfo_buf_grow(struct wfo_buf *b, size_t extra)
{
    size_t need, alloc;
    char *p;

    if (extra > SIZE_MAX - 1 - b->len)
        return WFO_ETOOBIG;
    need = b->len + extra;
    if (b->max && need > b->max)
        return WFO_ETOOBIG;
    if (need + 1 <= b->alloc)
        return 0;
    alloc = b->alloc < 64 ? 64 : b->alloc;
    while (alloc < need + 1)
        alloc = alloc > SIZE_MAX / 2 ? need + 1 : alloc * 2;
    if (b->max && b->max < SIZE_MAX && alloc > b->max + 1)
        alloc = b->max + 1;
    if (b->alloc) {
        p = wfo_realloc(b->buf, alloc);
    } else {
        p = wfo_malloc(alloc);
        p[0] = '\0'; /* invariant 2: the old buffer was "" */
    }
    b->buf = p;
    b->alloc = alloc;
    return 0;
}

int wfo_buf_add_slow(struct wfo_buf *b, const void *data, size_t len)
{
    int rc;

    if (len == 0)
        return 0;
    rc = wfo_buf_grow(b, len);
    if (rc < 0)
        return rc;
    memmove(b->buf + b->len, data, len);
    b->len += len;
    b->buf[b->len] = '\0';
    return 0;
}

int wfo_buf_addint(struct wfo_buf *b, long long n)
{
    if (n >= 0 && n < 10) /* most of an execution's saved state: ids, flags, counters */
        return wfo_buf_addch(b, '0' + (int)n);
    char tmp[WFO_INT_TEXT_SIZE];
    return wfo_buf_add(b, tmp, wfo_int_text(n, tmp));
}

int wfo_buf_addf(struct wfo_buf *b, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = wfo_buf_vaddf(b, fmt, ap);
    va_end(ap);
    return rc;
}

int wfo_buf_vaddf(struct wfo_buf *b, const char *fmt, va_list ap)
{
    va_list cp;
    int n, rc;

    va_copy(cp, ap);
    /* Invariant 2: never let vsnprintf write into wfo_buf_empty. */
    if (b->alloc)
        n = vsnprintf(b->buf + b->len, b->alloc - b->len, fmt, cp);
    else
        n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    if (n < 0) {
        rc = WFO_EINVAL;
        goto out;
    }
    if (b->alloc && (size_t)n < b->alloc - b->len) {
        if (b->max && b->len + (size_t)n > b->max) {
            rc = WFO_ETOOBIG;
            goto out;
        }
        b->len += (size_t)n;
        return 0;
    }
    rc = wfo_buf_grow(b, (size_t)n);
    if (rc < 0)
        goto out;
    va_copy(cp, ap);
    n = vsnprintf(b->buf + b->len, b->alloc - b->len, fmt, cp);
    va_end(cp);
    if (n < 0) {
        rc = WFO_EINVAL;
        goto out;
    }
    b->len += (size_t)n;
    return 0;
out:
    /* vsnprintf may have written past len: restore invariant 1. */
    if (b->alloc)
        b->buf[b->len] = '\0';
    return rc;
}
