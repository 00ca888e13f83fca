/*
 * test_config.c - unit tests of src/cli/config.c: the server's settings
 * from a YAML file, WFO_* variables and their problems (SPEC 6).
 */
#include "common/compat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/config.h"
#include "../tap.h"

/* Writes text to a new file under /tmp; returns its path (static). */
static const char *yaml_file(const char *text)
{
    static char path[64];
    snprintf(path, sizeof(path), "/tmp/wfo-test-config-%d.yaml", (int)getpid());
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
    return path;
}

TEST(defaults)
{
    struct server_config c;
    config_init(&c);
    ok(c.listen && !strcmp(c.listen, "127.0.0.1:7233"), "listen: %s", c.listen);
    ok(c.db && !strncmp(c.db, "sqlite:", 7), "db: %s", c.db);
    is_int(c.exec_enabled, 0, "exec steps are off");
    ok(c.http_threads >= 2 && c.http_threads <= 16, "a pool of one thread per CPU: %ld",
       (long)c.http_threads);
    ok(c.n_tokens == 0 && c.secrets == NULL, "no tokens, no secrets");
    config_release(&c);
}

TEST(file_sets_each_kind)
{
    struct server_config c;
    struct wfo_buf p = WFO_BUF_INIT;
    config_init(&c);
    const char *path = yaml_file("listen: 0.0.0.0:9000\n"
                                 "store: {pool_size: 4}\n"
                                 "exec: {enabled: true}\n"
                                 "workers: {lease: 45s}\n"
                                 "log: {level: debug, format: json}\n"
                                 "retention: {finished: 7d}\n");
    is_int(config_load_file(&c, path, &p), 0, "loads: %s", p.buf ? p.buf : "");
    ok(!strcmp(c.listen, "0.0.0.0:9000"), "a string");
    is_int(c.pool_size, 4, "an integer");
    is_int(c.exec_enabled, 1, "a boolean");
    is_int(c.lease_ms, 45000, "a duration");
    is_int(c.retention_ms, 7 * 86400000LL, "a duration in days");
    ok(!strcmp(c.log_level, "debug") && !strcmp(c.log_format, "json"), "choices");
    unlink(path);
    wfo_buf_release(&p);
    config_release(&c);
}

TEST(file_problems_name_file_and_path)
{
    struct server_config c;
    struct wfo_buf p = WFO_BUF_INIT;
    config_init(&c);
    const char *path = yaml_file("listen: 1\n"
                                 "store: {pool_size: 999}\n"
                                 "log: {level: loud}\n"
                                 "nonsense: 1\n");
    is_int(config_load_file(&c, path, &p), -1, "refused");
    const char *text = p.buf ? p.buf : "";
    char want[128];
    snprintf(want, sizeof(want), "%s: store.pool_size: ", path);
    ok(strstr(text, want) != NULL, "out of range, FILE: PATH: MESSAGE: %s", text);
    snprintf(want, sizeof(want), "%s: log.level: ", path);
    ok(strstr(text, want) != NULL, "not one of the choices");
    ok(strstr(text, "nonsense") != NULL, "an unknown key is a problem");
    is_int(c.pool_size != 999, 1, "a refused value is not set");
    unlink(path);
    wfo_buf_release(&p);
    config_release(&c);
}

TEST(env_overrides_and_problems)
{
    struct server_config c;
    struct wfo_buf p = WFO_BUF_INIT;
    config_init(&c);
    char *env[] = {"WFO_LISTEN=127.0.0.1:1234",
                   "WFO_EXEC_ENABLED=true",
                   "WFO_LEASE=2m",
                   "WFO_POOL_SIZE=3",
                   "WFO_SECRET_API_KEY=s3cret",
                   "UNRELATED=1",
                   NULL};
    is_int(config_load_env(&c, env, &p), 0, "applies: %s", p.buf ? p.buf : "");
    ok(!strcmp(c.listen, "127.0.0.1:1234"), "WFO_LISTEN");
    is_int(c.exec_enabled, 1, "WFO_EXEC_ENABLED");
    is_int(c.lease_ms, 120000, "WFO_LEASE as a duration");
    is_int(c.pool_size, 3, "WFO_POOL_SIZE");
    json_t *s = c.secrets ? json_object_get(c.secrets, "API_KEY") : NULL;
    ok(json_is_string(s) && !strcmp(json_string_value(s), "s3cret"), "WFO_SECRET_API_KEY");

    char *bad[] = {"WFO_POOL_SIZE=many", "WFO_EXEC_ENABLED=perhaps", NULL};
    wfo_buf_reset(&p);
    is_int(config_load_env(&c, bad, &p), -1, "refused");
    ok(p.buf && strstr(p.buf, "WFO_POOL_SIZE: ") && strstr(p.buf, "WFO_EXEC_ENABLED: "),
       "each variable named: %s", p.buf ? p.buf : "");
    is_int(c.pool_size, 3, "the earlier value stays");
    wfo_buf_release(&p);
    config_release(&c);
}

TEST(json_reads_back)
{
    struct server_config c, d;
    struct wfo_buf p = WFO_BUF_INIT;
    config_init(&c);
    char *env[] = {"WFO_LISTEN=127.0.0.1:4321", "WFO_RETENTION=3d", NULL};
    config_load_env(&c, env, &p);
    json_t *doc = config_json(&c);
    char *text = json_dumps(doc, 0);
    const char *path = yaml_file(text ? text : "");
    config_init(&d);
    is_int(config_load_file(&d, path, &p), 0, "the effective configuration loads: %s",
           p.buf ? p.buf : "");
    ok(!strcmp(d.listen, "127.0.0.1:4321") && d.retention_ms == 3 * 86400000LL,
       "with the same values");
    unlink(path);
    free(text);
    json_decref(doc);
    wfo_buf_release(&p);
    config_release(&c);
    config_release(&d);
}

int main(void)
{
    return tap_run();
}
