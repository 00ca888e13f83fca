"""The server on PostgreSQL (WFO_TEST_DB=postgres, `make blackbox-pg`):
while its database refuses connections /readyz answers 503 and requests
that read the store fail with 503 StoreError, quickly and without a crash;
once the database is back the server reconnects by itself and serves
again, and what was committed before is all there.

The outage is a real one: every connection of the server's database is
terminated (pg_terminate_backend) and new ones are refused
(ALLOW_CONNECTIONS false) until the test allows them again."""
import os
import subprocess
import time

import pytest

from apiutil import TEST_DB, WfoServer, pg_url, set_workflow, unique
from conftest import WFO_BIN

pytestmark = pytest.mark.skipif(TEST_DB != "postgres", reason="PostgreSQL only (WFO_TEST_DB)")


def admin(sql):
    subprocess.run(["psql", os.environ["WFO_TEST_PG"], "-qAt", "-v", "ON_ERROR_STOP=1", "-c", sql],
                   check=True, capture_output=True, timeout=60)


def dbname(url):
    return url.split("://", 1)[1].split("/", 1)[1].split("?", 1)[0]


def wait_for(cond, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return False


def test_database_down_then_back(tmp_path):
    srv = WfoServer(tmp_path).launch()
    db = dbname(srv.db_url)
    assert srv.db_url == pg_url(db)
    name = unique("pgdown")
    try:
        srv.put_workflow(set_workflow(name))
        done = srv.start_exec(name, query="?wait=10s")
        assert done["status"] == "completed"
        assert srv.get("/readyz").status == 200

        admin(f"ALTER DATABASE {db} ALLOW_CONNECTIONS false")
        admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'")
        assert wait_for(lambda: srv.get("/readyz").status == 503), "readyz stayed 200"
        r = srv.get("/readyz")
        assert "store" in r.text, r
        t0 = time.monotonic()
        r = srv.get(f"/v1/executions/{done['id']}")
        assert r.status == 503, r
        assert r.error["type"] == "StoreError", r
        assert time.monotonic() - t0 < 10, "a read waited for the database"
        assert "password" not in r.text

        admin(f"ALTER DATABASE {db} ALLOW_CONNECTIONS true")
        assert wait_for(lambda: srv.get("/readyz").status == 200), srv.get("/readyz")
        d = srv.doc(done["id"])
        assert d["status"] == "completed" and d["output"] == done["output"], d
    finally:
        admin(f"ALTER DATABASE {db} ALLOW_CONNECTIONS true")
        srv.stop()


def test_unreachable_database_fails_the_start(tmp_path):
    """A server whose database cannot be reached exits 1 with a message
    that names the store without its password."""
    url = "postgres://wfo:hunter2secret@127.0.0.1:1/nowhere?connect_timeout=2"
    p = subprocess.run([str(WFO_BIN), "server", "--listen", "127.0.0.1:0", "--db", url],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1, p
    assert "postgres://wfo:***@127.0.0.1:1/nowhere" in p.stderr, p.stderr
    assert "hunter2secret" not in p.stderr, p.stderr
