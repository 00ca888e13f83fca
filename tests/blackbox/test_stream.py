"""GET /v1/events/stream (SPEC 2.5 "Outbound", SPEC 4): the outbox as
Server-Sent Events: headers at once, id/event/data, lifecycle events,
the types and execution filters, Last-Event-ID, and `wfo events tail`."""

import json
import signal
import socket
import subprocess
import time

import pytest

from apiutil import server, unique  # noqa: F401
from conftest import WFO_BIN


def post_event(srv, **body):
    r = srv.post("/v1/events", body)
    assert r.status in (200, 202), r
    return r.json


def next_of(st, pred, limit=50):
    """The next message that pred accepts (skipping the others)."""
    for _ in range(limit):
        m = st.next()
        if pred(m):
            return m
    raise AssertionError("no such message")


def test_headers_come_at_once(server):
    t0 = time.monotonic()
    st = server.stream(timeout=5)
    try:
        assert st.status == 200
        assert st.headers["content-type"].startswith("text/event-stream")
        assert time.monotonic() - t0 < 2
    finally:
        st.close()


def test_posted_event_arrives(server):
    st = server.stream()
    try:
        t = unique("stream.posted")
        ev = post_event(server, type=t, key="k1", data={"n": 1}, source="shop")
        m = next_of(st, lambda m: m["event"] == t)
        assert m["id"] == ev["id"]
        assert m["data"]["id"] == ev["id"] and m["data"]["type"] == t
        assert m["data"]["key"] == "k1" and m["data"]["data"] == {"n": 1}
        assert m["data"]["source"] == "shop" and m["data"]["time"]
    finally:
        st.close()


def test_a_duplicate_event_is_sent_once(server):
    t = unique("stream.dup")
    st = server.stream(f"/v1/events/stream?types={t}")
    try:
        eid = unique("dup")
        post_event(server, type=t, id=eid, data=1)
        post_event(server, type=t, id=eid, data=2)
        post_event(server, type=t, id=eid + "-2", data=3)
        ms = st.take(2)
        assert [m["id"] for m in ms] == [eid, eid + "-2"]
        assert [m["data"]["data"] for m in ms] == [1, 3]
    finally:
        st.close()


def test_lifecycle_events_of_an_execution(server):
    wf = unique("stream-wf")
    server.put_workflow({"name": wf, "steps": [
        {"name": "tell", "type": "emit", "event": {"type": "order.shipped", "key": "o-9"}},
        {"name": "a", "type": "set", "vars": {"x": 1}, "output": {"x": 1}}]})
    xid = unique("x")
    st = server.stream(f"/v1/events/stream?execution={xid}")
    try:
        server.start_exec(wf, {"in": 1}, id=xid)
        ms = st.take(3)
        assert [m["event"] for m in ms] == ["execution.started", "order.shipped",
                                            "execution.completed"]
        for m in (ms[0], ms[2]):
            assert m["data"]["key"] == xid
            assert m["data"]["data"]["execution_id"] == xid
            assert m["data"]["data"]["workflow"] == wf
            assert m["id"] == m["data"]["id"]
        assert ms[0]["data"]["data"]["input"] == {"in": 1}
        assert ms[2]["data"]["data"]["output"] == {"x": 1}
        assert ms[1]["data"]["key"] == "o-9"
    finally:
        st.close()


def test_failed_execution_and_step(server):
    wf = unique("stream-fail")
    server.put_workflow({"name": wf, "steps": [
        {"name": "boom", "type": "fail", "error": {"type": "Boom", "message": "no"}}]})
    xid = unique("xf")
    st = server.stream(f"/v1/events/stream?execution={xid}&types=step.*,execution.failed")
    try:
        server.start_exec(wf, id=xid)
        ms = st.take(2)
        assert [m["event"] for m in ms] == ["step.failed", "execution.failed"]
        assert ms[0]["data"]["data"]["step"] == "boom"
        assert ms[0]["data"]["data"]["execution_id"] == xid
        assert ms[1]["data"]["data"]["error"]["type"] == "Boom"
    finally:
        st.close()


def test_cancelled_execution(server):
    wf = unique("stream-cancel")
    server.put_workflow({"name": wf, "steps": [{"name": "nap", "type": "sleep",
                                                "duration": "1h"}]})
    xid = unique("xc")
    st = server.stream(f"/v1/events/stream?execution={xid}&types=execution.cancelled")
    try:
        server.start_exec(wf, id=xid)
        r = server.post(f"/v1/executions/{xid}/cancel", {})
        assert r.status < 300, r
        m = st.next()
        assert m["event"] == "execution.cancelled"
        assert m["data"]["data"]["execution_id"] == xid
    finally:
        st.close()


def test_types_filter_exact_and_prefix(server):
    p = unique("flt")
    st = server.stream(f"/v1/events/stream?types={p}.exact,{p}.pre.*")
    try:
        for t in (f"{p}.other", f"{p}.exact", f"{p}.exactly", f"{p}.pre.a", f"{p}.prefix",
                  f"{p}.pre.b.c", f"{p}.pre"):
            post_event(server, type=t)
        post_event(server, type=f"{p}.exact", id=unique("last"))
        ms = st.take(4)
        assert [m["event"] for m in ms] == [f"{p}.exact", f"{p}.pre.a", f"{p}.pre.b.c",
                                            f"{p}.exact"]
    finally:
        st.close()


def test_last_event_id_resumes_without_loss_or_repeat(server):
    t = unique("resume")
    st = server.stream(f"/v1/events/stream?types={t}")
    ids = [post_event(server, type=t, data=i)["id"] for i in range(3)]
    try:
        got = st.take(2)
        assert [m["id"] for m in got] == ids[:2]
    finally:
        st.close()
    # while disconnected
    ids += [post_event(server, type=t, data=i)["id"] for i in range(3, 6)]
    st = server.stream(f"/v1/events/stream?types={t}", headers={"Last-Event-ID": got[-1]["id"]})
    try:
        ids.append(post_event(server, type=t, data=6)["id"])
        got2 = st.take(5)
        assert [m["id"] for m in got2] == ids[2:]
        assert [m["data"]["data"] for m in got2] == [2, 3, 4, 5, 6]
        with pytest.raises((socket.timeout, TimeoutError)):
            st.r.fp.raw._sock.settimeout(1.0)
            st.next()
    finally:
        st.close()


def test_keep_alive_comes_within_15s(server):
    st = server.stream(f"/v1/events/stream?types={unique('quiet')}", timeout=20)
    try:
        t0 = time.monotonic()
        while not any("keep-alive" in c for c in st.comments):
            line = st.r.readline()
            assert line, "stream ended"
            if line.startswith(b":"):
                st.comments.append(line.decode().strip())
        assert time.monotonic() - t0 <= 15.5
    finally:
        st.close()


def test_other_namespace_sees_nothing(tmp_path):
    from apiutil import WfoServer
    import hashlib
    toks = {"a": "token-aaaaaaaaaaaaaaaaaaaaaaaa", "b": "token-bbbbbbbbbbbbbbbbbbbbbbbb"}
    cfg = tmp_path / "wfo.yaml"
    cfg.write_text("auth:\n  tokens:\n" + "".join(
        f"    - {{token_sha256: {hashlib.sha256(v.encode()).hexdigest()}, namespace: ns-{k},"
        f" role: admin}}\n" for k, v in toks.items()))
    srv = WfoServer(tmp_path / "s", args=["--config", str(cfg)]).launch()
    try:
        hb = {"Authorization": f"Bearer {toks['b']}"}
        ha = {"Authorization": f"Bearer {toks['a']}"}
        stb = srv.stream(headers=hb)
        sta = srv.stream(headers=ha)
        r = srv.post("/v1/events", {"type": "secret.thing"}, headers=ha)
        assert r.status == 202, r
        r = srv.post("/v1/events", {"type": "b.thing"}, headers=hb)
        assert r.status == 202, r
        assert sta.next()["event"] == "secret.thing"
        assert stb.next()["event"] == "b.thing"
        assert srv.get("/v1/events/stream").status == 401
        sta.close()
        stb.close()
    finally:
        assert srv.stop() == 0, srv.stderr()


def test_wfo_events_tail_prints_them(server):
    t = unique("tail")
    p = subprocess.Popen([str(WFO_BIN), "events", "tail", "--types", f"{t}.*", "--server",
                          f"http://127.0.0.1:{server.port}"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)  # the stream starts from now
        for i in range(3):
            post_event(server, type=f"{t}.x", data={"n": i})
        lines = [p.stdout.readline() for _ in range(3)]
        got = [json.loads(x) for x in lines]
        assert [e["data"]["n"] for e in got] == [0, 1, 2]
        assert all(e["type"] == f"{t}.x" for e in got)
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=10) == 0
    finally:
        if p.poll() is None:
            p.kill()


def test_events_retention_deletes_old_outbox_rows(tmp_path):
    from apiutil import WfoServer, store_rows
    srv = WfoServer(tmp_path, env={"WFO_EVENTS_RETENTION": "1s"}).launch()
    try:
        old = post_event(srv, type="old.one")["id"]
        deadline = time.monotonic() + 20
        n = None
        while time.monotonic() < deadline:
            n = store_rows(srv, "SELECT count(*) FROM outbox WHERE event_id = ?", (old,))[0][0]
            if n == 0:
                break
            time.sleep(0.5)
        assert n == 0
        # a Last-Event-ID that retention removed resumes from the present
        st = srv.stream(headers={"Last-Event-ID": old})
        try:
            new = post_event(srv, type="new.one")["id"]
            assert st.next()["id"] == new
        finally:
            st.close()
    finally:
        assert srv.stop() == 0, srv.stderr()


def test_server_stops_with_a_stream_open(tmp_path):
    from apiutil import WfoServer
    srv = WfoServer(tmp_path).launch()
    st = srv.stream()
    try:
        t0 = time.monotonic()
        assert srv.stop() == 0, srv.stderr()
        assert time.monotonic() - t0 < 5
        with pytest.raises((EOFError, OSError, ValueError)):
            for _ in range(10):
                st.next()
    finally:
        st.close()
