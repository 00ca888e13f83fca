"""Triggers (SPEC 2.5): an `event:` trigger starts one execution per event
with an id derived from the event id; a `cron:` trigger fires once per
slot, across restarts. docs/implementation/event_processing.md, Triggers."""

import signal as sig
import time
from datetime import datetime, timezone

from apiutil import WfoServer, server, unique  # noqa: F401


def execs_of(srv, wf):
    r = srv.get(f"/v1/executions?workflow={wf}&limit=100")
    assert r.status == 200, r
    return r.json["executions"]


def wait_execs(srv, wf, n, timeout=20):
    deadline = time.time() + timeout
    while True:
        xs = execs_of(srv, wf)
        if len(xs) >= n or time.time() > deadline:
            return xs
        time.sleep(0.1)


def event_wf(name, etype, **trigger):
    return {"name": name,
            "triggers": [dict({"event": etype}, **trigger)],
            "steps": [{"name": "a", "type": "set", "vars": {"seen": "${ .input }"},
                       "output": "${ .input }"}]}


def kill9(srv):
    srv.proc.send_signal(sig.SIGKILL)
    srv.proc.wait()
    srv._err.close()
    srv.proc = None


def test_event_trigger_starts_one_per_event(server):
    wf = unique("trig-ev")
    etype = unique("order.created")
    server.put_workflow(event_wf(wf, etype, input="${ {order: .event.data, id: .event.id} }"))
    r = server.post("/v1/events", {"type": etype, "id": "e-1", "data": {"n": 1}})
    assert r.status == 202, r
    xs = wait_execs(server, wf, 1)
    assert len(xs) == 1
    d = server.wait_status(xs[0]["id"], "completed")
    assert d["input"] == {"order": {"n": 1}, "id": "e-1"}
    assert d["output"] == {"order": {"n": 1}, "id": "e-1"}
    # the same producer id again: deduplicated, nothing new starts
    r = server.post("/v1/events", {"type": etype, "id": "e-1", "data": {"n": 1}})
    assert r.status == 200, r
    # a second event: a second execution
    r = server.post("/v1/events", {"type": etype, "id": "e-2", "data": {"n": 2}})
    assert r.status == 202, r
    xs = wait_execs(server, wf, 2)
    time.sleep(0.5)
    xs = execs_of(server, wf)
    assert len(xs) == 2, xs
    inputs = sorted(server.wait_status(x["id"], "completed")["input"]["id"] for x in xs)
    assert inputs == ["e-1", "e-2"]


def test_event_trigger_id_is_deterministic_and_other_types_start_nothing(server):
    wf = unique("trig-det")
    etype = unique("thing.done")
    server.put_workflow(event_wf(wf, etype))
    assert server.post("/v1/events", {"type": etype + ".other", "id": "x"}).status == 202
    r = server.post("/v1/events", {"type": etype, "id": "same", "key": "k", "data": [1]})
    assert r.status == 202
    xs = wait_execs(server, wf, 1)
    assert len(xs) == 1
    d = server.wait_status(xs[0]["id"], "completed")
    # no input in the trigger: the execution's input is {event: EVENT}
    ev = d["input"]["event"]
    assert ev["id"] == "same" and ev["type"] == etype and ev["key"] == "k" and ev["data"] == [1]
    # the id is UUID-shaped and derived from (namespace, workflow, event id):
    # starting it by hand with the same input is the same execution
    x = server.start_exec(wf, d["input"], id=xs[0]["id"], expect=200)
    assert x["id"] == xs[0]["id"]
    assert len(xs[0]["id"]) == 36 and xs[0]["id"][14] == "8"


def test_emit_step_triggers(server):
    wf = unique("trig-emit")
    etype = unique("emitted")
    server.put_workflow(event_wf(wf, etype, input="${ .event.data }"))
    em = unique("emitter")
    server.put_workflow({"name": em, "steps": [
        {"name": "tell", "type": "emit", "event": {"type": etype, "data": {"v": 9}}}]})
    x = server.start_exec(em)
    server.wait_status(x["id"], "completed")
    xs = wait_execs(server, wf, 1)
    assert len(xs) == 1
    assert server.wait_status(xs[0]["id"], "completed")["input"] == {"v": 9}


def test_event_trigger_survives_kill9_and_restart_starts_nothing_twice(tmp_path):
    srv = WfoServer(tmp_path / "k").launch()
    try:
        wf = unique("trig-kill")
        etype = unique("k.created")
        srv.put_workflow(event_wf(wf, etype))
        time.sleep(0.01)
        r = srv.post("/v1/events", {"type": etype, "id": "k-1"})
        assert r.status == 202
        kill9(srv)  # maybe before the start was committed: recovery's scan
        srv.launch()
        xs = wait_execs(srv, wf, 1)
        assert len(xs) == 1
        srv.wait_status(xs[0]["id"], "completed")
        srv.stop()
        srv.launch()  # the scan again: the id exists, nothing new
        time.sleep(1)
        assert len(execs_of(srv, wf)) == 1
    finally:
        srv.stop()


def test_cron_fires_once_per_slot_across_restarts(tmp_path):
    srv = WfoServer(tmp_path / "c").launch()
    try:
        wf = unique("trig-cron")
        srv.put_workflow({"name": wf,
                          "triggers": [{"cron": "* * * * *",
                                        "input": {"at": "${ .event.time }"}}],
                          "steps": [{"name": "a", "type": "set", "vars": {"x": 1}}]})
        # the first slot after the workflow was registered: within a minute
        xs = wait_execs(srv, wf, 1, timeout=75)
        assert len(xs) >= 1, srv.stderr()
        d = srv.wait_status(xs[-1]["id"], "completed")
        at = d["input"]["at"]
        slot = datetime.fromisoformat(at.replace("Z", "+00:00"))
        assert slot.second == 0 and slot.microsecond == 0 and slot.tzinfo == timezone.utc
        # a restart in the same slot does not fire it again
        srv.stop()
        srv.launch()
        time.sleep(1.5)
        xs = execs_of(srv, wf)
        ats = [srv.doc(x["id"])["input"]["at"] for x in xs]
        assert len(ats) == len(set(ats)), ats  # one execution per slot
        now = datetime.now(timezone.utc)
        assert len(ats) <= 1 + int((now - slot).total_seconds() // 60) + 1
    finally:
        srv.stop()


def test_bad_cron_is_a_definition_error(server):
    name = unique("bad-cron")
    r = server.put(f"/v1/workflows/{name}", {"name": name,
                                        "triggers": [{"cron": "0 0 30 2 *"}],
                                        "steps": [{"name": "a", "type": "set", "vars": {}}]})
    assert r.status == 400, r
    assert "never fires" in r.text and "triggers[0].cron" in r.text


def test_workflow_registered_after_an_event_sees_only_later_ones(server):
    wf = unique("trig-late")
    etype = unique("late.t")
    # read once with no workflow of the type: the triggers' cache is filled
    assert server.post("/v1/events", {"type": etype, "id": "before"}).status == 202
    time.sleep(0.3)
    server.put_workflow(event_wf(wf, etype, input="${ .event.id }"))
    assert server.post("/v1/events", {"type": etype, "id": "after"}).status == 202
    xs = wait_execs(server, wf, 1)
    time.sleep(0.5)
    xs = execs_of(server, wf)
    assert len(xs) == 1, xs
    assert server.wait_status(xs[0]["id"], "completed")["input"] == "after"
    # a new version with another trigger type: the next event of it starts one
    etype2 = unique("late.t2")
    server.put_workflow(event_wf(wf, etype2, input="${ .event.id }"))
    assert server.post("/v1/events", {"type": etype2, "id": "v2"}).status == 202
    xs = wait_execs(server, wf, 2)
    assert len(xs) == 2, xs
    # the old version's trigger type starts nothing any more
    assert server.post("/v1/events", {"type": etype, "id": "old"}).status == 202
    time.sleep(0.5)
    assert len(execs_of(server, wf)) == 2
