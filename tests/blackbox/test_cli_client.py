"""The client commands of SPEC 5: `wfo workflow put|list|get`, `start`, `get`,
`list`, `history`, `cancel`, `terminate`, `pause`, `resume`, `retry`,
`signal`, `emit`.

Two kinds of server:
- a fake one (FakeServer, Python's http.server in a thread) that records
  every request and answers what the test says: it checks what the client
  sends (method, path, headers, body), prints and exits with;
- the real `wfo server` (WfoServer), for the round trips of SPEC 3-5; those
  tests are skipped while the binary has no `server` command.

test_worker.py imports the helpers of this file (not its tests).
"""

import json
import os
import socket
import subprocess
import threading
import time
from pathlib import Path
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import apiutil
from conftest import WFO_BIN, run_on_a_terminal, run_wfo, write_def

FINAL = {"completed", "failed", "cancelled", "terminated"}


# ---------------------------------------------------------------- helpers ---

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client_env(url, token=None):
    """Environment for a client command: WFO_SERVER=url, WFO_TOKEN only when given."""
    env = {"WFO_SERVER": url}
    if token is not None:
        env["WFO_TOKEN"] = token
    return env


def wfo(args, url=None, token=None, input=None, timeout=60, env=None):
    """Runs `wfo ARGS` against url (WFO_SERVER); WFO_TOKEN removed unless given."""
    full = {}
    if url is not None:
        full.update(client_env(url, token))
    if env:
        full.update(env)
    saved = os.environ.pop("WFO_TOKEN", None)
    try:
        return run_wfo(args, input=input, timeout=timeout, env=full)
    finally:
        if saved is not None:
            os.environ["WFO_TOKEN"] = saved


def wfo_json(args, url, **kw):
    """`wfo ARGS` that must succeed; returns its stdout parsed."""
    rc, out, err = wfo(args, url, **kw)
    assert rc == 0, f"wfo {args} exited {rc}\nstderr:\n{err}"
    try:
        return json.loads(out)
    except ValueError:
        pytest.fail(f"stdout of wfo {args} is not JSON:\n{out[:2000]}")


class QuietHTTPServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a client that hung up (a cancelled long poll) is no error here


class FakeServer:
    """An HTTP server in a thread. `answer(method, path)` sets what a route
    gets: (status, body) with body a dict (sent as JSON), bytes or str, or a
    callable (request) -> (status, body). Unknown routes get 404 in wfo's
    error shape. Every request is kept in .requests as a dict: method, path
    (with the query), headers (lower-case names), body (bytes), json."""

    def __init__(self):
        self.routes = {}
        self.requests = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _serve(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                try:
                    parsed = json.loads(body) if body else None
                except ValueError:
                    parsed = None
                req = {"method": self.command, "path": self.path,
                       "headers": {k.lower(): v for k, v in self.headers.items()},
                       "body": body, "json": parsed}
                with fake.lock:
                    fake.requests.append(req)
                status, out = fake._answer(req)
                if isinstance(out, (dict, list)) or out is None:
                    data = json.dumps(out).encode()
                    ctype = "application/json"
                elif isinstance(out, str):
                    data = out.encode()
                    ctype = "text/plain"
                else:
                    data = out
                    ctype = "text/plain"
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

        self.httpd = QuietHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, method, path, reply):
        """path without the query matches any query; with one, exactly."""
        self.routes[(method, path)] = reply

    def _answer(self, req):
        path = req["path"]
        reply = self.routes.get((req["method"], path))
        if reply is None:
            reply = self.routes.get((req["method"], path.split("?", 1)[0]))
        if reply is None:
            return 404, {"error": {"type": "NotFound", "message": "no such route"}}
        if callable(reply):
            return reply(req)
        return reply

    def reqs(self, method=None, prefix=""):
        with self.lock:
            return [r for r in self.requests
                    if (method is None or r["method"] == method) and r["path"].startswith(prefix)]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fake():
    f = FakeServer()
    yield f
    f.close()


def server_available():
    """True when the binary has a `server` command."""
    try:
        p = subprocess.run([str(WFO_BIN), "server", "--help"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return p.returncode == 0


class WfoServer(apiutil.WfoServer):
    """apiutil's `wfo server` (own port and SQLite file, no WFO_* variables
    inherited), plus kill -9 and a start on the same port and database."""

    def __init__(self, tmp_path):
        super().__init__(Path(tmp_path) / "server")
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self):
        self.launch()
        self.url = f"http://127.0.0.1:{self.port}"  # launch may have moved it
        return self

    def output(self):
        return self.stderr()

    def kill(self):
        """kill -9 (a crash, not a failure of the test)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=30)
            self._err.close()
            self.proc = None

    def stop(self):
        rc = super().stop()
        assert rc in (0, None), self.stderr()


@pytest.fixture
def server(tmp_path):
    if not server_available():
        pytest.skip("this wfo has no `server` command yet")
    s = WfoServer(tmp_path).start()
    yield s
    s.stop()


def put_workflow(tmp_path, url, text, name="wf.yaml"):
    """`wfo workflow put` of a definition; returns the answer."""
    return wfo_json(["workflow", "put", write_def(tmp_path, text, name)], url)


def wait_status(url, exec_id, statuses, timeout=30):
    """Polls `wfo get` until the status is one of STATUSES; returns the document."""
    deadline = time.monotonic() + timeout
    while True:
        doc = wfo_json(["get", exec_id], url)
        if doc["status"] in statuses:
            return doc
        if time.monotonic() > deadline:
            pytest.fail(f"execution {exec_id} is {doc['status']}, not {statuses}: {doc}")
        time.sleep(0.1)


DEAD_URL = f"http://127.0.0.1:{free_port()}"  # nobody listens there

# ------------------------------------------------- against a fake server ---

EXEC_DOC = {"id": "e-1", "namespace": "default", "workflow": "w", "version": 1,
            "status": "running", "input": {}, "output": None, "error": None,
            "compensation": None, "steps": [], "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z", "finished_at": None, "parent": None}


# (argv, method, path, expected JSON body or None for no body)
ROUTES = [
    (["get", "e-1"], "GET", "/v1/executions/e-1", None),
    (["get", "a b/c"], "GET", "/v1/executions/a%20b%2Fc", None),
    (["history", "e-1"], "GET", "/v1/executions/e-1/history", None),
    (["cancel", "e-1"], "POST", "/v1/executions/e-1/cancel", {"compensate": False}),
    (["cancel", "e-1", "--compensate"], "POST", "/v1/executions/e-1/cancel",
     {"compensate": True}),
    (["cancel", "--compensate", "e-1", "--reason", "operator said so"], "POST",
     "/v1/executions/e-1/cancel", {"compensate": True, "reason": "operator said so"}),
    (["terminate", "e-1"], "POST", "/v1/executions/e-1/terminate", {}),
    (["pause", "e-1"], "POST", "/v1/executions/e-1/pause", {}),
    (["resume", "e-1"], "POST", "/v1/executions/e-1/resume", {}),
    (["retry", "e-1"], "POST", "/v1/executions/e-1/retry", {}),
    (["signal", "e-1", "approve", "--data", '{"ok": true}'], "POST",
     "/v1/executions/e-1/signals/approve", {"data": {"ok": True}}),
    (["signal", "e-1", "go"], "POST", "/v1/executions/e-1/signals/go", {"data": None}),
    (["emit", "order.created", "--key", "k-7", "--data", '{"n": 1}', "--id", "ev-1"], "POST",
     "/v1/events", {"type": "order.created", "key": "k-7", "data": {"n": 1}, "id": "ev-1"}),
    (["emit", "ping"], "POST", "/v1/events", {"type": "ping"}),
    (["list"], "GET", "/v1/executions", None),
    (["list", "--workflow", "w", "--status", "failed"], "GET",
     "/v1/executions?workflow=w&status=failed", None),
    (["list", "--status=running", "--limit", "5"], "GET",
     "/v1/executions?status=running&limit=5", None),
    (["workflow", "list"], "GET", "/v1/workflows", None),
    (["workflow", "get", "order-flow"], "GET", "/v1/workflows/order-flow", None),
    (["workflow", "get", "order-flow", "--version", "3"], "GET",
     "/v1/workflows/order-flow/versions/3", None),
    (["start", "w"], "POST", "/v1/executions", {"workflow": "w"}),
    (["start", "w", "--input", '{"a": [1, 2]}', "--id", "my-id"], "POST", "/v1/executions",
     {"workflow": "w", "input": {"a": [1, 2]}, "id": "my-id"}),
    (["start", "w", "--version", "2", "--input", "7"], "POST", "/v1/executions",
     {"workflow": "w", "version": 2, "input": 7}),
]


@pytest.mark.parametrize("argv,method,path,body", ROUTES,
                         ids=[" ".join(r[0]) for r in ROUTES])
def test_request_and_output(fake, argv, method, path, body):
    """Each command sends its method, path and JSON body, and prints the server's answer as JSON on stdout."""
    answer = {"answer": "from the server", "n": 42, "nested": {"list": [1, "two", None]}}
    fake.answer(method, path.split("?")[0], (200, answer))
    rc, out, err = wfo(argv, fake.url)
    assert rc == 0, err
    assert json.loads(out) == answer
    assert len(fake.requests) == 1
    req = fake.requests[0]
    assert req["method"] == method
    assert req["path"] == path
    if body is None:
        assert req["body"] == b""
    else:
        assert req["json"] == body
        assert req["headers"]["content-type"].startswith("application/json")


def test_start_prints_new_document(fake):
    """`wfo start` prints the new execution's document (201)."""
    fake.answer("POST", "/v1/executions", (201, EXEC_DOC))
    assert wfo_json(["start", "w"], fake.url) == EXEC_DOC


def test_input_from_file(fake, tmp_path):
    """--input @FILE reads the JSON from the file."""
    f = tmp_path / "in.json"
    f.write_text('{"from": "file", "n": [1, 2, 3]}')
    fake.answer("POST", "/v1/executions", (201, EXEC_DOC))
    wfo_json(["start", "w", "--input", f"@{f}"], fake.url)
    assert fake.reqs("POST", "/v1/executions")[0]["json"]["input"] == {"from": "file", "n": [1, 2, 3]}


def test_data_from_file(fake, tmp_path):
    f = tmp_path / "d.json"
    f.write_text('[1, {"x": "y"}]')
    fake.answer("POST", "/v1/events", (202, {"id": "ev"}))
    assert wfo_json(["emit", "t", "--data", f"@{f}"], fake.url) == {"id": "ev"}
    assert fake.reqs("POST", "/v1/events")[0]["json"]["data"] == [1, {"x": "y"}]


def test_token_sent_as_bearer(fake):
    """WFO_TOKEN goes out as `Authorization: Bearer TOKEN`."""
    fake.answer("GET", "/v1/executions/e-1", (200, EXEC_DOC))
    wfo_json(["get", "e-1"], fake.url, token="s3cret-token")
    assert fake.reqs("GET", "/v1/executions/e-1")[0]["headers"]["authorization"] == \
        "Bearer s3cret-token"


def test_no_token_no_header(fake):
    fake.answer("GET", "/v1/executions/e-1", (200, EXEC_DOC))
    wfo_json(["get", "e-1"], fake.url)
    assert "authorization" not in fake.reqs("GET", "/v1/executions/e-1")[0]["headers"]


def test_server_flag_beats_environment(fake):
    """--server URL wins over WFO_SERVER (which points where nobody listens here)."""
    fake.answer("GET", "/v1/executions/e-1", (200, EXEC_DOC))
    for flag in (["--server", fake.url], [f"--server={fake.url}"]):
        rc, out, err = wfo(["get", "e-1"] + flag, DEAD_URL)
        assert rc == 0, err
        assert json.loads(out) == EXEC_DOC
    assert len(fake.requests) == 2


def test_server_from_environment(fake):
    """WFO_SERVER alone is enough (a trailing slash is fine)."""
    fake.answer("GET", "/v1/workflows", (200, {"workflows": []}))
    assert wfo_json(["workflow", "list"], fake.url + "/") == {"workflows": []}
    assert fake.reqs("GET")[0]["path"] == "/v1/workflows"


def test_default_server_address():
    """No --server and no WFO_SERVER: http://127.0.0.1:7233."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", 7233))
        except OSError:
            pytest.skip("port 7233 is in use here")
        s.listen(1)
        env = dict(os.environ)
        env.pop("WFO_SERVER", None)
        env.pop("WFO_TOKEN", None)
        p = subprocess.Popen([str(WFO_BIN), "get", "e-1"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        s.settimeout(20)
        conn, _ = s.accept()  # the client came to 7233
        conn.settimeout(20)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
        body = b'{"error": {"type": "NotFound", "message": "nothing here"}}'
        conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n"
                     + body)
        conn.close()
        out, err = p.communicate(timeout=20)
    assert data.startswith(b"GET /v1/executions/e-1 HTTP/1.1")
    assert p.returncode == 1
    assert "wfo: 404 NotFound: nothing here" in err.decode()


def test_error_answer_on_stderr(fake):
    """A 4xx answer: exit 1, `wfo: STATUS TYPE: MESSAGE` on stderr, nothing on stdout."""
    fake.answer("GET", "/v1/executions/x", (404, {"error": {
        "type": "NotFound", "message": "execution 'x' not found"}}))
    rc, out, err = wfo(["get", "x"], fake.url)
    assert rc == 1
    assert out == ""
    assert err.strip() == "wfo: 404 NotFound: execution 'x' not found"


@pytest.mark.parametrize("argv,method,path", [
    (["start", "w"], "POST", "/v1/executions"),
    (["cancel", "e"], "POST", "/v1/executions/e/cancel"),
    (["emit", "t"], "POST", "/v1/events"),
    (["signal", "e", "s"], "POST", "/v1/executions/e/signals/s"),
    (["list"], "GET", "/v1/executions"),
])
def test_every_command_reports_errors(fake, argv, method, path):
    fake.answer(method, path, (409, {"error": {"type": "Conflict", "message": "no, because"}}))
    rc, out, err = wfo(argv, fake.url)
    assert rc == 1 and out == ""
    assert "wfo: 409 Conflict: no, because" in err


def test_error_that_is_not_json(fake):
    """A 5xx that is not wfo's error shape (a proxy's page) still gives a message."""
    fake.answer("GET", "/v1/executions/e", (502, "Bad Gateway from the proxy\n<html>...</html>"))
    rc, out, err = wfo(["get", "e"], fake.url)
    assert rc == 1 and out == ""
    assert "502" in err and "Bad Gateway from the proxy" in err
    assert "<html>" not in err


def test_not_implemented_answer(fake):
    """The server may answer 501 (e.g. signals not there yet): a failed request."""
    fake.answer("POST", "/v1/executions/e/signals/s", (501, {"error": {
        "type": "NotImplemented", "message": "signals are not implemented"}}))
    rc, out, err = wfo(["signal", "e", "s"], fake.url)
    assert rc == 1
    assert "wfo: 501 NotImplemented: signals are not implemented" in err


def test_definition_problems_listed(fake, tmp_path):
    """A 400 for a definition prints each {path, message} of error.details."""
    fake.answer("PUT", "/v1/workflows/bad", (400, {"error": {
        "type": "InvalidDefinition", "message": "2 problems",
        "details": [{"path": "steps[0].type", "message": "unknown step type 'nope'"},
                    {"path": "steps[1].next", "message": "no step named 'x'"}]}}))
    rc, out, err = wfo(["workflow", "put", write_def(tmp_path, "name: bad\nsteps: []\n")],
                       fake.url)
    assert rc == 1 and out == ""
    assert "400 InvalidDefinition: 2 problems" in err
    assert "steps[0].type: unknown step type 'nope'" in err
    assert "steps[1].next: no step named 'x'" in err


def test_connection_refused():
    """Nobody listening: exit 1, a message that says the connection failed."""
    rc, out, err = wfo(["get", "e-1"], DEAD_URL)
    assert rc == 1 and out == ""
    assert err.startswith("wfo: ")
    assert "connect" in err.lower()


def test_workflow_put_yaml(fake, tmp_path):
    """`workflow put FILE` sends the file as it is, as application/yaml, to the name it holds."""
    text = "# a comment kept as sent\nname: order-flow\nsteps:\n  - {name: a, type: set, vars: {x: 1}}\n"
    answer = {"name": "order-flow", "version": 1, "created_at": "t", "definition": {}}
    fake.answer("PUT", "/v1/workflows/order-flow", (201, answer))
    assert wfo_json(["workflow", "put", write_def(tmp_path, text)], fake.url) == answer
    req = fake.reqs("PUT", "/v1/workflows/order-flow")[0]
    assert req["body"] == text.encode()
    assert req["headers"]["content-type"].startswith("application/yaml")


def test_workflow_put_json(fake, tmp_path):
    text = '\n  {"name": "json-flow", "steps": [{"name": "a", "type": "succeed"}]}'
    fake.answer("PUT", "/v1/workflows/json-flow", (200, {"name": "json-flow", "version": 1}))
    wfo_json(["workflow", "put", write_def(tmp_path, text, "wf.json")], fake.url)
    req = fake.reqs("PUT", "/v1/workflows/json-flow")[0]
    assert req["body"] == text.encode()
    assert req["headers"]["content-type"].startswith("application/json")


def test_workflow_put_bad_files(fake, tmp_path):
    """A file that cannot be read or parsed, or has no name: exit 2, `FILE: MESSAGE`, nothing sent."""
    missing = tmp_path / "missing.yaml"
    rc, out, err = wfo(["workflow", "put", missing], fake.url)
    assert rc == 2 and out == ""
    assert err.startswith(f"{missing}: ")
    bad = write_def(tmp_path, "name: x\nsteps: [unclosed\n", "bad.yaml")
    rc, out, err = wfo(["workflow", "put", bad], fake.url)
    assert rc == 2 and err.startswith(f"{bad}: ")
    noname = write_def(tmp_path, "steps: []\n", "noname.yaml")
    rc, out, err = wfo(["workflow", "put", noname], fake.url)
    assert rc == 2 and err.startswith(f"{noname}: ")
    assert fake.requests == []


USAGE_ERRORS = [
    ["get"],
    ["get", "a", "b"],
    ["get", "a", "--bogus"],
    ["history"],
    ["cancel"],
    ["terminate"],
    ["pause"],
    ["resume"],
    ["retry"],
    ["start"],
    ["start", "w", "--input"],
    ["start", "w", "--input", "{not json"],
    ["start", "w", "--input", "@/nonexistent/in.json"],
    ["start", "w", "--version", "two"],
    ["signal", "e"],
    ["signal", "e", "s", "--data", "[1,"],
    ["emit"],
    ["emit", "t", "--data", "nope"],
    ["workflow"],
    ["workflow", "frobnicate"],
    ["workflow", "put"],
    ["workflow", "get"],
    ["workflow", "list", "extra"],
    ["workflow", "get", "w", "--version", "0"],
    ["list", "stray"],
    ["list", "--workflow"],
]


@pytest.mark.parametrize("argv", USAGE_ERRORS, ids=[" ".join(a) for a in USAGE_ERRORS])
def test_usage_errors(fake, argv):
    """Usage errors exit 2 with a message on stderr and send nothing."""
    rc, out, err = wfo(argv, fake.url)
    assert rc == 2, (rc, out, err)
    assert out == ""
    assert err.strip()
    assert fake.requests == []


def test_help(fake):
    rc, out, err = wfo(["start", "--help"], fake.url)
    assert rc == 0 and "usage: wfo start" in out
    assert fake.requests == []


def test_start_wait_long_polls(fake):
    """`start --wait` long-polls GET ?wait= until the status is final and prints the final document."""
    states = ["running", "paused", "running", "completed"]

    def poll(req):
        st = states.pop(0) if len(states) > 1 else states[0]
        return 200, dict(EXEC_DOC, status=st, output={"done": st == "completed"})

    fake.answer("POST", "/v1/executions", (201, EXEC_DOC))
    fake.answer("GET", "/v1/executions/e-1", poll)
    rc, out, err = wfo(["start", "w", "--wait"], fake.url)
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["status"] == "completed" and doc["output"] == {"done": True}
    # (its other GETs look for a task that no worker polls: the definition, the queues)
    gets = [r for r in fake.reqs("GET") if r["path"].startswith("/v1/executions/e-1")]
    assert len(gets) == 4
    assert all("wait=" in r["path"] for r in gets)


@pytest.mark.parametrize("status", ["failed", "cancelled", "terminated"])
def test_start_wait_unsuccessful(fake, status):
    """--wait exits like `wfo run`: 1 when the execution did not complete (the document is still printed)."""
    fake.answer("POST", "/v1/executions", (201, EXEC_DOC))
    fake.answer("GET", "/v1/executions/e-1", (200, dict(EXEC_DOC, status=status)))
    rc, out, err = wfo(["start", "w", "--wait"], fake.url)
    assert rc == 1
    assert json.loads(out)["status"] == status


def test_start_wait_already_final(fake):
    """An execution that is final at once (an existing id) needs no GET."""
    fake.answer("POST", "/v1/executions", (200, dict(EXEC_DOC, status="completed")))
    assert wfo_json(["start", "w", "--id", "e-1", "--wait"], fake.url)["status"] == "completed"
    assert fake.reqs("GET") == []


def test_start_wait_outlives_server_blip(fake):
    """--wait keeps waiting through a 503 (a server restarting)."""
    answers = [(503, {"error": {"type": "Unavailable", "message": "shutting down"}}),
               (200, dict(EXEC_DOC, status="completed"))]

    def poll(req):
        return answers.pop(0) if len(answers) > 1 else answers[0]

    fake.answer("POST", "/v1/executions", (201, EXEC_DOC))
    fake.answer("GET", "/v1/executions/e-1", poll)
    assert wfo_json(["start", "w", "--wait"], fake.url)["status"] == "completed"


def test_list_table_on_request(fake):
    """`wfo list` prints JSON, on a terminal too (SPEC 5); a table with
    --table."""
    page = {"executions": [dict(EXEC_DOC, id="exec-aaa", workflow="alpha", status="failed"),
                           dict(EXEC_DOC, id="exec-bbb", workflow="beta", status="completed")],
            "next_cursor": "CUR123"}
    fake.answer("GET", "/v1/executions", (200, page))
    assert wfo_json(["list"], fake.url) == page

    def on_a_terminal(args):
        rc, text = run_on_a_terminal(args, env={"WFO_SERVER": fake.url})
        assert rc == 0
        return text

    assert json.loads(on_a_terminal(["list"])) == page
    text = on_a_terminal(["list", "--table"])
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert "ID" in lines[0] and "STATUS" in lines[0] and "WORKFLOW" in lines[0]
    assert any("exec-aaa" in ln and "alpha" in ln and "failed" in ln for ln in lines)
    assert any("exec-bbb" in ln and "beta" in ln and "completed" in ln for ln in lines)
    assert "CUR123" in text
    with pytest.raises(ValueError):
        json.loads(text)


# ------------------------------------------------ against `wfo server` ---

SIMPLE = """\
name: simple
steps:
  - {name: double, type: set, vars: {n: "${ .input.n * 2 }"}}
  - {name: done, type: succeed, output: {n: "${ .vars.n }"}}
"""

WAITS = """\
name: waits
steps:
  - {name: nap, type: sleep, duration: 1h}
"""


def test_workflow_commands(server, tmp_path):
    """put (201, then 200 when identical, a new version when changed), list, get, get --version."""
    first = put_workflow(tmp_path, server.url, SIMPLE)
    assert first["name"] == "simple" and first["version"] == 1
    assert "created_at" in first and "definition" in first
    again = put_workflow(tmp_path, server.url, SIMPLE)
    assert again["version"] == 1
    changed = put_workflow(tmp_path, server.url, SIMPLE.replace("* 2", "* 3"), "v2.yaml")
    assert changed["version"] == 2
    lst = wfo_json(["workflow", "list"], server.url)
    assert "simple" in [w["name"] for w in lst["workflows"]]
    assert wfo_json(["workflow", "get", "simple"], server.url)["version"] == 2
    v1 = wfo_json(["workflow", "get", "simple", "--version", "1"], server.url)
    assert v1["version"] == 1
    rc, out, err = wfo(["workflow", "get", "nope"], server.url)
    assert rc == 1 and err.startswith("wfo: 404 NotFound: ")


def test_workflow_put_invalid(server, tmp_path):
    """An invalid definition: the server's 400 and its problems on stderr, exit 1."""
    bad = write_def(tmp_path, "name: broken\nsteps:\n  - {name: a, type: nope}\n")
    rc, out, err = wfo(["workflow", "put", bad], server.url)
    assert rc == 1 and out == ""
    assert err.startswith("wfo: 400 ")
    assert "steps[0]" in err


def test_start_wait_get_list_history(server, tmp_path):
    """start --wait prints the finished document; get, list and history agree with it."""
    put_workflow(tmp_path, server.url, SIMPLE)
    doc = wfo_json(["start", "simple", "--input", '{"n": 21}', "--wait"], server.url)
    assert doc["status"] == "completed"
    assert doc["output"] == {"n": 42}
    assert doc["workflow"] == "simple" and doc["input"] == {"n": 21}
    assert wfo_json(["get", doc["id"]], server.url) == doc
    lst = wfo_json(["list", "--workflow", "simple"], server.url)
    assert doc["id"] in [e["id"] for e in lst["executions"]]
    assert wfo_json(["list", "--status", "failed"], server.url)["executions"] == []
    hist = wfo_json(["history", doc["id"]], server.url)
    events = hist if isinstance(hist, list) else next(v for v in hist.values() if isinstance(v, list))
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))


def test_start_prints_running_document(server, tmp_path):
    put_workflow(tmp_path, server.url, WAITS)
    doc = wfo_json(["start", "waits", "--id", "nap-1"], server.url)
    assert doc["id"] == "nap-1"
    assert doc["status"] == "running"
    # the same id and input again: that execution; another input: 409
    assert wfo_json(["start", "waits", "--id", "nap-1"], server.url)["id"] == "nap-1"
    rc, out, err = wfo(["start", "waits", "--id", "nap-1", "--input", '{"other": 1}'], server.url)
    assert rc == 1 and err.startswith("wfo: 409 ")


def test_not_found_errors(server):
    for argv in (["get", "no-such-exec"], ["history", "no-such-exec"],
                 ["cancel", "no-such-exec"], ["start", "no-such-workflow"]):
        rc, out, err = wfo(argv, server.url)
        assert rc == 1, argv
        assert out == ""
        assert err.startswith("wfo: 404 NotFound: "), err


def test_pause_resume_cancel(server, tmp_path):
    put_workflow(tmp_path, server.url, WAITS)
    doc = wfo_json(["start", "waits"], server.url)
    wfo_json(["pause", doc["id"]], server.url)
    assert wait_status(server.url, doc["id"], {"paused"})["status"] == "paused"
    wfo_json(["resume", doc["id"]], server.url)
    wait_status(server.url, doc["id"], {"running"})
    wfo_json(["cancel", doc["id"]], server.url)
    assert wait_status(server.url, doc["id"], FINAL)["status"] == "cancelled"


def test_terminate(server, tmp_path):
    put_workflow(tmp_path, server.url, WAITS)
    doc = wfo_json(["start", "waits"], server.url)
    wfo_json(["terminate", doc["id"]], server.url)
    assert wait_status(server.url, doc["id"], FINAL)["status"] == "terminated"


def test_retry_needs_failed_execution(server, tmp_path):
    """retry of a running execution is refused (409); of a completed one too."""
    put_workflow(tmp_path, server.url, WAITS)
    doc = wfo_json(["start", "waits"], server.url)
    rc, out, err = wfo(["retry", doc["id"]], server.url)
    assert rc == 1 and err.startswith("wfo: 409 ")


def test_signal_and_emit(server, tmp_path):
    """signal and emit reach their endpoints (accepted, or 501 while not implemented)."""
    put_workflow(tmp_path, server.url, WAITS)
    doc = wfo_json(["start", "waits"], server.url)
    for argv in (["signal", doc["id"], "poke", "--data", '{"x": 1}'],
                 ["emit", "test.event", "--key", "k", "--data", "[1]", "--id", "ev-1"]):
        rc, out, err = wfo(argv, server.url)
        if rc == 0:
            json.loads(out)
        else:
            assert rc == 1 and err.startswith("wfo: 501 "), err
