"""The hazard loop (隐患闭环): every allowed and refused move against a hand-written table, each
move's step, stale versions, overdue by a frozen clock, citizens' GCJ-02 tips converted at the
door, the grid from the location, the daily summary against a pandas count, inspection coverage,
and who may do what."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
import shapely
from fastapi.testclient import TestClient
from sqlalchemy import text

from geo.errors import Conflict, NotFound, Stale
from geo.safety import hazard_loop, inspections
from tests.conftest import TILE_CACHE, auth, settings_for

STATUSES = ("reported", "assigned", "rectifying", "verified", "closed")
#: the loop as the issue draws it, written out by hand: (from, to) pairs that are allowed
ALLOWED = {
    ("reported", "assigned"),
    ("assigned", "rectifying"),
    ("rectifying", "verified"),
    ("rectifying", "assigned"),  # rectification sent back to the unit
    ("verified", "closed"),
    ("verified", "rectifying"),  # the check failed
}
#: how to bring a new hazard to each status
PATH = {
    "reported": [],
    "assigned": ["assigned"],
    "rectifying": ["assigned", "rectifying"],
    "verified": ["assigned", "rectifying", "verified"],
    "closed": ["assigned", "rectifying", "verified", "closed"],
}
FROZEN = datetime(2031, 3, 1, 2, 0, tzinfo=UTC)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture(scope="module")
def frozen(db_url, tmp_path_factory):
    """The app with its clock frozen at FROZEN, its own deadlines and its own photo folder."""
    from geo.settings import SafetySettings, ServiceSettings

    settings = settings_for(
        db_url,
        service=ServiceSettings(
            allowed_hosts="127.0.0.1,localhost,testserver",
            tile_cache=TILE_CACHE,
            photos=tmp_path_factory.mktemp("evidence"),
        ),
        safety=SafetySettings(hazard_clock=FROZEN, hazard_deadline_days="1:1,2:2,3:5,4:10"),
    )
    from api.app import create_app

    with TestClient(create_app(settings)) as web:
        yield web


def inside(conn, grid: str) -> tuple[float, float]:
    row = conn.execute(
        text(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM grids "
            "WHERE code = :g) s"
        ),
        {"g": grid},
    ).one()
    return float(row[0]), float(row[1])


def new_hazard(conn, grid: str, when: datetime | None = None, level: int = 2) -> int:
    lon, lat = inside(conn, grid)
    return hazard_loop.report(
        conn,
        category="fire",
        level=level,
        description="test hazard 消防通道堵塞",
        lon=lon,
        lat=lat,
        by="tester",
        when=when,
    )["id"]


def hazard_row(conn, hazard_id: int):
    return conn.execute(text("SELECT * FROM hazards WHERE id = :id"), {"id": hazard_id}).one()


def count(engine, table: str) -> int:
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


# --- the loop -------------------------------------------------------------------------------


def test_the_table_matches_the_module():
    assert {(a, b) for a, tos in hazard_loop.MOVES.items() for b in tos} == ALLOWED


@pytest.mark.parametrize("start", STATUSES)
def test_every_move_from_every_status(engine, grids, start):
    """All 25 pairs: the allowed ones move and keep a step, the others are refused unchanged."""
    for to in STATUSES:
        with engine.connect() as conn:
            tx = conn.begin()
            try:
                hazard_id = new_hazard(conn, grids["A"])
                for status in PATH[start]:
                    hazard_loop.move(conn, hazard_id, status, "tester")
                before = hazard_row(conn, hazard_id)
                steps_before = len(hazard_loop.steps(conn, hazard_id))
                assert before.status == start
                if (start, to) in ALLOWED:
                    hazard_loop.move(conn, hazard_id, to, "mover", note=f"{start}->{to}")
                    after = hazard_row(conn, hazard_id)
                    assert after.status == to
                    assert (after.closed_at is not None) == (to == "closed")
                    assert after.version == before.version + 1
                    steps = hazard_loop.steps(conn, hazard_id)
                    assert len(steps) == steps_before + 1
                    assert steps[-1]["status"] == to and steps[-1]["changed_by"] == "mover"
                else:
                    with pytest.raises(Conflict) as refused:
                        hazard_loop.move(conn, hazard_id, to, "mover")
                    allowed = {b for a, b in ALLOWED if a == start}
                    assert set(refused.value.extra["allowed"]) == allowed
                    after = hazard_row(conn, hazard_id)
                    assert (after.status, after.version) == (start, before.version)
                    assert len(hazard_loop.steps(conn, hazard_id)) == steps_before
            finally:
                tx.rollback()


def test_each_move_keeps_who_when_and_evidence(engine, grids):
    t0 = datetime(2030, 5, 1, 1, 0, tzinfo=UTC)
    with engine.connect() as conn:
        tx = conn.begin()
        try:
            hazard_id = new_hazard(conn, grids["A"], when=t0)
            moves = [
                ("assigned", "officer_1", "交办住建局"),
                ("rectifying", "unit_2", "已开始整改"),
                ("verified", "officer_3", "复查合格"),
                ("closed", "officer_4", "销号"),
            ]
            for n, (to, by, note) in enumerate(moves, start=1):
                evidence = [{"type": "note", "text": f"evidence {n}"}]
                hazard_loop.move(conn, hazard_id, to, by, note, evidence, when=t0 + timedelta(n))
            steps = hazard_loop.steps(conn, hazard_id)
            assert [s["status"] for s in steps] == ["reported"] + [m[0] for m in moves]
            assert [s["changed_by"] for s in steps] == ["tester"] + [m[1] for m in moves]
            assert [s["note"] for s in steps[1:]] == [m[2] for m in moves]
            assert [s["evidence"] for s in steps[1:]] == [
                [{"type": "note", "text": f"evidence {n}"}] for n in range(1, 5)
            ]
            assert [datetime.fromisoformat(s["changed_at"]) for s in steps] == [
                t0 + timedelta(n) for n in range(5)
            ]
            assert hazard_row(conn, hazard_id).closed_at == t0 + timedelta(4)
        finally:
            tx.rollback()


def test_a_stale_version_is_refused(engine, grids):
    with engine.connect() as conn:
        tx = conn.begin()
        try:
            hazard_id = new_hazard(conn, grids["A"])
            read = hazard_row(conn, hazard_id).version
            hazard_loop.move(conn, hazard_id, "assigned", "a", version=read)
            with pytest.raises(Stale):
                hazard_loop.move(conn, hazard_id, "rectifying", "b", version=read)
            assert hazard_row(conn, hazard_id).status == "assigned"
            with pytest.raises(NotFound):
                hazard_loop.move(conn, 10**12, "assigned", "b")
        finally:
            tx.rollback()


def test_a_stale_version_over_http_is_412(client, tokens, engine, grids):
    with engine.begin() as conn:
        hazard_id = new_hazard(conn, grids["A"])
    url = f"/safety/hazards/{hazard_id}/steps"
    moved = client.post(
        url, json={"status": "assigned", "version": 1}, headers=auth(tokens, "safety")
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["properties"]["version"] == 2
    stale = client.post(
        url, json={"status": "rectifying", "version": 1}, headers=auth(tokens, "safety")
    )
    assert stale.status_code == 412
    assert stale.headers["content-type"].startswith("application/problem+json")
    refused = client.post(url, json={"status": "closed"}, headers=auth(tokens, "safety"))
    assert refused.status_code == 409 and refused.json()["allowed"] == ["rectifying"]
    body = client.get(f"/safety/hazards/{hazard_id}", headers=auth(tokens, "safety")).json()
    assert body["properties"]["status"] == "assigned"
    assert [s["status"] for s in body["properties"]["steps"]] == ["reported", "assigned"]


# --- overdue ----------------------------------------------------------------------------------


def test_overdue_by_a_frozen_clock(engine, grids):
    found = datetime(2030, 1, 10, 8, 0, tzinfo=UTC)
    days = {1: 3, 2: 7, 3: 15, 4: 30}
    with engine.connect() as conn:
        tx = conn.begin()
        try:
            lon, lat = inside(conn, grids["B"])
            hazard_id = hazard_loop.report(
                conn,
                category="gas",
                level=1,
                description="燃气泄漏",
                lon=lon,
                lat=lat,
                by="t",
                when=found,
                deadline_days=days,
            )["id"]
            deadline = hazard_row(conn, hazard_id).deadline
            assert deadline == found + timedelta(days=3)

            def listed(now, overdue=True):
                fc = hazard_loop.find(conn, now, overdue=overdue, grid=grids["B"], limit=10_000)
                return hazard_id in {f["id"] for f in fc["features"]}

            assert not listed(deadline - timedelta(seconds=1))
            assert listed(deadline - timedelta(seconds=1), overdue=False)
            assert not listed(deadline)  # at the deadline itself, not yet late
            assert listed(deadline + timedelta(seconds=1))
            for status in PATH["closed"]:
                hazard_loop.move(conn, hazard_id, status, "t", when=deadline + timedelta(days=1))
            assert not listed(deadline + timedelta(days=2))  # closed late, no longer overdue
        finally:
            tx.rollback()


def test_overdue_over_http_uses_the_configured_clock_and_deadlines(frozen, tokens, engine, grids):
    with engine.connect() as conn:
        lon, lat = inside(conn, grids["A"])
    made = frozen.post(
        "/safety/hazards",
        json={
            "category": "flood",
            "level": 1,
            "description": "低洼积水",
            "lon": lon,
            "lat": lat,
            "found_at": (FROZEN - timedelta(days=2)).isoformat(),
            "department": "水务局",
        },
        headers=auth(tokens, "safety"),
    )
    assert made.status_code == 201, made.text
    props = made.json()["properties"]
    assert props["grid_code"] == grids["A"]
    # level 1 is 1 day in this app's settings: found two days before the frozen now, so late
    assert datetime.fromisoformat(props["deadline"]) == FROZEN - timedelta(days=1)
    assert props["overdue"] is True
    late = frozen.get("/safety/hazards?overdue=true&limit=10000", headers=auth(tokens, "safety"))
    assert late.status_code == 200
    assert late.headers["content-type"].startswith("application/geo+json")
    ids = {f["id"] for f in late.json()["features"]}
    assert props["id"] in ids
    assert all(f["properties"]["overdue"] for f in late.json()["features"])
    for f in late.json()["features"]:
        assert f["properties"]["status"] != "closed"
        assert datetime.fromisoformat(f["properties"]["deadline"]) < FROZEN
    on_time = frozen.get(
        "/safety/hazards?overdue=false&limit=10000", headers=auth(tokens, "safety")
    )
    assert props["id"] not in {f["id"] for f in on_time.json()["features"]}


# --- tips (随手拍) ------------------------------------------------------------------------------


def gcj02(lon: float, lat: float) -> tuple[float, float]:
    """The public WGS 84 → GCJ-02 formula, written out here independently of geo.crs."""
    a, ee = 6378245.0, 0.00669342162296594323
    x, y = lon - 105.0, lat - 35.0
    pi = math.pi
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    dlat += (20.0 * math.sin(6.0 * x * pi) + 20.0 * math.sin(2.0 * x * pi)) * 2.0 / 3.0
    dlat += (20.0 * math.sin(y * pi) + 40.0 * math.sin(y / 3.0 * pi)) * 2.0 / 3.0
    dlat += (160.0 * math.sin(y / 12.0 * pi) + 320 * math.sin(y * pi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    dlon += (20.0 * math.sin(6.0 * x * pi) + 20.0 * math.sin(2.0 * x * pi)) * 2.0 / 3.0
    dlon += (20.0 * math.sin(x * pi) + 40.0 * math.sin(x / 3.0 * pi)) * 2.0 / 3.0
    dlon += (150.0 * math.sin(x / 12.0 * pi) + 300.0 * math.sin(x / 30.0 * pi)) * 2.0 / 3.0
    radlat = lat / 180.0 * pi
    magic = 1 - ee * math.sin(radlat) ** 2
    dlat = (dlat * 180.0) / ((a * (1 - ee)) / (magic * math.sqrt(magic)) * pi)
    dlon = (dlon * 180.0) / (a / math.sqrt(magic) * math.cos(radlat) * pi)
    return lon + dlon, lat + dlat


def test_a_citizens_gcj02_tip_lands_at_its_cgcs2000_point(client, engine, grids):
    with engine.connect() as conn:
        lon, lat = inside(conn, grids["B"])
    glon, glat = gcj02(lon, lat)
    listed = client.get("/collections/hazards").json()["x-feature-count"]
    assert (
        100
        < abs(glon - lon) * 111_000 * math.cos(math.radians(lat)) + abs(glat - lat) * 111_000
        < 2000
    )
    tip = client.post(
        "/safety/tips",
        json={"lon": glon, "lat": glat, "category": "electrical", "description": "电线私拉乱接"},
    )
    assert tip.status_code == 201, tip.text
    body = tip.json()
    assert body["grid_code"] == grids["B"] and body["status"] == "reported"
    with engine.connect() as conn:
        row = conn.execute(
            text("""SELECT ST_X(geom) x, ST_Y(geom) y, source, status, grid_code, reported_by,
                    (SELECT count(*) FROM hazard_steps s WHERE s.hazard_id = h.id) steps
                    FROM hazards h WHERE id = :id"""),
            {"id": body["id"]},
        ).one()
    assert abs(row.x - lon) < 1e-7 and abs(row.y - lat) < 1e-7  # centimetres
    assert (row.source, row.status, row.grid_code, row.steps) == ("tip", "reported", grids["B"], 1)
    assert row.reported_by == "公众"
    # the layer's count moves with the hazard, as a record's does
    assert client.get("/collections/hazards").json()["x-feature-count"] == listed + 1


def test_a_tip_with_a_photo_keeps_it_as_evidence(frozen, tokens, engine, grids):
    with engine.connect() as conn:
        lon, lat = gcj02(*inside(conn, grids["A"]))
    tip = frozen.post(
        "/safety/tips",
        data={"lon": str(lon), "lat": str(lat), "category": "fire", "description": "楼道堆物"},
        files={"photo": ("IMG_1.png", PNG, "image/png")},
    )
    assert tip.status_code == 201, tip.text
    one = frozen.get(f"/safety/hazards/{tip.json()['id']}", headers=auth(tokens, "safety")).json()
    photo = one["properties"]["steps"][0]["evidence"][0]
    assert photo["type"] == "photo" and photo["media_type"] == "image/png"
    name = photo["stored_as"].rsplit("/", 1)[-1]
    got = frozen.get(f"/safety/hazards/{one['id']}/photos/{name}", headers=auth(tokens, "safety"))
    assert got.status_code == 200 and got.content == PNG


def test_a_tip_outside_the_district_is_refused_and_nothing_is_written(client, engine):
    before = (count(engine, "hazards"), count(engine, "hazard_steps"))
    far = client.post(
        "/safety/tips",
        json={"lon": 116.404, "lat": 39.915, "category": "fire", "description": "天安门"},
    )
    assert far.status_code == 400
    assert far.headers["content-type"].startswith("application/problem+json")
    assert "不在本区" in far.json()["detail"] and "outside the district" in far.json()["detail"]
    for bad in (
        {"lon": 119.0, "lat": 31.6, "category": "volcano", "description": "x"},
        {"lon": 119.0, "lat": 31.6, "category": "fire", "description": "x", "crs": "EPSG:4549"},
        {"lon": 119.0, "lat": 31.6, "category": "fire", "description": ""},
        {"lon": "east", "lat": 31.6, "category": "fire", "description": "x"},
    ):
        refused = client.post("/safety/tips", json=bad)
        assert refused.status_code in (400, 422), (bad, refused.text)
        assert refused.headers["content-type"].startswith("application/problem+json")
    big = client.post(
        "/safety/tips",
        data={"lon": "119", "lat": "31.6", "category": "fire", "description": "x"},
        files={"photo": ("a.png", PNG + b"\x00" * (11 * 2**20), "image/png")},
    )
    assert big.status_code == 413
    fake = client.post(
        "/safety/tips",
        data={"lon": "119", "lat": "31.6", "category": "fire", "description": "x"},
        files={"photo": ("a.jpg", b"MZ not an image", "image/jpeg")},
    )
    assert fake.status_code == 415
    assert (count(engine, "hazards"), count(engine, "hazard_steps")) == before


# --- the grid from the location ---------------------------------------------------------------


def test_the_grid_comes_from_the_location(client, tokens, engine, grids):
    with engine.connect() as conn:
        lon, lat = inside(conn, grids["B"])
    made = client.post(
        "/safety/hazards",
        json={
            "category": "structural",
            "level": 3,
            "description": "墙体开裂",
            "lon": lon,
            "lat": lat,
        },
        headers=auth(tokens, "safety"),
    )
    assert made.status_code == 201, made.text
    props = made.json()["properties"]
    assert props["grid_code"] == grids["B"]
    assert props["code"].startswith("YH" + grids["B"]) and len(props["code"]) == 22
    assert props["status"] == "reported" and props["reported_by"] == "t_safety"


def test_a_point_in_no_grid_is_refused_and_nothing_is_written(client, tokens, engine):
    before = (count(engine, "hazards"), count(engine, "hazard_steps"))
    for lon, lat in ((100.0, 30.0), (119.5, 31.5)):
        refused = client.post(
            "/safety/hazards",
            json={"category": "fire", "level": 2, "description": "x", "lon": lon, "lat": lat},
            headers=auth(tokens, "safety"),
        )
        assert refused.status_code == 400
        assert "不在本区" in refused.json()["detail"]
    bad = client.post(
        "/safety/hazards",
        json={"category": "fire", "level": 9, "description": "x", "lon": 119.0, "lat": 31.6},
        headers=auth(tokens, "safety"),
    )
    assert bad.status_code == 422
    assert (count(engine, "hazards"), count(engine, "hazard_steps")) == before


# --- the daily summary ------------------------------------------------------------------------


def pandas_summary(engine, day: date, zone: str = "Asia/Shanghai") -> tuple[dict, dict]:
    with engine.connect() as conn:
        frame = pd.read_sql(
            text("""SELECT h.found_at, h.closed_at, h.deadline, h.department, c.parent_code street
                    FROM hazards h JOIN grids g ON g.code = h.grid_code
                    JOIN admin_areas c ON c.code = g.community_code"""),
            conn,
        )
    start = pd.Timestamp(datetime.combine(day, datetime.min.time(), ZoneInfo(zone)))
    end = start + pd.Timedelta(days=1)
    found = (frame.found_at >= start) & (frame.found_at < end)
    closed = (frame.closed_at >= start) & (frame.closed_at < end)
    still_open = (frame.found_at < end) & (frame.closed_at.isna() | (frame.closed_at >= end))
    frame = frame.assign(
        found=found,
        closed=closed,
        open=still_open,
        overdue=still_open & (frame.deadline < end),
        department=frame.department.fillna(hazard_loop.NO_DEPARTMENT),
    )
    keys = ["found", "closed", "open", "overdue"]
    by_street = frame.groupby("street")[keys].sum().astype(int)
    by_department = frame.groupby("department")[keys].sum().astype(int)
    return (
        {k: v for k, v in by_street.to_dict("index").items() if any(v.values())},
        {k: v for k, v in by_department.to_dict("index").items() if any(v.values())},
    )


def test_the_daily_summary_equals_a_pandas_count(engine, client, tokens):
    with engine.connect() as conn:
        busiest = conn.execute(
            text("""SELECT (closed_at AT TIME ZONE 'Asia/Shanghai')::date FROM hazards
                    WHERE closed_at IS NOT NULL GROUP BY 1 ORDER BY count(*) DESC LIMIT 1""")
        ).scalar_one()
        found_day = conn.execute(
            text("""SELECT (found_at AT TIME ZONE 'Asia/Shanghai')::date FROM hazards
                    GROUP BY 1 ORDER BY count(*) DESC LIMIT 1""")
        ).scalar_one()
    keys = ("found", "closed", "open", "overdue")
    for day in (busiest, found_day):
        with engine.connect() as conn:
            summary = hazard_loop.daily_summary(conn, day)
        streets, departments = pandas_summary(engine, day)
        assert {
            s["code"]: {k: s[k] for k in keys}
            for s in summary["streets"]
            if any(s[k] for k in keys)
        } == streets
        assert {d["department"]: {k: d[k] for k in keys} for d in summary["departments"]} == (
            departments
        )
        assert sum(v["found"] for v in streets.values()) == summary["total"]["found"]
        served = client.get(f"/safety/hazards/summary?day={day}", headers=auth(tokens, "planner"))
        assert served.status_code == 200 and served.json() == summary
    assert summary["total"]["found"] > 0
    assert (
        client.get(
            "/safety/hazards/summary?day=2030-02-30", headers=auth(tokens, "safety")
        ).status_code
        == 400
    )


# --- inspections and coverage -----------------------------------------------------------------


def test_coverage_lists_what_was_not_inspected(client, tokens, engine, grids):
    day = date(2032, 6, 1)  # a window no other test writes into
    with engine.connect() as conn:
        a, b = inside(conn, grids["A"]), inside(conn, grids["B"])
        unit = conn.execute(
            text("SELECT id FROM organisations WHERE is_key_unit ORDER BY id LIMIT 1")
        ).scalar_one()
        all_units = set(
            conn.execute(text("SELECT id FROM organisations WHERE is_key_unit")).scalars()
        )
        shapes = pd.read_sql(text("SELECT code, ST_AsText(geom) wkt FROM grids"), conn)
        before = conn.execute(text("SELECT id FROM hazards ORDER BY id LIMIT 1")).scalar_one()
    route = shapely.LineString([a, b])
    crossed = {
        code
        for code, wkt in zip(shapes.code, shapes.wkt, strict=True)
        if shapely.from_wkt(wkt).intersects(route)
    }
    assert {grids["A"], grids["B"]} <= crossed
    at = datetime.combine(day, datetime.min.time(), ZoneInfo("Asia/Shanghai")) + timedelta(hours=21)
    made = client.post(
        "/safety/inspections",
        json={
            "source": "leader_night",
            "inspector": "区长",
            "inspected_at": at.isoformat(),
            "points": [list(a), list(b)],
            "organisation_id": unit,
            "found": [{"category": "fire", "level": 2, "description": "灭火器过期"}],
            "rechecked": [before],
        },
        headers=auth(tokens, "safety"),
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["grid_code"] == grids["A"] and body["route"] is True
    found_id = body["found"][0]["id"]
    with engine.connect() as conn:
        links = dict(
            conn.execute(
                text("SELECT hazard_id, relation FROM inspection_hazards WHERE inspection_id = :i"),
                {"i": body["id"]},
            ).all()
        )
        found_row = hazard_row(conn, found_id)
    assert links == {found_id: "found", before: "rechecked"}
    assert (found_row.source, found_row.organisation_id, found_row.found_at) == (
        "inspection",
        unit,
        at,
    )
    got = client.get(
        f"/safety/inspections/coverage?start={day}&end={day}", headers=auth(tokens, "safety")
    )
    assert got.status_code == 200, got.text
    cover = got.json()
    assert {g["code"] for g in cover["grids"]["each"] if g["inspected"]} == crossed
    assert (
        set(cover["grids"]["not_inspected"])
        == {g["code"] for g in cover["grids"]["each"]} - crossed
    )
    assert cover["key_units"]["not_inspected"] == sorted(all_units - {unit})
    inspected = [u for u in cover["key_units"]["each"] if u["id"] == unit][0]
    assert inspected["by_source"] == {"leader_night": 1, "department": 0, "grid_patrol": 0}
    # the day after: nothing inspected
    with engine.connect() as conn:
        empty = inspections.coverage(
            conn,
            at + timedelta(days=1),
            at + timedelta(days=2),
        )
    assert empty["grids"]["inspected"] == 0 and empty["key_units"]["inspected"] == 0
    assert len(empty["grids"]["not_inspected"]) == empty["grids"]["total"] == len(shapes)


def test_a_refused_inspection_writes_nothing(client, tokens, engine, grids):
    before = (count(engine, "inspections"), count(engine, "hazards"))
    with engine.connect() as conn:
        a = inside(conn, grids["A"])
    for body in (
        {"source": "rumour", "inspector": "x", "points": [list(a)]},
        {"source": "department", "inspector": "x", "points": []},
        {"source": "department", "inspector": "x", "points": [list(a)], "rechecked": [10**12]},
        {
            "source": "department",
            "inspector": "x",
            "points": [list(a)],
            "found": [
                {"category": "fire", "level": 1, "description": "ok"},
                {"category": "volcano", "level": 1, "description": "bad"},
            ],
        },
    ):
        refused = client.post("/safety/inspections", json=body, headers=auth(tokens, "safety"))
        assert refused.status_code in (400, 422), (body, refused.text)
    assert (count(engine, "inspections"), count(engine, "hazards")) == before


# --- who may do what --------------------------------------------------------------------------


def test_roles(client, tokens, engine, grids):
    with engine.begin() as conn:
        in_a, in_b = new_hazard(conn, grids["A"]), new_hazard(conn, grids["B"])
        b_point = inside(conn, grids["B"])
    assert client.get("/safety/hazards").status_code == 401
    assert client.get(f"/safety/hazards/{in_a}").status_code == 401
    assert client.get("/safety/hazards", headers=auth(tokens, "investment")).status_code == 403
    assert client.get("/safety/hazards/summary").status_code == 401
    assert (
        client.get("/safety/inspections/coverage?start=2030-01-01&end=2030-01-02").status_code
        == 401
    )
    mine = client.get("/safety/hazards?limit=10000", headers=auth(tokens, "worker_a")).json()
    assert mine["features"] and {f["properties"]["grid_code"] for f in mine["features"]} == {
        grids["A"]
    }
    assert "reported_by" not in mine["features"][0]["properties"]
    assert (
        client.get(f"/safety/hazards/{in_b}", headers=auth(tokens, "worker_a")).status_code == 404
    )
    assert (
        client.get(f"/safety/hazards/{in_a}", headers=auth(tokens, "worker_a")).status_code == 200
    )
    planner = client.get(f"/safety/hazards/{in_b}", headers=auth(tokens, "planner"))
    assert planner.status_code == 200 and "reported_by" not in planner.json()["properties"]
    assert (
        client.post(
            f"/safety/hazards/{in_b}/steps",
            json={"status": "assigned"},
            headers=auth(tokens, "planner"),
        ).status_code
        == 403
    )
    before = count(engine, "hazards")
    elsewhere = client.post(
        "/safety/hazards",
        json={
            "category": "fire",
            "level": 2,
            "description": "x",
            "lon": b_point[0],
            "lat": b_point[1],
        },
        headers=auth(tokens, "worker_a"),
    )
    assert elsewhere.status_code == 403
    assert count(engine, "hazards") == before
    # a grid worker reports rectifying on their own grid only; the office does the rest
    assert (
        client.post(
            f"/safety/hazards/{in_a}/steps",
            json={"status": "assigned"},
            headers=auth(tokens, "worker_a"),
        ).status_code
        == 403
    )
    assert (
        client.post(
            f"/safety/hazards/{in_a}/steps",
            json={"status": "assigned"},
            headers=auth(tokens, "safety"),
        ).status_code
        == 200
    )
    assert (
        client.post(
            f"/safety/hazards/{in_b}/steps",
            json={"status": "rectifying"},
            headers=auth(tokens, "worker_a"),
        ).status_code
        == 404
    )
    assert (
        client.post(
            f"/safety/hazards/{in_a}/steps",
            json={"status": "rectifying"},
            headers=auth(tokens, "worker_a"),
        ).status_code
        == 200
    )
    patrol = client.post(
        "/safety/inspections",
        json={"source": "department", "inspector": "x", "points": [list(b_point)]},
        headers=auth(tokens, "worker_a"),
    )
    assert patrol.status_code == 403


def test_photo_evidence_on_a_step(frozen, tokens, engine, grids):
    with engine.begin() as conn:
        hazard_id = new_hazard(conn, grids["A"])
    url = f"/safety/hazards/{hazard_id}/steps"
    fake = frozen.post(
        url,
        data={"status": "assigned"},
        files={"photo": ("x.png", b"GIF89a...", "image/png")},
        headers=auth(tokens, "safety"),
    )
    assert fake.status_code == 415
    moved = frozen.post(
        url,
        data={
            "status": "assigned",
            "note": "现场照片",
            "version": "1",
            "level": "1",
            "department": "消防救援大队",
        },
        files={"photo": ("scene.png", PNG, "image/png")},
        headers=auth(tokens, "safety"),
    )
    assert moved.status_code == 200, moved.text
    props = moved.json()["properties"]
    assert (props["status"], props["level"], props["department"]) == ("assigned", 1, "消防救援大队")
    # re-graded on assigning: the deadline is level 1's, counted from the finding
    assert datetime.fromisoformat(props["deadline"]) - datetime.fromisoformat(
        props["found_at"]
    ) == timedelta(days=1)
    step = props["steps"][-1]
    assert step["note"] == "现场照片" and step["changed_by"] == "t_safety"
    assert step["evidence"][0]["file_name"] == "scene.png"
