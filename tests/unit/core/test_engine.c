/*
 * test_engine.c - unit tests of src/core/engine.c through the library API:
 * the lifecycle (nothing runs before wfo_engine_launch(), which runs once);
 * every execution started from many threads at once ends, through rounds committed by the writer
 * thread and by the engine thread.
 */
#include "common/compat.h"

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wfo/wfo.h"
#include "common/duration.h"
#include "common/json.h"
#include "common/util.h"
#include "../tap.h"

static const char *two_tasks =
    "name: two\nsteps:\n"
    "  - {name: a, type: task, queue: q, input: '${ .input }'}\n"
    "  - {name: b, type: task, queue: q, input: '${ .steps.a.output }'}\n";

static int echo(void *ud, const struct wfo_task *t, char **output, char **error)
{
    *output = wfo_strdup(t->input);
    return 0;
}

/* Threads of this process named name. */
static int threads_named(const char *name)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *de;
    int n = 0;
    if (!d)
        return -1;
    while ((de = readdir(d))) {
        char path[300], comm[64] = "";
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "/proc/self/task/%s/comm", de->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        if (fgets(comm, sizeof(comm), f))
            comm[strcspn(comm, "\n")] = 0;
        fclose(f);
        n += strcmp(comm, name) == 0;
    }
    closedir(d);
    return n;
}

/* A new SQLite file named from the template db, and its store URL. */
static void temp_db(char *db, char *url, size_t size)
{
    int fd = mkstemp(db);
    if (fd >= 0)
        close(fd);
    snprintf(url, size, "sqlite:%s", db);
}

/* The file db and its WAL and shared-memory files. */
static void remove_db(const char *db)
{
    char p[80];
    unlink(db);
    snprintf(p, sizeof(p), "%s-wal", db);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", db);
    unlink(p);
}

#define STARTERS 24
#define EACH 20

struct starter {
    struct wfo_engine *e;
    int base;
    int failed;
    char ids[EACH][WFO_ID_SIZE];
};

static pthread_barrier_t go;

static void *start_some(void *arg)
{
    struct starter *s = arg;
    pthread_barrier_wait(&go); /* all first calls at once */
    for (int i = 0; i < EACH; i++) {
        char in[32], *id = NULL;
        struct wfo_error err = WFO_ERROR_INIT;
        snprintf(in, sizeof(in), "{\"n\": %d}", s->base + i);
        if (wfo_engine_start(s->e, "two", 0, in, NULL, NULL, &id, &err) < 0) {
            s->failed++;
            continue;
        }
        snprintf(s->ids[i], WFO_ID_SIZE, "%s", id);
        free(id);
    }
    return NULL;
}

TEST(launch_once_then_concurrent_starts_all_end)
{
    char db[] = "/tmp/wfo-test-engine-XXXXXX", url[64];
    temp_db(db, url, sizeof(url));
    struct wfo_engine_options opt = {.db_url = url, .runner_threads = 4};
    struct wfo_engine *e = NULL;
    struct wfo_error err = WFO_ERROR_INIT;
    is_int(wfo_engine_new(&opt, &e, &err), 0, "engine opens a file store: %s", err.message);
    is_int(wfo_engine_handle(e, "q", echo, NULL), 0, "handler registered");
    is_int(wfo_engine_put_workflow(e, two_tasks, strlen(two_tasks), NULL, NULL, NULL, &err), 0,
           "workflow registered: %s", err.message);
    is_int(threads_named("wfo-engine"), 0, "no engine thread before the launch");
    is_int(wfo_engine_start(e, "two", 0, NULL, NULL, NULL, NULL, &err), WFO_ESTATE,
           "a start before the launch is refused");
    is_int(wfo_engine_launch(e, &err), 0, "launched: %s", err.message);
    is_int(wfo_engine_launch(e, &err), WFO_ESTATE, "a second launch is refused");
    is_int(wfo_engine_handle(e, "late", echo, NULL), WFO_ESTATE,
           "a handler after the launch is refused");

    struct starter st[STARTERS];
    pthread_t th[STARTERS];
    pthread_barrier_init(&go, NULL, STARTERS);
    for (int i = 0; i < STARTERS; i++) {
        memset(&st[i], 0, sizeof(st[i]));
        st[i].e = e;
        st[i].base = i * EACH;
        pthread_create(&th[i], NULL, start_some, &st[i]);
    }
    int failed = 0;
    for (int i = 0; i < STARTERS; i++) {
        pthread_join(th[i], NULL);
        failed += st[i].failed;
    }
    pthread_barrier_destroy(&go);
    is_int(failed, 0, "%d starts from %d threads at once all accepted", STARTERS * EACH, STARTERS);
    is_int(threads_named("wfo-engine"), 1, "one engine thread");
    is_int(threads_named("wfo-writer"), 1, "one writer thread");
    is_int(threads_named("wfo-runner"), 4, "the runner threads, once");

    int ended = 0, right = 0;
    int64_t until = wfo_mono_ms() + 60000; /* a stuck engine fails, not hangs */
    for (int i = 0; i < STARTERS; i++) {
        for (int k = 0; k < EACH; k++) {
            char *text = NULL;
            json_t *doc = NULL;
            int64_t left = until - wfo_mono_ms();
            if (wfo_engine_get(e, st[i].ids[k], left > 0 ? left : 1, &text, &err) < 0)
                continue;
            if (wfo_json_parse(text, strlen(text), &doc, NULL) == 0) {
                const char *status = wfo_json_str(doc, "status");
                ended += status && strcmp(status, "completed") == 0;
                json_t *n = json_object_get(wfo_json_obj(doc, "output"), "n");
                right += json_integer_value(n) == st[i].base + k;
            }
            json_decref(doc);
            free(text);
        }
    }
    is_int(ended, STARTERS * EACH, "every execution completed");
    is_int(right, STARTERS * EACH, "each with its own output");
    wfo_engine_free(e);
    remove_db(db);
}

/* The first number a query of the SQLite file db prints (the sqlite3
 * tool: another wfo store on the file would fence the engine). */
static int store_rows(const char *db, const char *sql)
{
    char cmd[512], out[64] = "";
    snprintf(cmd, sizeof(cmd), "sqlite3 '%s' \"%s\" 2>/dev/null", db, sql);
    FILE *f = popen(cmd, "r");
    if (!f)
        return -1;
    int ok = fgets(out, sizeof(out), f) != NULL;
    pclose(f);
    return ok ? (int)strtol(out, NULL, 10) : -1;
}

/* wfo_engine_start_many: n starts in one call, each its own execution
 * with its own input and a new id; bad arguments refuse the whole call. */
TEST(start_many)
{
    char db[] = "/tmp/wfo-test-engine-XXXXXX", url[64];
    temp_db(db, url, sizeof(url));
    struct wfo_engine_options opt = {.db_url = url, .runner_threads = 2};
    struct wfo_engine *e = NULL;
    struct wfo_error err = WFO_ERROR_INIT;
    enum { N = 40 };
    char in[N][32], *ids[N];
    const char *inputs[N];
    for (int i = 0; i < N; i++) {
        snprintf(in[i], sizeof(in[i]), "{\"n\": %d}", 100 + i);
        inputs[i] = in[i];
    }
    is_int(wfo_engine_new(&opt, &e, &err), 0, "engine: %s", err.message);
    wfo_engine_handle(e, "q", echo, NULL);
    wfo_engine_put_workflow(e, two_tasks, strlen(two_tasks), NULL, NULL, NULL, &err);
    is_int(wfo_engine_start_many(e, "two", 0, N, inputs, ids, &err), WFO_ESTATE,
           "before the launch: refused");
    is_int(wfo_engine_launch(e, &err), 0, "launched: %s", err.message);
    is_int(wfo_engine_start_many(e, "two", 0, 0, inputs, ids, &err), WFO_EINVAL, "n 0: refused");
    inputs[3] = "{\"n\": ";
    is_int(wfo_engine_start_many(e, "two", 0, N, inputs, ids, &err), WFO_EPARSE,
           "an input that is not JSON refuses the call");
    ok(strncmp(err.message, "inputs[3]: ", 11) == 0, "naming it: %s", err.message);
    int none = 1;
    for (int i = 0; i < N; i++)
        none &= ids[i] == NULL;
    ok(none, "no id given out");
    inputs[3] = in[3];
    is_int(wfo_engine_start_many(e, "nosuch", 0, N, inputs, ids, &err), WFO_ENOTFOUND,
           "an unknown workflow: %s", err.message);
    is_int(store_rows(db, "SELECT count(*) FROM executions"), 0,
           "nothing started by the refused calls");

    is_int(wfo_engine_start_many(e, "two", 0, N, inputs, ids, &err), 0, "%d started: %s", N,
           err.message);
    int distinct = 1, right = 0, ended = 0;
    for (int i = 0; i < N; i++)
        for (int k = i + 1; k < N; k++)
            distinct &= ids[i] && ids[k] && strcmp(ids[i], ids[k]) != 0;
    ok(distinct, "each with an id of its own");
    int64_t until = wfo_mono_ms() + 60000;
    for (int i = 0; i < N; i++) {
        char *text = NULL;
        json_t *doc = NULL;
        int64_t left = until - wfo_mono_ms();
        if (ids[i] && wfo_engine_get(e, ids[i], left > 0 ? left : 1, &text, &err) == 0 &&
            wfo_json_parse(text, strlen(text), &doc, NULL) == 0) {
            const char *status = wfo_json_str(doc, "status");
            ended += status && strcmp(status, "completed") == 0;
            right +=
                json_integer_value(json_object_get(wfo_json_obj(doc, "output"), "n")) == 100 + i;
        }
        json_decref(doc);
        free(text);
    }
    is_int(ended, N, "every one completed");
    is_int(right, N, "each with its own input's output, ids in the inputs' order");
    for (int i = 0; i < N; i++)
        free(ids[i]);
    is_int(wfo_engine_start_many(e, "two", 0, 2, NULL, NULL, &err), 0,
           "inputs NULL: every input {}, ids not wanted");
    is_int(store_rows(db, "SELECT count(*) FROM executions"), N + 2, "%d executions in the store",
           N + 2);
    wfo_engine_free(e);
    remove_db(db);
}

int main(void)
{
    return tap_run();
}
