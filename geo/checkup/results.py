"""Reading runs back: the list of runs, one indicator's values for every area, and a run's results
as a table with each area's shape (for CSV, GeoPackage and the report's maps)."""

from __future__ import annotations

import geopandas as gpd
import h3
import pandas as pd
import shapely
from sqlalchemy import text
from sqlalchemy.engine import Connection

from geo.checkup.engine import COLUMNS, run_row
from geo.checkup.registry import indicators
from geo.errors import NotFound
from geo.settings import STORAGE_SRID

LEVEL_ORDER = ("district", "street", "community", "grid", "h3_8", "h3_9")


def list_runs(conn: Connection, limit: int = 100) -> list[dict]:
    rows = conn.execute(
        text("""SELECT id, label, as_of, area_code, district_name, started_at, seconds, indicators
                FROM checkup_runs ORDER BY id DESC LIMIT :limit"""),
        {"limit": limit},
    ).all()
    return [
        {
            "run": r.id,
            "label": r.label,
            "as_of": r.as_of.isoformat(),
            "area": r.area_code,
            "district": r.district_name,
            "started_at": r.started_at.isoformat(),
            "seconds": r.seconds,
            "indicators": r.indicators,
        }
        for r in rows
    ]


def latest_run(conn: Connection) -> int:
    """The newest run for the whole district."""
    run = conn.execute(text("SELECT max(id) FROM checkup_runs WHERE area_code IS NULL")).scalar()
    if run is None:
        raise NotFound("no check-up has been run yet: POST /checkup/runs or `onemap checkup run`")
    return int(run)


def indicator_results(conn: Connection, run: int, indicator: str, level: str | None = None) -> dict:
    """One indicator's values in a run, every area (of ``level``), failing ones first."""
    run_row(conn, run)
    item = indicators().get(indicator)
    if item is None:
        raise NotFound(f"no indicator {indicator}; see /checkup/indicators")
    rows = conn.execute(
        text("""SELECT level, area_code, area_name, value, numerator, denominator, passed, basis
                FROM checkup_results
                WHERE run_id = :run AND indicator = :ind AND (CAST(:level AS text) IS NULL OR level = :level)
                ORDER BY array_position(CAST(:order AS text[]), level::text),
                         passed NULLS LAST, area_code"""),
        {"run": run, "ind": indicator, "level": level, "order": list(LEVEL_ORDER)},
    ).all()
    return {
        "run": run,
        "indicator": item.describe(),
        "areas": [dict(r._mapping) for r in rows],
    }


def area_shapes(conn: Connection, level: str, codes: list[str]) -> dict[str, shapely.Geometry]:
    """The shape of each area (the district's, a street's, a grid's, an H3 cell's), in 4490."""
    if level.startswith("h3"):
        return {
            c: shapely.Polygon([(lon, lat) for lat, lon in h3.cell_to_boundary(c)]) for c in codes
        }
    table = "grids" if level == "grid" else "admin_areas"
    rows = conn.execute(
        text(f"SELECT code, ST_AsBinary(geom) FROM {table} WHERE code = ANY(:codes)"),
        {"codes": codes},
    ).all()
    return {code: shapely.from_wkb(bytes(wkb)) for code, wkb in rows}


def results_frame(conn: Connection, run: int, level: str | None = None) -> gpd.GeoDataFrame:
    """A run's results with each area's shape (areas no longer loaded have none)."""
    run_row(conn, run)
    frame = pd.DataFrame(
        conn.execute(
            text(f"""SELECT {", ".join(COLUMNS)} FROM checkup_results
                    WHERE run_id = :run AND (CAST(:level AS text) IS NULL OR level = :level)
                    ORDER BY indicator, level, area_code"""),
            {"run": run, "level": level},
        ).all(),
        columns=COLUMNS,
    )
    shapes: dict[tuple[str, str], shapely.Geometry] = {}
    for lv, codes in frame.groupby("level").area_code:
        for code, shape in area_shapes(conn, lv, sorted(set(codes))).items():
            shapes[(lv, code)] = shape
    geometry = [shapes.get((lv, c)) for lv, c in zip(frame.level, frame.area_code, strict=True)]
    names = {k: v.name_zh for k, v in indicators().items()}
    frame.insert(1, "name_zh", frame.indicator.map(names))
    return gpd.GeoDataFrame(frame, geometry=geometry, crs=f"EPSG:{STORAGE_SRID}")
