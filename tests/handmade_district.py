"""A district built by hand for the import tests: 测试区, a 4 × 3.3 km rectangle near 119°E,
its files in the shapes districts really send.

- 行政区划.geojson (EPSG:4490): the district and two streets with codes, four communities
  without (their codes are allocated from the street's), parents found by containment;
- 网格.gpkg (EPSG:4549 Gauss-Krüger metres): eight grids, keyed by a local number, no codes;
- 楼栋.csv (EPSG:4549, WKT): sixteen buildings with dwelling and resident counts, no grid;
- 地址.csv (lon/lat), 房屋.csv and 人口.csv (no coordinates: placed at their parents);
- 设施.csv (GCJ-02 lon/lat, as picked in a consumer map app), 隐患.geojson, 资产.geojson,
  道路.geojson, with Chinese field names and Chinese enumeration values.

Every value the tests check is worked out here by hand from the layout: which community each
grid falls in, so which code it gets, and where each feature is.
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas
import numpy as np
import shapely
from shapely.geometry import Point, box

from geo import codes
from geo.crs import transform, transform_geometry, wgs84_to_gcj02

WEST, EAST, SOUTH, NORTH = 119.00, 119.04, 31.60, 31.63
MID_LON, MID_LAT = 119.02, 31.615
DISTRICT = "320199000000"
STREETS = {"320199001000": "东湖街道", "320199100000": "西山镇"}
# street 1 (东湖街道) is the east half, street 2 (西山镇) the west half; each is split into a
# north and a south community, listed in this order in the file
COMMUNITIES = [
    ("东湖北社区", box(MID_LON, MID_LAT, EAST, NORTH)),  # → 320199001001
    ("东湖南社区", box(MID_LON, SOUTH, EAST, MID_LAT)),  # → 320199001002
    ("西山北村", box(WEST, MID_LAT, MID_LON, NORTH)),  # → 320199100001
    ("西山南村", box(WEST, SOUTH, MID_LON, MID_LAT)),  # → 320199100002
]
COMMUNITY_CODES = ["320199001001", "320199001002", "320199100001", "320199100002"]


def _grids() -> list[tuple[str, str, shapely.Polygon, str]]:
    """(local number, name, polygon in 4490, expected code): each community split west | east."""
    out = []
    for (name, area), code in zip(COMMUNITIES, COMMUNITY_CODES, strict=True):
        w, s, e, n = area.bounds
        mid = (w + e) / 2
        for k, part in enumerate((box(w, s, mid, n), box(mid, s, e, n)), start=1):
            number = f"W-{len(out) + 1:02d}"
            out.append((number, f"{name}{k}号网格", part, f"{code}{k:03d}"))
    return out


GRIDS = _grids()


def _buildings() -> list[dict]:
    """Two 20 × 30 m buildings per grid, in Gauss-Krüger metres around the grid's centre."""
    out = []
    for number, _, grid, grid_code in GRIDS:
        c = grid.centroid
        x, y = transform(np.array([c.x]), np.array([c.y]), 4490, 4549)
        for k in (1, 2):
            cx = float(x[0]) + (k - 1.5) * 200.0
            footprint = box(cx - 10, float(y[0]) - 15, cx + 10, float(y[0]) + 15)
            residential = k == 1
            out.append(
                {
                    "楼栋编号": f"B{len(out) + 1:02d}",
                    "名称": f"{number}-{k}号楼",
                    "层数": 6 if residential else 2,
                    "高度": "18.5米" if residential else "",
                    "用途": "住宅" if residential else "商业",
                    "户数": 24 if residential else 0,
                    "人数": 60 if residential else 0,
                    "WKT": footprint.wkt,
                    "expected_code": f"{grid_code}{k:04d}",
                    "metric": footprint,
                }
            )
    return out


BUILDINGS = _buildings()


def _write_csv(path: Path, rows: list[dict], columns: list[str], encoding: str = "utf-8") -> None:
    lines = [",".join(columns)]
    for row in rows:
        cells = []
        for column in columns:
            value = row.get(column, "")
            text = "" if value is None else str(value)
            cells.append(f'"{text}"' if ("," in text or " " in text) else text)
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n", encoding=encoding)


def _geojson(path: Path, features: list[tuple[dict, shapely.Geometry]]) -> None:
    body = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": p, "geometry": shapely.geometry.mapping(g)}
            for p, g in features
        ],
    }
    path.write_text(json.dumps(body, ensure_ascii=False), encoding="utf-8")


def building_point_4490(index: int) -> Point:
    footprint = transform_geometry(np.array([BUILDINGS[index]["metric"]]), 4549, 4490)[0]
    return shapely.point_on_surface(footprint)


#: positions of the facilities in CGCS2000 (what must be stored), written to the file in GCJ-02
FACILITIES = [
    ("东湖幼儿园", "幼儿园", 119.031, 31.622, "120"),
    ("西山社区卫生服务站", "卫生服务站", 119.009, 31.607, "15"),
    ("东湖消防站", "消防站", 119.035, 31.605, ""),
]
ID_NUMBERS = [
    "11010519491231002X",  # the GB 11643 example: a woman born 1949-12-31
    "110105199001011234",
    "320124198503156012",
]


def _id_with_check(first17: str) -> str:
    return first17 + codes.id_number_check(first17)


def write(folder: Path) -> Path:
    """Write every file and the manifest into ``folder``; returns the manifest's path."""
    folder.mkdir(parents=True, exist_ok=True)
    district = box(WEST, SOUTH, EAST, NORTH)
    areas = [({"区划代码": DISTRICT, "名称": "测试区", "级别": "区"}, district)]
    areas += [
        (
            {"区划代码": "320199001000", "名称": "东湖街道", "级别": "街道"},
            box(MID_LON, SOUTH, EAST, NORTH),
        ),
        (
            {"区划代码": "320199100000", "名称": "西山镇", "级别": "镇"},
            box(WEST, SOUTH, MID_LON, NORTH),
        ),
    ]
    areas += [
        ({"区划代码": None, "名称": name, "级别": "村" if name.endswith("村") else "社区"}, geom)
        for name, geom in COMMUNITIES
    ]
    _geojson(folder / "行政区划.geojson", areas)

    grid_frame = geopandas.GeoDataFrame(
        {"网格编号": [g[0] for g in GRIDS], "网格名称": [g[1] for g in GRIDS]},
        geometry=list(transform_geometry(np.array([g[2] for g in GRIDS]), 4490, 4549)),
        crs="EPSG:4549",
    )
    grid_frame.to_file(folder / "网格.gpkg", layer="网格", driver="GPKG")

    _write_csv(
        folder / "楼栋.csv",
        BUILDINGS,
        ["楼栋编号", "名称", "层数", "高度", "用途", "户数", "人数", "WKT"],
    )

    addresses = []
    for i in (0, 2, 4):
        p = building_point_4490(i)
        addresses.append(
            {
                "地址编号": f"A{i:02d}",
                "标准地址": f"测试区{BUILDINGS[i]['名称']}",
                "门牌号": f"{i + 1}号",
                "楼栋编号": BUILDINGS[i]["楼栋编号"],
                "经度": f"{p.x:.8f}",
                "纬度": f"{p.y:.8f}",
            }
        )
    _write_csv(folder / "地址.csv", addresses, list(addresses[0]))

    houses = [
        {"房屋编号": "H1", "楼栋编号": "B01", "房号": "301", "面积": "89.5平方米", "权属": "自住"},
        {"房屋编号": "H2", "楼栋编号": "B01", "房号": "1202", "面积": "120", "权属": "出租"},
        {"房屋编号": "H3", "楼栋编号": "B03", "房号": "101", "面积": "", "权属": ""},
    ]
    _write_csv(folder / "房屋.csv", houses, list(houses[0]))

    people = [
        {"姓名": "张三", "身份证号": ID_NUMBERS[0], "手机": "13800138000", "房屋编号": "H1"},
        {"姓名": "李四", "身份证号": ID_NUMBERS[1], "手机": "", "房屋编号": "H1"},
        {"姓名": "王五", "身份证号": ID_NUMBERS[2], "手机": "", "房屋编号": "H3"},
    ]
    _write_csv(folder / "人口.csv", people, list(people[0]), encoding="gb18030")

    gcj = [wgs84_to_gcj02(np.array([lon]), np.array([lat])) for _, _, lon, lat, _ in FACILITIES]
    facilities = [
        {"名称": name, "类型": kind, "经度": f"{x[0]:.8f}", "纬度": f"{y[0]:.8f}", "容量": cap}
        for (name, kind, _, _, cap), (x, y) in zip(FACILITIES, gcj, strict=True)
    ]
    _write_csv(folder / "设施.csv", facilities, list(facilities[0]))

    hazards = [
        (
            {
                "类别": "消防",
                "等级": "一级",
                "描述": "楼道堆放杂物",
                "发现时间": "2026-03-01 09:30",
                "整改期限": "2026-03-15",
                "销号时间": "2026-03-10 17:00",
            },
            building_point_4490(0),
        ),
        (
            {
                "类别": "燃气",
                "等级": "三级",
                "描述": "燃气软管老化",
                "发现时间": "2026-05-20 14:00",
                "整改期限": "2026-06-20",
                "销号时间": None,
            },
            building_point_4490(6),
        ),
    ]
    _geojson(folder / "隐患.geojson", hazards)

    assets = [
        (
            {
                "资产名称": "原西山供销社",
                "资产类别": "农村集体闲置",
                "状态": "已盘活",
                "权属单位": "西山村委会",
                "建筑面积": 820,
            },
            box(119.005, 31.605, 119.006, 31.606),
        ),
        (
            {
                "资产名称": "东湖老厂房",
                "资产类别": "国有经营性",
                "状态": "招商中",
                "权属单位": "区国资公司",
                "建筑面积": None,
            },
            box(119.030, 31.620, 119.0312, 31.6211),
        ),
    ]
    _geojson(folder / "资产.geojson", assets)

    roads = [
        (
            {"路名": "东湖路", "等级": "主干路", "宽度": 30},
            shapely.LineString([(119.001, 31.61), (119.039, 31.61)]),
        ),
        (
            {"路名": "西山路", "等级": "支路", "宽度": 12},
            shapely.LineString([(119.01, 31.601), (119.01, 31.629)]),
        ),
    ]
    _geojson(folder / "道路.geojson", roads)

    manifest = folder / "manifest.toml"
    manifest.write_text(MANIFEST, encoding="utf-8")
    return manifest


MANIFEST = """\
# 测试区: a hand-built district in the shapes districts send (tests/handmade_district.py)
[district]
name = "测试区"
tolerance_m = 50

[admin_areas]
file = "行政区划.geojson"            # no crs member: RFC 7946 lon/lat
[admin_areas.fields]
code = "区划代码"
name = "名称"
kind = "级别"
[admin_areas.values.kind]
"区" = "district"
"街道" = "street"
"镇" = "town"
"社区" = "community"
"村" = "village"

[grids]
file = "网格.gpkg"                   # EPSG:4549 read from the GeoPackage
key = "网格编号"
[grids.fields]
name = "网格名称"

[buildings]
file = "楼栋.csv"
crs = "EPSG:4549"
key = "楼栋编号"
[buildings.fields]
name = "名称"
floors = "层数"
height_m = "高度"
use = "用途"
dwellings = "户数"
residents = "人数"

[addresses]
file = "地址.csv"
key = "地址编号"
[addresses.fields]
full_name = "标准地址"
door_number = "门牌号"
building = "楼栋编号"

[houses]
file = "房屋.csv"
key = "房屋编号"
[houses.fields]
building = "楼栋编号"
room_number = "房号"
area_m2 = "面积"
tenure = "权属"
[houses.values.tenure]
"自住" = "owner_occupied"
"出租" = "rented"

[residents]
file = "人口.csv"
[residents.fields]
name = "姓名"
id_number = "身份证号"
phone = "手机"
house = "房屋编号"

[facilities]
file = "设施.csv"
crs = "gcj02"
[facilities.fields]
name = "名称"
kind = "类型"
capacity = "容量"
[facilities.values.kind]
"卫生服务站" = "clinic"

[hazards]
file = "隐患.geojson"
[hazards.fields]
category = "类别"
level = "等级"
description = "描述"
found_at = "发现时间"
deadline = "整改期限"
closed_at = "销号时间"
[hazards.values.category]
"消防" = "fire"
"燃气" = "gas"
[hazards.values.level]
"一级" = 1
"二级" = 2
"三级" = 3
"四级" = 4

[idle_assets]
file = "资产.geojson"
[idle_assets.fields]
name = "资产名称"
category = "资产类别"
status = "状态"
owner = "权属单位"
floor_area_m2 = "建筑面积"
[idle_assets.values.category]
"行政事业单位" = "administrative"
"国有经营性" = "state_operating"
"农村集体闲置" = "rural_collective"
"低效用地" = "inefficient_land"
[idle_assets.values.status]
"已录入" = "entered"
"招商中" = "promoted"
"洽谈中" = "negotiating"
"已盘活" = "revitalised"

[roads]
file = "道路.geojson"
[roads.fields]
name = "路名"
class = "等级"
width_m = "宽度"
[roads.values.class]
"主干路" = "arterial"
"次干路" = "secondary"
"支路" = "branch"
"""
