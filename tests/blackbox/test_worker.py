"""`wfo worker --queue Q... [--concurrency N] -- COMMAND [ARG]...` (SPEC 5):
polls the server for tasks, runs COMMAND (argv, no shell) per task with
the worker command protocol, reports the result, heartbeats, survives
server restarts, stops cleanly on SIGTERM.

Against the real `wfo server` (skipped while there is none) and against
the fake server of test_cli_client.py for what the worker sends.
"""

import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import WFO_BIN, check_no_crash, pid_gone, write_script
from test_cli_client import (DEAD_URL, FINAL, FakeServer, WfoServer, put_workflow,
                             server_available, wait_status, wfo, wfo_json)


class Worker:
    """A running `wfo worker`; stderr goes to a file (read with .log())."""

    def __init__(self, tmp_path, url, queues, command, concurrency=None, extra=(), token=None):
        argv = [str(WFO_BIN), "worker"]
        for q in queues:
            argv += ["--queue", q]
        if concurrency is not None:
            argv += ["--concurrency", str(concurrency)]
        argv += list(extra) + ["--"] + [str(c) for c in command]
        env = dict(os.environ, WFO_SERVER=url)
        env.pop("WFO_TOKEN", None)
        if token is not None:
            env["WFO_TOKEN"] = token
        n = len(list(Path(tmp_path).glob("worker*.log")))
        self.log_path = Path(tmp_path) / f"worker{n}.log"
        self.log_file = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.log_file,
                                     stdin=subprocess.DEVNULL, env=env)

    def log(self):
        self.log_file.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=60):
        """SIGTERM, then the exit status (asserting no crash)."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout=60):
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"worker did not exit within {timeout}s:\n{self.log()[-4000:]}")
        self.proc.stdout.close()
        check_no_crash(self.proc.returncode, self.log())
        return self.proc.returncode

    def kill(self):
        if self.alive():
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


@pytest.fixture
def workers():
    """Workers started by a test; killed at the end if still running."""
    started = []
    yield started
    for w in started:
        if w.alive():
            w.kill()


@pytest.fixture
def server(tmp_path):
    if not server_available():
        pytest.skip("this wfo has no `server` command yet")
    s = WfoServer(tmp_path).start()
    yield s
    s.stop()


def start_worker(workers, *a, **kw):
    w = Worker(*a, **kw)
    workers.append(w)
    return w


def task_def(name, queue="q", retry="{max_attempts: 1}", extra=""):
    return f"""\
name: {name}
steps:
  - {{name: work, type: task, queue: {queue}, retry: {retry}{extra}}}
"""


PY = "/usr/bin/python3"


def py(tmp_path, name, body):
    """A Python script file; returns its path (run as `python3 PATH`)."""
    p = Path(tmp_path) / name
    p.write_text("import json, os, sys, time\n" + body)
    return p


# ------------------------------------------------------ with wfo server ---

def test_runs_tasks_to_completion(server, tmp_path, workers):
    """A two-task workflow runs to completion through one worker; each task gets its input on stdin."""
    put_workflow(tmp_path, server.url, """\
name: add-then-double
steps:
  - {name: add, type: task, queue: math, input: {op: add, a: "${ .input.a }", b: "${ .input.b }"}}
  - {name: double, type: task, queue: math, input: {op: double, x: "${ .steps.add.output.r }"}}
""")
    script = py(tmp_path, "math.py", """\
t = json.load(sys.stdin)
r = t["a"] + t["b"] if t["op"] == "add" else t["x"] * 2
print(json.dumps({"r": r}))
""")
    w = start_worker(workers, tmp_path, server.url, ["math"], [PY, script])
    doc = wfo_json(["start", "add-then-double", "--input", '{"a": 2, "b": 5}', "--wait"],
                   server.url)
    assert doc["status"] == "completed", doc
    assert doc["output"] == {"r": 14}
    assert [s["status"] for s in doc["steps"]] == ["completed", "completed"]
    assert w.stop() == 0


def test_output_over_the_payload_limit_fails_the_step(server, tmp_path, workers):
    """An output over limits.payload_bytes (256 KiB by default: 400
    PayloadTooLarge, not 413) fails the step with BadOutput, at once and
    not retried; before, the worker dropped the refused result and the task
    came back at every lease expiry, for ever."""
    put_workflow(tmp_path, server.url, """\
name: too-big
steps:
  - {name: big, type: task, queue: big, retry: {max_attempts: 3, initial_interval: 10ms}}
""")
    script = py(tmp_path, "big.py", """\
print(json.dumps({"x": "a" * 300000}))
""")
    w = start_worker(workers, tmp_path, server.url, ["big"], [PY, script])
    rc, out, err = wfo(["start", "too-big", "--wait"], server.url)
    assert rc == 1, (rc, err)  # the execution failed
    doc = json.loads(out)
    assert doc["status"] == "failed", doc
    assert doc["error"]["type"] == "BadOutput", doc
    assert doc["steps"][0]["attempts"] == 1, doc
    assert w.stop() == 0


def test_argv_without_shell(server, tmp_path, workers):
    """COMMAND and its ARGs are passed as they are, not through a shell."""
    put_workflow(tmp_path, server.url, task_def("argv"))
    start_worker(workers, tmp_path, server.url, ["q"],
                 [PY, "-c", "import sys, json; print(json.dumps(sys.argv[1:]))",
                  "a b", "$HOME", "*", "; exit 3"])
    doc = wfo_json(["start", "argv", "--wait"], server.url)
    assert doc["output"] == ["a b", "$HOME", "*", "; exit 3"]


def test_environment_and_stdin(server, tmp_path, workers):
    """The command sees WFO_TASK_ID, WFO_EXECUTION_ID, WFO_STEP, WFO_ATTEMPT, WFO_IDEMPOTENCY_KEY and the input on stdin."""
    put_workflow(tmp_path, server.url, """\
name: envelope
steps:
  - {name: first, type: set, vars: {a: 1}}
  - {name: reserve, type: task, queue: env, input: {sku: "${ .input.sku }", qty: 3}}
""")
    script = py(tmp_path, "env.py", """\
keys = ["WFO_TASK_ID", "WFO_EXECUTION_ID", "WFO_STEP", "WFO_ATTEMPT", "WFO_IDEMPOTENCY_KEY"]
print(json.dumps({"env": {k: os.environ.get(k) for k in keys}, "stdin": json.load(sys.stdin)}))
""")
    start_worker(workers, tmp_path, server.url, ["env"], [PY, script])
    doc = wfo_json(["start", "envelope", "--input", '{"sku": "X-1"}', "--wait"], server.url)
    assert doc["status"] == "completed", doc
    out = doc["output"]
    assert out["stdin"] == {"sku": "X-1", "qty": 3}
    env = out["env"]
    assert env["WFO_EXECUTION_ID"] == doc["id"]
    assert env["WFO_STEP"] == "reserve"
    assert env["WFO_ATTEMPT"] == "1"
    assert env["WFO_IDEMPOTENCY_KEY"] == f"{doc['id']}/reserve"
    assert env["WFO_TASK_ID"]


def test_failure_is_command_failed(server, tmp_path, workers):
    """Non-zero exit: CommandFailed with the last line of stderr as message."""
    put_workflow(tmp_path, server.url, task_def("fails"))
    script = write_script(tmp_path, "fail.sh",
                          'echo "an early line" >&2\necho "disk is on fire" >&2\necho\nexit 3\n')
    start_worker(workers, tmp_path, server.url, ["q"], ["/bin/sh", script])
    rc, out, err = wfo(["start", "fails", "--wait"], server.url)
    doc = json.loads(out)
    assert rc == 1
    assert doc["status"] == "failed"
    assert doc["error"]["type"] == "CommandFailed"
    assert doc["error"]["message"] == "disk is on fire"
    assert doc["error"]["step"] == "work"


def test_worker_error_not_retryable(server, tmp_path, workers):
    """{"error": {type, message, retryable: false}} on stdout: that error, and no retry."""
    put_workflow(tmp_path, server.url,
                 task_def("no-stock", retry="{max_attempts: 5, initial_interval: 100ms}"))
    script = write_script(tmp_path, "oos.sh", """\
echo "$WFO_ATTEMPT" >> "$(dirname "$0")/attempts"
echo '{"error": {"type": "OutOfStock", "message": "none left", "retryable": false}}'
exit 1
""")
    start_worker(workers, tmp_path, server.url, ["q"], ["/bin/sh", script])
    rc, out, err = wfo(["start", "no-stock", "--wait"], server.url)
    doc = json.loads(out)
    assert doc["status"] == "failed"
    assert doc["error"]["type"] == "OutOfStock"
    assert doc["error"]["message"] == "none left"
    assert doc["steps"][0]["attempts"] == 1
    assert (tmp_path / "attempts").read_text().split() == ["1"]


def test_retryable_failure_is_retried(server, tmp_path, workers):
    """A failure without retryable: false is retried; WFO_ATTEMPT counts."""
    put_workflow(tmp_path, server.url,
                 task_def("flaky", retry="{max_attempts: 3, initial_interval: 100ms}"))
    script = write_script(tmp_path, "flaky.sh", """\
if [ "$WFO_ATTEMPT" = 1 ]; then echo "first try fails" >&2; exit 1; fi
echo "{\\"attempt\\": $WFO_ATTEMPT}"
""")
    start_worker(workers, tmp_path, server.url, ["q"], ["/bin/sh", script])
    doc = wfo_json(["start", "flaky", "--wait"], server.url)
    assert doc["status"] == "completed", doc
    assert doc["output"] == {"attempt": 2}
    assert doc["steps"][0]["attempts"] == 2


def test_empty_stdout_is_null(server, tmp_path, workers):
    put_workflow(tmp_path, server.url, task_def("quiet"))
    start_worker(workers, tmp_path, server.url, ["q"], ["/bin/true"])
    doc = wfo_json(["start", "quiet", "--wait"], server.url)
    assert doc["status"] == "completed" and doc["output"] is None


def test_several_queues(server, tmp_path, workers):
    put_workflow(tmp_path, server.url, """\
name: two-queues
steps:
  - {name: a, type: task, queue: alpha, input: "a"}
  - {name: b, type: task, queue: beta, input: "${ .steps.a.output + \\"b\\" }"}
""")
    start_worker(workers, tmp_path, server.url, ["alpha", "beta"], ["/bin/cat"])
    doc = wfo_json(["start", "two-queues", "--wait"], server.url)
    assert doc["status"] == "completed", doc
    assert doc["output"] == "ab"


def test_only_its_queues(server, tmp_path, workers):
    """A worker of queue `mine` does not take tasks of queue `other`."""
    put_workflow(tmp_path, server.url, task_def("other-queue", queue="other"))
    marker = tmp_path / "ran"
    start_worker(workers, tmp_path, server.url, ["mine"], ["/usr/bin/touch", marker])
    doc = wfo_json(["start", "other-queue"], server.url)
    time.sleep(2)
    assert not marker.exists()
    assert wfo_json(["get", doc["id"]], server.url)["status"] == "running"


def overlap_script(tmp_path):
    """Records [start, end] of each run in DIR/spans/EXEC_ID, waits for a
    second run to be there at the same time (up to 8 s), prints how many it saw."""
    (tmp_path / "spans").mkdir()
    return py(tmp_path, "overlap.py", f"""\
d = {str(tmp_path / "spans")!r}
me = os.path.join(d, os.environ["WFO_EXECUTION_ID"])
t0 = time.time()
open(me + ".running", "w").close()
deadline = time.time() + 8
while time.time() < deadline and len([f for f in os.listdir(d) if f.endswith(".running")]) < 2:
    time.sleep(0.05)
seen = len([f for f in os.listdir(d) if f.endswith(".running")])
time.sleep(0.3)
os.rename(me + ".running", me + ".done")
with open(me + ".span", "w") as f:
    json.dump([t0, time.time()], f)
print(json.dumps({{"seen": seen}}))
""")


def max_overlap(spans_dir):
    spans = [json.loads(p.read_text()) for p in Path(spans_dir).glob("*.span")]
    points = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    cur = best = 0
    for _, d in points:
        cur += d
        best = max(best, cur)
    return best


def test_concurrency_two(server, tmp_path, workers):
    """--concurrency 2 runs two tasks at once, and never three."""
    put_workflow(tmp_path, server.url, task_def("overlap"))
    script = overlap_script(tmp_path)
    start_worker(workers, tmp_path, server.url, ["q"], [PY, script], concurrency=2)
    ids = [wfo_json(["start", "overlap"], server.url)["id"] for _ in range(3)]
    docs = [wait_status(server.url, i, FINAL, timeout=60) for i in ids]
    assert all(d["status"] == "completed" for d in docs), docs
    assert sorted(d["output"]["seen"] for d in docs)[-2:] == [2, 2]
    assert max_overlap(tmp_path / "spans") == 2


def test_concurrency_one_by_default(server, tmp_path, workers):
    """Without --concurrency, one task at a time."""
    put_workflow(tmp_path, server.url, task_def("serial"))
    script = py(tmp_path, "serial.py", f"""\
d = {str(tmp_path)!r}
t0 = time.time()
time.sleep(0.5)
with open(os.path.join(d, os.environ["WFO_EXECUTION_ID"] + ".span"), "w") as f:
    json.dump([t0, time.time()], f)
""")
    start_worker(workers, tmp_path, server.url, ["q"], [PY, script])
    ids = [wfo_json(["start", "serial"], server.url)["id"] for _ in range(3)]
    for i in ids:
        assert wait_status(server.url, i, FINAL, timeout=60)["status"] == "completed"
    assert max_overlap(tmp_path) == 1


def test_sigterm_lets_running_task_finish(server, tmp_path, workers):
    """SIGTERM: no new task is taken, the running one finishes and is reported, exit 0."""
    put_workflow(tmp_path, server.url, task_def("slow"))
    script = write_script(tmp_path, "slow.sh", """\
touch "$(dirname "$0")/started-$WFO_EXECUTION_ID"
sleep 3
echo '{"finished": true}'
""")
    w = start_worker(workers, tmp_path, server.url, ["q"], ["/bin/sh", script], concurrency=2)
    first = wfo_json(["start", "slow"], server.url)["id"]
    deadline = time.monotonic() + 30
    while not (tmp_path / f"started-{first}").exists():
        assert time.monotonic() < deadline, w.log()
        time.sleep(0.05)
    w.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert w.alive(), "the worker exited while its task was still running"
    second = wfo_json(["start", "slow"], server.url)["id"]
    assert w.wait(30) == 0
    doc = wfo_json(["get", first], server.url)
    assert doc["status"] == "completed", doc
    assert doc["output"] == {"finished": True}
    time.sleep(0.5)
    assert not (tmp_path / f"started-{second}").exists(), "a task was taken after SIGTERM"
    assert wfo_json(["get", second], server.url)["status"] == "running"


def test_sigterm_when_idle(server, tmp_path, workers):
    """An idle worker (in a long poll) exits 0 at once on SIGTERM or SIGINT."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        w = start_worker(workers, tmp_path, server.url, ["q"], ["/bin/cat"])
        time.sleep(1)
        assert w.alive()
        t0 = time.monotonic()
        w.proc.send_signal(sig)
        assert w.wait(10) == 0
        assert time.monotonic() - t0 < 5


@pytest.mark.slow
def test_survives_server_restart(server, tmp_path, workers):
    """kill -9 of the server and a restart: the worker waits for it and goes on."""
    put_workflow(tmp_path, server.url, task_def("after-restart"))
    w = start_worker(workers, tmp_path, server.url, ["q"], ["/bin/cat"])
    assert wfo_json(["start", "after-restart", "--input", "1", "--wait"], server.url)["output"] == 1
    server.kill()
    time.sleep(1.5)  # the worker now gets connection refused
    assert w.alive()
    server.start()
    doc = wfo_json(["start", "after-restart", "--input", "2", "--wait"], server.url, timeout=90)
    assert doc["status"] == "completed" and doc["output"] == 2
    assert w.stop() == 0


@pytest.mark.slow
def test_task_in_flight_across_restart(server, tmp_path, workers):
    """The server dies while a task runs: the result is reported once it is back (or the task
    is run again); the execution completes either way."""
    put_workflow(tmp_path, server.url, task_def("in-flight", retry="{max_attempts: 3}"))
    script = write_script(tmp_path, "slow.sh", """\
touch "$(dirname "$0")/started"
sleep 2
echo '"done"'
""")
    w = start_worker(workers, tmp_path, server.url, ["q"], ["/bin/sh", script])
    exec_id = wfo_json(["start", "in-flight"], server.url)["id"]
    deadline = time.monotonic() + 30
    while not (tmp_path / "started").exists():
        assert time.monotonic() < deadline, w.log()
        time.sleep(0.05)
    server.kill()
    time.sleep(3)  # the task ends while the server is down
    server.start()
    doc = wait_status(server.url, exec_id, FINAL, timeout=90)
    assert doc["status"] == "completed", (doc, w.log()[-3000:])
    assert doc["output"] == "done"
    assert w.alive()
    assert w.stop() == 0


def test_cancel_stops_the_command(server, tmp_path, workers):
    """Cancelling the execution: the next heartbeat says cancel_requested and the command is killed."""
    put_workflow(tmp_path, server.url, task_def("cancel-me"))
    pidfile = tmp_path / "pid"
    script = write_script(tmp_path, "long.sh", f'echo $$ > "{pidfile}"\nexec sleep 60\n')
    w = start_worker(workers, tmp_path, server.url, ["q"], ["/bin/sh", script],
                     extra=["--heartbeat", "200ms"])
    exec_id = wfo_json(["start", "cancel-me"], server.url)["id"]
    deadline = time.monotonic() + 30
    while not (pidfile.exists() and pidfile.read_text().strip()):
        assert time.monotonic() < deadline, w.log()
        time.sleep(0.05)
    pid = int(pidfile.read_text())
    wfo_json(["cancel", exec_id], server.url)
    assert wait_status(server.url, exec_id, FINAL)["status"] == "cancelled"
    assert pid_gone(pid, wait=10), "the command still runs after its execution was cancelled"
    assert w.alive()
    assert w.stop() == 0


def test_step_timeout_kills_the_command(server, tmp_path, workers):
    """The task's deadline (the step's timeout) is the command's timeout."""
    put_workflow(tmp_path, server.url, task_def("too-slow", extra=", timeout: 1s"))
    pidfile = tmp_path / "pid"
    script = write_script(tmp_path, "long.sh", f'echo $$ > "{pidfile}"\nexec sleep 60\n')
    start_worker(workers, tmp_path, server.url, ["q"], ["/bin/sh", script])
    rc, out, err = wfo(["start", "too-slow", "--wait"], server.url)
    doc = json.loads(out)
    assert doc["status"] == "failed"
    assert doc["error"]["type"] == "Timeout"
    assert pid_gone(int(pidfile.read_text()), wait=10)


def test_heartbeats_keep_a_long_task_alive(server, tmp_path, workers):
    """A task that runs longer than its step's heartbeat_timeout completes: the worker
    heartbeats often enough (a third of the heartbeat_timeout the task carries)."""
    put_workflow(tmp_path, server.url, task_def("beating", extra=", heartbeat_timeout: 1500ms"))
    script = write_script(tmp_path, "long.sh", "sleep 4\necho '\"ok\"'\n")
    start_worker(workers, tmp_path, server.url, ["q"], ["/bin/sh", script])
    doc = wfo_json(["start", "beating", "--wait"], server.url)
    assert doc["status"] == "completed", doc
    assert doc["output"] == "ok"
    assert doc["steps"][0]["attempts"] == 1


# ------------------------------------------------------ usage and startup ---

@pytest.mark.parametrize("argv", [
    ["worker"],
    ["worker", "--", "/bin/cat"],
    ["worker", "--queue", "q"],
    ["worker", "--queue", "q", "--"],
    ["worker", "--queue"],
    ["worker", "--queue", "", "--", "/bin/cat"],
    ["worker", "--queue", "q", "--concurrency", "0", "--", "/bin/cat"],
    ["worker", "--queue", "q", "--concurrency", "two", "--", "/bin/cat"],
    ["worker", "--queue", "q", "--concurrency", "100000", "--", "/bin/cat"],
    ["worker", "--queue", "q", "--bogus", "--", "/bin/cat"],
    ["worker", "--queue", "q", "--heartbeat", "soon", "--", "/bin/cat"],
    ["worker", "--queue", "q", "--", "/no/such/command"],
    ["worker", "--queue", "q", "--", "no-such-command-in-path-xyz"],
])
def test_usage_errors(argv):
    rc, out, err = wfo(argv, DEAD_URL, timeout=20)
    assert rc == 2, (rc, err)
    assert err.startswith("wfo: ")


def test_waits_for_an_absent_server(tmp_path, workers):
    """No server: the worker keeps trying (no exit), and stops on SIGTERM with 0."""
    w = start_worker(workers, tmp_path, DEAD_URL, ["q"], ["/bin/cat"])
    time.sleep(2)
    assert w.alive(), w.log()
    assert w.stop() == 0
    assert "connect" in w.log().lower()


# ----------------------------------------------------- against a fake ---

@pytest.fixture
def fake():
    f = FakeServer()
    yield f
    f.close()


class Tasks:
    """The fake's task queue: poll hands out what was put, else waits a little."""

    def __init__(self, fake, status=200):
        self.items = []
        self.lock = threading.Lock()
        fake.answer("POST", "/v1/tasks/poll", self.poll)

    def put(self, **task):
        t = {"task_id": "t-1", "lease": "L-1", "queue": "q", "execution_id": "e-1",
             "step": "work", "attempt": 1, "input": {"n": 1}, "idempotency_key": "e-1/work",
             "deadline": None}
        t.update(task)
        with self.lock:
            self.items.append(t)

    def poll(self, req):
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            with self.lock:
                if self.items:
                    n = req["json"]["max"]
                    out, self.items = self.items[:n], self.items[n:]
                    return 200, {"tasks": out}
            time.sleep(0.02)
        return 200, {"tasks": []}


class Reports:
    """The fake's POST /v1/tasks/complete: each result gets what answer(task_id) set
    (default 200), or the whole request gets what whole() returns when it is set;
    every result sent is kept (of())."""

    def __init__(self, fake, whole=None):
        self.fake = fake
        self.answers = {}
        self.whole = whole
        fake.answer("POST", "/v1/tasks/complete", self.serve)

    def answer(self, task_id, reply):
        self.answers[task_id] = reply

    def serve(self, req):
        if self.whole:
            out = self.whole(req)
            if out:
                return out
        results = []
        for r in req["json"]["results"]:
            status, body = self.answers.get(r["task_id"], (200, {}))
            if status == 200:
                results.append({"task_id": r["task_id"],
                                "status": "failed" if "error" in r else "completed"})
            else:
                results.append({"task_id": r["task_id"], "status_code": status,
                                "error": body["error"]})
        return 200, {"results": results}

    def requests(self):
        return self.fake.reqs("POST", "/v1/tasks/complete")

    def of(self, task_id):
        """Every result sent for task_id, in order."""
        return [r for q in self.requests() for r in q["json"]["results"]
                if r["task_id"] == task_id]


def wait_for(pred, timeout=20, what="condition"):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_poll_request(fake, tmp_path, workers):
    """The poll: {queues, worker: HOST:PID, max: free slots, wait: "20s"} with the bearer token."""
    Tasks(fake)
    w = start_worker(workers, tmp_path, fake.url, ["alpha", "beta"], ["/bin/cat"],
                     concurrency=3, token="tok-1")
    wait_for(lambda: fake.reqs("POST", "/v1/tasks/poll"), what="a poll")
    req = fake.reqs("POST", "/v1/tasks/poll")[0]
    body = req["json"]
    assert body["queues"] == ["alpha", "beta"]
    assert body["worker"] == f"{socket.gethostname()}:{w.proc.pid}"
    assert body["max"] == 3
    assert body["wait"] == "20s"
    assert req["headers"]["authorization"] == "Bearer tok-1"
    assert w.stop() == 0


def test_complete_request(fake, tmp_path, workers):
    """Exit 0: POST /v1/tasks/complete {results: [{task_id, lease, output}]}; the output is
    stdout's JSON."""
    tasks = Tasks(fake)
    reports = Reports(fake)
    tasks.put(input={"hello": ["w", 1]})
    w = start_worker(workers, tmp_path, fake.url, ["q"], ["/bin/cat"])
    wait_for(lambda: reports.of("t-1"), what="complete")
    assert reports.requests()[0]["json"] == {"results": [
        {"task_id": "t-1", "lease": "L-1", "output": {"hello": ["w", 1]}}]}
    assert w.stop() == 0


def test_fail_request(fake, tmp_path, workers):
    """Non-zero exit: {task_id, lease, error: {type: CommandFailed, message}, retryable: true}."""
    tasks = Tasks(fake)
    reports = Reports(fake)
    tasks.put(task_id="t-2", lease="L-2")
    script = write_script(tmp_path, "f.sh", 'echo "bad things" >&2\nexit 4\n')
    w = start_worker(workers, tmp_path, fake.url, ["q"], ["/bin/sh", script])
    wait_for(lambda: reports.of("t-2"), what="fail")
    body = reports.of("t-2")[0]
    assert body["lease"] == "L-2"
    assert body["retryable"] is True
    assert body["error"]["type"] == "CommandFailed"
    assert body["error"]["message"] == "bad things"
    assert w.stop() == 0


def test_results_batched(fake, tmp_path, workers):
    """Results that finish while a report is under way go together in the next request;
    each task is reported once."""
    tasks = Tasks(fake)
    first = [True]

    def slow_first(req):
        if first[0]:
            first[0] = False
            time.sleep(1)
        return None

    reports = Reports(fake, whole=slow_first)
    for i in range(1, 5):
        tasks.put(task_id=f"t-{i}", lease=f"L-{i}")
    w = start_worker(workers, tmp_path, fake.url, ["q"], ["/bin/cat"], concurrency=4)
    wait_for(lambda: all(reports.of(f"t-{i}") for i in range(1, 5)), what="4 reports")
    assert all(len(reports.of(f"t-{i}")) == 1 for i in range(1, 5))
    assert len(reports.requests()) < 4, [q["json"] for q in reports.requests()]
    assert w.stop() == 0


def test_batch_refused_sends_each_alone(fake, tmp_path, workers):
    """A batch refused as a whole (400: one result spoils it) is sent again one result per
    request, and each result's own answer counts."""
    tasks = Tasks(fake)
    first = [True]

    def whole(req):
        # the first report is held a second, so the others gather into a batch
        if first[0]:
            first[0] = False
            time.sleep(1)
        if len(req["json"]["results"]) > 1:
            return 400, {"error": {"type": "InvalidRequest", "message": "results[1].output: bad"}}
        return None

    reports = Reports(fake, whole=whole)
    for i in range(1, 4):
        tasks.put(task_id=f"t-{i}", lease=f"L-{i}")
    w = start_worker(workers, tmp_path, fake.url, ["q"], ["/bin/cat"], concurrency=3)
    wait_for(lambda: all(any(len(q["json"]["results"]) == 1 and
                             q["json"]["results"][0]["task_id"] == f"t-{i}"
                             for q in reports.requests()) for i in range(1, 4)),
             what="each alone")
    assert any(len(q["json"]["results"]) > 1 for q in reports.requests()), "no batch was sent"
    assert w.stop() == 0


def test_without_batch_endpoint(fake, tmp_path, workers):
    """A server without POST /v1/tasks/complete (404): POST /v1/tasks/ID/complete
    {lease, output} (or /fail), one request per result, from then on."""
    tasks = Tasks(fake)
    fake.answer("POST", "/v1/tasks/t-1/complete", (200, {}))
    fake.answer("POST", "/v1/tasks/t-2/complete", (200, {}))
    tasks.put(input={"hello": ["w", 1]})
    w = start_worker(workers, tmp_path, fake.url, ["q"], ["/bin/cat"])
    wait_for(lambda: fake.reqs("POST", "/v1/tasks/t-1/complete"), what="complete")
    assert fake.reqs("POST", "/v1/tasks/t-1/complete")[0]["json"] == {
        "lease": "L-1", "output": {"hello": ["w", 1]}}
    tasks.put(task_id="t-2", lease="L-2")
    wait_for(lambda: fake.reqs("POST", "/v1/tasks/t-2/complete"), what="second report")
    assert len(fake.reqs("POST", "/v1/tasks/complete")) == 1, "the batch endpoint was tried again"
    assert w.stop() == 0


def test_output_too_large_fails_the_step(fake, tmp_path, workers):
    """A completion answered 413 (over the server's body limit) is reported again as a
    BadOutput failure, not retryable."""
    tasks = Tasks(fake)
    reports = Reports(fake, whole=lambda req: (413, {"error": {
        "type": "PayloadTooLarge", "message": "body over 1024 bytes"}})
        if "output" in req["json"]["results"][0] else None)
    tasks.put()
    w = start_worker(workers, tmp_path, fake.url, ["q"], ["/bin/cat"])
    wait_for(lambda: len(reports.of("t-1")) == 2, what="the failure")
    body = reports.of("t-1")[1]
    assert body["error"]["type"] == "BadOutput" and body["retryable"] is False
    assert "output" not in body
    assert w.stop() == 0


def test_stale_completion_ignored(fake, tmp_path, workers):
    """A 409 on complete is logged and dropped; the worker carries on with the next task."""
    tasks = Tasks(fake)
    reports = Reports(fake)
    reports.answer("t-1", (409, {"error": {
        "type": "Conflict", "message": "lease 'L-1' is not current"}}))
    tasks.put()
    w = start_worker(workers, tmp_path, fake.url, ["q"], ["/bin/cat"])
    wait_for(lambda: reports.of("t-1"), what="complete")
    tasks.put(task_id="t-3", lease="L-3")
    wait_for(lambda: reports.of("t-3"), what="second task")
    assert len(reports.of("t-1")) == 1, "a 409 was retried"
    assert "refused as stale" in w.log()
    assert w.alive()
    assert w.stop() == 0


def test_report_retried_until_server_answers(fake, tmp_path, workers):
    """5xx on complete: retried with backoff until it is accepted."""
    tasks = Tasks(fake)
    answers = [(503, {"error": {"type": "Unavailable", "message": "restarting"}})] * 3 + [None]
    reports = Reports(fake, whole=lambda req: answers.pop(0) if len(answers) > 1 else answers[0])
    tasks.put()
    w = start_worker(workers, tmp_path, fake.url, ["q"], ["/bin/cat"])
    wait_for(lambda: len(reports.requests()) == 4, what="4 attempts")
    time.sleep(1)
    assert len(reports.requests()) == 4
    assert w.stop() == 0


def test_poll_errors_retried(fake, tmp_path, workers):
    """5xx on poll: the worker keeps polling, and runs the task once it comes."""
    tasks = Tasks(fake)
    failures = [3]

    def poll(req):
        if failures[0] > 0:
            failures[0] -= 1
            return 500, {"error": {"type": "InternalError", "message": "oops"}}
        return tasks.poll(req)

    fake.answer("POST", "/v1/tasks/poll", poll)
    reports = Reports(fake)
    tasks.put()
    w = start_worker(workers, tmp_path, fake.url, ["q"], ["/bin/cat"])
    wait_for(lambda: reports.of("t-1"), what="complete")
    assert w.stop() == 0


def test_poll_refused_exits(fake, tmp_path, workers):
    """401 on poll (a bad token) is not transient: exit 1 with the server's message."""
    fake.answer("POST", "/v1/tasks/poll", (401, {"error": {
        "type": "Unauthorized", "message": "unknown token"}}))
    w = start_worker(workers, tmp_path, fake.url, ["q"], ["/bin/cat"], token="bad")
    assert w.wait(20) == 1
    assert "401 Unauthorized: unknown token" in w.log()


def test_heartbeat_and_cancel_requested(fake, tmp_path, workers):
    """Heartbeats carry the lease while the command runs; cancel_requested kills the command,
    which is then reported as a Cancelled failure."""
    tasks = Tasks(fake)
    beats = []

    def heartbeat(req):
        beats.append(req["json"])
        return 200, {"cancel_requested": len(beats) >= 3}

    fake.answer("POST", "/v1/tasks/t-1/heartbeat", heartbeat)
    reports = Reports(fake)
    pidfile = tmp_path / "pid"
    script = write_script(tmp_path, "long.sh", f'echo $$ > "{pidfile}"\nexec sleep 60\n')
    tasks.put()
    w = start_worker(workers, tmp_path, fake.url, ["q"], ["/bin/sh", script],
                     extra=["--heartbeat", "200ms"])
    wait_for(lambda: reports.of("t-1"), timeout=20, what="fail")
    assert len(beats) >= 3 and all(b == {"lease": "L-1"} for b in beats)
    body = reports.of("t-1")[0]
    assert body["error"]["type"] == "Cancelled"
    assert pid_gone(int(pidfile.read_text()), wait=5)
    assert w.stop() == 0


def test_heartbeat_interval_follows_task(fake, tmp_path, workers):
    """A task that carries heartbeat_timeout (ms) is heartbeated at least three times per
    heartbeat_timeout, whatever the worker's default interval."""
    tasks = Tasks(fake)
    beats = []

    def heartbeat(req):
        beats.append(time.monotonic())
        return 200, {"cancel_requested": False}

    fake.answer("POST", "/v1/tasks/t-1/heartbeat", heartbeat)
    reports = Reports(fake)
    tasks.put(heartbeat_timeout=900)
    w = start_worker(workers, tmp_path, fake.url, ["q"], ["/bin/sh", "-c", "sleep 2; echo 1"])
    wait_for(lambda: reports.of("t-1"), what="complete")
    assert len(beats) >= 5, beats
    gaps = [b - a for a, b in zip(beats, beats[1:])]
    assert max(gaps) < 0.6, gaps
    assert w.stop() == 0


def test_lost_lease_stops_command(fake, tmp_path, workers):
    """A heartbeat answered 409 (the lease went to someone else) stops the command."""
    tasks = Tasks(fake)
    fake.answer("POST", "/v1/tasks/t-1/heartbeat", (409, {"error": {
        "type": "Conflict", "message": "stale lease"}}))
    Reports(fake).answer("t-1", (409, {"error": {
        "type": "Conflict", "message": "stale lease"}}))
    pidfile = tmp_path / "pid"
    script = write_script(tmp_path, "long.sh", f'echo $$ > "{pidfile}"\nexec sleep 60\n')
    tasks.put()
    w = start_worker(workers, tmp_path, fake.url, ["q"], ["/bin/sh", script],
                     extra=["--heartbeat", "200ms"])
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), what="the command")
    assert pid_gone(int(pidfile.read_text()), wait=10)
    assert w.stop() == 0


def test_deadline_is_timeout(fake, tmp_path, workers):
    """A task's deadline (epoch ms) ends the command: reported as Timeout, retryable."""
    tasks = Tasks(fake)
    reports = Reports(fake)
    tasks.put(deadline=int(time.time() * 1000) + 1000)
    w = start_worker(workers, tmp_path, fake.url, ["q"], ["/bin/sleep", "60"])
    t0 = time.monotonic()
    wait_for(lambda: reports.of("t-1"), what="fail")
    assert time.monotonic() - t0 < 10
    body = reports.of("t-1")[0]
    assert body["error"]["type"] == "Timeout" and body["retryable"] is True
    assert w.stop() == 0


def test_max_is_free_slots(fake, tmp_path, workers):
    """With 2 slots and 1 task running, the next poll asks for max 1."""
    tasks = Tasks(fake)
    Reports(fake)
    script = write_script(tmp_path, "s.sh", 'sleep 2\necho 1\n')
    tasks.put()
    w = start_worker(workers, tmp_path, fake.url, ["q"], ["/bin/sh", script], concurrency=2)
    wait_for(lambda: len(fake.reqs("POST", "/v1/tasks/poll")) >= 2, what="a second poll")
    polls = fake.reqs("POST", "/v1/tasks/poll")
    assert polls[0]["json"]["max"] == 2
    assert polls[1]["json"]["max"] == 1
    assert w.stop() == 0


def test_second_signal_cancels(fake, tmp_path, workers):
    """SIGTERM waits for the running command; a second one stops it."""
    tasks = Tasks(fake)
    reports = Reports(fake)
    pidfile = tmp_path / "pid"
    script = write_script(tmp_path, "long.sh", f'echo $$ > "{pidfile}"\nexec sleep 60\n')
    tasks.put()
    w = start_worker(workers, tmp_path, fake.url, ["q"], ["/bin/sh", script])
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), what="the command")
    w.proc.send_signal(signal.SIGTERM)
    time.sleep(1)
    assert w.alive()
    w.proc.send_signal(signal.SIGTERM)
    assert w.wait(20) == 0
    assert pid_gone(int(pidfile.read_text()), wait=5)
    assert reports.of("t-1")
