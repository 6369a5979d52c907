"""Reads on the replica, writes on the primary, every caller reads its own writes (api.read_routing).

A cluster of the test's own (tests/replicated_city.py) holds a copy of the small city and a hot
standby. Replay on the standby is paused where a test needs the replica to be behind, so what a
read sees is decided, not raced: without the caller's LSN a read is answered by the (stale)
replica; with it, by the primary after the wait; after the replay resumes, by the replica again.
"""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import create_engine, pool, text

from tests.conftest import TILE_CACHE
from tests.replicated_city import replicated_city

READ_HEADER = "x-onemap-read"


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    with replicated_city(tmp_path_factory.mktemp("replica-home")) as made:
        yield made


def _app_settings(city, **database):
    from geo.settings import ServiceSettings, Settings

    return Settings.from_env(
        database=city.settings.model_copy(update={"read_wait_ms": 300} | database),
        service=ServiceSettings(
            allowed_hosts="127.0.0.1,localhost,testserver", tile_cache=TILE_CACHE
        ),
    )


@pytest.fixture(scope="module")
def app(city):
    from api.app import create_app

    return create_app(_app_settings(city))


@pytest.fixture
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def admin(city):
    from geo.policy.users import create_user, issue_token

    eng = create_engine(city.primary_url, poolclass=pool.NullPool)
    with eng.begin() as conn:
        create_user(conn, "replica_admin", "admin")
        token = issue_token(conn, "replica_admin").token
    eng.dispose()
    city.replica.wait_caught_up()
    return {"Authorization": f"Bearer {token}"}


def _replica_sql(city, sql: str):
    from geo.database import replica_url

    eng = create_engine(replica_url(city.settings), poolclass=pool.NullPool)
    try:
        with eng.connect() as conn:
            return conn.execute(text(sql)).scalar()
    finally:
        eng.dispose()


def _facility(city) -> int:
    eng = create_engine(city.primary_url, poolclass=pool.NullPool)
    with eng.connect() as conn:
        found = conn.execute(text("SELECT min(id) FROM facilities")).scalar_one()
    eng.dispose()
    return found


def _primary_lsn(city) -> str:
    eng = create_engine(city.primary_url, poolclass=pool.NullPool)
    with eng.connect() as conn:
        found = conn.execute(text("SELECT pg_current_wal_insert_lsn()::text")).scalar_one()
    eng.dispose()
    return found


def _patch_capacity(client, admin, fid: int, capacity: int, city):
    """An edit on the newest version: read as of the primary's WAL position now, then patch."""
    latest = {"X-Onemap-LSN": _primary_lsn(city)}
    item = client.get(f"/records/facilities/{fid}", headers=admin | latest)
    assert item.status_code == 200, item.text
    answer = client.patch(
        f"/records/facilities/{fid}",
        headers=admin | {"Content-Type": "application/geo+json", "If-Match": item.headers["etag"]},
        content=json.dumps({"properties": {"capacity": capacity}}),
    )
    assert answer.status_code == 200, answer.text
    return answer


def _wait_serving(client, serving: bool, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        report = client.get("/health").json()["replica"]
        if (report["reads_on"] == "replica") == serving or time.monotonic() > deadline:
            return report
        time.sleep(0.2)


def test_reads_go_to_the_replica_and_writes_to_the_primary(client, admin, city):
    assert _wait_serving(client, True)["status"] == "ok"
    answer = client.get("/collections/facilities/items?limit=3")
    assert answer.status_code == 200 and answer.headers[READ_HEADER] == "replica"
    fid = _facility(city)
    written = _patch_capacity(client, admin, fid, 31, city)
    assert written.headers[READ_HEADER] == "primary"
    lsn = written.headers["x-onemap-lsn"]
    assert "/" in lsn and "onemap_lsn=" + lsn in written.headers["set-cookie"]


def test_a_caller_reads_its_own_write_even_when_the_replica_is_behind(client, admin, city):
    fid = _facility(city)
    _patch_capacity(client, admin, fid, 40, city)
    city.replica.wait_caught_up()
    _replica_sql(city, "SELECT pg_wal_replay_pause()")
    try:
        written = _patch_capacity(
            client, admin, fid, 41, city
        )  # the client now holds its LSN cookie
        mine = client.get(f"/records/facilities/{fid}", headers=admin)
        assert mine.json()["properties"]["capacity"] == 41
        assert mine.headers[READ_HEADER] == "primary"  # the replica could not replay in time
        # someone else (no cookie, no header) is served by the replica, a step behind
        client.cookies.clear()
        other = client.get(f"/records/facilities/{fid}", headers=admin)
        assert other.headers[READ_HEADER] == "replica"
        assert other.json()["properties"]["capacity"] == 40
        # the header alone carries the LSN too (scripts without cookies)
        lsn = {"X-Onemap-LSN": written.headers["x-onemap-lsn"]}
        header = client.get(f"/records/facilities/{fid}", headers=admin | lsn)
        assert header.json()["properties"]["capacity"] == 41
    finally:
        _replica_sql(city, "SELECT pg_wal_replay_resume()")
    city.replica.wait_caught_up()
    later = client.get(f"/records/facilities/{fid}", headers=admin)
    assert later.headers[READ_HEADER] == "replica"
    assert later.json()["properties"]["capacity"] == 41


def test_a_read_with_a_purpose_is_answered_by_the_primary(client, admin, city):
    rid = _replica_sql(city, "SELECT min(id) FROM residents")
    answer = client.get(f"/records/residents/{rid}?purpose=核对户籍信息", headers=admin)
    assert answer.status_code == 200, answer.text
    assert answer.headers[READ_HEADER] == "primary"


def test_a_lagging_replica_is_left_out_and_health_says_why(city, admin):
    from fastapi.testclient import TestClient

    from api.app import create_app

    city.replica.wait_caught_up()
    strict = create_app(_app_settings(city, read_max_lag_bytes=0))
    with TestClient(strict) as client:
        assert _wait_serving(client, True)["reads_on"] == "replica"
        _replica_sql(city, "SELECT pg_wal_replay_pause()")
        try:
            _patch_capacity(client, admin, _facility(city), 52, city)
            report = _wait_serving(client, False)
            assert report["reads_on"] == "primary" and "behind" in report["reason"]
            client.cookies.clear()
            assert (
                client.get("/collections/facilities/items?limit=1").headers[READ_HEADER]
                == "primary"
            )
        finally:
            _replica_sql(city, "SELECT pg_wal_replay_resume()")
        city.replica.wait_caught_up()
        assert _wait_serving(client, True)["reads_on"] == "replica"


def test_killing_the_replica_loses_no_read_and_it_catches_up(client, admin, city):
    fid = _facility(city)
    assert _wait_serving(client, True)["reads_on"] == "replica"
    client.cookies.clear()
    client.get("/collections/facilities/items?limit=2")  # pooled replica connections now exist
    city.replica.down(echo=lambda *_: None, immediate=True)  # as a crash would
    try:
        answers = [client.get(f"/collections/facilities/items/{fid}") for _ in range(5)]
        assert [a.status_code for a in answers] == [200] * 5
        assert {a.headers[READ_HEADER] for a in answers} == {"primary"}
        tile = client.get("/tiles/facilities/14/13524/6624.mvt")
        assert tile.status_code in (200, 204)
        _patch_capacity(client, admin, fid, 77, city)  # a write while the replica is down
        report = client.get("/health").json()
        assert report["replica"]["reads_on"] == "primary"
        assert report["status"] == "ok"  # the service is fine: only where reads go changed
    finally:
        city.replica.up(echo=lambda *_: None)
    city.replica.wait_caught_up()
    assert _replica_sql(city, f"SELECT capacity FROM facilities WHERE id = {fid}") == 77
    assert _wait_serving(client, True)["reads_on"] == "replica"


def test_replica_status_reports_the_stream(city):
    status = city.replica.wait_caught_up()
    assert status.running and status.stream == "streaming" and status.lag_bytes == 0


def test_the_replica_commands_work_from_a_fresh_process(city):
    """``onemap db replica status|down|up`` as an operator runs them: a new process each."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    onemap = str(Path(sys.executable).with_name("onemap"))
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "ONEMAP_DB_URL")}
    env |= {
        "ONEMAP_HOME": str(city.home),
        "ONEMAP_DB_PORT": str(city.settings.port),
        "ONEMAP_DB_NAME": city.settings.name,
    }

    def run(*args):
        return subprocess.run(
            [onemap, "db", "replica", *args], env=env, capture_output=True, text=True
        )

    status = run("status")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["running"] is True
    down = run("down")
    assert down.returncode == 0 and "stopped" in down.stdout, down.stderr
    assert run("status").returncode == 3  # stopped: a script can tell
    up = run("up")
    assert up.returncode == 0 and "replica up" in up.stdout, up.stderr
    assert city.replica.wait_caught_up().running
