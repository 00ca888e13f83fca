/*
 * test_taskcmd.c - tests of steps/taskcmd.c, the worker command protocol
 * (SPEC 5), with real /bin/sh commands: outputs, the failure types and
 * their messages, retryable, the WFO_* variables, timeout and cancel.
 */
#include "common/compat.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "steps/taskcmd.h"
#include "common/json.h"
#include "../tap.h"

struct outcome {
    int rc;
    char *output;
    char *error_text;
    json_t *error; /* parsed error_text */
    int retryable;
    struct wfo_error err;
};

static struct outcome run_full(const char *command, const struct taskcmd_env *env,
                               const char *input, int64_t timeout_ms, struct proc_cancel *cancel)
{
    struct outcome o;

    memset(&o, 0, sizeof(o));
    o.retryable = -1;
    o.rc = taskcmd_run(command, env, input, timeout_ms, cancel, &o.output, &o.error_text,
                       &o.retryable, &o.err);
    if (o.error_text && wfo_json_parse(o.error_text, strlen(o.error_text), &o.error, NULL) != 0)
        o.error = NULL;
    return o;
}

static struct outcome run(const char *command)
{
    struct taskcmd_env env = {"t-1", "e-1", "charge", "e-1/charge", 1, "payments"};

    return run_full(command, &env, "{\"amount\": 5}", 10000, NULL);
}

static void outcome_release(struct outcome *o)
{
    free(o->output);
    free(o->error_text);
    json_decref(o->error);
}

static const char *etype(const struct outcome *o)
{
    return wfo_json_str(o->error, "type");
}

static const char *emsg(const struct outcome *o)
{
    return wfo_json_str(o->error, "message");
}

static json_t *edetails(const struct outcome *o)
{
    return o->error ? json_object_get(o->error, "details") : NULL;
}

TEST(output_json)
{
    struct outcome o = run("echo '{\"ok\": true,  \"n\": [1, 2]}'");

    is_int(o.rc, 0, "ran");
    is_str(o.output, "{\"ok\":true,\"n\":[1,2]}", "stdout is the output, compacted");
    ok(o.error_text == NULL, "no error");
    outcome_release(&o);

    o = run("cat");
    is_str(o.output, "{\"amount\":5}", "the input arrives on stdin");
    outcome_release(&o);

    o = run_full("cat", NULL, NULL, 0, NULL);
    is_int(o.rc, 0, "ran");
    is_str(o.output, "null", "NULL input is null on stdin");
    outcome_release(&o);

    o = run("echo '\"just a string\"'");
    is_str(o.output, "\"just a string\"", "any JSON value");
    outcome_release(&o);

    /* Exit 0: stdout is the output even when it looks like an error. */
    o = run("echo '{\"error\": {\"type\": \"X\"}}'");
    ok(o.error_text == NULL, "exit 0 is success");
    is_str(o.output, "{\"error\":{\"type\":\"X\"}}", "the object is the output");
    outcome_release(&o);
}

TEST(empty_stdout_is_null)
{
    struct outcome o = run(":");

    is_int(o.rc, 0, "ran");
    ok(o.output == NULL && o.error_text == NULL, "empty stdout: null output, no error");
    outcome_release(&o);

    o = run("echo; echo '  '");
    ok(o.output == NULL && o.error_text == NULL, "blank stdout: null output");
    outcome_release(&o);
}

TEST(bad_output)
{
    struct outcome o = run("echo 'hello world'; echo 'a warning' >&2");

    is_int(o.rc, 0, "ran");
    ok(o.output == NULL, "no output");
    is_str(etype(&o), "BadOutput", "BadOutput");
    ok(emsg(&o) && strncmp(emsg(&o), "stdout is not JSON: ", 20) == 0, "message: %s",
       emsg(&o) ? emsg(&o) : "(none)");
    is_int(o.retryable, 0, "not retryable");
    is_str(wfo_json_str(edetails(&o), "stdout"), "hello world\n", "details.stdout");
    is_str(wfo_json_str(edetails(&o), "stderr"), "a warning\n", "details.stderr");
    outcome_release(&o);

    o = run("echo '{\"a\": 1} trailing'");
    is_str(etype(&o), "BadOutput", "trailing garbage is not JSON");
    outcome_release(&o);

    o = run("head -c 17000000 /dev/zero | tr '\\000' ' '; echo 1");
    is_str(etype(&o), "BadOutput", "stdout over the cap");
    is_str(emsg(&o), "stdout is larger than 16777216 bytes", "message");
    is_int(o.retryable, 0, "not retryable");
    outcome_release(&o);
}

TEST(worker_error_object)
{
    struct outcome o = run("echo '{\"error\": {\"type\": \"CardDeclined\", \"message\": \"no "
                           "funds\", \"retryable\": false, \"details\": {\"code\": 7}}}'; exit 1");

    is_int(o.rc, 0, "ran");
    ok(o.output == NULL, "no output");
    is_str(etype(&o), "CardDeclined", "the worker's type");
    is_str(emsg(&o), "no funds", "the worker's message");
    is_int(o.retryable, 0, "retryable false honoured");
    is_int(json_integer_value(json_object_get(edetails(&o), "code")), 7, "details passed through");
    outcome_release(&o);

    o = run("echo '{\"error\": {\"type\": \"Busy\"}}'; exit 2");
    is_str(etype(&o), "Busy", "type only");
    is_str(emsg(&o), "exit status 2", "no message: the exit status");
    is_int(o.retryable, 1, "retryable by default");
    ok(json_is_null(edetails(&o)), "no details: null");
    outcome_release(&o);

    o = run("echo '{\"error\": {\"type\": \"Busy\", \"retryable\": \"no\"}}'; exit 2");
    is_int(o.retryable, 1, "non-boolean retryable: the default");
    outcome_release(&o);

    o = run("echo '{\"error\": {\"type\": 5}}'; echo boom >&2; exit 2");
    is_str(etype(&o), "CommandFailed", "non-string type: CommandFailed");
    is_str(emsg(&o), "boom", "with stderr's message");
    outcome_release(&o);

    o = run("echo '{\"error\": \"text\"}'; exit 2");
    is_str(etype(&o), "CommandFailed", "error not an object: CommandFailed");
    outcome_release(&o);
}

TEST(command_failed)
{
    struct outcome o = run("echo first >&2; echo '  the last line  ' >&2; echo >&2; exit 3");
    json_t *d;

    is_int(o.rc, 0, "ran");
    is_str(etype(&o), "CommandFailed", "CommandFailed");
    is_str(emsg(&o), "the last line", "the last non-empty line of stderr, trimmed");
    is_int(o.retryable, 1, "retryable");
    d = edetails(&o);
    is_int(json_integer_value(json_object_get(d, "exit_code")), 3, "details.exit_code");
    is_str(wfo_json_str(d, "stderr"), "first\n  the last line  \n\n", "details.stderr");
    outcome_release(&o);

    o = run("exit 4");
    is_str(emsg(&o), "exit status 4", "empty stderr: the exit status");
    outcome_release(&o);

    o = run("wfo-no-such-command-xyz");
    is_str(etype(&o), "CommandFailed", "missing program inside the shell");
    is_int(json_integer_value(json_object_get(edetails(&o), "exit_code")), 127, "exit 127");
    ok(emsg(&o) && strstr(emsg(&o), "not found"), "message: %s", emsg(&o) ? emsg(&o) : "");
    outcome_release(&o);

    /* Only the last 4 KiB of a long stderr, as valid UTF-8. */
    o = run("seq 1 5000 >&2; printf 'bad \\377\\000 bytes\\n' >&2; exit 1");
    d = edetails(&o);
    ok(wfo_json_str(d, "stderr") && strlen(wfo_json_str(d, "stderr")) <= TASKCMD_STDERR_TAIL + 8,
       "stderr tail bounded");
    is_str(emsg(&o), "bad \xef\xbf\xbd\xef\xbf\xbd bytes", "invalid bytes replaced");
    outcome_release(&o);

    o = run("kill -TERM $$");
    is_str(etype(&o), "CommandFailed", "signal: CommandFailed");
    is_str(emsg(&o), "killed by signal 15", "message names the signal");
    is_int(json_integer_value(json_object_get(edetails(&o), "signal")), 15, "details.signal");
    outcome_release(&o);
}

TEST(envelope_variables)
{
    const char *cmd =
        "printf '[\"%s\",\"%s\",\"%s\",\"%s\",\"%s\",\"%s\"]' \"$WFO_TASK_ID\" "
        "\"$WFO_EXECUTION_ID\" \"$WFO_STEP\" \"$WFO_ATTEMPT\" \"$WFO_IDEMPOTENCY_KEY\" "
        "\"$WFO_QUEUE\"";
    struct taskcmd_env env = {"task-9", "exec-7", "pay/charge", "exec-7/pay/charge", 3, "pay"};
    struct outcome o = run_full(cmd, &env, "{}", 5000, NULL);

    is_str(o.output, "[\"task-9\",\"exec-7\",\"pay/charge\",\"3\",\"exec-7/pay/charge\",\"pay\"]",
           "every WFO_* variable");
    outcome_release(&o);

    /* Inherited values never leak through: unset fields are empty. */
    setenv("WFO_STEP", "leaked", 1);
    o = run_full(cmd, NULL, "{}", 5000, NULL);
    is_str(o.output, "[\"\",\"\",\"\",\"0\",\"\",\"\"]", "no envelope: empty variables");
    outcome_release(&o);
    unsetenv("WFO_STEP");
}

TEST(timeout_and_cancel)
{
    struct proc_cancel c;
    struct wfo_error err = WFO_ERROR_INIT;
    struct timespec t0, t1;
    struct outcome o;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    o = run_full("echo started >&2; sleep 10", NULL, "{}", 300, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    is_int(o.rc, 0, "ran");
    is_str(etype(&o), "Timeout", "Timeout");
    is_str(emsg(&o), "command ran past its timeout of 300 ms", "message");
    is_int(o.retryable, 1, "retryable");
    is_str(wfo_json_str(edetails(&o), "stderr"), "started\n", "stderr kept");
    ok((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < 1500,
       "returned promptly");
    outcome_release(&o);

    proc_cancel_init(&c, &err);
    proc_cancel_request(&c);
    o = run_full("sleep 10", NULL, "{}", 0, &c);
    is_int(o.rc, 0, "returns");
    is_str(etype(&o), "Cancelled", "Cancelled");
    is_int(o.retryable, 0, "not retryable");
    outcome_release(&o);
    proc_cancel_release(&c);
}

TEST(cannot_run)
{
    struct outcome o = run_full("", NULL, NULL, 0, NULL);

    is_int(o.rc, WFO_EINVAL, "empty command refused");
    ok(o.output == NULL && o.error_text == NULL, "no results");
    o = run_full(NULL, NULL, NULL, 0, NULL);
    is_int(o.rc, WFO_EINVAL, "NULL command refused");
}

int main(void)
{
    return tap_run();
}
