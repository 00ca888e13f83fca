/*
 * routes.c - the route table of SPEC 4 and what every handler shares:
 * routing (404, 405 with Allow), the request target's decoding, bodies
 * (JSON, YAML for definitions, the empty body as {}), typed fields, query
 * parameters, list cursors and error documents. docs/interfaces/api.md.
 *
 * Invariants:
 *   R1. api_handle() always leaves a complete response in resp: a status
 *       and a body. Errors are {"error": {"type", "message"}} (SPEC 4).
 *   R2. Bad input is an error value, never an assert: the target, the
 *       query, the body and every field may hold any bytes
 *       (tests/fuzz/fuzz_request.c).
 *   R3. A cursor is base64url(seq (8 bytes, big-endian) || the first 12
 *       bytes of HMAC-SHA256(key, "wfo-cursor-v1:" ns ":" seq)): opaque to
 *       clients, and one the server did not issue is refused. key comes
 *       from the store's random server key (the same on every node of
 *       one store), never from its URL; ns is the caller's namespace, so
 *       a cursor does not carry over to another one.
 */
#include "common/compat.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "../core/engine.h"
#include "../core/query.h"
#include "../common/crypto.h"
#include "../common/duration.h"
#include "../common/httpc.h"
#include "../common/log.h"
#include "../common/redact.h"
#include "../common/util.h"
#include "../common/yaml.h"

/* ---- the table ----
 *
 * One line per method and pattern. {x} matches one non-empty segment.
 * A pattern that matches the path with another method makes a 405. */
static const struct api_route routes[] = {
    {"GET", "/", api_ops_index, API_READER, 0, NULL},
    {"GET", "/healthz", api_ops_healthz, API_PUBLIC, 0, NULL},
    {"GET", "/readyz", api_ops_readyz, API_PUBLIC, 0, NULL},
    {"GET", "/metrics", api_ops_metrics, API_PUBLIC, 0, NULL},
    {"GET", "/v1/openapi.json", api_ops_openapi, API_READER, 0, NULL},
    {"GET", "/v1/schemas/workflow.json", api_ops_schema, API_READER, 0, NULL},

    {"GET", "/v1/workflows", api_workflow_list, API_READER, 0, NULL},
    {"GET", "/v1/workflows/{name}", api_workflow_get, API_READER, 0, NULL},
    {"PUT", "/v1/workflows/{name}", api_workflow_put, API_ADMIN, 0, NULL},
    {"DELETE", "/v1/workflows/{name}", api_workflow_delete, API_ADMIN, 0, NULL},
    {"GET", "/v1/workflows/{name}/versions/{version}", api_workflow_version, API_READER, 0, NULL},

    {"POST", "/v1/executions", api_execution_start, API_OPERATOR, 0, "wait"},
    {"GET", "/v1/executions", api_execution_list, API_READER, 0,
     "workflow,status,created_after,created_before,limit,cursor"},
    {"GET", "/v1/executions/{id}", api_execution_get, API_READER, API_F_EXEC, "wait"},
    {"DELETE", "/v1/executions/{id}", api_execution_delete, API_OPERATOR, API_F_EXEC, NULL},
    {"GET", "/v1/executions/{id}/history", api_execution_history, API_READER, API_F_EXEC, NULL},
    {"POST", "/v1/executions/{id}/cancel", api_execution_cancel, API_OPERATOR, API_F_EXEC, NULL},
    {"POST", "/v1/executions/{id}/terminate", api_execution_terminate, API_OPERATOR, API_F_EXEC,
     NULL},
    {"POST", "/v1/executions/{id}/pause", api_execution_pause, API_OPERATOR, API_F_EXEC, NULL},
    {"POST", "/v1/executions/{id}/resume", api_execution_resume, API_OPERATOR, API_F_EXEC, NULL},
    {"POST", "/v1/executions/{id}/retry", api_execution_retry, API_OPERATOR, API_F_EXEC, NULL},
    {"POST", "/v1/executions/{id}/signals/{name}", api_execution_signal, API_OPERATOR, API_F_EXEC,
     NULL},

    {"POST", "/v1/events", api_event_post, API_OPERATOR, 0, NULL},
    {"GET", "/v1/events/stream", api_event_stream, API_READER, 0, "types,execution"},
    {"POST", "/v1/subscriptions", api_subscription_add, API_ADMIN, 0, NULL},
    {"GET", "/v1/subscriptions", api_subscription_list, API_READER, 0, NULL},
    {"GET", "/v1/subscriptions/{id}", api_subscription_get, API_READER, 0, NULL},
    {"DELETE", "/v1/subscriptions/{id}", api_subscription_delete, API_ADMIN, 0, NULL},

    {"POST", "/v1/tasks/poll", api_task_poll, API_WORKER, API_F_STORE, NULL},
    {"POST", "/v1/tasks/complete", api_task_complete_many, API_WORKER, 0, NULL},
    {"POST", "/v1/tasks/{task_id}/complete", api_task_complete, API_WORKER, 0, NULL},
    {"POST", "/v1/tasks/{task_id}/fail", api_task_fail, API_WORKER, 0, NULL},
    {"POST", "/v1/tasks/{task_id}/heartbeat", api_task_heartbeat, API_WORKER, API_F_STORE, NULL},
    {"GET", "/v1/queues", api_queue_list, API_READER, API_F_STORE, NULL},
};

const struct api_route *api_routes(int *n)
{
    *n = (int)WFO_ARRAY_SIZE(routes);
    return routes;
}

/* ---- the request target ---- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* %-decodes s[0..n) into a new string; '+' is a space when plus. NULL for a
 * bad escape, a NUL byte or invalid UTF-8. */
static char *pct_decode(const char *s, size_t n, int plus)
{
    char *out = wfo_malloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            int hi = i + 2 < n ? hexval((unsigned char)s[i + 1]) : -1;
            int lo = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                goto bad;
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else if (plus && s[i] == '+') {
            out[o++] = ' ';
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = 0;
    if (wfo_utf8_span(out, o) != o) /* a NUL or invalid UTF-8 */
        goto bad;
    return out;
bad:
    free(out);
    return NULL;
}

void api_req_init(struct api_req *r, const char *method, const char *raw_path)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->method, sizeof(r->method), "%s", method ? method : "");
    r->path = wfo_strdup(raw_path ? raw_path : "");
    const char *p = r->path;
    if (*p != '/') {
        r->bad_target = 1;
        return;
    }
    p++;
    for (;;) {
        const char *end = strchr(p, '/');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (r->n_segs == API_MAX_SEGS) {
            r->bad_target = 1; /* deeper than any route: answered 404 */
            return;
        }
        char *seg = pct_decode(p, n, 0);
        if (!seg) {
            r->bad_target = 2;
            return;
        }
        r->segs[r->n_segs++] = seg;
        if (!end)
            break;
        p = end + 1;
    }
}

void api_req_add_query(struct api_req *r, const char *raw_key, const char *raw_value)
{
    if (!raw_key)
        return;
    char *k = pct_decode(raw_key, strlen(raw_key), 1);
    char *v = pct_decode(raw_value ? raw_value : "", raw_value ? strlen(raw_value) : 0, 1);
    if (!k || !v) {
        free(k);
        free(v);
        r->bad_target = 2;
        return;
    }
    if (r->n_query == r->alloc_query) {
        r->alloc_query = r->alloc_query ? 2 * r->alloc_query : 8;
        r->query = wfo_realloc(r->query, (size_t)r->alloc_query * sizeof(*r->query));
    }
    r->query[r->n_query++] = (struct api_kv){k, v};
}

void api_req_parse_query(struct api_req *r, const char *qs)
{
    while (qs && *qs) {
        const char *amp = strchr(qs, '&');
        size_t n = amp ? (size_t)(amp - qs) : strlen(qs);
        if (n) {
            char *pair = wfo_strndup(qs, n);
            char *eq = strchr(pair, '=');
            if (eq)
                *eq = 0;
            api_req_add_query(r, pair, eq ? eq + 1 : NULL);
            free(pair);
        }
        qs = amp ? amp + 1 : NULL;
    }
}

void api_req_set_content_type(struct api_req *r, const char *header)
{
    free(r->content_type);
    r->content_type = NULL;
    if (!header)
        return;
    while (*header == ' ' || *header == '\t')
        header++;
    size_t n = strcspn(header, "; \t");
    if (!n)
        return;
    r->content_type = wfo_strndup(header, n);
    for (char *c = r->content_type; *c; c++)
        *c = (char)tolower((unsigned char)*c);
}

void api_req_release(struct api_req *r)
{
    for (int i = 0; i < r->n_segs; i++)
        free(r->segs[i]);
    for (int i = 0; i < r->n_query; i++) {
        free(r->query[i].key);
        free(r->query[i].value);
    }
    free(r->query);
    free(r->path);
    free(r->content_type);
    free(r->workflow);
    memset(r, 0, sizeof(*r));
}

const char *api_query(const struct api_req *r, const char *key)
{
    for (int i = 0; i < r->n_query; i++)
        if (strcmp(r->query[i].key, key) == 0)
            return r->query[i].value;
    return NULL;
}

const char *api_header(const struct api_req *r, const char *name)
{
    return r->header ? r->header(r->conn, name) : NULL;
}

/* ---- responses ---- */

void api_resp_release(struct api_resp *r)
{
    if (r->stream)
        r->stream->free(r->stream);
    json_decref(r->json);
    free(r->text);
    memset(r, 0, sizeof(*r));
}

void api_resp_json(struct api_resp *r, int status, json_t *json)
{
    json_decref(r->json);
    free(r->text);
    r->text = NULL;
    r->status = status;
    r->json = json;
}

void api_resp_error(struct api_resp *r, int status, const char *type, const char *message)
{
    json_t *e = json_object();
    json_object_set_new(e, "type", json_string(type));
    /* _nocheck: a message may quote the client's bytes; the serializer
     * turns what is not UTF-8 into U+FFFD */
    json_object_set_new(e, "message", json_string_nocheck(message ? message : ""));
    api_resp_json(r, status, json_pack("{s:o}", "error", e));
}

void api_resp_body(struct api_resp *r, char **body, size_t *len, const char **type)
{
    if (r->text) {
        *body = r->text;
        *len = r->text_len;
        *type = r->content_type ? r->content_type : "text/plain; charset=utf-8";
        r->text = NULL;
        return;
    }
    struct wfo_buf b = WFO_BUF_INIT;
    if (r->json && wfo_redact_active()) {
        /* the last line of defence: no response shows a secret's value */
        json_t *red = wfo_redact_json(r->json);
        json_decref(r->json);
        r->json = red;
    }
    if (r->json)
        wfo_json_dumpb(r->json, &b);
    else
        wfo_buf_adds(&b, "{}");
    wfo_buf_addch(&b, '\n');
    *body = wfo_buf_detach(&b, len);
    *type = "application/json";
}

/* ---- bodies and fields ---- */

static int is_yaml_type(const char *t)
{
    return t && (strcmp(t, "application/yaml") == 0 || strcmp(t, "text/yaml") == 0 ||
                 strcmp(t, "application/x-yaml") == 0 || strcmp(t, "text/x-yaml") == 0);
}

int api_body_object(const struct api_req *req, int allow_yaml, json_t **out, struct wfo_error *err)
{
    json_t *v = NULL;
    int rc;
    size_t i = 0;
    while (i < req->body_len && strchr(" \t\r\n", req->body[i]))
        i++;
    if (i == req->body_len) {
        *out = json_object();
        return 0;
    }
    if (allow_yaml && is_yaml_type(req->content_type))
        rc = wfo_yaml_parse(req->body, req->body_len, &v, err);
    else if (allow_yaml && (!req->content_type || strcmp(req->content_type, "application/json")))
        rc = wfo_doc_parse(req->body, req->body_len, &v, err);
    else
        rc = wfo_json_parse(req->body, req->body_len, &v, err);
    if (rc < 0) {
        wfo_error_prefix(err, "body");
        return rc;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        return wfo_error_set(err, WFO_EINVAL, "body: expected a JSON object");
    }
    *out = v;
    return 0;
}

int api_fields_known(const json_t *obj, const char *where, const char *const *known,
                     struct wfo_error *err)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v)
    {
        int ok = 0;
        for (const char *const *n = known; *n && !ok; n++)
            ok = strcmp(*n, k) == 0;
        if (ok)
            continue;
        struct wfo_buf list = WFO_BUF_INIT;
        for (const char *const *n = known; *n; n++)
            wfo_buf_addf(&list, "%s%s", n == known ? "" : ", ", *n);
        int rc =
            wfo_error_set(err, WFO_EINVAL, "%s%s%s: unknown field (expected %s)",
                          where ? where : "", where ? "." : "", k, list.len ? list.buf : "none");
        wfo_buf_release(&list);
        return rc;
    }
    return 0;
}

int api_payload_check(const struct api *a, const json_t *v, const char *what, struct wfo_error *err)
{
    if (!v || !a->opt.payload_max)
        return 0;
    struct wfo_buf b = WFO_BUF_INIT;
    wfo_json_dumpb(v, &b);
    size_t n = b.len;
    wfo_buf_release(&b);
    if (n <= a->opt.payload_max)
        return 0;
    return wfo_error_set(err, WFO_EPAYLOAD,
                         "%s: %zu bytes of JSON, over limits.payload_bytes (%zu)", what, n,
                         a->opt.payload_max);
}

int api_field_str(const json_t *obj, const char *key, int required, const char **out,
                  struct wfo_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (required)
            return wfo_error_set(err, WFO_EINVAL, "%s: required", key);
        return 0;
    }
    if (!json_is_string(v))
        return wfo_error_set(err, WFO_EINVAL, "%s: expected a string", key);
    *out = json_string_value(v);
    return 0;
}

int api_field_int(const json_t *obj, const char *key, int required, int64_t min, int64_t max,
                  int64_t *out, struct wfo_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (required)
            return wfo_error_set(err, WFO_EINVAL, "%s: required", key);
        return 0;
    }
    if (!json_is_integer(v))
        return wfo_error_set(err, WFO_EINVAL, "%s: expected an integer", key);
    json_int_t i = json_integer_value(v);
    if (i < min || i > max)
        return wfo_error_set(err, WFO_EINVAL, "%s: expected an integer from %lld to %lld", key,
                             (long long)min, (long long)max);
    *out = i;
    return 0;
}

int api_field_bool(const json_t *obj, const char *key, int *out, struct wfo_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_boolean(v))
        return wfo_error_set(err, WFO_EINVAL, "%s: expected true or false", key);
    *out = json_is_true(v);
    return 0;
}

int api_field_duration(const json_t *obj, const char *key, int64_t *out, struct wfo_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return 0;
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = json_integer_value(v);
        return 0;
    }
    if (json_is_string(v) && wfo_duration_parse(json_string_value(v), out) == 0)
        return 0;
    return wfo_error_set(err, WFO_EINVAL,
                         "%s: expected a duration (\"1.5s\", \"250ms\") or milliseconds", key);
}

int api_query_duration(const struct api_req *req, const char *key, int64_t *out,
                       struct wfo_error *err)
{
    const char *s = api_query(req, key);
    if (!s)
        return 0;
    int64_t ms;
    if (wfo_duration_parse_text(s, &ms) == 0) {
        *out = ms;
        return 0;
    }
    return wfo_error_set(err, WFO_EINVAL, "%s: '%s' is not a duration (\"30s\", \"250ms\")", key,
                         s);
}

int api_query_time(const struct api_req *req, const char *key, int64_t *out, struct wfo_error *err)
{
    const char *s = api_query(req, key);
    if (!s)
        return 0;
    if (wfo_time_parse(s, out) == 0)
        return 0;
    return wfo_error_set(err, WFO_EINVAL, "%s: '%s' is not an RFC 3339 time", key, s);
}

int api_wait_begin(struct api *a, struct api_req *req, struct wfo_error *err)
{
    int limit = a->opt.long_polls_per_token;
    if (!req->tok || limit <= 0 || req->waiting)
        return 0;
    if (atomic_fetch_add(&req->tok->waiting, 1) >= limit) {
        atomic_fetch_sub(&req->tok->waiting, 1);
        return wfo_error_set(err, WFO_EBUSY,
                             "this token already has %d requests waiting "
                             "(limits.long_polls_per_token): try again when one returns",
                             limit);
    }
    req->waiting = 1;
    return 0;
}

void api_wait_end(struct api_req *req)
{
    if (req->waiting && req->tok)
        atomic_fetch_sub(&req->tok->waiting, 1);
    req->waiting = 0;
}

int64_t api_wait_cap(const struct api *a, int64_t wait_ms)
{
    if (wait_ms < 0)
        return 0;
    return wait_ms > a->opt.max_wait_ms ? a->opt.max_wait_ms : wait_ms;
}

/* ---- cursors (R3) ---- */

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

#define CURSOR_MAC 12
#define CURSOR_RAW (8 + CURSOR_MAC)
#define CURSOR_LEN 27 /* ceil(20 * 8 / 6) */

static void cursor_mac(const struct api *a, const char *ns, int64_t seq, unsigned char mac[32])
{
    char msg[256];
    int n = snprintf(msg, sizeof(msg), "wfo-cursor-v1:%s:%lld", ns ? ns : a->ns, (long long)seq);
    wfo_hmac_sha256(a->cursor_key, sizeof(a->cursor_key), msg,
                    (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1, mac);
}

void api_cursor_encode(const struct api *a, const char *ns, int64_t seq, char out[64])
{
    unsigned char raw[CURSOR_RAW + 1] = {0}, mac[32];
    for (int i = 0; i < 8; i++)
        raw[i] = (unsigned char)((uint64_t)seq >> (56 - 8 * i));
    cursor_mac(a, ns, seq, mac);
    memcpy(raw + 8, mac, CURSOR_MAC);
    int o = 0;
    for (int i = 0; i < CURSOR_RAW; i += 3) {
        unsigned v = (unsigned)raw[i] << 16 | (unsigned)raw[i + 1] << 8 | raw[i + 2];
        int left = CURSOR_RAW - i;
        out[o++] = b64url[(v >> 18) & 63];
        out[o++] = b64url[(v >> 12) & 63];
        if (left > 1)
            out[o++] = b64url[(v >> 6) & 63];
        if (left > 2)
            out[o++] = b64url[v & 63];
    }
    out[o] = 0;
}

int api_cursor_decode(const struct api *a, const char *ns, const char *cursor, int64_t *seq,
                      struct wfo_error *err)
{
    unsigned char raw[CURSOR_RAW + 2] = {0}, mac[32];
    if (strlen(cursor) != CURSOR_LEN)
        goto bad;
    unsigned acc = 0;
    int bits = 0, o = 0;
    for (int i = 0; i < CURSOR_LEN; i++) {
        const char *p = strchr(b64url, cursor[i]);
        if (!p || !cursor[i])
            goto bad;
        acc = (acc << 6) | (unsigned)(p - b64url);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            raw[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (o != CURSOR_RAW || acc != 0)
        goto bad;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | raw[i];
    if (v == 0 || v > INT64_MAX)
        goto bad;
    cursor_mac(a, ns, (int64_t)v, mac);
    if (!wfo_ct_equal(mac, raw + 8, CURSOR_MAC))
        goto bad;
    *seq = (int64_t)v;
    return 0;
bad:
    return wfo_error_set(err, WFO_EINVAL, "cursor: not a cursor this server issued");
}

/* ---- the API object ---- */

static void opt_out_free(struct api *a);

int api_new(struct wfo_engine *engine, const struct api_options *opt, struct api_metrics *metrics,
            struct api **out, struct wfo_error *err)
{
    struct api *a = wfo_calloc(1, sizeof(*a));
    a->engine = engine;
    a->opt = *opt;
    a->ns = wfo_strdup(opt->ns ? opt->ns : "default");
    a->cursor_secret = wfo_strdup(opt->cursor_secret ? opt->cursor_secret : "");
    a->opt.ns = a->ns;
    a->opt.cursor_secret = a->cursor_secret;
    if (!a->opt.body_max)
        a->opt.body_max = 1u << 20;
    if (a->opt.max_wait_ms <= 0)
        a->opt.max_wait_ms = 600000;
    /* the store's server key, never the URL (R3); without an engine (unit
     * tests, the fuzzer) the test's secret stands in */
    if (engine) {
        unsigned char key[32];
        engine_server_key(engine, key);
        wfo_hmac_sha256(key, sizeof(key), "wfo-cursor-key", 14, a->cursor_key);
    } else {
        wfo_hmac_sha256(a->cursor_secret, strlen(a->cursor_secret), "wfo-cursor-key", 14,
                        a->cursor_key);
    }
    a->metrics = metrics;
    atomic_init(&a->stopping, 0);
    static const char *const role_names[] = {"", "reader", "worker", "operator", "admin"};
    a->tokens = wfo_calloc((size_t)opt->n_tokens + 1, sizeof(*a->tokens));
    for (int i = 0; i < opt->n_tokens; i++) {
        const struct api_token_conf *c = &opt->tokens[i];
        struct api_token *t = &a->tokens[a->n_tokens];
        enum api_role role = API_PUBLIC;
        for (int r = API_READER; r <= API_ADMIN; r++)
            if (c->role && strcmp(c->role, role_names[r]) == 0)
                role = (enum api_role)r;
        if (!c->sha256_hex || wfo_unhex(c->sha256_hex, t->sha256, sizeof(t->sha256)) < 0 ||
            role == API_PUBLIC) {
            int rc =
                wfo_error_set(err, WFO_EINVAL, "auth.tokens[%d]: not a token digest and role", i);
            opt_out_free(a);
            return rc;
        }
        t->ns = wfo_strdup(c->ns ? c->ns : "default");
        t->role = role;
        atomic_init(&t->waiting, 0);
        if (c->name) {
            t->name = wfo_strdup(c->name);
        } else {
            char hex[65];
            wfo_hex(t->sha256, sizeof(t->sha256), hex);
            struct wfo_buf nb = WFO_BUF_INIT;
            wfo_buf_addf(&nb, "sha256:%.12s", hex);
            t->name = wfo_buf_detach(&nb, NULL);
        }
        a->n_tokens++;
    }
    a->opt.tokens = NULL;
    a->opt.n_tokens = a->n_tokens;
    *out = a;
    return 0;
}

void api_free(struct api *a)
{
    if (!a)
        return;
    for (int i = 0; i < a->n_tokens; i++) {
        free(a->tokens[i].ns);
        free(a->tokens[i].name);
    }
    free(a->tokens);
    free(a->ns);
    free(a->cursor_secret);
    free(a);
}

static void opt_out_free(struct api *a)
{
    api_free(a);
}

void api_stop(struct api *a)
{
    atomic_store(&a->stopping, 1);
}

/* ---- routing ---- */

/* Does pattern match the request's segments? Fills req->params. */
static int route_match(const char *pattern, struct api_req *req)
{
    const char *p = pattern + 1;
    int i = 0, np = 0;
    for (;;) {
        const char *end = strchr(p, '/');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (i >= req->n_segs)
            return 0;
        if (n > 1 && p[0] == '{') {
            if (!req->segs[i][0] || np == API_MAX_PARAMS)
                return 0;
            req->params[np++] = req->segs[i];
        } else if (strlen(req->segs[i]) != n || memcmp(req->segs[i], p, n) != 0) {
            return 0;
        }
        i++;
        if (!end)
            break;
        p = end + 1;
    }
    return i == req->n_segs;
}

static void add_allow(char *allow, size_t size, const char *method)
{
    if (strstr(allow, method))
        return;
    size_t n = strlen(allow);
    snprintf(allow + n, size - n, "%s%s", n ? ", " : "", method);
}

/* ---- authentication (SPEC 4) ---- */

/* The token of the request's Authorization header: *tok NULL when there
 * is none or it is not a configured one. Every configured digest is
 * compared, in constant time, whatever matched before. */
static void auth_lookup(const struct api *a, const struct api_req *req,
                        const struct api_token **tok, int *given)
{
    const char *h = api_header(req, "Authorization");
    *tok = NULL;
    *given = h != NULL;
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return;
    h += 7;
    while (*h == ' ')
        h++;
    size_t n = strlen(h);
    while (n && (h[n - 1] == ' ' || h[n - 1] == '\t'))
        n--;
    if (!n)
        return;
    unsigned char md[WFO_SHA256_SIZE];
    wfo_sha256(h, n, md);
    for (int i = 0; i < a->n_tokens; i++)
        if (wfo_ct_equal(md, a->tokens[i].sha256, sizeof(md)) && !*tok)
            *tok = &a->tokens[i];
}

static const char *role_name(enum api_role r)
{
    static const char *const names[] = {"anyone", "reader", "worker", "operator", "admin"};
    return names[r];
}

/* Who the request is: 0, or 401 in resp when tokens are configured and it
 * has none that is known, unless its path is one that needs none
 * (public_path: /healthz, /readyz, /metrics, with any method).
 * Runs before the route is known to exist, so that without a token an
 * unknown route or method is a 401 like any other (SPEC 4: "every other
 * request is checked"). The page `/` comes with its 401: the browser shows
 * it, and it asks for a token. */
static int authenticate(struct api *a, struct api_req *req, const struct api_route *found,
                        int public_path, struct api_resp *resp)
{
    const struct api_token *tok = NULL;
    int given = 0;
    req->tok = NULL;
    req->waiting = 0;
    if (a->n_tokens == 0) {
        req->ns = a->ns;
        req->who = "anonymous";
        return 0;
    }
    auth_lookup(a, req, &tok, &given);
    req->ns = tok ? tok->ns : NULL;
    req->who = tok ? tok->name : "anonymous";
    req->tok = (struct api_token *)tok; /* its counter is the one mutable part */
    if (tok || public_path)
        return 0;
    if (found && found->fn == api_ops_index) {
        struct wfo_error err = WFO_ERROR_INIT;
        api_ops_index(a, req, resp, &err);
        resp->status = 401;
    } else {
        api_resp_error(resp, 401, wfo_error_type(WFO_EUNAUTH),
                       given ? "unknown token (expected Authorization: Bearer TOKEN)"
                             : "a token is required (Authorization: Bearer TOKEN)");
    }
    resp->challenge = 1;
    return -1;
}

/* Whether who authenticate() found may call found: 0, or an error
 * document in resp (403, 404). */
static int authorize(struct api *a, struct api_req *req, const struct api_route *found,
                     struct api_resp *resp)
{
    const struct api_token *tok = req->tok;
    char msg[256];
    if (a->n_tokens == 0 || found->role == API_PUBLIC)
        return 0;
    if (tok->role < found->role) {
        snprintf(msg, sizeof(msg), "role %s may not %s %s (it needs %s)", role_name(tok->role),
                 req->method, found->pattern, role_name(found->role));
        api_resp_error(resp, 403, wfo_error_type(WFO_EFORBIDDEN), msg);
        return -1;
    }
    if ((found->flags & API_F_EXEC) && a->engine) {
        struct wfo_error err = WFO_ERROR_INIT;
        /* an execution of another namespace is as absent as one that does
         * not exist: the same 404, the same message (SPEC 4) */
        int rc = query_exec_check(a->engine, req->ns, req->params[0], &err);
        if (rc < 0) {
            api_resp_error(resp, wfo_error_http_status(rc), wfo_error_type(rc), err.message);
            return -1;
        }
    }
    return 0;
}

/* ---- a cluster: requests about another node's execution (E8) ----
 *
 * An execution is served by the node that holds its shard: a request that
 * names one held elsewhere is forwarded there, as it came (method, path,
 * query, body, the caller's Authorization), and the owner's answer is
 * given back as it is, so any node answers as the owner does (409 for a
 * stale lease, an idempotent start, ?wait=). The forwarded request carries
 * X-Wfo-Forwarded and is never forwarded again. A read whose owner does not
 * answer (a takeover under way) is served from the store here; a change
 * gets 503. docs/operations/scaling.md#several-nodes. */

/* A forwarded request waits for its answer a shard lease and this much
 * (and its ?wait=): longer, and the owner has lost the shard anyway. */
#define FORWARD_SLACK_MS 2000

/* The execution a request is about, when it names one: the {id} of an
 * execution route, the execution of a task id (EXECID.TOKEN), or the
 * "id" of a start. */
static const char *request_exec(const struct api_route *found, const struct api_req *req, char *buf,
                                size_t size)
{
    if (found->flags & API_F_EXEC)
        return req->params[0];
    if (strncmp(found->pattern, "/v1/tasks/{task_id}", 19) == 0 && req->params[0]) {
        const char *dot = strrchr(req->params[0], '.');
        if (!dot || (size_t)(dot - req->params[0]) >= size)
            return NULL;
        memcpy(buf, req->params[0], (size_t)(dot - req->params[0]));
        buf[dot - req->params[0]] = 0;
        return buf;
    }
    if (found->fn == api_execution_start && req->body) {
        json_t *body = json_loadb(req->body, req->body_len, 0, NULL);
        const char *id = wfo_json_str(body, "id");
        if (id && strlen(id) < size)
            snprintf(buf, size, "%s", id);
        json_decref(body);
        return id ? buf : NULL;
    }
    return NULL;
}

int api_forward(struct api *a, const struct api_req *req, const char *url, const char *body,
                size_t body_len, int64_t timeout_ms, struct httpc_response *res,
                struct wfo_error *err)
{
    struct httpc_header h[3];
    int n = 0;
    const char *auth = api_header(req, "Authorization");
    if (auth)
        h[n++] = (struct httpc_header){"Authorization", (char *)auth};
    if (body)
        h[n++] = (struct httpc_header){"Content-Type", "application/json"};
    h[n++] = (struct httpc_header){"X-Wfo-Forwarded", (char *)engine_node(a->engine)};
    struct httpc_request hr = {.method = req->method,
                               .url = url,
                               .headers = h,
                               .n_headers = n,
                               .body = body,
                               .body_len = body_len,
                               .timeout_ms = timeout_ms,
                               .cancel = &a->stopping}; /* a shutdown is not held up */
    return httpc_do(&hr, res, err);
}

/* 1 when resp holds the answer of the node that holds the request's
 * execution (or the error of reaching it); 0 to serve the request here. */
static int forward(struct api *a, struct api_req *req, const struct api_route *found,
                   struct api_resp *resp)
{
    char idbuf[WFO_EXEC_ID_SIZE], owner[512], first[512] = "";
    struct wfo_error err = WFO_ERROR_INIT;
    const char *id;
    if (!a->engine || !engine_clustered(a->engine) || api_header(req, "X-Wfo-Forwarded") ||
        !(id = request_exec(found, req, idbuf, sizeof(idbuf))))
        return 0;
    int reads = strcmp(found->method, "GET") == 0;
    /* an owner that does not answer within a shard lease (stopped, cut
     * off) is asked once more if its shard has moved on since */
    for (int tries = 0;; tries++) {
        int rc = query_owner(a->engine, id, owner, sizeof(owner), &err);
        if (rc == 1 || (rc < 0 && reads))
            return 0;
        if (rc < 0) {
            api_resp_error(resp, wfo_error_http_status(rc), wfo_error_type(rc), err.message);
            return 1;
        }
        if (tries > 0 && strcmp(owner, first) == 0)
            break; /* the same node, still silent */
        snprintf(first, sizeof(first), "%s", owner);
        struct wfo_buf url = WFO_BUF_INIT;
        wfo_buf_adds(&url, owner);
        wfo_buf_adds(&url, req->path);
        int64_t timeout = engine_shard_lease(a->engine) + FORWARD_SLACK_MS;
        for (int i = 0; i < req->n_query; i++) {
            wfo_buf_addch(&url, i ? '&' : '?');
            httpc_escape(&url, req->query[i].key);
            wfo_buf_addch(&url, '=');
            httpc_escape(&url, req->query[i].value);
            if (strcmp(req->query[i].key, "wait") == 0)
                timeout += a->opt.max_wait_ms;
        }
        struct httpc_response res = {0};
        rc = api_forward(a, req, url.buf, req->body, req->body_len, timeout, &res, &err);
        wfo_buf_release(&url);
        if (rc == 0) {
            resp->status = (int)res.status;
            resp->text = wfo_buf_detach(&res.body, &resp->text_len);
            resp->content_type = "application/json";
            httpc_response_release(&res);
            return 1;
        }
        httpc_response_release(&res);
        if (atomic_load(&a->stopping) || rc != WFO_ETIMEOUT || tries > 0)
            break;
    }
    if (reads)
        return 0; /* served from the store here */
    char msg[1400];
    if (atomic_load(&a->stopping))
        snprintf(msg, sizeof(msg), "the server is shutting down");
    else
        snprintf(msg, sizeof(msg),
                 "execution '%s' is served by node %s, which did not answer: %s (whether it "
                 "acted is not known)",
                 id, owner, err.message);
    api_resp_error(resp, 503, "Unavailable", msg);
    return 1;
}

static int not_implemented(struct api_resp *resp, const struct api_req *req)
{
    char msg[256];
    snprintf(msg, sizeof(msg), "%s %s is not implemented yet", req->method,
             req->route ? req->route : "");
    api_resp_error(resp, 501, "NotImplemented", msg);
    return 0;
}

/* ---- the audit log (SPEC 7) ---- */

/* One line and one count for every request that changes state, and for
 * every one refused for its token (401, 403): who (the token's name or
 * digest prefix, never the token), what (method and route), on which
 * execution, with which result. Polls and heartbeats change only leases and
 * come every second from every worker: they are left out unless refused. */
static void audit(struct api *a, const struct api_req *req, const struct api_route *found,
                  const struct api_resp *resp)
{
    if (!found)
        return;
    int denied = resp->status == 401 || resp->status == 403;
    int reads = strcmp(found->method, "GET") == 0;
    int lease_only = found->fn == api_task_poll || found->fn == api_task_heartbeat;
    if (!denied && (reads || lease_only))
        return;
    const char *outcome = denied ? "denied" : resp->status < 400 ? "ok" : "failed";
    /* a worker's batch of results names several executions: all of them,
     * and the outcome says how many of its results were refused */
    struct wfo_buf many = WFO_BUF_INIT;
    if (found->fn == api_task_complete_many && resp->status == 200) {
        json_t *rs = json_object_get(resp->json, "results"), *r;
        size_t i, refused = 0;
        json_array_foreach(rs, i, r)
        {
            const char *id = wfo_json_str(r, "task_id"), *dot = id ? strrchr(id, '.') : NULL;
            if (dot) {
                if (many.len)
                    wfo_buf_addch(&many, ' ');
                wfo_buf_add(&many, id, (size_t)(dot - id));
            }
            refused += json_object_get(r, "status_code") != NULL;
        }
        if (refused)
            outcome = refused == json_array_size(rs) ? "failed" : "partial";
    }
    char action[160], status[16], exec[WFO_EXEC_ID_SIZE] = "";
    snprintf(action, sizeof(action), "%s %s", req->method, found->pattern);
    snprintf(status, sizeof(status), "%d", resp->status);
    if (found->flags & API_F_EXEC) {
        snprintf(exec, sizeof(exec), "%s", req->params[0] ? req->params[0] : "");
    } else if (found->fn == api_execution_start && resp->status < 300) {
        const char *id = wfo_json_str(resp->json, "id");
        snprintf(exec, sizeof(exec), "%s", id ? id : "");
    } else if (strncmp(found->pattern, "/v1/tasks/{task_id}", 19) == 0 && req->params[0]) {
        /* a task id is EXECID.TOKEN */
        const char *dot = strrchr(req->params[0], '.');
        if (dot && (size_t)(dot - req->params[0]) < sizeof(exec))
            snprintf(exec, sizeof(exec), "%.*s", (int)(dot - req->params[0]), req->params[0]);
    }
    /* a line about one execution names its workflow too (SPEC 7): a
     * start's answer has it; else its row (a read, for these requests
     * only: a worker's batch of results names no execution) */
    char wf[160] = "";
    const char *swf = req->workflow                      ? req->workflow
                      : found->fn == api_execution_start ? wfo_json_str(resp->json, "workflow")
                                                         : NULL;
    if (swf)
        snprintf(wf, sizeof(wf), "%s", swf);
    else if (exec[0] && a->engine && wfo_log_enabled(WFO_LOG_INFO)) {
        struct wfo_error ignore = WFO_ERROR_INIT;
        if (query_exec_workflow(a->engine, req->ns, exec, wf, sizeof(wf), &ignore) < 0)
            wf[0] = 0;
    }
    json_t *e = resp->status >= 400 ? json_object_get(resp->json, "error") : NULL;
    const char *kv[] = {"who",        req->who ? req->who : "anonymous",
                        "namespace",  req->ns,
                        "action",     action,
                        "target",     found->flags & API_F_EXEC ? NULL : req->params[0],
                        "status",     status,
                        "outcome",    outcome,
                        "error",      e ? wfo_json_str(e, "type") : NULL,
                        "executions", many.len ? many.buf : NULL};
    wfo_log_fields(WFO_LOG_INFO, exec[0] ? exec : NULL, wf[0] ? wf : NULL, kv,
                   (int)WFO_ARRAY_SIZE(kv) / 2, "audit");
    wfo_buf_release(&many);
    if (a->metrics)
        api_metrics_audit(a->metrics, found->method, found->pattern, outcome);
}

/* Every query parameter of req is one that found reads, once: 0, or a 400
 * in resp that names the first that is not (`?workfow=x` would list
 * everything; SPEC 4 answers an unknown field so). */
static int query_known(const struct api_req *req, const struct api_route *found,
                       struct api_resp *resp)
{
    char msg[512];
    for (int i = 0; i < req->n_query; i++) {
        const char *k = req->query[i].key, *known = found->query ? found->query : "";
        size_t n = strlen(k);
        int ok = 0;
        for (const char *p = known; *p && !ok; p += strcspn(p, ","), p += *p == ',')
            ok = strncmp(p, k, n) == 0 && (p[n] == ',' || p[n] == '\0') && n > 0;
        if (!ok) {
            char list[256] = "none";
            for (size_t at = 0, j = 0; known[j] && at + 3 < sizeof(list); j++) {
                list[at++] = known[j];
                if (known[j] == ',')
                    list[at++] = ' ';
                list[at] = '\0';
            }
            snprintf(msg, sizeof(msg), "%.200s: unknown query parameter (expected %s)", k, list);
            api_resp_error(resp, 400, "BadRequest", msg);
            return -1;
        }
        for (int j = 0; j < i; j++)
            if (strcmp(req->query[j].key, k) == 0) {
                snprintf(msg, sizeof(msg), "%.200s: query parameter given twice", k);
                api_resp_error(resp, 400, "BadRequest", msg);
                return -1;
            }
    }
    return 0;
}

/* The route of req, its parameters set: 0 with *found, or 1 when resp
 * already holds the answer (no route, 405, refused, stopping, forwarded
 * to another node). *matched: a pattern that matched the path (for a
 * 405's metrics). */
static int route_find(struct api *a, struct api_req *req, struct api_resp *resp,
                      const struct api_route **found, const char **matched)
{
    char allow[sizeof(resp->allow)] = "";
    int head = strcmp(req->method, "HEAD") == 0;
    int public_path = 0; /* a path that needs no token (with any method) */

    *found = NULL;
    *matched = NULL;
    memset(resp, 0, sizeof(*resp));
    if (!req->bad_target) {
        for (size_t i = 0; i < WFO_ARRAY_SIZE(routes); i++) {
            if (!route_match(routes[i].pattern, req))
                continue;
            if (!*matched)
                *matched = routes[i].pattern;
            public_path |= routes[i].role == API_PUBLIC;
            if (strcmp(routes[i].method, req->method) == 0 ||
                (head && strcmp(routes[i].method, "GET") == 0)) {
                *found = &routes[i];
                break;
            }
            add_allow(allow, sizeof(allow), routes[i].method);
            if (strcmp(routes[i].method, "GET") == 0)
                add_allow(allow, sizeof(allow), "HEAD");
        }
    }
    if (authenticate(a, req, *found, public_path, resp) < 0)
        return 1;
    if (req->bad_target == 2) {
        api_resp_error(resp, 400, "BadRequest",
                       "request target: bad %-escape, NUL byte or invalid UTF-8");
        return 1;
    }
    if (!*found && allow[0]) {
        char msg[256];
        snprintf(msg, sizeof(msg), "method %s is not allowed here (allowed: %s)", req->method,
                 allow);
        api_resp_error(resp, 405, "MethodNotAllowed", msg);
        snprintf(resp->allow, sizeof(resp->allow), "%s", allow);
        return 1;
    }
    if (!*found) {
        api_resp_error(resp, 404, "NotFound", "no such route");
        return 1;
    }
    req->route = (*found)->pattern;
    memset(req->params, 0, sizeof(req->params));
    route_match((*found)->pattern, req);
    if (authorize(a, req, *found, resp) < 0)
        return 1;
    if (atomic_load(&a->stopping) && (*found)->role != API_PUBLIC) {
        api_resp_error(resp, 503, "Unavailable", "the server is shutting down");
        return 1;
    }
    if (!(*found)->fn) {
        not_implemented(resp, req);
        return 1;
    }
    if (query_known(req, *found, resp) < 0)
        return 1;
    if (((*found)->flags & API_F_STORE) && a->engine && api_store_down(a, resp))
        return 1;
    return forward(a, req, *found, resp);
}

/* After the handler (rc, err): its error as the answer, then the audit
 * line and the metrics. */
static void route_done(struct api *a, struct api_req *req, struct api_resp *resp,
                       const struct api_route *found, const char *matched, int ran, int rc,
                       const struct wfo_error *err, int64_t t0)
{
    if (ran) {
        api_wait_end(req); /* whatever path the handler took */
        if (rc < 0) {
            const char *msg = err->code && err->message[0] ? err->message : wfo_strerror(rc);
            api_resp_error(resp, wfo_error_http_status(rc), wfo_error_type(rc), msg);
        }
        if (!resp->status)
            api_resp_error(resp, 500, "InternalError", "the handler made no response");
    }
    audit(a, req, found, resp);
    if (a->metrics)
        api_metrics_http(a->metrics, found ? found->method : NULL,
                         found     ? found->pattern
                         : matched ? matched
                                   : "unmatched",
                         resp->status, wfo_mono_ms() - t0);
}

void api_handle(struct api *a, struct api_req *req, struct api_resp *resp)
{
    struct wfo_error err = WFO_ERROR_INIT;
    const struct api_route *found;
    const char *matched;
    int64_t t0 = wfo_mono_ms();
    int rc = 0, ran = 0;
    if (route_find(a, req, resp, &found, &matched) == 0) {
        rc = found->fn(a, req, resp, &err);
        ran = 1;
    }
    route_done(a, req, resp, found, matched, ran, rc, &err, t0);
}

/* The handlers that can also run in two halves (api_begin, api_end), or
 * answer without waiting when they can (api_try_now). */
struct api_halves {
    api_handler fn;
    const char *method, *pattern;
    api_later_fn later;
    api_end_fn end;
    api_now_fn now;
    int end_waits; /* with ?wait=, end may block: api_later's end_waits */
};

static const struct api_halves halves[] = {
    {api_execution_start, "POST", "/v1/executions", api_execution_start_later,
     api_execution_start_end, NULL, 1},
    {api_task_poll, "POST", "/v1/tasks/poll", NULL, NULL, api_task_poll_now, 0},
    {api_task_complete_many, "POST", "/v1/tasks/complete", api_task_complete_many_later,
     api_task_complete_many_end, NULL, 0},
    {api_task_complete, "POST", "/v1/tasks/{task_id}/complete", api_task_complete_later,
     api_task_one_end, NULL, 0},
    {api_task_fail, "POST", "/v1/tasks/{task_id}/fail", api_task_fail_later, api_task_one_end, NULL,
     0},
};

static const struct api_halves *halves_of(const struct api_route *r)
{
    for (size_t i = 0; r && i < WFO_ARRAY_SIZE(halves); i++)
        if (halves[i].fn == r->fn)
            return &halves[i];
    return NULL;
}

int api_can_later(struct api *a, const struct api_req *req)
{
    if (a->engine && engine_clustered(a->engine)) /* forward() would block */
        return 0;
    int wait = 0;
    for (int i = 0; i < req->n_query; i++)
        wait |= strcmp(req->query[i].key, "wait") == 0;
    for (size_t i = 0; i < WFO_ARRAY_SIZE(halves); i++)
        if (halves[i].later && (!wait || halves[i].end_waits) &&
            strcmp(halves[i].method, req->method) == 0 &&
            route_match(halves[i].pattern, (struct api_req *)req))
            return 1;
    return 0;
}

int api_try_now(struct api *a, struct api_req *req, struct api_resp *resp)
{
    struct wfo_error err = WFO_ERROR_INIT;
    const struct api_route *found;
    const char *matched;
    const struct api_halves *h = NULL;
    if (a->engine && engine_clustered(a->engine)) /* its polls ask the other nodes */
        return 0;
    for (size_t i = 0; i < WFO_ARRAY_SIZE(halves) && !h; i++)
        if (halves[i].now && strcmp(halves[i].method, req->method) == 0 &&
            route_match(halves[i].pattern, req))
            h = &halves[i];
    if (!h)
        return 0;
    int64_t t0 = wfo_mono_ms();
    if (route_find(a, req, resp, &found, &matched)) {
        route_done(a, req, resp, found, matched, 0, 0, &err, t0);
        return 1;
    }
    int rc = found->fn == h->fn ? h->now(a, req, resp, &err) : 0;
    if (rc == 0) {
        api_resp_release(resp);
        memset(resp, 0, sizeof(*resp));
        return 0;
    }
    route_done(a, req, resp, found, NULL, 1, rc < 0 ? rc : 0, &err, t0);
    return 1;
}

int api_begin(struct api *a, struct api_req *req, struct api_resp *resp, struct api_later *l)
{
    struct wfo_error err = WFO_ERROR_INIT;
    const char *matched;
    l->t0 = wfo_mono_ms();
    l->state = NULL;
    l->end_waits = 0;
    if (route_find(a, req, resp, &l->route, &matched)) {
        route_done(a, req, resp, l->route, matched, 0, 0, &err, l->t0);
        return 0;
    }
    if (!(l->halves = halves_of(l->route)) || !l->halves->later) { /* said yes to another */
        int rc = l->route->fn(a, req, resp, &err);
        route_done(a, req, resp, l->route, NULL, 1, rc, &err, l->t0);
        return 0;
    }
    int rc = l->halves->later(a, req, l, &err);
    if (rc == 1)
        return 1;
    /* nothing queued: end answers (0), or frees the state (refused) */
    if (rc == 0)
        rc = l->halves->end(a, req, resp, l, &err);
    else {
        struct wfo_error ignore = WFO_ERROR_INIT;
        l->halves->end(a, req, resp, l, &ignore);
    }
    route_done(a, req, resp, l->route, NULL, 1, rc, &err, l->t0);
    return 0;
}

void api_end(struct api *a, struct api_req *req, struct api_resp *resp, struct api_later *l)
{
    struct wfo_error err = WFO_ERROR_INIT;
    int rc = l->halves->end(a, req, resp, l, &err);
    route_done(a, req, resp, l->route, NULL, 1, rc, &err, l->t0);
}

void api_refuse(struct api *a, struct api_req *req, struct api_resp *resp, int status, int code,
                const char *msg)
{
    const struct api_route *found = NULL;
    memset(resp, 0, sizeof(*resp));
    for (size_t i = 0; i < WFO_ARRAY_SIZE(routes) && !req->bad_target && !found; i++)
        if (route_match(routes[i].pattern, req) && strcmp(routes[i].method, req->method) == 0)
            found = &routes[i];
    api_resp_error(resp, status, wfo_error_type(code), msg);
    if (a->metrics)
        api_metrics_http(a->metrics, found ? found->method : NULL,
                         found ? found->pattern : "unmatched", status, 0);
}
