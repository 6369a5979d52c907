"""``onemap city import``: a district's own base data, from the files its manifest names, into
the base tables — validated as a whole first, then loaded in one transaction.

1. *Read*: each file as ingest reads it (format checked, CRS decided or detected, geometry moved
   to EPSG:4490 and repaired or rejected row by row, outside-the-district rows rejected), columns
   and values mapped as the manifest says.
2. *Build*, parents first: references resolved, rows placed in their community and grid, codes
   allocated where missing, derived fields filled, every row checked (``layers.basedata.build``).
3. *Stage*: the rows are copied into temporary tables shaped like the base tables, and every
   CHECK, NOT NULL, UNIQUE and FOREIGN KEY rule of the real table is evaluated row by row, so
   that the database's own rules reject rows with a reason instead of failing the load.
4. *Load*, only if nothing was rejected (or ``allow_rejects``), in the one transaction the caller
   commits; a refused import changes nothing. Over a database that holds data, it says what to do
   with it: ``replace`` swaps out the district of the same code (only its rows, when other
   districts are loaded beside it) or, for another code, everything loaded; ``beside`` loads a new
   district next to those loaded (a city of districts), its ids moved past theirs. Without either,
   an import over existing data is refused.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import contextmanager
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import shapely
from sqlalchemy import text
from sqlalchemy.engine import Connection

from geo import district
from geo.errors import IngestError
from geo.policy import audit
from geo.policy.roles import Viewer
from layers.basedata.build import (
    BUILDERS,
    Built,
    Context,
    Work,
    assign_ids,
    check_rows,
    combine,
    finish,
    positions_from_parents,
    resolve_references,
)
from layers.basedata.manifest import Manifest
from layers.basedata.report import ImportReport, Issue
from layers.basedata.rows import EntryRows, read_entry
from layers.basedata.schema import SPECS
from layers.catalogue import refresh, register_base_layers
from layers.coordinates import to_metric

#: stage, table, done, total
Progress = Callable[[str, str, int, int], None]
OPERATOR = Viewer(username="cli:import", role="admin")
#: a district loaded beside others may overlap them by this share of its area (drawings of
#: neighbouring districts do not meet exactly); more means a wrong code or a wrong file
OVERLAP_SHARE = 0.02


def import_district(
    conn: Connection,
    manifest: Manifest,
    *,
    replace: bool = False,
    beside: bool = False,
    allow_rejects: bool = False,
    metric_srid: int = 4549,
    hash_key: str,
    viewer: Viewer = OPERATOR,
    progress: Progress | None = None,
) -> ImportReport:
    """Import the district the manifest describes, on ``conn`` in its transaction; the report
    says ``loaded`` (commit) or ``refused`` (roll back: nothing may be kept)."""
    report = ImportReport(
        manifest.name, manifest.origin, datetime.now(UTC), replace=replace, beside=beside
    )
    srid = manifest.metric_srid or metric_srid
    before = district.counts(conn)
    loaded = district.loaded(conn)
    if replace and beside:
        report.problems.append("--replace and --beside exclude each other: choose one")
        return _close(report, "refused")
    if any(before.values()) and not (replace or beside):
        held = ", ".join(f"{n:,} {t}" for t, n in before.items() if n)
        names = ", ".join(f"{name} {code[:6]}" for code, name in loaded.items()) or "no district"
        report.problems.append(
            f"数据库中已有辖区数据 — the database already holds data ({names}; {held}): pass "
            "--replace to swap out the district of the same code (or everything, for another "
            "code), or --beside to load this district next to those loaded"
        )
        return _close(report, "refused")
    ctx = Context(srid, hash_key, manifest.code, {}, manifest.tolerance_m)
    works: dict[str, Work] = {}
    district_metric, district_lon = None, 120.0
    with _timed(report, "validate"):
        for table, entries in manifest.entries.items():
            spec = SPECS[table]
            if progress:
                progress("read", table, 0, len(entries))
            tr = report.table(table)
            missing = [p for p in _parents(table) if p in manifest.entries and p not in ctx.built]
            if missing:
                tr.failed = f"not checked: {', '.join(missing)} could not be read"
                report.problems.append(f"{table}: {tr.failed}")
                continue
            parts: list[EntryRows] = []
            try:
                for entry in entries:
                    part = read_entry(manifest, entry, spec, district_metric, district_lon, srid)
                    parts.append(part)
                    tr.files.append(part.file)
            except IngestError as exc:
                tr.failed = str(exc)
                report.problems.append(f"{table}: {exc}")
                for part in parts:
                    tr.rows_read += len(part.values)
                continue
            work = combine(spec, parts)
            tr.rows_read = len(work.c["_row"])
            problem = _build(work, ctx)
            if problem:
                tr.failed = problem
                report.problems.append(f"{table}: {problem}")
            _stage(conn, work, ctx)
            ctx.built[table] = finish(work)
            works[table] = work
            _tally(report, work)
            if table == "admin_areas" and not problem:
                district_metric, district_lon = _district(ctx, srid)
                report.district_outline = _outline(ctx)
                refusal = _refuse_placement(conn, ctx, loaded, beside, viewer.district)
                if refusal:
                    report.problems.append(refusal)
                    return _close(report, "refused")
            if progress:
                progress("read", table, len(entries), len(entries))
    if report.rejected and not allow_rejects:
        report.problems.append(
            f"{report.rejected:,} 行被拒绝，见下方各表的逐行问题 — {report.rejected:,} row(s) "
            "rejected (see each table's issues): fix the files or the manifest, or load the rest "
            "with --allow-rejects"
        )
    if report.problems:  # a table that could not be read, or rejected rows not allowed
        return _close(report, "refused")
    with _timed(report, "load"):
        code = ctx.district_code
        report.kept = {c: n for c, n in loaded.items() if c != code and (beside or code in loaded)}
        if report.kept and code in loaded:  # one district of several: its rows only
            report.replaced = {t: n for t, n in district.delete(conn, code).items() if n}
        elif not report.kept:
            report.replaced = {t: n for t, n in before.items() if n}
            district.truncate(conn)
        moved = _moves(conn, works) if report.kept else {}
        for table in district.TABLES:
            if table not in works:
                continue
            cols = district.columns(table)
            quoted = ", ".join(f'"{c}"' for c in cols)
            conn.execute(
                text(
                    f"INSERT INTO {table} ({quoted}) SELECT {_moved(table, cols, moved)} "
                    f"FROM {_stage_name(table)} WHERE NOT _rejected ORDER BY _ix"
                )
            )
            if progress:
                progress("load", table, 1, 1)
        district.reset_ids(conn)
        for name in works:
            conn.execute(text(f"DROP TABLE IF EXISTS {_stage_name(name)}"))
        register_base_layers(conn)
        refresh(conn)
    with _timed(report, "checksum"):
        counts, _, checksum = district.checksums(conn)
        report.counts, report.checksum = counts, checksum
    audit.record(
        conn,
        viewer,
        "import",
        "district",
        manifest.name[:100],
        detail={"manifest": manifest.origin, "counts": counts, "replaced": report.replaced},
    )
    return _close(report, "loaded")


@contextmanager
def _timed(report: ImportReport, name: str):
    """The seconds a step took, in the report's timings."""
    started = time.perf_counter()
    try:
        yield
    finally:
        report.timings[name] = round(time.perf_counter() - started, 3)


def _close(report: ImportReport, status: str) -> ImportReport:
    report.status = status
    report.finished_at = datetime.now(UTC)
    return report


def _parents(table: str) -> list[str]:
    return sorted({r.parent for r in SPECS[table].references.values() if r.parent != table})


def _build(work: Work, ctx: Context) -> str | None:
    resolve_references(work, ctx)
    builder = BUILDERS.get(work.spec.name)
    problem = None
    if builder is not None:
        problem = builder(work, ctx)
    elif work.spec.geometry_from:
        positions_from_parents(work, ctx)
    check_rows(work)
    assign_ids(work)
    return problem


def _stage_name(table: str) -> str:
    return f"pg_temp.import_{table}"


def _stage(conn: Connection, work: Work, ctx: Context) -> None:
    """Copy the rows into a temporary copy of the table (no rules), then evaluate each of the
    real table's rules row by row; a row that breaks one is rejected with its name."""
    table = work.spec.name
    stage = _stage_name(table)
    cols = district.columns(table)
    conn.execute(text(f"DROP TABLE IF EXISTS {stage}"))
    conn.execute(text(f"CREATE TEMP TABLE import_{table} AS SELECT * FROM {table} WITH NO DATA"))
    conn.execute(
        text(
            f"ALTER TABLE {stage} ADD COLUMN _ix integer, ADD COLUMN _rejected boolean DEFAULT false"
        )
    )
    keep = work.alive()
    kept = np.flatnonzero(keep)
    frame = pd.DataFrame({c: pd.Series([work.c[c][i] for i in kept], dtype=object) for c in cols})
    frame["_ix"] = kept
    district.copy_frame(conn, table, frame, [*cols, "_ix"], target=stage)
    for ix, why in _broken_rules(conn, table, stage):
        work.reject(ix, why)
    conn.execute(
        text(f"UPDATE {stage} SET _rejected = true WHERE _ix = ANY(:ix)"),
        {"ix": [int(i) for i in work.rejected]},
    )


def _broken_rules(conn: Connection, table: str, stage: str) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    rules = conn.execute(
        text("""SELECT conname, contype, pg_get_constraintdef(oid) AS def,
                       (SELECT array_agg(attname ORDER BY attnum) FROM pg_attribute
                         WHERE attrelid = c.conrelid AND attnum = ANY(c.conkey)) AS cols,
                       confrelid::regclass::text AS parent,
                       (SELECT array_agg(attname ORDER BY attnum) FROM pg_attribute
                         WHERE attrelid = c.confrelid AND attnum = ANY(c.confkey)) AS parent_cols
                FROM pg_constraint c WHERE conrelid = CAST(:t AS regclass)
                  AND contype IN ('c', 'u', 'p', 'f')"""),
        {"t": table},
    ).all()
    for name, kind, definition, cols, parent, parent_cols in rules:
        live = "NOT _rejected"
        if kind == "c":
            condition = definition.removeprefix("CHECK ").removesuffix(" NOT VALID")
            sql = f"SELECT _ix FROM {stage} WHERE {live} AND NOT {condition}"
            why = f"breaks the rule {name}: {condition}"
        elif kind in ("u", "p"):
            key = ", ".join(f'"{c}"' for c in cols)
            present = " AND ".join(f'"{c}" IS NOT NULL' for c in cols)
            sql = (
                f"SELECT _ix FROM (SELECT _ix, row_number() OVER (PARTITION BY {key} "
                f"ORDER BY _ix) AS n FROM {stage} WHERE {live} AND {present}) d WHERE n > 1"
            )
            why = f"repeats the {' + '.join(cols)} of another row"
        else:
            col, pcol = cols[0], parent_cols[0]
            target = _stage_name(parent)
            staged = conn.execute(text(f"SELECT to_regclass('{target}')")).scalar()
            # a table the manifest does not load is empty after the import: nothing to refer to
            found = (
                f'EXISTS (SELECT 1 FROM {target} p WHERE p."{pcol}" = s."{col}" '
                "AND NOT p._rejected)"
                if staged
                else "false"
            )
            sql = (
                f'SELECT _ix FROM {stage} s WHERE {live} AND s."{col}" IS NOT NULL AND NOT {found}'
            )
            why = f"its {col} refers to no {parent} row"
        out.extend((int(ix), why) for ix in conn.execute(text(sql)).scalars())
    not_null = conn.execute(
        text("""SELECT attname FROM pg_attribute WHERE attrelid = CAST(:t AS regclass)
                AND attnum > 0 AND attnotnull AND NOT attisdropped"""),
        {"t": table},
    ).scalars()
    for col in not_null:
        if col in district.columns(table):
            sql = f'SELECT _ix FROM {stage} WHERE NOT _rejected AND "{col}" IS NULL'
            out.extend((int(ix), f"missing {col}") for ix in conn.execute(text(sql)).scalars())
    return out


def _tally(report: ImportReport, work: Work) -> None:
    tr = report.table(work.spec.name)
    frame = work.c
    tr.rejected = len(work.rejected)
    tr.loaded = len(frame["_row"]) - tr.rejected
    tr.repaired = sum(1 for i in work.repaired if i not in work.rejected)
    tr.generated_codes = work.generated
    tr.derived = {k: v for k, v in work.derived.items() if k != "geom"} | (
        {"位置取自上级 position from parent": work.derived["geom"]}
        if "geom" in work.derived
        else {}
    )

    def issue(i: int, severity: str, why: str, field: str | None) -> Issue:
        lon, lat = work.where.get(i, (None, None))
        geom = frame["geom"][i] if "geom" in frame else None
        if geom is not None:
            p = geom if geom.geom_type == "Point" else shapely.point_on_surface(geom)
            lon, lat = round(p.x, 6), round(p.y, 6)
        row = int(frame["_row"][i])
        return Issue(work.spec.name, frame["_file"][i], row, severity, why, field, lon, lat)

    kept = [(i, "repaired", why, "geom") for i, why in work.repaired.items()]
    kept += [(i, "warning", why, fld) for i, fld, why in work.warnings]
    for i, why in sorted(work.rejected.items()):
        tr.add(issue(i, "rejected", why, None))
    for i, severity, why, field in sorted(kept, key=lambda k: (k[1] != "repaired", k[0])):
        if i not in work.rejected:
            tr.add(issue(i, severity, why, field))


def _refuse_placement(
    conn: Connection, ctx: Context, loaded: dict[str, str], beside: bool, bound: str | None
) -> str | None:
    """Why this district cannot go where the options say (None: it can): an administrator bound
    to a district imports that district only; loaded beside others, it must be a district not
    loaded yet, and another area than theirs."""
    code = ctx.district_code
    if bound is not None and (code or "")[:6] != bound:
        return (
            f"只能导入本区 {bound} — you administer district {bound} only; this manifest is "
            f"district {(code or '?')[:6]}"
        )
    if not beside:
        return None
    if code in loaded:
        return (
            f"辖区 {loaded[code]} ({code[:6]}) 已导入 — district {code[:6]} is loaded already: "
            "pass --replace to swap it out (the other districts stay)"
        )
    top = _boundary(ctx)
    overlaps = conn.execute(
        text("""WITH new AS (SELECT ST_GeomFromWKB(:g, 4490) AS geom)
                SELECT a.code, a.name,
                       ST_Area(ST_Intersection(a.geom, new.geom)::geography)
                       / nullif(ST_Area(new.geom::geography), 0) AS share
                FROM admin_areas a, new WHERE a.level = 1 AND ST_Intersects(a.geom, new.geom)
                ORDER BY share DESC"""),
        {"g": shapely.to_wkb(top)},
    ).all()
    for other, name, share in overlaps:
        if share and share > OVERLAP_SHARE:
            return (
                f"与{name}重叠 {share:.0%} — the district overlaps {name} ({other[:6]}) by "
                f"{share:.0%} of its area: a district loaded beside others must be another area "
                "(check the district's code and boundary file)"
            )
    return None


def _moves(conn: Connection, works: dict[str, Work]) -> dict[str, int]:
    """How far each table's staged ids move to pass the ids loaded: not at all when they are
    free already (a district exported from this city comes back as it was), else just past."""
    out = {}
    for table, last in district.last_ids(conn).items():
        if table in works:
            first = conn.execute(
                text(f"SELECT min(id) FROM {_stage_name(table)} WHERE NOT _rejected")
            ).scalar()
            out[table] = max(0, last - first + 1) if first is not None else 0
    return out


def _moved(table: str, cols: list[str], moved: dict[str, int]) -> str:
    """The staged columns to insert, ids (and references to ids) moved past those loaded."""
    refs = district.id_references(table)
    out = []
    for c in cols:
        shift = moved.get(table) if c == "id" else moved.get(refs.get(c, ""))
        out.append(f'"{c}" + {int(shift)}' if shift else f'"{c}"')
    return ", ".join(out)


def _boundary(ctx: Context):
    """The district's own shape, among the areas built (the one of level 1)."""
    areas = ctx.built["admin_areas"].c
    return next(g for g, level in zip(areas["geom"], areas["level"], strict=True) if level == 1)


def _district(ctx: Context, srid: int):
    top = _boundary(ctx)
    metric = to_metric(np.array([top], dtype=object), srid)[0]
    return metric, float(shapely.centroid(top).x)


def _outline(ctx: Context) -> list:
    simple = shapely.simplify(_boundary(ctx), 0.0005)
    return [
        [[round(float(x), 5), round(float(y), 5)] for x, y in shapely.get_coordinates(ring)]
        for ring in shapely.get_exterior_ring(shapely.get_parts(simple))
    ]


__all__ = ["Built", "import_district"]
