/*
 * engine.c - the engine: applies transitions to executions, persists their
 * effects in one store transaction per batch, then acts on them
 * (docs/interfaces/internal.md, docs/implementation/state_management.md).
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
 * Invariants:
 *   E1. Nothing acts on a transition before its batch is committed: runner
 *       jobs, timers in the heap and replies to callers come after
 *       store->apply() returned 0.
 *   E2. If a commit fails the engine stops (e->failed): in-memory state is
 *       ahead of the store, so the only safe continuation is a restart that
 *       recovers from the store.
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
 *       timers_advance reads the next stretch from the store before now
 *       comes within half a window of the horizon. A timer committed with
 *       a later due stays in the store until then. A window read may see a
 *       timer that a round in flight deletes; it fires stale, and
 *       fsm_timer ignores it (I1: the token no longer matches).
 *   E7. Every batch names this engine as owner and the epochs of the
 *       shards it holds; the store refuses it (WFO_EFENCED) when another
 *       engine has taken one over since, and the engine then stops like
 *       any failed commit (E2). Shards are claimed at launch (on SQLite by
 *       takeover: one process owns the file) and renewed every
 *       SHARD_LEASE_MS / 3; a renewal that finds a shard taken stops the
 *       engine the same way.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"
#include "doc.h"
#include "exec.h"
#include "fsm.h"
#include "taskq.h"
#include "../common/arena.h"
#include "../common/duration.h"
#include "../common/redact.h"
#include "../common/log.h"
#include "../common/map.h"
#include "../common/util.h"
#include "../common/yaml.h"
#include "../steps/runner.h"
#include "../common/banned.h"

/* --- commands queued to the engine thread ------------------------------ */

struct reply {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    int rc;
    int created;
    int want_doc;
    json_t *doc; /* a start's document, built from the committed rows */
    struct wfo_error err;
};

enum cmd_kind { CMD_START, CMD_RESULT, CMD_OP, CMD_PICKED, CMD_WF_DELETE };

struct cmd {
    enum cmd_kind kind;
    struct cmd *next;
    char id[WFO_EXEC_ID_SIZE];
    char *ns;
    char *worker; /* picked */
    /* start */
    struct wfo_def *def;
    json_t *input;
    int fresh;     /* the id was made here (UUIDv7): no execution can have it */
    int64_t epoch; /* wf_epoch before def was resolved */
    int made;      /* this start created the execution */
    /* result */
    char *path;
    int64_t token;
    struct step_outcome out;
    /* op */
    enum engine_op op;
    char *reason;
    int compensate;
    int del_ok;          /* OP_DELETE accepted: the round deletes the execution */
    char *from;          /* OP_RETRY: the step to resume from, or NULL */
    struct reply *reply; /* NULL: nobody waits */
};

/* --- timers ------------------------------------------------------------ */

#define TIMER_WINDOW_MS (60 * 1000)
#define SHARD_LEASE_MS (30 * 1000)

struct tentry {
    char *id;
    char *exec_id;
    int64_t due;
    enum timer_kind kind;
    char *step;
    int64_t token;
    int dead;
};

/* One batch: the effects it commits, its rows and the strings they borrow,
 * and the commands answered once it is committed. The engine thread fills
 * one while the writer thread commits the other (E4). */
struct round {
    struct fsm fx;
    struct store_batch batch;
    struct wfo_arena text;  /* the JSON text its rows borrow */
    struct wfo_buf scratch; /* where that text is written first */
    struct cmd *replies;
    struct wfo_map fired; /* timer id -> tentry, fired in this batch */
    struct tentry **dead; /* popped from the heap: freed after the commit */
    int n_dead, alloc_dead;
    char **purge; /* ended executions retention deletes with this round */
    int n_purge, alloc_purge;
    int busy;     /* gathering, in flight or being acted on */
    int gen;      /* the fsm generation it was gathered in */
    int done, rc; /* set by the writer (under mu) */
    struct wfo_error err;
    double commit_ms;
};

struct handler {
    char *queue;
    wfo_task_handler fn;
    void *ud;
    char *command; /* or a command run with the worker protocol */
};

struct wfo_engine {
    struct wfo_engine_options opt;
    struct wfo_store *store;
    char *ns;
    pthread_mutex_t mu;      /* guards the queue, stop, failed, jobs */
    pthread_cond_t cv;       /* engine thread: work queued */
    pthread_cond_t ended_cv; /* an execution ended (or the engine stopped) */
    struct cmd *head, *tail;
    int stop, failed;
    struct wfo_error fail_err;
    pthread_t thread;
    int started;         /* engine_launch ran (handlers are fixed from then on) */
    int threads;         /* and started the threads */
    atomic_int launched; /* engine_launch is over: launch_rc says how */
    int launch_rc;
    pthread_mutex_t launch_mu; /* the first callers of engine_launch */
    pthread_t writer;
    pthread_cond_t writer_cv; /* writer thread: a round to commit, or wstop */
    struct round *wround;     /* the round the writer commits (guarded by mu) */
    int wstop;

    /* engine thread only */
    struct wfo_map execs; /* id -> struct xexec */
    struct fsm fsm;
    struct round rounds[3]; /* gathering, in flight, being acted on */
    struct round *cur;      /* gathering the next batch */
    struct tentry **heap;
    int n_heap, alloc_heap;
    struct wfo_map timers; /* id -> tentry */
    int64_t timer_horizon; /* the heap holds the timers due before it (E6) */
    struct def_retry default_retry;

    /* ownership (E7): the shards this engine holds, at which epochs */
    char owner[64];
    store_shardset shards;
    int64_t epochs[STORE_SHARDS];
    int64_t next_renew;

    /* definitions: "ns\nname\nversion" -> wfo_def (guarded by defs_mu) */
    pthread_mutex_t defs_mu;
    struct wfo_map defs;
    /* grows at every workflow deletion: a definition read from the store
     * before one is not cached after it, and a start that resolved its
     * definition before one checks that it still exists (do_start) */
    _Atomic int64_t wf_epoch;

    /* runner pool (guarded by mu) */
    pthread_t *runners;
    int n_runners;
    pthread_cond_t jobs_cv;
    struct step_job **jobs;
    int n_jobs, alloc_jobs, jobs_head; /* the queue is jobs[jobs_head..n_jobs) */
    struct wfo_map running;            /* "exec/path#token" -> step_job (for cancel) */
    struct handler *handlers;
    int n_handlers;

    struct taskq tq; /* tasks for workers */
    int64_t next_sweep;
    int64_t retention_ms;      /* retention.finished; 0: keep (set before launch) */
    struct task *sweep_kept;   /* expired tasks whose execution could not be read (E5) */
    struct cmd *results_kept;  /* results whose execution could not be read (E5) */
    int64_t results_retry_at;  /* when they are tried again */
    int64_t next_retention;    /* when retention_sweep looks again */
    struct engine_stats stats; /* guarded by mu */
};

void engine_server_key(struct wfo_engine *e, unsigned char out[32])
{
    memcpy(out, e->tq.key, sizeof(e->tq.key));
}

struct wfo_store *engine_store(struct wfo_engine *e)
{
    return e->store;
}

/* --- replies ----------------------------------------------------------- */

static void reply_init(struct reply *r)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
}

static void reply_done(struct reply *r, int rc, const struct wfo_error *err)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->rc = rc;
    if (err)
        r->err = *err;
    r->done = 1;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static int reply_wait(struct reply *r, struct wfo_error *err)
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

static void cmd_free(struct cmd *c)
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
    free(c);
}

static int post(struct wfo_engine *e, struct cmd *c, struct wfo_error *err)
{
    pthread_mutex_lock(&e->mu);
    if (e->stop || e->failed) {
        int code = e->failed ? e->failed : WFO_ESHUTDOWN;
        pthread_mutex_unlock(&e->mu);
        reply_done(c->reply, code, NULL);
        cmd_free(c);
        return wfo_error_set(err, code, "engine is %s",
                             code == WFO_ESHUTDOWN ? "stopping" : "stopped");
    }
    if (e->tail)
        e->tail->next = c;
    else
        e->head = c;
    e->tail = c;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    return 0;
}

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

static void tentry_free(struct tentry *t)
{
    free(t->id);
    free(t->exec_id);
    free(t->step);
    free(t);
}

static void timer_disarm(struct wfo_engine *e, const char *id);
static int timers_advance(struct wfo_engine *e, int64_t now);
static int exec_resume(const struct xexec *x);
static void shards_renew(struct wfo_engine *e, int64_t now);

/* Puts a timer in the heap, replacing one of the same id; one due after
 * the horizon only takes the old one out (E6). */
static void timer_arm(struct wfo_engine *e, const char *id, const char *exec_id, int64_t due,
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

static void timer_disarm(struct wfo_engine *e, const char *id)
{
    struct tentry *old = wfo_map_del(&e->timers, id);
    if (old)
        old->dead = 1;
}

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

/* --- definitions --------------------------------------------------------- */

static void def_key(struct wfo_buf *b, const char *ns, const char *name, int version)
{
    wfo_buf_reset(b);
    wfo_buf_addf(b, "%s\n%s\n%d", ns, name, version);
}

struct wf_row {
    json_t *doc;
    int version;
    int64_t created_at;
    char hash[65];
};

static int wf_row_cb(void *ud, const struct store_workflow *w)
{
    struct wf_row *r = ud;
    r->version = w->version;
    r->created_at = w->created_at;
    snprintf(r->hash, sizeof(r->hash), "%s", w->hash ? w->hash : "");
    json_decref(r->doc);
    r->doc = NULL;
    return wfo_json_parse(w->definition, strlen(w->definition), &r->doc, NULL) < 0 ? WFO_ESTORE : 0;
}

/* Remembers d as the latest version of its workflow unless a later one is
 * known. Single-node: a version registered by another node is seen when an
 * execution names it, or after a restart. */
static void defs_set_latest(struct wfo_engine *e, const char *ns, struct wfo_def *d)
{
    struct wfo_buf lk = WFO_BUF_INIT;
    wfo_buf_addf(&lk, "%s\n%s\nlatest", ns, d->name);
    pthread_mutex_lock(&e->defs_mu);
    struct wfo_def *old = wfo_map_get(&e->defs, lk.buf);
    if (!old || old->version < d->version) {
        if (old) {
            wfo_map_put(&e->defs, wfo_map_key(&e->defs, lk.buf), def_ref(d));
            def_unref(old);
        } else {
            wfo_map_put(&e->defs, wfo_buf_detach(&lk, NULL), def_ref(d));
        }
    }
    pthread_mutex_unlock(&e->defs_mu);
    wfo_buf_release(&lk);
}

static int64_t wf_epoch(struct wfo_engine *e)
{
    return atomic_load(&e->wf_epoch);
}

/* Drops every cached definition of (ns, name) after its deletion. */
static void defs_forget(struct wfo_engine *e, const char *ns, const char *name)
{
    struct wfo_buf prefix = WFO_BUF_INIT;
    wfo_buf_addf(&prefix, "%s\n%s\n", ns, name);
    const char *k;
    void *v;
    pthread_mutex_lock(&e->defs_mu);
    e->wf_epoch++;
    for (size_t it = 0; wfo_map_next(&e->defs, &it, &k, &v);) {
        if (strncmp(k, prefix.buf, prefix.len) != 0 || strchr(k + prefix.len, '\n'))
            continue;
        char *key = (char *)k;
        wfo_map_del(&e->defs, key);
        free(key);
        def_unref(v);
    }
    pthread_mutex_unlock(&e->defs_mu);
    wfo_buf_release(&prefix);
}

/* The compiled definition of (ns, name, version) (version 0: latest), a new
 * reference. Compiled once and cached. */
static int engine_def(struct wfo_engine *e, const char *ns, const char *name, int version,
                      struct wfo_def **out, struct wfo_error *err)
{
    struct wfo_buf key = WFO_BUF_INIT;
    struct wf_row row = {0};
    int64_t epoch = wf_epoch(e);
    int rc;
    if (version > 0) {
        def_key(&key, ns, name, version);
        pthread_mutex_lock(&e->defs_mu);
        struct wfo_def *d = wfo_map_get(&e->defs, key.buf);
        if (d)
            *out = def_ref(d);
        pthread_mutex_unlock(&e->defs_mu);
        if (d) {
            wfo_buf_release(&key);
            return 0;
        }
    }
    if (version <= 0) {
        /* the latest version this process registered or loaded */
        struct wfo_buf lk = WFO_BUF_INIT;
        wfo_buf_addf(&lk, "%s\n%s\nlatest", ns, name);
        pthread_mutex_lock(&e->defs_mu);
        struct wfo_def *d = wfo_map_get(&e->defs, lk.buf);
        if (d)
            *out = def_ref(d);
        pthread_mutex_unlock(&e->defs_mu);
        wfo_buf_release(&lk);
        if (d) {
            wfo_buf_release(&key);
            return 0;
        }
    }
    rc = e->store->ops->get_workflow(e->store, ns, name, version, wf_row_cb, &row, err);
    if (rc < 0) {
        if (rc == WFO_ENOTFOUND && version > 0 &&
            e->store->ops->get_workflow(e->store, ns, name, 0, wf_row_cb, &row, NULL) == 0)
            wfo_error_set(err, rc, "workflow '%s' has no version %d (the latest is %d)", name,
                          version, row.version);
        else if (rc == WFO_ENOTFOUND)
            wfo_error_set(err, rc, "workflow '%s' not found", name);
        goto out;
    }
    def_key(&key, ns, name, row.version);
    pthread_mutex_lock(&e->defs_mu);
    struct wfo_def *d = wfo_map_get(&e->defs, key.buf);
    if (d)
        *out = def_ref(d);
    pthread_mutex_unlock(&e->defs_mu);
    if (d)
        goto out;
    struct def_problems probs = {0};
    rc = def_compile(row.doc, &d, &probs);
    if (rc < 0) {
        wfo_error_set(err, WFO_ESTORE, "stored workflow '%s' v%d does not compile: %s: %s", name,
                      row.version, probs.n ? probs.items[0].path : "",
                      probs.n ? probs.items[0].message : "");
        def_problems_release(&probs);
        goto out;
    }
    d->version = row.version;
    pthread_mutex_lock(&e->defs_mu);
    int stale = e->wf_epoch != epoch; /* deleted since it was read: not cached */
    struct wfo_def *raced = stale ? NULL : wfo_map_get(&e->defs, key.buf);
    if (raced) {
        def_unref(d);
        d = raced;
        *out = def_ref(d);
    } else if (!stale) {
        wfo_map_put(&e->defs, wfo_strdup(key.buf), d);
        *out = def_ref(d);
    } else {
        *out = d;
    }
    pthread_mutex_unlock(&e->defs_mu);
    if (version <= 0 && !stale)
        defs_set_latest(e, ns, d);
out:
    json_decref(row.doc);
    wfo_buf_release(&key);
    return rc < 0 ? rc : 0;
}

static json_t *problems_json(const struct def_problems *p)
{
    json_t *a = json_array();
    for (int i = 0; i < p->n; i++)
        json_array_append_new(
            a, json_pack("{s:s, s:s}", "path", p->items[i].path, "message", p->items[i].message));
    return a;
}

struct put_ud {
    json_t *doc;
    int version;
    int64_t created_at;
};

static int put_cb(void *ud, const struct store_workflow *w)
{
    struct put_ud *p = ud;
    p->version = w->version;
    p->created_at = w->created_at;
    return 0;
}

int engine_put_workflow(struct wfo_engine *e, const char *ns, json_t *doc, int *created,
                        json_t **out, json_t **problems, struct wfo_error *err)
{
    struct wfo_def *d = NULL;
    struct def_problems probs = {0};
    char *canon = NULL;
    int rc = def_compile(doc, &d, &probs);
    if (rc < 0) {
        if (problems)
            *problems = problems_json(&probs);
        wfo_error_set(err, WFO_EDEFINITION, "invalid workflow definition: %s: %s",
                      probs.n ? probs.items[0].path : "", probs.n ? probs.items[0].message : "");
        goto out;
    }
    struct wfo_buf where = WFO_BUF_INIT;
    if (!e->opt.exec_enabled && def_find_type(d, STEP_EXEC, &where)) {
        /* refused now rather than failed at run time */
        def_problems_add(&probs, where.buf,
                         "exec steps are disabled on this server (exec.enabled: false)");
        wfo_buf_release(&where);
        if (problems)
            *problems = problems_json(&probs);
        rc = wfo_error_set(err, WFO_EDEFINITION, "invalid workflow definition: %s: %s",
                           probs.items[0].path, probs.items[0].message);
        goto out;
    }
    wfo_buf_release(&where);
    canon = wfo_json_dumps(doc);
    int64_t epoch = wf_epoch(e);
    struct put_ud p = {0};
    struct store_workflow w = {
        .namespace = ns, .name = d->name, .hash = d->hash, .definition = canon};
    int c = 0;
    rc = e->store->ops->put_workflow(e->store, &w, &c, put_cb, &p, err);
    if (rc < 0)
        goto out;
    /* the compiled definition is cached: executions need not compile it again */
    struct wfo_buf key = WFO_BUF_INIT;
    def_key(&key, ns, d->name, p.version);
    pthread_mutex_lock(&e->defs_mu);
    int stale = e->wf_epoch != epoch; /* deleted meanwhile: not cached */
    struct wfo_def *cached = stale ? NULL : wfo_map_get(&e->defs, key.buf);
    if (!cached && !stale) {
        d->version = p.version;
        wfo_map_put(&e->defs, wfo_buf_detach(&key, NULL), def_ref(d));
        cached = d;
    }
    pthread_mutex_unlock(&e->defs_mu);
    wfo_buf_release(&key);
    if (!stale)
        defs_set_latest(e, ns, cached);
    if (created)
        *created = c;
    if (out) {
        char ts[40];
        wfo_time_format(p.created_at, ts, sizeof(ts));
        *out = json_pack("{s:s, s:i, s:s, s:O}", "name", d->name, "version", p.version,
                         "created_at", ts, "definition", doc);
    }
out:
    def_problems_release(&probs);
    def_unref(d);
    free(canon);
    return rc;
}

int wfo_engine_put_workflow(struct wfo_engine *e, const char *text, size_t len, int *created,
                            char **out, char **problems, struct wfo_error *err)
{
    json_t *doc = NULL, *o = NULL, *p = NULL;
    int rc = wfo_doc_parse(text, len, &doc, err);
    if (rc < 0)
        return rc;
    rc = engine_put_workflow(e, e->ns, doc, created, out ? &o : NULL, problems ? &p : NULL, err);
    if (out && o)
        *out = wfo_json_dumps(o);
    if (problems && p)
        *problems = wfo_json_dumps(p);
    json_decref(o);
    json_decref(p);
    json_decref(doc);
    return rc;
}

/* --- persisting a batch -------------------------------------------------- */

static void batch_exec(struct round *rd, struct xexec *x)
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
        struct xstep *s = x->steps[i];
        if (!s->dirty)
            continue;
        s->dirty = 0;
        struct store_step *sr = store_batch_step(&rd->batch);
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
    x->dirty = 0;
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
        r->data = keep_json(rd, h->data);
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
        r->attempt = (int)t->token;
    }
    wfo_map_release(&last);
    for (struct cmd *c = rd->replies; c; c = c->next)
        if (c->del_ok)
            store_batch_exec_del(&rd->batch, c->id);
    for (int i = 0; i < rd->n_purge; i++)
        store_batch_exec_del(&rd->batch, rd->purge[i]);
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
    json_decref(j->args);
    free(j->idempotency_key);
    free(j->task_id);
    free(j->key);
    def_unref(j->defref);
    proc_cancel_release(&j->cancel);
    free(j);
}

static void *runner_main(void *arg)
{
    struct wfo_engine *e = arg;
    struct wfo_buf key = WFO_BUF_INIT;
    pthread_setname_np(pthread_self(), "wfo-runner");
    pthread_mutex_lock(&e->mu);
    for (;;) {
        while (e->jobs_head == e->n_jobs && !e->stop)
            pthread_cond_wait(&e->jobs_cv, &e->mu);
        if (e->stop)
            break;
        struct step_job *j = e->jobs[e->jobs_head++];
        if (e->jobs_head == e->n_jobs)
            e->jobs_head = e->n_jobs = 0;
        job_key(&key, j->exec_id, j->path, j->token);
        j->key = wfo_strdup(key.buf);
        wfo_map_put(&e->running, j->key, j);
        pthread_mutex_unlock(&e->mu);

        struct cmd *c = wfo_calloc(1, sizeof(*c));
        c->kind = CMD_RESULT;
        step_runner_find(j->def->type)->run(j, &c->out);
        if (wfo_redact_active()) {
            /* an upstream may echo a secret back (SPEC 2.1) */
            json_t *o = wfo_redact_json(c->out.output), *er = wfo_redact_json(c->out.error);
            json_decref(c->out.output);
            json_decref(c->out.error);
            c->out.output = o;
            c->out.error = er;
        }

        pthread_mutex_lock(&e->mu);
        wfo_map_del(&e->running, j->key);
        pthread_mutex_unlock(&e->mu);
        snprintf(c->id, sizeof(c->id), "%s", j->exec_id);
        c->path = wfo_strdup(j->path);
        c->token = j->token;
        job_free(j);
        post(e, c, NULL);
        pthread_mutex_lock(&e->mu);
    }
    pthread_mutex_unlock(&e->mu);
    wfo_buf_release(&key);
    return NULL;
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
    const struct step_runner *r = step_runner_find(a->def->type);
    if (!r)
        return;
    struct step_job *j = wfo_calloc(1, sizeof(*j));
    j->exec_id = wfo_strdup(a->x->id);
    j->path = wfo_strdup(a->step);
    j->token = a->token;
    j->attempt = a->attempt;
    j->def = a->def;
    j->defref = def_ref(a->x->def);
    j->args = json_incref(a->args);
    struct wfo_buf b = WFO_BUF_INIT;
    wfo_buf_adds(&b, a->x->id);
    wfo_buf_addch(&b, '/');
    wfo_buf_adds(&b, a->step);
    j->idempotency_key = wfo_strdup(b.buf);
    wfo_buf_addch(&b, '#');
    wfo_buf_addint(&b, a->attempt);
    j->task_id = wfo_buf_detach(&b, NULL);
    if (a->def->timeout_ms)
        j->deadline = wfo_now_ms() + a->def->timeout_ms;
    /* the cancel pipe wakes a child process's poll loop: only those need one */
    int procs = a->def->type == STEP_EXEC || a->def->type == STEP_HTTP;
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
    pthread_mutex_lock(&e->mu);
    if (e->n_jobs == e->alloc_jobs && e->jobs_head > 0) {
        memmove(e->jobs, e->jobs + e->jobs_head,
                (size_t)(e->n_jobs - e->jobs_head) * sizeof(*e->jobs));
        e->n_jobs -= e->jobs_head;
        e->jobs_head = 0;
    }
    GROW(e->jobs, e->n_jobs, e->alloc_jobs);
    e->jobs[e->n_jobs++] = j;
    pthread_cond_signal(&e->jobs_cv);
    pthread_mutex_unlock(&e->mu);
}

/* An attempt to run: on a runner thread, or queued for workers. */
static void dispatch(struct wfo_engine *e, struct fsm_action *a)
{
    if (a->def->type == STEP_TASK && !handler_find(e, a->def->queue)) {
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
        post(e, c, NULL);
    }
    job_submit(e, a);
}

/* ACT_STOP: a worker's task is asked to stop (cancel_requested) and may
 * still complete; one no worker took is dropped, and its attempt fails at
 * once. A runner job (http, exec, an in-process handler) is let finish. */
static void job_stop(struct wfo_engine *e, struct fsm_action *a)
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
    post(e, c, NULL);
}

static void job_cancel(struct wfo_engine *e, struct fsm_action *a)
{
    if (a->def && a->def->type == STEP_TASK)
        taskq_cancel(&e->tq, a->x->id, a->token);
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

/* --- the engine thread ------------------------------------------------------ */

struct load_ud {
    struct xexec *x;
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

static json_t *parse_or_null(const char *s)
{
    json_t *v = NULL;
    if (!s || wfo_json_parse(s, strlen(s), &v, NULL) < 0)
        return NULL;
    return v;
}

static int load_exec_cb(void *ud, const struct store_exec *r)
{
    struct load_ud *l = ud;
    struct wfo_def *d = NULL;
    int rc = engine_def(l->e, r->namespace, r->workflow, r->version, &d, l->err);
    if (rc < 0)
        return rc;
    json_t *input = parse_or_null(r->input);
    struct xexec *x = exec_new(r->id, r->namespace, d, input, r->created_at);
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

/* True when a restart must load x to start again an attempt it has in
 * flight (store_exec.resume): the steps engine_recover runs again. */
static int exec_resume(const struct xexec *x)
{
    if (EX_ENDED(x->status))
        return 0;
    for (int i = 0; i < x->n_steps; i++)
        if (x->steps[i]->status == SS_RUNNING && step_runner_find(x->steps[i]->def->type))
            return 1;
    return 0;
}

/* True when nothing of x is in flight but timers: no attempt runs (a runner
 * job or a worker task) and no compensation step. Such an execution can
 * leave memory; the store has all of it. */
static int exec_idle(const struct xexec *x)
{
    for (int i = 0; i < x->n_steps; i++)
        if (x->steps[i]->status == SS_RUNNING && !x->steps[i]->def->n_branches &&
            x->steps[i]->def->type != STEP_FOREACH)
            return 0;
    return 1;
}

/* The execution id, from memory or loaded from the store; NULL when absent. */
static struct xexec *exec_get(struct wfo_engine *e, const char *id, struct wfo_error *err)
{
    struct xexec *x = wfo_map_get(&e->execs, id);
    if (x)
        return x;
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
    return l.x;
}

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

/* Is version def->version of def's workflow still in the store, unchanged? */
static int def_stored(struct wfo_engine *e, const char *ns, const struct wfo_def *def)
{
    struct wf_row row = {0};
    struct wfo_error err = WFO_ERROR_INIT;
    int rc =
        e->store->ops->get_workflow(e->store, ns, def->name, def->version, wf_row_cb, &row, &err);
    json_decref(row.doc);
    return rc == 0 && strcmp(row.hash, def->hash) == 0;
}

static void do_start(struct wfo_engine *e, struct cmd *c)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct xexec *x = wfo_map_get(&e->execs, c->id);
    const char *ns = c->ns ? c->ns : e->ns;
    struct same_ud s = {.ns = ns, .workflow = c->def->name, .input = c->input};
    int rc = 0;
    if (x) {
        s.same = strcmp(x->ns, ns) == 0 && strcmp(x->workflow, c->def->name) == 0 &&
                 wfo_json_equal(x->input, c->input);
        rc = 1;
    } else if (!c->fresh) {
        rc = e->store->ops->get_exec(e->store, c->id, same_cb, &s, &err);
        rc = rc == 0 ? 1 : rc == WFO_ENOTFOUND ? 0 : rc;
    }
    if (rc == 0 && c->epoch != wf_epoch(e) && !def_stored(e, c->ns ? c->ns : e->ns, c->def))
        rc = wfo_error_set(&err, WFO_ENOTFOUND, "workflow '%s' not found", c->def->name);
    if (rc < 0) {
        reply_done(c->reply, rc, &err);
        c->reply = NULL; /* answered: not again after the commit */
        return;
    }
    if (rc == 1) {
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

static void do_op(struct wfo_engine *e, struct cmd *c)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct xexec *x = exec_get(e, c->id, &err);
    if (!x) {
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
        if (!err.code)
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
        struct xexec *x = v;
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

static void read_failed(struct wfo_engine *e, const char *exec_id, const char *what,
                        const struct wfo_error *err);

/* Applies a result. Returns 1 when reading its execution failed and nobody
 * waits for an answer (a runner's result): the caller keeps it for later
 * (E5). A worker waiting for its answer gets the store's error (503) and
 * sends it again. */
static int do_result(struct wfo_engine *e, struct cmd *c)
{
    struct wfo_error rerr = WFO_ERROR_INIT;
    struct xexec *x = exec_get(e, c->id, &rerr);
    int rc = WFO_ENOTFOUND;
    if (!x && rerr.code && rerr.code != WFO_ENOTFOUND) {
        if (!c->reply) {
            read_failed(e, c->id, "a step's result", &rerr);
            return 1;
        }
        reply_done(c->reply, rerr.code, &rerr);
        c->reply = NULL;
        return 0;
    }
    if (x)
        rc = fsm_result(&e->fsm, x, c->path, c->token, c->out.ok, c->out.output, c->out.error,
                        c->out.retryable);
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
static void read_failed(struct wfo_engine *e, const char *exec_id, const char *what,
                        const struct wfo_error *err)
{
    wfo_warn(exec_id, NULL, "%s: reading the store failed, tried again in 1 s: %s", what,
             err->message);
    pthread_mutex_lock(&e->mu);
    e->stats.read_retries++;
    pthread_mutex_unlock(&e->mu);
}

/* Fires t, unless reading its execution fails: then its durable row stays
 * (it is not in the round's fired set) and it is armed again 1 s later
 * (E5). Returns 1 when it fired. */
static int fire_timer(struct wfo_engine *e, struct tentry *t)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct xexec *x = exec_get(e, t->exec_id, &err);
    if (!x && err.code && err.code != WFO_ENOTFOUND) {
        read_failed(e, t->exec_id, "a due timer", &err);
        timer_arm(e, t->id, t->exec_id, e->fsm.now + 1000, t->kind, t->step, t->token);
        return 0;
    }
    wfo_map_put(&e->cur->fired, t->id, t);
    if (x)
        fsm_timer(&e->fsm, x, t->kind, t->step, t->token);
    return 1;
}

const double engine_step_buckets[ENGINE_STEP_BUCKETS] = {0.005, 0.025, 0.1, 0.25, 0.5,  1,
                                                         2.5,   10,    60,  300,  1800, 3600};

/* A step that ended: into the duration histogram of its type (under mu). */
static void count_step(struct wfo_engine *e, const struct fsm_hist *h)
{
    struct xstep *st = h->step ? exec_step(h->x, h->step) : NULL;
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
static void log_hist(const struct fsm_hist *h)
{
    const struct xexec *x = h->x;
    const char *t = h->type, *wf = x->workflow;
    const json_t *d = h->data;
    struct xstep *st = h->step ? exec_step(h->x, h->step) : NULL;
    int attempts = st ? st->attempts : 0;
    char et[600];

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
    if (e->opt.log_transitions)
        for (int i = 0; i < f->n_hist; i++)
            log_hist(&f->hist[i]);
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
    int ended = 0;
    for (int i = 0; i < f->n_acts; i++) {
        struct fsm_action *a = &f->acts[i];
        if (a->kind == ACT_RUN)
            dispatch(e, a);
        else if (a->kind == ACT_CANCEL)
            job_cancel(e, a);
        else if (a->kind == ACT_STOP)
            job_stop(e, a);
        else
            ended = 1;
    }
    if (ended) {
        pthread_mutex_lock(&e->mu);
        pthread_cond_broadcast(&e->ended_cv);
        pthread_mutex_unlock(&e->mu);
    }
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
        struct xexec *x = exec_get(e, t->exec_id, &rerr);
        if (!x && rerr.code && rerr.code != WFO_ENOTFOUND) {
            read_failed(e, t->exec_id, "an expired lease", &rerr);
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

struct ids {
    char **v;
    int n, alloc;
};

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

/* --- rounds: the engine thread fills one while the writer commits the other */

static int round_busy(const struct wfo_engine *e, const struct round *r)
{
    const struct fsm *f = &e->fsm;
    return r->replies || r->n_dead || r->n_purge || f->n_touched || f->n_hist || f->n_timers ||
           f->n_acts;
}

/* Drops what the round held once it is acted on (or abandoned). */
static void round_reset(struct round *r)
{
    for (struct cmd *c = r->replies, *next; c; c = next) {
        next = c->next;
        cmd_free(c);
    }
    r->replies = NULL;
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

static void round_release(struct round *r)
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
static void *writer_main(void *arg)
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
        int64_t t0 = wfo_mono_ms();
        int rc = e->store->ops->apply(e->store, &r->batch, &err);
        double ms = (double)(wfo_mono_ms() - t0);
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
static struct round *round_submit(struct wfo_engine *e, int *here)
{
    struct round *r = e->cur;
    for (int i = 0; i < 3; i++)
        if (!e->rounds[i].busy)
            e->cur = &e->rounds[i];
    e->cur->busy = 1;
    r->gen = e->fsm.gen;
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
        int64_t t0 = wfo_mono_ms();
        r->rc = e->store->ops->apply(e->store, &r->batch, &r->err);
        r->commit_ms = (double)(wfo_mono_ms() - t0);
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

/* A committed round: executions that ended, or only wait for timers, leave
 * memory unless a later batch (in flight or gathering) names them (E3);
 * then its effects are acted on and its commands answered (E1). Returns
 * the commit's code. */
static int round_finish(struct wfo_engine *e, struct round *r, const struct round *flight)
{
    struct fsm *f = &r->fx;
    if (r->rc < 0) {
        wfo_err(NULL, NULL, "store commit failed, engine stops: %s", r->err.message);
        for (struct cmd *c = r->replies; c; c = c->next) {
            reply_done(c->reply, r->rc, &r->err);
            c->reply = NULL;
        }
        return r->rc;
    }
    struct xexec **gone = NULL;
    int n_gone = 0, alloc_gone = 0;
    for (int i = 0; i < f->n_touched; i++) {
        struct xexec *x = f->touched[i];
        if (x->touched != e->fsm.gen && !(flight && x->touched == flight->gen) &&
            (EX_ENDED(x->status) || exec_idle(x)) && wfo_map_del(&e->execs, x->id)) {
            GROW(gone, n_gone, alloc_gone);
            gone[n_gone++] = x;
        }
    }
    for (struct cmd *c = r->replies; c; c = c->next) {
        struct xexec *x = c->del_ok ? wfo_map_get(&e->execs, c->id) : NULL;
        if (x && x->touched != e->fsm.gen && !(flight && x->touched == flight->gen) &&
            wfo_map_del(&e->execs, x->id)) {
            GROW(gone, n_gone, alloc_gone);
            gone[n_gone++] = x;
        }
    }
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

/* Applies queued commands and due timers to the current round. */
static void apply_cmds(struct wfo_engine *e, struct cmd *cmds)
{
    struct fsm *f = &e->fsm;
    struct round *r = e->cur;
    f->now = wfo_now_ms();
    while (e->n_heap && e->heap[0]->due <= f->now) {
        struct tentry *t = heap_pop(e);
        if (!t->dead) {
            wfo_map_del(&e->timers, t->id);
            fire_timer(e, t); /* or armed again, as a new entry (E5) */
        }
        GROW(r->dead, r->n_dead, r->alloc_dead);
        r->dead[r->n_dead++] = t;
    }
    if (e->results_kept && f->now >= e->results_retry_at) {
        struct cmd *last = e->results_kept;
        while (last->next)
            last = last->next;
        last->next = cmds;
        cmds = e->results_kept;
        e->results_kept = NULL;
    }
    if (e->retention_ms > 0 && f->now >= e->next_retention) {
        retention_sweep(e);
        e->next_retention = f->now + 1000;
    }
    if (f->now >= e->next_sweep) {
        sweep_leases(e);
        e->next_sweep = f->now + 1000;
    }
    if (f->now + TIMER_WINDOW_MS / 2 >= e->timer_horizon)
        timers_advance(e, f->now);
    if (f->now >= e->next_renew)
        shards_renew(e, f->now);
    for (struct cmd *c = cmds, *next; c; c = next) {
        next = c->next;
        if (c->kind == CMD_START) {
            do_start(e, c);
        } else if (c->kind == CMD_RESULT) {
            if (do_result(e, c)) {
                c->next = e->results_kept;
                e->results_kept = c;
                e->results_retry_at = f->now + 1000;
                continue;
            }
        } else if (c->kind == CMD_WF_DELETE) {
            do_wf_delete(e, c);
        } else if (c->kind == CMD_PICKED) {
            struct xexec *x = exec_get(e, c->id, NULL);
            if (x)
                fsm_task_picked(f, x, c->path, c->token, c->worker);
        } else {
            do_op(e, c);
        }
        c->next = r->replies;
        r->replies = c;
    }
}

/* Is there work for the engine thread now? (under mu) */
static int engine_due(struct wfo_engine *e, int64_t *due)
{
    if (e->head)
        return 1;
    while (e->n_heap && e->heap[0]->dead)
        tentry_free(heap_pop(e));
    int64_t now = wfo_now_ms();
    if ((e->n_heap && e->heap[0]->due <= now) || now >= e->next_sweep ||
        now + TIMER_WINDOW_MS / 2 >= e->timer_horizon || now >= e->next_renew)
        return 1;
    *due = e->next_sweep;
    if (e->n_heap && e->heap[0]->due < *due)
        *due = e->heap[0]->due;
    return 0;
}

/* The engine thread. While the writer commits one round, it applies the
 * commands that arrived meanwhile to the next (E4); a round is submitted
 * as soon as the writer is free, so under load batches grow by themselves
 * and an idle engine commits each command at once. */
static void *engine_main(void *arg)
{
    struct wfo_engine *e = arg;
    struct round *flight = NULL; /* submitted, not yet acted on */
    int rc = 0;
    pthread_setname_np(pthread_self(), "wfo-engine");
    pthread_mutex_lock(&e->mu);
    for (;;) {
        int64_t due = 0;
        for (;;) {
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
            struct timespec ts = {(time_t)(due / 1000), (long)(due % 1000) * 1000000L};
            pthread_cond_timedwait(&e->cv, &e->mu, &ts);
        }
        struct cmd *cmds = e->stop ? NULL : e->head;
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
        if (!stopping)
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
        pthread_mutex_lock(&e->mu);
    }
    /* a commit failed (E2): the commands applied since are not committed
     * either; answer them, stop */
    pthread_mutex_lock(&e->mu);
    e->failed = rc;
    e->fail_err = flight->err;
    pthread_cond_broadcast(&e->ended_cv);
    for (struct cmd *c = e->cur->replies; c; c = c->next) {
        reply_done(c->reply, rc, &flight->err);
        c->reply = NULL;
    }
    /* and the commands queued since: post() refuses new ones from now on */
    for (struct cmd *c = e->head, *next; c; c = next) {
        next = c->next;
        reply_done(c->reply, rc, &flight->err);
        cmd_free(c);
    }
    e->head = e->tail = NULL;
out:
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

/* --- recovery ----------------------------------------------------------------- */

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
        timer_arm(e, r->id, r->exec_id, r->due_at, (enum timer_kind)k, r->step, r->attempt);
    return 0;
}

/* E6: the timers due in [horizon, now + TIMER_WINDOW_MS) join the heap. A
 * read that fails leaves the horizon, so the next loop tries again. */
static int timers_advance(struct wfo_engine *e, int64_t now)
{
    struct wfo_error err = WFO_ERROR_INIT;
    int64_t until = now + TIMER_WINDOW_MS, from = e->timer_horizon;
    e->timer_horizon = until; /* before: timer_cb arms below it */
    int rc = e->store->ops->list_timers(e->store, e->shards, from, until, timer_cb, e, &err);
    if (rc < 0) {
        e->timer_horizon = from;
        read_failed(e, NULL, "the next timers", &err);
    }
    return rc;
}

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
    }
    return 0;
}

/* E7: claims (force: takes over) or renews the shards; the ones held are in
 * e->shards and e->epochs. */
static int shards_claim(struct wfo_engine *e, store_shardset want, int force, struct wfo_error *err)
{
    struct claim_ud c = {e, 0};
    int64_t now = wfo_now_ms();
    int rc = e->store->ops->claim_shards(e->store, e->owner, want, now, now + SHARD_LEASE_MS, force,
                                         claim_cb, &c, err);
    if (rc == 0) {
        e->shards = c.held;
        e->next_renew = now + SHARD_LEASE_MS / 3;
    }
    return rc;
}

/* E7: a renewal that finds a shard gone stops the engine like a refused
 * commit; one that fails is tried again a second later. */
static void shards_renew(struct wfo_engine *e, int64_t now)
{
    struct wfo_error err = WFO_ERROR_INIT;
    store_shardset had = e->shards;
    int rc = shards_claim(e, had, 0, &err);
    if (rc < 0) {
        e->next_renew = now + 1000;
        read_failed(e, NULL, "renewing the shard leases", &err);
        return;
    }
    if (e->shards != had) {
        wfo_error_set(&err, WFO_EFENCED, "shards %#x were taken over by another engine",
                      (unsigned)(had & ~e->shards));
        wfo_log(WFO_LOG_ERROR, NULL, NULL, "%s: this engine takes no more commands", err.message);
        pthread_mutex_lock(&e->mu);
        if (!e->failed) {
            e->failed = WFO_EFENCED;
            e->fail_err = err;
        }
        pthread_cond_broadcast(&e->ended_cv);
        pthread_mutex_unlock(&e->mu);
    }
}

/* Loads every running or paused execution, re-arms the timers, and starts
 * again the attempts that were in flight (at least once: SPEC 3). */
static int engine_recover(struct wfo_engine *e, struct wfo_error *err)
{
    struct ids ids = {0};
    int rc = shards_claim(e, STORE_ALL_SHARDS, 1, err);
    if (rc == 0)
        rc = e->store->ops->list_active_execs(e->store, e->shards, active_cb, &ids, err);
    for (int i = 0; rc == 0 && i < ids.n; i++) {
        struct xexec *x = exec_get(e, ids.v[i], err);
        if (!x) {
            rc = err->code ? err->code : WFO_ESTORE;
            break;
        }
        if (exec_idle(x)) {
            /* waits for timers only: it comes back when one fires (E3) */
            wfo_map_del(&e->execs, x->id);
            exec_free(x);
            continue;
        }
        for (int k = 0; k < x->n_steps; k++) {
            struct xstep *st = x->steps[k];
            if (st->status != SS_RUNNING || !step_runner_find(st->def->type))
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
            dispatch(e, &a);
            json_decref(args);
        }
    }
    for (int i = 0; i < ids.n; i++)
        free(ids.v[i]);
    free(ids.v);
    if (rc == 0) {
        e->timer_horizon = wfo_now_ms() + TIMER_WINDOW_MS;
        rc = e->store->ops->list_timers(e->store, e->shards, INT64_MIN, e->timer_horizon, timer_cb,
                                        e, err);
    }
    return rc;
}

/* --- public API ------------------------------------------------------------------ */

static int retry_from_json(const char *text, struct def_retry *r, struct wfo_error *err)
{
    json_t *doc = NULL;
    int rc = wfo_doc_parse(text, strlen(text), &doc, err);
    if (rc < 0)
        return rc;
    json_t *wf = json_pack("{s:s, s:[{s:s, s:s, s:s, s:O}]}", "name", "retry-default", "steps",
                           "name", "s", "type", "task", "queue", "q", "retry", doc);
    struct wfo_def *d = NULL;
    struct def_problems probs = {0};
    rc = def_compile(wf, &d, &probs);
    if (rc < 0) {
        wfo_error_set(err, WFO_EINVAL, "retry: %s: %s", probs.n ? probs.items[0].path : "",
                      probs.n ? probs.items[0].message : "");
    } else {
        *r = d->steps.steps[0].retry;
        r->non_retryable = NULL; /* not carried over: defaults keep none */
    }
    def_problems_release(&probs);
    def_unref(d);
    json_decref(wf);
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
    pthread_mutex_init(&e->mu, NULL);
    pthread_mutex_init(&e->defs_mu, NULL);
    pthread_mutex_init(&e->launch_mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    pthread_cond_init(&e->ended_cv, NULL);
    pthread_cond_init(&e->jobs_cv, NULL);
    pthread_cond_init(&e->writer_cv, NULL);
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
    for (int i = 0; i < 3; i++) {
        fsm_init(&e->rounds[i].fx);
        store_batch_init(&e->rounds[i].batch);
        wfo_buf_init(&e->rounds[i].scratch, 0);
    }
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

/* Recovers and starts the threads, once, at the first call that needs
 * them (after handlers are registered: recovery needs them). Callers that
 * come at the same time wait for the first. A failed recovery fails the
 * engine (as E2): every later call gets its error. */
static int engine_launch(struct wfo_engine *e, struct wfo_error *err)
{
    if (!atomic_load_explicit(&e->launched, memory_order_acquire)) {
        pthread_mutex_lock(&e->launch_mu);
        if (!atomic_load_explicit(&e->launched, memory_order_relaxed)) {
            struct wfo_error rerr = WFO_ERROR_INIT;
            e->started = 1;
            int rc = engine_recover(e, &rerr);
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
            }
            e->launch_rc = rc;
            atomic_store_explicit(&e->launched, 1, memory_order_release);
        }
        pthread_mutex_unlock(&e->launch_mu);
    }
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

void wfo_engine_free(struct wfo_engine *e)
{
    if (!e)
        return;
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
    }
    free(e->runners);
    for (struct cmd *c = e->head, *next; c; c = next) {
        next = c->next;
        reply_done(c->reply, WFO_ESHUTDOWN, NULL);
        cmd_free(c);
    }
    for (int i = e->jobs_head; i < e->n_jobs; i++)
        job_free(e->jobs[i]);
    free(e->jobs);
    wfo_map_release(&e->running);
    for (size_t it = 0; wfo_map_next(&e->execs, &it, &k, &v);)
        exec_free(v);
    wfo_map_release(&e->execs);
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
    pthread_mutex_destroy(&e->mu);
    pthread_mutex_destroy(&e->defs_mu);
    pthread_mutex_destroy(&e->launch_mu);
    pthread_cond_destroy(&e->cv);
    pthread_cond_destroy(&e->ended_cv);
    pthread_cond_destroy(&e->jobs_cv);
    pthread_cond_destroy(&e->writer_cv);
    free(e);
}

int engine_start(struct wfo_engine *e, struct engine_start_req *q, struct wfo_error *err)
{
    struct wfo_def *d = NULL;
    int rc = engine_launch(e, err);
    if (rc < 0)
        return rc;
    const char *id = q->id;
    if (id && *id && strlen(id) >= WFO_EXEC_ID_SIZE)
        return wfo_error_set(err, WFO_EINVAL, "id: longer than %d bytes", WFO_EXEC_ID_SIZE - 1);
    int64_t epoch = wf_epoch(e);
    rc = engine_def(e, q->ns, q->workflow, q->version, &d, err);
    if (rc < 0)
        return rc;
    struct reply r;
    reply_init(&r);
    r.want_doc = q->want_doc;
    struct cmd *c = wfo_calloc(1, sizeof(*c));
    c->kind = CMD_START;
    c->ns = wfo_strdup(q->ns);
    if (id && *id) {
        snprintf(c->id, sizeof(c->id), "%s", id);
        c->fresh = q->fresh_id;
    } else {
        wfo_id_new(c->id);
        c->fresh = 1;
    }
    c->def = d;
    c->epoch = epoch;
    c->input = q->input ? wfo_redact_json(q->input) : json_object();
    c->reply = &r;
    char idcopy[WFO_EXEC_ID_SIZE];
    snprintf(idcopy, sizeof(idcopy), "%s", c->id);
    post(e, c, NULL);
    rc = reply_wait(&r, err);
    if (rc < 0) {
        json_decref(r.doc);
        return rc;
    }
    q->created = r.created;
    q->id_out = wfo_strdup(idcopy);
    q->doc = r.doc;
    return 0;
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

/* --- the worker protocol ----------------------------------------------------- */

int engine_task_poll(struct wfo_engine *e, const char *ns, const char *const *queues, int n_queues,
                     const char *worker, int max, int64_t wait_ms, json_t **tasks,
                     struct wfo_error *err)
{
    int rc = engine_launch(e, err);
    if (rc < 0)
        return rc;
    json_t *picked = NULL;
    *tasks = taskq_poll(&e->tq, ns, queues, n_queues, worker, max, wait_ms, &picked);
    size_t i;
    json_t *p;
    json_array_foreach(picked, i, p)
    {
        struct cmd *c = wfo_calloc(1, sizeof(*c));
        c->kind = CMD_PICKED;
        snprintf(c->id, sizeof(c->id), "%s", wfo_json_str(p, "execution_id"));
        c->path = wfo_strdup(wfo_json_str(p, "step"));
        c->token = json_integer_value(json_object_get(p, "token"));
        c->worker = wfo_strdup(wfo_json_str(p, "worker"));
        post(e, c, NULL);
    }
    json_decref(picked);
    return 0;
}

void engine_task_unpoll(struct wfo_engine *e, json_t *tasks)
{
    size_t i;
    json_t *t;
    json_array_foreach(tasks, i, t)
        taskq_unlease(&e->tq, wfo_json_str(t, "task_id"), wfo_json_str(t, "lease"));
}

struct exists_ud {
    const char *ns;
    int found;
};

static int exists_cb(void *ud, const struct store_exec *r)
{
    struct exists_ud *x = ud;
    x->found = strcmp(r->namespace, x->ns) == 0;
    return 0;
}

/* A task the queue does not hold: 409 when its execution exists (a stale
 * or finished attempt), else 404. */
static int task_missing(struct wfo_engine *e, const char *ns, const char *id, struct wfo_error *err)
{
    char exec_id[TASKQ_ID_SIZE];
    int64_t token;
    struct exists_ud x = {ns, 0};
    if (taskq_id_parse(id, exec_id, sizeof(exec_id), &token) == 0) {
        struct wfo_error ignore = WFO_ERROR_INIT;
        e->store->ops->get_exec(e->store, exec_id, exists_cb, &x, &ignore);
    }
    if (x.found)
        return wfo_error_set(err, WFO_ECONFLICT, "task '%s' is no longer current", id);
    return wfo_error_set(err, WFO_ENOTFOUND, "task '%s' not found", id);
}

/* Phase one of a result: checked against the task's lease, then queued to
 * the engine thread; 1 when queued (the reply is pending). */
static int task_post(struct wfo_engine *e, const char *ns, struct engine_task_result *t,
                     struct reply *r)
{
    struct task *k = NULL;
    enum taskq_check ck = taskq_take(&e->tq, ns, t->task_id, t->lease, &k);
    if (ck == TQ_UNKNOWN)
        return task_missing(e, ns, t->task_id, &t->err);
    if (ck == TQ_STALE)
        return wfo_error_set(&t->err, WFO_ECONFLICT,
                             "lease '%s' is not the current lease of task '%s'",
                             t->lease ? t->lease : "", t->task_id);
    reply_init(r);
    struct cmd *c = wfo_calloc(1, sizeof(*c));
    c->kind = CMD_RESULT;
    snprintf(c->id, sizeof(c->id), "%s", k->exec_id);
    c->path = wfo_strdup(k->path);
    c->token = k->token;
    c->out.ok = t->ok;
    /* a worker may echo a secret it was never given: redacted (SPEC 2.1) */
    c->out.output = t->ok ? wfo_redact_json(t->output ? t->output : json_null()) : NULL;
    c->out.error = t->ok ? NULL : wfo_redact_json(t->error);
    c->out.retryable = t->retryable;
    c->reply = r;
    task_free(k);
    post(e, c, NULL);
    return 1;
}

int engine_task_finish(struct wfo_engine *e, const char *ns, struct engine_task_result *t, int n,
                       struct wfo_error *err)
{
    int rc = engine_launch(e, err);
    if (rc < 0)
        return rc;
    /* all queued before any is waited for: they share a round */
    struct reply *r = wfo_calloc((size_t)n, sizeof(*r));
    for (int i = 0; i < n; i++)
        t[i].rc = task_post(e, ns, &t[i], &r[i]);
    for (int i = 0; i < n; i++) {
        if (t[i].rc != 1)
            continue;
        t[i].rc = reply_wait(&r[i], &t[i].err);
        if (t[i].rc == WFO_ESTATE || t[i].rc == WFO_ENOTFOUND)
            t[i].rc = wfo_error_set(&t[i].err, WFO_ECONFLICT, "task '%s' is no longer current",
                                    t[i].task_id);
    }
    free(r);
    return 0;
}

/* One result, as a batch of one: the call's code is the result's. */
static int task_finish_one(struct wfo_engine *e, const char *ns, struct engine_task_result *t,
                           struct wfo_error *err)
{
    int rc = engine_task_finish(e, ns, t, 1, err);
    if (rc == 0 && t->rc < 0)
        *err = t->err;
    return rc < 0 ? rc : t->rc;
}

int engine_task_complete(struct wfo_engine *e, const char *ns, const char *task_id,
                         const char *lease, json_t *output, struct wfo_error *err)
{
    struct engine_task_result t = {task_id, lease, 1, output, NULL, 1, 0, WFO_ERROR_INIT};
    return task_finish_one(e, ns, &t, err);
}

int engine_task_fail(struct wfo_engine *e, const char *ns, const char *task_id, const char *lease,
                     json_t *error, int retryable, struct wfo_error *err)
{
    struct engine_task_result t = {task_id, lease, 0, NULL, error, retryable, 0, WFO_ERROR_INIT};
    return task_finish_one(e, ns, &t, err);
}

int engine_task_heartbeat(struct wfo_engine *e, const char *ns, const char *task_id,
                          const char *lease, int *cancel_requested, struct wfo_error *err)
{
    int rc = engine_launch(e, err);
    if (rc < 0)
        return rc;
    enum taskq_check ck = taskq_heartbeat(&e->tq, ns, task_id, lease, cancel_requested);
    if (ck == TQ_UNKNOWN)
        return task_missing(e, ns, task_id, err);
    if (ck == TQ_STALE)
        return wfo_error_set(err, WFO_ECONFLICT, "lease '%s' is not the current lease of task '%s'",
                             lease ? lease : "", task_id);
    return 0;
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
    /* out->timers: copied by the engine thread at its last commit */
}

json_t *engine_queues(struct wfo_engine *e, const char *ns, int known_only)
{
    return taskq_queues(&e->tq, ns, known_only, wfo_now_ms());
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
}

int engine_run(struct wfo_engine *e, struct wfo_error *err)
{
    return engine_launch(e, err);
}

/* Hands c (taken) to the engine thread and waits for its answer. */
static int call(struct wfo_engine *e, struct cmd *c, struct wfo_error *err)
{
    struct reply r;
    reply_init(&r);
    c->reply = &r;
    post(e, c, NULL); /* a refusal answers r */
    return reply_wait(&r, err);
}

int engine_delete_workflow(struct wfo_engine *e, const char *ns, const char *name,
                           struct wfo_error *err)
{
    int rc = engine_launch(e, err);
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
    int rc = engine_launch(e, err);
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

/* --- for query.c's waits ----------------------------------------------- */

int engine_await_end(struct wfo_engine *e, int64_t until, struct wfo_error *err)
{
    int rc = ENGINE_AWAIT_AGAIN;
    pthread_mutex_lock(&e->mu);
    int64_t now = wfo_now_ms();
    if (now >= until || e->stop || e->failed) {
        rc = e->failed < 0 ? e->failed : ENGINE_AWAIT_OVER;
        if (rc < 0)
            *err = e->fail_err;
    } else {
        int64_t due = now + 200 < until ? now + 200 : until;
        struct timespec ts = {(time_t)(due / 1000), (long)(due % 1000) * 1000000L};
        pthread_cond_timedwait(&e->ended_cv, &e->mu, &ts);
    }
    pthread_mutex_unlock(&e->mu);
    return rc;
}

/* --- accessors --------------------------------------------------------- */

const char *engine_store_name(struct wfo_engine *e)
{
    return e->store->ops->name;
}
