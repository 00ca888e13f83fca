"""The server on PostgreSQL (WFO_TEST_DB=postgres, `make blackbox-pg`):
while its database refuses connections /readyz answers 503 and requests
that read the store fail with 503 StoreError, quickly and without a crash;
once the database is back the server reconnects by itself and serves
again, and what was committed before is all there.

The outage is a real one: every connection of the server's database is
terminated (pg_terminate_backend) and new ones are refused
(ALLOW_CONNECTIONS false) until the test allows them again."""
import os
import subprocess
import threading
import time

import pytest

from apiutil import TEST_DB, WfoServer, pg_url, set_workflow, unique
from conftest import WFO_BIN

pytestmark = pytest.mark.skipif(TEST_DB != "postgres", reason="PostgreSQL only (WFO_TEST_DB)")


def admin(sql):
    subprocess.run(["psql", os.environ["WFO_TEST_PG"], "-qAt", "-v", "ON_ERROR_STOP=1", "-c", sql],
                   check=True, capture_output=True, timeout=60)


def dbname(url):
    return url.split("://", 1)[1].split("/", 1)[1].split("?", 1)[0]


def wait_for(cond, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return False


def test_database_down_then_back(tmp_path):
    srv = WfoServer(tmp_path).launch()
    db = dbname(srv.db_url)
    assert srv.db_url == pg_url(db)
    name = unique("pgdown")
    try:
        srv.put_workflow(set_workflow(name))
        done = srv.start_exec(name, query="?wait=10s")
        assert done["status"] == "completed"
        assert srv.get("/readyz").status == 200

        admin(f"ALTER DATABASE {db} ALLOW_CONNECTIONS false")
        admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'")
        assert wait_for(lambda: srv.get("/readyz").status == 503), "readyz stayed 200"
        r = srv.get("/readyz")
        assert "store" in r.text, r
        t0 = time.monotonic()
        r = srv.get(f"/v1/executions/{done['id']}")
        assert r.status == 503, r
        assert r.error["type"] == "StoreError", r
        assert time.monotonic() - t0 < 10, "a read waited for the database"
        assert "password" not in r.text
        # the routes that answer from memory too: no lease handed out or
        # extended that could not be written (SPEC 4: every API request)
        for method, path, body in [
                ("POST", "/v1/tasks/poll", {"queues": ["q"], "worker": "w"}),
                ("POST", "/v1/tasks/poll", {"queues": ["q"], "worker": "w", "wait": "1s"}),
                ("POST", f"/v1/tasks/{done['id']}.1/heartbeat", {"lease": "x" * 32}),
                ("GET", "/v1/queues", None)]:
            r = srv.request(method, path, body)
            assert r.status == 503 and r.error["type"] == "StoreError", (path, r)

        admin(f"ALTER DATABASE {db} ALLOW_CONNECTIONS true")
        assert wait_for(lambda: srv.get("/readyz").status == 200), srv.get("/readyz")
        d = srv.doc(done["id"])
        assert d["status"] == "completed" and d["output"] == done["output"], d
    finally:
        admin(f"ALTER DATABASE {db} ALLOW_CONNECTIONS true")
        srv.stop()


def test_unreachable_database_fails_the_start(tmp_path):
    """A server whose database cannot be reached exits 1 with a message
    that names the store without its password."""
    url = "postgres://wfo:hunter2secret@127.0.0.1:1/nowhere?connect_timeout=2"
    p = subprocess.run([str(WFO_BIN), "server", "--listen", "127.0.0.1:0", "--db", url],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1, p
    assert "postgres://wfo:***@127.0.0.1:1/nowhere" in p.stderr, p.stderr
    assert "hunter2secret" not in p.stderr, p.stderr


MIDRUN = {
    "name": "pg-midrun",
    "steps": [
        {"name": "nap", "type": "sleep", "duration": "300ms"},
        {"name": "work", "type": "task", "queue": "pgq"},
        {"name": "nap2", "type": "sleep", "duration": "300ms"},
        {"name": "out", "type": "succeed", "output": "${ {n: .input.n, got: .steps.work.output} }"},
    ],
}


def test_database_restarted_mid_run_loses_nothing(tmp_path):
    """An outage while executions sleep, wait for tasks and commit: 503s
    meanwhile, the server serves again within 5 s of the database coming
    back (the pool reconnects, the engine restarts in place from what was
    committed), and every execution completes once, with its output."""
    srv = WfoServer(tmp_path).launch()
    db = dbname(srv.db_url)
    accepted = []
    stop = threading.Event()

    def worker():
        while not stop.is_set():
            try:
                r = srv.post("/v1/tasks/poll", {"queues": ["pgq"], "worker": "w", "wait": "1s",
                                                "max": 10})
            except OSError:
                time.sleep(0.1)
                continue
            if r.status != 200:
                time.sleep(0.1)
                continue
            for t in r.json["tasks"]:
                try:
                    c = srv.post(f"/v1/tasks/{t['task_id']}/complete",
                                 {"lease": t["lease"], "output": t["input"]["n"] * 2})
                except OSError:
                    continue
                if c.status == 200:
                    accepted.append(t["task_id"])

    th = threading.Thread(target=worker, daemon=True)
    try:
        srv.put_workflow(MIDRUN)
        ids = {}
        for i in range(40):
            r = srv.post("/v1/executions", {"workflow": "pg-midrun", "input": {"n": i}})
            assert r.status == 201, r
            ids[r.json["id"]] = i
        th.start()
        time.sleep(0.5)
        admin(f"ALTER DATABASE {db} ALLOW_CONNECTIONS false")
        admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'")
        r = srv.post("/v1/executions", {"workflow": "pg-midrun", "input": {"n": -1}})
        assert r.status == 503, r
        time.sleep(3)
        admin(f"ALTER DATABASE {db} ALLOW_CONNECTIONS true")
        back = time.monotonic()
        assert wait_for(lambda: srv.get("/readyz").status == 200, timeout=30)
        took = time.monotonic() - back
        assert took < 5, f"ready {took:.1f}s after the database came back"
        for x, i in ids.items():
            d = srv.doc(x, wait="30s")
            assert d["status"] == "completed", d
            assert d["output"] == {"n": i, "got": i * 2}, d
            h = srv.get(f"/v1/executions/{x}/history").json
            assert [e["seq"] for e in h] == list(range(1, len(h) + 1)), h
            done = [e["step"] for e in h if e["type"] == "step.completed"]
            assert sorted(done) == sorted(set(done)), h
        assert len(accepted) == len(set(accepted)), "a completion accepted twice"
    finally:
        stop.set()
        admin(f"ALTER DATABASE {db} ALLOW_CONNECTIONS true")
        srv.stop()
