/*
 * test_contract.c - the store contract (src/store/store.h), the same checks
 * against every back end of suite.h: atomic batches, reads of what apply
 * wrote, list paging while other commits land, the workflow registry,
 * deleting executions and retention, migrating an old SQLite file, the
 * server key. docs/interfaces/internal.md ("The store interface").
 */
#include "common/compat.h"

#include <stdatomic.h>

#include "suite.h"
#include "rawdb.h"
#include "common/buf.h"

/* ---- 1. batches are atomic ---- */

/* The rows every atomic check starts from: "e" running with history 1..2,
 * a step, a timer and a task; "d" completed with the same. */
static void atomic_setup(struct store *s)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct store_batch b;

    store_batch_init(&b);
    add_exec(&b, "e", "default", "w", "running", 100);
    add_step(&b, "e", "s0", 0, "running");
    add_history(&b, "e", 1, "execution.started");
    add_history(&b, "e", 2, "step.started");
    add_timer(&b, "t-e", "e", 5000);
    add_task(&b, "k-e", "e", "q", 100);
    struct store_exec *d = add_exec(&b, "d", "default", "w", "completed", 200);
    d->finished_at = 300;
    add_step(&b, "d", "s0", 0, "completed");
    add_history(&b, "d", 1, "execution.started");
    add_timer(&b, "t-d", "d", 6000);
    add_task(&b, "k-d", "d", "q", 200);
    is_int(suite_apply(s, &b, &err), 0, "atomic: setup batch: %s", err.message);
    store_batch_release(&b);
}

enum atomic_bad {
    BAD_NONE,
    BAD_HISTORY_STORED, /* the last history row repeats a seq already stored */
    BAD_HISTORY_BATCH,  /* the last history row repeats a seq of the same batch */
    BAD_TASK,           /* the last task has no queue (NOT NULL) */
    BAD_CHUNK,          /* e's chunk number is one already stored */
};

/* A batch that touches every kind of row: a new execution "x" with 9 steps
 * and 9 history entries (more than one multi-row statement's worth), an
 * update of "e", timers and tasks put, replaced and deleted, "d" deleted;
 * and, last of its kind, the bad row. */
static void atomic_batch(struct store_batch *b, enum atomic_bad bad)
{
    add_exec(b, "x", "default", "w", "running", 400);
    struct store_exec *e = add_exec(b, "e", "default", "w", "paused", 100);
    e->updated_at = 450;
#ifdef STORE_SHARDS
    if (bad == BAD_CHUNK)
        e->chunk = 1; /* atomic_setup wrote e's chunk 1 */
#endif
    for (int i = 0; i < 9; i++)
        add_step(b, "x", suite_str("p%d", i), i, "completed");
    add_step(b, "e", "s0", 0, "completed");
    for (int i = 1; i <= 9; i++)
        add_history(b, "x", i, "step.completed");
    add_history(b, "e", 3, "execution.paused");
    if (bad == BAD_HISTORY_STORED)
        add_history(b, "e", 1, "execution.started");
    if (bad == BAD_HISTORY_BATCH)
        add_history(b, "x", 5, "step.completed");
    add_timer(b, "t-x", "x", 7000);
    add_timer(b, "t-e", "e", 9999);
    del_timer(b, "d", "t-d");
    add_task(b, "k-x", "x", "q", 400);
    struct store_task *k = add_task(b, "k-e", "e", "q", 100);
    k->status = "leased";
    k->lease = "L1";
    k->leased_until = 999;
    if (bad == BAD_TASK)
        add_task(b, "k-bad", "x", NULL, 400);
    del_task(b, "d", "k-d");
    store_batch_exec_del(b, "d");
}

/* Everything the atomic checks can see, as one string. */
static void atomic_dump(struct store *s, struct out *all)
{
    static const char *const ids[] = {"e", "d", "x"};
    struct out o;

    out_reset(all);
    for (int i = 0; i < 3; i++) {
        out_add(all, "exec %s: %s", ids[i], read_exec(s, ids[i], &o));
        out_add(all, "steps %s: %s", ids[i], read_steps(s, ids[i], &o));
        out_add(all, "history %s: %s", ids[i], read_history(s, ids[i], &o));
    }
    out_add(all, "timers: %s", read_timers(s, &o));
    out_add(all, "tasks: %s", read_tasks(s, &o));
    list_active(s, exec_id_cb, out_reset(&o), NULL);
    out_add(all, "active: %s", o.buf);
}

TEST(atomic_batches)
{
    static const struct {
        enum atomic_bad bad;
        const char *name;
    } cases[] = {
#ifdef STORE_SHARDS
        /* The store no longer checks history seqs: a doubled transition
         * collides with the chunk number it was given. */
        {BAD_CHUNK, "a chunk number already stored"},
#else
        {BAD_HISTORY_STORED, "a history seq already stored"},
        {BAD_HISTORY_BATCH, "a history seq written twice in the batch"},
#endif
        {BAD_TASK, "a task without a queue"},
    };
    struct wfo_error err = WFO_ERROR_INIT;
    struct store_batch b;
    struct out before, after, o;

    store_batch_init(&b);
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        struct store *s = suite_open(suite_str("atomic%zu", c));
        atomic_setup(s);
        atomic_dump(s, &before);
        atomic_batch(&b, cases[c].bad);
        int rc = suite_apply(s, &b, &err);
        is_int(rc, WFO_ESTORE, "atomic: a batch whose last row is %s fails", cases[c].name);
        atomic_dump(s, &after);
        is_str(after.buf, before.buf, "atomic: %s: nothing of the batch is in the store",
               cases[c].name);
        is_int(exec_rc(s, "x"), WFO_ENOTFOUND, "atomic: %s: the new execution is absent",
               cases[c].name);
        ok(strstr(read_exec(s, "e", &o), "|running|"), "atomic: %s: e is still running",
           cases[c].name);
        is_int(exec_rc(s, "d"), 0, "atomic: %s: the deleted execution is still there",
               cases[c].name);
        is_str(read_steps(s, "x", &o), "", "atomic: %s: no steps of x", cases[c].name);
        is_str(read_history(s, "x", &o), "", "atomic: %s: no history of x", cases[c].name);
        store_close(s);
    }

    /* The same batch without its bad row commits: it was the bad row that
     * failed it. */
    struct store *s = suite_open("atomic-good");
    atomic_setup(s);
    atomic_batch(&b, BAD_NONE);
    is_int(suite_apply(s, &b, &err), 0, "atomic: the batch without the bad row commits: %s",
           err.message);
    is_str(read_exec(s, "x", &o), "x|default|w|1|running|{}|~|~|~|~|~|400|400|0\n",
           "atomic: x written");
    is_str(read_exec(s, "e", &o), "e|default|w|1|paused|{}|~|~|~|~|~|100|450|0\n",
           "atomic: e updated");
    is_int(exec_rc(s, "d"), WFO_ENOTFOUND, "atomic: d deleted");
    s->ops->list_steps(s, "x", step_short_cb, out_reset(&o), NULL);
    is_int(o.n, 9, "atomic: x has 9 steps");
    s->ops->list_history(s, "x", 0, 0, history_seq_cb, out_reset(&o), NULL);
    is_str(o.buf, "1 2 3 4 5 6 7 8 9 ", "atomic: x's history");
    s->ops->list_history(s, "e", 0, 0, history_seq_cb, out_reset(&o), NULL);
    is_str(o.buf, "1 2 3 ", "atomic: e's history");
    is_str(read_timers(s, &o),
           "t-x|x|7000|retry|s|1|~\n"
           "t-e|e|9999|retry|s|1|~\n",
           "atomic: timers put, replaced and deleted, by due time");
    is_str(read_tasks(s, &o),
           "k-e|e|default|q|s|1|leased|L1|{}|100|999|100\n"
           "k-x|x|default|q|s|1|ready|~|{}|400|0|400\n",
           "atomic: tasks put, replaced and deleted, by creation");
    store_batch_release(&b);
    store_close(s);
}

/* The fault wrapper: an injected apply fault fails the batch before the
 * wrapped store sees it. $WFO_STORE_FAULTS is read at open. */
static struct store *suite_fault_open(const char *name, const char *rules)
{
    setenv("WFO_STORE_FAULTS", rules, 1);
    struct store *s = suite_open(name);
    unsetenv("WFO_STORE_FAULTS");
    return s;
}

TEST(fault_apply)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct store_batch b;
    struct out o, before, after;
    char path[512];

    if (!suite_is("fault"))
        return;
    store_batch_init(&b);
    struct store *s = suite_fault_open("fault-apply", "apply:2-3");
    atomic_setup(s); /* apply call 1 */
    atomic_dump(s, &before);
    for (int call = 2; call <= 3; call++) {
        atomic_batch(&b, BAD_NONE);
        memset(&err, 0, sizeof(err));
        is_int(suite_apply(s, &b, &err), WFO_ESTORE, "fault: apply call %d fails", call);
        ok(strstr(err.message, "injected fault"), "fault: it says why: %s", err.message);
        atomic_dump(s, &after);
        is_str(after.buf, before.buf, "fault: apply call %d wrote nothing", call);
    }
    /* Read past the wrapper: the file itself has nothing of the batch. */
    struct store *raw =
        suite_open_url(suite_str("sqlite:%s", suite_path(path, sizeof(path), "fault-apply")));
    atomic_dump(raw, &after);
    is_str(after.buf, before.buf, "fault: the wrapped store has nothing of the failed batches");
    store_close(raw);

    atomic_batch(&b, BAD_NONE);
    is_int(suite_apply(s, &b, &err), 0, "fault: apply call 4 commits: %s", err.message);
    is_str(read_exec(s, "x", &o), "x|default|w|1|running|{}|~|~|~|~|~|400|400|0\n",
           "fault: and is read back");
    store_close(s);

    /* A fault in another op leaves apply alone. */
    s = suite_fault_open("fault-other", "get_exec:1+");
    atomic_setup(s);
    is_int(s->ops->get_exec(s, "e", exec_cb, out_reset(&o), &err), WFO_ESTORE,
           "fault: get_exec fails as configured");
    s->ops->list_history(s, "e", 0, 0, history_seq_cb, out_reset(&o), NULL);
    is_str(o.buf, "1 2 ", "fault: the batch was applied");
    store_close(s);
    store_batch_release(&b);
}

/* ---- 2. reads see what apply wrote ---- */

TEST(reads_exec_steps_history)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct store_batch b;
    struct out o;
    struct store *s = suite_open("reads");

    store_batch_init(&b);
    struct store_exec *e = add_exec(&b, "full", "ns-a", "order", "failed", 1000);
    e->version = 3;
    e->input = "{\"a\":[1,2]}";
    e->output = "{\"o\":true}";
    e->error = "{\"type\":\"Boom\"}";
    e->compensation = "[\"undo\"]";
    e->parent = "parent-1";
    e->state = "{\"pc\":7}";
    e->updated_at = 2000;
    e->finished_at = 3000;
    add_exec(&b, "bare", "ns-a", "order", "running", 0);
    /* Paths whose key order is not their ord order, more than a
     * multi-row statement's worth. */
    static const char *const paths[] = {"zeta", "alpha", "mid", "b", "y",  "c",
                                        "x",    "d",     "w",   "e", "aa", "zz"};
    for (int i = 0; i < 12; i++)
        add_step(&b, "full", paths[i], i, i < 11 ? "completed" : "running");
    struct store_step *p = add_step(&b, "bare", "only", 0, "failed");
    p->attempts = 3;
    p->output = "{\"x\":1}";
    p->error = "{\"type\":\"E\"}";
    p->state = "{\"k\":2}";
    p->started_at = 11;
    p->finished_at = 12;
    p->input = "{\"in\":\"put\"}";
    for (int i = 1; i <= 12; i++) {
        struct store_history *h = add_history(&b, "full", i, "step.completed");
        if (i == 2) {
            h->step = "alpha";
            h->data = "{\"d\":2}";
        }
    }
    add_history(&b, "bare", 1, "execution.started");
    is_int(suite_apply(s, &b, &err), 0, "reads: apply: %s", err.message);

    is_str(read_exec(s, "full", &o),
           "full|ns-a|order|3|failed|{\"a\":[1,2]}|{\"o\":true}|{\"type\":\"Boom\"}|[\"undo\"]|"
           "parent-1|{\"pc\":7}|1000|2000|3000\n",
           "reads: get_exec gives every field");
    is_str(read_exec(s, "bare", &o), "bare|ns-a|order|1|running|{}|~|~|~|~|~|0|0|0\n",
           "reads: NULLs and zero times read back as NULL and 0");
    is_int(s->ops->get_exec(s, "nope", exec_cb, out_reset(&o), &err), WFO_ENOTFOUND,
           "reads: get_exec of an absent id is WFO_ENOTFOUND");
    is_int(o.n, 0, "reads: with no row");

    s->ops->list_steps(s, "full", step_short_cb, out_reset(&o), NULL);
    is_str(o.buf,
           "zeta:0 completed alpha:1 completed mid:2 completed b:3 completed y:4 completed "
           "c:5 completed x:6 completed d:7 completed w:8 completed e:9 completed "
           "aa:10 completed zz:11 running ",
           "reads: list_steps in ord order");
    is_str(read_steps(s, "bare", &o),
           "bare|only|0|failed|3|{\"x\":1}|{\"type\":\"E\"}|{\"k\":2}|11|12|{\"in\":\"put\"}\n",
           "reads: a step's every field");
    is_str(read_steps(s, "nope", &o), "", "reads: no steps of an absent execution");

    /* An execution written again reads back as last written, NULLs too. */
    e = add_exec(&b, "full", "ns-a", "order", "running", 1000);
    e->version = 3;
    e->updated_at = 4000;
    e->state = "{\"pc\":8}";
    is_int(suite_apply(s, &b, &err), 0, "reads: rewrite an execution: %s", err.message);
    is_str(read_exec(s, "full", &o),
           "full|ns-a|order|3|running|{}|~|~|~|~|{\"pc\":8}|1000|4000|0\n",
           "reads: an upsert sets every field, NULL ones too");
    e = add_exec(&b, "full", "ns-a", "order", "completed", 1000);
    e->version = 3;
    e->output = "{\"o\":2}";
    e->updated_at = 5000;
    e->finished_at = 5000;
    e->existing = 1;
    is_int(suite_apply(s, &b, &err), 0, "reads: update an execution in place: %s", err.message);
    is_str(read_exec(s, "full", &o),
           "full|ns-a|order|3|completed|{}|{\"o\":2}|~|~|~|{\"pc\":8}|1000|5000|5000\n",
           "reads: an in-place update sets what changes; a NULL state keeps the last one");
    e = add_exec(&b, "full", "ns-a", "order", "completed", 1000);
    e->state = "{\"pc\":9}";
    e->updated_at = 6000;
    e->only_state = 1;
    is_int(suite_apply(s, &b, &err), 0, "reads: update only the state: %s", err.message);
    is_str(read_exec(s, "full", &o),
           "full|ns-a|order|3|completed|{}|{\"o\":2}|~|~|~|{\"pc\":9}|1000|6000|5000\n",
           "reads: a state-only update sets the state and updated_at, nothing else");

    /* A step is one row by path: writing it again replaces it in place. */
    p = add_step(&b, "full", "zz", 11, "completed");
    p->attempts = 2;
    add_step(&b, "full", "new", 12, "running");
    is_int(suite_apply(s, &b, &err), 0, "reads: apply step updates");
    s->ops->list_steps(s, "full", step_short_cb, out_reset(&o), NULL);
    is_int(o.n, 13, "reads: a step written again is replaced, not added");
    ok(strstr(o.buf, "zz:11 completed new:12 running ") != NULL,
       "reads: with its new status, the new step last: %s", o.buf);

    read_history(s, "full", &o);
    ok(strstr(o.buf,
              "full|2|1002|step.completed|alpha|{\"d\":2}\nfull|3|1003|step.completed|~|~\n"),
       "reads: a history entry's every field");
    struct {
        int64_t after;
        int limit;
        const char *want;
    } pages[] = {
        {0, 5, "1 2 3 4 5 "},
        {5, 5, "6 7 8 9 10 "},
        {10, 5, "11 12 "},
        {12, 5, ""},
        {0, 0, "1 2 3 4 5 6 7 8 9 10 11 12 "},
        {7, 0, "8 9 10 11 12 "},
        {3, 1, "4 "},
        {100, 0, ""},
    };
    for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
        int rc = s->ops->list_history(s, "full", pages[i].after, pages[i].limit, history_seq_cb,
                                      out_reset(&o), &err);
        is_int(rc, 0, "reads: list_history after %lld limit %d", (long long)pages[i].after,
               pages[i].limit);
        is_str(o.buf, pages[i].want, "reads: history after %lld limit %d",
               (long long)pages[i].after, pages[i].limit);
    }
    s->ops->list_history(s, "bare", 0, 0, history_seq_cb, out_reset(&o), NULL);
    is_str(o.buf, "1 ", "reads: each execution has its own history");

    /* History written over several commits pages the same way. */
    for (int c = 0; c < 3; c++) {
        add_exec(&b, "multi", "ns-a", "order", "running", 7000)->state = "{}";
        for (int i = 1; i <= 4; i++)
            add_history(&b, "multi", c * 4 + i, "step.completed");
        is_int(suite_apply(s, &b, &err), 0, "reads: history commit %d: %s", c + 1, err.message);
    }
    struct {
        int64_t after;
        int limit;
        const char *want;
    } mpages[] = {
        {0, 0, "1 2 3 4 5 6 7 8 9 10 11 12 "},
        {3, 3, "4 5 6 "},
        {6, 5, "7 8 9 10 11 "},
        {4, 4, "5 6 7 8 "},
        {11, 5, "12 "},
        {2, 0, "3 4 5 6 7 8 9 10 11 12 "},
    };
    for (size_t i = 0; i < sizeof(mpages) / sizeof(mpages[0]); i++) {
        s->ops->list_history(s, "multi", mpages[i].after, mpages[i].limit, history_seq_cb,
                             out_reset(&o), &err);
        is_str(o.buf, mpages[i].want, "reads: history of 3 commits after %lld limit %d",
               (long long)mpages[i].after, mpages[i].limit);
    }

    /* A callback that returns non-zero stops the read, which returns it. */
    out_reset(&o)->stop_after = 3;
    is_int(s->ops->list_history(s, "full", 0, 0, history_seq_cb, &o, &err), 42,
           "reads: list_history returns the callback's value");
    is_int(o.n, 3, "reads: and stops there");
    out_reset(&o)->stop_after = 2;
    is_int(s->ops->list_steps(s, "full", step_short_cb, &o, &err), 42,
           "reads: list_steps returns the callback's value");
    is_int(o.n, 2, "reads: and stops there");
    out_reset(&o)->stop_after = 1;
    is_int(s->ops->get_exec(s, "full", exec_cb, &o, &err), 42,
           "reads: get_exec returns the callback's value");

    store_batch_release(&b);
    store_close(s);
}

TEST(reads_list_execs)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct store_batch b;
    struct out o;
    struct store *s = suite_open("list");
    static const struct {
        const char *id, *wf, *status;
        int64_t created;
    } rows[] = {
        {"a1", "A", "running", 1000},   {"a2", "B", "completed", 2000},
        {"a3", "A", "completed", 3000}, {"a4", "A", "failed", 4000},
        {"a5", "B", "running", 5000},   {"a6", "A", "running", 6000},
    };
    int64_t seq[6];

    store_batch_init(&b);
    /* One batch per row: seq is the creation order across commits. */
    for (int i = 0; i < 6; i++) {
        add_exec(&b, rows[i].id, "ns1", rows[i].wf, rows[i].status, rows[i].created);
        if (i == 2)
            add_exec(&b, "b1", "ns2", "A", "running", 3500);
        is_int(suite_apply(s, &b, &err), 0, "list: apply %s", rows[i].id);
    }
    for (int i = 0; i < 6; i++)
        seq[i] = exec_seq(s, rows[i].id);
    ok(seq[0] > 0 && seq[0] < seq[1] && seq[1] < seq[2] && seq[2] < seq[3] && seq[3] < seq[4] &&
           seq[4] < seq[5],
       "list: seq grows with creation: %lld %lld %lld %lld %lld %lld", (long long)seq[0],
       (long long)seq[1], (long long)seq[2], (long long)seq[3], (long long)seq[4],
       (long long)seq[5]);

    struct {
        struct store_exec_filter f;
        const char *want;
        const char *what;
    } cases[] = {
        {{.namespace = "ns1"}, "a6 a5 a4 a3 a2 a1 ", "every row, newest first"},
        {{.namespace = "ns2"}, "b1 ", "namespaces are separate"},
        {{.namespace = "none"}, "", "an empty namespace"},
        {{.namespace = "ns1", .workflow = "A"}, "a6 a4 a3 a1 ", "workflow"},
        {{.namespace = "ns1", .workflow = "C"}, "", "an unknown workflow"},
        {{.namespace = "ns1", .status = "running"}, "a6 a5 a1 ", "status"},
        {{.namespace = "ns1", .workflow = "A", .status = "running"},
         "a6 a1 ",
         "workflow and status"},
        {{.namespace = "ns1", .created_after = 2000}, "a6 a5 a4 a3 ", "created_after, exclusive"},
        {{.namespace = "ns1", .created_before = 5000}, "a4 a3 a2 a1 ", "created_before, exclusive"},
        {{.namespace = "ns1", .created_after = 2000, .created_before = 5000},
         "a4 a3 ",
         "created_after and created_before"},
        {{.namespace = "ns1", .workflow = "A", .created_after = 1000, .created_before = 6001},
         "a6 a4 a3 ",
         "workflow and a time window"},
        {{.namespace = "ns1", .status = "completed", .created_before = 3000},
         "a2 ",
         "status and created_before"},
        {{.namespace = "ns1", .limit = 2}, "a6 a5 ", "limit"},
        {{.namespace = "ns1", .limit = 0}, "a6 a5 a4 a3 a2 a1 ", "limit 0 is none"},
        {{.namespace = "ns1", .before_seq = seq[4], .limit = 2}, "a4 a3 ", "a cursor"},
        {{.namespace = "ns1", .before_seq = seq[2], .limit = 2}, "a2 a1 ", "the next page"},
        {{.namespace = "ns1", .before_seq = seq[0], .limit = 2}, "", "past the last page"},
        {{.namespace = "ns1", .workflow = "A", .before_seq = seq[3]},
         "a3 a1 ",
         "a cursor with a workflow"},
        {{.namespace = "ns1", .status = "running", .before_seq = seq[5], .limit = 1},
         "a5 ",
         "a cursor with a status"},
        {{.namespace = "ns1", .created_after = 1500, .before_seq = seq[3], .limit = 5},
         "a3 a2 ",
         "a cursor with a time filter"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        is_str(read_list(s, &cases[i].f, &o), cases[i].want, "list_execs: %s", cases[i].what);

    /* Paging through with the last seq of each page as the cursor. */
    struct store_exec_filter f = {.namespace = "ns1", .limit = 4};
    struct out all;
    out_reset(&all);
    for (int page = 0; page < 5; page++) {
        struct out po;
        out_reset(&po);
        s->ops->list_execs(s, &f, exec_id_cb, &po, NULL);
        if (po.n == 0)
            break;
        out_add(&all, "%s| ", po.buf);
        /* the ids of a page end with its last row's */
        po.buf[po.len - 1] = '\0';
        const char *last = strrchr(po.buf, ' ');
        f.before_seq = exec_seq(s, last ? last + 1 : po.buf);
    }
    is_str(all.buf, "a6 a5 a4 a3 | a2 a1 | ", "list_execs: pages of 4 by cursor");

    /* An update does not move a row: seq is the creation order. */
    struct store_exec *e = add_exec(&b, "a1", "ns1", "A", "completed", 1000);
    e->updated_at = 9000;
    e->finished_at = 9000;
    e = add_exec(&b, "a3", "ns1", "A", "running", 3000);
    e->existing = 1;
    e->updated_at = 9001;
    is_int(suite_apply(s, &b, &err), 0, "list: update a1 and a3");
    is_int(exec_seq(s, "a1"), seq[0], "list: an upsert keeps seq");
    is_int(exec_seq(s, "a3"), seq[2], "list: an in-place update keeps seq");
    f = (struct store_exec_filter){.namespace = "ns1"};
    is_str(read_list(s, &f, &o), "a6 a5 a4 a3 a2 a1 ", "list_execs: order unchanged by updates");
    f.status = "running";
    is_str(read_list(s, &f, &o), "a6 a5 a3 ", "list_execs: status filter sees the new status");
    f.status = "completed";
    is_str(read_list(s, &f, &o), "a2 a1 ", "list_execs: and the other one");

    f = (struct store_exec_filter){.namespace = NULL};
    is_int(s->ops->list_execs(s, &f, exec_id_cb, out_reset(&o), &err), WFO_EINVAL,
           "list_execs: without a namespace is WFO_EINVAL");

    f = (struct store_exec_filter){.namespace = "ns1"};
    out_reset(&o)->stop_after = 2;
    is_int(s->ops->list_execs(s, &f, exec_id_cb, &o, &err), 42,
           "list_execs: returns the callback's value");
    is_str(o.buf, "a6 a5 ", "list_execs: and stops there");

    /* Recovery: running and paused, every namespace. */
    add_exec(&b, "p1", "ns3", "A", "paused", 7000);
    suite_apply(s, &b, &err);
    list_active(s, exec_id_cb, out_reset(&o), &err);
    ok(o.n == 5 && strstr(o.buf, "a3 ") && strstr(o.buf, "a5 ") && strstr(o.buf, "a6 ") &&
           strstr(o.buf, "b1 ") && strstr(o.buf, "p1 "),
       "list_active_execs: running and paused of every namespace: %s", o.buf);
    store_batch_release(&b);
    store_close(s);
}

/* ---- 3. paging is stable under concurrent commits ---- */

#define PAGE_OLD 150   /* rows that exist when paging starts */
#define PAGE_LIMIT 7   /* rows per page */
#define PAGE_WAIT 5000 /* ms a page waits at most for a commit */

struct pager {
    struct store *s;
    const char *ns;
    int update_old; /* the writer also updates rows that existed */
    atomic_int commits;
    atomic_int stop;
    atomic_int failed; /* the writer's first error code */
    char error[512];
};

/* The writer: one new execution per batch and, when update_old, updates of
 * two old ones (an upsert and an in-place update), until told to stop. */
static void *pager_writer(void *arg)
{
    struct pager *pg = arg;
    struct wfo_error err = WFO_ERROR_INIT;
    struct store_batch b;

    store_batch_init(&b);
    for (int i = 0; !atomic_load(&pg->stop); i++) {
        add_exec(&b, suite_str("n%05d", i), pg->ns, "w", "running", 100000 + i);
        if (pg->update_old) {
            int k = (i * 37) % PAGE_OLD;
            struct store_exec *e =
                add_exec(&b, suite_str("p%04d", k), pg->ns, "w", "completed", 1000 + k);
            e->updated_at = 200000 + i;
            e->finished_at = 200000 + i;
            k = (i * 53 + 11) % PAGE_OLD;
            if (k != (i * 37) % PAGE_OLD) {
                e = add_exec(&b, suite_str("p%04d", k), pg->ns, "w", "paused", 1000 + k);
                e->existing = 1;
                e->updated_at = 200000 + i;
            }
        }
        int rc = suite_apply(pg->s, &b, &err);
        if (rc) {
            int zero = 0;
            if (atomic_compare_exchange_strong(&pg->failed, &zero, rc))
                snprintf(pg->error, sizeof(pg->error), "%s", err.message);
            break;
        }
        atomic_fetch_add(&pg->commits, 1);
    }
    store_batch_release(&b);
    return NULL;
}

struct page_rows {
    int64_t cursor;
    int64_t last; /* the page's last seq */
    int n;
    int bad_order; /* a seq not below the one before it, or the cursor */
    int old_seen[PAGE_OLD];
    char **new_ids;
    int n_new, alloc_new;
};

static int page_cb(void *ud, const struct store_exec *r)
{
    struct page_rows *p = ud;

    if ((p->cursor && r->seq >= p->cursor) || (p->n && r->seq >= p->last))
        p->bad_order++;
    p->last = r->seq;
    p->n++;
    if (r->id[0] == 'p') {
        int k = (int)strtol(r->id + 1, NULL, 10);
        if (k >= 0 && k < PAGE_OLD)
            p->old_seen[k]++;
    } else {
        if (p->n_new == p->alloc_new) {
            p->alloc_new = p->alloc_new ? p->alloc_new * 2 : 64;
            p->new_ids = realloc(p->new_ids, (size_t)p->alloc_new * sizeof(*p->new_ids));
        }
        p->new_ids[p->n_new++] = strdup(r->id);
    }
    return 0;
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void paging(const char *ns, int update_old)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct store_batch b;
    struct page_rows *rows = calloc(1, sizeof(*rows));
    struct pager pg = {.ns = ns, .update_old = update_old};
    pthread_t writer;
    int pages = 0, waits_timed_out = 0;

    pg.s = suite_open(ns);
    store_batch_init(&b);
    for (int k = 0; k < PAGE_OLD; k++)
        add_exec(&b, suite_str("p%04d", k), ns, "w", "running", 1000 + k);
    is_int(suite_apply(pg.s, &b, &err), 0, "paging %s: %d rows before paging", ns, PAGE_OLD);

    pthread_create(&writer, NULL, pager_writer, &pg);
    for (;;) {
        struct store_exec_filter f = {
            .namespace = ns, .before_seq = rows->cursor, .limit = PAGE_LIMIT};
        int seen = atomic_load(&pg.commits);
        rows->n = 0;
        int rc = pg.s->ops->list_execs(pg.s, &f, page_cb, rows, &err);
        if (rc) {
            ok(0, "paging %s: list_execs: %s", ns, err.message);
            break;
        }
        pages++;
        if (rows->n == 0)
            break;
        if (pages > PAGE_OLD) {
            ok(0, "paging %s: ends (%d pages of %d rows for %d rows)", ns, pages, PAGE_LIMIT,
               PAGE_OLD);
            break;
        }
        rows->cursor = rows->last;
        /* Let at least one commit land between two pages. */
        int waited = 0;
        while (atomic_load(&pg.commits) == seen && !atomic_load(&pg.failed) && waited < PAGE_WAIT) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
            waited++;
        }
        waits_timed_out += waited >= PAGE_WAIT;
    }
    atomic_store(&pg.stop, 1);
    pthread_join(writer, NULL);

    is_int(atomic_load(&pg.failed), 0, "paging %s: the writer's commits succeed %s", ns, pg.error);
    is_int(waits_timed_out, 0, "paging %s: a commit landed between every two pages", ns);
    ok(atomic_load(&pg.commits) >= pages - 1, "paging %s: %d commits during %d pages", ns,
       atomic_load(&pg.commits), pages);
    is_int(rows->bad_order, 0, "paging %s: every row is below the cursor, newest first", ns);
    int missing = 0, doubled = 0, first_bad = -1;
    for (int k = 0; k < PAGE_OLD; k++) {
        missing += rows->old_seen[k] == 0;
        doubled += rows->old_seen[k] > 1;
        if (rows->old_seen[k] != 1 && first_bad < 0)
            first_bad = k;
    }
    is_int(missing, 0, "paging %s: no row that existed is missed", ns);
    is_int(doubled, 0, "paging %s: no row that existed is seen twice", ns);
    if (first_bad >= 0)
        printf("#   p%04d seen %d times\n", first_bad, rows->old_seen[first_bad]);
    int dup_new = 0;
    if (rows->n_new > 1)
        qsort(rows->new_ids, (size_t)rows->n_new, sizeof(*rows->new_ids), str_cmp);
    for (int i = 1; i < rows->n_new; i++)
        dup_new += strcmp(rows->new_ids[i - 1], rows->new_ids[i]) == 0;
    is_int(dup_new, 0, "paging %s: no new row seen twice (%d new rows seen)", ns, rows->n_new);

    /* Afterwards every row is listed once. */
    struct store_exec_filter f = {.namespace = ns};
    struct out o;
    pg.s->ops->list_execs(pg.s, &f, exec_id_cb, out_reset(&o), NULL);
    is_int(o.n, PAGE_OLD + atomic_load(&pg.commits), "paging %s: the whole list has every row", ns);

    for (int i = 0; i < rows->n_new; i++)
        free(rows->new_ids[i]);
    free(rows->new_ids);
    free(rows);
    store_batch_release(&b);
    store_close(pg.s);
}

TEST(paging_under_commits)
{
    paging("page-new", 0);
}

TEST(paging_under_commits_and_updates)
{
    paging("page-upd", 1);
}

/* ---- 4. workflows ---- */

struct wf_got {
    int n;
    int version;
    int64_t created_at;
    char hash[32];
    char def[64];
};

static int wf_got_cb(void *ud, const struct store_workflow *r)
{
    struct wf_got *g = ud;

    g->n++;
    g->version = r->version;
    g->created_at = r->created_at;
    snprintf(g->hash, sizeof(g->hash), "%s", N(r->hash));
    snprintf(g->def, sizeof(g->def), "%s", N(r->definition));
    return 0;
}

TEST(workflows)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct store_batch b;
    struct wf_got g;
    struct out o;
    int created = -1;
    struct store *s = suite_open("workflows");
    struct store_workflow w = {"default", "order", 0, "h1", "{\"v\":1}", 100};

    store_batch_init(&b);
    memset(&g, 0, sizeof(g));
    is_int(s->ops->put_workflow(s, &w, &created, wf_got_cb, &g, &err), 0, "put: %s", err.message);
    is_int(created, 1, "workflows: the first put creates");
    ok(g.n == 1 && g.version == 1 && g.created_at == 100 && !strcmp(g.def, "{\"v\":1}"),
       "workflows: cb gets version 1 as given");

    w.definition = "{\"v\": 1}";
    w.created_at = 200;
    memset(&g, 0, sizeof(g));
    is_int(s->ops->put_workflow(s, &w, &created, wf_got_cb, &g, &err), 0, "workflows: put again");
    is_int(created, 0, "workflows: the same hash does not create");
    ok(g.n == 1 && g.version == 1 && g.created_at == 100 && !strcmp(g.def, "{\"v\":1}"),
       "workflows: cb gets the stored version 1 (v%d, %lld, %s)", g.version,
       (long long)g.created_at, g.def);

    w.hash = "h2";
    w.definition = "{\"v\":2}";
    memset(&g, 0, sizeof(g));
    s->ops->put_workflow(s, &w, &created, wf_got_cb, &g, &err);
    ok(created == 1 && g.version == 2 && g.created_at == 200, "workflows: a new hash is version 2");

    w.hash = "h1";
    w.definition = "{\"v\":1}";
    w.created_at = 0;
    int64_t t0 = suite_now_ms();
    memset(&g, 0, sizeof(g));
    s->ops->put_workflow(s, &w, &created, wf_got_cb, &g, &err);
    int64_t t1 = suite_now_ms();
    ok(created == 1 && g.version == 3, "workflows: an older hash again is version 3 (v%d)",
       g.version);
    ok(g.created_at >= t0 && g.created_at <= t1, "workflows: created_at 0 is now (%lld)",
       (long long)g.created_at);

    struct store_workflow other = {"team-b", "order", 0, "h9", "{}", 5};
    s->ops->put_workflow(s, &other, &created, NULL, NULL, &err);
    is_int(created, 1, "workflows: another namespace has its own versions (NULL cb)");
    struct store_workflow alpha = {"default", "alpha", 0, "ha", "[]", 7};
    s->ops->put_workflow(s, &alpha, &created, NULL, NULL, &err);

    memset(&g, 0, sizeof(g));
    is_int(s->ops->get_workflow(s, "default", "order", 0, wf_got_cb, &g, &err), 0,
           "workflows: get latest");
    ok(g.n == 1 && g.version == 3 && !strcmp(g.hash, "h1"), "workflows: latest is version 3");
    memset(&g, 0, sizeof(g));
    s->ops->get_workflow(s, "default", "order", 2, wf_got_cb, &g, &err);
    ok(g.n == 1 && g.version == 2 && !strcmp(g.hash, "h2") && !strcmp(g.def, "{\"v\":2}"),
       "workflows: get version 2");
    memset(&g, 0, sizeof(g));
    s->ops->get_workflow(s, "default", "order", 1, wf_got_cb, &g, &err);
    ok(g.n == 1 && g.version == 1 && g.created_at == 100, "workflows: get version 1");
    is_int(s->ops->get_workflow(s, "default", "order", 4, wf_got_cb, &g, &err), WFO_ENOTFOUND,
           "workflows: an absent version is WFO_ENOTFOUND");
    is_int(s->ops->get_workflow(s, "default", "nope", 0, wf_got_cb, &g, &err), WFO_ENOTFOUND,
           "workflows: an absent name is WFO_ENOTFOUND");
    is_int(s->ops->get_workflow(s, "team-c", "order", 0, wf_got_cb, &g, &err), WFO_ENOTFOUND,
           "workflows: namespaces are separate");

    is_int(s->ops->list_workflows(s, "default", wf_cb, out_reset(&o), &err), 0, "workflows: list");
    static const char latest[] = "default|alpha|1|ha|[]|7\ndefault|order|3|h1|{\"v\":1}|";
    ok(o.n == 2 && !strncmp(o.buf, latest, sizeof(latest) - 1),
       "workflows: latest of each, by name: %s", oneline(o.buf));
    s->ops->list_workflows(s, "team-b", wf_cb, out_reset(&o), &err);
    is_str(o.buf, "team-b|order|1|h9|{}|5\n", "workflows: list of another namespace");
    s->ops->list_workflows(s, "empty", wf_cb, out_reset(&o), &err);
    is_str(o.buf, "", "workflows: list of an empty namespace");
    is_int(s->ops->list_workflows(s, NULL, wf_cb, out_reset(&o), &err), 0,
           "workflows: list of every namespace");
    ok(o.n == 3 && !strncmp(o.buf, latest, sizeof(latest) - 1) &&
           strstr(o.buf, "\nteam-b|order|1|h9|{}|5\n"),
       "workflows: every namespace's latest, by namespace and name: %s", oneline(o.buf));

    struct store_workflow bad = {"default", "x", 0, NULL, "{}", 0};
    is_int(s->ops->put_workflow(s, &bad, &created, NULL, NULL, &err), WFO_EINVAL,
           "workflows: a workflow without a hash is WFO_EINVAL");

    /* delete: refused while an execution of it runs or is paused */
    add_exec(&b, "o1", "default", "order", "running", 10);
    add_exec(&b, "o2", "default", "order", "completed", 11)->finished_at = 12;
    add_exec(&b, "o3", "team-b", "alpha", "running", 13);
    suite_apply(s, &b, &err);
    is_int(s->ops->delete_workflow(s, "default", "order", &err), WFO_ECONFLICT,
           "workflows: delete while an execution runs is WFO_ECONFLICT");
    memset(&g, 0, sizeof(g));
    s->ops->get_workflow(s, "default", "order", 0, wf_got_cb, &g, &err);
    is_int(g.version, 3, "workflows: and deletes nothing");
    add_exec(&b, "o1", "default", "order", "paused", 10);
    suite_apply(s, &b, &err);
    is_int(s->ops->delete_workflow(s, "default", "order", &err), WFO_ECONFLICT,
           "workflows: delete while an execution is paused is WFO_ECONFLICT");
    is_int(s->ops->delete_workflow(s, "default", "alpha", &err), 0,
           "workflows: an execution of the same name in another namespace does not block: %s",
           err.message);
    add_exec(&b, "o1", "default", "order", "cancelled", 10)->finished_at = 20;
    suite_apply(s, &b, &err);
    is_int(s->ops->delete_workflow(s, "default", "order", &err), 0,
           "workflows: delete once its executions ended: %s", err.message);
    for (int v = 0; v <= 3; v++)
        is_int(s->ops->get_workflow(s, "default", "order", v, wf_got_cb, &g, &err), WFO_ENOTFOUND,
               "workflows: version %d is gone", v);
    s->ops->list_workflows(s, "default", wf_cb, out_reset(&o), &err);
    is_str(o.buf, "", "workflows: the list is empty");
    is_int(exec_rc(s, "o1"), 0, "workflows: ended executions keep their rows");
    is_int(exec_rc(s, "o2"), 0, "workflows: all of them");
    memset(&g, 0, sizeof(g));
    s->ops->get_workflow(s, "team-b", "order", 0, wf_got_cb, &g, &err);
    is_int(g.version, 1, "workflows: the other namespace keeps its workflow");
    is_int(s->ops->delete_workflow(s, "default", "order", &err), WFO_ENOTFOUND,
           "workflows: deleting again is WFO_ENOTFOUND");
    is_int(s->ops->delete_workflow(s, "default", "never", &err), WFO_ENOTFOUND,
           "workflows: deleting an absent workflow is WFO_ENOTFOUND");
    w = (struct store_workflow){"default", "order", 0, "h2", "{\"v\":2}", 300};
    memset(&g, 0, sizeof(g));
    s->ops->put_workflow(s, &w, &created, wf_got_cb, &g, &err);
    ok(created == 1 && g.version == 1, "workflows: put after delete starts at version 1 again");
    store_batch_release(&b);
    store_close(s);
}

/* ---- 5. deleting executions; retention ---- */

/* An execution with a step, two history entries, a timer and a task. */
static void add_full(struct store_batch *b, const char *id, const char *status, int64_t fin)
{
    add_exec(b, id, "default", "w", status, 10)->finished_at = fin;
    add_step(b, id, "s", 0, "completed");
    add_history(b, id, 1, "execution.started");
    add_history(b, id, 2, "execution.completed");
    add_timer(b, suite_str("t-%s", id), id, 5000);
    add_task(b, suite_str("k-%s", id), id, "q", 10);
}

static void dump_exec(struct store *s, const char *id, struct out *all)
{
    struct out o;

    out_reset(all);
    out_add(all, "%s", read_exec(s, id, &o));
    out_add(all, "%s", read_steps(s, id, &o));
    out_add(all, "%s", read_history(s, id, &o));
}

/* The timer and task rows of exec id, from a full dump. */
static const char *rows_of(const char *dump, const char *id, char *out, size_t size)
{
    char key[64];
    size_t len = 0;

    snprintf(key, sizeof(key), "|%s|", id);
    out[0] = '\0';
    for (const char *l = dump; *l;) {
        const char *nl = strchr(l, '\n');
        size_t n = nl ? (size_t)(nl - l + 1) : strlen(l);
        const char *k = strstr(l, key);
        if (k && k < l + n && len + n < size) {
            memcpy(out + len, l, n);
            len += n;
            out[len] = '\0';
        }
        l += n;
    }
    return out;
}

TEST(exec_dels)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct store_batch b;
    struct out o, g2_before, g2_after;
    char rows[4096];
    struct store *s = suite_open("dels");

    store_batch_init(&b);
    add_full(&b, "g1", "completed", 100);
    add_full(&b, "g2", "failed", 200);
    add_full(&b, "g3", "completed", 300);
    is_int(suite_apply(s, &b, &err), 0, "dels: setup: %s", err.message);
    int64_t seq3 = exec_seq(s, "g3");
    dump_exec(s, "g2", &g2_before);
    char timers_before[4096], tasks_before[4096];
    rows_of(read_timers(s, &o), "g2", timers_before, sizeof(timers_before));
    rows_of(read_tasks(s, &o), "g2", tasks_before, sizeof(tasks_before));

    store_batch_exec_del(&b, "g1");
    is_int(suite_apply(s, &b, &err), 0, "dels: delete g1: %s", err.message);
    is_int(exec_rc(s, "g1"), WFO_ENOTFOUND, "dels: the execution is gone");
    is_str(read_steps(s, "g1", &o), "", "dels: its steps are gone");
    is_str(read_history(s, "g1", &o), "", "dels: its history is gone");
    is_str(rows_of(read_timers(s, &o), "g1", rows, sizeof(rows)), "", "dels: its timers are gone");
    is_str(rows_of(read_tasks(s, &o), "g1", rows, sizeof(rows)), "", "dels: its tasks are gone");
    dump_exec(s, "g2", &g2_after);
    is_str(g2_after.buf, g2_before.buf, "dels: another execution keeps its rows");
    is_str(rows_of(read_timers(s, &o), "g2", rows, sizeof(rows)), timers_before,
           "dels: and its timers");
    is_str(rows_of(read_tasks(s, &o), "g2", rows, sizeof(rows)), tasks_before,
           "dels: and its tasks");

    /* Deletes come last in a batch: rows written to the execution in the
     * same batch go with it. */
    add_step(&b, "g3", "late", 1, "completed");
    add_history(&b, "g3", 3, "late");
    add_timer(&b, "t-g3-late", "g3", 6000);
    add_task(&b, "k-g3-late", "g3", "q", 20);
    store_batch_exec_del(&b, "g3");
    is_int(suite_apply(s, &b, &err), 0, "dels: write and delete g3 in one batch: %s", err.message);
    is_int(exec_rc(s, "g3"), WFO_ENOTFOUND, "dels: g3 is gone");
    is_str(read_steps(s, "g3", &o), "", "dels: with the steps of the same batch");
    is_str(read_history(s, "g3", &o), "", "dels: and its history");
    is_str(rows_of(read_timers(s, &o), "g3", rows, sizeof(rows)), "",
           "dels: and its timers, those of the same batch too");
    is_str(rows_of(read_tasks(s, &o), "g3", rows, sizeof(rows)), "",
           "dels: and its tasks, those of the same batch too");

    /* A new execution after the newest was deleted gets a higher seq: a
     * list cursor never meets a reused seq. */
    add_exec(&b, "g4", "default", "w", "running", 30);
    suite_apply(s, &b, &err);
    ok(exec_seq(s, "g4") > seq3, "dels: seq is not reused (%lld > %lld)",
       (long long)exec_seq(s, "g4"), (long long)seq3);
    /* An id deleted can be used again: it is a new execution. */
    add_exec(&b, "g1", "default", "w", "running", 40);
    is_int(suite_apply(s, &b, &err), 0, "dels: an id used again");
    is_str(read_history(s, "g1", &o), "", "dels: starts with no history");
    add_history(&b, "g1", 1, "execution.started");
    is_int(suite_apply(s, &b, &err), 0, "dels: and its history starts at 1 again: %s", err.message);
    store_batch_release(&b);
    store_close(s);
}

TEST(list_expired)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct store_batch b;
    struct out o;
    struct store *s = suite_open("expired");
    static const struct {
        const char *id, *status;
        int64_t fin;
    } rows[] = {
        {"x4", "terminated", 4000}, {"x1", "completed", 1000}, {"x3", "cancelled", 2000},
        {"x2", "failed", 3000},     {"r1", "running", 500},    {"r2", "paused", 600},
        {"x5", "completed", 0},
    };

    store_batch_init(&b);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        add_exec(&b, rows[i].id, i % 2 ? "ns-a" : "ns-b", "w", rows[i].status, 10)->finished_at =
            rows[i].fin;
    is_int(suite_apply(s, &b, &err), 0, "expired: setup");
    struct {
        int64_t before;
        int limit;
        const char *want;
    } cases[] = {
        {3500, 10, "x1 x3 x2 "}, {3000, 10, "x1 x3 "},        {1000, 10, ""},
        {1001, 10, "x1 "},       {99999, 10, "x1 x3 x2 x4 "}, {99999, 2, "x1 x3 "},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = s->ops->list_expired(s, cases[i].before, cases[i].limit, exec_id_cb, out_reset(&o),
                                      &err);
        is_int(rc, 0, "expired: before %lld limit %d", (long long)cases[i].before, cases[i].limit);
        is_str(o.buf, cases[i].want,
               "expired: ended before %lld, oldest first, at most %d, never running or paused",
               (long long)cases[i].before, cases[i].limit);
    }
    /* Once retried (running again), an execution is not expired even if
     * its finished_at stays. */
    add_exec(&b, "x1", "ns-b", "w", "running", 10)->finished_at = 1000;
    suite_apply(s, &b, &err);
    s->ops->list_expired(s, 3500, 10, exec_id_cb, out_reset(&o), &err);
    is_str(o.buf, "x3 x2 ", "expired: a running execution is never expired");
    store_batch_release(&b);
    store_close(s);
}

/* ---- 6. migrations ---- */

#ifdef STORE_SHARDS
#ifdef STORE_HAS_SUBSCRIPTIONS
#define SUITE_SCHEMA_VERSION "9"
#else
#define SUITE_SCHEMA_VERSION "6"
#endif
#else
#define SUITE_SCHEMA_VERSION "2"
#endif

static const char v1_rows[] =
    "INSERT INTO workflows VALUES ('default', 'order', 1, 'h1', '{\"v\":1}', 50);"
    "INSERT INTO executions (id, namespace, workflow, version, status, input, output, error,"
    " compensation, parent, state, created_at, updated_at, finished_at) VALUES"
    " ('m1', 'default', 'order', 1, 'running', '{\"i\":1}', NULL, NULL, NULL, NULL,"
    " '{\"pc\":1}', 100, 110, NULL),"
    " ('m2', 'default', 'order', 1, 'completed', '{}', '{\"o\":2}', NULL, NULL, 'm1', NULL,"
    " 200, 210, 1000);"
    "INSERT INTO steps VALUES ('m1', 'b', 1, 'running', 1, NULL, NULL, NULL, 120, NULL),"
    " ('m1', 'a', 0, 'completed', 2, '{\"r\":1}', NULL, '{\"s\":1}', 101, 119);"
    "INSERT INTO history VALUES ('m1', 1, 100, 'execution.started', NULL, NULL),"
    " ('m1', 2, 101, 'step.started', 'a', '{\"x\":1}');"
    "INSERT INTO timers VALUES ('t1', 'm1', 5000, 'retry', 'b', 2, '{}');"
    "INSERT INTO tasks VALUES ('k1', 'm1', 'default', 'q', 'b', 1, 'ready', NULL, '{}',"
    " 120, NULL, 120);";

TEST(migrate_from_v1)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct store_batch b;
    struct out o;
    char path[512], res[4096], sql[8192];
    struct wf_got g;

    /* SQLite files written by older wfo versions: PostgreSQL's first
     * schema is version 6, there is nothing older to migrate from. */
    if (suite_is("postgres"))
        return;
    suite_path(path, sizeof(path), "v1");
    snprintf(sql, sizeof(sql), "%s%s", rawdb_schema_v1, v1_rows);
    is_int(rawdb_run(path, sql, res, sizeof(res)), 0, "migrate: a version 1 file: %s", res);
    rawdb_run(path, "PRAGMA user_version", res, sizeof(res));
    is_str(res, "1\n", "migrate: user_version 1");

    struct store *s = suite_open("v1");
    is_str(read_exec(s, "m1", &o),
           "m1|default|order|1|running|{\"i\":1}|~|~|~|~|{\"pc\":1}|100|110|0\n",
           "migrate: an execution written by version 1 reads back");
    is_str(read_exec(s, "m2", &o),
           "m2|default|order|1|completed|{}|{\"o\":2}|~|~|m1|~|200|210|1000\n",
           "migrate: and another");
    is_str(read_steps(s, "m1", &o),
           "m1|a|0|completed|2|{\"r\":1}|~|{\"s\":1}|101|119|~\n"
           "m1|b|1|running|1|~|~|~|120|0|~\n",
           "migrate: its steps, in ord order, with no input");
    is_str(read_history(s, "m1", &o),
           "m1|1|100|execution.started|~|~\n"
           "m1|2|101|step.started|a|{\"x\":1}\n",
           "migrate: its history");
    is_str(read_timers(s, &o), "t1|m1|5000|retry|b|2|{}\n", "migrate: its timer");
    is_str(read_tasks(s, &o), "k1|m1|default|q|b|1|ready|~|{}|120|0|120\n", "migrate: its task");
    memset(&g, 0, sizeof(g));
    s->ops->get_workflow(s, "default", "order", 0, wf_got_cb, &g, &err);
    ok(g.n == 1 && g.version == 1 && !strcmp(g.hash, "h1"), "migrate: its workflow");
    struct store_exec_filter f = {.namespace = "default"};
    is_str(read_list(s, &f, &o), "m2 m1 ", "migrate: listed newest first");
    s->ops->list_expired(s, 2000, 10, exec_id_cb, out_reset(&o), &err);
    is_str(o.buf, "m2 ", "migrate: retention finds the ended one");
    list_active(s, exec_id_cb, out_reset(&o), &err);
#ifndef STORE_SHARDS
    is_str(o.buf, "m1 ", "migrate: recovery finds the running one");
#endif

    /* What version 2 added works on the migrated file. */
    store_batch_init(&b);
    add_step(&b, "m1", "b", 1, "completed")->input = "{\"in\":1}";
    add_history(&b, "m1", 3, "step.completed");
    struct store_exec *e = add_exec(&b, "m1", "default", "order", "running", 100);
    e->input = "{\"i\":1}";
    e->updated_at = 130;
    is_int(suite_apply(s, &b, &err), 0, "migrate: apply to the migrated file: %s", err.message);
    s->ops->list_steps(s, "m1", step_cb, out_reset(&o), NULL);
    ok(strstr(o.buf, "m1|b|1|completed|1|~|~|~|0|0|{\"in\":1}\n") != NULL,
       "migrate: a step's input is kept: %s", oneline(o.buf));
#ifndef STORE_SHARDS
    add_history(&b, "m1", 2, "doubled");
    is_int(suite_apply(s, &b, &err), WFO_ESTORE,
           "migrate: a history seq written by version 1 is still refused twice");
#endif
    unsigned char key[32];
    is_int(s->ops->server_key(s, key, sizeof(key), &err), 0,
           "migrate: server_key on a file that had no meta table: %s", err.message);
    store_close(s);

    rawdb_run(path, "PRAGMA user_version", res, sizeof(res));
    is_str(res, SUITE_SCHEMA_VERSION "\n", "migrate: user_version is now " SUITE_SCHEMA_VERSION);
#ifndef STORE_SHARDS
    rawdb_run(path, "SELECT count(*) FROM pragma_table_info('steps') WHERE name = 'input'", res,
              sizeof(res));
    is_str(res, "1\n", "migrate: steps has an input column");
    rawdb_run(path, "SELECT name FROM sqlite_master WHERE name = 'executions_ended'", res,
              sizeof(res));
    is_str(res, "executions_ended\n", "migrate: the executions_ended index exists");
#endif
    rawdb_run(path, "PRAGMA journal_mode", res, sizeof(res));
    is_str(res, "wal\n", "migrate: the file is in WAL mode");

    /* Opening again is a no-op: same rows, same version. */
    s = suite_open("v1");
    s->ops->list_history(s, "m1", 0, 0, history_seq_cb, out_reset(&o), NULL);
    is_str(o.buf, "1 2 3 ", "migrate: reopened, the rows are there");
    store_close(s);
    rawdb_run(path, "PRAGMA user_version", res, sizeof(res));
    is_str(res, SUITE_SCHEMA_VERSION "\n", "migrate: and the version stays");
    store_batch_release(&b);
}

/* PostgreSQL keeps the version in its meta table (key schema_version). */
static void refuse_newer_schema_pg(void)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct store *s = NULL;
    char url[600], res[256];

    suite_url(url, sizeof(url), "v99");
    is_int(rawpg_run(url,
                     "CREATE TABLE meta (key TEXT PRIMARY KEY, value BYTEA NOT NULL);"
                     "INSERT INTO meta VALUES ('schema_version', '99')",
                     res, sizeof(res)),
           0, "newer: a version 99 database: %s", res);
    is_int(store_open(url, &s, &err), WFO_ESTORE, "newer: a newer schema is refused");
    ok(strstr(err.message, "99") != NULL, "newer: saying which: %s", err.message);
    ok(s == NULL, "newer: and no store is returned");
    store_close(s);
    rawpg_run(url, "SELECT convert_from(value, 'UTF8') FROM meta", res, sizeof(res));
    is_str(res, "99\n", "newer: the database is left alone");
    rawpg_run(url, "SELECT count(*) FROM pg_tables WHERE tablename = 'executions'", res,
              sizeof(res));
    is_str(res, "0\n", "newer: no table is made");
}

TEST(refuse_newer_schema)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct store *s = NULL;
    char path[512], url[600], res[256], sql[8192];

    if (suite_is("postgres")) {
        refuse_newer_schema_pg();
        return;
    }
    suite_path(path, sizeof(path), "v99");
    snprintf(sql, sizeof(sql), "%sPRAGMA user_version = 99;", rawdb_schema_v2);
    is_int(rawdb_run(path, sql, res, sizeof(res)), 0, "newer: a version 99 file: %s", res);
    is_int(store_open(suite_url(url, sizeof(url), "v99"), &s, &err), WFO_ESTORE,
           "newer: a newer schema is refused");
    ok(strstr(err.message, "99") != NULL, "newer: saying which: %s", err.message);
    ok(s == NULL, "newer: and no store is returned");
    store_close(s);
    rawdb_run(path, "PRAGMA user_version", res, sizeof(res));
    is_str(res, "99\n", "newer: the file is left alone");
}

/* ---- 7. the server key ---- */

/* A batch of many new executions (a back end may insert them several to a
 * statement): every one is written, in order, and writing them again as
 * new updates each in place (the upsert), seq kept. */
TEST(many_new_executions)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct store_batch b;
    struct out o;
    char ids[21][24];
    int64_t seqs[21];
    struct store *s = suite_open("many");

    store_batch_init(&b);
    for (int i = 0; i < 21; i++) {
        snprintf(ids[i], sizeof(ids[i]), "many-%02d", i);
        add_exec(&b, ids[i], "default", "w", "running", 100 + i);
    }
    is_int(suite_apply(s, &b, &err), 0, "many: 21 new executions: %s", err.message);
    int ordered = 1, all = 1;
    for (int i = 0; i < 21; i++) {
        seqs[i] = exec_seq(s, ids[i]);
        all &= seqs[i] > 0;
        ordered &= i == 0 || seqs[i] > seqs[i - 1];
    }
    ok(all, "many: every one is written");
    ok(ordered, "many: seq in batch order");
    store_batch_reset(&b);
    for (int i = 0; i < 21; i++)
        add_exec(&b, ids[i], "default", "w2", "completed", 100 + i)->finished_at = 500 + i;
    is_int(suite_apply(s, &b, &err), 0, "many: written again as new: %s", err.message);
    int kept = 1;
    for (int i = 0; i < 21; i++)
        kept &= exec_seq(s, ids[i]) == seqs[i];
    ok(kept, "many: the upsert keeps every seq");
    is_str(read_exec(s, ids[20], &o), "many-20|default|w2|1|completed|{}|~|~|~|~|~|120|120|520\n",
           "many: the last one updated in place");
    is_str(read_exec(s, ids[3], &o), "many-03|default|w2|1|completed|{}|~|~|~|~|~|103|103|503\n",
           "many: one of the first eight too");
    store_batch_release(&b);
    store_close(s);
}

TEST(server_key)
{
    struct wfo_error err = WFO_ERROR_INIT;
    unsigned char k1[32], k2[32], k3[32], k4[32], zero[32] = {0};

    struct store *s = suite_open("key");
    is_int(s->ops->server_key(s, k1, sizeof(k1), &err), 0, "key: made: %s", err.message);
    ok(memcmp(k1, zero, sizeof(k1)) != 0, "key: not zeros");
    s->ops->server_key(s, k2, sizeof(k2), &err);
    ok(memcmp(k1, k2, sizeof(k1)) == 0, "key: the same when asked again");
    struct store *s2 = suite_open("key");
    s2->ops->server_key(s2, k3, sizeof(k3), &err);
    ok(memcmp(k1, k3, sizeof(k1)) == 0, "key: the same from another store on the file");
    store_close(s2);
    store_close(s);

    s = suite_open("key");
    memset(k2, 0, sizeof(k2));
    is_int(s->ops->server_key(s, k2, sizeof(k2), &err), 0, "key: after reopen: %s", err.message);
    ok(memcmp(k1, k2, sizeof(k1)) == 0, "key: stable across reopen");
    store_close(s);

    s = suite_open("key-other");
    s->ops->server_key(s, k4, sizeof(k4), &err);
    ok(memcmp(k1, k4, sizeof(k1)) != 0, "key: another store has another key");
    store_close(s);
}

#ifdef STORE_HAS_EVENTS
static int ev_ids(void *ud, const struct store_event *r)
{
    struct wfo_buf *b = ud;
    wfo_buf_addf(b, "%s|%s|%s|%s;", r->id, r->key ? r->key : "~", r->data ? r->data : "~",
                 r->seq > 0 ? "seq" : "noseq");
    return 0;
}

static int ev_attrs(void *ud, const struct store_event *r)
{
    struct wfo_buf *b = ud;
    wfo_buf_addf(b, "%s|%s;", r->id, r->attrs ? r->attrs : "~");
    return 0;
}

static int sig_ids(void *ud, const struct store_signal *r)
{
    struct wfo_buf *b = ud;
    wfo_buf_addf(b, "%s|%s;", r->id, r->data ? r->data : "~");
    return 0;
}

TEST(events)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct store_batch b;
    struct wfo_buf o = WFO_BUF_INIT;
    int created = -1;
    struct store *s = suite_open("events");

    struct store_event e1 = {.namespace = "default",
                             .id = "e1",
                             .type = "t",
                             .key = "k",
                             .data = "{\"n\":1}",
                             .published_at = 1000};
    is_int(s->ops->put_event(s, &e1, &created, ev_ids, &o, &err), 0, "events: put: %s",
           err.message);
    is_int(created, 1, "events: created");
    is_str(o.buf, "e1|k|{\"n\":1}|seq;", "events: the stored row");
    wfo_buf_reset(&o);
    struct store_event e1b = e1;
    e1b.data = "{\"n\":2}";
    is_int(s->ops->put_event(s, &e1b, &created, ev_ids, &o, &err), 0, "events: again");
    is_int(created, 0, "events: the same id is stored once");
    is_str(o.buf, "e1|k|{\"n\":1}|seq;", "events: the first one's record");
    struct store_event e2 = {
        .namespace = "default", .id = "e2", .type = "t", .key = "k", .published_at = 2000};
    struct store_event e3 = {
        .namespace = "other", .id = "e1", .type = "t", .key = "k", .published_at = 2000};
    s->ops->put_event(s, &e2, &created, NULL, NULL, &err);
    s->ops->put_event(s, &e3, &created, NULL, NULL, &err);
    is_int(created, 1, "events: ids are per namespace");

    wfo_buf_reset(&o);
    is_int(s->ops->find_events(s, "default", "t", "k", 0, "x1", 10, ev_ids, &o, &err), 0,
           "events: find");
    is_str(o.buf, "e1|k|{\"n\":1}|seq;e2|k|~|seq;", "events: oldest first");
    wfo_buf_reset(&o);
    s->ops->find_events(s, "default", "t", "k", 1500, "x1", 10, ev_ids, &o, &err);
    is_str(o.buf, "e2|k|~|seq;", "events: only those published after");
    wfo_buf_reset(&o);
    is_int(s->ops->find_events(s, NULL, NULL, NULL, 1500, NULL, 10, ev_ids, &o, &err), 0,
           "events: recent ones of every namespace");
    is_str(o.buf, "e1|k|~|seq;e2|k|~|seq;", "events: no type: every namespace's, newest first");
    wfo_buf_reset(&o);
    s->ops->find_events(s, NULL, NULL, NULL, 0, NULL, 2, ev_ids, &o, &err);
    is_str(o.buf, "e1|k|~|seq;e2|k|~|seq;", "events: no type: at most limit, the newest");

    /* a CloudEvent's other attributes: kept as given, by put_event and by
     * a batch, and read back by both reads */
    struct store_event ea = {.namespace = "ce",
                             .id = "a1",
                             .type = "t",
                             .attrs = "{\"myext\":\"v\",\"data_base64\":\"aGk=\"}",
                             .published_at = 1000};
    wfo_buf_reset(&o);
    is_int(s->ops->put_event(s, &ea, &created, ev_attrs, &o, &err), 0, "events: attrs: %s",
           err.message);
    is_str(o.buf, "a1|{\"myext\":\"v\",\"data_base64\":\"aGk=\"};", "events: attrs stored");
    store_batch_init(&b);
    add_exec(&b, "xa", "ce", "w", "running", 1)->chunk = 1;
    struct store_event *eb = store_batch_event(&b);
    eb->namespace = "ce";
    eb->id = "a2";
    eb->type = "t";
    eb->attrs = "{\"n\":1}";
    eb->published_at = eb->time = 1100;
    is_int(suite_apply(s, &b, &err), 0, "events: attrs in a batch: %s", err.message);
    store_batch_release(&b);
    wfo_buf_reset(&o);
    s->ops->find_events(s, "ce", "t", NULL, 0, "x1", 10, ev_attrs, &o, &err);
    is_str(o.buf, "a1|{\"myext\":\"v\",\"data_base64\":\"aGk=\"};a2|{\"n\":1};",
           "events: attrs read back");
    wfo_buf_reset(&o);
    s->ops->put_event(s, &e1, &created, ev_attrs, &o, &err);
    is_str(o.buf, "e1|~;", "events: none: NULL");

    /* a consumption, with its execution, in one batch */
    store_batch_init(&b);
    add_exec(&b, "x1", "default", "w", "running", 1)->chunk = 1;
    store_batch_consume(&b, "x1", "e1");
    is_int(suite_apply(s, &b, &err), 0, "events: consume: %s", err.message);
    wfo_buf_reset(&o);
    s->ops->find_events(s, "default", "t", "k", 0, "x1", 10, ev_ids, &o, &err);
    is_str(o.buf, "e2|k|~|seq;", "events: consumed ones are skipped");
    wfo_buf_reset(&o);
    s->ops->find_events(s, "default", "t", "k", 0, "x2", 10, ev_ids, &o, &err);
    ok(strstr(o.buf, "e1|") != NULL, "events: another execution still sees it");
    store_batch_reset(&b);
    add_exec(&b, "x1", "default", "w", "running", 1)->chunk = 2;
    store_batch_consume(&b, "x1", "e1");
    ok(suite_apply(s, &b, &err) < 0, "events: consumed twice by one execution fails the batch");

    /* signals */
    struct store_signal g1 = {.id = "g1", .exec_id = "x1", .name = "go", .data = "1", .time = 5};
    struct store_signal g2 = {.id = "g2", .exec_id = "x1", .name = "go", .time = 6};
    is_int(s->ops->put_signal(s, &g1, &err), 0, "signals: put: %s", err.message);
    is_int(s->ops->put_signal(s, &g2, &err), 0, "signals: put another");
    struct store_signal gx = {.id = "g3", .exec_id = "nobody", .name = "go"};
    is_int(s->ops->put_signal(s, &gx, &err), WFO_ENOTFOUND, "signals: unknown execution");
    wfo_buf_reset(&o);
    s->ops->find_signals(s, "x1", "go", 10, sig_ids, &o, &err);
    is_str(o.buf, "g1|1;g2|~;", "signals: in order");
    store_batch_reset(&b);
    add_exec(&b, "x1", "default", "w", "completed", 1)->chunk = 3;
    store_batch_signal_del(&b, "x1", "g1");
    is_int(suite_apply(s, &b, &err), 0, "signals: consume: %s", err.message);
    wfo_buf_reset(&o);
    s->ops->find_signals(s, "x1", "go", 10, sig_ids, &o, &err);
    is_str(o.buf, "g2|~;", "signals: the consumed one is gone");
    struct store_signal g4 = {.id = "g4", .exec_id = "x1", .name = "go"};
    is_int(s->ops->put_signal(s, &g4, &err), WFO_ESTATE, "signals: to an ended execution");
    store_batch_release(&b);
    wfo_buf_release(&o);
    store_close(s);
}
#endif

#ifdef STORE_HAS_OUTBOX
static int ob_rows(void *ud, const struct store_outbox *r)
{
    struct wfo_buf *b = ud;
    wfo_buf_addf(b, "%s|%s|%s|%s|%s;", r->event_id, r->type, r->key ? r->key : "~",
                 r->exec_id ? r->exec_id : "~", r->event);
    return 0;
}

static int ob_seqs(void *ud, const struct store_outbox *r)
{
    int64_t *last = ud;
    if (r->seq <= *last)
        *last = -1000000;
    else if (*last >= 0)
        *last = r->seq;
    return 0;
}

TEST(outbox)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct store_batch b;
    struct wfo_buf o = WFO_BUF_INIT;
    int created = -1, n = -1;
    int64_t seq = -1, seq2 = -1, last = 0;
    struct store *s = suite_open("outbox");

    is_int(s->ops->outbox_seq(s, "default", NULL, &seq, &err), 0, "outbox: last of none: %s",
           err.message);
    is_int(seq, 0, "outbox: an empty outbox's last seq is 0");
    /* a posted event and its outbox row, in one transaction */
    struct store_event e1 = {.namespace = "default",
                             .id = "p1",
                             .type = "order.created",
                             .key = "o1",
                             .published_at = 1000,
                             .outbox = "{\"id\":\"p1\"}"};
    is_int(s->ops->put_event(s, &e1, &created, NULL, NULL, &err), 0, "outbox: put_event: %s",
           err.message);
    is_int(s->ops->put_event(s, &e1, &created, NULL, NULL, &err), 0, "outbox: put again");
    is_int(created, 0, "outbox: a duplicate event is not created");
    struct store_event e2 = {.namespace = "other", .id = "p2", .type = "t", .outbox = "{}"};
    s->ops->put_event(s, &e2, &created, NULL, NULL, &err);
    struct store_event e3 = {.namespace = "default", .id = "p3", .type = "t"};
    s->ops->put_event(s, &e3, &created, NULL, NULL, &err);
    is_int(created, 1, "outbox: an event without outbox JSON is stored");

    /* rows in a batch, with the state change */
    store_batch_init(&b);
    add_exec(&b, "x1", "default", "w", "completed", 1)->chunk = 1;
    struct store_outbox *r = store_batch_outbox(&b);
    *r = (struct store_outbox){.event_id = "l1",
                               .namespace = "default",
                               .type = "execution.started",
                               .key = "x1",
                               .exec_id = "x1",
                               .event = "{\"id\":\"l1\"}",
                               .time = 2000};
    r = store_batch_outbox(&b);
    *r = (struct store_outbox){.event_id = "l2",
                               .namespace = "default",
                               .type = "execution.completed",
                               .key = "x1",
                               .exec_id = "x1",
                               .event = "{\"id\":\"l2\"}",
                               .time = 3000};
    ok(!store_batch_empty(&b), "outbox: a batch with rows is not empty");
    is_int(suite_apply(s, &b, &err), 0, "outbox: apply: %s", err.message);

    is_int(s->ops->list_outbox(s, "default", 0, 0, ob_rows, &o, &err), 0, "outbox: list: %s",
           err.message);
    is_str(o.buf,
           "p1|order.created|o1|~|{\"id\":\"p1\"};l1|execution.started|x1|x1|{\"id\":\"l1\"};"
           "l2|execution.completed|x1|x1|{\"id\":\"l2\"};",
           "outbox: the namespace's rows in commit order, once each");
    is_int(s->ops->list_outbox(s, "default", 0, 0, ob_seqs, &last, &err), 0, "outbox: seqs");
    ok(last > 0, "outbox: seqs ascend");
    is_int(s->ops->outbox_seq(s, "default", "l1", &seq, &err), 0, "outbox: seq of l1: %s",
           err.message);
    wfo_buf_reset(&o);
    s->ops->list_outbox(s, "default", seq, 0, ob_rows, &o, &err);
    is_str(o.buf, "l2|execution.completed|x1|x1|{\"id\":\"l2\"};", "outbox: after a seq");
    wfo_buf_reset(&o);
    s->ops->list_outbox(s, "default", 0, 1, ob_rows, &o, &err);
    is_str(o.buf, "p1|order.created|o1|~|{\"id\":\"p1\"};", "outbox: limit");
    is_int(s->ops->outbox_seq(s, "default", "p2", &seq2, &err), WFO_ENOTFOUND,
           "outbox: another namespace's id is not found");
    is_int(s->ops->outbox_seq(s, "default", NULL, &seq2, &err), 0, "outbox: last");
    ok(seq2 > seq, "outbox: the last seq is the newest row's");
    wfo_buf_reset(&o);
    s->ops->list_outbox(s, "other", 0, 0, ob_rows, &o, &err);
    is_str(o.buf, "p2|t|~|~|{};", "outbox: per namespace");

    /* a batch that fails writes no outbox row */
    store_batch_reset(&b);
    add_exec(&b, "x1", "default", "w", "completed", 1)->chunk = 2;
    store_batch_consume(&b, "x1", "p1");
    store_batch_consume(&b, "x1", "p1"); /* twice: the batch is refused */
    r = store_batch_outbox(&b);
    *r = (struct store_outbox){
        .event_id = "l3", .namespace = "default", .type = "t", .event = "{}", .time = 4000};
    ok(suite_apply(s, &b, &err) < 0, "outbox: a refused batch");
    is_int(s->ops->outbox_seq(s, "default", "l3", &seq, &err), WFO_ENOTFOUND,
           "outbox: its row was not written");

    /* retention */
    is_int(s->ops->delete_outbox(s, 2500, 0, &n, &err), 0, "outbox: delete: %s", err.message);
    is_int(n, 2, "outbox: rows before the time are deleted (p1, l1; p2 has its own time)");
    wfo_buf_reset(&o);
    s->ops->list_outbox(s, "default", 0, 0, ob_rows, &o, &err);
    is_str(o.buf, "l2|execution.completed|x1|x1|{\"id\":\"l2\"};", "outbox: the newer stay");
    store_batch_release(&b);
    wfo_buf_release(&o);
    store_close(s);
}

/* ---- 8. seq is the commit order, with several writers ---- */

#define STREAM_WRITERS 2
#define STREAM_BATCHES 150 /* per writer */

struct stream_writer {
    struct store *s; /* a store of its own: another connection, another node */
    int k;
    int failed;
    atomic_int finished;
    char error[600];
};

/* Batches of one new execution and its outbox row, as fast as it can. */
static void *stream_writer_main(void *arg)
{
    struct stream_writer *w = arg;
    struct wfo_error err = WFO_ERROR_INIT;
    struct store_batch b;

    store_batch_init(&b);
    for (int i = 0; i < STREAM_BATCHES && !w->failed; i++) {
        const char *id = suite_str("w%d-%04d", w->k, i);
        add_exec(&b, id, "default", "w", "running", 1)->chunk = 1;
        *store_batch_outbox(&b) = (struct store_outbox){
            .event_id = id, .namespace = "default", .type = "t", .exec_id = id, .event = "{}"};
        if (suite_apply(w->s, &b, &err)) {
            w->failed = 1;
            snprintf(w->error, sizeof(w->error), "%s", err.message);
        }
    }
    store_batch_release(&b);
    atomic_store(&w->finished, 1);
    return NULL;
}

struct stream_seen {
    int64_t cursor;
    int n, disorder;
    char seen[STREAM_WRITERS][STREAM_BATCHES];
    int doubled;
};

static int stream_row(void *ud, const struct store_outbox *r)
{
    struct stream_seen *v = ud;
    int k = -1, i = -1;
    if (r->seq <= v->cursor)
        v->disorder++;
    v->cursor = r->seq;
    if (sscanf(r->event_id, "w%d-%d", &k, &i) == 2 && k >= 0 && k < STREAM_WRITERS && i >= 0 &&
        i < STREAM_BATCHES) {
        v->doubled += v->seen[k][i];
        v->seen[k][i] = 1;
        v->n++;
    }
    return 0;
}

/* A reader that follows the outbox by seq (the event stream's way: every
 * row after the last seq it saw) while several stores commit at once sees
 * every row once: a row is never committed after one of a higher seq was
 * visible (store.h: rows commit in seq order). On PostgreSQL, without the
 * seq lock of postgres.c (invariant 2) the reader misses rows in every
 * run. */
TEST(outbox_stream_under_concurrent_writers)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct stream_writer w[STREAM_WRITERS];
    pthread_t th[STREAM_WRITERS];
    struct stream_seen *v = calloc(1, sizeof(*v));
    struct store *r = suite_open("stream");
    int reads = 0, failed = 0;

    for (int k = 0; k < STREAM_WRITERS; k++) {
        w[k] = (struct stream_writer){.s = suite_open("stream"), .k = k};
        pthread_create(&th[k], NULL, stream_writer_main, &w[k]);
    }
    /* the last read starts after every writer has finished: it sees every
     * commit, so a row not seen by then was skipped */
    for (int last = 0; !last;) {
        last = 1;
        for (int k = 0; k < STREAM_WRITERS; k++)
            last &= atomic_load(&w[k].finished);
        if (r->ops->list_outbox(r, "default", v->cursor, 0, stream_row, v, &err)) {
            ok(0, "stream: list_outbox: %s", err.message);
            break;
        }
        reads++;
    }
    for (int k = 0; k < STREAM_WRITERS; k++) {
        pthread_join(th[k], NULL);
        if (w[k].failed)
            failed++, printf("#   writer %d: %s\n", k, w[k].error);
        store_close(w[k].s);
    }
    is_int(failed, 0, "stream: every writer's commits succeed");
    is_int(v->n, STREAM_WRITERS * STREAM_BATCHES, "stream: the reader saw every row (%d reads)",
           reads);
    is_int(v->doubled, 0, "stream: none twice");
    is_int(v->disorder, 0, "stream: in seq order");
    free(v);
    store_close(r);
}
#endif

#ifdef STORE_HAS_SUBSCRIPTIONS
static int sub_rows(void *ud, const struct store_subscription *r)
{
    struct wfo_buf *b = ud;
    wfo_buf_addf(b,
                 "%s|%s|%s|%s|%s|%s|%" PRId64 "|%" PRId64 "|%s|%d|%" PRId64 "|%s|%" PRId64
                 "|%" PRId64 ";",
                 r->id, r->namespace, r->url, r->types, r->workflow ? r->workflow : "~", r->secret,
                 r->created_at, r->cursor, r->status, r->failures, r->next_attempt_at,
                 r->last_error ? r->last_error : "~", r->last_delivery_at, r->delivered);
    return 0;
}

static void sub_event(struct store *s, const char *ns, const char *id, int64_t at)
{
    struct wfo_error err = WFO_ERROR_INIT;
    int created = 0;
    struct store_event e = {
        .namespace = ns, .id = id, .type = "t", .published_at = at, .outbox = "{}"};
    is_int(s->ops->put_event(s, &e, &created, NULL, NULL, &err), 0, "subs: event %s: %s", id,
           err.message);
}

/* The subscription ops (store.h C1): put, get, list, delete, the cursor
 * that only moves forward, failures recorded only for a row in line. */
TEST(subscriptions)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct wfo_buf o = WFO_BUF_INIT;
    int64_t seq1 = 0, seq2 = 0;
    struct store *s = suite_open("subs");

    sub_event(s, "default", "e1", 1000);
    s->ops->outbox_seq(s, "default", "e1", &seq1, &err);
    struct store_subscription a = {.id = "s1",
                                   .namespace = "default",
                                   .url = "http://x/h",
                                   .types = "[\"a.*\"]",
                                   .secret = "k1",
                                   .created_at = 50,
                                   .cursor = 999, /* ignored */
                                   .status = "failing"};
    is_int(s->ops->put_subscription(s, &a, sub_rows, &o, &err), 0, "subs: put: %s", err.message);
    is_str(o.buf,
           suite_str("s1|default|http://x/h|[\"a.*\"]|~|k1|50|%" PRId64 "|active|0|0|~|0|0;", seq1),
           "subs: the stored row, its cursor at the namespace's last row");
    is_int(s->ops->put_subscription(s, &a, NULL, NULL, &err), WFO_ECONFLICT,
           "subs: an id that exists is a conflict");
    struct store_subscription b2 = {.id = "s2",
                                    .namespace = "other",
                                    .url = "https://y/",
                                    .types = "[\"t\"]",
                                    .workflow = "w",
                                    .secret = "k2",
                                    .created_at = 60};
    is_int(s->ops->put_subscription(s, &b2, NULL, NULL, &err), 0, "subs: put another: %s",
           err.message);
    struct store_subscription c = {.id = "s3",
                                   .namespace = "default",
                                   .url = "http://z/",
                                   .types = "[\"t\"]",
                                   .secret = "k3",
                                   .created_at = 70};
    s->ops->put_subscription(s, &c, NULL, NULL, &err);
    struct store_subscription bad = {.id = "s4", .namespace = "default", .url = "http://z/"};
    ok(s->ops->put_subscription(s, &bad, NULL, NULL, &err) < 0, "subs: one without types fails");

    wfo_buf_reset(&o);
    is_int(s->ops->list_subscriptions(s, "default", sub_rows, &o, &err), 0, "subs: list: %s",
           err.message);
    ok(strncmp(o.buf, "s1|", 3) == 0 && strstr(o.buf, ";s3|") && !strstr(o.buf, "s2|"),
       "subs: the namespace's, in creation order: %s", o.buf);
    wfo_buf_reset(&o);
    s->ops->list_subscriptions(s, NULL, sub_rows, &o, &err);
    ok(strstr(o.buf, "s1|") && strstr(o.buf, "s2|") && strstr(o.buf, "s3|"),
       "subs: NULL lists every namespace's");
    wfo_buf_reset(&o);
    is_int(s->ops->get_subscription(s, "other", "s2", sub_rows, &o, &err), 0, "subs: get: %s",
           err.message);
    is_str(o.buf, "s2|other|https://y/|[\"t\"]|w|k2|60|0|active|0|0|~|0|0;",
           "subs: get, with its workflow, cursor 0 in an empty namespace");
    is_int(s->ops->get_subscription(s, "default", "s2", sub_rows, &o, &err), WFO_ENOTFOUND,
           "subs: another namespace's is not found");
    is_int(s->ops->get_subscription(s, NULL, "s2", NULL, NULL, &err) == 0 ? 0 : -1, 0,
           "subs: NULL namespace finds it");

    /* the cursor */
    sub_event(s, "default", "e2", 2000);
    s->ops->outbox_seq(s, "default", "e2", &seq2, &err);
    is_int(s->ops->subscription_failed(s, "s1", seq2, 3, "failing", 5000, "HTTP 500", &err), 0,
           "subs: a failure: %s", err.message);
    wfo_buf_reset(&o);
    s->ops->get_subscription(s, "default", "s1", sub_rows, &o, &err);
    ok(strstr(o.buf, "|failing|3|5000|HTTP 500|0|0;") != NULL, "subs: recorded: %s", o.buf);
    is_int(s->ops->subscription_delivered(s, "s1", seq2, 1, 7000, &err), 0, "subs: delivered: %s",
           err.message);
    wfo_buf_reset(&o);
    s->ops->get_subscription(s, "default", "s1", sub_rows, &o, &err);
    is_str(
        o.buf,
        suite_str("s1|default|http://x/h|[\"a.*\"]|~|k1|50|%" PRId64 "|active|0|0|~|7000|1;", seq2),
        "subs: cursor moved, back to active, failures and error cleared, counted");
    is_int(s->ops->subscription_delivered(s, "s1", seq2, 1, 8000, &err), WFO_ECONFLICT,
           "subs: the same seq again is refused");
    is_int(s->ops->subscription_delivered(s, "s1", seq1, 1, 8000, &err), WFO_ECONFLICT,
           "subs: the cursor never moves back");
    is_int(s->ops->subscription_failed(s, "s1", seq2, 1, "active", 0, "late", &err), WFO_ECONFLICT,
           "subs: a failure of a delivered row is not recorded");
    wfo_buf_reset(&o);
    s->ops->get_subscription(s, "default", "s1", sub_rows, &o, &err);
    ok(strstr(o.buf, "|active|0|0|~|7000|1;") != NULL, "subs: and nothing changed: %s", o.buf);
    is_int(s->ops->subscription_failed(s, "s3", seq2 + 100, 2, "active", 111, "boom", &err), 0,
           "subs: a failure of a later row: %s", err.message);
    is_int(s->ops->subscription_delivered(s, "s3", seq2, 0, 9000, &err), 0,
           "subs: a filtered-out row moves the cursor: %s", err.message);
    wfo_buf_reset(&o);
    s->ops->get_subscription(s, "default", "s3", sub_rows, &o, &err);
    ok(strstr(o.buf, suite_str("|%" PRId64 "|active|2|111|boom|0|0;", seq2)) != NULL,
       "subs: but is not counted delivered, and the failure stays: %s", o.buf);
    is_int(s->ops->subscription_delivered(s, "nope", 99, 1, 1, &err), WFO_ENOTFOUND,
           "subs: delivered to an unknown one");
    is_int(s->ops->subscription_failed(s, "nope", 99, 1, "active", 0, "x", &err), WFO_ENOTFOUND,
           "subs: failed of an unknown one");

    /* delete */
    is_int(s->ops->delete_subscription(s, "default", "s2", &err), WFO_ENOTFOUND,
           "subs: not another namespace's");
    is_int(s->ops->delete_subscription(s, "other", "s2", &err), 0, "subs: delete: %s", err.message);
    is_int(s->ops->delete_subscription(s, "other", "s2", &err), WFO_ENOTFOUND,
           "subs: deleted once");
    is_int(s->ops->get_subscription(s, "other", "s2", NULL, NULL, &err), WFO_ENOTFOUND,
           "subs: gone");
    wfo_buf_release(&o);
    store_close(s);
}

static int ob_ids(void *ud, const struct store_outbox *r)
{
    wfo_buf_addf(ud, "%s ", r->event_id);
    return 0;
}

/* Retention deletes only what every subscription of the row's namespace
 * has delivered (store.h C2). */
TEST(outbox_retention_keeps_undelivered)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct wfo_buf o = WFO_BUF_INIT;
    int64_t seq = 0;
    int n = -1;
    struct store *s = suite_open("obsubs");

    sub_event(s, "default", "d1", 1000);
    struct store_subscription a = {.id = "r1",
                                   .namespace = "default",
                                   .url = "http://x/",
                                   .types = "[\"t\"]",
                                   .secret = "k",
                                   .created_at = 1};
    s->ops->put_subscription(s, &a, NULL, NULL, &err);
    sub_event(s, "default", "d2", 1100);
    sub_event(s, "default", "d3", 1200);
    sub_event(s, "other", "o1", 1050);
    sub_event(s, "default", "d4", 9000);
    is_int(s->ops->delete_outbox(s, 5000, 0, &n, &err), 0, "retention: %s", err.message);
    is_int(n, 2, "retention: d1 (before the subscription) and o1 (no subscription) go");
    s->ops->list_outbox(s, "default", 0, 0, ob_ids, &o, &err);
    is_str(o.buf, "d2 d3 d4 ", "retention: the undelivered rows stay, however old");
    s->ops->outbox_seq(s, "default", "d2", &seq, &err);
    s->ops->subscription_delivered(s, "r1", seq, 1, 1300, &err);
    is_int(s->ops->delete_outbox(s, 5000, 0, &n, &err), 0, "retention again");
    is_int(n, 1, "retention: d2 delivered, so it goes");
    s->ops->outbox_seq(s, "default", "d4", &seq, &err);
    s->ops->subscription_delivered(s, "r1", seq, 1, 9100, &err);
    is_int(s->ops->delete_outbox(s, 5000, 1, &n, &err), 0, "retention, limit 1");
    is_int(n, 1, "retention: one at a time");
    wfo_buf_reset(&o);
    s->ops->list_outbox(s, "default", 0, 0, ob_ids, &o, &err);
    is_str(o.buf, "d4 ", "retention: d3 went, d4 is young");
    /* a deleted subscription holds nothing back */
    is_int(s->ops->delete_subscription(s, "default", "r1", &err), 0, "retention: delete r1");
    sub_event(s, "default", "d5", 1500);
    struct store_subscription b = {.id = "r2",
                                   .namespace = "default",
                                   .url = "http://x/",
                                   .types = "[\"t\"]",
                                   .secret = "k",
                                   .created_at = 2};
    s->ops->put_subscription(s, &b, NULL, NULL, &err);
    sub_event(s, "default", "d6", 1600);
    s->ops->delete_outbox(s, 5000, 0, &n, &err);
    is_int(n, 1, "retention: d5 goes, d6 is held by r2");
    is_int(s->ops->delete_subscription(s, "default", "r2", &err), 0, "retention: delete r2");
    s->ops->delete_outbox(s, 5000, 0, &n, &err);
    is_int(n, 1, "retention: then d6 goes");
    wfo_buf_reset(&o);
    s->ops->list_outbox(s, "default", 0, 0, ob_ids, &o, &err);
    is_str(o.buf, "d4 ", "retention: only the young row is left");
    wfo_buf_release(&o);
    store_close(s);
}

/* A version 6 file (the outbox, no subscriptions table) migrates to 7
 * and keeps its rows. Made as a version 7 store whose subscriptions table
 * is dropped and whose user_version is set back: what a version 6 wfo
 * left. */
/* PostgreSQL's first schema is 6: a database made by it gets the
 * subscriptions and nodes tables of 7 when opened, and keeps its rows. */
static void migrate_from_v6_pg(void)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct wfo_buf o = WFO_BUF_INIT;
    struct store *s = suite_open("v6pg");
    char url[600], res[256];

    sub_event(s, "default", "m1", 1000);
    store_close(s);
    suite_url(url, sizeof(url), "v6pg");
    is_int(rawpg_run(url,
                     "DROP TABLE subscriptions; DROP TABLE nodes;"
                     " ALTER TABLE events DROP COLUMN attrs;"
                     " UPDATE meta SET value = '6' WHERE key = 'schema_version'",
                     res, sizeof(res)),
           0, "migrate v6: made a version 6 database: %s", res);
    s = suite_open("v6pg");
    rawpg_run(url, "SELECT convert_from(value, 'UTF8') FROM meta WHERE key = 'schema_version'", res,
              sizeof(res));
    /* PostgreSQL's schema is 8 (events.attrs): SQLite's version 8
     * changed only its chunks */
    is_str(res, "8\n", "migrate v6: now version 8");
    rawpg_run(url, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'attrs'",
              res, sizeof(res));
    is_str(res, "1\n", "migrate v6: events.attrs is made");
    struct store_subscription sub = {.id = "s1",
                                     .namespace = "default",
                                     .url = "http://h/",
                                     .types = "[\"t\"]",
                                     .secret = "k",
                                     .created_at = 2000};
    is_int(s->ops->put_subscription(s, &sub, sub_rows, &o, &err), 0,
           "migrate v6: a subscription is stored: %s", err.message);
    ok(o.buf && strstr(o.buf, "s1|default|") != NULL, "migrate v6: and it reads back");
    int64_t seq = 0;
    is_int(s->ops->outbox_seq(s, "default", "m1", &seq, &err), 0,
           "migrate v6: the outbox row made before is kept: %s", err.message);
    wfo_buf_release(&o);
    store_close(s);
}

TEST(migrate_from_v6)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct wfo_buf o = WFO_BUF_INIT;
    char path[512], res[256];

    if (suite_is("postgres")) {
        migrate_from_v6_pg();
        return;
    }
    struct store *s = suite_open("v6");
    sub_event(s, "default", "m1", 1000);
    store_close(s);
    suite_path(path, sizeof(path), "v6");
    is_int(rawdb_run(path,
                     "DROP INDEX subscriptions_ns; DROP TABLE subscriptions;"
                     " ALTER TABLE events DROP COLUMN attrs; PRAGMA user_version = 6;",
                     res, sizeof(res)),
           0, "migrate v6: made a version 6 file: %s", res);
    rawdb_run(path, "SELECT count(*) FROM sqlite_master WHERE name = 'subscriptions'", res,
              sizeof(res));
    is_str(res, "0\n", "migrate v6: it has no subscriptions table");
    s = suite_open("v6");
    rawdb_run(path, "PRAGMA user_version", res, sizeof(res));
    is_str(res, SUITE_SCHEMA_VERSION "\n", "migrate v6: user_version is now " SUITE_SCHEMA_VERSION);
    s->ops->list_outbox(s, "default", 0, 0, ob_ids, &o, &err);
    is_str(o.buf, "m1 ", "migrate v6: the outbox rows are kept");
    struct store_subscription a = {.id = "v6s",
                                   .namespace = "default",
                                   .url = "http://x/",
                                   .types = "[\"t\"]",
                                   .secret = "k",
                                   .created_at = 1};
    wfo_buf_reset(&o);
    is_int(s->ops->put_subscription(s, &a, sub_rows, &o, &err), 0,
           "migrate v6: a subscription on the migrated file: %s", err.message);
    ok(strstr(o.buf, "v6s|default|") != NULL, "migrate v6: and it reads back");
    rawdb_run(path, "SELECT name FROM sqlite_master WHERE name = 'subscriptions_ns'", res,
              sizeof(res));
    is_str(res, "subscriptions_ns\n", "migrate v6: its index exists");
    wfo_buf_release(&o);
    store_close(s);
}

/* 7 -> 8: chunks move from a WITHOUT ROWID table keyed (exec_id, n) to a
 * rowid table in commit order with the unique index chunks_exec; every
 * chunk is kept, and a chunk written twice is still refused. */
TEST(migrate_from_v7)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct out o;
    struct store_batch b;
    char path[512], res[512];

    if (suite_is("postgres"))
        return; /* its chunks were always a heap with a key */
    struct store *s = suite_open("v7");
    store_batch_init(&b);
    add_exec(&b, "c1", "default", "w", "running", 1)->chunk = 1;
    add_history(&b, "c1", 1, "execution.started");
    add_exec(&b, "c2", "default", "w", "running", 2)->chunk = 1;
    add_history(&b, "c2", 1, "execution.started");
    is_int(suite_apply(s, &b, &err), 0, "migrate v7: first chunks: %s", err.message);
    store_batch_reset(&b);
    add_exec(&b, "c1", "default", "w", "running", 1)->chunk = 2;
    add_history(&b, "c1", 2, "step.started");
    is_int(suite_apply(s, &b, &err), 0, "migrate v7: second chunk: %s", err.message);
    store_close(s);
    suite_path(path, sizeof(path), "v7");
    is_int(rawdb_run(path,
                     "CREATE TABLE chunks_v7 (exec_id TEXT NOT NULL, n INTEGER NOT NULL,"
                     " hseq INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (exec_id, n))"
                     " WITHOUT ROWID;"
                     "INSERT INTO chunks_v7 SELECT exec_id, n, hseq, data FROM chunks;"
                     "DROP TABLE chunks; ALTER TABLE chunks_v7 RENAME TO chunks;"
                     "CREATE INDEX tasks_queue ON tasks (queue, status, ready_at);"
                     "ALTER TABLE events DROP COLUMN attrs; PRAGMA user_version = 7;",
                     res, sizeof(res)),
           0, "migrate v7: made a version 7 file: %s", res);
    s = suite_open("v7");
    rawdb_run(path, "PRAGMA user_version", res, sizeof(res));
    is_str(res, SUITE_SCHEMA_VERSION "\n", "migrate v7: user_version is now " SUITE_SCHEMA_VERSION);
    rawdb_run(path,
              "SELECT sql LIKE '%rid INTEGER PRIMARY KEY%' FROM sqlite_master"
              " WHERE name = 'chunks'",
              res, sizeof(res));
    is_str(res, "1\n", "migrate v7: chunks is a rowid table");
    rawdb_run(path, "SELECT count(*) FROM sqlite_master WHERE name = 'chunks_exec'", res,
              sizeof(res));
    is_str(res, "1\n", "migrate v7: with its index");
    rawdb_run(path, "SELECT count(*) FROM sqlite_master WHERE name = 'tasks_queue'", res,
              sizeof(res));
    is_str(res, "0\n", "migrate v7: tasks_queue, which nothing read, is gone");
    is_str(read_history(s, "c1", &o),
           "c1|1|1001|execution.started|~|~\n"
           "c1|2|1002|step.started|~|~\n",
           "migrate v7: the history of both chunks reads back");
    is_str(read_history(s, "c2", &o), "c2|1|1001|execution.started|~|~\n",
           "migrate v7: and another execution's");
    store_batch_reset(&b);
    add_exec(&b, "c1", "default", "w", "running", 1)->chunk = 2;
    add_history(&b, "c1", 3, "doubled");
    is_int(suite_apply(s, &b, &err), WFO_ESTORE, "migrate v7: a chunk written twice is refused");
    store_batch_reset(&b);
    add_exec(&b, "c1", "default", "w", "running", 1)->chunk = 3;
    add_history(&b, "c1", 3, "step.completed");
    is_int(suite_apply(s, &b, &err), 0, "migrate v7: the next chunk: %s", err.message);
    s->ops->list_history(s, "c1", 1, 0, history_seq_cb, out_reset(&o), NULL);
    is_str(o.buf, "2 3 ", "migrate v7: a page after seq 1 spans old and new chunks");
    store_batch_release(&b);
    store_close(s);
}

#ifdef STORE_HAS_EVENTS
/* SQLite 8 -> 9, PostgreSQL 7 -> 8: events get their attrs column; an
 * event stored before reads back without attrs, a new one keeps them. */
TEST(migrate_events_attrs)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct wfo_buf o = WFO_BUF_INIT;
    char path[600], res[256];
    int created = 0, pg = suite_is("postgres");
    struct store *s = suite_open("v8ev");
    struct store_event e1 = {
        .namespace = "default", .id = "old", .type = "t", .published_at = 1000};
    s->ops->put_event(s, &e1, &created, NULL, NULL, &err);
    store_close(s);
    if (pg) {
        suite_url(path, sizeof(path), "v8ev");
        is_int(rawpg_run(path,
                         "ALTER TABLE events DROP COLUMN attrs;"
                         " UPDATE meta SET value = '7' WHERE key = 'schema_version'",
                         res, sizeof(res)),
               0, "migrate attrs: made a version 7 database: %s", res);
    } else {
        suite_path(path, sizeof(path), "v8ev");
        is_int(rawdb_run(path, "ALTER TABLE events DROP COLUMN attrs; PRAGMA user_version = 8;",
                         res, sizeof(res)),
               0, "migrate attrs: made a version 8 file: %s", res);
    }
    s = suite_open("v8ev");
    if (pg)
        rawpg_run(path, "SELECT convert_from(value, 'UTF8') FROM meta WHERE key = 'schema_version'",
                  res, sizeof(res));
    else
        rawdb_run(path, "PRAGMA user_version", res, sizeof(res));
    is_str(res, pg ? "8\n" : "9\n", "migrate attrs: now the latest version");
    struct store_event e2 = {.namespace = "default",
                             .id = "new",
                             .type = "t",
                             .attrs = "{\"x\":true}",
                             .published_at = 2000};
    is_int(s->ops->put_event(s, &e2, &created, NULL, NULL, &err), 0,
           "migrate attrs: an event with attrs: %s", err.message);
    s->ops->find_events(s, "default", "t", NULL, 0, "x", 10, ev_attrs, &o, &err);
    is_str(o.buf, "old|~;new|{\"x\":true};", "migrate attrs: both read back");
    wfo_buf_release(&o);
    store_close(s);
}
#endif
#endif

/* ---- 8b. several processes open a new store at once ---- */

struct first_open {
    const char *url;
    pthread_barrier_t *go;
    int rc;
    char error[600];
};

static void *first_open_main(void *arg)
{
    struct first_open *f = arg;
    struct wfo_error err = WFO_ERROR_INIT;
    struct store *s = NULL;

    pthread_barrier_wait(f->go);
    f->rc = store_open(f->url, &s, &err);
    if (f->rc)
        snprintf(f->error, sizeof(f->error), "%s", err.message);
    store_close(s);
    return NULL;
}

static int count_shard(void *ud, const struct store_shard *r)
{
    (void)r;
    ++*(int *)ud;
    return 0;
}

/* Stores opened at the same moment on a new store make its schema once,
 * and every one of them opens (PostgreSQL: under an advisory lock, without
 * which three of four fail on the catalog's unique index; SQLite: BEGIN
 * IMMEDIATE). */
TEST(concurrent_first_open)
{
    enum { OPENERS = 4 };
    struct wfo_error err = WFO_ERROR_INIT;
    struct first_open f[OPENERS];
    pthread_t th[OPENERS];
    pthread_barrier_t go;
    char url[600];
    int failed = 0, shards = 0;

    suite_url(url, sizeof(url), "first-open");
    pthread_barrier_init(&go, NULL, OPENERS);
    for (int i = 0; i < OPENERS; i++) {
        f[i] = (struct first_open){.url = url, .go = &go};
        pthread_create(&th[i], NULL, first_open_main, &f[i]);
    }
    for (int i = 0; i < OPENERS; i++) {
        pthread_join(th[i], NULL);
        if (f[i].rc) {
            failed++;
            printf("#   opener %d: %s\n", i, f[i].error);
        }
    }
    pthread_barrier_destroy(&go);
    is_int(failed, 0, "first open: %d stores opened a new store at once", OPENERS);
    struct store *s = suite_open_bare(url);
    is_int(s->ops->list_shards(s, count_shard, &shards, &err), 0, "first open: list_shards: %s",
           err.message);
    is_int(shards, STORE_SHARDS, "first open: one row per shard, made once");
    store_close(s);
}

/* ---- 9. PostgreSQL: connections that break ---- */

/* Terminates every connection to database db (from $WFO_TEST_PG's, as
 * db may refuse connections). */
static void pg_kill_connections(const char *db)
{
    char sql[256], res[256];
    snprintf(sql, sizeof(sql),
             "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '%s'",
             db);
    rawpg_run(getenv("WFO_TEST_PG"), sql, res, sizeof(res));
}

/* The server ends the store's connections (a restart, a failover): the
 * next read and the next batch reconnect by themselves, since a connection
 * found broken after waiting in the pool is replaced and the op tried once
 * more. While the database refuses connections, ops fail at once with
 * WFO_ESTORE; once it accepts them again, the store is back within the
 * backoff (at most 5 s). */
TEST(postgres_reconnects)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct store_batch b;
    struct out o;
    char db[128], sql[256], res[256];

    if (!suite_is("postgres"))
        return;
    rawpg_dbname(suite_pg_run, "reconnect", db, sizeof(db));
    struct store *s = suite_open("reconnect");
    s->ops->set_pool_size(s, 2);
    store_batch_init(&b);
    add_exec(&b, "r1", "default", "w", "running", 1);
    is_int(suite_apply(s, &b, &err), 0, "reconnect: a batch: %s", err.message);

    pg_kill_connections(db);
    memset(&err, 0, sizeof(err));
    is_int(s->ops->get_exec(s, "r1", exec_cb, out_reset(&o), &err), 0,
           "reconnect: a read after the server ended the connections: %s", err.message);
    pg_kill_connections(db);
    add_exec(&b, "r2", "default", "w", "running", 2);
    is_int(suite_apply(s, &b, &err), 0, "reconnect: a batch after it too: %s", err.message);
    is_int(exec_rc(s, "r2"), 0, "reconnect: and it is written");

    snprintf(sql, sizeof(sql), "ALTER DATABASE %s ALLOW_CONNECTIONS false", db);
    rawpg_run(getenv("WFO_TEST_PG"), sql, res, sizeof(res));
    pg_kill_connections(db);
    int64_t t0 = suite_now_ms();
    memset(&err, 0, sizeof(err));
    int rc1 = s->ops->get_exec(s, "r1", exec_cb, out_reset(&o), &err);
    ok(rc1 == WFO_ESTORE, "reconnect: a read while the database refuses connections fails: %s",
       err.message);
    add_exec(&b, "r3", "default", "w", "running", 3);
    is_int(suite_apply(s, &b, &err), WFO_ESTORE, "reconnect: so does a batch: %s", err.message);
    ok(suite_now_ms() - t0 < 5000, "reconnect: at once (%lld ms)",
       (long long)(suite_now_ms() - t0));
    snprintf(sql, sizeof(sql), "ALTER DATABASE %s ALLOW_CONNECTIONS true", db);
    rawpg_run(getenv("WFO_TEST_PG"), sql, res, sizeof(res));
    int rc = -1;
    for (int i = 0; i < 80 && rc != 0; i++) {
        struct timespec ts = {0, 100 * 1000000};
        nanosleep(&ts, NULL);
        memset(&err, 0, sizeof(err));
        rc = s->ops->get_exec(s, "r1", exec_cb, out_reset(&o), &err);
    }
    is_int(rc, 0, "reconnect: back once the database accepts connections: %s", err.message);
    is_int(exec_rc(s, "r3"), WFO_ENOTFOUND, "reconnect: the failed batch wrote nothing");
    store_batch_release(&b);
    store_close(s);
}

int main(int argc, char **argv)
{
    return suite_run(argc, argv);
}
