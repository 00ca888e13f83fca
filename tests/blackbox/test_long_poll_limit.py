"""Concurrent long polls per token (limits.long_polls_per_token): a token
may hold that many waiting requests (`?wait=` on an execution, a start with
`?wait=`, a task poll with `wait`) at once; one more is 429 at once, and
other tokens are not affected.
"""

import threading
import time

from apiutil import WfoServer, task_workflow

A = "poll-limit-token-a-0001"
B = "poll-limit-token-b-0001"


def test_long_polls_per_token(tmp_path):
    cfg = tmp_path / "wfo.yaml"
    cfg.write_text("limits: {long_polls_per_token: 2}\n"
                   "auth:\n  tokens:\n"
                   f"    - {{token: {A}, role: admin}}\n"
                   f"    - {{token: {B}, role: admin}}\n")
    srv = WfoServer(tmp_path, args=["--config", str(cfg)])
    srv.launch()
    ha, hb = {"Authorization": f"Bearer {A}"}, {"Authorization": f"Bearer {B}"}
    try:
        assert srv.put("/v1/workflows/lp", task_workflow("lp", queue="lpq"),
                       headers=ha).status == 201
        ex = srv.post("/v1/executions", {"workflow": "lp", "id": "lp-1"}, headers=ha).json["id"]
        results = []

        def wait_poll():
            r = srv.post("/v1/tasks/poll", {"queues": ["nothing-here"], "worker": "w",
                                            "wait": "3s"}, headers=ha, timeout=30)
            results.append(r.status)

        threads = [threading.Thread(target=wait_poll) for _ in range(2)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        t0 = time.monotonic()
        r = srv.get(f"/v1/executions/{ex}?wait=3s", headers=ha)
        assert r.status == 429, r
        assert r.error["type"] == "TooManyRequests"
        assert "long_polls_per_token" in r.error["message"]
        assert time.monotonic() - t0 < 2
        # a start that would wait is refused before anything starts
        r = srv.post("/v1/executions?wait=3s", {"workflow": "lp", "id": "lp-2"}, headers=ha)
        assert r.status == 429, r
        assert "long_polls_per_token" in r.error["message"]
        assert srv.get("/v1/executions/lp-2", headers=ha).status == 404
        r = srv.post("/v1/tasks/poll", {"queues": ["lpq"], "worker": "w", "wait": "1s"},
                     headers=ha)
        assert r.status == 429, r
        # a request that does not wait is not counted, nor is another token
        assert srv.get(f"/v1/executions/{ex}", headers=ha).status == 200
        r = srv.get(f"/v1/executions/{ex}?wait=200ms", headers=hb)
        assert r.status == 200, r
        for t in threads:
            t.join(30)
        assert results == [200, 200]
        # the slots are free again, and a start's wait gives its slot back
        r = srv.get(f"/v1/executions/{ex}?wait=100ms", headers=ha)
        assert r.status == 200, r
        for i in range(3):
            r = srv.post("/v1/executions?wait=100ms", {"workflow": "lp", "id": f"lp-w{i}"},
                         headers=ha)
            assert r.status == 201 and r.json["status"] == "running", r
        r = srv.get(f"/v1/executions/{ex}?wait=100ms", headers=ha)
        assert r.status == 200, r
    finally:
        assert srv.stop() == 0
