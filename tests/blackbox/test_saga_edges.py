"""Sagas at their edges (SPEC 2.3, 2.4): what a retry does after a
compensation, `retry --from`, failed compensations run again, and blocks
whose retry keeps what finished and does not retry what is never retried.
docs/implementation/compensation.md ("Retrying after a compensation") and
error_handling.md ("Failures inside blocks") state the rules."""

import http.server
import json
import threading
import time

import pytest

from apiutil import WfoServer, server, unique  # noqa: F401
from conftest import run_def, run_wfo, step


def take(srv, queue, wait="5s"):
    """Polls QUEUE for one task."""
    tasks = srv.poll([queue], wait=wait)
    assert len(tasks) == 1, (queue, tasks)
    return tasks[0]


def complete(srv, t, output=None):
    r = srv.post(f"/v1/tasks/{t['task_id']}/complete", {"lease": t["lease"], "output": output})
    assert r.status == 200, r


def fail(srv, t, type_="Broken", retryable=False):
    r = srv.post(f"/v1/tasks/{t['task_id']}/fail",
                 {"lease": t["lease"], "error": {"type": type_, "message": "no"},
                  "retryable": retryable})
    assert r.status == 200, r


def wait_cancel_requested(srv, t):
    """Heartbeats task t until its answer says cancel_requested (5 s at most)."""
    for _ in range(100):
        r = srv.post(f"/v1/tasks/{t['task_id']}/heartbeat", {"lease": t["lease"]})
        assert r.status == 200, r
        if r.json["cancel_requested"]:
            return
        time.sleep(0.05)
    assert r.json["cancel_requested"] is True, r


def history(srv, exec_id):
    return srv.get(f"/v1/executions/{exec_id}/history").json


def started(hist, path):
    return sum(1 for h in hist if h["type"] == "step.started" and h["step"] == path)


def order_workflow(name):
    return {"name": name, "steps": [
        {"name": "charge", "type": "task", "queue": f"{name}-pay",
         "compensate": {"type": "task", "queue": f"{name}-refund",
                        "retry": {"max_attempts": 1}}},
        {"name": "reserve", "type": "task", "queue": f"{name}-stock"},
    ]}


def test_retry_after_compensation_charges_again(server):
    """The unpaid order: charge completed, reserve failed, charge was
    refunded; a retry resumes from charge (the earliest compensated step),
    so the order is charged again before it ships."""
    name = unique("unpaid")
    server.put_workflow(order_workflow(name))
    e = server.start_exec(name)
    complete(server, take(server, f"{name}-pay"), {"charge": "c-1"})
    fail(server, take(server, f"{name}-stock"), "OutOfStock")
    complete(server, take(server, f"{name}-refund"), {"refund": "r-1"})
    d = server.wait_status(e["id"], "failed")
    assert d["compensation"] == {"status": "completed"}
    assert [s["status"] for s in d["steps"]] == ["compensated", "failed"]

    r = server.post(f"/v1/executions/{e['id']}/retry")
    assert r.status == 200, r
    pay = take(server, f"{name}-pay")
    assert pay["attempt"] == 1
    complete(server, pay, {"charge": "c-2"})
    complete(server, take(server, f"{name}-stock"), {"reserved": True})
    d = server.wait_status(e["id"], "completed")
    charge = [s for s in d["steps"] if s["name"] == "charge"][0]
    assert charge["status"] == "completed" and charge["output"] == {"charge": "c-2"}
    hist = history(server, e["id"])
    retried = [h for h in hist if h["type"] == "execution.retried"]
    assert retried[-1]["data"] == {"step": "charge"} and retried[-1]["step"] == "charge"
    assert started(hist, "charge") == 2


def test_retry_from_a_step(server, tmp_path):
    """`from` resets to a step that ran before: it and the steps after it
    run again, the steps before keep their outputs; a step the execution
    never reached is a 400 that names it."""
    name = unique("from")
    server.put_workflow({"name": name, "steps": [
        {"name": "a", "type": "set", "vars": {"a": 1}},
        {"name": "b", "type": "task", "queue": f"{name}-b"},
        {"name": "c", "type": "task", "queue": f"{name}-c"},
        {"name": "never", "type": "set", "vars": {"n": 1}},
    ]})
    e = server.start_exec(name)
    complete(server, take(server, f"{name}-b"), {"b": 1})
    fail(server, take(server, f"{name}-c"))
    server.wait_status(e["id"], "failed")

    r = server.post(f"/v1/executions/{e['id']}/retry", {"from": "never"})
    assert r.status == 400, r
    assert "never" in r.error["message"]
    r = server.post(f"/v1/executions/{e['id']}/retry", {"from": "nope"})
    assert r.status == 400 and "nope" in r.error["message"], r
    r = server.post(f"/v1/executions/{e['id']}/retry", {"from": 3})
    assert r.status == 400, r
    assert server.doc(e["id"])["status"] == "failed"  # nothing changed

    rc, out, err = run_wfo(["retry", e["id"], "--from", "b",
                            "--server", f"http://127.0.0.1:{server.port}"])
    assert rc == 0, err
    assert json.loads(out)["status"] == "running"
    complete(server, take(server, f"{name}-b"), {"b": 2})
    complete(server, take(server, f"{name}-c"), {"c": 2})
    d = server.wait_status(e["id"], "completed")
    assert {s["name"]: s["output"] for s in d["steps"]}["b"] == {"b": 2}
    hist = history(server, e["id"])
    assert started(hist, "a") == 1 and started(hist, "b") == 2 and started(hist, "c") == 2
    assert [h["data"] for h in hist if h["type"] == "execution.retried"] == [{"step": "b"}]


def test_retry_from_a_step_rewinds_vars(tmp_path):
    """Like Temporal's reset, a retry `from` a step runs it and what follows
    with .vars as they were when that step was last entered: a `set` step
    after it counts once per pass, not on from the failed pass's values;
    `set` steps before it keep theirs. So does the new pass after a
    compensation."""
    name = unique("rewind")
    server = WfoServer(tmp_path)
    server.launch()
    server.put_workflow({"name": name, "steps": [
        {"name": "a", "type": "set", "vars": {"n": "${ (.vars.n // 0) + 1 }"}},
        {"name": "t", "type": "task", "queue": f"{name}-t"},
        {"name": "b", "type": "set", "vars": {"n": "${ .vars.n + 100 }",
                                              "m": "${ (.vars.m // 0) + 10 }"}},
        {"name": "c", "type": "task", "queue": f"{name}-c"},
        {"name": "out", "type": "succeed", "output": "${ .vars }"},
    ]})
    e = server.start_exec(name)
    complete(server, take(server, f"{name}-t"))
    fail(server, take(server, f"{name}-c"))
    server.wait_status(e["id"], "failed")
    r = server.post(f"/v1/executions/{e['id']}/retry", {"from": "t"})
    assert r.status == 200, r
    complete(server, take(server, f"{name}-t"))
    fail(server, take(server, f"{name}-c"))
    server.wait_status(e["id"], "failed")
    server.proc.kill()  # kill -9: the entries' order is durable
    server.proc.wait()
    server.proc = None
    server.launch()
    r = server.post(f"/v1/executions/{e['id']}/retry", {"from": "t"})
    assert r.status == 200, r
    complete(server, take(server, f"{name}-t"))
    complete(server, take(server, f"{name}-c"))
    d = server.wait_status(e["id"], "completed")
    assert d["output"] == {"n": 101, "m": 10}, d  # not 301 / 30
    # from the first step: nothing assigned before it
    e2 = server.start_exec(name)
    complete(server, take(server, f"{name}-t"))
    fail(server, take(server, f"{name}-c"))
    server.wait_status(e2["id"], "failed")
    r = server.post(f"/v1/executions/{e2['id']}/retry", {"from": "a"})
    assert r.status == 200, r
    complete(server, take(server, f"{name}-t"))
    complete(server, take(server, f"{name}-c"))
    assert server.wait_status(e2["id"], "completed")["output"] == {"n": 101, "m": 10}
    # the new pass after a compensation starts from the earliest
    # compensated step, with .vars as they were when it was entered
    name = unique("rewind-saga")
    server.put_workflow({"name": name, "steps": [
        {"name": "s0", "type": "set", "vars": {"n": "${ (.vars.n // 0) + 1 }"}},
        {"name": "charge", "type": "task", "queue": f"{name}-pay",
         "compensate": {"type": "task", "queue": f"{name}-refund"}},
        {"name": "s1", "type": "set", "vars": {"n": "${ .vars.n + 100 }"}},
        {"name": "reserve", "type": "task", "queue": f"{name}-stock",
         "retry": {"max_attempts": 1}},
        {"name": "out", "type": "succeed", "output": "${ .vars }"},
    ]})
    e3 = server.start_exec(name)
    complete(server, take(server, f"{name}-pay"))
    fail(server, take(server, f"{name}-stock"))
    complete(server, take(server, f"{name}-refund"))
    server.wait_status(e3["id"], "failed")
    r = server.post(f"/v1/executions/{e3['id']}/retry")
    assert r.status == 200, r
    complete(server, take(server, f"{name}-pay"))
    complete(server, take(server, f"{name}-stock"))
    assert server.wait_status(e3["id"], "completed")["output"] == {"n": 101}
    assert server.stop() == 0


def test_retry_reruns_failed_compensations_first(server):
    """A compensation that failed runs again first; when it completes, the
    execution resumes (from the step it undid)."""
    name = unique("comp-failed")
    server.put_workflow(order_workflow(name))
    e = server.start_exec(name)
    complete(server, take(server, f"{name}-pay"), {"charge": "c-1"})
    fail(server, take(server, f"{name}-stock"))
    fail(server, take(server, f"{name}-refund"), "RefundDown")
    d = server.wait_status(e["id"], "failed")
    assert d["compensation"]["status"] == "failed"
    assert [s["status"] for s in d["steps"]] == ["completed", "failed"]

    r = server.post(f"/v1/executions/{e['id']}/retry")
    assert r.status == 200, r
    assert server.poll([f"{name}-pay"]) == []  # the refund comes first
    complete(server, take(server, f"{name}-refund"), {"refund": "r-2"})
    complete(server, take(server, f"{name}-pay"), {"charge": "c-2"})
    complete(server, take(server, f"{name}-stock"), {"ok": True})
    d = server.wait_status(e["id"], "completed")
    assert d["compensation"] == {"status": "completed"}
    assert [s["status"] for s in d["steps"]] == ["completed", "completed"]


def test_block_retry_keeps_finished_branches(server):
    """A parallel with a retry of its own: the branch that completed keeps
    its output and its task is not handed out again."""
    name = unique("block-retry")
    server.put_workflow({"name": name, "steps": [
        {"name": "par", "type": "parallel",
         "retry": {"max_attempts": 2, "initial_interval": "10ms"},
         "branches": [
             {"name": "mail", "steps": [{"name": "send", "type": "task", "queue": f"{name}-mail"}]},
             {"name": "flaky", "steps": [{"name": "go", "type": "task", "queue": f"{name}-flaky",
                                          "retry": {"max_attempts": 1}}]},
         ]},
    ]})
    e = server.start_exec(name)
    complete(server, take(server, f"{name}-mail"), {"sent": 1})
    fail(server, take(server, f"{name}-flaky"), "Flaky", retryable=True)
    complete(server, take(server, f"{name}-flaky"), {"went": 1})
    d = server.wait_status(e["id"], "completed")
    assert d["output"] == {"mail": {"sent": 1}, "flaky": {"went": 1}}
    assert server.poll([f"{name}-mail"]) == []
    hist = history(server, e["id"])
    assert started(hist, "par") == 2
    assert started(hist, "par/mail/send") == 1


def test_block_retry_keeps_finished_iterations(tmp_path):
    """The same for foreach: an iteration that completed does not run again."""
    rc, doc, err = run_def(tmp_path, """\
name: each-retry
steps:
  - name: each
    type: foreach
    items: [1, 2, 3]
    concurrency: 1
    retry: {max_attempts: 3, initial_interval: 10ms}
    steps:
      - name: work
        type: exec
        command: [/bin/sh, -c, 'echo $N >> "$LOG"; [ "$N" != 2 ] || [ -e "$LOG.ok" ] || { touch "$LOG.ok"; exit 1; }; echo $N']
        env: {N: "${ .item | tostring }", LOG: "%s"}
        retry: {max_attempts: 1}
        output: "${ .result.stdout | tonumber }"
""" % (tmp_path / "calls.log"))
    assert rc == 0, err
    assert doc["output"] == [1, 2, 3]
    calls = (tmp_path / "calls.log").read_text().split()
    assert sorted(calls) == ["1", "2", "2", "3"], calls
    assert step(doc, "each")["attempts"] == 2


def _par_two(server, name, lease=None):
    """A parallel of two one-task branches, retried once, then a step after
    it; both tasks taken (a: branch a's, b: branch b's)."""
    server.put_workflow({"name": name, "steps": [
        {"name": "par", "type": "parallel",
         "retry": {"max_attempts": 2, "initial_interval": "10ms"},
         "branches": [
             {"name": br, "steps": [{"name": "t", "type": "task", "queue": name,
                                     "retry": {"max_attempts": 1}}]}
             for br in ("a", "b")]},
        {"name": "after", "type": "set", "vars": {"done": 1}},
    ]})
    e = server.start_exec(name)
    tasks = server.poll([name], max=2, wait="5s")
    while len(tasks) < 2:
        tasks += server.poll([name], wait="5s")
    by = {t["step"]: t for t in tasks}
    return e["id"], by["par/a/t"], by["par/b/t"]


def test_block_retry_waits_for_a_sibling_in_flight(server):
    """A branch fails while its sibling's task is out: the block's retry
    waits for it (SPEC 2.4, work that happened is never forgotten); its late
    success is accepted and counts, and only the failed branch runs again
    (SPEC 2.3)."""
    name = unique("block-inflight")
    eid, a, b = _par_two(server, name)
    fail(server, b, "Flaky", retryable=True)
    assert server.poll([name], wait="300ms") == []  # the retry waits for a
    complete(server, a, {"a": 1})  # the late success: 200
    again = take(server, name)
    assert again["step"] == "par/b/t", again
    complete(server, again, {"b": 2})
    d = server.wait_status(eid, "completed")
    assert step(d, "par")["output"] == {"a": {"a": 1}, "b": {"b": 2}}
    hist = history(server, eid)
    assert started(hist, "par/a/t") == 1 and started(hist, "par/b/t") == 2


def test_block_retry_after_a_sibling_that_never_reports(tmp_path):
    """The sibling's task never reports: once its lease runs out the block
    is retried with both branches, and the new attempts complete it (before,
    the new attempt of the sibling was taken for the stopped one, and the
    execution never ended)."""
    from apiutil import WfoServer
    srv = WfoServer(tmp_path / "s", env={"WFO_LEASE": "1s"}).launch()
    try:
        name = unique("block-silent")
        eid, a, b = _par_two(srv, name)
        fail(srv, b, "Flaky", retryable=True)
        tasks = srv.poll([name], max=2, wait="10s")
        while len(tasks) < 2:
            tasks += srv.poll([name], wait="10s")
        assert sorted(t["step"] for t in tasks) == ["par/a/t", "par/b/t"]
        for t in tasks:
            complete(srv, t, {"again": t["step"]})
        d = srv.wait_status(eid, "completed")
        assert step(d, "after")["status"] == "completed"
        r = srv.post(f"/v1/tasks/{a['task_id']}/complete", {"lease": a["lease"], "output": 0})
        assert r.status == 409, r  # the stopped attempt no longer counts
    finally:
        srv.stop()


class _NotFound(http.server.BaseHTTPRequestHandler):
    calls = 0

    def do_GET(self):
        type(self).calls += 1
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


@pytest.fixture
def not_found():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    _NotFound.calls = 0
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()


def test_block_does_not_retry_what_is_never_retried(tmp_path, not_found):
    """An HTTP 404 inside a block with a retry policy: neither the step nor
    the block retries it (SPEC 2.3)."""
    rc, doc, err = run_def(tmp_path, {"name": "no-retry-404", "steps": [
        {"name": "par", "type": "parallel",
         "retry": {"max_attempts": 3, "initial_interval": "10ms"},
         "branches": [{"name": "b", "steps": [
             {"name": "get", "type": "http",
              "request": {"url": f"http://127.0.0.1:{not_found.server_port}/missing"},
              "retry": {"max_attempts": 3, "initial_interval": "10ms"}}]}]},
    ]})
    assert rc == 1, err
    assert doc["error"]["type"] == "HttpError"
    assert step(doc, "par")["attempts"] == 1
    assert step(doc, "par/b/get")["attempts"] == 1
    assert _NotFound.calls == 1


def test_block_does_not_retry_a_worker_non_retryable(server):
    name = unique("block-nonretry")
    server.put_workflow({"name": name, "steps": [
        {"name": "each", "type": "foreach", "items": [1],
         "retry": {"max_attempts": 3, "initial_interval": "10ms"},
         "steps": [{"name": "t", "type": "task", "queue": name}]},
    ]})
    e = server.start_exec(name)
    fail(server, take(server, name), "Rejected", retryable=False)
    d = server.wait_status(e["id"], "failed")
    assert d["error"]["type"] == "Rejected"
    assert [s["attempts"] for s in d["steps"] if s["name"] == "each"] == [1]
    assert server.poll([name]) == []


# ---- work that happened is never forgotten (SPEC 2.4) ---------------------

def branch_workflow(name, **task_fields):
    return {"name": name, "steps": [
        {"name": "par", "type": "parallel", "branches": [
            {"name": "a", "steps": [dict({"name": "t", "type": "task", "queue": f"{name}-a",
                                          "compensate": {"type": "task", "queue": f"{name}-undo"}},
                                         **task_fields)]},
            {"name": "b", "steps": [{"name": "f", "type": "task", "queue": f"{name}-b",
                                     "retry": {"max_attempts": 1}}]},
        ]},
    ]}


def test_late_success_is_accepted_and_compensated(server):
    """A sibling branch fails while a worker runs a task of another branch:
    the task is asked to stop, the execution waits for it, its success is
    accepted (200) and it is compensated with the rest."""
    name = unique("late")
    server.put_workflow(branch_workflow(name))
    e = server.start_exec(name)
    held = take(server, f"{name}-a")
    fail(server, take(server, f"{name}-b"), "Boom")
    d = server.wait_step(e["id"], "par/a/t", "cancelled")
    assert d["status"] == "running"  # waiting for the stopped attempt
    assert server.poll([f"{name}-undo"]) == []  # nothing is undone yet
    r = server.post(f"/v1/tasks/{held['task_id']}/heartbeat", {"lease": held["lease"]})
    assert r.status == 200 and r.json["cancel_requested"] is True, r
    complete(server, held, {"reserved": "r-1"})
    undo = take(server, f"{name}-undo")
    assert undo["step"] == "par/a/t:compensate"
    complete(server, undo, {"released": "r-1"})
    d = server.wait_status(e["id"], "failed")
    assert d["error"]["type"] == "Boom"
    assert d["compensation"] == {"status": "completed"}
    t = [s for s in d["steps"] if s["name"] == "par/a/t"][0]
    assert t["status"] == "compensated" and t["output"] == {"reserved": "r-1"}
    hist = history(server, e["id"])
    late = [h for h in hist if h["type"] == "step.completed" and h["step"] == "par/a/t"]
    assert late and late[0]["data"]["late"] is True


def test_silent_attempt_stays_cancelled(server):
    """An attempt that never reports is given up after its timeout: the step
    stays cancelled and is not compensated."""
    name = unique("silent")
    server.put_workflow(branch_workflow(name, timeout="1s"))
    e = server.start_exec(name)
    take(server, f"{name}-a")  # and never heard of again
    fail(server, take(server, f"{name}-b"), "Boom")
    d = server.wait_status(e["id"], "failed", timeout=20)
    assert d["compensation"] is None
    assert [s["status"] for s in d["steps"] if s["name"] == "par/a/t"] == ["cancelled"]
    assert server.poll([f"{name}-undo"]) == []


def test_compensate_in_flight(server):
    """compensate_in_flight: true compensates a step whose attempt never said
    how it ended."""
    name = unique("in-flight")
    server.put_workflow(branch_workflow(name, timeout="1s", compensate_in_flight=True))
    e = server.start_exec(name)
    take(server, f"{name}-a")
    fail(server, take(server, f"{name}-b"), "Boom")
    undo = take(server, f"{name}-undo", wait="10s")
    complete(server, undo, {"nothing": "to undo"})
    d = server.wait_status(e["id"], "failed")
    assert d["compensation"] == {"status": "completed"}
    assert [s["status"] for s in d["steps"] if s["name"] == "par/a/t"] == ["compensated"]


def test_task_no_worker_took_is_not_waited_for(server):
    """A stopped task that no worker had taken yet is dropped at once."""
    name = unique("untaken")
    server.put_workflow(branch_workflow(name))
    e = server.start_exec(name)
    fail(server, take(server, f"{name}-b"), "Boom")
    d = server.wait_status(e["id"], "failed", timeout=10)
    assert d["compensation"] is None
    assert server.poll([f"{name}-a"]) == []


def test_cancel_with_compensation_waits_for_the_worker(server):
    name = unique("cancel-wait")
    server.put_workflow({"name": name, "steps": [
        {"name": "t", "type": "task", "queue": f"{name}-a",
         "compensate": {"type": "task", "queue": f"{name}-undo"}}]})
    e = server.start_exec(name)
    held = take(server, f"{name}-a")
    r = server.post(f"/v1/executions/{e['id']}/cancel", {"compensate": True})
    assert r.status == 200, r
    complete(server, held, {"done": True})
    complete(server, take(server, f"{name}-undo"), {"undone": True})
    d = server.wait_status(e["id"], "cancelled")
    assert d["compensation"] == {"status": "completed"}
    assert d["steps"][0]["status"] == "compensated"


def test_terminate_refuses_late_completions(server):
    name = unique("terminate")
    server.put_workflow(branch_workflow(name))
    e = server.start_exec(name)
    held = take(server, f"{name}-a")
    assert server.post(f"/v1/executions/{e['id']}/terminate").status == 200
    r = server.post(f"/v1/tasks/{held['task_id']}/complete", {"lease": held["lease"], "output": 1})
    assert r.status == 409, r
    d = server.doc(e["id"])
    assert d["status"] == "terminated" and d["compensation"] is None


def test_exec_attempt_is_let_finish(tmp_path):
    """An exec attempt run by wfo itself is let finish when a sibling fails,
    and what it did is compensated."""
    done = tmp_path / "done"
    rc, doc, err = run_def(tmp_path, {"name": "let-finish", "steps": [
        {"name": "par", "type": "parallel", "branches": [
            {"name": "slow", "steps": [
                {"name": "work", "type": "exec",
                 "command": ["/bin/sh", "-c", f"sleep 1; touch {done}; echo '{{\"did\": 1}}'"],
                 "compensate": {"type": "exec", "command": ["rm", str(done)]}}]},
            {"name": "quick", "steps": [
                {"name": "boom", "type": "fail", "error": {"type": "Boom", "message": "no"}}]},
        ]},
    ]})
    assert rc == 1, err
    assert doc["compensation"] == {"status": "completed"}
    assert step(doc, "par/slow/work")["status"] == "compensated"
    assert not done.exists()  # it ran to its end, then was undone


def test_retry_from_after_a_compensation_keeps_earlier_vars(server):
    """A `from` retry after a compensation: the `set` steps before PATH keep
    what they assigned, even though they were undone since."""
    name = unique("rewind-comp")
    server.put_workflow({"name": name, "steps": [
        {"name": "s0", "type": "set", "vars": {"n": 1},
         "compensate": {"type": "set", "vars": {"undone": True}}},
        {"name": "t", "type": "task", "queue": f"{name}-t", "retry": {"max_attempts": 1}},
        {"name": "out", "type": "succeed", "output": "${ .vars }"},
    ]})
    e = server.start_exec(name)
    fail(server, take(server, f"{name}-t"))
    d = server.wait_status(e["id"], "failed")
    assert d["compensation"] == {"status": "completed"}, d
    r = server.post(f"/v1/executions/{e['id']}/retry", {"from": "t"})
    assert r.status == 200, r
    complete(server, take(server, f"{name}-t"))
    assert server.wait_status(e["id"], "completed")["output"] == {"n": 1}


def test_block_timeout_stops_its_tasks_and_keeps_a_late_success(server):
    """A parallel that runs past its `timeout` fails with Timeout (SPEC 2.2: per attempt):
    its task in flight is asked to stop (cancel_requested), a success that arrives then is
    accepted and recorded, and the step is compensated with the others (SPEC 2.4)."""
    name = unique("block-timeout")
    server.put_workflow({"name": name, "steps": [
        {"name": "par", "type": "parallel", "timeout": "500ms", "branches": [
            {"name": "a", "steps": [
                {"name": "work", "type": "task", "queue": f"{name}-q", "timeout": "30s",
                 "compensate": {"type": "task", "queue": f"{name}-undo"}}]}]},
    ]})
    e = server.start_exec(name)
    t = take(server, f"{name}-q")
    wait_cancel_requested(server, t)  # the block's timeout asks the task to stop
    complete(server, t, {"done": 1})  # the late success counts
    u = take(server, f"{name}-undo")  # and is undone
    complete(server, u, None)
    d = server.wait_status(e["id"], "failed", timeout=10)
    assert d["error"]["type"] == "Timeout" and d["error"]["step"] == "par", d["error"]
    steps = {s["name"]: s for s in d["steps"]}
    assert steps["par/a/work"]["status"] == "compensated", steps
    assert steps["par/a/work"]["output"] == {"done": 1}
    assert d["compensation"]["status"] == "completed"


def test_block_retry_after_timeout_keeps_the_late_success(server):
    """A parallel retried after its timeout, whose only branch then succeeded late, keeps
    that branch (SPEC 2.3: completed ones are not run twice) and completes at once."""
    name = unique("block-timeout-retry")
    server.put_workflow({"name": name, "steps": [
        {"name": "par", "type": "parallel", "timeout": "500ms",
         "retry": {"max_attempts": 2, "initial_interval": "50ms"}, "branches": [
             {"name": "a", "steps": [
                 {"name": "work", "type": "task", "queue": f"{name}-q", "timeout": "30s"}]}]},
    ]})
    e = server.start_exec(name)
    t = take(server, f"{name}-q")
    wait_cancel_requested(server, t)  # the block's timeout asks the task to stop
    complete(server, t, {"done": 1})
    d = server.wait_status(e["id"], ["completed", "failed"], timeout=10)
    assert d["status"] == "completed", d
    steps = {s["name"]: s for s in d["steps"]}
    assert steps["par"]["attempts"] == 2 and steps["par"]["output"] == {"a": {"done": 1}}, steps
    assert started(history(server, e["id"]), "par/a/work") == 1
    assert server.poll([f"{name}-q"]) == []


def test_cancel_while_compensating_says_so(server):
    """A second cancel while the first one's compensations run is a 409 that says so,
    rather than "is running"."""
    name = unique("cancel-twice")
    server.put_workflow({"name": name, "steps": [
        {"name": "a", "type": "task", "queue": f"{name}-a",
         "compensate": {"type": "task", "queue": f"{name}-undo"}},
        {"name": "b", "type": "task", "queue": f"{name}-b"},
    ]})
    e = server.start_exec(name)
    complete(server, take(server, f"{name}-a"), {"a": 1})
    take(server, f"{name}-b")  # b runs, then is asked to stop
    r = server.post(f"/v1/executions/{e['id']}/cancel", {"compensate": True})
    assert r.status == 200, r
    r = server.post(f"/v1/executions/{e['id']}/cancel", {"compensate": True})
    assert r.status == 409, r
    assert "compensations" in r.error["message"] or "ending" in r.error["message"], r.error
    assert "is running" not in r.error["message"], r.error
