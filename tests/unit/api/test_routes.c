/*
 * test_routes.c - unit tests of src/api/routes.c: the request target's
 * decoding, the query, routing (404, 405 with Allow), bodies and fields,
 * list cursors and error documents. Nothing here needs an engine: the
 * requests tested are answered before any handler reaches it.
 */
#include "common/compat.h"

#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include <strings.h>

#include "common/crypto.h"
#include "common/json.h"
#include "../tap.h"

static struct api *new_api(const char *secret)
{
    struct api *a = NULL;
    struct api_options opt = {.ns = "default", .body_max = 1024, .cursor_secret = secret};
    api_new(NULL, &opt, NULL, &a, NULL);
    return a;
}

/* Handles METHOD TARGET (with '?query') and returns the status; *type gets
 * error.type (static copy) when there is one. */
static int handle(struct api *a, const char *method, const char *target, const char *body,
                  char *type, size_t tsize, char *allow, size_t asize)
{
    struct api_req req;
    struct api_resp resp;
    char *path = strdup(target);
    char *q = strchr(path, '?');
    if (q)
        *q++ = 0;
    api_req_init(&req, method, path);
    if (q)
        api_req_parse_query(&req, q);
    req.body = body;
    req.body_len = body ? strlen(body) : 0;
    api_handle(a, &req, &resp);
    int status = resp.status;
    if (type) {
        const char *t = wfo_json_str(json_object_get(resp.json, "error"), "type");
        snprintf(type, tsize, "%s", t ? t : "");
    }
    if (allow)
        snprintf(allow, asize, "%s", resp.allow);
    api_resp_release(&resp);
    api_req_release(&req);
    free(path);
    return status;
}

/* ---- authentication (SPEC 4) ---- */

static const char *auth_value; /* what the Authorization header holds */

static const char *auth_header(void *conn, const char *name)
{
    return strcasecmp(name, "Authorization") == 0 ? auth_value : NULL;
}

static int handle_as(struct api *a, const char *value, const char *method, const char *target,
                     const char *body, char *type, size_t tsize, int *challenge, char *who,
                     size_t wsize)
{
    struct api_req req;
    struct api_resp resp;
    auth_value = value;
    api_req_init(&req, method, target);
    req.header = auth_header;
    req.body = body;
    req.body_len = body ? strlen(body) : 0;
    api_handle(a, &req, &resp);
    int status = resp.status;
    const char *t = wfo_json_str(json_object_get(resp.json, "error"), "type");
    snprintf(type, tsize, "%s", t ? t : "");
    *challenge = resp.challenge;
    snprintf(who, wsize, "%s", req.who ? req.who : "");
    api_resp_release(&resp);
    api_req_release(&req);
    return status;
}

TEST(auth)
{
    /* sha256("reader-token-0000001"), sha256("operator-token-00001") */
    char rd[65], op[65];
    wfo_sha256_hex("reader-token-0000001", 20, rd);
    wfo_sha256_hex("operator-token-00001", 20, op);
    struct api_token_conf toks[] = {{rd, "team-a", "reader", NULL},
                                    {op, "team-a", "operator", "ops"}};
    struct api_options opt = {.ns = "default", .body_max = 1024, .tokens = toks, .n_tokens = 2};
    struct api *a = NULL;
    is_int(api_new(NULL, &opt, NULL, &a, NULL), 0, "api with two tokens");
    char type[64], who[64];
    int ch = 0;

    is_int(
        handle_as(a, NULL, "GET", "/v1/workflows", NULL, type, sizeof(type), &ch, who, sizeof(who)),
        401, "no token: 401");
    is_str(type, "Unauthorized", "type");
    ok(ch, "with a Bearer challenge");
    is_int(handle_as(a, "Bearer not-a-configured-token", "GET", "/v1/workflows", NULL, type,
                     sizeof(type), &ch, who, sizeof(who)),
           401, "unknown token: 401");
    is_int(handle_as(a, "Basic cmVhZGVyOng=", "GET", "/v1/workflows", NULL, type, sizeof(type), &ch,
                     who, sizeof(who)),
           401, "another scheme: 401");
    is_int(handle_as(a, "Bearer reader-token-000000", "GET", "/v1/workflows", NULL, type,
                     sizeof(type), &ch, who, sizeof(who)),
           401, "a token one character off: 401");
    is_int(handle_as(a, "Bearer reader-token-0000001", "POST", "/v1/executions", "[", type,
                     sizeof(type), &ch, who, sizeof(who)),
           403, "reader may not start: 403");
    is_str(type, "Forbidden", "type");
    ok(strncmp(who, "sha256:", 7) == 0 && strlen(who) == 19, "who: digest prefix (%s)", who);
    is_int(handle_as(a, "Bearer reader-token-0000001", "POST", "/v1/tasks/poll", "{}", type,
                     sizeof(type), &ch, who, sizeof(who)),
           403, "reader may not poll: 403");
    is_int(handle_as(a, "bearer   operator-token-00001  ", "POST", "/v1/executions", "[", type,
                     sizeof(type), &ch, who, sizeof(who)),
           400, "operator reaches the handler (scheme in any case, blanks around)");
    is_str(who, "ops", "who: the token's name");
    is_int(handle_as(a, "Bearer operator-token-00001", "PUT", "/v1/workflows/x", "[", type,
                     sizeof(type), &ch, who, sizeof(who)),
           403, "operator may not put a workflow");
    is_int(handle_as(a, NULL, "GET", "/healthz", NULL, type, sizeof(type), &ch, who, sizeof(who)),
           200, "healthz needs no token");
    is_int(handle_as(a, NULL, "GET", "/no/such/route", NULL, type, sizeof(type), &ch, who,
                     sizeof(who)),
           401, "an unknown route without a token is 401: the token is checked first");
    is_int(handle_as(a, "Bearer reader-token-0000001", "GET", "/no/such/route", NULL, type,
                     sizeof(type), &ch, who, sizeof(who)),
           404, "with a token it is 404");
    api_free(a);

    struct api_token_conf bad[] = {{"abc", "x", "admin", NULL}};
    struct api_options bopt = {.ns = "default", .tokens = bad, .n_tokens = 1};
    struct wfo_error err = WFO_ERROR_INIT;
    a = NULL;
    ok(api_new(NULL, &bopt, NULL, &a, &err) == WFO_EINVAL && !a, "a bad digest is refused");
    struct api_token_conf badrole[] = {{rd, "x", "boss", NULL}};
    bopt.tokens = badrole;
    ok(api_new(NULL, &bopt, NULL, &a, &err) == WFO_EINVAL && !a, "a bad role is refused");
}

TEST(target_decoding)
{
    struct api_req r;
    api_req_init(&r, "GET", "/v1/executions/a%2Fb%20c");
    is_int(r.bad_target, 0, "good escapes");
    is_int(r.n_segs, 3, "three segments: %%2F stays inside its segment");
    is_str(r.segs[2], "a/b c", "decoded");
    api_req_release(&r);

    const char *bad[] = {"/x/%zz", "/x/%", "/x/%4", "/x/%00", "/x/%ff", "/x/%c3%28", "/x/\xff"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        api_req_init(&r, "GET", bad[i]);
        is_int(r.bad_target, 2, "bad target %zu", i);
        api_req_release(&r);
    }
    api_req_init(&r, "GET", "relative");
    ok(r.bad_target != 0, "a target without '/' is refused");
    api_req_release(&r);
    api_req_init(&r, "GET", "/a/b/c/d/e/f/g/h/i/j");
    ok(r.bad_target == 1, "too deep: no route");
    api_req_release(&r);
    api_req_init(&r, "GET", "/caf\xc3\xa9");
    is_int(r.bad_target, 0, "raw UTF-8 is fine");
    api_req_release(&r);
}

TEST(query_parsing)
{
    struct api_req r;
    api_req_init(&r, "GET", "/");
    api_req_parse_query(&r, "a=1&b=x+y%21&&c&a=2&=v");
    is_str(api_query(&r, "a"), "1", "first value wins");
    is_str(api_query(&r, "b"), "x y!", "+ and %% decoded");
    is_str(api_query(&r, "c"), "", "no '=' is an empty value");
    ok(api_query(&r, "d") == NULL, "absent");
    is_int(r.bad_target, 0, "all good");
    api_req_parse_query(&r, "e=%zz");
    is_int(r.bad_target, 2, "bad escape in the query");
    api_req_release(&r);
}

TEST(content_type)
{
    struct api_req r;
    api_req_init(&r, "PUT", "/");
    api_req_set_content_type(&r, "  Application/YAML; charset=utf-8");
    is_str(r.content_type, "application/yaml", "lower case, no parameters");
    api_req_set_content_type(&r, ";");
    ok(r.content_type == NULL, "empty media type");
    api_req_release(&r);
}

TEST(routing)
{
    struct api *a = new_api("k");
    char type[64], allow[128];
    is_int(handle(a, "GET", "/nope", NULL, type, sizeof(type), NULL, 0), 404, "unknown");
    is_str(type, "NotFound", "type");
    is_int(handle(a, "GET", "/v1/workflows/", NULL, type, sizeof(type), NULL, 0), 404,
           "empty {name}");
    is_int(handle(a, "DELETE", "/v1/executions", NULL, type, sizeof(type), allow, sizeof(allow)),
           405, "wrong method");
    is_str(type, "MethodNotAllowed", "type");
    ok(strstr(allow, "GET") && strstr(allow, "POST") && strstr(allow, "HEAD"), "Allow: %s", allow);
    is_int(handle(a, "GET", "/v1/tasks/poll", NULL, NULL, 0, allow, sizeof(allow)), 405,
           "poll is POST");
    is_str(allow, "POST", "Allow");
    is_int(handle(a, "GET", "/v1/subscriptions", NULL, type, sizeof(type), NULL, 0), 503,
           "subscriptions need the engine");
    is_int(handle(a, "GET", "/x/%zz", NULL, type, sizeof(type), NULL, 0), 400, "bad escape");
    is_int(handle(a, "GET", "/healthz", NULL, NULL, 0, NULL, 0), 200, "healthz");
    is_int(handle(a, "HEAD", "/healthz", NULL, NULL, 0, NULL, 0), 200, "HEAD is GET");
    api_free(a);
}

TEST(list_parameters_refused_before_the_store)
{
    struct api *a = new_api("k");
    const char *bad[] = {"limit=0",     "limit=1001",      "limit=x", "limit=1.5",
                         "status=done", "cursor=abc",      "cursor=", "created_after=never",
                         "limit=",      "created_before=1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char target[128], type[64];
        snprintf(target, sizeof(target), "/v1/executions?%s", bad[i]);
        is_int(handle(a, "GET", target, NULL, type, sizeof(type), NULL, 0), 400, "%s", bad[i]);
        is_str(type, "BadRequest", "%s: type", bad[i]);
    }
    api_free(a);
}

TEST(bodies_refused_before_the_engine)
{
    struct api *a = new_api("k");
    const char *bodies[] = {"{",
                            "[1]",
                            "\"x\"",
                            "{\"workflow\": 5}",
                            "{\"workflow\": \"\"}",
                            "{\"workflow\": \"w\", \"version\": \"1\"}",
                            "{\"workflow\": \"w\", \"id\": 3}",
                            "\xff"};
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        char type[64];
        is_int(handle(a, "POST", "/v1/executions", bodies[i], type, sizeof(type), NULL, 0), 400,
               "body %zu", i);
    }
    is_int(handle(a, "POST", "/v1/executions", "", NULL, 0, NULL, 0), 400,
           "empty body is {}: no workflow");
    is_int(handle(a, "POST", "/v1/tasks/poll", "{\"queues\": [], \"worker\": \"w\"}", NULL, 0, NULL,
                  0),
           400, "no queues");
    is_int(handle(a, "POST", "/v1/tasks/poll",
                  "{\"queues\": [\"q\"], \"worker\": \"w\", "
                  "\"max\": 101}",
                  NULL, 0, NULL, 0),
           400, "max over 100");
    is_int(handle(a, "POST", "/v1/tasks/t/fail", "{\"lease\": \"l\", \"error\": {}}", NULL, 0, NULL,
                  0),
           400, "error without type");
    api_free(a);
}

TEST(fields)
{
    struct wfo_error err = WFO_ERROR_INIT;
    json_t *o = json_pack("{s:s, s:i, s:b, s:s, s:i, s:f}", "s", "v", "i", 5, "b", 1, "d", "1.5s",
                          "dm", 250, "r", 1.5);
    const char *s = NULL;
    int64_t i = 0;
    int b = 0;
    is_int(api_field_str(o, "s", 1, &s, &err), 0, "string");
    is_str(s, "v", "value");
    ok(api_field_str(o, "i", 1, &s, &err) == WFO_EINVAL, "int is not a string");
    is_str(err.message, "i: expected a string", "message names the field");
    ok(api_field_str(o, "absent", 1, &s, &err) == WFO_EINVAL, "required");
    is_int(api_field_str(o, "absent", 0, &s, &err), 0, "optional");
    is_int(api_field_int(o, "i", 1, 1, 10, &i, &err), 0, "int");
    is_int(i, 5, "value");
    ok(api_field_int(o, "i", 1, 6, 10, &i, &err) == WFO_EINVAL, "out of range");
    ok(api_field_int(o, "r", 1, 0, 10, &i, &err) == WFO_EINVAL, "real is not an integer");
    ok(api_field_int(o, "b", 1, 0, 10, &i, &err) == WFO_EINVAL, "bool is not an integer");
    is_int(api_field_bool(o, "b", &b, &err), 0, "bool");
    is_int(b, 1, "true");
    ok(api_field_bool(o, "i", &b, &err) == WFO_EINVAL, "int is not a bool");
    is_int(api_field_duration(o, "d", &i, &err), 0, "duration text");
    is_int(i, 1500, "1.5s");
    is_int(api_field_duration(o, "dm", &i, &err), 0, "duration ms");
    is_int(i, 250, "250");
    ok(api_field_duration(o, "s", &i, &err) == WFO_EINVAL, "not a duration");
    ok(api_field_duration(o, "r", &i, &err) == WFO_EINVAL, "real ms refused");
    json_decref(o);
}

TEST(cursors)
{
    struct api *a = new_api("secret-1"), *b = new_api("secret-2");
    char cur[64];
    int64_t seq = 0;
    struct wfo_error err = WFO_ERROR_INIT;
    int64_t values[] = {1, 2, 255, 256, 123456789, INT64_MAX};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        api_cursor_encode(a, NULL, values[i], cur);
        is_int(strlen(cur), 27, "length");
        ok(strspn(cur, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == 27,
           "base64url: %s", cur);
        is_int(api_cursor_decode(a, NULL, cur, &seq, &err), 0, "decodes");
        is_int(seq, values[i], "round trip");
        ok(api_cursor_decode(b, NULL, cur, &seq, &err) == WFO_EINVAL, "another secret refuses it");
    }
    api_cursor_encode(a, NULL, 42, cur);
    int refused = 0;
    for (int i = 0; i < 27; i++) {
        char t[64];
        memcpy(t, cur, 28);
        t[i] = t[i] == 'A' ? 'B' : 'A';
        refused += api_cursor_decode(a, NULL, t, &seq, &err) == WFO_EINVAL;
    }
    is_int(refused, 27, "every one-character change is refused");
    ok(api_cursor_decode(a, NULL, "", &seq, &err) == WFO_EINVAL, "empty");
    ok(api_cursor_decode(a, NULL, "AAAAAAAAAAAAAAAAAAAAAAAAAAA", &seq, &err) == WFO_EINVAL,
       "zeros");
    ok(api_cursor_decode(a, NULL, "AAAAAAAAAAAAAAAAAAAAAAAAAA=", &seq, &err) == WFO_EINVAL,
       "padding");
    is_str(err.message, "cursor: not a cursor this server issued", "message");
    api_free(a);
    api_free(b);
}

TEST(error_documents)
{
    struct api_resp r = {0};
    char *body;
    size_t len;
    const char *type;
    api_resp_error(&r, 404, "NotFound", "execution '\xff' not found");
    api_resp_body(&r, &body, &len, &type);
    is_str(type, "application/json", "JSON");
    json_t *v = NULL;
    is_int(wfo_json_parse(body, len, &v, NULL), 0, "a message with bad bytes is still JSON");
    is_str(wfo_json_str(json_object_get(v, "error"), "type"), "NotFound", "type");
    json_decref(v);
    free(body);
    api_resp_release(&r);
}

int main(void)
{
    return tap_run();
}
