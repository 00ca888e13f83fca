"""Server-side secrets (SPEC 2.1 `$secrets`, SPEC 6 `secrets:`): usable in
any template, and redacted wherever they could surface.

The canary test gives the server secrets from the config file (plain, a
file, an environment variable) and from WFO_SECRET_*, sends them to a tiny
local echo server that returns every header and the body, to an exec step
that prints them, in a failing step's error, a worker's output and a task's
input, and then greps the store file, every API answer, the history, the
page and the logs for the values.
"""

import http.server
import json
import subprocess
import threading

import pytest

from apiutil import WfoServer
from conftest import WFO_BIN, check_no_crash, write_def

CANARIES = {
    "PAYMENT_KEY": "canary-plain-9f8e7d6c5b",
    "FILE_KEY": "canary-file-1a2b3c4d5e",
    "ENV_KEY": "canary-env-0a9b8c7d6e",
    "WFO_KEY": "canary-wfoenv-5f4e3d2c1b",
}


class Echo(http.server.BaseHTTPRequestHandler):
    seen = []

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0") or 0)
        body = self.rfile.read(n).decode()
        Echo.seen.append((self.path, dict(self.headers), body))
        out = json.dumps({"headers": dict(self.headers), "body": body, "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.send_header("X-Echo", self.headers.get("Authorization", ""))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *a):
        pass


@pytest.fixture(scope="module")
def echo():
    s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    t = threading.Thread(target=s.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{s.server_address[1]}"
    s.shutdown()


def definition(echo_url):
    return {
        "name": "canary",
        "steps": [
            {"name": "call", "type": "http",
             "request": {"method": "POST", "url": "${ \"" + echo_url + "/charge?k=\" + $secrets.ENV_KEY }",
                         "headers": {"Authorization": "${ \"Bearer \" + $secrets.PAYMENT_KEY }"},
                         "body": {"file_key": "${ $secrets.FILE_KEY }", "amount": 5}}},
            {"name": "shell", "type": "exec",
             "command": ["sh", "-c", "echo \"$A $B\"; echo \"$A\" >&2; exit 0"],
             "env": {"A": "${ $secrets.WFO_KEY }", "B": "${ $secrets.PAYMENT_KEY }"}},
            {"name": "keep", "type": "set",
             "vars": {"copy": "${ $secrets.PAYMENT_KEY }", "all": "${ $secrets }"}},
            {"name": "ask", "type": "task", "queue": "canary-q",
             "input": {"key": "${ $secrets.FILE_KEY }"}},
            {"name": "unreachable", "type": "http",
             "request": {"url": "${ \"http://127.0.0.1:9/x?token=\" + $secrets.ENV_KEY }"},
             "retry": {"max_attempts": 1},
             "catch": [{"errors": ["*"], "next": "boom"}]},
            {"name": "never", "type": "succeed"},
            {"name": "boom", "type": "fail",
             "error": {"type": "Leaky", "message": "${ \"key=\" + $secrets.PAYMENT_KEY }",
                       "details": {"echoed": "${ .steps.call.output }"}}},
        ],
    }


def grep_all(text, where):
    for name, v in CANARIES.items():
        assert v not in text, f"secret {name} surfaced in {where}"


def test_canary_secrets_never_surface(tmp_path, echo):
    (tmp_path / "file_key").write_text(CANARIES["FILE_KEY"] + "\n")
    cfg = tmp_path / "wfo.yaml"
    cfg.write_text(
        "exec: {enabled: true}\n"
        "secrets:\n"
        f"  PAYMENT_KEY: {CANARIES['PAYMENT_KEY']}\n"
        f"  FILE_KEY: {{file: {tmp_path / 'file_key'}}}\n"
        "  ENV_KEY: {env: CANARY_ENV}\n")
    srv = WfoServer(tmp_path, args=["--config", str(cfg)],
                    env={"CANARY_ENV": CANARIES["ENV_KEY"], "WFO_SECRET_WFO_KEY": CANARIES["WFO_KEY"],
                         "WFO_LOG_LEVEL": "debug"})
    srv.launch()
    answers = []
    try:
        r = srv.put("/v1/workflows/canary", definition(echo))
        assert r.status == 201, r
        answers.append(r.text)
        r = srv.post("/v1/executions", {"workflow": "canary", "id": "canary-1",
                                        "input": {"note": "given " + CANARIES["PAYMENT_KEY"]}})
        assert r.status == 201, r
        answers.append(r.text)
        # the worker gets the task's input redacted, and echoes the secret back anyway
        tasks = srv.poll(["canary-q"], wait="20s")
        assert len(tasks) == 1, tasks
        answers.append(json.dumps(tasks))
        t = tasks[0]
        assert t["input"] == {"key": "[REDACTED]"}
        r = srv.post(f"/v1/tasks/{t['task_id']}/complete",
                     {"lease": t["lease"], "output": {"echo": CANARIES["FILE_KEY"]}})
        assert r.status == 200, r
        doc = srv.doc("canary-1", wait="20s")
        assert doc["status"] == "failed", doc
        for path in ["/v1/executions/canary-1", "/v1/executions/canary-1/history",
                     "/v1/executions", "/v1/workflows", "/v1/workflows/canary", "/", "/metrics"]:
            r = srv.get(path)
            assert r.status == 200, (path, r)
            answers.append(r.text)

        # the secrets did their work: the upstream and the command got them
        path, headers, body = Echo.seen[-1]
        assert headers["Authorization"] == "Bearer " + CANARIES["PAYMENT_KEY"]
        assert CANARIES["FILE_KEY"] in body and CANARIES["ENV_KEY"] in path
        steps = {s["name"]: s for s in doc["steps"]}
        assert steps["shell"]["output"]["stdout"] == "[REDACTED] [REDACTED]\n"
        assert steps["call"]["output"]["body"]["headers"]["Authorization"] == "Bearer [REDACTED]"
        assert steps["keep"]["output"]["copy"] == "[REDACTED]"
        assert steps["ask"]["output"] == {"echo": "[REDACTED]"}
        assert doc["error"]["message"] == "key=[REDACTED]"
        assert doc["input"] == {"note": "given [REDACTED]"}
        assert steps["unreachable"]["status"] == "caught"
    finally:
        assert srv.stop() == 0
    for i, text in enumerate(answers):
        grep_all(text, f"API answer {i}")
    grep_all(srv.stderr(), "the server's log")
    for f in tmp_path.glob("wfo.db*"):
        raw = f.read_bytes()
        for name, v in CANARIES.items():
            assert v.encode() not in raw, f"secret {name} is in the store file {f.name}"
    # the effective configuration names the secrets, never their values
    p = subprocess.run([str(WFO_BIN), "server", "--config", str(cfg), "--print-config"],
                       capture_output=True, env={"CANARY_ENV": CANARIES["ENV_KEY"],
                                                 "WFO_SECRET_WFO_KEY": CANARIES["WFO_KEY"]})
    check_no_crash(p.returncode, p.stderr.decode())
    assert p.returncode == 0, p.stderr
    c = json.loads(p.stdout)
    assert set(c["secrets"]) == set(CANARIES)
    grep_all(p.stdout.decode() + p.stderr.decode(), "--print-config")


def test_wfo_run_reads_wfo_secret_env(tmp_path):
    out = tmp_path / "got"
    d = write_def(tmp_path, {"name": "run-secret", "steps": [
        {"name": "e", "type": "exec", "command": ["sh", "-c", f"echo \"$K\" > {out}; echo \"$K\""],
         "env": {"K": "${ $secrets.API_KEY }"}}]})
    p = subprocess.run([str(WFO_BIN), "run", str(d)], capture_output=True,
                       env={"WFO_SECRET_API_KEY": "canary-run-7a6b5c4d3e", "PATH": "/usr/bin:/bin"})
    err = p.stderr.decode()
    check_no_crash(p.returncode, err)
    assert p.returncode == 0, err
    assert out.read_text().strip() == "canary-run-7a6b5c4d3e"
    assert "canary-run-7a6b5c4d3e" not in p.stdout.decode() + err
    assert json.loads(p.stdout)["steps"][0]["output"]["stdout"] == "[REDACTED]\n"


def test_a_secret_cut_short_in_an_error_never_surfaces(tmp_path):
    """jq's error names the value that failed by its first characters and
    "...": those are a secret too (SPEC 2.1), in the document, the history
    and the log."""
    secret = "zz-secret-Val-991"
    d = write_def(tmp_path, {"name": "cut", "steps": [
        {"name": "a", "type": "set", "vars": {"x": "${ $secrets.KEY + 1 }"}}]})
    p = subprocess.run([str(WFO_BIN), "run", str(d)], capture_output=True,
                       env={"WFO_SECRET_KEY": secret, "PATH": "/usr/bin:/bin"})
    out, err = p.stdout.decode(), p.stderr.decode()
    check_no_crash(p.returncode, err)
    doc = json.loads(out)
    assert doc["status"] == "failed", out
    assert doc["error"]["message"] == \
        "vars: jq: string ([REDACTED]) and number (1) cannot be added", doc["error"]
    assert "zz-secre" not in out + err

    srv = WfoServer(tmp_path, env={"WFO_SECRET_KEY": secret})
    srv.launch()
    try:
        assert srv.put("/v1/workflows/cut", {"name": "cut", "steps": [
            {"name": "a", "type": "set", "vars": {"x": "${ $secrets.KEY + 1 }"}}]}).status == 201
        r = srv.post("/v1/executions?wait=20s", {"workflow": "cut", "id": "cut-1"})
        assert r.status == 201 and r.json["status"] == "failed", r
        texts = [r.text, srv.get("/v1/executions/cut-1/history").text]
    finally:
        assert srv.stop() == 0
    texts.append(srv.stderr())
    assert "[REDACTED]" in texts[1]
    for t in texts:
        assert "zz-secre" not in t


@pytest.mark.parametrize("cfg,msg", [
    ("secrets: {X: abc}\n", "shorter than 4"),
    ("secrets: {bad-name: abcdefgh}\n", "is not a name"),
    ("secrets: {X: {env: WFO_NO_SUCH_VARIABLE_SET}}\n", "WFO_NO_SUCH_VARIABLE_SET"),
    ("secrets: {X: {file: /nonexistent/secret}}\n", "/nonexistent/secret"),
    ("secrets: {X: {vault: y}}\n", "expected a string, {file: PATH} or {env: VAR}"),
    ("secrets: [a]\n", "expected a mapping of NAME"),
])
def test_bad_secrets_refused(tmp_path, cfg, msg):
    f = tmp_path / "wfo.yaml"
    f.write_text(cfg)
    p = subprocess.run([str(WFO_BIN), "server", "--config", str(f), "--print-config"],
                       capture_output=True)
    err = p.stderr.decode()
    check_no_crash(p.returncode, err)
    assert p.returncode == 2, err
    assert msg in err and f"{f}: secrets" in err, err
