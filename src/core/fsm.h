/*
 * fsm.h - the execution state machine (see fsm.c's header comment for the
 * states and transitions, docs/implementation/state_management.md for the
 * pictures).
 *
 * Pure: every function takes the execution and one event, moves the
 * execution's in-memory state, and appends the effects to struct fsm: the
 * history entries, the timers to arm or drop, the step attempts to run or
 * cancel, the executions touched. It does no I/O; the engine persists the
 * effects in one transaction and only then acts on them.
 */
#ifndef WFO_CORE_FSM_H
#define WFO_CORE_FSM_H

#include "exec.h"

enum timer_kind { TK_RETRY, TK_TIMEOUT, TK_SLEEP, TK_WF_TIMEOUT, TK_SCHEDULE, TK__COUNT };
extern const char *const timer_kind_names[TK__COUNT];
int timer_kind_parse(const char *s);

/* The effects point into their execution (x; step and action paths are
 * its steps' st->path, which live as long as it): the engine keeps an
 * execution in memory while a round holds its effects (E3 in engine.c). */
struct fsm_hist {
    struct execution *x;
    int64_t seq, time;
    const char *type;
    const char *step; /* a step's path, or NULL */
    json_t *data;     /* owned, may be NULL: read it with fsm_hist_data() */
    /* the common entries' data {dkey: dval} (dval owned) is made only when
     * asked for: the batch writes its text without it */
    const char *dkey;
    json_t *dval;
};

/* The data of h (borrowed; NULL when it has none), made when it is {dkey:
 * dval} and was not made yet. */
json_t *fsm_hist_data(struct fsm_hist *h);

struct fsm_timer {
    int del;
    char *id; /* owned: "EXEC/PATH#KIND" */
    struct execution *x;
    int64_t due;
    enum timer_kind kind;
    char *step; /* owned, NULL for the workflow timeout */
    int64_t token;
};

/* ACT_STOP: ask the attempt to stop but let it report (a worker learns it
 * from cancel_requested; a runner job is let finish); the engine answers a
 * task no worker took with a failed result. ACT_CANCEL: abort it. */
/* ACT_CHILD: start the child execution of a `workflow` step's attempt, in
 * the same round (args {id, workflow, version, input}; core/child.c). */
enum fsm_act_kind { ACT_RUN, ACT_CANCEL, ACT_STOP, ACT_ENDED, ACT_CHILD };
struct fsm_action {
    enum fsm_act_kind kind;
    struct execution *x;
    const char *step; /* the step's path */
    int64_t token;
    int attempt;
    const struct def_step *def;
    json_t *args; /* ACT_RUN: {input, ...type's evaluated fields}; owned */
};

struct fsm {
    /* in */
    int64_t now;
    int64_t transition_limit;
    double (*rand)(void);
    const struct def_retry *default_retry; /* for task/http/exec without retry: */
    int64_t stop_ms; /* how long an attempt asked to stop is waited for when its
                        step has no timeout (the engine's lease length) */
    /* out */
    struct fsm_hist *hist;
    int n_hist, alloc_hist;
    struct fsm_timer *timers;
    int n_timers, alloc_timers;
    struct fsm_action *acts;
    int n_acts, alloc_acts;
    struct execution **touched;
    int n_touched, alloc_touched;
    /* x->touched == gen: x is in touched (a new gen empties the list
     * without visiting the executions) */
    int gen;
};

void fsm_init(struct fsm *f);
/* Drops the effects (after the engine applied them); keeps the memory. */
void fsm_reset(struct fsm *f);
/* Moves src's effects to dst (which must hold none) and starts src afresh:
 * the engine commits dst while src gathers the next batch. */
void fsm_take(struct fsm *dst, struct fsm *src);
void fsm_release(struct fsm *f);

/* A new execution: started, its first steps run until one must wait. */
void fsm_start(struct fsm *f, struct execution *x);
/* An attempt's result. ok: output is the raw result; else error is
 * {type, message, details}. Returns 0, or WFO_ESTATE when the attempt is
 * not the current one (stale: nothing changes). Borrows output/error. */
int fsm_result(struct fsm *f, struct execution *x, const char *path, int64_t token, int ok,
               json_t *output, json_t *error, int retryable);
/* A worker took the task of an attempt (only reported for steps with a
 * schedule_timeout): the ScheduleTimeout no longer applies. */
void fsm_task_picked(struct fsm *f, struct execution *x, const char *path, int64_t token,
                     const char *worker);
/* A durable timer fired. Stale timers change nothing. */
void fsm_timer(struct fsm *f, struct execution *x, enum timer_kind kind, const char *path,
               int64_t token);
/* An await_event step's wait (path, token) is met: result (borrowed) is
 * the step's raw result, also the data of the history entry `consumed`
 * ("event.consumed" or "signal.consumed", which the engine's batch turns
 * into the consumption of result.id in the same transaction). WFO_ESTATE
 * when that attempt no longer waits (nothing changes). */
int fsm_wait_done(struct fsm *f, struct execution *x, const char *path, int64_t token,
                  json_t *result, const char *consumed);
/* Operator commands (SPEC 4); WFO_ESTATE when not allowed in the
 * current status. */
int fsm_cancel(struct fsm *f, struct execution *x, const char *reason, int compensate);
int fsm_terminate(struct fsm *f, struct execution *x, const char *reason);
int fsm_pause(struct fsm *f, struct execution *x);
int fsm_resume(struct fsm *f, struct execution *x);
/* Retries a failed execution (SPEC 2.4): from step `from` (NULL: the
 * earliest compensated step, else the failed one), the failed compensations
 * first. WFO_EINVAL (a bad `from`) or WFO_ESTATE with err set. */
int fsm_retry(struct fsm *f, struct execution *x, const char *from, struct wfo_error *err);

/* The invariants I1-I3, C1 and C2 (fsm.c's header) on x and the effects
 * gathered for it in f: NULL when they hold, else the name of the first
 * broken one, with what broke in why (size n). Never aborts (check.h);
 * every transition above runs it through WFO_CHECK in the test build. */
const char *fsm_check(const struct fsm *f, const struct execution *x, char *why, size_t n);

/* The delay before attempt n + 1 (n >= 1) under r, with r01 in [0, 1) for
 * the jitter: min(max, initial * backoff^(n-1)) varied by +-jitter. */
int64_t fsm_retry_delay(const struct def_retry *r, int n, double r01);
/* The evaluated fields of st's attempt in flight, for running it again
 * after a restart: what its ACT_RUN carried (new ref), or NULL with *error
 * (new ref) when a field no longer evaluates. */
json_t *fsm_attempt_args(struct execution *x, struct step_state *st, json_t **error);

/* The id of the child execution that attempt `token` of the `workflow`
 * step at path of execution parent_id starts: derived from the three, so
 * the same attempt always names the same child (a UUID of version 8 made
 * of their SHA-256, drawn again with a counter until it falls in the
 * parent's shard: a parent and its children commit together, on the node
 * that holds that shard, engine.c E8). */
void fsm_child_id(const char *parent_id, const char *path, int64_t token, char out[WFO_ID_SIZE]);
/* Builds {type, message, details} (new ref; details may be NULL). */
json_t *fsm_error(const char *type, const char *message, json_t *details);

#endif
