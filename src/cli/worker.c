/*
 * worker.c - `wfo worker` (SPEC 5; its usage is in main.c's commands[]
 * table): a language-agnostic worker. It long-polls the server's
 * POST /v1/tasks/poll for tasks of its queues and runs COMMAND for each
 * through the worker command protocol (steps/taskcmd.h: input on stdin,
 * envelope in WFO_* variables, exit status and stdout decide), then reports
 * the results in batches: POST /v1/tasks/complete {results: [...]} (one
 * request, one commit on the server, for every result that finished while
 * the previous report was under way), or POST /v1/tasks/ID/complete or
 * /fail to a server without it. docs/interfaces/api.md describes the task
 * endpoints, docs/interfaces/internal.md the command protocol.
 *
 * Threads:
 *   main      polls while a slot is free (at most --concurrency tasks run)
 *   signals   sigwait()s SIGTERM/SIGINT: the first stops polling (and
 *             interrupts the poll in flight), the second also cancels the
 *             running commands (their results get one short attempt at
 *             being reported)
 *   task      one per task: runs the command, queues its result for the
 *             reporter and waits until it is reported (its slot stays
 *             taken until then)
 *   reporter  sends the queued results, up to WORKER_POLL_MAX in one
 *             request, retrying
 *   heartbeat one per task: POST .../heartbeat every interval; cancels the
 *             command when the answer says cancel_requested or the lease
 *             is no longer ours (409/404)
 *
 * What must stay true:
 *  1. The server may go away at any time (restart, kill -9): a poll, a
 *     heartbeat or a report that gets no answer, or a 5xx, is retried with
 *     backoff; the worker never exits for it.
 *  2. A result is reported once the command ended, even after SIGTERM; a
 *     409 (stale lease, the task was given to someone else or the
 *     execution ended) is logged and dropped: the server already decided.
 *  3. SIGTERM/SIGINT are blocked in every thread but the signal thread, so
 *     a signal never interrupts a request or proc_run; the commands start
 *     with an empty mask in their own process group (steps/proc.h), so a
 *     Ctrl-C on the terminal reaches the worker only.
 */
#include "common/compat.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "../common/duration.h"
#include "../common/httpc.h"
#include "../common/log.h"
#include "../common/util.h"
#include "../steps/taskcmd.h"

#define WORKER_POLL_WAIT "20s"
#define WORKER_POLL_WAIT_MS (20 * 1000)
/* Added to a request's own wait for its whole timeout. */
#define WORKER_REQUEST_MS (30 * 1000)
/* Default heartbeat interval: a third of a 30 s lease. */
#define WORKER_HEARTBEAT_MS (10 * 1000)
/* Backoff between attempts when the server is unreachable. */
#define WORKER_BACKOFF_MIN_MS 250
#define WORKER_BACKOFF_MAX_MS 5000
/* How long a finished task's report is retried before it is given up. */
#define WORKER_REPORT_FOR_MS (10 * 60 * 1000)
/* A report's one attempt once the worker was told twice to stop. */
#define WORKER_LAST_REPORT_MS (5 * 1000)
#define WORKER_MAX_CONCURRENCY 1000
/* The poll's `max` is 1..100 (SPEC 4), and so is a batch of results. */
#define WORKER_POLL_MAX 100
/* A batch of results is cut at this many bytes of JSON (the server's
 * limits.body_bytes is 1 MiB by default; a 413 splits a batch anyway). */
#define WORKER_BATCH_BYTES (256 * 1024)

struct worker_task;
struct worker_result;

struct worker {
    char *base; /* server URL, no trailing slash */
    char *auth; /* "Bearer TOKEN" or NULL */
    json_t *queues;
    char **argv; /* COMMAND [ARG]..., borrowed from main's argv */
    int concurrency;
    int64_t heartbeat_ms;
    char id[320]; /* "<hostname>:<pid>" */

    atomic_int stop;       /* first signal: no more polls */
    atomic_int cancel_all; /* second signal: cancel the commands */
    pthread_mutex_t mu;
    pthread_cond_t cv;         /* running changed, or stop */
    int running;               /* tasks whose thread has not ended */
    struct worker_task *tasks; /* the running ones, under mu */
    int fatal;                 /* the server refused the poll for good */

    /* results waiting for the reporter, under mu */
    struct worker_result *results, **results_tail;
    pthread_cond_t report_cv;   /* a result queued, or reporter_stop */
    pthread_cond_t reported_cv; /* a result's done was set */
    int reporter_stop;
    int no_batch; /* the server has no POST /v1/tasks/complete: one request each */
};

/* One task's result, from its command's end until it is reported or
 * given up: on the task thread's stack, which waits for done. */
struct worker_result {
    struct worker_task *t;
    json_t *item;  /* {task_id, lease, output} or {task_id, lease, error, retryable} */
    size_t bytes;  /* of item as JSON */
    int failing;   /* item is a failure */
    int shrunk;    /* ... made by worker_result_too_large */
    int alone;     /* its batch was refused as a whole: send it in a request of its own */
    int64_t since; /* first queued */
    int done;      /* under w->mu */
    struct worker_result *next;
};

struct worker_task {
    struct worker *w;
    json_t *t; /* this thread's own copy of the task object */
    const char *task_id, *lease, *exec_id, *step, *queue, *idem;
    int attempt;
    int64_t timeout_ms;
    int64_t heartbeat_ms;
    struct proc_cancel cancel;

    pthread_mutex_t mu;
    pthread_cond_t cv; /* done */
    int done;
    atomic_int hb_stop; /* interrupts a heartbeat in flight */
    struct worker_task *next;
};

/* ---- HTTP --------------------------------------------------------------- */

struct worker_reply {
    long status;
    json_t *body; /* JSON body, json null when none or not JSON */
};

static void worker_reply_release(struct worker_reply *r)
{
    json_decref(r->body);
    r->body = NULL;
}

/* The message of an error answer, "STATUS TYPE: MESSAGE". */
static void worker_reply_message(const struct worker_reply *r, char *out, size_t size)
{
    json_t *e = wfo_json_obj(r->body, "error");
    const char *type = wfo_json_str(e, "type"), *msg = wfo_json_str(e, "message");

    snprintf(out, size, "%ld %s: %s", r->status, type ? type : "Error", msg ? msg : "");
}

/* POST PATH with body; 0 when an answer arrived, else a WFO_E* code. */
static int worker_post(struct worker *w, const char *path, const json_t *body, int64_t timeout_ms,
                       const atomic_int *cancel, struct worker_reply *r, struct wfo_error *err)
{
    struct httpc_header headers[3] = {{"Content-Type", "application/json"},
                                      {"Accept", "application/json"},
                                      {"Authorization", w->auth}};
    struct httpc_response res;
    struct wfo_buf url = WFO_BUF_INIT;
    char *text = wfo_json_dumps(body);
    int rc;

    memset(&res, 0, sizeof(res));
    r->status = 0;
    r->body = NULL;
    wfo_buf_addf(&url, "%s%s", w->base, path);
    struct httpc_request req = {
        .method = "POST",
        .url = url.buf,
        .headers = headers,
        .n_headers = w->auth ? 3 : 2,
        .body = text,
        .body_len = strlen(text),
        .timeout_ms = timeout_ms,
        .cancel = cancel,
    };
    rc = httpc_do(&req, &res, err);
    if (rc == 0) {
        r->status = res.status;
        if (wfo_json_parse(res.body.buf, res.body.len, &r->body, NULL) < 0)
            r->body = json_null();
    }
    httpc_response_release(&res);
    wfo_buf_release(&url);
    free(text);
    return rc;
}

/* "/v1/tasks/ID/VERB", the id percent-encoded. */
static void worker_task_path(struct wfo_buf *b, const char *task_id, const char *verb)
{
    wfo_buf_adds(b, "/v1/tasks/");
    httpc_escape(b, task_id);
    wfo_buf_addf(b, "/%s", verb);
}

/* Condition variables wait on the monotonic clock: a wall clock that
 * jumps changes no heartbeat or backoff. */
static void worker_cond_init(pthread_cond_t *cv)
{
    pthread_condattr_t attr;

    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &attr);
    pthread_condattr_destroy(&attr);
}

/* ms from now on the clock of worker_cond_init's conditions. */
static void worker_deadline(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Sleeps ms, or less when the worker is told to stop (and when stop). */
static void worker_nap(struct worker *w, int64_t ms, int until_abort)
{
    struct timespec ts;
    atomic_int *flag = until_abort ? &w->cancel_all : &w->stop;

    worker_deadline(&ts, ms);
    pthread_mutex_lock(&w->mu);
    while (!atomic_load(flag))
        if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) != 0)
            break;
    pthread_mutex_unlock(&w->mu);
}

static int64_t worker_next_backoff(int64_t ms)
{
    ms *= 2;
    return ms > WORKER_BACKOFF_MAX_MS ? WORKER_BACKOFF_MAX_MS : ms;
}

/* ---- one task ------------------------------------------------------------ */

/* A duration field (string or integer milliseconds); 0 when absent/bad. */
static int64_t worker_ms_field(const json_t *t, const char *key)
{
    json_t *v = json_object_get(t, key);
    int64_t ms = 0;

    if (json_is_integer(v))
        ms = json_integer_value(v);
    else if (json_is_string(v) && wfo_duration_parse(json_string_value(v), &ms) < 0)
        ms = 0;
    return ms > 0 ? ms : 0;
}

/* Sends heartbeats until the task is done (invariant 1 for failures). */
static void *worker_heartbeat_main(void *arg)
{
    struct worker_task *t = arg;
    struct worker *w = t->w;
    struct wfo_buf path = WFO_BUF_INIT;
    json_t *body = json_object();
    int64_t next = wfo_mono_ms() + t->heartbeat_ms;
    struct worker_reply r;
    struct wfo_error err = WFO_ERROR_INIT;
    char msg[600];

    worker_task_path(&path, t->task_id, "heartbeat");
    json_object_set_new(body, "lease", json_string(t->lease));
    for (;;) {
        pthread_mutex_lock(&t->mu);
        while (!t->done) {
            int64_t left = next - wfo_mono_ms();
            struct timespec ts;
            if (left <= 0)
                break;
            worker_deadline(&ts, left);
            pthread_cond_timedwait(&t->cv, &t->mu, &ts);
        }
        int done = t->done;
        pthread_mutex_unlock(&t->mu);
        if (done)
            break;

        int64_t timeout = t->heartbeat_ms < 10000 ? 10000 : t->heartbeat_ms;
        if (worker_post(w, path.buf, body, timeout, &t->hb_stop, &r, &err) < 0) {
            if (err.code != WFO_ESHUTDOWN)
                wfo_warn(t->exec_id, t->step, "task %s: heartbeat: %s", t->task_id, err.message);
            next = wfo_mono_ms() + (t->heartbeat_ms < 2000 ? t->heartbeat_ms : 2000);
            continue;
        }
        next = wfo_mono_ms() + t->heartbeat_ms;
        if (r.status >= 200 && r.status <= 299) {
            if (json_is_true(json_object_get(r.body, "cancel_requested")) &&
                !proc_cancel_requested(&t->cancel)) {
                wfo_info(t->exec_id, t->step, "task %s: cancel requested, stopping the command",
                         t->task_id);
                proc_cancel_request(&t->cancel);
            }
        } else if (r.status == 409 || r.status == 404) {
            /* the lease is not ours any more: a result would be refused */
            worker_reply_message(&r, msg, sizeof(msg));
            if (!proc_cancel_requested(&t->cancel)) {
                wfo_warn(t->exec_id, t->step,
                         "task %s: heartbeat refused (%s), stopping the command", t->task_id, msg);
                proc_cancel_request(&t->cancel);
            }
        } else {
            worker_reply_message(&r, msg, sizeof(msg));
            wfo_warn(t->exec_id, t->step, "task %s: heartbeat: %s", t->task_id, msg);
            if (httpc_status_transient(r.status))
                next = wfo_mono_ms() + (t->heartbeat_ms < 2000 ? t->heartbeat_ms : 2000);
        }
        worker_reply_release(&r);
    }
    json_decref(body);
    wfo_buf_release(&path);
    return NULL;
}

/* ---- reporting results ---------------------------------------------------- */

/* What one result's report came to. */
enum worker_sent {
    SENT_OK,      /* accepted */
    SENT_REFUSED, /* refused for good (409 stale, or another 4xx): logged, dropped */
    SENT_RETRY,   /* no answer, or a transient one: again after a backoff */
    SENT_AGAIN,   /* again at once, sent another way (alone, per task, as a failure) */
};

static const char *worker_result_verb(const struct worker_result *r)
{
    return r->failing ? "fail" : "complete";
}

/* Did the server refuse a result for its size: over its body limit (413),
 * or an output or error over limits.payload_bytes (400 PayloadTooLarge)?
 * msg is worker_reply_message's "STATUS TYPE: MESSAGE". */
static int answer_too_large(long status, const char *msg)
{
    return status == 413 || (status == 400 && strncmp(msg, "400 PayloadTooLarge:", 20) == 0);
}

/* The output (or the error) is larger than the server accepts: the step
 * fails with a small BadOutput instead, not retried (the command would
 * print the same again); else the task would be refused, handed out again
 * at every lease expiry and never end. */
static void worker_result_too_large(struct worker_result *r)
{
    struct worker_task *t = r->t;
    const char *what = r->failing ? "error" : "output";
    wfo_warn(t->exec_id, t->step, "task %s: the %s is too large for the server", t->task_id, what);
    r->failing = 1;
    r->shrunk = 1;
    json_object_del(r->item, "output");
    char msg[64];
    snprintf(msg, sizeof(msg), "the %s is larger than the server accepts", what);
    json_object_set_new(r->item, "error", wfo_json_error("BadOutput", msg, NULL));
    json_object_set_new(r->item, "retryable", json_false());
}

/* An answer for one result: status and, for a refusal, msg. */
static enum worker_sent worker_result_answer(struct worker_result *r, long status, const char *msg,
                                             int alone)
{
    struct worker_task *t = r->t;
    if (status >= 200 && status <= 299)
        return SENT_OK;
    if (answer_too_large(status, msg) && !r->shrunk && alone) {
        worker_result_too_large(r);
        return SENT_AGAIN;
    }
    if (httpc_status_transient(status))
        return SENT_RETRY;
    if (status == 409)
        wfo_info(t->exec_id, t->step, "task %s: %s refused as stale: %s", t->task_id,
                 worker_result_verb(r), msg);
    else
        wfo_err(t->exec_id, t->step, "task %s: %s refused: %s", t->task_id, worker_result_verb(r),
                msg);
    return SENT_REFUSED;
}

/* POST /v1/tasks/ID/complete or /fail for one result (a server without
 * the batch endpoint). */
static enum worker_sent worker_send_one(struct worker *w, struct worker_result *r, int last,
                                        char *msg, size_t msg_size)
{
    struct wfo_buf path = WFO_BUF_INIT;
    struct worker_reply rep;
    struct wfo_error err = WFO_ERROR_INIT;
    json_t *body = json_deep_copy(r->item);
    enum worker_sent sent;

    json_object_del(body, "task_id");
    worker_task_path(&path, r->t->task_id, worker_result_verb(r));
    if (worker_post(w, path.buf, body, last ? WORKER_LAST_REPORT_MS : WORKER_REQUEST_MS,
                    last ? NULL : &w->cancel_all, &rep, &err) < 0) {
        snprintf(msg, msg_size, "%s", err.message);
        sent = SENT_RETRY;
    } else {
        worker_reply_message(&rep, msg, msg_size);
        sent = worker_result_answer(r, rep.status, msg, 1);
        worker_reply_release(&rep);
    }
    json_decref(body);
    wfo_buf_release(&path);
    return sent;
}

/* POST /v1/tasks/complete with results b[0..n-1]; sent[i] gets each one's
 * outcome, msg the message of a failed request. */
static void worker_send_batch(struct worker *w, struct worker_result **b, int n, int last,
                              enum worker_sent *sent, char *msg, size_t msg_size)
{
    struct worker_reply rep;
    struct wfo_error err = WFO_ERROR_INIT;
    json_t *list = json_array();
    for (int i = 0; i < n; i++)
        json_array_append(list, b[i]->item);
    json_t *body = json_pack("{s:o}", "results", list);
    int rc =
        worker_post(w, "/v1/tasks/complete", body, last ? WORKER_LAST_REPORT_MS : WORKER_REQUEST_MS,
                    last ? NULL : &w->cancel_all, &rep, &err);
    json_decref(body);
    if (rc < 0) {
        snprintf(msg, msg_size, "%s", err.message);
        for (int i = 0; i < n; i++)
            sent[i] = SENT_RETRY;
        return;
    }
    worker_reply_message(&rep, msg, msg_size);
    if (rep.status == 404 || rep.status == 405) {
        /* an older server: one request per result from now on */
        wfo_info(NULL, NULL, "server %s has no POST /v1/tasks/complete: reporting each task alone",
                 w->base);
        w->no_batch = 1;
        for (int i = 0; i < n; i++)
            sent[i] = SENT_AGAIN;
    } else if ((rep.status == 400 || rep.status == 413) && n > 1) {
        /* one result spoils the batch (too large, refused): each alone */
        for (int i = 0; i < n; i++) {
            b[i]->alone = 1;
            sent[i] = SENT_AGAIN;
        }
    } else if (rep.status < 200 || rep.status > 299) {
        for (int i = 0; i < n; i++)
            sent[i] = worker_result_answer(b[i], rep.status, msg, n == 1);
    } else {
        /* each result's own answer, in order: {task_id, status} or
         * {task_id, status: "rejected", status_code, error} */
        json_t *results = wfo_json_arr(rep.body, "results");
        for (int i = 0; i < n; i++) {
            json_t *a = json_array_get(results, (size_t)i);
            json_t *code = json_object_get(a, "status_code");
            if (!json_is_integer(code)) {
                sent[i] = SENT_OK;
                continue;
            }
            json_t *e = wfo_json_obj(a, "error");
            char one[600];
            snprintf(one, sizeof(one), "%lld %s: %s", (long long)json_integer_value(code),
                     wfo_json_str(e, "type") ? wfo_json_str(e, "type") : "Error",
                     wfo_json_str(e, "message") ? wfo_json_str(e, "message") : "");
            sent[i] = worker_result_answer(b[i], (long)json_integer_value(code), one, 1);
        }
    }
    worker_reply_release(&rep);
}

/* Takes the next batch off the queue: up to WORKER_POLL_MAX results and
 * WORKER_BATCH_BYTES, or one alone (all of them alone without the batch
 * endpoint); under w->mu. */
static int worker_batch_take(struct worker *w, struct worker_result **b)
{
    int n = 0;
    size_t bytes = 0;
    while (w->results && n < WORKER_POLL_MAX) {
        struct worker_result *r = w->results;
        if (n > 0 && (r->alone || w->no_batch || bytes + r->bytes > WORKER_BATCH_BYTES))
            break;
        w->results = r->next;
        if (!w->results)
            w->results_tail = &w->results;
        b[n++] = r;
        bytes += r->bytes;
        if (r->alone || w->no_batch)
            break;
    }
    return n;
}

/* Puts results back at the head of the queue, in order; under w->mu. */
static void worker_batch_return(struct worker *w, struct worker_result **b, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        b[i]->next = w->results;
        if (!w->results)
            w->results_tail = &b[i]->next;
        w->results = b[i];
    }
}

/* The reporter thread: sends what is queued, a batch at a time; retries
 * while the server is away (invariant 1), drops what it refuses
 * (invariant 2); after the second signal each result gets one short
 * attempt. */
static void *worker_reporter_main(void *arg)
{
    struct worker *w = arg;
    struct worker_result *b[WORKER_POLL_MAX];
    enum worker_sent sent[WORKER_POLL_MAX];
    int64_t backoff = WORKER_BACKOFF_MIN_MS;
    char msg[600];

    for (;;) {
        pthread_mutex_lock(&w->mu);
        while (!w->results && !w->reporter_stop)
            pthread_cond_wait(&w->report_cv, &w->mu);
        int n = worker_batch_take(w, b);
        int no_batch = w->no_batch;
        pthread_mutex_unlock(&w->mu);
        if (n == 0)
            break; /* reporter_stop, and nothing left */

        int last = atomic_load(&w->cancel_all);
        msg[0] = 0;
        if (no_batch)
            sent[0] = worker_send_one(w, b[0], last, msg, sizeof(msg));
        else
            worker_send_batch(w, b, n, last, sent, msg, sizeof(msg));

        int retry = 0, again = 0;
        for (int i = 0; i < n; i++) {
            struct worker_result *r = b[i];
            struct worker_task *t = r->t;
            if (sent[i] == SENT_RETRY &&
                (last || wfo_mono_ms() - r->since > WORKER_REPORT_FOR_MS)) {
                wfo_err(t->exec_id, t->step, "task %s: giving up reporting %s: %s", t->task_id,
                        worker_result_verb(r), msg);
                sent[i] = SENT_REFUSED;
            }
            if (sent[i] == SENT_RETRY)
                retry++;
            if (sent[i] == SENT_AGAIN)
                again++;
        }
        if (retry)
            wfo_warn(NULL, NULL, "reporting %d result(s): %s (retrying)", retry, msg);

        /* the done ones go back to their threads, the others to the queue */
        pthread_mutex_lock(&w->mu);
        int k = 0;
        for (int i = 0; i < n; i++) {
            if (sent[i] == SENT_OK || sent[i] == SENT_REFUSED)
                b[i]->done = 1;
            else
                b[k++] = b[i];
        }
        worker_batch_return(w, b, k);
        pthread_cond_broadcast(&w->reported_cv);
        pthread_mutex_unlock(&w->mu);

        if (retry && !again) {
            worker_nap(w, backoff, 1);
            backoff = worker_next_backoff(backoff);
        } else if (!retry) {
            backoff = WORKER_BACKOFF_MIN_MS;
        }
    }
    return NULL;
}

/* Queues t's result for the reporter and waits until it is reported or
 * given up (invariant 2). */
static void worker_report(struct worker_task *t, const char *output, const char *error,
                          int retryable)
{
    struct worker *w = t->w;
    struct worker_result r = {.t = t, .since = wfo_mono_ms()};
    json_t *v = NULL;

    r.item = json_pack("{s:s, s:s}", "task_id", t->task_id, "lease", t->lease);
    if (error) {
        if (wfo_json_parse(error, strlen(error), &v, NULL) < 0)
            v = wfo_json_error("WorkerError", "unreadable error", NULL);
        json_object_set_new(r.item, "error", v);
        json_object_set_new(r.item, "retryable", json_boolean(retryable));
        r.failing = 1;
    } else {
        if (!output || wfo_json_parse(output, strlen(output), &v, NULL) < 0)
            v = json_null();
        json_object_set_new(r.item, "output", v);
    }
    char *text = wfo_json_dumps(r.item);
    r.bytes = text ? strlen(text) : 0;
    free(text);

    pthread_mutex_lock(&w->mu);
    *w->results_tail = &r;
    w->results_tail = &r.next;
    pthread_cond_signal(&w->report_cv);
    while (!r.done)
        pthread_cond_wait(&w->reported_cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
    json_decref(r.item);
}

static void worker_task_free(struct worker_task *t)
{
    if (!t)
        return;
    proc_cancel_release(&t->cancel);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    json_decref(t->t);
    free(t);
}

/* Takes t off the running list; under w->mu. */
static void worker_task_unlink(struct worker *w, struct worker_task *t)
{
    for (struct worker_task **p = &w->tasks; *p; p = &(*p)->next) {
        if (*p == t) {
            *p = t->next;
            return;
        }
    }
}

static void *worker_task_main(void *arg)
{
    struct worker_task *t = arg;
    struct worker *w = t->w;
    struct taskcmd_env env = {t->task_id, t->exec_id, t->step, t->idem, t->attempt, t->queue};
    struct wfo_error err = WFO_ERROR_INIT;
    char *input = NULL, *output = NULL, *error = NULL;
    int retryable = 0, hb = 0, rc;
    pthread_t hb_thread;
    int64_t t0 = wfo_mono_ms();

    input = wfo_json_dumps(json_object_get(t->t, "input"));
    wfo_info(t->exec_id, t->step, "task %s: started (queue %s, attempt %d)", t->task_id, t->queue,
             t->attempt);
    if (t->heartbeat_ms > 0 && pthread_create(&hb_thread, NULL, worker_heartbeat_main, t) == 0)
        hb = 1;
    rc = taskcmd_run_argv(w->argv, &env, input, t->timeout_ms, &t->cancel, &output, &error,
                          &retryable, &err);
    if (hb) {
        pthread_mutex_lock(&t->mu);
        t->done = 1;
        pthread_cond_signal(&t->cv);
        pthread_mutex_unlock(&t->mu);
        atomic_store(&t->hb_stop, 1);
        pthread_join(hb_thread, NULL);
    }
    if (rc < 0) {
        /* the command could not start here; another worker may manage */
        json_t *e = wfo_json_error("CommandFailed", err.message, NULL);
        error = wfo_json_dumps(e);
        json_decref(e);
        retryable = 1;
    }
    if (error) {
        json_t *e = NULL;
        wfo_json_parse(error, strlen(error), &e, NULL);
        wfo_info(t->exec_id, t->step, "task %s: failed after %lld ms: %s: %s%s", t->task_id,
                 (long long)(wfo_mono_ms() - t0), wfo_json_str(e, "type"),
                 wfo_json_str(e, "message") ? wfo_json_str(e, "message") : "",
                 retryable ? "" : " (not retryable)");
        json_decref(e);
    } else {
        wfo_info(t->exec_id, t->step, "task %s: completed in %lld ms", t->task_id,
                 (long long)(wfo_mono_ms() - t0));
    }
    worker_report(t, output, error, retryable);
    free(input);
    free(output);
    free(error);

    /* off the list (the signal thread walks it), freed, and only then
     * counted out: once running is 0 the worker may exit */
    pthread_mutex_lock(&w->mu);
    worker_task_unlink(w, t);
    pthread_mutex_unlock(&w->mu);
    worker_task_free(t);
    pthread_mutex_lock(&w->mu);
    w->running--;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* Starts a thread for one task of a poll's answer (a copy of task). */
static void worker_task_start(struct worker *w, const json_t *task)
{
    struct worker_task *t = wfo_calloc(1, sizeof(*t));
    struct wfo_error err = WFO_ERROR_INIT;
    pthread_attr_t attr;
    pthread_t th;
    json_t *attempt, *deadline;
    int64_t hb;

    t->w = w;
    t->t = json_deep_copy(task);
    t->task_id = wfo_json_str(t->t, "task_id");
    t->lease = wfo_json_str(t->t, "lease");
    t->exec_id = wfo_json_str(t->t, "execution_id");
    t->step = wfo_json_str(t->t, "step");
    t->queue = wfo_json_str(t->t, "queue");
    t->idem = wfo_json_str(t->t, "idempotency_key");
    attempt = json_object_get(t->t, "attempt");
    t->attempt = json_is_integer(attempt) ? (int)json_integer_value(attempt) : 0;
    if (!t->queue)
        t->queue = "?";
    if (!t->task_id || !t->lease) {
        /* nothing to report to: the lease runs out and the task goes elsewhere */
        wfo_err(t->exec_id, t->step, "a task without task_id or lease in the server's answer");
        json_decref(t->t);
        free(t);
        return;
    }
    if (proc_cancel_init(&t->cancel, &err) < 0) {
        wfo_err(t->exec_id, t->step, "task %s: %s", t->task_id, err.message);
        json_decref(t->t);
        free(t);
        return;
    }
    pthread_mutex_init(&t->mu, NULL);
    worker_cond_init(&t->cv);

    /* the deadline (RFC 3339 or epoch ms) is the command's timeout */
    deadline = json_object_get(t->t, "deadline");
    int64_t at = 0;
    if (json_is_string(deadline) && wfo_time_parse(json_string_value(deadline), &at) < 0)
        at = 0;
    else if (json_is_integer(deadline))
        at = json_integer_value(deadline);
    if (at > 0) {
        t->timeout_ms = at - wfo_now_ms();
        if (t->timeout_ms < 1)
            t->timeout_ms = 1;
    }
    /* heartbeats: every interval, and at least three times per lease (the
     * server says how long it lasts: lease_ms, or heartbeat_timeout) */
    t->heartbeat_ms = w->heartbeat_ms;
    hb = worker_ms_field(t->t, "lease_ms");
    if (hb <= 0)
        hb = worker_ms_field(t->t, "heartbeat_timeout");
    if (hb > 0 && hb / 3 < t->heartbeat_ms)
        t->heartbeat_ms = hb / 3 > 100 ? hb / 3 : 100;

    pthread_mutex_lock(&w->mu);
    t->next = w->tasks;
    w->tasks = t;
    w->running++;
    if (atomic_load(&w->cancel_all))
        proc_cancel_request(&t->cancel);
    pthread_mutex_unlock(&w->mu);

    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&th, &attr, worker_task_main, t) != 0) {
        /* no thread: the lease will run out and the task go elsewhere */
        wfo_err(t->exec_id, t->step, "task %s: cannot start a thread", t->task_id);
        pthread_mutex_lock(&w->mu);
        worker_task_unlink(w, t);
        w->running--;
        pthread_mutex_unlock(&w->mu);
        worker_task_free(t);
    }
    pthread_attr_destroy(&attr);
}

/* ---- signals ------------------------------------------------------------- */

static void *worker_signal_main(void *arg)
{
    struct worker *w = arg;
    sigset_t set;
    int sig;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    for (;;) {
        if (sigwait(&set, &sig) != 0)
            continue;
        /* not cancelled while it holds mu (cmd_worker cancels it at exit) */
        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
        pthread_mutex_lock(&w->mu);
        if (!atomic_load(&w->stop)) {
            atomic_store(&w->stop, 1);
            wfo_info(NULL, NULL,
                     "signal %d: stopping; waiting for %d running task(s) "
                     "(again to cancel them)",
                     sig, w->running);
        } else if (!atomic_load(&w->cancel_all)) {
            atomic_store(&w->cancel_all, 1);
            wfo_warn(NULL, NULL, "signal %d: cancelling %d running task(s)", sig, w->running);
            for (struct worker_task *t = w->tasks; t; t = t->next)
                proc_cancel_request(&t->cancel);
        }
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
        pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
    }
    return NULL;
}

/* ---- the poll loop --------------------------------------------------------- */

static int worker_loop(struct worker *w)
{
    struct worker_reply r;
    struct wfo_error err = WFO_ERROR_INIT;
    int64_t backoff = WORKER_BACKOFF_MIN_MS;
    int down = 0;
    char msg[600];

    struct wfo_buf names = WFO_BUF_INIT;
    size_t i;
    json_t *q;
    json_array_foreach(w->queues, i, q)
    {
        wfo_buf_addf(&names, "%s%s", i ? ", " : "", json_string_value(q));
    }
    wfo_info(NULL, NULL, "worker %s polling %s for queue(s) %s, %d at a time", w->id, w->base,
             names.buf, w->concurrency);
    wfo_buf_release(&names);
    while (!atomic_load(&w->stop)) {
        int free_slots;
        pthread_mutex_lock(&w->mu);
        while (w->running >= w->concurrency && !atomic_load(&w->stop))
            pthread_cond_wait(&w->cv, &w->mu);
        free_slots = w->concurrency - w->running;
        pthread_mutex_unlock(&w->mu);
        if (atomic_load(&w->stop))
            break;

        json_t *body = json_object();
        json_object_set(body, "queues", w->queues);
        json_object_set_new(body, "worker", json_string(w->id));
        json_object_set_new(
            body, "max", json_integer(free_slots < WORKER_POLL_MAX ? free_slots : WORKER_POLL_MAX));
        json_object_set_new(body, "wait", json_string(WORKER_POLL_WAIT));
        int64_t t0 = wfo_mono_ms();
        int rc = worker_post(w, "/v1/tasks/poll", body, WORKER_POLL_WAIT_MS + WORKER_REQUEST_MS,
                             &w->stop, &r, &err);
        json_decref(body);
        if (rc < 0 && atomic_load(&w->stop))
            break;
        if (rc == 0 && r.status >= 200 && r.status <= 299) {
            json_t *tasks = wfo_json_arr(r.body, "tasks"), *task;
            if (down)
                wfo_info(NULL, NULL, "server %s is back", w->base);
            down = 0;
            backoff = WORKER_BACKOFF_MIN_MS;
            json_array_foreach(tasks, i, task)
            {
                worker_task_start(w, task);
            }
            /* a server that does not long-poll is not asked in a busy loop */
            if (json_array_size(tasks) == 0 && wfo_mono_ms() - t0 < 200)
                worker_nap(w, 500, 0);
            worker_reply_release(&r);
            continue;
        }
        if (rc == 0 && !httpc_status_transient(r.status)) {
            worker_reply_message(&r, msg, sizeof(msg));
            worker_reply_release(&r);
            cli_error("poll: %s", msg);
            w->fatal = 1;
            break;
        }
        if (rc == 0) {
            worker_reply_message(&r, msg, sizeof(msg));
            worker_reply_release(&r);
        } else {
            snprintf(msg, sizeof(msg), "%s", err.message);
        }
        if (!down)
            wfo_warn(NULL, NULL, "poll: %s (retrying until the server answers)", msg);
        down = 1;
        worker_nap(w, backoff, 0);
        backoff = worker_next_backoff(backoff);
    }

    /* let the running tasks finish and report (invariant 2) */
    pthread_mutex_lock(&w->mu);
    if (w->running)
        wfo_info(NULL, NULL, "waiting for %d running task(s)", w->running);
    while (w->running > 0)
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
    return w->fatal ? EXIT_FAILED : EXIT_OK;
}

/* ---- the command ------------------------------------------------------------ */

/* 1 when argv0 names something that can be run (a path, or found in PATH). */
static int worker_runnable(const char *argv0)
{
    const char *path = getenv("PATH"), *p;
    struct wfo_buf b = WFO_BUF_INIT;
    struct stat st;
    int found = 0;

    if (strchr(argv0, '/'))
        return access(argv0, X_OK) == 0;
    if (!path)
        path = "/usr/local/bin:/usr/bin:/bin";
    for (p = path; !found; p++) {
        size_t n = strcspn(p, ":");
        wfo_buf_reset(&b);
        if (n)
            wfo_buf_add(&b, p, n);
        else
            wfo_buf_adds(&b, ".");
        wfo_buf_addf(&b, "/%s", argv0);
        found = stat(b.buf, &st) == 0 && S_ISREG(st.st_mode) && access(b.buf, X_OK) == 0;
        p += n;
        if (!*p)
            break;
    }
    wfo_buf_release(&b);
    return found;
}

int cmd_worker(int argc, char **argv)
{
    struct worker w;
    const char *server = NULL;
    sigset_t set, old;
    pthread_t sig_thread, reporter;
    int rc = EXIT_USAGE, i, sig_started = 0, reporter_started = 0;
    char host[256];

    memset(&w, 0, sizeof(w));
    w.queues = json_array();
    w.concurrency = 1;
    w.heartbeat_ms = WORKER_HEARTBEAT_MS;
    pthread_mutex_init(&w.mu, NULL);
    worker_cond_init(&w.cv);
    pthread_cond_init(&w.report_cv, NULL);
    pthread_cond_init(&w.reported_cv, NULL);
    w.results_tail = &w.results;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *value = NULL;
        static const char *const with_value[] = {"--queue", "--concurrency", "--server",
                                                 "--heartbeat"};
        const char *opt = NULL;

        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            cli_help("worker");
            rc = EXIT_OK;
            goto out;
        }
        if (a[0] != '-')
            break; /* the command starts here */
        for (size_t k = 0; k < WFO_ARRAY_SIZE(with_value); k++) {
            size_t n = strlen(with_value[k]);
            if (strncmp(a, with_value[k], n) == 0 && (a[n] == 0 || a[n] == '=')) {
                opt = with_value[k];
                value = a[n] == '=' ? a + n + 1 : NULL;
            }
        }
        if (!opt) {
            cli_error("worker: unknown option '%s'", a);
            goto usage;
        }
        if (!value) {
            if (i + 1 >= argc) {
                cli_error("%s needs a value", opt);
                goto usage;
            }
            value = argv[++i];
        }
        if (strcmp(opt, "--queue") == 0) {
            json_t *q = json_string(value);
            if (!q || !value[0]) {
                json_decref(q);
                cli_error("--queue: '%s' is not a queue name", value);
                goto usage;
            }
            json_array_append_new(w.queues, q);
        } else if (strcmp(opt, "--concurrency") == 0) {
            int64_t n;
            if (wfo_parse_int64(value, &n) < 0 || n < 1 || n > WORKER_MAX_CONCURRENCY) {
                cli_error("--concurrency: expected a number from 1 to %d, got '%s'",
                          WORKER_MAX_CONCURRENCY, value);
                goto usage;
            }
            w.concurrency = (int)n;
        } else if (strcmp(opt, "--heartbeat") == 0) {
            if (wfo_duration_parse_text(value, &w.heartbeat_ms) < 0 || w.heartbeat_ms < 100) {
                cli_error("--heartbeat: expected a duration of at least 100ms, got '%s'", value);
                goto usage;
            }
        } else {
            server = value;
        }
    }
    if (json_array_size(w.queues) == 0) {
        cli_error("worker: at least one --queue is needed");
        goto usage;
    }
    if (i >= argc || !argv[i][0]) {
        cli_error("worker: no COMMAND to run (put it after --)");
        goto usage;
    }
    w.argv = argv + i;
    if (!worker_runnable(w.argv[0])) {
        cli_error("worker: cannot run '%s': not found or not executable", w.argv[0]);
        goto out;
    }

    cli_server(server, &w.base, &w.auth);
    if (gethostname(host, sizeof(host)) != 0)
        snprintf(host, sizeof(host), "localhost");
    host[sizeof(host) - 1] = 0;
    snprintf(w.id, sizeof(w.id), "%s:%ld", host, (long)getpid());

    /* invariant 3: only the signal thread takes SIGTERM and SIGINT */
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    if (pthread_create(&sig_thread, NULL, worker_signal_main, &w) != 0) {
        cli_error("worker: cannot start a thread");
        rc = EXIT_FAILED;
        goto out;
    }
    sig_started = 1;
    if (pthread_create(&reporter, NULL, worker_reporter_main, &w) != 0) {
        cli_error("worker: cannot start a thread");
        rc = EXIT_FAILED;
        goto out;
    }
    reporter_started = 1;
    rc = worker_loop(&w);
    goto out;

usage:
    cli_usage_error("worker");
out:
    if (reporter_started) {
        /* worker_loop waited for every task, so for every report */
        pthread_mutex_lock(&w.mu);
        w.reporter_stop = 1;
        pthread_cond_signal(&w.report_cv);
        pthread_mutex_unlock(&w.mu);
        pthread_join(reporter, NULL);
    }
    if (sig_started) {
        pthread_cancel(sig_thread);
        pthread_join(sig_thread, NULL);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    json_decref(w.queues);
    free(w.base);
    free(w.auth);
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    pthread_cond_destroy(&w.report_cv);
    pthread_cond_destroy(&w.reported_cv);
    return rc;
}
