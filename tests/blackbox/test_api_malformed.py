"""`wfo server` against hostile and broken input (SPEC 4): every answer is
a status with {"error": {"type", "message"}}, never a dropped connection or
a crash; bodies over the limit get 413 before they are read; clients that
stall never delay anyone else. After each test the server still answers
/healthz, and at the end it stops cleanly (no sanitizer report)."""

import json
import socket
import threading
import time

import pytest

from apiutil import WfoServer, recv_response, server, set_workflow, unique  # noqa: F401


@pytest.fixture(autouse=True)
def still_alive(server):
    yield
    r = server.get("/healthz", timeout=10)
    assert r.status == 200, r


def bad_request(r, status=400, etype="BadRequest"):
    assert r.status == status, r
    assert r.headers.get("content-type", "").startswith("application/json"), r.headers
    e = r.error
    assert e["type"] == etype, e
    return e


# ---- bodies ------------------------------------------------------------------

BAD_JSON = [
    b"{",
    b"{\"workflow\": }",
    b"not json at all",
    b"{\"workflow\": \"x\"} trailing",
    b"{'single': 'quotes'}",
    b"{\"a\": 1,}",
    b"[1, 2",
    b"\x00\x01\x02",
    b"{\"a\": \"\x00\"}",
    b"{\"a\": NaN}",
    b"{\"a\": 01}",
]

POST_ROUTES = ["/v1/executions", "/v1/tasks/poll", "/v1/tasks/t/complete", "/v1/tasks/t/fail",
               "/v1/tasks/t/heartbeat", "/v1/executions/x/cancel", "/v1/executions/x/pause"]


@pytest.mark.parametrize("body", BAD_JSON)
@pytest.mark.parametrize("path", POST_ROUTES)
def test_bad_json_is_400(server, path, body):
    r = server.post(path, body, headers={"Content-Type": "application/json"})
    bad_request(r)


@pytest.mark.parametrize("body", [b"\xff\xfe", b"{\"a\": \"\xc3\x28\"}", b"{\"a\": \"\xed\xa0\x80\"}",
                                  b"{\"a\": \"\xf8\x88\x80\x80\x80\"}", b"\xef\xbb\xbf{}x"])
def test_invalid_utf8_is_400(server, body):
    bad_request(server.post("/v1/executions", body, headers={"Content-Type": "application/json"}))
    bad_request(server.put("/v1/workflows/x", body, headers={"Content-Type": "application/json"}))


@pytest.mark.parametrize("body", [b"[]", b"[1]", b"\"text\"", b"42", b"null", b"true"])
def test_body_not_an_object_is_400(server, body):
    bad_request(server.post("/v1/executions", body))
    bad_request(server.post("/v1/tasks/poll", body))


def test_put_workflow_non_object(server):
    for body in (b"[]", b"- a\n- b\n", b"just a string"):
        r = server.put("/v1/workflows/x", body, headers={"Content-Type": "application/yaml"})
        assert r.status == 400, (body, r)


def test_empty_body_reads_as_object(server):
    # start needs a workflow: the empty body is {} and so lacks it
    e = bad_request(server.post("/v1/executions", b""))
    assert "workflow" in e["message"]
    e = bad_request(server.post("/v1/executions", b"  \r\n "))
    r = server.post("/v1/executions/nope/pause", b"")
    assert r.status == 404, r


@pytest.mark.parametrize("body", [
    {"workflow": 5}, {"workflow": ["a"]}, {"workflow": None}, {"workflow": ""},
    {"workflow": "w", "version": "1"}, {"workflow": "w", "version": 1.5},
    {"workflow": "w", "version": 0}, {"workflow": "w", "version": True},
    {"workflow": "w", "id": 7}, {"workflow": "w", "id": ""}, {"workflow": "w", "id": "x" * 300},
])
def test_start_wrong_types_is_400(server, body):
    bad_request(server.post("/v1/executions", body))


def test_nested_brackets(server):
    for n in (600, 100_000):
        r = server.post("/v1/executions", b"[" * n + b"]" * n)
        bad_request(r)
        r = server.post("/v1/executions", b"{\"workflow\": \"x\", \"input\": " + b"[" * n + b"]" * n + b"}")
        bad_request(r)
        r = server.put("/v1/workflows/x", b"a:\n" + b"[" * n, headers={"Content-Type": "application/yaml"})
        bad_request(r)


def test_deep_but_allowed_input(server):
    name = unique("deep")
    server.put_workflow(set_workflow(name))
    body = b"{\"workflow\": \"" + name.encode() + b"\", \"input\": {\"a\":" + b"[" * 100 + b"]" * 100 + b"}}"
    r = server.post("/v1/executions?wait=10s", body, timeout=60)
    assert r.status == 201, r


def test_big_strings(server):
    r = server.post("/v1/executions", {"workflow": "w" * 500_000})
    assert r.status in (400, 404), r
    r = server.get("/v1/executions/" + "x" * 5000)
    assert r.status == 404, r


# ---- the body limit ---------------------------------------------------------------

def test_content_length_over_limit_answered_before_body(server):
    """413 arrives although not one byte of the (announced 100 MB) body is sent."""
    with socket.create_connection((server.host, server.port), timeout=10) as s:
        s.sendall(b"POST /v1/executions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 104857600\r\n\r\n")
        t0 = time.monotonic()
        status, headers, body = recv_response(s, timeout=10)
        assert status == 413, (status, headers, body)
        assert time.monotonic() - t0 < 5
        e = json.loads(body)["error"]
        assert e["type"] == "PayloadTooLarge" and e["message"]


def test_content_length_over_limit_with_expect_continue(server):
    with socket.create_connection((server.host, server.port), timeout=10) as s:
        s.sendall(b"PUT /v1/workflows/x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                  b"Content-Length: 2000000\r\n\r\n")
        status, _, body = recv_response(s, timeout=10)
        assert status == 413, body


def test_huge_content_length_value(server):
    for cl in (b"99999999999999999999999999", b"18446744073709551615"):
        with socket.create_connection((server.host, server.port), timeout=10) as s:
            s.sendall(b"POST /v1/executions HTTP/1.1\r\nHost: x\r\nContent-Length: " + cl + b"\r\n\r\n")
            status, _, _ = recv_response(s, timeout=10)
            assert status in (400, 413), status


def test_body_over_limit_sent_anyway(server):
    """A client that sends its whole (too large) body still reads the 413; the server
    may close the connection before it has sent it all."""
    body = b"{\"workflow\": \"" + b"x" * (1 << 20) + b"\"}"
    with socket.create_connection((server.host, server.port), timeout=10) as s:
        s.sendall(b"POST /v1/executions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                  % len(body))

        def send_body():
            try:
                s.sendall(body)
            except OSError:
                pass  # the server hung up after its 413

        th = threading.Thread(target=send_body)
        th.start()
        status, _, resp = recv_response(s, timeout=10)
        th.join(10)
    assert status == 413, resp
    assert json.loads(resp)["error"]["type"] == "PayloadTooLarge"


def test_chunked_body_over_limit(server):
    with socket.create_connection((server.host, server.port), timeout=20) as s:
        s.sendall(b"POST /v1/executions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"x" * 65536
        for _ in range(20):  # 1.25 MiB
            s.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        s.sendall(b"0\r\n\r\n")
        status, _, body = recv_response(s, timeout=20)
        assert status == 413, body
        assert json.loads(body)["error"]["type"] == "PayloadTooLarge"


def test_chunked_body_under_limit(server):
    name = unique("chunked")
    server.put_workflow(set_workflow(name))
    payload = json.dumps({"workflow": name, "input": {"x": 1}}).encode()
    with socket.create_connection((server.host, server.port), timeout=20) as s:
        s.sendall(b"POST /v1/executions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        for i in range(0, len(payload), 7):
            part = payload[i:i + 7]
            s.sendall(b"%x\r\n" % len(part) + part + b"\r\n")
        s.sendall(b"0\r\n\r\n")
        status, _, body = recv_response(s, timeout=20)
        assert status == 201, body


@pytest.mark.parametrize("headers,why", [
    (b"Content-Length: 12\r\nContent-Length: 13\r\n", "Content-Length headers that differ"),
    (b"Content-Length: 12\r\nTransfer-Encoding: chunked\r\n",
     "Content-Length beside Transfer-Encoding"),
])
def test_ambiguous_framing_is_400(server, headers, why):
    """A body whose length depends on which header one believes (a proxy in
    front may believe the other: request smuggling) is refused, in JSON,
    and the connection closed; one length given twice is fine."""
    with socket.create_connection((server.host, server.port), timeout=10) as s:
        s.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  + headers + b"\r\n" + b'{"type":"x"}X')
        status, hdrs, body = recv_response(s, timeout=10)
    assert status == 400, (status, body)
    e = json.loads(body)["error"]
    assert e["type"] == "BadRequest" and why in e["message"], e
    with socket.create_connection((server.host, server.port), timeout=10) as s:
        s.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 12\r\nContent-Length: 12\r\n\r\n" + b'{"type":"x"}')
        status, _, body = recv_response(s, timeout=10)
    assert status == 202, body


@pytest.mark.parametrize("target,msg", [
    ("/v1/executions?workfow=x", "workfow: unknown query parameter (expected workflow, status,"),
    ("/v1/executions?limit=5&limit=6", "limit: query parameter given twice"),
    ("/v1/executions/some-id?wiat=1s", "wiat: unknown query parameter (expected wait)"),
    ("/v1/workflows?limit=5", "limit: unknown query parameter (expected none)"),
    ("/v1/queues?x", "x: unknown query parameter (expected none)"),
])
def test_unknown_query_parameter_is_400(server, target, msg):
    """A query parameter the route does not read is refused, named, like an
    unknown body field: a typo in a filter would otherwise list everything."""
    r = server.get(target)
    assert r.status == 400 and msg in r.error["message"], r


def test_known_query_parameters_are_read(server):
    assert server.get("/v1/executions?workflow=x&status=completed&limit=5").status == 200
    assert server.get("/v1/executions/none-such?wait=10ms").status == 404


def test_configured_limit(tmp_path):
    srv = WfoServer(tmp_path, env={"WFO_BODY_BYTES": "2048"})
    srv.launch()
    try:
        name = unique("limit")
        r = srv.put(f"/v1/workflows/{name}", set_workflow(name))
        assert r.status == 201
        base = json.dumps({"workflow": name, "input": ""})
        fill = 2048 - len(base)
        exact = json.dumps({"workflow": name, "input": "x" * fill})
        assert len(exact) == 2048
        assert srv.post("/v1/executions", exact).status == 201
        over = json.dumps({"workflow": name, "input": "x" * (fill + 1)})
        assert srv.post("/v1/executions", over).status == 413
    finally:
        assert srv.stop() == 0


# ---- routes and targets ---------------------------------------------------------

@pytest.mark.parametrize("path", ["/nope", "/v1", "/v1/", "/v1/workflows/", "/v1/executions/x/y",
                                  "/v1/tasks", "/v1/tasks/x", "/v1/tasks/x/done",
                                  "/v1/workflows/a/versions", "/v2/executions", "//healthz",
                                  "/healthz/", "/a/b/c/d/e/f/g/h/i/j/k/l/m"])
def test_unknown_route_is_404(server, path):
    r = server.get(path)
    bad_request(r, 404, "NotFound")


@pytest.mark.parametrize("method,path,allow", [
    ("DELETE", "/v1/executions", {"GET", "POST"}),
    ("PUT", "/v1/executions/abc", {"GET"}),
    ("GET", "/v1/tasks/poll", {"POST"}),
    ("POST", "/healthz", {"GET"}),
    ("POST", "/v1/workflows/x", {"GET", "PUT"}),
    ("PATCH", "/v1/workflows", {"GET"}),
    ("GET", "/v1/executions/x/cancel", {"POST"}),
    ("BREW", "/metrics", {"GET"}),
])
def test_wrong_method_is_405(server, method, path, allow):
    r = server.request(method, path)
    bad_request(r, 405, "MethodNotAllowed")
    got = {m.strip() for m in r.headers["allow"].split(",")}
    assert allow <= got, got


@pytest.mark.parametrize("target", [b"/v1/executions/%zz", b"/v1/executions/%", b"/v1/executions/%4",
                                    b"/v1/executions/%00", b"/v1/executions/%ff%fe",
                                    b"/v1/executions?limit=%zz", b"/v1/executions?status=%c3%28"])
def test_bad_escapes_are_400(server, target):
    status, _, body = server_raw_get(server, target)
    assert status == 400, body
    assert json.loads(body)["error"]["type"] == "BadRequest"


def server_raw_get(server, target):
    with socket.create_connection((server.host, server.port), timeout=10) as s:
        s.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return recv_response(s)


def test_escaped_slash_stays_in_segment(server):
    r = server.get("/v1/executions/a%2Fb")
    bad_request(r, 404, "NotFound")
    assert "a/b" in r.error["message"]
    r = server.get("/v1/workflows%2Fx")
    bad_request(r, 404, "NotFound")


def test_raw_utf8_in_path(server):
    status, _, body = server_raw_get(server, b"/v1/executions/\xff\xfe")
    assert status == 400, body
    status, _, body = server_raw_get(server, "/v1/executions/café".encode())
    assert status == 404, body


# ---- the connection itself ---------------------------------------------------------

@pytest.mark.parametrize("garbage", [
    b"\x00\x01\x02\x03garbage\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET / HTTP/9.9\r\n\r\n",
    b"HELLO WORLD\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,  # a TLS hello
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"POST /v1/executions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"GET / HTTP/1.1\r\n" + b"X-Long: " + b"a" * 100_000 + b"\r\n\r\n",
    b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
])
def test_garbage_on_the_socket(server, garbage):
    """The server answers (an HTTP error) or closes; it never crashes or hangs."""
    out = server.raw(garbage, timeout=5)
    if out:
        assert out.startswith(b"HTTP/1."), out[:200]
        status = int(out.split()[1])
        assert 400 <= status < 600, out[:200]


def test_random_bytes(server):
    import random
    rnd = random.Random(1234)
    for _ in range(30):
        data = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 2000)))
        server.raw(data, timeout=2)


def test_keep_alive_many_requests_one_connection(server):
    c = server.conn()
    sock_before = None
    for i in range(50):
        r = server.request("GET", "/healthz", conn=c)
        assert r.status == 200
        if sock_before is None:
            sock_before = c.sock
        assert c.sock is sock_before, "the connection was not kept alive"
    # errors keep the connection too
    r = server.request("GET", "/nope", conn=c)
    assert r.status == 404 and c.sock is sock_before
    r = server.request("POST", "/v1/executions", body=b"{", conn=c)
    assert r.status == 400 and c.sock is sock_before
    c.close()


def stall(server, n, partial):
    socks = []
    for _ in range(n):
        s = socket.create_connection((server.host, server.port), timeout=10)
        s.sendall(partial)
        socks.append(s)
    return socks


@pytest.mark.parametrize("n", [50, 120])
@pytest.mark.parametrize("partial", [
    b"POST /v1/executions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"workf",
    b"GET /v1/executions HTTP/1.1\r\nHost: x\r\nX-Slow: ",
    b"PO",
])
def test_stalled_clients_do_not_delay_others(server, n, partial):
    socks = stall(server, n, partial)
    try:
        time.sleep(0.2)
        worst = 0.0
        for _ in range(20):
            t0 = time.monotonic()
            r = server.get("/healthz", timeout=5)
            worst = max(worst, time.monotonic() - t0)
            assert r.status == 200
        assert worst < 1.0, worst
        # real work too
        name = unique("stalled")
        t0 = time.monotonic()
        server.put_workflow(set_workflow(name))
        d = server.start_exec(name, query="?wait=10s")
        assert d["status"] == "completed"
        assert time.monotonic() - t0 < 3
    finally:
        for s in socks:
            s.close()


def test_many_concurrent_clients(server):
    name = unique("concurrent")
    server.put_workflow(set_workflow(name))
    errors = []

    def client(i):
        try:
            for j in range(5):
                r = server.post("/v1/executions", {"workflow": name, "input": {"i": i, "j": j}})
                if r.status != 201:
                    errors.append(r)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]
    lst = server.get(f"/v1/executions?workflow={name}&limit=1000").json["executions"]
    assert len(lst) == 200


def test_client_gone_during_long_poll(server):
    """A client that hangs up while its long poll waits costs nothing."""
    for _ in range(5):
        with socket.create_connection((server.host, server.port), timeout=5) as s:
            body = json.dumps({"queues": [unique("gone")], "worker": "w", "wait": "2s"}).encode()
            s.sendall(b"POST /v1/tasks/poll HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                      % len(body) + body)
    time.sleep(0.1)
    assert server.get("/healthz").status == 200
