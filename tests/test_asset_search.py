"""Finding and judging idle assets: every filter against the same rule computed in pandas and
shapely from the tables, search recall on Chinese queries, the surroundings against an
independent geopandas computation, the comparison, and the public kept to promoted assets without
internal fields on every path (list, item, search, surroundings, comparison, pages, tiles)."""

from __future__ import annotations

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import pytest
import shapely
from sqlalchemy import text

from tests.conftest import auth

METRIC = 4549
INTERNAL = ("reserve_price_wan", "contact_name", "contact_phone", "notes")
CATEGORY_ZH = {
    "administrative": "行政事业单位闲置资产",
    "state_operating": "国有经营性资产",
    "rural_collective": "农村集体闲置资产",
    "inefficient_land": "低效用地再开发",
}


@pytest.fixture(scope="module")
def register(engine) -> gpd.GeoDataFrame:
    with engine.connect() as conn:
        frame = gpd.read_postgis(
            "SELECT a.*, c.name AS community, s.name AS street, s.code AS street_code "
            "FROM assets a JOIN admin_areas c ON c.code = a.area_code "
            "JOIN admin_areas s ON s.code = c.parent_code ORDER BY a.id",
            conn,
            geom_col="geom",
        )
    return frame


def _ids(client, headers=None, **params) -> list[int]:
    found, offset = [], 0
    while True:
        r = client.get(
            "/assets", params={**params, "limit": 500, "offset": offset}, headers=headers
        )
        assert r.status_code == 200, r.text
        body = r.json()
        found += [f["id"] for f in body["features"]]
        if not any(link["rel"] == "next" for link in body["links"]):
            return found
        offset += 500


def test_each_filter_finds_exactly_what_the_rule_says(client, tokens, register):
    staff = auth(tokens, "investment")
    a = register

    def expect(mask) -> set[int]:
        return set(a.id[mask].astype(int))

    street = a.street_code.iloc[0]
    cases = [
        ({"category": "rural_collective"}, a.category == "rural_collective"),
        ({"category": ["administrative", "inefficient_land"]}, a.category.isin(["administrative", "inefficient_land"])),
        ({"status": "negotiating"}, a.status == "negotiating"),
        ({"street": street}, a.street_code == street),
        ({"street": a.street.iloc[0]}, a.street_code == street),
        ({"land_min": "5000"}, a.land_area_m2.astype(float) >= 5000),
        ({"land_min": "200", "land_max": "900"}, a.land_area_m2.astype(float).between(200, 900)),
        ({"floor_min": "1000"}, a.floor_area_m2.astype(float) >= 1000),
        ({"landuse": "0601"}, a.landuse_code == "0601"),
        ({"available_by": "2026-12-31"}, a.available_from.notna() & (pd.to_datetime(a.available_from) <= "2026-12-31")),
        ({"category": "state_operating", "landuse": "0508"}, (a.category == "state_operating") & (a.landuse_code == "0508")),
    ]  # fmt: skip
    for params, mask in cases:
        assert set(_ids(client, staff, **params)) == expect(mask), params
        assert expect(mask), f"{params} finds nothing in the demo city: a test that cannot fail"


def test_a_drawn_polygon_and_a_distance_find_what_shapely_finds(client, tokens, register):
    staff = auth(tokens, "investment")
    centre = register.geometry.union_all().centroid
    area = shapely.box(centre.x - 0.03, centre.y - 0.02, centre.x + 0.02, centre.y + 0.03)
    inside = set(register.id[register.intersects(area)].astype(int))
    assert 0 < len(inside) < len(register)
    assert set(_ids(client, staff, within=area.wkt)) == inside
    assert set(_ids(client, staff, within=shapely.to_geojson(area))) == inside
    # distance from a point, measured in the metric CRS here and on the ellipsoid there: assets
    # within a metre of the threshold are left out of the comparison
    metric = register.to_crs(METRIC)
    point = gpd.GeoSeries([centre], crs=4490).to_crs(METRIC).iloc[0]
    metres = metric.distance(point)
    near = set(register.id[metres <= 3000].astype(int))
    doubtful = set(register.id[(metres - 3000).abs() < 5].astype(int))
    found = _ids(client, staff, near=f"{centre.x},{centre.y}", distance="3000")
    assert set(found) - doubtful == near - doubtful and near
    # sorted by distance by default when measuring from a point
    order = metres.set_axis(register.id.astype(int)).loc[found].to_numpy()
    assert np.all(np.diff(order) > -2)


def test_sorting_and_paging_cover_the_register_once(client, tokens, register):
    staff = auth(tokens, "investment")
    ids = _ids(client, staff, sort="-land_area")
    assert sorted(ids) == sorted(register.id.astype(int))
    areas = register.set_index("id").land_area_m2.astype(float).loc[ids].to_numpy()
    assert np.all(np.diff(areas) <= 0)
    pages = []
    for offset in range(0, len(register), 50):
        r = client.get(
            "/assets", params={"sort": "code", "limit": 50, "offset": offset}, headers=staff
        )
        pages += [f["properties"]["code"] for f in r.json()["features"]]
    assert pages == sorted(register.code)


@pytest.mark.parametrize(
    "query",
    [
        "厂房",
        "闲置厂房",
        "标准厂房",
        "仓库",
        "村部",
        "卫生院",
        "粮站",
        "民宿",
        "养老服务",
        "城投 厂房",
    ],
)
def test_chinese_search_recalls_every_asset_holding_the_words(client, tokens, register, query):
    staff = auth(tokens, "investment")
    text_of = (
        register.name
        + " "
        + register.description.fillna("")
        + " "
        + register.suggested_use.fillna("")
    )
    terms = query.split()
    expected = set(register.id[text_of.map(lambda t: all(w in t for w in terms))].astype(int))
    found = set(_ids(client, staff, q=query))
    assert expected, f"no asset holds {query!r}: the test could not fail"
    assert expected <= found  # recall
    # and nothing else, unless found through its category, land use or place names
    for i in found - expected:
        row = register.set_index("id").loc[i]
        assert any(
            w in CATEGORY_ZH[row.category] or w in row.community or w in row.street for w in terms
        ) or (row.landuse_code and any(w in "工业用地物流仓储用地" for w in terms)), (
            query,
            row["name"],
        )


def test_chang_fang_finds_idle_and_standard_workshops(client, tokens, register):
    staff = auth(tokens, "investment")
    names = {
        f["properties"]["name"]
        for f in client.get("/assets", params={"q": "厂房", "limit": 500}, headers=staff).json()[
            "features"
        ]
    }
    assert any("闲置厂房" in n for n in names) and any("标准厂房" in n for n in names)
    ranked = client.get("/assets", params={"q": "标准厂房", "limit": 5}, headers=staff).json()[
        "features"
    ]
    assert "标准厂房" in ranked[0]["properties"]["name"]  # the closest text first


def test_the_public_sees_promoted_assets_only_without_internal_fields(
    client, tokens, register, engine
):
    public = _ids(client)
    promoted = set(register.id[register.status == "promoted"].astype(int))
    assert set(public) == promoted
    hidden = register[register.status != "promoted"].iloc[0]
    body = client.get("/assets", params={"limit": 500}).json()
    for f in body["features"]:
        assert not set(f["properties"]) & set(INTERNAL)
    for params in ({"status": hidden.status}, {"q": hidden["name"]}, {"sort": "-views"}):
        for i in _ids(client, **params):
            assert i in promoted, params
    assert client.get("/assets", params={"sort": "reserve_price_wan"}).status_code == 400
    assert client.get(f"/assets/{hidden.id}").status_code == 404
    assert client.get(f"/assets/{hidden.id}?f=html").status_code == 404
    assert client.get(f"/assets/{hidden.id}/surroundings").status_code == 404
    shown = next(iter(promoted))
    assert client.get(f"/assets/compare?ids={shown},{hidden.id}").status_code == 404
    # a promoted asset's page and item carry none of its internal values
    row = register.set_index("id").loc[shown]
    for path in (f"/assets/{shown}", f"/assets/{shown}?f=html", f"/assets/{shown}/surroundings",
                 "/assets?f=html&limit=500", f"/assets/compare?ids={shown},{sorted(promoted)[-1]}&f=html"):  # fmt: skip
        page = client.get(path).text
        for name in INTERNAL:
            value = row[name]
            if value is not None and str(value) not in ("", "nan"):
                assert str(value) not in page, (path, name)
    # staff see them
    staff = client.get(f"/assets/{hidden.id}", headers=auth(tokens, "investment")).json()
    assert staff["properties"]["reserve_price_wan"] is not None


def test_the_public_tiles_hold_promoted_assets_only(client, engine):
    import morecantile
    from mapbox_vector_tile import decode

    tms = morecantile.tms.get("WebMercatorQuad")
    with engine.connect() as conn:
        points = conn.execute(
            text(
                "SELECT ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) FROM assets "
                "WHERE status <> 'promoted' ORDER BY id LIMIT 5"
            )  # fmt: skip
        ).all()
    for lon, lat in points:
        t = tms.tile(lon, lat, 15)
        for path in (
            f"/tiles/assets/{t.z}/{t.x}/{t.y}.mvt",
            f"/maps/assets/tiles/{t.z}/{t.x}/{t.y}.mvt",
        ):
            tile = decode(client.get(path).content)
            for feature in tile.get("assets", {}).get("features", []):
                assert feature["properties"]["status"] == "promoted"
                assert not set(feature["properties"]) & set(INTERNAL)


@pytest.mark.parametrize(
    "params",
    [
        {"within": "POINT(119 31)"},
        {"within": "POLYGON((0 0, 1 1, 1 0, 0 1, 0 0))"},
        {"within": "not a shape"},
        {"near": "119"},
        {"distance": "500"},
        {"near": "119,31.6", "distance": "-5"},
        {"sort": "price"},
        {"sort": "relevance"},
        {"land_min": "900", "land_max": "100"},
        {"category": "factory"},
        {"landuse": "industrial"},
        {"available_by": "next week"},
        {"q": "x " * 20},
    ],
)
def test_bad_searches_are_told_what_to_fix(client, params):
    r = client.get("/assets", params=params)
    assert r.status_code == 400, (params, r.text)
    assert r.headers["content-type"].startswith("application/problem+json")


def _people_by_building(engine) -> gpd.GeoDataFrame:
    """Each building's residents, worked out again in pandas: its resident records where it has
    any, else its own 人数."""
    with engine.connect() as conn:
        b = gpd.read_postgis(
            "SELECT id, residents, ST_PointOnSurface(geom) AS geom FROM buildings",
            conn,
            geom_col="geom",
        )
        counted = (
            pd.read_sql(
                "SELECT h.building_id, count(*) AS n FROM residents r JOIN houses h ON h.id = r.house_id "
                "GROUP BY h.building_id",
                conn,
            )
            .set_index("building_id")
            .n
        )
    b["people"] = b.id.map(counted).fillna(b.residents.fillna(0)).astype(int)
    b.loc[b.id.map(counted).fillna(0) == 0, "people"] = b.residents.fillna(0).astype(int)
    return b[b.people > 0]


def test_surroundings_match_an_independent_geopandas_computation(client, tokens, engine, register):
    staff = auth(tokens, "investment")
    with engine.connect() as conn:
        read = lambda sql: gpd.read_postgis(sql, conn, geom_col="geom").to_crs(METRIC)  # noqa: E731
        facilities = read("SELECT kind, geom FROM facilities")
        organisations = read("SELECT kind, geom FROM organisations")
        hazards = read("SELECT level, status, geom FROM hazards")
        roads = read("SELECT name, class, geom FROM roads")
        landuse = read("SELECT class_code, geom FROM landuse_parcels")
    people = _people_by_building(engine)
    people_m = people.to_crs(METRIC)
    picks = [
        register[register.status == "promoted"].iloc[0],
        register[register.category == "inefficient_land"].iloc[0],
        register.iloc[len(register) // 2],
    ]
    for asset in picks:
        got = client.get(f"/assets/{asset.id}/surroundings", headers=staff).json()
        footprint = gpd.GeoSeries([asset.geom], crs=4490).to_crs(METRIC).iloc[0]
        # facilities and organisations of each kind within 1 km of the footprint
        for frame, key in ((facilities, "facilities"), (organisations, "organisations")):
            near = frame[frame.distance(footprint) <= 1000]
            assert got[key]["by_kind"] == near.kind.value_counts().to_dict(), (asset.code, key)
        # hazards within 500 m by level, open and closed
        near = hazards[hazards.distance(footprint) <= 500]
        assert got["hazards"]["total"] == len(near)
        assert got["hazards"]["open"] == int((near.status != "closed").sum())
        for level in got["hazards"]["by_level"]:
            at = near[near.level == level["level"]]
            assert level["closed"] == int((at.status == "closed").sum())
        # the nearest road of each class, and the nearest main road
        roads["d"] = roads.distance(footprint)
        for entry in got["roads"]["nearest"]:
            best = roads[roads["class"] == entry["class"]].d.min()
            assert entry["distance_m"] == pytest.approx(best, abs=0.15), (asset.code, entry)
        main = roads[roads["class"].isin(["expressway", "arterial"])].d.min()
        assert got["roads"]["main_road"]["distance_m"] == pytest.approx(main, abs=0.15)
        # land use inside the 500 m buffer
        ring = footprint.buffer(500, quad_segs=16)
        cut = landuse[landuse.intersects(ring)].copy()
        cut["area"] = cut.intersection(ring).area
        expected = cut.groupby("class_code").area.sum()
        served = {c["class_code"]: c["area_m2"] for c in got["landuse"]["classes"]}
        assert set(served) == set(expected.index)
        for code, area in expected.items():
            assert served[code] == pytest.approx(area, rel=1e-3, abs=1.0)
        assert got["landuse"]["area_m2"] == pytest.approx(ring.area, rel=1e-6)
        # residents: the H3 method worked out again, exactly; and within a rim's width of the
        # exact count of residents whose building lies within the radius
        cells = {}
        for lon, lat, n in zip(people.geometry.x, people.geometry.y, people.people, strict=True):
            c = h3.latlng_to_cell(lat, lon, 10)
            cells[c] = cells.get(c, 0) + int(n)
        centres = gpd.GeoSeries(
            gpd.points_from_xy(
                [h3.cell_to_latlng(c)[1] for c in cells], [h3.cell_to_latlng(c)[0] for c in cells]
            ),
            crs=4490,
        ).to_crs(METRIC)
        counts = np.array(list(cells.values()))
        centre_d = centres.distance(footprint).to_numpy()
        exact_d = people_m.distance(footprint).to_numpy()
        for ring_ in got["residents"]["rings"]:
            r = ring_["radius_m"]
            assert ring_["residents"] == int(counts[centre_d <= r].sum()), (asset.code, r)
            exact = int(people.people[exact_d <= r].sum())
            rim = int(people.people[np.abs(exact_d - r) <= 70].sum())
            assert abs(ring_["residents"] - exact) <= rim, (
                asset.code,
                r,
                ring_["residents"],
                exact,
            )
        assert "H3" in got["residents"]["method"]


def test_compare_puts_the_same_figures_side_by_side(client, tokens, register):
    staff = auth(tokens, "investment")
    ids = [int(i) for i in register.id.iloc[[0, 5, 9]]]
    body = client.get(f"/assets/compare?ids={','.join(map(str, ids))}", headers=staff).json()
    assert [a["id"] for a in body["assets"]] == ids
    for row in body["assets"]:
        around = client.get(f"/assets/{row['id']}/surroundings", headers=staff).json()
        assert row["residents_1km"] == around["residents"]["rings"][0]["residents"]
        assert row["hazards_500m"] == around["hazards"]["total"]
        assert row["main_road_m"] == around["roads"]["main_road"]["distance_m"]
    page = client.get(f"/assets/compare?ids={ids[0]},{ids[1]}&f=html", headers=staff)
    assert page.status_code == 200 and "资产对比" in page.text
    for bad in ("1", "1,2,3,4,5,6", "a,b", "1,1"):
        r = client.get(f"/assets/compare?ids={bad}", headers=staff)
        assert r.status_code == 400, bad


def test_the_asset_benchmark_runs_on_the_small_city(db_url, tmp_path):
    from tests.conftest import benchmark_module

    out = tmp_path / "assets.json"
    assert (
        benchmark_module("assets").main(["--url", db_url, "--rounds", "1", "--json", str(out)]) == 0
    )
    import json

    figures = json.loads(out.read_text())
    assert figures["surroundings"]["requests"] == figures["counts"]["assets"]
    assert figures["list_public"]["p99_ms"] > 0
