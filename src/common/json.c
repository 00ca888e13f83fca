/*
 * json.c - wfo's JSON codecs over jansson (common/json.h; SPEC 2 and 4;
 * docs/interfaces/internal.md, "Common building blocks").
 *
 * Parsing is jansson's, behind a pre-scan that refuses nesting deeper than
 * WFO_JSON_MAX_DEPTH in linear time and without recursion (a body of
 * 100,000 '[' is refused before jansson sees it). Object keys must be unique.
 *
 * Serialization is our own, so that:
 *  1. a real prints as the shortest text that reads back to the same double
 *     ("0.1", not jansson's "0.10000000000000001"), and always as a real
 *     ("1.0", never "1");
 *  2. the output is always valid UTF-8: bytes that are not (only possible in
 *     strings made with jansson's _nocheck functions) become U+FFFD;
 *  3. keys come out in insertion order (jansson >= 2.8 keeps it).
 * Values nested deeper than JSON_DUMP_MAX_DEPTH (or cyclic) are refused.
 */
#include "common/compat.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/util.h"

#define JSON_DUMP_MAX_DEPTH 2048

/* ---- parsing ---- */

/* 1-based line and column (in characters) of text[pos]. */
static void json_position(const char *text, size_t pos, int *line, int *col)
{
    int l = 1, c = 1;

    for (size_t i = 0; i < pos; i++) {
        unsigned char ch = (unsigned char)text[i];

        if (ch == '\n') {
            l++;
            c = 1;
        } else if ((ch & 0xC0) != 0x80) {
            c++;
        }
    }
    *line = l;
    *col = c;
}

/*
 * Scans brackets outside strings. Returns the offset of the first bracket
 * that goes deeper than WFO_JSON_MAX_DEPTH, or len when there is none.
 */
/* The index of the '"' that ends the string opened at text[i] (len when
 * it does not end). */
static size_t string_end(const char *text, size_t len, size_t i)
{
    for (i++; i < len; i++) {
        if (text[i] == '\\')
            i++;
        else if (text[i] == '"')
            return i;
    }
    return len;
}

static size_t json_depth_scan(const char *text, size_t len)
{
    int depth = 0;

    for (size_t i = 0; i < len; i++) {
        char c = text[i];

        if (c == '"') {
            i = string_end(text, len, i);
        } else if (c == '[' || c == '{') {
            if (++depth > WFO_JSON_MAX_DEPTH)
                return i;
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return len;
}

/* Is the integer literal t[0..n) (an optional '-', then digits) outside
 * what jansson's json_int_t holds? */
static int int_too_big(const char *t, size_t n)
{
    int neg = t[0] == '-';
    const char *d = t + neg;
    size_t nd = n - (size_t)neg;
    const char *lim = neg ? "9223372036854775808" : "9223372036854775807";
    while (nd > 1 && d[0] == '0') {
        d++;
        nd--;
    }
    return nd > 19 || (nd == 19 && memcmp(d, lim, 19) > 0);
}

/* text with every integer literal too big for 64 bits made a real one
 * ("1e20" stays, "100000000000000000000" gets ".0"), strings untouched:
 * only those numbers are read as doubles, every other integer stays
 * exact. NULL when there is none. */
static char *big_ints_as_reals(const char *text, size_t len, size_t *out_len)
{
    struct wfo_buf b = WFO_BUF_INIT;
    size_t from = 0;
    int found = 0;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (c == '"') {
            i = string_end(text, len, i);
            continue;
        }
        if (c != '-' && (c < '0' || c > '9'))
            continue;
        size_t j = i + (c == '-');
        while (j < len && text[j] >= '0' && text[j] <= '9')
            j++;
        int integer = j > i + (c == '-') &&
                      !(j < len && (text[j] == '.' || text[j] == 'e' || text[j] == 'E'));
        if (integer && int_too_big(text + i, j - i)) {
            wfo_buf_add(&b, text + from, j - from);
            wfo_buf_adds(&b, ".0");
            from = j;
            found = 1;
        }
        while (j < len && (text[j] == '.' || text[j] == 'e' || text[j] == 'E' || text[j] == '+' ||
                           text[j] == '-' || (text[j] >= '0' && text[j] <= '9')))
            j++; /* the rest of the number */
        i = j - 1;
    }
    if (!found) {
        wfo_buf_release(&b);
        return NULL;
    }
    wfo_buf_add(&b, text + from, len - from);
    return wfo_buf_detach(&b, out_len);
}

/* Copies jansson's message without control characters or non-ASCII bytes
 * (its "near '...'" quotes raw input), and in wfo's words. */
static void json_clean_message(const char *in, char *out, size_t size)
{
    static const char nul_msg[] = "\\u0000 is not allowed without JSON_ALLOW_NUL";
    size_t k = 0;

    if (strncmp(in, nul_msg, sizeof(nul_msg) - 1) == 0) {
        snprintf(out, size, "NUL characters (\\u0000) are not allowed");
        return;
    }
    for (; *in && k + 1 < size; in++) {
        unsigned char c = (unsigned char)*in;

        out[k++] = (c < 0x20 || c >= 0x7F) ? '?' : (char)c;
    }
    out[k] = '\0';
}

int wfo_json_parse(const char *text, size_t len, json_t **out, struct wfo_error *err)
{
    json_error_t jerr;
    char msg[sizeof(jerr.text)];
    size_t i, deep;
    int line, col;
    json_t *v;

    *out = NULL;
    if (!text)
        len = 0;
    /* A UTF-8 byte order mark is allowed and ignored (RFC 8259 section 8.1). */
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) {
        text += 3;
        len -= 3;
    }
    for (i = 0; i < len; i++)
        if (text[i] != ' ' && text[i] != '\t' && text[i] != '\n' && text[i] != '\r')
            break;
    if (i == len) {
        json_position(text, len, &line, &col);
        return wfo_error_set(err, WFO_EPARSE, "line %d column %d: empty document", line, col);
    }
    deep = json_depth_scan(text, len);
    if (deep < len) {
        json_position(text, deep, &line, &col);
        return wfo_error_set(err, WFO_EPARSE, "line %d column %d: nesting deeper than %d levels",
                             line, col, WFO_JSON_MAX_DEPTH);
    }
    v = json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    if (!v && strstr(jerr.text, "too big integer")) {
        /* valid JSON with integers beyond 64 bits: those are read as
         * doubles (as jq reads every number) rather than refuse the
         * document; the others stay integers */
        size_t n = 0;
        char *t = big_ints_as_reals(text, len, &n);
        if (t)
            v = json_loadb(t, n, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
        free(t);
    }
    if (!v) {
        json_clean_message(jerr.text, msg, sizeof(msg));
        return wfo_error_set(err, WFO_EPARSE, "line %d column %d: %s", jerr.line,
                             jerr.column > 0 ? jerr.column : 1, msg);
    }
    *out = v;
    return 0;
}

/* ---- serialization ---- */

/* Is every byte of the 8 in v printable ASCII other than '"' and '\\'
 * (nothing to escape or to check as UTF-8)? Bit tricks on a word, after
 * "Bit Twiddling Hacks": a byte below n, a zero byte. */
#define BYTES(n) (UINT64_C(0x0101010101010101) * (n))
#define HAS_LESS(x, n) (((x)-BYTES(n)) & ~(x)&BYTES(0x80))
#define HAS_ZERO(x) HAS_LESS(x, 1)
static int plain8(uint64_t v)
{
    return !((v & BYTES(0x80)) | HAS_LESS(v, 0x20) | HAS_ZERO(v ^ BYTES('"')) |
             HAS_ZERO(v ^ BYTES('\\')));
}

static int json_dump_string(const char *str, size_t len, struct wfo_buf *b)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t run = 0, i = 0;
    int rc;

    if ((rc = wfo_buf_addch(b, '"')) < 0)
        return rc;
    while (i < len) {
        unsigned char c = s[i];
        const char *esc = NULL;
        char ubuf[8];
        size_t n = 1;
        uint64_t w;

        /* ids, names and times are plain ASCII: eight bytes at a time */
        while (i + 8 <= len && (memcpy(&w, s + i, 8), plain8(w)))
            i += 8;
        if (i >= len)
            break;
        c = s[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0x80) {
            n = wfo_utf8_len(s + i, len - i);
            if (n) {
                i += n;
                continue;
            }
            n = 1;
            esc = "\\ufffd";
        } else if (c == '"') {
            esc = "\\\"";
        } else if (c == '\\') {
            esc = "\\\\";
        } else if (c == '\n') {
            esc = "\\n";
        } else if (c == '\r') {
            esc = "\\r";
        } else if (c == '\t') {
            esc = "\\t";
        } else if (c == '\b') {
            esc = "\\b";
        } else if (c == '\f') {
            esc = "\\f";
        } else {
            snprintf(ubuf, sizeof(ubuf), "\\u%04x", c);
            esc = ubuf;
        }
        /* Flush the plain bytes before the escape, then the escape. */
        if ((rc = wfo_buf_add(b, s + run, i - run)) < 0 || (rc = wfo_buf_adds(b, esc)) < 0)
            return rc;
        i += n;
        run = i;
    }
    if ((rc = wfo_buf_add(b, s + run, i - run)) < 0)
        return rc;
    return wfo_buf_addch(b, '"');
}

/* Invariant 1: the shortest %.Ng (N = 15..17) that reads back exactly. */
static int json_dump_real(double d, struct wfo_buf *b)
{
    char tmp[40];
    char *p;

    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
        /* A locale may have put a ',' where JSON wants a '.'. */
        if ((p = strchr(tmp, ',')))
            *p = '.';
        if (strtod(tmp, NULL) == d)
            break;
    }
    if (!strpbrk(tmp, ".eE")) {
        size_t l = strlen(tmp);

        if (l + 3 <= sizeof(tmp)) {
            memcpy(tmp + l, ".0", 3);
        }
    }
    return wfo_buf_adds(b, tmp);
}

static int json_newline(struct wfo_buf *b, int indent, int level)
{
    int rc;

    if (indent < 0)
        return 0;
    if ((rc = wfo_buf_addch(b, '\n')) < 0)
        return rc;
    for (int i = 0; i < indent * level; i++)
        if ((rc = wfo_buf_addch(b, ' ')) < 0)
            return rc;
    return 0;
}

int wfo_json_dump_int(long long n, struct wfo_buf *b)
{
    return wfo_buf_addint(b, n);
}

int wfo_json_dump_str(const char *s, struct wfo_buf *b)
{
    return json_dump_string(s, strlen(s), b);
}

/* indent < 0: compact. */
static int json_dump(const json_t *v, struct wfo_buf *b, int indent, int level)
{
    int rc = 0, first = 1;

    if (level > JSON_DUMP_MAX_DEPTH)
        return WFO_EINVAL;
    if (!v)
        return wfo_buf_adds(b, "null");
    switch (json_typeof(v)) {
    case JSON_NULL:
        return wfo_buf_adds(b, "null");
    case JSON_TRUE:
        return wfo_buf_adds(b, "true");
    case JSON_FALSE:
        return wfo_buf_adds(b, "false");
    case JSON_INTEGER:
        return wfo_json_dump_int(json_integer_value(v), b);
    case JSON_REAL:
        return json_dump_real(json_real_value(v), b);
    case JSON_STRING:
        return json_dump_string(json_string_value(v), json_string_length(v), b);
    case JSON_ARRAY:
        if (json_array_size(v) == 0)
            return wfo_buf_adds(b, "[]");
        if ((rc = wfo_buf_addch(b, '[')) < 0)
            return rc;
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (!first && (rc = wfo_buf_addch(b, ',')) < 0)
                return rc;
            first = 0;
            if ((rc = json_newline(b, indent, level + 1)) < 0 ||
                (rc = json_dump(json_array_get(v, i), b, indent, level + 1)) < 0)
                return rc;
        }
        if ((rc = json_newline(b, indent, level)) < 0)
            return rc;
        return wfo_buf_addch(b, ']');
    case JSON_OBJECT: {
        void *it = json_object_iter((json_t *)v);

        if (!it)
            return wfo_buf_adds(b, "{}");
        if ((rc = wfo_buf_addch(b, '{')) < 0)
            return rc;
        for (; it; it = json_object_iter_next((json_t *)v, it)) {
            if (!first && (rc = wfo_buf_addch(b, ',')) < 0)
                return rc;
            first = 0;
            if ((rc = json_newline(b, indent, level + 1)) < 0 ||
                (rc = json_dump_string(json_object_iter_key(it), json_object_iter_key_len(it), b)) <
                    0 ||
                (rc = wfo_buf_adds(b, indent < 0 ? ":" : ": ")) < 0 ||
                (rc = json_dump(json_object_iter_value(it), b, indent, level + 1)) < 0)
                return rc;
        }
        if ((rc = json_newline(b, indent, level)) < 0)
            return rc;
        return wfo_buf_addch(b, '}');
    }
    }
    return WFO_EINVAL;
}

int wfo_json_dumpb(const json_t *v, struct wfo_buf *b)
{
    size_t start = b->len;
    int rc = json_dump(v, b, -1, 0);

    if (rc < 0) {
        b->len = start;
        if (b->alloc)
            b->buf[start] = '\0';
    }
    return rc;
}

int wfo_json_dumpb_member(const char *key, const json_t *v, struct wfo_buf *b)
{
    size_t start = b->len;
    int rc;

    if ((rc = wfo_buf_addch(b, '{')) < 0 || (rc = json_dump_string(key, strlen(key), b)) < 0 ||
        (rc = wfo_buf_addch(b, ':')) < 0 || (rc = json_dump(v, b, -1, 1)) < 0 ||
        (rc = wfo_buf_addch(b, '}')) < 0) {
        b->len = start;
        if (b->alloc)
            b->buf[start] = '\0';
    }
    return rc;
}

static char *json_dumps_indent(const json_t *v, int indent)
{
    struct wfo_buf b = WFO_BUF_INIT;

    if (json_dump(v, &b, indent, 0) < 0) {
        wfo_buf_release(&b);
        return NULL;
    }
    return wfo_buf_detach(&b, NULL);
}

char *wfo_json_dumps(const json_t *v)
{
    return json_dumps_indent(v, -1);
}

char *wfo_json_dumps_pretty(const json_t *v)
{
    return json_dumps_indent(v, 2);
}

/* ---- lookups ---- */

const char *wfo_json_str(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

json_t *wfo_json_obj(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);

    return json_is_object(v) ? v : NULL;
}

json_t *wfo_json_arr(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);

    return json_is_array(v) ? v : NULL;
}

json_t *wfo_json_error(const char *type, const char *message, json_t *details)
{
    struct wfo_buf b = WFO_BUF_INIT;
    json_t *e = json_object();

    if (message)
        wfo_utf8_scrub(&b, message, strlen(message), SIZE_MAX);
    json_object_set_new(e, "type", json_string(type));
    json_object_set_new(e, "message", json_stringn_nocheck(b.buf, b.len));
    json_object_set_new(e, "details", details ? details : json_null());
    wfo_buf_release(&b);
    return e;
}

json_t *wfo_json_ref(json_t *v)
{
    return v ? json_incref(v) : json_null();
}

/* ---- equality ---- */

static int json_int_real_equal(json_int_t i, double d)
{
    /* Exact: d must be integral and inside json_int_t's range. */
    if (d != floor(d) || d < -9223372036854775808.0 || d >= 9223372036854775808.0)
        return 0;
    return (json_int_t)d == i;
}

static int json_equal_depth(const json_t *a, const json_t *b, int depth)
{
    if (depth > JSON_DUMP_MAX_DEPTH)
        return 0;
    if (a == b)
        return 1;
    if (!a || !b)
        return 0;
    if (json_is_number(a) && json_is_number(b)) {
        if (json_is_integer(a) && json_is_integer(b))
            return json_integer_value(a) == json_integer_value(b);
        if (json_is_real(a) && json_is_real(b))
            return json_real_value(a) == json_real_value(b);
        if (json_is_integer(a))
            return json_int_real_equal(json_integer_value(a), json_real_value(b));
        return json_int_real_equal(json_integer_value(b), json_real_value(a));
    }
    if (json_typeof(a) != json_typeof(b))
        return 0;
    switch (json_typeof(a)) {
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    case JSON_ARRAY:
        if (json_array_size(a) != json_array_size(b))
            return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!json_equal_depth(json_array_get(a, i), json_array_get(b, i), depth + 1))
                return 0;
        return 1;
    case JSON_OBJECT:
        if (json_object_size(a) != json_object_size(b))
            return 0;
        for (void *it = json_object_iter((json_t *)a); it;
             it = json_object_iter_next((json_t *)a, it)) {
            json_t *bv =
                json_object_getn(b, json_object_iter_key(it), json_object_iter_key_len(it));

            if (!bv || !json_equal_depth(json_object_iter_value(it), bv, depth + 1))
                return 0;
        }
        return 1;
    default:
        return 1; /* null, true, false: same type is equal */
    }
}

int wfo_json_equal(const json_t *a, const json_t *b)
{
    return json_equal_depth(a, b, 0);
}

json_t *wfo_json_text(const char *text)
{
    json_t *v = NULL;

    if (!text || wfo_json_parse(text, strlen(text), &v, NULL) < 0)
        return json_null();
    return v;
}
