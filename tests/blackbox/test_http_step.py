"""The `http` step through `wfo run` (SPEC 2.2 `http` row, 2.3): what is
sent (method, URL and query, headers, body), what comes back ({status,
headers, body}, JSON parsed, text kept), accept_status, HttpError details,
which failures are retried (5xx, 408, 429, connection errors, timeouts) and
which are not (other 4xx), output mapping and catch.

A local threading http.server on 127.0.0.1, started here, plays the remote
service; it records every request and counts calls per path."""

import json
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from conftest import run_def, step

FAST_RETRY = {"max_attempts": 3, "initial_interval": "50ms", "jitter": 0}


class Service:
    """What the server saw: requests by path and call counts."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests = []
        self.calls = {}

    def record(self, req):
        with self.lock:
            self.requests.append(req)
            self.calls[req["path"]] = self.calls.get(req["path"], 0) + 1
            return self.calls[req["path"]]

    def count(self, path):
        with self.lock:
            return self.calls.get(path, 0)

    def last(self, path):
        with self.lock:
            found = [r for r in self.requests if r["path"] == path]
        assert found, f"the server saw no request for {path}"
        return found[-1]


def make_handler(service):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def answer(self, status, body=b"", ctype=None, headers=()):
            if isinstance(body, str):
                body = body.encode()
            elif not isinstance(body, bytes):
                body = json.dumps(body).encode()
                ctype = ctype or "application/json"
            try:
                self.send_response(status)
                if ctype:
                    self.send_header("Content-Type", ctype)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeouts)

        def handle_any(self):
            parts = urlsplit(self.path)
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n) if n else b""
            req = {
                "method": self.command,
                "path": parts.path,
                "query": parse_qs(parts.query, keep_blank_values=True),
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": raw.decode("utf-8", "replace"),
            }
            calls = service.record(req)
            seg = parts.path.strip("/").split("/")
            kind = seg[0]
            if kind == "json":
                self.answer(200, {"x": 42, "list": [1, "two"]})
            elif kind == "text":
                self.answer(200, "plain words", "text/plain; charset=utf-8")
            elif kind == "echo":
                self.answer(200, {k: req[k] for k in ("method", "query", "headers", "body")})
            elif kind == "status":
                self.answer(int(seg[1]), {"code": int(seg[1]), "why": "scripted"},
                            headers=[("X-Reason", "scripted")])
            elif kind == "teapot":
                self.answer(418, "short and stout", "text/plain")
            elif kind == "flaky":  # /flaky/KEY/N/STATUS: STATUS N times, then 200
                if calls <= int(seg[2]):
                    self.answer(int(seg[3]), {"try": calls})
                else:
                    self.answer(200, {"ok": True, "calls": calls})
            elif kind == "slow":
                time.sleep(float(seg[1]) if len(seg) > 1 else 3)
                self.answer(200, {"late": True})
            elif kind == "problem":
                self.answer(200, '{"title": "p"}', "application/problem+json")
            elif kind == "untyped":  # JSON with no Content-Type at all
                self.answer(200, '{"n": 7}')
            elif kind == "badjson":
                self.answer(200, "{not json", "application/json")
            elif kind == "binary":
                self.answer(200, b"ok\xff\xfe end", "application/octet-stream")
            elif kind == "multi":
                self.answer(200, "m", "text/plain", headers=[("X-Multi", "a"), ("X-Multi", "b"),
                                                             ("X-Case", "v")])
            elif kind == "redirect":
                self.answer(302, "", headers=[("Location", "/json")])
            elif kind == "loop":
                self.answer(302, "", headers=[("Location", parts.path)])
            else:
                self.answer(404, "no such path", "text/plain")

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = handle_any

    return Handler


@pytest.fixture(scope="module")
def service():
    svc = Service()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(svc))
    server.daemon_threads = True
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    svc.base = f"http://127.0.0.1:{server.server_address[1]}"
    yield svc
    server.shutdown()
    server.server_close()


def key():
    return uuid.uuid4().hex[:12]


def http_def(name, request, **extra):
    s = {"name": "call", "type": "http", "request": request}
    s.update(extra)
    return {"name": name, "steps": [s]}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- results ------------------------------------------------------------------


def test_json_body_is_parsed(tmp_path, service):
    """A JSON response gives {status, headers, body} with the body parsed."""
    rc, doc, err = run_def(tmp_path, http_def("json-body", {"url": service.base + "/json"}))
    assert rc == 0, err
    assert doc["status"] == "completed"
    out = step(doc, "call")["output"]
    assert out["status"] == 200
    assert out["body"] == {"x": 42, "list": [1, "two"]}
    assert out["headers"]["content-type"] == "application/json"
    assert doc["output"] == out
    assert service.last("/json")["method"] == "GET"


def test_text_body_is_a_string(tmp_path, service):
    """A non-JSON response body is kept as a string."""
    rc, doc, err = run_def(tmp_path, http_def("text-body", {"url": service.base + "/text"}))
    assert rc == 0, err
    out = step(doc, "call")["output"]
    assert out["body"] == "plain words"
    assert out["headers"]["content-type"].startswith("text/plain")


def test_body_without_content_type_is_parsed(tmp_path, service):
    """A JSON body with no Content-Type is parsed too; a text/plain one stays a string."""
    rc, doc, err = run_def(tmp_path, http_def("untyped", {"url": service.base + "/untyped"}))
    assert rc == 0, err
    out = step(doc, "call")["output"]
    assert "content-type" not in out["headers"], out["headers"]
    assert out["body"] == {"n": 7}


def test_plus_json_parsed_bad_json_kept_binary_replaced(tmp_path, service):
    """+json types are parsed; a JSON type that does not parse and bytes that are not UTF-8 stay strings."""
    d = {"name": "odd-bodies", "steps": [
        {"name": "p", "type": "http", "request": {"url": service.base + "/problem"}},
        {"name": "b", "type": "http", "request": {"url": service.base + "/badjson"}},
        {"name": "x", "type": "http", "request": {"url": service.base + "/binary"}},
    ]}
    rc, doc, err = run_def(tmp_path, d)
    assert rc == 0, err
    assert step(doc, "p")["output"]["body"] == {"title": "p"}
    assert step(doc, "b")["output"]["body"] == "{not json"
    body = step(doc, "x")["output"]["body"]
    assert isinstance(body, str) and body.startswith("ok") and body.endswith(" end")
    assert "\ufffd" in body


def test_response_headers_lower_case_and_joined(tmp_path, service):
    """Header names are lower-cased; a repeated header is joined with ', '."""
    rc, doc, err = run_def(tmp_path, http_def("multi-headers", {"url": service.base + "/multi"}))
    assert rc == 0, err
    headers = step(doc, "call")["output"]["headers"]
    assert all(k == k.lower() for k in headers), headers
    assert headers["x-multi"] == "a, b"
    assert headers["x-case"] == "v"


def test_redirect_followed(tmp_path, service):
    """A redirect is followed; the result is the final response."""
    rc, doc, err = run_def(tmp_path, http_def("redirect", {"url": service.base + "/redirect"}))
    assert rc == 0, err
    out = step(doc, "call")["output"]
    assert out["status"] == 200 and out["body"]["x"] == 42


def test_redirect_loop_fails_without_retry(tmp_path, service):
    """A redirect loop is an HttpError that is not retried."""
    path = f"/loop/{key()}"
    rc, doc, err = run_def(tmp_path, http_def("redirect-loop", {"url": service.base + path},
                                              retry=FAST_RETRY))
    assert rc == 1
    s = step(doc, "call")
    assert s["status"] == "failed" and s["attempts"] == 1
    assert s["error"]["type"] == "HttpError"
    assert 2 <= service.count(path) <= 7


# --- what is sent -------------------------------------------------------------


def test_post_json_body_headers_query(tmp_path, service):
    """Method, headers, query (encoded, arrays repeated, appended to an existing query) and a JSON body."""
    req = {
        "method": "POST",
        "url": service.base + "/echo?fixed=1",
        "headers": {"X-Token": "abc 123", "X-From": "${ .input.who }"},
        "query": {"q": "a b&c=d/é", "n": "${ 5 }", "flag": "${ true }",
                  "tags": "${ [\"x\", \"y\"] }", "skip": "${ null }"},
        "body": {"order": "${ .input.order }", "fixed": [1, 2]},
    }
    rc, doc, err = run_def(tmp_path, http_def("post-json", req),
                           input={"who": "tester", "order": 7})
    assert rc == 0, err
    seen = step(doc, "call")["output"]["body"]
    assert seen["method"] == "POST"
    assert seen["headers"]["x-token"] == "abc 123"
    assert seen["headers"]["x-from"] == "tester"
    assert seen["headers"]["content-type"] == "application/json"
    assert "expect" not in seen["headers"]
    assert json.loads(seen["body"]) == {"order": 7, "fixed": [1, 2]}
    assert seen["query"] == {"fixed": ["1"], "q": ["a b&c=d/é"], "n": ["5"], "flag": ["true"],
                             "tags": ["x", "y"]}


def test_string_body_sent_as_is_without_content_type(tmp_path, service):
    """A string body is sent byte for byte with no Content-Type of wfo's own."""
    req = {"method": "PUT", "url": service.base + "/echo", "body": "raw text {not json}"}
    rc, doc, err = run_def(tmp_path, http_def("string-body", req))
    assert rc == 0, err
    seen = step(doc, "call")["output"]["body"]
    assert seen["method"] == "PUT"
    assert seen["body"] == "raw text {not json}"
    assert "content-type" not in seen["headers"], seen["headers"]


def test_string_body_with_given_content_type(tmp_path, service):
    """headers give the Content-Type of a string body."""
    req = {"method": "POST", "url": service.base + "/echo", "body": "a,b\n1,2\n",
           "headers": {"Content-Type": "text/csv"}}
    rc, doc, err = run_def(tmp_path, http_def("csv-body", req))
    assert rc == 0, err
    seen = step(doc, "call")["output"]["body"]
    assert seen["headers"]["content-type"] == "text/csv"
    assert seen["body"] == "a,b\n1,2\n"


def test_method_from_expression_and_default_get(tmp_path, service):
    """method defaults to GET; an expression's method is matched without regard to case."""
    d = {"name": "methods", "steps": [
        {"name": "g", "type": "http", "request": {"url": service.base + "/echo"}},
        {"name": "d", "type": "http",
         "request": {"method": "${ \"delete\" }", "url": service.base + "/echo"}},
    ]}
    rc, doc, err = run_def(tmp_path, d)
    assert rc == 0, err
    assert step(doc, "g")["output"]["body"]["method"] == "GET"
    assert step(doc, "d")["output"]["body"]["method"] == "DELETE"


def test_url_from_expression(tmp_path, service):
    """The url may be an expression over the input."""
    req = {"url": "${ .input.base + \"/json\" }"}
    rc, doc, err = run_def(tmp_path, http_def("url-expr", req), input={"base": service.base})
    assert rc == 0, err
    assert step(doc, "call")["output"]["body"]["x"] == 42


def test_bad_runtime_url_is_http_error_not_retried(tmp_path, service):
    """A url that evaluates to something not http(s) fails with HttpError after one attempt."""
    rc, doc, _ = run_def(tmp_path, http_def("bad-url", {"url": "${ \"ftp://x/y\" }"},
                                            retry=FAST_RETRY))
    assert rc == 1
    s = step(doc, "call")
    assert s["attempts"] == 1
    assert s["error"]["type"] == "HttpError"
    assert "url" in s["error"]["message"]


# --- statuses, errors, retries ------------------------------------------------


def test_accept_status(tmp_path, service):
    """A status listed in accept_status completes the step, with the result as usual."""
    rc, doc, err = run_def(tmp_path, http_def("accept-404", {"url": service.base + "/status/404"},
                                              accept_status=[200, 404]))
    assert rc == 0, err
    out = step(doc, "call")["output"]
    assert out["status"] == 404 and out["body"]["code"] == 404


def test_accept_status_refuses_2xx_not_listed(tmp_path, service):
    """With accept_status: [201], a 200 is an HttpError, retried (SPEC 2.3: only a 4xx
    other than 408/429 is never retried)."""
    path = f"/json/{key()}"
    rc, doc, _ = run_def(tmp_path, http_def("accept-201", {"url": service.base + path},
                                            accept_status=[201], retry=FAST_RETRY))
    assert rc == 1
    s = step(doc, "call")
    assert s["error"]["type"] == "HttpError"
    assert s["error"]["details"]["status"] == 200
    assert s["attempts"] == 3
    assert service.count(path) == 3


def test_3xx_without_location_is_retried(tmp_path, service):
    """A 300 without a Location (nothing to follow) fails with HttpError, retried like a 5xx."""
    path = f"/status/300/{key()}"
    rc, doc, _ = run_def(tmp_path, http_def("not-modified", {"url": service.base + path},
                                            retry=FAST_RETRY))
    assert rc == 1
    s = step(doc, "call")
    assert s["error"]["type"] == "HttpError" and s["error"]["details"]["status"] == 300
    assert s["attempts"] == 3
    assert service.count(path) == 3


def test_http_error_details(tmp_path, service):
    """A status outside the default 2xx fails with HttpError and details {status, headers, body}."""
    url = service.base + "/teapot"
    rc, doc, _ = run_def(tmp_path, http_def("teapot", {"method": "POST", "url": url + "?k=secret"}))
    assert rc == 1
    assert doc["status"] == "failed"
    e = doc["error"]
    assert e["type"] == "HttpError" and e["step"] == "call"
    assert e["details"]["status"] == 418
    assert e["details"]["body"] == "short and stout"
    assert e["details"]["headers"]["content-type"] == "text/plain"
    assert e["message"] == f"POST {url} answered 418"
    assert "secret" not in e["message"]


def test_404_not_retried(tmp_path, service):
    """A 404 is not retried: one attempt, failed HttpError."""
    path = f"/status/404/{key()}"
    rc, doc, _ = run_def(tmp_path, http_def("no-retry-404", {"url": service.base + path},
                                            retry=FAST_RETRY))
    assert rc == 1
    s = step(doc, "call")
    assert s["status"] == "failed" and s["attempts"] == 1
    assert s["error"]["type"] == "HttpError"
    assert s["error"]["details"]["status"] == 404
    assert s["error"]["details"]["body"] == {"code": 404, "why": "scripted"}
    assert service.count(path) == 1


def test_503_twice_then_200(tmp_path, service):
    """503, 503, then 200: the step completes on attempt 3 with the last response."""
    path = f"/flaky/{key()}/2/503"
    rc, doc, err = run_def(tmp_path, http_def("flaky-503", {"url": service.base + path},
                                              retry=FAST_RETRY))
    assert rc == 0, err
    s = step(doc, "call")
    assert s["status"] == "completed" and s["attempts"] == 3
    assert s["output"]["body"] == {"ok": True, "calls": 3}
    assert service.count(path) == 3


def test_429_and_408_retried(tmp_path, service):
    """429 and 408 are retried."""
    p429 = f"/flaky/{key()}/1/429"
    p408 = f"/flaky/{key()}/1/408"
    d = {"name": "retry-429-408", "steps": [
        {"name": "a", "type": "http", "request": {"url": service.base + p429}, "retry": FAST_RETRY},
        {"name": "b", "type": "http", "request": {"url": service.base + p408}, "retry": FAST_RETRY},
    ]}
    rc, doc, err = run_def(tmp_path, d)
    assert rc == 0, err
    assert step(doc, "a")["attempts"] == 2
    assert step(doc, "b")["attempts"] == 2
    assert service.count(p429) == 2 and service.count(p408) == 2


def test_5xx_exhausts_retries(tmp_path, service):
    """A 500 on every attempt fails after max_attempts with the last HttpError."""
    path = f"/flaky/{key()}/99/500"
    rc, doc, _ = run_def(tmp_path, http_def("always-500", {"url": service.base + path},
                                            retry=FAST_RETRY))
    assert rc == 1
    s = step(doc, "call")
    assert s["attempts"] == 3 and s["status"] == "failed"
    assert s["error"]["type"] == "HttpError"
    assert s["error"]["details"]["status"] == 500
    assert s["error"]["details"]["body"] == {"try": 3}
    assert service.count(path) == 3


def test_connection_refused_is_retried(tmp_path):
    """Nobody listening: ConnectionError, retried up to max_attempts."""
    url = f"http://127.0.0.1:{free_port()}/x"
    rc, doc, _ = run_def(tmp_path, http_def("refused", {"url": url}, retry=FAST_RETRY))
    assert rc == 1
    s = step(doc, "call")
    assert s["status"] == "failed" and s["attempts"] == 3
    assert s["error"]["type"] == "ConnectionError"
    assert url in s["error"]["message"]
    assert doc["error"]["type"] == "ConnectionError"


def test_request_timeout(tmp_path, service):
    """request.timeout bounds one attempt: a slow answer fails with Timeout, retried."""
    path = f"/slow/3/{key()}"
    t0 = time.monotonic()
    rc, doc, _ = run_def(tmp_path, http_def(
        "req-timeout", {"url": service.base + path, "timeout": "300ms"},
        retry={"max_attempts": 2, "initial_interval": "50ms"}))
    took = time.monotonic() - t0
    assert rc == 1
    s = step(doc, "call")
    assert s["error"]["type"] == "Timeout"
    assert s["attempts"] == 2
    assert took < 5, took


def test_request_timeout_in_ms(tmp_path, service):
    """request.timeout may be an integer of milliseconds."""
    rc, doc, _ = run_def(tmp_path, http_def(
        "req-timeout-ms", {"url": service.base + f"/slow/3/{key()}", "timeout": 250},
        retry={"max_attempts": 1}))
    assert rc == 1
    assert step(doc, "call")["error"]["type"] == "Timeout"


def test_step_timeout_applies(tmp_path, service):
    """Without request.timeout, the step's timeout bounds the attempt."""
    t0 = time.monotonic()
    rc, doc, _ = run_def(tmp_path, http_def(
        "step-timeout", {"url": service.base + f"/slow/3/{key()}"}, timeout="300ms",
        retry={"max_attempts": 1}))
    assert rc == 1
    assert step(doc, "call")["error"]["type"] == "Timeout"
    assert time.monotonic() - t0 < 2.9


# --- mapping and catch -----------------------------------------------------------


def test_output_mapping(tmp_path, service):
    """`output` sees the raw result at .result; the next step sees the mapped output."""
    d = {"name": "mapping", "steps": [
        {"name": "call", "type": "http", "request": {"url": service.base + "/json"},
         "output": "${ .result.body.x }"},
        {"name": "use", "type": "set", "vars": {"double": "${ .steps.call.output * 2 }",
                                                "status": "${ .steps.call.output }"}},
    ]}
    rc, doc, err = run_def(tmp_path, d)
    assert rc == 0, err
    assert step(doc, "call")["output"] == 42
    assert step(doc, "use")["output"] == {"double": 84, "status": 42}


def test_catch_http_error(tmp_path, service):
    """catch on HttpError sends control on with the error at .error."""
    d = {"name": "catching", "steps": [
        {"name": "call", "type": "http", "request": {"url": service.base + "/status/409"},
         "retry": FAST_RETRY,
         "catch": [{"errors": ["HttpError"], "next": "handled"}]},
        {"name": "unreached", "type": "set", "vars": {"x": 1}},
        {"name": "handled", "type": "set",
         "vars": {"status": "${ .error.details.status }", "why": "${ .error.details.body.why }",
                  "type": "${ .error.type }"},
         "end": True},
    ]}
    rc, doc, err = run_def(tmp_path, d)
    assert rc == 0, err
    assert doc["status"] == "completed"
    s = step(doc, "call")
    assert s["status"] == "caught" and s["attempts"] == 1
    assert step(doc, "handled")["output"] == {"status": 409, "why": "scripted",
                                              "type": "HttpError"}
    assert "unreached" not in [x["name"] for x in doc["steps"]]


def test_catch_connection_error_by_wildcard(tmp_path):
    """A ConnectionError is caught by "*" after its retries."""
    d = {"name": "catch-all", "steps": [
        {"name": "call", "type": "http",
         "request": {"url": f"http://127.0.0.1:{free_port()}/"},
         "retry": {"max_attempts": 2, "initial_interval": "50ms"},
         "catch": [{"errors": ["*"], "next": "fallback"}]},
        {"name": "fallback", "type": "set", "vars": {"t": "${ .error.type }"}},
    ]}
    rc, doc, err = run_def(tmp_path, d)
    assert rc == 0, err
    assert step(doc, "call")["status"] == "caught"
    assert step(doc, "call")["attempts"] == 2
    assert step(doc, "fallback")["output"] == {"t": "ConnectionError"}
