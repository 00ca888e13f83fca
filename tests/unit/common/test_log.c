/*
 * test_log.c - unit tests of src/common/log.c: levels (parse, enabled,
 * off), the text line (fields, control characters escaped so one call is
 * one line, quoted field values, NULL ones left out) and the JSON line,
 * read back from stderr sent to a temporary file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/json.h"
#include "common/util.h"
#include "../tap.h"
#include "common/banned.h"

static char captured[8192];

/* Runs fn with stderr going to a file; its text into captured. */
static void capture(void (*fn)(void))
{
    fflush(stderr);
    FILE *f = tmpfile();
    int saved = dup(STDERR_FILENO);
    dup2(fileno(f), STDERR_FILENO);
    fn();
    dup2(saved, STDERR_FILENO);
    close(saved);
    rewind(f);
    size_t n = fread(captured, 1, sizeof(captured) - 1, f);
    captured[n] = 0;
    fclose(f);
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

TEST(levels)
{
    is_int(wfo_log_level_parse("debug"), WFO_LOG_DEBUG, "debug");
    is_int(wfo_log_level_parse("warn"), WFO_LOG_WARN, "warn");
    is_int(wfo_log_level_parse("off"), WFO_LOG_OFF, "off");
    is_int(wfo_log_level_parse("WARN"), -1, "upper case: unknown");
    is_int(wfo_log_level_parse("warning"), -1, "warning: unknown");
    is_int(wfo_log_level_parse(NULL), -1, "NULL");
    wfo_log_setup(WFO_LOG_WARN, WFO_LOG_TEXT);
    ok(!wfo_log_enabled(WFO_LOG_INFO), "warn: info off");
    ok(wfo_log_enabled(WFO_LOG_WARN) && wfo_log_enabled(WFO_LOG_ERROR), "warn and error on");
    ok(!wfo_log_enabled(WFO_LOG_OFF), "OFF is never a level to log at");
    wfo_log_setup(WFO_LOG_OFF, WFO_LOG_TEXT);
    ok(!wfo_log_enabled(WFO_LOG_ERROR), "off: nothing");
}

static void text_lines(void)
{
    wfo_log_setup(WFO_LOG_INFO, WFO_LOG_TEXT);
    wfo_log(WFO_LOG_DEBUG, "e1", NULL, "not shown");
    wfo_log(WFO_LOG_INFO, "e1", "a/b", "hello %d\nsecond\x01", 42);
    wfo_log_exec(WFO_LOG_ERROR, "e2", "order", NULL, "ended");
    const char *kv[] = {"queue", "q 1", "worker", NULL, "n", "3", "empty", ""};
    wfo_log_fields(WFO_LOG_WARN, NULL, NULL, kv, 4, "polled");
    /* an id cannot fake a field: quoted, with its quotes, backslashes and
     * tabs escaped */
    wfo_log_exec(WFO_LOG_INFO, "x wf=payroll step=approve", "a\"b\\c", "t\tu", "m");
}

TEST(text)
{
    capture(text_lines);
    is_int(count_lines(captured), 4, "four lines, one per call shown");
    char *l1 = captured, *l2 = strchr(l1, '\n') + 1, *l3 = strchr(l2, '\n') + 1;
    char *l4 = strchr(l3, '\n') + 1;
    ok(strncmp(l1 + 24, " INFO exec=e1 step=a/b hello 42\\nsecond\\x01\n", 44) == 0,
       "level, exec, step, message escaped: %.60s", l1);
    ok(l1[4] == '-' && l1[10] == 'T' && l1[23] == 'Z', "starts with the time");
    ok(strncmp(l2 + 24, " ERROR exec=e2 wf=order ended\n", 30) == 0, "with the workflow: %.50s",
       l2);
    ok(strncmp(l3 + 24, " WARN polled queue=\"q 1\" n=3 empty=\"\"\n", 38) == 0,
       "fields: a blank quoted, NULL left out: %.60s", l3);
    const char *want4 =
        " INFO exec=\"x wf=payroll step=approve\" wf=\"a\\\"b\\\\c\" step=\"t\\tu\" m\n";
    ok(strncmp(l4 + 24, want4, strlen(want4)) == 0, "values quoted as logfmt: %.90s", l4);
}

static void json_lines(void)
{
    wfo_log_setup(WFO_LOG_DEBUG, WFO_LOG_JSON);
    wfo_log_exec(WFO_LOG_DEBUG, "e1", "order", "s", "two\nlines");
    const char *kv[] = {"queue", "q", "worker", NULL};
    wfo_log_fields(WFO_LOG_INFO, NULL, NULL, kv, 2, "x");
    wfo_log_setup(WFO_LOG_INFO, WFO_LOG_TEXT);
}

TEST(json)
{
    capture(json_lines);
    is_int(count_lines(captured), 2, "two lines");
    char *nl = strchr(captured, '\n');
    json_t *a = NULL, *b = NULL;
    ok(wfo_json_parse(captured, (size_t)(nl - captured), &a, NULL) == 0, "line 1 is JSON");
    ok(wfo_json_parse(nl + 1, strlen(nl + 1) - 1, &b, NULL) == 0, "line 2 is JSON");
    is_str(wfo_json_str(a, "level"), "debug", "level");
    is_str(wfo_json_str(a, "msg"), "two\nlines", "message as is");
    is_str(wfo_json_str(a, "execution_id"), "e1", "execution_id");
    is_str(wfo_json_str(a, "workflow"), "order", "workflow");
    is_str(wfo_json_str(a, "step"), "s", "step");
    ok(wfo_json_str(a, "time") != NULL, "time");
    is_str(wfo_json_str(b, "queue"), "q", "a field as a key");
    ok(json_object_get(b, "worker") == NULL, "a NULL field left out");
    ok(json_object_get(b, "execution_id") == NULL, "no execution: no key");
    json_decref(a);
    json_decref(b);
}

int main(void)
{
    return tap_run();
}
