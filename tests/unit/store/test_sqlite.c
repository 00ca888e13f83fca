/*
 * test_sqlite.c - the store contract (src/store/store.h) against the SQLite
 * back end, once on a memory store and once on a file store in a temporary
 * directory; plus the batch helpers of store.c.
 * docs/implementation/database_optimization.md explains the store.
 */
#include "common/compat.h"

#include <ftw.h>
#include <sys/stat.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"
#include "common/duration.h"
#include "store/sqlite/sqlite.h"
#include "../tap.h"

#define MEM "sqlite::memory:"

static char tmp_dir[256];

/* A file store URL in this run's temporary directory. */
static const char *file_url(char *out, size_t size, const char *name)
{
    if (!tmp_dir[0]) {
        snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/wfo-test-store-XXXXXX");
        if (!mkdtemp(tmp_dir)) {
            perror("mkdtemp");
            exit(2);
        }
    }
    snprintf(out, size, "sqlite:%s/%s", tmp_dir, name);
    return out;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

/* Newlines to ';', so a multi-line value fits in one TAP line. */
static const char *oneline(char *s)
{
    for (char *p = s; *p; p++)
        if (*p == '\n')
            *p = ';';
    return s;
}

static struct store *open_ok(const char *url)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct store *s = NULL;
    int rc = store_open(url, &s, &err);

    is_int(rc, 0, "open %s", url);
    if (rc) {
        printf("#   %s\n", err.message);
        exit(1);
    }
    return s;
}

static int apply(struct store *s, struct store_batch *b, struct wfo_error *err)
{
    int rc = s->ops->apply(s, b, err);

    store_batch_reset(b);
    return rc;
}

/* ---- rows printed as text, so one string compares every field ---- */

struct out {
    char buf[16384];
    size_t len;
    int n;
    int stop_after; /* return 42 after this many rows; 0: never */
};

#define N(s) ((s) ? (s) : "~")

static void out_add(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out_add(struct out *o, const char *fmt, ...)
{
    va_list ap;

    if (o->len >= sizeof(o->buf))
        return;
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->len, sizeof(o->buf) - o->len, fmt, ap);
    va_end(ap);
    o->len += n > 0 ? (size_t)n : 0;
}

static int out_next(struct out *o)
{
    o->n++;
    return o->stop_after && o->n >= o->stop_after ? 42 : 0;
}

static int exec_cb(void *ud, const struct store_exec *r)
{
    out_add(ud, "%s|%s|%s|%d|%s|%s|%s|%s|%s|%s|%s|%lld|%lld|%lld\n", N(r->id), N(r->namespace),
            N(r->workflow), r->version, N(r->status), N(r->input), N(r->output), N(r->error),
            N(r->compensation), N(r->parent), N(r->state), (long long)r->created_at,
            (long long)r->updated_at, (long long)r->finished_at);
    return out_next(ud);
}

/* Just ids, for lists. */
static int exec_id_cb(void *ud, const struct store_exec *r)
{
    out_add(ud, "%s ", r->id);
    return out_next(ud);
}

static int step_cb(void *ud, const struct store_step *r)
{
    out_add(ud, "%s|%s|%d|%s|%d|%s|%s|%s|%lld|%lld\n", N(r->exec_id), N(r->path), r->ord,
            N(r->status), r->attempts, N(r->output), N(r->error), N(r->state),
            (long long)r->started_at, (long long)r->finished_at);
    return out_next(ud);
}

static int history_cb(void *ud, const struct store_history *r)
{
    out_add(ud, "%s|%lld|%lld|%s|%s|%s\n", N(r->exec_id), (long long)r->seq, (long long)r->time,
            N(r->type), N(r->step), N(r->data));
    return out_next(ud);
}

static int timer_cb(void *ud, const struct store_timer *r)
{
    out_add(ud, "%s|%s|%lld|%s|%s|%lld|%s\n", N(r->id), N(r->exec_id), (long long)r->due_at,
            N(r->kind), N(r->step), (long long)r->token, N(r->data));
    return out_next(ud);
}

static int task_cb(void *ud, const struct store_task *r)
{
    out_add(ud, "%s|%s|%s|%s|%s|%d|%s|%s|%s|%lld|%lld|%lld\n", N(r->id), N(r->exec_id),
            N(r->namespace), N(r->queue), N(r->step), r->attempt, N(r->status), N(r->lease),
            N(r->input), (long long)r->ready_at, (long long)r->leased_until,
            (long long)r->created_at);
    return out_next(ud);
}

static int wf_cb(void *ud, const struct store_workflow *r)
{
    out_add(ud, "%s|%s|%d|%s|%s|%lld\n", N(r->namespace), N(r->name), r->version, N(r->hash),
            N(r->definition), (long long)r->created_at);
    return out_next(ud);
}

static int seq_cb(void *ud, const struct store_exec *r)
{
    *(int64_t *)ud = r->seq;
    return 0;
}

static int64_t exec_seq(struct store *s, const char *id)
{
    int64_t seq = -1;

    s->ops->get_exec(s, id, seq_cb, &seq, NULL);
    return seq;
}

/* What a read of one execution prints, "" when absent. */
static const char *get_exec(struct store *s, const char *id, struct out *o)
{
    memset(o, 0, sizeof(*o));
    s->ops->get_exec(s, id, exec_cb, o, NULL);
    return o->buf;
}

static struct store_exec *add_exec(struct store_batch *b, const char *id, const char *ns,
                                   const char *wf, const char *status, int64_t created)
{
    struct store_exec *e = store_batch_exec(b);

    e->id = id;
    e->namespace = ns;
    e->workflow = wf;
    e->version = 1;
    e->status = status;
    e->input = "{}";
    e->created_at = created;
    e->updated_at = created;
    e->resume = status && (strcmp(status, "running") == 0 || strcmp(status, "paused") == 0);
    return e;
}

static void add_history(struct store_batch *b, const char *id, int64_t seq, const char *type)
{
    struct store_history *h = store_batch_history(b);

    h->exec_id = id;
    h->seq = seq;
    h->time = 1000 + seq;
    h->type = type;
}

/* ---- urls and opening ---- */

TEST(urls)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct store *s = (struct store *)1;

    ok(store_find(MEM) == &store_sqlite_ops, "sqlite::memory: is sqlite");
    ok(store_find("sqlite:/tmp/x.db") == &store_sqlite_ops, "sqlite:PATH is sqlite");
    ok(store_find("/tmp/x.db") == &store_sqlite_ops, "an absolute bare path is sqlite");
    ok(store_find("wfo.db") == &store_sqlite_ops, "a relative bare path is sqlite");
    ok(store_find("./a:b.db") == &store_sqlite_ops, "a bare path with a colon is sqlite");
    ok(store_find("postgres://u:p@h/db") == &store_postgres_ops, "postgres is not sqlite");
    ok(store_find("mysql:x") == NULL, "another scheme has no back end");
    ok(store_find("") == NULL, "an empty url has no back end");
    ok(store_find(NULL) == NULL, "NULL has no back end");
    is_str(store_sqlite_ops.name, "sqlite", "ops name");
    is_int(store_sqlite_ops.version, 1, "ops version");

    is_int(store_open("mysql://user:hunter2@db/wfo", &s, &err), WFO_EINVAL, "unknown scheme");
    ok(s == NULL, "no store on failure");
    ok(strstr(err.message, "mysql") && !strstr(err.message, "hunter2"),
       "the message names the scheme, not the password: %s", err.message);
    is_int(store_open("sqlite:", &s, &err), WFO_EINVAL, "sqlite: without a path");
    is_int(store_open("", &s, &err), WFO_EINVAL, "empty url");

    char url[512], abs[512];
    file_url(url, sizeof(url), "slashes.db");
    snprintf(abs, sizeof(abs), "sqlite://%s/slashes.db", tmp_dir);
    s = open_ok(abs);
    ok(s->ops == &store_sqlite_ops, "the store remembers its ops");
    is_int(s->ops->ping(s, &err), 0, "ping");
    store_close(s);
    ok(access(url + 7, F_OK) == 0, "sqlite:///ABS made the file at ABS");
    store_close(NULL);
}

TEST(bad_files)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct store *s = NULL;
    char url[512];
    FILE *f;

    file_url(url, sizeof(url), "garbage.db");
    f = fopen(url + 7, "w");
    for (int i = 0; i < 512; i++)
        fputs("this is not a database\n", f);
    fclose(f);
    is_int(store_open(url, &s, &err), WFO_ESTORE, "a garbage file is a store error");
    ok(s == NULL, "and no store");
    ok(strstr(err.message, "not a database") != NULL, "with sqlite's message: %s", err.message);
    ok(strstr(err.message, url + 7) != NULL, "and the path");

    /* A short garbage file (less than a header). */
    file_url(url, sizeof(url), "short.db");
    f = fopen(url + 7, "w");
    fputs("SQLite format 2\n", f);
    fclose(f);
    is_int(store_open(url, &s, &err), WFO_ESTORE, "a short garbage file is a store error");

    file_url(url, sizeof(url), "");
    is_int(store_open(url, &s, &err), WFO_ESTORE, "a directory is a store error: %s", err.message);
    is_int(store_open("sqlite:/nonexistent-dir-wfo/x/y.db", &s, &err), WFO_ESTORE,
           "a missing directory is a store error: %s", err.message);

    /* An empty file is an empty database: the store creates its schema. */
    file_url(url, sizeof(url), "empty.db");
    fclose(fopen(url + 7, "w"));
    s = open_ok(url);
    store_close(s);

    /* A database of a newer wfo is refused. */
    file_url(url, sizeof(url), "newer.db");
    s = open_ok(url);
    char res[64];
    is_int(store_sqlite_query(s, "PRAGMA user_version = 10", res, sizeof(res), &err), 0,
           "set user_version");
    store_close(s);
    s = NULL;
    is_int(store_open(url, &s, &err), WFO_ESTORE, "a newer schema is refused");
    ok(strstr(err.message, "newer") != NULL, "saying so: %s", err.message);
}

/* ---- every row kind round trips ---- */

static void roundtrip(const char *url)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct store_batch b;
    struct out o;
    struct store *s = open_ok(url);

    store_batch_init(&b);
    struct store_exec *e = add_exec(&b, "e1", "default", "order", "running", 1700000000001);
    e->version = 3;
    e->input = "{\"sku\":\"a\"}";
    e->output = "[1,2]";
    e->error = "{\"type\":\"X\"}";
    e->compensation = "{\"status\":\"completed\"}";
    e->parent = "p0";
    e->state = "{\"pc\":4}";
    e->updated_at = 1700000000002;
    e->finished_at = 1700000000003;
    add_exec(&b, "e2", "default", "order", "paused", 5); /* every optional field NULL */

    struct store_step *p = store_batch_step(&b);
    p->exec_id = "e1";
    p->path = "par/a/s1";
    p->ord = 1;
    p->status = "completed";
    p->attempts = 2;
    p->output = "\"ok\"";
    p->error = "null";
    p->state = "{}";
    p->started_at = 10;
    p->finished_at = 20;
    p = store_batch_step(&b);
    p->exec_id = "e1";
    p->path = "first";
    p->ord = 0;
    p->status = "running";
    p->attempts = 1;

    add_history(&b, "e1", 1, "execution.started");
    add_history(&b, "e1", 2, "step.started");
    b.history[1].step = "first";
    b.history[1].data = "{\"a\":1}";

    struct store_timer *t = store_batch_timer(&b);
    t->id = "t2";
    t->exec_id = "e1";
    t->due_at = 300;
    t->kind = "retry";
    t->step = "first";
    t->token = 2;
    t->data = "{}";
    t = store_batch_timer(&b);
    t->id = "t1";
    t->exec_id = "e1";
    t->due_at = 200;
    t->kind = "timeout";

    struct store_task *k = store_batch_task(&b);
    k->id = "k1";
    k->exec_id = "e1";
    k->namespace = "default";
    k->queue = "q";
    k->step = "first";
    k->attempt = 1;
    k->status = "leased";
    k->lease = "L1";
    k->input = "{\"x\":1}";
    k->ready_at = 100;
    k->leased_until = 150;
    k->created_at = 90;
    k = store_batch_task(&b);
    k->id = "k2";
    k->exec_id = "e1";
    k->namespace = "default";
    k->queue = "q";
    k->step = "other";
    k->attempt = 1;
    k->status = "done";
    k->input = "1";

    ok(!store_batch_empty(&b), "batch is not empty");
    is_int(apply(s, &b, &err), 0, "apply every row kind: %s", err.message);
    ok(store_batch_empty(&b), "reset empties the batch");
    ok(b.alloc_execs >= 2 && b.execs != NULL, "reset keeps the memory");

    is_str(get_exec(s, "e1", &o),
           "e1|default|order|3|running|{\"sku\":\"a\"}|[1,2]|{\"type\":\"X\"}|"
           "{\"status\":\"completed\"}|p0|{\"pc\":4}|1700000000001|1700000000002|1700000000003\n",
           "execution round trips");
    is_str(get_exec(s, "e2", &o), "e2|default|order|1|paused|{}|~|~|~|~|~|5|5|0\n",
           "NULL columns read back as NULL and 0");
    ok(exec_seq(s, "e1") > 0 && exec_seq(s, "e2") > exec_seq(s, "e1"), "seq in insert order");
    is_int(s->ops->get_exec(s, "nope", exec_cb, &o, &err), WFO_ENOTFOUND, "unknown execution");
    ok(strstr(err.message, "'nope'") != NULL, "not found names the id: %s", err.message);

    memset(&o, 0, sizeof(o));
    is_int(s->ops->list_steps(s, "e1", step_cb, &o, &err), 0, "list steps");
    is_str(o.buf,
           "e1|first|0|running|1|~|~|~|0|0\n"
           "e1|par/a/s1|1|completed|2|\"ok\"|null|{}|10|20\n",
           "steps round trip, in ord order");

    memset(&o, 0, sizeof(o));
    is_int(s->ops->list_history(s, "e1", 0, 0, history_cb, &o, &err), 0, "list history");
    is_str(o.buf,
           "e1|1|1001|execution.started|~|~\n"
           "e1|2|1002|step.started|first|{\"a\":1}\n",
           "history round trips");
    memset(&o, 0, sizeof(o));
    s->ops->list_history(s, "e1", 1, 0, history_cb, &o, &err);
    is_str(o.buf, "e1|2|1002|step.started|first|{\"a\":1}\n", "history after seq 1");
    memset(&o, 0, sizeof(o));
    s->ops->list_history(s, "e1", 0, 1, history_cb, &o, &err);
    is_int(o.n, 1, "history limit 1");

    memset(&o, 0, sizeof(o));
    is_int(s->ops->list_timers(s, STORE_ALL_SHARDS, INT64_MIN, INT64_MAX, timer_cb, &o, &err), 0,
           "list timers");
    is_str(o.buf, "t1|e1|200|timeout|~|0|~\nt2|e1|300|retry|first|2|{}\n",
           "timers round trip, by due time");

    memset(&o, 0, sizeof(o));
    is_int(s->ops->list_tasks(s, STORE_ALL_SHARDS, task_cb, &o, &err), 0, "list tasks");
    is_str(o.buf, "k1|e1|default|q|first|1|leased|L1|{\"x\":1}|100|150|90\n",
           "tasks round trip; done tasks are not listed");

    memset(&o, 0, sizeof(o));
    s->ops->list_active_execs(s, STORE_ALL_SHARDS, exec_id_cb, &o, &err);
    is_str(o.buf, "e1 e2 ", "running and paused executions are active");

    /* Replace a timer and a task, delete the others (and an unknown id). */
    t = store_batch_timer(&b);
    t->id = "t2";
    t->exec_id = "e1";
    t->due_at = 100;
    t->kind = "sleep";
    store_batch_timer_del(&b, "e1", "t1");
    store_batch_timer_del(&b, "e1", "no-such-timer");
    k = store_batch_task(&b);
    k->id = "k1";
    k->exec_id = "e1";
    k->namespace = "default";
    k->queue = "q";
    k->step = "first";
    k->attempt = 2;
    k->status = "ready";
    k->input = "{}";
    store_batch_task_del(&b, "e1", "k2");
    is_int(apply(s, &b, &err), 0, "replace and delete: %s", err.message);
    memset(&o, 0, sizeof(o));
    s->ops->list_timers(s, STORE_ALL_SHARDS, INT64_MIN, INT64_MAX, timer_cb, &o, &err);
    is_str(o.buf, "t2|e1|100|sleep|~|0|~\n", "timer replaced, other deleted");
    memset(&o, 0, sizeof(o));
    s->ops->list_tasks(s, STORE_ALL_SHARDS, task_cb, &o, &err);
    is_str(o.buf, "k1|e1|default|q|first|2|ready|~|{}|0|0|0\n", "task replaced");

    /* A callback that stops the read: its value comes back. */
    memset(&o, 0, sizeof(o));
    o.stop_after = 1;
    is_int(s->ops->list_steps(s, "e1", step_cb, &o, &err), 42, "a callback's non-zero stops");
    is_int(o.n, 1, "after one row");
    memset(&o, 0, sizeof(o));
    o.stop_after = 1;
    is_int(s->ops->get_exec(s, "e1", exec_cb, &o, &err), 42, "get returns the callback's value");

    is_int(apply(s, &b, &err), 0, "an empty batch is fine");
    store_batch_release(&b);
    ok(b.execs == NULL && b.alloc_execs == 0, "release frees");
    store_close(s);
}

TEST(roundtrip_memory)
{
    roundtrip(MEM);
}

TEST(roundtrip_file)
{
    char url[512];
    roundtrip(file_url(url, sizeof(url), "roundtrip.db"));
}

/* ---- hostile and large values ---- */

struct big_cmp {
    const char *want;
    int same;
};

static int big_cb(void *ud, const struct store_exec *r)
{
    struct big_cmp *c = ud;

    c->same = r->input && strcmp(r->input, c->want) == 0;
    return 0;
}

static void hostile(const char *url)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct store_batch b;
    struct out o;
    struct store *s = open_ok(url);
    const char *id = "x'); DROP TABLE executions; --";
    const char *ns = "n\"s\\ \xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80";
    size_t big_len = 1 << 20;
    char *big = malloc(big_len + 3);

    big[0] = '"';
    memset(big + 1, 'a', big_len);
    big[big_len + 1] = '"';
    big[big_len + 2] = '\0';
    store_batch_init(&b);
    struct store_exec *e = add_exec(&b, id, ns, "w%s%n", "running", 1);
    e->input = big;
    is_int(apply(s, &b, &err), 0, "hostile strings apply: %s", err.message);

    struct store_exec_filter f = {.namespace = ns, .workflow = "w%s%n"};
    memset(&o, 0, sizeof(o));
    is_int(s->ops->list_execs(s, &f, exec_id_cb, &o, &err), 0, "list by hostile namespace");
    is_int(o.n, 1, "finds the one execution");
    f.namespace = "n%";
    memset(&o, 0, sizeof(o));
    s->ops->list_execs(s, &f, exec_id_cb, &o, &err);
    is_int(o.n, 0, "no pattern matching in filters");

    int64_t seq = -1;
    ok(s->ops->get_exec(s, id, seq_cb, &seq, &err) == 0 && seq > 0, "the tables are still there");

    struct big_cmp cmp = {big, 0};
    is_int(s->ops->get_exec(s, id, big_cb, &cmp, &err), 0, "read 1 MiB input");
    ok(cmp.same, "1 MiB input round trips");
    free(big);
    store_batch_release(&b);
    store_close(s);
}

TEST(hostile_memory)
{
    hostile(MEM);
}

TEST(hostile_file)
{
    char url[512];
    hostile(file_url(url, sizeof(url), "hostile.db"));
}

/* ---- upsert ---- */

static void upsert(const char *url)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct store_batch b;
    struct out o;
    struct store *s = open_ok(url);

    store_batch_init(&b);
    add_exec(&b, "x", "default", "w", "running", 100)->output = "1";
    add_exec(&b, "y", "default", "w", "running", 200);
    is_int(apply(s, &b, &err), 0, "insert two");
    int64_t sx = exec_seq(s, "x"), sy = exec_seq(s, "y");

    struct store_exec *e = add_exec(&b, "x", "default", "w2", "completed", 999);
    e->version = 2;
    e->seq = 12345; /* ignored */
    e->output = NULL;
    e->state = "{\"done\":true}";
    e->updated_at = 300;
    e->finished_at = 301;
    is_int(apply(s, &b, &err), 0, "upsert x: %s", err.message);
    is_int(exec_seq(s, "x"), sx, "upsert keeps seq");
    is_int(exec_seq(s, "y"), sy, "and the other's");
    is_str(get_exec(s, "x", &o),
           "x|default|w2|2|completed|{}|~|~|~|~|{\"done\":true}|100|300|301\n",
           "upsert updates every column but seq, id, created_at (output back to NULL)");

    struct store_exec_filter f = {.namespace = "default"};
    memset(&o, 0, sizeof(o));
    s->ops->list_execs(s, &f, exec_id_cb, &o, &err);
    is_str(o.buf, "y x ", "list order is creation order, not update order");
    memset(&o, 0, sizeof(o));
    s->ops->list_active_execs(s, STORE_ALL_SHARDS, exec_id_cb, &o, &err);
    is_str(o.buf, "y ", "a completed execution is not active");

    /* A step is replaced by path. */
    struct store_step *p = store_batch_step(&b);
    p->exec_id = "x";
    p->path = "a";
    p->status = "running";
    p->attempts = 1;
    is_int(apply(s, &b, &err), 0, "step");
    p = store_batch_step(&b);
    p->exec_id = "x";
    p->path = "a";
    p->status = "completed";
    p->attempts = 2;
    p->output = "3";
    is_int(apply(s, &b, &err), 0, "step again");
    memset(&o, 0, sizeof(o));
    s->ops->list_steps(s, "x", step_cb, &o, &err);
    is_str(o.buf, "x|a|0|completed|2|3|~|~|0|0\n", "step upserted");

    /* A row missing a required column fails the batch. */
    add_exec(&b, "z", "default", "w", NULL, 1);
    is_int(apply(s, &b, &err), WFO_ESTORE, "an execution without status fails");
    ok(strstr(err.message, "'z'") && strstr(err.message, "NOT NULL"), "message: %s", err.message);
    store_batch_release(&b);
    store_close(s);
}

TEST(upsert_memory)
{
    upsert(MEM);
}

TEST(upsert_file)
{
    char url[512];
    upsert(file_url(url, sizeof(url), "upsert.db"));
}

/* ---- list order, paging and filters ---- */

struct model {
    char id[16];
    const char *ns, *wf, *status;
    int64_t created, seq;
};

#define N_MODEL 40

/* The ids list_execs must return for f, newest first, computed from the
 * model by brute force. */
static void expect_ids(const struct model *m, const struct store_exec_filter *f, struct out *o)
{
    memset(o, 0, sizeof(*o));
    for (int i = N_MODEL - 1; i >= 0; i--) {
        if (strcmp(m[i].ns, f->namespace) != 0 || (f->workflow && strcmp(m[i].wf, f->workflow)) ||
            (f->status && strcmp(m[i].status, f->status)) ||
            (f->created_after && m[i].created <= f->created_after) ||
            (f->created_before && m[i].created >= f->created_before) ||
            (f->before_seq && m[i].seq >= f->before_seq))
            continue;
        out_add(o, "%s ", m[i].id);
        o->n++;
    }
}

struct pager {
    struct out *o;
    int64_t last_seq;
};

static int pager_cb(void *ud, const struct store_exec *r)
{
    struct pager *p = ud;

    if (p->last_seq && r->seq >= p->last_seq)
        out_add(p->o, "OUT-OF-ORDER ");
    p->last_seq = r->seq;
    return exec_id_cb(p->o, r);
}

/* Every page of f of size limit, concatenated, as the API would fetch them. */
static int fetch_all(struct store *s, struct store_exec_filter f, int limit, struct out *o,
                     int *pages)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct pager p = {o, 0};

    memset(o, 0, sizeof(*o));
    *pages = 0;
    f.limit = limit;
    for (;;) {
        int before = o->n;
        int rc = s->ops->list_execs(s, &f, pager_cb, &p, &err);
        if (rc)
            return rc;
        (*pages)++;
        if (o->n - before < limit || *pages > N_MODEL + 2)
            return 0;
        f.before_seq = p.last_seq;
    }
}

static void listing(const char *url)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct store_batch b;
    struct model m[N_MODEL];
    struct store *s = open_ok(url);
    static const char *const statuses[] = {"running", "completed", "failed"};

    store_batch_init(&b);
    for (int i = 0; i < N_MODEL; i++) {
        snprintf(m[i].id, sizeof(m[i].id), "ex-%02d", i);
        m[i].ns = i % 8 == 7 ? "other" : "default";
        m[i].wf = i % 2 ? "w1" : "w0";
        m[i].status = statuses[i % 3];
        m[i].created = 1000 + (i / 2) * 10; /* two per instant */
        add_exec(&b, m[i].id, m[i].ns, m[i].wf, m[i].status, m[i].created);
        if (i % 5 == 4) /* several batches */
            is_int(apply(s, &b, &err), 0, "apply up to %d", i);
    }
    for (int i = 0; i < N_MODEL; i++)
        m[i].seq = exec_seq(s, m[i].id);
    int ordered = 1;
    for (int i = 1; i < N_MODEL; i++)
        ordered &= m[i].seq > m[i - 1].seq;
    ok(ordered, "seq follows insertion order");

    /* Every combination of filters, each fetched in pages of 1, 3 and all. */
    int combos_ok = 0, combos = 0;
    for (int mask = 0; mask < 32; mask++) {
        for (int k = 0; k < 2; k++) {
            struct store_exec_filter f = {.namespace = k ? "other" : "default"};
            if (mask & 1)
                f.workflow = "w1";
            if (mask & 2)
                f.status = "running";
            if (mask & 4)
                f.created_after = 1050;
            if (mask & 8)
                f.created_before = 1150;
            if (mask & 16)
                f.before_seq = m[30].seq;
            struct out want, got;
            expect_ids(m, &f, &want);
            static const int limits[] = {1, 3, 100};
            for (int li = 0; li < 3; li++) {
                int pages, limit = limits[li];
                combos++;
                int rc = fetch_all(s, f, limit, &got, &pages);
                if (rc == 0 && strcmp(want.buf, got.buf) == 0 && pages == want.n / limit + 1) {
                    combos_ok++;
                } else {
                    printf("#   mask %d ns %s limit %d: want \"%s\" got \"%s\" (%d pages)\n", mask,
                           f.namespace, limit, want.buf, got.buf, pages);
                }
            }
        }
    }
    is_int(combos_ok, combos, "every filter combination pages newest first");

    struct store_exec_filter f = {.namespace = "default", .limit = 4};
    struct out o = {0};
    s->ops->list_execs(s, &f, exec_id_cb, &o, &err);
    /* ex-39 is in the other namespace; ex-37 and ex-36 were created in the
     * same instant. */
    is_str(o.buf, "ex-38 ex-37 ex-36 ex-35 ", "newest first, same instant in creation order");
    f.limit = 0;
    memset(&o, 0, sizeof(o));
    s->ops->list_execs(s, &f, exec_id_cb, &o, &err);
    is_int(o.n, 35, "limit 0 lists all of the namespace");
    f.namespace = "nobody";
    memset(&o, 0, sizeof(o));
    is_int(s->ops->list_execs(s, &f, exec_id_cb, &o, &err), 0, "unknown namespace");
    is_int(o.n, 0, "is empty");
    f.namespace = NULL;
    is_int(s->ops->list_execs(s, &f, exec_id_cb, &o, &err), WFO_EINVAL, "namespace required");

    memset(&o, 0, sizeof(o));
    s->ops->list_active_execs(s, STORE_ALL_SHARDS, exec_id_cb, &o, &err);
    is_int(o.n, 14, "active: every running one of every namespace");

    store_batch_release(&b);
    store_close(s);
}

TEST(list_memory)
{
    listing(MEM);
}

TEST(list_file)
{
    char url[512];
    listing(file_url(url, sizeof(url), "list.db"));
}

/* The list queries walk an index and never sort. */
TEST(list_plans)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct store *s = open_ok(MEM);
    static const struct {
        int mask;
        const char *index;
    } cases[] = {
        {0, "executions_ns_seq"},
        {16, "executions_ns_seq"},
        {4 | 8, "executions_ns_seq"},
        {2, "executions_ns_status_seq"},
        {2 | 16, "executions_ns_status_seq"},
        {1, "executions_ns_workflow_seq"},
        {1 | 16, "executions_ns_workflow_seq"},
        {1 | 2 | 16, "executions_ns_"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int mk = cases[i].mask;
        struct store_exec_filter f = {.namespace = "n",
                                      .workflow = mk & 1 ? "w" : NULL,
                                      .status = mk & 2 ? "s" : NULL,
                                      .created_after = mk & 4 ? 1 : 0,
                                      .created_before = mk & 8 ? 1 : 0,
                                      .before_seq = mk & 16 ? 1 : 0};
        char sql[1200] = "EXPLAIN QUERY PLAN ", plan[2048];
        size_t n = strlen(sql);
        store_sqlite_list_sql(&f, sql + n, sizeof(sql) - n);
        int rc = store_sqlite_query(s, sql, plan, sizeof(plan), &err);
        ok(rc == 0 && strstr(plan, cases[i].index) && !strstr(plan, "TEMP B-TREE"),
           "filters %d use %s without sorting: %s", mk, cases[i].index,
           rc ? err.message : oneline(plan));
    }
    char plan[2048];
    store_sqlite_query(s,
                       "EXPLAIN QUERY PLAN SELECT seq FROM executions"
                       " WHERE status IN ('running', 'paused') AND resume = 1"
                       " AND (65535 >> shard) & 1 ORDER BY seq",
                       plan, sizeof(plan), &err);
    ok(strstr(plan, "executions_resume") && !strstr(plan, "TEMP B-TREE"),
       "recovery uses the partial index: %s", oneline(plan));
    is_int(store_sqlite_query(s, "SELEC nonsense", plan, sizeof(plan), &err), WFO_ESTORE,
           "bad SQL is a store error");
    is_int(store_sqlite_query(s, "SELECT 'abcdefghijklmnop'", plan, 8, &err), WFO_ETOOBIG,
           "a small buffer is ETOOBIG");
    store_close(s);
}

/* ---- atomicity and history seq ---- */

static void atomic(const char *url)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct store_batch b;
    struct out o;
    struct store *s = open_ok(url);

    store_batch_init(&b);
    add_exec(&b, "A", "default", "w", "running", 1)->chunk = 1;
    add_history(&b, "A", 1, "execution.started");
    add_history(&b, "A", 2, "step.started");
    is_int(apply(s, &b, &err), 0, "first batch");

    /* A batch that changes A, adds B and every other row kind, and writes
     * A's chunk 1 again (a doubled transition). */
    add_exec(&b, "A", "default", "w", "failed", 1)->chunk = 1;
    add_exec(&b, "B", "default", "w", "running", 2);
    struct store_step *p = store_batch_step(&b);
    p->exec_id = "B";
    p->path = "s";
    p->status = "running";
    add_history(&b, "B", 1, "execution.started");
    add_history(&b, "A", 3, "step.completed");
    struct store_timer *t = store_batch_timer(&b);
    t->id = "tB";
    t->exec_id = "B";
    t->kind = "sleep";
    t->due_at = 5;
    struct store_task *k = store_batch_task(&b);
    k->id = "kB";
    k->exec_id = "B";
    k->namespace = "default";
    k->queue = "q";
    k->step = "s";
    k->status = "ready";
    is_int(apply(s, &b, &err), WFO_ESTORE, "a doubled chunk fails the batch");
    ok(strstr(err.message, "'A'") != NULL, "naming the execution: %s", err.message);

    is_str(get_exec(s, "A", &o), "A|default|w|1|running|{}|~|~|~|~|~|1|1|0\n", "A is unchanged");
    is_str(get_exec(s, "B", &o), "", "B does not exist");
    memset(&o, 0, sizeof(o));
    s->ops->list_steps(s, "B", step_cb, &o, &err);
    is_int(o.n, 0, "nor its step");
    memset(&o, 0, sizeof(o));
    s->ops->list_history(s, "B", 0, 0, history_cb, &o, &err);
    is_int(o.n, 0, "nor its history");
    memset(&o, 0, sizeof(o));
    s->ops->list_history(s, "A", 0, 0, history_cb, &o, &err);
    is_int(o.n, 2, "A's history is as before (no seq 3)");
    memset(&o, 0, sizeof(o));
    s->ops->list_timers(s, STORE_ALL_SHARDS, INT64_MIN, INT64_MAX, timer_cb, &o, &err);
    is_int(o.n, 0, "no timer");
    memset(&o, 0, sizeof(o));
    s->ops->list_tasks(s, STORE_ALL_SHARDS, task_cb, &o, &err);
    is_int(o.n, 0, "no task");

    /* gaps are the engine's to prevent (fsm.c I2); the store refuses a
     * chunk written twice, and numbers one the writer does not */
    add_history(&b, "A", 3, "step.completed");
    add_history(&b, "A", 4, "execution.completed");
    add_history(&b, "B", 1, "execution.started");
    is_int(apply(s, &b, &err), 0, "the next seqs apply: %s", err.message);
    memset(&o, 0, sizeof(o));
    s->ops->list_history(s, "A", 0, 0, history_cb, &o, &err);
    is_int(o.n, 4, "A has 4 entries");

    /* The store still works after failures (the writer is not stuck in a
     * transaction). */
    add_exec(&b, "D", "default", "w", "running", 3);
    is_int(apply(s, &b, &err), 0, "apply after failures");
    ok(exec_seq(s, "D") > exec_seq(s, "A"), "D is newer");
    store_batch_release(&b);
    store_close(s);
}

TEST(atomic_memory)
{
    atomic(MEM);
}

TEST(atomic_file)
{
    char url[512];
    atomic(file_url(url, sizeof(url), "atomic.db"));
}

/* ---- workflows ---- */

struct wf_got {
    int version;
    int64_t created_at;
    char def[64];
};

static int wf_got_cb(void *ud, const struct store_workflow *r)
{
    struct wf_got *g = ud;

    g->version = r->version;
    g->created_at = r->created_at;
    snprintf(g->def, sizeof(g->def), "%s", r->definition);
    return 0;
}

static void workflows(const char *url)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct store *s = open_ok(url);
    struct store_workflow w = {"default", "order", 0, "h1", "{\"v\":1}", 0};
    struct wf_got g = {0};
    struct out o;
    int created = -1;

    is_int(s->ops->put_workflow(s, &w, &created, wf_got_cb, &g, &err), 0, "put: %s", err.message);
    is_int(created, 1, "first put creates");
    is_int(g.version, 1, "version 1");
    ok(g.created_at > 1600000000000, "created_at is now");
    int64_t first_at = g.created_at;

    memset(&g, 0, sizeof(g));
    w.definition = "{\"v\":1} "; /* same hash: the store trusts it */
    is_int(s->ops->put_workflow(s, &w, &created, wf_got_cb, &g, &err), 0, "put same");
    is_int(created, 0, "same hash does not create");
    is_int(g.version, 1, "and returns version 1");
    is_int(g.created_at, first_at, "as stored");
    is_str(g.def, "{\"v\":1}", "with the stored definition");

    w.hash = "h2";
    w.definition = "{\"v\":2}";
    w.created_at = 777;
    is_int(s->ops->put_workflow(s, &w, &created, wf_got_cb, &g, &err), 0, "put changed");
    is_int(created, 1, "a changed hash creates");
    is_int(g.version, 2, "version 2");
    is_int(g.created_at, 777, "a given created_at is kept");

    w.hash = "h1"; /* back to the first body: still a new version */
    w.definition = "{\"v\":1}";
    w.created_at = 0;
    s->ops->put_workflow(s, &w, &created, wf_got_cb, &g, &err);
    is_int(g.version, 3, "going back to an older body makes version 3");

    struct store_workflow other = {"team-b", "order", 0, "h9", "{}", 1};
    s->ops->put_workflow(s, &other, &created, NULL, NULL, &err);
    is_int(created, 1, "another namespace has its own versions (NULL callback)");
    struct store_workflow w2 = {"default", "audit", 0, "ha", "[]", 5};
    s->ops->put_workflow(s, &w2, &created, NULL, NULL, &err);

    memset(&g, 0, sizeof(g));
    is_int(s->ops->get_workflow(s, "default", "order", 0, wf_got_cb, &g, &err), 0, "get latest");
    is_int(g.version, 3, "latest is 3");
    is_int(s->ops->get_workflow(s, "default", "order", 2, wf_got_cb, &g, &err), 0, "get v2");
    is_str(g.def, "{\"v\":2}", "v2's definition");
    is_int(s->ops->get_workflow(s, "default", "order", 9, wf_got_cb, &g, &err), WFO_ENOTFOUND,
           "v9 not found: %s", err.message);
    is_int(s->ops->get_workflow(s, "default", "nope", 0, wf_got_cb, &g, &err), WFO_ENOTFOUND,
           "unknown workflow");
    is_int(s->ops->get_workflow(s, "team-c", "order", 0, wf_got_cb, &g, &err), WFO_ENOTFOUND,
           "namespaces are separate");

    memset(&o, 0, sizeof(o));
    is_int(s->ops->list_workflows(s, "default", wf_cb, &o, &err), 0, "list workflows");
    ok(o.n == 2 && strstr(o.buf, "default|audit|1|ha|[]|5\n") == o.buf &&
           strstr(o.buf, "default|order|3|h1|"),
       "latest of each, by name: %s", oneline(o.buf));

    struct store_workflow bad = {"default", NULL, 0, "h", "{}", 0};
    is_int(s->ops->put_workflow(s, &bad, &created, NULL, NULL, &err), WFO_EINVAL,
           "a workflow without a name");
    store_close(s);
}

TEST(workflows_memory)
{
    workflows(MEM);
}

TEST(workflows_file)
{
    char url[512];
    workflows(file_url(url, sizeof(url), "workflows.db"));
}

/* ---- files: reopen, pragmas; memory stores are separate ---- */

TEST(file_reopen)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct store_batch b;
    struct out o;
    char url[512], res[256];
    struct store *s;

    file_url(url, sizeof(url), "reopen.db");
    s = open_ok(url);
    store_batch_init(&b);
    add_exec(&b, "r1", "default", "w", "running", 1)->chunk = 1;
    add_history(&b, "r1", 1, "execution.started");
    is_int(apply(s, &b, &err), 0, "apply");
    is_int(store_sqlite_query(s, "PRAGMA journal_mode", res, sizeof(res), &err), 0, "query");
    is_str(res, "wal\n", "journal_mode is wal");
    store_sqlite_query(s, "PRAGMA synchronous", res, sizeof(res), &err);
    is_str(res, "2\n", "synchronous is FULL");
    store_sqlite_query(s, "PRAGMA user_version", res, sizeof(res), &err);
    is_str(res, "9\n", "schema version 9");
    int64_t seq1 = exec_seq(s, "r1");
    store_close(s);

    s = open_ok(url);
    is_str(get_exec(s, "r1", &o), "r1|default|w|1|running|{}|~|~|~|~|~|1|1|0\n",
           "a reopened file store sees the data");
    memset(&o, 0, sizeof(o));
    s->ops->list_history(s, "r1", 0, 0, history_cb, &o, &err);
    is_int(o.n, 1, "and the history");
    store_sqlite_query(s, "PRAGMA synchronous", res, sizeof(res), &err);
    is_str(res, "2\n", "synchronous is FULL again");
    add_exec(&b, "r1", "default", "w", "running", 1)->chunk = 1;
    add_history(&b, "r1", 1, "execution.started");
    is_int(apply(s, &b, &err), WFO_ESTORE, "a doubled chunk still refused after reopen");
    add_exec(&b, "r2", "default", "w", "running", 2);
    is_int(apply(s, &b, &err), 0, "apply after reopen");
    ok(exec_seq(s, "r2") > seq1, "seq keeps growing after reopen");
    is_int(s->ops->ping(s, &err), 0, "ping");

    /* A second store on the same file sees the first one's commits. */
    struct store *s2 = open_ok(url);
    is_str(get_exec(s2, "r2", &o), "r2|default|w|1|running|{}|~|~|~|~|~|2|2|0\n",
           "a second store on the file reads it");
    store_close(s2);
    store_batch_release(&b);
    store_close(s);
}

TEST(memory_stores_are_separate)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct store_batch b;
    struct out o;
    struct store *a = open_ok(MEM), *c = open_ok(MEM);

    store_batch_init(&b);
    add_exec(&b, "only-a", "default", "w", "running", 1);
    is_int(apply(a, &b, &err), 0, "apply to a");
    is_str(get_exec(c, "only-a", &o), "", "another memory store does not see it");
    ok(strstr(get_exec(a, "only-a", &o), "only-a") != NULL, "a sees it");
    store_close(a);
    store_close(c);
    a = open_ok(MEM);
    is_str(get_exec(a, "only-a", &o), "", "a memory store starts empty");
    store_close(a);
    store_batch_release(&b);
}

/* ---- concurrency: readers while a writer applies ---- */

#define CC_BATCHES 150

struct cc {
    struct store *s;
    atomic_int done;
    int errors, reads, torn;
    char msg[600];
    pthread_mutex_t mu;
};

static void cc_error(struct cc *c, const char *what, const char *msg)
{
    pthread_mutex_lock(&c->mu);
    if (!c->errors++)
        snprintf(c->msg, sizeof(c->msg), "%s: %s", what, msg);
    pthread_mutex_unlock(&c->mu);
}

/* Batch k adds execution k with steps and history 1-2, and finishes k-1 with
 * history 3: a reader sees 0, 2 or 3 history rows, never 1. */
static void *cc_writer(void *arg)
{
    struct cc *c = arg;
    struct wfo_error err = WFO_ERROR_INIT;
    struct store_batch b;
    static char ids[CC_BATCHES][16];

    store_batch_init(&b);
    for (int k = 0; k < CC_BATCHES; k++) {
        snprintf(ids[k], sizeof(ids[k]), "cc-%03d", k);
        add_exec(&b, ids[k], "default", "w", "running", k + 1);
        struct store_step *p = store_batch_step(&b);
        p->exec_id = ids[k];
        p->path = "s";
        p->status = "running";
        add_history(&b, ids[k], 1, "execution.started");
        add_history(&b, ids[k], 2, "step.started");
        if (k > 0) {
            add_exec(&b, ids[k - 1], "default", "w", "completed", k);
            add_history(&b, ids[k - 1], 3, "execution.completed");
        }
        if (apply(c->s, &b, &err))
            cc_error(c, "apply", err.message);
    }
    store_batch_release(&b);
    c->done = 1;
    return NULL;
}

struct cc_list {
    char ids[50][16];
    char status[50][16];
    int n;
};

static int cc_list_cb(void *ud, const struct store_exec *r)
{
    struct cc_list *l = ud;

    snprintf(l->ids[l->n], sizeof(l->ids[0]), "%s", r->id);
    snprintf(l->status[l->n++], sizeof(l->status[0]), "%s", r->status);
    return 0;
}

static int cc_count(void *ud, const struct store_history *r)
{
    (*(int *)ud)++;
    return 0;
}

static void *cc_reader(void *arg)
{
    struct cc *c = arg;
    struct wfo_error err = WFO_ERROR_INIT;
    struct store_exec_filter f = {.namespace = "default", .limit = 50};
    int last_total = 0, reads = 0;

    while (!c->done) {
        struct cc_list l = {.n = 0};
        if (c->s->ops->list_execs(c->s, &f, cc_list_cb, &l, &err)) {
            cc_error(c, "list", err.message);
            break;
        }
        reads++;
        if (l.n < last_total)
            cc_error(c, "list", "fewer executions than before");
        last_total = l.n;
        for (int i = 0; i < l.n; i++) {
            int n = 0;
            if (c->s->ops->list_history(c->s, l.ids[i], 0, 0, cc_count, &n, &err)) {
                cc_error(c, "history", err.message);
                break;
            }
            reads++;
            /* one execution with its state (its newest chunk), as a GET
             * reads it: a memory store's table lock is waited out there
             * too */
            struct out o = {0};
            if (c->s->ops->get_exec(c->s, l.ids[i], exec_cb, &o, &err)) {
                cc_error(c, "get", err.message);
                break;
            }
            /* Listed running: its first batch committed, so 2 or 3 now. */
            if (n < 2 || n > 3 || (strcmp(l.status[i], "completed") == 0 && n != 3)) {
                pthread_mutex_lock(&c->mu);
                c->torn++;
                pthread_mutex_unlock(&c->mu);
            }
        }
    }
    pthread_mutex_lock(&c->mu);
    c->reads += reads;
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

static void concurrent(const char *url)
{
    struct cc c = {.s = open_ok(url), .mu = PTHREAD_MUTEX_INITIALIZER};
    pthread_t w, r[4];

    for (int i = 0; i < 4; i++)
        pthread_create(&r[i], NULL, cc_reader, &c);
    pthread_create(&w, NULL, cc_writer, &c);
    pthread_join(w, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(r[i], NULL);
    is_int(c.errors, 0, "no errors while reading during applies%s%s", c.errors ? ": " : "", c.msg);
    is_int(c.torn, 0, "no reader saw half a batch");
    ok(c.reads > 0, "readers read while the writer applied (%d reads)", c.reads);

    int n = 0;
    c.s->ops->list_history(c.s, "cc-149", 0, 0, cc_count, &n, NULL);
    is_int(n, 2, "the last execution has its history");
    store_close(c.s);
}

TEST(concurrent_memory)
{
    concurrent(MEM);
}

TEST(concurrent_file)
{
    char url[512];
    concurrent(file_url(url, sizeof(url), "concurrent.db"));
}

/* ---- batch helpers ---- */

TEST(batch)
{
    struct store_batch b;

    store_batch_init(&b);
    ok(store_batch_empty(&b), "a new batch is empty");
    for (int i = 0; i < 1000; i++) {
        struct store_exec *e = store_batch_exec(&b);
        ok(i != 999 || (e->id == NULL && e->seq == 0 && e == &b.execs[999]),
           "slot 1000 is zeroed and in place");
        e->version = i;
    }
    is_int(b.n_execs, 1000, "1000 executions");
    int same = 1;
    for (int i = 0; i < 1000; i++)
        same &= b.execs[i].version == i;
    ok(same, "growing keeps the rows");
    store_batch_step(&b)->ord = 1;
    store_batch_history(&b)->seq = 1;
    store_batch_timer(&b)->token = 1;
    store_batch_task(&b)->attempt = 1;
    store_batch_timer_del(&b, "e1", "t");
    store_batch_task_del(&b, "e1", "k");
    ok(b.n_steps == 1 && b.n_history == 1 && b.n_timers == 1 && b.n_tasks == 1 &&
           b.n_timer_dels == 1 && b.n_task_dels == 1,
       "one of each");
    is_str(b.task_dels[0].id, "k", "task delete id");
    is_str(b.task_dels[0].exec_id, "e1", "and its execution");
    struct store_exec *old = b.execs;
    int alloc = b.alloc_execs;
    store_batch_reset(&b);
    ok(store_batch_empty(&b), "reset empties");
    ok(b.execs == old && b.alloc_execs == alloc, "reset keeps the memory");
    struct store_exec *e = store_batch_exec(&b);
    ok(e == old && e->version == 0, "a slot after reset is zeroed");
    store_batch_timer_del(&b, "e1", "x");
    ok(!store_batch_empty(&b), "a delete alone is not empty");
    store_batch_release(&b);
    ok(store_batch_empty(&b) && b.execs == NULL, "release");
    store_batch_release(&b);
    ok(1, "release twice is fine");
}

/* ---- measurement ---- */

TEST(measure_apply)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct store_batch b;
    char url[512];
    static char ids[100][100][32];
    struct timespec t0, t1;
    int fails = 0;

    struct store *s = open_ok(file_url(url, sizeof(url), "measure.db"));
    store_batch_init(&b);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int k = 0; k < 100; k++) {
        for (int i = 0; i < 100; i++) {
            snprintf(ids[k][i], sizeof(ids[k][i]), "m-%03d-%03d", k, i);
            struct store_exec *e = add_exec(&b, ids[k][i], "default", "bench", "running", k);
            e->state = "{\"pc\":1,\"vars\":{}}";
            struct store_step *p = store_batch_step(&b);
            p->exec_id = ids[k][i];
            p->path = "first";
            p->status = "running";
            p->attempts = 1;
            p->started_at = k;
            add_history(&b, ids[k][i], 1, "execution.started");
        }
        fails += apply(s, &b, &err) != 0;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
    is_int(fails, 0, "100 batches applied");
    printf("# apply: 30000 rows (100 batches of 100 execution+step+history) to a file store "
           "(WAL, synchronous=FULL) in %.1f ms: %.0f rows/s, %.2f ms per commit\n",
           ms, 30000 / (ms / 1e3), ms / 100);
    store_batch_release(&b);
    store_close(s);
}

int main(void)
{
    int rc = tap_run();

    if (tmp_dir[0])
        nftw(tmp_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return rc;
}
