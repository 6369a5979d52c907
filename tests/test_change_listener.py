"""Many processes, one truth (issue 16): what migration 0019 notifies, the listener that hears it,
and the warnings stream of one process woken by a warning raised through another.

Readings and warnings written here are dated in 2098 (apart from test_safety_sensors' 2099) on
sensors that module does not take, and removed after; the one road touched keeps its values.
"""

from __future__ import annotations

import json
import threading
import time

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.app import create_app
from api.change_listener import libpq_conninfo
from geo.assets import surroundings
from geo.safety import alarm
from tests.conftest import auth, running_server

WINDOW = "2098-01-01T00:00:00+00:00"


def wait_for(condition, seconds: float = 20.0) -> bool:
    """Whether ``condition()`` came true within a generous bound (no timing is asserted)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.fixture(scope="module")
def sensor(engine):
    """A water-level sensor without any warning (the last by id: test_safety_sensors takes the
    first four), and the 2098 readings and warnings removed after."""
    with engine.connect() as conn:
        row = conn.execute(
            text("""SELECT id, code, threshold FROM sensors s WHERE kind = 'water_level'
                    AND NOT EXISTS (SELECT 1 FROM sensor_warnings w WHERE w.sensor_id = s.id)
                    ORDER BY id DESC LIMIT 1""")
        ).one()
    yield row
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM sensor_warnings WHERE started_at >= :w"), {"w": WINDOW})
        conn.execute(text("DELETE FROM sensor_readings WHERE observed_at >= :w"), {"w": WINDOW})


@pytest.fixture
def listening(db_url):
    """A plain session that LISTENs on both channels; yields a function that gives what was
    heard within a second."""
    with psycopg.connect(libpq_conninfo(db_url, "onemap-test-listening"), autocommit=True) as conn:
        conn.execute("LISTEN onemap_changes")
        conn.execute("LISTEN onemap_warnings")

        def heard() -> list[tuple[str, dict]]:
            return [(n.channel, json.loads(n.payload)) for n in conn.notifies(timeout=1.0)]

        yield heard


def test_one_notification_per_statement_and_none_for_nothing(engine, listening):
    with engine.begin() as conn:
        road = conn.execute(text("SELECT min(id) FROM roads")).scalar_one()
        # two statements of one transaction, the same payload: PostgreSQL folds them into one
        conn.execute(text("UPDATE roads SET name = name WHERE id = :id"), {"id": road})
        conn.execute(text("UPDATE roads SET name = name WHERE id = :id"), {"id": road})
        conn.execute(text("DELETE FROM roads WHERE false"))  # touches no row: says nothing
        conn.execute(text("UPDATE layer_catalogue SET title_zh = title_zh WHERE false"))
    assert listening() == [("onemap_changes", {"table": "roads", "op": "UPDATE"})]
    with engine.begin() as conn:
        conn.execute(text("UPDATE layer_catalogue SET title_zh = title_zh"))
        conn.execute(
            text("UPDATE buildings SET name = name WHERE id = (SELECT min(id) FROM buildings)")
        )
    assert listening() == [
        ("onemap_changes", {"table": "layer_catalogue", "op": "UPDATE"}),
        ("onemap_changes", {"table": "buildings", "op": "UPDATE"}),
    ]
    with engine.begin() as conn:  # rolled back: nothing is told
        conn.execute(text("UPDATE roads SET name = name"))
        conn.rollback()
    assert listening() == []


def test_warnings_are_told_per_statement_and_many_when_too_long(engine, listening, sensor):
    insert = """INSERT INTO sensor_warnings (sensor_id, threshold, started_at, first_value,
                    peak_value, last_value, last_at, cleared_at)
                SELECT :s, 1, CAST(:w AS timestamptz) + n * interval '1 minute', 2, 2, 2,
                       CAST(:w AS timestamptz) + n * interval '1 minute', {cleared}
                FROM generate_series(1, :n) n RETURNING id"""
    with engine.begin() as conn:
        opened = conn.execute(
            text(insert.format(cleared="NULL")), {"s": sensor.id, "w": WINDOW, "n": 1}
        ).scalar_one()
        # a second, already cleared, in another statement: two notifications
        closed = conn.execute(
            text(insert.format(cleared="CAST(:w AS timestamptz) + interval '1 day'")),
            {"s": sensor.id, "w": WINDOW, "n": 1},
        ).scalar_one()
    assert listening() == [
        (
            "onemap_warnings",
            {"warnings": [{"id": opened, "sensor_id": sensor.id, "state": "opened"}]},
        ),
        (
            "onemap_warnings",
            {"warnings": [{"id": closed, "sensor_id": sensor.id, "state": "cleared"}]},
        ),
    ]
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE sensor_warnings SET readings = readings + 1 WHERE id IN (:a, :b)"),
            {"a": opened, "b": closed},
        )
        conn.execute(
            text("UPDATE sensor_warnings SET cleared_at = last_at WHERE id = :a"), {"a": opened}
        )
    assert listening() == [
        (
            "onemap_warnings",
            {
                "warnings": [
                    {"id": opened, "sensor_id": sensor.id, "state": "updated"},
                    {"id": closed, "sensor_id": sensor.id, "state": "updated"},
                ]
            },
        ),
        (
            "onemap_warnings",
            {"warnings": [{"id": opened, "sensor_id": sensor.id, "state": "cleared"}]},
        ),
    ]
    # 300 cleared warnings in one statement: ~60 bytes each, past NOTIFY's 8000
    with engine.begin() as conn:
        conn.execute(
            text(insert.format(cleared="CAST(:w AS timestamptz) + interval '1 day'")),
            {"s": sensor.id, "w": WINDOW, "n": 300},
        )
    assert listening() == [("onemap_warnings", {"many": True, "count": 300})]
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM sensor_warnings WHERE started_at >= :w"), {"w": WINDOW})


@pytest.fixture
def app_client(settings):
    """An app of its own with its listener running (the lifespan starts and stops it)."""
    app = create_app(settings)
    with TestClient(app) as client:
        listener = app.state.change_listener
        assert listener.connected.wait(20)
        yield app, client


def _warm(app, settings):
    """Fill the caches the listener drops: road graphs, H3 resident counts, the layer memo."""
    with app.state.engine.connect() as conn:
        alarm.network(conn, settings.spatial.metric_srid)
        surroundings.resident_cells(conn)
    app.state.layer_memo.remember({"roads": None})


def test_a_change_elsewhere_drops_what_this_process_holds(engine, app_client, settings):
    app, client = app_client
    _warm(app, settings)
    memo = app.state.layer_memo
    assert alarm.networks_held() and surroundings.cells_held()
    with engine.begin() as conn:  # another process's write: a new connection, not the app's
        conn.execute(text("UPDATE roads SET name = name WHERE id = (SELECT min(id) FROM roads)"))
    assert wait_for(lambda: not alarm.networks_held())
    assert surroundings.cells_held()  # roads say nothing about people
    assert app.state.layer_memo is memo
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE residents SET name = name WHERE id = (SELECT min(id) FROM residents)")
        )
    assert wait_for(lambda: not surroundings.cells_held())
    assert app.state.layer_memo is memo
    with engine.begin() as conn:
        conn.execute(text("UPDATE layer_catalogue SET title_zh = title_zh WHERE id = 'roads'"))
    assert wait_for(lambda: app.state.layer_memo is not memo)
    state = client.get("/health").json()["listener"]
    assert state["connected"] is True
    assert state["notifications"] >= 3
    assert state["last_notification"] is not None


def test_a_killed_listener_drops_every_cache_and_listens_again(engine, app_client, settings):
    app, client = app_client
    listener = app.state.change_listener
    before = client.get("/health").json()["listener"]
    assert before["connected"] is True and before["reconnects"] == 0
    _warm(app, settings)
    memo = app.state.layer_memo
    assert alarm.networks_held() and surroundings.cells_held()
    with engine.connect() as conn:
        killed = conn.execute(
            text("""SELECT pg_terminate_backend(pid), pid FROM pg_stat_activity
                    WHERE application_name = :name"""),
            {"name": listener.application_name},
        ).all()
    assert [ok for ok, _ in killed] == [True]
    old_pid = killed[0][1]
    assert wait_for(lambda: listener.reconnects == 1 and listener.connected.is_set())
    assert not alarm.networks_held() and not surroundings.cells_held()
    assert app.state.layer_memo is not memo
    after = client.get("/health").json()["listener"]
    assert after["connected"] is True and after["reconnects"] == 1
    assert after["caches_dropped"] > before["caches_dropped"]
    assert listener.backend_pid != old_pid
    # and it hears again
    _warm(app, settings)
    with engine.begin() as conn:
        conn.execute(text("UPDATE roads SET name = name WHERE id = (SELECT min(id) FROM roads)"))
    assert wait_for(lambda: not alarm.networks_held())


def test_a_warning_raised_through_b_wakes_the_stream_of_a(db_url, tokens, sensor):
    """Two API processes; the fallback poll set to 60 s: the stream opened on A tells of the
    warning raised through B long before any poll would have looked."""
    slow = {"ONEMAP_STREAM_POLL_SECONDS": "60"}
    with (
        running_server(db_url, extra_env=slow) as (a, proc_a),
        running_server(db_url, extra_env=slow) as (b, proc_b),
    ):
        assert httpx.get(a + "/health").headers["x-onemap-process"] == str(proc_a.pid)
        assert httpx.get(b + "/health").headers["x-onemap-process"] == str(proc_b.pid)
        seen: list[tuple[str, dict]] = []
        connected, done = threading.Event(), threading.Event()
        opened_at: list[float] = []

        def listen():
            with httpx.stream(
                "GET",
                a + "/safety/warnings/stream",
                headers=auth(tokens, "safety"),
                timeout=httpx.Timeout(70),
            ) as stream:
                event = None
                for line in stream.iter_lines():
                    if not opened_at:
                        opened_at.append(time.monotonic())
                        connected.set()
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: ") and event:
                        data = json.loads(line[6:])
                        if data["sensor_code"] == sensor.code:
                            seen.append((event, data))
                            done.set()
                            return

        thread = threading.Thread(target=listen, daemon=True)
        thread.start()
        assert connected.wait(20)
        assert wait_for(
            lambda: (
                httpx.get(a + "/health").json()["listener"]["connected"]
                and httpx.get(b + "/health").json()["listener"]["connected"]
            )
        )
        raised = httpx.post(
            b + "/safety/readings",
            content=(
                f"sensor_code,observed_at,value\n"
                f"{sensor.code},2098-03-01T08:00:00+08:00,{sensor.threshold + 3}\n"
            ).encode(),
            headers={"Content-Type": "text/csv", **auth(tokens, "safety")},
        )
        assert raised.status_code == 200 and raised.json()["warnings_opened"] == 1
        assert raised.headers["x-onemap-process"] == str(proc_b.pid)
        # within 20 s of raising, and so before A's first poll, 60 s after the stream opened
        assert done.wait(20), "A's stream did not tell of the warning before its slow poll"
        assert time.monotonic() - opened_at[0] < 60
        assert [event for event, _ in seen] == ["warning"]
        heard = httpx.get(a + "/health").json()["listener"]
        assert heard["notifications"] >= 1
