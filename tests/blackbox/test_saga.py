"""Compensation (sagas, SPEC 2.4) through `wfo run`, and through `wfo server`
where `wfo run` has no way in (the history, cancel with compensate,
recovery after kill -9).

The compensation handlers append the JSON input they get to a log file, one
line per call, so the order and the context of the compensations can be
read back. Completion order is made deterministic with sequential steps;
where branches complete concurrently, the order is read from the history
(GET /v1/executions/{id}/history of a `wfo server` opened on the `--db`
file of the run).

The document's `steps` lists the definition's steps only (SPEC 3): a step
that was undone shows `compensated`, and the compensation runs themselves
(paths PATH:compensate, PATH:compensate[i]) are read from the history: their
attempts are their step.started entries, their status the type of their last
entry, their output that of their step.completed."""

import json
from datetime import datetime
import os
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import (WFO_BIN, check_no_crash, match, run_def, run_wfo, sh_handler, step, step_names,
                      write_def, write_script)

# ---- helpers ------------------------------------------------------------


def log_script(tmp_path):
    """`undo.sh LOG`: appends its input (one JSON line) to LOG, prints {"undone": INPUT}."""
    return write_script(tmp_path, "undo.sh", """\
input=$(cat)
printf '%s\\n' "$input" >> "$1"
printf '{"undone": %s}\\n' "$input"
""")


def flaky_script(tmp_path):
    """`flaky.sh LOG FAILURES`: appends its input to LOG; the first FAILURES calls
    fail with UndoFailed, later ones succeed."""
    return write_script(tmp_path, "flaky.sh", """\
input=$(cat)
printf '%s\\n' "$input" >> "$1"
n=$(wc -l < "$1")
if [ "$n" -le "$2" ]; then
    printf '{"error": {"type": "UndoFailed", "message": "call %s failed"}}\\n' "$n"
    exit 1
fi
printf '{"undone": %s}\\n' "$input"
""")


def log_entries(path):
    p = Path(path)
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def kill_our_sleep(pid_file):
    """Kills the `sleep` a handler of this test started (its pid in PID_FILE), if it still runs."""
    try:
        pid = int(Path(pid_file).read_text())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if b"sleep" not in f.read():
                return
        os.kill(pid, signal.SIGKILL)
    except (FileNotFoundError, ProcessLookupError, ValueError):
        pass


def http(method, url, body=None, timeout=60):
    """(status, JSON) of one request to the server."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


@contextmanager
def wfo_server(tmp_path, db, env=None):
    """`wfo server --listen 127.0.0.1:0 --db sqlite:DB`; yields its base URL, stops it with SIGTERM."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.Popen([str(WFO_BIN), "server", "--listen", "127.0.0.1:0", "--db", f"sqlite:{db}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path, env=full_env)
    lines = []
    got = threading.Event()

    def reader():
        for raw in proc.stderr:
            lines.append(raw.decode("utf-8", "replace"))
            if re.search(r"listening on http://\S+", lines[-1]):
                got.set()
        got.set()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        got.wait(30)
        m = re.search(r"listening on (http://[0-9.]+:\d+)", "".join(lines))
        assert m, f"wfo server did not say where it listens:\n{''.join(lines)[-3000:]}"
        yield m.group(1)
    finally:
        forced = False
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                forced = True
                proc.kill()
                proc.wait(timeout=30)
        t.join(timeout=5)
        check_no_crash(0 if forced else proc.returncode, "".join(lines))


def history_of(tmp_path, db, exec_id):
    """The history of execution EXEC_ID kept in DB, as the server's API returns it."""
    with wfo_server(tmp_path, db) as url:
        status, hist = http("GET", f"{url}/v1/executions/{exec_id}/history")
    assert status == 200, hist
    assert [h["seq"] for h in hist] == list(range(1, len(hist) + 1)), "seq must count from 1 without gaps"
    return hist


def typed(hist, *types):
    """(type, step) of the history entries whose type is one of TYPES, in order."""
    return [(h["type"], h["step"]) for h in hist if h["type"] in types]


# The history entries of one step run (a compensation run included).
RUN_TYPES = ("step.started", "step.retrying", "step.completed", "step.failed", "step.skipped")


def run_saga(tmp_path, text, *args, **kw):
    """run_def with the run kept in tmp_path/saga.db; returns (rc, doc, history).

    The document's `steps` lists the definition's steps only: no
    compensation run (PATH:compensate...) is in it; those are read from the
    history."""
    db = tmp_path / "saga.db"
    rc, doc, _ = run_def(tmp_path, text, "--db", f"sqlite:{db}", *args, **kw)
    assert not [n for n in step_names(doc) if ":compensate" in n], step_names(doc)
    return rc, doc, history_of(tmp_path, db, doc["id"])


def comp_runs(hist):
    """Paths of the compensation runs in HIST, in the order they were first reached."""
    paths = []
    for h in hist:
        if h["type"] in RUN_TYPES and ":compensate" in h["step"] and h["step"] not in paths:
            paths.append(h["step"])
    return paths


def comp_run(hist, path):
    """What HIST says of the compensation run PATH:
    status: the type of its last entry without "step." (completed, failed, skipped, retrying, started);
    attempts: the number of its step.started entries;
    output: the output of its last entry when that is step.completed, else None;
    error: the error of its last entry (step.failed / step.retrying), else None."""
    entries = [h for h in hist if h["type"] in RUN_TYPES and h["step"] == path]
    assert entries, f"no history entry for {path!r}; compensation runs: {comp_runs(hist)}"
    last = entries[-1]
    data = last["data"] or {}
    return {
        "status": last["type"][len("step."):],
        "attempts": sum(1 for h in entries if h["type"] == "step.started"),
        "output": data.get("output") if last["type"] == "step.completed" else None,
        "error": data.get("error"),
    }


THREE_STEPS = """\
name: three-steps
steps:
  - name: s1
    type: task
    queue: book
    input: {n: 1}
    compensate: {type: task, queue: undo, input: {undo: s1, out: "${ .steps.s1.output }"}}
  - name: s2
    type: task
    queue: book
    input: {n: 2}
    compensate: {type: task, queue: undo, input: {undo: s2, out: "${ .steps.s2.output }"}}
  - name: s3
    type: task
    queue: book
    input: {n: 3}
    compensate: {type: task, queue: undo, input: {undo: s3, out: "${ .steps.s3.output }"}}
  - name: boom
    type: fail
    error: {type: Boom, message: "order ${ .input.order } cannot ship"}
"""


# ---- the saga -----------------------------------------------------------


def test_reverse_completion_order(tmp_path):
    """A failure compensates every completed step, newest completion first; each original becomes `compensated`, compensation.status `completed`."""
    log = tmp_path / "undo.log"
    rc, doc, hist = run_saga(tmp_path, THREE_STEPS.replace("${ .input.order }", "7"),
                             "--handler", "book=cat", *sh_handler("undo", log_script(tmp_path), log))
    assert rc == 1, doc
    assert doc["status"] == "failed"
    assert doc["error"] == {"type": "Boom", "message": "order 7 cannot ship", "details": None, "step": "boom"}
    assert doc["compensation"] == {"status": "completed"}
    assert log_entries(log) == [
        {"undo": "s3", "out": {"n": 3}},
        {"undo": "s2", "out": {"n": 2}},
        {"undo": "s1", "out": {"n": 1}},
    ]
    for n in (1, 2, 3):
        orig = step(doc, f"s{n}")
        assert orig["status"] == "compensated", orig
        assert orig["output"] == {"n": n}, "a compensated step keeps its output"
        comp = comp_run(hist, f"s{n}:compensate")
        assert comp["status"] == "completed" and comp["attempts"] == 1, comp
        assert comp["output"] == {"undone": {"undo": f"s{n}", "out": {"n": n}}}
    assert step_names(doc) == ["s1", "s2", "s3", "boom"]
    assert typed(hist, "step.started", "step.completed", "step.failed") == [
        ("step.started", "s1"), ("step.completed", "s1"),
        ("step.started", "s2"), ("step.completed", "s2"),
        ("step.started", "s3"), ("step.completed", "s3"),
        ("step.started", "boom"), ("step.failed", "boom"),
        ("step.started", "s3:compensate"), ("step.completed", "s3:compensate"),
        ("step.started", "s2:compensate"), ("step.completed", "s2:compensate"),
        ("step.started", "s1:compensate"), ("step.completed", "s1:compensate"),
    ]
    assert step(doc, "boom")["status"] == "failed"
    assert doc["output"] is None


def test_steps_lists_no_compensation_runs(tmp_path):
    """`steps` lists the definition's steps only (SPEC 3): the undone steps show `compensated`, no `:compensate` path is in it, in `wfo run`'s document nor the server's; the runs are in the history."""
    db = tmp_path / "saga.db"
    rc, doc, _ = run_def(tmp_path, """\
name: no-runs-in-steps
steps:
  - name: one
    type: set
    vars: {o: 1}
    compensate: {type: set, vars: {uo: 1}}
  - name: two
    type: set
    vars: {t: 1}
    compensate:
      - {type: set, vars: {ut0: 1}}
      - {type: set, vars: {ut1: 1}}
  - name: each
    type: foreach
    items: [x]
    steps:
      - name: take
        type: set
        vars: {k: 1}
        compensate: {type: set, vars: {uk: 1}}
  - name: boom
    type: fail
    error: {type: Boom, message: bad}
""", "--db", f"sqlite:{db}")
    assert rc == 1, doc
    assert doc["compensation"] == {"status": "completed"}
    assert step_names(doc) == ["one", "two", "each", "each[0]/take", "boom"]
    for p in ("one", "two", "each[0]/take"):
        assert step(doc, p)["status"] == "compensated", step(doc, p)
    assert step(doc, "each")["status"] == "completed"
    assert step(doc, "boom")["status"] == "failed"
    with wfo_server(tmp_path, db) as url:
        status, served = http("GET", f"{url}/v1/executions/{doc['id']}")
        assert status == 200, served
        status, hist = http("GET", f"{url}/v1/executions/{doc['id']}/history")
        assert status == 200, hist
    assert step_names(served) == step_names(doc)
    assert [s["status"] for s in served["steps"]] == [s["status"] for s in doc["steps"]]
    assert comp_runs(hist) == ["each[0]/take:compensate", "two:compensate[0]", "two:compensate[1]",
                               "one:compensate"]
    for p in comp_runs(hist):
        assert comp_run(hist, p)["status"] == "completed", (p, comp_run(hist, p))
    assert typed(hist, "step.compensated") == [
        ("step.compensated", "each[0]/take"), ("step.compensated", "two"), ("step.compensated", "one")]


def test_only_completed_steps_are_compensated(tmp_path):
    """Skipped, caught and failed steps and steps without `compensate` are not compensated."""
    log = tmp_path / "undo.log"
    undo = log_script(tmp_path)
    rc, doc, hist = run_saga(tmp_path, """\
name: only-completed
steps:
  - name: done
    type: set
    vars: {d: 1}
    compensate: {type: task, queue: undo, input: {undo: done}}
  - name: plain
    type: set
    vars: {p: 1}
  - name: skipped
    type: set
    if: "${ false }"
    vars: {s: 1}
    compensate: {type: task, queue: undo, input: {undo: skipped}}
  - name: caught
    type: exec
    command: [sh, -c, "exit 3"]
    retry: {max_attempts: 1}
    compensate: {type: task, queue: undo, input: {undo: caught}}
    catch: [{errors: [ExecFailed], next: last}]
  - name: last
    type: fail
    error: {type: Boom, message: end}
    compensate: {type: task, queue: undo, input: {undo: last}}
""", *sh_handler("undo", undo, log))
    assert rc == 1, doc
    assert log_entries(log) == [{"undo": "done"}]
    assert step(doc, "done")["status"] == "compensated"
    assert step(doc, "plain")["status"] == "completed"
    assert step(doc, "skipped")["status"] == "skipped"
    assert step(doc, "caught")["status"] == "caught"
    assert step(doc, "last")["status"] == "failed"
    assert comp_runs(hist) == ["done:compensate"]
    assert typed(hist, "step.compensated") == [("step.compensated", "done")]
    assert doc["compensation"] == {"status": "completed"}


def test_compensation_context(tmp_path):
    """A compensation sees the original's output at .steps.NAME.output, the failure at .error, and the rest of the context."""
    log = tmp_path / "undo.log"
    rc, doc, _ = run_def(tmp_path, """\
name: comp-context
steps:
  - name: reserve
    type: task
    queue: book
    input: {sku: "${ .input.sku }"}
    output: {id: '${ "R-" + .result.sku }'}
    compensate:
      type: task
      queue: undo
      input:
        reservation: "${ .steps.reserve.output.id }"
        error: "${ .error }"
        sku: "${ .input.sku }"
        vars: "${ .vars }"
        workflow: "${ .execution.workflow }"
  - {name: note, type: set, vars: {noted: true}}
  - name: charge
    type: fail
    error: {type: Declined, message: '${ "card " + .input.card }', details: {code: 51}}
""", "--handler", "book=cat", *sh_handler("undo", log_script(tmp_path), log),
        input={"sku": "ab-1", "card": "4000"})
    assert rc == 1, doc
    [entry] = log_entries(log)
    assert entry == {
        "reservation": "R-ab-1",
        "error": {"type": "Declined", "message": "card 4000", "details": {"code": 51}, "step": "charge"},
        "sku": "ab-1",
        "vars": {"noted": True},
        "workflow": "comp-context",
    }
    assert step(doc, "reserve")["status"] == "compensated"


def test_failing_compensation(tmp_path):
    """A compensation that exhausts its retries: compensation.status `failed` with its error and step; the execution stays failed with its own error."""
    log = tmp_path / "undo.log"
    rc, doc, hist = run_saga(tmp_path, """\
name: comp-fails
steps:
  - name: a
    type: task
    queue: book
    input: {n: 1}
    compensate: {type: task, queue: undo, input: {undo: a}}
  - name: b
    type: task
    queue: book
    input: {n: 2}
    compensate:
      type: task
      queue: undo
      input: {undo: b}
      retry: {max_attempts: 2, initial_interval: 10ms}
  - name: boom
    type: fail
    error: {type: Boom, message: original}
""", "--handler", "book=cat", *sh_handler("undo", flaky_script(tmp_path), log, 100))
    assert rc == 1, doc
    assert doc["status"] == "failed"
    assert doc["error"] == {"type": "Boom", "message": "original", "details": None, "step": "boom"}
    comp = doc["compensation"]
    assert comp["status"] == "failed", comp
    match({"type": "UndoFailed", "message": "call 2 failed"}, comp["error"])
    assert comp["step"] == "b:compensate"
    s = comp_run(hist, "b:compensate")
    assert s["status"] == "failed" and s["attempts"] == 2, s
    assert s["error"]["type"] == "UndoFailed"
    assert step(doc, "b")["status"] == "completed", "a step whose compensation failed is not compensated"
    assert log_entries(log)[:2] == [{"undo": "b"}, {"undo": "b"}]


def test_compensation_retry_policy(tmp_path):
    """A compensation is retried under its own policy: two failures, then success on attempt 3."""
    log = tmp_path / "undo.log"
    rc, doc, hist = run_saga(tmp_path, """\
name: comp-retry
steps:
  - name: a
    type: set
    vars: {a: 1}
    compensate:
      type: task
      queue: undo
      input: {undo: a}
      retry: {max_attempts: 3, initial_interval: 10ms, backoff: 1.0}
  - name: boom
    type: fail
    error: {type: Boom, message: bad}
""", *sh_handler("undo", flaky_script(tmp_path), log, 2))
    assert rc == 1, doc
    s = comp_run(hist, "a:compensate")
    assert s["status"] == "completed" and s["attempts"] == 3, s
    assert [t for t, p in typed(hist, *RUN_TYPES) if p == "a:compensate"] == [
        "step.started", "step.retrying", "step.started", "step.retrying", "step.started", "step.completed"]
    assert s["output"] == {"undone": {"undo": "a"}}
    assert s["error"] is None
    assert len(log_entries(log)) == 3
    assert step(doc, "a")["status"] == "compensated"
    assert doc["compensation"] == {"status": "completed"}


def test_compensation_retry_policy_non_retryable(tmp_path):
    """non_retryable in a compensation's retry stops it after one attempt."""
    log = tmp_path / "undo.log"
    rc, doc, hist = run_saga(tmp_path, """\
name: comp-non-retryable
steps:
  - name: a
    type: set
    vars: {a: 1}
    compensate:
      type: task
      queue: undo
      retry: {max_attempts: 5, initial_interval: 10ms, non_retryable: [UndoFailed]}
  - name: boom
    type: fail
    error: {type: Boom, message: bad}
""", *sh_handler("undo", flaky_script(tmp_path), log, 100))
    assert rc == 1, doc
    s = comp_run(hist, "a:compensate")
    assert s["attempts"] == 1 and s["status"] == "failed", s
    assert s["error"]["type"] == "UndoFailed"
    assert len(log_entries(log)) == 1
    assert doc["compensation"]["status"] == "failed"


@pytest.mark.slow
def test_compensation_default_retry(tmp_path):
    """Without `retry`, a compensation gets the default policy (SPEC 2.3): 3 attempts."""
    log = tmp_path / "undo.log"
    rc, doc, hist = run_saga(tmp_path, """\
name: comp-default-retry
steps:
  - name: a
    type: set
    vars: {a: 1}
    compensate: {type: task, queue: undo}
  - name: boom
    type: fail
    error: {type: Boom, message: bad}
""", *sh_handler("undo", flaky_script(tmp_path), log, 100), timeout=60)
    assert rc == 1, doc
    s = comp_run(hist, "a:compensate")
    assert s["attempts"] == 3 and s["status"] == "failed", s
    assert len(log_entries(log)) == 3
    assert doc["compensation"]["status"] == "failed"


def test_on_failure_fail_compensates_nothing(tmp_path):
    """on_failure: fail: nothing is compensated and compensation is null."""
    log = tmp_path / "undo.log"
    text = THREE_STEPS.replace("${ .input.order }", "9").replace(
        "name: three-steps\n", "name: no-saga\non_failure: fail\n")
    rc, doc, _ = run_def(tmp_path, text, "--handler", "book=cat",
                         *sh_handler("undo", log_script(tmp_path), log))
    assert rc == 1, doc
    assert doc["status"] == "failed" and doc["error"]["type"] == "Boom"
    assert doc["compensation"] is None
    assert log_entries(log) == []
    assert [step(doc, f"s{n}")["status"] for n in (1, 2, 3)] == ["completed"] * 3
    assert not [n for n in step_names(doc) if ":compensate" in n]


def test_compensate_step_undoes_and_continues(tmp_path):
    """The `compensate` step runs the compensations of what completed so far, in reverse, and the workflow goes on and completes."""
    log = tmp_path / "undo.log"
    rc, doc, hist = run_saga(tmp_path, """\
name: undo-and-go-on
steps:
  - name: a
    type: task
    queue: book
    input: {n: 1}
    compensate: {type: task, queue: undo, input: {undo: a, out: "${ .steps.a.output }"}}
  - name: b
    type: task
    queue: book
    input: {n: 2}
    compensate: {type: task, queue: undo, input: {undo: b, out: "${ .steps.b.output }"}}
  - name: rollback
    type: compensate
  - name: after
    type: set
    vars: {x: 1}
    output: {a: "${ .steps.a.status }", b: "${ .steps.b.status }", rollback: "${ .steps.rollback.status }"}
""", "--handler", "book=cat", *sh_handler("undo", log_script(tmp_path), log))
    assert rc == 0, doc
    assert doc["status"] == "completed"
    assert doc["error"] is None
    assert log_entries(log) == [{"undo": "b", "out": {"n": 2}}, {"undo": "a", "out": {"n": 1}}]
    assert doc["output"] == {"a": "compensated", "b": "compensated", "rollback": "completed"}
    assert step(doc, "rollback")["status"] == "completed"
    assert doc["compensation"] == {"status": "completed"}
    assert step_names(doc) == ["a", "b", "rollback", "after"]
    assert typed(hist, "step.started", "step.completed") == [
        ("step.started", "a"), ("step.completed", "a"),
        ("step.started", "b"), ("step.completed", "b"),
        ("step.started", "rollback"),
        ("step.started", "b:compensate"), ("step.completed", "b:compensate"),
        ("step.started", "a:compensate"), ("step.completed", "a:compensate"),
        ("step.completed", "rollback"),
        ("step.started", "after"), ("step.completed", "after"),
    ]


def test_compensate_step_with_nothing_to_undo(tmp_path):
    """A `compensate` step with nothing completed that has a compensation just completes; compensation stays null."""
    rc, doc, _ = run_def(tmp_path, """\
name: nothing-to-undo
steps:
  - {name: a, type: set, vars: {a: 1}}
  - {name: rollback, type: compensate}
  - {name: after, type: set, vars: {b: 1}}
""")
    assert rc == 0, doc
    assert step(doc, "rollback")["status"] == "completed"
    assert doc["compensation"] is None
    assert step(doc, "a")["status"] == "completed"


def test_failing_compensation_fails_the_compensate_step(tmp_path):
    """When a compensation of a `compensate` step fails for good, the step fails with its error and `catch` applies."""
    log = tmp_path / "undo.log"
    rc, doc, _ = run_def(tmp_path, """\
name: compensate-step-fails
on_failure: fail
steps:
  - name: a
    type: set
    vars: {a: 1}
    compensate: {type: task, queue: undo, retry: {max_attempts: 1}}
  - name: rollback
    type: compensate
    catch: [{errors: [UndoFailed], next: manual}]
  - name: skipped
    type: set
    vars: {s: 1}
  - name: manual
    type: set
    vars: {m: 1}
    output: "${ .error }"
""", *sh_handler("undo", flaky_script(tmp_path), log, 100))
    assert rc == 0, doc
    assert step(doc, "rollback")["status"] == "caught"
    match({"type": "UndoFailed", "message": "call 1 failed"}, doc["output"])
    assert doc["compensation"]["status"] == "failed"
    assert doc["compensation"]["step"] == "a:compensate"
    assert step(doc, "a")["status"] == "completed"
    assert "skipped" not in step_names(doc)


def test_compensated_once(tmp_path):
    """A step undone by a `compensate` step is not compensated again when the workflow later fails."""
    log = tmp_path / "undo.log"
    rc, doc, hist = run_saga(tmp_path, """\
name: once
steps:
  - name: a
    type: set
    vars: {a: 1}
    compensate: {type: task, queue: undo, input: {undo: a}}
  - {name: rollback, type: compensate}
  - name: b
    type: set
    vars: {b: 1}
    compensate: {type: task, queue: undo, input: {undo: b}}
  - name: boom
    type: fail
    error: {type: Boom, message: late}
""", *sh_handler("undo", log_script(tmp_path), log))
    assert rc == 1, doc
    assert log_entries(log) == [{"undo": "a"}, {"undo": "b"}]
    assert step(doc, "a")["status"] == "compensated"
    assert step(doc, "b")["status"] == "compensated"
    assert comp_run(hist, "a:compensate")["attempts"] == 1
    assert comp_runs(hist) == ["a:compensate", "b:compensate"]
    assert typed(hist, "step.compensated") == [("step.compensated", "a"), ("step.compensated", "b")]
    assert doc["compensation"] == {"status": "completed"}
    assert doc["error"]["type"] == "Boom"


def test_list_of_compensations_in_order(tmp_path):
    """A list of compensation steps runs in list order (paths NAME:compensate[i]), before the compensations of earlier steps."""
    log = tmp_path / "undo.log"
    rc, doc, hist = run_saga(tmp_path, """\
name: comp-list
steps:
  - name: first
    type: set
    vars: {f: 1}
    compensate: {type: task, queue: undo, input: {undo: first}}
  - name: multi
    type: set
    vars: {m: 1}
    output: {id: M1}
    compensate:
      - {type: task, queue: undo, input: {undo: "multi-0", id: "${ .steps.multi.output.id }"}}
      - {type: task, queue: undo, input: {undo: "multi-1", id: "${ .steps.multi.output.id }"}}
      - {type: set, vars: {cleaned: "${ .steps.multi.output.id }"}}
  - name: boom
    type: fail
    error: {type: Boom, message: bad}
""", *sh_handler("undo", log_script(tmp_path), log))
    assert rc == 1, doc
    assert log_entries(log) == [{"undo": "multi-0", "id": "M1"}, {"undo": "multi-1", "id": "M1"},
                                {"undo": "first"}]
    assert comp_runs(hist) == [
        "multi:compensate[0]", "multi:compensate[1]", "multi:compensate[2]", "first:compensate"]
    assert [p for t, p in typed(hist, "step.completed") if ":compensate" in p] == comp_runs(hist)
    assert comp_run(hist, "multi:compensate[2]")["output"] == {"cleaned": "M1"}
    assert step(doc, "multi")["status"] == "compensated"
    assert step(doc, "first")["status"] == "compensated"
    assert doc["compensation"] == {"status": "completed"}


def test_parallel_branches_all_compensated(tmp_path):
    """Steps of every branch are compensated, each with its own branch's output, in the reverse of the completion order the history records."""
    log = tmp_path / "undo.log"
    db = tmp_path / "saga.db"
    rc, doc, _ = run_def(tmp_path, """\
name: branches-undone
steps:
  - name: book
    type: parallel
    branches:
      - name: flight
        steps:
          - name: reserve
            type: task
            queue: book
            input: {what: flight}
            compensate: {type: task, queue: undo, input: {undo: "${ .steps.reserve.output.what }"}}
      - name: hotel
        steps:
          - name: reserve
            type: task
            queue: book
            input: {what: hotel}
            compensate: {type: task, queue: undo, input: {undo: "${ .steps.reserve.output.what }"}}
          - name: breakfast
            type: task
            queue: book
            input: {what: breakfast}
            compensate: {type: task, queue: undo, input: {undo: "${ .steps.breakfast.output.what }"}}
      - name: car
        steps:
          - name: reserve
            type: task
            queue: book
            input: {what: car}
            compensate: {type: task, queue: undo, input: {undo: "${ .steps.reserve.output.what }"}}
  - name: charge
    type: fail
    error: {type: Declined, message: no}
""", "--db", f"sqlite:{db}", "--handler", "book=cat", *sh_handler("undo", log_script(tmp_path), log))
    assert rc == 1, doc
    assert doc["compensation"] == {"status": "completed"}
    originals = ["book/flight/reserve", "book/hotel/reserve", "book/hotel/breakfast", "book/car/reserve"]
    assert not [n for n in step_names(doc) if ":compensate" in n], step_names(doc)
    hist = history_of(tmp_path, db, doc["id"])
    for p in originals:
        assert step(doc, p)["status"] == "compensated", step(doc, p)
        comp = comp_run(hist, f"{p}:compensate")
        assert comp["status"] == "completed", comp
        what = step(doc, p)["output"]["what"]
        assert comp["output"] == {"undone": {"undo": what}}
    completed = [s for t, s in typed(hist, "step.completed") if s in originals]
    undone = [s[: -len(":compensate")] for t, s in typed(hist, "step.started") if s.endswith(":compensate")]
    assert sorted(completed) == sorted(originals)
    assert sorted(undone) == sorted(originals)
    # branches are undone concurrently (test_contract.py), each in reverse
    # order of its own completions
    for branch in ("flight", "hotel", "car"):
        mine = [p for p in completed if p.startswith(f"book/{branch}/")]
        assert [p for p in undone if p in mine] == list(reversed(mine))
    assert sorted(e["undo"] for e in log_entries(log)) == sorted(
        step(doc, p)["output"]["what"] for p in undone)
    # within the hotel branch, breakfast (completed last) is undone first
    assert undone.index("book/hotel/breakfast") < undone.index("book/hotel/reserve")


def _t(ts):
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def test_parallel_branches_compensated_concurrently(tmp_path):
    """SPEC 2.4: branches of a parallel are compensated concurrently, each in
    reverse. Each branch's last step takes a second to undo: the three undo
    runs overlap in time (read from the history), and each branch's first
    step is undone only after its last."""
    branch = """\
      - name: {b}
        steps:
          - name: x
            type: set
            vars: {{x: 1}}
            compensate: {{type: task, queue: fast, input: {{undo: {b}-x}}}}
          - name: y
            type: set
            vars: {{y: 1}}
            compensate: {{type: task, queue: slow, input: {{undo: {b}-y}}}}
"""
    text = ("name: concurrent-undo\nsteps:\n  - name: par\n    type: parallel\n    branches:\n"
            + "".join(branch.format(b=b) for b in ("b1", "b2", "b3"))
            + "  - name: boom\n    type: fail\n    error: {type: Declined, message: no}\n")
    rc, doc, hist = run_saga(tmp_path, text, "--handler", "fast=cat",
                             "--handler", "slow=sleep 1; cat")
    assert rc == 1, doc
    assert doc["compensation"] == {"status": "completed"}, doc["compensation"]
    times = {}
    for h in hist:
        if h["step"] and h["step"].endswith(":compensate") and h["type"] in (
                "step.started", "step.completed"):
            times.setdefault(h["step"], {})[h["type"]] = _t(h["time"])
    slow = [times[f"par/{b}/y:compensate"] for b in ("b1", "b2", "b3")]
    # the three one-second undo runs overlap: each starts before any ends
    assert max(t["step.started"] for t in slow) < min(t["step.completed"] for t in slow), slow
    for b in ("b1", "b2", "b3"):
        y, x = times[f"par/{b}/y:compensate"], times[f"par/{b}/x:compensate"]
        assert x["step.started"] >= y["step.completed"], (b, x, y)
        assert step(doc, f"par/{b}/x")["status"] == "compensated"
        assert step(doc, f"par/{b}/y")["status"] == "compensated"


def test_parallel_compensation_failure_waits_for_siblings(tmp_path):
    """A branch whose undo fails for good stops new undo runs, but the
    sibling branches' runs already started finish and count: the saga ends
    failed once none is in flight, and the step undone meanwhile shows
    compensated."""
    text = """\
name: undo-fails
steps:
  - name: before
    type: set
    vars: {a: 1}
    compensate: {type: task, queue: fast, input: {undo: before}}
  - name: par
    type: parallel
    branches:
      - name: ok
        steps:
          - name: s
            type: set
            vars: {s: 1}
            compensate: {type: task, queue: slow, input: {undo: ok}}
      - name: bad
        steps:
          - name: s
            type: set
            vars: {s: 1}
            compensate: {type: task, queue: broken, input: {undo: bad},
                         retry: {max_attempts: 1}}
  - name: boom
    type: fail
    error: {type: Declined, message: no}
"""
    rc, doc, hist = run_saga(tmp_path, text, "--handler", "fast=cat",
                             "--handler", "slow=sleep 1; cat", "--handler", "broken=exit 3")
    assert rc == 1, doc
    assert doc["compensation"]["status"] == "failed", doc["compensation"]
    assert doc["compensation"]["step"] == "par/bad/s:compensate"
    assert doc["error"]["type"] == "Declined"
    assert step(doc, "par/ok/s")["status"] == "compensated"
    assert step(doc, "par/bad/s")["status"] == "completed"
    # `before` is not undone: the saga stopped at the failure
    assert step(doc, "before")["status"] == "completed"
    assert not [h for h in hist if h["step"] == "before:compensate"]


def test_foreach_iterations_compensated(tmp_path):
    """Steps of foreach iterations are compensated with their own iteration's output, .item and .index; paths EACH[I]/STEP:compensate."""
    rc, doc, hist = run_saga(tmp_path, """\
name: iterations-undone
steps:
  - name: each
    type: foreach
    items: [a, b, c]
    concurrency: 1
    steps:
      - name: take
        type: set
        vars: {t: 1}
        output: '${ .item + "-taken" }'
        compensate:
          type: set
          vars: {u: 1}
          output: {undo: "${ .steps.take.output }", item: "${ .item }", index: "${ .index }"}
  - name: boom
    type: fail
    error: {type: Boom, message: bad}
""")
    assert rc == 1, doc
    assert comp_runs(hist) == [
        "each[2]/take:compensate", "each[1]/take:compensate", "each[0]/take:compensate"]
    for i, it in enumerate("abc"):
        assert step(doc, f"each[{i}]/take")["status"] == "compensated"
        comp = comp_run(hist, f"each[{i}]/take:compensate")
        assert comp["status"] == "completed", comp
        assert comp["output"] == {"undo": f"{it}-taken", "item": it, "index": i}
    assert doc["compensation"] == {"status": "completed"}


def test_history_has_compensation_entries(tmp_path):
    """The history records compensation.started (with the number of compensation steps), each compensation's start and end, step.compensated, compensation.finished, then the end."""
    db = tmp_path / "saga.db"
    rc, doc, _ = run_def(tmp_path, """\
name: comp-history
steps:
  - name: a
    type: set
    vars: {a: 1}
    compensate: {type: set, vars: {ua: 1}}
  - name: b
    type: set
    vars: {b: 1}
    compensate:
      - {type: set, vars: {ub0: 1}}
      - {type: set, vars: {ub1: 1}}
  - name: boom
    type: fail
    error: {type: Boom, message: bad}
""", "--db", f"sqlite:{db}")
    assert rc == 1, doc
    hist = history_of(tmp_path, db, doc["id"])
    types = [(h["type"], h["step"]) for h in hist]
    start = types.index(("step.failed", "boom"))
    assert types[start + 1:] == [
        ("compensation.started", None),
        ("step.started", "b:compensate[0]"),
        ("step.completed", "b:compensate[0]"),
        ("step.started", "b:compensate[1]"),
        ("step.completed", "b:compensate[1]"),
        ("step.compensated", "b"),
        ("step.started", "a:compensate"),
        ("step.completed", "a:compensate"),
        ("step.compensated", "a"),
        ("compensation.finished", None),
        ("execution.failed", None),
    ]
    by_type = {h["type"]: h for h in hist}
    assert by_type["compensation.started"]["data"] == {"steps": 3}
    assert by_type["compensation.finished"]["data"] == {"status": "completed"}
    assert by_type["execution.failed"]["data"]["error"]["type"] == "Boom"


def test_history_of_failed_compensation(tmp_path):
    """compensation.finished carries {status: failed, error, step}."""
    db = tmp_path / "saga.db"
    rc, doc, _ = run_def(tmp_path, """\
name: comp-history-failed
steps:
  - name: a
    type: set
    vars: {a: 1}
    compensate: {type: exec, command: [sh, -c, "echo cannot undo >&2; exit 4"], retry: {max_attempts: 1}}
  - name: boom
    type: fail
    error: {type: Boom, message: bad}
""", "--db", f"sqlite:{db}")
    assert rc == 1, doc
    hist = history_of(tmp_path, db, doc["id"])
    [fin] = [h for h in hist if h["type"] == "compensation.finished"]
    assert fin["data"]["status"] == "failed"
    assert fin["data"]["step"] == "a:compensate"
    assert fin["data"]["error"]["type"] == "ExecFailed"
    assert fin["data"] == doc["compensation"]
    assert hist[-1]["type"] == "execution.failed"
    assert hist[-1]["data"]["error"]["type"] == "Boom"


# ---- through the server -----------------------------------------------


def put_and_start(url, name, definition_path):
    """Registers the definition at DEFINITION_PATH as NAME and starts an execution; returns its id."""
    with open(definition_path) as f:
        body = f.read()
    req = urllib.request.Request(f"{url}/v1/workflows/{name}", data=body.encode(), method="PUT",
                                 headers={"Content-Type": "application/yaml"})
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status in (200, 201)
    status, ex = http("POST", f"{url}/v1/executions", {"workflow": name, "input": {}})
    assert status == 201, ex
    return ex["id"]


@pytest.mark.parametrize("compensate", [True, False])
def test_cancel_with_compensate(tmp_path, compensate):
    """POST /cancel {compensate: true} compensates what completed, then ends `cancelled`; without it nothing is compensated."""
    db = tmp_path / "srv.db"
    path = write_def(tmp_path, """\
name: cancel-me
steps:
  - name: a
    type: set
    vars: {a: 1}
    compensate: {type: set, vars: {undone: "${ .error.type }"}}
  - name: nap
    type: sleep
    duration: 60s
    compensate: {type: set, vars: {never: true}}
""")
    with wfo_server(tmp_path, db) as url:
        exec_id = put_and_start(url, "cancel-me", path)
        deadline = time.monotonic() + 30
        while True:
            status, doc = http("GET", f"{url}/v1/executions/{exec_id}")
            assert status == 200, doc
            if any(s["name"] == "nap" and s["status"] == "waiting" for s in doc["steps"]):
                break
            assert time.monotonic() < deadline, doc
            time.sleep(0.05)
        status, _ = http("POST", f"{url}/v1/executions/{exec_id}/cancel",
                         {"reason": "operator", "compensate": compensate})
        assert status == 200
        status, doc = http("GET", f"{url}/v1/executions/{exec_id}?wait=30s")
        assert status == 200
        status, hist = http("GET", f"{url}/v1/executions/{exec_id}/history")
        assert status == 200, hist
    assert doc["status"] == "cancelled", doc
    assert doc["error"]["type"] == "Cancelled"
    assert step(doc, "nap")["status"] == "cancelled"
    assert step_names(doc) == ["a", "nap"]
    assert "nap:compensate" not in comp_runs(hist)
    if compensate:
        assert doc["compensation"] == {"status": "completed"}
        assert step(doc, "a")["status"] == "compensated"
        comp = comp_run(hist, "a:compensate")
        assert comp["status"] == "completed", comp
        assert comp["output"] == {"undone": "Cancelled"}
        assert comp_runs(hist) == ["a:compensate"]
    else:
        assert doc["compensation"] is None
        assert step(doc, "a")["status"] == "completed"
        assert comp_runs(hist) == []
        assert not typed(hist, "compensation.started", "step.compensated")


@pytest.mark.slow
def test_kill_9_during_compensation_is_resumed(tmp_path):
    """kill -9 while a compensation runs: a server opened on the same store resumes the compensation and ends the execution failed, compensation completed."""
    db = tmp_path / "crash.db"
    marker = tmp_path / "first-call"
    log = tmp_path / "undo.log"
    script = write_script(tmp_path, "undo-once.sh", f"""\
if [ ! -e {marker} ]; then
    sleep 60 &
    echo $! > {tmp_path}/sleep.pid
    touch {marker}
    wait $!
    exit 1
fi
echo undone >> {log}
echo '{{"undone": true}}'
""")
    path = write_def(tmp_path, f"""\
name: crash-in-saga
steps:
  - name: a
    type: set
    vars: {{a: 1}}
    compensate: {{type: exec, command: [/bin/sh, "{script}"], output: "${{ .result.json }}"}}
  - name: boom
    type: fail
    error: {{type: Boom, message: bad}}
""")
    proc = subprocess.Popen([str(WFO_BIN), "run", str(path), "--db", f"sqlite:{db}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the compensation never started"
            time.sleep(0.05)
        proc.kill()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        # kill -9 of wfo leaves the compensation's command running: stop it
        kill_our_sleep(tmp_path / "sleep.pid")
    assert proc.returncode == -signal.SIGKILL
    assert not log.exists()
    with wfo_server(tmp_path, db, env={"WFO_EXEC_ENABLED": "true"}) as url:
        status, listing = http("GET", f"{url}/v1/executions")
        assert status == 200, listing
        [exec_id] = [e["id"] for e in listing["executions"]]
        status, doc = http("GET", f"{url}/v1/executions/{exec_id}?wait=30s")
        assert status == 200, doc
        status, hist = http("GET", f"{url}/v1/executions/{exec_id}/history")
    assert doc["status"] == "failed", doc
    assert doc["error"]["type"] == "Boom"
    assert doc["compensation"] == {"status": "completed"}
    assert step(doc, "a")["status"] == "compensated"
    assert not [n for n in step_names(doc) if ":compensate" in n], step_names(doc)
    comp = comp_run(hist, "a:compensate")
    assert comp["status"] == "completed", comp
    assert comp["output"] == {"undone": True}
    assert log.read_text().split() == ["undone"]
    assert [h["type"] for h in hist].count("compensation.started") == 1
    assert [h["type"] for h in hist].count("execution.failed") == 1


# ---- known bugs (each test states the behaviour SPEC asks for) -----------


def test_compensation_if_false_is_skipped(tmp_path):
    """`if` is a common field of every step: a compensation whose `if` is false does not run."""
    rc, doc, hist = run_saga(tmp_path, """\
name: comp-if
steps:
  - name: a
    type: set
    vars: {a: 1}
    compensate: {type: exec, if: "${ false }", command: [sh, -c, "touch ran"]}
  - name: boom
    type: fail
    error: {type: Boom, message: bad}
""", cwd=tmp_path)
    assert rc == 1, doc
    assert not (tmp_path / "ran").exists(), "a compensation with `if: false` ran"
    comp = comp_run(hist, "a:compensate")
    assert comp["status"] == "skipped" and comp["attempts"] == 0, comp
    assert typed(hist, "step.skipped") == [("step.skipped", "a:compensate")]
    assert doc["compensation"] == {"status": "completed"}


def test_fail_step_as_compensation(tmp_path):
    """A `fail` compensation is a failing compensation: compensation.status `failed` with its error, the execution keeps its own error."""
    rc, doc, _ = run_def(tmp_path, """\
name: comp-fail-step
steps:
  - name: a
    type: set
    vars: {a: 1}
    compensate: {type: fail, error: {type: CannotUndo, message: manual}}
  - name: boom
    type: fail
    error: {type: Boom, message: bad}
""")
    assert rc == 1, doc
    assert doc["status"] == "failed"
    assert doc["error"]["type"] == "Boom" and doc["error"]["step"] == "boom", doc["error"]
    assert doc["compensation"]["status"] == "failed", doc["compensation"]
    assert doc["compensation"]["error"]["type"] == "CannotUndo"


def test_parallel_as_compensation_is_refused(tmp_path):
    """A compensation is one step run to its end: a parallel block there is a definition error (exit 2, the path named)."""
    f = write_def(tmp_path, """\
name: comp-parallel
steps:
  - name: a
    type: set
    vars: {a: 1}
    compensate:
      type: parallel
      branches:
        - name: x
          steps:
            - {name: x1, type: set, vars: {x1: 1}}
  - name: boom
    type: fail
    error: {type: Boom, message: bad}
""")
    rc, out, err = run_wfo(["validate", str(f)])
    assert rc == 2
    # `wfo validate` prints its problems (FILE: PATH: MESSAGE) on stdout; either stream will do
    assert "steps[0].compensate.type: a compensation cannot be a parallel step" in out + err


def test_workflow_timeout_during_compensation(tmp_path):
    """An execution that ended never reports compensation.status `running` (here the workflow timeout fires while a compensation sleeps)."""
    rc, doc, _ = run_def(tmp_path, """\
name: comp-timeout
timeout: 1s
steps:
  - name: a
    type: set
    vars: {a: 1}
    compensate: {type: sleep, duration: 3s}
  - name: boom
    type: fail
    error: {type: Boom, message: bad}
""")
    assert rc == 1, doc
    assert doc["status"] == "failed"
    assert doc["compensation"] is not None
    assert doc["compensation"]["status"] in ("completed", "failed"), doc["compensation"]


def test_failure_while_compensate_step_runs(tmp_path):
    """A branch fails while a `compensate` step of another branch is compensating: the execution ends failed, and its compensation is not left `running`."""
    slow = write_script(tmp_path, "slow-undo.sh", f"""\
cat >/dev/null
sleep 60 &
echo $! > {tmp_path}/undo.sleeppid
touch {tmp_path}/undo.started
wait $!
echo '{{"undone": "late"}}'
""")
    waiter = write_script(tmp_path, "fail-after.sh", f"""\
cat >/dev/null
n=0
until [ -e {tmp_path}/undo.started ]; do
    n=$((n + 1)); [ $n -gt 300 ] && exit 9
    sleep 0.1
done
echo '{{"error": {{"type": "Bad", "message": "y failed", "retryable": false}}}}'
exit 1
""")
    rc, doc, _ = run_def(tmp_path, """\
name: fail-during-compensate-step
steps:
  - name: par
    type: parallel
    branches:
      - name: x
        steps:
          - name: a
            type: set
            vars: {a: 1}
            compensate: {type: task, queue: slowundo, retry: {max_attempts: 1}}
          - {name: undo, type: compensate}
      - name: y
        steps:
          - {name: wait, type: task, queue: waiter}
""", *sh_handler("slowundo", slow), *sh_handler("waiter", waiter), timeout=90)
    kill_our_sleep(tmp_path / "undo.sleeppid")
    assert rc == 1, doc
    assert doc["status"] == "failed"
    assert doc["error"]["type"] == "Bad" and doc["error"]["step"] == "par/y/wait", doc["error"]
    assert doc["compensation"]["status"] in ("completed", "failed"), doc["compensation"]
