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
