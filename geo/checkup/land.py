"""Land: development intensity, road-network density, over-dense land."""

from __future__ import annotations

import h3
import pandas as pd

from geo.checkup.registry import indicator
from geo.checkup.staging import Context

#: 三调 (GB/T 21010-2017) construction land: commerce 05, industry 06, housing 07, public 08,
#: special 09, transport 10
BUILT_UP = ["05%", "06%", "07%", "08%", "09%", "10%"]

#: per grid: its construction land, its area and the roads on that land. The pieces are summed by
#: grouping, not by a subquery per grid (that rescans every piece for each grid: at 11,000 grids and
#: 60,000 parcels it took 430 s of a 540 s run)
PER_GRID = """
    WITH g AS (SELECT code, geom FROM grids WHERE code BETWEEN :lo AND :hi),
         built AS MATERIALIZED (
             SELECT g.code, ST_Intersection(l.geom, g.geom) AS geom
             FROM g JOIN landuse_parcels l
               ON ST_Intersects(l.geom, g.geom) AND l.class_code LIKE ANY(:classes)),
         land AS (SELECT code, sum(ST_Area(ST_Transform(geom, :srid))) AS m2
                  FROM built GROUP BY code),
         roads_on AS (
             SELECT b.code, sum(ST_Length(ST_Transform(ST_Intersection(r.geom, b.geom), :srid))) AS m
             FROM built b JOIN roads r ON ST_Intersects(r.geom, b.geom) GROUP BY b.code)
    SELECT g.code, coalesce(land.m2, 0) / 1e6 AS built_km2,
           ST_Area(ST_Transform(g.geom, :srid)) / 1e6 AS area_km2,
           coalesce(roads_on.m, 0) / 1e3 AS road_km
    FROM g LEFT JOIN land USING (code) LEFT JOIN roads_on USING (code)
"""


def _per_grid(ctx: Context, classes: list[str]) -> pd.DataFrame:
    key = ("land", tuple(classes))
    if key not in ctx.cache:
        lo, hi = ctx.code_range(15)
        rows = ctx.rows(PER_GRID, classes=classes, lo=lo, hi=hi)
        ctx.cache[key] = pd.DataFrame(rows, columns=["code", "built", "area", "roads"])
    return ctx.cache[key]


@indicator(
    id="development_intensity",
    name_zh="区域开发强度",
    name_en="Development intensity",
    dimension="ecology",
    level="city",
    unit="%",
    scale=100.0,
    definition="Construction land (三调 classes 05–10) ÷ total area.",
    standard="GB/T 21010-2017 土地利用现状分类; 城市体检指标体系",
    settings={"classes": BUILT_UP},
)
def development_intensity(ctx: Context, item) -> pd.DataFrame:
    land = _per_grid(ctx, ctx.of(item)["classes"])
    return pd.DataFrame({"code": land.code, "num": land.built, "den": land.area, "h3_9": None})


@indicator(
    id="road_density",
    name_zh="建成区路网密度",
    name_en="Road-network density in built-up land",
    dimension="transport",
    level="block",
    unit="km/km²",
    definition="Length of roads within construction land (三调 classes 05–10) ÷ that land, in "
    "km per km².",
    standard="城市体检指标体系; GB 51328-2018 城市综合交通体系规划标准",
    target=8.0,
    direction=">=",
    settings={"classes": BUILT_UP},
)
def road_density(ctx: Context, item) -> pd.DataFrame:
    land = _per_grid(ctx, ctx.of(item)["classes"])
    return pd.DataFrame({"code": land.code, "num": land.roads, "den": land.built, "h3_9": None})


@indicator(
    id="dense_land_area",
    name_zh="人口密度超过每平方公里1.5万人的城市建设用地规模",
    name_en="Land above 15,000 residents per km²",
    dimension="health",
    level="block",
    unit="km²",
    definition="Area of H3 cells (resolution 9, about 0.1 km²) where residents per km² exceed "
    "15,000; a cell counts in the grid that holds most of its residents.",
    standard="城市体检指标体系 (bottom line: as low as possible)",
    surface=True,
    settings={"per_km2": 15000},
    summed=True,
    better="lower",
)
def dense_land_area(ctx: Context, item) -> pd.DataFrame:
    rows = ctx.rows(
        """SELECT c.h3_9, h.grid_code, sum(h.residents)::float8 AS people
           FROM ck_homes h JOIN ck_cells c USING (id) WHERE h.residents > 0
           GROUP BY c.h3_9, h.grid_code"""
    )
    frame = pd.DataFrame(rows, columns=["h3_9", "code", "people"])
    if frame.empty:
        return pd.DataFrame(columns=["code", "h3_9", "num", "den"])
    cells = frame.groupby("h3_9").people.sum()
    home = frame.sort_values(["h3_9", "people", "code"], ascending=[True, False, True])
    home = home.drop_duplicates("h3_9").set_index("h3_9").code
    area = pd.Series({c: h3.cell_area(c, "km^2") for c in cells.index})
    dense = cells / area > float(ctx.of(item)["per_km2"])
    return pd.DataFrame(
        {"code": home[cells.index].to_numpy(), "h3_9": cells.index, "num": area.where(dense, 0.0)}
    ).assign(den=None)
