"""``onemap city export DIR``: the current district written out as one GeoPackage (a layer per
base table, EPSG:4490) and the manifest that imports it again, so that an import of an export is
a round trip (same table checksums).

Values are written so that nothing is lost on the way back: moments as ISO 8601 text with their
offset, dates as ISO text, address aliases as a JSON list, references as the stored ids and
codes (each referenced table keyed by what its children hold: ``id`` or ``code``). The residents'
keyed identity hash is not written: the import derives it with the service's own key.

With several districts loaded (a city), one of them is exported (``--district``): its rows as
``geo.district.rows_of`` says, with their ids, so that it can be imported again beside the others.

The export holds personal data raw (names, identity numbers, phones): it is an administrator's
copy of the whole district, written from the command line only, and recorded in the audit log.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import geopandas
import numpy as np
import pandas as pd
import pyogrio
import shapely
from sqlalchemy import text
from sqlalchemy.engine import Connection

from geo import district
from geo.policy import audit
from geo.policy.roles import Viewer
from geo.settings import STORAGE_SRID
from layers.basedata.schema import SPECS
from layers.coordinates import to_metric

GEOPACKAGE = "district.gpkg"
MANIFEST = "manifest.toml"
#: fields the import always derives itself
NOT_WRITTEN = {"residents": {"id_hash"}}


def _key_of(table: str) -> str:
    """What the children of ``table`` hold to point at its rows."""
    targets = {
        r.target for spec in SPECS.values() for r in spec.references.values() if r.parent == table
    }
    return "code" if targets == {"code"} else "id"


def export_district(
    conn: Connection,
    folder: Path,
    viewer: Viewer,
    metric_srid: int = 4549,
    progress: Callable[[str, int], None] | None = None,
    district_code: str | None = None,
) -> dict[str, int]:
    """Write every base table and the manifest into ``folder``; returns rows written per table.
    ``district_code``: the district to write when several are loaded (six or twelve digits)."""
    name, code, only = _district(conn, district_code)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / GEOPACKAGE
    target.unlink(missing_ok=True)
    counts: dict[str, int] = {}
    beyond, boundary = 0.0, None
    for table in district.TABLES:
        frame = _read(conn, table, only)
        counts[table] = len(frame)
        if len(frame):
            geoms = _write(frame, target, table)
            if table == "admin_areas":
                boundary = shapely.union_all(geoms[frame["level"].to_numpy() == 1])
            elif geoms is not None and boundary is not None:
                beyond = max(beyond, farthest_beyond(boundary, geoms, metric_srid))
        if progress:
            progress(table, len(frame))
    (folder / MANIFEST).write_text(manifest_text(name, code, counts, beyond), encoding="utf-8")
    audit.record(
        conn,
        viewer,
        "export",
        "district",
        name[:100],
        detail={"folder": str(folder), "counts": counts},
    )
    return counts


def _district(conn: Connection, wanted: str | None) -> tuple[str, str | None, str | None]:
    """The district's name and code, and its code again when only its rows are to be written
    (None: every row, there being one district or none)."""
    code, name, beside_others = district.choose(conn, wanted)
    return name or "district", code, (code if beside_others else None)


def farthest_beyond(district_geom, geoms: np.ndarray, metric_srid: int) -> float:
    """How far (m) the farthest vertex of these geometries lies outside the district: the
    tolerance the manifest must grant for the export to import again exactly as it is."""
    shapely.prepare(district_geom)
    outside = geoms[~shapely.covers(district_geom, geoms)]
    if not len(outside):
        return 0.0
    zone = to_metric(np.array([district_geom], dtype=object), metric_srid)[0]
    vertices = shapely.points(shapely.get_coordinates(to_metric(outside, metric_srid)))
    return float(shapely.distance(zone, vertices).max())


def _read(conn: Connection, table: str, only: str | None = None) -> pd.DataFrame:
    cols = [c for c in district.columns(table) if c not in NOT_WRITTEN.get(table, ())]
    selected = ", ".join("ST_AsBinary(geom) AS geom" if c == "geom" else f'"{c}"' for c in cols)
    order = "id" if "id" in cols else ", ".join(f'"{c}"' for c in cols[:2])
    where, params = "true", {}
    if only:
        where, params = district.rows_of(table), district.district_params(only)
    rows = conn.execute(
        text(f"SELECT {selected} FROM {table} WHERE {where} ORDER BY {order}"), params
    ).all()
    frame = pd.DataFrame([tuple(r) for r in rows], columns=cols, dtype=object)
    for column in frame.columns:
        if column != "geom":
            frame[column] = [_plain(v) for v in frame[column]]
    return frame


def _plain(value):
    """A value GeoPackage keeps exactly: moments and dates as ISO text, decimals as floats."""
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, list):
        return json.dumps(value, ensure_ascii=False)
    return value


def _write(frame: pd.DataFrame, target: Path, table: str) -> np.ndarray | None:
    """Write one layer; returns its geometries (None for a table without)."""
    if "geom" not in frame:
        pyogrio.write_dataframe(frame, target, layer=table, driver="GPKG")
        return None
    geoms = shapely.from_wkb([bytes(g) for g in frame["geom"]])
    data = geopandas.GeoDataFrame(
        frame.drop(columns=["geom"]), geometry=geoms, crs=f"EPSG:{STORAGE_SRID}"
    )
    pyogrio.write_dataframe(data, target, layer=table, driver="GPKG")
    return geoms


def manifest_text(name: str, code: str | None, counts: dict[str, int], beyond_m: float = 0) -> str:
    """The manifest that imports this export: every column under its own name, and a boundary
    tolerance that keeps every feature the district holds now."""
    lines = [
        "# Written by `onemap city export`: the district as it was, one GeoPackage layer per",
        "# base table in EPSG:4490. `onemap city import manifest.toml --replace` loads it back.",
        "",
        "[district]",
        f"name = {json.dumps(name, ensure_ascii=False)}",
    ]
    if code:
        lines.append(f'code = "{code}"')
    tolerance = max(50, math.ceil(beyond_m) + 1)
    lines.append(
        f"tolerance_m = {tolerance}  # the farthest feature lies {beyond_m:.1f} m beyond the boundary"
    )
    for table in district.TABLES:
        if not counts.get(table):
            continue
        spec = SPECS[table]
        lines += ["", f"[{table}]", f'file = "{GEOPACKAGE}"', f'layer = "{table}"']
        if spec.geometry is not None:
            lines.append(f'crs = "EPSG:{STORAGE_SRID}"')
        if any(r.parent == table for s in SPECS.values() for r in s.references.values()):
            lines.append(f'key = "{_key_of(table)}"')
        if spec.code:
            lines.append('codes = "given"')
        lines += ["", f"[{table}.fields]"]
        skip = NOT_WRITTEN.get(table, set())
        if "id" in district.columns(table):
            lines.append('id = "id"')
        lines += [f'{f} = "{f}"' for f in spec.fields if f not in skip and f != "id"]
        lines += [f'{noun} = "{r.stored}"' for noun, r in spec.references.items()]
    return "\n".join(lines) + "\n"
