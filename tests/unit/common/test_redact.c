/*
 * test_redact.c - src/common/redact.c: secrets' values replaced by
 * [REDACTED] in text and in every string and key of a JSON value.
 */
#include "common/compat.h"

#include <stdlib.h>
#include <string.h>

#include "common/redact.h"
#include "../tap.h"

TEST(redact)
{
    ok(!wfo_redact_active(), "nothing to redact at first");
    json_t *v = json_pack("{s:s}", "a", "hunter2-secret");
    json_t *r = wfo_redact_json(v);
    ok(r == v, "without values: the same value");
    json_decref(r);

    ok(wfo_redact_add("abc") < 0, "a value under 4 characters is refused");
    is_int(wfo_redact_add("hunter2-secret"), 0, "added");
    is_int(wfo_redact_add("hunter2-secret-longer"), 0, "a longer one containing it");
    is_int(wfo_redact_add("hunter2-secret"), 0, "the same again is fine");
    ok(wfo_redact_active(), "active");

    struct wfo_buf b = WFO_BUF_INIT;
    wfo_buf_adds(&b, "x=hunter2-secret-longer y=hunter2-secret hunter2-secrethunter2-secret");
    wfo_redact_buf(&b);
    is_str(b.buf, "x=[REDACTED] y=[REDACTED] [REDACTED][REDACTED]", "text, longest first");
    wfo_buf_release(&b);

    json_decref(v);
    v = json_pack("{s:s, s:[s, i, {s:s}], s:s, s:n}", "a", "Bearer hunter2-secret", "list", "ok", 5,
                  "hunter2-secret", "deep hunter2-secret", "plain", "nothing here", "n");
    r = wfo_redact_json(v);
    ok(r != v, "a copy when something holds a value");
    char *text = wfo_json_dumps(r);
    ok(!strstr(text, "hunter2"), "no value left: %s", text);
    ok(strstr(text, "\"Bearer [REDACTED]\"") && strstr(text, "\"[REDACTED]\":\"deep [REDACTED]\""),
       "strings and keys rewritten");
    ok(strstr(text, "\"plain\":\"nothing here\"") && strstr(text, "\"n\":null"),
       "the rest as it was");
    char *orig = wfo_json_dumps(v);
    ok(strstr(orig, "hunter2-secret") != NULL, "the original is untouched");
    free(text);
    free(orig);
    json_decref(r);
    json_decref(v);
    ok(wfo_redact_json(NULL) == NULL, "NULL stays NULL");
    ok(wfo_redact_hit("..hunter2-secret..", 18), "hit");
    ok(!wfo_redact_hit("hunter2-secre", 13), "a prefix is no hit");
}

/* jq shows the value that failed as its JSON text cut short, with "...". */
TEST(redact_cut_short)
{
    struct wfo_buf b = WFO_BUF_INIT;
    is_int(wfo_redact_add("zz-secret-Val-991"), 0, "added");
    is_int(wfo_redact_add("q\"uo\ted-secret"), 0, "one with JSON escapes");

    const char *msg = "jq: string (\"zz-secret-...) and number (1) cannot be added";
    ok(wfo_redact_hit(msg, strlen(msg)), "a value cut short is a hit");
    wfo_buf_adds(&b, msg);
    wfo_redact_buf(&b);
    is_str(b.buf, "jq: string ([REDACTED]) and number (1) cannot be added",
           "replaced with its dots");

    wfo_buf_reset(&b);
    wfo_buf_adds(&b, "a (\"q\\\"uo\\t...) b (\"zz-s...) c (\"zz...) d (\"other-valu...)");
    wfo_redact_buf(&b);
    is_str(b.buf, "a ([REDACTED]) b ([REDACTED]) c (\"zz...) d (\"other-valu...)",
           "escapes as JSON writes them, every one, not under 4 characters, not other values");

    wfo_buf_reset(&b);
    wfo_buf_adds(&b, "object ({\"k\":\"zz-secret-...) and \"zz-secret-Val-991\" ...");
    wfo_redact_buf(&b);
    is_str(b.buf, "object ({\"k\":[REDACTED]) and \"[REDACTED]\" ...",
           "inside an object's text, and beside a whole value");
    const char *plain = "nothing... to see (\"zz-sec) here...";
    ok(!wfo_redact_hit(plain, strlen(plain)), "no dots right after a cut value: no hit");
    wfo_buf_release(&b);
}

int main(void)
{
    return tap_run();
}
