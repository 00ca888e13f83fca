/*
 * task.c - a `task` step run by an in-process handler (wfo_engine_handle;
 * `wfo run --handler` registers one that runs a command). Tasks of queues
 * without a handler wait in the store for workers (api/).
 */
#include "common/compat.h"

#include <stdlib.h>
#include <string.h>

#include "runner.h"
#include "taskcmd.h"
#include "../common/util.h"

void step_run_task(struct step_job *job, struct step_outcome *out)
{
    json_t *input = json_object_get(job->args.fields, "input");
    char *in = wfo_json_dumps(input ? input : json_null());
    char *output = NULL, *error = NULL;
    struct wfo_task t = {
        .task_id = job->task_id,
        .queue = job->args.queue,
        .exec_id = job->exec_id,
        .step = job->path,
        .attempt = job->attempt,
        .idempotency_key = job->idempotency_key,
        .input = in,
        .deadline = job->deadline,
    };
    if (job->command) {
        struct taskcmd_env env = {job->task_id,         job->exec_id, job->path,
                                  job->idempotency_key, job->attempt, job->args.queue};
        struct wfo_error err = WFO_ERROR_INIT;
        int retryable = 1;
        int rc = taskcmd_run(job->command, &env, in, job->args.timeout_ms, &job->cancel, &output,
                             &error, &retryable, &err);
        if (rc < 0) {
            step_outcome_fail(out, "CommandFailed", err.message, NULL, 1);
            goto out;
        }
        if (!error) {
            json_t *v = NULL;
            if (!output || wfo_json_parse(output, strlen(output), &v, NULL) < 0)
                v = json_null();
            out->ok = 1;
            out->output = v;
            goto out;
        }
        json_t *e = NULL;
        if (wfo_json_parse(error, strlen(error), &e, NULL) < 0 || !json_is_object(e)) {
            json_decref(e);
            step_outcome_fail(out, "CommandFailed", error, NULL, retryable);
            goto out;
        }
        const char *type = wfo_json_str(e, "type");
        const char *msg = wfo_json_str(e, "message");
        json_t *details = json_object_get(e, "details");
        step_outcome_fail(out, type ? type : "CommandFailed", msg ? msg : "",
                          details ? json_incref(details) : NULL, retryable);
        json_decref(e);
        goto out;
    }
    if (!job->handler) {
        step_outcome_fail(out, "NoHandler", "no handler for the queue", NULL, 0);
        goto out;
    }
    int rc = job->handler(job->handler_ud, &t, &output, &error);
    if (rc == 0) {
        json_t *v = NULL;
        if (!output || !*output) {
            v = json_null();
        } else if (wfo_json_parse(output, strlen(output), &v, NULL) < 0) {
            step_outcome_fail(out, "BadOutput", "handler output is not JSON", NULL, 0);
            goto out;
        }
        out->ok = 1;
        out->output = v;
        goto out;
    }
    json_t *e = NULL;
    if (!error || wfo_json_parse(error, strlen(error), &e, NULL) < 0 || !json_is_object(e)) {
        json_decref(e);
        step_outcome_fail(out, "TaskFailed", error ? error : "handler failed", NULL, 1);
        goto out;
    }
    json_t *r = json_object_get(e, "retryable");
    const char *type = wfo_json_str(e, "type");
    const char *msg = wfo_json_str(e, "message");
    json_t *details = json_object_get(e, "details");
    step_outcome_fail(out, type ? type : "TaskFailed", msg ? msg : "",
                      details ? json_incref(details) : NULL, json_is_false(r) ? 0 : 1);
    json_decref(e);
out:
    free(in);
    free(output);
    free(error);
}
