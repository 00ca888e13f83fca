/*
 * test_taskq.c - unit tests of src/core/taskq.c: the ready queues (FIFO
 * per namespace and queue, a long poll woken by an add or a stop), leases
 * (checked on completion and heartbeat: current, stale, unknown; T2's MAC
 * accepts an old lease of the same attempt once the task is ready again,
 * never one of another attempt or another key), lease expiry (delivered
 * again, or failed when the step has a heartbeat timeout or was asked to
 * stop), heartbeat, cancel, unlease, relet at recovery, and the queue
 * listing. The queue is in memory: no store needed. Last, the engine's
 * half of the worker protocol (engine_task_*) on an engine with an
 * in-memory SQLite store: a result is taken only with the current lease,
 * and the errors say which case it was (stale 409, unknown 404).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wfo/wfo.h"
#include "core/taskq.h"
#include "core/engine.h"
#include "core/query.h"
#include "common/duration.h"
#include "common/json.h"
#include "common/util.h"
#include "../tap.h"
#include "common/banned.h"

/* A queue with a fixed server key (as the store would give it). */
static void setup(struct taskq *q, int64_t lease_ms, unsigned char key_byte)
{
    taskq_init(q, lease_ms);
    memset(q->key, key_byte, sizeof(q->key));
}

/* Adds the task of attempt token of step path on queue. */
static struct task *add(struct taskq *q, const char *ns, const char *queue, const char *exec_id,
                        const char *path, int64_t token)
{
    json_t *input = json_pack("{s:s, s:I}", "step", path, "token", (json_int_t)token);
    struct task *t = task_new(exec_id, ns, queue, path, token, 1, input);
    json_decref(input);
    taskq_add(q, t);
    return t;
}

/* One poll of one queue without waiting: the JSON array of tasks. */
static json_t *poll1(struct taskq *q, const char *ns, const char *queue, int max, int64_t wait_ms)
{
    const char *queues[] = {queue};
    return taskq_poll(q, ns, queues, 1, "w1", max, wait_ms, NULL, NULL);
}

/* A copy of field key of the i-th polled task. */
static void field(json_t *tasks, size_t i, const char *key, char *out, size_t size)
{
    const char *v = wfo_json_str(json_array_get(tasks, i), key);
    snprintf(out, size, "%s", v ? v : "");
}

TEST(task_id_round_trip)
{
    char id[TASKQ_ID_SIZE], exec_id[WFO_EXEC_ID_SIZE];
    int64_t token = 0;
    taskq_id(id, "0f1e-exec", 42);
    is_str(id, "0f1e-exec.42", "id is EXECID.TOKEN");
    is_int(taskq_id_parse(id, exec_id, sizeof(exec_id), &token), 0, "parses");
    is_str(exec_id, "0f1e-exec", "execution id back");
    is_int(token, 42, "token back");
    taskq_id(id, "a.b", 7);
    is_int(taskq_id_parse(id, exec_id, sizeof(exec_id), &token), 0, "a dotted execution id");
    is_str(exec_id, "a.b", "splits at the last dot");
    is_int(token, 7, "its token");
    is_int(taskq_id_parse("nodot", exec_id, sizeof(exec_id), &token), WFO_ENOTFOUND, "no dot");
    is_int(taskq_id_parse(".5", exec_id, sizeof(exec_id), &token), WFO_ENOTFOUND,
           "no execution id");
    is_int(taskq_id_parse("x.abc", exec_id, sizeof(exec_id), &token), WFO_ENOTFOUND,
           "token not a number");
    is_int(taskq_id_parse("abcdef.1", exec_id, 4, &token), WFO_ENOTFOUND,
           "execution id longer than the buffer");
}

TEST(poll_is_fifo_and_leases)
{
    struct taskq q;
    setup(&q, 5000, 1);
    add(&q, "default", "q", "e1", "a", 1);
    add(&q, "default", "q", "e2", "b", 2);
    add(&q, "default", "q", "e3", "c", 3);
    is_int(q.ready, 3, "three ready");

    int64_t before = wfo_now_ms();
    json_t *got = poll1(&q, "default", "q", 2, 0);
    is_int(json_array_size(got), 2, "max 2 taken");
    json_t *t0 = json_array_get(got, 0);
    is_str(wfo_json_str(t0, "task_id"), "e1.1", "first added first");
    is_str(wfo_json_str(json_array_get(got, 1), "task_id"), "e2.2", "then the second");
    is_str(wfo_json_str(t0, "queue"), "q", "queue");
    is_str(wfo_json_str(t0, "execution_id"), "e1", "execution_id");
    is_str(wfo_json_str(t0, "step"), "a", "step");
    is_int(json_integer_value(json_object_get(t0, "attempt")), 1, "attempt");
    is_str(wfo_json_str(json_object_get(t0, "input"), "step"), "a", "input");
    is_str(wfo_json_str(t0, "idempotency_key"), "e1/a", "idempotency key EXEC/STEP");
    is_int(json_integer_value(json_object_get(t0, "lease_ms")), 5000, "lease_ms is the queue's");
    ok(json_is_null(json_object_get(t0, "heartbeat_timeout")), "no heartbeat timeout");
    ok(json_is_null(json_object_get(t0, "deadline")), "no deadline");
    const char *lease = wfo_json_str(t0, "lease");
    is_int(strlen(lease ? lease : ""), TASKQ_LEASE_SIZE - 1, "lease is 64 hex digits");
    ok(strcmp(lease, wfo_json_str(json_array_get(got, 1), "lease")) != 0, "leases differ");
    is_int(q.ready, 1, "one left ready");
    is_int(q.leased, 2, "two leased");

    struct task *t = wfo_map_get(&q.tasks, "e1.1");
    ok(t != NULL, "leased task still held (T1)");
    is_str(t->lease, lease, "task holds its lease");
    is_str(t->worker, "w1", "and its worker");
    ok(t->leased_until >= before + 5000 && t->leased_until <= wfo_now_ms() + 5000,
       "leased until now + lease_ms");

    json_t *rest = poll1(&q, "default", "q", 10, 0);
    is_int(json_array_size(rest), 1, "the third");
    is_str(wfo_json_str(json_array_get(rest, 0), "task_id"), "e3.3", "is e3.3");
    json_t *none = poll1(&q, "default", "q", 10, 0);
    is_int(json_array_size(none), 0, "nothing more");
    json_decref(got);
    json_decref(rest);
    json_decref(none);
    taskq_release(&q);
}

TEST(poll_sees_only_its_namespace_and_queues)
{
    struct taskq q;
    setup(&q, 5000, 1);
    add(&q, "other", "q", "e1", "a", 1);
    add(&q, "default", "r", "e2", "a", 1);
    add(&q, "default", "s", "e3", "a", 1);
    json_t *got = poll1(&q, "default", "q", 10, 0);
    is_int(json_array_size(got), 0, "another namespace's queue q is not ours");
    json_decref(got);
    const char *queues[] = {"s", "r"};
    got = taskq_poll(&q, "default", queues, 2, "w", 10, 0, NULL, NULL);
    is_int(json_array_size(got), 2, "two queues polled at once");
    is_str(wfo_json_str(json_array_get(got, 0), "task_id"), "e3.1", "in the order asked");
    is_str(wfo_json_str(json_array_get(got, 1), "task_id"), "e2.1", "then the next queue");
    json_decref(got);
    is_int(q.ready, 1, "the other namespace's task is still ready");
    taskq_release(&q);
}

TEST(take_checks_the_lease)
{
    struct taskq q;
    setup(&q, 5000, 1);
    add(&q, "default", "q", "e1", "a", 1);
    json_t *got = poll1(&q, "default", "q", 1, 0);
    char id[TASKQ_ID_SIZE], lease[TASKQ_LEASE_SIZE], wrong[TASKQ_LEASE_SIZE];
    field(got, 0, "task_id", id, sizeof(id));
    field(got, 0, "lease", lease, sizeof(lease));
    json_decref(got);
    snprintf(wrong, sizeof(wrong), "%s", lease);
    wrong[0] = wrong[0] == '0' ? '1' : '0';

    struct task *t = NULL;
    is_int(taskq_take(&q, "default", id, wrong, &t), TQ_STALE, "another lease: stale");
    is_int(taskq_take(&q, "default", id, "short", &t), TQ_STALE, "a short lease: stale");
    is_int(taskq_take(&q, "default", id, NULL, &t), TQ_STALE, "no lease: stale");
    is_int(taskq_take(&q, "other", id, lease, &t), TQ_UNKNOWN, "another namespace: unknown");
    is_int(taskq_take(&q, "default", "e9.1", lease, &t), TQ_UNKNOWN, "another id: unknown");
    ok(t == NULL || strcmp(t->id, id) == 0, "nothing handed out on failure");
    t = NULL;
    is_int(taskq_take(&q, "default", id, lease, &t), TQ_OK, "its lease: taken");
    ok(t != NULL && strcmp(t->id, "e1.1") == 0, "the task is handed over");
    is_int(q.leased, 0, "no longer leased");
    ok(wfo_map_get(&q.tasks, id) == NULL, "removed from the queue (T1)");
    struct task *again = NULL;
    is_int(taskq_take(&q, "default", id, lease, &again), TQ_UNKNOWN,
           "a second completion: unknown");
    task_free(t);
    taskq_release(&q);
}

TEST(heartbeat_extends_and_reports_cancel)
{
    struct taskq q;
    setup(&q, 5000, 1);
    add(&q, "default", "q", "e1", "a", 1);
    json_t *got = poll1(&q, "default", "q", 1, 0);
    char id[TASKQ_ID_SIZE], lease[TASKQ_LEASE_SIZE];
    field(got, 0, "task_id", id, sizeof(id));
    field(got, 0, "lease", lease, sizeof(lease));
    json_decref(got);

    struct task *t = wfo_map_get(&q.tasks, id);
    t->leased_until = 1; /* about to run out */
    int cancel = -1;
    is_int(taskq_heartbeat(&q, "default", id, lease, &cancel), TQ_OK, "heartbeat accepted");
    is_int(cancel, 0, "not asked to stop");
    ok(t->leased_until >= wfo_now_ms() + 4000, "lease extended by lease_ms");
    is_int(taskq_heartbeat(&q, "default", id, "x", &cancel), TQ_STALE, "wrong lease: stale");
    is_int(taskq_heartbeat(&q, "nsx", id, lease, &cancel), TQ_UNKNOWN, "other ns: unknown");

    is_int(taskq_cancel(&q, "e1", 1), 0, "a leased task is not dropped");
    is_int(taskq_heartbeat(&q, "default", id, lease, &cancel), TQ_OK, "still accepted");
    is_int(cancel, 1, "and says cancel_requested");
    struct task *k = NULL;
    is_int(taskq_take(&q, "default", id, lease, &k), TQ_OK, "its completion is still taken");
    task_free(k);
    taskq_release(&q);
}

TEST(cancel_drops_a_ready_task)
{
    struct taskq q;
    setup(&q, 5000, 1);
    add(&q, "default", "q", "e1", "a", 1);
    add(&q, "default", "q", "e2", "a", 1);
    is_int(taskq_cancel(&q, "e1", 1), 1, "dropped");
    is_int(taskq_cancel(&q, "e1", 1), 0, "gone: nothing to drop");
    is_int(taskq_cancel(&q, "e2", 9), 0, "another attempt: nothing to drop");
    is_int(q.ready, 1, "one ready");
    json_t *got = poll1(&q, "default", "q", 10, 0);
    is_int(json_array_size(got), 1, "only the other is handed out");
    is_str(wfo_json_str(json_array_get(got, 0), "task_id"), "e2.1", "e2.1");
    json_decref(got);
    taskq_release(&q);
}

TEST(add_same_id_replaces)
{
    struct taskq q;
    setup(&q, 5000, 1);
    add(&q, "default", "q", "e1", "a", 1);
    json_t *got = poll1(&q, "default", "q", 1, 0);
    json_decref(got);
    is_int(q.leased, 1, "leased");
    add(&q, "default", "q", "e1", "a", 1); /* recovery enqueues it again */
    is_int(q.leased, 0, "the old one is gone");
    is_int(q.ready, 1, "the new one is ready");
    is_int(q.tasks.len, 1, "one task held");
    taskq_release(&q);
}

TEST(expired_lease_is_delivered_again)
{
    struct taskq q;
    setup(&q, 5000, 1);
    add(&q, "default", "q", "e1", "a", 1);
    json_t *got = poll1(&q, "default", "q", 1, 0);
    char id[TASKQ_ID_SIZE], old[TASKQ_LEASE_SIZE], fresh[TASKQ_LEASE_SIZE];
    field(got, 0, "task_id", id, sizeof(id));
    field(got, 0, "lease", old, sizeof(old));
    json_decref(got);

    struct task *failed = (struct task *)1;
    struct task *t = wfo_map_get(&q.tasks, id);
    taskq_sweep(&q, t->leased_until - 1, &failed);
    ok(failed == NULL, "not yet expired: nothing failed");
    is_int(q.leased, 1, "still leased");
    is_int(q.expiries, 0, "no expiry");

    taskq_sweep(&q, t->leased_until, &failed);
    ok(failed == NULL, "expired without a heartbeat timeout: not failed");
    is_int(q.expiries, 1, "one expiry counted");
    is_int(q.ready, 1, "ready again");
    is_int(q.leased, 0, "not leased");
    is_str(t->lease, "", "its lease cleared (T1)");

    got = poll1(&q, "default", "q", 1, 0);
    is_int(json_array_size(got), 1, "handed out again");
    field(got, 0, "lease", fresh, sizeof(fresh));
    json_decref(got);
    ok(strcmp(old, fresh) != 0, "with a new lease");
    struct task *k = NULL;
    is_int(taskq_take(&q, "default", id, old, &k), TQ_STALE,
           "while leased again only the current lease counts (T2)");
    is_int(taskq_take(&q, "default", id, fresh, &k), TQ_OK, "the new lease completes it");
    task_free(k);
    taskq_release(&q);
}

TEST(old_lease_of_a_ready_attempt_completes_it)
{
    /* T2: once ready again, a lease this key issued for the attempt wins */
    struct taskq q;
    setup(&q, 5000, 1);
    add(&q, "default", "q", "e1", "a", 1);
    json_t *got = poll1(&q, "default", "q", 1, 0);
    char id[TASKQ_ID_SIZE], old[TASKQ_LEASE_SIZE];
    field(got, 0, "task_id", id, sizeof(id));
    field(got, 0, "lease", old, sizeof(old));
    json_decref(got);
    struct task *failed = NULL;
    taskq_sweep(&q, wfo_now_ms() + 60000, &failed);
    is_int(q.ready, 1, "ready again");

    char forged[TASKQ_LEASE_SIZE];
    snprintf(forged, sizeof(forged), "%s", old);
    forged[40] = forged[40] == 'a' ? 'b' : 'a'; /* the MAC half */
    struct task *k = NULL;
    is_int(taskq_take(&q, "default", id, forged, &k), TQ_STALE, "a bad MAC: stale");
    is_int(q.ready, 1, "still ready");
    is_int(taskq_take(&q, "default", id, old, &k), TQ_OK, "the old lease: taken");
    is_int(q.ready, 0, "no longer ready");
    is_int(q.leased, 0, "nor leased");
    task_free(k);

    /* a retry is a new attempt, a new task id: the old lease's MAC fails */
    add(&q, "default", "q", "e1", "a", 2);
    k = NULL;
    is_int(taskq_take(&q, "default", "e1.2", old, &k), TQ_STALE,
           "the lease of another attempt: stale");
    taskq_release(&q);
}

TEST(lease_of_another_key_never_matches)
{
    struct taskq a, b;
    setup(&a, 5000, 1);
    setup(&b, 5000, 2);
    add(&a, "default", "q", "e1", "a", 1);
    add(&b, "default", "q", "e1", "a", 1);
    json_t *got = poll1(&a, "default", "q", 1, 0);
    char lease[TASKQ_LEASE_SIZE];
    field(got, 0, "lease", lease, sizeof(lease));
    json_decref(got);
    struct task *k = NULL;
    is_int(taskq_take(&b, "default", "e1.1", lease, &k), TQ_STALE,
           "a lease of another store's key: stale");
    is_int(b.ready, 1, "b's task stays ready");
    taskq_release(&a);
    taskq_release(&b);
}

TEST(heartbeat_timeout_and_cancelled_fail_on_expiry)
{
    struct taskq q;
    setup(&q, 5000, 1);
    struct task *hb = add(&q, "default", "q", "e1", "a", 1);
    hb->heartbeat_ms = 300;
    add(&q, "default", "q", "e2", "a", 1);
    add(&q, "default", "q", "e3", "a", 1);
    json_t *got = poll1(&q, "default", "q", 3, 0);
    is_int(json_array_size(got), 3, "three leased");
    is_int(json_integer_value(json_object_get(json_array_get(got, 0), "lease_ms")), 300,
           "lease_ms is the heartbeat timeout");
    is_int(json_integer_value(json_object_get(json_array_get(got, 0), "heartbeat_timeout")), 300,
           "heartbeat_timeout");
    json_decref(got);
    is_int(taskq_cancel(&q, "e2", 1), 0, "e2 asked to stop");

    struct task *failed = NULL;
    taskq_sweep(&q, wfo_now_ms() + 60000, &failed);
    int n = 0, saw_e1 = 0, saw_e2 = 0;
    for (struct task *t = failed, *next; t; t = next) {
        next = t->next;
        n++;
        saw_e1 |= strcmp(t->id, "e1.1") == 0;
        saw_e2 |= strcmp(t->id, "e2.1") == 0;
        task_free(t);
    }
    is_int(n, 2, "two failed");
    ok(saw_e1, "the one with a heartbeat timeout");
    ok(saw_e2, "the one asked to stop");
    is_int(q.expiries, 3, "three expiries counted");
    is_int(q.tasks.len, 1, "one left");
    is_int(q.ready, 1, "ready again");
    is_int(q.leased, 0, "none leased");
    taskq_release(&q);
}

TEST(unlease_puts_it_first)
{
    struct taskq q;
    setup(&q, 5000, 1);
    add(&q, "default", "q", "e1", "a", 1);
    add(&q, "default", "q", "e2", "a", 1);
    json_t *got = poll1(&q, "default", "q", 1, 0);
    char id[TASKQ_ID_SIZE], lease[TASKQ_LEASE_SIZE];
    field(got, 0, "task_id", id, sizeof(id));
    field(got, 0, "lease", lease, sizeof(lease));
    json_decref(got);
    taskq_unlease(&q, id, "not-its-lease");
    is_int(q.leased, 1, "another lease: still leased");
    taskq_unlease(&q, id, lease);
    is_int(q.leased, 0, "its lease: unleased");
    is_int(q.ready, 2, "ready");
    got = poll1(&q, "default", "q", 1, 0);
    is_str(wfo_json_str(json_array_get(got, 0), "task_id"), "e1.1", "first in its queue");
    json_decref(got);
    taskq_release(&q);
}

TEST(relet_at_recovery)
{
    /* before the restart: a worker holds a lease of a */
    struct taskq before;
    setup(&before, 5000, 7);
    add(&before, "default", "q", "e1", "a", 1);
    json_t *got = poll1(&before, "default", "q", 1, 0);
    char lease[TASKQ_LEASE_SIZE];
    field(got, 0, "lease", lease, sizeof(lease));
    json_decref(got);
    taskq_release(&before);

    /* after: the same key (the store's), the task enqueued again and relet */
    struct taskq q;
    setup(&q, 5000, 7);
    add(&q, "default", "q", "e1", "a", 1);
    add(&q, "default", "q", "e2", "a", 1);
    taskq_relet(&q, "e1.1", "short", 99);
    is_int(q.leased, 0, "a lease of the wrong length is ignored");
    taskq_relet(&q, "e9.1", lease, 99);
    is_int(q.leased, 0, "an unknown id is ignored");
    int64_t until = wfo_now_ms() + 12345;
    taskq_relet(&q, "e1.1", lease, until);
    is_int(q.leased, 1, "relet: leased");
    is_int(q.ready, 1, "one ready");
    struct task *t = wfo_map_get(&q.tasks, "e1.1");
    is_str(t->lease, lease, "with the lease its row kept");
    is_int(t->leased_until, until, "until when its row said");
    is_str(t->worker, "", "worker unknown");
    got = poll1(&q, "default", "q", 10, 0);
    is_int(json_array_size(got), 1, "a relet task is not handed out");
    is_str(wfo_json_str(json_array_get(got, 0), "task_id"), "e2.1", "only the other");
    json_decref(got);

    int cancel = -1;
    is_int(taskq_heartbeat(&q, "default", "e1.1", lease, &cancel), TQ_OK,
           "the worker's heartbeat goes on");
    struct task *k = NULL;
    is_int(taskq_take(&q, "default", "e1.1", lease, &k), TQ_OK, "and it completes");
    task_free(k);
    taskq_release(&q);
}

struct adder {
    struct taskq *q;
    int delay_ms;
    int stop;
};

static void *add_later(void *arg)
{
    struct adder *a = arg;
    usleep((useconds_t)a->delay_ms * 1000);
    if (a->stop)
        taskq_stop(a->q);
    else
        add(a->q, "default", "q", "late", "a", 1);
    return NULL;
}

TEST(long_poll_wakes_on_add_and_stop)
{
    struct taskq q;
    setup(&q, 5000, 1);
    int64_t t0 = wfo_now_ms();
    json_t *got = poll1(&q, "default", "q", 1, 100);
    int64_t waited = wfo_now_ms() - t0;
    is_int(json_array_size(got), 0, "nothing came");
    ok(waited >= 90, "waited about wait_ms (%lld ms)", (long long)waited);
    json_decref(got);

    pthread_t th;
    struct adder a = {&q, 50, 0};
    t0 = wfo_now_ms();
    pthread_create(&th, NULL, add_later, &a);
    got = poll1(&q, "default", "q", 1, 10000);
    waited = wfo_now_ms() - t0;
    pthread_join(th, NULL);
    is_int(json_array_size(got), 1, "the task added meanwhile");
    is_str(wfo_json_str(json_array_get(got, 0), "task_id"), "late.1", "is late.1");
    ok(waited < 5000, "woken by the add (%lld ms)", (long long)waited);
    json_decref(got);

    struct adder s = {&q, 50, 1};
    t0 = wfo_now_ms();
    pthread_create(&th, NULL, add_later, &s);
    got = poll1(&q, "default", "q", 1, 10000);
    waited = wfo_now_ms() - t0;
    pthread_join(th, NULL);
    is_int(json_array_size(got), 0, "stopped: empty");
    ok(waited < 5000, "woken by the stop (%lld ms)", (long long)waited);
    json_decref(got);
    taskq_release(&q);
}

TEST(queues_listing)
{
    struct taskq q;
    setup(&q, 5000, 1);
    add(&q, "default", "b", "e1", "a", 1);
    add(&q, "default", "b", "e2", "a", 1);
    add(&q, "default", "a", "e3", "a", 1);
    add(&q, "other", "a", "e4", "a", 1);
    json_t *got = poll1(&q, "default", "b", 1, 0);
    json_decref(got);
    got = poll1(&q, "default", "polled-only", 1, 0);
    json_decref(got);

    int64_t now = wfo_now_ms();
    json_t *l = taskq_queues(&q, "default", 0, now);
    is_int(json_array_size(l), 3, "a, b and the polled one");
    json_t *a = json_array_get(l, 0), *b = json_array_get(l, 1), *p = json_array_get(l, 2);
    is_str(wfo_json_str(a, "name"), "a", "sorted by name");
    is_str(wfo_json_str(b, "name"), "b", "b second");
    is_str(wfo_json_str(p, "name"), "polled-only", "the polled queue third");
    is_int(json_integer_value(json_object_get(b, "ready")), 1, "b: one ready");
    is_int(json_integer_value(json_object_get(b, "leased")), 1, "b: one leased");
    is_int(json_array_size(json_object_get(b, "pollers")), 1, "b: one poller");
    is_str(wfo_json_str(json_array_get(json_object_get(b, "pollers"), 0), "worker"), "w1",
           "b: the poller's name");
    is_int(json_integer_value(json_object_get(a, "ready")), 1, "a: one ready (this namespace)");
    ok(json_object_get(a, "namespace") == NULL, "no namespace field for one namespace");
    json_decref(l);

    l = taskq_queues(&q, "default", 1, now);
    is_int(json_array_size(l), 2, "known only: the polled one is left out");
    json_decref(l);

    l = taskq_queues(&q, "default", 0, now + TASKQ_POLLER_TTL_MS + 1);
    is_int(json_array_size(l), 2, "a poller is forgotten after its TTL");
    json_decref(l);

    l = taskq_queues(&q, NULL, 0, now);
    is_int(json_array_size(l), 4, "every namespace");
    int found = 0;
    size_t i;
    json_t *e;
    json_array_foreach(l, i, e)
    {
        if (strcmp(wfo_json_str(e, "namespace"), "other") == 0) {
            found++;
            is_str(wfo_json_str(e, "name"), "a", "other's queue a");
            is_int(json_integer_value(json_object_get(e, "lease_expiries")), 0, "no expiries");
        }
    }
    is_int(found, 1, "other namespace listed with its name");
    json_decref(l);
    taskq_release(&q);
}

TEST(worker_protocol_through_the_engine)
{
    struct wfo_engine_options opt = {.runner_threads = 1};
    struct wfo_engine *e = NULL;
    struct wfo_error err = WFO_ERROR_INIT;
    is_int(wfo_engine_new(&opt, &e, &err), 0, "engine on a memory store: %s", err.message);
    is_int(wfo_engine_launch(e, &err), 0, "launched: %s", err.message);
    json_t *wf = json_pack("{s:s, s:[{s:s, s:s, s:s, s:s}]}", "name", "w", "steps", "name", "t",
                           "type", "task", "queue", "wq", "input", "${ .input }");
    is_int(engine_put_workflow(e, "default", wf, NULL, NULL, NULL, &err), 0, "workflow: %s",
           err.message);
    json_decref(wf);
    json_t *input = json_pack("{s:i}", "n", 7);
    struct engine_start_req q = {.ns = "default", .workflow = "w", .input = input};
    is_int(engine_start(e, &q, &err), 0, "started: %s", err.message);
    json_decref(input);
    char exec_id[WFO_EXEC_ID_SIZE];
    snprintf(exec_id, sizeof(exec_id), "%s", q.id_out ? q.id_out : "");
    free(q.id_out);

    const char *queues[] = {"wq"};
    json_t *tasks = NULL;
    is_int(engine_task_poll(e, "default", queues, 1, "w1", 1, 10000, NULL, &tasks, &err), 0,
           "polled");
    is_int(json_array_size(tasks), 1, "one task");
    char id[TASKQ_ID_SIZE], lease[TASKQ_LEASE_SIZE], wrong[TASKQ_LEASE_SIZE];
    field(tasks, 0, "task_id", id, sizeof(id));
    field(tasks, 0, "lease", lease, sizeof(lease));
    is_str(wfo_json_str(json_array_get(tasks, 0), "execution_id"), exec_id, "of the execution");
    is_int(json_integer_value(
               json_object_get(json_object_get(json_array_get(tasks, 0), "input"), "n")),
           7, "with its input");
    json_decref(tasks);
    char exec_of_id[WFO_EXEC_ID_SIZE];
    int64_t token = 0;
    is_int(taskq_id_parse(id, exec_of_id, sizeof(exec_of_id), &token), 0, "task id parses");
    is_str(exec_of_id, exec_id, "task id names the execution");
    snprintf(wrong, sizeof(wrong), "%s", lease);
    wrong[0] = wrong[0] == '0' ? '1' : '0';

    int cancel = -1;
    is_int(engine_task_heartbeat(e, "default", id, lease, &cancel, &err), 0, "heartbeat");
    is_int(cancel, 0, "not cancelled");
    is_int(engine_task_heartbeat(e, "default", id, wrong, &cancel, &err), WFO_ECONFLICT,
           "heartbeat with another lease: conflict");
    ok(strstr(err.message, "is not the current lease of task") != NULL, "says so: %s", err.message);

    json_t *output = json_pack("{s:b}", "done", 1);
    is_int(engine_task_complete(e, "default", id, wrong, output, &err), WFO_ECONFLICT,
           "complete with another lease: conflict");
    is_int(engine_task_complete(e, "other", id, lease, output, &err), WFO_ENOTFOUND,
           "from another namespace: not found");
    is_int(engine_task_complete(e, "default", id, lease, output, &err), 0, "completed: %s",
           err.message);
    is_int(engine_task_complete(e, "default", id, lease, output, &err), WFO_ECONFLICT,
           "twice: conflict");
    char want[TASKQ_ID_SIZE + 64];
    snprintf(want, sizeof(want), "task '%s' is no longer current", id);
    is_str(err.message, want, "no longer current");
    is_int(engine_task_complete(e, "default", "nope.1", lease, output, &err), WFO_ENOTFOUND,
           "a task of no execution: not found");
    is_str(err.message, "task 'nope.1' not found", "its message");
    json_decref(output);

    int ended = 0;
    json_t *doc = NULL, *handed = NULL;
    is_int(query_wait(e, "default", exec_id, 30000, &ended, &handed, &err), 0, "waited");
    is_int(ended, 1, "the execution ended");
    is_int(query_execution(e, "default", exec_id, &doc, &err), 0, "read");
    ok(!handed || json_equal(handed, doc), "a document handed to the wait is the store's");
    json_decref(handed);
    is_str(wfo_json_str(doc, "status"), "completed", "completed");
    json_t *st = json_array_get(json_object_get(doc, "steps"), 0);
    ok(json_is_true(json_object_get(json_object_get(st, "output"), "done")),
       "the step's output is the worker's");
    json_decref(doc);
    wfo_engine_free(e);
}

TEST(clear_drops_every_task_and_keeps_the_queues)
{
    struct taskq q;
    setup(&q, 5000, 1);
    add(&q, "default", "q", "e1", "a", 1);
    add(&q, "default", "q", "e2", "b", 2);
    json_t *got = poll1(&q, "default", "q", 1, 0);
    is_int(json_array_size(got), 1, "one leased before the clear");
    json_decref(got);
    taskq_clear(&q);
    is_int(q.ready, 0, "nothing ready after the clear");
    is_int(q.leased, 0, "nothing leased");
    ok(wfo_map_get(&q.tasks, "e1.1") == NULL && wfo_map_get(&q.tasks, "e2.2") == NULL,
       "both tasks gone");
    got = poll1(&q, "default", "q", 10, 0);
    is_int(json_array_size(got), 0, "a poll finds none");
    json_decref(got);
    json_t *queues = taskq_queues(&q, "default", 0, wfo_now_ms());
    json_t *q0 = json_array_get(queues, 0);
    is_str(wfo_json_str(q0, "name"), "q", "the queue is still listed");
    is_int(json_integer_value(json_object_get(q0, "ready")), 0, "with none ready");
    is_int(json_array_size(json_object_get(q0, "pollers")), 1, "and its poller");
    json_decref(queues);
    /* a task added again (recovery) is served as before */
    add(&q, "default", "q", "e2", "b", 2);
    got = poll1(&q, "default", "q", 10, 0);
    is_int(json_array_size(got), 1, "the task added again is polled");
    is_str(wfo_json_str(json_array_get(got, 0), "task_id"), "e2.2", "it is the same id");
    json_decref(got);
    taskq_release(&q);
}

/* A poll thread for elsewhere_wakes_a_waiting_poll. */
struct waiter {
    struct taskq *q;
    json_t *got;
    int64_t took;
};

static void *wait_poll(void *arg)
{
    struct waiter *w = arg;
    int64_t t0 = wfo_now_ms();
    w->got = poll1(w->q, "default", "q", 10, 5000);
    w->took = wfo_now_ms() - t0;
    return NULL;
}

TEST(elsewhere_wakes_a_waiting_poll)
{
    struct taskq q;
    pthread_t th;
    setup(&q, 5000, 1);
    struct waiter w = {&q, NULL, 0};
    pthread_create(&th, NULL, wait_poll, &w);
    usleep(200000);
    taskq_elsewhere(&q, "default", "other"); /* another queue: it keeps waiting */
    usleep(200000);
    taskq_elsewhere(&q, "default", "q");
    pthread_join(th, NULL);
    is_int(json_array_size(w.got), 0, "elsewhere: the poll returns with nothing");
    ok(w.took >= 350 && w.took < 3000,
       "elsewhere: woken by its own queue's, not the other's "
       "(%lld ms)",
       (long long)w.took);
    json_decref(w.got);
    /* a poll that starts after it is not cut short by it */
    int64_t t0 = wfo_now_ms();
    json_t *got = poll1(&q, "default", "q", 10, 300);
    ok(wfo_now_ms() - t0 >= 250, "elsewhere: a later poll waits its time");
    json_decref(got);
    /* ... unless its caller saw the count before one came (it asked the
     * other nodes meanwhile): then the wait ends at once */
    const char *queues[] = {"q"};
    long long seen = -1;
    json_decref(taskq_poll(&q, "default", queues, 1, "w1", 10, 0, NULL, &seen));
    ok(seen >= 1, "seen: the count so far (%lld)", seen);
    taskq_elsewhere(&q, "default", "q");
    t0 = wfo_now_ms();
    got = taskq_poll(&q, "default", queues, 1, "w1", 10, 3000, NULL, &seen);
    ok(wfo_now_ms() - t0 < 1500 && json_array_size(got) == 0,
       "seen: one that came before the wait ends it at once");
    json_decref(got);
    t0 = wfo_now_ms();
    got = taskq_poll(&q, "default", queues, 1, "w1", 10, 300, NULL, &seen);
    ok(wfo_now_ms() - t0 >= 250, "seen: updated, the next wait waits");
    json_decref(got);
    taskq_release(&q);
}

int main(void)
{
    return tap_run();
}
