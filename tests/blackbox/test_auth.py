"""Tokens, roles and namespaces (SPEC 4 "Authentication", SPEC 6 auth.tokens).

A server with tokens checks every request but /healthz, /readyz, /metrics
(and the page itself): no or an unknown token is 401, a role that may not
call a route is 403, and a token never sees another namespace's workflows,
executions or tasks: they answer 404 (never 403), and lists and metric
labels leave them out.
"""

import hashlib
import subprocess
import time

import pytest

from apiutil import Response, WfoServer, free_port, task_workflow
from conftest import WFO_BIN, check_no_crash

TOKENS = {
    "reader": "team-a-reader-token-0001",
    "worker": "team-a-worker-token-0001",
    "operator": "team-a-operator-token-01",
    "admin": "team-a-admin-token-000001",
}
B_ADMIN = "team-b-admin-token-000001"
ROLES = ["reader", "worker", "operator", "admin"]

CONFIG = "auth:\n  tokens:\n" + "".join(
    f"    - {{token: {t}, namespace: team-a, role: {r}}}\n" for r, t in TOKENS.items()
) + (
    # the digest form works the same (SPEC 6)
    f"    - {{token_sha256: {hashlib.sha256(B_ADMIN.encode()).hexdigest()}, namespace: team-b, "
    "role: admin, name: b-admin}\n"
)


def bearer(tok):
    return {"Authorization": f"Bearer {tok}"}


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    d = tmp_path_factory.mktemp("auth")
    cfg = d / "wfo.yaml"
    cfg.write_text(CONFIG)
    s = WfoServer(d, args=["--config", str(cfg)])
    s.launch()
    yield s
    assert s.stop() == 0, s.stderr()


def req(srv, method, path, tok=None, body=None, **kw):
    if path.startswith("/v1/events/stream") and method == "GET":
        # a stream does not end: its status and headers, then hang up
        h = dict(kw.get("headers") or {})
        if tok:
            h.update(bearer(tok))
        st = srv.stream(path, headers=h)
        try:
            r = Response(st.status, list(st.headers.items()),
                         b"" if st.status == 200 else st.r.read())
        finally:
            st.close()
        return r
    return srv.request(method, path, body=body, headers=bearer(tok) if tok else None, **kw)


# Every route of SPEC 4 with the least role that may call it.
ROUTES = [
    ("GET", "/v1/workflows", None, "reader"),
    ("GET", "/v1/workflows/{wf}", None, "reader"),
    ("PUT", "/v1/workflows/{wf}", "DEF", "admin"),
    ("GET", "/v1/workflows/{wf}/versions/1", None, "reader"),
    ("POST", "/v1/executions", {"workflow": "no-such-workflow"}, "operator"),
    ("GET", "/v1/executions", None, "reader"),
    ("GET", "/v1/executions/{ex}", None, "reader"),
    ("GET", "/v1/executions/{ex}/history", None, "reader"),
    ("POST", "/v1/executions/{ex}/pause", {}, "operator"),
    ("POST", "/v1/executions/{ex}/resume", {}, "operator"),
    ("POST", "/v1/executions/{ex}/retry", {}, "operator"),
    ("POST", "/v1/executions/{ex}/signals/go", {}, "operator"),
    ("POST", "/v1/executions/{ex}/cancel", {}, "operator"),
    ("POST", "/v1/executions/{ex}/terminate", {}, "operator"),
    ("POST", "/v1/events", {"type": "t"}, "operator"),
    ("GET", "/v1/events/stream", None, "reader"),
    ("POST", "/v1/subscriptions", {}, "admin"),
    ("GET", "/v1/subscriptions", None, "reader"),
    ("GET", "/v1/subscriptions/x", None, "reader"),
    ("DELETE", "/v1/subscriptions/x", None, "admin"),
    ("POST", "/v1/tasks/poll", {"queues": ["nobody-polls"], "worker": "w"}, "worker"),
    ("POST", "/v1/tasks/complete", {"results": [{"task_id": "x.1", "lease": "l"}]}, "worker"),
    ("POST", "/v1/tasks/x.1/complete", {"lease": "l"}, "worker"),
    ("POST", "/v1/tasks/x.1/fail", {"lease": "l", "error": {"type": "E"}}, "worker"),
    ("POST", "/v1/tasks/x.1/heartbeat", {"lease": "l"}, "worker"),
]


def fill(srv, path, body, wf, ex):
    if body == "DEF":
        body = task_workflow(wf, queue="matrix-q")
    return path.format(wf=wf, ex=ex), body


@pytest.fixture(scope="module")
def matrix_exec(srv):
    wf = "matrix-wf"
    r = req(srv, "PUT", f"/v1/workflows/{wf}", TOKENS["admin"], task_workflow(wf, queue="matrix-q"))
    assert r.status in (200, 201), r
    r = req(srv, "POST", "/v1/executions", TOKENS["admin"], {"workflow": wf, "id": "matrix-1"})
    assert r.status == 201, r
    return wf, "matrix-1"


@pytest.mark.parametrize("method,path,body,least", ROUTES, ids=[f"{m} {p}" for m, p, _, _ in ROUTES])
def test_route_matrix(srv, matrix_exec, method, path, body, least):
    wf, ex = matrix_exec
    p, b = fill(srv, path, body, wf, ex)
    # no token, and a token nobody configured: 401 with a challenge
    r = req(srv, method, p, None, b)
    assert r.status == 401, r
    assert r.error["type"] == "Unauthorized"
    assert r.headers.get("www-authenticate", "").startswith("Bearer"), r.headers
    r = req(srv, method, p, "not-a-configured-token-at-all", b)
    assert r.status == 401, r
    r = srv.request(method, p, body=b, headers={"Authorization": "Basic Zm9vOmJhcg=="})
    assert r.status == 401, r
    for role in ROLES:
        r = req(srv, method, p, TOKENS[role], b)
        if ROLES.index(role) >= ROLES.index(least):
            assert r.status not in (401, 403), (role, r)
        else:
            assert r.status == 403, (role, r)
            assert r.error["type"] == "Forbidden"
            assert least in r.error["message"], r


def test_public_routes_need_no_token(srv):
    for path in ("/healthz", "/readyz", "/metrics"):
        assert srv.get(path).status == 200, path
    # a bad token on a public route is simply anonymous
    assert req(srv, "GET", "/healthz", "bogus-bogus-bogus-bogus").status == 200
    # a public path with another method: 405, still without a token
    assert req(srv, "POST", "/healthz").status == 405


def test_every_other_request_is_checked(srv):
    """SPEC 4: with tokens configured, every request but /healthz, /readyz
    and /metrics needs one, whether or not its route exists."""
    for method, path in [("GET", "/v1/openapi.json"), ("GET", "/v1/schemas/workflow.json"),
                         ("GET", "/v1/nope"), ("PATCH", "/v1/executions"),
                         ("DELETE", "/healthz/x"), ("GET", "/v1/executions/%zz"),
                         ("GET", "/")]:
        for tok in (None, "bogus-bogus-bogus-bogus"):
            r = req(srv, method, path, tok)
            assert r.status == 401, (method, path, tok, r)
            assert r.headers.get("www-authenticate") == "Bearer", r
    # the page comes with its 401: a browser shows it, and it asks for a token
    r = req(srv, "GET", "/")
    assert "text/html" in r.headers["content-type"] and "<html" in r.text
    # with a token: the answers of a known caller
    tok = TOKENS["reader"]
    assert req(srv, "GET", "/v1/openapi.json", tok).status == 200
    assert req(srv, "GET", "/v1/schemas/workflow.json", tok).status == 200
    assert req(srv, "GET", "/", tok).status == 200
    assert req(srv, "GET", "/v1/nope", tok).status == 404
    assert req(srv, "PATCH", "/v1/executions", tok).status == 405
    assert req(srv, "GET", "/v1/executions/%zz", tok).status == 400


def test_reader_reads_subscriptions_without_credentials(srv):
    """A reader may GET subscriptions (SPEC 4: GET only); the url's user information, path,
    query and fragment, which may hold credentials, are left out for it, and the secret for
    all."""
    url = "http://hook-user:hook-pass@127.0.0.1:9/hook/T0KEN?token=s3cret#frag"
    r = req(srv, "POST", "/v1/subscriptions", TOKENS["admin"],
            {"url": url, "types": ["execution.*"], "secret": "whsec-0123456789"})
    assert r.status == 201, r
    sid = r.json["id"]
    try:
        r = req(srv, "GET", f"/v1/subscriptions/{sid}", TOKENS["admin"])
        assert r.status == 200 and r.json["url"] == url, r
        for role in ("reader", "worker", "operator"):
            one = req(srv, "GET", f"/v1/subscriptions/{sid}", TOKENS[role])
            assert one.status == 200, (role, one)
            assert one.json["url"] == "http://127.0.0.1:9/...", (role, one.json)
            listed = req(srv, "GET", "/v1/subscriptions", TOKENS[role])
            assert listed.status == 200, (role, listed)
            assert [x["url"] for x in listed.json["subscriptions"] if x["id"] == sid] == \
                ["http://127.0.0.1:9/..."], listed.json
            for text in (one.text, listed.text):
                assert "hook-pass" not in text and "s3cret" not in text, text
                assert "T0KEN" not in text, text
                assert "whsec-0123456789" not in text
        r = req(srv, "DELETE", f"/v1/subscriptions/{sid}", TOKENS["operator"])
        assert r.status == 403, r
    finally:
        assert req(srv, "DELETE", f"/v1/subscriptions/{sid}", TOKENS["admin"]).status == 200


def test_foreign_namespace_is_404(srv):
    a, b = TOKENS["admin"], B_ADMIN
    wf = "ns-private-wf"
    r = req(srv, "PUT", f"/v1/workflows/{wf}", a, task_workflow(wf, queue="ns-private-q"))
    assert r.status in (200, 201), r
    r = req(srv, "POST", "/v1/executions", a, {"workflow": wf, "id": "ns-private-1",
                                                "input": {"card": "4111"}})
    assert r.status == 201, r
    assert r.json["namespace"] == "team-a"

    # team-b sees nothing of team-a: 404, never 403
    for method, path, body in [
        ("GET", f"/v1/workflows/{wf}", None),
        ("GET", f"/v1/workflows/{wf}/versions/1", None),
        ("GET", "/v1/executions/ns-private-1", None),
        ("GET", "/v1/executions/ns-private-1?wait=1s", None),
        ("GET", "/v1/executions/ns-private-1/history", None),
        ("POST", "/v1/executions/ns-private-1/cancel", {}),
        ("POST", "/v1/executions/ns-private-1/pause", {}),
        ("POST", "/v1/executions/ns-private-1/terminate", {}),
        ("POST", "/v1/executions/ns-private-1/signals/x", {}),
        ("POST", "/v1/executions", {"workflow": wf}),
    ]:
        r = req(srv, method, path, b, body)
        assert r.status == 404, (method, path, r)
        assert "team-a" not in r.text and "4111" not in r.text
    # the same message as an execution that does not exist
    r1 = req(srv, "GET", "/v1/executions/ns-private-1", b)
    r2 = req(srv, "GET", "/v1/executions/ns-never-was", b)
    assert r1.error["message"].replace("ns-private-1", "X") == \
        r2.error["message"].replace("ns-never-was", "X")

    # lists leave team-a out
    r = req(srv, "GET", "/v1/workflows", b)
    assert r.status == 200 and wf not in r.text, r
    r = req(srv, "GET", "/v1/executions", b)
    assert r.status == 200 and "ns-private-1" not in r.text, r
    r = req(srv, "GET", f"/v1/executions?workflow={wf}", b)
    assert r.json["executions"] == [], r

    # the same id started in team-b does not return team-a's execution
    r = req(srv, "PUT", f"/v1/workflows/{wf}", b, task_workflow(wf, queue="ns-private-q"))
    assert r.status == 201, r
    r = req(srv, "POST", "/v1/executions", b, {"workflow": wf, "id": "ns-private-1",
                                                "input": {"card": "4111"}})
    assert r.status == 409, r
    assert "4111" not in r.text and "team-a" not in r.text

    # tasks: team-b's worker gets nothing from team-a's queue and cannot touch its task
    r = req(srv, "POST", "/v1/tasks/poll", b, {"queues": ["ns-private-q"], "worker": "b"})
    assert r.status == 200 and r.json["tasks"] == [], r
    r = req(srv, "POST", "/v1/tasks/poll", TOKENS["worker"],
            {"queues": ["ns-private-q"], "worker": "a", "wait": "5s"})
    assert r.status == 200 and len(r.json["tasks"]) == 1, r
    t = r.json["tasks"][0]
    for path, body in [(f"/v1/tasks/{t['task_id']}/heartbeat", {"lease": t["lease"]}),
                       (f"/v1/tasks/{t['task_id']}/fail",
                        {"lease": t["lease"], "error": {"type": "X"}}),
                       (f"/v1/tasks/{t['task_id']}/complete", {"lease": t["lease"], "output": 1})]:
        r = req(srv, "POST", path, b, body)
        assert r.status == 404, (path, r)
    r = req(srv, "POST", "/v1/tasks/complete", b,
            {"results": [{"task_id": t["task_id"], "lease": t["lease"], "output": 1}]})
    assert r.status == 200 and r.json["results"][0]["status_code"] == 404, r
    # team-a's worker still completes it
    r = req(srv, "POST", f"/v1/tasks/{t['task_id']}/complete", TOKENS["worker"],
            {"lease": t["lease"], "output": {"ok": 1}})
    assert r.status == 200, r
    r = req(srv, "GET", "/v1/executions/ns-private-1?wait=10s", TOKENS["reader"])
    assert r.json["status"] == "completed", r


def test_completion_poll_stays_in_its_namespace(srv):
    """POST /v1/tasks/complete's poll leases from the caller's namespace
    only, as /v1/tasks/poll does: team-b's ready task on a queue of the
    same name is not handed to team-a's worker."""
    a, b, w = TOKENS["admin"], B_ADMIN, TOKENS["worker"]
    for tok, wf, q in [(a, "ns-eager-a", "ns-eager-a"), (b, "ns-eager-b", "ns-eager-shared")]:
        r = req(srv, "PUT", f"/v1/workflows/{wf}", tok, task_workflow(wf, queue=q))
        assert r.status in (200, 201), r
        r = req(srv, "POST", "/v1/executions", tok, {"workflow": wf})
        assert r.status == 201, r
    r = req(srv, "POST", "/v1/tasks/poll", w, {"queues": ["ns-eager-a"], "worker": "a",
                                               "wait": "5s"})
    assert r.status == 200 and len(r.json["tasks"]) == 1, r
    t = r.json["tasks"][0]
    r = req(srv, "POST", "/v1/tasks/complete", w,
            {"results": [{"task_id": t["task_id"], "lease": t["lease"], "output": 1}],
             "poll": {"queues": ["ns-eager-shared"], "worker": "a", "max": 10}})
    assert r.status == 200 and r.json["results"][0]["status"] == "completed", r
    assert r.json["tasks"] == [], r
    r = req(srv, "POST", "/v1/tasks/poll", b, {"queues": ["ns-eager-shared"], "worker": "b"})
    assert r.status == 200 and len(r.json["tasks"]) == 1, r


def test_metrics_labels_stay_in_their_namespace(srv):
    a = TOKENS["admin"]
    wf = "metric-secret-wf"
    r = req(srv, "PUT", f"/v1/workflows/{wf}", a,
            {"name": wf, "steps": [{"name": "s", "type": "set", "vars": {"x": 1}}]})
    assert r.status in (200, 201), r
    r = req(srv, "POST", "/v1/executions?wait=10s", a, {"workflow": wf})
    assert r.status in (200, 201), r
    assert wf not in srv.get("/metrics").text  # anonymous
    assert wf not in req(srv, "GET", "/metrics", B_ADMIN).text  # another namespace
    assert f'workflow="{wf}"' in req(srv, "GET", "/metrics", TOKENS["reader"]).text


def test_queue_metrics_of_the_callers_namespace(srv):
    """SPEC 7: queue depth and age by queue: with tokens, /metrics shows the
    caller's namespace's queues (they were all left out), and no other's."""
    a = TOKENS["admin"]
    wf, q = "metric-queue-wf", "metric-q-own"
    r = req(srv, "PUT", f"/v1/workflows/{wf}", a,
            {"name": wf, "steps": [{"name": "t", "type": "task", "queue": q}]})
    assert r.status in (200, 201), r
    assert req(srv, "POST", "/v1/executions", a, {"workflow": wf}).status == 201
    text = req(srv, "GET", "/metrics", TOKENS["reader"]).text
    assert f'wfo_queue_ready_tasks{{queue="{q}"}} 1' in text, text
    assert f'wfo_queue_lease_expiries_total{{queue="{q}"}} 0' in text, text
    assert q not in req(srv, "GET", "/metrics", B_ADMIN).text
    assert q not in srv.get("/metrics").text


def test_cursor_of_another_namespace_is_refused(srv):
    a = TOKENS["admin"]
    for i in range(3):
        req(srv, "POST", "/v1/executions", a, {"workflow": "matrix-wf"})
    r = req(srv, "GET", "/v1/executions?limit=1", a)
    cur = r.json["next_cursor"]
    assert req(srv, "GET", f"/v1/executions?limit=1&cursor={cur}", a).status == 200
    r = req(srv, "GET", f"/v1/executions?limit=1&cursor={cur}", B_ADMIN)
    assert r.status == 400, r


def test_tokens_on_public_address_answer_401(tmp_path):
    port = free_port()
    cfg = tmp_path / "wfo.yaml"
    cfg.write_text(CONFIG)
    srv = WfoServer(tmp_path, args=["--config", str(cfg), "--listen", f"0.0.0.0:{port}"],
                    port=port)
    srv.launch()
    try:
        r = srv.get("/v1/workflows")
        assert r.status == 401, r
        r = srv.post("/v1/executions", {"workflow": "x"})
        assert r.status == 401, r
        r = srv.post("/v1/tasks/poll", {"queues": ["q"], "worker": "w"})
        assert r.status == 401, r
        assert req(srv, "GET", "/v1/workflows", TOKENS["reader"]).status == 200
        assert "not checked" not in srv.stderr()
    finally:
        assert srv.stop() == 0


@pytest.mark.parametrize("token", ["fifteen-chars!!", "\u00e9" * 9 + "-x"])
def test_short_token_refused_at_start(tmp_path, token):
    """16 characters, not bytes: nine "é" are 18 bytes and 11 characters."""
    cfg = tmp_path / "wfo.yaml"
    cfg.write_text(f"auth:\n  tokens:\n    - {{token: {token}, role: admin}}\n")
    p = subprocess.run([str(WFO_BIN), "server", "--config", str(cfg), "--db", "sqlite::memory:",
                        "--listen", f"127.0.0.1:{free_port()}"],
                       capture_output=True, timeout=30)
    err = p.stderr.decode()
    check_no_crash(p.returncode, err)
    assert p.returncode == 2, err
    assert f"{cfg}: auth.tokens[0]: token: shorter than 16 characters" in err


def test_client_commands_and_worker_send_wfo_token(srv, tmp_path):
    env_ok = {"WFO_SERVER": f"http://127.0.0.1:{srv.port}", "WFO_TOKEN": TOKENS["admin"]}
    env_bad = {"WFO_SERVER": f"http://127.0.0.1:{srv.port}", "WFO_TOKEN": "wrong-token-wrong-token"}
    env_none = {"WFO_SERVER": f"http://127.0.0.1:{srv.port}"}
    base = {k: v for k, v in __import__("os").environ.items() if not k.startswith("WFO_")}

    def wfo(args, env):
        p = subprocess.run([str(WFO_BIN)] + args, capture_output=True, timeout=60,
                           env={**base, **env})
        check_no_crash(p.returncode, p.stderr.decode())
        return p.returncode, p.stdout.decode(), p.stderr.decode()

    rc, out, err = wfo(["workflow", "list"], env_ok)
    assert rc == 0, err
    rc, out, err = wfo(["workflow", "list"], env_bad)
    assert rc != 0 and "token" in err, err
    rc, out, err = wfo(["list"], env_none)
    assert rc != 0 and "token" in err, err

    # the worker polls with its token and completes a task of its namespace
    wf = "worker-token-wf"
    r = req(srv, "PUT", f"/v1/workflows/{wf}", TOKENS["admin"], task_workflow(wf, queue="wt-q"))
    assert r.status in (200, 201)
    r = req(srv, "POST", "/v1/executions", TOKENS["admin"], {"workflow": wf, "input": {"v": 7}})
    ex = r.json["id"]
    w = subprocess.Popen([str(WFO_BIN), "worker", "--queue", "wt-q", "--", "cat"],
                         env={**base, **env_ok, "WFO_TOKEN": TOKENS["worker"]},
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        r = req(srv, "GET", f"/v1/executions/{ex}?wait=20s", TOKENS["reader"], timeout=60)
        assert r.json["status"] == "completed", r
        assert r.json["output"] == {"v": 7}
    finally:
        w.terminate()
        w.wait(30)
