/*
 * test_expr.c - tests of core/expr.c: `${ ... }` expressions and templates
 * (SPEC 2.1; core/expr.h).
 */
#include "common/compat.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/expr.h"
#include "common/json.h"
#include "../tap.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
/* Single allocations over 100 MB fail instead of aborting, so that the
 * out-of-memory path of expr.c (its invariant I3) runs under test. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "allocator_may_return_null=1:max_allocation_size_mb=100";
}
#endif

/* Test JSON; jansson's own parser, which takes "\u0000" in strings. */
static json_t *J(const char *text)
{
    json_error_t jerr;
    json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);

    if (!v) {
        printf("# bad test JSON: %s: %s\n", text, jerr.text);
        abort();
    }
    return v;
}

/* The CPU time of this thread: a bound on it holds on a busy machine too,
 * where the wall time of an evaluation stretched by the watchdog's wait
 * would not. */
static double cpu_ms(void)
{
    struct timespec t;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* Evaluates text against the context (JSON text); returns the result as
 * compact JSON (caller frees), or NULL with err set. */
static char *ev(const char *text, const char *ctx, struct wfo_error *err)
{
    json_t *c = J(ctx), *out = NULL;
    char *s = NULL;

    if (expr_eval_once(text, c, &out, err) == 0) {
        s = wfo_json_dumps(out);
        json_decref(out);
    }
    json_decref(c);
    return s;
}

/* text on one line, for a test's name. */
static const char *N(const char *text)
{
    static char buf[256];
    size_t j = 0;

    for (size_t i = 0; text[i] && j + 3 < sizeof(buf); i++) {
        if (text[i] == '\n') {
            buf[j++] = '\\';
            buf[j++] = 'n';
        } else {
            buf[j++] = text[i];
        }
    }
    buf[j] = '\0';
    return buf;
}

/* ok() that the result of text against ctx is want (JSON text). */
static void check(const char *text, const char *ctx, const char *want)
{
    struct wfo_error err = WFO_ERROR_INIT;
    char *got = ev(text, ctx, &err);

    is_str(got, want, "%s => %s", N(text), want);
    if (!got)
        printf("#   error: %s\n", err.message);
    free(got);
}

/* ok() that text fails with WFO_EEXPR and exactly the message want. */
static void check_err(const char *text, const char *ctx, const char *want)
{
    struct wfo_error err = WFO_ERROR_INIT;
    char *got = ev(text, ctx, &err);

    ok(!got && err.code == WFO_EEXPR, "%s fails", N(text));
    is_str(err.message, want, "%s: message", N(text));
    free(got);
}

/* A template compile that must fail: returns the error, checks bad_path. */
static void check_compile_err(const char *tmpl, const char *want_path, const char *want_msg)
{
    json_t *v = J(tmpl);
    struct tmpl *t = (struct tmpl *)1;
    struct wfo_error err = WFO_ERROR_INIT;
    char *bad = NULL;
    int rc = tmpl_compile(v, &t, &bad, &err);

    ok(rc == WFO_EEXPR && t == NULL, "%s does not compile", tmpl);
    is_str(bad, want_path, "%s: bad_path", tmpl);
    is_str(err.message, want_msg, "%s: message", tmpl);
    free(bad);
    json_decref(v);
}

static const char *CTX = "{\"input\": {\"sku\": \"abc\", \"qty\": 2, \"env\": \"prod\"},"
                         " \"n\": 2, \"s\": \"str\", \"a\": {\"b\": [1, {\"c\": 3}, null]},"
                         " \"steps\": {\"reserve\": {\"output\": {\"id\": \"r-1\"}}},"
                         " \"env\": {\"HOME\": \"/ctx\"}, \"environment\": 7,"
                         " \"if\": \"kw\", \"a b\": 5, \"big\": 4611686018427387904}";

TEST(detection)
{
    ok(expr_is_expression("${ .a }"), "${ .a }");
    ok(expr_is_expression("${.a}"), "${.a}");
    ok(expr_is_expression("${\n .a \n}"), "newlines inside");
    ok(expr_is_expression("${}"), "${} is one (and fails to compile)");
    ok(!expr_is_expression(" ${ .a }"), "leading space outside");
    ok(!expr_is_expression("${ .a } "), "trailing space outside");
    ok(!expr_is_expression("x${ .a }"), "text before");
    ok(!expr_is_expression("$ { .a }"), "$ {");
    ok(!expr_is_expression("{ .a }"), "no $");
    ok(!expr_is_expression("${ .a"), "unclosed");
    ok(!expr_is_expression("${"), "${");
    ok(!expr_is_expression("$}"), "$}");
    ok(!expr_is_expression(""), "empty");
    ok(!expr_is_expression(NULL), "NULL");
}

TEST(constant_templates)
{
    const char *consts[] = {
        "1", "\"text\"", "null", "true", "[]", "{}",
        "{\"a\": [1, \"${ .a\", \"$ {.a}\", \" ${ .a }\"], \"b\": {\"c\": 2.5}}",
        /* two expressions in one string are text, as expr_is_expression
         * says (the whole text is not one ${ ... }) */
        "\"${ .a } and ${ .b }\"", "[\"${ .a } ${ .b }\"]"};

    for (size_t i = 0; i < sizeof(consts) / sizeof(consts[0]); i++) {
        json_t *v = J(consts[i]), *out = NULL, *ctx = J("{\"a\": 1}");
        struct tmpl *t = NULL;
        struct wfo_error err = WFO_ERROR_INIT;
        char *bad = NULL;

        is_int(tmpl_compile(v, &t, &bad, &err), 0, "%s compiles", consts[i]);
        ok(t && tmpl_is_const(t), "%s is constant", consts[i]);
        ok(bad == NULL, "no bad_path");
        is_int(tmpl_eval(t, ctx, &out, &err), 0, "evaluates");
        ok(out == v, "%s evaluates to the value itself", consts[i]);
        json_decref(out);
        tmpl_free(t);
        json_decref(ctx);
        json_decref(v);
    }
    tmpl_free(NULL);
    {
        struct tmpl *t = NULL;
        struct wfo_error err = WFO_ERROR_INIT;

        is_int(tmpl_compile(NULL, &t, NULL, &err), WFO_EINVAL, "NULL value refused");
    }
}

TEST(nested_templates)
{
    json_t *v = J("{\"sku\": \"${ .input.sku }\", \"list\": [1, \"${ .n + 1 }\", {\"deep\": "
                  "\"${ .a.b[1] }\", \"lit\": \"x\"}], \"k\": {\"c\": true}, \"e\": [], "
                  "\"whole\": \"${ {sku: .input.sku, n: [.n, .n]} }\"}");
    char *before = wfo_json_dumps(v), *after, *s;
    json_t *ctx = J(CTX), *out = NULL, *out2 = NULL;
    struct tmpl *t = NULL;
    struct wfo_error err = WFO_ERROR_INIT;

    is_int(tmpl_compile(v, &t, NULL, &err), 0, "compiles: %s", err.message);
    ok(!tmpl_is_const(t), "not constant");
    is_int(tmpl_eval(t, ctx, &out, &err), 0, "evaluates: %s", err.message);
    s = wfo_json_dumps(out);
    is_str(s,
           "{\"sku\":\"abc\",\"list\":[1,3,{\"deep\":{\"c\":3},\"lit\":\"x\"}],"
           "\"k\":{\"c\":true},\"e\":[],\"whole\":{\"sku\":\"abc\",\"n\":[2,2]}}",
           "result, keys in template order");
    free(s);
    ok(json_object_get(out, "k") == json_object_get(v, "k"), "constant subtree shared");
    is_int(tmpl_eval(t, ctx, &out2, &err), 0, "evaluates twice");
    ok(wfo_json_equal(out, out2), "same result twice");
    json_decref(out2);
    json_object_set_new(json_object_get(ctx, "input"), "sku", json_string("xyz"));
    is_int(tmpl_eval(t, ctx, &out2, &err), 0, "evaluates on a changed context");
    is_str(json_string_value(json_object_get(out2, "sku")), "xyz", "sees the change");
    after = wfo_json_dumps(v);
    is_str(after, before, "the template value is not modified");
    json_decref(out2);
    json_decref(out);
    tmpl_free(t);
    json_decref(v);
    json_decref(ctx);
    free(before);
    free(after);
}

TEST(value_kinds)
{
    check("${ null }", "{}", "null");
    check("${ true }", "{}", "true");
    check("${ false }", "{}", "false");
    check("${ 42 }", "{}", "42");
    check("${ -7 }", "{}", "-7");
    check("${ 0.25 }", "{}", "0.25");
    check("${ \"h\\u00e9llo \\u2603\" }", "{}", "\"h\u00e9llo \u2603\"");
    check("${ \"a\\u0000b\" | length }", "{}", "3");
    check("${ [1, \"two\", null, [3], {\"f\": false}] }", "{}",
          "[1,\"two\",null,[3],{\"f\":false}]");
    check("${ {z: 1, a: 2, m: {y: 1, b: 2}} }", "{}", "{\"z\":1,\"a\":2,\"m\":{\"y\":1,\"b\":2}}");
    /* The context comes in whole: every kind, key order, NUL in strings;
     * a result holding a NUL is refused (wfo's strings are C strings). */
    check("${ . | . }", "{\"z\": 1, \"a\": [true, false, null, 1.5, \"st\"], \"\": {}}",
          "{\"z\":1,\"a\":[true,false,null,1.5,\"st\"],\"\":{}}");
    check("${ .a[0] | length }", "{\"a\": [\"s\\u0000t\"]}", "3");
    check_err("${ .a | map(.) }", "{\"a\": [\"s\\u0000t\"]}",
              "jq: result holds a NUL character (\\u0000)");
    {
        /* Keys with a NUL, both ways. */
        json_t *ctx = json_object(), *out = NULL;
        struct wfo_error err = WFO_ERROR_INIT;

        json_object_set_new(ctx, "z", json_integer(1));
        json_object_setn_new(ctx, "k\0x", 3, json_integer(3));
        is_int(expr_eval_once("${ keys_unsorted[1] | length }", ctx, &out, &err), 0, "NUL key in");
        is_int(json_integer_value(out), 3, "the whole key");
        json_decref(out);
        is_int(expr_eval_once("${ {\"a\\u0000b\": 1} }", ctx, &out, &err), WFO_EEXPR,
               "NUL key out: refused");
        ok(out == NULL, "nothing out");
        json_decref(ctx);
    }
    check("${ . }", "[1, 2]", "[1,2]");
    check("${ .x }", "null", "null");
}

TEST(integers_stay_integers)
{
    json_t *ctx = J("{\"n\": 2}"), *out = NULL;
    struct wfo_error err = WFO_ERROR_INIT;

    is_int(expr_eval_once("${ .n + 1 }", ctx, &out, &err), 0, "evaluates");
    ok(json_is_integer(out) && json_integer_value(out) == 3, ".n + 1 is the integer 3");
    json_decref(out);
    json_decref(ctx);
    check("${ 1.5 * 2 }", "{}", "3");
    check("${ 10 / 4 }", "{}", "2.5");
    check("${ 1.0 }", "{}", "1");
    check("${ -0.0 }", "{}", "0");
    check("${ 9007199254740992 }", "{}", "9007199254740992");
    check("${ 1e300 }", "{}", "1e+300");
    check("${ nan }", "{}", "null");
    check("${ infinite }", "{}", "null");
    check("${ -infinite }", "{}", "null");
    check("${ [nan, 1] }", "{}", "[null,1]");
    /* A plain path hands back the context's own value, exact; through jq
     * numbers are doubles. */
    check("${ .big }", CTX, "4611686018427387904");
    check("${ .big | . }", CTX, "4.611686018427388e+18");
}

TEST(fast_path_agrees_with_jq)
{
    const char *paths[] = {
        ".",
        ".n",
        ".input",
        ".input.sku",
        ".a.b[0]",
        ".a.b[1].c",
        ".a.b[-1]",
        ".a.b[-3]",
        ".a.b[-4]",
        ".a.b[3]",
        ".a.b[2].x",
        ".missing",
        ".missing.x",
        ".missing[0]",
        ".a[\"b\"]",
        ".[\"a b\"]",
        ".[\"a\"].b",
        ".if",
        ".env.HOME",
        ".environment",
        ".a.b[1][\"c\"]",
        ".steps.reserve.output.id",
        ".a.b[2][5]",
        ".a.b[10].c",
    };
    const char *errs[] = {".s.a", ".s[0]", ".n.x", ".a[0]", ".a.b.c", ".input.qty[1]", ".[0]"};
    json_t *ctx = J(CTX);

    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        struct wfo_buf slow = WFO_BUF_INIT;
        struct wfo_error e1 = WFO_ERROR_INIT, e2 = WFO_ERROR_INIT;
        json_t *a = NULL, *b = NULL;

        wfo_buf_addf(&slow, "%s | .", paths[i]); /* not a plain path: jq runs */
        is_int(expr_eval_once(paths[i], ctx, &a, &e1), 0, "%s: %s", paths[i], e1.message);
        is_int(expr_eval_once(slow.buf, ctx, &b, &e2), 0, "%s: %s", slow.buf, e2.message);
        ok(a && b && wfo_json_equal(a, b), "%s agrees with jq", paths[i]);
        json_decref(a);
        json_decref(b);
        wfo_buf_release(&slow);
    }
    for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
        struct wfo_buf slow = WFO_BUF_INIT;
        struct wfo_error e1 = WFO_ERROR_INIT, e2 = WFO_ERROR_INIT;
        json_t *a = NULL, *b = NULL;

        wfo_buf_addf(&slow, "%s | .", errs[i]);
        is_int(expr_eval_once(errs[i], ctx, &a, &e1), WFO_EEXPR, "%s fails", errs[i]);
        is_int(expr_eval_once(slow.buf, ctx, &b, &e2), WFO_EEXPR, "%s fails", slow.buf);
        is_str(e1.message, e2.message, "%s: the same error as jq", errs[i]);
        ok(a == NULL, "no output");
        wfo_buf_release(&slow);
    }
    {
        /* The fast path hands out the context's own value. */
        json_t *out = NULL;
        struct wfo_error err = WFO_ERROR_INIT;

        is_int(expr_eval_once("${ .a.b }", ctx, &out, &err), 0, ".a.b");
        ok(out == json_object_get(json_object_get(ctx, "a"), "b"), ".a.b taken without jq");
        json_decref(out);
        is_int(expr_eval_once("${ . }", ctx, &out, &err), 0, ".");
        ok(out == ctx, ". is the context");
        json_decref(out);
    }
    json_decref(ctx);
    /* Forms outside the plain-path subset still work through jq. */
    check("${ .a.b | length }", CTX, "3");
    check("${ .\"if\" }", CTX, "\"kw\"");
    check("${ .a .b[0] }", CTX, "1");
    check("${ .a.b[ 0 ] }", CTX, "1");
    check("${ .a.b[01] }", CTX, "{\"c\":3}");
    check("${ .a.b[1.7] }", CTX, "null");
    check("${ .[\"a\\u0020b\"] }", CTX, "5");
    check_err("${ .a.[\"b\"] }", CTX,
              "jq: syntax error, unexpected '[', expecting FORMAT or QQSTRING_START at line 1");
}

TEST(compile_errors)
{
    check_compile_err("\"${ .a | }\"", "", "jq: syntax error, unexpected $end at line 1");
    check_compile_err("{\"a\": [1, {\"b\": \"${ foo(1) }\"}]}", ".a[1].b",
                      "jq: foo/1 is not defined at line 1");
    check_compile_err("{\"ok\": \"${ .x }\", \"a b\": {\"c\\\"d\": [\"${ ( }\"]}}",
                      "[\"a b\"][\"c\\\"d\"][0]", "jq: syntax error, unexpected $end at line 1");
    check_compile_err("[\"${ .x }\", \"${}\"]", "[1]", "jq: empty expression");
    check_compile_err("[\"${   }\"]", "[0]", "jq: empty expression");
    check_compile_err("{\"x\": \"${ .a\\u0000 }\"}", ".x", "jq: expression holds a NUL character");
    check_compile_err("\"${ .a |\\n\\n .b | }\"", "",
                      "jq: syntax error, unexpected $end at line 3");
    check_compile_err("\"${ $undefined }\"", "", "jq: $undefined is not defined at line 1");
    /* Strings left open are refused before libjq, whose parser leaks them. */
    check_compile_err("\"${ \\\"unterminated }\"", "",
                      "jq: syntax error, unterminated string at line 1");
    check_compile_err("\"${ .a[\\\"x }\"", "", "jq: syntax error, unterminated string at line 1");
    check_compile_err("\"${ .a |\\n \\\"x\\\\(1 }\"", "",
                      "jq: syntax error, unterminated string at line 2");
    check_compile_err("\"${ \\\"a\\\\(1) }\"", "",
                      "jq: syntax error, unterminated string at line 1");
    check_compile_err("\"${ \\\"\\\\(\\\"\\\\(1 }\"", "",
                      "jq: syntax error, unterminated string at line 1");
    check_compile_err("\"${ {\\\"a }\"", "", "jq: syntax error, unterminated string at line 1");
    check("${ \"\\(\"x\\(1)y\")\" + \"# \\\"\" }", "{}", "\"x1y# \\\"\"");
    {
        struct tmpl *t = NULL;
        struct wfo_error err = WFO_ERROR_INIT;
        json_t *v = J("\"${ .a | }\"");

        is_int(tmpl_compile(v, &t, NULL, &err), WFO_EEXPR, "bad_path may be NULL");
        json_decref(v);
    }
    check_err("${ ) }", "{}", "jq: syntax error, unexpected INVALID_CHARACTER at line 1");
    check_err("${ .a | }", "{}", "jq: syntax error, unexpected $end at line 1");
    check_err(".a |", "{}", "jq: syntax error, unexpected $end at line 1");
}

TEST(runtime_errors)
{
    check_err("${ .s.a }", CTX, "jq: Cannot index string with string \"a\"");
    check_err("${ .n | .x }", CTX, "jq: Cannot index number with string \"x\"");
    check_err("${ error(\"boom\") }", "{}", "jq: boom");
    check_err("${ error({a: 1}) }", "{}", "jq: {\"a\":1} (not a string)");
    check_err("${ .n / 0 }", CTX,
              "jq: number (2) and number (0) cannot be divided because the divisor is zero");
    check_err("${ {} + 1 }", "{}", "jq: object ({}) and number (1) cannot be added");
    check_err("${ [1] | implode | .x }", "{}", "jq: Cannot index string with string \"x\"");
    check("${ try error(\"x\") catch . }", "{}", "\"x\"");
    check("${ 1, 2 }", "{}", "1");
    check("${ empty }", "{}", "null");
    check("${ error(null) }", "{}", "null");
    check("${ .a.b[] }", CTX, "1");
    {
        /* An error in a nested template: no output, nothing half built. */
        json_t *v = J("{\"a\": \"${ .n }\", \"b\": [\"${ .s.a }\"]}"), *ctx = J(CTX), *out;
        struct tmpl *t = NULL;
        struct wfo_error err = WFO_ERROR_INIT;

        out = (json_t *)1;
        is_int(tmpl_compile(v, &t, NULL, &err), 0, "compiles");
        is_int(tmpl_eval(t, ctx, &out, &err), WFO_EEXPR, "fails");
        ok(out == NULL, "no output");
        is_str(err.message, "jq: Cannot index string with string \"a\"", "message");
        tmpl_free(t);
        json_decref(v);
        json_decref(ctx);
    }
}

TEST(sandbox_refusals)
{
    static const char *const names[] = {
        "env",           "input",           "inputs",
        "_input",        "input_filename",  "input_line_number",
        "debug",         "stderr",          "halt",
        "halt_error",    "get_search_list", "get_prog_origin",
        "get_jq_origin", "modulemeta",
    };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char text[128], want[128];

        snprintf(text, sizeof(text), "${ %s }", names[i]);
        snprintf(want, sizeof(want), "jq: %s is not allowed in wfo expressions", names[i]);
        check_err(text, CTX, want);
        snprintf(text, sizeof(text), "${ .a | [%s] }", names[i]);
        check_err(text, CTX, want);
    }
    check_err("${ halt_error(1) }", "{}", "jq: halt_error is not allowed in wfo expressions");
    check_err("${ import \"x\" as x; . }", "{}", "jq: import is not allowed in wfo expressions");
    check_err("${ include \"x\"; . }", "{}", "jq: include is not allowed in wfo expressions");
    check_err("${ import \"x\" as $x; . }", "{}", "jq: import is not allowed in wfo expressions");
    /* Every spelling of the environment. */
    check_err("${ $ENV }", "{}", "jq: $ENV is not allowed in wfo expressions");
    check_err("${ $ENV.HOME }", "{}", "jq: $ENV is not allowed in wfo expressions");
    check_err("${ env.HOME }", "{}", "jq: env is not allowed in wfo expressions");
    check_err("${ $ENV | keys }", "{}", "jq: $ENV is not allowed in wfo expressions");
    check_err("${ \"\\($ENV)\" }", "{}", "jq: $ENV is not allowed in wfo expressions");
    check_err("${ getpath([\"a\"]) | env }", "{}", "jq: env is not allowed in wfo expressions");
    check_err("${ @sh \"\\(env)\" }", "{}", "jq: env is not allowed in wfo expressions");
    check_err("${ \"x\\(1)y\\(\"z\\(env)\")\" }", "{}",
              "jq: env is not allowed in wfo expressions");
    check_err("${ $ ENV }", "{}", "jq: $ENV is not allowed in wfo expressions");
    check_err("${ $ # comment\n ENV }", "{}", "jq: $ENV is not allowed in wfo expressions");
    check_err("${ $__loc__ }", "{}", "jq: $__loc__ is not allowed in wfo expressions");
    check_err("${ $__prog_args }", "{}", "jq: $__prog_args is not allowed in wfo expressions");
    check_err("${ {a: env} }", "{}", "jq: env is not allowed in wfo expressions");
    check_err("${ {a: 1, b: env} }", "{}", "jq: env is not allowed in wfo expressions");
    check_err("${ {(env | tostring): 1} }", "{}", "jq: env is not allowed in wfo expressions");
    check_err("${ {\"k\\(env)\": 1} }", "{}", "jq: env is not allowed in wfo expressions");
    check_err("${ {$ENV} }", "{}", "jq: $ENV is not allowed in wfo expressions");
    check_err("${ . as {a: $ENV} | 1 }", "{}", "jq: $ENV is not allowed in wfo expressions");
    check_err("${ reduce env as $x (0; .) }", "{}", "jq: env is not allowed in wfo expressions");
    check_err("${ def f: input; f }", "{}", "jq: input is not allowed in wfo expressions");
    check_err("${ def env: 1; env }", "{}", "jq: env is not allowed in wfo expressions");
    check_err("${ 1-env }", "{}", "jq: env is not allowed in wfo expressions");
    check_err("${ 1e-env }", "{}", "jq: env is not allowed in wfo expressions");
    check_err("${ .a..env }", "{}", "jq: env is not allowed in wfo expressions");
    check_err("${ # comment\nenv }", "{}", "jq: env is not allowed in wfo expressions");
    check_err("${ \"#\" | env }", "{}", "jq: env is not allowed in wfo expressions");
    check_err("${ x::env }", "{}", "jq: env is not allowed in wfo expressions");
    check_err("${ _wfo_multiply(\"x\"; 1e9) }", "{}",
              "jq: _wfo_multiply is not allowed in wfo expressions");
    check_err("${ _wfo_setpath([1e9]; 1) }", "{}",
              "jq: _wfo_setpath is not allowed in wfo expressions");
    check_err("${ _wfo_deny(1) }", "{}", "jq: _wfo_deny is not allowed in wfo expressions");
    /* Fields, keys, strings and variables with those names are fine. */
    check("${ .input }", CTX, "{\"sku\":\"abc\",\"qty\":2,\"env\":\"prod\"}");
    check("${ .input.env }", CTX, "\"prod\"");
    check("${ .env.HOME }", CTX, "\"/ctx\"");
    check("${ .environment }", CTX, "7");
    check("${ .input | .env }", CTX, "\"prod\"");
    check("${ .input.qty * 2 }", CTX, "4");
    check("${ {env} }", CTX, "{\"env\":{\"HOME\":\"/ctx\"}}");
    check("${ {input: .input.sku, env: 1, debug: 2} }", CTX,
          "{\"input\":\"abc\",\"env\":1,\"debug\":2}");
    check("${ {a: 1, input} | .input.sku }", CTX, "\"abc\"");
    check("${ \"env input $ENV halt\" }", "{}", "\"env input $ENV halt\"");
    check("${ \"input is \\(.input.sku)\" }", CTX, "\"input is abc\"");
    check("${ . as {env: $e} | $e.HOME }", CTX, "\"/ctx\"");
    check("${ .n as $env | $env }", CTX, "2");
    check("${ .n as $input | [$input] }", CTX, "[2]");
    check("${ # env input\n .n }", CTX, "2");
    check("${ {if: 1, import: 2} }", "{}", "{\"if\":1,\"import\":2}");
    check("${ .import }", "{\"import\": 3}", "3");
    check("${ {\"a\": {env}} }", "{\"env\": 1}", "{\"a\":{\"env\":1}}");
    check("${ ltrimstr(\"env\") }", "\"envx\"", "\"x\"");
    check("${ [.[] | select(. == \"env\")] }", "[\"env\", \"x\"]", "[\"env\"]");
}

TEST(prelude_bounds)
{
    check("${ \"ab\" * 3 }", "{}", "\"ababab\"");
    check("${ [(1, 2) * (10, 20)] }", "{}", "[10,20,20,40]");
    check("${ {a: 1} * {b: {c: 2}} }", "{}", "{\"a\":1,\"b\":{\"c\":2}}");
    check("${ .n * .n }", CTX, "4");
    check("${ \"x\" * 0 }", "{}", "null");
    check("${ \"x\" * 1048576 | length }", "{}", "1048576");
    check_err("${ \"x\" * 1048577 }", "{}", "jq: string repeat result longer than 1048576 bytes");
    check_err("${ 1e9 * \"x\" }", "{}", "jq: string repeat result longer than 1048576 bytes");
    check_err("${ (\"x\" * 1000) * 2000 }", "{}",
              "jq: string repeat result longer than 1048576 bytes");
    /* "" repeated: no memory, but one append per repetition in libjq */
    check_err("${ \"\" * 1000000000. }", "{}", "jq: string repeated more than 1048576 times");
    check_err("${ 1e9 * \"\" }", "{}", "jq: string repeated more than 1048576 times");
    check("${ \"\" * 1048576 }", "{}", "\"\"");
    check("${ [null | setpath([\"a\"], [\"b\"]; 1, 2)] }", "{}",
          "[{\"a\":1},{\"b\":1},{\"a\":2},{\"b\":2}]");
    check("${ [1] | .[3] = 2 }", "{}", "[1,null,null,2]");
    check("${ .a.b[1].c |= . + 1 | .a.b }", CTX, "[1,{\"c\":4},null]");
    check("${ .n += 1 | .n }", CTX, "3");
    check("${ .x //= 5 | .x }", CTX, "5");
    check("${ [1, 2, 3] | .[1:] = [\"x\"] }", "{}", "[1,\"x\"]");
    check("${ null | .[999999] = 1 | length }", "{}", "1000000");
    check_err("${ null | .[1000000] = 1 }", "{}", "jq: array index larger than 1000000");
    check_err("${ null | .[1e9] = 1 }", "{}", "jq: array index larger than 1000000");
    check_err("${ null | .a[1e8] |= 1 }", "{}", "jq: array index larger than 1000000");
    check_err("${ null | setpath([1e9]; 1) }", "{}", "jq: array index larger than 1000000");
    check_err("${ fromstream([[1e9], 1]) }", "{}", "jq: array index larger than 1000000");
    check("${ fromstream([1, [2]] | tostream) }", "{}", "[1,[2]]");
    /* libjq 1.6 leaks on these but for two strings: no leak report here. */
    check("${ [\"abc\", 1, null, [1]] | map(ltrimstr(\"a\")) }", "{}", "[\"bc\",1,null,[1]]");
    check("${ [\"abc\", 1, {}] | map(rtrimstr(\"c\")) }", "{}", "[\"ab\",1,{}]");
    check("${ [\"abc\" | ltrimstr(1, \"a\", \"ab\")] }", "{}", "[\"abc\",\"bc\",\"c\"]");
    check("${ 0 | strftime(\"%Y-%m-%d\") }", "{}", "\"1970-01-01\"");
    check("${ 0 | todate }", "{}", "\"1970-01-01T00:00:00Z\"");
    check_err("${ 0 | strftime(\"%Y\" * 600) }", "{}",
              "jq: strftime format longer than 1000 bytes");
    check_err("${ 0 | strflocaltime(\"%Y\" * 600) }", "{}",
              "jq: strflocaltime format longer than 1000 bytes");
    /* values that crash or hang libjq 1.6 in C: refused before (I7's
     * catch is for those no wrapper can reach) */
    check("${ 1700000000 | todate }", "{}", "\"2023-11-14T22:13:20Z\"");
    check("${ \"2023-11-14T22:13:20Z\" | fromdate }", "{}", "1700000000");
    check_err("${ 1e20 | todate }", "{}", "jq: time out of range (years 0 to 9999)");
    check_err("${ nan | strftime(\"%Y\") }", "{}", "jq: time out of range (years 0 to 9999)");
    check_err("${ infinite | gmtime }", "{}", "jq: time out of range (years 0 to 9999)");
    check_err("${ -1e17 | localtime }", "{}", "jq: time out of range (years 0 to 9999)");
    check_err("${ [1e20,0,0,0,0,0,0,0] | mktime }", "{}",
              "jq: time out of range (years 0 to 9999)");
    check_err("${ 0 | strftime(5) }", "{}", "jq: strftime/1 requires a string format");
    check("${ [7 % 3, -7 % 3, 7 % -1, -5 % -1.5] }", "{}", "[1,-1,0,0]");
    check_err("${ -9223372036854775808 % -1 }", "{}", "jq: % of numbers beyond 64-bit integers");
    check_err("${ -1e300 % -1 }", "{}", "jq: % of numbers beyond 64-bit integers");
    check_err("${ 5 % nan }", "{}", "jq: % of numbers beyond 64-bit integers");
    check("${ \"xax\" | [indices(\"a\"), index(\"a\"), rindex(\"x\")] }", "{}", "[[1],1,2]");
    check("${ [1, 2, 1] | indices(1) }", "{}", "[0,2]");
    check_err("${ \"x\" | indices(\"\") }", "{}", "jq: indices of an empty string");
    check_err("${ \"x\" | rindex(\"\") }", "{}", "jq: indices of an empty string");
    check_err("${ \"x\" | _strindices(\"\") }", "{}", "jq: indices of an empty string");
    check("${ [1, 2, 3] | del(.[0]) }", "{}", "[2,3]");
    check_err("${ [1, 2] | delpaths([[nan]]) }", "{}", "jq: delpaths: a path holds NaN");
    check_err("${ [1, 2] | del(.[nan]) }", "{}", "jq: delpaths: a path holds NaN");
    check("${ [104, 105] | implode }", "{}", "\"hi\"");
    check_err("${ [\"a\"] | implode }", "{}", "jq: implode input must be an array of codepoints");
    check_err("${ \"aGkAdGhlcmU=\" | @base64d }", "{}",
              "jq: result holds a NUL character (\\u0000)");
    check_err("${ {(\"a\" + (\"AA==\" | @base64d)): 1} }", "{}",
              "jq: result holds a NUL character (\\u0000)");
}

/* I7: a crash of libjq on its thread fails the expression, and the
 * expression runs again afterwards (its jq_state made anew). */
TEST(libjq_crashes_are_caught)
{
#if defined(__SANITIZE_ADDRESS__)
    __lsan_disable(); /* what libjq was building leaks (I7) */
#endif
    check_err("${ .s[(.f | tonumber):] }", "{\"s\": \"abc\", \"f\": \"nan\"}",
              "jq: libjq failed on these values (signal SIGABRT)");
    check("${ .s[(.f | tonumber):] }", "{\"s\": \"abc\", \"f\": \"1\"}", "\"bc\"");
    check_err("${ [.s | splits(\"\")] }", "{\"s\": \"\\u00e9\"}",
              "jq: libjq failed on these values (signal SIGSEGV)");
    check("${ [.s | splits(\",\")] }", "{\"s\": \"a,b\"}", "[\"a\",\"b\"]");
    /* the same template, again and again: each time caught */
    for (int i = 0; i < 3; i++)
        check_err("${ .s[(.f | tonumber):] }", "{\"s\": \"abc\", \"f\": \"nan\"}",
                  "jq: libjq failed on these values (signal SIGABRT)");
#if defined(__SANITIZE_ADDRESS__)
    __lsan_enable();
#endif
}

/* ok() that text fails about a second after it starts, with one of the
 * messages of a bounded evaluation (time, memory, or out of memory when
 * the sanitizer caps allocations, which leaks the values libjq was
 * building: expr.c, I3). */
static void check_bounded(const char *text, int time_only)
{
    struct wfo_error err = WFO_ERROR_INIT;
    double t0 = cpu_ms(), ms;
    char *got;

#if defined(__SANITIZE_ADDRESS__)
    /* These may run out of memory under the sanitizer's cap (I3). */
    if (!time_only)
        __lsan_disable();
#endif
    got = ev(text, "{\"n\": 0}", &err);
#if defined(__SANITIZE_ADDRESS__)
    if (!time_only)
        __lsan_enable();
#endif

    ms = cpu_ms() - t0;
    ok(!got && err.code == WFO_EEXPR, "%s fails", text);
    if (time_only)
        is_str(err.message, "jq: evaluation exceeded 1000 ms", "%s: time limit", text);
    else
        ok(!strcmp(err.message, "jq: evaluation exceeded 1000 ms") ||
               !strcmp(err.message, "jq: evaluation exceeded 256 MiB of memory") ||
               !strcmp(err.message, "jq: evaluation ran out of memory"),
           "%s: bounded (%s)", text, err.message);
    ok(ms < 6000, "%s stopped after %.0f ms of CPU", text, ms);
    free(got);
}

TEST(time_bound)
{
    json_t *v, *ctx, *out = NULL;
    struct tmpl *t = NULL;
    struct wfo_error err = WFO_ERROR_INIT;

    check_bounded("${ last(range(1e10)) }", 1);
    check_bounded("${ def f: f; f }", 1);
    check_bounded("${ repeat(1) | empty }", 1);
    check_bounded("${ [limit(1e10; repeat(1))] | length }", 0);
    check_bounded("${ [range(1e9)] | length }", 0);
    check_bounded("${ def f: 1 + f; f }", 0);
    check_bounded("${ reduce range(40) as $i (\"x\"; . + .) | length }", 0);
    /* The same compiled template runs again after a timeout. */
    v = J("{\"r\": \"${ if .n == 0 then last(range(1e10)) else .n * 10 end }\"}");
    is_int(tmpl_compile(v, &t, NULL, &err), 0, "compiles");
    ctx = J("{\"n\": 0}");
    is_int(tmpl_eval(t, ctx, &out, &err), WFO_EEXPR, "times out");
    is_str(err.message, "jq: evaluation exceeded 1000 ms", "message");
    json_decref(ctx);
    ctx = J("{\"n\": 4}");
    is_int(tmpl_eval(t, ctx, &out, &err), 0, "then evaluates: %s", err.message);
    is_int(json_integer_value(json_object_get(out, "r")), 40, "with the right result");
    json_decref(out);
    json_decref(ctx);
    tmpl_free(t);
    json_decref(v);
}

TEST(stopped_runs)
{
    /* libjq 1.6 aborts when a run stopped downstream of a path expression
     * is reset, unless expr.c keeps its path an array (expr.c, I6): the
     * first output of a path generator, and timeouts inside `|=`. */
    const char *texts[] = {
        "${ paths }",        "${ leaf_paths }", "${ path(..) }",       "${ [paths] | length }",
        "${ first(paths) }", "${ .a | paths }", "${ del(.a) | keys }", "${ to_entries[0].key }"};
    const char *wants[] = {"[\"a\"]", "[\"a\",\"b\",0]", "[]",      "6",
                           "[\"a\"]", "[\"b\"]",         "[\"n\"]", "\"a\""};
    json_t *ctx = J("{\"a\": {\"b\": [1, {\"c\": 3}]}, \"n\": 2}");

    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        json_t *v = json_string(texts[i]), *out = NULL;
        struct tmpl *t = NULL;
        struct wfo_error err = WFO_ERROR_INIT;
        char *s;

        is_int(tmpl_compile(v, &t, NULL, &err), 0, "%s compiles", texts[i]);
        for (int k = 0; k < 3; k++) {
            is_int(tmpl_eval(t, ctx, &out, &err), 0, "%s, run %d: %s", texts[i], k, err.message);
            s = wfo_json_dumps(out);
            is_str(s, wants[i], "%s, run %d", texts[i], k);
            free(s);
            json_decref(out);
        }
        tmpl_free(t);
        json_decref(v);
    }
    json_decref(ctx);
    /* The first output is taken without raising anything downstream,
     * which jq 1.6's try would catch. */
    check("${ try (1, 2) catch \"caught\" }", "{}", "1");
    check("${ label $f | (try (1, 2) catch \"c\") | ., break $f }", "{}", "1");
    check("${ first(try (1, 2) catch \"c\") }", "{}", "1");
    check("${ (try (1, 2) catch \"c\") | if . == 1 then error(\"x\") else . end }", "{}", "\"c\"");
    check_bounded("${ [range(100000)] | .[] |= last(range(1000)) }", 1);
    check_bounded("${ [path(repeat(.a))] | length }", 0);
    check_bounded("${ def f: [paths] | f; f }", 1);
}

TEST(deep_nesting)
{
    const char *texts[] = {"${ reduce range(1000000) as $i (null; [.]) }",
                           "${ reduce range(2000000) as $i (null; [.]) | 1 }",
                           "${ reduce range(300000) as $i (null; {a: .}) | tojson | length }"};

    check_err("${ reduce range(600) as $i (0; [.]) }", "{}",
              "jq: result nested deeper than 512 levels");
    check("${ reduce range(512) as $i (0; [.]) | flatten }", "{}", "[0]");
    check("${ reduce range(200) as $i (0; [.]) | tojson | length }", "{}", "401");
    /* libjq frees and prints nested values recursively: millions of levels
     * must not overflow the stack (expr.c, I4), whether they end in time
     * or not. */
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        struct wfo_error err = WFO_ERROR_INIT;
        char *got = ev(texts[i], "{}", &err);

        ok(got ? !strcmp(got, "1") || !strcmp(got, "1571")
               : !strcmp(err.message, "jq: result nested deeper than 512 levels") ||
                     !strcmp(err.message, "jq: evaluation exceeded 1000 ms"),
           "%s: %s", texts[i], got ? got : err.message);
        free(got);
    }
}

#if defined(__SANITIZE_ADDRESS__)
TEST(out_of_memory)
{
    /* A single allocation over the sanitizer's cap fails inside libjq: the
     * evaluation fails, the process lives on, and the expression is
     * recompiled and runs again. The value libjq was building leaks (I3),
     * hence no leak checking of that one call. */
    json_t *v = J("\"${ reduce range(.k) as $i (\\\"x\\\" * 1000000; . + .) | length }\"");
    json_t *ctx = J("{\"k\": 9}"), *out = NULL;
    struct tmpl *t = NULL;
    struct wfo_error err = WFO_ERROR_INIT;

    is_int(tmpl_compile(v, &t, NULL, &err), 0, "compiles");
    __lsan_disable();
    is_int(tmpl_eval(t, ctx, &out, &err), WFO_EEXPR, "fails");
    __lsan_enable();
    is_str(err.message, "jq: evaluation ran out of memory", "message");
    json_decref(ctx);
    ctx = J("{\"k\": 2}");
    is_int(tmpl_eval(t, ctx, &out, &err), 0, "runs again: %s", err.message);
    is_int(json_integer_value(out), 4000000, "result");
    json_decref(out);
    json_decref(ctx);
    tmpl_free(t);
    json_decref(v);
}
#endif

TEST(nothing_on_stderr)
{
    char path[] = "/tmp/wfo-test-expr-XXXXXX";
    int fd = mkstemp(path), saved = dup(2);
    struct stat st;
    struct wfo_error err = WFO_ERROR_INIT;
    const char *texts[] = {
        "${ .a | }",           "${ foo }",       "${ . env }",       "${ debug }",
        "${ \"x\" | stderr }", "${ input }",     "${ halt_error }",  "${ import \"a\" as a; . }",
        "${ error(\"e\") }",   "${ {} | .[0] }", "${ def f: f; f }", "${ [.[] | tostring] }",
        "${ $__loc__ }"};

    ok(fd >= 0 && saved >= 0, "capture stderr");
    fflush(stderr);
    dup2(fd, 2);
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        json_t *out = NULL, *ctx = J("[1, 2]");

        expr_eval_once(texts[i], ctx, &out, &err);
        json_decref(out);
        json_decref(ctx);
    }
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    ok(fstat(fd, &st) == 0 && st.st_size == 0, "nothing was written to stderr (%lld bytes)",
       (long long)st.st_size);
    close(fd);
    unlink(path);
}

TEST(large_values)
{
    json_t *items = json_array(), *ctx = json_object(), *out = NULL, *v;
    struct tmpl *t = NULL;
    struct wfo_error err = WFO_ERROR_INIT;

    for (int i = 0; i < 100000; i++)
        json_array_append_new(items, json_integer(i));
    json_object_set_new(ctx, "items", items);
    is_int(expr_eval_once("${ .items | length }", ctx, &out, &err), 0, "length");
    is_int(json_integer_value(out), 100000, "100000 items");
    json_decref(out);
    is_int(expr_eval_once("${ [.items[] | . * 2] }", ctx, &out, &err), 0, "map");
    ok(json_array_size(out) == 100000 && json_is_integer(json_array_get(out, 99999)) &&
           json_integer_value(json_array_get(out, 99999)) == 199998,
       "100000 doubled integers");
    json_decref(out);
    is_int(expr_eval_once("${ .items }", ctx, &out, &err), 0, "plain path");
    ok(out == items, "the same array, not a copy");
    json_decref(out);
    is_int(expr_eval_once("${ [range(50000)] | map(tostring) | add | length }", ctx, &out, &err), 0,
           "a large string");
    is_int(json_integer_value(out), 238890, "its length");
    json_decref(out);
    v = json_array();
    for (int i = 0; i < 10000; i++)
        json_array_append_new(v, i == 5000 ? json_string("${ .items[-1] }") : json_integer(i));
    is_int(tmpl_compile(v, &t, NULL, &err), 0, "a large template compiles");
    is_int(tmpl_eval(t, ctx, &out, &err), 0, "and evaluates");
    ok(json_array_size(out) == 10000 && json_integer_value(json_array_get(out, 5000)) == 99999 &&
           json_integer_value(json_array_get(out, 9999)) == 9999,
       "with its expression replaced");
    json_decref(out);
    tmpl_free(t);
    json_decref(v);
    json_decref(ctx);
}

struct thread_arg {
    const char *text;
    int n, fails;
};

static void *eval_thread(void *p)
{
    struct thread_arg *a = p;
    json_t *v = J(a->text), *ctx = J("{\"n\": 3}"), *out;
    struct tmpl *t = NULL;
    struct wfo_error err = WFO_ERROR_INIT;

    if (tmpl_compile(v, &t, NULL, &err) < 0)
        a->fails = a->n;
    for (int i = 0; t && i < a->n; i++) {
        out = NULL;
        if (tmpl_eval(t, ctx, &out, &err) < 0 || json_integer_value(out) != 7)
            a->fails++;
        json_decref(out);
    }
    tmpl_free(t);
    json_decref(v);
    json_decref(ctx);
    return NULL;
}

TEST(threads)
{
    /* Templates on several threads at once, each with its own libjq stack,
     * while another thread's evaluation times out. */
    struct thread_arg a[3] = {{"\"${ .n * 2 + 1 }\"", 300, 0},
                              {"\"${ [.n, 4] | add }\"", 300, 0},
                              {"\"${ if .n == 3 then last(range(1e10)) else 7 end }\"", 1, 0}};
    pthread_t tid[3];

    for (int i = 0; i < 3; i++)
        pthread_create(&tid[i], NULL, eval_thread, &a[i]);
    for (int i = 0; i < 3; i++)
        pthread_join(tid[i], NULL);
    is_int(a[0].fails, 0, "thread 1: every result right");
    is_int(a[1].fails, 0, "thread 2: every result right");
    is_int(a[2].fails, 1, "thread 3: timed out");
}

int main(void)
{
    return tap_run();
}
