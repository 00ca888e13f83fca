/*
 * subscriptions.c - POST, GET /v1/subscriptions and GET, DELETE
 * /v1/subscriptions/{id} (SPEC 2.5 "Webhooks", SPEC 4): decoding and
 * checking; core/webhooks.c stores them and delivers.
 * docs/interfaces/api.md "Webhook subscriptions",
 * docs/implementation/event_processing.md "Webhooks".
 *
 * A subscription belongs to the caller's namespace: another namespace's
 * is answered 404 like one that does not exist (SPEC 4). Its secret is
 * written once and never read back.
 */
#include "common/compat.h"

#include <string.h>

#include "api.h"
#include "../core/engine.h"
#include "../common/httpc.h"

#define SUB_URL_MAX 2048
#define SUB_SECRET_MAX 512
#define SUB_TYPES_MAX 32
#define SUB_TYPE_MAX 256
#define SUB_WORKFLOW_MAX 128

/* "a.b" exactly, "a.*" (a prefix and ".*"), or "*": a '*' anywhere else
 * would match nothing, which is a mistake worth a 400. */
static int check_types(const json_t *types, struct wfo_error *err)
{
    size_t i;
    json_t *v;
    if (!json_is_array(types))
        return wfo_error_set(err, WFO_EINVAL, "types: must be an array of strings");
    if (json_array_size(types) == 0)
        return wfo_error_set(err, WFO_EINVAL, "types: must hold at least one type");
    if (json_array_size(types) > SUB_TYPES_MAX)
        return wfo_error_set(err, WFO_EINVAL, "types: at most %d patterns", SUB_TYPES_MAX);
    json_array_foreach(types, i, v)
    {
        if (!json_is_string(v))
            return wfo_error_set(err, WFO_EINVAL, "types[%zu]: must be a string", i);
        const char *t = json_string_value(v);
        size_t n = strlen(t);
        if (n == 0 || n > SUB_TYPE_MAX || n != json_string_length(v))
            return wfo_error_set(err, WFO_EINVAL, "types[%zu]: must be 1 to %d bytes", i,
                                 SUB_TYPE_MAX);
        const char *star = strchr(t, '*');
        if (star && !(n == 1 || (star == t + n - 1 && n >= 3 && t[n - 2] == '.')))
            return wfo_error_set(err, WFO_EINVAL,
                                 "types[%zu]: '%s': '*' only as \"*\" or at the end of "
                                 "\"prefix.*\"",
                                 i, t);
    }
    return 0;
}

/* {url, types, secret, workflow?} -> 201 with the subscription (no
 * secret). */
int api_subscription_add(struct api *a, struct api_req *req, struct api_resp *resp,
                         struct wfo_error *err)
{
    static const char *const known[] = {"url", "types", "secret", "workflow", NULL};
    json_t *body = NULL, *out = NULL;
    struct engine_subscription sub = {0};
    int rc = api_body_object(req, 0, &body, err);
    if (rc < 0)
        goto out;
    if ((rc = api_fields_known(body, NULL, known, err)) < 0)
        goto out;
    if ((rc = api_field_str(body, "url", 1, &sub.url, err)) < 0 ||
        (rc = api_field_str(body, "secret", 1, &sub.secret, err)) < 0 ||
        (rc = api_field_str(body, "workflow", 0, &sub.workflow, err)) < 0)
        goto out;
    if (strlen(sub.url) > SUB_URL_MAX) {
        rc = wfo_error_set(err, WFO_EINVAL, "url: longer than %d bytes", SUB_URL_MAX);
        goto out;
    }
    if ((rc = httpc_url_check(sub.url, a->opt.deny_private, err)) < 0)
        goto out;
    sub.types = json_object_get(body, "types");
    if (!sub.types) {
        rc = wfo_error_set(err, WFO_EINVAL, "types: required");
        goto out;
    }
    if ((rc = check_types(sub.types, err)) < 0)
        goto out;
    if (!sub.secret[0] || strlen(sub.secret) > SUB_SECRET_MAX) {
        rc = wfo_error_set(err, WFO_EINVAL, "secret: must be 1 to %d bytes", SUB_SECRET_MAX);
        goto out;
    }
    if (sub.workflow && (!sub.workflow[0] || strlen(sub.workflow) > SUB_WORKFLOW_MAX)) {
        rc = wfo_error_set(err, WFO_EINVAL, "workflow: must be 1 to %d bytes", SUB_WORKFLOW_MAX);
        goto out;
    }
    if (!a->engine) {
        rc = wfo_error_set(err, WFO_ESHUTDOWN, "no engine");
        goto out;
    }
    rc = engine_subscription_add(a->engine, req->ns, &sub, &out, err);
    if (rc < 0)
        goto out;
    api_resp_json(resp, 201, out);
out:
    json_decref(body);
    return rc;
}

/* A subscription as a caller below admin reads it (SPEC 4: a reader may
 * GET): its url as scheme://host[:port], with "/..." for a path: user
 * information, path, query and fragment may all hold credentials (a
 * token in the path, as chat webhooks have; docs/operations/security.md). */
static void sub_shown(const struct api_req *req, json_t *sub)
{
    const char *url = wfo_json_str(sub, "url");
    if (!url || !req->tok || req->tok->role >= API_ADMIN)
        return;
    const char *sep = strstr(url, "://");
    const char *auth = sep ? sep + 3 : url; /* [user@]host[:port] */
    size_t n = strcspn(auth, "/?#");
    const char *at = memchr(auth, '@', n), *host = at ? at + 1 : auth;
    const char *rest = auth + n;
    struct wfo_buf b = WFO_BUF_INIT;
    wfo_buf_add(&b, url, (size_t)(auth - url)); /* scheme:// */
    wfo_buf_add(&b, host, (size_t)(rest - host));
    if (*rest && strcmp(rest, "/") != 0)
        wfo_buf_adds(&b, "/...");
    json_object_set_new(sub, "url", json_stringn(b.buf, b.len));
    wfo_buf_release(&b);
}

int api_subscription_list(struct api *a, struct api_req *req, struct api_resp *resp,
                          struct wfo_error *err)
{
    json_t *out = NULL, *sub;
    size_t i;
    if (!a->engine)
        return wfo_error_set(err, WFO_ESHUTDOWN, "no engine");
    int rc = engine_subscription_list(a->engine, req->ns, &out, err);
    if (rc < 0)
        return rc;
    json_array_foreach(json_object_get(out, "subscriptions"), i, sub)
    {
        sub_shown(req, sub);
    }
    api_resp_json(resp, 200, out);
    return 0;
}

int api_subscription_get(struct api *a, struct api_req *req, struct api_resp *resp,
                         struct wfo_error *err)
{
    json_t *out = NULL;
    if (!a->engine)
        return wfo_error_set(err, WFO_ESHUTDOWN, "no engine");
    int rc = engine_subscription_get(a->engine, req->ns, req->params[0], &out, err);
    if (rc < 0)
        return rc;
    sub_shown(req, out);
    api_resp_json(resp, 200, out);
    return 0;
}

int api_subscription_delete(struct api *a, struct api_req *req, struct api_resp *resp,
                            struct wfo_error *err)
{
    if (!a->engine)
        return wfo_error_set(err, WFO_ESHUTDOWN, "no engine");
    int rc = engine_subscription_delete(a->engine, req->ns, req->params[0], err);
    if (rc == 0)
        api_resp_json(resp, 200, json_pack("{s:s, s:b}", "id", req->params[0], "deleted", 1));
    return rc;
}
