"""The JSON Schema of definitions (issue 14, SPEC 4): GET
/v1/schemas/workflow.json, generated from the step-field table of the
compiler; every example definition validates against it, a step of an
unknown type or with a field of another type does not, and the OpenAPI
document's Definition refers to it."""

from pathlib import Path

import pytest

from apiutil import WfoServer
from conftest import run_wfo

jsonschema = pytest.importorskip("jsonschema")  # python3-jsonschema (scripts/deps.sh test)

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.y*ml"))
CASES = sorted((Path(__file__).resolve().parent / "cases").glob("*.yaml"))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server that takes every example: some run `exec` steps, which a
    server refuses at PUT unless exec is enabled (security.md)."""
    srv = WfoServer(tmp_path_factory.mktemp("wfo-server"), env={"WFO_EXEC_ENABLED": "true"})
    srv.launch()
    yield srv
    assert srv.stop() == 0, srv.stderr()


@pytest.fixture(scope="module")
def schema(server):  # noqa: F811
    r = server.get("/v1/schemas/workflow.json")
    assert r.status == 200, r
    assert r.headers["content-type"].startswith("application/schema+json")
    s = r.json
    jsonschema.Draft202012Validator.check_schema(s)
    return s


def definition_of(server, path):  # noqa: F811
    """The document the server stores for a definition file (YAML parsed by wfo)."""
    import json
    text = path.read_text()
    name = None
    for line in text.splitlines():
        if line.startswith("name:"):
            name = line.split(":", 1)[1].strip().strip("'\"")
            break
    assert name, path
    r = server.put(f"/v1/workflows/{name}", text, headers={"Content-Type": "application/yaml"})
    assert r.status in (200, 201), (path, r)
    return json.loads(json.dumps(r.json["definition"]))


@pytest.mark.parametrize("path", EXAMPLES + CASES, ids=lambda p: p.name)
def test_examples_validate(server, schema, path):  # noqa: F811
    doc = definition_of(server, path)
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(doc))
    assert errors == [], [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]


BAD = [
    ("unknown step type", {"name": "x", "steps": [{"name": "a", "type": "teleport"}]}),
    ("field of another type", {"name": "x", "steps": [{"name": "a", "type": "set",
                                                       "vars": {}, "queue": "q"}]}),
    ("missing required field", {"name": "x", "steps": [{"name": "a", "type": "task"}]}),
    ("unknown top-level field", {"name": "x", "steps": [{"name": "a", "type": "succeed"}],
                                 "version": 2}),
    ("bad name", {"name": "Not Valid", "steps": [{"name": "a", "type": "succeed"}]}),
    ("next in a compensation", {"name": "x", "steps": [
        {"name": "a", "type": "set", "vars": {}, "compensate": {"type": "set", "vars": {},
                                                                "next": "a"}}]}),
    ("nested unknown type", {"name": "x", "steps": [
        {"name": "p", "type": "parallel", "branches": [
            {"name": "b", "steps": [{"name": "s", "type": "nope"}]}]}]}),
]


@pytest.mark.parametrize("what,doc", BAD, ids=[b[0] for b in BAD])
def test_schema_rejects(schema, tmp_path, what, doc):
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(doc)), what
    # and wfo itself agrees that it is invalid
    import json
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(doc))
    rc, out, err = run_wfo(["validate", p])
    assert rc == 2, (what, err)


def test_schema_lists_every_step_type(schema):
    types = schema["$defs"]["step"]["properties"]["type"]["enum"]
    assert set(types) == {"task", "http", "exec", "set", "switch", "parallel", "foreach", "sleep",
                          "await_event", "emit", "workflow", "compensate", "succeed", "fail"}


def test_openapi_definition_refers_to_schema(server):  # noqa: F811
    doc = server.get("/v1/openapi.json").json
    d = doc["components"]["schemas"]["Definition"]
    assert d["properties"]["steps"]["items"]["$ref"] == "/v1/schemas/workflow.json#/$defs/step"
    assert "get" in doc["paths"]["/v1/schemas/workflow.json"]
