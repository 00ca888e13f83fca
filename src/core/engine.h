/*
 * engine.h - the engine's internal interface, for api/ and cli/ (the
 * public one is include/wfo/wfo.h). docs/interfaces/internal.md.
 */
#ifndef WFO_CORE_ENGINE_H
#define WFO_CORE_ENGINE_H

#include "wfo/wfo.h"
#include "../common/json.h"
#include "def.h"

/* Opaque here: api/ includes this header and must not reach the store
 * (it reads through query.h); core's files include store/store.h. */
struct store;

/* 0 once wfo_engine_launch() has recovered and started the threads;
 * WFO_ESTATE before it; the launch's error when recovery failed. Every
 * call that needs the engine's threads asks it first. */
int engine_ready(struct wfo_engine *e, struct wfo_error *err);

/* The store the engine writes; core's readers (query.c) use it too
 * (thread-safe). api/ reads through query.h, never the store. */
struct store *engine_store(struct wfo_engine *e);
/* Is execution id's shard this node's (always, unless in a cluster: E8)? */
int engine_holds(struct wfo_engine *e, const char *exec_id);
/* Sets the URL this node's row in `nodes` gives the other nodes (any
 * thread; its next beat writes it). */
void engine_advertise(struct wfo_engine *e, const char *url);
/* Does the store tell this node when another makes a task ready (a
 * cluster on PostgreSQL: LISTEN/NOTIFY)? Then a poll need not ask the
 * other nodes at every slice. */
int engine_hears_others(struct wfo_engine *e);
/* Is this node one of a cluster (cluster.enabled, E8)? */
int engine_clustered(struct wfo_engine *e);
/* This node's id (its owner id in the shards and nodes rows). */
const char *engine_node(struct wfo_engine *e);
/* How long a node holds shards unrenewed (cluster.lease). */
int64_t engine_shard_lease(struct wfo_engine *e);

/* The store's secret server key (store_ops.server_key), for keying
 * what the API hands out (list cursors). */
void engine_server_key(struct wfo_engine *e, unsigned char out[32]);

/* The store's back end ("sqlite"), for the server's log. */
const char *engine_store_name(struct wfo_engine *e);

/* Removes every version of workflow name of namespace ns (SPEC 4):
 * WFO_ECONFLICT while one of its executions runs or is paused,
 * WFO_ENOTFOUND when there is none. Ended executions stay readable. */
int engine_delete_workflow(struct wfo_engine *e, const char *ns, const char *name,
                           struct wfo_error *err);

/* Operator commands on one execution (SPEC 4). OP_DELETE removes an
 * execution that ended, with its steps, history, timers and tasks
 * (WFO_ECONFLICT while it runs or is paused). */
enum engine_op { OP_CANCEL, OP_TERMINATE, OP_PAUSE, OP_RESUME, OP_RETRY, OP_DELETE };
int engine_op(struct wfo_engine *e, const char *id, enum engine_op op, const char *reason,
              int compensate, struct wfo_error *err);
/* engine_op with OP_RETRY's `from` (SPEC 2.4: the step to resume from). */
int engine_op_from(struct wfo_engine *e, const char *id, enum engine_op op, const char *reason,
                   int compensate, const char *from, struct wfo_error *err);

/* --- the worker protocol (SPEC 3, 4) -----------------------------------
 *
 * Task steps of queues without an in-process handler wait in the engine's
 * ready queues for workers. A task id names one attempt of one step
 * ("EXECID.TOKEN"); a lease names one delivery of it. Delivery is at least
 * once: an expired lease makes the task ready again (or fails the attempt
 * with HeartbeatTimeout when the step has a heartbeat_timeout). A
 * completion, failure or heartbeat whose lease is not the current one gets
 * WFO_ECONFLICT and changes nothing; an unknown task WFO_ENOTFOUND. */

/* Takes up to max ready tasks of the given queues (namespace ns), leasing
 * each to worker; waits up to wait_ms for one when none is ready (less when
 * one became ready on another node: seen, as taskq_poll's, may be NULL).
 * *tasks gets a JSON array of {task_id, lease, queue, execution_id, step,
 * attempt, input, idempotency_key, deadline} (new ref). */
int engine_task_poll(struct wfo_engine *e, const char *ns, const char *const *queues, int n_queues,
                     const char *worker, int max, int64_t wait_ms, long long *seen, json_t **tasks,
                     struct wfo_error *err);
/* Gives polled tasks back (their poller went away): ready again at once,
 * first in their queues. */
void engine_task_unpoll(struct wfo_engine *e, json_t *tasks);
/* output is borrowed. */
int engine_task_complete(struct wfo_engine *e, const char *ns, const char *task_id,
                         const char *lease, json_t *output, struct wfo_error *err);
/* Several completions and failures at once, from one worker's batch: they
 * commit in one round. Each gets its own rc (0 or the code of the calls
 * above) and err; the call fails only when the engine cannot take any. */
struct engine_task_result {
    const char *task_id, *lease;
    int ok;         /* 1: complete with output; 0: fail with error */
    json_t *output; /* borrowed */
    json_t *error;  /* borrowed: {type, message, details} */
    int retryable;
    int rc;             /* out */
    char workflow[160]; /* out: its execution's workflow, when the engine took it */
    struct wfo_error err;
};
int engine_task_finish(struct wfo_engine *e, const char *ns, struct engine_task_result *t, int n,
                       struct wfo_error *err);
/* engine_task_finish in two halves, as engine_start_post/_end: the post
 * checks every result against its lease and queues those that pass; done
 * is called once, from the engine's thread, when all of them are answered
 * (never when none was queued: then *out is NULL and the call returns 0,
 * or the error of an engine that takes nothing). The end fills each t[i]'s
 * rc and err and frees *out; t must be the same array both times. */
struct engine_finish_later;
int engine_task_finish_post(struct wfo_engine *e, const char *ns, struct engine_task_result *t,
                            int n, void (*done)(void *ud), void *ud,
                            struct engine_finish_later **out, struct wfo_error *err);
void engine_task_finish_end(struct engine_finish_later *l, struct engine_task_result *t, int n);
/* error ({type, message, details}) is borrowed. */
int engine_task_fail(struct wfo_engine *e, const char *ns, const char *task_id, const char *lease,
                     json_t *error, int retryable, struct wfo_error *err);
/* Extends the lease; *cancel_requested is 1 when the attempt was cancelled
 * (timed out, execution cancelled) and the worker should stop. */
int engine_task_heartbeat(struct wfo_engine *e, const char *ns, const char *task_id,
                          const char *lease, int *cancel_requested, struct wfo_error *err);

/* Namespaced versions of the public calls, for the API. */
struct engine_start_req {
    const char *ns, *workflow;
    int version;    /* 0: the latest */
    json_t *input;  /* borrowed; NULL: {} */
    const char *id; /* NULL or "": a new id (UUIDv7) */
    int fresh_id;   /* id was made by wfo_id_new() just now: no execution has it */
    int want_doc;   /* fill doc */
    /* out */
    int created;  /* 0: the execution existed (same workflow and input) */
    char *id_out; /* the execution's id (caller frees) */
    json_t *doc;  /* when want_doc and created: the document as committed */
};
int engine_start(struct wfo_engine *e, struct engine_start_req *q, struct wfo_error *err);
/* engine_start in two halves, for a caller that does not wait in a
 * thread (api/http.c's pool mode): engine_start_post checks q and queues
 * the start (q's fields are copied); done(ud) is then called once, from
 * the engine's thread, when the start is answered: it must not block, nor
 * call into the engine. engine_start_end then fills q's out fields (from
 * any thread) and frees *out; with done NULL it waits for the answer.
 * When engine_start_post fails, *out is NULL and done is never called. */
struct engine_later;
int engine_start_post(struct wfo_engine *e, struct engine_start_req *q, void (*done)(void *ud),
                      void *ud, struct engine_later **out, struct wfo_error *err);
int engine_start_end(struct engine_later *l, struct engine_start_req *q, struct wfo_error *err);
int engine_put_workflow(struct wfo_engine *e, const char *ns, json_t *doc, int *created,
                        json_t **out, json_t **problems, struct wfo_error *err);

/* Events and signals (SPEC 2.5, core/events.c). An event to publish: id
 * NULL makes a new UUIDv7; time 0 is when it is stored; data borrowed. */
struct engine_event {
    const char *id, *type, *key, *source;
    json_t *data;
    /* NULL or an object: a CloudEvents body's other attributes, kept as
     * given and added to the record (api/events.c says which) */
    json_t *attrs;
    int64_t time;
};
/* Stores ev in namespace ns (*created 0: an event of that id existed, whose
 * record is returned) and wakes the waits it meets. *record: {id, type,
 * key, source, data, time} and ev's attrs (new ref). Borrows ev's fields. */
int engine_event_post(struct wfo_engine *e, const char *ns, const struct engine_event *ev,
                      int *created, json_t **record, struct wfo_error *err);
/* Queues signal `name` (data borrowed, may be NULL) for execution exec_id:
 * WFO_ENOTFOUND, or WFO_ESTATE when it has ended. *record: {id, type,
 * data, time} (new ref). */
int engine_signal(struct wfo_engine *e, const char *ns, const char *exec_id, const char *name,
                  json_t *data, json_t **record, struct wfo_error *err);

/* The outbox (SPEC 2.5 "Outbound", core/events.c O1-O3), read by the
 * event stream. A row: seq is its commit order, event the event's JSON
 * text (borrowed for the callback). */
struct engine_outbox_row {
    int64_t seq;
    const char *id, *type, *key, *exec_id, *event;
};
typedef int (*engine_outbox_cb)(void *ud, const struct engine_outbox_row *r);
/* The rows of ns after seq `after`, oldest first, at most limit. */
int engine_outbox_read(struct wfo_engine *e, const char *ns, int64_t after, int limit,
                       engine_outbox_cb cb, void *ud, struct wfo_error *err);
/* The seq of event id's row in ns (WFO_ENOTFOUND); id NULL: the last seq. */
int engine_outbox_seq(struct wfo_engine *e, const char *ns, const char *id, int64_t *seq,
                      struct wfo_error *err);
/* The commit counter of the outbox now; with gen >= 0, first waits up to
 * timeout_ms for it to differ from gen. */
int64_t engine_outbox_wait(struct wfo_engine *e, int64_t gen, int64_t timeout_ms);

/* Webhook subscriptions (SPEC 2.5 "Webhooks", core/webhooks.c,
 * docs/implementation/event_processing.md "Webhooks"). The API checks the
 * fields; these store and read them. A subscription's JSON is {id, url,
 * types, workflow, status, failures, last_error,
 * next_attempt_at, last_delivery_at, delivered, cursor, created_at}: never
 * its secret. */
struct engine_subscription {
    const char *url;
    json_t *types;        /* borrowed: a non-empty array of strings */
    const char *workflow; /* NULL: any */
    const char *secret;
};
/* Stores a new subscription of ns (its id a new UUIDv7); it delivers the
 * outbox rows that commit after it. *out: its JSON (new ref). */
int engine_subscription_add(struct wfo_engine *e, const char *ns,
                            const struct engine_subscription *sub, json_t **out,
                            struct wfo_error *err);
/* {subscriptions: [...]} of ns, oldest first (new ref). */
int engine_subscription_list(struct wfo_engine *e, const char *ns, json_t **out,
                             struct wfo_error *err);
/* One subscription of ns: WFO_ENOTFOUND when none (or another namespace's). */
int engine_subscription_get(struct wfo_engine *e, const char *ns, const char *id, json_t **out,
                            struct wfo_error *err);
/* Deletes one subscription of ns (WFO_ENOTFOUND); its deliveries stop. */
int engine_subscription_delete(struct wfo_engine *e, const char *ns, const char *id,
                               struct wfo_error *err);

/* Delivery settings (SPEC 6 `webhooks:`, `http.deny_private`). */
struct engine_webhook_options {
    int failing_after;  /* consecutive failures that make status failing: 5 */
    int64_t timeout_ms; /* one delivery's whole request (connect included): 10 s */
    int deny_private;   /* refuse private and loopback addresses */
};
/* Starts the deliverer's threads (once, after wfo_engine_launch); they
 * stop with wfo_engine_free. Without it subscriptions are kept but not
 * delivered (wfo run, embedders). */
int engine_webhooks_start(struct wfo_engine *e, const struct engine_webhook_options *opt,
                          struct wfo_error *err);

/* A wait for execution id's end (query.c Q2), known to the engine while
 * it waits: the commit that ends the execution hands it the document
 * (round.c E10), so the waiter need not read it back from the store. */
struct engine_end_wait {
    const char *id;
    const char *ns;               /* its namespace; NULL: any */
    json_t *doc;                  /* NULL until handed; then the waiter's */
    struct engine_end_wait *next; /* the other waits for the same id */
};
/* Makes w known (its doc NULL) / forgets it; any thread. After the del,
 * w->doc is the caller's to use and free. */
void engine_end_wait_add(struct wfo_engine *e, struct engine_end_wait *w);
void engine_end_wait_del(struct wfo_engine *e, struct engine_end_wait *w);

/* For query.c's waits: sleeps until an execution ends, 200 ms pass or the
 * time until (wfo_now_ms) comes, whichever is first. ENGINE_AWAIT_AGAIN:
 * look at the execution again; ENGINE_AWAIT_OVER: until has come or the
 * engine is stopping; ENGINE_AWAIT_DOC: w (NULL: none) was handed its
 * document; negative: the engine failed (E2), its error. */
enum engine_await { ENGINE_AWAIT_AGAIN, ENGINE_AWAIT_OVER, ENGINE_AWAIT_DOC };
int engine_await_end(struct wfo_engine *e, int64_t until, const struct engine_end_wait *w,
                     struct wfo_error *err);

/* Upper bounds (seconds) of the step duration histogram's buckets; the
 * last bucket (+Inf) is implied. */
#define ENGINE_STEP_BUCKETS 12
extern const double engine_step_buckets[ENGINE_STEP_BUCKETS];

/* Counters for /metrics. */
struct engine_stats {
    long long started, completed, failed, cancelled; /* executions */
    long long commits, transitions;
    double commit_ms_sum;
    long long tasks_ready, tasks_leased, lease_expiries, timers;
    long long timers_fired;      /* durable timers that came due and fired */
    long long retention_deleted; /* executions retention deleted */
    long long outbox_deleted;    /* outbox rows events.retention deleted */
    long long read_retries;      /* engine-thread reads that failed and were retried (E5) */
    long long restarts;          /* recoveries in place after a failed commit (E2) */
    int shards_held;             /* of STORE_SHARDS (E7, E8) */
    /* webhook deliveries (webhooks.c): answered 2xx, answered another
     * status, not answered (connection, timeout, refused address); and
     * the subscriptions delivered now, by status */
    long long webhook_ok, webhook_http_error, webhook_error;
    long long webhooks_active, webhooks_failing;
    /* steps that ended (completed, failed, caught), by step type: how long
     * from their first attempt's start to their end, retries included;
     * bucket[i] counts those of at most engine_step_buckets[i] seconds
     * (not cumulative), bucket[ENGINE_STEP_BUCKETS] the rest */
    struct {
        long long bucket[ENGINE_STEP_BUCKETS + 1];
        long long count;
        double sum_s;
    } steps[STEP__COUNT];
};
void engine_stats(struct wfo_engine *e, struct engine_stats *out);
/* 0 while the engine works; the error that stopped it (a failed commit, E2;
 * shards taken over by another engine, E7) otherwise. */
int engine_failed(struct wfo_engine *e, struct wfo_error *err);

/* The task queues (taskq_queues in taskq.h): ns NULL for every namespace;
 * known_only leaves out queues only workers named. New ref. */
json_t *engine_queues(struct wfo_engine *e, const char *ns, int known_only);

/* Engine settings the server's configuration sets (SPEC 6). */
struct engine_tuning {
    int64_t lease_ms;     /* default worker lease: 30 s */
    int64_t retention_ms; /* retention.finished: ended executions older are deleted; 0: kept */
    int64_t outbox_retention_ms; /* events.retention: outbox rows older are deleted; 0: kept */
    /* cluster.enabled: several nodes share the store's shards (E8) */
    int cluster;
    const char *node_url;   /* cluster.advertise: where the others reach this node */
    int64_t shard_lease_ms; /* cluster.lease: how long a node holds shards unrenewed */
};
void engine_tune(struct wfo_engine *e, const struct engine_tuning *t);

/* 0 when db_url names a store back end, else WFO_EINVAL with the message
 * wfo_engine_new would give; opens nothing. */
int engine_db_url_check(const char *db_url, struct wfo_error *err);

#endif
