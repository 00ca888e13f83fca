"""Several `wfo server` nodes on one store (a cluster, engine.c E8).

The nodes share the store's 16 shards: each beats in the `nodes` table and
holds its share, by lease; a node killed with kill -9 stops renewing, and
the others take its shards over once the lease has run out (cluster.lease,
2 s here) and load its executions. A node stopped with SIGSTOP past its
lease finds, when continued, that its commits are refused (fencing), and
regroups with what is free. The store here is one SQLite file that the
nodes open at once (WAL); docs/operations/scaling.md#several-nodes.
"""

import re
import signal
import threading
import time

from apiutil import WfoServer

LEASE = "2s"
ENV = {"WFO_CLUSTER": "true", "WFO_CLUSTER_LEASE": LEASE}
# A takeover takes at most a lease, a renewal period (lease / 3) and the
# recovery: the bound docs/operations/scaling.md gives, with room for a
# busy machine (ASan build, other tests beside).
TAKEOVER_BOUND = 2 + 2 / 3 + 8

DEF = {
    "name": "clustered",
    "steps": [
        {"name": "nap", "type": "sleep", "duration": "1s"},
        {"name": "work", "type": "task", "queue": "cq"},
        {"name": "nap2", "type": "sleep", "duration": "500ms"},
        {"name": "done", "type": "succeed",
         "output": "${ {n: .input.n, got: .steps.work.output} }"},
    ],
}


def held(srv):
    r = srv.get("/metrics")
    if r.status != 200:
        return None
    m = re.search(r"^wfo_shards_held (\d+)$", r.text, re.M)
    return int(m.group(1)) if m else None


def nodes(tmp_path, n):
    """n servers on one SQLite file, each holding its share when returned."""
    first = WfoServer(tmp_path / "n0", env=ENV)
    out = [first]
    for i in range(1, n):
        s = WfoServer(tmp_path / f"n{i}", env=ENV)
        s.db = first.db
        out.append(s)
    for s in out:
        s.launch()
    wait_shares(out)
    return out


def wait_shares(live, timeout=30):
    """Until the live nodes hold every shard between them, evenly."""
    want = sorted([16 // len(live) + (1 if i < 16 % len(live) else 0)
                   for i in range(len(live))])
    t0 = time.monotonic()
    got = None
    while time.monotonic() - t0 < timeout:
        got = sorted(held(s) or 0 for s in live)
        if got == want:
            return time.monotonic() - t0
        time.sleep(0.1)
    raise AssertionError(f"shares {got}, wanted {want}")


class Worker(threading.Thread):
    """Polls one node; completes each task with its input's n doubled.
    Records every completion the server accepted, by task id."""

    def __init__(self, srv, accepted):
        super().__init__(daemon=True)
        self.srv, self.accepted = srv, accepted
        self.stop_flag = threading.Event()

    def run(self):
        while not self.stop_flag.is_set():
            try:
                r = self.srv.post("/v1/tasks/poll", {"queues": ["cq"], "worker": "w",
                                                     "wait": "1s", "max": 20}, timeout=30)
            except Exception:  # noqa: BLE001 - its node was killed
                time.sleep(0.2)
                continue
            if r.status != 200:
                time.sleep(0.2)
                continue
            tasks = r.json["tasks"]
            for t in tasks:
                n = t["input"]["n"] if isinstance(t.get("input"), dict) else None
                try:
                    r = self.srv.post(f"/v1/tasks/{t['task_id']}/complete",
                                      {"lease": t["lease"], "output": {"twice": n * 2}})
                except Exception:  # noqa: BLE001
                    continue
                if r.status == 200:
                    self.accepted.append(t["task_id"])

    def stop(self):
        self.stop_flag.set()
        self.join(10)


def test_nodes_share_the_shards_and_take_over_a_killed_one(tmp_path):
    srvs = nodes(tmp_path, 3)
    a, b, c = srvs
    accepted = []
    workers = []
    try:
        a.put_workflow(DEF)
        ids = {}
        # starts spread over the nodes: each commits in a shard it holds
        for i in range(120):
            srv = srvs[i % 3]
            body = {"workflow": "clustered", "input": {"n": i}}
            r = srv.post("/v1/executions", body)
            assert r.status == 201, r
            ids[r.json["id"]] = i
        workers = [Worker(s, accepted) for s in srvs]
        for w in workers:
            w.start()
        # b dies with its executions mid-run: sleeping, tasks ready or leased
        time.sleep(0.5)
        b.proc.send_signal(signal.SIGKILL)
        b.proc.wait(10)
        t0 = time.monotonic()
        took = wait_shares([a, c], timeout=TAKEOVER_BOUND + 20)
        assert took <= TAKEOVER_BOUND, f"takeover took {took:.1f}s"
        assert "took shards" in a.stderr() + c.stderr()
        # every execution completes, with its own output, on the live nodes
        deadline = time.monotonic() + 60
        pending = set(ids)
        while pending and time.monotonic() < deadline:
            for x in list(pending):
                d = a.get(f"/v1/executions/{x}")
                assert d.status == 200, d
                if d.json["status"] != "running":
                    assert d.json["status"] == "completed", d.json
                    n = ids[x]
                    assert d.json["output"] == {"n": n, "got": {"twice": n * 2}}, d.json
                    pending.discard(x)
            time.sleep(0.2)
        assert not pending, f"{len(pending)} not completed, e.g. {a.doc(next(iter(pending)))}"
        print(f"takeover in {took:.1f}s, all done {time.monotonic() - t0:.1f}s after the kill")
        # each attempt's completion was accepted at most once
        assert len(accepted) == len(set(accepted)), "a completion accepted twice"
        # and every history is whole: seq from 1 without a gap, each step once
        for x in ids:
            h = a.get(f"/v1/executions/{x}/history").json
            assert [e["seq"] for e in h] == list(range(1, len(h) + 1)), h
            done = [e["step"] for e in h if e["type"] == "step.completed"]
            assert sorted(done) == sorted(set(done)), h
            assert sum(e["type"] == "execution.completed" for e in h) == 1, h
    finally:
        for w in workers:
            w.stop()
        for s in srvs:
            if s.proc and s.proc.poll() is None:
                s.stop()


def test_a_node_back_from_a_pause_commits_nothing_and_regroups(tmp_path):
    srvs = nodes(tmp_path, 2)
    a, b = srvs
    try:
        a.put_workflow(DEF)
        # an execution on b, waiting for a worker
        r = b.post("/v1/executions", {"workflow": "clustered", "input": {"n": 7}})
        assert r.status == 201, r
        x = r.json["id"]
        b.proc.send_signal(signal.SIGSTOP)
        try:
            took = wait_shares([a], timeout=TAKEOVER_BOUND + 20)
            assert took <= TAKEOVER_BOUND + 1, f"takeover took {took:.1f}s"
            # the execution is a's now: its worker completes it
            task = a.poll(["cq"], wait="10s")
            assert [t["execution_id"] for t in task] == [x], task
        finally:
            b.proc.send_signal(signal.SIGCONT)
        # b, continued, finds its shards gone: it commits nothing of them
        r = a.post(f"/v1/tasks/{task[0]['task_id']}/complete",
                   {"lease": task[0]["lease"], "output": {"twice": 14}})
        assert r.status == 200, r
        assert a.doc(x, wait="10s")["output"] == {"n": 7, "got": {"twice": 14}}
        wait_shares([a, b])
        assert "lost shards" in b.stderr() or "no longer owned" in b.stderr(), b.stderr()
        h = a.get(f"/v1/executions/{x}/history").json
        assert [e["seq"] for e in h] == list(range(1, len(h) + 1)), h
        assert sum(e["type"] == "execution.completed" for e in h) == 1, h
        # and takes new work again
        r = b.post("/v1/executions", {"workflow": "clustered", "input": {"n": 8}})
        assert r.status == 201, r
    finally:
        for s in srvs:
            if s.proc and s.proc.poll() is None:
                s.stop()
