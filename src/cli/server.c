/*
 * server.c - `wfo server [--config FILE] [--listen ADDR:PORT] [--db URL]
 * [--print-config]` (SPEC 5, 6): reads the configuration (file < WFO_*
 * variables < flags), opens the engine on the store, serves the HTTP API
 * (api/) until SIGTERM or SIGINT, then stops gracefully: no new
 * connections, requests being handled finish (bounded by
 * server.shutdown_timeout), the engine stops, exit 0.
 * docs/operations/configuration.md and docs/interfaces/api.md.
 *
 * Exit status: 0 after a clean stop or --print-config; 2 for a usage or
 * configuration problem (unknown flag or key, a bad value, a public listen
 * address without tokens); 1 when the store or the socket fails, or when
 * requests are still being handled after the shutdown timeout.
 */
#include "common/compat.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "wfo/wfo.h"
#include "../api/api.h"
#include "../core/engine.h"
#include "../common/log.h"
#include "../common/util.h"

extern char **environ;

/* As many descriptors as allowed: every connection holds one. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* The flags: NULL when absent. */
struct server_flags {
    const char *config, *listen, *db;
    int print;
};

static int parse_flags(int argc, char **argv, struct server_flags *f)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **dst = NULL;
        size_t n = 0;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            cli_help("server");
            return -2;
        }
        if (strcmp(a, "--print-config") == 0) {
            f->print = 1;
            continue;
        }
        if (strncmp(a, "--config", (n = 8)) == 0)
            dst = &f->config;
        else if (strncmp(a, "--listen", (n = 8)) == 0)
            dst = &f->listen;
        else if (strncmp(a, "--db", (n = 4)) == 0)
            dst = &f->db;
        if (!dst || (a[n] != 0 && a[n] != '=')) {
            cli_error("server: unknown option '%s'", a);
            cli_usage_error("server");
            return -1;
        }
        if (a[n] == '=') {
            *dst = a + n + 1;
        } else if (i + 1 < argc) {
            *dst = argv[++i];
        } else {
            cli_error("%s needs a value", a);
            return -1;
        }
        if (!**dst) {
            cli_error("%.*s: must not be empty", (int)n, a);
            return -1;
        }
    }
    return 0;
}

int cmd_server(int argc, char **argv)
{
    struct server_flags f = {0};
    struct server_config cfg;
    struct wfo_buf problems = WFO_BUF_INIT;
    struct wfo_error err = WFO_ERROR_INIT;
    struct wfo_engine *e = NULL;
    struct api_metrics *metrics = NULL;
    struct api *api = NULL;
    struct http_server *http = NULL;
    char *retry_json = NULL;
    int rc = EXIT_USAGE;

    config_init(&cfg);
    int fr = parse_flags(argc, argv, &f);
    if (fr == -2) {
        rc = EXIT_OK;
        goto out;
    }
    if (fr < 0)
        goto out;
    if (f.config)
        config_load_file(&cfg, f.config, &problems);
    config_load_env(&cfg, environ, &problems);
    if (problems.len) {
        fputs(problems.buf, stderr);
        goto out;
    }
    {
        struct wfo_buf unknown = WFO_BUF_INIT;
        config_env_unknown(environ, &unknown);
        if (unknown.len)
            fprintf(stderr, "%s", unknown.buf); /* before logging is set up */
        wfo_buf_release(&unknown);
    }
    if (f.listen) {
        free(cfg.listen);
        cfg.listen = wfo_strdup(f.listen);
    }
    if (f.db) {
        free(cfg.db);
        cfg.db = wfo_strdup(f.db);
    }
    /* what would stop the server stops --print-config too (SPEC 6: a bad
     * value is refused, whichever way it is looked at) */
    if (engine_db_url_check(cfg.db, &err) < 0 ||
        http_listen_check(cfg.listen, cfg.n_tokens > 0, &err) < 0) {
        cli_error("%s", err.message);
        goto out;
    }
    if (f.print) {
        json_t *j = config_json(&cfg);
        char *s = wfo_json_dumps_pretty(j);
        printf("%s\n", s);
        free(s);
        json_decref(j);
        rc = EXIT_OK;
        goto out;
    }

    wfo_log_setup((enum wfo_log_level)wfo_log_level_parse(cfg.log_level),
                  strcmp(cfg.log_format, "json") == 0 ? WFO_LOG_JSON : WFO_LOG_TEXT);
    raise_nofile();
    /* SIGTERM and SIGINT are taken by sigwait() below; every thread made
     * from here on inherits the mask (children of exec steps get theirs
     * reset by steps/proc.c). */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    metrics = api_metrics_new();
    if (cfg.retry)
        retry_json = wfo_json_dumps(cfg.retry);
    char *secrets_json = cfg.secrets ? wfo_json_dumps(cfg.secrets) : NULL;
    struct wfo_engine_options opt = {
        .secrets_json = secrets_json,
        .db_url = cfg.db,
        .transition_limit = cfg.transitions,
        .exec_enabled = cfg.exec_enabled,
        .runner_threads = (int)cfg.runner_threads,
        .http_deny_private = cfg.deny_private,
        .store_pool_size = (int)cfg.pool_size,
        .default_retry_json = retry_json,
        .on_progress = api_metrics_on_progress,
        .log_transitions = 1,
        .progress_ud = metrics,
    };
    int er = wfo_engine_new(&opt, &e, &err);
    free(secrets_json);
    if (er < 0) {
        cli_error("%s", err.message);
        rc = err.code == WFO_EINVAL ? EXIT_USAGE : EXIT_FAILED;
        goto out;
    }
    char advertise[300];
    snprintf(advertise, sizeof(advertise), "%s%s", cfg.advertise ? "" : "http://",
             cfg.advertise ? cfg.advertise : cfg.listen);
    struct engine_tuning tune = {.lease_ms = cfg.lease_ms,
                                 .retention_ms = cfg.retention_ms,
                                 .outbox_retention_ms = cfg.events_retention_ms,
                                 .cluster = cfg.cluster,
                                 .node_url = advertise,
                                 .shard_lease_ms = cfg.cluster ? cfg.cluster_lease_ms : 0};
    engine_tune(e, &tune);
    /* Recovery, then the engine's threads: executions that were running
     * continue now, and every request finds the engine launched. */
    if (wfo_engine_launch(e, &err) < 0) {
        cli_error("%s", err.message);
        rc = EXIT_FAILED;
        goto out;
    }
    /* webhook delivery (SPEC 2.5): its own threads, stopped by
     * wfo_engine_free */
    struct engine_webhook_options wopt = {.failing_after = (int)cfg.webhook_failing_after,
                                          .timeout_ms = cfg.webhook_timeout_ms,
                                          .deny_private = cfg.deny_private};
    if (engine_webhooks_start(e, &wopt, &err) < 0) {
        cli_error("%s", err.message);
        rc = EXIT_FAILED;
        goto out;
    }

    struct api_token_conf *tokens = wfo_calloc((size_t)cfg.n_tokens + 1, sizeof(*tokens));
    for (int i = 0; i < cfg.n_tokens; i++)
        tokens[i] = (struct api_token_conf){cfg.tokens[i].sha256, cfg.tokens[i].ns,
                                            cfg.tokens[i].role, cfg.tokens[i].name};
    struct api_options aopt = {
        .ns = "default",
        .tokens = tokens,
        .n_tokens = cfg.n_tokens,
        .body_max = (size_t)cfg.body_bytes,
        .payload_max = (size_t)cfg.payload_bytes,
        .long_polls_per_token = (int)cfg.long_polls_per_token,
        .max_wait_ms = cfg.max_wait_ms,
        .deny_private = cfg.deny_private,
    };
    int ar = api_new(e, &aopt, metrics, &api, &err);
    free(tokens);
    if (ar < 0) {
        cli_error("%s", err.message);
        goto out;
    }
    struct http_options hopt = {
        .listen = cfg.listen,
        .allow_public = cfg.n_tokens > 0,
        .conn_timeout_s = (unsigned)((cfg.conn_timeout_ms + 999) / 1000),
        .max_connections = (unsigned)cfg.max_connections,
        .shutdown_ms = cfg.shutdown_ms,
        .threads = (unsigned)cfg.http_threads,
    };
    if (http_server_start(api, &hopt, &http, &err) < 0) {
        cli_error("%s", err.message);
        rc = err.code == WFO_EINVAL ? EXIT_USAGE : EXIT_FAILED;
        goto out;
    }
    if (cfg.n_tokens)
        wfo_info(NULL, NULL,
                 "auth: %d tokens; every request but /healthz, /readyz, /metrics "
                 "and the page needs one",
                 cfg.n_tokens);
    wfo_info(NULL, NULL, "listening on http://%s (store %s)", http_server_address(http),
             engine_store_name(e));
    if (cfg.cluster && !cfg.advertise) { /* the port bound, when listen named 0 */
        snprintf(advertise, sizeof(advertise), "http://%s", http_server_address(http));
        engine_advertise(e, advertise);
    }

    int sig = 0;
    while (sigwait(&stop, &sig) != 0)
        ;
    wfo_info(NULL, NULL, "%s: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    rc = EXIT_OK;
out:
    if (http_server_stop(http) < 0) {
        /* handlers are stuck inside the engine: leave as after a crash (the
         * store recovers), without freeing what they use */
        fflush(stderr);
        _exit(EXIT_FAILED);
    }
    wfo_engine_free(e);
    api_free(api);
    api_metrics_free(metrics);
    free(retry_json);
    wfo_buf_release(&problems);
    config_release(&cfg);
    if (rc == EXIT_OK && e)
        wfo_info(NULL, NULL, "stopped");
    return rc;
}
