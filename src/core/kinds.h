/*
 * kinds.h - the table of step kinds: one row per step type, holding what
 * the rest of wfo knows of that type. The definition compiler (def.c)
 * reads the fields a kind takes and the rules between them; the state
 * machine (fsm.c) how an attempt of it starts and how it ends; the engine
 * (engine.c) the runner that does its work when it does I/O (steps/).
 * docs/interfaces/internal.md, "How to add a step kind".
 */
#ifndef WFO_CORE_KINDS_H
#define WFO_CORE_KINDS_H

#include <stdint.h>

#include "def.h"
#include "../steps/runner.h"

struct fsm;
struct execution;
struct step_state;

/* Every field a step may have. def.c's field table gives each its name,
 * its JSON Schema and how it compiles; the order is the order of the
 * properties in the schema. Two fields share a name where kinds read it
 * differently: await_event's `event` is a type, emit's an object. */
enum step_key {
    K_NONE, /* no field */
    K_NAME,
    K_TYPE,
    K_INPUT,
    K_OUTPUT,
    K_NEXT,
    K_END,
    K_RETRY,
    K_TIMEOUT,
    K_CATCH,
    K_COMPENSATE,
    K_COMPENSATE_IN_FLIGHT,
    K_IF,
    K_QUEUE,
    K_SCHEDULE_TIMEOUT,
    K_HEARTBEAT_TIMEOUT,
    K_REQUEST,
    K_ACCEPT_STATUS,
    K_COMMAND,
    K_STDIN,
    K_ENV,
    K_CWD,
    K_VARS,
    K_CASES,
    K_DEFAULT,
    K_BRANCHES,
    K_MODE,
    K_ITEMS,
    K_CONCURRENCY,
    K_STEPS,
    K_DURATION,
    K_UNTIL,
    K_EVENT_TYPE, /* await_event's event: the type waited for */
    K_EVENT,      /* emit's event: {type, key, data, source} */
    K_KEY,
    K_SIGNAL,
    K_WORKFLOW,
    K_VERSION,
    K_ERROR,
    K__COUNT
};

#define KEY(k) (UINT64_C(1) << K_##k)
/* The fields of every kind (a kind may still refuse `next`: no_next). */
#define KEYS_COMMON                                                                                \
    (KEY(NAME) | KEY(TYPE) | KEY(INPUT) | KEY(OUTPUT) | KEY(NEXT) | KEY(END) | KEY(RETRY) |        \
     KEY(TIMEOUT) | KEY(CATCH) | KEY(COMPENSATE) | KEY(IF))
/* The fields of no kind in a compensation (invariant 4 of def.c). */
#define KEYS_NOT_IN_COMPENSATION (KEY(NEXT) | KEY(END) | KEY(CATCH) | KEY(COMPENSATE))

/* How an attempt of a kind ends, which says how it takes its result. */
enum kind_end {
    KE_START,        /* within its start: set, switch, succeed, fail */
    KE_RESULT,       /* with an outcome from a runner or a worker (fsm_result): it
                        retries by default, and can be asked to stop and still report */
    KE_TIMER,        /* when its timer fires (sleep: fsm_timer) */
    KE_BLOCKS,       /* when its branches or iterations are done (block_progress) */
    KE_COMPENSATION, /* when the compensation it started is done (comp_advance) */
    KE_CHILD,        /* when the child execution it started ends (engine: child.c) */
};

/* What the start of an attempt is given (borrowed): the context its
 * expressions see, its evaluated input, and the token of the attempt
 * before it (-1 for the first), which a block step uses to keep what a
 * retry need not run again. */
struct kind_attempt {
    struct expr_ctx *ctx;
    json_t *input;
    int64_t prev_token;
};

/* Starts an attempt of st (status running, its token and step.started
 * written): effects through f. Returns NULL, or an error (new ref) that
 * fails the attempt, not retryable (an ExpressionError). */
typedef json_t *(*kind_start_fn)(struct fsm *f, struct execution *x, struct step_state *st,
                                 const struct kind_attempt *a);

struct step_kind {
    const char *name; /* the `type` of a step; also step_type_names[] */
    /* definitions (def.c) */
    uint64_t fields;            /* KEY() bits it takes beside KEYS_COMMON */
    uint64_t required;          /* KEY() bits it cannot do without */
    enum step_key either[2];    /* exactly one of these two */
    enum step_key goes_with[2]; /* [0] is required with [1] and refused without it */
    const char *no_next;        /* why it refuses `next`; NULL: it takes one */
    int not_compensation;       /* cannot be a compensation step */
    /* the state machine (fsm.c) */
    kind_start_fn start; /* NULL: not supported yet (the attempt fails, Unsupported) */
    enum kind_end ends;
    unsigned run_fields; /* bits of enum step_field evaluated for its runner, with input */
    int keeps_secrets;   /* input and run_fields leave wfo only to do its work (SPEC 2.1) */
    /* the engine */
    step_run_fn run; /* what runs an attempt on a runner thread; NULL: fsm.c does */
    int cancel_pipe; /* its runner waits on the job's cancel pipe */
};

/* Indexed by enum step_type. */
extern const struct step_kind step_kinds[STEP__COUNT];

static inline int kind_has_field(enum step_type t, enum step_key k)
{
    return ((KEYS_COMMON | step_kinds[t].fields) >> k) & 1;
}

/* The starts, in fsm.c. */
json_t *fsm_start_set(struct fsm *f, struct execution *x, struct step_state *st,
                      const struct kind_attempt *a);
json_t *fsm_start_switch(struct fsm *f, struct execution *x, struct step_state *st,
                         const struct kind_attempt *a);
json_t *fsm_start_succeed(struct fsm *f, struct execution *x, struct step_state *st,
                          const struct kind_attempt *a);
json_t *fsm_start_fail(struct fsm *f, struct execution *x, struct step_state *st,
                       const struct kind_attempt *a);
json_t *fsm_start_sleep(struct fsm *f, struct execution *x, struct step_state *st,
                        const struct kind_attempt *a);
json_t *fsm_start_await(struct fsm *f, struct execution *x, struct step_state *st,
                        const struct kind_attempt *a);
json_t *fsm_start_emit(struct fsm *f, struct execution *x, struct step_state *st,
                       const struct kind_attempt *a);
json_t *fsm_start_run(struct fsm *f, struct execution *x, struct step_state *st,
                      const struct kind_attempt *a);
json_t *fsm_start_parallel(struct fsm *f, struct execution *x, struct step_state *st,
                           const struct kind_attempt *a);
json_t *fsm_start_foreach(struct fsm *f, struct execution *x, struct step_state *st,
                          const struct kind_attempt *a);
json_t *fsm_start_workflow(struct fsm *f, struct execution *x, struct step_state *st,
                           const struct kind_attempt *a);
json_t *fsm_start_compensate(struct fsm *f, struct execution *x, struct step_state *st,
                             const struct kind_attempt *a);

#endif
