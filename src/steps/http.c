/*
 * http.c - the `http` step (SPEC 2.2). Placeholder until the libcurl runner
 * lands: every attempt fails with ConnectionError and is not retried.
 */
#include "runner.h"
#include "../common/banned.h"

void step_run_http(struct step_job *job, struct step_outcome *out)
{
    step_outcome_fail(out, "ConnectionError", "http steps are not supported yet", NULL, 0);
}
