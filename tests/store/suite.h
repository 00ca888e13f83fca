/*
 * suite.h - what the programs of the store contract suite share
 * (tests/store/): the back ends every check runs against, a temporary
 * directory for their files, batch builders, rows printed as text so that
 * one string compares every field, and a runner that runs every TEST once
 * per back end (git runs its test suite again with the other refs back end;
 * STYLE rule 14). docs/interfaces/internal.md ("The store interface").
 *
 *   build/asan/store-tests/test_contract [BACKEND...]   default: all of them
 *
 * The postgres back end runs when $WFO_TEST_PG names a server (a base URL,
 * postgres://...; `make store-test` starts a throwaway one with
 * tests/pg/pg.sh): each store name of a check is a database of its own,
 * created on first use and dropped at the end of the run. Without
 * $WFO_TEST_PG it is skipped, unless named on the command line (then it
 * fails).
 *
 * A check is written once against struct store_ops and never names a
 * back end, except the few that exercise one (suite_is("fault")). The
 * store interface that adds shards (owner, epochs) is detected by
 * STORE_SHARDS, so the same checks build against both: suite_apply names
 * the suite's owner and the epochs suite_open claimed.
 */
#ifndef WFO_TESTS_STORE_SUITE_H
#define WFO_TESTS_STORE_SUITE_H

#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"
#include "../unit/tap.h"
#include "rawpg.h"

/* ---- back ends ---- */

struct suite_backend {
    const char *name;
    const char *prefix; /* URL = prefix + file path; NULL: a database of $WFO_TEST_PG */
};

/* SQLite on a file, the fault wrapper around it with no faults configured
 * (only suite_fault_open sets $WFO_STORE_FAULTS), and PostgreSQL. */
static const struct suite_backend suite_backends[] = {
    {"sqlite", "sqlite:"},
    {"fault", "fault:sqlite:"},
    {"postgres", NULL},
};

static const struct suite_backend *B; /* the back end being checked */
static char suite_dir[256];
/* Where a check that cannot go on jumps back to the runner. */
static jmp_buf suite_stop;

static inline int suite_is(const char *name)
{
    return strcmp(B->name, name) == 0;
}

/* The file of store `name` of the current back end. */
static inline const char *suite_path(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/%s-%s.db", suite_dir, B->name, name);
    return out;
}

/* The databases this run made on $WFO_TEST_PG, dropped at its end. */
static char suite_pg_run[32];
static char **suite_pg_dbs;
static int suite_pg_n, suite_pg_alloc;

/* The URL of database db of $WFO_TEST_PG, made on first use. */
static inline const char *suite_pg_url(char *out, size_t size, const char *name)
{
    const char *base = getenv("WFO_TEST_PG");
    char db[128], res[512];
    int i;

    rawpg_dbname(suite_pg_run, name, db, sizeof(db));
    for (i = 0; i < suite_pg_n && strcmp(suite_pg_dbs[i], db) != 0; i++)
        ;
    if (i == suite_pg_n) {
        char sql[256];
        /* one statement each: CREATE DATABASE cannot run in the implicit
         * transaction of a multi-statement string */
        snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", db);
        rawpg_run(base, sql, res, sizeof(res));
        snprintf(sql, sizeof(sql), "CREATE DATABASE %s", db);
        if (rawpg_run(base, sql, res, sizeof(res)) != 0)
            printf("# creating database %s: %s\n", db, res);
        if (suite_pg_n == suite_pg_alloc) {
            suite_pg_alloc = suite_pg_alloc ? suite_pg_alloc * 2 : 64;
            suite_pg_dbs = realloc(suite_pg_dbs, (size_t)suite_pg_alloc * sizeof(*suite_pg_dbs));
            if (!suite_pg_dbs)
                abort();
        }
        suite_pg_dbs[suite_pg_n++] = strdup(db);
    }
    return rawpg_url(base, db, out, size);
}

static inline void suite_pg_drop_all(void)
{
    const char *base = getenv("WFO_TEST_PG");
    char sql[256], res[512];

    for (int i = 0; i < suite_pg_n; i++) {
        snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", suite_pg_dbs[i]);
        if (base && rawpg_run(base, sql, res, sizeof(res)) != 0)
            printf("# dropping database %s: %s\n", suite_pg_dbs[i], res);
        free(suite_pg_dbs[i]);
    }
    free(suite_pg_dbs);
    suite_pg_dbs = NULL;
    suite_pg_n = suite_pg_alloc = 0;
}

static inline const char *suite_url(char *out, size_t size, const char *name)
{
    char path[512];

    if (!B->prefix)
        return suite_pg_url(out, size, name);
    snprintf(out, size, "%s%s", B->prefix, suite_path(path, sizeof(path), name));
    return out;
}

/* ---- strings that live until the end of the check ---- */

static pthread_mutex_t suite_strs_mu = PTHREAD_MUTEX_INITIALIZER;
static char **suite_strs;
static int suite_n_strs, suite_alloc_strs;

/* A formatted string freed after the check (batches borrow their strings
 * until applied). Thread-safe. */
static inline const char *suite_str(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline const char *suite_str(const char *fmt, ...)
{
    char tmp[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    char *s = strdup(tmp);
    if (!s)
        abort();
    pthread_mutex_lock(&suite_strs_mu);
    if (suite_n_strs == suite_alloc_strs) {
        suite_alloc_strs = suite_alloc_strs ? suite_alloc_strs * 2 : 256;
        suite_strs = realloc(suite_strs, (size_t)suite_alloc_strs * sizeof(*suite_strs));
        if (!suite_strs)
            abort();
    }
    suite_strs[suite_n_strs++] = s;
    pthread_mutex_unlock(&suite_strs_mu);
    return s;
}

static inline void suite_strs_free(void)
{
    for (int i = 0; i < suite_n_strs; i++)
        free(suite_strs[i]);
    free(suite_strs);
    suite_strs = NULL;
    suite_n_strs = suite_alloc_strs = 0;
}

/* ---- opening and writing ---- */

#define SUITE_OWNER "suite-owner"

#ifdef STORE_SHARDS
/* The epochs the suite's owner holds, from the last suite_open (a renewal
 * by the same owner keeps them, so stores on one file agree). */
static int64_t suite_epochs[STORE_SHARDS];

static inline int suite_shard_cb(void *ud, const struct store_shard *r)
{
    if (r->shard >= 0 && r->shard < STORE_SHARDS && r->owner && !strcmp(r->owner, SUITE_OWNER))
        suite_epochs[r->shard] = r->epoch;
    return 0;
}
#endif

static inline int64_t suite_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Opens url, or stops the check (nothing after could be checked): the
 * runner goes on with the next one. */
static inline struct store *suite_open_bare(const char *url)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct store *s = NULL;
    int rc = store_open(url, &s, &err);

    if (rc) {
        ok(0, "open %s: %s", url, err.message);
        longjmp(suite_stop, 1);
    }
    return s;
}

/* Opens url and, with shards, claims them all for the suite's owner. */
static inline struct store *suite_open_url(const char *url)
{
    struct store *s = suite_open_bare(url);
#ifdef STORE_SHARDS
    struct wfo_error err = WFO_ERROR_INIT;
    int rc;

    rc = s->ops->claim_shards(s, SUITE_OWNER, STORE_ALL_SHARDS, suite_now_ms(),
                              suite_now_ms() + 3600 * 1000, 0, suite_shard_cb, NULL, &err);
    if (rc) {
        ok(0, "claim every shard of %s: %s", url, err.message);
        store_close(s);
        longjmp(suite_stop, 1);
    }
#endif
    return s;
}

static inline struct store *suite_open(const char *name)
{
    char url[600];

    return suite_open_url(suite_url(url, sizeof(url), name));
}

/* Applies b as the suite's owner and resets it. */
static inline int suite_apply(struct store *s, struct store_batch *b, struct wfo_error *err)
{
#ifdef STORE_SHARDS
    b->owner = SUITE_OWNER;
    memcpy(b->epochs, suite_epochs, sizeof(suite_epochs));
#endif
    if (err)
        memset(err, 0, sizeof(*err));
    int rc = s->ops->apply(s, b, err);
    store_batch_reset(b);
    return rc;
}

/* ---- batch builders ---- */

static inline struct store_exec *add_exec(struct store_batch *b, const char *id, const char *ns,
                                          const char *wf, const char *status, int64_t created)
{
    struct store_exec *e = store_batch_exec(b);

    memset(e, 0, sizeof(*e));
    e->id = id;
    e->namespace = ns;
    e->workflow = wf;
    e->version = 1;
    e->status = status;
    e->input = "{}";
    e->created_at = created;
    e->updated_at = created;
#ifdef STORE_SHARDS
    e->resume = 1;
#endif
    return e;
}

static inline struct store_step *add_step(struct store_batch *b, const char *exec_id,
                                          const char *path, int ord, const char *status)
{
    struct store_step *p = store_batch_step(b);

    memset(p, 0, sizeof(*p));
    p->exec_id = exec_id;
    p->path = path;
    p->ord = ord;
    p->status = status;
    p->attempts = 1;
    return p;
}

static inline struct store_history *add_history(struct store_batch *b, const char *exec_id,
                                                int64_t seq, const char *type)
{
    struct store_history *h = store_batch_history(b);

    memset(h, 0, sizeof(*h));
    h->exec_id = exec_id;
    h->seq = seq;
    h->time = 1000 + seq;
    h->type = type;
    return h;
}

static inline struct store_timer *add_timer(struct store_batch *b, const char *id,
                                            const char *exec_id, int64_t due)
{
    struct store_timer *t = store_batch_timer(b);

    memset(t, 0, sizeof(*t));
    t->id = id;
    t->exec_id = exec_id;
    t->due_at = due;
    t->kind = "retry";
    t->step = "s";
    t->token = 1;
    return t;
}

static inline struct store_task *add_task(struct store_batch *b, const char *id,
                                          const char *exec_id, const char *queue, int64_t created)
{
    struct store_task *k = store_batch_task(b);

    memset(k, 0, sizeof(*k));
    k->id = id;
    k->exec_id = exec_id;
    k->namespace = "default";
    k->queue = queue;
    k->step = "s";
    k->attempt = 1;
    k->status = "ready";
    k->input = "{}";
    k->ready_at = created;
    k->created_at = created;
    return k;
}

static inline void del_timer(struct store_batch *b, const char *exec_id, const char *id)
{
#ifdef STORE_SHARDS
    store_batch_timer_del(b, exec_id, id);
#else
    (void)exec_id;
    store_batch_timer_del(b, id);
#endif
}

static inline void del_task(struct store_batch *b, const char *exec_id, const char *id)
{
#ifdef STORE_SHARDS
    store_batch_task_del(b, exec_id, id);
#else
    (void)exec_id;
    store_batch_task_del(b, id);
#endif
}

/* ---- rows printed as text ---- */

struct out {
    char buf[32768];
    size_t len;
    int n;
    int stop_after; /* return 42 after this many rows; 0: never */
};

#define N(s) ((s) ? (s) : "~")

static inline void out_add(struct out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline void out_add(struct out *o, const char *fmt, ...)
{
    va_list ap;

    if (o->len >= sizeof(o->buf))
        return;
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->len, sizeof(o->buf) - o->len, fmt, ap);
    va_end(ap);
    o->len += n > 0 ? (size_t)n : 0;
}

static inline int out_next(struct out *o)
{
    o->n++;
    return o->stop_after && o->n >= o->stop_after ? 42 : 0;
}

static inline struct out *out_reset(struct out *o)
{
    memset(o, 0, sizeof(*o));
    return o;
}

/* Every field but seq (which the store picks). */
static inline int exec_cb(void *ud, const struct store_exec *r)
{
    out_add(ud, "%s|%s|%s|%d|%s|%s|%s|%s|%s|%s|%s|%lld|%lld|%lld\n", N(r->id), N(r->namespace),
            N(r->workflow), r->version, N(r->status), N(r->input), N(r->output), N(r->error),
            N(r->compensation), N(r->parent), N(r->state), (long long)r->created_at,
            (long long)r->updated_at, (long long)r->finished_at);
    return out_next(ud);
}

/* Ids only, each followed by a space. */
static inline int exec_id_cb(void *ud, const struct store_exec *r)
{
    out_add(ud, "%s ", N(r->id));
    return out_next(ud);
}

static inline int step_cb(void *ud, const struct store_step *r)
{
    out_add(ud, "%s|%s|%d|%s|%d|%s|%s|%s|%lld|%lld|%s\n", N(r->exec_id), N(r->path), r->ord,
            N(r->status), r->attempts, N(r->output), N(r->error), N(r->state),
            (long long)r->started_at, (long long)r->finished_at, N(r->input));
    return out_next(ud);
}

/* "path:ord status" only. */
static inline int step_short_cb(void *ud, const struct store_step *r)
{
    out_add(ud, "%s:%d %s ", N(r->path), r->ord, N(r->status));
    return out_next(ud);
}

static inline int history_cb(void *ud, const struct store_history *r)
{
    out_add(ud, "%s|%lld|%lld|%s|%s|%s\n", N(r->exec_id), (long long)r->seq, (long long)r->time,
            N(r->type), N(r->step), N(r->data));
    return out_next(ud);
}

/* Seqs only. */
static inline int history_seq_cb(void *ud, const struct store_history *r)
{
    out_add(ud, "%lld ", (long long)r->seq);
    return out_next(ud);
}

static inline int timer_cb(void *ud, const struct store_timer *r)
{
    out_add(ud, "%s|%s|%lld|%s|%s|%lld|%s\n", N(r->id), N(r->exec_id), (long long)r->due_at,
            N(r->kind), N(r->step), (long long)r->token, N(r->data));
    return out_next(ud);
}

static inline int task_cb(void *ud, const struct store_task *r)
{
    out_add(ud, "%s|%s|%s|%s|%s|%d|%s|%s|%s|%lld|%lld|%lld\n", N(r->id), N(r->exec_id),
            N(r->namespace), N(r->queue), N(r->step), r->attempt, N(r->status), N(r->lease),
            N(r->input), (long long)r->ready_at, (long long)r->leased_until,
            (long long)r->created_at);
    return out_next(ud);
}

static inline int wf_cb(void *ud, const struct store_workflow *r)
{
    out_add(ud, "%s|%s|%d|%s|%s|%lld\n", N(r->namespace), N(r->name), r->version, N(r->hash),
            N(r->definition), (long long)r->created_at);
    return out_next(ud);
}

/* ---- reads into text ---- */

static inline const char *read_exec(struct store *s, const char *id, struct out *o)
{
    s->ops->get_exec(s, id, exec_cb, out_reset(o), NULL);
    return o->buf;
}

/* The get_exec code: 0 or WFO_ENOTFOUND. */
static inline int exec_rc(struct store *s, const char *id)
{
    struct out o;

    return s->ops->get_exec(s, id, exec_cb, out_reset(&o), NULL);
}

static inline int seq_cb(void *ud, const struct store_exec *r)
{
    *(int64_t *)ud = r->seq;
    return 0;
}

static inline int64_t exec_seq(struct store *s, const char *id)
{
    int64_t seq = -1;

    s->ops->get_exec(s, id, seq_cb, &seq, NULL);
    return seq;
}

static inline const char *read_steps(struct store *s, const char *id, struct out *o)
{
    s->ops->list_steps(s, id, step_cb, out_reset(o), NULL);
    return o->buf;
}

static inline const char *read_history(struct store *s, const char *id, struct out *o)
{
    s->ops->list_history(s, id, 0, 0, history_cb, out_reset(o), NULL);
    return o->buf;
}

static inline int list_timers(struct store *s, store_timer_cb cb, void *ud, struct wfo_error *err)
{
#ifdef STORE_SHARDS
    return s->ops->list_timers(s, STORE_ALL_SHARDS, INT64_MIN, INT64_MAX, cb, ud, err);
#else
    return s->ops->list_timers(s, cb, ud, err);
#endif
}

static inline int list_tasks(struct store *s, store_task_cb cb, void *ud, struct wfo_error *err)
{
#ifdef STORE_SHARDS
    return s->ops->list_tasks(s, STORE_ALL_SHARDS, cb, ud, err);
#else
    return s->ops->list_tasks(s, cb, ud, err);
#endif
}

static inline int list_active(struct store *s, store_exec_cb cb, void *ud, struct wfo_error *err)
{
#ifdef STORE_SHARDS
    return s->ops->list_active_execs(s, STORE_ALL_SHARDS, cb, ud, err);
#else
    return s->ops->list_active_execs(s, cb, ud, err);
#endif
}

static inline const char *read_timers(struct store *s, struct out *o)
{
    list_timers(s, timer_cb, out_reset(o), NULL);
    return o->buf;
}

static inline const char *read_tasks(struct store *s, struct out *o)
{
    list_tasks(s, task_cb, out_reset(o), NULL);
    return o->buf;
}

/* The ids list_execs gives for f. */
static inline const char *read_list(struct store *s, const struct store_exec_filter *f,
                                    struct out *o)
{
    struct wfo_error err = WFO_ERROR_INIT;

    if (s->ops->list_execs(s, f, exec_id_cb, out_reset(o), &err))
        out_add(o, "error: %s", err.message);
    return o->buf;
}

/* Newlines to ';', so that a multi-line value fits in one TAP line. */
static inline const char *oneline(const char *s)
{
    static char buf[4096];

    size_t n = strnlen(s, sizeof(buf) - 1);

    memcpy(buf, s, n);
    buf[n] = '\0';
    for (char *p = buf; *p; p++)
        if (*p == '\n')
            *p = ';';
    return buf;
}

/* ---- the runner ---- */

static inline int suite_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static inline void suite_case(const struct tap_case *c)
{
    if (setjmp(suite_stop) == 0)
        c->fn();
    else
        printf("# %s: %s: stopped\n", B->name, c->name);
}

/* Runs every TEST once per back end named in argv (all when none). */
static inline int suite_run(int argc, char **argv)
{
    struct timespec t0, t1;

    snprintf(suite_dir, sizeof(suite_dir), "/tmp/wfo-store-suite-XXXXXX");
    snprintf(suite_pg_run, sizeof(suite_pg_run), "%ld", (long)getpid());
    if (!mkdtemp(suite_dir)) {
        perror("mkdtemp");
        return 2;
    }
    unsetenv("WFO_STORE_FAULTS");
    for (size_t k = 0; k < sizeof(suite_backends) / sizeof(suite_backends[0]); k++) {
        int chosen = argc < 2;
        for (int a = 1; a < argc; a++)
            chosen |= strcmp(argv[a], suite_backends[k].name) == 0;
        if (!chosen)
            continue;
        B = &suite_backends[k];
        if (!B->prefix && !getenv("WFO_TEST_PG")) {
            if (argc < 2) {
                printf("# back end %s: skipped ($WFO_TEST_PG names no server)\n", B->name);
                continue;
            }
            ok(0, "back end %s: $WFO_TEST_PG names no server (tests/pg/pg.sh start DIR)", B->name);
            continue;
        }
        int count0 = tap_count, failed0 = tap_failed;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (int i = 0; i < tap_ncases; i++) {
            printf("# %s: %s\n", B->name, tap_cases[i].name);
            suite_case(&tap_cases[i]);
            suite_strs_free();
            fflush(stdout);
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        printf("# back end %s: %d passed, %d failed, %.2f s\n", B->name,
               (tap_count - count0) - (tap_failed - failed0), tap_failed - failed0,
               (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    }
    suite_pg_drop_all();
    printf("1..%d\n", tap_count);
    nftw(suite_dir, suite_rm, 16, FTW_DEPTH | FTW_PHYS);
    return tap_failed ? 1 : 0;
}

#endif
