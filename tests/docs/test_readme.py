"""Runs the command block of README.md ("## Commands") as written, the way a
newcomer would paste it into a shell: from a directory that holds build/wfo
(the binary under test) and examples/, with the server's address moved to a
free port through WFO_LISTEN and WFO_SERVER so that the commands themselves
stay as written. Every command must exit 0, or what its comment says
("exits 1"); afterwards the store holds what the comments say."""

import os
import re
import socket
import sqlite3
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
WFO_BIN = Path(os.environ.get("WFO_BIN", ROOT / "build" / "wfo")).resolve()
CRASH_RE = re.compile(r"AddressSanitizer|UndefinedBehaviorSanitizer|LeakSanitizer|runtime error:")


def readme_block():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Commands", 1)[1]
    m = re.search(r"^```sh\n(.*?)^```", section, re.M | re.S)
    assert m, "README.md: no ```sh block under ## Commands"
    return m.group(1).splitlines()


def script(lines):
    """The block as a bash script that stops at the first command that fails."""
    out = ["set -u"]
    for n, line in enumerate(lines, 1):
        out.append(line)
        code, _, comment = line.partition(" #")
        code = code.strip()
        if not code or code.startswith("#") or re.search(r"&$", code):
            continue
        # a comment "exits N" says what the command answers (a failed execution)
        m = re.search(r"\bexits (\d+)", comment)
        want = m.group(1) if m else "0"
        out.append(f'rc=$?; [ $rc -eq {want} ] || {{ echo "README line {n} exited $rc" >&2;'
                   ' kill $(jobs -p) 2>/dev/null; wait; exit 1; }')
    out.append("wait")
    return "\n".join(out) + "\n"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_readme_commands_run_as_written(tmp_path):
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "wfo").symlink_to(WFO_BIN)
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WFO_")}
    env.update(WFO_LISTEN=f"127.0.0.1:{port}", WFO_SERVER=f"http://127.0.0.1:{port}")
    p = subprocess.run(["bash", "-c", script(readme_block())], cwd=tmp_path, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 0, err[-4000:]
    assert not CRASH_RE.search(err), err[-4000:]
    # the `wfo run --db` line kept its execution
    assert (tmp_path / "hello.db").exists()
    con = sqlite3.connect(tmp_path / "wfo.db")
    status = dict(con.execute("SELECT id, status FROM executions"))
    con.close()
    assert status["hello-1"] == "completed", status
    assert status["hello-2"] == "cancelled", status
    assert status["hello-3"] == "completed", status  # resumed, then waited for
    assert "hello-4" not in status, status  # deleted
    assert status["hello-5"] == "completed", status
    assert status["hello-6"] == "failed", status
