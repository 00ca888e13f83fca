"""Leases and cursors nobody can guess (SPEC 3: "Leases are random (at least
128 bits from a CSPRNG), never derived from anything a client could know").

wfo once made a task's lease as SHA-256(store URL + "\\n" + task id): anyone
who knew both could complete someone else's task. These tests take that
attacker's place.
"""

import hashlib
import time

from apiutil import WfoServer, task_workflow


def old_lease(url, task_id):
    return hashlib.sha256(f"{url}\n{task_id}".encode()).hexdigest()[:32]


def test_a_lease_made_the_old_way_is_refused(tmp_path):
    srv = WfoServer(tmp_path)
    srv.launch()
    url = f"sqlite:{srv.db}"
    try:
        srv.put_workflow(task_workflow("stolen", queue="sq"))
        ex = srv.start_exec("stolen", {"n": 1}, id="stolen-1")["id"]
        t = srv.poll(["sq"], wait="5s")[0]
        forged = old_lease(url, t["task_id"])
        assert t["lease"] != forged
        assert len(t["lease"]) >= 32 and all(c in "0123456789abcdef" for c in t["lease"])
        for path, body in [(f"/v1/tasks/{t['task_id']}/heartbeat", {"lease": forged}),
                           (f"/v1/tasks/{t['task_id']}/complete",
                            {"lease": forged, "output": "stolen"}),
                           (f"/v1/tasks/{t['task_id']}/fail",
                            {"lease": forged, "error": {"type": "Stolen"}})]:
            r = srv.post(path, body)
            assert r.status == 409, (path, r)
        # after a crash the task is ready again, and still only a lease this
        # store issued finishes it
        srv.proc.kill()
        srv.proc.wait()
        srv.proc = None
        srv.launch()
        r = srv.post(f"/v1/tasks/{t['task_id']}/complete", {"lease": forged, "output": "stolen"})
        assert r.status == 409, r
        r = srv.post(f"/v1/tasks/{t['task_id']}/complete", {"lease": t["lease"], "output": "mine"})
        assert r.status == 200, r
        assert srv.doc(ex, wait="10s")["output"] == "mine"
    finally:
        srv.stop()


def test_each_delivery_gets_a_new_lease(tmp_path):
    srv = WfoServer(tmp_path, env={"WFO_LEASE": "1s"})
    srv.launch()
    try:
        srv.put_workflow(task_workflow("redeliver", queue="rq"))
        ex = srv.start_exec("redeliver", {})["id"]
        first = srv.poll(["rq"], wait="5s")[0]
        time.sleep(1.6)  # the lease runs out: the task is delivered again
        second = srv.poll(["rq"], wait="10s")[0]
        assert second["task_id"] == first["task_id"]
        assert second["lease"] != first["lease"]
        # the first holder's lease is stale now
        r = srv.post(f"/v1/tasks/{first['task_id']}/complete", {"lease": first["lease"],
                                                                 "output": 1})
        assert r.status == 409, r
        r = srv.post(f"/v1/tasks/{second['task_id']}/complete", {"lease": second["lease"],
                                                                  "output": 2})
        assert r.status == 200, r
        assert srv.doc(ex, wait="10s")["output"] == 2
    finally:
        srv.stop()


def test_two_stores_never_share_leases_or_cursors(tmp_path):
    # the same URL text, the same execution id, so the same task id: all a
    # client could know is equal, and still nothing carries over
    servers = [WfoServer(tmp_path / f"s{i}", args=["--db", "sqlite:wfo.db"]) for i in range(2)]
    leases, cursors = [], []
    try:
        for srv in servers:
            srv.launch()
            srv.put_workflow(task_workflow("twin", queue="tq"))
            for i in range(3):
                srv.start_exec("twin", {}, id=f"twin-{i}")
            ts = srv.poll(["tq"], max=3, wait="5s")
            assert len(ts) == 3
            leases.append({t["task_id"]: t["lease"] for t in ts})
            r = srv.get("/v1/executions?limit=1")
            cursors.append(r.json["next_cursor"])
        assert leases[0].keys() == leases[1].keys()
        for tid in leases[0]:
            assert leases[0][tid] != leases[1][tid]
            # the other store's lease does not complete this store's task
            r = servers[1].post(f"/v1/tasks/{tid}/complete",
                                {"lease": leases[0][tid], "output": 0})
            assert r.status == 409, r
        assert cursors[0] != cursors[1]
        r = servers[1].get(f"/v1/executions?limit=1&cursor={cursors[0]}")
        assert r.status == 400, r
        # a restarted server keeps its key: its own cursor still works
        servers[0].stop()
        servers[0].launch()
        r = servers[0].get(f"/v1/executions?limit=1&cursor={cursors[0]}")
        assert r.status == 200, r
    finally:
        for srv in servers:
            srv.stop()
