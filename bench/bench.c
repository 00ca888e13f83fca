/*
 * bench.c - `make bench`: wfo's throughput, latency and memory figures
 * (docs/operations/scaling.md has the table and how to read it;
 * docs/implementation/database_optimization.md the design they measure).
 *
 *   build/bench [SCENARIO...] [--n N]
 *
 * Prints one JSON object per line per scenario, each with `scenario`, its
 * figures, `cores`, `load1` (the 1-minute load average when the line was
 * written) and `n`, and writes the same lines to build/bench.json (the
 * file is rewritten by every run). Scenarios (all six when none is named,
 * latency first: it is measured on an idle machine, before the throughput
 * scenarios load it):
 *
 *   engine   N executions of three task steps, in-process no-op handler,
 *            SQLite file store (synchronous=FULL); started by 8 threads
 *            with wfo_engine_start_many, 64 a call (512 in flight)
 *   http     `wfo server` (a child process, its default configuration)
 *            with 4 worker processes on the HTTP worker protocol (one poll
 *            loop each, polls of up to 50 tasks, their results completed
 *            in one request); N executions started over HTTP, 64 at a time
 *            from 2 threads (httpc_do_many)
 *   latency  200 executions one after another, start to completion seen by
 *            the client: in-process, and over HTTP (?wait=) with a
 *            long-polling worker
 *   idle     min(5N, 100000) executions asleep in the server: its RSS, and
 *            the time to answer and the RSS of a restart that recovers
 *            them; then min(N/2, 10000) timers due in the same second: the
 *            fire lag
 *   list     a store of 50N finished executions (1,000,000 by default),
 *            written straight through the store API: latency of list pages
 *            and of GET /v1/executions/{id}
 *   events   `wfo server` with min(N, 5000) executions each waiting
 *            (await_event) on its own key; as many events published by
 *            POST /v1/events from a few threads (the cap keeps the run
 *            short: each event is a store transaction of its own, so
 *            intake is bound by commit latency): events/s accepted,
 *            events/s matched (first publish to the last execution
 *            completed), the server's CPU per event. Then a webhook
 *            subscription to a receiver inside the bench (libmicrohttpd,
 *            answers 200) and N more events: deliveries/s until the
 *            receiver has seen them all (null, with a reason, when the
 *            server answers POST /v1/subscriptions with 501)
 *
 * BENCH_DB=postgres runs them on PostgreSQL: each store is a fresh
 * database of the server named by BENCH_PG (or WFO_TEST_PG: `make bench
 * BENCH_DB=postgres` starts a throwaway one with tests/pg/pg.sh), dropped
 * afterwards; the engine and http lines then add `pg`: per workflow, the
 * transactions, statements (pg_stat_statements, when the server loads
 * it) and rows inserted, updated and deleted in that database, counted
 * once the store is closed (so setup is included), and the CPU the
 * server used per workflow (`pg_cpu_us_per_workflow`, for a server of
 * tests/pg/pg.sh).
 *
 * BENCH_NODES=K (1 to 8; default 1) runs the http scenario on K servers
 * sharing one store with cluster.enabled (docs/operations/scaling.md
 * "Several nodes"): they start one after another and share the shards
 * before the run; each worker process polls one node and the starts go
 * round them; the line's `nodes` says K, and its CPU, commits and RSS are
 * the sum over the nodes.
 *
 * The servers inherit the bench's environment, so WFO_* variables set for
 * it configure them (WFO_HTTP_THREADS=4 build/bench http); the lines of
 * the scenarios with a server then name it (`"env": {"WFO_HTTP_THREADS":
 * "4"}`).
 *
 * Every scenario prints its line even when something fails (with an
 * `error` field), bounds every wait, and removes its temporary files and
 * child processes. Children are also killed if the bench dies
 * (PR_SET_PDEATHSIG), so a killed bench leaves no server behind.
 */
#include "common/compat.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <microhttpd.h>
#include <netinet/in.h>

#include "common/duration.h"
#include "common/httpc.h"
#include "common/json.h"
#include "common/util.h"
#include "core/engine.h"
#include "store/store.h"
#include "wfo/wfo.h"

static FILE *out_json;
static long bench_n;
static int bench_nodes = 1;  /* BENCH_NODES: the http scenario's servers on one store */
static const char *bench_pg; /* BENCH_DB=postgres: the server's base URL; NULL: SQLite */
static char wfo_bin[512];    /* build/wfo, next to this program */

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

/* CPU seconds (user + system) a process has used so far; -1 if unknown.
 * Less noisy than wall-clock rates on a shared machine. */
static double cpu_s_of(pid_t pid)
{
    char path[64], line[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    double s = -1;
    if (fgets(line, sizeof(line), f)) {
        const char *p = strrchr(line, ')'); /* after the command name */
        unsigned long long ut, st;
        if (p &&
            sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) == 2)
            s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
    }
    fclose(f);
    return s;
}

/* CPU seconds of the children reaped so far. */
static double children_cpu_s(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_CHILDREN, &ru) < 0)
        return 0;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static double load1(void)
{
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1)
            l = -1;
        fclose(f);
    }
    return l;
}

/* Adds `error` when err holds one, `cores` and `load1`, prints the line
 * and writes it to build/bench.json. Takes o. */
static void emit_err(json_t *o, const struct wfo_error *err)
{
    if (err && err->code)
        json_object_set_new(o, "error", json_string(err->message));
    json_object_set_new(o, "cores", json_integer(sysconf(_SC_NPROCESSORS_ONLN)));
    json_object_set_new(o, "load1", json_real(load1()));
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

/* A scenario's line: {scenario, n, ...}. */
static json_t *line_new(const char *scenario)
{
    return json_pack("{s:s, s:s, s:I}", "scenario", scenario, "store",
                     bench_pg ? "postgres" : "sqlite", "n", (json_int_t)bench_n);
}

/* Adds "env": the WFO_* variables the server inherits, when there are. */
static void line_server_env(json_t *o)
{
    extern char **environ;
    json_t *env = json_object();
    for (char **e = environ; *e; e++) {
        const char *eq = strchr(*e, '=');
        /* WFO_TEST_PG: tests/pg/pg.sh's URL for the bench, not a setting */
        if (strncmp(*e, "WFO_", 4) == 0 && strncmp(*e, "WFO_TEST_", 9) != 0 && eq) {
            char key[128];
            snprintf(key, sizeof(key), "%.*s", (int)(eq - *e), *e);
            json_object_set_new(env, key, json_string(eq + 1));
        }
    }
    if (json_object_size(env))
        json_object_set_new(o, "env", env);
    else
        json_decref(env);
}

/* Records the first failure of a scenario; later ones are dropped. */
static void fail(struct wfo_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct wfo_error *err, const char *fmt, ...)
{
    va_list ap;
    if (err->code)
        return;
    va_start(ap, fmt);
    wfo_error_setv(err, WFO_EIO, fmt, ap);
    va_end(ap);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The p-quantile (0..1) of v[0..n), sorting v; -1 when n is 0. */
static double pct(double *v, int n, double p)
{
    if (n <= 0)
        return -1;
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    int i = (int)(p * (n - 1) + 0.5);
    return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

/* Sets p50_ms, p99_ms and max_ms of v[0..n) on o. */
static void set_pcts(json_t *o, const char *prefix, double *v, int n)
{
    char k[64];
    if (n <= 0)
        return;
    snprintf(k, sizeof(k), "%sp50_ms", prefix);
    json_object_set_new(o, k, json_real(pct(v, n, 0.50)));
    snprintf(k, sizeof(k), "%sp99_ms", prefix);
    json_object_set_new(o, k, json_real(pct(v, n, 0.99)));
    snprintf(k, sizeof(k), "%smax_ms", prefix);
    json_object_set_new(o, k, json_real(v[n - 1]));
}

static const char *three_tasks =
    "name: three\nsteps:\n"
    "  - {name: a, type: task, queue: q, input: '${ .input }'}\n"
    "  - {name: b, type: task, queue: q, input: '${ .steps.a.output }'}\n"
    "  - {name: c, type: task, queue: q, input: '${ .steps.b.output }'}\n";

/* The same definition as JSON, and the two sleeping ones, for the API. */
static const char *three_json =
    "{\"name\": \"three\", \"steps\": ["
    "{\"name\": \"a\", \"type\": \"task\", \"queue\": \"q\", \"input\": \"${ "
    ".input }\"},"
    "{\"name\": \"b\", \"type\": \"task\", \"queue\": \"q\", \"input\": \"${ "
    ".steps.a.output }\"},"
    "{\"name\": \"c\", \"type\": \"task\", \"queue\": \"q\", \"input\": \"${ "
    ".steps.b.output }\"}]}";
static const char *nap_json =
    "{\"name\": \"nap\", \"steps\": [{\"name\": \"s\", \"type\": \"sleep\", "
    "\"duration\": \"1h\"}]}";
static const char *timer_json = "{\"name\": \"timer\", \"steps\": [{\"name\": \"s\", \"type\": "
                                "\"sleep\", \"until\": \"${ .input.at }\"}]}";

static int noop_handler(void *ud, const struct wfo_task *t, char **output, char **error)
{
    *output = wfo_strdup(t->input);
    return 0;
}

/* ---- the store: a SQLite file, or a PostgreSQL database (BENCH_DB) ---- */

/* The database of a store "path" (/tmp/wfo-bench-PID-NAME.db):
 * wfo_bench_PID_NAME. */
static void pg_dbname(const char *path, char *out, size_t size)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strcspn(base, ".");
    snprintf(out, size, "%.*s", (int)n, base);
    for (char *p = out; *p; p++)
        if (*p == '-')
            *p = '_';
}

/* url (postgres://AUTH/DB?PARAMS) with its database replaced by db. */
static void pg_url_of(const char *url, const char *db, char *out, size_t size)
{
    const char *auth = strstr(url, "://");
    auth = auth ? auth + 3 : url;
    size_t alen = strcspn(auth, "/?");
    const char *rest = auth + alen;
    if (*rest == '/')
        rest += strcspn(rest, "?");
    snprintf(out, size, "%.*s/%s%s", (int)(auth + alen - url), url, db, rest);
}

/* Runs sql on url; the first value of its first row into out (may be
 * NULL). 0, or -1 with the message in out. */
static int pg_run(const char *url, const char *sql, char *out, size_t size)
{
    PGconn *c = PQconnectdb(url);
    int rc = -1;
    if (out)
        out[0] = '\0';
    if (PQstatus(c) == CONNECTION_OK) {
        PGresult *r = PQexec(c, sql);
        ExecStatusType st = PQresultStatus(r);
        rc = st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK ? 0 : -1;
        if (out && rc == 0 && PQntuples(r) > 0)
            snprintf(out, size, "%s", PQgetvalue(r, 0, 0));
        else if (out && rc < 0)
            snprintf(out, size, "%s", PQresultErrorMessage(r));
        PQclear(r);
    } else if (out) {
        snprintf(out, size, "%s", PQerrorMessage(c));
    }
    PQfinish(c);
    return rc;
}

/* The --db of the store at path. */
static void db_url(const char *path, char *out, size_t size)
{
    char db[128];
    if (!bench_pg) {
        snprintf(out, size, "sqlite:%s", path);
        return;
    }
    pg_dbname(path, db, sizeof(db));
    pg_url_of(bench_pg, db, out, size);
}

/* utime + stime (and, with children, cutime + cstime) of pid, seconds;
 * *ppid its parent. -1 if unknown. */
static double proc_cpu_s(pid_t pid, int children, pid_t *ppid)
{
    char path[64], line[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    double s = -1;
    if (!f)
        return -1;
    if (fgets(line, sizeof(line), f)) {
        const char *p = strrchr(line, ')');
        int pp;
        unsigned long long ut, st, cut, cst;
        if (p && sscanf(p + 2, "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu",
                        &pp, &ut, &st, &cut, &cst) == 5) {
            s = (double)(ut + st + (children ? cut + cst : 0)) / (double)sysconf(_SC_CLK_TCK);
            if (ppid)
                *ppid = pp;
        }
    }
    fclose(f);
    return s;
}

/* The CPU seconds the PostgreSQL server has used so far: its postmaster,
 * the backends that exited (reaped: the postmaster's children times) and
 * those alive. Only for a server of tests/pg/pg.sh (host=DIR, with
 * DIR/data/postmaster.pid); -1 otherwise. */
static double pg_cpu_s(void)
{
    char path[600], line[64];
    const char *h = bench_pg ? strstr(bench_pg, "host=") : NULL;
    if (!h)
        return -1;
    h += 5;
    snprintf(path, sizeof(path), "%.*s/data/postmaster.pid", (int)strcspn(h, "&"), h);
    FILE *f = fopen(path, "r");
    pid_t pm = 0;
    if (f && fgets(line, sizeof(line), f))
        pm = (pid_t)strtol(line, NULL, 10);
    if (f)
        fclose(f);
    double total = pm > 0 ? proc_cpu_s(pm, 1, NULL) : -1;
    if (total < 0)
        return -1;
    DIR *d = opendir("/proc");
    struct dirent *de;
    while (d && (de = readdir(d))) {
        pid_t pid = (pid_t)strtol(de->d_name, NULL, 10), pp = 0;
        if (pid <= 0)
            continue;
        double c = proc_cpu_s(pid, 0, &pp);
        if (c > 0 && pp == pm)
            total += c;
    }
    if (d)
        closedir(d);
    return total;
}

/* PostgreSQL's counts of the store at path, per workflow, as `pg`. */
static void pg_counts(json_t *o, const char *path, long n)
{
    char url[512], v[5][64];
    if (!bench_pg)
        return;
    db_url(path, url, sizeof(url));
    static const char *const sql[5] = {
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
        "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements"
        " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
        "SELECT tup_inserted FROM pg_stat_database WHERE datname = current_database()",
        "SELECT tup_updated FROM pg_stat_database WHERE datname = current_database()",
        "SELECT tup_deleted FROM pg_stat_database WHERE datname = current_database()",
    };
    static const char *const key[5] = {"transactions", "statements", "rows_inserted",
                                       "rows_updated", "rows_deleted"};
    json_t *pg = json_object();
    for (int i = 0; i < 5; i++)
        if (pg_run(url, sql[i], v[i], sizeof(v[i])) == 0)
            json_object_set_new(pg, key[i], json_real(strtod(v[i], NULL) / (double)n));
    json_object_set_new(o, "pg_per_workflow", pg);
}

static void unlink_db(const char *path)
{
    char p[300];

    if (getenv("WFO_BENCH_KEEP")) /* to look at the store afterwards */
        return;
    if (bench_pg) {
        char db[128], sql[256];
        pg_dbname(path, db, sizeof(db));
        snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", db);
        pg_run(bench_pg, sql, NULL, 0);
        return;
    }
    unlink(path);
    snprintf(p, sizeof(p), "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", path);
    unlink(p);
}

/* A new, empty store named name: out gets its "path" (db_url gives the
 * URL). */
static void tmpdb(char *out, size_t size, const char *name)
{
    snprintf(out, size, "/tmp/wfo-bench-%d-%s.db", (int)getpid(), name);
    if (!bench_pg) {
        unlink_db(out);
        return;
    }
    char db[128], sql[256], msg[256];
    pg_dbname(out, db, sizeof(db));
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", db);
    pg_run(bench_pg, sql, NULL, 0);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", db);
    if (pg_run(bench_pg, sql, msg, sizeof(msg)) < 0)
        fprintf(stderr, "bench: creating database %s: %s\n", db, msg);
    /* per-statement counts, when the server preloads the module */
    char url[512];
    db_url(out, url, sizeof(url));
    pg_run(url, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements", NULL, 0);
}

/* ---- HTTP client (common/httpc.h: one connection per request) ---- */

#define REQ_TIMEOUT_MS 30000

/* One request. *status gets the HTTP status; *out (may be NULL) the parsed
 * JSON body (NULL when it is not JSON); *text (may be NULL) the raw body,
 * malloc'd. 0 when a response came, -1 with err set otherwise. */
static int req_do(const char *method, const char *url, const char *body, int64_t timeout_ms,
                  long *status, json_t **out, char **text, struct wfo_error *err)
{
    char ct_name[] = "Content-Type", ct_value[] = "application/json";
    struct httpc_header h = {ct_name, ct_value};
    struct httpc_request r = {
        .method = method,
        .url = url,
        .headers = body ? &h : NULL,
        .n_headers = body ? 1 : 0,
        .body = body,
        .body_len = body ? strlen(body) : 0,
        .timeout_ms = timeout_ms,
    };
    struct httpc_response res;
    struct wfo_error e = WFO_ERROR_INIT;
    int rc = httpc_do(&r, &res, &e);
    if (out)
        *out = NULL;
    if (text)
        *text = NULL;
    if (rc < 0) {
        fail(err, "%s %s: %s", method, url, e.message);
        httpc_response_release(&res);
        return -1;
    }
    *status = res.status;
    if (out)
        wfo_json_parse(res.body.buf, res.body.len, out, NULL);
    if (text)
        *text = wfo_strdup(res.body.buf);
    httpc_response_release(&res);
    return 0;
}

/* A request that must answer want (or 200/201 when want is 0), its body
 * parsed into *out (may be NULL). */
static int req_json(const char *method, const char *url, const char *body, int64_t timeout_ms,
                    long want, json_t **out, struct wfo_error *err)
{
    long status = 0;
    json_t *o = NULL;
    if (req_do(method, url, body, timeout_ms, &status, &o, NULL, err) < 0)
        return -1;
    if (want ? status != want : status != 200 && status != 201) {
        const char *m = wfo_json_str(wfo_json_obj(o, "error"), "message");
        fail(err, "%s %s: status %ld: %s", method, url, status, m ? m : "");
        json_decref(o);
        return -1;
    }
    if (out)
        *out = o;
    else
        json_decref(o);
    return 0;
}

/* The value of the sample of /metrics whose line starts with name; -1
 * when absent. */
static double metric(const char *base, const char *name)
{
    char url[256];
    char *text = NULL;
    long status = 0;
    double v = -1;
    struct wfo_error ignore = WFO_ERROR_INIT;
    snprintf(url, sizeof(url), "%s/metrics", base);
    if (req_do("GET", url, NULL, 10000, &status, NULL, &text, &ignore) < 0)
        return v;
    size_t len = strlen(name);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, name, len) == 0 && p[len] == ' ')
            v = strtod(p + len + 1, NULL);
    free(text);
    return v;
}

/* The sum of the samples whose line starts with prefix (every label set
 * of a counter: "wfo_http_requests_total{"); -1 when unreachable. */
static double metric_prefix(const char *base, const char *prefix)
{
    char url[256];
    char *text = NULL;
    long status = 0;
    struct wfo_error ignore = WFO_ERROR_INIT;
    snprintf(url, sizeof(url), "%s/metrics", base);
    if (req_do("GET", url, NULL, 10000, &status, NULL, &text, &ignore) < 0)
        return -1;
    size_t len = strlen(prefix);
    double v = 0;
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        const char *sp = strchr(p, ' ');
        if (strncmp(p, prefix, len) == 0 && sp)
            v += strtod(sp + 1, NULL);
    }
    free(text);
    return v;
}

/* ---- the server, a child process ---- */

struct server {
    pid_t pid;
    char db[256];
    char log[256];
    char base[128]; /* http://127.0.0.1:PORT */
};

/* Stops the server (SIGTERM, then SIGKILL after 20 s) and keeps its files. */
static void server_end(struct server *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        double until = now_s() + 20;
        while (waitpid(s->pid, NULL, WNOHANG) == 0) {
            if (now_s() > until) {
                kill(s->pid, SIGKILL);
                waitpid(s->pid, NULL, 0);
                break;
            }
            usleep(10000);
        }
        s->pid = 0;
    }
}

static void server_stop(struct server *s)
{
    server_end(s);
    if (s->db[0])
        unlink_db(s->db);
    if (s->log[0])
        unlink(s->log);
}

/* The last line of the server's log, for error messages. */
static void server_last_log(const struct server *s, char *out, size_t size)
{
    char line[512];
    FILE *f = fopen(s->log, "r");
    out[0] = '\0';
    if (!f)
        return;
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0])
            snprintf(out, size, "%s", line);
    }
    fclose(f);
}

/* Starts `wfo server` on s->db (a new empty file unless keep_db) listening
 * on a free loopback port, and waits until /healthz answers. Must be called
 * from the main thread (PR_SET_PDEATHSIG follows the thread that forks). */
static int server_start(struct server *s, const char *name, int keep_db, struct wfo_error *err)
{
    char url[300], text[4096], last[512];
    if (!keep_db)
        tmpdb(s->db, sizeof(s->db), name);
    snprintf(s->log, sizeof(s->log), "/tmp/wfo-bench-%d-%s.log", (int)getpid(), name);
    unlink(s->log); /* a restart must not read the last server's address */
    db_url(s->db, url, sizeof(url));
    pid_t parent = getpid();
    fflush(stdout);
    s->pid = fork();
    if (s->pid < 0) {
        fail(err, "fork: %s", strerror(errno));
        return -1;
    }
    if (s->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        int lf = open(s->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int nul = open("/dev/null", O_RDWR);
        if (lf < 0 || nul < 0)
            _exit(126);
        dup2(nul, 0);
        dup2(nul, 1);
        dup2(lf, 2);
        execl(wfo_bin, "wfo", "server", "--listen", "127.0.0.1:0", "--db", url, (char *)NULL);
        dprintf(2, "cannot run %s: %s\n", wfo_bin, strerror(errno));
        _exit(127);
    }
    double until = now_s() + 60;
    s->base[0] = '\0';
    while (!s->base[0]) {
        if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
            s->pid = 0;
            server_last_log(s, last, sizeof(last));
            fail(err, "%s server exited at start: %s", wfo_bin, last);
            return -1;
        }
        if (now_s() > until) {
            fail(err, "server did not say where it listens within 60 s");
            return -1;
        }
        FILE *f = fopen(s->log, "r");
        size_t got = f ? fread(text, 1, sizeof(text) - 1, f) : 0;
        if (f)
            fclose(f);
        text[got] = '\0';
        const char *p = strstr(text, "listening on http://");
        if (p && strchr(p, '\n')) {
            p += strlen("listening on ");
            snprintf(s->base, sizeof(s->base), "%.*s", (int)strcspn(p, " \n"), p);
        } else {
            usleep(5000);
        }
    }
    char health[200];
    snprintf(health, sizeof(health), "%s/healthz", s->base);
    for (;;) {
        long status = 0;
        struct wfo_error ignore = WFO_ERROR_INIT;
        if (req_do("GET", health, NULL, 2000, &status, NULL, NULL, &ignore) == 0 && status == 200)
            return 0;
        if (now_s() > until) {
            fail(err, "%s does not answer 200 within 60 s", health);
            return -1;
        }
        usleep(10000);
    }
}

static int server_put(const struct server *s, const char *name, const char *def,
                      struct wfo_error *err)
{
    char url[256];
    snprintf(url, sizeof(url), "%s/v1/workflows/%s", s->base, name);
    return req_json("PUT", url, def, REQ_TIMEOUT_MS, 0, NULL, err);
}

/* ---- worker processes: the HTTP worker protocol with batch polls ---- */

/* Shared by the bench and its worker processes (MAP_SHARED). */
struct wshared {
    atomic_long completed; /* tasks completed (200) */
    atomic_long errors;
    atomic_int err_set;
    char err[512];
};

struct wopts {
    const char *base; /* or, with several nodes, bases[process % n_bases] */
    const char *const *bases;
    int n_bases;
    int processes;
    int threads; /* per process, each its own poll/complete loop */
    int max;     /* tasks per poll */
    const char *wait;
};

struct wthread {
    const struct wopts *o;
    struct wshared *sh;
    char name[32];
};

static volatile sig_atomic_t worker_stop;

static void worker_on_term(int sig)
{
    worker_stop = 1;
}

static void worker_error(struct wshared *sh, const struct wfo_error *e)
{
    atomic_fetch_add(&sh->errors, 1);
    if (atomic_exchange(&sh->err_set, 1) == 0)
        snprintf(sh->err, sizeof(sh->err), "%s", e->message);
}

/* poll {queues: [q], worker, max, wait}; then the whole batch's results
 * {task_id, lease, output: input} in one POST /v1/tasks/complete, which
 * asks for the next tasks too (its poll: what the results' commit made
 * ready comes back in the answer, no poll between two tasks); polls again
 * only when that answer has none; until SIGTERM. */
static void *worker_loop(void *arg)
{
    struct wthread *w = arg;
    char poll_url[256], url[256];
    snprintf(poll_url, sizeof(poll_url), "%s/v1/tasks/poll", w->o->base);
    snprintf(url, sizeof(url), "%s/v1/tasks/complete", w->o->base);
    json_t *pb = json_pack("{s:[s], s:s, s:i, s:s}", "queues", "q", "worker", w->name, "max",
                           w->o->max, "wait", w->o->wait);
    char *poll_body = wfo_json_dumps(pb);
    json_object_del(pb, "wait");
    json_t *r = NULL; /* the answer that holds the tasks to run */
    while (!worker_stop) {
        struct wfo_error e = WFO_ERROR_INIT;
        json_t *done = NULL;
        if (json_array_size(wfo_json_arr(r, "tasks")) == 0) {
            json_decref(r);
            r = NULL;
            if (req_json("POST", poll_url, poll_body, REQ_TIMEOUT_MS, 200, &r, &e) < 0) {
                worker_error(w->sh, &e);
                usleep(10000);
                continue;
            }
        }
        size_t i;
        json_t *t, *results = json_array();
        json_array_foreach(wfo_json_arr(r, "tasks"), i, t)
        {
            json_array_append_new(results, json_pack("{s:O?, s:O?, s:O?}", "task_id",
                                                     json_object_get(t, "task_id"), "lease",
                                                     json_object_get(t, "lease"), "output",
                                                     json_object_get(t, "input")));
        }
        json_decref(r);
        r = NULL;
        if (json_array_size(results)) {
            json_t *cb = json_pack("{s:o, s:O}", "results", results, "poll", pb);
            char *body = wfo_json_dumps(cb);
            json_decref(cb);
            if (req_json("POST", url, body, REQ_TIMEOUT_MS, 200, &done, &e) < 0) {
                worker_error(w->sh, &e);
            } else {
                json_array_foreach(wfo_json_arr(done, "results"), i, t)
                {
                    const char *st = wfo_json_str(t, "status");
                    if (st && strcmp(st, "completed") == 0) {
                        atomic_fetch_add(&w->sh->completed, 1);
                    } else {
                        struct wfo_error ce = WFO_ERROR_INIT;
                        wfo_error_set(&ce, WFO_ECONFLICT, "completing %s: %s",
                                      wfo_json_str(t, "task_id"),
                                      wfo_json_str(wfo_json_obj(t, "error"), "message"));
                        worker_error(w->sh, &ce);
                    }
                }
                r = done; /* its tasks run next */
                done = NULL;
            }
            free(body);
        } else {
            json_decref(results);
        }
        json_decref(done);
    }
    json_decref(r);
    json_decref(pb);
    free(poll_body);
    return NULL;
}

static void worker_main(const struct wopts *o, struct wshared *sh, int index)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = worker_on_term;
    sigaction(SIGTERM, &sa, NULL);
    struct wthread *w = wfo_calloc((size_t)o->threads, sizeof(*w));
    pthread_t *th = wfo_calloc((size_t)o->threads, sizeof(*th));
    struct wopts mine = *o; /* this process's node */
    if (o->n_bases > 0)
        mine.base = o->bases[index % o->n_bases];
    o = &mine;
    for (int i = 0; i < o->threads; i++) {
        w[i] = (struct wthread){o, sh, ""};
        snprintf(w[i].name, sizeof(w[i].name), "bench-%d.%d", index, i);
        if (i > 0)
            pthread_create(&th[i], NULL, worker_loop, &w[i]);
    }
    worker_loop(&w[0]);
    for (int i = 1; i < o->threads; i++)
        pthread_join(th[i], NULL);
    _exit(0);
}

/* Forks o->processes workers into pids[]; 0 or -1 (those forked stay in
 * pids[] for workers_stop). */
static int workers_start(const struct wopts *o, struct wshared *sh, pid_t *pids,
                         struct wfo_error *err)
{
    pid_t parent = getpid();
    fflush(stdout);
    for (int i = 0; i < o->processes; i++) {
        pids[i] = fork();
        if (pids[i] < 0) {
            fail(err, "fork: %s", strerror(errno));
            return -1;
        }
        if (pids[i] == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent)
                _exit(1);
            worker_main(o, sh, i);
        }
    }
    return 0;
}

/* SIGTERM, then SIGKILL after 5 s. */
static void workers_stop(pid_t *pids, int n)
{
    for (int i = 0; i < n; i++)
        if (pids[i] > 0)
            kill(pids[i], SIGTERM);
    double until = now_s() + 5;
    for (int i = 0; i < n; i++) {
        if (pids[i] <= 0)
            continue;
        while (waitpid(pids[i], NULL, WNOHANG) == 0) {
            if (now_s() > until) {
                kill(pids[i], SIGKILL);
                waitpid(pids[i], NULL, 0);
                break;
            }
            usleep(5000);
        }
        pids[i] = 0;
    }
}

static struct wshared *wshared_new(void)
{
    void *p = mmap(NULL, sizeof(struct wshared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                   -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    memset(p, 0, sizeof(struct wshared));
    return p;
}

static void wshared_free(struct wshared *sh)
{
    if (sh)
        munmap(sh, sizeof(*sh));
}

/* ---- many requests from a few threads ---- */

struct par {
    long n;
    atomic_long next;
    atomic_long failures;
    double deadline; /* now_s() */
    int (*fn)(struct par *p, long i, struct wfo_error *err);
    void *ud;
    pthread_mutex_t mu;
    struct wfo_error err; /* the first failure */
};

#define PAR_MAX_FAILURES 100

static void par_failed(struct par *p, const struct wfo_error *e);

static void *par_main(void *arg)
{
    struct par *p = arg;
    for (;;) {
        long i = atomic_fetch_add(&p->next, 1);
        if (i >= p->n)
            break;
        struct wfo_error e = WFO_ERROR_INIT;
        if (now_s() > p->deadline)
            fail(&e, "timed out after %ld of %ld requests", i, p->n);
        if (e.code || p->fn(p, i, &e) < 0)
            par_failed(p, &e);
    }
    return NULL;
}

/* Counts a failure, keeping the first; past many of them (or the
 * deadline) the rest is skipped. */
static void par_failed(struct par *p, const struct wfo_error *e)
{
    pthread_mutex_lock(&p->mu);
    if (!p->err.code)
        p->err = *e;
    pthread_mutex_unlock(&p->mu);
    if (atomic_fetch_add(&p->failures, 1) + 1 >= PAR_MAX_FAILURES || now_s() > p->deadline)
        atomic_store(&p->next, p->n);
}

/* Runs main(args + i * size) on each of `threads` threads (at most 64),
 * or once on this one when none starts, and joins them; with p's counters
 * and deadline set first. The number of p's failures. */
static long par_threads(struct par *p, int threads, double seconds, void *(*main)(void *),
                        char *args, size_t size)
{
    pthread_t th[64];
    if (threads > 64)
        threads = 64;
    atomic_store(&p->next, 0);
    atomic_store(&p->failures, 0);
    p->deadline = now_s() + seconds;
    pthread_mutex_init(&p->mu, NULL);
    int started = 0;
    for (int i = 0; i < threads; i++)
        if (pthread_create(&th[started], NULL, main, args + (size_t)i * size) == 0)
            started++;
    if (!started)
        main(args);
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    pthread_mutex_destroy(&p->mu);
    return atomic_load(&p->failures);
}

/* Runs p->fn(p, i) for i in [0, n) on `threads` threads; the number of
 * failures (0: all went well). */
static long par_run(struct par *p, int threads, double seconds)
{
    return par_threads(p, threads, seconds, par_main, (char *)p, 0);
}

/* ---- engine ---- */

struct starter {
    struct wfo_engine *e;
    long from, to;
    struct wfo_error err;
};

/* The engine scenario's clients: ENGINE_STARTERS threads, each starting
 * its share ENGINE_BATCH at a time with wfo_engine_start_many (which
 * returns once all of them committed), so ENGINE_STARTERS * ENGINE_BATCH
 * starts are in flight. 256 threads calling wfo_engine_start one at a time
 * spent about a quarter of the machine's CPU on their own wake-ups (perf:
 * the kernel's context switches in the "bench" threads), which the engine
 * then lacked. */
#define ENGINE_STARTERS 8
#define ENGINE_BATCH 64

static void *start_many(void *arg)
{
    struct starter *s = arg;
    char in[ENGINE_BATCH][64];
    const char *inputs[ENGINE_BATCH];
    for (long i = s->from; i < s->to; i += ENGINE_BATCH) {
        int k = 0;
        for (; k < ENGINE_BATCH && i + k < s->to; k++) {
            snprintf(in[k], sizeof(in[k]), "{\"i\": %ld}", i + k);
            inputs[k] = in[k];
        }
        if (wfo_engine_start_many(s->e, "three", 0, k, inputs, NULL, &s->err) < 0)
            break;
    }
    return NULL;
}

/* engine: N executions of three task steps, in-process no-op handler,
 * SQLite file store with synchronous=FULL. */
static void scenario_engine(long n)
{
    char db[256], url[300];
    tmpdb(db, sizeof(db), "engine");
    db_url(db, url, sizeof(url));
    struct wfo_engine_options opt = {.db_url = url, .runner_threads = 2};
    struct wfo_engine *e = NULL;
    struct wfo_error err = WFO_ERROR_INIT;
    double pg_cpu0 = -1;
    json_t *o = line_new("engine");
    if (wfo_engine_new(&opt, &e, &err) < 0 || wfo_engine_handle(e, "q", noop_handler, NULL) < 0 ||
        wfo_engine_launch(e, &err) < 0 ||
        wfo_engine_put_workflow(e, three_tasks, strlen(three_tasks), NULL, NULL, NULL, &err) < 0) {
        if (!err.code)
            fail(&err, "engine: cannot register the handler");
        goto out;
    }
    struct engine_stats s0, s1;
    engine_stats(e, &s0);
    double t0 = now_s(), cpu0 = cpu_s_of(getpid());
    pg_cpu0 = pg_cpu_s();
    pthread_t th[ENGINE_STARTERS];
    struct starter st[ENGINE_STARTERS];
    json_object_set_new(o, "in_flight", json_integer(ENGINE_STARTERS * ENGINE_BATCH));
    for (int i = 0; i < ENGINE_STARTERS; i++) {
        st[i] = (struct starter){e, n * i / ENGINE_STARTERS, n * (i + 1) / ENGINE_STARTERS,
                                 WFO_ERROR_INIT};
        pthread_create(&th[i], NULL, start_many, &st[i]);
    }
    for (int i = 0; i < ENGINE_STARTERS; i++) {
        pthread_join(th[i], NULL);
        if (st[i].err.code && !err.code)
            err = st[i].err;
    }
    if (err.code)
        goto out;
    double until = now_s() + 60 + (double)n / 100;
    for (;;) {
        engine_stats(e, &s1);
        if (s1.completed + s1.failed >= s0.completed + n)
            break;
        if (now_s() > until) {
            fail(&err, "timed out: %lld of %ld executions ended",
                 s1.completed + s1.failed - s0.completed, n);
            break;
        }
        usleep(1000);
    }
    double dt = now_s() - t0;
    json_object_update_new(
        o, json_pack("{s:f, s:f, s:f, s:I, s:I, s:f}", "workflows_per_s", (double)n / dt,
                     "transitions_per_s", (double)(s1.transitions - s0.transitions) / dt,
                     "cpu_us_per_workflow", (cpu_s_of(getpid()) - cpu0) * 1e6 / (double)n,
                     "commits", (json_int_t)(s1.commits - s0.commits), "failed",
                     (json_int_t)(s1.failed - s0.failed), "rss_mb", rss_mb_of(getpid())));
    if (s1.commits > s0.commits)
        json_object_set_new(
            o, "commit_ms_mean",
            json_real((s1.commit_ms_sum - s0.commit_ms_sum) / (double)(s1.commits - s0.commits)));
out:
    wfo_engine_free(e);
    if (!err.code && pg_cpu0 >= 0) /* the backends exited: their CPU is the postmaster's */
        json_object_set_new(o, "pg_cpu_us_per_workflow",
                            json_real((pg_cpu_s() - pg_cpu0) * 1e6 / (double)n));
    if (!err.code)
        pg_counts(o, db, n); /* once the store is closed: its counts are flushed */
    emit_err(o, &err);
    unlink_db(db);
}

/* ---- http ---- */

struct start_ud {
    const char *base; /* or, with several nodes, bases[i % n_bases] for start i */
    const char *const *bases;
    int n_bases;
    const char *workflow;
    const char *input_fmt; /* printf format of the input with one %ld, or one %s */
    const char *input_s;
    char (*ids)[WFO_ID_SIZE]; /* may be NULL: the new ids */
    double *done_at;          /* may be NULL: wall-clock ms when each start returned */
};

/* Start i's request: POST /v1/executions {workflow, input}. */
static void start_request(const struct start_ud *u, long i, char url[256], char body[512])
{
    char input[256];
    snprintf(url, 256, "%s/v1/executions", u->n_bases ? u->bases[i % u->n_bases] : u->base);
    if (u->input_s)
        snprintf(input, sizeof(input), u->input_fmt, u->input_s);
    else
        snprintf(input, sizeof(input), u->input_fmt, i);
    snprintf(body, 512, "{\"workflow\": \"%s\", \"input\": %s}", u->workflow, input);
}

/* Start i's answer: 0 when 201. Only with u->ids is the document parsed
 * (for its id): the client's CPU is the server's in this benchmark (they
 * share the cores), so it does not parse what it does not need. */
static int start_answer(struct start_ud *u, long i, const char *url, long status, const char *text,
                        size_t len, struct wfo_error *err)
{
    if (status != 201) {
        fail(err, "POST %s: status %ld: %.200s", url, status, text ? text : "");
        return -1;
    }
    if (u->ids) {
        json_t *r = NULL;
        wfo_json_parse(text, len, &r, NULL);
        snprintf(u->ids[i], WFO_ID_SIZE, "%s", wfo_json_str(r, "id") ? wfo_json_str(r, "id") : "");
        json_decref(r);
    }
    if (u->done_at)
        u->done_at[i] = (double)wfo_now_ms();
    return 0;
}

/* One start, blocking (par_run). */
static int start_one(struct par *p, long i, struct wfo_error *err)
{
    struct start_ud *u = p->ud;
    char url[256], body[512];
    start_request(u, i, url, body);
    long status = 0;
    char *text = NULL;
    if (req_do("POST", url, body, REQ_TIMEOUT_MS, &status, NULL, &text, err) < 0)
        return -1;
    int rc = start_answer(u, i, url, status, text, text ? strlen(text) : 0, err);
    free(text);
    return rc;
}

/* Starts from one thread, STARTS_PARALLEL of them in flight
 * (httpc_do_many): a thread blocked on each request costs the shared
 * cores a wake-up per answer, and the answers of one commit arrive
 * together. */
#define STARTS_PARALLEL 32

struct starts_thread {
    struct par *p;
    char url[256], body[512];
    char hdr_name[16], hdr_value[32];
    struct httpc_header h;
};

static long starts_next(void *ud, struct httpc_request *r)
{
    struct starts_thread *t = ud;
    struct par *p = t->p;
    long i = atomic_fetch_add(&p->next, 1);
    if (i >= p->n)
        return -1;
    start_request(p->ud, i, t->url, t->body);
    r->method = "POST";
    r->url = t->url;
    r->headers = &t->h;
    r->n_headers = 1;
    r->body = t->body;
    r->body_len = strlen(t->body);
    r->timeout_ms = REQ_TIMEOUT_MS;
    return i;
}

static void starts_done(void *ud, long i, int rc, struct httpc_response *res,
                        const struct wfo_error *err)
{
    struct starts_thread *t = ud;
    struct wfo_error e = WFO_ERROR_INIT;
    if (rc < 0)
        e = *err;
    else if (now_s() > t->p->deadline)
        fail(&e, "timed out after %ld of %ld requests", i, t->p->n);
    else
        start_answer(t->p->ud, i, "/v1/executions", res->status, res->body.buf, res->body.len, &e);
    if (e.code)
        par_failed(t->p, &e);
}

static void *starts_main(void *arg)
{
    struct starts_thread *t = arg;
    snprintf(t->hdr_name, sizeof(t->hdr_name), "Content-Type");
    snprintf(t->hdr_value, sizeof(t->hdr_value), "application/json");
    t->h = (struct httpc_header){t->hdr_name, t->hdr_value};
    httpc_do_many(STARTS_PARALLEL, starts_next, starts_done, t);
    return NULL;
}

/* The starts of p (a struct start_ud) from `threads` threads of
 * STARTS_PARALLEL requests each; the number of failures. */
static long starts_run(struct par *p, int threads, double seconds)
{
    struct starts_thread t[8];
    threads = threads < 1 ? 1 : threads > 8 ? 8 : threads;
    for (int i = 0; i < threads; i++)
        t[i] = (struct starts_thread){.p = p};
    return par_threads(p, threads, seconds, starts_main, (char *)t, sizeof(*t));
}

#define HTTP_WORKERS 4
#define HTTP_WORKER_THREADS 1
#define HTTP_STARTERS 64

/* http: the server with HTTP_WORKERS worker processes (HTTP_WORKER_THREADS
 * poll/complete loops each, polls of up to 50 tasks); N executions of
 * three task steps started over HTTP, HTTP_STARTERS at a time. The client
 * side shares the two cores with the server, so it is kept cheap: every
 * thread that blocks on a request costs a wake-up per answer (on this
 * virtual machine, a wake-up across CPUs is the largest single cost in
 * perf), hence few threads, each with many requests in flight. */

/* The sum of metric name over the nodes. */
static double metric_sum(const struct server *srv, int nodes, const char *name)
{
    double v = 0;
    for (int i = 0; i < nodes; i++)
        v += metric(srv[i].base, name);
    return v;
}

/* Several nodes on one store (BENCH_NODES): starts srv[1..nodes) on
 * srv[0]'s store with cluster.enabled, then waits until each holds its
 * share of the shards (their wfo_shards_held add up to 16, none at 0). */
static int nodes_start(struct server *srv, int nodes, struct wfo_error *err)
{
    for (int i = 1; i < nodes; i++) {
        char name[32];
        snprintf(name, sizeof(name), "http-node%d", i);
        snprintf(srv[i].db, sizeof(srv[i].db), "%s", srv[0].db);
        if (server_start(&srv[i], name, 1, err) < 0)
            return -1;
    }
    double until = now_s() + 60;
    for (;;) {
        double sum = 0, least = 16;
        for (int i = 0; i < nodes; i++) {
            double h = metric(srv[i].base, "wfo_shards_held");
            sum += h;
            least = h < least ? h : least;
        }
        if (sum == 16 && least > 0)
            return 0;
        if (now_s() > until) {
            fail(err, "the %d nodes did not share the shards within 60 s", nodes);
            return -1;
        }
        usleep(100000);
    }
}

#define BENCH_NODES_MAX 8

static void scenario_http(long n)
{
    struct server srv[BENCH_NODES_MAX] = {{0}};
    const char *bases[BENCH_NODES_MAX];
    int nodes = bench_nodes;
    struct wfo_error err = WFO_ERROR_INIT;
    struct wshared *sh = wshared_new();
    pid_t pids[HTTP_WORKERS] = {0};
    double pg_cpu0 = -1, client_cpu0 = 0;
    json_t *o = line_new("http");
    line_server_env(o);
    struct wopts wo = {
        .processes = HTTP_WORKERS, .threads = HTTP_WORKER_THREADS, .max = 50, .wait = "1s"};
    json_object_update_new(o, json_pack("{s:i, s:i, s:i, s:i}", "nodes", nodes, "worker_processes",
                                        wo.processes, "worker_threads", wo.threads,
                                        "starts_in_flight", HTTP_STARTERS));
    if (!sh) {
        fail(&err, "mmap: %s", strerror(errno));
        goto out;
    }
    if (nodes > 1)
        setenv("WFO_CLUSTER", "true", 1); /* the servers inherit it */
    if (server_start(&srv[0], "http", 0, &err) < 0 ||
        (nodes > 1 && nodes_start(srv, nodes, &err) < 0) ||
        server_put(&srv[0], "three", three_json, &err) < 0)
        goto out;
    for (int i = 0; i < nodes; i++)
        bases[i] = srv[i].base;
    /* each worker process polls one node, and the starts go round them */
    wo.base = srv[0].base;
    wo.bases = bases;
    wo.n_bases = nodes;
    if (workers_start(&wo, sh, pids, &err) < 0)
        goto out;
    double commits0 = metric_sum(srv, nodes, "wfo_store_commits_total");
    double commit_s0 = metric_sum(srv, nodes, "wfo_store_commit_duration_seconds_sum");
    double cpu0 = 0;
    for (int i = 0; i < nodes; i++)
        cpu0 += cpu_s_of(srv[i].pid);
    pg_cpu0 = pg_cpu_s();
    double requests0 = 0;
    for (int i = 0; i < nodes; i++)
        requests0 += metric_prefix(srv[i].base, "wfo_http_requests_total{");
    client_cpu0 = cpu_s_of(getpid()) + children_cpu_s();
    struct start_ud su = {.base = srv[0].base,
                          .bases = bases,
                          .n_bases = nodes,
                          .workflow = "three",
                          .input_fmt = "{\"i\": %ld}"};
    struct par p = {.n = n, .fn = start_one, .ud = &su};
    double t0 = now_s();
    long failures = starts_run(&p, HTTP_STARTERS / STARTS_PARALLEL, 60 + (double)n / 50);

    if (failures) {
        err = p.err;
        goto out;
    }
    double until = now_s() + 60 + (double)n / 100;
    while (atomic_load(&sh->completed) < 3 * n) {
        if (now_s() > until) {
            fail(&err, "timed out: %ld of %ld tasks completed (%ld worker errors%s%s)",
                 atomic_load(&sh->completed), 3 * n, atomic_load(&sh->errors),
                 sh->err[0] ? ": " : "", sh->err);
            break;
        }
        for (int i = 0; i < HTTP_WORKERS && !err.code; i++) {
            if (pids[i] > 0 && waitpid(pids[i], NULL, WNOHANG) == pids[i]) {
                pids[i] = 0;
                fail(&err, "worker process %d exited: %ld of %ld tasks completed", i,
                     atomic_load(&sh->completed), 3 * n);
            }
        }
        if (err.code)
            break;
        usleep(1000);
    }
    double dt = now_s() - t0;
    double cpu = 0;
    for (int i = 0; i < nodes; i++)
        cpu += cpu_s_of(srv[i].pid);
    if (!err.code)
        json_object_update_new(o, json_pack("{s:f, s:f, s:f}", "workflows_per_s", (double)n / dt,
                                            "tasks_per_s", (double)(3 * n) / dt,
                                            "server_cpu_us_per_workflow",
                                            (cpu - cpu0) * 1e6 / (double)n));
    double commits = metric_sum(srv, nodes, "wfo_store_commits_total") - commits0;
    double requests = -requests0;
    for (int i = 0; i < nodes; i++)
        requests += metric_prefix(srv[i].base, "wfo_http_requests_total{");
    if (!err.code)
        json_object_set_new(o, "http_requests_per_workflow", json_real(requests / (double)n));
    double rss = 0;
    for (int i = 0; i < nodes; i++)
        rss += rss_mb_of(srv[i].pid);
    json_object_update_new(
        o, json_pack("{s:I, s:I, s:I, s:f}", "commits", (json_int_t)commits, "completed",
                     (json_int_t)metric_sum(srv, nodes,
                                            "wfo_executions_completed_total{workflow=\"three\"}"),
                     "worker_errors", (json_int_t)atomic_load(&sh->errors), "server_rss_mb", rss));
    if (commits > 0)
        json_object_set_new(
            o, "commit_ms_mean",
            json_real(
                (metric_sum(srv, nodes, "wfo_store_commit_duration_seconds_sum") - commit_s0) *
                1000 / commits));
out:
    workers_stop(pids, HTTP_WORKERS);
    if (!err.code) /* the starters and the worker processes, now reaped */
        json_object_set_new(
            o, "client_cpu_us_per_workflow",
            json_real((cpu_s_of(getpid()) + children_cpu_s() - client_cpu0) * 1e6 / (double)n));
    for (int i = nodes - 1; i >= 0; i--)
        server_end(&srv[i]);
    if (nodes > 1)
        unsetenv("WFO_CLUSTER");
    if (!err.code && pg_cpu0 >= 0)
        json_object_set_new(o, "pg_cpu_us_per_workflow",
                            json_real((pg_cpu_s() - pg_cpu0) * 1e6 / (double)n));
    if (!err.code)
        pg_counts(o, srv[0].db, n); /* once the servers are gone: their counts are flushed */
    for (int i = 1; i < nodes; i++)
        if (srv[i].log[0])
            unlink(srv[i].log);
    server_stop(&srv[0]);
    emit_err(o, &err);
    wshared_free(sh);
}

/* ---- latency ---- */

#define LAT_RUNS 200
#define LAT_WARMUP 5

static int doc_completed(const char *text, size_t len)
{
    json_t *d = NULL;
    int ok = wfo_json_parse(text, len, &d, NULL) == 0 && wfo_json_str(d, "status") &&
             strcmp(wfo_json_str(d, "status"), "completed") == 0;
    json_decref(d);
    return ok;
}

/* wfo_engine_start, then wfo_engine_get with a wait, one after another. */
static void latency_inprocess(void)
{
    char db[256], url[300];
    tmpdb(db, sizeof(db), "latency");
    db_url(db, url, sizeof(url));
    struct wfo_engine_options opt = {.db_url = url, .runner_threads = 2};
    struct wfo_engine *e = NULL;
    struct wfo_error err = WFO_ERROR_INIT;
    double v[LAT_RUNS];
    int nv = 0;
    json_t *o = line_new("latency");
    json_object_set_new(o, "mode", json_string("inprocess"));
    if (wfo_engine_new(&opt, &e, &err) < 0 || wfo_engine_handle(e, "q", noop_handler, NULL) < 0 ||
        wfo_engine_launch(e, &err) < 0 ||
        wfo_engine_put_workflow(e, three_tasks, strlen(three_tasks), NULL, NULL, NULL, &err) < 0) {
        if (!err.code)
            fail(&err, "engine: cannot register the handler");
        goto out;
    }
    struct engine_stats s0, s1;
    engine_stats(e, &s0);
    for (int i = 0; i < LAT_WARMUP + LAT_RUNS; i++) {
        char in[64], *id = NULL, *doc = NULL;
        snprintf(in, sizeof(in), "{\"i\": %d}", i);
        double t0 = now_s();
        int rc = wfo_engine_start(e, "three", 0, in, NULL, NULL, &id, &err);
        if (rc == 0)
            rc = wfo_engine_get(e, id, 30000, &doc, &err);
        double ms = (now_s() - t0) * 1000;
        if (rc == 0 && !doc_completed(doc, strlen(doc))) {
            fail(&err, "execution %s did not complete within 30 s", id);
            rc = -1;
        }
        free(id);
        free(doc);
        if (rc < 0)
            break;
        if (i >= LAT_WARMUP)
            v[nv++] = ms;
    }
    engine_stats(e, &s1);
    if (s1.commits > s0.commits) /* the share of each wait that is a commit */
        json_object_update_new(
            o,
            json_pack("{s:f, s:f}", "commits_per_execution",
                      (double)(s1.commits - s0.commits) / (LAT_WARMUP + LAT_RUNS), "commit_ms_mean",
                      (s1.commit_ms_sum - s0.commit_ms_sum) / (double)(s1.commits - s0.commits)));
out:
    json_object_set_new(o, "executions", json_integer(nv));
    set_pcts(o, "", v, nv);
    emit_err(o, &err);
    wfo_engine_free(e);
    unlink_db(db);
}

/* POST /v1/executions?wait=30s, one after another, with one worker process
 * long-polling (wait 10s). */
static void latency_http(void)
{
    struct server srv = {0};
    struct wfo_error err = WFO_ERROR_INIT;
    struct wshared *sh = wshared_new();
    pid_t pid[1] = {0};
    double v[LAT_RUNS];
    int nv = 0;
    json_t *o = line_new("latency");
    json_object_set_new(o, "mode", json_string("http"));
    line_server_env(o);
    if (!sh) {
        fail(&err, "mmap: %s", strerror(errno));
        goto out;
    }
    if (server_start(&srv, "latency", 0, &err) < 0 ||
        server_put(&srv, "three", three_json, &err) < 0)
        goto out;
    struct wopts wo = {.base = srv.base, .processes = 1, .threads = 1, .max = 50, .wait = "10s"};
    if (workers_start(&wo, sh, pid, &err) < 0)
        goto out;
    char url[256];
    snprintf(url, sizeof(url), "%s/v1/executions?wait=30s", srv.base);
    double c0 = metric_prefix(srv.base, "wfo_store_commits_total "),
           cs0 = metric_prefix(srv.base, "wfo_store_commit_duration_seconds_sum ");
    for (int i = 0; i < LAT_WARMUP + LAT_RUNS; i++) {
        char body[128], *text = NULL;
        long status = 0;
        snprintf(body, sizeof(body), "{\"workflow\": \"three\", \"input\": {\"i\": %d}}", i);
        double t0 = now_s();
        int rc = req_do("POST", url, body, 40000, &status, NULL, &text, &err);
        double ms = (now_s() - t0) * 1000;
        if (rc == 0 && (status != 201 || !doc_completed(text, strlen(text)))) {
            fail(&err,
                 "POST %s: status %ld, not completed within 30 s (%ld worker "
                 "errors%s%s)",
                 url, status, atomic_load(&sh->errors), sh->err[0] ? ": " : "", sh->err);
            rc = -1;
        }
        free(text);
        if (rc < 0)
            break;
        if (i >= LAT_WARMUP)
            v[nv++] = ms;
    }
    double c1 = metric_prefix(srv.base, "wfo_store_commits_total "),
           cs1 = metric_prefix(srv.base, "wfo_store_commit_duration_seconds_sum ");
    if (c0 >= 0 && c1 > c0) /* the run's commits (reading the metrics commits nothing) */
        json_object_update_new(o, json_pack("{s:f, s:f}", "commits_per_execution",
                                            (c1 - c0) / (LAT_WARMUP + LAT_RUNS), "commit_ms_mean",
                                            (cs1 - cs0) * 1000 / (c1 - c0)));
out:
    workers_stop(pid, 1);
    server_stop(&srv);
    json_object_set_new(o, "executions", json_integer(nv));
    set_pcts(o, "", v, nv);
    emit_err(o, &err);
    wshared_free(sh);
}

static void scenario_latency(void)
{
    latency_inprocess();
    latency_http();
}

/* ---- idle ---- */

struct lag_ud {
    const char *base;
    char (*ids)[WFO_ID_SIZE];
    int64_t at;
    double *lag;
};

/* GET the execution with a wait; the lag of its sleep step's finished_at
 * after the due time. */
static int read_lag(struct par *p, long i, struct wfo_error *err)
{
    struct lag_ud *u = p->ud;
    char url[256];
    json_t *d = NULL;
    snprintf(url, sizeof(url), "%s/v1/executions/%s?wait=60s", u->base, u->ids[i]);
    if (req_json("GET", url, NULL, 70000, 200, &d, err) < 0)
        return -1;
    const char *fin = wfo_json_str(json_array_get(wfo_json_arr(d, "steps"), 0), "finished_at");
    int64_t ms = 0;
    if (!fin || wfo_time_parse(fin, &ms) < 0) {
        fail(err, "execution %s: sleep step not finished (status %s)", u->ids[i],
             wfo_json_str(d, "status") ? wfo_json_str(d, "status") : "?");
        json_decref(d);
        return -1;
    }
    u->lag[i] = (double)(ms - u->at);
    json_decref(d);
    return 0;
}

#define IDLE_STARTERS 16

/* idle: min(5N, 100000) executions asleep for an hour, started over HTTP:
 * the server's RSS; then min(N/2, 10000) executions sleeping until one
 * fixed second far enough ahead that all are started before it: the lag
 * of each sleep step's finished_at after that second. */
static void scenario_idle(long n)
{
    struct server srv = {0};
    struct wfo_error err = WFO_ERROR_INIT;
    long n_idle = 5 * n < 100000 ? 5 * n : 100000;
    long n_timers = n / 2 < 10000 ? n / 2 : 10000;
    char(*ids)[WFO_ID_SIZE] = wfo_calloc((size_t)(n_timers + 1), sizeof(*ids));
    double *lag = wfo_calloc((size_t)(n_timers + 1), sizeof(*lag));
    double *done_at = wfo_calloc((size_t)(n_timers + 1), sizeof(*done_at));
    json_t *o = line_new("idle");
    line_server_env(o);
    json_object_update_new(o, json_pack("{s:I, s:I}", "executions", (json_int_t)n_idle, "timers",
                                        (json_int_t)n_timers));
    if (server_start(&srv, "idle", 0, &err) < 0 || server_put(&srv, "nap", nap_json, &err) < 0 ||
        server_put(&srv, "timer", timer_json, &err) < 0)
        goto out;
    json_object_set_new(o, "rss_start_mb", json_real(rss_mb_of(srv.pid)));

    struct start_ud su = {.base = srv.base, .workflow = "nap", .input_fmt = "{\"i\": %ld}"};
    struct par p = {.n = n_idle, .fn = start_one, .ud = &su};
    double t0 = now_s();
    if (par_run(&p, IDLE_STARTERS, 60 + (double)n_idle / 100)) {
        err = p.err;
        goto out;
    }
    double rate = (double)n_idle / (now_s() - t0);
    sleep(1);
    json_object_update_new(
        o, json_pack("{s:f, s:f}", "starts_per_s", rate, "rss_mb", rss_mb_of(srv.pid)));

    /* a restart recovers them without loading them: the time until it
     * answers, and its RSS then (E6 in engine.c) */
    server_end(&srv);
    double r0 = now_s();
    if (server_start(&srv, "idle", 1, &err) < 0)
        goto out;
    json_object_update_new(o, json_pack("{s:f, s:f}", "recover_ready_ms", (now_s() - r0) * 1000,
                                        "recover_rss_mb", rss_mb_of(srv.pid)));

    /* due at a whole second, 3 s after the time all starts should take */
    int64_t at = wfo_now_ms() + 3000 + (int64_t)((double)n_timers / rate * 1500);
    at = (at / 1000 + 1) * 1000;
    char at_s[40];
    wfo_time_format(at, at_s, sizeof(at_s));
    struct start_ud tu = {.base = srv.base,
                          .workflow = "timer",
                          .input_fmt = "{\"at\": \"%s\"}",
                          .input_s = at_s,
                          .ids = ids,
                          .done_at = done_at};
    struct par tp = {.n = n_timers, .fn = start_one, .ud = &tu};
    if (par_run(&tp, IDLE_STARTERS, (double)(at - wfo_now_ms()) / 1000 + 30)) {
        err = tp.err;
        goto out;
    }
    long late = 0;
    for (long i = 0; i < n_timers; i++)
        late += done_at[i] > (double)at;
    json_object_update_new(o,
                           json_pack("{s:s, s:I}", "due", at_s, "late_starts", (json_int_t)late));
    /* when the last of them was committed: the server counts an ended
     * execution after its commit; polled every 5 ms */
    const char *done_metric = "wfo_executions_completed_total{workflow=\"timer\"}";
    while (metric(srv.base, done_metric) < (double)n_timers) {
        if (wfo_now_ms() > at + 120000) {
            fail(&err, "timers: not all %ld executions completed 120 s after %s", n_timers, at_s);
            goto out;
        }
        usleep(5000);
    }
    json_object_set_new(o, "fire_all_done_ms", json_integer(wfo_now_ms() - at));
    struct lag_ud lu = {srv.base, ids, at, lag};
    struct par lp = {.n = n_timers, .fn = read_lag, .ud = &lu};
    if (par_run(&lp, IDLE_STARTERS, 120 + (double)n_timers / 100)) {
        err = lp.err;
        goto out;
    }
    json_object_set_new(o, "rss_end_mb", json_real(rss_mb_of(srv.pid)));
    set_pcts(o, "fire_lag_", lag, (int)n_timers);
out:
    server_stop(&srv);
    emit_err(o, &err);
    free(ids);
    free(lag);
    free(done_at);
}

/* ---- list ---- */

#define LIST_BATCH 10000
#define LIST_PAGES 200
#define LIST_GETS 1000

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng_next(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Writes rows finished executions of "three" (each with its three
 * completed steps; no history rows) straight through the store API, in
 * batches of LIST_BATCH, and keeps LIST_GETS of their ids at random. */
static int list_build(const char *db, long rows, char (*sample)[WFO_ID_SIZE], struct wfo_error *err)
{
    char url[300];
    struct wfo_engine *e = NULL;
    struct store *s = NULL;
    struct store_batch b;
    /* each row's strings: id, input/output text */
    enum { ROW_BYTES = WFO_ID_SIZE + 64 };
    char *arena = wfo_malloc((size_t)LIST_BATCH * ROW_BYTES);
    static const char *const paths[3] = {"a", "b", "c"};
    int rc = 0;

    store_batch_init(&b);
    db_url(db, url, sizeof(url));
    /* the workflow, registered as the server would */
    struct wfo_engine_options opt = {.db_url = url};
    if ((rc = wfo_engine_new(&opt, &e, err)) < 0 ||
        (rc = wfo_engine_put_workflow(e, three_tasks, strlen(three_tasks), NULL, NULL, NULL, err)) <
            0)
        goto out;
    wfo_engine_free(e);
    e = NULL;
    if ((rc = store_open(url, &s, err)) < 0)
        goto out;
    int64_t t = wfo_now_ms() - rows - 60000;
    for (long done = 0; done < rows && rc == 0;) {
        long k = rows - done < LIST_BATCH ? rows - done : LIST_BATCH;
        for (long j = 0; j < k; j++, done++, t++) {
            char *id = arena + j * ROW_BYTES, *io = id + WFO_ID_SIZE;
            wfo_id_new(id);
            snprintf(io, 64, "{\"i\":%ld}", done);
            if (done < LIST_GETS) {
                snprintf(sample[done], WFO_ID_SIZE, "%s", id);
            } else {
                uint64_t r = rng_next() % (uint64_t)(done + 1);
                if (r < LIST_GETS)
                    snprintf(sample[r], WFO_ID_SIZE, "%s", id);
            }
            struct store_exec *x = store_batch_exec(&b);
            *x = (struct store_exec){.id = id,
                                     .namespace = "default",
                                     .workflow = "three",
                                     .version = 1,
                                     .status = "completed",
                                     .input = io,
                                     .output = io,
                                     .created_at = t,
                                     .updated_at = t + 3,
                                     .finished_at = t + 3};
            for (int q = 0; q < 3; q++) {
                struct store_step *st = store_batch_step(&b);
                *st = (struct store_step){.exec_id = id,
                                          .path = paths[q],
                                          .ord = q,
                                          .status = "completed",
                                          .attempts = 1,
                                          .output = io,
                                          .started_at = t + q,
                                          .finished_at = t + q + 1};
            }
        }
        rc = s->ops->apply(s, &b, err);
        store_batch_reset(&b);
    }
out:
    wfo_engine_free(e);
    if (s)
        store_close(s);
    store_batch_release(&b);
    free(arena);
    return rc;
}

static double file_mb(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (double)st.st_size / (1024.0 * 1024.0) : 0;
}

/* list: 50N finished executions (1,000,000 by default), then
 * GET /v1/executions?status=completed&limit=50 for LIST_PAGES pages along
 * next_cursor, and GET /v1/executions/{id} of LIST_GETS random ids; one
 * after another. Two lines: query "page" and query "get". */
static void scenario_list(long n)
{
    struct server srv = {0};
    struct wfo_error err = WFO_ERROR_INIT;
    long rows = 50 * n;
    char(*sample)[WFO_ID_SIZE] = wfo_calloc(LIST_GETS, sizeof(*sample));
    double *v = wfo_calloc(LIST_PAGES + LIST_GETS, sizeof(*v));
    int nv = 0, ng = 0;
    char *cursor = NULL;
    json_t *o = line_new("list"), *g = line_new("list");
    line_server_env(o);
    line_server_env(g);
    json_object_set_new(o, "query", json_string("page"));
    json_object_set_new(g, "query", json_string("get"));
    json_object_set_new(o, "rows", json_integer(rows));
    json_object_set_new(g, "rows", json_integer(rows));

    tmpdb(srv.db, sizeof(srv.db), "list");
    double t0 = now_s();
    if (list_build(srv.db, rows, sample, &err) < 0)
        goto out;
    char wal[300];
    snprintf(wal, sizeof(wal), "%s-wal", srv.db);
    double mb = file_mb(srv.db) + file_mb(wal);
    if (bench_pg) {
        char url[512], size[64];
        db_url(srv.db, url, sizeof(url));
        mb = pg_run(url, "SELECT pg_database_size(current_database())", size, sizeof(size)) == 0
                 ? strtod(size, NULL) / (1024.0 * 1024.0)
                 : -1;
    }
    json_object_update_new(o, json_pack("{s:f, s:f}", "build_s", now_s() - t0, "db_mb", mb));
    if (server_start(&srv, "list", 1, &err) < 0)
        goto out;
    for (int i = 0; i < LIST_PAGES; i++) {
        char url[512];
        json_t *r = NULL;
        snprintf(url, sizeof(url), "%s/v1/executions?status=completed&limit=50%s%s", srv.base,
                 cursor ? "&cursor=" : "", cursor ? cursor : "");
        double t1 = now_s();
        if (req_json("GET", url, NULL, REQ_TIMEOUT_MS, 200, &r, &err) < 0)
            goto out;
        v[nv++] = (now_s() - t1) * 1000;
        size_t got = json_array_size(wfo_json_arr(r, "executions"));
        const char *next = wfo_json_str(r, "next_cursor");
        free(cursor);
        cursor = next ? wfo_strdup(next) : NULL;
        json_decref(r);
        if (got != 50 && cursor) {
            fail(&err, "page %d has %zu executions, not 50", i, got);
            goto out;
        }
        if (!cursor)
            break;
    }
    for (int i = 0; i < LIST_GETS && i < rows; i++) {
        char url[256];
        snprintf(url, sizeof(url), "%s/v1/executions/%s", srv.base, sample[i]);
        double t1 = now_s();
        if (req_json("GET", url, NULL, REQ_TIMEOUT_MS, 200, NULL, &err) < 0)
            goto out;
        v[LIST_PAGES + ng++] = (now_s() - t1) * 1000;
    }
out:
    json_object_set_new(o, "pages", json_integer(nv));
    json_object_set_new(g, "gets", json_integer(ng));
    json_object_set_new(o, "server_rss_mb", json_real(srv.pid > 0 ? rss_mb_of(srv.pid) : -1));
    server_stop(&srv);
    unlink_db(srv.db);
    set_pcts(o, "", v, nv);
    set_pcts(g, "", v + LIST_PAGES, ng);
    emit_err(o, &err);
    emit_err(g, &err);
    free(cursor);
    free(sample);
    free(v);
}

/* ---- events ---- */

#define EVENTS_STARTERS 16
#define EVENTS_PUBLISHERS 4

static const char *waiter_json =
    "{\"name\": \"waiter\", \"steps\": [{\"name\": \"w\", \"type\": \"await_event\", "
    "\"event\": \"bench.paid\", \"key\": \"${ .input.k }\"}]}";

struct publish_ud {
    const char *base;
    const char *type;
};

/* POST /v1/events {type, key: k-I, data: {i: I}}: 202. */
static int publish_one(struct par *p, long i, struct wfo_error *err)
{
    struct publish_ud *u = p->ud;
    char url[256], body[256];
    snprintf(url, sizeof(url), "%s/v1/events", u->base);
    snprintf(body, sizeof(body), "{\"type\": \"%s\", \"key\": \"k-%ld\", \"data\": {\"i\": %ld}}",
             u->type, i, i);
    return req_json("POST", url, body, REQ_TIMEOUT_MS, 202, NULL, err);
}

/* The webhook receiver: answers every request 200 and counts the POSTs
 * whose body has come whole, and those that carry X-Wfo-Signature. */
struct receiver {
    struct MHD_Daemon *d;
    int port;
    atomic_long posts, signed_posts;
};

static enum MHD_Result receiver_access(void *cls, struct MHD_Connection *c, const char *url,
                                       const char *method, const char *version,
                                       const char *upload_data, size_t *upload_size, void **ctx)
{
    struct receiver *r = cls;
    static int seen;
    if (!*ctx) { /* the headers: the body (if any) comes in the next calls */
        *ctx = &seen;
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0;
        return MHD_YES;
    }
    if (strcmp(method, "POST") == 0) {
        atomic_fetch_add(&r->posts, 1);
        if (MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Wfo-Signature"))
            atomic_fetch_add(&r->signed_posts, 1);
    }
    struct MHD_Response *res = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    enum MHD_Result rc = MHD_queue_response(c, MHD_HTTP_OK, res);
    MHD_destroy_response(res);
    return rc;
}

static int receiver_start(struct receiver *r, struct wfo_error *err)
{
    r->d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL, 0, NULL,
        NULL, receiver_access, r, MHD_OPTION_SOCK_ADDR,
        (const struct sockaddr *)&(struct sockaddr_in){.sin_family = AF_INET,
                                                       .sin_addr.s_addr = htonl(INADDR_LOOPBACK)},
        MHD_OPTION_END);
    if (!r->d) {
        fail(err, "the webhook receiver could not start");
        return -1;
    }
    const union MHD_DaemonInfo *i = MHD_get_daemon_info(r->d, MHD_DAEMON_INFO_BIND_PORT);
    r->port = i ? i->port : 0;
    return 0;
}

/* The webhook part of `events` (fields webhook_*): subscribes the
 * receiver to type bench.hook, publishes n events of it, and waits until
 * the receiver has had n POSTs. Never fails the scenario's line. */
static void events_webhooks(const struct server *srv, long n, json_t *o)
{
    struct receiver rcv = {0};
    struct wfo_error err = WFO_ERROR_INIT;
    char url[256], body[512], *text = NULL;
    long status = 0;
    json_t *sub = NULL;
    const char *reason = NULL;
    if (receiver_start(&rcv, &err) < 0)
        goto out;
    snprintf(url, sizeof(url), "%s/v1/subscriptions", srv->base);
    snprintf(body, sizeof(body),
             "{\"url\": \"http://127.0.0.1:%d/hook\", \"types\": [\"bench.hook\"], "
             "\"secret\": \"bench-secret-0123456789\"}",
             rcv.port);
    if (req_do("POST", url, body, REQ_TIMEOUT_MS, &status, &sub, NULL, &err) < 0)
        goto out;
    if (status == 501) {
        reason = "POST /v1/subscriptions answered 501: webhooks are not built in this server";
        goto out;
    }
    if (status != 200 && status != 201) {
        const char *m = wfo_json_str(wfo_json_obj(sub, "error"), "message");
        fail(&err, "POST %s: status %ld: %s", url, status, m ? m : "");
        goto out;
    }
    double cpu0 = cpu_s_of(srv->pid), t0 = now_s();
    struct publish_ud pu = {srv->base, "bench.hook"};
    struct par p = {.n = n, .fn = publish_one, .ud = &pu};
    if (par_run(&p, EVENTS_PUBLISHERS, 60 + (double)n / 50)) {
        err = p.err;
        goto out;
    }
    double until = now_s() + 60 + (double)n / 50;
    while (atomic_load(&rcv.posts) < n) {
        if (now_s() > until) {
            fail(&err, "webhooks: %ld of %ld deliveries within the time allowed",
                 atomic_load(&rcv.posts), n);
            goto out;
        }
        usleep(2000);
    }
    double dt = now_s() - t0;
    json_object_update_new(o,
                           json_pack("{s:f, s:f, s:I}", "webhook_deliveries_per_s", (double)n / dt,
                                     "webhook_server_cpu_us_per_delivery",
                                     (cpu_s_of(srv->pid) - cpu0) * 1e6 / (double)n,
                                     "webhook_signed", (json_int_t)atomic_load(&rcv.signed_posts)));
out:
    if (reason || err.code) {
        json_object_set_new(o, "webhook_deliveries_per_s", json_null());
        json_object_set_new(o, "webhook_reason", json_string(reason ? reason : err.message));
    }
    if (rcv.d) {
        json_object_set_new(o, "webhook_received", json_integer(atomic_load(&rcv.posts)));
        MHD_stop_daemon(rcv.d);
    }
    json_decref(sub);
    free(text);
}

/* At most this many executions wait in `events` (see the header). */
#define EVENTS_MAX 5000

/* events: min(N, EVENTS_MAX) executions waiting each on its own key
 * (k-I), then as many events published by EVENTS_PUBLISHERS threads; then
 * the webhook part. */
static void scenario_events(long n)
{
    struct server srv = {0};
    struct wfo_error err = WFO_ERROR_INIT;
    json_t *o = line_new("events");
    line_server_env(o);
    if (n > EVENTS_MAX)
        n = EVENTS_MAX;
    json_object_update_new(o,
                           json_pack("{s:I, s:i, s:i}", "events", (json_int_t)n, "starter_threads",
                                     EVENTS_STARTERS, "publisher_threads", EVENTS_PUBLISHERS));
    if (server_start(&srv, "events", 0, &err) < 0 ||
        server_put(&srv, "waiter", waiter_json, &err) < 0)
        goto out;
    struct start_ud su = {
        .base = srv.base, .workflow = "waiter", .input_fmt = "{\"k\": \"k-%ld\"}"};
    struct par sp = {.n = n, .fn = start_one, .ud = &su};
    double s0 = now_s();
    if (par_run(&sp, EVENTS_STARTERS, 60 + (double)n / 50)) {
        err = sp.err;
        goto out;
    }
    json_object_set_new(o, "starts_per_s", json_real((double)n / (now_s() - s0)));
    /* a 201 is answered after the round that made the step wait is
     * committed: every execution waits now */
    const char *done_metric = "wfo_executions_completed_total{workflow=\"waiter\"}";
    double done0 = metric(srv.base, done_metric);
    if (done0 < 0)
        done0 = 0;
    double cpu0 = cpu_s_of(srv.pid), t0 = now_s();
    struct publish_ud pu = {srv.base, "bench.paid"};
    struct par pp = {.n = n, .fn = publish_one, .ud = &pu};
    if (par_run(&pp, EVENTS_PUBLISHERS, 60 + (double)n / 50)) {
        err = pp.err;
        goto out;
    }
    double t_pub = now_s() - t0;
    double until = now_s() + 60 + (double)n / 50, done = 0;
    while ((done = metric(srv.base, done_metric) - done0) < (double)n) {
        if (now_s() > until) {
            fail(&err, "events: %.0f of %ld executions completed within the time allowed", done, n);
            goto out;
        }
        usleep(5000);
    }
    double t_match = now_s() - t0;
    json_object_update_new(o,
                           json_pack("{s:f, s:f, s:f, s:f}", "events_published_per_s",
                                     (double)n / t_pub, "events_matched_per_s", (double)n / t_match,
                                     "match_all_done_ms", t_match * 1000, "server_cpu_us_per_event",
                                     (cpu_s_of(srv.pid) - cpu0) * 1e6 / (double)n));
    events_webhooks(&srv, n, o);
    json_object_set_new(o, "server_rss_mb", json_real(rss_mb_of(srv.pid)));
out:
    server_stop(&srv);
    emit_err(o, &err);
}

int main(int argc, char **argv)
{
    static const char *const all[] = {"latency", "engine", "http", "idle", "list", "events"};
    const char *which[16];
    int n_which = 0;
    bench_n = 20000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--n") == 0 && i + 1 < argc)
            bench_n = strtol(argv[++i], NULL, 10);
        else if (n_which < 16)
            which[n_which++] = argv[i];
    }
    if (bench_n < 2) {
        fprintf(stderr, "bench: --n must be at least 2\n");
        return 2;
    }
    if (!n_which)
        for (size_t i = 0; i < WFO_ARRAY_SIZE(all); i++)
            which[n_which++] = all[i];
    /* build/wfo lives next to build/bench */
    const char *slash = strrchr(argv[0], '/');
    snprintf(wfo_bin, sizeof(wfo_bin), "%.*swfo", slash ? (int)(slash - argv[0] + 1) : 0, argv[0]);
    if (access(wfo_bin, X_OK) != 0)
        snprintf(wfo_bin, sizeof(wfo_bin), "build/wfo");
    signal(SIGPIPE, SIG_IGN);
    if (getenv("BENCH_NODES")) {
        bench_nodes = (int)strtol(getenv("BENCH_NODES"), NULL, 10);
        if (bench_nodes < 1 || bench_nodes > BENCH_NODES_MAX) {
            fprintf(stderr, "bench: BENCH_NODES must be 1 to %d\n", BENCH_NODES_MAX);
            return 2;
        }
    }
    const char *store = getenv("BENCH_DB");
    if (store && strcmp(store, "postgres") == 0) {
        bench_pg = getenv("BENCH_PG") ? getenv("BENCH_PG") : getenv("WFO_TEST_PG");
        if (!bench_pg) {
            fprintf(stderr, "bench: BENCH_DB=postgres needs BENCH_PG (a postgres:// URL)\n");
            return 2;
        }
    } else if (store && strcmp(store, "sqlite") != 0) {
        fprintf(stderr, "bench: BENCH_DB is sqlite or postgres, not '%s'\n", store);
        return 2;
    }
    out_json = fopen("build/bench.json", "w");
    for (int i = 0; i < n_which; i++) {
        const char *w = which[i];
        if (strcmp(w, "engine") == 0) {
            scenario_engine(bench_n);
        } else if (strcmp(w, "http") == 0) {
            scenario_http(bench_n);
        } else if (strcmp(w, "latency") == 0) {
            scenario_latency();
        } else if (strcmp(w, "idle") == 0) {
            scenario_idle(bench_n);
        } else if (strcmp(w, "list") == 0) {
            scenario_list(bench_n);
        } else if (strcmp(w, "events") == 0) {
            scenario_events(bench_n);
        } else {
            struct wfo_error err = WFO_ERROR_INIT;
            fail(&err, "unknown scenario '%s' (engine, http, latency, idle, list, events)", w);
            json_t *o = line_new(w);
            emit_err(o, &err);
        }
    }
    if (out_json)
        fclose(out_json);
    return 0;
}
