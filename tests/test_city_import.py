"""Bring your own district: a hand-built district imported through a manifest (counts, codes,
positions), bad input refused with a clear report and an unchanged database, and the demo city's
export imported again with the same checksums."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import numpy as np
import pytest
import shapely
import shapely.affinity
from sqlalchemy import text

from geo import district
from geo.crs import transform
from tests import handmade_district as hand
from tests.conftest import url_for

HASH_KEY = "test-import-key"


def run_import(
    url: str, manifest: Path, replace: bool = False, allow_rejects: bool = False, key=HASH_KEY
):
    """Import on its own connection; commit only a loaded import (as the CLI and API do)."""
    from geo.database import engine
    from layers.basedata import manifest as manifests
    from layers.basedata.importer import import_district

    parsed = manifests.load(manifest)
    with engine(url).connect() as conn:
        transaction = conn.begin()
        report = import_district(
            conn, parsed, replace=replace, allow_rejects=allow_rejects, hash_key=key
        )
        transaction.commit() if report.loaded else transaction.rollback()
    return report


def sums(url: str):
    from geo.database import engine

    with engine(url).connect() as conn:
        return district.checksums(conn)


@pytest.fixture(scope="module")
def hand_url(tmp_path_factory):
    """An empty migrated database with the hand-built district imported into it."""
    from geo import migrate
    from geo.database import create_database, drop_database

    url = url_for(f"onemap_test_hand_{uuid.uuid4().hex[:6]}")
    create_database(url, replace=True)
    migrate.upgrade(url)
    folder = tmp_path_factory.mktemp("hand")
    report = run_import(url, hand.write(folder))
    assert report.loaded, report.problems
    yield url
    drop_database(url)


@pytest.fixture
def files(tmp_path) -> Path:
    """A fresh copy of the hand-built district's files, for a test to spoil."""
    hand.write(tmp_path)
    return tmp_path


def q(url: str, sql: str, **params):
    from geo.database import engine

    with engine(url).connect() as conn:
        return conn.execute(text(sql), params).all()


# --- the hand-built district ---------------------------------------------------------------------


def test_every_table_holds_the_rows_the_files_give(hand_url):
    counts, _, _ = sums(hand_url)
    assert counts == {
        "admin_areas": 7,
        "grids": 8,
        "buildings": 16,
        "addresses": 3,
        "houses": 3,
        "residents": 3,
        "organisations": 0,
        "facilities": 3,
        "landuse_parcels": 0,
        "roads": 2,
        "water": 0,
        "parks": 0,
        "hazards": 2,
        "inspections": 0,
        "sensors": 0,
        "sensor_readings": 0,
        "assets": 2,
        "asset_status_history": 0,
    }


def test_missing_codes_are_allocated_from_the_containing_area(hand_url):
    areas = dict(q(hand_url, "SELECT name, code FROM admin_areas WHERE level = 3"))
    assert areas == {
        name: code for (name, _), code in zip(hand.COMMUNITIES, hand.COMMUNITY_CODES, strict=True)
    }
    parents = dict(q(hand_url, "SELECT name, parent_code FROM admin_areas WHERE level > 1"))
    assert parents["东湖北社区"] == "320199001000" and parents["西山南村"] == "320199100000"
    assert parents["东湖街道"] == hand.DISTRICT
    kinds = dict(q(hand_url, "SELECT name, kind FROM admin_areas"))
    assert kinds["西山镇"] == "town" and kinds["西山北村"] == "village"
    grids = dict(q(hand_url, "SELECT name, code FROM grids"))
    assert grids == {name: code for _, name, _, code in hand.GRIDS}
    buildings = dict(q(hand_url, "SELECT name, code FROM buildings"))
    assert buildings == {b["名称"]: b["expected_code"] for b in hand.BUILDINGS}
    assert all(
        code.startswith(a) for (code, a) in q(hand_url, "SELECT code, area_code FROM addresses")
    )
    hazards = q(hand_url, "SELECT code, grid_code FROM hazards ORDER BY id")
    assert [c for c, _ in hazards] == [f"YH{g}00001" for _, g in hazards]
    assets = [c for (c,) in q(hand_url, "SELECT code FROM assets ORDER BY id")]
    assert assets == ["ZC3201990001", "ZC3201990002"]


def test_positions_are_kept_within_a_metre_from_every_crs(hand_url):
    # buildings: Gauss-Krüger WKT in a CSV
    stored = q(
        hand_url,
        "SELECT name, ST_X(c), ST_Y(c) FROM (SELECT name, "
        "ST_Centroid(ST_Transform(geom, 4549)) c FROM buildings) b",
    )
    by_name = {b["名称"]: b["metric"].centroid for b in hand.BUILDINGS}
    for name, x, y in stored:
        assert shapely.Point(x, y).distance(by_name[name]) <= 1.0
    # grids: a GeoPackage in EPSG:4549
    for name, lon, lat in q(
        hand_url, "SELECT name, ST_X(ST_Centroid(geom)), ST_Y(ST_Centroid(geom)) FROM grids"
    ):
        expected = next(g[2] for g in hand.GRIDS if g[1] == name).centroid
        assert _metres(lon, lat, expected.x, expected.y) <= 1.0
    # facilities: GCJ-02 picks, stored at their true CGCS2000 position
    for name, lon, lat in q(hand_url, "SELECT name, ST_X(geom), ST_Y(geom) FROM facilities"):
        _, _, true_lon, true_lat, _ = next(f for f in hand.FACILITIES if f[0] == name)
        assert _metres(lon, lat, true_lon, true_lat) <= 1.0


def _metres(lon1, lat1, lon2, lat2) -> float:
    x, y = transform(np.array([lon1, lon2]), np.array([lat1, lat2]), 4490, 4549)
    return float(np.hypot(x[0] - x[1], y[0] - y[1]))


def test_values_and_derived_fields_follow_the_manifest(hand_url):
    kinds = dict(q(hand_url, "SELECT name, kind FROM facilities"))
    assert kinds == {
        "东湖幼儿园": "kindergarten",
        "西山社区卫生服务站": "clinic",
        "东湖消防站": "fire_station",
    }
    hazards = q(
        hand_url, "SELECT category, level, status, closed_at IS NOT NULL FROM hazards ORDER BY id"
    )
    assert hazards == [("fire", 1, "closed", True), ("gas", 3, "assigned", False)]
    found = q(
        hand_url,
        "SELECT to_char(found_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') FROM hazards ORDER BY id",
    )
    assert found[0][0] == "2026-03-01 01:30"  # 09:30 China Standard Time
    assets = q(
        hand_url,
        "SELECT category, status, floor_area_m2, land_area_m2 > 9000 FROM assets ORDER BY id",
    )
    assert [(c, s, float(f), big) for c, s, f, big in assets] == [
        ("rural_collective", "revitalised", 820.0, True),  # 0.001° × 0.001° ≈ 95 m × 111 m
        ("state_operating", "promoted", 0.0, True),
    ]
    roads = q(hand_url, "SELECT name, class, round(length_m) FROM roads ORDER BY id")
    assert roads[0][:2] == ("东湖路", "arterial") and 3550 < roads[0][2] < 3650  # 0.038° at 31.6°N
    houses = q(hand_url, "SELECT room_number, floor, tenure, area_m2 FROM houses ORDER BY id")
    assert [(r, f, t) for r, f, t, _ in houses] == [
        ("301", 3, "owner_occupied"),
        ("1202", 12, "rented"),
        ("101", 1, "other"),
    ]
    assert float(houses[0][3]) == 89.5


def test_people_are_placed_at_their_house_and_derived_from_their_identity_number(hand_url):
    rows = q(
        hand_url,
        "SELECT r.name, r.gender, r.birth_date::text, r.grid_code = h.grid_code, "
        "ST_Equals(r.geom, h.geom), length(r.id_hash) FROM residents r JOIN houses h "
        "ON h.id = r.house_id ORDER BY r.id",
    )
    assert rows[0] == ("张三", "F", "1949-12-31", True, True, 64)
    assert rows[1][1:3] == ("M", "1990-01-01")


def test_building_counts_stand_in_where_there_are_no_person_records(hand_url):
    from geo.database import engine
    from geo.population import people_by_building

    with engine(hand_url).connect() as conn:
        people = {row.code: row for row in people_by_building(conn)}
    b01 = hand.BUILDINGS[0]["expected_code"]  # two residents on record
    b05 = hand.BUILDINGS[4]["expected_code"]  # none on record; the file says 60
    assert (people[b01].residents, people[b01].source) == (2, "records")
    assert (people[b05].residents, people[b05].source) == (60, "building counts")
    assert people[b05].dwellings == 24


def test_an_import_over_a_loaded_district_is_refused_without_replace(hand_url, files):
    before = sums(hand_url)
    report = run_import(hand_url, files / "manifest.toml")
    assert report.status == "refused"
    assert "--replace" in report.problems[0]
    assert sums(hand_url) == before


def test_the_same_import_with_replace_gives_the_same_district(hand_url, files):
    before = sums(hand_url)
    report = run_import(hand_url, files / "manifest.toml", replace=True)
    assert report.loaded and report.replaced["buildings"] == 16
    assert sums(hand_url) == before


# --- bad input: a clear report, and the database exactly as before -------------------------------


def _spoil(folder: Path, name: str, old: str, new: str) -> None:
    path = folder / name
    text_ = path.read_text(encoding="utf-8")
    assert old in text_, f"{old!r} not in {name}"
    path.write_text(text_.replace(old, new, 1), encoding="utf-8")


def _refused(hand_url, files, table: str | None, words: tuple[str, ...]):
    before = sums(hand_url)
    report = run_import(hand_url, files / "manifest.toml", replace=True)
    assert report.status == "refused"
    said = " ".join(report.problems)
    if table is not None:
        said += " " + " ".join(i.reason for i in report.tables[table].issues)
    for word in words:
        assert word in said, said
    assert sums(hand_url) == before
    return report


def test_a_missing_file(hand_url, files):
    (files / "地址.csv").unlink()
    _refused(hand_url, files, None, ("地址.csv", "is not there"))


def test_a_wrong_crs(hand_url, files):
    _spoil(files, "manifest.toml", 'crs = "EPSG:4549"', 'crs = "EPSG:4490"')
    report = _refused(hand_url, files, None, ("look like metres", "EPSG:4549"))
    assert report.tables["buildings"].failed


def test_a_file_in_the_wrong_format(hand_url, files):
    (files / "隐患.geojson").write_text("类别,等级\n消防,一级\n", encoding="utf-8")
    _refused(hand_url, files, None, ("隐患.geojson", "GeoJSON"))


def test_duplicate_codes(hand_url, files):
    _spoil(files, "行政区划.geojson", '"区划代码": "320199100000"', '"区划代码": "320199001000"')
    report = _refused(hand_url, files, "admin_areas", ("duplicate", "320199001000"))
    assert report.tables["admin_areas"].rejected >= 1


def test_dangling_references(hand_url, files):
    _spoil(files, "地址.csv", "B05", "B99")
    report = _refused(hand_url, files, "addresses", ("dangling reference", "B99"))
    issue = next(i for i in report.tables["addresses"].issues if "B99" in i.reason)
    assert issue.row == 3 and issue.file == "地址.csv"


def test_features_outside_the_district(hand_url, files):
    _spoil(files, "设施.csv", "东湖消防站,消防站,119.0", "东湖消防站,消防站,118.9")
    last = hand.BUILDINGS[-1]["WKT"]
    moved = shapely.affinity.translate(shapely.from_wkt(last), xoff=20_000)
    _spoil(files, "楼栋.csv", f'"{last}"', f'"{moved.wkt}"')
    report = _refused(hand_url, files, "facilities", ("outside the district",))
    issue = next(i for i in report.tables["facilities"].issues if i.severity == "rejected")
    assert issue.lon is not None and issue.lon < 119.0  # placed on the report's map
    building = report.tables["buildings"].issues[0]
    assert building.row == 16 and "outside the district: 1" in building.reason


def test_an_unknown_enumeration_value(hand_url, files):
    _spoil(files, "楼栋.csv", "商业", "宇宙飞船")
    _refused(hand_url, files, "buildings", ("宇宙飞船", "[buildings.values.use]"))


def test_a_manifest_with_a_typo_names_the_line(hand_url, files):
    from layers.basedata.manifest import ManifestError

    _spoil(files, "manifest.toml", 'height_m = "高度"', 'heigth_m = "高度"')
    before = sums(hand_url)
    with pytest.raises(ManifestError) as caught:
        run_import(hand_url, files / "manifest.toml", replace=True)
    message = str(caught.value)
    line = next(
        n
        for n, raw in enumerate((files / "manifest.toml").read_text().splitlines(), 1)
        if raw.startswith("heigth_m")
    )
    assert f"line {line}" in message and "did you mean 'height_m'" in message
    assert sums(hand_url) == before


@pytest.mark.parametrize(
    ("old", "new", "words"),
    [
        ("[grids]", "[gridz]", ("[gridz] is not a base table", "did you mean 'grids'")),
        ('key = "楼栋编号"', 'kye = "楼栋编号"', ("unknown key 'kye'", "did you mean 'key'")),
        ('"卫生服务站" = "clinic"', '"卫生服务站" = "clinik"', ("'clinik'", "facilities.kind")),
    ],
)
def test_other_manifest_mistakes_are_named(files, old, new, words):
    from layers.basedata.manifest import ManifestError, load

    _spoil(files, "manifest.toml", old, new)
    with pytest.raises(ManifestError) as caught:
        load(files / "manifest.toml")
    for word in words:
        assert word in str(caught.value)
    assert "line " in str(caught.value)


def test_rejected_rows_can_be_left_out_on_request(hand_url, files, tmp_path):
    """--allow-rejects loads the good rows; the bad one and the rows that hang from it are
    reported, each with its reason."""
    from geo import migrate
    from geo.database import create_database, drop_database

    url = url_for(f"onemap_test_rejects_{uuid.uuid4().hex[:6]}")
    create_database(url, replace=True)
    migrate.upgrade(url)
    try:
        _spoil(files, "房屋.csv", "H3,B03", "H3,B77")
        report = run_import(url, files / "manifest.toml", allow_rejects=True)
        assert report.loaded
        assert report.tables["houses"].rejected == 1 and report.tables["residents"].rejected == 1
        assert "its house 'H3' was rejected" in report.tables["residents"].issues[0].reason
        assert sums(url)[0]["residents"] == 2
    finally:
        drop_database(url)


# --- export and import again ---------------------------------------------------------------------


def test_the_demo_city_exported_and_imported_again_gives_the_same_checksums(
    engine, scratch_url, tmp_path
):
    from geo import migrate
    from geo.policy.roles import Viewer
    from geo.settings import Settings
    from layers.basedata.export import export_district

    with engine.begin() as conn:
        counts = export_district(conn, tmp_path / "out", Viewer(username="t_export", role="admin"))
        before = district.checksums(conn)
    assert counts["residents"] > 0 and (tmp_path / "out" / "district.gpkg").is_file()
    migrate.upgrade(scratch_url)
    # the identity hashes are derived again under the service's key, the one the demo used
    key = Settings.from_env().secrets.id_hash_key
    report = run_import(scratch_url, tmp_path / "out" / "manifest.toml", replace=True, key=key)
    assert report.loaded, report.problems
    after = sums(scratch_url)
    assert after[0] == before[0]
    assert {t: s for t, s in after[1].items() if s != before[1][t]} == {}
    assert after[2] == before[2]
    # the check-up gives the same answers on the demo city and on the district imported from it
    from datetime import date

    from geo.checkup.engine import run_checkup
    from geo.database import engine as make_engine

    day = date(2026, 11, 1)
    demo = run_checkup(engine, 4549, as_of=day).summary["indicators"]
    imported = run_checkup(make_engine(scratch_url), 4549, as_of=day).summary["indicators"]
    assert [i["id"] for i in demo] == [i["id"] for i in imported]
    for a, b in zip(demo, imported, strict=True):
        assert b["value"] == pytest.approx(a["value"], rel=1e-6, abs=1e-9), a["id"]
        assert (a["status"], a["basis"]) == (b["status"], b["basis"]), a["id"]


def test_the_command_line_writes_the_report_as_json_and_a_page_with_a_map(hand_url, files):
    import json
    import os
    import subprocess
    import sys

    _spoil(files, "设施.csv", "东湖消防站,消防站,119.0", "东湖消防站,消防站,118.9")
    env = os.environ | {"DATABASE_URL": hand_url}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "api.cli",
            "city",
            "import",
            str(files / "manifest.toml"),
            "--replace",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stderr
    assert "nothing was changed" in done.stderr
    body = json.loads((files / "import-report" / "import-report.json").read_text())
    assert body["status"] == "refused" and body["tables"]["facilities"]["rejected"] == 1
    page = (files / "import-report" / "import-report.html").read_text()
    assert "<svg" in page and "outside the district" in page and "<script" not in page
    shutil.rmtree(files / "import-report")


# --- over HTTP -----------------------------------------------------------------------------------


def _zip(folder: Path) -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    return buf.getvalue()


@pytest.fixture(scope="module")
def hand_client(hand_url):
    from fastapi.testclient import TestClient

    from api.app import create_app
    from tests.conftest import settings_for

    with TestClient(create_app(settings_for(hand_url))) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def hand_admin(hand_url) -> dict[str, str]:
    from geo.database import engine
    from geo.policy.users import create_user, issue_token

    with engine(hand_url).begin() as conn:
        create_user(conn, "t_hand_admin", "admin")
        token = issue_token(conn, "t_hand_admin").token
    return {"Authorization": f"Bearer {token}"}


def test_an_administrator_imports_a_district_as_a_zip(hand_url, hand_client, hand_admin, files):
    before = sums(hand_url)
    zipped = _zip(files)
    answer = hand_client.post(
        "/city/imports?replace=true",
        content=zipped,
        headers=hand_admin | {"Content-Type": "application/zip"},
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["status"] == "loaded" and body["tables"]["buildings"]["loaded"] == 16
    again = sums(hand_url)  # the same district again; identity hashes under the service's key
    assert again[0] == before[0]
    assert {t for t, s in again[1].items() if s != before[1][t]} == {"residents"}
    before = again

    _spoil(files, "地址.csv", "B05", "B99")
    refused = hand_client.post(
        "/city/imports?replace=true",
        content=_zip(files),
        headers=hand_admin | {"Content-Type": "application/zip"},
    )
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith("application/problem+json")
    problem = refused.json()
    assert "nothing was changed" in problem["detail"]
    assert problem["report"]["tables"]["addresses"]["rejected"] == 1
    page = hand_client.post(
        "/city/imports?replace=true&f=html",
        content=_zip(files),
        headers=hand_admin | {"Content-Type": "application/zip"},
    )
    assert page.status_code == 422 and "<svg" in page.text and "B99" in page.text
    assert sums(hand_url) == before


@pytest.mark.parametrize(("who", "status"), [(None, 401), ("grid_worker", 403), ("planner", 403)])
def test_only_administrators_may_import(hand_client, hand_url, who, status):
    from geo.database import engine
    from geo.policy.users import create_user, issue_token

    headers = {"Content-Type": "application/zip"}
    if who:
        name = f"t_hand_{who}"
        with engine(hand_url).begin() as conn:
            create_user(conn, name, who, grids=("320199001001001",) if who == "grid_worker" else ())
            headers["Authorization"] = f"Bearer {issue_token(conn, name).token}"
    answer = hand_client.post("/city/imports", content=b"PK\x03\x04", headers=headers)
    assert answer.status_code == status


def test_an_administrator_bound_to_a_district_imports_that_district_only(
    hand_client, hand_url, files, tmp_path
):
    """Bound to the hand district (320199), an administrator cannot import another district
    (the same files under 320198), neither swapping out the city nor beside it; their own
    district they can import again."""
    from geo.database import engine
    from geo.policy.users import create_user, issue_token

    with engine(hand_url).begin() as conn:
        create_user(conn, "t_admin_bound", "admin", district="320199")
        token = issue_token(conn, "t_admin_bound").token
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/zip"}
    other = tmp_path / "other"
    shutil.copytree(files, other)
    areas = other / "行政区划.geojson"
    areas.write_text(areas.read_text(encoding="utf-8").replace("320199", "320198"), "utf-8")
    before = sums(hand_url)
    for options in ("replace=true", "beside=true"):
        refused = hand_client.post(f"/city/imports?{options}", content=_zip(other), headers=headers)
        assert refused.status_code == 422, refused.text
        assert "you administer district 320199 only" in refused.json()["detail"]
        assert sums(hand_url) == before
    allowed = hand_client.post("/city/imports?replace=true", content=_zip(files), headers=headers)
    assert allowed.status_code == 201, allowed.text
    assert sums(hand_url)[0] == before[0]


def test_a_zip_that_would_write_outside_its_folder_is_refused(hand_client, hand_admin, hand_url):
    import io
    import zipfile

    before = sums(hand_url)
    for member in ("../evil.toml", "/etc/evil.toml"):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as archive:
            archive.writestr(member, "[district]\nname = 'x'\n")
        answer = hand_client.post(
            "/city/imports",
            content=buf.getvalue(),
            headers=hand_admin | {"Content-Type": "application/zip"},
        )
        assert answer.status_code == 400 and "outside" in answer.json()["detail"]
    not_a_zip = hand_client.post(
        "/city/imports", content=b"hello", headers=hand_admin | {"Content-Type": "application/zip"}
    )
    assert not_a_zip.status_code == 400
    wrong_type = hand_client.post(
        "/city/imports", content=b"x", headers=hand_admin | {"Content-Type": "text/plain"}
    )
    assert wrong_type.status_code == 415
    assert sums(hand_url) == before


def test_the_readme_manifest_is_a_valid_manifest():
    """The README's commented example is checked like any manifest (it must not rot)."""
    from layers.basedata.manifest import parse

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Bring your own district", 1)[1]
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]
    parsed = parse(example, Path("."), "README.md")
    assert parsed.entries["facilities"][1].defaults == {"kind": "shelter"}
    assert set(parsed.entries) >= {"admin_areas", "grids", "buildings", "houses", "residents"}


def test_a_building_outside_every_grid_and_a_grid_outside_its_community(hand_url, files):
    """Drop the last two grids (the buildings there are in no grid), and name the wrong
    community for the first grid (it lies in 东湖北社区, the file says 西山南村)."""
    import geopandas

    grids = geopandas.read_file(files / "网格.gpkg", layer="网格")
    grids = grids.iloc[:-2].copy()
    grids["所属社区"] = [hand.COMMUNITY_CODES[3]] + [None] * (len(grids) - 1)
    (files / "网格.gpkg").unlink()
    grids.to_file(files / "网格.gpkg", layer="网格", driver="GPKG")
    _spoil(files, "manifest.toml", 'name = "网格名称"', 'name = "网格名称"\ncommunity = "所属社区"')
    report = _refused(hand_url, files, "grids", ("outside its community",))
    assert [i.row for i in report.tables["grids"].issues if i.severity == "rejected"] == [1]
    outside = [i for i in report.tables["buildings"].issues if "outside every grid" in i.reason]
    assert len(outside) == 6  # two buildings in each dropped grid and in the rejected one
