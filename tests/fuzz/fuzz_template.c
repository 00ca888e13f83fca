/*
 * fuzz_template.c - libFuzzer target for templates and the jq sandbox
 * (src/core/expr.c): the sandbox's lexer, the plain-path walker, libjq
 * compiled with the prelude, evaluation on the fiber under the watchdog,
 * and the conversions between json_t and jv.
 *
 * An input is
 *
 *   TEMPLATE LF CONTEXT
 *
 * TEMPLATE is used as JSON when it parses as JSON (an object or array
 * whose string leaves may be expressions), else as one string (so
 * "${ .a | length }" is an expression). CONTEXT is a JSON value; when it
 * does not parse the context is {"input": {"a": [1, "x"]}}. What must hold:
 * no crash, no sanitizer report, no hang past the time limit; compiling
 * gives 0 or WFO_EEXPR with a message; evaluating gives 0 with a value or
 * WFO_EEXPR/WFO_ETIMEOUT-like errors with a message; a constant template
 * evaluates to itself.
 */
#include "common/compat.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/expr.h"
#include "common/json.h"
#include "common/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *nl = memchr(p, '\n', size);
    size_t tlen = nl ? (size_t)(nl - p) : size;
    json_t *tv = NULL, *ctx = NULL, *out = NULL;
    struct tmpl *t = NULL;
    struct wfo_error err = WFO_ERROR_INIT;
    char *bad = NULL;

    if (memchr(p, 0, tlen))
        return 0; /* a JSON string from the API never holds NUL */
    if (wfo_json_parse(p, tlen, &tv, NULL) < 0)
        tv = json_stringn_nocheck(p, tlen);
    if (!nl || wfo_json_parse(nl + 1, size - tlen - 1, &ctx, NULL) < 0)
        ctx = json_pack("{s:{s:[i,s]}}", "input", "a", 1, "x");
    int rc = tmpl_compile(tv, &t, &bad, &err);
    if (rc < 0) {
        if (t || !err.message[0])
            abort();
        goto out;
    }
    rc = tmpl_eval(t, ctx, &out, &err);
    if (rc < 0) {
        if (out || !err.message[0])
            abort();
    } else {
        if (!out)
            abort();
        if (tmpl_is_const(t) && !json_equal(out, tv))
            abort();
    }
out:
    free(bad);
    tmpl_free(t);
    json_decref(out);
    json_decref(ctx);
    json_decref(tv);
    return 0;
}
