"""A tiny district for the check-up, laid out in metres so that every indicator can be worked out
by hand, written as one GeoPackage (EPSG:4549) and a manifest, and imported like a real district.

Origin (X0, Y0) in CGCS2000 / 3-degree GK CM 120°E; all positions below are offsets in metres.

- District 320199000000: 2,000 × 1,000 m. Streets: west 320199001000 (x 0–1,000), east
  320199002000 (x 1,000–2,000); one community each (…001001, …002001); two grids each, split at
  x = 500 and x = 1,500 (…001001001, …001001002, …002001001, …002001002).
- Buildings (20 × 20 m, their point on surface at the centre):
  B1 (250, 500) residential, 10 dwellings, 30 residents, estate 老街小区 built 1995, 18 m;
  B2 (750, 500) residential, 20 dwellings, 50 residents, estate 新城花园 built 2018, 85 m;
  B3 (1250, 500) residential, 30 dwellings, 60 residents, no estate, built 2005, 30 m;
  B4 (1750, 500) commercial, 120 m. Dwellings 60, residents 140 in all.
- Facilities: kindergarten (250, 750); primary school (1000, 500); clinic (1250, 800); fire
  station (1250, 100); shelter (1700, 900) of 280 m².
- Parks: A 100 × 50 m = 5,000 m² at x 200–300, y 100–150; B 50 × 60 m = 3,000 m² at x 1,400–1,450,
  y 420–480.
- Roads: R1 (0, 100)–(2000, 100) and R2 (1250, 100)–(1250, 1000), both branch roads (25 km/h);
  they cross at the fire station.
- Land use: one housing parcel (0701) x 0–1,000, y 0–700 (0.7 km²); the rest is not mapped.
- Hazards (the run is as of 2026-06-30; its window is the year before): H1 W1 due 2026-01-15,
  closed 01-10 (on time); H2 W1 due 02-15, closed 03-01 (late); H3 E1 due 03-31, rectifying; H4 E1 due
  07-31 (not yet due); H5 E2 due 2025-01-31 (before the window).
- Assets: one revitalised (W1), one promoted (E1).
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
from shapely.geometry import LineString, Point, box

X0, Y0 = 514_000.0, 3_500_000.0
CRS = "EPSG:4549"
W_STREET, E_STREET = "320199001000", "320199002000"
W_COMMUNITY, E_COMMUNITY = "320199001001", "320199002001"
GRIDS = {  # code → x range
    "320199001001001": (0, 500),
    "320199001001002": (500, 1000),
    "320199002001001": (1000, 1500),
    "320199002001002": (1500, 2000),
}


def at(x: float, y: float) -> Point:
    return Point(X0 + x, Y0 + y)


def rect(x1, y1, x2, y2):
    return box(X0 + x1, Y0 + y1, X0 + x2, Y0 + y2)


def square(x: float, y: float, half: float = 10.0):
    return rect(x - half, y - half, x + half, y + half)


def _frame(rows: list[dict]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(rows, geometry="geom", crs=CRS)


def tables() -> dict[str, gpd.GeoDataFrame]:
    admin = [
        dict(
            code="320199000000",
            name="体检测试区",
            level=1,
            kind="district",
            parent_code=None,
            geom=rect(0, 0, 2000, 1000),
        ),
        dict(
            code=W_STREET,
            name="西街道",
            level=2,
            kind="street",
            parent_code="320199000000",
            geom=rect(0, 0, 1000, 1000),
        ),
        dict(
            code=E_STREET,
            name="东镇",
            level=2,
            kind="town",
            parent_code="320199000000",
            geom=rect(1000, 0, 2000, 1000),
        ),
        dict(
            code=W_COMMUNITY,
            name="西社区",
            level=3,
            kind="community",
            parent_code=W_STREET,
            geom=rect(0, 0, 1000, 1000),
        ),
        dict(
            code=E_COMMUNITY,
            name="东社区",
            level=3,
            kind="community",
            parent_code=E_STREET,
            geom=rect(1000, 0, 2000, 1000),
        ),
    ]
    grids = [
        dict(
            code=code,
            name=f"{code[-3:]}号网格",
            community_code=code[:12],
            households=None,
            geom=rect(x1, 0, x2, 1000),
        )
        for code, (x1, x2) in GRIDS.items()
    ]
    buildings = [
        dict(
            code="3201990010010010001",
            name="B1",
            floors=6,
            height_m=18.0,
            use="residential",
            year_built=1995,
            estate="老街小区",
            dwellings=10,
            residents=30,
            geom=square(250, 500),
        ),
        dict(
            code="3201990010010020001",
            name="B2",
            floors=28,
            height_m=85.0,
            use="residential",
            year_built=2018,
            estate="新城花园",
            dwellings=20,
            residents=50,
            geom=square(750, 500),
        ),
        dict(
            code="3201990020010010001",
            name="B3",
            floors=10,
            height_m=30.0,
            use="residential",
            year_built=2005,
            estate=None,
            dwellings=30,
            residents=60,
            geom=square(1250, 500),
        ),
        dict(
            code="3201990020010020001",
            name="B4",
            floors=30,
            height_m=120.0,
            use="commercial",
            year_built=2015,
            estate=None,
            dwellings=0,
            residents=0,
            geom=square(1750, 500),
        ),
    ]
    facilities = [
        dict(kind="kindergarten", name="西幼儿园", capacity=120, area_m2=None, geom=at(250, 750)),
        dict(
            kind="primary_school", name="中心小学", capacity=600, area_m2=None, geom=at(1000, 500)
        ),
        dict(kind="clinic", name="东卫生服务站", capacity=10, area_m2=None, geom=at(1250, 800)),
        dict(kind="fire_station", name="消防站", capacity=None, area_m2=None, geom=at(1250, 100)),
        dict(kind="shelter", name="东避难场所", capacity=None, area_m2=280.0, geom=at(1700, 900)),
    ]
    parks = [
        dict(name="A公园", kind="community", geom=rect(200, 100, 300, 150)),
        dict(name="B游园", kind="pocket", geom=rect(1400, 420, 1450, 480)),
    ]
    roads = [
        dict(
            name="一号路",
            **{"class": "branch"},
            width_m=12.0,
            geom=LineString([(X0, Y0 + 100), (X0 + 2000, Y0 + 100)]),
        ),
        dict(
            name="二号路",
            **{"class": "branch"},
            width_m=12.0,
            geom=LineString([(X0 + 1250, Y0 + 100), (X0 + 1250, Y0 + 1000)]),
        ),
    ]
    landuse = [dict(class_code="0701", class_name="城镇住宅用地", geom=rect(0, 0, 1000, 700))]
    hazards = [
        ("H1", "320199001001001", "2026-01-01", "2026-01-15", "2026-01-10", "closed", 100),
        ("H2", "320199001001001", "2026-02-01", "2026-02-15", "2026-03-01", "closed", 120),
        ("H3", "320199002001001", "2026-03-01", "2026-03-31", None, "rectifying", 1100),
        ("H4", "320199002001001", "2026-06-01", "2026-07-31", None, "assigned", 1150),
        ("H5", "320199002001002", "2025-01-01", "2025-01-31", "2025-01-20", "closed", 1600),
    ]
    hazard_rows = [
        dict(
            code=f"YH{grid}{n[1:]:0>5}",
            category="fire",
            level=3,
            description=n,
            status=status,
            found_at=f"{found}T09:00:00+08:00",
            deadline=f"{due}T23:59:00+08:00",
            closed_at=None if closed is None else f"{closed}T17:00:00+08:00",
            geom=at(x, 300),
        )
        for n, grid, found, due, closed, status, x in hazards
    ]
    assets = [
        dict(
            code="ZC3201990001",
            name="旧粮站",
            category="rural_collective",
            status="revitalised",
            owner="西社区",
            land_area_m2=900.0,
            geom=rect(100, 850, 130, 880),
        ),
        dict(
            code="ZC3201990002",
            name="老厂房",
            category="state_operating",
            status="promoted",
            owner="区国资公司",
            land_area_m2=1200.0,
            geom=rect(1100, 850, 1140, 880),
        ),
    ]
    return {
        "admin_areas": _frame(admin),
        "grids": _frame(grids),
        "buildings": _frame(buildings),
        "facilities": _frame(facilities),
        "parks": _frame(parks),
        "roads": _frame(roads),
        "landuse_parcels": _frame(landuse),
        "hazards": _frame(hazard_rows),
        "assets": _frame(assets),
    }


REFERENCES = {
    "admin_areas": {"parent": "parent_code"},
    "grids": {"community": "community_code"},
}
KEYS = {"admin_areas": "code", "grids": "code"}


def write(folder: Path) -> Path:
    """The GeoPackage and its manifest in ``folder``; returns the manifest's path."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "tiny.gpkg"
    lines = ["[district]", 'name = "体检测试区"', 'code = "320199000000"', "tolerance_m = 50"]
    for table, frame in tables().items():
        frame.to_file(target, layer=table, driver="GPKG")
        lines += ["", f"[{table}]", 'file = "tiny.gpkg"', f'layer = "{table}"', f'crs = "{CRS}"']
        if table in KEYS:
            lines.append(f'key = "{KEYS[table]}"')
        if "code" in frame:
            lines.append('codes = "given"')
        lines += ["", f"[{table}.fields]"]
        refs = REFERENCES.get(table, {})
        lines += [f'{c} = "{c}"' for c in frame.columns if c != "geom" and c not in refs.values()]
        lines += [f'{noun} = "{column}"' for noun, column in refs.items()]
    manifest = folder / "manifest.toml"
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return manifest
