/*
 * config.c - the server's configuration (SPEC 6): defaults, then the YAML
 * file, then WFO_* variables (flags are applied by server.c last).
 * docs/operations/configuration.md; wfo.example.yaml is the reference.
 *
 * One table, keys[], names every setting once: its path in the file, its
 * kind, where it lives in struct server_config, its bounds and its
 * environment variable. The file loader, the environment loader and
 * config_json() all walk it, so a new setting is one line here (and one
 * paragraph in the docs).
 */
#include "common/compat.h"

#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "../common/duration.h"
#include "../common/log.h"
#include "../common/redact.h"
#include "../common/crypto.h"
#include "../common/util.h"
#include "../common/yaml.h"
#include "../core/def.h"

enum kind { K_STR, K_INT, K_BOOL, K_DUR, K_TOKENS, K_RETRY, K_SECRETS };

struct key {
    const char *path;
    enum kind kind;
    size_t off;
    int64_t min, max;
    const char *env;
    const char *const *choices; /* K_STR: allowed values, NULL-terminated; NULL: any */
};

#define OFF(f) offsetof(struct server_config, f)
#define DAY (INT64_C(86400000))

static const char *const levels[] = {"debug", "info", "warn", "error", "off", NULL};
static const char *const formats[] = {"text", "json", NULL};

static const struct key keys[] = {
    {"listen", K_STR, OFF(listen), 0, 0, "WFO_LISTEN", NULL},
    {"db", K_STR, OFF(db), 0, 0, "WFO_DB", NULL},
    {"store.pool_size", K_INT, OFF(pool_size), 1, 64, "WFO_POOL_SIZE", NULL},
    {"auth.tokens", K_TOKENS, OFF(tokens), 0, 0, NULL, NULL},
    {"limits.body_bytes", K_INT, OFF(body_bytes), 1024, INT64_C(1) << 30, "WFO_BODY_BYTES", NULL},
    {"limits.payload_bytes", K_INT, OFF(payload_bytes), 64, INT64_C(1) << 30, "WFO_PAYLOAD_BYTES",
     NULL},
    {"limits.long_polls_per_token", K_INT, OFF(long_polls_per_token), 1, 1000000,
     "WFO_LONG_POLLS_PER_TOKEN", NULL},
    {"limits.transitions", K_INT, OFF(transitions), 1, INT64_C(1) << 31, "WFO_TRANSITIONS", NULL},
    {"exec.enabled", K_BOOL, OFF(exec_enabled), 0, 0, "WFO_EXEC_ENABLED", NULL},
    {"http.deny_private", K_BOOL, OFF(deny_private), 0, 0, "WFO_DENY_PRIVATE", NULL},
    {"log.level", K_STR, OFF(log_level), 0, 0, "WFO_LOG_LEVEL", levels},
    {"log.format", K_STR, OFF(log_format), 0, 0, "WFO_LOG_FORMAT", formats},
    {"retry", K_RETRY, OFF(retry), 0, 0, NULL, NULL},
    {"secrets", K_SECRETS, OFF(secrets), 0, 0, NULL, NULL},
    {"workers.lease", K_DUR, OFF(lease_ms), 1000, DAY, "WFO_LEASE", NULL},
    {"retention.finished", K_DUR, OFF(retention_ms), 0, 36500 * DAY, "WFO_RETENTION", NULL},
    {"events.retention", K_DUR, OFF(events_retention_ms), 0, 36500 * DAY, "WFO_EVENTS_RETENTION",
     NULL},
    {"webhooks.failing_after", K_INT, OFF(webhook_failing_after), 1, 1000000,
     "WFO_WEBHOOKS_FAILING_AFTER", NULL},
    {"webhooks.timeout", K_DUR, OFF(webhook_timeout_ms), 100, 3600000, "WFO_WEBHOOKS_TIMEOUT",
     NULL},
    {"server.connection_timeout", K_DUR, OFF(conn_timeout_ms), 1000, DAY, "WFO_CONNECTION_TIMEOUT",
     NULL},
    {"server.max_connections", K_INT, OFF(max_connections), 16, 1000000, "WFO_MAX_CONNECTIONS",
     NULL},
    {"server.shutdown_timeout", K_DUR, OFF(shutdown_ms), 0, 3600000, "WFO_SHUTDOWN_TIMEOUT", NULL},
    {"server.max_wait", K_DUR, OFF(max_wait_ms), 1000, DAY, "WFO_MAX_WAIT", NULL},
    {"server.runner_threads", K_INT, OFF(runner_threads), 1, 1024, "WFO_RUNNER_THREADS", NULL},
    {"server.http_threads", K_INT, OFF(http_threads), 0, 1024, "WFO_HTTP_THREADS", NULL},
    {"cluster.enabled", K_BOOL, OFF(cluster), 0, 0, "WFO_CLUSTER", NULL},
    {"cluster.advertise", K_STR, OFF(advertise), 0, 0, "WFO_ADVERTISE", NULL},
    {"cluster.lease", K_DUR, OFF(cluster_lease_ms), 2000, 300000, "WFO_CLUSTER_LEASE", NULL},
};

static const char *const roles[] = {"reader", "worker", "operator", "admin", NULL};

#define FIELD(c, k, type) ((type *)((char *)(c) + (k)->off))

/* A pool of HTTP threads, one per CPU (2 to 16): a thread per
 * connection cost a fifth more CPU per request in `bench http`
 * (docs/operations/scaling.md, "HTTP threading"). */
static long http_threads_default(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 2 ? 2 : n > 16 ? 16 : n;
}

void config_init(struct server_config *c)
{
    memset(c, 0, sizeof(*c));
    c->listen = wfo_strdup("127.0.0.1:7233");
    c->db = wfo_strdup("sqlite:wfo.db");
    c->pool_size = 8;
    c->body_bytes = 1048576;
    c->payload_bytes = 262144;
    c->long_polls_per_token = 100;
    c->transitions = 10000;
    c->log_level = wfo_strdup("info");
    c->log_format = wfo_strdup("text");
    c->lease_ms = 30000;
    c->retention_ms = 0;
    c->events_retention_ms = 7 * DAY;
    c->webhook_failing_after = 5;
    c->webhook_timeout_ms = 10000;
    c->conn_timeout_ms = 60000;
    c->max_connections = 10000;
    c->shutdown_ms = 10000;
    c->max_wait_ms = 600000;
    c->runner_threads = 16;
    c->http_threads = (int)http_threads_default();
    c->cluster_lease_ms = 6000;
}

static void tokens_release(struct server_config *c)
{
    for (int i = 0; i < c->n_tokens; i++) {
        free(c->tokens[i].sha256);
        free(c->tokens[i].ns);
        free(c->tokens[i].role);
        free(c->tokens[i].name);
    }
    free(c->tokens);
    c->tokens = NULL;
    c->n_tokens = 0;
}

void config_release(struct server_config *c)
{
    free(c->listen);
    free(c->db);
    free(c->log_level);
    free(c->log_format);
    free(c->advertise);
    json_decref(c->retry);
    json_decref(c->secrets);
    tokens_release(c);
    memset(c, 0, sizeof(*c));
}

static const struct key *key_find(const char *path)
{
    for (size_t i = 0; i < WFO_ARRAY_SIZE(keys); i++)
        if (strcmp(keys[i].path, path) == 0)
            return &keys[i];
    return NULL;
}

/* Is some key under section "name."? */
static int is_section(const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < WFO_ARRAY_SIZE(keys); i++)
        if (strncmp(keys[i].path, name, n) == 0 && keys[i].path[n] == '.')
            return 1;
    return 0;
}

static void problem(struct wfo_buf *p, const char *where, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void problem(struct wfo_buf *p, const char *where, const char *path, const char *fmt, ...)
{
    va_list ap;
    wfo_buf_addf(p, "%s: ", where);
    if (path)
        wfo_buf_addf(p, "%s: ", path);
    va_start(ap, fmt);
    wfo_buf_vaddf(p, fmt, ap);
    va_end(ap);
    wfo_buf_addch(p, '\n');
}

static int choice_ok(const struct key *k, const char *s)
{
    if (!k->choices)
        return 1;
    for (const char *const *c = k->choices; *c; c++)
        if (strcmp(*c, s) == 0)
            return 1;
    return 0;
}

static void choices_text(const struct key *k, char *out, size_t size)
{
    out[0] = 0;
    for (const char *const *c = k->choices; *c; c++) {
        size_t n = strlen(out);
        snprintf(out + n, size - n, "%s%s", n ? ", " : "", *c);
    }
}

static int is_hex64(const char *s)
{
    if (strlen(s) != 64)
        return 0;
    for (; *s; s++)
        if (!isxdigit((unsigned char)*s))
            return 0;
    return 1;
}

static int ns_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 128 || !(islower((unsigned char)s[0]) || isdigit((unsigned char)s[0])))
        return 0;
    for (; *s; s++)
        if (!(islower((unsigned char)*s) || isdigit((unsigned char)*s) || strchr("._-", *s)))
            return 0;
    return 1;
}

static int set_tokens(struct server_config *c, const json_t *v, const char *where,
                      struct wfo_buf *p)
{
    int bad = 0;
    if (!json_is_array(v)) {
        problem(p, where, "auth.tokens", "expected a list of {token, namespace, role}");
        return -1;
    }
    struct config_token *list = wfo_calloc(json_array_size(v) + 1, sizeof(*list));
    int n = 0;
    size_t i;
    json_t *t;
    json_array_foreach(v, i, t)
    {
        char path[64];
        snprintf(path, sizeof(path), "auth.tokens[%zu]", i);
        if (!json_is_object(t)) {
            problem(p, where, path, "expected {token, namespace, role}");
            bad = 1;
            continue;
        }
        const char *k;
        json_t *f;
        int item_bad = 0;
        json_object_foreach((json_t *)t, k, f)
        {
            if (strcmp(k, "token") && strcmp(k, "token_sha256") && strcmp(k, "namespace") &&
                strcmp(k, "role") && strcmp(k, "name")) {
                problem(p, where, path,
                        "unknown key '%s' (expected token or token_sha256, "
                        "namespace, role, name)",
                        k);
                item_bad = 1;
            } else if (!json_is_string(f)) {
                problem(p, where, path, "%s: expected a string", k);
                item_bad = 1;
            }
        }
        if (item_bad) {
            bad = 1;
            continue;
        }
        const char *token = wfo_json_str(t, "token"), *hash = wfo_json_str(t, "token_sha256");
        const char *ns = wfo_json_str(t, "namespace"), *role = wfo_json_str(t, "role");
        const char *tname = wfo_json_str(t, "name");
        if (!!token == !!hash) {
            problem(p, where, path, "expected one of token or token_sha256");
            item_bad = 1;
        } else if (token && wfo_utf8_chars(token) < 16) {
            problem(p, where, path, "token: shorter than 16 characters");
            item_bad = 1;
        } else if (hash && !is_hex64(hash)) {
            problem(p, where, path, "token_sha256: expected 64 hex digits");
            item_bad = 1;
        }
        if (ns && !ns_valid(ns)) {
            problem(p, where, path, "namespace: '%s' is not [a-z0-9][a-z0-9._-]*", ns);
            item_bad = 1;
        }
        int role_ok = 0;
        for (int r = 0; role && roles[r]; r++)
            role_ok |= strcmp(role, roles[r]) == 0;
        if (!role_ok) {
            problem(p, where, path, "role: expected one of reader, worker, operator, admin");
            item_bad = 1;
        }
        if (item_bad) {
            bad = 1;
            continue;
        }
        char hex[65];
        if (token)
            wfo_sha256_hex(token, strlen(token), hex);
        else
            for (int j = 0; j < 65; j++)
                hex[j] = (char)tolower((unsigned char)hash[j]);
        /* the same token twice: only one entry could ever be used */
        int dup = -1;
        for (int j = 0; j < n && dup < 0; j++)
            if (strcmp(list[j].sha256, hex) == 0)
                dup = j;
        if (dup >= 0) {
            problem(p, where, path, "the same token as an earlier entry of auth.tokens");
            bad = 1;
            continue;
        }
        list[n].sha256 = wfo_strdup(hex);
        list[n].ns = wfo_strdup(ns ? ns : "default");
        list[n].role = wfo_strdup(role);
        list[n].name = tname ? wfo_strdup(tname) : NULL;
        n++;
    }
    if (bad) {
        for (int j = 0; j < n; j++) {
            free(list[j].sha256);
            free(list[j].ns);
            free(list[j].role);
            free(list[j].name);
        }
        free(list);
        return -1;
    }
    tokens_release(c);
    c->tokens = list;
    c->n_tokens = n;
    return 0;
}

/* retry: checked here, when the configuration is loaded, by the rules of a
 * step's `retry:` (core/def.c, SPEC 2.3), so that --print-config refuses
 * what the engine would. Each problem at its key's path under label
 * ("retry.max_attempts"; label NULL: "max_attempts"). */
static int set_retry(struct server_config *c, const json_t *v, const char *where, const char *label,
                     struct wfo_buf *p)
{
    struct def_problems probs = {0};
    int rc = def_retry_compile(v, label ? label : "", NULL, &probs);
    for (int i = 0; i < probs.n; i++)
        problem(p, where, probs.items[i].path[0] ? probs.items[i].path : NULL, "%s",
                probs.items[i].message);
    def_problems_release(&probs);
    if (rc < 0)
        return -1;
    json_decref(c->retry);
    c->retry = json_deep_copy(v);
    return 0;
}

static int secret_name_ok(const char *s)
{
    if (!s[0] || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
        return 0;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_'))
            return 0;
    return 1;
}

/* Adds secret name = value to c (a later one replaces an earlier one). */
static int secret_put(struct server_config *c, const char *name, const char *value,
                      const char *where, struct wfo_buf *p)
{
    if (!secret_name_ok(name)) {
        problem(p, where, "secrets", "'%s' is not a name ([A-Za-z_][A-Za-z0-9_]*)", name);
        return -1;
    }
    if (strlen(value) < WFO_REDACT_MIN) {
        problem(p, where, "secrets",
                "%s: shorter than %d characters (its value could not be "
                "redacted without mangling every document)",
                name, WFO_REDACT_MIN);
        return -1;
    }
    if (!c->secrets)
        c->secrets = json_object();
    json_object_set_new(c->secrets, name, json_string_nocheck(value));
    return 0;
}

/* secrets: {NAME: "value" | {file: PATH} | {env: VAR}} (SPEC 6). */
static int set_secrets(struct server_config *c, const json_t *v, const char *where,
                       struct wfo_buf *p)
{
    const char *name;
    json_t *s;
    int bad = 0;
    if (!json_is_object(v)) {
        problem(p, where, "secrets",
                "expected a mapping of NAME: value, {file: PATH} or {env: VAR}");
        return -1;
    }
    json_object_foreach((json_t *)v, name, s)
    {
        const char *file = wfo_json_str(s, "file"), *env = wfo_json_str(s, "env");
        if (json_is_string(s)) {
            bad |= secret_put(c, name, json_string_value(s), where, p) < 0;
        } else if (json_is_object(s) && json_object_size(s) == 1 && file) {
            struct wfo_buf text;
            struct wfo_error err = WFO_ERROR_INIT;
            wfo_buf_init(&text, 1u << 20);
            if (wfo_read_file(file, &text, &err) < 0) {
                problem(p, where, "secrets", "%s: %s", name, err.message);
                bad = 1;
            } else {
                /* the newline editors and `echo` leave at the end is not part of it */
                if (text.len && text.buf[text.len - 1] == '\n')
                    text.buf[--text.len] = 0;
                if (text.len && text.buf[text.len - 1] == '\r')
                    text.buf[--text.len] = 0;
                if (memchr(text.buf, 0, text.len)) {
                    problem(p, where, "secrets", "%s: file '%s' holds a NUL byte", name, file);
                    bad = 1;
                } else {
                    bad |= secret_put(c, name, text.buf, where, p) < 0;
                }
            }
            wfo_buf_release(&text);
        } else if (json_is_object(s) && json_object_size(s) == 1 && env) {
            const char *val = getenv(env);
            if (!val) {
                problem(p, where, "secrets", "%s: the environment variable '%s' is not set", name,
                        env);
                bad = 1;
            } else {
                bad |= secret_put(c, name, val, where, p) < 0;
            }
        } else {
            problem(p, where, "secrets", "%s: expected a string, {file: PATH} or {env: VAR}", name);
            bad = 1;
        }
    }
    return bad ? -1 : 0;
}

int config_secrets_env(struct server_config *c, char *const *env, struct wfo_buf *problems)
{
    size_t before = problems->len;
    for (char *const *e = env; e && *e; e++) {
        if (strncmp(*e, "WFO_SECRET_", 11) != 0)
            continue;
        const char *eq = strchr(*e, '=');
        if (!eq)
            continue;
        char *name = wfo_strndup(*e + 11, (size_t)(eq - *e - 11));
        char where[300];
        snprintf(where, sizeof(where), "WFO_SECRET_%s", name);
        secret_put(c, name, eq + 1, where, problems);
        free(name);
    }
    return problems->len == before ? 0 : -1;
}

/* Sets key k from a JSON value; problems say "WHERE: LABEL: ..." (label
 * NULL: "WHERE: ..."). */
static int set_json(struct server_config *c, const struct key *k, const json_t *v,
                    const char *where, const char *label, struct wfo_buf *p)
{
    char text[160];
    switch (k->kind) {
    case K_STR:
        if (!json_is_string(v) || !json_string_length(v)) {
            problem(p, where, label, "expected a non-empty string");
            return -1;
        }
        if (!choice_ok(k, json_string_value(v))) {
            choices_text(k, text, sizeof(text));
            problem(p, where, label, "'%s' is not one of %s", json_string_value(v), text);
            return -1;
        }
        free(*FIELD(c, k, char *));
        *FIELD(c, k, char *) = wfo_strdup(json_string_value(v));
        return 0;
    case K_INT:
        if (!json_is_integer(v) || json_integer_value(v) < k->min ||
            json_integer_value(v) > k->max) {
            problem(p, where, label, "expected an integer from %lld to %lld", (long long)k->min,
                    (long long)k->max);
            return -1;
        }
        *FIELD(c, k, int64_t) = json_integer_value(v);
        return 0;
    case K_BOOL:
        if (!json_is_boolean(v)) {
            problem(p, where, label, "expected true or false");
            return -1;
        }
        *FIELD(c, k, int) = json_is_true(v);
        return 0;
    case K_DUR: {
        int64_t ms = -1;
        if (json_is_integer(v))
            ms = json_integer_value(v);
        else if (json_is_string(v) && wfo_duration_parse(json_string_value(v), &ms) < 0)
            ms = -1;
        if (ms < k->min || ms > k->max) {
            char lo[32], hi[32];
            wfo_duration_format(k->min, lo, sizeof(lo));
            wfo_duration_format(k->max, hi, sizeof(hi));
            problem(p, where, label, "expected a duration from %s to %s (\"30s\", \"5m\")", lo, hi);
            return -1;
        }
        *FIELD(c, k, int64_t) = ms;
        return 0;
    }
    case K_TOKENS:
        return set_tokens(c, v, where, p);
    case K_RETRY:
        return set_retry(c, v, where, label, p);
    case K_SECRETS:
        return set_secrets(c, v, where, p);
    }
    return -1;
}

/* Is the text only blanks and comments (an empty configuration)? */
static int yaml_blank(const char *s, size_t len)
{
    int line_start = 1, comment = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (ch == '\n') {
            line_start = 1;
            comment = 0;
        } else if (comment || ch == ' ' || ch == '\t' || ch == '\r') {
            continue;
        } else if (ch == '#' && line_start) {
            comment = 1;
        } else {
            return 0;
        }
    }
    return 1;
}

int config_load_file(struct server_config *c, const char *path, struct wfo_buf *problems)
{
    struct wfo_buf text;
    struct wfo_error err = WFO_ERROR_INIT;
    json_t *doc = NULL;
    int rc = -1;
    size_t before = problems->len;

    wfo_buf_init(&text, 16u << 20);
    if (wfo_read_file(path, &text, &err) < 0) {
        problem(problems, path, NULL, "%s", err.message);
        goto out;
    }
    if (yaml_blank(text.buf, text.len)) {
        rc = 0;
        goto out;
    }
    if (wfo_yaml_parse(text.buf, text.len, &doc, &err) < 0) {
        problem(problems, path, NULL, "%s", err.message);
        goto out;
    }
    if (!json_is_object(doc)) {
        problem(problems, path, NULL, "expected a mapping of settings");
        goto out;
    }
    const char *name;
    json_t *v;
    json_object_foreach(doc, name, v)
    {
        const struct key *k = key_find(name);
        if (k) {
            set_json(c, k, v, path, k->path, problems);
            continue;
        }
        if (!is_section(name)) {
            problem(problems, path, name, "unknown key");
            continue;
        }
        if (!json_is_object(v)) {
            problem(problems, path, name, "expected a mapping");
            continue;
        }
        const char *sub;
        json_t *sv;
        json_object_foreach(v, sub, sv)
        {
            char full[256];
            snprintf(full, sizeof(full), "%s.%s", name, sub);
            k = key_find(full);
            if (!k)
                problem(problems, path, full, "unknown key");
            else
                set_json(c, k, sv, path, k->path, problems);
        }
    }
    rc = problems->len == before ? 0 : -1;
out:
    json_decref(doc);
    wfo_buf_release(&text);
    return rc;
}

static int parse_bool(const char *s, int *out)
{
    if (!strcmp(s, "true") || !strcmp(s, "1") || !strcmp(s, "yes") || !strcmp(s, "on"))
        *out = 1;
    else if (!strcmp(s, "false") || !strcmp(s, "0") || !strcmp(s, "no") || !strcmp(s, "off"))
        *out = 0;
    else
        return -1;
    return 0;
}

int config_load_env(struct server_config *c, char *const *env, struct wfo_buf *problems)
{
    size_t before = problems->len;
    for (size_t i = 0; i < WFO_ARRAY_SIZE(keys); i++) {
        const struct key *k = &keys[i];
        if (!k->env)
            continue;
        const char *val = NULL;
        size_t n = strlen(k->env);
        for (char *const *e = env; e && *e; e++)
            if (strncmp(*e, k->env, n) == 0 && (*e)[n] == '=')
                val = *e + n + 1;
        if (!val)
            continue;
        json_t *v = NULL;
        int64_t num;
        int b;
        if (k->kind == K_INT && wfo_parse_int64(val, &num) == 0)
            v = json_integer(num);
        else if (k->kind == K_BOOL && parse_bool(val, &b) == 0)
            v = json_boolean(b);
        else if (k->kind == K_DUR && wfo_parse_int64(val, &num) == 0)
            v = json_integer(num);
        else if (k->kind == K_STR || k->kind == K_DUR)
            v = json_string_nocheck(val);
        if (!v) {
            problem(problems, k->env, NULL, "'%s' is not %s", val,
                    k->kind == K_BOOL ? "true or false" : "an integer");
            continue;
        }
        set_json(c, k, v, k->env, NULL, problems);
        json_decref(v);
    }
    config_secrets_env(c, env, problems);
    return problems->len == before ? 0 : -1;
}

/* WFO_ names wfo reads besides the settings: the client's, a worker
 * command's envelope, the store fault injection of tests, and the tests'
 * own (the binary under test, its store). */
static const char *const env_others[] = {"WFO_SERVER",
                                         "WFO_TOKEN",
                                         "WFO_TASK_ID",
                                         "WFO_EXECUTION_ID",
                                         "WFO_STEP",
                                         "WFO_ATTEMPT",
                                         "WFO_IDEMPOTENCY_KEY",
                                         "WFO_QUEUE",
                                         "WFO_STORE_FAULTS",
                                         "WFO_STORE_FAULTS_SEED",
                                         "WFO_BIN",
                                         "WFO_TEST_DB",
                                         NULL};

void config_env_unknown(char *const *env, struct wfo_buf *out)
{
    for (char *const *e = env; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        if (strncmp(*e, "WFO_", 4) != 0 || !eq || strncmp(*e, "WFO_SECRET_", 11) == 0)
            continue;
        size_t n = (size_t)(eq - *e);
        int known = 0;
        for (size_t i = 0; i < WFO_ARRAY_SIZE(keys) && !known; i++)
            known = keys[i].env && strlen(keys[i].env) == n && strncmp(keys[i].env, *e, n) == 0;
        for (size_t i = 0; env_others[i] && !known; i++)
            known = strlen(env_others[i]) == n && strncmp(env_others[i], *e, n) == 0;
        if (!known)
            wfo_buf_addf(out, "%.*s: not a setting of wfo server (ignored)\n", (int)n, *e);
    }
}

static json_t *section(json_t *root, const char *path, const char **leaf)
{
    const char *dot = strchr(path, '.');
    if (!dot) {
        *leaf = path;
        return root;
    }
    char name[64];
    snprintf(name, sizeof(name), "%.*s", (int)(dot - path), path);
    json_t *s = json_object_get(root, name);
    if (!s) {
        s = json_object();
        json_object_set_new(root, name, s);
    }
    *leaf = dot + 1;
    return s;
}

json_t *config_json(const struct server_config *c)
{
    json_t *root = json_object();
    for (size_t i = 0; i < WFO_ARRAY_SIZE(keys); i++) {
        const struct key *k = &keys[i];
        const char *leaf;
        json_t *s = section(root, k->path, &leaf);
        json_t *v = NULL;
        char d[32];
        switch (k->kind) {
        case K_STR:
            v = json_string_nocheck(*FIELD(c, k, char *const));
            break;
        case K_INT:
            v = json_integer(*FIELD(c, k, const int64_t));
            break;
        case K_BOOL:
            v = json_boolean(*FIELD(c, k, const int));
            break;
        case K_DUR:
            if (*FIELD(c, k, const int64_t) == 0) {
                v = json_integer(0);
            } else {
                wfo_duration_format(*FIELD(c, k, const int64_t), d, sizeof(d));
                v = json_string(d);
            }
            break;
        case K_TOKENS:
            v = json_array();
            for (int t = 0; t < c->n_tokens; t++) {
                json_t *o = json_pack("{s:s, s:s, s:s}", "token_sha256", c->tokens[t].sha256,
                                      "namespace", c->tokens[t].ns, "role", c->tokens[t].role);
                if (c->tokens[t].name)
                    json_object_set_new(o, "name", json_string(c->tokens[t].name));
                json_array_append_new(v, o);
            }
            break;
        case K_SECRETS: {
            /* names only: a value is never printed */
            const char *name;
            json_t *x;
            v = json_object();
            json_object_foreach(c->secrets, name, x)
            {
                json_object_set_new(v, name, json_string(WFO_REDACTED));
            }
            break;
        }
        case K_RETRY:
            v = c->retry ? json_deep_copy(c->retry)
                         : json_pack("{s:i, s:s, s:f, s:s, s:f, s:[]}", "max_attempts", 3,
                                     "initial_interval", "1s", "backoff", 2.0, "max_interval",
                                     "60s", "jitter", 0.1, "non_retryable");
            break;
        }
        json_object_set_new(s, leaf, v);
    }
    return root;
}
