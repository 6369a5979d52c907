"""Several districts in one service (issue 16): Lishui (320117) and Gaochun (320118) loaded side by
side at small scale by one load: unique keys hold, each district's records lie in its own real
boundary and carry its own code, Gaochun's figures lie in the ranges Lishui's do, the Lishui part
is what a Lishui-only load gives, and the app lists and tiles Gaochun."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import mapbox_vector_tile
import morecantile
import pytest
import shapely
from sqlalchemy import text
from sqlalchemy.engine import Engine

from fixtures.democity import SCALES, LoadReport, load_demo_city
from geo import codes, district, migrate
from tests.conftest import TEST_DB, benchmark_module, settings_for, url_for

LISHUI, GAOCHUN = "320117", "320118"
TWO = (LISHUI, GAOCHUN)
SMALL = SCALES["small"]
BOUNDARIES = Path(__file__).resolve().parents[1] / "fixtures" / "data" / "nanjing_districts.geojson"
#: the tables with no code of their own: a district's rows are its id range (load order)
BY_ID = ("landuse_parcels", "roads", "water", "parks")
IN_GRID = "left(grid_code, 6) = :d"
#: which rows of a base table are one district's
ROWS_OF = {
    "admin_areas": "left(code, 6) = :d",
    "grids": "left(code, 6) = :d",
    "sensor_readings": f"sensor_id IN (SELECT id FROM sensors WHERE {IN_GRID})",
    "asset_status_history": f"asset_id IN (SELECT id FROM assets WHERE {IN_GRID})",
    **{name: "id BETWEEN :lo AND :hi" for name in BY_ID},
}


def rows_of(name: str) -> str:
    return ROWS_OF.get(name, IN_GRID)


def id_ranges(report: LoadReport) -> dict[str, dict[str, tuple[int, int]]]:
    """Per district, per table, the ids its rows took: each district after the ones before."""
    out: dict[str, dict[str, tuple[int, int]]] = {}
    start: dict[str, int] = {}
    for code in report.districts:
        out[code] = {}
        for name, n in report.district_counts[code].items():
            lo = start.get(name, 0) + 1
            out[code][name] = (lo, lo + n - 1)
            start[name] = lo + n - 1
    return out


def district_checksums(conn, code: str, ranges: dict[str, tuple[int, int]]) -> dict[str, str]:
    """geo.district's content checksum of every base table, over one district's rows only."""
    sums = {}
    for name in district.TABLES:
        cols = district.columns(name)
        order = "id" if "id" in cols else ", ".join(f'"{c}"' for c in cols[:2])
        row = ", ".join(f'"{c}"' for c in cols)
        lo, hi = ranges[name]
        sums[name] = conn.execute(
            text(
                f"SELECT count(*) || ':' || coalesce(md5(string_agg(md5(ROW({row})::text), '' "
                f"ORDER BY {order})), '') FROM {name} WHERE {rows_of(name)}"
            ),
            {"d": code, "lo": lo, "hi": hi},
        ).scalar_one()
    return sums


ROSTER_SQL = """SELECT level, unit_code, post, name, phone FROM duty_contacts
                WHERE CASE WHEN level = 5 THEN substr(unit_code, 3, 6) ELSE left(unit_code, 6) END
                      = :d ORDER BY level, unit_code"""


@dataclass
class Two:
    url: str
    engine: Engine
    report: LoadReport
    alone: dict[str, str]  # Lishui's checksums when it is loaded alone
    alone_roster: list
    ranges: dict[str, dict[str, tuple[int, int]]]


@pytest.fixture(scope="module")
def two() -> Two:
    """A database of its own: Lishui loaded alone first (the reference), then both districts by
    one load over it, as ``onemap demo load --districts 320117,320118`` does."""
    from api.bootstrap import prepare_demo
    from geo.database import create_database, drop_database
    from geo.database import engine as make_engine
    from geo.settings import Settings

    database = f"{TEST_DB}_two_districts"
    url = url_for(database)
    create_database(url, replace=True)
    eng = make_engine(url)
    try:
        migrate.upgrade(url)
        first = load_demo_city(eng, "small")
        with eng.connect() as conn:
            alone = district_checksums(conn, LISHUI, id_ranges(first)[LISHUI])
            alone_roster = conn.execute(text(ROSTER_SQL), {"d": LISHUI}).all()
        report = prepare_demo(url, scale="small", districts=TWO)
        yield Two(url, eng, report, alone, alone_roster, id_ranges(report))
    finally:
        eng.dispose()
        drop_database(url)
        shutil.rmtree(Settings.from_env().service.rasters / database, ignore_errors=True)


def test_one_load_fills_both_districts_with_ids_continuing(two):
    report = two.report
    assert report.districts == list(TWO)
    for code in TWO:
        c = report.district_counts[code]
        assert (c["grids"], c["buildings"], c["addresses"], c["residents"]) == (
            SMALL.grids,
            SMALL.buildings,
            SMALL.addresses,
            SMALL.residents,
        )
        assert (c["houses"], c["organisations"], c["sensors"], c["assets"]) == (
            SMALL.houses,
            SMALL.organisations,
            SMALL.sensors,
            268,
        )
    assert report.counts == {
        name: sum(report.district_counts[code][name] for code in TWO) for name in district.TABLES
    }
    with two.engine.connect() as conn:
        for name in district.TABLES:
            for code in TWO:
                lo, hi = two.ranges[code][name]
                n = conn.execute(
                    text(f"SELECT count(*) FROM {name} WHERE {rows_of(name)}"),
                    {"d": code, "lo": lo, "hi": hi},
                ).scalar_one()
                assert n == report.district_counts[code][name], (name, code)
            cols = district.columns(name)
            if "id" in cols:  # Gaochun's ids continue after Lishui's
                first_gaochun, last_lishui = conn.execute(
                    text(
                        f"SELECT min(id) FILTER (WHERE {rows_of(name)}), "
                        f"max(id) FILTER (WHERE NOT ({rows_of(name)})) FROM {name}"
                    ),
                    {
                        "d": GAOCHUN,
                        **dict(zip(("lo", "hi"), two.ranges[GAOCHUN][name], strict=True)),
                    },
                ).one()
                assert first_gaochun == last_lishui + 1, name
        districts = conn.execute(
            text("SELECT code, name, kind, parent_code FROM admin_areas WHERE level = 1 ORDER BY 1")
        ).all()
        streets = conn.execute(
            text("SELECT left(code, 6), count(*) FROM admin_areas WHERE level = 2 GROUP BY 1")
        ).all()
    # each district its own division row; no city row above them (the divisions table's levels
    # are district, street, community: a city would need a level 0 and a kind 'city')
    assert [tuple(r) for r in districts] == [
        ("320117000000", "溧水区", "district", None),
        ("320118000000", "高淳区", "district", None),
    ]
    # Lishui's eight; Gaochun's 792 km² at Lishui's 134 km² a street or town: six
    assert dict(streets) == {LISHUI: 8, GAOCHUN: 6}


def test_every_unique_key_holds(two):
    """Every unique index of the base tables (and the roster), counted: no value twice."""
    with two.engine.connect() as conn:
        keys = conn.execute(
            text("""
            SELECT t.relname, array_agg(a.attname ORDER BY k.n)
            FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
            CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
            JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
            WHERE i.indisunique AND i.indpred IS NULL AND t.relname = ANY(:tables)
            GROUP BY t.relname, i.indexrelid""").bindparams(
                tables=[*district.TABLES, "duty_contacts"]
            )
        ).all()
        assert {"code", "id_number", "credit_code"} <= {c for _, cols in keys for c in cols}
        for table, cols in keys:
            listed = ", ".join(f'"{c}"' for c in cols)
            rows, distinct = conn.execute(
                text(f"SELECT count(*), count(DISTINCT ({listed}, true)) FROM {table}")
            ).one()
            assert rows == distinct, (table, cols)
        # identity numbers of people registered elsewhere (the floating) drawn in both districts
        # from the same regions: none given twice
        shared = conn.execute(
            text("""SELECT count(*) FROM residents a JOIN residents b
                    ON a.id_number = b.id_number AND a.id < b.id""")
        ).scalar_one()
    assert shared == 0


def test_codes_carry_their_district(two):
    """Every code of a Gaochun record begins with 320118 (a Lishui one with 320117): divisions,
    grids, buildings, addresses, identity numbers of the registered, credit codes, hazards,
    sensors and assets."""
    checks = {
        "admin_areas": "code LIKE :d || '%' AND (parent_code IS NULL OR parent_code LIKE :d || '%')",
        "grids": "community_code LIKE :d || '%'",
        "buildings": "code LIKE :d || '%'",
        "addresses": "code LIKE :d || '%' AND area_code LIKE :d || '%'"
        " AND full_name LIKE '南京市' || :name || '%'",
        "residents": "residence_type <> 'registered' OR id_number LIKE :d || '%'",
        "organisations": "substr(credit_code, 3, 6) = :d",
        "hazards": "code LIKE 'YH' || :d || '%'",
        "sensors": "code LIKE 'GZ' || :d || '%'",
        "assets": "code LIKE 'ZC' || :d || '%' AND area_code LIKE :d || '%'"
        " AND address_code LIKE :d || '%' AND coalesce(building_code, :d) LIKE :d || '%'",
    }
    names = {LISHUI: "溧水区", GAOCHUN: "高淳区"}
    with two.engine.connect() as conn:
        for code in TWO:
            for table, rule in checks.items():
                total, wrong = conn.execute(
                    text(
                        f"SELECT count(*), count(*) FILTER (WHERE NOT ({rule})) FROM {table} "
                        f"WHERE {rows_of(table)}"
                    ),
                    {"d": code, "name": names[code]},
                ).one()
                assert total > 0 and wrong == 0, (code, table, wrong)
        sample = conn.execute(
            text(f"""SELECT r.id_number, o.credit_code FROM residents r
                     JOIN organisations o ON o.grid_code = r.grid_code
                     WHERE left(r.grid_code, 6) = '{GAOCHUN}' LIMIT 300""")
        ).all()
        registered = conn.execute(
            text(f"""SELECT count(*) FROM residents WHERE residence_type = 'registered'
                     AND left(id_number, 6) = '{GAOCHUN}'""")
        ).scalar_one()
    assert sample and all(
        codes.valid_id_number(i) and codes.valid_credit_code(c) for i, c in sample
    )
    assert registered > 0.7 * SMALL.residents  # three in four are registered where they live


def test_each_districts_records_lie_inside_its_own_real_boundary(two):
    """The boundary file read with geopandas (made valid there, not by the generator): every
    record of a district, point or shape (by its point on surface), within 0.1 m of that
    district's real boundary, and the stored district's area within 0.5 % of the file's. A unit's
    door address (and the houses and residents that hang from it) stands on its building's front
    and may lie a few metres past the edge (one of Lishui's, as the demo city has always had it,
    lies 1 m out): 10 m for those."""
    boundaries = gpd.read_file(BOUNDARIES).set_index("id")
    tables = [
        name for name in district.TABLES if name not in ("sensor_readings", "asset_status_history")
    ]
    with two.engine.connect() as conn:
        for code in TWO:
            shape = shapely.make_valid(boundaries.loc[code].geometry)
            stored, filed = conn.execute(
                text("""SELECT ST_Area(ST_Transform(geom, 4549)),
                               ST_Area(ST_Transform(ST_GeomFromWKB(:b, 4490), 4549))
                        FROM admin_areas WHERE code = :c"""),
                {"b": shapely.to_wkb(shape), "c": f"{code}000000"},
            ).one()
            assert stored == pytest.approx(filed, rel=0.005)
            for name in tables:
                lo, hi = two.ranges[code][name]
                metres = {
                    "addresses": "CASE WHEN level = 'unit' THEN 10 ELSE 0.1 END",
                    "houses": "CASE WHEN unit_number IS NULL THEN 0.1 ELSE 10 END",
                    "residents": "10",
                }.get(name, "0.1")
                total, outside = conn.execute(
                    text(f"""SELECT count(*), count(*) FILTER (WHERE NOT ST_DWithin(
                                 ST_Transform(ST_PointOnSurface(geom), 4549),
                                 ST_Transform(ST_GeomFromWKB(:b, 4490), 4549),
                                 {metres}))
                             FROM {name} WHERE {rows_of(name)}"""),
                    {"b": shapely.to_wkb(shape), "d": code, "lo": lo, "hi": hi},
                ).one()
                assert total > 0 and outside == 0, (code, name, outside)


def test_the_lishui_part_is_what_a_lishui_only_load_gives(two):
    with two.engine.connect() as conn:
        together = district_checksums(conn, LISHUI, two.ranges[LISHUI])
        roster = conn.execute(text(ROSTER_SQL), {"d": LISHUI}).all()
    assert together == two.alone
    assert roster == two.alone_roster  # its duty contacts too, name for name


def test_gaochuns_figures_lie_in_the_ranges_lishuis_do(two):
    """The planning profile (benchmarks/democity_profile.py, plain SQL) of each district alone,
    over its own rows (temporary tables shadow the base tables for the transaction): both inside
    the README's ranges, and Gaochun's per-capita figures near Lishui's."""
    profile = benchmark_module("democity_profile")
    figures = {}
    with two.engine.connect() as conn:
        for code in TWO:
            with conn.begin() as tx:
                for name in (
                    "admin_areas",
                    "buildings",
                    "houses",
                    "residents",
                    "facilities",
                    "hazards",
                    "parks",
                ):
                    lo, hi = two.ranges[code][name]
                    conn.execute(
                        text(
                            f"CREATE TEMP TABLE {name} ON COMMIT DROP AS "
                            f"SELECT * FROM public.{name} WHERE {rows_of(name)}"
                        ),
                        {"d": code, "lo": lo, "hi": hi},
                    )
                figures[code] = profile.profile(conn)
                tx.rollback()
    for code in TWO:
        assert figures[code]["residents"] == SMALL.residents
        assert profile.out_of_range(figures[code]) == [], code
        assert set(figures[code]["by_street"]["park_radius_coverage"]) and all(
            name.endswith(("街道", "镇"))
            for name in figures[code]["by_street"]["park_radius_coverage"]
        )
    for key in (
        "park_m2_per_resident",
        "shelter_m2_per_resident",
        "kindergarten_300m",
        "clinic_1000m",
    ):
        assert 0.6 < figures[GAOCHUN][key] / figures[LISHUI][key] < 1.6, key


def test_duty_contacts_and_warnings_for_each_district(two):
    with two.engine.connect() as conn:
        for code in TWO:
            units = conn.execute(
                text("""SELECT (SELECT count(*) FROM admin_areas WHERE left(code, 6) = :d)
                             + (SELECT count(*) FROM grids WHERE left(code, 6) = :d)
                             + (SELECT count(*) FROM organisations
                                WHERE is_key_unit AND left(grid_code, 6) = :d)"""),
                {"d": code},
            ).scalar_one()
            roster = conn.execute(text(ROSTER_SQL), {"d": code}).all()
            assert len(roster) == units
            assert [r.unit_code for r in roster if r.level == 1] == [f"{code}000000"]
            # a warning for every sensor that read over its threshold, in either district
            over, warned = conn.execute(
                text("""SELECT
                    (SELECT count(DISTINCT r.sensor_id) FROM sensor_readings r
                     JOIN sensors s ON s.id = r.sensor_id
                     WHERE r.value > s.threshold AND left(s.grid_code, 6) = :d),
                    (SELECT count(DISTINCT w.sensor_id) FROM sensor_warnings w
                     JOIN sensors s ON s.id = w.sensor_id WHERE left(s.grid_code, 6) = :d)"""),
                {"d": code},
            ).one()
            assert over == warned
        assert conn.execute(text("SELECT count(*) FROM sensor_warnings")).scalar_one() > 0


def test_the_checkup_runs_for_each_district(two):
    """A run for each district's code covers that district alone, at every level, and gives it the
    figure a run over the whole city gives it."""
    from geo.checkup.engine import run_checkup

    def district_values(run_id):
        with two.engine.connect() as conn:
            return dict(
                conn.execute(
                    text("""SELECT area_code, value FROM checkup_results
                            WHERE run_id = :r AND level = 'district'"""),
                    {"r": run_id},
                ).all()
            )

    whole = district_values(run_checkup(two.engine, 4549, only=["park_radius_coverage"]).id)
    assert set(whole) >= {f"{code}000000" for code in TWO}
    for code in (GAOCHUN, LISHUI):
        run = run_checkup(two.engine, 4549, area=f"{code}000000", only=["park_radius_coverage"])
        with two.engine.connect() as conn:
            rows = conn.execute(
                text("""SELECT level, area_code, value FROM checkup_results
                        WHERE run_id = :r AND value IS NOT NULL"""),
                {"r": run.id},
            ).all()
        assert rows and all(
            r.area_code.startswith(code) for r in rows if r.level != "h3_9" and r.level != "h3_8"
        )
        assert {r.level for r in rows} >= {"district", "street", "community", "grid"}
        assert district_values(run.id) == {f"{code}000000": whole[f"{code}000000"]}


def test_the_app_lists_and_tiles_a_point_in_gaochun(two):
    from fastapi.testclient import TestClient

    from api.app import create_app

    with two.engine.connect() as conn:
        lon, lat = conn.execute(
            text(f"""SELECT ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom))
                     FROM buildings WHERE left(grid_code, 6) = '{GAOCHUN}'
                     ORDER BY residents DESC, id LIMIT 1""")
        ).one()
        box = (lon - 0.003, lat - 0.003, lon + 0.003, lat + 0.003)
        in_box = set(
            conn.execute(
                text(
                    "SELECT id FROM buildings WHERE ST_Intersects(geom, "
                    "ST_MakeEnvelope(:w, :s, :e, :n, 4490))"
                ),
                dict(zip(("w", "s", "e", "n"), box, strict=True)),
            ).scalars()
        )
        tile = morecantile.tms.get("WebMercatorQuad").tile(lon, lat, 15)
        in_tile = set(
            conn.execute(
                text("""SELECT id FROM buildings WHERE ST_Intersects(ST_Transform(geom, 3857),
                        ST_TileEnvelope(:z, :x, :y, margin => 64.0 / 4096))"""),
                {"z": tile.z, "x": tile.x, "y": tile.y},
            ).scalars()
        )
        first_gaochun = two.ranges[GAOCHUN]["buildings"][0]
    assert in_box and min(in_box) >= first_gaochun
    with TestClient(create_app(settings_for(two.url))) as client:
        items = client.get(
            "/collections/buildings/items",
            params={"bbox": ",".join(map(str, box)), "limit": 1000},
        )
        assert items.status_code == 200, items.text
        features = items.json()["features"]
        assert {f["id"] for f in features} == in_box
        assert all(f["properties"]["code"].startswith(GAOCHUN) for f in features)
        answer = client.get(f"/tiles/buildings/{tile.z}/{tile.x}/{tile.y}.mvt")
        assert answer.status_code == 200
        decoded = mapbox_vector_tile.decode(answer.content)
        assert {f["id"] for f in decoded["buildings"]["features"]} == in_tile


def test_the_command_refuses_a_code_that_is_not_a_district_of_nanjing():
    from typer.testing import CliRunner

    from api.cli import app

    result = CliRunner().invoke(app, ["demo", "load", "--districts", "320117,320199"])
    said = " ".join(result.output.split())  # however the console wrapped it
    assert result.exit_code == 1
    assert "320199 is not a district of Nanjing" in said
    assert "320118 高淳区" in said  # the codes there are, listed


def test_every_other_district_of_nanjing_gets_a_place_inside_its_boundary():
    """The derived geography of each of the ten other districts: towns inside the boundary and
    apart, coded under the district, shares adding up, the seat nearest the label point; and the
    same place every time."""
    from fixtures.democity.boundary import nanjing_features
    from fixtures.democity.nanjing import demo_district

    features = nanjing_features()
    assert len(features) == 11
    for code, feature in features.items():
        if code == LISHUI:
            continue
        place = demo_district(code).place
        boundary = shapely.make_valid(shapely.geometry.shape(feature["geometry"]))
        towns = place.towns
        assert place.name == feature["properties"]["name"] and 3 <= len(towns) <= 8
        assert all(boundary.contains(shapely.Point(t.lon, t.lat)) for t in towns), code
        assert len({(t.lon, t.lat) for t in towns}) == len(towns)
        assert all(
            t.code.startswith(code) and t.code.endswith("000") and t.name.endswith(("街道", "镇"))
            for t in towns
        )
        assert len({t.code for t in towns}) == len(towns)
        assert sum(t.weight for t in towns) == pytest.approx(1, abs=1e-3)
        label = shapely.Point(feature["properties"]["cp"])
        nearest = min(towns, key=lambda t: label.distance(shapely.Point(t.lon, t.lat)))
        assert nearest == towns[0]  # the seat
        assert demo_district(code).place == place


def test_the_rasters_cover_both_districts(two):
    """One set of rasters (dem, landcover, hillshade) over the union of the districts: the land
    cover has data in each district's own extent."""
    import rasterio
    from rasterio.windows import from_bounds

    from geo.settings import Settings

    folder = Settings.from_env().service.rasters / f"{TEST_DB}_two_districts"
    with two.engine.connect() as conn:
        extents = conn.execute(
            text("""SELECT code, ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b) FROM (
                        SELECT code, ST_Transform(geom, 4549)::box2d AS b
                        FROM admin_areas WHERE level = 1) d ORDER BY code""")
        ).all()
    assert [e.code for e in extents] == [f"{code}000000" for code in TWO]
    with rasterio.open(folder / "landcover.tif") as cover:
        for code, *bounds in extents:
            block = cover.read(1, window=from_bounds(*bounds, transform=cover.transform))
            assert (block > 0).mean() > 0.3, code  # the district's land, classed
