"""Structured logs of `wfo server` (issue 14, SPEC 7), read from its stderr: a
line with execution id, workflow and step for each execution's start and end
and each step's failure, retry and compensation; `log.level: debug` adds one
per transition; both formats (text and JSON)."""

import json
import re
import time

import apiutil
from apiutil import WfoServer, unique

SAGA = {
    "steps": [
        {"name": "reserve", "type": "set", "vars": {"held": True},
         "compensate": {"type": "set", "vars": {"held": False}}},
        {"name": "charge", "type": "task", "queue": None,
         "retry": {"max_attempts": 2, "initial_interval": "100ms"}},
    ]
}


def run_failing_saga(srv, name):
    d = json.loads(json.dumps(SAGA))
    d["name"] = name
    d["steps"][1]["queue"] = name + "-q"
    srv.put_workflow(d)
    e = srv.start_exec(name)
    w = apiutil.FakeWorker(srv, [name + "-q"],
                           lambda t: ("fail", {"type": "CardDeclined", "message": "no money"}, True))
    w.start()
    try:
        doc = srv.wait_status(e["id"], "failed", timeout=30)
    finally:
        w.stop()
    assert doc["compensation"]["status"] == "completed", doc
    return e["id"]


def wait_for(srv, pred, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        text = srv.stderr()
        if pred(text):
            return text
        assert time.monotonic() < deadline, text[-4000:]
        time.sleep(0.1)


def test_json_lines_for_an_execution(tmp_path):
    srv = WfoServer(tmp_path, env={"WFO_LOG_FORMAT": "json", "WFO_LOG_LEVEL": "info"}).launch()
    try:
        name = unique("logsaga")
        exec_id = run_failing_saga(srv, name)
        text = wait_for(srv, lambda t: "execution failed" in t)
    finally:
        assert srv.stop() == 0
    lines = [json.loads(ln) for ln in text.splitlines() if ln.startswith("{")]
    # the engine's lines about the execution (the API's audit lines name the
    # execution too, but not its workflow: security.md)
    mine = [ln for ln in lines if ln.get("execution_id") == exec_id and ln["msg"] != "audit"]
    assert mine, text
    for ln in mine:
        assert ln["workflow"] == name, ln
        assert ln["level"] in ("info", "warn"), ln
    msgs = [(ln.get("step"), ln["msg"]) for ln in mine]

    def find(step, start):
        found = [m for s, m in msgs if s == step and m.startswith(start)]
        assert found, (step, start, msgs)
        return found[0]

    find(None, "execution started")
    assert "CardDeclined: no money" in find("charge", "step attempt 1 failed, retry in")
    assert "CardDeclined" in find("charge", "step failed after 2 attempts")
    find(None, "compensation started")
    find("reserve", "step compensated")
    find(None, "compensation finished: completed")
    assert "CardDeclined" in find("charge", "execution failed")
    # in this order
    idx = [next(i for i, (_, m) in enumerate(msgs) if m.startswith(p))
           for p in ("execution started", "step failed after", "compensation started",
                     "step compensated", "compensation finished", "execution failed")]
    assert idx == sorted(idx), msgs
    # info level: no line per transition
    assert not any(m.startswith("step.started") for _, m in msgs)


def test_text_lines_and_debug_transitions(tmp_path):
    srv = WfoServer(tmp_path, env={"WFO_LOG_FORMAT": "text", "WFO_LOG_LEVEL": "debug"}).launch()
    try:
        name = unique("logdebug")
        srv.put_workflow(apiutil.set_workflow(name))
        e = srv.start_exec(name, input={"a": 1})
        srv.wait_status(e["id"], "completed")
        text = wait_for(srv, lambda t: "execution completed" in t)
    finally:
        assert srv.stop() == 0
    mine = [ln for ln in text.splitlines() if f"exec={e['id']} " in ln]
    assert any(re.search(rf" INFO exec={re.escape(e['id'])} wf={name} execution started", ln)
               for ln in mine), mine
    assert any(" INFO " in ln and "execution completed in" in ln for ln in mine), mine
    # debug: every transition, with its step
    assert any(re.search(rf" DEBUG exec=\S+ wf={name} step=s step\.started", ln)
               for ln in mine), mine
    assert any(re.search(rf" DEBUG exec=\S+ wf={name} step=out step\.completed", ln)
               for ln in mine), mine
