/*
 * test_doc.c - unit tests of src/core/doc.c: the documents of SPEC 3 built
 * from store rows (docs/data_model.md): the execution document with SPEC
 * 3's keys in order, its steps without compensation runs, JSON columns
 * parsed (NULL or bad text gives null), times formatted (0 gives null),
 * a history entry, a workflow version.
 */
#include <stdlib.h>
#include <string.h>

#include "core/doc.h"
#include "common/json.h"
#include "common/util.h"
#include "../tap.h"
#include "common/banned.h"

/* 2023-11-14T22:13:20.123Z */
#define T0 INT64_C(1700000000123)

static const struct store_exec exec_row = {
    .id = "e-1",
    .namespace = "ns1",
    .workflow = "order",
    .version = 3,
    .status = "failed",
    .input = "{\"sku\":\"A\",\"n\":2}",
    .output = NULL,
    .error = "{\"type\":\"Boom\",\"message\":\"no\"}",
    .compensation = "{\"status\":\"completed\"}",
    .parent = "{\"id\": \"p-9\", \"step\": \"call\"}",
    .state = "{\"private\":true}",
    .created_at = T0,
    .updated_at = T0 + 1000,
    .finished_at = 0,
};

static char *dump(const json_t *v)
{
    return wfo_json_dumps(v);
}

TEST(time_format)
{
    json_t *t = doc_time(T0);
    is_str(json_string_value(t), "2023-11-14T22:13:20.123Z", "RFC 3339 UTC with milliseconds");
    json_decref(t);
    t = doc_time(0);
    ok(json_is_null(t), "0 is null");
    json_decref(t);
}

TEST(exec_document)
{
    json_t *d = doc_exec(&exec_row);
    is_str(wfo_json_str(d, "id"), "e-1", "id");
    is_str(wfo_json_str(d, "namespace"), "ns1", "namespace");
    is_str(wfo_json_str(d, "workflow"), "order", "workflow");
    is_int(json_integer_value(json_object_get(d, "version")), 3, "version");
    is_str(wfo_json_str(d, "status"), "failed", "status");
    json_t *want = json_pack("{s:s, s:i}", "sku", "A", "n", 2);
    ok(json_equal(json_object_get(d, "input"), want), "input parsed from its text");
    json_decref(want);
    ok(json_is_null(json_object_get(d, "output")), "no output: null");
    is_str(wfo_json_str(json_object_get(d, "error"), "type"), "Boom", "error parsed");
    is_str(wfo_json_str(json_object_get(d, "compensation"), "status"), "completed",
           "compensation parsed");
    is_str(wfo_json_str(d, "created_at"), "2023-11-14T22:13:20.123Z", "created_at");
    is_str(wfo_json_str(d, "updated_at"), "2023-11-14T22:13:21.123Z", "updated_at");
    ok(json_is_null(json_object_get(d, "finished_at")), "not finished: null");
    is_str(wfo_json_str(json_object_get(d, "parent"), "id"), "p-9", "parent: its id");
    is_str(wfo_json_str(json_object_get(d, "parent"), "step"), "call", "parent: its step");
    ok(json_object_get(d, "state") == NULL, "the private state is not shown");
    ok(json_object_get(d, "steps") == NULL, "no steps in a list item");
    is_int(json_object_size(d), 13, "13 keys");
    json_decref(d);

    struct store_exec r = exec_row;
    r.parent = NULL;
    r.input = "{not json";
    r.error = NULL;
    r.compensation = NULL;
    d = doc_exec(&r);
    ok(json_is_null(json_object_get(d, "parent")), "no parent: null");
    ok(json_is_null(json_object_get(d, "input")), "bad JSON text: null");
    ok(json_is_null(json_object_get(d, "error")), "no error: null");
    ok(json_is_null(json_object_get(d, "compensation")), "no compensation: null");
    json_decref(d);
}

TEST(step_entries)
{
    struct store_step rows[] = {
        {.path = "a",
         .ord = 0,
         .status = "completed",
         .attempts = 2,
         .output = "[1,2]",
         .input = "{\"x\":1}",
         .state = "{\"token\":4}",
         .started_at = T0,
         .finished_at = T0 + 5},
        {.path = "a:compensate[0]", .ord = 1, .status = "completed", .attempts = 1},
        {.path = "each[2]/b", .ord = 2, .status = "running", .attempts = 1, .started_at = T0},
    };
    json_t *steps = json_array();
    for (int i = 0; i < 3; i++)
        doc_step(steps, &rows[i]);
    is_int(json_array_size(steps), 2, "the compensation run is left out");
    json_t *a = json_array_get(steps, 0), *b = json_array_get(steps, 1);
    is_str(wfo_json_str(a, "name"), "a", "name is the path");
    is_str(wfo_json_str(a, "status"), "completed", "status");
    is_int(json_integer_value(json_object_get(a, "attempts")), 2, "attempts");
    is_int(json_integer_value(json_object_get(json_object_get(a, "input"), "x")), 1, "input");
    is_int(json_array_size(json_object_get(a, "output")), 2, "output");
    ok(json_is_null(json_object_get(a, "error")), "no error: null");
    is_str(wfo_json_str(a, "started_at"), "2023-11-14T22:13:20.123Z", "started_at");
    is_str(wfo_json_str(a, "finished_at"), "2023-11-14T22:13:20.128Z", "finished_at");
    is_int(json_object_size(a), 8, "8 keys, no private state");
    is_str(wfo_json_str(b, "name"), "each[2]/b", "an iteration's step");
    ok(json_is_null(json_object_get(b, "input")), "no input: null");
    ok(json_is_null(json_object_get(b, "finished_at")), "running: finished_at null");
    json_decref(steps);
}

TEST(workflow_step_child)
{
    struct store_step row = {.path = "call",
                             .status = "running",
                             .attempts = 1,
                             .state = "{\"token\":3,\"child\":\"c-1\"}"};
    json_t *steps = json_array();
    doc_step(steps, &row);
    json_t *a = json_array_get(steps, 0);
    is_str(wfo_json_str(a, "child"), "c-1", "a workflow step carries its child");
    is_int(json_object_size(a), 9, "the 8 keys and child");
    json_decref(steps);
}

TEST(whole_document_in_spec_order)
{
    struct store_step rows[] = {
        {.path = "a", .ord = 0, .status = "completed", .attempts = 1, .output = "7"},
        {.path = "b", .ord = 1, .status = "failed", .attempts = 3, .error = "{\"type\":\"X\"}"},
    };
    json_t *d = doc_from_rows(&exec_row, rows, 2);
    const char *want[] = {"id",         "namespace",  "workflow",    "version",      "status",
                          "input",      "output",     "error",       "compensation", "steps",
                          "created_at", "updated_at", "finished_at", "parent"};
    size_t n = 0;
    const char *k;
    json_t *v;
    int in_order = 1;
    json_object_foreach(d, k, v)
    {
        if (n >= sizeof(want) / sizeof(*want) || strcmp(k, want[n]) != 0) {
            printf("# key %zu: %s\n", n, k);
            in_order = 0;
        }
        n++;
    }
    ok(in_order, "keys in SPEC 3's order, steps after compensation");
    is_int(n, 14, "14 keys");
    json_t *steps = json_object_get(d, "steps");
    is_int(json_array_size(steps), 2, "two steps");
    is_str(wfo_json_str(json_array_get(steps, 1), "name"), "b", "in ord order");
    is_int(json_integer_value(json_object_get(json_array_get(steps, 0), "output")), 7,
           "a scalar output");
    char *text = dump(d);
    ok(text && strstr(text, "\"compensation\":{\"status\":\"completed\"},\"steps\":[") != NULL,
       "serialized in that order: %s", text ? text : "(null)");
    free(text);
    json_decref(d);

    /* doc_assemble takes both and keeps doc_exec's values */
    json_t *part = doc_exec(&exec_row), *list = json_array();
    json_array_append_new(list, json_string("s"));
    d = doc_assemble(part, list);
    is_str(wfo_json_str(d, "id"), "e-1", "assembled: id");
    is_str(json_string_value(json_array_get(json_object_get(d, "steps"), 0)), "s",
           "assembled: the steps given");
    json_decref(d);

    d = doc_from_rows(&exec_row, NULL, 0);
    is_int(json_array_size(json_object_get(d, "steps")), 0, "no steps: an empty array");
    json_decref(d);
}

TEST(history_entry)
{
    struct store_history h = {.exec_id = "e-1",
                              .seq = 12,
                              .time = T0,
                              .type = "step.completed",
                              .step = "a",
                              .data = "{\"output\":1}"};
    json_t *e = doc_history_entry(&h);
    is_int(json_integer_value(json_object_get(e, "seq")), 12, "seq");
    is_str(wfo_json_str(e, "time"), "2023-11-14T22:13:20.123Z", "time");
    is_str(wfo_json_str(e, "type"), "step.completed", "type");
    is_str(wfo_json_str(e, "step"), "a", "step");
    is_int(json_integer_value(json_object_get(json_object_get(e, "data"), "output")), 1, "data");
    is_int(json_object_size(e), 5, "5 keys");
    json_decref(e);
    h.step = NULL;
    h.data = NULL;
    e = doc_history_entry(&h);
    ok(json_is_null(json_object_get(e, "step")), "not about a step: null");
    ok(json_is_null(json_object_get(e, "data")), "no data: null");
    json_decref(e);
}

TEST(workflow_version)
{
    struct store_workflow w = {.namespace = "ns1",
                               .name = "order",
                               .version = 4,
                               .hash = "abc",
                               .definition = "{\"name\":\"order\",\"steps\":[]}",
                               .created_at = T0};
    json_t *d = doc_workflow(&w);
    is_str(wfo_json_str(d, "name"), "order", "name");
    is_int(json_integer_value(json_object_get(d, "version")), 4, "version");
    is_str(wfo_json_str(d, "created_at"), "2023-11-14T22:13:20.123Z", "created_at");
    is_str(wfo_json_str(json_object_get(d, "definition"), "name"), "order", "definition parsed");
    ok(json_object_get(d, "hash") == NULL && json_object_get(d, "namespace") == NULL,
       "hash and namespace not shown");
    is_int(json_object_size(d), 4, "4 keys");
    json_decref(d);
    w.definition = "][";
    d = doc_workflow(&w);
    ok(json_is_null(json_object_get(d, "definition")), "bad definition text: null");
    json_decref(d);
}

int main(void)
{
    return tap_run();
}
