/*
 * tasks.c - the worker protocol over HTTP (SPEC 3, 4): poll (a long poll
 * on the engine's ready queues), complete, fail, heartbeat.
 * docs/interfaces/api.md "Tasks".
 *
 * GET /v1/queues shows each queue of the namespace: ready and leased
 * tasks, the age of the oldest ready one, the workers that polled it in
 * the last minute ("where is it stuck?", docs/operations/monitoring.md).
 *
 * A completion, failure or heartbeat with a lease that is not the task's
 * current one is 409 and changes nothing; an unknown task is 404 (the
 * engine decides both).
 */
#include "common/compat.h"

#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "../core/engine.h"
#include "../core/query.h"
#include "../common/duration.h"
#include "../common/httpc.h"
#include "../common/util.h"

#define POLL_MAX 100
#define QUEUES_MAX 64

/* A cluster (docs/operations/scaling.md#several-nodes): a task is leased by
 * the node that holds its execution, so a poll that finds none here asks
 * the other live nodes, without waiting, in turn from a random one, for up
 * to max tasks; their leases are theirs, and so are the completions (which
 * any node forwards by task id). The number of tasks put in *tasks. */
#define PEER_POLL_TIMEOUT_MS 5000
/* With notifications, the other nodes are still asked this often, for
 * one lost while a listener reconnected. */
#define PEER_ASK_MS 5000
/* After a notification, they are asked this often for this long. */
#define PEER_RECHECK_MS 50
#define PEER_RECHECK_FOR_MS 1000

static int peers_poll(struct api *a, struct api_req *req, json_t *body, int max, json_t **tasks)
{
    struct wfo_error err = WFO_ERROR_INIT;
    json_t *urls = NULL;
    if (query_peers(a->engine, &urls, &err) < 0 || json_array_size(urls) == 0) {
        json_decref(urls);
        return 0;
    }
    json_t *out = json_array();
    size_t n = json_array_size(urls), first = (size_t)(wfo_random() * (double)n);
    for (size_t i = 0; i < n && (int)json_array_size(out) < max; i++) {
        const char *base = json_string_value(json_array_get(urls, (first + i) % n));
        json_t *ask = json_deep_copy(body);
        json_object_set_new(ask, "max", json_integer(max - (json_int_t)json_array_size(out)));
        json_object_set_new(ask, "wait", json_integer(0));
        char *text = wfo_json_dumps(ask);
        json_decref(ask);
        struct wfo_buf url = WFO_BUF_INIT;
        wfo_buf_adds(&url, base);
        wfo_buf_adds(&url, "/v1/tasks/poll");
        struct httpc_response res = {0};
        if (api_forward(a, req, url.buf, text, strlen(text), PEER_POLL_TIMEOUT_MS, &res, &err) ==
                0 &&
            res.status == 200) {
            json_t *got = json_loadb(res.body.buf, res.body.len, 0, NULL);
            json_array_extend(out, json_object_get(got, "tasks"));
            json_decref(got);
        }
        httpc_response_release(&res);
        wfo_buf_release(&url);
        free(text);
    }
    json_decref(urls);
    json_decref(*tasks);
    *tasks = out;
    return (int)json_array_size(out);
}

/* What a poll asks for: its queues, worker, max and wait. */
struct poll_params {
    const char *queues[QUEUES_MAX];
    int n;
    const char *worker;
    int64_t max, wait_ms;
};

/* Reads p from obj ({queues, worker, max?, wait?}; wait only when
 * with_wait); an error's message is prefixed with where ("poll.") when
 * given. */
static int poll_params(const json_t *obj, const char *where, int with_wait, struct poll_params *p,
                       struct wfo_error *err)
{
    static const char *const known[] = {"queues", "worker", "max", "wait", NULL};
    static const char *const known_now[] = {"queues", "worker", "max", NULL};
    p->n = 0;
    p->worker = NULL;
    p->max = 1;
    p->wait_ms = 0;
    int rc = api_fields_known(obj, NULL, with_wait ? known : known_now, err);
    json_t *q = json_object_get(obj, "queues"), *v;
    size_t i;
    if (rc == 0 &&
        (!json_is_array(q) || json_array_size(q) == 0 || json_array_size(q) > QUEUES_MAX))
        rc = wfo_error_set(err, WFO_EINVAL, "queues: expected a list of 1 to %d queue names",
                           QUEUES_MAX);
    if (rc == 0)
        json_array_foreach(q, i, v)
        {
            if (!json_is_string(v) || !json_string_length(v)) {
                rc = wfo_error_set(err, WFO_EINVAL, "queues[%zu]: expected a non-empty string", i);
                break;
            }
            p->queues[p->n++] = json_string_value(v);
        }
    if (rc == 0 && (rc = api_field_str(obj, "worker", 1, &p->worker, err)) == 0 &&
        (rc = api_field_int(obj, "max", 0, 1, POLL_MAX, &p->max, err)) == 0 && with_wait)
        rc = api_field_duration(obj, "wait", &p->wait_ms, err);
    if (rc < 0 && where) {
        char msg[sizeof(err->message)];
        snprintf(msg, sizeof(msg), "%s", err->message);
        wfo_error_set(err, rc, "%s%s", where, msg);
    }
    return rc;
}

/* The poll; with now, only what is ready: 1 when answered (tasks were
 * ready, or the poll does not wait, or it is refused), 0 when it would
 * wait (nothing done: run it again without now). */
static int poll_run(struct api *a, struct api_req *req, struct api_resp *resp, int now,
                    struct wfo_error *err)
{
    json_t *body = NULL, *tasks = NULL;
    struct poll_params pp;
    int rc = api_body_object(req, 0, &body, err);
    if (rc < 0 || (rc = poll_params(body, NULL, 1, &pp, err)) < 0)
        goto out;
    /* a poll that may wait counts against its token's limit even when it
     * finds tasks at once (limits.long_polls_per_token) */
    if (pp.wait_ms > 0 && (rc = api_wait_begin(a, req, err)) < 0)
        goto out;
    if (now) {
        rc = engine_task_poll(a->engine, req->ns, pp.queues, pp.n, pp.worker, (int)pp.max, 0, NULL,
                              &tasks, err);
        if (rc < 0)
            goto out;
        if (json_array_size(tasks) == 0 && pp.wait_ms > 0) {
            api_wait_end(req); /* counted again when it runs to wait */
            goto out;          /* rc 0: it waits */
        }
        api_resp_json(resp, 200, json_pack("{s:o}", "tasks", tasks));
        tasks = NULL;
        rc = 1;
        goto out;
    }
    /* in slices, so that a shutdown is not held up by a waiting worker */
    int64_t until = wfo_mono_ms() + api_wait_cap(a, pp.wait_ms);
    /* a cluster: what is ready here, else on another node, else wait
     * here a slice; the others are asked again at every slice, or, when
     * the store tells of their ready tasks (engine_hears_others), when it
     * does (the slice ends early) and every PEER_ASK_MS besides */
    int ask_peers = engine_clustered(a->engine) && !api_header(req, "X-Wfo-Forwarded");
    int64_t asked_at = 0, woke_early = 1, recheck_until = 0;
    long long seen = -1;
    for (;;) {
        int64_t left = until - wfo_mono_ms();
        if (left < 0 || atomic_load(&a->stopping))
            left = 0;
        int64_t slice = left < API_WAIT_SLICE_MS ? left : API_WAIT_SLICE_MS;
        /* a notification can come before the other node has queued the
         * task it tells of (its commit notifies, then it acts): after one,
         * the others are asked again every PEER_RECHECK_MS for a while */
        int rechecking = wfo_mono_ms() < recheck_until;
        if (rechecking && slice > PEER_RECHECK_MS)
            slice = PEER_RECHECK_MS;
        json_decref(tasks);
        tasks = NULL;
        if (req->gone && req->gone(req->conn)) {
            rc = wfo_error_set(err, WFO_EINVAL, "the client closed the connection");
            goto out;
        }
        if (ask_peers && (woke_early || rechecking || !engine_hears_others(a->engine) ||
                          wfo_mono_ms() - asked_at >= PEER_ASK_MS)) {
            if (woke_early && asked_at)
                recheck_until = wfo_mono_ms() + PEER_RECHECK_FOR_MS;
            asked_at = wfo_mono_ms();
            /* seen: a task made ready elsewhere while the others are
             * asked ends the wait below at once */
            rc = engine_task_poll(a->engine, req->ns, pp.queues, pp.n, pp.worker, (int)pp.max, 0,
                                  &seen, &tasks, err);
            if (rc < 0)
                goto out;
            if (json_array_size(tasks) == 0 && peers_poll(a, req, body, (int)pp.max, &tasks) > 0)
                break;
            if (json_array_size(tasks) > 0)
                break;
            json_decref(tasks);
            tasks = NULL;
        }
        int64_t t0 = wfo_mono_ms();
        rc = engine_task_poll(a->engine, req->ns, pp.queues, pp.n, pp.worker, (int)pp.max, slice,
                              ask_peers ? &seen : NULL, &tasks, err);
        if (rc < 0)
            goto out;
        woke_early = json_array_size(tasks) == 0 && wfo_mono_ms() - t0 < slice;
        if (json_array_size(tasks) > 0 && req->gone && req->gone(req->conn)) {
            /* nobody to hand them to: back to the queue at once */
            engine_task_unpoll(a->engine, tasks);
            rc = wfo_error_set(err, WFO_EINVAL, "the client closed the connection");
            goto out;
        }
        if (json_array_size(tasks) > 0 || left <= slice)
            break;
    }
    api_resp_json(resp, 200, json_pack("{s:o}", "tasks", tasks ? tasks : json_array()));
    tasks = NULL;
out:
    json_decref(body);
    json_decref(tasks);
    return rc;
}

int api_task_poll(struct api *a, struct api_req *req, struct api_resp *resp, struct wfo_error *err)
{
    return poll_run(a, req, resp, 0, err);
}

int api_task_poll_now(struct api *a, struct api_req *req, struct api_resp *resp,
                      struct wfo_error *err)
{
    return poll_run(a, req, resp, 1, err);
}

/* The body's lease (required string). */
static int lease_of(const json_t *body, const char **lease, struct wfo_error *err)
{
    return api_field_str(body, "lease", 1, lease, err);
}

/* A failure's body: error {type, message?, details?} and retryable?; *error
 * gets the normalized {type, message, details} (new ref). */
static int failure_of(const struct api *a, const json_t *body, json_t **error, int *retryable,
                      struct wfo_error *err)
{
    static const char *const known[] = {"type", "message", "details", NULL};
    json_t *e = json_object_get(body, "error");
    if (!json_is_object(e))
        return wfo_error_set(err, WFO_EINVAL, "error: expected an object {type, message, details}");
    int krc = api_fields_known(e, "error", known, err);
    if (krc < 0)
        return krc;
    if ((krc = api_payload_check(a, e, "error", err)) < 0)
        return krc;
    json_t *t = json_object_get(e, "type"), *m = json_object_get(e, "message");
    if (!json_is_string(t) || !json_string_length(t))
        return wfo_error_set(err, WFO_EINVAL, "error.type: expected a non-empty string");
    if (m && !json_is_null(m) && !json_is_string(m))
        return wfo_error_set(err, WFO_EINVAL, "error.message: expected a string");
    int rc = api_field_bool(body, "retryable", retryable, err);
    if (rc < 0)
        return rc;
    json_t *details = json_object_get(e, "details");
    *error = wfo_json_error(json_string_value(t), json_is_string(m) ? json_string_value(m) : NULL,
                            details ? json_incref(details) : NULL);
    return 0;
}

/* POST /v1/tasks/{id}/complete {lease, output} (ok) or /fail {lease,
 * error, retryable?}, read into s->t. */
struct one_args {
    json_t *body, *error;
    struct engine_task_result t;
    int posted; /* engine_task_finish_post took it: the end answers */
    struct engine_finish_later *later;
};

static int one_args(struct api *a, struct api_req *req, int ok, struct one_args *s,
                    struct wfo_error *err)
{
    static const char *const known_ok[] = {"lease", "output", NULL};
    static const char *const known_fail[] = {"lease", "error", "retryable", NULL};
    s->t = (struct engine_task_result){.task_id = req->params[0], .ok = ok, .retryable = 1};
    int rc = api_body_object(req, 0, &s->body, err);
    if (rc < 0 || (rc = api_fields_known(s->body, NULL, ok ? known_ok : known_fail, err)) < 0 ||
        (rc = lease_of(s->body, &s->t.lease, err)) < 0)
        return rc;
    if (!ok) {
        rc = failure_of(a, s->body, &s->error, &s->t.retryable, err);
        s->t.error = s->error;
        return rc;
    }
    s->t.output = json_object_get(s->body, "output");
    if (!s->t.output)
        s->t.output = json_null();
    return api_payload_check(a, s->t.output, "output", err);
}

/* The answer of a result the engine took (s->t.rc set); the audit line
 * gets the workflow the engine named, without reading the store. */
static int one_answer(struct api_req *req, struct one_args *s, struct api_resp *resp,
                      struct wfo_error *err)
{
    if (s->t.workflow[0] && !req->workflow)
        req->workflow = wfo_strdup(s->t.workflow);
    if (s->t.rc < 0) {
        *err = s->t.err;
        return s->t.rc;
    }
    api_resp_json(resp, 200,
                  json_pack("{s:s, s:s}", "task_id", s->t.task_id, "status",
                            s->t.ok ? "completed" : "failed"));
    return 0;
}

static void one_args_release(struct one_args *s)
{
    json_decref(s->body);
    json_decref(s->error);
}

static int one_run(struct api *a, struct api_req *req, struct api_resp *resp, int ok,
                   struct wfo_error *err)
{
    struct one_args s = {0};
    int rc = one_args(a, req, ok, &s, err);
    if (rc == 0 && (rc = engine_task_finish(a->engine, req->ns, &s.t, 1, err)) == 0)
        rc = one_answer(req, &s, resp, err);
    one_args_release(&s);
    return rc;
}

int api_task_complete(struct api *a, struct api_req *req, struct api_resp *resp,
                      struct wfo_error *err)
{
    return one_run(a, req, resp, 1, err);
}

int api_task_fail(struct api *a, struct api_req *req, struct api_resp *resp, struct wfo_error *err)
{
    return one_run(a, req, resp, 0, err);
}

/* Pool mode (api_begin), as api_task_complete_many_later for one result. */
static int one_later(struct api *a, struct api_req *req, struct api_later *l, int ok,
                     struct wfo_error *err)
{
    struct one_args *s = wfo_calloc(1, sizeof(*s));
    l->state = s;
    int rc = one_args(a, req, ok, s, err);
    if (rc == 0)
        rc = engine_task_finish_post(a->engine, req->ns, &s->t, 1, l->done, l->ud, &s->later, err);
    s->posted = rc == 0;
    /* not queued (its lease refused): answered at once */
    return rc < 0 ? rc : s->later ? 1 : 0;
}

int api_task_complete_later(struct api *a, struct api_req *req, struct api_later *l,
                            struct wfo_error *err)
{
    return one_later(a, req, l, 1, err);
}

int api_task_fail_later(struct api *a, struct api_req *req, struct api_later *l,
                        struct wfo_error *err)
{
    return one_later(a, req, l, 0, err);
}

int api_task_one_end(struct api *a, struct api_req *req, struct api_resp *resp, struct api_later *l,
                     struct wfo_error *err)
{
    struct one_args *s = l->state;
    int rc = 0;
    if (s->posted) {
        engine_task_finish_end(s->later, &s->t, 1);
        rc = one_answer(req, s, resp, err);
    }
    one_args_release(s);
    free(s);
    l->state = NULL;
    return rc;
}

/* POST /v1/tasks/complete {results: [{task_id, lease, output} or {task_id,
 * lease, error, retryable?}, ...]}: a worker's whole batch in one request,
 * committed in one round. Each result is answered on its own (200 with
 * {results: [{task_id, status} or {task_id, status: "rejected", status_code,
 * error}]}, in
 * order); a malformed result refuses the whole request (400). */
/* The entry of results[] for a result that failed with status and error
 * ({type, message}, borrowed; NULL: a 503 with message). */
static json_t *result_error(const char *task_id, int status, json_t *error, const char *message)
{
    if (error)
        return json_pack("{s:s, s:s, s:i, s:O}", "task_id", task_id, "status", "rejected",
                         "status_code", status, "error", error);
    return json_pack("{s:s, s:s, s:i, s:{s:s, s:s}}", "task_id", task_id, "status", "rejected",
                     "status_code", status, "error", "type", "Unavailable", "message", message);
}

/* A cluster: result v (one of results[]) of a task that another node
 * holds goes to that node as one complete or fail; its entry of the
 * answer. NULL when this node holds it. */
static json_t *result_forward(struct api *a, struct api_req *req, json_t *v)
{
    const char *task_id = wfo_json_str(v, "task_id");
    char exec[WFO_EXEC_ID_SIZE], owner[512];
    struct wfo_error err = WFO_ERROR_INIT;
    const char *dot = strrchr(task_id, '.');
    if (!dot || (size_t)(dot - task_id) >= sizeof(exec))
        return NULL; /* not a task id: the engine says so */
    memcpy(exec, task_id, (size_t)(dot - task_id));
    exec[dot - task_id] = 0;
    int rc = query_owner(a->engine, exec, owner, sizeof(owner), &err);
    if (rc == 1)
        return NULL;
    if (rc < 0)
        return result_error(task_id, wfo_error_http_status(rc), NULL, err.message);
    int fail = json_object_get(v, "error") != NULL;
    struct wfo_buf url = WFO_BUF_INIT;
    wfo_buf_adds(&url, owner);
    wfo_buf_adds(&url, "/v1/tasks/");
    httpc_escape(&url, task_id);
    wfo_buf_adds(&url, fail ? "/fail" : "/complete");
    json_t *one = json_deep_copy(v);
    json_object_del(one, "task_id");
    char *text = wfo_json_dumps(one);
    json_decref(one);
    struct httpc_response res = {0};
    json_t *entry = NULL;
    if (api_forward(a, req, url.buf, text, strlen(text), PEER_POLL_TIMEOUT_MS, &res, &err) < 0) {
        entry = result_error(task_id, 503, NULL, err.message);
    } else if (res.status == 200) {
        entry =
            json_pack("{s:s, s:s}", "task_id", task_id, "status", fail ? "failed" : "completed");
    } else {
        json_t *got = json_loadb(res.body.buf, res.body.len, 0, NULL);
        json_t *e = json_object_get(got, "error");
        entry = e ? result_error(task_id, (int)res.status, e, NULL)
                  : result_error(task_id, 503, NULL, "the node holding the task answered badly");
        json_decref(got);
    }
    httpc_response_release(&res);
    wfo_buf_release(&url);
    free(text);
    return entry;
}

/* A batch of results as api_task_complete_many reads it. */
struct finish_args {
    json_t *body;
    struct engine_task_result *t;
    size_t n;
    int posted; /* engine_task_finish_post took it: the end answers */
    struct engine_finish_later *later;
    int eager; /* the body's poll: the answer also leases what is ready */
    struct poll_params poll;
};

static int finish_args(struct api *a, struct api_req *req, struct finish_args *s,
                       struct wfo_error *err)
{
    json_t *list, *v;
    size_t i;
    static const char *const known[] = {"results", "poll", NULL};
    static const char *const known_ok[] = {"task_id", "lease", "output", NULL};
    static const char *const known_fail[] = {"task_id", "lease", "error", "retryable", NULL};
    int rc = api_body_object(req, 0, &s->body, err);
    if (rc < 0 || (rc = api_fields_known(s->body, NULL, known, err)) < 0)
        return rc;
    json_t *poll = json_object_get(s->body, "poll");
    if (poll && !json_is_null(poll)) {
        if (!json_is_object(poll))
            return wfo_error_set(err, WFO_EINVAL, "poll: expected an object");
        if ((rc = poll_params(poll, "poll.", 0, &s->poll, err)) < 0)
            return rc;
        s->eager = 1;
    }
    list = json_object_get(s->body, "results");
    if (!json_is_array(list) || json_array_size(list) == 0 || json_array_size(list) > POLL_MAX)
        return wfo_error_set(err, WFO_EINVAL, "results: expected a list of 1 to %d results",
                             POLL_MAX);
    s->t = wfo_calloc(json_array_size(list), sizeof(*s->t));
    json_array_foreach(list, i, v)
    {
        struct engine_task_result *r = &s->t[s->n++];
        r->ok = 1;
        r->retryable = 1;
        if (!json_is_object(v))
            rc = wfo_error_set(err, WFO_EINVAL, "expected an object");
        else if ((rc = api_fields_known(
                      v, NULL, json_object_get(v, "error") ? known_fail : known_ok, err)) == 0 &&
                 (rc = api_field_str(v, "task_id", 1, &r->task_id, err)) == 0 &&
                 (rc = lease_of(v, &r->lease, err)) == 0 && json_object_get(v, "error")) {
            r->ok = 0;
            rc = failure_of(a, v, &r->error, &r->retryable, err);
        }
        if (rc == 0 && r->ok)
            rc = api_payload_check(a, json_object_get(v, "output"), "output", err);
        if (rc < 0) {
            char msg[sizeof(err->message)];
            snprintf(msg, sizeof(msg), "%s", err->message);
            return wfo_error_set(err, rc, "results[%zu].%s", i, msg);
        }
        r->output = json_object_get(v, "output");
        if (!r->output)
            r->output = json_null();
    }
    return 0;
}

/* The entry of the answer's results[] for t, finished here. */
static json_t *finish_entry(const struct engine_task_result *r)
{
    if (r->rc < 0)
        return json_pack("{s:s, s:s, s:i, s:{s:s, s:s}}", "task_id", r->task_id, "status",
                         "rejected", "status_code", wfo_error_http_status(r->rc), "error", "type",
                         wfo_error_type(r->rc), "message", r->err.message);
    return json_pack("{s:s, s:s}", "task_id", r->task_id, "status", r->ok ? "completed" : "failed");
}

/* The answer {results, tasks?}: with the body's poll, the tasks of its
 * queues ready once the results are committed (the next step of each
 * execution, dispatched in the results' commit), leased as a poll that
 * does not wait would lease them; a worker then needs no poll between
 * two tasks. A poll that fails leaves tasks empty: the results stand. */
static json_t *finish_answer(struct api *a, struct api_req *req, struct finish_args *s,
                             json_t *results)
{
    json_t *out = json_pack("{s:o}", "results", results), *tasks = NULL;
    if (!s->eager)
        return out;
    struct wfo_error ignore = WFO_ERROR_INIT;
    if (engine_task_poll(a->engine, req->ns, s->poll.queues, s->poll.n, s->poll.worker,
                         (int)s->poll.max, 0, NULL, &tasks, &ignore) < 0) {
        json_decref(tasks);
        tasks = json_array();
    } else if (json_array_size(tasks) > 0 && req->gone && req->gone(req->conn)) {
        engine_task_unpoll(a->engine, tasks); /* nobody to hand them to */
        json_array_clear(tasks);
    }
    json_object_set_new(out, "tasks", tasks);
    return out;
}

static void finish_args_release(struct finish_args *s)
{
    for (size_t i = 0; s->t && i < s->n; i++)
        json_decref(s->t[i].error);
    free(s->t);
    json_decref(s->body);
}

int api_task_complete_many(struct api *a, struct api_req *req, struct api_resp *resp,
                           struct wfo_error *err)
{
    struct finish_args s = {0};
    json_t *out = NULL, **fwd = NULL;
    size_t i, n;
    int rc = finish_args(a, req, &s, err);
    if (rc < 0)
        goto out;
    n = s.n;
    /* a cluster: the results of other nodes' tasks go to them; the rest
     * are finished here, in one call */
    fwd = wfo_calloc(n, sizeof(*fwd));
    size_t here = 0;
    for (i = 0; i < n; i++) {
        if (engine_clustered(a->engine) && !api_header(req, "X-Wfo-Forwarded"))
            fwd[i] = result_forward(a, req, json_array_get(json_object_get(s.body, "results"), i));
        if (fwd[i]) {
            json_decref(s.t[i].error);
            s.t[i].error = NULL;
        } else if (here++ < i) {
            s.t[here - 1] = s.t[i];
            s.t[i].error = NULL; /* moved */
        }
    }
    if (here && (rc = engine_task_finish(a->engine, req->ns, s.t, (int)here, err)) < 0)
        goto out;
    out = json_array();
    size_t k = 0;
    for (i = 0; i < n; i++)
        json_array_append_new(out, fwd[i] ? json_incref(fwd[i]) : finish_entry(&s.t[k++]));
    api_resp_json(resp, 200, finish_answer(a, req, &s, out));
out:
    for (i = 0; fwd && i < s.n; i++)
        json_decref(fwd[i]);
    free(fwd);
    finish_args_release(&s);
    return rc;
}

/* Pool mode (api_begin): checked and queued without a thread that waits;
 * the results are answered by api_task_complete_many_end. Not in a
 * cluster (api_can_later), so nothing is forwarded. */
int api_task_complete_many_later(struct api *a, struct api_req *req, struct api_later *l,
                                 struct wfo_error *err)
{
    struct finish_args *s = wfo_calloc(1, sizeof(*s));
    l->state = s;
    int rc = finish_args(a, req, s, err);
    if (rc == 0)
        rc = engine_task_finish_post(a->engine, req->ns, s->t, (int)s->n, l->done, l->ud, &s->later,
                                     err);
    s->posted = rc == 0;
    /* none queued (every lease refused): answered at once */
    return rc < 0 ? rc : s->later ? 1 : 0;
}

int api_task_complete_many_end(struct api *a, struct api_req *req, struct api_resp *resp,
                               struct api_later *l, struct wfo_error *err)
{
    struct finish_args *s = l->state;
    if (s->posted) {
        engine_task_finish_end(s->later, s->t, (int)s->n);
        json_t *out = json_array();
        for (size_t i = 0; i < s->n; i++)
            json_array_append_new(out, finish_entry(&s->t[i]));
        api_resp_json(resp, 200, finish_answer(a, req, s, out));
    }
    finish_args_release(s);
    free(s);
    l->state = NULL;
    return 0;
}

int api_task_heartbeat(struct api *a, struct api_req *req, struct api_resp *resp,
                       struct wfo_error *err)
{
    json_t *body = NULL;
    const char *lease = NULL;
    int cancel = 0;
    static const char *const known[] = {"lease", "details", NULL};
    int rc = api_body_object(req, 0, &body, err);
    if (rc < 0 || (rc = api_fields_known(body, NULL, known, err)) < 0 ||
        (rc = lease_of(body, &lease, err)) < 0 ||
        (rc = api_payload_check(a, json_object_get(body, "details"), "details", err)) < 0)
        goto out;
    rc = engine_task_heartbeat(a->engine, req->ns, req->params[0], lease, &cancel, err);
    if (rc < 0)
        goto out;
    api_resp_json(resp, 200, json_pack("{s:b}", "cancel_requested", cancel));
out:
    json_decref(body);
    return rc;
}

int api_queue_list(struct api *a, struct api_req *req, struct api_resp *resp, struct wfo_error *err)
{
    api_resp_json(resp, 200, json_pack("{s:o}", "queues", engine_queues(a->engine, req->ns, 0)));
    return 0;
}
