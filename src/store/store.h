/*
 * store.h - the one interface to durable state (STYLE "store/"), with a
 * back end per URL scheme: store/sqlite/ and store/postgres/.
 * docs/implementation/database_optimization.md explains the schema.
 *
 * The engine writes only through store_apply(): one batch of row changes,
 * from the transitions of many executions, in one transaction (group
 * commit). Everything else reads. Rows carry JSON as text: the engine
 * serializes once, every back end stores it as it is.
 *
 * Threads: a struct store may be used from several threads at once; the
 * back end serializes what it must (SQLite: one writer connection for
 * apply and the workflow registry, a pool of reader connections so reads
 * never wait for a commit).
 *
 * Strings in rows passed to callbacks are borrowed for the callback's
 * duration. Times are milliseconds since the epoch; 0 means null.
 */
#ifndef WFO_STORE_STORE_H
#define WFO_STORE_STORE_H

#include <stdint.h>

#include "../common/error.h"

struct store;

/*
 * Ownership (docs/interfaces/internal.md "Ownership and fencing").
 * Executions are partitioned into STORE_SHARDS shards by id
 * (store_shard_of). An engine owns shards through the `shards` rows: owner,
 * epoch, lease_until. The epoch grows by one at every change of owner (a
 * takeover), never at a renewal. Every apply names the owner and the epoch
 * it holds for each shard; the back end checks, in the same transaction,
 * the epoch of every shard the batch writes and refuses the whole batch
 * with WFO_EFENCED when one differs: a stale owner never commits.
 * STORE_SHARDS is part of the stored format: it never changes.
 */
#define STORE_SHARDS 16
typedef uint32_t store_shardset; /* bit k: shard k */
#define STORE_ALL_SHARDS ((store_shardset)((1ULL << STORE_SHARDS) - 1))
int store_shard_of(const char *exec_id);

struct store_shard {
    int shard;
    const char *owner; /* NULL: never owned */
    int64_t epoch;
    int64_t lease_until;
};

/* One execution: the columns its list and filters need, the document's
 * JSON parts, and the engine's own state (opaque JSON text). */
struct store_exec {
    const char *id;
    const char *namespace;
    const char *workflow;
    int version;
    const char *status;       /* running | paused | completed | failed | cancelled | terminated */
    const char *input;        /* JSON text; never NULL */
    const char *output;       /* JSON text or NULL */
    const char *error;        /* JSON text or NULL */
    const char *compensation; /* JSON text or NULL */
    const char *parent;       /* execution id or NULL */
    const char *state;        /* engine-private JSON text; NULL keeps the last one written */
    int64_t created_at, updated_at, finished_at;
    int64_t seq; /* commit order: assigned by the store on insert, read back on load */
    /* A restart must load this execution to start again what it had in
     * flight (an attempt run in-process: exec, http, a handled task).
     * Executions without it wait for a timer, a task or a command, which
     * load them when they come (recovery reads only these). */
    int resume;
    /* The number of this commit's chunk of the execution (its steps and
     * history changed in this batch, with state): 1 + the last one, which
     * the engine counts in the execution's durable state so that a doubled
     * transition collides with the chunk already written. 0: the back end
     * takes the next one. */
    int64_t chunk;
    /* A hint: the row exists and only state and updated_at changed since it
     * was last written, so a back end may write just those. */
    int only_state;
    /* A hint: the row exists (this writer wrote it before), so a back end
     * may update the columns that change (status, output, error,
     * compensation, state, updated_at, finished_at) in place. */
    int existing;
};

/* One step that was reached, by path. */
struct store_step {
    const char *exec_id;
    const char *path;
    int ord; /* the order in which steps were first reached, from 0 */
    const char *status;
    int attempts;
    const char *output; /* JSON text or NULL */
    const char *error;  /* JSON text or NULL */
    const char *state;  /* engine-private JSON text or NULL */
    int64_t started_at, finished_at;
    const char *input; /* JSON text: what its last attempt was given, or NULL */
};

struct store_history {
    const char *exec_id;
    int64_t seq; /* from 1, without gaps, per execution */
    int64_t time;
    const char *type;
    const char *step; /* NULL when not about a step */
    const char *data; /* JSON text or NULL */
};

/* A durable timer. id is unique; putting an id again replaces it. */
struct store_timer {
    const char *id;
    const char *exec_id;
    int64_t due_at;
    const char *kind;
    const char *step; /* NULL when not about a step */
    int64_t token;    /* the attempt's token (fsm.c I1) for a step's timer, else 0 */
    const char *data; /* JSON text or NULL */
};

/* A task for workers (SPEC 3, 4): one per attempt of a `task` step. */
struct store_task {
    const char *id;
    const char *exec_id;
    const char *namespace;
    const char *queue;
    const char *step;
    int attempt;
    const char *status; /* ready | leased | done */
    const char *lease;  /* NULL until leased */
    const char *input;  /* JSON text */
    int64_t ready_at, leased_until, created_at;
    /* A hint: only status (leased), lease and leased_until are written, to
     * the row of id if it still exists (a worker took the task). */
    int lease_only;
};

#define STORE_HAS_EVENTS 1 /* put_event, find_events, put_signal, find_signals */

/* An event (SPEC 2.5, docs/implementation/event_processing.md): unique per
 * (namespace, id), id being the producer's deduplication key. seq is the
 * commit order the store gives it; published_at is when the store took it
 * (the server's clock), which await_event compares with an execution's
 * start. time is the event's own time (CloudEvents `time`, else
 * published_at). */
struct store_event {
    int64_t seq;
    const char *namespace;
    const char *id;
    const char *type;
    const char *key;    /* NULL: none */
    const char *source; /* NULL: none */
    const char *data;   /* JSON text or NULL */
    /* JSON object text or NULL: a CloudEvents body's attributes that have
     * no column of their own, kept as given (api/events.c) */
    const char *attrs;
    int64_t time, published_at;
    /* put_event only: the event's JSON for its outbox row, written in the
     * same transaction when the event is created; NULL: no outbox row */
    const char *outbox;
};

#define STORE_HAS_OUTBOX 1 /* list_outbox, outbox_seq, delete_outbox */

/* An outbound event (SPEC 2.5 "Outbound"): a row of the outbox, written in
 * the batch (or put_event's transaction) of the change that caused it.
 * seq is the commit order the store gives it: a reader that saw seq n has
 * seen every row of a smaller seq (rows commit in seq order). */
struct store_outbox {
    int64_t seq;
    const char *event_id; /* the event's id: unique per namespace */
    const char *namespace;
    const char *type;
    const char *key;     /* NULL: none */
    const char *exec_id; /* NULL: not about an execution (a posted event) */
    const char *event;   /* the event's JSON text, as delivered */
    int64_t time;        /* when it was written */
};

#define STORE_HAS_SUBSCRIPTIONS 1 /* schema 7: the subscription ops below */

/* A webhook subscription (SPEC 2.5 "Webhooks",
 * docs/implementation/event_processing.md "Webhooks"): the outbox rows of
 * its namespace whose type matches one of `types` (and, with `workflow`,
 * that are about an execution of that workflow) are POSTed to url, one at
 * a time, in seq order.
 *
 *   C1. cursor is the seq of the last outbox row of the namespace that the
 *       subscription is done with (delivered with a 2xx, or filtered out).
 *       It only grows (subscription_delivered refuses to move it back), so
 *       a row at or below it is never delivered again.
 *   C2. While a subscription exists, delete_outbox keeps every row of its
 *       namespace above its cursor, however old: retention deletes only
 *       delivered rows. Deleting the subscription lets them go.
 *
 * The secret is kept as given (the HMAC needs it); the API never returns
 * it. The delivery state (status .. last_delivery_at) is written by the
 * deliverer only (subscription_delivered, subscription_failed). */
struct store_subscription {
    const char *id;
    const char *namespace;
    const char *url;
    const char *types;    /* JSON text: a non-empty array of strings ("a.b" or "a.*") */
    const char *workflow; /* NULL: any */
    const char *secret;
    int64_t created_at;
    int64_t cursor;          /* C1; put_subscription sets it (store.h below) */
    const char *status;      /* active | failing */
    int failures;            /* consecutive failed attempts of the row in line */
    int64_t next_attempt_at; /* 0: at once */
    const char *last_error;  /* NULL: none since the last success */
    int64_t last_delivery_at;
    int64_t delivered; /* rows delivered with a 2xx, ever */
};

/* A signal sent to one execution: kept, in seq order, until a wait of that
 * execution consumes it (a batch's signal_dels). */
struct store_signal {
    int64_t seq;
    const char *id;
    const char *exec_id;
    const char *name;
    const char *data; /* JSON text or NULL */
    int64_t time;
    /* put_signal: when not NULL, the signal is written only while the
     * execution's shard is owned by owner at epoch, checked in the same
     * transaction as a batch's shards are (else WFO_EFENCED): a node that
     * was stopped while another took the execution over cannot queue a
     * signal its client was already told failed. */
    const char *owner;
    int64_t epoch;
};

#define STORE_HAS_NODES 1 /* beat_node, list_nodes */

/* A server sharing the store with others (a cluster: docs/operations/
 * scaling.md). Each beats every few seconds; the live ones share the
 * shards between them. */
struct store_node {
    const char *id;  /* the engine's owner id */
    const char *url; /* where the others reach its API; NULL: unknown */
    int64_t started_at;
    int64_t seen_at; /* its last beat; 0: it left */
};

/* A row deleted by id, with its execution (which names its shard). */
struct store_del {
    const char *id;
    const char *exec_id;
};

/* One batch: the row changes of many transitions, applied atomically, or
 * refused whole with WFO_EFENCED when owner does not hold, at epochs[k],
 * every shard k that one of its rows belongs to. */
struct store_batch {
    /* the writing engine's owner id; NULL: a tool that has the store to
     * itself (tests, the benchmark's builder), not fenced */
    const char *owner;
    int64_t epochs[STORE_SHARDS];
    struct store_exec *execs;
    int n_execs, alloc_execs;
    struct store_step *steps;
    int n_steps, alloc_steps;
    struct store_history *history;
    int n_history, alloc_history;
    struct store_timer *timers; /* put */
    int n_timers, alloc_timers;
    struct store_del *timer_dels;
    int n_timer_dels, alloc_timer_dels;
    struct store_task *tasks; /* put (insert or replace) */
    int n_tasks, alloc_tasks;
    struct store_del *task_dels;
    int n_task_dels, alloc_task_dels;
    struct store_event *events; /* inserted (emit steps): ids are new */
    int n_events, alloc_events;
    /* (exec_id, event id): the execution consumed the event; a second
     * consumption of one event by one execution fails the batch */
    struct store_del *consumes;
    int n_consumes, alloc_consumes;
    struct store_del *signal_dels; /* signals consumed, by id */
    int n_signal_dels, alloc_signal_dels;
    struct store_outbox *outbox; /* outbound events (seq assigned by the store) */
    int n_outbox, alloc_outbox;
    const char **exec_dels; /* ended executions to delete with all their rows, last */
    int n_exec_dels, alloc_exec_dels;
};

struct store_workflow {
    const char *namespace;
    const char *name;
    int version;
    const char *hash;
    const char *definition; /* JSON text */
    int64_t created_at;
};

struct store_exec_filter {
    const char *namespace;  /* required */
    const char *workflow;   /* NULL: any */
    const char *status;     /* NULL: any */
    int64_t created_after;  /* 0: none */
    int64_t created_before; /* 0: none */
    int64_t before_seq;     /* keyset cursor: only seq < before_seq; 0: none */
    int limit;
};

typedef int (*store_exec_cb)(void *ud, const struct store_exec *row);
typedef int (*store_step_cb)(void *ud, const struct store_step *row);
typedef int (*store_history_cb)(void *ud, const struct store_history *row);
typedef int (*store_timer_cb)(void *ud, const struct store_timer *row);
typedef int (*store_task_cb)(void *ud, const struct store_task *row);
typedef int (*store_workflow_cb)(void *ud, const struct store_workflow *row);
typedef int (*store_shard_cb)(void *ud, const struct store_shard *row);
typedef int (*store_event_cb)(void *ud, const struct store_event *row);
typedef int (*store_signal_cb)(void *ud, const struct store_signal *row);
typedef int (*store_outbox_cb)(void *ud, const struct store_outbox *row);
typedef int (*store_node_cb)(void *ud, const struct store_node *row);
/* A task became ready on another node: (its owner id, namespace, queue). */
typedef void (*store_ready_cb)(void *ud, const char *owner, const char *ns, const char *queue);
typedef int (*store_subscription_cb)(void *ud, const struct store_subscription *row);

/* A callback that returns non-zero stops the iteration; the read then
 * returns that value. */
struct store_ops {
    const char *name; /* "sqlite" */
    int version;      /* 1 */
    /* Is this URL ours? */
    int (*accepts)(const char *url);
    int (*open)(const char *url, struct store **out, struct wfo_error *err);
    void (*close)(struct store *s);
    /* Cheap liveness check for /readyz. */
    int (*ping)(struct store *s, struct wfo_error *err);

    /* Atomic; WFO_EFENCED (nothing written) when the batch's owner no
     * longer holds one of the shards it writes at the epoch it names. */
    int (*apply)(struct store *s, const struct store_batch *b, struct wfo_error *err);

    /* Claims shards for owner, in one transaction, and leases them until
     * lease_until: every shard of `want` that is unowned, whose lease ended
     * before now, or that owner holds already (a renewal: the epoch stays);
     * with force, every shard of want whoever holds it (a takeover without
     * waiting: the SQLite server, the only process on its file). A shard
     * that changes owner gets epoch + 1. cb gets each shard of want after
     * the claim (owned by owner or not). */
    int (*claim_shards)(struct store *s, const char *owner, store_shardset want, int64_t now,
                        int64_t lease_until, int force, store_shard_cb cb, void *ud,
                        struct wfo_error *err);
    /* Gives up owner's shards of `which` (lease_until = 0; epochs stay). */
    int (*release_shards)(struct store *s, const char *owner, store_shardset which,
                          struct wfo_error *err);
    /* Every shard row, by shard. */
    int (*list_shards)(struct store *s, store_shard_cb cb, void *ud, struct wfo_error *err);

    /* Registers a definition: when the latest version of (namespace, name)
     * has the same hash it is returned (*created = 0), else a new version
     * (latest + 1) is inserted (*created = 1). cb gets the resulting row. */
    int (*put_workflow)(struct store *s, const struct store_workflow *w, int *created,
                        store_workflow_cb cb, void *ud, struct wfo_error *err);
    /* version 0: the latest. WFO_ENOTFOUND when absent. */
    int (*get_workflow)(struct store *s, const char *ns, const char *name, int version,
                        store_workflow_cb cb, void *ud, struct wfo_error *err);
    /* The latest version of each workflow of ns, by name; ns NULL: of
     * every namespace, by namespace and name (cron triggers). */
    int (*list_workflows)(struct store *s, const char *ns, store_workflow_cb cb, void *ud,
                          struct wfo_error *err);

    /* WFO_ENOTFOUND when absent. */
    int (*get_exec)(struct store *s, const char *id, store_exec_cb cb, void *ud,
                    struct wfo_error *err);
    /* Newest first (seq descending). */
    int (*list_execs)(struct store *s, const struct store_exec_filter *f, store_exec_cb cb,
                      void *ud, struct wfo_error *err);
    /* Every execution of shards whose status is running or paused and
     * that has `resume` set (recovery). */
    int (*list_active_execs)(struct store *s, store_shardset shards, store_exec_cb cb, void *ud,
                             struct wfo_error *err);
    /* In ord order. */
    int (*list_steps)(struct store *s, const char *exec_id, store_step_cb cb, void *ud,
                      struct wfo_error *err);
    /* seq > after_seq, ascending, at most limit (0: all). */
    int (*list_history)(struct store *s, const char *exec_id, int64_t after_seq, int limit,
                        store_history_cb cb, void *ud, struct wfo_error *err);
    /* The timers of shards with from <= due_at < before, by due_at: the
     * engine arms a moving window of them, not all. */
    int (*list_timers)(struct store *s, store_shardset shards, int64_t from, int64_t before,
                       store_timer_cb cb, void *ud, struct wfo_error *err);
    /* Every task of shards not done (recovery and takeover). */
    int (*list_tasks)(struct store *s, store_shardset shards, store_task_cb cb, void *ud,
                      struct wfo_error *err);
    /* Removes every version of (ns, name), in one transaction:
     * WFO_ECONFLICT while an execution of it is running or paused in the
     * store, WFO_ENOTFOUND when there is no such workflow. Executions that
     * ended keep their rows. */
    int (*delete_workflow)(struct store *s, const char *ns, const char *name,
                           struct wfo_error *err);
    /* Up to limit executions that ended before `before` (ms), oldest first:
     * what retention deletes. */
    int (*list_expired)(struct store *s, int64_t before, int limit, store_exec_cb cb, void *ud,
                        struct wfo_error *err);
    /* At most n reader connections (1 to STORE_POOL_MAX); before the first
     * read. */
    void (*set_pool_size)(struct store *s, int n);
    /* The server's secret key (size bytes, at most 64): drawn from the
     * CSPRNG the first time any process asks, kept in the store, the same
     * for every node of it. It keys leases and cursors; it is never
     * derived from the URL or anything else a client could know. */
    int (*server_key)(struct store *s, unsigned char *out, size_t size, struct wfo_error *err);

    /* Events and signals (SPEC 2.5). put_event stores ev unless an event
     * of (ev->namespace, ev->id) exists (*created = 0); cb gets the stored
     * row either way (seq and published_at filled). One transaction. */
    int (*put_event)(struct store *s, const struct store_event *ev, int *created, store_event_cb cb,
                     void *ud, struct wfo_error *err);
    /* The events of (ns, type, key) (key NULL matches a NULL key) published
     * at or after `after` that exec_id has not consumed, oldest (seq) first,
     * at most limit. type NULL: every event of every namespace published at
     * or after `after`, newest first, at most limit (ns, key and exec_id
     * unused: the event triggers' scan at recovery). */
    int (*find_events)(struct store *s, const char *ns, const char *type, const char *key,
                       int64_t after, const char *exec_id, int limit, store_event_cb cb, void *ud,
                       struct wfo_error *err);
    /* Queues a signal for sg->exec_id, in one transaction with the check
     * that the execution exists (WFO_ENOTFOUND) and has not ended
     * (WFO_ESTATE). */
    int (*put_signal)(struct store *s, const struct store_signal *sg, struct wfo_error *err);
    /* The signals of (exec_id, name) not consumed yet, oldest first, at
     * most limit. */
    int (*find_signals)(struct store *s, const char *exec_id, const char *name, int limit,
                        store_signal_cb cb, void *ud, struct wfo_error *err);

    /* The outbox (SPEC 2.5 "Outbound"). The rows of ns with seq > after_seq,
     * ascending, at most limit (0: all). */
    int (*list_outbox)(struct store *s, const char *ns, int64_t after_seq, int limit,
                       store_outbox_cb cb, void *ud, struct wfo_error *err);
    /* The seq of event_id's row in ns (WFO_ENOTFOUND when there is none);
     * event_id NULL: the last seq of ns, 0 when it has none. */
    int (*outbox_seq)(struct store *s, const char *ns, const char *event_id, int64_t *seq,
                      struct wfo_error *err);
    /* Deletes up to limit rows written before `before` (ms), oldest first,
     * keeping those a subscription of their namespace has not delivered
     * yet (store_subscription C2); *n gets how many (retention). */
    int (*delete_outbox)(struct store *s, int64_t before, int limit, int *n, struct wfo_error *err);

    /* Nodes (a cluster). beat_node records n (insert, or update of url
     * and seen_at) and forgets nodes not seen for an hour; list_nodes
     * gives those seen at or after `since`, by id. cb must not call the
     * store. */
    int (*beat_node)(struct store *s, const struct store_node *n, struct wfo_error *err);
    int (*list_nodes)(struct store *s, int64_t since, store_node_cb cb, void *ud,
                      struct wfo_error *err);
    /* Optional (NULL: the back end cannot; nodes then find out by polling):
     * from now until the store is closed, cb is called from a thread of
     * the back end's for every batch another store of the same database
     * commits that puts a ready task (one call per namespace and queue,
     * with the batch's owner). At most once per store. "From now": a batch
     * committed after it returns is heard, unless the database could not
     * be reached then (what commits until it is, is not). */
    int (*listen_ready)(struct store *s, store_ready_cb cb, void *ud, struct wfo_error *err);
    /* Webhook subscriptions (schema 7; struct store_subscription).
     * put_subscription inserts sub (id new: a clash is WFO_ECONFLICT) with
     * status active, no failures, and its cursor at the last outbox seq of
     * its namespace, read in the same transaction: it delivers what
     * commits after it (sub->cursor and the delivery fields are ignored).
     * cb gets the stored row. */
    int (*put_subscription)(struct store *s, const struct store_subscription *sub,
                            store_subscription_cb cb, void *ud, struct wfo_error *err);
    /* The subscription id of namespace ns; WFO_ENOTFOUND when there is none
     * (or it is another namespace's). ns NULL: of any namespace. cb may be
     * NULL (put_subscription's too). */
    int (*get_subscription)(struct store *s, const char *ns, const char *id,
                            store_subscription_cb cb, void *ud, struct wfo_error *err);
    /* The subscriptions of ns by created_at then id; ns NULL: of every
     * namespace (the deliverer). */
    int (*list_subscriptions)(struct store *s, const char *ns, store_subscription_cb cb, void *ud,
                              struct wfo_error *err);
    /* Deletes subscription id of ns (WFO_ENOTFOUND when none); its
     * undelivered rows are then left to retention (C2). */
    int (*delete_subscription)(struct store *s, const char *ns, const char *id,
                               struct wfo_error *err);
    /* The rows up to seq are done (C1): cursor = seq; when delivered (a
     * 2xx, not rows filtered out) also delivered + 1, last_delivery_at =
     * at, status active, failures 0, no next attempt, no last error (the
     * other columns stay as they are when !delivered). Only when
     * cursor < seq: WFO_ECONFLICT (nothing written) when the cursor is at
     * or past seq already; WFO_ENOTFOUND when the subscription is gone.
     * One statement: durable when it returns. */
    int (*subscription_delivered)(struct store *s, const char *id, int64_t seq, int delivered,
                                  int64_t at, struct wfo_error *err);
    /* A failed attempt at row seq: failures, status, next_attempt_at and
     * last_error are set as given, only while cursor < seq (the row is still
     * in line; else WFO_ECONFLICT); WFO_ENOTFOUND when the subscription
     * is gone. */
    int (*subscription_failed)(struct store *s, const char *id, int64_t seq, int failures,
                               const char *status, int64_t next_attempt_at, const char *error,
                               struct wfo_error *err);
};

#define STORE_POOL_MAX 64

/* The back ends, and the one that accepts url (NULL when none). */
extern const struct store_ops store_sqlite_ops;
/* postgres:// and postgresql:// URLs (store/postgres/postgres.c). */
extern const struct store_ops store_postgres_ops;
/* For tests: wraps another back end and fails chosen calls (fault/fault.c). */
extern const struct store_ops store_fault_ops;
const struct store_ops *store_find(const char *url);
/* 0 when url names a back end, else WFO_EINVAL with store_open's message
 * (what --print-config checks without opening anything). */
int store_url_check(const char *url, struct wfo_error *err);

/* Opens the store named by url with its back end. A store remembers its ops:
 * every store struct starts with a pointer to them. */
struct store {
    const struct store_ops *ops;
};
int store_open(const char *url, struct store **out, struct wfo_error *err);
void store_close(struct store *s);

/* Batch building: the strings are borrowed until the batch is applied and
 * reset (the engine keeps them alive). */
void store_batch_init(struct store_batch *b);
void store_batch_reset(struct store_batch *b);
void store_batch_release(struct store_batch *b);
int store_batch_empty(const struct store_batch *b);
struct store_exec *store_batch_exec(struct store_batch *b);
struct store_step *store_batch_step(struct store_batch *b);
struct store_history *store_batch_history(struct store_batch *b);
struct store_timer *store_batch_timer(struct store_batch *b);
void store_batch_timer_del(struct store_batch *b, const char *exec_id, const char *id);
struct store_task *store_batch_task(struct store_batch *b);
void store_batch_task_del(struct store_batch *b, const char *exec_id, const char *id);
/* Drops the lease writes (lease_only) of rows the batch also deletes: they
 * would be written and deleted in one commit. The other puts keep their
 * order. */
void store_batch_drop_leases(struct store_batch *b);
/* The shards a batch writes (store_shard_of each row's execution). */
store_shardset store_batch_shards(const struct store_batch *b);
void store_batch_exec_del(struct store_batch *b, const char *id);
struct store_event *store_batch_event(struct store_batch *b);
void store_batch_consume(struct store_batch *b, const char *exec_id, const char *event_id);
void store_batch_signal_del(struct store_batch *b, const char *exec_id, const char *id);
struct store_outbox *store_batch_outbox(struct store_batch *b);

#endif
