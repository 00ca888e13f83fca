/*
 * round.c - rounds and group commit: the effects of many transitions
 * gathered into one store batch, committed by the writer thread (or here,
 * when small), then acted on: attempts started, timers armed, callers
 * answered, progress logged and counted (E1, E4 in engine.c;
 * docs/implementation/database_optimization.md#group-commit).
 */
#include "common/compat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"
#include "check.h"
#include "doc.h"
#include "query.h"
#include "../common/duration.h"
#include "../common/log.h"
#include "../common/util.h"

/* --- batch strings ------------------------------------------------------ */

/* The text in r->scratch, kept for the round. */
static const char *keep_scratch(struct round *r)
{
    const char *s = wfo_arena_strndup(&r->text, r->scratch.buf, r->scratch.len);
    wfo_buf_reset(&r->scratch);
    return s;
}

static const char *keep_json(struct round *r, json_t *v)
{
    if (!v)
        return NULL;
    wfo_json_dumpb(v, &r->scratch);
    return keep_scratch(r);
}

/* --- persisting a batch -------------------------------------------------- */

/* A task id, kept for the round. */
static const char *keep_task_id(struct round *rd, const char *exec_id, int64_t token)
{
    char id[TASKQ_ID_SIZE];
    taskq_id(id, exec_id, token);
    return wfo_arena_strndup(&rd->text, id, strlen(id));
}

/* Worker tasks are rows (store_task): one is put in the round that queues
 * an attempt for workers, its lease is written when a worker takes it
 * (CMD_LEASED), and it is deleted in the round where that attempt stops
 * being the step's running one. The step remembers the token whose row
 * exists (task_row, saved), so a restart knows it too. Runs before
 * batch_build, whose step records then carry task_row. */
static void batch_tasks(struct wfo_engine *e, struct round *rd, struct fsm *f)
{
    for (int i = 0; i < f->n_touched; i++) {
        struct execution *x = f->touched[i];
        for (int k = 0; x->task_rows && k < x->n_steps; k++) {
            struct step_state *st = x->steps[k];
            if (!st->task_row || (st->status == SS_RUNNING && st->token == st->task_row))
                continue;
            store_batch_task_del(&rd->batch, x->id, keep_task_id(rd, x->id, st->task_row));
            st->task_row = 0;
            st->dirty = 1;
            x->task_rows--;
        }
    }
    /* the worker answered before its lease's round was built: the lease
     * would be written and deleted in one commit (bench http: 4 in 10) */
    store_batch_drop_leases(&rd->batch);
    for (int i = 0; i < f->n_acts; i++) {
        struct fsm_action *a = &f->acts[i];
        if (a->kind != ACT_RUN || !job_for_workers(e, a->def))
            continue;
        struct step_state *st = exec_step(a->x, a->step);
        if (!st)
            continue;
        struct store_task *t = store_batch_task(&rd->batch);
        t->id = keep_task_id(rd, a->x->id, a->token);
        t->exec_id = a->x->id;
        t->namespace = a->x->ns;
        t->queue = a->def->queue;
        t->step = st->path;
        t->attempt = a->attempt;
        t->status = "ready";
        t->input = keep_json(rd, json_object_get(a->args, "input"));
        t->ready_at = t->created_at = f->now;
        if (!st->task_row)
            a->x->task_rows++;
        st->task_row = a->token;
        st->dirty = 1;
    }
}

/* A step's row, its text in rd's arena. */
static void step_row(struct round *rd, const struct execution *x, const struct step_state *s,
                     struct store_step *sr)
{
    sr->exec_id = x->id;
    sr->path = s->path;
    sr->ord = s->ord;
    sr->status = step_status_names[s->status];
    sr->attempts = s->attempts;
    sr->output = keep_json(rd, s->output);
    sr->error = keep_json(rd, s->error);
    sr->input = s->input_text;
    exec_step_state(s, &rd->scratch);
    sr->state = keep_scratch(rd);
    sr->started_at = s->started_at;
    sr->finished_at = s->finished_at;
}

static void batch_exec(struct round *rd, struct execution *x)
{
    struct store_exec *r = store_batch_exec(&rd->batch);
    r->id = x->id;
    r->namespace = x->ns;
    r->workflow = x->workflow;
    r->version = x->def->version;
    r->status = exec_status_names[x->status];
    r->resume = exec_resume(x);
    r->only_state = x->row_written && !x->row_dirty && r->resume == x->row_resume;
    r->existing = x->row_written;
    x->row_resume = r->resume;
    r->chunk = ++x->chunks;
    x->row_written = 1;
    x->row_dirty = 0;
    if (!x->input_text)
        x->input_text = wfo_json_dumps(x->input);
    r->input = x->input_text;
    if (!r->only_state) {
        r->output = keep_json(rd, x->output);
        r->error = keep_json(rd, x->error);
        r->compensation = keep_json(rd, x->compensation);
    }
    r->parent = x->parent;
    exec_row_state(x, &rd->scratch);
    r->state = keep_scratch(rd);
    r->created_at = x->created_at;
    r->updated_at = x->updated_at;
    r->finished_at = x->finished_at;
    for (int i = 0; i < x->n_steps; i++) {
        struct step_state *s = x->steps[i];
        if (!s->dirty)
            continue;
        s->dirty = 0;
        step_row(rd, x, s, store_batch_step(&rd->batch));
    }
    x->dirty = 0;
}

/* The rows an event history entry stands for, in the same batch (events.c
 * W3): an emitted event, an event consumed, a signal consumed. */
static void batch_event_rows(struct round *rd, const struct fsm_hist *h)
{
    const char *id = wfo_json_str(h->data, "id");
    if (!id)
        return;
    id = wfo_arena_strndup(&rd->text, id, strlen(id));
    if (strcmp(h->type, "event.consumed") == 0) {
        store_batch_consume(&rd->batch, h->x->id, id);
    } else if (strcmp(h->type, "signal.consumed") == 0) {
        store_batch_signal_del(&rd->batch, h->x->id, id);
    } else if (strcmp(h->type, "event.emitted") == 0) {
        struct store_event *ev = store_batch_event(&rd->batch);
        const char *t;
        ev->namespace = h->x->ns;
        ev->id = id;
        t = wfo_json_str(h->data, "type");
        ev->type = wfo_arena_strndup(&rd->text, t, strlen(t));
        t = wfo_json_str(h->data, "key");
        ev->key = t ? wfo_arena_strndup(&rd->text, t, strlen(t)) : NULL;
        t = wfo_json_str(h->data, "source");
        ev->source = t ? wfo_arena_strndup(&rd->text, t, strlen(t)) : NULL;
        ev->data = keep_json(rd, json_object_get(h->data, "data"));
        ev->published_at = ev->time = h->time;
        /* events.c O1: its outbox row, in the same batch */
        struct store_outbox *o = store_batch_outbox(&rd->batch);
        json_t *j = events_event_json(ev);
        o->event_id = ev->id;
        o->namespace = ev->namespace;
        o->type = ev->type;
        o->key = ev->key;
        o->exec_id = h->x->id;
        o->event = keep_json(rd, j);
        o->time = h->time;
        json_decref(j);
    }
}

/* The lifecycle history entries that are outbound events (SPEC 2.5). An
 * execution terminated is one too (SPEC lists no type for it; it is a
 * lifecycle change all the same). */
static int lifecycle_type(const char *t)
{
    static const char *const types[] = {"execution.started",    "execution.completed",
                                        "execution.failed",     "execution.cancelled",
                                        "execution.terminated", "step.failed"};
    for (size_t i = 0; i < WFO_ARRAY_SIZE(types); i++)
        if (strcmp(t, types[i]) == 0)
            return 1;
    return 0;
}

/* events.c O1: a lifecycle entry's outbox row, in the same batch: {id,
 * type, key: the execution id, source: null, data: {execution_id,
 * workflow, step?, and the entry's data (input, output or error)}, time}. */
static void batch_outbox(struct round *rd, struct fsm_hist *h)
{
    if (!lifecycle_type(h->type))
        return;
    struct execution *x = h->x;
    struct wfo_buf *b = &rd->scratch;
    char id[WFO_ID_SIZE], t[40];
    wfo_id_new(id);
    wfo_time_format(h->time, t, sizeof(t));
    /* written as text, not built with jansson (a lifecycle row is two of
     * every workflow's rows): the same bytes as
     * {id, type, key, source: null, data: {...}, time} serialized */
    wfo_buf_adds(b, "{\"id\":");
    wfo_json_dump_str(id, b);
    wfo_buf_adds(b, ",\"type\":");
    wfo_json_dump_str(h->type, b);
    wfo_buf_adds(b, ",\"key\":");
    wfo_json_dump_str(x->id, b);
    wfo_buf_adds(b, ",\"source\":null,\"data\":{");
    json_t *hd = fsm_hist_data(h), *v;
    const char *k;
    int n = 0;
    if (json_is_object(hd))
        json_object_foreach(hd, k, v)
        {
            if (strcmp(k, "execution_id") == 0 || strcmp(k, "workflow") == 0 ||
                (h->step && strcmp(k, "step") == 0))
                continue;
            if (n++)
                wfo_buf_addch(b, ',');
            wfo_json_dump_str(k, b);
            wfo_buf_addch(b, ':');
            wfo_json_dumpb(v, b);
        }
    wfo_buf_adds(b, n ? ",\"execution_id\":" : "\"execution_id\":");
    wfo_json_dump_str(x->id, b);
    wfo_buf_adds(b, ",\"workflow\":");
    wfo_json_dump_str(x->workflow, b);
    if (h->step) {
        wfo_buf_adds(b, ",\"step\":");
        wfo_json_dump_str(h->step, b);
    }
    wfo_buf_adds(b, "},\"time\":");
    wfo_json_dump_str(t, b);
    wfo_buf_addch(b, '}');
    struct store_outbox *o = store_batch_outbox(&rd->batch);
    o->event_id = wfo_arena_strndup(&rd->text, id, strlen(id));
    o->namespace = x->ns;
    o->type = h->type;
    o->key = x->id;
    o->exec_id = x->id;
    o->event = keep_scratch(rd);
    o->time = h->time;
}

/* Builds the batch from the state machine's effects; timers coalesce by id
 * (the last put or delete of an id wins). */
static void batch_build(struct round *rd, struct fsm *f)
{
    struct wfo_map *fired = &rd->fired;
    for (int i = 0; i < f->n_touched; i++)
        batch_exec(rd, f->touched[i]);
    for (int i = 0; i < f->n_hist; i++) {
        struct fsm_hist *h = &f->hist[i];
        struct store_history *r = store_batch_history(&rd->batch);
        r->exec_id = h->x->id;
        r->seq = h->seq;
        r->time = h->time;
        r->type = h->type;
        r->step = h->step;
        if (h->data) {
            r->data = keep_json(rd, h->data);
            batch_event_rows(rd, h);
        } else if (h->dval) {
            wfo_json_dumpb_member(h->dkey, h->dval, &rd->scratch);
            r->data = keep_scratch(rd);
        } else {
            r->data = NULL;
        }
        batch_outbox(rd, h);
    }
    struct wfo_map last = WFO_MAP_INIT;
    for (int i = 0; i < f->n_timers; i++)
        wfo_map_put(&last, f->timers[i].id, &f->timers[i]);
    const char *id;
    void *v;
    for (size_t it = 0; wfo_map_next(fired, &it, &id, &v);)
        if (!wfo_map_get(&last, id))
            store_batch_timer_del(&rd->batch, ((struct tentry *)v)->exec_id, id);
    for (size_t it = 0; wfo_map_next(&last, &it, &id, &v);) {
        struct fsm_timer *t = v;
        if (t->del) {
            store_batch_timer_del(&rd->batch, t->x->id, t->id);
            continue;
        }
        struct store_timer *r = store_batch_timer(&rd->batch);
        r->id = t->id;
        r->exec_id = t->x->id;
        r->due_at = t->due;
        r->kind = timer_kind_names[t->kind];
        r->step = t->step;
        r->token = t->token;
    }
    wfo_map_release(&last);
    for (struct cmd *c = rd->replies; c; c = c->next)
        if (c->del_ok)
            store_batch_exec_del(&rd->batch, c->id);
    for (int i = 0; i < rd->n_purge; i++)
        store_batch_exec_del(&rd->batch, rd->purge[i]);
}

const double engine_step_buckets[ENGINE_STEP_BUCKETS] = {0.005, 0.025, 0.1, 0.25, 0.5,  1,
                                                         2.5,   10,    60,  300,  1800, 3600};

/* A step that ended: into the duration histogram of its type (under mu). */
static void count_step(struct wfo_engine *e, const struct fsm_hist *h)
{
    struct step_state *st = h->step ? exec_step(h->x, h->step) : NULL;
    if (!st || !st->def || !st->started_at || (int)st->def->type >= STEP__COUNT)
        return;
    double s = h->time > st->started_at ? (double)(h->time - st->started_at) / 1000.0 : 0;
    int b = 0;
    while (b < ENGINE_STEP_BUCKETS && s > engine_step_buckets[b])
        b++;
    e->stats.steps[st->def->type].bucket[b]++;
    e->stats.steps[st->def->type].count++;
    e->stats.steps[st->def->type].sum_s += s;
}

static void count_stats(struct wfo_engine *e, const struct round *r, const struct fsm *f,
                        double commit_ms)
{
    pthread_mutex_lock(&e->mu);
    e->stats.retention_deleted += r->n_purge;
    if (commit_ms >= 0) {
        e->stats.commits++;
        e->stats.commit_ms_sum += commit_ms;
    }
    e->stats.transitions += f->n_hist;
    for (int i = 0; i < f->n_hist; i++) {
        const char *t = f->hist[i].type;
        if (strcmp(t, "execution.started") == 0)
            e->stats.started++;
        else if (strcmp(t, "execution.completed") == 0)
            e->stats.completed++;
        else if (strcmp(t, "execution.failed") == 0)
            e->stats.failed++;
        else if (strcmp(t, "execution.cancelled") == 0 || strcmp(t, "execution.terminated") == 0)
            e->stats.cancelled++;
        else if (strcmp(t, "step.completed") == 0 || strcmp(t, "step.failed") == 0 ||
                 strcmp(t, "step.caught") == 0)
            count_step(e, &f->hist[i]);
    }
    e->stats.timers = (long long)e->timers.len; /* armed now (the heap may hold dead ones) */
    pthread_mutex_unlock(&e->mu);
}

/* The "TYPE: MESSAGE" of an error value, into out. */
static void log_error_text(const json_t *err, char *out, size_t size)
{
    const char *t = wfo_json_str(err, "type"), *m = wfo_json_str(err, "message");
    snprintf(out, size, "%s: %s", t ? t : "Error", m ? m : "");
}

/* SPEC 7: a log line, with execution id, workflow and step, for each
 * execution's start and end and each step's failure, retry and
 * compensation; at level debug one for every other history entry too. The
 * text comes from the history entry, which holds no secret (SPEC 2.1). */
static void log_hist(struct fsm_hist *h)
{
    const struct execution *x = h->x;
    const char *t = h->type, *wf = x->workflow;
    char et[600];

    /* a start or an end needs no data: most lines, never built for them */
    if (strcmp(t, "execution.started") == 0) {
        wfo_log_exec(WFO_LOG_INFO, x->id, wf, NULL, "execution started (version %d)",
                     x->def ? x->def->version : 0);
        return;
    }
    if (strcmp(t, "execution.completed") == 0) {
        wfo_log_exec(WFO_LOG_INFO, x->id, wf, NULL, "execution completed in %lld ms",
                     (long long)(h->time - x->created_at));
        return;
    }
    if (strncmp(t, "step.", 5) == 0 && !wfo_log_enabled(WFO_LOG_DEBUG) &&
        strcmp(t, "step.failed") != 0 && strcmp(t, "step.retrying") != 0 &&
        strcmp(t, "step.caught") != 0 && strcmp(t, "step.compensated") != 0)
        return; /* step.started, step.completed, ...: debug lines */
    const json_t *d = fsm_hist_data(h);
    struct step_state *st = h->step ? exec_step(h->x, h->step) : NULL;
    int attempts = st ? st->attempts : 0;
    log_error_text(json_object_get(d, "error"), et, sizeof(et));
    if (strcmp(t, "execution.started") == 0) {
        wfo_log_exec(WFO_LOG_INFO, x->id, wf, NULL, "execution started (version %d)",
                     x->def ? x->def->version : 0);
    } else if (strcmp(t, "execution.completed") == 0) {
        wfo_log_exec(WFO_LOG_INFO, x->id, wf, NULL, "execution completed in %lld ms",
                     (long long)(h->time - x->created_at));
    } else if (strcmp(t, "execution.failed") == 0) {
        const char *at = wfo_json_str(x->error, "step");
        log_error_text(x->error, et, sizeof(et));
        wfo_log_exec(WFO_LOG_WARN, x->id, wf, at, "execution failed in %lld ms: %s",
                     (long long)(h->time - x->created_at), et);
    } else if (strcmp(t, "execution.cancelled") == 0 || strcmp(t, "execution.terminated") == 0) {
        wfo_log_exec(WFO_LOG_INFO, x->id, wf, NULL, "execution %s", t + 10);
    } else if (strcmp(t, "step.failed") == 0) {
        wfo_log_exec(WFO_LOG_WARN, x->id, wf, h->step, "step failed after %d attempt%s: %s",
                     attempts, attempts == 1 ? "" : "s", et);
    } else if (strcmp(t, "step.retrying") == 0) {
        wfo_log_exec(WFO_LOG_INFO, x->id, wf, h->step,
                     "step attempt %lld failed, retry in %lld ms: %s",
                     (long long)json_integer_value(json_object_get(d, "attempt")),
                     (long long)json_integer_value(json_object_get(d, "delay_ms")), et);
    } else if (strcmp(t, "step.caught") == 0) {
        const char *next = wfo_json_str(d, "next");
        wfo_log_exec(WFO_LOG_INFO, x->id, wf, h->step, "step failed, caught (next: %s): %s",
                     next ? next : "?", et);
    } else if (strcmp(t, "step.compensated") == 0) {
        wfo_log_exec(WFO_LOG_INFO, x->id, wf, h->step, "step compensated");
    } else if (strcmp(t, "compensation.started") == 0) {
        wfo_log_exec(WFO_LOG_INFO, x->id, wf, h->step, "compensation started (%lld step%s to undo)",
                     (long long)json_integer_value(json_object_get(d, "steps")),
                     json_integer_value(json_object_get(d, "steps")) == 1 ? "" : "s");
    } else if (strcmp(t, "compensation.finished") == 0) {
        const char *status = wfo_json_str(d, "status");
        int ok = status && strcmp(status, "completed") == 0;
        wfo_log_exec(ok ? WFO_LOG_INFO : WFO_LOG_WARN, x->id, wf, h->step,
                     "compensation finished: %s", status ? status : "?");
    } else if (wfo_log_enabled(WFO_LOG_DEBUG)) {
        char *data = d ? wfo_json_dumps(d) : NULL;
        wfo_log_exec(WFO_LOG_DEBUG, x->id, wf, h->step, "%s%s%.512s", t, data ? " " : "",
                     data ? data : "");
        free(data);
    }
}

/* After a commit: act on the effects (E1). */
static void after_commit(struct wfo_engine *e, struct fsm *f)
{
    for (int i = 0; i < f->n_timers; i++) {
        struct fsm_timer *t = &f->timers[i];
        if (t->del)
            timer_disarm(e, t->id);
        else
            timer_arm(e, t->id, t->x->id, t->due, t->kind, t->step, t->token);
    }
    if (e->opt.log_transitions) {
        wfo_log_hold(); /* the round's lines in one write(2) */
        for (int i = 0; i < f->n_hist; i++)
            log_hist(&f->hist[i]);
        wfo_log_release();
    }
    if (e->opt.on_progress) {
        for (int i = 0; i < f->n_hist; i++) {
            struct fsm_hist *h = &f->hist[i];
            char *data = h->data ? wfo_json_dumps(h->data) : NULL;
            struct wfo_progress p = {.exec_id = h->x->id,
                                     .ns = h->x->ns,
                                     .workflow = h->x->workflow,
                                     .seq = h->seq,
                                     .time = h->time,
                                     .type = h->type,
                                     .step = h->step,
                                     .data = data};
            e->opt.on_progress(e->opt.progress_ud, &p);
            free(data);
        }
    }
    events_after_commit(e, f);
    int ended = 0;
    for (int i = 0; i < f->n_acts; i++) {
        struct fsm_action *a = &f->acts[i];
        if (a->kind == ACT_RUN)
            job_dispatch(e, a);
        else if (a->kind == ACT_CANCEL)
            job_cancel(e, a);
        else if (a->kind == ACT_STOP)
            job_stop(e, a);
        else if (a->kind == ACT_ENDED)
            ended = 1;
        /* ACT_CHILD: done before the commit, in the same round (child.c) */
    }
    jobs_flush(e);
    if (ended) {
        pthread_mutex_lock(&e->mu);
        pthread_cond_broadcast(&e->ended_cv);
        pthread_mutex_unlock(&e->mu);
    }
}

/* --- rounds: the engine thread fills one while the writer commits the other */

void round_init(struct round *r)
{
    fsm_init(&r->fx);
    store_batch_init(&r->batch);
    wfo_buf_init(&r->scratch, 0);
}

int round_busy(const struct wfo_engine *e, const struct round *r)
{
    const struct fsm *f = &e->fsm;
    return r->replies || r->n_dead || r->n_purge || f->n_touched || f->n_hist || f->n_timers ||
           f->n_acts || (r->leases && (e->stop || f->now >= r->leases_due));
}

/* Drops what the round held once it is acted on (or abandoned). */
static void round_reset(struct round *r)
{
    for (struct cmd *c = r->replies, *next; c; c = next) {
        next = c->next;
        cmd_free(c);
    }
    r->replies = NULL;
    for (struct cmd *c = r->leases, *next; c; c = next) {
        next = c->next;
        cmd_free(c);
    }
    r->leases = NULL;
    r->leases_due = 0;
    fsm_reset(&r->fx);
    store_batch_reset(&r->batch);
    wfo_arena_reset(&r->text);
    for (int i = 0; i < r->n_dead; i++)
        tentry_free(r->dead[i]);
    r->n_dead = 0;
    for (int i = 0; i < r->n_purge; i++)
        free(r->purge[i]);
    r->n_purge = 0;
    wfo_map_release(&r->fired);
    r->done = r->rc = 0;
    r->err = (struct wfo_error)WFO_ERROR_INIT;
    r->commit_ms = -1;
}

void round_release(struct round *r)
{
    round_reset(r);
    fsm_release(&r->fx);
    store_batch_release(&r->batch);
    wfo_arena_release(&r->text);
    wfo_buf_release(&r->scratch);
    free(r->dead);
    free(r->purge);
}

/* The writer thread: commits the rounds it is handed, one at a time. */
void *writer_main(void *arg)
{
    struct wfo_engine *e = arg;
    pthread_setname_np(pthread_self(), "wfo-writer");
    pthread_mutex_lock(&e->mu);
    for (;;) {
        while (!e->wround && !e->wstop)
            pthread_cond_wait(&e->writer_cv, &e->mu);
        struct round *r = e->wround;
        if (!r)
            break;
        pthread_mutex_unlock(&e->mu);
        struct wfo_error err = WFO_ERROR_INIT;
        double t0 = wfo_mono_ms_f();
        int rc = e->store->ops->apply(e->store, &r->batch, &err);
        double ms = wfo_mono_ms_f() - t0;
        pthread_mutex_lock(&e->mu);
        r->rc = rc;
        r->err = err;
        r->commit_ms = ms;
        r->done = 1;
        e->wround = NULL;
        pthread_cond_signal(&e->cv);
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

/* Rounds of at most this many executions are committed by the engine
 * thread itself (build/bench latency: p50 -0.2 ms). */
#define ROUND_INLINE 4

/* Turns the current round into a batch and hands it to the writer, or
 * commits it here when it is small (ROUND_INLINE), or marks it done when it
 * writes nothing. Returns the round; *here is 1 when it is already
 * committed (the writer's rounds are known done only under mu). */
struct round *round_submit(struct wfo_engine *e, int *here)
{
    struct round *r = e->cur;
    for (int i = 0; i < 3; i++)
        if (!e->rounds[i].busy)
            e->cur = &e->rounds[i];
    e->cur->busy = 1;
    r->gen = e->fsm.gen;
    batch_tasks(e, r, &e->fsm);
    batch_build(r, &e->fsm);
    r->batch.owner = e->owner;
    memcpy(r->batch.epochs, e->epochs, sizeof(e->epochs));
    fsm_take(&r->fx, &e->fsm);
    *here = 1;
    if (store_batch_empty(&r->batch)) {
        r->done = 1;
        return r;
    }
    if (r->fx.n_touched <= ROUND_INLINE) {
        /* a light load: two thread switches would cost more than the
         * overlap gains (latency); the writer is idle, so commit here */
        double t0 = wfo_mono_ms_f();
        r->rc = e->store->ops->apply(e->store, &r->batch, &r->err);
        r->commit_ms = wfo_mono_ms_f() - t0;
        r->done = 1;
        return r;
    }
    *here = 0;
    pthread_mutex_lock(&e->mu);
    e->wround = r;
    pthread_cond_signal(&e->writer_cv);
    pthread_mutex_unlock(&e->mu);
    return r;
}

/* The documents that starts of r asked for, from r's committed rows: no
 * reading back from the store. A batch holds an execution's row and, after
 * it, the rows of its changed steps (every step, for a new execution). */
static void round_docs(struct round *r)
{
    struct wfo_map rows = WFO_MAP_INIT, steps = WFO_MAP_INIT;
    int wanted = 0;
    for (struct cmd *c = r->replies; c && !wanted; c = c->next)
        wanted = c->kind == CMD_START && c->made && c->reply && c->reply->want_doc;
    if (!wanted)
        return;
    const struct store_batch *b = &r->batch;
    for (int i = 0; i < b->n_execs; i++)
        wfo_map_put(&rows, b->execs[i].id, &b->execs[i]);
    for (int i = 0; i < b->n_steps; i++)
        if (i == 0 || strcmp(b->steps[i].exec_id, b->steps[i - 1].exec_id) != 0)
            wfo_map_put(&steps, b->steps[i].exec_id, &b->steps[i]);
    for (struct cmd *c = r->replies; c; c = c->next) {
        if (c->kind != CMD_START || !c->made || !c->reply || !c->reply->want_doc)
            continue;
        const struct store_exec *x = wfo_map_get(&rows, c->id);
        const struct store_step *first = wfo_map_get(&steps, c->id);
        if (!x)
            continue; /* the caller reads the store */
        int n = 0;
        if (first)
            while (first + n < b->steps + b->n_steps && strcmp(first[n].exec_id, c->id) == 0)
                n++;
        c->reply->doc = doc_from_rows(x, first, n);
    }
    wfo_map_release(&rows);
    wfo_map_release(&steps);
}

/* E10: the documents of the executions that ended in r and leave memory
 * with it (gone), for the waits on them; from r's row of each and its
 * steps in memory (every step: the row of each that r did not change is
 * what an earlier commit wrote). Before the waits are woken (after_commit). */
static void round_end_docs(struct wfo_engine *e, struct round *r, struct execution **gone,
                           int n_gone)
{
    if (atomic_load(&e->n_end_waits) == 0)
        return;
    struct wfo_map rows = WFO_MAP_INIT, dels = WFO_MAP_INIT;
    int mapped = 0;
    for (int i = 0; i < n_gone; i++) {
        struct execution *x = gone[i];
        if (!EX_ENDED(x->status))
            continue;
        pthread_mutex_lock(&e->mu);
        int waited = wfo_map_get(&e->end_waits, x->id) != NULL;
        pthread_mutex_unlock(&e->mu);
        if (!waited)
            continue;
        if (!mapped++) { /* the first waited end: the batch's rows and deletions */
            for (int k = 0; k < r->batch.n_execs; k++)
                wfo_map_put(&rows, r->batch.execs[k].id, &r->batch.execs[k]);
            for (int k = 0; k < r->batch.n_exec_dels; k++)
                wfo_map_put(&dels, r->batch.exec_dels[k], &rows);
        }
        /* deleted by the same commit: the wait reads it, and finds none */
        const struct store_exec *row = wfo_map_get(&rows, x->id);
        if (!row || row->only_state || wfo_map_get(&dels, x->id))
            continue;
        struct store_step *steps = wfo_calloc((size_t)x->n_steps + 1, sizeof(*steps));
        for (int k = 0; k < x->n_steps; k++)
            step_row(r, x, x->steps[k], &steps[k]);
        json_t *doc = doc_from_rows(row, steps, x->n_steps);
        free(steps);
        WFO_CHECK(round_doc_check, e, x, doc);
        pthread_mutex_lock(&e->mu);
        for (struct engine_end_wait *w = wfo_map_get(&e->end_waits, x->id); w; w = w->next)
            if (!w->doc && (!w->ns || strcmp(w->ns, x->ns) == 0)) /* Q1 */
                w->doc = w->next ? json_deep_copy(doc) : json_incref(doc);
        pthread_mutex_unlock(&e->mu);
        json_decref(doc);
    }
    wfo_map_release(&rows);
    wfo_map_release(&dels);
}

const char *round_doc_check(struct wfo_engine *e, const struct execution *x, const json_t *doc,
                            char *why, size_t n)
{
    json_t *stored = NULL;
    struct wfo_error err = WFO_ERROR_INIT;
    const char *broken = NULL;
    /* a read that fails (a store down, the fault wrapper) tells nothing,
     * but the execution is there: its deletion was not handed a document */
    int rc = query_execution(e, x->ns, x->id, &stored, &err);
    if (rc == WFO_ENOTFOUND || (rc == 0 && !json_equal(stored, (json_t *)doc)))
        broken =
            check_broken(why, n, "E10", "execution %s: the document handed is not the store's: %s",
                         x->id, rc ? err.message : "they differ");
    json_decref(stored);
    return broken;
}

/* A committed round: executions that ended, or only wait for timers, leave
 * memory unless a later batch (in flight or gathering) names them (E3);
 * then its effects are acted on and its commands answered (E1). Returns
 * the commit's code. */
int round_finish(struct wfo_engine *e, struct round *r, const struct round *flight)
{
    struct fsm *f = &r->fx;
    if (r->rc < 0) {
        wfo_err(NULL, NULL, "store commit failed, engine stops: %s", r->err.message);
        /* failed before any of its callers hears of it: a client answered
         * 503 here finds /readyz 503 too (engine_fail answers the rest) */
        pthread_mutex_lock(&e->mu);
        e->failed = r->rc;
        e->fail_err = r->err;
        pthread_mutex_unlock(&e->mu);
        for (struct cmd *c = r->replies; c; c = c->next) {
            reply_done(c->reply, r->rc, &r->err);
            c->reply = NULL;
        }
        return r->rc;
    }
    if (r->batch.n_outbox > 0)
        events_outbox_notify(e); /* events.c O3 */
    struct execution **gone = NULL;
    int n_gone = 0, alloc_gone = 0;
    for (int i = 0; i < f->n_touched; i++) {
        struct execution *x = f->touched[i];
        if (x->touched != e->fsm.gen && !(flight && x->touched == flight->gen) &&
            (EX_ENDED(x->status) || exec_idle(x)) && wfo_map_del(&e->execs, x->id)) {
            GROW(gone, n_gone, alloc_gone);
            gone[n_gone++] = x;
        }
    }
    for (struct cmd *c = r->replies; c; c = c->next) {
        struct execution *x = c->del_ok ? wfo_map_get(&e->execs, c->id) : NULL;
        if (x && x->touched != e->fsm.gen && !(flight && x->touched == flight->gen) &&
            wfo_map_del(&e->execs, x->id)) {
            GROW(gone, n_gone, alloc_gone);
            gone[n_gone++] = x;
        }
    }
    WFO_CHECK(round_check, e, r, flight);
    if (e->opt.on_progress)
        for (int i = 0; i < f->n_hist; i++)
            fsm_hist_data(&f->hist[i]); /* the callback reads h->data */
    round_end_docs(e, r, gone, n_gone);
    after_commit(e, f);
    count_stats(e, r, f, r->commit_ms);
    round_docs(r);
    for (struct cmd *c = r->replies; c; c = c->next) {
        reply_done(c->reply, 0, NULL);
        c->reply = NULL;
    }
    round_reset(r); /* drops the effects that point at the executions */
    r->busy = 0;
    for (int i = 0; i < n_gone; i++)
        exec_free(gone[i]);
    free(gone);
    return 0;
}

const char *round_check(struct wfo_engine *e, const struct round *r, const struct round *flight,
                        char *why, size_t n)
{
    const struct fsm *f = &r->fx;
    for (int i = 0; i < f->n_touched; i++) {
        const struct execution *x = f->touched[i];
        if (x->touched != e->fsm.gen && !(flight && x->touched == flight->gen) &&
            (EX_ENDED(x->status) || exec_idle(x)) && wfo_map_get(&e->execs, x->id) == x) {
            snprintf(why, n, "execution %s waits only for timers or ended, and stays in memory",
                     x->id);
            return "E3";
        }
    }
    return NULL;
}
