/*
 * test_engine_check.c - engine_check() (core/engine.c, check.h) on an
 * engine whose state is broken on purpose, one invariant at a time: each
 * must be named. The engine is made but not launched, so no thread
 * touches what the test changes.
 */
#include "common/compat.h"

#include <string.h>

#include "core/engine_int.h"
#include "../tap.h"

static struct wfo_engine *engine(void)
{
    struct wfo_engine_options opt = {.db_url = "sqlite::memory:"};
    struct wfo_engine *e = NULL;
    struct wfo_error err = WFO_ERROR_INIT;
    int rc = wfo_engine_new(&opt, &e, &err);
    is_int(rc, 0, "engine: %s", err.message);
    return e;
}

static const char *check(struct wfo_engine *e, char *why, size_t n)
{
    why[0] = '\0';
    return engine_check(e, NULL, why, n);
}

TEST(holds_on_a_new_engine)
{
    struct wfo_engine *e = engine();
    char why[256];
    const char *name = check(e, why, sizeof(why));
    ok(name == NULL, "nothing broken (%s %s)", name ? name : "", why);
    wfo_engine_free(e);
}

TEST(e1_jobs_made_not_queued)
{
    struct wfo_engine *e = engine();
    char why[256];
    e->n_staged = 2; /* as if after_commit had not flushed them */
    const char *name = check(e, why, sizeof(why));
    ok(name && !strcmp(name, "E1") && strstr(why, "not queued"), "E1: %s", why);
    e->n_staged = 0;
    ok(check(e, why, sizeof(why)) == NULL, "flushed: holds");
    wfo_engine_free(e);
}

TEST(e2_a_failed_commit_goes_on)
{
    struct wfo_engine *e = engine();
    char why[256];
    struct round *r = &e->rounds[1];
    r->busy = r->done = 1;
    r->rc = WFO_ESTORE;
    const char *name = check(e, why, sizeof(why));
    ok(name && !strcmp(name, "E2"), "E2: %s", why);
    e->failed = 1;
    name = check(e, why, sizeof(why));
    ok(!name || strcmp(name, "E2") != 0, "not once the engine has failed");
    r->busy = r->done = 0;
    r->rc = 0;
    e->failed = 0;
    wfo_engine_free(e);
}

TEST(e4_three_rounds_busy)
{
    struct wfo_engine *e = engine();
    char why[256];
    for (int i = 0; i < 3; i++)
        e->rounds[i].busy = 1;
    const char *name = check(e, why, sizeof(why));
    ok(name && !strcmp(name, "E4"), "E4: %s", why);
    for (int i = 0; i < 3; i++)
        e->rounds[i].busy = 0;
    wfo_engine_free(e);
}

TEST(e5_kept_work_not_counted)
{
    struct wfo_engine *e = engine();
    char why[256];
    struct cmd *fake = (struct cmd *)1; /* only compared with NULL */
    e->results_kept = fake;
    e->stats.read_retries = 0;
    const char *name = check(e, why, sizeof(why));
    ok(name && !strcmp(name, "E5"), "E5: %s", why);
    e->stats.read_retries = 1;
    ok(check(e, why, sizeof(why)) == NULL, "counted: holds");
    e->results_kept = NULL;
    wfo_engine_free(e);
}

TEST(e6_the_timer_heap)
{
    struct wfo_engine *e = engine();
    char why[256];
    struct tentry a = {.id = "a", .due = 200}, b = {.id = "b", .due = 100};
    struct tentry *heap[2] = {&a, &b};
    struct tentry **old = e->heap;
    int old_n = e->n_heap;
    e->heap = heap;
    e->n_heap = 2;
    a.dead = b.dead = 1; /* dead entries need not be armed */
    const char *name = check(e, why, sizeof(why));
    ok(name && !strcmp(name, "E6") && strstr(why, "out of order"), "E6 order: %s", why);
    heap[0] = &b;
    heap[1] = &a;
    ok(check(e, why, sizeof(why)) == NULL, "in order: holds");
    b.dead = 0;
    name = check(e, why, sizeof(why));
    ok(name && !strcmp(name, "E6") && strstr(why, "not armed"), "E6 armed: %s", why);
    b.dead = 1;
    a.dead = 0;
    a.due = e->timer_horizon + 2 * TIMER_WINDOW_MS;
    name = check(e, why, sizeof(why));
    ok(name && !strcmp(name, "E6") && strstr(why, "horizon"), "E6 horizon: %s", why);
    e->heap = old;
    e->n_heap = old_n;
    wfo_engine_free(e);
}

TEST(e7_another_owner)
{
    struct wfo_engine *e = engine();
    char why[256];
    struct round *r = e->cur == &e->rounds[0] ? &e->rounds[1] : &e->rounds[0];
    const char *owner = r->batch.owner;
    r->busy = 1;
    r->batch.owner = "someone else";
    const char *name = check(e, why, sizeof(why));
    ok(name && !strcmp(name, "E7"), "E7: %s", why);
    r->batch.owner = e->owner;
    ok(check(e, why, sizeof(why)) == NULL, "this engine's: holds");
    r->batch.owner = owner;
    r->busy = 0;
    wfo_engine_free(e);
}

int main(void)
{
    return tap_run();
}
