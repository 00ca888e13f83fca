/*
 * test_fsm.c - the state machine without I/O: events in, effects out.
 */
#include "common/compat.h"

#include <stdlib.h>
#include <string.h>

#include "../tap.h"
#include "core/fsm.h"
#include "common/yaml.h"

static struct def *compile(const char *yaml)
{
    json_t *doc = NULL;
    struct wfo_error err = WFO_ERROR_INIT;
    if (wfo_doc_parse(yaml, strlen(yaml), &doc, &err) < 0) {
        printf("# parse: %s\n", err.message);
        return NULL;
    }
    struct def *d = NULL;
    struct def_problems p = {0};
    if (def_compile(doc, &d, &p) < 0)
        for (int i = 0; i < p.n; i++)
            printf("# %s: %s\n", p.items[i].path, p.items[i].message);
    def_problems_release(&p);
    json_decref(doc);
    if (d)
        d->version = 1;
    return d;
}

static double half(void)
{
    return 0.5;
}

static struct execution *start(struct fsm *f, const char *yaml, const char *input)
{
    struct def *d = compile(yaml);
    if (!d)
        return NULL;
    json_t *in = NULL;
    wfo_json_parse(input, strlen(input), &in, NULL);
    struct execution *x = exec_new("x1", "default", d, in, 1000);
    json_decref(in);
    def_unref(d);
    fsm_init(f);
    f->rand = half;
    f->now = 1000;
    fsm_start(f, x);
    return x;
}

static int count_hist(struct fsm *f, const char *type)
{
    int n = 0;
    for (int i = 0; i < f->n_hist; i++)
        n += strcmp(f->hist[i].type, type) == 0;
    return n;
}

static struct fsm_action *find_act(struct fsm *f, enum fsm_act_kind k)
{
    for (int i = 0; i < f->n_acts; i++)
        if (f->acts[i].kind == k)
            return &f->acts[i];
    return NULL;
}

static struct fsm_timer *find_timer(struct fsm *f, enum timer_kind k)
{
    for (int i = 0; i < f->n_timers; i++)
        if (!f->timers[i].del && f->timers[i].kind == k)
            return &f->timers[i];
    return NULL;
}

TEST(sequential_set_steps_complete_in_one_call)
{
    struct fsm f;
    struct execution *x = start(&f,
                                "name: w\nsteps:\n"
                                "  - {name: a, type: set, vars: {n: '${ .input.n + 1 }'}}\n"
                                "  - {name: b, type: set, vars: {m: '${ .vars.n * 10 }'}}\n",
                                "{\"n\": 2}");
    ok(x != NULL, "compiles");
    is_int(x->status, EX_COMPLETED, "completed");
    is_int(json_integer_value(json_object_get(x->vars, "m")), 30, "vars flow: m = 30");
    is_int(json_integer_value(json_object_get(x->output, "m")), 30, "output is last step's");
    is_int(x->n_steps, 2, "two steps reached");
    is_str(step_status_names[x->steps[1]->status], "completed", "b completed");
    for (int i = 0; i < f.n_hist; i++)
        is_int(f.hist[i].seq, i + 1, "history seq %d has no gap", i + 1);
    is_str(f.hist[0].type, "execution.started", "first entry");
    is_str(f.hist[f.n_hist - 1].type, "execution.completed", "last entry");
    ok(find_act(&f, ACT_ENDED) != NULL, "ended action");
    fsm_release(&f);
    exec_free(x);
}

static const char *task_wf = "name: w\nsteps:\n"
                             "  - name: t\n    type: task\n    queue: q\n"
                             "    retry: {max_attempts: 3, initial_interval: 1s, backoff: 2,"
                             " jitter: 0, non_retryable: [Fatal]}\n"
                             "    timeout: 5s\n"
                             "  - {name: after, type: set, vars: {done: true}}\n";

TEST(task_runs_then_completes)
{
    struct fsm f;
    struct execution *x = start(&f, task_wf, "{}");
    struct fsm_action *a = find_act(&f, ACT_RUN);
    ok(a != NULL, "an attempt to run");
    is_str(a ? a->step : NULL, "t", "of step t");
    is_int(a ? a->attempt : 0, 1, "attempt 1");
    ok(find_timer(&f, TK_TIMEOUT) != NULL, "timeout armed");
    is_int(find_timer(&f, TK_TIMEOUT)->due, 6000, "due at now + 5s");
    int64_t token = a->token;
    fsm_reset(&f);
    json_t *out = json_pack("{s:i}", "ok", 1);
    is_int(fsm_result(&f, x, "t", token + 1, 1, out, NULL, 1), WFO_ESTATE, "stale token refused");
    is_int(f.n_hist, 0, "stale result changes nothing");
    is_int(fsm_result(&f, x, "t", token, 1, out, NULL, 1), 0, "current token accepted");
    is_int(fsm_result(&f, x, "t", token, 1, out, NULL, 1), WFO_ESTATE, "second completion refused");
    is_int(x->status, EX_COMPLETED, "completed");
    json_decref(out);
    fsm_release(&f);
    exec_free(x);
}

TEST(retries_with_backoff_then_fails)
{
    struct fsm f;
    struct execution *x = start(&f, task_wf, "{}");
    json_t *err = fsm_error("Boom", "it broke", NULL);
    int64_t want[] = {1000, 2000};
    for (int n = 1; n <= 3; n++) {
        struct fsm_action *a = find_act(&f, ACT_RUN);
        ok(a && a->attempt == n, "attempt %d runs", n);
        int64_t token = a->token;
        fsm_reset(&f);
        fsm_result(&f, x, "t", token, 0, NULL, err, 1);
        if (n < 3) {
            struct fsm_timer *t = find_timer(&f, TK_RETRY);
            ok(t != NULL, "retry %d armed", n);
            is_int(t ? t->due - f.now : 0, want[n - 1], "delay before attempt %d", n + 1);
            is_int(count_hist(&f, "step.retrying"), 1, "retrying recorded");
            int64_t tok = t->token;
            fsm_reset(&f);
            fsm_timer(&f, x, TK_RETRY, "t", tok + 7);
            is_int(f.n_acts, 0, "stale retry timer ignored");
            fsm_timer(&f, x, TK_RETRY, "t", tok);
        }
    }
    is_int(x->status, EX_FAILED, "failed after 3 attempts");
    is_str(wfo_json_str(x->error, "type"), "Boom", "error type kept");
    is_str(wfo_json_str(x->error, "step"), "t", "error.step");
    is_int(x->steps[0]->attempts, 3, "3 attempts");
    json_decref(err);
    fsm_release(&f);
    exec_free(x);
}

TEST(non_retryable_and_worker_refusal_fail_at_once)
{
    struct fsm f;
    struct execution *x = start(&f, task_wf, "{}");
    json_t *err = fsm_error("Fatal", "no", NULL);
    fsm_result(&f, x, "t", find_act(&f, ACT_RUN)->token, 0, NULL, err, 1);
    is_int(x->status, EX_FAILED, "non_retryable type: failed");
    is_int(x->steps[0]->attempts, 1, "one attempt");
    fsm_release(&f);
    exec_free(x);

    x = start(&f, task_wf, "{}");
    json_t *e2 = fsm_error("Other", "no", NULL);
    fsm_result(&f, x, "t", find_act(&f, ACT_RUN)->token, 0, NULL, e2, 0);
    is_int(x->status, EX_FAILED, "retryable false: failed");
    is_int(x->steps[0]->attempts, 1, "one attempt");
    json_decref(err);
    json_decref(e2);
    fsm_release(&f);
    exec_free(x);
}

TEST(timeout_cancels_and_retries)
{
    struct fsm f;
    struct execution *x = start(&f, task_wf, "{}");
    struct fsm_timer *t = find_timer(&f, TK_TIMEOUT);
    int64_t tok = t->token;
    fsm_reset(&f);
    f.now = 6000;
    fsm_timer(&f, x, TK_TIMEOUT, "t", tok);
    ok(find_act(&f, ACT_CANCEL) != NULL, "the attempt is cancelled");
    ok(find_timer(&f, TK_RETRY) != NULL, "and retried");
    is_str(wfo_json_str(x->steps[0]->error, "type"), "Timeout", "error Timeout");
    fsm_release(&f);
    exec_free(x);
}

TEST(catch_sends_control_with_error)
{
    struct fsm f;
    struct execution *x =
        start(&f,
              "name: w\nsteps:\n"
              "  - name: t\n    type: task\n    queue: q\n"
              "    retry: {max_attempts: 1}\n"
              "    catch: [{errors: [Nope], next: handle}]\n"
              "  - {name: skipped, type: set, vars: {a: 1}}\n"
              "  - {name: handle, type: set, vars: {msg: '${ .error.message }'}}\n",
              "{}");
    json_t *err = fsm_error("Nope", "declined", NULL);
    fsm_result(&f, x, "t", find_act(&f, ACT_RUN)->token, 0, NULL, err, 1);
    is_int(x->status, EX_COMPLETED, "completed");
    is_str(step_status_names[x->steps[0]->status], "caught", "t is caught");
    is_str(x->steps[1]->path, "handle", "the catch target ran next");
    is_str(json_string_value(json_object_get(x->vars, "msg")), "declined", ".error visible");
    json_decref(err);
    fsm_release(&f);
    exec_free(x);
}

TEST(expression_error_is_not_retried)
{
    struct fsm f;
    struct execution *x = start(&f,
                                "name: w\nsteps:\n"
                                "  - {name: t, type: task, queue: q, input: '${ .input.a.b }'}\n",
                                "{\"a\": 5}");
    is_int(x->status, EX_FAILED, "failed");
    is_str(wfo_json_str(x->error, "type"), "ExpressionError", "ExpressionError");
    is_int(x->steps[0]->attempts, 1, "one attempt");
    is_int(f.n_acts, 1, "nothing to run (only the end)");
    fsm_release(&f);
    exec_free(x);
}

TEST(loop_hits_the_transition_cap)
{
    struct fsm f;
    fsm_init(&f);
    struct execution *x = start(&f,
                                "name: w\nsteps:\n"
                                "  - {name: a, type: set, vars: {i: '${ (.vars.i // 0) + 1 }'}}\n"
                                "  - {name: b, type: set, vars: {}, next: a}\n",
                                "{}");
    is_int(x->status, EX_FAILED, "failed");
    is_str(wfo_json_str(x->error, "type"), "TransitionLimitExceeded", "type");
    is_int(json_integer_value(json_object_get(x->vars, "i")), 5000, "a ran 5000 times");
    is_int(x->n_steps, 2, "each step listed once");
    fsm_release(&f);
    exec_free(x);
}

TEST(if_false_skips_and_switch_chooses)
{
    struct fsm f;
    struct execution *x = start(&f,
                                "name: w\nsteps:\n"
                                "  - {name: s, type: set, if: '${ .input.go }', vars: {x: 1}}\n"
                                "  - name: sw\n    type: switch\n"
                                "    cases: [{when: '${ .input.n > 2 }', next: big}]\n"
                                "    default: small\n"
                                "  - {name: big, type: succeed, output: big}\n"
                                "  - {name: small, type: succeed, output: small}\n",
                                "{\"go\": false, \"n\": 1}");
    is_str(step_status_names[x->steps[0]->status], "skipped", "if false: skipped");
    is_str(json_string_value(x->steps[1]->output), "small", "switch result is the step name");
    is_str(json_string_value(x->output), "small", "succeed output");
    is_int(x->n_steps, 3, "big never reached");
    fsm_release(&f);
    exec_free(x);
}

TEST(workflow_step_names_its_child_and_takes_its_output)
{
    struct fsm f;
    struct execution *x =
        start(&f,
              "name: w\nsteps:\n  - {name: call, type: workflow, workflow: kid, "
              "version: 2, input: {n: '${ .input.n }'}, output: {got: "
              "'${ .result }'}, retry: {max_attempts: 2, initial_interval: 1s}}\n",
              "{\"n\": 3}");
    struct fsm_action *a = find_act(&f, ACT_CHILD);
    struct step_state *st = x->steps[0];
    char id[WFO_ID_SIZE], again[WFO_ID_SIZE], other[WFO_ID_SIZE];
    fsm_child_id("x1", "call", st->token, id);
    fsm_child_id("x1", "call", st->token, again);
    fsm_child_id("x1", "call", st->token + 1, other);
    ok(a != NULL, "ACT_CHILD asked for");
    is_str(st->child, id, "the step names its child");
    is_str(id, again, "the id is derived from the attempt");
    ok(strcmp(id, other) != 0, "another attempt, another child");
    is_int((int)strlen(id), 36, "a UUID");
    ok(id[14] == '8', "of version 8");
    is_str(wfo_json_str(a->args, "id"), id, "the action carries the id");
    is_str(wfo_json_str(a->args, "workflow"), "kid", "... the workflow");
    is_int(json_integer_value(json_object_get(a->args, "version")), 2, "... the version");
    is_int(json_integer_value(json_object_get(json_object_get(a->args, "input"), "n")), 3,
           "... the evaluated input");
    is_str(step_status_names[st->status], "running", "running while the child runs");
    is_int(count_hist(&f, "child.started"), 1, "child.started in the history");
    int64_t tok = st->token;
    /* a failed child: ChildFailed, retried by the step's own policy */
    fsm_reset(&f);
    json_t *err = fsm_error("ChildFailed", "child failed", NULL);
    is_int(fsm_result(&f, x, "call", tok, 0, NULL, err, 1), 0, "the child's failure is taken");
    is_str(step_status_names[st->status], "scheduled", "retried");
    struct fsm_timer *t = find_timer(&f, TK_RETRY);
    ok(t != NULL, "at its retry timer");
    fsm_reset(&f);
    fsm_timer(&f, x, TK_RETRY, "call", t->token);
    ok(st->token != tok, "the retry is a new attempt");
    fsm_child_id("x1", "call", st->token, other);
    is_str(st->child, other, "... with a new child");
    fsm_reset(&f);
    json_t *out = json_integer(9);
    is_int(fsm_result(&f, x, "call", tok, 1, out, NULL, 0), WFO_ESTATE,
           "the old child's outcome is stale");
    is_int(fsm_result(&f, x, "call", st->token, 1, out, NULL, 0), 0, "the new child's output");
    json_decref(out);
    json_decref(err);
    is_int(x->status, EX_COMPLETED, "completed");
    is_int(json_integer_value(json_object_get(st->output, "got")), 9, "through the step's output");
    fsm_release(&f);
    exec_free(x);
}

TEST(sleep_waits_for_its_timer)
{
    struct fsm f;
    struct execution *x =
        start(&f, "name: w\nsteps:\n  - {name: z, type: sleep, duration: 1.5s}\n", "{}");
    struct fsm_timer *t = find_timer(&f, TK_SLEEP);
    ok(t && t->due == 2500, "sleep due at now + 1.5s");
    is_str(step_status_names[x->steps[0]->status], "waiting", "waiting");
    int64_t tok = t->token;
    fsm_reset(&f);
    fsm_timer(&f, x, TK_SLEEP, "z", tok);
    is_int(x->status, EX_COMPLETED, "completed after the timer");
    fsm_release(&f);
    exec_free(x);
}

TEST(retry_delay_formula)
{
    struct def_retry r = {5, 1000, 2.0, 5000, 0.1, NULL};
    is_int(fsm_retry_delay(&r, 1, 0.5), 1000, "first delay is initial");
    is_int(fsm_retry_delay(&r, 2, 0.5), 2000, "then doubles");
    is_int(fsm_retry_delay(&r, 3, 0.5), 4000, "and doubles");
    is_int(fsm_retry_delay(&r, 4, 0.5), 5000, "capped at max_interval");
    is_int(fsm_retry_delay(&r, 1, 0.0), 900, "jitter -10%%");
    ok(fsm_retry_delay(&r, 1, 0.9999) <= 1100 && fsm_retry_delay(&r, 1, 0.9999) >= 1099,
       "jitter +10%%");
}

TEST(state_round_trips)
{
    struct fsm f;
    struct execution *x = start(&f, task_wf, "{\"k\": [1, 2]}");
    struct wfo_buf b = WFO_BUF_INIT, b2 = WFO_BUF_INIT;
    json_t *st = NULL, *ss = NULL;
    exec_row_state(x, &b);
    is_int(wfo_json_parse(b.buf, b.len, &st, NULL), 0, "row state is JSON: %s", b.buf);
    struct execution *y = exec_new("x1", "default", x->def, x->input, 1000);
    struct wfo_error err = WFO_ERROR_INIT;
    is_int(exec_load(y, st, &err), 0, "state loads");
    wfo_buf_reset(&b);
    exec_step_state(x->steps[0], &b);
    is_int(wfo_json_parse(b.buf, b.len, &ss, NULL), 0, "step state is JSON: %s", b.buf);
    is_int(exec_load_step(y, "t", 0, "running", 1, NULL, NULL, ss, NULL, 1000, 0, &err), 0,
           "step loads");
    wfo_buf_reset(&b);
    exec_row_state(x, &b);
    exec_row_state(y, &b2);
    is_str(b2.buf, b.buf, "same state after the round trip");
    wfo_buf_release(&b);
    wfo_buf_release(&b2);
    is_int(y->steps[0]->token, x->steps[0]->token, "token kept");
    is_int(exec_load_step(y, "nope", 1, "running", 1, NULL, NULL, ss, NULL, 0, 0, &err), WFO_ESTORE,
           "unknown step path refused");
    json_decref(st);
    json_decref(ss);
    exec_free(y);
    fsm_release(&f);
    exec_free(x);
}

static struct fsm_action *find_run(struct fsm *f, const char *path)
{
    for (int i = 0; i < f->n_acts; i++)
        if (f->acts[i].kind == ACT_RUN && strcmp(f->acts[i].step, path) == 0)
            return &f->acts[i];
    return NULL;
}

static int n_runs(struct fsm *f)
{
    int n = 0;
    for (int i = 0; i < f->n_acts; i++)
        n += f->acts[i].kind == ACT_RUN;
    return n;
}

/* Completes the running attempt of path with output (JSON text). */
static int complete(struct fsm *f, struct execution *x, const char *path, const char *output)
{
    struct step_state *st = exec_step(x, path);
    if (!st)
        return -1;
    json_t *o = NULL;
    wfo_json_parse(output, strlen(output), &o, NULL);
    fsm_reset(f);
    int rc = fsm_result(f, x, path, st->token, 1, o, NULL, 1);
    json_decref(o);
    return rc;
}

static int failstep(struct fsm *f, struct execution *x, const char *path, const char *type)
{
    struct step_state *st = exec_step(x, path);
    if (!st)
        return -1;
    json_t *e = fsm_error(type, "boom", NULL);
    fsm_reset(f);
    int rc = fsm_result(f, x, path, st->token, 0, NULL, e, 0);
    json_decref(e);
    return rc;
}

static const char *status_of(struct execution *x, const char *path)
{
    struct step_state *st = exec_step(x, path);
    return st ? step_status_names[st->status] : "(none)";
}

TEST(parallel_all_waits_for_every_branch)
{
    struct fsm f;
    struct execution *x =
        start(&f,
              "name: w\nsteps:\n"
              "  - name: both\n    type: parallel\n    branches:\n"
              "      - {name: a, steps: [{name: a1, type: task, queue: q}]}\n"
              "      - {name: b, steps: [{name: b1, type: task, queue: q},"
              " {name: b2, type: set, vars: {x: '${ .steps.b1.output.v }'}}]}\n"
              "  - {name: after, type: set, vars: {r: '${ .steps.both.output }'}}\n",
              "{}");
    ok(find_run(&f, "both/a/a1") && find_run(&f, "both/b/b1"), "both branches start at once");
    is_int(n_runs(&f), 2, "two attempts");
    is_int(complete(&f, x, "both/b/b1", "{\"v\": 7}"), 0, "b1 completes");
    is_str(status_of(x, "both/b/b2"), "completed", "b2 sees b1 via .steps: ran");
    is_int(x->status, EX_RUNNING, "still running: a not done");
    is_int(complete(&f, x, "both/a/a1", "\"A\""), 0, "a1 completes");
    is_int(x->status, EX_COMPLETED, "completed");
    json_t *r = json_object_get(x->vars, "r");
    is_str(json_string_value(json_object_get(r, "a")), "A", "output.a is branch a's last output");
    is_int(json_integer_value(json_object_get(json_object_get(r, "b"), "x")), 7,
           "output.b is branch b's last output");
    fsm_release(&f);
    exec_free(x);
}

TEST(parallel_any_cancels_the_others)
{
    struct fsm f;
    struct execution *x = start(&f,
                                "name: w\nsteps:\n"
                                "  - name: race\n    type: parallel\n    mode: any\n    branches:\n"
                                "      - {name: a, steps: [{name: s, type: task, queue: q}]}\n"
                                "      - {name: b, steps: [{name: s, type: task, queue: q}]}\n",
                                "{}");
    complete(&f, x, "race/b/s", "2");
    is_int(x->status, EX_COMPLETED, "completed on the first branch");
    is_str(status_of(x, "race/a/s"), "cancelled", "the other branch's step is cancelled");
    ok(find_act(&f, ACT_CANCEL) != NULL, "its attempt is told to stop");
    is_int(json_integer_value(json_object_get(x->output, "b")), 2, "output {b: 2}");
    ok(json_object_get(x->output, "a") == NULL, "no a in the output");
    is_int(complete(&f, x, "race/a/s", "1"), WFO_ESTATE, "a late completion is refused");
    fsm_release(&f);
    exec_free(x);
}

TEST(branch_failure_fails_the_block_and_is_catchable)
{
    struct fsm f;
    struct execution *x = start(&f,
                                "name: w\nsteps:\n"
                                "  - name: both\n    type: parallel\n"
                                "    catch: [{errors: [Bad], next: fallback}]\n    branches:\n"
                                "      - {name: a, steps: [{name: s, type: task, queue: q, "
                                "retry: {max_attempts: 1}}]}\n"
                                "      - {name: b, steps: [{name: s, type: task, queue: q}]}\n"
                                "  - {name: nope, type: succeed}\n"
                                "  - {name: fallback, type: set, vars: {t: '${ .error.type }'}}\n",
                                "{}");
    failstep(&f, x, "both/a/s", "Bad");
    is_str(status_of(x, "both/b/s"), "cancelled", "the sibling is cancelled");
    is_str(status_of(x, "both"), "caught", "the block is caught");
    is_int(x->status, EX_COMPLETED, "completed through the catch");
    is_str(json_string_value(json_object_get(x->vars, "t")), "Bad", ".error is the branch's");
    fsm_release(&f);
    exec_free(x);
}

TEST(foreach_respects_concurrency_and_keeps_order)
{
    struct fsm f;
    struct execution *x =
        start(&f,
              "name: w\nsteps:\n"
              "  - name: each\n    type: foreach\n    items: '${ .input.xs }'\n"
              "    concurrency: 2\n"
              "    steps: [{name: d, type: task, queue: q, input: '${ .item }'}]\n",
              "{\"xs\": [10, 20, 30, 40]}");
    is_int(n_runs(&f), 2, "two iterations at once");
    ok(find_run(&f, "each[0]/d") && find_run(&f, "each[1]/d"), "items 0 and 1");
    is_int(json_integer_value(json_object_get(find_run(&f, "each[1]/d")->args, "input")), 20,
           ".item is the item");
    complete(&f, x, "each[1]/d", "21");
    is_int(n_runs(&f), 1, "one more starts when one ends");
    ok(find_run(&f, "each[2]/d") != NULL, "item 2");
    complete(&f, x, "each[2]/d", "31");
    complete(&f, x, "each[0]/d", "11");
    complete(&f, x, "each[3]/d", "41");
    is_int(x->status, EX_COMPLETED, "completed");
    char *out = wfo_json_dumps(x->output);
    is_str(out, "[11,21,31,41]", "outputs in item order");
    free(out);
    fsm_release(&f);
    exec_free(x);
}

TEST(context_paths_agree_with_the_whole_context)
{
    /* a plain path reads the execution where it is (exec_ctx); `| .` makes
     * jq read the whole context object: both must see the same */
    struct fsm f;
    struct execution *x = start(
        &f,
        "name: w\nsteps:\n"
        "  - {name: a, type: set, vars: {x: 1}, output: '${ {r: .result, s: .steps.a.status} }'}\n"
        "  - name: each\n    type: foreach\n    items: '${ .input.xs }'\n"
        "    steps:\n"
        "      - name: s\n        type: set\n        vars:\n"
        "          a1: '${ .steps.a.output }'\n          a2: '${ .steps.a.output | . }'\n"
        "          s1: '${ .steps.s.status }'\n          s2: '${ .steps.s | .status }'\n"
        "          i1: '${ .item }'\n          i2: '${ .item | . }'\n"
        "          n1: '${ .index }'\n          n2: '${ .index | . }'\n"
        "          w1: '${ .execution.workflow }'\n          w2: '${ .execution | .workflow }'\n"
        "          x1: '${ .steps.nope }'\n          x2: '${ .steps | .nope }'\n"
        "          k1: '${ .steps | keys }'\n          k2: '${ [.steps.a, .steps.s] | length }'\n"
        "          u1: '${ .unknown.member }'\n          v1: '${ .vars.x }'\n"
        "          t1: '${ .steps.a.attempts }'\n          t2: '${ .steps.a | .attempts }'\n"
        "          e1: '${ .steps.a.error }'\n          e2: '${ .steps.a | .error }'\n"
        "          z1: '${ .steps.a.nope }'\n          z2: '${ .steps.a | .nope }'\n"
        "          y1: '${ .steps.s.status }'\n          y2: '${ .steps | .s.status }'\n",
        "{\"xs\": [7, 8]}");
    is_int(x->status, EX_COMPLETED, "completed");
    const char *pairs[][2] = {{"a1", "a2"}, {"s1", "s2"}, {"i1", "i2"}, {"n1", "n2"}, {"w1", "w2"},
                              {"x1", "x2"}, {"t1", "t2"}, {"e1", "e2"}, {"z1", "z2"}, {"y1", "y2"}};
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        json_t *p = json_object_get(x->vars, pairs[i][0]),
               *q = json_object_get(x->vars, pairs[i][1]);
        ok(p && q && json_equal(p, q), "%s == %s", pairs[i][0], pairs[i][1]);
    }
    char *s = wfo_json_dumps(json_object_get(x->vars, "a1"));
    is_str(s, "{\"r\":{\"x\":1},\"s\":\"running\"}", ".result and .steps in an output");
    free(s);
    is_str(json_string_value(json_object_get(x->vars, "s1")), "running", "a running step");
    is_int(json_integer_value(json_object_get(x->vars, "i1")), 8, ".item");
    is_int(json_integer_value(json_object_get(x->vars, "n1")), 1, ".index");
    is_str(json_string_value(json_object_get(x->vars, "w1")), "w", ".execution");
    ok(json_is_null(json_object_get(x->vars, "x1")), "a step never reached is null");
    s = wfo_json_dumps(json_object_get(x->vars, "k1"));
    is_str(s, "[\"a\",\"each\",\"s\"]", "the block's steps over the top frame's");
    free(s);
    is_int(json_integer_value(json_object_get(x->vars, "k2")), 2, "both reached");
    ok(json_is_null(json_object_get(x->vars, "u1")), "no other member");
    is_int(json_integer_value(json_object_get(x->vars, "v1")), 1, ".vars");
    fsm_release(&f);
    exec_free(x);
}

TEST(foreach_over_nothing_and_not_an_array)
{
    struct fsm f;
    struct execution *x = start(&f,
                                "name: w\nsteps:\n"
                                "  - {name: each, type: foreach, items: '${ .input.xs }',"
                                " steps: [{name: d, type: set, vars: {}}]}\n",
                                "{\"xs\": []}");
    is_int(x->status, EX_COMPLETED, "empty items: completed");
    ok(json_is_array(x->output) && json_array_size(x->output) == 0, "output []");
    fsm_release(&f);
    exec_free(x);
    x = start(&f,
              "name: w\nsteps:\n"
              "  - {name: each, type: foreach, items: '${ .input.xs }',"
              " steps: [{name: d, type: set, vars: {}}]}\n",
              "{\"xs\": 5}");
    is_str(wfo_json_str(x->error, "type"), "ExpressionError", "not an array: ExpressionError");
    fsm_release(&f);
    exec_free(x);
}

static const char *saga =
    "name: w\nsteps:\n"
    "  - name: a\n    type: task\n    queue: q\n"
    "    compensate: {type: task, queue: undo, input: '${ .steps.a.output }'}\n"
    "  - name: b\n    type: task\n    queue: q\n"
    "    compensate: {type: task, queue: undo, retry: {max_attempts: 2, "
    "initial_interval: 10ms}}\n"
    "  - {name: c, type: task, queue: q, retry: {max_attempts: 1}}\n";

TEST(saga_compensates_in_reverse_then_fails)
{
    struct fsm f;
    struct execution *x = start(&f, saga, "{}");
    complete(&f, x, "a", "\"A\"");
    complete(&f, x, "b", "\"B\"");
    failstep(&f, x, "c", "Declined");
    is_int(x->status, EX_RUNNING, "running while compensating");
    ok(find_run(&f, "b:compensate") != NULL, "b is compensated first");
    ok(!find_run(&f, "a:compensate"), "a waits");
    complete(&f, x, "b:compensate", "null");
    struct fsm_action *ca = find_run(&f, "a:compensate");
    ok(ca != NULL, "then a");
    is_str(json_string_value(json_object_get(ca->args, "input")), "A",
           "a's compensation sees .steps.a.output");
    complete(&f, x, "a:compensate", "null");
    is_int(x->status, EX_FAILED, "failed");
    is_str(wfo_json_str(x->compensation, "status"), "completed", "compensation completed");
    is_str(status_of(x, "a"), "compensated", "a compensated");
    is_str(status_of(x, "b"), "compensated", "b compensated");
    is_str(wfo_json_str(x->error, "type"), "Declined", "the original error stays");
    is_str(wfo_json_str(x->error, "step"), "c", "error.step");
    fsm_release(&f);
    exec_free(x);
}

TEST(failing_compensation_is_recorded)
{
    struct fsm f;
    struct execution *x = start(&f, saga, "{}");
    complete(&f, x, "a", "1");
    complete(&f, x, "b", "2");
    failstep(&f, x, "c", "Declined");
    struct step_state *cb = exec_step(x, "b:compensate");
    json_t *e = fsm_error("UndoFailed", "no", NULL);
    fsm_reset(&f);
    fsm_result(&f, x, "b:compensate", cb->token, 0, NULL, e, 1);
    struct fsm_timer *t = find_timer(&f, TK_RETRY);
    ok(t != NULL, "the compensation is retried by its own policy");
    int64_t tok = t->token;
    fsm_reset(&f);
    fsm_timer(&f, x, TK_RETRY, "b:compensate", tok);
    fsm_reset(&f);
    fsm_result(&f, x, "b:compensate", cb->token, 0, NULL, e, 1);
    is_int(x->status, EX_FAILED, "failed");
    is_str(wfo_json_str(x->compensation, "status"), "failed", "compensation failed");
    is_str(wfo_json_str(json_object_get(x->compensation, "error"), "type"), "UndoFailed",
           "with its error");
    is_str(wfo_json_str(x->error, "type"), "Declined", "and the original error");
    is_str(status_of(x, "a"), "completed", "a was not compensated after the failure");
    json_decref(e);
    fsm_release(&f);
    exec_free(x);
}

TEST(on_failure_fail_skips_compensation)
{
    struct fsm f;
    char buf[1024];
    snprintf(buf, sizeof(buf), "on_failure: fail\n%s", saga);
    struct execution *x = start(&f, buf, "{}");
    complete(&f, x, "a", "1");
    complete(&f, x, "b", "2");
    failstep(&f, x, "c", "Declined");
    is_int(x->status, EX_FAILED, "failed at once");
    ok(x->compensation == NULL, "compensation null");
    fsm_release(&f);
    exec_free(x);
}

TEST(compensate_step_undoes_and_continues)
{
    struct fsm f;
    struct execution *x = start(&f,
                                "name: w\nsteps:\n"
                                "  - {name: a, type: task, queue: q, compensate: {type: set, vars: "
                                "{undone: true}}}\n"
                                "  - {name: undo, type: compensate}\n"
                                "  - {name: again, type: compensate}\n"
                                "  - {name: end, type: set, vars: {fin: true}}\n",
                                "{}");
    complete(&f, x, "a", "1");
    is_int(x->status, EX_COMPLETED, "completed after compensating");
    is_str(status_of(x, "a"), "compensated", "a compensated");
    ok(json_is_true(json_object_get(x->vars, "undone")), "its compensation ran");
    ok(json_is_true(json_object_get(x->vars, "fin")), "and the workflow continued");
    is_int(count_hist(&f, "compensation.started"), 1, "compensated once, not twice");
    fsm_release(&f);
    exec_free(x);
}

TEST(cancel_with_compensate)
{
    struct fsm f;
    struct execution *x = start(&f, saga, "{}");
    complete(&f, x, "a", "1");
    fsm_reset(&f);
    is_int(fsm_cancel(&f, x, "stop", 1), 0, "cancel accepted");
    ok(find_act(&f, ACT_STOP) != NULL, "b's attempt is asked to stop");
    ok(find_act(&f, ACT_CANCEL) == NULL, "not aborted");
    ok(find_run(&f, "a:compensate") == NULL, "nothing is undone while b may still report");
    is_str(status_of(x, "b"), "cancelled", "b shows cancelled");
    ok(find_timer(&f, TK_TIMEOUT) != NULL, "the wait for b is bounded");
    is_int(failstep(&f, x, "b", "Stopped"), 0, "b's failure is taken");
    is_int(count_hist(&f, "step.stopped"), 1, "and recorded");
    ok(find_run(&f, "a:compensate") != NULL, "then a is compensated");
    is_str(status_of(x, "b"), "cancelled", "b stays cancelled");
    complete(&f, x, "a:compensate", "null");
    is_int(x->status, EX_CANCELLED, "cancelled after compensating");
    fsm_release(&f);
    exec_free(x);
}

TEST(late_success_is_compensated)
{
    struct fsm f;
    struct execution *x = start(&f, saga, "{}");
    complete(&f, x, "a", "1");
    fsm_reset(&f);
    is_int(fsm_cancel(&f, x, "stop", 1), 0, "cancel accepted");
    is_int(complete(&f, x, "b", "2"), 0, "b's late success is accepted");
    is_str(status_of(x, "b"), "completed", "b counts as completed");
    ok(find_run(&f, "b:compensate") != NULL, "b, the newest completion, is undone first");
    ok(find_run(&f, "a:compensate") == NULL, "a after it");
    complete(&f, x, "b:compensate", "null");
    ok(find_run(&f, "a:compensate") != NULL, "then a");
    complete(&f, x, "a:compensate", "null");
    is_str(status_of(x, "b"), "compensated", "b compensated");
    is_int(x->status, EX_CANCELLED, "cancelled");
    is_int(complete(&f, x, "b", "3"), WFO_ESTATE, "a second completion is stale");
    fsm_release(&f);
    exec_free(x);
}

/* A sleep longer than its timeout fails with Timeout when the timeout
 * comes (SPEC 2.2: timeout per attempt); its sleep timer goes with it, and
 * firing it after is stale. Without a timeout, a timeout timer is stale. */
TEST(sleep_past_its_timeout)
{
    struct fsm f;
    struct execution *x = start(
        &f, "name: t\nsteps:\n  - {name: s, type: sleep, duration: 1h, timeout: 50ms}\n", "{}");
    struct step_state *st = exec_step(x, "s");
    ok(find_timer(&f, TK_SLEEP) && find_timer(&f, TK_TIMEOUT), "both timers armed");
    is_str(step_status_names[st->status], "waiting", "waiting");
    fsm_reset(&f);
    fsm_timer(&f, x, TK_TIMEOUT, "s", st->token);
    is_int(x->status, EX_FAILED, "failed");
    is_str(wfo_json_str(x->error, "type"), "Timeout", "with Timeout");
    is_str(wfo_json_str(x->error, "step"), "s", "at s");
    is_int(st->attempts, 1, "one attempt: sleep has no retry of its own");
    int sleep_del = 0;
    for (int i = 0; i < f.n_timers; i++)
        sleep_del |= f.timers[i].del && f.timers[i].kind == TK_SLEEP;
    ok(sleep_del, "its sleep timer deleted");
    int64_t hseq = x->hseq;
    fsm_reset(&f);
    fsm_timer(&f, x, TK_SLEEP, "s", st->token);
    is_int(x->hseq, hseq, "the sleep timer after it: stale");
    fsm_release(&f);
    exec_free(x);

    x = start(&f, "name: t\nsteps:\n  - {name: s, type: sleep, duration: 1h}\n", "{}");
    st = exec_step(x, "s");
    ok(!find_timer(&f, TK_TIMEOUT), "no timeout: no timer");
    fsm_reset(&f);
    fsm_timer(&f, x, TK_TIMEOUT, "s", st->token);
    is_str(step_status_names[st->status], "waiting", "a timer it never armed: still waiting");
    fsm_release(&f);
    exec_free(x);
}

TEST(terminate_refuses_late_success)
{
    struct fsm f;
    struct execution *x = start(&f, saga, "{}");
    complete(&f, x, "a", "1");
    fsm_reset(&f);
    is_int(fsm_terminate(&f, x, "now"), 0, "terminated");
    ok(find_act(&f, ACT_CANCEL) != NULL, "b's attempt is aborted");
    is_int(complete(&f, x, "b", "2"), WFO_ESTATE, "its late success is refused");
    is_str(status_of(x, "a"), "completed", "nothing is compensated");
    fsm_release(&f);
    exec_free(x);
}

/* ---- the whole table: every step status x every event (STYLE 14) ----
 *
 * One workflow reaches each step status; each event is then applied to the
 * step "s" with its current token, and the table says what must follow:
 * the step's new status, or "-" when the event is stale and nothing may
 * change (I1). */

static const char *table_wf =
    "name: t\nsteps:\n"
    "  - name: s\n    type: task\n    queue: q\n    timeout: 1s\n    schedule_timeout: 1s\n"
    "    retry: {max_attempts: 2, initial_interval: 10ms}\n"
    "    catch: [{errors: [Caught], next: after}]\n"
    "    compensate: {type: set, vars: {u: 1}}\n"
    "  - {name: nap, type: sleep, duration: 1h}\n"
    "  - {name: boom, type: fail, error: {type: Boom, message: x}}\n"
    "  - {name: after, type: set, vars: {a: 1}, end: true}\n";

static const char *sleep_wf = "name: t\nsteps:\n  - {name: s, type: sleep, duration: 1h}\n";
static const char *skip_wf =
    "name: t\nsteps:\n  - {name: s, type: set, vars: {a: 1}, if: '${ false }'}\n"
    "  - {name: nap, type: sleep, duration: 1h}\n";

enum ev { EV_OK, EV_FAIL, EV_RETRY, EV_TIMEOUT, EV_SCHEDULE, EV_SLEEP, EV_PICKED, EV__N };
static const char *const ev_names[EV__N] = {
    "ok", "fail", "retry timer", "timeout timer", "schedule timer", "sleep timer", "picked"};

/* Brings step s to status st; 0 when it got there. */
static struct execution *reach(struct fsm *f, const char *status)
{
    struct execution *x;
    if (strcmp(status, "waiting") == 0)
        return start(f, sleep_wf, "{}");
    if (strcmp(status, "skipped") == 0)
        return start(f, skip_wf, "{}");
    x = start(f, table_wf, "{}");
    if (strcmp(status, "running") == 0)
        return x;
    if (strcmp(status, "scheduled") == 0) {
        struct step_state *st = exec_step(x, "s");
        json_t *e = fsm_error("Flaky", "x", NULL);
        fsm_result(f, x, "s", st->token, 0, NULL, e, 1);
        json_decref(e);
        return x;
    }
    if (strcmp(status, "failed") == 0) {
        struct step_state *st = exec_step(x, "s");
        json_t *e = fsm_error("Fatal", "x", NULL);
        fsm_result(f, x, "s", st->token, 0, NULL, e, 0);
        json_decref(e);
        return x;
    }
    if (strcmp(status, "caught") == 0) {
        failstep(f, x, "s", "Caught");
        return x;
    }
    if (strcmp(status, "cancelled") == 0) { /* hard: no compensation follows */
        fsm_cancel(f, x, "stop", 0);
        return x;
    }
    if (strcmp(status, "stopping") == 0) { /* cancelled, its attempt may still report */
        fsm_cancel(f, x, "stop", 1);
        return x;
    }
    complete(f, x, "s", "{\"done\": 1}");
    if (strcmp(status, "compensated") == 0)
        fsm_cancel(f, x, "stop", 1); /* s:compensate is a set step: at once */
    return x;
}

static void apply_ev(struct fsm *f, struct execution *x, enum ev ev, int64_t token)
{
    json_t *v = json_pack("{s:i}", "r", 1), *e = fsm_error("Flaky", "x", NULL);
    fsm_reset(f);
    switch (ev) {
    case EV_OK:
        fsm_result(f, x, "s", token, 1, v, NULL, 1);
        break;
    case EV_FAIL:
        fsm_result(f, x, "s", token, 0, NULL, e, 1);
        break;
    case EV_RETRY:
        fsm_timer(f, x, TK_RETRY, "s", token);
        break;
    case EV_TIMEOUT:
        fsm_timer(f, x, TK_TIMEOUT, "s", token);
        break;
    case EV_SCHEDULE:
        fsm_timer(f, x, TK_SCHEDULE, "s", token);
        break;
    case EV_SLEEP:
        fsm_timer(f, x, TK_SLEEP, "s", token);
        break;
    default:
        fsm_task_picked(f, x, "s", token, "w");
        break;
    }
    json_decref(v);
    json_decref(e);
}

TEST(step_status_event_table)
{
    /* the status s has after each event: ok, fail, retry, timeout,
     * schedule, sleep, picked; "-" = stale: nothing changes */
    static const struct {
        const char *status;
        const char *after[EV__N];
    } table[] = {
        {"scheduled", {"-", "-", "running", "-", "-", "-", "-"}},
        {"running", {"completed", "scheduled", "-", "scheduled", "scheduled", "-", "running"}},
        {"waiting", {"-", "-", "-", "-", "-", "completed", "-"}},
        {"completed", {"-", "-", "-", "-", "-", "-", "-"}},
        {"failed", {"-", "-", "-", "-", "-", "-", "-"}},
        {"caught", {"-", "-", "-", "-", "-", "-", "-"}},
        {"skipped", {"-", "-", "-", "-", "-", "-", "-"}},
        {"cancelled", {"-", "-", "-", "-", "-", "-", "-"}},
        /* SPEC 2.4: an attempt asked to stop may still report; a success
         * counts, and is undone at once here (its compensation is a set) */
        {"stopping", {"compensated", "cancelled", "-", "cancelled", "-", "-", "-"}},
        {"compensated", {"-", "-", "-", "-", "-", "-", "-"}},
    };
    for (size_t i = 0; i < WFO_ARRAY_SIZE(table); i++) {
        for (int ev = 0; ev < EV__N; ev++) {
            struct fsm f;
            struct execution *x = reach(&f, table[i].status);
            struct step_state *st = exec_step(x, "s");
            const char *want_before =
                strcmp(table[i].status, "stopping") == 0 ? "cancelled" : table[i].status;
            char what[96];
            snprintf(what, sizeof(what), "%s + %s", table[i].status, ev_names[ev]);
            if (!st || strcmp(step_status_names[st->status], want_before) != 0) {
                ok(0, "%s: reached %s", what, st ? step_status_names[st->status] : "(none)");
                fsm_release(&f);
                exec_free(x);
                continue;
            }
            int stopping = st->stopping, attempts = st->attempts;
            int64_t hseq = x->hseq;
            apply_ev(&f, x, (enum ev)ev, st->token);
            const char *after = table[i].after[ev];
            if (strcmp(after, "-") == 0) {
                ok(x->hseq == hseq && strcmp(step_status_names[st->status], want_before) == 0 &&
                       st->attempts == attempts && st->stopping == stopping,
                   "%s: stale, nothing changes", what);
            } else {
                is_str(step_status_names[st->status], after, "%s", what);
            }
            fsm_release(&f);
            exec_free(x);
        }
    }
}

TEST(execution_status_op_table)
{
    /* running, paused, completed, failed, cancelled, terminated x cancel,
     * terminate, pause, resume, retry: 1 accepted, 0 refused (WFO_ESTATE) */
    static const struct {
        const char *how;
        enum exec_status status;
        int accepted[5];
    } table[] = {
        {"running", EX_RUNNING, {1, 1, 1, 0, 0}},
        {"paused", EX_PAUSED, {1, 1, 0, 1, 0}},
        {"completed", EX_COMPLETED, {0, 0, 0, 0, 0}},
        {"failed", EX_FAILED, {0, 0, 0, 0, 1}},
        {"cancelled", EX_CANCELLED, {0, 0, 0, 0, 0}},
        {"terminated", EX_TERMINATED, {0, 0, 0, 0, 0}},
    };
    static const char *const ops[5] = {"cancel", "terminate", "pause", "resume", "retry"};
    for (size_t i = 0; i < WFO_ARRAY_SIZE(table); i++) {
        for (int op = 0; op < 5; op++) {
            struct fsm f;
            struct execution *x = start(&f, table_wf, "{}");
            if (table[i].status == EX_PAUSED)
                fsm_pause(&f, x);
            else if (table[i].status == EX_COMPLETED)
                failstep(&f, x, "s", "Caught"); /* -> after, end: true */
            else if (table[i].status == EX_FAILED)
                failstep(&f, x, "s", "Fatal");
            else if (table[i].status == EX_CANCELLED)
                fsm_cancel(&f, x, "x", 0);
            else if (table[i].status == EX_TERMINATED)
                fsm_terminate(&f, x, "x");
            char what[96];
            snprintf(what, sizeof(what), "%s + %s", table[i].how, ops[op]);
            if (x->status != table[i].status) {
                ok(0, "%s: reached %s", what, exec_status_names[x->status]);
                fsm_release(&f);
                exec_free(x);
                continue;
            }
            struct wfo_error err = WFO_ERROR_INIT;
            fsm_reset(&f);
            int rc = op == 0   ? fsm_cancel(&f, x, "x", 0)
                     : op == 1 ? fsm_terminate(&f, x, "x")
                     : op == 2 ? fsm_pause(&f, x)
                     : op == 3 ? fsm_resume(&f, x)
                               : fsm_retry(&f, x, NULL, &err);
            if (table[i].accepted[op])
                is_int(rc, 0, "%s", what);
            else
                ok(rc == WFO_ESTATE && f.n_hist == 0, "%s: refused, nothing changes", what);
            fsm_release(&f);
            exec_free(x);
        }
    }
}

int main(void)
{
    return tap_run();
}
