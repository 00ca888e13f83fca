"""Webhook subscriptions (SPEC 2.5 "Webhooks", SPEC 4 /v1/subscriptions,
SPEC 6 webhooks.* and http.deny_private, SPEC 7 metrics).

The real server delivers to real HTTP receivers run by the test
(http.server in a thread): signatures checked with hmac, order per
subscription, retries with backoff, a dead or slow endpoint beside a live
one, the failing status and its recovery, the filters, namespaces, the
validation of the request, kill -9 between acceptance and delivery, outbox
retention, and `wfo subscriptions`."""

import hashlib
import hmac
import http.server
import json
import signal
import socket
import subprocess
import threading
import time

import pytest

from apiutil import WfoServer, free_port, store_rows, unique
from conftest import WFO_BIN


class Receiver:
    """A webhook endpoint: records every POST (time, headers, body);
    answer(n) gives the status of the n-th request (from 0), or a number
    of seconds to sleep first as ("sleep", s)."""

    def __init__(self, answer=None, port=0):
        self.got = []
        self.lock = threading.Lock()
        self.answer = answer or (lambda n, body: 200)
        rec = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                with rec.lock:
                    i = len(rec.got)
                    rec.got.append((time.monotonic(), {k.lower(): v for k, v in self.headers.items()},
                                    body))
                a = rec.answer(i, body)
                if isinstance(a, tuple):
                    time.sleep(a[1])
                    a = 200
                try:
                    self.send_response(a)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.t = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.t.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def bodies(self):
        with self.lock:
            return [json.loads(b) for _, _, b in self.got]

    def ok_ids(self):
        """The event ids of the requests, in arrival order."""
        with self.lock:
            return [json.loads(b)["id"] for _, _, b in self.got]

    def wait(self, pred, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                got = list(self.got)
            if pred(got):
                return got
            time.sleep(0.05)
        with self.lock:
            raise AssertionError(f"receiver never satisfied: {len(self.got)} requests: "
                                 f"{[b[:120] for _, _, b in self.got]}")


@pytest.fixture
def receiver():
    made = []

    def make(answer=None, port=0):
        r = Receiver(answer, port)
        made.append(r)
        return r
    yield make
    for r in made:
        r.close()


def server_with(tmp_path, config="", env=None):
    cfg = tmp_path / "wfo.yaml"
    cfg.write_text(config or "{}\n")
    return WfoServer(tmp_path / "s", args=["--config", str(cfg)], env=env).launch()


@pytest.fixture
def srv(tmp_path):
    s = server_with(tmp_path, "webhooks: {failing_after: 2, timeout: 2s}\n")
    yield s
    assert s.stop() == 0, s.stderr()


def subscribe(srv, url, types, secret="s3cret", expect=201, headers=None, **extra):
    body = {"url": url, "types": types, "secret": secret}
    body.update(extra)
    r = srv.post("/v1/subscriptions", body, headers=headers)
    assert r.status == expect, r
    return r.json


def post_event(srv, type, headers=None, **body):
    body["type"] = type
    r = srv.post("/v1/events", body, headers=headers)
    assert r.status in (200, 202), r
    return r.json["id"]


def sub_state(srv, sub_id, headers=None):
    r = srv.get(f"/v1/subscriptions/{sub_id}", headers=headers)
    assert r.status == 200, r
    return r.json


# ---- delivery -------------------------------------------------------------------

def test_signature_headers_and_body(srv, receiver):
    rec = receiver()
    t = unique("sig.event")
    sub = subscribe(srv, rec.url, [t], secret="k-123")
    assert "secret" not in sub and sub["status"] == "active" and sub["types"] == [t]
    ev = post_event(srv, t, key="k1", data={"n": 1}, source="shop")
    got = rec.wait(lambda g: len(g) >= 1)
    _, h, raw = got[0]
    mac = hmac.new(b"k-123", raw, hashlib.sha256).hexdigest()
    assert h["x-wfo-signature"] == "sha256=" + mac
    assert h["content-type"] == "application/json"
    assert h["x-wfo-event-id"] == ev and h["x-wfo-event-type"] == t
    assert h["x-wfo-subscription"] == sub["id"] and h["x-wfo-delivery-attempt"] == "1"
    body = json.loads(raw)
    assert body["id"] == ev and body["type"] == t and body["data"] == {"n": 1}
    assert body["key"] == "k1" and body["source"] == "shop" and body["time"]
    # GET shows what happened, never the secret
    deadline = time.monotonic() + 5
    while sub_state(srv, sub["id"])["delivered"] < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    st = sub_state(srv, sub["id"])
    assert st["delivered"] == 1 and st["last_delivery_at"] and st["last_error"] is None
    lst = srv.get("/v1/subscriptions").json["subscriptions"]
    assert any(s["id"] == sub["id"] for s in lst)
    assert all("secret" not in s for s in lst) and "k-123" not in json.dumps(lst)
    m = srv.get("/metrics").text
    assert 'wfo_webhook_deliveries_total{result="success"}' in m


def test_order_per_subscription_across_many_events(srv, receiver):
    rec = receiver()
    t = unique("order.event")
    subscribe(srv, rec.url, [t])
    ids = [post_event(srv, t, data={"i": i}) for i in range(40)]
    rec.wait(lambda g: len(g) >= 40)
    assert rec.ok_ids() == ids
    assert [b["data"]["i"] for b in rec.bodies()] == list(range(40))


def test_retry_with_backoff_keeps_the_order(srv, receiver):
    rec = receiver(lambda n, body: 500 if n < 2 else 200)
    t = unique("retry.event")
    sub = subscribe(srv, rec.url, [t])
    e1 = post_event(srv, t)
    e2 = post_event(srv, t)
    got = rec.wait(lambda g: len(g) >= 4)
    ids = [json.loads(b)["id"] for _, _, b in got]
    assert ids[:4] == [e1, e1, e1, e2], ids
    attempts = [h["x-wfo-delivery-attempt"] for _, h, _ in got[:4]]
    assert attempts == ["1", "2", "3", "1"]
    assert got[1][0] - got[0][0] >= 0.95  # the first retry after 1 s
    assert got[2][0] - got[1][0] >= 1.9   # then 2 s
    time.sleep(0.3)
    assert len(rec.got) == 4  # each delivered once after its 2xx
    st = sub_state(srv, sub["id"])
    assert st["delivered"] == 2 and st["failures"] == 0 and st["status"] == "active"


def test_a_dead_or_slow_endpoint_never_delays_another(srv, receiver):
    slow = receiver(lambda n, body: ("sleep", 30))
    live = receiver()
    dead_port = free_port()  # nothing listens there: connection refused
    t = unique("iso.event")
    subscribe(srv, slow.url, [t])
    subscribe(srv, f"http://127.0.0.1:{dead_port}/x", [t])
    subscribe(srv, live.url, [t])
    t0 = time.monotonic()
    ids = [post_event(srv, t) for _ in range(3)]
    live.wait(lambda g: len(g) >= 3, timeout=5)
    assert time.monotonic() - t0 < 3
    assert live.ok_ids() == ids


def test_failing_status_then_recovery(srv, receiver):
    healthy = threading.Event()
    rec = receiver(lambda n, body: 200 if healthy.is_set() else 503)
    t = unique("fail.event")
    sub = subscribe(srv, rec.url, [t])
    e1 = post_event(srv, t)
    # webhooks.failing_after: 2 -> failing after the first retry (~1 s)
    deadline = time.monotonic() + 10
    while True:
        st = sub_state(srv, sub["id"])
        if st["status"] == "failing":
            break
        assert time.monotonic() < deadline, st
        time.sleep(0.1)
    assert st["failures"] >= 2 and st["last_error"] == "HTTP 503" and st["next_attempt_at"]
    lst = srv.get("/v1/subscriptions").json["subscriptions"]
    assert [s["status"] for s in lst if s["id"] == sub["id"]] == ["failing"]
    m = srv.get("/metrics").text
    assert 'wfo_webhook_subscriptions{status="failing"} 1' in m
    assert 'wfo_webhook_deliveries_total{result="http_error"}' in m
    healthy.set()
    e2 = post_event(srv, t)
    deadline = time.monotonic() + 15
    while True:
        st = sub_state(srv, sub["id"])
        if st["status"] == "active" and st["delivered"] == 2:
            break
        assert time.monotonic() < deadline, st
        time.sleep(0.1)
    assert st["failures"] == 0 and st["last_error"] is None
    assert rec.ok_ids()[-2:] == [e1, e2]


def test_filters_exact_prefix_and_workflow(srv, receiver):
    exact, prefix, star, wf = receiver(), receiver(), receiver(), receiver()
    base = unique("filt")
    subscribe(srv, exact.url, [f"{base}.created"])
    subscribe(srv, prefix.url, [f"{base}.*"])
    subscribe(srv, star.url, [f"{base}x.one", "*"])
    name = unique("hookwf")
    other = unique("otherwf")
    for n in (name, other):
        srv.put_workflow({"name": n, "steps": [
            {"name": "e", "type": "emit", "event": {"type": f"{base}.emitted", "key": "k"}},
            {"name": "s", "type": "set", "vars": {"x": 1}}]})
    subscribe(srv, wf.url, ["execution.*", f"{base}.emitted"], workflow=name)
    a = post_event(srv, f"{base}.created")
    b = post_event(srv, f"{base}.updated")
    c = post_event(srv, f"{base}x.one")
    d = post_event(srv, f"{base}s.nope")
    x1 = srv.start_exec(name, query="?wait=30s")
    srv.start_exec(other, query="?wait=30s")
    exact.wait(lambda g: len(g) >= 1)
    prefix.wait(lambda g: len(g) >= 3)
    wf.wait(lambda g: len(g) >= 3)
    time.sleep(0.5)
    assert exact.ok_ids() == [a]
    got = prefix.bodies()
    assert [g["id"] for g in got[:2]] == [a, b]
    assert all(g["type"].startswith(base + ".") for g in got)
    assert c not in prefix.ok_ids() and d not in prefix.ok_ids()
    assert {a, b, c, d} <= set(star.ok_ids())
    wb = wf.bodies()
    assert [g["type"] for g in wb] == ["execution.started", f"{base}.emitted",
                                      "execution.completed"], wb
    assert all(g["key"] == x1["id"] or g["type"] == f"{base}.emitted" for g in wb)


def test_delete_stops_deliveries(srv, receiver):
    rec = receiver()
    t = unique("del.event")
    sub = subscribe(srv, rec.url, [t])
    post_event(srv, t)
    rec.wait(lambda g: len(g) >= 1)
    r = srv.request("DELETE", f"/v1/subscriptions/{sub['id']}")
    assert r.status == 200 and r.json == {"id": sub["id"], "deleted": True}, r
    assert srv.request("DELETE", f"/v1/subscriptions/{sub['id']}").status == 404
    assert srv.get(f"/v1/subscriptions/{sub['id']}").status == 404
    # nothing published after the DELETE's answer goes out (webhooks.c D7;
    # a delivery thread once sent one before the manager stopped it)
    for _ in range(5):
        post_event(srv, t)
    time.sleep(1.5)
    assert len(rec.got) == 1, rec.got


# ---- the request --------------------------------------------------------------------

@pytest.mark.parametrize("body,msg", [
    ({"types": ["a"], "secret": "s"}, "url"),
    ({"url": 5, "types": ["a"], "secret": "s"}, "url"),
    ({"url": "ftp://x/", "types": ["a"], "secret": "s"}, "http:// or https://"),
    ({"url": "http://", "types": ["a"], "secret": "s"}, "url"),
    ({"url": "http://x/" + "a" * 3000, "types": ["a"], "secret": "s"}, "url: longer"),
    ({"url": "http://x/", "secret": "s"}, "types"),
    ({"url": "http://x/", "types": "a", "secret": "s"}, "types: must be an array"),
    ({"url": "http://x/", "types": [], "secret": "s"}, "types: must hold at least one"),
    ({"url": "http://x/", "types": ["a", 3], "secret": "s"}, "types[1]"),
    ({"url": "http://x/", "types": [""], "secret": "s"}, "types[0]"),
    ({"url": "http://x/", "types": ["a*"], "secret": "s"}, "'*' only"),
    ({"url": "http://x/", "types": ["*.a"], "secret": "s"}, "'*' only"),
    ({"url": "http://x/", "types": ["t"] * 33, "secret": "s"}, "at most 32"),
    ({"url": "http://x/", "types": ["a"]}, "secret"),
    ({"url": "http://x/", "types": ["a"], "secret": ""}, "secret"),
    ({"url": "http://x/", "types": ["a"], "secret": 1}, "secret"),
    ({"url": "http://x/", "types": ["a"], "secret": "s", "workflow": ""}, "workflow"),
    ({"url": "http://x/", "types": ["a"], "secret": "s", "typez": 1}, "typez"),
])
def test_validation(srv, body, msg):
    r = srv.post("/v1/subscriptions", body)
    assert r.status == 400, r
    assert r.error["type"] == "BadRequest"
    assert msg in r.error["message"], r.error
    assert srv.post("/v1/subscriptions", "[1]").status == 400
    assert srv.post("/v1/subscriptions", "{not json").status == 400


def test_deny_private(tmp_path, receiver):
    s = server_with(tmp_path, "http: {deny_private: true}\n")
    try:
        for url in ("http://127.0.0.1:9/", "http://10.1.2.3/", "http://[::1]:8080/",
                    "http://localhost/", "https://169.254.169.254/x", "http://192.168.0.1/"):
            r = s.post("/v1/subscriptions", {"url": url, "types": ["a"], "secret": "s"})
            assert r.status == 400, (url, r)
            assert "private" in r.error["message"]
        # a name is checked when it resolves, at delivery
        host = socket.gethostname()
        try:
            addr = socket.gethostbyname(host)
        except OSError:
            pytest.skip("the host name does not resolve")
        if not (addr.startswith("127.") or addr.startswith("10.") or addr.startswith("192.168.")
                or addr.startswith("172.")):
            pytest.skip(f"{host} resolves to {addr}, not a private address")
        rec = receiver()
        sub = subscribe(s, f"http://{host}:{rec.port}/hook", ["priv.t"])
        post_event(s, "priv.t")
        deadline = time.monotonic() + 10
        while True:
            st = sub_state(s, sub["id"])
            if st["last_error"]:
                break
            assert time.monotonic() < deadline, st
            time.sleep(0.1)
        assert "private" in st["last_error"] and not rec.got
    finally:
        assert s.stop() == 0, s.stderr()


TOK_A = "team-a-admin-token-0000001"
TOK_A_OP = "team-a-operator-token-001"
TOK_B = "team-b-admin-token-0000001"


def test_namespaces_and_roles(tmp_path, receiver):
    s = server_with(tmp_path, "auth:\n  tokens:\n"
                    f"    - {{token: {TOK_A}, namespace: team-a, role: admin}}\n"
                    f"    - {{token: {TOK_A_OP}, namespace: team-a, role: operator}}\n"
                    f"    - {{token: {TOK_B}, namespace: team-b, role: admin}}\n")
    A, AOP, B = ({"Authorization": f"Bearer {t}"} for t in (TOK_A, TOK_A_OP, TOK_B))
    try:
        ra, rb = receiver(), receiver()
        sa = subscribe(s, ra.url, ["ns.*"], headers=A)
        sb = subscribe(s, rb.url, ["ns.*"], headers=B)
        assert s.post("/v1/subscriptions", {"url": ra.url, "types": ["a"], "secret": "s"},
                      headers=AOP).status == 403
        # an operator reads them (any role may GET), the url without its path
        r = s.get("/v1/subscriptions", headers=AOP)
        assert r.status == 200, r
        assert [x["id"] for x in r.json["subscriptions"]] == [sa["id"]], r.json
        assert s.request("DELETE", f"/v1/subscriptions/{sa['id']}", headers=AOP).status == 403
        assert s.get("/v1/subscriptions").status == 401
        # B never sees A's: not listed, 404 (not 403) by id
        lb = s.get("/v1/subscriptions", headers=B).json["subscriptions"]
        assert [x["id"] for x in lb] == [sb["id"]]
        assert s.get(f"/v1/subscriptions/{sa['id']}", headers=B).status == 404
        r = s.request("DELETE", f"/v1/subscriptions/{sa['id']}", headers=B)
        assert r.status == 404, r
        assert s.get(f"/v1/subscriptions/{sa['id']}", headers=A).status == 200
        # each gets only its namespace's events
        ea = post_event(s, "ns.a", headers=AOP)
        eb = post_event(s, "ns.b", headers=B)
        ra.wait(lambda g: len(g) >= 1)
        rb.wait(lambda g: len(g) >= 1)
        time.sleep(0.5)
        assert ra.ok_ids() == [ea] and rb.ok_ids() == [eb]
        m = s.get("/metrics").text
        assert "team-a" not in m and "team-b" not in m
    finally:
        assert s.stop() == 0, s.stderr()


# ---- durability --------------------------------------------------------------------

def test_kill9_between_acceptance_and_delivery(tmp_path, receiver):
    """Events accepted while the receiver is down, the server killed, the
    receiver up, the server restarted: each delivered, once, in order."""
    port = free_port()
    s = server_with(tmp_path)
    try:
        sub = subscribe(s, f"http://127.0.0.1:{port}/hook", ["crash.*"])
        ids = [post_event(s, "crash.t", data={"i": i}) for i in range(5)]
        time.sleep(0.3)  # at least one failed attempt
        s.proc.send_signal(signal.SIGKILL)
        s.proc.wait()
        s.proc = None
        rec = receiver(port=port)
        s.launch()
        rec.wait(lambda g: len(g) >= 5, timeout=20)
        time.sleep(0.5)
        assert rec.ok_ids() == ids
        # delivered and acknowledged: a second crash delivers none again
        more = [post_event(s, "crash.t", data={"i": i}) for i in range(5, 8)]
        rec.wait(lambda g: len(g) >= 8)
        deadline = time.monotonic() + 5
        while sub_state(s, sub["id"])["delivered"] < 8 and time.monotonic() < deadline:
            time.sleep(0.05)
        s.proc.send_signal(signal.SIGKILL)
        s.proc.wait()
        s.proc = None
        s.launch()
        last = post_event(s, "crash.t")
        rec.wait(lambda g: len(g) >= 9)
        time.sleep(0.5)
        assert rec.ok_ids() == ids + more + [last]
        assert sub_state(s, sub["id"])["delivered"] == 9
    finally:
        assert s.stop() == 0, s.stderr()


def test_retention_keeps_undelivered_rows(tmp_path):
    s = server_with(tmp_path, "events: {retention: 1s}\n")
    try:
        before = post_event(s, "ret.t")  # no subscription yet: retention may take it
        dead = free_port()
        sub = subscribe(s, f"http://127.0.0.1:{dead}/x", ["ret.*"])
        held = post_event(s, "ret.t")

        def count(eid):
            return store_rows(s, "SELECT count(*) FROM outbox WHERE event_id = ?", (eid,))[0][0]
        deadline = time.monotonic() + 10
        while count(before) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert count(before) == 0
        time.sleep(2.5)  # two more sweeps, the row well past the retention
        assert count(held) == 1
        assert sub_state(s, sub["id"])["last_error"]
        # deleting the subscription lets it go
        assert s.request("DELETE", f"/v1/subscriptions/{sub['id']}").status == 200
        deadline = time.monotonic() + 10
        while count(held) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert count(held) == 0
    finally:
        assert s.stop() == 0, s.stderr()


def test_timeout_setting(tmp_path, receiver):
    """webhooks.timeout bounds one delivery: a receiver that sleeps longer
    is a failure that names the timeout."""
    s = server_with(tmp_path, "webhooks: {timeout: 500ms}\n")
    try:
        rec = receiver(lambda n, body: ("sleep", 5) if n == 0 else 200)
        sub = subscribe(s, rec.url, ["slow.t"])
        post_event(s, "slow.t")
        deadline = time.monotonic() + 4
        while True:
            st = sub_state(s, sub["id"])
            if st["last_error"] or st["delivered"]:
                break
            assert time.monotonic() < deadline, st
            time.sleep(0.05)
        assert st["delivered"] == 0 and "tim" in st["last_error"].lower(), st
        assert st["status"] == "active"  # failing_after defaults to 5
        c = s.get("/v1/openapi.json").json
        assert "get" in c["paths"]["/v1/subscriptions/{id}"]
    finally:
        assert s.stop() == 0, s.stderr()


def test_print_config_shows_the_webhook_settings(tmp_path):
    cfg = tmp_path / "wfo.yaml"
    cfg.write_text("webhooks: {failing_after: 3, timeout: 4s}\n")
    r = subprocess.run([str(WFO_BIN), "server", "--config", str(cfg), "--print-config"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "failing_after" in r.stdout and "4s" in r.stdout
    cfg.write_text("webhooks: {failing_after: 0}\n")
    r = subprocess.run([str(WFO_BIN), "server", "--config", str(cfg), "--print-config"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "failing_after" in r.stderr


# ---- the CLI ---------------------------------------------------------------------------

def test_cli_subscriptions(srv, receiver):
    rec = receiver()
    url = f"http://127.0.0.1:{srv.port}"

    def wfo(*args):
        return subprocess.run([str(WFO_BIN), *args, "--server", url], capture_output=True,
                              text=True, timeout=30)
    r = wfo("subscriptions", "add", rec.url, "--types", "cli.a,cli.b.*", "--secret", "x")
    assert r.returncode == 0, r.stderr
    sub = json.loads(r.stdout)
    assert sub["types"] == ["cli.a", "cli.b.*"] and "secret" not in sub
    assert sub["workflow"] is None
    r = wfo("subscriptions", "list")
    assert r.returncode == 0 and sub["id"] in r.stdout and '"x"' not in r.stdout
    r = wfo("subscriptions", "add", rec.url, "--types", "cli.z", "--secret", "x",
            "--workflow", "some-wf")
    assert r.returncode == 0, r.stderr
    other = json.loads(r.stdout)
    assert other["workflow"] == "some-wf"
    assert wfo("subscriptions", "delete", other["id"]).returncode == 0
    r = wfo("subscriptions", "list", "--workflow", "w")
    assert r.returncode == 2 and "only with 'subscriptions add'" in r.stderr
    e = post_event(srv, "cli.b.c")
    rec.wait(lambda g: len(g) >= 1)
    assert rec.ok_ids() == [e]
    r = wfo("subscriptions", "delete", sub["id"])
    assert r.returncode == 0, r.stderr
    r = wfo("subscriptions", "delete", sub["id"])
    assert r.returncode == 1 and "404" in r.stderr
    r = wfo("subscriptions", "add", "ftp://x", "--types", "a", "--secret", "x")
    assert r.returncode == 1 and "http://" in r.stderr
