/*
 * events.c - POST /v1/events and POST /v1/executions/{id}/signals/{name}
 * (SPEC 2.5): decoding and checking; core/events.c stores and wakes.
 * docs/interfaces/api.md "Events and signals",
 * docs/implementation/event_processing.md.
 */
#include "common/compat.h"

#include <string.h>

#include "api.h"
#include "../core/engine.h"
#include "../common/duration.h"

/* The longest id, type, key, source or signal name taken. */
#define API_EVENT_FIELD_MAX 256

static int short_field(const char *v, const char *name, struct wfo_error *err)
{
    if (v && strlen(v) > API_EVENT_FIELD_MAX)
        return wfo_error_set(err, WFO_EINVAL, "%s: longer than %d bytes", name,
                             API_EVENT_FIELD_MAX);
    return 0;
}

/* {type, key?, source?, data?, id?, time?}: wfo's fields and CloudEvents'
 * (a CloudEvents JSON body is taken as it is: its other context attributes
 * are accepted and not kept; `subject` is the key when there is no `key`).
 * 202 with the stored record; 200 with the first record for an id seen
 * before. */
int api_event_post(struct api *a, struct api_req *req, struct api_resp *resp, struct wfo_error *err)
{
    static const char *const known[] = {
        "type",    "key",        "source",          "data", "id", "time", "specversion",
        "subject", "dataschema", "datacontenttype", NULL};
    json_t *body = NULL, *record = NULL;
    struct engine_event ev = {0};
    const char *time = NULL, *subject = NULL, *spec = NULL, *s = NULL;
    int created = 0;
    int rc = api_body_object(req, 0, &body, err);
    if (rc < 0)
        goto out;
    if ((rc = api_fields_known(body, NULL, known, err)) < 0)
        goto out;
    if ((rc = api_field_str(body, "type", 0, &ev.type, err)) < 0 ||
        (rc = api_field_str(body, "key", 0, &ev.key, err)) < 0 ||
        (rc = api_field_str(body, "source", 0, &ev.source, err)) < 0 ||
        (rc = api_field_str(body, "id", 0, &ev.id, err)) < 0 ||
        (rc = api_field_str(body, "time", 0, &time, err)) < 0 ||
        (rc = api_field_str(body, "subject", 0, &subject, err)) < 0 ||
        (rc = api_field_str(body, "specversion", 0, &spec, err)) < 0 ||
        (rc = api_field_str(body, "dataschema", 0, &s, err)) < 0 ||
        (rc = api_field_str(body, "datacontenttype", 0, &s, err)) < 0)
        goto out;
    if (!ev.type || !ev.type[0]) {
        rc = wfo_error_set(err, WFO_EINVAL, "type: an event needs a non-empty type");
        goto out;
    }
    if (ev.id && !ev.id[0]) {
        rc = wfo_error_set(err, WFO_EINVAL, "id: must not be empty");
        goto out;
    }
    if (!ev.key)
        ev.key = subject;
    if ((rc = short_field(ev.type, "type", err)) < 0 ||
        (rc = short_field(ev.key, "key", err)) < 0 ||
        (rc = short_field(ev.source, "source", err)) < 0 ||
        (rc = short_field(ev.id, "id", err)) < 0)
        goto out;
    if (time && wfo_time_parse(time, &ev.time) < 0) {
        rc = wfo_error_set(err, WFO_EINVAL, "time: '%.64s' is not an RFC 3339 time", time);
        goto out;
    }
    ev.data = json_object_get(body, "data");
    if (ev.data && (rc = api_payload_check(a, ev.data, "data", err)) < 0)
        goto out;
    rc = engine_event_post(a->engine, req->ns, &ev, &created, &record, err);
    if (rc < 0)
        goto out;
    api_resp_json(resp, created ? 202 : 200, record);
out:
    json_decref(body);
    return rc;
}

/* {data?}: queued for the execution; 202 with {id, type, data, time}; 409
 * when it has ended; 404 when there is no such execution (routes.c checked
 * its namespace). */
int api_execution_signal(struct api *a, struct api_req *req, struct api_resp *resp,
                         struct wfo_error *err)
{
    static const char *const known[] = {"data", NULL};
    json_t *body = NULL, *record = NULL;
    const char *name = req->params[1];
    int rc = api_body_object(req, 0, &body, err);
    if (rc < 0)
        goto out;
    if ((rc = api_fields_known(body, NULL, known, err)) < 0)
        goto out;
    if (!name || !name[0] || strlen(name) > API_EVENT_FIELD_MAX) {
        rc = wfo_error_set(err, WFO_EINVAL, "signal name: must be 1 to %d bytes",
                           API_EVENT_FIELD_MAX);
        goto out;
    }
    json_t *data = json_object_get(body, "data");
    if (data && (rc = api_payload_check(a, data, "data", err)) < 0)
        goto out;
    rc = engine_signal(a->engine, req->ns, req->params[0], name, data, &record, err);
    if (rc < 0)
        goto out;
    api_resp_json(resp, 202, record);
out:
    json_decref(body);
    return rc;
}
