"""``onemap assets import``: the idle-asset register from a spreadsheet, on the demo city.

Each test imports on a connection whose transaction it rolls back (the status history is
append-only: an imported asset could not be deleted again), or runs the command line with
--dry-run or with nothing loadable; the register is left as it was found.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

import pytest
import shapely
from sqlalchemy import text

from layers.basedata.asset_import import import_assets

HEADER = [
    "资产编号",
    "资产名称",
    "资产类别",
    "状态",
    "权属单位",
    "建筑面积(㎡)",
    "用地性质",
    "房屋状况",
    "可招商日期",
    "范围",
    "经度",
    "纬度",
    "地址",
]


@pytest.fixture
def conn(engine):
    """A connection whose transaction is rolled back: the test leaves the register as it was."""
    with engine.connect() as connection:
        transaction = connection.begin()
        yield connection
        transaction.rollback()


@pytest.fixture(scope="module")
def city(engine):
    """Real places of the demo city: three buildings with a building-level address, the
    district's eastern edge, and a code the register holds."""
    with engine.connect() as c:
        rows = c.execute(
            text("""SELECT DISTINCT ON (b.code) b.code, ST_AsText(b.geom),
                           ST_X(ST_PointOnSurface(b.geom)), ST_Y(ST_PointOnSurface(b.geom)),
                           a.code, a.full_name
                    FROM buildings b JOIN addresses a ON a.building_id = b.id
                    WHERE a.level = 'building' ORDER BY b.code, a.code LIMIT 3""")
        ).all()
        east = c.execute(text("SELECT ST_XMax(geom) FROM admin_areas WHERE level = 1")).scalar()
        north = c.execute(text("SELECT ST_YMax(geom) FROM admin_areas WHERE level = 1")).scalar()
        held = c.execute(text("SELECT code FROM assets ORDER BY code LIMIT 1")).scalar()
    buildings = [
        {
            "code": r[0],
            "geom": shapely.from_wkt(r[1]),
            "x": r[2],
            "y": r[3],
            "address": r[4],
            "full_name": r[5],
        }
        for r in rows
    ]
    x0, y0 = east + 0.2, north - 0.1
    outside = shapely.box(x0, y0, x0 + 0.001, y0 + 0.001)
    return {"buildings": buildings, "outside": outside, "held": held}


def _expected_building(conn, footprint) -> str | None:
    """The building the footprint overlaps most, worked out with shapely from the table."""
    rows = conn.execute(
        text("SELECT code, ST_AsText(geom) FROM buildings WHERE geom && ST_GeomFromText(:w, 4490)"),
        {"w": footprint.wkt},
    ).all()
    shares = {code: shapely.from_wkt(w).intersection(footprint).area for code, w in rows}
    shares = {c: a for c, a in shares.items() if a > 0}
    return max(shares, key=lambda c: (shares[c], c)) if shares else None


def _register_rows(city) -> list[list]:
    a, c, d = city["buildings"]
    grown = a["geom"].buffer(0.00003)  # a little over the neighbours, if any are that close
    return [
        [
            "ZC3201179101",
            "城东闲置办公楼",
            "行政事业单位",
            "公开推介",
            "区机关事务管理局",
            800,
            "工业用地",
            "基本完好",
            datetime(2025, 7, 1),
            grown.wkt,
            "",
            "",
            "",
        ],
        [
            "ZC3201179102",
            "无类别的仓库",
            "",
            "",
            "城投集团",
            300,
            "0508",
            "",
            "",
            a["geom"].wkt,
            "",
            "",
            "",
        ],
        [
            "ZC3201179103",
            "区外地块",
            "低效用地再开发",
            "",
            "城投集团",
            0,
            "0601",
            "",
            "",
            city["outside"].wkt,
            "",
            "",
            "",
        ],
        [
            "ZC3201179101",
            "重复编号的门面",
            "国有经营性",
            "",
            "文旅集团",
            120,
            "05H1",
            "完好",
            "",
            a["geom"].wkt,
            "",
            "",
            "",
        ],
        [
            city["held"],
            "台账已有的资产",
            "国有经营性",
            "",
            "文旅集团",
            120,
            "05H1",
            "",
            "",
            a["geom"].wkt,
            "",
            "",
            "",
        ],
        [
            "",
            "村集体闲置厂房",
            "农村集体闲置",
            "",
            "某村村委会",
            650,
            "农村宅基地",
            "危房",
            "2026-01-15",
            "",
            c["x"],
            c["y"],
            "",
        ],
        [
            "",
            "按地址定位的商铺",
            "国有经营性",
            "洽谈中",
            "国资公司",
            90,
            "商业服务业设施用地",
            "一般损坏",
            "",
            "",
            "",
            "",
            d["full_name"],
        ],
    ]


def _write_xlsx(path: Path, rows: list[list]) -> Path:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(HEADER)
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


def _write_csv(path: Path, rows: list[list], encoding: str = "utf-8-sig") -> Path:
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(HEADER)
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
    path.write_bytes(buf.getvalue().encode(encoding))
    return path


def _issues(report) -> dict[int, str]:
    return {i.row: i.reason for i in report.tables["assets"].issues if i.severity == "rejected"}


def _asset(conn, code: str) -> dict:
    row = (
        conn.execute(
            text("SELECT *, ST_AsText(geom) AS wkt FROM assets WHERE code = :c"), {"c": code}
        )
        .mappings()
        .one()
    )
    return dict(row)


def test_a_spreadsheet_with_bad_rows_reports_each_and_loads_the_rest(conn, city, tmp_path):
    a, c, d = city["buildings"]
    before = conn.execute(text("SELECT count(*) FROM assets")).scalar()
    report = import_assets(conn, _write_xlsx(tmp_path / "台账.xlsx", _register_rows(city)))
    assert report.loaded, report.problems
    issues = _issues(report)
    assert set(issues) == {3, 4, 5, 6}, issues  # the header is row 1
    assert issues[3].startswith("缺少资产类别") and "missing category" in issues[3]
    assert issues[4].startswith("空间范围在辖区之外") and "outside the district" in issues[4]
    assert issues[5].startswith("资产编号在表中重复") and "row 2" in issues[5]
    assert issues[6].startswith(f"资产编号 {city['held']} 已在台账中")
    assert report.inserted == 3 and report.updated == 0
    assert conn.execute(text("SELECT count(*) FROM assets")).scalar() == before + 3

    office = _asset(conn, "ZC3201179101")
    assert office["category"] == "administrative"
    assert office["status"] == "promoted"
    assert office["landuse_code"] == "0601"
    assert office["condition"] == "sound"
    assert office["available_from"] == date(2025, 7, 1)
    assert float(office["floor_area_m2"]) == 800
    assert float(office["land_area_m2"]) > 0  # measured from the footprint
    grown = a["geom"].buffer(0.00003)
    assert office["building_code"] == _expected_building(conn, grown) == a["code"]
    assert office["address_code"] == a["address"]
    assert office["area_code"] and office["grid_code"].startswith(office["area_code"])

    # only a point: the footprint and the code of the building it falls in
    rural = conn.execute(text("SELECT code FROM assets WHERE name = '村集体闲置厂房'")).scalar_one()
    farm = _asset(conn, rural)
    assert farm["category"] == "rural_collective" and farm["status"] == "entered"
    assert farm["landuse_code"] == "0702" and farm["condition"] == "dangerous"
    assert farm["available_from"] == date(2026, 1, 15)
    assert shapely.from_wkt(farm["wkt"]).equals(c["geom"])
    assert farm["building_code"] == c["code"] and farm["address_code"] == c["address"]
    assert rural.startswith("ZC320117") and rural not in ("ZC3201179101", city["held"])

    # only an address: the footprint of the address's building, and that address
    shop = _asset(
        conn,
        conn.execute(text("SELECT code FROM assets WHERE name = '按地址定位的商铺'")).scalar_one(),
    )
    assert shapely.from_wkt(shop["wkt"]).equals(d["geom"])
    assert shop["building_code"] == d["code"] and shop["address_code"] == d["address"]
    assert shop["landuse_code"] == "05H1" and shop["status"] == "negotiating"

    history = conn.execute(
        text("""SELECT a.code, h.status, h.changed_by, h.note FROM asset_status_history h
                JOIN assets a ON a.id = h.asset_id
                WHERE a.code IN ('ZC3201179101', :rural, :shop) ORDER BY a.code"""),
        {"rural": rural, "shop": shop["code"]},
    ).all()
    assert len(history) == 3
    assert all(h.changed_by == "cli:import" and h.note == "导入 import" for h in history)
    assert {h.status for h in history} == {"promoted", "entered", "negotiating"}
    assert report.matching["building"] == {"matched": 3, "unmatched": 0}
    assert report.matching["address"]["matched"] == 3
    audit = conn.execute(
        text(
            "SELECT detail FROM audit_log WHERE action = 'import' AND target_type = 'assets' "
            "ORDER BY id DESC LIMIT 1"
        )
    ).scalar_one()
    assert audit["inserted"] == 3 and audit["rejected"] == 4


def test_a_gbk_csv_with_more_bad_rows(conn, city, tmp_path):
    a = city["buildings"][0]
    rows = [
        [
            "ZC3201179201",
            "好门面",
            "国有经营性资产",
            "",
            "文旅集团",
            100,
            "05H1",
            "",
            "",
            a["geom"].wkt,
            "",
            "",
            "",
        ],
        [
            "ZC3201179202",
            "类别不明",
            "其他资产",
            "",
            "文旅集团",
            100,
            "05H1",
            "",
            "",
            a["geom"].wkt,
            "",
            "",
            "",
        ],
        [
            "ZC3201179203",
            "负面积",
            "国有经营性",
            "",
            "文旅集团",
            -5,
            "05H1",
            "",
            "",
            a["geom"].wkt,
            "",
            "",
            "",
        ],
        [
            "ZC32011792",
            "编号太短",
            "国有经营性",
            "",
            "文旅集团",
            10,
            "05H1",
            "",
            "",
            a["geom"].wkt,
            "",
            "",
            "",
        ],
        [
            "ZC3201179205",
            "无位置",
            "国有经营性",
            "",
            "文旅集团",
            10,
            "05H1",
            "",
            "",
            "",
            "",
            "",
            "",
        ],
        [
            "ZC3201179206",
            "区外的点",
            "国有经营性",
            "",
            "文旅集团",
            10,
            "05H1",
            "",
            "",
            "",
            city["outside"].centroid.x,
            city["outside"].centroid.y,
            "",
        ],
    ]
    report = import_assets(conn, _write_csv(tmp_path / "台账.csv", rows, "gb18030"))
    assert report.tables["assets"].files[0].encoding == "GB18030"
    issues = _issues(report)
    assert set(issues) == {3, 4, 5, 6, 7}, issues
    assert issues[3].startswith("资产类别无法识别") and "其他资产" in issues[3]
    assert issues[4].startswith("面积不能为负数")
    assert issues[5].startswith("资产编号格式不对")
    assert issues[6].startswith("缺少空间范围")
    assert "没有标准建筑" in issues[7]
    assert report.inserted == 1
    assert _asset(conn, "ZC3201179201")["category"] == "state_operating"


def test_update_changes_the_asset_in_place_but_not_its_history(conn, city, tmp_path):
    held = _asset(conn, city["held"])
    history = conn.execute(
        text("SELECT count(*) FROM asset_status_history WHERE asset_id = :id"), {"id": held["id"]}
    ).scalar()
    rows = [
        [
            city["held"],
            "改名后的资产",
            "低效用地再开发",
            "已盘活",
            "新的权属单位",
            4321,
            "0601",
            "完好",
            "2027-03-01",
            held["wkt"],
            "",
            "",
            "",
        ]
    ]
    refused = import_assets(conn, _write_csv(tmp_path / "a.csv", rows))
    assert not refused.loaded and "已在台账中" in _issues(refused)[2]
    report = import_assets(conn, _write_csv(tmp_path / "b.csv", rows), update=True)
    assert report.loaded and report.updated == 1 and report.inserted == 0
    after = _asset(conn, city["held"])
    assert after["id"] == held["id"] and after["name"] == "改名后的资产"
    assert after["owner"] == "新的权属单位" and float(after["floor_area_m2"]) == 4321
    assert after["category"] == "inefficient_land" and after["condition"] == "intact"
    assert after["status"] == held["status"]  # a status moves through the lifecycle only
    assert after["version"] > held["version"]
    assert (
        conn.execute(
            text("SELECT count(*) FROM asset_status_history WHERE asset_id = :id"),
            {"id": held["id"]},
        ).scalar()
        == history
    )


def test_a_mapping_file_names_other_columns(conn, city, tmp_path):
    a = city["buildings"][0]
    sheet = tmp_path / "other.csv"
    sheet.write_text(
        f'项目,分类,单位,面积,shape\n测试资产,A类,某单位,55,"{a["geom"].wkt}"\n',
        encoding="utf-8",
    )
    mapping = tmp_path / "mapping.toml"
    mapping.write_text(
        '[assets.fields]\nname = "项目"\ncategory = "分类"\nowner = "单位"\n'
        'floor_area_m2 = "面积"\n[assets.values.category]\n"A类" = "state_operating"\n',
        encoding="utf-8",
    )
    report = import_assets(conn, sheet, mapping=mapping)
    assert report.loaded, (report.problems, _issues(report))
    row = conn.execute(text("SELECT category, owner FROM assets WHERE name = '测试资产'")).one()
    assert tuple(row) == ("state_operating", "某单位")


def test_an_unreadable_file_changes_nothing(conn, tmp_path):
    before = conn.execute(text("SELECT count(*) FROM assets")).scalar()
    bad = tmp_path / "broken.xlsx"
    bad.write_bytes(b"not a workbook")
    report = import_assets(conn, bad)
    assert not report.loaded and "无法读取" in report.problems[0]
    assert conn.execute(text("SELECT count(*) FROM assets")).scalar() == before


def _cli(db_url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", "assets", "import", *args],
        env=os.environ | {"DATABASE_URL": db_url},
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[1],
    )


def test_the_command_line_writes_both_reports(db_url, engine, city, tmp_path):
    with engine.connect() as c:
        before = c.execute(text("SELECT count(*) FROM assets")).scalar()
    sheet = _write_xlsx(tmp_path / "台账.xlsx", _register_rows(city))
    done = _cli(db_url, str(sheet), "--dry-run", "--report", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert "第 3 行" in done.stderr
    body = json.loads((tmp_path / "out" / "asset-import-report.json").read_text("utf-8"))
    assert body["dry_run"] and body["inserted"] == 3 and body["rejected"] == 4
    assert {i["row"] for i in body["tables"]["assets"]["issues"]} >= {3, 4, 5, 6}
    page = (tmp_path / "out" / "asset-import-report.html").read_text("utf-8")
    assert "存量资产台账导入报告" in page and "缺少资产类别" in page
    # nothing loadable: exit 1, reports still written, nothing changed
    bad = _write_csv(tmp_path / "bad.csv", _register_rows(city)[1:3])
    failed = _cli(db_url, str(bad), "--report", str(tmp_path / "bad"))
    assert failed.returncode == 1, failed.stderr
    assert (tmp_path / "bad" / "asset-import-report.html").is_file()
    with engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM assets")).scalar() == before
