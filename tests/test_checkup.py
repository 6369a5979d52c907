"""The one-click city check-up on the small demo city: every indicator at every level, levels that
add up, agreement with the independent profile, year on year, the report and the exports, who may
run it, and bad requests refused without a trace."""

from __future__ import annotations

import sys

import pytest
from sqlalchemy import text

from geo.checkup.registry import DIMENSIONS, indicators
from tests.conftest import benchmark_module


@pytest.fixture(scope="module")
def planner(people) -> dict[str, str]:
    return people.headers("ck_planner", "planner")


@pytest.fixture(scope="module")
def run(client, planner) -> dict:
    answer = client.post("/checkup/runs", json={"label": "体检测试"}, headers=planner)
    assert answer.status_code == 201, answer.text
    return answer.json()


def _results(engine, run_id: int, indicator: str, level: str) -> dict[str, tuple]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("""SELECT area_code, numerator, denominator, value, passed FROM checkup_results
                    WHERE run_id = :r AND indicator = :i AND level = :l"""),
            {"r": run_id, "i": indicator, "l": level},
        ).all()
    return {r.area_code: (r.numerator, r.denominator, r.value, r.passed) for r in rows}


def test_one_click_gives_every_indicator_against_its_target(run):
    listed = {i["id"]: i for i in run["indicators"]}
    assert set(listed) == set(indicators()) and len(listed) >= 15
    for item in listed.values():
        assert item["dimension"] in DIMENSIONS
        assert item["status"] in ("passed", "failed", "report")
        assert (item["status"] == "report") == (item["target"] is None)
    counted = sum(sum(c.values()) for c in run["dimensions"].values())
    assert counted == len(listed)
    # the calibrated city finds something: some targets met, some not, and areas that fail
    states = {i["status"] for i in listed.values()}
    assert {"passed", "failed"} <= states
    assert listed["park_radius_coverage"]["failing_areas"].get("community", 0) > 0
    assert "houses" in listed["kindergarten_coverage"]["basis"]
    assert "residents" in listed["park_area_per_capita"]["basis"]


def test_each_level_is_the_sum_of_the_one_below(engine, run):
    """Street = its communities = its grids; district = its streets; H3-8 cells = the district."""
    for indicator in ("kindergarten_coverage", "old_estate_share", "shelter_area_per_capita"):
        grids = _results(engine, run["run"], indicator, "grid")
        for upper, width in (("community", 12), ("street", 9)):
            for code, (num, den, _value, _) in _results(
                engine, run["run"], indicator, upper
            ).items():
                below = [v for g, v in grids.items() if g.startswith(code[:width])]
                assert num == pytest.approx(sum(v[0] for v in below))
                assert den == pytest.approx(sum(v[1] for v in below))
        (district,) = _results(engine, run["run"], indicator, "district").values()
        streets = _results(engine, run["run"], indicator, "street").values()
        assert district[0] == pytest.approx(sum(s[0] for s in streets))
    cells = _results(engine, run["run"], "kindergarten_coverage", "h3_8").values()
    (district,) = _results(engine, run["run"], "kindergarten_coverage", "district").values()
    assert sum(c[1] for c in cells) == pytest.approx(district[1])
    assert district[2] == pytest.approx(100 * district[0] / district[1])


def test_the_engine_agrees_with_the_independent_profile(engine, run):
    """benchmarks/democity_profile.py computes the same figures in its own plain SQL."""
    democity_profile = benchmark_module("democity_profile")

    with engine.connect() as conn:
        figures = democity_profile.profile(conn)
    pairs = {
        "park_radius_coverage": ("park_radius_coverage", 100),
        "kindergarten_coverage": ("kindergarten_300m", 100),
        "primary_school_coverage": ("primary_school_500m", 100),
        "middle_school_coverage": ("middle_school_1000m", 100),
        "elderly_5min_coverage": ("elderly_care_300m", 100),
        "park_area_per_capita": ("park_m2_per_resident", 1),
        "shelter_area_per_capita": ("shelter_m2_per_resident", 1),
        "super_tall_buildings": ("buildings_over_100m", 1),
    }
    for indicator, (figure, scale) in pairs.items():
        (district,) = _results(engine, run["run"], indicator, "district").values()
        assert district[2] == pytest.approx(figures[figure] * scale, rel=1e-6), indicator


def _lines(engine, run_id: int, prefix: str) -> dict[tuple, tuple]:
    """Every line of a run for the areas inside ``prefix`` (the H3 cells aside)."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("""SELECT indicator, level, area_code, numerator, denominator, value, passed
                    FROM checkup_results WHERE run_id = :r AND left(area_code, :n) = :p
                      AND level IN ('grid', 'community', 'street', 'district')"""),
            {"r": run_id, "n": len(prefix), "p": prefix},
        ).all()
    return {
        r[:3]: tuple(None if v is None else round(float(v), 6) for v in r[3:6]) + (r.passed,)
        for r in rows
    }


def test_a_run_for_one_street_stays_inside_it(client, planner, engine, run):
    """A street's run stages its own buildings only, yet every figure of every area in it is the
    one the district's run gives: services beyond its edge still count for its homes, and an H3
    cell across its edge still counts all its residents (the densest street, where that shows)."""
    with engine.connect() as conn:
        street = conn.execute(
            text("""SELECT left(grid_code, 9) || '000' FROM buildings
                    GROUP BY 1 ORDER BY sum(residents) DESC NULLS LAST LIMIT 1""")
        ).scalar_one()
    answer = client.post("/checkup/runs", json={"area": street}, headers=planner)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["area"] == street
    with engine.connect() as conn:
        levels = dict(
            conn.execute(
                text("""SELECT level, count(*) FROM checkup_results WHERE run_id = :r
                        GROUP BY level"""),
                {"r": body["run"]},
            ).all()
        )
        outside = conn.execute(
            text("""SELECT count(*) FROM checkup_results WHERE run_id = :r
                    AND level IN ('street', 'community', 'grid') AND left(area_code, 9) <> :s"""),
            {"r": body["run"], "s": street[:9]},
        ).scalar()
    assert "district" not in levels and levels["street"] == len(indicators()) and outside == 0
    whole, alone = _lines(engine, run["run"], street[:9]), _lines(engine, body["run"], street[:9])
    assert len(alone) > 10 * len(indicators())
    assert alone == whole


def test_an_h3_cell_across_an_areas_edge_counts_all_its_residents(engine):
    """At 20 residents per km² (two in a cell) nearly every lived-in cell is dense, and a few
    straddle a street's edge: a cell counts in the grid holding most of its residents, so a
    street's run must read the homes beyond its edge too (the margin), or such a cell moves into
    the street that holds the fewer of its residents."""
    from geo.checkup.engine import CheckupConfig, run_checkup

    config = CheckupConfig.parse({"dense_land_area": {"per_km2": 20}})
    whole = run_checkup(engine, 4549, config=config, only=["dense_land_area"]).id
    with engine.connect() as conn:
        streets = (
            conn.execute(
                text("""SELECT area_code FROM checkup_results WHERE run_id = :r AND level = 'street'
                    ORDER BY area_code"""),
                {"r": whole},
            )
            .scalars()
            .all()
        )
    assert len(streets) > 3
    for street in streets:
        alone = run_checkup(engine, 4549, area=street, config=config, only=["dense_land_area"])
        expected = _lines(engine, whole, street[:9])
        assert expected[("dense_land_area", "street", street)][0] > 0
        assert _lines(engine, alone.id, street[:9]) == expected


def test_year_on_year_says_what_got_better_and_worse(client, planner, run):
    earlier = client.post(
        "/checkup/runs", json={"as_of": "2025-11-01", "label": "2025"}, headers=planner
    ).json()
    answer = client.get(f"/checkup/compare?base={earlier['run']}&run={run['run']}", headers=planner)
    assert answer.status_code == 200
    body = answer.json()
    changes = {c["indicator"]: c for c in body["changes"]}
    assets = changes["asset_revitalisation_rate"]
    assert assets["value"] > assets["base"] and assets["trend"] == "better"
    assert changes["kindergarten_coverage"]["trend"] == "same"  # facilities carry no dates
    by_street = client.get(
        f"/checkup/compare?base={earlier['run']}&run={run['run']}&level=street"
        "&indicator=hazard_rectification_rate",
        headers=planner,
    ).json()["changes"]
    assert len(by_street) == 8 and all(
        c["indicator"] == "hazard_rectification_rate" for c in by_street
    )


def test_one_indicator_for_every_area(client, planner, run):
    answer = client.get(
        f"/checkup/runs/{run['run']}/indicators/park_radius_coverage?level=community",
        headers=planner,
    )
    body = answer.json()
    assert body["indicator"]["target"] == 90.0
    areas = body["areas"]
    assert areas and all(a["level"] == "community" for a in areas)
    assert [a["passed"] for a in areas] == sorted((a["passed"] for a in areas), key=bool)
    assert all((a["value"] >= 90) == a["passed"] for a in areas)


def test_the_report_page_and_the_exports(client, planner, run, tmp_path):
    import geopandas as gpd

    page = client.get(f"/checkup/runs/{run['run']}/report", headers=planner)
    assert (
        page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    )
    html = page.text
    assert html.count('class="map"') >= len(indicators())
    assert "<script>" not in html  # the served page runs only the app's own scripts
    for item in indicators().values():
        assert item.name_zh in html
    csv = client.get(f"/checkup/runs/{run['run']}/export?f=csv&level=street", headers=planner)
    assert csv.status_code == 200 and csv.text.lstrip("\ufeff").startswith("indicator,name_zh")
    assert csv.text.count("\n") == 8 * len(indicators()) + 1
    gpkg = client.get(f"/checkup/runs/{run['run']}/export?f=gpkg&level=community", headers=planner)
    path = tmp_path / "run.gpkg"
    path.write_bytes(gpkg.content)
    frame = gpd.read_file(path)
    assert len(frame) > 0 and frame.geometry.notna().all() and frame.crs.to_epsg() == 4490


def test_only_planners_and_administrators(client, people, run):
    path = f"/checkup/runs/{run['run']}"
    assert client.get(path).status_code == 401
    worker = people.headers("ck_investor", "investment")
    assert client.get(path, headers=worker).status_code == 403
    assert client.post("/checkup/runs", json={}, headers=worker).status_code == 403
    admin = people.headers("ck_admin", "admin")
    assert client.get(path, headers=admin).status_code == 200


@pytest.mark.parametrize(
    "request_body, status, words",
    [
        ({"area": "999999999999"}, 400, "no area has the code"),
        ({"as_of": "2026-13-40"}, 422, "as_of"),
        ({"colour": "red"}, 422, "colour"),
    ],
)
def test_a_bad_run_is_refused_and_leaves_nothing(
    client, planner, engine, run, request_body, status, words
):
    with engine.connect() as conn:
        before = conn.execute(text("SELECT count(*) FROM checkup_runs")).scalar()
    answer = client.post("/checkup/runs", json=request_body, headers=planner)
    assert answer.status_code == status
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert words in answer.text
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM checkup_runs")).scalar() == before


def test_unknown_runs_indicators_and_levels(client, planner, run):
    assert client.get("/checkup/runs/999999", headers=planner).status_code == 404
    bad = client.get(f"/checkup/runs/{run['run']}/indicators/happiness", headers=planner)
    assert bad.status_code == 404 and "happiness" in bad.text
    level = client.get(
        f"/checkup/runs/{run['run']}/indicators/road_density?level=county", headers=planner
    )
    assert level.status_code == 400 and "county" in level.text
    assert (
        client.get(f"/checkup/runs/{run['run']}/export?f=xlsx", headers=planner).status_code == 400
    )


def test_a_city_sets_its_own_targets_and_radii():
    from geo.checkup.engine import CheckupConfig, CheckupError

    config = CheckupConfig.parse(
        {"park_radius_coverage": {"target": 85}, "kindergarten_coverage": {"radius_m": 500}}
    )
    assert config.targets == {"park_radius_coverage": 85}
    assert config.settings["kindergarten_coverage"] == {"radius_m": 500}
    with pytest.raises(CheckupError, match="happiness"):
        CheckupConfig.parse({"happiness": {"target": 1}})
    with pytest.raises(CheckupError, match="radius_m"):
        CheckupConfig.parse({"park_radius_coverage": {"radius": 300}})


def test_the_command_line_runs_shows_compares_and_exports(db_url, tmp_path):
    import os
    import subprocess

    env = os.environ | {"DATABASE_URL": db_url}

    def onemap(*args):
        done = subprocess.run(
            [sys.executable, "-m", "api.cli", "checkup", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr
        return done

    ran = onemap("run", "--label", "命令行", "--json")
    assert '"indicators"' in ran.stdout
    listed = onemap("list").stdout
    assert "命令行" in listed
    first = int(listed.split("│")[1].strip()) if "│" in listed else None
    assert first
    onemap("show", str(first))
    onemap("compare", str(first), str(first))
    onemap("export", str(first), str(tmp_path / "run.csv"))
    assert (tmp_path / "run.csv").stat().st_size > 1000
    onemap("report", str(first), str(tmp_path / "report.html"))
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<script>" in page and "http://" not in page.split("<script>")[-1][:2000]


def test_the_viewer_overlay_reads_the_latest_run(client, planner, run, engine):
    answer = client.get(
        "/checkup/runs/latest/indicators/park_radius_coverage/areas.geojson?level=street",
        headers=planner,
    )
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/geo+json"
    body = answer.json()
    with engine.connect() as conn:
        newest = conn.execute(
            text("SELECT max(id) FROM checkup_runs WHERE area_code IS NULL")
        ).scalar()
    assert body["run"] == newest and len(body["features"]) == 8
    streets = _results(engine, newest, "park_radius_coverage", "street")
    for feature in body["features"]:
        code = feature["properties"]["code"]
        assert feature["properties"]["value"] == pytest.approx(streets[code][2])
        assert feature["geometry"]["type"] in ("Polygon", "MultiPolygon")
    bad = client.get(
        "/checkup/runs/newest/indicators/park_radius_coverage/areas.geojson", headers=planner
    )
    assert bad.status_code == 400 and "latest" in bad.text
    page = client.get("/maps/checkup?f=html", headers=planner)
    assert 'id="checkup-indicator"' in page.text and "公园绿地服务半径覆盖率" in page.text
