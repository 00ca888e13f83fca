/*
 * engine.c - the engine: applies transitions to executions, persists their
 * effects in one store transaction per batch, then acts on them
 * (docs/interfaces/internal.md, docs/implementation/state_management.md).
 * This file holds its lifecycle and public calls, the commands queued to
 * the engine thread and that thread's loop, and the runner pool; the other
 * pieces are listed in engine_int.h (rounds and group commit in round.c,
 * the periodic duties in timer.c, recovery in recover.c, the definitions
 * cache in defs.c, the worker protocol in taskq.c). The invariants below
 * hold for all of them.
 *
 * Threads:
 *   - the engine thread owns every in-memory execution and the state
 *     machine. It loops: take every queued command and due timer, apply
 *     each to its execution (fsm.c), gather all their effects into one
 *     round (group commit); once the writer has committed a round, start
 *     the attempts it asked for, arm its timers, wake its waiters.
 *   - the writer thread commits one round at a time (store->apply: one
 *     transaction), so that SQLite's work overlaps the state machine's.
 *   - runner threads run the attempts of exec, http and handled task steps
 *     (steps/) and queue their outcomes back to the engine thread.
 *   - any other thread (API, CLI) queues commands and reads the store.
 *
 * Invariants (checked after every loop of the engine thread by
 * engine_check(), E3 by round_check(), in the test build: check.h):
 *   E1. Nothing acts on a transition before its batch is committed: runner
 *       jobs, timers in the heap and replies to callers come after
 *       store->apply() returned 0.
 *   E2. If a commit fails the engine stops (e->failed): in-memory state is
 *       ahead of the store, so the only safe continuation is a restart that
 *       recovers from the store. The engine thread restarts in place
 *       (engine_restart): it forgets all it holds and recovers as a new
 *       process would, again and again with backoff while the store
 *       refuses; until then every call fails with the commit's error.
 *   E3. After a commit the store holds all of an execution, so one that
 *       waits only for timers (exec_idle) leaves memory and is loaded again
 *       by whatever names it next: a timer, an operator, a late result;
 *       unless a later round (in flight or gathering) touched it.
 *   E4. At most one round is in flight, and rounds commit in the order
 *       they were gathered. Memory runs ahead of the store by at most that
 *       round and the one gathering; an execution in either stays in
 *       memory (E3), so reading the store never misses its later state.
 *   E5. A read that fails on the engine thread consumes nothing: a due
 *       timer keeps its row and is armed again a second later, an expired
 *       lease and a runner's result are kept and tried again, a worker
 *       waiting for its answer gets the error (503) and sends again. Each
 *       is logged and counted (stats.read_retries).
 *   E6. The timer heap holds the timers due before timer_horizon, never
 *       all: recovery reads those due before now + TIMER_WINDOW_MS, and
 *       the "timer window" duty reads the next stretch from the store
 *       before now comes within half a window of the horizon. A timer
 *       committed with a later due stays in the store until then. A window
 *       read may see a timer that a round in flight deletes; it fires
 *       stale, and fsm_timer ignores it (I1: the token no longer matches).
 *   E7. Every batch names this engine as owner and the epochs of the
 *       shards it holds; the store refuses it (WFO_EFENCED) when another
 *       engine has taken one over since, and the engine then stops like
 *       any failed commit (E2). Shards are claimed at launch (on SQLite by
 *       takeover: one process owns the file) and renewed every
 *       SHARD_LEASE_MS / 3; a renewal that finds a shard taken stops the
 *       engine the same way.
 *   E9. Forgetting what memory holds (a regroup in a cluster, a recovery
 *       after a failed commit) does not stop the runners: a job that runs
 *       then, or that has ended with its result still in the queue, is
 *       marked orphan (the job, or its result's cmd: e->orphans counts
 *       both), and the recovery that dispatches the same attempt
 *       (execution, path, token) again adopts it instead of running it
 *       twice; its result is applied with that token. A failed engine
 *       (E2) answers the commands in its queue with its error but keeps
 *       the runners' results — queued, kept after a failed read (E5), or
 *       applied by a round that was not committed — and queues those that
 *       come while it restarts, for the recovery to adopt. A shard to give back waits
 *       for the jobs running on it and their queued results, up to
 *       GIVE_WAIT_MS (recover.c shards_plan). (Only a crash runs an
 *       attempt again: at least once, SPEC 3.)
 *   E10. A wait for an execution's end (engine_end_wait) is handed the
 *       document by the round that committed the end, built from that
 *       round's row and the steps in memory, and only when the execution
 *       leaves memory with it (nothing later changed it), is not deleted
 *       by it, and is of the wait's namespace; any other wait reads the
 *       store, as before. The test build reads the store too and
 *       aborts if the two differ (round_doc_check).
 */
#include "common/compat.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine_int.h"
#include "check.h"
#include "kinds.h"
#include "doc.h"
#include "../common/duration.h"
#include "../common/redact.h"
#include "../common/log.h"
#include "../common/util.h"
#include "../common/yaml.h"

void engine_server_key(struct wfo_engine *e, unsigned char out[32])
{
    memcpy(out, e->tq.key, sizeof(e->tq.key));
}

struct store *engine_store(struct wfo_engine *e)
{
    return e->store;
}

int engine_holds(struct wfo_engine *e, const char *exec_id)
{
    return !e->cluster || (atomic_load(&e->held) >> store_shard_of(exec_id) & 1);
}

void engine_advertise(struct wfo_engine *e, const char *url)
{
    char *copy = wfo_strdup(url), *old;
    pthread_mutex_lock(&e->mu);
    old = e->node_url;
    e->node_url = copy;
    pthread_mutex_unlock(&e->mu);
    free(old);
}

int engine_clustered(struct wfo_engine *e)
{
    return e->cluster;
}

const char *engine_node(struct wfo_engine *e)
{
    return e->owner;
}

int64_t engine_shard_lease(struct wfo_engine *e)
{
    return e->shard_lease_ms;
}

/* --- replies ----------------------------------------------------------- */

void reply_init(struct reply *r)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
}

void reply_done(struct reply *r, int rc, const struct wfo_error *err)
{
    if (!r)
        return;
    if (r->on_done) { /* nobody waits on the condition: nothing to lock */
        r->rc = rc;
        if (err)
            r->err = *err;
        r->done = 1;
        r->on_done(r->on_done_ud);
        return;
    }
    pthread_mutex_lock(&r->mu);
    r->rc = rc;
    if (err)
        r->err = *err;
    r->done = 1;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

int reply_wait(struct reply *r, struct wfo_error *err)
{
    pthread_mutex_lock(&r->mu);
    while (!r->done)
        pthread_cond_wait(&r->cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    if (r->rc < 0 && err)
        *err = r->err;
    return r->rc;
}

void cmd_free(struct cmd *c)
{
    free(c->ns);
    free(c->worker);
    def_unref(c->def);
    json_decref(c->input);
    free(c->path);
    json_decref(c->out.output);
    json_decref(c->out.error);
    free(c->reason);
    free(c->from);
    free(c->lease);
    free(c->child);
    free(c);
}

/* Appends the list c to the queue and wakes the engine thread (under mu). */
static void queue_append_locked(struct wfo_engine *e, struct cmd *c)
{
    struct cmd *last = c;
    while (last->next)
        last = last->next;
    if (e->tail)
        e->tail->next = c;
    else
        e->head = c;
    e->tail = last;
    pthread_cond_signal(&e->cv);
}

/* engine_post with mu held: the error code when the engine takes no
 * commands (c, a chain by next, is then the caller's), else 0. */
static int engine_post_locked(struct wfo_engine *e, struct cmd *c)
{
    if (e->stop || (e->failed && !e->recovering))
        return e->failed ? e->failed : WFO_ESHUTDOWN;
    queue_append_locked(e, c);
    return 0;
}

/* A runner's result kept for the recovery of a failed engine, which
 * adopts it (E9): queued whatever the engine's state, marked orphan. */
static void cmd_orphan_locked(struct wfo_engine *e, struct cmd *c)
{
    if (!c->orphan) {
        c->orphan = 1;
        atomic_fetch_add(&e->orphans, 1);
    }
}

static void queue_orphan_locked(struct wfo_engine *e, struct cmd *c)
{
    cmd_orphan_locked(e, c);
    c->next = NULL;
    queue_append_locked(e, c);
}

int engine_post(struct wfo_engine *e, struct cmd *c, struct wfo_error *err)
{
    pthread_mutex_lock(&e->mu);
    int code = engine_post_locked(e, c);
    pthread_mutex_unlock(&e->mu);
    if (code) {
        for (struct cmd *next; c; c = next) {
            next = c->next;
            reply_done(c->reply, code, NULL);
            cmd_free(c);
        }
        return wfo_error_set(err, code, "engine is %s",
                             code == WFO_ESHUTDOWN ? "stopping" : "stopped");
    }
    return 0;
}

/* --- runner pool ---------------------------------------------------------- */

static void job_key(struct wfo_buf *b, const char *exec_id, const char *path, int64_t token)
{
    wfo_buf_reset(b);
    wfo_buf_adds(b, exec_id);
    wfo_buf_addch(b, '/');
    wfo_buf_adds(b, path);
    wfo_buf_addch(b, '#');
    wfo_buf_addint(b, token);
}

static void job_free(struct step_job *j)
{
    free(j->exec_id);
    free(j->path);
    step_args_release(&j->args);
    free(j->idempotency_key);
    free(j->task_id);
    free(j->key);
    proc_cancel_release(&j->cancel);
    free(j);
}

static void *runner_main(void *arg)
{
    struct wfo_engine *e = arg;
    struct wfo_buf key = WFO_BUF_INIT;
    struct step_job *done = NULL; /* the job just run, freed outside the lock */
    pthread_setname_np(pthread_self(), "wfo-runner");
    pthread_mutex_lock(&e->mu);
    for (;;) {
        while (e->jobs_head == e->n_jobs && !e->stop) {
            e->runners_idle++;
            pthread_cond_wait(&e->jobs_cv, &e->mu);
            e->runners_idle--;
        }
        if (e->stop)
            break;
        struct step_job *j = e->jobs[e->jobs_head++];
        if (e->jobs_head == e->n_jobs)
            e->jobs_head = e->n_jobs = 0;
        job_key(&key, j->exec_id, j->path, j->token);
        j->key = wfo_strdup(key.buf);
        wfo_map_put(&e->running, j->key, j);
        pthread_mutex_unlock(&e->mu);
        if (done)
            job_free(done);

        struct cmd *c = wfo_calloc(1, sizeof(*c));
        c->kind = CMD_RESULT;
        c->runner = 1;
        j->run(j, &c->out);
        if (wfo_redact_active()) {
            /* an upstream may echo a secret back (SPEC 2.1) */
            json_t *o = wfo_redact_json(c->out.output), *er = wfo_redact_json(c->out.error);
            json_decref(c->out.output);
            json_decref(c->out.error);
            c->out.output = o;
            c->out.error = er;
        }
        snprintf(c->id, sizeof(c->id), "%s", j->exec_id);
        c->path = wfo_strdup(j->path);
        c->token = j->token;

        /* one hold of the lock: out of running, the result posted, and
         * the next job taken (each hold can make another thread wait) */
        pthread_mutex_lock(&e->mu);
        wfo_map_del(&e->running, j->key);
        c->orphan = j->orphan; /* not adopted yet: its result may still be (E9) */
        done = j;
        if (engine_post_locked(e, c) == 0) {
            /* queued */
        } else if (!e->stop) {
            queue_orphan_locked(e, c); /* the engine failed: its restart adopts it */
        } else {
            if (c->orphan)
                atomic_fetch_sub(&e->orphans, 1);
            pthread_mutex_unlock(&e->mu);
            cmd_free(c); /* a result has no caller to answer */
            pthread_mutex_lock(&e->mu);
        }
    }
    pthread_mutex_unlock(&e->mu);
    if (done)
        job_free(done);
    wfo_buf_release(&key);
    return NULL;
}

/* The jobs job_submit staged, queued for the runners with one hold of the
 * lock, waking only as many idle runners as there are jobs (a wake is a
 * system call). On the engine thread. */
void jobs_flush(struct wfo_engine *e)
{
    if (!e->n_staged)
        return;
    pthread_mutex_lock(&e->mu);
    if (e->n_jobs + e->n_staged > e->alloc_jobs && e->jobs_head > 0) {
        memmove(e->jobs, e->jobs + e->jobs_head,
                (size_t)(e->n_jobs - e->jobs_head) * sizeof(*e->jobs));
        e->n_jobs -= e->jobs_head;
        e->jobs_head = 0;
    }
    for (int i = 0; i < e->n_staged; i++) {
        GROW(e->jobs, e->n_jobs, e->alloc_jobs);
        e->jobs[e->n_jobs++] = e->staged[i];
    }
    int wake = e->n_staged < e->runners_idle ? e->n_staged : e->runners_idle;
    if (wake >= e->n_runners)
        pthread_cond_broadcast(&e->jobs_cv);
    else
        for (int i = 0; i < wake; i++)
            pthread_cond_signal(&e->jobs_cv);
    e->n_staged = 0;
    pthread_mutex_unlock(&e->mu);
}

static const struct handler *handler_find(struct wfo_engine *e, const char *queue)
{
    for (int i = 0; i < e->n_handlers; i++)
        if (strcmp(e->handlers[i].queue, queue) == 0)
            return &e->handlers[i];
    return NULL;
}

static void job_submit(struct wfo_engine *e, struct fsm_action *a)
{
    const struct def_step *d = a->def;
    const struct step_kind *kd = &step_kinds[d->type];
    if (!kd->run)
        return;
    /* E9: the same attempt still runs here, in a runner that a regroup or
     * a recovery after a failed commit did not stop: it is adopted (its
     * result comes back with this token), not run a second time */
    if (atomic_load(&e->orphans) > 0) {
        struct wfo_buf key = WFO_BUF_INIT;
        job_key(&key, a->x->id, a->step, a->token);
        pthread_mutex_lock(&e->mu);
        struct step_job *running = wfo_map_get(&e->running, key.buf);
        int adopted = running && running->orphan;
        if (adopted)
            running->orphan = 0;
        /* or it ended, and its result waits in the queue (or among the
         * commands being applied, when a tick recovers): applied after */
        for (int q = 0; q < 2 && !adopted; q++)
            for (struct cmd *c = q ? e->taken : e->head; c && !adopted; c = c->next)
                if (c->orphan && c->token == a->token && strcmp(c->id, a->x->id) == 0 &&
                    strcmp(c->path, a->step) == 0) {
                    c->orphan = 0;
                    adopted = 1;
                }
        if (adopted)
            atomic_fetch_sub(&e->orphans, 1);
        pthread_mutex_unlock(&e->mu);
        wfo_buf_release(&key);
        if (adopted)
            return;
    }
    struct step_job *j = wfo_calloc(1, sizeof(*j));
    j->exec_id = wfo_strdup(a->x->id);
    j->path = wfo_strdup(a->step);
    j->token = a->token;
    j->attempt = a->attempt;
    j->run = kd->run;
    /* plain values: a runner never sees the definition */
    j->args.fields = json_incref(a->args);
    j->args.timeout_ms = d->timeout_ms;
    j->args.queue = d->queue ? wfo_strdup(d->queue) : NULL;
    if (d->accept_status) {
        j->args.accept_status = wfo_calloc((size_t)d->n_accept_status, sizeof(int));
        memcpy(j->args.accept_status, d->accept_status, (size_t)d->n_accept_status * sizeof(int));
        j->args.n_accept_status = d->n_accept_status;
    }
    struct wfo_buf b = WFO_BUF_INIT;
    wfo_buf_adds(&b, a->x->id);
    wfo_buf_addch(&b, '/');
    wfo_buf_adds(&b, a->step);
    j->idempotency_key = wfo_buf_detach(&b, NULL);
    /* the attempt's task id, the same whether a handler or a worker runs it */
    char task_id[TASKQ_ID_SIZE];
    taskq_id(task_id, a->x->id, a->token);
    j->task_id = wfo_strdup(task_id);
    if (a->def->timeout_ms)
        j->deadline = wfo_now_ms() + a->def->timeout_ms;
    /* the cancel pipe wakes a child process's poll loop: only those need one */
    int procs = kd->cancel_pipe;
    if (a->def->type == STEP_TASK) {
        const struct handler *h = handler_find(e, a->def->queue);
        procs = h && h->command;
    }
    if (procs) {
        proc_cancel_init(&j->cancel, NULL);
    } else {
        atomic_init(&j->cancel.requested, 0);
        j->cancel.wake_fd[0] = j->cancel.wake_fd[1] = -1;
    }
    j->exec_enabled = e->opt.exec_enabled;
    j->http_deny_private = e->opt.http_deny_private;
    if (a->def->type == STEP_TASK) {
        const struct handler *h = handler_find(e, a->def->queue);
        if (h) {
            j->handler = h->fn;
            j->handler_ud = h->ud;
            j->command = h->command;
        }
    }
    /* queued by jobs_flush, with the others of the round */
    GROW(e->staged, e->n_staged, e->alloc_staged);
    e->staged[e->n_staged++] = j;
}

/* An attempt to run: on a runner thread, or queued for workers. */
int job_for_workers(struct wfo_engine *e, const struct def_step *d)
{
    return d && d->type == STEP_TASK && !handler_find(e, d->queue);
}

void job_dispatch(struct wfo_engine *e, struct fsm_action *a)
{
    if (job_for_workers(e, a->def)) {
        struct task *t = task_new(a->x->id, a->x->ns, a->def->queue, a->step, a->token, a->attempt,
                                  json_object_get(a->args, "input"));
        t->heartbeat_ms = a->def->heartbeat_timeout_ms;
        t->report_pick = a->def->schedule_timeout_ms > 0;
        if (a->def->timeout_ms)
            t->deadline = wfo_now_ms() + a->def->timeout_ms;
        taskq_add(&e->tq, t);
        return;
    }
    if (a->def->type == STEP_TASK && a->def->schedule_timeout_ms) {
        /* a handler takes the task at once: no ScheduleTimeout applies */
        struct cmd *c = wfo_calloc(1, sizeof(*c));
        c->kind = CMD_PICKED;
        snprintf(c->id, sizeof(c->id), "%s", a->x->id);
        c->path = wfo_strdup(a->step);
        c->token = a->token;
        c->worker = wfo_strdup("handler");
        engine_post(e, c, NULL);
    }
    job_submit(e, a);
}

/* ACT_STOP: a worker's task is asked to stop (cancel_requested) and may
 * still complete; one no worker took is dropped, and its attempt fails at
 * once. A runner job (http, exec, an in-process handler) is let finish. */
void job_stop(struct wfo_engine *e, struct fsm_action *a)
{
    if (!a->def || a->def->type != STEP_TASK || !taskq_cancel(&e->tq, a->x->id, a->token))
        return;
    struct cmd *c = wfo_calloc(1, sizeof(*c));
    c->kind = CMD_RESULT;
    snprintf(c->id, sizeof(c->id), "%s", a->x->id);
    c->path = wfo_strdup(a->step);
    c->token = a->token;
    c->out.ok = 0;
    c->out.error = fsm_error("Cancelled", "no worker had taken the task when it was stopped", NULL);
    c->out.retryable = 0;
    engine_post(e, c, NULL);
}

void job_cancel(struct wfo_engine *e, struct fsm_action *a)
{
    if (a->def && a->def->type == STEP_TASK)
        taskq_cancel(&e->tq, a->x->id, a->token);
    jobs_flush(e); /* a job staged in this round is found in the queue */
    struct wfo_buf key = WFO_BUF_INIT;
    job_key(&key, a->x->id, a->step, a->token);
    pthread_mutex_lock(&e->mu);
    struct step_job *j = wfo_map_get(&e->running, key.buf);
    if (j)
        proc_cancel_request(&j->cancel);
    /* not started yet: drop it from the queue */
    for (int i = e->jobs_head; !j && i < e->n_jobs; i++) {
        struct step_job *q = e->jobs[i];
        if (q->token == a->token && strcmp(q->exec_id, a->x->id) == 0 &&
            strcmp(q->path, a->step) == 0) {
            memmove(e->jobs + i, e->jobs + i + 1, (size_t)(e->n_jobs - i - 1) * sizeof(*e->jobs));
            e->n_jobs--;
            job_free(q);
            break;
        }
    }
    pthread_mutex_unlock(&e->mu);
    wfo_buf_release(&key);
}

/* --- the engine thread: applying commands ----------------------------------- */

struct same_ud {
    const char *ns, *workflow;
    json_t *input;
    int same;
};

/* An id taken in another namespace is a conflict like any other: its
 * execution is never returned to this one (SPEC 4). */
static int same_cb(void *ud, const struct store_exec *r)
{
    struct same_ud *s = ud;
    json_t *in = parse_or_null(r->input);
    s->same = strcmp(r->namespace, s->ns) == 0 && strcmp(r->workflow, s->workflow) == 0 && in &&
              wfo_json_equal(in, s->input);
    json_decref(in);
    return 0;
}

static void do_start(struct wfo_engine *e, struct cmd *c)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct execution *x = wfo_map_get(&e->execs, c->id);
    const char *ns = c->ns ? c->ns : e->ns;
    struct same_ud s = {.ns = ns, .workflow = c->def->name, .input = c->input};
    int rc = 0, k = store_shard_of(c->id);
    if (!x && e->cluster && !(e->shards >> k & 1)) {
        /* E8: its rows would be refused, and the round with them */
        wfo_error_set(&err, WFO_EFENCED, "execution '%s' is in shard %d, which another node holds",
                      c->id, k);
        reply_done(c->reply, err.code, &err);
        c->reply = NULL;
        return;
    }
    if (x) {
        s.same = strcmp(x->ns, ns) == 0 && strcmp(x->workflow, c->def->name) == 0 &&
                 wfo_json_equal(x->input, c->input);
        rc = 1;
    } else if (!c->fresh) {
        rc = e->store->ops->get_exec(e->store, c->id, same_cb, &s, &err);
        rc = rc == 0 ? 1 : rc == WFO_ENOTFOUND ? 0 : rc;
    }
    if (rc == 0 && c->epoch != defs_epoch(e) && !defs_stored(e, c->ns ? c->ns : e->ns, c->def))
        rc = wfo_error_set(&err, WFO_ENOTFOUND, "workflow '%s' not found", c->def->name);
    if (rc < 0) {
        reply_done(c->reply, rc, &err);
        c->reply = NULL; /* answered: not again after the commit */
        return;
    }
    if (rc == 1) {
        if (s.same && x) {
            /* in memory: perhaps made by a round not yet committed, whose
             * row the caller would not find (404): answered after this
             * round's commit, which follows that one's (E1) */
            if (c->reply)
                c->reply->created = 0;
            return;
        }
        if (s.same) {
            if (c->reply)
                c->reply->created = 0;
            reply_done(c->reply, 0, NULL);
        } else {
            wfo_error_set(&err, WFO_ECONFLICT,
                          "execution '%s' exists with another workflow or input", c->id);
            reply_done(c->reply, WFO_ECONFLICT, &err);
        }
        c->reply = NULL; /* answered: not again after the commit */
        return;
    }
    x = exec_new(c->id, c->ns ? c->ns : e->ns, c->def, c->input, e->fsm.now);
    wfo_map_put(&e->execs, x->id, x);
    c->made = 1;
    if (c->reply)
        c->reply->created = 1;
    fsm_start(&e->fsm, x);
    /* replied after the commit (E1) */
}

/* The status and workflow of execution id's row, read without loading it. */
struct row_seen {
    char status[16];
    char workflow[160]; /* names are at most 128 bytes (SPEC 2) */
};

static int row_seen_cb(void *ud, const struct store_exec *r)
{
    struct row_seen *s = ud;
    snprintf(s->status, sizeof(s->status), "%s", r->status);
    snprintf(s->workflow, sizeof(s->workflow), "%s", r->workflow);
    return 0;
}

/* An execution that exec_get cannot load although its row exists: its
 * workflow was deleted (DELETE /v1/workflows leaves ended executions
 * readable, SPEC 4). It has ended, so a delete takes its rows without
 * loading it; anything else is 409. 1 when c was handled. */
static int op_unloadable(struct wfo_engine *e, struct cmd *c)
{
    struct row_seen s = {"", ""};
    struct wfo_error err = WFO_ERROR_INIT;
    if (e->store->ops->get_exec(e->store, c->id, row_seen_cb, &s, &err) < 0 || !s.status[0])
        return 0;
    enum exec_status st = (enum exec_status)exec_status_parse(s.status);
    if (c->op == OP_DELETE && EX_ENDED(st)) {
        c->del_ok = 1; /* answered once this round commits */
        return 1;
    }
    wfo_error_set(&err, WFO_ECONFLICT, "execution '%s' is %s and its workflow '%s' was deleted",
                  c->id, s.status, s.workflow);
    reply_done(c->reply, err.code, &err);
    c->reply = NULL;
    return 1;
}

static void do_op(struct wfo_engine *e, struct cmd *c)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct execution *x = exec_get(e, c->id, &err);
    if (!x) {
        if (err.code == WFO_ENOTFOUND && op_unloadable(e, c))
            return;
        if (!err.code)
            wfo_error_set(&err, WFO_ENOTFOUND, "execution '%s' not found", c->id);
        reply_done(c->reply, err.code, &err);
        c->reply = NULL;
        return;
    }
    int rc;
    if (x->deleting) {
        wfo_error_set(&err, WFO_ENOTFOUND, "execution '%s' not found", c->id);
        reply_done(c->reply, err.code, &err);
        c->reply = NULL;
        return;
    }
    switch (c->op) {
    case OP_DELETE:
        /* the rows go at the end of this round's transaction, after
         * anything it writes of the execution; memory lets go of it once
         * that commits (round_finish) */
        rc = EX_ENDED(x->status) ? 0 : WFO_ECONFLICT;
        if (rc == 0) {
            x->deleting = 1;
            c->del_ok = 1;
        } else {
            wfo_error_set(&err, rc, "execution '%s' is %s: cancel or terminate it first", x->id,
                          exec_status_names[x->status]);
            reply_done(c->reply, rc, &err);
            c->reply = NULL;
            return;
        }
        break;
    case OP_CANCEL:
        rc = fsm_cancel(&e->fsm, x, c->reason, c->compensate);
        break;
    case OP_TERMINATE:
        rc = fsm_terminate(&e->fsm, x, c->reason);
        break;
    case OP_PAUSE:
        rc = fsm_pause(&e->fsm, x);
        break;
    case OP_RESUME:
        rc = fsm_resume(&e->fsm, x);
        break;
    default:
        rc = fsm_retry(&e->fsm, x, c->from, &err);
        break;
    }
    if (rc < 0) {
        if (!err.code && x->status == EX_RUNNING && (x->comp_queue || x->draining))
            /* running, but already on its way to an end (fsm.c apply_cancel) */
            wfo_error_set(&err, rc, "execution '%s' is %s", x->id,
                          x->comp_queue ? "running its compensations"
                                        : "ending: it waits for its attempts in flight to stop");
        else if (!err.code)
            wfo_error_set(&err, rc, "execution '%s' is %s", x->id, exec_status_names[x->status]);
        reply_done(c->reply, rc, &err);
        c->reply = NULL;
    }
}

/* Deletes workflow c->path of namespace c->ns (every version). On the
 * engine thread, so that no start is applied in between: an execution
 * started but not yet committed is in memory (E4), one committed is in the
 * store, and both make a 409. Then the cached definitions go, and a start
 * that resolved one before is refused by do_start (wf_epoch). */
static void do_wf_delete(struct wfo_engine *e, struct cmd *c)
{
    struct wfo_error err = WFO_ERROR_INIT;
    const char *ns = c->ns, *name = c->path;
    const char *k;
    void *v;
    int rc = 0;
    for (size_t it = 0; rc == 0 && wfo_map_next(&e->execs, &it, &k, &v);) {
        struct execution *x = v;
        if (!EX_ENDED(x->status) && strcmp(x->ns, ns) == 0 && strcmp(x->workflow, name) == 0)
            rc = wfo_error_set(&err, WFO_ECONFLICT,
                               "workflow '%s' has a running execution ('%s'): cancel or "
                               "terminate it first",
                               name, x->id);
    }
    if (rc == 0)
        rc = e->store->ops->delete_workflow(e->store, ns, name, &err);
    if (rc == 0)
        defs_forget(e, ns, name);
    reply_done(c->reply, rc, &err);
    c->reply = NULL;
}

/* Applies a result. Returns 1 when reading its execution failed and nobody
 * waits for an answer (a runner's result): the caller keeps it for later
 * (E5). A worker waiting for its answer gets the store's error (503) and
 * sends it again. */
static int do_result(struct wfo_engine *e, struct cmd *c)
{
    struct wfo_error rerr = WFO_ERROR_INIT;
    struct execution *x = exec_get(e, c->id, &rerr);
    int rc = WFO_ENOTFOUND;
    if (!x && !EXEC_GONE(&rerr)) {
        if (!c->reply) {
            engine_read_failed(e, c->id, "a step's result", &rerr);
            return 1;
        }
        reply_done(c->reply, rerr.code, &rerr);
        c->reply = NULL;
        return 0;
    }
    if (x && c->reply) /* names the workflow for the caller's audit line */
        snprintf(c->reply->workflow, sizeof(c->reply->workflow), "%s", x->workflow);
    if (x)
        rc =
            fsm_result(&e->fsm, x, c->path, c->child ? child_token(x, c->path, c->child) : c->token,
                       c->out.ok, c->out.output, c->out.error, c->out.retryable);
    if (rc < 0 && c->reply) {
        struct wfo_error err = WFO_ERROR_INIT;
        wfo_error_set(&err, rc, "the attempt is no longer current");
        reply_done(c->reply, rc, &err);
        c->reply = NULL;
    }
    return 0;
}

/* A read on the engine thread failed: counted (wfo_store_read_retries_total)
 * and logged; what needed it is tried again (E5). */
void engine_read_failed(struct wfo_engine *e, const char *exec_id, const char *what,
                        const struct wfo_error *err)
{
    wfo_warn(exec_id, NULL, "%s: reading the store failed, tried again in 1 s: %s", what,
             err->message);
    pthread_mutex_lock(&e->mu);
    e->stats.read_retries++;
    pthread_mutex_unlock(&e->mu);
}

/* --- the engine thread: its loop --------------------------------------------- */

/* Does the periodic duties that are due (engine_tick), then applies the
 * queued commands to the current round. */
static void apply_cmds(struct wfo_engine *e, struct cmd *cmds)
{
    struct fsm *f = &e->fsm;
    struct round *r = e->cur;
    f->now = wfo_now_ms();
    e->taken = cmds; /* a recovery in the tick may adopt a result among them (E9) */
    engine_tick(e, &cmds);
    e->taken = NULL;
    for (struct cmd *c = cmds, *next; c; c = next) {
        next = c->next;
        if (c->kind == CMD_START) {
            do_start(e, c);
        } else if (c->kind == CMD_RESULT) {
            if (c->orphan) { /* never adopted: it finds no attempt (E9) */
                c->orphan = 0;
                atomic_fetch_sub(&e->orphans, 1);
            }
            if (do_result(e, c)) {
                c->next = e->results_kept;
                e->results_kept = c;
                e->results_retry_at = f->now + 1000;
                continue;
            }
        } else if (c->kind == CMD_WF_DELETE) {
            do_wf_delete(e, c);
        } else if (c->kind == CMD_WAKE) {
            if (events_wake(e, c)) { /* E5: tried again, like a result */
                c->next = e->results_kept;
                e->results_kept = c;
                e->results_retry_at = f->now + 1000;
                continue;
            }
        } else if (c->kind == CMD_PICKED) {
            struct execution *x = exec_get(e, c->id, NULL);
            if (x)
                fsm_task_picked(f, x, c->path, c->token, c->worker);
        } else if (c->kind == CMD_LEASED) {
            /* the row's lease, so that a restart keeps it (the cmd lives
             * until the round is committed: the row borrows its strings);
             * it waits for a round that commits anyway (round_busy) */
            struct store_task *t = store_batch_task(&r->batch);
            t->id = c->path;
            t->exec_id = c->id;
            t->lease = c->lease;
            t->leased_until = c->leased_until;
            t->lease_only = 1;
            if (!r->leases)
                r->leases_due = f->now + LEASE_WRITE_MS;
            c->next = r->leases;
            r->leases = c;
            continue;
        } else {
            do_op(e, c);
        }
        c->next = r->replies;
        r->replies = c;
    }
    child_round(e);
}

/* --- the invariants, checked (check.h) ------------------------------------ */

/* E1: no attempt of f's ACT_RUN runs or is queued yet (under mu). */
static const char *check_not_run(struct wfo_engine *e, const struct fsm *f, char *why, size_t n)
{
    struct wfo_buf key = WFO_BUF_INIT;
    const char *name = NULL;
    for (int i = 0; i < f->n_acts && !name; i++) {
        const struct fsm_action *a = &f->acts[i];
        if (a->kind != ACT_RUN)
            continue;
        job_key(&key, a->x->id, a->step, a->token);
        const struct step_job *run = wfo_map_get(&e->running, key.buf);
        int queued = run && !run->orphan; /* an orphan is adopted, not run again (E9) */
        for (int j = e->jobs_head; j < e->n_jobs && !queued; j++)
            queued = e->jobs[j]->token == a->token && strcmp(e->jobs[j]->path, a->step) == 0 &&
                     strcmp(e->jobs[j]->exec_id, a->x->id) == 0;
        if (queued)
            name = check_broken(why, n, "E1", "attempt %s runs before its batch is committed",
                                key.buf);
    }
    wfo_buf_release(&key);
    return name;
}

const char *engine_check(struct wfo_engine *e, const struct round *flight, char *why, size_t n)
{
    const char *name = NULL;
    pthread_mutex_lock(&e->mu);
    /* E1: what a round asks for is done after its commit */
    name = check_not_run(e, &e->fsm, why, n);
    if (!name && flight && !flight->done)
        name = check_not_run(e, &flight->fx, why, n);
    /* E1: the jobs a round made are queued once it was acted on */
    if (!name && e->n_staged)
        name =
            check_broken(why, n, "E1", "%d jobs made but not queued for the runners", e->n_staged);
    /* E2: a failed commit stops the engine */
    for (int i = 0; i < 3 && !name; i++)
        if (e->rounds[i].busy && e->rounds[i].done && e->rounds[i].rc < 0 && !e->failed)
            name = check_broken(why, n, "E2", "a commit failed (%d) and the engine goes on",
                                e->rounds[i].rc);
    /* E4: one round gathering, at most one in flight, committed in order */
    int busy = 0;
    for (int i = 0; i < 3; i++)
        busy += e->rounds[i].busy;
    if (!name && (busy > 2 || (flight && flight == e->cur)))
        name = check_broken(why, n, "E4", "%d rounds busy, the one in flight %s gathering", busy,
                            flight && flight == e->cur ? "is" : "is not");
    if (!name && e->wround && e->wround != flight)
        name =
            check_broken(why, n, "E4", "the writer commits a round that is not the one in flight");
    if (!name && flight && flight->gen >= e->fsm.gen)
        name = check_broken(why, n, "E4", "the round in flight (gen %d) is not older than gen %d",
                            flight->gen, e->fsm.gen);
    /* E5: what a failed read kept is counted */
    if (!name && (e->sweep_kept || e->results_kept) && e->stats.read_retries <= 0)
        name = check_broken(why, n, "E5", "work kept after a failed read, none counted");
    pthread_mutex_unlock(&e->mu);
    /* E6: the heap holds only timers due before the horizon (a window read
     * that failed half way may leave one window's worth past it) */
    for (int i = 0; i < e->n_heap && !name; i++) {
        const struct tentry *t = e->heap[i];
        if (i && e->heap[(i - 1) / 2]->due > t->due)
            name = check_broken(why, n, "E6", "the timer heap is out of order at %d", i);
        else if (!t->dead && t->due >= e->timer_horizon + TIMER_WINDOW_MS)
            name = check_broken(why, n, "E6", "timer %s due past the horizon", t->id);
        else if (!t->dead && wfo_map_get(&e->timers, t->id) != t)
            name = check_broken(why, n, "E6", "timer %s in the heap but not armed", t->id);
    }
    /* E7: every batch names this engine as its owner */
    for (int i = 0; i < 3 && !name; i++) {
        const struct round *r = &e->rounds[i];
        if (r->busy && r != e->cur && r->batch.owner != e->owner)
            name = check_broken(why, n, "E7", "a round names another owner");
    }
    return name;
}

/* Is there work for the engine thread now? (under mu) */
static int engine_due(struct wfo_engine *e, int64_t *due)
{
    if (e->head && !e->regroup) /* a regroup lets the queue wait */
        return 1;
    int64_t next = engine_tick_next(e);
    if (next <= wfo_now_ms())
        return 1;
    *due = next;
    return 0;
}

/* A commit failed (E2): the commands applied since are not committed
 * either; answers them and the commands queued since (post() refuses new
 * ones from now on, unless a restart is recovering), with rc and err.
 * Takes mu. */
static void engine_fail(struct wfo_engine *e, int rc, const struct wfo_error *err)
{
    pthread_mutex_lock(&e->mu);
    e->failed = rc;
    e->fail_err = *err;
    pthread_cond_broadcast(&e->ended_cv);
    for (struct cmd *c = e->cur->replies; c; c = c->next) {
        reply_done(c->reply, rc, err);
        c->reply = NULL;
    }
    /* the runners' results that rounds not committed had applied: their
     * attempts look running to the recovery, which adopts them (E9) */
    for (int i = 0; i < 3; i++)
        for (struct cmd **p = &e->rounds[i].replies, *c; (c = *p);)
            if (c->runner && !(e->rounds[i].done && e->rounds[i].rc == 0)) {
                *p = c->next;
                queue_orphan_locked(e, c);
            } else {
                p = &c->next;
            }
    struct cmd *c = e->head, *next;
    e->head = e->tail = NULL;
    for (; c; c = next) {
        next = c->next;
        if (c->runner) {
            queue_orphan_locked(e, c); /* for the restart's recovery (E9) */
            continue;
        }
        reply_done(c->reply, rc, err);
        cmd_free(c);
    }
    pthread_mutex_unlock(&e->mu);
}

static void engine_forget(struct wfo_engine *e);

/* E8: once no round is in flight, the node forgets all it holds and
 * recovers its share again (giving back what is above it); commands wait
 * in the queue meanwhile. A failure fails the engine (E2), whose restart
 * then tries again. */
static int engine_regroup(struct wfo_engine *e, struct wfo_error *err)
{
    engine_forget(e);
    int rc = engine_recover(e, err);
    if (rc == 0)
        wfo_info(NULL, NULL, "node %s regrouped: holds shards %#x", e->owner, (unsigned)e->shards);
    return rc;
}

/* How long the engine thread, having just worked, polls its queue before
 * it sleeps on its condition variable (µs). On a virtual machine a vCPU
 * that halts takes 50 to 150 µs to wake (an interrupt through the host);
 * the commands of one execution follow each other at about that pace
 * (a worker's result a few hundred µs after its task's dispatch), so
 * sleeping at once made every step pay for a wake-up, and for a cold
 * vCPU in its commit's fdatasync. Linux's haltpoll cpuidle driver polls
 * 200 µs before halting for the same reason, and Go's scheduler spins
 * before it parks a thread. The poll yields the CPU to any thread that
 * can run, and happens only after work: an idle engine sleeps.
 * (build/bench latency p50 over HTTP, alternating runs in a slow spell of
 * the host: 2.69-3.23 -> 2.13-2.50 ms; docs/operations/scaling.md.) */
#define ENGINE_SPIN_US 200

/* Polls e->head for up to ENGINE_SPIN_US, yielding; without mu. The
 * load is a peek: the caller looks again under mu. */
static void engine_spin(struct wfo_engine *e)
{
    double until = wfo_mono_ms_f() + ENGINE_SPIN_US / 1000.0;
    while (!__atomic_load_n(&e->head, __ATOMIC_RELAXED) && wfo_mono_ms_f() < until)
        sched_yield();
}

/* The engine thread's loop. While the writer commits one round, it
 * applies the commands that arrived meanwhile to the next (E4); a round is
 * submitted as soon as the writer is free, so under load batches grow by
 * themselves and an idle engine commits each command at once. Returns 0
 * when the engine stops, or the error of a commit that failed (E2: the
 * engine has then failed, its callers answered). */
static int engine_run(struct wfo_engine *e)
{
    struct round *flight = NULL; /* submitted, not yet acted on */
    int spin = 0;                /* worked since it last slept: poll first */
    int rc = 0;
    pthread_mutex_lock(&e->mu);
    for (;;) {
        int64_t due = 0;
        for (;;) {
            if (e->regroup && !flight && !round_busy(e, e->cur) && !e->stop) {
                pthread_mutex_unlock(&e->mu);
                struct wfo_error err = WFO_ERROR_INIT;
                if ((rc = engine_regroup(e, &err)) < 0) {
                    engine_fail(e, rc, &err);
                    return rc;
                }
                pthread_mutex_lock(&e->mu);
                continue;
            }
            if (flight && flight->done)
                break;
            if (!flight && round_busy(e, e->cur))
                break;
            if (e->stop) {
                if (!flight)
                    goto out;
                pthread_cond_wait(&e->cv, &e->mu);
                continue;
            }
            if (engine_due(e, &due))
                break;
            if (spin && !flight) {
                spin = 0;
                pthread_mutex_unlock(&e->mu);
                engine_spin(e);
                pthread_mutex_lock(&e->mu);
                continue;
            }
            struct timespec ts = {(time_t)(due / 1000), (long)(due % 1000) * 1000000L};
            pthread_cond_timedwait(&e->cv, &e->mu, &ts);
        }
        struct cmd *cmds = e->stop || e->regroup ? NULL : e->head;
        if (cmds)
            e->head = e->tail = NULL;
        int stopping = e->stop;
        int committed = flight && flight->done; /* read under mu */
        pthread_mutex_unlock(&e->mu);

        if (committed) {
            /* the next round goes to the writer before this one is acted
             * on, so acting and committing overlap */
            struct round *done = flight;
            flight = NULL;
            if (done->rc < 0) {
                rc = round_finish(e, done, NULL);
                flight = done;
                break;
            }
            int here = 0;
            if (round_busy(e, e->cur))
                flight = round_submit(e, &here);
            round_finish(e, done, flight);
            if (flight && here) {
                if ((rc = round_finish(e, flight, NULL)) < 0)
                    break;
                flight = NULL;
            }
        }
        /* a regroup (E8) waits for the round in flight with no tick and no
         * command: what memory holds of lost shards is stale */
        if (!stopping && !e->regroup)
            apply_cmds(e, cmds);
        if (!flight && round_busy(e, e->cur)) {
            int here = 0;
            flight = round_submit(e, &here);
            if (here) { /* committed here, or wrote nothing */
                if ((rc = round_finish(e, flight, NULL)) < 0)
                    break;
                flight = NULL;
            }
        }
        WFO_CHECK(engine_check, e, flight);
        spin = cmds || committed;
        pthread_mutex_lock(&e->mu);
    }
    engine_fail(e, rc, &flight->err);
    WFO_CHECK(engine_check, e, flight);
    return rc;
out:
    pthread_mutex_unlock(&e->mu);
    return 0;
}

/* Drops everything the engine holds in memory, on the engine thread, with
 * no round in flight: the store has all that was committed (E2). The
 * attempts that runner threads are running still post their results;
 * recovery starts them again (at least once, SPEC 3), and the result of
 * whichever run ends second is stale (fsm.c I1). */
static void engine_forget(struct wfo_engine *e)
{
    const char *k;
    void *v;
    for (int i = 0; i < 3; i++) {
        round_release(&e->rounds[i]);
        memset(&e->rounds[i], 0, sizeof(e->rounds[i]));
        round_init(&e->rounds[i]);
    }
    e->cur = &e->rounds[0];
    e->cur->busy = 1;
    fsm_reset(&e->fsm);
    e->child_seen = 0;
    for (size_t it = 0; wfo_map_next(&e->execs, &it, &k, &v);)
        exec_free(v);
    wfo_map_release(&e->execs);
    events_index_release(e);
    for (int i = 0; i < e->n_heap; i++)
        tentry_free(e->heap[i]);
    e->n_heap = 0;
    wfo_map_release(&e->timers);
    e->timer_horizon = 0;
    taskq_clear(&e->tq);
    pthread_mutex_lock(&e->mu);
    for (int i = e->jobs_head; i < e->n_jobs; i++)
        job_free(e->jobs[i]);
    e->jobs_head = e->n_jobs = 0;
    /* the jobs that run go on, and the results of those that ended wait in
     * the queue: the recovery adopts them (E9) */
    for (size_t it = 0; wfo_map_next(&e->running, &it, &k, &v);)
        if (!((struct step_job *)v)->orphan) {
            ((struct step_job *)v)->orphan = 1;
            atomic_fetch_add(&e->orphans, 1);
        }
    for (struct cmd *c = e->head; c; c = c->next)
        if (c->runner)
            cmd_orphan_locked(e, c);
    pthread_mutex_unlock(&e->mu);
    for (int i = 0; i < e->n_staged; i++)
        job_free(e->staged[i]);
    e->n_staged = 0;
    for (struct task *t = e->sweep_kept, *next; t; t = next) {
        next = t->next;
        task_free(t);
    }
    e->sweep_kept = NULL;
    struct cmd *drop = NULL;
    pthread_mutex_lock(&e->mu);
    for (struct cmd *c = e->results_kept, *next; c; c = next) {
        next = c->next;
        if (c->runner) {
            queue_orphan_locked(e, c); /* adopted by the recovery (E9) */
        } else {
            c->next = drop;
            drop = c;
        }
    }
    pthread_mutex_unlock(&e->mu);
    e->results_kept = NULL;
    for (struct cmd *c = drop, *next; c; c = next) {
        next = c->next;
        cmd_free(c);
    }
    e->shards = 0;
    atomic_store(&e->held, 0);
    memset(e->epochs, 0, sizeof(e->epochs));
    e->regroup = 0;
    e->next_cron = 0; /* the latest slots, once recovered (triggers.c T3) */
}

/* After a failed commit (E2): forgets what memory held and recovers from
 * the store again, as a restart of the process would, tried again with a
 * growing, jittered delay (RESTART_MIN_MS to RESTART_MAX_MS) while the
 * store refuses. Returns 0 once recovered, -1 when the engine stops first.
 * An engine fenced out (E7: another took its shards over) does not
 * restart: claiming them back would fence out the other in turn; in a
 * cluster (E8) it does, since it then claims only free shards. */
#define RESTART_MIN_MS 100
#define RESTART_MAX_MS 2000
static int engine_restart(struct wfo_engine *e)
{
    int64_t delay = RESTART_MIN_MS;
    pthread_mutex_lock(&e->mu);
    for (;;) {
        int64_t until = wfo_now_ms() + delay / 2 + (int64_t)(wfo_random() * (double)delay / 2);
        int fenced = e->failed == WFO_EFENCED && !e->cluster;
        while (!e->stop && (fenced || wfo_now_ms() < until)) {
            struct timespec ts = {(time_t)(until / 1000), (long)(until % 1000) * 1000000L};
            pthread_cond_timedwait(&e->cv, &e->mu, &ts);
            if (fenced)
                until = wfo_now_ms() + RESTART_MAX_MS;
        }
        if (e->stop)
            break;
        e->recovering = 1; /* post() queues what comes meanwhile */
        pthread_mutex_unlock(&e->mu);
        engine_forget(e);
        struct wfo_error err = WFO_ERROR_INIT;
        int rc = engine_recover(e, &err);
        if (rc == 0) {
            /* logged first: whoever sees the engine ready finds the line */
            wfo_info(NULL, NULL, "engine recovered from the store after a failed commit");
            pthread_mutex_lock(&e->mu);
            e->recovering = 0;
            e->failed = 0;
            e->fail_err = (struct wfo_error)WFO_ERROR_INIT;
            e->stats.restarts++;
            pthread_mutex_unlock(&e->mu);
            return 0;
        }
        wfo_warn(NULL, NULL, "engine recovery failed, tried again: %s", err.message);
        pthread_mutex_lock(&e->mu);
        e->recovering = 0;
        pthread_mutex_unlock(&e->mu);
        engine_fail(e, e->failed, &err);
        delay = delay * 2 < RESTART_MAX_MS ? delay * 2 : RESTART_MAX_MS;
        pthread_mutex_lock(&e->mu);
    }
    pthread_mutex_unlock(&e->mu);
    return -1;
}

static void *engine_main(void *arg)
{
    struct wfo_engine *e = arg;
    pthread_setname_np(pthread_self(), "wfo-engine");
    while (engine_run(e) < 0 && engine_restart(e) == 0)
        ;
    return NULL;
}

/* --- public API ------------------------------------------------------------------ */

/* The engine's default policy from JSON text, checked like a step's
 * `retry:` (def_retry_compile); the first problem is the error
 * ("retry.max_attempts: must be at least 1"). */
static int retry_from_json(const char *text, struct def_retry *r, struct wfo_error *err)
{
    json_t *doc = NULL;
    struct def_problems probs = {0};
    int rc = wfo_doc_parse(text, strlen(text), &doc, err);
    if (rc < 0)
        return rc;
    rc = def_retry_compile(doc, "retry", r, &probs);
    if (rc < 0) {
        wfo_error_set(err, WFO_EINVAL, "%s: %s", probs.n ? probs.items[0].path : "retry",
                      probs.n ? probs.items[0].message : "");
        def_retry_release(r);
    }
    def_problems_release(&probs);
    json_decref(doc);
    return rc;
}

/* Server-side secrets (SPEC 2.1): `$secrets` in every template compiled
 * from now on, and their values redacted. */
static int engine_secrets(const char *text, struct wfo_error *err)
{
    json_t *obj = NULL, *v;
    const char *k;
    int rc = wfo_json_parse(text, strlen(text), &obj, err);
    if (rc < 0)
        return rc;
    if (!json_is_object(obj)) {
        json_decref(obj);
        return wfo_error_set(err, WFO_EINVAL, "secrets: expected an object of strings");
    }
    json_object_foreach(obj, k, v)
    {
        if (!json_is_string(v) || wfo_redact_add(json_string_value(v)) < 0) {
            json_decref(obj);
            return wfo_error_set(err, WFO_EINVAL,
                                 "secrets: %s: expected a string of at least %d characters", k,
                                 WFO_REDACT_MIN);
        }
    }
    expr_set_secrets(obj);
    json_decref(obj);
    return 0;
}

int wfo_engine_new(const struct wfo_engine_options *opt, struct wfo_engine **out,
                   struct wfo_error *err)
{
    struct wfo_engine *e = wfo_calloc(1, sizeof(*e));
    int rc;
    e->opt = *opt;
    if (!e->opt.db_url)
        e->opt.db_url = "sqlite::memory:";
    if (e->opt.transition_limit <= 0)
        e->opt.transition_limit = 10000;
    if (e->opt.runner_threads <= 0)
        e->opt.runner_threads = 16;
    e->ns = wfo_strdup(opt->ns ? opt->ns : "default");
    /* an owner id of its own at every start: a restarted engine is a new owner */
    wfo_id_new(e->owner);
    e->shard_lease_ms = SHARD_LEASE_MS;
    e->started_at = wfo_now_ms();
    pthread_mutex_init(&e->mu, NULL);
    pthread_mutex_init(&e->defs_mu, NULL);
    pthread_mutex_init(&e->launch_mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    pthread_cond_init(&e->ended_cv, NULL);
    pthread_cond_init(&e->jobs_cv, NULL);
    pthread_cond_init(&e->writer_cv, NULL);
    pthread_mutex_init(&e->outbox_mu, NULL);
    {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&e->outbox_cv, &ca);
        pthread_condattr_destroy(&ca);
    }
    fsm_init(&e->fsm);
    taskq_init(&e->tq, 30000);
    e->fsm.transition_limit = e->opt.transition_limit;
    e->default_retry = def_retry_default;
    if (opt->default_retry_json) {
        rc = retry_from_json(opt->default_retry_json, &e->default_retry, err);
        if (rc < 0)
            goto fail;
    }
    e->fsm.default_retry = &e->default_retry;
    e->fsm.stop_ms = e->tq.lease_ms;
    for (int i = 0; i < 3; i++)
        round_init(&e->rounds[i]);
    e->cur = &e->rounds[0];
    e->cur->busy = 1;
    if (opt->secrets_json && (rc = engine_secrets(opt->secrets_json, err)) < 0)
        goto fail;
    rc = store_open(e->opt.db_url, &e->store, err);
    if (rc < 0)
        goto fail;
    if (opt->store_pool_size > 0 && e->store->ops->set_pool_size)
        e->store->ops->set_pool_size(e->store, opt->store_pool_size);
    /* keys leases (taskq.c T2) and, through engine_server_key, cursors */
    rc = e->store->ops->server_key(e->store, e->tq.key, sizeof(e->tq.key), err);
    if (rc < 0)
        goto fail;
    *out = e;
    return 0;
fail:
    wfo_engine_free(e);
    return rc;
}

/* A cluster (E8): the store tells of tasks made ready on other nodes, when
 * its back end can (PostgreSQL's NOTIFY); a long poll here then asks them
 * at once (api/tasks.c). Without it, polls ask the others every slice. */
static void on_ready_elsewhere(void *ud, const char *owner, const char *ns, const char *queue)
{
    struct wfo_engine *e = ud;
    if (strcmp(owner, e->owner) != 0)
        taskq_elsewhere(&e->tq, ns, queue);
}

static void cluster_listen(struct wfo_engine *e)
{
    struct wfo_error err = WFO_ERROR_INIT;
    if (!e->store->ops->listen_ready)
        return;
    if (e->store->ops->listen_ready(e->store, on_ready_elsewhere, e, &err) < 0) {
        wfo_warn(NULL, NULL, "the store cannot tell of other nodes' tasks: %s", err.message);
    } else {
        atomic_store(&e->hears_ready, 1);
        wfo_info(NULL, NULL, "node %s hears of the other nodes' ready tasks from the store",
                 e->owner);
    }
}

int engine_hears_others(struct wfo_engine *e)
{
    return atomic_load(&e->hears_ready);
}

/* Recovery, then the threads; once (wfo.h). A failed recovery fails the
 * engine (as E2): every later call gets its error. */
int wfo_engine_launch(struct wfo_engine *e, struct wfo_error *err)
{
    pthread_mutex_lock(&e->launch_mu);
    if (e->started) {
        pthread_mutex_unlock(&e->launch_mu);
        return wfo_error_set(err, WFO_ESTATE, "engine already launched");
    }
    e->started = 1;
    struct wfo_error rerr = WFO_ERROR_INIT;
    int rc = engine_recover(e, &rerr);
    if (rc == 0 && e->cluster)
        cluster_listen(e);
    if (rc == 0) {
        e->n_runners = e->opt.runner_threads;
        e->runners = wfo_calloc((size_t)e->n_runners, sizeof(*e->runners));
        for (int i = 0; i < e->n_runners; i++)
            pthread_create(&e->runners[i], NULL, runner_main, e);
        pthread_create(&e->writer, NULL, writer_main, e);
        pthread_create(&e->thread, NULL, engine_main, e);
        e->threads = 1;
    } else {
        pthread_mutex_lock(&e->mu);
        e->failed = rc;
        e->fail_err = rerr;
        pthread_mutex_unlock(&e->mu);
        if (err)
            *err = rerr;
    }
    e->launch_rc = rc;
    atomic_store_explicit(&e->launched, 1, memory_order_release);
    pthread_mutex_unlock(&e->launch_mu);
    return rc;
}

int engine_ready(struct wfo_engine *e, struct wfo_error *err)
{
    if (!atomic_load_explicit(&e->launched, memory_order_acquire))
        return wfo_error_set(err, WFO_ESTATE,
                             "engine not launched: call wfo_engine_launch() first");
    if (e->launch_rc < 0) {
        pthread_mutex_lock(&e->mu);
        if (err)
            *err = e->fail_err;
        pthread_mutex_unlock(&e->mu);
    }
    return e->launch_rc;
}

int wfo_engine_handle(struct wfo_engine *e, const char *queue, wfo_task_handler fn, void *ud)
{
    if (e->started)
        return WFO_ESTATE;
    e->handlers = wfo_realloc(e->handlers, (size_t)(e->n_handlers + 1) * sizeof(*e->handlers));
    e->handlers[e->n_handlers++] = (struct handler){wfo_strdup(queue), fn, ud, NULL};
    return 0;
}

int wfo_engine_handle_command(struct wfo_engine *e, const char *queue, const char *command)
{
    int rc = wfo_engine_handle(e, queue, NULL, NULL);
    if (rc == 0)
        e->handlers[e->n_handlers - 1].command = wfo_strdup(command);
    return rc;
}

/* A node that stops (E8) gives its shards back and says it left, so the
 * others take them at their next look rather than after the lease: no
 * round is in flight any more. */
static void cluster_leave(struct wfo_engine *e)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct store_node gone = {e->owner, e->node_url, e->started_at, 0};
    if ((e->shards && e->store->ops->release_shards(e->store, e->owner, e->shards, &err) < 0) ||
        e->store->ops->beat_node(e->store, &gone, &err) < 0)
        wfo_warn(NULL, NULL, "leaving the cluster: %s (the others wait for the lease)",
                 err.message);
    else
        wfo_info(NULL, NULL, "node %s left the cluster, shards %#x given back", e->owner,
                 (unsigned)e->shards);
}

void wfo_engine_free(struct wfo_engine *e)
{
    if (!e)
        return;
    webhooks_stop(e); /* its threads read the store and wait on the outbox */
    pthread_mutex_lock(&e->mu);
    e->stop = 1;
    pthread_cond_broadcast(&e->cv);
    pthread_cond_broadcast(&e->jobs_cv);
    pthread_cond_broadcast(&e->ended_cv);
    /* running attempts are abandoned: cancel them so their threads return */
    const char *k;
    void *v;
    for (size_t it = 0; wfo_map_next(&e->running, &it, &k, &v);)
        proc_cancel_request(&((struct step_job *)v)->cancel);
    pthread_mutex_unlock(&e->mu);
    taskq_stop(&e->tq);
    if (e->threads) {
        pthread_join(e->thread, NULL); /* it waits for the round in flight */
        pthread_mutex_lock(&e->mu);
        e->wstop = 1;
        pthread_cond_signal(&e->writer_cv);
        pthread_mutex_unlock(&e->mu);
        pthread_join(e->writer, NULL);
        for (int i = 0; i < e->n_runners; i++)
            pthread_join(e->runners[i], NULL);
        if (e->cluster)
            cluster_leave(e);
    }
    free(e->runners);
    def_retry_release(&e->default_retry); /* its non_retryable, when the server set one */
    for (int i = 0; i < e->n_staged; i++)
        job_free(e->staged[i]);
    free(e->staged);
    for (struct cmd *c = e->head, *next; c; c = next) {
        next = c->next;
        reply_done(c->reply, WFO_ESHUTDOWN, NULL);
        cmd_free(c);
    }
    for (int i = e->jobs_head; i < e->n_jobs; i++)
        job_free(e->jobs[i]);
    free(e->jobs);
    wfo_map_release(&e->running);
    wfo_map_release(&e->end_waits); /* the waits themselves are their callers' */
    for (size_t it = 0; wfo_map_next(&e->execs, &it, &k, &v);)
        exec_free(v);
    wfo_map_release(&e->execs);
    events_index_release(e);
    for (size_t it = 0; wfo_map_next(&e->timers, &it, &k, &v);)
        ((struct tentry *)v)->dead = 1;
    for (int i = 0; i < e->n_heap; i++)
        tentry_free(e->heap[i]);
    free(e->heap);
    wfo_map_release(&e->timers);
    for (size_t it = 0; wfo_map_next(&e->defs, &it, &k, &v);) {
        def_unref(v);
        free((char *)k);
    }
    wfo_map_release(&e->defs);
    triggers_release(e);
    for (int i = 0; i < e->n_handlers; i++) {
        free(e->handlers[i].queue);
        free(e->handlers[i].command);
    }
    free(e->handlers);
    fsm_release(&e->fsm);
    taskq_release(&e->tq);
    for (struct task *t = e->sweep_kept, *next; t; t = next) {
        next = t->next;
        task_free(t);
    }
    for (struct cmd *c = e->results_kept, *next; c; c = next) {
        next = c->next;
        cmd_free(c);
    }
    for (int i = 0; i < 3; i++)
        round_release(&e->rounds[i]);
    if (e->store)
        store_close(e->store);
    free(e->ns);
    free(e->node_url);
    pthread_mutex_destroy(&e->mu);
    pthread_mutex_destroy(&e->defs_mu);
    pthread_mutex_destroy(&e->launch_mu);
    pthread_cond_destroy(&e->cv);
    pthread_cond_destroy(&e->ended_cv);
    pthread_cond_destroy(&e->jobs_cv);
    pthread_cond_destroy(&e->writer_cv);
    pthread_mutex_destroy(&e->outbox_mu);
    pthread_cond_destroy(&e->outbox_cv);
    free(e);
}

/* A fresh id (made here: no client knows it yet) is drawn again until it
 * falls in a shard this node holds (E8), so that the start commits here;
 * with none held, it stays, and the start is refused (do_start). */
static void fresh_id_here(struct wfo_engine *e, char id[WFO_EXEC_ID_SIZE])
{
    store_shardset held = atomic_load(&e->held);
    for (int i = 0; held && i < 256 && !(held >> store_shard_of(id) & 1); i++)
        wfo_id_new(id);
}

/* A CMD_START of def d (its reference is the command's now) in namespace
 * ns, answered to r: id NULL or "" makes a new one (in a shard this node
 * holds, E8); input borrowed (NULL: {}). */
static struct cmd *start_cmd(struct wfo_engine *e, const char *ns, const char *id, int fresh_id,
                             struct def *d, int64_t epoch, json_t *input, struct reply *r)
{
    struct cmd *c = wfo_calloc(1, sizeof(*c));
    c->kind = CMD_START;
    c->ns = wfo_strdup(ns);
    if (id && *id) {
        snprintf(c->id, sizeof(c->id), "%s", id);
        c->fresh = fresh_id;
    } else {
        wfo_id_new(c->id);
        c->fresh = 1;
    }
    if (c->fresh && e->cluster)
        fresh_id_here(e, c->id);
    c->def = d;
    c->epoch = epoch;
    c->input = input ? wfo_redact_json(input) : json_object();
    c->reply = r;
    return c;
}

/* A start answered later: its reply, and the id it posted. */
struct engine_later {
    struct reply r;
    char id[WFO_EXEC_ID_SIZE];
};

int engine_start_post(struct wfo_engine *e, struct engine_start_req *q, void (*done)(void *ud),
                      void *ud, struct engine_later **out, struct wfo_error *err)
{
    struct def *d = NULL;
    *out = NULL;
    int rc = engine_ready(e, err);
    if (rc < 0)
        return rc;
    const char *id = q->id;
    if (id && *id && strlen(id) >= WFO_EXEC_ID_SIZE)
        return wfo_error_set(err, WFO_EINVAL, "id: longer than %d bytes", WFO_EXEC_ID_SIZE - 1);
    int64_t epoch = defs_epoch(e);
    rc = engine_def(e, q->ns, q->workflow, q->version, &d, err);
    if (rc < 0)
        return rc;
    struct engine_later *l = wfo_calloc(1, sizeof(*l));
    reply_init(&l->r);
    l->r.want_doc = q->want_doc;
    l->r.on_done = done;
    l->r.on_done_ud = ud;
    struct cmd *c = start_cmd(e, q->ns, id, q->fresh_id, d, epoch, q->input, &l->r);
    snprintf(l->id, sizeof(l->id), "%s", c->id);
    *out = l;
    engine_post(e, c, NULL);
    return 0;
}

int engine_start_end(struct engine_later *l, struct engine_start_req *q, struct wfo_error *err)
{
    /* with a callback the reply is answered already: this returns at once */
    int rc = reply_wait(&l->r, err);
    if (rc == 0) {
        q->created = l->r.created;
        q->id_out = wfo_strdup(l->id);
        q->doc = l->r.doc;
    } else {
        json_decref(l->r.doc);
    }
    free(l);
    return rc;
}

int engine_start(struct wfo_engine *e, struct engine_start_req *q, struct wfo_error *err)
{
    struct engine_later *l;
    int rc = engine_start_post(e, q, NULL, NULL, &l, err);
    return rc < 0 ? rc : engine_start_end(l, q, err);
}

int wfo_engine_start(struct wfo_engine *e, const char *workflow, int version, const char *input,
                     const char *id, int *created, char **id_out, struct wfo_error *err)
{
    json_t *in = NULL;
    if (input && *input) {
        int rc = wfo_json_parse(input, strlen(input), &in, err);
        if (rc < 0) {
            wfo_error_prefix(err, "input");
            return rc;
        }
    }
    struct engine_start_req q = {
        .ns = e->ns, .workflow = workflow, .version = version, .input = in, .id = id};
    int rc = engine_start(e, &q, err);
    json_decref(in);
    if (rc == 0) {
        if (created)
            *created = q.created;
        if (id_out)
            *id_out = q.id_out;
        else
            free(q.id_out);
    }
    return rc;
}

int wfo_engine_start_many(struct wfo_engine *e, const char *workflow, int version, int n,
                          const char *const *inputs, char **ids, struct wfo_error *err)
{
    int rc = engine_ready(e, err);
    if (rc < 0)
        return rc;
    if (n <= 0)
        return wfo_error_set(err, WFO_EINVAL, "n: expected at least 1, got %d", n);
    if (ids)
        memset(ids, 0, (size_t)n * sizeof(*ids));
    json_t **in = wfo_calloc((size_t)n, sizeof(*in));
    for (int i = 0; rc == 0 && i < n; i++)
        if (inputs && inputs[i] && *inputs[i] &&
            (rc = wfo_json_parse(inputs[i], strlen(inputs[i]), &in[i], err)) < 0)
            wfo_error_prefix(err, "inputs[%d]", i);
    int64_t epoch = defs_epoch(e);
    struct def *d = NULL;
    if (rc == 0)
        rc = engine_def(e, e->ns, workflow, version, &d, err);
    struct reply *r = wfo_calloc((size_t)n, sizeof(*r));
    struct cmd *head = NULL, **tail = &head;
    for (int i = 0; rc == 0 && i < n; i++) {
        reply_init(&r[i]);
        if (i > 0)
            def_ref(d); /* one reference per command */
        *tail = start_cmd(e, e->ns, NULL, 1, d, epoch, in[i], &r[i]);
        if (ids)
            ids[i] = wfo_strdup((*tail)->id);
        tail = &(*tail)->next;
    }
    for (int i = 0; i < n; i++)
        json_decref(in[i]);
    free(in);
    if (rc < 0) {
        free(r);
        return rc;
    }
    /* one hold of the lock and one wake for them all; the first answer
     * waited for is the only sleep when they commit together */
    engine_post(e, head, NULL);
    for (int i = 0; i < n; i++) {
        struct wfo_error one = WFO_ERROR_INIT;
        int x = reply_wait(&r[i], &one);
        json_decref(r[i].doc);
        if (x < 0 && ids) {
            free(ids[i]);
            ids[i] = NULL;
        }
        if (x < 0 && rc == 0) {
            rc = x;
            if (err)
                *err = one;
        }
    }
    free(r);
    return rc;
}

void engine_stats(struct wfo_engine *e, struct engine_stats *out)
{
    pthread_mutex_lock(&e->mu);
    *out = e->stats;
    pthread_mutex_unlock(&e->mu);
    pthread_mutex_lock(&e->tq.mu);
    out->tasks_ready = e->tq.ready;
    out->tasks_leased = e->tq.leased;
    out->lease_expiries = e->tq.expiries;
    pthread_mutex_unlock(&e->tq.mu);
    out->shards_held = __builtin_popcount(atomic_load(&e->held));
    webhooks_stats(e, out);
    /* out->timers: copied by the engine thread at its last commit */
}

json_t *engine_queues(struct wfo_engine *e, const char *ns, int known_only)
{
    return taskq_queues(&e->tq, ns, known_only, wfo_now_ms());
}

int engine_db_url_check(const char *db_url, struct wfo_error *err)
{
    return store_url_check(db_url, err);
}

void engine_tune(struct wfo_engine *e, const struct engine_tuning *t)
{
    pthread_mutex_lock(&e->tq.mu);
    if (t->lease_ms > 0)
        e->tq.lease_ms = t->lease_ms;
    pthread_mutex_unlock(&e->tq.mu);
    if (t->lease_ms > 0)
        e->fsm.stop_ms = t->lease_ms; /* before the engine thread runs */
    e->retention_ms = t->retention_ms;
    e->outbox_retention_ms = t->outbox_retention_ms;
    e->cluster = t->cluster;
    free(e->node_url);
    e->node_url = t->node_url ? wfo_strdup(t->node_url) : NULL;
    if (t->shard_lease_ms > 0)
        e->shard_lease_ms = t->shard_lease_ms;
}

/* Hands c (taken) to the engine thread and waits for its answer. */
static int call(struct wfo_engine *e, struct cmd *c, struct wfo_error *err)
{
    struct reply r;
    reply_init(&r);
    c->reply = &r;
    engine_post(e, c, NULL); /* a refusal answers r */
    return reply_wait(&r, err);
}

int engine_delete_workflow(struct wfo_engine *e, const char *ns, const char *name,
                           struct wfo_error *err)
{
    int rc = engine_ready(e, err);
    if (rc < 0)
        return rc;
    struct cmd *c = wfo_calloc(1, sizeof(*c));
    c->kind = CMD_WF_DELETE;
    c->ns = wfo_strdup(ns);
    c->path = wfo_strdup(name);
    return call(e, c, err);
}

int engine_op(struct wfo_engine *e, const char *id, enum engine_op op, const char *reason,
              int compensate, struct wfo_error *err)
{
    return engine_op_from(e, id, op, reason, compensate, NULL, err);
}

int engine_op_from(struct wfo_engine *e, const char *id, enum engine_op op, const char *reason,
                   int compensate, const char *from, struct wfo_error *err)
{
    int rc = engine_ready(e, err);
    if (rc < 0)
        return rc;
    if (strlen(id) >= WFO_EXEC_ID_SIZE)
        return wfo_error_set(err, WFO_ENOTFOUND, "execution '%s' not found", id);
    struct cmd *c = wfo_calloc(1, sizeof(*c));
    c->kind = CMD_OP;
    snprintf(c->id, sizeof(c->id), "%s", id);
    c->op = op;
    c->reason = reason ? wfo_strdup(reason) : NULL;
    c->compensate = compensate;
    c->from = from ? wfo_strdup(from) : NULL;
    return call(e, c, err);
}

int engine_failed(struct wfo_engine *e, struct wfo_error *err)
{
    pthread_mutex_lock(&e->mu);
    int rc = e->failed;
    if (rc < 0 && err)
        *err = e->fail_err;
    pthread_mutex_unlock(&e->mu);
    return rc;
}

/* --- for query.c's waits ----------------------------------------------- */

void engine_end_wait_add(struct wfo_engine *e, struct engine_end_wait *w)
{
    pthread_mutex_lock(&e->mu);
    w->doc = NULL;
    w->next = wfo_map_get(&e->end_waits, w->id);
    wfo_map_put(&e->end_waits, w->id, w);
    atomic_fetch_add(&e->n_end_waits, 1);
    pthread_mutex_unlock(&e->mu);
}

void engine_end_wait_del(struct wfo_engine *e, struct engine_end_wait *w)
{
    pthread_mutex_lock(&e->mu);
    struct engine_end_wait *head = wfo_map_get(&e->end_waits, w->id), **p = &head;
    while (*p && *p != w)
        p = &(*p)->next;
    if (*p) {
        *p = w->next;
        atomic_fetch_sub(&e->n_end_waits, 1);
    }
    if (head) /* keyed by the first one's id: w's may be gone next */
        wfo_map_put(&e->end_waits, head->id, head);
    else
        wfo_map_del(&e->end_waits, w->id);
    pthread_mutex_unlock(&e->mu);
}

int engine_await_end(struct wfo_engine *e, int64_t until, const struct engine_end_wait *w,
                     struct wfo_error *err)
{
    int rc = ENGINE_AWAIT_AGAIN;
    pthread_mutex_lock(&e->mu);
    int64_t now = wfo_now_ms();
    if (w && w->doc) {
        rc = ENGINE_AWAIT_DOC;
    } else if (now >= until || e->stop || e->failed) {
        rc = e->failed < 0 ? e->failed : ENGINE_AWAIT_OVER;
        if (rc < 0)
            *err = e->fail_err;
    } else {
        int64_t due = now + 200 < until ? now + 200 : until;
        struct timespec ts = {(time_t)(due / 1000), (long)(due % 1000) * 1000000L};
        pthread_cond_timedwait(&e->ended_cv, &e->mu, &ts);
        if (w && w->doc)
            rc = ENGINE_AWAIT_DOC;
    }
    pthread_mutex_unlock(&e->mu);
    return rc;
}

/* --- accessors --------------------------------------------------------- */

const char *engine_store_name(struct wfo_engine *e)
{
    return e->store->ops->name;
}
