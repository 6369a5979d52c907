"""Test fixtures: a real PostGIS (the private cluster, or DATABASE_URL), a fresh test database
loaded with the small demo city once per session, and the app over it.

``ONEMAP_TEST_DB`` names the test database (default ``onemap_test``), so that parallel runs on
one cluster do not meet.
"""

from __future__ import annotations

import os
import uuid
import warnings
from contextlib import contextmanager

import pytest
from sqlalchemy.engine import make_url

warnings.filterwarnings("ignore", message=".*httpx.*", category=DeprecationWarning)

TEST_DB = os.environ.get("ONEMAP_TEST_DB", "onemap_test")


def _base_url() -> str:
    from geo.cluster import Cluster
    from geo.database import database_url
    from geo.settings import database_settings

    settings = database_settings()
    if settings.url is None:
        Cluster(settings).up(echo=lambda *_: None)
    return database_url()


def url_for(database: str) -> str:
    return make_url(_base_url()).set(database=database).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def db_url() -> str:
    """A fresh database with the schema, the small demo city and the catalogue."""
    from api.bootstrap import prepare_demo
    from geo.database import create_database

    url = url_for(TEST_DB)
    create_database(url, replace=True)
    prepare_demo(url, scale="small")
    return url


@pytest.fixture(scope="session")
def engine(db_url):
    from geo.database import engine as make_engine

    return make_engine(db_url)


@pytest.fixture(scope="session")
def client(db_url):
    from fastapi.testclient import TestClient

    from api.app import create_app

    with TestClient(create_app(db_url)) as test_client:
        yield test_client


@pytest.fixture
def scratch_url():
    """An empty PostGIS database of its own, dropped afterwards."""
    from geo.database import create_database, drop_database

    url = url_for(f"{TEST_DB}_scratch_{uuid.uuid4().hex[:8]}")
    create_database(url, replace=True)
    yield url
    drop_database(url)


@contextmanager
def running_server(db_url: str, workers: int = 1, log_level: str = "warning"):
    """The app on a free loopback port (uvicorn in a subprocess): yields (base URL, process).

    The process's output is left unread for the caller (``proc.communicate()`` after it stops)."""
    import socket
    import subprocess
    import sys
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "api.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            log_level,
        ],
        env=dict(os.environ, DATABASE_URL=db_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            proc.kill()
            raise AssertionError(proc.communicate()[0])
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=15)


@pytest.fixture(scope="session")
def served(db_url):
    """The app on a real loopback port with 2 workers, for real HTTP clients."""
    with running_server(db_url, workers=2) as (base, _):
        yield base


def snapshot(engine, tables=None) -> dict[str, str]:
    """An md5 of every row of the tables a write could touch: equal snapshots, equal databases."""
    from sqlalchemy import text

    tables = tables or (
        "addresses",
        "buildings",
        "houses",
        "residents",
        "organisations",
        "facilities",
        "record_history",
        "record_reviews",
        "sync_receipts",
        "audit_log",
        "users",
        "user_grids",
        "api_tokens",
        "grids",
        "admin_areas",
    )
    out = {}
    with engine.connect() as conn:
        for table in tables:
            out[table] = conn.execute(
                text(
                    f"SELECT count(*) || ':' || coalesce(md5(string_agg(md5(t::text), '' ORDER BY t::text)), '') "
                    f"FROM {table} t"
                )
            ).scalar()
    return out
