/*
 * test_util.c - unit tests of src/common/util.c (allocation, files, random
 * numbers, ids, integers), and of the two small modules without a
 * test file of their own: src/common/error.c and src/common/log.c.
 */
#include "common/compat.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/duration.h"
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "../tap.h"

/* ---- allocation ---- */

TEST(alloc)
{
    char *p = wfo_malloc(0), *q;

    ok(p != NULL, "malloc(0) is not NULL");
    free(p);
    p = wfo_calloc(4, 8);
    ok(p && p[0] == 0 && p[31] == 0, "calloc zeroes");
    p = wfo_realloc(p, 1000);
    p[999] = 'x';
    ok(p[999] == 'x', "realloc grows");
    free(p);
    p = wfo_strdup("hello");
    is_str(p, "hello", "strdup");
    q = wfo_strndup("hello", 3);
    is_str(q, "hel", "strndup cuts");
    free(q);
    q = wfo_strndup("hi", 10);
    is_str(q, "hi", "strndup of a shorter string");
    free(q);
    free(p);
}

/* ---- files ---- */

static char tmpdir[64];

static const char *tmp_path(const char *name)
{
    static char path[128];

    if (!tmpdir[0]) {
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/wfo-test-util-XXXXXX");
        if (!mkdtemp(tmpdir))
            tmpdir[0] = '\0';
    }
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    return path;
}

static void write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    if (fd >= 0) {
        if (write(fd, data, len) != (ssize_t)len)
            printf("# short write\n");
        close(fd);
    }
}

TEST(read_file)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct wfo_buf b = WFO_BUF_INIT;
    char big[200000];
    const char *path = tmp_path("small");

    write_file(path, "a\0b\n", 4);
    wfo_buf_adds(&b, ">");
    is_int(wfo_read_file(path, &b, &err), 0, "reads a file");
    is_int(b.len, 5, "appended with binary content");
    ok(memcmp(b.buf, ">a\0b\n", 6) == 0, "content");
    wfo_buf_release(&b);

    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)('a' + i % 26);
    path = tmp_path("big");
    write_file(path, big, sizeof(big));
    is_int(wfo_read_file(path, &b, &err), 0, "reads a big file");
    ok(b.len == sizeof(big) && memcmp(b.buf, big, sizeof(big)) == 0, "big content");
    wfo_buf_release(&b);

    path = tmp_path("empty");
    write_file(path, "", 0);
    is_int(wfo_read_file(path, &b, &err), 0, "reads an empty file");
    is_int(b.len, 0, "empty");
    wfo_buf_release(&b);
}

TEST(read_file_errors)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct wfo_buf b = WFO_BUF_INIT;
    char want[300];

    wfo_buf_adds(&b, "keep");
    is_int(wfo_read_file("/nonexistent/x.yaml", &b, &err), WFO_EIO, "missing file");
    is_str(err.message, "cannot read '/nonexistent/x.yaml': No such file or directory",
           "message names the file");
    is_str(b.buf, "keep", "buffer unchanged on error");
    tmp_path("x");
    is_int(wfo_read_file(tmpdir, &b, &err), WFO_EIO, "a directory");
    snprintf(want, sizeof(want), "cannot read '%s': Is a directory", tmpdir);
    is_str(err.message, want, "directory message");
    is_str(b.buf, "keep", "buffer unchanged");
    is_int(wfo_read_file("/nonexistent", &b, NULL), WFO_EIO, "err may be NULL");
    wfo_buf_release(&b);
}

TEST(read_file_bound)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct wfo_buf b;
    const char *path = tmp_path("ten");

    write_file(path, "0123456789", 10);
    wfo_buf_init(&b, 10);
    is_int(wfo_read_file(path, &b, &err), 0, "a file of exactly max bytes");
    is_str(b.buf, "0123456789", "content");
    wfo_buf_release(&b);

    wfo_buf_init(&b, 9);
    is_int(wfo_read_file(path, &b, &err), WFO_ETOOBIG, "one byte over max");
    ok(strstr(err.message, "ten") && strstr(err.message, "larger than 9 bytes"), "message: %s",
       err.message);
    is_int(b.len, 0, "nothing kept");
    wfo_buf_release(&b);

    wfo_buf_init(&b, 12);
    wfo_buf_adds(&b, "abc");
    is_int(wfo_read_file(path, &b, &err), WFO_ETOOBIG, "what is already there counts");
    is_str(b.buf, "abc", "buffer unchanged");
    wfo_buf_release(&b);
}

TEST(read_file_stdin)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct wfo_buf b = WFO_BUF_INIT;
    int fds[2], saved = dup(0);

    if (pipe(fds) < 0)
        return;
    if (write(fds[1], "from stdin", 10) != 10)
        printf("# short write\n");
    close(fds[1]);
    dup2(fds[0], 0);
    close(fds[0]);
    is_int(wfo_read_file("-", &b, &err), 0, "\"-\" reads stdin");
    is_str(b.buf, "from stdin", "stdin content");
    ok(fcntl(0, F_GETFD) != -1, "stdin is left open");
    dup2(saved, 0);
    close(saved);
    wfo_buf_release(&b);
}

/* ---- random numbers ---- */

static void *random_thread(void *arg)
{
    double *out = arg;

    for (int i = 0; i < 1000; i++)
        out[i] = wfo_random();
    return NULL;
}

TEST(random)
{
    int in_range = 1, buckets[10] = {0}, spread = 1;
    double a[1000], b[1000];
    pthread_t t1, t2;

    for (int i = 0; i < 100000; i++) {
        double r = wfo_random();

        if (!(r >= 0.0 && r < 1.0))
            in_range = 0;
        else
            buckets[(int)(r * 10)]++;
    }
    ok(in_range, "values in [0, 1)");
    for (int i = 0; i < 10; i++)
        if (buckets[i] < 9000 || buckets[i] > 11000)
            spread = 0;
    ok(spread, "roughly uniform");
    pthread_create(&t1, NULL, random_thread, a);
    pthread_create(&t2, NULL, random_thread, b);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    ok(memcmp(a, b, sizeof(a)) != 0, "threads get different sequences");
}

/* A forked child draws a sequence of its own, not the rest of its
 * parent's (the seed is forgotten at fork, not checked by pid). */
TEST(random_after_fork)
{
    double parent[4], child[4] = {0};
    int fds[2], status;

    (void)wfo_random(); /* this thread is seeded before the fork */
    if (pipe(fds) < 0)
        return;
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; i < 4; i++)
            child[i] = wfo_random();
        ssize_t w = write(fds[1], child, sizeof(child));
        _exit(w == (ssize_t)sizeof(child) ? 0 : 1);
    }
    close(fds[1]);
    for (int i = 0; i < 4; i++)
        parent[i] = wfo_random();
    ssize_t n = read(fds[0], child, sizeof(child));
    close(fds[0]);
    waitpid(pid, &status, 0);
    ok(n == (ssize_t)sizeof(child) && WIFEXITED(status) && WEXITSTATUS(status) == 0,
       "the child drew");
    ok(memcmp(parent, child, sizeof(child)) != 0, "the child's sequence is not its parent's");
}

/* ---- ids ---- */

static int id_well_formed(const char *id)
{
    if (strlen(id) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (id[i] != '-')
                return 0;
        } else if (!strchr("0123456789abcdef", id[i])) {
            return 0;
        }
    }
    /* version 7, variant 10xx */
    return id[14] == '7' && strchr("89ab", id[19]) != NULL;
}

#define ID_THREADS 4
#define ID_PER_THREAD 20000

static char thread_ids[ID_THREADS][ID_PER_THREAD][WFO_ID_SIZE];

static void *id_thread(void *arg)
{
    char(*ids)[WFO_ID_SIZE] = arg;

    for (int i = 0; i < ID_PER_THREAD; i++)
        wfo_id_new(ids[i]);
    return NULL;
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp(a, b);
}

TEST(ids)
{
    char id[WFO_ID_SIZE], prev[WFO_ID_SIZE];
    int increasing = 1, formed = 1, unique = 1;
    char(*flat)[WFO_ID_SIZE] = (char(*)[WFO_ID_SIZE])thread_ids;
    pthread_t t[ID_THREADS];
    int64_t now = wfo_now_ms(), stamp;
    char hex[13];

    wfo_id_new(prev);
    ok(id_well_formed(prev), "UUIDv7 text: %s", prev);
    memcpy(hex, prev, 8);
    memcpy(hex + 8, prev + 9, 4);
    hex[12] = '\0';
    stamp = (int64_t)strtoll(hex, NULL, 16);
    ok(stamp >= now - 5 && stamp <= now + 1000, "48-bit millisecond timestamp");
    for (int i = 0; i < 100000; i++) {
        wfo_id_new(id);
        if (strcmp(prev, id) >= 0)
            increasing = 0;
        if (!id_well_formed(id))
            formed = 0;
        memcpy(prev, id, sizeof(id));
    }
    ok(increasing, "strictly increasing, many per millisecond");
    ok(formed, "all well formed");

    for (int i = 0; i < ID_THREADS; i++)
        pthread_create(&t[i], NULL, id_thread, thread_ids[i]);
    for (int i = 0; i < ID_THREADS; i++)
        pthread_join(t[i], NULL);
    increasing = 1;
    for (int i = 0; i < ID_THREADS; i++)
        for (int j = 1; j < ID_PER_THREAD; j++)
            if (strcmp(thread_ids[i][j - 1], thread_ids[i][j]) >= 0)
                increasing = 0;
    ok(increasing, "increasing within each thread");
    qsort(flat, ID_THREADS * ID_PER_THREAD, WFO_ID_SIZE, cmp_id);
    for (int i = 1; i < ID_THREADS * ID_PER_THREAD; i++)
        if (strcmp(flat[i - 1], flat[i]) == 0)
            unique = 0;
    ok(unique, "unique across threads");
}

/* ---- integers ---- */

static int64_t pint(const char *s)
{
    int64_t v = -4242;

    return wfo_parse_int64(s, &v) < 0 ? -4242 : v;
}

TEST(parse_int64)
{
    static const char *const bad[] = {"",
                                      "-",
                                      "+1",
                                      " 1",
                                      "1 ",
                                      "1x",
                                      "0x10",
                                      "1.0",
                                      "1e3",
                                      "--1",
                                      "9223372036854775808",
                                      "-9223372036854775809",
                                      "99999999999999999999999"};
    int all = 1;

    is_int(pint("0"), 0, "0");
    is_int(pint("42"), 42, "42");
    is_int(pint("-17"), -17, "-17");
    is_int(pint("007"), 7, "leading zeros");
    is_int(pint("9223372036854775807"), INT64_MAX, "max");
    is_int(pint("-9223372036854775808"), INT64_MIN, "min");
    for (size_t i = 0; i < WFO_ARRAY_SIZE(bad); i++) {
        int64_t v = 5;

        if (wfo_parse_int64(bad[i], &v) != WFO_EINVAL || v != 5) {
            all = 0;
            printf("# accepted \"%s\"\n", bad[i]);
        }
    }
    ok(all, "malformed integers refused, *out untouched");
    is_int(wfo_parse_int64(NULL, &(int64_t){0}), WFO_EINVAL, "NULL refused");
}

/* ---- error.c ---- */

TEST(int_text)
{
    char out[WFO_INT_TEXT_SIZE];
    const long long v[] = {0, 7, -1, 10, 1234567890123LL, LLONG_MAX, LLONG_MIN};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        char want[32];
        snprintf(want, sizeof(want), "%lld", v[i]);
        size_t n = wfo_int_text(v[i], out);
        is_str(out, want, "%lld", v[i]);
        is_int((long long)n, (long long)strlen(want), "%lld: its length", v[i]);
    }
}

TEST(error_table)
{
    is_str(wfo_strerror(WFO_ENOTFOUND), "not found", "strerror");
    is_str(wfo_strerror(0), "success", "strerror(0)");
    is_str(wfo_strerror(-1), "unknown error", "strerror of an unknown code");
    is_str(wfo_strerror(WFO_E__LAST), "unknown error", "strerror past the end");
    is_str(wfo_error_type(WFO_ENOTFOUND), "NotFound", "type");
    is_str(wfo_error_type(WFO_ETOOBIG), "PayloadTooLarge", "type of TOOBIG");
    is_str(wfo_error_type(1), "InternalError", "type of unknown");
    is_int(wfo_error_http_status(WFO_ENOTFOUND), 404, "http 404");
    is_int(wfo_error_http_status(WFO_ETOOBIG), 413, "http 413");
    is_int(wfo_error_http_status(WFO_EINVAL), 400, "http 400 for the first code");
    is_int(wfo_error_http_status(WFO_EINTERNAL), 500, "http for the last code");
    is_int(wfo_error_http_status(12345), 500, "http of unknown");
}

TEST(error_set_and_prefix)
{
    struct wfo_error err = WFO_ERROR_INIT;
    char big[2000];

    is_int(wfo_error_set(&err, WFO_EINVAL, "bad %s", "thing"), WFO_EINVAL, "returns the code");
    is_int(err.code, WFO_EINVAL, "code set");
    is_str(err.message, "bad thing", "message");
    wfo_error_prefix(&err, "steps[%d]", 2);
    is_str(err.message, "steps[2]: bad thing", "prefixed");
    is_int(err.code, WFO_EINVAL, "prefix keeps the code");
    is_int(wfo_error_set(NULL, WFO_EIO, "x"), WFO_EIO, "NULL err is fine");
    wfo_error_prefix(NULL, "x");

    wfo_error_set(&err, WFO_EINVAL, "inner");
    wfo_error_set(&err, WFO_EPARSE, "outer: %s", err.message);
    is_str(err.message, "outer: inner", "message may be an argument");

    memset(big, 'a', sizeof(big));
    big[sizeof(big) - 1] = '\0';
    wfo_error_set(&err, WFO_EINVAL, "%s", big);
    is_int(strlen(err.message), sizeof(err.message) - 1, "long message truncated");
    /* 'a' then two-byte characters: a cut never leaves half a character. */
    big[0] = 'a';
    for (int i = 1; i + 1 < (int)sizeof(big) - 1; i += 2)
        memcpy(big + i, "\xC3\xA9", 2);
    big[sizeof(big) - 1] = '\0';
    wfo_error_set(&err, WFO_EINVAL, "%s", big);
    ok(strlen(err.message) % 2 == 1 && (unsigned char)err.message[strlen(err.message) - 1] == 0xA9,
       "cut at a character boundary (len %zu)", strlen(err.message));
    wfo_error_set(&err, WFO_EINVAL, "%s", big + 1);
    wfo_error_prefix(&err, "p");
    ok(strncmp(err.message, "p: \xC3\xA9", 5) == 0 &&
           strlen(err.message) <= sizeof(err.message) - 1,
       "prefix of a full message keeps the prefix");
    ok((unsigned char)err.message[strlen(err.message) - 1] == 0xA9, "and cuts whole characters");
}

TEST(assert_aborts_with_message)
{
    int fds[2], status = 0;
    char buf[256] = {0};
    pid_t pid;
    ssize_t n;

    if (pipe(fds) < 0)
        return;
    pid = fork();
    if (pid == 0) {
        int one = 1;

        dup2(fds[1], 2);
        signal(SIGABRT, SIG_DFL);
        wfo_assert(one == 2);
        _exit(0);
    }
    close(fds[1]);
    n = read(fds[0], buf, sizeof(buf) - 1);
    close(fds[0]);
    waitpid(pid, &status, 0);
    ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "aborts");
    ok(n > 0 && strncmp(buf, "wfo: assertion failed: one == 2 (", 33) == 0, "message");
    ok(strstr(buf, "test_util.c:") != NULL, "names the file");
}

/* ---- log.c ---- */

/* Runs fn in a child with stderr on a pipe; returns what it wrote. */
static const char *capture_stderr(void (*fn)(void))
{
    static char out[8192];
    int fds[2], status;
    size_t len = 0;
    ssize_t n;
    pid_t pid;

    out[0] = '\0';
    if (pipe(fds) < 0)
        return out;
    pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        fn();
        _exit(0);
    }
    close(fds[1]);
    while (len < sizeof(out) - 1 && (n = read(fds[0], out + len, sizeof(out) - 1 - len)) > 0)
        len += (size_t)n;
    out[len] = '\0';
    close(fds[0]);
    waitpid(pid, &status, 0);
    return out;
}

static void log_text(void)
{
    wfo_debug(NULL, NULL, "hidden %d", 1);
    wfo_info("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "charge", "step %s", "started");
    wfo_warn(NULL, NULL, "two\nlines");
    wfo_log_setup(WFO_LOG_ERROR, WFO_LOG_TEXT);
    wfo_warn(NULL, NULL, "filtered");
    wfo_err("e1", NULL, "bad");
}

TEST(log_text_format)
{
    const char *out = capture_stderr(log_text);
    const char *l2 = strchr(out, '\n');
    int64_t t;
    char stamp[25];

    ok(strlen(out) > 25, "something was written");
    memcpy(stamp, out, 24);
    stamp[24] = '\0';
    ok(wfo_time_parse(stamp, &t) == 0 && stamp[23] == 'Z', "starts with an RFC 3339 time: %s",
       stamp);
    ok(strncmp(out + 24,
               " INFO exec=0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b step=charge step started\n",
               72) == 0,
       "level, exec, step, message");
    ok(l2 && strstr(l2, " WARN two\\nlines\n") != NULL, "newlines escaped: one call, one line");
    ok(!strstr(out, "hidden") && !strstr(out, "filtered"), "level filter");
    ok(strstr(out, " ERROR exec=e1 bad\n") != NULL, "error without a step");
}

static void log_json(void)
{
    wfo_log_setup(WFO_LOG_DEBUG, WFO_LOG_JSON);
    wfo_debug("ex", "a/b[1]/c", "quote \" and \xff byte");
    wfo_info(NULL, NULL, "plain");
}

TEST(log_json_format)
{
    const char *out = capture_stderr(log_json);
    const char *nl = strchr(out, '\n');
    struct wfo_error err = WFO_ERROR_INIT;
    json_t *v = NULL, *w = NULL;

    ok(nl != NULL, "a line");
    if (!nl)
        return;
    is_int(wfo_json_parse(out, (size_t)(nl - out), &v, &err), 0, "line 1 is JSON: %s", err.message);
    is_str(wfo_json_str(v, "level"), "debug", "level");
    is_str(wfo_json_str(v, "msg"), "quote \" and \xEF\xBF\xBD byte", "msg, bad byte replaced");
    is_str(wfo_json_str(v, "execution_id"), "ex", "execution_id");
    is_str(wfo_json_str(v, "step"), "a/b[1]/c", "step");
    ok(wfo_json_str(v, "time") && strlen(wfo_json_str(v, "time")) == 24, "time");
    is_int(wfo_json_parse(nl + 1, strlen(nl + 1), &w, &err), 0, "line 2 is JSON");
    ok(json_object_get(w, "execution_id") == NULL && json_object_get(w, "step") == NULL,
       "no ids when NULL");
    json_decref(v);
    json_decref(w);
}

/* Held lines come out at the release, after what was written meanwhile,
 * in order; holds nest. */
static void log_held_lines(void)
{
    wfo_log_setup(WFO_LOG_INFO, WFO_LOG_TEXT);
    wfo_log_hold();
    wfo_info(NULL, NULL, "first");
    wfo_log_hold();
    wfo_info(NULL, NULL, "second");
    wfo_log_release();
    if (write(2, "MARK\n", 5) != 5)
        return;
    wfo_log_release();
    wfo_info(NULL, NULL, "third");
}

TEST(log_hold)
{
    const char *out = capture_stderr(log_held_lines);
    const char *mark = strstr(out, "MARK\n"), *first = strstr(out, "first"),
               *second = strstr(out, "second"), *third = strstr(out, "third");
    ok(mark && first && second && third, "every line is written: %s", out);
    ok(mark && first && mark < first, "held lines wait for the outer release");
    ok(first && second && third && first < second && second < third, "in order");
    ok(strncmp(out, "MARK\n", 5) == 0, "nothing before: %.40s", out);
}

TEST(log_levels)
{
    is_int(wfo_log_level_parse("debug"), WFO_LOG_DEBUG, "debug");
    is_int(wfo_log_level_parse("info"), WFO_LOG_INFO, "info");
    is_int(wfo_log_level_parse("warn"), WFO_LOG_WARN, "warn");
    is_int(wfo_log_level_parse("error"), WFO_LOG_ERROR, "error");
    is_int(wfo_log_level_parse("off"), WFO_LOG_OFF, "off");
    is_int(wfo_log_level_parse("INFO"), -1, "case matters");
    is_int(wfo_log_level_parse("verbose"), -1, "unknown");
    is_int(wfo_log_level_parse(NULL), -1, "NULL");
    ok(wfo_log_enabled(WFO_LOG_INFO) && !wfo_log_enabled(WFO_LOG_DEBUG), "default level is info");
    wfo_log_setup(WFO_LOG_OFF, WFO_LOG_TEXT);
    ok(!wfo_log_enabled(WFO_LOG_ERROR), "off disables everything");
    wfo_log_setup(WFO_LOG_INFO, WFO_LOG_TEXT);
}

/* SPEC 2.5: subscription and stream types match exactly or by "prefix.*". */
TEST(type_matches)
{
    ok(wfo_type_matches("a.b", "a.b"), "exact");
    ok(!wfo_type_matches("a.b", "a.bc"), "exact only");
    ok(wfo_type_matches("a.*", "a.b"), "prefix");
    ok(wfo_type_matches("a.*", "a.b.c"), "prefix, deeper");
    ok(!wfo_type_matches("a.*", "a"), "the prefix alone is not under it");
    ok(!wfo_type_matches("a.*", "ab.c"), "a prefix ends at its dot");
    ok(wfo_type_matches("*", "anything"), "star");
    ok(!wfo_type_matches("a*", "ab"), "a star without a dot is literal");
    ok(wfo_type_matches("a*", "a*"), "and matches itself");
    ok(!wfo_type_matches(".*", "x"), "\".*\" needs the dot");
    ok(wfo_type_matches(".*", ".x"), "\".*\": types that start with a dot");
}

int main(void)
{
    int rc = tap_run();

    if (tmpdir[0]) {
        static const char *const names[] = {"small", "big", "empty", "ten"};

        for (size_t i = 0; i < WFO_ARRAY_SIZE(names); i++)
            unlink(tmp_path(names[i]));
        rmdir(tmpdir);
    }
    return rc;
}
