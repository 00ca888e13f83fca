"""Task leases across restarts and abandoned polls; client-chosen ids.

SPEC 3: a completion whose lease is the current lease of its attempt is
accepted once; after a kill -9 and restart every execution continues from its
last committed transition. SPEC 4: POST /v1/executions takes any `id`.
"""

import socket
import time

from apiutil import WfoServer, metric, store_rows


DEF = {"name": "leased", "steps": [{"name": "t", "type": "task", "queue": "lq"}]}


def test_lease_survives_a_restart(tmp_path):
    """A worker that took a task before kill -9 completes it after the restart with the same lease."""
    srv = WfoServer(tmp_path)
    srv.launch()
    try:
        srv.put_workflow(DEF)
        ex = srv.start_exec("leased", {"k": 1})["id"]
        task = srv.poll(["lq"], wait="5s")[0]
        srv.proc.kill()  # kill -9
        srv.proc.wait()
        srv.proc = None
        srv.launch()
        r = srv.post(f"/v1/tasks/{task['task_id']}/complete",
                     {"lease": task["lease"], "output": {"done": True}})
        assert r.status == 200, r
        doc = srv.doc(ex, wait="10s")
        assert doc["status"] == "completed", doc
        assert doc["output"] == {"done": True}
        # accepted once: the same completion again is refused
        r = srv.post(f"/v1/tasks/{task['task_id']}/complete",
                     {"lease": task["lease"], "output": {"done": False}})
        assert r.status == 409, r
        r = srv.post(f"/v1/tasks/{task['task_id']}/complete", {"lease": "0" * 32, "output": 1})
        assert r.status == 409, r
    finally:
        srv.stop()


def test_a_lease_waits_for_a_round_that_commits_anyway(tmp_path):
    """A delivery's lease is no commit of its own (round.c LEASE_WRITE_MS):
    a task completed soon after its poll costs one commit, and its lease is
    never written; a lease rides with the next commit made for another
    reason, or is written on its own half a second later."""
    srv = WfoServer(tmp_path)
    srv.launch()
    try:
        srv.put_workflow(DEF)
        # done within 0.4 s of the poll (tried again on a host too slow for
        # that): the completion's is the only commit, and no lease is written
        for _ in range(10):
            ex = srv.start_exec("leased", {"k": 1})["id"]
            c0 = metric(srv, "wfo_store_commits_total")
            t0 = time.monotonic()
            task = srv.poll(["lq"], wait="5s")[0]
            rows = store_rows(srv, "SELECT lease FROM tasks")
            r = srv.post(f"/v1/tasks/{task['task_id']}/complete",
                         {"lease": task["lease"], "output": {"done": True}})
            assert r.status == 200, r
            c1 = metric(srv, "wfo_store_commits_total")
            if time.monotonic() - t0 < 0.4:
                break
        assert time.monotonic() - t0 < 0.4, "no try finished within 0.4 s"
        assert rows == [(None,)]
        assert c1 == c0 + 1
        assert srv.doc(ex, wait="10s")["status"] == "completed"
        assert store_rows(srv, "SELECT count(*) FROM tasks") == [(0,)]

        # with the next start's commit
        a = srv.start_exec("leased", {"k": 2})["id"]
        task = srv.poll(["lq"], wait="5s")[0]
        srv.start_exec("leased", {"k": 3})
        assert store_rows(srv, "SELECT exec_id, lease FROM tasks WHERE lease IS NOT NULL") == \
            [(a, task["lease"])]

        # on its own
        c1 = metric(srv, "wfo_store_commits_total")
        task = srv.poll(["lq"], wait="5s")[0]
        deadline = time.monotonic() + 10
        while metric(srv, "wfo_store_commits_total") == c1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert metric(srv, "wfo_store_commits_total") == c1 + 1
        assert len(store_rows(srv, "SELECT 1 FROM tasks WHERE lease = ?", (task["lease"],))) == 1
    finally:
        srv.stop()


def test_abandoned_long_poll_does_not_swallow_a_task(tmp_path):
    """A poller that hung up before a task arrived does not get it: the next poller does, at once."""
    srv = WfoServer(tmp_path)
    srv.launch()
    try:
        srv.put_workflow(DEF)
        body = b'{"queues": ["lq"], "worker": "gone", "wait": "20s"}'
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.sendall(b"POST /v1/tasks/poll HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        time.sleep(0.3)
        s.close()  # the worker went away while its poll waited
        time.sleep(0.2)
        ex = srv.start_exec("leased", {"k": 2})["id"]
        t0 = time.time()
        got = srv.poll(["lq"], wait="10s")
        assert got and got[0]["execution_id"] == ex, got
        assert time.time() - t0 < 5, "the task went to the poller that hung up"
    finally:
        srv.stop()


def test_long_client_ids(tmp_path):
    """An id longer than a UUID (an idempotency key) is accepted, idempotent, and found again."""
    srv = WfoServer(tmp_path)
    srv.launch()
    try:
        srv.put_workflow({"name": "ids", "steps": [{"name": "s", "type": "set", "vars": {"a": 1}}]})
        long_id = "order-2026-11-26-" + "7" * 100
        r = srv.post("/v1/executions", {"workflow": "ids", "id": long_id, "input": {"n": 1}})
        assert r.status == 201, r
        assert r.json["id"] == long_id
        r = srv.post("/v1/executions", {"workflow": "ids", "id": long_id, "input": {"n": 1}})
        assert r.status == 200, r
        r = srv.post("/v1/executions", {"workflow": "ids", "id": long_id, "input": {"n": 2}})
        assert r.status == 409, r
        assert srv.doc(long_id, wait="5s")["status"] == "completed"
        r = srv.post("/v1/executions", {"workflow": "ids", "id": "x" * 300})
        assert r.status == 400, r
    finally:
        srv.stop()
