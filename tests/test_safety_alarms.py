"""The 119 five-level linkage and the risk score: the areas, stations, hydrants, hazards and
buildings of an alarm checked against independent computations (geopandas, networkx on the roads
read afresh); the risk score of a hand-built case worked out by hand; masks by role; every alarm
kept, a refused one not."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import shapely
from sqlalchemy import text

from geo.checkup.fire import SPEEDS_KMH
from geo.policy.masks import mask_name, mask_phone
from geo.policy.roles import Viewer
from geo.safety import alarm, risk

SRID = 4549
NOW = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


def _alarms(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM fire_alarms")).scalar_one()


@pytest.fixture(scope="module")
def site(engine) -> dict:
    """A key unit alone within 100 m of other key units, with hydrants and open hazards near:
    its grid, community, street and district are known from the tables."""
    with engine.connect() as conn:
        row = conn.execute(
            text("""
            SELECT o.id, o.credit_code::text AS credit, o.grid_code::text AS grid,
                   g.community_code::text AS community, c.parent_code::text AS street,
                   s.parent_code::text AS district, ST_X(o.geom) AS lon, ST_Y(o.geom) AS lat
            FROM organisations o JOIN grids g ON g.code = o.grid_code
            JOIN admin_areas c ON c.code = g.community_code
            JOIN admin_areas s ON s.code = c.parent_code
            WHERE o.is_key_unit
              AND NOT EXISTS (SELECT 1 FROM organisations k WHERE k.is_key_unit AND k.id <> o.id
                    AND ST_DWithin(ST_Transform(k.geom, 4549), ST_Transform(o.geom, 4549), 100))
            ORDER BY (SELECT count(*) FROM facilities f WHERE f.kind = 'hydrant'
                        AND ST_DWithin(ST_Transform(f.geom, 4549), ST_Transform(o.geom, 4549), 200))
                   + (SELECT count(*) FROM hazards h WHERE h.status <> 'closed'
                        AND ST_DWithin(ST_Transform(h.geom, 4549), ST_Transform(o.geom, 4549), 500))
                     DESC, o.id
            LIMIT 1""")
        ).one()
    return dict(row._mapping)


def _metric(engine, sql: str) -> gpd.GeoDataFrame:
    with engine.connect() as conn:
        return gpd.read_postgis(text(sql), conn, geom_col="geom").to_crs(SRID)


def _point(site) -> shapely.Point:
    frame = gpd.GeoSeries([shapely.Point(site["lon"], site["lat"])], crs=4490).to_crs(SRID)
    return frame.iloc[0]


def _stations_by_road(engine, at: shapely.Point) -> list[tuple[int, float, float]]:
    """(station id, minutes, metres) by an independent Dijkstra on the roads as geopandas reads
    them: noded where they cross, each piece at the fastest class it lies on."""
    roads = _metric(engine, "SELECT class, geom FROM roads")
    speed = roads["class"].map(SPEEDS_KMH).fillna(alarm.DEFAULT_KMH).to_numpy() / 3.6
    pieces = shapely.get_parts(shapely.node(shapely.MultiLineString(list(roads.geometry))))
    graph = nx.Graph()
    for piece in pieces:
        mid = piece.interpolate(0.5, normalized=True)
        v = max(
            (s for g, s in zip(roads.geometry, speed, strict=True) if g.distance(mid) <= 0.05),
            default=alarm.DEFAULT_KMH / 3.6,
        )
        a, b = (tuple(np.round(c, 1)) for c in (piece.coords[0], piece.coords[-1]))
        t = piece.length / v
        if a != b and t < graph.get_edge_data(a, b, {"t": math.inf})["t"]:
            graph.add_edge(a, b, t=t, m=piece.length)
    nodes = np.array(list(graph.nodes))

    def snap(p: shapely.Point) -> tuple[tuple, float]:
        d = np.hypot(nodes[:, 0] - p.x, nodes[:, 1] - p.y)
        return tuple(nodes[int(np.argmin(d))]), float(d.min())

    access = alarm.ACCESS_KMH / 3.6
    start, gap = snap(at)
    seconds = nx.single_source_dijkstra_path_length(graph, start, weight="t")
    metres = nx.single_source_dijkstra(graph, start, weight="t")[1]
    stations = _metric(engine, "SELECT id, geom FROM facilities WHERE kind = 'fire_station'")
    found = []
    for sid, geom in zip(stations["id"], stations.geometry, strict=True):
        node, station_gap = snap(geom)
        if node in seconds:
            path = metres[node]
            length = sum(graph[u][v]["m"] for u, v in zip(path, path[1:], strict=False))
            total = seconds[node] + (gap + station_gap) / access
            found.append((total / 60, int(sid), length + gap + station_gap))
    found.sort()
    return [(sid, minutes, m) for minutes, sid, m in found[: alarm.STATIONS]]


def test_an_alarm_at_a_key_unit_names_its_five_levels_and_what_lies_around(
    engine, client, people, site
):
    worker = "alarm_grid_worker"
    people.token(worker, "grid_worker", grids=(site["grid"],))
    before = _alarms(engine)
    answer = client.post(
        "/safety/alarms",
        json={"lon": site["lon"], "lat": site["lat"]},
        headers=people.headers("alarm_safety", "safety"),
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert [lv["code"] for lv in body["levels"]] == [
        site["district"],
        site["street"],
        site["community"],
        site["grid"],
        site["credit"],
    ]
    assert body["levels"][4]["id"] == site["id"] and body["levels"][4]["distance_m"] == 0
    assert worker in [w["username"] for w in body["levels"][3]["grid_workers"]]
    # one duty contact per level, as the roster wrote them, raw to a safety officer
    with engine.connect() as conn:
        roster = {
            (lv, code): (name, phone)
            for lv, code, name, phone in conn.execute(
                text("SELECT level, unit_code, name, phone::text FROM duty_contacts")
            )
        }
    for entry in body["levels"]:
        [contact] = entry["contacts"]
        assert (contact["name"], contact["phone"]) == roster[(entry["level"], entry["code"])]

    at = _point(site)
    hydrants = _metric(engine, "SELECT id, geom FROM facilities WHERE kind = 'hydrant'")
    near = hydrants[hydrants.distance(at) <= 200]
    assert body["hydrants"]["count"] == len(near) > 0
    assert {h["id"] for h in body["hydrants"]["items"]} == set(near["id"])
    hazards = _metric(engine, "SELECT id, geom FROM hazards WHERE status <> 'closed'")
    assert {h["id"] for h in body["hazards"]["items"]} == set(
        hazards[hazards.distance(at) <= 500]["id"]
    )
    units = _metric(engine, "SELECT id, geom FROM organisations WHERE is_key_unit")
    assert {k["id"] for k in body["key_units"]["items"]} == set(
        units[units.distance(at) <= 500]["id"]
    )
    buildings = _metric(engine, "SELECT id, geom FROM buildings")
    assert {b["id"] for b in body["residents"]["buildings"]} == set(
        buildings[buildings.distance(at) <= 100]["id"]
    )
    assert body["residents"]["total"] == sum(b["residents"] for b in body["residents"]["buildings"])

    expected = _stations_by_road(engine, at)
    got = body["fire_stations"]["nearest"]
    assert [s["id"] for s in got] == [sid for sid, _, _ in expected]
    for s, (_, minutes, metres) in zip(got, expected, strict=True):
        assert s["minutes"] == pytest.approx(minutes, abs=0.011)
        assert s["distance_m"] == pytest.approx(metres, abs=0.2)

    # kept, whole, and listed
    assert _alarms(engine) == before + 1
    safety = people.headers("alarm_safety", "safety")
    kept = client.get(f"/safety/alarms/{body['alarm_id']}", headers=safety).json()
    assert kept["response"] == {k: v for k, v in body.items() if k != "alarm_id"}
    assert kept["received_by"] == "alarm_safety"
    listed = client.get("/safety/alarms", headers=safety).json()["alarms"]
    assert listed[0]["id"] == body["alarm_id"]


def test_names_and_phones_are_masked_for_a_planner_and_raw_for_safety(engine, site):
    with engine.connect() as conn:
        raw = alarm.respond(conn, Viewer("s", "safety"), SRID, site["lon"], site["lat"], keep=False)
        masked = alarm.respond(
            conn, Viewer("p", "planner"), SRID, site["lon"], site["lat"], keep=False
        )
        conn.rollback()
    assert raw["masked"] is False and masked["masked"] is True
    for r, m in zip(raw["levels"], masked["levels"], strict=True):
        for rc, mc in zip(r["contacts"], m["contacts"], strict=True):
            assert "*" not in rc["name"] and "*" not in rc["phone"]
            assert mc["name"] == mask_name(rc["name"]) and mc["phone"] == mask_phone(rc["phone"])
    unit_raw, unit_masked = raw["levels"][4], masked["levels"][4]
    if unit_raw["legal_person"]:
        assert unit_masked["legal_person"] == mask_name(unit_raw["legal_person"])
    assert all("elderly" not in b for b in masked["residents"]["buildings"])


def test_an_address_is_geocoded_and_a_gcj02_point_converted(engine, client, people):
    safety = people.headers("alarm_safety", "safety")
    with engine.connect() as conn:
        full_name, lon, lat = conn.execute(
            text("SELECT full_name, ST_X(geom), ST_Y(geom) FROM addresses ORDER BY id LIMIT 1")
        ).one()
    body = client.post("/safety/alarms", json={"address": full_name}, headers=safety).json()
    assert body["point"]["how"] == "geocoded" and body["point"]["score"] == 1.0
    assert (body["point"]["lon"], body["point"]["lat"]) == pytest.approx((lon, lat))
    from geo.crs import wgs84_to_gcj02

    glon, glat = wgs84_to_gcj02([lon], [lat])
    body = client.post(
        "/safety/alarms",
        json={"lon": float(glon[0]), "lat": float(glat[0]), "crs": "GCJ-02"},
        headers=safety,
    ).json()
    assert (body["point"]["lon"], body["point"]["lat"]) == pytest.approx((lon, lat), abs=1e-7)


@pytest.mark.parametrize(
    "payload, status",
    [
        ({"lon": 121.47, "lat": 31.23}, 400),  # Shanghai: outside the district
        ({}, 400),
        ({"lon": 119.0}, 400),
        ({"address": "   "}, 400),
        ({"lon": 119.0, "lat": 31.5, "crs": "BD-09"}, 400),
        ({"address": "火星市不存在路99999号"}, 422),
    ],
)
def test_bad_alarms_are_refused_and_not_kept(engine, client, people, payload, status):
    before = _alarms(engine)
    answer = client.post(
        "/safety/alarms", json=payload, headers=people.headers("alarm_safety", "safety")
    )
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    if status == 422:
        assert "candidates" in answer.json()
    assert _alarms(engine) == before


def test_only_safety_and_admin_take_alarms(client, people):
    planner = people.headers("alarm_planner", "planner")
    assert (
        client.post("/safety/alarms", json={"lon": 119, "lat": 31.5}, headers=planner).status_code
        == 403
    )
    assert client.post("/safety/alarms", json={"lon": 119, "lat": 31.5}).status_code == 401


def _density(conn) -> pd.Series:
    """Residents per km² of each grid, counted apart: resident records per building, else the
    building's own count, summed by the building's grid over the grid's metric area."""
    buildings = pd.read_sql(text("SELECT id, grid_code, residents FROM buildings"), conn)
    records = pd.read_sql(
        text("""SELECT h.building_id AS id, count(*) AS n FROM residents r
                JOIN houses h ON h.id = r.house_id GROUP BY 1"""),
        conn,
    )
    b = buildings.merge(records, on="id", how="left")
    b["people"] = np.where(b["n"].fillna(0) > 0, b["n"].fillna(0), b["residents"].fillna(0))
    grids = gpd.read_postgis(text("SELECT code, geom FROM grids"), conn, geom_col="geom")
    km2 = pd.Series(grids.to_crs(SRID).area.to_numpy() / 1e6, index=grids["code"])
    people = b.groupby("grid_code")["people"].sum().reindex(km2.index, fill_value=0)
    return people / km2


def test_risk_score_on_a_hand_built_case(engine):
    """Every hazard closed, warning cleared and key unit unmarked, then: grid A holds a level-1
    hazard, an overdue level-3 one, a closed level-2 one, two active warnings and one key unit;
    grid B (another street) a level-4 hazard and two key units. Rolled back at the end."""
    weights = {"hazards": 0.4, "overdue": 0.2, "warnings": 0.2, "key_units": 0.1, "density": 0.1}
    with engine.connect() as conn:
        tx = conn.begin()
        try:
            a, b = conn.execute(
                text("""SELECT DISTINCT ON (left(g.code, 9)) g.code::text FROM grids g
                        WHERE (SELECT count(*) FROM organisations o WHERE o.grid_code = g.code) >= 2
                        ORDER BY left(g.code, 9), g.code LIMIT 2""")
            ).scalars()
            conn.execute(
                text(
                    "UPDATE hazards SET status = 'closed', closed_at = found_at WHERE status <> 'closed'"
                )
            )
            conn.execute(
                text("UPDATE sensor_warnings SET cleared_at = started_at WHERE cleared_at IS NULL")
            )
            conn.execute(text("UPDATE organisations SET is_key_unit = false WHERE is_key_unit"))
            hz = conn.execute(text("SELECT id FROM hazards ORDER BY id LIMIT 4")).scalars().all()
            day = timedelta(days=1)
            for hid, grid, level, status, found, deadline in (
                (hz[0], a, 1, "assigned", NOW - day, NOW + 10 * day),
                (hz[1], a, 3, "rectifying", NOW - 5 * day, NOW - day),  # overdue
                (hz[2], a, 2, "closed", NOW - 5 * day, NOW - day),  # closed: not counted
                (hz[3], b, 4, "reported", NOW - day, NOW + day),
            ):
                conn.execute(
                    text("""UPDATE hazards h SET grid_code = :g, level = :lv, status = :st,
                                found_at = :f, deadline = :d,
                                closed_at = :c,
                                geom = (SELECT ST_PointOnSurface(geom) FROM grids WHERE code = :g)
                            WHERE h.id = :id"""),
                    {
                        "g": grid,
                        "lv": level,
                        "st": status,
                        "f": found,
                        "d": deadline,
                        "c": found if status == "closed" else None,
                        "id": hid,
                    },
                )
            sensors = (
                conn.execute(text("SELECT id FROM sensors ORDER BY id LIMIT 3")).scalars().all()
            )
            conn.execute(
                text("""UPDATE sensors SET grid_code = :g,
                            geom = (SELECT ST_PointOnSurface(geom) FROM grids WHERE code = :g)
                        WHERE id = ANY(:ids)"""),
                {"g": a, "ids": sensors},
            )
            for sid, cleared in zip(sensors, (None, None, NOW - day), strict=True):
                conn.execute(
                    text("""INSERT INTO sensor_warnings (sensor_id, threshold, started_at,
                                first_value, peak_value, last_value, last_at, cleared_at)
                            VALUES (:s, 1, :t, 2, 2, 2, :t, :c)"""),
                    {"s": sid, "t": NOW - 2 * day, "c": cleared},
                )
            for grid, n in ((a, 1), (b, 2)):
                conn.execute(
                    text("""UPDATE organisations SET is_key_unit = true WHERE id IN (
                                SELECT id FROM organisations WHERE grid_code = :g ORDER BY id LIMIT :n)"""),
                    {"g": grid, "n": n},
                )
            grids = {g["code"]: g for g in risk.risk_by_grid(conn, NOW, weights, SRID)}
            density = _density(conn)
            cells = risk.risk_by_cell(conn, 9, NOW, weights)
            pa = conn.execute(
                text(
                    "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM grids WHERE code = :g) q"
                ),
                {"g": a},
            ).one()
        finally:
            tx.rollback()

    ga, gb = grids[a], grids[b]
    assert ga["terms"] | {"density": 0} == {
        "hazards": 4 + 2,
        "overdue": 1,
        "warnings": 2,
        "key_units": 1,
        "density": 0,
    }
    assert gb["terms"]["hazards"] == 1 and gb["terms"]["key_units"] == 2
    assert gb["terms"]["overdue"] == gb["terms"]["warnings"] == 0
    assert ga["terms"]["density"] == pytest.approx(density[a], rel=1e-6)
    top = density.max()
    # by hand: A has the most hazards, overdue hazards and warnings (each normalised to 1) and
    # half the most key units; B a sixth of the hazards and the most key units
    expected_a = 100 * (0.4 * 1 + 0.2 * 1 + 0.2 * 1 + 0.1 * 0.5 + 0.1 * density[a] / top)
    expected_b = 100 * (0.4 * 1 / 6 + 0 + 0 + 0.1 * 1 + 0.1 * density[b] / top)
    assert ga["score"] == pytest.approx(expected_a, abs=0.006)
    assert gb["score"] == pytest.approx(expected_b, abs=0.006)
    assert max(g["score"] for g in grids.values()) == ga["score"]
    # the cell of A's point holds its hazards and warnings
    import h3

    cell = next(c for c in cells if c["code"] == h3.latlng_to_cell(pa[1], pa[0], 9))
    assert (cell["terms"]["hazards"], cell["terms"]["overdue"], cell["terms"]["warnings"]) == (
        6,
        1,
        2,
    )
    assert cell["normalised"]["hazards"] == 1.0


def test_risk_weights_are_read_as_name_value_or_json():
    from geo.errors import BadRequest

    assert risk.parse_weights(None) == risk.DEFAULT_WEIGHTS
    assert risk.parse_weights("hazards=1, density=0")["hazards"] == 1.0
    assert risk.parse_weights('{"warnings": 0.5}')["warnings"] == 0.5
    from geo.settings import SafetySettings

    assert risk.parse_weights(SafetySettings().risk_weights) == risk.DEFAULT_WEIGHTS
    for bad in ("fire=1", "hazards=x", "hazards", "hazards=-1"):
        with pytest.raises(BadRequest):
            risk.parse_weights(bad)


def test_the_risk_layer_is_geojson_for_planners_and_safety(client, people):
    planner = people.headers("alarm_planner", "planner")
    grid = client.get("/safety/risk?level=grid", headers=planner)
    assert grid.status_code == 200 and grid.headers["content-type"].startswith(
        "application/geo+json"
    )
    body = grid.json()
    assert body["type"] == "FeatureCollection" and body["weights"] == risk.DEFAULT_WEIGHTS
    props = body["features"][0]["properties"]
    assert {"score", *risk.TERMS, *(f"{t}_n" for t in risk.TERMS)} <= set(props)
    cells = client.get("/safety/risk?level=h3_8", headers=planner).json()
    assert cells["features"][0]["geometry"]["type"] == "Polygon"
    assert client.get("/safety/risk?level=county", headers=planner).status_code == 400
    assert client.get("/safety/risk").status_code == 401


def test_the_safety_benchmarks_run_on_the_small_city(db_url, tmp_path):
    """benchmarks/safety.py and safety_ingest.py, briefly, so that they cannot rot; each leaves
    the database as it found it (its alarms and readings deleted)."""
    import json

    from tests.conftest import benchmark_module

    out = tmp_path / "alarms.json"
    assert benchmark_module("safety").main(
        ["--url", db_url, "--alarms", "20", "--json", str(out)]
    ) in (0, None)
    assert json.loads(out.read_text())
    out = tmp_path / "ingest.json"
    args = ["--url", db_url, "--batch", "2000", "--repeats", "1", "--json", str(out)]
    assert benchmark_module("safety_ingest").main(args) in (0, None)
    assert json.loads(out.read_text())
