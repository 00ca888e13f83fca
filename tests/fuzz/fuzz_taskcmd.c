/*
 * fuzz_taskcmd.c - libFuzzer target for the worker command protocol's
 * output (SPEC 5; src/steps/taskcmd.c taskcmd_result): how a command's
 * end, stdout and stderr become the task's output or error, as in
 * `wfo worker` and `wfo run --handler`.
 *
 * An input is
 *
 *   END EXIT LEN_HI LEN_LO STDOUT[LEN] STDERR...
 *
 * END (mod 4) picks exited, killed by a signal, timed out or cancelled;
 * EXIT is the exit status (or the signal); LEN is the length of stdout.
 * What must hold: no crash or sanitizer report; a success gives no error
 * and an output that is JSON (or none, for null); a failure gives no
 * output and an error that is a JSON object with a non-empty string type
 * and a string message; retryable is 0 or 1.
 */
#include "common/compat.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "steps/taskcmd.h"
#include "common/json.h"
#include "common/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *copy(const uint8_t *p, size_t n)
{
    char *s = wfo_malloc(n + 1);
    memcpy(s, p, n);
    s[n] = 0;
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const enum proc_end ends[] = {PROC_EXITED, PROC_SIGNALED, PROC_TIMED_OUT,
                                         PROC_CANCELLED};
    struct proc_result res;
    char *output = NULL, *error = NULL;
    int retryable = -1;
    json_t *v = NULL;

    if (size < 4)
        return 0;
    memset(&res, 0, sizeof(res));
    res.end = ends[data[0] % 4];
    res.exit_code = res.end == PROC_EXITED ? data[1] : -1;
    res.signal = res.end == PROC_SIGNALED ? data[1] : 0;
    size_t n = (size_t)data[2] << 8 | data[3];
    if (n > size - 4)
        n = size - 4;
    res.out = copy(data + 4, n);
    res.out_len = n;
    res.err = copy(data + 4 + n, size - 4 - n);
    res.err_len = size - 4 - n;
    res.out_truncated = data[1] == 255 && data[0] >= 4;

    int failed = taskcmd_result(&res, 1000, &output, &error, &retryable);
    if (retryable != 0 && retryable != 1)
        abort();
    if (failed) {
        if (output || !error || wfo_json_parse(error, strlen(error), &v, NULL) < 0)
            abort();
        json_t *type = json_object_get(v, "type");
        if (!json_is_object(v) || !json_is_string(type) || !json_string_length(type) ||
            !json_is_string(json_object_get(v, "message")))
            abort();
    } else {
        if (error)
            abort();
        if (output && wfo_json_parse(output, strlen(output), &v, NULL) < 0)
            abort();
    }
    json_decref(v);
    free(output);
    free(error);
    free(res.out);
    free(res.err);
    return 0;
}
