/*
 * httpc.c - the HTTP client of common/httpc.h: the only file that includes
 * <curl/curl.h> (STYLE: one adapter per foreign library, curl's lib/vtls/).
 * docs/interfaces/internal.md describes it; the `http` step (SPEC 2.2) and
 * webhook delivery (SPEC 2.5) use it.
 *
 * Each call makes one easy handle and drives it with a private multi handle,
 * so that the loop wakes at least every HTTPC_POLL_MS to look at the
 * caller's cancel flag (an easy_perform would only call a progress callback
 * about once a second while idle).
 *
 * What must stay true:
 *  1. Only http and https are spoken, on the first request and after every
 *     redirect (CURLOPT_PROTOCOLS_STR, CURLOPT_REDIR_PROTOCOLS_STR).
 *  2. With deny_private, every socket curl asks for goes through
 *     opensocket_cb, which refuses addresses addr_is_private() names before
 *     any connect: the address checked is the one connected to, so DNS
 *     rebinding and redirects cannot slip past. Proxies are switched off
 *     then (the proxy's address would be the one checked).
 *  3. The response kept is the last one: headers of 1xx and redirect
 *     responses are dropped when the next status line arrives.
 *  4. No signal is raised or caught (CURLOPT_NOSIGNAL): safe in threads.
 */
#include "common/compat.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <curl/curl.h>

#include "common/httpc.h"
#include "common/util.h"

#define HTTPC_DEFAULT_MAX_BODY ((size_t)16 << 20)
#define HTTPC_MAX_HEADER_BYTES ((size_t)256 << 10)
#define HTTPC_CONNECT_TIMEOUT_MS 30000
#define HTTPC_POLL_MS 100

static pthread_once_t httpc_once = PTHREAD_ONCE_INIT;
static CURLcode httpc_init_rc;

static void httpc_global_init(void)
{
    httpc_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* What the callbacks of one call share. */
struct httpc_ctx {
    struct httpc_response *res;
    const struct httpc_request *req;
    CURL *h;
    int stopped; /* on_body said stop */
    int body_too_big;
    int headers_too_big;
    size_t header_bytes;
    int deny_private;
    int denied; /* opensocket_cb refused an address */
    int opened; /* opensocket_cb opened a socket */
    char denied_addr[INET6_ADDRSTRLEN];
};

/* --- addresses --------------------------------------------------------------- */

/* a is in host order. Loopback, private, shared (CGNAT), link-local,
 * "this network", IETF protocol, benchmarking, multicast, reserved and
 * broadcast ranges. */
static int addr4_is_private(uint32_t a)
{
    return (a >> 24) == 0 ||                   /* 0.0.0.0/8 */
           (a >> 24) == 10 ||                  /* 10.0.0.0/8 */
           (a & 0xffc00000u) == 0x64400000u || /* 100.64.0.0/10 */
           (a >> 24) == 127 ||                 /* 127.0.0.0/8 */
           (a & 0xffff0000u) == 0xa9fe0000u || /* 169.254.0.0/16 */
           (a & 0xfff00000u) == 0xac100000u || /* 172.16.0.0/12 */
           (a & 0xffffff00u) == 0xc0000000u || /* 192.0.0.0/24 */
           (a & 0xffff0000u) == 0xc0a80000u || /* 192.168.0.0/16 */
           (a & 0xfffe0000u) == 0xc6120000u || /* 198.18.0.0/15 */
           (a >> 28) >= 0xe;                   /* 224.0.0.0/4, 240.0.0.0/4 */
}

static uint32_t be32_at(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

static int addr6_is_private(const unsigned char *b)
{
    static const unsigned char nat64[12] = {0x00, 0x64, 0xff, 0x9b};
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

    if (all_zero(b, 12)) /* ::, ::1 and the deprecated v4-compatible ::a.b.c.d */
        return 1;
    if (memcmp(b, mapped, 12) == 0 || memcmp(b, nat64, 12) == 0)
        return addr4_is_private(be32_at(b + 12));
    if (b[0] == 0x20 && b[1] == 0x02) /* 2002::/16, 6to4 */
        return addr4_is_private(be32_at(b + 2));
    if (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b) /* 64:ff9b:1::/48 */
        return 1;
    if (b[0] == 0x01 && all_zero(b + 1, 7)) /* 100::/64, discard */
        return 1;
    if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8) /* 2001:db8::/32 */
        return 1;
    return (b[0] & 0xfe) == 0xfc ||                   /* fc00::/7, unique local */
           (b[0] == 0xfe && (b[1] & 0x80) == 0x80) || /* fe80::/10 link-local, fec0::/10 */
           b[0] == 0xff;                              /* ff00::/8, multicast */
}

/* 1 when sa may not be connected to under deny_private; its text in out. */
static int addr_is_private(const struct sockaddr *sa, char out[INET6_ADDRSTRLEN])
{
    out[0] = '\0';
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &s4->sin_addr, out, INET6_ADDRSTRLEN);
        return addr4_is_private(ntohl(s4->sin_addr.s_addr));
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &s6->sin6_addr, out, INET6_ADDRSTRLEN);
        return addr6_is_private(s6->sin6_addr.s6_addr);
    }
    snprintf(out, INET6_ADDRSTRLEN, "(family %d)", sa->sa_family);
    return 1; /* unix sockets and the like */
}

static curl_socket_t opensocket_cb(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
    struct httpc_ctx *c = ud;
    char text[INET6_ADDRSTRLEN];

    if (c->deny_private && addr_is_private(&a->addr, text)) {
        if (!c->denied)
            snprintf(c->denied_addr, sizeof(c->denied_addr), "%s", text);
        c->denied = 1;
        return CURL_SOCKET_BAD;
    }
    curl_socket_t fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    if (fd != CURL_SOCKET_BAD)
        c->opened = 1;
    return fd;
}

int httpc_url_check(const char *url, int deny_private, struct wfo_error *err)
{
    char shown[HTTPC_URL_SHOWN + 4];
    char *host = NULL;
    int rc = 0;
    httpc_url_shown(url, shown, sizeof(shown));
    if (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0)
        return wfo_error_set(err, WFO_EINVAL, "url: '%s' is not an http:// or https:// URL", shown);
    CURLU *u = curl_url();
    if (!u)
        return wfo_error_set(err, WFO_EINVAL, "url: cannot parse '%s'", shown);
    CURLUcode uc = curl_url_set(u, CURLUPART_URL, url, 0);
    if (uc == CURLUE_OK)
        uc = curl_url_get(u, CURLUPART_HOST, &host, 0);
    if (uc != CURLUE_OK || !host || !host[0]) {
        rc = wfo_error_set(err, WFO_EINVAL, "url: '%s' is not a URL with a host", shown);
        goto out;
    }
    if (deny_private) {
        size_t n = strlen(host);
        char lit[INET6_ADDRSTRLEN + 2];
        unsigned char a[16];
        int priv = 0;
        if (strcasecmp(host, "localhost") == 0 ||
            (n > 10 && strcasecmp(host + n - 10, ".localhost") == 0)) {
            priv = 1;
        } else if (host[0] == '[' && n > 2 && n - 2 < sizeof(lit)) {
            memcpy(lit, host + 1, n - 2);
            lit[n - 2] = 0;
            char *pct = strchr(lit, '%'); /* a zone id */
            if (pct)
                *pct = 0;
            priv = inet_pton(AF_INET6, lit, a) == 1 && addr6_is_private(a);
        } else if (inet_pton(AF_INET, host, a) == 1) {
            priv = addr4_is_private(be32_at(a));
        }
        if (priv)
            rc = wfo_error_set(err, WFO_EINVAL,
                               "url: '%s' is a private, loopback or link-local address"
                               " (http.deny_private is on)",
                               host);
    }
out:
    curl_free(host);
    curl_url_cleanup(u);
    return rc;
}

/* --- response callbacks ------------------------------------------------------ */

static size_t write_cb(char *p, size_t size, size_t n, void *ud)
{
    struct httpc_ctx *c = ud;
    long status = 0;

    if (c->req->on_body && curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK &&
        status >= 200 && status < 300) {
        if (c->req->on_body(c->req->on_body_ud, p, n)) {
            c->stopped = 1;
            return 0; /* curl stops with CURLE_WRITE_ERROR */
        }
        return n;
    }
    if (wfo_buf_add(&c->res->body, p, n) < 0) {
        c->body_too_big = 1;
        return 0; /* curl stops with CURLE_WRITE_ERROR */
    }
    return n;
}

static void headers_clear(struct httpc_response *res)
{
    for (int i = 0; i < res->n_headers; i++) {
        free(res->headers[i].name);
        free(res->headers[i].value);
    }
    free(res->headers);
    res->headers = NULL;
    res->n_headers = 0;
}

static size_t header_cb(char *p, size_t size, size_t n, void *ud)
{
    struct httpc_ctx *c = ud;
    struct httpc_response *res = c->res;
    size_t len = n;

    c->header_bytes += n;
    if (c->header_bytes > HTTPC_MAX_HEADER_BYTES) {
        c->headers_too_big = 1;
        return 0;
    }
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) { /* a new response: invariant 3 */
        headers_clear(res);
        return n;
    }
    while (len && (p[len - 1] == '\n' || p[len - 1] == '\r'))
        len--;
    if (!len)
        return n;
    if ((p[0] == ' ' || p[0] == '\t') && res->n_headers) { /* obsolete line folding */
        struct httpc_header *h = &res->headers[res->n_headers - 1];
        size_t s = 0;
        while (s < len && (p[s] == ' ' || p[s] == '\t'))
            s++;
        struct wfo_buf b = WFO_BUF_INIT;
        wfo_buf_adds(&b, h->value);
        wfo_buf_addch(&b, ' ');
        wfo_buf_add(&b, p + s, len - s);
        free(h->value);
        h->value = wfo_buf_detach(&b, NULL);
        return n;
    }
    const char *colon = memchr(p, ':', len);
    if (!colon || colon == p)
        return n; /* not a header line: ignored */
    size_t nlen = (size_t)(colon - p);
    while (nlen && (p[nlen - 1] == ' ' || p[nlen - 1] == '\t'))
        nlen--;
    const char *v = colon + 1, *end = p + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    res->headers = wfo_realloc(res->headers, (size_t)(res->n_headers + 1) * sizeof(*res->headers));
    struct httpc_header *h = &res->headers[res->n_headers++];
    h->name = wfo_strndup(p, nlen);
    for (char *q = h->name; *q; q++)
        *q = (char)tolower((unsigned char)*q);
    h->value = wfo_strndup(v, (size_t)(end - v));
    return n;
}

/* --- requests ---------------------------------------------------------------- */

/* RFC 9110 token characters (methods and header names). */
static int is_token(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s))
            return 0;
    return 1;
}

void httpc_url_shown(const char *url, char *out, size_t size)
{
    struct wfo_buf b = WFO_BUF_INIT;
    const char *host = strstr(url, "://"), *at = NULL;

    if (host) {
        host += 3;
        for (const char *p = host; *p && !strchr("/?#", *p); p++)
            if (*p == '@')
                at = p + 1;
    }
    if (at) {
        wfo_buf_add(&b, url, (size_t)(host - url));
        wfo_buf_add(&b, at, strcspn(at, "?#"));
    } else {
        wfo_buf_add(&b, url, strcspn(url, "?#"));
    }
    if (b.len > HTTPC_URL_SHOWN)
        snprintf(out, size, "%.*s...", HTTPC_URL_SHOWN, b.buf);
    else
        snprintf(out, size, "%s", b.buf);
    wfo_buf_release(&b);
}

int httpc_status_transient(long status)
{
    return status >= 500 || status == 408 || status == 429;
}

void httpc_escape(struct wfo_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";

    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            wfo_buf_addch(b, *p);
        } else {
            wfo_buf_addch(b, '%');
            wfo_buf_addch(b, hex[*p >> 4]);
            wfo_buf_addch(b, hex[*p & 15]);
        }
    }
}

static int has_header(const struct httpc_request *req, const char *name)
{
    for (int i = 0; i < req->n_headers; i++)
        if (strcasecmp(req->headers[i].name, name) == 0)
            return 1;
    return 0;
}

static int build_headers(const struct httpc_request *req, struct curl_slist **out,
                         struct wfo_error *err)
{
    struct curl_slist *list = NULL, *l;
    struct wfo_buf b = WFO_BUF_INIT;
    int rc = 0;

    for (int i = 0; i < req->n_headers; i++) {
        const char *name = req->headers[i].name, *value = req->headers[i].value;
        if (!name || !is_token(name)) {
            rc = wfo_error_set(err, WFO_EINVAL, "header '%.100s': not a valid header name",
                               name ? name : "(null)");
            goto out;
        }
        if (!value)
            value = "";
        if (strpbrk(value, "\r\n")) {
            rc = wfo_error_set(err, WFO_EINVAL, "header '%.100s': the value holds a line break",
                               name);
            goto out;
        }
        wfo_buf_reset(&b);
        if (*value)
            wfo_buf_addf(&b, "%s: %s", name, value);
        else
            wfo_buf_addf(&b, "%s;", name); /* curl's spelling of an empty header */
        l = curl_slist_append(list, b.buf);
        if (!l)
            goto nomem;
        list = l;
    }
    /* curl would add "Content-Type: application/x-www-form-urlencoded" to a
     * body, and "Expect: 100-continue" to a large one: neither is wanted. */
    if (req->body && !has_header(req, "content-type")) {
        if (!(l = curl_slist_append(list, "Content-Type:")))
            goto nomem;
        list = l;
    }
    if (!has_header(req, "expect")) {
        if (!(l = curl_slist_append(list, "Expect:")))
            goto nomem;
        list = l;
    }
    goto out;
nomem:
    rc = wfo_error_set(err, WFO_ENOMEM, "out of memory");
out:
    wfo_buf_release(&b);
    if (rc < 0) {
        curl_slist_free_all(list);
        list = NULL;
    }
    *out = list;
    return rc;
}

/* Sets every option of one request on h. */
static int setup(CURL *h, const struct httpc_request *req, const char *method, struct httpc_ctx *c,
                 struct curl_slist *headers)
{
    CURLcode r = CURLE_OK;
#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (r == CURLE_OK)                                                                         \
            r = curl_easy_setopt(h, opt, val);                                                     \
    } while (0)

    SET(CURLOPT_URL, req->url);
    SET(CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85.0 */
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    SET(CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    SET(CURLOPT_USERAGENT, "wfo");
    SET(CURLOPT_HTTPHEADER, headers);
    SET(CURLOPT_WRITEFUNCTION, write_cb);
    SET(CURLOPT_WRITEDATA, c);
    SET(CURLOPT_HEADERFUNCTION, header_cb);
    SET(CURLOPT_HEADERDATA, c);
    SET(CURLOPT_OPENSOCKETFUNCTION, opensocket_cb);
    SET(CURLOPT_OPENSOCKETDATA, c);
    if (req->deny_private)
        SET(CURLOPT_PROXY, ""); /* invariant 2 */
    if (req->max_redirects > 0) {
        SET(CURLOPT_FOLLOWLOCATION, 1L);
        SET(CURLOPT_MAXREDIRS, (long)req->max_redirects);
    }
    long connect_ms = HTTPC_CONNECT_TIMEOUT_MS;
    if (req->timeout_ms > 0) {
        long t = req->timeout_ms > LONG_MAX ? LONG_MAX : (long)req->timeout_ms;
        SET(CURLOPT_TIMEOUT_MS, t);
        if (t < connect_ms)
            connect_ms = t;
    }
    SET(CURLOPT_CONNECTTIMEOUT_MS, connect_ms);

    const char *body = req->body ? req->body : "";
    int send_body = req->body != NULL;
    if (strcmp(method, "HEAD") == 0) {
        SET(CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "GET") == 0 && !send_body) {
        SET(CURLOPT_HTTPGET, 1L);
    } else if (strcmp(method, "POST") == 0) {
        send_body = 1;
    } else {
        SET(CURLOPT_CUSTOMREQUEST, method);
        if (strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0)
            send_body = 1; /* with Content-Length: 0 when there is none */
    }
    if (send_body) {
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(req->body ? req->body_len : 0));
        SET(CURLOPT_POSTFIELDS, body);
    }
#undef SET
    return r == CURLE_OK ? 0 : -1;
}

/* Connections are kept alive per thread: each thread that makes requests
 * gets a share object for the connection and DNS caches, used only by that
 * thread (so it needs no lock) and freed when the thread exits. Requests
 * with deny_private never use it: a kept connection would skip the address
 * check made when a socket is opened. The thread also keeps the multi
 * handle its requests run on: making one per request cost a socketpair
 * and its closing (curl's wake-up pair), two fcntl and more, on both the
 * benchmark's clients and `wfo worker`. A deny_private request gets a
 * fresh one, whose connection cache starts empty. */
struct httpc_thread {
    CURLSH *sh;
    CURLM *m;
};

static pthread_key_t httpc_share_key;
static pthread_once_t httpc_share_once = PTHREAD_ONCE_INIT;

static void share_free(void *p)
{
    struct httpc_thread *t = p;
    curl_multi_cleanup(t->m);
    curl_share_cleanup(t->sh);
    free(t);
}

/* A forked child must not talk on its parent's kept connections: it
 * forgets the forking thread's share and multi handle (and leaks them:
 * closing their sockets is the parent's business). */
static void share_forget(void)
{
    pthread_setspecific(httpc_share_key, NULL);
}

static void share_key_init(void)
{
    pthread_key_create(&httpc_share_key, share_free);
    pthread_atfork(NULL, NULL, share_forget);
}

static struct httpc_thread *thread_kept(void)
{
    pthread_once(&httpc_share_once, share_key_init);
    struct httpc_thread *t = pthread_getspecific(httpc_share_key);
    if (t)
        return t;
    t = wfo_calloc(1, sizeof(*t));
    t->sh = curl_share_init();
    t->m = curl_multi_init();
    if (!t->sh || !t->m ||
        curl_share_setopt(t->sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT) != CURLSHE_OK ||
        curl_share_setopt(t->sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK ||
        pthread_setspecific(httpc_share_key, t) != 0) {
        share_free(t);
        return NULL;
    }
    return t;
}

/* Runs h to its end on multi handle m (NULL: a private one), looking at
 * *cancel between polls. *cancelled is set when it stopped for that. */
static CURLcode perform(CURL *h, CURLM *kept, const atomic_int *cancel, int *cancelled)
{
    CURLM *m = kept ? kept : curl_multi_init();
    CURLcode result = CURLE_OK;
    int running = 1;

    *cancelled = 0;
    if (!m)
        return CURLE_OUT_OF_MEMORY;
    if (curl_multi_add_handle(m, h) != CURLM_OK) {
        if (!kept)
            curl_multi_cleanup(m);
        return CURLE_OUT_OF_MEMORY;
    }
    for (;;) {
        if (curl_multi_perform(m, &running) != CURLM_OK) {
            result = CURLE_FAILED_INIT;
            break;
        }
        if (!running) {
            int left;
            CURLMsg *msg;
            result = CURLE_GOT_NOTHING;
            while ((msg = curl_multi_info_read(m, &left)))
                if (msg->msg == CURLMSG_DONE && msg->easy_handle == h)
                    result = msg->data.result;
            break;
        }
        if (cancel && atomic_load(cancel)) {
            *cancelled = 1;
            break;
        }
        if (curl_multi_poll(m, NULL, 0, HTTPC_POLL_MS, NULL) != CURLM_OK) {
            result = CURLE_FAILED_INIT;
            break;
        }
    }
    curl_multi_remove_handle(m, h);
    if (!kept)
        curl_multi_cleanup(m);
    return result;
}

/* One request being made: its easy handle and what its callbacks share. */
struct httpc_call {
    struct httpc_ctx c;
    struct curl_slist *headers;
    char shown[HTTPC_URL_SHOWN + 16];
};

/* Checks req and makes its easy handle (call->c.h) on the thread's kept
 * share unless deny_private; res is initialised either way. */
static int call_begin(struct httpc_call *call, const struct httpc_request *req,
                      struct httpc_response *res, struct wfo_error *err)
{
    struct httpc_ctx *c = &call->c;
    char method[32];

    memset(call, 0, sizeof(*call));
    memset(res, 0, sizeof(*res));
    wfo_buf_init(&res->body, req->max_body ? req->max_body : HTTPC_DEFAULT_MAX_BODY);
    c->res = res;
    c->req = req;
    c->deny_private = req->deny_private;
    if (!req->url)
        return wfo_error_set(err, WFO_EINVAL, "url: missing");
    httpc_url_shown(req->url, call->shown, sizeof(call->shown));
    if (strncasecmp(req->url, "http://", 7) != 0 && strncasecmp(req->url, "https://", 8) != 0)
        return wfo_error_set(err, WFO_EINVAL, "url: '%s' is not an http:// or https:// URL",
                             call->shown);
    snprintf(method, sizeof(method), "%s", req->method ? req->method : "GET");
    if (!is_token(method) || strlen(req->method ? req->method : "GET") >= sizeof(method))
        return wfo_error_set(err, WFO_EINVAL, "method: '%.40s' is not a valid method", method);
    pthread_once(&httpc_once, httpc_global_init);
    if (httpc_init_rc != CURLE_OK)
        return wfo_error_set(err, WFO_EIO, "cannot initialise libcurl: %s",
                             curl_easy_strerror(httpc_init_rc));
    int rc = build_headers(req, &call->headers, err);
    if (rc < 0)
        return rc;
    if (req->cancel && atomic_load(req->cancel))
        return wfo_error_set(err, WFO_ESHUTDOWN, "request to '%s' was cancelled", call->shown);
    c->h = curl_easy_init();
    if (!c->h || setup(c->h, req, method, c, call->headers) < 0)
        return wfo_error_set(err, WFO_EIO, "cannot set up a request to '%s'", call->shown);
    struct httpc_thread *kept = req->deny_private ? NULL : thread_kept();
    if (kept)
        curl_easy_setopt(c->h, CURLOPT_SHARE, kept->sh);
    return 0;
}

/* Frees what call_begin made (also after it failed). */
static void call_release(struct httpc_call *call)
{
    if (call->c.h)
        curl_easy_cleanup(call->c.h);
    call->c.h = NULL;
    curl_slist_free_all(call->headers);
    call->headers = NULL;
}

/* The outcome of a call that ran to r (its status into res), then its
 * handle released. */
static int call_end(struct httpc_call *call, CURLcode r, int cancelled, struct wfo_error *err)
{
    struct httpc_ctx *c = &call->c;
    const struct httpc_request *req = c->req;
    struct httpc_response *res = c->res;
    const char *shown = call->shown;
    int rc = 0;
    long status = 0;

    curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &status);
    res->status = status;
    if (cancelled || c->stopped) {
        rc = wfo_error_set(err, WFO_ESHUTDOWN, "request to '%s' was %s", shown,
                           c->stopped ? "stopped by its reader" : "cancelled");
    } else if (c->body_too_big) {
        rc = wfo_error_set(err, WFO_ETOOBIG, "response from '%s' is larger than %zu bytes", shown,
                           res->body.max);
    } else if (c->headers_too_big) {
        rc = wfo_error_set(err, WFO_EIO,
                           "connection to '%s' failed: response headers larger than %zu bytes",
                           shown, HTTPC_MAX_HEADER_BYTES);
    } else if (r == CURLE_OK) {
        const char *ct = httpc_header_get(res, "content-type");
        if (ct) {
            res->content_type = wfo_strdup(ct);
            for (char *q = res->content_type; *q; q++)
                *q = (char)tolower((unsigned char)*q);
        }
    } else if (c->denied && !c->opened) {
        rc = wfo_error_set(err, WFO_EFORBIDDEN,
                           "connection to '%s' refused: %s is a private, loopback or link-local "
                           "address",
                           shown, c->denied_addr);
    } else if (r == CURLE_OPERATION_TIMEDOUT) {
        rc = wfo_error_set(err, WFO_ETIMEOUT, "request to '%s' timed out after %lld ms", shown,
                           (long long)req->timeout_ms);
    } else if (r == CURLE_TOO_MANY_REDIRECTS) {
        rc = wfo_error_set(err, WFO_EINVAL, "request to '%s' was redirected more than %d times",
                           shown, req->max_redirects);
    } else if (r == CURLE_URL_MALFORMAT || r == CURLE_UNSUPPORTED_PROTOCOL) {
        rc = wfo_error_set(err, WFO_EINVAL, "url: '%s': %s", shown, curl_easy_strerror(r));
    } else if (r == CURLE_OUT_OF_MEMORY) {
        rc = wfo_error_set(err, WFO_ENOMEM, "out of memory");
    } else {
        rc = wfo_error_set(err, WFO_EIO, "connection to '%s' failed: %s", shown,
                           curl_easy_strerror(r));
    }
    call_release(call);
    return rc;
}

int httpc_do(const struct httpc_request *req, struct httpc_response *res, struct wfo_error *err)
{
    struct httpc_call call;
    int cancelled = 0;

    int rc = call_begin(&call, req, res, err);
    if (rc < 0) {
        call_release(&call);
        return rc;
    }
    struct httpc_thread *kept = req->deny_private ? NULL : thread_kept();
    CURLcode r = perform(call.c.h, kept ? kept->m : NULL, req->cancel, &cancelled);
    return call_end(&call, r, cancelled, err);
}

/* One of httpc_do_many's transfers: its own copy of the request. */
struct many_slot {
    int busy;
    struct httpc_request req;
    char *url, *body;
    long i;
    struct httpc_call call;
    struct httpc_response res;
};

/* After done(): the slot is free again. */
static void many_slot_free(struct many_slot *s)
{
    httpc_response_release(&s->res);
    free(s->url);
    free(s->body);
    s->url = s->body = NULL;
    s->busy = 0;
}

void httpc_do_many(int parallel, httpc_next_fn *next, httpc_done_fn *done, void *ud)
{
    struct wfo_error err = WFO_ERROR_INIT;
    struct httpc_thread *kept = thread_kept();
    CURLM *m = kept ? kept->m : NULL;
    struct many_slot *slots = wfo_calloc((size_t)(parallel > 0 ? parallel : 1), sizeof(*slots));
    int running = 0, more = 1;

    for (;;) {
        /* every free slot takes the next request */
        for (int k = 0; k < parallel && more; k++) {
            struct many_slot *s = &slots[k];
            if (s->busy)
                continue;
            memset(&s->req, 0, sizeof(s->req));
            s->i = next(ud, &s->req);
            if (s->i < 0) {
                more = 0;
                break;
            }
            /* the caller's strings need not outlive next() */
            s->busy = 1;
            if (s->req.url)
                s->req.url = s->url = wfo_strdup(s->req.url);
            if (s->req.body) {
                s->body = wfo_strndup(s->req.body, s->req.body_len);
                s->req.body = s->body;
            }
            s->req.deny_private = 0; /* kept connections: invariant 2 does not apply */
            s->req.cancel = NULL;
            s->req.on_body = NULL;
            err = (struct wfo_error)WFO_ERROR_INIT;
            if (!m || call_begin(&s->call, &s->req, &s->res, &err) < 0 ||
                curl_multi_add_handle(m, s->call.c.h) != CURLM_OK) {
                if (!err.code)
                    wfo_error_set(&err, WFO_ENOMEM, "out of memory");
                call_release(&s->call);
                done(ud, s->i, err.code, &s->res, &err);
                many_slot_free(s);
                k--; /* this slot again */
                continue;
            }
            running++;
        }
        if (!running)
            break;
        int still = 0;
        if (curl_multi_perform(m, &still) != CURLM_OK)
            break;
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            for (int k = 0; k < parallel; k++) {
                struct many_slot *s = &slots[k];
                if (!s->busy || s->call.c.h != msg->easy_handle)
                    continue;
                CURLcode r = msg->data.result;
                curl_multi_remove_handle(m, s->call.c.h);
                err = (struct wfo_error)WFO_ERROR_INIT;
                int rc = call_end(&s->call, r, 0, &err);
                done(ud, s->i, rc, &s->res, &err);
                many_slot_free(s);
                running--;
                break;
            }
        }
        if (still && curl_multi_poll(m, NULL, 0, HTTPC_POLL_MS, NULL) != CURLM_OK)
            break;
    }
    for (int k = 0; k < parallel; k++) { /* a multi handle that failed: the rest end */
        struct many_slot *s = &slots[k];
        if (!s->busy)
            continue;
        curl_multi_remove_handle(m, s->call.c.h);
        err = (struct wfo_error)WFO_ERROR_INIT;
        int rc = call_end(&s->call, CURLE_FAILED_INIT, 0, &err);
        done(ud, s->i, rc, &s->res, &err);
        many_slot_free(s);
    }
    free(slots);
}

void httpc_response_release(struct httpc_response *res)
{
    if (!res)
        return;
    headers_clear(res);
    wfo_buf_release(&res->body);
    free(res->content_type);
    res->content_type = NULL;
    res->status = 0;
}

const char *httpc_header_get(const struct httpc_response *res, const char *name)
{
    for (int i = 0; i < res->n_headers; i++)
        if (strcasecmp(res->headers[i].name, name) == 0)
            return res->headers[i].value;
    return NULL;
}
