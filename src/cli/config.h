/*
 * config.h - the server's configuration (SPEC 6): a YAML file, overridden
 * by WFO_* environment variables, overridden by flags. wfo.example.yaml
 * at the top of the tree is the commented reference;
 * docs/operations/configuration.md explains each key.
 */
#ifndef WFO_CLI_CONFIG_H
#define WFO_CLI_CONFIG_H

#include <stdint.h>

#include "../common/buf.h"
#include "../common/json.h"

/* One API token. Only its SHA-256 is kept (a `token:` is hashed on load). */
struct config_token {
    char *sha256; /* lowercase hex */
    char *ns;
    char *role; /* reader | worker | operator | admin */
    char *name; /* for the audit log; NULL: a digest prefix */
};

struct server_config {
    char *listen;                /* listen: 127.0.0.1:7233 */
    char *db;                    /* db: sqlite:wfo.db */
    int64_t pool_size;           /* store.pool_size: reader connections */
    struct config_token *tokens; /* auth.tokens */
    int n_tokens;
    int64_t body_bytes;            /* limits.body_bytes */
    int64_t payload_bytes;         /* limits.payload_bytes: input, output, error, details */
    int64_t long_polls_per_token;  /* limits.long_polls_per_token (with tokens) */
    int64_t transitions;           /* limits.transitions */
    int exec_enabled;              /* exec.enabled */
    int deny_private;              /* http.deny_private */
    char *log_level;               /* log.level: debug | info | warn | error | off */
    char *log_format;              /* log.format: text | json */
    json_t *retry;                 /* retry: the default policy; NULL: SPEC 2.3's */
    json_t *secrets;               /* secrets (and WFO_SECRET_*): {NAME: value}; NULL: none */
    int64_t lease_ms;              /* workers.lease */
    int64_t retention_ms;          /* retention.finished; 0: keep forever */
    int64_t events_retention_ms;   /* events.retention: outbox rows; 0: keep forever */
    int64_t webhook_failing_after; /* webhooks.failing_after: failures before status failing */
    int64_t webhook_timeout_ms;    /* webhooks.timeout: one delivery's request */
    int64_t conn_timeout_ms;       /* server.connection_timeout */
    int64_t max_connections;       /* server.max_connections */
    int64_t shutdown_ms;           /* server.shutdown_timeout */
    int64_t max_wait_ms;           /* server.max_wait */
    int64_t runner_threads;        /* server.runner_threads */
    int64_t
        http_threads; /* server.http_threads: 0, one thread per connection; default one per CPU */
    int cluster;      /* cluster.enabled: several servers share the store */
    char *advertise;  /* cluster.advertise: this node's URL; NULL: from listen */
    int64_t cluster_lease_ms; /* cluster.lease: a node's hold on its shards */
};

/* The defaults. Caller releases with config_release(). */
void config_init(struct server_config *c);
void config_release(struct server_config *c);

/* Reads a YAML (or JSON) file over c. Every problem is appended to
 * problems as a line "FILE: PATH: MESSAGE" (unknown keys included);
 * returns -1 when there was one. */
int config_load_file(struct server_config *c, const char *path, struct wfo_buf *problems);
/* Applies the WFO_* variables of env (NULL-terminated "K=V" strings, like
 * environ); problems as "WFO_X: MESSAGE". */
int config_load_env(struct server_config *c, char *const *env, struct wfo_buf *problems);

/* Adds every WFO_SECRET_NAME=value of env to c->secrets (config_load_env
 * does; `wfo run` calls it alone). */
int config_secrets_env(struct server_config *c, char *const *env, struct wfo_buf *problems);
/* Appends a warning line for each WFO_ variable of env that is neither a
 * setting (config_load_env) nor one wfo reads elsewhere: a misspelt one
 * is said, not silently ignored (SPEC 6). */
void config_env_unknown(char *const *env, struct wfo_buf *out);

/* The effective configuration as a document that config_load_file reads
 * back (tokens as token_sha256). New reference. */
json_t *config_json(const struct server_config *c);

#endif
