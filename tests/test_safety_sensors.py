"""Sensors, readings and warnings (issue 14): a scripted series of readings raises a warning once,
keeps it while the condition lasts and clears it when the value returns; the same batch posted
twice stores each reading once and changes no warning; a batch with a bad line changes nothing;
the live stream tells of a warning raised after it connected; the public is kept out.

Every reading written here is dated in 2099 (after anything the demo holds) and removed after,
with the warnings it raised, so the shared test database stays as it was loaded.
"""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest
from sqlalchemy import text

from tests.conftest import auth

WINDOW = "2099-01-01T00:00:00+00:00"


def at(minute: int) -> str:
    """A time in the test's window, written with the China zone as a gateway would."""
    return f"2099-03-01T{8 + minute // 60:02d}:{minute % 60:02d}:00+08:00"


def utc(minute: int) -> str:
    return f"2099-03-01T{minute // 60:02d}:{minute % 60:02d}:00+00:00"


@pytest.fixture(scope="module")
def sensors(engine):
    """Four water-level sensors without an open warning, by code: id, code, threshold."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("""SELECT id, code, threshold FROM sensors s WHERE kind = 'water_level'
                    AND NOT EXISTS (SELECT 1 FROM sensor_warnings w WHERE w.sensor_id = s.id)
                    ORDER BY id LIMIT 4""")
        ).all()
    assert len(rows) == 4
    yield rows
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM sensor_warnings WHERE started_at >= :w"), {"w": WINDOW})
        conn.execute(text("DELETE FROM sensor_readings WHERE observed_at >= :w"), {"w": WINDOW})


def csv_body(rows) -> bytes:
    lines = ["sensor_code,observed_at,value"] + [f"{c},{t},{v}" for c, t, v in rows]
    return ("\n".join(lines) + "\n").encode()


def ndjson_body(rows) -> bytes:
    return "".join(
        json.dumps({"sensor_code": c, "observed_at": t, "value": v}) + "\n" for c, t, v in rows
    ).encode()


def post(client, tokens, body: bytes, media: str = "text/csv", who: str = "safety"):
    return client.post(
        "/safety/readings", content=body, headers={"Content-Type": media, **auth(tokens, who)}
    )


def warnings_of(engine, sensor_id: int) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("""SELECT started_at, first_value, peak_value, last_value, last_at, readings,
                           cleared_at FROM sensor_warnings WHERE sensor_id = :s AND started_at >= :w
                    ORDER BY started_at"""),
            {"s": sensor_id, "w": WINDOW},
        )
        return [
            {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r._mapping.items()}
            for r in rows
        ]


def readings_of(engine, sensor_id: int) -> int:
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT count(*) FROM sensor_readings WHERE sensor_id = :s AND observed_at >= :w"),
            {"s": sensor_id, "w": WINDOW},
        ).scalar_one()


def script(threshold: float) -> list[tuple[int, float]]:
    """under, over, over, over (peak), over, at the threshold (clears), over: two warnings."""
    t = threshold
    return [(0, t - 1), (1, t + 0.5), (2, t + 1), (3, t + 2), (4, t + 1.5), (5, t), (6, t + 0.1)]


def expected(threshold: float) -> list[dict]:
    t = threshold
    return [
        {
            "started_at": utc(1),
            "first_value": t + 0.5,
            "peak_value": t + 2,
            "last_value": t + 1.5,
            "last_at": utc(4),
            "readings": 4,
            "cleared_at": utc(5),
        },
        {
            "started_at": utc(6),
            "first_value": t + 0.1,
            "peak_value": t + 0.1,
            "last_value": t + 0.1,
            "last_at": utc(6),
            "readings": 1,
            "cleared_at": None,
        },
    ]


@pytest.mark.parametrize("media", ["text/csv", "application/x-ndjson"])
def test_a_scripted_series_raises_keeps_and_clears_warnings(client, tokens, engine, sensors, media):
    """Posted in two batches (the condition spans them), in CSV or JSON lines."""
    sensor = sensors[0] if media == "text/csv" else sensors[1]
    encode = csv_body if media == "text/csv" else ndjson_body
    series = [(sensor.code, at(m), v) for m, v in script(sensor.threshold)]

    first = post(client, tokens, encode(series[:4]), media)
    assert first.status_code == 200, first.text
    assert first.json() == {
        "received": 4,
        "stored": 4,
        "duplicates": 0,
        "late": 0,
        "sensors": 1,
        "warnings_opened": 1,
        "warnings_updated": 0,
        "warnings_cleared": 0,
    }
    (opened,) = warnings_of(engine, sensor.id)
    assert (opened["readings"], opened["peak_value"], opened["cleared_at"]) == (
        3,
        sensor.threshold + 2,
        None,
    )

    second = post(client, tokens, encode(series[4:]), media)
    assert second.status_code == 200, second.text
    assert second.json()["warnings_opened"] == 1  # the second warning
    assert second.json()["warnings_updated"] == 1  # the first, kept while the value stayed over
    assert second.json()["warnings_cleared"] == 1
    assert warnings_of(engine, sensor.id) == expected(sensor.threshold)


def test_one_batch_gives_the_same_warnings(client, tokens, engine, sensors):
    sensor = sensors[2]
    series = [(sensor.code, at(m), v) for m, v in script(sensor.threshold)]
    response = post(client, tokens, csv_body(series))
    assert response.status_code == 200, response.text
    assert response.json()["warnings_opened"] == 2
    assert response.json()["warnings_cleared"] == 1
    assert warnings_of(engine, sensor.id) == expected(sensor.threshold)


def test_the_same_batch_twice_stores_once_and_changes_no_warning(client, tokens, engine, sensors):
    sensor = sensors[2]
    series = [(sensor.code, at(m), v) for m, v in script(sensor.threshold)]
    before_readings, before = readings_of(engine, sensor.id), warnings_of(engine, sensor.id)
    assert before_readings == len(series)  # posted by the test before
    again = post(client, tokens, csv_body(series))
    assert again.status_code == 200, again.text
    body = again.json()
    assert (body["received"], body["stored"], body["duplicates"]) == (7, 0, 7)
    assert (body["warnings_opened"], body["warnings_updated"], body["warnings_cleared"]) == (
        0,
        0,
        0,
    )
    assert readings_of(engine, sensor.id) == before_readings
    assert warnings_of(engine, sensor.id) == before


def test_a_late_reading_is_stored_but_reopens_nothing(client, tokens, engine, sensors):
    """Over the threshold, but older than what the sensor already reported (a cleared spell)."""
    sensor = sensors[2]
    before = warnings_of(engine, sensor.id)
    late = post(client, tokens, csv_body([(sensor.code, at(5).replace(":00+", ":30+"), 99.0)]))
    assert late.status_code == 200, late.text
    assert (late.json()["stored"], late.json()["late"]) == (1, 1)
    assert warnings_of(engine, sensor.id) == before


def test_twice_in_one_batch_is_stored_once(client, tokens, engine, sensors):
    sensor = sensors[3]
    body = csv_body([(sensor.code, at(100), 1.0), (sensor.code, at(100), 2.0)])
    response = post(client, tokens, body)
    assert (response.json()["stored"], response.json()["duplicates"]) == (1, 1)
    with engine.connect() as conn:
        value = conn.execute(
            text("SELECT value FROM sensor_readings WHERE sensor_id = :s AND observed_at = :t"),
            {"s": sensor.id, "t": at(100)},
        ).scalar_one()
    assert value == 1.0  # the first line stands


def test_a_batch_with_bad_lines_changes_nothing(client, tokens, engine, sensors):
    from tests.conftest import snapshot

    sensor = sensors[3]
    tables = ["sensor_readings", "sensor_warnings"]
    before = snapshot(engine, tables)
    body = csv_body(
        [
            (sensor.code, at(200), sensor.threshold + 5),  # line 2: good, over the threshold
            ("GZ999999999999", at(201), 1.0),  # line 3: no such sensor
            (sensor.code, "2099-03-01T10:00:00", 1.0),  # line 4: no zone
            (sensor.code, at(203), "nan"),  # line 5: not finite
            (sensor.code, at(204), "1e999"),  # line 6: not finite
            (sensor.code, "yesterday", 1.0),  # line 7: not a time
        ]
    )
    response = post(client, tokens, body)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert [item["line"] for item in problem["lines"]] == [3, 4, 5, 6, 7]
    assert problem["bad_lines"] == 5
    lines = ndjson_body([(sensor.code, at(210), 1.0)]) + b'{"sensor_code": 1\n'
    refused = post(client, tokens, lines, "application/x-ndjson")
    assert refused.status_code == 400
    assert [item["line"] for item in refused.json()["lines"]] == [2]
    assert post(client, tokens, b"", "text/csv").status_code == 400
    assert post(client, tokens, b"x", "application/json").status_code == 415
    assert snapshot(engine, tables) == before


def test_sensor_id_names_a_sensor_too(client, tokens, engine, sensors):
    sensor = sensors[3]
    body = f"sensor_id,observed_at,value\n{sensor.id},{at(300)},1.0\n".encode()
    response = post(client, tokens, body)
    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 1
    unknown = post(client, tokens, f"sensor_id,observed_at,value\n0,{at(301)},1\n".encode())
    assert unknown.status_code == 400


def test_the_live_list_and_a_sensors_history(client, tokens, sensors):
    sensor = sensors[0]
    listed = client.get("/safety/warnings", headers=auth(tokens, "planner"))
    assert listed.status_code == 200
    body = listed.json()
    mine = [w for w in body["warnings"] if w["sensor_code"] == sensor.code]
    assert len(mine) == 1 and mine[0]["open"] and mine[0]["started_at"] == utc(6)
    assert mine[0]["kind"] == "water_level" and mine[0]["unit"] and mine[0]["grid_code"]
    assert body["stream_after"] >= mine[0]["id"]
    started = [w["started_at"] for w in body["warnings"]]
    assert started == sorted(started, reverse=True)

    shown = client.get("/safety/warnings?f=geojson", headers=auth(tokens, "safety"))
    assert shown.headers["content-type"].startswith("application/geo+json")
    (feature,) = [
        f for f in shown.json()["features"] if f["properties"]["sensor_code"] == sensor.code
    ]
    assert feature["geometry"]["type"] == "Point"

    history = client.get(f"/safety/sensors/{sensor.id}/warnings", headers=auth(tokens, "admin"))
    assert history.status_code == 200
    assert [w["open"] for w in history.json()["warnings"][:2]] == [True, False]
    missing = client.get("/safety/sensors/0/warnings", headers=auth(tokens, "admin"))
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/safety/readings"),
        ("GET", "/safety/warnings"),
        ("GET", "/safety/warnings/stream"),
        ("GET", "/safety/sensors/1/warnings"),
    ],
)
def test_the_public_is_kept_out(client, tokens, method, path):
    assert client.request(method, path).status_code == 401
    assert client.request(method, path, headers=auth(tokens, "worker_a")).status_code == 403


def test_only_gateways_post_readings(client, tokens, sensors):
    body = csv_body([(sensors[3].code, at(400), 1.0)])
    assert post(client, tokens, body, who="planner").status_code == 403
    assert post(client, tokens, body, who="admin").status_code == 200


def test_the_stream_tells_of_a_warning_raised_after_it_connected(served, tokens, sensors):
    sensor = sensors[3]
    seen: list[tuple[str, dict]] = []
    connected = threading.Event()

    def listen():
        with httpx.stream(
            "GET",
            served + "/safety/warnings/stream",
            headers=auth(tokens, "safety"),
            timeout=httpx.Timeout(30),
        ) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            event = None
            for line in stream.iter_lines():
                connected.set()
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event:
                    data = json.loads(line[6:])
                    if data["sensor_code"] == sensor.code:
                        seen.append((event, data))
                if [e for e, _ in seen] == ["warning", "cleared"]:
                    return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert connected.wait(15)
    over = httpx.post(
        served + "/safety/readings",
        content=csv_body([(sensor.code, at(500), sensor.threshold + 3)]),
        headers={"Content-Type": "text/csv", **auth(tokens, "safety")},
    )
    assert over.json()["warnings_opened"] == 1
    deadline = time.monotonic() + 15
    while not seen and time.monotonic() < deadline:
        time.sleep(0.1)
    back = httpx.post(
        served + "/safety/readings",
        content=ndjson_body([(sensor.code, at(501), sensor.threshold - 1)]),
        headers={"Content-Type": "application/x-ndjson", **auth(tokens, "safety")},
    )
    assert back.json()["warnings_cleared"] == 1
    listener.join(20)
    assert [e for e, _ in seen] == ["warning", "cleared"]
    assert seen[0][1]["started_at"] == utc(500) and seen[0][1]["open"]
    assert seen[1][1]["cleared_at"] == utc(501)


def test_a_resumed_feed_is_told_what_it_missed(engine, sensors):
    """From a cursor (Last-Event-ID): newer warnings come with the poll, recent clearings again."""
    from geo.safety.warnings import poll, start

    sensor = sensors[1]  # the JSON-lines series: one warning cleared, one open
    with engine.connect() as conn:
        first, second = conn.execute(
            text("""SELECT id FROM sensor_warnings WHERE sensor_id = :s AND started_at >= :w
                    ORDER BY id"""),
            {"s": sensor.id, "w": WINDOW},
        ).scalars()
        feed, backlog = start(conn, second)
        assert ("cleared", first) in [(name, data["id"]) for name, data, _ in backlog]
        assert second in feed.watching
        feed, backlog = start(conn, first - 1)
        told = [(name, data["id"]) for name, data, _ in poll(conn, feed)]
    assert told[:3] == [("warning", first), ("cleared", first), ("warning", second)]
    assert feed.cursor >= second and second in feed.watching


def test_warnings_rebuilt_from_stored_readings_equal_those_ingest_raised(engine, sensors):
    """The demo city's warnings are worked out from its readings after the bulk load: the same
    rules as ingest, so rebuilding after a scripted ingest gives that sensor the same warnings."""
    from geo.safety.readings import ingest, rebuild_warnings

    with engine.connect() as conn, conn.begin() as tx:
        sensor = conn.execute(
            text("""SELECT id, code, threshold FROM sensors s WHERE kind = 'water_level'
                    AND NOT EXISTS (SELECT 1 FROM sensor_warnings w WHERE w.sensor_id = s.id)
                    AND id <> ALL(:taken) ORDER BY id DESC LIMIT 1"""),
            {"taken": [s.id for s in sensors]},
        ).one()
        rows = [(sensor.code, at(m), v) for m, v in script(sensor.threshold)]
        ingest(conn, csv_body(rows), "text/csv")
        mine = """SELECT started_at, first_value, peak_value, last_value, last_at, readings,
                         cleared_at FROM sensor_warnings WHERE sensor_id = :s ORDER BY started_at"""
        before = conn.execute(text(mine), {"s": sensor.id}).all()
        assert len(before) == 2
        rebuild_warnings(conn)
        assert conn.execute(text(mine), {"s": sensor.id}).all() == before
        tx.rollback()
