"""How the district looks after itself: hazards rectified on time, idle assets revitalised."""

from __future__ import annotations

import pandas as pd

from geo.checkup.registry import indicator
from geo.checkup.staging import Context


@indicator(
    id="hazard_rectification_rate",
    name_zh="安全隐患按期整改率",
    name_en="Hazards rectified by their deadline",
    dimension="safety",
    level="block",
    unit="%",
    scale=100.0,
    definition="Hazards whose deadline fell in the year before the run's day, closed by that "
    "deadline ÷ all of them.",
    standard="城市安全风险综合监测预警; 闭环整治 (DOMAIN: ≥ 95 %)",
    target=95.0,
    direction=">=",
    settings={"window_days": 365},
)
def hazard_rectification_rate(ctx: Context, item) -> pd.DataFrame:
    rows = ctx.rows(
        """SELECT grid_code AS code,
                  CASE WHEN closed_at IS NOT NULL AND closed_at <= deadline
                            AND closed_at::date <= :as_of THEN 1 ELSE 0 END AS num, 1 AS den
           FROM hazards
           WHERE grid_code IS NOT NULL AND found_at::date <= :as_of
             AND deadline::date <= :as_of AND deadline::date > :as_of - :window""",
        as_of=ctx.as_of,
        window=int(ctx.of(item)["window_days"]),
    )
    return pd.DataFrame(rows, columns=["code", "num", "den"]).assign(h3_9=None)


@indicator(
    id="asset_revitalisation_rate",
    name_zh="存量资产盘活率",
    name_en="Idle assets revitalised",
    dimension="vitality",
    level="city",
    unit="%",
    scale=100.0,
    definition="Registered idle assets revitalised by the run's day ÷ all registered by then "
    "(statuses as of that day, from the status history where it is kept).",
    standard="存量资产招商一张图 (Lishui: 123 of 268)",
    better="higher",
)
def asset_revitalisation_rate(ctx: Context, item) -> pd.DataFrame:
    rows = ctx.rows(
        """WITH latest AS (
               SELECT DISTINCT ON (asset_id) asset_id, status FROM asset_status_history
               WHERE changed_at::date <= :as_of ORDER BY asset_id, changed_at DESC, id DESC),
           known AS (SELECT count(*) AS n FROM asset_status_history)
           SELECT a.grid_code AS code,
                  CASE WHEN coalesce(l.status, a.status) = 'revitalised' THEN 1 ELSE 0 END AS num,
                  1 AS den
           FROM assets a LEFT JOIN latest l ON l.asset_id = a.id, known
           WHERE a.grid_code IS NOT NULL AND (known.n = 0 OR l.asset_id IS NOT NULL)""",
        as_of=ctx.as_of,
    )
    return pd.DataFrame(rows, columns=["code", "num", "den"]).assign(h3_9=None)
