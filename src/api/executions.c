/*
 * executions.c - /v1/executions: start (idempotent by id), read (with a
 * long poll), list (filters, keyset paging), history, and the operator
 * commands cancel, terminate, pause, resume, retry (SPEC 3, 4).
 * docs/interfaces/api.md "Executions".
 *
 * Reads go through core/query.h, which refuses an execution of another
 * namespace. Long polls block this connection's thread on the engine's
 * condition (query_wait) in slices of API_WAIT_SLICE_MS, so a shutdown
 * gets the thread back within a slice; nothing spins.
 */
#include "common/compat.h"

#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "../core/engine.h"
#include "../core/query.h"
#include "../common/duration.h"
#include "../common/util.h"

#define LIST_DEFAULT 50
#define LIST_MAX 1000

/* Waits up to wait_ms for execution id of namespace ns to end; *doc is
 * then its document if the engine handed it over (query_wait), else NULL. */
static int wait_end(struct api *a, const char *ns, const char *id, int64_t wait_ms, json_t **doc,
                    struct wfo_error *err)
{
    int64_t until = wfo_mono_ms() + api_wait_cap(a, wait_ms);
    *doc = NULL;
    for (;;) {
        int64_t left = until - wfo_mono_ms();
        if (left <= 0 || atomic_load(&a->stopping))
            return 0;
        int64_t slice = left < API_WAIT_SLICE_MS ? left : API_WAIT_SLICE_MS;
        int64_t t0 = wfo_mono_ms();
        int ended = 0;
        int rc = query_wait(a->engine, ns, id, slice, &ended, doc, err);
        if (rc < 0 || ended)
            return rc;
        /* back well before the slice without an end: the engine is
         * stopping; answer now rather than spin */
        if (wfo_mono_ms() - t0 + 50 < slice)
            return 0;
    }
}

/* Answers with execution id's document: doc when a wait was handed it
 * (taken), else read. */
static int doc_reply(struct api *a, const struct api_req *req, const char *id, json_t *doc,
                     int status, struct api_resp *resp, struct wfo_error *err)
{
    int rc = doc ? 0 : query_execution(a->engine, req->ns, id, &doc, err);
    if (rc < 0)
        return rc;
    api_resp_json(resp, status, doc);
    return 0;
}

/* A start's request, checked: what it asks, with the body it borrows from. */
struct start_args {
    json_t *body;
    int64_t wait_ms;
    char idbuf[WFO_EXEC_ID_SIZE];
    struct engine_start_req q;
    struct engine_later *later; /* api_execution_start_later's */
};

static int start_args(struct api *a, struct api_req *req, struct start_args *s,
                      struct wfo_error *err)
{
    const char *workflow = NULL, *id = NULL;
    int64_t version = 0;
    static const char *const known[] = {"workflow", "version", "input", "id", NULL};
    int rc = api_query_duration(req, "wait", &s->wait_ms, err);
    if (rc < 0 || (rc = api_body_object(req, 0, &s->body, err)) < 0 ||
        (rc = api_fields_known(s->body, NULL, known, err)) < 0 ||
        (rc = api_field_str(s->body, "workflow", 1, &workflow, err)) < 0 ||
        (rc = api_field_int(s->body, "version", 0, 1, 2147483647, &version, err)) < 0 ||
        (rc = api_field_str(s->body, "id", 0, &id, err)) < 0)
        return rc;
    if (!workflow[0])
        return wfo_error_set(err, WFO_EINVAL, "workflow: must not be empty");
    if (id && (!id[0] || strlen(id) >= WFO_EXEC_ID_SIZE))
        return wfo_error_set(err, WFO_EINVAL, "id: expected 1 to %d bytes", WFO_EXEC_ID_SIZE - 1);
    /* a URL's path cannot name them: browsers and curl resolve "." and ".."
     * (escaped or not) as the directory and its parent, so GET
     * /v1/executions/.. would never reach it */
    if (id && (strcmp(id, ".") == 0 || strcmp(id, "..") == 0))
        return wfo_error_set(err, WFO_EINVAL,
                             "id: '%s' cannot be an execution id (a URL path cannot name it)", id);
    json_t *input = json_object_get(s->body, "input");
    if ((rc = api_payload_check(a, input, "input", err)) < 0)
        return rc;
    if (!id) {
        wfo_id_new(s->idbuf);
        id = s->idbuf;
    }
    s->q = (struct engine_start_req){.ns = req->ns,
                                     .workflow = workflow,
                                     .version = (int)version,
                                     .input = input,
                                     .id = id,
                                     .fresh_id = id == s->idbuf,
                                     .want_doc = s->wait_ms <= 0};
    return 0;
}

/* The answer of a start that committed (its out fields in s->q), after the
 * wait it asked for. */
static int start_answer(struct api *a, struct api_req *req, struct start_args *s,
                        struct api_resp *resp, struct wfo_error *err)
{
    int rc = 0;
    json_t *doc = NULL;
    if (s->q.doc) /* the document as this start committed it */
        api_resp_json(resp, 201, s->q.doc);
    else if (s->wait_ms <= 0 ||
             (rc = wait_end(a, req->ns, s->q.id_out, s->wait_ms, &doc, err)) == 0)
        rc = doc_reply(a, req, s->q.id_out, doc, s->q.created ? 201 : 200, resp, err);
    free(s->q.id_out);
    s->q.id_out = NULL;
    return rc;
}

int api_execution_start(struct api *a, struct api_req *req, struct api_resp *resp,
                        struct wfo_error *err)
{
    struct start_args s = {0};
    int rc = start_args(a, req, &s, err);
    /* refused before anything starts when the token waits too much already */
    if (rc == 0 && s.wait_ms > 0)
        rc = api_wait_begin(a, req, err);
    if (rc == 0 && (rc = engine_start(a->engine, &s.q, err)) == 0)
        rc = start_answer(a, req, &s, resp, err);
    json_decref(s.body);
    return rc;
}

int api_execution_start_later(struct api *a, struct api_req *req, struct api_later *l,
                              struct wfo_error *err)
{
    struct start_args *s = wfo_calloc(1, sizeof(*s));
    l->state = s;
    int rc = start_args(a, req, s, err);
    /* refused before anything starts when the token waits too much already */
    if (rc == 0 && s->wait_ms > 0 && (rc = api_wait_begin(a, req, err)) == 0)
        l->end_waits = 1; /* the end half waits: http.c calls it from a waiter */
    if (rc == 0)
        rc = engine_start_post(a->engine, &s->q, l->done, l->ud, &s->later, err);
    return rc < 0 ? rc : 1;
}

int api_execution_start_end(struct api *a, struct api_req *req, struct api_resp *resp,
                            struct api_later *l, struct wfo_error *err)
{
    struct start_args *s = l->state;
    int rc = 0;
    if (s->later && (rc = engine_start_end(s->later, &s->q, err)) == 0)
        rc = start_answer(a, req, s, resp, err);
    json_decref(s->body);
    free(s);
    l->state = NULL;
    return rc;
}

int api_execution_get(struct api *a, struct api_req *req, struct api_resp *resp,
                      struct wfo_error *err)
{
    int64_t wait_ms = 0;
    json_t *doc = NULL;
    int rc = api_query_duration(req, "wait", &wait_ms, err);
    if (rc < 0)
        return rc;
    if (wait_ms > 0 && ((rc = api_wait_begin(a, req, err)) < 0 ||
                        (rc = wait_end(a, req->ns, req->params[0], wait_ms, &doc, err)) < 0))
        return rc;
    return doc_reply(a, req, req->params[0], doc, 200, resp, err);
}

int api_execution_list(struct api *a, struct api_req *req, struct api_resp *resp,
                       struct wfo_error *err)
{
    struct query_filter f = {.limit = LIST_DEFAULT};
    json_t *items = NULL;
    int64_t next_seq = 0;
    const char *s;
    int rc;

    if ((s = api_query(req, "limit"))) {
        int64_t n;
        if (wfo_parse_int64(s, &n) < 0 || n < 1 || n > LIST_MAX)
            return wfo_error_set(err, WFO_EINVAL, "limit: expected an integer from 1 to %d",
                                 LIST_MAX);
        f.limit = (int)n;
    }
    if ((s = api_query(req, "status"))) {
        if (query_status_ended(s) >= 0)
            f.status = s;
        else
            return wfo_error_set(err, WFO_EINVAL,
                                 "status: '%s' is not one of running, paused, completed, "
                                 "failed, cancelled, terminated",
                                 s);
    }
    if ((s = api_query(req, "workflow")))
        f.workflow = s;
    if ((rc = api_query_time(req, "created_after", &f.created_after, err)) < 0 ||
        (rc = api_query_time(req, "created_before", &f.created_before, err)) < 0)
        return rc;
    if ((s = api_query(req, "cursor")) &&
        (rc = api_cursor_decode(a, req->ns, s, &f.before_seq, err)) < 0)
        return rc;
    rc = query_executions(a->engine, req->ns, &f, &items, &next_seq, err);
    if (rc < 0)
        return rc;
    json_t *o = json_pack("{s:o}", "executions", items);
    if (next_seq) {
        char cur[64];
        api_cursor_encode(a, req->ns, next_seq, cur);
        json_object_set_new(o, "next_cursor", json_string(cur));
    }
    api_resp_json(resp, 200, o);
    return 0;
}

int api_execution_history(struct api *a, struct api_req *req, struct api_resp *resp,
                          struct wfo_error *err)
{
    json_t *h = NULL;
    int rc = query_history(a->engine, req->ns, req->params[0], 0, 0, &h, err);
    if (rc < 0)
        return rc;
    api_resp_json(resp, 200, h);
    return 0;
}

/* The operator commands: cancel {reason?, compensate?}; retry {from?}
 * (SPEC 2.4); terminate, pause, resume {reason?}. The answer is the
 * document after the change, 409 when the status does not allow it. */
static int op(struct api *a, struct api_req *req, struct api_resp *resp, enum engine_op which,
              struct wfo_error *err)
{
    static const char *const with_compensate[] = {"reason", "compensate", NULL};
    static const char *const from_only[] = {"from", NULL};
    static const char *const reason_only[] = {"reason", NULL};
    json_t *body = NULL;
    const char *reason = NULL, *from = NULL;
    int compensate = 0;
    int rc = api_body_object(req, 0, &body, err);
    if (rc < 0)
        goto out;
    rc = api_fields_known(body, NULL,
                          which == OP_CANCEL  ? with_compensate
                          : which == OP_RETRY ? from_only
                                              : reason_only,
                          err);
    if (rc < 0)
        goto out;
    if ((rc = api_field_str(body, "reason", 0, &reason, err)) < 0 ||
        (rc = api_field_bool(body, "compensate", &compensate, err)) < 0 ||
        (rc = api_field_str(body, "from", 0, &from, err)) < 0)
        goto out;
    if (from && !from[0]) {
        rc = wfo_error_set(err, WFO_EINVAL, "from: must not be empty");
        goto out;
    }
    rc = engine_op_from(a->engine, req->params[0], which, reason, compensate, from, err);
    if (rc < 0)
        goto out;
    rc = doc_reply(a, req, req->params[0], NULL, 200, resp, err);
out:
    json_decref(body);
    return rc;
}

int api_execution_cancel(struct api *a, struct api_req *req, struct api_resp *resp,
                         struct wfo_error *err)
{
    return op(a, req, resp, OP_CANCEL, err);
}

int api_execution_terminate(struct api *a, struct api_req *req, struct api_resp *resp,
                            struct wfo_error *err)
{
    return op(a, req, resp, OP_TERMINATE, err);
}

int api_execution_pause(struct api *a, struct api_req *req, struct api_resp *resp,
                        struct wfo_error *err)
{
    return op(a, req, resp, OP_PAUSE, err);
}

int api_execution_resume(struct api *a, struct api_req *req, struct api_resp *resp,
                         struct wfo_error *err)
{
    return op(a, req, resp, OP_RESUME, err);
}

int api_execution_retry(struct api *a, struct api_req *req, struct api_resp *resp,
                        struct wfo_error *err)
{
    return op(a, req, resp, OP_RETRY, err);
}

/* 200 {id, deleted: true}: the execution, its steps, history, timers and
 * tasks are gone; 409 while it runs or is paused. */
int api_execution_delete(struct api *a, struct api_req *req, struct api_resp *resp,
                         struct wfo_error *err)
{
    /* its audit line names the workflow, which the row no longer can */
    char wf[160];
    struct wfo_error ignore = WFO_ERROR_INIT;
    if (query_exec_workflow(a->engine, req->ns, req->params[0], wf, sizeof(wf), &ignore) == 0)
        req->workflow = wfo_strdup(wf);
    int rc = engine_op(a->engine, req->params[0], OP_DELETE, NULL, 0, err);
    if (rc < 0)
        return rc;
    api_resp_json(resp, 200, json_pack("{s:s, s:b}", "id", req->params[0], "deleted", 1));
    return 0;
}
