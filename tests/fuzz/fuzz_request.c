/*
 * fuzz_request.c - libFuzzer target for the API's request decoding
 * (src/api/routes.c and the handlers behind it; docs/interfaces/api.md).
 *
 * An input is
 *
 *   METHOD SP TARGET LF CONTENT-TYPE LF BODY...
 *
 * (missing parts are empty). TARGET is split at '?' into the path and the
 * query, exactly as the HTTP adapter hands them over. Each input goes
 * through api_handle() against a real engine on an in-memory store with
 * one workflow registered, so route matching, %-decoding, query
 * parameters, cursors, JSON/YAML bodies and every handler's field checks
 * run. Long polls are capped at 1 ms. What must hold (routes.c R1, R2):
 * no crash or sanitizer report, and every answer has a status from 200 to
 * 599 and a body; every 4xx/5xx body is {"error": {"type", "message"}}.
 *
 * Build and run: tests/fuzz/README.md.
 */
#include "common/compat.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "common/json.h"
#include "common/util.h"

static struct wfo_engine *engine;
static struct api *api;
static struct api_metrics *metrics;

static const char workflow[] =
    "{\"name\": \"fz\", \"steps\": [{\"name\": \"s\", \"type\": \"set\", "
    "\"vars\": {\"x\": 1}}, {\"name\": \"t\", \"type\": \"task\", "
    "\"queue\": \"q\"}]}";

static void setup(void)
{
    struct wfo_error err = WFO_ERROR_INIT;
    metrics = api_metrics_new();
    struct wfo_engine_options opt = {
        .db_url = "sqlite::memory:",
        .runner_threads = 2,
        .on_progress = api_metrics_on_progress,
        .progress_ud = metrics,
    };
    if (wfo_engine_new(&opt, &engine, &err) < 0 || wfo_engine_launch(engine, &err) < 0 ||
        wfo_engine_put_workflow(engine, workflow, strlen(workflow), NULL, NULL, NULL, &err) < 0) {
        fprintf(stderr, "fuzz_request: setup: %s\n", err.message);
        abort();
    }
    struct api_options aopt = {
        .ns = "default", .body_max = 1u << 20, .max_wait_ms = 1, .cursor_secret = "fuzz"};
    api_new(engine, &aopt, metrics, &api, &err);
}

/* The next line of data (without LF); advances *p. */
static char *take_line(const uint8_t **p, const uint8_t *end)
{
    const uint8_t *nl = memchr(*p, '\n', (size_t)(end - *p));
    const uint8_t *stop = nl ? nl : end;
    char *line = wfo_strndup((const char *)*p, (size_t)(stop - *p));
    *p = nl ? nl + 1 : end;
    return line;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!api)
        setup();
    const uint8_t *p = data, *end = data + size;
    char *first = take_line(&p, end);
    char *ctype = take_line(&p, end);
    char *sp = strchr(first, ' ');
    const char *method = first, *target = sp ? sp + 1 : "/";
    if (sp)
        *sp = 0;
    char *path = wfo_strdup(target);
    char *q = strchr(path, '?');
    if (q)
        *q++ = 0;

    struct api_req req;
    struct api_resp resp;
    api_req_init(&req, method, path);
    if (q)
        api_req_parse_query(&req, q);
    api_req_set_content_type(&req, ctype[0] ? ctype : NULL);
    req.body = p < end ? (const char *)p : NULL;
    req.body_len = (size_t)(end - p);
    api_handle(api, &req, &resp);

    if (resp.status < 200 || resp.status > 599)
        abort();
    if (resp.status >= 400) {
        json_t *e = json_object_get(resp.json, "error");
        if (!json_is_string(json_object_get(e, "type")) ||
            !json_is_string(json_object_get(e, "message")))
            abort();
    }
    char *body = NULL;
    size_t len = 0;
    const char *type = NULL;
    api_resp_body(&resp, &body, &len, &type);
    if (!body || !type)
        abort();

    /* the cursor decoder on its own, with the body as the cursor */
    int64_t seq;
    char *cur = wfo_strndup(req.body ? req.body : "", req.body_len);
    api_cursor_decode(api, NULL, cur, &seq, NULL);
    free(cur);

    free(body);
    api_resp_release(&resp);
    api_req_release(&req);
    free(path);
    free(first);
    free(ctype);
    return 0;
}
