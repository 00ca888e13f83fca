"""Values taken from the context are snapshots (SPEC 2.1): a later change of
.vars or .steps does not reach back into what an earlier step stored."""

from conftest import run_def


def test_vars_and_steps_are_snapshots(tmp_path):
    """A step that stores .vars and .steps keeps them as they were then."""
    rc, doc, _ = run_def(tmp_path, """\
name: snapshots
steps:
  - {name: a, type: set, vars: {x: 1}}
  - {name: b, type: set, vars: {snap: "${ .vars }", steps_then: "${ .steps | keys }"}}
  - {name: c, type: set, vars: {x: 2}}
  - {name: d, type: set, vars: {}, output: "${ .vars }"}
""")
    assert rc == 0, doc
    assert doc["output"]["x"] == 2
    assert doc["output"]["snap"] == {"x": 1}
    assert doc["output"]["steps_then"] == ["a", "b"]
    b = [s for s in doc["steps"] if s["name"] == "b"][0]
    assert b["output"]["snap"] == {"x": 1}


def test_vars_and_request_may_be_one_expression(tmp_path):
    """Every data field is a template (SPEC 2.1): `vars` (and `request`)
    may be one expression; a value of the wrong kind fails the step with
    ExpressionError when it starts, not the definition."""
    rc, doc, _ = run_def(tmp_path, """\
name: whole
steps:
  - {name: a, type: set, vars: "${ {n: 1, from: .input.k} }"}
  - {name: b, type: set, vars: "${ {n: (.vars.n + 1)} }", output: "${ .vars }"}
""", input={"k": "in"})
    assert rc == 0, doc
    assert doc["output"] == {"n": 2, "from": "in"}, doc
    rc, doc, _ = run_def(tmp_path, """\
name: whole-bad
steps:
  - {name: a, type: set, vars: "${ [1] }"}
""")
    assert rc == 1, doc
    assert doc["error"]["type"] == "ExpressionError" and doc["error"]["step"] == "a", doc
    assert "vars" in doc["error"]["message"], doc
    rc, doc, _ = run_def(tmp_path, """\
name: whole-http
steps:
  - {name: h, type: http, request: "${ 5 }", retry: {max_attempts: 1}}
""")
    assert rc == 1, doc
    assert doc["error"]["type"] == "HttpError" and "request" in doc["error"]["message"], doc
