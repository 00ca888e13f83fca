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

/* Does an event type match pattern (SPEC 2.5: subscription and stream
 * types)? "*" matches every type, "prefix.*" every type that starts with
 * "prefix.", anything else only itself. */
int wfo_type_matches(const char *pattern, const char *type);

/* A new execution or task id: a UUIDv7 text (36 chars + NUL), time-ordered
 * and strictly increasing within the process. */
#define WFO_ID_SIZE 37
void wfo_id_new(char out[WFO_ID_SIZE]);

/* An execution id given by a client may be longer than a generated one, up
 * to 255 bytes (SPEC 4 sets no bound; idempotency keys like
 * "order-" + a UUID must fit). */
#define WFO_EXEC_ID_SIZE 256

/* The one UTF-8 decoder. Text, for wfo, is valid UTF-8 without NUL bytes:
 * no name, input, request target, YAML file or command output made into a
 * JSON string may hold one (JSON writes U+0000 as "\u0000" and never asks
 * here). So a NUL byte is refused like an invalid one; callers that tell
 * the two apart (YAML's messages) look at the byte.
 *
 * Length of the valid UTF-8 sequence at s (at most n bytes, n >= 1), 0 if
 * it is not one: a NUL byte, overlong forms, surrogates, code points past
 * U+10FFFF and sequences cut short are invalid. */
size_t wfo_utf8_len(const unsigned char *s, size_t n);

/* How many bytes at the start of s[0..n) are text (wfo_utf8_len): n when
 * all of it is. */
size_t wfo_utf8_span(const char *s, size_t n);

/* How many characters s holds (a byte where no valid sequence starts
 * counts as one). */
size_t wfo_utf8_chars(const char *s);

/* How many of the n bytes at s to keep to have at most max of them without
 * cutting a UTF-8 sequence in two: n when n <= max, else max or a little
 * less. */
size_t wfo_utf8_cut(const char *s, size_t n, size_t max);

/* Appends s[0..n) to b as text: each byte where no valid sequence starts
 * (a NUL too) becomes U+FFFD. Stops before b->len would pass max, at a
 * character boundary. Returns the bytes of s taken, or a negative WFO_E...
 * when b cannot grow. */
int64_t wfo_utf8_scrub(struct wfo_buf *b, const char *s, size_t n, size_t max);

/* Strict integer parse of a whole string; WFO_EINVAL otherwise. */
int wfo_parse_int64(const char *s, int64_t *out);
/* n in decimal into out, NUL-terminated; its length. No printf: ids and
 * saved state format many of these per transition. */
#define WFO_INT_TEXT_SIZE 21
size_t wfo_int_text(long long n, char out[WFO_INT_TEXT_SIZE]);

#endif
