/*
 * buf.h - a growable, bounded byte buffer, always NUL-terminated
 * (git's strbuf, curl's dynbuf).
 *
 * A buffer with max != 0 refuses to grow past max bytes: the add functions
 * then return WFO_ETOOBIG and leave the buffer as it was.
 */
#ifndef WFO_COMMON_BUF_H
#define WFO_COMMON_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <string.h>

struct wfo_buf {
    char *buf; /* never NULL after init: points at "" until something is added */
    size_t len;
    size_t alloc;
    size_t max; /* 0: unbounded */
};

extern char wfo_buf_empty[];
#define WFO_BUF_INIT                                                                               \
    {                                                                                              \
        wfo_buf_empty, 0, 0, 0                                                                     \
    }

void wfo_buf_init(struct wfo_buf *b, size_t max);
void wfo_buf_release(struct wfo_buf *b);
void wfo_buf_reset(struct wfo_buf *b);
/* Returns the string, caller frees with free(); the buffer is left empty. */
char *wfo_buf_detach(struct wfo_buf *b, size_t *len);
int wfo_buf_grow(struct wfo_buf *b, size_t extra);
/* wfo_buf_add when the buffer must grow first (or refuses to) */
int wfo_buf_add_slow(struct wfo_buf *b, const void *data, size_t len);

/* The adds are inline: the state of every execution a batch carries is
 * written with hundreds of them (exec_row_state), most of which fit the
 * room there is. len < alloc - len leaves room for the NUL, and stays
 * within max (alloc <= max + 1); alloc == 0 (wfo_buf_empty) never fits;
 * data may be NULL when len is 0. */
static inline int wfo_buf_add(struct wfo_buf *b, const void *data, size_t len)
{
    if (len && len < b->alloc - b->len) {
        memcpy(b->buf + b->len, data, len);
        b->len += len;
        b->buf[b->len] = '\0';
        return 0;
    }
    return wfo_buf_add_slow(b, data, len);
}

static inline int wfo_buf_adds(struct wfo_buf *b, const char *s)
{
    return wfo_buf_add(b, s, strlen(s));
}

static inline int wfo_buf_addch(struct wfo_buf *b, int c)
{
    if (b->len + 1 < b->alloc) {
        b->buf[b->len++] = (char)c;
        b->buf[b->len] = '\0';
        return 0;
    }
    char ch = (char)c;
    return wfo_buf_add_slow(b, &ch, 1);
}
/* Decimal digits of n (hot paths: no printf). */
int wfo_buf_addint(struct wfo_buf *b, long long n);
int wfo_buf_addf(struct wfo_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int wfo_buf_vaddf(struct wfo_buf *b, const char *fmt, va_list ap);

#endif
