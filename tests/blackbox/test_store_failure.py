"""A commit that fails stops the engine (engine.c invariant E2), and a
restart recovers from what was committed.

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


def test_failed_commit_stops_the_engine_and_restart_recovers(tmp_path):
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
        # the engine has stopped: nothing more is accepted, even once the lock is gone
        lock.rollback()
        lock.close()
        for r in _start_many(srv, 12):
            assert r.status == 503, r
        r = srv.post("/v1/tasks/poll", {"queues": ["sq"], "worker": "w"})
        assert r.status in (200, 503), r
        assert "store commit failed" in srv.stderr() or "engine stops" in srv.stderr()
    finally:
        srv.stop()
    # a restart recovers what was committed, and only that
    srv.launch()
    try:
        doc = srv.doc(kept)
        assert doc["status"] == "running", doc
        task = srv.poll(["sq"], wait="5s")
        assert [t["execution_id"] for t in task] == [kept], task
        r = srv.post(f"/v1/tasks/{task[0]['task_id']}/complete",
                     {"lease": task[0]["lease"], "output": "done"})
        assert r.status == 200, r
        assert srv.doc(kept, wait="10s")["output"] == "done"
        listed = srv.get("/v1/executions?limit=100").json["executions"]
        assert [e["id"] for e in listed] == [kept], listed
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
