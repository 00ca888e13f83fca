/*
 * httpc.h - an HTTP client request: the one door to libcurl. Used by the
 * `http` step (steps/http.c), the CLI's client commands and `wfo worker`
 * (cli/), and webhook delivery.
 *
 * One call, one request, blocking; safe from many threads at once (each
 * call uses its own easy handle; curl_global_init happens once, under a
 * pthread_once). Redirects are followed up to max_redirects (0: none).
 * The response body is bounded by max_body: a longer one fails with
 * WFO_ETOOBIG. When deny_private is set, the request is refused before it
 * connects if the host resolves to a loopback, private, link-local or
 * unspecified address (IPv4 and IPv6), redirects included.
 */
#ifndef WFO_COMMON_HTTPC_H
#define WFO_COMMON_HTTPC_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "error.h"

struct httpc_header {
    char *name;
    char *value;
};

struct httpc_request {
    const char *method; /* NULL: GET */
    const char *url;
    const struct httpc_header *headers; /* n_headers entries */
    int n_headers;
    const char *body; /* NULL: none; sent with no Content-Type unless headers give one */
    size_t body_len;
    int64_t timeout_ms; /* whole request; 0: none */
    size_t max_body;    /* 0: 16 MiB */
    int max_redirects;
    int deny_private;
    /* Cancellation: when not NULL and *cancel becomes non-zero, the
     * request stops (checked at least every 100 ms). An atomic, so that a
     * struct proc_cancel's flag (steps/proc.h) or a signal handler's can
     * be lent as it is. */
    const atomic_int *cancel;
    /* Streaming (a Server-Sent Events client): when set, the body of a 2xx
     * response goes to on_body as it arrives instead of into res->body,
     * with no max_body; a non-zero return stops the request
     * (WFO_ESHUTDOWN). The body of any other status is kept as usual. */
    int (*on_body)(void *ud, const char *p, size_t n);
    void *on_body_ud;
};

struct httpc_response {
    long status;
    struct httpc_header *headers; /* names lower-cased, in order received */
    int n_headers;
    struct wfo_buf body;
    char *content_type; /* lower-cased, or NULL */
};

/* 0 when a response arrived (whatever its status). Errors:
 *   WFO_EINVAL  a bad URL, method or header ("url: ..."), a URL that is
 *               not http:// or https://, or more than max_redirects
 *               redirects
 *   WFO_EIO     connection failed, DNS, TLS, reset, headers over 256 KiB
 *               ("connection to 'URL' failed: ..."; messages show the URL
 *               without user information, query and fragment)
 *   WFO_ETIMEOUT the timeout passed
 *   WFO_ETOOBIG  body over max_body
 *   WFO_EFORBIDDEN deny_private refused the address
 *   WFO_ESHUTDOWN cancelled
 * res is filled on success (on WFO_ETOOBIG, status and headers are set);
 * release it with httpc_response_release either way. Everything in req is
 * borrowed for the call. */
int httpc_do(const struct httpc_request *req, struct httpc_response *res, struct wfo_error *err);
void httpc_response_release(struct httpc_response *res);
/* Many requests from one thread, up to parallel of them at once on the
 * thread's kept connections (a load generator or a fan-out: one thread
 * and one poll for all, where httpc_do would need a thread each).
 * next(ud, req) fills *req (zeroed) and returns its number i >= 0, or -1
 * when there are no more; its strings need only last until next returns
 * (the URL and body are copied). done(ud, i, rc, res, err) is called once
 * for each, from this thread, as it ends: rc and err as httpc_do's, res
 * released when done returns. deny_private, cancel and on_body are not
 * taken here. Returns when every request has ended. */
typedef long httpc_next_fn(void *ud, struct httpc_request *req);
typedef void httpc_done_fn(void *ud, long i, int rc, struct httpc_response *res,
                           const struct wfo_error *err);
void httpc_do_many(int parallel, httpc_next_fn *next, httpc_done_fn *done, void *ud);
/* The value of header name (case-insensitive) or NULL. */
const char *httpc_header_get(const struct httpc_response *res, const char *name);
/* Is an answer with this status worth asking again (5xx, 408, 429)? The
 * http step's retryable errors and the worker's calls to the server. */
int httpc_status_transient(long status);
/* The URL as messages quote it: without user information, query and
 * fragment (they may hold secrets), cut after HTTPC_URL_SHOWN bytes with
 * "..."; out should hold HTTPC_URL_SHOWN + 4 bytes. */
#define HTTPC_URL_SHOWN 200
void httpc_url_shown(const char *url, char *out, size_t size);
/* Checks a URL before it is kept for later requests (webhook
 * subscriptions): WFO_EINVAL ("url: ...") unless it parses as an http://
 * or https:// URL with a host; with deny_private, also when that host is
 * a literal loopback, private, link-local or unspecified address or
 * "localhost" (names are checked at each request, when they resolve). */
int httpc_url_check(const char *url, int deny_private, struct wfo_error *err);
/* Appends s percent-encoded for one segment of a URL's path: every byte
 * but RFC 3986's unreserved characters becomes %XX. */
void httpc_escape(struct wfo_buf *b, const char *s);

#endif
