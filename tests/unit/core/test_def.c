/*
 * test_def.c - tests of core/def.c: workflow definitions, validation and
 * compilation (SPEC 2; docs/data_model.md).
 *
 * Documents are written as JSON with ' for " to keep them readable.
 */
#include "common/compat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/def.h"
#include "core/kinds.h"
#include "common/util.h"
#include "../tap.h"

/* Parses text with every ' turned into ". */
static json_t *J(const char *text)
{
    struct wfo_error err = WFO_ERROR_INIT;
    size_t n = strlen(text);
    char *s = wfo_strdup(text);
    json_t *v = NULL;

    for (size_t i = 0; i < n; i++)
        if (s[i] == '\'')
            s[i] = '"';
    if (wfo_json_parse(s, n, &v, &err) < 0) {
        printf("# bad test document: %s\n# %s\n", err.message, s);
        abort();
    }
    free(s);
    return v;
}

/* A definition named w whose steps are the text given. */
#define STEPS(text) "{'name': 'w', 'steps': [" text "]}"
#define TASK(name) "{'name': '" name "', 'type': 'task', 'queue': 'q'}"

static void dump(const struct def_problems *p)
{
    for (int i = 0; i < p->n; i++)
        printf("#   problem %s: %s\n", p->items[i].path, p->items[i].message);
}

/* Compiles text; expects failure with exactly the one problem path: msg. */
static void expect1(const char *text, const char *path, const char *msg)
{
    struct def_problems p = {0};
    struct def *d = NULL;
    json_t *doc = J(text);
    int rc = def_compile(doc, &d, &p);

    is_int(rc, WFO_EDEFINITION, "%s: fails", path);
    ok(d == NULL, "%s: no definition", path);
    is_int(p.n, 1, "%s: one problem", path);
    if (p.n >= 1) {
        is_str(p.items[0].path, path, "path %s", path);
        is_str(p.items[0].message, msg, "%s: %s", path, msg);
    }
    if (p.n != 1)
        dump(&p);
    def_problems_release(&p);
    def_unref(d);
    json_decref(doc);
}

/* Compiles text; expects failure with (at least) the problem path: msg. */
static void expect_has(const char *text, const char *path, const char *msg)
{
    struct def_problems p = {0};
    struct def *d = NULL;
    json_t *doc = J(text);
    int found = 0;

    is_int(def_compile(doc, &d, &p), WFO_EDEFINITION, "%s: fails", path);
    for (int i = 0; i < p.n; i++)
        found |= strcmp(p.items[i].path, path) == 0 && strcmp(p.items[i].message, msg) == 0;
    ok(found, "has %s: %s", path, msg);
    if (!found)
        dump(&p);
    def_problems_release(&p);
    def_unref(d);
    json_decref(doc);
}

/* Compiles text; expects failure with one jq syntax error at path (the text
 * after "jq: " is jq's own). */
static void expect_jq_says(const char *text, const char *path, const char *says)
{
    struct def_problems p = {0};
    struct def *d = NULL;
    json_t *doc = J(text);

    is_int(def_compile(doc, &d, &p), WFO_EDEFINITION, "%s: fails", path);
    is_int(p.n, 1, "%s: one problem", path);
    if (p.n >= 1) {
        is_str(p.items[0].path, path, "jq problem at %s", path);
        ok(strncmp(p.items[0].message, "jq: ", 4) == 0 && strstr(p.items[0].message, says),
           "jq message: %s", p.items[0].message);
    }
    if (p.n != 1)
        dump(&p);
    def_problems_release(&p);
    def_unref(d);
    json_decref(doc);
}

static void expect_jq(const char *text, const char *path)
{
    expect_jq_says(text, path, "syntax error");
}

/* Compiles text that must be valid. */
static struct def *compile_ok(const char *text)
{
    struct def_problems p = {0};
    struct def *d = NULL;
    json_t *doc = J(text);
    int rc = def_compile(doc, &d, &p);

    is_int(rc, 0, "compiles");
    is_int(p.n, 0, "no problems");
    if (p.n)
        dump(&p);
    def_problems_release(&p);
    json_decref(doc); /* the definition keeps its own reference */
    return d;
}

static const char *every_type =
    "{'name': 'order-flow', 'description': 'd', 'timeout': '1h', 'on_failure': 'fail',"
    " 'output': '${ .steps.done.output }',"
    " 'triggers': [{'event': 'order.created', 'input': '${ .event.data }'},"
    "              {'cron': '*/5 0-6,22 * 1-12/2 0,7', 'input': {'kind': 'sweep'}}],"
    " 'steps': ["
    /* 0 */ "{'name': 'reserve', 'type': 'task', 'queue': 'inventory',"
    "  'input': {'sku': '${ .input.sku }'},"
    "  'retry': {'max_attempts': 5, 'initial_interval': '250ms', 'backoff': 1.5,"
    "            'max_interval': '1m', 'jitter': 0, 'non_retryable': ['OutOfStock']},"
    "  'timeout': '30s', 'schedule_timeout': 5000, 'heartbeat_timeout': '10s',"
    "  'compensate': {'type': 'task', 'queue': 'release', 'input': {}},"
    "  'catch': [{'errors': ['Timeout', '*'], 'next': 'declined'}]},"
    /* 1 */ "{'name': 'charge', 'type': 'http', 'request': {'method': 'POST',"
    "  'url': 'https://pay.local/c', 'headers': {'X-A': 'y'}, 'query': {'a': 'b'},"
    "  'body': '${ .input }', 'timeout': '5s'}, 'accept_status': [200, 201]},"
    /* 2 */ "{'name': 'run', 'type': 'exec', 'command': ['echo', '${ .input.x }'],"
    "  'stdin': 'hi', 'env': {'A': 'b'}, 'cwd': '/tmp', 'if': '${ .input.run }'},"
    /* 3 */ "{'name': 'vars', 'type': 'set', 'vars': {'n': 1},"
    "  'compensate': [{'type': 'set', 'vars': {'n': 0}}, {'type': 'emit', 'event': {'type': "
    "'u'}}]},"
    /* 4 */ "{'name': 'route', 'type': 'switch', 'cases': [{'when': '${ .vars.n > 1 }', 'next': "
    "'fan'},"
    "  {'when': true, 'next': 'each'}], 'default': 'declined'},"
    /* 5 */ "{'name': 'fan', 'type': 'parallel', 'mode': 'any', 'branches': ["
    "  {'name': 'a', 'steps': [{'name': 'a1', 'type': 'task', 'queue': 'qa', 'next': 'a2'},"
    "                          {'name': 'a2', 'type': 'sleep', 'duration': '1s'}]},"
    "  {'name': 'b', 'steps': [{'name': 'b1', 'type': 'task', 'queue': 'inventory'}]}]},"
    /* 6 */ "{'name': 'each', 'type': 'foreach', 'items': '${ .input.items }', 'concurrency': 3,"
    "  'steps': [{'name': 'one', 'type': 'task', 'queue': 'qe'}]},"
    /* 7 */ "{'name': 'nap', 'type': 'sleep', 'until': '2030-01-02T03:04:05Z'},"
    /* 8 */ "{'name': 'wait', 'type': 'await_event', 'event': 'paid', 'key': '${ .input.id }',"
    "  'timeout': '1d'},"
    /* 9 */ "{'name': 'sig', 'type': 'await_event', 'signal': 'approve'},"
    /* 10 */ "{'name': 'tell', 'type': 'emit', 'event': {'type': 'order.done', 'key': 'k', 'data': "
    "{}}},"
    /* 11 */ "{'name': 'child', 'type': 'workflow', 'workflow': 'child-flow', 'version': 2,"
    "  'input': {}},"
    /* 12 */ "{'name': 'undo', 'type': 'compensate'},"
    /* 13 */ "{'name': 'done', 'type': 'succeed', 'output': {'ok': true}, 'end': true},"
    /* 14 */ "{'name': 'declined', 'type': 'fail', 'error': {'type': 'Declined',"
    "  'message': '${ .error.message }'}},"
    /* 15 */ "{'name': 'back', 'type': 'set', 'vars': {}, 'next': 'reserve',"
    "  'retry': {'max_attempts': 2}, 'end': false}"
    "]}";

TEST(compiles_every_step_type)
{
    struct def *d = compile_ok(every_type);
    struct def_step *s;

    if (!d)
        return;
    is_int(d->refs, 1, "refs 1");
    is_str(d->name, "order-flow", "name");
    is_str(d->description, "d", "description");
    is_int(d->timeout_ms, 3600000, "timeout 1h");
    is_int(d->on_failure_compensate, 0, "on_failure fail");
    ok(d->output != NULL, "output compiled");
    is_int(d->version, 0, "no version yet");
    is_int(d->n_triggers, 2, "two triggers");
    is_str(d->triggers[0].event, "order.created", "event trigger");
    ok(d->triggers[0].cron == NULL, "event trigger has no cron");
    ok(d->triggers[0].input != NULL, "trigger input");
    is_str(d->triggers[1].cron, "*/5 0-6,22 * 1-12/2 0,7", "cron text kept");
    ok(d->triggers[1].event == NULL, "cron trigger has no event");
    is_int(strlen(d->hash), 64, "hash is 64 hex digits");
    is_int(d->steps.n, 16, "16 steps");

    s = &d->steps.steps[0];
    is_str(s->name, "reserve", "task name");
    is_int(s->type, STEP_TASK, "task type");
    is_str(s->queue, "inventory", "queue");
    is_int(s->next, JUMP_NEXT, "task next");
    is_int(s->has_retry, 1, "task has retry");
    is_int(s->retry.max_attempts, 5, "max_attempts");
    is_int(s->retry.initial_ms, 250, "initial_interval");
    ok(s->retry.backoff == 1.5, "backoff");
    is_int(s->retry.max_ms, 60000, "max_interval");
    ok(s->retry.jitter == 0, "jitter");
    is_str(s->retry.non_retryable[0], "OutOfStock", "non_retryable");
    ok(s->retry.non_retryable[1] == NULL, "non_retryable ends");
    is_int(s->timeout_ms, 30000, "timeout");
    is_int(s->schedule_timeout_ms, 5000, "schedule_timeout as integer ms");
    is_int(s->heartbeat_timeout_ms, 10000, "heartbeat_timeout");
    ok(s->f[F_INPUT] != NULL && s->f[F_OUTPUT] == NULL, "input compiled, no output");
    ok(s->spec == json_array_get(json_object_get(d->doc, "steps"), 0), "spec borrowed");
    is_int(s->n_compensate, 1, "one compensation");
    is_str(s->compensate[0].name, "reserve", "compensation named after its step");
    is_str(s->compensate[0].queue, "release", "compensation queue");
    is_int(s->compensate[0].has_retry, 1, "compensation retried");
    is_int(s->n_catches, 1, "one catch");
    is_str(s->catches[0].errors[0], "Timeout", "catch errors");
    is_str(s->catches[0].errors[1], "*", "catch *");
    ok(s->catches[0].errors[2] == NULL, "catch errors end");
    is_int(s->catches[0].next, 14, "catch next index");

    s = &d->steps.steps[1];
    is_int(s->type, STEP_HTTP, "http");
    is_int(s->has_retry, 1, "http gets default retry");
    is_int(s->retry.max_attempts, 3, "default max_attempts");
    is_int(s->retry.initial_ms, 1000, "default initial");
    ok(s->retry.backoff == 2.0, "default backoff");
    is_int(s->retry.max_ms, 60000, "default max");
    ok(s->retry.jitter == 0.1, "default jitter");
    ok(s->retry.non_retryable && !s->retry.non_retryable[0], "default non_retryable empty");
    ok(s->f[F_REQUEST] != NULL, "request compiled");
    is_int(s->n_accept_status, 2, "accept_status");
    is_int(s->accept_status[1], 201, "accept_status[1]");
    is_int(s->timeout_ms, 0, "no step timeout");

    s = &d->steps.steps[2];
    is_int(s->type, STEP_EXEC, "exec");
    ok(s->f[F_COMMAND] && s->f[F_STDIN] && s->f[F_ENV] && s->f[F_CWD] && s->f[F_IF],
       "exec fields and if compiled");
    is_int(s->has_retry, 1, "exec has retry");

    s = &d->steps.steps[3];
    is_int(s->type, STEP_SET, "set");
    ok(s->f[F_VARS] != NULL, "vars compiled");
    is_int(s->has_retry, 0, "set has no retry");
    is_int(s->retry.max_attempts, 1, "set max_attempts 1");
    is_int(s->n_compensate, 2, "compensation list");
    is_str(s->compensate[1].name, "vars", "second compensation named");
    is_int(s->compensate[1].type, STEP_EMIT, "second compensation type");
    is_int(s->compensate[0].has_retry, 1, "set compensation gets the default retry");
    is_int(s->compensate[0].retry.max_attempts, 3, "compensation default attempts");

    s = &d->steps.steps[4];
    is_int(s->type, STEP_SWITCH, "switch");
    is_int(s->n_cases, 2, "cases");
    is_int(s->cases[0].next, 5, "case 0 -> fan");
    is_int(s->cases[1].next, 6, "case 1 -> each");
    ok(s->cases[0].when && s->cases[1].when, "when compiled");
    is_int(s->default_next, 14, "default -> declined");

    s = &d->steps.steps[5];
    is_int(s->type, STEP_PARALLEL, "parallel");
    is_int(s->mode_any, 1, "mode any");
    is_int(s->n_branches, 2, "branches");
    is_str(s->branches[0].name, "a", "branch a");
    is_int(s->branches[0].block.n, 2, "branch a steps");
    is_int(s->branches[0].block.steps[0].next, 1, "a1 -> a2 within the branch");
    ok(s->branches[0].block.steps[1].f[F_DURATION] != NULL, "sleep duration compiled");
    is_str(s->branches[1].block.steps[0].name, "b1", "b1");

    s = &d->steps.steps[6];
    is_int(s->type, STEP_FOREACH, "foreach");
    is_int(s->concurrency, 3, "concurrency");
    is_int(s->body.n, 1, "body");
    is_str(s->body.steps[0].queue, "qe", "body queue");
    ok(s->f[F_ITEMS] != NULL, "items compiled");

    s = &d->steps.steps[7];
    ok(s->f[F_UNTIL] != NULL && s->f[F_DURATION] == NULL, "sleep until");
    s = &d->steps.steps[8];
    is_str(s->event_type, "paid", "await event type");
    ok(s->f[F_KEY] != NULL, "key compiled");
    is_int(s->timeout_ms, 86400000, "await timeout 1d");
    s = &d->steps.steps[9];
    is_str(s->signal, "approve", "signal");
    ok(s->event_type == NULL, "no event type");
    s = &d->steps.steps[10];
    ok(s->f[F_EVENT] != NULL, "emit event compiled");
    s = &d->steps.steps[11];
    is_str(s->workflow, "child-flow", "child workflow");
    is_int(s->workflow_version, 2, "child version");
    ok(s->f[F_INPUT] != NULL, "child input");
    is_int(d->steps.steps[12].type, STEP_COMPENSATE, "compensate step");
    s = &d->steps.steps[13];
    is_int(s->next, JUMP_END, "end: true");
    ok(s->f[F_OUTPUT] != NULL, "succeed output");
    s = &d->steps.steps[14];
    ok(s->f[F_ERROR] != NULL, "fail error");
    s = &d->steps.steps[15];
    is_int(s->next, 0, "backwards next");
    is_int(s->has_retry, 1, "set with its own retry");
    is_int(s->retry.max_attempts, 2, "its max_attempts");
    is_int(s->retry.initial_ms, 1000, "the rest defaults");

    is_int(def_block_find(&d->steps, "declined"), 14, "def_block_find");
    is_int(def_block_find(&d->steps, "a1"), -1, "def_block_find: other block");
    is_int(def_block_find(&d->steps, "nope"), -1, "def_block_find: missing");

    const char **q = def_task_queues(d);
    is_str(q[0], "inventory", "queue 0");
    is_str(q[1], "release", "queue 1 (compensation)");
    is_str(q[2], "qa", "queue 2 (branch)");
    is_str(q[3], "qe", "queue 3 (foreach), inventory once");
    ok(q[4] == NULL, "queues end");
    free(q);

    ok(def_ref(d) == d, "def_ref returns d");
    is_int(d->refs, 2, "refs 2");
    def_unref(d);
    is_int(d->refs, 1, "refs 1 again");
    def_unref(d);
    def_unref(NULL);
}

TEST(defaults)
{
    struct def *d = compile_ok(STEPS(TASK("a") ", {'name': 'b', 'type': 'foreach',"
                                               " 'items': [1], 'steps': [" TASK("x") "]}"));

    if (!d)
        return;
    is_int(d->on_failure_compensate, 1, "on_failure compensate by default");
    ok(d->output == NULL, "no output");
    is_int(d->timeout_ms, 0, "no timeout");
    is_int(d->n_triggers, 0, "no triggers");
    is_int(d->steps.steps[1].concurrency, 10, "concurrency 10");
    is_int(d->steps.steps[1].has_retry, 0, "foreach has no retry");
    is_int(d->steps.steps[0].default_next, JUMP_NEXT, "default_next");
    is_int(def_retry_default.max_attempts, 3, "def_retry_default");
    is_int(def_retry_default.max_ms, 60000, "def_retry_default max");
    ok(def_retry_default.non_retryable && !def_retry_default.non_retryable[0],
       "def_retry_default non_retryable empty");
    const char **q = def_task_queues(d);
    is_str(q[0], "q", "one queue");
    ok(q[1] == NULL, "once");
    free(q);
    def_unref(d);

    /* An initial interval past the default max raises the max. */
    d = compile_ok(STEPS("{'name': 'a', 'type': 'task', 'queue': 'q',"
                         " 'retry': {'initial_interval': '2m'}}"));
    if (d)
        is_int(d->steps.steps[0].retry.max_ms, 120000, "max follows initial");
    def_unref(d);
}

TEST(hash_ignores_key_order)
{
    struct def *a = compile_ok("{'name': 'w', 'steps': [{'name': 'a', 'type': 'task',"
                               " 'queue': 'q'}]}");
    struct def *b = compile_ok("{'steps': [{'queue': 'q', 'type': 'task', 'name': 'a'}],"
                               " 'name': 'w'}");
    struct def *c = compile_ok("{'name': 'w', 'steps': [{'name': 'a', 'type': 'task',"
                               " 'queue': 'q2'}]}");

    if (a && b && c) {
        is_str(a->hash, b->hash, "same hash for reordered keys");
        ok(strcmp(a->hash, c->hash) != 0, "another document, another hash");
    }
    def_unref(a);
    def_unref(b);
    def_unref(c);
}

TEST(top_level_errors)
{
    expect1("[1]", "", "the document must be an object");
    expect1("null", "", "the document must be an object");
    expect1("{'steps': [" TASK("a") "]}", "name", "is required");
    expect1("{'name': 'Bad Name', 'steps': [" TASK("a") "]}", "name",
            "must be 1 to 128 characters of a-z, 0-9, \".\", \"_\" and \"-\", starting with a "
            "letter or a digit");
    expect1("{'name': '-w', 'steps': [" TASK("a") "]}", "name",
            "must be 1 to 128 characters of a-z, 0-9, \".\", \"_\" and \"-\", starting with a "
            "letter or a digit");
    expect1("{'name': 7, 'steps': [" TASK("a") "]}", "name", "must be a string");
    expect1("{'name': 'w', 'stepz': [], 'steps': [" TASK("a") "]}", "stepz",
            "unknown field \"stepz\"");
    expect1("{'name': 'w', 'version': 2, 'steps': [" TASK("a") "]}", "version",
            "unknown field \"version\": versions are numbered by the registry");
    expect1("{'name': 'w', 'description': 1, 'steps': [" TASK("a") "]}", "description",
            "must be a string");
    expect1("{'name': 'w', 'timeout': '5x', 'steps': [" TASK("a") "]}", "timeout",
            "bad duration \"5x\": expected <number><unit> with unit ms, s, m, h or d, or an "
            "integer of milliseconds");
    expect1("{'name': 'w', 'timeout': 0, 'steps': [" TASK("a") "]}", "timeout",
            "must be greater than 0");
    expect1("{'name': 'w', 'timeout': -5, 'steps': [" TASK("a") "]}", "timeout",
            "must not be negative");
    expect1("{'name': 'w', 'timeout': 1.5, 'steps': [" TASK("a") "]}", "timeout",
            "must be a duration such as \"30s\" or an integer of milliseconds");
    expect1("{'name': 'w', 'on_failure': 'maybe', 'steps': [" TASK("a") "]}", "on_failure",
            "must be one of compensate, fail");
    expect_jq("{'name': 'w', 'output': '${ !! }', 'steps': [" TASK("a") "]}", "output");
    expect1("{'name': 'w'}", "steps", "is required");
    expect1("{'name': 'w', 'steps': []}", "steps", "must not be empty");
    expect1("{'name': 'w', 'steps': 'x'}", "steps", "must be a list of steps");
    expect1("{'name': 'w', 'steps': null}", "steps", "must be a list of steps");
}

TEST(name_length)
{
    char name[200], text[400];

    memset(name, 'a', 128);
    name[128] = '\0';
    snprintf(text, sizeof(text), "{'name': '%s', 'steps': [" TASK("a") "]}", name);
    def_unref(compile_ok(text));
    memset(name, 'a', 129);
    name[129] = '\0';
    snprintf(text, sizeof(text), "{'name': '%s', 'steps': [" TASK("a") "]}", name);
    expect1(text, "name",
            "must be 1 to 128 characters of a-z, 0-9, \".\", \"_\" and \"-\", starting with a "
            "letter or a digit");
}

TEST(jq_errors_point_at_the_leaf)
{
    struct def_problems p = {0};
    struct def *d = NULL;
    json_t *doc = J(STEPS(TASK("a") ", {'name': 'b', 'type': 'task', 'queue': 'q',"
                                    " 'input': {'sku': '${ !! }', 'ok': '${ .a }'}}"));

    is_int(def_compile(doc, &d, &p), WFO_EDEFINITION, "fails");
    is_int(p.n, 1, "one problem");
    if (p.n == 1) {
        is_str(p.items[0].path, "steps[1].input.sku", "path at the leaf");
        ok(strncmp(p.items[0].message, "jq: ", 4) == 0, "jq message: %s", p.items[0].message);
    }
    def_problems_release(&p);
    json_decref(doc);

    expect_jq(STEPS("{'name': 'a', 'type': 'exec', 'command': ['ls', '${ !! }']}"),
              "steps[0].command[1]");
    expect_jq(STEPS("{'name': 'a', 'type': 'switch', 'cases': [{'when': '${ !! }',"
                    " 'next': 'a'}]}"),
              "steps[0].cases[0].when");
    expect_jq("{'name': 'w', 'triggers': [{'event': 'e', 'input': {'x': ['${ !! }']}}],"
              " 'steps': [" TASK("a") "]}",
              "triggers[0].input.x[0]");
    expect_jq(STEPS("{'name': 'a', 'type': 'task', 'queue': 'q', 'if': '${ !! }'}"), "steps[0].if");
    /* Every expression of one template that fails is a problem, each at its
     * leaf, not just the first (wfo validate prints each problem). */
    expect_has(STEPS("{'name': 'a', 'type': 'set', 'vars': {'x': '${ ( }', 'ok': '${ 1 }',"
                     " 'y': '${ ) }', 'z': [1, '${ .a | }']}}"),
               "steps[0].vars.x", "jq: syntax error, unexpected $end at line 1");
    expect_has(STEPS("{'name': 'a', 'type': 'set', 'vars': {'x': '${ ( }', 'y': '${ ) }'}}"),
               "steps[0].vars.y", "jq: syntax error, unexpected INVALID_CHARACTER at line 1");
    expect_has(
        STEPS("{'name': 'a', 'type': 'set', 'vars': {'x': '${ ( }', 'z': [1, '${ .a | }']}}"),
        "steps[0].vars.z[1]", "jq: syntax error, unexpected $end at line 1");
    /* The sandbox of core/expr.h is enforced when the definition compiles. */
    expect_jq_says(STEPS("{'name': 'a', 'type': 'task', 'queue': 'q', 'input': {'h': '${ env }'}}"),
                   "steps[0].input.h", "env");
    expect_jq_says(STEPS("{'name': 'a', 'type': 'succeed', 'output': '${ input }'}"),
                   "steps[0].output", "input");
}

TEST(step_errors)
{
    expect1(STEPS("3"), "steps[0]", "must be an object");
    expect1(STEPS("'task'"), "steps[0]", "must be an object");
    expect1(STEPS("{'type': 'task', 'queue': 'q'}"), "steps[0].name", "is required");
    expect1(STEPS("{'name': '', 'type': 'task', 'queue': 'q'}"), "steps[0].name",
            "must not be empty");
    expect1(STEPS("{'name': 'a/b', 'type': 'task', 'queue': 'q'}"), "steps[0].name",
            "must not contain \"/\", \"[\", \"]\" or \":\"");
    expect1(STEPS("{'name': 'a[1]', 'type': 'task', 'queue': 'q'}"), "steps[0].name",
            "must not contain \"/\", \"[\", \"]\" or \":\"");
    expect1(STEPS("{'name': 'a:compensate', 'type': 'task', 'queue': 'q'}"), "steps[0].name",
            "must not contain \"/\", \"[\", \"]\" or \":\"");
    expect1(STEPS("{'name': 'a\\nb', 'type': 'task', 'queue': 'q'}"), "steps[0].name",
            "must not contain control characters");
    expect1(STEPS("{'name': 5, 'type': 'task', 'queue': 'q'}"), "steps[0].name",
            "must be a string");
    expect1(STEPS(TASK("charge") "," TASK("b") "," TASK("charge")), "steps[2].name",
            "duplicate step name \"charge\" (first at steps[0])");
    expect1(STEPS("{'name': 'a', 'queue': 'q'}"), "steps[0].type", "is required");
    expect1(STEPS("{'name': 'a', 'type': 'tsk', 'queue': 'q'}"), "steps[0].type",
            "unknown step type \"tsk\"");
    expect1(STEPS("{'name': 'a', 'type': ['task']}"), "steps[0].type", "must be a string");
    expect_has(STEPS("{'name': 'a', 'type': 'task', 'qeue': 'q'}"), "steps[0].qeue",
               "unknown field \"qeue\"");
    expect_has(STEPS("{'name': 'a', 'type': 'task', 'qeue': 'q'}"), "steps[0].queue",
               "is required");
    expect1(STEPS("{'name': 'a', 'type': 'task', 'queue': 'q', 'vars': {}}"), "steps[0].vars",
            "\"vars\" is not a field of task steps");
    expect1(STEPS(TASK("a") ", {'name': 'b', 'type': 'task', 'queue': 'q', 'next': 'nowhere'}"),
            "steps[1].next", "step \"nowhere\" does not exist");
    expect1(STEPS("{'name': 'a', 'type': 'task', 'queue': 'q', 'next': 3}"), "steps[0].next",
            "must be a string");
    expect1(STEPS("{'name': 'a', 'type': 'task', 'queue': 'q', 'next': 'a', 'end': true}"),
            "steps[0].end", "cannot be true when \"next\" is set");
    expect1(STEPS("{'name': 'a', 'type': 'task', 'queue': 'q', 'end': 'yes'}"), "steps[0].end",
            "must be a boolean");
    expect1(STEPS("{'name': 'a', 'type': 'task', 'queue': 'q', 'timeout': '0s'}"),
            "steps[0].timeout", "must be greater than 0");
    expect1(STEPS("{'name': 'a', 'type': 'succeed', 'next': 'a'}"), "steps[0].next",
            "not allowed on a succeed step: it ends the workflow");
    expect1(STEPS("{'name': 'a', 'type': 'switch', 'cases': [{'when': true, 'next': 'a'}],"
                  " 'next': 'a'}"),
            "steps[0].next", "not allowed on a switch step (use \"default\")");
}

TEST(retry_errors)
{
#define R(retry) STEPS("{'name': 'a', 'type': 'task', 'queue': 'q', 'retry': " retry "}")
    expect1(R("5"), "steps[0].retry", "must be an object");
    expect1(R("{'max_attempts': 0}"), "steps[0].retry.max_attempts", "must be at least 1");
    expect1(R("{'max_attempts': 'x'}"), "steps[0].retry.max_attempts", "must be an integer");
    expect1(R("{'max_attempts': 2.5}"), "steps[0].retry.max_attempts", "must be an integer");
    expect1(R("{'max_attempts': 99999999999}"), "steps[0].retry.max_attempts",
            "must be at most 1000000");
    expect1(R("{'backoff': 0.5}"), "steps[0].retry.backoff", "must be at least 1");
    expect1(R("{'backoff': '2'}"), "steps[0].retry.backoff", "must be a number");
    expect1(R("{'jitter': 1.5}"), "steps[0].retry.jitter", "must be between 0 and 1");
    expect1(R("{'jitter': -0.1}"), "steps[0].retry.jitter", "must be between 0 and 1");
    expect1(R("{'initial_interval': 'soon'}"), "steps[0].retry.initial_interval",
            "bad duration \"soon\": expected <number><unit> with unit ms, s, m, h or d, or an "
            "integer of milliseconds");
    expect1(R("{'initial_interval': '10s', 'max_interval': '1s'}"), "steps[0].retry.max_interval",
            "must not be less than initial_interval");
    expect1(R("{'max_attempts': 2, 'maxattempts': 3}"), "steps[0].retry.maxattempts",
            "unknown field \"maxattempts\"");
    expect1(R("{'non_retryable': 'X'}"), "steps[0].retry.non_retryable",
            "must be a list of strings");
    expect1(R("{'non_retryable': ['X', 1]}"), "steps[0].retry.non_retryable[1]",
            "must be a string");
#undef R
}

/* A policy on its own (the server's default, SPEC 6): the same rules, its
 * problems under the path given, keys left out at SPEC's defaults. */
TEST(retry_alone)
{
    struct def_problems p = {0};
    struct def_retry r;
    json_t *v = J("{'max_attempts': 0, 'jitter': 5, 'bogus': 1}");

    is_int(def_retry_compile(v, "retry", &r, &p), WFO_EDEFINITION, "bad policy fails");
    is_int(p.n, 3, "every problem");
    if (p.n == 3) {
        is_str(p.items[0].path, "retry.max_attempts", "path under retry");
        is_str(p.items[0].message, "must be at least 1", "message of a step's retry");
        is_str(p.items[1].path, "retry.jitter", "second problem");
        is_str(p.items[2].path, "retry.bogus", "unknown field");
    }
    def_problems_release(&p);
    json_decref(v);

    v = J("5");
    is_int(def_retry_compile(v, "", NULL, &p), WFO_EDEFINITION, "not an object");
    is_int(p.n, 1, "one problem");
    if (p.n == 1)
        is_str(p.items[0].path, "", "empty path");
    def_problems_release(&p);
    json_decref(v);

    v = J("{'max_attempts': 5, 'initial_interval': '2s', 'non_retryable': ['X']}");
    is_int(def_retry_compile(v, "retry", &r, &p), 0, "good policy");
    is_int(p.n, 0, "no problem");
    is_int(r.max_attempts, 5, "max_attempts");
    is_int(r.initial_ms, 2000, "initial_interval");
    is_int(r.max_ms, 60000, "max_interval: SPEC's");
    ok(r.non_retryable && r.non_retryable[0] && !strcmp(r.non_retryable[0], "X") &&
           !r.non_retryable[1],
       "non_retryable");
    def_retry_release(&r);
    ok(r.non_retryable == NULL, "released");
    is_int(def_retry_compile(v, "retry", NULL, &p), 0, "check only");
    json_decref(v);
}

TEST(catch_errors)
{
#define C(catch) STEPS("{'name': 'a', 'type': 'task', 'queue': 'q', 'catch': " catch "}," TASK("b"))
    expect1(C("'x'"), "steps[0].catch", "must be a list");
    expect1(C("[]"), "steps[0].catch", "must not be empty");
    expect1(C("[3]"), "steps[0].catch[0]", "must be an object");
    expect1(C("[{'errors': [], 'next': 'b'}]"), "steps[0].catch[0].errors", "must not be empty");
    expect1(C("[{'errors': 'X', 'next': 'b'}]"), "steps[0].catch[0].errors",
            "must be a list of strings");
    expect1(C("[{'errors': ['X']}]"), "steps[0].catch[0].next", "is required");
    expect1(C("[{'next': 'b'}]"), "steps[0].catch[0].errors", "is required");
    expect1(C("[{'errors': ['X'], 'next': 'b'}, {'errors': ['Y'], 'next': 'zz'}]"),
            "steps[0].catch[1].next", "step \"zz\" does not exist");
    expect1(C("[{'errors': ['X'], 'next': 'b', 'then': 1}]"), "steps[0].catch[0].then",
            "unknown field \"then\"");
#undef C
}

TEST(compensate_errors)
{
#define K(comp)                                                                                    \
    STEPS("{'name': 'a', 'type': 'task', 'queue': 'q', 'compensate': " comp "}," TASK("b"))
    expect1(K("5"), "steps[0].compensate", "must be a step or a list of steps");
    expect1(K("[]"), "steps[0].compensate", "must not be empty");
    expect1(K("{'queue': 'u'}"), "steps[0].compensate.type", "is required");
    expect1(K("{'type': 'task', 'queue': 'u', 'next': 'b'}"), "steps[0].compensate.next",
            "not allowed in a compensation");
    expect1(K("{'type': 'task', 'queue': 'u', 'end': true}"), "steps[0].compensate.end",
            "not allowed in a compensation");
    expect1(K("{'type': 'task', 'queue': 'u', 'catch': []}"), "steps[0].compensate.catch",
            "not allowed in a compensation");
    expect1(K("{'type': 'task', 'queue': 'u', 'compensate': {'type': 'compensate'}}"),
            "steps[0].compensate.compensate", "not allowed in a compensation");
    expect1(K("[{'type': 'task', 'queue': 'u'}, {'type': 'task'}]"), "steps[0].compensate[1].queue",
            "is required");
    expect1(K("[{'type': 'compensate'}]"), "steps[0].compensate[0].type",
            "a compensation cannot be a compensate step");
    expect1(K("[2]"), "steps[0].compensate[0]", "must be an object");
#undef K
}

TEST(task_http_exec_errors)
{
    expect1(STEPS("{'name': 'a', 'type': 'task'}"), "steps[0].queue", "is required");
    expect1(STEPS("{'name': 'a', 'type': 'task', 'queue': ''}"), "steps[0].queue",
            "must not be empty");
    expect1(STEPS("{'name': 'a', 'type': 'task', 'queue': 3}"), "steps[0].queue",
            "must be a string");
    expect1(STEPS("{'name': 'a', 'type': 'task', 'queue': 'q', 'heartbeat_timeout': 'x'}"),
            "steps[0].heartbeat_timeout",
            "bad duration \"x\": expected <number><unit> with unit ms, s, m, h or d, or an "
            "integer of milliseconds");

#define H(rest) STEPS("{'name': 'a', 'type': 'http', " rest "}")
    expect_has(H("'x': 1, 'accept_status': [200]"), "steps[0].x", "unknown field \"x\"");
    expect_has(H("'accept_status': [200]"), "steps[0].request", "is required");
    expect1(H("'request': 'http://x'"), "steps[0].request", "must be an object or an expression");
    expect1(H("'request': {'url': 'http://x', 'method': 'FETCH'}"), "steps[0].request.method",
            "must be one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS");
    expect1(H("'request': {'url': 'http://x', 'method': 1}"), "steps[0].request.method",
            "must be a string");
    def_unref(compile_ok(H("'request': {'url': '${ .input.url }', 'method': '${ .input.m }'}")));
    /* one expression for the whole request (SPEC 2.1), a method in any case */
    def_unref(compile_ok(H("'request': '${ {url: .input.url} }'")));
    def_unref(compile_ok(H("'request': {'url': 'http://x', 'method': 'post'}")));
    def_unref(compile_ok(STEPS("{'name': 'a', 'type': 'set', 'vars': '${ {n: 1} }'}")));
    expect1(STEPS("{'name': 'a', 'type': 'set', 'vars': 'n'}"), "steps[0].vars",
            "must be an object or an expression");
    expect1(H("'request': {'url': 'ftp://x'}"), "steps[0].request.url",
            "must start with http:// or https://");
    expect1(H("'request': {'method': 'GET'}"), "steps[0].request.url", "is required");
    expect1(H("'request': {'url': 'http://x', 'verb': 'GET'}"), "steps[0].request.verb",
            "unknown field \"verb\"");
    expect1(H("'request': {'url': 'http://x', 'headers': 5}"), "steps[0].request.headers",
            "must be an object or an expression");
    expect1(H("'request': {'url': 'http://x', 'headers': {'A': {'b': 1}}}"),
            "steps[0].request.headers.A", "must be a string, number or boolean");
    expect1(H("'request': {'url': 'http://x', 'headers': {'A': [1]}}"),
            "steps[0].request.headers.A", "must be a string, number or boolean");
    expect1(H("'request': {'url': 'http://x', 'query': {'a': [1, {}]}}"),
            "steps[0].request.query.a[1]", "must be a string, number or boolean");
    /* a number or boolean is sent as its text; a query value may be a list */
    def_unref(compile_ok(H("'request': {'url': 'http://x', 'headers': {'A': 1, 'B': true},"
                           " 'query': {'p': 2, 'f': false, 'l': [1, 'x', null], 'n': null}}")));
    expect1(H("'request': {'url': 'http://x', 'timeout': '2y'}"), "steps[0].request.timeout",
            "bad duration \"2y\": expected <number><unit> with unit ms, s, m, h or d, or an "
            "integer of milliseconds");
    expect1(H("'request': {'url': 'http://x'}, 'accept_status': [200, 99]"),
            "steps[0].accept_status[1]", "must be an integer from 100 to 599");
    expect1(H("'request': {'url': 'http://x'}, 'accept_status': [600]"),
            "steps[0].accept_status[0]", "must be an integer from 100 to 599");
    expect1(H("'request': {'url': 'http://x'}, 'accept_status': 200"), "steps[0].accept_status",
            "must be a list of integers");
#undef H

#define E(rest) STEPS("{'name': 'a', 'type': 'exec', " rest "}")
    expect_has(E("'cwd': '/'"), "steps[0].command", "is required");
    expect1(E("'command': []"), "steps[0].command", "must not be empty");
    expect1(E("'command': 'ls -l'"), "steps[0].command",
            "must be a list of strings or an expression");
    expect1(E("'command': ['ls', [3]]"), "steps[0].command[1]",
            "must be a string, number or boolean");
    expect1(E("'command': ['ls', null]"), "steps[0].command[1]",
            "must be a string, number or boolean");
    def_unref(compile_ok(E("'command': ['sleep', 1, true], 'env': {'N': 5, 'B': false}")));
    def_unref(compile_ok(E("'command': '${ .input.argv }', 'env': '${ .input.env }'")));
    expect1(E("'command': ['ls'], 'env': 3"), "steps[0].env", "must be an object or an expression");
    expect1(E("'command': ['ls'], 'env': {'A': {}}"), "steps[0].env.A",
            "must be a string, number or boolean");
    expect1(E("'command': ['ls'], 'env': {'A=B': 'c'}"), "steps[0].env.A=B",
            "must be a variable name (not empty, no \"=\")");
    expect1(E("'command': ['ls'], 'cwd': 3"), "steps[0].cwd", "must be a string");
#undef E
}

TEST(set_switch_errors)
{
    expect1(STEPS("{'name': 'a', 'type': 'set'}"), "steps[0].vars", "is required");
    expect1(STEPS("{'name': 'a', 'type': 'set', 'vars': [1]}"), "steps[0].vars",
            "must be an object or an expression");

#define S(rest) STEPS("{'name': 'a', 'type': 'switch', " rest "}," TASK("b"))
    expect1(S("'default': 'b'"), "steps[0].cases", "is required");
    expect1(S("'cases': []"), "steps[0].cases", "must not be empty");
    expect1(S("'cases': {}"), "steps[0].cases", "must be a list");
    expect1(S("'cases': [{'next': 'b'}]"), "steps[0].cases[0].when", "is required");
    expect1(S("'cases': [{'when': true}]"), "steps[0].cases[0].next", "is required");
    expect1(S("'cases': [{'when': true, 'next': 'b'}, {'when': 1, 'next': 'c'}]"),
            "steps[0].cases[1].next", "step \"c\" does not exist");
    expect1(S("'cases': [{'when': true, 'next': 'b', 'then': 1}]"), "steps[0].cases[0].then",
            "unknown field \"then\"");
    expect1(S("'cases': [{'when': true, 'next': 'b'}], 'default': 'nope'"), "steps[0].default",
            "step \"nope\" does not exist");
#undef S
}

TEST(parallel_foreach_errors)
{
#define P(rest) STEPS("{'name': 'top', 'type': 'parallel', " rest "}")
    expect1(P("'mode': 'all'"), "steps[0].branches", "is required");
    expect1(P("'branches': []"), "steps[0].branches", "must not be empty");
    expect1(P("'branches': 'a'"), "steps[0].branches", "must be a list");
    expect1(P("'branches': [{'name': 'a', 'steps': [" TASK("x") "]}], 'mode': 'some'"),
            "steps[0].mode", "must be one of all, any");
    expect1(P("'branches': [{'name': 'a', 'steps': [" TASK("x") "]},"
                                                                " {'name': 'a', 'steps': [" TASK(
                                                                    "x") "]}]"),
            "steps[0].branches[1].name",
            "duplicate branch name \"a\" (first at steps[0].branches[0])");
    expect1(P("'branches': [{'name': 'a/b', 'steps': [" TASK("x") "]}]"),
            "steps[0].branches[0].name", "must not contain \"/\", \"[\", \"]\" or \":\"");
    expect1(P("'branches': [{'name': 'a'}]"), "steps[0].branches[0].steps", "is required");
    expect1(P("'branches': [{'steps': [" TASK("x") "]}]"), "steps[0].branches[0].name",
            "is required");
    expect1(P("'branches': [{'name': 'a', 'steps': []}]"), "steps[0].branches[0].steps",
            "must not be empty");
    expect1(P("'branches': [{'name': 'a', 'steps': [" TASK("x") "], 'when': 1}]"),
            "steps[0].branches[0].when", "unknown field \"when\"");
    expect1(P("'branches': [{'name': 'a', 'steps': [" TASK(
                "x") "]},"
                     " {'name': 'b', 'steps': [" TASK("x") ", {'name': 'y', 'type': 'task'}]}]"),
            "steps[0].branches[1].steps[1].queue", "is required");
    /* A jump leaves no block. */
    expect1(P("'branches': [{'name': 'a', 'steps': [{'name': 'x', 'type': 'task', 'queue': 'q',"
              " 'next': 'top'}]}]"),
            "steps[0].branches[0].steps[0].next", "step \"top\" does not exist");
    expect1(STEPS(TASK("x") ", {'name': 'p', 'type': 'parallel', 'branches': [{'name': 'a',"
                            " 'steps': [" TASK("y") "," TASK("x") "," TASK("y") "]}]}"),
            "steps[1].branches[0].steps[2].name",
            "duplicate step name \"y\" (first at steps[1].branches[0].steps[0])");
#undef P

#define F(rest) STEPS("{'name': 'f', 'type': 'foreach', " rest "}")
    expect1(F("'steps': [" TASK("x") "]"), "steps[0].items", "is required");
    expect1(F("'items': [1]"), "steps[0].steps", "is required");
    expect1(F("'items': 5, 'steps': [" TASK("x") "]"), "steps[0].items",
            "must be a list or an expression");
    expect1(F("'items': [], 'concurrency': 0, 'steps': [" TASK("x") "]"), "steps[0].concurrency",
            "must be at least 1");
    expect1(F("'items': [], 'concurrency': 'x', 'steps': [" TASK("x") "]"), "steps[0].concurrency",
            "must be an integer");
    expect1(F("'items': [], 'steps': [{'name': 'x', 'type': 'task'}]"), "steps[0].steps[0].queue",
            "is required");
    expect1(F("'items': [], 'steps': [{'name': 'x', 'type': 'task', 'queue': 'q', 'next': 'f'}]"),
            "steps[0].steps[0].next", "step \"f\" does not exist");
#undef F
}

TEST(sleep_await_emit_workflow_fail_errors)
{
    expect1(STEPS("{'name': 'a', 'type': 'sleep'}"), "steps[0]", "needs \"duration\" or \"until\"");
    expect1(STEPS("{'name': 'a', 'type': 'sleep', 'duration': '1s', 'until': "
                  "'2030-01-01T00:00:00Z'}"),
            "steps[0].until", "cannot be used with \"duration\"");
    expect1(STEPS("{'name': 'a', 'type': 'sleep', 'duration': '5x'}"), "steps[0].duration",
            "bad duration \"5x\": expected <number><unit> with unit ms, s, m, h or d, or an "
            "integer of milliseconds");
    expect1(STEPS("{'name': 'a', 'type': 'sleep', 'duration': {}}"), "steps[0].duration",
            "must be a duration such as \"30s\" or an integer of milliseconds");
    def_unref(compile_ok(STEPS("{'name': 'a', 'type': 'sleep', 'duration': '${ .input.d }'}")));
    def_unref(compile_ok(STEPS("{'name': 'a', 'type': 'sleep', 'duration': 1500}")));
    expect1(STEPS("{'name': 'a', 'type': 'sleep', 'until': 'tomorrow'}"), "steps[0].until",
            "bad time \"tomorrow\": expected an RFC 3339 time such as 2026-01-02T15:04:05Z");
    expect1(STEPS("{'name': 'a', 'type': 'sleep', 'until': 5}"), "steps[0].until",
            "must be a string");

#define A(rest) STEPS("{'name': 'a', 'type': 'await_event', " rest "}")
    expect1(A("'timeout': '1s'"), "steps[0]", "needs \"event\" or \"signal\"");
    expect1(A("'event': 'e', 'key': 'k', 'signal': 's'"), "steps[0].signal",
            "cannot be used with \"event\"");
    expect1(A("'event': 'e'"), "steps[0].key", "is required with \"event\"");
    expect1(A("'signal': 's', 'key': 'k'"), "steps[0].key", "is only used with \"event\"");
    expect1(A("'event': 5, 'key': 'k'"), "steps[0].event", "must be a string");
    expect1(A("'event': '${ .x }', 'key': 'k'"), "steps[0].event",
            "must be a constant, not an expression");
    expect1(A("'signal': ''"), "steps[0].signal", "must not be empty");
#undef A

#define M(rest) STEPS("{'name': 'a', 'type': 'emit', " rest "}")
    expect1(M("'input': {}"), "steps[0].event", "is required");
    expect1(M("'event': {}"), "steps[0].event.type", "is required");
    expect1(M("'event': 'x'"), "steps[0].event", "must be an object or an expression");
    expect1(M("'event': {'type': 'a', 'extra': 1}"), "steps[0].event.extra",
            "unknown field \"extra\"");
    expect1(M("'event': {'type': 3}"), "steps[0].event.type", "must be a string");
    def_unref(compile_ok(M("'event': {'type': '${ .input.t }', 'data': [1]}")));
#undef M

    expect1(STEPS("{'name': 'a', 'type': 'workflow'}"), "steps[0].workflow", "is required");
    expect1(STEPS("{'name': 'a', 'type': 'workflow', 'workflow': 'Bad!'}"), "steps[0].workflow",
            "must be 1 to 128 characters of a-z, 0-9, \".\", \"_\" and \"-\", starting with a "
            "letter or a digit");
    expect1(STEPS("{'name': 'a', 'type': 'workflow', 'workflow': 'c', 'version': 0}"),
            "steps[0].version", "must be at least 1");
    expect1(STEPS("{'name': 'a', 'type': 'compensate', 'queue': 'q'}"), "steps[0].queue",
            "\"queue\" is not a field of compensate steps");
    expect1(STEPS("{'name': 'a', 'type': 'fail'}"), "steps[0].error", "is required");
    expect1(STEPS("{'name': 'a', 'type': 'fail', 'error': {'message': 'm'}}"),
            "steps[0].error.type", "is required");
    def_unref(compile_ok(STEPS("{'name': 'a', 'type': 'fail', 'error': '${ .error }'}")));
}

TEST(trigger_errors)
{
#define TR(t) "{'name': 'w', 'triggers': " t ", 'steps': [" TASK("a") "]}"
    expect1(TR("5"), "triggers", "must be a list");
    expect1(TR("[5]"), "triggers[0]", "must be an object");
    expect1(TR("[{'input': {}}]"), "triggers[0]", "needs \"event\" or \"cron\"");
    expect1(TR("[{'event': 'e', 'cron': '* * * * *'}]"), "triggers[0].cron",
            "cannot be used with \"event\"");
    expect1(TR("[{'event': ''}]"), "triggers[0].event", "must not be empty");
    expect1(TR("[{'event': 'e', 'when': 1}]"), "triggers[0].when", "unknown field \"when\"");
    expect1(TR("[{'cron': 5}]"), "triggers[0].cron", "must be a string");
    expect1(TR("[{'event': 'e'}, {'cron': '* * *'}]"), "triggers[1].cron",
            "bad cron \"* * *\": expected 5 fields (minute hour day-of-month month "
            "day-of-week), got 3");
    expect1(TR("[{'cron': '61 * * * *'}]"), "triggers[0].cron",
            "bad cron \"61 * * * *\": minute: 61 is out of range 0-59");
    expect1(TR("[{'cron': '* 24 * * *'}]"), "triggers[0].cron",
            "bad cron \"* 24 * * *\": hour: 24 is out of range 0-23");
    expect1(TR("[{'cron': '* * 0 * *'}]"), "triggers[0].cron",
            "bad cron \"* * 0 * *\": day-of-month: 0 is out of range 1-31");
    expect1(TR("[{'cron': '* * * 1-13 *'}]"), "triggers[0].cron",
            "bad cron \"* * * 1-13 *\": month: 13 is out of range 1-12");
    expect1(TR("[{'cron': '* * * * 8'}]"), "triggers[0].cron",
            "bad cron \"* * * * 8\": day-of-week: 8 is out of range 0-7");
    expect1(TR("[{'cron': '*/0 * * * *'}]"), "triggers[0].cron",
            "bad cron \"*/0 * * * *\": minute: step must be at least 1");
    expect1(TR("[{'cron': '5-3 * * * *'}]"), "triggers[0].cron",
            "bad cron \"5-3 * * * *\": minute: range 5-3 is backwards");
    expect1(TR("[{'cron': 'a * * * *'}]"), "triggers[0].cron",
            "bad cron \"a * * * *\": minute: bad item \"a\"");
    expect1(TR("[{'cron': '1,,2 * * * *'}]"), "triggers[0].cron",
            "bad cron \"1,,2 * * * *\": minute: empty list item");
    expect1(TR("[{'cron': '1- * * * *'}]"), "triggers[0].cron",
            "bad cron \"1- * * * *\": minute: bad item \"1-\"");
    expect1(TR("[{'cron': '@daily'}]"), "triggers[0].cron",
            "bad cron \"@daily\": expected 5 fields (minute hour day-of-month month "
            "day-of-week), got 1");
    expect1(TR("[{'cron': '0 0 30 2 *'}]"), "triggers[0].cron",
            "bad cron \"0 0 30 2 *\": never fires (no day matches)");
    def_unref(compile_ok(TR("[{'cron': ' 0,15,30,45 */2 1-31/3 * 1-5 '}, {'cron': "
                            "'59 23 31 12 7'}]")));
#undef TR
}

TEST(every_problem_at_once)
{
    struct def_problems p = {0};
    struct def *d = NULL;
    json_t *doc = J("{'name': 'W', 'bogus': 1, 'steps': ["
                    "{'name': 'a', 'type': 'task', 'retry': {'max_attempts': 0}},"
                    "{'name': 'a', 'type': 'http', 'request': {'url': 'x'}, 'next': 'zz'},"
                    "{'name': 'c', 'type': 'tsk'}]}");
    static const char *const want[][2] = {
        {"name", "must be 1 to 128 characters of a-z, 0-9, \".\", \"_\" and \"-\", starting "
                 "with a letter or a digit"},
        {"bogus", "unknown field \"bogus\""},
        {"steps[0].retry.max_attempts", "must be at least 1"},
        {"steps[0].queue", "is required"},
        {"steps[1].name", "duplicate step name \"a\" (first at steps[0])"},
        {"steps[1].request.url", "must start with http:// or https://"},
        {"steps[1].next", "step \"zz\" does not exist"},
        {"steps[2].type", "unknown step type \"tsk\""},
    };

    is_int(def_compile(doc, &d, &p), WFO_EDEFINITION, "fails");
    ok(d == NULL, "no definition");
    is_int(p.n, (int)WFO_ARRAY_SIZE(want), "every problem");
    for (int i = 0; i < p.n && i < (int)WFO_ARRAY_SIZE(want); i++) {
        is_str(p.items[i].path, want[i][0], "problem %d path", i);
        is_str(p.items[i].message, want[i][1], "problem %d message", i);
    }
    /* Problems are appended: a second document adds to the same list. */
    struct def *d2 = NULL;
    json_t *doc2 = J("{'name': 'w'}");
    is_int(def_compile(doc2, &d2, &p), WFO_EDEFINITION, "second fails");
    is_int(p.n, (int)WFO_ARRAY_SIZE(want) + 1, "appended");
    is_str(p.items[p.n - 1].path, "steps", "appended path");
    def_problems_release(&p);
    is_int(p.n, 0, "released");
    ok(p.items == NULL, "released items");
    json_decref(doc);
    json_decref(doc2);

    def_problems_add(&p, "a.b", "x %d", 3);
    is_str(p.items[0].path, "a.b", "def_problems_add path");
    is_str(p.items[0].message, "x 3", "def_problems_add message");
    def_problems_release(&p);
}

/* ---- hostile documents ---- */

static json_t *nest_parallel(int levels)
{
    json_t *steps = json_pack("[{s:s, s:s, s:s}]", "name", "x", "type", "task", "queue", "q");

    for (int i = 0; i < levels; i++)
        steps = json_pack("[{s:s, s:s, s:[{s:s, s:o}]}]", "name", "p", "type", "parallel",
                          "branches", "name", "b", "steps", steps);
    return json_pack("{s:s, s:o}", "name", "w", "steps", steps);
}

TEST(deep_nesting)
{
    struct def_problems p = {0};
    struct def *d = NULL;
    struct wfo_buf want = WFO_BUF_INIT;
    json_t *doc = nest_parallel(31); /* 32 blocks: the most allowed */

    is_int(def_compile(doc, &d, &p), 0, "32 blocks compile");
    def_unref(d);
    json_decref(doc);
    d = NULL;

    doc = nest_parallel(40);
    is_int(def_compile(doc, &d, &p), WFO_EDEFINITION, "41 blocks fail");
    is_int(p.n, 1, "one problem");
    wfo_buf_adds(&want, "steps");
    for (int i = 0; i < 32; i++)
        wfo_buf_adds(&want, "[0].branches[0].steps");
    if (p.n == 1) {
        is_str(p.items[0].path, want.buf, "at the 33rd block");
        is_str(p.items[0].message, "blocks nested too deeply", "message");
    }
    wfo_buf_release(&want);
    def_problems_release(&p);
    json_decref(doc);

    /* Compensations nest too: a parallel compensation with compensations. */
    json_t *comp = json_pack("{s:s, s:s}", "type", "task", "queue", "q");
    for (int i = 0; i < 60; i++)
        comp = json_pack("{s:s, s:[{s:s, s:[{s:s, s:s, s:s, s:o}]}]}", "type", "parallel",
                         "branches", "name", "b", "steps", "name", "x", "type", "task", "queue",
                         "q", "compensate", comp);
    doc = json_pack("{s:s, s:[{s:s, s:s, s:s, s:o}]}", "name", "w", "steps", "name", "a", "type",
                    "task", "queue", "q", "compensate", comp);
    is_int(def_compile(doc, &d, &p), WFO_EDEFINITION, "deep compensations fail");
    ok(p.n >= 1 && (strcmp(p.items[0].message, "blocks nested too deeply") == 0 ||
                    strcmp(p.items[0].message, "a compensation cannot be a parallel step") == 0),
       "refused: a parallel compensation");
    def_problems_release(&p);
    json_decref(doc);
}

TEST(ten_thousand_steps)
{
    struct def_problems p = {0};
    struct def *d = NULL;
    json_t *steps = json_array(), *doc;
    char name[32];

    for (int i = 0; i < 10000; i++) {
        snprintf(name, sizeof(name), "s%d", i);
        json_array_append_new(steps, json_pack("{s:s, s:s, s:s, s:s}", "name", name, "type", "task",
                                               "queue", "q", "next", i == 9999 ? "s0" : name));
    }
    doc = json_pack("{s:s, s:o}", "name", "big", "steps", steps);
    is_int(def_compile(doc, &d, &p), 0, "10,000 steps compile");
    if (d) {
        is_int(d->steps.n, 10000, "n");
        is_int(d->steps.steps[9999].next, 0, "last jumps to the first");
        is_int(d->steps.steps[5000].next, 5000, "self loop");
        is_int(def_block_find(&d->steps, "s9998"), 9998, "find");
    }
    def_unref(d);
    d = NULL;
    json_decref(doc);

    /* 10,000 steps with 3 problems each: capped. */
    steps = json_array();
    for (int i = 0; i < 10000; i++)
        json_array_append_new(steps, json_pack("{s:s, s:i, s:[]}", "name", "dup", "type", i, "zz"));
    doc = json_pack("{s:s, s:o}", "name", "big", "steps", steps);
    is_int(def_compile(doc, &d, &p), WFO_EDEFINITION, "fails");
    is_int(p.n, 1001, "capped at 1000 + 1");
    is_str(p.items[1000].message, "too many problems (only the first 1000 are listed)",
           "too many problems");
    is_str(p.items[0].path, "steps[0].type", "first");
    def_problems_release(&p);
    json_decref(doc);
}

TEST(huge_strings)
{
    struct def_problems p = {0};
    struct def *d = NULL;
    size_t n = 1 << 20;
    char *big = wfo_malloc(n + 1);
    json_t *doc;

    memset(big, 'x', n);
    big[n] = '\0';
    doc = json_pack("{s:s, s:s, s:[{s:s, s:s, s:s, s:s}]}", "name", big, "description", big,
                    "steps", "name", big, "type", big, "queue", big, big, big);
    is_int(def_compile(doc, &d, &p), WFO_EDEFINITION, "fails");
    is_int(p.n, 3, "three problems");
    if (p.n == 3) {
        is_str(p.items[0].path, "name", "name");
        ok(strlen(p.items[1].message) < 200, "message bounded: %.80s", p.items[1].message);
        is_str(p.items[1].path, "steps[0].type", "type");
        ok(strncmp(p.items[1].message, "unknown step type \"xxxx", 23) == 0 &&
               strstr(p.items[1].message, "...\""),
           "type quoted and cut");
    }
    def_problems_release(&p);
    json_decref(doc);

    /* A huge valid step name and a huge cron. */
    doc = json_pack("{s:s, s:[{s:s}], s:[{s:s, s:s, s:s}]}", "name", "w", "triggers", "cron", big,
                    "steps", "name", big, "type", "task", "queue", "q");
    is_int(def_compile(doc, &d, &p), WFO_EDEFINITION, "huge cron fails");
    is_int(p.n, 1, "one problem");
    if (p.n == 1)
        ok(strlen(p.items[0].message) < 300, "cron message bounded");
    def_problems_release(&p);
    json_decref(doc);
    free(big);
}

/* Strings with a NUL inside (jansson allows them; wfo_json_parse does not). */
TEST(embedded_nul)
{
    struct def_problems p = {0};
    struct def *d = NULL;
    json_t *doc = json_pack("{s:s, s:[{s:s#, s:s, s:s#, s:s#}]}", "name", "w", "steps", "name",
                            "a\0b", (size_t)3, "type", "task", "queue", "q\0", (size_t)2, "timeout",
                            "1s\0junk", (size_t)7);

    is_int(def_compile(doc, &d, &p), WFO_EDEFINITION, "fails");
    is_int(p.n, 3, "three problems");
    if (p.n == 3) {
        is_str(p.items[0].path, "steps[0].name", "name");
        is_str(p.items[0].message, "must not contain control characters", "name message");
        is_str(p.items[1].path, "steps[0].queue", "queue");
        is_str(p.items[1].message, "must not contain a NUL character", "queue message");
        is_str(p.items[2].path, "steps[0].timeout", "timeout");
    } else {
        dump(&p);
    }
    def_problems_release(&p);
    json_decref(doc);

    doc = json_pack("{s:s, s:[{s:s, s:s#, s:s}]}", "name", "w", "steps", "name", "a", "type",
                    "task\0x", (size_t)6, "queue", "q");
    is_int(def_compile(doc, &d, &p), WFO_EDEFINITION, "type with a NUL fails");
    is_int(p.n, 1, "one problem");
    if (p.n == 1)
        is_str(p.items[0].path, "steps[0].type", "at type");
    def_problems_release(&p);
    json_decref(doc);
}

/* Every field of every step type set to every wrong kind of value. */
TEST(wrong_types_everywhere)
{
    static const char *const fields[] = {
        "name",
        "type",
        "input",
        "output",
        "next",
        "end",
        "retry",
        "timeout",
        "catch",
        "compensate",
        "if",
        "queue",
        "schedule_timeout",
        "heartbeat_timeout",
        "request",
        "accept_status",
        "command",
        "stdin",
        "env",
        "cwd",
        "vars",
        "cases",
        "default",
        "branches",
        "mode",
        "items",
        "concurrency",
        "steps",
        "duration",
        "until",
        "event",
        "key",
        "signal",
        "workflow",
        "version",
        "error",
        "errors",
        "when",
        "method",
        "url",
    };
    const char *values[] = {"null",      "5",         "-1",          "1e300",        "'x'",
                            "''",        "true",      "[]",          "{}",           "[null]",
                            "[5]",       "['x']",     "[{}]",        "{'x': null}",  "[[[]]]",
                            "'${ !! }'", "'${ .a }'", "{'type': 5}", "[{'name': 5}]"};
    int runs = 0, crashes = 0;

    for (int t = 0; t < STEP__COUNT; t++) {
        for (size_t f = 0; f < WFO_ARRAY_SIZE(fields); f++) {
            for (size_t v = 0; v < WFO_ARRAY_SIZE(values); v++) {
                struct def_problems p = {0};
                struct def *d = NULL;
                json_t *val = J(values[v]);
                json_t *step = json_pack("{s:s, s:s}", "name", "a", "type", step_type_names[t]);
                json_t *doc = json_pack("{s:s, s:[o, {s:s, s:s}]}", "name", "w", "steps", step,
                                        "name", "b", "type", "compensate");
                int rc;

                json_object_set_new(step, fields[f], val);
                /* the same value in a compensation and a top-level field */
                json_object_set(step, "compensate", json_object_get(step, fields[f]));
                json_object_set(doc, fields[f][0] == 't' ? "timeout" : "output",
                                json_object_get(step, fields[f]));
                rc = def_compile(doc, &d, &p);
                crashes += !(rc == 0 ? d != NULL && p.n == 0 : d == NULL && p.n > 0);
                runs++;
                def_unref(d);
                def_problems_release(&p);
                json_decref(doc);
            }
        }
    }
    ok(runs > 10000, "%d documents", runs);
    is_int(crashes, 0, "every result consistent");
}

/* Random mutations of a valid document: never a crash, never a leak. */
static json_t *random_value(unsigned *seed, int depth)
{
    switch (rand_r(seed) % 11) {
    case 0:
        return json_null();
    case 1:
        return json_integer((json_int_t)(rand_r(seed) % 2000) - 1000);
    case 2:
        return json_real(rand_r(seed) / 7.0);
    case 3:
        return json_string("${ .x }");
    case 4:
        return json_string(step_type_names[rand_r(seed) % STEP__COUNT]);
    case 5:
        return json_string(rand_r(seed) % 2 ? "reserve" : "5x");
    case 6:
        return json_true();
    case 7:
        return depth > 3 ? json_array() : json_pack("[o]", random_value(seed, depth + 1));
    case 8:
        return depth > 3 ? json_object()
                         : json_pack("{s:o}", rand_r(seed) % 2 ? "type" : "name",
                                     random_value(seed, depth + 1));
    case 9:
        return json_string("* * * * *");
    default:
        return json_string("");
    }
}

static void mutate(json_t *v, unsigned *seed, int depth)
{
    if (json_is_object(v) && json_object_size(v)) {
        size_t k = (size_t)rand_r(seed) % json_object_size(v), i = 0;
        const char *key;
        json_t *e;
        void *tmp;

        json_object_foreach_safe(v, tmp, key, e)
        {
            if (i++ != k)
                continue;
            if (rand_r(seed) % 3 == 0 || depth > 6)
                json_object_set_new(v, key, random_value(seed, 0));
            else
                mutate(e, seed, depth + 1);
            break;
        }
    } else if (json_is_array(v) && json_array_size(v)) {
        size_t i = (size_t)rand_r(seed) % json_array_size(v);

        if (rand_r(seed) % 3 == 0 || depth > 6)
            json_array_set_new(v, i, random_value(seed, 0));
        else
            mutate(json_array_get(v, i), seed, depth + 1);
    }
}

TEST(random_mutations)
{
    json_t *base = J(every_type);
    unsigned seed = 12345;
    int bad = 0, valid = 0;

    for (int i = 0; i < 400; i++) { /* ~30 ms each: jq compiles */
        struct def_problems p = {0};
        struct def *d = NULL;
        json_t *doc = json_deep_copy(base);
        int rc;

        for (int m = 0; m < 1 + i % 5; m++)
            mutate(doc, &seed, 0);
        rc = def_compile(doc, &d, &p);
        if (rc == 0) {
            valid++;
            bad += d == NULL || p.n != 0;
            free(def_task_queues(d));
        } else {
            bad += d != NULL || p.n == 0;
        }
        for (int k = 0; k < p.n; k++)
            bad += p.items[k].message[0] == '\0';
        def_unref(d);
        def_problems_release(&p);
        json_decref(doc);
    }
    is_int(bad, 0, "consistent results (%d valid)", valid);
    json_decref(base);
}

/* step_type_names (for those who need only a name) spells the rows of the
 * table of kinds again; a row per type, each with a way to end. */
TEST(kinds_table)
{
    int same = 0, named = 0;

    for (int t = 0; t < STEP__COUNT; t++) {
        same += step_kinds[t].name && strcmp(step_kinds[t].name, step_type_names[t]) == 0;
        named += (step_kinds[t].fields & KEYS_COMMON) == 0 &&
                 (step_kinds[t].required & ~step_kinds[t].fields) == 0;
    }
    is_int(same, STEP__COUNT, "step_type_names[t] is step_kinds[t].name");
    is_int(named, STEP__COUNT, "a kind requires only fields it takes, beside the common ones");
}

int main(void)
{
    return tap_run();
}
