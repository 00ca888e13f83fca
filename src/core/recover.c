/*
 * recover.c - recovery, and loading executions from the store: at launch
 * every running or paused execution is loaded, its timers armed again and
 * its attempts in flight started again (at least once: SPEC 3); later an
 * execution that left memory (E3 in engine.c) is loaded again by whatever
 * names it next (exec_get). docs/implementation/state_management.md.
 */
#include "common/compat.h"

#include <stdlib.h>
#include <string.h>

#include "engine_int.h"
#include "kinds.h"
#include "../common/log.h"
#include "../common/util.h"

/* --- loading executions ------------------------------------------------------ */

struct load_ud {
    struct execution *x;
    struct wfo_engine *e;
    int rc;
    struct wfo_error *err;
};

static int load_step_cb(void *ud, const struct store_step *r)
{
    struct load_ud *l = ud;
    json_t *out = NULL, *er = NULL, *st = NULL;
    if (r->output)
        wfo_json_parse(r->output, strlen(r->output), &out, NULL);
    if (r->error)
        wfo_json_parse(r->error, strlen(r->error), &er, NULL);
    if (r->state)
        wfo_json_parse(r->state, strlen(r->state), &st, NULL);
    int rc = exec_load_step(l->x, r->path, r->ord, r->status, r->attempts, out, er, st, r->input,
                            r->started_at, r->finished_at, l->err);
    json_decref(out);
    json_decref(er);
    json_decref(st);
    return rc;
}

json_t *parse_or_null(const char *s)
{
    json_t *v = NULL;
    if (!s || wfo_json_parse(s, strlen(s), &v, NULL) < 0)
        return NULL;
    return v;
}

static int load_exec_cb(void *ud, const struct store_exec *r)
{
    struct load_ud *l = ud;
    struct def *d = NULL;
    int rc = engine_def(l->e, r->namespace, r->workflow, r->version, &d, l->err);
    if (rc < 0)
        return rc;
    json_t *input = parse_or_null(r->input);
    struct execution *x = exec_new(r->id, r->namespace, d, input, r->created_at);
    def_unref(d);
    json_decref(input);
    x->status = (enum exec_status)exec_status_parse(r->status);
    x->output = parse_or_null(r->output);
    x->error = parse_or_null(r->error);
    x->compensation = parse_or_null(r->compensation);
    x->parent = r->parent ? wfo_strdup(r->parent) : NULL;
    x->updated_at = r->updated_at;
    x->finished_at = r->finished_at;
    x->row_written = 1;
    x->row_resume = r->resume;
    json_t *state = parse_or_null(r->state);
    rc = exec_load(x, state, l->err);
    json_decref(state);
    if (rc < 0) {
        exec_free(x);
        return rc;
    }
    l->x = x;
    return 0;
}

/* A restart loads x: it has an attempt to start again (KE_RESULT), or a
 * child to look at (KE_CHILD: child_recover). */
int exec_resume(const struct execution *x)
{
    if (EX_ENDED(x->status))
        return 0;
    for (int i = 0; i < x->n_steps; i++) {
        enum kind_end k = step_kinds[x->steps[i]->def->type].ends;
        if ((x->steps[i]->status == SS_RUNNING && (k == KE_RESULT || k == KE_CHILD)) ||
            (x->steps[i]->status == SS_WAITING && x->steps[i]->wait))
            return 1;
    }
    return 0;
}

/* True when nothing of x is in flight but timers and children: no attempt
 * runs (a runner job or a worker task) and no compensation step. Such an
 * execution can leave memory; the store has all of it, and a child that
 * ends loads it again (child.c). */
int exec_idle(const struct execution *x)
{
    for (int i = 0; i < x->n_steps; i++) {
        enum kind_end k = step_kinds[x->steps[i]->def->type].ends;
        if ((x->steps[i]->status == SS_RUNNING && k != KE_BLOCKS && k != KE_CHILD) ||
            (x->steps[i]->status == SS_WAITING && x->steps[i]->wait)) /* events.c W4 */
            return 0;
    }
    return 1;
}

/* The execution id, from memory or loaded from the store; NULL when absent. */
struct execution *exec_get(struct wfo_engine *e, const char *id, struct wfo_error *err)
{
    struct execution *x = wfo_map_get(&e->execs, id);
    if (x)
        return x;
    int k = store_shard_of(id);
    if (e->cluster && !(e->shards >> k & 1)) {
        wfo_error_set(err, WFO_EFENCED, "execution '%s' is in shard %d, which another node holds",
                      id, k);
        return NULL;
    }
    struct load_ud l = {.e = e, .err = err};
    int rc = e->store->ops->get_exec(e->store, id, load_exec_cb, &l, err);
    if (rc < 0 || !l.x)
        return NULL;
    rc = e->store->ops->list_steps(e->store, id, load_step_cb, &l, err);
    if (rc < 0) {
        exec_free(l.x);
        return NULL;
    }
    wfo_map_put(&e->execs, l.x->id, l.x);
    events_index_exec(e, l.x); /* events.c W5 */
    return l.x;
}

/* --- recovery ----------------------------------------------------------------- */

/* The task rows, by id: the leases workers hold are given back
 * (taskq_relet); a ready task keeps its age (taskq_ready_since: GET
 * /v1/queues's oldest_ready_age_ms counts from when it became ready, not
 * from the restart). */
struct lease_row {
    char *id, *lease; /* lease NULL: a ready task, ready since leased_until */
    int64_t leased_until;
};

struct leases {
    struct lease_row *v;
    int n, alloc;
    int64_t now;
};

static int lease_cb(void *ud, const struct store_task *r)
{
    struct leases *l = ud;
    if (!r->status)
        return 0;
    GROW(l->v, l->n, l->alloc);
    if (r->lease && strcmp(r->status, "leased") == 0 && r->leased_until > l->now)
        l->v[l->n++] = (struct lease_row){wfo_strdup(r->id), wfo_strdup(r->lease), r->leased_until};
    else if (strcmp(r->status, "leased") == 0) /* ready again when its lease ran out */
        l->v[l->n++] = (struct lease_row){wfo_strdup(r->id), NULL, r->leased_until};
    else if (strcmp(r->status, "ready") == 0 && (r->ready_at || r->created_at))
        l->v[l->n++] =
            (struct lease_row){wfo_strdup(r->id), NULL, r->ready_at ? r->ready_at : r->created_at};
    return 0;
}

static int active_cb(void *ud, const struct store_exec *r)
{
    struct ids *ids = ud;
    GROW(ids->v, ids->n, ids->alloc);
    ids->v[ids->n++] = wfo_strdup(r->id);
    return 0;
}

static int timer_cb(void *ud, const struct store_timer *r)
{
    struct wfo_engine *e = ud;
    int k = timer_kind_parse(r->kind);
    if (k >= 0 && !wfo_map_get(&e->timers, r->id))
        timer_arm(e, r->id, r->exec_id, r->due_at, (enum timer_kind)k, r->step, r->token);
    return 0;
}

/* A read that fails leaves the horizon, so the duty runs again. */
int timers_advance(struct wfo_engine *e, int64_t now)
{
    struct wfo_error err = WFO_ERROR_INIT;
    int64_t until = now + TIMER_WINDOW_MS, from = e->timer_horizon;
    e->timer_horizon = until; /* before: timer_cb arms below it */
    int rc = e->store->ops->list_timers(e->store, e->shards, from, until, timer_cb, e, &err);
    if (rc < 0) {
        e->timer_horizon = from;
        engine_read_failed(e, NULL, "the next timers", &err);
    }
    return rc;
}

/* --- ownership (E7) ---------------------------------------------------------- */

struct claim_ud {
    struct wfo_engine *e;
    store_shardset held;
};

static int claim_cb(void *ud, const struct store_shard *r)
{
    struct claim_ud *c = ud;
    if (r->owner && strcmp(r->owner, c->e->owner) == 0) {
        c->held |= (store_shardset)1 << r->shard;
        c->e->epochs[r->shard] = r->epoch;
        atomic_store(&c->e->held_epochs[r->shard], r->epoch);
    }
    return 0;
}

/* Claims (force: takes over) or renews the shards of want; the ones held
 * are then in e->shards and e->epochs. */
static int shards_claim(struct wfo_engine *e, store_shardset want, int force, struct wfo_error *err)
{
    struct claim_ud c = {e, 0};
    int64_t now = wfo_now_ms();
    int rc = e->store->ops->claim_shards(e->store, e->owner, want, now, now + e->shard_lease_ms,
                                         force, claim_cb, &c, err);
    if (rc == 0) {
        e->shards = c.held;
        atomic_store(&e->held, c.held);
        e->next_renew = now + e->shard_lease_ms / 3;
    }
    return rc;
}

/* --- ownership in a cluster (E8) ------------------------------------------------ */

struct nodes_ud {
    const char *self;
    int n, rank; /* live nodes; this one's place among them, by id */
};

static int node_cb(void *ud, const struct store_node *r)
{
    struct nodes_ud *u = ud;
    if (strcmp(r->id, u->self) < 0)
        u->rank++;
    u->n++;
    return 0;
}

struct rows_ud {
    const char *self;
    int64_t now;
    store_shardset mine, free_;
};

static int rows_cb(void *ud, const struct store_shard *r)
{
    struct rows_ud *u = ud;
    store_shardset bit = (store_shardset)1 << r->shard;
    if (r->owner && strcmp(r->owner, u->self) == 0)
        u->mine |= bit;
    else if (!r->owner || r->lease_until < u->now)
        u->free_ |= bit;
    return 0;
}

static int popcount(store_shardset s)
{
    return __builtin_popcount(s);
}

/* How long a shard to give back waits for the attempts running here. */
#define GIVE_WAIT_MS 60000

/* The shards of the runner jobs running now, or whose results wait in the
 * queue (not yet committed). */
static store_shardset running_shards(struct wfo_engine *e)
{
    store_shardset s = 0;
    const char *k;
    void *v;
    pthread_mutex_lock(&e->mu);
    for (size_t it = 0; wfo_map_next(&e->running, &it, &k, &v);)
        s |= (store_shardset)1 << store_shard_of(((struct step_job *)v)->exec_id);
    for (const struct cmd *c = e->head; c; c = c->next)
        if (c->runner)
            s |= (store_shardset)1 << store_shard_of(c->id);
    pthread_mutex_unlock(&e->mu);
    return s;
}

/* What this node should hold (E8): it beats (its row in `nodes`), then
 * takes its share of the shards among the nodes seen within a lease, the
 * first STORE_SHARDS % n of them by id one more. *keep: the shards it
 * holds and may keep; *take: free ones (unowned, or whose lease ran out)
 * to claim up to its share, from a place of its own among them so that
 * nodes starting together do not reach for the same ones; *give: the
 * shards it holds above its share. */
static int shards_plan(struct wfo_engine *e, store_shardset *keep, store_shardset *take,
                       store_shardset *give, struct wfo_error *err)
{
    int64_t now = wfo_now_ms();
    char url[512];
    pthread_mutex_lock(&e->mu); /* engine_advertise may change it */
    snprintf(url, sizeof(url), "%s", e->node_url ? e->node_url : "");
    pthread_mutex_unlock(&e->mu);
    struct store_node me = {e->owner, url[0] ? url : NULL, e->started_at, now};
    int rc = e->store->ops->beat_node(e->store, &me, err);
    struct nodes_ud n = {e->owner, 0, 0};
    if (rc == 0)
        rc = e->store->ops->list_nodes(e->store, now - e->shard_lease_ms, node_cb, &n, err);
    struct rows_ud r = {e->owner, now, 0, 0};
    if (rc == 0)
        rc = e->store->ops->list_shards(e->store, rows_cb, &r, err);
    if (rc < 0)
        return rc;
    if (n.n < 1) /* its own beat is not seen: a clock far behind the store's rows */
        n.n = 1;
    int share = STORE_SHARDS / n.n + (n.rank < STORE_SHARDS % n.n);
    *keep = r.mine;
    *take = *give = 0;
    for (int k = STORE_SHARDS - 1; k >= 0 && popcount(*keep) > share; k--)
        if (*keep >> k & 1) {
            *keep &= ~((store_shardset)1 << k);
            *give |= (store_shardset)1 << k;
        }
    /* a shard with an attempt running here (an http call, a command) is
     * given once it has ended and its result is committed, up to
     * GIVE_WAIT_MS: its new owner would start it again (E9) */
    store_shardset busy = *give ? running_shards(e) & *give : 0;
    if (!busy)
        e->give_since = 0;
    else if (!e->give_since)
        e->give_since = now;
    if (busy && now - e->give_since < GIVE_WAIT_MS) {
        *give &= ~busy;
        *keep |= busy;
    }
    int from = n.rank * STORE_SHARDS / n.n;
    for (int i = 0; i < STORE_SHARDS && popcount(*keep | *take) < share; i++) {
        int k = (from + i) % STORE_SHARDS;
        if (r.free_ >> k & 1)
            *take |= (store_shardset)1 << k;
    }
    return 0;
}

/* Claims this node's share (recovery, E8): what it holds above the share
 * is given back, since the engine holds nothing of it now. */
static int shards_claim_share(struct wfo_engine *e, struct wfo_error *err)
{
    store_shardset keep, take, give;
    int rc = shards_plan(e, &keep, &take, &give, err);
    if (rc == 0 && give)
        rc = e->store->ops->release_shards(e->store, e->owner, give, err);
    if (rc == 0)
        rc = shards_claim(e, keep | take, 0, err);
    if (rc == 0 && (give || take))
        wfo_info(NULL, NULL, "node %s holds shards %#x (gave back %#x)", e->owner,
                 (unsigned)e->shards, (unsigned)give);
    return rc;
}

static int recover_shards(struct wfo_engine *e, store_shardset shards, struct wfo_error *err);

/* The "shard leases" duty in a cluster: renews what the node keeps and
 * claims free shards up to its share, whose executions are then loaded
 * (recover_shards) without touching the others'. A shard to give back, or
 * one found taken (this node was too slow to renew), makes the engine
 * regroup (engine.c: forget all, then recover its share) once no round is
 * in flight. */
static void shards_renew_cluster(struct wfo_engine *e, int64_t now)
{
    struct wfo_error err = WFO_ERROR_INIT;
    store_shardset had = e->shards, keep, take, give;
    int rc = shards_plan(e, &keep, &take, &give, &err);
    if (rc == 0)
        rc = shards_claim(e, (keep & had) | take, 0, &err);
    if (rc < 0) {
        e->next_renew = now + 1000;
        engine_read_failed(e, NULL, "renewing the shard leases", &err);
        return;
    }
    store_shardset lost = had & ~give & ~e->shards, gained = e->shards & ~had;
    if (gained && recover_shards(e, gained, &err) < 0) {
        /* what was loaded of them may be half: start from the store again */
        engine_read_failed(e, NULL, "loading the shards claimed", &err);
        e->regroup = 1;
    }
    if (gained) {
        wfo_info(NULL, NULL, "node %s took shards %#x", e->owner, (unsigned)gained);
        e->next_cron = now; /* the latest slots of its new shards (triggers.c T4) */
        /* the event triggers that no node started while these shards were
         * another's, a dead node's or nobody's: every node's scan refused
         * them (triggers.c T4), so the new owner looks again */
        if (triggers_recover(e, &err) < 0)
            engine_read_failed(e, NULL, "the events of the shards claimed", &err);
    }
    if (lost)
        wfo_warn(NULL, NULL, "node %s lost shards %#x to another node", e->owner, (unsigned)lost);
    if (give || lost) {
        e->shards = had & ~lost; /* until the regroup: nothing more is claimed */
        e->regroup = 1;
    }
}

/* A renewal that finds a shard gone stops the engine like a refused
 * commit (E2); one that fails is tried again a second later. */
void shards_renew(struct wfo_engine *e, int64_t now)
{
    if (e->cluster) {
        shards_renew_cluster(e, now);
        return;
    }
    struct wfo_error err = WFO_ERROR_INIT;
    store_shardset had = e->shards;
    int rc = shards_claim(e, had, 0, &err);
    if (rc < 0) {
        e->next_renew = now + 1000;
        engine_read_failed(e, NULL, "renewing the shard leases", &err);
        return;
    }
    if (e->shards == had)
        return;
    wfo_error_set(&err, WFO_EFENCED, "shards %#x were taken over by another engine",
                  (unsigned)(had & ~e->shards));
    wfo_err(NULL, NULL, "%s: this engine takes no more commands", err.message);
    pthread_mutex_lock(&e->mu);
    if (!e->failed) {
        e->failed = WFO_EFENCED;
        e->fail_err = err;
    }
    pthread_cond_broadcast(&e->ended_cv);
    pthread_mutex_unlock(&e->mu);
}

/* Loads the executions of shards that had an attempt in flight (resume:
 * an exec, http or task step running) and starts those attempts again (at
 * least once: SPEC 3), gives workers their leases back, and arms the
 * timers of shards due before the horizon (E6). Executions that wait only
 * for timers stay in the store until one fires. */
static int recover_shards(struct wfo_engine *e, store_shardset shards, struct wfo_error *err)
{
    struct ids ids = {0};
    int rc = e->store->ops->list_active_execs(e->store, shards, active_cb, &ids, err);
    for (int i = 0; rc == 0 && i < ids.n; i++) {
        struct execution *x = exec_get(e, ids.v[i], err);
        if (!x) {
            rc = err->code ? err->code : WFO_ESTORE;
            break;
        }
        /* a child that ended without telling it (E5, then a crash) */
        if ((rc = child_recover(e, x, err)) < 0)
            break;
        if (exec_idle(x)) {
            /* waits for timers only: it comes back when one fires (E3) */
            wfo_map_del(&e->execs, x->id);
            exec_free(x);
            continue;
        }
        int waits = 0;
        for (int k = 0; k < x->n_steps; k++)
            waits |= x->steps[k]->status == SS_WAITING && x->steps[k]->wait != NULL;
        if (waits) /* its waits look again for what came meanwhile (events.c W4) */
            events_post_wake(e, NULL, NULL, NULL, x->id);
        for (int k = 0; k < x->n_steps; k++) {
            struct step_state *st = x->steps[k];
            if (st->status != SS_RUNNING || step_kinds[st->def->type].ends != KE_RESULT)
                continue;
            /* the attempt's fields are evaluated again for the rerun; one
             * that no longer evaluates leaves the attempt to its timeout */
            json_t *perr = NULL;
            json_t *args = fsm_attempt_args(x, st, &perr);
            if (!args) {
                wfo_warn(x->id, st->path, "not run again after the restart: %s",
                         wfo_json_str(perr, "message"));
                json_decref(perr);
                continue;
            }
            struct fsm_action a = {ACT_RUN, x, st->path, st->token, st->attempts, st->def, args};
            job_dispatch(e, &a);
            json_decref(args);
        }
    }
    jobs_flush(e);
    for (int i = 0; i < ids.n; i++)
        free(ids.v[i]);
    free(ids.v);
    /* the leases workers held keep their rows' value */
    struct leases l = {.now = wfo_now_ms()};
    if (rc == 0)
        rc = e->store->ops->list_tasks(e->store, shards, lease_cb, &l, err);
    for (int i = 0; i < l.n; i++) {
        if (rc == 0 && l.v[i].lease)
            taskq_relet(&e->tq, l.v[i].id, l.v[i].lease, l.v[i].leased_until);
        else if (rc == 0)
            taskq_ready_since(&e->tq, l.v[i].id, l.v[i].leased_until);
        free(l.v[i].id);
        free(l.v[i].lease);
    }
    free(l.v);
    if (rc == 0) {
        if (!e->timer_horizon)
            e->timer_horizon = wfo_now_ms() + TIMER_WINDOW_MS;
        rc = e->store->ops->list_timers(e->store, shards, INT64_MIN, e->timer_horizon, timer_cb, e,
                                        err);
    }
    return rc;
}

/* Claims the shards (every one, by takeover, for the only process on a
 * SQLite file; this node's share in a cluster, E8), then recovers them
 * (recover_shards) and the triggers a crash kept from starting. */
int engine_recover(struct wfo_engine *e, struct wfo_error *err)
{
    int rc = e->cluster ? shards_claim_share(e, err) : shards_claim(e, STORE_ALL_SHARDS, 1, err);
    if (rc == 0)
        rc = recover_shards(e, e->shards, err);
    /* the triggers of events a crash kept from starting (triggers.c T2) */
    if (rc == 0)
        rc = triggers_recover(e, err);
    return rc;
}
