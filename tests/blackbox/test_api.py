"""`wfo server`: every endpoint of SPEC 4 and the statuses it answers, over
real HTTP. The malformed-input table is test_api_malformed.py; the
configuration is test_server_config.py."""

import re
import threading
import time

import pytest

from apiutil import FakeWorker, WfoServer, server, set_workflow, task_workflow, unique  # noqa: F401
from conftest import DOC_KEYS, STEP_KEYS

# The routes of SPEC 4's table: (method, path pattern).
SPEC_ROUTES = [
    ("PUT", "/v1/workflows/{name}"),
    ("GET", "/v1/workflows"),
    ("GET", "/v1/workflows/{name}"),
    ("GET", "/v1/workflows/{name}/versions/{version}"),
    ("POST", "/v1/executions"),
    ("GET", "/v1/executions/{id}"),
    ("GET", "/v1/executions"),
    ("GET", "/v1/executions/{id}/history"),
    ("POST", "/v1/executions/{id}/cancel"),
    ("POST", "/v1/executions/{id}/terminate"),
    ("POST", "/v1/executions/{id}/pause"),
    ("POST", "/v1/executions/{id}/resume"),
    ("POST", "/v1/executions/{id}/retry"),
    ("POST", "/v1/executions/{id}/signals/{name}"),
    ("POST", "/v1/events"),
    ("GET", "/v1/events/stream"),
    ("POST", "/v1/subscriptions"),
    ("GET", "/v1/subscriptions"),
    ("GET", "/v1/subscriptions/{id}"),
    ("DELETE", "/v1/subscriptions/{id}"),
    ("POST", "/v1/tasks/poll"),
    ("POST", "/v1/tasks/{task_id}/complete"),
    ("POST", "/v1/tasks/{task_id}/fail"),
    ("POST", "/v1/tasks/{task_id}/heartbeat"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/v1/openapi.json"),
    ("GET", "/v1/queues"),
    ("GET", "/v1/schemas/workflow.json"),
    ("GET", "/"),
]

ISO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


# ---- operations ------------------------------------------------------------

def test_healthz(server):
    r = server.get("/healthz")
    assert r.status == 200 and r.json == {"status": "ok"}
    assert r.headers["content-type"].startswith("application/json")


def test_readyz(server):
    r = server.get("/readyz")
    assert r.status == 200, r
    assert r.json["status"] == "ready"


def test_head_is_get_without_body(server):
    c = server.conn()
    c.request("HEAD", "/healthz")
    r = c.getresponse()
    assert r.status == 200 and r.read() == b""
    c.close()


def test_index_page(server):
    r = server.get("/")
    assert r.status == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "wfo" in r.text and "/v1/executions" in r.text


def test_openapi_describes_every_route(server):
    r = server.get("/v1/openapi.json")
    assert r.status == 200, r
    doc = r.json
    assert doc["openapi"].startswith("3.")
    assert doc["info"]["title"]
    for method, path in SPEC_ROUTES:
        assert path in doc["paths"], f"{path} is not described"
        op = doc["paths"][path].get(method.lower())
        assert op, f"{method} {path} is not described"
        assert op.get("responses"), f"{method} {path} has no responses"
        assert "501" not in op["responses"], f"{method} {path} says it is not built"
        assert "not implemented" not in op.get("summary", ""), f"{method} {path}"
    # the success answers the server gives, with what they take
    paths = doc["paths"]
    assert {"202", "200"} <= set(paths["/v1/events"]["post"]["responses"])
    assert "202" in paths["/v1/executions/{id}/signals/{name}"]["post"]["responses"]
    retry = paths["/v1/executions/{id}/retry"]["post"]
    assert "from" in retry["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert "400" in retry["responses"]

    # every $ref points at something that exists
    def walk(v):
        if isinstance(v, dict):
            for k, x in v.items():
                if k == "$ref":
                    target = doc
                    if not x.startswith("#"):
                        # a reference into another document the server serves
                        url, _, x = x.partition("#")
                        r2 = server.get(url)
                        assert r2.status == 200, f"$ref to {url}: {r2}"
                        target = r2.json
                    parts = x.lstrip("#/").split("/")
                    node = target
                    for p in parts:
                        assert p in node, f"dangling $ref {x}"
                        node = node[p]
                else:
                    walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
    walk(doc)


def test_metrics_prometheus_text(server):
    name = unique("metrics")
    server.put_workflow(set_workflow(name))
    e = server.start_exec(name, input={"a": 1}, query="?wait=10s")
    assert e["status"] == "completed"
    server.get("/no/such/route")
    r = server.get("/metrics")
    assert r.status == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    for metric in ["wfo_executions_started_total", "wfo_executions_completed_total",
                   "wfo_executions_failed_total", "wfo_http_requests_total",
                   "wfo_store_commit_duration_seconds_sum",
                   "wfo_store_commit_duration_seconds_count", "wfo_tasks_ready",
                   "wfo_tasks_leased", "wfo_task_lease_expiries_total", "wfo_timers",
                   "wfo_timers_fired_total"]:
        assert re.search(rf"^# TYPE {metric.rsplit('_sum', 1)[0].rsplit('_count', 1)[0]} ",
                         text, re.M), metric
    assert f'wfo_executions_started_total{{workflow="{name}"}} 1' in text
    assert f'wfo_executions_completed_total{{workflow="{name}"}} 1' in text
    assert re.search(r'wfo_http_requests_total\{method="POST",route="/v1/executions",'
                     r'status="201"\} \d+', text)
    assert re.search(r'wfo_http_requests_total\{[^}]*status="404"\} \d+', text)
    # every sample line is NAME{LABELS} NUMBER
    for line in text.splitlines():
        if line and not line.startswith("#"):
            assert re.match(r'^[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? -?[0-9.e+]+$',
                            line), line


def test_metrics_count_timers_that_fire(tmp_path):
    """SPEC 7 "timers due": wfo_timers_fired_total counts the durable
    timers that came due (a sleep's, here two)."""
    from apiutil import WfoServer
    srv = WfoServer(tmp_path / "s").launch()
    try:
        def fired():
            m = re.search(r"^wfo_timers_fired_total (\d+)$", srv.get("/metrics").text, re.M)
            assert m, "no wfo_timers_fired_total"
            return int(m.group(1))
        assert fired() == 0
        name = unique("metrics-timers")
        srv.put_workflow({"name": name, "steps": [
            {"name": "a", "type": "sleep", "duration": "50ms"},
            {"name": "b", "type": "sleep", "duration": "50ms"}]})
        e = srv.start_exec(name)
        assert srv.doc(e["id"], wait="10s")["status"] == "completed"
        assert fired() == 2
    finally:
        srv.stop()


def test_metrics_count_failed_executions(server):
    name = unique("metrics-fail")
    server.put_workflow({"name": name, "steps": [
        {"name": "f", "type": "fail", "error": {"type": "Nope", "message": "no"}}]})
    e = server.start_exec(name, query="?wait=10s")
    assert e["status"] == "failed"
    text = server.get("/metrics").text
    assert f'wfo_executions_failed_total{{workflow="{name}"}} 1' in text


# ---- workflows -------------------------------------------------------------

def test_put_workflow_versions(server):
    name = unique("wf")
    d1 = set_workflow(name)
    r = server.put(f"/v1/workflows/{name}", d1)
    assert r.status == 201, r
    assert set(r.json) == {"name", "version", "created_at", "definition"}
    assert r.json["name"] == name and r.json["version"] == 1
    assert ISO_RE.match(r.json["created_at"])
    assert r.json["definition"]["steps"] == d1["steps"]
    # identical: 200, the current version
    r2 = server.put(f"/v1/workflows/{name}", d1)
    assert r2.status == 200 and r2.json["version"] == 1
    assert r2.json["created_at"] == r.json["created_at"]
    # changed: a new version
    d2 = dict(d1, description="changed")
    r3 = server.put(f"/v1/workflows/{name}", d2)
    assert r3.status == 201 and r3.json["version"] == 2
    # latest, one version, the list
    g = server.get(f"/v1/workflows/{name}")
    assert g.status == 200 and g.json["version"] == 2
    assert g.json["definition"]["description"] == "changed"
    v1 = server.get(f"/v1/workflows/{name}/versions/1")
    assert v1.status == 200 and v1.json["version"] == 1
    assert "description" not in v1.json["definition"]
    lst = server.get("/v1/workflows")
    assert lst.status == 200
    mine = [w for w in lst.json["workflows"] if w["name"] == name]
    assert len(mine) == 1 and mine[0]["version"] == 2


def test_put_workflow_yaml(server):
    name = unique("yaml")
    text = f"""\
name: {name}
steps:
  - name: s
    type: set
    vars: {{x: 1}}
"""
    for ctype in ("application/yaml", "text/yaml", "application/x-yaml"):
        r = server.put(f"/v1/workflows/{name}", text, headers={"Content-Type": ctype})
        assert r.status in (200, 201), (ctype, r)
        assert r.json["definition"]["steps"][0]["vars"] == {"x": 1}
        assert r.json["version"] == 1


def test_put_workflow_bad_yaml_is_400(server):
    r = server.put("/v1/workflows/x", "name: [unclosed\n", headers={"Content-Type": "application/yaml"})
    assert r.status == 400, r
    assert r.error["type"] == "BadRequest"


def test_put_workflow_invalid_lists_every_problem(server):
    name = unique("bad")
    r = server.put(f"/v1/workflows/{name}", {
        "name": name,
        "steps": [
            {"name": "a", "type": "nope"},
            {"name": "b", "type": "task", "retry": {"max_attempts": 0}},
        ]})
    assert r.status == 400, r
    e = r.error
    details = e["details"]
    assert isinstance(details, list) and len(details) >= 2, e
    paths = [d["path"] for d in details]
    for d in details:
        assert set(d) >= {"path", "message"} and d["message"]
    assert "steps[0].type" in paths, paths
    assert any(p.startswith("steps[1]") for p in paths), paths
    # nothing was registered
    assert server.get(f"/v1/workflows/{name}").status == 404


def test_put_workflow_paths_like_validate(server, tmp_path):
    """error.details paths are written exactly as `wfo validate` writes them."""
    from conftest import run_wfo, write_def
    name = unique("paths")
    d = {"name": name, "steps": [{"name": "a", "type": "set", "vars": {"x": 1}},
                                 {"name": "b", "type": "task", "queue": "q",
                                  "retry": {"max_attempts": 0}}]}
    rc, _, err = run_wfo(["validate", write_def(tmp_path, d)])
    assert rc == 2
    expected = sorted(line.split(": ")[1] for line in err.strip().splitlines())
    r = server.put(f"/v1/workflows/{name}", d)
    assert r.status == 400
    assert sorted(x["path"] for x in r.error["details"]) == expected


def test_put_workflow_name_mismatch(server):
    r = server.put("/v1/workflows/other-name", set_workflow(unique("mismatch")))
    assert r.status == 400, r
    assert r.error["type"] == "BadRequest"
    assert "name" in r.error["message"]


def test_get_workflow_unknown(server):
    r = server.get("/v1/workflows/no-such-workflow")
    assert r.status == 404 and r.error["type"] == "NotFound"
    name = unique("ver")
    server.put_workflow(set_workflow(name))
    assert server.get(f"/v1/workflows/{name}/versions/7").status == 404
    for bad in ("0", "-1", "abc", "1.5", "99999999999"):
        r = server.get(f"/v1/workflows/{name}/versions/{bad}")
        assert r.status == 400, (bad, r)


# ---- executions ------------------------------------------------------------

def test_start_execution_document(server):
    name = unique("start")
    server.put_workflow(task_workflow(name))
    r = server.post("/v1/executions", {"workflow": name, "input": {"k": [1, 2]}})
    assert r.status == 201, r
    d = r.json
    assert set(d) == DOC_KEYS, d
    assert d["workflow"] == name and d["version"] == 1 and d["namespace"] == "default"
    assert d["status"] == "running" and d["input"] == {"k": [1, 2]}
    assert ISO_RE.match(d["created_at"])
    for s in d["steps"]:
        assert set(s) == STEP_KEYS
    g = server.get(f"/v1/executions/{d['id']}")
    assert g.status == 200 and g.json["id"] == d["id"]
    server.post(f"/v1/executions/{d['id']}/terminate")


def test_start_default_input_and_version(server):
    name = unique("defaults")
    server.put_workflow(set_workflow(name))
    server.put_workflow(dict(set_workflow(name), description="v2"))
    d = server.start_exec(name)
    assert d["input"] == {} and d["version"] == 2
    d1 = server.post("/v1/executions", {"workflow": name, "version": 1}).json
    assert d1["version"] == 1
    r = server.post("/v1/executions", {"workflow": name, "version": 9})
    assert r.status == 404, r


def test_start_unknown_workflow(server):
    r = server.post("/v1/executions", {"workflow": "never-registered"})
    assert r.status == 404 and r.error["type"] == "NotFound"


def test_start_idempotent_by_id(server):
    name = unique("idem")
    server.put_workflow(set_workflow(name))
    eid = unique("exec-id")
    a = server.post("/v1/executions", {"workflow": name, "input": {"n": 1}, "id": eid})
    assert a.status == 201 and a.json["id"] == eid
    b = server.post("/v1/executions", {"workflow": name, "input": {"n": 1}, "id": eid})
    assert b.status == 200, b
    assert b.json["id"] == eid and b.json["created_at"] == a.json["created_at"]
    c = server.post("/v1/executions", {"workflow": name, "input": {"n": 2}, "id": eid})
    assert c.status == 409 and c.error["type"] == "Conflict"
    other = unique("other")
    server.put_workflow(set_workflow(other))
    d = server.post("/v1/executions", {"workflow": other, "input": {"n": 1}, "id": eid})
    assert d.status == 409, d
    # and only one execution has that id
    lst = server.get(f"/v1/executions?workflow={name}").json["executions"]
    assert [e["id"] for e in lst].count(eid) == 1


@pytest.mark.parametrize("eid", [".", ".."])
def test_start_refuses_ids_a_path_cannot_name(server, eid):
    """"." and ".." are refused (400 naming id): GET /v1/executions/.. could never reach it."""
    name = unique("dots")
    server.put_workflow(set_workflow(name))
    r = server.post("/v1/executions", {"workflow": name, "id": eid})
    assert r.status == 400 and r.error["message"].startswith("id: "), r
    assert server.get(f"/v1/executions?workflow={name}").json["executions"] == []


def test_concurrent_starts_of_one_id(server):
    """Six starts of one id at once: one 201, five 200 with the execution
    (SPEC 3). A start that found the execution in memory, made by a round
    not yet committed, read the store too early and answered 404."""
    name = unique("idem-race")
    server.put_workflow({"name": name, "steps": [{"name": "nap", "type": "sleep",
                                                  "duration": "50ms"}]})
    odd = []
    for k in range(40):
        eid = unique(f"race-{k}")
        got = [None] * 6

        def start(i, eid=eid, got=got):
            got[i] = server.post("/v1/executions", {"workflow": name, "input": {"k": k},
                                                    "id": eid})
        ths = [threading.Thread(target=start, args=(i,)) for i in range(6)]
        [t.start() for t in ths]
        [t.join(30) for t in ths]
        codes = sorted(r.status for r in got)
        if codes != [200] * 5 + [201] or any(r.json["id"] != eid for r in got):
            odd.append((eid, [(r.status, r.text[:120]) for r in got]))
    assert not odd, odd[:3]


def test_waits_answer_the_stored_document(server):
    """Every wait on an execution, of a start or a get, several at once,
    answers the document a later read gives (the engine hands it to the
    waits from the commit that ended the execution: engine.c E10, whose
    test build also compares it with the store's and aborts if they
    differ). An execution that failed and compensated, with outputs,
    errors and step states of every kind."""
    name = unique("waitdoc")
    server.put_workflow({"name": name, "steps": [
        {"name": "a", "type": "task", "queue": name,
         "compensate": {"type": "set", "vars": {"undone": True}}},
        {"name": "b", "type": "set", "vars": {"x": "${ .steps.a.output.v }"}},
        {"name": "c", "type": "task", "queue": name, "retry": {"max_attempts": 1}}]})
    started, waits = {}, []

    def start():
        started["r"] = server.post("/v1/executions?wait=30s",
                                   {"workflow": name, "input": {"k": [1, "two"]}}, timeout=60)

    def get(eid):
        waits.append(server.get(f"/v1/executions/{eid}?wait=30s", timeout=60))

    th = [threading.Thread(target=start)]
    th[0].start()
    tasks = server.poll([name], wait="10s")
    assert len(tasks) == 1
    eid = tasks[0]["execution_id"]
    th += [threading.Thread(target=get, args=(eid,)) for _ in range(4)]
    [t.start() for t in th[1:]]
    time.sleep(0.5)  # the waits are waiting
    r = server.post(f"/v1/tasks/{tasks[0]['task_id']}/complete",
                    {"lease": tasks[0]["lease"], "output": {"v": {"deep": [True, None]}}})
    assert r.status == 200, r
    tasks = server.poll([name], wait="10s")
    assert len(tasks) == 1
    r = server.post(f"/v1/tasks/{tasks[0]['task_id']}/fail",
                    {"lease": tasks[0]["lease"],
                     "error": {"type": "Broken", "message": "no"}})
    assert r.status == 200, r
    [t.join(60) for t in th]
    final = server.get(f"/v1/executions/{eid}")
    assert final.status == 200 and final.json["status"] == "failed", final
    assert started["r"].status == 201 and len(waits) == 4
    for w in [started["r"]] + waits:
        assert w.json == final.json
    assert [s["status"] for s in final.json["steps"]][:3] == ["compensated", "completed", "failed"]


def test_start_wait_until_end(server):
    name = unique("wait")
    server.put_workflow(set_workflow(name))
    r = server.post("/v1/executions?wait=20s", {"workflow": name, "input": {"v": 5}}, timeout=60)
    assert r.status == 201, r
    assert r.json["status"] == "completed" and r.json["output"] == {"v": 5}


def test_wait_runs_out(server):
    name = unique("waitout")
    server.put_workflow(task_workflow(name))
    t0 = time.monotonic()
    r = server.post("/v1/executions?wait=1500ms", {"workflow": name})
    took = time.monotonic() - t0
    assert r.status == 201 and r.json["status"] == "running"
    assert 1.2 <= took < 10, took
    eid = r.json["id"]
    t0 = time.monotonic()
    g = server.get(f"/v1/executions/{eid}?wait=1s")
    took = time.monotonic() - t0
    assert g.status == 200 and g.json["status"] == "running"
    assert 0.8 <= took < 10, took
    server.post(f"/v1/executions/{eid}/terminate")


def test_start_again_with_wait(server):
    """The same start again with ?wait= answers 200 with the execution as
    it is once the wait is over; a different input for the id is 409 at
    once (the start goes to the engine from the pool thread, and its wait
    to a waiter)."""
    name = unique("waitagain")
    server.put_workflow(task_workflow(name))
    eid = unique("wa-id")
    r = server.post("/v1/executions?wait=100ms", {"workflow": name, "id": eid, "input": {"a": 1}})
    assert r.status == 201 and r.json["id"] == eid and r.json["status"] == "running", r
    r = server.post("/v1/executions?wait=300ms", {"workflow": name, "id": eid, "input": {"a": 1}})
    assert r.status == 200 and r.json["id"] == eid and r.json["status"] == "running", r
    t0 = time.monotonic()
    r = server.post("/v1/executions?wait=5s", {"workflow": name, "id": eid, "input": {"a": 2}})
    assert r.status == 409, r
    assert time.monotonic() - t0 < 4
    server.post(f"/v1/executions/{eid}/terminate")


def test_get_wait_answers_when_it_ends(server):
    name = unique("waitend")
    server.put_workflow(task_workflow(name))
    eid = server.start_exec(name)["id"]
    out = {}

    def waiter():
        t0 = time.monotonic()
        out["r"] = server.get(f"/v1/executions/{eid}?wait=30s", timeout=60)
        out["took"] = time.monotonic() - t0

    th = threading.Thread(target=waiter)
    th.start()
    time.sleep(0.5)
    tasks = server.poll([name], wait="5s")
    assert len(tasks) == 1
    r = server.post(f"/v1/tasks/{tasks[0]['task_id']}/complete",
                    {"lease": tasks[0]["lease"], "output": {"done": True}})
    assert r.status == 200, r
    th.join(40)
    assert out["r"].status == 200 and out["r"].json["status"] == "completed"
    assert out["took"] < 15, out["took"]


def test_wait_bad_duration(server):
    name = unique("badwait")
    server.put_workflow(set_workflow(name))
    for bad in ("soon", "-1s", "1x", ""):
        r = server.post(f"/v1/executions?wait={bad}", {"workflow": name})
        assert r.status == 400, (bad, r)
        r = server.get(f"/v1/executions/whatever?wait={bad}")
        assert r.status == 400, (bad, r)


def test_get_unknown_execution(server):
    for path in ("/v1/executions/nope", "/v1/executions/nope/history",
                 "/v1/executions/nope?wait=1s"):
        r = server.get(path)
        assert r.status == 404 and r.error["type"] == "NotFound", (path, r)
    for op in ("cancel", "terminate", "pause", "resume", "retry"):
        r = server.post(f"/v1/executions/nope/{op}")
        assert r.status == 404, (op, r)


def test_history(server):
    name = unique("hist")
    server.put_workflow(set_workflow(name))
    eid = server.start_exec(name, query="?wait=10s")["id"]
    r = server.get(f"/v1/executions/{eid}/history")
    assert r.status == 200
    h = r.json
    assert isinstance(h, list) and h
    assert [e["seq"] for e in h] == list(range(1, len(h) + 1))
    for e in h:
        assert set(e) == {"seq", "time", "type", "step", "data"}
        assert ISO_RE.match(e["time"])
    assert h[0]["type"] == "execution.started"
    assert h[-1]["type"] == "execution.completed"


# ---- listing ----------------------------------------------------------------

def test_list_paging_newest_first(server):
    name = unique("pager")
    server.put_workflow(set_workflow(name))
    created = [server.start_exec(name, input={"i": i})["id"] for i in range(23)]
    seen = []
    cursor = None
    pages = 0
    while True:
        q = f"/v1/executions?workflow={name}&limit=5"
        if cursor:
            q += f"&cursor={cursor}"
        r = server.get(q)
        assert r.status == 200, r
        page = r.json["executions"]
        pages += 1
        for e in page:
            assert "steps" not in e
            assert e["workflow"] == name
        seen += [e["id"] for e in page]
        cursor = r.json.get("next_cursor")
        if not cursor:
            assert "next_cursor" not in r.json
            break
        assert len(page) == 5
        assert pages < 10
    assert pages == 5
    assert len(seen) == len(set(seen)) == 23
    assert seen == list(reversed(created))


def test_list_exact_multiple_has_no_empty_last_page(server):
    name = unique("exact")
    server.put_workflow(set_workflow(name))
    for i in range(4):
        server.start_exec(name)
    r = server.get(f"/v1/executions?workflow={name}&limit=2").json
    assert len(r["executions"]) == 2 and r["next_cursor"]
    r2 = server.get(f"/v1/executions?workflow={name}&limit=2&cursor={r['next_cursor']}").json
    assert len(r2["executions"]) == 2 and "next_cursor" not in r2


def test_list_default_limit(server):
    name = unique("deflimit")
    server.put_workflow(set_workflow(name))
    for i in range(52):
        server.start_exec(name)
    r = server.get(f"/v1/executions?workflow={name}").json
    assert len(r["executions"]) == 50 and r["next_cursor"]
    r = server.get(f"/v1/executions?workflow={name}&limit=1000").json
    assert len(r["executions"]) == 52 and "next_cursor" not in r


def test_list_filters(server):
    name = unique("filters")
    server.put_workflow(task_workflow(name))
    a = server.start_exec(name)["id"]
    time.sleep(0.05)
    mid = server.get(f"/v1/executions/{a}").json["created_at"]
    time.sleep(0.05)
    b = server.start_exec(name)["id"]
    server.post(f"/v1/executions/{b}/cancel")
    r = server.get(f"/v1/executions?workflow={name}&status=cancelled").json["executions"]
    assert [e["id"] for e in r] == [b]
    r = server.get(f"/v1/executions?workflow={name}&status=running").json["executions"]
    assert [e["id"] for e in r] == [a]
    r = server.get(f"/v1/executions?workflow={name}&status=completed").json["executions"]
    assert r == []
    r = server.get(f"/v1/executions?workflow={name}&created_after={mid}").json["executions"]
    assert [e["id"] for e in r] == [b]
    r = server.get(f"/v1/executions?workflow={name}&created_before={mid}").json["executions"]
    assert r == []
    later = server.get(f"/v1/executions/{b}").json["created_at"]
    r = server.get(f"/v1/executions?workflow={name}&created_before={later}").json["executions"]
    assert [e["id"] for e in r] == [a]
    assert server.get("/v1/executions?workflow=nobody-has-this").json == {"executions": []}
    server.post(f"/v1/executions/{a}/terminate")


@pytest.mark.parametrize("query", [
    "limit=0", "limit=1001", "limit=abc", "limit=1.5", "limit=", "limit=-5", "limit=%201",
    "limit=99999999999999999999", "status=done", "status=RUNNING", "status=",
    "created_after=yesterday", "created_before=2026-13-01T00:00:00Z", "cursor=", "cursor=abc",
    "cursor=AAAAAAAAAAAAAAAAAAAAAAAAAAA", "cursor=%FF%FE",
])
def test_list_bad_parameters(server, query):
    r = server.get(f"/v1/executions?{query}")
    assert r.status == 400, (query, r)
    assert r.error["type"] == "BadRequest"


def test_list_tampered_cursor(server):
    name = unique("tamper")
    server.put_workflow(set_workflow(name))
    for i in range(3):
        server.start_exec(name)
    cur = server.get(f"/v1/executions?workflow={name}&limit=1").json["next_cursor"]
    assert server.get(f"/v1/executions?workflow={name}&limit=1&cursor={cur}").status == 200
    for i in range(len(cur)):
        c = cur[:i] + ("A" if cur[i] != "A" else "B") + cur[i + 1:]
        r = server.get(f"/v1/executions?workflow={name}&limit=1&cursor={c}")
        assert r.status == 400, (i, c, r)
    assert server.get(f"/v1/executions?cursor={cur}x").status == 400
    assert server.get(f"/v1/executions?cursor={cur[:-1]}").status == 400


# ---- control: pause, resume, cancel, terminate, retry -----------------------

def test_pause_resume(server):
    name = unique("pause")
    server.put_workflow({"name": name, "steps": [
        {"name": "one", "type": "task", "queue": name},
        {"name": "two", "type": "task", "queue": name}]})
    eid = server.start_exec(name)["id"]
    t = server.poll([name], wait="5s")[0]
    r = server.post(f"/v1/executions/{eid}/pause")
    assert r.status == 200 and r.json["status"] == "paused", r
    assert r.json["id"] == eid and set(r.json) == DOC_KEYS
    assert server.post(f"/v1/executions/{eid}/pause").status == 409
    # the running task may finish, but no new step starts while paused
    c = server.post(f"/v1/tasks/{t['task_id']}/complete", {"lease": t["lease"], "output": 1})
    assert c.status == 200, c
    assert server.poll([name], wait="1s") == []
    d = server.doc(eid)
    assert d["status"] == "paused" and "two" not in [s["name"] for s in d["steps"]]
    r = server.post(f"/v1/executions/{eid}/resume")
    assert r.status == 200 and r.json["status"] == "running", r
    assert server.post(f"/v1/executions/{eid}/resume").status == 409
    t2 = server.poll([name], wait="5s")
    assert len(t2) == 1 and t2[0]["step"] == "two"
    server.post(f"/v1/tasks/{t2[0]['task_id']}/complete", {"lease": t2[0]["lease"], "output": 2})
    d = server.wait_status(eid, "completed")
    assert d["output"] == 2


def test_paused_execution_whose_last_step_completes_ends(server):
    """Paused, no new step starts; but when the attempt in flight was the
    last step, the execution completes (as a failure there fails it), and a
    ?wait= caller hears of it; inside a parallel, the block ends too."""
    name = unique("pause-last")
    server.put_workflow({"name": name, "steps": [
        {"name": "p", "type": "parallel", "branches": [
            {"name": "a", "steps": [{"name": "t", "type": "task", "queue": name}]}]}]})
    eid = server.start_exec(name)["id"]
    t = server.poll([name], wait="5s")[0]
    assert server.post(f"/v1/executions/{eid}/pause").json["status"] == "paused"
    c = server.post(f"/v1/tasks/{t['task_id']}/complete", {"lease": t["lease"], "output": 7})
    assert c.status == 200, c
    d = server.doc(eid, wait="10s")
    assert d["status"] == "completed" and d["output"] == {"a": 7}, d
    assert d["finished_at"], d


def test_cancel(server):
    name = unique("cancel")
    server.put_workflow(task_workflow(name))
    eid = server.start_exec(name)["id"]
    t = server.poll([name], wait="5s")[0]
    r = server.post(f"/v1/executions/{eid}/cancel", {"reason": "operator said so"})
    assert r.status == 200 and r.json["status"] == "cancelled", r
    assert r.json["error"]["type"] == "Cancelled"
    assert "operator said so" in r.json["error"]["message"]
    assert r.json["finished_at"]
    # its running task's completion is refused and changes nothing
    c = server.post(f"/v1/tasks/{t['task_id']}/complete", {"lease": t["lease"], "output": 1})
    assert c.status in (404, 409), c
    for op in ("cancel", "terminate", "pause", "resume", "retry"):
        assert server.post(f"/v1/executions/{eid}/{op}").status == 409, op
    assert server.doc(eid)["status"] == "cancelled"


def test_cancel_with_compensation(server):
    name = unique("comp")
    server.put_workflow({"name": name, "steps": [
        {"name": "reserve", "type": "set", "vars": {"r": 1},
         "compensate": {"type": "set", "vars": {"undone": True}}},
        {"name": "wait", "type": "task", "queue": name}]})
    eid = server.start_exec(name)["id"]
    server.wait_step(eid, "wait", "running")
    r = server.post(f"/v1/executions/{eid}/cancel", {"compensate": True})
    assert r.status == 200, r
    d = server.wait_status(eid, "cancelled")
    d = server.doc(eid, wait="5s")
    steps = {s["name"]: s for s in d["steps"]}
    assert steps["reserve"]["status"] in ("compensated", "completed"), d


def test_cancel_body_types(server):
    name = unique("cancelbody")
    server.put_workflow(task_workflow(name))
    eid = server.start_exec(name)["id"]
    assert server.post(f"/v1/executions/{eid}/cancel", {"reason": 5}).status == 400
    assert server.post(f"/v1/executions/{eid}/cancel", {"compensate": "yes"}).status == 400
    assert server.post(f"/v1/executions/{eid}/cancel", [1]).status == 400
    assert server.doc(eid)["status"] == "running"
    assert server.post(f"/v1/executions/{eid}/cancel", "").status == 200


def test_terminate(server):
    name = unique("term")
    server.put_workflow(task_workflow(name))
    eid = server.start_exec(name)["id"]
    t = server.poll([name], wait="5s")[0]
    r = server.post(f"/v1/executions/{eid}/terminate", {"reason": "stop"})
    assert r.status == 200 and r.json["status"] == "terminated", r
    c = server.post(f"/v1/tasks/{t['task_id']}/complete", {"lease": t["lease"], "output": 1})
    assert c.status in (404, 409), c
    assert server.doc(eid)["status"] == "terminated"
    assert server.post(f"/v1/executions/{eid}/terminate").status == 409


def test_retry_failed_execution(server):
    name = unique("retry")
    server.put_workflow(task_workflow(name))
    eid = server.start_exec(name)["id"]
    assert server.post(f"/v1/executions/{eid}/retry").status == 409  # running
    t = server.poll([name], wait="5s")[0]
    r = server.post(f"/v1/tasks/{t['task_id']}/fail", {
        "lease": t["lease"], "error": {"type": "Broken", "message": "it broke",
                                       "details": {"x": 1}}, "retryable": False})
    assert r.status == 200, r
    d = server.wait_status(eid, "failed")
    assert d["error"]["type"] == "Broken" and d["error"]["step"] == "work"
    r = server.post(f"/v1/executions/{eid}/retry")
    assert r.status == 200 and r.json["status"] == "running", r
    t2 = server.poll([name], wait="5s")
    assert len(t2) == 1 and t2[0]["step"] == "work"
    assert t2[0]["task_id"] != t["task_id"]
    server.post(f"/v1/tasks/{t2[0]['task_id']}/complete", {"lease": t2[0]["lease"], "output": "ok"})
    d = server.wait_status(eid, "completed")
    assert d["output"] == "ok" and d["error"] is None


# ---- tasks -----------------------------------------------------------------

def test_task_fields(server):
    name = unique("fields")
    server.put_workflow(task_workflow(name, input={"sku": "${ .input.sku }"}))
    eid = server.start_exec(name, input={"sku": "A-1"})["id"]
    tasks = server.poll([name], worker="w-1", wait="5s")
    assert len(tasks) == 1
    t = tasks[0]
    assert set(t) >= {"task_id", "lease", "queue", "execution_id", "step", "attempt", "input",
                      "idempotency_key", "deadline"}, t
    assert t["queue"] == name and t["execution_id"] == eid and t["step"] == "work"
    assert t["attempt"] == 1 and t["input"] == {"sku": "A-1"}
    assert t["idempotency_key"] == f"{eid}/work"
    hb = server.post(f"/v1/tasks/{t['task_id']}/heartbeat", {"lease": t["lease"],
                                                             "details": {"pct": 50}})
    assert hb.status == 200 and hb.json == {"cancel_requested": False}, hb
    r = server.post(f"/v1/tasks/{t['task_id']}/complete", {"lease": t["lease"],
                                                           "output": {"id": 9}})
    assert r.status == 200, r
    d = server.wait_status(eid, "completed")
    assert d["output"] == {"id": 9}


def test_task_stale_and_double_completion(server):
    name = unique("stale")
    server.put_workflow(task_workflow(name))
    eid = server.start_exec(name)["id"]
    t = server.poll([name], wait="5s")[0]
    wrong = server.post(f"/v1/tasks/{t['task_id']}/complete", {"lease": "not-the-lease",
                                                               "output": 1})
    assert wrong.status == 409 and wrong.error["type"] == "Conflict", wrong
    assert server.post(f"/v1/tasks/{t['task_id']}/heartbeat", {"lease": "nope"}).status == 409
    assert server.post(f"/v1/tasks/{t['task_id']}/fail", {
        "lease": "nope", "error": {"type": "X"}}).status == 409
    assert server.doc(eid)["status"] == "running"
    ok = server.post(f"/v1/tasks/{t['task_id']}/complete", {"lease": t["lease"], "output": 1})
    assert ok.status == 200, ok
    again = server.post(f"/v1/tasks/{t['task_id']}/complete", {"lease": t["lease"], "output": 2})
    assert again.status == 409, again
    hb = server.post(f"/v1/tasks/{t['task_id']}/heartbeat", {"lease": t["lease"]})
    assert hb.status == 409, hb
    d = server.wait_status(eid, "completed")
    assert d["output"] == 1


def test_task_unknown(server):
    for op, body in (("complete", {"lease": "x", "output": 1}),
                     ("fail", {"lease": "x", "error": {"type": "T"}}),
                     ("heartbeat", {"lease": "x"})):
        r = server.post(f"/v1/tasks/no-such-task/{op}", body)
        assert r.status == 404 and r.error["type"] == "NotFound", (op, r)


def test_task_fail_retries_then_fails(server):
    name = unique("failretry")
    server.put_workflow(task_workflow(name, retry={"max_attempts": 2, "initial_interval": "100ms"}))
    eid = server.start_exec(name)["id"]
    for attempt in (1, 2):
        t = server.poll([name], wait="5s")
        assert len(t) == 1 and t[0]["attempt"] == attempt, t
        r = server.post(f"/v1/tasks/{t[0]['task_id']}/fail",
                        {"lease": t[0]["lease"], "error": {"type": "Flaky", "message": "m"}})
        assert r.status == 200, r
    d = server.wait_status(eid, "failed")
    assert d["error"]["type"] == "Flaky"
    assert [s for s in d["steps"] if s["name"] == "work"][0]["attempts"] == 2


def test_poll_waits_then_returns_empty(server):
    q = unique("emptyq")
    t0 = time.monotonic()
    tasks = server.poll([q], wait="1s")
    took = time.monotonic() - t0
    assert tasks == [] and 0.8 <= took < 10, took
    t0 = time.monotonic()
    assert server.poll([q]) == []
    assert time.monotonic() - t0 < 2


def test_poll_wakes_when_a_task_arrives(server):
    name = unique("wake")
    server.put_workflow(task_workflow(name))
    out = {}

    def poller():
        t0 = time.monotonic()
        out["tasks"] = server.poll([name], wait="20s")
        out["took"] = time.monotonic() - t0

    th = threading.Thread(target=poller)
    th.start()
    time.sleep(0.5)
    eid = server.start_exec(name)["id"]
    th.join(30)
    assert len(out["tasks"]) == 1 and out["tasks"][0]["execution_id"] == eid
    assert out["took"] < 5, out["took"]
    server.post(f"/v1/executions/{eid}/terminate")


def test_poll_max_and_queues(server):
    name = unique("many")
    server.put_workflow(task_workflow(name))
    ids = {server.start_exec(name)["id"] for _ in range(5)}
    got = server.poll([unique("other-q"), name], max=3, wait="5s")
    assert 1 <= len(got) <= 3
    rest = []
    deadline = time.monotonic() + 10
    while len(got) + len(rest) < 5 and time.monotonic() < deadline:
        rest += server.poll([name], max=100, wait="1s")
    assert {t["execution_id"] for t in got + rest} == ids
    for eid in ids:
        server.post(f"/v1/executions/{eid}/terminate")


@pytest.mark.parametrize("body", [
    {},
    {"worker": "w"},
    {"queues": [], "worker": "w"},
    {"queues": "q", "worker": "w"},
    {"queues": [1], "worker": "w"},
    {"queues": [""], "worker": "w"},
    {"queues": ["q"]},
    {"queues": ["q"], "worker": 5},
    {"queues": ["q"], "worker": "w", "max": 0},
    {"queues": ["q"], "worker": "w", "max": 101},
    {"queues": ["q"], "worker": "w", "max": "3"},
    {"queues": ["q"], "worker": "w", "max": 1.5},
    {"queues": ["q"], "worker": "w", "wait": "forever"},
    {"queues": ["q"], "worker": "w", "wait": -1},
    {"queues": ["q"], "worker": "w", "wait": True},
])
def test_poll_bad_bodies(server, body):
    r = server.post("/v1/tasks/poll", body)
    assert r.status == 400, (body, r)
    assert r.error["type"] == "BadRequest"


@pytest.mark.parametrize("op,body", [
    ("complete", {}),
    ("complete", {"lease": 5}),
    ("heartbeat", {}),
    ("heartbeat", {"lease": ["x"]}),
    ("fail", {"lease": "x"}),
    ("fail", {"lease": "x", "error": "boom"}),
    ("fail", {"lease": "x", "error": {}}),
    ("fail", {"lease": "x", "error": {"type": 3}}),
    ("fail", {"lease": "x", "error": {"type": "T", "message": 3}}),
    ("fail", {"lease": "x", "error": {"type": "T"}, "retryable": "no"}),
])
def test_task_bad_bodies(server, op, body):
    r = server.post(f"/v1/tasks/some-task/{op}", body)
    assert r.status == 400, (op, body, r)


def test_fake_worker_end_to_end(server):
    name = unique("e2e")
    server.put_workflow({"name": name, "steps": [
        {"name": "a", "type": "task", "queue": name, "input": {"n": "${ .input.n }"}},
        {"name": "b", "type": "task", "queue": name,
         "input": {"n": "${ .steps.a.output.n }"}}]})
    w = FakeWorker(server, [name], lambda t: ("complete", {"n": t["input"]["n"] + 1}))
    w.start()
    try:
        docs = [server.start_exec(name, input={"n": i}, query="?wait=30s") for i in range(5)]
    finally:
        w.stop()
    assert not w.errors, w.errors
    for i, d in enumerate(docs):
        assert d["status"] == "completed" and d["output"] == {"n": i + 2}, d


# ---- subscriptions (test_webhooks.py has the rest) ------------------------------

@pytest.mark.parametrize("method,path", [
    ("POST", "/v1/subscriptions"),
    ("GET", "/v1/subscriptions/abc"), ("DELETE", "/v1/subscriptions/abc"),
])
def test_subscription_routes_answer(server, method, path):
    r = server.request(method, path, body={} if method == "POST" else None)
    assert r.status == (400 if method == "POST" else 404), r
    assert r.error["type"] == ("BadRequest" if method == "POST" else "NotFound")


# ---- a restart keeps everything ------------------------------------------------

def test_restart_keeps_executions_and_cursors(tmp_path):
    srv = WfoServer(tmp_path)
    srv.launch()
    name = unique("restart")
    srv.put_workflow(task_workflow(name))
    ids = [srv.start_exec(name)["id"] for _ in range(3)]
    cur = srv.get(f"/v1/executions?workflow={name}&limit=1").json["next_cursor"]
    assert srv.stop() == 0
    srv.launch()
    try:
        page = srv.get(f"/v1/executions?workflow={name}&limit=5&cursor={cur}")
        assert page.status == 200, page
        assert [e["id"] for e in page.json["executions"]] == list(reversed(ids))[1:]
        tasks = []
        deadline = time.monotonic() + 10
        while len(tasks) < 3 and time.monotonic() < deadline:
            tasks += srv.poll([name], max=10, wait="1s")
        assert {t["execution_id"] for t in tasks} == set(ids)
        text = srv.get("/metrics").text
        for t in tasks:
            assert srv.post(f"/v1/tasks/{t['task_id']}/complete",
                            {"lease": t["lease"], "output": None}).status == 200
        for i in ids:
            srv.wait_status(i, "completed")
        text = srv.get("/metrics").text
        assert f'wfo_executions_completed_total{{workflow="{name}"}} 3' in text, text
    finally:
        assert srv.stop() == 0
