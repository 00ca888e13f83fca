/*
 * runner.c - the table of step runners (see runner.h).
 */
#include <stddef.h>

#include "runner.h"
#include "../common/util.h"
#include "../common/banned.h"

static const struct step_runner runners[] = {
    {STEP_EXEC, step_run_exec},
    {STEP_TASK, step_run_task},
    {STEP_HTTP, step_run_http},
};

const struct step_runner *step_runner_find(enum step_type type)
{
    for (size_t i = 0; i < WFO_ARRAY_SIZE(runners); i++)
        if (runners[i].type == type)
            return &runners[i];
    return NULL;
}

void step_outcome_fail(struct step_outcome *out, const char *type, const char *message,
                       json_t *details, int retryable)
{
    out->ok = 0;
    out->output = NULL;
    out->error = json_pack("{s:s, s:s, s:o}", "type", type, "message", message ? message : "",
                           "details", details ? details : json_null());
    out->retryable = retryable;
}
