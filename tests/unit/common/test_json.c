/*
 * test_json.c - unit tests of src/common/json.c: parsing and its limits,
 * serialization (numbers that round-trip, escapes, order), lookups,
 * equality.
 */
#include "common/compat.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/json.h"
#include "common/util.h"
#include "../tap.h"

/* Parses s, returns the code; *msg gets the error message. */
static int parse(const char *s, size_t len, json_t **v, char *msg, size_t size)
{
    struct wfo_error err = WFO_ERROR_INIT;
    int rc = wfo_json_parse(s, len, v, &err);

    snprintf(msg, size, "%s", err.message);
    return rc;
}

/* Parses then dumps compactly; returns a static string or the error. */
static const char *roundtrip(const char *s)
{
    static char out[4096];
    char msg[512];
    json_t *v = NULL;
    char *d;

    if (parse(s, strlen(s), &v, msg, sizeof(msg)) < 0) {
        snprintf(out, sizeof(out), "ERROR %s", msg);
        return out;
    }
    d = wfo_json_dumps(v);
    snprintf(out, sizeof(out), "%s", d);
    free(d);
    json_decref(v);
    return out;
}

TEST(parse_any_value)
{
    is_str(roundtrip("{\"b\": 1, \"a\": [true, false, null]}"), "{\"b\":1,\"a\":[true,false,null]}",
           "object keeps key order");
    is_str(roundtrip("42"), "42", "a bare integer");
    is_str(roundtrip("\"s\""), "\"s\"", "a bare string");
    is_str(roundtrip("  null \n"), "null", "null with blanks");
    is_str(roundtrip("-9223372036854775808"), "-9223372036854775808", "smallest int64");
    is_str(roundtrip("\xEF\xBB\xBF{}"), "{}", "a UTF-8 BOM is ignored");
    is_str(roundtrip("\"\\u00e9\\ud83d\\ude00\""), "\"\xC3\xA9\xF0\x9F\x98\x80\"",
           "escapes decoded to UTF-8");
}

TEST(parse_errors)
{
    char msg[512];
    json_t *v = (json_t *)1;

    is_int(parse("", 0, &v, msg, sizeof(msg)), WFO_EPARSE, "empty text");
    ok(v == NULL, "*out is NULL on error");
    is_str(msg, "line 1 column 1: empty document", "empty message");
    is_int(parse(" \n\t ", 4, &v, msg, sizeof(msg)), WFO_EPARSE, "only blanks");
    is_int(parse(NULL, 0, &v, msg, sizeof(msg)), WFO_EPARSE, "NULL text");

    is_int(parse("{\"a\":1} x", 9, &v, msg, sizeof(msg)), WFO_EPARSE, "trailing garbage");
    ok(strncmp(msg, "line 1 column 9: ", 17) == 0, "trailing garbage position: %s", msg);

    is_int(parse("\n\n  [1 2]", 9, &v, msg, sizeof(msg)), WFO_EPARSE, "missing comma");
    ok(strncmp(msg, "line 3 column ", 14) == 0, "line counted: %s", msg);

    is_int(parse("[1,]", 4, &v, msg, sizeof(msg)), WFO_EPARSE, "trailing comma");
    is_int(parse("{\"a\":1,\"a\":2}", 13, &v, msg, sizeof(msg)), WFO_EPARSE, "duplicate key");
    ok(strstr(msg, "duplicate") != NULL, "duplicate named: %s", msg);
    is_int(parse("99999999999999999999", 20, &v, msg, sizeof(msg)), 0,
           "an integer beyond 64 bits is read as a double");
    ok(json_is_real(v) && json_real_value(v) > 9.9e19, "its value");
    json_decref(v);
    v = NULL;
    /* only the integers beyond 64 bits become doubles: the others, and
     * numbers inside strings, stay as they are */
    is_str(roundtrip("[5, 99999999999999999999, 9007199254740993, -9223372036854775808, "
                     "-9223372036854775809, 1e2, 2.5, \"123456789012345678901\", {\"k\": -0}]"),
           "[5,1e+20,9007199254740993,-9223372036854775808,-9.223372036854776e+18,100.0,2.5,"
           "\"123456789012345678901\",{\"k\":0}]",
           "big integers only as doubles");
    is_str(roundtrip("{\"a\": \"x\\\"9\", \"b\": 00000000000000000000000001}"),
           "ERROR line 1 column 20: invalid token near '0'", "leading zeros still refused");
    is_int(parse("1e400", 5, &v, msg, sizeof(msg)), WFO_EPARSE, "real overflow");
    is_int(parse("NaN", 3, &v, msg, sizeof(msg)), WFO_EPARSE, "NaN is not JSON");
    is_int(parse("'a'", 3, &v, msg, sizeof(msg)), WFO_EPARSE, "single quotes");
    is_int(parse("{a:1}", 5, &v, msg, sizeof(msg)), WFO_EPARSE, "bare key");
    is_int(parse("[1] // c", 8, &v, msg, sizeof(msg)), WFO_EPARSE, "comments");
}

TEST(parse_refuses_nul_and_bad_utf8)
{
    char msg[512];
    json_t *v;

    is_int(parse("\"\\u0000\"", 8, &v, msg, sizeof(msg)), WFO_EPARSE, "\\u0000 escape");
    ok(strstr(msg, "NUL") != NULL && !strstr(msg, "JSON_ALLOW_NUL"), "wfo's words: %s", msg);
    is_int(parse("[\"a\0\"]", 6, &v, msg, sizeof(msg)), WFO_EPARSE, "raw NUL in a string");
    is_int(parse("[1]\0", 4, &v, msg, sizeof(msg)), WFO_EPARSE, "NUL after the value");
    is_int(parse("\"\xff\"", 3, &v, msg, sizeof(msg)), WFO_EPARSE, "invalid UTF-8");
    is_int(parse("\"\xC0\xAF\"", 4, &v, msg, sizeof(msg)), WFO_EPARSE, "overlong UTF-8");
    is_int(parse("\"\xED\xA0\x80\"", 5, &v, msg, sizeof(msg)), WFO_EPARSE, "UTF-8 surrogate");
    is_int(parse("\"\\ud800\"", 8, &v, msg, sizeof(msg)), WFO_EPARSE, "lone surrogate escape");
    /* The message must itself be printable ASCII: it ends up in JSON. */
    is_int(parse("\xff\xfe", 2, &v, msg, sizeof(msg)), WFO_EPARSE, "binary garbage");
    for (const char *p = msg; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f) {
            ok(0, "message has a raw byte 0x%02x", (unsigned char)*p);
            break;
        }
}

static char *nested(int depth, char open, char close)
{
    char *s = wfo_malloc(2 * (size_t)depth + 1);

    memset(s, open, (size_t)depth);
    memset(s + depth, close, (size_t)depth);
    s[2 * depth] = '\0';
    return s;
}

TEST(parse_depth)
{
    char msg[512];
    json_t *v = NULL;
    char *s;
    clock_t t0;

    s = nested(WFO_JSON_MAX_DEPTH, '[', ']');
    is_int(parse(s, strlen(s), &v, msg, sizeof(msg)), 0, "512 levels are accepted");
    json_decref(v);
    free(s);

    s = nested(WFO_JSON_MAX_DEPTH + 1, '[', ']');
    is_int(parse(s, strlen(s), &v, msg, sizeof(msg)), WFO_EPARSE, "513 levels are refused");
    is_str(msg, "line 1 column 513: nesting deeper than 512 levels", "depth message");
    free(s);

    /* Brackets inside strings do not count. */
    s = wfo_malloc(2000);
    s[0] = '"';
    memset(s + 1, '[', 1000);
    s[1001] = '"';
    s[1002] = '\0';
    is_int(parse(s, strlen(s), &v, msg, sizeof(msg)), 0, "brackets in a string");
    json_decref(v);
    memcpy(s, "[\"\\\"[\"]", 8); /* ["\"["] : an escaped quote */
    is_int(parse(s, strlen(s), &v, msg, sizeof(msg)), 0, "escaped quote in a string");
    is_str(json_string_value(json_array_get(v, 0)), "\"[", "value");
    json_decref(v);
    free(s);

    t0 = clock();
    s = wfo_malloc(100001);
    memset(s, '[', 100000);
    s[100000] = '\0';
    is_int(parse(s, 100000, &v, msg, sizeof(msg)), WFO_EPARSE, "100,000 '[' refused");
    for (int i = 0; i + 5 <= 100000; i += 5)
        memcpy(s + i, "{\"a\":", 5);
    is_int(parse(s, 100000, &v, msg, sizeof(msg)), WFO_EPARSE, "deep objects refused");
    free(s);
    ok(clock() - t0 < CLOCKS_PER_SEC, "quickly");
}

TEST(dump_numbers_roundtrip)
{
    static const double values[] = {0.1,           0.2,
                                    1.0 / 3,       2.5,
                                    1e300,         -1e-300,
                                    5e-324,        1.7976931348623157e308,
                                    123456789.123, 0.30000000000000004,
                                    100.0,         -0.0,
                                    1e21,          1e22};
    json_t *r, *back;
    char msg[512];
    char *s;
    int all = 1;

    is_str(roundtrip("[0.1, 1.5, 1.0, 100.0, -0.0, 1e21, 3]"), "[0.1,1.5,1.0,100.0,-0.0,1e+21,3]",
           "reals print short and stay reals");
    for (size_t i = 0; i < WFO_ARRAY_SIZE(values); i++) {
        r = json_real(values[i]);
        s = wfo_json_dumps(r);
        if (parse(s, strlen(s), &back, msg, sizeof(msg)) < 0 || !json_is_real(back) ||
            json_real_value(back) != values[i] ||
            signbit(json_real_value(back)) != signbit(values[i])) {
            all = 0;
            printf("# %.17g dumped as %s\n", values[i], s);
        }
        json_decref(back);
        json_decref(r);
        free(s);
    }
    ok(all, "listed reals round-trip exactly");
    all = 1;
    for (int i = 0; i < 20000; i++) {
        uint64_t bits = ((uint64_t)(wfo_random() * 4294967296.0) << 32) |
                        (uint64_t)(wfo_random() * 4294967296.0);
        double d;

        memcpy(&d, &bits, sizeof(d));
        if (!isfinite(d))
            continue;
        r = json_real(d);
        s = wfo_json_dumps(r);
        if (parse(s, strlen(s), &back, msg, sizeof(msg)) < 0 || json_real_value(back) != d) {
            all = 0;
            printf("# %.17g dumped as %s\n", d, s);
        }
        json_decref(back);
        json_decref(r);
        free(s);
        if (!all)
            break;
    }
    ok(all, "random doubles round-trip exactly");

    r = json_integer(-9223372036854775807LL - 1);
    s = wfo_json_dumps(r);
    is_str(s, "-9223372036854775808", "integers print as integers");
    free(s);
    json_decref(r);
}

TEST(dump_strings)
{
    json_t *v;
    char *s;

    v = json_string("q\"b\\s/\n\r\t\b\f\x01\x1f\x7f\xC3\xA9");
    s = wfo_json_dumps(v);
    is_str(s, "\"q\\\"b\\\\s/\\n\\r\\t\\b\\f\\u0001\\u001f\x7f\xC3\xA9\"", "escapes");
    free(s);
    json_decref(v);

    v = json_stringn("a\0b", 3);
    s = wfo_json_dumps(v);
    is_str(s, "\"a\\u0000b\"", "embedded NUL escaped");
    free(s);
    json_decref(v);

    /* Bytes that are not UTF-8 can only come from _nocheck; output stays valid. */
    v = json_string_nocheck("x\xff\xC3y\xED\xA0\x80z");
    s = wfo_json_dumps(v);
    is_str(s, "\"x\\ufffd\\ufffdy\\ufffd\\ufffd\\ufffdz\"", "invalid UTF-8 becomes U+FFFD");
    free(s);
    json_decref(v);

    v = json_object();
    json_object_setn_new_nocheck(v, "k\0\"", 3, json_true());
    s = wfo_json_dumps(v);
    is_str(s, "{\"k\\u0000\\\"\":true}", "keys are escaped with their length");
    free(s);
    json_decref(v);
}

/* Plain ASCII is copied eight bytes at a time (json.c plain8): each byte
 * that needs care, at every offset around and across those words, is
 * still escaped, checked as UTF-8, or kept, exactly as one at a time. */
TEST(dump_strings_at_every_offset)
{
    static const struct {
        const char *in, *out;
    } special[] = {
        {"\"", "\\\""},
        {"\\", "\\\\"},
        {"\n", "\\n"},
        {"\x01", "\\u0001"},
        {"\x1f", "\\u001f"},
        {"\x7f", "\x7f"},
        {" ", " "},
        {"~", "~"},
        {"\xC3\xA9", "\xC3\xA9"},
        {"\xff", "\\ufffd"},
        {"\xE2\x82\xAC", "\xE2\x82\xAC"},
    };
    int bad = 0;
    for (size_t k = 0; k < sizeof(special) / sizeof(special[0]); k++)
        for (int pre = 0; pre <= 17; pre++)
            for (int post = 0; post <= 9; post += 3) {
                char in[64], want[80];
                int n = 0, m = 0;
                for (int i = 0; i < pre; i++)
                    in[n++] = (char)('a' + i % 26);
                memcpy(in + n, special[k].in, strlen(special[k].in));
                n += (int)strlen(special[k].in);
                for (int i = 0; i < post; i++)
                    in[n++] = (char)('A' + i);
                want[m++] = '"';
                memcpy(want + m, in, (size_t)pre);
                m += pre;
                memcpy(want + m, special[k].out, strlen(special[k].out));
                m += (int)strlen(special[k].out);
                memcpy(want + m, in + n - post, (size_t)post);
                m += post;
                want[m++] = '"';
                want[m] = 0;
                json_t *v = json_stringn_nocheck(in, (size_t)n);
                char *got = wfo_json_dumps(v);
                if (!got || strcmp(got, want) != 0) {
                    if (!bad)
                        printf("# special %zu, %d before, %d after: got %s, want %s\n", k, pre,
                               post, got ? got : "(null)", want);
                    bad++;
                }
                free(got);
                json_decref(v);
            }
    is_int(bad, 0, "every special byte at offsets 0..17, with 0..9 bytes after");
}

TEST(dump_null_and_empty)
{
    char *s = wfo_json_dumps(NULL);

    is_str(s, "null", "NULL dumps as null");
    free(s);
    is_str(roundtrip("{\"a\":{},\"b\":[],\"c\":\"\"}"), "{\"a\":{},\"b\":[],\"c\":\"\"}",
           "empties");
}

TEST(dump_pretty)
{
    json_t *v;
    char msg[512];
    char *s;
    const char *in = "{\"a\":[1,{\"b\":null}],\"c\":{},\"d\":[]}";

    parse(in, strlen(in), &v, msg, sizeof(msg));
    s = wfo_json_dumps_pretty(v);
    is_str(s,
           "{\n  \"a\": [\n    1,\n    {\n      \"b\": null\n    }\n  ],\n  \"c\": {},\n  \"d\": "
           "[]\n}",
           "two-space indent");
    free(s);
    json_decref(v);
    s = wfo_json_dumps_pretty(NULL);
    is_str(s, "null", "pretty NULL");
    free(s);
}

TEST(dumpb_appends_and_respects_bound)
{
    struct wfo_buf b;
    json_t *v = json_pack("{s:s}", "key", "a fairly long value");

    wfo_buf_init(&b, 16);
    wfo_buf_adds(&b, "x=");
    is_int(wfo_json_dumpb(v, &b), WFO_ETOOBIG, "too big for the buffer");
    is_str(b.buf, "x=", "buffer unchanged");
    wfo_buf_release(&b);
    wfo_buf_init(&b, 0);
    wfo_buf_adds(&b, "x=");
    is_int(wfo_json_dumpb(v, &b), 0, "unbounded");
    is_str(b.buf, "x={\"key\":\"a fairly long value\"}", "appended");
    wfo_buf_release(&b);
    json_decref(v);
}

TEST(dump_cycle_refused)
{
    json_t *a = json_array(), *b = json_array();
    char *s;

    json_array_append(a, b);
    json_array_append(b, a); /* a cycle: a programming error, must not crash */
    s = wfo_json_dumps(a);
    ok(s == NULL, "cyclic value refused");
    json_array_clear(b);
    json_decref(b);
    json_decref(a);
}

TEST(lookups)
{
    json_t *v = json_pack("{s:s, s:{}, s:[], s:i}", "s", "str", "o", "a", "i", 1);
    json_t *n;

    is_str(wfo_json_str(v, "s"), "str", "str");
    ok(wfo_json_str(v, "i") == NULL, "str of a number is NULL");
    ok(wfo_json_str(v, "missing") == NULL, "missing key");
    ok(wfo_json_str(NULL, "s") == NULL, "NULL object");
    ok(wfo_json_obj(v, "o") == json_object_get(v, "o"), "obj borrowed");
    ok(wfo_json_obj(v, "a") == NULL, "obj of an array is NULL");
    ok(wfo_json_arr(v, "a") == json_object_get(v, "a"), "arr borrowed");
    ok(wfo_json_arr(v, "o") == NULL, "arr of an object is NULL");
    ok(wfo_json_str(json_object_get(v, "a"), "s") == NULL, "lookup in an array");

    n = wfo_json_ref(NULL);
    ok(json_is_null(n), "ref of NULL is null");
    json_decref(n);
    n = wfo_json_ref(v);
    ok(n == v && v->refcount == 2, "ref adds a reference");
    json_decref(n);
    json_decref(v);
}

static int eq(const char *a, const char *b)
{
    char msg[512];
    json_t *x, *y;
    int r;

    if (parse(a, strlen(a), &x, msg, sizeof(msg)) < 0 ||
        parse(b, strlen(b), &y, msg, sizeof(msg)) < 0)
        return -1;
    r = wfo_json_equal(x, y);
    json_decref(x);
    json_decref(y);
    return r;
}

TEST(equality)
{
    is_int(eq("1", "1.0"), 1, "1 == 1.0");
    is_int(eq("1.0", "1"), 1, "1.0 == 1");
    is_int(eq("1", "1.5"), 0, "1 != 1.5");
    is_int(eq("9007199254740993", "9007199254740992.0"), 0, "no rounding through double");
    is_int(eq("9223372036854775807", "9223372036854775808.0"), 0, "int64 max vs 2^63");
    is_int(eq("{\"a\":[1,{\"b\":2}],\"c\":null}", "{\"c\":null,\"a\":[1.0,{\"b\":2.0}]}"), 1,
           "nested, key order ignored");
    is_int(eq("{\"a\":1}", "{\"a\":1,\"b\":2}"), 0, "extra key");
    is_int(eq("{\"a\":1}", "{\"b\":1}"), 0, "other key");
    is_int(eq("[1,2]", "[2,1]"), 0, "array order matters");
    is_int(eq("\"1\"", "1"), 0, "string vs number");
    is_int(eq("true", "false"), 0, "booleans");
    is_int(eq("null", "null"), 1, "nulls");
    is_int(eq("\"a\"", "\"a\""), 1, "strings");
    ok(wfo_json_equal(NULL, NULL), "NULL == NULL");
    {
        json_t *n = json_null();

        ok(!wfo_json_equal(n, NULL), "null != NULL");
        json_decref(n);
    }
    {
        json_t *a = json_stringn("a\0b", 3), *b = json_stringn("a\0c", 3);

        ok(!wfo_json_equal(a, b), "strings compared past NUL");
        json_decref(a);
        json_decref(b);
    }
}

TEST(dump_member_is_the_dump_of_the_object)
{
    const char *vals[] = {"null",
                          "1",
                          "-2.5",
                          "\"a\\\"b\\n\\u00e9\"",
                          "[]",
                          "{}",
                          "[1,{\"k\":[true,false,null]}]",
                          "{\"x\":{\"y\":\"z\"}}"};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        json_t *v = json_loads(vals[i], JSON_DECODE_ANY, NULL);
        json_t *o = json_object();
        json_object_set(o, "ou\"t", v);
        struct wfo_buf a = WFO_BUF_INIT, b = WFO_BUF_INIT;
        wfo_buf_adds(&a, "x");
        wfo_buf_adds(&b, "x");
        is_int(wfo_json_dumpb_member("ou\"t", v, &a), 0, "%s: dumps", vals[i]);
        wfo_json_dumpb(o, &b);
        is_str(a.buf, b.buf, "%s: same text as the object's", vals[i]);
        wfo_buf_release(&a);
        wfo_buf_release(&b);
        json_decref(o);
        json_decref(v);
    }
}

TEST(error_object)
{
    json_t *e = wfo_json_error("Boom", "it broke", json_pack("{s:i}", "code", 7));
    char *t = wfo_json_dumps(e);
    is_str(t, "{\"type\":\"Boom\",\"message\":\"it broke\",\"details\":{\"code\":7}}",
           "type, message, details in that order");
    free(t);
    json_decref(e);
    e = wfo_json_error("Boom", NULL, NULL);
    t = wfo_json_dumps(e);
    is_str(t, "{\"type\":\"Boom\",\"message\":\"\",\"details\":null}",
           "message \"\" and details null when absent");
    free(t);
    json_decref(e);
    e = wfo_json_error("Boom", "bad \xff byte", NULL);
    is_str(wfo_json_str(e, "message"), "bad \xef\xbf\xbd byte", "a message made valid UTF-8");
    json_decref(e);
}

int main(void)
{
    return tap_run();
}
