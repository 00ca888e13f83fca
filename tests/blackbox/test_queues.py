"""Where is it stuck? (issue 14, SPEC 4, 5, 7): GET /v1/queues, `wfo queues`,
the per-queue and per-step-type metrics, and the message of `wfo start
--wait` when a task waits on a queue that no worker polls.
"""

import json
import os
import re
import signal
import subprocess
import threading
import time

import pytest

import apiutil
from apiutil import server, unique  # noqa: F401 - fixture
from conftest import WFO_BIN, check_no_crash, run_wfo


def queues(srv):
    r = srv.get("/v1/queues")
    assert r.status == 200, r
    assert set(r.json) == {"queues"}
    return {q["name"]: q for q in r.json["queues"]}


def metric(text, name, labels):
    """The value of one series, or None."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    m = re.search(rf"^{re.escape(name)}\{{{re.escape(want)}\}} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def test_queues_ready_leased_pollers(server):  # noqa: F811
    name = unique("stuckq")
    q = name + "-q"
    server.put_workflow(apiutil.task_workflow(name, queue=q))
    a = server.start_exec(name)
    b = server.start_exec(name)
    deadline = time.monotonic() + 10
    while queues(server).get(q, {}).get("ready") != 2:
        assert time.monotonic() < deadline, queues(server)
        time.sleep(0.05)
    time.sleep(0.3)
    entry = queues(server)[q]
    assert set(entry) == {"name", "ready", "leased", "oldest_ready_age_ms", "pollers"}
    assert entry["ready"] == 2 and entry["leased"] == 0
    assert entry["oldest_ready_age_ms"] >= 250
    assert entry["pollers"] == []

    tasks = server.poll([q], worker="worker-a", max=1)
    assert len(tasks) == 1
    entry = queues(server)[q]
    assert entry["ready"] == 1 and entry["leased"] == 1
    assert [p["worker"] for p in entry["pollers"]] == ["worker-a"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", entry["pollers"][0]["last_poll"])

    # a queue that only a worker names is listed (it polls it), with nothing in it
    server.poll([name + "-typo"], worker="worker-b")
    listed = queues(server)
    assert listed[name + "-typo"]["ready"] == 0
    assert [p["worker"] for p in listed[name + "-typo"]["pollers"]] == ["worker-b"]

    # ... but it never becomes a metric label: only queues of definitions do
    text = server.get("/metrics").text
    assert metric(text, "wfo_queue_ready_tasks", {"queue": q}) == 1
    assert metric(text, "wfo_queue_leased_tasks", {"queue": q}) == 1
    assert metric(text, "wfo_queue_pollers", {"queue": q}) == 1
    assert metric(text, "wfo_queue_oldest_ready_age_seconds", {"queue": q}) > 0
    assert name + "-typo" not in text

    for t in tasks + server.poll([q], worker="worker-a", max=1):
        r = server.post(f"/v1/tasks/{t['task_id']}/complete", {"lease": t["lease"], "output": 1})
        assert r.status == 200, r
    for e in (a, b):
        server.wait_status(e["id"], "completed")
    entry = queues(server)[q]
    assert entry["ready"] == 0 and entry["leased"] == 0 and entry["oldest_ready_age_ms"] == 0


def test_queues_in_openapi(server):  # noqa: F811
    doc = server.get("/v1/openapi.json").json
    get = doc["paths"]["/v1/queues"]["get"]
    assert "200" in get["responses"]
    assert set(doc["components"]["schemas"]["Queue"]["required"]) == {
        "name", "ready", "leased", "oldest_ready_age_ms", "pollers"}


def test_lease_expiries_by_queue_and_step_histograms(server):  # noqa: F811
    name = unique("expiry")
    q = name + "-q"
    server.put_workflow({"name": name, "steps": [
        {"name": "s", "type": "set", "vars": {"x": 1}},
        {"name": "work", "type": "task", "queue": q, "heartbeat_timeout": "1s",
         "retry": {"max_attempts": 2, "initial_interval": "100ms"}}]})
    e = server.start_exec(name)
    assert server.poll([q], worker="slow", wait="5s")  # then never heartbeats
    deadline = time.monotonic() + 15
    while True:
        text = server.get("/metrics").text
        if metric(text, "wfo_queue_lease_expiries_total", {"queue": q}) == 1:
            break
        assert time.monotonic() < deadline, text[-3000:]
        time.sleep(0.2)
    t = server.poll([q], worker="fast", wait="10s")
    assert t
    server.post(f"/v1/tasks/{t[0]['task_id']}/complete", {"lease": t[0]["lease"], "output": 2})
    server.wait_status(e["id"], "completed")
    text = server.get("/metrics").text
    assert "# TYPE wfo_step_duration_seconds histogram" in text
    for typ in ("set", "task"):
        n = metric(text, "wfo_step_duration_seconds_count", {"type": typ})
        assert n is not None and n >= 1, typ
        inf = metric(text, "wfo_step_duration_seconds_bucket", {"type": typ, "le": "+Inf"})
        assert inf == n
    # the task step took more than a second (its first lease ran out)
    assert metric(text, "wfo_step_duration_seconds_bucket", {"type": "task", "le": "0.5"}) < \
        metric(text, "wfo_step_duration_seconds_count", {"type": "task"})
    # every step type has its series, and no other label value appears
    types = set(re.findall(r'^wfo_step_duration_seconds_count\{type="([^"]+)"\}', text, re.M))
    assert {"task", "http", "exec", "set", "switch", "parallel", "foreach", "sleep",
            "succeed", "fail"} <= types


def test_wfo_queues_command(server):  # noqa: F811
    name = unique("cliq")
    server.put_workflow(apiutil.task_workflow(name, queue=name + "-q"))
    server.start_exec(name)
    deadline = time.monotonic() + 10
    while queues(server).get(name + "-q", {}).get("ready") != 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    rc, out, err = run_wfo(["queues", "--server", f"http://127.0.0.1:{server.port}"])
    assert rc == 0, err
    doc = json.loads(out)
    mine = [q for q in doc["queues"] if q["name"] == name + "-q"]
    assert len(mine) == 1 and mine[0]["ready"] == 1 and mine[0]["pollers"] == []


class StartWait:
    """`wfo start ARGS --wait` against server, its stderr read as it comes."""

    def __init__(self, server, args):
        env = dict(os.environ, WFO_SERVER=f"http://127.0.0.1:{server.port}")
        env.pop("WFO_TOKEN", None)
        self.p = subprocess.Popen([str(WFO_BIN), "start"] + args + ["--wait"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        self.lines = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.p.stderr),
                                       daemon=True)
        self.reader.start()
        self.t0 = time.monotonic()

    def said_after(self, text):
        """Seconds from the start until a line of stderr holds text."""
        while not any(text.encode() in ln for ln in self.lines):
            assert time.monotonic() - self.t0 < 30, self.lines
            assert self.p.poll() is None
            time.sleep(0.05)
        return time.monotonic() - self.t0

    def end(self):
        """Waits for its end: (stdout, stderr), after checking it exited 0."""
        out, _ = self.p.communicate(timeout=60)
        self.reader.join(5)
        err = b"".join(self.lines).decode()
        check_no_crash(self.p.returncode, err)
        assert self.p.returncode == 0, err
        return out, err


@pytest.mark.slow
def test_start_wait_says_no_worker_polls(server):  # noqa: F811
    """`wfo start --wait` says once, after about 10 s, which queue has a task nobody polls;
    it then keeps waiting, and ends with the execution."""
    name = unique("nobody")
    q = name + "-queue"
    server.put_workflow({"name": name, "steps": [
        {"name": "a", "type": "set", "vars": {"x": 1}},
        {"name": "b", "type": "task", "queue": q}]})
    sw = StartWait(server, [name])
    said_after = sw.said_after(q)
    assert 9 <= said_after < 30, said_after
    time.sleep(8)  # nothing more is said while it keeps waiting
    tasks = server.poll([q], worker="late")
    assert len(tasks) == 1
    server.post(f"/v1/tasks/{tasks[0]['task_id']}/complete",
                {"lease": tasks[0]["lease"], "output": {"done": True}})
    out, err = sw.end()
    assert json.loads(out)["status"] == "completed"
    said = [ln for ln in err.splitlines() if q in ln]
    assert len(said) == 1, err
    assert "no worker polls" in said[0]


@pytest.mark.slow
def test_start_wait_counts_its_own_task(server):  # noqa: F811
    """The 10 s are those of this execution's task: not counted from the start (a sleep
    before the task), nor from another execution's older task in the same queue."""
    name = unique("late-task")
    q = name + "-queue"
    server.put_workflow({"name": name, "steps": [
        {"name": "nap", "type": "sleep", "duration": "${ .input.nap }"},
        {"name": "b", "type": "task", "queue": q}]})
    older = server.start_exec(name, {"nap": "1ms"})  # its task waits from now on
    time.sleep(5)
    sw = StartWait(server, [name, "--input", '{"nap": "3s"}'])
    said_after = sw.said_after(q)
    # its task is queued after the 3 s sleep: 13 s, not 10 (nor 5, when the older task
    # has waited 10 s)
    assert 12.5 <= said_after < 16, said_after
    for _ in range(2):
        tasks = server.poll([q], worker="late", max=2)
        for t in tasks:
            server.post(f"/v1/tasks/{t['task_id']}/complete",
                        {"lease": t["lease"], "output": {"done": True}})
    _, err = sw.end()
    said = [ln for ln in err.splitlines() if q in ln]
    assert len(said) == 1 and "a task has waited 10 s" in said[0], err
    assert server.wait_status(older["id"], "completed")


def test_queue_age_survives_a_restart(tmp_path):
    """oldest_ready_age_ms counts from when the task became ready, not from the server's
    restart (the task's row keeps when; killed with SIGKILL to leave no goodbye)."""
    s = apiutil.WfoServer(tmp_path)
    s.launch()
    try:
        s.put_workflow(apiutil.task_workflow("aged", queue="aged-q"))
        s.start_exec("aged")
        time.sleep(3)
        s.proc.send_signal(signal.SIGKILL)
        s.proc.wait(10)
        s.launch()
        q = [x for x in s.get("/v1/queues").json["queues"] if x["name"] == "aged-q"]
        assert len(q) == 1 and q[0]["ready"] == 1, q
        assert q[0]["oldest_ready_age_ms"] >= 3000, q
    finally:
        s.stop()
