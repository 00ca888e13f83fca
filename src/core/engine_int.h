/*
 * engine_int.h - what the pieces of the engine share, and nothing else
 * includes: struct wfo_engine, its commands, timers and rounds, and the
 * functions one piece calls in another. The threads and the invariants
 * E1-E5 the pieces rely on are described at the top of engine.c.
 *
 *   engine.c   lifecycle, the public calls, the engine thread, the runner pool
 *   round.c    rounds and group commit: batches, the writer thread, acting
 *              on a committed round
 *   timer.c    the timer heap and engine_tick(): every periodic duty
 *   recover.c  recovery, and loading executions from the store
 *   defs.c     the definitions cache
 *   taskq.c    the worker protocol (and the ready queues it serves)
 *
 * Everything here is for the engine thread only unless it says otherwise.
 */
#ifndef WFO_CORE_ENGINE_INT_H
#define WFO_CORE_ENGINE_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "engine.h"
#include "exec.h"
#include "fsm.h"
#include "taskq.h"
#include "../common/arena.h"
#include "../common/map.h"
#include "../common/util.h"
#include "../store/store.h"
#include "../steps/runner.h"

/* --- commands queued to the engine thread ------------------------------ */

struct reply {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* when set, reply_done calls it (in the thread that answers) instead
     * of waking a reply_wait: the caller went on (engine_start_post) */
    void (*on_done)(void *ud);
    void *on_done_ud;
    int done;
    int rc;
    int created;
    int want_doc;
    json_t *doc;        /* a start's document, built from the committed rows */
    char workflow[160]; /* a task result's: its execution's workflow (for the audit line) */
    struct wfo_error err;
};

/* CMD_WAKE (events.c): an event of (ns, path = type, reason = key) or a
 * signal (id, path = name; NULL: every wait of id) may meet a wait. */
enum cmd_kind { CMD_START, CMD_RESULT, CMD_OP, CMD_PICKED, CMD_LEASED, CMD_WF_DELETE, CMD_WAKE };

struct cmd {
    enum cmd_kind kind;
    struct cmd *next;
    char id[WFO_EXEC_ID_SIZE];
    char *ns;
    char *worker; /* picked */
    /* start */
    struct def *def;
    json_t *input;
    int fresh;     /* the id was made here (UUIDv7): no execution can have it */
    int64_t epoch; /* wf_epoch before def was resolved */
    int made;      /* this start created the execution */
    /* result */
    char *path;
    int64_t token;
    struct step_outcome out;
    int runner; /* a CMD_RESULT of a runner job (an http call, a command, a handler) */
    int orphan; /* of a job a forget left running or queued: adoptable (E9) */
    /* op */
    enum engine_op op;
    char *reason;
    int compensate;
    int del_ok; /* OP_DELETE accepted: the round deletes the execution */
    char *from; /* OP_RETRY: the step to resume from, or NULL */
    /* leased: a worker took task `path` (its id) with this lease until then */
    char *lease;
    int64_t leased_until;
    /* result: of the child execution with this id, for the attempt of the
     * step at path that started it (its token is looked up: child_token) */
    char *child;
    struct reply *reply; /* NULL: nobody waits */
};

/* --- timers ------------------------------------------------------------ */

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
    struct cmd *leases;   /* CMD_LEASED, not answered: rows that ride along (LEASE_WRITE_MS) */
    int64_t leases_due;   /* when they make the round busy on their own */
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
    struct store *store;
    char *ns;
    pthread_mutex_t mu;       /* guards the queue, stop, failed, jobs */
    pthread_cond_t cv;        /* engine thread: work queued */
    pthread_cond_t ended_cv;  /* an execution ended (or the engine stopped) */
    struct wfo_map end_waits; /* id -> struct engine_end_wait list (under mu; round.c E10) */
    atomic_int n_end_waits;   /* how many: 0, and a round looks for none */
    struct cmd *head, *tail;
    int stop, failed;
    int recovering; /* engine_restart is recovering: post() queues commands */
    struct wfo_error fail_err;
    pthread_t thread;
    int started;         /* wfo_engine_launch ran (handlers are fixed from then on) */
    int threads;         /* and started the threads */
    atomic_int launched; /* wfo_engine_launch is over: launch_rc says how */
    int launch_rc;
    pthread_mutex_t launch_mu; /* callers of wfo_engine_launch */
    pthread_t writer;
    pthread_cond_t writer_cv; /* writer thread: a round to commit, or wstop */
    struct round *wround;     /* the round the writer commits (guarded by mu) */
    int wstop;

    /* the outbox (events.c O1): outbox_gen grows after every commit that
     * wrote outbox rows; the event streams wait on outbox_cv for it */
    pthread_mutex_t outbox_mu;
    pthread_cond_t outbox_cv; /* CLOCK_MONOTONIC */
    int64_t outbox_gen;

    /* webhook delivery (webhooks.c); NULL until engine_webhooks_start */
    struct webhooks *webhooks;

    /* engine thread only */
    struct wfo_map execs; /* id -> struct execution */
    struct wfo_map waits; /* "ns\ntype\nkey" -> the executions that wait for it (events.c W5) */
    int64_t next_reindex; /* when the waits index is made again */
    struct fsm fsm;
    struct round rounds[3]; /* gathering, in flight, being acted on */
    struct round *cur;      /* gathering the next batch */
    struct tentry **heap;
    int n_heap, alloc_heap;
    struct wfo_map timers; /* id -> tentry */
    int64_t timer_horizon; /* the heap holds the timers due before it (E6) */
    struct def_retry default_retry;

    /* ownership (E7): the shards this engine holds, at which epochs */
    char owner[WFO_ID_SIZE];
    store_shardset shards;
    int64_t epochs[STORE_SHARDS];
    int64_t next_renew;
    int64_t shard_lease_ms;                    /* how long a claim or renewal holds a shard */
    _Atomic store_shardset held;               /* e->shards, for other threads (fresh ids) */
    _Atomic int64_t held_epochs[STORE_SHARDS]; /* e->epochs, for other threads (signals) */
    /* a cluster (E8): several nodes share the store and its shards */
    int cluster;
    char *node_url;     /* where the other nodes reach this one's API (under mu) */
    int64_t started_at; /* its row in `nodes` */
    int regroup;        /* forget all and recover this node's share once no round is in flight */
    int64_t give_since; /* a shard to give back has waited for its running jobs since (ms) */
    atomic_int orphans; /* orphan jobs and queued results (E9): 0, none to look for */
    atomic_int hears_ready; /* the store tells of other nodes' ready tasks (cluster_listen) */
    int64_t next_scan;      /* the events of the other nodes (triggers.c T4) */
    int64_t scan_at, scan_seq;

    /* definitions: "ns\nname\nversion" -> struct def (guarded by defs_mu) */
    pthread_mutex_t defs_mu;
    struct wfo_map defs;
    /* grows at every workflow deletion: a definition read from the store
     * before one is not cached after it, and a start that resolved its
     * definition before one checks that it still exists (do_start) */
    _Atomic int64_t wf_epoch;
    /* grows at every workflow registration: the event triggers' cache of
     * the workflows with triggers per namespace (triggers.c, under
     * defs_mu) is read again after one */
    _Atomic int64_t wf_gen;
    struct wfo_map trig_cache;

    /* runner pool (guarded by mu) */
    pthread_t *runners;
    int n_runners;
    pthread_cond_t jobs_cv;
    struct step_job **jobs;
    int n_jobs, alloc_jobs, jobs_head; /* the queue is jobs[jobs_head..n_jobs) */
    int runners_idle;                  /* runners waiting on jobs_cv */
    /* jobs made by the engine thread, not queued yet (jobs_flush; engine
     * thread only, no lock) */
    struct step_job **staged;
    int n_staged, alloc_staged;
    struct wfo_map running; /* "exec/path#token" -> step_job (for cancel) */
    struct handler *handlers;
    int n_handlers;

    struct taskq tq; /* tasks for workers */
    int64_t next_sweep;
    int64_t retention_ms;        /* retention.finished; 0: keep (set before launch) */
    struct task *sweep_kept;     /* expired tasks whose execution could not be read (E5) */
    struct cmd *results_kept;    /* results whose execution could not be read (E5) */
    struct cmd *taken;           /* the commands apply_cmds took, during its tick (E9) */
    int64_t results_retry_at;    /* when they are tried again */
    int64_t next_retention;      /* when retention_sweep looks again */
    int64_t outbox_retention_ms; /* events.retention; 0: keep (set before launch) */
    int64_t next_outbox_sweep;   /* when outbox_sweep looks again */
    int64_t next_cron;           /* when the cron triggers are looked at (triggers.c) */
    struct wfo_map cron_fired;   /* "ns\nworkflow\ncron" -> int64_t: the slot last started */
    int child_seen, child_gen;   /* child_round: the effects of gen looked at so far */
    struct engine_stats stats;   /* guarded by mu */
};

/* A list of execution ids a store listing gathers. */
struct ids {
    char **v;
    int n, alloc;
};

/* --- engine.c ------------------------------------------------------------ */

void reply_init(struct reply *r);
/* Answers r (NULL: nobody waits) with rc and err (copied). Any thread. */
void reply_done(struct reply *r, int rc, const struct wfo_error *err);
/* Waits for r's answer, then releases r; returns its rc, *err its error. */
int reply_wait(struct reply *r, struct wfo_error *err);
void cmd_free(struct cmd *c);
/* Queues c (taken; a chain by next: all of them, in order) to the engine
 * thread; refused (and each answered and freed) once the engine stops or
 * failed. Any thread. */
int engine_post(struct wfo_engine *e, struct cmd *c, struct wfo_error *err);
/* E1, E2, E4-E7 (engine.c's header) on e, with flight the round submitted
 * and not yet acted on (NULL: none): NULL when they hold, else the name of
 * the first broken one, what broke in why (size n). The engine thread runs
 * it after every round through WFO_CHECK (check.h). Takes mu. */
const char *engine_check(struct wfo_engine *e, const struct round *flight, char *why, size_t n);
/* E3 on the round r being acted on, after its executions left memory. */
const char *round_check(struct wfo_engine *e, const struct round *r, const struct round *flight,
                        char *why, size_t n);
/* E10 on a document handed to a wait: the store's is the same. */
const char *round_doc_check(struct wfo_engine *e, const struct execution *x, const json_t *doc,
                            char *why, size_t n);
/* A read on the engine thread failed: counted and logged (E5). */
void engine_read_failed(struct wfo_engine *e, const char *exec_id, const char *what,
                        const struct wfo_error *err);
/* The runner pool: an attempt to run (ACT_RUN), to stop, to cancel. */
void job_dispatch(struct wfo_engine *e, struct fsm_action *a);
void jobs_flush(struct wfo_engine *e);
/* Does an attempt of d go to workers (a task step no in-process handler
 * takes)? Its task is then a row in the store (round.c batch_tasks). */
int job_for_workers(struct wfo_engine *e, const struct def_step *d);
void job_stop(struct wfo_engine *e, struct fsm_action *a);
void job_cancel(struct wfo_engine *e, struct fsm_action *a);

/* --- round.c ------------------------------------------------------------- */

void round_init(struct round *r);
void round_release(struct round *r);
/* Does the round being gathered hold anything to commit or answer? Lease
 * rows alone (CMD_LEASED) make it busy only LEASE_WRITE_MS after the first
 * of them, or when the engine stops: until then they wait for a round
 * that commits anyway (and go with it), or are dropped by the round that
 * deletes their task's row (store_batch_drop_leases). A lease is only
 * what a restart or a takeover learns of a delivery; one not yet written
 * makes its task ready again there (delivered twice, at least once, SPEC
 * 3), and its worker's completion is still accepted by its MAC (taskq.c
 * T2). Leases have no answer to wait for; a commit of its own for each
 * delivery put two commits on every step's path when the engine was
 * otherwise idle (docs/operations/scaling.md). */
#define LEASE_WRITE_MS 500
int round_busy(const struct wfo_engine *e, const struct round *r);
struct round *round_submit(struct wfo_engine *e, int *here);
int round_finish(struct wfo_engine *e, struct round *r, const struct round *flight);
/* The writer thread's main. */
void *writer_main(void *arg);

/* --- timer.c ------------------------------------------------------------- */

void timer_arm(struct wfo_engine *e, const char *id, const char *exec_id, int64_t due,
               enum timer_kind kind, const char *step, int64_t token);
void timer_disarm(struct wfo_engine *e, const char *id);
void tentry_free(struct tentry *t);
/* Does every periodic duty that is due at e->fsm.now (see timer.c); the
 * results kept for retry that are due go in front of *cmds. */
void engine_tick(struct wfo_engine *e, struct cmd **cmds);
/* When engine_tick next has work: the earliest due of its duties. Frees
 * the dead timers at the top of the heap. */
int64_t engine_tick_next(struct wfo_engine *e);

/* --- events.c ------------------------------------------------------------ */

/* Acts on a CMD_WAKE: 1 when the store could not be read (kept, E5). */
int events_wake(struct wfo_engine *e, struct cmd *c);
/* After a commit: the waits f started look for a match, the events it
 * emitted wake the waits they meet (events.c W2). */
void events_after_commit(struct wfo_engine *e, struct fsm *f);
/* Queues a CMD_WAKE: for an event (ns, type, key), or for execution
 * exec_id's waits of signal `type` (NULL: all of them). */
void events_post_wake(struct wfo_engine *e, const char *ns, const char *type, const char *key,
                      const char *exec_id);
/* {id, type, key, source, data, time} of an events row (new ref). */
json_t *events_event_json(const struct store_event *r);
/* The index of waits (W5): x's waiting steps are added; the whole index
 * released, or made again from the executions in memory. */
void events_index_exec(struct wfo_engine *e, struct execution *x);
void events_index_release(struct wfo_engine *e);
void events_reindex(struct wfo_engine *e);
#define WAITS_REINDEX_MS (60 * 1000)
/* webhooks.c: stops the deliverer's threads (wfo_engine_free, first);
 * adds its counters to engine_stats. */
void webhooks_stop(struct wfo_engine *e);
void webhooks_stats(struct wfo_engine *e, struct engine_stats *out);

/* After a commit that wrote outbox rows: wakes the event streams. */
void events_outbox_notify(struct wfo_engine *e);

/* --- triggers.c ----------------------------------------------------------- */

/* The execution id of a trigger's firing: a UUID-shaped hash of (ns,
 * workflow, kind, what), what being the event id or "CRON\nSLOT_MS". */
void triggers_id(char out[WFO_ID_SIZE], const char *ns, const char *workflow, const char *kind,
                 const char *what);
/* After event ev ({id, type, key, source, data, time}) of ns is committed:
 * starts one execution per latest workflow of ns with a trigger of its
 * type (T1, T2). Any thread. */
void triggers_event(struct wfo_engine *e, const char *ns, json_t *ev);
/* Recovery: triggers_event for the events of the last hour (T2). */
int triggers_recover(struct wfo_engine *e, struct wfo_error *err);
/* The "cluster events" duty (T4), engine thread. */
void triggers_cluster_scan(struct wfo_engine *e, int64_t now);
/* The "cron triggers" duty (T3), engine thread. */
void triggers_cron(struct wfo_engine *e, int64_t now);
void triggers_release(struct wfo_engine *e);

/* --- recover.c ----------------------------------------------------------- */

int engine_recover(struct wfo_engine *e, struct wfo_error *err);
/* E6: the timers due in [horizon, now + TIMER_WINDOW_MS) join the heap. */
int timers_advance(struct wfo_engine *e, int64_t now);
/* E7: renews the shard leases; one found taken stops the engine. In a
 * cluster (E8), also takes free shards up to this node's share, and sets
 * e->regroup when it must give some back or lost one. */
void shards_renew(struct wfo_engine *e, int64_t now);

#define TIMER_WINDOW_MS (60 * 1000)
#define SHARD_LEASE_MS (30 * 1000)
/* The execution id, from memory or loaded from the store; NULL when absent
 * (err->code 0), when reading failed (err set), or, in a cluster, when
 * another node holds its shard (WFO_EFENCED). */
struct execution *exec_get(struct wfo_engine *e, const char *id, struct wfo_error *err);
/* exec_get's error says that what was meant for the execution is not this
 * engine's to apply (absent, or another node's): it is dropped, not kept
 * for a retry (E5). */
#define EXEC_GONE(err) (!(err)->code || (err)->code == WFO_ENOTFOUND || (err)->code == WFO_EFENCED)
/* True when nothing of x is in flight but timers (E3). */
int exec_idle(const struct execution *x);
/* True when a restart must load x to start again an attempt it has in
 * flight (store_exec.resume): the steps engine_recover runs again. */
int exec_resume(const struct execution *x);
/* s parsed, or NULL (s NULL or not JSON). New ref. */
json_t *parse_or_null(const char *s);

/* --- child.c ------------------------------------------------------------ */

/* Starts, cancels and answers child executions (`workflow` steps) in the
 * round being gathered: the ACT_CHILD, ACT_CANCEL/ACT_STOP and ACT_ENDED
 * effects gathered since it last looked, until there are no new ones. */
void child_round(struct wfo_engine *e);
/* The token of the attempt of step path of x that started child, or -1. */
int64_t child_token(struct execution *x, const char *path, const char *child);
/* At recovery: x's `workflow` steps whose child has ended get its outcome
 * (a result posted to the engine thread). A read that fails fails recovery. */
int child_recover(struct wfo_engine *e, struct execution *x, struct wfo_error *err);

/* --- defs.c (any thread: guarded by defs_mu) ------------------------------ */

/* The compiled definition of (ns, name, version) (version 0: latest), a new
 * reference. Compiled once and cached. */
int engine_def(struct wfo_engine *e, const char *ns, const char *name, int version,
               struct def **out, struct wfo_error *err);
/* Grows at every workflow deletion (struct wfo_engine.wf_epoch). */
int64_t defs_epoch(struct wfo_engine *e);
/* Drops every cached definition of (ns, name) after its deletion. */
void defs_forget(struct wfo_engine *e, const char *ns, const char *name);
/* Is version def->version of def's workflow still in the store, unchanged? */
int defs_stored(struct wfo_engine *e, const char *ns, const struct def *def);

#endif
