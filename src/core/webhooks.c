/*
 * webhooks.c - webhook subscriptions (SPEC 2.5 "Webhooks"): storing them
 * for the API, and delivering the outbox to them.
 * docs/implementation/event_processing.md "Webhooks" tells the story;
 * store.h (struct store_subscription, C1-C2) the rows.
 *
 * One manager thread keeps one delivery thread per subscription in the
 * store: it lists them at start, at once when the API adds or deletes one
 * (webhooks_changed), and every WEBHOOK_POLL_MS (another node's changes).
 * Each delivery thread:
 *
 *   D1. reads its namespace's outbox after its cursor, in seq order
 *       (events.c O2), and POSTs each row that matches its filters, one at
 *       a time: the next row goes only after this one was answered 2xx, so
 *       the order per subscription holds across retries and restarts.
 *   D2. moves the cursor in the store right after each 2xx, before it does
 *       anything else (subscription_delivered, one statement). A crash
 *       after that commit delivers nothing twice; a crash between the 2xx
 *       and the commit (one SQLite statement) delivers that one row again
 *       after the restart: at least once, with the event's id in the body
 *       and in X-Wfo-Event-Id for receivers to deduplicate. Rows filtered
 *       out move the cursor too (not counted as delivered), before the
 *       next delivery or at the end of a batch.
 *   D3. a failed attempt (not 2xx, no answer within the timeout, an
 *       address deny_private refuses) is tried again after 1 s, 2 s, 4 s,
 *       ... at most WEBHOOK_BACKOFF_MAX_MS, plus up to 10 % jitter (never
 *       earlier); the row stays first in line. failing_after consecutive
 *       failures make the status failing; the next 2xx makes it active.
 *       The failure count, status, next attempt and last error are in the
 *       store, so a restart keeps the backoff and GET shows them.
 *   D4. a thread blocks only itself: a slow or dead endpoint never delays
 *       another subscription, nor the engine, which only bumps outbox_gen
 *       after a commit (events.c O3); the threads wait on it, so a new row
 *       goes out at once, and poll every WEBHOOK_POLL_MS besides.
 *   D5. stopping (the server's shutdown, a deleted subscription) cancels
 *       a request in flight within 100 ms (httpc cancel) and records
 *       nothing for it: the row is tried again later, at least once.
 *   D6. one engine delivers a subscription: the one that holds the shard
 *       of its id (sub_mine; the manager stops a thread whose shard went
 *       elsewhere at its next look). A lone server holds every shard of
 *       its store, so it delivers them all; in a cluster (E8) each node
 *       delivers the subscriptions of its shards, and rows other nodes
 *       commit reach it by the poll. While a shard moves, the old and the
 *       new node may both send the row in flight once: at least once, as
 *       after a crash (receivers deduplicate by X-Wfo-Event-Id).
 *   D7. a DELETE stops this node's thread of the subscription before it
 *       is answered (webhooks_halt): no row committed after the answer is
 *       sent. The manager's list of threads changes under mu for it.
 */
#include "common/compat.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine_int.h"
#include "doc.h"
#include "../common/crypto.h"
#include "../common/duration.h"
#include "../common/httpc.h"
#include "../common/log.h"
#include "../common/util.h"

#define WEBHOOK_POLL_MS 1000
#define WEBHOOK_BATCH 64 /* outbox rows read at once */
#define WEBHOOK_BACKOFF_MS 1000
#define WEBHOOK_BACKOFF_MAX_MS 300000
#define WEBHOOK_MAX_PER_NS 100
#define WEBHOOK_ERROR_MAX 300 /* bytes of last_error */

/* One subscription's delivery thread. Its fields are set by the manager
 * before the thread starts and then are the thread's own, but for stop. */
struct sub_thread {
    struct webhooks *w;
    char *id, *ns, *url, *secret, *workflow;
    json_t *types;
    int64_t cursor; /* store.h C1 */
    int failures;
    int failing;
    int64_t next_attempt_at;
    atomic_int stop;
    int seen; /* the manager's mark */
    pthread_t thread;
    struct sub_thread *next;
};

struct webhooks {
    struct wfo_engine *e;
    struct engine_webhook_options opt;
    pthread_t manager;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC: a change, or stop */
    int stop;
    int64_t changes;
    struct sub_thread *subs; /* the manager's */
    atomic_llong ok, http_error, error;
    atomic_int threads, failing;
};

/* ---- the subscription's JSON ---- */

static json_t *sub_json(const struct store_subscription *r)
{
    json_t *types = wfo_json_text(r->types);
    return json_pack("{s:s, s:s, s:o, s:o, s:s, s:i, s:o, s:o, s:o, s:I, s:I, s:o}", "id", r->id,
                     "url", r->url, "types", types, "workflow",
                     r->workflow ? json_string(r->workflow) : json_null(), "status",
                     r->status ? r->status : "active", "failures", r->failures, "last_error",
                     r->last_error ? json_string(r->last_error) : json_null(), "next_attempt_at",
                     doc_time(r->next_attempt_at), "last_delivery_at",
                     doc_time(r->last_delivery_at), "delivered", (json_int_t)r->delivered, "cursor",
                     (json_int_t)r->cursor, "created_at", doc_time(r->created_at));
}

static int collect_sub(void *ud, const struct store_subscription *r)
{
    json_array_append_new(ud, sub_json(r));
    return 0;
}

static int one_sub(void *ud, const struct store_subscription *r)
{
    *(json_t **)ud = sub_json(r);
    return 0;
}

/* A back end made before schema 7 leaves the subscription ops NULL. */
static int subs_supported(struct wfo_engine *e, struct wfo_error *err)
{
    const struct store_ops *o = e->store->ops;
    if (o->put_subscription && o->get_subscription && o->list_subscriptions &&
        o->delete_subscription && o->subscription_delivered && o->subscription_failed)
        return 0;
    return wfo_error_set(err, WFO_ESTATE, "the '%s' store has no webhook subscriptions yet",
                         o->name);
}

/* D7: a deleted subscription's thread (this node's) is told to stop
 * before the DELETE is answered: it sends no row after it looks at its
 * stop flag, which it does before each row, so nothing committed after
 * the answer goes out. The manager, woken by webhooks_changed, joins the
 * thread. Another node's thread stops at that node's next sync
 * (WEBHOOK_POLL_MS). */
static void webhooks_halt(struct wfo_engine *e, const char *ns, const char *id)
{
    struct webhooks *w = e->webhooks;
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    for (struct sub_thread *t = w->subs; t; t = t->next)
        if (strcmp(t->id, id) == 0 && strcmp(t->ns, ns) == 0)
            atomic_store(&t->stop, 1);
    pthread_mutex_unlock(&w->mu);
}

static void webhooks_changed(struct wfo_engine *e)
{
    struct webhooks *w = e->webhooks;
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->changes++;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int engine_subscription_add(struct wfo_engine *e, const char *ns,
                            const struct engine_subscription *sub, json_t **out,
                            struct wfo_error *err)
{
    json_t *list = json_array();
    char id[WFO_ID_SIZE];
    char *types = NULL;
    int rc = subs_supported(e, err);
    if (rc == 0)
        rc = e->store->ops->list_subscriptions(e->store, ns, collect_sub, list, err);
    if (rc < 0)
        goto out;
    if (json_array_size(list) >= WEBHOOK_MAX_PER_NS) {
        rc = wfo_error_set(err, WFO_EINVAL, "a namespace may have at most %d subscriptions",
                           WEBHOOK_MAX_PER_NS);
        goto out;
    }
    wfo_id_new(id);
    types = wfo_json_dumps(sub->types);
    struct store_subscription row = {
        .id = id,
        .namespace = ns,
        .url = sub->url,
        .types = types,
        .workflow = sub->workflow,
        .secret = sub->secret,
        .created_at = wfo_now_ms(),
    };
    *out = NULL;
    rc = e->store->ops->put_subscription(e->store, &row, one_sub, out, err);
    if (rc == 0)
        webhooks_changed(e);
out:
    free(types);
    json_decref(list);
    return rc;
}

int engine_subscription_list(struct wfo_engine *e, const char *ns, json_t **out,
                             struct wfo_error *err)
{
    json_t *list = json_array();
    int rc = subs_supported(e, err);
    if (rc == 0)
        rc = e->store->ops->list_subscriptions(e->store, ns, collect_sub, list, err);
    if (rc < 0) {
        json_decref(list);
        return rc;
    }
    *out = json_pack("{s:o}", "subscriptions", list);
    return 0;
}

int engine_subscription_get(struct wfo_engine *e, const char *ns, const char *id, json_t **out,
                            struct wfo_error *err)
{
    *out = NULL;
    int rc = subs_supported(e, err);
    if (rc < 0)
        return rc;
    if (!ns) /* store.h: NULL would be any namespace's */
        return wfo_error_set(err, WFO_ENOTFOUND, "subscription '%s' not found", id);
    return e->store->ops->get_subscription(e->store, ns, id, one_sub, out, err);
}

int engine_subscription_delete(struct wfo_engine *e, const char *ns, const char *id,
                               struct wfo_error *err)
{
    int rc = subs_supported(e, err);
    if (rc == 0)
        rc = e->store->ops->delete_subscription(e->store, ns, id, err);
    if (rc == 0)
        webhooks_halt(e, ns, id);
    if (rc == 0)
        webhooks_changed(e);
    return rc;
}

/* ---- one subscription's deliveries ---- */

struct ob_row {
    int64_t seq;
    char *id, *type, *exec_id, *event;
};

struct ob_rows {
    struct ob_row *v;
    int n, alloc;
};

static int collect_row(void *ud, const struct store_outbox *r)
{
    struct ob_rows *rows = ud;
    GROW(rows->v, rows->n, rows->alloc);
    rows->v[rows->n++] = (struct ob_row){
        .seq = r->seq,
        .id = wfo_strdup(r->event_id),
        .type = wfo_strdup(r->type),
        .exec_id = r->exec_id ? wfo_strdup(r->exec_id) : NULL,
        .event = wfo_strdup(r->event),
    };
    return 0;
}

static void rows_reset(struct ob_rows *rows)
{
    for (int i = 0; i < rows->n; i++) {
        free(rows->v[i].id);
        free(rows->v[i].type);
        free(rows->v[i].exec_id);
        free(rows->v[i].event);
    }
    rows->n = 0;
}

/* Sleeps up to ms, or until t is stopped. */
static void sub_sleep(struct sub_thread *t, int64_t ms)
{
    struct webhooks *w = t->w;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->mu);
    while (!atomic_load(&t->stop) && !w->stop)
        if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) != 0)
            break;
    pthread_mutex_unlock(&w->mu);
}

static int exec_workflow(void *ud, const struct store_exec *r)
{
    char **out = ud;
    *out = r->workflow ? wfo_strdup(r->workflow) : NULL;
    return 0;
}

/* Does row r go to t? Its type matches one of t's types; with t's
 * workflow filter, it is about an execution of that workflow (a lifecycle
 * event names it in data.workflow; an emitted one is looked up). */
static int sub_matches(struct sub_thread *t, const struct ob_row *r)
{
    size_t i;
    json_t *v;
    int ok = 0;
    json_array_foreach(t->types, i, v)
    {
        if (json_is_string(v) && wfo_type_matches(json_string_value(v), r->type)) {
            ok = 1;
            break;
        }
    }
    if (!ok || !t->workflow)
        return ok;
    if (!r->exec_id)
        return 0;
    json_t *ev = wfo_json_text(r->event);
    const char *wf = wfo_json_str(json_object_get(ev, "data"), "workflow");
    char *found = NULL;
    if (wf) {
        ok = strcmp(wf, t->workflow) == 0;
    } else {
        struct wfo_engine *e = t->w->e;
        struct wfo_error err = WFO_ERROR_INIT;
        if (e->store->ops->get_exec(e->store, r->exec_id, exec_workflow, &found, &err) == 0)
            ok = found && strcmp(found, t->workflow) == 0;
        else
            ok = 0; /* deleted by retention: nothing says it was this workflow's */
    }
    free(found);
    json_decref(ev);
    return ok;
}

/* A header value without control characters (an event id or type may hold
 * any text; a CR or LF would start another header). */
static void header_value(char *out, size_t size, const char *v)
{
    size_t o = 0;
    for (const char *p = v ? v : ""; *p && o + 1 < size; p++)
        out[o++] = (unsigned char)*p < 0x20 || *p == 0x7f ? ' ' : *p;
    out[o] = 0;
}

enum delivery { D_OK, D_FAILED, D_STOPPED };

/* POSTs row r to t's URL: the event JSON as stored, the bytes signed. */
static enum delivery deliver(struct sub_thread *t, const struct ob_row *r, char *why,
                             size_t why_size, int *http_error)
{
    struct webhooks *w = t->w;
    char sig[65], sig_h[80], attempt[24], id_h[300], type_h[300];
    size_t len = strlen(r->event);
    wfo_hmac_sha256_hex(t->secret, strlen(t->secret), r->event, len, sig);
    snprintf(sig_h, sizeof(sig_h), "sha256=%s", sig);
    snprintf(attempt, sizeof(attempt), "%d", t->failures + 1);
    header_value(id_h, sizeof(id_h), r->id);
    header_value(type_h, sizeof(type_h), r->type);
    struct httpc_header h[] = {
        {(char *)"Content-Type", (char *)"application/json"},
        {(char *)"User-Agent", (char *)"wfo-webhooks"},
        {(char *)"X-Wfo-Signature", sig_h},
        {(char *)"X-Wfo-Event-Id", id_h},
        {(char *)"X-Wfo-Event-Type", type_h},
        {(char *)"X-Wfo-Subscription", t->id},
        {(char *)"X-Wfo-Delivery-Attempt", attempt},
    };
    struct httpc_request req = {
        .method = "POST",
        .url = t->url,
        .headers = h,
        .n_headers = (int)WFO_ARRAY_SIZE(h),
        .body = r->event,
        .body_len = len,
        .timeout_ms = w->opt.timeout_ms,
        .max_body = 65536, /* the answer's body is not used */
        .max_redirects = 0,
        .deny_private = w->opt.deny_private,
        .cancel = &t->stop,
    };
    struct httpc_response res = {0};
    struct wfo_error err = WFO_ERROR_INIT;
    int rc = httpc_do(&req, &res, &err);
    enum delivery d;
    *http_error = 0;
    if (rc == WFO_ESHUTDOWN || atomic_load(&t->stop)) {
        d = D_STOPPED;
    } else if ((rc == 0 || rc == WFO_ETOOBIG) && res.status >= 200 && res.status < 300) {
        d = D_OK;
    } else if (rc == 0 || rc == WFO_ETOOBIG) {
        snprintf(why, why_size, "HTTP %ld", res.status);
        *http_error = 1;
        d = D_FAILED;
    } else {
        const char *m = err.message[0] ? err.message : wfo_strerror(rc);
        size_t n = strlen(m) < why_size - 1 ? strlen(m) : why_size - 1;
        memcpy(why, m, n);
        why[n] = 0;
        d = D_FAILED;
    }
    httpc_response_release(&res);
    return d;
}

/* D2: the rows up to seq are done. Tried until written (or t stops):
 * the next delivery waits for it. 0, or -1 when t should end (its
 * subscription is gone, or it stops). */
static int advance(struct sub_thread *t, int64_t seq, int delivered)
{
    struct wfo_engine *e = t->w->e;
    for (;;) {
        struct wfo_error err = WFO_ERROR_INIT;
        int rc = e->store->ops->subscription_delivered(e->store, t->id, seq, delivered,
                                                       wfo_now_ms(), &err);
        if (rc == 0 || rc == WFO_ECONFLICT) { /* ECONFLICT: another node moved it further */
            t->cursor = seq;
            return 0;
        }
        if (rc == WFO_ENOTFOUND)
            return -1;
        wfo_warn(NULL, NULL, "webhook %s: moving its cursor: %s", t->id, err.message);
        sub_sleep(t, WEBHOOK_POLL_MS);
        if (atomic_load(&t->stop))
            return -1;
    }
}

static void set_failing(struct sub_thread *t, int failing)
{
    if (t->failing == failing)
        return;
    t->failing = failing;
    atomic_fetch_add(&t->w->failing, failing ? 1 : -1);
}

/* D3: a failed attempt at r. -1 when t should end. */
static int failed(struct sub_thread *t, const struct ob_row *r, const char *why)
{
    struct webhooks *w = t->w;
    struct wfo_engine *e = w->e;
    struct wfo_error err = WFO_ERROR_INIT;
    t->failures++;
    int shift = t->failures - 1 < 20 ? t->failures - 1 : 20;
    int64_t delay = (int64_t)WEBHOOK_BACKOFF_MS << shift;
    if (delay > WEBHOOK_BACKOFF_MAX_MS)
        delay = WEBHOOK_BACKOFF_MAX_MS;
    delay += (int64_t)((double)delay * 0.1 * wfo_random());
    t->next_attempt_at = wfo_now_ms() + delay;
    if (t->failures >= w->opt.failing_after)
        set_failing(t, 1);
    const char *msg = why;
    char attempts[24], retry[32];
    snprintf(attempts, sizeof(attempts), "%d", t->failures);
    snprintf(retry, sizeof(retry), "%" PRId64 "ms", delay);
    const char *kv[] = {"subscription", t->id,
                        "event",        r->id,
                        "type",         r->type,
                        "failures",     attempts,
                        "retry_in",     retry,
                        "error",        msg,
                        "status",       t->failing ? "failing" : "active"};
    wfo_log_fields(t->failures == w->opt.failing_after ? WFO_LOG_WARN : WFO_LOG_INFO, NULL, NULL,
                   kv, (int)WFO_ARRAY_SIZE(kv) / 2, "webhook delivery failed");
    int rc = e->store->ops->subscription_failed(e->store, t->id, r->seq, t->failures,
                                                t->failing ? "failing" : "active",
                                                t->next_attempt_at, msg, &err);
    if (rc == WFO_ENOTFOUND)
        return -1;
    if (rc < 0 && rc != WFO_ECONFLICT)
        wfo_warn(NULL, NULL, "webhook %s: recording a failure: %s", t->id, err.message);
    return 0;
}

static void *sub_main(void *ud)
{
    struct sub_thread *t = ud;
    struct webhooks *w = t->w;
    struct wfo_engine *e = w->e;
    struct ob_rows rows = {0};
    while (!atomic_load(&t->stop)) {
        int64_t now = wfo_now_ms();
        if (t->next_attempt_at > now) {
            sub_sleep(t, t->next_attempt_at - now);
            continue;
        }
        struct wfo_error err = WFO_ERROR_INIT;
        int64_t gen = engine_outbox_wait(e, -1, 0);
        rows_reset(&rows);
        int rc = e->store->ops->list_outbox(e->store, t->ns, t->cursor, WEBHOOK_BATCH, collect_row,
                                            &rows, &err);
        if (rc < 0) {
            wfo_debug(NULL, NULL, "webhook %s: reading the outbox: %s", t->id, err.message);
            sub_sleep(t, WEBHOOK_POLL_MS);
            continue;
        }
        if (rows.n == 0) {
            engine_outbox_wait(e, gen, WEBHOOK_POLL_MS);
            continue;
        }
        int64_t skipped = 0; /* the last row filtered out, not yet written */
        int end = 0;
        for (int i = 0; i < rows.n && !end && !atomic_load(&t->stop); i++) {
            const struct ob_row *r = &rows.v[i];
            if (!sub_matches(t, r)) {
                skipped = r->seq;
                continue;
            }
            if (skipped) {
                end = advance(t, skipped, 0) < 0;
                skipped = 0;
                if (end)
                    break;
            }
            char why[WEBHOOK_ERROR_MAX] = "";
            int http_error = 0;
            enum delivery d = deliver(t, r, why, sizeof(why), &http_error);
            if (d == D_STOPPED)
                break;
            if (d == D_OK) {
                atomic_fetch_add(&w->ok, 1);
                end = advance(t, r->seq, 1) < 0; /* D2: at once */
                t->failures = 0;
                t->next_attempt_at = 0;
                set_failing(t, 0);
                continue;
            }
            atomic_fetch_add(http_error ? &w->http_error : &w->error, 1);
            end = failed(t, r, why) < 0;
            break; /* D1: the row stays first in line */
        }
        if (skipped && !end && !atomic_load(&t->stop))
            end = advance(t, skipped, 0) < 0;
        if (end)
            break;
    }
    rows_reset(&rows);
    free(rows.v);
    return NULL;
}

/* ---- the manager ---- */

static void sub_free(struct sub_thread *t)
{
    free(t->id);
    free(t->ns);
    free(t->url);
    free(t->secret);
    free(t->workflow);
    json_decref(t->types);
    free(t);
}

/* D6: does this engine deliver subscription id? */
static int sub_mine(struct wfo_engine *e, const char *id)
{
    return engine_holds(e, id);
}

struct sub_list {
    struct webhooks *w;
    struct sub_thread *fresh; /* rows not running yet */
};

static int sync_row(void *ud, const struct store_subscription *r)
{
    struct sub_list *l = ud;
    if (!sub_mine(l->w->e, r->id))
        return 0; /* another engine's: stopped below if it ran here */
    for (struct sub_thread *t = l->w->subs; t; t = t->next)
        if (strcmp(t->id, r->id) == 0) {
            t->seen = 1;
            return 0;
        }
    struct sub_thread *t = wfo_calloc(1, sizeof(*t));
    t->w = l->w;
    t->id = wfo_strdup(r->id);
    t->ns = wfo_strdup(r->namespace);
    t->url = wfo_strdup(r->url);
    t->secret = wfo_strdup(r->secret);
    t->workflow = r->workflow ? wfo_strdup(r->workflow) : NULL;
    t->types = wfo_json_text(r->types);
    t->cursor = r->cursor;
    t->failures = r->failures;
    t->next_attempt_at = r->next_attempt_at;
    t->failing = r->status && strcmp(r->status, "failing") == 0;
    t->seen = 1;
    t->next = l->fresh;
    l->fresh = t;
    return 0;
}

/* Makes the threads match the store's subscriptions. */
static void manager_sync(struct webhooks *w)
{
    struct wfo_engine *e = w->e;
    struct wfo_error err = WFO_ERROR_INIT;
    struct sub_list l = {w, NULL};
    for (struct sub_thread *t = w->subs; t; t = t->next)
        t->seen = 0;
    int rc = e->store->ops->list_subscriptions(e->store, NULL, sync_row, &l, &err);
    if (rc < 0) {
        wfo_debug(NULL, NULL, "webhooks: listing subscriptions: %s", err.message);
        for (struct sub_thread *t = l.fresh, *next; t; t = next) {
            next = t->next;
            sub_free(t);
        }
        return; /* the threads go on as they are */
    }
    /* the deleted ones (and those whose thread ended) stop; the list
     * changes under mu (webhooks_halt walks it) */
    struct sub_thread **pp = &w->subs, *gone = NULL;
    pthread_mutex_lock(&w->mu);
    while (*pp) {
        struct sub_thread *t = *pp;
        if (t->seen) {
            pp = &t->next;
            continue;
        }
        *pp = t->next;
        atomic_store(&t->stop, 1);
        t->next = gone;
        gone = t;
    }
    if (gone)
        pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    if (gone)
        events_outbox_notify(e);
    for (struct sub_thread *t = gone, *next; t; t = next) {
        next = t->next;
        pthread_join(t->thread, NULL);
        set_failing(t, 0);
        atomic_fetch_sub(&w->threads, 1);
        sub_free(t);
    }
    for (struct sub_thread *t = l.fresh, *next; t; t = next) {
        next = t->next;
        if (t->failing)
            atomic_fetch_add(&w->failing, 1);
        atomic_fetch_add(&w->threads, 1);
        pthread_create(&t->thread, NULL, sub_main, t);
        pthread_mutex_lock(&w->mu);
        t->next = w->subs;
        w->subs = t;
        pthread_mutex_unlock(&w->mu);
    }
}

static void *manager_main(void *ud)
{
    struct webhooks *w = ud;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        int64_t seen = w->changes;
        pthread_mutex_unlock(&w->mu);
        manager_sync(w);
        pthread_mutex_lock(&w->mu);
        if (w->stop || w->changes != seen)
            continue;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += WEBHOOK_POLL_MS / 1000;
        pthread_cond_timedwait(&w->cv, &w->mu, &ts);
    }
    struct sub_thread *subs = w->subs;
    w->subs = NULL;
    pthread_mutex_unlock(&w->mu);
    for (struct sub_thread *t = subs; t; t = t->next)
        atomic_store(&t->stop, 1);
    events_outbox_notify(w->e);
    for (struct sub_thread *t = subs, *next; t; t = next) {
        next = t->next;
        pthread_join(t->thread, NULL);
        sub_free(t);
    }
    return NULL;
}

int engine_webhooks_start(struct wfo_engine *e, const struct engine_webhook_options *opt,
                          struct wfo_error *err)
{
    int rc = engine_ready(e, err);
    if (rc < 0)
        return rc;
    if (e->webhooks)
        return wfo_error_set(err, WFO_ESTATE, "webhooks already started");
    struct wfo_error ignored = WFO_ERROR_INIT;
    if (subs_supported(e, &ignored) < 0)
        return 0; /* nothing to deliver: the API refuses subscriptions */
    struct webhooks *w = wfo_calloc(1, sizeof(*w));
    w->e = e;
    w->opt = *opt;
    if (w->opt.failing_after < 1)
        w->opt.failing_after = 5;
    if (w->opt.timeout_ms <= 0)
        w->opt.timeout_ms = 10000;
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    e->webhooks = w;
    pthread_create(&w->manager, NULL, manager_main, w);
    return 0;
}

void webhooks_stop(struct wfo_engine *e)
{
    struct webhooks *w = e->webhooks;
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->manager, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    e->webhooks = NULL;
    free(w);
}

void webhooks_stats(struct wfo_engine *e, struct engine_stats *out)
{
    struct webhooks *w = e->webhooks;
    if (!w)
        return;
    out->webhook_ok = atomic_load(&w->ok);
    out->webhook_http_error = atomic_load(&w->http_error);
    out->webhook_error = atomic_load(&w->error);
    int failing = atomic_load(&w->failing), threads = atomic_load(&w->threads);
    out->webhooks_failing = failing;
    out->webhooks_active = threads > failing ? threads - failing : 0;
}
