/*
 * test_yaml.c - unit tests of src/common/yaml.c: the core schema, keys,
 * anchors and their limits, errors with positions, hostile input, and
 * wfo_doc_parse's choice between JSON and YAML.
 */
#include "common/compat.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "common/yaml.h"
#include "../tap.h"

/* Parses len bytes of s as YAML; returns the compact JSON or "ERROR msg". */
static const char *yl(const char *s, size_t len)
{
    static char out[8192];
    struct wfo_error err = WFO_ERROR_INIT;
    json_t *v = (json_t *)1;
    char *d;

    if (wfo_yaml_parse(s, len, &v, &err) < 0) {
        snprintf(out, sizeof(out), "ERROR %s%s", err.message,
                 err.code == WFO_EPARSE ? "" : " (not EPARSE)");
        if (v != NULL)
            snprintf(out, sizeof(out), "ERROR *out not NULL");
        return out;
    }
    d = wfo_json_dumps(v);
    snprintf(out, sizeof(out), "%s", d);
    free(d);
    json_decref(v);
    return out;
}

#define Y(s) yl(s, sizeof(s) - 1)

TEST(plain_scalars_core_schema)
{
    is_str(Y("[null, Null, NULL, ~, ]"), "[null,null,null,null]", "nulls");
    is_str(Y("a:\nb: ~\n"), "{\"a\":null,\"b\":null}", "empty value is null");
    is_str(Y("[true, True, TRUE, false, False, FALSE]"), "[true,true,true,false,false,false]",
           "booleans");
    is_str(Y("[yes, no, on, off, y, n, tRUE]"),
           "[\"yes\",\"no\",\"on\",\"off\",\"y\",\"n\",\"tRUE\"]", "YAML 1.1 booleans are strings");
    is_str(Y("[0, 42, -3, +5, 007, 0o17, 0x1F, 0xff]"), "[0,42,-3,5,7,15,31,255]", "integers");
    is_str(Y("[-0x1, 0o8, 0xG, 1_000, 0b101, 12:30, 1.2.3]"),
           "[\"-0x1\",\"0o8\",\"0xG\",\"1_000\",\"0b101\",\"12:30\",\"1.2.3\"]",
           "not integers in the core schema");
    is_str(Y("[1.5, -0.5, .5, 1., 1e3, 2.5E-1, +1.0, -0.0]"),
           "[1.5,-0.5,0.5,1.0,1000.0,0.25,1.0,-0.0]", "floats");
    is_str(Y("[-9223372036854775808, 9223372036854775807]"),
           "[-9223372036854775808,9223372036854775807]", "int64 range");
    is_str(Y("[\"1\", '2', \"true\", 'null', \"\"]"), "[\"1\",\"2\",\"true\",\"null\",\"\"]",
           "quoted scalars are strings");
    is_str(Y("a: |\n  1\nb: >-\n  true\n"), "{\"a\":\"1\\n\",\"b\":\"true\"}",
           "block scalars are strings");
    is_str(Y("x: hello world\n"), "{\"x\":\"hello world\"}", "plain string");
    is_str(Y("x: ${ .input.a }\n"), "{\"x\":\"${ .input.a }\"}", "an expression stays a string");
}

TEST(numbers_refused)
{
    is_str(Y("a: .inf\n"), "ERROR line 1 column 4: '.inf' is not a JSON number", ".inf");
    ok(strncmp(Y("a: -.Inf\n"), "ERROR ", 6) == 0, "-.Inf");
    ok(strncmp(Y("a: .NaN\n"), "ERROR ", 6) == 0, ".NaN");
    is_str(Y("a: 99999999999999999999\n"),
           "ERROR line 1 column 4: integer '99999999999999999999' is out of range",
           "integer overflow");
    ok(strncmp(Y("a: 0x10000000000000000\n"), "ERROR ", 6) == 0, "hex overflow");
    ok(strncmp(Y("a: 1e999\n"), "ERROR ", 6) == 0, "float overflow");
    is_str(Y("a: '.inf'\n"), "{\"a\":\".inf\"}", "quoted .inf is a string");
}

TEST(tags)
{
    is_str(Y("[!!str 1, !!str true, ! 5, !!int \"7\", !!float 1, !!bool 'true', !!null '']"),
           "[\"1\",\"true\",\"5\",7,1.0,true,null]", "core tags");
    ok(strstr(Y("a: !!int x\n"), "does not match its tag") != NULL, "!!int on a non-integer");
    ok(strstr(Y("a: !foo x\n"), "unsupported tag '!foo'") != NULL, "local tag refused");
    ok(strstr(Y("a: !!binary aGk=\n"), "unsupported tag") != NULL, "!!binary refused");
    ok(strstr(Y("a: !!set {x}\n"), "unsupported tag") != NULL, "!!set refused");
    is_str(Y("a: !!map {x: 1}\nb: !!seq [1]\n"), "{\"a\":{\"x\":1},\"b\":[1]}", "!!map and !!seq");
}

TEST(keys)
{
    is_str(Y("1: a\ntrue: b\nnull: c\n1.5: d\n"),
           "{\"1\":\"a\",\"true\":\"b\",\"null\":\"c\",\"1.5\":\"d\"}", "keys are strings");
    is_str(Y("b: 1\na: 2\nc: 3\n"), "{\"b\":1,\"a\":2,\"c\":3}", "key order kept");
    is_str(Y("a: 1\nb: 2\na: 3\n"), "ERROR line 3 column 1: duplicate key 'a'", "duplicate key");
    is_str(Y("{a: 1, 'a': 2}"), "ERROR line 1 column 8: duplicate key 'a'",
           "duplicate key, quoted");
    is_str(Y("? [1]\n: 2\n"), "ERROR line 1 column 3: mapping keys must be scalars",
           "sequence as key");
    ok(strstr(Y("? {a: 1}\n: 2\n"), "mapping keys must be scalars") != NULL, "mapping as key");
    is_str(Y("a: &k x\n*k : 1\n"), "{\"a\":\"x\",\"x\":1}", "alias of a string as key");
    ok(strstr(Y("a: &k [1]\n*k : 1\n"), "mapping keys must be scalars") != NULL,
       "alias of a sequence as key");
}

TEST(anchors_and_aliases)
{
    struct wfo_error err = WFO_ERROR_INIT;
    json_t *v;
    const char *s = "base: &b {retry: 3, q: [1]}\none: *b\ntwo: *b\n";

    is_str(Y("base: &b {retry: 3, q: [1]}\none: *b\n"),
           "{\"base\":{\"retry\":3,\"q\":[1]},\"one\":{\"retry\":3,\"q\":[1]}}", "alias expanded");
    is_int(wfo_yaml_parse(s, strlen(s), &v, &err), 0, "parse with two aliases");
    ok(json_object_get(v, "one") != json_object_get(v, "two") &&
           json_object_get(v, "base") != json_object_get(v, "one"),
       "aliases are copies, not shared values");
    json_decref(v);
    is_str(Y("a: &x 1\nb: &x 2\nc: *x\n"), "{\"a\":1,\"b\":2,\"c\":2}", "latest anchor wins");
    is_str(Y("a: *nope\n"), "ERROR line 1 column 4: unknown anchor 'nope'", "unknown anchor");
    ok(strstr(Y("a: &a [1, *a]\n"), "refers to a node that contains it") != NULL,
       "recursive alias refused");
    is_str(Y("<<: {a: 1}\n"), "{\"<<\":{\"a\":1}}", "no YAML 1.1 merge keys");
}

TEST(billion_laughs)
{
    const char *bomb =
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
        "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
        "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
        "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
        "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
        "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
        "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
        "h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
        "i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n";
    clock_t t0 = clock();
    const char *r = yl(bomb, strlen(bomb));

    ok(strstr(r, "aliases expand to more than 100000 nodes") != NULL, "refused: %s", r);
    ok(clock() - t0 < CLOCKS_PER_SEC, "quickly");
    /* An alias that adds depth is checked too. */
    {
        char *s = wfo_malloc(2000);
        size_t k = 0;

        k += (size_t)snprintf(s, 2000, "a: &a ");
        for (int i = 0; i < 300; i++)
            s[k++] = '[';
        for (int i = 0; i < 300; i++)
            s[k++] = ']';
        k += (size_t)snprintf(s + k, 2000 - k, "\nb: ");
        for (int i = 0; i < 300; i++)
            s[k++] = '[';
        k += (size_t)snprintf(s + k, 2000 - k, "*a");
        for (int i = 0; i < 300; i++)
            s[k++] = ']';
        s[k] = '\0';
        ok(strstr(yl(s, k), "nesting deeper than 512 levels") != NULL, "alias depth refused");
        free(s);
    }
}

TEST(documents)
{
    is_str(Y(""), "ERROR line 1 column 1: empty document", "empty text");
    is_str(Y("# only\n# comments\n"), "ERROR line 1 column 1: empty document", "only comments");
    is_str(Y("   \n\n"), "ERROR line 1 column 1: empty document", "only blanks");
    ok(strstr(Y("---\n"), "empty document") != NULL, "an empty explicit document");
    is_str(yl(NULL, 0), "ERROR line 1 column 1: empty document", "NULL text");
    is_str(Y("--- a\n--- b\n"), "ERROR line 2 column 1: more than one document", "two documents");
    is_str(Y("a: 1\n---\nb: 2\n"), "ERROR line 2 column 1: more than one document",
           "a second document after a mapping");
    is_str(Y("--- 5\n...\n"), "5", "explicit start and end");
    is_str(Y("%YAML 1.2\n---\na: 1\n"), "{\"a\":1}", "a %%YAML directive");
    is_str(Y("null"), "null", "a null document is not empty");
    is_str(Y("\xEF\xBB\xBF"
             "a: 1\n"),
           "{\"a\":1}", "a UTF-8 BOM");
    is_str(Y("- 1\n- [2, {x: y}]\n"), "[1,[2,{\"x\":\"y\"}]]", "block sequence");
}

TEST(syntax_errors_have_positions)
{
    is_str(Y("a: 1\nb: [1, 2\n"), "ERROR line 3 column 1: flow sequence without a closing bracket",
           "truncated flow sequence");
    ok(strncmp(Y("a: 'x\n"), "ERROR line 1 column ", 20) == 0, "unclosed quote");
    ok(strncmp(Y("key: value: bad\n"), "ERROR line 1 column ", 20) == 0,
       "nested mapping on a line");
    ok(strncmp(Y("a:\n\tb: 1\n"), "ERROR line ", 11) == 0, "tab indentation");
    ok(strncmp(Y("a: 1\n\tb: 2\n"), "ERROR line ", 11) == 0, "tab before a key");
    ok(strncmp(Y("a: [1,\n"), "ERROR line 2 column ", 20) == 0, "truncated");
    ok(strncmp(Y("a: \"\\ud800\"\n"), "ERROR line 1 column ", 20) == 0, "surrogate escape");
    ok(strncmp(Y("- a\nb: c\n"), "ERROR line ", 11) == 0, "sequence then mapping");
    is_str(Y("a: 1\n  b: 2\n"), Y("a: 1\n  b: 2\n"), "stable");
}

TEST(hostile_bytes)
{
    static const char nul[] = "a: \"x\0y\"\n";
    static const char bad[] = "a: 1\nb: \xff\xfe\n";
    static const char overlong[] = "a: \xC0\xAF\n";
    static const char garbage[] = "\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00";

    is_str(yl(nul, sizeof(nul) - 1), "ERROR line 1 column 6: NUL bytes are not allowed",
           "NUL byte");
    is_str(yl(bad, sizeof(bad) - 1), "ERROR line 2 column 4: invalid UTF-8", "invalid UTF-8");
    is_str(yl(overlong, sizeof(overlong) - 1), "ERROR line 1 column 4: invalid UTF-8",
           "overlong UTF-8");
    ok(strncmp(yl(garbage, sizeof(garbage) - 1), "ERROR ", 6) == 0, "binary garbage");
    is_str(Y("a: \"\\0\"\n"), "ERROR line 1 column 4: NUL characters are not allowed",
           "escaped NUL");
    is_str(Y("a: \"\\x01\xC3\xA9\"\n"), "{\"a\":\"\\u0001\xC3\xA9\"}", "escapes and UTF-8 kept");
}

TEST(random_garbage_never_crashes)
{
    char s[512];
    int errors = 0;

    for (int round = 0; round < 2000; round++) {
        size_t len = (size_t)(wfo_random() * sizeof(s));
        static const char alphabet[] = "ab:-[]{}&*!|>'\"#?,%@` \n\t\\.0~";

        for (size_t i = 0; i < len; i++)
            s[i] = alphabet[(size_t)(wfo_random() * (sizeof(alphabet) - 1))];
        if (strncmp(yl(s, len), "ERROR ", 6) == 0)
            errors++;
    }
    ok(errors > 0, "random text parses or fails cleanly (%d errors)", errors);
}

TEST(deep_nesting)
{
    char *s = wfo_malloc(200001);
    clock_t t0 = clock();
    size_t k;

    memset(s, '[', 100000);
    is_str(yl(s, 100000), "ERROR line 1 column 513: nesting deeper than 512 levels",
           "100,000 '[' refused");
    for (k = 0; k < 200000; k += 2)
        memcpy(s + k, "- ", 2);
    ok(strstr(yl(s, 200000), "nesting deeper than 512 levels") != NULL, "deep block sequences");
    k = 0;
    for (int i = 0; i < 1000; i++) {
        memcpy(s + k, "{a: ", 4);
        k += 4;
    }
    ok(strstr(yl(s, k), "nesting deeper than 512 levels") != NULL, "deep flow mappings");
    k = 0;
    for (int i = 0; i < 512; i++)
        s[k++] = '[';
    for (int i = 0; i < 512; i++)
        s[k++] = ']';
    ok(strncmp(yl(s, k), "[[[", 3) == 0, "512 levels accepted");
    ok(clock() - t0 < 2 * CLOCKS_PER_SEC, "quickly");
    free(s);
}

TEST(nothing_on_stderr)
{
    int fds[2], saved;
    char buf[256];
    ssize_t n;

    if (pipe(fds) < 0)
        return;
    saved = dup(2);
    dup2(fds[1], 2);
    Y("a: [1,\n");
    Y("a: 1\n\tb: 2\n");
    Y("key: value: bad\n");
    Y("a: !foo x\n");
    Y("a: *x\n");
    dup2(saved, 2);
    close(saved);
    close(fds[1]);
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    n = read(fds[0], buf, sizeof(buf));
    close(fds[0]);
    ok(n <= 0, "bad YAML prints nothing on stderr");
}

static const char *dp(const char *s)
{
    static char out[1024];
    struct wfo_error err = WFO_ERROR_INIT;
    json_t *v;
    char *d;

    if (wfo_doc_parse(s, strlen(s), &v, &err) < 0) {
        snprintf(out, sizeof(out), "ERROR %s", err.message);
        return out;
    }
    d = wfo_json_dumps(v);
    snprintf(out, sizeof(out), "%s", d);
    free(d);
    json_decref(v);
    return out;
}

TEST(doc_parse_chooses)
{
    is_str(dp("{\"a\": 1}"), "{\"a\":1}", "JSON object");
    is_str(dp("  \n [1, 2.0]"), "[1,2.0]", "JSON array after blanks");
    is_str(dp("a: 1"), "{\"a\":1}", "YAML mapping");
    ok(strstr(dp("{a: 1}"), "ERROR line 1 column") != NULL,
       "a flow mapping with bare keys is read as JSON and refused");
    ok(strstr(dp("[1] x"), "end of file expected") != NULL, "JSON errors come from JSON");
    is_str(dp("\xEF\xBB\xBF{\"a\":1}"), "{\"a\":1}", "BOM then JSON");
    is_str(dp("# c\n{a: 1}"), "{\"a\":1}", "comment first: YAML");
    is_str(dp(""), "ERROR line 1 column 1: empty document", "empty");
}

int main(void)
{
    return tap_run();
}
