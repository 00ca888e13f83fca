/*
 * runner.c - what the step runners share (see runner.h); which kind each
 * runs is in the table of step kinds (core/kinds.c).
 */
#include "common/compat.h"

#include <stdlib.h>

#include "runner.h"

void step_args_release(struct step_args *a)
{
    json_decref(a->fields);
    free(a->queue);
    free(a->accept_status);
}

void step_outcome_fail(struct step_outcome *out, const char *type, const char *message,
                       json_t *details, int retryable)
{
    out->ok = 0;
    out->output = NULL;
    out->error = wfo_json_error(type, message, details);
    out->retryable = retryable;
}
