"""`workflow` steps: child executions (SPEC 2.2, 2.5, 3). The child's
document names its parent {id, step}, the parent's step its child; the step
takes the child's output, or fails with ChildFailed (the child's error in
details) for catch and retry; cancelling or terminating the parent does the
same to its running children; a parent waiting on a child survives kill -9."""

import signal
import time

import pytest

from apiutil import WfoServer, server, unique  # noqa: F401  (server is a fixture)


def echo_child(name):
    """A child that completes with {echo: its input}."""
    return {"name": name, "steps": [{"name": "out", "type": "succeed",
                                     "output": {"echo": "${ .input }"}}]}


def task_child(name, queue):
    """A child that waits for one task on QUEUE and completes with its output."""
    return {"name": name, "steps": [{"name": "work", "type": "task", "queue": queue,
                                     "retry": {"max_attempts": 1}}]}


def parent_wf(name, child, **step):
    s = {"name": "call", "type": "workflow", "workflow": child}
    s.update(step)
    return {"name": name, "steps": [s]}


def step_of(doc, name):
    for s in doc["steps"]:
        if s["name"] == name:
            return s
    pytest.fail(f"no step {name} in {doc}")


def take_task(srv, queue, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tasks = srv.poll([queue], wait="1s")
        if tasks:
            return tasks[0]
    pytest.fail(f"no task on {queue}")


def complete(srv, task, output):
    r = srv.post(f"/v1/tasks/{task['task_id']}/complete", {"lease": task["lease"], "output": output})
    assert r.status == 200, r


def fail(srv, task, type_, message):
    r = srv.post(f"/v1/tasks/{task['task_id']}/fail",
                 {"lease": task["lease"], "error": {"type": type_, "message": message},
                  "retryable": False})
    assert r.status == 200, r


def test_child_completes_and_parent_takes_its_output(server):
    child, parent = unique("child-echo"), unique("parent-echo")
    server.put_workflow(echo_child(child))
    server.put_workflow(parent_wf(parent, child, input={"n": "${ .input.n }"},
                                  output={"got": "${ .result.echo.n }"}))
    ex = server.start_exec(parent, {"n": 7})
    doc = server.wait_status(ex["id"], "completed")
    call = step_of(doc, "call")
    assert call["status"] == "completed"
    assert call["output"] == {"got": 7}
    cid = call["child"]
    assert isinstance(cid, str) and cid
    cdoc = server.doc(cid)
    assert cdoc["status"] == "completed"
    assert cdoc["workflow"] == child
    assert cdoc["input"] == {"n": 7}
    assert cdoc["output"] == {"echo": {"n": 7}}
    assert cdoc["parent"] == {"id": ex["id"], "step": "call"}
    assert doc["parent"] is None


def test_child_input_defaults_to_parent_input(server):
    child, parent = unique("child-def"), unique("parent-def")
    server.put_workflow(echo_child(child))
    server.put_workflow(parent_wf(parent, child))
    ex = server.start_exec(parent, {"a": [1, 2]})
    doc = server.wait_status(ex["id"], "completed")
    assert step_of(doc, "call")["output"] == {"echo": {"a": [1, 2]}}


def test_version_pinning(server):
    child, p1, p2 = unique("child-ver"), unique("parent-v1"), unique("parent-latest")
    server.put_workflow(echo_child(child))
    v2 = {"name": child, "steps": [{"name": "out", "type": "succeed", "output": "v2"}]}
    assert server.put_workflow(v2).json["version"] == 2
    server.put_workflow(parent_wf(p1, child, version=1))
    server.put_workflow(parent_wf(p2, child))
    d1 = server.wait_status(server.start_exec(p1, {"k": 1})["id"], "completed")
    d2 = server.wait_status(server.start_exec(p2, {"k": 1})["id"], "completed")
    assert step_of(d1, "call")["output"] == {"echo": {"k": 1}}
    assert server.doc(step_of(d1, "call")["child"])["version"] == 1
    assert step_of(d2, "call")["output"] == "v2"
    assert server.doc(step_of(d2, "call")["child"])["version"] == 2


def failing_child(name):
    return {"name": name, "steps": [{"name": "boom", "type": "fail",
                                     "error": {"type": "Boom", "message": "it broke",
                                               "details": {"code": 42}}}]}


def test_child_failure_raises_child_failed(server):
    child, parent = unique("child-fail"), unique("parent-fail")
    server.put_workflow(failing_child(child))
    server.put_workflow(parent_wf(parent, child))
    ex = server.start_exec(parent, {})
    doc = server.wait_status(ex["id"], "failed")
    assert doc["error"]["type"] == "ChildFailed"
    assert doc["error"]["step"] == "call"
    det = doc["error"]["details"]
    assert det["type"] == "Boom" and det["message"] == "it broke"
    assert det["details"] == {"code": 42}
    call = step_of(doc, "call")
    assert call["status"] == "failed" and call["error"]["type"] == "ChildFailed"
    assert server.doc(call["child"])["status"] == "failed"


def test_child_failure_caught(server):
    child, parent = unique("child-catch"), unique("parent-catch")
    server.put_workflow(failing_child(child))
    server.put_workflow({"name": parent, "steps": [
        {"name": "call", "type": "workflow", "workflow": child,
         "catch": [{"errors": ["ChildFailed"], "next": "handle"}]},
        {"name": "never", "type": "fail", "error": {"type": "X", "message": "x"}},
        {"name": "handle", "type": "succeed",
         "output": {"why": "${ .error.details.type }"}}]})
    ex = server.start_exec(parent, {})
    doc = server.wait_status(ex["id"], "completed")
    assert doc["output"] == {"why": "Boom"}
    assert step_of(doc, "call")["status"] == "caught"


def test_child_failure_retried_with_a_new_child(server):
    child, parent = unique("child-retry"), unique("parent-retry")
    q = unique("q-retry")
    server.put_workflow(task_child(child, q))
    server.put_workflow(parent_wf(parent, child, retry={"max_attempts": 2,
                                                        "initial_interval": "10ms"}))
    ex = server.start_exec(parent, {})
    t1 = take_task(server, q)
    fail(server, t1, "Flaky", "first try")
    t2 = take_task(server, q)
    assert t2["execution_id"] != t1["execution_id"]
    complete(server, t2, {"ok": True})
    doc = server.wait_status(ex["id"], "completed")
    call = step_of(doc, "call")
    assert call["attempts"] == 2 and call["output"] == {"ok": True}
    assert call["child"] == t2["execution_id"]
    first = server.doc(t1["execution_id"])
    assert first["status"] == "failed"
    assert first["parent"] == {"id": ex["id"], "step": "call"}


@pytest.mark.parametrize("op,status", [("cancel", "cancelled"), ("terminate", "terminated")])
def test_parent_stopped_stops_running_child(server, op, status):
    child, parent = unique(f"child-{op}"), unique(f"parent-{op}")
    q = unique(f"q-{op}")
    server.put_workflow(task_child(child, q))
    server.put_workflow(parent_wf(parent, child))
    ex = server.start_exec(parent, {})
    doc = server.wait_step(ex["id"], "call", "running")
    cid = step_of(doc, "call")["child"]
    server.wait_step(cid, "work", "running")
    r = server.post(f"/v1/executions/{ex['id']}/{op}", {})
    assert r.status == 200, r
    assert server.wait_status(ex["id"], status)["status"] == status
    cdoc = server.wait_status(cid, status)
    assert cdoc["error"]["type"] in ("Cancelled", "Terminated")
    assert ex["id"] in cdoc["error"]["message"]


def test_nested_grandchild(server):
    gchild, child, parent = unique("gchild"), unique("mid"), unique("top")
    q = unique("q-nested")
    server.put_workflow(task_child(gchild, q))
    server.put_workflow(parent_wf(child, gchild, output={"mid": "${ .result }"}))
    server.put_workflow(parent_wf(parent, child, output={"top": "${ .result }"}))
    ex = server.start_exec(parent, {})
    t = take_task(server, q)
    gdoc = server.doc(t["execution_id"])
    mid_id = gdoc["parent"]["id"]
    assert server.doc(mid_id)["parent"] == {"id": ex["id"], "step": "call"}
    complete(server, t, 5)
    doc = server.wait_status(ex["id"], "completed")
    assert step_of(doc, "call")["output"] == {"top": {"mid": 5}}


def test_nested_cancel_reaches_grandchild(server):
    gchild, child, parent = unique("gchild-c"), unique("mid-c"), unique("top-c")
    q = unique("q-nested-c")
    server.put_workflow(task_child(gchild, q))
    server.put_workflow(parent_wf(child, gchild))
    server.put_workflow(parent_wf(parent, child))
    ex = server.start_exec(parent, {})
    t = take_task(server, q)
    assert server.post(f"/v1/executions/{ex['id']}/cancel", {}).status == 200
    assert server.wait_status(t["execution_id"], "cancelled")["status"] == "cancelled"


def test_unknown_child_workflow(server):
    parent = unique("parent-unknown")
    missing = unique("no-such-workflow")
    server.put_workflow(parent_wf(parent, missing))
    ex = server.start_exec(parent, {})
    doc = server.wait_status(ex["id"], "failed")
    assert doc["error"]["type"] == "ChildFailed"
    assert doc["error"]["details"]["type"] == "NotFound"
    assert missing in doc["error"]["details"]["message"]
    assert "child" not in step_of(doc, "call")


def test_missing_workflow_field_is_refused(server):
    name = unique("bad-child")
    r = server.put(f"/v1/workflows/{name}",
                   {"name": name, "steps": [{"name": "call", "type": "workflow"}]})
    assert r.status == 400, r
    assert any("workflow" in (p.get("message", "") + p.get("path", ""))
               for p in r.json["error"]["details"]), r.json


def kill9(srv):
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait()
    srv._err.close()
    srv.proc = None


def test_kill9_while_child_runs(tmp_path):
    srv = WfoServer(tmp_path / "srv").launch()
    try:
        child, parent = unique("child-k9"), unique("parent-k9")
        q = unique("q-k9")
        srv.put_workflow(task_child(child, q))
        srv.put_workflow(parent_wf(parent, child, output={"got": "${ .result }"}))
        ex = srv.start_exec(parent, {})
        srv.wait_step(ex["id"], "call", "running")
        kill9(srv)
        srv.launch()
        t = take_task(srv, q)
        complete(srv, t, "done")
        doc = srv.wait_status(ex["id"], "completed")
        assert step_of(doc, "call")["output"] == {"got": "done"}
        assert srv.doc(t["execution_id"])["parent"]["id"] == ex["id"]
    finally:
        assert srv.stop() == 0, srv.stderr()


def test_kill9_after_child_ended(tmp_path):
    """The child ends, the server is killed at once: after the restart the
    parent has (or takes) the child's outcome."""
    srv = WfoServer(tmp_path / "srv").launch()
    try:
        child, parent = unique("child-k9b"), unique("parent-k9b")
        q = unique("q-k9b")
        srv.put_workflow(task_child(child, q))
        srv.put_workflow(parent_wf(parent, child))
        ex = srv.start_exec(parent, {})
        t = take_task(srv, q)
        complete(srv, t, {"v": 1})
        kill9(srv)
        srv.launch()
        doc = srv.wait_status(ex["id"], "completed")
        assert step_of(doc, "call")["output"] == {"v": 1}
        hist = srv.get(f"/v1/executions/{ex['id']}/history").json
        assert [h["type"] for h in hist].count("step.completed") == 1
    finally:
        assert srv.stop() == 0, srv.stderr()


def test_cancel_with_compensation_waits_for_the_child(server):
    """SPEC 2.4: a cancel with compensate waits for the attempts in flight,
    the child among them, before it compensates: the child is cancelled
    and undoes its own completed step first; the parent's earlier step is
    undone only after the child has ended (reverse order of completion)."""
    kid, par = unique("wc-kid"), unique("wc-par")
    server.put_workflow({"name": kid, "steps": [
        {"name": "k1", "type": "task", "queue": f"{kid}-k1",
         "compensate": {"type": "task", "queue": f"{kid}-undo"}},
        {"name": "k2", "type": "task", "queue": f"{kid}-k2"}]})
    server.put_workflow({"name": par, "steps": [
        {"name": "p1", "type": "task", "queue": f"{par}-p1",
         "compensate": {"type": "task", "queue": f"{par}-undo"}},
        {"name": "call", "type": "workflow", "workflow": kid}]})
    e = server.start_exec(par)
    complete(server, take_task(server, f"{par}-p1"), {"p": 1})
    complete(server, take_task(server, f"{kid}-k1"), {"k": 1})
    k2 = take_task(server, f"{kid}-k2")  # in flight
    r = server.post(f"/v1/executions/{e['id']}/cancel", {"compensate": True})
    assert r.status == 200, r
    # the child's worker is told to stop, and says it failed
    hb = server.post(f"/v1/tasks/{k2['task_id']}/heartbeat", {"lease": k2["lease"]})
    assert hb.status == 200 and hb.json["cancel_requested"] is True, hb
    fail(server, k2, "Stopped", "asked to stop")
    # the child's undo comes first; the parent's waits for the child
    undo_kid = take_task(server, f"{kid}-undo")
    assert server.poll([f"{par}-undo"], wait="300ms") == []
    assert server.doc(e["id"])["status"] == "running"
    complete(server, undo_kid, {"undone": "k1"})
    undo_par = take_task(server, f"{par}-undo")
    complete(server, undo_par, {"undone": "p1"})
    d = server.wait_status(e["id"], "cancelled")
    assert d["compensation"] == {"status": "completed"}, d
    child = server.doc(step_of(d, "call")["child"])
    assert child["status"] == "cancelled" and child["compensation"] == {"status": "completed"}
    assert child["finished_at"] <= d["finished_at"]
