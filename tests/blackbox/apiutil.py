"""Helpers for the black-box tests of `wfo server` (SPEC 4, 6).

A WfoServer runs `$WFO_BIN server` on a free loopback port with its own
SQLite file in a temporary directory (or, with WFO_TEST_DB=postgres, its own
database on the PostgreSQL server that $WFO_TEST_PG names: `make
blackbox-pg`), waits for /healthz, and on stop sends
SIGTERM and checks that the server exited 0 without a crash or sanitizer
report. Requests go through http.client, so the tests see exactly what is
on the wire (status, headers, body) and can also speak raw bytes.
"""

import http.client
import json
import os
import signal
import re
import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import CRASH_RE, WFO_BIN

START_TIMEOUT = 30.0

# The store back end of every WfoServer: "sqlite" (a file in its workdir)
# or "postgres" (a database of its own, created in $WFO_TEST_PG's server).
TEST_DB = os.environ.get("WFO_TEST_DB", "sqlite")
_pg_count = 0


def pg_url(db):
    """$WFO_TEST_PG (postgres://AUTH/DB?PARAMS) with its database replaced by db."""
    base = os.environ["WFO_TEST_PG"]
    head, sep, rest = base.partition("://")
    auth_end = len(rest)
    for ch in "/?":
        i = rest.find(ch)
        if i >= 0:
            auth_end = min(auth_end, i)
    auth, tail = rest[:auth_end], rest[auth_end:]
    params = tail[tail.find("?"):] if "?" in tail else ""
    return f"{head}{sep}{auth}/{db}{params}"


def pg_fresh_database():
    """A new, empty database on $WFO_TEST_PG's server; returns its URL."""
    global _pg_count
    _pg_count += 1
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw")
    name = f"wfo_bb_{os.getpid()}_{worker}_{_pg_count}".lower()
    subprocess.run(["psql", os.environ["WFO_TEST_PG"], "-qAt", "-v", "ON_ERROR_STOP=1",
                    "-c", f"CREATE DATABASE {name}"], check=True, capture_output=True,
                   timeout=60)
    return pg_url(name)


_pg_by_path = {}


def db_url_for(path):
    """The --db of a server whose SQLite file would be path: that file, or
    under WFO_TEST_DB=postgres a fresh database, the same one for every
    server of that path (two servers on "one file" share one database)."""
    if TEST_DB != "postgres":
        return f"sqlite:{path}"
    key = os.path.realpath(path)
    if key not in _pg_by_path:
        _pg_by_path[key] = pg_fresh_database()
    return _pg_by_path[key]


def store_rows(srv, sql, params=()):
    """The rows of sql run on srv's store below the API, as tuples: its
    SQLite file, or its PostgreSQL database through psql (integers read back
    as int, NULL as None). params fill the ?s (strings, as literals)."""
    if TEST_DB != "postgres":
        con = sqlite3.connect(srv.db, timeout=10)
        try:
            return con.execute(sql, params).fetchall()
        finally:
            con.close()
    parts = sql.split("?")
    assert len(parts) == len(params) + 1, (sql, params)
    text = parts[0]
    for p, rest in zip(params, parts[1:]):
        text += "'" + str(p).replace("'", "''") + "'" + rest
    out = subprocess.run(["psql", srv.db_url, "-qAt", "-F", "\x1f", "-P", "null=\x1e",
                          "-v", "ON_ERROR_STOP=1", "-c", text], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    conv = lambda f: None if f == "\x1e" else int(f) if re.fullmatch(r"-?\d+", f) else f
    return [tuple(conv(f) for f in line.split("\x1f")) for line in out.split("\n") if line]


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Response:
    def __init__(self, status, headers, raw):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers}
        self.raw = raw
        self.text = raw.decode("utf-8", "replace")
        try:
            self.json = json.loads(self.text) if raw else None
        except ValueError:
            self.json = None

    def __repr__(self):
        return f"<{self.status} {self.text[:300]!r}>"

    @property
    def error(self):
        """The {type, message} of an error document (asserting its shape)."""
        assert isinstance(self.json, dict) and isinstance(self.json.get("error"), dict), self
        e = self.json["error"]
        assert isinstance(e.get("type"), str) and e["type"], self
        assert isinstance(e.get("message"), str), self
        return e


class WfoServer:
    def __init__(self, workdir, args=(), env=None, port=None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        # a port found free may be taken before the server binds it (by
        # another pytest-xdist worker): the first launch then tries another
        self._retry_port = port is None
        self.port = port or free_port()
        self.db = self.workdir / "wfo.db"  # the SQLite file (WFO_TEST_DB=sqlite)
        self.db_url = db_url_for(self.db)  # what --db gets; kept across restarts
        self.args = list(args)
        self.env = dict(os.environ)
        for k in list(self.env):
            if k.startswith("WFO_") and k != "WFO_BIN":
                del self.env[k]
        self.env.setdefault("WFO_LOG_LEVEL", "info")
        if env:
            self.env.update(env)
        self.proc = None
        self.stderr_path = self.workdir / f"server-{self.port}.err"

    @property
    def host(self):
        return "127.0.0.1"

    def launch(self, wait=True):
        for attempt in range(3):
            argv = [str(WFO_BIN), "server", "--listen", f"127.0.0.1:{self.port}",
                    "--db", self.db_url] + self.args
            self._err = open(self.stderr_path, "ab")
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=self._err,
                                         env=self.env, cwd=self.workdir)
            if not wait or self.wait_ready(port_taken_ok=self._retry_port and attempt < 2):
                break
            self._err.close()
            self.proc = None
            self.port = free_port()
            self.stderr_path = self.workdir / f"server-{self.port}.err"
        self._retry_port = False  # a restart keeps its port
        return self

    def wait_ready(self, port_taken_ok=False):
        """Waits for /healthz; False when the server could not bind its
        port and port_taken_ok (the caller tries another)."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if port_taken_ok and "Address already in use" in self.stderr():
                    return False
                pytest.fail(f"wfo server exited {self.proc.returncode}:\n{self.stderr()}")
            try:
                r = self.request("GET", "/healthz", timeout=2)
                if r.status == 200:
                    # another test's server may hold the port this one
                    # failed to bind, and answer before this one has exited
                    time.sleep(0.1)
                    if self.proc.poll() is None:
                        return True
                    continue
            except OSError:
                pass
            time.sleep(0.05)
        pytest.fail(f"wfo server did not answer /healthz in {START_TIMEOUT}s:\n{self.stderr()}")

    def stderr(self):
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Stops the server; returns its exit status. Asserts no crash."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"wfo server did not stop within {timeout}s of {sig!r}:\n{self.stderr()}")
        self._err.close()
        self.proc = None
        err = self.stderr()
        m = CRASH_RE.search(err)
        assert m is None, f"crash/sanitizer report on stderr:\n{err[-6000:]}"
        assert rc >= 0, f"wfo server died by signal {-rc}:\n{err[-4000:]}"
        return rc

    # ---- requests ----

    def conn(self, timeout=30):
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=30, conn=None):
        """One request. body: dict/list (sent as JSON), str or bytes (as is)."""
        h = dict(headers or {})
        if body is not None and not isinstance(body, (str, bytes)):
            body = json.dumps(body)
            h.setdefault("Content-Type", "application/json")
        if isinstance(body, str):
            body = body.encode()
        c = conn or self.conn(timeout)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            raw = r.read()
            return Response(r.status, r.getheaders(), raw)
        finally:
            if conn is None:
                c.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def stream(self, path="/v1/events/stream", headers=None, timeout=10):
        """Opens a Server-Sent Events stream; its headers are read, its
        body is read message by message (SseStream.next)."""
        return SseStream(self, path, headers, timeout)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)

    def put(self, path, body=None, **kw):
        return self.request("PUT", path, body=body, **kw)

    def raw(self, data, timeout=10, read=True):
        """Sends raw bytes on a new connection; returns what came back."""
        with socket.create_connection((self.host, self.port), timeout=timeout) as s:
            s.sendall(data)
            if not read:
                return b""
            return recv_all(s, timeout)

    # ---- workflow helpers ----

    def put_workflow(self, definition, expect=(200, 201)):
        name = definition["name"]
        r = self.put(f"/v1/workflows/{name}", definition)
        assert r.status in expect, r
        return r

    def start_exec(self, workflow, input=None, id=None, expect=201, query=""):
        body = {"workflow": workflow}
        if input is not None:
            body["input"] = input
        if id is not None:
            body["id"] = id
        r = self.post("/v1/executions" + query, body)
        assert r.status == expect, r
        return r.json

    def doc(self, exec_id, wait=None):
        q = f"?wait={wait}" if wait else ""
        r = self.get(f"/v1/executions/{exec_id}{q}", timeout=120)
        assert r.status == 200, r
        return r.json

    def poll(self, queues, worker="test-worker", max=None, wait=None, expect=200):
        body = {"queues": queues, "worker": worker}
        if max is not None:
            body["max"] = max
        if wait is not None:
            body["wait"] = wait
        r = self.post("/v1/tasks/poll", body, timeout=120)
        assert r.status == expect, r
        return r.json["tasks"] if expect == 200 else r

    def wait_status(self, exec_id, statuses, timeout=20):
        """Polls until the execution's status is one of STATUSES."""
        if isinstance(statuses, str):
            statuses = (statuses,)
        deadline = time.monotonic() + timeout
        while True:
            d = self.doc(exec_id)
            if d["status"] in statuses:
                return d
            if time.monotonic() > deadline:
                pytest.fail(f"execution {exec_id} is {d['status']}, not {statuses}: {d}")
            time.sleep(0.05)

    def wait_step(self, exec_id, step, status, timeout=20):
        deadline = time.monotonic() + timeout
        while True:
            d = self.doc(exec_id)
            for s in d["steps"]:
                if s["name"] == step and s["status"] == status:
                    return d
            if time.monotonic() > deadline:
                pytest.fail(f"step {step} of {exec_id} never {status}: {d}")
            time.sleep(0.05)


class SseStream:
    """GET of an event stream: status and headers at once, then messages."""

    def __init__(self, srv, path, headers, timeout):
        self.c = srv.conn(timeout)
        self.c.request("GET", path, headers=dict(headers or {}))
        self.r = self.c.getresponse()
        self.status = self.r.status
        self.headers = {k.lower(): v for k, v in self.r.getheaders()}
        self.comments = []

    def next(self):
        """The next message as {id, event, data} (data parsed as JSON);
        comment lines are kept in self.comments. socket.timeout when none
        comes in time."""
        msg = {}
        while True:
            line = self.r.readline()
            if not line:
                raise EOFError("stream ended")
            line = line.decode().rstrip("\r\n")
            if line == "":
                if msg:
                    if "data" in msg:
                        msg["data"] = json.loads(msg["data"])
                    return msg
                continue
            if line.startswith(":"):
                self.comments.append(line)
                continue
            k, _, v = line.partition(":")
            msg[k] = v[1:] if v.startswith(" ") else v

    def take(self, n):
        return [self.next() for _ in range(n)]

    def close(self):
        self.c.close()


def recv_all(s, timeout=10):
    """Reads until the peer closes or TIMEOUT passes without data."""
    s.settimeout(timeout)
    chunks = []
    while True:
        try:
            b = s.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            break
        if not b:
            break
        chunks.append(b)
    return b"".join(chunks)


def recv_response(s, timeout=10):
    """Reads one HTTP response head (and the body by Content-Length)."""
    s.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        b = s.recv(65536)
        if not b:
            break
        data += b
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0") or 0)
    while len(body) < n:
        b = s.recv(65536)
        if not b:
            break
        body += b
    return status, headers, body


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the tests of a module."""
    srv = WfoServer(tmp_path_factory.mktemp("wfo-server"))
    srv.launch()
    yield srv
    rc = srv.stop()
    assert rc == 0, srv.stderr()


def unique(prefix):
    """A workflow name no other test uses."""
    unique.n += 1
    return f"{prefix}-{os.getpid()}-{unique.n}"


unique.n = 0


def metric(srv, name):
    """The value of an unlabelled series of srv's /metrics, or None."""
    for line in srv.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def task_workflow(name, queue=None, **step):
    """Definition: one task step on QUEUE (default: NAME)."""
    t = {"name": "work", "type": "task", "queue": queue or name}
    t.update(step)
    return {"name": name, "steps": [t]}


def set_workflow(name):
    """Definition that completes at once."""
    return {"name": name, "steps": [{"name": "s", "type": "set", "vars": {"x": 1}},
                                    {"name": "out", "type": "succeed",
                                     "output": "${ .input }"}]}


class FakeWorker(threading.Thread):
    """Polls QUEUES and answers each task with handle(task) -> ("complete", output) or
    ("fail", error, retryable) or None (leave it)."""

    def __init__(self, srv, queues, handle):
        super().__init__(daemon=True)
        self.srv, self.queues, self.handle = srv, queues, handle
        self.stop_flag = threading.Event()
        self.seen = []
        self.errors = []

    def run(self):
        while not self.stop_flag.is_set():
            try:
                tasks = self.srv.poll(self.queues, worker="fake", wait="1s", max=10)
            except Exception as e:  # noqa: BLE001 - reported by the test
                self.errors.append(e)
                return
            for t in tasks:
                self.seen.append(t)
                what = self.handle(t)
                if what is None:
                    continue
                if what[0] == "complete":
                    r = self.srv.post(f"/v1/tasks/{t['task_id']}/complete",
                                      {"lease": t["lease"], "output": what[1]})
                else:
                    r = self.srv.post(f"/v1/tasks/{t['task_id']}/fail",
                                      {"lease": t["lease"], "error": what[1],
                                       "retryable": what[2]})
                if r.status != 200:
                    self.errors.append(r)

    def stop(self):
        self.stop_flag.set()
        self.join(10)
