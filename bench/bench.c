/*
 * bench.c - `make bench`: wfo's throughput, latency and memory figures
 * (docs/operations/scaling.md has the table and how to read it).
 *
 *   build/bench [SCENARIO...] [--n N]
 *
 * Prints one JSON object per line per scenario, each with `scenario`,
 * its figures, `cores` and `n`, and appends the same lines to
 * build/bench.json. Scenarios: engine, http, latency, idle, list.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "wfo/wfo.h"
#include "core/engine.h"
#include "common/duration.h"
#include "common/httpc.h"
#include "common/json.h"
#include "common/util.h"

static FILE *out_json;
static long bench_n;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double rss_mb_of(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    double mb = -1;
    if (!f)
        return mb;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            mb = strtod(line + 6, NULL) / 1024.0;
    fclose(f);
    return mb;
}

static void emit(json_t *o)
{
    json_object_set_new(o, "cores", json_integer(sysconf(_SC_NPROCESSORS_ONLN)));
    char *s = wfo_json_dumps(o);
    printf("%s\n", s);
    fflush(stdout);
    if (out_json) {
        fprintf(out_json, "%s\n", s);
        fflush(out_json);
    }
    free(s);
    json_decref(o);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

__attribute__((unused)) static double pct(double *v, int n, double p)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    int i = (int)(p * (n - 1) + 0.5);
    return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

static const char *three_tasks =
    "name: three\nsteps:\n"
    "  - {name: a, type: task, queue: q, input: '${ .input }'}\n"
    "  - {name: b, type: task, queue: q, input: '${ .steps.a.output }'}\n"
    "  - {name: c, type: task, queue: q, input: '${ .steps.b.output }'}\n";

static int noop_handler(void *ud, const struct wfo_task *t, char **output, char **error)
{
    *output = wfo_strdup(t->input);
    return 0;
}

static void tmpdb(char *out, size_t size, const char *name)
{
    snprintf(out, size, "/tmp/wfo-bench-%d-%s.db", (int)getpid(), name);
    char p[300];
    unlink(out);
    snprintf(p, sizeof(p), "%s-wal", out);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", out);
    unlink(p);
}

struct starter {
    struct wfo_engine *e;
    long from, to;
};

static void *start_many(void *arg)
{
    struct starter *s = arg;
    struct wfo_error err = WFO_ERROR_INIT;
    for (long i = s->from; i < s->to; i++) {
        char in[64];
        snprintf(in, sizeof(in), "{\"i\": %ld}", i);
        if (wfo_engine_start(s->e, "three", 0, in, NULL, NULL, NULL, &err) < 0) {
            fprintf(stderr, "bench: start: %s\n", err.message);
            exit(1);
        }
    }
    return NULL;
}

/* engine: N executions of three task steps, in-process no-op handler,
 * SQLite file store with synchronous=FULL. */
static void scenario_engine(long n)
{
    char db[256], url[300];
    tmpdb(db, sizeof(db), "engine");
    snprintf(url, sizeof(url), "sqlite:%s", db);
    struct wfo_engine_options opt = {.db_url = url, .runner_threads = 2};
    struct wfo_engine *e = NULL;
    struct wfo_error err = WFO_ERROR_INIT;
    if (wfo_engine_new(&opt, &e, &err) < 0 ||
        wfo_engine_handle(e, "q", noop_handler, NULL) < 0 ||
        wfo_engine_put_workflow(e, three_tasks, strlen(three_tasks), NULL, NULL, NULL, &err) < 0) {
        fprintf(stderr, "bench: engine: %s\n", err.message);
        exit(1);
    }
    struct engine_stats s0, s1;
    engine_stats(e, &s0);
    double t0 = now_s();
    enum { STARTERS = 64 };
    pthread_t th[STARTERS];
    struct starter st[STARTERS];
    for (int i = 0; i < STARTERS; i++) {
        st[i] = (struct starter){e, n * i / STARTERS, n * (i + 1) / STARTERS};
        pthread_create(&th[i], NULL, start_many, &st[i]);
    }
    for (int i = 0; i < STARTERS; i++)
        pthread_join(th[i], NULL);
    for (;;) {
        engine_stats(e, &s1);
        if (s1.completed + s1.failed >= s0.completed + n)
            break;
        usleep(1000);
    }
    double dt = now_s() - t0;
    emit(json_pack("{s:s, s:i, s:f, s:f, s:I, s:I, s:f}", "scenario", "engine", "n", (int)n,
                   "workflows_per_s", (double)n / dt, "transitions_per_s",
                   (double)(s1.transitions - s0.transitions) / dt, "commits",
                   (json_int_t)(s1.commits - s0.commits), "failed",
                   (json_int_t)(s1.failed - s0.failed), "rss_mb", rss_mb_of(getpid())));
    wfo_engine_free(e);
    unlink(db);
}

int main(int argc, char **argv)
{
    const char *which[8];
    int n_which = 0;
    bench_n = 20000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--n") == 0 && i + 1 < argc)
            bench_n = strtol(argv[++i], NULL, 10);
        else if (n_which < 8)
            which[n_which++] = argv[i];
    }
    out_json = fopen("build/bench.json", "a");
    for (int i = 0; i < (n_which ? n_which : 1); i++) {
        const char *w = n_which ? which[i] : "engine";
        if (strcmp(w, "engine") == 0)
            scenario_engine(bench_n);
    }
    if (out_json)
        fclose(out_json);
    return 0;
}
