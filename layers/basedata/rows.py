"""One manifest entry read into rows of its base table: the file read (any ingest format), its
CRS decided and checked, geometries moved to EPSG:4490 and repaired or rejected, the source
columns mapped onto standard fields and the values onto the standard enumerations.

Every problem is a row's issue (it is rejected, or its geometry repaired); only a file that cannot
be read, or lacks a column the manifest names, fails as a whole (IngestError).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import shapely

from geo.crs import CGCS2000, WEB_MERCATOR, gauss_kruger_epsg, is_gauss_kruger, parse_crs
from geo.errors import IngestError
from layers import readers, validation
from layers.basedata.manifest import Entry, Manifest
from layers.basedata.report import FileRead
from layers.basedata.schema import FieldSpec, TableSpec
from layers.coordinates import SourceCrs, check_units, decide, to_storage
from layers.fields import _key as column_key
from layers.fields import convert
from layers.vocabulary import VALUE_ZH

#: separators of several aliases written in one cell
_ALIAS_SPLIT = re.compile(r"[;；|、]")


@dataclass
class EntryRows:
    """The rows one file gives its table: standard values, references (as the file writes the
    parent's key), geometry in EPSG:4490, and what went wrong by row."""

    file: FileRead
    values: pd.DataFrame  # standard fields (+ "ref:<noun>", "_key", "_row")
    geometry: np.ndarray | None
    rejected: dict[int, str] = field(default_factory=dict)
    repaired: dict[int, str] = field(default_factory=dict)
    warnings: list[tuple[int, str, str]] = field(default_factory=list)  # row, field, reason
    where: dict[int, tuple[float, float]] = field(default_factory=dict)


def key_text(value) -> str | None:
    """A key or reference as text, the same however the file typed it (12 == 12.0 == "12")."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    return text or None


def read_entry(
    manifest: Manifest,
    entry: Entry,
    spec: TableSpec,
    district_metric,
    district_lon: float,
    metric_srid: int,
) -> EntryRows:
    path = manifest.path(entry)
    if not path.is_file():
        raise IngestError(
            f"[{entry.section}] file '{entry.file}' is not there (next to the manifest)"
        )
    hint = entry.layer or spec.name
    if spec.geometry is None:  # readings, histories
        return _positionless(entry, spec, *readers.read_table(path, entry.file, hint))
    if spec.geometry_from and path.suffix.lower() in (".csv", ".txt"):
        attributes, kind = readers.read_table(path, entry.file, hint)
        if not readers.has_positions(list(attributes.columns)):  # placed at their parents
            return _positionless(entry, spec, attributes, kind)
    source = readers.read(path, entry.file, layer_hint=hint)
    crs = _decide_crs(source, entry, district_lon, metric_srid)
    info = FileRead(
        entry.file, source.format, source.rows, crs.label, crs.origin, source.encoding, source.notes
    )
    rows = EntryRows(info, pd.DataFrame(index=range(source.rows)), None)
    if source.geometry is None:
        raise IngestError(
            f"[{entry.section}] '{entry.file}' has no coordinates: a base table needs positions "
            "(lon/lat or WKT columns, or a spatial format)"
        )
    rows.rejected.update(source.row_problems)
    for row, reason in check_units(source.geometry, crs, district_lon).items():
        rows.rejected.setdefault(row, reason)
    raw = np.array(source.geometry, dtype=object, copy=True)
    for row in rows.rejected:
        raw[row - 1] = None
    moved = to_storage(raw, crs)
    # a row without geometry may take its parent's position later: not rejected here
    absent = {i + 1 for i, g in enumerate(moved) if g is None and (i + 1) not in rows.rejected}
    checked = validation.check(
        moved, set(rows.rejected) | absent, district_metric, metric_srid, manifest.tolerance_m
    )
    for row in absent:
        checked.rejected.pop(row, None)
    rows.rejected.update(checked.rejected)
    rows.repaired.update(checked.repaired)
    rows.where.update(checked.where)
    rows.geometry = _fit_type(checked.geometry, spec.geometry, rows)
    _map_fields(entry, spec, source.attributes, rows)
    return rows


def _positionless(entry: Entry, spec: TableSpec, attributes: pd.DataFrame, kind: str) -> EntryRows:
    """Rows from a file without positions: a table that has none, or rows placed at parents."""
    info = FileRead(entry.file, kind, len(attributes))
    rows = EntryRows(info, pd.DataFrame(index=range(len(attributes))), None)
    if spec.geometry is not None:
        info.notes.append("no coordinate columns: each row stands at its parent's position")
        rows.geometry = np.full(len(attributes), None, dtype=object)
    _map_fields(entry, spec, attributes, rows)
    return rows


def _decide_crs(source, entry: Entry, district_lon: float, metric_srid: int) -> SourceCrs:
    """``crs`` as the manifest gives it; ``auto`` (or none, for a file that declares none)
    detects it from the coordinates' magnitudes, as ingest's messages do."""
    given = (entry.crs or "").strip()
    if given and given.lower() not in ("auto", "detect"):
        try:
            return SourceCrs(parse_crs(given), "manifest")
        except Exception as exc:
            raise IngestError(f"[{entry.section}] crs {given!r} is not usable: {exc}") from exc
    try:
        declared = decide(source, None)
    except IngestError:
        declared = None
    if declared is not None and (not given or source.crs is not None):
        return declared
    return _detect(source.geometry, district_lon, metric_srid, entry)


def _detect(geoms, district_lon: float, metric_srid: int, entry: Entry) -> SourceCrs:
    coords = shapely.get_coordinates(np.array([g for g in geoms if g is not None], dtype=object))
    if not len(coords):
        raise IngestError(
            f"[{entry.section}] '{entry.file}' has no coordinates to detect a CRS from"
        )
    x, y = np.median(coords[:, 0]), np.median(coords[:, 1])
    if abs(x) <= 180 and abs(y) <= 90:
        return SourceCrs(CGCS2000, "detected: degrees, read as CGCS2000 lon/lat (EPSG:4490)")
    if 25e6 <= x < 46e6:
        zone = int(x // 1e6)
        return SourceCrs(4513 + zone - 25, f"detected: Gauss-Krüger with zone prefix {zone}")
    if 1e5 <= x <= 9e5:
        epsg = metric_srid if is_gauss_kruger(metric_srid) else gauss_kruger_epsg(district_lon)
        return SourceCrs(epsg, "detected: Gauss-Krüger metres without zone prefix")
    if 8e6 <= x <= 15.4e6:
        return SourceCrs(WEB_MERCATOR, "detected: Web Mercator metres")
    raise IngestError(
        f"[{entry.section}] cannot tell the CRS of '{entry.file}' (e.g. x={x:,.1f}, y={y:,.1f}): "
        'name it with crs = "EPSG:xxxx"'
    )


def _fit_type(geoms: np.ndarray, kind: str, rows: EntryRows) -> np.ndarray:
    """Each geometry as the column's type: one-part multis unwrapped, singles wrapped, a line in
    pieces merged; a shape of the wrong kind is rejected with what it is."""
    out = np.array(geoms, dtype=object, copy=True)
    for i, g in enumerate(out):
        if g is None:
            continue
        row, t = i + 1, g.geom_type
        parts = shapely.get_parts(g)
        if kind == "MULTIPOLYGON" and t == "Polygon":
            out[i] = shapely.multipolygons([g])
        elif len(parts) == 1 and (kind, t) in (
            ("POLYGON", "MultiPolygon"),
            ("POINT", "MultiPoint"),
        ):
            out[i] = parts[0]
        elif kind == "LINESTRING" and t == "MultiLineString":
            merged = shapely.line_merge(g)
            if merged.geom_type == "LineString":
                out[i] = merged
            else:
                rows.rejected[row] = f"a line in {len(parts)} separate pieces: one road per row"
                out[i] = None
        elif kind.replace("MULTI", "") != t.upper().replace("MULTI", "") or (
            kind in ("POLYGON", "POINT") and t.startswith("Multi")
        ):
            rows.rejected[row] = f"a {t} where {kind.lower()} geometry is expected"
            out[i] = None
    return out


def _map_fields(entry: Entry, spec: TableSpec, attributes: pd.DataFrame, rows: EntryRows) -> None:
    columns = {}
    for column in attributes.columns:
        columns.setdefault(column_key(column), column)
    n = len(attributes)
    for standard, source in entry.fields.items():
        column = columns.get(column_key(source))
        if column is None:
            raise IngestError(
                f"[{entry.section}.fields] {standard} = \"{source}\", but '{entry.file}' has no "
                f"column '{source}'; its columns are {', '.join(map(str, attributes.columns))}"
            )
        cells = attributes[column].tolist()
        if standard in spec.references:
            rows.values[f"ref:{standard}"] = _objects([key_text(v) for v in cells])
        elif standard == "id":
            fspec = FieldSpec("id", "integer", False)
            rows.values["id"] = _objects(_convert_all(cells, fspec, entry, rows))
        else:
            fspec = spec.fields[standard]
            rows.values[standard] = _objects(_convert_all(cells, fspec, entry, rows))
    for standard, value in entry.defaults.items():
        if standard not in rows.values:
            rows.values[standard] = _objects([value] * n)
        else:
            rows.values[standard] = _objects(
                [value if v is None else v for v in rows.values[standard]]
            )
    key = entry.key or (spec.code if spec.code in entry.fields else None)
    key = key or ("id" if "id" in entry.fields else None)
    if key is not None:
        source = entry.fields.get(key, key)
        column = columns.get(column_key(source))
        if column is None:
            raise IngestError(
                f"[{entry.section}] key = \"{entry.key}\", but '{entry.file}' has no such column"
            )
        rows.values["_key"] = _objects([key_text(v) for v in attributes[column].tolist()])
    else:
        rows.values["_key"] = _objects([None] * n)
    rows.values["_row"] = np.arange(1, n + 1)


def _objects(values: list) -> pd.Series:
    """Values as they are: whole numbers stay whole beside empty cells (no float column)."""
    return pd.Series(values, dtype=object)


def _convert_all(cells: list, fspec: FieldSpec, entry: Entry, rows: EntryRows) -> list:
    mapping = entry.values.get(fspec.name, {})
    out = []
    for i, raw in enumerate(cells):
        row = i + 1
        text = key_text(raw)
        if text is not None and text in mapping:
            out.append(mapping[text])
            continue
        if fspec.kind == "list":
            out.append(_aliases(raw))
            continue
        if fspec.allowed is not None and text is not None:
            value = _enumerated(text, fspec)
            if value is None:
                known = ", ".join(map(str, fspec.allowed))
                rows.rejected.setdefault(
                    row,
                    f"{fspec.name} {text!r} is not a known value: map it under "
                    f"[{entry.section.split('[')[0]}.values.{fspec.name}] (values: {known})",
                )
            out.append(value)
            continue
        value, problem = convert(raw, fspec.kind)
        if problem:
            rows.rejected.setdefault(row, f"{fspec.name}: {problem}")
        out.append(value)
    return out


def _enumerated(text: str, fspec: FieldSpec):
    """An enumeration's value written as itself (any case) or as its Chinese label."""
    for value in fspec.allowed:
        if text.lower() == str(value).lower():
            return value
    for value, label in VALUE_ZH.get(fspec.name, {}).items():
        if text == label and value in fspec.allowed:
            return value
    return None


def _aliases(raw) -> list[str]:
    text = key_text(raw)
    if text is None:
        return []
    if text.startswith("["):
        try:
            parsed = json.loads(text)
            return [str(a) for a in parsed if str(a).strip()]
        except (ValueError, TypeError):
            pass
    return [a.strip() for a in _ALIAS_SPLIT.split(text) if a.strip()]
