/*
 * test_kinds.c - unit tests of src/core/kinds.c, the table of step kinds:
 * each row agrees with itself and with the rest of wfo (a field a kind
 * requires is one it takes; the common fields are not repeated; how a
 * kind ends matches how it starts and what runs it; the unsupported
 * kinds are exactly those without a start), and kind_has_field.
 */
#include <string.h>

#include "core/kinds.h"
#include "../tap.h"
#include "common/banned.h"

static int is_field(const struct step_kind *k, enum step_key key)
{
    return key == K_NONE || ((KEYS_COMMON | k->fields) >> key) & 1;
}

TEST(rows_agree_with_themselves)
{
    ok(K__COUNT <= 64, "every field fits a 64-bit mask");
    ok((KEYS_NOT_IN_COMPENSATION & ~KEYS_COMMON) == 0,
       "fields refused in compensations are common");
    for (int t = 0; t < STEP__COUNT; t++) {
        const struct step_kind *k = &step_kinds[t];
        ok(k->name && strcmp(k->name, step_type_names[t]) == 0, "%s: named as step_type_names",
           step_type_names[t]);
        ok((k->fields & KEYS_COMMON) == 0, "%s: common fields not repeated", k->name);
        ok((k->required & ~k->fields) == 0, "%s: requires only fields it takes", k->name);
        ok((k->fields >> K_NONE & 1) == 0, "%s: K_NONE is no field", k->name);
        ok(is_field(k, k->either[0]) && is_field(k, k->either[1]),
           "%s: its either pair are its fields", k->name);
        ok((k->either[0] == K_NONE) == (k->either[1] == K_NONE), "%s: either is a pair", k->name);
        ok(is_field(k, k->goes_with[0]) && is_field(k, k->goes_with[1]),
           "%s: its goes_with pair are its fields", k->name);
        ok((k->run != NULL) == (k->ends == KE_RESULT),
           "%s: a runner exactly when it ends with a result", k->name);
        ok(!k->cancel_pipe || k->run, "%s: a cancel pipe only with a runner", k->name);
        ok(!k->keeps_secrets || k->run, "%s: keeps secrets only with a runner", k->name);
        ok(!k->run_fields || k->run, "%s: run fields only with a runner", k->name);
        ok(k->ends != KE_RESULT || k->start == fsm_start_run,
           "%s: a result kind starts with fsm_start_run", k->name);
        ok(k->ends != KE_BLOCKS || k->not_compensation, "%s: a block kind is no compensation",
           k->name);
        ok(k->start || k->ends == KE_START, "%s: an unsupported kind fails at its start", k->name);
    }
}

TEST(the_kinds)
{
    is_int(step_kinds[STEP_TASK].ends, KE_RESULT, "task ends with a result");
    ok(step_kinds[STEP_TASK].run == step_run_task, "task's runner");
    ok(step_kinds[STEP_HTTP].run == step_run_http, "http's runner");
    ok(step_kinds[STEP_EXEC].run == step_run_exec, "exec's runner");
    ok(step_kinds[STEP_HTTP].cancel_pipe && step_kinds[STEP_EXEC].cancel_pipe,
       "http and exec wait on the cancel pipe");
    ok(!step_kinds[STEP_TASK].cancel_pipe, "task does not");
    is_int(step_kinds[STEP_SLEEP].ends, KE_TIMER, "sleep ends with its timer");
    is_int(step_kinds[STEP_PARALLEL].ends, KE_BLOCKS, "parallel ends with its blocks");
    is_int(step_kinds[STEP_FOREACH].ends, KE_BLOCKS, "foreach ends with its blocks");
    is_int(step_kinds[STEP_COMPENSATE].ends, KE_COMPENSATION, "compensate ends with it");
    int unsupported = 0, no_next = 0;
    for (int t = 0; t < STEP__COUNT; t++) {
        unsupported += step_kinds[t].start == NULL;
        no_next += step_kinds[t].no_next != NULL;
    }
    is_int(unsupported, 0, "every kind is supported");
    ok(step_kinds[STEP_AWAIT_EVENT].start && step_kinds[STEP_EMIT].start, "await_event and emit");
    ok(step_kinds[STEP_WORKFLOW].start == fsm_start_workflow, "workflow starts a child");
    is_int(step_kinds[STEP_WORKFLOW].ends, KE_CHILD, "workflow ends with its child");
    is_int(no_next, 3, "three kinds refuse next");
    ok(step_kinds[STEP_SWITCH].no_next && step_kinds[STEP_SUCCEED].no_next &&
           step_kinds[STEP_FAIL].no_next,
       "switch, succeed and fail");
    is_int(step_kinds[STEP_SLEEP].either[0], K_DURATION, "sleep: duration or until");
    is_int(step_kinds[STEP_SLEEP].either[1], K_UNTIL, "sleep: until");
    is_int(step_kinds[STEP_AWAIT_EVENT].goes_with[0], K_KEY, "await_event: key goes with");
    is_int(step_kinds[STEP_AWAIT_EVENT].goes_with[1], K_EVENT_TYPE, "... the event type");
}

TEST(has_field)
{
    ok(kind_has_field(STEP_TASK, K_QUEUE), "task takes queue");
    ok(kind_has_field(STEP_TASK, K_NAME), "task takes name (common)");
    ok(kind_has_field(STEP_TASK, K_RETRY), "task takes retry (common)");
    ok(!kind_has_field(STEP_SET, K_QUEUE), "set does not take queue");
    ok(kind_has_field(STEP_SET, K_VARS), "set takes vars");
    ok(!kind_has_field(STEP_TASK, K_VARS), "task does not take vars");
    ok(kind_has_field(STEP_EMIT, K_EVENT) && !kind_has_field(STEP_EMIT, K_EVENT_TYPE),
       "emit's event is K_EVENT");
    ok(kind_has_field(STEP_AWAIT_EVENT, K_EVENT_TYPE) && !kind_has_field(STEP_AWAIT_EVENT, K_EVENT),
       "await_event's event is K_EVENT_TYPE");
    ok(kind_has_field(STEP_FOREACH, K_STEPS) && !kind_has_field(STEP_PARALLEL, K_STEPS),
       "steps: foreach yes, parallel no");
}

int main(void)
{
    return tap_run();
}
