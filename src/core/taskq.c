/*
 * taskq.c - ready queues and leases of worker tasks (see taskq.h and
 * docs/interfaces/internal.md), and at its end the engine's half of the
 * worker protocol (engine_task_poll ... engine_task_heartbeat in engine.h):
 * a worker's answer is checked against its lease here, then queued to the
 * engine thread as a command (engine_int.h).
 *
 * Invariants:
 *   T1. A task is in q->tasks from enqueue until it is taken (complete or
 *       fail with its current lease), cancelled while ready, or failed by a
 *       heartbeat timeout. It is in its queue's ready list exactly when its
 *       lease is "".
 *   T2. A lease is 128 random bits from the CSPRNG (SPEC 3: nothing a
 *       client could know goes into it) followed by a MAC of the task id
 *       and those bits under the store's secret server key. Each delivery
 *       gets a new one; while the task is leased only the current lease
 *       is accepted. Once it is ready again (a restart, an expired lease)
 *       any lease this store issued for that attempt is accepted, checked
 *       by its MAC, so a worker that took the task before a crash can
 *       still complete it (the first completion of an attempt wins; the
 *       engine refuses the rest by token). A retry is a new attempt: a new
 *       task id, so an old lease's MAC no longer matches (TQ_STALE). A
 *       lease computed from the URL and the task id, as wfo once did, or
 *       one of another store, never matches.
 */
#include "common/compat.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "taskq.h"
#include "engine_int.h"
#include "../common/duration.h"
#include "../common/crypto.h"
#include "../common/redact.h"
#include "../common/util.h"

struct taskq_poller {
    char *worker;
    int64_t last_poll;
};

/* One queue of one namespace (key "ns\nqueue"). */
struct taskq_list {
    char *key;
    struct task *head, *tail;
    int known;           /* a task was enqueued here: a definition names it */
    long long n_leased;  /* its tasks that are leased */
    long long expiries;  /* leases of its tasks that ran out */
    long long elsewhere; /* tasks made ready on other nodes (taskq_elsewhere) */
    struct taskq_poller *pollers;
    int n_pollers, alloc_pollers;
};

void taskq_init(struct taskq *q, int64_t lease_ms)
{
    memset(q, 0, sizeof(*q));
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    q->lease_ms = lease_ms > 0 ? lease_ms : 30000;
}

void task_free(struct task *t)
{
    if (!t)
        return;
    free(t->exec_id);
    free(t->ns);
    free(t->queue);
    free(t->path);
    free(t->worker);
    json_decref(t->input);
    free(t);
}

void taskq_release(struct taskq *q)
{
    const char *k;
    void *v;
    for (size_t i = 0; wfo_map_next(&q->tasks, &i, &k, &v);)
        task_free(v);
    wfo_map_release(&q->tasks);
    for (size_t i = 0; wfo_map_next(&q->queues, &i, &k, &v);) {
        struct taskq_list *l = v;
        for (int j = 0; j < l->n_pollers; j++)
            free(l->pollers[j].worker);
        free(l->pollers);
        free(l->key);
        free(l);
    }
    wfo_map_release(&q->queues);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
}

/* Drops every task, ready or leased: the engine restarting in place
 * (engine.c E2) enqueues again those the store still holds. Queues keep
 * their pollers and counts of expiries; a poller waiting meanwhile keeps
 * waiting. */
void taskq_clear(struct taskq *q)
{
    const char *k;
    void *v;
    pthread_mutex_lock(&q->mu);
    for (size_t i = 0; wfo_map_next(&q->tasks, &i, &k, &v);)
        task_free(v);
    wfo_map_release(&q->tasks);
    for (size_t i = 0; wfo_map_next(&q->queues, &i, &k, &v);) {
        struct taskq_list *l = v;
        l->head = l->tail = NULL;
        l->n_leased = 0;
    }
    q->ready = q->leased = 0;
    pthread_mutex_unlock(&q->mu);
}

void taskq_stop(struct taskq *q)
{
    pthread_mutex_lock(&q->mu);
    q->stop = 1;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

void taskq_id(char out[TASKQ_ID_SIZE], const char *exec_id, int64_t token)
{
    size_t n = strnlen(exec_id, WFO_EXEC_ID_SIZE - 1);
    memcpy(out, exec_id, n);
    out[n] = '.';
    wfo_int_text((long long)token, out + n + 1); /* no printf: one per attempt */
}

int taskq_id_parse(const char *id, char *exec_id, size_t size, int64_t *token)
{
    const char *dot = strrchr(id, '.');
    if (!dot || dot == id || (size_t)(dot - id) >= size || wfo_parse_int64(dot + 1, token) < 0)
        return WFO_ENOTFOUND;
    memcpy(exec_id, id, (size_t)(dot - id));
    exec_id[dot - id] = 0;
    return 0;
}

struct task *task_new(const char *exec_id, const char *ns, const char *queue, const char *path,
                      int64_t token, int attempt, json_t *input)
{
    struct task *t = wfo_calloc(1, sizeof(*t));
    taskq_id(t->id, exec_id, token);
    t->exec_id = wfo_strdup(exec_id);
    t->ns = wfo_strdup(ns);
    t->queue = wfo_strdup(queue);
    t->path = wfo_strdup(path);
    t->token = token;
    t->attempt = attempt;
    t->input = wfo_json_ref(input);
    return t;
}

static struct taskq_list *list_get(struct taskq *q, const char *ns, const char *queue)
{
    struct wfo_buf b = WFO_BUF_INIT;
    wfo_buf_addf(&b, "%s\n%s", ns, queue);
    struct taskq_list *l = wfo_map_get(&q->queues, b.buf);
    if (!l) {
        l = wfo_calloc(1, sizeof(*l));
        l->key = wfo_buf_detach(&b, NULL);
        wfo_map_put(&q->queues, l->key, l);
    }
    wfo_buf_release(&b);
    return l;
}

static void list_push(struct taskq_list *l, struct task *t)
{
    t->next = NULL;
    if (l->tail)
        l->tail->next = t;
    else
        l->head = t;
    l->tail = t;
}

static void list_remove(struct taskq_list *l, struct task *t)
{
    struct task *prev = NULL;
    for (struct task *c = l->head; c; prev = c, c = c->next) {
        if (c != t)
            continue;
        if (prev)
            prev->next = c->next;
        else
            l->head = c->next;
        if (l->tail == c)
            l->tail = prev;
        c->next = NULL;
        return;
    }
}

/* Drops t from the map and, when ready, from its list (T1). */
static void unlink_task(struct taskq *q, struct task *t)
{
    wfo_map_del(&q->tasks, t->id);
    if (!t->lease[0]) {
        list_remove(list_get(q, t->ns, t->queue), t);
        q->ready--;
    } else {
        q->leased--;
        list_get(q, t->ns, t->queue)->n_leased--;
    }
}

/* Remembers that worker polled l at now; forgets pollers older than
 * TASKQ_POLLER_TTL_MS, and the oldest beyond TASKQ_MAX_POLLERS. */
static void poller_note(struct taskq_list *l, const char *worker, int64_t now)
{
    int oldest = -1;
    if (!worker)
        worker = "";
    for (int i = 0; i < l->n_pollers; i++) {
        if (strcmp(l->pollers[i].worker, worker) == 0) {
            l->pollers[i].last_poll = now;
            return;
        }
    }
    for (int i = 0; i < l->n_pollers;) {
        if (now - l->pollers[i].last_poll > TASKQ_POLLER_TTL_MS) {
            free(l->pollers[i].worker);
            l->pollers[i] = l->pollers[--l->n_pollers];
            continue;
        }
        if (oldest < 0 || l->pollers[i].last_poll < l->pollers[oldest].last_poll)
            oldest = i;
        i++;
    }
    if (l->n_pollers >= TASKQ_MAX_POLLERS && oldest >= 0) {
        free(l->pollers[oldest].worker);
        l->pollers[oldest] = l->pollers[--l->n_pollers];
    }
    if (l->n_pollers == l->alloc_pollers) {
        l->alloc_pollers = l->alloc_pollers ? 2 * l->alloc_pollers : 4;
        l->pollers = wfo_realloc(l->pollers, (size_t)l->alloc_pollers * sizeof(*l->pollers));
    }
    l->pollers[l->n_pollers].worker = wfo_strdup(worker);
    l->pollers[l->n_pollers].last_poll = now;
    l->n_pollers++;
}

void taskq_add(struct taskq *q, struct task *t)
{
    pthread_mutex_lock(&q->mu);
    struct task *old = wfo_map_get(&q->tasks, t->id);
    if (old) {
        unlink_task(q, old);
        task_free(old);
    }
    t->lease[0] = 0;
    t->ready_since = wfo_now_ms();
    wfo_map_put(&q->tasks, t->id, t);
    struct taskq_list *l = list_get(q, t->ns, t->queue);
    l->known = 1;
    list_push(l, t);
    q->ready++;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

int taskq_cancel(struct taskq *q, const char *exec_id, int64_t token)
{
    char id[TASKQ_ID_SIZE];
    int dropped = 0;
    taskq_id(id, exec_id, token);
    pthread_mutex_lock(&q->mu);
    struct task *t = wfo_map_get(&q->tasks, id);
    if (t && !t->lease[0]) {
        unlink_task(q, t);
        task_free(t);
        dropped = 1;
    } else if (t) {
        t->cancel_requested = 1;
    }
    pthread_mutex_unlock(&q->mu);
    return dropped;
}

/* The MAC half of a lease whose random half is nonce (32 hex digits). */
static void lease_mac(const struct taskq *q, const char *task_id, const char *nonce, char out[33])
{
    struct wfo_buf b = WFO_BUF_INIT;
    char hex[65];
    wfo_buf_addf(&b, "wfo-lease-v2\n%s\n%.32s", task_id, nonce);
    wfo_hmac_sha256_hex(q->key, sizeof(q->key), b.buf, b.len, hex);
    wfo_buf_release(&b);
    memcpy(out, hex, 32);
    out[32] = 0;
}

/* A new lease for t (T2). */
static void task_lease(const struct taskq *q, const struct task *t, char out[TASKQ_LEASE_SIZE])
{
    wfo_random_hex(out, 16);
    lease_mac(q, t->id, out, out + 32);
}

/* Did this store issue lease for task t (any delivery of its attempt)? */
static int lease_issued(const struct taskq *q, const struct task *t, const char *lease)
{
    char mac[33];
    if (strlen(lease) != TASKQ_LEASE_SIZE - 1)
        return 0;
    lease_mac(q, t->id, lease, mac);
    return wfo_ct_equal(mac, lease + 32, 32);
}

void taskq_picks_free(struct taskq_pick *p)
{
    while (p) {
        struct taskq_pick *next = p->next;
        free(p->path);
        free(p->worker);
        free(p);
        p = next;
    }
}

void taskq_elsewhere(struct taskq *q, const char *ns, const char *queue)
{
    pthread_mutex_lock(&q->mu);
    list_get(q, ns, queue)->elsewhere++;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

/* The polled queues' count of tasks made ready elsewhere (under mu). */
static long long elsewhere_of(struct taskq *q, const char *ns, const char *const *queues, int n)
{
    long long sum = 0;
    for (int i = 0; i < n; i++)
        sum += list_get(q, ns, queues[i])->elsewhere;
    return sum;
}

/* A leased task as the poll answers it (SPEC 4). Every string in it came
 * from a parsed document or is ASCII made here: no UTF-8 check again
 * (json_pack's format parsing and checks were half of taskq_poll). */
static json_t *task_json(const struct taskq *q, const struct task *t)
{
    json_t *o = json_object();
    char deadline[40] = "";
    struct wfo_buf idem = WFO_BUF_INIT;
    wfo_buf_adds(&idem, t->exec_id);
    wfo_buf_addch(&idem, '/');
    wfo_buf_adds(&idem, t->path);
    if (t->deadline)
        wfo_time_format(t->deadline, deadline, sizeof(deadline));
    json_object_set_new_nocheck(o, "task_id", json_string_nocheck(t->id));
    json_object_set_new_nocheck(o, "lease", json_string_nocheck(t->lease));
    json_object_set_new_nocheck(o, "queue", json_string_nocheck(t->queue));
    json_object_set_new_nocheck(o, "execution_id", json_string_nocheck(t->exec_id));
    json_object_set_new_nocheck(o, "step", json_string_nocheck(t->path));
    json_object_set_new_nocheck(o, "attempt", json_integer(t->attempt));
    json_object_set_nocheck(o, "input", t->input ? t->input : json_null());
    json_object_set_new_nocheck(o, "idempotency_key", json_stringn_nocheck(idem.buf, idem.len));
    json_object_set_new_nocheck(o, "deadline",
                                t->deadline ? json_string_nocheck(deadline) : json_null());
    /* lease_ms: how long the lease lasts without a heartbeat */
    json_object_set_new_nocheck(o, "lease_ms",
                                json_integer(t->heartbeat_ms ? t->heartbeat_ms : q->lease_ms));
    json_object_set_new_nocheck(o, "heartbeat_timeout",
                                t->heartbeat_ms ? json_integer(t->heartbeat_ms) : json_null());
    wfo_buf_release(&idem);
    return o;
}

json_t *taskq_poll(struct taskq *q, const char *ns, const char *const *queues, int n_queues,
                   const char *worker, int max, int64_t wait_ms, struct taskq_pick **picked,
                   long long *seen)
{
    json_t *out = json_array();
    struct taskq_pick **pick_tail = picked;
    if (picked)
        *picked = NULL;
    int64_t until = wfo_now_ms() + (wait_ms > 0 ? wait_ms : 0);
    pthread_mutex_lock(&q->mu);
    for (int i = 0; i < n_queues; i++)
        poller_note(list_get(q, ns, queues[i]), worker, wfo_now_ms());
    long long elsewhere = seen && *seen >= 0 ? *seen : elsewhere_of(q, ns, queues, n_queues);
    for (;;) {
        for (int i = 0; i < n_queues && (int)json_array_size(out) < max; i++) {
            struct taskq_list *l = list_get(q, ns, queues[i]);
            while (l->head && (int)json_array_size(out) < max) {
                struct task *t = l->head;
                l->head = t->next;
                if (!l->head)
                    l->tail = NULL;
                t->next = NULL;
                q->ready--;
                q->leased++;
                l->n_leased++;
                task_lease(q, t, t->lease);
                free(t->worker);
                t->worker = wfo_strdup(worker ? worker : "");
                int64_t now = wfo_now_ms();
                t->leased_until = now + (t->heartbeat_ms ? t->heartbeat_ms : q->lease_ms);
                json_array_append_new(out, task_json(q, t));
                if (t->report_pick && picked) {
                    struct taskq_pick *p = wfo_calloc(1, sizeof(*p));
                    snprintf(p->exec_id, sizeof(p->exec_id), "%s", t->exec_id);
                    p->path = wfo_strdup(t->path);
                    p->token = t->token;
                    p->worker = wfo_strdup(t->worker);
                    *pick_tail = p;
                    pick_tail = &p->next;
                    t->report_pick = 0;
                }
            }
        }
        int64_t now = wfo_now_ms();
        if (json_array_size(out) || now >= until || q->stop ||
            elsewhere_of(q, ns, queues, n_queues) != elsewhere)
            break;
        struct timespec ts = {(time_t)(until / 1000), (long)(until % 1000) * 1000000L};
        pthread_cond_timedwait(&q->cv, &q->mu, &ts);
    }
    /* a long poll that ends is a poll too: the worker was there all along */
    for (int i = 0; i < n_queues; i++)
        poller_note(list_get(q, ns, queues[i]), worker, wfo_now_ms());
    if (seen)
        *seen = elsewhere_of(q, ns, queues, n_queues);
    pthread_mutex_unlock(&q->mu);
    return out;
}

void taskq_ready_since(struct taskq *q, const char *id, int64_t since)
{
    pthread_mutex_lock(&q->mu);
    struct task *t = wfo_map_get(&q->tasks, id);
    if (t && !t->lease[0] && since > 0 && since < t->ready_since)
        t->ready_since = since;
    pthread_mutex_unlock(&q->mu);
}

void taskq_relet(struct taskq *q, const char *id, const char *lease, int64_t leased_until)
{
    if (!id || !lease || strlen(lease) != TASKQ_LEASE_SIZE - 1)
        return;
    pthread_mutex_lock(&q->mu);
    struct task *t = wfo_map_get(&q->tasks, id);
    if (t && !t->lease[0]) {
        struct taskq_list *l = list_get(q, t->ns, t->queue);
        list_remove(l, t);
        memcpy(t->lease, lease, TASKQ_LEASE_SIZE);
        t->leased_until = leased_until;
        free(t->worker);
        t->worker = wfo_strdup("");
        q->ready--;
        q->leased++;
        l->n_leased++;
    }
    pthread_mutex_unlock(&q->mu);
}

void taskq_unlease(struct taskq *q, const char *id, const char *lease)
{
    if (!id || !lease)
        return;
    pthread_mutex_lock(&q->mu);
    struct task *t = wfo_map_get(&q->tasks, id);
    if (t && t->lease[0] && strcmp(t->lease, lease) == 0) {
        t->lease[0] = 0;
        q->leased--;
        q->ready++;
        struct taskq_list *l = list_get(q, t->ns, t->queue);
        l->n_leased--;
        t->next = l->head;
        l->head = t;
        if (!l->tail)
            l->tail = t;
        pthread_cond_broadcast(&q->cv);
    }
    pthread_mutex_unlock(&q->mu);
}

static enum taskq_check check(struct taskq *q, const char *ns, const char *id, const char *lease,
                              struct task **t)
{
    *t = wfo_map_get(&q->tasks, id);
    if (!*t || strcmp((*t)->ns, ns) != 0)
        return TQ_UNKNOWN;
    if (!lease)
        return TQ_STALE;
    if (!(*t)->lease[0]) {
        /* ready again (a restart, an expired lease): a worker that still
         * holds the attempt's lease may finish it (T2) */
        if (!lease_issued(q, *t, lease))
            return TQ_STALE;
        struct taskq_list *l = list_get(q, (*t)->ns, (*t)->queue);
        list_remove(l, *t);
        l->n_leased++;
        q->ready--;
        q->leased++;
        snprintf((*t)->lease, sizeof((*t)->lease), "%s", lease);
        (*t)->leased_until = wfo_now_ms() + ((*t)->heartbeat_ms ? (*t)->heartbeat_ms : q->lease_ms);
        return TQ_OK;
    }
    if (strlen(lease) != strlen((*t)->lease) ||
        !wfo_ct_equal((*t)->lease, lease, strlen((*t)->lease)))
        return TQ_STALE;
    return TQ_OK;
}

enum taskq_check taskq_take(struct taskq *q, const char *ns, const char *id, const char *lease,
                            struct task **out)
{
    struct task *t;
    pthread_mutex_lock(&q->mu);
    enum taskq_check c = check(q, ns, id, lease, &t);
    if (c == TQ_OK) {
        unlink_task(q, t);
        *out = t;
    }
    pthread_mutex_unlock(&q->mu);
    return c;
}

enum taskq_check taskq_heartbeat(struct taskq *q, const char *ns, const char *id, const char *lease,
                                 int *cancel_requested)
{
    struct task *t;
    pthread_mutex_lock(&q->mu);
    enum taskq_check c = check(q, ns, id, lease, &t);
    if (c == TQ_OK) {
        t->leased_until = wfo_now_ms() + (t->heartbeat_ms ? t->heartbeat_ms : q->lease_ms);
        *cancel_requested = t->cancel_requested;
    }
    pthread_mutex_unlock(&q->mu);
    return c;
}

void taskq_sweep(struct taskq *q, int64_t now, struct task **failed)
{
    *failed = NULL;
    pthread_mutex_lock(&q->mu);
    struct task **expired = NULL;
    int n = 0, alloc = 0;
    const char *k;
    void *v;
    for (size_t i = 0; wfo_map_next(&q->tasks, &i, &k, &v);) {
        struct task *t = v;
        if (!t->lease[0] || t->leased_until > now)
            continue;
        if (n == alloc) {
            alloc = alloc ? alloc * 2 : 16;
            expired = wfo_realloc(expired, (size_t)alloc * sizeof(*expired));
        }
        expired[n++] = t;
    }
    for (int i = 0; i < n; i++) {
        struct task *t = expired[i];
        q->expiries++;
        list_get(q, t->ns, t->queue)->expiries++;
        if (t->heartbeat_ms || t->cancel_requested) {
            /* a task asked to stop is not handed out again: its attempt
             * fails (HeartbeatTimeout), which a stopped step waits for */
            unlink_task(q, t);
            t->next = *failed;
            *failed = t;
        } else {
            /* delivered again, with a new lease (at least once) */
            struct taskq_list *l = list_get(q, t->ns, t->queue);
            t->lease[0] = 0;
            t->ready_since = now;
            q->leased--;
            l->n_leased--;
            q->ready++;
            list_push(l, t);
        }
    }
    if (n)
        pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    free(expired);
}

static int list_cmp(const void *x, const void *y)
{
    return strcmp((*(struct taskq_list *const *)x)->key, (*(struct taskq_list *const *)y)->key);
}

json_t *taskq_queues(struct taskq *q, const char *ns, int known_only, int64_t now)
{
    json_t *out = json_array();
    pthread_mutex_lock(&q->mu);
    struct taskq_list **lists = wfo_calloc(q->queues.len + 1, sizeof(*lists));
    size_t n = 0;
    const char *k;
    void *v;
    for (size_t i = 0; wfo_map_next(&q->queues, &i, &k, &v);)
        lists[n++] = v;
    qsort(lists, n, sizeof(*lists), list_cmp);
    for (size_t i = 0; i < n; i++) {
        struct taskq_list *l = lists[i];
        const char *nl = strchr(l->key, '\n');
        size_t ns_len = (size_t)(nl - l->key);
        if (ns && (strlen(ns) != ns_len || strncmp(l->key, ns, ns_len) != 0))
            continue;
        json_t *pollers = json_array();
        for (int j = 0; j < l->n_pollers; j++) {
            char when[40];
            if (now - l->pollers[j].last_poll > TASKQ_POLLER_TTL_MS)
                continue;
            wfo_time_format(l->pollers[j].last_poll, when, sizeof(when));
            json_array_append_new(pollers, json_pack("{s:s, s:s}", "worker", l->pollers[j].worker,
                                                     "last_poll", when));
        }
        if (!l->known && (known_only || !json_array_size(pollers))) {
            json_decref(pollers);
            continue;
        }
        long long ready = 0;
        int64_t oldest = 0;
        for (struct task *t = l->head; t; t = t->next) {
            ready++;
            if (!oldest || t->ready_since < oldest)
                oldest = t->ready_since;
        }
        json_t *e =
            json_pack("{s:s, s:I, s:I, s:I, s:o}", "name", nl + 1, "ready", (json_int_t)ready,
                      "leased", (json_int_t)l->n_leased, "oldest_ready_age_ms",
                      (json_int_t)(oldest && now > oldest ? now - oldest : 0), "pollers", pollers);
        if (!ns) {
            json_object_set_new(e, "namespace", json_stringn(l->key, ns_len));
            json_object_set_new(e, "lease_expiries", json_integer(l->expiries));
        }
        json_array_append_new(out, e);
    }
    pthread_mutex_unlock(&q->mu);
    free(lists);
    return out;
}

/* --- the worker protocol (engine.h): the engine's half ------------------------ */

int engine_task_poll(struct wfo_engine *e, const char *ns, const char *const *queues, int n_queues,
                     const char *worker, int max, int64_t wait_ms, long long *seen, json_t **tasks,
                     struct wfo_error *err)
{
    int rc = engine_ready(e, err);
    if (rc < 0)
        return rc;
    struct taskq_pick *picked = NULL;
    *tasks = taskq_poll(&e->tq, ns, queues, n_queues, worker, max, wait_ms, &picked, seen);
    size_t i;
    json_t *p;
    int64_t now = wfo_now_ms();
    /* the commands of the whole poll go to the engine in one chain: one
     * hold of its lock, one wake */
    struct cmd *head = NULL, **tail = &head;
    json_array_foreach(*tasks, i, p)
    {
        /* the lease goes to the task's row with a later round
         * (LEASE_WRITE_MS); the worker does not wait for it: after a crash
         * that lost it the task is delivered again, and this lease still
         * completes it (T2) */
        struct cmd *c = wfo_calloc(1, sizeof(*c));
        c->kind = CMD_LEASED;
        snprintf(c->id, sizeof(c->id), "%s", wfo_json_str(p, "execution_id"));
        c->path = wfo_strdup(wfo_json_str(p, "task_id"));
        c->lease = wfo_strdup(wfo_json_str(p, "lease"));
        c->leased_until = now + json_integer_value(json_object_get(p, "lease_ms"));
        *tail = c;
        tail = &c->next;
    }
    for (struct taskq_pick *pk = picked; pk; pk = pk->next) {
        struct cmd *c = wfo_calloc(1, sizeof(*c));
        c->kind = CMD_PICKED;
        snprintf(c->id, sizeof(c->id), "%s", pk->exec_id);
        c->path = pk->path; /* taken */
        pk->path = NULL;
        c->token = pk->token;
        c->worker = pk->worker;
        pk->worker = NULL;
        *tail = c;
        tail = &c->next;
    }
    if (head)
        engine_post(e, head, NULL);
    taskq_picks_free(picked);
    return 0;
}

void engine_task_unpoll(struct wfo_engine *e, json_t *tasks)
{
    size_t i;
    json_t *t;
    json_array_foreach(tasks, i, t)
        taskq_unlease(&e->tq, wfo_json_str(t, "task_id"), wfo_json_str(t, "lease"));
}

struct exists_ud {
    const char *ns;
    int found;
};

static int exists_cb(void *ud, const struct store_exec *r)
{
    struct exists_ud *x = ud;
    x->found = strcmp(r->namespace, x->ns) == 0;
    return 0;
}

/* A task the queue does not hold: 409 when its execution exists (a stale
 * or finished attempt), else 404. */
static int task_missing(struct wfo_engine *e, const char *ns, const char *id, struct wfo_error *err)
{
    char exec_id[TASKQ_ID_SIZE];
    int64_t token;
    struct exists_ud x = {ns, 0};
    if (taskq_id_parse(id, exec_id, sizeof(exec_id), &token) == 0) {
        struct wfo_error ignore = WFO_ERROR_INIT;
        e->store->ops->get_exec(e->store, exec_id, exists_cb, &x, &ignore);
    }
    if (x.found)
        return wfo_error_set(err, WFO_ECONFLICT, "task '%s' is no longer current", id);
    return wfo_error_set(err, WFO_ENOTFOUND, "task '%s' not found", id);
}

/* Phase one of a result: checked against the task's lease, then its
 * command appended to *tail for the engine thread; 1 when appended (the
 * reply is pending). */
static int task_post(struct wfo_engine *e, const char *ns, struct engine_task_result *t,
                     struct reply *r, struct cmd ***tail)
{
    struct task *k = NULL;
    enum taskq_check ck = taskq_take(&e->tq, ns, t->task_id, t->lease, &k);
    if (ck == TQ_UNKNOWN)
        return task_missing(e, ns, t->task_id, &t->err);
    if (ck == TQ_STALE)
        return wfo_error_set(&t->err, WFO_ECONFLICT,
                             "lease '%s' is not the current lease of task '%s'",
                             t->lease ? t->lease : "", t->task_id);
    reply_init(r);
    struct cmd *c = wfo_calloc(1, sizeof(*c));
    c->kind = CMD_RESULT;
    snprintf(c->id, sizeof(c->id), "%s", k->exec_id);
    c->path = wfo_strdup(k->path);
    c->token = k->token;
    c->out.ok = t->ok;
    /* a worker may echo a secret it was never given: redacted (SPEC 2.1) */
    c->out.output = t->ok ? wfo_redact_json(t->output ? t->output : json_null()) : NULL;
    c->out.error = t->ok ? NULL : wfo_redact_json(t->error);
    c->out.retryable = t->retryable;
    c->reply = r;
    task_free(k);
    **tail = c;
    *tail = &c->next;
    return 1;
}

struct engine_finish_later {
    struct reply *r; /* one a result; those whose t[i].rc is 1 were queued */
    atomic_int pending;
    void (*done)(void *ud);
    void *ud;
};

/* A queued result was answered (the engine's thread): the last one calls
 * the caller's done. */
static void finish_part_done(void *ud)
{
    struct engine_finish_later *l = ud;
    if (atomic_fetch_sub(&l->pending, 1) == 1)
        l->done(l->ud);
}

int engine_task_finish_post(struct wfo_engine *e, const char *ns, struct engine_task_result *t,
                            int n, void (*done)(void *ud), void *ud,
                            struct engine_finish_later **out, struct wfo_error *err)
{
    *out = NULL;
    int rc = engine_ready(e, err);
    if (rc < 0)
        return rc;
    /* all queued, in one chain, before any is waited for: they share a
     * round, and the engine's lock is taken once */
    struct engine_finish_later *l = wfo_calloc(1, sizeof(*l));
    l->r = wfo_calloc((size_t)n, sizeof(*l->r));
    l->done = done;
    l->ud = ud;
    struct cmd *head = NULL, **tail = &head;
    int queued = 0;
    for (int i = 0; i < n; i++) {
        t[i].rc = task_post(e, ns, &t[i], &l->r[i], &tail);
        if (t[i].rc == 1 && done) {
            l->r[i].on_done = finish_part_done;
            l->r[i].on_done_ud = l;
        }
        queued += t[i].rc == 1;
    }
    if (!queued) {
        free(l->r);
        free(l);
        return 0;
    }
    atomic_init(&l->pending, queued);
    *out = l;
    engine_post(e, head, NULL);
    return 0;
}

void engine_task_finish_end(struct engine_finish_later *l, struct engine_task_result *t, int n)
{
    for (int i = 0; l && i < n; i++) {
        if (t[i].rc != 1)
            continue;
        /* with a callback the reply is answered already: at once */
        t[i].rc = reply_wait(&l->r[i], &t[i].err);
        memcpy(t[i].workflow, l->r[i].workflow, sizeof(t[i].workflow));
        if (t[i].rc == WFO_ESTATE || t[i].rc == WFO_ENOTFOUND)
            t[i].rc = wfo_error_set(&t[i].err, WFO_ECONFLICT, "task '%s' is no longer current",
                                    t[i].task_id);
    }
    if (l)
        free(l->r);
    free(l);
}

int engine_task_finish(struct wfo_engine *e, const char *ns, struct engine_task_result *t, int n,
                       struct wfo_error *err)
{
    struct engine_finish_later *l;
    int rc = engine_task_finish_post(e, ns, t, n, NULL, NULL, &l, err);
    if (rc == 0)
        engine_task_finish_end(l, t, n);
    return rc;
}

/* One result, as a batch of one: the call's code is the result's. */
static int task_finish_one(struct wfo_engine *e, const char *ns, struct engine_task_result *t,
                           struct wfo_error *err)
{
    int rc = engine_task_finish(e, ns, t, 1, err);
    if (rc == 0 && t->rc < 0)
        *err = t->err;
    return rc < 0 ? rc : t->rc;
}

int engine_task_complete(struct wfo_engine *e, const char *ns, const char *task_id,
                         const char *lease, json_t *output, struct wfo_error *err)
{
    struct engine_task_result t = {
        .task_id = task_id, .lease = lease, .ok = 1, .output = output, .retryable = 1};
    return task_finish_one(e, ns, &t, err);
}

int engine_task_fail(struct wfo_engine *e, const char *ns, const char *task_id, const char *lease,
                     json_t *error, int retryable, struct wfo_error *err)
{
    struct engine_task_result t = {
        .task_id = task_id, .lease = lease, .ok = 0, .error = error, .retryable = retryable};
    return task_finish_one(e, ns, &t, err);
}

int engine_task_heartbeat(struct wfo_engine *e, const char *ns, const char *task_id,
                          const char *lease, int *cancel_requested, struct wfo_error *err)
{
    int rc = engine_ready(e, err);
    if (rc < 0)
        return rc;
    enum taskq_check ck = taskq_heartbeat(&e->tq, ns, task_id, lease, cancel_requested);
    if (ck == TQ_UNKNOWN)
        return task_missing(e, ns, task_id, err);
    if (ck == TQ_STALE)
        return wfo_error_set(err, WFO_ECONFLICT, "lease '%s' is not the current lease of task '%s'",
                             lease ? lease : "", task_id);
    return 0;
}
