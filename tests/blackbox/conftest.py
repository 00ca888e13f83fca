"""Black-box helpers for `wfo run` and `wfo validate` (SPEC 2, 3, 5).

The tests check the contract in /work/shared/SPEC.md from outside: they run
the binary named by $WFO_BIN (default ../../build/wfo from this directory) and
look only at exit codes, stdout, stderr and files. Nothing here knows how wfo
is written.
"""

import json
import os
import re
import shlex
import subprocess
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
WFO_BIN = Path(os.environ.get("WFO_BIN", HERE / ".." / ".." / "build" / "wfo")).resolve()

# What a crash or a sanitizer report looks like on stderr.
CRASH_RE = re.compile(
    r"AddressSanitizer|UndefinedBehaviorSanitizer|LeakSanitizer|ThreadSanitizer"
    r"|MemorySanitizer|\.[ch]:\d+:\d+: runtime error:|Segmentation fault|SEGV|double free"
    r"|stack smashing"
)

DOC_KEYS = {
    "id", "namespace", "workflow", "version", "status", "input", "output", "error",
    "compensation", "steps", "created_at", "updated_at", "finished_at", "parent",
}
STEP_KEYS = {"name", "status", "attempts", "input", "output", "error", "started_at", "finished_at"}


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    config.addinivalue_line("markers", "nobinary: does not run wfo")
    config.addinivalue_line(
        "markers", "sqlite_only(reason): reads, locks or breaks the SQLite file itself; "
        "skipped under WFO_TEST_DB=postgres")


@pytest.fixture(autouse=True)
def _sqlite_only(request):
    m = request.node.get_closest_marker("sqlite_only")
    if m and os.environ.get("WFO_TEST_DB", "sqlite") == "postgres":
        pytest.skip("SQLite only: " + (m.args[0] if m.args else "uses the SQLite file"))


@pytest.fixture(autouse=True)
def _need_binary(request):
    if request.node.get_closest_marker("nobinary"):
        return
    if not WFO_BIN.is_file() or not os.access(WFO_BIN, os.X_OK):
        pytest.skip(f"no wfo binary at {WFO_BIN} (set WFO_BIN)")


def check_no_crash(rc, stderr):
    """A run may fail, but never by a signal or with a sanitizer report."""
    assert rc >= 0, f"wfo died by signal {-rc}; stderr:\n{stderr[-4000:]}"
    m = CRASH_RE.search(stderr)
    assert m is None, f"crash/sanitizer report on stderr:\n{stderr[-4000:]}"


def run_wfo(args, input=None, timeout=60, cwd=None, env=None):
    """Runs `wfo ARGS...`; returns (rc, stdout, stderr) as text.

    Asserts that wfo did not crash (signal, sanitizer report)."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    p = subprocess.run(
        [str(WFO_BIN)] + [str(a) for a in args],
        input=input.encode() if isinstance(input, str) else input,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=timeout,
        cwd=cwd,
        env=full_env,
    )
    out = p.stdout.decode("utf-8", "replace")
    err = p.stderr.decode("utf-8", "replace")
    check_no_crash(p.returncode, err)
    return p.returncode, out, err


def write_def(tmp_path, text, name="wf.yaml"):
    """Writes a definition (YAML/JSON text, or a dict written as JSON)."""
    path = Path(tmp_path) / name
    if not isinstance(text, str):
        text = json.dumps(text)
    path.write_text(text)
    return path


def write_script(tmp_path, name, body):
    """Writes an executable /bin/sh script and returns its path."""
    path = Path(tmp_path) / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def handler(queue, command):
    """The `--handler QUEUE=COMMAND` pair."""
    return ["--handler", f"{queue}={command}"]


def sh_handler(queue, script, *args):
    return handler(queue, " ".join(shlex.quote(str(x)) for x in ("/bin/sh", script) + args))


NO_INPUT = object()


def run_doc(def_path, *args, input=NO_INPUT, timeout=60, cwd=None, env=None):
    """`wfo run DEF [--input JSON] ARGS...`; returns (rc, doc, stderr).

    stdout must be exactly one JSON execution document (SPEC 5); each step
    path appears once in `steps` (SPEC 3: listed in the order first reached)."""
    argv = ["run", def_path]
    if input is not NO_INPUT:
        argv += ["--input", json.dumps(input)]
    argv += list(args)
    rc, out, err = run_wfo(argv, timeout=timeout, cwd=cwd, env=env)
    try:
        doc = json.loads(out)
    except ValueError:
        pytest.fail(f"stdout is not one JSON document (rc={rc}):\n{out[:2000]}\nstderr:\n{err[-2000:]}")
    assert isinstance(doc, dict), doc
    assert isinstance(doc.get("steps"), list), doc
    names = [s.get("name") for s in doc["steps"]]
    assert len(names) == len(set(names)), f"a step path is listed twice: {names}"
    return rc, doc, err


def run_on_a_terminal(args, env=None, timeout=30):
    """Runs `wfo ARGS...` with stdout on a pseudo-terminal; returns (rc,
    what it printed there)."""
    import pty
    master, slave = pty.openpty()
    p = subprocess.Popen([str(WFO_BIN)] + [str(a) for a in args], stdout=slave,
                         stderr=subprocess.PIPE, env=dict(os.environ, **(env or {})))
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    p.wait(timeout=timeout)
    os.close(master)
    return p.returncode, out.decode()


def run_def(tmp_path, text, *args, **kw):
    """write_def + run_doc."""
    return run_doc(write_def(tmp_path, text), *args, **kw)


def step(doc, name):
    """The entry of `steps` whose name is NAME."""
    found = [s for s in doc["steps"] if s.get("name") == name]
    assert len(found) == 1, f"step {name!r} in {[s.get('name') for s in doc['steps']]}"
    return found[0]


def step_names(doc):
    return [s["name"] for s in doc["steps"]]


def match(expected, actual, path="$"):
    """Asserts ACTUAL matches EXPECTED: objects by the expected keys only,
    arrays element by element with the same length, scalars equal (a bool
    never equals a number)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: expected an object, got {actual!r}"
        for k, v in expected.items():
            assert k in actual, f"{path}: no key {k!r} in {actual!r}"
            match(v, actual[k], f"{path}.{k}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"{path}: expected an array, got {actual!r}"
        assert len(actual) == len(expected), f"{path}: expected {len(expected)} items, got {actual!r}"
        for i, (e, a) in enumerate(zip(expected, actual)):
            match(e, a, f"{path}[{i}]")
    elif isinstance(expected, bool) or expected is None:
        assert actual is expected, f"{path}: expected {expected!r}, got {actual!r}"
    else:
        assert not isinstance(actual, bool) and actual == expected, (
            f"{path}: expected {expected!r}, got {actual!r}")


def read_lines(path):
    p = Path(path)
    return p.read_text().split() if p.exists() else []


def pid_gone(pid, wait=5.0):
    """True when process PID is gone (or a zombie, or no longer `sleep`) within WAIT s."""
    deadline = time.monotonic() + wait
    while True:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
            if state in ("Z", "X") or b"sleep" not in cmd:
                return True
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
