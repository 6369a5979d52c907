"""Townscape and housing stock: tall new housing, super-tall buildings, old estates."""

from __future__ import annotations

import pandas as pd

from geo.checkup.registry import indicator
from geo.checkup.staging import Context


def _buildings(ctx: Context, condition: str, **params) -> pd.DataFrame:
    """One part per building meeting ``condition`` (a count: no denominator)."""
    rows = ctx.rows(
        f"""SELECT h.grid_code AS code, c.h3_9, 1 AS num FROM ck_homes h
            LEFT JOIN ck_cells c USING (id) WHERE h.grid_code IS NOT NULL AND {condition}""",
        **params,
    )
    return pd.DataFrame(rows, columns=["code", "h3_9", "num"]).assign(den=None)


@indicator(
    id="tall_new_housing",
    name_zh="新建住宅建筑高度超过80米的数量",
    name_en="New residential buildings over 80 m",
    dimension="townscape",
    level="dwelling",
    unit="栋",
    definition="Residential buildings over 80 m completed in the last ten years (since the year "
    "set as new_since, by default ten years before the run's day).",
    standard="城市体检指标体系 (新建住宅建筑高度超过80米的数量)",
    target=0.0,
    direction="<=",
    surface=True,
    settings={"height_m": 80, "new_years": 10},
    summed=True,
)
def tall_new_housing(ctx: Context, item) -> pd.DataFrame:
    s = ctx.of(item)
    since = s.get("new_since", ctx.as_of.year - int(s["new_years"]))
    return _buildings(
        ctx,
        "h.use = 'residential' AND h.height_m > :height AND h.year_built >= :since",
        height=float(s["height_m"]),
        since=int(since),
    )


@indicator(
    id="super_tall_buildings",
    name_zh="超高层建筑数量",
    name_en="Super-tall buildings (over 100 m)",
    dimension="townscape",
    level="city",
    unit="栋",
    definition="Buildings over 100 m (over 250 m are strictly limited).",
    standard="建科〔2021〕76号 关于加强超高层建筑规划建设管理的通知",
    surface=True,
    settings={"height_m": 100},
    summed=True,
)
def super_tall_buildings(ctx: Context, item) -> pd.DataFrame:
    return _buildings(ctx, "h.height_m > :height", height=float(ctx.of(item)["height_m"]))


@indicator(
    id="old_estate_share",
    name_zh="老旧小区住宅占比",
    name_en="Dwellings in old estates",
    dimension="health",
    level="community",
    unit="%",
    scale=100.0,
    definition="Dwellings in estates completed by the end of 2000 ÷ all dwellings.",
    standard="国办发〔2020〕23号 关于全面推进城镇老旧小区改造工作的指导意见",
    surface=True,
    settings={"built_by": 2000},
    better="lower",
)
def old_estate_share(ctx: Context, item) -> pd.DataFrame:
    rows = ctx.rows(
        """SELECT h.grid_code AS code, c.h3_9, h.dwellings AS den,
                  CASE WHEN h.estate IS NOT NULL AND h.year_built <= :by
                       THEN h.dwellings ELSE 0 END AS num, h.dwellings_from AS source
           FROM ck_homes h LEFT JOIN ck_cells c USING (id)
           WHERE h.use = 'residential' AND h.dwellings > 0 AND h.grid_code IS NOT NULL""",
        by=int(ctx.of(item)["built_by"]),
    )
    return pd.DataFrame(rows, columns=["code", "h3_9", "den", "num", "source"])
