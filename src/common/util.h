/*
 * util.h - small things every module needs: checked allocation, files,
 * random numbers, ids (hashes: crypto.h).
 */
#ifndef WFO_COMMON_UTIL_H
#define WFO_COMMON_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "error.h"

#define WFO_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Allocators that abort on out-of-memory (like git's xmalloc): wfo treats
 * running out of memory as fatal. */
void *wfo_malloc(size_t n);
void *wfo_calloc(size_t n, size_t size);
void *wfo_realloc(void *p, size_t n);
/* Makes room for one more element in arr[0..n) (capacity alloc), doubling. */
#define GROW(arr, n, alloc)                                                                        \
    do {                                                                                           \
        if ((n) == (alloc)) {                                                                      \
            (alloc) = (alloc) ? (alloc)*2 : 16;                                                    \
            (arr) = wfo_realloc((arr), (size_t)(alloc) * sizeof(*(arr)));                          \
        }                                                                                          \
    } while (0)

char *wfo_strdup(const char *s);
char *wfo_strndup(const char *s, size_t n);

/* Reads a whole file into b (bounded by b->max). WFO_EIO with strerror
 * text, WFO_ETOOBIG when over the bound. "-" reads stdin. */
int wfo_read_file(const char *path, struct wfo_buf *b, struct wfo_error *err);

/* Uniform random double in [0, 1), thread-safe. */
double wfo_random(void);

/* A new execution or task id: a UUIDv7 text (36 chars + NUL), time-ordered
 * and strictly increasing within the process. */
#define WFO_ID_SIZE 37
void wfo_id_new(char out[WFO_ID_SIZE]);

/* An execution id given by a client may be longer than a generated one, up
 * to 255 bytes (SPEC 4 sets no bound; idempotency keys like
 * "order-" + a UUID must fit). */
#define WFO_EXEC_ID_SIZE 256

/* Length of the valid UTF-8 sequence at s (at most n bytes, n >= 1), 0 if
 * it is not one (overlong forms, surrogates and code points past U+10FFFF
 * are invalid). */
size_t wfo_utf8_len(const unsigned char *s, size_t n);

/* Strict integer parse of a whole string; WFO_EINVAL otherwise. */
int wfo_parse_int64(const char *s, int64_t *out);

#endif
