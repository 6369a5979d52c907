"""A city of districts through the district import: each district exported on its own from a
two-district city, imported again beside the other (`--beside`), gives the city back exactly; one
of several is replaced alone (`--replace`); a district whose ids are taken moves past them with
every reference; a district over another's ground, or loaded twice, is refused and changes
nothing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text

from geo import district
from tests import handmade_district as hand
from tests.conftest import TEST_DB, url_for

LISHUI, GAOCHUN = "320117", "320118"


@dataclass
class City:
    url: str  # both districts, loaded by the demo at once (the reference)
    sums: tuple
    folders: dict[str, Path]  # each district exported on its own
    counts: dict[str, dict[str, int]]  # rows each export wrote, by table


def _import(url: str, manifest: Path, **options):
    """Import on its own connection; commit only a loaded import (as the CLI and API do)."""
    from geo.database import engine
    from geo.settings import Settings
    from layers.basedata import manifest as manifests
    from layers.basedata.importer import import_district

    key = Settings.from_env().secrets.id_hash_key  # the demo's residents were hashed with it
    with engine(url).connect() as conn:
        transaction = conn.begin()
        report = import_district(conn, manifests.load(manifest), hash_key=key, **options)
        transaction.commit() if report.loaded else transaction.rollback()
    return report


def _sums(url: str):
    from geo.database import engine

    with engine(url).connect() as conn:
        return district.checksums(conn)


def _fresh(name: str) -> str:
    from geo import migrate
    from geo.database import create_database

    url = url_for(f"{TEST_DB}_{name}")
    create_database(url, replace=True)
    migrate.upgrade(url)
    return url


@pytest.fixture(scope="module")
def city(tmp_path_factory, two_district_url):
    from geo.database import drop_database
    from geo.database import engine as make_engine
    from geo.policy.roles import Viewer
    from layers.basedata.export import export_district

    url = two_district_url  # the session's two-district city: read here, never changed
    made = []
    try:
        folders, counts = {}, {}
        eng = make_engine(url)
        with eng.begin() as conn:
            for code in (LISHUI, GAOCHUN):
                folders[code] = tmp_path_factory.mktemp(f"export_{code}")
                counts[code] = export_district(
                    conn, folders[code], Viewer(username="t_export", role="admin"),
                    district_code=code,
                )  # fmt: skip
        eng.dispose()
        yield City(url, _sums(url), folders, counts), made
    finally:
        for each in made:
            drop_database(each)


def test_each_district_exported_alone_and_imported_beside_the_other_gives_the_city(city):
    city, made = city
    assert city.counts[LISHUI]["residents"] > 0 and city.counts[GAOCHUN]["residents"] > 0
    total = {t: city.counts[LISHUI][t] + city.counts[GAOCHUN][t] for t in district.TABLES}
    assert total == city.sums[0]  # every row belongs to one district, none to both
    url = _fresh("beside_rebuilt")
    made.append(url)
    first = _import(url, city.folders[LISHUI] / "manifest.toml")
    assert first.loaded, first.problems
    second = _import(url, city.folders[GAOCHUN] / "manifest.toml", beside=True)
    assert second.loaded, second.problems
    assert list(second.kept) == [f"{LISHUI}000000"] and not second.replaced
    rebuilt = _sums(url)
    assert rebuilt[0] == city.sums[0]
    assert {t: s for t, s in rebuilt[1].items() if s != city.sums[1][t]} == {}
    assert rebuilt[2] == city.sums[2]

    # loaded twice: refused, whichever way it is asked, and nothing changes
    again = _import(url, city.folders[GAOCHUN] / "manifest.toml", beside=True)
    assert not again.loaded and "loaded already" in again.problems[0]
    plain = _import(url, city.folders[GAOCHUN] / "manifest.toml")
    assert not plain.loaded and "--beside" in plain.problems[0] and "--replace" in plain.problems[0]
    assert _sums(url)[2] == city.sums[2]

    # one district of two replaced: its rows only; the other is kept as it was
    swap = _import(url, city.folders[GAOCHUN] / "manifest.toml", replace=True)
    assert swap.loaded, swap.problems
    assert list(swap.kept) == [f"{LISHUI}000000"]
    assert swap.replaced == {t: n for t, n in city.counts[GAOCHUN].items() if n}
    assert _sums(url)[2] == city.sums[2]


def test_a_district_whose_ids_are_taken_moves_past_them_with_every_reference(city):
    """Gaochun first (its exported ids come after Lishui's), then Lishui beside it: Lishui's ids,
    from 1, are below ids loaded, so every one moves past them, and every reference with it."""
    from geo.checkup.engine import run_checkup
    from geo.database import engine as make_engine

    city, made = city
    url = _fresh("beside_moved")
    made.append(url)
    assert _import(url, city.folders[GAOCHUN] / "manifest.toml").loaded
    with make_engine(url).connect() as conn:
        last = conn.execute(text("SELECT max(id) FROM residents")).scalar_one()
    report = _import(url, city.folders[LISHUI] / "manifest.toml", beside=True)
    assert report.loaded, report.problems
    eng = make_engine(url)
    with eng.connect() as conn:
        assert (
            conn.execute(
                text("SELECT min(id) FROM residents WHERE district_code = :d"), {"d": LISHUI}
            ).scalar_one()
            == last + 1
        )
        # each row's parent by id is in the same district as the row
        for child, column, parent in (
            ("addresses", "building_id", "buildings"),
            ("houses", "building_id", "buildings"),
            ("houses", "address_id", "addresses"),
            ("residents", "house_id", "houses"),
            ("organisations", "building_id", "buildings"),
            ("facilities", "address_id", "addresses"),
            ("hazards", "organisation_id", "organisations"),
            ("inspections", "hazard_id", "hazards"),
        ):
            astray = conn.execute(
                text(f"""SELECT count(*) FROM {child} c JOIN {parent} p ON p.id = c.{column}
                         WHERE c.district_code <> p.district_code""")
            ).scalar_one()
            joined = conn.execute(
                text(f"SELECT count(*) FROM {child} c JOIN {parent} p ON p.id = c.{column}")
            ).scalar_one()
            assert astray == 0 and joined > 0, (child, column)
        for child, parent, column in (("sensor_readings", "sensors", "sensor_id"),
                                      ("asset_status_history", "assets", "asset_id")):  # fmt: skip
            orphans = conn.execute(
                text(f"""SELECT count(*) FROM {child} c
                         WHERE NOT EXISTS (SELECT 1 FROM {parent} p WHERE p.id = c.{column})""")
            ).scalar_one()
            assert orphans == 0, child
    assert _sums(url)[0] == city.sums[0]
    # the figures do not depend on the ids: each district's line is the reference city's
    only = ["kindergarten_coverage", "park_area_per_capita", "fire_5min_radius_coverage"]
    lines = {}
    for name, engine in (("reference", make_engine(city.url)), ("moved", eng)):
        run = run_checkup(engine, 4549, only=only)
        with engine.connect() as conn:
            lines[name] = set(
                conn.execute(
                    text("""SELECT indicator, area_code, round(value::numeric, 9)
                            FROM checkup_results WHERE run_id = :r AND level = 'district'"""),
                    {"r": run.id},
                ).all()
            )
    assert len(lines["moved"]) == 3 * len(only) and lines["moved"] == lines["reference"]


def test_a_district_over_another_ones_ground_is_refused(city, tmp_path):
    """The hand-built test district lies inside Lishui: beside it, it is refused, naming Lishui."""
    city, _ = city
    url = city.url
    before = _sums(url)[2]
    report = _import(url, hand.write(tmp_path), beside=True)
    assert not report.loaded and "溧水区" in report.problems[0] and "overlaps" in report.problems[0]
    both = _import(url, hand.write(tmp_path), beside=True, replace=True)
    assert not both.loaded and "exclude each other" in both.problems[0]
    assert _sums(url)[2] == before


def test_the_export_of_a_city_names_its_district(city, tmp_path):
    from geo.database import engine as make_engine
    from geo.errors import BadRequest
    from geo.policy.roles import Viewer
    from layers.basedata.export import export_district

    city, _ = city
    who = Viewer(username="t_export", role="admin")
    with make_engine(city.url).begin() as conn:
        with pytest.raises(BadRequest, match="320117 溧水区, 320118 高淳区"):
            export_district(conn, tmp_path / "all", who)
        with pytest.raises(BadRequest, match="no district 320199"):
            export_district(conn, tmp_path / "none", who, district_code="320199")
    assert not (tmp_path / "all").exists() and not (tmp_path / "none").exists()
    manifest = (city.folders[GAOCHUN] / "manifest.toml").read_text(encoding="utf-8")
    assert 'code = "320118000000"' in manifest and "高淳区" in manifest


def test_an_asset_register_of_a_city_names_its_district(city, tmp_path):
    """The idle-asset register is a district's: several loaded, it must be named; the named one's
    boundary decides which rows lie outside."""
    from geo.database import engine as make_engine
    from geo.errors import BadRequest
    from layers.basedata.asset_import import import_assets
    from tests.test_asset_import import _write_csv

    city, _ = city
    eng = make_engine(city.url)
    with eng.connect() as conn:
        footprints = {
            code: conn.execute(
                text("""SELECT ST_AsText(geom) FROM buildings WHERE district_code = :d
                        ORDER BY id LIMIT 1"""),
                {"d": code},
            ).scalar_one()
            for code in (LISHUI, GAOCHUN)
        }
    row = ["", "", "行政事业单位", "公开推介", "区机关事务管理局", 800, "工业用地", "基本完好"]
    sheet = _write_csv(
        tmp_path / "台账.csv",
        [
            ["", "高淳闲置办公楼", *row[2:], "2025-07-01", footprints[GAOCHUN], "", "", ""],
            ["", "溧水的一栋楼", *row[2:], "2025-07-01", footprints[LISHUI], "", "", ""],
        ],
    )
    with eng.connect() as conn:
        with pytest.raises(BadRequest, match="several districts are loaded"):
            import_assets(conn, sheet)
        conn.rollback()
        transaction = conn.begin()
        report = import_assets(conn, sheet, district_code=GAOCHUN)
        assert report.loaded and report.district == "高淳区", report.problems
        assert report.tables["assets"].loaded == 1
        issues = report.tables["assets"].issues
        assert [i.row for i in issues if i.severity == "rejected"] == [3]
        assert "outside" in next(i.reason for i in issues if i.row == 3)
        transaction.rollback()


def test_over_http_and_on_the_command_line(city, tmp_path):
    """`POST /city/imports?beside=true` loads a district next to the other (its report page names
    the district kept); `onemap city export` of a city without --district says to name one."""
    import os
    import subprocess
    import sys

    from fastapi.testclient import TestClient

    from api.app import create_app
    from geo.database import engine as make_engine
    from geo.policy.users import create_user, issue_token
    from tests.conftest import settings_for
    from tests.test_city_import import _zip

    city, made = city
    url = _fresh("beside_http")
    made.append(url)
    assert _import(url, city.folders[LISHUI] / "manifest.toml").loaded
    with make_engine(url).begin() as conn:
        create_user(conn, "t_city_admin", "admin")
        token = issue_token(conn, "t_city_admin").token
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/zip"}
    with TestClient(create_app(settings_for(url))) as client:
        plain = client.post("/city/imports", content=_zip(city.folders[GAOCHUN]), headers=headers)
        assert plain.status_code == 422 and "--beside" in plain.json()["detail"]
        page = client.post(
            "/city/imports?beside=true&f=html", content=_zip(city.folders[GAOCHUN]), headers=headers
        )
        assert page.status_code == 201, page.text
        assert "与已有辖区并存" in page.text and "溧水区 320117" in page.text
    assert _sums(url)[2] == city.sums[2]

    out = subprocess.run(
        [sys.executable, "-m", "api.cli", "city", "export", str(tmp_path / "all")],
        env=os.environ | {"DATABASE_URL": city.url},
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert out.returncode == 1 and "name one with --district" in " ".join(out.stderr.split())
