/*
 * http.c - the `http` step (SPEC 2.2, 2.3): sends the evaluated `request`
 * through common/httpc.h and makes {status, headers, body} of the answer.
 * docs/implementation/error_handling.md lists the errors it raises.
 *
 * Choices (where SPEC is silent):
 *  - method is matched without regard to case and sent upper-cased;
 *  - query values that are strings, numbers or booleans are appended to the
 *    URL percent-encoded (before any #fragment); an array repeats the key;
 *    null is left out;
 *  - body: absent or null sends none; a string is sent as it is, with no
 *    Content-Type unless headers give one; any other value is sent as JSON
 *    with Content-Type: application/json (unless headers give one);
 *  - timeout: request.timeout, else the step's timeout, else 60 s, and
 *    never past the attempt's deadline;
 *  - the result's headers have lower-cased names, repeated ones joined with
 *    ", "; the body is parsed when the content type is application/json,
 *    *+json or missing and it parses, else it is a string (invalid UTF-8
 *    and NUL bytes replaced by U+FFFD);
 *  - up to 5 redirects are followed; bodies are bounded to 10 MiB;
 *  - messages name the URL without its query, fragment and user
 *    information, which may hold secrets.
 *
 * Errors: HttpError (status outside accept_status, details {status,
 * headers, body}; retryable unless a 4xx other than 408 and 429; a request
 * that cannot be made (bad URL or header), too many redirects or a body
 * over the bound are not retryable), ConnectionError
 * (retryable, except for an address refused by deny_private), Timeout
 * (retryable), Cancelled.
 */
#include "common/compat.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "runner.h"
#include "../common/duration.h"
#include "../common/httpc.h"
#include "../common/util.h"

#define HTTP_MAX_BODY ((size_t)10 << 20)
#define HTTP_MAX_REDIRECTS 5
#define HTTP_DEFAULT_TIMEOUT_MS 60000
#define HTTP_DETAIL_BODY_MAX 4096

/* The request as it goes out; built from args.request. */
struct http_call {
    char method[16];
    struct wfo_buf url;
    struct httpc_header *headers;
    int n_headers;
    char *body; /* NULL: none */
    size_t body_len;
    int64_t timeout_ms;
    char shown[HTTPC_URL_SHOWN + 8]; /* the URL as messages name it */
};

static void call_release(struct http_call *c)
{
    wfo_buf_release(&c->url);
    for (int i = 0; i < c->n_headers; i++) {
        free(c->headers[i].name);
        free(c->headers[i].value);
    }
    free(c->headers);
    free(c->body);
}

/* The text of a scalar (query values, header values), or NULL. */
static char *scalar_text(const json_t *v)
{
    if (json_is_string(v))
        return wfo_strndup(json_string_value(v), json_string_length(v));
    if (json_is_number(v) || json_is_boolean(v))
        return wfo_json_dumps(v);
    return NULL;
}

static void url_encode(struct wfo_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";

    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            wfo_buf_addch(b, *p);
        } else {
            wfo_buf_addch(b, '%');
            wfo_buf_addch(b, hex[*p >> 4]);
            wfo_buf_addch(b, hex[*p & 15]);
        }
    }
}

static int query_pair(struct wfo_buf *q, const char *key, const json_t *v, struct wfo_error *err)
{
    if (json_is_null(v))
        return 0;
    char *text = scalar_text(v);
    if (!text)
        return wfo_error_set(err, WFO_EINVAL,
                             "request.query.%.100s: must be a string, number, boolean or a list "
                             "of them",
                             key);
    if (q->len)
        wfo_buf_addch(q, '&');
    url_encode(q, key);
    wfo_buf_addch(q, '=');
    url_encode(q, text);
    free(text);
    return 0;
}

/* Appends the query to c->url, before any fragment. */
static int add_query(struct http_call *c, const json_t *query, struct wfo_error *err)
{
    struct wfo_buf q = WFO_BUF_INIT;
    const char *key;
    json_t *v;
    int rc = 0;

    if (!json_is_object(query)) {
        rc = wfo_error_set(err, WFO_EINVAL, "request.query: must be an object");
        goto out;
    }
    json_object_foreach((json_t *)query, key, v)
    {
        if (json_is_array(v)) {
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e)
            {
                if ((rc = query_pair(&q, key, e, err)) < 0)
                    goto out;
            }
        } else if ((rc = query_pair(&q, key, v, err)) < 0) {
            goto out;
        }
    }
    if (!q.len)
        goto out;
    char *url = wfo_buf_detach(&c->url, NULL);
    size_t base = strcspn(url, "#");
    const char *qm = memchr(url, '?', base);
    wfo_buf_add(&c->url, url, base);
    if (!qm)
        wfo_buf_addch(&c->url, '?');
    else if (base > 0 && url[base - 1] != '?' && url[base - 1] != '&')
        wfo_buf_addch(&c->url, '&');
    wfo_buf_add(&c->url, q.buf, q.len);
    wfo_buf_adds(&c->url, url + base);
    free(url);
out:
    wfo_buf_release(&q);
    return rc;
}

static int has_header(const struct http_call *c, const char *name)
{
    for (int i = 0; i < c->n_headers; i++)
        if (strcasecmp(c->headers[i].name, name) == 0)
            return 1;
    return 0;
}

static void add_header(struct http_call *c, const char *name, char *value)
{
    c->headers = wfo_realloc(c->headers, (size_t)(c->n_headers + 1) * sizeof(*c->headers));
    c->headers[c->n_headers].name = wfo_strdup(name);
    c->headers[c->n_headers++].value = value;
}

/* Builds c from args.request. A failure is the definition's fault: not
 * retryable. */
static int call_build(const struct step_job *job, struct http_call *c, struct wfo_error *err)
{
    static const char *const methods[] = {"GET",    "POST", "PUT",    "PATCH",
                                          "DELETE", "HEAD", "OPTIONS"};
    const json_t *req = json_object_get(job->args.fields, "request");
    const json_t *v;
    const char *key;
    json_t *hv;

    memset(c, 0, sizeof(*c));
    wfo_buf_init(&c->url, 0);
    if (!json_is_object(req))
        return wfo_error_set(err, WFO_EINVAL, "request: must be an object");

    v = json_object_get(req, "method");
    snprintf(c->method, sizeof(c->method), "GET");
    if (v && !json_is_null(v)) {
        size_t i = WFO_ARRAY_SIZE(methods);
        if (json_is_string(v))
            for (i = 0; i < WFO_ARRAY_SIZE(methods); i++)
                if (strcasecmp(methods[i], json_string_value(v)) == 0 &&
                    strlen(json_string_value(v)) == json_string_length(v))
                    break;
        if (i == WFO_ARRAY_SIZE(methods))
            return wfo_error_set(err, WFO_EINVAL,
                                 "request.method: must be one of GET, POST, PUT, PATCH, DELETE, "
                                 "HEAD, OPTIONS");
        snprintf(c->method, sizeof(c->method), "%s", methods[i]);
    }

    v = json_object_get(req, "url");
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
        return wfo_error_set(err, WFO_EINVAL, "request.url: must be a string");
    httpc_url_shown(json_string_value(v), c->shown, sizeof(c->shown));
    if (strncasecmp(json_string_value(v), "http://", 7) != 0 &&
        strncasecmp(json_string_value(v), "https://", 8) != 0)
        return wfo_error_set(err, WFO_EINVAL,
                             "request.url: '%s' does not start with http:// or "
                             "https://",
                             c->shown);
    wfo_buf_adds(&c->url, json_string_value(v));

    v = json_object_get(req, "query");
    if (v && !json_is_null(v) && add_query(c, v, err) < 0)
        return WFO_EINVAL;

    v = json_object_get(req, "headers");
    if (v && !json_is_null(v)) {
        if (!json_is_object(v))
            return wfo_error_set(err, WFO_EINVAL, "request.headers: must be an object");
        json_object_foreach((json_t *)v, key, hv)
        {
            if (json_is_null(hv))
                continue;
            char *text = scalar_text(hv);
            if (!text)
                return wfo_error_set(err, WFO_EINVAL, "request.headers.%.100s: must be a string",
                                     key);
            add_header(c, key, text);
        }
    }

    v = json_object_get(req, "body");
    if (json_is_string(v)) {
        c->body_len = json_string_length(v);
        c->body = wfo_strndup(json_string_value(v), c->body_len);
    } else if (v && !json_is_null(v)) {
        c->body = wfo_json_dumps(v);
        c->body_len = strlen(c->body);
        if (!has_header(c, "content-type"))
            add_header(c, "Content-Type", wfo_strdup("application/json"));
    }

    v = json_object_get(req, "timeout");
    if (json_is_integer(v)) {
        c->timeout_ms = json_integer_value(v);
        if (c->timeout_ms <= 0)
            return wfo_error_set(err, WFO_EINVAL, "request.timeout: must be positive");
    } else if (json_is_string(v)) {
        if (wfo_duration_parse(json_string_value(v), &c->timeout_ms) < 0 || c->timeout_ms <= 0)
            return wfo_error_set(err, WFO_EINVAL,
                                 "request.timeout: '%.40s' is not a positive duration",
                                 json_string_value(v));
    } else if (v && !json_is_null(v)) {
        return wfo_error_set(err, WFO_EINVAL,
                             "request.timeout: must be a duration or an integer of milliseconds");
    } else {
        c->timeout_ms = job->args.timeout_ms > 0 ? job->args.timeout_ms : HTTP_DEFAULT_TIMEOUT_MS;
    }
    if (job->deadline > 0) {
        int64_t left = job->deadline - wfo_now_ms();
        if (left < c->timeout_ms)
            c->timeout_ms = left > 0 ? left : 1;
    }
    return 0;
}

/* --- the answer -------------------------------------------------------------- */

/* A JSON string of the first `limit` bytes (or fewer, at a character
 * boundary) of s, invalid bytes and NULs replaced by U+FFFD. */
static json_t *text_value(const char *s, size_t len, size_t limit)
{
    struct wfo_buf b = WFO_BUF_INIT;

    wfo_utf8_scrub(&b, s, len, limit);
    json_t *r = json_stringn(b.buf, b.len);
    wfo_buf_release(&b);
    return r ? r : json_string("");
}

/* application/json, or a +json type such as application/problem+json. */
/* Whether a body of this content type is read as JSON when it parses:
 * application/json, *+json (media types are case-insensitive), or no
 * content type at all (a server that sends JSON without saying so, as
 * Conductor's HTTP task reads it too). */
static int maybe_json_type(const char *ct)
{
    if (!ct)
        return 1;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    size_t n = strcspn(ct, ";");
    while (n && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
        n--;
    return n == 0 || (n == 16 && strncasecmp(ct, "application/json", 16) == 0) ||
           (n > 5 && strncasecmp(ct + n - 5, "+json", 5) == 0);
}

/* The body as a value: parsed JSON when the content type allows it and it
 * parses (and fits in limit), else text capped at limit. */
static json_t *body_value(const struct httpc_response *res, size_t limit)
{
    json_t *v = NULL;

    if (maybe_json_type(res->content_type) && res->body.len <= limit &&
        wfo_json_parse(res->body.buf, res->body.len, &v, NULL) == 0)
        return v;
    return text_value(res->body.buf, res->body.len, limit);
}

/* {name: value}, names lower-cased, repeated headers joined with ", ". */
static json_t *headers_value(const struct httpc_response *res)
{
    json_t *o = json_object();

    for (int i = 0; i < res->n_headers; i++) {
        json_t *name = text_value(res->headers[i].name, strlen(res->headers[i].name), 1024);
        json_t *val = text_value(res->headers[i].value, strlen(res->headers[i].value), 65536);
        const char *k = json_string_value(name);
        json_t *old = json_object_get(o, k);
        if (old) {
            struct wfo_buf b = WFO_BUF_INIT;
            wfo_buf_addf(&b, "%s, %s", json_string_value(old), json_string_value(val));
            json_object_set_new(o, k, json_stringn(b.buf, b.len));
            wfo_buf_release(&b);
        } else {
            json_object_set(o, k, val);
        }
        json_decref(name);
        json_decref(val);
    }
    return o;
}

static int status_accepted(const struct step_args *a, long status)
{
    if (!a->accept_status)
        return status >= 200 && status <= 299;
    for (int i = 0; i < a->n_accept_status; i++)
        if (a->accept_status[i] == status)
            return 1;
    return 0;
}

void step_run_http(struct step_job *job, struct step_outcome *out)
{
    struct http_call c;
    struct httpc_response res;
    struct wfo_error err = WFO_ERROR_INIT;
    char msg[512], tbuf[32];
    int rc;

    memset(&res, 0, sizeof(res));
    if (call_build(job, &c, &err) < 0) {
        step_outcome_fail(out, "HttpError", err.message, NULL, 0);
        goto out;
    }
    struct httpc_request hr = {
        .method = c.method,
        .url = c.url.buf,
        .headers = c.headers,
        .n_headers = c.n_headers,
        .body = c.body,
        .body_len = c.body_len,
        .timeout_ms = c.timeout_ms,
        .max_body = HTTP_MAX_BODY,
        .max_redirects = HTTP_MAX_REDIRECTS,
        .deny_private = job->http_deny_private,
        .cancel = &job->cancel.requested,
    };
    rc = httpc_do(&hr, &res, &err);
    switch (rc) {
    case 0:
        break;
    case WFO_EIO:
        step_outcome_fail(out, "ConnectionError", err.message, NULL, 1);
        goto out;
    case WFO_EFORBIDDEN:
        step_outcome_fail(out, "ConnectionError", err.message, NULL, 0);
        goto out;
    case WFO_ETIMEOUT:
        wfo_duration_format(c.timeout_ms, tbuf, sizeof(tbuf));
        snprintf(msg, sizeof(msg), "%s %s timed out after %s", c.method, c.shown, tbuf);
        step_outcome_fail(out, "Timeout", msg, NULL, 1);
        goto out;
    case WFO_ESHUTDOWN:
        snprintf(msg, sizeof(msg), "%s %s was cancelled", c.method, c.shown);
        step_outcome_fail(out, "Cancelled", msg, NULL, 0);
        goto out;
    case WFO_ETOOBIG:
        snprintf(msg, sizeof(msg), "response body larger than 10 MiB from %s %s", c.method,
                 c.shown);
        step_outcome_fail(out, "HttpError", msg,
                          res.status ? json_pack("{s:I}", "status", (json_int_t)res.status) : NULL,
                          0);
        goto out;
    default: /* WFO_EINVAL: bad URL or header, too many redirects */
        step_outcome_fail(out, "HttpError", err.message, NULL, 0);
        goto out;
    }

    if (!status_accepted(&job->args, res.status)) {
        snprintf(msg, sizeof(msg), "%s %s answered %ld", c.method, c.shown, res.status);
        json_t *details =
            json_pack("{s:I, s:o, s:o}", "status", (json_int_t)res.status, "headers",
                      headers_value(&res), "body", body_value(&res, HTTP_DETAIL_BODY_MAX));
        /* SPEC 2.3: only a 4xx other than 408 and 429 is never retried
         * (a 3xx, or a 2xx that accept_status leaves out, is) */
        step_outcome_fail(out, "HttpError", msg, details,
                          !(res.status >= 400 && res.status <= 499) ||
                              httpc_status_transient(res.status));
        goto out;
    }
    out->ok = 1;
    out->output = json_pack("{s:I, s:o, s:o}", "status", (json_int_t)res.status, "headers",
                            headers_value(&res), "body", body_value(&res, SIZE_MAX));
    out->error = NULL;
    out->retryable = 0;
out:
    httpc_response_release(&res);
    call_release(&c);
}
