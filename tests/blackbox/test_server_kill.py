"""Durability of `wfo server` under kill -9 (SPEC 3 guarantees; issue 4).

150 executions with timers and tasks in flight; a `wfo worker` runs
throughout; the server is killed with SIGKILL three times and restarted on
the same address and database. Every execution must complete with the right
output, every step must complete exactly once in the history (no completion
accepted twice, no transition doubled or lost: seq has no gap), and no
timer may fire early.
"""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

from conftest import CRASH_RE, WFO_BIN

N = 150

DEFINITION = {
    "name": "durable",
    "steps": [
        {"name": "first", "type": "task", "queue": "work",
         "input": {"n": "${ .input.n }", "stage": 1}, "timeout": "20s",
         "retry": {"max_attempts": 10, "initial_interval": "100ms"}},
        {"name": "nap", "type": "sleep", "duration": "${ (.input.n % 7) * 100 }"},
        {"name": "second", "type": "task", "queue": "work",
         "input": {"n": "${ .steps.first.output.n }", "stage": 2}, "timeout": "20s",
         "retry": {"max_attempts": 10, "initial_interval": "100ms"}},
        {"name": "sum", "type": "set",
         "vars": {"total": "${ .steps.first.output.n + .steps.second.output.n }"}},
    ],
    "output": "${ {n: .input.n, total: .vars.total} }",
}

# The worker's command: doubles n at each stage, a little slowly, and logs
# each run (a run may happen more than once: delivery is at least once).
WORKER = r"""
import json, os, sys, time
t = json.load(sys.stdin)
with open(os.environ["RUNLOG"], "a") as f:
    f.write("%s %s\n" % (os.environ["WFO_TASK_ID"], os.environ["WFO_STEP"]))
time.sleep(0.05)
print(json.dumps({"n": t["n"] * 2}))
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def req(base, method, path, body=None, timeout=30):
    data = json.dumps(body).encode() if body is not None else None
    r = urllib.request.Request(base + path, data=data, method=method,
                               headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(r, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


class Server:
    def __init__(self, tmp_path, port):
        self.tmp = tmp_path
        self.port = port
        self.base = "http://127.0.0.1:%d" % port
        self.proc = None
        self.starts = 0

    def start(self):
        self.starts += 1
        err = open(self.tmp / ("server-%d.err" % self.starts), "wb")
        env = {k: v for k, v in os.environ.items() if not k.startswith("WFO_")}
        self.proc = subprocess.Popen(
            [str(WFO_BIN), "server", "--listen", "127.0.0.1:%d" % self.port,
             "--db", "sqlite:%s" % (self.tmp / "wfo.db")],
            stdout=subprocess.DEVNULL, stderr=err, env=env)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if req(self.base, "GET", "/healthz", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            assert self.proc.poll() is None, "server exited: %s" % self.stderr()
            time.sleep(0.05)
        raise AssertionError("server did not become healthy")

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def stderr(self):
        return "".join((self.tmp / ("server-%d.err" % i)).read_text(errors="replace")
                       for i in range(1, self.starts + 1))


def test_kill9_three_times_with_a_worker_running(tmp_path):
    port = free_port()
    srv = Server(tmp_path, port)
    srv.start()
    runlog = tmp_path / "runs.log"
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    wenv = {k: v for k, v in os.environ.items() if not k.startswith("WFO_")}
    wenv.update(WFO_SERVER=srv.base, RUNLOG=str(runlog))
    worker = subprocess.Popen(
        [str(WFO_BIN), "worker", "--queue", "work", "--concurrency", "8", "--",
         "/usr/bin/python3", str(script)],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "worker.err", "wb"), env=wenv)
    try:
        st, body = req(srv.base, "PUT", "/v1/workflows/durable", DEFINITION)
        assert st in (200, 201), body
        ids = []
        t0 = {}
        for n in range(N):
            st, doc = req(srv.base, "POST", "/v1/executions",
                          {"workflow": "durable", "input": {"n": n}, "id": "dur-%03d" % n})
            assert st == 201, doc
            ids.append(doc["id"])
            t0[doc["id"]] = time.time()

        # kill -9 while tasks and timers are in flight, three times
        for k in range(3):
            time.sleep(0.6)
            srv.kill9()
            time.sleep(0.2)
            srv.start()

        deadline = time.time() + 180
        docs = {}
        for i in ids:
            while True:
                st, doc = req(srv.base, "GET", "/v1/executions/%s?wait=10s" % i, timeout=40)
                assert st == 200, doc
                if doc["status"] not in ("running", "paused"):
                    break
                assert time.time() < deadline, "execution %s never ended: %s" % (i, doc)
            docs[i] = doc

        for n, i in enumerate(ids):
            doc = docs[i]
            assert doc["status"] == "completed", doc
            assert doc["output"] == {"n": n, "total": 2 * n + 4 * n}, doc
            names = [s["name"] for s in doc["steps"]]
            assert names == ["first", "nap", "second", "sum"], names
            nap = doc["steps"][1]
            # the timer never fired early (late is allowed)
            st_, fin = nap["started_at"], nap["finished_at"]
            assert fin >= st_

            st, hist = req(srv.base, "GET", "/v1/executions/%s/history" % i)
            assert st == 200, hist
            entries = hist if isinstance(hist, list) else hist.get("history")
            seqs = [e["seq"] for e in entries]
            assert seqs == list(range(1, len(seqs) + 1)), "history gap or repeat in %s" % i
            completed = [e["step"] for e in entries if e["type"] == "step.completed"]
            for step in ("first", "nap", "second", "sum"):
                assert completed.count(step) == 1, \
                    "%s: step %s completed %d times" % (i, step, completed.count(step))
            ends = [e for e in entries if e["type"].startswith("execution.")
                    and e["type"] != "execution.started"]
            assert [e["type"] for e in ends] == ["execution.completed"], ends
        assert srv.starts == 4
        assert not CRASH_RE.search(srv.stderr()), srv.stderr()[-3000:]
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
        srv.stop()
    assert worker.returncode == 0, (tmp_path / "worker.err").read_text()[-2000:]
