/*
 * api.h - the HTTP/JSON API of SPEC 4, apart from the HTTP library.
 * docs/interfaces/api.md describes it from outside.
 *
 * The path of a request:
 *
 *   http.c      the only file that includes <microhttpd.h>: the daemon,
 *               the body (bounded by limits.body_bytes), and turning each
 *               request into a struct api_req and each struct api_resp
 *               into a response.
 *   routes.c    api_handle(): the route table (method + path pattern ->
 *               handler, the role it needs), 404/405, the request decoding
 *               every handler shares (JSON/YAML bodies, typed fields,
 *               query parameters, list cursors) and the error documents.
 *   workflows.c executions.c tasks.c ops.c events.c stream.c
 *   subscriptions.c
 *               the handlers, one file per resource.
 *
 * api_handle() needs no socket, so tests/fuzz/fuzz_request.c drives it
 * directly with made-up requests.
 *
 * Threads: a handler may block its thread (long polls wait on the
 * engine's conditions, a start waits for its commit); http.c calls
 * api_handle() from many threads at once: its pool threads, the waiter
 * threads it gives the requests that may wait, or one thread per
 * connection (http_options.threads). struct api is read-only once made,
 * except for the metrics (own lock) and `stopping`.
 */
#ifndef WFO_API_API_H
#define WFO_API_API_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "wfo/wfo.h"
#include "../common/buf.h"
#include "../common/json.h"

#define API_MAX_SEGS 8   /* path segments; no route has more */
#define API_MAX_PARAMS 4 /* {name} parts of a pattern */
/* Long polls (`?wait=`, tasks/poll `wait`) wait in slices this long, so a
 * shutting-down server gets its threads back within one slice. */
#define API_WAIT_SLICE_MS 1000

/* Roles of SPEC 4, each allowed everything of the ones before it. A route
 * names the least role that may call it; API_PUBLIC needs no token. The
 * check is made once, in api_handle(), from the route table
 * (docs/operations/security.md). */
enum api_role { API_PUBLIC, API_READER, API_WORKER, API_OPERATOR, API_ADMIN };

/* A configured token, as the configuration gives it (only its digest). */
struct api_token_conf {
    const char *sha256_hex; /* 64 hex digits */
    const char *ns;
    const char *role; /* reader | worker | operator | admin */
    const char *name; /* for the audit log; NULL: "sha256:" + a digest prefix */
};

struct api_options {
    const char *ns;                      /* the namespace served without tokens: "default" */
    const struct api_token_conf *tokens; /* none: no authentication (loopback only) */
    int n_tokens;
    size_t payload_max;        /* limits.payload_bytes: input/output over it is a 400 */
    int long_polls_per_token;  /* waiting requests one token may hold; 0: no limit */
    size_t body_max;           /* limits.body_bytes: bodies over it get 413 */
    int64_t max_wait_ms;       /* cap on `?wait=` and tasks/poll `wait` */
    const char *cursor_secret; /* keys cursors only without an engine (tests); else the
                                  store's server key does */
    int deny_private; /* http.deny_private: webhook URLs with a literal private host are a 400 */
};

/* ---- requests and responses: plain values, filled by the transport ---- */

struct api_kv {
    char *key, *value; /* decoded; value "" when the parameter had no '=' */
};

struct api_req {
    char method[16];
    char *path;               /* as received (not decoded), for logs */
    char *segs[API_MAX_SEGS]; /* decoded path segments */
    int n_segs;
    int bad_target; /* bad %-escape, NUL, invalid UTF-8, too many segments */
    struct api_kv *query;
    int n_query, alloc_query;
    char *content_type; /* media type, lower case, no parameters; NULL: none */
    const char *body;   /* borrowed from the transport; NULL when empty */
    size_t body_len;
    /* set by api_handle() */
    const char *params[API_MAX_PARAMS]; /* the pattern's {name} parts, in order */
    const char *route;                  /* the matched pattern ("/v1/executions/{id}") */
    const char *ns;        /* the caller's namespace; NULL: anonymous on a public route */
    const char *who;       /* the caller for logs: a token's name or digest prefix */
    struct api_token *tok; /* the caller's token; NULL without one */
    int waiting;           /* counted in tok's long polls (api_wait_begin) */
    char *workflow; /* for the audit line, set by a handler after which it cannot be read (a delete)
                     */
    /* the transport's headers, for the handlers that need one */
    const char *(*header)(void *conn, const char *name);
    /* 1 when the client has closed its side (long polls give up); may be NULL */
    int (*gone)(void *conn);
    void *conn;
};

/* method and raw_path are copied; raw_path is split at '/' and each segment
 * %-decoded. */
void api_req_init(struct api_req *r, const char *method, const char *raw_path);
/* Adds one query parameter given as received (%-escapes and '+'). */
void api_req_add_query(struct api_req *r, const char *raw_key, const char *raw_value);
/* Adds every parameter of a query string "a=1&b=2". */
void api_req_parse_query(struct api_req *r, const char *qs);
/* "Application/JSON; charset=utf-8" -> "application/json". */
void api_req_set_content_type(struct api_req *r, const char *header);
void api_req_release(struct api_req *r);
/* The first value of a query parameter (borrowed), or NULL. */
const char *api_query(const struct api_req *r, const char *key);
/* A request header (borrowed from the transport), or NULL. */
const char *api_header(const struct api_req *r, const char *name);

/* A body streamed for as long as the client stays (GET /v1/events/stream):
 * read() puts up to max bytes into buf, waiting until some are ready, and
 * returns their count (never 0), or -1 at the end; free() lets it go. The
 * transport calls read() on the connection's thread. */
struct api_stream {
    /* up to max bytes into buf, waiting for some: the count, or -1 at the end */
    long (*read)(struct api_stream *st, char *buf, size_t max);
    /* read without waiting: 0 when nothing is ready yet, then wait()
     * (which returns when there may be more, or after a slice) */
    long (*try_read)(struct api_stream *st, char *buf, size_t max);
    void (*wait)(struct api_stream *st);
    void (*free)(struct api_stream *st);
};

struct api_resp {
    struct api_stream *stream; /* a streamed body (of content_type), or: */
    int status;
    json_t *json; /* the body, or: */
    char *text;   /* a body of another type (owned) */
    size_t text_len;
    const char *content_type; /* of text (static string) */
    char allow[128];          /* 405: the Allow header */
    int challenge;            /* 401: send WWW-Authenticate: Bearer */
};

void api_resp_release(struct api_resp *r);
/* Sets r to {"error": {"type", "message"}} with status (any bytes in
 * message are kept: the serializer makes them valid UTF-8). */
void api_resp_error(struct api_resp *r, int status, const char *type, const char *message);
/* Sets r to status and json (takes ownership of json). */
void api_resp_json(struct api_resp *r, int status, json_t *json);
/* Moves the body out: *body (malloc'd, caller frees), *len, *type. */
void api_resp_body(struct api_resp *r, char **body, size_t *len, const char **type);

/* ---- the API object ---- */

struct api;
struct api_metrics;

/* Borrows engine and metrics (may be NULL) for its life; copies options.
 * Caller frees with api_free(). */
int api_new(struct wfo_engine *engine, const struct api_options *opt, struct api_metrics *metrics,
            struct api **out, struct wfo_error *err);
void api_free(struct api *a);
/* Long polls end at their next slice; new requests get 503. */
void api_stop(struct api *a);

/* Routes and answers one request; never fails: every problem is an error
 * document in resp. Records the request in the metrics. */
void api_handle(struct api *a, struct api_req *req, struct api_resp *resp);

/* A request answered later, without a thread waiting for it (http.c's
 * pool mode): api_can_later() says whether req's route can (a start, a
 * batch of task results, on a node that forwards nothing); api_begin() then
 * either answers at once (0, resp filled) or queues the work (1): done(ud)
 * is called once, from the engine's thread, when it has ended (it must not
 * block), and api_end() then fills resp on any other thread. Both record
 * the request as api_handle does. */
struct api_route;
struct api_halves;
struct api_later {
    void (*done)(void *ud);
    void *ud;
    /* set by api_begin: api_end may block (a start's ?wait=), so it must
     * be called from a thread that may wait */
    int end_waits;
    /* api's own */
    const struct api_route *route;
    const struct api_halves *halves;
    int64_t t0;
    void *state;
};
int api_can_later(struct api *a, const struct api_req *req);
/* Pool mode: answers req at once when it would not wait (a task poll that
 * finds tasks ready: no thread hand-off); 1 when resp holds the answer
 * (recorded as api_handle does), 0 when it must wait (nothing done:
 * api_handle it in a thread that may wait). */
int api_try_now(struct api *a, struct api_req *req, struct api_resp *resp);
int api_begin(struct api *a, struct api_req *req, struct api_resp *resp, struct api_later *l);
void api_end(struct api *a, struct api_req *req, struct api_resp *resp, struct api_later *l);

/* A request refused before it is read to its end (a body over the limit:
 * 413; conflicting lengths: 400): the error document of code with msg,
 * recorded like api_handle's answers. */
void api_refuse(struct api *a, struct api_req *req, struct api_resp *resp, int status, int code,
                const char *msg);

/* ---- the HTTP server (http.c) ---- */

struct http_options {
    const char *listen;      /* "ADDR:PORT", "[V6]:PORT", "HOST:PORT" */
    int allow_public;        /* 0: refuse non-loopback addresses */
    unsigned conn_timeout_s; /* an idle or stalled connection is closed after it */
    unsigned max_connections;
    int64_t shutdown_ms; /* how long http_server_stop waits for requests */
    /* N > 0: N threads poll the connections (epoll) and a long poll waits
     * in a thread of its own; 0: one thread per connection */
    unsigned threads;
};
struct http_server;

/* Binds (SO_REUSEADDR, close-on-exec) and starts serving a. WFO_EINVAL for a
 * bad or refused address, WFO_EIO when it cannot listen. */
int http_server_start(struct api *a, const struct http_options *opt, struct http_server **out,
                      struct wfo_error *err);
/* 0 when http_server_start would take listen as an address (ADDR:PORT
 * that resolves, and a loopback one unless allow_public), else WFO_EINVAL
 * with its message; binds nothing (what --print-config checks). */
int http_listen_check(const char *listen, int allow_public, struct wfo_error *err);
/* "127.0.0.1:7233" with the port actually bound (the listen port may be 0). */
const char *http_server_address(const struct http_server *s);
/* Stops accepting, waits up to shutdown_ms for requests being handled,
 * closes every connection, frees s. NULL is a no-op. WFO_ETIMEOUT when
 * requests are still being handled after shutdown_ms: then nothing is
 * freed, and the engine they use must not be either (the caller exits). */
int http_server_stop(struct http_server *s);

/* ---- metrics (ops.c) ---- */

/* Caller frees with api_metrics_free(). */
struct api_metrics *api_metrics_new(void);
void api_metrics_free(struct api_metrics *m);
/* For wfo_engine_options.on_progress (ud: the metrics): counts
 * executions started and ended by workflow. */
void api_metrics_on_progress(void *ud, const struct wfo_progress *p);

/* ---- inside api/: what routes.c offers the handlers ---- */

typedef int (*api_handler)(struct api *a, struct api_req *req, struct api_resp *resp,
                           struct wfo_error *err);
/* A route's two halves for api_begin / api_end: the first queues the
 * work (1) with l->done to call, keeping what it needs in l->state, or
 * queues nothing (0, or an error); the second makes the answer, and
 * frees l->state whatever happened (after an error it only frees). */
typedef int (*api_later_fn)(struct api *a, struct api_req *req, struct api_later *l,
                            struct wfo_error *err);
typedef int (*api_end_fn)(struct api *a, struct api_req *req, struct api_resp *resp,
                          struct api_later *l, struct wfo_error *err);
/* A route's answer when it need not wait (api_try_now): 1 answered, 0
 * it would wait (nothing done), or an error. */
typedef int (*api_now_fn)(struct api *a, struct api_req *req, struct api_resp *resp,
                          struct wfo_error *err);

struct api_token {
    unsigned char sha256[32];
    char *ns;
    enum api_role role;
    char *name;
    atomic_int waiting; /* its long polls now (limits.long_polls_per_token) */
};

struct api {
    struct wfo_engine *engine;
    struct api_options opt;
    char *ns;
    struct api_token *tokens; /* SPEC 4; none: every request is "default" */
    int n_tokens;
    char *cursor_secret;
    unsigned char cursor_key[32];
    struct api_metrics *metrics;
    atomic_int stopping;
};

/* The body as a JSON object: an empty body reads as {}; YAML is accepted
 * when allow_yaml and the Content-Type says so. WFO_EPARSE / WFO_EINVAL. */
int api_body_object(const struct api_req *req, int allow_yaml, json_t **out, struct wfo_error *err);

/* WFO_EINVAL naming the first key of obj that is not in known (a
 * NULL-terminated list), as "WHERE.KEY" (where NULL: "KEY") (SPEC 4). */
int api_fields_known(const json_t *obj, const char *where, const char *const *known,
                     struct wfo_error *err);
/* WFO_EPAYLOAD (400 PayloadTooLarge) when v serializes to more than
 * limits.payload_bytes; what names it in the message. */
int api_payload_check(const struct api *a, const json_t *v, const char *what,
                      struct wfo_error *err);

/* Typed fields of an object: absent (or null) leaves *out alone and returns
 * 0 unless required; a wrong type is WFO_EINVAL naming the field. */
int api_field_str(const json_t *obj, const char *key, int required, const char **out,
                  struct wfo_error *err);
int api_field_int(const json_t *obj, const char *key, int required, int64_t min, int64_t max,
                  int64_t *out, struct wfo_error *err);
int api_field_bool(const json_t *obj, const char *key, int *out, struct wfo_error *err);
/* A duration: "1.5s" or an integer of milliseconds. */
int api_field_duration(const json_t *obj, const char *key, int64_t *out, struct wfo_error *err);

/* Query parameters: absent leaves *out alone; malformed is WFO_EINVAL. */
int api_query_duration(const struct api_req *req, const char *key, int64_t *out,
                       struct wfo_error *err);
int api_query_time(const struct api_req *req, const char *key, int64_t *out, struct wfo_error *err);

/* A list cursor for keyset paging: opaque, and refused (WFO_EINVAL) unless
 * this server (or one sharing its cursor secret) issued it. */
void api_cursor_encode(const struct api *a, const char *ns, int64_t seq, char out[64]);
int api_cursor_decode(const struct api *a, const char *ns, const char *cursor, int64_t *seq,
                      struct wfo_error *err);

/* A long poll begins: WFO_EBUSY (429) when the caller's token already
 * holds limits.long_polls_per_token waiting requests. Every call is paired
 * with api_wait_end() (a no-op when nothing was counted). */
int api_wait_begin(struct api *a, struct api_req *req, struct wfo_error *err);
void api_wait_end(struct api_req *req);

/* Clamps a requested wait to opt.max_wait_ms. */
int64_t api_wait_cap(const struct api *a, int64_t wait_ms);

/* A cluster (routes.c, docs/operations/scaling.md#several-nodes): sends
 * req's method to url with body, the caller's Authorization and
 * X-Wfo-Forwarded (the node that forwards: the receiver never forwards
 * it again). httpc_do's result; res is the other node's answer. */
struct httpc_response;
int api_forward(struct api *a, const struct api_req *req, const char *url, const char *body,
                size_t body_len, int64_t timeout_ms, struct httpc_response *res,
                struct wfo_error *err);

/* The handlers. */
int api_event_stream(struct api *a, struct api_req *req, struct api_resp *resp,
                     struct wfo_error *err);

int api_workflow_put(struct api *a, struct api_req *req, struct api_resp *resp,
                     struct wfo_error *err);
int api_workflow_list(struct api *a, struct api_req *req, struct api_resp *resp,
                      struct wfo_error *err);
int api_workflow_get(struct api *a, struct api_req *req, struct api_resp *resp,
                     struct wfo_error *err);
int api_workflow_version(struct api *a, struct api_req *req, struct api_resp *resp,
                         struct wfo_error *err);
int api_workflow_delete(struct api *a, struct api_req *req, struct api_resp *resp,
                        struct wfo_error *err);

int api_execution_start(struct api *a, struct api_req *req, struct api_resp *resp,
                        struct wfo_error *err);
int api_execution_start_later(struct api *a, struct api_req *req, struct api_later *l,
                              struct wfo_error *err);
int api_execution_start_end(struct api *a, struct api_req *req, struct api_resp *resp,
                            struct api_later *l, struct wfo_error *err);
int api_execution_get(struct api *a, struct api_req *req, struct api_resp *resp,
                      struct wfo_error *err);
int api_execution_list(struct api *a, struct api_req *req, struct api_resp *resp,
                       struct wfo_error *err);
int api_execution_history(struct api *a, struct api_req *req, struct api_resp *resp,
                          struct wfo_error *err);
int api_execution_cancel(struct api *a, struct api_req *req, struct api_resp *resp,
                         struct wfo_error *err);
int api_execution_terminate(struct api *a, struct api_req *req, struct api_resp *resp,
                            struct wfo_error *err);
int api_execution_pause(struct api *a, struct api_req *req, struct api_resp *resp,
                        struct wfo_error *err);
int api_execution_resume(struct api *a, struct api_req *req, struct api_resp *resp,
                         struct wfo_error *err);
int api_execution_retry(struct api *a, struct api_req *req, struct api_resp *resp,
                        struct wfo_error *err);
int api_execution_signal(struct api *a, struct api_req *req, struct api_resp *resp,
                         struct wfo_error *err);
int api_event_post(struct api *a, struct api_req *req, struct api_resp *resp,
                   struct wfo_error *err);
int api_execution_delete(struct api *a, struct api_req *req, struct api_resp *resp,
                         struct wfo_error *err);

int api_subscription_add(struct api *a, struct api_req *req, struct api_resp *resp,
                         struct wfo_error *err);
int api_subscription_list(struct api *a, struct api_req *req, struct api_resp *resp,
                          struct wfo_error *err);
int api_subscription_get(struct api *a, struct api_req *req, struct api_resp *resp,
                         struct wfo_error *err);
int api_subscription_delete(struct api *a, struct api_req *req, struct api_resp *resp,
                            struct wfo_error *err);

int api_task_poll(struct api *a, struct api_req *req, struct api_resp *resp, struct wfo_error *err);
int api_task_poll_now(struct api *a, struct api_req *req, struct api_resp *resp,
                      struct wfo_error *err);
int api_task_complete(struct api *a, struct api_req *req, struct api_resp *resp,
                      struct wfo_error *err);
int api_task_fail(struct api *a, struct api_req *req, struct api_resp *resp, struct wfo_error *err);
int api_task_complete_many(struct api *a, struct api_req *req, struct api_resp *resp,
                           struct wfo_error *err);
int api_task_complete_later(struct api *a, struct api_req *req, struct api_later *l,
                            struct wfo_error *err);
int api_task_fail_later(struct api *a, struct api_req *req, struct api_later *l,
                        struct wfo_error *err);
int api_task_one_end(struct api *a, struct api_req *req, struct api_resp *resp, struct api_later *l,
                     struct wfo_error *err);
int api_task_complete_many_later(struct api *a, struct api_req *req, struct api_later *l,
                                 struct wfo_error *err);
int api_task_complete_many_end(struct api *a, struct api_req *req, struct api_resp *resp,
                               struct api_later *l, struct wfo_error *err);
int api_task_heartbeat(struct api *a, struct api_req *req, struct api_resp *resp,
                       struct wfo_error *err);
int api_queue_list(struct api *a, struct api_req *req, struct api_resp *resp,
                   struct wfo_error *err);

int api_ops_healthz(struct api *a, struct api_req *req, struct api_resp *resp,
                    struct wfo_error *err);
/* Pings the store: 0 when it answers, else 1 with resp a 503 that says
 * why (/readyz, and the routes of API_F_STORE). */
int api_store_down(struct api *a, struct api_resp *resp);
int api_ops_readyz(struct api *a, struct api_req *req, struct api_resp *resp,
                   struct wfo_error *err);
int api_ops_metrics(struct api *a, struct api_req *req, struct api_resp *resp,
                    struct wfo_error *err);
int api_ops_openapi(struct api *a, struct api_req *req, struct api_resp *resp,
                    struct wfo_error *err);
int api_ops_schema(struct api *a, struct api_req *req, struct api_resp *resp,
                   struct wfo_error *err);
int api_ops_index(struct api *a, struct api_req *req, struct api_resp *resp, struct wfo_error *err);

/* Metrics the handlers feed. */
/* One answered request: method NULL for a request that matched no route. */
void api_metrics_http(struct api_metrics *m, const char *method, const char *route, int status,
                      int64_t ms);

/* One audited request (routes.c audit()): outcome "ok", "failed" or
 * "denied"; method and route are the table's static strings. */
void api_metrics_audit(struct api_metrics *m, const char *method, const char *route,
                       const char *outcome);

/* The route table, for the OpenAPI test and the docs: *n entries. */
struct api_route {
    const char *method;
    const char *pattern;
    api_handler fn; /* NULL: not implemented yet (501) */
    enum api_role role;
    unsigned flags;    /* API_F_* */
    const char *query; /* the query parameters it reads ("a,b"); NULL: none */
};
/* The route's first {param} is an execution id: an execution of another
 * namespace is answered 404 before the handler runs. */
#define API_F_EXEC 1u
/* The handler answers from the engine's memory (task leases, queues): the
 * store is pinged first, so that while it is unreachable the route answers
 * 503 like every other (SPEC 4) rather than lease what cannot be written. */
#define API_F_STORE 2u
const struct api_route *api_routes(int *n);

#endif
