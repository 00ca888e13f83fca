"""wfo events tail and wfo subscriptions (SPEC 5): usage, and tail against a
Server-Sent Events server run by the test: each event's JSON on a line, a
dropped stream resumed with Last-Event-ID, SIGTERM ends it with exit 0."""
import http.server
import json
import os
import signal
import subprocess
import threading
import time

import pytest

WFO = os.environ.get("WFO_BIN", "build/wfo")


def run(*args, timeout=30):
    return subprocess.run([WFO, *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("cmd", ["events", "subscriptions"])
def test_help(cmd):
    r = run(cmd, "--help")
    assert r.returncode == 0
    assert r.stdout.startswith(f"usage: wfo {cmd} ")


@pytest.mark.parametrize("args,msg", [
    (["events"], "missing"),
    (["events", "follow"], "unknown subcommand 'follow'"),
    (["subscriptions", "add", "http://x"], "--types is required"),
    (["subscriptions", "add", "http://x", "--types", "a"], "--secret is required"),
    (["subscriptions", "list", "extra"], "too many arguments"),
    (["subscriptions", "delete"], "missing argument"),
    (["subscriptions", "list", "--secret", "s"], "only with 'subscriptions add'"),
])
def test_usage_errors(args, msg):
    r = run(*args)
    assert r.returncode == 2, r.stderr
    assert msg in r.stderr


def test_tail_without_a_server_says_why():
    r = run("events", "tail", "--server", "http://127.0.0.1:1")
    assert r.returncode == 1
    assert "wfo: " in r.stderr and "127.0.0.1:1" in r.stderr


class Stream(http.server.BaseHTTPRequestHandler):
    """First connection: events 1 and 2, then the stream ends. Second: what
    comes after Last-Event-ID (3), then stays open with keep-alives."""
    seen = []

    def do_GET(self):
        Stream.seen.append((self.path, self.headers.get("Last-Event-ID"),
                            self.headers.get("Accept")))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        events = {None: [1, 2], "2": [3]}.get(self.headers.get("Last-Event-ID"), [])
        for i in events:
            body = json.dumps({"id": str(i), "type": "order.paid", "data": {"n": i}})
            self.wfile.write(f": keep-alive\nid: {i}\nevent: order.paid\ndata: {body}\n\n"
                             .encode())
            self.wfile.flush()
        if self.headers.get("Last-Event-ID") == "2":
            for _ in range(100):
                time.sleep(0.1)
                try:
                    self.wfile.write(b": keep-alive\n")
                    self.wfile.flush()
                except OSError:
                    return

    def log_message(self, *a):
        pass


def test_tail_prints_events_and_resumes():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stream)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    Stream.seen = []
    p = subprocess.Popen([WFO, "events", "tail", "--types", "order.*", "--execution", "e 1",
                          "--server", f"http://127.0.0.1:{srv.server_address[1]}"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [p.stdout.readline() for _ in range(3)]
        got = [json.loads(x) for x in lines]
        assert [e["data"]["n"] for e in got] == [1, 2, 3]
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=10) == 0
    finally:
        if p.poll() is None:
            p.kill()
        srv.shutdown()
    assert Stream.seen[0] == ("/v1/events/stream?types=order.%2A&execution=e%201", None,
                              "text/event-stream")
    assert Stream.seen[1][1] == "2"  # resumed after the last event seen
