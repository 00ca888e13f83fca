/*
 * run.c - `wfo run FILE` (SPEC 5): runs one definition to its end on an
 * embedded store and prints the execution document. Progress goes to
 * stderr, one line per transition (with a live status line when stderr is
 * a terminal). Exit 0 completed, 1 failed or cancelled, 2 usage or
 * definition error. docs/examples/basic_workflow.md walks through it.
 */
#include "common/compat.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "wfo/wfo.h"
#include "../core/def.h"
#include "../core/query.h"
#include "../common/duration.h"
#include "../common/util.h"

extern char **environ;

struct progress {
    int64_t t0;
    int tty;
    int quiet;
    long transitions;
};

static void short_json(const char *data, const char *key, char *out, size_t size)
{
    out[0] = 0;
    if (!data)
        return;
    json_t *v = NULL;
    if (wfo_json_parse(data, strlen(data), &v, NULL) < 0)
        return;
    json_t *f = json_object_get(v, key);
    if (f) {
        char *s = wfo_json_dumps(f);
        if (strlen(s) > 80)
            snprintf(out, size, "%.77s...", s);
        else
            snprintf(out, size, "%s", s);
        free(s);
    }
    json_decref(v);
}

static void on_progress(void *ud, const struct wfo_progress *p)
{
    struct progress *pr = ud;
    pr->transitions++;
    if (pr->quiet)
        return;
    char extra[160] = "";
    if (strcmp(p->type, "step.failed") == 0 || strcmp(p->type, "step.retrying") == 0 ||
        strcmp(p->type, "step.caught") == 0 || strcmp(p->type, "execution.failed") == 0) {
        json_t *v = NULL;
        if (p->data && wfo_json_parse(p->data, strlen(p->data), &v, NULL) == 0) {
            json_t *e = json_object_get(v, "error");
            snprintf(extra, sizeof(extra), " %s: %s",
                     wfo_json_str(e, "type") ? wfo_json_str(e, "type") : "?",
                     wfo_json_str(e, "message") ? wfo_json_str(e, "message") : "");
            json_decref(v);
        }
    } else if (strcmp(p->type, "step.started") == 0) {
        char n[32];
        short_json(p->data, "attempt", n, sizeof(n));
        if (n[0])
            snprintf(extra, sizeof(extra), " (attempt %s)", n);
    } else if (strcmp(p->type, "step.completed") == 0 ||
               strcmp(p->type, "execution.completed") == 0) {
        char o[128];
        short_json(p->data, "output", o, sizeof(o));
        snprintf(extra, sizeof(extra), " -> %s", o);
    }
    double secs = (double)(p->time - pr->t0) / 1000.0;
    if (pr->tty)
        fprintf(stderr, "\r\033[K\033[2m%8.3fs\033[0m %s%s%s%s\n", secs, p->type,
                p->step ? " " : "", p->step ? p->step : "", extra);
    else
        fprintf(stderr, "%8.3fs %s%s%s%s\n", secs, p->type, p->step ? " " : "",
                p->step ? p->step : "", extra);
    if (pr->tty)
        fprintf(stderr, "\033[1m  ... %ld transitions\033[0m", pr->transitions);
    fflush(stderr);
}

int cmd_run(int argc, char **argv)
{
    const char *file = NULL, *db = NULL, *input_arg = NULL;
    const char **handlers = NULL;
    int n_handlers = 0, quiet = 0, rc = EXIT_USAGE;
    char *input = NULL, *text = NULL, *id = NULL, *doc_text = NULL;
    size_t len = 0;
    json_t *doc = NULL, *result = NULL;
    struct def *def = NULL;
    struct wfo_engine *e = NULL;
    struct def_problems probs = {0};
    struct wfo_error err = WFO_ERROR_INIT;
    struct progress pr = {0};

    handlers = wfo_calloc((size_t)argc, sizeof(*handlers));
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((strcmp(a, "--input") == 0 || strcmp(a, "--db") == 0 || strcmp(a, "--handler") == 0) &&
            i + 1 >= argc) {
            cli_error("%s needs a value", a);
            goto out;
        }
        if (strcmp(a, "--input") == 0)
            input_arg = argv[++i];
        else if (strncmp(a, "--input=", 8) == 0)
            input_arg = a + 8;
        else if (strcmp(a, "--db") == 0)
            db = argv[++i];
        else if (strncmp(a, "--db=", 5) == 0)
            db = a + 5;
        else if (strcmp(a, "--handler") == 0)
            handlers[n_handlers++] = argv[++i];
        else if (strncmp(a, "--handler=", 10) == 0)
            handlers[n_handlers++] = a + 10;
        else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0)
            quiet = 1;
        else if (a[0] == '-' && a[1]) {
            cli_error("run: unknown option '%s'", a);
            goto out;
        } else if (!file)
            file = a;
        else {
            cli_error("run: one FILE only (got '%s' too)", a);
            goto out;
        }
    }
    if (!file) {
        cli_error("run: no FILE given");
        cli_usage_error("run");
        goto out;
    }
    for (int i = 0; i < n_handlers; i++) {
        const char *eq = strchr(handlers[i], '=');
        if (!eq || eq == handlers[i]) {
            cli_error("--handler '%s': expected QUEUE=COMMAND", handlers[i]);
            goto out;
        }
    }
    if (cli_load_doc(file, &doc, &text, &len))
        goto out;
    if (def_compile(doc, &def, &probs) < 0) {
        for (int k = 0; k < probs.n; k++)
            cli_problem(file, probs.items[k].path, probs.items[k].message);
        goto out;
    }
    /* every task queue needs a handler before anything runs */
    const char **queues = def_task_queues(def);
    int missing = 0;
    for (const char **q = queues; *q; q++) {
        int found = 0;
        for (int i = 0; i < n_handlers; i++) {
            const char *eq = strchr(handlers[i], '=');
            if ((size_t)(eq - handlers[i]) == strlen(*q) &&
                strncmp(handlers[i], *q, strlen(*q)) == 0)
                found = 1;
        }
        if (!found) {
            fprintf(stderr, "%s: no handler for task queue \"%s\" (add --handler %s=COMMAND)\n",
                    file, *q, *q);
            missing = 1;
        }
    }
    free(queues);
    if (missing)
        goto out;
    if (input_arg && cli_input(input_arg, &input))
        goto out;

    pr.t0 = wfo_now_ms();
    pr.tty = isatty(2);
    pr.quiet = quiet;
    /* WFO_SECRET_NAME=value: $secrets.NAME (SPEC 2.1) */
    struct server_config sc;
    struct wfo_buf sp = WFO_BUF_INIT;
    config_init(&sc);
    config_secrets_env(&sc, environ, &sp);
    char *secrets_json = sc.secrets ? wfo_json_dumps(sc.secrets) : NULL;
    config_release(&sc);
    if (sp.len) {
        fputs(sp.buf, stderr);
        wfo_buf_release(&sp);
        free(secrets_json);
        goto out;
    }
    struct wfo_engine_options opt = {
        .db_url = db,
        .secrets_json = secrets_json,
        .exec_enabled = 1,
        .on_progress = on_progress,
        .progress_ud = &pr,
    };
    int er = wfo_engine_new(&opt, &e, &err);
    free(secrets_json);
    if (er < 0) {
        cli_error("%s", err.message);
        goto out;
    }
    for (int i = 0; i < n_handlers; i++) {
        const char *eq = strchr(handlers[i], '=');
        char *q = wfo_strndup(handlers[i], (size_t)(eq - handlers[i]));
        wfo_engine_handle_command(e, q, eq + 1);
        free(q);
    }
    if (wfo_engine_launch(e, &err) < 0 ||
        wfo_engine_put_workflow(e, text, len, NULL, NULL, NULL, &err) < 0 ||
        wfo_engine_start(e, def->name, 0, input, NULL, NULL, &id, &err) < 0) {
        cli_error("%s", err.message);
        rc = EXIT_FAILED;
        goto out;
    }
    for (;;) {
        free(doc_text);
        doc_text = NULL;
        if (wfo_engine_get(e, id, 3600 * 1000, &doc_text, &err) < 0) {
            cli_error("%s", err.message);
            rc = EXIT_FAILED;
            goto out;
        }
        if (wfo_json_parse(doc_text, strlen(doc_text), &result, NULL) < 0)
            break;
        const char *st = wfo_json_str(result, "status");
        if (query_status_ended(st) > 0)
            break;
        json_decref(result);
        result = NULL;
    }
    if (pr.tty && !quiet)
        fprintf(stderr, "\r\033[K");
    char *pretty = wfo_json_dumps_pretty(result);
    printf("%s\n", pretty);
    free(pretty);
    fflush(stdout);
    rc = strcmp(wfo_json_str(result, "status"), "completed") == 0 ? EXIT_OK : EXIT_FAILED;
out:
    wfo_engine_free(e);
    def_problems_release(&probs);
    def_unref(def);
    json_decref(doc);
    json_decref(result);
    free(handlers);
    free(input);
    free(text);
    free(id);
    free(doc_text);
    return rc;
}
