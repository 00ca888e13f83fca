/*
 * client.c - the client commands of SPEC 5: `wfo workflow`, `start`, `get`,
 * `list`, `history`, `cancel`, `terminate`, `pause`, `resume`, `retry`,
 * `signal` and `emit`, one HTTP request each (SPEC 4) through
 * common/httpc.h. docs/interfaces/api.md lists the endpoints they call.
 *
 * Every command:
 *  - reaches the server at --server URL, else $WFO_SERVER, else
 *    http://127.0.0.1:7233, and sends $WFO_TOKEN as a bearer token
 *    (cli_server);
 *  - prints the response's JSON on stdout (indented), exit 0;
 *  - prints "wfo: STATUS TYPE: MESSAGE" on stderr and exits 1 when the
 *    request fails (a 4xx/5xx answer or no answer at all), exit 2 for a
 *    usage error (unknown option, missing argument, bad JSON).
 *
 * `wfo start --wait` long-polls GET /v1/executions/ID?wait=30s until the
 * execution is final and exits like `wfo run`: 0 completed, 1 otherwise.
 * `wfo list` prints a table instead of JSON when stdout is a terminal.
 */
#include "common/compat.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "../core/query.h"
#include "../common/duration.h"
#include "../common/httpc.h"
#include "../common/sse.h"
#include "../common/util.h"
#include "../common/yaml.h"

/* A request without a long poll. */
#define CLIENT_TIMEOUT_MS (60 * 1000)
/* `start --wait`: one long poll, and how long the server may be away. */
#define CLIENT_WAIT "30s"
#define CLIENT_WAIT_MS (30 * 1000)
#define CLIENT_UNREACHABLE_MS (60 * 1000)
/* `start --wait`: a task that waited this long on a queue nobody polls is
 * reported (SPEC 5). */
#define CLIENT_STUCK_MS (10 * 1000)

struct client {
    char *base; /* scheme://host:port, no trailing slash */
    char *auth; /* "Authorization: Bearer ..." value, or NULL */
};

/* What a request got back (a response of any status). */
struct client_reply {
    long status;
    json_t *body; /* parsed JSON body; null when empty or not JSON */
    char *text;   /* the raw body, for errors that are not JSON */
};

/* ---- options ---------------------------------------------------------- */

/* One option of a command: a flag (value NULL) or an option with a value. */
struct client_opt {
    const char *name; /* "--input" */
    const char **value;
    int *flag;
};

/* Text that can go into a JSON string. */
static int client_utf8(const char *s)
{
    size_t n = strlen(s);
    return wfo_utf8_span(s, n) == n;
}

/* Parses argv[1..] of a command: the options in opts, --server URL, and
 * between min_pos and max_pos positional arguments into pos. Prints the
 * usage of command name (cli_usage_error) and returns EXIT_USAGE, or 0.
 * --help prints it on stdout and returns -1 (the caller exits 0). */
static int client_parse(int argc, char **argv, const struct client_opt *opts, const char **server,
                        const char **pos, int min_pos, int max_pos, const char *name)
{
    const struct client_opt server_opt = {"--server", server, NULL};
    int n_pos = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const struct client_opt *o = NULL;
        const char *value = NULL;

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            cli_help(name);
            return -1;
        }
        if (strcmp(a, "--") == 0) {
            for (i++; i < argc; i++) {
                if (n_pos >= max_pos)
                    goto too_many;
                pos[n_pos++] = argv[i];
            }
            break;
        }
        if (a[0] != '-' || a[1] == 0) {
            if (n_pos >= max_pos)
                goto too_many;
            pos[n_pos++] = a;
            continue;
        }
        for (const struct client_opt *p = opts; p && p->name; p++) {
            size_t n = strlen(p->name);
            if (strncmp(a, p->name, n) == 0 && (a[n] == 0 || (a[n] == '=' && p->value))) {
                o = p;
                value = a[n] == '=' ? a + n + 1 : NULL;
                break;
            }
        }
        if (!o && strncmp(a, "--server", 8) == 0 && (a[8] == 0 || a[8] == '=')) {
            o = &server_opt;
            value = a[8] == '=' ? a + 9 : NULL;
        }
        if (!o) {
            cli_error("unknown option '%s'", a);
            goto usage;
        }
        if (o->value) {
            if (!value) {
                if (i + 1 >= argc) {
                    cli_error("%s needs a value", o->name);
                    goto usage;
                }
                value = argv[++i];
            }
            if (!client_utf8(value)) {
                cli_error("%s: the value is not valid UTF-8", o->name);
                goto usage;
            }
            *o->value = value;
        } else {
            *o->flag = 1;
        }
    }
    if (n_pos < min_pos) {
        cli_error("missing argument");
        goto usage;
    }
    for (int i = 0; i < n_pos; i++) {
        if (!pos[i][0] || !client_utf8(pos[i])) {
            cli_error("argument '%s' is %s", pos[i], pos[i][0] ? "not valid UTF-8" : "empty");
            goto usage;
        }
    }
    return 0;

too_many:
    cli_error("too many arguments");
usage:
    cli_usage_error(name);
    return EXIT_USAGE;
}

/* --data JSON|@FILE into a new value; EXIT_USAGE with a message. */
static int client_json_arg(const char *opt, const char *arg, json_t **out)
{
    struct wfo_buf b;
    struct wfo_error err = WFO_ERROR_INIT;
    int rc = 0;

    wfo_buf_init(&b, CLI_FILE_MAX);
    if (arg[0] == '@') {
        if (wfo_read_file(arg + 1, &b, &err) < 0) {
            fprintf(stderr, "%s: %s\n", arg + 1, err.message);
            rc = EXIT_USAGE;
            goto out;
        }
    } else {
        wfo_buf_adds(&b, arg);
    }
    if (wfo_json_parse(b.buf, b.len, out, &err) < 0) {
        cli_error("%s: %s", opt, err.message);
        rc = EXIT_USAGE;
    }
out:
    wfo_buf_release(&b);
    return rc;
}

/* ---- the request helper ----------------------------------------------- */

static int client_init(struct client *c, const char *server)
{
    cli_server(server, &c->base, &c->auth);
    return 0;
}

static void client_release(struct client *c)
{
    free(c->base);
    free(c->auth);
}

static void client_reply_release(struct client_reply *r)
{
    json_decref(r->body);
    free(r->text);
    memset(r, 0, sizeof(*r));
}

/* Sends one request; path is already escaped. Returns 0 when a response
 * arrived (any status), a negative WFO_E* code with err filled when none did. */
static int client_request(const struct client *c, const char *method, const char *path,
                          const char *ctype, const char *body, size_t len, int64_t timeout_ms,
                          struct client_reply *r, struct wfo_error *err)
{
    struct httpc_header headers[3];
    struct httpc_response res;
    struct wfo_buf url = WFO_BUF_INIT;
    int n = 0, rc;

    memset(r, 0, sizeof(*r));
    memset(&res, 0, sizeof(res));
    headers[n++] = (struct httpc_header){"Accept", "application/json"};
    if (body)
        headers[n++] = (struct httpc_header){"Content-Type", (char *)ctype};
    if (c->auth)
        headers[n++] = (struct httpc_header){"Authorization", c->auth};
    wfo_buf_addf(&url, "%s%s", c->base, path);
    struct httpc_request req = {
        .method = method,
        .url = url.buf,
        .headers = headers,
        .n_headers = n,
        .body = body,
        .body_len = len,
        .timeout_ms = timeout_ms,
    };
    rc = httpc_do(&req, &res, err);
    if (rc < 0)
        goto out;
    r->status = res.status;
    r->text = wfo_buf_detach(&res.body, NULL);
    r->body = wfo_json_text(r->text);
out:
    httpc_response_release(&res);
    wfo_buf_release(&url);
    return rc;
}

/* Prints a failed response: "wfo: 404 NotFound: MESSAGE", then the
 * details of a definition error, one "  PATH: MESSAGE" a line. */
static void client_print_failure(const struct client_reply *r)
{
    json_t *e = wfo_json_obj(r->body, "error");
    const char *type = wfo_json_str(e, "type");
    const char *msg = wfo_json_str(e, "message");
    json_t *details = wfo_json_arr(e, "details"), *d;
    size_t i;

    if (type || msg) {
        cli_error("%ld %s: %s", r->status, type ? type : "Error", msg ? msg : "");
    } else {
        /* not wfo's error shape (a proxy, another service): its first line */
        const char *t = r->text ? r->text : "";
        int n = (int)strcspn(t, "\r\n");
        cli_error("%ld %.*s", r->status, n > 200 ? 200 : n, n ? t : "(no error message)");
    }
    json_array_foreach(details, i, d)
    {
        const char *p = wfo_json_str(d, "path"), *m = wfo_json_str(d, "message");
        if (p || m)
            fprintf(stderr, "  %s: %s\n", p ? p : "", m ? m : "");
    }
}

/* One request that must succeed: on a 2xx answer *out (when not NULL) is
 * the body and the result is EXIT_OK; otherwise the failure is printed on
 * stderr and the result is EXIT_FAILED. */
static int client_call(const struct client *c, const char *method, const char *path, json_t *body,
                       json_t **out)
{
    struct client_reply r;
    struct wfo_error err = WFO_ERROR_INIT;
    char *text = body ? wfo_json_dumps(body) : NULL;
    int rc;

    if (out)
        *out = NULL;
    rc = client_request(c, method, path, "application/json", text, text ? strlen(text) : 0,
                        CLIENT_TIMEOUT_MS, &r, &err);
    free(text);
    if (rc < 0) {
        cli_error("%s", err.message);
        return EXIT_FAILED;
    }
    if (r.status < 200 || r.status > 299) {
        client_print_failure(&r);
        client_reply_release(&r);
        return EXIT_FAILED;
    }
    if (out)
        *out = json_incref(r.body);
    client_reply_release(&r);
    return EXIT_OK;
}

/* A GET whose failure is not reported (the stuck check is a courtesy). */
static int client_quiet_call(const struct client *c, const char *path, json_t **out)
{
    struct client_reply r;
    struct wfo_error err = WFO_ERROR_INIT;

    *out = NULL;
    if (client_request(c, "GET", path, NULL, NULL, 0, CLIENT_TIMEOUT_MS, &r, &err) < 0)
        return EXIT_FAILED;
    if (r.status < 200 || r.status > 299) {
        client_reply_release(&r);
        return EXIT_FAILED;
    }
    *out = json_incref(r.body);
    client_reply_release(&r);
    return EXIT_OK;
}

static void client_print(const json_t *v)
{
    char *s = wfo_json_dumps_pretty(v);
    printf("%s\n", s);
    free(s);
    fflush(stdout);
}

/* A call whose answer is printed. */
static int client_call_print(const struct client *c, const char *method, const char *path,
                             json_t *body)
{
    json_t *out = NULL;
    int rc = client_call(c, method, path, body, &out);

    if (rc == EXIT_OK)
        client_print(out);
    json_decref(out);
    return rc;
}

/* ---- wfo workflow ----------------------------------------------------- */

static int client_workflow_put(const struct client *c, const char *file)
{
    json_t *doc = NULL;
    char *text = NULL;
    size_t len = 0;
    const char *name, *p, *ctype;
    struct wfo_buf path = WFO_BUF_INIT;
    struct client_reply r;
    struct wfo_error err = WFO_ERROR_INIT;
    int rc;

    rc = cli_load_doc(file, &doc, &text, &len);
    if (rc)
        goto out;
    name = wfo_json_str(doc, "name");
    if (!name || !name[0]) {
        fprintf(stderr, "%s: the definition has no name\n", file);
        rc = EXIT_USAGE;
        goto out;
    }
    for (p = text; p < text + len && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'); p++)
        ;
    ctype = p < text + len && (*p == '{' || *p == '[') ? "application/json" : "application/yaml";
    wfo_buf_adds(&path, "/v1/workflows/");
    httpc_escape(&path, name);
    if (client_request(c, "PUT", path.buf, ctype, text, len, CLIENT_TIMEOUT_MS, &r, &err) < 0) {
        cli_error("%s", err.message);
        rc = EXIT_FAILED;
        goto out;
    }
    if (r.status < 200 || r.status > 299) {
        client_print_failure(&r);
        rc = EXIT_FAILED;
    } else {
        json_t *ver = json_object_get(r.body, "version");
        long long v = json_is_integer(ver) ? (long long)json_integer_value(ver) : 0;
        /* 201: a changed definition made a new version; 200: identical */
        if (r.status == 201)
            fprintf(stderr, "workflow %s: new version %lld\n", name, v);
        else
            fprintf(stderr, "workflow %s: unchanged, version %lld is current\n", name, v);
        client_print(r.body);
        rc = EXIT_OK;
    }
    client_reply_release(&r);
out:
    json_decref(doc);
    free(text);
    wfo_buf_release(&path);
    return rc;
}

int cmd_workflow(int argc, char **argv)
{
    const char *server = NULL, *version = NULL, *pos[2] = {NULL, NULL};
    struct client_opt opts[] = {{"--version", &version, NULL}, {NULL, NULL, NULL}};
    struct wfo_buf path = WFO_BUF_INIT;
    struct client c = {NULL, NULL};
    int64_t v = 0;
    int rc;

    rc = client_parse(argc, argv, opts, &server, pos, 1, 2, "workflow");
    if (rc)
        return rc < 0 ? EXIT_OK : rc;
    const char *sub = pos[0];
    int want = strcmp(sub, "list") == 0 ? 1 : 2;
    if (strcmp(sub, "put") != 0 && strcmp(sub, "get") != 0 && strcmp(sub, "list") != 0 &&
        strcmp(sub, "delete") != 0) {
        cli_error("workflow: unknown subcommand '%s'", sub);
        cli_usage_error("workflow");
        return EXIT_USAGE;
    }
    if ((want == 2 && !pos[1]) || (want == 1 && pos[1])) {
        cli_error("workflow %s: %s", sub, pos[1] ? "too many arguments" : "missing argument");
        cli_usage_error("workflow");
        return EXIT_USAGE;
    }
    if (version && (strcmp(sub, "get") != 0 || wfo_parse_int64(version, &v) < 0 || v < 1)) {
        cli_error("--version: %s", strcmp(sub, "get") != 0 ? "only with 'workflow get'"
                                                           : "expected a version number");
        return EXIT_USAGE;
    }
    client_init(&c, server);
    if (strcmp(sub, "put") == 0) {
        rc = client_workflow_put(&c, pos[1]);
    } else if (strcmp(sub, "list") == 0) {
        rc = client_call_print(&c, "GET", "/v1/workflows", NULL);
    } else if (strcmp(sub, "delete") == 0) {
        wfo_buf_adds(&path, "/v1/workflows/");
        httpc_escape(&path, pos[1]);
        rc = client_call_print(&c, "DELETE", path.buf, NULL);
    } else {
        wfo_buf_adds(&path, "/v1/workflows/");
        httpc_escape(&path, pos[1]);
        if (version)
            wfo_buf_addf(&path, "/versions/%lld", (long long)v);
        rc = client_call_print(&c, "GET", path.buf, NULL);
    }
    wfo_buf_release(&path);
    client_release(&c);
    return rc;
}

/* ---- wfo start -------------------------------------------------------- */

static void client_sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Collects the queue of every task step of a definition (compensations
 * and blocks included) as keys of queues; with name, only of the task
 * steps of that name, or with comp of their compensations. */
static void client_def_queues(const json_t *v, const char *name, int comp, json_t *queues)
{
    size_t i;
    const char *k;
    json_t *x;
    if (json_is_object(v)) {
        const char *type = wfo_json_str(v, "type"), *queue = wfo_json_str(v, "queue");
        const char *sn = wfo_json_str(v, "name");
        int task = type && queue && strcmp(type, "task") == 0;
        if (!name && task)
            json_object_set_new(queues, queue, json_true());
        else if (name && sn && strcmp(sn, name) == 0 && comp)
            client_def_queues(json_object_get(v, "compensate"), NULL, 0, queues);
        else if (name && sn && strcmp(sn, name) == 0 && task)
            json_object_set_new(queues, queue, json_true());
        json_object_foreach((json_t *)v, k, x)
        {
            client_def_queues(x, name, comp, queues);
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, x)
        {
            client_def_queues(x, name, comp, queues);
        }
    }
}

/* What `start --wait` knows to tell whether a task of its execution waits
 * on a queue that no worker polls (client_stuck_check). */
struct client_stuck {
    json_t *def;     /* the execution's definition, asked for once */
    int64_t next_ms; /* wfo_mono_ms() of the next look */
    int done;        /* said so, or can never say it */
};

/* SPEC 5: `start --wait` says once on stderr when a task of the execution
 * has waited CLIENT_STUCK_MS on a queue that no worker polls. The tasks
 * are the execution's running steps that are task steps of the
 * definition (GET .../versions/V; a step in a block by the last part of
 * its path, a compensation NAME:compensate[k] by its step's); a task has
 * waited since its step started, and no longer than its queue's oldest
 * ready task (GET /v1/queues, which also says who polls: the server's
 * clock bounds the client's). Sets s->next_ms to when the youngest of them
 * will have waited that long. */
static void client_stuck_check(const struct client *c, const json_t *doc, struct client_stuck *s)
{
    struct wfo_buf path = WFO_BUF_INIT;
    json_t *qs = NULL, *mine = json_object(), *q, *st;
    const char *name = wfo_json_str(doc, "workflow");
    json_t *ver = json_object_get(doc, "version");
    int64_t now = wfo_now_ms(), next = CLIENT_STUCK_MS;
    size_t i;

    s->next_ms = wfo_mono_ms() + 5000; /* nothing waits yet: look again after a long poll */
    if (!s->def) {
        json_t *wf = NULL;
        if (!name || !json_is_integer(ver)) {
            s->done = 1;
            goto out;
        }
        wfo_buf_adds(&path, "/v1/workflows/");
        httpc_escape(&path, name);
        wfo_buf_addf(&path, "/versions/%lld", (long long)json_integer_value(ver));
        if (client_quiet_call(c, path.buf, &wf) != EXIT_OK)
            goto out; /* asked again at the next look */
        s->def = json_incref(json_object_get(wf, "definition"));
        json_decref(wf);
    }
    /* queue -> since when a task of ours has waited on it (the earliest) */
    json_array_foreach(wfo_json_arr(doc, "steps"), i, st)
    {
        const char *sp = wfo_json_str(st, "name"), *status = wfo_json_str(st, "status");
        int64_t since;
        if (!sp || !status || strcmp(status, "running") != 0 || !wfo_json_str(st, "started_at") ||
            wfo_time_parse(wfo_json_str(st, "started_at"), &since) < 0)
            continue;
        const char *slash = strrchr(sp, '/'), *last = slash ? slash + 1 : sp;
        const char *colon = strchr(last, ':');
        char *sname = wfo_strndup(last, colon ? (size_t)(colon - last) : strlen(last));
        json_t *queues = json_object(), *old;
        const char *qn;
        json_t *x;
        client_def_queues(s->def, sname, colon != NULL, queues);
        free(sname);
        json_object_foreach(queues, qn, x)
        {
            old = json_object_get(mine, qn);
            if (!old || json_integer_value(old) > since)
                json_object_set_new(mine, qn, json_integer(since));
        }
        json_decref(queues);
    }
    if (json_object_size(mine) == 0 || client_quiet_call(c, "/v1/queues", &qs) != EXIT_OK)
        goto out;
    json_array_foreach(wfo_json_arr(qs, "queues"), i, q)
    {
        const char *qn = wfo_json_str(q, "name");
        json_t *age = json_object_get(q, "oldest_ready_age_ms");
        json_t *since = qn ? json_object_get(mine, qn) : NULL;
        if (!since || !json_is_integer(age) || json_array_size(json_object_get(q, "pollers")) > 0)
            continue;
        int64_t waited = now - json_integer_value(since);
        if (waited > json_integer_value(age))
            waited = json_integer_value(age);
        if (waited < CLIENT_STUCK_MS) {
            if (CLIENT_STUCK_MS - waited < next)
                next = CLIENT_STUCK_MS - waited;
            continue;
        }
        fprintf(stderr,
                "wfo: a task has waited %lld s on queue '%s', and no worker polls it "
                "(start one: wfo worker --queue %s -- COMMAND)\n",
                (long long)waited / 1000, qn, qn);
        s->done = 1;
    }
    fflush(stderr);
    s->next_ms = wfo_mono_ms() + next;
out:
    json_decref(qs);
    json_decref(mine);
    wfo_buf_release(&path);
}

/* Long-polls the execution until it is final; takes doc, returns the final
 * one in *out. A server that goes away (restarts) is waited for up to
 * CLIENT_UNREACHABLE_MS. With stuck_check, says once when a task waits on
 * a queue that no worker polls (client_stuck_check). */
static int client_wait(const struct client *c, json_t *doc, int stuck_check, json_t **out)
{
    struct wfo_buf path = WFO_BUF_INIT;
    struct wfo_error err = WFO_ERROR_INIT;
    struct client_reply r;
    const char *id = wfo_json_str(doc, "id");
    int64_t down_since = 0, backoff = 250;
    int rc = EXIT_OK;
    struct client_stuck stuck = {NULL, 0, !stuck_check};

    if (!id) {
        cli_error("the server's answer has no execution id");
        json_decref(doc);
        return EXIT_FAILED;
    }
    wfo_buf_adds(&path, "/v1/executions/");
    httpc_escape(&path, id);
    size_t base_len = path.len;
    while (query_status_ended(wfo_json_str(doc, "status")) <= 0) {
        int64_t t0 = wfo_mono_ms();
        int transient;
        if (!stuck.done && t0 >= stuck.next_ms)
            client_stuck_check(c, doc, &stuck);
        /* until it has said so, a long poll ends in time for the next look */
        path.len = base_len;
        path.buf[base_len] = 0;
        if (stuck.done) {
            wfo_buf_addf(&path, "?wait=%s", CLIENT_WAIT);
        } else {
            int64_t left = stuck.next_ms - wfo_mono_ms();
            wfo_buf_addf(&path, "?wait=%lldms", (long long)(left < 100 ? 100 : left));
        }
        if (client_request(c, "GET", path.buf, NULL, NULL, 0, CLIENT_WAIT_MS + CLIENT_TIMEOUT_MS,
                           &r, &err) < 0) {
            transient = 1;
        } else if (r.status >= 200 && r.status <= 299 && json_is_object(r.body)) {
            json_decref(doc);
            doc = json_incref(r.body);
            client_reply_release(&r);
            down_since = 0;
            backoff = 250;
            /* a server that answers at once (no long poll) is not asked
             * more than about once a second */
            if (wfo_mono_ms() - t0 < 500 && query_status_ended(wfo_json_str(doc, "status")) <= 0)
                client_sleep_ms(1000);
            continue;
        } else {
            transient = r.status == 502 || r.status == 503 || r.status == 504;
            if (!transient) {
                client_print_failure(&r);
                client_reply_release(&r);
                rc = EXIT_FAILED;
                goto out;
            }
            snprintf(err.message, sizeof(err.message), "%ld %s", r.status,
                     wfo_json_str(wfo_json_obj(r.body, "error"), "message")
                         ? wfo_json_str(wfo_json_obj(r.body, "error"), "message")
                         : "server unavailable");
            client_reply_release(&r);
        }
        if (!down_since)
            down_since = wfo_mono_ms();
        if (wfo_mono_ms() - down_since > CLIENT_UNREACHABLE_MS) {
            cli_error("%s", err.message);
            rc = EXIT_FAILED;
            goto out;
        }
        client_sleep_ms(backoff);
        backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
    }
out:
    wfo_buf_release(&path);
    json_decref(stuck.def);
    if (rc == EXIT_OK)
        *out = doc;
    else
        json_decref(doc);
    return rc;
}

int cmd_start(int argc, char **argv)
{
    const char *server = NULL, *input_arg = NULL, *id = NULL, *version = NULL, *pos[1] = {NULL};
    int wait = 0, rc;
    struct client_opt opts[] = {{"--input", &input_arg, NULL},
                                {"--id", &id, NULL},
                                {"--version", &version, NULL},
                                {"--wait", NULL, &wait},
                                {NULL, NULL, NULL}};
    struct client c = {NULL, NULL};
    char *input = NULL;
    json_t *body = NULL, *doc = NULL, *input_v = NULL;
    int64_t v = 0;

    rc = client_parse(argc, argv, opts, &server, pos, 1, 1, "start");
    if (rc)
        return rc < 0 ? EXIT_OK : rc;
    if (version && (wfo_parse_int64(version, &v) < 0 || v < 1)) {
        cli_error("--version: expected a version number, got '%s'", version);
        return EXIT_USAGE;
    }
    if (id && !id[0]) {
        cli_error("--id: empty");
        return EXIT_USAGE;
    }
    if (input_arg && cli_input(input_arg, &input))
        return EXIT_USAGE;
    if (input && wfo_json_parse(input, strlen(input), &input_v, NULL) < 0) {
        free(input);
        return EXIT_USAGE;
    }
    body = json_object();
    json_object_set_new(body, "workflow", json_string(pos[0]));
    if (version)
        json_object_set_new(body, "version", json_integer(v));
    if (input_v)
        json_object_set(body, "input", input_v);
    if (id)
        json_object_set_new(body, "id", json_string(id));
    client_init(&c, server);
    rc = client_call(&c, "POST", "/v1/executions", body, &doc);
    if (rc == EXIT_OK && wait) {
        json_t *final = NULL;
        rc = client_wait(&c, doc, 1, &final);
        doc = final;
        if (rc == EXIT_OK) {
            client_print(doc);
            if (strcmp(wfo_json_str(doc, "status"), "completed") != 0)
                rc = EXIT_FAILED;
        }
    } else if (rc == EXIT_OK) {
        client_print(doc);
    }
    json_decref(doc);
    json_decref(body);
    json_decref(input_v);
    free(input);
    client_release(&c);
    return rc;
}

/* ---- wfo get, history, list ------------------------------------------- */

/* GET or POST /v1/executions/ID[SUFFIX] with body, printing the answer. */
static int client_execution(int argc, char **argv, const char *method, const char *suffix,
                            const struct client_opt *opts, const char *name,
                            json_t *(*make_body)(void))
{
    const char *server = NULL, *pos[1] = {NULL};
    struct wfo_buf path = WFO_BUF_INIT;
    struct client c = {NULL, NULL};
    json_t *body = NULL;
    int rc;

    rc = client_parse(argc, argv, opts, &server, pos, 1, 1, name);
    if (rc)
        return rc < 0 ? EXIT_OK : rc;
    client_init(&c, server);
    wfo_buf_adds(&path, "/v1/executions/");
    httpc_escape(&path, pos[0]);
    wfo_buf_adds(&path, suffix);
    if (make_body)
        body = make_body();
    rc = client_call_print(&c, method, path.buf, body);
    json_decref(body);
    wfo_buf_release(&path);
    client_release(&c);
    return rc;
}

/* `wfo get ID --wait DURATION`: long polls of at most CLIENT_WAIT each until
 * the execution has ended or DURATION has passed; prints the last document. */
int cmd_get(int argc, char **argv)
{
    const char *server = NULL, *wait = NULL, *pos[1] = {NULL};
    struct client_opt opts[] = {{"--wait", &wait, NULL}, {NULL, NULL, NULL}};
    struct wfo_buf path = WFO_BUF_INIT;
    struct client c = {NULL, NULL};
    json_t *doc = NULL;
    int64_t wait_ms = 0, until;
    int rc;

    rc = client_parse(argc, argv, opts, &server, pos, 1, 1, "get");
    if (rc)
        return rc < 0 ? EXIT_OK : rc;
    if (wait && wfo_duration_parse_text(wait, &wait_ms) < 0) {
        cli_error("--wait: expected a duration (30s, 2m, 500ms, or milliseconds), got '%s'", wait);
        return EXIT_USAGE;
    }
    client_init(&c, server);
    until = wfo_mono_ms() + wait_ms;
    for (;;) {
        int64_t left = until - wfo_mono_ms();
        wfo_buf_reset(&path);
        wfo_buf_adds(&path, "/v1/executions/");
        httpc_escape(&path, pos[0]);
        if (left > 0)
            wfo_buf_addf(&path, "?wait=%lldms",
                         (long long)(left > CLIENT_WAIT_MS ? CLIENT_WAIT_MS : left));
        json_decref(doc);
        doc = NULL;
        rc = client_call(&c, "GET", path.buf, NULL, &doc);
        if (rc != EXIT_OK || left <= 0 || query_status_ended(wfo_json_str(doc, "status")) > 0)
            break;
        client_sleep_ms(100); /* a server that caps the wait is not asked in a loop */
    }
    if (rc == EXIT_OK)
        client_print(doc);
    json_decref(doc);
    wfo_buf_release(&path);
    client_release(&c);
    return rc;
}

int cmd_delete(int argc, char **argv)
{
    return client_execution(argc, argv, "DELETE", "", NULL, "delete", NULL);
}

int cmd_history(int argc, char **argv)
{
    return client_execution(argc, argv, "GET", "/history", NULL, "history", NULL);
}

static const char *client_field(const json_t *o, const char *key)
{
    const char *s = wfo_json_str(o, key);
    return s ? s : "-";
}

/* Prints s as one shell word (quoted when it needs to be). */
static void client_print_word(const char *s)
{
    if (s[0] &&
        strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-:/=+,@") ==
            strlen(s)) {
        fputs(s, stdout);
        return;
    }
    putchar('\'');
    for (; *s; s++) {
        if (*s == '\'')
            fputs("'\\''", stdout);
        else
            putchar(*s);
    }
    putchar('\'');
}

/* The `wfo list` table: one line per execution; the "more" hint repeats
 * the filters (filters: the query's {name, value} pairs, cursor left out). */
static void client_list_table(const json_t *page, const char *const (*filters)[2], size_t n)
{
    json_t *list = wfo_json_arr(page, "executions"), *e;
    const char *cursor = wfo_json_str(page, "next_cursor");
    size_t i;

    printf("%-36s  %-24s  %3s  %-10s  %-24s  %s\n", "ID", "WORKFLOW", "VER", "STATUS", "CREATED",
           "FINISHED");
    json_array_foreach(list, i, e)
    {
        json_t *ver = json_object_get(e, "version");
        printf("%-36s  %-24s  %3lld  %-10s  %-24s  %s\n", client_field(e, "id"),
               client_field(e, "workflow"),
               json_is_integer(ver) ? (long long)json_integer_value(ver) : 0LL,
               client_field(e, "status"), client_field(e, "created_at"),
               client_field(e, "finished_at"));
    }
    if (!json_array_size(list))
        printf("(no executions)\n");
    if (cursor) {
        printf("more: wfo list --table");
        for (size_t k = 0; k < n; k++)
            if (filters[k][1] && strcmp(filters[k][0], "cursor") != 0) {
                printf(" --%s ", filters[k][0]);
                client_print_word(filters[k][1]);
            }
        printf(" --cursor ");
        client_print_word(cursor);
        putchar('\n');
    }
    fflush(stdout);
}

int cmd_list(int argc, char **argv)
{
    const char *server = NULL, *workflow = NULL, *status = NULL, *limit = NULL, *cursor = NULL;
    /* JSON on stdout, terminal or not (SPEC 5); --table for people;
     * --json, the default, is still taken */
    int as_json = 0, as_table = 0, rc;
    struct client_opt opts[] = {{"--workflow", &workflow, NULL},
                                {"--status", &status, NULL},
                                {"--limit", &limit, NULL},
                                {"--cursor", &cursor, NULL},
                                {"--json", NULL, &as_json},
                                {"--table", NULL, &as_table},
                                {NULL, NULL, NULL}};
    const char *filters[][2] = {
        {"workflow", NULL}, {"status", NULL}, {"limit", NULL}, {"cursor", NULL}};
    struct wfo_buf path = WFO_BUF_INIT;
    struct client c = {NULL, NULL};
    json_t *page = NULL;
    char sep = '?';

    rc = client_parse(argc, argv, opts, &server, NULL, 0, 0, "list");
    if (rc)
        return rc < 0 ? EXIT_OK : rc;
    filters[0][1] = workflow;
    filters[1][1] = status;
    filters[2][1] = limit;
    filters[3][1] = cursor;
    wfo_buf_adds(&path, "/v1/executions");
    for (size_t i = 0; i < WFO_ARRAY_SIZE(filters); i++) {
        if (!filters[i][1])
            continue;
        wfo_buf_addf(&path, "%c%s=", sep, filters[i][0]);
        httpc_escape(&path, filters[i][1]);
        sep = '&';
    }
    client_init(&c, server);
    rc = client_call(&c, "GET", path.buf, NULL, &page);
    if (rc == EXIT_OK) {
        if (as_table && !as_json)
            client_list_table(page, (const char *const(*)[2])filters, WFO_ARRAY_SIZE(filters));
        else
            client_print(page);
    }
    json_decref(page);
    wfo_buf_release(&path);
    client_release(&c);
    return rc;
}

/* ---- operator actions --------------------------------------------------- */

static json_t *client_empty_body(void)
{
    return json_object();
}

int cmd_cancel(int argc, char **argv)
{
    const char *server = NULL, *reason = NULL, *pos[1] = {NULL};
    int compensate = 0, rc;
    struct client_opt opts[] = {
        {"--compensate", NULL, &compensate}, {"--reason", &reason, NULL}, {NULL, NULL, NULL}};
    struct wfo_buf path = WFO_BUF_INIT;
    struct client c = {NULL, NULL};
    json_t *body;

    rc = client_parse(argc, argv, opts, &server, pos, 1, 1, "cancel");
    if (rc)
        return rc < 0 ? EXIT_OK : rc;
    body = json_object();
    if (reason)
        json_object_set_new(body, "reason", json_string(reason));
    json_object_set_new(body, "compensate", json_boolean(compensate));
    client_init(&c, server);
    wfo_buf_adds(&path, "/v1/executions/");
    httpc_escape(&path, pos[0]);
    wfo_buf_adds(&path, "/cancel");
    rc = client_call_print(&c, "POST", path.buf, body);
    json_decref(body);
    wfo_buf_release(&path);
    client_release(&c);
    return rc;
}

int cmd_terminate(int argc, char **argv)
{
    return client_execution(argc, argv, "POST", "/terminate", NULL, "terminate", client_empty_body);
}

int cmd_pause(int argc, char **argv)
{
    return client_execution(argc, argv, "POST", "/pause", NULL, "pause", client_empty_body);
}

int cmd_resume(int argc, char **argv)
{
    return client_execution(argc, argv, "POST", "/resume", NULL, "resume", client_empty_body);
}

int cmd_retry(int argc, char **argv)
{
    const char *server = NULL, *from = NULL, *pos[1] = {NULL};
    struct client_opt opts[] = {{"--from", &from, NULL}, {NULL, NULL, NULL}};
    struct wfo_buf path = WFO_BUF_INIT;
    struct client c = {NULL, NULL};
    json_t *body;
    int rc;

    rc = client_parse(argc, argv, opts, &server, pos, 1, 1, "retry");
    if (rc)
        return rc < 0 ? EXIT_OK : rc;
    body = json_object();
    if (from)
        json_object_set_new(body, "from", json_string(from));
    client_init(&c, server);
    wfo_buf_adds(&path, "/v1/executions/");
    httpc_escape(&path, pos[0]);
    wfo_buf_adds(&path, "/retry");
    rc = client_call_print(&c, "POST", path.buf, body);
    json_decref(body);
    wfo_buf_release(&path);
    client_release(&c);
    return rc;
}

/* ---- signals and events ----------------------------------------------- */

int cmd_signal(int argc, char **argv)
{
    const char *server = NULL, *data = NULL, *pos[2] = {NULL, NULL};
    struct client_opt opts[] = {{"--data", &data, NULL}, {NULL, NULL, NULL}};
    struct wfo_buf path = WFO_BUF_INIT;
    struct client c = {NULL, NULL};
    json_t *body, *v = NULL;
    int rc;

    rc = client_parse(argc, argv, opts, &server, pos, 2, 2, "signal");
    if (rc)
        return rc < 0 ? EXIT_OK : rc;
    if (data && client_json_arg("--data", data, &v))
        return EXIT_USAGE;
    body = json_object();
    json_object_set_new(body, "data", v ? v : json_null());
    client_init(&c, server);
    wfo_buf_adds(&path, "/v1/executions/");
    httpc_escape(&path, pos[0]);
    wfo_buf_adds(&path, "/signals/");
    httpc_escape(&path, pos[1]);
    rc = client_call_print(&c, "POST", path.buf, body);
    json_decref(body);
    wfo_buf_release(&path);
    client_release(&c);
    return rc;
}

int cmd_emit(int argc, char **argv)
{
    const char *server = NULL, *data = NULL, *key = NULL, *id = NULL, *source = NULL;
    const char *pos[1] = {NULL};
    struct client_opt opts[] = {{"--key", &key, NULL},
                                {"--data", &data, NULL},
                                {"--id", &id, NULL},
                                {"--source", &source, NULL},
                                {NULL, NULL, NULL}};
    struct client c = {NULL, NULL};
    json_t *body, *v = NULL;
    int rc;

    rc = client_parse(argc, argv, opts, &server, pos, 1, 1, "emit");
    if (rc)
        return rc < 0 ? EXIT_OK : rc;
    if (data && client_json_arg("--data", data, &v))
        return EXIT_USAGE;
    body = json_object();
    json_object_set_new(body, "type", json_string(pos[0]));
    if (key)
        json_object_set_new(body, "key", json_string(key));
    if (source)
        json_object_set_new(body, "source", json_string(source));
    if (v)
        json_object_set_new(body, "data", v);
    if (id)
        json_object_set_new(body, "id", json_string(id));
    client_init(&c, server);
    rc = client_call_print(&c, "POST", "/v1/events", body);
    json_decref(body);
    client_release(&c);
    return rc;
}

/* ---- wfo queues ------------------------------------------------------- */

int cmd_queues(int argc, char **argv)
{
    const char *server = NULL;
    struct client c = {NULL, NULL};
    int rc;

    rc = client_parse(argc, argv, NULL, &server, NULL, 0, 0, "queues");
    if (rc)
        return rc < 0 ? EXIT_OK : rc;
    client_init(&c, server);
    rc = client_call_print(&c, "GET", "/v1/queues", NULL);
    client_release(&c);
    return rc;
}

/* ---- wfo events tail -------------------------------------------------- */

static atomic_int events_stop;

static void events_on_signal(int sig)
{
    (void)sig;
    atomic_store(&events_stop, 1);
}

/* One event of the stream: its data (the event's JSON) on a line. */
static int events_print(void *ud, const struct sse_event *ev)
{
    (void)ud;
    printf("%s\n", ev->data);
    fflush(stdout);
    return 0;
}

static int events_feed(void *ud, const char *p, size_t n)
{
    return sse_feed(ud, p, n);
}

/* Follows GET /v1/events/stream (SPEC 2.5), printing each event's JSON on
 * a line, until SIGINT or SIGTERM (exit 0). A dropped connection is
 * resumed after a second with Last-Event-ID, so nothing is missed or
 * repeated; an error answer ends it (exit 1). */
int cmd_events(int argc, char **argv)
{
    const char *server = NULL, *types = NULL, *execution = NULL, *pos[1] = {NULL};
    struct client_opt opts[] = {
        {"--types", &types, NULL}, {"--execution", &execution, NULL}, {NULL, NULL, NULL}};
    struct client c = {NULL, NULL};
    struct sse_reader r;
    struct wfo_buf url = WFO_BUF_INIT, last = WFO_BUF_INIT;
    int rc;

    rc = client_parse(argc, argv, opts, &server, pos, 1, 1, "events");
    if (rc)
        return rc < 0 ? EXIT_OK : rc;
    if (strcmp(pos[0], "tail") != 0) {
        cli_error("events: unknown subcommand '%s'", pos[0]);
        cli_usage_error("events");
        return EXIT_USAGE;
    }
    client_init(&c, server);
    wfo_buf_addf(&url, "%s/v1/events/stream", c.base);
    const char *sep = "?";
    if (types) {
        wfo_buf_addf(&url, "%stypes=", sep);
        httpc_escape(&url, types);
        sep = "&";
    }
    if (execution) {
        wfo_buf_addf(&url, "%sexecution=", sep);
        httpc_escape(&url, execution);
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = events_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sse_init(&r, events_print, NULL);
    rc = EXIT_OK;
    int connected = 0; /* a 2xx stream has been open */
    while (!atomic_load(&events_stop)) {
        struct httpc_header headers[3];
        struct httpc_response res;
        struct wfo_error err = WFO_ERROR_INIT;
        int n = 0;

        headers[n++] = (struct httpc_header){"Accept", "text/event-stream"};
        if (c.auth)
            headers[n++] = (struct httpc_header){"Authorization", c.auth};
        if (last.len)
            headers[n++] = (struct httpc_header){"Last-Event-ID", last.buf};
        struct httpc_request req = {
            .url = url.buf,
            .headers = headers,
            .n_headers = n,
            .cancel = &events_stop,
            .on_body = events_feed,
            .on_body_ud = &r,
        };
        int hrc = httpc_do(&req, &res, &err);
        if (hrc == 0 && (res.status < 200 || res.status > 299)) {
            struct client_reply reply = {res.status, NULL, wfo_buf_detach(&res.body, NULL)};
            reply.body = wfo_json_text(reply.text);
            client_print_failure(&reply);
            client_reply_release(&reply);
            httpc_response_release(&res);
            rc = EXIT_FAILED;
            break;
        }
        connected |= res.status >= 200 && res.status <= 299;
        httpc_response_release(&res);
        if (hrc == WFO_ESHUTDOWN || atomic_load(&events_stop))
            break;
        if (hrc < 0 && !connected) {
            cli_error("%s", err.message); /* never connected: say why and stop */
            rc = EXIT_FAILED;
            break;
        }
        if (sse_last_id(&r)) {
            wfo_buf_reset(&last);
            wfo_buf_adds(&last, sse_last_id(&r));
        }
        /* the stream ended or broke: the same reader goes on after the
         * last event it saw */
        sse_release(&r);
        sse_init(&r, events_print, NULL);
        client_sleep_ms(1000);
    }
    sse_release(&r);
    wfo_buf_release(&url);
    wfo_buf_release(&last);
    client_release(&c);
    return rc;
}

/* ---- wfo subscriptions ------------------------------------------------ */

int cmd_subscriptions(int argc, char **argv)
{
    const char *server = NULL, *types = NULL, *secret = NULL, *workflow = NULL,
               *pos[2] = {NULL, NULL};
    struct client_opt opts[] = {{"--types", &types, NULL},
                                {"--secret", &secret, NULL},
                                {"--workflow", &workflow, NULL},
                                {NULL, NULL, NULL}};
    struct wfo_buf path = WFO_BUF_INIT;
    struct client c = {NULL, NULL};
    int rc;

    rc = client_parse(argc, argv, opts, &server, pos, 1, 2, "subscriptions");
    if (rc)
        return rc < 0 ? EXIT_OK : rc;
    const char *sub = pos[0];
    int add = strcmp(sub, "add") == 0, list = strcmp(sub, "list") == 0,
        del = strcmp(sub, "delete") == 0;
    if (!add && !list && !del) {
        cli_error("subscriptions: unknown subcommand '%s'", sub);
        cli_usage_error("subscriptions");
        return EXIT_USAGE;
    }
    if ((list && pos[1]) || (!list && !pos[1])) {
        cli_error("subscriptions %s: %s", sub, pos[1] ? "too many arguments" : "missing argument");
        cli_usage_error("subscriptions");
        return EXIT_USAGE;
    }
    if (add && (!types || !secret)) {
        cli_error("subscriptions add: %s is required", !types ? "--types" : "--secret");
        cli_usage_error("subscriptions");
        return EXIT_USAGE;
    }
    if (!add && (types || secret || workflow)) {
        cli_error("%s: only with 'subscriptions add'", types    ? "--types"
                                                       : secret ? "--secret"
                                                                : "--workflow");
        return EXIT_USAGE;
    }
    client_init(&c, server);
    if (add) {
        json_t *body = json_object(), *list_of = json_array();
        /* --types a,b,c: the types, comma-separated */
        for (const char *p = types; *p;) {
            size_t n = strcspn(p, ",");
            if (n)
                json_array_append_new(list_of, json_stringn(p, n));
            p += n + (p[n] == ',');
        }
        json_object_set_new(body, "url", json_string(pos[1]));
        json_object_set_new(body, "types", list_of);
        json_object_set_new(body, "secret", json_string(secret));
        if (workflow)
            json_object_set_new(body, "workflow", json_string(workflow));
        rc = client_call_print(&c, "POST", "/v1/subscriptions", body);
        json_decref(body);
    } else if (list) {
        rc = client_call_print(&c, "GET", "/v1/subscriptions", NULL);
    } else {
        wfo_buf_adds(&path, "/v1/subscriptions/");
        httpc_escape(&path, pos[1]);
        rc = client_call_print(&c, "DELETE", path.buf, NULL);
    }
    wfo_buf_release(&path);
    client_release(&c);
    return rc;
}
