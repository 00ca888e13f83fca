/*
 * expr.h - `${ ... }` expressions and templates (SPEC 2.1), on libjq.
 * The one door to libjq: only core/expr.c includes <jq.h>.
 * docs/implementation/state_management.md describes the context.
 *
 * A template is a JSON value whose string leaves may be expressions. It is
 * compiled once per definition (compiling a jq program costs ~16 ms; running
 * one ~1 us) and evaluated against a context object many times.
 *
 * Sandbox: an expression cannot read the environment (env, $ENV), load
 * modules (import, include), read input (input, inputs), write to stderr
 * (debug, stderr), or stop the process (halt, halt_error): those are refused
 * when compiling. An evaluation that uses more than WFO_EXPR_TIME_LIMIT_MS
 * of CPU time (or runs ten times that long on the wall clock) is stopped
 * and fails.
 *
 * Threads: a compiled template is used by one thread at a time (a jq_state
 * is not thread-safe). The engine evaluates on its own thread only.
 */
#ifndef WFO_CORE_EXPR_H
#define WFO_CORE_EXPR_H

#include "../common/json.h"

#define WFO_EXPR_TIME_LIMIT_MS 1000

struct tmpl;

/* True when s is an expression: its whole text is "${ ... }". */
int expr_is_expression(const char *s);

/* Compiles a template from value (borrowed; the template keeps its own
 * reference). Every expression in it is compiled; the first that fails
 * gives WFO_EEXPR with "jq: MESSAGE" in err and *bad_path set to the
 * JSON-pointer-like suffix of the failing leaf within value ("" for value
 * itself, ".a", "[2].b", caller frees). A value with no expression compiles
 * to a constant template whose evaluation returns the value itself.
 * Returns a new template; caller frees with tmpl_free(). */
int tmpl_compile(json_t *value, struct tmpl **out, char **bad_path, struct wfo_error *err);
/* Compiles every expression in value and calls bad(ud, path, message) for
 * each that fails (path as tmpl_compile's bad_path), not just the first:
 * for a definition's problems, all of them. Returns the first failure's
 * code, or 0 when every expression compiles. */
typedef void tmpl_bad_fn(void *ud, const char *path, const char *message);
int tmpl_check(json_t *value, tmpl_bad_fn *bad, void *ud);
void tmpl_free(struct tmpl *t);
/* True when the template has no expression. */
int tmpl_is_const(const struct tmpl *t);

/* Evaluates t against ctx (borrowed). *out is a new reference. An expression
 * that yields no value gives null; one that yields several gives the first.
 * Failure: WFO_EEXPR with the jq error message in err. */
int tmpl_eval(const struct tmpl *t, json_t *ctx, json_t **out, struct wfo_error *err);

/* A context made on demand. The engine's contexts are objects of a few
 * members (input, steps, vars, execution, ...: SPEC 2.1) and most
 * expressions are plain paths into one of them, which need none of the
 * others: tmpl_eval_ctx() asks `member` for what the first keys of a plain
 * path reach, and `whole` for the object itself only when an expression
 * needs more (jq, `.`, a path `member` does not follow). Both must give
 * what walking the whole object gives. */
#define EXPR_CTX_KEYS 3

struct expr_ctx {
    /* The value that the first keys of a plain path reach: keys[0] ..
     * keys[n - 1] are its leading keys (1 <= n <= EXPR_CTX_KEYS), and
     * *used says how many it followed (at least 1). Borrowed, NULL when
     * absent. */
    json_t *(*member)(struct expr_ctx *c, const char *const *keys, int n, int *used);
    /* The whole context object, borrowed: the expr_ctx keeps it. */
    json_t *(*whole)(struct expr_ctx *c);
};

/* tmpl_eval on a context made on demand. */
int tmpl_eval_ctx(const struct tmpl *t, struct expr_ctx *c, json_t **out, struct wfo_error *err);

/* The server-side secrets (a JSON object, borrowed: copied): `$secrets` in
 * every expression compiled afterwards ({} until set). Call before any
 * thread compiles. */
void expr_set_secrets(json_t *obj);

/* Compiles and evaluates one expression text once (tests, the CLI). */
int expr_eval_once(const char *text, json_t *ctx, json_t **out, struct wfo_error *err);

#endif
