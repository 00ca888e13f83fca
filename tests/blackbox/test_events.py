"""Events and signals (SPEC 2.5): POST /v1/events, await_event, emit,
signals, and the races of docs/implementation/event_processing.md."""

import signal as sig
import subprocess
import time

import pytest

from apiutil import WfoServer, server, unique  # noqa: F401
from conftest import WFO_BIN


def await_wf(name, etype="order.paid", timeout=None, catch=False):
    step = {"name": "wait", "type": "await_event", "event": etype, "key": "${ .input.k }"}
    if timeout:
        step["timeout"] = timeout
    if catch:
        step["catch"] = [{"errors": ["EventTimeout"], "next": "late"}]
    steps = [step, {"name": "done", "type": "set", "vars": {"ok": True},
                    "output": "${ .steps.wait.output }", "end": True}]
    if catch:
        steps.append({"name": "late", "type": "set", "vars": {"late": "${ .error.type }"}})
    return {"name": name, "steps": steps}


def signal_wf(name, n=1):
    steps = [{"name": f"s{i}", "type": "await_event", "signal": "go"} for i in range(n)]
    return {"name": name, "steps": steps}


def post_event(srv, **body):
    return srv.post("/v1/events", body)


def test_event_after_the_wait(server):
    wf = unique("ev-after")
    server.put_workflow(await_wf(wf))
    x = server.start_exec(wf, {"k": "o-1"})
    d = server.wait_step(x["id"], "wait", "waiting")
    step = [s for s in d["steps"] if s["name"] == "wait"][0]
    assert step["waiting_for"] == {"event": "order.paid", "key": "o-1"}
    r = post_event(server, type="order.paid", key="o-1", data={"amount": 5}, source="shop")
    assert r.status == 202, r
    d = server.wait_status(x["id"], "completed")
    out = d["steps"][0]["output"]
    assert out["id"] == r.json["id"] and out["data"] == {"amount": 5}
    assert set(out) == {"id", "type", "key", "source", "data", "time"}
    assert out["type"] == "order.paid" and out["key"] == "o-1" and out["source"] == "shop"


def test_event_before_the_wait_is_not_lost(server):
    wf = unique("ev-before")
    d = await_wf(wf)
    d["steps"].insert(0, {"name": "nap", "type": "sleep", "duration": "300ms"})
    server.put_workflow(d)
    x = server.start_exec(wf, {"k": "o-2"})
    r = post_event(server, type="order.paid", key="o-2", id=unique("e"), data=1)
    assert r.status == 202
    d = server.wait_status(x["id"], "completed")
    assert [s for s in d["steps"] if s["name"] == "wait"][0]["output"]["id"] == r.json["id"]


def test_event_before_the_execution_started_is_not_taken(server):
    wf = unique("ev-older")
    server.put_workflow(await_wf(wf, timeout="600ms", catch=True))
    assert post_event(server, type="order.paid", key="o-old").status == 202
    time.sleep(0.01)
    x = server.start_exec(wf, {"k": "o-old"})
    d = server.wait_status(x["id"], "completed")
    assert d["steps"][0]["status"] == "caught"


def test_duplicate_producer_id(server):
    eid = unique("dup")
    r1 = post_event(server, type="t.dup", key="k", id=eid, data={"n": 1})
    assert r1.status == 202, r1
    r2 = post_event(server, type="t.dup", key="k", id=eid, data={"n": 2})
    assert r2.status == 200, r2
    assert r2.json == r1.json and r2.json["data"] == {"n": 1}


def test_cloudevents_body_as_is(server):
    r = post_event(server, specversion="1.0", id=unique("ce"), source="/shop", type="ce.t",
                   subject="s-1", time="2026-01-02T03:04:05Z", datacontenttype="application/json",
                   data={"a": 1})
    assert r.status == 202, r
    assert r.json["key"] == "s-1" and r.json["time"].startswith("2026-01-02T03:04:05")


def test_cloudevents_data_base64_and_extensions_kept(server):
    """A structured-mode CloudEvent with data_base64 and extension
    attributes is accepted, and the event as answered, as stored (what an
    await_event step gets, the answer to its id again) and as streamed
    carries them as given: data_base64 still encoded, without `data`."""
    wf = unique("ce-wait")
    server.put_workflow(await_wf(wf, etype="ce.b64"))
    x = server.start_exec(wf, {"k": "s-9"})
    server.wait_step(x["id"], "wait", "waiting")
    st = server.stream("/v1/events/stream?types=ce.b64")
    try:
        eid = unique("ce2")
        body = dict(specversion="1.0", type="ce.b64", source="/s", id=eid, subject="s-9",
                    datacontenttype="text/plain", data_base64="aGk=", myext="v",
                    traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                    count=7, flag=True)
        r = post_event(server, **body)
        assert r.status == 202, r
        rec = r.json
        assert "data" not in rec, rec
        assert rec["key"] == "s-9" and rec["id"] == eid and rec["source"] == "/s"
        for k, v in body.items():
            assert rec[k] == v, (k, rec)
        m = st.next()
        assert m["id"] == eid and m["data"] == rec, m
    finally:
        st.close()
    d = server.wait_status(x["id"], "completed")
    assert d["steps"][0]["output"] == rec
    again = post_event(server, **body)
    assert again.status == 200 and again.json == rec, again


def test_cloudevents_extension_alone_and_null_attributes(server):
    r = post_event(server, specversion="1.0", type="ce.t", source="/s", id=unique("ce"),
                   myext="v", data={"a": 1}, dataschema=None, other=None)
    assert r.status == 202, r
    assert r.json["myext"] == "v" and r.json["data"] == {"a": 1}
    assert "other" not in r.json and "dataschema" not in r.json


def test_plain_event_record_unchanged(server):
    r = post_event(server, type="plain.t", key="k", data=[1])
    assert r.status == 202, r
    assert set(r.json) == {"id", "type", "key", "source", "data", "time"}


CE = b'"specversion": "1.0", "type": "ce.t", "source": "/s", '


@pytest.mark.parametrize("body, message", [
    (CE + b'"data": {"a": 1}, "data_base64": "aGk="}', "data, data_base64: "),
    (CE + b'"data_base64": "aGk"}', "data_base64: 3 characters, not a multiple of 4"),
    (CE + b'"data_base64": "a*k="}', "data_base64: byte 1 (0x2a) is not a base64 character"),
    (CE + b'"data_base64": "a=k="}', "data_base64: byte 1 (0x3d)"),
    (CE + b'"data_base64": 5}', "data_base64: expected a string"),
    (CE + b'"myExt": "v"}', "myExt: unknown field, and not a CloudEvents extension"),
    (CE + b'"my_ext": "v"}', "my_ext: unknown field"),
    (CE + b'"' + b"a" * 21 + b'": "v"}', "a" * 21 + ": unknown field"),
    (CE + b'"": "v"}', ": unknown field, and not a CloudEvents extension"),
    (CE + b'"myext": {"a": 1}}', "myext: a CloudEvents extension attribute is a string"),
    (CE + b'"myext": [1]}', "myext: a CloudEvents extension attribute is a string"),
    (CE + b'"myext": 1.5}', "myext: a CloudEvents extension attribute is a string"),
    (CE + b'"myext": 2147483648}', "myext: a CloudEvents integer is from"),
    (CE + b'"datacontenttype": 1}', "datacontenttype: expected a string"),
    (b'{"specversion": 1, "type": "t"}', "specversion: expected a string"),
    # without specversion the body stays strict: no extensions, no data_base64
    (b'{"type": "t", "myext": "v"}', "myext: unknown field (expected"),
    (b'{"type": "t", "data_base64": "aGk="}', "data_base64: unknown field (expected"),
])
def test_bad_cloudevents_are_400(server, body, message):
    if body.startswith(CE):
        body = b"{" + body
    r = server.request("POST", "/v1/events", body=body,
                       headers={"Content-Type": "application/cloudevents+json"})
    assert r.status == 400, r
    assert r.error["type"] == "BadRequest"
    assert r.error["message"].startswith(message), r.error


def test_cloudevents_attributes_over_the_payload_limit(tmp_path):
    srv = WfoServer(tmp_path / "lim", env={"WFO_PAYLOAD_BYTES": "1024"}).launch()
    try:
        r = post_event(srv, specversion="1.0", type="ce.big", source="/s",
                       data_base64="QUFB" * 400)
        assert r.status == 400 and r.error["type"] == "PayloadTooLarge", r
        assert "CloudEvents attributes" in r.error["message"], r.error
        r = post_event(srv, specversion="1.0", type="ce.big", source="/s", data_base64="QUFB")
        assert r.status == 202, r
    finally:
        srv.stop()


def test_two_waiters_on_one_key_each_get_the_event_once(server):
    wf = unique("ev-two")
    d = {"name": wf, "steps": [
        {"name": "a", "type": "await_event", "event": "two.t", "key": "${ .input.k }"},
        {"name": "b", "type": "await_event", "event": "two.t", "key": "${ .input.k }",
         "timeout": "1s", "catch": [{"errors": ["EventTimeout"], "next": "c"}]},
        {"name": "c", "type": "set", "vars": {"x": 1}}]}
    server.put_workflow(d)
    x1 = server.start_exec(wf, {"k": "shared"})
    x2 = server.start_exec(wf, {"k": "shared"})
    server.wait_step(x1["id"], "a", "waiting")
    server.wait_step(x2["id"], "a", "waiting")
    r = post_event(server, type="two.t", key="shared")
    assert r.status == 202
    for x in (x1, x2):
        d = server.wait_status(x["id"], "completed")
        st = {s["name"]: s for s in d["steps"]}
        assert st["a"]["output"]["id"] == r.json["id"]
        # consumed at most once: the second wait does not take it again
        assert st["b"]["status"] == "caught", st["b"]
        assert st["b"]["error"]["type"] == "EventTimeout"


def test_event_timeout_caught(server):
    wf = unique("ev-timeout")
    server.put_workflow(await_wf(wf, timeout="300ms", catch=True))
    x = server.start_exec(wf, {"k": "never"})
    d = server.wait_status(x["id"], ("completed", "failed"))
    assert d["status"] == "completed", d
    st = d["steps"][0]
    assert st["status"] == "caught" and st["error"]["type"] == "EventTimeout"


def test_event_timeout_uncaught_fails(server):
    wf = unique("ev-timeout-f")
    server.put_workflow(await_wf(wf, timeout="200ms"))
    x = server.start_exec(wf, {"k": "never"})
    d = server.wait_status(x["id"], "failed")
    assert d["error"]["type"] == "EventTimeout"


def test_signal_before_the_wait_and_in_order(server):
    wf = unique("sig")
    d = signal_wf(wf, 2)
    d["steps"].insert(0, {"name": "nap", "type": "sleep", "duration": "400ms"})
    server.put_workflow(d)
    x = server.start_exec(wf)
    r1 = server.post(f"/v1/executions/{x['id']}/signals/go", {"data": {"n": 1}})
    r2 = server.post(f"/v1/executions/{x['id']}/signals/go", {"data": {"n": 2}})
    assert r1.status == 202 and r2.status == 202, (r1, r2)
    d = server.wait_status(x["id"], "completed")
    st = {s["name"]: s for s in d["steps"]}
    assert st["s0"]["output"]["data"] == {"n": 1} and st["s1"]["output"]["data"] == {"n": 2}
    assert st["s0"]["output"]["type"] == "go"
    assert set(st["s0"]["output"]) == {"id", "type", "data", "time"}


def test_signal_after_the_wait(server):
    wf = unique("sig-after")
    server.put_workflow(signal_wf(wf))
    x = server.start_exec(wf)
    d = server.wait_step(x["id"], "s0", "waiting")
    assert d["steps"][0]["waiting_for"] == {"signal": "go"}
    assert server.post(f"/v1/executions/{x['id']}/signals/go", {}).status == 202
    d = server.wait_status(x["id"], "completed")
    assert d["steps"][0]["output"]["data"] is None


def test_signal_to_ended_is_409_and_unknown_404(server):
    wf = unique("sig-end")
    server.put_workflow({"name": wf, "steps": [{"name": "a", "type": "set", "vars": {"x": 1}}]})
    x = server.start_exec(wf)
    server.wait_status(x["id"], "completed")
    r = server.post(f"/v1/executions/{x['id']}/signals/go", {"data": 1})
    assert r.status == 409 and r.error["type"] == "Conflict", r
    r = server.post("/v1/executions/no-such-exec/signals/go", {"data": 1})
    assert r.status == 404 and r.error["type"] == "NotFound", r


def test_emit_wakes_a_waiter(server):
    waiter, emitter = unique("emit-w"), unique("emit-e")
    server.put_workflow(await_wf(waiter, etype="shipped"))
    server.put_workflow({"name": emitter, "steps": [
        {"name": "tell", "type": "emit",
         "event": {"type": "shipped", "key": "${ .input.k }", "data": {"by": "ups"}}}]})
    w = server.start_exec(waiter, {"k": "o-9"})
    server.wait_step(w["id"], "wait", "waiting")
    e = server.start_exec(emitter, {"k": "o-9"})
    de = server.wait_status(e["id"], "completed")
    eid = de["steps"][0]["output"]
    assert isinstance(eid, str) and de["output"] == eid
    dw = server.wait_status(w["id"], "completed")
    out = dw["steps"][0]["output"]
    assert out["id"] == eid and out["data"] == {"by": "ups"}


@pytest.mark.parametrize("body", [
    b"{bad", b"[]", b'{"key": "k"}', b'{"type": ""}', b'{"type": 5}',
    b'{"type": "t", "bogus": 1}', b'{"type": "t", "time": "yesterday"}',
    b'{"type": "' + b"x" * 1000 + b'"}', b'{"type": "t", "key": "' + b"k" * 1000 + b'"}',
    b'{"type": "t", "id": ""}',
    # an id the stream's `id:` line and Last-Event-ID could not carry back
    b'{"type": "t", "id": "a\\r\\nb"}', b'{"type": "t", "id": "a\\tb"}',
    b'{"type": "t", "id": " lead"}', b'{"type": "t", "id": "trail "}',
])
def test_bad_events_are_400(server, body):
    r = server.request("POST", "/v1/events", body=body,
                       headers={"Content-Type": "application/json"})
    assert r.status == 400, r
    assert r.error["type"] == "BadRequest"


def test_bad_signal_body_is_400(server):
    wf = unique("sig-bad")
    server.put_workflow(signal_wf(wf))
    x = server.start_exec(wf)
    r = server.post(f"/v1/executions/{x['id']}/signals/go", {"dat": 1})
    assert r.status == 400, r
    r = server.request("POST", f"/v1/executions/{x['id']}/signals/go", body=b"{nope",
                       headers={"Content-Type": "application/json"})
    assert r.status == 400, r


def kill9(srv):
    srv.proc.send_signal(sig.SIGKILL)
    srv.proc.wait()
    srv._err.close()
    srv.proc = None


def test_kill9_between_acceptance_and_completion(tmp_path):
    srv = WfoServer(tmp_path / "a").launch()
    try:
        wf = unique("ev-kill")
        d = {"name": wf, "steps": [
            {"name": "w1", "type": "await_event", "event": "k.t", "key": "${ .input.k }"},
            {"name": "w2", "type": "await_event", "signal": "go"}]}
        srv.put_workflow(d)
        x = srv.start_exec(wf, {"k": "kk"})
        srv.wait_step(x["id"], "w1", "waiting")
        kill9(srv)
        srv.launch()
        # an event posted after the restart
        r = post_event(srv, type="k.t", key="kk")
        assert r.status == 202
        srv.wait_step(x["id"], "w2", "waiting")
        # a signal accepted, then kill -9 at once: the restart delivers it
        assert srv.post(f"/v1/executions/{x['id']}/signals/go", {"data": 7}).status == 202
        kill9(srv)
        srv.launch()
        d = srv.wait_status(x["id"], "completed")
        st = {s["name"]: s for s in d["steps"]}
        assert st["w1"]["output"]["id"] == r.json["id"]
        assert st["w2"]["output"]["data"] == 7
        h = srv.get(f"/v1/executions/{x['id']}/history").json
        assert [e["type"] for e in h].count("event.consumed") == 1
        assert [e["type"] for e in h].count("signal.consumed") == 1
    finally:
        srv.stop()


def test_event_posted_while_down_waiter_loaded_at_restart(tmp_path):
    srv = WfoServer(tmp_path / "b").launch()
    try:
        wf = unique("ev-restart")
        srv.put_workflow(await_wf(wf, etype="r.t"))
        x = srv.start_exec(wf, {"k": "r1"})
        srv.wait_step(x["id"], "wait", "waiting")
        # accepted, then the server dies before it could act on it
        r = post_event(srv, type="r.t", key="r1")
        assert r.status == 202
        kill9(srv)
        srv.launch()
        d = srv.wait_status(x["id"], "completed")
        assert d["steps"][0]["output"]["id"] == r.json["id"]
    finally:
        srv.stop()


def run_cli(srv, *args):
    env = {"WFO_SERVER": f"http://127.0.0.1:{srv.port}", "PATH": "/usr/bin:/bin"}
    return subprocess.run([str(WFO_BIN), *args], capture_output=True, text=True, env=env,
                          timeout=30)


def test_cli_signal_and_emit(server):
    wf = unique("cli-sig")
    server.put_workflow(signal_wf(wf))
    x = server.start_exec(wf)
    p = run_cli(server, "signal", x["id"], "go", "--data", '{"v": 1}')
    assert p.returncode == 0, p.stderr
    d = server.wait_status(x["id"], "completed")
    assert d["steps"][0]["output"]["data"] == {"v": 1}
    p = run_cli(server, "signal", x["id"], "go")
    assert p.returncode == 1 and "409" in p.stderr or "ended" in p.stderr, p
    p = run_cli(server, "emit", "cli.t", "--key", "k", "--data", "{\"a\": 1}", "--id",
                unique("cli-ev"))
    assert p.returncode == 0, p.stderr
    assert '"cli.t"' in p.stdout
    p = run_cli(server, "emit")
    assert p.returncode == 2 and p.stderr.startswith("wfo: "), p
    p = run_cli(server, "signal", "only-id")
    assert p.returncode == 2 and p.stderr.startswith("wfo: "), p
    p = run_cli(server, "emit", "t", "--data", "{bad")
    assert p.returncode == 2, p
