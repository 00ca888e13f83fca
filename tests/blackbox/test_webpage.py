"""The web page at / (SPEC 7): one HTML file that drives the API from the
browser. Checked here: it is served as HTML, its script parses, and every
API call it makes answers for a real execution."""

import re
import shutil
import subprocess

import pytest

from apiutil import WfoServer


def test_page_is_served_and_its_calls_answer(tmp_path):
    """GET / is HTML whose script parses; the list, document, history and definition calls it makes work."""
    srv = WfoServer(tmp_path)
    srv.launch()
    try:
        r = srv.get("/")
        assert r.status == 200
        assert r.headers["content-type"].startswith("text/html")
        page = r.text
        for needle in ("/v1/executions?", "/history", "/versions/", "cancel", "retry", "pause",
                       "resume", "f-status", "f-workflow"):
            assert needle in page, needle
        script = re.search(r"<script>(.*)</script>", page, re.S).group(1)
        node = shutil.which("node")
        if node:
            js = tmp_path / "page.js"
            js.write_text(script)
            p = subprocess.run([node, "--check", str(js)], capture_output=True, text=True)
            assert p.returncode == 0, p.stderr
        srv.put_workflow({"name": "web", "steps": [{"name": "s", "type": "set", "vars": {"a": 1}}]})
        ex = srv.start_exec("web", {"x": 1})["id"]
        assert srv.doc(ex, wait="5s")["status"] == "completed"
        assert srv.get("/v1/executions?limit=50&status=completed").status == 200
        assert srv.get(f"/v1/executions/{ex}/history").status == 200
        assert srv.get("/v1/workflows/web/versions/1").json["definition"]["name"] == "web"
    finally:
        srv.stop()
