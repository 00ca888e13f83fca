/*
 * taskq.h - the ready queues of task steps waiting for workers, and their
 * leases (SPEC 3, 4: the worker protocol). docs/interfaces/internal.md.
 *
 * The queues are in memory; each task is also a row in the store, with its
 * lease once a worker took it (round.c batch_tasks, CMD_LEASED). Recovery
 * enqueues the task of every running attempt again with the same id and,
 * when its row holds a lease that has not run out, that lease
 * (taskq_relet). Thread-safe: its own mutex; pollers wait on its condition
 * variable.
 */
#ifndef WFO_CORE_TASKQ_H
#define WFO_CORE_TASKQ_H

#include <pthread.h>
#include <stdint.h>

#include "../common/json.h"
#include "../common/map.h"
#include "../common/util.h"

#define TASKQ_ID_SIZE (WFO_EXEC_ID_SIZE + 24)
/* A lease: 32 hex digits from the CSPRNG, then 32 of its MAC (T2), NUL. */
#define TASKQ_LEASE_SIZE 65

struct task {
    char id[TASKQ_ID_SIZE]; /* "EXECID.TOKEN" */
    char *exec_id, *ns, *queue, *path;
    int64_t token;
    int attempt;
    json_t *input;
    char lease[TASKQ_LEASE_SIZE]; /* "" while ready */
    char *worker;
    int64_t leased_until, deadline;
    int64_t ready_since;  /* when it last became ready (the age of a waiting task) */
    int64_t heartbeat_ms; /* the step's heartbeat_timeout; 0: none */
    int report_pick;      /* the step has a schedule_timeout: tell the engine */
    int cancel_requested;
    struct task *next; /* in its ready list */
};

struct taskq {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct wfo_map tasks;  /* id -> task */
    struct wfo_map queues; /* "ns\nqueue" -> struct taskq_list */
    int64_t lease_ms;
    unsigned char key[32]; /* the store's server key: MACs leases (T2) */
    int stop;
    long long ready, leased, expiries;
};

void taskq_init(struct taskq *q, int64_t lease_ms);
void taskq_release(struct taskq *q);
/* Wakes every poller and makes them return. */
void taskq_stop(struct taskq *q);
/* Drops every task (the engine restarting in place, engine.c E2). */
void taskq_clear(struct taskq *q);

/* Adds a ready task; takes t. A task with the same id replaces the old. */
void taskq_add(struct taskq *q, struct task *t);
struct task *task_new(const char *exec_id, const char *ns, const char *queue, const char *path,
                      int64_t token, int attempt, json_t *input);
void task_free(struct task *t);
void taskq_id(char out[TASKQ_ID_SIZE], const char *exec_id, int64_t token);
/* Splits a task id; 0 or WFO_ENOTFOUND when it is not one. */
int taskq_id_parse(const char *id, char *exec_id, size_t size, int64_t *token);

/* The attempt was cancelled or asked to stop: a ready task is dropped
 * (returns 1), a leased one is marked so its heartbeat says
 * cancel_requested; its completion is still taken, and when its lease runs
 * out it is not handed out again but fails (taskq_sweep). */
int taskq_cancel(struct taskq *q, const char *exec_id, int64_t token);

/* A leased task that must be reported to the engine (report_pick: its
 * step has a schedule_timeout), in a list. */
struct taskq_pick {
    struct taskq_pick *next;
    char exec_id[WFO_EXEC_ID_SIZE];
    char *path;
    int64_t token;
    char *worker;
};

/* Frees the list p (NULL: nothing). */
void taskq_picks_free(struct taskq_pick *p);

/* A task of (ns, queue) became ready on another node (a cluster): a poll
 * waiting on that queue returns at once, with nothing, so that its caller
 * asks the other nodes (api/tasks.c). */
void taskq_elsewhere(struct taskq *q, const char *ns, const char *queue);

/* Leases up to max ready tasks of queues to worker, waiting up to wait_ms
 * (less when a task of them became ready elsewhere: taskq_elsewhere).
 * Returns the JSON array for the worker (new ref). *picked (picked may be
 * NULL) gets the list, in lease order, of the tasks to report to the
 * engine; the caller frees it with taskq_picks_free(). *seen (seen may be
 * NULL) is the count of taskq_elsewhere calls the caller knows of: with
 * *seen >= 0 the wait ends at once if more happened since (one that came
 * while the caller asked the other nodes is not missed); on return *seen
 * is the count then. */
json_t *taskq_poll(struct taskq *q, const char *ns, const char *const *queues, int n_queues,
                   const char *worker, int max, int64_t wait_ms, struct taskq_pick **picked,
                   long long *seen);

/* Recovery: the ready task id has been ready since `since` (its row's
 * ready_at), when that is earlier than its re-queueing: its queue's age
 * does not start again at a restart. */
void taskq_ready_since(struct taskq *q, const char *id, int64_t since);
/* Recovery: the ready task id is leased again with the lease its row kept
 * (a worker that took it before the restart completes it with that one). */
void taskq_relet(struct taskq *q, const char *id, const char *lease, int64_t leased_until);

/* Makes a leased task ready again, first in its queue, when lease is its
 * lease (its poller went away before getting it). */
void taskq_unlease(struct taskq *q, const char *id, const char *lease);

/* Outcome of checking a worker's lease. */
enum taskq_check { TQ_OK, TQ_UNKNOWN, TQ_STALE };
/* For complete/fail: removes the task when the lease is current and
 * returns TQ_OK with *t set (caller frees); else TQ_UNKNOWN or TQ_STALE. */
enum taskq_check taskq_take(struct taskq *q, const char *ns, const char *id, const char *lease,
                            struct task **t);
/* For heartbeat: extends the lease. */
enum taskq_check taskq_heartbeat(struct taskq *q, const char *ns, const char *id, const char *lease,
                                 int *cancel_requested);

/* Pollers are remembered per queue for this long (GET /v1/queues). */
#define TASKQ_POLLER_TTL_MS (60 * 1000)
/* At most this many distinct pollers are remembered per queue. */
#define TASKQ_MAX_POLLERS 64

/* What is known of the queues (GET /v1/queues, /metrics): a JSON array,
 * sorted by name, of {name, ready, leased, oldest_ready_age_ms, pollers:
 * [{worker, last_poll}]} (new ref). ns NULL: every namespace, each entry
 * with "namespace" and "lease_expiries" too. A queue is listed when a task
 * was ever enqueued on it (its name comes from a registered definition)
 * or, unless known_only, when a worker polled it in the last
 * TASKQ_POLLER_TTL_MS (its name comes from the worker). */
json_t *taskq_queues(struct taskq *q, const char *ns, int known_only, int64_t now);

/* Expired leases: a task whose step has a heartbeat timeout is removed and
 * returned in *failed (a linked list through next; caller reports
 * HeartbeatTimeout and frees); any other becomes ready again. */
void taskq_sweep(struct taskq *q, int64_t now, struct task **failed);

#endif
