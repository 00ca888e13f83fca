/*
 * workflows.c - /v1/workflows: register a definition (PUT, JSON or YAML),
 * list them, read the latest or one version (SPEC 4).
 * docs/interfaces/api.md "Workflows".
 *
 * Every answer about one version is {name, version, created_at,
 * definition}; the list holds the latest version of each workflow in that
 * same shape.
 */
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "../core/engine.h"
#include "../core/doc.h"
#include "../common/util.h"
#include "../common/banned.h"

int api_workflow_put(struct api *a, struct api_req *req, struct api_resp *resp,
                     struct wfo_error *err)
{
    const char *name = req->params[0];
    json_t *doc = NULL, *out = NULL, *problems = NULL;
    int created = 0;
    int rc = api_body_object(req, 1, &doc, err);
    if (rc < 0)
        goto out;
    json_t *n = json_object_get(doc, "name");
    if (json_is_string(n) && strcmp(json_string_value(n), name) != 0) {
        rc = wfo_error_set(err, WFO_EINVAL,
                           "name: the definition is named '%s' but the path names '%s'",
                           json_string_value(n), name);
        goto out;
    }
    rc = engine_put_workflow(a->engine, req->ns, doc, &created, &out, &problems, err);
    if (rc == WFO_EDEFINITION) {
        api_resp_error(resp, wfo_error_http_status(rc), wfo_error_type(rc), err->message);
        json_object_set_new(json_object_get(resp->json, "error"), "details",
                            problems ? problems : json_array());
        problems = NULL;
        rc = 0;
        goto out;
    }
    if (rc < 0)
        goto out;
    api_resp_json(resp, created ? 201 : 200, out);
    out = NULL;
out:
    json_decref(doc);
    json_decref(out);
    json_decref(problems);
    return rc;
}

/* A store row as {name, version, created_at, definition}. */
static json_t *workflow_json(const struct store_workflow *w)
{
    json_t *def = NULL;
    if (wfo_json_parse(w->definition, strlen(w->definition), &def, NULL) < 0)
        def = json_null();
    return json_pack("{s:s, s:i, s:o, s:o}", "name", w->name, "version", w->version, "created_at",
                     doc_time(w->created_at), "definition", def);
}

static int one_cb(void *ud, const struct store_workflow *w)
{
    json_t **out = ud;
    json_decref(*out);
    *out = workflow_json(w);
    return 0;
}

static int list_cb(void *ud, const struct store_workflow *w)
{
    json_array_append_new(ud, workflow_json(w));
    return 0;
}

int api_workflow_list(struct api *a, struct api_req *req, struct api_resp *resp,
                      struct wfo_error *err)
{
    struct wfo_store *s = engine_store(a->engine);
    json_t *list = json_array();
    int rc = s->ops->list_workflows(s, req->ns, list_cb, list, err);
    if (rc < 0) {
        json_decref(list);
        return rc;
    }
    api_resp_json(resp, 200, json_pack("{s:o}", "workflows", list));
    return 0;
}

static int workflow_read(struct api *a, struct api_req *req, const char *name, int version,
                         struct api_resp *resp, struct wfo_error *err)
{
    struct wfo_store *s = engine_store(a->engine);
    json_t *w = NULL;
    int rc = s->ops->get_workflow(s, req->ns, name, version, one_cb, &w, err);
    if (rc == WFO_ENOTFOUND) {
        if (version)
            wfo_error_set(err, rc, "workflow '%s' has no version %d", name, version);
        else
            wfo_error_set(err, rc, "workflow '%s' not found", name);
    }
    if (rc == 0 && !w)
        rc = wfo_error_set(err, WFO_ENOTFOUND, "workflow '%s' not found", name);
    if (rc < 0) {
        json_decref(w);
        return rc;
    }
    api_resp_json(resp, 200, w);
    return 0;
}

int api_workflow_get(struct api *a, struct api_req *req, struct api_resp *resp,
                     struct wfo_error *err)
{
    return workflow_read(a, req, req->params[0], 0, resp, err);
}

/* 200 {name, deleted: true}; 409 while an execution of it runs or is
 * paused. */
int api_workflow_delete(struct api *a, struct api_req *req, struct api_resp *resp,
                        struct wfo_error *err)
{
    int rc = engine_delete_workflow(a->engine, req->ns, req->params[0], err);
    if (rc < 0)
        return rc;
    api_resp_json(resp, 200, json_pack("{s:s, s:b}", "name", req->params[0], "deleted", 1));
    return 0;
}

int api_workflow_version(struct api *a, struct api_req *req, struct api_resp *resp,
                         struct wfo_error *err)
{
    int64_t v;
    if (wfo_parse_int64(req->params[1], &v) < 0 || v < 1 || v > 2147483647)
        return wfo_error_set(err, WFO_EINVAL, "version: '%s' is not a positive integer",
                             req->params[1]);
    return workflow_read(a, req, req->params[0], (int)v, resp, err);
}
