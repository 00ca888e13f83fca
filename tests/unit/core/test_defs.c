/*
 * test_defs.c - unit tests of src/core/defs.c, the definitions cache, on an
 * engine with an in-memory SQLite store: registering a definition (a new
 * version only when it changed, per namespace; problems of a bad one; exec
 * steps refused when disabled), reading a version or the latest (compiled
 * once and shared), the messages of a missing workflow or version, and
 * forgetting a workflow (the epoch grows, the next read compiles again).
 */
#include <stdlib.h>
#include <string.h>

#include "wfo/wfo.h"
#include "core/engine_int.h"
#include "common/json.h"
#include "common/util.h"
#include "../tap.h"
#include "common/banned.h"

static json_t *wf(const char *name, const char *queue)
{
    return json_pack("{s:s, s:[{s:s, s:s, s:s}]}", "name", name, "steps", "name", "a", "type",
                     "task", "queue", queue);
}

static struct wfo_engine *engine(int exec_enabled)
{
    struct wfo_engine_options opt = {.runner_threads = 1, .exec_enabled = exec_enabled};
    struct wfo_engine *e = NULL;
    struct wfo_error err = WFO_ERROR_INIT;
    is_int(wfo_engine_new(&opt, &e, &err), 0, "engine on a memory store: %s", err.message);
    return e;
}

/* Registers doc (taken) in ns; its version, or the negative code. */
static int put(struct wfo_engine *e, const char *ns, json_t *doc, int *created)
{
    struct wfo_error err = WFO_ERROR_INIT;
    json_t *out = NULL;
    int rc = engine_put_workflow(e, ns, doc, created, &out, NULL, &err);
    int version = rc < 0 ? rc : (int)json_integer_value(json_object_get(out, "version"));
    if (rc < 0)
        printf("# put: %s\n", err.message);
    json_decref(out);
    json_decref(doc);
    return version;
}

TEST(versions_per_namespace)
{
    struct wfo_engine *e = engine(0);
    int created = -1;
    is_int(put(e, "default", wf("w", "q1"), &created), 1, "first: version 1");
    is_int(created, 1, "created");
    is_int(put(e, "default", wf("w", "q1"), &created), 1, "the same again: still 1");
    is_int(created, 0, "not created");
    is_int(put(e, "default", wf("w", "q2"), &created), 2, "changed: version 2");
    is_int(created, 1, "created");
    is_int(put(e, "other", wf("w", "q9"), &created), 1, "another namespace counts apart");

    struct wfo_error err = WFO_ERROR_INIT;
    struct def *d1 = NULL, *d2 = NULL, *latest = NULL, *again = NULL, *o = NULL;
    is_int(engine_def(e, "default", "w", 1, &d1, &err), 0, "v1 read");
    is_int(engine_def(e, "default", "w", 2, &d2, &err), 0, "v2 read");
    is_int(engine_def(e, "default", "w", 0, &latest, &err), 0, "latest read");
    is_int(engine_def(e, "default", "w", 1, &again, &err), 0, "v1 again");
    is_int(engine_def(e, "other", "w", 0, &o, &err), 0, "the other namespace's");
    is_int(d1->version, 1, "v1 is version 1");
    is_str(d1->steps.steps[0].queue, "q1", "v1's queue");
    is_int(d2->version, 2, "v2 is version 2");
    is_str(d2->steps.steps[0].queue, "q2", "v2's queue");
    ok(latest == d2, "latest is v2, the cached one");
    ok(again == d1, "compiled once, shared");
    is_str(o->steps.steps[0].queue, "q9", "namespaces do not mix");
    ok(defs_stored(e, "default", d2), "v2 is the stored one");
    ok(!defs_stored(e, "default", o), "the other namespace's hash is not v1's");
    def_unref(d1);
    def_unref(d2);
    def_unref(latest);
    def_unref(again);
    def_unref(o);
    wfo_engine_free(e);
}

TEST(missing)
{
    struct wfo_engine *e = engine(0);
    struct wfo_error err = WFO_ERROR_INIT;
    struct def *d = NULL;
    is_int(engine_def(e, "default", "nope", 0, &d, &err), WFO_ENOTFOUND, "no such workflow");
    is_str(err.message, "workflow 'nope' not found", "its message");
    put(e, "default", wf("w", "q"), NULL);
    put(e, "default", wf("w", "r"), NULL);
    is_int(engine_def(e, "default", "w", 9, &d, &err), WFO_ENOTFOUND, "no such version");
    is_str(err.message, "workflow 'w' has no version 9 (the latest is 2)", "names the latest");
    is_int(engine_def(e, "other", "w", 0, &d, &err), WFO_ENOTFOUND, "not in another namespace");
    ok(d == NULL, "nothing returned");
    wfo_engine_free(e);
}

TEST(bad_definitions)
{
    struct wfo_engine *e = engine(0);
    struct wfo_error err = WFO_ERROR_INIT;
    json_t *problems = NULL;
    json_t *doc =
        json_pack("{s:s, s:[{s:s, s:s}]}", "name", "w", "steps", "name", "a", "type", "teleport");
    is_int(engine_put_workflow(e, "default", doc, NULL, NULL, &problems, &err), WFO_EDEFINITION,
           "an unknown step type");
    ok(json_array_size(problems) >= 1, "problems listed");
    ok(wfo_json_str(json_array_get(problems, 0), "path") != NULL, "each with a path");
    ok(strncmp(err.message, "invalid workflow definition: ", 29) == 0, "message: %s", err.message);
    json_decref(problems);
    json_decref(doc);

    problems = NULL;
    doc = json_pack("{s:s, s:[{s:s, s:s, s:[s]}]}", "name", "w", "steps", "name", "run", "type",
                    "exec", "command", "true");
    is_int(engine_put_workflow(e, "default", doc, NULL, NULL, &problems, &err), WFO_EDEFINITION,
           "exec steps refused when disabled");
    ok(strstr(err.message, "exec.enabled: false") != NULL, "says why: %s", err.message);
    json_decref(problems);
    struct def *d = NULL;
    is_int(engine_def(e, "default", "w", 0, &d, &err), WFO_ENOTFOUND, "nothing was stored");
    wfo_engine_free(e);

    e = engine(1);
    is_int(engine_put_workflow(e, "default", doc, NULL, NULL, NULL, &err), 0,
           "taken when enabled: %s", err.message);
    json_decref(doc);
    wfo_engine_free(e);
}

TEST(forget)
{
    struct wfo_engine *e = engine(0);
    put(e, "default", wf("w", "q"), NULL);
    put(e, "default", wf("w2", "q"), NULL);
    struct wfo_error err = WFO_ERROR_INIT;
    struct def *a = NULL, *b = NULL, *other = NULL, *other2 = NULL;
    engine_def(e, "default", "w", 1, &a, &err);
    engine_def(e, "default", "w2", 1, &other, &err);
    int64_t epoch = defs_epoch(e);
    defs_forget(e, "default", "w");
    is_int(defs_epoch(e), epoch + 1, "the epoch grows");
    is_int(engine_def(e, "default", "w", 1, &b, &err), 0, "read again (still stored)");
    ok(a != b, "compiled again: the cache forgot it");
    is_int(b->version, 1, "the same version");
    engine_def(e, "default", "w2", 1, &other2, &err);
    ok(other == other2, "another workflow's stays cached");
    def_unref(a);
    def_unref(b);
    def_unref(other);
    def_unref(other2);
    wfo_engine_free(e);
}

/* triggers.c: the id of a trigger's firing (T1) */
TEST(trigger_ids)
{
    char a[WFO_ID_SIZE], b[WFO_ID_SIZE];
    triggers_id(a, "default", "wf", "event", "e-1");
    triggers_id(b, "default", "wf", "event", "e-1");
    is_str(a, b, "the same (namespace, workflow, event) gives the same id");
    is_int((long long)strlen(a), 36, "UUID-shaped: 36 characters");
    ok(a[8] == '-' && a[13] == '-' && a[18] == '-' && a[23] == '-', "dashes: %s", a);
    ok(a[14] == '8' && strchr("89ab", a[19]), "version 8, RFC 4122 variant: %s", a);
    triggers_id(b, "other", "wf", "event", "e-1");
    ok(strcmp(a, b) != 0, "another namespace, another id");
    triggers_id(b, "default", "wf2", "event", "e-1");
    ok(strcmp(a, b) != 0, "another workflow, another id");
    triggers_id(b, "default", "wf", "event", "e-2");
    ok(strcmp(a, b) != 0, "another event, another id");
    triggers_id(b, "default", "wf", "cron", "e-1");
    ok(strcmp(a, b) != 0, "a cron slot never has an event's id");
}

int main(void)
{
    return tap_run();
}
