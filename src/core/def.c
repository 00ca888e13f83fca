/*
 * def.c - validation and compilation of workflow definitions (SPEC 2).
 * docs/data_model.md describes the language.
 *
 * def_compile() walks the document once, in document order, and builds the
 * compiled form while it checks it: every problem is recorded with its path
 * and the walk goes on, so one call reports them all. When the walk found
 * nothing the compiled definition is returned, else it is freed.
 *
 * Invariants the rest of wfo relies on (a compiled definition has):
 *  1. every `next`, catch `next`, case `next` and `default` is JUMP_NEXT,
 *     JUMP_END or an index into the block of the step that holds it;
 *  2. every retry.non_retryable and catch errors is a NULL-terminated array,
 *     never NULL;
 *  3. blocks are nested at most DEF_MAX_DEPTH deep, so recursive walks of a
 *     definition are bounded;
 *  4. a compensation step has no next, end, catch or compensate, is neither
 *     a switch nor a compensate step, and carries the name of its step.
 */
#include "common/compat.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/def.h"
#include "core/kinds.h"
#include "common/crypto.h"
#include "common/duration.h"
#include "common/map.h"
#include "common/util.h"

#define DEF_MAX_DEPTH 32         /* blocks inside blocks (invariant 3) */
#define DEF_MAX_PROBLEMS 1000    /* then one "too many problems" */
#define DEF_MAX_ATTEMPTS 1000000 /* retry.max_attempts */
#define DEF_MAX_CONCURRENCY 10000
#define DEF_MAX_MS (100LL * 365 * 24 * 3600 * 1000) /* 100 years, as durations */
#define DEF_QUOTE_MAX 64                            /* bytes of user text quoted in a message */

const char *const step_field_names[F__COUNT] = {
    "input", "output", "if",    "request", "command",  "stdin", "env", "cwd",
    "vars",  "items",  "event", "error",   "duration", "until", "key",
};

static char *def_no_errors[] = {NULL};

const struct def_retry def_retry_default = {
    .max_attempts = 3,
    .initial_ms = 1000,
    .backoff = 2.0,
    .max_ms = 60000,
    .jitter = 0.1,
    .non_retryable = def_no_errors,
};

/* ---- problems ---------------------------------------------------------- */

static void problems_addv(struct def_problems *p, const char *path, const char *fmt, va_list ap)
{
    struct wfo_buf msg = WFO_BUF_INIT;

    (void)wfo_buf_vaddf(&msg, fmt, ap);
    if (p->n == p->alloc) {
        p->alloc = p->alloc ? 2 * p->alloc : 16;
        p->items = wfo_realloc(p->items, (size_t)p->alloc * sizeof(*p->items));
    }
    p->items[p->n].path = wfo_strdup(path ? path : "");
    p->items[p->n].message = wfo_buf_detach(&msg, NULL);
    p->n++;
}

void def_problems_add(struct def_problems *p, const char *path, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    problems_addv(p, path, fmt, ap);
    va_end(ap);
}

void def_problems_release(struct def_problems *p)
{
    for (int i = 0; i < p->n; i++) {
        free(p->items[i].path);
        free(p->items[i].message);
    }
    free(p->items);
    p->items = NULL;
    p->n = p->alloc = 0;
}

/* ---- the walk's context: where we are, what we found -------------------- */

struct dctx {
    struct def_problems *probs;
    struct wfo_buf path; /* "steps[2].retry" */
    int count;           /* problems this walk added */
    int full;            /* DEF_MAX_PROBLEMS reached: report and compile no more */
    int depth;           /* blocks entered (invariant 3) */
};

/* The steps of one block, by name: resolves jumps. */
struct blk {
    struct wfo_map names; /* name -> index + 1 */
    size_t path_len;      /* length of the block's path ("steps") */
};

static void problemv(struct dctx *c, const char *fmt, va_list ap)
{
    if (c->full)
        return;
    if (c->count == DEF_MAX_PROBLEMS) {
        def_problems_add(c->probs, "", "too many problems (only the first %d are listed)",
                         DEF_MAX_PROBLEMS);
        c->full = 1;
        return;
    }
    problems_addv(c->probs, c->path.buf, fmt, ap);
    c->count++;
}

/* A problem at the current path. */
static void problem(struct dctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(struct dctx *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    problemv(c, fmt, ap);
    va_end(ap);
}

static size_t push_key(struct dctx *c, const char *key)
{
    size_t old = c->path.len;

    if (old)
        (void)wfo_buf_addch(&c->path, '.');
    (void)wfo_buf_adds(&c->path, key);
    return old;
}

static size_t push_index(struct dctx *c, size_t i)
{
    size_t old = c->path.len;

    (void)wfo_buf_addf(&c->path, "[%zu]", i);
    return old;
}

static void pop(struct dctx *c, size_t old)
{
    if (c->path.len > old) {
        c->path.len = old;
        c->path.buf[old] = '\0';
    }
}

/* A problem at the current path plus ".key". The arguments must not point
 * into c->path (pushing may move it). */
static void problem_at(struct dctx *c, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void problem_at(struct dctx *c, const char *key, const char *fmt, ...)
{
    size_t old = push_key(c, key);
    va_list ap;

    va_start(ap, fmt);
    problemv(c, fmt, ap);
    va_end(ap);
    pop(c, old);
}

/* User text for a message: at most DEF_QUOTE_MAX bytes, cut on a UTF-8
 * character boundary, "..." when cut. */
struct quoted {
    char s[DEF_QUOTE_MAX + 4];
};

static const char *quote(struct quoted *q, const char *s)
{
    size_t n = strlen(s);

    if (n <= DEF_QUOTE_MAX) {
        memcpy(q->s, s, n + 1);
        return q->s;
    }
    n = wfo_utf8_cut(s, n, DEF_QUOTE_MAX);
    memcpy(q->s, s, n);
    memcpy(q->s + n, "...", 4);
    return q->s;
}

/* ---- values ------------------------------------------------------------ */

static int is_expr(const json_t *v)
{
    return json_is_string(v) && expr_is_expression(json_string_value(v));
}

static int has_nul(const json_t *v)
{
    return strlen(json_string_value(v)) != json_string_length(v);
}

/* 1 with *out when v is an integer (or a real with an integral value). */
static int get_int(const json_t *v, long long *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 1;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);

        if (isfinite(d) && d == floor(d) && fabs(d) < 9.0e18) {
            *out = (long long)d;
            return 1;
        }
    }
    return 0;
}

static int need_string(struct dctx *c, const json_t *v, const char **out)
{
    if (!json_is_string(v)) {
        problem(c, "must be a string");
        return -1;
    }
    if (json_string_length(v) == 0) {
        problem(c, "must not be empty");
        return -1;
    }
    if (has_nul(v)) {
        problem(c, "must not contain a NUL character");
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

/* A string that names something: not an expression. */
static int need_name(struct dctx *c, const json_t *v, const char **out)
{
    if (need_string(c, v, out) < 0)
        return -1;
    if (expr_is_expression(*out)) {
        problem(c, "must be a constant, not an expression");
        return -1;
    }
    return 0;
}

static int need_int(struct dctx *c, const json_t *v, long long lo, long long hi, long long *out)
{
    if (!get_int(v, out)) {
        problem(c, "must be an integer");
        return -1;
    }
    if (*out < lo) {
        problem(c, "must be at least %lld", lo);
        return -1;
    }
    if (*out > hi) {
        problem(c, "must be at most %lld", hi);
        return -1;
    }
    return 0;
}

static int need_number(struct dctx *c, const json_t *v, double *out)
{
    if (!json_is_number(v) || !isfinite(json_number_value(v))) {
        problem(c, "must be a number");
        return -1;
    }
    *out = json_number_value(v);
    return 0;
}

static int need_bool(struct dctx *c, const json_t *v, int *out)
{
    if (!json_is_boolean(v)) {
        problem(c, "must be a boolean");
        return -1;
    }
    *out = json_is_true(v);
    return 0;
}

/* A duration: "<number><unit>" or an integer of milliseconds (SPEC 2.1). */
static int need_duration(struct dctx *c, const json_t *v, int positive, int64_t *ms)
{
    struct quoted q;
    long long n;

    if (json_is_string(v)) {
        if (has_nul(v) || wfo_duration_parse(json_string_value(v), ms) < 0) {
            problem(c,
                    "bad duration \"%s\": expected <number><unit> with unit ms, s, m, h or d, "
                    "or an integer of milliseconds",
                    quote(&q, json_string_value(v)));
            return -1;
        }
    } else if (get_int(v, &n)) {
        if (n < 0) {
            problem(c, "must not be negative");
            return -1;
        }
        if (n > DEF_MAX_MS) {
            problem(c, "must be at most 100 years");
            return -1;
        }
        *ms = n;
    } else {
        problem(c, "must be a duration such as \"30s\" or an integer of milliseconds");
        return -1;
    }
    if (positive && *ms == 0) {
        problem(c, "must be greater than 0");
        return -1;
    }
    return 0;
}

/* A template whose constant value must be a duration. */
static void check_duration_tmpl(struct dctx *c, const json_t *v, int positive)
{
    int64_t ms;

    if (!is_expr(v))
        (void)need_duration(c, v, positive, &ms);
}

/* One expression of a template that does not compile, at its leaf. */
static void tmpl_bad(void *ud, const char *path, const char *message)
{
    struct dctx *c = ud;
    size_t old = c->path.len;

    (void)wfo_buf_adds(&c->path, path);
    problem(c, "%s", message);
    pop(c, old);
}

/* Compiles v into *out; each failing expression is reported at its leaf
 * (all of them: tmpl_check walks the template again when one fails). */
static void tmpl(struct dctx *c, json_t *v, struct tmpl **out)
{
    struct wfo_error err = WFO_ERROR_INIT;

    /* Compiling a jq program is slow: once the walk has failed for good, a
     * compiled template would be thrown away anyway. */
    if (c->full)
        return;
    tmpl_free(*out);
    *out = NULL;
    int rc = tmpl_compile(v, out, NULL, &err);
    if (rc < 0) {
        *out = NULL;
        if (tmpl_check(v, tmpl_bad, c) == 0) /* not an expression's fault */
            problem(c, "%s", err.message[0] ? err.message : wfo_strerror(rc));
    }
}

static void strv_free(char **v)
{
    if (!v || v == def_no_errors)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

/* A list of non-empty strings into a NULL-terminated array (invariant 2);
 * the array holds the good ones even when some are bad. */
static char **str_list(struct dctx *c, const json_t *v, int nonempty)
{
    char **out;
    size_t n, k = 0;

    if (!json_is_array(v)) {
        problem(c, "must be a list of strings");
        return wfo_calloc(1, sizeof(char *));
    }
    n = json_array_size(v);
    if (n == 0 && nonempty)
        problem(c, "must not be empty");
    out = wfo_calloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        size_t old = push_index(c, i);
        const char *s;

        if (need_string(c, json_array_get(v, i), &s) == 0)
            out[k++] = wfo_strdup(s);
        pop(c, old);
    }
    return out;
}

/* NULL when v is a good step or branch name, else why not. */
static const char *step_name_problem(const json_t *v)
{
    const char *s;

    if (!json_is_string(v))
        return "must be a string";
    if (json_string_length(v) == 0)
        return "must not be empty";
    s = json_string_value(v);
    if (has_nul(v))
        return "must not contain control characters";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        /* they build paths: PARENT/BRANCH/STEP, PARENT[INDEX]/STEP, and a
         * compensation's PATH:compensate[i] */
        if (*p == '/' || *p == '[' || *p == ']' || *p == ':')
            return "must not contain \"/\", \"[\", \"]\" or \":\"";
        if (*p < 0x20 || *p == 0x7F)
            return "must not contain control characters";
    }
    return NULL;
}

/* [a-z0-9][a-z0-9._-]{0,127} */
static int workflow_name_ok(const char *s, size_t len)
{
    if (len < 1 || len > 128 || strlen(s) != len)
        return 0;
    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
        return 0;
    for (size_t i = 1; i < len; i++) {
        char ch = s[i];

        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
              ch == '-'))
            return 0;
    }
    return 1;
}

static int need_workflow_name(struct dctx *c, const json_t *v, const char **out)
{
    if (!json_is_string(v)) {
        problem(c, "must be a string");
        return -1;
    }
    if (!workflow_name_ok(json_string_value(v), json_string_length(v))) {
        problem(c, "must be 1 to 128 characters of a-z, 0-9, \".\", \"_\" and \"-\", "
                   "starting with a letter or a digit");
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

/* A jump target: the name of a step of the same block (invariant 1). */
static void resolve(struct dctx *c, const json_t *v, const struct blk *b, int *out)
{
    struct quoted q;
    void *idx;

    if (!json_is_string(v)) {
        problem(c, "must be a string");
        return;
    }
    if (!b) /* a compensation: already reported as not allowed */
        return;
    idx = has_nul(v) ? NULL : wfo_map_get(&b->names, json_string_value(v));
    if (!idx) {
        problem(c, "step \"%s\" does not exist", quote(&q, json_string_value(v)));
        return;
    }
    *out = (int)((intptr_t)idx - 1);
}

/* ---- cron: common/cron.c ------------------------------------------------ */

static void cron_check(struct dctx *c, const char *text, struct wfo_cron *out)
{
    char why[200];
    struct quoted q;

    if (wfo_cron_parse(text, out, why, sizeof(why)) < 0)
        problem(c, "bad cron \"%s\": %s", quote(&q, text), why);
}

/* ---- steps ------------------------------------------------------------- */

static void block_compile(struct dctx *c, json_t *v, struct def_block *b);
static void step_compile(struct dctx *c, json_t *spec, struct def_step *s, const struct blk *b,
                         size_t index, const char *comp_of);

static void retry_compile(struct dctx *c, json_t *v, struct def_retry *r)
{
    int have_initial = 0, have_max = 0;
    const char *key;
    json_t *val;
    long long n;
    double d;

    if (!json_is_object(v)) {
        problem(c, "must be an object");
        return;
    }
    json_object_foreach(v, key, val)
    {
        size_t old = push_key(c, key);
        struct quoted q;

        if (strcmp(key, "max_attempts") == 0) {
            if (need_int(c, val, 1, DEF_MAX_ATTEMPTS, &n) == 0)
                r->max_attempts = (int)n;
        } else if (strcmp(key, "initial_interval") == 0) {
            if (need_duration(c, val, 0, &r->initial_ms) == 0)
                have_initial = 1;
        } else if (strcmp(key, "max_interval") == 0) {
            if (need_duration(c, val, 0, &r->max_ms) == 0)
                have_max = 1;
        } else if (strcmp(key, "backoff") == 0) {
            if (need_number(c, val, &d) == 0) {
                if (d < 1)
                    problem(c, "must be at least 1");
                else
                    r->backoff = d;
            }
        } else if (strcmp(key, "jitter") == 0) {
            if (need_number(c, val, &d) == 0) {
                if (d < 0 || d > 1)
                    problem(c, "must be between 0 and 1");
                else
                    r->jitter = d;
            }
        } else if (strcmp(key, "non_retryable") == 0) {
            strv_free(r->non_retryable);
            r->non_retryable = str_list(c, val, 0);
        } else {
            problem(c, "unknown field \"%s\"", quote(&q, key));
        }
        pop(c, old);
    }
    if (have_initial && !have_max && r->max_ms < r->initial_ms)
        r->max_ms = r->initial_ms;
    if (have_initial && have_max && r->max_ms < r->initial_ms)
        problem_at(c, "max_interval", "must not be less than initial_interval");
}

int def_retry_compile(const json_t *v, const char *path, struct def_retry *out,
                      struct def_problems *probs)
{
    struct dctx c = {.probs = probs};
    struct def_retry r = def_retry_default;

    wfo_buf_init(&c.path, 0);
    (void)wfo_buf_adds(&c.path, path);
    retry_compile(&c, (json_t *)v, &r);
    wfo_buf_release(&c.path);
    if (c.count) {
        strv_free(r.non_retryable);
        return WFO_EDEFINITION;
    }
    if (out)
        *out = r;
    else
        strv_free(r.non_retryable);
    return 0;
}

void def_retry_release(struct def_retry *r)
{
    strv_free(r->non_retryable);
    r->non_retryable = NULL;
}

/* The length of v, a list that must not be empty; 0 after reporting the
 * problem when it is not one. */
static size_t nonempty_list(struct dctx *c, json_t *v)
{
    if (!json_is_array(v)) {
        problem(c, "must be a list");
        return 0;
    }
    if (json_array_size(v) == 0)
        problem(c, "must not be empty");
    return json_array_size(v);
}

static void catch_compile(struct dctx *c, json_t *v, struct def_step *s, const struct blk *b)
{
    size_t n;

    if (!(n = nonempty_list(c, v)))
        return;
    s->catches = wfo_calloc(n, sizeof(*s->catches));
    s->n_catches = (int)n;
    for (size_t i = 0; i < n; i++) {
        struct def_catch *ca = &s->catches[i];
        json_t *e = json_array_get(v, i), *val;
        size_t old = push_index(c, i);
        const char *key;

        ca->next = JUMP_NEXT;
        if (!json_is_object(e)) {
            ca->errors = wfo_calloc(1, sizeof(char *));
            problem(c, "must be an object");
            pop(c, old);
            continue;
        }
        json_object_foreach(e, key, val)
        {
            size_t old2 = push_key(c, key);
            struct quoted q;

            if (strcmp(key, "errors") == 0)
                ca->errors = str_list(c, val, 1);
            else if (strcmp(key, "next") == 0)
                resolve(c, val, b, &ca->next);
            else
                problem(c, "unknown field \"%s\"", quote(&q, key));
            pop(c, old2);
        }
        if (!ca->errors) {
            ca->errors = wfo_calloc(1, sizeof(char *));
            problem_at(c, "errors", "is required");
        }
        if (!json_object_get(e, "next"))
            problem_at(c, "next", "is required");
        pop(c, old);
    }
}

static void compensate_compile(struct dctx *c, json_t *v, struct def_step *s)
{
    size_t n;
    int list = json_is_array(v);

    if (json_is_object(v)) {
        n = 1;
    } else if (list) {
        n = json_array_size(v);
        if (n == 0) {
            problem(c, "must not be empty");
            return;
        }
    } else {
        problem(c, "must be a step or a list of steps");
        return;
    }
    if (c->depth >= DEF_MAX_DEPTH) {
        problem(c, "blocks nested too deeply");
        return;
    }
    c->depth++;
    s->compensate = wfo_calloc(n, sizeof(*s->compensate));
    s->n_compensate = (int)n;
    s->compensate_list = list;
    for (size_t i = 0; i < n; i++) {
        size_t old = list ? push_index(c, i) : c->path.len;

        step_compile(c, list ? json_array_get(v, i) : v, &s->compensate[i], NULL, 0,
                     s->name ? s->name : "");
        pop(c, old);
    }
    c->depth--;
}

/* A leaf given to a program or a server as text: an argv element, an
 * environment variable, a header or query value. A number or a boolean
 * written in the definition is its JSON text there, as one an expression
 * yields (steps/command.c, steps/http.c). */
static void scalar_check(struct dctx *c, const json_t *v)
{
    if (!json_is_string(v) && !json_is_number(v) && !json_is_boolean(v))
        problem(c, "must be a string, number or boolean");
}

static void request_check(struct dctx *c, const json_t *v)
{
    static const char *const methods[] = {"GET",    "POST", "PUT",    "PATCH",
                                          "DELETE", "HEAD", "OPTIONS"};
    const char *key;
    json_t *val;

    json_object_foreach((json_t *)v, key, val)
    {
        size_t old = push_key(c, key);
        struct quoted q;

        if (strcmp(key, "method") == 0) {
            if (!json_is_string(val)) {
                problem(c, "must be a string");
            } else if (!is_expr(val)) {
                size_t i;

                for (i = 0; i < WFO_ARRAY_SIZE(methods); i++)
                    if (strcasecmp(methods[i], json_string_value(val)) == 0 && !has_nul(val))
                        break;
                if (i == WFO_ARRAY_SIZE(methods))
                    problem(c, "must be one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS");
            }
        } else if (strcmp(key, "url") == 0) {
            if (!json_is_string(val))
                problem(c, "must be a string");
            else if (!is_expr(val) && strncmp(json_string_value(val), "http://", 7) != 0 &&
                     strncmp(json_string_value(val), "https://", 8) != 0)
                problem(c, "must start with http:// or https://");
        } else if (strcmp(key, "headers") == 0 || strcmp(key, "query") == 0) {
            if (json_is_object(val)) {
                const char *k2;
                json_t *v2;

                json_object_foreach(val, k2, v2)
                {
                    size_t old2 = push_key(c, k2);

                    /* a number or boolean is sent as its text (steps/http.c);
                     * a query value may also be a list, one pair each */
                    if (strcmp(key, "query") == 0 && json_is_array(v2)) {
                        for (size_t i = 0; i < json_array_size(v2); i++) {
                            size_t old3 = push_index(c, i);

                            if (!json_is_null(json_array_get(v2, i))) /* left out */
                                scalar_check(c, json_array_get(v2, i));
                            pop(c, old3);
                        }
                    } else if (!json_is_null(v2)) {
                        scalar_check(c, v2);
                    }
                    pop(c, old2);
                }
            } else if (!is_expr(val)) {
                problem(c, "must be an object or an expression");
            }
        } else if (strcmp(key, "body") == 0) {
            /* any value */
        } else if (strcmp(key, "timeout") == 0) {
            check_duration_tmpl(c, val, 1);
        } else {
            problem(c, "unknown field \"%s\"", quote(&q, key));
        }
        pop(c, old);
    }
    if (!json_object_get(v, "url"))
        problem_at(c, "url", "is required");
}

/* An object of known fields whose `type` is required: emit's event, fail's
 * error. Or an expression for the whole. */
static void typed_object_check(struct dctx *c, const json_t *v, const char *const *fields)
{
    const char *key;
    json_t *val, *type;

    if (is_expr(v))
        return;
    if (!json_is_object(v)) {
        problem(c, "must be an object or an expression");
        return;
    }
    json_object_foreach((json_t *)v, key, val)
    {
        size_t old = push_key(c, key);
        struct quoted q;
        int known = 0;

        for (const char *const *f = fields; *f; f++)
            known |= strcmp(*f, key) == 0;
        if (!known)
            problem(c, "unknown field \"%s\"", quote(&q, key));
        else if ((strcmp(key, "type") == 0 || strcmp(key, "key") == 0 ||
                  strcmp(key, "message") == 0 || strcmp(key, "source") == 0) &&
                 !json_is_string(val))
            problem(c, "must be a string");
        else if (strcmp(key, "type") == 0 && json_string_length(val) == 0)
            problem(c, "must not be empty");
        pop(c, old);
    }
    type = json_object_get(v, "type");
    if (!type)
        problem_at(c, "type", "is required");
}

static void command_check(struct dctx *c, const json_t *v)
{
    if (is_expr(v))
        return;
    if (!json_is_array(v)) {
        problem(c, "must be a list of strings or an expression");
        return;
    }
    if (json_array_size(v) == 0) {
        problem(c, "must not be empty");
        return;
    }
    for (size_t i = 0; i < json_array_size(v); i++) {
        size_t old = push_index(c, i);

        scalar_check(c, json_array_get(v, i));
        pop(c, old);
    }
}

static void env_check(struct dctx *c, const json_t *v)
{
    const char *key;
    json_t *val;

    if (is_expr(v))
        return;
    if (!json_is_object(v)) {
        problem(c, "must be an object or an expression");
        return;
    }
    json_object_foreach((json_t *)v, key, val)
    {
        size_t old = push_key(c, key);

        if (key[0] == '\0' || strchr(key, '='))
            problem(c, "must be a variable name (not empty, no \"=\")");
        else
            scalar_check(c, val);
        pop(c, old);
    }
}

static void until_check(struct dctx *c, const json_t *v)
{
    struct quoted q;
    int64_t ms;

    if (!json_is_string(v)) {
        problem(c, "must be a string");
        return;
    }
    if (is_expr(v))
        return;
    if (has_nul(v) || wfo_time_parse(json_string_value(v), &ms) < 0)
        problem(c, "bad time \"%s\": expected an RFC 3339 time such as 2026-01-02T15:04:05Z",
                quote(&q, json_string_value(v)));
}

static void cases_compile(struct dctx *c, json_t *v, struct def_step *s, const struct blk *b)
{
    size_t n;

    if (!(n = nonempty_list(c, v)))
        return;
    s->cases = wfo_calloc(n, sizeof(*s->cases));
    s->n_cases = (int)n;
    for (size_t i = 0; i < n; i++) {
        struct def_case *cs = &s->cases[i];
        json_t *e = json_array_get(v, i), *val;
        size_t old = push_index(c, i);
        const char *key;

        cs->next = JUMP_NEXT;
        if (!json_is_object(e)) {
            problem(c, "must be an object");
            pop(c, old);
            continue;
        }
        json_object_foreach(e, key, val)
        {
            size_t old2 = push_key(c, key);
            struct quoted q;

            if (strcmp(key, "when") == 0)
                tmpl(c, val, &cs->when);
            else if (strcmp(key, "next") == 0)
                resolve(c, val, b, &cs->next);
            else
                problem(c, "unknown field \"%s\"", quote(&q, key));
            pop(c, old2);
        }
        if (!json_object_get(e, "when"))
            problem_at(c, "when", "is required");
        if (!json_object_get(e, "next"))
            problem_at(c, "next", "is required");
        pop(c, old);
    }
}

static void branches_compile(struct dctx *c, json_t *v, struct def_step *s)
{
    struct wfo_map seen = WFO_MAP_INIT; /* name -> index + 1 */
    size_t n;

    if (!(n = nonempty_list(c, v)))
        return;
    s->branches = wfo_calloc(n, sizeof(*s->branches));
    s->n_branches = (int)n;
    for (size_t i = 0; i < n; i++) {
        struct def_branch *br = &s->branches[i];
        json_t *e = json_array_get(v, i), *val;
        size_t old = push_index(c, i);
        const char *key;

        if (!json_is_object(e)) {
            problem(c, "must be an object");
            pop(c, old);
            continue;
        }
        json_object_foreach(e, key, val)
        {
            size_t old2 = push_key(c, key);
            struct quoted q;
            const char *why;

            if (strcmp(key, "name") == 0) {
                if ((why = step_name_problem(val))) {
                    problem(c, "%s", why);
                } else {
                    void *first = wfo_map_get(&seen, json_string_value(val));

                    br->name = wfo_strdup(json_string_value(val));
                    if (first) {
                        /* the branches' path: this one's without "[i].name" */
                        char *at = wfo_strndup(c->path.buf, old);

                        problem(c, "duplicate branch name \"%s\" (first at %s[%zu])",
                                quote(&q, br->name), at, (size_t)((intptr_t)first - 1));
                        free(at);
                    } else {
                        wfo_map_put(&seen, br->name, (void *)(intptr_t)(i + 1));
                    }
                }
            } else if (strcmp(key, "steps") == 0) {
                block_compile(c, val, &br->block);
            } else {
                problem(c, "unknown field \"%s\"", quote(&q, key));
            }
            pop(c, old2);
        }
        if (!json_object_get(e, "name"))
            problem_at(c, "name", "is required");
        if (!json_object_get(e, "steps"))
            problem_at(c, "steps", "is required");
        pop(c, old);
    }
    wfo_map_release(&seen);
}

/* What a field's compile function gets beside the value: the step, its
 * block (NULL for a compensation), its type (-1 when unknown) and where
 * `end: true` is noted. */
struct fctx {
    struct def_step *s;
    const struct blk *b;
    int type;
    int end;
};

struct field;
typedef void (*field_fn)(struct dctx *c, struct fctx *fc, json_t *v, const struct field *fd);

/* A row of the one table of step fields (step_keys, below the functions it
 * names): the name of a field, the JSON Schema of its value (def_schema()
 * builds the definitions' schema from it, served at GET
 * /v1/schemas/workflow.json; a schema names the shared $defs: duration,
 * retry, catch, compensate, steps, template), and how it compiles: fn,
 * with the template it fills (tf) or the member of struct def_step it sets
 * (off). Which kinds take a field is in the table of kinds (kinds.c). */
struct field {
    const char *name;
    const char *schema;
    field_fn fn;
    enum step_field tf;
    size_t off;
};

#define AT(fc, fd, type) ((type *)((char *)(fc)->s + (fd)->off))

/* A template, nothing more to check. */
static void f_tmpl(struct dctx *c, struct fctx *fc, json_t *v, const struct field *fd)
{
    tmpl(c, v, &fc->s->f[fd->tf]);
}

static void f_next(struct dctx *c, struct fctx *fc, json_t *v, const struct field *fd)
{
    if (fc->type >= 0 && step_kinds[fc->type].no_next)
        problem(c, "%s", step_kinds[fc->type].no_next);
    else
        resolve(c, v, fc->b, &fc->s->next);
}

static void f_end(struct dctx *c, struct fctx *fc, json_t *v, const struct field *fd)
{
    (void)need_bool(c, v, &fc->end);
}

static void f_retry(struct dctx *c, struct fctx *fc, json_t *v, const struct field *fd)
{
    fc->s->has_retry = 1;
    fc->s->retry_own = 1;
    retry_compile(c, v, &fc->s->retry);
}

/* A positive duration, in ms. */
static void f_msec(struct dctx *c, struct fctx *fc, json_t *v, const struct field *fd)
{
    (void)need_duration(c, v, 1, AT(fc, fd, int64_t));
}

static void f_bool(struct dctx *c, struct fctx *fc, json_t *v, const struct field *fd)
{
    (void)need_bool(c, v, AT(fc, fd, int));
}

/* A name: a queue, an event type, a signal. */
static void f_name(struct dctx *c, struct fctx *fc, json_t *v, const struct field *fd)
{
    const char *str;

    if (need_name(c, v, &str) == 0)
        *AT(fc, fd, char *) = wfo_strdup(str);
}

static void f_catch(struct dctx *c, struct fctx *fc, json_t *v, const struct field *fd)
{
    catch_compile(c, v, fc->s, fc->b);
}

static void f_compensate(struct dctx *c, struct fctx *fc, json_t *v, const struct field *fd)
{
    compensate_compile(c, v, fc->s);
}

/* vars and request: an object, or one expression (SPEC 2.1: every data
 * field is a template) whose value is checked when the step starts */
static void f_request(struct dctx *c, struct fctx *fc, json_t *v, const struct field *fd)
{
    if (!json_is_object(v) && !is_expr(v)) {
        problem(c, "must be an object or an expression");
        return;
    }
    if (json_is_object(v))
        request_check(c, v);
    tmpl(c, v, &fc->s->f[fd->tf]);
}

static void f_accept_status(struct dctx *c, struct fctx *fc, json_t *v, const struct field *fd)
{
    struct def_step *s = fc->s;
    long long n;

    if (!json_is_array(v)) {
        problem(c, "must be a list of integers");
        return;
    }
    if (json_array_size(v) == 0) {
        problem(c, "must not be empty");
        return;
    }
    s->accept_status = wfo_calloc(json_array_size(v), sizeof(int));
    for (size_t i = 0; i < json_array_size(v); i++) {
        size_t old = push_index(c, i);

        if (!get_int(json_array_get(v, i), &n) || n < 100 || n > 599)
            problem(c, "must be an integer from 100 to 599");
        else
            s->accept_status[s->n_accept_status++] = (int)n;
        pop(c, old);
    }
}

static void f_command(struct dctx *c, struct fctx *fc, json_t *v, const struct field *fd)
{
    command_check(c, v);
    tmpl(c, v, &fc->s->f[fd->tf]);
}

static void f_env(struct dctx *c, struct fctx *fc, json_t *v, const struct field *fd)
{
    env_check(c, v);
    tmpl(c, v, &fc->s->f[fd->tf]);
}

static void f_cwd(struct dctx *c, struct fctx *fc, json_t *v, const struct field *fd)
{
    if (!json_is_string(v))
        problem(c, "must be a string");
    else if (json_string_length(v) == 0)
        problem(c, "must not be empty");
    tmpl(c, v, &fc->s->f[fd->tf]);
}

static void f_vars(struct dctx *c, struct fctx *fc, json_t *v, const struct field *fd)
{
    if (!json_is_object(v) && !is_expr(v)) {
        problem(c, "must be an object or an expression");
        return;
    }
    tmpl(c, v, &fc->s->f[fd->tf]);
}

static void f_cases(struct dctx *c, struct fctx *fc, json_t *v, const struct field *fd)
{
    cases_compile(c, v, fc->s, fc->b);
}

static void f_default(struct dctx *c, struct fctx *fc, json_t *v, const struct field *fd)
{
    resolve(c, v, fc->b, &fc->s->default_next);
}

static void f_branches(struct dctx *c, struct fctx *fc, json_t *v, const struct field *fd)
{
    branches_compile(c, v, fc->s);
}

static void f_mode(struct dctx *c, struct fctx *fc, json_t *v, const struct field *fd)
{
    if (!json_is_string(v))
        problem(c, "must be a string");
    else if (strcmp(json_string_value(v), "any") == 0 && !has_nul(v))
        fc->s->mode_any = 1;
    else if (strcmp(json_string_value(v), "all") != 0 || has_nul(v))
        problem(c, "must be one of all, any");
}

static void f_items(struct dctx *c, struct fctx *fc, json_t *v, const struct field *fd)
{
    if (!json_is_array(v) && !is_expr(v))
        problem(c, "must be a list or an expression");
    tmpl(c, v, &fc->s->f[fd->tf]);
}

static void f_concurrency(struct dctx *c, struct fctx *fc, json_t *v, const struct field *fd)
{
    long long n;

    if (need_int(c, v, 1, DEF_MAX_CONCURRENCY, &n) == 0)
        fc->s->concurrency = (int)n;
}

static void f_steps(struct dctx *c, struct fctx *fc, json_t *v, const struct field *fd)
{
    block_compile(c, v, &fc->s->body);
}

static void f_duration(struct dctx *c, struct fctx *fc, json_t *v, const struct field *fd)
{
    check_duration_tmpl(c, v, 0);
    tmpl(c, v, &fc->s->f[fd->tf]);
}

static void f_until(struct dctx *c, struct fctx *fc, json_t *v, const struct field *fd)
{
    until_check(c, v);
    tmpl(c, v, &fc->s->f[fd->tf]);
}

static void f_event(struct dctx *c, struct fctx *fc, json_t *v, const struct field *fd)
{
    static const char *const fields[] = {"type", "key", "data", "source", NULL};

    typed_object_check(c, v, fields);
    tmpl(c, v, &fc->s->f[fd->tf]);
}

static void f_workflow(struct dctx *c, struct fctx *fc, json_t *v, const struct field *fd)
{
    const char *str;

    if (need_workflow_name(c, v, &str) == 0)
        fc->s->workflow = wfo_strdup(str);
}

static void f_version(struct dctx *c, struct fctx *fc, json_t *v, const struct field *fd)
{
    long long n;

    if (need_int(c, v, 1, INT_MAX, &n) == 0)
        fc->s->workflow_version = (int)n;
}

static void f_error(struct dctx *c, struct fctx *fc, json_t *v, const struct field *fd)
{
    static const char *const fields[] = {"type", "message", "details", NULL};

    typed_object_check(c, v, fields);
    tmpl(c, v, &fc->s->f[fd->tf]);
}

#define MEMBER(m) .off = offsetof(struct def_step, m)

/* Rows leave the fields they do not use (tf, off) zero. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
static const struct field step_keys[K__COUNT] = {
    [K_NAME] = {"name", "{\"type\": \"string\", \"minLength\": 1}"},
    [K_TYPE] = {"type", NULL},
    [K_INPUT] = {"input", "{\"$ref\": \"#/$defs/template\"}", f_tmpl, F_INPUT},
    [K_OUTPUT] = {"output", "{\"$ref\": \"#/$defs/template\"}", f_tmpl, F_OUTPUT},
    [K_NEXT] = {"next", "{\"type\": \"string\"}", f_next},
    [K_END] = {"end", "{\"type\": \"boolean\"}", f_end},
    [K_RETRY] = {"retry", "{\"$ref\": \"#/$defs/retry\"}", f_retry},
    [K_TIMEOUT] = {"timeout", "{\"$ref\": \"#/$defs/duration\"}", f_msec, MEMBER(timeout_ms)},
    [K_CATCH] = {"catch", "{\"$ref\": \"#/$defs/catch\"}", f_catch},
    [K_COMPENSATE] = {"compensate", "{\"$ref\": \"#/$defs/compensate\"}", f_compensate},
    [K_COMPENSATE_IN_FLIGHT] = {"compensate_in_flight", "{\"type\": \"boolean\"}", f_bool,
                                MEMBER(compensate_in_flight)},
    [K_IF] = {"if", "{\"$ref\": \"#/$defs/template\"}", f_tmpl, F_IF},
    [K_QUEUE] = {"queue", "{\"type\": \"string\", \"minLength\": 1}", f_name, MEMBER(queue)},
    [K_SCHEDULE_TIMEOUT] = {"schedule_timeout", "{\"$ref\": \"#/$defs/duration\"}", f_msec,
                            MEMBER(schedule_timeout_ms)},
    [K_HEARTBEAT_TIMEOUT] = {"heartbeat_timeout", "{\"$ref\": \"#/$defs/duration\"}", f_msec,
                             MEMBER(heartbeat_timeout_ms)},
    [K_REQUEST] = {"request",
                   "{\"type\": [\"object\", \"string\"], \"properties\": {\"method\": {}, "
                   "\"url\": {}, \"headers\": {}, \"query\": {}, \"body\": {}, \"timeout\": {}}, "
                   "\"additionalProperties\": false}",
                   f_request, F_REQUEST},
    [K_ACCEPT_STATUS] = {"accept_status", "{\"type\": \"array\"}", f_accept_status},
    [K_COMMAND] = {"command", "{\"type\": [\"array\", \"string\"]}", f_command, F_COMMAND},
    [K_STDIN] = {"stdin", "{\"$ref\": \"#/$defs/template\"}", f_tmpl, F_STDIN},
    [K_ENV] = {"env", "{\"type\": [\"object\", \"string\"]}", f_env, F_ENV},
    [K_CWD] = {"cwd", "{\"type\": \"string\"}", f_cwd, F_CWD},
    [K_VARS] = {"vars", "{\"type\": [\"object\", \"string\"]}", f_vars, F_VARS},
    [K_CASES] = {"cases",
                 "{\"type\": \"array\", \"items\": {\"type\": \"object\", \"required\": "
                 "[\"when\", \"next\"], \"properties\": {\"when\": {}, \"next\": {\"type\": "
                 "\"string\"}}, \"additionalProperties\": false}}",
                 f_cases},
    [K_DEFAULT] = {"default", "{\"type\": \"string\"}", f_default},
    [K_BRANCHES] = {"branches",
                    "{\"type\": \"array\", \"minItems\": 1, \"items\": {\"type\": \"object\", "
                    "\"required\": [\"name\", \"steps\"], \"properties\": {\"name\": {\"type\": "
                    "\"string\"}, \"steps\": {\"$ref\": \"#/$defs/steps\"}}, "
                    "\"additionalProperties\": false}}",
                    f_branches},
    [K_MODE] = {"mode", "{\"enum\": [\"all\", \"any\"]}", f_mode},
    [K_ITEMS] = {"items", "{\"$ref\": \"#/$defs/template\"}", f_items, F_ITEMS},
    [K_CONCURRENCY] = {"concurrency", "{\"type\": \"integer\", \"minimum\": 1}", f_concurrency},
    [K_STEPS] = {"steps", "{\"$ref\": \"#/$defs/steps\"}", f_steps},
    [K_DURATION] = {"duration", "{\"$ref\": \"#/$defs/duration\"}", f_duration, F_DURATION},
    [K_UNTIL] = {"until", "{\"type\": \"string\"}", f_until, F_UNTIL},
    [K_EVENT_TYPE] = {"event", "{\"type\": [\"string\", \"object\"]}", f_name, MEMBER(event_type)},
    [K_EVENT] = {"event", "{\"type\": [\"string\", \"object\"]}", f_event, F_EVENT},
    [K_KEY] = {"key", "{\"$ref\": \"#/$defs/template\"}", f_tmpl, F_KEY},
    [K_SIGNAL] = {"signal", "{\"type\": \"string\"}", f_name, MEMBER(signal)},
    [K_WORKFLOW] = {"workflow", "{\"type\": \"string\"}", f_workflow},
    [K_VERSION] = {"version", "{\"type\": \"integer\", \"minimum\": 1}", f_version},
    [K_ERROR] = {"error", "{\"type\": [\"object\", \"string\"]}", f_error, F_ERROR},
};
#pragma GCC diagnostic pop

/* The field named key that steps of type t take, else any field of that
 * name (t < 0: the first); K_NONE when no kind has one. */
static enum step_key key_lookup(const char *key, int t)
{
    enum step_key any = K_NONE;

    for (int k = K_NONE + 1; k < K__COUNT; k++) {
        if (strcmp(step_keys[k].name, key) != 0)
            continue;
        if (t >= 0 && kind_has_field((enum step_type)t, (enum step_key)k))
            return (enum step_key)k;
        if (any == K_NONE)
            any = (enum step_key)k;
    }
    return any;
}

static int type_lookup(const json_t *v)
{
    for (int t = 0; t < STEP__COUNT; t++)
        if (strcmp(step_kinds[t].name, json_string_value(v)) == 0)
            return has_nul(v) ? -1 : t;
    return -1;
}

/* The fields a step type cannot do without; then the exclusive pair and
 * the field that goes with another (kinds.c). */
static void step_required(struct dctx *c, const json_t *spec, int type)
{
    const struct step_kind *kd = &step_kinds[type];

    for (int k = K_NONE + 1; k < K__COUNT; k++)
        if ((kd->required >> k & 1) && !json_object_get(spec, step_keys[k].name))
            problem_at(c, step_keys[k].name, "is required");

    if (kd->either[0]) {
        const char *a = step_keys[kd->either[0]].name, *b = step_keys[kd->either[1]].name;
        int has_a = json_object_get(spec, a) != NULL;
        int has_b = json_object_get(spec, b) != NULL;

        if (!has_a && !has_b) {
            problem(c, "needs \"%s\" or \"%s\"", a, b);
        } else if (has_a && has_b) {
            problem_at(c, b, "cannot be used with \"%s\"", a);
        } else if (kd->goes_with[0]) {
            const char *f = step_keys[kd->goes_with[0]].name;
            const char *with = step_keys[kd->goes_with[1]].name;
            int has_f = json_object_get(spec, f) != NULL;
            int has_with = json_object_get(spec, with) != NULL;

            if (has_with && !has_f)
                problem_at(c, f, "is required with \"%s\"", with);
            else if (!has_with && has_f)
                problem_at(c, f, "is only used with \"%s\"", with);
        }
    }
}

/* Compiles one step; the path points at it. b is its block, NULL for a
 * compensation, whose name is then comp_of (invariant 4). */
static void step_compile(struct dctx *c, json_t *spec, struct def_step *s, const struct blk *b,
                         size_t index, const char *comp_of)
{
    json_t *name, *type, *val;
    const char *key, *why;
    struct quoted q;
    int t = -1;
    struct fctx fc = {s, b, -1, 0};

    s->next = JUMP_NEXT;
    s->default_next = JUMP_NEXT;
    s->concurrency = 10;
    s->spec = spec;
    s->retry = def_retry_default;
    s->retry.non_retryable = wfo_calloc(1, sizeof(char *));
    if (comp_of)
        s->name = wfo_strdup(comp_of);
    if (!json_is_object(spec)) {
        problem(c, "must be an object");
        return;
    }

    name = json_object_get(spec, "name");
    if (!name) {
        if (!comp_of)
            problem_at(c, "name", "is required");
    } else if ((why = step_name_problem(name))) {
        problem_at(c, "name", "%s", why);
    } else if (!comp_of) {
        void *first = wfo_map_get(&b->names, json_string_value(name));

        s->name = wfo_strdup(json_string_value(name));
        if (first && (size_t)((intptr_t)first - 1) != index) {
            char *at = wfo_strndup(c->path.buf, b->path_len);

            problem_at(c, "name", "duplicate step name \"%s\" (first at %s[%zu])",
                       quote(&q, s->name), at, (size_t)((intptr_t)first - 1));
            free(at);
        }
    }

    type = json_object_get(spec, "type");
    if (!type) {
        problem_at(c, "type", "is required");
    } else if (!json_is_string(type)) {
        problem_at(c, "type", "must be a string");
    } else if ((t = type_lookup(type)) < 0) {
        problem_at(c, "type", "unknown step type \"%s\"", quote(&q, json_string_value(type)));
    } else {
        s->type = (enum step_type)t;
        fc.type = t;
        /* a compensation is one step run to its end: no control flow, no
         * blocks (docs/implementation/compensation.md) */
        if (comp_of && step_kinds[t].not_compensation)
            problem_at(c, "type", "a compensation cannot be a %s step", step_kinds[t].name);
    }

    json_object_foreach(spec, key, val)
    {
        enum step_key k = key_lookup(key, t);
        size_t old;

        if (k == K_NAME || k == K_TYPE)
            continue;
        old = push_key(c, key);
        if (k == K_NONE)
            problem(c, "unknown field \"%s\"", quote(&q, key));
        else if (t < 0 && !(KEYS_COMMON >> k & 1))
            ; /* a field of some type, but the type is unknown: said already */
        else if (t >= 0 && !kind_has_field((enum step_type)t, k))
            problem(c, "\"%s\" is not a field of %s steps", key, step_kinds[t].name);
        else if (comp_of && (KEYS_NOT_IN_COMPENSATION >> k & 1))
            problem(c, "not allowed in a compensation");
        else
            step_keys[k].fn(c, &fc, val, &step_keys[k]);
        pop(c, old);
    }

    if (t >= 0)
        step_required(c, spec, t);
    if (fc.end) {
        if (json_object_get(spec, "next"))
            problem_at(c, "end", "cannot be true when \"next\" is set");
        else
            s->next = JUMP_END;
    }
    /* an attempt that ends with an outcome from outside may be retried */
    if ((t >= 0 && step_kinds[t].ends == KE_RESULT) || comp_of)
        s->has_retry = 1;
    if (!s->has_retry) {
        char **none = s->retry.non_retryable;

        memset(&s->retry, 0, sizeof(s->retry));
        s->retry.max_attempts = 1;
        s->retry.non_retryable = none;
    }
}

/* Compiles a list of steps; the path points at it ("steps"). */
static void block_compile(struct dctx *c, json_t *v, struct def_block *b)
{
    struct blk blk = {WFO_MAP_INIT, c->path.len};
    size_t n;

    if (!json_is_array(v)) {
        problem(c, "must be a list of steps");
        return;
    }
    n = json_array_size(v);
    if (n == 0) {
        problem(c, "must not be empty");
        return;
    }
    if (n > INT_MAX) {
        problem(c, "too many steps");
        return;
    }
    if (c->depth >= DEF_MAX_DEPTH) {
        problem(c, "blocks nested too deeply");
        return;
    }
    c->depth++;
    /* Names first: a jump may point forwards. The first of two steps with
     * one name keeps it. */
    for (size_t i = 0; i < n; i++) {
        json_t *name = json_object_get(json_array_get(v, i), "name");

        if (!step_name_problem(name) && !wfo_map_get(&blk.names, json_string_value(name)))
            wfo_map_put(&blk.names, json_string_value(name), (void *)(intptr_t)(i + 1));
    }
    b->steps = wfo_calloc(n, sizeof(*b->steps));
    b->n = (int)n;
    for (size_t i = 0; i < n; i++) {
        size_t old = push_index(c, i);

        step_compile(c, json_array_get(v, i), &b->steps[i], &blk, i, NULL);
        pop(c, old);
    }
    wfo_map_release(&blk.names);
    c->depth--;
}

/* ---- the document ------------------------------------------------------ */

static void triggers_compile(struct dctx *c, json_t *v, struct def *d)
{
    size_t n;

    if (!json_is_array(v)) {
        problem(c, "must be a list");
        return;
    }
    n = json_array_size(v);
    if (n == 0)
        return;
    d->triggers = wfo_calloc(n, sizeof(*d->triggers));
    d->n_triggers = (int)n;
    for (size_t i = 0; i < n; i++) {
        struct def_trigger *tr = &d->triggers[i];
        json_t *e = json_array_get(v, i), *val;
        size_t old = push_index(c, i);
        const char *key, *str;

        if (!json_is_object(e)) {
            problem(c, "must be an object");
            pop(c, old);
            continue;
        }
        json_object_foreach(e, key, val)
        {
            size_t old2 = push_key(c, key);
            struct quoted q;

            if (strcmp(key, "event") == 0) {
                if (need_name(c, val, &str) == 0)
                    tr->event = wfo_strdup(str);
            } else if (strcmp(key, "cron") == 0) {
                if (!json_is_string(val)) {
                    problem(c, "must be a string");
                } else if (has_nul(val)) {
                    problem(c, "must not contain a NUL character");
                } else {
                    tr->cron = wfo_strdup(json_string_value(val));
                    cron_check(c, tr->cron, &tr->spec);
                }
            } else if (strcmp(key, "input") == 0) {
                tmpl(c, val, &tr->input);
            } else {
                problem(c, "unknown field \"%s\"", quote(&q, key));
            }
            pop(c, old2);
        }
        if (!json_object_get(e, "event") && !json_object_get(e, "cron"))
            problem(c, "needs \"event\" or \"cron\"");
        else if (json_object_get(e, "event") && json_object_get(e, "cron"))
            problem_at(c, "cron", "cannot be used with \"event\"");
        pop(c, old);
    }
}

static void top_field(struct dctx *c, struct def *d, const char *key, json_t *v)
{
    struct quoted q;
    const char *str;

    if (strcmp(key, "name") == 0) {
        if (need_workflow_name(c, v, &str) == 0)
            d->name = wfo_strdup(str);
    } else if (strcmp(key, "description") == 0) {
        if (!json_is_string(v))
            problem(c, "must be a string");
        else
            d->description = wfo_strdup(json_string_value(v));
    } else if (strcmp(key, "timeout") == 0) {
        (void)need_duration(c, v, 1, &d->timeout_ms);
    } else if (strcmp(key, "on_failure") == 0) {
        if (!json_is_string(v))
            problem(c, "must be a string");
        else if (strcmp(json_string_value(v), "fail") == 0 && !has_nul(v))
            d->on_failure_compensate = 0;
        else if (strcmp(json_string_value(v), "compensate") != 0 || has_nul(v))
            problem(c, "must be one of compensate, fail");
    } else if (strcmp(key, "output") == 0) {
        tmpl(c, v, &d->output);
    } else if (strcmp(key, "triggers") == 0) {
        triggers_compile(c, v, d);
    } else if (strcmp(key, "steps") == 0) {
        block_compile(c, v, &d->steps);
    } else if (strcmp(key, "version") == 0) {
        problem(c, "unknown field \"version\": versions are numbered by the registry");
    } else {
        problem(c, "unknown field \"%s\"", quote(&q, key));
    }
}

int def_compile(json_t *doc, struct def **out, struct def_problems *probs)
{
    struct dctx c = {.probs = probs};
    struct def *d = wfo_calloc(1, sizeof(*d));
    const char *key;
    char *canon = NULL;
    json_t *v;
    int rc = WFO_EDEFINITION;

    *out = NULL;
    wfo_buf_init(&c.path, 0);
    d->refs = 1;
    d->on_failure_compensate = 1;
    if (!json_is_object(doc)) {
        problem(&c, "the document must be an object");
        goto out;
    }
    d->doc = json_incref(doc);
    json_object_foreach(doc, key, v)
    {
        size_t old = push_key(&c, key);

        top_field(&c, d, key, v);
        pop(&c, old);
    }
    if (!json_object_get(doc, "name"))
        problem_at(&c, "name", "is required");
    if (!json_object_get(doc, "steps"))
        problem_at(&c, "steps", "is required");
    if (c.count)
        goto out;

    /* Key order must not make a new version. */
    canon = json_dumps(doc, JSON_SORT_KEYS | JSON_COMPACT);
    if (!canon) {
        problem(&c, "the document cannot be serialized");
        goto out;
    }
    wfo_sha256_hex(canon, strlen(canon), d->hash);
    *out = d;
    d = NULL;
    rc = 0;
out:
    free(canon);
    def_unref(d);
    wfo_buf_release(&c.path);
    return rc;
}

/* ---- lifetime and lookups ---------------------------------------------- */

static void block_release(struct def_block *b);

static void step_release(struct def_step *s)
{
    free(s->name);
    for (int f = 0; f < F__COUNT; f++)
        tmpl_free(s->f[f]);
    strv_free(s->retry.non_retryable);
    for (int i = 0; i < s->n_catches; i++)
        strv_free(s->catches[i].errors);
    free(s->catches);
    for (int i = 0; i < s->n_compensate; i++)
        step_release(&s->compensate[i]);
    free(s->compensate);
    free(s->queue);
    free(s->accept_status);
    for (int i = 0; i < s->n_cases; i++)
        tmpl_free(s->cases[i].when);
    free(s->cases);
    for (int i = 0; i < s->n_branches; i++) {
        free(s->branches[i].name);
        block_release(&s->branches[i].block);
    }
    free(s->branches);
    block_release(&s->body);
    free(s->event_type);
    free(s->signal);
    free(s->workflow);
}

static void block_release(struct def_block *b)
{
    for (int i = 0; i < b->n; i++)
        step_release(&b->steps[i]);
    free(b->steps);
    b->steps = NULL;
    b->n = 0;
}

struct def *def_ref(struct def *d)
{
    if (d)
        __atomic_add_fetch(&d->refs, 1, __ATOMIC_RELAXED);
    return d;
}

void def_unref(struct def *d)
{
    if (!d || __atomic_sub_fetch(&d->refs, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    free(d->name);
    free(d->description);
    tmpl_free(d->output);
    block_release(&d->steps);
    for (int i = 0; i < d->n_triggers; i++) {
        free(d->triggers[i].event);
        free(d->triggers[i].cron);
        tmpl_free(d->triggers[i].input);
    }
    free(d->triggers);
    json_decref(d->doc);
    free(d);
}

int def_block_find(const struct def_block *b, const char *name)
{
    if (!b || !name)
        return -1;
    for (int i = 0; i < b->n; i++)
        if (b->steps[i].name && strcmp(b->steps[i].name, name) == 0)
            return i;
    return -1;
}

struct queues {
    const char **v;
    size_t n, alloc;
    struct wfo_map seen;
};

static void queues_block(struct queues *q, const struct def_block *b);

static void queues_step(struct queues *q, const struct def_step *s)
{
    if (s->type == STEP_TASK && s->queue && !wfo_map_get(&q->seen, s->queue)) {
        wfo_map_put(&q->seen, s->queue, (void *)1);
        if (q->n + 1 >= q->alloc) {
            q->alloc = q->alloc ? 2 * q->alloc : 8;
            q->v = wfo_realloc(q->v, q->alloc * sizeof(*q->v));
        }
        q->v[q->n++] = s->queue;
    }
    for (int i = 0; i < s->n_compensate; i++)
        queues_step(q, &s->compensate[i]);
    for (int i = 0; i < s->n_branches; i++)
        queues_block(q, &s->branches[i].block);
    queues_block(q, &s->body);
}

static void queues_block(struct queues *q, const struct def_block *b)
{
    for (int i = 0; i < b->n; i++)
        queues_step(q, &b->steps[i]);
}

const char **def_task_queues(const struct def *d)
{
    struct queues q = {NULL, 0, 0, WFO_MAP_INIT};

    queues_block(&q, &d->steps);
    wfo_map_release(&q.seen);
    if (!q.v)
        q.v = wfo_malloc(sizeof(*q.v));
    q.v[q.n] = NULL;
    return q.v;
}

/* ---- the JSON Schema of definitions ------------------------------------ */

/* The schema of one step of type t; comp: as a compensation (no name
 * needed; no control flow, no blocks, SPEC 2.4). */
static json_t *schema_step(int t, int comp)
{
    json_t *props = json_object(), *req = json_array();
    for (int k = K_NONE + 1; k < K__COUNT; k++) {
        if (!kind_has_field((enum step_type)t, (enum step_key)k))
            continue;
        if (comp && (KEYS_NOT_IN_COMPENSATION >> k & 1))
            continue;
        json_t *v = NULL;
        if (k == K_TYPE)
            v = json_pack("{s:s}", "const", step_kinds[t].name);
        else
            wfo_json_parse(step_keys[k].schema, strlen(step_keys[k].schema), &v, NULL);
        json_object_set_new(props, step_keys[k].name, v ? v : json_object());
    }
    if (!comp)
        json_array_append_new(req, json_string("name"));
    json_array_append_new(req, json_string("type"));
    for (int k = K_NONE + 1; k < K__COUNT; k++)
        if (step_kinds[t].required >> k & 1)
            json_array_append_new(req, json_string(step_keys[k].name));
    return json_pack("{s:s, s:o, s:o, s:b}", "type", "object", "properties", props, "required", req,
                     "additionalProperties", 0);
}

/* A step of any type: `type` picks the schema of its kind (if/then, so that
 * an editor names the field that is wrong rather than every kind). */
static json_t *schema_any_step(int comp)
{
    json_t *types = json_array(), *all = json_array();
    for (int t = 0; t < STEP__COUNT; t++) {
        if (comp && step_kinds[t].not_compensation)
            continue;
        json_array_append_new(types, json_string(step_kinds[t].name));
        json_array_append_new(all, json_pack("{s:{s:{s:{s:s}}, s:[s]}, s:o}", "if", "properties",
                                             "type", "const", step_kinds[t].name, "required",
                                             "type", "then", schema_step(t, comp)));
    }
    return json_pack("{s:s, s:[s], s:{s:{s:o}}, s:o}", "type", "object", "required", "type",
                     "properties", "type", "enum", types, "allOf", all);
}

json_t *def_schema(const char *id)
{
    json_t *defs = json_object();
    json_object_set_new(defs, "template",
                        json_pack("{s:s}", "description",
                                  "any JSON value; a string that is all ${ ... } is a jq "
                                  "expression, evaluated when the step starts"));
    json_object_set_new(defs, "duration",
                        json_pack("{s:s, s:[s, s], s:i}", "description",
                                  "<number><unit> (ms s m h d), or milliseconds", "type", "string",
                                  "integer", "minimum", 0));
    json_object_set_new(
        defs, "retry",
        json_pack("{s:s, s:{s:{s:s, s:i}, s:{s:s}, s:{s:s, s:i}, s:{s:s}, s:{s:s, s:i}, "
                  "s:{s:s, s:{s:s}}}, s:b}",
                  "type", "object", "properties", "max_attempts", "type", "integer", "minimum", 1,
                  "initial_interval", "$ref", "#/$defs/duration", "backoff", "type", "number",
                  "minimum", 1, "max_interval", "$ref", "#/$defs/duration", "jitter", "type",
                  "number", "minimum", 0, "non_retryable", "type", "array", "items", "type",
                  "string", "additionalProperties", 0));
    json_object_set_new(defs, "catch",
                        json_pack("{s:s, s:{s:s, s:[s, s], s:{s:{s:s, s:{s:s}}, s:{s:s}}, s:b}}",
                                  "type", "array", "items", "type", "object", "required", "errors",
                                  "next", "properties", "errors", "type", "array", "items", "type",
                                  "string", "next", "type", "string", "additionalProperties", 0));
    json_object_set_new(defs, "step", schema_any_step(0));
    json_object_set_new(defs, "compensation_step", schema_any_step(1));
    json_object_set_new(defs, "compensate",
                        json_pack("{s:[{s:s}, {s:s, s:{s:s}}]}", "oneOf", "$ref",
                                  "#/$defs/compensation_step", "type", "array", "items", "$ref",
                                  "#/$defs/compensation_step"));
    json_object_set_new(defs, "steps",
                        json_pack("{s:s, s:i, s:{s:s}}", "type", "array", "minItems", 1, "items",
                                  "$ref", "#/$defs/step"));
    json_t *trigger =
        json_pack("{s:s, s:{s:{s:s}, s:{s:s}, s:{s:s}}, s:b, s:[{s:[s]}, {s:[s]}]}", "type",
                  "object", "properties", "event", "type", "string", "cron", "type", "string",
                  "input", "$ref", "#/$defs/template", "additionalProperties", 0, "oneOf",
                  "required", "event", "required", "cron");
    return json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:[s, s], s:{s:{s:s, s:s}, s:{s:s}, s:{s:s}, s:{s:[s, s]}, "
        "s:{s:s}, s:{s:s, s:o}, s:{s:s}}, s:b, s:o}",
        "$schema", "https://json-schema.org/draft/2020-12/schema", "$id", id ? id : "workflow.json",
        "title", "wfo workflow definition", "description",
        "A workflow definition (SPEC 2), as YAML or JSON. Generated from the step-field table "
        "of src/core/def.c.",
        "type", "object", "required", "name", "steps", "properties", "name", "type", "string",
        "pattern", "^[a-z0-9][a-z0-9._-]{0,127}$", "description", "type", "string", "timeout",
        "$ref", "#/$defs/duration", "on_failure", "enum", "compensate", "fail", "output", "$ref",
        "#/$defs/template", "triggers", "type", "array", "items", trigger, "steps", "$ref",
        "#/$defs/steps", "additionalProperties", 0, "$defs", defs);
}

/* Path (as wfo validate writes it) of the first step of type t in b,
 * written to out; 1 when there is one. */
static int find_type_block(const struct def_block *b, enum step_type t, const char *prefix,
                           struct wfo_buf *out);

static int find_type_step(const struct def_step *s, enum step_type t, const char *path,
                          struct wfo_buf *out)
{
    struct wfo_buf p = WFO_BUF_INIT;
    int found = 0;
    if (s->type == t) {
        wfo_buf_adds(out, path);
        return 1;
    }
    for (int i = 0; i < s->n_compensate && !found; i++) {
        wfo_buf_reset(&p);
        if (s->compensate_list) /* as wfo validate writes it */
            wfo_buf_addf(&p, "%s.compensate[%d]", path, i);
        else
            wfo_buf_addf(&p, "%s.compensate", path);
        found = find_type_step(&s->compensate[i], t, p.buf, out);
    }
    for (int i = 0; i < s->n_branches && !found; i++) {
        wfo_buf_reset(&p);
        wfo_buf_addf(&p, "%s.branches[%d].", path, i);
        found = find_type_block(&s->branches[i].block, t, p.buf, out);
    }
    if (!found) {
        wfo_buf_reset(&p);
        wfo_buf_addf(&p, "%s.", path);
        found = find_type_block(&s->body, t, p.buf, out);
    }
    wfo_buf_release(&p);
    return found;
}

static int find_type_block(const struct def_block *b, enum step_type t, const char *prefix,
                           struct wfo_buf *out)
{
    struct wfo_buf p = WFO_BUF_INIT;
    int found = 0;
    for (int i = 0; i < b->n && !found; i++) {
        wfo_buf_reset(&p);
        wfo_buf_addf(&p, "%ssteps[%d]", prefix, i);
        found = find_type_step(&b->steps[i], t, p.buf, out);
    }
    wfo_buf_release(&p);
    return found;
}

int def_find_type(const struct def *d, enum step_type t, struct wfo_buf *path)
{
    return find_type_block(&d->steps, t, "", path);
}
