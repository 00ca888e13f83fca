/*
 * ops.c - what operators and tools read: /healthz, /readyz, /metrics
 * (Prometheus text, SPEC 7), /v1/openapi.json, and the page at /.
 * docs/interfaces/api.md lists the endpoints and the metrics.
 *
 * Executions by workflow: the engine's progress callback says that an
 * execution started or ended, with its workflow's name, so the counts need
 * no bookkeeping of ids and no store reads; a workflow appears as a label
 * once one of its executions started or ended in this process.
 */
#include "common/compat.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "openapi.yaml.h"
#include "../core/def.h"
#include "../core/engine.h"
#include "../core/query.h"
#include "../common/duration.h"
#include "../common/log.h"
#include "../common/map.h"
#include "../common/util.h"
#include "../common/yaml.h"

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
    struct wfo_map wfs; /* "ns/name" -> wf_count */
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
    for (size_t i = 0; wfo_map_next(&m->wfs, &i, &k, &v);) {
        free(((struct wf_count *)v)->key);
        free(v);
    }
    wfo_map_release(&m->wfs);
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

/* The workflow and namespace come with the event, from the execution
 * itself: a series exists only for a workflow that an execution ran (a
 * name someone merely asked for makes none). */
void api_metrics_on_progress(void *ud, const struct wfo_progress *p)
{
    struct api_metrics *m = ud;
    enum ended what;
    if (!p->type || strncmp(p->type, "execution.", 10) != 0 || !p->workflow)
        return;
    const char *t = p->type + 10;
    for (what = 0; what < END__N; what++)
        if (strcmp(t, end_names[what]) == 0)
            break;
    if (what == END__N)
        return;
    pthread_mutex_lock(&m->mu);
    wf_get(m, p->ns, p->workflow)->n[what]++;
    pthread_mutex_unlock(&m->mu);
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

/* A label value: backslash, double quote and newline escaped. */
static void label_value(struct wfo_buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            wfo_buf_addch(b, '\\');
        if (*s == '\n')
            wfo_buf_adds(b, "\\n");
        else
            wfo_buf_addch(b, *s);
    }
}

/* Step durations by step type (a histogram per type, every type listed)
 * and the task queues by queue: only queues a task was put on, whose
 * names come from registered definitions, never a name a poller made up
 * (so a worker cannot grow the label set). Queues of several namespaces
 * with one name are summed (the age: the oldest). */
static void render_steps_and_queues(struct wfo_engine *e, const struct engine_stats *st,
                                    struct wfo_buf *b, const char *ns, int all)
{
    metric_head(b, "wfo_step_duration_seconds", "histogram",
                "Steps that ended (completed, failed, caught), from their first attempt's start "
                "to their end, by step type.");
    for (int t = 0; t < STEP__COUNT; t++) {
        long long cum = 0;
        for (int i = 0; i < ENGINE_STEP_BUCKETS; i++) {
            cum += st->steps[t].bucket[i];
            wfo_buf_addf(b, "wfo_step_duration_seconds_bucket{type=\"%s\",le=\"%g\"} %lld\n",
                         step_type_names[t], engine_step_buckets[i], cum);
        }
        cum += st->steps[t].bucket[ENGINE_STEP_BUCKETS];
        wfo_buf_addf(b, "wfo_step_duration_seconds_bucket{type=\"%s\",le=\"+Inf\"} %lld\n",
                     step_type_names[t], cum);
        wfo_buf_addf(b, "wfo_step_duration_seconds_sum{type=\"%s\"} %.3f\n", step_type_names[t],
                     st->steps[t].sum_s);
        wfo_buf_addf(b, "wfo_step_duration_seconds_count{type=\"%s\"} %lld\n", step_type_names[t],
                     st->steps[t].count);
    }

    /* SPEC 4: no queue name of another namespace (with tokens, /metrics
     * names the caller's only; without a token, none) */
    json_t *queues = all || ns ? engine_queues(e, NULL, 1) : json_array();
    json_t *q, *by = json_object();
    size_t i;
    json_array_foreach(queues, i, q)
    {
        const char *name = wfo_json_str(q, "name");
        /* all namespaces' queues, read with their lease expiries (which a
         * namespace's own list leaves out): the caller's only */
        if (!all && strcmp(wfo_json_str(q, "namespace"), ns) != 0)
            continue;
        json_t *sum = json_object_get(by, name);
        long long pollers = (long long)json_array_size(json_object_get(q, "pollers"));
        if (!sum) {
            json_object_set_new(
                by, name,
                json_pack("{s:O, s:O, s:O, s:I, s:O}", "ready", json_object_get(q, "ready"),
                          "leased", json_object_get(q, "leased"), "oldest_ready_age_ms",
                          json_object_get(q, "oldest_ready_age_ms"), "pollers", (json_int_t)pollers,
                          "lease_expiries", json_object_get(q, "lease_expiries")));
            continue;
        }
        const char *add[] = {"ready", "leased", "lease_expiries"};
        for (size_t k = 0; k < WFO_ARRAY_SIZE(add); k++)
            json_object_set_new(sum, add[k],
                                json_integer(json_integer_value(json_object_get(sum, add[k])) +
                                             json_integer_value(json_object_get(q, add[k]))));
        json_object_set_new(
            sum, "pollers",
            json_integer(json_integer_value(json_object_get(sum, "pollers")) + pollers));
        if (json_integer_value(json_object_get(q, "oldest_ready_age_ms")) >
            json_integer_value(json_object_get(sum, "oldest_ready_age_ms")))
            json_object_set(sum, "oldest_ready_age_ms", json_object_get(q, "oldest_ready_age_ms"));
    }
    static const struct {
        const char *name, *type, *field, *help;
        int ms;
    } qm[] = {
        {"wfo_queue_ready_tasks", "gauge", "ready", "Tasks waiting for a worker, by queue.", 0},
        {"wfo_queue_leased_tasks", "gauge", "leased", "Tasks leased to a worker, by queue.", 0},
        {"wfo_queue_oldest_ready_age_seconds", "gauge", "oldest_ready_age_ms",
         "How long the oldest ready task of the queue has waited (0: none ready).", 1},
        {"wfo_queue_pollers", "gauge", "pollers",
         "Workers that polled the queue in the last minute.", 0},
        {"wfo_queue_lease_expiries_total", "counter", "lease_expiries",
         "Leases of the queue's tasks that ran out before the worker answered.", 0},
    };
    for (size_t k = 0; k < WFO_ARRAY_SIZE(qm); k++) {
        const char *name;
        json_t *v;
        metric_head(b, qm[k].name, qm[k].type, qm[k].help);
        json_object_foreach(by, name, v)
        {
            long long n = (long long)json_integer_value(json_object_get(v, qm[k].field));
            wfo_buf_addf(b, "%s{queue=\"", qm[k].name);
            label_value(b, name);
            if (qm[k].ms)
                wfo_buf_addf(b, "\"} %.3f\n", (double)n / 1000.0);
            else
                wfo_buf_addf(b, "\"} %lld\n", n);
        }
    }
    json_decref(by);
    json_decref(queues);
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
    render_steps_and_queues(e, &st, b, ns, all);
    metric_head(b, "wfo_timers", "gauge",
                "Durable timers due within the next minute, held in memory (those due later stay "
                "in the store).");
    wfo_buf_addf(b, "wfo_timers %lld\n", st.timers);
    metric_head(b, "wfo_timers_fired_total", "counter",
                "Durable timers that came due and fired (retries, sleeps, timeouts).");
    wfo_buf_addf(b, "wfo_timers_fired_total %lld\n", st.timers_fired);
    metric_head(b, "wfo_store_read_retries_total", "counter",
                "Store reads of the engine that failed and were tried again.");
    wfo_buf_addf(b, "wfo_store_read_retries_total %lld\n", st.read_retries);
    metric_head(b, "wfo_shards_held", "gauge",
                "Shards of the store this node holds (all of them unless in a cluster).");
    wfo_buf_addf(b, "wfo_shards_held %d\n", st.shards_held);
    metric_head(b, "wfo_engine_restarts_total", "counter",
                "Recoveries from the store in place after a failed commit.");
    wfo_buf_addf(b, "wfo_engine_restarts_total %lld\n", st.restarts);
    metric_head(b, "wfo_retention_deleted_total", "counter",
                "Ended executions deleted by retention.finished, with their rows.");
    wfo_buf_addf(b, "wfo_retention_deleted_total %lld\n", st.retention_deleted);
    /* webhooks (SPEC 7): by result and status only, never by subscription,
     * URL or namespace (/metrics needs no token, SPEC 4) */
    metric_head(b, "wfo_webhook_deliveries_total", "counter",
                "Webhook delivery attempts by result: success (2xx), http_error (another "
                "status), error (no answer: connection, timeout, refused address).");
    wfo_buf_addf(b, "wfo_webhook_deliveries_total{result=\"success\"} %lld\n", st.webhook_ok);
    wfo_buf_addf(b, "wfo_webhook_deliveries_total{result=\"http_error\"} %lld\n",
                 st.webhook_http_error);
    wfo_buf_addf(b, "wfo_webhook_deliveries_total{result=\"error\"} %lld\n", st.webhook_error);
    metric_head(b, "wfo_webhook_failures_total", "counter",
                "Webhook delivery attempts that failed (http_error and error together).");
    wfo_buf_addf(b, "wfo_webhook_failures_total %lld\n", st.webhook_http_error + st.webhook_error);
    metric_head(b, "wfo_webhook_subscriptions", "gauge",
                "Webhook subscriptions being delivered, by status.");
    wfo_buf_addf(b, "wfo_webhook_subscriptions{status=\"active\"} %lld\n", st.webhooks_active);
    wfo_buf_addf(b, "wfo_webhook_subscriptions{status=\"failing\"} %lld\n", st.webhooks_failing);
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

int api_store_down(struct api *a, struct api_resp *resp)
{
    struct wfo_error e = WFO_ERROR_INIT;
    int rc = query_ping(a->engine, &e);
    if (rc == 0)
        return 0;
    char msg[600];
    snprintf(msg, sizeof(msg), "store: %s", e.message);
    api_resp_error(resp, 503, wfo_error_type(rc), msg);
    return 1;
}

int api_ops_readyz(struct api *a, struct api_req *req, struct api_resp *resp, struct wfo_error *err)
{
    struct wfo_error e = WFO_ERROR_INIT;
    if (atomic_load(&a->stopping)) {
        api_resp_error(resp, 503, "Unavailable", "the server is shutting down");
        return 0;
    }
    if (api_store_down(a, resp))
        return 0;
    if (engine_failed(a->engine, &e) < 0) { /* E2: until it recovers; E7 */
        char msg[600];
        snprintf(msg, sizeof(msg), "engine: %s", e.message);
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

static pthread_once_t schema_once = PTHREAD_ONCE_INIT;
static json_t *schema_doc;

static void schema_load(void)
{
    schema_doc = def_schema("/v1/schemas/workflow.json");
}

/* GET /v1/schemas/workflow.json: built once from core/def.c's table. */
int api_ops_schema(struct api *a, struct api_req *req, struct api_resp *resp, struct wfo_error *err)
{
    pthread_once(&schema_once, schema_load);
    resp->status = 200;
    resp->text = wfo_json_dumps_pretty(schema_doc);
    resp->text_len = strlen(resp->text);
    resp->content_type = "application/schema+json";
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
