/*
 * runner.h - step runners: the step types that do I/O (exec, http, task
 * with an in-process handler), named by the table of step kinds
 * (core/kinds.c; h2o's lib/handler). The engine runs each job on one of its
 * runner threads and feeds the outcome back to the state machine.
 * docs/interfaces/internal.md.
 *
 * A runner never touches an execution nor a definition: it gets a job (the
 * evaluated fields of one attempt and the step's settings it needs, as
 * plain values) and fills an outcome. It evaluates no expression.
 */
#ifndef WFO_STEPS_RUNNER_H
#define WFO_STEPS_RUNNER_H

#include "wfo/wfo.h"
#include "../common/json.h"
#include "proc.h"

struct step_job;
struct step_outcome;
typedef void (*step_run_fn)(struct step_job *job, struct step_outcome *out);

/* What an attempt is given: its evaluated fields, and the settings of its
 * step that its runner needs, copied from the definition. */
struct step_args {
    json_t *fields;     /* {input, request?, command?, stdin?, env?, cwd?} (owned) */
    int64_t timeout_ms; /* the step's timeout per attempt; 0: none */
    char *queue;        /* task: its queue (owned) */
    int *accept_status; /* http: the statuses that succeed (owned); NULL: 2xx */
    int n_accept_status;
};
/* Frees what a holds; a may be zeroed. */
void step_args_release(struct step_args *a);

struct step_job {
    char *exec_id;
    char *path;
    int64_t token;
    int attempt;
    step_run_fn run; /* the runner of the step's kind */
    struct step_args args;
    char *idempotency_key;
    char *task_id;
    char *key;        /* the engine's key for cancelling it */
    int orphan;       /* the engine forgot its execution while it ran (engine_forget) */
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

/* Fills out with a failure (takes details). */
void step_outcome_fail(struct step_outcome *out, const char *type, const char *message,
                       json_t *details, int retryable);

void step_run_exec(struct step_job *job, struct step_outcome *out);
void step_run_task(struct step_job *job, struct step_outcome *out);
void step_run_http(struct step_job *job, struct step_outcome *out);

#endif
