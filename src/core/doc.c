/*
 * doc.c - the documents of SPEC 3 from store rows: the execution document,
 * its list item, history entries, workflow versions (docs/data_model.md).
 * Builders only: the reads are query.c's, and the engine's (a start's
 * document from the rows it committed).
 */
#include "common/compat.h"

#include <string.h>

#include "doc.h"
#include "../common/duration.h"

json_t *doc_time(int64_t ms)
{
    if (!ms)
        return json_null();
    char t[40];
    wfo_time_format(ms, t, sizeof(t));
    return json_string(t);
}

json_t *doc_exec(const struct store_exec *r)
{
    return json_pack("{s:s, s:s, s:s, s:i, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "id",
                     r->id, "namespace", r->namespace, "workflow", r->workflow, "version",
                     r->version, "status", r->status, "input", wfo_json_text(r->input), "output",
                     wfo_json_text(r->output), "error", wfo_json_text(r->error), "compensation",
                     wfo_json_text(r->compensation), "created_at", doc_time(r->created_at),
                     "updated_at", doc_time(r->updated_at), "finished_at", doc_time(r->finished_at),
                     "parent", wfo_json_text(r->parent));
}

/* A `workflow` step's child (the id in its private state), or NULL. */
static json_t *step_child(const struct store_step *r)
{
    if (!r->state || !strstr(r->state, "\"child\":"))
        return NULL;
    json_t *st = wfo_json_text(r->state);
    json_t *c = json_object_get(st, "child");
    c = json_is_string(c) ? json_incref(c) : NULL;
    json_decref(st);
    return c;
}

void doc_step(json_t *steps, const struct store_step *r)
{
    /* compensation runs are not steps of the definition: the steps they
     * undo show `compensated`, the history has the runs
     * (docs/implementation/compensation.md) */
    if (strstr(r->path, ":compensate"))
        return;
    json_t *st =
        json_pack("{s:s, s:s, s:i, s:o, s:o, s:o, s:o, s:o}", "name", r->path, "status", r->status,
                  "attempts", r->attempts, "input", wfo_json_text(r->input), "output",
                  wfo_json_text(r->output), "error", wfo_json_text(r->error), "started_at",
                  doc_time(r->started_at), "finished_at", doc_time(r->finished_at));
    json_t *child = step_child(r); /* SPEC 3: a `workflow` step also carries `child` */
    if (child)
        json_object_set_new(st, "child", child);
    /* an await_event step shows what it waits for: {event, key} or {signal}
     * (docs/implementation/event_processing.md) */
    if (r->state && strcmp(r->status, "waiting") == 0 && strstr(r->state, "\"wait\"")) {
        json_t *state = wfo_json_text(r->state);
        json_t *w = json_object_get(state, "wait");
        if (json_is_object(w))
            json_object_set(st, "waiting_for", w);
        json_decref(state);
    }
    json_array_append_new(steps, st);
}

/* SPEC 3's key order: steps after compensation. */
json_t *doc_assemble(json_t *doc, json_t *steps)
{
    json_t *ordered = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(doc, k, v)
    {
        if (strcmp(k, "created_at") == 0)
            json_object_set(ordered, "steps", steps);
        json_object_set(ordered, k, v);
    }
    json_decref(steps);
    json_decref(doc);
    return ordered;
}

json_t *doc_from_rows(const struct store_exec *r, const struct store_step *steps, int n)
{
    json_t *list = json_array();
    for (int i = 0; i < n; i++)
        doc_step(list, &steps[i]);
    return doc_assemble(doc_exec(r), list);
}

json_t *doc_history_entry(const struct store_history *r)
{
    return json_pack("{s:I, s:o, s:s, s:o, s:o}", "seq", (json_int_t)r->seq, "time",
                     doc_time(r->time), "type", r->type, "step",
                     r->step ? json_string(r->step) : json_null(), "data", wfo_json_text(r->data));
}

json_t *doc_workflow_new(const char *name, int version, int64_t created_at, json_t *definition)
{
    return json_pack("{s:s, s:i, s:o, s:o}", "name", name, "version", version, "created_at",
                     doc_time(created_at), "definition", definition ? definition : json_null());
}

json_t *doc_workflow(const struct store_workflow *w)
{
    json_t *def = NULL;
    if (wfo_json_parse(w->definition, strlen(w->definition), &def, NULL) < 0)
        def = NULL;
    return doc_workflow_new(w->name, w->version, w->created_at, def);
}
