"""The CLI points of issue 14 (SPEC 5), black-box: `--help` on every command,
`wfo --version`, `wfo get ID --wait`, what `wfo workflow put` says it did, a
missing version named as such, the "more" hint of `wfo list` keeping its
filters, `wfo validate`'s `FILE: ok` and `WFO_QUEUE` for worker commands.
The README's commands are run as written by tests/docs/test_readme.py.
"""

import json
import re
import shlex
import threading
import time
from pathlib import Path

import pytest

from conftest import run_on_a_terminal, run_wfo, write_def
from test_cli_client import (EXEC_DOC, fake, put_workflow, server,  # noqa: F401 - fixtures
                             wfo, wfo_json)
from test_worker import PY, py, start_worker, workers  # noqa: F401 - fixture

ROOT = Path(__file__).resolve().parent.parent.parent

COMMANDS = ["run", "validate", "server", "worker", "workflow", "start", "get", "list",
            "history", "cancel", "terminate", "pause", "resume", "retry", "signal", "emit",
            "queues"]


@pytest.mark.parametrize("cmd", COMMANDS)
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_every_command_answers_help(cmd, flag):
    """`wfo COMMAND --help`: its usage on stdout, nothing on stderr, exit 0."""
    rc, out, err = run_wfo([cmd, flag], env={"WFO_SERVER": "http://127.0.0.1:1"})
    assert rc == 0, (rc, out, err)
    assert out.startswith(f"usage: wfo {cmd}"), out
    assert err == ""


@pytest.mark.parametrize("argv", [["run", "x.yaml", "--help"], ["validate", "a.yaml", "--help"],
                                  ["worker", "--queue", "q", "--help"]])
def test_help_after_arguments(argv):
    rc, out, err = run_wfo(argv)
    assert rc == 0 and out.startswith(f"usage: wfo {argv[0]}"), (rc, out, err)


def test_global_help_lists_every_command():
    rc, out, err = run_wfo(["--help"])
    assert rc == 0
    for cmd in COMMANDS:
        assert f"wfo {cmd}" in out, cmd
    assert "wfo --version" in out


def test_version():
    rc, out, err = run_wfo(["--version"])
    assert rc == 0 and err == ""
    assert re.fullmatch(r"wfo \d+\.\d+\.\d+\S*\n", out), out


def test_usage_error_prints_the_same_usage():
    """A usage error prints on stderr the usage that --help prints on stdout (one text)."""
    for cmd in ("run", "validate", "worker", "start", "get"):
        _, help_out, _ = run_wfo([cmd, "--help"])
        rc, out, err = run_wfo([cmd], env={"WFO_SERVER": "http://127.0.0.1:1"})
        assert rc == 2, (cmd, rc, err)
        assert help_out.strip() in err, (cmd, err)


# ------------------------------------------------------------ validate ---

def test_validate_ok_on_stderr(tmp_path):
    good = write_def(tmp_path, "name: fine\nsteps:\n  - {name: a, type: set, vars: {x: 1}}\n")
    bad = write_def(tmp_path, "name: bad\nsteps:\n  - {name: a, type: nope}\n", "bad.yaml")
    rc, out, err = run_wfo(["validate", good])
    assert rc == 0 and out == ""
    assert err == f"{good}: ok\n"
    rc, out, err = run_wfo(["validate", good, bad])
    assert rc == 2
    assert f"{good}: ok\n" in err
    assert f"{bad}: ok" not in err and f"{bad}: steps[0]" in err


# ---------------------------------------------------- against a fake one ---

def test_list_more_hint_keeps_filters(fake):
    """With --table, the "more" line is a command that gets the next page of the same list."""
    page = {"executions": [dict(EXEC_DOC, id="exec-aaa", workflow="alpha", status="failed")],
            "next_cursor": "CUR123"}
    fake.answer("GET", "/v1/executions", (200, page))
    rc, text = run_on_a_terminal(["list", "--workflow", "it's alpha", "--status", "failed",
                                  "--limit", "1", "--table"], env={"WFO_SERVER": fake.url})
    assert rc == 0
    more = [ln for ln in text.splitlines() if ln.startswith("more:")]
    assert len(more) == 1, text
    argv = shlex.split(more[0][len("more:"):])
    assert argv[:3] == ["wfo", "list", "--table"]
    argv = argv[:2] + argv[3:]
    opts = dict(zip(argv[2::2], argv[3::2]))
    assert opts == {"--workflow": "it's alpha", "--status": "failed", "--limit": "1",
                    "--cursor": "CUR123"}, more[0]


def test_get_wait_sends_the_wait(fake):
    fake.answer("GET", "/v1/executions/e-1", (200, dict(EXEC_DOC, status="completed")))
    doc = wfo_json(["get", "e-1", "--wait", "10s"], fake.url)
    assert doc["status"] == "completed"
    paths = [r["path"] for r in fake.requests]
    assert len(paths) == 1 and paths[0].startswith("/v1/executions/e-1?wait="), paths


def test_get_wait_bad_duration(fake):
    rc, out, err = wfo(["get", "e-1", "--wait", "soon"], fake.url)
    assert rc == 2 and "--wait" in err
    assert fake.requests == []


# ------------------------------------------------ against `wfo server` ---

TASK = """\
name: edges-task
steps:
  - {name: work, type: task, queue: edges-q, retry: {max_attempts: 1}}
"""


def test_workflow_put_says_what_it_did(server, tmp_path):  # noqa: F811
    path = write_def(tmp_path, TASK)
    rc, out, err = wfo(["workflow", "put", path], server.url)
    assert rc == 0 and json.loads(out)["version"] == 1
    assert "new version 1" in err, err
    rc, out, err = wfo(["workflow", "put", path], server.url)
    assert rc == 0 and json.loads(out)["version"] == 1
    assert "unchanged" in err and "version 1" in err, err
    path2 = write_def(tmp_path, TASK.replace("max_attempts: 1", "max_attempts: 2"), "v2.yaml")
    rc, out, err = wfo(["workflow", "put", path2], server.url)
    assert rc == 0 and "new version 2" in err, err


def test_start_missing_version_names_the_version(server, tmp_path):  # noqa: F811
    put_workflow(tmp_path, server.url, TASK)
    rc, out, err = wfo(["start", "edges-task", "--version", "9"], server.url)
    assert rc == 1 and out == ""
    assert "404" in err and "version 9" in err, err
    assert "workflow 'edges-task' not found" not in err
    rc, out, err = wfo(["start", "no-such-wf", "--version", "9"], server.url)
    assert rc == 1 and "not found" in err


def test_get_wait_until_it_ends(server, tmp_path):  # noqa: F811
    """`wfo get ID --wait 30s` answers once the execution has ended; a short wait answers
    with the running document."""
    put_workflow(tmp_path, server.url, TASK)
    doc = wfo_json(["start", "edges-task"], server.url)
    t0 = time.monotonic()
    rc, out, err = wfo(["get", doc["id"], "--wait", "700ms"], server.url)
    assert rc == 0 and json.loads(out)["status"] == "running"
    assert time.monotonic() - t0 >= 0.6

    def finish():
        time.sleep(1.0)
        tasks = server.poll(["edges-q"], wait="5s")
        assert tasks
        server.post(f"/v1/tasks/{tasks[0]['task_id']}/complete",
                    {"lease": tasks[0]["lease"], "output": {"ok": True}})

    th = threading.Thread(target=finish)
    th.start()
    t0 = time.monotonic()
    rc, out, err = wfo(["get", doc["id"], "--wait", "30s"], server.url)
    th.join()
    assert rc == 0, err
    assert json.loads(out)["status"] == "completed"
    assert time.monotonic() - t0 < 20


def test_worker_command_gets_its_queue(server, tmp_path, workers):  # noqa: F811
    put_workflow(tmp_path, server.url, """\
name: edges-env
steps:
  - {name: a, type: task, queue: edges-env-q}
""")
    script = py(tmp_path, "q.py", 'print(json.dumps(os.environ.get("WFO_QUEUE")))\n')
    start_worker(workers, tmp_path, server.url, ["other-q", "edges-env-q"], [PY, script])
    doc = wfo_json(["start", "edges-env", "--wait"], server.url)
    assert doc["status"] == "completed" and doc["output"] == "edges-env-q", doc


def test_run_handler_gets_its_queue(tmp_path):
    path = write_def(tmp_path, """\
name: run-env
steps:
  - {name: a, type: task, queue: alpha}
  - {name: b, type: task, queue: beta, input: "${ .steps.a.output }"}
""")
    cmd = "printf '\"%s\"' \"$WFO_QUEUE\""
    rc, out, err = run_wfo(["run", path, "--quiet", "--handler", f"alpha={cmd}",
                            "--handler", f"beta={cmd}"])
    assert rc == 0, err
    doc = json.loads(out)
    assert [s["output"] for s in doc["steps"]] == ["alpha", "beta"]


