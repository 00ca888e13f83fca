"""The audit log (SPEC 7): one structured line for every state-changing
request, and for every request refused for its token: who (the token's name
or a digest prefix, never the token), what, which execution, the result;
and a counter in /metrics.
"""

import hashlib
import json
import re

from apiutil import WfoServer, task_workflow

ADMIN = "audit-admin-token-00001"
READER = "audit-reader-token-0001"
WORKER = "audit-worker-token-0001"


def test_audit_lines_and_metric(tmp_path):
    cfg = tmp_path / "wfo.yaml"
    cfg.write_text("auth:\n  tokens:\n"
                   f"    - {{token: {ADMIN}, namespace: ops, role: admin, name: alice}}\n"
                   f"    - {{token: {READER}, namespace: ops, role: reader}}\n"
                   f"    - {{token: {WORKER}, namespace: ops, role: worker, name: w1}}\n")
    srv = WfoServer(tmp_path, args=["--config", str(cfg)], env={"WFO_LOG_FORMAT": "json"})
    srv.launch()
    h = {"Authorization": f"Bearer {ADMIN}"}
    try:
        assert srv.put("/v1/workflows/aud", task_workflow("aud", queue="aq"), headers=h).status == 201
        r = srv.post("/v1/executions", {"workflow": "aud", "id": "aud-1"}, headers=h)
        assert r.status == 201, r
        r = srv.post("/v1/executions", {"workflow": "aud", "id": "aud-2"}, headers=h)
        assert r.status == 201, r
        assert srv.post("/v1/executions", {"workflow": "nope"}, headers=h).status == 404
        assert srv.get("/v1/executions/aud-1", headers=h).status == 200  # a read: no line
        r = srv.post("/v1/executions/aud-2/cancel", {},
                     headers={"Authorization": f"Bearer {READER}"})
        assert r.status == 403
        assert srv.post("/v1/executions/aud-2/cancel", {}).status == 401
        assert srv.post("/v1/executions/aud-2/cancel", {"reason": "x"}, headers=h).status == 200
        r = srv.post("/v1/tasks/poll", {"queues": ["aq"], "worker": "w", "wait": "5s"},
                     headers={"Authorization": f"Bearer {WORKER}"})
        t = r.json["tasks"][0]
        r = srv.post(f"/v1/tasks/{t['task_id']}/complete", {"lease": t["lease"], "output": 1},
                     headers={"Authorization": f"Bearer {WORKER}"})
        assert r.status == 200, r
        metrics = srv.get("/metrics").text
    finally:
        assert srv.stop() == 0
    log = srv.stderr()
    for tok in (ADMIN, READER, WORKER):
        assert tok not in log and tok not in metrics
    lines = [json.loads(x) for x in log.splitlines() if x.startswith("{")]
    audit = [x for x in lines if x.get("msg") == "audit"]
    acts = [(x["who"], x["action"], x.get("execution_id"), x["status"], x["outcome"])
            for x in audit]
    reader = "sha256:" + hashlib.sha256(READER.encode()).hexdigest()[:12]
    assert acts == [
        ("alice", "PUT /v1/workflows/{name}", None, "201", "ok"),
        ("alice", "POST /v1/executions", "aud-1", "201", "ok"),
        ("alice", "POST /v1/executions", "aud-2", "201", "ok"),
        ("alice", "POST /v1/executions", None, "404", "failed"),
        (reader, "POST /v1/executions/{id}/cancel", "aud-2", "403", "denied"),
        ("anonymous", "POST /v1/executions/{id}/cancel", "aud-2", "401", "denied"),
        ("alice", "POST /v1/executions/{id}/cancel", "aud-2", "200", "ok"),
        ("w1", "POST /v1/tasks/{task_id}/complete", "aud-1", "200", "ok"),
    ], acts
    assert all(x["namespace"] == "ops" for x in audit if x["who"] != "anonymous")
    # a line about an execution names its workflow (SPEC 7)
    assert [x.get("workflow") for x in audit if x.get("execution_id") and x["outcome"] == "ok"] \
        == ["aud"] * 4, audit
    assert audit[0]["target"] == "aud"
    assert audit[3]["error"] == "NotFound"
    assert all(re.match(r"\d{4}-\d\d-\d\dT", x["time"]) for x in audit)
    m = dict(re.findall(r'^(wfo_audit_events_total\{.*\}) (\d+)$', metrics, re.M))
    assert m['wfo_audit_events_total{method="POST",route="/v1/executions",outcome="ok"}'] == "2"
    assert m['wfo_audit_events_total{method="POST",route="/v1/executions/{id}/cancel",'
             'outcome="denied"}'] == "2"


def test_audit_text_format(tmp_path):
    srv = WfoServer(tmp_path)
    srv.launch()
    try:
        srv.put_workflow(task_workflow("aud-text", queue="q"))
    finally:
        srv.stop()
    line = [x for x in srv.stderr().splitlines() if " audit " in x][0]
    assert "who=anonymous" in line and 'action="PUT /v1/workflows/{name}"' in line, line
    assert "status=201" in line and "outcome=ok" in line and "target=aud-text" in line, line


def test_audit_of_a_batch_and_of_a_delete(tmp_path):
    """SPEC 7 "which execution": a worker's batch of results names every
    execution it reports on, and its outcome says when some were refused
    (partial); a deleted execution's line still names its workflow."""
    srv = WfoServer(tmp_path, env={"WFO_LOG_FORMAT": "json"})
    srv.launch()
    try:
        srv.put_workflow(task_workflow("aud-batch", queue="bq"))
        a = srv.start_exec("aud-batch", id="ab-1")["id"]
        b = srv.start_exec("aud-batch", id="ab-2")["id"]
        tasks = srv.poll(["bq"], max=2, wait="5s")
        assert len(tasks) == 2, tasks
        by = {t["execution_id"]: t for t in tasks}
        r = srv.post("/v1/tasks/complete", {"results": [
            {"task_id": by[a]["task_id"], "lease": by[a]["lease"], "output": 1},
            {"task_id": by[b]["task_id"], "lease": "0" * 32, "output": 2}]})
        assert r.status == 200, r
        assert srv.doc(a, wait="10s")["status"] == "completed"
        assert srv.request("DELETE", f"/v1/executions/{a}").status == 200
    finally:
        assert srv.stop() == 0
    lines = [json.loads(x) for x in srv.stderr().splitlines() if x.startswith("{")]
    audit = [x for x in lines if x.get("msg") == "audit"]
    batch = [x for x in audit if x["action"] == "POST /v1/tasks/complete"]
    assert len(batch) == 1, audit
    assert batch[0]["executions"] == f"{a} {b}" and batch[0]["outcome"] == "partial", batch
    delete = [x for x in audit if x["action"] == "DELETE /v1/executions/{id}"]
    assert delete[0].get("workflow") == "aud-batch" and delete[0]["execution_id"] == a, delete
