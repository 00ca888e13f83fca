/*
 * test_query.c - unit tests of src/core/query.c: every read answers in its
 * own namespace and refuses an execution or workflow of another one exactly
 * as a missing one (Q1); the list pages with its keyset cursor; history
 * pages; a wait sees the end.
 */
#include "common/compat.h"

#include <stdlib.h>
#include <string.h>

#include "wfo/wfo.h"
#include "core/query.h"
#include "common/json.h"
#include "common/util.h"
#include "../tap.h"

static const char *one_task = "name: one\nsteps:\n"
                              "  - {name: a, type: task, queue: q, input: '${ .input }'}\n";

static int echo(void *ud, const struct wfo_task *t, char **output, char **error)
{
    *output = wfo_strdup(t->input);
    return 0;
}

/* An engine on a memory store (namespace "default") with workflow one
 * and n of its executions, each ended; ids[i] gets their ids. */
static struct wfo_engine *setup(int n, char ids[][WFO_ID_SIZE])
{
    struct wfo_engine_options opt = {.runner_threads = 1};
    struct wfo_engine *e = NULL;
    struct wfo_error err = WFO_ERROR_INIT;
    is_int(wfo_engine_new(&opt, &e, &err), 0, "engine opens: %s", err.message);
    wfo_engine_handle(e, "q", echo, NULL);
    is_int(wfo_engine_launch(e, &err), 0, "engine launched: %s", err.message);
    is_int(wfo_engine_put_workflow(e, one_task, strlen(one_task), NULL, NULL, NULL, &err), 0,
           "workflow registered: %s", err.message);
    for (int i = 0; i < n; i++) {
        char *id = NULL, *doc = NULL;
        wfo_engine_start(e, "one", 0, "{\"n\": 1}", NULL, NULL, &id, &err);
        snprintf(ids[i], WFO_ID_SIZE, "%s", id ? id : "");
        is_int(wfo_engine_get(e, ids[i], 30000, &doc, &err), 0, "execution %d read: %s", i,
               err.message);
        free(id);
        free(doc);
    }
    return e;
}

TEST(execution_in_its_namespace_only)
{
    char ids[1][WFO_ID_SIZE];
    struct wfo_engine *e = setup(1, ids);
    struct wfo_error err = WFO_ERROR_INIT, missing = WFO_ERROR_INIT;
    json_t *doc = NULL;

    is_int(query_execution(e, "default", ids[0], &doc, &err), 0, "read in its namespace");
    is_str(wfo_json_str(doc, "status"), "completed", "the document");
    is_int(json_array_size(json_object_get(doc, "steps")), 1, "with its step");
    json_decref(doc);
    doc = NULL;

    query_execution(e, "default", "no-such-id", &doc, &missing);
    is_int(query_execution(e, "other", ids[0], &doc, &err), WFO_ENOTFOUND,
           "another namespace: not found");
    ok(doc == NULL, "no document");
    char want[128];
    snprintf(want, sizeof(want), "execution '%s' not found", ids[0]);
    is_str(err.message, want, "the message of a missing one");
    is_str(missing.message, "execution 'no-such-id' not found", "(a missing one)");

    is_int(query_exec_check(e, "default", ids[0], &err), 0, "check: its namespace");
    is_int(query_exec_check(e, "other", ids[0], &err), WFO_ENOTFOUND, "check: another");
    is_int(query_exec_check(e, "default", "no-such-id", &err), WFO_ENOTFOUND, "check: missing");

    int ended = 0;
    is_int(query_wait(e, "default", ids[0], 1000, &ended, NULL, &err), 0, "wait in its namespace");
    is_int(ended, 1, "sees the end");
    json_t *handed = NULL;
    is_int(query_wait(e, "other", ids[0], 1000, &ended, &handed, &err), WFO_ENOTFOUND,
           "wait in another namespace: not found");
    ok(handed == NULL, "no document handed to it");
    is_int(query_ping(e, &err), 0, "ping");
    wfo_engine_free(e);
}

TEST(history_pages)
{
    char ids[1][WFO_ID_SIZE];
    struct wfo_engine *e = setup(1, ids);
    struct wfo_error err = WFO_ERROR_INIT;
    json_t *all = NULL, *page = NULL;

    is_int(query_history(e, "default", ids[0], 0, 0, &all, &err), 0, "whole history");
    ok(json_array_size(all) >= 3, "several entries (%zu)", json_array_size(all));
    is_int(query_history(e, "default", ids[0], 1, 1, &page, &err), 0, "one after seq 1");
    is_int(json_array_size(page), 1, "one entry");
    is_int(json_integer_value(json_object_get(json_array_get(page, 0), "seq")), 2, "seq 2");
    ok(json_equal(json_array_get(page, 0), json_array_get(all, 1)), "the same entry");
    json_decref(all);
    json_decref(page);
    page = NULL;
    is_int(query_history(e, "other", ids[0], 0, 0, &page, &err), WFO_ENOTFOUND,
           "another namespace: not found");
    ok(page == NULL, "no history");
    wfo_engine_free(e);
}

TEST(list_pages_by_cursor)
{
    char ids[3][WFO_ID_SIZE];
    struct wfo_engine *e = setup(3, ids);
    struct wfo_error err = WFO_ERROR_INIT;
    struct query_filter f = {.limit = 2};
    json_t *items = NULL;
    int64_t next = 0;

    is_int(query_executions(e, "default", &f, &items, &next, &err), 0, "first page");
    is_int(json_array_size(items), 2, "two items");
    is_str(wfo_json_str(json_array_get(items, 0), "id"), ids[2], "newest first");
    ok(json_object_get(json_array_get(items, 0), "steps") == NULL, "items without steps");
    ok(next > 0, "a next page");
    json_decref(items);

    f.before_seq = next;
    is_int(query_executions(e, "default", &f, &items, &next, &err), 0, "second page");
    is_int(json_array_size(items), 1, "the last item");
    is_str(wfo_json_str(json_array_get(items, 0), "id"), ids[0], "the oldest");
    is_int(next, 0, "no next page");
    json_decref(items);

    f = (struct query_filter){.limit = 10, .status = "running"};
    is_int(query_executions(e, "default", &f, &items, &next, &err), 0, "filtered");
    is_int(json_array_size(items), 0, "none running");
    json_decref(items);

    f = (struct query_filter){.limit = 10};
    is_int(query_executions(e, "other", &f, &items, &next, &err), 0, "another namespace");
    is_int(json_array_size(items), 0, "sees none");
    json_decref(items);
    wfo_engine_free(e);
}

TEST(workflows_in_their_namespace_only)
{
    struct wfo_engine *e = setup(0, NULL);
    struct wfo_error err = WFO_ERROR_INIT;
    json_t *w = NULL, *list = NULL;

    is_int(query_workflow(e, "default", "one", 0, &w, &err), 0, "the latest");
    is_int(json_integer_value(json_object_get(w, "version")), 1, "version 1");
    ok(json_is_object(json_object_get(w, "definition")), "with its definition");
    json_decref(w);
    w = NULL;
    is_int(query_workflow(e, "default", "one", 9, &w, &err), WFO_ENOTFOUND, "no version 9");
    is_str(err.message, "workflow 'one' has no version 9", "says which");
    is_int(query_workflow(e, "other", "one", 0, &w, &err), WFO_ENOTFOUND, "another namespace");
    is_str(err.message, "workflow 'one' not found", "as a missing one");
    ok(w == NULL, "nothing returned");

    is_int(query_workflows(e, "default", &list, &err), 0, "list");
    is_int(json_array_size(list), 1, "one workflow");
    json_decref(list);
    is_int(query_workflows(e, "other", &list, &err), 0, "another namespace's list");
    is_int(json_array_size(list), 0, "is empty");
    json_decref(list);
    wfo_engine_free(e);
}

int main(void)
{
    return tap_run();
}
