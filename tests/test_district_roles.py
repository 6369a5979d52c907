"""District-bound roles: with a second district (高淳区 320118) built beside the demo city
(溧水区 320117), a user bound to 320117 never reads a 320118 row on any path, a whole-city user
reads both, ``?district=`` narrows every list to exactly the rows counted by hand, and the tile
cache keeps each audience's tiles apart."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import mapbox_vector_tile
import morecantile
import pytest
from sqlalchemy import text

from geo.codes import credit_code_check
from tests.conftest import auth
from tests.test_asset_promotion import _png

HOME, OTHER = "320117", "320118"
TMS = morecantile.tms.get("WebMercatorQuad")
NANJING = Path(__file__).resolve().parents[1] / "fixtures" / "data" / "nanjing_districts.geojson"
#: the second district's places: two grids side by side in 淳溪 (inside 高淳's real boundary)
G1, G2 = f"{OTHER}001001001", f"{OTHER}001001002"
BOX = (118.880, 31.320, 118.900, 31.330)
#: rows built in 320118, by table (what ?district=320118 must answer, counted by hand)
BUILT = {
    "admin_areas": 3,
    "grids": 2,
    "buildings": 2,
    "addresses": 3,
    "houses": 2,
    "residents": 3,
    "organisations": 1,
    "facilities": 1,
    "hazards": 2,
    "sensors": 1,
    "assets": 1,
}
#: layers whose rows carry a division code (every one of them is confined by district)
CODED = tuple(BUILT)


def _point(i: int) -> str:
    return f"SRID=4490;POINT({118.882 + 0.002 * i} {31.322 + 0.001 * i})"


def _box(x0: float, y0: float, x1: float, y1: float, multi: bool = True) -> str:
    ring = f"{x0} {y0}, {x1} {y0}, {x1} {y1}, {x0} {y1}, {x0} {y0}"
    return f"SRID=4490;MULTIPOLYGON((({ring})))" if multi else f"SRID=4490;POLYGON(({ring}))"


def _copy_row(conn, table: str, **over) -> int:
    """A row of ``table`` like one of the demo city's, with ``over`` in place (generated columns
    computed again): every column a constraint wants is filled as the demo city fills it."""
    cols = [
        r[0]
        for r in conn.execute(
            text("""SELECT column_name FROM information_schema.columns
                    WHERE table_schema = 'public' AND table_name = :t AND is_generated = 'NEVER'
                      AND column_name <> 'id' ORDER BY ordinal_position"""),
            {"t": table},
        )
    ]
    names = ", ".join(f'"{c}"' for c in cols)
    return conn.execute(
        text(f"""INSERT INTO {table} ({names})
                 SELECT {names} FROM jsonb_populate_record(NULL::{table},
                     (SELECT to_jsonb(x) - 'geom' - 'geom_3857' - 'district_code' - 'route'
                      FROM {table} x WHERE left(x.grid_code, 6) = :home ORDER BY x.id LIMIT 1)
                     || CAST(:over AS jsonb))
                 RETURNING id"""),
        {"home": HOME, "over": json.dumps(over)},
    ).scalar_one()


@pytest.fixture(scope="module")
def second_district(engine):
    """高淳区 with a street, a community, two grids and a few rows of every kind; removed after."""
    boundary = next(
        f["geometry"]
        for f in json.loads(NANJING.read_text(encoding="utf-8"))["features"]
        if f["properties"]["name"] == "高淳区"
    )
    made: dict[str, list[int]] = {}
    with engine.begin() as conn:
        conn.execute(
            text("""INSERT INTO admin_areas (code, name, level, kind, parent_code, geom) VALUES
                (:d, '高淳区', 1, 'district', NULL, ST_Multi(ST_CollectionExtract(ST_MakeValid(
                    ST_SetSRID(ST_GeomFromGeoJSON(:b), 4490)), 3))),
                (:s, '淳溪街道', 2, 'street', :d, ST_GeomFromEWKT(:box)),
                (:c, '淳溪社区', 3, 'community', :s, ST_GeomFromEWKT(:box))"""),
            {
                "d": f"{OTHER}000000",
                "s": f"{OTHER}001000",
                "c": f"{OTHER}001001",
                "b": json.dumps(boundary),
                "box": _box(*BOX),
            },
        )
        inside = conn.execute(
            text("SELECT ST_Within(ST_GeomFromEWKT(:box), geom) FROM admin_areas WHERE code = :d"),
            {"box": _box(*BOX), "d": f"{OTHER}000000"},
        ).scalar()
        assert inside, "the test's grids must lie inside 高淳区's real boundary"
        for code, x0 in ((G1, 118.880), (G2, 118.890)):
            conn.execute(
                text("""INSERT INTO grids (code, name, community_code, households, geom)
                        VALUES (:g, '高淳测试网格', :c, 10, ST_GeomFromEWKT(:box))"""),
                {"g": code, "c": f"{OTHER}001001", "box": _box(x0, 31.320, x0 + 0.010, 31.330)},
            )
        b = [
            _copy_row(
                conn,
                "buildings",
                code=f"{G1}000{i}",
                grid_code=G1,
                geom=_box(118.8815 + 0.002 * i, 31.3215, 118.8825 + 0.002 * i, 31.3225, False),
            )
            for i in (1, 2)
        ]
        a = [
            _copy_row(
                conn,
                "addresses",
                code=f"{OTHER}0010010000000{i}",
                area_code=f"{OTHER}001001",
                grid_code=(G1, G1, G2)[i - 1],
                building_id=b[0],
                full_name=f"高淳区淳溪街道测试路{i}号",
                aliases=[],
                geom=_point(i),
            )
            for i in (1, 2, 3)
        ]
        h = [
            _copy_row(
                conn, "houses", building_id=b[0], address_id=a[0], grid_code=G1, geom=_point(i)
            )
            for i in (1, 2)
        ]
        r = [
            _copy_row(
                conn,
                "residents",
                house_id=h[0],
                grid_code=G1,
                name=f"高测试{i}",
                id_number=f"32011819900101{i:03d}1",
                id_hash=hashlib.sha256(f"d{i}".encode()).hexdigest(),
                phone=f"1390000{i:04d}",
                geom=_point(i),
            )
            for i in (1, 2, 3)
        ]
        o = [
            _copy_row(
                conn,
                "organisations",
                name="高淳测试单位",
                credit_code="91320118MA0000001" + credit_code_check("91320118MA0000001"),
                address_id=a[0],
                building_id=b[0],
                grid_code=G1,
                geom=_point(1),
            )
        ]
        f = [
            _copy_row(
                conn,
                "facilities",
                name="高淳测试设施",
                address_id=a[0],
                grid_code=G1,
                geom=_point(2),
            )
        ]
        z = [
            _copy_row(
                conn,
                "hazards",
                code=f"YH{OTHER}00000000000{i}00",
                grid_code=G2,
                organisation_id=None,
                status="reported",
                closed_at=None,
                description=f"高淳测试隐患{i}",
                geom=_point(i + 3),
            )
            for i in (1, 2)
        ]
        s = [
            _copy_row(
                conn,
                "sensors",
                code=f"GZ{OTHER}000001",
                grid_code=G2,
                status="online",
                geom=_point(5),
            )
        ]
        w = [
            conn.execute(
                text("""INSERT INTO sensor_warnings (sensor_id, threshold, started_at,
                            first_value, peak_value, last_value, last_at, readings)
                        VALUES (:s, 1, now(), 2, 2, 2, now(), 1) RETURNING id"""),
                {"s": s[0]},
            ).scalar_one()
        ]
        n = [
            _copy_row(
                conn,
                "assets",
                code=f"ZC{OTHER}0001",
                name="高淳测试闲置厂房",
                area_code=f"{OTHER}001001",
                grid_code=G1,
                status="promoted",
                address_code=None,
                building_code=None,
                geom=_box(118.8850, 31.3250, 118.8860, 31.3260),
            )
        ]
        # a warning in the home district too, so that the lists are not empty for either
        w += (
            conn.execute(
                text("""INSERT INTO sensor_warnings (sensor_id, threshold, started_at, first_value,
                        peak_value, last_value, last_at, readings)
                    SELECT id, 1, now(), 2, 2, 2, now(), 1 FROM sensors
                    WHERE district_code = :home ORDER BY id LIMIT 1 RETURNING id"""),
                {"home": HOME},
            )
            .scalars()
            .all()
        )
        made = {
            "buildings": b,
            "addresses": a,
            "houses": h,
            "residents": r,
            "organisations": o,
            "facilities": f,
            "hazards": z,
            "sensors": s,
            "assets": n,
        }
    yield made
    with engine.begin() as conn:
        runs = "SELECT id FROM checkup_runs WHERE label LIKE 'd\\_%'"
        conn.execute(text(f"DELETE FROM checkup_results WHERE run_id IN ({runs})"))
        conn.execute(text(runs.replace("SELECT id", "DELETE")))
        conn.execute(text("DELETE FROM sensor_warnings WHERE id = ANY(:w)"), {"w": w})
        for table in (
            "assets",
            "sensors",
            "hazards",
            "facilities",
            "organisations",
            "residents",
            "houses",
            "addresses",
            "buildings",
            "grids",
        ):
            conn.execute(text(f"DELETE FROM {table} WHERE district_code = :d"), {"d": OTHER})
        for level in (3, 2, 1):
            conn.execute(
                text("DELETE FROM admin_areas WHERE district_code = :d AND level = :l"),
                {"d": OTHER, "l": level},
            )


@pytest.fixture(scope="module")
def bound(people, second_district) -> dict[str, dict[str, str]]:
    """Users bound to 溧水区 (320117), by role."""
    from geo.policy.users import create_user, issue_token

    out = {}
    with people.engine.begin() as conn:
        for role in ("planner", "safety", "investment", "admin"):
            name = f"d_{role}_{HOME}"
            create_user(conn, name, role, district=HOME)
            out[role] = {"Authorization": f"Bearer {issue_token(conn, name).token}"}
    return out


def _home_count(engine, table: str) -> int:
    with engine.connect() as conn:
        return conn.execute(
            text(f"SELECT count(*) FROM {table} WHERE district_code = :d"), {"d": HOME}
        ).scalar_one()


def _codes_in(features) -> set[str]:
    """The districts the features' division codes name."""
    out = set()
    for feature in features:
        props = feature["properties"]
        code = props.get("grid_code") or props.get("code") or ""
        if props.get("grid_code") or code[:6].isdigit():
            out.add(code[:6])
    return out


BBOX = "118.87,31.31,118.91,31.34"  # around the second district's rows, far from 溧水


# --- the OGC API: lists, pages, single items, downloads -----------------------------------


@pytest.mark.parametrize("layer", CODED)
def test_a_bound_user_reads_no_row_of_another_district(
    client, tokens, bound, second_district, layer
):
    city = client.get(
        f"/collections/{layer}/items",
        params={"bbox": BBOX, "limit": 1000},
        headers=auth(tokens, "admin"),
    ).json()
    home = client.get(
        f"/collections/{layer}/items", params={"bbox": BBOX, "limit": 1000}, headers=bound["admin"]
    ).json()
    # the whole-city administrator reads the rows built (the district's own polygon reaches
    # further than the box, and so can 溧水's street polygons: count the codes, not the box)
    assert OTHER in _codes_in(city["features"])
    assert OTHER not in _codes_in(home["features"])
    assert all(
        (f["properties"].get("grid_code") or f["properties"].get("code") or HOME)[:6] == HOME
        for f in home["features"]
    )


@pytest.mark.parametrize("layer", CODED)
def test_district_narrows_a_list_to_exactly_its_rows(
    client, engine, tokens, second_district, layer
):
    admin = auth(tokens, "admin")
    other = client.get(
        f"/collections/{layer}/items", params={"district": OTHER, "limit": 1000}, headers=admin
    ).json()
    assert other["numberMatched"] == BUILT[layer] == len(other["features"])
    assert _codes_in(other["features"]) == {OTHER}
    home = client.get(
        f"/collections/{layer}/items", params={"district": HOME, "limit": 1}, headers=admin
    ).json()
    assert home["numberMatched"] == _home_count(engine, layer)
    nxt = next(link for link in home["links"] if link["rel"] == "next")
    assert f"district={HOME}" in nxt["href"]  # the next page stays in the district


def test_layers_without_a_division_code_are_narrowed_by_the_boundary(
    client, engine, tokens, second_district
):
    with engine.connect() as conn:
        roads = conn.execute(text("SELECT count(*) FROM roads")).scalar_one()
    admin = auth(tokens, "admin")
    for district, expected in ((OTHER, 0), (HOME, roads)):  # the demo city's roads are 溧水's
        got = client.get(
            "/collections/roads/items", params={"district": district, "limit": 1}, headers=admin
        ).json()
        assert got["numberMatched"] == expected, district


def test_a_bound_users_counts_and_pages_are_their_districts(client, engine, bound, second_district):
    whole = client.get(
        "/collections/residents/items", params={"limit": 5}, headers=bound["planner"]
    ).json()
    assert whole["numberMatched"] == _home_count(engine, "residents")
    collection = client.get("/collections/residents", headers=bound["planner"]).json()
    assert collection["x-feature-count"] == whole["numberMatched"]


def test_single_items_of_another_district_are_missing(client, tokens, bound, second_district):
    for layer in ("hazards", "residents", "buildings", "assets"):
        fid = second_district[layer][0]
        assert (
            client.get(
                f"/collections/{layer}/items/{fid}", headers=auth(tokens, "admin")
            ).status_code
            == 200
        )
        answer = client.get(f"/collections/{layer}/items/{fid}", headers=bound["admin"])
        assert answer.status_code == 404
        assert answer.headers["content-type"].startswith("application/problem+json")


def test_pages_and_downloads_hold_no_row_of_another_district(
    client, tokens, bound, second_district
):
    page = client.get(
        "/collections/hazards/items", params={"bbox": BBOX, "f": "html"}, headers=bound["safety"]
    )
    assert page.status_code == 200 and "高淳测试隐患" not in page.text
    page = client.get(
        "/collections/hazards/items",
        params={"bbox": BBOX, "f": "html"},
        headers=auth(tokens, "safety"),
    )
    assert "高淳测试隐患" in page.text
    for who, expected in ((bound["safety"], 0), (auth(tokens, "safety"), 2)):
        got = client.get(
            "/collections/hazards/items",
            params={"bbox": BBOX, "f": "csv", "limit": 1000},
            headers=who,
        )
        assert got.status_code == 200
        rows = list(csv.reader(io.StringIO(got.content.decode("utf-8-sig"))))
        assert sum(any(v.startswith("高淳测试隐患") for v in row) for row in rows) == expected


def test_records_of_another_district_are_not_listed_nor_opened(
    client, bound, tokens, second_district
):
    rid = second_district["residents"][0]
    assert (
        client.get(f"/records/residents/{rid}", headers=auth(tokens, "planner")).status_code == 200
    )
    assert client.get(f"/records/residents/{rid}", headers=bound["planner"]).status_code == 404
    listed = client.get(
        "/records/residents", params={"limit": 10_000}, headers=bound["planner"]
    ).json()
    assert {f["properties"]["grid_code"][:6] for f in listed["features"]} == {HOME}
    assert "district_code" not in listed["features"][0]["properties"]


def test_records_of_another_district_are_neither_changed_nor_reviewed(
    client, engine, bound, tokens, second_district
):
    """A bound administrator edits, reads the history of, and reviews their district's records
    only: another district's record or review is as missing, and nothing of it changes."""
    rid = second_district["residents"][0]
    city, admin = auth(tokens, "admin"), bound["admin"]
    etag = client.get(f"/records/residents/{rid}", headers=city).headers["etag"]
    edited = client.patch(  # by the whole city's administrator: the record gets a history
        f"/records/residents/{rid}",
        json={"properties": {"phone": "13911112222"}},
        headers=city | {"If-Match": etag, "Content-Type": "application/json"},
    )
    assert edited.status_code == 200, edited.text
    etag = edited.headers["etag"]
    history = f"/records/residents/{rid}/history"
    assert client.get(history, headers=city).status_code == 200
    assert client.get(history, headers=bound["planner"]).status_code == 404
    changed = client.patch(
        f"/records/residents/{rid}",
        json={"properties": {"phone": "13900000000"}},
        headers=admin | {"If-Match": etag, "Content-Type": "application/json"},
    )
    deleted = client.delete(f"/records/residents/{rid}", headers=admin | {"If-Match": etag})
    assert (changed.status_code, deleted.status_code) == (404, 404)
    assert client.get(f"/records/residents/{rid}", headers=city).headers["etag"] == etag
    with engine.begin() as conn:
        grid = conn.execute(
            text("SELECT grid_code FROM residents WHERE id = :id"), {"id": rid}
        ).scalar_one()
        review = conn.execute(
            text("""INSERT INTO record_reviews (record_type, record_id, action, base_version,
                        payload, grid_code, submitted_by)
                    VALUES ('residents', :id, 'update', 1, '{"properties": {}}', :g, 'someone')
                    RETURNING id"""),
            {"id": rid, "g": grid},
        ).scalar_one()
    try:
        listed = client.get("/records/reviews", headers=admin).json()["reviews"]
        assert review not in {r["id"] for r in listed}
        assert review in {
            r["id"] for r in client.get("/records/reviews", headers=city).json()["reviews"]
        }
        decided = client.post(f"/records/reviews/{review}/reject", headers=admin)
        assert decided.status_code == 404, decided.text
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM record_reviews WHERE id = :id"), {"id": review})


# --- ?district= checked -------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/collections/hazards/items",
        "/assets",
        "/safety/hazards",
        "/safety/warnings",
        "/checkup/runs",
        "/tiles/hazards/14/13600/6700.mvt",
    ],
)
def test_district_is_checked_and_a_bound_user_may_not_leave_theirs(
    client, tokens, bound, second_district, path
):
    admin = auth(tokens, "admin")
    for bad in ("32011", "abcdef", "320199"):
        answer = client.get(path, params={"district": bad}, headers=admin)
        assert answer.status_code == 400, (path, bad)
        assert answer.headers["content-type"].startswith("application/problem+json")
        detail = answer.json()["detail"]
        assert "320117 溧水区" in detail and "320118 高淳区" in detail
    answer = client.get(path, params={"district": OTHER}, headers=bound["admin"])
    assert answer.status_code == 403
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert client.get(path, params={"district": HOME}, headers=bound["admin"]).status_code == 200


# --- tiles and the tile cache ---------------------------------------------------------------


def _tile():
    return TMS.tile(118.886, 31.324, 14)


def _ids(answer, layer: str) -> set[int]:
    assert answer.status_code == 200
    tile = mapbox_vector_tile.decode(answer.content) if answer.content else {}
    return {f["id"] for f in tile.get(layer, {}).get("features", [])}


def test_tiles_draw_no_row_of_another_district(client, tokens, bound, second_district):
    t = _tile()
    for layer in ("hazards", "buildings", "assets", "sensors"):
        url = f"/tiles/{layer}/{t.z}/{t.x}/{t.y}.mvt"
        assert _ids(client.get(url, headers=auth(tokens, "admin")), layer) == set(
            second_district[layer]
        )
        assert _ids(client.get(url, headers=bound["admin"]), layer) == set()
    url = f"/maps/safety/tiles/{t.z}/{t.x}/{t.y}.mvt"
    assert _ids(client.get(url, headers=auth(tokens, "safety")), "hazards") == set(
        second_district["hazards"]
    )
    assert _ids(client.get(url, headers=bound["safety"]), "hazards") == set()
    narrowed = client.get(url, params={"district": HOME}, headers=auth(tokens, "safety"))
    assert _ids(narrowed, "hazards") == set()
    # OGC API - Tiles serves the same tiles (WebMercatorQuad: row is y, column x)
    for layer in ("hazards", "buildings"):
        url = f"/collections/{layer}/tiles/WebMercatorQuad/{t.z}/{t.y}/{t.x}"
        assert _ids(client.get(url, headers=auth(tokens, "admin")), layer) == set(
            second_district[layer]
        )
        assert _ids(client.get(url, headers=bound["admin"]), layer) == set()


def test_the_tile_cache_never_hands_one_districts_tile_to_another(
    client, tokens, bound, second_district
):
    t = TMS.tile(118.891, 31.3265, 15)
    url = f"/tiles/hazards/{t.z}/{t.x}/{t.y}.mvt"
    city, home = auth(tokens, "safety"), bound["safety"]
    first = client.get(url, headers=city)
    assert _ids(first, "hazards") == set(second_district["hazards"])
    again = client.get(url, headers=city)
    assert again.headers["x-tile-cache"] == "hit"
    theirs = client.get(url, headers=home)  # kept apart: drawn for this audience
    assert theirs.headers["x-tile-cache"] == "miss" and _ids(theirs, "hazards") == set()
    assert client.get(url, headers=home).headers["x-tile-cache"] == "hit"
    assert _ids(client.get(url, headers=home), "hazards") == set()
    assert _ids(client.get(url, headers=city), "hazards") == set(second_district["hazards"])
    # a whole-city caller narrowing to 320117 shares the bound user's audience, not the city's
    narrowed = client.get(url, params={"district": HOME}, headers=city)
    assert _ids(narrowed, "hazards") == set()


def test_the_audience_key_names_the_district():
    from geo.policy.access import LayerAccess
    from geo.policy.plan import plan_read
    from geo.policy.roles import Viewer

    fields = ["id", "grid_code", "geom"]
    city = plan_read("hazards", LayerAccess(), fields, Viewer("a", "safety"))
    home = plan_read("hazards", LayerAccess(), fields, Viewer("b", "safety", district=HOME))
    other = plan_read("hazards", LayerAccess(), fields, Viewer("c", "safety", district=OTHER))
    assert len({city.audience, home.audience, other.audience}) == 3
    assert home.restricted and not city.restricted
    same = plan_read("hazards", LayerAccess(), fields, Viewer("d", "safety", district=HOME))
    assert same.audience == home.audience  # one district's staff share their tiles


# --- assets, hazards, warnings ----------------------------------------------------------------


def test_assets_of_another_district_are_missing(client, engine, tokens, bound, second_district):
    aid = second_district["assets"][0]
    city, home = auth(tokens, "investment"), bound["investment"]
    listed = client.get("/assets", params={"limit": 100, "district": OTHER}, headers=city).json()
    assert [f["id"] for f in listed["features"]] == [aid]
    mine = client.get("/assets", params={"limit": 100}, headers=home).json()
    assert aid not in {f["id"] for f in mine["features"]}
    assert (
        mine["numberMatched"]
        == client.get("/assets", params={"limit": 1, "district": HOME}, headers=city).json()[
            "numberMatched"
        ]
    )
    near = mine["features"][0]["id"]
    for path in (
        f"/assets/{aid}",
        f"/assets/{aid}/surroundings",
        f"/assets/compare?ids={near},{aid}",
        f"/assets/{aid}/history",
        f"/assets/{aid}/brochure",
        f"/assets/{aid}/photos",
    ):
        assert client.get(path, headers=city).status_code == 200, path
        assert client.get(path, headers=home).status_code == 404, path
    # nor changed, photographed or counted by a bound user
    before = client.get(f"/assets/{aid}/history", headers=city).json()
    moved = client.post(
        f"/assets/{aid}/status", json={"status": "negotiating", "note": "x"}, headers=home
    )
    photo = client.post(
        f"/assets/{aid}/photos", files={"file": ("a.png", _png(), "image/png")}, headers=home
    )
    viewed = client.post(f"/assets/view/{aid}", headers=home)
    assert (moved.status_code, photo.status_code, viewed.status_code) == (404, 404, 404)
    assert client.get(f"/assets/{aid}/history", headers=city).json() == before
    assert client.get(f"/assets/{aid}/photos", headers=city).json() == []
    # the promotion's numbers: a bound user's are their district's, a whole-city user's any one's
    numbers = client.get("/assets/statistics", headers=home).json()
    assert numbers["totals"]["assets"] == _home_count(engine, "assets")
    assert aid not in {a["id"] for a in numbers["most_viewed"]}
    other = client.get("/assets/statistics", params={"district": OTHER}, headers=city).json()
    assert other["totals"]["assets"] == 1 and [a["id"] for a in other["most_viewed"]] == [aid]
    everything = client.get("/assets/statistics", headers=city).json()["totals"]["assets"]
    assert everything == numbers["totals"]["assets"] + 1


def test_hazards_and_warnings_of_another_district_are_missing(
    client, tokens, bound, second_district
):
    city, home = auth(tokens, "safety"), bound["safety"]
    other = client.get("/safety/hazards", params={"district": OTHER}, headers=city).json()
    assert sorted(f["id"] for f in other["features"]) == sorted(second_district["hazards"])
    mine = client.get("/safety/hazards", params={"limit": 10_000}, headers=home).json()
    assert {f["properties"]["grid_code"][:6] for f in mine["features"]} == {HOME}
    hid = second_district["hazards"][0]
    assert client.get(f"/safety/hazards/{hid}", headers=city).status_code == 200
    assert client.get(f"/safety/hazards/{hid}", headers=home).status_code == 404
    sid = second_district["sensors"][0]
    warned = {
        w["sensor_id"] for w in client.get("/safety/warnings", headers=city).json()["warnings"]
    }
    assert sid in warned
    theirs = client.get("/safety/warnings", headers=home).json()["warnings"]
    assert theirs and {w["grid_code"][:6] for w in theirs} == {HOME}
    only = client.get("/safety/warnings", params={"district": OTHER}, headers=city).json()
    assert [w["sensor_id"] for w in only["warnings"]] == [sid]
    assert client.get(f"/safety/sensors/{sid}/warnings", headers=home).status_code == 404


# --- the check-up -------------------------------------------------------------------------------


def test_a_checkup_per_district_and_for_the_city(client, engine, tokens, bound, second_district):
    city, home = auth(tokens, "planner"), bound["planner"]
    assert client.post("/checkup/runs", json={"district": OTHER}, headers=home).status_code == 403
    theirs = client.post("/checkup/runs", json={"label": "d_other"}, headers=city)
    assert theirs.status_code == 201, theirs.text
    one = client.post("/checkup/runs", json={"district": OTHER, "label": "d_other"}, headers=city)
    assert one.status_code == 201, one.text
    run = one.json()["run"]
    assert one.json()["area"] == f"{OTHER}000000"
    with engine.connect() as conn:
        areas = set(
            conn.execute(
                text("""SELECT DISTINCT left(area_code, 6) FROM checkup_results
                        WHERE run_id = :r AND level IN ('district', 'street', 'community', 'grid')"""),
                {"r": run},
            ).scalars()
        )
        city_areas = set(
            conn.execute(
                text("""SELECT DISTINCT area_code FROM checkup_results
                        WHERE run_id = :r AND level = 'district'"""),
                {"r": theirs.json()["run"]},
            ).scalars()
        )
    assert areas == {OTHER}
    assert {
        f"{HOME}000000",
        f"{OTHER}000000",
    } <= city_areas  # one line per district, and the city's
    assert theirs.json()["area"] in city_areas
    mine = client.post("/checkup/runs", json={"label": "d_home"}, headers=home)
    assert mine.status_code == 201 and mine.json()["area"] == f"{HOME}000000"
    # another district's run, or the whole city's, is missing for the bound planner
    for other_run in (run, theirs.json()["run"]):
        assert client.get(f"/checkup/runs/{other_run}", headers=home).status_code == 404
    assert client.get(f"/checkup/runs/{mine.json()['run']}", headers=home).status_code == 200
    listed = {r["run"] for r in client.get("/checkup/runs", headers=home).json()}
    assert mine.json()["run"] in listed and run not in listed
    # the viewer's overlay of the whole city's run, narrowed by the 区 picker
    overlay = f"/checkup/runs/{theirs.json()['run']}/indicators/park_radius_coverage/areas.geojson"
    for code in (HOME, OTHER):
        features = client.get(
            overlay, params={"level": "grid", "district": code}, headers=city
        ).json()["features"]
        assert features and {f["properties"]["code"][:6] for f in features} == {code}
    assert client.get(overlay, params={"district": HOME}, headers=home).status_code == 404


def test_a_bound_administrator_reads_the_audit_of_their_districts_users_only(
    client, people, tokens, bound, second_district
):
    """Entries by a 320117 user are shown to the 320117 administrator; entries by a 320118 user
    and by a whole-city user are not (the whole-city administrator sees all three)."""
    from geo.policy import audit
    from geo.policy.roles import Viewer
    from geo.policy.users import create_user

    with people.engine.begin() as conn:
        create_user(conn, f"d_audit_{OTHER}", "planner", district=OTHER)
        for actor, role in ((f"d_planner_{HOME}", "planner"), (f"d_audit_{OTHER}", "planner"),
                            ("audit_city_planner", "planner")):  # fmt: skip
            audit.record(conn, Viewer(actor, role), "district_audit_probe", "probe", actor)
    query = {"action": "district_audit_probe", "limit": 100}
    mine = client.get("/audit", params=query, headers=bound["admin"]).json()["entries"]
    assert {e["actor"] for e in mine} == {f"d_planner_{HOME}"}
    everyone = client.get("/audit", params=query, headers=auth(tokens, "admin")).json()["entries"]
    assert {e["actor"] for e in everyone} == {
        f"d_planner_{HOME}",
        f"d_audit_{OTHER}",
        "audit_city_planner",
    }


def test_a_bound_administrator_resets_and_unlocks_their_districts_users_only(
    client, people, bound, second_district
):
    """A reset of a whole-city administrator's password by a district's administrator would hand
    them the city: it, and another district's users, are as missing (404); their own district's
    users they reset and unlock."""
    from geo.policy.users import create_user

    with people.engine.begin() as conn:
        for name, district in (("u_city", None), ("u_other", OTHER), ("u_home", HOME)):
            create_user(conn, name, "planner", district=district)
    admin = bound["admin"]
    new = {"password": "Lishui-2026-safe!"}
    for name, status in (("u_city", 404), ("u_other", 404), ("u_home", 200)):
        answer = client.post(f"/auth/users/{name}/password", json=new, headers=admin)
        assert answer.status_code == status, (name, answer.text)
        assert status == 200 or "no user" in answer.json()["detail"]  # ours: not a missing route
        answer = client.post(f"/auth/users/{name}/unlock", headers=admin)
        assert answer.status_code == status, (name, answer.text)
    with people.engine.connect() as conn:
        set_ = dict(
            conn.execute(
                text("""SELECT username, password_hash IS NOT NULL FROM users
                        WHERE username IN ('u_city', 'u_other', 'u_home')""")
            ).all()
        )
    assert set_ == {"u_city": False, "u_other": False, "u_home": True}


def test_patrols_and_freshness_of_another_district_are_not_shown(
    client, engine, tokens, bound, second_district
):
    with engine.begin() as conn:
        patrol = conn.execute(
            text("""INSERT INTO patrols (username, started_at, grid_codes, track)
                    VALUES ('gaochun_walker', now(), ARRAY[:g], ST_GeomFromEWKT(:t))
                    RETURNING id"""),
            {"g": G1, "t": "SRID=4490;LINESTRING(118.881 31.321, 118.885 31.325)"},
        ).scalar_one()
    try:
        path = f"/field/patrols/{patrol}"
        assert client.get(path, headers=auth(tokens, "admin")).status_code == 200
        for role in ("admin", "planner"):
            assert client.get(path, headers=bound[role]).status_code == 404, role
        for level in ("grid", "street"):
            mine = client.get("/field/freshness", params={"level": level}, headers=bound["planner"])
            everyone = client.get(
                "/field/freshness", params={"level": level}, headers=auth(tokens, "planner")
            )
            codes = {a["code"][:6] for a in mine.json()["areas"]}
            assert codes == {HOME}, level
            assert {a["code"][:6] for a in everyone.json()["areas"]} == {HOME, OTHER}, level
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM patrols WHERE id = :id"), {"id": patrol})


def test_a_district_administrator_may_not_replace_the_citys_layers(client, bound, tokens):
    """A departmental layer covers every district: a district-bound administrator neither declares
    nor ingests one (403, before the body is read); the whole city's administrator gets further
    (here a 400 for the empty body)."""
    declared = client.post(
        "/layers", content=b"", headers=bound["admin"] | {"Content-Type": "application/toml"}
    )
    ingested = client.post("/layers/landuse_nrb/ingest", headers=bound["admin"])
    assert (declared.status_code, ingested.status_code) == (403, 403)
    assert "whole city" in declared.json()["detail"]
    city = client.post(
        "/layers", content=b"", headers=auth(tokens, "admin") | {"Content-Type": "application/toml"}
    )
    assert city.status_code == 400, city.text
