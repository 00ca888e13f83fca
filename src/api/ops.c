/*
 * ops.c - what operators and tools read: /healthz, /readyz, /metrics
 * (Prometheus text, SPEC 7), /v1/openapi.json, and the page at /.
 * docs/interfaces/api.md lists the endpoints and the metrics.
 *
 * Executions by workflow: the engine's progress callback says that an
 * execution started or ended, by id. The metrics keep id -> workflow for
 * the executions they know (those started through the API, and those
 * running when the server started: api_metrics_seed); an id they do not
 * know (a child execution, say) is kept aside and looked up in the store
 * at the next scrape, so the engine thread never waits for a read.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "openapi.yaml.h"
#include "../core/engine.h"
#include "../common/duration.h"
#include "../common/log.h"
#include "../common/map.h"
#include "../common/util.h"
#include "../common/yaml.h"
#include "../common/banned.h"

/* Unknown ids kept aside between scrapes, at most. */
#define PENDING_MAX 100000

enum ended { END_STARTED, END_COMPLETED, END_FAILED, END_CANCELLED, END_TERMINATED, END__N };
static const char *const end_names[END__N] = {"started", "completed", "failed", "cancelled",
                                              "terminated"};
static const char *const end_help[END__N] = {
    "Executions started, by workflow.", "Executions that completed, by workflow.",
    "Executions that failed, by workflow.", "Executions cancelled, by workflow.",
    "Executions terminated, by workflow."};

struct wf_count {
    char *key;  /* "NS/NAME" (neither holds a '/') */
    char *name; /* points into key */
    char ns[129];
    long long n[END__N];
};

struct known {
    struct wf_count *wf;
    char id[]; /* sized to the id: there is one per running execution */
};

struct pending {
    char *id;
    enum ended what;
};

struct http_count {
    const char *method; /* static strings from the route table, or NULL */
    const char *route;
    int status;
    long long n;
    int64_t ms_sum;
};

struct audit_count {
    const char *method, *route, *outcome; /* static strings */
    long long n;
};

struct api_metrics {
    pthread_mutex_t mu;
    struct audit_count *audit;
    int n_audit, alloc_audit;
    struct wfo_map wfs;   /* "ns/name" -> wf_count */
    struct wfo_map execs; /* id -> known */
    struct pending *pending;
    int n_pending, alloc_pending;
    long long dropped;
    struct http_count *http;
    int n_http, alloc_http;
    int64_t started_ms;
};

struct api_metrics *api_metrics_new(void)
{
    struct api_metrics *m = wfo_calloc(1, sizeof(*m));
    pthread_mutex_init(&m->mu, NULL);
    m->started_ms = wfo_now_ms();
    return m;
}

void api_metrics_free(struct api_metrics *m)
{
    if (!m)
        return;
    const char *k;
    void *v;
    for (size_t i = 0; wfo_map_next(&m->execs, &i, &k, &v);)
        free(v);
    wfo_map_release(&m->execs);
    for (size_t i = 0; wfo_map_next(&m->wfs, &i, &k, &v);) {
        free(((struct wf_count *)v)->key);
        free(v);
    }
    wfo_map_release(&m->wfs);
    for (int i = 0; i < m->n_pending; i++)
        free(m->pending[i].id);
    free(m->pending);
    free(m->http);
    free(m->audit);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

/* With m->mu held. */
static struct wf_count *wf_get(struct api_metrics *m, const char *ns, const char *name)
{
    struct wfo_buf k = WFO_BUF_INIT;
    wfo_buf_addf(&k, "%s/%s", ns ? ns : "", name);
    struct wf_count *w = wfo_map_get(&m->wfs, k.buf);
    if (!w) {
        w = wfo_calloc(1, sizeof(*w));
        snprintf(w->ns, sizeof(w->ns), "%s", ns ? ns : "");
        w->key = wfo_buf_detach(&k, NULL);
        w->name = w->key + strlen(ns ? ns : "") + 1;
        wfo_map_put(&m->wfs, w->key, w);
    }
    wfo_buf_release(&k);
    return w;
}

/* With m->mu held. */
static int known_add(struct api_metrics *m, const char *ns, const char *id, const char *workflow)
{
    if (strlen(id) >= WFO_EXEC_ID_SIZE || wfo_map_get(&m->execs, id))
        return 0;
    size_t n = strlen(id) + 1;
    struct known *k = wfo_calloc(1, sizeof(*k) + n);
    memcpy(k->id, id, n);
    k->wf = wf_get(m, ns, workflow);
    wfo_map_put(&m->execs, k->id, k);
    return 1;
}

int api_metrics_starting(struct api_metrics *m, const char *ns, const char *id,
                         const char *workflow)
{
    pthread_mutex_lock(&m->mu);
    int inserted = known_add(m, ns, id, workflow);
    pthread_mutex_unlock(&m->mu);
    return inserted;
}

void api_metrics_start_done(struct api_metrics *m, const char *id, int inserted, int started)
{
    if (!inserted || started)
        return;
    pthread_mutex_lock(&m->mu);
    free(wfo_map_del(&m->execs, id));
    pthread_mutex_unlock(&m->mu);
}

void api_metrics_on_progress(void *ud, const struct wfo_progress *p)
{
    struct api_metrics *m = ud;
    enum ended what;
    if (!p->type || strncmp(p->type, "execution.", 10) != 0 || !p->exec_id)
        return;
    const char *t = p->type + 10;
    for (what = 0; what < END__N; what++)
        if (strcmp(t, end_names[what]) == 0)
            break;
    if (what == END__N)
        return;
    pthread_mutex_lock(&m->mu);
    struct known *k = wfo_map_get(&m->execs, p->exec_id);
    if (k) {
        k->wf->n[what]++;
        if (what != END_STARTED)
            free(wfo_map_del(&m->execs, p->exec_id));
    } else if (m->n_pending < PENDING_MAX && strlen(p->exec_id) < WFO_EXEC_ID_SIZE) {
        if (m->n_pending == m->alloc_pending) {
            m->alloc_pending = m->alloc_pending ? 2 * m->alloc_pending : 64;
            m->pending = wfo_realloc(m->pending, (size_t)m->alloc_pending * sizeof(*m->pending));
        }
        struct pending *q = &m->pending[m->n_pending++];
        q->id = wfo_strdup(p->exec_id);
        q->what = what;
    } else {
        wf_get(m, "", "unknown")->n[what]++;
    }
    pthread_mutex_unlock(&m->mu);
}

static int seed_cb(void *ud, const struct store_exec *r)
{
    known_add(ud, r->namespace, r->id, r->workflow);
    return 0;
}

void api_metrics_seed(struct api_metrics *m, struct wfo_engine *e)
{
    struct wfo_store *s = engine_store(e);
    struct wfo_error err = WFO_ERROR_INIT;
    pthread_mutex_lock(&m->mu);
    if (s->ops->list_active_execs(s, seed_cb, m, &err) < 0)
        wfo_warn(NULL, NULL, "metrics: reading running executions: %s", err.message);
    pthread_mutex_unlock(&m->mu);
}

struct name_ud {
    char ns[129], wf[256];
};

static int name_cb(void *ud, const struct store_exec *r)
{
    struct name_ud *u = ud;
    snprintf(u->ns, sizeof(u->ns), "%s", r->namespace);
    snprintf(u->wf, sizeof(u->wf), "%s", r->workflow);
    return 0;
}

/* Looks up the workflow of every pending id (outside the lock). */
static void pending_resolve(struct api_metrics *m, struct wfo_store *s)
{
    pthread_mutex_lock(&m->mu);
    struct pending *list = m->pending;
    int n = m->n_pending;
    m->pending = NULL;
    m->n_pending = m->alloc_pending = 0;
    pthread_mutex_unlock(&m->mu);
    for (int i = 0; i < n; i++) {
        struct name_ud u = {"", "unknown"};
        struct wfo_error err = WFO_ERROR_INIT;
        s->ops->get_exec(s, list[i].id, name_cb, &u, &err);
        pthread_mutex_lock(&m->mu);
        struct wf_count *w = wf_get(m, u.ns, u.wf);
        w->n[list[i].what]++;
        /* a started child is known from now on: its end is counted directly */
        if (list[i].what == END_STARTED)
            known_add(m, u.ns, list[i].id, u.wf);
        else
            free(wfo_map_del(&m->execs, list[i].id));
        pthread_mutex_unlock(&m->mu);
        free(list[i].id);
    }
    free(list);
}

void api_metrics_http(struct api_metrics *m, const char *method, const char *route, int status,
                      int64_t ms)
{
    pthread_mutex_lock(&m->mu);
    struct http_count *c = NULL;
    for (int i = 0; i < m->n_http && !c; i++)
        if (m->http[i].route == route && m->http[i].method == method && m->http[i].status == status)
            c = &m->http[i];
    if (!c) {
        if (m->n_http == m->alloc_http) {
            m->alloc_http = m->alloc_http ? 2 * m->alloc_http : 32;
            m->http = wfo_realloc(m->http, (size_t)m->alloc_http * sizeof(*m->http));
        }
        c = &m->http[m->n_http++];
        *c = (struct http_count){method, route, status, 0, 0};
    }
    c->n++;
    c->ms_sum += ms;
    pthread_mutex_unlock(&m->mu);
}

void api_metrics_audit(struct api_metrics *m, const char *method, const char *route,
                       const char *outcome)
{
    pthread_mutex_lock(&m->mu);
    struct audit_count *c = NULL;
    for (int i = 0; i < m->n_audit && !c; i++)
        if (m->audit[i].route == route && m->audit[i].method == method &&
            strcmp(m->audit[i].outcome, outcome) == 0)
            c = &m->audit[i];
    if (!c) {
        GROW(m->audit, m->n_audit, m->alloc_audit);
        c = &m->audit[m->n_audit++];
        *c = (struct audit_count){method, route, outcome, 0};
    }
    c->n++;
    pthread_mutex_unlock(&m->mu);
}

static int wf_cmp(const void *x, const void *y)
{
    const struct wf_count *a = *(struct wf_count *const *)x, *b = *(struct wf_count *const *)y;
    int c = strcmp(a->name, b->name);
    return c ? c : strcmp(a->ns, b->ns);
}

static void metric_head(struct wfo_buf *b, const char *name, const char *type, const char *help)
{
    wfo_buf_addf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Series labelled with a workflow's name are shown only for namespace ns
 * (NULL: none; all: every one, as a server without tokens has only its
 * one namespace) (SPEC 4: no name of another namespace in any label). */
static void render(struct api_metrics *m, struct wfo_engine *e, struct wfo_buf *b, const char *ns,
                   int all)
{
    struct engine_stats st;
    memset(&st, 0, sizeof(st));
    engine_stats(e, &st);

    pthread_mutex_lock(&m->mu);
    struct wf_count **wfs = wfo_calloc(m->wfs.len + 1, sizeof(*wfs));
    size_t n = 0;
    const char *k;
    void *v;
    for (size_t i = 0; wfo_map_next(&m->wfs, &i, &k, &v);) {
        const struct wf_count *w = v;
        if (all || (ns && strcmp(w->ns, ns) == 0))
            wfs[n++] = v;
    }
    qsort(wfs, n, sizeof(*wfs), wf_cmp);
    for (int what = 0; what < END__N; what++) {
        char name[64];
        snprintf(name, sizeof(name), "wfo_executions_%s_total", end_names[what]);
        metric_head(b, name, "counter", end_help[what]);
        for (size_t i = 0; i < n; i++)
            wfo_buf_addf(b, "%s{workflow=\"%s\"} %lld\n", name, wfs[i]->name, wfs[i]->n[what]);
    }
    free(wfs);
    metric_head(b, "wfo_audit_events_total", "counter",
                "Audited requests (state changes, and any refused for its token), by method, "
                "route and outcome (ok, failed, denied).");
    for (int i = 0; i < m->n_audit; i++)
        wfo_buf_addf(b, "wfo_audit_events_total{method=\"%s\",route=\"%s\",outcome=\"%s\"} %lld\n",
                     m->audit[i].method, m->audit[i].route, m->audit[i].outcome, m->audit[i].n);
    metric_head(b, "wfo_http_requests_total", "counter",
                "HTTP requests answered, by method, route and status.");
    for (int i = 0; i < m->n_http; i++)
        wfo_buf_addf(b, "wfo_http_requests_total{method=\"%s\",route=\"%s\",status=\"%d\"} %lld\n",
                     m->http[i].method ? m->http[i].method : "", m->http[i].route,
                     m->http[i].status, m->http[i].n);
    metric_head(b, "wfo_http_request_duration_seconds", "summary",
                "Time spent answering HTTP requests, by route (long polls included).");
    for (int i = 0; i < m->n_http; i++) {
        /* one line per route: sum the statuses */
        int first = 1;
        for (int j = 0; j < i && first; j++)
            if (m->http[j].route == m->http[i].route && m->http[j].method == m->http[i].method)
                first = 0;
        if (!first)
            continue;
        long long cnt = 0;
        int64_t sum = 0;
        for (int j = i; j < m->n_http; j++)
            if (m->http[j].route == m->http[i].route && m->http[j].method == m->http[i].method) {
                cnt += m->http[j].n;
                sum += m->http[j].ms_sum;
            }
        const char *meth = m->http[i].method ? m->http[i].method : "";
        wfo_buf_addf(b,
                     "wfo_http_request_duration_seconds_sum{method=\"%s\",route=\"%s\"} %.3f\n"
                     "wfo_http_request_duration_seconds_count{method=\"%s\",route=\"%s\"} %lld\n",
                     meth, m->http[i].route, (double)sum / 1000.0, meth, m->http[i].route, cnt);
    }
    int64_t started_ms = m->started_ms;
    pthread_mutex_unlock(&m->mu);

    metric_head(b, "wfo_transitions_total", "counter", "Step and execution transitions applied.");
    wfo_buf_addf(b, "wfo_transitions_total %lld\n", st.transitions);
    metric_head(b, "wfo_store_commits_total", "counter", "Store transactions committed.");
    wfo_buf_addf(b, "wfo_store_commits_total %lld\n", st.commits);
    metric_head(b, "wfo_store_commit_duration_seconds", "summary",
                "Time spent committing batches of transitions to the store.");
    wfo_buf_addf(b, "wfo_store_commit_duration_seconds_sum %.6f\n", st.commit_ms_sum / 1000.0);
    wfo_buf_addf(b, "wfo_store_commit_duration_seconds_count %lld\n", st.commits);
    metric_head(b, "wfo_tasks_ready", "gauge", "Tasks waiting for a worker.");
    wfo_buf_addf(b, "wfo_tasks_ready %lld\n", st.tasks_ready);
    metric_head(b, "wfo_tasks_leased", "gauge", "Tasks leased to a worker.");
    wfo_buf_addf(b, "wfo_tasks_leased %lld\n", st.tasks_leased);
    metric_head(b, "wfo_task_lease_expiries_total", "counter",
                "Leases that ran out before the worker answered.");
    wfo_buf_addf(b, "wfo_task_lease_expiries_total %lld\n", st.lease_expiries);
    metric_head(b, "wfo_timers", "gauge", "Durable timers armed (retries, sleeps, timeouts).");
    wfo_buf_addf(b, "wfo_timers %lld\n", st.timers);
    metric_head(b, "wfo_process_start_time_seconds", "gauge",
                "When the server started, in seconds since the epoch.");
    wfo_buf_addf(b, "wfo_process_start_time_seconds %.3f\n", (double)started_ms / 1000.0);
}

/* ---- handlers ---- */

int api_ops_healthz(struct api *a, struct api_req *req, struct api_resp *resp,
                    struct wfo_error *err)
{
    api_resp_json(resp, 200, json_pack("{s:s}", "status", "ok"));
    return 0;
}

int api_ops_readyz(struct api *a, struct api_req *req, struct api_resp *resp, struct wfo_error *err)
{
    struct wfo_store *s = engine_store(a->engine);
    struct wfo_error e = WFO_ERROR_INIT;
    if (atomic_load(&a->stopping)) {
        api_resp_error(resp, 503, "Unavailable", "the server is shutting down");
        return 0;
    }
    if (s->ops->ping(s, &e) < 0) {
        char msg[600];
        snprintf(msg, sizeof(msg), "store: %s", e.message);
        api_resp_error(resp, 503, "Unavailable", msg);
        return 0;
    }
    api_resp_json(resp, 200, json_pack("{s:s}", "status", "ready"));
    return 0;
}

int api_ops_metrics(struct api *a, struct api_req *req, struct api_resp *resp,
                    struct wfo_error *err)
{
    struct wfo_buf b = WFO_BUF_INIT;
    if (a->metrics) {
        pending_resolve(a->metrics, engine_store(a->engine));
        render(a->metrics, a->engine, &b, req->ns, a->n_tokens == 0);
    }
    resp->status = 200;
    resp->text = wfo_buf_detach(&b, &resp->text_len);
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
    return 0;
}

static pthread_once_t openapi_once = PTHREAD_ONCE_INIT;
static json_t *openapi_doc;

static void openapi_load(void)
{
    struct wfo_error err = WFO_ERROR_INIT;
    if (wfo_yaml_parse(api_openapi_yaml, sizeof(api_openapi_yaml) - 1, &openapi_doc, &err) < 0)
        wfo_err(NULL, NULL, "openapi.yaml.h: %s", err.message);
}

int api_ops_openapi(struct api *a, struct api_req *req, struct api_resp *resp,
                    struct wfo_error *err)
{
    pthread_once(&openapi_once, openapi_load);
    if (!openapi_doc)
        return wfo_error_set(err, WFO_EINTERNAL, "the OpenAPI document does not parse");
    api_resp_json(resp, 200, json_incref(openapi_doc));
    return 0;
}

/* The web page (SPEC 7): one self-contained file, src/api/www/index.html,
 * that talks to the API from the browser. */
#include "www/index.html.h"

int api_ops_index(struct api *a, struct api_req *req, struct api_resp *resp, struct wfo_error *err)
{
    resp->status = 200;
    resp->text = wfo_strdup(index_html);
    resp->text_len = sizeof(index_html) - 1;
    resp->content_type = "text/html; charset=utf-8";
    return 0;
}
