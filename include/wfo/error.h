/*
 * error.h - error codes and the error value that carries details.
 *
 * Functions return int: 0 on success, a negative WFO_E* code on failure, and
 * fill a caller's struct wfo_error with the message (STYLE rule 4 and 6).
 * The list of codes is errors.def.
 */
#ifndef WFO_ERROR_H
#define WFO_ERROR_H

#include <stdarg.h>

enum {
    WFO_OK = 0,
    WFO_E__FIRST = -1000,
#define X(code, name, type, http, text) WFO_E##code,
#include "errors.def"
#undef X
    WFO_E__LAST
};

/* A filled error: code, and a message (lower case, what failed first). */
struct wfo_error {
    int code;
    char message[512];
};

#define WFO_ERROR_INIT                                                                             \
    {                                                                                              \
        0,                                                                                         \
        {                                                                                          \
            0                                                                                      \
        }                                                                                          \
    }

const char *wfo_strerror(int code);
/* The API's error.type for a code ("NotFound"). */
const char *wfo_error_type(int code);
/* The HTTP status for a code (404). */
int wfo_error_http_status(int code);

/* Sets err (when not NULL) and returns code, so callers can write
 * `return wfo_error_set(err, WFO_EINVAL, "bad %s", x);`. */
int wfo_error_set(struct wfo_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int wfo_error_setv(struct wfo_error *err, int code, const char *fmt, va_list ap);
/* Prefixes the message already in err with "PREFIX: ". */
void wfo_error_prefix(struct wfo_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Aborts with a message; stays on in release builds (STYLE rule 13). */
#define wfo_assert(cond) ((cond) ? (void)0 : wfo_assert_fail(#cond, __FILE__, __LINE__))
_Noreturn void wfo_assert_fail(const char *cond, const char *file, int line);

#endif
