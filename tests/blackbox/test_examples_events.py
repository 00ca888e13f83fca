"""The event-driven examples, run against a server as their pages say:

- examples/approval_workflow.yaml (docs/examples/approval_workflow.md):
  registered with `wfo workflow put`, started with short waits in the
  input, answered by signals (`wfo signal` and POST .../signals/NAME):
  approved in time, approved after the reminder, rejected, escalated to the
  manager who decides, and expired;
- examples/order_workflow.yaml with its child examples/order_shipping.yaml
  (docs/examples/order_workflow.md): started by an `order.placed` event
  (its trigger); the test plays the payment service, the warehouse and the
  carrier by POSTing events to /v1/events, one of them (stock.reserved)
  before the execution waits for it. It checks the outputs, the history,
  the child, and what the outbox sent on GET /v1/events/stream: a
  completed order, a failed payment (the stock is released), a failed
  shipment (the child fails, the payment is refunded and the stock
  released), and an order.placed delivered twice (one execution).
"""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from apiutil import server, unique  # noqa: F401  (server is a fixture)
from conftest import WFO_BIN, check_no_crash

ROOT = Path(__file__).resolve().parents[2]
APPROVAL = ROOT / "examples" / "approval_workflow.yaml"
ORDER = ROOT / "examples" / "order_workflow.yaml"
SHIPPING = ROOT / "examples" / "order_shipping.yaml"


def cli(srv, *args, expect=0):
    """`wfo ARGS` against srv (WFO_SERVER), from the repository root; its stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WFO_")}
    env["WFO_SERVER"] = f"http://127.0.0.1:{srv.port}"
    p = subprocess.run([str(WFO_BIN), *args], capture_output=True, text=True, env=env,
                       cwd=ROOT, timeout=60)
    check_no_crash(p.returncode, p.stderr)
    assert p.returncode == expect, (args, p.stdout, p.stderr)
    return p.stdout


def steps_of(doc):
    return {s["name"]: s for s in doc["steps"]}


def history(srv, xid):
    r = srv.get(f"/v1/executions/{xid}/history")
    assert r.status == 200, r
    return r.json


def take_until(st, pred, stop, limit=200):
    """Messages of stream st that pred accepts, up to and with the first
    that stop accepts."""
    got = []
    for _ in range(limit):
        m = st.next()
        if pred(m):
            got.append(m)
            if stop(m):
                return got
    raise AssertionError(f"no final message among {got}")


# ---- the approval --------------------------------------------------------------

REQUEST = {"amount": 1200, "requester": "ada", "approver": "bob", "manager": "carol"}


@pytest.fixture(scope="module")
def approval(server):
    out = cli(server, "workflow", "put", "examples/approval_workflow.yaml")
    assert json.loads(out)["name"] == "expense-approval"
    return server


def start_approval(srv, **waits):
    """Starts one approval (the request id unique) with its id known, and
    opens the event stream of that execution first; returns (id, request
    id, stream)."""
    rid = unique("exp")
    xid = unique("approval")
    st = srv.stream(f"/v1/events/stream?execution={xid}", timeout=30)
    inp = {"request": dict(REQUEST, id=rid), **waits}
    out = cli(srv, "start", "expense-approval", "--id", xid, "--input", json.dumps(inp))
    assert json.loads(out)["id"] == xid
    return xid, rid, st


def outbound(st):
    """The stream's messages up to the execution's end: [(type, data)]."""
    ms = take_until(st, lambda m: True,
                    lambda m: m["event"] in ("execution.completed", "execution.failed"))
    return [(m["event"], m["data"]) for m in ms]


def test_approval_approved_in_time(approval):
    srv = approval
    xid, rid, st = start_approval(srv)  # the defaults: 24h, 24h, 7d
    try:
        srv.wait_step(xid, "wait/approve/signal", "waiting")
        d = srv.doc(xid)
        assert steps_of(d)["wait/approve/signal"]["waiting_for"] == {"signal": "approve"}
        assert steps_of(d)["wait/timer/sleep"]["status"] == "waiting"
        cli(srv, "signal", xid, "approve", "--data", '{"by": "bob", "comment": "fine"}')
        d = srv.wait_status(xid, ("completed", "failed"))
        assert d["status"] == "completed", d
        assert d["output"] == {"decision": "approved", "by": "bob", "comment": "fine",
                               "request": rid, "reminded": False, "escalated": False}
        s = steps_of(d)
        assert s["wait/timer/sleep"]["status"] == "cancelled"
        assert s["wait/reject/signal"]["status"] == "cancelled"
        # the race's result: the winning branch only, its last step's output
        assert s["wait"]["output"] == {"approve": {"answer": {
            "decision": "approved", "by": "bob", "comment": "fine"}}}
        assert "remind" not in s and "escalate" not in s
        evs = outbound(st)
        types = [t for t, _ in evs]
        assert types == ["execution.started", "approval.requested", "approval.approved",
                         "execution.completed"], types
        req = evs[1][1]
        assert req["key"] == rid and req["data"]["to"] == "bob"
        assert req["data"]["request"]["amount"] == 1200
        assert evs[2][1]["data"] == {"to": "ada", "answer": {"decision": "approved", "by": "bob",
                                                             "comment": "fine"}}
        h = [e["type"] for e in history(srv, xid)]
        assert h.count("signal.consumed") == 1 and h[-1] == "execution.completed"
    finally:
        st.close()


def test_approval_rejected(approval):
    srv = approval
    xid, rid, st = start_approval(srv)
    try:
        # sent right after the start, without looking whether the step waits
        # yet: a signal that comes first queues up (SPEC 2.5)
        r = srv.post(f"/v1/executions/{xid}/signals/reject",
                     {"data": {"by": "bob", "comment": "too much"}})
        assert r.status == 202, r
        d = srv.wait_status(xid, ("completed", "failed"))
        assert d["status"] == "completed", d
        assert d["output"]["decision"] == "rejected" and d["output"]["comment"] == "too much"
        assert d["output"]["reminded"] is False
        assert steps_of(d)["wait/approve/signal"]["status"] == "cancelled"
        types = [t for t, _ in outbound(st)]
        assert types == ["execution.started", "approval.requested", "approval.rejected",
                         "execution.completed"], types
        # the execution has ended: another answer is refused
        r = srv.post(f"/v1/executions/{xid}/signals/approve", {"data": {"by": "bob"}})
        assert r.status == 409, r
    finally:
        st.close()


def test_approval_approved_after_the_reminder(approval):
    srv = approval
    xid, rid, st = start_approval(srv, remind_after="300ms")
    try:
        srv.wait_step(xid, "wait_again/approve/signal", "waiting")
        s = steps_of(srv.doc(xid))
        assert s["wait/timer/sleep"]["status"] == "completed"
        assert s["wait/approve/signal"]["status"] == "cancelled"
        assert s["remind"]["status"] == "completed"
        cli(srv, "signal", xid, "approve", "--data", '{"by": "bob"}')
        d = srv.wait_status(xid, ("completed", "failed"))
        assert d["output"] == {"decision": "approved", "by": "bob", "comment": None,
                               "request": rid, "reminded": True, "escalated": False}, d
        evs = outbound(st)
        assert [t for t, _ in evs] == ["execution.started", "approval.requested",
                                       "approval.reminder", "approval.approved",
                                       "execution.completed"]
        assert evs[2][1]["data"]["to"] == "bob" and evs[2][1]["key"] == rid
    finally:
        st.close()


def test_approval_escalated_to_the_manager(approval):
    srv = approval
    xid, rid, st = start_approval(srv, remind_after="200ms", escalate_after="200ms")
    try:
        srv.wait_step(xid, "manager/reject/signal", "waiting")
        cli(srv, "signal", xid, "reject", "--data", '{"by": "carol", "comment": "not this year"}')
        d = srv.wait_status(xid, ("completed", "failed"))
        assert d["output"] == {"decision": "rejected", "by": "carol", "comment": "not this year",
                               "request": rid, "reminded": True, "escalated": True}, d
        evs = outbound(st)
        assert [t for t, _ in evs] == ["execution.started", "approval.requested",
                                       "approval.reminder", "approval.escalated",
                                       "approval.rejected", "execution.completed"]
        esc = evs[3][1]["data"]
        assert esc["to"] == "carol" and esc["approver"] == "bob"
        h = history(srv, xid)
        assert [e["type"] for e in h].count("signal.consumed") == 1
    finally:
        st.close()


def test_approval_expires_when_nobody_answers(approval):
    srv = approval
    xid, rid, st = start_approval(srv, remind_after="100ms", escalate_after="100ms",
                                  manager_timeout="100ms")
    try:
        d = srv.wait_status(xid, ("completed", "failed"))
        assert d["status"] == "failed", d
        assert d["error"]["type"] == "ApprovalExpired" and d["error"]["step"] == "expired"
        assert rid in d["error"]["message"]
        evs = outbound(st)
        assert [t for t, _ in evs] == ["execution.started", "approval.requested",
                                       "approval.reminder", "approval.escalated",
                                       "step.failed", "execution.failed"]
    finally:
        st.close()


# ---- the order -----------------------------------------------------------------

ORDER_TYPES = "order.*,payment.*,stock.*,shipment.*,execution.*,step.*"


@pytest.fixture(scope="module")
def orders(server):
    for f in ("examples/order_shipping.yaml", "examples/order_workflow.yaml"):
        cli(server, "workflow", "put", f)
    return server


def post_event(srv, expect=202, **body):
    r = srv.post("/v1/events", body)
    assert r.status == expect, r
    return r.json


def place_order(srv, oid):
    """POSTs order.placed for oid; returns the execution its trigger started."""
    order = {"id": oid, "customer": "ada", "amount": 42,
             "items": [{"sku": "tea", "qty": 2}], "address": "1 Main St"}
    post_event(srv, type="order.placed", id=f"placed-{oid}", key=oid, source="shop", data=order)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        r = srv.get("/v1/executions?workflow=order-fulfilment&limit=1000")
        assert r.status == 200, r
        for x in r.json["executions"]:
            if srv.doc(x["id"])["input"].get("id") == oid:
                return x["id"], order
        time.sleep(0.05)
    pytest.fail(f"no execution started for order {oid}")


def order_stream(srv):
    return srv.stream(f"/v1/events/stream?types={ORDER_TYPES}", timeout=30)


def of_order(oid, ids):
    """Messages about order oid: its events (key) and the lifecycle of ids."""
    return lambda m: m["data"]["key"] == oid or m["data"]["key"] in ids


def test_order_completed(orders):
    srv = orders
    oid = unique("o")
    st = order_stream(srv)
    try:
        xid, order = place_order(srv, oid)
        srv.wait_step(xid, "payment/completed/wait", "waiting")
        d = srv.doc(xid)
        assert steps_of(d)["payment/completed/wait"]["waiting_for"] == {
            "event": "payment.completed", "key": oid}
        assert "stock" not in steps_of(d)
        # the warehouse answers before the execution waits for it: kept
        stock = post_event(srv, type="stock.reserved", key=oid, source="warehouse",
                           data={"warehouse": "north"})
        # another order's answer and another type on this key change nothing
        post_event(srv, type="payment.completed", key=oid + "-other", data={"payment": "x"})
        post_event(srv, type="payment.refused", key=oid, data={})
        time.sleep(0.2)
        assert srv.doc(xid)["status"] == "running"
        pay = post_event(srv, type="payment.completed", key=oid, source="payments",
                         data={"payment": "pay-1"})
        srv.wait_step(xid, "ship", "running")
        d = srv.doc(xid)
        s = steps_of(d)
        assert s["stock"]["output"]["id"] == stock["id"]
        assert s["payment"]["output"]["completed"]["id"] == pay["id"]
        assert s["payment/failed/wait"]["status"] == "cancelled"
        child = s["ship"]["child"]
        srv.wait_step(child, "carrier/dispatched/wait", "waiting")
        cd = srv.doc(child)
        assert cd["parent"] == {"id": xid, "step": "ship"}
        assert cd["workflow"] == "order-shipping"
        assert cd["input"] == {"order": oid, "address": "1 Main St", "items": order["items"]}
        post_event(srv, type="shipment.dispatched", key=oid, source="carrier",
                   data={"carrier": "ups", "tracking": "1Z9"})
        d = srv.wait_status(xid, ("completed", "failed"))
        assert d["status"] == "completed", d
        assert d["output"] == {"order": oid, "payment": "pay-1", "warehouse": "north",
                               "shipment": {"carrier": "ups", "tracking": "1Z9"}}
        assert srv.doc(child)["status"] == "completed"
        assert d["compensation"] is None

        # the history: each wait consumed exactly its event
        h = history(srv, xid)
        consumed = [e["data"]["id"] for e in h if e["type"] == "event.consumed"]
        assert consumed == [pay["id"], stock["id"]], consumed
        emitted = [e["data"]["type"] for e in h if e["type"] == "event.emitted"]
        assert emitted == ["payment.requested", "stock.requested", "order.completed"]

        # the outbox, as the stream sent it, in commit order
        ms = take_until(st, of_order(oid, {xid, child}),
                        lambda m: m["event"] == "execution.completed"
                        and m["data"]["key"] == xid)
        types = [m["event"] for m in ms]
        assert types[:4] == ["order.placed", "execution.started", "payment.requested",
                             "stock.requested"], types
        for t in ("stock.reserved", "payment.refused", "payment.completed",
                  "shipment.requested", "shipment.dispatched", "order.completed"):
            assert types.count(t) == 1, (t, types)
        assert types.count("execution.started") == 2  # the order and its shipment
        assert types.count("execution.completed") == 2
        assert types.index("stock.reserved") < types.index("payment.completed") \
            < types.index("shipment.requested") < types.index("shipment.dispatched") \
            < types.index("order.completed") < len(types) - 1
        done = [m for m in ms if m["event"] == "order.completed"][0]["data"]
        assert done["key"] == oid
        assert done["data"] == {"order": oid, "payment": "pay-1", "tracking": "1Z9"}
        ship = [m for m in ms if m["event"] == "shipment.requested"][0]["data"]
        assert ship["data"]["address"] == "1 Main St"
    finally:
        st.close()


def test_order_payment_failed_releases_the_stock(orders):
    srv = orders
    oid = unique("o")
    st = order_stream(srv)
    try:
        xid, _ = place_order(srv, oid)
        srv.wait_step(xid, "payment/failed/wait", "waiting")
        post_event(srv, type="payment.failed", key=oid, source="payments",
                   data={"reason": "card declined"})
        d = srv.wait_status(xid, ("completed", "failed"))
        assert d["status"] == "failed", d
        assert d["error"]["type"] == "PaymentFailed" and d["error"]["step"] == "payment_failed"
        assert d["error"]["message"] == f"payment of order {oid} failed: card declined"
        assert d["error"]["details"] == {"reason": "card declined"}
        assert d["compensation"] == {"status": "completed"}
        s = steps_of(d)
        assert s["request_stock"]["status"] == "compensated"
        assert "charged" not in s and "stock" not in s and "ship" not in s
        ms = take_until(st, of_order(oid, {xid}),
                        lambda m: m["event"] == "execution.failed" and m["data"]["key"] == xid)
        types = [m["event"] for m in ms]
        assert types == ["order.placed", "execution.started", "payment.requested",
                         "stock.requested", "payment.failed", "step.failed", "stock.release",
                         "execution.failed"], types
        assert ms[6]["data"]["data"] == {"order": oid}
    finally:
        st.close()


def test_order_shipment_failed_refunds_and_releases(orders):
    srv = orders
    oid = unique("o")
    st = order_stream(srv)
    try:
        xid, _ = place_order(srv, oid)
        srv.wait_step(xid, "payment/completed/wait", "waiting")
        post_event(srv, type="payment.completed", key=oid, data={"payment": "pay-2"})
        post_event(srv, type="stock.reserved", key=oid, data={"warehouse": "south"})
        srv.wait_step(xid, "ship", "running")
        child = steps_of(srv.doc(xid))["ship"]["child"]
        srv.wait_step(child, "carrier/failed/wait", "waiting")
        post_event(srv, type="shipment.failed", key=oid, data={"reason": "address unknown"})
        d = srv.wait_status(xid, ("completed", "failed"))
        assert d["status"] == "failed", d
        assert d["error"]["type"] == "ChildFailed" and d["error"]["step"] == "ship"
        assert d["error"]["details"]["type"] == "ShipmentFailed"
        assert "address unknown" in d["error"]["details"]["message"]
        assert d["compensation"] == {"status": "completed"}
        s = steps_of(d)
        assert s["charged"]["status"] == "compensated"
        assert s["request_stock"]["status"] == "compensated"
        cd = srv.doc(child)
        assert cd["status"] == "failed" and cd["error"]["type"] == "ShipmentFailed"
        ms = take_until(st, of_order(oid, {xid, child}),
                        lambda m: m["event"] == "execution.failed" and m["data"]["key"] == xid)
        types = [m["event"] for m in ms]
        # undone newest first: the refund, then the stock
        assert types[-3:] == ["payment.refund", "stock.release", "execution.failed"], types
        assert ms[-3]["data"]["data"] == {"order": oid, "payment": "pay-2"}
    finally:
        st.close()


def test_order_placed_twice_starts_one_execution(orders):
    srv = orders
    oid = unique("o")
    xid, order = place_order(srv, oid)
    # the shop sends the same event again (same producer id): 200, nothing new
    again = post_event(srv, expect=200, type="order.placed", id=f"placed-{oid}", key=oid,
                       data=order)
    assert again["id"] == f"placed-{oid}"
    time.sleep(0.5)
    r = srv.get("/v1/executions?workflow=order-fulfilment&limit=1000")
    mine = [x for x in r.json["executions"] if srv.doc(x["id"])["input"].get("id") == oid]
    assert [x["id"] for x in mine] == [xid]
    srv.post(f"/v1/executions/{xid}/cancel", {})
    srv.wait_status(xid, "cancelled")


# ---- the pages show the files as they are ----------------------------------------


@pytest.mark.nobinary
@pytest.mark.parametrize("page,files", [
    ("approval_workflow.md", [APPROVAL]),
    ("order_workflow.md", [ORDER, SHIPPING]),
])
def test_doc_shows_the_example_as_it_is(page, files):
    text = (ROOT / "docs" / "examples" / page).read_text()
    for f in files:
        assert f.read_text() in text, f
