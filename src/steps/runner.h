/*
 * runner.h - step runners: the step types that do I/O (exec, http, task
 * with an in-process handler), chosen from a table by type (h2o's
 * lib/handler). The engine runs each job on one of its runner threads and
 * feeds the outcome back to the state machine. docs/interfaces/internal.md.
 *
 * A runner never touches an execution: it gets a job (the evaluated fields
 * of one attempt) and fills an outcome. It evaluates no expression.
 */
#ifndef WFO_STEPS_RUNNER_H
#define WFO_STEPS_RUNNER_H

#include "wfo/wfo.h"
#include "../common/json.h"
#include "../core/def.h"
#include "proc.h"

struct step_job {
    char *exec_id;
    char *path;
    int64_t token;
    int attempt;
    const struct def_step *def; /* kept alive by the job's def reference */
    struct wfo_def *defref;
    json_t *args; /* {input, request?, command?, stdin?, env?, cwd?} */
    char *idempotency_key;
    char *task_id;
    char *key;        /* the engine's key for cancelling it */
    int64_t deadline; /* ms since the epoch, 0: none */
    struct proc_cancel cancel;
    /* what the engine lends: */
    wfo_task_handler handler; /* task: the queue's in-process handler */
    void *handler_ud;
    const char *command; /* task: or the queue's command (borrowed from the engine) */
    int exec_enabled;
    int http_deny_private;
};

struct step_outcome {
    int ok;
    json_t *output; /* ok: the raw result (new ref) */
    json_t *error;  /* !ok: {type, message, details} (new ref) */
    int retryable;
};

typedef void (*step_run_fn)(struct step_job *job, struct step_outcome *out);

struct step_runner {
    enum step_type type;
    step_run_fn run;
};

/* The runner of a step type, or NULL when the type runs in the state
 * machine itself. */
const struct step_runner *step_runner_find(enum step_type type);

/* Fills out with a failure (takes details). */
void step_outcome_fail(struct step_outcome *out, const char *type, const char *message,
                       json_t *details, int retryable);

void step_run_exec(struct step_job *job, struct step_outcome *out);
void step_run_task(struct step_job *job, struct step_outcome *out);
void step_run_http(struct step_job *job, struct step_outcome *out);

#endif
