/*
 * error.c - error codes and struct wfo_error (include/wfo/error.h), generated
 * from the one list include/wfo/errors.def (STYLE rules 4-6; the table is in
 * docs/interfaces/api.md, "Errors").
 *
 * Messages are cut at a UTF-8 character boundary when they do not fit, so a
 * message can always be put in a JSON string.
 */
#include "common/compat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

struct error_info {
    const char *type;
    int http;
    const char *text;
};

static const struct error_info error_table[] = {
#define X(code, name, type, http, text) {type, http, text},
#include "wfo/errors.def"
#undef X
};

static const struct error_info *error_lookup(int code)
{
    if (code <= WFO_E__FIRST || code >= WFO_E__LAST)
        return NULL;
    return &error_table[code - WFO_E__FIRST - 1];
}

const char *wfo_strerror(int code)
{
    const struct error_info *e = error_lookup(code);

    if (code == 0)
        return "success";
    return e ? e->text : "unknown error";
}

const char *wfo_error_type(int code)
{
    const struct error_info *e = error_lookup(code);

    return e ? e->type : "InternalError";
}

int wfo_error_http_status(int code)
{
    const struct error_info *e = error_lookup(code);

    if (code == 0)
        return 200;
    return e ? e->http : 500;
}

/*
 * Cuts s (which vsnprintf truncated to fit size bytes, NUL included) back to
 * the last whole UTF-8 character.
 */
static void error_trim_utf8(char *s, size_t size)
{
    size_t len = strlen(s), i, need;
    unsigned char c;

    if (len + 1 < size)
        return;
    i = len;
    while (i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
        i--;
    if (i == 0)
        return;
    c = (unsigned char)s[i - 1];
    if (c < 0x80)
        return;
    need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    if (len - (i - 1) < need)
        s[i - 1] = '\0';
}

int wfo_error_setv(struct wfo_error *err, int code, const char *fmt, va_list ap)
{
    /* Formatted apart: the arguments may point into err->message. */
    char tmp[sizeof(err->message)];

    if (!err)
        return code;
    if (vsnprintf(tmp, sizeof(tmp), fmt, ap) < 0)
        tmp[0] = '\0';
    error_trim_utf8(tmp, sizeof(tmp));
    err->code = code;
    memcpy(err->message, tmp, sizeof(tmp));
    return code;
}

int wfo_error_set(struct wfo_error *err, int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    code = wfo_error_setv(err, code, fmt, ap);
    va_end(ap);
    return code;
}

void wfo_error_prefix(struct wfo_error *err, const char *fmt, ...)
{
    char prefix[sizeof(err->message)];
    char tmp[sizeof(err->message)];
    size_t plen, mlen;
    va_list ap;

    if (!err)
        return;
    va_start(ap, fmt);
    if (vsnprintf(prefix, sizeof(prefix), fmt, ap) < 0)
        prefix[0] = '\0';
    va_end(ap);
    plen = strlen(prefix);
    mlen = strnlen(err->message, sizeof(err->message) - 1);
    if (plen + 2 + mlen > sizeof(tmp) - 1) {
        /* Keep the prefix whole when it fits; cut the message's tail. */
        if (plen + 2 > sizeof(tmp) - 1)
            plen = sizeof(tmp) - 3;
        mlen = sizeof(tmp) - 3 - plen;
    }
    memcpy(tmp, prefix, plen);
    memcpy(tmp + plen, ": ", 2);
    memcpy(tmp + plen + 2, err->message, mlen);
    tmp[plen + 2 + mlen] = '\0';
    error_trim_utf8(tmp, sizeof(tmp));
    memcpy(err->message, tmp, sizeof(tmp));
}

_Noreturn void wfo_assert_fail(const char *cond, const char *file, int line)
{
    /* The one place library code prints (STYLE rule 13). */
    fprintf(stderr, "wfo: assertion failed: %s (%s:%d)\n", cond, file, line);
    fflush(stderr);
    abort();
}
