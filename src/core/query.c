/*
 * query.c - the reads of the API and of the public wfo_engine_get() and
 * wfo_engine_history(): execution documents, the execution list, histories,
 * workflows, the store's health, and the waits for an execution's end
 * (?wait=). api/ reaches the store only through here; the documents are
 * built by doc.c (docs/interfaces/internal.md "The query module").
 *
 * Reads go to the store directly from the caller's thread, never through
 * the engine thread (the store is thread-safe; a file store reads on its
 * reader connections, without waiting for a commit). A caller that was
 * answered by the engine reads what it was told: the engine answers after
 * the commit (engine.c E1).
 *
 * Invariants:
 *   Q1. An execution of another namespace is as absent as one that does
 *       not exist: every call that names an execution reads its row first
 *       (row_read) and refuses it with the same WFO_ENOTFOUND and message
 *       (SPEC 4). Only the public calls of wfo.h, which know no namespaces,
 *       read with ns NULL (any).
 *   Q2. A wait reads the execution's status row, then sleeps on the
 *       engine's ended_cv (engine_await_end) for at most 200 ms, and again;
 *       the document is read once, at the end, by the caller, unless the
 *       commit that ended the execution handed it to the wait (engine.c
 *       E10: known to the engine from before the first read, so no end
 *       falls between the two). The row read first is what refuses
 *       another namespace's execution (Q1), handed document or not.
 */
#include "common/compat.h"

#include <string.h>

#include "query.h"
#include "doc.h"
#include "engine.h"
#include "exec.h"
#include "../store/store.h"
#include "../common/duration.h"

/* What one read of an execution's row found. */
struct row_ud {
    const char *ns; /* NULL: any namespace (Q1) */
    int want_doc;   /* build the document without steps */
    /* out */
    int found; /* the row, of namespace ns */
    int ended;
    json_t *doc;    /* when want_doc */
    char *workflow; /* when not NULL: its workflow's name (wsize bytes) */
    size_t wsize;
};

static int row_cb(void *ud, const struct store_exec *r)
{
    struct row_ud *u = ud;
    if (u->ns && strcmp(r->namespace, u->ns) != 0)
        return 0;
    u->found = 1;
    u->ended = query_status_ended(r->status) > 0;
    if (u->workflow)
        snprintf(u->workflow, u->wsize, "%s", r->workflow);
    if (u->want_doc)
        u->doc = doc_exec(r);
    return 0;
}

/* Reads execution id's row into u: WFO_ENOTFOUND when it is absent or of
 * another namespace (Q1). */
static int row_read(struct store *s, const char *id, struct row_ud *u, struct wfo_error *err)
{
    int rc = s->ops->get_exec(s, id, row_cb, u, err);
    if (rc == WFO_ENOTFOUND || (rc == 0 && !u->found))
        return wfo_error_set(err, WFO_ENOTFOUND, "execution '%s' not found", id);
    return rc;
}

/* ---- the owner of an execution (E8) ---- */

struct owner_ud {
    int shard;
    int64_t now;
    char owner[WFO_ID_SIZE]; /* "" : none whose lease runs */
    char *url;
    size_t size;
    int found;
};

static int owner_shard_cb(void *ud, const struct store_shard *r)
{
    struct owner_ud *u = ud;
    if (r->shard == u->shard && r->owner && r->lease_until >= u->now)
        snprintf(u->owner, sizeof(u->owner), "%s", r->owner);
    return 0;
}

static int owner_node_cb(void *ud, const struct store_node *r)
{
    struct owner_ud *u = ud;
    if (strcmp(r->id, u->owner) == 0 && r->url && *r->url) {
        snprintf(u->url, u->size, "%s", r->url);
        u->found = 1;
    }
    return 0;
}

int query_owner(struct wfo_engine *e, const char *id, char *url, size_t size, struct wfo_error *err)
{
    if (engine_holds(e, id))
        return 1;
    struct store *s = engine_store(e);
    struct owner_ud u = {
        .shard = store_shard_of(id), .now = wfo_now_ms(), .url = url, .size = size};
    int rc = s->ops->list_shards(s, owner_shard_cb, &u, err);
    if (rc == 0 && u.owner[0])
        rc = s->ops->list_nodes(s, u.now - engine_shard_lease(e), owner_node_cb, &u, err);
    if (rc < 0)
        return rc;
    if (!u.owner[0] || !u.found || strcmp(u.owner, engine_node(e)) == 0)
        return wfo_error_set(err, WFO_EFENCED,
                             "execution '%s' is in shard %d, which no live node holds now (a "
                             "takeover is under way: try again in a few seconds)",
                             id, u.shard);
    return 0;
}

struct peers_ud {
    const char *self;
    json_t *urls;
};

static int peer_cb(void *ud, const struct store_node *r)
{
    struct peers_ud *u = ud;
    if (strcmp(r->id, u->self) != 0 && r->url && *r->url)
        json_array_append_new(u->urls, json_string(r->url));
    return 0;
}

int query_peers(struct wfo_engine *e, json_t **urls, struct wfo_error *err)
{
    struct peers_ud u = {engine_node(e), json_array()};
    int rc = 0;
    if (engine_clustered(e)) {
        struct store *s = engine_store(e);
        rc = s->ops->list_nodes(s, wfo_now_ms() - engine_shard_lease(e), peer_cb, &u, err);
    }
    if (rc < 0) {
        json_decref(u.urls);
        return rc;
    }
    *urls = u.urls;
    return 0;
}

int query_exec_check(struct wfo_engine *e, const char *ns, const char *id, struct wfo_error *err)
{
    wfo_assert(ns);
    struct row_ud u = {.ns = ns};
    return row_read(engine_store(e), id, &u, err);
}

int query_exec_workflow(struct wfo_engine *e, const char *ns, const char *id, char *out,
                        size_t size, struct wfo_error *err)
{
    struct row_ud u = {.ns = ns, .workflow = out, .wsize = size};
    return row_read(engine_store(e), id, &u, err);
}

/* ---- documents and histories ---- */

static int step_cb(void *ud, const struct store_step *r)
{
    doc_step(ud, r);
    return 0;
}

static int execution(struct wfo_engine *e, const char *ns, const char *id, json_t **out,
                     struct wfo_error *err)
{
    struct store *s = engine_store(e);
    struct row_ud u = {.ns = ns, .want_doc = 1};
    json_t *steps = NULL;
    int rc = row_read(s, id, &u, err);
    if (rc < 0)
        goto out;
    steps = json_array();
    rc = s->ops->list_steps(s, id, step_cb, steps, err);
    if (rc < 0)
        goto out;
    *out = doc_assemble(u.doc, steps);
    u.doc = steps = NULL;
out:
    json_decref(u.doc);
    json_decref(steps);
    return rc;
}

int query_execution(struct wfo_engine *e, const char *ns, const char *id, json_t **doc,
                    struct wfo_error *err)
{
    wfo_assert(ns);
    return execution(e, ns, id, doc, err);
}

static int hist_cb(void *ud, const struct store_history *r)
{
    json_array_append_new(ud, doc_history_entry(r));
    return 0;
}

static int history(struct wfo_engine *e, const char *ns, const char *id, int64_t after_seq,
                   int limit, json_t **out, struct wfo_error *err)
{
    struct store *s = engine_store(e);
    struct row_ud u = {.ns = ns};
    int rc = row_read(s, id, &u, err);
    if (rc < 0)
        return rc;
    json_t *a = json_array();
    rc = s->ops->list_history(s, id, after_seq, limit, hist_cb, a, err);
    if (rc < 0) {
        json_decref(a);
        return rc;
    }
    *out = a;
    return 0;
}

int query_history(struct wfo_engine *e, const char *ns, const char *id, int64_t after_seq,
                  int limit, json_t **out, struct wfo_error *err)
{
    wfo_assert(ns);
    return history(e, ns, id, after_seq, limit, out, err);
}

/* ---- the execution list ---- */

struct list_ud {
    json_t *items;
    int limit, n;
    int64_t last_seq;
    int more;
};

static int list_cb(void *ud, const struct store_exec *r)
{
    struct list_ud *l = ud;
    if (l->n == l->limit) {
        l->more = 1;
        return 1;
    }
    json_array_append_new(l->items, doc_exec(r));
    l->last_seq = r->seq;
    l->n++;
    return 0;
}

int query_executions(struct wfo_engine *e, const char *ns, const struct query_filter *f,
                     json_t **items, int64_t *next_seq, struct wfo_error *err)
{
    wfo_assert(ns && f->limit >= 1);
    struct store *s = engine_store(e);
    /* one more row than asked for tells whether there is a next page */
    struct store_exec_filter sf = {.namespace = ns,
                                   .workflow = f->workflow,
                                   .status = f->status,
                                   .created_after = f->created_after,
                                   .created_before = f->created_before,
                                   .before_seq = f->before_seq,
                                   .limit = f->limit + 1};
    struct list_ud l = {.items = json_array(), .limit = f->limit};
    int rc = s->ops->list_execs(s, &sf, list_cb, &l, err);
    if (rc < 0) {
        json_decref(l.items);
        return rc;
    }
    *items = l.items;
    *next_seq = l.more ? l.last_seq : 0;
    return 0;
}

/* ---- waits (Q2) ---- */

/* *doc (when doc is not NULL) is the document the engine handed the wait
 * (engine.c E10), or NULL: the caller reads it. */
static int wait_end(struct wfo_engine *e, const char *ns, const char *id, int64_t wait_ms,
                    int *ended, json_t **doc, struct wfo_error *err)
{
    int rc = wait_ms > 0 ? engine_ready(e, err) : 0; /* only a wait needs the threads */
    if (rc < 0)
        return rc;
    struct store *s = engine_store(e);
    int64_t until = wfo_now_ms() + (wait_ms > 0 ? wait_ms : 0);
    struct engine_end_wait w = {.id = id, .ns = ns};
    int known = doc && wait_ms > 0;
    if (known) /* before the first read: an end after it hands w the document */
        engine_end_wait_add(e, &w);
    *ended = 0;
    for (;;) {
        struct row_ud u = {.ns = ns};
        rc = row_read(s, id, &u, err);
        if (rc < 0 || u.ended) {
            *ended = u.ended;
            break;
        }
        rc = engine_await_end(e, until, known ? &w : NULL, err);
        if (rc == ENGINE_AWAIT_DOC)
            *ended = 1;
        if (rc != ENGINE_AWAIT_AGAIN) {
            rc = rc < 0 ? rc : 0;
            break;
        }
    }
    if (known)
        engine_end_wait_del(e, &w);
    if (rc < 0 || !*ended || !doc) {
        json_decref(w.doc);
        return rc;
    }
    *doc = w.doc;
    return 0;
}

int query_wait(struct wfo_engine *e, const char *ns, const char *id, int64_t wait_ms, int *ended,
               json_t **doc, struct wfo_error *err)
{
    wfo_assert(ns);
    return wait_end(e, ns, id, wait_ms, ended, doc, err);
}

/* ---- workflows ---- */

static int workflow_cb(void *ud, const struct store_workflow *w)
{
    json_t **out = ud;
    json_decref(*out);
    *out = doc_workflow(w);
    return 0;
}

int query_workflow(struct wfo_engine *e, const char *ns, const char *name, int version,
                   json_t **out, struct wfo_error *err)
{
    wfo_assert(ns);
    struct store *s = engine_store(e);
    json_t *w = NULL;
    int rc = s->ops->get_workflow(s, ns, name, version, workflow_cb, &w, err);
    if (rc == WFO_ENOTFOUND) {
        if (version)
            wfo_error_set(err, rc, "workflow '%s' has no version %d", name, version);
        else
            wfo_error_set(err, rc, "workflow '%s' not found", name);
    }
    if (rc == 0 && !w)
        rc = wfo_error_set(err, WFO_ENOTFOUND, "workflow '%s' not found", name);
    if (rc < 0) {
        json_decref(w);
        return rc;
    }
    *out = w;
    return 0;
}

static int workflows_cb(void *ud, const struct store_workflow *w)
{
    json_array_append_new(ud, doc_workflow(w));
    return 0;
}

int query_workflows(struct wfo_engine *e, const char *ns, json_t **out, struct wfo_error *err)
{
    wfo_assert(ns);
    struct store *s = engine_store(e);
    json_t *list = json_array();
    int rc = s->ops->list_workflows(s, ns, workflows_cb, list, err);
    if (rc < 0) {
        json_decref(list);
        return rc;
    }
    *out = list;
    return 0;
}

int query_ping(struct wfo_engine *e, struct wfo_error *err)
{
    struct store *s = engine_store(e);
    return s->ops->ping(s, err);
}

/* ---- the public calls (include/wfo/wfo.h): one process, any namespace ---- */

int wfo_engine_get(struct wfo_engine *e, const char *id, int64_t wait_ms, char **doc,
                   struct wfo_error *err)
{
    int ended = 0;
    json_t *d = NULL;
    int rc = wait_end(e, NULL, id, wait_ms, &ended, &d, err);
    if (rc == 0 && !d)
        rc = execution(e, NULL, id, &d, err);
    if (rc < 0)
        return rc;
    *doc = wfo_json_dumps(d);
    json_decref(d);
    return 0;
}

int wfo_engine_history(struct wfo_engine *e, const char *id, char **json, struct wfo_error *err)
{
    json_t *a = NULL;
    int rc = history(e, NULL, id, 0, 0, &a, err);
    if (rc < 0)
        return rc;
    *json = wfo_json_dumps(a);
    json_decref(a);
    return 0;
}

int query_status_ended(const char *name)
{
    int st = exec_status_parse(name);

    return st < 0 ? -1 : EX_ENDED(st);
}
