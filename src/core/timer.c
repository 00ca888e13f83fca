/*
 * timer.c - what the engine thread does by the clock: the timer heap, and
 * engine_tick(), which holds the list of every periodic duty (like Redis's
 * serverCron). docs/interfaces/internal.md, invariants in engine.c.
 *
 * engine_tick(), once per turn of the engine thread's loop, before the
 * commands queued meanwhile are applied, does each duty that is due:
 *   0. the shard leases (E7; in a cluster, E8, also this node's share),
 *      first: a node back from a pause learns that it lost shards before
 *      another duty reads their rows, and the tick stops there when the
 *      node must regroup.
 *   1. due timers: retry backoffs, attempt, schedule and workflow
 *      timeouts, sleeps (fire_timer). A timer whose execution cannot be
 *      read is armed again 1 s later (E5).
 *   2. results kept for retry (E5): runner results whose execution could
 *      not be read, applied again (in front of the queued commands) 1 s
 *      after they were kept.
 *   3. retention (retention_sweep): ended executions older than
 *      retention.finished go with the round being gathered; once a second.
 *   4. lease expiries (sweep_leases): expired worker leases make their
 *      tasks ready again, or fail attempts with a heartbeat timeout; once
 *      a second.
 *   5. the timer window (E6).
 *   6. cron triggers (triggers_cron, triggers.c T3): at launch and at
 *      every minute's start, the latest slot of each cron trigger is
 *      started with an id derived from it (idempotent).
 *   7. outbox retention (outbox_run): outbox rows older than
 *      events.retention that every webhook subscription of their
 *      namespace has delivered (store.h C2), OUTBOX_SWEEP_BATCH at a
 *      time, in a transaction of their own (the rows are no execution's
 *      state); every 10 s (or the retention, when shorter, at least 1 s),
 *      or at once again while a full batch went. Webhook delivery itself
 *      runs in threads of its own (webhooks.c), never here.
 *   8. in a cluster, the events other nodes accepted (triggers.c T4):
 *      their triggers and this node's waits; every 500 ms.
 *   9. the index of waits (events.c W5), made again from memory every
 *      minute.
 *  10. lease rows: the leases of deliveries that no other round took
 *      along are committed LEASE_WRITE_MS after the first of them
 *      (round_busy).
 * engine_tick_next() says when the next of them is due, from the same
 * table (duties[]), so that the engine thread sleeps until then.
 */
#include "common/compat.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"
#include "../common/duration.h"
#include "../common/log.h"
#include "../common/util.h"

/* --- timers heap (engine thread) ---------------------------------------- */

static int heap_less(struct tentry *a, struct tentry *b)
{
    return a->due < b->due;
}

static void heap_push(struct wfo_engine *e, struct tentry *t)
{
    GROW(e->heap, e->n_heap, e->alloc_heap);
    int i = e->n_heap++;
    e->heap[i] = t;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!heap_less(e->heap[i], e->heap[p]))
            break;
        struct tentry *tmp = e->heap[i];
        e->heap[i] = e->heap[p];
        e->heap[p] = tmp;
        i = p;
    }
}

static struct tentry *heap_pop(struct wfo_engine *e)
{
    struct tentry *top = e->heap[0];
    e->heap[0] = e->heap[--e->n_heap];
    int i = 0;
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < e->n_heap && heap_less(e->heap[l], e->heap[m]))
            m = l;
        if (r < e->n_heap && heap_less(e->heap[r], e->heap[m]))
            m = r;
        if (m == i)
            break;
        struct tentry *tmp = e->heap[i];
        e->heap[i] = e->heap[m];
        e->heap[m] = tmp;
        i = m;
    }
    return top;
}

void tentry_free(struct tentry *t)
{
    free(t->id);
    free(t->exec_id);
    free(t->step);
    free(t);
}

/* Puts a timer in the heap, replacing one of the same id; one due after
 * the horizon only takes the old one out (E6). */
void timer_arm(struct wfo_engine *e, const char *id, const char *exec_id, int64_t due,
               enum timer_kind kind, const char *step, int64_t token)
{
    if (due >= e->timer_horizon) {
        timer_disarm(e, id);
        return;
    }
    struct tentry *t = wfo_calloc(1, sizeof(*t));
    t->id = wfo_strdup(id);
    t->exec_id = wfo_strdup(exec_id);
    t->due = due;
    t->kind = kind;
    t->step = step ? wfo_strdup(step) : NULL;
    t->token = token;
    struct tentry *old = wfo_map_put(&e->timers, t->id, t);
    if (old)
        old->dead = 1; /* freed when popped */
    heap_push(e, t);
}

void timer_disarm(struct wfo_engine *e, const char *id)
{
    struct tentry *old = wfo_map_del(&e->timers, id);
    if (old)
        old->dead = 1;
}

/* Fires t, unless reading its execution fails: then its durable row stays
 * (it is not in the round's fired set) and it is armed again 1 s later
 * (E5). Returns 1 when it fired. */
static int fire_timer(struct wfo_engine *e, struct tentry *t)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct execution *x = exec_get(e, t->exec_id, &err);
    if (!x && !EXEC_GONE(&err)) {
        engine_read_failed(e, t->exec_id, "a due timer", &err);
        timer_arm(e, t->id, t->exec_id, e->fsm.now + 1000, t->kind, t->step, t->token);
        return 0;
    }
    wfo_map_put(&e->cur->fired, t->id, t);
    if (x)
        fsm_timer(&e->fsm, x, t->kind, t->step, t->token);
    return 1;
}

/* Expired leases of tasks whose steps have a heartbeat timeout fail their
 * attempt (taskq_sweep makes the others ready again). */
static void sweep_leases(struct wfo_engine *e)
{
    struct task *failed = NULL, *kept = NULL;
    taskq_sweep(&e->tq, e->fsm.now, &failed);
    /* the expired tasks an earlier sweep could not apply come first (E5) */
    if (e->sweep_kept) {
        struct task *last = e->sweep_kept;
        while (last->next)
            last = last->next;
        last->next = failed;
        failed = e->sweep_kept;
        e->sweep_kept = NULL;
    }
    for (struct task *t = failed, *next; t; t = next) {
        next = t->next;
        struct wfo_error rerr = WFO_ERROR_INIT;
        struct execution *x = exec_get(e, t->exec_id, &rerr);
        if (!x && !EXEC_GONE(&rerr)) {
            engine_read_failed(e, t->exec_id, "an expired lease", &rerr);
            t->next = kept;
            kept = t;
            continue;
        }
        if (x) {
            json_t *err =
                fsm_error("HeartbeatTimeout", "the worker stopped sending heartbeats", NULL);
            fsm_result(&e->fsm, x, t->path, t->token, 0, NULL, err, 1);
            json_decref(err);
        }
        task_free(t);
    }
    e->sweep_kept = kept;
}

/* Retention (SPEC 6 retention.finished): up to RETENTION_BATCH executions
 * that ended before now - retention_ms go with the round being gathered,
 * with their steps, history, timers and tasks; once a second, so the
 * engine never stalls on a large backlog. One still in memory (it ended in
 * a round that is not committed yet, or an operator touched it) waits for
 * the next look. */
#define RETENTION_BATCH 500

static int expired_cb(void *ud, const struct store_exec *r)
{
    struct ids *ids = ud;
    GROW(ids->v, ids->n, ids->alloc);
    ids->v[ids->n++] = wfo_strdup(r->id);
    return 0;
}

static void retention_sweep(struct wfo_engine *e)
{
    struct ids ids = {0};
    struct wfo_error err = WFO_ERROR_INIT;
    struct round *r = e->cur;
    if (!e->store->ops->list_expired)
        return;
    if (e->store->ops->list_expired(e->store, e->fsm.now - e->retention_ms, RETENTION_BATCH,
                                    expired_cb, &ids, &err) < 0)
        wfo_warn(NULL, NULL, "retention: listing expired executions: %s", err.message);
    for (int i = 0; i < ids.n; i++) {
        if (wfo_map_get(&e->execs, ids.v[i])) {
            free(ids.v[i]);
            continue;
        }
        GROW(r->purge, r->n_purge, r->alloc_purge);
        r->purge[r->n_purge++] = ids.v[i];
    }
    free(ids.v);
}

/* --- engine_tick: the periodic duties --------------------------------------- */

#define NEVER INT64_MAX

static int64_t timers_due(struct wfo_engine *e)
{
    return e->n_heap ? e->heap[0]->due : NEVER;
}

/* Fires the due timers into the round being gathered; every entry popped
 * (fired, armed again or dead) is freed once that round commits. */
static void timers_run(struct wfo_engine *e, struct cmd **cmds)
{
    struct round *r = e->cur;
    long long fired = 0;
    while (e->n_heap && e->heap[0]->due <= e->fsm.now) {
        struct tentry *t = heap_pop(e);
        if (!t->dead) {
            wfo_map_del(&e->timers, t->id);
            fire_timer(e, t); /* or armed again, as a new entry (E5) */
            fired++;
        }
        GROW(r->dead, r->n_dead, r->alloc_dead);
        r->dead[r->n_dead++] = t;
    }
    if (fired) { /* wfo_timers_fired_total */
        pthread_mutex_lock(&e->mu);
        e->stats.timers_fired += fired;
        pthread_mutex_unlock(&e->mu);
    }
}

static int64_t kept_due(struct wfo_engine *e)
{
    return e->results_kept ? e->results_retry_at : NEVER;
}

/* The results kept for retry go in front of the commands (E5). */
static void kept_run(struct wfo_engine *e, struct cmd **cmds)
{
    struct cmd *last = e->results_kept;
    while (last->next)
        last = last->next;
    last->next = *cmds;
    *cmds = e->results_kept;
    e->results_kept = NULL;
}

static int64_t retention_due(struct wfo_engine *e)
{
    return e->retention_ms > 0 ? e->next_retention : NEVER;
}

static void retention_run(struct wfo_engine *e, struct cmd **cmds)
{
    retention_sweep(e);
    e->next_retention = e->fsm.now + 1000;
}

#define OUTBOX_SWEEP_BATCH 1000

static int64_t outbox_due(struct wfo_engine *e)
{
    return e->outbox_retention_ms > 0 ? e->next_outbox_sweep : NEVER;
}

static void outbox_run(struct wfo_engine *e, struct cmd **cmds)
{
    struct wfo_error err = WFO_ERROR_INIT;
    int n = 0;
    /* every 10 s, or as often as the retention when it is shorter (at
     * most once a second) */
    int64_t every = e->outbox_retention_ms < 10000 ? e->outbox_retention_ms : 10000;
    e->next_outbox_sweep = e->fsm.now + (every < 1000 ? 1000 : every);
    if (e->store->ops->delete_outbox(e->store, e->fsm.now - e->outbox_retention_ms,
                                     OUTBOX_SWEEP_BATCH, &n, &err) < 0) {
        wfo_warn(NULL, NULL, "retention: deleting old outbox events: %s", err.message);
        return;
    }
    if (n == OUTBOX_SWEEP_BATCH)
        e->next_outbox_sweep = e->fsm.now + 100;
    if (n > 0) {
        pthread_mutex_lock(&e->mu);
        e->stats.outbox_deleted += n;
        pthread_mutex_unlock(&e->mu);
    }
}

static int64_t leases_due(struct wfo_engine *e)
{
    return e->next_sweep;
}

static void leases_run(struct wfo_engine *e, struct cmd **cmds)
{
    sweep_leases(e);
    e->next_sweep = e->fsm.now + 1000;
}

/* E6: half a window before the horizon, the next stretch is read. */
static int64_t window_due(struct wfo_engine *e)
{
    return e->timer_horizon - TIMER_WINDOW_MS / 2;
}

static void window_run(struct wfo_engine *e, struct cmd **cmds)
{
    timers_advance(e, e->fsm.now);
}

static int64_t cron_due(struct wfo_engine *e)
{
    return e->next_cron;
}

static void cron_run(struct wfo_engine *e, struct cmd **cmds)
{
    triggers_cron(e, e->fsm.now);
}

static int64_t reindex_due(struct wfo_engine *e)
{
    return e->next_reindex;
}

static void reindex_run(struct wfo_engine *e, struct cmd **cmds)
{
    events_reindex(e);
    e->next_reindex = e->fsm.now + WAITS_REINDEX_MS;
}

static int64_t scan_due(struct wfo_engine *e)
{
    return e->cluster ? e->next_scan : NEVER;
}

static void scan_run(struct wfo_engine *e, struct cmd **cmds)
{
    triggers_cluster_scan(e, e->fsm.now);
}

static int64_t leases_write_due(struct wfo_engine *e)
{
    return e->cur->leases ? e->cur->leases_due : NEVER;
}

static void leases_write_run(struct wfo_engine *e, struct cmd **cmds)
{
    /* nothing more: from now on the round is busy (round_busy), and the
     * engine thread submits it after this tick */
}

static int64_t shards_due(struct wfo_engine *e)
{
    return e->next_renew;
}

static void shards_run(struct wfo_engine *e, struct cmd **cmds)
{
    shards_renew(e, e->fsm.now);
}

/* Every periodic duty, in the order engine_tick does them. To add one: a
 * row, its due (NEVER when it has nothing to do) and its run. */
static const struct duty {
    const char *name;
    int64_t (*due)(struct wfo_engine *e);
    void (*run)(struct wfo_engine *e, struct cmd **cmds);
} duties[] = {
    /* first: a node back from a pause learns that it lost shards (E8)
     * before any other duty reads the store's rows of them */
    {"shard leases", shards_due, shards_run},
    {"due timers", timers_due, timers_run},
    {"results kept for retry", kept_due, kept_run},
    {"retention", retention_due, retention_run},
    {"lease expiries", leases_due, leases_run},
    {"timer window", window_due, window_run},
    {"cron triggers", cron_due, cron_run},
    {"outbox retention", outbox_due, outbox_run},
    {"cluster events", scan_due, scan_run},
    {"waits index", reindex_due, reindex_run},
    {"lease rows", leases_write_due, leases_write_run},
};

void engine_tick(struct wfo_engine *e, struct cmd **cmds)
{
    for (size_t i = 0; i < WFO_ARRAY_SIZE(duties) && !e->regroup; i++)
        if (e->fsm.now >= duties[i].due(e))
            duties[i].run(e, cmds);
}

int64_t engine_tick_next(struct wfo_engine *e)
{
    while (e->n_heap && e->heap[0]->dead)
        tentry_free(heap_pop(e));
    int64_t next = NEVER;
    for (size_t i = 0; i < WFO_ARRAY_SIZE(duties); i++) {
        int64_t d = duties[i].due(e);
        if (d < next)
            next = d;
    }
    return next;
}
