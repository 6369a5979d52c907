"""Complete living communities (完整居住社区): a community whose 5-, 10- and 15-minute life circles
each hold the services GB 50180-2018 lists for them."""

from __future__ import annotations

import pandas as pd

from geo.checkup.coverage import near_facility
from geo.checkup.registry import indicator
from geo.checkup.staging import Context

#: circle → (walking radius m, the services it must hold; a list is "any of these")
CIRCLES = {
    "5min": (300, [["kindergarten"], ["elderly_care"]]),
    "10min": (500, [["primary_school"], ["market"], ["sports"]]),
    "15min": (1000, [["middle_school"], ["clinic", "hospital"], ["cultural_centre"]]),
}


@indicator(
    id="life_circle_completeness",
    name_zh="完整居住社区覆盖率",
    name_en="Communities with complete life circles",
    dimension="inclusion",
    level="community",
    unit="%",
    scale=100.0,
    base="community",
    definition="Communities in which, for every service of the 5-minute (300 m), 10-minute "
    "(500 m) and 15-minute (1,000 m) life circle, at least half of the dwellings lie within "
    "the circle's radius of one ÷ all communities with dwellings.",
    standard="GB 50180-2018 城市居住区规划设计标准; 完整居住社区建设标准(试行) 2020",
    settings={"min_share": 0.5, "circles": CIRCLES},
    better="higher",
)
def life_circle_completeness(ctx: Context, item) -> pd.DataFrame:
    s = ctx.of(item)
    tests = [(radius, kinds) for radius, needed in s["circles"].values() for kinds in needed]
    covered = ", ".join(
        f"c{i} AS ({near_facility(kinds, radius)})" for i, (radius, kinds) in enumerate(tests)
    )
    sums = ", ".join(
        f"sum(h.dwellings::float8) FILTER (WHERE h.id IN (SELECT id FROM c{i})) AS s{i}"
        for i in range(len(tests))
    )
    rows = ctx.rows(
        f"""WITH {covered}
            SELECT left(h.grid_code, 12) AS code, sum(h.dwellings)::float8 AS total, {sums}
            FROM ck_homes h
            WHERE h.use = 'residential' AND h.dwellings > 0 AND h.grid_code IS NOT NULL
            GROUP BY 1"""
    )
    share = float(s["min_share"])
    complete = [
        int(all((row[2 + i] or 0) >= share * row.total for i in range(len(tests)))) for row in rows
    ]
    return pd.DataFrame({"code": [r.code for r in rows], "num": complete, "den": 1, "h3_9": None})
