"""`wfo validate FILE...` (SPEC 5): one `FILE: PATH: MESSAGE` line per
problem, every problem at once, exit 2 when there is one, 0 otherwise; and
malformed or hostile files given to `validate` and `run` (exit 2, no crash)."""

import random

import pytest

from conftest import run_wfo, write_def

VALID = """\
name: ok-flow
steps:
  - {name: a, type: set, vars: {x: 1}}
  - {name: b, type: exec, command: [/bin/true]}
"""


def problems(path, out, err):
    """The (PATH, MESSAGE) pairs reported for FILE (stdout or stderr); the
    `FILE: ok` of a valid file (SPEC 5) is not a problem."""
    found = []
    prefix = f"{path}: "
    for line in (out + "\n" + err).splitlines():
        if line.startswith(prefix) and line != f"{path}: ok":
            rest = line[len(prefix):]
            p, _, msg = rest.partition(": ")
            found.append((p, msg))
    return found


def test_valid_exit_0(tmp_path):
    """A valid definition: exit 0 and no problem line."""
    path = write_def(tmp_path, VALID)
    rc, out, err = run_wfo(["validate", path])
    assert rc == 0, out + err
    assert problems(path, out, err) == []


def test_valid_durations_and_names(tmp_path):
    """Durations `1.5s 250ms 2h 1d 5m`, integer milliseconds, and a 128-character name are valid."""
    name = "a" + "b.c_d-9" * 18 + "x"
    assert len(name) == 128
    path = write_def(tmp_path, f"""\
name: {name}
timeout: 1d
steps:
  - name: a
    type: exec
    command: [/bin/true]
    timeout: 1.5s
    retry: {{max_attempts: 2, initial_interval: 250ms, max_interval: 2h, backoff: 1.5, jitter: 0.2}}
  - {{name: b, type: sleep, duration: 5m}}
  - {{name: c, type: sleep, duration: 1500}}
""")
    rc, out, err = run_wfo(["validate", path])
    assert rc == 0, out + err


# (definition, expected PATH, exact?) - exact paths are the field holding the bad value.
SINGLE = {
    "bad_name_chars": ("name: Order_Fulfilment\nsteps:\n  - {name: a, type: set, vars: {x: 1}}\n", "name", True),
    "name_leading_dash": ("name: -abc\nsteps:\n  - {name: a, type: set, vars: {x: 1}}\n", "name", True),
    "name_too_long": ("name: " + "a" * 129 + "\nsteps:\n  - {name: a, type: set, vars: {x: 1}}\n", "name", True),
    "name_missing": ("steps:\n  - {name: a, type: set, vars: {x: 1}}\n", "", False),
    "steps_not_list": ("name: x\nsteps: 5\n", "steps", False),
    "duplicate_step": ("name: x\nsteps:\n  - {name: a, type: set, vars: {x: 1}}\n"
                       "  - {name: a, type: set, vars: {x: 2}}\n", "steps[1].name", True),
    "unknown_type": ("name: x\nsteps:\n  - {name: a, type: teleport}\n", "steps[0].type", True),
    "type_missing": ("name: x\nsteps:\n  - {name: a, vars: {x: 1}}\n", "steps[0]", False),
    "step_name_missing": ("name: x\nsteps:\n  - {type: set, vars: {x: 1}}\n", "steps[0]", False),
    "task_no_queue": ("name: x\nsteps:\n  - {name: a, type: task}\n", "steps[0]", False),
    "max_attempts_zero": ("name: x\nsteps:\n  - {name: a, type: set, vars: {x: 1}}\n"
                          "  - {name: b, type: set, vars: {x: 1}}\n"
                          "  - {name: c, type: exec, command: [/bin/true], retry: {max_attempts: 0}}\n",
                          "steps[2].retry.max_attempts", True),
    "next_unknown": ("name: x\nsteps:\n  - {name: a, type: set, vars: {x: 1}, next: nowhere}\n",
                     "steps[0].next", True),
    "switch_case_next_unknown": ("name: x\nsteps:\n  - name: s\n    type: switch\n"
                                 "    cases: [{when: \"${ true }\", next: nowhere}]\n    default: s\n",
                                 "steps[0].cases[0].next", True),
    "switch_default_unknown": ("name: x\nsteps:\n  - name: s\n    type: switch\n"
                               "    cases: [{when: \"${ true }\", next: s}]\n    default: nowhere\n",
                               "steps[0].default", True),
    "catch_next_unknown": ("name: x\nsteps:\n  - name: a\n    type: exec\n    command: [/bin/true]\n"
                           "    catch: [{errors: [\"*\"], next: nowhere}]\n", "steps[0].catch[0].next", True),
    "bad_step_timeout": ("name: x\nsteps:\n  - {name: a, type: exec, command: [/bin/true], timeout: 5 parsecs}\n",
                         "steps[0].timeout", True),
    "bad_initial_interval": ("name: x\nsteps:\n  - {name: a, type: exec, command: [/bin/true], "
                             "retry: {initial_interval: fast}}\n", "steps[0].retry.initial_interval", True),
    "bad_workflow_timeout": ("name: x\ntimeout: 1 hour\nsteps:\n  - {name: a, type: set, vars: {x: 1}}\n",
                             "timeout", True),
    "bad_on_failure": ("name: x\non_failure: shrug\nsteps:\n  - {name: a, type: set, vars: {x: 1}}\n",
                       "on_failure", True),
    "expr_compile_error": ("name: x\nsteps:\n  - {name: a, type: set, vars: {v: \"${ .input | }\"}}\n",
                           "steps[0].vars", False),
    "if_compile_error": ("name: x\nsteps:\n  - {name: a, type: set, if: \"${ (( }\", vars: {x: 1}}\n",
                         "steps[0].if", True),
    "output_compile_error": ("name: x\noutput: \"${ .steps[ }\"\nsteps:\n  - {name: a, type: set, vars: {x: 1}}\n",
                             "output", True),
    "not_a_mapping": ("- just\n- a list\n", "", False),
}


@pytest.mark.parametrize("case", sorted(SINGLE))
def test_single_problem(tmp_path, case):
    """Each invalid definition exits 2 with a `FILE: PATH: MESSAGE` line at the field at fault."""
    text, want, exact = SINGLE[case]
    path = write_def(tmp_path, text)
    rc, out, err = run_wfo(["validate", path])
    assert rc == 2, out + err
    found = problems(path, out, err)
    assert found, f"no `{path}: PATH: MESSAGE` line in:\n{out}{err}"
    paths = [p for p, _ in found]
    if exact:
        assert want in paths, f"want path {want!r}, got {paths}"
        msg = dict(found)[want]
        assert msg.strip(), "empty message"
    else:
        assert any(p.startswith(want) for p in paths), f"want a path under {want!r}, got {paths}"


def test_several_problems_at_once(tmp_path):
    """Every problem of a file is reported in one go, one line each."""
    path = write_def(tmp_path, """\
name: Not Valid
steps:
  - {name: a, type: set, vars: {x: 1}, next: nowhere}
  - {name: b, type: exec, command: [/bin/true], retry: {max_attempts: 0}}
  - {name: c, type: teleport}
""")
    rc, out, err = run_wfo(["validate", path])
    assert rc == 2
    paths = [p for p, _ in problems(path, out, err)]
    for want in ("name", "steps[0].next", "steps[1].retry.max_attempts", "steps[2].type"):
        assert want in paths, f"{want!r} not in {paths}"


def test_several_files(tmp_path):
    """Several files: problems of each are reported under its name; a valid one gets none; exit 2."""
    good = write_def(tmp_path, VALID, name="good.yaml")
    bad1 = write_def(tmp_path, "name: x\nsteps:\n  - {name: a, type: teleport}\n", name="bad1.yaml")
    bad2 = write_def(tmp_path, "name: x\nsteps:\n  - {name: a, type: set, vars: {x: 1}, next: zz}\n",
                     name="bad2.yaml")
    rc, out, err = run_wfo(["validate", bad1, good, bad2])
    assert rc == 2
    assert [p for p, _ in problems(bad1, out, err)] == ["steps[0].type"]
    assert [p for p, _ in problems(bad2, out, err)] == ["steps[0].next"]
    assert problems(good, out, err) == []


def test_several_valid_files(tmp_path):
    """Several valid files: exit 0."""
    a = write_def(tmp_path, VALID, name="a.yaml")
    b = write_def(tmp_path, VALID.replace("ok-flow", "other"), name="b.yaml")
    rc, out, err = run_wfo(["validate", a, b])
    assert rc == 0, out + err


def test_missing_file_among_others(tmp_path):
    """A file that does not exist is a problem (exit 2) and the other files are still checked."""
    missing = tmp_path / "nope.yaml"
    bad = write_def(tmp_path, "name: x\nsteps:\n  - {name: a, type: teleport}\n", name="bad.yaml")
    rc, out, err = run_wfo(["validate", missing, bad])
    assert rc == 2
    assert str(missing) in out + err
    assert [p for p, _ in problems(bad, out, err)] == ["steps[0].type"]


# ---- malformed and hostile files ---------------------------------------------------

def make_malformed(tmp_path, kind):
    """Creates one malformed input; returns its path."""
    p = tmp_path / f"{kind}.yaml"
    if kind == "empty":
        p.write_bytes(b"")
    elif kind == "truncated":
        p.write_text("name: cut\nsteps:\n  - name: a\n    type: set\n    vars: {a: [1, 2")
    elif kind == "truncated_quote":
        p.write_text('name: cut\nsteps:\n  - name: "a\n')
    elif kind == "binary":
        p.write_bytes(b"\x00\xff\xfe" + random.Random(20240601).randbytes(65536))
    elif kind == "nested":
        p.write_text("[" * 100000)
    elif kind == "nested_closed":
        p.write_text("name: deep\nsteps: " + "[" * 100000 + "]" * 100000 + "\n")
    elif kind == "huge":
        with open(p, "w") as f:
            f.write("name: big\ndescription: \"")
            chunk = "a" * (1 << 20)
            for _ in range(50):
                f.write(chunk)
            f.write("\"\nsteps: 5\n")
    elif kind == "missing":
        pass
    elif kind == "directory":
        p = tmp_path / "adir"
        p.mkdir()
    elif kind == "bad_json":
        p = tmp_path / "bad.json"
        p.write_text('{"name": "x", "steps": [{"name": "a", "type": "set",')
    elif kind == "bad_utf8":
        p.write_bytes(b"name: caf\xc3\x28\nsteps:\n  - {name: a, type: set, vars: {x: \"\xff\xfe\"}}\n")
    else:
        raise AssertionError(kind)
    return p


MALFORMED = ["empty", "truncated", "truncated_quote", "binary", "nested", "nested_closed", "huge",
             "missing", "directory", "bad_json", "bad_utf8"]


@pytest.mark.parametrize("kind", MALFORMED)
def test_validate_malformed(tmp_path, kind):
    """Malformed/hostile file: `wfo validate` exits 2 with a message naming the file, no crash."""
    p = make_malformed(tmp_path, kind)
    rc, out, err = run_wfo(["validate", p], timeout=180)
    assert rc == 2, out[-2000:] + err[-2000:]
    assert str(p) in out + err
    # FILE: PATH: MESSAGE, PATH (root) for what is wrong with the whole file
    lines = [ln for ln in err.splitlines() if ln.startswith(f"{p}: ")]
    assert lines, err[-2000:]
    for ln in lines:
        path, _, msg = ln[len(f"{p}: "):].partition(": ")
        assert path == "(root)" or path.startswith("steps") or path in ("name", "description"), ln
        assert msg, ln


@pytest.mark.parametrize("kind", MALFORMED)
def test_run_malformed(tmp_path, kind):
    """Malformed/hostile file: `wfo run` exits 2 with a message on stderr, no crash."""
    p = make_malformed(tmp_path, kind)
    rc, out, err = run_wfo(["run", p], timeout=180)
    assert rc == 2, out[-2000:] + err[-2000:]
    assert err.strip()
