/*
 * fsm.c - the execution state machine (docs/implementation/state_management.md).
 *
 * NOTES ON THE DESIGN
 *
 * An execution is a tree of frames (the top-level block, and one frame per
 * parallel branch or foreach iteration), each with a program counter into
 * its block; a frame is busy while the step at its pc has been entered and
 * has not finished. Steps are known by path and keep the order in which
 * they were first reached.
 *
 * Execution states and their transitions, each with the function that makes
 * it:
 *
 *   (new)    -> running     [fsm_start]
 *   running  -> paused      [fsm_pause]      no new step starts
 *   paused   -> running     [fsm_resume]
 *   running  -> completed   [exec_complete]  the top frame ran off its end,
 *                                            an `end: true` or `succeed` step
 *   running  -> failed      [exec_fail]      an uncaught step failure, a `fail`
 *                                            step, WorkflowTimeout,
 *                                            TransitionLimitExceeded
 *   running/paused -> cancelled  [fsm_cancel]
 *   running/paused -> terminated [fsm_terminate]
 *   failed   -> running     [fsm_retry]      from the earliest compensated
 *                                            step (a new pass), from `from`,
 *                                            or from the step that failed; the
 *                                            failed compensations first
 *   running  -> running     [exec_fail_as]   a failure that will compensate
 *                                            waits (x->draining) for the
 *                                            attempts it stopped (C2)
 *
 * Step states:
 *
 *   (reached) -> scheduled  [step_enter]
 *   scheduled -> skipped    [step_enter]     `if` was false
 *   scheduled -> running    [attempt_start]  an attempt is in flight (token)
 *   scheduled -> waiting    [attempt_start]  sleep, await_event
 *   waiting   -> completed  [fsm_wait_done]  await_event: an event or signal
 *                                            matched (core/events.c)
 *   waiting   -> failed/caught/scheduled [apply_timer] await_event's
 *                                            timeout: EventTimeout
 *   running   -> completed  [step_complete]
 *   running   -> scheduled  [attempt_fail]   a retry is due at a timer
 *   running   -> failed     [step_fail]      no attempt left, no catch
 *   running   -> caught     [step_fail]      a catch entry matched
 *   running/waiting -> cancelled [step_stop]   a task/http/exec attempt is
 *                                            asked to stop (st->stopping)
 *   cancelled -> completed  [step_late_result] that attempt succeeded after
 *                                            all: it counts, and is undone
 *
 * Invariants (each checked by fsm_check() after every transition in the
 * test build, check.h):
 *   I1. A result or timer is applied only when it carries the token of the
 *       attempt in flight (st->token) and the step is in the state that
 *       waits for it; anything else is stale and changes nothing.
 *   I2. Every change of an execution appends history entries with seq
 *       x->hseq + 1, + 2, ...: no gap, no repeat.
 *   I3. The effects of a call are applied by the engine atomically (one
 *       store transaction) before any ACT_RUN is started.
 *   C1. A compensation entry starts only when every entry before it in the
 *       queue (newer completions) is done, except entries of other branches
 *       of the same parallel step (comp_concurrent): branches are undone
 *       concurrently, each in reverse.
 *   C2. Work that happened is never forgotten: an attempt cancelled while
 *       in flight (step_stop, soft) keeps its token and st->stopping until
 *       it reports or its bound (timeout, else f->stop_ms) passes; a failure
 *       that compensates waits for every such attempt first (draining).
 */
#include "common/compat.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsm.h"
#include "check.h"
#include "kinds.h"
#include "../common/crypto.h"
#include "../common/duration.h"
#include "../common/redact.h"
#include "../store/store.h"

const char *const timer_kind_names[TK__COUNT] = {"retry", "timeout", "sleep", "workflow_timeout",
                                                 "schedule_timeout"};

int timer_kind_parse(const char *s)
{
    for (int i = 0; i < TK__COUNT; i++)
        if (strcmp(s, timer_kind_names[i]) == 0)
            return i;
    return -1;
}

void fsm_init(struct fsm *f)
{
    memset(f, 0, sizeof(*f));
    f->transition_limit = 10000;
    f->rand = wfo_random;
    f->default_retry = &def_retry_default;
    f->gen = 1; /* executions start with touched 0 */
}

void fsm_reset(struct fsm *f)
{
    for (int i = 0; i < f->n_hist; i++) {
        json_decref(f->hist[i].data);
        json_decref(f->hist[i].dval);
    }
    for (int i = 0; i < f->n_timers; i++) {
        free(f->timers[i].id);
        free(f->timers[i].step);
    }
    for (int i = 0; i < f->n_acts; i++)
        json_decref(f->acts[i].args);
    f->n_hist = f->n_timers = f->n_acts = f->n_touched = 0;
    f->gen++;
}

#define SWAP(a, b)                                                                                 \
    do {                                                                                           \
        __typeof__(a) swap_tmp_ = (a);                                                             \
        (a) = (b);                                                                                 \
        (b) = swap_tmp_;                                                                           \
    } while (0)

void fsm_take(struct fsm *dst, struct fsm *src)
{
    SWAP(dst->hist, src->hist);
    SWAP(dst->n_hist, src->n_hist);
    SWAP(dst->alloc_hist, src->alloc_hist);
    SWAP(dst->timers, src->timers);
    SWAP(dst->n_timers, src->n_timers);
    SWAP(dst->alloc_timers, src->alloc_timers);
    SWAP(dst->acts, src->acts);
    SWAP(dst->n_acts, src->n_acts);
    SWAP(dst->alloc_acts, src->alloc_acts);
    SWAP(dst->touched, src->touched);
    SWAP(dst->n_touched, src->n_touched);
    SWAP(dst->alloc_touched, src->alloc_touched);
    src->gen++;
}

void fsm_release(struct fsm *f)
{
    fsm_reset(f);
    free(f->hist);
    free(f->timers);
    free(f->acts);
    free(f->touched);
}

json_t *fsm_error(const char *type, const char *message, json_t *details)
{
    json_t *e = wfo_json_error(type, message, details);
    if (!wfo_redact_active())
        return e;
    json_t *r = wfo_redact_json(e); /* an error may quote a secret's value */
    json_decref(e);
    return r;
}

int64_t fsm_retry_delay(const struct def_retry *r, int n, double r01)
{
    double d = (double)r->initial_ms * pow(r->backoff, n > 1 ? n - 1 : 0);
    if (d > (double)r->max_ms)
        d = (double)r->max_ms;
    d *= 1.0 + r->jitter * (2.0 * r01 - 1.0);
    return d < 0 ? 0 : (int64_t)llround(d);
}

/* --- effects ------------------------------------------------------------ */

/* {key: v}, v taken (NULL when v is NULL, as json_pack("{s:O}") gives): for
 * the data of the common history entries, without json_pack's parsing of
 * its format on every transition. */
static json_t *obj1(const char *key, json_t *v)
{
    if (!v)
        return NULL;
    json_t *o = json_object();
    json_object_set_new_nocheck(o, key, v);
    return o;
}

static void touch(struct fsm *f, struct execution *x)
{
    x->dirty = 1;
    x->updated_at = f->now;
    if (x->touched == f->gen)
        return;
    x->touched = f->gen;
    GROW(f->touched, f->n_touched, f->alloc_touched);
    f->touched[f->n_touched++] = x;
}

/* Appends a history entry; takes ownership of data; step is a step's path
 * (st->path) or NULL. (I2) */
static void hist(struct fsm *f, struct execution *x, const char *type, const char *step,
                 json_t *data)
{
    touch(f, x);
    GROW(f->hist, f->n_hist, f->alloc_hist);
    struct fsm_hist *h = &f->hist[f->n_hist++];
    h->x = x;
    h->seq = ++x->hseq;
    h->time = f->now;
    h->type = type;
    h->step = step;
    h->data = data;
    h->dkey = NULL;
    h->dval = NULL;
}

/* Appends a history entry whose data is {key: v} (none when v is NULL, as
 * json_pack("{s:O}") gives), made only when asked for (fsm_hist_data);
 * takes v. */
static void hist1(struct fsm *f, struct execution *x, const char *type, const char *step,
                  const char *key, json_t *v)
{
    hist(f, x, type, step, NULL);
    struct fsm_hist *h = &f->hist[f->n_hist - 1];
    h->dkey = v ? key : NULL;
    h->dval = v;
}

json_t *fsm_hist_data(struct fsm_hist *h)
{
    if (!h->data && h->dval) {
        h->data = json_object();
        json_object_set_nocheck(h->data, h->dkey, h->dval);
    }
    return h->data;
}

static char *timer_id(struct execution *x, const char *step, enum timer_kind kind)
{
    struct wfo_buf b = WFO_BUF_INIT;
    wfo_buf_adds(&b, x->id);
    wfo_buf_addch(&b, '/');
    wfo_buf_adds(&b, step ? step : "");
    wfo_buf_addch(&b, '#');
    wfo_buf_adds(&b, timer_kind_names[kind]);
    return wfo_buf_detach(&b, NULL);
}

static void timer_put(struct fsm *f, struct execution *x, enum timer_kind kind, const char *step,
                      int64_t token, int64_t due)
{
    touch(f, x);
    GROW(f->timers, f->n_timers, f->alloc_timers);
    struct fsm_timer *t = &f->timers[f->n_timers++];
    t->del = 0;
    t->id = timer_id(x, step, kind);
    t->x = x;
    t->due = due;
    t->kind = kind;
    t->step = step ? wfo_strdup(step) : NULL;
    t->token = token;
}

static void timer_del(struct fsm *f, struct execution *x, enum timer_kind kind, const char *step)
{
    GROW(f->timers, f->n_timers, f->alloc_timers);
    struct fsm_timer *t = &f->timers[f->n_timers++];
    memset(t, 0, sizeof(*t));
    t->del = 1;
    t->id = timer_id(x, step, kind);
    t->x = x;
    t->kind = kind;
}

static void act(struct fsm *f, enum fsm_act_kind kind, struct execution *x, struct step_state *st,
                json_t *args)
{
    touch(f, x);
    GROW(f->acts, f->n_acts, f->alloc_acts);
    struct fsm_action *a = &f->acts[f->n_acts++];
    a->kind = kind;
    a->x = x;
    a->step = st ? st->path : NULL;
    a->token = st ? st->token : 0;
    a->attempt = st ? st->attempts : 0;
    a->def = st ? st->def : NULL;
    a->args = args;
}

static void step_touch(struct fsm *f, struct execution *x, struct step_state *st)
{
    st->dirty = 1;
    touch(f, x);
    exec_scope_update(x, st);
}

/* --- evaluation --------------------------------------------------------- */

static int truthy(const json_t *v)
{
    return v && !json_is_null(v) && !json_is_false(v);
}

/* Evaluates field fi of st's definition against ctx; *out NULL when the
 * field is absent. On failure returns an ExpressionError (new ref). */
/* Does the value of field fi leave wfo only to do the step's work (an
 * http request, an exec's command line, stdin, environment), so that it
 * must keep its secrets? Everything else an expression makes can be
 * stored, shown or sent on, and has them redacted (SPEC 2.1). */
static int field_keeps_secrets(const struct def_step *d, enum step_field fi)
{
    const struct step_kind *kd = &step_kinds[d->type];
    return kd->keeps_secrets && (fi == F_INPUT || (kd->run_fields >> fi & 1));
}

static json_t *eval_field(const struct def_step *d, enum step_field fi, struct expr_ctx *ctx,
                          json_t **out)
{
    *out = NULL;
    if (!d->f[fi])
        return NULL;
    struct wfo_error err = WFO_ERROR_INIT;
    if (tmpl_eval_ctx(d->f[fi], ctx, out, &err) < 0) {
        struct wfo_buf b = WFO_BUF_INIT;
        wfo_buf_addf(&b, "%s: %s", step_field_names[fi], err.message);
        json_t *e = fsm_error("ExpressionError", b.buf, NULL);
        wfo_buf_release(&b);
        return e;
    }
    if (*out && wfo_redact_active() && !field_keeps_secrets(d, fi)) {
        json_t *r = wfo_redact_json(*out);
        json_decref(*out);
        *out = r;
    }
    return NULL;
}

/* --- executions ------------------------------------------------------- */

static void run_frames(struct fsm *f, struct execution *x);

/* Cancels st, which is in flight (C2). soft: an attempt of a task, http or
 * exec step is asked to stop and may still report, and so is a `workflow`
 * step's child (cancelled, compensating when its parent does: child.c),
 * whose end is the attempt's outcome; it is waited for up to its timeout
 * (or f->stop_ms). Else the attempt is aborted and whatever it reports
 * later is stale. */
static void step_stop(struct fsm *f, struct execution *x, struct step_state *st, int soft)
{
    enum kind_end ends = step_kinds[st->def->type].ends;
    if (st->status == SS_RUNNING && soft && !st->comp && (ends == KE_RESULT || ends == KE_CHILD)) {
        act(f, ACT_STOP, x, st, NULL);
        st->stopping = 1;
        if (!st->def->timeout_ms)
            timer_put(f, x, TK_TIMEOUT, st->path, st->token, f->now + f->stop_ms);
    } else if (st->status == SS_RUNNING) {
        act(f, ACT_CANCEL, x, st, NULL);
    }
    st->status = SS_CANCELLED;
    st->finished_at = f->now;
    step_touch(f, x, st);
    hist(f, x, "step.cancelled", st->path, NULL);
}

/* Cancels every step in flight (soft: see step_stop). A hard stop also
 * aborts the attempts asked to stop before, which then count as stale. */
static void exec_stop_steps(struct fsm *f, struct execution *x, int soft)
{
    for (int i = 0; i < x->n_steps; i++) {
        struct step_state *st = x->steps[i];
        if (st->status == SS_RUNNING || st->status == SS_WAITING || st->status == SS_SCHEDULED)
            step_stop(f, x, st, soft);
        else if (st->stopping && !soft) {
            act(f, ACT_CANCEL, x, st, NULL);
            st->stopping = 0;
            step_touch(f, x, st);
        }
    }
    for (int i = 0; i < x->n_frames; i++)
        if (x->frames[i].status == FR_ACTIVE)
            x->frames[i].status = FR_CANCELLED;
}

static int exec_stopping(const struct execution *x)
{
    for (int i = 0; i < x->n_steps; i++)
        if (x->steps[i]->stopping)
            return 1;
    return 0;
}

/* Ends x; its history entry's data is {key: v} (v taken). */
static void exec_end(struct fsm *f, struct execution *x, enum exec_status status, const char *type,
                     const char *key, json_t *v)
{
    x->status = status;
    x->row_dirty = 1;
    x->finished_at = f->now;
    if (x->def->timeout_ms)
        timer_del(f, x, TK_WF_TIMEOUT, NULL);
    hist1(f, x, type, NULL, key, v);
    act(f, ACT_ENDED, x, NULL, NULL);
}

static void exec_complete(struct fsm *f, struct execution *x, json_t *last_output)
{
    json_t *out = NULL;
    if (x->def->output) {
        struct exec_ctx ctx;
        exec_ctx_init(&ctx, x, 0);
        struct wfo_error err = WFO_ERROR_INIT;
        int rc = tmpl_eval_ctx(x->def->output, &ctx.base, &out, &err);
        exec_ctx_release(&ctx);
        if (rc == 0 && out && wfo_redact_active()) {
            json_t *r = wfo_redact_json(out);
            json_decref(out);
            out = r;
        }
        if (rc < 0) {
            struct wfo_buf b = WFO_BUF_INIT;
            wfo_buf_addf(&b, "output: %s", err.message);
            json_t *e = fsm_error("ExpressionError", b.buf, NULL);
            wfo_buf_release(&b);
            json_object_set_new(e, "step", json_null());
            json_decref(x->error);
            x->error = e;
            x->row_dirty = 1;
            exec_stop_steps(f, x, 0);
            exec_end(f, x, EX_FAILED, "execution.failed", "error", json_incref(e));
            return;
        }
    } else {
        out = wfo_json_ref(last_output);
    }
    json_decref(x->output);
    x->output = out;
    x->row_dirty = 1;
    exec_stop_steps(f, x, 0);
    exec_end(f, x, EX_COMPLETED, "execution.completed", "output", json_incref(out));
}

static int comp_build(struct execution *x);
static void comp_advance(struct fsm *f, struct execution *x);
static void comp_step_done(struct fsm *f, struct execution *x, struct step_state *st,
                           json_t *error);
static void step_fail(struct fsm *f, struct execution *x, struct step_state *st, json_t *error);

/* Fails the execution with error (taken) raised at step path (may be NULL):
 * compensating first when on_failure says so and there is something to
 * undo (SPEC 2.4). final is EX_FAILED, or EX_CANCELLED for a cancel with
 * compensate. */
static void comp_abort(struct fsm *f, struct execution *x, json_t *error);

/* The failure of x goes on once nothing it stopped is in flight: its
 * compensations, or its end. */
static void exec_fail_continue(struct fsm *f, struct execution *x, enum exec_status final,
                               int compensate)
{
    json_t *error = x->error;
    if (compensate && !x->comp_queue && comp_build(x)) {
        x->comp_final = final;
        free(x->comp_owner);
        x->comp_owner = NULL;
        json_decref(x->error_ctx);
        x->error_ctx = json_incref(error);
        free(x->error_step); /* every compensation sees it */
        x->error_step = NULL;
        json_decref(x->compensation);
        x->compensation = json_pack("{s:s}", "status", "running");
        x->row_dirty = 1;
        hist(f, x, "compensation.started", NULL,
             json_pack("{s:I}", "steps", (json_int_t)x->n_comp));
        comp_advance(f, x);
        return;
    }
    if (final == EX_CANCELLED)
        exec_end(f, x, EX_CANCELLED, "execution.cancelled", "error", json_incref(error));
    else
        exec_end(f, x, EX_FAILED, "execution.failed", "error", json_incref(error));
}

/* A stopping attempt reported or was given up: when it was the last, the
 * failure that waited for it goes on (C2). */
static void drain_check(struct fsm *f, struct execution *x)
{
    if (!x->draining || exec_stopping(x))
        return;
    x->draining = 0;
    touch(f, x);
    exec_fail_continue(f, x, (enum exec_status)x->comp_final, 1);
}

static void exec_fail_as(struct fsm *f, struct execution *x, json_t *error, const char *path,
                         enum exec_status final, int compensate)
{
    if (x->draining) {
        /* a second failure (the workflow timeout) while waiting for the
         * stopped attempts: waiting ends, the first error stays */
        json_decref(error);
        exec_stop_steps(f, x, 0);
        x->draining = 0;
        exec_fail_continue(f, x, (enum exec_status)x->comp_final, 1);
        return;
    }
    if (x->comp_queue && !x->comp_owner) {
        /* a failure while the saga undoes (a workflow timeout): the saga
         * stops, the execution keeps its first error */
        json_object_set_new(error, "step", path ? json_string(path) : json_null());
        comp_abort(f, x, error);
        return;
    }
    if (x->comp_queue && x->comp_owner) {
        /* a `compensate` step was undoing: the failure takes over, and
         * undoes what is left */
        exec_comp_clear(x);
        free(x->comp_owner);
        x->comp_owner = NULL;
    }
    if (x->fail_origin && path) {
        path = x->fail_origin; /* the innermost failing step */
    }
    json_object_set_new(error, "step", path ? json_string(path) : json_null());
    json_decref(x->error);
    x->error = error;
    x->row_dirty = 1;
    free(x->fail_origin);
    x->fail_origin = NULL;
    /* work that happened is never forgotten (SPEC 2.4): attempts in flight
     * are asked to stop and waited for before anything is undone */
    exec_stop_steps(f, x, compensate && !x->comp_queue);
    if (compensate && !x->comp_queue && exec_stopping(x)) {
        x->draining = 1;
        x->comp_final = final;
        return;
    }
    exec_fail_continue(f, x, final, compensate);
}

static void exec_fail(struct fsm *f, struct execution *x, json_t *error, const char *path)
{
    exec_fail_as(f, x, error, path, EX_FAILED, x->def->on_failure_compensate);
}

/* --- steps ------------------------------------------------------------ */

static char *step_path(const struct frame *fr, const struct def_step *d)
{
    struct wfo_buf b = WFO_BUF_INIT;
    wfo_buf_adds(&b, fr->prefix);
    wfo_buf_adds(&b, d->name);
    return wfo_buf_detach(&b, NULL);
}

/* Moves frame fr past its current step d. */
static void frame_next(struct fsm *f, struct execution *x, struct frame *fr,
                       const struct def_step *d, int next)
{
    fr->status = fr->status; /* keep */
    if (next == JUMP_NEXT)
        next = d->next;
    if (next == JUMP_END) {
        fr->pc = -1;
        if (fr->parent < 0) {
            struct step_state *last = fr->last ? exec_step(x, fr->last) : NULL;
            exec_complete(f, x, last ? last->output : NULL);
        }
        return;
    }
    if (next >= 0)
        fr->pc = next;
    else
        fr->pc = fr->pc + 1 < fr->block->n ? fr->pc + 1 : -1;
}

static void attempt_fail(struct fsm *f, struct execution *x, struct step_state *st, json_t *error,
                         int retryable);
static void attempt_start(struct fsm *f, struct execution *x, struct step_state *st);
static void step_complete(struct fsm *f, struct execution *x, struct step_state *st, json_t *raw,
                          int next);

/* .error is seen inside a catch target (SPEC 2.1): once that step has
 * completed or been skipped, it is gone. */
static void error_scope_end(struct execution *x, const struct step_state *st)
{
    if (!x->error_step || strcmp(x->error_step, st->path) != 0)
        return;
    json_decref(x->error_ctx);
    x->error_ctx = NULL;
    free(x->error_step);
    x->error_step = NULL;
}

/* Cancels frame fid, the steps in flight in it and its nested frames. */
static void frame_cancel(struct fsm *f, struct execution *x, int fid)
{
    if (x->frames[fid].status == FR_ACTIVE)
        x->frames[fid].status = FR_CANCELLED;
    touch(f, x);
    for (int i = 0; i < x->n_steps; i++) {
        struct step_state *st = x->steps[i];
        if (st->frame != fid || st->comp)
            continue;
        if (st->status == SS_RUNNING || st->status == SS_WAITING || st->status == SS_SCHEDULED)
            step_stop(f, x, st, 1);
    }
    for (int i = 0; i < x->n_frames; i++)
        if (x->frames[i].parent == fid && x->frames[i].status == FR_ACTIVE)
            frame_cancel(f, x, i);
}

static int frame_of(const struct frame *fr, const struct step_state *owner)
{
    return fr->owner && strcmp(fr->owner, owner->path) == 0 && fr->otoken == owner->token;
}

/* Cancels every frame the block step owner opened in its current attempt. */
static void block_cancel(struct fsm *f, struct execution *x, struct step_state *owner)
{
    for (int i = 0; i < x->n_frames; i++)
        if (frame_of(&x->frames[i], owner) && x->frames[i].status == FR_ACTIVE)
            frame_cancel(f, x, i);
}

/* Is an attempt asked to stop (C2) still out in a frame that block step
 * owner opened in its current attempt, or in a frame nested in one? */
static int block_stopping(const struct execution *x, const struct step_state *owner)
{
    for (int i = 0; i < x->n_steps; i++) {
        if (!x->steps[i]->stopping)
            continue;
        for (int fid = x->steps[i]->frame; fid >= 0; fid = x->frames[fid].parent)
            if (frame_of(&x->frames[fid], owner))
                return 1;
    }
    return 0;
}

/* The retries of block steps that waited for their stopped attempts
 * (TK_RETRY) start once none of those is out. */
static void retries_drained(struct fsm *f, struct execution *x)
{
    for (int i = 0; i < x->n_steps && x->status == EX_RUNNING; i++) {
        struct step_state *st = x->steps[i];
        if (st->status == SS_SCHEDULED && st->retry_due && !block_stopping(x, st)) {
            st->retry_due = 0;
            attempt_start(f, x, st);
        }
    }
}

static json_t *frame_output(struct execution *x, const struct frame *fr)
{
    struct step_state *last = fr->last ? exec_step(x, fr->last) : NULL;
    return last && last->output ? last->output : json_null();
}

/* A frame failed with error (taken) at origin: the execution fails, or the
 * block step that owns the frame fails its attempt. */
static void frame_fail(struct fsm *f, struct execution *x, int fid, json_t *error,
                       const char *origin, int retryable)
{
    struct frame *fr = &x->frames[fid];
    fr->status = FR_FAILED;
    if (fr->parent < 0) {
        exec_fail(f, x, error, origin);
        return;
    }
    struct step_state *owner = exec_step(x, fr->owner);
    if (!owner || owner->status != SS_RUNNING) {
        json_decref(error);
        return;
    }
    block_cancel(f, x, owner);
    if (!x->fail_origin)
        x->fail_origin = wfo_strdup(origin);
    /* an error SPEC 2.3 never retries is not retried by the block either */
    attempt_fail(f, x, owner, error, retryable);
}

/* Does frame fid, or a frame nested in it, hold a step that was undone? */
static int frame_compensated(const struct execution *x, int fid)
{
    for (int i = 0; i < x->n_steps; i++) {
        int fr = x->steps[i]->frame;
        if (x->steps[i]->status != SS_COMPENSATED)
            continue;
        while (fr >= 0 && fr != fid)
            fr = x->frames[fr].parent;
        if (fr == fid)
            return 1;
    }
    return 0;
}

/* A retry of block step st (SPEC 2.3): the branch or iteration `branch`
 * that completed in the previous attempt (prev_token) keeps its frame and
 * its outputs, taken over by the new attempt, and does not run again,
 * unless something in it was compensated since. For a foreach, only when
 * its item is still the same. Returns the id of the frame kept, or -1. */
static int block_keep(struct fsm *f, struct execution *x, struct step_state *st, int64_t prev_token,
                      int branch, const json_t *item)
{
    if (prev_token < 0)
        return -1;
    for (int i = 0; i < x->n_frames; i++) {
        struct frame *fr = &x->frames[i];
        if (!fr->owner || strcmp(fr->owner, st->path) != 0 || fr->otoken != prev_token ||
            fr->branch != branch || fr->status != FR_DONE || frame_compensated(x, i))
            continue;
        if (item && !(fr->item && json_equal(fr->item, (json_t *)item)))
            continue;
        fr->otoken = st->token;
        touch(f, x);
        return i;
    }
    return -1;
}

/* Is iteration index of foreach st opened in its current attempt? */
static int foreach_opened(const struct execution *x, const struct step_state *st, int index)
{
    for (int i = 0; i < x->n_frames; i++)
        if (frame_of(&x->frames[i], st) && x->frames[i].branch == index)
            return 1;
    return 0;
}

/* Opens foreach frames while fewer than concurrency run and items remain. */
static void foreach_open(struct fsm *f, struct execution *x, struct step_state *st)
{
    int active = 0;
    for (int i = 0; i < x->n_frames; i++)
        if (frame_of(&x->frames[i], st) && x->frames[i].status == FR_ACTIVE)
            active++;
    int n = (int)json_array_size(st->items);
    while (active < st->def->concurrency && st->next_item < n) {
        int i = st->next_item++;
        if (foreach_opened(x, st, i))
            continue; /* kept from the attempt before (block_keep) */
        struct wfo_buf b = WFO_BUF_INIT;
        wfo_buf_addf(&b, "%s[%d]/", st->path, i);
        int token_frame = st->frame;
        struct frame *fr = exec_frame_add(x, token_frame, st->path, i, &st->def->body, b.buf);
        wfo_buf_release(&b);
        fr->otoken = st->token;
        fr->item = json_incref(json_array_get(st->items, (size_t)i));
        active++;
    }
    step_touch(f, x, st);
}

/* A frame that owner opened finished (done is its id): completes the block
 * when its mode says so. */
static void block_progress(struct fsm *f, struct execution *x, struct step_state *owner, int done)
{
    const struct def_step *d = owner->def;
    if (owner->status != SS_RUNNING)
        return;
    if (d->type == STEP_PARALLEL && d->mode_any) {
        const struct frame *fr = &x->frames[done];
        json_t *r = json_object();
        json_object_set(r, d->branches[fr->branch].name, frame_output(x, fr));
        block_cancel(f, x, owner);
        step_complete(f, x, owner, r, JUMP_NEXT);
        json_decref(r);
        return;
    }
    if (d->type == STEP_FOREACH)
        foreach_open(f, x, owner);
    int n_done = 0,
        n = d->type == STEP_PARALLEL ? d->n_branches : (int)json_array_size(owner->items);
    for (int i = 0; i < x->n_frames; i++)
        if (frame_of(&x->frames[i], owner) && x->frames[i].status == FR_DONE)
            n_done++;
    if (n_done < n)
        return;
    json_t *r;
    if (d->type == STEP_PARALLEL) {
        r = json_object();
        for (int b = 0; b < d->n_branches; b++)
            for (int i = 0; i < x->n_frames; i++)
                if (frame_of(&x->frames[i], owner) && x->frames[i].branch == b)
                    json_object_set(r, d->branches[b].name, frame_output(x, &x->frames[i]));
    } else {
        r = json_array();
        for (int k = 0; k < n; k++)
            json_array_append_new(r, json_null());
        for (int i = 0; i < x->n_frames; i++)
            if (frame_of(&x->frames[i], owner))
                json_array_set(r, (size_t)x->frames[i].branch, frame_output(x, &x->frames[i]));
    }
    step_complete(f, x, owner, r, JUMP_NEXT);
    json_decref(r);
}

/* --- compensation (SPEC 2.4) ------------------------------------------------ */

static int by_cseq_desc(const void *a, const void *b)
{
    const struct step_state *x = *(struct step_state *const *)a,
                            *y = *(struct step_state *const *)b;
    return x->cseq < y->cseq ? 1 : x->cseq > y->cseq ? -1 : 0;
}

/* Queues the compensations of every completed step that has one, newest
 * completion first: entries {path, index, COMP_PENDING}. Returns
 * how many steps. */
static int comp_build(struct execution *x)
{
    struct step_state **v = wfo_calloc((size_t)x->n_steps + 1, sizeof(*v));
    int n = 0;
    for (int i = 0; i < x->n_steps; i++) {
        struct step_state *st = x->steps[i];
        if (!st->comp && st->def->n_compensate > 0 &&
            (st->status == SS_COMPLETED ||
             (st->status == SS_CANCELLED && st->unknown && st->def->compensate_in_flight)))
            v[n++] = st;
    }
    qsort(v, (size_t)n, sizeof(*v), by_cseq_desc);
    exec_comp_clear(x);
    if (n) {
        int total = 0;
        for (int i = 0; i < n; i++)
            total += v[i]->def->n_compensate;
        x->comp_queue = wfo_calloc((size_t)total, sizeof(*x->comp_queue));
        for (int i = 0; i < n; i++)
            for (int k = 0; k < v[i]->def->n_compensate; k++)
                x->comp_queue[x->n_comp++] =
                    (struct comp_entry){wfo_strdup(v[i]->path), k, COMP_PENDING};
    }
    free(v);
    return n;
}

static char *comp_path(const struct step_state *orig, int k)
{
    struct wfo_buf b = WFO_BUF_INIT;
    if (orig->def->n_compensate == 1)
        wfo_buf_addf(&b, "%s:compensate", orig->path);
    else
        wfo_buf_addf(&b, "%s:compensate[%d]", orig->path, k);
    return wfo_buf_detach(&b, NULL);
}

static int retry_resume(struct fsm *f, struct execution *x, const char *from,
                        struct wfo_error *err);

/* Compensation is over: ok, or failed with error (borrowed). */
static void comp_finish(struct fsm *f, struct execution *x, json_t *error, const char *path)
{
    exec_comp_clear(x);
    json_decref(x->compensation);
    x->row_dirty = 1;
    if (error)
        x->compensation =
            json_pack("{s:s, s:O, s:s}", "status", "failed", "error", error, "step", path);
    else
        x->compensation = json_pack("{s:s}", "status", "completed");
    hist(f, x, "compensation.finished", NULL, json_deep_copy(x->compensation));
    char *owner = x->comp_owner;
    x->comp_owner = NULL;
    if (owner) {
        /* a `compensate` step: it completes, or fails with the error */
        struct step_state *st = exec_step(x, owner);
        free(owner);
        if (!st || st->status != SS_RUNNING)
            return;
        if (error)
            attempt_fail(f, x, st, json_deep_copy(error), 0);
        else
            step_complete(f, x, st, NULL, JUMP_NEXT);
        run_frames(f, x);
        return;
    }
    if (x->comp_then_retry) {
        /* a retry re-ran the compensations that had failed (fsm_retry) */
        x->comp_then_retry = 0;
        char *from = x->retry_from;
        x->retry_from = NULL;
        if (!error) {
            struct wfo_error err = WFO_ERROR_INIT;
            x->status = EX_FAILED; /* as it was before the retry */
            if (retry_resume(f, x, from, &err) == 0) {
                free(from);
                return;
            }
            x->status = EX_RUNNING;
        }
        free(from);
    }
    const char *type = x->comp_final == EX_CANCELLED ? "execution.cancelled" : "execution.failed";
    exec_end(f, x, (enum exec_status)x->comp_final, type, "error", json_incref(x->error));
}

/* Stops the saga for good because of error (taken): the steps in flight are
 * cancelled, compensation.status is failed, the execution ends with its
 * first error. */
static void comp_abort(struct fsm *f, struct execution *x, json_t *error)
{
    exec_stop_steps(f, x, 0);
    exec_comp_clear(x);
    free(x->comp_owner);
    x->comp_owner = NULL;
    json_decref(x->compensation);
    x->compensation = json_pack("{s:s, s:o}", "status", "failed", "error", error);
    x->row_dirty = 1;
    hist(f, x, "compensation.finished", NULL, json_deep_copy(x->compensation));
    const char *type = x->comp_final == EX_CANCELLED ? "execution.cancelled" : "execution.failed";
    exec_end(f, x, (enum exec_status)x->comp_final, type, "error", json_incref(x->error));
}

static int comp_state(const struct execution *x, size_t i)
{
    return (int)x->comp_queue[i].state;
}

static void comp_set_state(struct execution *x, size_t i, int state)
{
    x->comp_queue[i].state = (enum comp_state)state;
}

static struct step_state *comp_orig(struct execution *x, size_t i, int *k)
{
    *k = x->comp_queue[i].index;
    return exec_step(x, x->comp_queue[i].path);
}

/* May the compensations of a and b run at the same time? Only when they
 * are in different branches of one parallel step (SPEC 2.4: branches are
 * compensated concurrently, each in reverse). Everything else, foreach
 * iterations included, is undone one at a time in reverse order of
 * completion. */
static int comp_concurrent(const struct execution *x, const struct step_state *a,
                           const struct step_state *b)
{
    if (a == b)
        return 0;
    /* the child frames under the lowest frame both are in */
    for (int ca = a->frame; ca >= 0; ca = x->frames[ca].parent) {
        int pa = x->frames[ca].parent;
        for (int cb = b->frame; cb >= 0; cb = x->frames[cb].parent) {
            int pb = x->frames[cb].parent;
            if (pa < 0 || pa != pb || ca == cb)
                continue;
            const struct frame *fa = &x->frames[ca], *fb = &x->frames[cb];
            const struct step_state *owner =
                fa->owner ? exec_step((struct execution *)x, fa->owner) : NULL;
            return owner && owner->def->type == STEP_PARALLEL && fb->owner &&
                   strcmp(fa->owner, fb->owner) == 0 && fa->otoken == fb->otoken &&
                   fa->branch != fb->branch;
        }
    }
    return 0;
}

/* May entry i start: is every earlier entry that must be undone before it
 * done? */
static int comp_ready(struct execution *x, size_t i)
{
    int k;
    struct step_state *orig = comp_orig(x, i, &k);
    for (size_t j = 0; j < i; j++) {
        if (comp_state(x, j) == COMP_DONE)
            continue;
        int kj;
        struct step_state *oj = comp_orig(x, j, &kj);
        if (!orig || !oj || !comp_concurrent(x, oj, orig))
            return 0;
    }
    return 1;
}

/* Starts entry i; it may end at once (skipped, or a synchronous failure),
 * which comes back through comp_step_done. */
static void comp_start(struct fsm *f, struct execution *x, size_t i)
{
    int k;
    struct step_state *orig = comp_orig(x, i, &k);
    if (!orig || k >= orig->def->n_compensate) {
        comp_set_state(x, i, COMP_DONE);
        return;
    }
    comp_set_state(x, i, COMP_RUNNING);
    char *path = comp_path(orig, k);
    struct step_state *st = exec_step_reach(x, path, &orig->def->compensate[k], orig->frame, NULL);
    free(path);
    st->status = SS_SCHEDULED;
    st->attempts = 0;
    st->started_at = st->finished_at = 0;
    json_decref(st->output);
    st->output = NULL;
    json_decref(st->error);
    st->error = NULL;
    step_touch(f, x, st);
    if (st->def->f[F_IF]) {
        struct exec_ctx ctx;
        json_t *v = NULL;
        exec_ctx_init(&ctx, x, st->frame);
        json_t *err = eval_field(st->def, F_IF, &ctx.base, &v);
        exec_ctx_release(&ctx);
        int t = !err && truthy(v);
        json_decref(v);
        if (err) {
            st->attempts = 1;
            step_fail(f, x, st, err);
            return;
        }
        if (!t) {
            st->status = SS_SKIPPED;
            st->finished_at = f->now;
            hist(f, x, "step.skipped", st->path, NULL);
            comp_step_done(f, x, st, NULL);
            return;
        }
    }
    attempt_start(f, x, st); /* step_complete / step_fail of st come back */
}

/* Starts every compensation that may start now (C1), and finishes the saga
 * when nothing runs and nothing is left, or when one failed for good and
 * the others in flight have ended. Re-entered from the steps it starts
 * (they may end at once): the inner call only asks for another pass. */
static void comp_advance(struct fsm *f, struct execution *x)
{
    if (!x->comp_queue)
        return;
    if (x->comp_advancing) {
        x->comp_again = 1;
        return;
    }
    x->comp_advancing = 1;
    int failed = -1, running = 0, pending = 0;
    do {
        x->comp_again = 0;
        failed = -1;
        for (size_t i = 0; i < (size_t)x->n_comp && failed < 0; i++)
            if (comp_state(x, i) == COMP_FAILED)
                failed = (int)i;
        if (failed >= 0 || x->status == EX_PAUSED)
            break; /* nothing new starts; fsm_resume goes on */
        for (size_t i = 0; x->comp_queue && i < (size_t)x->n_comp; i++)
            if (comp_state(x, i) == COMP_PENDING && comp_ready(x, i))
                comp_start(f, x, i);
    } while (x->comp_again && x->comp_queue);
    x->comp_advancing = 0;
    if (!x->comp_queue)
        return;
    failed = -1;
    for (size_t i = 0; i < (size_t)x->n_comp; i++) {
        int s = comp_state(x, i);
        running += s == COMP_RUNNING;
        pending += s == COMP_PENDING;
        if (s == COMP_FAILED && failed < 0)
            failed = (int)i;
    }
    if (running)
        return;
    if (failed >= 0) {
        int k;
        struct step_state *orig = comp_orig(x, (size_t)failed, &k);
        char *path = orig ? comp_path(orig, k) : NULL;
        struct step_state *st = path ? exec_step(x, path) : NULL;
        json_t *e = st && st->error ? json_incref(st->error)
                                    : fsm_error("CompensationFailed", "compensation failed", NULL);
        comp_finish(f, x, e, path ? path : "");
        json_decref(e);
        free(path);
        return;
    }
    if (!pending)
        comp_finish(f, x, NULL, NULL);
}

/* A compensation step ended: ok, or failed for good with error (taken). */
static void comp_step_done(struct fsm *f, struct execution *x, struct step_state *st, json_t *error)
{
    if (!x->comp_queue) {
        json_decref(error);
        return;
    }
    size_t n = (size_t)x->n_comp;
    for (size_t i = 0; i < n; i++) {
        int k;
        struct step_state *orig = comp_orig(x, i, &k);
        if (!orig || comp_state(x, i) != COMP_RUNNING)
            continue;
        char *path = comp_path(orig, k);
        int same = strcmp(path, st->path) == 0;
        free(path);
        if (!same)
            continue;
        comp_set_state(x, i, error ? COMP_FAILED : COMP_DONE);
        if (!error && k == orig->def->n_compensate - 1) {
            orig->status = SS_COMPENSATED;
            step_touch(f, x, orig);
            hist(f, x, "step.compensated", orig->path, NULL);
        }
        break;
    }
    json_decref(error); /* the step keeps it: comp_advance reports it */
    touch(f, x);
    comp_advance(f, x);
}

static void step_complete(struct fsm *f, struct execution *x, struct step_state *st, json_t *raw,
                          int next);
static void step_fail(struct fsm *f, struct execution *x, struct step_state *st, json_t *error);

/* Fails the current attempt: retried when the policy allows, else the step
 * fails. Takes error. */
static void attempt_fail(struct fsm *f, struct execution *x, struct step_state *st, json_t *error,
                         int retryable)
{
    const struct def_step *d = st->def;
    if (d->timeout_ms) /* the attempt is over: its timeout timer goes (a retry arms its own) */
        timer_del(f, x, TK_TIMEOUT, st->path);
    const char *type = wfo_json_str(error, "type");
    /* a step without a retry of its own gets the server's default policy
     * (SPEC 6 `retry`, which replaces SPEC 2.3's defaults) */
    const struct def_retry *r = !d->has_retry                       ? NULL
                                : d->retry_own || !f->default_retry ? &d->retry
                                                                    : f->default_retry;
    /* never retried, by the step or by an enclosing block (SPEC 2.3) */
    int never = !retryable || !type || strcmp(type, "ExpressionError") == 0;
    for (char **nr = r ? r->non_retryable : NULL; !never && nr && *nr; nr++)
        if (strcmp(*nr, type) == 0)
            never = 1;
    st->no_retry = never;
    int can = !never && r && st->attempts < r->max_attempts;
    if (!can) {
        step_fail(f, x, st, error);
        return;
    }
    int64_t delay = fsm_retry_delay(r, st->attempts, f->rand());
    st->status = SS_SCHEDULED;
    json_decref(st->error);
    st->error = json_incref(error);
    step_touch(f, x, st);
    hist(f, x, "step.retrying", st->path,
         json_pack("{s:i, s:o, s:I}", "attempt", st->attempts, "error", error, "delay_ms",
                   (json_int_t)delay));
    timer_put(f, x, TK_RETRY, st->path, st->token, f->now + delay);
}

/* The evaluated fields an attempt of a runner step gets (new ref): its
 * input and its kind's run_fields ({input, request?, command?, stdin?,
 * env?, cwd?}); NULL with *error set (an ExpressionError, new ref) when one
 * fails. input is borrowed. */
static json_t *run_args(const struct def_step *d, struct expr_ctx *ctx, json_t *input,
                        json_t **error)
{
    unsigned fields = step_kinds[d->type].run_fields;
    json_t *args = obj1("input", json_incref(input));
    for (int fi = 0; fi < F__COUNT; fi++) {
        json_t *v = NULL;
        if (!(fields >> fi & 1))
            continue;
        if ((*error = eval_field(d, (enum step_field)fi, ctx, &v))) {
            json_decref(args);
            return NULL;
        }
        if (v)
            json_object_set_new(args, step_field_names[fi], v);
    }
    return args;
}

json_t *fsm_attempt_args(struct execution *x, struct step_state *st, json_t **error)
{
    struct exec_ctx ctx;
    json_t *input = NULL, *args = NULL;
    exec_ctx_init(&ctx, x, st->frame);
    if (!(*error = eval_field(st->def, F_INPUT, &ctx.base, &input))) {
        if (!input)
            input = json_incref(x->input);
        args = run_args(st->def, &ctx.base, input, error);
    }
    json_decref(input);
    exec_ctx_release(&ctx);
    return args;
}

/* Keeps what the attempt is given for the document (SPEC 3: a step's input
 * is what its last attempt was given). The execution's own input, the
 * default, is serialized once per execution. */
static void step_input_keep(struct execution *x, struct step_state *st, json_t *input)
{
    free(st->input_text);
    if (wfo_redact_active() && field_keeps_secrets(st->def, F_INPUT)) {
        /* an http or exec step is given its secrets; the document is not */
        json_t *r = wfo_redact_json(input);
        st->input_text = wfo_json_dumps(r);
        json_decref(r);
    } else if (input == x->input) {
        if (!x->input_text)
            x->input_text = wfo_json_dumps(x->input);
        st->input_text = wfo_strdup(x->input_text);
    } else {
        st->input_text = wfo_json_dumps(input);
    }
}

/* Starts an attempt of st: what every kind shares (a new token,
 * step.started, its input), then the start of its kind (kinds.c), which
 * runs a kind that ends at its start to its end. */
static void attempt_start(struct fsm *f, struct execution *x, struct step_state *st)
{
    const struct def_step *d = st->def;
    const struct step_kind *kd = &step_kinds[d->type];
    int64_t prev_token = st->attempts > 0 ? st->token : -1; /* a retry's previous attempt */
    st->attempts++;
    st->token = ++x->tick;
    st->status = SS_RUNNING;
    if (!st->started_at)
        st->started_at = f->now;
    step_touch(f, x, st);
    hist1(f, x, "step.started", st->path, "attempt", json_integer(st->attempts));

    struct exec_ctx ctx;
    json_t *input = NULL, *e = NULL;
    exec_ctx_init(&ctx, x, st->frame);
    if (!(e = eval_field(d, F_INPUT, &ctx.base, &input))) {
        if (!input)
            input = json_incref(x->input);
        step_input_keep(x, st, input);
        struct kind_attempt a = {&ctx.base, input, prev_token};
        if (kd->start) {
            e = kd->start(f, x, st, &a);
        } else {
            struct wfo_buf b = WFO_BUF_INIT;
            wfo_buf_addf(&b, "step type %s is not supported yet", kd->name);
            e = fsm_error("Unsupported", b.buf, NULL);
            wfo_buf_release(&b);
        }
    }
    json_decref(input);
    exec_ctx_release(&ctx);
    if (e)
        attempt_fail(f, x, st, e, 0);
}

/* --- the starts of the kinds (kinds.c): see kind_start_fn ---------------- */

json_t *fsm_start_set(struct fsm *f, struct execution *x, struct step_state *st,
                      const struct kind_attempt *a)
{
    json_t *v = NULL, *e;
    if ((e = eval_field(st->def, F_VARS, a->ctx, &v))) {
        json_decref(v);
        return e;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        return fsm_error("ExpressionError", "vars: must be an object", NULL);
    }
    /* copy on write: a context or an output may hold the old object
     * (expressions return parts of their context as they are) */
    if (x->vars->refcount > 1) {
        json_t *nv = json_copy(x->vars);
        json_decref(x->vars);
        x->vars = nv;
    }
    json_object_update(x->vars, v);
    step_complete(f, x, st, v, JUMP_NEXT);
    json_decref(v);
    return NULL;
}

json_t *fsm_start_switch(struct fsm *f, struct execution *x, struct step_state *st,
                         const struct kind_attempt *a)
{
    const struct def_step *d = st->def;
    int next = d->default_next;
    const char *chosen = NULL;
    for (int i = 0; i < d->n_cases; i++) {
        json_t *w = NULL;
        struct wfo_error err = WFO_ERROR_INIT;
        if (tmpl_eval_ctx(d->cases[i].when, a->ctx, &w, &err) < 0) {
            struct wfo_buf b = WFO_BUF_INIT;
            wfo_buf_addf(&b, "cases[%d].when: %s", i, err.message);
            json_t *e = fsm_error("ExpressionError", b.buf, NULL);
            wfo_buf_release(&b);
            return e;
        }
        int t = truthy(w);
        json_decref(w);
        if (t) {
            next = d->cases[i].next;
            break;
        }
    }
    const struct frame *fr = &x->frames[st->frame];
    if (next >= 0)
        chosen = fr->block->steps[next].name;
    else if (fr->pc + 1 < fr->block->n)
        chosen = fr->block->steps[fr->pc + 1].name;
    json_t *v = chosen ? json_string(chosen) : json_null();
    step_complete(f, x, st, v, next);
    json_decref(v);
    return NULL;
}

json_t *fsm_start_succeed(struct fsm *f, struct execution *x, struct step_state *st,
                          const struct kind_attempt *a)
{
    json_t *v = NULL, *e;
    if ((e = eval_field(st->def, F_OUTPUT, a->ctx, &v))) {
        json_decref(v);
        return e;
    }
    /* its output is the raw result (F_OUTPUT is not applied again) */
    step_complete(f, x, st, v ? v : a->input, JUMP_END);
    json_decref(v);
    return NULL;
}

json_t *fsm_start_fail(struct fsm *f, struct execution *x, struct step_state *st,
                       const struct kind_attempt *a)
{
    json_t *v = NULL, *e;
    if ((e = eval_field(st->def, F_ERROR, a->ctx, &v))) {
        json_decref(v);
        return e;
    }
    const char *type = wfo_json_str(v, "type");
    json_t *details = json_object_get(v, "details");
    json_t *err = fsm_error(type ? type : "Failed", wfo_json_str(v, "message"),
                            details ? json_incref(details) : NULL);
    st->status = SS_FAILED;
    st->finished_at = f->now;
    st->error = err;
    step_touch(f, x, st);
    hist(f, x, "step.failed", st->path, json_pack("{s:O}", "error", err));
    if (st->comp) {
        comp_step_done(f, x, st, json_deep_copy(err));
    } else {
        x->frames[st->frame].busy = 0;
        frame_fail(f, x, st->frame, json_deep_copy(err), st->path, 1);
    }
    json_decref(v);
    return NULL;
}

json_t *fsm_start_sleep(struct fsm *f, struct execution *x, struct step_state *st,
                        const struct kind_attempt *a)
{
    const struct def_step *d = st->def;
    int64_t due = f->now;
    json_t *v = NULL, *e = NULL;
    if ((e = eval_field(d, F_DURATION, a->ctx, &v)))
        goto out;
    if (v) {
        int64_t ms = -1;
        if (json_is_integer(v) && json_integer_value(v) >= 0)
            ms = json_integer_value(v);
        else if (json_is_string(v) && wfo_duration_parse(json_string_value(v), &ms) < 0)
            ms = -1;
        if (ms < 0) {
            e = fsm_error("ExpressionError", "duration: not a duration", NULL);
            goto out;
        }
        due += ms;
    } else {
        if ((e = eval_field(d, F_UNTIL, a->ctx, &v)))
            goto out;
        if (!json_is_string(v) || wfo_time_parse(json_string_value(v), &due) < 0) {
            e = fsm_error("ExpressionError", "until: not an RFC 3339 time", NULL);
            goto out;
        }
    }
    st->status = SS_WAITING;
    timer_put(f, x, TK_SLEEP, st->path, st->token, due);
    /* a sleep longer than its timeout fails with Timeout (one that ends
     * when the timeout does completes) */
    if (d->timeout_ms && f->now + d->timeout_ms < due)
        timer_put(f, x, TK_TIMEOUT, st->path, st->token, f->now + d->timeout_ms);
out:
    json_decref(v);
    return e;
}

/* The text of an event key: a string as it is, null as NULL (*out NULL),
 * any other value as its JSON text (a number 42 is the key "42"). */
static json_t *key_text(json_t *k)
{
    if (!k || json_is_null(k))
        return json_null();
    if (json_is_string(k))
        return json_incref(k);
    char *t = wfo_json_dumps(k);
    json_t *v = json_string(t ? t : "");
    free(t);
    return v;
}

/* await_event: the step waits (SS_WAITING) with what it waits for in
 * st->wait; the engine (core/events.c) looks for a match once the round
 * that says so (the "step.waiting" entry) is committed, and whenever an
 * event or a signal that could match arrives; fsm_wait_done completes it.
 * Its timeout raises EventTimeout (apply_timer). */
json_t *fsm_start_await(struct fsm *f, struct execution *x, struct step_state *st,
                        const struct kind_attempt *a)
{
    const struct def_step *d = st->def;
    json_t *w;
    if (d->signal) {
        w = json_pack("{s:s}", "signal", d->signal);
    } else {
        json_t *k = NULL, *e;
        if ((e = eval_field(d, F_KEY, a->ctx, &k))) {
            json_decref(k);
            return e;
        }
        w = json_pack("{s:s, s:o}", "event", d->event_type ? d->event_type : "", "key",
                      key_text(k));
        json_decref(k);
    }
    json_decref(st->wait);
    st->wait = w;
    st->status = SS_WAITING;
    if (d->timeout_ms)
        timer_put(f, x, TK_TIMEOUT, st->path, st->token, f->now + d->timeout_ms);
    hist(f, x, "step.waiting", st->path, json_deep_copy(w));
    return NULL;
}

/* emit: the event is a history entry "event.emitted" of this transition,
 * which the engine's batch also writes as an events row (round.c), so the
 * event and the step's completion are one transaction. Its result is the
 * event's id (a new UUIDv7). */
json_t *fsm_start_emit(struct fsm *f, struct execution *x, struct step_state *st,
                       const struct kind_attempt *a)
{
    json_t *v = NULL, *e;
    if ((e = eval_field(st->def, F_EVENT, a->ctx, &v))) {
        json_decref(v);
        return e;
    }
    const char *type = wfo_json_str(v, "type");
    if (!json_is_object(v) || !type || !*type) {
        json_decref(v);
        return fsm_error("ExpressionError", "event: must be an object with a non-empty type", NULL);
    }
    const char *source = wfo_json_str(v, "source");
    json_t *data = json_object_get(v, "data");
    char id[WFO_ID_SIZE], t[40], src[WFO_EXEC_ID_SIZE + 32];
    wfo_id_new(id);
    wfo_time_format(f->now, t, sizeof(t));
    snprintf(src, sizeof(src), "/v1/executions/%s", x->id);
    json_t *ev = json_pack("{s:s, s:s, s:o, s:s, s:O, s:s}", "id", id, "type", type, "key",
                           key_text(json_object_get(v, "key")), "source", source ? source : src,
                           "data", data ? data : json_null(), "time", t);
    json_decref(v);
    hist(f, x, "event.emitted", st->path, ev);
    json_t *out = json_string(id);
    step_complete(f, x, st, out, JUMP_NEXT);
    json_decref(out);
    return NULL;
}

/* A kind whose attempt a runner or a worker does (ACT_RUN): its fields
 * evaluated, its timers armed. */
json_t *fsm_start_run(struct fsm *f, struct execution *x, struct step_state *st,
                      const struct kind_attempt *a)
{
    const struct def_step *d = st->def;
    json_t *e = NULL;
    json_t *args = run_args(d, a->ctx, a->input, &e);
    if (!args)
        return e;
    if (d->timeout_ms)
        timer_put(f, x, TK_TIMEOUT, st->path, st->token, f->now + d->timeout_ms);
    if (d->schedule_timeout_ms) {
        st->picked = 0;
        timer_put(f, x, TK_SCHEDULE, st->path, st->token, f->now + d->schedule_timeout_ms);
    }
    act(f, ACT_RUN, x, st, args);
    return NULL;
}

json_t *fsm_start_parallel(struct fsm *f, struct execution *x, struct step_state *st,
                           const struct kind_attempt *a)
{
    const struct def_step *d = st->def;
    int kept = -1, opened = 0;
    if (d->timeout_ms) /* the whole block's attempt (apply_timer) */
        timer_put(f, x, TK_TIMEOUT, st->path, st->token, f->now + d->timeout_ms);
    for (int i = 0; i < d->n_branches; i++) {
        int k = block_keep(f, x, st, a->prev_token, i, NULL);
        if (k >= 0) {
            kept = k;
            continue;
        }
        struct wfo_buf b = WFO_BUF_INIT;
        wfo_buf_addf(&b, "%s/%s/", st->path, d->branches[i].name);
        struct frame *fr = exec_frame_add(x, st->frame, st->path, i, &d->branches[i].block, b.buf);
        fr->otoken = st->token;
        wfo_buf_release(&b);
        opened++;
    }
    /* a retry that kept every branch (their attempts, asked to stop at a
     * timeout, succeeded after all), or one branch of a mode: any, is
     * done now: no frame of its will finish to say so */
    if (kept >= 0 && (!opened || d->mode_any))
        block_progress(f, x, st, kept);
    return NULL;
}

json_t *fsm_start_foreach(struct fsm *f, struct execution *x, struct step_state *st,
                          const struct kind_attempt *a)
{
    json_t *v = NULL, *e;
    if ((e = eval_field(st->def, F_ITEMS, a->ctx, &v))) {
        json_decref(v);
        return e;
    }
    if (!json_is_array(v)) {
        json_decref(v);
        return fsm_error("ExpressionError", "items: must be an array", NULL);
    }
    json_decref(st->items);
    st->items = json_incref(v);
    st->next_item = 0;
    for (size_t i = 0; a->prev_token >= 0 && i < json_array_size(v); i++)
        block_keep(f, x, st, a->prev_token, (int)i, json_array_get(v, i));
    if (json_array_size(v) == 0) {
        json_t *empty = json_array();
        step_complete(f, x, st, empty, JUMP_NEXT);
        json_decref(empty);
    } else {
        if (st->def->timeout_ms) /* the whole block's attempt (apply_timer) */
            timer_put(f, x, TK_TIMEOUT, st->path, st->token, f->now + st->def->timeout_ms);
        foreach_open(f, x, st);
        if (a->prev_token >= 0)
            block_progress(f, x, st, -1); /* every iteration was kept */
    }
    json_decref(v);
    return NULL;
}

/* The n-th candidate for fsm_child_id (the first is the id of wfo before
 * children were placed in their parent's shard). */
static void child_id_try(const char *parent_id, const char *path, int64_t token, int n,
                         char out[WFO_ID_SIZE])
{
    struct wfo_buf b = WFO_BUF_INIT;
    unsigned char h[WFO_SHA256_SIZE];
    wfo_buf_addf(&b, "wfo-child\n%s\n%s\n%lld", parent_id, path, (long long)token);
    if (n)
        wfo_buf_addf(&b, "\n%d", n);
    wfo_sha256(b.buf, b.len, h);
    wfo_buf_release(&b);
    h[6] = (unsigned char)((h[6] & 0x0f) | 0x80); /* version 8: made by the application */
    h[8] = (unsigned char)((h[8] & 0x3f) | 0x80); /* the RFC 9562 variant */
    static const char hex[] = "0123456789abcdef";
    int o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[h[i] >> 4];
        out[o++] = hex[h[i] & 15];
    }
    out[o] = 0;
}

void fsm_child_id(const char *parent_id, const char *path, int64_t token, char out[WFO_ID_SIZE])
{
    int shard = store_shard_of(parent_id);
    for (int n = 0;; n++) {
        child_id_try(parent_id, path, token, n, out);
        if (store_shard_of(out) == shard)
            return;
    }
}

/* A `workflow` step: its attempt names its child (derived from the
 * attempt, so that a start repeated for one attempt finds the same
 * child) and asks the engine to start it in this round (ACT_CHILD), so
 * that the step's start and the child's are one commit. The attempt ends
 * when the child does (KE_CHILD: the engine gives its outcome to
 * fsm_result), or at its timeout, whose ACT_CANCEL cancels the child. */
json_t *fsm_start_workflow(struct fsm *f, struct execution *x, struct step_state *st,
                           const struct kind_attempt *a)
{
    const struct def_step *d = st->def;
    char id[WFO_ID_SIZE];
    fsm_child_id(x->id, st->path, st->token, id);
    free(st->child);
    st->child = wfo_strdup(id);
    step_touch(f, x, st);
    if (d->timeout_ms)
        timer_put(f, x, TK_TIMEOUT, st->path, st->token, f->now + d->timeout_ms);
    hist(f, x, "child.started", st->path,
         json_pack("{s:s, s:s}", "child", id, "workflow", d->workflow));
    act(f, ACT_CHILD, x, st,
        json_pack("{s:s, s:s, s:i, s:O}", "id", id, "workflow", d->workflow, "version",
                  d->workflow_version, "input", a->input));
    return NULL;
}

json_t *fsm_start_compensate(struct fsm *f, struct execution *x, struct step_state *st,
                             const struct kind_attempt *a)
{
    if (x->comp_queue || !comp_build(x)) {
        step_complete(f, x, st, NULL, JUMP_NEXT);
        return NULL;
    }
    free(x->comp_owner);
    x->comp_owner = wfo_strdup(st->path);
    json_decref(x->compensation);
    x->compensation = json_pack("{s:s}", "status", "running");
    x->row_dirty = 1;
    hist(f, x, "compensation.started", st->path,
         json_pack("{s:I}", "steps", (json_int_t)x->n_comp));
    comp_advance(f, x);
    return NULL;
}

static void step_complete(struct fsm *f, struct execution *x, struct step_state *st, json_t *raw,
                          int next)
{
    const struct def_step *d = st->def;
    json_t *out = NULL;
    if (d->f[F_OUTPUT] && d->type != STEP_SUCCEED) {
        struct exec_ctx ctx;
        exec_ctx_init(&ctx, x, st->frame);
        ctx.has_result = 1;
        ctx.result = raw;
        json_t *e = eval_field(d, F_OUTPUT, &ctx.base, &out);
        exec_ctx_release(&ctx);
        if (e) {
            attempt_fail(f, x, st, e, 0);
            return;
        }
    } else {
        out = wfo_json_ref(raw);
    }
    if (d->timeout_ms) /* every step's timeout timer ends with it (apply_timer) */
        timer_del(f, x, TK_TIMEOUT, st->path);
    struct frame *fr = &x->frames[st->frame];
    st->status = SS_COMPLETED;
    st->finished_at = f->now;
    st->cseq = ++x->cseq;
    json_decref(st->output);
    st->output = out;
    json_decref(st->error);
    st->error = NULL;
    step_touch(f, x, st);
    hist1(f, x, "step.completed", st->path, "output", json_incref(out));
    if (st->comp) {
        comp_step_done(f, x, st, NULL);
        return;
    }
    free(fr->last);
    fr->last = wfo_strdup(st->path);
    fr->busy = 0;
    error_scope_end(x, st);
    if (d->type == STEP_SUCCEED) {
        exec_complete(f, x, out); /* ends the workflow, from any block (SPEC 2.2) */
        return;
    }
    frame_next(f, x, fr, d, next);
}

/* The step's last attempt failed: catch, or fail its frame. Takes error. */
static void step_fail(struct fsm *f, struct execution *x, struct step_state *st, json_t *error)
{
    const struct def_step *d = st->def;
    const char *type = wfo_json_str(error, "type");
    st->finished_at = f->now;
    json_decref(st->error);
    st->error = json_incref(error);
    if (st->comp) {
        st->status = SS_FAILED;
        step_touch(f, x, st);
        hist(f, x, "step.failed", st->path, json_pack("{s:O}", "error", error));
        comp_step_done(f, x, st, error);
        return;
    }
    struct frame *fr = &x->frames[st->frame];
    fr->busy = 0;
    for (int i = 0; i < d->n_catches; i++) {
        for (char **t = d->catches[i].errors; *t; t++) {
            if (strcmp(*t, "*") == 0 || (type && strcmp(*t, type) == 0)) {
                st->status = SS_CAUGHT;
                step_touch(f, x, st);
                hist(f, x, "step.caught", st->path,
                     json_pack("{s:O, s:s}", "error", error, "next",
                               fr->block->steps[d->catches[i].next].name));
                json_decref(x->error_ctx);
                x->error_ctx = error;
                free(x->error_step);
                x->error_step = step_path(fr, &fr->block->steps[d->catches[i].next]);
                free(x->fail_origin);
                x->fail_origin = NULL;
                fr->pc = d->catches[i].next;
                return;
            }
        }
    }
    st->status = SS_FAILED;
    step_touch(f, x, st);
    hist(f, x, "step.failed", st->path, json_pack("{s:O}", "error", error));
    json_t *e = json_deep_copy(error);
    json_decref(error);
    frame_fail(f, x, st->frame, e, st->path, !st->no_retry);
}

/* Enters the step at fr's pc. */
static void step_enter(struct fsm *f, struct execution *x, struct frame *fr)
{
    const struct def_step *d = &fr->block->steps[fr->pc];
    char *path = step_path(fr, d);
    if (++x->transitions > f->transition_limit) {
        struct wfo_buf b = WFO_BUF_INIT;
        wfo_buf_addf(&b, "execution exceeded %lld step transitions",
                     (long long)f->transition_limit);
        json_t *e = fsm_error("TransitionLimitExceeded", b.buf, NULL);
        wfo_buf_release(&b);
        exec_fail(f, x, e, path);
        free(path);
        return;
    }
    int fi = (int)(fr - x->frames);
    struct step_state *st = exec_step_reach(x, path, d, fi, NULL);
    free(path);
    if (st->stopping) { /* entered again: the attempt asked to stop no longer counts */
        act(f, ACT_CANCEL, x, st, NULL);
        st->stopping = 0;
        timer_del(f, x, TK_TIMEOUT, st->path);
    }
    st->status = SS_SCHEDULED;
    st->attempts = 0;
    st->started_at = 0;
    st->finished_at = 0;
    st->eseq = ++x->eseq;
    json_decref(st->output);
    st->output = NULL;
    json_decref(st->error);
    st->error = NULL;
    fr->busy = 1;
    step_touch(f, x, st);
    if (d->f[F_IF]) {
        struct exec_ctx ctx;
        json_t *v = NULL;
        exec_ctx_init(&ctx, x, fi);
        json_t *e = eval_field(d, F_IF, &ctx.base, &v);
        exec_ctx_release(&ctx);
        if (e) {
            st->attempts = 1;
            st->started_at = f->now;
            step_fail(f, x, st, e);
            return;
        }
        int t = truthy(v);
        json_decref(v);
        if (!t) {
            st->status = SS_SKIPPED;
            st->finished_at = f->now;
            step_touch(f, x, st);
            error_scope_end(x, st);
            hist(f, x, "step.skipped", st->path, NULL);
            fr->busy = 0;
            fr->pc = fr->pc + 1 < fr->block->n ? fr->pc + 1 : -1;
            return;
        }
    }
    attempt_start(f, x, st);
}

/* Runs every active frame until each waits or the execution ends. Paused,
 * it starts no step (SPEC 4), but a frame whose last step completed still
 * ends: a block whose branches are done completes, and so does the
 * execution whose last step completed while it was paused. */
static void run_frames(struct fsm *f, struct execution *x)
{
    int progress = 1;
#define LIVE(x) ((x)->status == EX_RUNNING || (x)->status == EX_PAUSED)
    while (progress && LIVE(x)) {
        progress = 0;
        for (int i = 0; i < x->n_frames && LIVE(x); i++) {
            struct frame *fr = &x->frames[i];
            if (fr->status != FR_ACTIVE || fr->busy || (x->status == EX_PAUSED && fr->pc >= 0))
                continue;
            if (fr->pc < 0) {
                fr->status = FR_DONE;
                touch(f, x);
                if (fr->parent < 0) {
                    struct step_state *last = fr->last ? exec_step(x, fr->last) : NULL;
                    exec_complete(f, x, last ? last->output : NULL);
                } else {
                    struct step_state *owner = exec_step(x, fr->owner);
                    if (owner && owner->token == fr->otoken)
                        block_progress(f, x, owner, i);
                }
                progress = 1;
                continue;
            }
            step_enter(f, x, fr);
            progress = 1;
        }
    }
#undef LIVE
}

static void apply_start(struct fsm *f, struct execution *x)
{
    if (!x->n_frames)
        exec_frame_add(x, -1, NULL, 0, &x->def->steps, "");
    hist1(f, x, "execution.started", NULL, "input", json_incref(x->input));
    if (x->def->timeout_ms)
        timer_put(f, x, TK_WF_TIMEOUT, NULL, 0, f->now + x->def->timeout_ms);
    run_frames(f, x);
}

/* The attempt of st, asked to stop (step_stop), reported after all (C2):
 * a success counts (the step is completed, and compensated with the
 * others); a failure leaves it cancelled. error is borrowed. */
static void step_late_result(struct fsm *f, struct execution *x, struct step_state *st, int ok,
                             json_t *output, json_t *error)
{
    st->stopping = 0;
    timer_del(f, x, TK_TIMEOUT, st->path);
    if (ok) {
        json_t *out = NULL;
        if (st->def->f[F_OUTPUT]) {
            struct exec_ctx ctx;
            exec_ctx_init(&ctx, x, st->frame);
            ctx.has_result = 1;
            ctx.result = output;
            json_t *e = eval_field(st->def, F_OUTPUT, &ctx.base, &out);
            exec_ctx_release(&ctx);
            if (e) { /* its raw result, rather than losing what happened */
                json_decref(e);
                out = wfo_json_ref(output);
            }
        } else {
            out = wfo_json_ref(output);
        }
        st->status = SS_COMPLETED;
        st->cseq = ++x->cseq;
        st->finished_at = f->now;
        json_decref(st->output);
        st->output = out;
        json_decref(st->error);
        st->error = NULL;
        hist(f, x, "step.completed", st->path,
             json_pack("{s:O, s:b}", "output", out ? out : json_null(), "late", 1));
        /* the last step of a branch or iteration of a block that will be
         * retried: that branch is done, and the retry keeps it
         * (block_keep; SPEC 2.3, completed ones are not run twice) */
        struct frame *fr = &x->frames[st->frame];
        struct step_state *owner = fr->owner ? exec_step(x, fr->owner) : NULL;
        if (fr->status == FR_CANCELLED && owner && owner->status == SS_SCHEDULED &&
            fr->otoken == owner->token && fr->pc >= 0 && &fr->block->steps[fr->pc] == st->def &&
            st->def->next == JUMP_NEXT && fr->pc + 1 >= fr->block->n) {
            fr->status = FR_DONE;
            fr->pc = -1;
            fr->busy = 0;
            free(fr->last);
            fr->last = wfo_strdup(st->path);
            touch(f, x);
        }
    } else {
        const char *type = wfo_json_str(error, "type");
        /* a lease that ran out says nothing of what the worker did */
        st->unknown = type && strcmp(type, "HeartbeatTimeout") == 0;
        if (st->unknown)
            st->cseq = ++x->cseq;
        hist(f, x, "step.stopped", st->path,
             json_pack("{s:O}", "error", error ? error : json_null()));
    }
    step_touch(f, x, st);
    drain_check(f, x);
    retries_drained(f, x);
}

static int apply_result(struct fsm *f, struct execution *x, const char *path, int64_t token, int ok,
                        json_t *output, json_t *error, int retryable)
{
    struct step_state *st = exec_step(x, path);
    if (st && st->stopping && st->token == token && !EX_ENDED(x->status)) {
        step_late_result(f, x, st, ok, output, error);
        run_frames(f, x);
        return 0;
    }
    if (!st || st->token != token || st->status != SS_RUNNING || EX_ENDED(x->status))
        return WFO_ESTATE; /* I1 */
    if (st->def->schedule_timeout_ms && !st->picked)
        timer_del(f, x, TK_SCHEDULE, st->path);
    if (ok)
        step_complete(f, x, st, output, JUMP_NEXT);
    else
        attempt_fail(f, x, st, json_incref(error), retryable);
    run_frames(f, x);
    return 0;
}

static void apply_task_picked(struct fsm *f, struct execution *x, const char *path, int64_t token,
                              const char *worker)
{
    struct step_state *st = exec_step(x, path);
    if (!st || st->token != token || st->status != SS_RUNNING || st->picked)
        return;
    st->picked = 1;
    step_touch(f, x, st);
    timer_del(f, x, TK_SCHEDULE, st->path);
    hist(f, x, "step.picked", st->path,
         json_pack("{s:i, s:s}", "attempt", st->attempts, "worker", worker ? worker : ""));
}

static void apply_timer(struct fsm *f, struct execution *x, enum timer_kind kind, const char *path,
                        int64_t token)
{
    if (EX_ENDED(x->status))
        return;
    if (kind == TK_WF_TIMEOUT) {
        char msg[96];
        snprintf(msg, sizeof(msg), "workflow ran past its timeout");
        exec_fail(f, x, fsm_error("WorkflowTimeout", msg, NULL), NULL);
        return;
    }
    struct step_state *st = path ? exec_step(x, path) : NULL;
    if (!st || st->token != token) /* I1 */
        return;
    switch (kind) {
    case TK_RETRY:
        if (st->status != SS_SCHEDULED)
            return;
        /* paused: fsm_resume starts it; a block whose attempts asked to
         * stop are still out waits for them (C2: a success among them
         * counts, and its branch is not run again), retries_drained */
        if (x->status == EX_PAUSED || block_stopping(x, st)) {
            st->retry_due = 1;
            step_touch(f, x, st);
            return;
        }
        attempt_start(f, x, st);
        break;
    case TK_TIMEOUT: {
        if (st->stopping) { /* it never reported: given up (C2) */
            st->stopping = 0;
            st->unknown = 1;
            st->cseq = ++x->cseq;
            act(f, ACT_CANCEL, x, st, NULL);
            step_touch(f, x, st);
            hist(f, x, "step.stopped", st->path,
                 obj1("error", fsm_error("Timeout",
                                         "the attempt did not report after it was asked "
                                         "to stop",
                                         NULL)));
            drain_check(f, x);
            retries_drained(f, x);
            break;
        }
        if (st->status == SS_WAITING && st->wait) { /* await_event */
            char msg[96];
            char dur[32];
            wfo_duration_format(st->def->timeout_ms, dur, sizeof(dur));
            snprintf(msg, sizeof(msg), "no %s came within %s",
                     json_object_get(st->wait, "signal") ? "signal" : "event", dur);
            json_decref(st->wait);
            st->wait = NULL;
            st->status = SS_RUNNING;
            attempt_fail(f, x, st, fsm_error("EventTimeout", msg, NULL), 1);
            break;
        }
        if (!st->def->timeout_ms) /* a timer it never armed */
            return;
        if (st->status == SS_WAITING && st->def->type == STEP_SLEEP) {
            timer_del(f, x, TK_SLEEP, st->path);
            st->status = SS_RUNNING;
        }
        if (st->status != SS_RUNNING)
            return;
        if (st->def->type == STEP_PARALLEL || st->def->type == STEP_FOREACH)
            block_cancel(f, x, st); /* its attempts in flight are asked to stop (C2) */
        else
            act(f, ACT_CANCEL, x, st, NULL);
        char msg[96];
        char dur[32];
        wfo_duration_format(st->def->timeout_ms, dur, sizeof(dur));
        snprintf(msg, sizeof(msg), "attempt %d ran past its timeout of %s", st->attempts, dur);
        attempt_fail(f, x, st, fsm_error("Timeout", msg, NULL), 1);
        break;
    }
    case TK_SCHEDULE: {
        if (st->status != SS_RUNNING || st->picked)
            return;
        act(f, ACT_CANCEL, x, st, NULL);
        char msg[96];
        char dur[32];
        wfo_duration_format(st->def->schedule_timeout_ms, dur, sizeof(dur));
        snprintf(msg, sizeof(msg), "no worker took attempt %d within %s", st->attempts, dur);
        attempt_fail(f, x, st, fsm_error("ScheduleTimeout", msg, NULL), 1);
        break;
    }
    case TK_SLEEP:
        if (st->status != SS_WAITING)
            return;
        st->status = SS_RUNNING;
        step_complete(f, x, st, NULL, JUMP_NEXT);
        break;
    default:
        return;
    }
    run_frames(f, x);
}

static int apply_wait_done(struct fsm *f, struct execution *x, const char *path, int64_t token,
                           json_t *result, const char *consumed)
{
    struct step_state *st = exec_step(x, path);
    if (!st || st->token != token || st->status != SS_WAITING || !st->wait || EX_ENDED(x->status))
        return WFO_ESTATE; /* I1 */
    hist(f, x, consumed, st->path, json_incref(result));
    json_decref(st->wait);
    st->wait = NULL;
    st->status = SS_RUNNING;
    /* .event from here on, its own output expression included (SPEC 2.1) */
    json_decref(x->event_ctx);
    x->event_ctx = json_incref(result);
    step_complete(f, x, st, result, JUMP_NEXT);
    run_frames(f, x);
    return 0;
}

static int apply_cancel(struct fsm *f, struct execution *x, const char *reason, int compensate)
{
    if (EX_ENDED(x->status))
        return WFO_ESTATE;
    if (x->comp_queue || x->draining)
        return WFO_ESTATE; /* already compensating, or waiting to */
    json_t *e = fsm_error("Cancelled", reason && *reason ? reason : "cancelled", NULL);
    free(x->fail_origin);
    x->fail_origin = NULL;
    exec_fail_as(f, x, e, NULL, EX_CANCELLED, compensate);
    return 0;
}

static int apply_terminate(struct fsm *f, struct execution *x, const char *reason)
{
    if (EX_ENDED(x->status))
        return WFO_ESTATE;
    json_t *e = fsm_error("Terminated", reason && *reason ? reason : "terminated", NULL);
    json_object_set_new(e, "step", json_null());
    if (x->comp_queue) {
        exec_comp_clear(x);
        free(x->comp_owner);
        x->comp_owner = NULL;
        json_decref(x->compensation);
        x->compensation = json_pack("{s:s, s:O}", "status", "failed", "error", e);
    }
    json_decref(x->error);
    x->error = e;
    x->row_dirty = 1;
    x->draining = 0; /* nothing stopped is waited for: late reports are refused */
    exec_stop_steps(f, x, 0);
    exec_end(f, x, EX_TERMINATED, "execution.terminated", "error", json_incref(e));
    return 0;
}

static int apply_pause(struct fsm *f, struct execution *x)
{
    if (x->status != EX_RUNNING)
        return WFO_ESTATE;
    x->status = EX_PAUSED;
    x->row_dirty = 1;
    hist(f, x, "execution.paused", NULL, NULL);
    return 0;
}

static int apply_resume(struct fsm *f, struct execution *x)
{
    if (x->status != EX_PAUSED)
        return WFO_ESTATE;
    x->status = EX_RUNNING;
    x->row_dirty = 1;
    hist(f, x, "execution.resumed", NULL, NULL);
    if (x->comp_queue) {
        /* an entry marked running whose step is not in flight never
         * started (a store written before entries had states, paused
         * before its turn): it starts now */
        for (size_t i = 0; x->comp_queue && i < (size_t)x->n_comp; i++) {
            int k;
            struct step_state *orig = comp_orig(x, i, &k);
            if (!orig || comp_state(x, i) != COMP_RUNNING || k >= orig->def->n_compensate)
                continue;
            char *path = comp_path(orig, k);
            struct step_state *cur = exec_step(x, path);
            free(path);
            if (!cur || (cur->status != SS_RUNNING && cur->status != SS_SCHEDULED &&
                         cur->status != SS_WAITING))
                comp_set_state(x, i, COMP_PENDING);
        }
        comp_advance(f, x);
    }
    retries_drained(f, x); /* retries that came due while paused */
    run_frames(f, x);
    return 0;
}

/* A block step that a retry of the execution runs again in the same
 * attempt (reopen_at, frame_reopen) gets its whole timeout again, counted
 * from now, as the workflow's timeout is (retry_go). */
static void block_timeout_again(struct fsm *f, struct execution *x, struct step_state *owner)
{
    if (owner->def->timeout_ms)
        timer_put(f, x, TK_TIMEOUT, owner->path, owner->token, f->now + owner->def->timeout_ms);
}

/* Reopens frame fid, cancelled when the execution failed with no failing
 * step of its own (WorkflowTimeout): its step in flight then is entered
 * again, or, for a block, resumed with the frames it had open. The first
 * step entered again goes to *first. */
static void frame_reopen(struct fsm *f, struct execution *x, int fid, char **first)
{
    struct frame *fr = &x->frames[fid];
    fr->status = FR_ACTIVE;
    fr->busy = 0;
    touch(f, x);
    if (fr->pc < 0)
        return;
    char *path = step_path(fr, &fr->block->steps[fr->pc]);
    struct step_state *st = exec_step(x, path);
    free(path);
    if (!st || st->status != SS_CANCELLED)
        return;
    int open = 0;
    for (int i = 0; i < x->n_frames; i++)
        open += frame_of(&x->frames[i], st) && x->frames[i].status == FR_CANCELLED;
    if (!open) { /* a plain step: entered again */
        if (!*first)
            *first = wfo_strdup(st->path);
        return;
    }
    st->status = SS_RUNNING;
    st->finished_at = 0;
    step_touch(f, x, st);
    block_timeout_again(f, x, st);
    fr->busy = 1;
    for (int i = 0; i < x->n_frames; i++)
        if (frame_of(&x->frames[i], st) && x->frames[i].status == FR_CANCELLED)
            frame_reopen(f, x, i, first);
}

/* Retries an execution that failed with no failing step (WorkflowTimeout):
 * every frame that was running goes on from the step it was at. */
/* The execution runs again from `step` (frames already reopened): its
 * error cleared, the retry in the history, the workflow timeout counted
 * from now (SPEC 2.4). */
static void retry_go(struct fsm *f, struct execution *x, const char *step)
{
    x->status = EX_RUNNING;
    x->finished_at = 0;
    json_decref(x->error);
    x->error = NULL;
    x->row_dirty = 1;
    json_decref(x->error_ctx);
    x->error_ctx = NULL;
    free(x->error_step);
    x->error_step = NULL;
    free(x->fail_origin);
    x->fail_origin = NULL;
    x->transitions = 0; /* a new pass gets the whole cap (SPEC 2.2) */
    /* the step it resumes from, in the entry's step too (the path of its
     * state, which lives as long as the entry: step may not) */
    struct step_state *from = step ? exec_step(x, step) : NULL;
    hist(f, x, "execution.retried", from ? from->path : NULL,
         obj1("step", step ? json_string(step) : json_null()));
    if (x->def->timeout_ms)
        timer_put(f, x, TK_WF_TIMEOUT, NULL, 0, f->now + x->def->timeout_ms);
    run_frames(f, x);
}

static int retry_stopped(struct fsm *f, struct execution *x, struct wfo_error *err)
{
    if (!x->n_frames || x->frames[0].status != FR_CANCELLED)
        /* every step ran: what failed is the workflow's own output */
        return wfo_error_set(err, WFO_ESTATE,
                             "execution '%s' failed after its last step (%s): nothing to run "
                             "again; retry it from a step",
                             x->id,
                             wfo_json_str(x->error, "message") ? wfo_json_str(x->error, "message")
                                                               : "no message");
    char *first = NULL;
    frame_reopen(f, x, 0, &first);
    retry_go(f, x, first);
    free(first);
    return 0;
}

/* Reopens the frames from st's up to the top so that st is entered again:
 * st's frame at st; each enclosing block step running again in the same
 * attempt, its frames that completed keeping their outputs and those that
 * failed or were cancelled going on from the step they were at. */
static void reopen_at(struct fsm *f, struct execution *x, struct step_state *st, int pc)
{
    struct frame *fr = &x->frames[st->frame];
    fr->status = FR_ACTIVE;
    fr->pc = pc;
    fr->busy = 0;
    for (int i = st->frame; x->frames[i].parent >= 0; i = x->frames[i].parent) {
        struct frame *c = &x->frames[i];
        struct step_state *owner = c->owner ? exec_step(x, c->owner) : NULL;
        if (!owner)
            break;
        owner->status = SS_RUNNING;
        owner->finished_at = 0;
        step_touch(f, x, owner);
        block_timeout_again(f, x, owner);
        for (int k = 0; k < x->n_frames; k++) {
            struct frame *sib = &x->frames[k];
            if (k != i && frame_of(sib, owner) &&
                (sib->status == FR_CANCELLED || sib->status == FR_FAILED)) {
                sib->status = FR_ACTIVE;
                sib->busy = 0;
            }
        }
        struct frame *p = &x->frames[c->parent];
        p->status = FR_ACTIVE;
        p->pc = def_block_find(p->block, owner->def->name);
        p->busy = 1; /* the block step runs: it is not entered again */
    }
    touch(f, x);
}

/* The step a retry resumes from (SPEC 2.4), or NULL with *err set:
 * - from: that step, which the execution must have reached;
 * - else, when steps were compensated, the earliest of them (by completion)
 *   or, when it is inside a block, the top-level block that holds it: what
 *   was undone runs again as a new pass;
 * - else the step whose failure ended the execution. */
static struct step_state *retry_target(struct execution *x, const char *from, int *new_pass,
                                       struct wfo_error *err)
{
    *new_pass = 0;
    if (from) {
        struct step_state *st = exec_step(x, from);
        if (!st || st->comp || st->frame < 0 || st->frame >= x->n_frames) {
            wfo_error_set(err, WFO_EINVAL, "from: execution '%s' never reached step '%s'", x->id,
                          from);
            return NULL;
        }
        for (int i = 0; i < x->n_steps; i++) {
            struct step_state *o = x->steps[i];
            if (o->status == SS_RUNNING || o->status == SS_WAITING) {
                wfo_error_set(err, WFO_EINVAL,
                              "from: step '%s' is in a block that still runs ('%s')", from,
                              o->path);
                return NULL;
            }
        }
        *new_pass = x->frames[st->frame].parent < 0;
        return st;
    }
    struct step_state *earliest = NULL;
    for (int i = 0; i < x->n_steps; i++) {
        struct step_state *o = x->steps[i];
        if (o->status == SS_COMPENSATED && !o->comp && (!earliest || o->cseq < earliest->cseq))
            earliest = o;
    }
    if (earliest) {
        int fr = earliest->frame;
        while (fr >= 0 && x->frames[fr].parent >= 0) {
            struct step_state *owner = exec_step(x, x->frames[fr].owner);
            if (!owner)
                break;
            earliest = owner;
            fr = owner->frame;
        }
        *new_pass = 1;
        return earliest;
    }
    const char *path = wfo_json_str(x->error, "step");
    struct step_state *st = path ? exec_step(x, path) : NULL;
    if (!st || st->status != SS_FAILED) {
        wfo_error_set(err, WFO_ESTATE, "execution '%s' is failed and has no step to resume from",
                      x->id);
        return NULL;
    }
    return st;
}

static int by_eseq(const void *a, const void *b)
{
    const struct step_state *x = *(const struct step_state *const *)a;
    const struct step_state *y = *(const struct step_state *const *)b;
    return x->eseq < y->eseq ? -1 : x->eseq > y->eseq;
}

/* A new pass from st (SPEC 2.4, "like Temporal's reset"): .vars go back to
 * what they were when st was last entered, the outputs of the `set` steps
 * entered before it merged in the order they were entered (a `set` step's
 * output is the values it assigned). What a `set` step that ran both before
 * and after that entry (a loop) assigned the first time is not kept: only
 * its last output is. Nothing changes for steps entered before wfo kept
 * their order (eseq 0). */
static void vars_rewind(struct execution *x, const struct step_state *st)
{
    if (st->eseq <= 0)
        return;
    struct step_state **v = wfo_calloc((size_t)x->n_steps + 1, sizeof(*v));
    int n = 0;
    for (int i = 0; i < x->n_steps; i++) {
        struct step_state *o = x->steps[i];
        /* completed, or completed and since undone (a `from` after a
         * compensation: the steps before it keep what they assigned) */
        if (!o->comp && o->def && o->def->type == STEP_SET &&
            (o->status == SS_COMPLETED || o->status == SS_COMPENSATED) && o->eseq > 0 &&
            o->eseq < st->eseq)
            v[n++] = o;
    }
    qsort(v, (size_t)n, sizeof(*v), by_eseq);
    json_t *vars = json_object();
    for (int i = 0; i < n; i++)
        if (json_is_object(v[i]->output))
            json_object_update(vars, v[i]->output);
    free(v);
    json_decref(x->vars);
    x->vars = vars;
    x->row_dirty = 1;
}

/* Resumes a failed execution from `from` or the step retry_target picks. */
static int retry_resume(struct fsm *f, struct execution *x, const char *from, struct wfo_error *err)
{
    int new_pass = 0;
    const char *type = wfo_json_str(x->error, "type");
    /* past the transition cap, error.step is the step it was about to
     * enter: the frames go on from where they stopped, as after a
     * WorkflowTimeout */
    if (!from && type && strcmp(type, "TransitionLimitExceeded") == 0)
        return retry_stopped(f, x, err);
    if (!from && !wfo_json_str(x->error, "step")) {
        int compensated = 0;
        for (int i = 0; i < x->n_steps && !compensated; i++)
            compensated = x->steps[i]->status == SS_COMPENSATED;
        if (!compensated)
            return retry_stopped(f, x, err);
    }
    struct step_state *st = retry_target(x, from, &new_pass, err);
    if (!st)
        return err->code;
    struct frame *fr = &x->frames[st->frame];
    int pc = def_block_find(fr->block, st->def->name);
    if (pc < 0)
        return wfo_error_set(err, WFO_ESTATE, "step '%s' is not in its block", st->path);
    if (new_pass) {
        /* a new pass of the top-level steps from st: blocks are entered
         * again from scratch, so nothing undone is kept */
        fr->status = FR_ACTIVE;
        fr->pc = pc;
        fr->busy = 0;
        vars_rewind(x, st);
        touch(f, x);
    } else {
        reopen_at(f, x, st, pc);
    }
    retry_go(f, x, st->path);
    return 0;
}

static int apply_retry(struct fsm *f, struct execution *x, const char *from, struct wfo_error *err)
{
    if (x->status != EX_FAILED || x->comp_queue)
        return wfo_error_set(err, WFO_ESTATE, "execution '%s' is %s", x->id,
                             exec_status_names[x->status]);
    if (from) { /* checked before anything changes */
        int np;
        if (!retry_target(x, from, &np, err))
            return err->code;
    }
    const char *cstatus = wfo_json_str(x->compensation, "status");
    if (cstatus && strcmp(cstatus, "failed") == 0 && comp_build(x)) {
        /* the compensations that failed (and those never reached) run
         * again first; when they complete, comp_finish resumes */
        x->comp_final = EX_FAILED;
        x->comp_then_retry = 1;
        free(x->retry_from);
        x->retry_from = from ? wfo_strdup(from) : NULL;
        x->status = EX_RUNNING;
        x->finished_at = 0;
        json_decref(x->compensation);
        x->compensation = json_pack("{s:s}", "status", "running");
        x->row_dirty = 1;
        hist(f, x, "execution.retried", NULL,
             json_pack("{s:n, s:I}", "step", "compensations", (json_int_t)x->n_comp));
        hist(f, x, "compensation.started", NULL,
             json_pack("{s:I}", "steps", (json_int_t)x->n_comp));
        comp_advance(f, x);
        return 0;
    }
    return retry_resume(f, x, from, err);
}

/* ---- the invariants, checked (check.h) ---------------------------------- */

static int by_token(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int in_flight(const struct step_state *st)
{
    return st->status == SS_RUNNING || st->status == SS_WAITING || st->stopping;
}

const char *fsm_check(const struct fsm *f, const struct execution *x, char *why, size_t n)
{
    const char *name = NULL;
    /* I1: a result or timer is recognised by the token of the attempt in
     * flight, so every attempt in flight has a token of its own, taken
     * from x->tick */
    int64_t *tokens = wfo_calloc((size_t)x->n_steps + 1, sizeof(*tokens));
    int nt = 0;
    for (int i = 0; i < x->n_steps && !name; i++) {
        const struct step_state *st = x->steps[i];
        if (!in_flight(st))
            continue;
        if (st->token <= 0 || st->token > x->tick)
            name = check_broken(why, n, "I1", "step '%s' in flight with token %lld (tick %lld)",
                                st->path, (long long)st->token, (long long)x->tick);
        tokens[nt++] = st->token;
    }
    qsort(tokens, (size_t)nt, sizeof(*tokens), by_token);
    for (int i = 1; i < nt && !name; i++)
        if (tokens[i] == tokens[i - 1])
            name = check_broken(why, n, "I1", "two attempts in flight share token %lld",
                                (long long)tokens[i]);
    free(tokens);
    if (name)
        return name;
    /* I2: x's history entries gathered in f are numbered on from x->hseq
     * without gap or repeat, the last one is x->hseq; I3: every execution
     * an effect names is in f's touched list, so its rows are written in
     * the same transaction as the effect */
    int64_t last = -1;
    for (int i = 0; i < f->n_hist; i++) {
        const struct fsm_hist *h = &f->hist[i];
        if (h->x != x)
            continue;
        if (h->seq <= 0 || (last >= 0 && h->seq != last + 1))
            return check_broken(why, n, "I2", "history seq %lld follows %lld", (long long)h->seq,
                                (long long)last);
        last = h->seq;
    }
    if (last >= 0 && last != x->hseq)
        return check_broken(why, n, "I2", "last history seq %lld, execution at %lld",
                            (long long)last, (long long)x->hseq);
    int named = last >= 0;
    for (int i = 0; i < f->n_timers && !named; i++)
        named = f->timers[i].x == x;
    for (int i = 0; i < f->n_acts && !named; i++)
        named = f->acts[i].x == x;
    if (named && x->touched != f->gen)
        return check_broken(why, n, "I3", "execution %s has effects but is not touched", x->id);
    /* C1: a compensation runs only once every entry before it is done,
     * but for other branches of the same parallel step */
    for (int i = 0; x->comp_queue && i < x->n_comp; i++) {
        const struct comp_entry *c = &x->comp_queue[i];
        if (c->state < COMP_PENDING || c->state > COMP_FAILED || !c->path)
            return check_broken(why, n, "C1", "compensation entry %d is malformed", i);
        if (c->state != COMP_RUNNING)
            continue;
        struct step_state *oi = exec_step((struct execution *)x, c->path);
        for (int j = 0; j < i; j++) {
            if (x->comp_queue[j].state == COMP_DONE)
                continue;
            struct step_state *oj = exec_step((struct execution *)x, x->comp_queue[j].path);
            if (!oi || !oj || !comp_concurrent(x, oj, oi))
                return check_broken(why, n, "C1",
                                    "compensation of '%s' runs before that of '%s' is done",
                                    c->path, x->comp_queue[j].path);
        }
    }
    /* C2: an attempt asked to stop keeps its token until it reports; a
     * failure waits for them only while there is one */
    for (int i = 0; i < x->n_steps; i++)
        if (x->steps[i]->stopping && x->steps[i]->token <= 0)
            return check_broken(why, n, "C2", "step '%s' is stopping without a token",
                                x->steps[i]->path);
    if (x->draining && !exec_stopping(x))
        return check_broken(why, n, "C2", "execution %s drains with no attempt stopping", x->id);
    return NULL;
}

/* ---- the transitions: each checked after it is made (WFO_CHECKS) -------- */

void fsm_start(struct fsm *f, struct execution *x)
{
    apply_start(f, x);
    WFO_CHECK(fsm_check, f, x);
}

int fsm_result(struct fsm *f, struct execution *x, const char *path, int64_t token, int ok,
               json_t *output, json_t *error, int retryable)
{
    int rc = apply_result(f, x, path, token, ok, output, error, retryable);
    WFO_CHECK(fsm_check, f, x);
    return rc;
}

void fsm_task_picked(struct fsm *f, struct execution *x, const char *path, int64_t token,
                     const char *worker)
{
    apply_task_picked(f, x, path, token, worker);
    WFO_CHECK(fsm_check, f, x);
}

void fsm_timer(struct fsm *f, struct execution *x, enum timer_kind kind, const char *path,
               int64_t token)
{
    apply_timer(f, x, kind, path, token);
    WFO_CHECK(fsm_check, f, x);
}

int fsm_wait_done(struct fsm *f, struct execution *x, const char *path, int64_t token,
                  json_t *result, const char *consumed)
{
    int rc = apply_wait_done(f, x, path, token, result, consumed);
    WFO_CHECK(fsm_check, f, x);
    return rc;
}

int fsm_cancel(struct fsm *f, struct execution *x, const char *reason, int compensate)
{
    int rc = apply_cancel(f, x, reason, compensate);
    WFO_CHECK(fsm_check, f, x);
    return rc;
}

int fsm_terminate(struct fsm *f, struct execution *x, const char *reason)
{
    int rc = apply_terminate(f, x, reason);
    WFO_CHECK(fsm_check, f, x);
    return rc;
}

int fsm_pause(struct fsm *f, struct execution *x)
{
    int rc = apply_pause(f, x);
    WFO_CHECK(fsm_check, f, x);
    return rc;
}

int fsm_resume(struct fsm *f, struct execution *x)
{
    int rc = apply_resume(f, x);
    WFO_CHECK(fsm_check, f, x);
    return rc;
}

int fsm_retry(struct fsm *f, struct execution *x, const char *from, struct wfo_error *err)
{
    int rc = apply_retry(f, x, from, err);
    WFO_CHECK(fsm_check, f, x);
    return rc;
}
