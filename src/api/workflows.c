/*
 * workflows.c - /v1/workflows: register a definition (PUT, JSON or YAML),
 * list them, read the latest or one version (SPEC 4).
 * docs/interfaces/api.md "Workflows".
 *
 * Every answer about one version is {name, version, created_at,
 * definition}; the list holds the latest version of each workflow in that
 * same shape.
 */
#include "common/compat.h"

#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "../core/engine.h"
#include "../core/query.h"
#include "../common/util.h"

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

int api_workflow_list(struct api *a, struct api_req *req, struct api_resp *resp,
                      struct wfo_error *err)
{
    json_t *list = NULL;
    int rc = query_workflows(a->engine, req->ns, &list, err);
    if (rc < 0)
        return rc;
    api_resp_json(resp, 200, json_pack("{s:o}", "workflows", list));
    return 0;
}

static int workflow_read(struct api *a, struct api_req *req, const char *name, int version,
                         struct api_resp *resp, struct wfo_error *err)
{
    json_t *w = NULL;
    int rc = query_workflow(a->engine, req->ns, name, version, &w, err);
    if (rc < 0)
        return rc;
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
