/*
 * test_error.c - unit tests of src/common/error.c: the tables generated
 * from include/wfo/errors.def (strerror, API type, HTTP status, unknown
 * codes), wfo_error_set returning its code, messages cut at a UTF-8
 * character boundary, wfo_error_prefix keeping the prefix whole, and
 * formatting from err's own message.
 */
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "../tap.h"
#include "common/banned.h"

/* Is s valid UTF-8 (no cut character at its end)? */
static int utf8_whole(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int n = *p < 0x80 ? 1 : *p >= 0xF0 ? 4 : *p >= 0xE0 ? 3 : *p >= 0xC0 ? 2 : 0;
        if (!n)
            return 0;
        for (int i = 1; i < n; i++)
            if ((p[i] & 0xC0) != 0x80)
                return 0;
        p += n;
    }
    return 1;
}

TEST(tables)
{
    is_str(wfo_strerror(0), "success", "0: success");
    is_str(wfo_strerror(WFO_ENOTFOUND), "not found", "text of ENOTFOUND");
    is_str(wfo_strerror(WFO_ESTORE), "store error", "text of ESTORE");
    is_str(wfo_strerror(WFO_E__LAST), "unknown error", "past the list");
    is_str(wfo_strerror(WFO_E__FIRST), "unknown error", "before the list");
    is_str(wfo_strerror(-1), "unknown error", "a negative errno");
    is_str(wfo_error_type(WFO_ENOTFOUND), "NotFound", "type of ENOTFOUND");
    is_str(wfo_error_type(WFO_EDEFINITION), "InvalidDefinition", "type of EDEFINITION");
    is_str(wfo_error_type(WFO_EPAYLOAD), "PayloadTooLarge", "type of EPAYLOAD");
    is_str(wfo_error_type(12345), "InternalError", "unknown: InternalError");
    is_int(wfo_error_http_status(0), 200, "0: 200");
    is_int(wfo_error_http_status(WFO_EINVAL), 400, "EINVAL: 400");
    is_int(wfo_error_http_status(WFO_ENOTFOUND), 404, "ENOTFOUND: 404");
    is_int(wfo_error_http_status(WFO_ECONFLICT), 409, "ECONFLICT: 409");
    is_int(wfo_error_http_status(WFO_EPAYLOAD), 400, "EPAYLOAD: 400 (not 413)");
    is_int(wfo_error_http_status(WFO_EBUSY), 429, "EBUSY: 429");
    is_int(wfo_error_http_status(WFO_ESTORE), 503, "ESTORE: 503");
    is_int(wfo_error_http_status(WFO_EUNAUTH), 401, "EUNAUTH: 401");
    is_int(wfo_error_http_status(-7), 500, "unknown: 500");
    int distinct = 1;
    for (int c = WFO_E__FIRST + 1; c < WFO_E__LAST; c++) {
        if (!*wfo_strerror(c) || strcmp(wfo_strerror(c), "unknown error") == 0)
            distinct = 0;
        if (wfo_error_http_status(c) < 400 || wfo_error_http_status(c) > 599)
            distinct = 0;
    }
    ok(distinct, "every code has a text and an error status");
}

TEST(set)
{
    struct wfo_error err = WFO_ERROR_INIT;
    is_int(wfo_error_set(&err, WFO_EINVAL, "bad '%s' at %d", "x", 3), WFO_EINVAL,
           "returns its code");
    is_int(err.code, WFO_EINVAL, "code set");
    is_str(err.message, "bad 'x' at 3", "message formatted");
    is_int(wfo_error_set(NULL, WFO_EIO, "ignored"), WFO_EIO, "NULL err: still the code");
    wfo_error_set(&err, WFO_EIO, "again: %s", err.message);
    is_str(err.message, "again: bad 'x' at 3", "an argument pointing into err->message");
}

TEST(long_message_cut_on_a_character)
{
    struct wfo_error err = WFO_ERROR_INIT;
    char big[2000];
    /* "é" is 2 bytes: 510 ASCII bytes then é straddles the 511-byte limit */
    memset(big, 'a', 510);
    big[510] = 0;
    wfo_error_set(&err, WFO_EINVAL, "%s\xc3\xa9tail", big);
    is_int(strlen(err.message), 510, "the cut character is dropped whole");
    ok(utf8_whole(err.message), "still valid UTF-8");
    for (int pad = 505; pad < 512; pad++) {
        memset(big, 'b', (size_t)pad);
        big[pad] = 0;
        wfo_error_set(&err, WFO_EINVAL, "%s\xe2\x82\xac\xf0\x9f\x98\x80", big);
        ok(utf8_whole(err.message) && strlen(err.message) < sizeof(err.message),
           "pad %d: valid, within the buffer", pad);
    }
}

TEST(prefix)
{
    struct wfo_error err = WFO_ERROR_INIT;
    wfo_error_set(&err, WFO_ENOTFOUND, "workflow 'w' not found");
    wfo_error_prefix(&err, "starting '%s'", "w");
    is_str(err.message, "starting 'w': workflow 'w' not found", "prefixed");
    is_int(err.code, WFO_ENOTFOUND, "code kept");
    wfo_error_prefix(NULL, "x"); /* no crash */

    char big[600];
    memset(big, 'm', 500);
    big[500] = 0;
    wfo_error_set(&err, WFO_EIO, "%s", big);
    wfo_error_prefix(&err, "reading '%s'", "f.yaml");
    ok(strncmp(err.message, "reading 'f.yaml': mmm", 21) == 0, "prefix kept whole");
    is_int(strlen(err.message), sizeof(err.message) - 1, "message's tail cut to fit");

    memset(big, 'p', 599);
    big[599] = 0;
    wfo_error_set(&err, WFO_EIO, "inner");
    wfo_error_prefix(&err, "%s", big);
    ok(strlen(err.message) < sizeof(err.message), "a prefix longer than the buffer fits");
    ok(strstr(err.message, ": ") != NULL, "with its separator");
}

int main(void)
{
    return tap_run();
}
