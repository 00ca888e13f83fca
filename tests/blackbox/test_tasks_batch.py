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


TWO = {"name": "two", "steps": [
    {"name": "a", "type": "task", "queue": "eq", "retry": {"max_attempts": 1}},
    {"name": "b", "type": "task", "queue": "eq", "input": "${ .steps.a.output }",
     "retry": {"max_attempts": 1}}]}


def test_completion_with_poll_answers_the_next_tasks(tmp_path):
    """poll beside results: the answer leases what the results' commit
    made ready (each execution's next step), as a poll that does not
    wait would; without poll the answer has no tasks."""
    srv = WfoServer(tmp_path)
    srv.launch()
    try:
        srv.put_workflow(TWO)
        ids = [srv.start_exec("two", {"k": i})["id"] for i in range(3)]
        first = srv.poll(["eq"], wait="5s", max=3)
        assert sorted(t["execution_id"] for t in first) == sorted(ids), first
        results = [{"task_id": t["task_id"], "lease": t["lease"],
                    "output": {"from": t["execution_id"]}} for t in first]
        # max 2 of the 3 next steps
        r = srv.post("/v1/tasks/complete", {"results": results[:2] + results[2:],
                                            "poll": {"queues": ["eq"], "worker": "w1",
                                                     "max": 2}})
        assert r.status == 200, r
        assert [x["status"] for x in r.json["results"]] == ["completed"] * 3, r
        got = r.json["tasks"]
        assert len(got) == 2, r
        for t in got:
            assert t["step"] == "b" and t["queue"] == "eq", t
            assert t["input"] == {"from": t["execution_id"]}, t  # b's input: a's output
            assert t["lease"] and t["task_id"]
        # the third is still ready for anyone; the two leased are not
        rest = srv.poll(["eq"], max=10)
        assert len(rest) == 1 and rest[0]["step"] == "b", rest
        assert rest[0]["execution_id"] not in {t["execution_id"] for t in got}
        # the leases given in the answer complete their tasks
        r = srv.post("/v1/tasks/complete", {
            "results": [{"task_id": t["task_id"], "lease": t["lease"], "output": "done"}
                        for t in got + rest],
            "poll": {"queues": ["eq"], "worker": "w1", "max": 5}})
        assert r.status == 200, r
        assert [x["status"] for x in r.json["results"]] == ["completed"] * 3, r
        assert r.json["tasks"] == [], r  # nothing left: empty, not missing
        for i in ids:
            d = srv.doc(i, wait="10s")
            assert d["status"] == "completed" and d["output"] == "done", d
        # the poller shows in the queue's pollers
        q = srv.get("/v1/queues").json["queues"]
        assert any(p["worker"] == "w1" for x in q if x["name"] == "eq" for p in x["pollers"]), q
        # without poll: no tasks key
        sid = srv.start_exec("two", {"k": 9})["id"]
        t = srv.poll(["eq"], wait="5s")[0]
        r = srv.post("/v1/tasks/complete",
                     {"results": [{"task_id": t["task_id"], "lease": t["lease"], "output": 1}]})
        assert r.status == 200 and "tasks" not in r.json, r
        assert srv.poll(["eq"], wait="5s")[0]["execution_id"] == sid
    finally:
        srv.stop()


def test_completion_with_a_malformed_poll_is_refused_whole(tmp_path):
    srv, ids, tasks = _setup(tmp_path, 1)
    try:
        t = tasks[0]
        good = [{"task_id": t["task_id"], "lease": t["lease"], "output": 1}]
        cases = [
            ("x", "poll: expected an object"),
            ({}, "poll.queues"),
            ({"queues": []}, "poll.queues"),
            ({"queues": ["bq", 3], "worker": "w"}, "poll.queues[1]"),
            ({"queues": ["bq"]}, "poll.worker: required"),
            ({"queues": ["bq"], "worker": "w", "max": 0}, "poll.max"),
            ({"queues": ["bq"], "worker": "w", "max": 101}, "poll.max"),
            ({"queues": ["bq"], "worker": "w", "wait": "1s"}, "poll."),  # it never waits
        ]
        for poll, where in cases:
            r = srv.post("/v1/tasks/complete", {"results": good, "poll": poll})
            assert r.status == 400, (poll, r)
            err = r.json["error"]
            assert err["type"] == "BadRequest" and err["message"].startswith(where), (poll, err)
        assert srv.doc(ids[0])["status"] == "running"  # nothing was applied
        r = srv.post("/v1/tasks/complete", {"results": good, "poll": None})
        assert r.status == 200 and r.json["results"][0]["status"] == "completed", r
        assert "tasks" not in r.json, r
    finally:
        srv.stop()
