"""Errors, retries with backoff, per-attempt timeouts, catch, the transition
cap (SPEC 2.2, 2.3). Timing checks use coarse timestamps written by handler
scripts and only compare with generous margins."""

import json
import os
import signal
import subprocess
import time

import pytest

from conftest import HERE, pid_gone, read_lines, run_def, sh_handler, step, write_script

HERE_BIN = (HERE / ".." / ".." / "build" / "wfo").resolve()


def stamps_handler(tmp_path, fail_type=None):
    """A handler script that appends a timestamp per call and fails."""
    stamps = tmp_path / "stamps"
    if fail_type:
        tail = f"echo '{{\"error\": {{\"type\": \"{fail_type}\", \"message\": \"m\"}}}}'\nexit 1\n"
    else:
        tail = "echo failing >&2\nexit 1\n"
    script = write_script(tmp_path, "stamp.sh", f"date +%s.%N >> {stamps}\n{tail}")
    return script, stamps


def gaps(stamps):
    ts = [float(x) for x in read_lines(stamps)]
    return [b - a for a, b in zip(ts, ts[1:])]


def test_backoff_grows(tmp_path):
    """Delays follow initial_interval * backoff^(n-1): with 200ms and x3 the second gap (~600ms) exceeds the first (~200ms)."""
    script, stamps = stamps_handler(tmp_path)
    rc, doc, _ = run_def(tmp_path, """\
name: backoff-grows
steps:
  - name: t
    type: task
    queue: q
    retry: {max_attempts: 3, initial_interval: 200ms, backoff: 3.0, jitter: 0}
""", *sh_handler("q", script))
    assert rc == 1
    assert step(doc, "t")["attempts"] == 3
    g = gaps(stamps)
    assert len(g) == 2, g
    assert g[0] >= 0.18, g
    assert g[1] >= 0.55, g
    assert g[1] > g[0], g


def test_backoff_capped_by_max_interval(tmp_path):
    """max_interval caps the delay: 200ms x10 capped at 400ms gives gaps ~0.2, 0.4, 0.4 s, not 2 s and 20 s."""
    script, stamps = stamps_handler(tmp_path)
    t0 = time.monotonic()
    rc, doc, _ = run_def(tmp_path, """\
name: backoff-capped
steps:
  - name: t
    type: task
    queue: q
    retry: {max_attempts: 4, initial_interval: 200, backoff: 10, max_interval: 400ms, jitter: 0}
""", *sh_handler("q", script))
    assert rc == 1
    assert step(doc, "t")["attempts"] == 4
    g = gaps(stamps)
    assert len(g) == 3, g
    assert g[1] >= 0.35 and g[2] >= 0.35, g
    assert g[1] < 1.8 and g[2] < 1.8, g
    assert time.monotonic() - t0 < 15


def test_max_attempts_one_means_no_retry(tmp_path):
    """max_attempts: 1 runs the step once."""
    script, stamps = stamps_handler(tmp_path)
    rc, doc, _ = run_def(tmp_path, """\
name: no-retry
steps:
  - {name: t, type: task, queue: q, retry: {max_attempts: 1}}
""", *sh_handler("q", script))
    assert rc == 1
    assert step(doc, "t")["attempts"] == 1 and len(read_lines(stamps)) == 1


def test_non_retryable_type(tmp_path):
    """An error whose type is in non_retryable is not retried."""
    script, stamps = stamps_handler(tmp_path, fail_type="OutOfStock")
    rc, doc, _ = run_def(tmp_path, """\
name: non-retryable
steps:
  - name: t
    type: task
    queue: q
    retry: {max_attempts: 4, initial_interval: 10ms, non_retryable: [Other, OutOfStock]}
""", *sh_handler("q", script))
    assert rc == 1
    assert doc["error"]["type"] == "OutOfStock"
    assert step(doc, "t")["attempts"] == 1 and len(read_lines(stamps)) == 1


def test_other_type_still_retried(tmp_path):
    """A type not in non_retryable is retried up to max_attempts."""
    script, stamps = stamps_handler(tmp_path, fail_type="Flaky")
    rc, doc, _ = run_def(tmp_path, """\
name: retryable-type
steps:
  - name: t
    type: task
    queue: q
    retry: {max_attempts: 4, initial_interval: 10ms, non_retryable: [OutOfStock]}
""", *sh_handler("q", script))
    assert rc == 1
    assert doc["error"]["type"] == "Flaky"
    assert step(doc, "t")["attempts"] == 4 and len(read_lines(stamps)) == 4


def test_exec_default_retry(tmp_path):
    """exec steps get the default retry policy: 3 attempts, ~1s then ~2s apart, then ExecFailed."""
    count = tmp_path / "count"
    t0 = time.monotonic()
    rc, doc, _ = run_def(tmp_path, f"""\
name: exec-default-retry
steps:
  - name: e
    type: exec
    command: [/bin/sh, -c, "echo x >> {count}; exit 7"]
""")
    elapsed = time.monotonic() - t0
    assert rc == 1
    assert doc["error"]["type"] == "ExecFailed" and doc["error"]["step"] == "e"
    assert step(doc, "e")["attempts"] == 3
    assert len(read_lines(count)) == 3
    assert elapsed >= 2.6


def test_exec_success_after_retry(tmp_path):
    """An exec step that fails once then succeeds completes with attempts 2."""
    flag = tmp_path / "flag"
    rc, doc, _ = run_def(tmp_path, f"""\
name: exec-second-try
steps:
  - name: e
    type: exec
    command: [/bin/sh, -c, "if [ -e {flag} ]; then echo '{{\\"ok\\": true}}'; else touch {flag}; exit 1; fi"]
    retry: {{max_attempts: 3, initial_interval: 50ms}}
    output: ${{ .result.json }}
""")
    assert rc == 0, doc
    s = step(doc, "e")
    assert s["status"] == "completed" and s["attempts"] == 2 and s["output"] == {"ok": True}


def test_exec_result_fields(tmp_path):
    """exec's raw result has exit_code, stdout, stderr and json."""
    rc, doc, _ = run_def(tmp_path, """\
name: exec-fields
steps:
  - name: e
    type: exec
    command: [/bin/sh, -c, 'echo "{\\"n\\": 1}"; echo oops >&2']
""")
    assert rc == 0
    r = step(doc, "e")["output"]
    assert r["exit_code"] == 0
    assert r["stdout"].rstrip("\n") == '{"n": 1}'
    assert r["stderr"].rstrip("\n") == "oops"
    assert r["json"] == {"n": 1}


def test_exec_cwd(tmp_path):
    """exec runs in `cwd`."""
    d = tmp_path / "somewhere"
    d.mkdir()
    rc, doc, _ = run_def(tmp_path, f"""\
name: exec-cwd
steps:
  - name: e
    type: exec
    command: [/bin/pwd]
    cwd: "{d}"
    output: ${{ .result.stdout }}
""")
    assert rc == 0
    assert os.path.realpath(doc["output"].strip()) == os.path.realpath(d)


def test_exec_missing_program(tmp_path):
    """An exec of a program that does not exist fails the step (no crash, exit 1)."""
    rc, doc, _ = run_def(tmp_path, """\
name: exec-missing
steps:
  - name: e
    type: exec
    command: [/nonexistent/definitely-not-here]
    retry: {max_attempts: 1}
""")
    assert rc == 1
    assert doc["status"] == "failed" and step(doc, "e")["status"] == "failed"
    assert doc["error"]["step"] == "e"


def test_exec_timeout_kills_process_group(tmp_path):
    """An exec attempt past `timeout` fails with Timeout, promptly, and its whole process group (a grandchild sleep) is killed."""
    pidfile = tmp_path / "pid"
    t0 = time.monotonic()
    rc, doc, _ = run_def(tmp_path, f"""\
name: exec-timeout
steps:
  - name: slow
    type: exec
    command: [/bin/sh, -c, "sleep 313 & echo $! > {pidfile}; wait"]
    timeout: 500ms
    retry: {{max_attempts: 1}}
""")
    elapsed = time.monotonic() - t0
    pid = int(pidfile.read_text().strip()) if pidfile.exists() else None
    try:
        assert rc == 1
        assert doc["error"]["type"] == "Timeout" and doc["error"]["step"] == "slow"
        assert step(doc, "slow")["status"] == "failed" and step(doc, "slow")["attempts"] == 1
        assert elapsed < 20
        assert pid is not None
        assert pid_gone(pid), f"grandchild sleep {pid} survived the timeout"
    finally:
        if pid is not None and not pid_gone(pid, wait=0):
            os.kill(pid, signal.SIGKILL)


def test_timeout_is_per_attempt_and_retried(tmp_path):
    """`timeout` applies to each attempt; a Timeout is retried like other errors."""
    count = tmp_path / "count"
    rc, doc, _ = run_def(tmp_path, f"""\
name: timeout-retried
steps:
  - name: slow
    type: exec
    command: [/bin/sh, -c, "echo x >> {count}; exec sleep 30"]
    timeout: 300ms
    retry: {{max_attempts: 2, initial_interval: 50ms}}
""")
    assert rc == 1
    assert doc["error"]["type"] == "Timeout"
    assert step(doc, "slow")["attempts"] == 2
    assert len(read_lines(count)) == 2


def test_timeout_not_hit_by_fast_step(tmp_path):
    """A step that ends within its timeout completes normally."""
    rc, doc, _ = run_def(tmp_path, """\
name: timeout-ok
steps:
  - {name: quick, type: exec, command: [/bin/true], timeout: 20s}
""")
    assert rc == 0 and step(doc, "quick")["status"] == "completed"


def test_task_timeout(tmp_path):
    """A task whose handler runs past `timeout` fails with Timeout without waiting for the handler to finish."""
    pidfile = tmp_path / "pid"
    script = write_script(tmp_path, "slow.sh", f"echo $$ > {pidfile}\nexec sleep 40\n")
    t0 = time.monotonic()
    try:
        rc, doc, _ = run_def(tmp_path, """\
name: task-timeout
steps:
  - name: t
    type: task
    queue: q
    timeout: 500ms
    retry: {max_attempts: 1}
""", *sh_handler("q", script))
        assert rc == 1
        assert doc["error"]["type"] == "Timeout" and doc["error"]["step"] == "t"
        assert time.monotonic() - t0 < 25
    finally:
        if pidfile.exists():
            pid = int(pidfile.read_text().strip())
            if not pid_gone(pid, wait=0):
                os.kill(pid, signal.SIGKILL)


def test_catch_timeout(tmp_path):
    """A Timeout can be caught by type; the step is `caught` and the target runs."""
    rc, doc, _ = run_def(tmp_path, """\
name: catch-timeout
steps:
  - name: slow
    type: exec
    command: [/bin/sleep, "30"]
    timeout: 300ms
    retry: {max_attempts: 1}
    catch:
      - {errors: [Timeout], next: fallback}
  - {name: normal, type: set, vars: {path: normal}, end: true}
  - {name: fallback, type: set, vars: {path: fallback, err: "${ .error.type }"}}
""")
    assert rc == 0
    assert doc["output"] == {"path": "fallback", "err": "Timeout"}
    assert step(doc, "slow")["status"] == "caught"


def test_step_status_after_catch_then_continue(tmp_path):
    """After a catch target the flow continues in list order from the target; output is the last step's."""
    rc, doc, _ = run_def(tmp_path, """\
name: catch-continue
steps:
  - name: a
    type: exec
    command: [/bin/false]
    retry: {max_attempts: 1}
    catch: [{errors: ["*"], next: b}]
  - {name: b, type: set, vars: {x: 1}}
  - {name: c, type: set, vars: {why: 2}}
""")
    assert rc == 0
    assert [(s["name"], s["status"]) for s in doc["steps"]] == [
        ("a", "caught"), ("b", "completed"), ("c", "completed")]
    assert doc["output"] == {"why": 2}


def test_expression_error_message_and_step(tmp_path):
    """ExpressionError in an exec command template: one attempt despite retry, error.step names the step, command never runs."""
    marker = tmp_path / "ran"
    rc, doc, _ = run_def(tmp_path, f"""\
name: exec-expr-error
steps:
  - name: e
    type: exec
    command: [/bin/touch, "{marker}", "${{ .input.a.b.c }}"]
    retry: {{max_attempts: 3, initial_interval: 10ms}}
""", input={"a": 12})
    assert rc == 1
    assert doc["error"]["type"] == "ExpressionError" and doc["error"]["step"] == "e"
    assert isinstance(doc["error"]["message"], str) and doc["error"]["message"]
    assert step(doc, "e")["attempts"] == 1
    assert not marker.exists()


@pytest.mark.slow
def test_transition_limit(tmp_path):
    """An endless loop hits the transition cap (default 10,000) and fails with TransitionLimitExceeded."""
    rc, doc, _ = run_def(tmp_path, """\
name: endless
steps:
  - {name: init, type: set, vars: {cnt: 0}}
  - {name: spin, type: set, vars: {cnt: "${ .vars.cnt + 1 }"}, next: spin}
""", timeout=600)
    assert rc == 1
    assert doc["status"] == "failed"
    assert doc["error"]["type"] == "TransitionLimitExceeded"
    assert step_count(doc) == 2


def step_count(doc):
    return len(doc["steps"])


def test_long_loop_under_cap(tmp_path):
    """A loop of 200 rounds (well under the cap) completes with the right count."""
    rc, doc, _ = run_def(tmp_path, """\
name: long-loop
output: ${ .vars.cnt }
steps:
  - {name: init, type: set, vars: {cnt: 0}}
  - {name: bump, type: set, vars: {cnt: "${ .vars.cnt + 1 }"}}
  - name: check
    type: switch
    cases: [{when: "${ .vars.cnt < 200 }", next: bump}]
    default: done
  - {name: done, type: succeed, output: "${ .vars.cnt }"}
""", timeout=120)
    assert rc == 0
    assert doc["output"] == 200
    assert [s["name"] for s in doc["steps"]] == ["init", "bump", "check", "done"]


def test_exec_large_stdin_not_read(tmp_path):
    """An exec command that never reads its 3 MB stdin still completes (exit_code 0)."""
    (tmp_path / "in.json").write_text(json.dumps({"s": "x" * 3_000_000}))
    rc, doc, _ = run_def(tmp_path, """\
name: exec-ignores-stdin
steps:
  - {name: e, type: exec, command: [/bin/true], retry: {max_attempts: 1}}
""", "--input", f"@{tmp_path / 'in.json'}")
    assert rc == 0
    assert step(doc, "e")["output"]["exit_code"] == 0


def test_exec_stdout_1mb_intact(tmp_path):
    """1 MB of exec stdout comes back whole."""
    rc, doc, _ = run_def(tmp_path, """\
name: exec-big-stdout
steps:
  - name: e
    type: exec
    command: [/usr/bin/python3, -c, "import sys; sys.stdout.write('y' * 1000000)"]
    output: ${ .result.stdout | length }
""")
    assert rc == 0 and doc["output"] == 1000000


def test_retry_past_the_transition_cap(tmp_path):
    """A retry of an execution that hit the transition cap goes on from the
    step it was about to enter, with the whole cap again (SPEC 2.4: a failed
    execution is retried); one that failed only evaluating the workflow's
    output has nothing to run again: 409 that says so."""
    from apiutil import WfoServer
    srv = WfoServer(tmp_path, env={"WFO_TRANSITIONS": "20"})
    srv.launch()
    try:
        srv.put_workflow({"name": "capped", "steps": [
            {"name": "spin", "type": "set", "vars": {"n": "${ (.vars.n // 0) + 1 }"}},
            {"name": "again", "type": "switch",
             "cases": [{"when": "${ .vars.n < 15 }", "next": "spin"}], "default": "done"},
            {"name": "done", "type": "succeed", "output": "${ .vars.n }"}]})
        e = srv.start_exec("capped")
        d = srv.wait_status(e["id"], "failed")
        assert d["error"]["type"] == "TransitionLimitExceeded", d
        r = srv.post(f"/v1/executions/{e['id']}/retry")
        assert r.status == 200, r
        d = srv.wait_status(e["id"], "completed")
        assert d["output"] == 15, d  # went on: .vars.n kept, 10 + 5 rounds
        hist = srv.get(f"/v1/executions/{e['id']}/history").json
        assert len([h for h in hist if h["type"] == "execution.retried"]) == 1, hist
        srv.put_workflow({"name": "bad-output", "output": "${ error(\"no\") }",
                          "steps": [{"name": "a", "type": "set", "vars": {"x": 1}}]})
        e = srv.start_exec("bad-output")
        d = srv.wait_status(e["id"], "failed")
        assert d["error"]["type"] == "ExpressionError" and d["error"]["step"] is None, d
        r = srv.post(f"/v1/executions/{e['id']}/retry")
        assert r.status == 409 and "after its last step" in r.error["message"], r
        r = srv.post(f"/v1/executions/{e['id']}/retry", {"from": "a"})
        assert r.status == 200, r
        assert srv.wait_status(e["id"], "failed")["error"]["type"] == "ExpressionError"
    finally:
        srv.stop()


# Values that crash or hang libjq 1.6 inside one C call (SPEC 2.1: a run-time
# failure fails the step with ExpressionError; SPEC 4: never a crash).
JQ_HOSTILE = [
    ("${ .input.t | todate }", {"t": 1e20}, "time out of range"),
    ("${ .input.a % .input.b }", {"a": -9223372036854775808, "b": -1}, "beyond 64-bit"),
    ("${ .input.fmt as $f | 0 | strftime($f) }", {"fmt": 5}, "string format"),
    ("${ .input.n as $n | .input.s | indices($n) }", {"s": "x", "n": ""}, "empty string"),
    ("${ (.input.i | tonumber) as $i | [1, 2] | delpaths([[$i]]) }", {"i": "nan"}, "NaN"),
    ("${ .input.b | @base64d }", {"b": "aGkAdGhlcmU="}, "NUL character"),
    # no wrapper reaches these: libjq's crash is caught (expr.c I7)
    ("${ .input.s[(.input.f | tonumber):] }", {"s": "abc", "f": "nan"}, "SIGABRT"),
    ("${ [.input.s | splits(\"\")] }", {"s": "\u00e9"}, "SIGSEGV"),
]


@pytest.mark.parametrize("expr,inp,why", JQ_HOSTILE)
def test_values_that_break_libjq_fail_the_step(tmp_path, expr, inp, why):
    # the release build: an ASan build reports what libjq leaks when its
    # crash is caught (expr.c I7), which a run's exit status would show
    release = HERE_BIN
    d = json.dumps({"name": "hostile", "steps": [
        {"name": "ok", "type": "set", "vars": {"n": 1}},
        {"name": "bad", "type": "set", "vars": {"v": expr}}]})
    (tmp_path / "wf.json").write_text(d)
    p = subprocess.run([str(release), "run", str(tmp_path / "wf.json"), "--quiet",
                        "--input", json.dumps(inp)], capture_output=True, timeout=60)
    assert p.returncode == 1, (p.returncode, p.stderr[-2000:])
    doc = json.loads(p.stdout)
    assert doc["status"] == "failed", doc
    assert doc["error"]["type"] == "ExpressionError" and doc["error"]["step"] == "bad", doc
    assert why in doc["error"]["message"], doc


def test_a_server_survives_values_that_break_libjq(tmp_path):
    """The server stays up, the execution fails, and a restart recovers
    the store (an abort used to repeat at every recovery)."""
    from apiutil import WfoServer
    srv = WfoServer(tmp_path)
    srv.launch()
    try:
        srv.put_workflow({"name": "hostile-srv", "steps": [
            {"name": "nap", "type": "sleep", "duration": "300ms"},
            {"name": "a", "type": "set", "vars": {"when": "${ .input.t | todate }"}}]})
        e = srv.start_exec("hostile-srv", {"t": 1e20})
        d = srv.wait_status(e["id"], "failed")
        assert d["error"]["type"] == "ExpressionError", d
        assert srv.get("/healthz").status == 200
        assert srv.stop() == 0
        srv.launch()
        assert srv.doc(e["id"])["status"] == "failed"
        ok = srv.start_exec("hostile-srv", {"t": 1700000000})
        assert srv.wait_status(ok["id"], "completed")["steps"][1]["output"] == \
            {"when": "2023-11-14T22:13:20Z"}
    finally:
        srv.stop()
