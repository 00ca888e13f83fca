/*
 * store.h - the one interface to durable state (STYLE "store/"), with a
 * back end per URL scheme: store/sqlite/ now, store/postgres/ later.
 * docs/implementation/database_optimization.md explains the schema.
 *
 * The engine writes only through store_apply(): one batch of row changes,
 * from the transitions of many executions, in one transaction (group
 * commit). Everything else reads. Rows carry JSON as text: the engine
 * serializes once, every back end stores it as it is.
 *
 * Threads: a struct wfo_store may be used from several threads at once; the
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

struct wfo_store;

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
    const char *state;        /* engine-private JSON text or NULL */
    int64_t created_at, updated_at, finished_at;
    int64_t seq; /* creation order: assigned by the store on insert, read back on load */
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
    int attempt;
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
};

/* One batch: the row changes of many transitions, applied atomically. */
struct store_batch {
    struct store_exec *execs;
    int n_execs, alloc_execs;
    struct store_step *steps;
    int n_steps, alloc_steps;
    struct store_history *history;
    int n_history, alloc_history;
    struct store_timer *timers; /* put */
    int n_timers, alloc_timers;
    const char **timer_dels; /* ids */
    int n_timer_dels, alloc_timer_dels;
    struct store_task *tasks; /* put (insert or replace) */
    int n_tasks, alloc_tasks;
    const char **task_dels;
    int n_task_dels, alloc_task_dels;
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

/* A callback that returns non-zero stops the iteration; the read then
 * returns that value. */
struct wfo_store_ops {
    const char *name; /* "sqlite" */
    int version;      /* 1 */
    /* Is this URL ours? */
    int (*accepts)(const char *url);
    int (*open)(const char *url, struct wfo_store **out, struct wfo_error *err);
    void (*close)(struct wfo_store *s);
    /* Cheap liveness check for /readyz. */
    int (*ping)(struct wfo_store *s, struct wfo_error *err);

    int (*apply)(struct wfo_store *s, const struct store_batch *b, struct wfo_error *err);

    /* Registers a definition: when the latest version of (namespace, name)
     * has the same hash it is returned (*created = 0), else a new version
     * (latest + 1) is inserted (*created = 1). cb gets the resulting row. */
    int (*put_workflow)(struct wfo_store *s, const struct store_workflow *w, int *created,
                        store_workflow_cb cb, void *ud, struct wfo_error *err);
    /* version 0: the latest. WFO_ENOTFOUND when absent. */
    int (*get_workflow)(struct wfo_store *s, const char *ns, const char *name, int version,
                        store_workflow_cb cb, void *ud, struct wfo_error *err);
    /* The latest version of each workflow of ns, by name. */
    int (*list_workflows)(struct wfo_store *s, const char *ns, store_workflow_cb cb, void *ud,
                          struct wfo_error *err);

    /* WFO_ENOTFOUND when absent. */
    int (*get_exec)(struct wfo_store *s, const char *id, store_exec_cb cb, void *ud,
                    struct wfo_error *err);
    /* Newest first (seq descending). */
    int (*list_execs)(struct wfo_store *s, const struct store_exec_filter *f, store_exec_cb cb,
                      void *ud, struct wfo_error *err);
    /* Every execution whose status is running or paused (recovery). */
    int (*list_active_execs)(struct wfo_store *s, store_exec_cb cb, void *ud,
                             struct wfo_error *err);
    /* In ord order. */
    int (*list_steps)(struct wfo_store *s, const char *exec_id, store_step_cb cb, void *ud,
                      struct wfo_error *err);
    /* seq > after_seq, ascending, at most limit (0: all). */
    int (*list_history)(struct wfo_store *s, const char *exec_id, int64_t after_seq, int limit,
                        store_history_cb cb, void *ud, struct wfo_error *err);
    int (*list_timers)(struct wfo_store *s, store_timer_cb cb, void *ud, struct wfo_error *err);
    /* Every task not done (recovery). */
    int (*list_tasks)(struct wfo_store *s, store_task_cb cb, void *ud, struct wfo_error *err);
    /* Removes every version of (ns, name), in one transaction:
     * WFO_ECONFLICT while an execution of it is running or paused in the
     * store, WFO_ENOTFOUND when there is no such workflow. Executions that
     * ended keep their rows. */
    int (*delete_workflow)(struct wfo_store *s, const char *ns, const char *name,
                           struct wfo_error *err);
    /* Up to limit executions that ended before `before` (ms), oldest first:
     * what retention deletes. */
    int (*list_expired)(struct wfo_store *s, int64_t before, int limit, store_exec_cb cb, void *ud,
                        struct wfo_error *err);
    /* At most n reader connections (1 to STORE_POOL_MAX); before the first
     * read. */
    void (*set_pool_size)(struct wfo_store *s, int n);
    /* The server's secret key (size bytes, at most 64): drawn from the
     * CSPRNG the first time any process asks, kept in the store, the same
     * for every node of it. It keys leases and cursors; it is never
     * derived from the URL or anything else a client could know. */
    int (*server_key)(struct wfo_store *s, unsigned char *out, size_t size, struct wfo_error *err);
};

#define STORE_POOL_MAX 64

/* The back ends, and the one that accepts url (NULL when none). */
extern const struct wfo_store_ops store_sqlite_ops;
/* For tests: wraps another back end and fails chosen calls (fault/fault.c). */
extern const struct wfo_store_ops store_fault_ops;
const struct wfo_store_ops *store_find(const char *url);

/* Opens the store named by url with its back end. A store remembers its ops:
 * every store struct starts with a pointer to them. */
struct wfo_store {
    const struct wfo_store_ops *ops;
};
int store_open(const char *url, struct wfo_store **out, struct wfo_error *err);
void store_close(struct wfo_store *s);

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
void store_batch_timer_del(struct store_batch *b, const char *id);
struct store_task *store_batch_task(struct store_batch *b);
void store_batch_task_del(struct store_batch *b, const char *id);
void store_batch_exec_del(struct store_batch *b, const char *id);

#endif
