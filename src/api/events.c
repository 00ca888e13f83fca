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

/* The longest CloudEvents extension attribute name (CloudEvents 1.0,
 * "Attribute Naming Convention"). */
#define API_EVENT_EXT_NAME_MAX 20

/* data_base64 is standard base64 (RFC 4648 section 4), padded with '='. */
static int base64_check(const char *s, size_t n, struct wfo_error *err)
{
    size_t pad = 0;
    while (pad < 2 && pad < n && s[n - 1 - pad] == '=')
        pad++;
    for (size_t i = 0; i < n - pad; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/'))
            return wfo_error_set(err, WFO_EINVAL,
                                 "data_base64: byte %zu (0x%02x) is not a base64 character", i, c);
    }
    if (n % 4)
        return wfo_error_set(err, WFO_EINVAL,
                             "data_base64: %zu characters, not a multiple of 4 (base64 as RFC"
                             " 4648 writes it, padded with '=')",
                             n);
    return 0;
}

/* A CloudEvents extension attribute: its name 1 to 20 of a-z, 0-9; its
 * value a string, an integer (32 bits, CloudEvents' Integer) or a boolean
 * (the JSON forms of CloudEvents' types). */
static int ext_check(const char *name, const json_t *v, struct wfo_error *err)
{
    size_t n = strlen(name);
    int ok = n >= 1 && n <= API_EVENT_EXT_NAME_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = (name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9');
    if (!ok)
        return wfo_error_set(err, WFO_EINVAL,
                             "%.64s: unknown field, and not a CloudEvents extension attribute"
                             " name (1 to %d of a-z and 0-9)",
                             name, API_EVENT_EXT_NAME_MAX);
    if (json_is_integer(v) &&
        (json_integer_value(v) < -2147483648LL || json_integer_value(v) > 2147483647LL))
        return wfo_error_set(err, WFO_EINVAL,
                             "%s: a CloudEvents integer is from -2147483648 to 2147483647", name);
    if (!json_is_string(v) && !json_is_integer(v) && !json_is_boolean(v))
        return wfo_error_set(err, WFO_EINVAL,
                             "%s: a CloudEvents extension attribute is a string, an integer or"
                             " a boolean",
                             name);
    return 0;
}

/* The attributes of a CloudEvents body that wfo has no field of its own
 * for, as given: specversion, subject, dataschema, datacontenttype (with
 * or without specversion, as before), and with specversion also
 * data_base64 (checked to be base64, kept encoded) and the extension
 * attributes. JSON null is an absent attribute. *out: NULL when there are
 * none, else a new object. */
static int ce_attrs(json_t *body, json_t **out, struct wfo_error *err)
{
    static const char *const own[] = {"type", "key", "source", "data", "id", "time", NULL};
    static const char *const kept[] = {"specversion",     "subject",     "dataschema",
                                       "datacontenttype", "data_base64", NULL};
    json_t *attrs = json_object();
    const char *k;
    json_t *v;
    int rc = 0;
    json_object_foreach(body, k, v)
    {
        int is_own = 0, is_kept = 0;
        for (const char *const *n = own; *n && !is_own; n++)
            is_own = strcmp(*n, k) == 0;
        for (const char *const *n = kept; *n && !is_kept; n++)
            is_kept = strcmp(*n, k) == 0;
        if (is_own || json_is_null(v))
            continue;
        if (!is_kept && (rc = ext_check(k, v, err)) < 0)
            goto out;
        if (is_kept && !json_is_string(v)) {
            rc = wfo_error_set(err, WFO_EINVAL, "%s: expected a string", k);
            goto out;
        }
        json_object_set(attrs, k, v);
    }
    json_t *b64 = json_object_get(attrs, "data_base64");
    if (b64) {
        if ((rc = base64_check(json_string_value(b64), json_string_length(b64), err)) < 0)
            goto out;
        v = json_object_get(body, "data");
        if (v && !json_is_null(v)) {
            rc = wfo_error_set(err, WFO_EINVAL,
                               "data, data_base64: a CloudEvent has one or the other, not both");
            goto out;
        }
    }
    if (json_object_size(attrs)) {
        *out = attrs;
        attrs = NULL;
    }
out:
    json_decref(attrs);
    return rc;
}

/* {type, key?, source?, data?, id?, time?}: wfo's fields and CloudEvents'.
 * A CloudEvents body (one with specversion) is taken as it is: ce_attrs
 * keeps what has no field of wfo's; `subject` is the key when there is no
 * `key`. A body without specversion takes no other field. 202 with the
 * stored record; 200 with the first record for an id seen before. */
int api_event_post(struct api *a, struct api_req *req, struct api_resp *resp, struct wfo_error *err)
{
    static const char *const known[] = {
        "type",    "key",        "source",          "data", "id", "time", "specversion",
        "subject", "dataschema", "datacontenttype", NULL};
    json_t *body = NULL, *record = NULL;
    struct engine_event ev = {0};
    const char *time = NULL, *subject = NULL, *spec = NULL;
    int created = 0;
    int rc = api_body_object(req, 0, &body, err);
    if (rc < 0)
        goto out;
    if ((rc = api_field_str(body, "specversion", 0, &spec, err)) < 0)
        goto out;
    /* without specversion, a field not known is a mistake (a 400) */
    if (!spec && (rc = api_fields_known(body, NULL, known, err)) < 0)
        goto out;
    if ((rc = api_field_str(body, "type", 0, &ev.type, err)) < 0 ||
        (rc = api_field_str(body, "key", 0, &ev.key, err)) < 0 ||
        (rc = api_field_str(body, "source", 0, &ev.source, err)) < 0 ||
        (rc = api_field_str(body, "id", 0, &ev.id, err)) < 0 ||
        (rc = api_field_str(body, "time", 0, &time, err)) < 0 ||
        (rc = api_field_str(body, "subject", 0, &subject, err)) < 0 ||
        (rc = ce_attrs(body, &ev.attrs, err)) < 0)
        goto out;
    if (!ev.type || !ev.type[0]) {
        rc = wfo_error_set(err, WFO_EINVAL, "type: an event needs a non-empty type");
        goto out;
    }
    if (ev.id && !ev.id[0]) {
        rc = wfo_error_set(err, WFO_EINVAL, "id: must not be empty");
        goto out;
    }
    /* the id goes out as the stream's `id:` line and comes back as
     * Last-Event-ID: a line break would cut it, and an SSE reader drops a
     * leading space, so the id a client resumes from would not be found */
    for (const unsigned char *c = (const unsigned char *)ev.id; ev.id && *c; c++)
        if (*c < 0x20 || *c == 0x7F) {
            rc = wfo_error_set(err, WFO_EINVAL, "id: must not contain control characters");
            goto out;
        }
    if (ev.id && (ev.id[0] == ' ' || ev.id[strlen(ev.id) - 1] == ' ')) {
        rc = wfo_error_set(err, WFO_EINVAL, "id: must not start or end with a space");
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
    if (ev.attrs && (rc = api_payload_check(
                         a, ev.attrs, "data_base64 and the other CloudEvents attributes", err)) < 0)
        goto out;
    rc = engine_event_post(a->engine, req->ns, &ev, &created, &record, err);
    if (rc < 0)
        goto out;
    api_resp_json(resp, created ? 202 : 200, record);
out:
    json_decref(ev.attrs);
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
