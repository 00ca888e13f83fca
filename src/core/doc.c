/*
 * doc.c - execution documents and histories from store rows (SPEC 3;
 * docs/data_model.md).
 */
#include <string.h>

#include "doc.h"
#include "engine.h"
#include "../common/duration.h"
#include "../common/banned.h"

json_t *doc_time(int64_t ms)
{
    if (!ms)
        return json_null();
    char t[40];
    wfo_time_format(ms, t, sizeof(t));
    return json_string(t);
}

static json_t *text_json(const char *s)
{
    json_t *v = NULL;
    if (!s || wfo_json_parse(s, strlen(s), &v, NULL) < 0)
        return json_null();
    return v;
}

json_t *doc_exec(const struct store_exec *r)
{
    return json_pack("{s:s, s:s, s:s, s:i, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "id",
                     r->id, "namespace", r->namespace, "workflow", r->workflow, "version",
                     r->version, "status", r->status, "input", text_json(r->input), "output",
                     text_json(r->output), "error", text_json(r->error), "compensation",
                     text_json(r->compensation), "created_at", doc_time(r->created_at),
                     "updated_at", doc_time(r->updated_at), "finished_at", doc_time(r->finished_at),
                     "parent", r->parent ? json_string(r->parent) : json_null());
}

static int exec_cb(void *ud, const struct store_exec *r)
{
    *(json_t **)ud = doc_exec(r);
    return 0;
}

/* Appends one step of the document to steps. */
static void doc_step(json_t *steps, const struct store_step *r)
{
    /* compensation runs are not steps of the definition: the steps they
     * undo show `compensated`, the history has the runs
     * (docs/implementation/compensation.md) */
    if (strstr(r->path, ":compensate"))
        return;
    json_array_append_new(
        steps, json_pack("{s:s, s:s, s:i, s:o, s:o, s:o, s:o, s:o}", "name", r->path, "status",
                         r->status, "attempts", r->attempts, "input", text_json(r->input), "output",
                         text_json(r->output), "error", text_json(r->error), "started_at",
                         doc_time(r->started_at), "finished_at", doc_time(r->finished_at)));
}

static int step_cb(void *ud, const struct store_step *r)
{
    doc_step(ud, r);
    return 0;
}

/* The document from the execution's part and its steps (both taken), in
 * SPEC 3's key order: steps after compensation. */
static json_t *doc_assemble(json_t *doc, json_t *steps)
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

int doc_execution(struct wfo_store *s, const char *id, json_t **out, struct wfo_error *err)
{
    json_t *doc = NULL;
    int rc = s->ops->get_exec(s, id, exec_cb, &doc, err);
    if (rc < 0) {
        if (rc == WFO_ENOTFOUND)
            wfo_error_set(err, rc, "execution '%s' not found", id);
        return rc;
    }
    json_t *steps = json_array();
    rc = s->ops->list_steps(s, id, step_cb, steps, err);
    if (rc < 0) {
        json_decref(steps);
        json_decref(doc);
        return rc;
    }
    *out = doc_assemble(doc, steps);
    return 0;
}

static int hist_cb(void *ud, const struct store_history *r)
{
    json_array_append_new(ud, json_pack("{s:I, s:o, s:s, s:o, s:o}", "seq", (json_int_t)r->seq,
                                        "time", doc_time(r->time), "type", r->type, "step",
                                        r->step ? json_string(r->step) : json_null(), "data",
                                        text_json(r->data)));
    return 0;
}

int doc_history(struct wfo_store *s, const char *id, int64_t after_seq, int limit, json_t **out,
                struct wfo_error *err)
{
    json_t *probe = NULL;
    int rc = s->ops->get_exec(s, id, exec_cb, &probe, err);
    json_decref(probe);
    if (rc < 0) {
        if (rc == WFO_ENOTFOUND)
            wfo_error_set(err, rc, "execution '%s' not found", id);
        return rc;
    }
    json_t *a = json_array();
    rc = s->ops->list_history(s, id, after_seq, limit, hist_cb, a, err);
    if (rc < 0) {
        json_decref(a);
        return rc;
    }
    *out = a;
    return 0;
}

int engine_doc(struct wfo_engine *e, const char *id, json_t **doc, struct wfo_error *err)
{
    return doc_execution(engine_store(e), id, doc, err);
}

int wfo_engine_history(struct wfo_engine *e, const char *id, char **json, struct wfo_error *err)
{
    json_t *a = NULL;
    int rc = doc_history(engine_store(e), id, 0, 0, &a, err);
    if (rc < 0)
        return rc;
    *json = wfo_json_dumps(a);
    json_decref(a);
    return 0;
}
