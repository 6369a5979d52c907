"""Area per resident: parks and emergency shelters. Each area's supply is counted where it stands
(a park by its point on surface, a shelter by its point), its residents where they live."""

from __future__ import annotations

import pandas as pd

from geo.checkup.registry import indicator
from geo.checkup.staging import Context

RESIDENTS = """
    SELECT grid_code AS code, 0.0 AS num, residents AS den, residents_from AS source
    FROM ck_homes WHERE grid_code IS NOT NULL AND residents > 0
"""


def per_resident(ctx: Context, supply_sql: str) -> pd.DataFrame:
    supply = pd.DataFrame(ctx.rows(supply_sql), columns=["code", "num"])
    people = pd.DataFrame(ctx.rows(RESIDENTS), columns=["code", "num", "den", "source"])
    supply = supply.assign(den=0.0, source=None)
    return pd.concat([people, supply], ignore_index=True).assign(h3_9=None)


@indicator(
    id="park_area_per_capita",
    name_zh="人均公园绿地面积",
    name_en="Park area per resident",
    dimension="ecology",
    level="city",
    unit="m²/人",
    definition="Area of parks (公园绿地; scenic areas excluded) ÷ residents.",
    standard="GB/T 51346-2019 城市绿地规划标准; 中国城市建设统计年鉴",
    target=8.0,
    direction=">=",
)
def park_area_per_capita(ctx: Context, item) -> pd.DataFrame:
    return per_resident(ctx, "SELECT grid_code, area_m2 FROM ck_parks WHERE grid_code IS NOT NULL")


@indicator(
    id="shelter_area_per_capita",
    name_zh="人均避难场所面积",
    name_en="Emergency shelter area per resident",
    dimension="safety",
    level="city",
    unit="m²/人",
    definition="Effective area of emergency shelters (facilities of kind shelter) ÷ residents.",
    standard="GB 51143-2015 防灾避难场所设计规范",
    target=1.5,
    direction=">=",
)
def shelter_area_per_capita(ctx: Context, item) -> pd.DataFrame:
    return per_resident(
        ctx,
        "SELECT grid_code, coalesce(area_m2, 0) FROM ck_facilities "
        "WHERE kind = 'shelter' AND grid_code IS NOT NULL",
    )
