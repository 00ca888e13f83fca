"""POST /v1/tasks/complete: a worker's whole batch of results in one request.

Each result is checked and answered on its own, as the single-task
endpoints would (docs/interfaces/api.md "Tasks"); a malformed result refuses
the whole request with 400 and changes nothing.
"""

from apiutil import WfoServer


DEF = {"name": "batched", "steps": [{"name": "t", "type": "task", "queue": "bq",
                                      "retry": {"max_attempts": 1}}]}


def _setup(tmp_path, n):
    srv = WfoServer(tmp_path)
    srv.launch()
    srv.put_workflow(DEF)
    ids = [srv.start_exec("batched", {"k": i})["id"] for i in range(n)]
    tasks = srv.poll(["bq"], wait="5s", max=n)
    assert len(tasks) == n, tasks
    return srv, ids, tasks


def test_batch_completes_and_fails_each_task(tmp_path):
    srv, ids, tasks = _setup(tmp_path, 3)
    try:
        by_exec = {t["execution_id"]: t for t in tasks}
        t0, t1, t2 = (by_exec[i] for i in ids)
        body = {"results": [
            {"task_id": t0["task_id"], "lease": t0["lease"], "output": {"n": 0}},
            {"task_id": t1["task_id"], "lease": t1["lease"],
             "error": {"type": "Boom", "message": "no"}, "retryable": False},
            {"task_id": t2["task_id"], "lease": "0" * 32, "output": 2},
        ]}
        r = srv.post("/v1/tasks/complete", body)
        assert r.status == 200, r
        res = r.json["results"]
        assert [x["task_id"] for x in res] == [t0["task_id"], t1["task_id"], t2["task_id"]]
        assert res[0]["status"] == "completed"
        assert res[1]["status"] == "failed"
        assert res[2]["status"] == "rejected" and res[2]["status_code"] == 409, res[2]
        assert res[2]["error"]["type"] == "Conflict", res[2]
        d0 = srv.doc(ids[0], wait="10s")
        assert d0["status"] == "completed" and d0["output"] == {"n": 0}, d0
        d1 = srv.doc(ids[1], wait="10s")
        assert d1["status"] == "failed" and d1["error"]["type"] == "Boom", d1
        assert srv.doc(ids[2])["status"] == "running"
        # the same batch again: every result is no longer current
        r = srv.post("/v1/tasks/complete", body)
        assert r.status == 200, r
        assert [x.get("status_code") for x in r.json["results"]] == [409, 409, 409]
        # an unknown task
        r = srv.post("/v1/tasks/complete",
                     {"results": [{"task_id": "nope.1", "lease": "x", "output": 1}]})
        assert r.status == 200, r
        assert r.json["results"][0]["status_code"] == 404
    finally:
        srv.stop()


def test_malformed_batches_are_refused_whole(tmp_path):
    srv, ids, tasks = _setup(tmp_path, 1)
    try:
        t = tasks[0]
        good = {"task_id": t["task_id"], "lease": t["lease"], "output": 1}
        cases = [
            ({}, "results"),
            ({"results": []}, "results"),
            ({"results": "x"}, "results"),
            ({"results": [good] * 101}, "results"),
            ({"results": [good, 5]}, "results[1]"),
            ({"results": [good, {"lease": "x"}]}, "results[1].task_id"),
            ({"results": [good, {"task_id": "a.1"}]}, "results[1].lease"),
            ({"results": [good, {"task_id": "a.1", "lease": "x", "error": "boom"}]},
             "results[1].error"),
            ({"results": [good, {"task_id": "a.1", "lease": "x", "error": {"type": ""}}]},
             "results[1].error.type"),
            ({"results": [good, {"task_id": "a.1", "lease": "x", "error": {"type": "E"},
                                 "retryable": "no"}]}, "results[1].retryable"),
        ]
        for body, where in cases:
            r = srv.post("/v1/tasks/complete", body)
            assert r.status == 400, (body, r)
            err = r.json["error"]
            assert err["type"] == "BadRequest" and err["message"].startswith(where), (body, err)
        # nothing was applied: the task is still open and completes now
        assert srv.doc(ids[0])["status"] == "running"
        r = srv.post("/v1/tasks/complete", {"results": [good]})
        assert r.status == 200 and r.json["results"][0]["status"] == "completed", r
        assert srv.doc(ids[0], wait="10s")["output"] == 1
        r = srv.request("GET", "/v1/tasks/complete")
        assert r.status == 405, r
    finally:
        srv.stop()
