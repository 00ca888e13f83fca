/*
 * exec.h - an execution in memory: the state the state machine (fsm.c)
 * moves and the engine (engine.c) persists. docs/implementation/
 * state_management.md draws the states.
 *
 * Durable form: one executions row (status, input, output, error, and the
 * private `state` JSON: frames, vars, counters) and one steps row per
 * reached step (its private `state`: token, completion order, frame).
 * exec_load() rebuilds this struct from those rows; exec_row_state() and
 * exec_step_state() write them. Everything else is derived.
 */
#ifndef WFO_CORE_EXEC_H
#define WFO_CORE_EXEC_H

#include <stdint.h>

#include "../common/json.h"
#include "../common/map.h"
#include "../common/util.h"
#include "../common/duration.h"
#include "def.h"
#include "expr.h"

/* The state of one entry of a compensation queue. */
enum comp_state { COMP_PENDING, COMP_RUNNING, COMP_DONE, COMP_FAILED };

/* One compensation to run: the index-th `compensate` step of the step at
 * path. Saved in the execution's state as [path, index, state]. */
struct comp_entry {
    char *path;
    int index;
    enum comp_state state;
};

enum exec_status { EX_RUNNING, EX_PAUSED, EX_COMPLETED, EX_FAILED, EX_CANCELLED, EX_TERMINATED };
extern const char *const exec_status_names[];
int exec_status_parse(const char *s);
/* Has an execution with status s ended (completed, failed, cancelled or
 * terminated: it will not run again unless retried)? The one answer to
 * that: the engine, the queries and the CLI's waits all ask here (the
 * store's SQL says the same as "status NOT IN ('running', 'paused')"). */
#define EX_ENDED(s) ((s) >= EX_COMPLETED)
/* The same for a status name: query_status_ended() in query.h, the door
 * the API and the CLI use. */

enum step_status {
    SS_SCHEDULED, /* reached, waiting for its first attempt or a retry */
    SS_RUNNING,   /* an attempt is in flight */
    SS_WAITING,   /* sleep, await_event, a block waiting for its frames */
    SS_COMPLETED,
    SS_FAILED,
    SS_CAUGHT,
    SS_SKIPPED,
    SS_CANCELLED,
    SS_COMPENSATED
};
extern const char *const step_status_names[];
int step_status_parse(const char *s);

/* A block being run: the top-level steps, a parallel branch, a foreach
 * iteration. Frames form a tree through parent. */
enum frame_status { FR_ACTIVE, FR_DONE, FR_FAILED, FR_CANCELLED };

struct frame {
    int id;
    int parent;  /* frame id, -1 for the top */
    char *owner; /* path of the parallel/foreach step that opened it, NULL for the top */
    int branch;  /* parallel: branch index; foreach: item index */
    const struct def_block *block;
    char *prefix;   /* path prefix of its steps: "", "par/b/", "each[3]/" */
    int pc;         /* index of the current step in block; -1 when none */
    int busy;       /* the step at pc was entered and has not finished */
    int64_t otoken; /* the owner step's token when the frame was opened */
    enum frame_status status;
    json_t *item;  /* foreach: the item */
    char *last;    /* path of the last step that ran in this frame */
    json_t *scope; /* .steps of this block: name -> {output, status, attempts, error} */
    /* steps whose scope entry is out of date: rebuilt when a context next
     * reads it (exec_context, or a path .steps.NAME: that one), not at
     * every change of the step */
    struct step_state **stale;
    int n_stale, alloc_stale;
};

struct step_state {
    char *path;
    int ord;
    const struct def_step *def;
    int frame;
    enum step_status status;
    int attempts;
    int64_t token; /* identifies the attempt in flight; results for another are stale */
    int64_t cseq;  /* completion order, for compensation; 0 until completed */
    int64_t eseq;  /* the order of its last entry (x->eseq then), for a retry's
                      rewind of .vars; 0: none (or saved by a wfo before it) */
    int retry_due; /* its retry timer fired while the execution was paused, or (a
                      block) while attempts it asked to stop were still out */
    int picked;    /* a worker took the attempt's task (schedule_timeout) */
    int stopping;  /* cancelled while its attempt was in flight; that attempt may
                      still report (a success then counts: SPEC 2.4) */
    int unknown;   /* ... and it never said how it ended (compensate_in_flight) */
    int comp;      /* a compensation step ("PATH:compensate[i]") */
    int no_retry;  /* its last failure may not be retried, by it or an enclosing
                      block (not saved: read in the same call that sets it) */
    json_t *items; /* foreach: the items of the current attempt */
    int next_item; /* foreach: the next item to open a frame for */
    json_t *output, *error;
    char *input_text; /* what its last attempt was given (JSON text), or NULL */
    int64_t started_at, finished_at;
    int64_t task_row; /* the token whose worker task has a row in the store; 0: none */
    char *child;      /* workflow: the id of the child its last attempt started, or NULL */
    /* await_event, while waiting: what for, {event, key} or {signal} (saved;
     * core/events.c matches it, docs/implementation/event_processing.md) */
    json_t *wait;
    int dirty;
    int scope_stale; /* in the stale list of frame scope_frame */
    int scope_frame;
};

struct execution {
    char id[WFO_EXEC_ID_SIZE];
    char *ns;
    char *workflow;
    struct def *def; /* a reference */
    enum exec_status status;
    json_t *input, *output, *error, *compensation;
    char *parent; /* a child's parent, {"id": ID, "step": PATH} as JSON text, or NULL */
    json_t *vars;
    json_t *error_ctx; /* the error visible at .error (after catch) */
    /* the catch target whose run .error is for (SPEC 2.1: "inside a
     * catch target"): cleared when it completes or is skipped; NULL while
     * compensating after a failure (every compensation sees it) */
    char *error_step;
    json_t *event_ctx; /* the event visible at .event (after await_event, SPEC 2.1) */
    int64_t created_at, updated_at, finished_at;
    int64_t transitions;
    int64_t hseq; /* last history seq */
    int64_t tick; /* token counter */
    int64_t cseq; /* completion counter */
    int64_t eseq; /* entry counter (step_state.eseq) */
    struct frame *frames;
    int n_frames, alloc_frames;
    struct step_state **steps; /* in ord order */
    int n_steps, alloc_steps;
    struct wfo_map by_path;
    int dirty;
    int touched;   /* == fsm.gen: in the current batch's list */
    int row_dirty; /* status, output, error or compensation changed since the row was written */
    int row_written;
    int row_resume;        /* the resume flag its row has */
    int64_t chunks;        /* the chunks written (store_exec.chunk), in its state */
    int task_rows;         /* steps with a task_row (not saved: counted at load) */
    char *input_text;      /* input serialized once */
    json_t *ctx_execution; /* the context's .execution, built once */

    /* compensation (SPEC 2.4): the steps to undo, newest completion first,
     * each with its state; NULL when not compensating */
    struct comp_entry *comp_queue; /* n_comp entries */
    int n_comp;
    int comp_advancing;  /* comp_advance is on the stack (not saved) */
    int comp_again;      /* ... and something ended meanwhile (not saved) */
    char *comp_owner;    /* a `compensate` step waiting for it, or NULL */
    int comp_final;      /* the status to end with: EX_FAILED or EX_CANCELLED */
    int comp_then_retry; /* a retry re-runs failed compensations, then resumes */
    int draining;        /* failed: waits for stopping attempts, then compensates */
    char *retry_from;    /* ... from this step (NULL: fsm_retry's default) */
    char *fail_origin;   /* path of the innermost failing step (error.step) */
    int waiters;
    int deleting; /* an accepted DELETE: its rows go with the round that carries it */
};

struct execution *exec_new(const char *id, const char *ns, struct def *def, json_t *input,
                           int64_t now);
void exec_free(struct execution *x);
struct step_state *exec_step(struct execution *x, const char *path);
/* Finds or creates the step at path (created steps get the next ord). */
struct step_state *exec_step_reach(struct execution *x, const char *path,
                                   const struct def_step *def, int frame, int *created);
struct frame *exec_frame_add(struct execution *x, int parent, const char *owner, int branch,
                             const struct def_block *block, const char *prefix);

/* Empties x's compensation queue (comp_queue NULL: not compensating). */
void exec_comp_clear(struct execution *x);

/* Appends the private state JSON text of the executions row, of a steps
 * row. */
void exec_row_state(const struct execution *x, struct wfo_buf *b);
void exec_step_state(const struct step_state *st, struct wfo_buf *b);
/* Rebuilds from rows: the exec's state JSON was read by the caller and
 * steps are added one by one with exec_load_step. */
int exec_load(struct execution *x, json_t *state, struct wfo_error *err);
int exec_load_step(struct execution *x, const char *path, int ord, const char *status, int attempts,
                   json_t *output, json_t *error, json_t *state, const char *input_text,
                   int64_t started_at, int64_t finished_at, struct wfo_error *err);
/* Resolves a step path to its definition ("a", "par/b/s", "each[3]/s"). */
const struct def_step *exec_resolve_path(const struct def *def, const char *path);

/* The context object of SPEC 2.1 for a frame (new ref). */
json_t *exec_context(struct execution *x, int frame);

/* The context of a frame made on demand (expr.h): a plain path reads the
 * execution's values where they are, and the object (exec_context) is made
 * only for an expression that needs it. result, when has_result, is the
 * context's .result (an output expression's: borrowed). Valid while the
 * execution does not change; released with exec_ctx_release. */
struct exec_ctx {
    struct expr_ctx base;
    struct execution *x;
    int frame;
    int has_result;
    json_t *result;
    json_t *obj; /* the object, once made */
};

void exec_ctx_init(struct exec_ctx *c, struct execution *x, int frame);
void exec_ctx_release(struct exec_ctx *c);
/* Updates the .steps entry of st (after a status/output change). */
void exec_scope_update(struct execution *x, struct step_state *st);

#endif
