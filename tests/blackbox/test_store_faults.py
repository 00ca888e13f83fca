"""The engine under a store whose reads fail (the `fault:` wrapper back end,
src/store/fault/fault.c): no timer, result or execution is lost, none is
stuck, and each ends as it would have without faults (engine.c E5)."""

import time

from apiutil import WfoServer, metric, unique


def fault_server(tmp_path, faults, seed="1"):
    srv = WfoServer(tmp_path / "s", env={"WFO_STORE_FAULTS": faults,
                                          "WFO_STORE_FAULTS_SEED": seed})
    srv.args = ["--db", f"fault:{srv.db_url}"]
    return srv.launch()


def wait_end(srv, exec_id, timeout=30):
    """Polls the document, taking 503s (injected read faults) in its stride."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = srv.get(f"/v1/executions/{exec_id}")
        if r.status == 200 and r.json["status"] not in ("running", "paused"):
            return r.json
        assert r.status in (200, 503), r
        time.sleep(0.1)
    raise AssertionError(f"{exec_id} did not end")


def test_timer_whose_read_fails_fires_later(tmp_path):
    """A due timer whose execution cannot be read keeps its row and fires
    again: the sleep ends once, later, never lost."""
    srv = fault_server(tmp_path, "get_exec:1-3")
    try:
        name = unique("timer-read")
        srv.put_workflow({"name": name, "steps": [
            {"name": "nap", "type": "sleep", "duration": "500ms"},
            {"name": "after", "type": "set", "vars": {"done": True}},
        ]})
        e = srv.start_exec(name)  # a fresh id: the start reads nothing
        time.sleep(5)  # the timer's reads fail three times, a second apart
        d = wait_end(srv, e["id"])
        assert d["status"] == "completed", d
        assert [s["status"] for s in d["steps"]] == ["completed", "completed"]
        hist = srv.get(f"/v1/executions/{e['id']}/history").json
        assert [h["seq"] for h in hist] == list(range(1, len(hist) + 1))
        assert sum(1 for h in hist if h["type"] == "step.completed" and h["step"] == "nap") == 1
        assert metric(srv, "wfo_store_read_retries_total") >= 1
    finally:
        srv.stop()
    assert "reading the store failed" in srv.stderr()


def test_random_read_faults_lose_nothing(tmp_path):
    """Reads fail at random (a third of get_exec and list_steps calls): every
    execution still completes, with its own output, its history without gaps."""
    srv = fault_server(tmp_path, "get_exec:p0.3,list_steps:p0.3", seed="7")
    try:
        name = unique("random-faults")
        srv.put_workflow({"name": name, "steps": [
            {"name": "a", "type": "set", "vars": {"n": "${ .input.n }"}},
            {"name": "nap", "type": "sleep", "duration": "200ms"},
            {"name": "again", "type": "sleep", "duration": "100ms"},
            {"name": "out", "type": "succeed", "output": {"n": "${ .vars.n * 2 }"}},
        ]})
        ids = []
        for n in range(30):
            r = srv.post("/v1/executions", {"workflow": name, "input": {"n": n}})
            assert r.status in (201, 503), r
            if r.status == 201:
                ids.append((r.json["id"], n))
        assert len(ids) >= 10
        for exec_id, n in ids:
            d = wait_end(srv, exec_id, timeout=60)
            assert d["status"] == "completed" and d["output"] == {"n": 2 * n}, d
            for _ in range(50):
                r = srv.get(f"/v1/executions/{exec_id}/history")
                if r.status == 200:
                    break
            seqs = [h["seq"] for h in r.json]
            assert seqs == list(range(1, len(seqs) + 1))
        assert metric(srv, "wfo_store_read_retries_total") >= 1
    finally:
        srv.stop()


def test_bad_fault_rules_are_refused(tmp_path):
    srv = WfoServer(tmp_path / "s", env={"WFO_STORE_FAULTS": "get_exec:zero"})
    srv.args = ["--db", f"fault:{srv.db_url}"]
    srv.launch(wait=False)
    rc = srv.proc.wait(timeout=30)
    assert rc != 0
    assert "bad rule 'get_exec:zero'" in srv.stderr()
