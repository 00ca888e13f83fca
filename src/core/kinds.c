/*
 * kinds.c - the table of step kinds (see kinds.h): one row per step type.
 * To add a kind: its enum step_type value (def.h) and name
 * (step_type_names), a row here, and the function that starts an attempt
 * of it (fsm.c) or the runner that does its work (steps/).
 * docs/interfaces/internal.md, "How to add a step kind".
 */
#include "common/compat.h"

#include "kinds.h"
#include "fsm.h"

/* The kinds' names, for those who only need a name (api/ops.c's metrics);
 * the rows below spell them again, and test_def.c checks that they agree. */
const char *const step_type_names[STEP__COUNT] = {
    "task",  "http",        "exec", "set",      "switch",     "parallel", "foreach",
    "sleep", "await_event", "emit", "workflow", "compensate", "succeed",  "fail",
};

#define F(x) (1u << F_##x)

const struct step_kind step_kinds[STEP__COUNT] = {
    [STEP_TASK] =
        {
            .name = "task",
            .fields = KEY(QUEUE) | KEY(SCHEDULE_TIMEOUT) | KEY(HEARTBEAT_TIMEOUT) |
                      KEY(COMPENSATE_IN_FLIGHT),
            .required = KEY(QUEUE),
            .start = fsm_start_run,
            .ends = KE_RESULT,
            .run = step_run_task,
        },
    [STEP_HTTP] =
        {
            .name = "http",
            .fields = KEY(REQUEST) | KEY(ACCEPT_STATUS) | KEY(COMPENSATE_IN_FLIGHT),
            .required = KEY(REQUEST),
            .start = fsm_start_run,
            .ends = KE_RESULT,
            .run_fields = F(REQUEST),
            .keeps_secrets = 1,
            .run = step_run_http,
            .cancel_pipe = 1,
        },
    [STEP_EXEC] =
        {
            .name = "exec",
            .fields = KEY(COMMAND) | KEY(STDIN) | KEY(ENV) | KEY(CWD) | KEY(COMPENSATE_IN_FLIGHT),
            .required = KEY(COMMAND),
            .start = fsm_start_run,
            .ends = KE_RESULT,
            .run_fields = F(COMMAND) | F(STDIN) | F(ENV) | F(CWD),
            .keeps_secrets = 1,
            .run = step_run_exec,
            .cancel_pipe = 1,
        },
    [STEP_SET] =
        {
            .name = "set",
            .fields = KEY(VARS),
            .required = KEY(VARS),
            .start = fsm_start_set,
            .ends = KE_START,
        },
    [STEP_SWITCH] =
        {
            .name = "switch",
            .fields = KEY(CASES) | KEY(DEFAULT),
            .required = KEY(CASES),
            .no_next = "not allowed on a switch step (use \"default\")",
            .not_compensation = 1,
            .start = fsm_start_switch,
            .ends = KE_START,
        },
    [STEP_PARALLEL] =
        {
            .name = "parallel",
            .fields = KEY(BRANCHES) | KEY(MODE),
            .required = KEY(BRANCHES),
            .not_compensation = 1,
            .start = fsm_start_parallel,
            .ends = KE_BLOCKS,
        },
    [STEP_FOREACH] =
        {
            .name = "foreach",
            .fields = KEY(ITEMS) | KEY(CONCURRENCY) | KEY(STEPS),
            .required = KEY(ITEMS) | KEY(STEPS),
            .not_compensation = 1,
            .start = fsm_start_foreach,
            .ends = KE_BLOCKS,
        },
    [STEP_SLEEP] =
        {
            .name = "sleep",
            .fields = KEY(DURATION) | KEY(UNTIL),
            .either = {K_DURATION, K_UNTIL},
            .start = fsm_start_sleep,
            .ends = KE_TIMER,
        },
    [STEP_AWAIT_EVENT] =
        {
            .name = "await_event",
            .fields = KEY(EVENT_TYPE) | KEY(KEY) | KEY(SIGNAL),
            .either = {K_EVENT_TYPE, K_SIGNAL},
            .goes_with = {K_KEY, K_EVENT_TYPE},
            .start = fsm_start_await,
            .ends = KE_TIMER, /* when an event or signal matches (core/events.c), or its timeout */
        },
    [STEP_EMIT] =
        {
            .name = "emit",
            .fields = KEY(EVENT),
            .required = KEY(EVENT),
            .start = fsm_start_emit,
            .ends = KE_START,
        },
    [STEP_WORKFLOW] =
        {
            .name = "workflow",
            .fields = KEY(WORKFLOW) | KEY(VERSION),
            .required = KEY(WORKFLOW),
            .start = fsm_start_workflow, /* ACT_CHILD: the engine starts the child */
            .ends = KE_CHILD,
        },
    [STEP_COMPENSATE] =
        {
            .name = "compensate",
            .not_compensation = 1,
            .start = fsm_start_compensate,
            .ends = KE_COMPENSATION,
        },
    [STEP_SUCCEED] =
        {
            .name = "succeed",
            .no_next = "not allowed on a succeed step: it ends the workflow",
            .not_compensation = 1,
            .start = fsm_start_succeed,
            .ends = KE_START,
        },
    [STEP_FAIL] =
        {
            .name = "fail",
            .fields = KEY(ERROR),
            .required = KEY(ERROR),
            .no_next = "not allowed on a fail step: it ends the workflow",
            .start = fsm_start_fail,
            .ends = KE_START,
        },
};
