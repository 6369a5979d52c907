"""Departmental ingest: read → CRS to EPSG:4490 → validate/repair → match → load → quality report.

A department hands over a file (GeoJSON, zipped Shapefile, GeoPackage, CSV with lon/lat or with
addresses only) for a layer declared in ``layers/departments``. :func:`ingest` runs the whole
pipeline on the caller's connection and transaction:

1. read the file (:mod:`layers.readers`) and map its columns to the layer's standard fields
   (:mod:`layers.fields`);
2. decide its CRS (``--crs``, the file's own, or the format's rule), check the coordinates fit it,
   and move them to EPSG:4490 (:mod:`layers.coordinates`, through :mod:`geo.crs`); an
   address-only CSV is geocoded against the standard addresses instead (:mod:`geo.addressing`);
3. check each feature (:mod:`layers.validation`): missing/empty geometry, geometry outside the
   district and duplicate keys are rejected, invalid geometry is repaired, each with its reason;
4. build ``layers.<id>__new``, COPY the good rows in, match them to the standard grid, building
   and address where the layer asks (:mod:`layers.matching`);
5. swap the new table in, update the catalogue, and store the quality report
   (:mod:`layers.quality`) — all in the one transaction, so readers see the old layer or the new
   one, never half of it.

A file that fails as a whole raises :class:`~layers.errors.IngestError` before anything is
written; the caller's transaction then rolls back whatever had begun, and nothing changes.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.engine import Connection

from geo.addressing import geocode
from geo.crs import CGCS2000
from geo.errors import IngestError
from geo.policy import audit
from geo.policy.roles import Viewer
from layers import catalogue, departments, fields, matching, quality, readers, tables, validation
from layers.catalogue import Layer
from layers.coordinates import SourceCrs, check_units, decide, to_storage
from layers.declaration import check_identifier
from layers.quality import Issue, Report

#: stage name, done, total: called as each stage starts (0 of 1) and as rows are copied
Progress = Callable[[str, int, int], None]
STAGES = ("read", "crs", "fields", "geocode", "validate", "load", "match", "publish")
#: above this share of features outside the district the CRS, not the rows, is taken to be wrong
OUTSIDE_SHARE_LIMIT = 0.5
#: who ingests from the command line: someone with the database's keys, so an administrator
OPERATOR = Viewer(username="cli", role="admin")

__all__ = ["IngestError", "Progress", "drop_layer", "ingest"]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class _Clock:
    """Seconds per stage, and the progress callback told as each stage starts."""

    def __init__(self, progress: Progress | None):
        self.timings: dict[str, float] = {}
        self.progress = progress

    @contextmanager
    def stage(self, name: str):
        if self.progress:
            self.progress(name, 0, 1)
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(time.perf_counter() - started, 4)
        if self.progress:
            self.progress(name, 1, 1)


def _district(conn: Connection, metric_srid: int):
    """The district (admin_areas level 1) in the metric CRS, and its centre's longitude."""
    row = conn.execute(
        text("""SELECT ST_AsBinary(ST_Transform(ST_Union(geom), :srid)),
                       ST_X(ST_Centroid(ST_Union(geom)))
                FROM admin_areas WHERE level = 1"""),
        {"srid": metric_srid},
    ).one()
    if row[0] is None:
        raise IngestError("the district boundary (admin_areas, level 1) is not loaded")
    return shapely.from_wkb(bytes(row[0])), float(row[1])


def _declared_layer(conn: Connection, layer_id: str, department: str) -> Layer:
    try:
        spec = departments.get(layer_id, conn)
    except departments.UnknownLayer as exc:
        raise IngestError(str(exc)) from exc
    if not spec.owned_by(department):
        raise IngestError(
            f"layer '{layer_id}' belongs to {spec.department}: --dept {department!r} does not "
            "name that department"
        )
    return spec


def _geocode_rows(
    conn: Connection, source: readers.Source, rejected: dict[int, str]
) -> tuple[np.ndarray, dict[int, str], dict[str, int]]:
    """Points (EPSG:4490) of an address-only CSV from the standard addresses."""
    texts = [
        (i + 1, str(t))
        for i, t in enumerate(source.addresses.tolist())
        if (i + 1) not in rejected and t is not None and str(t).strip()
    ]
    geoms = np.full(source.rows, None, dtype=object)
    failures: dict[int, str] = {}
    tiers: dict[str, int] = {}
    for g in geocode(conn, texts):
        if g.matched:
            geoms[g.key - 1] = shapely.Point(g.lon, g.lat)
            tiers[f"geocoded_{g.tier}"] = tiers.get(f"geocoded_{g.tier}", 0) + 1
        else:
            failures[g.key] = f"address not geocoded: {g.reason}"
    for i, t in enumerate(source.addresses.tolist()):
        row = i + 1
        if row not in rejected and row not in failures and (t is None or not str(t).strip()):
            failures[row] = "empty address: nothing to geocode"
    return geoms, failures, tiers


def _refuse_if_crs_wrong(checked: validation.Checked, present: int, crs: SourceCrs) -> None:
    outside = sum(1 for r in checked.rejected.values() if r.startswith("outside the district"))
    if present and outside / present > OUTSIDE_SHARE_LIMIT:
        raise IngestError(
            f"{outside} of {present} features lie outside the district when read as {crs.label} "
            f"({crs.origin}): the CRS is most likely wrong (pass the right one with --crs), or "
            "the file covers far more than the district (clip it first)"
        )


def ingest(
    conn: Connection,
    path: Path | str,
    layer_id: str,
    department: str,
    crs: str | None = None,
    *,
    file_name: str | None = None,
    viewer: Viewer = OPERATOR,
    progress: Progress | None = None,
    metric_srid: int = 4549,
) -> Report:
    """Ingest one file into a declared departmental layer; see the module docstring.

    Runs on ``conn`` in its transaction (commit is the caller's); returns the stored report,
    and records the load in the audit log as ``viewer``. Raises IngestError, naming what to
    fix, when the file fails as a whole. ``metric_srid`` (the spatial settings') measures metres.
    """
    started_at = datetime.now(UTC)
    clock = _Clock(progress)
    path = Path(path)
    name = file_name or path.name
    spec = _declared_layer(conn, layer_id, department)
    rejected: dict[int, str] = {}
    notes: list[str] = []

    with clock.stage("read"):
        source = readers.read(path, name, layer_hint=layer_id)
        notes.extend(source.notes)

    with clock.stage("crs"):
        district, district_lon = _district(conn, metric_srid)
        if source.geometry is None:
            if crs:
                decide(source, crs)  # a bad --crs is an error even where it is not needed
                notes.append(f"--crs {crs} not used: positions come from the standard addresses")
            source_crs = SourceCrs(CGCS2000, "standard addresses (geocoded, EPSG:4490)")
        else:
            source_crs = decide(source, crs)
            if crs and source.crs is not None:
                declared = source.crs.to_epsg(min_confidence=25)
                if declared is not None and str(declared) != source_crs.label.removeprefix("EPSG:"):
                    notes.append(
                        f"the file declares EPSG:{declared}; read as {source_crs.label} as --crs said"
                    )
            rejected.update(source.row_problems)
            for row, reason in check_units(source.geometry, source_crs, district_lon).items():
                rejected.setdefault(row, reason)

    with clock.stage("fields"):
        mapped = fields.map_fields(spec, source.attributes)
        for row, reason in mapped.rejected.items():
            rejected.setdefault(row, reason)
        if mapped.unmapped:
            notes.append("columns not used by the layer: " + ", ".join(mapped.unmapped))
        missing = [f.name for f in spec.fields if f.name not in mapped.columns]
        if missing:
            notes.append("declared fields absent from the file (left empty): " + ", ".join(missing))

    matched: dict[str, int] = {}
    with clock.stage("geocode"):
        if source.geometry is None:
            geoms, failures, tiers = _geocode_rows(conn, source, rejected)
            rejected.update(failures)
            matched.update(tiers)
        else:
            raw = np.array(source.geometry, dtype=object, copy=True)
            for row in rejected:
                raw[row - 1] = None
            geoms = to_storage(raw, source_crs)

    with clock.stage("validate"):
        present = sum(1 for i, g in enumerate(geoms) if g is not None and (i + 1) not in rejected)
        checked = validation.check(
            geoms, set(rejected), district, metric_srid, spec.ingest.district_tolerance_m
        )
        _refuse_if_crs_wrong(checked, present, source_crs)
        rejected.update(checked.rejected)
        if spec.ingest.key is not None:
            rejected.update(
                fields.duplicate_keys(mapped.values[spec.ingest.key], spec.ingest.key, rejected)
            )
        keep = [i for i in range(source.rows) if (i + 1) not in rejected]
        if not keep:
            first = "; ".join(f"row {r}: {why}" for r, why in sorted(rejected.items())[:3])
            raise IngestError(
                f"none of the {source.rows} records can be loaded ({first}): nothing was changed"
            )
        kept = checked.geometry[keep]
        geometry_type = validation.storage_type(kept)
        kept = validation.promote(kept, geometry_type)

    with clock.stage("load"):
        tables.lock(conn, spec.id)
        owner = tables.catalogue_owner(conn, spec.id)
        if owner is not None and owner != spec.table:
            raise IngestError(
                f"layer id '{spec.id}' is already the catalogue's name for table {owner}: "
                "a departmental layer cannot replace it"
            )
        replaced = tables.count(conn, spec.id)
        table = tables.create_new(conn, spec, geometry_type)
        values = {k: [v[i] for i in keep] for k, v in mapped.values.items()}
        tables.copy_rows(
            conn,
            table,
            spec,
            [i + 1 for i in keep],
            values,
            kept,
            (lambda done, total: progress("load", done, total)) if progress else None,
        )
        tables.index_new(conn, spec)

    warnings: list[tuple[int, str | None, str]] = [(r, f, why) for r, f, why in mapped.warnings]
    with clock.stage("match"):
        if "grid" in spec.ingest.match:
            matched["grid"] = matching.match_grid(conn, table)
        if "building" in spec.ingest.match:
            matched["building"] = matching.match_building(
                conn, table, spec.ingest.building_within_m, metric_srid
            )
        if "address" in spec.ingest.match:
            texts = {}
            if spec.ingest.address_field:
                texts = {
                    i + 1: mapped.values[spec.ingest.address_field][i]
                    for i in keep
                    if mapped.values[spec.ingest.address_field][i]
                }
            counts, far = matching.match_address(conn, table, spec, texts, metric_srid)
            matched.update(counts)
            warnings.extend((row, spec.ingest.address_field, why) for row, why in far)

    with clock.stage("publish"):
        tables.swap(conn, spec.id)
        catalogue.register(conn, replace(spec, source_crs=source_crs.label))
        catalogue.refresh(conn, spec.id)

    kept_rows = {i + 1 for i in keep}
    issues = _issues(rejected, checked, warnings, kept_rows)
    finished_at = datetime.now(UTC)
    clock.timings["total"] = round((finished_at - started_at).total_seconds(), 4)
    report = Report(
        layer_id=spec.id,
        department=department,
        actor=viewer.username,
        file_name=name,
        file_format=source.format,
        file_bytes=path.stat().st_size,
        file_sha256=_sha256(path),
        encoding=source.encoding,
        source_crs=source_crs.label,
        crs_origin=source_crs.origin,
        geometry_type=geometry_type,
        rows_in=source.rows,
        loaded=len(keep),
        repaired=sum(1 for r in checked.repaired if r in kept_rows),
        rejected=len(rejected),
        started_at=started_at,
        finished_at=finished_at,
        replaced=replaced,
        matched=matched,
        timings=clock.timings,
        issues=issues,
        notes=notes,
    )
    quality.save(conn, report)
    audit.record(
        conn,
        viewer,
        "ingest",
        "layer",
        spec.id,
        detail={
            "report": report.id,
            "file": name,
            "sha256": report.file_sha256,
            "loaded": report.loaded,
            "rejected": report.rejected,
            "replaced": replaced,
        },
    )
    return report


def _issues(
    rejected: dict[int, str],
    checked: validation.Checked,
    warnings: list[tuple[int, str | None, str]],
    kept_rows: set[int],
) -> list[Issue]:
    """Every row's repair, rejection and warnings, by row number."""
    out: list[Issue] = []
    for row, reason in rejected.items():
        lon, lat = checked.where.get(row, (None, None))
        out.append(Issue(row, "rejected", reason, lon=lon, lat=lat))
    for row, reason in checked.repaired.items():
        if row in kept_rows:
            geom = checked.geometry[row - 1]
            point = shapely.point_on_surface(geom)
            out.append(Issue(row, "repaired", reason, lon=round(point.x, 7), lat=round(point.y, 7)))
    for row, field, reason in warnings:
        out.append(Issue(row, "warning", reason, field=field))
    order = {"rejected": 0, "repaired": 1, "warning": 2}
    return sorted(out, key=lambda i: (i.row, order[i.kind]))


def drop_layer(conn: Connection, layer_id: str, viewer: Viewer = OPERATOR) -> bool:
    """Remove a departmental layer (table and catalogue entry; its reports are kept), audited.

    True if there was a table to drop."""
    dropped = tables.drop(conn, check_identifier(layer_id))
    if dropped:
        audit.record(conn, viewer, "drop", "layer", layer_id)
    return dropped
