"""Every check-up indicator on a tiny district whose answers were worked out by hand (the layout
is in tests/checkup_tinycity.py), imported through its manifest with `onemap city import`, as a
real district would be. The run is as of 2026-06-30."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import date

import pytest
from sqlalchemy import text

from tests import checkup_tinycity as tiny
from tests.conftest import url_for

W, E = tiny.W_STREET, tiny.E_STREET
DISTRICT = "320199000000"


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    from geo import migrate
    from geo.checkup.engine import run_checkup
    from geo.database import create_database, drop_database, engine

    url = url_for(f"onemap_test_tiny_{uuid.uuid4().hex[:6]}")
    create_database(url, replace=True)
    migrate.upgrade(url)
    manifest = tiny.write(tmp_path_factory.mktemp("tiny"))
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", "city", "import", str(manifest)],
        env=os.environ | {"DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    run = run_checkup(engine(url), 4549, as_of=date(2026, 6, 30))
    with engine(url).connect() as conn:
        rows = conn.execute(
            text("""SELECT indicator, level, area_code, value, numerator, denominator, passed
                    FROM checkup_results WHERE run_id = :r"""),
            {"r": run.id},
        ).all()
    engine(url).dispose()
    yield {(r.indicator, r.area_code): r for r in rows if r.level != "h3_8" and r.level != "h3_9"}
    drop_database(url)


def value(results, indicator, area=DISTRICT):
    return results[(indicator, area)].value


def test_service_radius_coverage(results):
    # dwellings: B1 10, B2 20, B3 30 = 60 (the buildings' own counts: no house records)
    # kindergarten (250, 750): B1 at 250 m (≤ 300); B2 at √(500² + 250²) = 559 m; B3 1,000+ m
    assert value(results, "kindergarten_coverage") == pytest.approx(100 * 10 / 60)
    assert value(results, "kindergarten_coverage", W) == pytest.approx(100 * 10 / 30)
    assert value(results, "kindergarten_coverage", E) == 0
    # primary school (1000, 500): B2 and B3 at 250 m (≤ 500); B1 at 750 m → 50 of 60
    assert value(results, "primary_school_coverage") == pytest.approx(100 * 50 / 60)
    # clinic (1250, 800): B3 300 m, B2 √(500² + 300²) = 583 m (≤ 1,000), B1 1,044 m → 50 of 60
    assert value(results, "clinic_15min_coverage") == pytest.approx(100 * 50 / 60)
    # no middle school, no elderly care: nobody covered
    assert value(results, "middle_school_coverage") == 0
    assert value(results, "elderly_5min_coverage") == 0


def test_park_coverage_and_park_area_per_resident(results):
    # park A (5,000 m², 500 m radius): B1's point (250, 500) is 350 m from its edge y = 150;
    # B2's nearest corner (300, 150) is √(450² + 350²) = 570 m away. Park B (3,000 m², 300 m):
    # B3 (1250, 500) is √(150² + 20²) = 151 m from its corner (1400, 480). → 10 + 30 of 60
    assert value(results, "park_radius_coverage") == pytest.approx(100 * 40 / 60)
    assert results[("park_radius_coverage", DISTRICT)].passed is False  # target 90
    assert results[("park_radius_coverage", E)].passed is True  # 30 of 30
    # 8,000 m² of park ÷ 140 residents; west 5,000 ÷ 80, east 3,000 ÷ 60
    assert value(results, "park_area_per_capita") == pytest.approx(8000 / 140, rel=1e-3)
    assert value(results, "park_area_per_capita", W) == pytest.approx(5000 / 80, rel=1e-3)
    assert value(results, "park_area_per_capita", E) == pytest.approx(3000 / 60, rel=1e-3)


def test_shelter_area_per_resident(results):
    # 280 m² of shelter in the east ÷ 140 residents = 2.0 (≥ 1.5: passes), west 0 ÷ 80 (fails)
    assert value(results, "shelter_area_per_capita") == pytest.approx(2.0)
    assert results[("shelter_area_per_capita", DISTRICT)].passed is True
    assert results[("shelter_area_per_capita", W)].passed is False
    assert value(results, "shelter_area_per_capita", E) == pytest.approx(280 / 60)


def test_fire_rescue_by_road_and_by_radius(results):
    # the station stands where the two branch roads (25 km/h = 6.94 m/s) cross, at (1250, 100);
    # budget 5 min − 60 s turnout = 240 s; access at 15 km/h (4.17 m/s) to the nearest node.
    # B3: node (1250, 100) 400 m away → 96 s. B2: same node, √(500² + 400²) = 640 m → 154 s.
    # B1: nearest node (0, 100), 472 m → 113 s, plus 1,250 m of road → 180 s: 293 s > 240.
    assert value(results, "fire_5min_coverage") == pytest.approx(100 * 50 / 60)
    assert results[("fire_5min_coverage", DISTRICT)].passed is False
    # radius 1,500 m: B1 √(1000² + 400²) = 1,077 m, B2 640 m, B3 400 m → all 60
    assert value(results, "fire_5min_radius_coverage") == pytest.approx(100.0)


def test_land_and_roads(results):
    # construction land: the 0701 parcel, 1,000 × 700 m = 0.7 km² of the district's 2 km²
    assert value(results, "development_intensity") == pytest.approx(35.0, abs=0.01)
    assert value(results, "development_intensity", W) == pytest.approx(70.0, abs=0.01)
    # road inside it: R1 from x 0 to 1,000 (y = 100) = 1 km ÷ 0.7 km² = 1.43 km/km² (< 8)
    assert value(results, "road_density") == pytest.approx(1 / 0.7, rel=1e-3)
    assert results[("road_density", DISTRICT)].passed is False
    assert value(results, "road_density", E) is None  # no construction land: nothing to divide
    # 140 residents in all: no H3 cell (about 0.1 km²) holds more than 15,000 per km²
    assert value(results, "dense_land_area") == 0


def test_heights_and_estates(results):
    # B2: residential, 85 m, built 2018 (≥ 2026 − 10) → one tall new residential building (≤ 0 fails)
    assert value(results, "tall_new_housing") == 1
    assert results[("tall_new_housing", DISTRICT)].passed is False
    assert value(results, "tall_new_housing", E) == 0 and results[("tall_new_housing", E)].passed
    # B4: 120 m (commercial) → one building over 100 m, in the east
    assert value(results, "super_tall_buildings") == 1
    assert value(results, "super_tall_buildings", E) == 1
    # B1: estate 老街小区 built 1995 (≤ 2000): 10 of 60 dwellings
    assert value(results, "old_estate_share") == pytest.approx(100 * 10 / 60)


def test_life_circles(results):
    # neither community has an elderly-care site, a market or sports ground → none complete
    assert value(results, "life_circle_completeness") == 0
    assert results[("life_circle_completeness", DISTRICT)].denominator == 2


def test_hazards_rectified_on_time(results):
    # due in (2025-06-30, 2026-06-30]: H1 (closed before its deadline), H2 (closed late), H3
    # (open). H4 is not due yet, H5 was due before the window. → 1 of 3; west 1 of 2, east 0 of 1
    assert value(results, "hazard_rectification_rate") == pytest.approx(100 / 3)
    assert value(results, "hazard_rectification_rate", W) == pytest.approx(50.0)
    assert value(results, "hazard_rectification_rate", E) == 0
    assert results[("hazard_rectification_rate", DISTRICT)].denominator == 3


def test_assets_revitalised(results):
    # two assets, no status history: one revitalised (west), one promoted (east) → 50 %
    assert value(results, "asset_revitalisation_rate") == pytest.approx(50.0)
    assert value(results, "asset_revitalisation_rate", W) == pytest.approx(100.0)


def test_every_indicator_was_worked_out_here(results):
    from geo.checkup.registry import indicators

    assert {k[0] for k in results} == set(indicators())
