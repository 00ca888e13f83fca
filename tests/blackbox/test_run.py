"""`wfo run`: the execution document, exit statuses, --input, usage errors,
progress on stderr (SPEC 3 and 5)."""

import json
import time

import pytest

from conftest import (
    DOC_KEYS, STEP_KEYS, run_def, run_doc, run_wfo, step, step_names, write_def,
)

TWO_SETS = """\
name: two-sets
steps:
  - {name: first, type: set, vars: {a: "${ .input.a }"}}
  - {name: second, type: set, vars: {b: "${ .vars.a + 1 }"}}
"""


def test_document_shape(tmp_path):
    """stdout is the execution document of SPEC 3 with every field, steps with theirs."""
    rc, doc, _ = run_def(tmp_path, TWO_SETS, input={"a": 1})
    assert rc == 0
    assert DOC_KEYS <= set(doc), DOC_KEYS - set(doc)
    assert doc["status"] == "completed"
    assert doc["workflow"] == "two-sets"
    assert isinstance(doc["id"], str) and doc["id"]
    assert isinstance(doc["namespace"], str) and doc["namespace"]
    assert isinstance(doc["version"], int) and not isinstance(doc["version"], bool)
    assert doc["version"] >= 1
    assert doc["input"] == {"a": 1}
    assert doc["output"] == {"b": 2}
    assert doc["error"] is None and doc["compensation"] is None and doc["parent"] is None
    for key in ("created_at", "updated_at", "finished_at"):
        assert isinstance(doc[key], str) and doc[key], key
    assert step_names(doc) == ["first", "second"]
    for s in doc["steps"]:
        assert STEP_KEYS <= set(s), STEP_KEYS - set(s)
        assert s["status"] == "completed" and s["attempts"] == 1 and s["error"] is None
        assert isinstance(s["started_at"], str) and isinstance(s["finished_at"], str)
    assert step(doc, "first")["output"] == {"a": 1}


def test_execution_context_id(tmp_path):
    """.execution.id and .execution.workflow in the context are the document's id and workflow."""
    rc, doc, _ = run_def(tmp_path, """\
name: ctx-id
steps:
  - {name: s, type: set, vars: {id: "${ .execution.id }", wf: "${ .execution.workflow }", v: "${ .execution.version }"}}
""")
    assert rc == 0
    assert doc["output"] == {"id": doc["id"], "wf": "ctx-id", "v": doc["version"]}


def test_each_run_is_a_new_execution(tmp_path):
    """Two runs of one definition are two executions with different ids."""
    path = write_def(tmp_path, TWO_SETS)
    _, d1, _ = run_doc(path, input={"a": 1})
    _, d2, _ = run_doc(path, input={"a": 1})
    assert d1["id"] != d2["id"]


def test_json_definition(tmp_path):
    """A definition may be JSON; it runs the same as YAML."""
    definition = {
        "name": "json-def",
        "output": "${ .vars }",
        "steps": [{"name": "s", "type": "set", "vars": {"x": "${ .input.x }", "y": [1, "two"]}}],
    }
    path = write_def(tmp_path, definition, name="wf.json")
    rc, doc, _ = run_doc(path, input={"x": "ex"})
    assert rc == 0 and doc["status"] == "completed"
    assert doc["output"] == {"x": "ex", "y": [1, "two"]}
    rc, out, err = run_wfo(["validate", path])
    assert rc == 0, out + err


def test_input_from_file(tmp_path):
    """--input @FILE reads the input JSON from a file."""
    (tmp_path / "in.json").write_text('{"a": 41, "nested": {"k": [true, null]}}')
    rc, doc, _ = run_doc(write_def(tmp_path, TWO_SETS), "--input", f"@{tmp_path / 'in.json'}")
    assert rc == 0
    assert doc["input"] == {"a": 41, "nested": {"k": [True, None]}}
    assert doc["output"] == {"b": 42}


@pytest.mark.parametrize("value", [[1, "x"], "text", 3.5, None])
def test_input_any_json(tmp_path, value):
    """--input takes any JSON value, kept as the execution's input."""
    rc, doc, _ = run_def(tmp_path, """\
name: any-input
steps:
  - {name: s, type: set, vars: {got: "${ .input }"}}
""", input=value)
    assert rc == 0
    assert doc["input"] == value and doc["output"] == {"got": value}


def test_failed_exit_1_and_document(tmp_path):
    """A failed execution exits 1 and still prints its document on stdout."""
    rc, doc, _ = run_def(tmp_path, """\
name: fails
steps:
  - {name: s, type: set, vars: {a: 1}}
  - {name: f, type: fail, error: {type: Nope, message: nope}}
""")
    assert rc == 1
    assert doc["status"] == "failed"
    assert doc["error"]["type"] == "Nope" and doc["error"]["message"] == "nope"
    assert doc["error"]["step"] == "f"
    assert isinstance(doc["finished_at"], str)


def test_progress_on_stderr(tmp_path):
    """Without a terminal, wfo run prints one stderr line per step transition (at least one per step)."""
    rc, doc, err = run_def(tmp_path, """\
name: progress
steps:
  - {name: p1, type: set, vars: {a: 1}}
  - {name: p2, type: set, vars: {a: 2}}
  - {name: p3, type: set, vars: {a: 3}}
""")
    assert rc == 0
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) >= 3, err
    for name in ("p1", "p2", "p3"):
        assert any(name in ln for ln in lines), f"no progress line names {name}:\n{err}"


def test_quiet_still_prints_document(tmp_path):
    """--quiet keeps the document on stdout and the exit status."""
    rc, doc, _ = run_doc(write_def(tmp_path, TWO_SETS), "--quiet", input={"a": 5})
    assert rc == 0 and doc["output"] == {"b": 6}


def test_default_store_in_memory(tmp_path):
    """Without --db the store is in memory: a run leaves no file behind in its directory."""
    work = tmp_path / "work"
    work.mkdir()
    path = write_def(work, TWO_SETS)
    rc, _, _ = run_doc(path, input={"a": 1}, cwd=work)
    assert rc == 0
    assert sorted(p.name for p in work.iterdir()) == ["wf.yaml"]


def test_sleep_not_early(tmp_path):
    """A 1s sleep never ends early: the run takes at least 1s and completes."""
    t0 = time.monotonic()
    rc, doc, _ = run_def(tmp_path, """\
name: sleep-1s
steps:
  - {name: nap, type: sleep, duration: 1s}
""")
    assert rc == 0 and step(doc, "nap")["status"] == "completed"
    assert time.monotonic() - t0 >= 0.95


def test_sleep_until(tmp_path):
    """sleep `until` (an RFC 3339 expression) waits for that time; a past time does not wait."""
    target = int(time.time()) + 2
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(target))
    t0 = time.monotonic()
    rc, doc, _ = run_def(tmp_path, """\
name: sleep-until
steps:
  - {name: past, type: sleep, until: "2001-02-03T04:05:06Z"}
  - {name: wake, type: sleep, until: "${ .input.t }"}
""", input={"t": until})
    elapsed = time.monotonic() - t0
    assert rc == 0, doc
    assert [s["status"] for s in doc["steps"]] == ["completed", "completed"]
    assert time.time() >= target - 0.05
    assert elapsed >= 0.95
    assert elapsed < 30


# ---- usage errors: exit 2 ----------------------------------------------------------

def test_usage_no_file():
    """`wfo run` without a FILE is a usage error (exit 2)."""
    rc, _, err = run_wfo(["run"])
    assert rc == 2 and err.strip()


def test_usage_unknown_flag(tmp_path):
    """An unknown flag is a usage error (exit 2)."""
    rc, _, err = run_wfo(["run", write_def(tmp_path, TWO_SETS), "--no-such-flag"])
    assert rc == 2 and err.strip()


@pytest.mark.parametrize("bad", ["{not json", "[1, 2", "{\"a\": }", "nul"])
def test_usage_bad_input_json(tmp_path, bad):
    """--input that is not JSON is a usage error (exit 2)."""
    rc, _, err = run_wfo(["run", write_def(tmp_path, TWO_SETS), "--input", bad])
    assert rc == 2 and err.strip()


def test_usage_input_file_missing(tmp_path):
    """--input @FILE with a FILE that does not exist is exit 2."""
    rc, _, err = run_wfo(["run", write_def(tmp_path, TWO_SETS), "--input", f"@{tmp_path}/nope.json"])
    assert rc == 2 and err.strip()


def test_usage_deep_input(tmp_path):
    """--input nested 100,000 arrays deep: taken (exit 0) or refused (exit 2), never a crash."""
    (tmp_path / "deep.json").write_text("[" * 100000 + "]" * 100000)
    path = write_def(tmp_path, "name: deep-input\nsteps:\n  - {name: s, type: set, vars: {a: 1}}\n")
    rc, _, err = run_wfo(["run", path, "--input", f"@{tmp_path / 'deep.json'}"])
    assert rc in (0, 2), err


def test_usage_handler_without_equals(tmp_path):
    """--handler needs QUEUE=COMMAND; without '=' it is a usage error (exit 2)."""
    rc, _, err = run_wfo(["run", write_def(tmp_path, TWO_SETS), "--handler", "justaqueue"])
    assert rc == 2 and err.strip()


def test_definition_error_exit_2(tmp_path):
    """An invalid definition is refused before running (exit 2), with a message on stderr."""
    marker = tmp_path / "ran"
    rc, out, err = run_wfo(["run", write_def(tmp_path, f"""\
name: Bad Name
steps:
  - {{name: a, type: exec, command: [/bin/touch, "{marker}"], retry: {{max_attempts: 1}}}}
  - {{name: b, type: set, vars: {{x: 1}}, next: nowhere}}
""")])
    assert rc == 2 and err.strip()
    assert not marker.exists()


def test_expression_compile_error_exit_2(tmp_path):
    """An expression that does not compile is a definition error, found before the run (exit 2)."""
    marker = tmp_path / "ran"
    rc, _, err = run_wfo(["run", write_def(tmp_path, f"""\
name: bad-expr
steps:
  - {{name: a, type: exec, command: [/bin/touch, "{marker}"], retry: {{max_attempts: 1}}}}
  - {{name: b, type: set, vars: {{x: "${{ .input | }}"}}}}
""")])
    assert rc == 2 and err.strip()
    assert not marker.exists()
