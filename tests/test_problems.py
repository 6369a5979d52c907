"""One error hierarchy, one status map: every domain error becomes its problem+json, and anything
unexpected becomes a 500 problem with a request id, logged with its traceback (masked), never
shown to the caller."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.problems import PROBLEM
from geo.errors import KINDS

SECRET_SQL = "SELECT secret FROM residents WHERE phone = '13912345678'"


@pytest.fixture(scope="module")
def crashing(settings):
    """The real app, plus routes that raise, served without re-raising into the test."""
    app = create_app(settings)

    @app.get("/test/raise/{kind}")
    def raise_kind(kind: str):
        raise KINDS[kind](f"refused as {kind}")

    @app.get("/test/crash")
    def crash():
        raise RuntimeError(SECRET_SQL)

    @app.get("/test/crash-async")
    async def crash_async():
        raise KeyError(SECRET_SQL)

    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_domain_error_has_its_status_and_problem_type(crashing, kind):
    r = crashing.get(f"/test/raise/{kind}")
    body = r.json()
    assert r.status_code == KINDS[kind].status
    assert r.headers["content-type"] == PROBLEM
    assert body["type"] == f"/problems/{kind}" and body["status"] == r.status_code
    assert body["detail"] == f"refused as {kind}"
    assert body["request_id"] == r.headers["x-request-id"]
    page = crashing.get(body["type"])  # the type names a page that explains it
    assert page.status_code == 200 and page.json()["status"] == KINDS[kind].status


@pytest.mark.parametrize("path", ["/test/crash", "/test/crash-async"])
def test_an_unexpected_error_is_a_500_problem_with_a_request_id(crashing, caplog, path):
    with caplog.at_level(logging.ERROR, logger="onemap"):
        r = crashing.get(path)
    assert r.status_code == 500
    assert r.headers["content-type"] == PROBLEM
    body = r.json()
    rid = r.headers["x-request-id"]
    assert body["request_id"] == rid and rid in body["detail"]
    assert body["type"] == "/problems/internal"
    for leak in ("Traceback", "SELECT", "secret", "13912345678", "RuntimeError", "KeyError"):
        assert leak not in r.text
    logged = [rec for rec in caplog.records if rid in rec.getMessage()]
    assert logged and logged[0].exc_info is not None  # the traceback is in the log


def test_a_database_failure_in_a_real_route_is_a_500_problem(client, engine):
    """A catalogued layer whose table vanished: the SQL error never reaches the caller."""
    from tests.conftest import vanished_layer

    with vanished_layer(engine, "vanishing", "label"):
        app = create_app(client.app.state.settings)
        with TestClient(app, raise_server_exceptions=False) as own:
            r = own.get("/collections/vanishing/items")
    assert r.status_code == 500 and r.headers["content-type"] == PROBLEM
    assert "vanishing" not in r.json()["detail"] and "UndefinedTable" not in r.text
    assert r.json()["request_id"] == r.headers["x-request-id"]


def test_every_answer_carries_a_request_id(client):
    ids = {client.get("/health").headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3


def test_serve_refuses_the_demo_key_unless_told_this_is_the_demo(db_url):
    env = {k: v for k, v in os.environ.items() if k not in ("ONEMAP_ID_HASH_KEY", "ONEMAP_DEMO")}
    env["DATABASE_URL"] = db_url
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", "serve", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "ONEMAP_ID_HASH_KEY" in done.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
def test_serve_started_as_root_runs_as_an_unprivileged_user(db_url):
    """Like the database cluster, the web service does not run as root."""
    import socket
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, DATABASE_URL=db_url, ONEMAP_DEMO="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for _ in range(100):
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise AssertionError("the service did not start")
        status = Path(f"/proc/{proc.pid}/status").read_text(encoding="ascii")
        uid = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("Uid:"))
    finally:
        proc.terminate()
        output = proc.communicate(timeout=15)[0]
    assert health.status_code == 200, output
    assert uid != 0
    assert "serving as the unprivileged user" in output
