"""Data-driven cases for `wfo run`: every cases/*.yaml is a definition whose
leading comment says what to pass and what document to expect (see
cases/README.md). Adding a case adds no code."""

import json
import re

import pytest

from conftest import HERE, match, run_doc, run_wfo

CASES_DIR = HERE / "cases"
HEADER_RE = re.compile(r"#\s([a-z_]+):\s?(.*)$")


def load_case(path):
    """Parses the leading `# key: value` comment of a case file."""
    case = {"why": "", "input": None, "handler": [], "exit": 0, "expect": None}
    last = None
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        m = HEADER_RE.match(line)
        if m and not line.startswith("#  "):
            last, value = m.group(1), m.group(2)
            assert last in case, f"{path.name}: unknown key {last!r}"
            if last == "handler":
                case["handler"].append(value)
            else:
                case[last] = value
        elif last and last != "handler":
            case[last] += " " + line[1:].strip()
    for key in ("input", "expect"):
        if case[key] is not None:
            case[key] = json.loads(case[key])
    case["exit"] = int(case["exit"])
    assert case["why"], f"{path.name}: no `# why:` line"
    assert case["expect"] is not None, f"{path.name}: no `# expect:` line"
    return case


CASE_FILES = sorted(CASES_DIR.glob("*.yaml"))


@pytest.mark.parametrize("path", CASE_FILES, ids=[p.stem for p in CASE_FILES])
def test_case(path):
    """Runs one data case and matches its document and exit status."""
    case = load_case(path)
    args = []
    for h in case["handler"]:
        args += ["--handler", h]
    kw = {} if case["input"] is None else {"input": case["input"]}
    rc, doc, err = run_doc(path, *args, **kw)
    assert rc == case["exit"], f"exit {rc}, want {case['exit']}; doc={doc}\nstderr:\n{err[-2000:]}"
    match(case["expect"], doc)


@pytest.mark.nobinary
def test_cases_parse():
    """Every case file has a readable header (catches typos in the data even without a binary)."""
    assert CASE_FILES
    for path in CASE_FILES:
        load_case(path)


def test_validate_accepts_all_cases():
    """`wfo validate` exits 0 for many valid definitions at once, printing no problem line,
    only `FILE: ok` for each (SPEC 5)."""
    rc, out, err = run_wfo(["validate"] + CASE_FILES)
    assert rc == 0, out + err
    for path in CASE_FILES:
        lines = [ln for ln in (out + err).splitlines() if ln.startswith(f"{path}: ")]
        assert lines == [f"{path}: ok"], lines
