"""Departmental ingest on the real database: every format and CRS lands within a metre, bad rows are
rejected with reasons, bad files change nothing, re-ingest is atomic, the API guards the door.

Expected values are computed here independently of the pipeline: true positions are drawn inside
the district, written with geopandas/pyogrio, and compared in metres in EPSG:4549 with pyproj; the
GCJ-02 and BD-09 forward offsets are re-implemented below from the public algorithm.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
import threading
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import geopandas
import numpy as np
import pandas as pd
import pyogrio
import pyproj
import pytest
import shapely
from sqlalchemy import text

from geo.errors import IngestError
from geo.policy.access import LayerAccess
from layers import departments
from layers.catalogue import Ingest
from layers.declaration import Field, departmental_layer
from layers.ingest import drop_layer, ingest

ROOT = Path(__file__).resolve().parents[1]
SHELTERS = ROOT / "fixtures" / "department_files" / "emergency_shelters_gcj02.csv"
PARCELS = ROOT / "fixtures" / "department_files" / "landuse_nrb_dltb_4549.zip"
DEPT = "测试局 (test bureau)"
POINTS = departmental_layer(
    id="ingest_points",
    title_zh="测试点",
    title_en="Test points",
    department=DEPT,
    description="Points for the ingest tests.",
    ingest=Ingest(key="code", match=("grid",), address_field="address"),
    fields=(
        Field("code", ("编号", "code"), title_zh="编号", required=True),
        Field("name", ("名称", "name"), title_zh="名称", required=True),
        Field("address", ("地址", "address"), title_zh="地址"),
        Field("phone", ("联系电话", "phone"), title_zh="联系电话", personal="phone"),
        Field("amount", ("数量", "amount"), type="integer", title_zh="数量"),
    ),
    sharing_level="unconditional",
    opening_level="open",
)
#: polygons, declared as a variant of the points: one required name, matched to grids
AREAS = replace(
    POINTS,
    id="ingest_areas",
    table="layers.ingest_areas",
    title_zh="测试面",
    title_en="Test areas",
    description="Polygons for the ingest tests.",
    sharing_level="conditional",
    ingest=Ingest(match=("grid",)),
    fields=(Field("name", ("名称", "name"), required=True),),
    access=LayerAccess(),
)
TO_METRIC = pyproj.Transformer.from_crs(4490, 4549, always_xy=True)
N = 25


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def declared_and_cleaned(engine):
    """Declare the test layers; afterwards drop every departmental layer this module made."""
    for spec in (POINTS, AREAS):
        departments.register(spec)
    yield
    for spec in (POINTS, AREAS):
        departments.unregister(spec.id)
    with engine.begin() as conn:
        for layer_id in ("ingest_points", "ingest_areas", "emergency_shelters", "landuse_nrb"):
            drop_layer(conn, layer_id)


@pytest.fixture(scope="module")
def tokens(people):
    return {
        "admin": people.token("ingest_admin", "admin"),
        "planner": people.token("ingest_planner", "planner"),
    }


@pytest.fixture(scope="module")
def district(engine):
    """The district from the database (EPSG:4490) and in EPSG:4549."""
    with engine.connect() as conn:
        wkb = conn.execute(
            text("SELECT ST_AsBinary(ST_Union(geom)) FROM admin_areas WHERE level = 1")
        ).scalar_one()
    geom = shapely.from_wkb(bytes(wkb))
    metric = shapely.transform(geom, lambda c: np.column_stack(TO_METRIC.transform(*c.T)))
    return geom, metric


@pytest.fixture(scope="module")
def truth(district):
    """N true CGCS2000 positions at least 500 m inside the district, with names and codes."""
    _, metric = district
    inner = metric.buffer(-500)
    rng = np.random.default_rng(7)
    minx, miny, maxx, maxy = inner.bounds
    xy = []
    while len(xy) < N:
        x, y = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
        if inner.contains(shapely.Point(x, y)):
            xy.append((x, y))
    xy = np.array(xy)
    lon, lat = pyproj.Transformer.from_crs(4549, 4490, always_xy=True).transform(xy[:, 0], xy[:, 1])
    return geopandas.GeoDataFrame(
        {
            "编号": [f"P{i + 1:03d}" for i in range(N)],
            "名称": [f"测试点{i + 1}" for i in range(N)],
            "联系电话": [f"139{i:08d}" for i in range(N)],
        },
        geometry=geopandas.points_from_xy(lon, lat),
        crs=4490,
    )


# --- independent offsets (the public algorithm, scalar) ----------------------------------------


def _gcj02(lon: float, lat: float) -> tuple[float, float]:
    a, ee = 6378245.0, 0.00669342162296594323
    x, y = lon - 105.0, lat - 35.0
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    dlat += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    dlat += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    dlat += (160.0 * math.sin(y / 12.0 * math.pi) + 320 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    dlon += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    dlon += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    dlon += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2 / 3
    rad = lat / 180.0 * math.pi
    magic = 1 - ee * math.sin(rad) ** 2
    dlat = dlat * 180.0 / ((a * (1 - ee)) / (magic * math.sqrt(magic)) * math.pi)
    dlon = dlon * 180.0 / (a / math.sqrt(magic) * math.cos(rad) * math.pi)
    return lon + dlon, lat + dlat


def _bd09(lon: float, lat: float) -> tuple[float, float]:
    glon, glat = _gcj02(lon, lat)
    x_pi = math.pi * 3000.0 / 180.0
    z = math.hypot(glon, glat) + 0.00002 * math.sin(glat * x_pi)
    theta = math.atan2(glat, glon) + 0.000003 * math.cos(glon * x_pi)
    return z * math.cos(theta) + 0.0065, z * math.sin(theta) + 0.006


# --- writers -----------------------------------------------------------------------------------


def _zip_shapefile(frame: geopandas.GeoDataFrame, folder: Path, name: str, **kw) -> Path:
    shp_dir = folder / f"{name}_shp"
    shp_dir.mkdir()
    frame.to_file(shp_dir / f"{name}.shp", **kw)
    target = folder / f"{name}.zip"
    with zipfile.ZipFile(target, "w") as archive:
        for part in sorted(shp_dir.iterdir()):
            archive.write(part, part.name)
    return target


def _csv(rows: list[dict], path: Path, encoding: str = "utf-8-sig") -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path


def _lonlat_rows(truth, offset=None, lon_name="经度", lat_name="纬度") -> list[dict]:
    rows = []
    for (_, r), p in zip(truth.drop(columns="geometry").iterrows(), truth.geometry, strict=True):
        lon, lat = offset(p.x, p.y) if offset else (p.x, p.y)
        rows.append({**r.to_dict(), lon_name: repr(lon), lat_name: repr(lat)})
    return rows


def write_geojson(truth, folder, epsg):
    path = folder / f"points_{epsg}.geojson"
    truth.to_crs(epsg).to_file(path, driver="GeoJSON")
    return path, None


def write_gpkg(truth, folder, epsg):
    path = folder / f"points_{epsg}.gpkg"
    truth.to_crs(epsg).to_file(path, driver="GPKG", layer="points")
    return path, None


def write_shapefile(truth, folder, epsg):
    frame = truth.to_crs(epsg).rename(columns={"编号": "code", "名称": "name", "联系电话": "phone"})
    return _zip_shapefile(frame, folder, f"points_{epsg}", encoding="GBK"), None


def write_csv_gcj02(truth, folder, _):
    return _csv(_lonlat_rows(truth, _gcj02), folder / "gcj.csv", "gbk"), "gcj02"


def write_csv_bd09(truth, folder, _):
    return _csv(_lonlat_rows(truth, _bd09, "lng", "lat"), folder / "bd.csv"), "bd09"


def write_csv_plain(truth, folder, _):
    return _csv(_lonlat_rows(truth, None, "longitude", "latitude"), folder / "plain.csv"), None


FORMATS = {
    "geojson-4490": (write_geojson, 4490, "GeoJSON", "EPSG:4490"),
    "geojson-4326": (write_geojson, 4326, "GeoJSON", "EPSG:4326"),
    "geojson-3857": (write_geojson, 3857, "GeoJSON", "EPSG:3857"),
    "gpkg-4549": (write_gpkg, 4549, "GeoPackage", "EPSG:4549"),
    "shapefile-4549": (write_shapefile, 4549, "Shapefile (zip)", "EPSG:4549"),
    "shapefile-4528-prefixed": (write_shapefile, 4528, "Shapefile (zip)", "EPSG:4528"),
    "csv-gcj02-gbk": (write_csv_gcj02, None, "CSV (lon/lat)", "GCJ-02"),
    "csv-bd09": (write_csv_bd09, None, "CSV (lon/lat)", "BD-09"),
    "csv-assumed-4490": (write_csv_plain, None, "CSV (lon/lat)", "EPSG:4490"),
}


def _measured(kind: str, errors: np.ndarray) -> float:
    """The worst error, printed for the record (pytest -s shows it)."""
    worst = float(np.max(errors))
    print(f"\naccuracy {kind}: max {worst:.3e} m over {len(errors)} points")
    return worst


def _landed(engine, layer_id: str) -> dict[int, tuple[float, float]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(f'SELECT id, ST_X(geom), ST_Y(geom) FROM layers."{layer_id}" ORDER BY id')
        ).all()
    return {int(r[0]): (r[1], r[2]) for r in rows}


def _errors_m(landed: dict[int, tuple[float, float]], truth_xy: dict[int, tuple[float, float]]):
    ids = sorted(truth_xy)
    ax, ay = TO_METRIC.transform([landed[i][0] for i in ids], [landed[i][1] for i in ids])
    bx, by = TO_METRIC.transform([truth_xy[i][0] for i in ids], [truth_xy[i][1] for i in ids])
    return np.hypot(np.subtract(ax, bx), np.subtract(ay, by))


def _run(engine, path, layer_id="ingest_points", crs=None, dept=DEPT):
    with engine.begin() as conn:
        return ingest(conn, path, layer_id, dept, crs)


# --- every format and CRS within a metre -------------------------------------------------------


@pytest.mark.parametrize("kind", list(FORMATS))
def test_each_format_and_crs_lands_each_point_within_a_metre(engine, truth, tmp_path, kind):
    writer, epsg, fmt, crs_label = FORMATS[kind]
    path, crs = writer(truth, tmp_path, epsg)
    report = _run(engine, path, crs=crs)
    assert (report.file_format, report.source_crs) == (fmt, crs_label)
    assert (report.rows_in, report.loaded, report.rejected) == (N, N, 0)
    landed = _landed(engine, "ingest_points")
    assert sorted(landed) == list(range(1, N + 1))
    true_xy = {i + 1: (p.x, p.y) for i, p in enumerate(truth.geometry)}
    errors = _errors_m(landed, true_xy)
    assert _measured(kind, errors) < 1.0
    with engine.connect() as conn:
        names = conn.execute(text("SELECT name FROM layers.ingest_points ORDER BY id")).scalars()
        assert list(names) == list(truth["名称"])  # text survives GBK and UTF-8 alike


def test_csv_with_an_address_column_only_is_geocoded_onto_the_standard_points(engine, tmp_path):
    """Exact names, and the same names as people write them, land on the standard address."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("""SELECT full_name, aliases, ST_X(geom), ST_Y(geom) FROM addresses
                    WHERE level = 'building' ORDER BY id LIMIT 20""")
        ).all()
    assert len(rows) == 20

    def as_written(i: int, full: str, aliases: list[str]) -> str:
        if i % 4 == 0:
            return full
        if i % 4 == 1:  # province spelt out, full-width digits, spaces
            wide = full.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
            return "江苏省" + wide.replace("溧水区", "溧水区 ")
        if i % 4 == 2:  # 栋 for 幢, without 南京市
            return full.removeprefix("南京市").replace("幢", "栋")
        return full.replace("幢", "号楼")

    data = [
        {"编号": f"A{i:03d}", "名称": f"地址点{i}", "地址": as_written(i, r[0], r[1])}
        for i, r in enumerate(rows)
    ]
    report = _run(engine, _csv(data, tmp_path / "addresses.csv"))
    assert report.file_format == "CSV (address)"
    assert (report.rows_in, report.loaded, report.rejected) == (20, 20, 0)
    errors = _errors_m(
        _landed(engine, "ingest_points"), {i + 1: (r[2], r[3]) for i, r in enumerate(rows)}
    )
    assert _measured("csv-address", errors) < 1.0
    assert report.matched.get("geocoded_exact", 0) == 5
    assert sum(v for k, v in report.matched.items() if k.startswith("geocoded_")) == 20


def test_a_gbk_shapefile_without_its_cpg_still_reads_chinese(engine, truth, tmp_path):
    frame = truth.to_crs(4549).rename(columns={"编号": "code", "名称": "name", "联系电话": "phone"})
    folder = tmp_path / "nocpg"
    folder.mkdir()
    frame.to_file(folder / "points.shp", encoding="GBK")
    (folder / "points.cpg").unlink()
    with zipfile.ZipFile(tmp_path / "nocpg.zip", "w") as archive:
        for part in sorted(folder.iterdir()):
            archive.write(part, part.name)
    report = _run(engine, tmp_path / "nocpg.zip")
    assert report.encoding in ("CP936", "GB18030") and report.loaded == N
    with engine.connect() as conn:
        names = conn.execute(text("SELECT name FROM layers.ingest_points ORDER BY id")).scalars()
        assert list(names) == list(truth["名称"])


def test_a_file_for_another_departments_layer_is_refused(engine, tmp_path):
    before = _state(engine, "ingest_points")
    with pytest.raises(IngestError, match="belongs to 区应急管理局"):
        _run(engine, SHELTERS, "emergency_shelters", "gcj02", dept="区自然资源和规划局")
    assert _state(engine, "ingest_points") == before


# --- bad rows: rejected one by one, with reasons -----------------------------------------------


def _issues(report, kind):
    return {i.row: i.reason for i in report.issues if i.kind == kind}


def test_mixed_csv_loads_the_good_rows_and_rejects_each_bad_one_with_its_reason(
    engine, truth, tmp_path
):
    good = _lonlat_rows(truth.iloc[:6])
    rows = [
        good[0],  # 1 good
        {**good[1], "经度": "", "纬度": ""},  # 2 no coordinates
        {**good[2], "经度": "118.30", "纬度": "31.60"},  # 3 outside (west of Nanjing)
        {**good[3], "经度": "东经119度", "纬度": "31.6"},  # 4 unparsable
        good[4],  # 5 good
        {**good[5], "编号": good[0]["编号"]},  # 6 repeats row 1's key
        {**good[5], "编号": "P900", "名称": ""},  # 7 no name (required)
        {**good[5], "编号": "P901", "数量": "许多"},  # 8 good, with an amount that is no number
        {**good[5], "编号": "P902", "经度": "500123.4", "纬度": "3498765.2"},  # 9 metres
    ]
    for r in rows:
        r.setdefault("数量", "3")
    report = _run(engine, _csv(rows, tmp_path / "mixed.csv"))
    rejected = _issues(report, "rejected")
    assert set(rejected) == {2, 3, 4, 6, 7, 9}
    assert rejected[2] == "missing geometry"
    assert rejected[3].startswith("outside the district")
    assert rejected[4].startswith("unparsable coordinates")
    assert rejected[6].startswith("duplicate key code='P001'")
    assert "missing required field" in rejected[7]
    assert "metres" in rejected[9]
    assert report.rows_in == 9 == report.loaded + report.rejected
    assert report.loaded == 3
    with engine.connect() as conn:
        kept = conn.execute(text("SELECT id, amount FROM layers.ingest_points ORDER BY id")).all()
    assert [r[0] for r in kept] == [1, 5, 8]
    assert kept[2][1] is None and "许多" in _issues(report, "warning")[8]


def test_mixed_polygons_are_repaired_or_rejected_and_reported(engine, district, tmp_path):
    _, metric = district
    c = metric.centroid
    to_lonlat = pyproj.Transformer.from_crs(4549, 4490, always_xy=True)

    def square(x, y, size=100.0, bowtie=False):
        pts = [(x, y), (x + size, y), (x + size, y + size), (x, y + size)]
        if bowtie:
            pts = [pts[0], pts[2], pts[1], pts[3]]
        lon, lat = to_lonlat.transform(*zip(*pts, strict=True))
        return shapely.Polygon(list(zip(lon, lat, strict=True)))

    west = metric.bounds[0] - 10_000
    geoms = [
        square(c.x, c.y),  # 1 good
        square(c.x + 500, c.y, bowtie=True),  # 2 bow-tie: repaired
        None,  # 3 no geometry
        square(west, c.y),  # 4 outside
        shapely.Polygon(),  # 5 empty
        square(c.x - 500, c.y),  # 6 good
    ]
    frame = geopandas.GeoDataFrame(
        {"名称": [f"面{i}" for i in range(1, 7)]}, geometry=geoms, crs=4490
    )
    path = tmp_path / "areas.geojson"
    frame.to_file(path, driver="GeoJSON")
    with engine.begin() as conn:
        report = ingest(conn, path, "ingest_areas", DEPT)
    rejected, repaired = _issues(report, "rejected"), _issues(report, "repaired")
    assert set(rejected) == {3, 4, 5} and set(repaired) == {2}
    assert "Self-intersection" in repaired[2]
    assert rejected[4].startswith("outside the district")
    assert {rejected[3], rejected[5]} <= {"missing geometry", "empty geometry"}
    assert (report.rows_in, report.loaded, report.repaired, report.rejected) == (6, 3, 1, 3)
    assert report.geometry_type == "MULTIPOLYGON"  # the repaired bow-tie is two triangles
    with engine.connect() as conn:
        stored = conn.execute(
            text(
                "SELECT id, ST_IsValid(geom), ST_AsBinary(geom) FROM layers.ingest_areas ORDER BY id"
            )
        ).all()
    assert [r[0] for r in stored] == [1, 2, 6] and all(r[1] for r in stored)
    bowtie = shapely.from_wkb(bytes(stored[1][2]))
    expected = shapely.make_valid(geoms[1])  # GEOS, independently
    assert abs(bowtie.area - expected.area) < 1e-12 and len(bowtie.geoms) == 2


def test_mixed_address_csv_rejects_what_matches_nothing_or_too_much(engine, tmp_path):
    with engine.connect() as conn:
        full, lon, lat = conn.execute(
            text("SELECT full_name, ST_X(geom), ST_Y(geom) FROM addresses ORDER BY id LIMIT 1")
        ).one()
        shared = conn.execute(
            text("""SELECT a FROM (SELECT unnest(aliases) a FROM addresses) s
                    GROUP BY a HAVING count(*) > 1 ORDER BY a LIMIT 1""")
        ).scalar_one()
    rows = [
        {"编号": "A1", "名称": "好", "地址": full},
        {"编号": "A2", "名称": "无", "地址": "南京市溧水区不存在路999号"},
        {"编号": "A3", "名称": "多", "地址": shared},
        {"编号": "A4", "名称": "空", "地址": ""},
    ]
    report = _run(engine, _csv(rows, tmp_path / "addr_mixed.csv"))
    rejected = _issues(report, "rejected")
    assert set(rejected) == {2, 3, 4}
    assert "no standard address matches" in rejected[2]
    assert "ambiguous" in rejected[3]
    assert "empty address" in rejected[4]
    assert (report.rows_in, report.loaded, report.rejected) == (4, 1, 3)
    assert _landed(engine, "ingest_points") == {1: (lon, lat)}


# --- a file that fails as a whole changes nothing -----------------------------------------------


def _state(engine, layer_id: str) -> dict:
    """Row checksum of the layer, its catalogue entry, report and audit counts, tables."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                f"SELECT count(*), md5(string_agg(md5(t::text), '' ORDER BY id)) FROM layers.\"{layer_id}\" t"
            )
        ).one()
        entry = conn.execute(
            text("SELECT md5(c::text) FROM layer_catalogue c WHERE id = :id"), {"id": layer_id}
        ).scalar()
        reports = conn.execute(text("SELECT count(*), max(id) FROM ingest.reports")).one()
        audit = conn.execute(text("SELECT count(*) FROM audit_log")).scalar()
        tables = conn.execute(
            text(
                "SELECT array_agg(tablename ORDER BY tablename) FROM pg_tables WHERE schemaname = 'layers'"
            )
        ).scalar()
    return {
        "rows": tuple(rows),
        "entry": entry,
        "reports": tuple(reports),
        "audit": audit,
        "tables": tables,
    }


def _corrupt(kind: str, folder: Path) -> Path:
    if kind == "truncated-zip":
        data = PARCELS.read_bytes()
        path = folder / "points.zip"
        path.write_bytes(data[: len(data) // 2])
    elif kind == "garbage-geojson":
        path = folder / "points.geojson"
        path.write_bytes(hashlib.sha512(b"garbage").digest() * 50)
    elif kind == "csv-without-positions":
        path = _csv([{"编号": "X1", "名称": "无位置"}], folder / "nowhere.csv")
    else:  # a GeoPackage whose only table has no geometry
        path = folder / "table.gpkg"
        pyogrio.write_dataframe(pd.DataFrame({"name": ["a"]}), path, layer="t", driver="GPKG")
    return path


@pytest.mark.parametrize(
    "kind", ["truncated-zip", "garbage-geojson", "csv-without-positions", "gpkg-without-geometry"]
)
def test_a_corrupt_file_changes_nothing(engine, truth, tmp_path, kind):
    path, _ = write_geojson(truth, tmp_path, 4490)
    _run(engine, path)
    before = _state(engine, "ingest_points")
    assert before["rows"][0] == N
    with pytest.raises(IngestError) as caught:
        _run(engine, _corrupt(kind, tmp_path))
    assert str(caught.value)
    assert _state(engine, "ingest_points") == before


# --- the two departmental fixtures -------------------------------------------------------------


def test_the_emergency_bureaus_shelters_land_within_a_metre_of_the_truth(engine):
    from fixtures.department_files.make_files import shelters

    truth_rows = shelters()
    with SHELTERS.open(encoding="utf-8-sig") as handle:
        written = list(csv.DictReader(handle))
    for t, w in zip(truth_rows, written, strict=True):  # the file really is GCJ-02
        glon, glat = _gcj02(t["true_lon"], t["true_lat"])
        assert abs(float(w["经度"]) - glon) < 1e-6 and abs(float(w["纬度"]) - glat) < 1e-6
    with engine.begin() as conn:
        report = ingest(conn, SHELTERS, "emergency_shelters", "区应急管理局", "gcj02")
    assert (report.rows_in, report.loaded, report.repaired, report.rejected) == (40, 40, 0, 0)
    assert report.source_crs == "GCJ-02" and report.crs_origin.startswith("given")
    assert report.matched["grid"] == 40
    assert sum(report.matched[k] for k in ("address_text", "address_nearest", "address_none")) == 40
    errors = _errors_m(
        _landed(engine, "emergency_shelters"),
        {i + 1: (t["true_lon"], t["true_lat"]) for i, t in enumerate(truth_rows)},
    )
    assert _measured("fixture-shelters-gcj02", errors) < 1.0
    with engine.connect() as conn:
        first = conn.execute(
            text(
                "SELECT code, name, capacity, effective_area_m2 FROM layers.emergency_shelters WHERE id = 1"
            )
        ).one()
    assert first == (
        written[0]["编号"],
        written[0]["名称"],
        int(written[0]["可容纳人数"]),
        float(written[0]["有效避难面积(平方米)"]),
    )


def test_the_land_use_parcels_repair_their_bow_ties_and_reject_the_outsider(engine):
    from fixtures.department_files.make_files import BOWTIES, OUTSIDE, parcels

    source = parcels()
    with engine.begin() as conn:
        report = ingest(conn, PARCELS, "landuse_nrb", "区自然资源和规划局")
    assert report.file_format == "Shapefile (zip)"
    assert (report.source_crs, report.crs_origin) == ("EPSG:4549", "file (.prj)")
    assert report.encoding == "GBK"
    assert (report.rows_in, report.loaded, report.repaired, report.rejected) == (200, 199, 3, 1)
    assert set(_issues(report, "repaired")) == {i + 1 for i in BOWTIES}
    assert _issues(report, "rejected")[OUTSIDE + 1].startswith("outside the district")
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT id, class_code, class_name, owner_unit, ST_AsBinary(geom) FROM layers.landuse_nrb ORDER BY id"
            )
        ).all()
    assert len(rows) == 199
    for row_id, code, name, owner, wkb in rows:
        expected = source.iloc[row_id - 1]
        assert (code, name, owner) == (expected.DLBM, expected.DLMC, expected.QSDWMC)  # GBK text
        stored_m = shapely.transform(
            shapely.from_wkb(bytes(wkb)), lambda c: np.column_stack(TO_METRIC.transform(*c.T))
        )
        assert abs(stored_m.area - expected.TBMJ) < 0.01 * expected.TBMJ


# --- re-ingest: atomic, and a replacement -------------------------------------------------------


def test_reingest_replaces_atomically_and_never_duplicates(engine, district, tmp_path):
    _, metric = district
    c = metric.centroid
    to_lonlat = pyproj.Transformer.from_crs(4549, 4490, always_xy=True)

    def points(n: int) -> Path:
        rng = np.random.default_rng(n)
        x, y = c.x + rng.uniform(-3000, 3000, n), c.y + rng.uniform(-3000, 3000, n)
        lon, lat = to_lonlat.transform(x, y)
        rows = [
            {"编号": f"R{i}", "名称": f"点{i}", "经度": repr(float(lo)), "纬度": repr(float(la))}
            for i, (lo, la) in enumerate(zip(lon, lat, strict=True))
        ]
        return _csv(rows, tmp_path / f"points_{n}.csv")

    old, new = 300, 2000
    _run(engine, points(old))
    seen: list[int] = []
    errors: list[str] = []
    stop = threading.Event()

    def reader():
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            while not stop.is_set():
                try:
                    seen.append(
                        conn.execute(text("SELECT count(*) FROM layers.ingest_points")).scalar()
                    )
                except Exception as exc:  # any error is a failure of atomicity
                    errors.append(repr(exc))

    thread = threading.Thread(target=reader)
    thread.start()
    time.sleep(0.2)
    with engine.begin() as conn:
        ingest(conn, points(new), "ingest_points", DEPT)
        time.sleep(0.5)  # hold the swapped tables uncommitted: readers wait, then see the new one
    time.sleep(0.2)
    stop.set()
    thread.join()
    assert errors == []
    assert set(seen) == {old, new}, sorted(set(seen))
    assert seen.index(new) > 0 and seen[-1] == new
    assert all(n == new for n in seen[seen.index(new) :])  # never back to the old layer
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM layers.ingest_points")).scalar() == new
        leftovers = conn.execute(
            text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'layers' AND tablename LIKE '%\\_\\_new'"
            )
        ).all()
        entry = conn.execute(
            text("SELECT feature_count FROM layer_catalogue WHERE id = 'ingest_points'")
        ).scalar()
    assert leftovers == [] and entry == new


# --- clear refusals: command line and API ------------------------------------------------------


def _refusals(truth, folder: Path) -> dict[str, tuple[Path, str, str | None, str]]:
    """name → (file, layer, --crs, a phrase the message must contain)."""
    gk = truth.to_crs(4549)
    metres = [
        {"编号": f"M{i}", "名称": "m", "经度": repr(p.x), "纬度": repr(p.y)}
        for i, p in enumerate(gk.geometry)
    ]
    prefixed = [{**r, "经度": repr(float(r["经度"]) + 40_000_000)} for r in metres]
    plain, _ = write_csv_plain(truth, folder, None)
    swapped = [
        {**r, "longitude": r["latitude"], "latitude": r["longitude"]}
        for r in _lonlat_rows(truth, None, "longitude", "latitude")
    ]
    return {
        "swapped-lon-lat": (
            _csv(swapped, folder / "swapped.csv"),
            "ingest_points",
            None,
            "swapped",
        ),
        "metres-as-degrees": (_csv(metres, folder / "gk.csv"), "ingest_points", None, "EPSG:4549"),
        "prefixed-metres-as-degrees": (
            _csv(prefixed, folder / "gk40.csv"),
            "ingest_points",
            None,
            "EPSG:4528",
        ),
        "unknown-crs": (plain, "ingest_points", "EPSG:999999", "EPSG:999999"),
        "nonsense-crs": (plain, "ingest_points", "wgs-something", "not a CRS"),
        "wrong-zone-crs": (
            write_gpkg(truth, folder, 4549)[0],
            "ingest_points",
            "EPSG:4548",
            "outside the district",
        ),
        "degrees-as-metres": (plain, "ingest_points", "EPSG:4549", "look like degrees"),
        "unknown-layer": (plain, "no_such_layer", None, "no departmental layer 'no_such_layer'"),
    }


REFUSALS = [
    "swapped-lon-lat",
    "metres-as-degrees",
    "prefixed-metres-as-degrees",
    "unknown-crs",
    "nonsense-crs",
    "wrong-zone-crs",
    "degrees-as-metres",
    "unknown-layer",
]


@pytest.fixture
def cli_env(db_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", db_url)


@pytest.mark.parametrize("case", REFUSALS)
def test_the_command_line_refuses_clearly_and_exits_non_zero(
    engine, truth, tmp_path, cli_env, case
):
    from typer.testing import CliRunner

    from api.cli import app

    path, layer, crs, phrase = _refusals(truth, tmp_path)[case]
    before = _state(engine, "ingest_points")
    args = ["layers", "ingest", str(path), "--layer", layer, "--dept", DEPT]
    result = CliRunner().invoke(app, args + (["--crs", crs] if crs else []))
    assert result.exit_code == 1, result.output
    assert phrase in re.sub(r"\s+", " ", result.output)
    assert "nothing was changed" in result.output
    assert _state(engine, "ingest_points") == before


def test_the_command_line_ingests_and_prints_the_report(engine, tmp_path, cli_env):
    from typer.testing import CliRunner

    from api.cli import app

    result = CliRunner().invoke(
        app,
        ["layers", "ingest", str(PARCELS), "--layer", "landuse_nrb", "--dept", "自然资源局"],
    )
    assert result.exit_code == 0, result.output
    assert "loaded 199" in result.output and "rejected 1" in result.output
    listed = CliRunner().invoke(app, ["layers", "list"])
    assert listed.exit_code == 0 and "emergency_shelters" in listed.output


def _upload(client, layer, path: Path, token: str | None, dept=DEPT, crs=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = {"dept": dept} | ({"crs": crs} if crs else {})
    with path.open("rb") as handle:
        return client.post(
            f"/layers/{layer}/ingest",
            headers=headers,
            data=data,
            files={"file": (path.name, handle)},
        )


@pytest.mark.parametrize("case", REFUSALS)
def test_the_api_refuses_the_same_with_400_problem_json(
    client, engine, truth, tmp_path, tokens, case
):
    path, layer, crs, phrase = _refusals(truth, tmp_path)[case]
    before = _state(engine, "ingest_points")
    response = _upload(client, layer, path, tokens["admin"], crs=crs)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert phrase in response.json()["detail"]
    assert _state(engine, "ingest_points") == before


def test_uploads_need_an_administrator_and_a_reasonable_size(
    client, db_url, engine, truth, tmp_path, tokens
):
    from fastapi.testclient import TestClient

    from api.app import create_app
    from geo.settings import LimitSettings
    from tests.conftest import settings_for

    path, _ = write_geojson(truth, tmp_path, 4490)
    before = _state(engine, "ingest_points")
    anonymous = _upload(client, "ingest_points", path, None)
    planner = _upload(client, "ingest_points", path, tokens["planner"])
    small = settings_for(db_url, limits=LimitSettings(max_upload_bytes=1_000))
    with TestClient(create_app(small)) as small_client:  # an app built with its own limit
        too_big = _upload(small_client, "ingest_points", path, tokens["admin"])
    assert path.stat().st_size > 1_000
    assert [anonymous.status_code, planner.status_code, too_big.status_code] == [401, 403, 413]
    for r in (anonymous, planner, too_big):
        assert r.headers["content-type"].startswith("application/problem+json")
    assert _state(engine, "ingest_points") == before


def test_an_api_upload_answers_201_with_the_report_and_where_it_lives(
    client, engine, truth, tmp_path, tokens
):
    path, crs = write_csv_gcj02(truth, tmp_path, None)
    response = _upload(client, "ingest_points", path, tokens["admin"], crs="GCJ-02")
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["rows_in"], body["loaded"], body["source_crs"]) == (N, N, "GCJ-02")
    assert body["actor"] == "ingest_admin" and body["file_name"] == "gcj.csv"
    location = response.headers["location"]
    assert location.endswith(f"/ingest/reports/{body['id']}")
    again = client.get(location).json()
    assert (again["id"], again["loaded"], again["issues"]) == (body["id"], N, [])
    page = client.get(location, params={"f": "html"})
    assert page.status_code == 200 and "入库质量报告" in page.text and "GCJ-02" in page.text
    listed = client.get("/layers/ingest_points/reports").json()["reports"]
    assert listed[0]["id"] == body["id"]
    assert client.get("/layers/ingest_points/reports", params={"f": "html"}).status_code == 200
    with engine.connect() as conn:
        audited = conn.execute(
            text("""SELECT actor, detail->>'report' FROM audit_log
                    WHERE action = 'ingest' AND target_id = 'ingest_points' ORDER BY id DESC LIMIT 1""")
        ).one()
    assert audited == ("ingest_admin", str(body["id"]))


def test_a_report_with_rejections_draws_them_on_its_page(client, engine, truth, tmp_path):
    rows = _lonlat_rows(truth.iloc[:2])
    rows[1].update({"经度": "118.30", "纬度": "31.60"})
    report = _run(engine, _csv(rows, tmp_path / "one_outside.csv"))
    page = client.get(f"/ingest/reports/{report.id}", params={"f": "html"}).text
    located = json.loads(re.search(r'id="features">(.*?)</script>', page, re.S).group(1))
    assert [f["id"] for f in located["features"]] == [2]
    assert "leaflet.js" in page and "outside the district" in page


# --- served by the read path, personal data masked ---------------------------------------------


def test_the_ingested_layer_is_served_with_personal_fields_masked(client, engine, truth, tmp_path):
    path, _ = write_geojson(truth, tmp_path, 4490)
    _run(engine, path)
    body = client.get("/collections/ingest_points/items", params={"limit": 100}).json()
    assert body["numberMatched"] == N and len(body["features"]) == N
    phones = {f["id"]: f["properties"]["phone"] for f in body["features"]}
    for i, raw in enumerate(truth["联系电话"], start=1):
        assert phones[i] != raw and re.fullmatch(r"\d{3}\*{4}\d{4}", phones[i])
        assert phones[i][:3] == raw[:3] and phones[i][-4:] == raw[-4:]
    lon, lat = body["features"][0]["geometry"]["coordinates"]
    assert abs(lon - truth.geometry[0].x) < 1e-7 and abs(lat - truth.geometry[0].y) < 1e-7
    with engine.begin() as conn:
        ingest(conn, SHELTERS, "emergency_shelters", "区应急管理局", "gcj02")
    with SHELTERS.open(encoding="utf-8-sig") as handle:
        raw = dict(enumerate(csv.DictReader(handle), start=1))
    served = client.get("/collections/emergency_shelters/items", params={"limit": 100}).json()
    assert served["numberMatched"] == 40
    for f in served["features"]:
        name, phone = f["properties"]["contact_name"], f["properties"]["contact_phone"]
        original = raw[f["id"]]
        assert name == original["联系人"][0] + "*" * (len(original["联系人"]) - 1)
        assert phone == original["联系电话"][:3] + "****" + original["联系电话"][-4:]
        assert f["properties"]["name"] == original["名称"]  # not personal: as given
