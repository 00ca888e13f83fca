/*
 * test_exec.c - unit tests of src/core/exec.c: the saved state of an
 * execution (exec_row_state, exec_step_state) loaded back (exec_load,
 * exec_load_step) gives the same execution field by field: frames, vars,
 * counters (transitions, history seq, token tick, completion seq, chunk
 * counter), the compensation queue and its flags, every step's status,
 * attempts, token, completion order, flags, items, output, error, input
 * and times; and the contexts its expressions see are the same. Also the
 * older compensation form ("pos"), rows that do not match the definition,
 * step paths, status names.
 */
#include <stdlib.h>
#include <string.h>

#include "core/exec.h"
#include "core/def.h"
#include "common/buf.h"
#include "common/json.h"
#include "common/util.h"
#include "../tap.h"
#include "common/banned.h"

/* Parses text with every ' turned into ". */
static json_t *J(const char *text)
{
    struct wfo_error err = WFO_ERROR_INIT;
    size_t n = strlen(text);
    char *s = wfo_strdup(text);
    json_t *v = NULL;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\'')
            s[i] = '"';
    if (wfo_json_parse(s, n, &v, &err) < 0) {
        printf("# bad test document: %s\n# %s\n", err.message, s);
        abort();
    }
    free(s);
    return v;
}

static const char *def_text =
    "{'name': 'w', 'steps': ["
    " {'name': 'pay', 'type': 'task', 'queue': 'q',"
    "  'compensate': [{'type': 'set', 'vars': {'n': 0}}]},"
    " {'name': 'fan', 'type': 'parallel', 'branches': ["
    "  {'name': 'a', 'steps': [{'name': 'a1', 'type': 'task', 'queue': 'q'}]},"
    "  {'name': 'b', 'steps': [{'name': 'b1', 'type': 'task', 'queue': 'q'}]}]},"
    " {'name': 'each', 'type': 'foreach', 'items': '${ .input.items }',"
    "  'steps': [{'name': 'one', 'type': 'task', 'queue': 'q'}]},"
    " {'name': 'done', 'type': 'succeed'}]}";

static struct def *compile(void)
{
    struct def_problems p = {0};
    struct def *d = NULL;
    json_t *doc = J(def_text);
    if (def_compile(doc, &d, &p) < 0) {
        for (int i = 0; i < p.n; i++)
            printf("# %s: %s\n", p.items[i].path, p.items[i].message);
        abort();
    }
    def_problems_release(&p);
    json_decref(doc);
    return d;
}

static struct step_state *reach(struct execution *x, const char *path, int frame)
{
    const struct def_step *d = exec_resolve_path(x->def, path);
    if (!d) {
        printf("# no step %s\n", path);
        abort();
    }
    return exec_step_reach(x, path, d, frame, NULL);
}

/* An execution in the middle of things: a parallel branch and a foreach
 * iteration open, a failure being compensated. */
static struct execution *busy_exec(struct def *d)
{
    json_t *input = J("{'items': [10, 20, 30, 40, 50]}");
    struct execution *x = exec_new("exec-1", "ns1", d, input, 1700000000000);
    json_decref(input);
    exec_frame_add(x, -1, NULL, 0, &d->steps, "");
    struct frame *fb =
        exec_frame_add(x, 0, "fan", 1, &d->steps.steps[1].branches[1].block, "fan/b/");
    fb->otoken = 6;
    fb->busy = 1;
    fb->last = wfo_strdup("fan/b/b1");
    struct frame *fe = exec_frame_add(x, 0, "each", 3, &d->steps.steps[2].body, "each[3]/");
    fe->item = json_integer(40);
    fe->otoken = 8;
    fe->status = FR_FAILED;
    fe->pc = 0;
    x->frames[0].pc = 2;
    x->frames[0].busy = 1;
    x->frames[0].last = wfo_strdup("fan");

    json_decref(x->vars);
    x->vars = J("{'n': 2, 'who': {'a': [1, 2]}}");
    x->transitions = 17;
    x->hseq = 23;
    x->tick = 9;
    x->cseq = 1;
    x->chunks = 4;
    x->error_ctx = J("{'type': 'Boom', 'message': 'it broke'}");
    x->comp_queue = wfo_calloc(1, sizeof(*x->comp_queue));
    x->comp_queue[0] = (struct comp_entry){wfo_strdup("pay"), 0, COMP_RUNNING};
    x->n_comp = 1;
    x->comp_final = EX_FAILED;
    x->comp_then_retry = 1;
    x->retry_from = wfo_strdup("fan");
    x->comp_owner = wfo_strdup("undo");
    x->fail_origin = wfo_strdup("each[3]/one");
    x->draining = 1;

    struct step_state *st = reach(x, "pay", 0);
    st->status = SS_COMPLETED;
    st->attempts = 2;
    st->token = 5;
    st->cseq = 1;
    st->output = J("{'paid': 12.5}");
    st->input_text = wfo_strdup("{\"amount\":12.5}");
    st->started_at = 1700000000100;
    st->finished_at = 1700000000200;
    exec_scope_update(x, st);

    st = reach(x, "fan", 0);
    st->status = SS_WAITING;
    st->attempts = 1;
    st->token = 6;
    st->started_at = 1700000000300;
    exec_scope_update(x, st);

    st = reach(x, "fan/b/b1", 1);
    st->status = SS_RUNNING;
    st->attempts = 1;
    st->token = 7;
    st->picked = 1;
    st->task_row = 7;
    st->input_text = wfo_strdup("null");
    st->started_at = 1700000000400;
    exec_scope_update(x, st);

    st = reach(x, "each", 0);
    st->status = SS_WAITING;
    st->attempts = 1;
    st->token = 8;
    st->items = J("[10, 20, 30, 40, 50]");
    st->next_item = 4;
    exec_scope_update(x, st);

    st = reach(x, "each[3]/one", 2);
    st->status = SS_FAILED;
    st->attempts = 3;
    st->token = 9;
    st->retry_due = 1;
    st->stopping = 1;
    st->unknown = 1;
    st->error = J("{'type': 'Boom', 'message': 'it broke', 'retryable': true}");
    st->started_at = 1700000000500;
    st->finished_at = 1700000000600;
    exec_scope_update(x, st);

    st = reach(x, "pay:compensate[0]", 0);
    st->status = SS_RUNNING;
    st->attempts = 1;
    st->token = 10;
    return x;
}

static char *row_state(const struct execution *x)
{
    struct wfo_buf b = WFO_BUF_INIT;
    exec_row_state(x, &b);
    return wfo_buf_detach(&b, NULL);
}

/* Loads x's saved state into a new execution, as recovery does. */
static struct execution *reload(struct execution *x, struct wfo_error *err)
{
    char *text = row_state(x);
    json_t *state = NULL;
    if (wfo_json_parse(text, strlen(text), &state, err) < 0) {
        free(text);
        return NULL;
    }
    struct execution *y = exec_new(x->id, x->ns, x->def, x->input, x->created_at);
    int rc = exec_load(y, state, err);
    json_decref(state);
    free(text);
    for (int i = 0; rc == 0 && i < x->n_steps; i++) {
        const struct step_state *s = x->steps[i];
        struct wfo_buf b = WFO_BUF_INIT;
        exec_step_state(s, &b);
        json_t *ss = NULL;
        rc = wfo_json_parse(b.buf, b.len, &ss, err);
        if (rc == 0)
            rc = exec_load_step(y, s->path, s->ord, step_status_names[s->status], s->attempts,
                                s->output, s->error, ss, s->input_text, s->started_at,
                                s->finished_at, err);
        json_decref(ss);
        wfo_buf_release(&b);
    }
    if (rc < 0) {
        exec_free(y);
        return NULL;
    }
    return y;
}

static int same_json(const json_t *a, const json_t *b)
{
    if (!a || !b)
        return a == b;
    return json_equal((json_t *)a, (json_t *)b);
}

TEST(round_trip_field_by_field)
{
    struct def *d = compile();
    struct execution *x = busy_exec(d);
    struct wfo_error err = WFO_ERROR_INIT;
    struct execution *y = reload(x, &err);
    ok(y != NULL, "loads: %s", err.message);
    if (!y)
        return;

    /* the execution */
    is_str(y->id, "exec-1", "id");
    is_int(y->transitions, 17, "transitions");
    is_int(y->hseq, 23, "history seq");
    is_int(y->tick, 9, "token counter");
    is_int(y->cseq, 1, "completion counter");
    is_int(y->chunks, 4, "chunk counter");
    ok(same_json(y->vars, x->vars), "vars");
    ok(same_json(y->error_ctx, x->error_ctx), "error context");
    ok(y->n_comp == 1 && !strcmp(y->comp_queue[0].path, "pay") && y->comp_queue[0].index == 0 &&
           y->comp_queue[0].state == COMP_RUNNING,
       "compensation queue with entry states");
    is_int(y->comp_final, EX_FAILED, "final status of the compensation");
    is_int(y->comp_then_retry, 1, "then retry");
    is_str(y->retry_from, "fan", "retry from");
    is_str(y->comp_owner, "undo", "compensation owner");
    is_str(y->fail_origin, "each[3]/one", "fail origin");
    is_int(y->draining, 1, "draining");

    /* the frames */
    is_int(y->n_frames, 3, "three frames");
    for (int i = 0; i < x->n_frames && i < y->n_frames; i++) {
        const struct frame *a = &x->frames[i], *b = &y->frames[i];
        is_int(b->id, a->id, "frame %d id", i);
        is_int(b->parent, a->parent, "frame %d parent", i);
        is_str(b->owner, a->owner, "frame %d owner", i);
        is_int(b->branch, a->branch, "frame %d branch", i);
        ok(b->block == a->block, "frame %d block found in the definition", i);
        is_str(b->prefix, a->prefix, "frame %d prefix", i);
        is_int(b->pc, a->pc, "frame %d pc", i);
        is_int(b->busy, a->busy, "frame %d busy", i);
        is_int(b->otoken, a->otoken, "frame %d owner token", i);
        is_int(b->status, a->status, "frame %d status", i);
        ok(same_json(b->item, a->item), "frame %d item", i);
        is_str(b->last, a->last, "frame %d last step", i);
    }

    /* the steps */
    is_int(y->n_steps, 6, "six steps");
    int task_rows = 0;
    for (int i = 0; i < x->n_steps && i < y->n_steps; i++) {
        const struct step_state *a = x->steps[i], *b = y->steps[i];
        is_str(b->path, a->path, "step %d path", i);
        ok(exec_step(y, a->path) == b, "%s found by path", a->path);
        ok(b->def == a->def, "%s definition", a->path);
        is_int(b->ord, a->ord, "%s ord", a->path);
        is_int(b->frame, a->frame, "%s frame", a->path);
        is_int(b->status, a->status, "%s status", a->path);
        is_int(b->attempts, a->attempts, "%s attempts", a->path);
        is_int(b->token, a->token, "%s token", a->path);
        is_int(b->cseq, a->cseq, "%s completion seq", a->path);
        is_int(b->retry_due, a->retry_due, "%s retry due", a->path);
        is_int(b->picked, a->picked, "%s picked", a->path);
        is_int(b->stopping, a->stopping, "%s stopping", a->path);
        is_int(b->unknown, a->unknown, "%s unknown", a->path);
        is_int(b->comp, a->comp, "%s is a compensation", a->path);
        is_int(b->task_row, a->task_row, "%s task row", a->path);
        ok(same_json(b->items, a->items), "%s items", a->path);
        is_int(b->next_item, a->next_item, "%s next item", a->path);
        ok(same_json(b->output, a->output), "%s output", a->path);
        ok(same_json(b->error, a->error), "%s error", a->path);
        is_str(b->input_text, a->input_text, "%s input", a->path);
        is_int(b->started_at, a->started_at, "%s started", a->path);
        is_int(b->finished_at, a->finished_at, "%s finished", a->path);
        task_rows += a->task_row != 0;
    }
    is_int(y->task_rows, task_rows, "steps with a task row counted at load");
    ok(exec_step(y, "pay:compensate[0]")->comp, "the compensation run is marked");

    /* the same state written again, the same contexts */
    char *sx = row_state(x), *sy = row_state(y);
    is_str(sy, sx, "its state saves to the same text");
    free(sx);
    free(sy);
    for (int f = 0; f < 3; f++) {
        json_t *cx = exec_context(x, f), *cy = exec_context(y, f);
        ok(json_equal(cx, cy), "frame %d: the same context", f);
        json_decref(cx);
        json_decref(cy);
    }
    json_t *c = exec_context(y, 2);
    is_int(json_integer_value(json_object_get(c, "item")), 40, "the iteration's item");
    is_int(json_integer_value(json_object_get(c, "index")), 3, "and its index");
    is_str(wfo_json_str(json_object_get(json_object_get(c, "steps"), "one"), "status"), "failed",
           "its own step in .steps");
    ok(json_is_real(json_object_get(
           json_object_get(json_object_get(json_object_get(c, "steps"), "pay"), "output"), "paid")),
       "an enclosing block's step in .steps");
    is_str(wfo_json_str(json_object_get(c, "error"), "type"), "Boom", ".error");
    json_decref(c);

    exec_free(x);
    exec_free(y);
    def_unref(d);
}

TEST(step_state_text)
{
    struct def *d = compile();
    struct execution *x = busy_exec(d);
    struct wfo_buf b = WFO_BUF_INIT;
    exec_step_state(exec_step(x, "pay"), &b);
    is_str(b.buf, "{\"token\":5,\"cseq\":1,\"frame\":0,\"retry_due\":false,\"picked\":false}",
           "a completed step: only what it has");
    wfo_buf_release(&b);
    exec_step_state(exec_step(x, "fan/b/b1"), &b);
    is_str(b.buf,
           "{\"token\":7,\"cseq\":0,\"frame\":1,\"retry_due\":false,\"picked\":true,\"trow\":7}",
           "a picked task with a row");
    wfo_buf_release(&b);
    exec_free(x);
    def_unref(d);
}

TEST(fresh_execution_round_trip)
{
    struct def *d = compile();
    json_t *input = J("{'items': []}");
    struct execution *x = exec_new("exec-2", "default", d, input, 5);
    json_decref(input);
    exec_frame_add(x, -1, NULL, 0, &d->steps, "");
    struct wfo_error err = WFO_ERROR_INIT;
    struct execution *y = reload(x, &err);
    ok(y != NULL, "loads: %s", err.message);
    is_int(y->n_frames, 1, "one frame");
    is_int(y->frames[0].pc, 0, "at the first step");
    is_int(y->n_steps, 0, "no steps");
    ok(y->comp_queue == NULL, "not compensating");
    ok(y->error_ctx == NULL, "no error context");
    ok(y->retry_from == NULL && y->comp_owner == NULL && y->fail_origin == NULL, "no strings");
    is_int(y->draining, 0, "not draining");
    is_int(json_object_size(y->vars), 0, "vars empty");
    is_int(y->hseq + y->tick + y->cseq + y->chunks + y->transitions, 0, "counters zero");
    exec_free(x);
    exec_free(y);
    def_unref(d);
}

TEST(older_compensation_form)
{
    /* a store written before queue entries had states: "pos" runs */
    struct def *d = compile();
    json_t *input = json_object();
    struct execution *x = exec_new("exec-3", "default", d, input, 5);
    json_decref(input);
    json_t *state = J("{'frames': [{'id': 0, 'parent': -1, 'branch': 0, 'pc': 0, 'prefix': '',"
                      " 'status': 0, 'busy': 0, 'otoken': 0}], 'vars': {},"
                      " 'comp': {'queue': [['c', 0], ['b', 0], ['a', 0]], 'pos': 1, 'final': 3}}");
    struct wfo_error err = WFO_ERROR_INIT;
    is_int(exec_load(x, state, &err), 0, "loads: %s", err.message);
    static const struct {
        const char *path;
        enum comp_state state;
    } want[] = {{"c", COMP_DONE}, {"b", COMP_RUNNING}, {"a", COMP_PENDING}};
    int same = x->n_comp == 3;
    for (int i = 0; same && i < 3; i++)
        same = !strcmp(x->comp_queue[i].path, want[i].path) && x->comp_queue[i].index == 0 &&
               x->comp_queue[i].state == want[i].state;
    ok(same, "before pos done, at pos running, after pending");
    is_int(x->comp_final, 3, "final");
    ok(json_array_size(
           json_array_get(json_object_get(json_object_get(state, "comp"), "queue"), 0)) == 2,
       "the state read is not changed (a copy)");

    json_decref(state);
    exec_free(x);
    def_unref(d);
}

TEST(rows_that_do_not_match)
{
    struct def *d = compile();
    json_t *input = json_object();
    struct wfo_error err = WFO_ERROR_INIT;
    struct execution *x = exec_new("exec-4", "default", d, input, 5);
    json_t *state = json_string("nope");
    is_int(exec_load(x, state, &err), WFO_ESTORE, "state not an object");
    json_decref(state);
    exec_free(x);

    x = exec_new("exec-4", "default", d, input, 5);
    state = J("{'frames': [{'id': 0, 'parent': -1, 'pc': 0, 'prefix': ''},"
              " {'id': 1, 'parent': 0, 'owner': 'pay', 'branch': 0, 'prefix': 'pay/'}]}");
    is_int(exec_load(x, state, &err), WFO_ESTORE, "a frame owned by a step with no blocks");
    ok(strstr(err.message, "frame 1") != NULL, "names the frame: %s", err.message);
    json_decref(state);
    exec_free(x);

    x = exec_new("exec-4", "default", d, input, 5);
    state = J("{'frames': [{'id': 0, 'parent': -1, 'pc': 0, 'prefix': ''},"
              " {'id': 1, 'parent': 0, 'owner': 'fan', 'branch': 2, 'prefix': 'fan/c/'}]}");
    is_int(exec_load(x, state, &err), WFO_ESTORE, "a branch the parallel step does not have");
    json_decref(state);
    exec_free(x);

    x = exec_new("exec-4", "default", d, input, 5);
    state = J("{'frames': [{'id': 0, 'parent': -1, 'pc': 0, 'prefix': ''}]}");
    is_int(exec_load(x, state, &err), 0, "top frame only");
    json_t *ss = J("{'token': 1, 'frame': 7}");
    is_int(exec_load_step(x, "gone", 0, "completed", 1, NULL, NULL, ss, NULL, 0, 0, &err),
           WFO_ESTORE, "a step the definition does not have");
    ok(strstr(err.message, "'gone'") != NULL, "names it: %s", err.message);
    is_int(exec_load_step(x, "pay", 0, "exploded", 1, NULL, NULL, ss, NULL, 0, 0, &err), WFO_ESTORE,
           "an unknown status");
    is_int(exec_load_step(x, "pay", 0, "completed", 1, NULL, NULL, ss, NULL, 0, 0, &err), 0,
           "a frame out of range");
    is_int(exec_step(x, "pay")->frame, 0, "goes to the top frame");
    json_decref(ss);
    json_decref(state);
    exec_free(x);
    json_decref(input);
    def_unref(d);
}

TEST(resolve_path)
{
    struct def *d = compile();
    const struct def_step *s;
    ok((s = exec_resolve_path(d, "pay")) && strcmp(s->name, "pay") == 0, "a top-level step");
    ok((s = exec_resolve_path(d, "fan/a/a1")) && strcmp(s->name, "a1") == 0, "a branch's step");
    ok((s = exec_resolve_path(d, "fan/b/b1")) && strcmp(s->name, "b1") == 0, "the other branch");
    ok((s = exec_resolve_path(d, "each[3]/one")) && strcmp(s->name, "one") == 0,
       "an iteration's step");
    ok(exec_resolve_path(d, "pay:compensate[0]") == &exec_resolve_path(d, "pay")->compensate[0],
       "a compensation by index");
    ok(exec_resolve_path(d, "pay:compensate") == &exec_resolve_path(d, "pay")->compensate[0],
       "a compensation without index is the first");
    ok(exec_resolve_path(d, "pay:compensate[1]") == NULL, "index out of range");
    ok(exec_resolve_path(d, "pay:compensate[x]") == NULL, "index not a number");
    ok(exec_resolve_path(d, "pay:compensatex") == NULL, "trailing junk");
    ok(exec_resolve_path(d, "fan:compensate[0]") == NULL, "a step without compensation");
    ok(exec_resolve_path(d, "fan/c/a1") == NULL, "an unknown branch");
    ok(exec_resolve_path(d, "fan/a1") == NULL, "a branch name missing");
    ok(exec_resolve_path(d, "each/one") == NULL, "an iteration without index");
    ok(exec_resolve_path(d, "pay[0]/x") == NULL, "an index on a task");
    ok(exec_resolve_path(d, "pay/a/x") == NULL, "a branch of a task");
    ok(exec_resolve_path(d, "nope") == NULL, "an unknown step");
    ok(exec_resolve_path(d, "") == NULL, "empty");
    def_unref(d);
}

TEST(status_names)
{
    is_int(exec_status_parse("running"), EX_RUNNING, "running");
    is_int(exec_status_parse("terminated"), EX_TERMINATED, "terminated");
    is_int(exec_status_parse("done"), -1, "unknown");
    is_int(exec_status_parse(NULL), -1, "NULL");
    for (int i = EX_RUNNING; i <= EX_TERMINATED; i++)
        is_int(exec_status_parse(exec_status_names[i]), i, "execution status %s",
               exec_status_names[i]);
    for (int i = SS_SCHEDULED; i <= SS_COMPENSATED; i++)
        is_int(step_status_parse(step_status_names[i]), i, "step status %s", step_status_names[i]);
    is_int(step_status_parse("Completed"), -1, "case matters");
    ok(!EX_ENDED(EX_PAUSED) && EX_ENDED(EX_CANCELLED), "ended: cancelled, not paused");
}

int main(void)
{
    return tap_run();
}
