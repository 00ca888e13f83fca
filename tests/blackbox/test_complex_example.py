"""examples/complex_workflow.yaml, run exactly as its header comment says:
the payment service examples/services/payments.py on a free port (started
here with /usr/bin/python3, port 0, ready once it prints "listening PORT"),
the worker commands of examples/handlers/travel.sh, `wfo run` from the
repository root. TRAVEL_LOG (a file in tmp_path) records each booking and
cancellation.

- a good card: completed, with the bookings and the charge id in the output;
- card 4000-0002 (declined, 402): failed with HttpError, every booking
  cancelled in the reverse of the order the bookings completed (read from
  the history of the execution, kept with --db);
- card 5000-0503 (503 twice): completed after the charge step's 3 attempts.

docs/examples/complex_workflow.md walks through the same runs."""

import json
import shlex
import subprocess
import threading
from pathlib import Path

import pytest

from conftest import match, run_wfo, step, step_names
from test_saga import comp_run, history_of, typed

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "complex_workflow.yaml"
SERVICE = ROOT / "examples" / "services" / "payments.py"
BRANCHES = ("flight", "hotel", "car")


def header_command():
    """The `build/wfo run ...` command of the example's header comment, as argv.

    It runs from `build/wfo run` to the end of the comment (lines joined by
    backslashes; the --input JSON spans two lines inside its quotes)."""
    comment = []
    for line in EXAMPLE.read_text().splitlines():
        if not line.startswith("#"):
            break
        comment.append(line[1:].strip())
    text = "\n".join(comment)
    assert "/usr/bin/python3 examples/services/payments.py 8089 &" in text
    argv = shlex.split(text[text.index("build/wfo run"):].replace("\\\n", " "))
    assert argv[:3] == ["build/wfo", "run", "examples/complex_workflow.yaml"], argv
    assert argv[-2] == "--input", argv
    return argv


def command_for(card, url):
    """The header's command with wfo at $WFO_BIN, the card and the service's URL in the input."""
    argv = header_command()
    i = argv.index("--input")
    inp = json.loads(argv[i + 1])
    assert inp == {"trip": "ada-lisbon", "card": "4242", "amount": 1200, "payments": "http://127.0.0.1:8089"}
    inp["card"] = card
    inp["payments"] = url
    argv[i + 1] = json.dumps(inp)
    return argv[1:]  # without build/wfo: run_wfo adds $WFO_BIN


@pytest.fixture
def payments():
    """The example's payment service on a free port; yields its base URL."""
    proc = subprocess.Popen(["/usr/bin/python3", str(SERVICE), "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT)
    first = []

    def read_first():
        first.append(proc.stdout.readline().decode())

    t = threading.Thread(target=read_first, daemon=True)
    t.start()
    t.join(30)
    try:
        assert first and first[0].startswith("listening "), (first, proc.poll())
        port = int(first[0].split()[1])
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


def run_example(tmp_path, card, url, *extra):
    log = tmp_path / "travel.log"
    rc, out, err = run_wfo(command_for(card, url) + list(extra), cwd=ROOT, env={"TRAVEL_LOG": str(log)},
                           timeout=120)
    try:
        doc = json.loads(out)
    except ValueError:
        pytest.fail(f"stdout is not one JSON document (rc={rc}):\n{out[:2000]}\nstderr:\n{err[-2000:]}")
    lines = log.read_text().splitlines() if log.exists() else []
    return rc, doc, lines, err


def test_header_command_is_runnable():
    """The header names the handlers of every queue the example uses."""
    argv = header_command()
    handlers = [argv[i + 1] for i, a in enumerate(argv) if a == "--handler"]
    assert handlers == [
        "flights=examples/handlers/travel.sh book flight",
        "hotels=examples/handlers/travel.sh book hotel",
        "cars=examples/handlers/travel.sh book car",
        "cancel=examples/handlers/travel.sh cancel",
    ]


def test_good_card(tmp_path, payments):
    """A good card: completed; the output has the trip, the three bookings and the charge id."""
    rc, doc, log, err = run_example(tmp_path, "4242", payments)
    assert rc == 0, (doc, err[-2000:])
    assert doc["status"] == "completed"
    assert doc["output"] == {
        "trip": "ada-lisbon",
        "bookings": {b: {"booking": f"{b}-ada-lisbon"} for b in BRANCHES},
        "charge": "ch-ada-lisbon",
    }
    assert doc["compensation"] is None and doc["error"] is None
    assert sorted(log) == sorted(f"book {b}-ada-lisbon" for b in BRANCHES)
    for b in BRANCHES:
        assert step(doc, f"book/{b}/reserve")["status"] == "completed"
    charge = step(doc, "charge")
    assert charge["attempts"] == 1
    match({"status": 201, "body": {"id": "ch-ada-lisbon", "amount": 1200}}, charge["output"])
    assert step(doc, "hold")["status"] == "completed"
    assert step(doc, "confirm")["output"] == {"confirmed": True}
    assert not [n for n in step_names(doc) if ":compensate" in n]


def test_declined_card_compensates_in_reverse(tmp_path, payments):
    """Card 4000-0002: the charge fails with HttpError 402 (not retried); the three bookings are cancelled, the branches concurrently."""
    db = tmp_path / "travel.db"
    rc, doc, log, err = run_example(tmp_path, "4000-0002", payments, "--db", f"sqlite:{db}")
    assert rc == 1, (doc, err[-2000:])
    assert doc["status"] == "failed"
    assert doc["output"] is None
    assert doc["error"]["type"] == "HttpError"
    assert doc["error"]["details"]["status"] == 402
    assert doc["error"]["step"] == "charge"
    assert step(doc, "charge")["attempts"] == 1
    assert doc["compensation"] == {"status": "completed"}
    for b in BRANCHES:
        assert step(doc, f"book/{b}/reserve")["status"] == "compensated"
    assert "hold" not in step_names(doc) and "confirm" not in step_names(doc)
    # the compensation runs are not steps of the document: the history has them
    assert not [n for n in step_names(doc) if ":compensate" in n], step_names(doc)

    # the log: three bookings, then three cancellations
    assert len(log) == 6, log
    assert sorted(log[:3]) == sorted(f"book {b}-ada-lisbon" for b in BRANCHES)
    assert sorted(log[3:]) == sorted(f"cancel {b}-ada-lisbon" for b in BRANCHES)

    # the history says in which order the bookings completed
    hist = history_of(tmp_path, db, doc["id"])
    for b in BRANCHES:
        comp = comp_run(hist, f"book/{b}/reserve:compensate")
        assert comp["status"] == "completed" and comp["attempts"] == 1, comp
        assert comp["output"] == {"cancelled": f"{b}-ada-lisbon"}
    booked = [s.split("/")[1] for t, s in typed(hist, "step.completed")
              if s in {f"book/{b}/reserve" for b in BRANCHES}]
    assert sorted(booked) == sorted(BRANCHES)
    # the branches are undone concurrently (SPEC 2.4): every cancellation
    # starts before the first one completes
    started = [i for i, h in enumerate(hist) if h["type"] == "step.started"
               and h["step"] in {f"book/{b}/reserve:compensate" for b in BRANCHES}]
    first_done = min(i for i, h in enumerate(hist) if h["type"] == "step.completed"
                     and h["step"].endswith("/reserve:compensate"))
    assert len(started) == 3 and max(started) < first_done, hist
    undone = [s.split("/")[1] for t, s in typed(hist, "step.compensated")]
    assert sorted(undone) == sorted(BRANCHES)
    assert hist[-1]["type"] == "execution.failed"


def test_flaky_card_charged_on_third_attempt(tmp_path, payments):
    """Card 5000-0503: the service answers 503 twice; the charge step's third attempt succeeds."""
    rc, doc, log, err = run_example(tmp_path, "5000-0503", payments)
    assert rc == 0, (doc, err[-2000:])
    assert doc["status"] == "completed"
    charge = step(doc, "charge")
    assert charge["status"] == "completed" and charge["attempts"] == 3, charge
    assert doc["output"]["charge"] == "ch-ada-lisbon"
    assert doc["compensation"] is None
    assert not any(line.startswith("cancel") for line in log)


@pytest.mark.nobinary
def test_doc_shows_the_example_as_it_is():
    """docs/examples/complex_workflow.md shows examples/complex_workflow.yaml unchanged."""
    page = (ROOT / "docs" / "examples" / "complex_workflow.md").read_text()
    assert EXAMPLE.read_text() in page
