"""Year on year (一年一体检): two runs side by side, area by area, with the change and whether it
is an improvement by the indicator's own direction."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

from geo.checkup.engine import run_row
from geo.checkup.registry import indicators

COMPARE = """
    SELECT coalesce(r.indicator, b.indicator) AS indicator,
           coalesce(r.area_code, b.area_code) AS area_code,
           coalesce(r.area_name, b.area_name) AS area_name,
           b.value AS base, r.value AS value, b.passed AS base_passed, r.passed AS passed
    FROM (SELECT * FROM checkup_results WHERE run_id = :run AND level = :level) r
    FULL JOIN (SELECT * FROM checkup_results WHERE run_id = :base AND level = :level) b
      ON b.indicator = r.indicator AND b.area_code = r.area_code
    WHERE (CAST(:indicator AS text) IS NULL OR coalesce(r.indicator, b.indicator) = :indicator)
    ORDER BY 1, 2
"""


def compare(
    conn: Connection, base: int, run: int, level: str = "district", indicator: str | None = None
) -> dict:
    """Each indicator's value in ``base`` and in ``run`` for every area of ``level``, the change,
    and ``better`` / ``worse`` / ``same`` (or ``changed`` for an indicator with no direction)."""
    first, second = run_row(conn, base), run_row(conn, run)
    registry = indicators()
    rows = conn.execute(
        text(COMPARE), {"run": run, "base": base, "level": level, "indicator": indicator}
    ).all()
    changes = []
    for row in rows:
        item = registry.get(row.indicator)
        change = None if row.base is None or row.value is None else row.value - row.base
        changes.append(
            {
                "indicator": row.indicator,
                "name_zh": item.name_zh if item else row.indicator,
                "unit": item.unit if item else None,
                "area_code": row.area_code,
                "area_name": row.area_name,
                "base": row.base,
                "value": row.value,
                "change": change,
                "trend": _trend(change, item.improves if item else None),
                "base_passed": row.base_passed,
                "passed": row.passed,
            }
        )
    return {
        "base": {"run": first.id, "as_of": first.as_of.isoformat(), "label": first.label},
        "run": {"run": second.id, "as_of": second.as_of.isoformat(), "label": second.label},
        "level": level,
        "changes": changes,
    }


def _trend(change: float | None, better: str | None) -> str | None:
    if change is None:
        return None
    if abs(change) < 1e-9:
        return "same"
    if better is None:
        return "changed"
    return "better" if (change > 0) == (better == "higher") else "worse"
