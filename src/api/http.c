/*
 * http.c - the HTTP server: the one file that includes <microhttpd.h>
 * (STYLE "each foreign library from one adapter file"). It binds the
 * listen socket, reads each request (its body bounded by
 * limits.body_bytes), hands it to api_handle() as a struct api_req and
 * sends back the struct api_resp. docs/interfaces/api.md, "The server";
 * docs/operations/scaling.md, "HTTP threading", has the figures.
 *
 * How libmicrohttpd is used, and why:
 *   - two ways to run connections (server.http_threads):
 *       N > 0  (the default: one per CPU, 2 to 16) a pool of N threads,
 *              each polling its share of the connections with epoll
 *              (MHD_USE_EPOLL, internal threads,
 *              MHD_OPTION_THREAD_POOL_SIZE): idle connections cost no
 *              thread. A request that may wait (may_wait(): every one but
 *              GET and HEAD waits for its commit; a `wait` query
 *              parameter is a long poll) must not hold a pool thread: its
 *              connection is suspended (MHD_suspend_connection). A start
 *              is queued to the engine with api_begin(), whose callback
 *              (the engine's thread, after the commit) only resumes the
 *              connection; the pool thread then makes the answer
 *              (api_end()) and sends it: no thread waits. A start
 *              with ?wait= goes to the engine the same way, from the
 *              pool thread; once it is committed, a waiter makes its
 *              answer (the wait for its end). A task poll
 *              that finds tasks ready is answered by the pool thread
 *              itself (api_try_now()). Any other such request is a job
 *              for a waiter thread, which runs it and resumes the
 *              connection; idle waiters beyond WAITERS_KEEP
 *              end after WAITER_IDLE_MS. An event stream with nothing to
 *              send suspends its connection too, and a waiter sleeps on
 *              the outbox for it (stream_reader).
 *       0      one thread per connection (MHD_USE_THREAD_PER_CONNECTION,
 *              poll() rather than select() so descriptors past 1024
 *              work): a request that waits simply blocks in its
 *              connection's thread.
 *     With a thread per connection, each request costs its thread two
 *     wake-ups (its bytes, its commit); the pool handles the answers of
 *     one commit and the requests that came meanwhile in one wake-up, and
 *     `bench http` measured it at about a fifth less server CPU per
 *     workflow (docs/operations/scaling.md, "HTTP threading"). Either
 *     way a client that sends half a request and stalls holds no one
 *     else's thread, and idle or stalled connections are closed after
 *     conn_timeout_s.
 *   - the listen socket is ours: SO_REUSEADDR (a restarted server listens
 *     at once), close-on-exec (children of `exec` steps must not keep it),
 *     and exact errors when the address is taken.
 *   - the URL and query are taken as received (a no-op unescape callback)
 *     and decoded by api_req_init() / api_req_add_query(): "%2F" stays
 *     inside its path segment.
 *
 * The access handler is called (1) once the headers are in, (2) once per
 * piece of body, (3) once more when the body is complete, and (4) once
 * more after a suspended connection is resumed. A Content-Length over the
 * limit is answered 413 at (1), before any of the body is read. Every
 * other response is queued at (3) or (4): queueing at (1) a response to a
 * request without a body breaks keep-alive in this libmicrohttpd (every
 * connection closes after one reply). A body that grows over the limit
 * (chunked) is read to its end and dropped, then answered 413
 * (libmicrohttpd cannot queue a response in the middle of a body); one
 * that goes on past DROP_MAX is cut off.
 *
 * What must stay true (pool mode):
 *  1. A suspended connection has no timeout of its own and its client's
 *     hang-up goes unnoticed by libmicrohttpd: the long poll's own limits
 *     end it (server.max_wait through api_wait_cap(), a slice after
 *     api_stop(), and conn_gone() between slices of a task poll).
 *  2. Once a waiter (or api_begin's callback) resumes a connection it
 *     touches neither the connection nor its struct http_req again: the
 *     pool thread may answer, finish and free them at once.
 *  3. libmicrohttpd must not be stopped with a suspended connection (it
 *     aborts): every suspended request is counted in `busy` until it is
 *     resumed, no request is suspended once `waiters_stop` is set (under
 *     mu), and the waiters run every queued job before they end.
 *  4. A request resumed with its answer is counted in `answering` until
 *     libmicrohttpd has finished it (on_completed): the stop waits for
 *     those too, or it would close a connection whose answer (a long
 *     poll's, ended by the stop) is not sent yet (resume_answered).
 */
#include "common/compat.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "api.h"
#include "../common/duration.h"
#include "../common/log.h"
#include "../common/util.h"

/* A chunked body that grows over the limit is read to its end and dropped
 * before the 413; past this many bytes the connection is closed instead. */
#define DROP_MAX (UINT64_C(64) << 20)

/* libmicrohttpd's memory pool per connection (server_start). */
#define HTTP_CONN_MEMORY (16 * 1024)

/* Waiter threads kept when idle; the others end after WAITER_IDLE_MS. */
#define WAITERS_KEEP 4
#define WAITER_IDLE_MS 30000

/* What a waiter runs: a request that may wait, or the wait of a stream
 * with nothing to send yet. */
struct http_job {
    void (*run)(struct http_server *s, struct http_job *j);
    struct MHD_Connection *conn; /* suspended until run() resumes it */
    struct http_job *next;       /* in s->jobs */
};

struct http_waiter {
    struct http_server *s;
    pthread_t th;
    int exited; /* under s->mu: the thread has ended, join it */
    struct http_waiter *next;
};

struct http_server {
    struct MHD_Daemon *d;
    struct api *api;
    struct http_options opt;
    size_t body_max;
    int fd;
    char address[128];
    atomic_int busy;      /* requests inside api_handle() or suspended (invariant 3) */
    atomic_int answering; /* resumed with an answer not yet sent (invariant 4) */

    /* pool mode: long polls queued for the waiters */
    pthread_mutex_t mu;
    pthread_cond_t cv; /* a job, or waiters_stop */
    struct http_job *jobs, **jobs_tail;
    int n_jobs, n_idle, n_waiters;
    int waiters_stop;
    struct http_waiter *waiters;
};

enum http_req_state {
    REQ_READING,   /* (1) and (2) */
    REQ_SUSPENDED, /* queued for a waiter, or being run by one; or api_begin's work queued */
    REQ_ANSWERED,  /* a waiter has the response in resp: send it at (4) */
    REQ_ENDED,     /* api_begin's work has ended: api_end makes the answer at (4) */
};

/* One request: the connection's con_cls from (1) to its completion. */
struct http_req {
    struct wfo_buf body;
    int too_big;
    uint64_t dropped;       /* body bytes read and dropped after too_big */
    const char *bad_length; /* why its framing is refused (400), or NULL */
    int64_t t0;
    enum http_req_state state;
    /* from (3) to the response queued */
    struct api_req req;
    struct api_resp resp;
    int have_req, have_resp;
    struct http_job job;    /* a waiter's; its conn also api_begin's */
    struct http_server *s;  /* for later_done */
    struct api_later later; /* api_begin's */
    int answering;          /* counted in s->answering (invariant 4) */
};

/* ---- the listen address ---- */

static int is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a))
            return 1;
        return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
    }
    return 0;
}

static void addr_format(const struct sockaddr *sa, char *out, size_t size)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        port = ntohs(in->sin_port);
        snprintf(out, size, "%s:%d", host, port);
    } else {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        port = ntohs(in6->sin6_port);
        snprintf(out, size, "[%s]:%d", host, port);
    }
}

/* "ADDR:PORT" or "[V6]:PORT" into host and port. */
static int listen_split(const char *listen, char *host, size_t hsize, char *port, size_t psize,
                        struct wfo_error *err)
{
    const char *colon;
    if (listen[0] == '[') {
        const char *end = strchr(listen, ']');
        if (!end || end[1] != ':')
            goto bad;
        snprintf(host, hsize, "%.*s", (int)(end - listen - 1), listen + 1);
        colon = end + 1;
    } else {
        colon = strrchr(listen, ':');
        if (!colon || memchr(listen, ':', (size_t)(colon - listen)))
            goto bad;
        snprintf(host, hsize, "%.*s", (int)(colon - listen), listen);
    }
    int64_t p;
    if (wfo_parse_int64(colon + 1, &p) < 0 || p < 0 || p > 65535)
        goto bad;
    snprintf(port, psize, "%d", (int)p);
    if (!host[0])
        snprintf(host, hsize, "0.0.0.0");
    return 0;
bad:
    return wfo_error_set(err, WFO_EINVAL, "listen: '%s' is not ADDR:PORT or [ADDR]:PORT", listen);
}

/* The address to listen on, in *res (freeaddrinfo), or WFO_EINVAL: not
 * ADDR:PORT, not resolved, or not a loopback one without allow_public. */
static int listen_resolve(const char *listen, int allow_public, struct addrinfo **res,
                          struct wfo_error *err)
{
    char host[256], port[16];
    struct addrinfo hints = {0};
    int rc = listen_split(listen, host, sizeof(host), port, sizeof(port), err);
    *res = NULL;
    if (rc < 0)
        return rc;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int g = getaddrinfo(host, port, &hints, res);
    if (g != 0) {
        *res = NULL;
        return wfo_error_set(err, WFO_EINVAL, "listen: '%s': %s", listen, gai_strerror(g));
    }
    if (!allow_public && !is_loopback((*res)->ai_addr)) {
        freeaddrinfo(*res);
        *res = NULL;
        return wfo_error_set(err, WFO_EINVAL,
                             "listen: refusing to serve '%s' without authentication: configure "
                             "auth.tokens, or listen on a loopback address (127.0.0.1, ::1)",
                             listen);
    }
    return 0;
}

int http_listen_check(const char *listen, int allow_public, struct wfo_error *err)
{
    struct addrinfo *res;
    int rc = listen_resolve(listen, allow_public, &res, err);
    if (res)
        freeaddrinfo(res);
    return rc;
}

static int listen_open(struct http_server *s, struct wfo_error *err)
{
    struct addrinfo *res;
    int rc = listen_resolve(s->opt.listen, s->opt.allow_public, &res, err);
    if (rc < 0)
        return rc;
    s->fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->fd < 0) {
        rc = wfo_error_set(err, WFO_EIO, "listen: socket: %s", strerror(errno));
        goto out;
    }
    int one = 1;
    setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (res->ai_family == AF_INET6) {
        /* "[::]:PORT" serves IPv4 too (dual stack); any other v6 address only itself */
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)res->ai_addr)->sin6_addr;
        int v6only = !IN6_IS_ADDR_UNSPECIFIED(a6);
        setsockopt(s->fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
    }
    if (bind(s->fd, res->ai_addr, res->ai_addrlen) < 0 || listen(s->fd, 1024) < 0) {
        rc = wfo_error_set(err, WFO_EIO, "listen: %s: %s", s->opt.listen, strerror(errno));
        goto out;
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(s->fd, (struct sockaddr *)&ss, &len) == 0)
        addr_format((struct sockaddr *)&ss, s->address, sizeof(s->address));
    else
        snprintf(s->address, sizeof(s->address), "%s", s->opt.listen);
out:
    freeaddrinfo(res);
    return rc;
}

/* ---- requests ---- */

static size_t no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    return strlen(s);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct wfo_buf b = WFO_BUF_INIT;
    wfo_buf_vaddf(&b, fmt, ap);
    while (b.len && (b.buf[b.len - 1] == '\n' || b.buf[b.len - 1] == '\r'))
        b.buf[--b.len] = 0;
    wfo_debug(NULL, NULL, "http: %s", b.buf);
    wfo_buf_release(&b);
}

static enum MHD_Result add_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *value)
{
    api_req_add_query(cls, key, value);
    return MHD_YES;
}

static const char *conn_header(void *conn, const char *name)
{
    return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
}

/* Has the client gone? Its socket reads EOF or hangs up. A request is
 * fully read before it is handled, so pending bytes are a pipelined request,
 * not an end. */
static int conn_gone(void *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return 0;
    struct pollfd p = {.fd = ci->connect_fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) != 1)
        return 0;
    if (p.revents & (POLLHUP | POLLRDHUP | POLLERR))
        return 1;
    char ch;
    return recv(ci->connect_fd, &ch, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

/* A streamed body (api_stream) being sent. */
struct http_stream {
    struct api_stream *st;
    struct http_server *s;
    struct http_job job; /* pool mode: its wait for more */
};

static int suspend_for_waiter(struct http_server *s, struct MHD_Connection *c, struct http_job *j);

/* libmicrohttpd calls this whenever it can send more. With a thread per
 * connection, read() blocks that thread until there is some. In pool
 * mode a pool thread must not block: with nothing ready, the connection
 * is suspended, a waiter sleeps in wait() and resumes it, and this is
 * called again. */
static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct http_stream *hs = cls;
    long n;
    if (hs->s->opt.threads > 0) {
        n = hs->st->try_read(hs->st, buf, max);
        if (n == 0 && suspend_for_waiter(hs->s, hs->job.conn, &hs->job) == 0)
            return 0;
        if (n == 0)
            n = -1; /* stopping */
    } else {
        n = hs->st->read(hs->st, buf, max);
    }
    return n > 0 ? (ssize_t)n : (ssize_t)MHD_CONTENT_READER_END_OF_STREAM;
}

/* A waiter: sleeps until the stream may have more, then resumes its
 * connection (invariant 2: hs is not touched after that). */
static void stream_wait_run(struct http_server *s, struct http_job *j)
{
    struct http_stream *hs = (struct http_stream *)((char *)j - offsetof(struct http_stream, job));
    hs->st->wait(hs->st);
    MHD_resume_connection(j->conn);
    atomic_fetch_sub(&s->busy, 1);
}

static void stream_free(void *cls)
{
    struct http_stream *hs = cls;
    hs->st->free(hs->st);
    free(hs);
}

static enum MHD_Result respond(struct http_server *s, struct MHD_Connection *c,
                               struct api_resp *resp)
{
    char *body = NULL;
    size_t len = 0;
    const char *type = NULL;
    struct MHD_Response *r;
    if (resp->stream) {
        /* ours from here: freed by libmicrohttpd when the response ends */
        struct http_stream *hs = wfo_calloc(1, sizeof(*hs));
        hs->st = resp->stream;
        hs->s = s;
        hs->job.run = stream_wait_run;
        hs->job.conn = c;
        resp->stream = NULL;
        r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_reader, hs,
                                              stream_free);
        if (!r) {
            stream_free(hs);
            return MHD_NO;
        }
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, resp->content_type);
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
        MHD_add_response_header(r, "X-Accel-Buffering", "no");
        enum MHD_Result ret = MHD_queue_response(c, (unsigned)resp->status, r);
        MHD_destroy_response(r);
        return ret;
    }
    api_resp_body(resp, &body, &len, &type);
    r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (resp->allow[0])
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, resp->allow);
    if (resp->challenge)
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (atomic_load(&s->api->stopping))
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)resp->status, r);
    MHD_destroy_response(r);
    return ret;
}

/* A Content-Length of digits only: its value, UINT64_MAX when it does not
 * fit (still over any limit). -1 otherwise (libmicrohttpd answers it). */
static int parse_length(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s < '0' || *s > '9')
        return -1;
    for (; *s >= '0' && *s <= '9'; s++)
        v = v > (UINT64_MAX - 9) / 10 ? UINT64_MAX : v * 10 + (uint64_t)(*s - '0');
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s)
        return -1;
    *out = v;
    return 0;
}

struct length_count {
    const char *first;
    int differ;
};

static enum MHD_Result count_length(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    struct length_count *n = cls;
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0 && n->first && value &&
        strcmp(n->first, value) != 0)
        n->differ = 1;
    return MHD_YES;
}

/* Why the request's body cannot be framed without guessing, or NULL:
 * two Content-Length headers that differ (libmicrohttpd takes the first,
 * a proxy in front may take the other: request smuggling), or one beside
 * Transfer-Encoding (RFC 9112 6.3: an error a server ought to refuse). */
static const char *bad_length(struct MHD_Connection *c, const char *cl)
{
    if (!cl)
        return NULL;
    struct length_count n = {cl, 0};
    MHD_get_connection_values(c, MHD_HEADER_KIND, count_length, &n);
    if (n.differ)
        return "request: Content-Length headers that differ";
    if (MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING))
        return "request: Content-Length beside Transfer-Encoding";
    return NULL;
}

static void log_request(const struct api_req *req, int status, int64_t t0)
{
    if (wfo_log_enabled(WFO_LOG_DEBUG))
        wfo_debug(NULL, NULL, "http %s %s -> %d (%lld ms)", req->method, req->path, status,
                  (long long)(wfo_mono_ms() - t0));
}

/* Sends the response in rq and lets go of the request's parts. */
static enum MHD_Result reply(struct http_server *s, struct MHD_Connection *c, struct http_req *rq)
{
    log_request(&rq->req, rq->resp.status, rq->t0);
    enum MHD_Result ret = respond(s, c, &rq->resp);
    api_resp_release(&rq->resp);
    api_req_release(&rq->req);
    rq->have_req = rq->have_resp = 0;
    return ret;
}

/* Might this request wait (pool mode hands it to a waiter)? Every request
 * but GET and HEAD changes something and waits for its commit; a GET
 * with a `wait` query parameter over 0 is a long poll (GET
 * /v1/executions/{id}?wait=). A malformed `wait` is answered 400 at once. */
static int may_wait(const struct api_req *req)
{
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0)
        return 1;
    struct wfo_error ignore = WFO_ERROR_INIT;
    int64_t ms = 0;
    return api_query_duration(req, "wait", &ms, &ignore) == 0 && ms > 0;
}

static int waiter_spawn(struct http_server *s);

/* Suspends c, counted in busy before anyone can resume it (invariant 3);
 * under s->mu. -1 when the waiters are stopping: nothing is suspended. */
static int suspend_counted(struct http_server *s, struct MHD_Connection *c)
{
    if (s->waiters_stop)
        return -1;
    atomic_fetch_add(&s->busy, 1);
    MHD_suspend_connection(c);
    return 0;
}

/* Queues j (its connection suspended, counted in busy) for a waiter;
 * under s->mu. */
static void queue_job_locked(struct http_server *s, struct http_job *j)
{
    j->next = NULL;
    *s->jobs_tail = j;
    s->jobs_tail = &j->next;
    s->n_jobs++;
    if (s->n_jobs > s->n_idle)
        waiter_spawn(s); /* when it cannot, a busy waiter takes the job later */
    pthread_cond_signal(&s->cv);
}

/* Pool mode: suspends c and queues j for a waiter. 0 when done; -1 when
 * the waiters are stopping (the caller answers the request itself). */
static int suspend_for_waiter(struct http_server *s, struct MHD_Connection *c, struct http_job *j)
{
    pthread_mutex_lock(&s->mu);
    j->conn = c;
    if (suspend_counted(s, c) < 0) {
        pthread_mutex_unlock(&s->mu);
        return -1;
    }
    queue_job_locked(s, j);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static void waiter_run(struct http_server *s, struct http_job *j);

/* Pool mode: rq is run by a waiter (suspend_for_waiter). */
static int suspend_request(struct http_server *s, struct MHD_Connection *c, struct http_req *rq)
{
    rq->state = REQ_SUSPENDED;
    rq->job.run = waiter_run;
    return suspend_for_waiter(s, c, &rq->job);
}

/* Resumes rq's suspended connection, its answer in resp (REQ_ANSWERED)
 * or to be made by the pool thread (REQ_ENDED): counted in `answering`
 * until libmicrohttpd is done with it (invariant 4). Neither rq nor its
 * connection is ours afterwards (invariant 2). */
static void resume_answered(struct http_server *s, struct http_req *rq)
{
    rq->answering = 1;
    atomic_fetch_add(&s->answering, 1);
    MHD_resume_connection(rq->job.conn);
    atomic_fetch_sub(&s->busy, 1);
}

/* A waiter makes the answer of api_begin's work that may still wait (a
 * start's ?wait=), then resumes the connection (invariant 2). */
static void later_end_run(struct http_server *s, struct http_job *j)
{
    struct http_req *rq = (struct http_req *)((char *)j - offsetof(struct http_req, job));
    api_end(s->api, &rq->req, &rq->resp, &rq->later);
    rq->state = REQ_ANSWERED;
    resume_answered(s, rq);
}

/* api_begin's work has ended (the engine's thread): the pool thread
 * makes the answer, or a waiter when the answer may wait (the start was
 * posted from the pool thread, without a hand-off to a waiter before
 * the engine has it). After the resume neither rq nor its connection is
 * ours (invariant 2). */
static void later_done(void *ud)
{
    struct http_req *rq = ud;
    struct http_server *s = rq->s;
    if (rq->later.end_waits) {
        pthread_mutex_lock(&s->mu);
        /* busy counts rq, so the waiters are not stopping (invariant 3) */
        int queued = !s->waiters_stop;
        if (queued) {
            rq->job.run = later_end_run;
            queue_job_locked(s, &rq->job);
        }
        pthread_mutex_unlock(&s->mu);
        if (queued)
            return;
    }
    rq->state = REQ_ENDED;
    resume_answered(s, rq);
}

/* Pool mode: suspends c and queues rq's work with api_begin, which the
 * engine answers without a thread waiting for it; an answer made at once
 * (a refusal) resumes c here. 0 when done; -1 when the server is stopping
 * (the caller handles the request itself). */
static int suspend_for_later(struct http_server *s, struct MHD_Connection *c, struct http_req *rq)
{
    pthread_mutex_lock(&s->mu);
    int rc = suspend_counted(s, c); /* before the engine can answer */
    pthread_mutex_unlock(&s->mu);
    if (rc < 0)
        return -1;
    rq->state = REQ_SUSPENDED;
    rq->job.conn = c;
    rq->s = s;
    rq->later.done = later_done;
    rq->later.ud = rq;
    if (api_begin(s->api, &rq->req, &rq->resp, &rq->later))
        return 0;
    /* answered without the engine: nobody else resumes it */
    rq->state = REQ_ANSWERED;
    resume_answered(s, rq);
    return 0;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    struct http_server *s = cls;
    struct http_req *rq = *con_cls;

    if (!rq) {
        /* (1) the headers are in */
        rq = wfo_calloc(1, sizeof(*rq));
        wfo_buf_init(&rq->body, s->body_max);
        rq->t0 = wfo_mono_ms();
        *con_cls = rq;
        const char *cl =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        uint64_t n;
        if ((rq->bad_length = bad_length(c, cl))) {
            rq->too_big = 1; /* answered now; the body, if any, dropped */
            goto answer;
        }
        if (!cl || parse_length(cl, &n) < 0)
            return MHD_YES;
        if (n <= s->body_max) {
            /* room for the whole body at once, rather than growing to it */
            if (n > 0)
                wfo_buf_grow(&rq->body, (size_t)n);
            return MHD_YES;
        }
        rq->too_big = 1;
        goto answer;
    }
    if (rq->state == REQ_ANSWERED) /* (4) resumed: a waiter has the answer */
        return reply(s, c, rq);
    if (rq->state == REQ_ENDED) { /* (4) resumed: the engine has answered */
        api_end(s->api, &rq->req, &rq->resp, &rq->later);
        rq->state = REQ_ANSWERED;
        return reply(s, c, rq);
    }
    if (rq->state == REQ_SUSPENDED) /* not expected: resumed only once answered */
        return MHD_YES;
    if (*upload_data_size) {
        /* (2) a piece of body */
        if (!rq->too_big && wfo_buf_add(&rq->body, upload_data, *upload_data_size) < 0) {
            rq->too_big = 1;
            wfo_buf_release(&rq->body);
        }
        if (rq->too_big) {
            rq->dropped += *upload_data_size;
            /* this libmicrohttpd cannot answer in the middle of a body:
             * read and drop it, up to a bound, then hang up */
            if (rq->dropped > DROP_MAX) {
                wfo_debug(NULL, NULL, "http %s %s: body over %llu bytes, closing", method, url,
                          (unsigned long long)DROP_MAX);
                return MHD_NO;
            }
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
answer:
    /* (3) the body is complete (or refused at (1)) */
    api_req_init(&rq->req, method, url);
    rq->have_req = 1;
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, add_arg, &rq->req);
    api_req_set_content_type(
        &rq->req, MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE));
    rq->req.header = conn_header;
    rq->req.gone = conn_gone;
    rq->req.conn = c;
    rq->have_resp = 1;
    if (rq->bad_length) {
        api_refuse(s->api, &rq->req, &rq->resp, 400, WFO_EINVAL, rq->bad_length);
    } else if (rq->too_big) {
        char msg[128];
        snprintf(msg, sizeof(msg), "the body is larger than the limit of %zu bytes", s->body_max);
        api_refuse(s->api, &rq->req, &rq->resp, 413, WFO_ETOOBIG, msg);
    } else {
        rq->req.body = rq->body.len ? rq->body.buf : NULL;
        rq->req.body_len = rq->body.len;
        int now = 0;
        if (s->opt.threads > 0 && may_wait(&rq->req)) {
            atomic_fetch_add(&s->busy, 1);
            now = api_try_now(s->api, &rq->req, &rq->resp);
            atomic_fetch_sub(&s->busy, 1);
            if (!now && (api_can_later(s->api, &rq->req) ? suspend_for_later(s, c, rq)
                                                         : suspend_request(s, c, rq)) == 0)
                return MHD_YES;
        }
        if (!now) {
            atomic_fetch_add(&s->busy, 1);
            api_handle(s->api, &rq->req, &rq->resp);
            atomic_fetch_sub(&s->busy, 1);
        }
    }
    return reply(s, c, rq);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_server *s = cls;
    struct http_req *rq = *con_cls;
    if (!rq)
        return;
    if (rq->answering)
        atomic_fetch_sub(&s->answering, 1);
    if (rq->state == REQ_ENDED) /* the client left before (4): the start is done all the same */
        api_end(s->api, &rq->req, &rq->resp, &rq->later);
    if (rq->have_resp)
        api_resp_release(&rq->resp);
    if (rq->have_req)
        api_req_release(&rq->req);
    wfo_buf_release(&rq->body);
    free(rq);
    *con_cls = NULL;
}

/* ---- waiters (pool mode): threads that run the requests that may wait ---- */

/* Runs one job; after the resume, neither rq nor its connection is ours
 * (invariant 2). */
static void waiter_run(struct http_server *s, struct http_job *j)
{
    struct http_req *rq = (struct http_req *)((char *)j - offsetof(struct http_req, job));
    api_handle(s->api, &rq->req, &rq->resp);
    rq->state = REQ_ANSWERED;
    resume_answered(s, rq);
}

static void *waiter_main(void *arg)
{
    struct http_waiter *w = arg;
    struct http_server *s = w->s;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        struct http_job *j = s->jobs;
        if (j) {
            s->jobs = j->next;
            if (!s->jobs)
                s->jobs_tail = &s->jobs;
            s->n_jobs--;
            pthread_mutex_unlock(&s->mu);
            j->run(s, j);
            pthread_mutex_lock(&s->mu);
            continue;
        }
        if (s->waiters_stop) /* only once the queue is empty (invariant 3) */
            break;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += WAITER_IDLE_MS / 1000;
        s->n_idle++;
        int rc = pthread_cond_timedwait(&s->cv, &s->mu, &ts);
        s->n_idle--;
        if (rc != 0 && !s->jobs && !s->waiters_stop && s->n_waiters > WAITERS_KEEP)
            break;
    }
    s->n_waiters--;
    w->exited = 1;
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* Starts one more waiter, first joining those that have ended; under
 * s->mu. WFO_EIO when no thread can be made. */
static int waiter_spawn(struct http_server *s)
{
    for (struct http_waiter **p = &s->waiters; *p;) {
        struct http_waiter *w = *p;
        if (w->exited) {
            *p = w->next;
            pthread_join(w->th, NULL);
            free(w);
        } else {
            p = &w->next;
        }
    }
    struct http_waiter *w = wfo_calloc(1, sizeof(*w));
    w->s = s;
    if (pthread_create(&w->th, NULL, waiter_main, w) != 0) {
        free(w);
        wfo_warn(NULL, NULL, "http: cannot start a thread for a request that waits (%d running)",
                 s->n_waiters);
        return WFO_EIO;
    }
    w->next = s->waiters;
    s->waiters = w;
    s->n_waiters++;
    return 0;
}

/* Ends every waiter once the queue is empty and joins them. */
static void waiters_stop(struct http_server *s)
{
    pthread_mutex_lock(&s->mu);
    s->waiters_stop = 1;
    pthread_cond_broadcast(&s->cv);
    struct http_waiter *list = s->waiters;
    s->waiters = NULL;
    pthread_mutex_unlock(&s->mu);
    while (list) {
        struct http_waiter *w = list;
        list = w->next;
        pthread_join(w->th, NULL);
        free(w);
    }
}

/* ---- the server ---- */

static void server_free(struct http_server *s)
{
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

int http_server_start(struct api *a, const struct http_options *opt, struct http_server **out,
                      struct wfo_error *err)
{
    struct http_server *s = wfo_calloc(1, sizeof(*s));
    int rc;
    s->api = a;
    s->opt = *opt;
    s->fd = -1;
    s->body_max = a->opt.body_max;
    atomic_init(&s->busy, 0);
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    s->jobs_tail = &s->jobs;
    if (!s->opt.conn_timeout_s)
        s->opt.conn_timeout_s = 60;
    if (!s->opt.max_connections)
        s->opt.max_connections = 10000;
    rc = listen_open(s, err);
    if (rc < 0)
        goto fail;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (s->opt.threads > 0) {
        flags |= MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME;
        /* one waiter from the start: a long poll always has one to go to */
        pthread_mutex_lock(&s->mu);
        rc = waiter_spawn(s);
        pthread_mutex_unlock(&s->mu);
        if (rc < 0) {
            rc = wfo_error_set(err, WFO_EIO, "listen: %s: cannot start a thread", s->opt.listen);
            goto fail;
        }
    } else {
        flags |= MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL | MHD_USE_ITC;
    }
    if (strchr(s->address, '['))
        flags |= MHD_USE_IPv6;
    struct MHD_OptionItem ops[] = {
        {MHD_OPTION_LISTEN_SOCKET, (intptr_t)s->fd, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)s->opt.conn_timeout_s, NULL},
        {MHD_OPTION_CONNECTION_LIMIT, (intptr_t)s->opt.max_connections, NULL},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, s},
        {MHD_OPTION_UNESCAPE_CALLBACK, (intptr_t)no_unescape, s},
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, s},
        /* A connection's memory pool holds the request line, the headers
         * and the read and write buffers (bodies stream through it in
         * pieces). libmicrohttpd zeroes what was used of it after every
         * request, and its read buffer grows to fill the pool: with the
         * default 32 KiB that memset was 40 % of a connection thread's
         * instructions (callgrind, bench http). 16 KiB still takes a
         * request line and headers of 8 KiB. */
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)HTTP_CONN_MEMORY, NULL},
        /* one polling thread is no pool to libmicrohttpd */
        {s->opt.threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END,
         (intptr_t)s->opt.threads, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    s->d =
        MHD_start_daemon(flags, 0, NULL, NULL, on_access, s, MHD_OPTION_ARRAY, ops, MHD_OPTION_END);
    if (!s->d) {
        rc =
            wfo_error_set(err, WFO_EIO, "listen: %s: the HTTP server did not start", s->opt.listen);
        goto fail;
    }
    *out = s;
    return 0;
fail:
    waiters_stop(s);
    if (s->fd >= 0)
        close(s->fd);
    server_free(s);
    return rc;
}

const char *http_server_address(const struct http_server *s)
{
    return s->address;
}

/* Stops accepting and frees the address at once (a restarted server
 * listens on it): an eventfd, never readable, takes the listen socket's
 * descriptor (dup3), so the socket is closed and leaves every epoll set,
 * and libmicrohttpd, which still holds the number, closes the eventfd at
 * MHD_stop_daemon. MHD_quiesce_daemon would be the documented way, but
 * with an epoll thread pool libmicrohttpd 0.9.75 (and 0.9.77) takes the
 * socket out of each worker's epoll set while the worker may be doing the
 * same, and aborts the process when it loses that race ("Failed to remove
 * listen FD from epoll set": once in `make test`, at a SIGTERM). */
static void listen_close(struct http_server *s)
{
    int never = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (never >= 0 && dup3(never, s->fd, O_CLOEXEC) >= 0) {
        close(never);
        return;
    }
    wfo_warn(NULL, NULL, "http: cannot close the listen socket before the shutdown: %s",
             strerror(errno));
    if (never >= 0)
        close(never);
}

int http_server_stop(struct http_server *s)
{
    if (!s)
        return 0;
    api_stop(s->api);
    listen_close(s);
    /* requests being handled finish (long polls end within a slice), and
     * their answers are sent (invariant 4) */
    int64_t until = wfo_mono_ms() + (s->opt.shutdown_ms > 0 ? s->opt.shutdown_ms : 10000);
    while ((atomic_load(&s->busy) > 0 || atomic_load(&s->answering) > 0) && wfo_mono_ms() < until) {
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    int busy = atomic_load(&s->busy);
    if (busy > 0) {
        /* their threads are inside the engine: neither joining them nor
         * freeing what they use is safe */
        wfo_err(NULL, NULL, "http: %d requests still being handled after the shutdown timeout",
                busy);
        return WFO_ETIMEOUT;
    }
    /* every suspended request has been resumed (invariant 3); what is
     * still queued runs (answered 503) before the waiters end */
    waiters_stop(s);
    /* closes every connection and joins their threads */
    MHD_stop_daemon(s->d);
    server_free(s);
    return 0;
}
