/*
 * test_runner.c - unit tests of src/steps/runner.c, what the runners
 * share: the error object of a failed outcome ({type, message, details}
 * with null for what is missing; the details taken) and releasing a job's
 * arguments.
 */
#include <stdlib.h>
#include <string.h>

#include "steps/runner.h"
#include "common/json.h"
#include "common/util.h"
#include "../tap.h"
#include "common/banned.h"

TEST(outcome_fail)
{
    struct step_outcome out = {.ok = 1, .retryable = 0};
    json_t *details = json_pack("{s:i}", "status", 503);
    step_outcome_fail(&out, "HttpError", "got 503", details, 1);
    is_int(out.ok, 0, "not ok");
    ok(out.output == NULL, "no output");
    is_int(out.retryable, 1, "retryable");
    is_str(wfo_json_str(out.error, "type"), "HttpError", "type");
    is_str(wfo_json_str(out.error, "message"), "got 503", "message");
    ok(json_object_get(out.error, "details") == details, "details taken, not copied");
    is_int(json_object_size(out.error), 3, "three keys");
    json_decref(out.error);

    step_outcome_fail(&out, "Timeout", NULL, NULL, 0);
    is_str(wfo_json_str(out.error, "message"), "", "no message: empty");
    ok(json_is_null(json_object_get(out.error, "details")), "no details: null");
    is_int(out.retryable, 0, "not retryable");
    json_decref(out.error);
}

TEST(args_release)
{
    struct step_args a = {0};
    step_args_release(&a); /* zeroed: nothing to free */
    a.fields = json_pack("{s:i}", "input", 1);
    a.queue = wfo_strdup("q");
    a.accept_status = wfo_calloc(2, sizeof(int));
    a.n_accept_status = 2;
    step_args_release(&a); /* the sanitizer build sees a leak or a double free */
    ok(1, "released");
}

int main(void)
{
    return tap_run();
}
