"""Executes the examples in docs/**/*.md (jq's build_mantests.py in spirit).

- A fenced block whose info string is `yaml wfo-run` is a workflow. Each
  HTML comment line `<!-- wfo-run: ARGS -> EXPECTATIONS -->` directly above
  it (one or more, each one run) gives the arguments of
  `$WFO_BIN run FILE --quiet ARGS` and what the execution document must
  hold. ARGS is split with shlex; EXPECTATIONS is a list of KEY=VALUE where
  KEY is `exit` or a dotted path into the document (`status`, `output`,
  `error.type`, `steps.NAME.attempts`: `steps.NAME` is the entry whose name
  is NAME, which may be a path such as `quote/hotel/price` or `each[1]/ship`)
  and VALUE is JSON when it reads as JSON, else a string. Without
  `exit=`, the exit status must be 0 for `completed` and 1 otherwise.
- A fenced block whose info string is `yaml wfo-validate-error` must make
  `$WFO_BIN validate FILE` exit 2, and the comment above it,
  `<!-- wfo-validate-error: PATH: MESSAGE -->`, gives the start of one of
  the `FILE: ...` lines on stderr.

docs/README.md describes the format for the people who write the docs.
$WFO_BIN defaults to ../../build/wfo relative to this file.
"""

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DOCS = ROOT / "docs"
WFO_BIN = Path(os.environ.get("WFO_BIN", HERE / ".." / ".." / "build" / "wfo")).resolve()

FENCE_RE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*(.*)$")
COMMENT_RE = re.compile(r"^\s*<!--\s*(wfo-run|wfo-validate-error):(.*?)-->\s*$")
# A key may hold a step path: steps.book/hotel/reserve.status, steps.each[2]/take:compensate.
KEY_RE = re.compile(r"[A-Za-z_][\w.\-/\[\]:]*=")
CRASH_RE = re.compile(
    r"AddressSanitizer|UndefinedBehaviorSanitizer|LeakSanitizer|runtime error:"
    r"|Segmentation fault|double free|stack smashing"
)
RUN_TIMEOUT = 120


class Example:
    """One thing to check: a block and one of the comments above it."""

    def __init__(self, kind, doc, line, text, spec, spec_line):
        self.kind = kind  # "wfo-run" or "wfo-validate-error"
        self.doc = doc  # path relative to docs/
        self.line = line  # 1-based line of the opening fence
        self.text = text  # the block's content
        self.spec = spec  # the comment's text after "KIND:", or None
        self.spec_line = spec_line

    @property
    def id(self):
        return f"{self.doc}:{self.line}"


def doc_files():
    return sorted(DOCS.rglob("*.md"))


def parse_doc(path):
    """Every wfo-run and wfo-validate-error block of one page, with its comments."""
    rel = path.relative_to(DOCS).as_posix()
    lines = path.read_text(encoding="utf-8").splitlines()
    found = []
    i = 0
    while i < len(lines):
        m = FENCE_RE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = m.group(1), m.group(2), m.group(3).split()
        start = i
        body = []
        i += 1
        while i < len(lines):
            close = FENCE_RE.match(lines[i])
            if close and close.group(2).startswith(fence[0] * len(fence)) and not close.group(3):
                break
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
            i += 1
        i += 1  # past the closing fence
        if len(info) < 2 or info[0] != "yaml" or info[1] not in ("wfo-run", "wfo-validate-error"):
            continue
        kind = info[1]
        specs = []
        j = start - 1
        while j >= 0:
            c = COMMENT_RE.match(lines[j])
            if not c:
                break
            if c.group(1) == kind:
                specs.append((c.group(2).strip(), j + 1))
            j -= 1
        specs.reverse()
        text = "\n".join(body) + "\n"
        if not specs:
            found.append(Example(kind, rel, start + 1, text, None, None))
        for spec, spec_line in specs:
            found.append(Example(kind, rel, start + 1, text, spec, spec_line))
    return found


def collect():
    out = []
    for p in doc_files():
        out.extend(parse_doc(p))
    # Several comments above one block: tell their ids apart.
    seen = {}
    for ex in out:
        seen[ex.id] = seen.get(ex.id, 0) + 1
    counts = {}
    ids = []
    for ex in out:
        if seen[ex.id] > 1:
            counts[ex.id] = counts.get(ex.id, 0) + 1
            ids.append(f"{ex.id}#{counts[ex.id]}")
        else:
            ids.append(ex.id)
    return out, ids


EXAMPLES, IDS = collect()
RUNS = [(e, i) for e, i in zip(EXAMPLES, IDS) if e.kind == "wfo-run"]
BAD = [(e, i) for e, i in zip(EXAMPLES, IDS) if e.kind == "wfo-validate-error"]


def split_arrow(spec):
    """ARGS -> EXPECTATIONS: the first ` -> ` outside shell quotes (or a leading `-> `)."""
    if spec.startswith("->"):
        return "", spec[2:]
    quote = None
    i = 0
    while i < len(spec):
        ch = spec[i]
        if quote == "'":
            if ch == "'":
                quote = None
        elif ch == "\\":
            i += 1
        elif quote == '"':
            if ch == '"':
                quote = None
        elif ch in "'\"":
            quote = ch
        elif spec.startswith(" -> ", i) or (spec.startswith(" ->", i) and i + 3 == len(spec)):
            return spec[:i], spec[i + 4:]
        i += 1
    raise ValueError(f"no ' -> ' between the arguments and the expectations in {spec!r}")


def parse_expectations(text):
    """`k=v k2=JSON ...` into a list of (key, value)."""
    dec = json.JSONDecoder()
    out = []
    i = 0
    n = len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            return out
        m = KEY_RE.match(text, i)
        if not m:
            raise ValueError(f"expected KEY=VALUE at {text[i:]!r}")
        key = m.group(0)[:-1]
        i = m.end()
        try:
            value, end = dec.raw_decode(text, i)
            if end < n and not text[end].isspace():
                raise ValueError("JSON followed by text")
            i = end
        except ValueError:
            end = i
            while end < n and not text[end].isspace():
                end += 1
            value = text[i:end]
            i = end
        out.append((key, value))


def lookup(doc, key):
    """A dotted path into the execution document; `steps.NAME` finds a step by name."""
    cur = doc
    parts = key.split(".")
    k = 0
    while k < len(parts):
        part = parts[k]
        if isinstance(cur, list):
            # steps.NAME: names may contain dots, so take the longest match.
            for end in range(len(parts), k, -1):
                name = ".".join(parts[k:end])
                hit = [s for s in cur if isinstance(s, dict) and s.get("name") == name]
                if hit:
                    cur = hit[0]
                    k = end
                    break
            else:
                names = [s.get("name") for s in cur if isinstance(s, dict)]
                raise KeyError(f"{key}: no entry named {part!r} (have {names})")
            continue
        if not isinstance(cur, dict) or part not in cur:
            raise KeyError(f"{key}: no {part!r} in {json.dumps(cur)[:300]}")
        cur = cur[part]
        k += 1
    return cur


def same(expected, actual):
    """JSON equality where a bool never equals a number and 2 equals 2.0."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    if isinstance(expected, dict):
        return (isinstance(actual, dict) and expected.keys() == actual.keys()
                and all(same(v, actual[k]) for k, v in expected.items()))
    if isinstance(expected, list):
        return (isinstance(actual, list) and len(expected) == len(actual)
                and all(same(e, a) for e, a in zip(expected, actual)))
    return expected == actual


def run(args, cwd, timeout=RUN_TIMEOUT):
    p = subprocess.run([str(WFO_BIN)] + args, cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    out = p.stdout.decode("utf-8", "replace")
    err = p.stderr.decode("utf-8", "replace")
    assert p.returncode >= 0, f"wfo died by signal {-p.returncode}; stderr:\n{err[-3000:]}"
    assert not CRASH_RE.search(err), f"crash report on stderr:\n{err[-3000:]}"
    return p.returncode, out, err


def need_binary():
    if not WFO_BIN.is_file() or not os.access(WFO_BIN, os.X_OK):
        pytest.skip(f"no wfo binary at {WFO_BIN} (set WFO_BIN)")


def write_block(tmp_path, ex):
    path = tmp_path / (Path(ex.doc).stem + f"-{ex.line}.yaml")
    path.write_text(ex.text, encoding="utf-8")
    return path


@pytest.mark.parametrize("ex", [e for e, _ in RUNS], ids=[i for _, i in RUNS])
def test_run_example(ex, tmp_path):
    """The workflow runs with `wfo run` and its document matches the comment."""
    assert ex.spec is not None, f"{ex.id}: no <!-- wfo-run: ARGS -> EXPECTATIONS --> above the block"
    need_binary()
    args_text, exp_text = split_arrow(ex.spec)
    args = shlex.split(args_text)
    expect = parse_expectations(exp_text)
    assert expect, f"{ex.id}: no expectations after ' -> '"
    path = write_block(tmp_path, ex)
    rc, out, err = run(["run", str(path), "--quiet"] + args, cwd=tmp_path)
    try:
        doc = json.loads(out)
    except ValueError:
        pytest.fail(f"{ex.id}: stdout is not one JSON document (exit {rc}):\n{out[:2000]}\n"
                    f"stderr:\n{err[-2000:]}")
    want_exit = None
    problems = []
    for key, value in expect:
        if key == "exit":
            want_exit = value
            continue
        try:
            actual = lookup(doc, key)
        except KeyError as e:
            problems.append(str(e))
            continue
        if not same(value, actual):
            problems.append(f"{key}: expected {json.dumps(value)}, got {json.dumps(actual)}")
    if want_exit is None:
        want_exit = 0 if doc.get("status") == "completed" else 1
    if rc != want_exit:
        problems.append(f"exit status {rc}, expected {want_exit}")
    assert not problems, (f"{ex.id} (comment at line {ex.spec_line}):\n  " + "\n  ".join(problems)
                          + f"\ndocument:\n{out[:3000]}\nstderr:\n{err[-1500:]}")


@pytest.mark.parametrize("ex", [e for e, _ in BAD], ids=[i for _, i in BAD])
def test_validate_error_example(ex, tmp_path):
    """`wfo validate` refuses the definition with the problem the comment names."""
    assert ex.spec, f"{ex.id}: no <!-- wfo-validate-error: PATH: MESSAGE --> above the block"
    need_binary()
    path = write_block(tmp_path, ex)
    rc, out, err = run(["validate", str(path)], cwd=tmp_path)
    assert rc == 2, f"{ex.id}: wfo validate exited {rc}, expected 2; stderr:\n{err}"
    want = f"{path}: {ex.spec}"
    assert any(line.startswith(want) for line in err.splitlines()), (
        f"{ex.id}: no stderr line starts with {want!r}; stderr:\n{err}")


# ---- checks that need no binary ----------------------------------------


def test_examples_found():
    """The docs hold executable examples, each with a comment saying what to expect."""
    assert len(RUNS) >= 20, f"only {len(RUNS)} wfo-run examples found"
    assert len(BAD) >= 5, f"only {len(BAD)} wfo-validate-error examples found"
    for ex, ident in RUNS + BAD:
        assert ex.spec, f"{ident}: the block has no comment above it"
        if ex.kind == "wfo-run":
            split_arrow(ex.spec)


@pytest.mark.parametrize("text, want", [
    ("status=completed output={\"n\": 3}", [("status", "completed"), ("output", {"n": 3})]),
    ("exit=1 error.type=Timeout steps.a.b.attempts=2",
     [("exit", 1), ("error.type", "Timeout"), ("steps.a.b.attempts", 2)]),
    ("output=\"a b\" x=null", [("output", "a b"), ("x", None)]),
    ("output=12abc", [("output", "12abc")]),
    ("steps.book/hotel/reserve.status=cancelled steps.each[2]/take:compensate.attempts=1",
     [("steps.book/hotel/reserve.status", "cancelled"), ("steps.each[2]/take:compensate.attempts", 1)]),
])
def test_parse_expectations(text, want):
    assert parse_expectations(text) == want


def test_split_arrow():
    assert split_arrow("-> status=completed") == ("", " status=completed")
    args, exp = split_arrow("--handler 'q=echo \"a -> b\"' -> status=failed")
    assert shlex.split(args) == ["--handler", 'q=echo "a -> b"'] and exp == "status=failed"
    with pytest.raises(ValueError):
        split_arrow("--input '{}'")


def test_lookup_steps_by_name():
    doc = {"status": "failed", "steps": [{"name": "a.b", "attempts": 2}, {"name": "c"}]}
    assert lookup(doc, "steps.a.b.attempts") == 2
    assert lookup(doc, "status") == "failed"
    with pytest.raises(KeyError):
        lookup(doc, "steps.zz.attempts")
    assert same(2, 2.0) and not same(1, True) and not same({"a": 1}, {"a": 1, "b": 2})


LINK_RE = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("page", doc_files(), ids=[p.relative_to(DOCS).as_posix() for p in doc_files()])
def test_links(page):
    """Every relative link of a page points at a file that exists (and an anchor it has)."""
    text = page.read_text(encoding="utf-8")
    bad = []
    for target in LINK_RE.findall(text):
        if re.match(r"[a-z]+:", target):
            continue
        file_part, _, anchor = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page
        if not dest.exists():
            bad.append(f"{target}: no such file")
            continue
        if anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(f"{target}: no heading with anchor #{anchor}")
    assert not bad, f"{page.relative_to(DOCS)}:\n  " + "\n  ".join(bad)


def anchors(md):
    """GitHub-style anchors of a page's headings."""
    out = set()
    in_fence = False
    for line in md.read_text(encoding="utf-8").splitlines():
        if FENCE_RE.match(line):
            in_fence = not in_fence
            continue
        if in_fence or not line.startswith("#"):
            continue
        title = line.lstrip("#").strip().lower()
        title = re.sub(r"[^\w\- ]", "", title)
        out.add(title.replace(" ", "-"))
    return out


def test_error_table_matches_errors_def():
    """interfaces/internal.md's table of error codes is errors.def, row for row."""
    rows = []
    for line in (ROOT / "include" / "wfo" / "errors.def").read_text().splitlines():
        m = re.match(r'X\((\w+),\s*"(\w+)",\s*"(\w+)",\s*(\d+),\s*"([^"]*)"\)', line)
        if m:
            rows.append((f"WFO_E{m.group(1)}", m.group(2), m.group(3), m.group(4), m.group(5)))
    assert rows, "no X(...) lines in errors.def"
    page = (DOCS / "interfaces" / "internal.md").read_text(encoding="utf-8")
    table = []
    for line in page.splitlines():
        m = re.match(r"\|\s*`(WFO_E\w+)`\s*\|\s*(\w+)\s*\|\s*(\w+)\s*\|\s*(\d+)\s*\|\s*([^|]*?)\s*\|$",
                     line)
        if m:
            table.append(m.groups())
    assert table == rows


def test_basic_example_is_the_file():
    """docs/examples/basic_workflow.md runs examples/basic_workflow.yaml as it is."""
    text = (ROOT / "examples" / "basic_workflow.yaml").read_text(encoding="utf-8")
    blocks = [e.text for e in EXAMPLES
              if e.doc == "examples/basic_workflow.md" and e.kind == "wfo-run"]
    assert text in blocks, "the wfo-run block of basic_workflow.md differs from the example file"
