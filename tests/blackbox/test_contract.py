"""Rules of the stable contract (SPEC 2.4, 3, 4, 5, 7) that earlier builds
broke: a step's input in the document, deleting executions and workflows,
metric labels only from workflows that ran, retrying an execution that
failed with WorkflowTimeout, parallel branches compensated concurrently.
docs/interfaces/api.md and docs/implementation/compensation.md state them."""

import json
import re
import sqlite3
import subprocess
import time
from datetime import datetime

import pytest

from apiutil import WfoServer, server, set_workflow, store_rows, unique  # noqa: F401
from conftest import WFO_BIN, run_def, run_wfo, sh_handler, step, write_def, write_script


def client(srv, *args, timeout=60):
    """`wfo ARGS --server URL`: (rc, stdout, stderr)."""
    return run_wfo(list(args) + ["--server", f"http://127.0.0.1:{srv.port}"], timeout=timeout)


def sleep_workflow(name, duration="30s"):
    return {"name": name, "steps": [{"name": "nap", "type": "sleep", "duration": duration}]}


# ---- SPEC 3: a step's input -----------------------------------------------

def test_step_input_in_run_document(tmp_path):
    """Each step shows what its last attempt was given, templates evaluated;
    a step without `input` was given the execution's input."""
    rc, doc, err = run_def(tmp_path, {"name": "inputs", "steps": [
        {"name": "a", "type": "set", "vars": {"x": 1}},
        {"name": "b", "type": "set", "input": {"sum": "${ .input.n + 1 }", "k": "lit"},
         "vars": {"y": 2}},
    ]}, input={"n": 41})
    assert rc == 0, err
    assert step(doc, "a")["input"] == {"n": 41}
    assert step(doc, "b")["input"] == {"sum": 42, "k": "lit"}


def test_step_input_last_attempt_and_api(server, tmp_path):
    """Through the API too, and the input of a retried step is its last
    attempt's (the template sees the attempt's context)."""
    name = unique("step-input")
    server.put_workflow({"name": name, "steps": [
        {"name": "t", "type": "task", "queue": name,
         "input": {"order": "${ .input.order }", "fixed": [1, 2]},
         "retry": {"max_attempts": 2, "initial_interval": "10ms"}},
    ]})
    e = server.start_exec(name, input={"order": "o-7"})
    tasks = server.poll([name], wait="5s")
    assert tasks and tasks[0]["input"] == {"order": "o-7", "fixed": [1, 2]}
    r = server.post(f"/v1/tasks/{tasks[0]['task_id']}/fail",
                    {"lease": tasks[0]["lease"], "error": {"type": "Flaky", "message": "x"}})
    assert r.status == 200, r
    tasks = server.poll([name], wait="5s")
    r = server.post(f"/v1/tasks/{tasks[0]['task_id']}/complete",
                    {"lease": tasks[0]["lease"], "output": {"ok": True}})
    assert r.status == 200, r
    d = server.wait_status(e["id"], "completed")
    s = [x for x in d["steps"] if x["name"] == "t"][0]
    assert s["attempts"] == 2
    assert s["input"] == {"order": "o-7", "fixed": [1, 2]}


def chunk_records(data):
    """Decodes a stored chunk (src/store/chunk.h) into (tag, fields) tuples."""
    assert data[:3] == b"WC1"
    p, out = 3, []

    def i64():
        nonlocal p
        v = int.from_bytes(data[p:p + 8], "little", signed=True)
        p += 8
        return v

    def text():
        nonlocal p
        n = int.from_bytes(data[p:p + 4], "little")
        p += 4
        if n == 0xffffffff:
            return None
        v = data[p:p + n].decode()
        assert data[p + n] == 0
        p += n + 1
        return v

    while p < len(data):
        tag = chr(data[p])
        p += 1
        if tag == "E":
            out.append(("E", {"time": i64(), "state": text()}))
        elif tag == "S":
            f = {"path": text(), "ord": i64(), "status": text(), "attempts": i64(),
                 "output": text(), "error": text(), "state": text(), "started_at": i64(),
                 "finished_at": i64(), "input": text()}
            out.append(("S", f))
        elif tag == "H":
            out.append(("H", {"seq": i64(), "time": i64(), "type": text(), "step": text(),
                              "data": text()}))
        else:
            raise AssertionError(f"bad tag {tag!r}")
    return out


def downgrade_to_v3(db):
    """Rewrites a schema-4 store as schema 3 wrote it: the timers' token
    column was named attempt. (The tables of versions 5 to 8 stay: their
    migrations make them only when missing; version 9's column goes, as
    its migration adds it.)"""
    con = sqlite3.connect(db)
    con.executescript("""
        ALTER TABLE timers RENAME COLUMN token TO attempt;
        ALTER TABLE events DROP COLUMN attrs;
        PRAGMA user_version = 3;
    """)
    con.commit()
    con.close()


def downgrade_to_v2(db):
    """Rewrites a schema-4 store as schema 2 wrote it: steps and history
    rows instead of chunks, the state in the execution row, no shards."""
    downgrade_to_v3(db)
    con = sqlite3.connect(db)
    con.executescript("""
        CREATE TABLE steps (exec_id TEXT NOT NULL, path TEXT NOT NULL, ord INTEGER NOT NULL,
          status TEXT NOT NULL, attempts INTEGER NOT NULL, output TEXT, error TEXT, state TEXT,
          started_at INTEGER, finished_at INTEGER, input TEXT,
          PRIMARY KEY (exec_id, path)) WITHOUT ROWID;
        CREATE TABLE history (exec_id TEXT NOT NULL, seq INTEGER NOT NULL, time INTEGER,
          type TEXT NOT NULL, step TEXT, data TEXT, PRIMARY KEY (exec_id, seq)) WITHOUT ROWID;
    """)
    for exec_id, data in con.execute("SELECT exec_id, data FROM chunks ORDER BY exec_id, n"
                                     ).fetchall():
        for tag, f in chunk_records(data):
            if tag == "E":
                st = json.loads(f["state"])
                st.pop("chunks", None)
                con.execute("UPDATE executions SET state = ?, updated_at = ? WHERE id = ?",
                            (json.dumps(st), f["time"], exec_id))
            elif tag == "S":
                con.execute("INSERT OR REPLACE INTO steps VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                            (exec_id, f["path"], f["ord"], f["status"], f["attempts"],
                             f["output"], f["error"], f["state"], f["started_at"] or None,
                             f["finished_at"] or None, f["input"]))
            else:
                con.execute("INSERT INTO history VALUES (?,?,?,?,?,?)",
                            (exec_id, f["seq"], f["time"], f["type"], f["step"], f["data"]))
    con.executescript("""
        DROP TABLE chunks; DROP TABLE shards; DROP INDEX executions_resume;
        ALTER TABLE executions DROP COLUMN shard; ALTER TABLE executions DROP COLUMN resume;
        ALTER TABLE timers DROP COLUMN shard; ALTER TABLE tasks DROP COLUMN shard;
        CREATE INDEX executions_active ON executions (seq) WHERE status IN ('running', 'paused');
        PRAGMA user_version = 2;
    """)
    con.commit()
    con.close()


@pytest.mark.sqlite_only("SQLite files of schema 1 to 3; PostgreSQL's first schema is 6")
@pytest.mark.parametrize("version", [1, 2, 3])
def test_old_store_migrates(tmp_path, version):
    """A store written by an older schema (1: steps without input; 2: steps
    and history rows, no chunks or shards; 3: the timers' token column
    named attempt) opens, is migrated to 4, keeps its ended executions
    readable and its sleeping one running."""
    srv = WfoServer(tmp_path / "s").launch()
    name, sleeper = unique("migrate"), unique("migsleep")
    try:
        srv.put_workflow(set_workflow(name))
        srv.put_workflow({"name": sleeper, "steps": [
            {"name": "nap", "type": "sleep", "duration": "3s"},
            {"name": "done", "type": "succeed", "output": {"slept": True}}]})
        e = srv.start_exec(name, input={"v": 1}, query="?wait=10s")
        assert e["status"] == "completed"
        before = srv.get(f"/v1/executions/{e['id']}/history").json
        z = srv.start_exec(sleeper)
    finally:
        srv.stop()
    if version == 3:
        downgrade_to_v3(srv.db)
    else:
        downgrade_to_v2(srv.db)
    if version == 1:
        con = sqlite3.connect(srv.db)
        con.execute("ALTER TABLE steps DROP COLUMN input")
        con.execute("DROP INDEX executions_ended")
        con.execute("PRAGMA user_version = 1")
        con.commit()
        con.close()
    srv.launch()
    try:
        d = srv.doc(e["id"])
        assert d["status"] == "completed"
        assert [s["name"] for s in d["steps"]] == ["s", "out"]
        assert d["output"] == {"v": 1}
        if version == 1:
            assert all(s["input"] is None for s in d["steps"])
        assert srv.get(f"/v1/executions/{e['id']}/history").json == before
        z2 = srv.wait_status(z["id"], "completed")
        assert z2["output"] == {"slept": True}
        h = srv.get(f"/v1/executions/{z['id']}/history").json
        assert [x["seq"] for x in h] == list(range(1, len(h) + 1))
        e2 = srv.start_exec(name, input={"v": 2}, query="?wait=10s")
        assert all(s["input"] == {"v": 2} for s in e2["steps"])
    finally:
        srv.stop()
    con = sqlite3.connect(srv.db)
    assert con.execute("PRAGMA user_version").fetchone()[0] == 9
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "steps" not in tables and "history" not in tables and "chunks" in tables
    assert "outbox" in tables and "subscriptions" in tables
    assert con.execute("SELECT count(*) FROM shards").fetchone()[0] == 16
    con.close()


# ---- SPEC 4, 5: deleting ----------------------------------------------------

def test_delete_execution(server):
    name = unique("del-exec")
    server.put_workflow(set_workflow(name))
    e = server.start_exec(name, query="?wait=10s")
    assert e["status"] == "completed"
    r = server.request("DELETE", f"/v1/executions/{e['id']}")
    assert r.status == 200, r
    assert r.json == {"id": e["id"], "deleted": True}
    assert server.get(f"/v1/executions/{e['id']}").status == 404
    assert server.get(f"/v1/executions/{e['id']}/history").status == 404
    listed = server.get(f"/v1/executions?workflow={name}").json["executions"]
    assert listed == []
    r = server.request("DELETE", f"/v1/executions/{e['id']}")
    assert r.status == 404, r
    assert r.error["type"] == "NotFound"
    # the id can be used again: nothing of the old execution is left
    e2 = server.start_exec(name, id=e["id"], input={"again": True}, query="?wait=10s")
    assert e2["status"] == "completed" and e2["input"] == {"again": True}


def test_delete_running_execution_is_409(server):
    name = unique("del-running")
    server.put_workflow(sleep_workflow(name))
    e = server.start_exec(name)
    r = server.request("DELETE", f"/v1/executions/{e['id']}")
    assert r.status == 409, r
    assert "running" in r.error["message"]
    assert server.doc(e["id"])["status"] == "running"
    assert server.post(f"/v1/executions/{e['id']}/pause").status == 200
    r = server.request("DELETE", f"/v1/executions/{e['id']}")
    assert r.status == 409, r
    assert server.post(f"/v1/executions/{e['id']}/terminate").status == 200
    r = server.request("DELETE", f"/v1/executions/{e['id']}")
    assert r.status == 200, r


def test_delete_removes_rows_and_timers(tmp_path):
    """Its steps, history, timers and tasks are gone from the store, and a
    restart does not bring anything of it back."""
    srv = WfoServer(tmp_path / "s").launch()
    name = unique("del-rows")
    try:
        srv.put_workflow({"name": name, "timeout": "1h", "steps": [
            {"name": "t", "type": "task", "queue": name}]})
        e = srv.start_exec(name)
        assert srv.post(f"/v1/executions/{e['id']}/cancel").status == 200
        assert srv.request("DELETE", f"/v1/executions/{e['id']}").status == 200
    finally:
        srv.stop()
    for table, col in [("executions", "id"), ("chunks", "exec_id"),
                       ("timers", "exec_id"), ("tasks", "exec_id")]:
        n = store_rows(srv, f"SELECT count(*) FROM {table} WHERE {col} = ?", (e["id"],))[0][0]
        assert n == 0, table
    srv.launch()
    try:
        assert srv.get(f"/v1/executions/{e['id']}").status == 404
    finally:
        srv.stop()


def test_delete_workflow(server):
    name = unique("del-wf")
    server.put_workflow(set_workflow(name))
    v2 = dict(set_workflow(name), description="second")
    assert server.put(f"/v1/workflows/{name}", v2).json["version"] == 2
    e = server.start_exec(name, query="?wait=10s")
    assert e["status"] == "completed"
    r = server.request("DELETE", f"/v1/workflows/{name}")
    assert r.status == 200, r
    assert r.json == {"name": name, "deleted": True}
    assert server.get(f"/v1/workflows/{name}").status == 404
    assert server.get(f"/v1/workflows/{name}/versions/1").status == 404
    assert name not in [w["name"] for w in server.get("/v1/workflows").json["workflows"]]
    # starting it is a 404 now, and the ended execution stays readable
    r = server.post("/v1/executions", {"workflow": name})
    assert r.status == 404, r
    assert server.doc(e["id"])["status"] == "completed"
    assert server.request("DELETE", f"/v1/workflows/{name}").status == 404
    # registering it again starts over at version 1, with the new body
    r = server.put(f"/v1/workflows/{name}", v2)
    assert r.status == 201 and r.json["version"] == 1, r
    e = server.start_exec(name, query="?wait=10s")
    assert e["status"] == "completed" and e["version"] == 1


def test_ended_execution_of_a_deleted_workflow(server):
    """SPEC 4: ended executions stay readable after DELETE /v1/workflows,
    and DELETE /v1/executions/{id} deletes one that has ended: also when
    its workflow is gone (the engine cannot load it any more); the other
    operations on it are 409 (it has ended), not 404."""
    name = unique("del-wf-then-exec")
    server.put_workflow(set_workflow(name))
    a = server.start_exec(name, query="?wait=10s")
    b = server.start_exec(name, query="?wait=10s")
    assert a["status"] == b["status"] == "completed"
    assert server.request("DELETE", f"/v1/workflows/{name}").status == 200
    for op in ("cancel", "terminate", "pause", "resume", "retry"):
        r = server.post(f"/v1/executions/{b['id']}/{op}", {})
        assert r.status == 409, (op, r)
    r = server.request("DELETE", f"/v1/executions/{a['id']}")
    assert r.status == 200, r
    assert r.json == {"id": a["id"], "deleted": True}
    assert server.get(f"/v1/executions/{a['id']}").status == 404
    assert server.request("DELETE", f"/v1/executions/{a['id']}").status == 404
    assert server.doc(b["id"])["status"] == "completed"


def test_event_is_in_the_context_after_await_event(tmp_path):
    """SPEC 2.1: `event` is in the context after `await_event` (its own
    output expression included), and stays there, also across a restart;
    a signal wait sets it too."""
    srv = WfoServer(tmp_path / "s").launch()
    try:
        name = unique("event-ctx")
        srv.put_workflow({"name": name, "steps": [
            {"name": "w", "type": "await_event", "event": "ctx.paid", "key": "${ .input.k }",
             "output": "${ {id: .result.id, seen: .event.id} }"},
            {"name": "gate", "type": "await_event", "signal": "go"},
            {"name": "after", "type": "set",
             "vars": {"paid": "${ .steps.w.output.seen }", "now": "${ .event.data }"}},
        ], "output": "${ .vars }"})
        x = srv.start_exec(name, {"k": "k1"})
        srv.wait_step(x["id"], "w", "waiting")
        r = srv.post("/v1/events", {"id": "ev-ctx-1", "type": "ctx.paid", "key": "k1",
                                    "data": {"amount": 5}})
        assert r.status in (200, 202), r
        d = srv.wait_step(x["id"], "gate", "waiting")
        assert step(d, "w")["output"] == {"id": "ev-ctx-1", "seen": "ev-ctx-1"}, d
        srv.proc.kill()  # the context comes back from the store
        srv.proc.wait()
        srv.proc = None
        srv.launch()
        r = srv.post(f"/v1/executions/{x['id']}/signals/go", {"data": {"n": 1}})
        assert r.status == 202, r
        d = srv.wait_status(x["id"], "completed")
        assert d["output"]["paid"] == "ev-ctx-1", d
        assert d["output"]["now"] == {"n": 1}, d
    finally:
        srv.stop()


def test_delete_workflow_while_running_is_409(server):
    name = unique("del-wf-running")
    server.put_workflow(sleep_workflow(name))
    e = server.start_exec(name)
    r = server.request("DELETE", f"/v1/workflows/{name}")
    assert r.status == 409, r
    assert e["id"] in r.error["message"]
    assert server.get(f"/v1/workflows/{name}").status == 200
    assert server.post(f"/v1/executions/{e['id']}/cancel").status == 200
    assert server.request("DELETE", f"/v1/workflows/{name}").status == 200


def test_delete_commands(server, tmp_path):
    name = unique("del-cli")
    path = write_def(tmp_path, set_workflow(name))
    rc, out, err = client(server, "workflow", "put", path)
    assert rc == 0, err
    rc, out, err = client(server, "start", name, "--wait")
    assert rc == 0, err
    exec_id = json.loads(out)["id"]
    rc, out, err = client(server, "delete", exec_id)
    assert rc == 0, err
    assert json.loads(out) == {"id": exec_id, "deleted": True}
    rc, out, err = client(server, "get", exec_id)
    assert rc != 0 and "not found" in err
    rc, out, err = client(server, "workflow", "delete", name)
    assert rc == 0, err
    assert json.loads(out) == {"name": name, "deleted": True}
    rc, out, err = client(server, "workflow", "delete", name)
    assert rc != 0 and "not found" in err
    rc, out, err = client(server, "workflow", "delete")
    assert rc == 2 and "missing argument" in err


# ---- SPEC 7: metric labels ------------------------------------------------

def test_metric_labels_only_from_workflows_that_ran(server):
    """Asking for workflows that do not exist adds no series."""
    ghosts = [unique("ghost") for _ in range(5)]
    for g in ghosts:
        r = server.post("/v1/executions", {"workflow": g})
        assert r.status == 404, r
        r = server.post("/v1/executions", {"workflow": g, "id": unique("id")})
        assert r.status == 404, r
    name = unique("real")
    server.put_workflow(set_workflow(name))
    server.start_exec(name, query="?wait=10s")
    text = server.get("/metrics").text
    for g in ghosts:
        assert g not in text
    assert f'wfo_executions_started_total{{workflow="{name}"}} 1' in text
    assert f'wfo_executions_completed_total{{workflow="{name}"}} 1' in text


def test_metrics_count_executions_that_outlive_a_restart(tmp_path):
    """An execution started before a restart and ending after it is counted
    under its workflow (not 'unknown')."""
    srv = WfoServer(tmp_path / "s").launch()
    name = unique("restart-metrics")
    try:
        srv.put_workflow(sleep_workflow(name, "1500ms"))
        e = srv.start_exec(name)
    finally:
        srv.stop()
    srv.launch()
    try:
        srv.wait_status(e["id"], "completed")
        text = srv.get("/metrics").text
        assert f'wfo_executions_completed_total{{workflow="{name}"}} 1' in text
        assert 'workflow="unknown"' not in text
    finally:
        srv.stop()


# ---- SPEC 2.4: any failed execution can be retried -------------------------

def test_retry_after_workflow_timeout(server):
    """An execution that failed with WorkflowTimeout is retried like any
    other: it goes on from the step it was at (attempts reset), steps that
    completed keep their outputs, and the timeout counts from the retry."""
    name = unique("wf-timeout")
    server.put_workflow({"name": name, "timeout": "1500ms", "steps": [
        {"name": "first", "type": "set", "vars": {"a": 1}},
        {"name": "t", "type": "task", "queue": name},
        {"name": "last", "type": "set", "vars": {"b": 2}},
    ]})
    e = server.start_exec(name)
    d = server.wait_status(e["id"], "failed")
    assert d["error"]["type"] == "WorkflowTimeout"
    assert [s["status"] for s in d["steps"]] == ["completed", "cancelled"]
    time.sleep(0.5)  # the old attempt's task is gone with it
    assert server.poll([name]) == []
    r = server.post(f"/v1/executions/{e['id']}/retry")
    assert r.status == 200, r
    assert r.json["status"] == "running" and r.json["error"] is None
    # the workflow timer restarted: well past 1.5 s after the start, the
    # execution still runs
    time.sleep(0.3)
    tasks = server.poll([name], wait="5s")
    assert len(tasks) == 1 and tasks[0]["attempt"] == 1
    r = server.post(f"/v1/tasks/{tasks[0]['task_id']}/complete",
                    {"lease": tasks[0]["lease"], "output": {"done": True}})
    assert r.status == 200, r
    d = server.wait_status(e["id"], "completed")
    assert [s["status"] for s in d["steps"]] == ["completed", "completed", "completed"]
    hist = server.get(f"/v1/executions/{e['id']}/history").json
    retried = [h for h in hist if h["type"] == "execution.retried"]
    assert len(retried) == 1 and retried[0]["data"] == {"step": "t"}
    assert retried[0]["step"] == "t"  # SPEC 2.4: "with the step it resumes from"
    assert sum(1 for h in hist if h["type"] == "step.started" and h["step"] == "first") == 1


def test_retry_after_workflow_timeout_in_parallel(server):
    """Inside a parallel block, a branch that completed is not run again;
    the branch that was waiting goes on."""
    name = unique("wf-timeout-par")
    server.put_workflow({"name": name, "timeout": "1s", "steps": [
        {"name": "par", "type": "parallel", "branches": [
            {"name": "quick", "steps": [{"name": "q", "type": "set", "vars": {"q": 1}}]},
            {"name": "slow", "steps": [{"name": "t", "type": "task", "queue": name}]},
        ]},
    ]})
    e = server.start_exec(name)
    d = server.wait_status(e["id"], "failed")
    assert d["error"]["type"] == "WorkflowTimeout"
    r = server.post(f"/v1/executions/{e['id']}/retry")
    assert r.status == 200, r
    tasks = server.poll([name], wait="5s")
    assert len(tasks) == 1 and tasks[0]["step"] == "par/slow/t"
    r = server.post(f"/v1/tasks/{tasks[0]['task_id']}/complete",
                    {"lease": tasks[0]["lease"], "output": {"t": 2}})
    assert r.status == 200, r
    d = server.wait_status(e["id"], "completed")
    assert d["output"] == {"quick": {"q": 1}, "slow": {"t": 2}}
    hist = server.get(f"/v1/executions/{e['id']}/history").json
    assert sum(1 for h in hist if h["type"] == "step.started" and h["step"] == "par/quick/q") == 1


def test_retry_of_completed_is_409(server):
    name = unique("retry-done")
    server.put_workflow(set_workflow(name))
    e = server.start_exec(name, query="?wait=10s")
    r = server.post(f"/v1/executions/{e['id']}/retry")
    assert r.status == 409, r
