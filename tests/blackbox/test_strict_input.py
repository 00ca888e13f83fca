"""Strict input (SPEC 4): a field an endpoint does not know is a 400 that
names it and changes nothing; a definition with `exec` steps is refused at
PUT by a server where exec is disabled; input, output and error payloads
over limits.payload_bytes are a 400 PayloadTooLarge.
"""

import pytest

from apiutil import WfoServer, task_workflow, set_workflow


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = WfoServer(tmp_path_factory.mktemp("strict"), env={"WFO_PAYLOAD_BYTES": "1000"})
    s.launch()
    s.put_workflow(task_workflow("strict-task", queue="strict-q"))
    s.put_workflow(set_workflow("strict-set"))
    yield s
    assert s.stop() == 0, s.stderr()


def test_inpt_starts_nothing(srv):
    r = srv.post("/v1/executions", {"workflow": "strict-set", "inpt": {"x": 1}, "id": "inpt-1"})
    assert r.status == 400, r
    assert r.error["type"] == "BadRequest"
    assert "inpt" in r.error["message"], r
    assert srv.get("/v1/executions/inpt-1").status == 404
    assert srv.get("/v1/executions?workflow=strict-set").json["executions"] == []


@pytest.mark.parametrize("path,body,field", [
    ("/v1/executions/{ex}/cancel", {"reason": "x", "compensat": True}, "compensat"),
    ("/v1/executions/{ex}/terminate", {"resaon": "x"}, "resaon"),
    ("/v1/executions/{ex}/pause", {"why": 1}, "why"),
    ("/v1/executions/{ex}/resume", {"why": 1}, "why"),
    ("/v1/executions/{ex}/retry", {"form": "s"}, "form"),
    ("/v1/tasks/poll", {"queues": ["strict-q"], "worker": "w", "maxx": 3}, "maxx"),
    ("/v1/tasks/{task}/complete", {"lease": "{lease}", "ouput": 1}, "ouput"),
    ("/v1/tasks/{task}/fail", {"lease": "{lease}", "error": {"type": "E"}, "retry": False},
     "retry"),
    ("/v1/tasks/{task}/fail", {"lease": "{lease}", "error": {"type": "E", "mesage": "m"}},
     "error.mesage"),
    ("/v1/tasks/{task}/heartbeat", {"lease": "{lease}", "detail": 1}, "detail"),
    ("/v1/tasks/complete", {"results": [], "extra": 1}, "extra"),
    ("/v1/tasks/complete", {"results": [{"task_id": "{task}", "lease": "{lease}", "outptu": 1}]},
     "results[0].outptu"),
])
def test_unknown_fields_named(srv, path, body, field):
    ex = srv.start_exec("strict-task", {})["id"]
    t = srv.poll(["strict-q"], wait="5s")[0]
    import json
    text = json.dumps(body).replace("{lease}", t["lease"]).replace("{task}", t["task_id"])
    p = path.format(ex=ex, task=t["task_id"])
    r = srv.post(p, text, headers={"Content-Type": "application/json"})
    assert r.status == 400, r
    assert field in r.error["message"], r
    # nothing changed: the task is still leased by us and the execution runs
    assert srv.doc(ex)["status"] == "running"
    r = srv.post(f"/v1/tasks/{t['task_id']}/complete", {"lease": t["lease"], "output": 1})
    assert r.status == 200, r


def test_exec_refused_at_put_when_disabled(srv):
    d = {"name": "strict-exec", "steps": [
        {"name": "a", "type": "set", "vars": {"x": 1}},
        {"name": "p", "type": "parallel", "branches": [
            {"name": "b", "steps": [{"name": "sh", "type": "exec", "command": ["true"]}]}]}]}
    r = srv.put("/v1/workflows/strict-exec", d)
    assert r.status == 400, r
    assert "exec" in r.error["message"]
    details = r.error["details"]
    assert any(p["path"] == "steps[1].branches[0].steps[0]" for p in details), details
    assert srv.get("/v1/workflows/strict-exec").status == 404


@pytest.mark.parametrize("compensate,path", [
    ({"type": "exec", "command": ["true"]}, "steps[0].compensate"),
    ([{"type": "set", "vars": {"y": 1}}, {"type": "exec", "command": ["true"]}],
     "steps[0].compensate[1]"),
])
def test_exec_in_compensation_refused_at_its_path(srv, compensate, path):
    """The path is written as wfo validate writes it: no [0] for a single compensation."""
    d = {"name": "strict-exec-comp", "steps": [
        {"name": "a", "type": "set", "vars": {"x": 1}, "compensate": compensate}]}
    r = srv.put("/v1/workflows/strict-exec-comp", d)
    assert r.status == 400, r
    assert [p["path"] for p in r.error["details"]] == [path], r.error


def test_exec_accepted_when_enabled(tmp_path):
    s = WfoServer(tmp_path, env={"WFO_EXEC_ENABLED": "true"})
    s.launch()
    try:
        d = {"name": "ok-exec", "steps": [{"name": "sh", "type": "exec", "command": ["true"]}]}
        assert s.put("/v1/workflows/ok-exec", d).status == 201
    finally:
        s.stop()


def test_payload_limits(srv):
    big = {"blob": "x" * 2000}
    r = srv.post("/v1/executions", {"workflow": "strict-set", "input": big, "id": "big-1"})
    assert r.status == 400, r
    assert r.error["type"] == "PayloadTooLarge" and "input" in r.error["message"], r
    assert srv.get("/v1/executions/big-1").status == 404
    ex = srv.start_exec("strict-task", {"small": 1})["id"]
    t = srv.poll(["strict-q"], wait="5s")[0]
    for path, body, what in [
        (f"/v1/tasks/{t['task_id']}/complete", {"lease": t["lease"], "output": big}, "output"),
        (f"/v1/tasks/{t['task_id']}/fail",
         {"lease": t["lease"], "error": {"type": "E", "details": big}}, "error"),
        (f"/v1/tasks/{t['task_id']}/heartbeat", {"lease": t["lease"], "details": big}, "details"),
    ]:
        r = srv.post(path, body)
        assert r.status == 400, (path, r)
        assert r.error["type"] == "PayloadTooLarge" and what in r.error["message"], r
    r = srv.post("/v1/tasks/complete",
                 {"results": [{"task_id": t["task_id"], "lease": t["lease"], "output": big}]})
    assert r.status == 400 and r.error["type"] == "PayloadTooLarge", r
    assert srv.doc(ex)["status"] == "running"
    r = srv.post(f"/v1/tasks/{t['task_id']}/complete", {"lease": t["lease"], "output": "fits"})
    assert r.status == 200, r
