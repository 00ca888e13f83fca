/*
 * events.c - events and signals in the engine (SPEC 2.5): storing a
 * published event or a signal, and matching them to the await_event steps
 * that wait. docs/implementation/event_processing.md draws the races and
 * how each is closed; in short:
 *
 *   W1. Events and signals are committed by their own store transaction
 *       (put_event, put_signal) on the caller's thread before the engine is
 *       told (CMD_WAKE); an emitted event is committed by the round of its
 *       step. A wake is acted on by the engine thread after that commit.
 *   W2. A waiting step looks for a match after the round that made it wait
 *       is committed (its "step.waiting" history entry, after_commit), and
 *       a wake looks at every step waiting in memory then. One of the two
 *       comes after both the wait and the event exist: no event is missed.
 *   W3. A match is consumed in the round of the step's completion: the
 *       history entry "event.consumed" / "signal.consumed" becomes a
 *       consumed row / a signal row's deletion in the same batch (round.c),
 *       so a crash keeps both or neither. Before that round is committed
 *       the store does not know of the consumption: a match skips the
 *       events and signals that a round gathering or in flight consumes
 *       for the same execution (pending), so nothing is consumed twice;
 *       the store's primary key on (exec_id, event_id) refuses it anyway.
 *   W4. An execution with a waiting await_event step stays in memory
 *       (exec_idle) and is loaded at a restart (exec_resume), where its
 *       waits look for a match again (engine_recover posts a CMD_WAKE).
 *   W5. An event wakes the executions of the index e->waits under its
 *       (namespace, type, key), not every execution in memory: a step that
 *       starts waiting for an event is indexed after the commit that made
 *       it wait (with W2's look), an execution loaded with one when it is
 *       loaded (exec_get). Entries of waits that ended are dropped when
 *       their key is woken, and the whole index is made again from memory
 *       every WAITS_REINDEX_MS (waits that timed out under a key no event
 *       came for).
 */
#include "common/compat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine_int.h"
#include "doc.h"
#include "../common/duration.h"
#include "../common/log.h"

/* At most this many candidates are read per match: the oldest not consumed
 * in the store, of which those pending (W3) are skipped. */
#define EVENTS_CANDIDATES 16

/* {id, type, key, source, data, time} and the CloudEvents attributes kept
 * as given (r->attrs: specversion, subject, dataschema, datacontenttype,
 * data_base64, extensions; api/events.c), which never replace one of the
 * six; an event with data_base64 has no `data` (CloudEvents: one or the
 * other). */
json_t *events_event_json(const struct store_event *r)
{
    json_t *j = json_pack("{s:s, s:s, s:o, s:o, s:o, s:o}", "id", r->id, "type", r->type, "key",
                          r->key ? json_string(r->key) : json_null(), "source",
                          r->source ? json_string(r->source) : json_null(), "data",
                          wfo_json_text(r->data), "time", doc_time(r->time));
    json_t *attrs = r->attrs ? wfo_json_text(r->attrs) : NULL;
    if (json_is_object(attrs)) {
        if (json_object_get(attrs, "data_base64"))
            json_object_del(j, "data");
        const char *k;
        json_t *v;
        json_object_foreach(attrs, k, v)
        {
            if (!json_object_get(j, k) && strcmp(k, "data") != 0)
                json_object_set(j, k, v);
        }
    }
    json_decref(attrs);
    return j;
}

static json_t *signal_json(const struct store_signal *r)
{
    return json_pack("{s:s, s:s, s:o, s:o}", "id", r->id, "type", r->name, "data",
                     wfo_json_text(r->data), "time", doc_time(r->time));
}

static int collect_event(void *ud, const struct store_event *r)
{
    json_array_append_new(ud, events_event_json(r));
    return 0;
}

static int collect_signal(void *ud, const struct store_signal *r)
{
    json_array_append_new(ud, signal_json(r));
    return 0;
}

/* Is id consumed by x in effects not committed yet (W3)? */
static int pending_in(const struct fsm *f, const struct execution *x, const char *id)
{
    for (int i = 0; i < f->n_hist; i++) {
        const struct fsm_hist *h = &f->hist[i];
        if (h->x != x || !h->data ||
            (strcmp(h->type, "event.consumed") != 0 && strcmp(h->type, "signal.consumed") != 0))
            continue;
        const char *hid = wfo_json_str(h->data, "id");
        if (hid && strcmp(hid, id) == 0)
            return 1;
    }
    return 0;
}

static int pending(const struct wfo_engine *e, const struct execution *x, const char *id)
{
    if (pending_in(&e->fsm, x, id))
        return 1;
    for (int i = 0; i < 3; i++)
        if (e->rounds[i].busy && !e->rounds[i].done && pending_in(&e->rounds[i].fx, x, id))
            return 1;
    return 0;
}

/* Looks for what st waits for and completes it when found. Returns 1 when
 * the store could not be read (the caller keeps the wake for later, E5). */
static int wait_match(struct wfo_engine *e, struct execution *x, struct step_state *st)
{
    if (st->status != SS_WAITING || !st->wait || EX_ENDED(x->status))
        return 0;
    struct wfo_error err = WFO_ERROR_INIT;
    json_t *found = json_array();
    const char *signal = wfo_json_str(st->wait, "signal");
    const char *consumed = signal ? "signal.consumed" : "event.consumed";
    int rc;
    if (signal) {
        rc = e->store->ops->find_signals(e->store, x->id, signal, EVENTS_CANDIDATES, collect_signal,
                                         found, &err);
    } else {
        rc = e->store->ops->find_events(e->store, x->ns, wfo_json_str(st->wait, "event"),
                                        wfo_json_str(st->wait, "key"), x->created_at, x->id,
                                        EVENTS_CANDIDATES, collect_event, found, &err);
    }
    if (rc < 0) {
        engine_read_failed(e, x->id, "matching an await_event step", &err);
        json_decref(found);
        return 1;
    }
    size_t i;
    json_t *v;
    json_array_foreach(found, i, v)
    {
        const char *id = wfo_json_str(v, "id");
        if (!id || pending(e, x, id))
            continue;
        fsm_wait_done(&e->fsm, x, st->path, st->token, v, consumed);
        break;
    }
    json_decref(found);
    return 0;
}

/* Does st wait for an event of (ns, type, key)? */
static int waits_for(const struct execution *x, const struct step_state *st, const char *ns,
                     const char *type, const char *key)
{
    if (st->status != SS_WAITING || !st->wait || strcmp(x->ns, ns) != 0)
        return 0;
    const char *t = wfo_json_str(st->wait, "event"), *k = wfo_json_str(st->wait, "key");
    if (!t || strcmp(t, type) != 0)
        return 0;
    return (!k && !key) || (k && key && strcmp(k, key) == 0);
}

/* --- the index of waits (W5) ------------------------------------------------ */

struct wait_ids {
    char *key; /* its key in e->waits */
    char **v;  /* execution ids */
    int n, alloc;
};

/* The index key of (ns, type, key): a NULL key is not the empty one. */
static void wait_key(struct wfo_buf *b, const char *ns, const char *type, const char *key)
{
    wfo_buf_reset(b);
    wfo_buf_adds(b, ns);
    wfo_buf_addch(b, '\n');
    wfo_buf_adds(b, type);
    wfo_buf_adds(b, key ? "\nk" : "\n-");
    if (key)
        wfo_buf_adds(b, key);
}

static void wait_ids_free(struct wait_ids *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    free(l->key);
    free(l);
}

void events_index_release(struct wfo_engine *e)
{
    const char *k;
    void *v;
    for (size_t it = 0; wfo_map_next(&e->waits, &it, &k, &v);)
        wait_ids_free(v);
    wfo_map_release(&e->waits);
}

/* Indexes x's steps that wait for an event. */
void events_index_exec(struct wfo_engine *e, struct execution *x)
{
    struct wfo_buf b = WFO_BUF_INIT;
    for (int k = 0; k < x->n_steps; k++) {
        struct step_state *st = x->steps[k];
        const char *type = st->wait ? wfo_json_str(st->wait, "event") : NULL;
        if (st->status != SS_WAITING || !type)
            continue;
        wait_key(&b, x->ns, type, wfo_json_str(st->wait, "key"));
        struct wait_ids *l = wfo_map_get(&e->waits, b.buf);
        if (!l) {
            l = wfo_calloc(1, sizeof(*l));
            l->key = wfo_strdup(b.buf);
            wfo_map_put(&e->waits, l->key, l);
        }
        int dup = 0;
        for (int i = l->n; i-- > 0 && i >= l->n - 4 && !dup;)
            dup = strcmp(l->v[i], x->id) == 0;
        if (!dup) {
            GROW(l->v, l->n, l->alloc);
            l->v[l->n++] = wfo_strdup(x->id);
        }
    }
    wfo_buf_release(&b);
}

/* The "waits index" duty: made again from the executions in memory. */
void events_reindex(struct wfo_engine *e)
{
    const char *id;
    void *v;
    events_index_release(e);
    for (size_t it = 0; wfo_map_next(&e->execs, &it, &id, &v);)
        events_index_exec(e, v);
}

/* Every execution in memory with a step waiting for (ns, type, key): the
 * index's, of which those that no longer wait for it leave it (W5). */
static int wake_event(struct wfo_engine *e, const char *ns, const char *type, const char *key)
{
    struct execution **xs = NULL;
    int n = 0, alloc = 0, kept = 0;
    struct wfo_buf b = WFO_BUF_INIT;
    wait_key(&b, ns, type, key);
    struct wait_ids *l = wfo_map_get(&e->waits, b.buf);
    wfo_buf_release(&b);
    if (!l)
        return 0;
    int w = 0;
    for (int i = 0; i < l->n; i++) {
        struct execution *x = wfo_map_get(&e->execs, l->v[i]);
        int waits = 0;
        for (int k = 0; x && k < x->n_steps && !waits; k++)
            waits = waits_for(x, x->steps[k], ns, type, key);
        if (!waits) {
            free(l->v[i]);
            continue;
        }
        l->v[w++] = l->v[i];
        GROW(xs, n, alloc);
        xs[n++] = x;
    }
    l->n = w;
    if (!l->n) {
        wfo_map_del(&e->waits, l->key);
        wait_ids_free(l);
    }
    /* matched after the scan: a match may change the map's executions */
    for (int i = 0; i < n; i++)
        for (int k = 0; k < xs[i]->n_steps; k++)
            if (waits_for(xs[i], xs[i]->steps[k], ns, type, key))
                kept |= wait_match(e, xs[i], xs[i]->steps[k]);
    free(xs);
    return kept;
}

/* The waits of one execution: those for signal `name`, or all (NULL). */
static int wake_exec(struct wfo_engine *e, const char *exec_id, const char *name)
{
    struct wfo_error err = WFO_ERROR_INIT;
    int loaded = !wfo_map_get(&e->execs, exec_id), kept = 0;
    struct execution *x = exec_get(e, exec_id, &err);
    if (!x) {
        if (!EXEC_GONE(&err)) {
            engine_read_failed(e, exec_id, "a signal's execution", &err);
            return 1;
        }
        return 0;
    }
    for (int k = 0; k < x->n_steps; k++) {
        struct step_state *st = x->steps[k];
        const char *s = st->wait ? wfo_json_str(st->wait, "signal") : NULL;
        if (name && (!s || strcmp(s, name) != 0))
            continue;
        kept |= wait_match(e, x, st);
    }
    /* loaded only to look: nothing waits, it leaves memory again (E3) */
    if (loaded && x->touched != e->fsm.gen && exec_idle(x) && wfo_map_del(&e->execs, x->id))
        exec_free(x);
    return kept;
}

int events_wake(struct wfo_engine *e, struct cmd *c)
{
    if (c->ns)
        return wake_event(e, c->ns, c->path, c->reason);
    return wake_exec(e, c->id, c->path);
}

void events_after_commit(struct wfo_engine *e, struct fsm *f)
{
    for (int i = 0; i < f->n_hist; i++) {
        struct fsm_hist *h = &f->hist[i];
        if (strcmp(h->type, "step.waiting") == 0) {
            struct execution *x = h->x;
            struct step_state *st = exec_step(x, h->step);
            /* only an execution still in memory (one that ended since left) */
            if (!st || wfo_map_get(&e->execs, x->id) != x)
                continue;
            events_index_exec(e, x);
            if (wait_match(e, x, st))
                events_post_wake(e, NULL, NULL, NULL, x->id);
        } else if (strcmp(h->type, "event.emitted") == 0 && h->data) {
            if (wake_event(e, h->x->ns, wfo_json_str(h->data, "type"),
                           wfo_json_str(h->data, "key")))
                events_post_wake(e, h->x->ns, wfo_json_str(h->data, "type"),
                                 wfo_json_str(h->data, "key"), NULL);
            triggers_event(e, h->x->ns, h->data); /* T2 */
        }
    }
}

void events_post_wake(struct wfo_engine *e, const char *ns, const char *type, const char *key,
                      const char *exec_id)
{
    struct cmd *c = wfo_calloc(1, sizeof(*c));
    c->kind = CMD_WAKE;
    if (ns) {
        c->ns = wfo_strdup(ns);
        c->path = wfo_strdup(type ? type : "");
        c->reason = key ? wfo_strdup(key) : NULL;
    } else {
        snprintf(c->id, sizeof(c->id), "%s", exec_id);
        c->path = type ? wfo_strdup(type) : NULL;
    }
    engine_post(e, c, NULL);
}

/* --- the API's calls ---------------------------------------------------------- */

static int keep_event(void *ud, const struct store_event *r)
{
    json_t **out = ud;
    *out = events_event_json(r);
    return 0;
}

int engine_event_post(struct wfo_engine *e, const char *ns, const struct engine_event *ev,
                      int *created, json_t **record, struct wfo_error *err)
{
    int rc = engine_ready(e, err);
    if (rc < 0)
        return rc;
    char id[WFO_ID_SIZE];
    struct store_event row = {
        .namespace = ns,
        .id = ev->id,
        .type = ev->type,
        .key = ev->key,
        .source = ev->source,
        .time = ev->time,
    };
    char *data = ev->data ? wfo_json_dumps(ev->data) : NULL;
    char *attrs = ev->attrs ? wfo_json_dumps(ev->attrs) : NULL;
    row.data = data;
    row.attrs = attrs;
    if (!row.id) {
        wfo_id_new(id);
        row.id = id;
    }
    row.published_at = wfo_now_ms();
    if (!row.time)
        row.time = row.published_at;
    /* O1: the outbox row, in put_event's transaction */
    json_t *out = events_event_json(&row);
    char *out_text = wfo_json_dumps(out);
    json_decref(out);
    row.outbox = out_text;
    *record = NULL;
    rc = e->store->ops->put_event(e->store, &row, created, keep_event, record, err);
    free(data);
    free(attrs);
    free(out_text);
    if (rc < 0)
        return rc;
    if (*created) { /* W1: committed; the engine looks for the steps it wakes */
        events_outbox_notify(e);
        events_post_wake(e, ns, ev->type, ev->key, NULL);
        triggers_event(e, ns, *record); /* T2 */
    }
    return 0;
}

int engine_signal(struct wfo_engine *e, const char *ns, const char *exec_id, const char *name,
                  json_t *data, json_t **record, struct wfo_error *err)
{
    int rc = engine_ready(e, err);
    if (rc < 0)
        return rc;
    char id[WFO_ID_SIZE];
    wfo_id_new(id);
    char *text = data ? wfo_json_dumps(data) : NULL;
    /* fenced like a batch: written only while this engine holds the
     * execution's shard at the epoch it claimed */
    struct store_signal row = {
        .id = id,
        .exec_id = exec_id,
        .name = name,
        .data = text,
        .time = wfo_now_ms(),
        .owner = e->owner,
        .epoch = atomic_load(&e->held_epochs[store_shard_of(exec_id)]),
    };
    rc = e->store->ops->put_signal(e->store, &row, err);
    if (rc == 0) {
        *record = signal_json(&row);
        events_post_wake(e, NULL, name, NULL, exec_id);
    }
    free(text);
    (void)ns; /* the route checked the execution's namespace (query_exec_check) */
    return rc;
}

/* ---- the outbox (SPEC 2.5 "Outbound") ----
 *
 *   O1. An outbox row is written in the transaction of the change that
 *       caused it: put_event's for a posted event, the round's batch for an
 *       emitted event and for the lifecycle entries (round.c
 *       batch_outbox). Both or neither are committed.
 *   O2. The store numbers rows in commit order (seq): a reader that has
 *       read up to seq n never later finds a row below n. A stream keeps
 *       its last seq and reads on from it: nothing missed or repeated.
 *   O3. Readers read the store, never the engine's memory: a slow stream
 *       holds only its own connection. The engine only bumps outbox_gen
 *       after a commit; a reader takes the counter before it reads, so a
 *       commit after its read changes the counter and the wait returns at
 *       once. The wait has a timeout too (another node's commits).
 */

void events_outbox_notify(struct wfo_engine *e)
{
    pthread_mutex_lock(&e->outbox_mu);
    e->outbox_gen++;
    pthread_cond_broadcast(&e->outbox_cv);
    pthread_mutex_unlock(&e->outbox_mu);
}

int64_t engine_outbox_wait(struct wfo_engine *e, int64_t gen, int64_t timeout_ms)
{
    pthread_mutex_lock(&e->outbox_mu);
    if (gen >= 0 && e->outbox_gen == gen && timeout_ms > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += timeout_ms / 1000;
        ts.tv_nsec += (timeout_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        while (e->outbox_gen == gen)
            if (pthread_cond_timedwait(&e->outbox_cv, &e->outbox_mu, &ts) != 0)
                break;
    }
    int64_t now = e->outbox_gen;
    pthread_mutex_unlock(&e->outbox_mu);
    return now;
}

struct outbox_read {
    engine_outbox_cb cb;
    void *ud;
};

static int outbox_row(void *ud, const struct store_outbox *r)
{
    struct outbox_read *o = ud;
    struct engine_outbox_row row = {
        .seq = r->seq,
        .id = r->event_id,
        .type = r->type,
        .key = r->key,
        .exec_id = r->exec_id,
        .event = r->event,
    };
    return o->cb(o->ud, &row);
}

int engine_outbox_read(struct wfo_engine *e, const char *ns, int64_t after, int limit,
                       engine_outbox_cb cb, void *ud, struct wfo_error *err)
{
    int rc = engine_ready(e, err);
    if (rc < 0)
        return rc;
    struct outbox_read o = {cb, ud};
    return e->store->ops->list_outbox(e->store, ns, after, limit, outbox_row, &o, err);
}

int engine_outbox_seq(struct wfo_engine *e, const char *ns, const char *id, int64_t *seq,
                      struct wfo_error *err)
{
    int rc = engine_ready(e, err);
    if (rc < 0)
        return rc;
    return e->store->ops->outbox_seq(e->store, ns, id, seq, err);
}
