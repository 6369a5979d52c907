"""Test fixtures: a real PostGIS (the private cluster, or DATABASE_URL), a fresh test database
loaded with the small demo city once per session, and the app over it.

``ONEMAP_TEST_DB`` names the test database (default ``onemap_test``), so that parallel runs on
one cluster do not meet.
"""

from __future__ import annotations

import os
import tempfile
import uuid
import warnings
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

warnings.filterwarnings("ignore", message=".*httpx.*", category=DeprecationWarning)

TEST_DB = os.environ.get("ONEMAP_TEST_DB", "onemap_test")
#: the session's own tile cache: a cache left by another session (of a database since rebuilt)
#: would be proved stale by the notes, but tests must not lean on what an earlier run left
TILE_CACHE = Path(tempfile.mkdtemp(prefix="onemap-test-tiles-"))


def _base_url() -> str:
    from api.cluster import Cluster
    from geo.database import database_url
    from geo.settings import DatabaseSettings

    settings = DatabaseSettings()
    if settings.url is None:
        Cluster(settings).up(echo=lambda *_: None)
    return database_url(settings=settings)


def benchmark_module(name: str):
    """A script of ``benchmarks/`` as a module, loaded from its file (never by putting the folder
    on ``sys.path``, where ``benchmarks/tiles.py`` would shadow the ``tiles`` package)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def settings_for(url: str, **overrides):
    """The test's own settings over the database ``url`` (parts replaced by ``overrides``); the
    test client's host name, ``testserver``, is one of the service's addresses."""
    from geo.settings import ServiceSettings, Settings

    overrides.setdefault(
        "service",
        ServiceSettings(allowed_hosts="127.0.0.1,localhost,testserver", tile_cache=TILE_CACHE),
    )
    return Settings.from_env(**overrides).with_database(url)


@pytest.fixture(scope="session")
def settings(db_url):
    return settings_for(db_url)


@pytest.fixture(scope="session")
def client(settings):
    from fastapi.testclient import TestClient

    from api.app import create_app

    with TestClient(create_app(settings)) as test_client:
        yield test_client


# --- the cast: users and tokens, made once and shared -------------------------------------------


class People:
    """Users with tokens, made on first use and shared by every test module."""

    def __init__(self, engine):
        self.engine = engine
        self.tokens: dict[str, str] = {}

    def token(self, username: str, role: str, grids: tuple[str, ...] = ()) -> str:
        from geo.policy.users import create_user, issue_token

        if username not in self.tokens:
            with self.engine.begin() as conn:
                create_user(conn, username, role, grids=tuple(grids))
                self.tokens[username] = issue_token(conn, username).token
        return self.tokens[username]

    def headers(self, username: str, role: str, grids: tuple[str, ...] = ()) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(username, role, grids)}"}


@pytest.fixture(scope="session")
def people(engine) -> People:
    return People(engine)


@pytest.fixture(scope="session")
def grids(engine) -> dict[str, str]:
    """Two grids, each holding at least one record of every type: A is worker A's, B worker B's."""
    from sqlalchemy import text

    with engine.connect() as conn:
        rows = (
            conn.execute(
                text("""
            SELECT g.code FROM grids g
            WHERE EXISTS (SELECT 1 FROM facilities f WHERE f.grid_code = g.code)
              AND EXISTS (SELECT 1 FROM residents r WHERE r.grid_code = g.code)
              AND EXISTS (SELECT 1 FROM organisations o WHERE o.grid_code = g.code)
              AND EXISTS (SELECT 1 FROM addresses a WHERE a.grid_code = g.code)
            ORDER BY g.households DESC LIMIT 2""")
            )
            .scalars()
            .all()
        )
    assert len(rows) == 2
    return {"A": rows[0], "B": rows[1]}


#: one user of each role (two grid workers), by the name tests call them
CAST = (
    ("investment", "investment", None),
    ("planner", "planner", None),
    ("safety", "safety", None),
    ("worker_a", "grid_worker", "A"),
    ("worker_b", "grid_worker", "B"),
    ("admin", "admin", None),
)


@pytest.fixture(scope="session")
def tokens(people, grids) -> dict[str, str | None]:
    out: dict[str, str | None] = {"anonymous": None}
    for name, role, grid in CAST:
        out[name] = people.token(f"t_{name}", role, (grids[grid],) if grid else ())
    return out


def auth(tokens, who) -> dict[str, str]:
    token = tokens[who]
    return {"Authorization": f"Bearer {token}"} if token else {}


@pytest.fixture
def scratch_url():
    """An empty PostGIS database of its own, dropped afterwards."""
    from geo.database import create_database, drop_database

    url = url_for(f"{TEST_DB}_scratch_{uuid.uuid4().hex[:8]}")
    create_database(url, replace=True)
    yield url
    drop_database(url)


@pytest.fixture(scope="session")
def two_district_url():
    """溧水区 and 高淳区 side by side at small scale (``onemap demo load --districts
    320117,320118``), in a database of their own built once: for the tests that read a city of two
    districts and change none of its base data (users, runs and caches they may add)."""
    import shutil

    from api.bootstrap import prepare_demo
    from geo.database import create_database, drop_database
    from geo.settings import Settings

    database = f"{TEST_DB}_two_small"
    url = url_for(database)
    create_database(url, replace=True)
    try:
        prepare_demo(url, scale="small", districts=("320117", "320118"))
        yield url
    finally:
        drop_database(url)
        shutil.rmtree(Settings.from_env().service.rasters / database, ignore_errors=True)


@contextmanager
def running_server(
    db_url: str, workers: int = 1, log_level: str = "warning", extra_env: dict | None = None
):
    """The app on a free loopback port (uvicorn in a subprocess): yields (base URL, process).

    The process's output is left unread for the caller (``proc.communicate()`` after it stops)."""
    import socket
    import subprocess
    import sys
    import time

    import httpx

    extra_env = extra_env or {}
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
        env=dict(os.environ, DATABASE_URL=db_url, ONEMAP_TILE_CACHE=str(TILE_CACHE), **extra_env),
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
    """An md5 of every row of every table of the schema (or of ``tables``): equal snapshots, equal
    databases. The list is read from the models' metadata, so a new table is covered at once."""
    from sqlalchemy import text

    from geo.models import Base

    tables = tables or sorted(Base.metadata.tables)
    out = {}
    with engine.connect() as conn:
        for table in tables:
            out[table] = conn.execute(
                text(
                    f"SELECT count(*) || ':' || coalesce(md5(string_agg(md5(t::text), '' ORDER BY t::text)), '') "
                    f'FROM "{table}" t'
                )
            ).scalar()
    return out


@contextmanager
def vanished_layer(engine, layer_id: str, column: str):
    """A catalogued layer whose table is gone (an id and one text column): any read of it fails
    in the database, a fault of ours, for the tests of 500s. Removed from the catalogue after."""
    from sqlalchemy import text

    fields = [
        {"name": "id", "type": "integer", "db_type": "bigint"},
        {"name": column, "type": "string", "db_type": "text"},
    ]
    with engine.begin() as conn:
        conn.execute(
            text(f'CREATE TABLE layers."{layer_id}" (id bigint PRIMARY KEY, "{column}" text)')
        )
        conn.execute(
            text("""INSERT INTO layer_catalogue (id, table_name, title_zh, title_en, department,
                    sharing_level, opening_level, fields)
                    VALUES (:id, :table, '消失', 'Vanished', 'test', 'unconditional', 'open',
                    CAST(:fields AS jsonb))"""),
            {
                "id": layer_id,
                "table": f"layers.{layer_id}",
                "fields": __import__("json").dumps(fields),
            },
        )
        conn.execute(text(f'DROP TABLE layers."{layer_id}"'))
    try:
        yield layer_id
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM layer_catalogue WHERE id = :id"), {"id": layer_id})
