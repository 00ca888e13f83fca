/*
 * test_shards.c - the store contract of shard ownership (store.h
 * "Ownership"), against every back end of suite.h: claims, leases,
 * renewals, takeovers and releases; applies refused whole with
 * WFO_EFENCED; the reads that take a shard set (timers in a due window,
 * tasks, the executions recovery resumes); migrating a schema-version-2
 * SQLite file. docs/interfaces/internal.md ("Ownership and fencing").
 */
#include "common/compat.h"

#include "suite.h"
#include "rawdb.h"

#ifndef STORE_SHARDS
#error "test_shards.c checks the store interface with shards (STORE_SHARDS)"
#endif

#define BIT(k) ((store_shardset)1 << (k))
#define FAR 4000000000000LL /* a lease that does not end during the check */

/* ---- shards as text ---- */

/* What claim_shards or list_shards reported, by shard. */
struct shards {
    int n;               /* rows */
    int unordered;       /* a row whose shard is not above the one before */
    store_shardset seen; /* shards reported */
    char owner[STORE_SHARDS][32];
    int64_t epoch[STORE_SHARDS], lease[STORE_SHARDS];
    char text[64];
};

static int shards_cb(void *ud, const struct store_shard *r)
{
    struct shards *g = ud;

    if (r->shard < 0 || r->shard >= STORE_SHARDS) {
        g->unordered++;
        return 0;
    }
    if (g->n && !(g->seen < BIT(r->shard)))
        g->unordered++;
    g->n++;
    g->seen |= BIT(r->shard);
    snprintf(g->owner[r->shard], sizeof(g->owner[r->shard]), "%s", N(r->owner));
    g->epoch[r->shard] = r->epoch;
    g->lease[r->shard] = r->lease_until;
    return 0;
}

/* "OWNER/EPOCH/LEASE_UNTIL" of shard k, "-" when not reported. */
static const char *shard(struct shards *g, int k)
{
    if (!(g->seen & BIT(k)))
        return "-";
    snprintf(g->text, sizeof(g->text), "%s/%lld/%lld", g->owner[k], (long long)g->epoch[k],
             (long long)g->lease[k]);
    return g->text;
}

static int claim(struct store *s, const char *owner, store_shardset want, int64_t now,
                 int64_t until, int force, struct shards *g)
{
    struct wfo_error err = WFO_ERROR_INIT;

    memset(g, 0, sizeof(*g));
    int rc = s->ops->claim_shards(s, owner, want, now, until, force, shards_cb, g, &err);
    if (rc)
        printf("#   claim_shards: %s\n", err.message);
    return rc;
}

static void list_shards(struct store *s, struct shards *g)
{
    struct wfo_error err = WFO_ERROR_INIT;

    memset(g, 0, sizeof(*g));
    if (s->ops->list_shards(s, shards_cb, g, &err))
        printf("#   list_shards: %s\n", err.message);
}

/* The first id "TAG-N" whose execution is in shard k. */
static const char *id_in(int k, const char *tag)
{
    char id[64];

    for (int i = 0;; i++) {
        snprintf(id, sizeof(id), "%s-%d", tag, i);
        if (store_shard_of(id) == k)
            return suite_str("%s", id);
    }
}

/* Applies b as owner with epochs (NULL: all 0), and resets it. */
static int apply_as(struct store *s, struct store_batch *b, const char *owner,
                    const int64_t *epochs, struct wfo_error *err)
{
    b->owner = owner;
    for (int k = 0; k < STORE_SHARDS; k++)
        b->epochs[k] = epochs ? epochs[k] : 0;
    memset(err, 0, sizeof(*err));
    int rc = s->ops->apply(s, b, err);
    store_batch_reset(b);
    return rc;
}

/* The ids of a read, sorted, for reads whose order the contract leaves
 * open. */
static int id_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static const char *sorted_ids(struct out *o)
{
    char *v[256], buf[sizeof(o->buf)];
    int n = 0;

    snprintf(buf, sizeof(buf), "%s", o->buf);
    for (char *p = buf; *p && n < 256;) {
        char *sp = strchr(p, ' ');
        if (!sp)
            break;
        *sp = '\0';
        v[n++] = p;
        p = sp + 1;
    }
    qsort(v, (size_t)n, sizeof(*v), id_cmp);
    size_t len = 0;
    o->buf[0] = '\0';
    for (int i = 0; i < n; i++) {
        int w = snprintf(o->buf + len, sizeof(o->buf) - len, "%s ", v[i]);
        len += w > 0 ? (size_t)w : 0;
    }
    return o->buf;
}

static int timer_id_cb(void *ud, const struct store_timer *r)
{
    out_add(ud, "%s ", N(r->id));
    return out_next(ud);
}

static int task_id_cb(void *ud, const struct store_task *r)
{
    out_add(ud, "%s ", N(r->id));
    return out_next(ud);
}

static const char *timers_in(struct store *s, store_shardset set, int64_t from, int64_t before,
                             struct out *o)
{
    struct wfo_error err = WFO_ERROR_INIT;

    if (s->ops->list_timers(s, set, from, before, timer_id_cb, out_reset(o), &err))
        out_add(o, "error: %s", err.message);
    return o->buf;
}

static const char *tasks_in(struct store *s, store_shardset set, struct out *o)
{
    struct wfo_error err = WFO_ERROR_INIT;

    if (s->ops->list_tasks(s, set, task_id_cb, out_reset(o), &err))
        out_add(o, "error: %s", err.message);
    return o->buf;
}

static const char *active_in(struct store *s, store_shardset set, struct out *o)
{
    struct wfo_error err = WFO_ERROR_INIT;

    if (s->ops->list_active_execs(s, set, exec_id_cb, out_reset(o), &err))
        out_add(o, "error: %s ", err.message);
    return sorted_ids(o);
}

/* ---- the partition ---- */

TEST(shard_of)
{
    struct store_batch b;

    /* FNV-1a mod 16: part of the stored format, so pinned here. */
    is_int(store_shard_of(""), 5, "shard_of: \"\"");
    is_int(store_shard_of("a"), 12, "shard_of: a");
    is_int(store_shard_of("exec-1"), 6, "shard_of: exec-1");
    is_int(store_shard_of("order-42"), 4, "shard_of: order-42");
    is_int(store_shard_of("00000000-0000-7000-8000-000000000000"), 14, "shard_of: a uuid");
    int bad = 0;
    for (int i = 0; i < 1000; i++) {
        int k = store_shard_of(suite_str("id-%d", i));
        bad += k < 0 || k >= STORE_SHARDS;
    }
    is_int(bad, 0, "shard_of: always below STORE_SHARDS");

    store_batch_init(&b);
    is_int(store_batch_shards(&b), 0, "batch_shards: an empty batch writes no shard");
    add_exec(&b, id_in(1, "s"), "default", "w", "running", 1);
    add_history(&b, id_in(2, "s"), 1, "x");
    add_step(&b, id_in(3, "s"), "p", 0, "running");
    add_timer(&b, "t", id_in(4, "s"), 10);
    del_timer(&b, id_in(5, "s"), "t2");
    add_task(&b, "k", id_in(6, "s"), "q", 1);
    del_task(&b, id_in(7, "s"), "k2");
    store_batch_exec_del(&b, id_in(8, "s"));
    is_int(store_batch_shards(&b), 0x1fe, "batch_shards: every kind of row names its shard");
    store_batch_release(&b);
}

/* ---- claims and leases ---- */

TEST(claim_free_shards)
{
    char url[600];
    struct shards g;
    struct store *s = suite_open_bare(suite_url(url, sizeof(url), "claim-free"));

    list_shards(s, &g);
    int owned = 0;
    for (int k = 0; k < STORE_SHARDS; k++)
        owned += (g.seen & BIT(k)) && strcmp(g.owner[k], "~") != 0;
    is_int(owned, 0, "claim: a new store has no owned shard");

    is_int(claim(s, "A", BIT(0) | BIT(1) | BIT(2), 1000, 2000, 0, &g), 0, "claim: A claims 0-2");
    is_int(g.n, 3, "claim: cb gets each shard wanted");
    is_int(g.seen, 0x7, "claim: and only those");
    is_str(shard(&g, 0), "A/1/2000", "claim: a free shard gets epoch 1");
    is_str(shard(&g, 1), "A/1/2000", "claim: shard 1");
    is_str(shard(&g, 2), "A/1/2000", "claim: shard 2");

    list_shards(s, &g);
    is_int(g.unordered, 0, "list_shards: by shard");
    is_str(shard(&g, 0), "A/1/2000", "list_shards: shard 0");
    is_str(shard(&g, 2), "A/1/2000", "list_shards: shard 2");
    owned = 0;
    for (int k = 3; k < STORE_SHARDS; k++)
        owned += (g.seen & BIT(k)) && strcmp(g.owner[k], "~") != 0;
    is_int(owned, 0, "list_shards: the others are not owned");
    store_close(s);
}

TEST(claim_leased_shards)
{
    char url[600];
    struct shards g;
    struct store *s = suite_open_bare(suite_url(url, sizeof(url), "claim-leased"));

    claim(s, "A", BIT(0) | BIT(1) | BIT(2), 1000, 2000, 0, &g);
    is_int(claim(s, "B", BIT(1) | BIT(2) | BIT(3), 1500, 5000, 0, &g), 0,
           "claim: B claims 1-3 while A's lease runs");
    is_int(g.n, 3, "claim: cb gets each shard wanted, taken or not");
    is_str(shard(&g, 1), "A/1/2000", "claim: a leased shard stays its owner's");
    is_str(shard(&g, 2), "A/1/2000", "claim: shard 2 too");
    is_str(shard(&g, 3), "B/1/5000", "claim: the free one is B's");

    claim(s, "B", BIT(1), 2001, 5000, 0, &g);
    is_str(shard(&g, 1), "B/2/5000", "claim: after the lease ended, B takes it at epoch 2");

    claim(s, "A", BIT(0), 1900, 3000, 0, &g);
    is_str(shard(&g, 0), "A/1/3000", "claim: a renewal moves the lease and keeps the epoch");
    claim(s, "A", BIT(0), 3500, 4000, 0, &g);
    is_str(shard(&g, 0), "A/1/4000",
           "claim: the owner renewing after its lease ended keeps the epoch");

    claim(s, "C", BIT(0), 3600, 9000, 1, &g);
    is_str(shard(&g, 0), "C/2/9000", "claim: force takes a leased shard at epoch + 1");
    claim(s, "A", BIT(0), 3700, 9500, 0, &g);
    is_str(shard(&g, 0), "C/2/9000", "claim: and its old owner cannot take it back");
    claim(s, "A", BIT(0), 9001, 9500, 0, &g);
    is_str(shard(&g, 0), "A/3/9500", "claim: until the lease ended: epoch 3");
    claim(s, "B", BIT(2), 1600, 7000, 1, &g);
    is_str(shard(&g, 2), "B/2/7000", "claim: force on another shard");
    claim(s, "B", BIT(2), 1700, 7000, 1, &g);
    is_str(shard(&g, 2), "B/2/7000", "claim: force by the holder is a renewal");

    list_shards(s, &g);
    is_str(shard(&g, 0), "A/3/9500", "list_shards: shard 0");
    is_str(shard(&g, 1), "B/2/5000", "list_shards: shard 1");
    is_str(shard(&g, 2), "B/2/7000", "list_shards: shard 2");
    is_str(shard(&g, 3), "B/1/5000", "list_shards: shard 3");
    store_close(s);

    /* The leases are in the store, not in the connection. */
    s = suite_open_bare(suite_url(url, sizeof(url), "claim-leased"));
    list_shards(s, &g);
    is_str(shard(&g, 0), "A/3/9500", "list_shards: after reopen");
    claim(s, "C", BIT(3), 4000, 8000, 0, &g);
    is_str(shard(&g, 3), "B/1/5000", "claim: a lease holds across reopen");
    store_close(s);
}

TEST(release_shards)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct store_batch b;
    char url[600];
    struct shards g, a;
    struct out o;
    struct store *s = suite_open_bare(suite_url(url, sizeof(url), "release"));
    const char *x0 = id_in(0, "rel");

    store_batch_init(&b);
    claim(s, "A", BIT(0) | BIT(1), 1000, 10000, 0, &a);
    is_int(s->ops->release_shards(s, "B", BIT(0), &err), 0, "release: by another owner: %s",
           err.message);
    list_shards(s, &g);
    is_str(shard(&g, 0), "A/1/10000", "release: another owner's release changes nothing");
    is_int(s->ops->release_shards(s, "A", BIT(0), &err), 0, "release: by the owner: %s",
           err.message);
    list_shards(s, &g);
    ok(g.lease[0] == 0 && g.epoch[0] == 1, "release: the lease ends, the epoch stays (%s)",
       shard(&g, 0));
    is_str(shard(&g, 1), "A/1/10000", "release: the shards not named stay");

    claim(s, "B", BIT(0), 1001, 20000, 0, &g);
    is_str(shard(&g, 0), "B/2/20000", "release: another owner takes it at once, epoch 2");
    add_exec(&b, x0, "default", "w", "running", 1);
    is_int(apply_as(s, &b, "A", a.epoch, &err), WFO_EFENCED,
           "release: the old owner's apply is fenced");
    is_int(exec_rc(s, x0), WFO_ENOTFOUND, "release: and writes nothing");
    add_exec(&b, x0, "default", "w", "running", 1);
    is_int(apply_as(s, &b, "B", g.epoch, &err), 0, "release: the new owner's commits: %s",
           err.message);
    is_str(read_exec(s, x0, &o), suite_str("%s|default|w|1|running|{}|~|~|~|~|~|1|1|0\n", x0),
           "release: and is read back");
    store_batch_release(&b);
    store_close(s);
}

/* ---- fencing ---- */

/* Everything of execution id, as text. */
static const char *dump(struct store *s, const char *id, struct out *all)
{
    struct out o;

    out_reset(all);
    out_add(all, "%s", read_exec(s, id, &o));
    out_add(all, "%s", read_steps(s, id, &o));
    out_add(all, "%s", read_history(s, id, &o));
    out_add(all, "%s", read_timers(s, &o));
    out_add(all, "%s", read_tasks(s, &o));
    return all->buf;
}

TEST(fencing)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct store_batch b;
    char url[600];
    struct shards ga, gb, gc;
    struct out before, after, o;
    struct store *s = suite_open_bare(suite_url(url, sizeof(url), "fence"));
    const char *xa = id_in(0, "fa"), *xb = id_in(1, "fb");

    store_batch_init(&b);
    claim(s, "A", BIT(0), 1000, FAR, 0, &ga);
    claim(s, "B", BIT(1), 1000, FAR, 0, &gb);
    add_exec(&b, xa, "default", "w", "running", 10);
    add_history(&b, xa, 1, "execution.started");
    is_int(apply_as(s, &b, "A", ga.epoch, &err), 0, "fence: A writes its shard: %s", err.message);
    add_exec(&b, xb, "default", "w", "running", 20);
    add_step(&b, xb, "p", 0, "running");
    add_history(&b, xb, 1, "execution.started");
    add_timer(&b, "t-b", xb, 500);
    add_task(&b, "k-b", xb, "q", 20);
    is_int(apply_as(s, &b, "B", gb.epoch, &err), 0, "fence: B writes its shard: %s", err.message);
    dump(s, xa, &before);

    /* A stale epoch or another owner: refused, nothing written. */
    int64_t stale[STORE_SHARDS];
    memcpy(stale, ga.epoch, sizeof(stale));
    stale[0] = ga.epoch[0] + 1;
    add_exec(&b, xa, "default", "w", "completed", 10)->finished_at = 30;
    add_history(&b, xa, 2, "execution.completed");
    is_int(apply_as(s, &b, "A", stale, &err), WFO_EFENCED, "fence: a wrong epoch is fenced");
    ok(err.message[0] != '\0', "fence: with a message: %s", err.message);
    is_str(dump(s, xa, &after), before.buf, "fence: and nothing is written");
    add_exec(&b, xa, "default", "w", "completed", 10)->finished_at = 30;
    add_history(&b, xa, 2, "execution.completed");
    is_int(apply_as(s, &b, "Z", ga.epoch, &err), WFO_EFENCED,
           "fence: the right epoch from an owner that does not hold the shard is fenced");
    is_str(dump(s, xa, &after), before.buf, "fence: and nothing is written");

    /* A batch of A's shard with one row of B's: refused whole. Each kind of
     * row names its shard. */
    const char *kinds[] = {"exec",      "step", "history",  "timer",
                           "timer_del", "task", "task_del", "exec_del"};
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        struct out xb_before;
        dump(s, xa, &before);
        dump(s, xb, &xb_before);
        add_exec(&b, xa, "default", "w", "paused", 10);
        add_history(&b, xa, 2, "execution.paused");
        switch (i) {
        case 0:
            add_exec(&b, xb, "default", "w", "paused", 20);
            break;
        case 1:
            add_step(&b, xb, "p2", 1, "running");
            break;
        case 2:
            add_history(&b, xb, 2, "x");
            break;
        case 3:
            add_timer(&b, "t-b2", xb, 600);
            break;
        case 4:
            del_timer(&b, xb, "t-b");
            break;
        case 5:
            add_task(&b, "k-b2", xb, "q", 21);
            break;
        case 6:
            del_task(&b, xb, "k-b");
            break;
        case 7:
            store_batch_exec_del(&b, xb);
            break;
        }
        is_int(apply_as(s, &b, "A", ga.epoch, &err), WFO_EFENCED,
               "fence: A's batch with a %s of B's shard is fenced", kinds[i]);
        is_str(dump(s, xa, &after), before.buf, "fence: nothing of A's part is written");
        is_str(dump(s, xb, &after), xb_before.buf, "fence: nor of B's");
    }

    /* Only the shards a batch writes are checked. */
    int64_t odd[STORE_SHARDS];
    memcpy(odd, ga.epoch, sizeof(odd));
    for (int k = 1; k < STORE_SHARDS; k++)
        odd[k] = 77;
    add_exec(&b, xa, "default", "w", "paused", 10)->updated_at = 40;
    add_history(&b, xa, 2, "execution.paused");
    is_int(apply_as(s, &b, "A", odd, &err), 0,
           "fence: epochs of shards the batch does not write are not checked: %s", err.message);
    ok(strstr(read_exec(s, xa, &o), "|paused|") != NULL, "fence: A's batch is written");

    /* A takeover fences the old owner at once. */
    claim(s, "C", BIT(0), 2000, FAR, 1, &gc);
    is_str(shard(&gc, 0), suite_str("C/%lld/%lld", (long long)ga.epoch[0] + 1, FAR),
           "fence: C takes shard 0 by force");
    dump(s, xa, &before);
    add_exec(&b, xa, "default", "w", "running", 10)->updated_at = 50;
    add_history(&b, xa, 3, "execution.resumed");
    is_int(apply_as(s, &b, "A", ga.epoch, &err), WFO_EFENCED,
           "fence: after the takeover A is fenced");
    is_str(dump(s, xa, &after), before.buf, "fence: and writes nothing");
    add_exec(&b, xa, "default", "w", "running", 10)->updated_at = 50;
    add_history(&b, xa, 3, "execution.resumed");
    is_int(apply_as(s, &b, "C", gc.epoch, &err), 0, "fence: C commits: %s", err.message);
    s->ops->list_history(s, xa, 0, 0, history_seq_cb, out_reset(&o), NULL);
    is_str(o.buf, "1 2 3 ", "fence: C's history follows A's");

    /* The same owner back at a later epoch: a batch it made at the old one
     * is still fenced (the owner matches, the epoch does not). */
    struct shards gback;
    claim(s, "A", BIT(0), 3000, FAR, 1, &gback);
    is_str(shard(&gback, 0), suite_str("A/%lld/%lld", (long long)gc.epoch[0] + 1, FAR),
           "fence: A takes shard 0 back by force");
    dump(s, xa, &before);
    add_exec(&b, xa, "default", "w", "paused", 10)->updated_at = 70;
    is_int(apply_as(s, &b, "A", ga.epoch, &err), WFO_EFENCED,
           "fence: A's batch at its first epoch is fenced after A took the shard back");
    is_str(dump(s, xa, &after), before.buf, "fence: and writes nothing");
    claim(s, "C", BIT(0), 3000, FAR, 1, &gc);

    /* A batch over several shards, all held: commits. */
    claim(s, "C", BIT(1), 2000, FAR, 1, &gb);
    int64_t both[STORE_SHARDS] = {0};
    both[0] = gc.epoch[0];
    both[1] = gb.epoch[1];
    add_history(&b, xa, 4, "x");
    add_history(&b, xb, 2, "x");
    is_int(apply_as(s, &b, "C", both, &err), 0, "fence: a batch over two held shards commits: %s",
           err.message);

    /* A batch that names no owner is a tool's, which has the store to
     * itself (the benchmark's builder, these tests): it is not fenced.
     * The engine always names itself. */
    const char *xn = id_in(0, "fn");
    add_exec(&b, xn, "default", "w", "running", 60);
    add_history(&b, xn, 1, "execution.started");
    is_int(apply_as(s, &b, NULL, gc.epoch, &err), 0,
           "fence: a batch without an owner is a tool's, not fenced: %s", err.message);
    is_int(exec_rc(s, xn), 0, "fence: and it is written");
    store_batch_release(&b);
    store_close(s);
}

/* The fault wrapper: an injected claim or release fault changes no shard. */
static int count_signal(void *ud, const struct store_signal *r)
{
    (void)r;
    ++*(int *)ud;
    return 0;
}

/* A signal names its owner and epoch: written only while that owner holds
 * the execution's shard at that epoch, as a batch is (a node stopped while
 * another took the execution over cannot queue it late). */
TEST(signal_fencing)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct store_batch b;
    char url[600];
    struct shards ga;
    struct store *s = suite_open_bare(suite_url(url, sizeof(url), "sigfence"));
    const char *x = id_in(3, "sg");
    int n = 0;

    store_batch_init(&b);
    claim(s, "A", BIT(3), 1000, FAR, 0, &ga);
    add_exec(&b, x, "default", "w", "running", 10);
    is_int(apply_as(s, &b, "A", ga.epoch, &err), 0, "signal fence: setup: %s", err.message);
    struct store_signal g = {
        .id = "s1", .exec_id = x, .name = "go", .owner = "A", .epoch = ga.epoch[3]};
    is_int(s->ops->put_signal(s, &g, &err), 0, "signal fence: the holder at its epoch: %s",
           err.message);
    g.id = "s2";
    g.epoch = ga.epoch[3] + 1;
    is_int(s->ops->put_signal(s, &g, &err), WFO_EFENCED, "signal fence: a wrong epoch: %s",
           err.message);
    g.id = "s3";
    g.owner = "Z";
    g.epoch = ga.epoch[3];
    is_int(s->ops->put_signal(s, &g, &err), WFO_EFENCED, "signal fence: another owner");
    g.id = "s4";
    g.owner = NULL;
    is_int(s->ops->put_signal(s, &g, &err), 0, "signal fence: none asked for: written");
    s->ops->find_signals(s, x, "go", 10, count_signal, &n, &err);
    is_int(n, 2, "signal fence: only the two allowed are stored");
    store_batch_release(&b);
    store_close(s);
}

TEST(fault_claims)
{
    struct wfo_error err = WFO_ERROR_INIT;
    char url[600];
    struct shards g;

    if (!suite_is("fault"))
        return;
    setenv("WFO_STORE_FAULTS", "claim_shards:2,release_shards:1", 1);
    struct store *s = suite_open_bare(suite_url(url, sizeof(url), "fault-claims"));
    unsetenv("WFO_STORE_FAULTS");
    is_int(claim(s, "A", BIT(0), 1000, 5000, 0, &g), 0, "fault: claim call 1");
    is_int(s->ops->claim_shards(s, "B", BIT(0), 1000, 9000, 1, shards_cb, &g, &err), WFO_ESTORE,
           "fault: claim call 2 fails");
    ok(strstr(err.message, "injected fault") != NULL, "fault: it says why: %s", err.message);
    list_shards(s, &g);
    is_str(shard(&g, 0), "A/1/5000", "fault: and takes nothing");
    is_int(s->ops->release_shards(s, "A", BIT(0), &err), WFO_ESTORE, "fault: release call 1 fails");
    list_shards(s, &g);
    is_str(shard(&g, 0), "A/1/5000", "fault: and releases nothing");
    claim(s, "B", BIT(0), 1000, 9000, 1, &g);
    is_str(shard(&g, 0), "B/2/9000", "fault: claim call 3 takes it");
    store_close(s);
}

/* ---- nodes ---- */

struct nodes {
    char text[1024];
};

static int nodes_cb(void *ud, const struct store_node *r)
{
    struct nodes *g = ud;
    size_t len = strlen(g->text);
    snprintf(g->text + len, sizeof(g->text) - len, "%s@%s/%lld/%lld ", r->id, N(r->url),
             (long long)r->started_at, (long long)r->seen_at);
    return 0;
}

/* "ID@URL/STARTED/SEEN " of the nodes seen at or after since, by id. */
static const char *nodes_since(struct store *s, int64_t since, struct nodes *g)
{
    struct wfo_error err = WFO_ERROR_INIT;
    g->text[0] = 0;
    if (s->ops->list_nodes(s, since, nodes_cb, g, &err))
        snprintf(g->text, sizeof(g->text), "error: %.500s", err.message);
    return g->text;
}

static int beat(struct store *s, const char *id, const char *url, int64_t started, int64_t seen)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct store_node n = {id, url, started, seen};
    int rc = s->ops->beat_node(s, &n, &err);
    if (rc)
        printf("#   beat_node: %s\n", err.message);
    return rc;
}

TEST(nodes)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct nodes g;
    char url[600];
    struct store *s = suite_open_bare(suite_url(url, sizeof(url), "nodes"));

    is_str(nodes_since(s, 0, &g), "", "nodes: none in a new store");
    is_int(beat(s, "n2", "http://b", 5000, 5000), 0, "nodes: a first beat");
    is_int(beat(s, "n1", NULL, 4000, 5500), 0, "nodes: another node, no url");
    is_str(nodes_since(s, 0, &g), "n1@~/4000/5500 n2@http://b/5000/5000 ", "nodes: by id");
    is_int(beat(s, "n2", "http://b2", 9999, 7000), 0, "nodes: a later beat");
    is_str(nodes_since(s, 6000, &g), "n2@http://b2/5000/7000 ",
           "nodes: since leaves out the silent; a beat moves url and seen, not started");
    is_int(beat(s, "n1", NULL, 4000, 0), 0, "nodes: a node that leaves");
    is_str(nodes_since(s, 1, &g), "n2@http://b2/5000/7000 ", "nodes: is not seen");
    struct store_node bad = {"", NULL, 1, 1};
    is_int(s->ops->beat_node(s, &bad, &err), WFO_EINVAL, "nodes: an empty id is refused");
    /* an hour later the silent ones are gone for good */
    is_int(beat(s, "n3", NULL, 7000, 7000 + 3600 * 1000 + 1), 0, "nodes: a beat an hour on");
    is_str(nodes_since(s, 0, &g), "n3@~/7000/3607001 ", "nodes: forgets those silent an hour");
    store_close(s);
}

/* ---- ready tasks told to the other stores (listen_ready) ---- */

struct heard {
    pthread_mutex_t mu;
    char text[512];
    int n;
};

static void heard_cb(void *ud, const char *owner, const char *ns, const char *queue)
{
    struct heard *h = ud;
    pthread_mutex_lock(&h->mu);
    size_t len = strlen(h->text);
    snprintf(h->text + len, sizeof(h->text) - len, "%s/%s/%s ", owner, ns, queue);
    h->n++;
    pthread_mutex_unlock(&h->mu);
}

/* Waits up to 5 s for n notifications; what was heard. */
static const char *heard_wait(struct heard *h, int n, char *out, size_t size)
{
    for (int i = 0; i < 500; i++) {
        pthread_mutex_lock(&h->mu);
        int got = h->n;
        pthread_mutex_unlock(&h->mu);
        if (got >= n)
            break;
        usleep(10000);
    }
    pthread_mutex_lock(&h->mu);
    snprintf(out, size, "%s", h->text);
    pthread_mutex_unlock(&h->mu);
    return out;
}

/* A back end that can (PostgreSQL) tells every store listening on the same
 * database of a committed batch's ready tasks, once per namespace and
 * queue, with the batch's owner; not of a rolled-back batch, nor of a
 * lease. The others have no listen_ready. */
TEST(listen_ready)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct store_batch b;
    struct shards g;
    char url[600], text[512];
    struct heard h = {PTHREAD_MUTEX_INITIALIZER, "", 0};
    struct store *s = suite_open_bare(suite_url(url, sizeof(url), "listen"));

    if (!s->ops->listen_ready) {
        ok(!suite_is("postgres"), "listen: only PostgreSQL tells (%s does not)", B->name);
        store_close(s);
        return;
    }
    struct store *other = suite_open_bare(url);
    is_int(other->ops->listen_ready(other, heard_cb, &h, &err), 0, "listen: starts: %s",
           err.message);
    is_int(other->ops->listen_ready(other, heard_cb, &h, &err), WFO_ESTATE,
           "listen: only once per store");
    /* no wait: listen_ready returns once its LISTEN runs */
    store_batch_init(&b);
    const char *x = id_in(2, "ln");
    claim(s, "A", BIT(2), 1000, FAR, 0, &g);
    add_exec(&b, x, "default", "w", "running", 10);
    add_task(&b, "t1", x, "qa", 10);
    add_task(&b, "t2", x, "qa", 10);
    add_task(&b, "t3", x, "qb", 10);
    is_int(apply_as(s, &b, "A", g.epoch, &err), 0, "listen: a batch with tasks: %s", err.message);
    is_str(heard_wait(&h, 2, text, sizeof(text)), "A/default/qa A/default/qb ",
           "listen: one per queue, with the owner, at the commit");
    /* a fenced batch is rolled back: nothing is told */
    add_task(&b, "t4", x, "qc", 10);
    int64_t stale[STORE_SHARDS] = {0};
    is_int(apply_as(s, &b, "A", stale, &err), WFO_EFENCED, "listen: a fenced batch");
    struct store_task *k = add_task(&b, "t1", x, "qd", 10);
    k->lease_only = 1;
    k->status = "leased";
    k->lease = "L";
    is_int(apply_as(s, &b, "A", g.epoch, &err), 0, "listen: a lease: %s", err.message);
    usleep(500000);
    is_str(heard_wait(&h, 3, text, sizeof(text)), "A/default/qa A/default/qb ",
           "listen: nothing of a rolled-back batch or of a lease");
    store_close(other); /* stops its listener */
    store_batch_release(&b);
    store_close(s);
}

/* ---- reads by shard ---- */

TEST(timers_window)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct store_batch b;
    struct out o;
    struct store *s = suite_open("timers");
    const int ka = 3, kb = 9;
    const char *xa = id_in(ka, "ta"), *xb = id_in(kb, "tb");

    store_batch_init(&b);
    add_exec(&b, xa, "default", "w", "running", 1);
    add_exec(&b, xb, "default", "w", "running", 1);
    add_timer(&b, "tA1", xa, 100);
    add_timer(&b, "tA2", xa, 200);
    add_timer(&b, "tB1", xb, 150);
    add_timer(&b, "tB2", xb, 300);
    add_timer(&b, "tB3", xb, 299);
    is_int(suite_apply(s, &b, &err), 0, "timers: setup: %s", err.message);
    const store_shardset all = STORE_ALL_SHARDS, a = BIT(ka), bb = BIT(kb);
    struct {
        store_shardset set;
        int64_t from, before;
        const char *want, *what;
    } cases[] = {
        {all, 100, 300, "tA1 tB1 tA2 tB3 ", "from is in, before is out, by due time"},
        {all, 101, 300, "tB1 tA2 tB3 ", "from after the first"},
        {all, 0, 100, "", "a window before them all"},
        {all, 300, 301, "tB2 ", "a window of one ms"},
        {all, 301, 100000, "", "a window after them all"},
        {all, INT64_MIN, INT64_MAX, "tA1 tB1 tA2 tB3 tB2 ", "every timer"},
        {a, 0, 1000, "tA1 tA2 ", "one shard"},
        {bb, 150, 300, "tB1 tB3 ", "another shard and a window"},
        {a | bb, 150, 250, "tB1 tA2 ", "two shards"},
        {all & ~(a | bb), INT64_MIN, INT64_MAX, "", "shards without timers"},
        {0, INT64_MIN, INT64_MAX, "", "no shard"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        is_str(timers_in(s, cases[i].set, cases[i].from, cases[i].before, &o), cases[i].want,
               "list_timers: %s", cases[i].what);

    add_timer(&b, "tA1", xa, 400); /* put again: replaced */
    del_timer(&b, xb, "tB1");
    is_int(suite_apply(s, &b, &err), 0, "timers: move one, delete one");
    is_str(timers_in(s, all, 0, 1000, &o), "tA2 tB3 tB2 tA1 ", "list_timers: after the changes");
    s->ops->list_timers(s, all, 0, 1000, timer_cb, out_reset(&o), &err);
    ok(strstr(o.buf, suite_str("tA1|%s|400|retry|s|1|~\n", xa)) != NULL,
       "list_timers: a timer's every field");
    out_reset(&o)->stop_after = 2;
    is_int(s->ops->list_timers(s, all, 0, 1000, timer_id_cb, &o, &err), 42,
           "list_timers: returns the callback's value");
    store_batch_release(&b);
    store_close(s);
}

TEST(tasks_by_shard)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct store_batch b;
    struct out o;
    struct store *s = suite_open("tasks");
    const int ka = 2, kb = 13;
    const char *xa = id_in(ka, "ka"), *xb = id_in(kb, "kb");

    store_batch_init(&b);
    add_exec(&b, xa, "default", "w", "running", 1);
    add_exec(&b, xb, "default", "w", "running", 1);
    add_task(&b, "kA1", xa, "q", 10);
    add_task(&b, "kA2", xa, "q", 20)->status = "done";
    struct store_task *k = add_task(&b, "kB1", xb, "q2", 30);
    k->status = "leased";
    k->lease = "L";
    k->leased_until = 99;
    add_task(&b, "kB2", xb, "q", 5);
    is_int(suite_apply(s, &b, &err), 0, "tasks: setup: %s", err.message);
    is_str(tasks_in(s, BIT(ka), &o), "kA1 ", "list_tasks: one shard, not done");
    is_str(tasks_in(s, BIT(kb), &o), "kB2 kB1 ", "list_tasks: another shard, by creation");
    is_str(tasks_in(s, STORE_ALL_SHARDS, &o), "kB2 kA1 kB1 ", "list_tasks: every shard");
    is_str(tasks_in(s, STORE_ALL_SHARDS & ~(BIT(ka) | BIT(kb)), &o), "",
           "list_tasks: shards without tasks");
    is_str(tasks_in(s, 0, &o), "", "list_tasks: no shard");
    s->ops->list_tasks(s, BIT(kb), task_cb, out_reset(&o), &err);
    ok(strstr(o.buf, suite_str("kB1|%s|default|q2|s|1|leased|L|{}|30|99|30\n", xb)) != NULL,
       "list_tasks: a task's every field");

    /* lease_only: a worker took kA1; a lease for a row that is gone (its
     * attempt ended in the same round) writes nothing */
    store_batch_reset(&b);
    k = store_batch_task(&b);
    k->id = "kA1";
    k->exec_id = xa;
    k->lease = "L2";
    k->leased_until = 77;
    k->lease_only = 1;
    k = store_batch_task(&b);
    k->id = "kGone";
    k->exec_id = xa;
    k->lease = "L3";
    k->leased_until = 78;
    k->lease_only = 1;
    is_int(suite_apply(s, &b, &err), 0, "tasks: leases: %s", err.message);
    s->ops->list_tasks(s, BIT(ka), task_cb, out_reset(&o), &err);
    is_str(o.buf, suite_str("kA1|%s|default|q|s|1|leased|L2|{}|10|77|10\n", xa),
           "lease_only: status, lease and leased_until change, nothing else");
    is_str(tasks_in(s, BIT(ka), &o), "kA1 ", "lease_only: no row for an id that is gone");
    store_batch_release(&b);
    store_close(s);
}

TEST(active_and_resume)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct store_batch b;
    struct out o;
    struct store *s = suite_open("active");
    const int ka = 4, kb = 11;
    const char *r1 = id_in(ka, "r1"), *r2 = id_in(ka, "r2"), *r3 = id_in(ka, "r3"),
               *r4 = id_in(ka, "r4"), *r5 = id_in(kb, "r5");

    store_batch_init(&b);
    add_exec(&b, r1, "default", "w", "running", 1)->resume = 1;
    add_exec(&b, r2, "default", "w", "running", 2)->resume = 0;
    add_exec(&b, r3, "default", "w", "paused", 3)->resume = 1;
    struct store_exec *e = add_exec(&b, r4, "default", "w", "completed", 4);
    e->resume = 1;
    e->finished_at = 5;
    add_exec(&b, r5, "other", "w", "running", 6)->resume = 1;
    is_int(suite_apply(s, &b, &err), 0, "active: setup: %s", err.message);

    is_str(active_in(s, STORE_ALL_SHARDS, &o), suite_str("%s %s %s ", r1, r3, r5),
           "list_active_execs: running or paused with resume, every namespace");
    is_str(active_in(s, BIT(ka), &o), suite_str("%s %s ", r1, r3), "list_active_execs: one shard");
    is_str(active_in(s, BIT(kb), &o), suite_str("%s ", r5), "list_active_execs: another");
    is_str(active_in(s, STORE_ALL_SHARDS & ~(BIT(ka) | BIT(kb)), &o), "",
           "list_active_execs: shards without any");
    is_str(active_in(s, 0, &o), "", "list_active_execs: no shard");

    /* resume changes with the row. */
    add_exec(&b, r1, "default", "w", "running", 1)->resume = 0;
    e = add_exec(&b, r2, "default", "w", "running", 2);
    e->resume = 1;
    e->existing = 1;
    e = add_exec(&b, r3, "default", "w", "paused", 3);
    e->resume = 0;
    e->existing = 1;
    is_int(suite_apply(s, &b, &err), 0, "active: change resume: %s", err.message);
    is_str(active_in(s, BIT(ka), &o), suite_str("%s ", r2),
           "list_active_execs: resume cleared by an upsert and by an in-place update, set by "
           "an in-place update");
    add_exec(&b, r5, "other", "w", "completed", 6)->resume = 1;
    suite_apply(s, &b, &err);
    is_str(active_in(s, BIT(kb), &o), "", "list_active_execs: an ended execution is not resumed");
    store_batch_release(&b);
    store_close(s);
}

/* ---- migration ---- */

static const char v2_rows[] =
    "INSERT INTO workflows VALUES ('default', 'order', 1, 'h1', '{\"v\":1}', 50);"
    "INSERT INTO executions (id, namespace, workflow, version, status, input, output, error,"
    " compensation, parent, state, created_at, updated_at, finished_at) VALUES"
    " ('m1', 'default', 'order', 1, 'running', '{\"i\":1}', NULL, NULL, NULL, NULL,"
    " '{\"pc\":1}', 100, 110, NULL),"
    " ('m2', 'default', 'order', 1, 'paused', '{}', NULL, NULL, NULL, NULL, '{\"pc\":2}',"
    " 150, 160, NULL),"
    " ('m3', 'team', 'order', 1, 'completed', '{}', '{\"o\":3}', NULL, '[\"c\"]', 'm1', NULL,"
    " 200, 210, 1000);"
    "INSERT INTO steps VALUES ('m1', 'b', 1, 'running', 1, NULL, NULL, NULL, 120, NULL,"
    " '{\"in\":1}'),"
    " ('m1', 'a', 0, 'completed', 2, '{\"r\":1}', NULL, '{\"s\":1}', 101, 119, NULL);"
    "INSERT INTO history VALUES ('m1', 1, 100, 'execution.started', NULL, NULL),"
    " ('m1', 2, 101, 'step.started', 'a', '{\"x\":1}'),"
    " ('m3', 1, 200, 'execution.started', NULL, NULL);"
    "INSERT INTO timers VALUES ('t1', 'm1', 5000, 'retry', 'b', 2, '{}'),"
    " ('t2', 'm2', 4000, 'wait', NULL, 0, NULL);"
    "INSERT INTO tasks VALUES ('k1', 'm1', 'default', 'q', 'b', 1, 'leased', 'L', '{}',"
    " 120, 130, 120),"
    " ('k2', 'm1', 'default', 'q', 'a', 1, 'done', NULL, '{}', 110, NULL, 110);"
    "INSERT INTO meta VALUES ('server_key',"
    " X'0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20');";

TEST(migrate_from_v2)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct store_batch b;
    struct shards g;
    struct out o;
    char path[512], url[600], res[4096], sql[8192];

    /* A SQLite file of version 2: PostgreSQL's first schema is 6. */
    if (suite_is("postgres"))
        return;
    suite_path(path, sizeof(path), "v2");
    snprintf(sql, sizeof(sql), "%s%s", rawdb_schema_v2, v2_rows);
    is_int(rawdb_run(path, sql, res, sizeof(res)), 0, "migrate: a version 2 file: %s", res);

    struct store *s = suite_open_bare(suite_url(url, sizeof(url), "v2"));
    list_shards(s, &g);
    int owned = 0;
    for (int k = 0; k < STORE_SHARDS; k++)
        owned += (g.seen & BIT(k)) && strcmp(g.owner[k], "~") != 0;
    is_int(owned, 0, "migrate: no shard is owned");
    store_close(s);

    s = suite_open("v2");
    is_str(read_exec(s, "m1", &o),
           "m1|default|order|1|running|{\"i\":1}|~|~|~|~|{\"pc\":1}|100|110|0\n",
           "migrate: a running execution reads back");
    is_str(read_exec(s, "m2", &o), "m2|default|order|1|paused|{}|~|~|~|~|{\"pc\":2}|150|160|0\n",
           "migrate: a paused one");
    is_str(read_exec(s, "m3", &o),
           "m3|team|order|1|completed|{}|{\"o\":3}|~|[\"c\"]|m1|~|200|210|1000\n",
           "migrate: an ended one");
    is_str(read_steps(s, "m1", &o),
           "m1|a|0|completed|2|{\"r\":1}|~|{\"s\":1}|101|119|~\n"
           "m1|b|1|running|1|~|~|~|120|0|{\"in\":1}\n",
           "migrate: steps in ord order, with their input");
    is_str(read_history(s, "m1", &o),
           "m1|1|100|execution.started|~|~\n"
           "m1|2|101|step.started|a|{\"x\":1}\n",
           "migrate: history");
    s->ops->list_timers(s, STORE_ALL_SHARDS, 0, 10000, timer_cb, out_reset(&o), &err);
    is_str(o.buf,
           "t2|m2|4000|wait|~|0|~\n"
           "t1|m1|5000|retry|b|2|{}\n",
           "migrate: timers, by due time");
    s->ops->list_timers(s, BIT(store_shard_of("m1")), 0, 10000, timer_id_cb, out_reset(&o), &err);
    ok(strstr(o.buf, "t1 ") != NULL, "migrate: a timer is in its execution's shard: %s", o.buf);
    s->ops->list_tasks(s, STORE_ALL_SHARDS, task_cb, out_reset(&o), &err);
    is_str(o.buf, "k1|m1|default|q|b|1|leased|L|{}|120|130|120\n", "migrate: tasks not done");
    s->ops->list_tasks(s, BIT(store_shard_of("m1")), task_id_cb, out_reset(&o), &err);
    is_str(o.buf, "k1 ", "migrate: a task is in its execution's shard");
    struct store_exec_filter f = {.namespace = "default"};
    is_str(read_list(s, &f, &o), "m2 m1 ", "migrate: listed newest first");
    s->ops->list_expired(s, 2000, 10, exec_id_cb, out_reset(&o), &err);
    is_str(o.buf, "m3 ", "migrate: retention finds the ended one");
    /* A version 2 engine recovered every running or paused execution: after
     * the upgrade they must still be found. */
    is_str(active_in(s, STORE_ALL_SHARDS, &o), "m1 m2 ",
           "migrate: recovery finds the executions that were active");
    unsigned char key[32], want[32];
    for (int i = 0; i < 32; i++)
        want[i] = (unsigned char)(i + 1);
    is_int(s->ops->server_key(s, key, sizeof(key), &err), 0, "migrate: server_key: %s",
           err.message);
    ok(memcmp(key, want, sizeof(key)) == 0, "migrate: the server key is kept");
    s->ops->get_workflow(s, "default", "order", 0, wf_cb, out_reset(&o), &err);
    is_str(o.buf, "default|order|1|h1|{\"v\":1}|50\n", "migrate: the workflow");

    store_batch_init(&b);
    add_history(&b, "m1", 3, "step.completed");
    add_step(&b, "m1", "b", 1, "completed");
    add_exec(&b, "m4", "default", "order", "running", 300);
    is_int(suite_apply(s, &b, &err), 0, "migrate: apply to the migrated file: %s", err.message);
    s->ops->list_history(s, "m1", 0, 0, history_seq_cb, out_reset(&o), NULL);
    is_str(o.buf, "1 2 3 ", "migrate: history goes on");
    is_str(read_list(s, &f, &o), "m4 m2 m1 ", "migrate: a new execution lists first");
    store_close(s);

    rawdb_run(path, "PRAGMA user_version", res, sizeof(res));
    is_str(res, "9\n", "migrate: user_version is 9 (the latest)");
    s = suite_open("v2");
    is_str(read_exec(s, "m3", &o),
           "m3|team|order|1|completed|{}|{\"o\":3}|~|[\"c\"]|m1|~|200|210|1000\n",
           "migrate: reopened, the rows are there");
    store_batch_release(&b);
    store_close(s);
}

int main(int argc, char **argv)
{
    return suite_run(argc, argv);
}
