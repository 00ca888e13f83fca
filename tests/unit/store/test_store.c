/*
 * test_store.c - unit tests of src/store/store.c, the back-end-independent
 * part of the store: the back end chosen by URL scheme (and the error for
 * a scheme without one, naming only the scheme), opening a memory store,
 * the batch (growing, zeroed slots, reset, empty, release) and the shard
 * of an execution id (FNV-1a: fixed values, since it is stored).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "common/util.h"
#include "../tap.h"
#include "common/banned.h"

TEST(backend_by_scheme)
{
    ok(store_find("sqlite::memory:") == &store_sqlite_ops, "sqlite: is sqlite");
    ok(store_find("/tmp/x.db") == &store_sqlite_ops, "a bare path is sqlite");
    ok(store_find("fault:sqlite::memory:") == &store_fault_ops, "fault: is the fault wrapper");
    ok(store_find("postgres://u@h/db") == &store_postgres_ops, "postgres:// is postgres");
    ok(store_find("postgresql:///db?host=/tmp") == &store_postgres_ops,
       "postgresql:// is postgres");
    ok(store_find("postgres:x") == NULL, "postgres: without // is no URL of any back end");
    ok(store_find("mysql://u:p@h/db") == NULL, "mysql: none");
    ok(store_find(NULL) == NULL, "NULL: none");

    struct store *s = (struct store *)1;
    struct wfo_error err = WFO_ERROR_INIT;
    is_int(store_open("", &s, &err), WFO_EINVAL, "empty url");
    ok(s == NULL, "*out cleared");
    is_str(err.message, "store url is empty", "its message");
    is_int(store_open("mysql://user:secret@host/db", &s, &err), WFO_EINVAL, "unknown scheme");
    is_str(err.message, "store url scheme 'mysql' has no back end", "names the scheme only");
    ok(strstr(err.message, "secret") == NULL, "never the password");

    /* Port 1 of the loopback: refused at once. The message names the
     * store without its password. */
    is_int(store_open("postgres://user:secret@127.0.0.1:1/db?password=secret2", &s, &err),
           WFO_ESTORE, "a postgres server that is not there: WFO_ESTORE");
    ok(s == NULL, "and no store");
    ok(strstr(err.message, "postgres://user:***@127.0.0.1:1/db?password=***") != NULL,
       "names the store: %s", err.message);
    ok(strstr(err.message, "secret") == NULL, "never the password");

    is_int(store_open("sqlite::memory:", &s, &err), 0, "a memory store opens: %s", err.message);
    ok(s && s->ops == &store_sqlite_ops, "with its back end's ops");
    store_close(s);
    store_close(NULL); /* no-op */
}

TEST(batch)
{
    struct store_batch b;
    store_batch_init(&b);
    ok(store_batch_empty(&b), "new: empty");
    int zeroed = 1;
    for (int i = 0; i < 100; i++) {
        struct store_step *st = store_batch_step(&b);
        zeroed &= st->exec_id == NULL && st->path == NULL && st->ord == 0;
        st->exec_id = "e";
        st->ord = i;
    }
    ok(zeroed, "each new slot zeroed");
    is_int(b.n_steps, 100, "100 steps");
    int in_order = 1;
    for (int i = 0; i < 100; i++)
        in_order &= b.steps[i].ord == i;
    ok(in_order, "kept in order across growth");
    ok(!store_batch_empty(&b), "not empty");
    store_batch_reset(&b);
    ok(store_batch_empty(&b), "reset: empty");
    ok(b.steps != NULL, "reset keeps the memory");
    struct store_step *st = store_batch_step(&b);
    is_int(st->ord, 0, "a reused slot is zeroed");
    store_batch_reset(&b);

    store_batch_exec(&b)->id = "a";
    ok(!store_batch_empty(&b), "an exec: not empty");
    store_batch_reset(&b);
    store_batch_history(&b)->exec_id = "a";
    ok(!store_batch_empty(&b), "a history entry: not empty");
    store_batch_reset(&b);
    store_batch_timer(&b)->exec_id = "a";
    ok(!store_batch_empty(&b), "a timer: not empty");
    store_batch_reset(&b);
    store_batch_timer_del(&b, "a", "t1");
    is_str(b.timer_dels[0].id, "t1", "timer del id");
    is_str(b.timer_dels[0].exec_id, "a", "timer del exec id");
    store_batch_reset(&b);
    store_batch_task(&b)->exec_id = "a";
    ok(!store_batch_empty(&b), "a task: not empty");
    store_batch_reset(&b);
    store_batch_task_del(&b, "a", "a.1");
    is_str(b.task_dels[0].id, "a.1", "task del id");
    store_batch_reset(&b);
    store_batch_exec_del(&b, "gone");
    is_str(b.exec_dels[0], "gone", "exec del");
    ok(!store_batch_empty(&b), "an exec deletion: not empty");
    store_batch_release(&b);
    ok(b.steps == NULL && b.n_steps == 0 && b.exec_dels == NULL, "released: zeroed");
}

/* A lease of a row the same batch deletes is not written; every other
 * put stays, in order. */
TEST(drop_leases)
{
    struct store_batch b;
    store_batch_init(&b);
    const char *ids[] = {"a.1", "b.1", "c.1", "a.2", "d.1"};
    int lease[] = {1, 1, 0, 1, 1};
    for (int i = 0; i < 5; i++) {
        struct store_task *t = store_batch_task(&b);
        t->id = ids[i];
        t->lease_only = lease[i];
    }
    store_batch_task_del(&b, "a", "a.1"); /* its lease goes */
    store_batch_task_del(&b, "c", "c.1"); /* a full put of c.1 stays */
    store_batch_task_del(&b, "d", "d.1");
    store_batch_drop_leases(&b);
    is_int(b.n_tasks, 3, "two leases dropped");
    is_str(b.tasks[0].id, "b.1", "a lease of a row kept stays");
    is_str(b.tasks[1].id, "c.1", "a full put stays, even of a deleted row");
    is_str(b.tasks[2].id, "a.2", "another attempt's lease stays");
    is_int(b.n_task_dels, 3, "the deletions stay");
    store_batch_reset(&b);
    store_batch_drop_leases(&b);
    is_int(b.n_tasks, 0, "an empty batch stays empty");
    store_batch_release(&b);
}

TEST(shards)
{
    /* stored: these values never change (FNV-1a 32-bit, mod 16) */
    is_int(STORE_SHARDS, 16, "16 shards");
    is_int(store_shard_of(""), 5, "\"\"");
    is_int(store_shard_of(NULL), 5, "NULL is \"\"");
    is_int(store_shard_of("abc"), 11, "abc");
    is_int(store_shard_of("exec-1"), 6, "exec-1");
    is_int(store_shard_of("0f8e2a6c-1b7e-4a43-9a39-8f6b0e3f2d11"), 7, "a uuid");
    int seen[STORE_SHARDS] = {0}, used = 0;
    char id[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(id, sizeof(id), "exec-%d", i);
        seen[store_shard_of(id)]++;
    }
    for (int i = 0; i < STORE_SHARDS; i++)
        used += seen[i] > 20;
    is_int(used, STORE_SHARDS, "1000 ids spread over every shard");

    struct store_batch b;
    store_batch_init(&b);
    is_int(store_batch_shards(&b), 0, "empty batch: no shard");
    store_batch_exec(&b)->id = "abc";
    store_batch_step(&b)->exec_id = "abc";
    store_batch_history(&b)->exec_id = "exec-1";
    is_int(store_batch_shards(&b), (1u << 11) | (1u << 6), "the shards of its rows");
    store_batch_exec_del(&b, "0f8e2a6c-1b7e-4a43-9a39-8f6b0e3f2d11");
    is_int(store_batch_shards(&b), (1u << 11) | (1u << 6) | (1u << 7), "deletions count");
    store_batch_release(&b);
}

int main(void)
{
    return tap_run();
}
