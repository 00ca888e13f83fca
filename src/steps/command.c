/*
 * command.c - the `exec` step (SPEC 2.2): runs an argv with stdin, env and cwd;
 * the result is {exit_code, stdout, stderr, json}; a non-zero exit fails
 * with ExecFailed. docs/implementation/error_handling.md lists the errors.
 */
#include "common/compat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runner.h"
#include "../common/util.h"

#define EXEC_MAX_OUTPUT (4u << 20)

static char *json_text(json_t *v)
{
    if (json_is_string(v))
        return wfo_strdup(json_string_value(v));
    return wfo_json_dumps(v);
}

void step_run_exec(struct step_job *job, struct step_outcome *out)
{
    json_t *cmd = json_object_get(job->args.fields, "command");
    json_t *env = json_object_get(job->args.fields, "env");
    json_t *cwd = json_object_get(job->args.fields, "cwd");
    json_t *in = json_object_get(job->args.fields, "stdin");
    char **argv = NULL, **envv = NULL, *stdin_text = NULL;
    struct proc_result res;
    memset(&res, 0, sizeof(res));

    if (!job->exec_enabled) {
        step_outcome_fail(out, "ExecFailed", "exec steps are disabled on this server", NULL, 0);
        return;
    }
    if (json_is_string(cmd)) {
        argv = wfo_calloc(4, sizeof(*argv));
        argv[0] = wfo_strdup("/bin/sh");
        argv[1] = wfo_strdup("-c");
        argv[2] = wfo_strdup(json_string_value(cmd));
    } else if (json_is_array(cmd) && json_array_size(cmd) > 0) {
        size_t n = json_array_size(cmd);
        argv = wfo_calloc(n + 1, sizeof(*argv));
        for (size_t i = 0; i < n; i++) {
            json_t *a = json_array_get(cmd, i);
            if (json_is_object(a) || json_is_array(a) || json_is_null(a)) {
                step_outcome_fail(out, "ExecFailed", "command: every element must be a scalar",
                                  NULL, 0);
                goto out;
            }
            argv[i] = json_text(a);
        }
    } else {
        step_outcome_fail(out, "ExecFailed", "command: must be a non-empty array", NULL, 0);
        goto out;
    }
    if (env && !json_is_null(env)) {
        if (!json_is_object(env)) {
            step_outcome_fail(out, "ExecFailed", "env: must be an object", NULL, 0);
            goto out;
        }
        envv = wfo_calloc(json_object_size(env) + 1, sizeof(*envv));
        size_t i = 0;
        const char *k;
        json_t *v;
        json_object_foreach(env, k, v)
        {
            char *t = json_text(v);
            struct wfo_buf b = WFO_BUF_INIT;
            wfo_buf_addf(&b, "%s=%s", k, t);
            free(t);
            envv[i++] = wfo_buf_detach(&b, NULL);
        }
    }
    if (cwd && !json_is_null(cwd) && !json_is_string(cwd)) {
        step_outcome_fail(out, "ExecFailed", "cwd: must be a string", NULL, 0);
        goto out;
    }
    /* stdin: a string as it is, other values as JSON; default: the input as JSON */
    stdin_text = in ? json_text(in) : wfo_json_dumps(json_object_get(job->args.fields, "input"));

    struct proc_spec spec = {
        .argv = argv,
        .stdin_data = stdin_text,
        .stdin_len = strlen(stdin_text),
        .env_add = envv,
        .cwd = json_is_string(cwd) ? json_string_value(cwd) : NULL,
        .timeout_ms = job->args.timeout_ms,
        .max_output = EXEC_MAX_OUTPUT,
        .cancel = &job->cancel,
    };
    struct wfo_error err = WFO_ERROR_INIT;
    if (proc_run(&spec, &res, &err) < 0) {
        step_outcome_fail(out, "ExecFailed", err.message, NULL, 1);
        goto out;
    }
    if (res.end == PROC_TIMED_OUT) {
        step_outcome_fail(out, "Timeout", "command ran past its timeout", NULL, 1);
        goto out;
    }
    if (res.end == PROC_CANCELLED) {
        step_outcome_fail(out, "Cancelled", "command was cancelled", NULL, 0);
        goto out;
    }
    json_t *parsed = NULL;
    if (wfo_json_parse(res.out, res.out_len, &parsed, NULL) < 0)
        parsed = json_null();
    json_t *r = json_pack("{s:i, s:s%, s:s%, s:o}", "exit_code",
                          res.end == PROC_EXITED ? res.exit_code : -1, "stdout", res.out,
                          res.out_len, "stderr", res.err, res.err_len, "json", parsed);
    if (!r) /* not UTF-8 */
        r = json_pack("{s:i, s:s, s:s, s:o}", "exit_code",
                      res.end == PROC_EXITED ? res.exit_code : -1, "stdout", "", "stderr", "",
                      "json", json_null());
    if (res.end == PROC_EXITED && res.exit_code == 0) {
        out->ok = 1;
        out->output = r;
    } else {
        char msg[256];
        if (res.end == PROC_SIGNALED)
            snprintf(msg, sizeof(msg), "command %s was killed by signal %d", argv[0], res.signal);
        else
            snprintf(msg, sizeof(msg), "command %s exited with status %d", argv[0], res.exit_code);
        step_outcome_fail(out, "ExecFailed", msg, r, 1);
    }
out:
    proc_result_release(&res);
    for (char **p = argv; p && *p; p++)
        free(*p);
    free(argv);
    for (char **p = envv; p && *p; p++)
        free(*p);
    free(envv);
    free(stdin_text);
}
