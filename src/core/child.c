/*
 * child.c - child executions: what the engine does for `workflow` steps
 * (SPEC 2.2, 2.5; docs/implementation/state_management.md, "Child
 * workflows"). The state machine (fsm.c) only names a child and asks for
 * it; this file, on the engine thread, acts on those effects in the round
 * that gathered them, so that each is committed in one transaction with
 * the transition that caused it:
 *
 *   ACT_CHILD  (a `workflow` step's attempt started)  -> the child is
 *              created and started (its id derived from the attempt:
 *              fsm_child_id), or the attempt fails with ChildFailed when
 *              its workflow cannot be found;
 *   ACT_CANCEL / ACT_STOP of a `workflow` step (its parent cancelled,
 *              terminated or failed, or the step's timeout) -> the child
 *              is cancelled, or terminated when its parent was;
 *   ACT_ENDED  of a child -> its parent's step gets its outcome
 *              (fsm_result): the child's output, or ChildFailed with the
 *              child's error in details.
 *
 * Each of these may make more (a grandchild starts, a parent ends and
 * tells its own parent), so child_round() loops until no new effect is
 * left. Invariants:
 *   K1. A child exists exactly when the step's start that names it is
 *       committed: both are in one batch. A restart never starts an
 *       attempt of a `workflow` step again (recover.c runs KE_RESULT steps
 *       only), and the child's id is derived from (parent, step, token),
 *       so no attempt has two children.
 *   K2. A child's end and its parent step's outcome are in one batch,
 *       unless reading the parent failed (E5): the outcome is then kept as
 *       a result (results_kept) and tried again, and a restart looks at
 *       the child of every waiting `workflow` step (child_recover).
 *   K3. An outcome is taken only by the attempt that started the child
 *       (child_token: the step's child is that id), and only while it runs
 *       (fsm_result, I1): a late outcome of an old child changes nothing.
 */
#include "common/compat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"
#include "kinds.h"
#include "../common/log.h"

/* Children started within one round deeper than this fail (a workflow
 * that starts itself at once would otherwise never leave the round). */
#define CHILD_DEPTH_MAX 32

int64_t child_token(struct execution *x, const char *path, const char *child)
{
    struct step_state *st = exec_step(x, path);
    if (!st || st->def->type != STEP_WORKFLOW || !st->child || strcmp(st->child, child) != 0)
        return -1;
    return st->token;
}

/* The parent's id and step of x (new strings), or 0 when it has none. */
static int parent_of(const char *parent, char **id, char **step)
{
    json_t *p = parse_or_null(parent);
    const char *i = wfo_json_str(p, "id"), *s = wfo_json_str(p, "step");
    int ok = i && s;
    if (ok) {
        *id = wfo_strdup(i);
        *step = wfo_strdup(s);
    }
    json_decref(p);
    return ok;
}

/* The outcome a `workflow` step takes from its child that ended with
 * status (ok: the output, else ChildFailed with the child's error as its
 * details). output and error are borrowed; out's are new references. */
static void child_outcome(const char *id, const char *workflow, enum exec_status status,
                          json_t *output, json_t *error, struct step_outcome *out)
{
    memset(out, 0, sizeof(*out));
    if (status == EX_COMPLETED) {
        out->ok = 1;
        out->output = output ? json_incref(output) : json_null();
        return;
    }
    json_t *details = error ? json_deep_copy(error) : NULL;
    if (!details) /* cancelled or terminated without a reason of its own */
        details = wfo_json_error(status == EX_TERMINATED ? "Terminated" : "Cancelled",
                                 exec_status_names[status], NULL);
    struct wfo_buf b = WFO_BUF_INIT;
    const char *m = wfo_json_str(details, "message");
    wfo_buf_addf(&b, "child execution '%s' of workflow '%s' %s%s%s", id, workflow,
                 exec_status_names[status], m ? ": " : "", m ? m : "");
    out->error = fsm_error("ChildFailed", b.buf, details);
    out->retryable = 1; /* the step's own `retry` decides (no default policy) */
    wfo_buf_release(&b);
}

/* Child x ended: its parent's step takes the outcome (K2, K3). */
static void child_ended(struct wfo_engine *e, struct execution *x)
{
    char *pid = NULL, *path = NULL;
    if (!x->parent || !parent_of(x->parent, &pid, &path))
        return;
    struct step_outcome out;
    child_outcome(x->id, x->workflow, x->status, x->output, x->error, &out);
    struct wfo_error err = WFO_ERROR_INIT;
    struct execution *p = exec_get(e, pid, &err);
    if (p) {
        fsm_result(&e->fsm, p, path, child_token(p, path, x->id), out.ok, out.output, out.error,
                   out.retryable);
    } else if (!EXEC_GONE(&err)) {
        /* E5: kept, and tried again in a second (K2) */
        engine_read_failed(e, pid, "a child's end", &err);
        struct cmd *c = wfo_calloc(1, sizeof(*c));
        c->kind = CMD_RESULT;
        snprintf(c->id, sizeof(c->id), "%s", pid);
        c->path = path;
        path = NULL;
        c->child = wfo_strdup(x->id);
        c->out = out;
        out = (struct step_outcome){0};
        c->next = e->results_kept;
        e->results_kept = c;
        e->results_retry_at = e->fsm.now + 1000;
    }
    json_decref(out.output);
    json_decref(out.error);
    free(pid);
    free(path);
}

/* How many parents of x are in memory above it (bounded). */
static int child_depth(struct wfo_engine *e, const struct execution *x)
{
    int depth = 0;
    while (x && x->parent && depth <= CHILD_DEPTH_MAX) {
        char *pid = NULL, *path = NULL;
        if (!parent_of(x->parent, &pid, &path))
            break;
        x = wfo_map_get(&e->execs, pid);
        free(pid);
        free(path);
        depth++;
    }
    return depth;
}

/* Fails the attempt that asked for a child it could not have. */
static void child_refused(struct wfo_engine *e, struct execution *x, struct step_state *st,
                          const char *type, const char *message)
{
    json_t *details = wfo_json_error(type, message, NULL);
    struct wfo_buf b = WFO_BUF_INIT;
    wfo_buf_addf(&b, "child execution not started: %s", message);
    json_t *error = fsm_error("ChildFailed", b.buf, details);
    wfo_buf_release(&b);
    free(st->child); /* it was never created: the document names none */
    st->child = NULL;
    fsm_result(&e->fsm, x, st->path, st->token, 0, NULL, error, 1);
    json_decref(error);
}

/* ACT_CHILD: creates and starts the child in this round (K1). */
static void child_start(struct wfo_engine *e, const struct fsm_action *a)
{
    struct execution *x = a->x;
    struct step_state *st = exec_step(x, a->step);
    if (!st || st->token != a->token || st->status != SS_RUNNING || EX_ENDED(x->status))
        return; /* already over (within this round) */
    const char *id = wfo_json_str(a->args, "id");
    const char *name = wfo_json_str(a->args, "workflow");
    int version = (int)json_integer_value(json_object_get(a->args, "version"));
    if (!id || !name)
        return;
    if (wfo_map_get(&e->execs, id))
        return; /* started already (K1) */
    if (child_depth(e, x) >= CHILD_DEPTH_MAX) {
        char msg[160];
        snprintf(msg, sizeof(msg), "more than %d nested child executions started at once",
                 CHILD_DEPTH_MAX);
        child_refused(e, x, st, "NestingTooDeep", msg);
        return;
    }
    struct def *d = NULL;
    struct wfo_error err = WFO_ERROR_INIT;
    if (engine_def(e, x->ns, name, version, &d, &err) < 0) {
        if (err.code == WFO_ENOTFOUND) {
            char msg[400];
            if (version)
                snprintf(msg, sizeof(msg), "workflow '%s' version %d not found", name, version);
            else
                snprintf(msg, sizeof(msg), "workflow '%s' not found", name);
            child_refused(e, x, st, "NotFound", msg);
        } else {
            /* the definition could not be read or compiled */
            child_refused(e, x, st, wfo_error_type(err.code), err.message);
        }
        return;
    }
    json_t *input = json_object_get(a->args, "input");
    struct execution *c = exec_new(id, x->ns, d, input ? input : json_object(), e->fsm.now);
    def_unref(d);
    json_t *parent = json_pack("{s:s, s:s}", "id", x->id, "step", st->path);
    c->parent = wfo_json_dumps(parent);
    json_decref(parent);
    wfo_map_put(&e->execs, c->id, c);
    fsm_start(&e->fsm, c);
}

/* ACT_CANCEL / ACT_STOP of a `workflow` step: its child goes the same way
 * as its parent (terminated with a terminated parent, else cancelled, and
 * compensated when the parent compensates). */
static void child_stop(struct wfo_engine *e, const struct fsm_action *a)
{
    struct execution *x = a->x;
    char id[WFO_ID_SIZE];
    struct step_state *st = exec_step(x, a->step);
    if (st && st->child && st->token == a->token) /* what the attempt started (K3) */
        snprintf(id, sizeof(id), "%s", st->child);
    else
        fsm_child_id(x->id, a->step, a->token, id);
    struct wfo_error err = WFO_ERROR_INIT;
    struct execution *c = exec_get(e, id, &err);
    if (!c) {
        if (err.code && err.code != WFO_ENOTFOUND) /* in a cluster, another node's (E8) */
            wfo_warn(x->id, a->step, "child '%s' not cancelled: %s", id, err.message);
        return;
    }
    if (EX_ENDED(c->status))
        return;
    char reason[400];
    if (x->status == EX_TERMINATED) {
        snprintf(reason, sizeof(reason), "parent execution '%s' was terminated", x->id);
        fsm_terminate(&e->fsm, c, reason);
    } else {
        snprintf(
            reason, sizeof(reason), "step '%s' of parent execution '%s' was %s", a->step, x->id,
            x->status == EX_CANCELLED || x->comp_final == EX_CANCELLED ? "cancelled" : "stopped");
        fsm_cancel(&e->fsm, c, reason, x->comp_queue || x->draining);
    }
}

void child_round(struct wfo_engine *e)
{
    struct fsm *f = &e->fsm;
    if (e->child_gen != f->gen || e->child_seen > f->n_acts) {
        e->child_gen = f->gen;
        e->child_seen = 0;
    }
    while (e->child_seen < f->n_acts) {
        /* a copy: handling it may grow f->acts */
        struct fsm_action a = f->acts[e->child_seen++];
        if (a.kind == ACT_CHILD)
            child_start(e, &a);
        else if ((a.kind == ACT_CANCEL || a.kind == ACT_STOP) && a.def &&
                 a.def->type == STEP_WORKFLOW)
            child_stop(e, &a);
        else if (a.kind == ACT_ENDED && a.x->parent)
            child_ended(e, a.x);
    }
}

/* --- recovery -------------------------------------------------------------- */

struct child_row {
    int found;
    enum exec_status status;
    char *workflow;
    json_t *output, *error;
};

static int child_row_cb(void *ud, const struct store_exec *r)
{
    struct child_row *c = ud;
    int s = exec_status_parse(r->status);
    c->found = s >= 0;
    c->status = s >= 0 ? (enum exec_status)s : EX_RUNNING;
    c->workflow = wfo_strdup(r->workflow);
    c->output = parse_or_null(r->output);
    c->error = parse_or_null(r->error);
    return 0;
}

int child_recover(struct wfo_engine *e, struct execution *x, struct wfo_error *err)
{
    if (EX_ENDED(x->status))
        return 0;
    for (int i = 0; i < x->n_steps; i++) {
        struct step_state *st = x->steps[i];
        if (st->def->type != STEP_WORKFLOW || st->status != SS_RUNNING || !st->child)
            continue;
        struct child_row r = {0};
        int rc = e->store->ops->get_exec(e->store, st->child, child_row_cb, &r, err);
        if (rc < 0 && rc != WFO_ENOTFOUND) {
            free(r.workflow);
            json_decref(r.output);
            json_decref(r.error);
            return rc;
        }
        if (rc == WFO_ENOTFOUND)
            *err = (struct wfo_error)WFO_ERROR_INIT;
        if (r.found && EX_ENDED(r.status)) {
            wfo_info(x->id, st->path, "child '%s' ended while nobody waited: its outcome is taken",
                     st->child);
            struct cmd *c = wfo_calloc(1, sizeof(*c));
            c->kind = CMD_RESULT;
            snprintf(c->id, sizeof(c->id), "%s", x->id);
            c->path = wfo_strdup(st->path);
            c->child = wfo_strdup(st->child);
            child_outcome(st->child, r.workflow, r.status, r.output, r.error, &c->out);
            engine_post(e, c, NULL); /* applied by the engine thread's first loop */
        }
        free(r.workflow);
        json_decref(r.output);
        json_decref(r.error);
    }
    return 0;
}
