"""`parallel` and `foreach` through `wfo run` (SPEC 2.2: the `parallel` and
`foreach` rows, paths PARENT/BRANCH/STEP and PARENT[INDEX]/STEP, the output
of a branch or iteration, `.steps` inside blocks; SPEC 2.3: a failure in a
branch, `catch` on the block).

Concurrency is shown with marker files, never with durations: handlers that
wait (with a 30 s limit) for each other's marker would time out if wfo ran
them one after the other. A handler that must be cancelled sleeps in the
background and records the sleep's pid, so the test can check that the
process is gone and that it never reached the line after the sleep."""

import time
from pathlib import Path

import pytest

from conftest import match, pid_gone, read_lines, run_def, sh_handler, step, step_names, write_script

WAIT_LOOP = """\
waited=0
until [ -e "$1" ]; do
    waited=$((waited + 1))
    if [ $waited -gt 300 ]; then
        echo "{\\"error\\": {\\"type\\": \\"NoMarker\\", \\"message\\": \\"$1 never appeared\\"}}"
        exit 1
    fi
    sleep 0.1
done
"""


def wait_fn():
    """A shell function `wait_for FILE`: returns when FILE exists, fails the task after 30 s."""
    return "wait_for() {\n" + WAIT_LOOP.replace("\n", "\n    ") + "}\n"


def rendezvous_script(tmp_path):
    """`rv.sh DIR ME OTHER...`: marks ME started, waits until every OTHER has started.

    Prints {"me": ME, "step": $WFO_STEP, "input": STDIN}."""
    return write_script(tmp_path, "rv.sh", wait_fn() + """\
d=$1; me=$2; shift 2
input=$(cat)
touch "$d/$me.started"
for other in "$@"; do wait_for "$d/$other.started"; done
printf '{"me": "%s", "step": "%s", "input": %s}\\n' "$me" "$WFO_STEP" "${input:-null}"
""")


def slow_script(tmp_path):
    """`slow.sh DIR ME`: records its pids, marks ME started, sleeps 60 s, then marks ME finished.

    Used for the branch that must be cancelled: ME.finished must never appear."""
    return write_script(tmp_path, "slow.sh", """\
d=$1; me=$2
cat >/dev/null
echo $$ > "$d/$me.shpid"
sleep 60 &
echo $! > "$d/$me.sleeppid"
touch "$d/$me.started"
wait $!
touch "$d/$me.finished"
echo '{"slow": "finished"}'
""")


def after_script(tmp_path):
    """`after.sh DIR OTHER [ERROR_TYPE]`: waits until OTHER has started, then
    prints {"after": OTHER} or fails with ERROR_TYPE (not retryable)."""
    return write_script(tmp_path, "after.sh", wait_fn() + """\
d=$1; other=$2
cat >/dev/null
wait_for "$d/$other.started"
if [ -n "$3" ]; then
    printf '{"error": {"type": "%s", "message": "failed after %s started", "retryable": false}}\\n' "$3" "$other"
    exit 1
fi
printf '{"after": "%s"}\\n' "$other"
""")


def proc_gone(pid, wait=15.0):
    """True when process PID has exited (gone or a zombie) within WAIT seconds."""
    deadline = time.monotonic() + wait
    while True:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            if state in ("Z", "X"):
                return True
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def assert_killed(d, me):
    """The slow handler ME was started, then killed before it finished its sleep."""
    d = Path(d)
    assert (d / f"{me}.started").exists(), f"the {me} handler never started"
    sleep_pid = int((d / f"{me}.sleeppid").read_text())
    sh_pid = int((d / f"{me}.shpid").read_text())
    assert proc_gone(sh_pid), f"the {me} handler (pid {sh_pid}) is still running"
    assert pid_gone(sleep_pid, wait=15.0), f"the {me} handler's child (pid {sleep_pid}) is still running"
    assert not (d / f"{me}.finished").exists(), f"the {me} handler was not killed: it finished"


# ---- parallel -----------------------------------------------------------


def test_branches_run_concurrently(tmp_path):
    """Three branches whose handlers each wait until the other two have started: they all complete, so they ran at once."""
    rv = rendezvous_script(tmp_path)
    d = tmp_path
    rc, doc, err = run_def(tmp_path, """\
name: three-at-once
steps:
  - name: all
    type: parallel
    branches:
      - name: a
        steps:
          - {name: t, type: task, queue: qa, input: {n: 1}}
      - name: b
        steps:
          - {name: t, type: task, queue: qb, input: {n: 2}}
      - name: c
        steps:
          - {name: t, type: task, queue: qc, input: {n: 3}}
""", *sh_handler("qa", rv, d, "a", "b", "c"), *sh_handler("qb", rv, d, "b", "a", "c"),
        *sh_handler("qc", rv, d, "c", "a", "b"), timeout=90)
    assert rc == 0, (doc, err[-2000:])
    assert doc["status"] == "completed"
    assert step_names(doc) == ["all", "all/a/t", "all/b/t", "all/c/t"]
    for b, n in (("a", 1), ("b", 2), ("c", 3)):
        s = step(doc, f"all/{b}/t")
        assert s["status"] == "completed" and s["attempts"] == 1, s
        # the handler saw its own path as WFO_STEP and its branch's input
        assert s["output"] == {"me": b, "step": f"all/{b}/t", "input": {"n": n}}, s
    assert step(doc, "all")["output"] == {
        "a": {"me": "a", "step": "all/a/t", "input": {"n": 1}},
        "b": {"me": "b", "step": "all/b/t", "input": {"n": 2}},
        "c": {"me": "c", "step": "all/c/t", "input": {"n": 3}},
    }
    # no output of its own: the workflow's output is the block's
    assert doc["output"] == step(doc, "all")["output"]


def test_branch_output_is_its_last_step_that_ran(tmp_path):
    """{BRANCH: output of the last step that ran}: a skipped last step does not count; paths are PARENT/BRANCH/STEP."""
    rc, doc, _ = run_def(tmp_path, """\
name: branch-outputs
steps:
  - name: both
    type: parallel
    branches:
      - name: left
        steps:
          - {name: one, type: set, vars: {l1: 1}, output: "left-1"}
          - {name: two, type: set, vars: {l2: 2}, output: "left-2"}
      - name: right
        steps:
          - {name: one, type: set, vars: {r1: 1}, output: "right-1"}
          - {name: never, type: set, if: "${ false }", vars: {r2: 2}}
  - name: after
    type: set
    vars: {seen: "${ .steps.both.output }"}
    output: "${ .steps.both.output }"
""")
    assert rc == 0, doc
    assert step(doc, "both")["output"] == {"left": "left-2", "right": "right-1"}
    assert step(doc, "both")["status"] == "completed"
    assert step(doc, "both/right/never")["status"] == "skipped"
    assert set(step_names(doc)) == {"both", "both/left/one", "both/left/two", "both/right/one",
                                    "both/right/never", "after"}
    # first reached first: the block before its steps, its steps before `after`
    names = step_names(doc)
    assert names[0] == "both" and names[-1] == "after"
    assert names.index("both/left/one") < names.index("both/left/two")
    # the step after the block sees its output; the workflow's output is the last step's
    assert step(doc, "after")["output"] == {"left": "left-2", "right": "right-1"}
    assert doc["output"] == {"left": "left-2", "right": "right-1"}


def test_steps_visibility_in_parallel(tmp_path):
    """Inside a branch .steps holds the branch's own steps and the enclosing ones, never a sibling branch's; after the block, its inner steps are not visible."""
    after = after_script(tmp_path)
    rv = rendezvous_script(tmp_path)
    d = tmp_path
    # left/wait finishes only after right/mark started, so right/first has
    # completed when left/look evaluates: a leak would show.
    rc, doc, _ = run_def(tmp_path, """\
name: visibility
steps:
  - {name: outer, type: set, vars: {o: 1}, output: "outer-out"}
  - name: both
    type: parallel
    branches:
      - name: left
        steps:
          - {name: mine, type: set, vars: {m: 1}, output: "mine-out"}
          - {name: wait, type: task, queue: wait}
          - name: look
            type: set
            vars: {v: 1}
            output:
              own: "${ .steps.mine.output }"
              own_wait: "${ .steps.wait.output }"
              outer: "${ .steps.outer.output }"
              block: "${ .steps.both.status }"
              sibling: "${ .steps.first }"
              sibling_mark: "${ .steps.mark }"
      - name: right
        steps:
          - {name: first, type: set, vars: {f: 1}, output: "first-out"}
          - {name: mark, type: task, queue: mark}
  - name: after
    type: set
    vars: {a: 1}
    output:
      mine: "${ .steps.mine }"
      first: "${ .steps.first }"
      both: "${ .steps.both.output.left }"
""", *sh_handler("wait", after, d, "mark"), *sh_handler("mark", rv, d, "mark"), timeout=90)
    assert rc == 0, doc
    assert step(doc, "both/left/look")["output"] == {
        "own": "mine-out",
        "own_wait": {"after": "mark"},
        "outer": "outer-out",
        "block": "running",
        "sibling": None,
        "sibling_mark": None,
    }
    assert doc["output"] == {"mine": None, "first": None, "both": step(doc, "both/left/look")["output"]}


def test_mode_any_first_branch_wins_others_killed(tmp_path):
    """mode: any completes with the first branch to finish ({BRANCH: output}); the other branch's handler is killed and its step is cancelled."""
    after = after_script(tmp_path)
    slow = slow_script(tmp_path)
    d = tmp_path
    rc, doc, err = run_def(tmp_path, """\
name: race
steps:
  - name: race
    type: parallel
    mode: any
    branches:
      - name: slow
        steps:
          - {name: s1, type: task, queue: slow}
          - {name: s2, type: set, vars: {s: 1}}
      - name: quick
        steps:
          - {name: q1, type: task, queue: quick}
          - {name: q2, type: set, vars: {q: 1}, output: "${ .steps.q1.output }"}
  - name: after
    type: set
    vars: {r: 1}
    output: "${ .steps.race.output }"
""", *sh_handler("slow", slow, d, "slow"), *sh_handler("quick", after, d, "slow"), timeout=90)
    assert rc == 0, (doc, err[-2000:])
    assert doc["status"] == "completed"
    race = step(doc, "race")
    assert race["status"] == "completed"
    assert race["output"] == {"quick": {"after": "slow"}}
    assert doc["output"] == {"quick": {"after": "slow"}}
    assert step(doc, "race/slow/s1")["status"] == "cancelled"
    assert step(doc, "race/slow/s1")["output"] is None
    assert "race/slow/s2" not in step_names(doc)
    assert step(doc, "race/quick/q2")["status"] == "completed"
    assert_killed(d, "slow")


def test_branch_failure_fails_block_cancels_siblings_and_is_caught(tmp_path):
    """A failing branch step fails the parallel step; the sibling's handler is killed (step cancelled); catch on the block sends control on with .error."""
    after = after_script(tmp_path)
    slow = slow_script(tmp_path)
    d = tmp_path
    rc, doc, err = run_def(tmp_path, """\
name: branch-fails
steps:
  - name: both
    type: parallel
    branches:
      - name: a
        steps:
          - {name: a1, type: task, queue: fails}
          - {name: a2, type: set, vars: {never: 1}}
      - name: b
        steps:
          - {name: b1, type: task, queue: slow}
    catch:
      - errors: [Other]
        next: wrong
      - errors: [Boom]
        next: handled
  - name: unreachable
    type: set
    vars: {u: 1}
  - name: wrong
    type: set
    vars: {w: 1}
  - name: handled
    type: set
    vars: {h: 1}
    output: "${ .error }"
    end: true
""", *sh_handler("fails", after, d, "b", "Boom"), *sh_handler("slow", slow, d, "b"), timeout=90)
    assert rc == 0, (doc, err[-2000:])
    assert doc["status"] == "completed"
    both = step(doc, "both")
    assert both["status"] == "caught"
    assert both["error"]["type"] == "Boom", both
    assert step(doc, "both/a/a1")["status"] == "failed"
    assert step(doc, "both/a/a1")["attempts"] == 1
    assert step(doc, "both/b/b1")["status"] == "cancelled"
    assert "both/a/a2" not in step_names(doc)
    assert "unreachable" not in step_names(doc) and "wrong" not in step_names(doc)
    match({"type": "Boom", "message": "failed after b started"}, doc["output"])
    assert_killed(d, "b")


def test_branch_failure_uncaught_fails_execution(tmp_path):
    """Uncaught, a branch failure fails the execution; error.step is the path of the step inside the branch."""
    after = after_script(tmp_path)
    slow = slow_script(tmp_path)
    d = tmp_path
    rc, doc, err = run_def(tmp_path, """\
name: branch-fails-uncaught
steps:
  - name: both
    type: parallel
    branches:
      - name: a
        steps:
          - {name: wait, type: task, queue: wait}
          - {name: bad, type: fail, error: {type: Bad, message: '${ "after " + .steps.wait.output.after }'}}
      - name: b
        steps:
          - {name: b1, type: task, queue: slow}
  - name: next
    type: set
    vars: {n: 1}
""", *sh_handler("wait", after, d, "b"), *sh_handler("slow", slow, d, "b"), timeout=90)
    assert rc == 1, (doc, err[-2000:])
    assert doc["status"] == "failed"
    assert doc["error"] == {"type": "Bad", "message": "after b", "details": None, "step": "both/a/bad"}
    assert step(doc, "both")["status"] == "failed"
    assert step(doc, "both/a/bad")["status"] == "failed"
    assert step(doc, "both/b/b1")["status"] == "cancelled"
    assert "next" not in step_names(doc)
    assert doc["compensation"] is None
    assert_killed(d, "b")


# ---- foreach ------------------------------------------------------------


def test_foreach_paths_and_output_in_item_order(tmp_path):
    """Paths are PARENT[INDEX]/STEP; the output is each iteration's output in item order, although the iterations finish in reverse order."""
    # Iteration i finishes only after iteration i+1 has finished.
    script = write_script(tmp_path, "rev.sh", wait_fn() + """\
d=$1; last=$2
item=$(cat)
i=$(printf '%s' "$WFO_STEP" | sed 's/^double\\[\\([0-9]*\\)\\]\\/d$/\\1/')
if [ "$i" -lt "$last" ]; then wait_for "$d/done.$((i + 1))"; fi
printf '{"item": %s, "x2": %s, "step": "%s"}\\n' "$item" "$((item * 2))" "$WFO_STEP"
touch "$d/done.$i"
""")
    rc, doc, err = run_def(tmp_path, """\
name: double
steps:
  - name: double
    type: foreach
    items: "${ .input.xs }"
    steps:
      - name: d
        type: task
        queue: q
        input: "${ .item }"
        output: "${ .result.x2 }"
      - name: e
        type: set
        vars: {e: 1}
        output: "${ [.index, .item, .steps.d.output] }"
""", *sh_handler("q", script, tmp_path, 3),
        input={"xs": [5, 6, 7, 8]}, timeout=90)
    assert rc == 0, (doc, err[-2000:])
    assert step(doc, "double")["output"] == [[0, 5, 10], [1, 6, 12], [2, 7, 14], [3, 8, 16]]
    for i, x in enumerate([5, 6, 7, 8]):
        s = step(doc, f"double[{i}]/d")
        assert s["status"] == "completed" and s["output"] == 2 * x, s
        assert step(doc, f"double[{i}]/e")["status"] == "completed"
    assert set(step_names(doc)) == {"double"} | {f"double[{i}]/{n}" for i in range(4) for n in "de"}
    assert all((tmp_path / f"done.{i}").exists() for i in range(4))


def test_steps_visibility_in_foreach(tmp_path):
    """An iteration sees its own steps, .item, .index and the enclosing steps, never another iteration's; after the loop its steps are not visible."""
    rc, doc, _ = run_def(tmp_path, """\
name: iteration-scope
steps:
  - {name: pre, type: set, vars: {factor: 3}, output: 3}
  - name: each
    type: foreach
    items: ["a", "b", "c"]
    steps:
      - name: d
        type: set
        vars: {last: "${ .item }"}
        output: '${ .item + "-\\(.index)" }'
      - name: e
        type: set
        vars: {z: 1}
        output:
          own: "${ .steps.d.output }"
          item: "${ .item }"
          index: "${ .index }"
          pre: "${ .steps.pre.output }"
          loop: "${ .steps.each.status }"
  - name: after
    type: set
    vars: {y: 1}
    output: {d: "${ .steps.d }", e: "${ .steps.e }", item: "${ .item }", index: "${ .index }"}
""")
    assert rc == 0, doc
    assert step(doc, "each")["output"] == [
        {"own": "a-0", "item": "a", "index": 0, "pre": 3, "loop": "running"},
        {"own": "b-1", "item": "b", "index": 1, "pre": 3, "loop": "running"},
        {"own": "c-2", "item": "c", "index": 2, "pre": 3, "loop": "running"},
    ]
    assert doc["output"] == {"d": None, "e": None, "item": None, "index": None}


def test_parallel_inside_foreach(tmp_path):
    """A parallel in a foreach body: paths EACH[I]/PAR/BRANCH/STEP, .item and .index reach the branches, the iteration's output is the block's object."""
    rc, doc, _ = run_def(tmp_path, """\
name: nested
steps:
  - name: each
    type: foreach
    items: [{id: x}, {id: y}]
    steps:
      - {name: pre, type: set, vars: {p: 1}, output: '${ .item.id + "-pre" }'}
      - name: par
        type: parallel
        branches:
          - name: l
            steps:
              - name: s
                type: set
                vars: {l: 1}
                output: {id: "${ .item.id }", index: "${ .index }", pre: "${ .steps.pre.output }"}
          - name: r
            steps:
              - {name: t, type: set, vars: {r: 1}, output: '${ .item.id + "-r" }'}
              - {name: u, type: set, vars: {r: 2}, output: "${ [.steps.t.output, .steps.s] }"}
""")
    assert rc == 0, doc
    assert doc["output"] == [
        {"l": {"id": "x", "index": 0, "pre": "x-pre"}, "r": ["x-r", None]},
        {"l": {"id": "y", "index": 1, "pre": "y-pre"}, "r": ["y-r", None]},
    ]
    want = {"each"}
    for i in range(2):
        want |= {f"each[{i}]/pre", f"each[{i}]/par", f"each[{i}]/par/l/s", f"each[{i}]/par/r/t",
                 f"each[{i}]/par/r/u"}
    assert set(step_names(doc)) == want
    assert all(s["status"] == "completed" for s in doc["steps"]), doc["steps"]


def test_foreach_concurrency_bound(tmp_path):
    """concurrency: 2 with 6 items: at most 2 iterations run at once, and 2 do (the k-th to start waits for the (k+1)-th)."""
    script = write_script(tmp_path, "conc.sh", wait_fn() + """\
d=$1; total=$2
item=$(cat)
exec 9>>"$d/lock"
flock 9
started=$(( $(cat "$d/started" 2>/dev/null || echo 0) + 1 )); echo $started > "$d/started"
running=$(( $(cat "$d/running" 2>/dev/null || echo 0) + 1 )); echo $running > "$d/running"
echo $running >> "$d/seen"
flock -u 9
k=$started
waited=0
while [ $k -lt $total ]; do
    flock 9; s=$(cat "$d/started"); flock -u 9
    [ $s -gt $k ] && break
    waited=$((waited + 1))
    if [ $waited -gt 300 ]; then
        echo '{"error": {"type": "NoNextStart", "message": "no iteration started after mine", "retryable": false}}'
        exit 1
    fi
    sleep 0.1
done
flock 9
echo $(( $(cat "$d/running") - 1 )) > "$d/running"
flock -u 9
printf '{"item": %s, "k": %s}\\n' "$item" "$k"
""")
    rc, doc, err = run_def(tmp_path, """\
name: bounded
steps:
  - name: each
    type: foreach
    items: [10, 11, 12, 13, 14, 15]
    concurrency: 2
    steps:
      - {name: w, type: task, queue: q, input: "${ .item }", output: "${ .result.item }"}
""", *sh_handler("q", script, tmp_path, 6), timeout=120)
    assert rc == 0, (doc, err[-2000:])
    seen = [int(x) for x in read_lines(tmp_path / "seen")]
    assert len(seen) == 6, seen
    assert max(seen) == 2, f"running iterations seen at each start: {seen}"
    assert doc["output"] == [10, 11, 12, 13, 14, 15]
    assert (tmp_path / "running").read_text().strip() == "0"


def test_foreach_empty_items(tmp_path):
    """No items: the foreach completes at once with [] and control moves on."""
    rc, doc, _ = run_def(tmp_path, """\
name: empty
steps:
  - name: each
    type: foreach
    items: "${ .input.xs }"
    steps:
      - {name: never, type: fail, error: {type: Ran, message: "an iteration ran"}}
  - name: after
    type: set
    vars: {n: "${ .steps.each.output | length }"}
    output: "${ .steps.each.output }"
""", input={"xs": []})
    assert rc == 0, doc
    assert step(doc, "each")["status"] == "completed"
    assert step(doc, "each")["output"] == []
    assert doc["output"] == []
    assert step_names(doc) == ["each", "after"]


@pytest.mark.parametrize("items", [{"a": 1}, "abc", None, 3, True])
def test_foreach_items_not_an_array(tmp_path, items):
    """items that evaluate to something else than an array fail the step with ExpressionError (not retried)."""
    rc, doc, _ = run_def(tmp_path, """\
name: not-array
steps:
  - name: each
    type: foreach
    items: "${ .input.xs }"
    steps:
      - {name: never, type: set, vars: {n: 1}}
""", input={"xs": items})
    assert rc == 1, doc
    assert doc["status"] == "failed"
    assert doc["error"]["type"] == "ExpressionError"
    assert doc["error"]["step"] == "each"
    assert "items" in doc["error"]["message"]
    assert step(doc, "each")["status"] == "failed" and step(doc, "each")["attempts"] == 1
    assert step_names(doc) == ["each"]


def test_foreach_items_not_an_array_is_catchable(tmp_path):
    """The ExpressionError of bad items is caught like any error."""
    rc, doc, _ = run_def(tmp_path, """\
name: not-array-caught
steps:
  - name: each
    type: foreach
    items: "${ .input }"
    steps:
      - {name: never, type: set, vars: {n: 1}}
    catch:
      - {errors: [ExpressionError], next: fallback}
  - name: fallback
    type: set
    vars: {f: 1}
    output: "${ .error.type }"
""")
    assert rc == 0, doc
    assert step(doc, "each")["status"] == "caught"
    assert doc["output"] == "ExpressionError"


def test_foreach_failure_stops_the_loop(tmp_path):
    """With concurrency 1, a failing iteration fails the foreach; later items are never started; error.step is the inner path."""
    rc, doc, _ = run_def(tmp_path, """\
name: stops
steps:
  - name: each
    type: foreach
    items: [1, 2, 3, 4]
    concurrency: 1
    steps:
      - name: check
        type: switch
        cases:
          - {when: "${ .item == 2 }", next: bad}
        default: good
      - {name: good, type: set, vars: {g: 1}, output: "${ .item }", end: true}
      - {name: bad, type: fail, error: {type: Bad, message: '${ "item \\(.item)" }'}}
""")
    assert rc == 1, doc
    assert doc["error"] == {"type": "Bad", "message": "item 2", "details": None, "step": "each[1]/bad"}
    assert step(doc, "each")["status"] == "failed"
    assert step(doc, "each[0]/good")["output"] == 1
    assert not [n for n in step_names(doc) if n.startswith(("each[2]", "each[3]"))], step_names(doc)
