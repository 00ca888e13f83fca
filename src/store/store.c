/*
 * store.c - the back-end-independent part of the store (store.h): the table
 * of back ends chosen by URL scheme, store_open/store_close, and the growable
 * batch that a back end's apply() writes in one transaction.
 * docs/implementation/database_optimization.md explains the store.
 */
#include "common/compat.h"

#include <ctype.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "common/util.h"

/* Every back end, in the order they are asked whether a URL is theirs.
 * SQLite accepts bare paths, so schemes with their own back end come
 * before it. */
static const struct store_ops *const store_backends[] = {
    &store_fault_ops,
    &store_postgres_ops,
    &store_sqlite_ops,
};

const struct store_ops *store_find(const char *url)
{
    if (!url)
        return NULL;
    for (size_t i = 0; i < WFO_ARRAY_SIZE(store_backends); i++)
        if (store_backends[i]->accepts(url))
            return store_backends[i];
    return NULL;
}

/* The length of url's scheme ("postgres" in postgres://...), 0 when none.
 * Error messages name the scheme only: the rest of a URL may hold a
 * password. */
static size_t store_scheme_len(const char *url)
{
    size_t n = 0;

    if (!isalpha((unsigned char)url[0]))
        return 0;
    while (isalnum((unsigned char)url[n]) || url[n] == '+' || url[n] == '-' || url[n] == '.')
        n++;
    return url[n] == ':' ? n : 0;
}

int store_url_check(const char *url, struct wfo_error *err)
{
    if (!url || !*url)
        return wfo_error_set(err, WFO_EINVAL, "store url is empty");
    if (!store_find(url)) {
        size_t n = store_scheme_len(url);
        return wfo_error_set(err, WFO_EINVAL, "store url scheme '%.*s' has no back end",
                             (int)(n > 64 ? 64 : n), url);
    }
    return 0;
}

int store_open(const char *url, struct store **out, struct wfo_error *err)
{
    int rc;

    *out = NULL;
    if ((rc = store_url_check(url, err)) < 0)
        return rc;
    const struct store_ops *ops = store_find(url);
    rc = ops->open(url, out, err);
    if (rc == 0)
        wfo_assert(*out && (*out)->ops == ops);
    return rc;
}

void store_close(struct store *s)
{
    if (s)
        s->ops->close(s);
}

void store_batch_init(struct store_batch *b)
{
    memset(b, 0, sizeof(*b));
}

void store_batch_reset(struct store_batch *b)
{
    b->n_execs = 0;
    b->n_steps = 0;
    b->n_history = 0;
    b->n_timers = 0;
    b->n_timer_dels = 0;
    b->n_tasks = 0;
    b->n_task_dels = 0;
    b->n_exec_dels = 0;
    b->n_events = 0;
    b->n_consumes = 0;
    b->n_signal_dels = 0;
    b->n_outbox = 0;
}

void store_batch_release(struct store_batch *b)
{
    free(b->execs);
    free(b->steps);
    free(b->history);
    free(b->timers);
    free(b->timer_dels);
    free(b->tasks);
    free(b->task_dels);
    free(b->exec_dels);
    free(b->events);
    free(b->consumes);
    free(b->signal_dels);
    free(b->outbox);
    store_batch_init(b);
}

int store_batch_empty(const struct store_batch *b)
{
    return b->n_execs == 0 && b->n_steps == 0 && b->n_history == 0 && b->n_timers == 0 &&
           b->n_timer_dels == 0 && b->n_tasks == 0 && b->n_task_dels == 0 && b->n_exec_dels == 0 &&
           b->n_events == 0 && b->n_consumes == 0 && b->n_signal_dels == 0 && b->n_outbox == 0;
}

/* Makes room for one more element of size bytes in arr (n used, *alloc
 * allocated), returning the array, which may have moved. */
static void *batch_grow(void *arr, int n, int *alloc, size_t size)
{
    if (n < *alloc)
        return arr;
    wfo_assert(*alloc <= INT_MAX / 2);
    *alloc = *alloc ? *alloc * 2 : 16;
    return wfo_realloc(arr, (size_t)*alloc * size);
}

/* Appends a zeroed slot to one of the batch's arrays and returns it. */
#define BATCH_PUSH(b, arr, n, alloc)                                                               \
    ((b)->arr = batch_grow((b)->arr, (b)->n, &(b)->alloc, sizeof(*(b)->arr)),                      \
     memset(&(b)->arr[(b)->n], 0, sizeof(*(b)->arr)), &(b)->arr[(b)->n++])

struct store_exec *store_batch_exec(struct store_batch *b)
{
    return BATCH_PUSH(b, execs, n_execs, alloc_execs);
}

struct store_step *store_batch_step(struct store_batch *b)
{
    return BATCH_PUSH(b, steps, n_steps, alloc_steps);
}

struct store_history *store_batch_history(struct store_batch *b)
{
    return BATCH_PUSH(b, history, n_history, alloc_history);
}

struct store_timer *store_batch_timer(struct store_batch *b)
{
    return BATCH_PUSH(b, timers, n_timers, alloc_timers);
}

void store_batch_timer_del(struct store_batch *b, const char *exec_id, const char *id)
{
    struct store_del *d = BATCH_PUSH(b, timer_dels, n_timer_dels, alloc_timer_dels);
    d->id = id;
    d->exec_id = exec_id;
}

struct store_task *store_batch_task(struct store_batch *b)
{
    return BATCH_PUSH(b, tasks, n_tasks, alloc_tasks);
}

void store_batch_task_del(struct store_batch *b, const char *exec_id, const char *id)
{
    struct store_del *d = BATCH_PUSH(b, task_dels, n_task_dels, alloc_task_dels);
    d->id = id;
    d->exec_id = exec_id;
}

void store_batch_drop_leases(struct store_batch *b)
{
    int k = 0;
    for (int i = 0; i < b->n_tasks; i++) {
        struct store_task *t = &b->tasks[i];
        int gone = 0;
        for (int j = 0; t->lease_only && j < b->n_task_dels && !gone; j++)
            gone = strcmp(b->task_dels[j].id, t->id) == 0;
        if (!gone)
            b->tasks[k++] = *t;
    }
    b->n_tasks = k;
}

void store_batch_exec_del(struct store_batch *b, const char *id)
{
    *BATCH_PUSH(b, exec_dels, n_exec_dels, alloc_exec_dels) = id;
}

struct store_event *store_batch_event(struct store_batch *b)
{
    return BATCH_PUSH(b, events, n_events, alloc_events);
}

void store_batch_consume(struct store_batch *b, const char *exec_id, const char *event_id)
{
    struct store_del *d = BATCH_PUSH(b, consumes, n_consumes, alloc_consumes);
    d->id = event_id;
    d->exec_id = exec_id;
}

void store_batch_signal_del(struct store_batch *b, const char *exec_id, const char *id)
{
    struct store_del *d = BATCH_PUSH(b, signal_dels, n_signal_dels, alloc_signal_dels);
    d->id = id;
    d->exec_id = exec_id;
}

struct store_outbox *store_batch_outbox(struct store_batch *b)
{
    return BATCH_PUSH(b, outbox, n_outbox, alloc_outbox);
}

/* FNV-1a over the id's bytes: stable across builds and back ends, which is
 * what a stored partitioning needs. */
int store_shard_of(const char *exec_id)
{
    uint32_t h = 2166136261u;

    for (const unsigned char *p = (const unsigned char *)(exec_id ? exec_id : ""); *p; p++)
        h = (h ^ *p) * 16777619u;
    return (int)(h % STORE_SHARDS);
}

/* The shard bit of a row's execution; rows of one execution are together
 * in a batch and share its id pointer, so the last one is remembered. */
struct shard_memo {
    const char *id;
    store_shardset bit;
};

static store_shardset shard_bit(struct shard_memo *m, const char *exec_id)
{
    if (exec_id != m->id) {
        m->id = exec_id;
        m->bit = (store_shardset)1 << store_shard_of(exec_id);
    }
    return m->bit;
}

store_shardset store_batch_shards(const struct store_batch *b)
{
    struct shard_memo m = {NULL, (store_shardset)1 << store_shard_of(NULL)};
    store_shardset s = 0;
    int i;

    for (i = 0; i < b->n_execs; i++)
        s |= shard_bit(&m, b->execs[i].id);
    for (i = 0; i < b->n_steps; i++)
        s |= shard_bit(&m, b->steps[i].exec_id);
    for (i = 0; i < b->n_history; i++)
        s |= shard_bit(&m, b->history[i].exec_id);
    for (i = 0; i < b->n_timers; i++)
        s |= shard_bit(&m, b->timers[i].exec_id);
    for (i = 0; i < b->n_timer_dels; i++)
        s |= shard_bit(&m, b->timer_dels[i].exec_id);
    for (i = 0; i < b->n_tasks; i++)
        s |= shard_bit(&m, b->tasks[i].exec_id);
    for (i = 0; i < b->n_task_dels; i++)
        s |= shard_bit(&m, b->task_dels[i].exec_id);
    for (i = 0; i < b->n_exec_dels; i++)
        s |= shard_bit(&m, b->exec_dels[i]);
    for (i = 0; i < b->n_consumes; i++)
        s |= shard_bit(&m, b->consumes[i].exec_id);
    for (i = 0; i < b->n_signal_dels; i++)
        s |= shard_bit(&m, b->signal_dels[i].exec_id);
    for (i = 0; i < b->n_outbox; i++)
        if (b->outbox[i].exec_id)
            s |= shard_bit(&m, b->outbox[i].exec_id);
    return s;
}
