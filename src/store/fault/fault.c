/*
 * fault.c - a store back end for tests that wraps another and makes some of
 * its calls fail or wait (like git's refs/debug.c wraps a refs back end).
 * docs/interfaces/internal.md ("The store interface").
 *
 * URL: "fault:" followed by the wrapped store's URL (fault:sqlite:/tmp/x.db).
 * What fails comes from $WFO_STORE_FAULTS, read when the store is opened:
 * rules separated by commas, each OP:WHAT where OP is an op's name
 * (get_exec, list_steps, apply, ...; "*" for every op) and WHAT is
 *
 *   N       the Nth call of OP fails (calls count from 1, per op)
 *   N-M     calls N to M fail
 *   N+      every call from the Nth on fails
 *   pP      each call fails with probability P (0..1), from a generator
 *           seeded with $WFO_STORE_FAULTS_SEED (default 1)
 *   dMS     each call waits MS milliseconds first
 *
 * A failing call returns WFO_ESTORE ("injected fault") without calling the
 * wrapped store, so the wrapped store's state is as if it never happened.
 */
#include "common/compat.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/store.h"
#include "common/util.h"

enum fop {
    F_PING,
    F_APPLY,
    F_PUT_WORKFLOW,
    F_GET_WORKFLOW,
    F_LIST_WORKFLOWS,
    F_GET_EXEC,
    F_LIST_EXECS,
    F_LIST_ACTIVE_EXECS,
    F_LIST_STEPS,
    F_LIST_HISTORY,
    F_LIST_TIMERS,
    F_LIST_TASKS,
    F_DELETE_WORKFLOW,
    F_LIST_EXPIRED,
    F_CLAIM_SHARDS,
    F_RELEASE_SHARDS,
    F_LIST_SHARDS,
    F_PUT_EVENT,
    F_FIND_EVENTS,
    F_PUT_SIGNAL,
    F_FIND_SIGNALS,
    F_LIST_OUTBOX,
    F_OUTBOX_SEQ,
    F_DELETE_OUTBOX,
    F_BEAT_NODE,
    F_LIST_NODES,
    F_PUT_SUBSCRIPTION,
    F_GET_SUBSCRIPTION,
    F_LIST_SUBSCRIPTIONS,
    F_DELETE_SUBSCRIPTION,
    F_SUBSCRIPTION_DELIVERED,
    F_SUBSCRIPTION_FAILED,
    F__COUNT
};

static const char *const fop_names[F__COUNT] = {"ping",
                                                "apply",
                                                "put_workflow",
                                                "get_workflow",
                                                "list_workflows",
                                                "get_exec",
                                                "list_execs",
                                                "list_active_execs",
                                                "list_steps",
                                                "list_history",
                                                "list_timers",
                                                "list_tasks",
                                                "delete_workflow",
                                                "list_expired",
                                                "claim_shards",
                                                "release_shards",
                                                "list_shards",
                                                "put_event",
                                                "find_events",
                                                "put_signal",
                                                "find_signals",
                                                "list_outbox",
                                                "outbox_seq",
                                                "delete_outbox",
                                                "beat_node",
                                                "list_nodes",
                                                "put_subscription",
                                                "get_subscription",
                                                "list_subscriptions",
                                                "delete_subscription",
                                                "subscription_delivered",
                                                "subscription_failed"};

#define FAULT_RULES_MAX 32

struct fault_rule {
    int op;             /* -1: every op */
    long long from, to; /* calls that fail; to < 0: no end */
    double p;           /* > 0: fail with this probability */
    long long delay_ms;
};

struct fault_store {
    struct store base; /* first: a struct store * is one of these */
    struct store *inner;
    pthread_mutex_t mu;
    long long calls[F__COUNT];
    unsigned long long rng;
    struct fault_rule rules[FAULT_RULES_MAX];
    int n_rules;
};

static struct fault_store *fs_of(struct store *s)
{
    return (struct fault_store *)s;
}

static int fault_accepts(const char *url)
{
    return strncmp(url, "fault:", 6) == 0;
}

/* Parses one rule "OP:WHAT"; 0 or -1 when it is not one. */
static int rule_parse(const char *s, size_t len, struct fault_rule *r)
{
    char buf[96];
    if (len == 0 || len >= sizeof(buf))
        return -1;
    memcpy(buf, s, len);
    buf[len] = 0;
    char *colon = strchr(buf, ':');
    if (!colon)
        return -1;
    *colon = 0;
    const char *what = colon + 1;
    memset(r, 0, sizeof(*r));
    r->op = -2;
    if (strcmp(buf, "*") == 0)
        r->op = -1;
    for (int i = 0; i < F__COUNT; i++)
        if (strcmp(buf, fop_names[i]) == 0)
            r->op = i;
    if (r->op == -2)
        return -1;
    char *end;
    r->from = 1;
    r->to = 0; /* none */
    if (what[0] == 'p') {
        r->p = strtod(what + 1, &end);
        return *end || r->p <= 0 ? -1 : 0;
    }
    if (what[0] == 'd') {
        r->delay_ms = strtoll(what + 1, &end, 10);
        return *end || r->delay_ms < 0 ? -1 : 0;
    }
    r->from = strtoll(what, &end, 10);
    if (end == what || r->from < 1)
        return -1;
    if (*end == 0)
        r->to = r->from;
    else if (end[0] == '+' && end[1] == 0)
        r->to = -1;
    else if (end[0] == '-') {
        const char *m = end + 1;
        r->to = strtoll(m, &end, 10);
        if (end == m || *end || r->to < r->from)
            return -1;
    } else {
        return -1;
    }
    return 0;
}

static int fault_open(const char *url, struct store **out, struct wfo_error *err)
{
    struct fault_store *s = wfo_calloc(1, sizeof(*s));
    const char *rules = getenv("WFO_STORE_FAULTS");
    const char *seed = getenv("WFO_STORE_FAULTS_SEED");
    int rc;

    *out = NULL;
    s->rng = seed ? strtoull(seed, NULL, 10) : 1;
    if (!s->rng)
        s->rng = 1;
    for (const char *p = rules ? rules : ""; *p;) {
        size_t n = strcspn(p, ",");
        if (n > 0) {
            if (s->n_rules == FAULT_RULES_MAX || rule_parse(p, n, &s->rules[s->n_rules]) < 0) {
                rc = wfo_error_set(err, WFO_EINVAL, "WFO_STORE_FAULTS: bad rule '%.*s'", (int)n, p);
                free(s);
                return rc;
            }
            s->n_rules++;
        }
        p += n + (p[n] == ',');
    }
    rc = store_open(url + 6, &s->inner, err);
    if (rc < 0) {
        free(s);
        return rc;
    }
    pthread_mutex_init(&s->mu, NULL);
    s->base.ops = &store_fault_ops;
    *out = &s->base;
    return 0;
}

static void fault_close(struct store *base)
{
    struct fault_store *s = fs_of(base);
    store_close(s->inner);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* Counts a call of op; WFO_ESTORE when a rule makes it fail. */
static int fault_check(struct fault_store *s, enum fop op, struct wfo_error *err)
{
    long long delay = 0;
    int fail = 0;
    pthread_mutex_lock(&s->mu);
    long long n = ++s->calls[op];
    for (int i = 0; i < s->n_rules; i++) {
        const struct fault_rule *r = &s->rules[i];
        if (r->op != -1 && r->op != (int)op)
            continue;
        delay += r->delay_ms;
        if (r->p > 0) {
            s->rng ^= s->rng << 13;
            s->rng ^= s->rng >> 7;
            s->rng ^= s->rng << 17;
            fail |= (double)(s->rng >> 11) / (double)(1ULL << 53) < r->p;
        } else if (!r->delay_ms) {
            fail |= n >= r->from && (r->to < 0 || n <= r->to);
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (delay > 0) {
        struct timespec ts = {(time_t)(delay / 1000), (long)(delay % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (fail)
        return wfo_error_set(err, WFO_ESTORE, "%s: injected fault (call %lld)", fop_names[op], n);
    return 0;
}

#define CHECK(op)                                                                                  \
    do {                                                                                           \
        int frc_ = fault_check(s, (op), err);                                                      \
        if (frc_ < 0)                                                                              \
            return frc_;                                                                           \
    } while (0)

static int fault_ping(struct store *base, struct wfo_error *err)
{
    struct fault_store *s = fs_of(base);
    CHECK(F_PING);
    return s->inner->ops->ping(s->inner, err);
}

static int fault_apply(struct store *base, const struct store_batch *b, struct wfo_error *err)
{
    struct fault_store *s = fs_of(base);
    CHECK(F_APPLY);
    return s->inner->ops->apply(s->inner, b, err);
}

static int fault_put_workflow(struct store *base, const struct store_workflow *w, int *created,
                              store_workflow_cb cb, void *ud, struct wfo_error *err)
{
    struct fault_store *s = fs_of(base);
    CHECK(F_PUT_WORKFLOW);
    return s->inner->ops->put_workflow(s->inner, w, created, cb, ud, err);
}

static int fault_get_workflow(struct store *base, const char *ns, const char *name, int version,
                              store_workflow_cb cb, void *ud, struct wfo_error *err)
{
    struct fault_store *s = fs_of(base);
    CHECK(F_GET_WORKFLOW);
    return s->inner->ops->get_workflow(s->inner, ns, name, version, cb, ud, err);
}

static int fault_list_workflows(struct store *base, const char *ns, store_workflow_cb cb, void *ud,
                                struct wfo_error *err)
{
    struct fault_store *s = fs_of(base);
    CHECK(F_LIST_WORKFLOWS);
    return s->inner->ops->list_workflows(s->inner, ns, cb, ud, err);
}

static int fault_get_exec(struct store *base, const char *id, store_exec_cb cb, void *ud,
                          struct wfo_error *err)
{
    struct fault_store *s = fs_of(base);
    CHECK(F_GET_EXEC);
    return s->inner->ops->get_exec(s->inner, id, cb, ud, err);
}

static int fault_list_execs(struct store *base, const struct store_exec_filter *f, store_exec_cb cb,
                            void *ud, struct wfo_error *err)
{
    struct fault_store *s = fs_of(base);
    CHECK(F_LIST_EXECS);
    return s->inner->ops->list_execs(s->inner, f, cb, ud, err);
}

static int fault_list_active_execs(struct store *base, store_shardset shards, store_exec_cb cb,
                                   void *ud, struct wfo_error *err)
{
    struct fault_store *s = fs_of(base);
    CHECK(F_LIST_ACTIVE_EXECS);
    return s->inner->ops->list_active_execs(s->inner, shards, cb, ud, err);
}

static int fault_list_steps(struct store *base, const char *exec_id, store_step_cb cb, void *ud,
                            struct wfo_error *err)
{
    struct fault_store *s = fs_of(base);
    CHECK(F_LIST_STEPS);
    return s->inner->ops->list_steps(s->inner, exec_id, cb, ud, err);
}

static int fault_list_history(struct store *base, const char *exec_id, int64_t after_seq, int limit,
                              store_history_cb cb, void *ud, struct wfo_error *err)
{
    struct fault_store *s = fs_of(base);
    CHECK(F_LIST_HISTORY);
    return s->inner->ops->list_history(s->inner, exec_id, after_seq, limit, cb, ud, err);
}

static int fault_list_timers(struct store *base, store_shardset shards, int64_t from,
                             int64_t before, store_timer_cb cb, void *ud, struct wfo_error *err)
{
    struct fault_store *s = fs_of(base);
    CHECK(F_LIST_TIMERS);
    return s->inner->ops->list_timers(s->inner, shards, from, before, cb, ud, err);
}

static int fault_list_tasks(struct store *base, store_shardset shards, store_task_cb cb, void *ud,
                            struct wfo_error *err)
{
    struct fault_store *s = fs_of(base);
    CHECK(F_LIST_TASKS);
    return s->inner->ops->list_tasks(s->inner, shards, cb, ud, err);
}

static int fault_claim_shards(struct store *base, const char *owner, store_shardset want,
                              int64_t now, int64_t lease_until, int force, store_shard_cb cb,
                              void *ud, struct wfo_error *err)
{
    struct fault_store *s = fs_of(base);
    CHECK(F_CLAIM_SHARDS);
    return s->inner->ops->claim_shards(s->inner, owner, want, now, lease_until, force, cb, ud, err);
}

static int fault_release_shards(struct store *base, const char *owner, store_shardset which,
                                struct wfo_error *err)
{
    struct fault_store *s = fs_of(base);
    CHECK(F_RELEASE_SHARDS);
    return s->inner->ops->release_shards(s->inner, owner, which, err);
}

static int fault_list_shards(struct store *base, store_shard_cb cb, void *ud, struct wfo_error *err)
{
    struct fault_store *s = fs_of(base);
    CHECK(F_LIST_SHARDS);
    return s->inner->ops->list_shards(s->inner, cb, ud, err);
}

static int fault_delete_workflow(struct store *base, const char *ns, const char *name,
                                 struct wfo_error *err)
{
    struct fault_store *s = fs_of(base);
    CHECK(F_DELETE_WORKFLOW);
    return s->inner->ops->delete_workflow(s->inner, ns, name, err);
}

static int fault_list_expired(struct store *base, int64_t before, int limit, store_exec_cb cb,
                              void *ud, struct wfo_error *err)
{
    struct fault_store *s = fs_of(base);
    CHECK(F_LIST_EXPIRED);
    return s->inner->ops->list_expired(s->inner, before, limit, cb, ud, err);
}

static int fault_server_key(struct store *base, unsigned char *out, size_t size,
                            struct wfo_error *err)
{
    struct fault_store *s = fs_of(base);
    return s->inner->ops->server_key(s->inner, out, size, err);
}

static int fault_put_event(struct store *base, const struct store_event *ev, int *created,
                           store_event_cb cb, void *ud, struct wfo_error *err)
{
    struct fault_store *s = fs_of(base);
    *created = 0;
    CHECK(F_PUT_EVENT);
    return s->inner->ops->put_event(s->inner, ev, created, cb, ud, err);
}

static int fault_find_events(struct store *base, const char *ns, const char *type, const char *key,
                             int64_t after, const char *exec_id, int limit, store_event_cb cb,
                             void *ud, struct wfo_error *err)
{
    struct fault_store *s = fs_of(base);
    CHECK(F_FIND_EVENTS);
    return s->inner->ops->find_events(s->inner, ns, type, key, after, exec_id, limit, cb, ud, err);
}

static int fault_put_signal(struct store *base, const struct store_signal *sg,
                            struct wfo_error *err)
{
    struct fault_store *s = fs_of(base);
    CHECK(F_PUT_SIGNAL);
    return s->inner->ops->put_signal(s->inner, sg, err);
}

static int fault_find_signals(struct store *base, const char *exec_id, const char *name, int limit,
                              store_signal_cb cb, void *ud, struct wfo_error *err)
{
    struct fault_store *s = fs_of(base);
    CHECK(F_FIND_SIGNALS);
    return s->inner->ops->find_signals(s->inner, exec_id, name, limit, cb, ud, err);
}

static int fault_list_outbox(struct store *base, const char *ns, int64_t after_seq, int limit,
                             store_outbox_cb cb, void *ud, struct wfo_error *err)
{
    struct fault_store *s = fs_of(base);
    CHECK(F_LIST_OUTBOX);
    return s->inner->ops->list_outbox(s->inner, ns, after_seq, limit, cb, ud, err);
}

static int fault_outbox_seq(struct store *base, const char *ns, const char *event_id, int64_t *seq,
                            struct wfo_error *err)
{
    struct fault_store *s = fs_of(base);
    *seq = 0;
    CHECK(F_OUTBOX_SEQ);
    return s->inner->ops->outbox_seq(s->inner, ns, event_id, seq, err);
}

static int fault_delete_outbox(struct store *base, int64_t before, int limit, int *n,
                               struct wfo_error *err)
{
    struct fault_store *s = fs_of(base);
    *n = 0;
    CHECK(F_DELETE_OUTBOX);
    return s->inner->ops->delete_outbox(s->inner, before, limit, n, err);
}

static int fault_beat_node(struct store *base, const struct store_node *n, struct wfo_error *err)
{
    struct fault_store *s = fs_of(base);
    CHECK(F_BEAT_NODE);
    return s->inner->ops->beat_node(s->inner, n, err);
}

static int fault_list_nodes(struct store *base, int64_t since, store_node_cb cb, void *ud,
                            struct wfo_error *err)
{
    struct fault_store *s = fs_of(base);
    CHECK(F_LIST_NODES);
    return s->inner->ops->list_nodes(s->inner, since, cb, ud, err);
}

static int fault_put_subscription(struct store *base, const struct store_subscription *sub,
                                  store_subscription_cb cb, void *ud, struct wfo_error *err)
{
    struct fault_store *s = fs_of(base);
    CHECK(F_PUT_SUBSCRIPTION);
    return s->inner->ops->put_subscription(s->inner, sub, cb, ud, err);
}

static int fault_get_subscription(struct store *base, const char *ns, const char *id,
                                  store_subscription_cb cb, void *ud, struct wfo_error *err)
{
    struct fault_store *s = fs_of(base);
    CHECK(F_GET_SUBSCRIPTION);
    return s->inner->ops->get_subscription(s->inner, ns, id, cb, ud, err);
}

static int fault_list_subscriptions(struct store *base, const char *ns, store_subscription_cb cb,
                                    void *ud, struct wfo_error *err)
{
    struct fault_store *s = fs_of(base);
    CHECK(F_LIST_SUBSCRIPTIONS);
    return s->inner->ops->list_subscriptions(s->inner, ns, cb, ud, err);
}

static int fault_delete_subscription(struct store *base, const char *ns, const char *id,
                                     struct wfo_error *err)
{
    struct fault_store *s = fs_of(base);
    CHECK(F_DELETE_SUBSCRIPTION);
    return s->inner->ops->delete_subscription(s->inner, ns, id, err);
}

static int fault_subscription_delivered(struct store *base, const char *id, int64_t seq,
                                        int delivered, int64_t at, struct wfo_error *err)
{
    struct fault_store *s = fs_of(base);
    CHECK(F_SUBSCRIPTION_DELIVERED);
    return s->inner->ops->subscription_delivered(s->inner, id, seq, delivered, at, err);
}

static int fault_subscription_failed(struct store *base, const char *id, int64_t seq, int failures,
                                     const char *status, int64_t next_attempt_at, const char *error,
                                     struct wfo_error *err)
{
    struct fault_store *s = fs_of(base);
    CHECK(F_SUBSCRIPTION_FAILED);
    return s->inner->ops->subscription_failed(s->inner, id, seq, failures, status, next_attempt_at,
                                              error, err);
}

static void fault_set_pool_size(struct store *base, int n)
{
    struct fault_store *s = fs_of(base);
    if (s->inner->ops->set_pool_size)
        s->inner->ops->set_pool_size(s->inner, n);
}

const struct store_ops store_fault_ops = {
    .name = "fault",
    .version = 1,
    .accepts = fault_accepts,
    .open = fault_open,
    .close = fault_close,
    .ping = fault_ping,
    .apply = fault_apply,
    .claim_shards = fault_claim_shards,
    .release_shards = fault_release_shards,
    .list_shards = fault_list_shards,
    .put_workflow = fault_put_workflow,
    .get_workflow = fault_get_workflow,
    .list_workflows = fault_list_workflows,
    .get_exec = fault_get_exec,
    .list_execs = fault_list_execs,
    .list_active_execs = fault_list_active_execs,
    .list_steps = fault_list_steps,
    .list_history = fault_list_history,
    .list_timers = fault_list_timers,
    .list_tasks = fault_list_tasks,
    .delete_workflow = fault_delete_workflow,
    .list_expired = fault_list_expired,
    .set_pool_size = fault_set_pool_size,
    .server_key = fault_server_key,
    .put_event = fault_put_event,
    .find_events = fault_find_events,
    .put_signal = fault_put_signal,
    .find_signals = fault_find_signals,
    .list_outbox = fault_list_outbox,
    .outbox_seq = fault_outbox_seq,
    .delete_outbox = fault_delete_outbox,
    .beat_node = fault_beat_node,
    .list_nodes = fault_list_nodes,
    .put_subscription = fault_put_subscription,
    .get_subscription = fault_get_subscription,
    .list_subscriptions = fault_list_subscriptions,
    .delete_subscription = fault_delete_subscription,
    .subscription_delivered = fault_subscription_delivered,
    .subscription_failed = fault_subscription_failed,
};
