/*
 * test_httpc.c - tests of common/httpc.c, the HTTP client, against a small
 * HTTP/1.1 server written here (a thread on 127.0.0.1, one thread per
 * connection, scripted answers by path): methods, headers both ways,
 * bodies, statuses, the body bound, timeouts, redirects, cancellation,
 * deny_private, refused connections, bad input, HMAC vectors.
 * docs/interfaces/internal.md describes the client.
 */
#include "common/compat.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/httpc.h"
#include "../tap.h"

#define BIG_LEN 100000

/* --- the server -------------------------------------------------------------- */

static int srv_port;
static pthread_mutex_t srv_mu = PTHREAD_MUTEX_INITIALIZER;
static char srv_last[65536]; /* the last request, head and body */
static int srv_conns;        /* connections accepted */

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void send_str(int fd, const char *s)
{
    send_all(fd, s, strlen(s));
}

static void respond_n(int fd, int status, const char *extra_headers, const char *body, size_t len)
{
    char head[1024];
    snprintf(head, sizeof(head),
             "HTTP/1.1 %d X\r\nContent-Length: %zu\r\nConnection: close\r\n%s\r\n", status, len,
             extra_headers);
    send_str(fd, head);
    send_all(fd, body, len);
}

static void respond(int fd, int status, const char *extra_headers, const char *body)
{
    respond_n(fd, status, extra_headers, body, strlen(body));
}

/* Reads one request: returns its length in buf (head and body), or -1. */
static int read_request(int fd, char *buf, size_t size, size_t *head_len)
{
    size_t len = 0;
    char *end = NULL;

    while (!end) {
        if (len + 1 >= size)
            return -1;
        ssize_t r = recv(fd, buf + len, size - 1 - len, 0);
        if (r <= 0)
            return -1;
        len += (size_t)r;
        buf[len] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    *head_len = (size_t)(end + 4 - buf);
    size_t want = 0;
    *end = '\0'; /* strcasestr stays in the head */
    const char *cl = strcasestr(buf, "\r\nContent-Length:");
    if (cl)
        want = strtoul(cl + 17, NULL, 10);
    *end = '\r';
    while (len < *head_len + want) {
        if (len + 1 >= size)
            return -1;
        ssize_t r = recv(fd, buf + len, size - 1 - len, 0);
        if (r <= 0)
            return -1;
        len += (size_t)r;
        buf[len] = '\0';
    }
    return (int)len;
}

static void *conn_main(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char *req = calloc(1, 65536 + 1);
    char path[256] = "", method[32] = "";
    size_t head_len = 0;

    int n = read_request(fd, req, 65536, &head_len);
    if (n < 0)
        goto out;
    pthread_mutex_lock(&srv_mu);
    memcpy(srv_last, req, (size_t)n + 1);
    pthread_mutex_unlock(&srv_mu);
    if (sscanf(req, "%31s %255s", method, path) != 2)
        goto out;

    if (strcmp(path, "/hello") == 0) {
        respond(fd, 200,
                "Content-Type: Text/Plain; Charset=UTF-8\r\nX-Multi: a\r\nX-Multi:  b \r\n",
                "hello");
    } else if (strcmp(path, "/echo") == 0) {
        char hdr[128];
        snprintf(hdr, sizeof(hdr), "X-Got-Method: %s\r\nContent-Type: application/json\r\n",
                 method);
        respond_n(fd, 200, hdr, req + head_len, (size_t)n - head_len);
    } else if (strncmp(path, "/status/", 8) == 0) {
        int st = (int)strtol(path + 8, NULL, 10);
        char body[64];
        snprintf(body, sizeof(body), st == 204 ? "" : "status %d", st);
        respond(fd, st, "", body);
    } else if (strcmp(path, "/big") == 0) {
        char *big = malloc(BIG_LEN + 1);
        memset(big, 'x', BIG_LEN);
        big[BIG_LEN] = '\0';
        respond(fd, 200, "", big);
        free(big);
    } else if (strcmp(path, "/slow") == 0) {
        sleep_ms(1500);
        respond(fd, 200, "", "late");
    } else if (strncmp(path, "/redirect/", 10) == 0) {
        int left = (int)strtol(path + 10, NULL, 10);
        char hdr[128];
        if (left <= 0) {
            respond(fd, 200, "X-Final: yes\r\n", "done");
        } else {
            snprintf(hdr, sizeof(hdr), "Location: /redirect/%d\r\nX-From-Redirect: %d\r\n",
                     left - 1, left);
            respond(fd, 302, hdr, "");
        }
    } else if (strcmp(path, "/loop") == 0) {
        respond(fd, 302, "Location: /loop\r\n", "");
    } else if (strcmp(path, "/to-ftp") == 0) {
        respond(fd, 302, "Location: ftp://127.0.0.1/file\r\n", "");
    } else if (strcmp(path, "/continue") == 0) {
        send_str(fd, "HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\n");
        respond(fd, 201, "X-Final: yes\r\n", "made");
    } else if (strcmp(path, "/chunked") == 0) {
        send_str(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                     "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    } else if (strcmp(path, "/folded") == 0) {
        send_str(fd, "HTTP/1.1 200 OK\r\nX-Fold: one\r\n  two\r\nContent-Length: 0\r\n"
                     "Connection: close\r\n\r\n");
    } else if (strcmp(path, "/hugeheaders") == 0) {
        send_str(fd, "HTTP/1.1 200 OK\r\n");
        char line[1100];
        memset(line, 'a', sizeof(line));
        memcpy(line, "X-Pad: ", 7);
        memcpy(line + sizeof(line) - 2, "\r\n", 2);
        for (int i = 0; i < 400; i++)
            send_all(fd, line, sizeof(line));
        send_str(fd, "Content-Length: 0\r\n\r\n");
    } else {
        respond(fd, 404, "", "no such path");
    }
out:
    free(req);
    close(fd);
    return NULL;
}

static void *accept_main(void *arg)
{
    int lfd = (int)(intptr_t)arg;

    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0)
            continue;
        pthread_mutex_lock(&srv_mu);
        srv_conns++;
        pthread_mutex_unlock(&srv_mu);
        pthread_t t;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &at, conn_main, (void *)(intptr_t)fd) != 0)
            close(fd);
        pthread_attr_destroy(&at);
    }
    return NULL;
}

static void server_start(void)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    int lfd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 64) < 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &alen) < 0) {
        perror("server");
        exit(1);
    }
    srv_port = ntohs(a.sin_port);
    pthread_t t;
    pthread_create(&t, NULL, accept_main, (void *)(intptr_t)lfd);
    pthread_detach(t);
}

static int conns(void)
{
    pthread_mutex_lock(&srv_mu);
    int n = srv_conns;
    pthread_mutex_unlock(&srv_mu);
    return n;
}

/* A copy of the last request the server read; caller frees. */
static char *last_request(void)
{
    pthread_mutex_lock(&srv_mu);
    char *s = strdup(srv_last);
    pthread_mutex_unlock(&srv_mu);
    return s;
}

static const char *url(const char *path)
{
    static char u[4][256];
    static int i;
    static pthread_once_t once = PTHREAD_ONCE_INIT;

    pthread_once(&once, server_start);
    i = (i + 1) % 4;
    snprintf(u[i], sizeof(u[i]), "http://127.0.0.1:%d%s", srv_port, path);
    return u[i];
}

static int get(const char *u, struct httpc_response *res, struct wfo_error *err)
{
    struct httpc_request req = {.url = u, .timeout_ms = 5000};
    return httpc_do(&req, res, err);
}

/* --- tests ------------------------------------------------------------------- */

TEST(get_status_headers_body)
{
    struct httpc_response res;
    struct wfo_error err = WFO_ERROR_INIT;

    int rc = get(url("/hello"), &res, &err);
    is_int(rc, 0, "GET /hello succeeds (%s)", err.message);
    is_int(res.status, 200, "status 200");
    is_str(res.body.buf, "hello", "body");
    is_int(res.body.len, 5, "body length");
    is_str(res.content_type, "text/plain; charset=utf-8", "content type lower-cased");
    is_str(httpc_header_get(&res, "X-MULTI"), "a", "header lookup ignores case");
    is_str(httpc_header_get(&res, "content-length"), "5", "content-length header");
    ok(httpc_header_get(&res, "x-none") == NULL, "a missing header is NULL");
    int n_multi = 0;
    for (int i = 0; i < res.n_headers; i++) {
        for (const char *p = res.headers[i].name; *p; p++)
            ok(!(*p >= 'A' && *p <= 'Z'), "name %s is lower case", res.headers[i].name);
        if (strcmp(res.headers[i].name, "x-multi") == 0)
            is_str(res.headers[i].value, n_multi++ ? "b" : "a",
                   "repeated header in order, trimmed");
    }
    is_int(n_multi, 2, "both x-multi headers kept");
    char *r = last_request();
    ok(strncmp(r, "GET /hello HTTP/1.1\r\n", 21) == 0, "request line");
    ok(strstr(r, "User-Agent: wfo") != NULL, "user agent sent");
    free(r);
    httpc_response_release(&res);
    httpc_response_release(&res); /* twice is harmless */
}

TEST(post_body_and_headers)
{
    struct httpc_response res;
    struct wfo_error err = WFO_ERROR_INIT;
    struct httpc_header hs[] = {
        {"X-Token", "abc 123"},
        {"X-Empty", ""},
    };
    const char body[] = "{\"a\": 1}";
    struct httpc_request req = {
        .method = "POST",
        .url = url("/echo"),
        .headers = hs,
        .n_headers = 2,
        .body = body,
        .body_len = strlen(body),
        .timeout_ms = 5000,
    };

    is_int(httpc_do(&req, &res, &err), 0, "POST succeeds (%s)", err.message);
    is_int(res.status, 200, "status");
    is_str(res.body.buf, body, "the server got the body");
    is_str(httpc_header_get(&res, "x-got-method"), "POST", "method POST");
    is_str(res.content_type, "application/json", "content type");
    char *r = last_request();
    ok(strstr(r, "\r\nX-Token: abc 123\r\n") != NULL, "custom header sent");
    ok(strstr(r, "\r\nX-Empty:") != NULL, "empty header sent");
    ok(strcasestr(r, "content-type") == NULL, "no content type unless given");
    ok(strcasestr(r, "expect:") == NULL, "no Expect header");
    ok(strstr(r, "Content-Length: 8\r\n") != NULL, "content length");
    free(r);
    httpc_response_release(&res);

    /* with a content type of its own, that one is sent */
    struct httpc_header ct[] = {{"Content-Type", "text/csv"}};
    req.headers = ct;
    req.n_headers = 1;
    is_int(httpc_do(&req, &res, &err), 0, "POST with a content type");
    r = last_request();
    ok(strstr(r, "\r\nContent-Type: text/csv\r\n") != NULL, "given content type sent");
    free(r);
    httpc_response_release(&res);
}

TEST(binary_body_and_large_body)
{
    struct httpc_response res;
    struct wfo_error err = WFO_ERROR_INIT;
    static char big[20000];
    memset(big, 'b', sizeof(big));
    big[10] = '\0'; /* a NUL inside: body_len counts, not strlen */
    struct httpc_request req = {
        .method = "PUT",
        .url = url("/echo"),
        .body = big,
        .body_len = sizeof(big),
        .timeout_ms = 5000,
    };

    is_int(httpc_do(&req, &res, &err), 0, "PUT of 20000 bytes (%s)", err.message);
    is_int(res.body.len, sizeof(big), "all of it echoed");
    ok(res.body.len == sizeof(big) && memcmp(res.body.buf, big, sizeof(big)) == 0, "same bytes");
    is_str(httpc_header_get(&res, "x-got-method"), "PUT", "method PUT");
    httpc_response_release(&res);
}

TEST(methods_without_body)
{
    struct httpc_response res;
    struct wfo_error err = WFO_ERROR_INIT;
    struct httpc_request req = {.method = "PUT", .url = url("/echo"), .timeout_ms = 5000};

    is_int(httpc_do(&req, &res, &err), 0, "PUT without a body");
    char *r = last_request();
    ok(strncmp(r, "PUT /echo ", 10) == 0, "PUT line");
    ok(strstr(r, "Content-Length: 0\r\n") != NULL, "Content-Length: 0");
    free(r);
    httpc_response_release(&res);

    req.method = "DELETE";
    is_int(httpc_do(&req, &res, &err), 0, "DELETE");
    is_str(httpc_header_get(&res, "x-got-method"), "DELETE", "DELETE sent");
    httpc_response_release(&res);

    req.method = "HEAD";
    req.url = url("/hello");
    is_int(httpc_do(&req, &res, &err), 0, "HEAD (%s)", err.message);
    is_int(res.status, 200, "HEAD status");
    is_int(res.body.len, 0, "HEAD has no body");
    r = last_request();
    ok(strncmp(r, "HEAD /hello ", 12) == 0, "HEAD line");
    free(r);
    httpc_response_release(&res);
}

TEST(statuses_are_responses)
{
    static const int statuses[] = {201, 204, 301, 400, 404, 429, 500, 503};
    struct httpc_response res;
    struct wfo_error err = WFO_ERROR_INIT;
    char path[32], want[32];

    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        snprintf(path, sizeof(path), "/status/%d", statuses[i]);
        is_int(get(url(path), &res, &err), 0, "%s is a response", path);
        is_int(res.status, statuses[i], "status %d", statuses[i]);
        snprintf(want, sizeof(want), statuses[i] == 204 ? "" : "status %d", statuses[i]);
        is_str(res.body.buf, want, "body of %d", statuses[i]);
        httpc_response_release(&res);
    }
    is_int(get(url("/nowhere"), &res, &err), 0, "404 path");
    is_int(res.status, 404, "404");
    httpc_response_release(&res);
}

TEST(chunked_folded_and_interim)
{
    struct httpc_response res;
    struct wfo_error err = WFO_ERROR_INIT;

    is_int(get(url("/chunked"), &res, &err), 0, "chunked");
    is_str(res.body.buf, "hello world", "chunks joined");
    httpc_response_release(&res);

    is_int(get(url("/folded"), &res, &err), 0, "folded header");
    is_str(httpc_header_get(&res, "x-fold"), "one two", "continuation line joined");
    httpc_response_release(&res);

    is_int(get(url("/continue"), &res, &err), 0, "100 then 201");
    is_int(res.status, 201, "final status");
    ok(httpc_header_get(&res, "x-interim") == NULL, "interim headers dropped");
    is_str(httpc_header_get(&res, "x-final"), "yes", "final headers kept");
    httpc_response_release(&res);

    int rc = get(url("/hugeheaders"), &res, &err);
    is_int(rc, WFO_EIO, "440 KB of headers refused");
    httpc_response_release(&res);
}

TEST(body_limit)
{
    struct httpc_response res;
    struct wfo_error err = WFO_ERROR_INIT;
    struct httpc_request req = {.url = url("/big"), .timeout_ms = 5000, .max_body = BIG_LEN};

    is_int(httpc_do(&req, &res, &err), 0, "a body of exactly max_body fits");
    is_int(res.body.len, BIG_LEN, "all of it");
    httpc_response_release(&res);

    req.max_body = BIG_LEN - 1;
    is_int(httpc_do(&req, &res, &err), WFO_ETOOBIG, "one byte over is refused");
    ok(strstr(err.message, "larger than 99999 bytes") != NULL, "message: %s", err.message);
    ok(res.body.len <= BIG_LEN - 1, "the buffer stayed under the bound");
    httpc_response_release(&res);

    req.max_body = 10;
    is_int(httpc_do(&req, &res, &err), WFO_ETOOBIG, "a tiny bound");
    httpc_response_release(&res);
}

TEST(timeout)
{
    struct httpc_response res;
    struct wfo_error err = WFO_ERROR_INIT;
    struct httpc_request req = {.url = url("/slow"), .timeout_ms = 300};

    int64_t t0 = now_ms();
    is_int(httpc_do(&req, &res, &err), WFO_ETIMEOUT, "a slow answer times out");
    int64_t took = now_ms() - t0;
    ok(took >= 250 && took < 1400, "after about 300 ms (%lld)", (long long)took);
    ok(strstr(err.message, "timed out") != NULL, "message: %s", err.message);
    httpc_response_release(&res);
}

struct canceller {
    atomic_int flag;
    int after_ms;
};

static void *cancel_main(void *arg)
{
    struct canceller *c = arg;
    sleep_ms(c->after_ms);
    atomic_store(&c->flag, 1);
    return NULL;
}

TEST(cancel)
{
    struct httpc_response res;
    struct wfo_error err = WFO_ERROR_INIT;
    struct canceller c = {.after_ms = 200};
    atomic_init(&c.flag, 0);
    struct httpc_request req = {.url = url("/slow"), .timeout_ms = 10000, .cancel = &c.flag};
    pthread_t t;

    pthread_create(&t, NULL, cancel_main, &c);
    int64_t t0 = now_ms();
    is_int(httpc_do(&req, &res, &err), WFO_ESHUTDOWN, "cancelled");
    int64_t took = now_ms() - t0;
    ok(took >= 150 && took < 1200, "within 100 ms or so of the request (%lld)", (long long)took);
    pthread_join(t, NULL);
    httpc_response_release(&res);

    /* already cancelled: nothing connects */
    int before = conns();
    is_int(httpc_do(&req, &res, &err), WFO_ESHUTDOWN, "cancelled before the start");
    is_int(conns(), before, "no connection made");
    httpc_response_release(&res);

    /* a cancel flag that stays 0 changes nothing */
    atomic_int zero;
    atomic_init(&zero, 0);
    struct httpc_request r2 = {.url = url("/hello"), .timeout_ms = 5000, .cancel = &zero};
    is_int(httpc_do(&r2, &res, &err), 0, "not cancelled");
    httpc_response_release(&res);
}

TEST(redirects)
{
    struct httpc_response res;
    struct wfo_error err = WFO_ERROR_INIT;
    struct httpc_request req = {.url = url("/redirect/3"), .timeout_ms = 5000, .max_redirects = 5};

    is_int(httpc_do(&req, &res, &err), 0, "3 redirects with a limit of 5 (%s)", err.message);
    is_int(res.status, 200, "final status");
    is_str(res.body.buf, "done", "final body");
    ok(httpc_header_get(&res, "x-from-redirect") == NULL, "only the final response's headers");
    is_str(httpc_header_get(&res, "x-final"), "yes", "final header");
    httpc_response_release(&res);

    req.max_redirects = 3;
    is_int(httpc_do(&req, &res, &err), 0, "exactly at the limit");
    httpc_response_release(&res);

    req.max_redirects = 2;
    is_int(httpc_do(&req, &res, &err), WFO_EINVAL, "over the limit");
    ok(strstr(err.message, "redirected more than 2 times") != NULL, "message: %s", err.message);
    httpc_response_release(&res);

    req.max_redirects = 0;
    is_int(httpc_do(&req, &res, &err), 0, "no following: the 302 is the response");
    is_int(res.status, 302, "302");
    is_str(httpc_header_get(&res, "location"), "/redirect/2", "location");
    httpc_response_release(&res);

    req.url = url("/loop");
    req.max_redirects = 5;
    is_int(httpc_do(&req, &res, &err), WFO_EINVAL, "a redirect loop ends");
    httpc_response_release(&res);

    req.url = url("/to-ftp");
    int rc = httpc_do(&req, &res, &err);
    is_int(rc, WFO_EINVAL, "a redirect to ftp:// is refused (%s)", err.message);
    httpc_response_release(&res);
}

TEST(deny_private)
{
    static const char *const refused[] = {
        "http://127.0.0.1:%d/hello",
        "http://127.1.2.3:%d/hello",
        "http://10.1.2.3:%d/",
        "http://192.168.1.1:%d/",
        "http://172.16.0.1:%d/",
        "http://172.31.255.255:%d/",
        "http://169.254.169.254:%d/latest",
        "http://100.64.0.1:%d/",
        "http://0.0.0.0:%d/",
        "http://224.0.0.1:%d/",
        "http://255.255.255.255:%d/",
        "http://[::1]:%d/",
        "http://[::]:%d/",
        "http://[::ffff:127.0.0.1]:%d/hello",
        "http://[::ffff:10.0.0.1]:%d/",
        "http://[fe80::1]:%d/",
        "http://[fc00::1]:%d/",
        "http://[fd12:3456::1]:%d/",
        "http://[ff02::1]:%d/",
        "http://[64:ff9b::7f00:1]:%d/",
        "http://[2002:c0a8:101::1]:%d/",
        "http://localhost:%d/hello",
        "http://2130706433:%d/hello", /* 127.0.0.1 as one number */
    };
    struct httpc_response res;
    struct wfo_error err = WFO_ERROR_INIT;
    char u[128];

    url("/"); /* starts the server */
    int before = conns();
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        snprintf(u, sizeof(u), refused[i], srv_port);
        struct httpc_request req = {.url = u, .timeout_ms = 3000, .deny_private = 1};
        int rc = httpc_do(&req, &res, &err);
        is_int(rc, WFO_EFORBIDDEN, "%s refused (%s)", u, err.message);
        httpc_response_release(&res);
    }
    is_int(conns(), before, "the server saw no connection");
    ok(strstr(err.message, "private, loopback or link-local") != NULL, "message: %s", err.message);

    /* the same address is fine without deny_private */
    struct httpc_request ok_req = {.url = url("/hello"), .timeout_ms = 3000};
    is_int(httpc_do(&ok_req, &res, &err), 0, "loopback allowed by default");
    httpc_response_release(&res);

    /* a public address is not refused (it may not answer here) */
    struct httpc_request pub = {
        .url = "http://198.51.100.7:9/", .timeout_ms = 300, .deny_private = 1};
    err.message[0] = '\0';
    int rc = httpc_do(&pub, &res, &err);
    ok(rc != WFO_EFORBIDDEN, "a public address is tried (%d: %s)", rc, err.message);
    httpc_response_release(&res);
}

TEST(connection_refused)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    char u[128], want[160];

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, (struct sockaddr *)&a, sizeof(a));
    getsockname(fd, (struct sockaddr *)&a, &alen);
    close(fd); /* a port nobody listens on */
    snprintf(u, sizeof(u), "http://127.0.0.1:%d/x?secret=1", ntohs(a.sin_port));

    struct httpc_response res;
    struct wfo_error err = WFO_ERROR_INIT;
    struct httpc_request req = {.url = u, .timeout_ms = 3000};
    is_int(httpc_do(&req, &res, &err), WFO_EIO, "refused");
    snprintf(want, sizeof(want),
             "connection to 'http://127.0.0.1:%d/x' failed: ", ntohs(a.sin_port));
    ok(strncmp(err.message, want, strlen(want)) == 0, "message: %s", err.message);
    ok(strstr(err.message, "secret") == NULL, "the query is not in the message");
    httpc_response_release(&res);

    struct httpc_request dns = {.url = "http://no-such-host.invalid/", .timeout_ms = 3000};
    is_int(httpc_do(&dns, &res, &err), WFO_EIO, "unknown host (%s)", err.message);
    httpc_response_release(&res);

    struct httpc_request creds = {.url = "http://user:pw@127.0.0.1:1/", .timeout_ms = 3000};
    httpc_do(&creds, &res, &err);
    ok(strstr(err.message, "pw") == NULL && strstr(err.message, "user") == NULL,
       "credentials are not in the message: %s", err.message);
    httpc_response_release(&res);
}

TEST(bad_input)
{
    struct httpc_response res;
    struct wfo_error err = WFO_ERROR_INIT;
    static const char *const bad_urls[] = {
        "ftp://127.0.0.1/", "file:///etc/passwd",     "127.0.0.1/x", "gopher://x/", "",
        "http://",          "http://127.0.0.1:1/a b",
    };

    for (size_t i = 0; i < sizeof(bad_urls) / sizeof(bad_urls[0]); i++) {
        struct httpc_request req = {.url = bad_urls[i], .timeout_ms = 2000};
        is_int(httpc_do(&req, &res, &err), WFO_EINVAL, "url '%s' refused (%s)", bad_urls[i],
               err.message);
        httpc_response_release(&res);
    }
    struct httpc_request none = {.url = NULL};
    is_int(httpc_do(&none, &res, &err), WFO_EINVAL, "no url");
    httpc_response_release(&res);

    static const char *const bad_methods[] = {"GE T", "", "GET\r\nX: y", "(GET)",
                                              "AVERYLONGMETHODNAMEOFMORETHANTHIRTYTWOCHARS"};
    for (size_t i = 0; i < sizeof(bad_methods) / sizeof(bad_methods[0]); i++) {
        struct httpc_request req = {.method = bad_methods[i], .url = url("/hello")};
        is_int(httpc_do(&req, &res, &err), WFO_EINVAL, "method %zu refused", i);
        httpc_response_release(&res);
    }

    struct httpc_header bad_name[] = {{"Bad Name", "x"}};
    struct httpc_header bad_value[] = {{"X-A", "x\r\nX-Injected: 1"}};
    struct httpc_header colon[] = {{"X-A:", "x"}};
    struct httpc_request req = {.url = url("/hello"), .headers = bad_name, .n_headers = 1};
    is_int(httpc_do(&req, &res, &err), WFO_EINVAL, "header name with a space");
    httpc_response_release(&res);
    req.headers = bad_value;
    is_int(httpc_do(&req, &res, &err), WFO_EINVAL, "header value with CRLF");
    httpc_response_release(&res);
    req.headers = colon;
    is_int(httpc_do(&req, &res, &err), WFO_EINVAL, "header name with a colon");
    httpc_response_release(&res);
}

static void *get_main(void *arg)
{
    int *ok_count = arg;
    for (int i = 0; i < 5; i++) {
        struct httpc_response res;
        struct wfo_error err = WFO_ERROR_INIT;
        if (get(url("/hello"), &res, &err) == 0 && strcmp(res.body.buf, "hello") == 0)
            __atomic_add_fetch(ok_count, 1, __ATOMIC_SEQ_CST);
        httpc_response_release(&res);
    }
    return NULL;
}

TEST(threads)
{
    pthread_t t[8];
    int n = 0;

    url("/"); /* the server starts before the threads race */
    for (int i = 0; i < 8; i++)
        pthread_create(&t[i], NULL, get_main, &n);
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    is_int(n, 40, "40 requests from 8 threads at once");
}

/* httpc_do_many: request i POSTs "body-i" to /echo; request 7 has a bad
 * URL. */
struct many {
    int n;
    long next;
    char body[32];
    int done[20];
    int good, bad, in_order;
    long last;
};

static long many_next(void *ud, struct httpc_request *r)
{
    struct many *m = ud;
    if (m->next >= m->n)
        return -1;
    long i = m->next++;
    snprintf(m->body, sizeof(m->body), "body-%ld", i);
    r->method = "POST";
    r->url = i == 7 ? "ftp://127.0.0.1/" : url("/echo");
    r->body = m->body; /* overwritten by the next call: httpc copies it */
    r->body_len = strlen(m->body);
    r->timeout_ms = 5000;
    return i;
}

static void many_done(void *ud, long i, int rc, struct httpc_response *res,
                      const struct wfo_error *err)
{
    struct many *m = ud;
    char want[32];
    snprintf(want, sizeof(want), "body-%ld", i);
    m->done[i]++;
    if (i < m->last)
        m->in_order = 0;
    m->last = i;
    if (i == 7) {
        m->bad += rc == WFO_EINVAL && strstr(err->message, "ftp://") != NULL;
        return;
    }
    m->good += rc == 0 && res->status == 200 && res->body.buf && strcmp(res->body.buf, want) == 0;
}

TEST(many_at_once)
{
    struct many m = {.n = 20, .in_order = 1};
    httpc_do_many(5, many_next, many_done, &m);
    int once = 1;
    for (int i = 0; i < 20; i++)
        once &= m.done[i] == 1;
    ok(once, "done() called once for each of the 20 requests");
    is_int(m.good, 19, "the 19 good ones got their own bodies back");
    is_int(m.bad, 1, "the bad URL ended with WFO_EINVAL, the others went on");

    struct many none = {.n = 0};
    httpc_do_many(5, many_next, many_done, &none);
    is_int(none.good + none.bad, 0, "no requests: nothing done");

    struct many one = {.n = 3, .in_order = 1};
    httpc_do_many(1, many_next, many_done, &one);
    is_int(one.good, 3, "one at a time");
    ok(one.in_order, "one at a time ends in order");
}

/* Webhook URLs, checked when a subscription is added. */
TEST(url_check)
{
    struct wfo_error err = WFO_ERROR_INIT;
    is_int(httpc_url_check("http://example.com/x", 0, &err), 0, "http");
    is_int(httpc_url_check("HTTPS://example.com:8443/x?q=1", 1, &err), 0, "https, any case");
    is_int(httpc_url_check("ftp://example.com/", 0, &err), WFO_EINVAL, "ftp");
    ok(strstr(err.message, "http:// or https://") != NULL, "says why: %s", err.message);
    is_int(httpc_url_check("http://", 0, &err), WFO_EINVAL, "no host");
    is_int(httpc_url_check("http://127.0.0.1:9/", 0, &err), 0, "loopback allowed by default");
    static const char *const denied[] = {
        "http://127.0.0.1:9/", "http://10.0.0.1/",          "http://192.168.1.1/",
        "http://172.16.0.1/",  "http://169.254.169.254/",   "http://[::1]/",
        "http://[fe80::1]/",   "http://0.0.0.0/",           "http://localhost:8080/",
        "http://a.localhost/", "http://[::ffff:127.0.0.1]/"};
    for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]); i++) {
        is_int(httpc_url_check(denied[i], 1, &err), WFO_EINVAL, "deny_private: %s", denied[i]);
        ok(strstr(err.message, "private") != NULL, "says why: %s", err.message);
    }
    is_int(httpc_url_check("http://8.8.8.8/", 1, &err), 0, "a public address");
    is_int(httpc_url_check("http://[2001:4860::1]/", 1, &err), 0, "a public IPv6 address");
    is_int(httpc_url_check("http://example.com/", 1, &err), 0, "a name: checked at delivery");
}

int main(void)
{
    return tap_run();
}
