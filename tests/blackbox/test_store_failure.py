"""A commit that fails stops the engine (engine.c invariant E2), which then
recovers in place from what was committed, as a restart would.

The failure is a real one: another process holds the database's write lock
for longer than the store's busy timeout (5 s), so the engine's next
transaction cannot begin. Both ways a round is committed are covered: a
single start (a small round, committed by the engine thread) and a burst of
starts (a round for the writer thread).
"""

import sqlite3
import threading
import time

import pytest

from apiutil import WfoServer

# another process's lock on the file (test_store_postgres.py has the
# PostgreSQL side: the database unreachable and back)
pytestmark = pytest.mark.sqlite_only("holds the SQLite file's write lock")


DEF = {"name": "stored", "steps": [{"name": "t", "type": "task", "queue": "sq"}]}


def _lock(db):
    """Another process's write transaction on db (BEGIN IMMEDIATE)."""
    c = sqlite3.connect(str(db), timeout=10, isolation_level=None)
    c.execute("BEGIN IMMEDIATE")
    return c


def _start_many(srv, n):
    """n starts at once; their statuses and bodies."""
    out = [None] * n

    def one(i):
        out[i] = srv.post("/v1/executions", {"workflow": "stored", "input": {"i": i}}, timeout=60)

    th = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    return out


def _wait_ready(srv, timeout=15):
    """Seconds until /readyz answers 200."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if srv.get("/readyz").status == 200:
            return time.monotonic() - t0
        time.sleep(0.05)
    raise AssertionError(f"not ready after {timeout}s: {srv.get('/readyz')}")


def _finish(srv, exec_id):
    task = srv.poll(["sq"], wait="5s")
    assert [t["execution_id"] for t in task] == [exec_id], task
    r = srv.post(f"/v1/tasks/{task[0]['task_id']}/complete",
                 {"lease": task[0]["lease"], "output": "done"})
    assert r.status == 200, r
    assert srv.doc(exec_id, wait="10s")["output"] == "done"


def test_failed_commit_stops_the_engine_and_it_recovers_in_place(tmp_path):
    srv = WfoServer(tmp_path)
    srv.launch()
    try:
        srv.put_workflow(DEF)
        kept = srv.start_exec("stored", {"k": "before"})["id"]
        lock = _lock(srv.db)
        t0 = time.monotonic()
        r = srv.post("/v1/executions", {"workflow": "stored", "input": {"k": "lost"}}, timeout=60)
        waited = time.monotonic() - t0
        assert r.status == 503, r
        assert r.error["type"] in ("StoreError", "Unavailable"), r
        assert waited >= 4, f"answered after {waited:.1f}s, before the busy timeout"
        assert "store commit failed" in srv.stderr() or "engine stops" in srv.stderr()
        # while the store refuses, the engine stays stopped: not ready, no start
        r = srv.get("/readyz")
        assert r.status == 503, r
        # once the lock is gone it recovers what was committed, and only that
        lock.rollback()
        lock.close()
        _wait_ready(srv)
        assert "engine recovered" in srv.stderr()
        assert 'wfo_engine_restarts_total 1' in srv.get("/metrics").text
        doc = srv.doc(kept)
        assert doc["status"] == "running", doc
        listed = srv.get("/v1/executions?limit=100").json["executions"]
        assert [e["id"] for e in listed] == [kept], listed
        _finish(srv, kept)
        # and takes new work again
        again = srv.start_exec("stored", {"k": "after"})["id"]
        _finish(srv, again)
    finally:
        srv.stop()
    # a restart of the process finds the same
    srv.launch()
    try:
        listed = srv.get("/v1/executions?limit=100").json["executions"]
        assert sorted(e["status"] for e in listed) == ["completed", "completed"], listed
    finally:
        srv.stop()


def test_a_task_leased_before_the_failure_is_completed_after_recovery(tmp_path):
    """The lease a worker holds survives the engine's recovery in place."""
    srv = WfoServer(tmp_path)
    srv.launch()
    try:
        srv.put_workflow(DEF)
        held = srv.start_exec("stored", {"k": "held"})["id"]
        task = srv.poll(["sq"], wait="5s")
        assert [t["execution_id"] for t in task] == [held], task
        lock = _lock(srv.db)
        r = srv.post("/v1/executions", {"workflow": "stored", "input": {}}, timeout=60)
        assert r.status == 503, r
        lock.rollback()
        lock.close()
        _wait_ready(srv)
        r = srv.post(f"/v1/tasks/{task[0]['task_id']}/complete",
                     {"lease": task[0]["lease"], "output": "late"})
        assert r.status == 200, r
        assert srv.doc(held, wait="10s")["output"] == "late"
    finally:
        srv.stop()


def test_a_burst_fails_together_and_nothing_half_written_remains(tmp_path):
    """Starts that share the failing round (the writer thread's) all fail."""
    srv = WfoServer(tmp_path)
    srv.launch()
    try:
        srv.put_workflow(DEF)
        lock = _lock(srv.db)
        res = _start_many(srv, 24)
        lock.rollback()
        lock.close()
        assert all(r.status == 503 for r in res), [r.status for r in res]
    finally:
        srv.stop()
    srv.launch()
    try:
        listed = srv.get("/v1/executions?limit=100").json["executions"]
        assert listed == [], listed
        with sqlite3.connect(str(srv.db)) as c:
            assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert c.execute("SELECT count(*) FROM chunks").fetchone()[0] == 0
    finally:
        srv.stop()


@pytest.mark.parametrize("runs_for,held,start", [(8, 0, True), (1, 1.5, True), (1, 1.5, False)],
                         ids=["running-through-the-recovery", "ending-while-down",
                              "its-own-commit-failing"])
def test_an_exec_step_around_a_failed_commit_runs_once(tmp_path, runs_for, held, start):
    """E9: the recovery after a failed commit dispatches the steps that were
    running again. One whose command still runs in this process is adopted,
    not started a second time (its side effect would be doubled); so is one
    whose command ended while the commit before it was failing, or while
    the engine restarted, or whose result's own commit failed: its result
    is kept for the recovery, and the step completes with it (before, the
    result was dropped with the failed engine's queue or round, and the
    recovery ran the command again)."""
    marks = tmp_path / "marks"
    srv = WfoServer(tmp_path, env={"WFO_EXEC_ENABLED": "true"})
    srv.launch()
    try:
        srv.put_workflow(DEF)
        srv.put_workflow({"name": "marked", "steps": [{
            "name": "mark", "type": "exec", "timeout": "60s",
            "command": ["/bin/sh", "-c",
                        f"echo x >> {marks}; sleep {runs_for}; echo '{{\"n\": 7}}'"]}]})
        marked = srv.start_exec("marked")["id"]
        deadline = time.monotonic() + 10
        while not marks.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marks.exists(), "the command did not start"
        lock = _lock(srv.db)
        # a commit blocked for the busy timeout (5 s) fails: the engine
        # forgets, and recovers once the lock is gone
        if start:
            r = srv.post("/v1/executions", {"workflow": "stored"}, timeout=60)
            assert r.status == 503, r
        else:  # the commit of the command's own result
            deadline = time.monotonic() + 20
            while srv.get("/readyz").status == 200 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert srv.get("/readyz").status == 503, "the result's commit did not fail"
        time.sleep(held)  # its restarts fail against the lock meanwhile
        lock.rollback()
        lock.close()
        _wait_ready(srv)
        doc = srv.doc(marked, wait="30s")
        assert doc["status"] == "completed" and "7" in doc["output"]["stdout"], doc
        assert doc["steps"][0]["attempts"] == 1, doc
        time.sleep(1.5)  # a second run, had one started, has written its mark
        assert marks.read_text() == "x\n", "the command ran again after the recovery"
    finally:
        srv.stop()
