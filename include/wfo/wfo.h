/*
 * wfo.h - libwfo, the engine as a C library (SPEC 1).
 *
 * A program opens an engine on a store, registers workflow definitions,
 * optionally registers in-process handlers for task queues, launches the
 * engine (recovery, then its threads) and starts executions; the engine drives them on its own
 * threads and persists every transition before anything depends on it. docs/interfaces/internal.md
 * describes the threads and who owns what.
 *
 * JSON crosses this API as text. Every returned string is the caller's to
 * free with free(). Functions return 0 or a negative WFO_E* code and fill
 * *err when it is not NULL.
 */
#ifndef WFO_WFO_H
#define WFO_WFO_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* The release, printed by `wfo --version`. */
#define WFO_VERSION "0.1.0"

struct wfo_engine;

/* What the progress callback sees: one history entry of one execution. */
struct wfo_progress {
    const char *exec_id;
    const char *ns;       /* the execution's namespace */
    const char *workflow; /* the execution's workflow (a registered name) */
    int64_t seq;
    int64_t time;
    const char *type; /* history entry type: "step.started", ... */
    const char *step; /* path, or NULL */
    const char *data; /* JSON text or NULL */
};

/* A task given to an in-process handler. Strings borrowed for the call. */
struct wfo_task {
    const char *task_id;
    const char *queue;
    const char *exec_id;
    const char *step;
    int attempt;
    const char *idempotency_key;
    const char *input; /* JSON text */
    int64_t deadline;  /* ms since the epoch, 0: none */
};

/* A handler returns 0 and sets *output (JSON text, malloc'd, NULL for null),
 * or non-zero and sets *error to a JSON text {type, message, details?,
 * retryable?} (malloc'd). It runs on one of the engine's runner threads. */
typedef int (*wfo_task_handler)(void *ud, const struct wfo_task *task, char **output, char **error);

struct wfo_engine_options {
    const char *db_url;       /* default "sqlite::memory:" */
    const char *ns;           /* namespace; default "default" */
    int64_t transition_limit; /* per execution; default 10000 */
    int exec_enabled;         /* allow `exec` steps */
    int runner_threads;       /* default 16 */
    int http_deny_private;    /* http steps may not reach private addresses */
    int store_pool_size;      /* the store's reader connections; default 8 */
    /* Default retry for task/http/exec steps and compensations; NULL: SPEC's. */
    const char *default_retry_json;
    /* Called on the engine thread after each batch commits, once per new
     * history entry, in order. Must not call back into the engine. */
    void (*on_progress)(void *ud, const struct wfo_progress *p);
    void *progress_ud;
    /* Log a line (common/log.h, stderr) for each execution's start and end
     * and each step's failure, retry and compensation; at log level debug,
     * for every transition. `wfo server` sets it; `wfo run` prints its own
     * progress instead. */
    int log_transitions;
    /* Server-side secrets as a JSON object text {"NAME": "value", ...}:
     * `$secrets.NAME` in templates; their values are redacted (SPEC 2.1)
     * process-wide from here on. NULL: none. */
    const char *secrets_json;
};

/* The lifecycle, in this order:
 *   1. wfo_engine_new(): opens the store and reads the server key; no
 *      thread runs and no execution is read yet.
 *   2. wfo_engine_handle() / wfo_engine_handle_command() for each queue
 *      handled in-process, and wfo_engine_put_workflow() if wanted (it
 *      works at any time after 1).
 *   3. wfo_engine_launch(), once: recovery (claims the store's shards,
 *      loads the executions that were running, re-queues their attempts,
 *      arms the timers due soon), then starts the engine thread, the
 *      writer thread and the runner threads.
 *   4. wfo_engine_start(), wfo_engine_get() with a wait, ...: they need 3
 *      and return WFO_ESTATE before it. wfo_engine_get() without a wait
 *      and wfo_engine_history() read the store and work from 1 on.
 *   5. wfo_engine_free(). */

/* Opens the store named by opt->db_url and makes an engine; starts no
 * thread and recovers nothing (wfo_engine_launch() does). Caller frees
 * with wfo_engine_free(). */
int wfo_engine_new(const struct wfo_engine_options *opt, struct wfo_engine **out,
                   struct wfo_error *err);
/* Recovers the executions that were running when the store was last
 * closed, then starts the engine's threads. Call it once, after the
 * handlers are registered (recovery re-queues attempts to them); a second
 * call is WFO_ESTATE. When recovery fails, the engine is failed: this
 * and every later call that needs the threads return its error. */
int wfo_engine_launch(struct wfo_engine *e, struct wfo_error *err);
/* Stops the threads (running attempts are abandoned, as after a crash, and
 * resumed by the next engine on the same store), closes the store. Works
 * at any point of the lifecycle; NULL is a no-op. */
void wfo_engine_free(struct wfo_engine *e);

/* Registers a handler for queue; before wfo_engine_launch() (WFO_ESTATE
 * after). */
int wfo_engine_handle(struct wfo_engine *e, const char *queue, wfo_task_handler fn, void *ud);

/* Registers a shell command as the handler of queue: each task runs
 * `/bin/sh -c command` with the worker command protocol of SPEC 5 (input on
 * stdin, WFO_* variables, output on stdout), killed with its process group
 * when the attempt times out or is cancelled. */
int wfo_engine_handle_command(struct wfo_engine *e, const char *queue, const char *command);

/* Registers a definition given as YAML or JSON text. *out (may be NULL)
 * gets {name, version, created_at, definition}; *created is 1 for a new
 * version. Problems: WFO_EDEFINITION with *problems (may be NULL) set to a
 * JSON array text of {path, message}. */
int wfo_engine_put_workflow(struct wfo_engine *e, const char *text, size_t len, int *created,
                            char **out, char **problems, struct wfo_error *err);

/* Starts an execution of workflow (version 0: latest) with input (JSON text,
 * NULL: {}). id NULL: a new one. *created is 0 when an execution with that
 * id existed with the same workflow and input (WFO_ECONFLICT when different).
 * *id_out (may be NULL) gets the id. Needs wfo_engine_launch() first. */
int wfo_engine_start(struct wfo_engine *e, const char *workflow, int version, const char *input,
                     const char *id, int *created, char **id_out, struct wfo_error *err);

/* Starts n executions of workflow (version 0: the latest) at once, the
 * i-th with inputs[i] (JSON text; inputs NULL or inputs[i] NULL: {}), each
 * with a new id: one hand-off to the engine and one wait for all their
 * commits, which the engine gathers in its rounds like any other starts (a
 * caller with many executions to start pays one wake-up, not n). ids (may
 * be NULL) gets n malloc'd ids, in order. An input that is not JSON fails
 * the call before anything starts (WFO_EPARSE, "inputs[i]: ..."); a commit
 * that fails answers its starts with its error and leaves their ids NULL.
 * Needs wfo_engine_launch() first. */
int wfo_engine_start_many(struct wfo_engine *e, const char *workflow, int version, int n,
                          const char *const *inputs, char **ids, struct wfo_error *err);

/* The execution document of SPEC 3 as JSON text. wait_ms > 0: waits up to
 * that long for the execution to end first (that needs wfo_engine_launch()
 * first; reading without a wait does not). */
int wfo_engine_get(struct wfo_engine *e, const char *id, int64_t wait_ms, char **doc,
                   struct wfo_error *err);

/* The history of SPEC 3 as a JSON array text. */
int wfo_engine_history(struct wfo_engine *e, const char *id, char **json, struct wfo_error *err);

#endif
