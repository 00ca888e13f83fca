"""`wfo run --db`: the execution is kept in a SQLite file, and a kill -9 in
the middle of a run leaves a sound database that holds the execution
(SPEC 1, 3 "Guarantees", 5). Schema-agnostic: only the SQLite file format,
PRAGMA integrity_check and the presence of known values are assumed."""

import os
import signal
import sqlite3
import subprocess
import threading
import time
import uuid

import pytest

from conftest import WFO_BIN, check_no_crash, run_doc, run_wfo, write_def


def db_contains(db_path, needle):
    """True when some cell of some table of DB_PATH contains NEEDLE (text or blob)."""
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for t in tables:
            for row in con.execute(f'SELECT * FROM "{t}"'):
                for cell in row:
                    if isinstance(cell, bytes):
                        cell = cell.decode("utf-8", "ignore")
                    if isinstance(cell, str) and needle in cell:
                        return True
        return False
    finally:
        con.close()


def integrity(db_path):
    con = sqlite3.connect(str(db_path))
    try:
        return [r[0] for r in con.execute("PRAGMA integrity_check")]
    finally:
        con.close()


SIMPLE = """\
name: kept-flow
steps:
  - {name: a, type: set, vars: {tag: "${ .input.tag }"}}
"""


@pytest.mark.parametrize("scheme", ["sqlite:", ""])
def test_db_keeps_execution(tmp_path, scheme):
    """`--db sqlite:PATH` (or a bare path) leaves a valid SQLite file holding the execution id."""
    db = tmp_path / "wfo.db"
    tag = uuid.uuid4().hex
    rc, doc, _ = run_doc(write_def(tmp_path, SIMPLE), "--db", f"{scheme}{db}", input={"tag": tag})
    assert rc == 0 and doc["output"] == {"tag": tag}
    assert db.is_file()
    assert integrity(db) == ["ok"]
    assert db_contains(db, doc["id"])


def test_db_reused_by_second_run(tmp_path):
    """A second run on the same --db file works and both executions are in it."""
    db = tmp_path / "wfo.db"
    path = write_def(tmp_path, SIMPLE)
    rc1, d1, _ = run_doc(path, "--db", f"sqlite:{db}", input={"tag": "one"})
    rc2, d2, _ = run_doc(path, "--db", f"sqlite:{db}", input={"tag": "two"})
    assert rc1 == 0 and rc2 == 0
    assert d1["id"] != d2["id"]
    assert integrity(db) == ["ok"]
    assert db_contains(db, d1["id"]) and db_contains(db, d2["id"])


def test_db_keeps_failed_execution(tmp_path):
    """A failed run is kept too."""
    db = tmp_path / "wfo.db"
    rc, doc, _ = run_doc(write_def(tmp_path, """\
name: kept-failure
steps:
  - {name: f, type: fail, error: {type: Boom, message: kept}}
"""), "--db", f"sqlite:{db}")
    assert rc == 1 and doc["status"] == "failed"
    assert integrity(db) == ["ok"]
    assert db_contains(db, doc["id"])


def test_db_unusable_path(tmp_path):
    """A --db path that cannot be opened (its directory does not exist) fails without a crash and without completing."""
    rc, out, err = run_wfo(["run", write_def(tmp_path, SIMPLE), "--db",
                            f"sqlite:{tmp_path}/no/such/dir/wfo.db", "--input", "{}"])
    assert rc != 0, out
    assert err.strip()


@pytest.mark.slow
def test_kill_9_mid_run(tmp_path):
    """kill -9 during a `sleep 30s` after a committed `set`: integrity_check ok, the execution and the set's output are in the file."""
    db = tmp_path / "crash.db"
    token = "tok" + uuid.uuid4().hex
    path = write_def(tmp_path, """\
name: crash-kill-nine
steps:
  - {name: first, type: set, vars: {stamp: "${ .input.token + \\"-first-done\\" }"}}
  - {name: nap, type: sleep, duration: 30s}
  - {name: last, type: set, vars: {after: true}}
""")
    proc = subprocess.Popen(
        [str(WFO_BIN), "run", str(path), "--db", f"sqlite:{db}", "--input", f'{{"token": "{token}"}}'],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    lines = []

    def reader():
        for raw in proc.stderr:
            lines.append(raw.decode("utf-8", "replace"))

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        # Wait for a progress line about the sleep step (it has begun), or 3 s at most.
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and not any("nap" in ln for ln in lines):
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        time.sleep(0.5)
        assert proc.poll() is None, f"wfo run ended before the kill (rc={proc.returncode}):\n{''.join(lines)}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    t.join(timeout=5)
    assert proc.returncode == -signal.SIGKILL
    check_no_crash(0, "".join(lines))
    assert db.is_file()
    assert integrity(db) == ["ok"]
    assert db_contains(db, token), "the execution (its input) is not in the database"
    assert db_contains(db, f"{token}-first-done"), "the first step's committed output is not in the database"
