"""Settings of SPEC 6 that were accepted and ignored: each now has its
effect. `retry` (the server's default policy), `retention.finished`,
`store.pool_size` and `server.http_threads`
(docs/operations/configuration.md)."""

import json
import os
import socket
import threading
import time

from apiutil import TEST_DB, WfoServer, set_workflow, store_rows, unique


def server_with(tmp_path, config):
    path = tmp_path / "wfo.yaml"
    path.write_text(config)
    return WfoServer(tmp_path / "s", args=["--config", str(path)]).launch()


def fail_task(srv, queue):
    tasks = srv.poll([queue], wait="5s")
    assert len(tasks) == 1, tasks
    t = tasks[0]
    r = srv.post(f"/v1/tasks/{t['task_id']}/fail",
                 {"lease": t["lease"], "error": {"type": "Flaky", "message": "again"}})
    assert r.status == 200, r
    return t


def test_default_retry_policy_applies(tmp_path):
    """A step without a retry of its own gets the server's `retry` (here two
    attempts, not SPEC's three); a step with one keeps it."""
    srv = server_with(tmp_path, "retry: {max_attempts: 2, initial_interval: 10ms}\n")
    try:
        name = unique("default-retry")
        srv.put_workflow({"name": name, "steps": [
            {"name": "own", "type": "task", "queue": f"{name}-o",
             "retry": {"max_attempts": 3, "initial_interval": "10ms"}},
            {"name": "plain", "type": "task", "queue": f"{name}-p"},
        ]})
        e = srv.start_exec(name)
        assert [fail_task(srv, f"{name}-o")["attempt"] for _ in range(2)] == [1, 2]
        t = srv.poll([f"{name}-o"], wait="5s")[0]
        assert t["attempt"] == 3
        r = srv.post(f"/v1/tasks/{t['task_id']}/complete", {"lease": t["lease"], "output": 1})
        assert r.status == 200, r
        assert [fail_task(srv, f"{name}-p")["attempt"] for _ in range(2)] == [1, 2]
        d = srv.wait_status(e["id"], "failed", timeout=10)
        assert [s["attempts"] for s in d["steps"]] == [3, 2]
    finally:
        srv.stop()


def test_default_retry_policy_can_forbid_retries(tmp_path):
    srv = server_with(tmp_path, "retry: {max_attempts: 1}\n")
    try:
        name = unique("no-retry")
        srv.put_workflow({"name": name, "steps": [{"name": "t", "type": "task", "queue": name}]})
        e = srv.start_exec(name)
        fail_task(srv, name)
        d = srv.wait_status(e["id"], "failed", timeout=10)
        assert d["steps"][0]["attempts"] == 1
    finally:
        srv.stop()


def test_default_retry_policy_non_retryable(tmp_path):
    """The server's `retry.non_retryable` has its effect (it was accepted
    and dropped): a type it lists fails the step at its first attempt; any
    other is retried."""
    srv = server_with(tmp_path, "retry: {max_attempts: 3, initial_interval: 10ms,"
                                " non_retryable: [Flaky]}\n")
    try:
        name = unique("server-non-retryable")
        srv.put_workflow({"name": name, "steps": [{"name": "t", "type": "task", "queue": name}]})
        e = srv.start_exec(name)
        fail_task(srv, name)  # Flaky
        d = srv.wait_status(e["id"], "failed", timeout=10)
        assert d["steps"][0]["attempts"] == 1, d
    finally:
        srv.stop()


def test_retention_deletes_finished_executions(tmp_path):
    """Executions that ended longer ago than retention.finished are deleted
    with their rows, counted in a metric; running ones stay."""
    srv = server_with(tmp_path, "retention: {finished: 1s}\n")
    try:
        name = unique("retention")
        srv.put_workflow(set_workflow(name))
        srv.put_workflow({"name": f"{name}-run", "steps": [
            {"name": "t", "type": "task", "queue": f"{name}-q"}]})
        done = [srv.start_exec(name, query="?wait=10s") for _ in range(3)]
        running = srv.start_exec(f"{name}-run")
        assert all(d["status"] == "completed" for d in done)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if all(srv.get(f"/v1/executions/{d['id']}").status == 404 for d in done):
                break
            time.sleep(0.2)
        for d in done:
            assert srv.get(f"/v1/executions/{d['id']}").status == 404
        assert srv.doc(running["id"])["status"] == "running"
        text = srv.get("/metrics").text
        n = [line for line in text.splitlines() if line.startswith("wfo_retention_deleted_total ")]
        assert n and int(n[0].split()[1]) >= 3, n
    finally:
        srv.stop()
    for d in done:
        for table, col in [("executions", "id"), ("chunks", "exec_id")]:
            assert store_rows(srv, f"SELECT count(*) FROM {table} WHERE {col} = ?",
                              (d["id"],))[0][0] == 0


def test_pool_size_bounds_reader_connections(tmp_path):
    """store.pool_size: 1 means one reader connection, however many requests
    read at once (counted as the server's open descriptors of the file)."""
    srv = server_with(tmp_path, "store: {pool_size: 1}\n")
    try:
        name = unique("pool")
        srv.put_workflow(set_workflow(name))
        for _ in range(50):
            srv.start_exec(name)
        errors = []

        def reader():
            for _ in range(15):
                r = srv.get(f"/v1/executions?workflow={name}&limit=1000")
                if r.status != 200:
                    errors.append(r)

        threads = [threading.Thread(target=reader) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors[:3]
        if TEST_DB == "postgres":
            # every connection of the pool, reads and commits alike: one
            n = store_rows(srv, "SELECT count(*) FROM pg_stat_activity"
                                " WHERE datname = current_database() AND pid <> pg_backend_pid()")
            assert n[0][0] == 1, (n, "one connection expected")
            return
        fd_dir = f"/proc/{srv.proc.pid}/fd"
        db = os.path.realpath(srv.db)
        fds = [f for f in os.listdir(fd_dir) if os.path.realpath(os.path.join(fd_dir, f)) == db]
        assert 1 <= len(fds) <= 2, (len(fds), "writer + one reader expected")
    finally:
        srv.stop()


def threads_of(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    raise AssertionError("no Threads: line")


def thread_names(pid):
    names = []
    for tid in sorted(os.listdir(f"/proc/{pid}/task")):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                names.append(f.read().strip())
        except OSError:
            pass
    return names


def settled_threads(pid, timeout=10):
    """The thread count once it stops changing: threads the server starts
    on its first requests may still be starting (more so on a busy host)."""
    deadline = time.monotonic() + timeout
    n = threads_of(pid)
    while time.monotonic() < deadline:
        time.sleep(0.3)
        m = threads_of(pid)
        if m == n:
            break
        n = m
    return n


def open_idle_connections(srv, n):
    """n keep-alive connections, each after one answered request."""
    socks = []
    for _ in range(n):
        s = socket.create_connection((srv.host, srv.port), timeout=10)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b" 200 " in s.recv(4096)
        socks.append(s)
    return socks


def test_http_threads_zero_is_a_thread_per_connection(tmp_path):
    """server.http_threads: 0: each open connection has a thread of its own."""
    srv = server_with(tmp_path, "server: {http_threads: 0}\n")
    try:
        before = threads_of(srv.proc.pid)
        socks = open_idle_connections(srv, 20)
        assert threads_of(srv.proc.pid) >= before + 15  # a thread of a closed one may linger
        for s in socks:
            s.close()
    finally:
        srv.stop()


def test_http_threads_pool_serves_many_connections(tmp_path):
    """server.http_threads: 2: idle connections take no thread; long polls wait in
    threads of their own, so requests on other connections are answered meanwhile."""
    srv = server_with(tmp_path, "server: {http_threads: 2}\n")
    try:
        name = unique("pool-mode")
        srv.put_workflow({"name": name, "steps": [{"name": "t", "type": "task", "queue": name}]})
        before = settled_threads(srv.proc.pid)
        socks = open_idle_connections(srv, 30)
        # A thread a connection would be 30 more; on a busy machine a few
        # threads of the engine or the sanitizer may start meanwhile.
        after = threads_of(srv.proc.pid)
        assert after <= before + 10, thread_names(srv.proc.pid)
        got = []

        def poller():
            got.extend(srv.poll([name], wait="10s"))

        pollers = [threading.Thread(target=poller) for _ in range(6)]
        for t in pollers:
            t.start()
        time.sleep(0.5)
        t0 = time.monotonic()
        assert srv.get("/healthz").status == 200
        ids = [srv.start_exec(name)["id"] for _ in range(6)]
        assert time.monotonic() - t0 < 5
        for t in pollers:
            t.join()
        assert sorted(t["execution_id"] for t in got) == sorted(ids)
        for t in got:
            r = srv.post(f"/v1/tasks/{t['task_id']}/complete", {"lease": t["lease"], "output": 1})
            assert r.status == 200, r
        for i in ids:
            assert srv.doc(i, wait="10s")["status"] == "completed"
        # the idle connections are still served
        for s in socks:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert b" 200 " in s.recv(4096)
            s.close()
    finally:
        assert srv.stop() == 0


def test_http_threads_pool_start_whose_client_left(tmp_path):
    """server.http_threads: 2: a start whose client hangs up while its commit is
    under way still starts, once, and nothing of it is left behind (the server
    stops cleanly, with no sanitizer report)."""
    srv = server_with(tmp_path, "server: {http_threads: 2}\n")
    try:
        name = unique("left")
        srv.put_workflow({"name": name, "steps": [{"name": "t", "type": "task", "queue": name}]})
        ids = [unique("gone") for _ in range(20)]
        for i in ids:
            body = json.dumps({"workflow": name, "id": i}).encode()
            s = socket.create_connection((srv.host, srv.port), timeout=10)
            s.sendall(b"POST /v1/executions HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Type: application/json\r\n"
                      b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            s.close()  # before the answer
        deadline = time.monotonic() + 20
        for i in ids:
            while True:
                r = srv.get(f"/v1/executions/{i}")
                if r.status == 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert r.status == 200, (i, r)
            assert r.json["workflow"] == name
        listed = srv.get(f"/v1/executions?workflow={name}&limit=100").json
        assert len(listed["executions"]) == 20
    finally:
        assert srv.stop() == 0


def test_http_threads_pool_results_whose_client_left(tmp_path):
    """server.http_threads: 2: task results (POST /v1/tasks/complete and
    /v1/tasks/{id}/complete, answered by the engine's callback in pool
    mode) whose client hangs up before the answer are still applied, once,
    and nothing of them is left behind (a clean stop, no sanitizer
    report)."""
    srv = server_with(tmp_path, "server: {http_threads: 2}\n")
    try:
        name = unique("leftres")
        srv.put_workflow({"name": name, "steps": [{"name": "t", "type": "task", "queue": name}]})
        ids = [srv.start_exec(name, input={"i": i})["id"] for i in range(20)]
        tasks = srv.poll([name], max=20, wait="5s")
        assert len(tasks) == 20, tasks
        for k, t in enumerate(tasks):  # in batches of one, and alone
            one = {"lease": t["lease"], "output": {"i": t["input"]["i"]}}
            path = f"/v1/tasks/{t['task_id']}/complete" if k % 2 else "/v1/tasks/complete"
            body = json.dumps(one if k % 2 else
                              {"results": [dict(one, task_id=t["task_id"])]}).encode()
            s = socket.create_connection((srv.host, srv.port), timeout=10)
            s.sendall(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Type: application/json\r\n"
                      b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            s.close()  # before the answer
        for i, eid in enumerate(ids):
            d = srv.doc(eid, wait="20s")
            assert d["status"] == "completed" and d["output"] == {"i": i}, d
        # each applied once: the same results again are no longer current
        r = srv.post("/v1/tasks/complete", {"results": [
            {"task_id": t["task_id"], "lease": t["lease"], "output": 0} for t in tasks]})
        assert r.status == 200, r
        assert {x.get("status_code") for x in r.json["results"]} == {409}, r.json
    finally:
        assert srv.stop() == 0
