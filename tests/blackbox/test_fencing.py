"""Ownership with fencing (docs/interfaces/internal.md "Ownership and
fencing"): two servers share one store (a SQLite file, or a PostgreSQL
database) in turn. The second takes every
shard over (epoch + 1); the first, still running, can no longer commit, and
nothing is lost or applied twice."""
import time

from apiutil import WfoServer, store_rows, task_workflow, unique


def shards(srv):
    return store_rows(srv, "SELECT shard, owner, epoch FROM shards ORDER BY shard")


def shards_after(srv, before, timeout=30):
    """The shards once an engine has claimed them all after the rows before
    (each epoch higher): a server answers /healthz before its engine has
    claimed them (more so on a busy host)."""
    deadline = time.monotonic() + timeout
    rows = shards(srv)
    while time.monotonic() < deadline and not (
            len(rows) == len(before) and all(r[2] > b[2] for r, b in zip(rows, before))):
        time.sleep(0.05)
        rows = shards(srv)
    return rows


def test_second_engine_takes_over_and_fences_the_first(tmp_path):
    name = unique("fence")
    a = WfoServer(tmp_path / "s").launch()
    b = WfoServer(tmp_path / "s")  # the same file, another port
    try:
        a.put_workflow(task_workflow(name))
        ids = [a.start_exec(name, input={"i": i})["id"] for i in range(6)]
        first = shards(a)
        assert len(first) == 16
        owner_a = first[0][1]
        assert owner_a and all(r[1] == owner_a for r in first), first
        # a worker takes two tasks from A: their leases are A's
        leased = a.poll([name], max=2)
        assert len(leased) == 2

        b.launch()
        second = shards_after(a, first)
        owner_b = second[0][1]
        assert owner_b and owner_b != owner_a
        for (k, _, e1), (k2, o2, e2) in zip(first, second):
            assert k == k2 and o2 == owner_b and e2 == e1 + 1, (first, second)

        # A's next commit is refused: its start answers 503, A is not ready,
        # and the execution it tried to start is nowhere
        r = a.post("/v1/executions", {"workflow": name, "id": "from-a"})
        assert r.status == 503, r
        assert r.error["type"] == "Unavailable", r
        assert "shard" in r.error["message"], r
        assert a.get("/readyz").status == 503
        assert b.get("/v1/executions/from-a").status == 404
        # a completion sent to A changes nothing either
        r = a.post(f"/v1/tasks/{leased[0]['task_id']}/complete",
                   {"lease": leased[0]["lease"], "output": {"by": "a"}})
        assert r.status >= 400, r

        # B has every execution, runs each to the end exactly once; the
        # tasks the worker took from A are still its own (their rows keep
        # the leases), the others B hands out again
        done = {}
        for t in leased:
            r = b.post(f"/v1/tasks/{t['task_id']}/complete",
                       {"lease": t["lease"], "output": {"by": "b", "in": t["input"]}})
            assert r.status == 200, r
            done[t["execution_id"]] = t["input"]
        while len(done) < len(ids):
            for t in b.poll([name], max=10, wait="2s"):
                r = b.post(f"/v1/tasks/{t['task_id']}/complete",
                           {"lease": t["lease"], "output": {"by": "b", "in": t["input"]}})
                assert r.status == 200, r
                assert t["execution_id"] not in done
                done[t["execution_id"]] = t["input"]
        assert sorted(done) == sorted(ids)
        for i, eid in enumerate(ids):
            d = b.wait_status(eid, "completed")
            assert d["output"] == {"by": "b", "in": {"i": i}}, d
            h = b.get(f"/v1/executions/{eid}/history").json
            assert [x["seq"] for x in h] == list(range(1, len(h) + 1)), h
            types = [x["type"] for x in h]
            assert types.count("execution.completed") == 1, types
            assert types.count("step.completed") == 1, types
        # a restarted B is a new owner again: epoch + 1, nothing redone
        b.stop()
        b.launch()
        third = shards_after(b, second)
        assert all(e3 == e2 + 1 for (_, _, e2), (_, _, e3) in zip(second, third))
        for eid in ids:
            assert b.doc(eid)["status"] == "completed"
    finally:
        b.stop()
        a.stop()


def test_task_rows_keep_their_lease_across_kill9(tmp_path):
    """Tasks are rows: a worker that took a task before the server was
    killed completes it afterwards with its lease (200), a second
    completion is stale (409), and the rows go with their attempts."""
    import signal
    import time

    name = unique("taskrow")
    srv = WfoServer(tmp_path / "s", env={"WFO_LEASE": "60s"}).launch()
    try:
        srv.put_workflow(task_workflow(name))
        ids = [srv.start_exec(name, input={"i": i})["id"] for i in range(3)]
        rows = store_rows(srv, "SELECT id, exec_id, status, lease FROM tasks ORDER BY id")
        assert sorted(r[1] for r in rows) == sorted(ids), rows
        assert all(r[2] == "ready" and r[3] is None for r in rows), rows
        taken = srv.poll([name], max=2)
        assert len(taken) == 2
        # the leases reach the rows with the next round
        deadline = time.monotonic() + 10
        while True:
            leased = dict(store_rows(srv, "SELECT id, lease FROM tasks WHERE status = 'leased'"))
            if len(leased) == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert leased == {t["task_id"]: t["lease"] for t in taken}, leased
        srv.proc.send_signal(signal.SIGKILL)
        srv.proc.wait()
        srv._err.close()
        srv.proc = None
        srv.launch()
        # the untaken one is ready again; the taken ones keep their leases
        rest = srv.poll([name], max=10, wait="2s")
        assert [t["task_id"] for t in rest] == [r[0] for r in rows
                                                if r[0] not in leased], rest
        for t in taken + rest:
            r = srv.post(f"/v1/tasks/{t['task_id']}/complete",
                         {"lease": t["lease"], "output": {"done": t["task_id"]}})
            assert r.status == 200, (t, r)
            r = srv.post(f"/v1/tasks/{t['task_id']}/complete",
                         {"lease": t["lease"], "output": {"again": True}})
            assert r.status == 409, r
        for eid in ids:
            d = srv.wait_status(eid, "completed")
            assert list(d["output"]) == ["done"], d
        assert store_rows(srv, "SELECT count(*) FROM tasks")[0][0] == 0
    finally:
        srv.stop()
