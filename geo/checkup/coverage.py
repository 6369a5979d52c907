"""Service-radius coverage (服务半径覆盖率): the share of dwellings within a radius of a service,
counted at each residential building's point (GB 50180-2018 radii; GB/T 51346-2019 for parks)."""

from __future__ import annotations

import pandas as pd

from geo.checkup.registry import indicator
from geo.checkup.staging import Context

HOMES = """
    WITH covered AS ({covered})
    SELECT h.grid_code AS code, c.h3_9, h.dwellings AS den,
           CASE WHEN v.id IS NOT NULL THEN h.dwellings ELSE 0 END AS num,
           h.dwellings_from AS source
    FROM ck_homes h LEFT JOIN ck_cells c USING (id) LEFT JOIN covered v USING (id)
    WHERE h.use = 'residential' AND h.dwellings > 0 AND h.grid_code IS NOT NULL
"""


def homes_near(ctx: Context, covered: str, **params) -> pd.DataFrame:
    """Parts per residential building: its dwellings, and those of them in a building whose id
    ``covered`` (an SQL query of building ids) lists."""
    rows = ctx.rows(HOMES.format(covered=covered), **params)
    return pd.DataFrame(rows, columns=["code", "h3_9", "den", "num", "source"])


def near_facility(kinds: list[str], radius: float | None = None) -> str:
    """The ids of the homes within the radius of a facility of these kinds: searched from the
    facilities' side, so that a rare kind with a long radius (seven fire stations, 1,500 m) is
    a handful of index searches, not one per home among every facility of every kind."""
    listed = ", ".join(f"'{k}'" for k in kinds)
    within = ":radius" if radius is None else repr(float(radius))
    return (
        f"SELECT DISTINCT h.id FROM ck_facilities f JOIN ck_homes h "
        f"ON ST_DWithin(h.at, f.geom, {within}) WHERE f.kind IN ({listed})"
    )


def facility_coverage(ctx: Context, item) -> pd.DataFrame:
    s = ctx.of(item)
    return homes_near(ctx, near_facility(s["kinds"]), radius=float(s["radius_m"]))


COMMON = dict(scale=100.0, unit="%", surface=True)


@indicator(
    id="park_radius_coverage",
    name_zh="公园绿地服务半径覆盖率",
    name_en="Park service-radius coverage",
    dimension="ecology",
    level="community",
    definition="Dwellings within 300 m of a park of 2,000–5,000 m², or 500 m of a park of "
    "5,000 m² or more, ÷ all dwellings (scenic areas excluded).",
    standard="GB/T 51346-2019 城市绿地规划标准; 城市体检指标体系",
    target=90.0,
    direction=">=",
    settings={"small_m2": 2000, "large_m2": 5000, "small_radius_m": 300, "large_radius_m": 500},
    **COMMON,
)
def park_radius_coverage(ctx: Context, item) -> pd.DataFrame:
    s = ctx.of(item)
    near = """SELECT h.id FROM ck_parks p JOIN ck_homes h ON ST_DWithin(h.at, p.geom, :large_r)
              WHERE p.area_m2 >= :large
              UNION
              SELECT h.id FROM ck_parks p JOIN ck_homes h ON ST_DWithin(h.at, p.geom, :small_r)
              WHERE p.area_m2 >= :small AND p.area_m2 < :large"""
    return homes_near(
        ctx,
        near,
        small=float(s["small_m2"]),
        large=float(s["large_m2"]),
        small_r=float(s["small_radius_m"]),
        large_r=float(s["large_radius_m"]),
    )


def _facility_indicator(id_, zh, en, kinds, radius, dimension, level, standard, what):
    indicator(
        id=id_,
        name_zh=zh,
        name_en=en,
        dimension=dimension,
        level=level,
        definition=f"Dwellings within {radius:,} m of {what} ÷ all dwellings.",
        standard=standard,
        settings={"kinds": kinds, "radius_m": radius},
        better="higher",
        **COMMON,
    )(facility_coverage)


GB50180 = "GB 50180-2018 城市居住区规划设计标准"
_facility_indicator(
    "kindergarten_coverage",
    "幼儿园服务半径覆盖率",
    "Kindergarten coverage (300 m)",
    ["kindergarten"],
    300,
    "inclusion",
    "community",
    GB50180,
    "a kindergarten",
)
_facility_indicator(
    "primary_school_coverage",
    "小学服务半径覆盖率",
    "Primary-school coverage (500 m)",
    ["primary_school"],
    500,
    "inclusion",
    "community",
    GB50180,
    "a primary school",
)
_facility_indicator(
    "middle_school_coverage",
    "中学服务半径覆盖率",
    "Middle-school coverage (1,000 m)",
    ["middle_school"],
    1000,
    "inclusion",
    "block",
    GB50180,
    "a middle school",
)
_facility_indicator(
    "clinic_15min_coverage",
    "社区卫生服务设施15分钟步行覆盖率",
    "Community health, 15-minute walk (1,000 m)",
    ["clinic", "hospital"],
    1000,
    "health",
    "block",
    GB50180,
    "a community health station or town hospital",
)
_facility_indicator(
    "elderly_5min_coverage",
    "社区养老服务设施5分钟步行覆盖率",
    "Elderly care, 5-minute walk (300 m)",
    ["elderly_care"],
    300,
    "inclusion",
    "community",
    GB50180,
    "an elderly-care facility",
)
