"""Patrols and freshness (巡查与鲜活度): a patrol with a scripted track along a street of worker A's
grid verifies three records (their versions stay put), edits one through the records API, reports
a hazard with a photo and ends holding its track, the buildings visited (against an independent
shapely computation), the records verified and changed; worker B can touch none of it; the
freshness figures of a scripted week, worked out by hand, at grid, community and street."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import shapely
from fastapi.testclient import TestClient
from pyproj import Transformer
from shapely.geometry import LineString, shape
from sqlalchemy import text
from sqlalchemy.engine import make_url

from geo.policy.roles import Viewer
from geo.records import freshness as fresh
from geo.records import patrols
from tests.conftest import TILE_CACHE, auth, settings_for

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
JSON = {"Content-Type": "application/json"}
TO_METRES = Transformer.from_crs(4490, 4549, always_xy=True)


def metres(geom):
    """The shape in EPSG:4549 (CGCS2000 Gauss-Krüger CM 120°E), by pyproj."""
    return shapely.transform(
        geom, lambda xy: np.column_stack(TO_METRES.transform(xy[:, 0], xy[:, 1]))
    )


@pytest.fixture(scope="module")
def web(db_url, tmp_path_factory):
    """The app with its own photo folder (the hazard's evidence lands there)."""
    from api.app import create_app
    from geo.settings import ServiceSettings

    settings = settings_for(
        db_url,
        service=ServiceSettings(
            allowed_hosts="127.0.0.1,localhost,testserver",
            tile_cache=TILE_CACHE,
            photos=tmp_path_factory.mktemp("patrol-evidence"),
        ),
    )
    with TestClient(create_app(settings)) as client:
        client.photos = settings.service.photos / make_url(db_url).database
        yield client


def one(engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(text(sql), params).first()


def street_track(engine, grid: str, n: int = 12) -> list[tuple[float, float]]:
    """Points along the longest stretch of road inside the grid (or, with no road there, through
    the grid's first buildings)."""
    with engine.connect() as conn:
        line = conn.execute(
            text("""SELECT ST_AsGeoJSON(part) FROM (
                        SELECT (ST_Dump(ST_Intersection(r.geom, g.geom))).geom AS part
                        FROM roads r JOIN grids g ON g.code = :g
                        WHERE ST_Intersects(r.geom, g.geom)) s
                    WHERE GeometryType(part) = 'LINESTRING'
                    ORDER BY ST_Length(CAST(part AS geography)) DESC LIMIT 1"""),
            {"g": grid},
        ).scalar()
        if line is not None and shape(json.loads(line)).length > 1e-4:
            road = shape(json.loads(line))
            return [
                (round(p.x, 8), round(p.y, 8))
                for p in (road.interpolate(i / (n - 1), normalized=True) for i in range(n))
            ]
        rows = conn.execute(
            text("""SELECT ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom))
                    FROM buildings WHERE grid_code = :g ORDER BY id LIMIT 6"""),
            {"g": grid},
        ).all()
    return [(round(x, 8), round(y, 8)) for x, y in rows]


def record_in(engine, table: str, grid: str, skip: int = 0) -> int:
    return one(
        engine,
        f"SELECT id FROM {table} WHERE grid_code = :g ORDER BY id OFFSET :s LIMIT 1",
        g=grid,
        s=skip,
    ).id


def stamp(engine, table: str, rid: int):
    return one(
        engine,
        f"SELECT version, updated_at, verified_at, verified_by FROM {table} WHERE id = :id",
        id=rid,
    )


# --- the patrol, end to end -----------------------------------------------------------------


def test_a_patrol_verifies_three_records_reports_a_hazard_and_ends(web, engine, tokens, grids):
    a = auth(tokens, "worker_a")
    started = web.post("/field/patrols", headers=a)
    assert started.status_code == 201, started.text
    patrol = started.json()
    pid = patrol["id"]
    assert patrol["grid_codes"] == [grids["A"]] and patrol["status"] == "running"
    assert web.post("/field/patrols", headers=a).status_code == 409  # one at a time

    # the track, in two parts, times after the start
    points = street_track(engine, grids["A"])
    assert len(points) >= 3
    t0 = datetime.fromisoformat(patrol["started_at"])
    timed = [[x, y, (t0 + timedelta(seconds=i)).isoformat()] for i, (x, y) in enumerate(points)]
    half = len(timed) // 2
    for part in (timed[:half], timed[half:]):
        sent = web.post(f"/field/patrols/{pid}/track", headers=a | JSON, json={"points": part})
        assert sent.status_code == 200, sent.text
    assert sent.json()["points"] == len(points)
    assert sent.json()["outside_points"] == 0
    # out of order, or before the start: refused, nothing kept
    early = [[points[0][0], points[0][1], (t0 - timedelta(minutes=1)).isoformat()]]
    assert (
        web.post(f"/field/patrols/{pid}/track", headers=a, json={"points": early}).status_code
        == 400
    )
    zoneless = [[points[0][0], points[0][1], "2026-01-01T09:00:00"]]
    assert (
        web.post(f"/field/patrols/{pid}/track", headers=a, json={"points": zoneless}).status_code
        == 400
    )

    # three verifications: stamped, versions unmoved, logged with the patrol
    targets = [
        ("buildings", record_in(engine, "buildings", grids["A"])),
        ("addresses", record_in(engine, "addresses", grids["A"])),
        ("residents", record_in(engine, "residents", grids["A"])),
    ]
    before = {t: stamp(engine, *t) for t in targets}
    for rtype, rid in targets:
        done = web.post(
            "/field/verify",
            headers=a | JSON,
            json={"record_type": rtype, "record_id": rid, "patrol_id": pid},
        )
        assert done.status_code == 200, done.text
        body = done.json()
        assert body["version"] == before[(rtype, rid)].version
        assert body["verified_by"] == "t_worker_a"
        after = stamp(engine, rtype, rid)
        assert after.version == before[(rtype, rid)].version
        assert after.updated_at == before[(rtype, rid)].updated_at
        assert after.verified_by == "t_worker_a" and after.verified_at is not None
    logged = one(
        engine,
        "SELECT count(*) AS n, count(DISTINCT grid_code) AS g, min(grid_code) AS grid "
        "FROM verifications WHERE patrol_id = :p",
        p=pid,
    )
    assert (logged.n, logged.g, logged.grid) == (3, 1, grids["A"])

    # an edit on the way, through the records API
    fid = record_in(engine, "facilities", grids["A"])
    etag = web.get(f"/records/facilities/{fid}", headers=a).headers["etag"]
    edited = web.patch(
        f"/records/facilities/{fid}",
        headers=a | JSON | {"If-Match": etag},
        content=json.dumps({"properties": {"name": "巡查更正 设施名称"}}),
    )
    assert edited.status_code == 200, edited.text
    edited_version = int(edited.headers["etag"].strip('"v'))

    # a hazard with a photo, into the hazard loop
    hx, hy = points[len(points) // 2]
    reported = web.post(
        f"/field/patrols/{pid}/hazards",
        headers=a,
        data={
            "category": "fire",
            "level": "2",
            "description": "消防通道堵塞",
            "lon": hx,
            "lat": hy,
        },
        files={"photo": ("scene.png", PNG, "image/png")},
    )
    assert reported.status_code == 201, reported.text
    hid = reported.json()["id"]
    row = one(
        engine, "SELECT status, source, reported_by, grid_code FROM hazards WHERE id = :h", h=hid
    )
    assert tuple(row) == ("reported", "inspection", "t_worker_a", grids["A"])
    evidence = one(
        engine, "SELECT evidence FROM hazard_steps WHERE hazard_id = :h ORDER BY id LIMIT 1", h=hid
    ).evidence
    photo = next(e for e in evidence if e["type"] == "photo")
    assert photo["media_type"] == "image/png"
    assert (web.photos / photo["stored_as"]).read_bytes() == PNG
    assert {"type": "patrol", "patrol_id": pid} in evidence

    # the end: track, buildings visited, verified, changed, hazards
    ended = web.post(f"/field/patrols/{pid}/end", headers=a)
    assert ended.status_code == 200, ended.text
    stored = web.get(f"/field/patrols/{pid}", headers=a).json()
    assert stored == ended.json() and stored["status"] == "ended"
    got = [tuple(round(c, 8) for c in xy) for xy in stored["track"]["coordinates"]]
    assert got == points
    assert stored["length_m"] > 0
    assert {(v["type"], v["id"]) for v in stored["verified"]} == set(targets)
    assert [(c["type"], c["id"], c["version"]) for c in stored["changed"]] == [
        ("facilities", fid, edited_version)
    ]
    assert stored["hazards"] == [hid]
    assert stored["buildings"] == visited_by_shapely(engine, points, grids["A"])
    assert stored["buildings"], "the scripted track passes buildings"
    # an ended patrol takes nothing more
    more = {"points": [[hx, hy, datetime.now(UTC).isoformat()]]}
    assert web.post(f"/field/patrols/{pid}/track", headers=a, json=more).status_code == 409
    assert web.post(f"/field/patrols/{pid}/end", headers=a).status_code == 409
    assert (
        web.post(
            "/field/verify",
            headers=a,
            json={"record_type": "buildings", "record_id": targets[0][1], "patrol_id": pid},
        ).status_code
        == 409
    )


def visited_by_shapely(engine, points, grid: str) -> list[int]:
    """Buildings of the grid within 30 m of the track, measured in EPSG:4549 with shapely."""
    track = metres(LineString(points))
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, ST_AsBinary(geom) AS wkb FROM buildings WHERE grid_code = :g"),
            {"g": grid},
        ).all()
    return sorted(
        r.id for r in rows if metres(shapely.from_wkb(bytes(r.wkb))).distance(track) <= 30.0
    )


def test_worker_b_cannot_verify_as_records_nor_touch_as_patrol(web, engine, tokens, grids):
    a, b = auth(tokens, "worker_a"), auth(tokens, "worker_b")
    pid = web.post("/field/patrols", headers=a).json()["id"]
    try:
        rid = record_in(engine, "buildings", grids["A"], skip=1)
        before = stamp(engine, "buildings", rid)
        refused = web.post(
            "/field/verify", headers=b, json={"record_type": "buildings", "record_id": rid}
        )
        assert refused.status_code == 404
        missing = web.post(
            "/field/verify", headers=b, json={"record_type": "buildings", "record_id": 2**60}
        )
        assert missing.status_code == 404  # the same answer as for a record that is not there
        assert stamp(engine, "buildings", rid) == before
        x, y = street_track(engine, grids["A"])[0]
        pts = {"points": [[x, y, datetime.now(UTC).isoformat()]]}
        assert web.post(f"/field/patrols/{pid}/track", headers=b, json=pts).status_code == 404
        assert web.get(f"/field/patrols/{pid}", headers=b).status_code == 404
        assert web.post(f"/field/patrols/{pid}/end", headers=b).status_code == 404
        hazard = {"category": "fire", "description": "x", "lon": str(x), "lat": str(y)}
        assert web.post(f"/field/patrols/{pid}/hazards", headers=b, data=hazard).status_code == 404
        own = record_in(engine, "buildings", grids["B"])
        on_as = web.post(
            "/field/verify",
            headers=b,
            json={"record_type": "buildings", "record_id": own, "patrol_id": pid},
        )
        assert on_as.status_code == 404  # not on someone else's patrol
        mine = web.post(
            "/field/verify", headers=b, json={"record_type": "buildings", "record_id": own}
        )
        assert mine.status_code == 200
        # A reports a hazard in B's grid on the patrol: refused by the hazard loop's grid rule
        bx, by = one(
            engine,
            "SELECT ST_X(p) AS x, ST_Y(p) AS y FROM "
            "(SELECT ST_PointOnSurface(geom) p FROM grids WHERE code = :g) s",
            g=grids["B"],
        )
        elsewhere = {"category": "fire", "description": "x", "lon": str(bx), "lat": str(by)}
        assert (
            web.post(f"/field/patrols/{pid}/hazards", headers=a, data=elsewhere).status_code == 403
        )
        # the office reads any patrol
        assert web.get(f"/field/patrols/{pid}", headers=auth(tokens, "planner")).status_code == 200
    finally:
        assert web.post(f"/field/patrols/{pid}/end", headers=a).status_code == 200


def test_roles(web, engine, tokens, grids):
    rid = record_in(engine, "buildings", grids["A"])
    body = {"record_type": "buildings", "record_id": rid}
    for who, status in (("anonymous", 401), ("planner", 403), ("safety", 403), ("investment", 403)):
        assert web.post("/field/patrols", headers=auth(tokens, who)).status_code == status, who
        assert web.post("/field/verify", headers=auth(tokens, who), json=body).status_code == status
    admin = web.post("/field/verify", headers=auth(tokens, "admin"), json=body)
    assert admin.status_code == 200 and admin.json()["verified_by"] == "t_admin"
    bad = web.post(
        "/field/verify", headers=auth(tokens, "admin"), json={"record_type": "x", "record_id": 1}
    )
    assert bad.status_code == 404
    for who, status in (("anonymous", 401), ("investment", 403)):
        assert web.get("/field/freshness", headers=auth(tokens, who)).status_code == status
    for who in ("planner", "safety", "admin"):
        got = web.get("/field/freshness?level=street", headers=auth(tokens, who))
        assert got.status_code == 200 and got.json()["scope"] == "district"
    mine = web.get("/field/freshness?level=grid", headers=auth(tokens, "worker_a")).json()
    assert [a["code"] for a in mine["areas"]] == [grids["A"]] and mine["scope"] == "own grids"
    layer = web.get("/field/freshness?level=community&f=geojson", headers=auth(tokens, "planner"))
    assert layer.status_code == 200 and layer.headers["content-type"] == "application/geo+json"
    feature = layer.json()["features"][0]
    assert feature["geometry"]["type"] in ("Polygon", "MultiPolygon")
    assert {"share_30", "share_90", "patrols_per_worker_week"} <= set(feature["properties"])
    assert (
        web.get("/field/freshness?level=city", headers=auth(tokens, "planner")).status_code == 400
    )


def test_the_trigger_leaves_the_version_alone_for_a_stamp_only(engine):
    def state(conn, table, rid):
        return tuple(
            conn.execute(
                text(f"SELECT version, updated_at FROM {table} WHERE id = :i"), {"i": rid}
            ).one()
        )

    for table in fresh.RECORD_TABLES:
        with engine.connect() as conn, conn.begin() as tx:
            rid = conn.execute(text(f"SELECT id FROM {table} ORDER BY id LIMIT 1")).scalar_one()
            version, updated_at = state(conn, table, rid)
            conn.execute(
                text(f"UPDATE {table} SET verified_at = now(), verified_by = 'x' WHERE id = :i"),
                {"i": rid},
            )
            assert state(conn, table, rid) == (version, updated_at), table
            # a change of content, even with a stamp, is an edit: the version moves on
            conn.execute(
                text(
                    f"UPDATE {table} SET verified_by = 'y', "
                    "geom = ST_Translate(geom, 0, 0.00001) WHERE id = :i"
                ),
                {"i": rid},
            )
            assert state(conn, table, rid)[0] == version + 1, table
            tx.rollback()


# --- freshness on a scripted week -----------------------------------------------------------

NOW = datetime(2031, 3, 8, 12, 0, tzinfo=UTC)
LONG_AGO = datetime(2030, 1, 1, tzinfo=UTC)


def day(n: float) -> datetime:
    """``n`` days before NOW."""
    return NOW - timedelta(days=n)


def _backdate(conn, table: str, rid: int | None, updated_at: datetime) -> None:
    """Set ``updated_at`` as if the record were edited then (the trigger would say now)."""
    conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
    where = "" if rid is None else "WHERE id = :id"
    conn.execute(
        text(
            f"UPDATE {table} SET updated_at = :at, verified_at = NULL, verified_by = NULL {where}"
        ),
        {"at": updated_at, "id": rid},
    )
    conn.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER USER"))


def test_freshness_on_a_scripted_week(engine, grids, tokens):
    A, B = grids["A"], grids["B"]
    worker_a = Viewer("t_worker_a", "grid_worker", frozenset({A}))
    worker_b = Viewer("t_worker_b", "grid_worker", frozenset({B}))
    office = Viewer("t_planner", "planner")
    with engine.connect() as conn, conn.begin() as tx:
        # every record last touched long ago, none verified: a clean slate, rolled back after
        for table in fresh.RECORD_TABLES:
            _backdate(conn, table, None, LONG_AGO)

        def pick(table, grid, skip=0):
            return conn.execute(
                text(f"SELECT id FROM {table} WHERE grid_code = :g ORDER BY id OFFSET :s LIMIT 1"),
                {"g": grid, "s": skip},
            ).scalar_one()

        # the week in grid A: four records fresh within 30 days, two more within 90
        patrols.verify(conn, worker_a, "buildings", pick("buildings", A), day(1))
        patrols.verify(conn, worker_a, "addresses", pick("addresses", A), day(3))
        patrols.verify(conn, worker_a, "residents", pick("residents", A), day(6))
        _backdate(conn, "facilities", pick("facilities", A), day(4))  # edited …
        patrols.verify(
            conn, worker_a, "facilities", pick("facilities", A), day(2)
        )  # … and verified
        patrols.verify(conn, worker_a, "organisations", pick("organisations", A), day(47))
        _backdate(conn, "houses", pick("houses", A), day(78))
        patrols.verify(conn, worker_a, "buildings", pick("buildings", A, 1), day(158))  # too old
        patrols.verify(conn, worker_a, "addresses", pick("addresses", A, 1), day(-2))  # after NOW
        # grid B: one
        patrols.verify(conn, worker_b, "buildings", pick("buildings", B), day(5))
        # patrols: A walks three times in the last four weeks (and once before), B once
        for who, grid, started in (
            ("t_worker_a", A, day(2)),
            ("t_worker_a", A, day(9)),
            ("t_worker_a", A, day(27)),
            ("t_worker_a", A, day(30)),  # more than four weeks ago
            ("t_worker_b", B, day(13)),
        ):
            conn.execute(
                text(
                    "INSERT INTO patrols (username, started_at, ended_at, grid_codes) "
                    "VALUES (:u, :s, :s, :g)"
                ),
                {"u": who, "s": started, "g": [grid]},
            )

        # by hand: grid A 4 fresh in 30 days (b, a, r, f: verified 4, edited 1), 6 in 90
        # (+ organisation verified, + house edited); grid B 1 and 1
        expect_fresh = {A: (4, 6), B: (1, 1)}
        expect_split = {A: {"verified_30": 4, "edited_30": 1, "verified_90": 5, "edited_90": 2}}

        def total(where: str, **params) -> int:
            return sum(
                conn.execute(
                    text(
                        f"SELECT count(*) FROM {t} r JOIN grids g ON g.code = r.grid_code "
                        f"JOIN admin_areas c ON c.code = g.community_code WHERE {where}"
                    ),
                    params,
                ).scalar_one()
                for t in fresh.RECORD_TABLES
            )

        def workers(grid_list) -> int:
            return conn.execute(
                text(
                    "SELECT count(DISTINCT u.id) FROM users u JOIN user_grids ug ON ug.user_id = u.id "
                    "WHERE u.active AND u.role = 'grid_worker' AND ug.grid_code = ANY(:g)"
                ),
                {"g": list(grid_list)},
            ).scalar_one()

        grid_level = {a["code"]: a for a in fresh.freshness(conn, "grid", NOW, office)["areas"]}
        for grid, (f30, f90) in expect_fresh.items():
            n = total("r.grid_code = :g", g=grid)
            got = grid_level[grid]
            assert (got["records"], got["fresh_30"], got["fresh_90"]) == (n, f30, f90)
            assert got["share_30"] == round(f30 / n, 4) and got["share_90"] == round(f90 / n, 4)
        for key, value in expect_split[A].items():
            assert grid_level[A][key] == value, key
        assert grid_level[A]["patrols_4w"] == 3
        assert grid_level[A]["patrols_per_worker_week"] == round(3 / workers([A]) / 4, 3)
        assert grid_level[B]["patrols_per_worker_week"] == round(1 / workers([B]) / 4, 3)
        others = [a for code, a in grid_level.items() if code not in (A, B)]
        assert all(a["fresh_90"] == 0 and a["patrols_4w"] == 0 for a in others)
        # the oldest unverified of A: never the ones verified within 90 days
        fresh_ids = {("buildings", pick("buildings", A)), ("addresses", pick("addresses", A))}
        oldest = grid_level[A]["oldest_unverified"]
        assert len(oldest) == fresh.OLDEST
        assert all(o["last_touched"] == LONG_AGO.isoformat() for o in oldest)
        assert not fresh_ids & {(o["type"], o["id"]) for o in oldest}

        # community and street: the sums of their grids
        for level, column in (("community", "g.community_code"), ("street", "c.parent_code")):
            areas = {a["code"]: a for a in fresh.freshness(conn, level, NOW, office)["areas"]}
            home = {
                grid: conn.execute(
                    text(
                        f"SELECT {column} FROM grids g JOIN admin_areas c ON c.code = g.community_code "
                        "WHERE g.code = :g"
                    ),
                    {"g": grid},
                ).scalar_one()
                for grid in (A, B)
            }
            for code in set(home.values()):
                mine = [g for g in (A, B) if home[g] == code]
                n = total(f"{column} = :c", c=code)
                f30 = sum(expect_fresh[g][0] for g in mine)
                f90 = sum(expect_fresh[g][1] for g in mine)
                got = areas[code]
                assert (got["records"], got["fresh_30"], got["fresh_90"]) == (n, f30, f90), level
                assert got["share_30"] == round(f30 / n, 4), level
                grids_there = (
                    conn.execute(
                        text(
                            f"SELECT g.code FROM grids g JOIN admin_areas c ON c.code = g.community_code "
                            f"WHERE {column} = :c"
                        ),
                        {"c": code},
                    )
                    .scalars()
                    .all()
                )
                walked = sum(1 for g in mine for _ in range(3 if g == A else 1))
                assert got["patrols_4w"] == walked
                assert got["patrols_per_worker_week"] == round(walked / workers(grids_there) / 4, 3)
            assert sum(a["records"] for a in areas.values()) == total("true")

        # the layer carries the shares; a grid worker sees their own grid only
        layer = fresh.as_layer(conn, fresh.freshness(conn, "grid", NOW, office))
        by_code = {f["id"]: f for f in layer["features"]}
        assert by_code[A]["properties"]["share_30"] == grid_level[A]["share_30"]
        assert shape(by_code[A]["geometry"]).is_valid
        own = fresh.freshness(conn, "street", NOW, worker_a)
        assert len(own["areas"]) == 1 and own["areas"][0]["records"] == total(
            "r.grid_code = :g", g=A
        )
        tx.rollback()
