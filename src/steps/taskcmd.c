/*
 * taskcmd.c - the worker command protocol (SPEC 5): runs a task's command
 * through proc_run and turns how it ended into the task's output or error.
 * taskcmd.h has the table of outcomes; docs/interfaces/internal.md
 * describes the protocol.
 *
 * Text taken from the command's stdout and stderr goes into JSON strings,
 * so it is made valid UTF-8 first: bytes that are not (and NULs) become
 * U+FFFD.
 */
#include "common/compat.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "taskcmd.h"
#include "../common/buf.h"
#include "../common/json.h"
#include "../common/util.h"

/* Longest error message taken from stderr or from a worker's error. */
#define TASKCMD_MAX_MESSAGE 1024

/* A JSON string of the n bytes at s, made valid UTF-8. */
static json_t *taskcmd_text(const char *s, size_t n)
{
    struct wfo_buf b = WFO_BUF_INIT;
    json_t *v;

    wfo_utf8_scrub(&b, s, n, SIZE_MAX);
    v = json_stringn(b.buf, b.len);
    wfo_buf_release(&b);
    return v;
}

/* The last TASKCMD_STDERR_TAIL bytes of stderr, starting at a character. */
static json_t *taskcmd_stderr_tail(const struct proc_result *res)
{
    size_t start = res->err_len > TASKCMD_STDERR_TAIL ? res->err_len - TASKCMD_STDERR_TAIL : 0;

    for (int i = 0;
         i < 3 && start < res->err_len && ((unsigned char)res->err[start] & 0xc0) == 0x80; i++)
        start++;
    return taskcmd_text(res->err + start, res->err_len - start);
}

static int taskcmd_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* The last line of stderr with something on it, trimmed; NULL when none. */
static json_t *taskcmd_last_line(const struct proc_result *res)
{
    size_t end = res->err_len, start;

    while (end > 0 && taskcmd_is_space(res->err[end - 1]))
        end--;
    if (end == 0)
        return NULL;
    start = end;
    while (start > 0 && res->err[start - 1] != '\n')
        start--;
    while (start < end && taskcmd_is_space(res->err[start]))
        start++;
    return taskcmd_text(res->err + start,
                        wfo_utf8_cut(res->err + start, end - start, TASKCMD_MAX_MESSAGE));
}

/* A new error object (wfo_json_error); steals message and details (either
 * may be NULL). */
static json_t *taskcmd_error(const char *type, json_t *message, json_t *details)
{
    json_t *e = wfo_json_error(type, json_string_value(message), details);

    json_decref(message);
    return e;
}

static json_t *taskcmd_errorf(const char *type, json_t *details, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static json_t *taskcmd_errorf(const char *type, json_t *details, const char *fmt, ...)
{
    struct wfo_buf b = WFO_BUF_INIT;
    json_t *e;
    va_list ap;

    va_start(ap, fmt);
    wfo_buf_vaddf(&b, fmt, ap);
    va_end(ap);
    e = taskcmd_error(type, taskcmd_text(b.buf, b.len), details);
    wfo_buf_release(&b);
    return e;
}

static int taskcmd_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!taskcmd_is_space(s[i]))
            return 0;
    return 1;
}

/* Exit 0: stdout is the output. Sets *output, or returns a BadOutput error. */
static json_t *taskcmd_success(const struct proc_result *res, char **output)
{
    struct wfo_error perr = WFO_ERROR_INIT;
    json_t *v = NULL, *details;

    if (res->out_truncated)
        return taskcmd_errorf("BadOutput", NULL, "stdout is larger than %d bytes",
                              TASKCMD_MAX_OUTPUT);
    if (taskcmd_blank(res->out, res->out_len))
        return NULL;
    if (wfo_json_parse(res->out, res->out_len, &v, &perr) == 0) {
        *output = wfo_json_dumps(v);
        json_decref(v);
        return NULL;
    }
    details = json_object();
    json_object_set_new(
        details, "stdout",
        taskcmd_text(res->out, wfo_utf8_cut(res->out, res->out_len, TASKCMD_STDERR_TAIL)));
    json_object_set_new(details, "stderr", taskcmd_stderr_tail(res));
    return taskcmd_errorf("BadOutput", details, "stdout is not JSON: %s", perr.message);
}

/* Exit N: the worker's own {"error": {...}} on stdout, or CommandFailed. */
static json_t *taskcmd_failure(const struct proc_result *res, int *retryable)
{
    json_t *v = NULL, *we, *type, *msg, *retry, *details, *e;
    json_t *message;

    *retryable = 1;
    if (!taskcmd_blank(res->out, res->out_len) && !res->out_truncated &&
        wfo_json_parse(res->out, res->out_len, &v, NULL) == 0) {
        we = json_is_object(v) ? json_object_get(v, "error") : NULL;
        type = json_is_object(we) ? json_object_get(we, "type") : NULL;
        if (json_is_string(type) && json_string_length(type) > 0) {
            msg = json_object_get(we, "message");
            retry = json_object_get(we, "retryable");
            details = json_object_get(we, "details");
            if (json_is_boolean(retry))
                *retryable = json_is_true(retry);
            if (json_is_string(msg))
                message = taskcmd_text(json_string_value(msg),
                                       wfo_utf8_cut(json_string_value(msg), json_string_length(msg),
                                                    TASKCMD_MAX_MESSAGE));
            else
                message = json_sprintf("exit status %d", res->exit_code);
            e = taskcmd_error(json_string_value(type), message,
                              details ? json_incref(details) : NULL);
            json_decref(v);
            return e;
        }
        json_decref(v);
    }
    details = json_object();
    json_object_set_new(details, "exit_code", json_integer(res->exit_code));
    json_object_set_new(details, "stderr", taskcmd_stderr_tail(res));
    message = taskcmd_last_line(res);
    if (!message)
        message = json_sprintf("exit status %d", res->exit_code);
    return taskcmd_error("CommandFailed", message, details);
}

/* "KEY=VALUE", new. */
static char *taskcmd_var(const char *key, const char *value)
{
    struct wfo_buf b = WFO_BUF_INIT;

    wfo_buf_addf(&b, "%s=%s", key, value ? value : "");
    return wfo_buf_detach(&b, NULL);
}

int taskcmd_result(const struct proc_result *res, int64_t timeout_ms, char **output, char **error,
                   int *retryable)
{
    json_t *e = NULL, *details;

    *output = NULL;
    *error = NULL;
    *retryable = 0;
    switch (res->end) {
    case PROC_EXITED:
        if (res->exit_code == 0) {
            e = taskcmd_success(res, output);
            *retryable = 0;
        } else {
            e = taskcmd_failure(res, retryable);
        }
        break;
    case PROC_SIGNALED:
        details = json_object();
        json_object_set_new(details, "signal", json_integer(res->signal));
        json_object_set_new(details, "stderr", taskcmd_stderr_tail(res));
        e = taskcmd_errorf("CommandFailed", details, "killed by signal %d", res->signal);
        *retryable = 1;
        break;
    case PROC_TIMED_OUT:
        details = json_object();
        json_object_set_new(details, "timeout_ms", json_integer(timeout_ms));
        json_object_set_new(details, "stderr", taskcmd_stderr_tail(res));
        e = taskcmd_errorf("Timeout", details, "command ran past its timeout of %lld ms",
                           (long long)timeout_ms);
        *retryable = 1;
        break;
    case PROC_CANCELLED:
        e = taskcmd_errorf("Cancelled", NULL, "command cancelled");
        *retryable = 0;
        break;
    }
    if (e) {
        free(*output);
        *output = NULL;
        *error = wfo_json_dumps(e);
        json_decref(e);
    }
    return *error ? 1 : 0;
}

int taskcmd_run(const char *command, const struct taskcmd_env *env, const char *input,
                int64_t timeout_ms, struct proc_cancel *cancel, char **output, char **error,
                int *retryable, struct wfo_error *err)
{
    char *argv[] = {"/bin/sh", "-c", (char *)command, NULL};

    if (!command || !command[0]) {
        *output = NULL;
        *error = NULL;
        *retryable = 0;
        return wfo_error_set(err, WFO_EINVAL, "no command to run");
    }
    return taskcmd_run_argv(argv, env, input, timeout_ms, cancel, output, error, retryable, err);
}

int taskcmd_run_argv(char *const *argv, const struct taskcmd_env *env, const char *input,
                     int64_t timeout_ms, struct proc_cancel *cancel, char **output, char **error,
                     int *retryable, struct wfo_error *err)
{
    static const struct taskcmd_env no_env;
    char *vars[7] = {NULL};
    char attempt[24];
    struct proc_result res;
    struct proc_spec spec;
    int rc, have_res = 0;

    *output = NULL;
    *error = NULL;
    *retryable = 0;
    if (!argv || !argv[0] || !argv[0][0]) {
        rc = wfo_error_set(err, WFO_EINVAL, "no command to run");
        goto out;
    }
    if (!env)
        env = &no_env;
    snprintf(attempt, sizeof(attempt), "%d", env->attempt);
    vars[0] = taskcmd_var("WFO_TASK_ID", env->task_id);
    vars[1] = taskcmd_var("WFO_EXECUTION_ID", env->exec_id);
    vars[2] = taskcmd_var("WFO_STEP", env->step);
    vars[3] = taskcmd_var("WFO_ATTEMPT", attempt);
    vars[4] = taskcmd_var("WFO_IDEMPOTENCY_KEY", env->idempotency_key);
    vars[5] = taskcmd_var("WFO_QUEUE", env->queue);
    if (!input)
        input = "null";
    spec = (struct proc_spec){
        .argv = argv,
        .stdin_data = input,
        .stdin_len = strlen(input),
        .env_add = vars,
        .timeout_ms = timeout_ms,
        .max_output = TASKCMD_MAX_OUTPUT,
        .stderr_tail = 1,
        .cancel = cancel,
    };
    rc = proc_run(&spec, &res, err);
    if (rc)
        goto out;
    have_res = 1;

    taskcmd_result(&res, timeout_ms, output, error, retryable);

out:
    for (size_t i = 0; i < WFO_ARRAY_SIZE(vars); i++)
        free(vars[i]);
    if (have_res)
        proc_result_release(&res);
    return rc;
}
