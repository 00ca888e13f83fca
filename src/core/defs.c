/*
 * defs.c - the definitions cache: each version of each workflow compiled
 * once, shared (refcounted) by the executions that run it, and dropped when
 * its workflow is deleted; and registering a definition (engine_put_workflow).
 * Any thread: the cache is guarded by defs_mu. docs/interfaces/internal.md.
 */
#include "common/compat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"
#include "doc.h"
#include "../common/duration.h"
#include "../common/util.h"
#include "../common/yaml.h"

static void def_key(struct wfo_buf *b, const char *ns, const char *name, int version)
{
    wfo_buf_reset(b);
    wfo_buf_addf(b, "%s\n%s\n%d", ns, name, version);
}

struct wf_row {
    json_t *doc;
    int version;
    int64_t created_at;
    char hash[65];
};

static int wf_row_cb(void *ud, const struct store_workflow *w)
{
    struct wf_row *r = ud;
    r->version = w->version;
    r->created_at = w->created_at;
    snprintf(r->hash, sizeof(r->hash), "%s", w->hash ? w->hash : "");
    json_decref(r->doc);
    r->doc = NULL;
    return wfo_json_parse(w->definition, strlen(w->definition), &r->doc, NULL) < 0 ? WFO_ESTORE : 0;
}

/* Remembers d as the latest version of its workflow unless a later one is
 * known. Single-node: a version registered by another node is seen when an
 * execution names it, or after a restart. */
static void defs_set_latest(struct wfo_engine *e, const char *ns, struct def *d)
{
    struct wfo_buf lk = WFO_BUF_INIT;
    wfo_buf_addf(&lk, "%s\n%s\nlatest", ns, d->name);
    pthread_mutex_lock(&e->defs_mu);
    struct def *old = wfo_map_get(&e->defs, lk.buf);
    if (!old || old->version < d->version) {
        if (old) {
            wfo_map_put(&e->defs, wfo_map_key(&e->defs, lk.buf), def_ref(d));
            def_unref(old);
        } else {
            wfo_map_put(&e->defs, wfo_buf_detach(&lk, NULL), def_ref(d));
        }
    }
    pthread_mutex_unlock(&e->defs_mu);
    wfo_buf_release(&lk);
}

int64_t defs_epoch(struct wfo_engine *e)
{
    return atomic_load(&e->wf_epoch);
}

void defs_forget(struct wfo_engine *e, const char *ns, const char *name)
{
    struct wfo_buf prefix = WFO_BUF_INIT;
    wfo_buf_addf(&prefix, "%s\n%s\n", ns, name);
    const char *k;
    void *v;
    pthread_mutex_lock(&e->defs_mu);
    e->wf_epoch++;
    for (size_t it = 0; wfo_map_next(&e->defs, &it, &k, &v);) {
        if (strncmp(k, prefix.buf, prefix.len) != 0 || strchr(k + prefix.len, '\n'))
            continue;
        char *key = (char *)k;
        wfo_map_del(&e->defs, key);
        free(key);
        def_unref(v);
    }
    pthread_mutex_unlock(&e->defs_mu);
    wfo_buf_release(&prefix);
}

int engine_def(struct wfo_engine *e, const char *ns, const char *name, int version,
               struct def **out, struct wfo_error *err)
{
    struct wfo_buf key = WFO_BUF_INIT;
    struct wf_row row = {0};
    int64_t epoch = defs_epoch(e);
    int rc;
    if (version > 0) {
        def_key(&key, ns, name, version);
        pthread_mutex_lock(&e->defs_mu);
        struct def *d = wfo_map_get(&e->defs, key.buf);
        if (d)
            *out = def_ref(d);
        pthread_mutex_unlock(&e->defs_mu);
        if (d) {
            wfo_buf_release(&key);
            return 0;
        }
    }
    if (version <= 0) {
        /* the latest version this process registered or loaded */
        struct wfo_buf lk = WFO_BUF_INIT;
        wfo_buf_addf(&lk, "%s\n%s\nlatest", ns, name);
        pthread_mutex_lock(&e->defs_mu);
        struct def *d = wfo_map_get(&e->defs, lk.buf);
        if (d)
            *out = def_ref(d);
        pthread_mutex_unlock(&e->defs_mu);
        wfo_buf_release(&lk);
        if (d) {
            wfo_buf_release(&key);
            return 0;
        }
    }
    rc = e->store->ops->get_workflow(e->store, ns, name, version, wf_row_cb, &row, err);
    if (rc < 0) {
        if (rc == WFO_ENOTFOUND && version > 0 &&
            e->store->ops->get_workflow(e->store, ns, name, 0, wf_row_cb, &row, NULL) == 0)
            wfo_error_set(err, rc, "workflow '%s' has no version %d (the latest is %d)", name,
                          version, row.version);
        else if (rc == WFO_ENOTFOUND)
            wfo_error_set(err, rc, "workflow '%s' not found", name);
        goto out;
    }
    def_key(&key, ns, name, row.version);
    pthread_mutex_lock(&e->defs_mu);
    struct def *d = wfo_map_get(&e->defs, key.buf);
    if (d)
        *out = def_ref(d);
    pthread_mutex_unlock(&e->defs_mu);
    if (d)
        goto out;
    struct def_problems probs = {0};
    rc = def_compile(row.doc, &d, &probs);
    if (rc < 0) {
        wfo_error_set(err, WFO_ESTORE, "stored workflow '%s' v%d does not compile: %s: %s", name,
                      row.version, probs.n ? probs.items[0].path : "",
                      probs.n ? probs.items[0].message : "");
        def_problems_release(&probs);
        goto out;
    }
    d->version = row.version;
    pthread_mutex_lock(&e->defs_mu);
    int stale = e->wf_epoch != epoch; /* deleted since it was read: not cached */
    struct def *raced = stale ? NULL : wfo_map_get(&e->defs, key.buf);
    if (raced) {
        def_unref(d);
        d = raced;
        *out = def_ref(d);
    } else if (!stale) {
        wfo_map_put(&e->defs, wfo_strdup(key.buf), d);
        *out = def_ref(d);
    } else {
        *out = d;
    }
    pthread_mutex_unlock(&e->defs_mu);
    if (version <= 0 && !stale)
        defs_set_latest(e, ns, d);
out:
    json_decref(row.doc);
    wfo_buf_release(&key);
    return rc < 0 ? rc : 0;
}

static json_t *problems_json(const struct def_problems *p)
{
    json_t *a = json_array();
    for (int i = 0; i < p->n; i++)
        json_array_append_new(
            a, json_pack("{s:s, s:s}", "path", p->items[i].path, "message", p->items[i].message));
    return a;
}

struct put_ud {
    json_t *doc;
    int version;
    int64_t created_at;
};

static int put_cb(void *ud, const struct store_workflow *w)
{
    struct put_ud *p = ud;
    p->version = w->version;
    p->created_at = w->created_at;
    return 0;
}

int engine_put_workflow(struct wfo_engine *e, const char *ns, json_t *doc, int *created,
                        json_t **out, json_t **problems, struct wfo_error *err)
{
    struct def *d = NULL;
    struct def_problems probs = {0};
    char *canon = NULL;
    int rc = def_compile(doc, &d, &probs);
    if (rc < 0) {
        if (problems)
            *problems = problems_json(&probs);
        wfo_error_set(err, WFO_EDEFINITION, "invalid workflow definition: %s: %s",
                      probs.n ? probs.items[0].path : "", probs.n ? probs.items[0].message : "");
        goto out;
    }
    struct wfo_buf where = WFO_BUF_INIT;
    if (!e->opt.exec_enabled && def_find_type(d, STEP_EXEC, &where)) {
        /* refused now rather than failed at run time */
        def_problems_add(&probs, where.buf,
                         "exec steps are disabled on this server (exec.enabled: false)");
        wfo_buf_release(&where);
        if (problems)
            *problems = problems_json(&probs);
        rc = wfo_error_set(err, WFO_EDEFINITION, "invalid workflow definition: %s: %s",
                           probs.items[0].path, probs.items[0].message);
        goto out;
    }
    wfo_buf_release(&where);
    canon = wfo_json_dumps(doc);
    int64_t epoch = defs_epoch(e);
    struct put_ud p = {0};
    struct store_workflow w = {
        .namespace = ns, .name = d->name, .hash = d->hash, .definition = canon};
    int c = 0;
    rc = e->store->ops->put_workflow(e->store, &w, &c, put_cb, &p, err);
    if (rc < 0)
        goto out;
    atomic_fetch_add(&e->wf_gen, 1); /* before the answer: triggers see it (triggers.c) */
    /* the compiled definition is cached: executions need not compile it again */
    struct wfo_buf key = WFO_BUF_INIT;
    def_key(&key, ns, d->name, p.version);
    pthread_mutex_lock(&e->defs_mu);
    int stale = e->wf_epoch != epoch; /* deleted meanwhile: not cached */
    struct def *cached = stale ? NULL : wfo_map_get(&e->defs, key.buf);
    if (!cached && !stale) {
        d->version = p.version;
        wfo_map_put(&e->defs, wfo_buf_detach(&key, NULL), def_ref(d));
        cached = d;
    }
    pthread_mutex_unlock(&e->defs_mu);
    wfo_buf_release(&key);
    if (!stale)
        defs_set_latest(e, ns, cached);
    if (created)
        *created = c;
    if (out)
        *out = doc_workflow_new(d->name, p.version, p.created_at, json_incref(doc));
out:
    def_problems_release(&probs);
    def_unref(d);
    free(canon);
    return rc;
}

int wfo_engine_put_workflow(struct wfo_engine *e, const char *text, size_t len, int *created,
                            char **out, char **problems, struct wfo_error *err)
{
    json_t *doc = NULL, *o = NULL, *p = NULL;
    int rc = wfo_doc_parse(text, len, &doc, err);
    if (rc < 0)
        return rc;
    rc = engine_put_workflow(e, e->ns, doc, created, out ? &o : NULL, problems ? &p : NULL, err);
    if (out && o)
        *out = wfo_json_dumps(o);
    if (problems && p)
        *problems = wfo_json_dumps(p);
    json_decref(o);
    json_decref(p);
    json_decref(doc);
    return rc;
}

int defs_stored(struct wfo_engine *e, const char *ns, const struct def *def)
{
    struct wf_row row = {0};
    struct wfo_error err = WFO_ERROR_INIT;
    int rc =
        e->store->ops->get_workflow(e->store, ns, def->name, def->version, wf_row_cb, &row, &err);
    json_decref(row.doc);
    return rc == 0 && strcmp(row.hash, def->hash) == 0;
}
