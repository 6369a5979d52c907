"""The quality report of a district import: per table, rows read / loaded / repaired / rejected
and why, each problem row with where it is, so that the HTML page can put it on a map."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime


@dataclass
class Issue:
    table: str
    file: str
    row: int | None  # the record's number in its file, from 1; None for the file as a whole
    severity: str  # rejected, repaired, warning
    reason: str
    field: str | None = None
    lon: float | None = None
    lat: float | None = None


@dataclass
class FileRead:
    file: str
    format: str
    rows: int
    crs: str | None = None
    crs_origin: str | None = None
    encoding: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class TableReport:
    table: str
    files: list[FileRead] = field(default_factory=list)
    rows_read: int = 0
    loaded: int = 0
    repaired: int = 0
    rejected: int = 0
    generated_codes: int = 0
    derived: dict[str, int] = field(default_factory=dict)  # field → rows the import filled in
    failed: str | None = None  # why the table as a whole could not be read
    issues: list[Issue] = field(default_factory=list)

    def add(self, issue: Issue) -> None:
        self.issues.append(issue)


@dataclass
class ImportReport:
    district: str
    manifest: str
    started_at: datetime
    status: str = "validating"  # loaded, refused
    replace: bool = False
    beside: bool = False  # loaded next to the districts there were
    kept: dict[str, str] = field(default_factory=dict)  # other districts left as they were
    problems: list[str] = field(default_factory=list)  # what refused the import as a whole
    tables: dict[str, TableReport] = field(default_factory=dict)
    replaced: dict[str, int] = field(default_factory=dict)  # rows there were before, by table
    counts: dict[str, int] = field(default_factory=dict)  # rows there are after, by table
    checksum: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    finished_at: datetime | None = None
    district_outline: list | None = None  # [[lon, lat], …] rings, for the map

    @property
    def rejected(self) -> int:
        return sum(t.rejected for t in self.tables.values())

    @property
    def loaded(self) -> bool:
        return self.status == "loaded"

    def table(self, name: str) -> TableReport:
        return self.tables.setdefault(name, TableReport(name))

    def summary(self) -> str:
        if self.loaded:
            total = sum(t.loaded for t in self.tables.values())
            return f"loaded {total:,} rows into {len(self.tables)} tables of {self.district}"
        first = self.problems[0] if self.problems else "rows were rejected"
        return f"refused, nothing was changed: {first}"

    def to_json(self) -> dict:
        out = asdict(self)
        out["started_at"] = self.started_at.isoformat()
        out["finished_at"] = self.finished_at.isoformat() if self.finished_at else None
        out["summary"] = self.summary()
        out["rejected"] = self.rejected
        return out
