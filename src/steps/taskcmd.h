/*
 * taskcmd.h - the worker command protocol (SPEC 5), on steps/proc.h: runs a
 * task's command for `wfo run --handler QUEUE=COMMAND` and `wfo worker`.
 * docs/interfaces/internal.md describes the protocol.
 *
 * The command runs as `/bin/sh -c COMMAND` (taskcmd_run) or from an argv
 * (taskcmd_run_argv) in its own process group, with the task input as JSON
 * on stdin and the task envelope in WFO_TASK_ID, WFO_EXECUTION_ID,
 * WFO_STEP, WFO_ATTEMPT, WFO_IDEMPOTENCY_KEY and WFO_QUEUE. How it ends decides the
 * task's result:
 *
 *   exit 0, stdout JSON          the output (stdout blank: null)
 *   exit 0, stdout not JSON      BadOutput, not retryable
 *   exit N, stdout {"error": {type, message?, retryable?, details?}}
 *                                that error; retryable unless it says false
 *   exit N, anything else        CommandFailed, message the last non-empty
 *                                line of stderr or "exit status N", details
 *                                {exit_code, stderr (its last 4 KiB)}
 *   killed by a signal           CommandFailed "killed by signal N"
 *   ran past timeout_ms          Timeout, retryable
 *   cancelled                    Cancelled, not retryable
 *
 * BadOutput is not retryable: the command finished and did its work, and
 * running it again would repeat its side effects to get, most likely, the
 * same malformed output from the same bug.
 */
#ifndef WFO_STEPS_TASKCMD_H
#define WFO_STEPS_TASKCMD_H

#include <stdint.h>

#include "proc.h"

/* Cap on what is kept of stdout and of stderr. A larger stdout is BadOutput. */
#define TASKCMD_MAX_OUTPUT (16 * 1024 * 1024)
/* How much of the end of stderr goes into an error's details. */
#define TASKCMD_STDERR_TAIL 4096

/* The task envelope; NULL strings are passed as empty variables. */
struct taskcmd_env {
    const char *task_id, *exec_id, *step, *idempotency_key;
    int attempt;
    const char *queue;
};

/* Runs command with input (JSON text; NULL means null) on stdin. env may be
 * NULL (every variable empty); timeout_ms 0 means none; cancel may be NULL.
 *
 * Returns 0 when the command ran, whether the task succeeded or failed:
 *   success: *error is NULL, *output a new JSON text, or NULL for null;
 *   failure: *error a new JSON text {"type", "message", "details"?},
 *            *retryable 0 or 1, *output NULL.
 * Returns a negative WFO_E* code, with err filled and both NULL, when the
 * command could not run at all (no /bin/sh, out of descriptors). Caller frees
 * *output and *error with free(). */
int taskcmd_run(const char *command, const struct taskcmd_env *env, const char *input,
                int64_t timeout_ms, struct proc_cancel *cancel, char **output, char **error,
                int *retryable, struct wfo_error *err);

/* The same with argv run directly, not through a shell (`wfo worker --
 * COMMAND [ARG]...`); argv[0] is looked up in PATH. A command that cannot be
 * started (no such file) is WFO_EIO with "cannot run 'X': ...". */
int taskcmd_run_argv(char *const *argv, const struct taskcmd_env *env, const char *input,
                     int64_t timeout_ms, struct proc_cancel *cancel, char **output, char **error,
                     int *retryable, struct wfo_error *err);

/* How a finished child's end, stdout and stderr make the task's result
 * (the table at the top); taskcmd_run_argv uses it, and
 * tests/fuzz/fuzz_taskcmd.c drives it with any bytes. Sets *output (new
 * JSON text or NULL for null) or *error (new JSON text) and *retryable;
 * returns 1 for a failure, 0 for a success. */
int taskcmd_result(const struct proc_result *res, int64_t timeout_ms, char **output, char **error,
                   int *retryable);

#endif
