"""The demo city: exact counts, nesting areas, consistent codes, determinism, replace-on-reload."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from fixtures.democity import SCALES, build_city, load_demo_city
from fixtures.democity.boundary import load_boundary
from fixtures.democity.load import city_checksum
from geo import codes, migrate
from geo.database import engine as make_engine

SMALL = SCALES["small"]


def test_boundary_is_repaired_and_reported():
    district, report = load_boundary()
    assert district.is_valid and district.geom_type == "MultiPolygon"
    assert "Self-intersection" in report.reason
    assert report.parts_after == 3  # the district and its two exclaves
    assert 1060 < report.area_km2 < 1080  # README: 1,070 km² in EPSG:4549, official ~1,067
    assert report.slivers_dropped > 0 and report.sliver_area_m2 < 0.5e6


def test_same_seed_same_city_different_seed_different_city():
    a = build_city("small", 7, 4549, "k")
    b = build_city("small", 7, 4549, "k")
    c = build_city("small", 8, 4549, "k")
    for name in ("buildings", "residents", "grids"):
        left, right = a.tables[name], b.tables[name]
        assert left.drop(columns="geom", errors="ignore").equals(
            right.drop(columns="geom", errors="ignore")
        )
        if "geom" in left:
            assert all(x.equals_exact(y, 0) for x, y in zip(left.geom, right.geom, strict=True))
    assert not a.tables["residents"].id_number.equals(c.tables["residents"].id_number)


@pytest.fixture(scope="module")
def loaded(request):
    """A scratch database loaded twice with the same seed."""
    from geo.database import create_database, drop_database
    from tests.conftest import url_for

    url = url_for("onemap_test_loader")
    create_database(url, replace=True)
    migrate.upgrade(url)
    eng = make_engine(url)
    first = load_demo_city(eng, "small", seed=11)
    second = load_demo_city(eng, "small", seed=11)
    yield eng, first, second
    drop_database(url)


def test_loader_counts_are_the_scales(loaded):
    _, report, _ = loaded
    c = report.counts
    assert c["grids"] == SMALL.grids
    assert c["buildings"] == SMALL.buildings
    assert c["addresses"] == SMALL.addresses
    assert c["houses"] == SMALL.houses
    assert c["residents"] == SMALL.residents
    assert c["organisations"] == SMALL.organisations
    assert c["sensors"] == SMALL.sensors
    assert c["hazards"] == SMALL.hazards
    assert c["assets"] == 268
    assert c["admin_areas"] == 1 + 8 + SMALL.communities
    assert (
        c["sensor_readings"] > SMALL.sensors * 24 * 6
    )  # a week of hourly readings, silent ones less


def test_loading_twice_replaces_and_gives_the_same_checksum(loaded):
    eng, first, second = loaded
    assert second.counts == first.counts
    assert second.checksum == first.checksum
    with eng.connect() as conn:
        assert city_checksum(conn)[2] == first.checksum
        assert (
            conn.execute(text("SELECT count(DISTINCT id_number) FROM residents")).scalar()
            == SMALL.residents
        )


def test_streets_and_towns_partition_the_district(engine):
    # areas compared in the stored CRS, where the edges are straight: reprojecting bends them
    with engine.connect() as conn:
        names = {r[0] for r in conn.execute(text("SELECT name FROM admin_areas WHERE level = 2"))}
        assert names == {
            "永阳街道",
            "柘塘街道",
            "石湫街道",
            "洪蓝街道",
            "东屏街道",
            "白马镇",
            "晶桥镇",
            "和凤镇",
        }
        for level in (2, 3):
            district, union, total = conn.execute(
                text("""
                SELECT (SELECT ST_Area(geom) FROM admin_areas WHERE level = 1),
                       ST_Area(ST_Union(geom)), sum(ST_Area(geom))
                FROM admin_areas WHERE level = :level"""),
                {"level": level},
            ).one()
            assert union == pytest.approx(district, rel=1e-9)  # covers the district
            assert total == pytest.approx(district, rel=1e-9)  # without overlap
        grid_union, grid_sum, district = conn.execute(
            text("""
            SELECT ST_Area(ST_Union(geom)), sum(ST_Area(geom)),
                   (SELECT ST_Area(geom) FROM admin_areas WHERE level = 1) FROM grids""")
        ).one()
        assert grid_union == pytest.approx(district, rel=1e-9) and grid_sum == pytest.approx(
            district, rel=1e-9
        )


def test_codes_nest_and_check(engine):
    with engine.connect() as conn:
        misplaced = conn.execute(
            text("""
            SELECT count(*) FROM grids g JOIN admin_areas c ON c.code = g.community_code
            WHERE NOT ST_Within(ST_PointOnSurface(g.geom), c.geom)""")
        ).scalar()
        assert misplaced == 0
        outside = conn.execute(
            text("""
            SELECT count(*) FROM buildings b JOIN grids g ON g.code = b.grid_code
            WHERE NOT ST_DWithin(ST_Centroid(b.geom), g.geom, 1e-7)  -- 1 cm""")
        ).scalar()
        assert outside == 0
        ids = [
            r[0]
            for r in conn.execute(text("SELECT id_number FROM residents ORDER BY id LIMIT 500"))
        ]
        credit = [
            r[0]
            for r in conn.execute(
                text("SELECT credit_code FROM organisations ORDER BY id LIMIT 500")
            )
        ]
    assert all(codes.valid_id_number(i) for i in ids)
    assert all(codes.valid_credit_code(c) for c in credit)


def test_asset_statuses_follow_lishui(engine):
    with engine.connect() as conn:
        rows = dict(conn.execute(text("SELECT status, count(*) FROM assets GROUP BY status")).all())
        cats = dict(
            conn.execute(text("SELECT category, count(*) FROM assets GROUP BY category")).all()
        )
        views = conn.execute(text("SELECT sum(page_views) FROM assets")).scalar()
    assert rows["revitalised"] == 123
    assert rows["promoted"] + rows["negotiating"] == 81
    assert sum(rows.values()) == 268 and len(cats) == 4
    assert views > 100_000


def test_the_city_profile_agrees_with_an_independent_geopandas_count(engine):
    """``benchmarks/democity_profile.py`` (plain SQL) against geopandas on the same tables: the
    share of dwellings within 300 m of a kindergarten, and the tall-building counts."""
    import sys
    from pathlib import Path

    import geopandas as gpd

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import democity_profile

    with engine.connect() as conn:
        figures = democity_profile.profile(conn)
        homes = gpd.read_postgis(
            "SELECT b.id, b.use, b.height_m, b.dwellings, ST_PointOnSurface(b.geom) AS geom, "
            "(SELECT count(*) FROM houses h WHERE h.building_id = b.id) AS houses "
            "FROM buildings b",
            conn,
        ).to_crs(4549)
        kindergartens = gpd.read_postgis(
            "SELECT geom FROM facilities WHERE kind = 'kindergarten'", conn
        ).to_crs(4549)
    homes["n"] = homes.houses.where(homes.houses > 0, homes.dwellings.fillna(0))
    living = homes[(homes.use == "residential") & (homes.n > 0)]
    nearest = gpd.sjoin_nearest(living, kindergartens, distance_col="metres")
    nearest = nearest[~nearest.index.duplicated()]  # equidistant kindergartens: one row each
    share = living.n[nearest.metres <= 300].sum() / living.n.sum()
    assert figures["kindergarten_300m"] == pytest.approx(share, abs=1e-3)
    assert 0 < figures["kindergarten_300m"] < 1
    assert figures["buildings_over_100m"] == int((homes.height_m > 100).sum())
    assert figures["residential_over_80m"] == int(
        ((homes.use == "residential") & (homes.height_m > 80)).sum()
    )
    assert figures["park_m2_per_resident"] > 0 and figures["dwellings"] == int(living.n.sum())
