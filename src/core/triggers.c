/*
 * triggers.c - what starts executions by itself (SPEC 2.5): event and cron
 * triggers. docs/implementation/event_processing.md, "Triggers", draws the
 * races and how each is closed; in short:
 *
 *   T1. A trigger starts through the engine's idempotent start (CMD_START
 *       with a client id, do_start): an execution whose id exists starts
 *       nothing. The id is a hash of (namespace, workflow, event id) or of
 *       (namespace, workflow, cron expression, slot), so every path that
 *       may start the same firing twice (a redelivered event, the
 *       recovery scan, a cron slot looked at again after a restart or by
 *       another node) asks for the same id.
 *   T2. An event's triggers are looked at after the event is committed:
 *       after put_event for POST /v1/events, after the round that wrote an
 *       `emit` step's row (events_after_commit). A crash between that
 *       commit and the start's commit loses nothing that recovery's scan
 *       of the events published in the last TRIGGER_RESCAN_MS finds
 *       (triggers_recover).
 *   T3. Cron: the "cron triggers" duty of engine_tick looks at every
 *       minute's start (and at launch) for the latest slot at or before
 *       now of each cron trigger of each latest workflow, and starts it
 *       (T1). Older missed slots are never looked at: after an outage only
 *       the latest fires. A slot before the workflow's latest version was
 *       registered never fires.
 */
#include "common/compat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"
#include "doc.h"
#include "../common/crypto.h"
#include "../common/duration.h"
#include "../common/log.h"
#include "../common/redact.h"

/* T2: how far back recovery looks for events whose triggers may not have
 * started, and at most how many of them (the newest). */
#define TRIGGER_RESCAN_MS (60 * 60 * 1000)
#define TRIGGER_RESCAN_MAX 10000

void triggers_id(char out[WFO_ID_SIZE], const char *ns, const char *workflow, const char *kind,
                 const char *what)
{
    struct wfo_buf b = WFO_BUF_INIT;
    unsigned char h[WFO_SHA256_SIZE];
    static const char hex[] = "0123456789abcdef";
    /* names and namespaces have no newline: only `what` could, and it is last */
    wfo_buf_addf(&b, "wfo-trigger\n%s\n%s\n%s\n%s", ns, workflow, kind, what);
    wfo_sha256(b.buf, b.len, h);
    wfo_buf_release(&b);
    h[6] = (unsigned char)((h[6] & 0x0f) | 0x80); /* version 8: custom */
    h[8] = (unsigned char)((h[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    char *p = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *p++ = '-';
        *p++ = hex[h[i] >> 4];
        *p++ = hex[h[i] & 15];
    }
    *p = 0;
}

/* The latest version of every workflow that has triggers: of ns, or of
 * every namespace (ns NULL). */
struct twf {
    char *ns, *name;
    int version;
    int64_t created_at;
};

struct twfs {
    struct twf *v;
    int n, alloc;
};

static int twf_cb(void *ud, const struct store_workflow *w)
{
    struct twfs *l = ud;
    /* only those whose text names triggers are compiled (cached, defs.c) */
    if (!w->definition || !strstr(w->definition, "\"triggers\""))
        return 0;
    GROW(l->v, l->n, l->alloc);
    l->v[l->n++] =
        (struct twf){wfo_strdup(w->namespace), wfo_strdup(w->name), w->version, w->created_at};
    return 0;
}

static void twfs_release(struct twfs *l)
{
    for (int i = 0; i < l->n; i++) {
        free(l->v[i].ns);
        free(l->v[i].name);
    }
    free(l->v);
}

static int twfs_read(struct wfo_engine *e, const char *ns, struct twfs *l, struct wfo_error *err)
{
    memset(l, 0, sizeof(*l));
    int rc = e->store->ops->list_workflows(e->store, ns, twf_cb, l, err);
    if (rc < 0)
        twfs_release(l);
    return rc;
}

static void twfs_copy(struct twfs *to, const struct twfs *from)
{
    memset(to, 0, sizeof(*to));
    for (int i = 0; i < from->n; i++) {
        GROW(to->v, to->n, to->alloc);
        to->v[to->n++] = (struct twf){wfo_strdup(from->v[i].ns), wfo_strdup(from->v[i].name),
                                      from->v[i].version, from->v[i].created_at};
    }
}

/* The event path's cache of twfs_read(ns): valid until a workflow is
 * registered or deleted in this process (wf_gen, wf_epoch, bumped before
 * the PUT or DELETE is answered, so an event posted after the answer reads
 * again), and at most TRIGGER_CACHE_MS (another process's registrations). */
#define TRIGGER_CACHE_MS 5000

struct tcache {
    int64_t gen, epoch, at;
    struct twfs l;
};

static int twfs_cached(struct wfo_engine *e, const char *ns, struct twfs *l, struct wfo_error *err)
{
    int64_t gen = atomic_load(&e->wf_gen), epoch = defs_epoch(e), now = wfo_mono_ms();
    pthread_mutex_lock(&e->defs_mu);
    struct tcache *c = wfo_map_get(&e->trig_cache, ns);
    if (c && c->gen == gen && c->epoch == epoch && now - c->at < TRIGGER_CACHE_MS) {
        twfs_copy(l, &c->l);
        pthread_mutex_unlock(&e->defs_mu);
        return 0;
    }
    pthread_mutex_unlock(&e->defs_mu);
    int rc = twfs_read(e, ns, l, err);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&e->defs_mu);
    c = wfo_map_get(&e->trig_cache, ns);
    if (!c) {
        c = wfo_calloc(1, sizeof(*c));
        wfo_map_put(&e->trig_cache, wfo_strdup(ns), c);
    }
    twfs_release(&c->l);
    twfs_copy(&c->l, l);
    c->gen = gen; /* as before the read: a registration since reads again */
    c->epoch = epoch;
    c->at = now;
    pthread_mutex_unlock(&e->defs_mu);
    return 0;
}

/* Queues the start of (ns, d) with id, its input the trigger's `input`
 * evaluated on {event: ev} (default: {event: ev}). Nobody waits for the
 * answer: an execution of that id existing is the point (T1). */
static void start_one(struct wfo_engine *e, const char *ns, struct def *d,
                      const struct def_trigger *tr, json_t *ev, const char *id, int64_t epoch)
{
    json_t *ctx = json_pack("{s:O}", "event", ev), *input = NULL;
    struct wfo_error err = WFO_ERROR_INIT;
    if (!tr->input) {
        input = json_incref(ctx);
    } else if (tmpl_eval(tr->input, ctx, &input, &err) < 0) {
        wfo_warn(id, NULL, "trigger of workflow '%s' not started: input: %s", d->name, err.message);
        json_decref(ctx);
        return;
    }
    json_decref(ctx);
    struct cmd *c = wfo_calloc(1, sizeof(*c));
    c->kind = CMD_START;
    c->ns = wfo_strdup(ns);
    snprintf(c->id, sizeof(c->id), "%s", id);
    c->def = def_ref(d);
    c->epoch = epoch;
    c->input = wfo_redact_json(input);
    json_decref(input);
    engine_post(e, c, NULL);
}

/* Starts the event triggers of the latest workflows of ns that match ev
 * ({id, type, ...}); with published_at > 0 only of workflows registered
 * at or before it (the recovery scan: a workflow registered later did not
 * exist when the event came). Returns the starts queued, or -1 when the
 * store could not be read. */
static int event_fire(struct wfo_engine *e, const char *ns, json_t *ev, int64_t published_at)
{
    const char *type = wfo_json_str(ev, "type"), *evid = wfo_json_str(ev, "id");
    struct wfo_error err = WFO_ERROR_INIT;
    struct twfs l;
    int n = 0;
    if (!type || !evid)
        return 0;
    int64_t epoch = defs_epoch(e);
    if (twfs_cached(e, ns, &l, &err) < 0) {
        wfo_warn(NULL, NULL, "event %s: reading the workflows with triggers: %s", evid,
                 err.message);
        return -1;
    }
    for (int i = 0; i < l.n; i++) {
        struct def *d = NULL;
        if (published_at > 0 && l.v[i].created_at > published_at)
            continue;
        if (engine_def(e, ns, l.v[i].name, l.v[i].version, &d, &err) < 0) {
            wfo_warn(NULL, NULL, "event %s: workflow '%s': %s", evid, l.v[i].name, err.message);
            err = (struct wfo_error)WFO_ERROR_INIT;
            continue;
        }
        for (int k = 0; k < d->n_triggers; k++) {
            const struct def_trigger *tr = &d->triggers[k];
            if (!tr->event || strcmp(tr->event, type) != 0)
                continue;
            char id[WFO_ID_SIZE];
            triggers_id(id, ns, d->name, "event", evid);
            start_one(e, ns, d, tr, ev, id, epoch);
            n++;
            break; /* one execution per (workflow, event) */
        }
        def_unref(d);
    }
    twfs_release(&l);
    return n;
}

void triggers_event(struct wfo_engine *e, const char *ns, json_t *ev)
{
    event_fire(e, ns, ev, 0);
}

/* --- recovery's scan (T2) ------------------------------------------------------ */

struct recent {
    json_t *evs; /* [{ns, published_at, event}] */
};

static int recent_cb(void *ud, const struct store_event *r)
{
    struct recent *rc = ud;
    json_array_append_new(rc->evs, json_pack("{s:s, s:I, s:I, s:o}", "ns", r->namespace,
                                             "published_at", (json_int_t)r->published_at, "seq",
                                             (json_int_t)r->seq, "event", events_event_json(r)));
    return 0;
}

int triggers_recover(struct wfo_engine *e, struct wfo_error *err)
{
    struct recent r = {json_array()};
    int64_t since = wfo_now_ms() - TRIGGER_RESCAN_MS;
    int rc = e->store->ops->find_events(e->store, NULL, NULL, NULL, since, NULL, TRIGGER_RESCAN_MAX,
                                        recent_cb, &r, err);
    if (rc == 0) {
        size_t i;
        json_t *v;
        /* oldest first, like they came */
        for (i = json_array_size(r.evs); i-- > 0;) {
            v = json_array_get(r.evs, i);
            event_fire(e, wfo_json_str(v, "ns"), json_object_get(v, "event"),
                       json_integer_value(json_object_get(v, "published_at")));
        }
    }
    json_decref(r.evs);
    return rc;
}

/* --- a cluster (T4) -------------------------------------------------------------- */

/* T4. In a cluster (engine.c E8) an event is accepted by one node, but the
 *     triggers it fires and the waits it meets may belong to another's
 *     shards. Every CLUSTER_SCAN_MS each node reads the events published
 *     since its last look (less CLUSTER_SCAN_MARGIN_MS, for clocks and
 *     commits in flight) with a seq above the last it handled, fires their
 *     triggers (a start whose id falls in another node's shard is refused
 *     there, so each starts once, on the node that holds it: T1) and wakes
 *     its own waits of their (type, key). A start refused everywhere (its
 *     shard held by a node that died, or changing hands) is made by the
 *     shard's next owner: a node that claims shards scans the last
 *     TRIGGER_RESCAN_MS of events again (triggers_recover, from
 *     recover.c's shards_renew_cluster), as recovery does at launch. */
#define CLUSTER_SCAN_MS 500
#define CLUSTER_SCAN_MARGIN_MS 5000

void triggers_cluster_scan(struct wfo_engine *e, int64_t now)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct recent r = {json_array()};
    int64_t since = (e->scan_at ? e->scan_at : now) - CLUSTER_SCAN_MARGIN_MS;
    e->next_scan = now + CLUSTER_SCAN_MS;
    int rc = e->store->ops->find_events(e->store, NULL, NULL, NULL, since, NULL, TRIGGER_RESCAN_MAX,
                                        recent_cb, &r, &err);
    if (rc < 0) {
        engine_read_failed(e, NULL, "the events of the other nodes", &err);
        json_decref(r.evs);
        return;
    }
    e->scan_at = now;
    int64_t top = e->scan_seq;
    for (size_t i = json_array_size(r.evs); i-- > 0;) { /* oldest first */
        json_t *v = json_array_get(r.evs, i), *ev = json_object_get(v, "event");
        int64_t seq = json_integer_value(json_object_get(v, "seq"));
        if (seq <= e->scan_seq)
            continue;
        if (seq > top)
            top = seq;
        const char *ns = wfo_json_str(v, "ns");
        event_fire(e, ns, ev, 0);
        events_post_wake(e, ns, wfo_json_str(ev, "type"), wfo_json_str(ev, "key"), NULL);
    }
    e->scan_seq = top;
    json_decref(r.evs);
}

/* --- cron (T3) ------------------------------------------------------------------ */

void triggers_cron(struct wfo_engine *e, int64_t now)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct twfs l;
    int64_t epoch = defs_epoch(e);
    if (twfs_read(e, NULL, &l, &err) < 0) {
        engine_read_failed(e, NULL, "cron triggers", &err);
        e->next_cron = now + 1000; /* E5: looked at again a second later */
        return;
    }
    struct wfo_buf key = WFO_BUF_INIT;
    for (int i = 0; i < l.n; i++) {
        struct def *d = NULL;
        if (engine_def(e, l.v[i].ns, l.v[i].name, l.v[i].version, &d, &err) < 0) {
            wfo_warn(NULL, NULL, "cron: workflow '%s': %s", l.v[i].name, err.message);
            err = (struct wfo_error)WFO_ERROR_INIT;
            continue;
        }
        for (int k = 0; k < d->n_triggers; k++) {
            const struct def_trigger *tr = &d->triggers[k];
            if (!tr->cron)
                continue;
            int64_t slot = wfo_cron_prev(&tr->spec, now);
            if (slot < 0 || slot < l.v[i].created_at)
                continue;
            char id[WFO_ID_SIZE], what[64], t[40];
            snprintf(what, sizeof(what), "%lld", (long long)slot);
            wfo_buf_reset(&key);
            wfo_buf_addf(&key, "%s\n%s", tr->cron, what);
            triggers_id(id, l.v[i].ns, d->name, "cron", key.buf);
            /* in a cluster, the node that holds the slot's id starts it
             * (T4): one that takes that shard later looks again at once */
            if (e->cluster && !(e->shards >> store_shard_of(id) & 1))
                continue;
            /* the slot this process last started for this trigger */
            wfo_buf_reset(&key);
            wfo_buf_addf(&key, "%s\n%s\n%s", l.v[i].ns, d->name, tr->cron);
            int64_t *last = wfo_map_get(&e->cron_fired, key.buf);
            if (last && *last == slot)
                continue;
            if (!last) {
                last = wfo_calloc(1, sizeof(*last));
                wfo_map_put(&e->cron_fired, wfo_strdup(key.buf), last);
            }
            *last = slot;
            wfo_time_format(slot, t, sizeof(t));
            json_t *ev =
                json_pack("{s:s, s:s, s:n, s:s, s:{s:s}, s:s}", "id", id, "type", "wfo.cron", "key",
                          "source", "wfo", "data", "cron", tr->cron, "time", t);
            start_one(e, l.v[i].ns, d, tr, ev, id, epoch);
            json_decref(ev);
        }
        def_unref(d);
    }
    wfo_buf_release(&key);
    twfs_release(&l);
    /* every slot is a minute's start: look again at the next one */
    e->next_cron = (now / 60000 + 1) * 60000;
}

void triggers_release(struct wfo_engine *e)
{
    const char *k;
    void *v;
    for (size_t it = 0; wfo_map_next(&e->cron_fired, &it, &k, &v);) {
        free(v);
        free((char *)k);
    }
    wfo_map_release(&e->cron_fired);
    for (size_t it = 0; wfo_map_next(&e->trig_cache, &it, &k, &v);) {
        twfs_release(&((struct tcache *)v)->l);
        free(v);
        free((char *)k);
    }
    wfo_map_release(&e->trig_cache);
}
