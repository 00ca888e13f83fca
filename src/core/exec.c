/*
 * exec.c - an execution in memory, and its durable form (see exec.h and
 * docs/implementation/state_management.md).
 */
#include "common/compat.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec.h"

const char *const exec_status_names[] = {"running", "paused",    "completed",
                                         "failed",  "cancelled", "terminated"};
const char *const step_status_names[] = {"scheduled", "running",   "waiting",
                                         "completed", "failed",    "caught",
                                         "skipped",   "cancelled", "compensated"};

static int parse_name(const char *const *names, int n, const char *s)
{
    for (int i = 0; s && i < n; i++)
        if (strcmp(names[i], s) == 0)
            return i;
    return -1;
}

int exec_status_parse(const char *s)
{
    return parse_name(exec_status_names, 6, s);
}

int step_status_parse(const char *s)
{
    return parse_name(step_status_names, 9, s);
}

struct execution *exec_new(const char *id, const char *ns, struct def *def, json_t *input,
                           int64_t now)
{
    struct execution *x = wfo_calloc(1, sizeof(*x));
    snprintf(x->id, sizeof(x->id), "%s", id);
    x->ns = wfo_strdup(ns);
    x->workflow = wfo_strdup(def->name);
    x->def = def_ref(def);
    x->status = EX_RUNNING;
    x->input = wfo_json_ref(input);
    x->vars = json_object();
    x->created_at = x->updated_at = now;
    return x;
}

static void frame_release(struct frame *f)
{
    free(f->owner);
    free(f->prefix);
    free(f->last);
    json_decref(f->item);
    json_decref(f->scope);
    free(f->stale);
}

void exec_free(struct execution *x)
{
    if (!x)
        return;
    for (int i = 0; i < x->n_steps; i++) {
        struct step_state *st = x->steps[i];
        free(st->path);
        free(st->input_text);
        free(st->child);
        json_decref(st->items);
        json_decref(st->wait);
        json_decref(st->output);
        json_decref(st->error);
        free(st);
    }
    free(x->steps);
    for (int i = 0; i < x->n_frames; i++)
        frame_release(&x->frames[i]);
    free(x->frames);
    wfo_map_release(&x->by_path);
    free(x->ns);
    free(x->workflow);
    free(x->parent);
    free(x->comp_owner);
    free(x->retry_from);
    free(x->fail_origin);
    free(x->error_step);
    free(x->input_text);
    exec_comp_clear(x);
    def_unref(x->def);
    json_decref(x->input);
    json_decref(x->output);
    json_decref(x->error);
    json_decref(x->compensation);
    json_decref(x->vars);
    json_decref(x->error_ctx);
    json_decref(x->event_ctx);
    json_decref(x->ctx_execution);
    free(x);
}

struct step_state *exec_step(struct execution *x, const char *path)
{
    return wfo_map_get(&x->by_path, path);
}

struct step_state *exec_step_reach(struct execution *x, const char *path,
                                   const struct def_step *def, int frame, int *created)
{
    struct step_state *st = exec_step(x, path);
    if (created)
        *created = !st;
    if (st) {
        st->frame = frame;
        return st;
    }
    st = wfo_calloc(1, sizeof(*st));
    st->path = wfo_strdup(path);
    st->def = def;
    st->comp = strstr(path, ":compensate") != NULL;
    st->frame = frame;
    st->ord = x->n_steps;
    if (x->n_steps == x->alloc_steps) {
        x->alloc_steps = x->alloc_steps ? x->alloc_steps * 2 : 8;
        x->steps = wfo_realloc(x->steps, x->alloc_steps * sizeof(*x->steps));
    }
    x->steps[x->n_steps++] = st;
    wfo_map_put(&x->by_path, st->path, st);
    return st;
}

struct frame *exec_frame_add(struct execution *x, int parent, const char *owner, int branch,
                             const struct def_block *block, const char *prefix)
{
    if (x->n_frames == x->alloc_frames) {
        x->alloc_frames = x->alloc_frames ? x->alloc_frames * 2 : 4;
        x->frames = wfo_realloc(x->frames, x->alloc_frames * sizeof(*x->frames));
    }
    struct frame *f = &x->frames[x->n_frames];
    memset(f, 0, sizeof(*f));
    f->id = x->n_frames++;
    f->parent = parent;
    f->owner = owner ? wfo_strdup(owner) : NULL;
    f->branch = branch;
    f->block = block;
    f->prefix = wfo_strdup(prefix ? prefix : "");
    f->pc = block && block->n ? 0 : -1;
    f->status = FR_ACTIVE;
    f->scope = json_object();
    return f;
}

/* The block of a nested frame: its owner's branch or body. */
static const struct def_block *frame_block(const struct def *def, const char *owner, int branch)
{
    if (!owner)
        return &def->steps;
    const struct def_step *s = exec_resolve_path(def, owner);
    if (!s)
        return NULL;
    if (s->type == STEP_PARALLEL)
        return branch >= 0 && branch < s->n_branches ? &s->branches[branch].block : NULL;
    if (s->type == STEP_FOREACH)
        return &s->body;
    return NULL;
}

/* ",\"key\":" then the value: the state's JSON is written as text, without
 * building jansson values first (it is written on every commit). */
static void put_int(struct wfo_buf *b, const char *key, long long v)
{
    wfo_buf_adds(b, key);
    wfo_json_dump_int(v, b);
}

static void put_str(struct wfo_buf *b, const char *key, const char *v)
{
    wfo_buf_adds(b, key);
    wfo_json_dump_str(v, b);
}

static void put_json(struct wfo_buf *b, const char *key, const json_t *v)
{
    wfo_buf_adds(b, key);
    wfo_json_dumpb(v, b);
}

void exec_comp_clear(struct execution *x)
{
    for (int i = 0; i < x->n_comp; i++)
        free(x->comp_queue[i].path);
    free(x->comp_queue);
    x->comp_queue = NULL;
    x->n_comp = 0;
}

void exec_row_state(const struct execution *x, struct wfo_buf *b)
{
    wfo_buf_adds(b, "{\"frames\":[");
    for (int i = 0; i < x->n_frames; i++) {
        const struct frame *f = &x->frames[i];
        put_int(b, i ? ",{\"id\":" : "{\"id\":", f->id);
        put_int(b, ",\"parent\":", f->parent);
        put_int(b, ",\"branch\":", f->branch);
        put_int(b, ",\"pc\":", f->pc);
        put_str(b, ",\"prefix\":", f->prefix);
        put_int(b, ",\"status\":", (int)f->status);
        put_int(b, ",\"busy\":", f->busy);
        put_int(b, ",\"otoken\":", f->otoken);
        if (f->owner)
            put_str(b, ",\"owner\":", f->owner);
        if (f->last)
            put_str(b, ",\"last\":", f->last);
        if (f->item)
            put_json(b, ",\"item\":", f->item);
        wfo_buf_addch(b, '}');
    }
    put_json(b, "],\"vars\":", x->vars);
    put_int(b, ",\"transitions\":", x->transitions);
    put_int(b, ",\"hseq\":", x->hseq);
    put_int(b, ",\"tick\":", x->tick);
    put_int(b, ",\"cseq\":", x->cseq);
    put_int(b, ",\"eseq\":", x->eseq);
    put_int(b, ",\"chunks\":", x->chunks);
    if (x->error_ctx)
        put_json(b, ",\"error_ctx\":", x->error_ctx);
    if (x->error_ctx && x->error_step)
        put_str(b, ",\"error_step\":", x->error_step);
    if (x->event_ctx)
        put_json(b, ",\"event_ctx\":", x->event_ctx);
    if (x->comp_queue) {
        wfo_buf_adds(b, ",\"comp\":{\"queue\":[");
        for (int i = 0; i < x->n_comp; i++) {
            const struct comp_entry *c = &x->comp_queue[i];
            wfo_buf_adds(b, i ? ",[" : "[");
            wfo_json_dump_str(c->path, b);
            put_int(b, ",", c->index);
            put_int(b, ",", (int)c->state);
            wfo_buf_addch(b, ']');
        }
        wfo_buf_addch(b, ']');
        put_int(b, ",\"final\":", x->comp_final);
        if (x->comp_then_retry)
            wfo_buf_adds(b, ",\"then_retry\":true");
        if (x->retry_from)
            put_str(b, ",\"retry_from\":", x->retry_from);
        if (x->comp_owner)
            put_str(b, ",\"owner\":", x->comp_owner);
        wfo_buf_addch(b, '}');
    }
    if (x->fail_origin)
        put_str(b, ",\"fail_origin\":", x->fail_origin);
    if (x->draining) {
        put_int(b, ",\"draining\":", x->draining);
        put_int(b, ",\"drain_final\":", x->comp_final);
    }
    wfo_buf_addch(b, '}');
}

void exec_step_state(const struct step_state *st, struct wfo_buf *b)
{
    put_int(b, "{\"token\":", st->token);
    put_int(b, ",\"cseq\":", st->cseq);
    if (st->eseq)
        put_int(b, ",\"eseq\":", st->eseq);
    put_int(b, ",\"frame\":", st->frame);
    wfo_buf_adds(b, st->retry_due ? ",\"retry_due\":true" : ",\"retry_due\":false");
    wfo_buf_adds(b, st->picked ? ",\"picked\":true" : ",\"picked\":false");
    if (st->stopping)
        wfo_buf_adds(b, ",\"stopping\":true");
    if (st->unknown)
        wfo_buf_adds(b, ",\"unknown\":true");
    if (st->task_row)
        put_int(b, ",\"trow\":", st->task_row);
    if (st->child) {
        json_t *c = json_string(st->child);
        put_json(b, ",\"child\":", c);
        json_decref(c);
    }
    if (st->wait)
        put_json(b, ",\"wait\":", st->wait);
    if (st->items) {
        put_json(b, ",\"items\":", st->items);
        put_int(b, ",\"next_item\":", st->next_item);
    }
    wfo_buf_addch(b, '}');
}

static int64_t jint(json_t *o, const char *k)
{
    return (int64_t)json_integer_value(json_object_get(o, k));
}

int exec_load(struct execution *x, json_t *state, struct wfo_error *err)
{
    if (!json_is_object(state))
        return wfo_error_set(err, WFO_ESTORE, "execution %s: state is not an object", x->id);
    json_t *vars = json_object_get(state, "vars");
    if (json_is_object(vars)) {
        json_decref(x->vars);
        x->vars = json_incref(vars);
    }
    x->transitions = jint(state, "transitions");
    x->hseq = jint(state, "hseq");
    x->tick = jint(state, "tick");
    x->cseq = jint(state, "cseq");
    x->eseq = jint(state, "eseq");
    x->chunks = jint(state, "chunks");
    json_t *ec = json_object_get(state, "error_ctx");
    if (ec)
        x->error_ctx = json_incref(ec);
    const char *es = wfo_json_str(state, "error_step");
    x->error_step = es ? wfo_strdup(es) : NULL;
    json_t *ev = json_object_get(state, "event_ctx");
    if (ev)
        x->event_ctx = json_incref(ev);
    json_t *comp = json_object_get(state, "comp");
    if (comp) {
        /* a store written before entries had states ran them one at a
         * time up to "pos": those before are done, that one runs */
        json_t *queue = json_object_get(comp, "queue");
        int pos = (int)jint(comp, "pos");
        size_t n = json_array_size(queue), ci;
        json_t *e;
        /* one more than needed: an empty queue is still a queue */
        x->comp_queue = wfo_calloc(n + 1, sizeof(*x->comp_queue));
        json_array_foreach(queue, ci, e)
        {
            struct comp_entry *c = &x->comp_queue[x->n_comp++];
            const char *path = json_string_value(json_array_get(e, 0));
            c->path = wfo_strdup(path ? path : "");
            c->index = (int)json_integer_value(json_array_get(e, 1));
            if (json_array_size(e) >= 3)
                c->state = (enum comp_state)json_integer_value(json_array_get(e, 2));
            else
                c->state = (int)ci < pos ? COMP_DONE : (int)ci == pos ? COMP_RUNNING : COMP_PENDING;
        }
        x->comp_final = (int)jint(comp, "final");
        x->comp_then_retry = json_is_true(json_object_get(comp, "then_retry"));
        const char *rf = wfo_json_str(comp, "retry_from");
        x->retry_from = rf ? wfo_strdup(rf) : NULL;
        const char *owner = wfo_json_str(comp, "owner");
        x->comp_owner = owner ? wfo_strdup(owner) : NULL;
    }
    x->draining = (int)jint(state, "draining");
    if (x->draining)
        x->comp_final = (int)jint(state, "drain_final");
    const char *origin = wfo_json_str(state, "fail_origin");
    x->fail_origin = origin ? wfo_strdup(origin) : NULL;
    json_t *frames = json_object_get(state, "frames");
    size_t i;
    json_t *fo;
    json_array_foreach(frames, i, fo)
    {
        const char *owner = wfo_json_str(fo, "owner");
        int branch = (int)jint(fo, "branch");
        const struct def_block *b = frame_block(x->def, owner, branch);
        if (!b)
            return wfo_error_set(err, WFO_ESTORE, "execution %s: frame %zu does not match %s v%d",
                                 x->id, i, x->def->name, x->def->version);
        const char *prefix = wfo_json_str(fo, "prefix");
        struct frame *f = exec_frame_add(x, (int)jint(fo, "parent"), owner, branch, b, prefix);
        f->pc = (int)jint(fo, "pc");
        f->status = (enum frame_status)jint(fo, "status");
        f->busy = (int)jint(fo, "busy");
        f->otoken = jint(fo, "otoken");
        const char *last = wfo_json_str(fo, "last");
        f->last = last ? wfo_strdup(last) : NULL;
        json_t *item = json_object_get(fo, "item");
        f->item = item ? json_incref(item) : NULL;
    }
    return 0;
}

int exec_load_step(struct execution *x, const char *path, int ord, const char *status, int attempts,
                   json_t *output, json_t *error, json_t *state, const char *input_text,
                   int64_t started_at, int64_t finished_at, struct wfo_error *err)
{
    const struct def_step *d = exec_resolve_path(x->def, path);
    int ss = step_status_parse(status);
    if (!d || ss < 0)
        return wfo_error_set(err, WFO_ESTORE, "execution %s: step '%s' does not match %s v%d",
                             x->id, path, x->def->name, x->def->version);
    int frame = (int)jint(state, "frame");
    if (frame < 0 || frame >= x->n_frames)
        frame = 0;
    struct step_state *st = exec_step_reach(x, path, d, frame, NULL);
    st->ord = ord;
    st->status = (enum step_status)ss;
    st->attempts = attempts;
    st->token = jint(state, "token");
    st->cseq = jint(state, "cseq");
    st->eseq = jint(state, "eseq");
    st->retry_due = json_is_true(json_object_get(state, "retry_due"));
    st->picked = json_is_true(json_object_get(state, "picked"));
    st->stopping = json_is_true(json_object_get(state, "stopping"));
    st->unknown = json_is_true(json_object_get(state, "unknown"));
    st->task_row = jint(state, "trow");
    x->task_rows += st->task_row != 0;
    const char *child = json_string_value(json_object_get(state, "child"));
    free(st->child);
    st->child = child ? wfo_strdup(child) : NULL;
    json_t *wait = json_object_get(state, "wait");
    json_decref(st->wait);
    st->wait = json_is_object(wait) ? json_incref(wait) : NULL;
    json_t *items = json_object_get(state, "items");
    if (items) {
        json_decref(st->items);
        st->items = json_incref(items);
        st->next_item = (int)jint(state, "next_item");
    }
    st->output = output ? json_incref(output) : NULL;
    st->error = error ? json_incref(error) : NULL;
    free(st->input_text);
    st->input_text = input_text ? wfo_strdup(input_text) : NULL;
    st->started_at = started_at;
    st->finished_at = finished_at;
    exec_scope_update(x, st);
    return 0;
}

/* Splits the next segment off *p: "name", "name[3]" (index into *index). */
static const struct def_step *resolve_plain(const struct def *def, const char *path);

const struct def_step *exec_resolve_path(const struct def *def, const char *path)
{
    const char *c = strstr(path, ":compensate");
    if (!c)
        return resolve_plain(def, path);
    /* "PATH:compensate" or "PATH:compensate[i]": a compensation of PATH */
    char *orig = wfo_strndup(path, (size_t)(c - path));
    const struct def_step *s = resolve_plain(def, orig);
    free(orig);
    const char *rest = c + strlen(":compensate");
    int64_t i = 0;
    if (*rest == '[') {
        char num[24];
        const char *close = strchr(rest, ']');
        if (!close || close[1] || (size_t)(close - rest - 1) >= sizeof(num))
            return NULL;
        memcpy(num, rest + 1, (size_t)(close - rest - 1));
        num[close - rest - 1] = 0;
        if (wfo_parse_int64(num, &i) < 0)
            return NULL;
    } else if (*rest) {
        return NULL;
    }
    if (!s || i < 0 || i >= s->n_compensate)
        return NULL;
    return &s->compensate[i];
}

static const struct def_step *resolve_plain(const struct def *def, const char *path)
{
    const struct def_block *b = &def->steps;
    const char *p = path;
    for (;;) {
        const char *end = p + strcspn(p, "/[");
        char name[256];
        size_t n = (size_t)(end - p);
        if (n == 0 || n >= sizeof(name))
            return NULL;
        memcpy(name, p, n);
        name[n] = 0;
        int i = def_block_find(b, name);
        if (i < 0)
            return NULL;
        const struct def_step *s = &b->steps[i];
        if (!*end)
            return s;
        if (*end == '[') {
            /* foreach iteration: "each[3]/step" */
            if (s->type != STEP_FOREACH)
                return NULL;
            const char *close = strchr(end, ']');
            if (!close || close[1] != '/')
                return NULL;
            b = &s->body;
            p = close + 2;
            continue;
        }
        /* "/": parallel branch name follows */
        if (s->type != STEP_PARALLEL)
            return NULL;
        p = end + 1;
        const char *bend = strchr(p, '/');
        if (!bend)
            return NULL;
        const struct def_block *nb = NULL;
        for (int k = 0; k < s->n_branches; k++)
            if (strlen(s->branches[k].name) == (size_t)(bend - p) &&
                memcmp(s->branches[k].name, p, (size_t)(bend - p)) == 0)
                nb = &s->branches[k].block;
        if (!nb)
            return NULL;
        b = nb;
        p = bend + 1;
    }
}

static json_t *status_strings[9];

static void status_strings_init(void)
{
    for (int i = 0; i < 9; i++)
        status_strings[i] = json_string(step_status_names[i]);
}

/* The status string of a scope entry (shared, borrowed). */
static json_t *scope_status(enum step_status s)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, status_strings_init);
    return status_strings[s];
}

/* {output, status, attempts, error}: built by hand, it is on every step
 * change (json_pack parses its format each time). The status strings are
 * made once. */
static json_t *scope_entry(const struct step_state *st)
{
    json_t *o = json_object();
    json_object_set_new_nocheck(o, "output", st->output ? json_incref(st->output) : json_null());
    json_object_set_nocheck(o, "status", scope_status(st->status));
    json_object_set_new_nocheck(o, "attempts", json_integer(st->attempts));
    json_object_set_new_nocheck(o, "error", st->error ? json_incref(st->error) : json_null());
    return o;
}

/* The blocks a context's .steps merges at most: the innermost ones. */
#define CTX_CHAIN_MAX 64

/* The scope of fr, ready to change: copy on write, like .vars: a context
 * or a stored value may hold it (its refcount says so); nobody else:
 * changed in place. */
static json_t *scope_writable(struct frame *fr)
{
    if (fr->scope->refcount > 1) {
        json_t *ns = json_copy(fr->scope);
        json_decref(fr->scope);
        fr->scope = ns;
    }
    return fr->scope;
}

/* Brings the entries of fr's stale steps up to date: all of them, or only
 * those of the steps named name. The list keeps its order. */
static void scope_refresh(struct frame *fr, const char *name)
{
    int k = 0;
    for (int i = 0; i < fr->n_stale; i++) {
        struct step_state *st = fr->stale[i];
        if (name && strcmp(st->def->name, name) != 0) {
            fr->stale[k++] = st;
            continue;
        }
        st->scope_stale = 0;
        json_object_set_new(scope_writable(fr), st->def->name, scope_entry(st));
    }
    fr->n_stale = k;
}

void exec_scope_update(struct execution *x, struct step_state *st)
{
    if (st->frame < 0 || st->frame >= x->n_frames || st->comp)
        return;
    if (st->scope_stale) {
        if (st->scope_frame == st->frame)
            return;
        /* it moved to another frame (a block's retry) while its entry in
         * the old one was out of date: that entry is made now, and the
         * step is listed in its new frame */
        struct frame *old = &x->frames[st->scope_frame];
        for (int i = 0; i < old->n_stale; i++) {
            if (old->stale[i] != st)
                continue;
            memmove(old->stale + i, old->stale + i + 1,
                    (size_t)(old->n_stale - i - 1) * sizeof(*old->stale));
            old->n_stale--;
            break;
        }
        json_object_set_new(scope_writable(old), st->def->name, scope_entry(st));
    }
    struct frame *fr = &x->frames[st->frame];
    st->scope_stale = 1;
    st->scope_frame = st->frame;
    GROW(fr->stale, fr->n_stale, fr->alloc_stale);
    fr->stale[fr->n_stale++] = st;
}

/* The context's .execution, made once. */
static json_t *ctx_execution(struct execution *x)
{
    if (!x->ctx_execution) {
        char started[40];
        wfo_time_format(x->created_at, started, sizeof(started));
        json_t *c = json_object();
        json_object_set_new_nocheck(c, "id", json_string(x->id));
        json_object_set_new_nocheck(c, "workflow", json_string(x->workflow));
        json_object_set_new_nocheck(c, "version", json_integer(x->def->version));
        json_object_set_new_nocheck(c, "started_at", json_string(started));
        x->ctx_execution = c;
    }
    return x->ctx_execution;
}

json_t *exec_context(struct execution *x, int frame)
{
    /* .steps: the block's own steps over those of every enclosing block; at
     * the top level that is the top frame's scope itself (shared: nothing
     * mutates a context's values, scope entries are replaced, not changed) */
    json_t *steps;
    for (int f = frame; f >= 0; f = x->frames[f].parent)
        scope_refresh(&x->frames[f], NULL);
    if (frame == 0) {
        steps = json_incref(x->frames[0].scope);
    } else {
        steps = json_object();
        int chain[CTX_CHAIN_MAX], n = 0;
        for (int f = frame; f >= 0 && n < CTX_CHAIN_MAX; f = x->frames[f].parent)
            chain[n++] = f;
        while (n--)
            json_object_update(steps, x->frames[chain[n]].scope);
    }
    json_t *ctx = json_object();
    json_object_set(ctx, "input", x->input);
    json_object_set_new(ctx, "steps", steps);
    json_object_set(ctx, "vars", x->vars);
    json_object_set(ctx, "execution", ctx_execution(x));
    if (x->error_ctx)
        json_object_set(ctx, "error", x->error_ctx);
    if (x->event_ctx)
        json_object_set(ctx, "event", x->event_ctx);
    for (int f = frame; f >= 0; f = x->frames[f].parent) {
        if (x->frames[f].item) {
            json_object_set(ctx, "item", x->frames[f].item);
            json_object_set_new(ctx, "index", json_integer(x->frames[f].branch));
            break;
        }
    }
    return ctx;
}

/* .steps.NAME of a frame's context, or .steps.NAME.FIELD when field is
 * not NULL (*used tells which): the entry of the innermost block of the
 * chain that has one (exec_context merges them outermost first). An
 * entry that is out of date is read from its step as scope_entry would
 * make it, without making it; when a field cannot be read that way
 * (attempts), the entries of that name are brought up to date. */
static json_t *ctx_step(struct execution *x, int frame, const char *name, const char *field,
                        int *used)
{
    int n = 0;
    *used = 2;
    for (int f = frame; f >= 0 && n < CTX_CHAIN_MAX; f = x->frames[f].parent, n++) {
        struct frame *fr = &x->frames[f];
        struct step_state *st = NULL;
        for (int i = 0; i < fr->n_stale; i++) /* the last one listed wins */
            if (strcmp(fr->stale[i]->def->name, name) == 0)
                st = fr->stale[i];
        if (st && field) {
            *used = 3;
            if (strcmp(field, "output") == 0)
                return st->output ? st->output : json_null();
            if (strcmp(field, "error") == 0)
                return st->error ? st->error : json_null();
            if (strcmp(field, "status") == 0)
                return scope_status(st->status);
            if (strcmp(field, "attempts") != 0)
                return NULL; /* an entry has no other member */
            *used = 2;
        }
        if (st)
            scope_refresh(fr, name);
        json_t *v = json_object_get(fr->scope, name);
        if (v)
            return v;
    }
    return NULL;
}

static json_t *ctx_whole(struct expr_ctx *base)
{
    struct exec_ctx *c = (struct exec_ctx *)base;
    if (!c->obj) {
        c->obj = exec_context(c->x, c->frame);
        if (c->has_result)
            json_object_set(c->obj, "result", c->result ? c->result : json_null());
    }
    return c->obj;
}

static json_t *ctx_member(struct expr_ctx *base, const char *const *keys, int n, int *used)
{
    struct exec_ctx *c = (struct exec_ctx *)base;
    struct execution *x = c->x;
    const char *k1 = keys[0];
    *used = 1;
    if (c->obj)
        return json_object_get(c->obj, k1);
    if (strcmp(k1, "input") == 0)
        return x->input;
    if (strcmp(k1, "steps") == 0) {
        if (n > 1)
            return ctx_step(x, c->frame, keys[1], n > 2 ? keys[2] : NULL, used);
        if (c->frame == 0) {
            scope_refresh(&x->frames[0], NULL);
            return x->frames[0].scope;
        }
        return json_object_get(ctx_whole(base), k1);
    }
    if (strcmp(k1, "vars") == 0)
        return x->vars;
    if (strcmp(k1, "execution") == 0)
        return ctx_execution(x);
    if (strcmp(k1, "error") == 0)
        return x->error_ctx;
    if (strcmp(k1, "event") == 0)
        return x->event_ctx;
    if (strcmp(k1, "result") == 0)
        return c->has_result ? (c->result ? c->result : json_null()) : NULL;
    if (strcmp(k1, "item") == 0 || strcmp(k1, "index") == 0)
        return json_object_get(ctx_whole(base), k1);
    return NULL; /* no other member */
}

void exec_ctx_init(struct exec_ctx *c, struct execution *x, int frame)
{
    memset(c, 0, sizeof(*c));
    c->base.member = ctx_member;
    c->base.whole = ctx_whole;
    c->x = x;
    c->frame = frame;
}

void exec_ctx_release(struct exec_ctx *c)
{
    json_decref(c->obj);
    c->obj = NULL;
}
