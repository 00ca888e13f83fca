"""`task` steps run by `wfo run --handler QUEUE=COMMAND`: the worker-command
protocol of SPEC 5 (stdin, environment, exit status, stdout, stderr)."""

import json
import time

from conftest import handler, read_lines, run_def, run_wfo, sh_handler, step, write_def, write_script

ENV_DUMP = (
    "/usr/bin/python3 -c 'import json, os; print(json.dumps({k: os.environ.get(k) for k in "
    "[\"WFO_TASK_ID\", \"WFO_EXECUTION_ID\", \"WFO_STEP\", \"WFO_ATTEMPT\", \"WFO_IDEMPOTENCY_KEY\"]}))'"
)


def test_envelope_environment(tmp_path):
    """The handler sees WFO_TASK_ID, WFO_EXECUTION_ID, WFO_STEP, WFO_ATTEMPT and WFO_IDEMPOTENCY_KEY = EXECUTION_ID/STEP."""
    rc, doc, _ = run_def(tmp_path, """\
name: envelope
steps:
  - {name: first, type: set, vars: {a: 1}}
  - {name: reserve, type: task, queue: env}
""", *handler("env", ENV_DUMP))
    assert rc == 0, doc
    env = step(doc, "reserve")["output"]
    assert env["WFO_EXECUTION_ID"] == doc["id"]
    assert env["WFO_STEP"] == "reserve"
    assert env["WFO_ATTEMPT"] == "1"
    assert env["WFO_IDEMPOTENCY_KEY"] == f"{doc['id']}/reserve"
    assert env["WFO_TASK_ID"]


def test_default_input_is_workflow_input(tmp_path):
    """A task without `input` gets the context's input (the workflow input) on stdin."""
    rc, doc, _ = run_def(tmp_path, """\
name: default-input
steps:
  - {name: t, type: task, queue: q}
""", *handler("q", "cat"), input={"order": 7, "items": ["a", "b"]})
    assert rc == 0
    assert doc["output"] == {"order": 7, "items": ["a", "b"]}


def test_stderr_ignored_on_success(tmp_path):
    """Exit 0: stdout alone is the output, stderr noise does not matter."""
    script = write_script(tmp_path, "h.sh", 'echo "some log line" >&2\necho \'{"ok": 1}\'\n')
    rc, doc, _ = run_def(tmp_path, """\
name: stderr-noise
steps:
  - {name: t, type: task, queue: q}
""", *sh_handler("q", script))
    assert rc == 0 and doc["output"] == {"ok": 1}


def test_large_output(tmp_path):
    """A handler may return a large JSON value (1 MB string) and it comes back intact."""
    script = write_script(tmp_path, "big.sh",
                          "/usr/bin/python3 -c 'import json; print(json.dumps({\"s\": \"x\" * 1000000}))'\n")
    rc, doc, _ = run_def(tmp_path, """\
name: large-output
output: ${ .steps.t.output.s | length }
steps:
  - {name: t, type: task, queue: q}
""", *sh_handler("q", script))
    assert rc == 0 and doc["output"] == 1000000


def test_missing_handler_refused_before_run(tmp_path):
    """A task whose queue has no handler is refused before the run starts: exit 2, stderr names the queue, no step ran."""
    marker = tmp_path / "ran"
    rc, out, err = run_wfo(["run", write_def(tmp_path, f"""\
name: no-handler
steps:
  - {{name: a, type: exec, command: [/bin/touch, "{marker}"], retry: {{max_attempts: 1}}}}
  - {{name: b, type: task, queue: billing-queue-7}}
""")])
    assert rc == 2
    assert "billing-queue-7" in err
    assert not marker.exists()


def test_missing_one_of_two_handlers(tmp_path):
    """With a handler for one queue but not the other, the message names the missing queue."""
    rc, out, err = run_wfo(["run", write_def(tmp_path, """\
name: one-missing
steps:
  - {name: a, type: task, queue: served}
  - {name: b, type: task, queue: unserved-q}
""")] + handler("served", "cat"))
    assert rc == 2
    assert "unserved-q" in err


def test_command_failed_last_stderr_line(tmp_path):
    """Non-zero exit: CommandFailed with the last stderr line as message; retried like any error."""
    count = tmp_path / "count"
    script = write_script(tmp_path, "h.sh", f"""\
echo x >> {count}
echo "first line" >&2
echo "disk on fire" >&2
exit 4
""")
    rc, doc, _ = run_def(tmp_path, """\
name: command-failed
steps:
  - name: t
    type: task
    queue: q
    retry: {max_attempts: 2, initial_interval: 50ms}
""", *sh_handler("q", script))
    assert rc == 1
    assert doc["status"] == "failed"
    assert doc["error"]["type"] == "CommandFailed"
    assert doc["error"]["message"] == "disk on fire"
    assert doc["error"]["step"] == "t"
    s = step(doc, "t")
    assert s["status"] == "failed" and s["attempts"] == 2
    assert len(read_lines(count)) == 2


def test_error_object_on_stdout(tmp_path):
    """Non-zero exit with {"error": {type, message}} on stdout fails the task with that type and message."""
    script = write_script(tmp_path, "h.sh", """\
echo '{"error": {"type": "OutOfStock", "message": "sku A1 sold out"}}'
echo "ignored" >&2
exit 1
""")
    rc, doc, _ = run_def(tmp_path, """\
name: error-object
steps:
  - name: t
    type: task
    queue: q
    retry: {max_attempts: 1}
""", *sh_handler("q", script))
    assert rc == 1
    assert doc["error"]["type"] == "OutOfStock"
    assert doc["error"]["message"] == "sku A1 sold out"
    assert doc["error"]["step"] == "t"


def test_error_not_retryable(tmp_path):
    """A worker error marked retryable: false is not retried (attempts 1) whatever max_attempts says."""
    count = tmp_path / "count"
    script = write_script(tmp_path, "h.sh", f"""\
echo x >> {count}
echo '{{"error": {{"type": "Invalid", "message": "bad card", "retryable": false}}}}'
exit 1
""")
    rc, doc, _ = run_def(tmp_path, """\
name: not-retryable
steps:
  - name: t
    type: task
    queue: q
    retry: {max_attempts: 5, initial_interval: 10ms}
""", *sh_handler("q", script))
    assert rc == 1
    assert doc["error"]["type"] == "Invalid"
    assert step(doc, "t")["attempts"] == 1
    assert len(read_lines(count)) == 1


def test_error_retryable_true_is_retried(tmp_path):
    """A worker error with retryable: true is retried up to max_attempts."""
    count = tmp_path / "count"
    script = write_script(tmp_path, "h.sh", f"""\
echo x >> {count}
echo '{{"error": {{"type": "Busy", "message": "try later", "retryable": true}}}}'
exit 1
""")
    rc, doc, _ = run_def(tmp_path, """\
name: retryable
steps:
  - name: t
    type: task
    queue: q
    retry: {max_attempts: 3, initial_interval: 10ms}
""", *sh_handler("q", script))
    assert rc == 1
    assert doc["error"]["type"] == "Busy" and doc["error"]["message"] == "try later"
    assert step(doc, "t")["attempts"] == 3
    assert len(read_lines(count)) == 3


def test_exit_zero_stdout_is_output_even_if_error_shaped(tmp_path):
    """SPEC 5: on exit 0 stdout is the output; an {"error": ...} object there is just data."""
    rc, doc, _ = run_def(tmp_path, """\
name: exit0-error-shape
steps:
  - {name: t, type: task, queue: q}
""", *handler("q", """echo '{"error": {"type": "X", "message": "m"}}'"""))
    assert rc == 0
    assert doc["output"] == {"error": {"type": "X", "message": "m"}}


def test_attempt_counter_and_success_on_third(tmp_path):
    """WFO_ATTEMPT counts 1, 2, 3; the step completes on attempt 3 with that attempt's output; the idempotency key stays the same."""
    log = tmp_path / "log"
    script = write_script(tmp_path, "h.sh", f"""\
echo "$WFO_ATTEMPT $WFO_IDEMPOTENCY_KEY" >> {log}
if [ "$WFO_ATTEMPT" -lt 3 ]; then echo "not yet $WFO_ATTEMPT" >&2; exit 1; fi
echo "{{\\"attempt\\": $WFO_ATTEMPT}}"
""")
    rc, doc, _ = run_def(tmp_path, """\
name: third-time
steps:
  - name: t
    type: task
    queue: q
    retry: {max_attempts: 5, initial_interval: 20ms, backoff: 1.0}
""", *sh_handler("q", script))
    assert rc == 0, doc
    s = step(doc, "t")
    assert s["status"] == "completed" and s["attempts"] == 3
    assert s["output"] == {"attempt": 3}
    lines = log.read_text().splitlines()
    assert [ln.split()[0] for ln in lines] == ["1", "2", "3"]
    assert {ln.split()[1] for ln in lines} == {f"{doc['id']}/t"}


def test_task_default_retry_policy(tmp_path):
    """Without `retry`, a task gets the default policy: 3 attempts, delays ~1s then ~2s (±10%)."""
    count = tmp_path / "count"
    script = write_script(tmp_path, "h.sh", f"echo x >> {count}\necho nope >&2\nexit 1\n")
    t0 = time.monotonic()
    rc, doc, _ = run_def(tmp_path, """\
name: default-retry
steps:
  - {name: t, type: task, queue: q}
""", *sh_handler("q", script))
    elapsed = time.monotonic() - t0
    assert rc == 1
    assert step(doc, "t")["attempts"] == 3
    assert len(read_lines(count)) == 3
    assert elapsed >= 2.6
    assert elapsed < 30


def test_catch_worker_error(tmp_path):
    """A worker error type can be caught; the target sees the worker's message at .error."""
    script = write_script(tmp_path, "h.sh", """\
echo '{"error": {"type": "OutOfStock", "message": "none left", "retryable": false}}'
exit 2
""")
    rc, doc, _ = run_def(tmp_path, """\
name: catch-worker
steps:
  - name: reserve
    type: task
    queue: q
    catch:
      - {errors: [OutOfStock], next: sorry}
  - {name: ship, type: set, vars: {shipped: true}, end: true}
  - {name: sorry, type: set, vars: {msg: "${ .error.message }", type: "${ .error.type }"}}
""", *sh_handler("q", script))
    assert rc == 0
    assert doc["status"] == "completed"
    assert doc["output"] == {"msg": "none left", "type": "OutOfStock"}
    assert [s["name"] for s in doc["steps"]] == ["reserve", "sorry"]
    assert step(doc, "reserve")["status"] == "caught"
    assert step(doc, "reserve")["attempts"] == 1


def test_expression_error_in_task_input_never_calls_handler(tmp_path):
    """A task whose input template fails gets ExpressionError after one attempt, and the handler never runs."""
    count = tmp_path / "count"
    script = write_script(tmp_path, "h.sh", f"echo x >> {count}\ncat\n")
    rc, doc, _ = run_def(tmp_path, """\
name: task-expr-error
steps:
  - name: t
    type: task
    queue: q
    input: {v: "${ .input.a.b.c }"}
    retry: {max_attempts: 4, initial_interval: 10ms}
""", *sh_handler("q", script), input={"a": 1})
    assert rc == 1
    assert doc["error"]["type"] == "ExpressionError"
    assert step(doc, "t")["attempts"] == 1
    assert not count.exists()


def test_large_input_handler_ignores_stdin(tmp_path):
    """A handler that exits without reading a 3 MB input still completes the task (wfo survives the closed pipe)."""
    (tmp_path / "in.json").write_text(json.dumps({"s": "x" * 3_000_000}))
    rc, doc, _ = run_def(tmp_path, """\
name: ignores-stdin
steps:
  - {name: t, type: task, queue: q}
""", "--input", f"@{tmp_path / 'in.json'}", *handler("q", "true"))
    assert rc == 0
    assert step(doc, "t")["status"] == "completed" and doc["output"] is None


def test_command_failed_last_line_without_newline(tmp_path):
    """The CommandFailed message is the last stderr line even when stderr does not end with a newline."""
    rc, doc, _ = run_def(tmp_path, """\
name: last-line
steps:
  - {name: t, type: task, queue: q, retry: {max_attempts: 1}}
""", *handler("q", "printf 'early\\nfinal words' >&2; exit 9"))
    assert rc == 1
    assert doc["error"]["type"] == "CommandFailed" and doc["error"]["message"] == "final words"
