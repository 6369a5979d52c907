"""The quality report of an ingest: what came in, what was loaded, repaired and rejected, and why.

A department hands over a file and must be able to see, row by row, what happened to it: counts in
/ loaded / repaired / rejected (in = loaded + rejected; repaired rows are loaded), each repaired or
rejected row with its row number and reason, warnings (a value that would not convert, an address
text pointing far from the feature), the CRS found and where it came from, how features matched
the standard grid / building / address, and how long each stage took. Reports are kept in PostGIS
(``ingest.reports``, migration 0003) so that every process can serve them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.engine import Connection

KINDS = ("rejected", "repaired", "warning")
KIND_ZH = {"rejected": "拒绝", "repaired": "已修复", "warning": "提示"}


@dataclass(frozen=True)
class Issue:
    """One row's repair, rejection or warning; ``lon``/``lat`` (EPSG:4490) where it is known."""

    row: int
    kind: str
    reason: str
    field: str | None = None
    lon: float | None = None
    lat: float | None = None


@dataclass
class Report:
    """The quality report of one ingest (see the module docstring)."""

    layer_id: str
    department: str
    actor: str
    file_name: str
    file_format: str
    file_bytes: int
    file_sha256: str
    encoding: str | None
    source_crs: str
    crs_origin: str
    geometry_type: str | None
    rows_in: int
    loaded: int
    repaired: int
    rejected: int
    started_at: datetime
    finished_at: datetime
    replaced: int | None = None
    matched: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    status: str = "loaded"
    id: int | None = None

    @property
    def warnings(self) -> int:
        return sum(1 for i in self.issues if i.kind == "warning")

    def to_dict(self) -> dict:
        """JSON-ready: datetimes as ISO 8601 text."""
        body = asdict(self)
        body["warnings"] = self.warnings
        body["started_at"] = self.started_at.isoformat()
        body["finished_at"] = self.finished_at.isoformat()
        return body

    def summary(self) -> str:
        """A few lines for a terminal."""
        lines = [
            f"layer {self.layer_id} ← {self.file_name} ({self.file_format}, {self.source_crs}, "
            f"{self.crs_origin})",
            f"in {self.rows_in} · loaded {self.loaded} · repaired {self.repaired} · "
            f"rejected {self.rejected} · warnings {self.warnings}",
        ]
        if self.matched:
            lines.append("matched: " + ", ".join(f"{k} {v}" for k, v in self.matched.items()))
        if self.replaced is not None:
            lines.append(f"replaced the previous {self.replaced} features")
        return "\n".join(lines)


def save(conn: Connection, report: Report) -> int:
    """Store the report in the caller's transaction (it commits with the load); returns its id."""
    body = report.to_dict()
    report.id = conn.execute(
        text("""
        INSERT INTO ingest.reports (layer_id, department, actor, status, file_name, file_format,
            file_bytes, file_sha256, encoding, source_crs, crs_origin, geometry_type, rows_in,
            loaded, repaired, rejected, warnings, replaced, matched, timings, issues, notes,
            started_at, finished_at)
        VALUES (:layer_id, :department, :actor, :status, :file_name, :file_format, :file_bytes,
            :file_sha256, :encoding, :source_crs, :crs_origin, :geometry_type, :rows_in, :loaded,
            :repaired, :rejected, :warnings, :replaced, CAST(:matched AS jsonb),
            CAST(:timings AS jsonb), CAST(:issues AS jsonb), CAST(:notes AS jsonb),
            :started_at, :finished_at)
        RETURNING id
        """),
        {
            **{k: body[k] for k in body if k not in ("matched", "timings", "issues", "notes")},
            "started_at": report.started_at,
            "finished_at": report.finished_at,
            "matched": json.dumps(report.matched),
            "timings": json.dumps(report.timings),
            "issues": json.dumps(body["issues"], ensure_ascii=False),
            "notes": json.dumps(report.notes, ensure_ascii=False),
        },
    ).scalar_one()
    return report.id


_COLUMNS = """id, layer_id, department, actor, status, file_name, file_format, file_bytes,
    file_sha256, encoding, source_crs, crs_origin, geometry_type, rows_in, loaded, repaired,
    rejected, warnings, replaced, matched, timings, notes, started_at, finished_at"""


def _from_row(row) -> dict:
    body = dict(row._mapping)
    body["started_at"] = body["started_at"].isoformat()
    body["finished_at"] = body["finished_at"].isoformat()
    return body


def get(conn: Connection, report_id: int) -> dict | None:
    """One report with its issues, as :meth:`Report.to_dict` gives it, or None."""
    row = conn.execute(
        text(f"SELECT {_COLUMNS}, issues FROM ingest.reports WHERE id = :id"), {"id": report_id}
    ).first()
    return None if row is None else _from_row(row)


def for_layer(conn: Connection, layer_id: str, limit: int = 100) -> list[dict]:
    """The layer's reports, newest first, without their issue lists (counts only)."""
    rows = conn.execute(
        text(
            f"SELECT {_COLUMNS} FROM ingest.reports WHERE layer_id = :layer "
            "ORDER BY id DESC LIMIT :limit"
        ),
        {"layer": layer_id, "limit": limit},
    ).all()
    return [_from_row(r) for r in rows]
