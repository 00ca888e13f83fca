/*
 * def.h - workflow definitions: validation and the compiled form
 * (SPEC 2). docs/data_model.md describes the language.
 *
 * def_compile() checks a document (the JSON model of a YAML or JSON file)
 * and reports every problem at once, each with its path written as
 * `wfo validate` prints it: "steps[2].retry.max_attempts". When there is
 * none it returns the compiled definition: steps resolved into blocks, jumps
 * into indexes, durations into milliseconds, templates compiled.
 *
 * A compiled definition is immutable and shared by every execution that runs
 * it: refcounted (STYLE rule 9).
 */
#ifndef WFO_CORE_DEF_H
#define WFO_CORE_DEF_H

#include <stdint.h>

#include "../common/buf.h"
#include "../common/cron.h"
#include "../common/json.h"
#include "expr.h"

/* Step types; the order is the order of step_type_names[] and of the
 * table of step kinds (kinds.h), which says all else about each. */
enum step_type {
    STEP_TASK,
    STEP_HTTP,
    STEP_EXEC,
    STEP_SET,
    STEP_SWITCH,
    STEP_PARALLEL,
    STEP_FOREACH,
    STEP_SLEEP,
    STEP_AWAIT_EVENT,
    STEP_EMIT,
    STEP_WORKFLOW,
    STEP_COMPENSATE,
    STEP_SUCCEED,
    STEP_FAIL,
    STEP__COUNT
};
extern const char *const step_type_names[STEP__COUNT];

/* Data fields of a step (SPEC 2.1): each is a template, evaluated when the
 * step starts, except F_OUTPUT (evaluated with the raw result at .result)
 * and F_IF (evaluated before the step starts). NULL when absent. */
enum step_field {
    F_INPUT,
    F_OUTPUT,
    F_IF,
    F_REQUEST,  /* http */
    F_COMMAND,  /* exec */
    F_STDIN,    /* exec */
    F_ENV,      /* exec */
    F_CWD,      /* exec */
    F_VARS,     /* set */
    F_ITEMS,    /* foreach */
    F_EVENT,    /* emit: {type, key, data, source} */
    F_ERROR,    /* fail: {type, message, details} */
    F_DURATION, /* sleep */
    F_UNTIL,    /* sleep */
    F_KEY,      /* await_event */
    F__COUNT
};
extern const char *const step_field_names[F__COUNT];

/* Jump targets: an index into the step's block, or one of these. */
#define JUMP_NEXT (-1) /* the next step in the block (or the block's end) */
#define JUMP_END (-2)  /* `end: true`: finish the workflow after it */

struct def_retry {
    int max_attempts;
    int64_t initial_ms;
    double backoff;
    int64_t max_ms;
    double jitter;
    char **non_retryable; /* NULL-terminated, may be empty */
};

struct def_catch {
    char **errors; /* NULL-terminated; "*" matches every type */
    int next;      /* index in the step's block */
};

struct def_case {
    struct tmpl *when;
    int next;
};

struct def_block {
    struct def_step *steps;
    int n;
};

struct def_branch {
    char *name;
    struct def_block block;
};

struct def_step {
    char *name; /* for a compensation: the name of the step it undoes */
    enum step_type type;
    json_t *spec; /* the step's document, borrowed from def->doc */
    struct tmpl *f[F__COUNT];
    int next;      /* JUMP_NEXT, JUMP_END or an index */
    int has_retry; /* 1 when the step carries retry: (or gets the default) */
    int retry_own; /* ... its own; else the engine's default policy applies */
    struct def_retry retry;
    int64_t timeout_ms; /* per attempt; 0 = none */
    struct def_catch *catches;
    int n_catches;
    struct def_step *compensate; /* compensation steps, run in order */
    int n_compensate;
    int compensate_list; /* written as a list (its paths: compensate[i]) */
    /* compensated also when its attempt was asked to stop and never said
     * how it ended (SPEC 2.4): its compensation tolerates "nothing to undo" */
    int compensate_in_flight;

    /* task */
    char *queue;
    int64_t schedule_timeout_ms, heartbeat_timeout_ms;
    /* http */
    int *accept_status; /* NULL: 2xx */
    int n_accept_status;
    /* switch */
    struct def_case *cases;
    int n_cases;
    int default_next; /* JUMP_NEXT when absent */
    /* parallel */
    struct def_branch *branches;
    int n_branches;
    int mode_any;
    /* foreach */
    struct def_block body;
    int concurrency;
    /* await_event */
    char *event_type; /* event: T */
    char *signal;     /* signal: NAME */
    /* workflow */
    char *workflow;
    int workflow_version; /* 0: latest */
    /* sleep: F_DURATION / F_UNTIL; succeed: F_OUTPUT; fail: F_ERROR */
};

struct def_trigger {
    char *event; /* NULL for a cron trigger */
    char *cron;
    struct wfo_cron spec; /* cron parsed */
    struct tmpl *input;   /* NULL: {event: EVENT} */
};

struct def {
    int refs;
    char *name;
    char *description;
    int version; /* set by the registry; 0 until registered */
    int64_t timeout_ms;
    int on_failure_compensate;
    struct tmpl *output; /* NULL: the output of the last step that ran */
    struct def_block steps;
    struct def_trigger *triggers;
    int n_triggers;
    json_t *doc;   /* the whole document */
    char hash[65]; /* sha256 of the canonical (sorted-keys) document */
};

/* One problem found by def_compile. */
struct def_problem {
    char *path;
    char *message;
};

struct def_problems {
    struct def_problem *items;
    int n, alloc;
};
void def_problems_add(struct def_problems *p, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void def_problems_release(struct def_problems *p);

/* Default retry policy of SPEC 2.3. */
extern const struct def_retry def_retry_default;

/* Checks and compiles a retry policy given on its own (the server's
 * default, SPEC 6) by the rules of a step's `retry:` (SPEC 2.3), keys left
 * out taking SPEC's defaults. v is borrowed; path names it in problems
 * ("retry" gives "retry.max_attempts"; "" gives "max_attempts"). 0 with
 * *out the policy (out may be NULL: only check; out->non_retryable is the
 * caller's, freed with def_retry_release), or WFO_EDEFINITION with every
 * problem appended to probs. */
int def_retry_compile(const json_t *v, const char *path, struct def_retry *out,
                      struct def_problems *probs);
/* Frees r->non_retryable (of def_retry_compile) and sets it NULL. */
void def_retry_release(struct def_retry *r);

/* Validates and compiles doc (borrowed; the definition keeps a reference).
 * 0 with *out a new definition (refs 1; caller drops with def_unref), or
 * WFO_EDEFINITION with every problem appended to probs (sorted by path
 * order of appearance). */
int def_compile(json_t *doc, struct def **out, struct def_problems *probs);

struct def *def_ref(struct def *d);
void def_unref(struct def *d);

/* Index of the step named name in block, or -1. */
int def_block_find(const struct def_block *b, const char *name);

/* Every task queue the definition uses, each once, into a NULL-terminated
 * array (caller frees the array, not the strings: borrowed from def). */
const char **def_task_queues(const struct def *d);

/* The JSON Schema (draft 2020-12) of definitions, built from the table of
 * step fields (new ref); id is its $id. GET /v1/schemas/workflow.json. */
json_t *def_schema(const char *id);
/* 1 when a step of type t is anywhere in d (blocks, branches,
 * compensations), with the first one's path ("steps[1].branches[0].steps[2]")
 * appended to path. */
int def_find_type(const struct def *d, enum step_type t, struct wfo_buf *path);

#endif
