"""传感器读数分区: ``sensor_readings`` is partitioned by month (migration 0018).

PostgreSQL's declarative partitioning, ``PARTITION BY RANGE (observed_at)``: one partition per
calendar month in UTC, ``sensor_readings_YYYYMM`` holding ``[YYYY-MM-01, next month)``, and a
DEFAULT partition, ``sensor_readings_default``, that catches a reading of a month without its own
partition (so no reading is ever refused for its date).

* :func:`ensure_months` creates the missing monthly partitions from the earliest month holding
  data to ``ahead`` months past now; :func:`ensure_for` creates those of the months a batch names
  (one small catalogue query per batch when they exist), after which ingest writes straight into
  them. A month whose readings sit in the DEFAULT partition gets its partition all the same: the
  rows are moved out of the default into it in the same transaction.
* :func:`drop_older_than` is the retention (``ONEMAP_READINGS_RETENTION_MONTHS``): whole monthly
  partitions older than the setting are detached and dropped, never a partial delete; the
  DEFAULT partition is never dropped.
* :func:`partitions` lists them: name, range, rows (the planner's estimate).

Creating a partition takes an ACCESS EXCLUSIVE lock on ``sensor_readings`` until commit, so
months are best created ahead (``onemap db partitions``); the first batch of a month without one
creates it itself. Concurrent creators are serialised by a transaction-scoped advisory lock.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime

from sqlalchemy import text
from sqlalchemy.engine import Connection

PARENT = "sensor_readings"
DEFAULT = "sensor_readings_default"
#: the advisory lock under which partitions are created and dropped
PARTITIONS_LOCK = 140_018
_MONTHLY = re.compile(r"^sensor_readings_(\d{4})(\d{2})$")


def is_partition(name: str) -> bool:
    """Whether a table name is one of the readings' partitions (monthly or the default)."""
    return name == DEFAULT or _MONTHLY.match(name) is not None


@dataclass
class Partition:
    name: str
    month: date | None  # None: the DEFAULT partition
    bound: str
    rows: int  # the planner's estimate (pg_class.reltuples), 0 before the first ANALYZE

    def to_dict(self) -> dict:
        out = asdict(self)
        out["month"] = self.month.isoformat()[:7] if self.month else None
        return out


def month_of(moment: datetime | date) -> date:
    if isinstance(moment, datetime):
        moment = moment.astimezone(UTC) if moment.tzinfo else moment
    return date(moment.year, moment.month, 1)


def add_months(month: date, n: int) -> date:
    index = month.year * 12 + month.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


def name_of(month: date) -> str:
    return f"{PARENT}_{month:%Y%m}"


def partitions(conn: Connection) -> list[Partition]:
    """The partitions of ``sensor_readings``, the monthly ones in time order, the default last."""
    rows = conn.execute(
        text("""SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound,
                       greatest(c.reltuples, 0)::bigint AS rows
                FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                WHERE i.inhparent = to_regclass(:parent)"""),
        {"parent": PARENT},
    ).all()
    out = []
    for name, bound, estimate in rows:
        found = _MONTHLY.match(name)
        month = date(int(found[1]), int(found[2]), 1) if found else None
        out.append(Partition(name, month, bound, int(estimate)))
    return sorted(out, key=lambda p: (p.month is None, p.month or date.min))


def _months(conn: Connection) -> set[date]:
    return {p.month for p in partitions(conn) if p.month}


def _attached(conn: Connection, months: set[date]) -> set[date]:
    """Which of ``months`` have their partition attached to the parent (one small query)."""
    found = set(
        conn.execute(
            text("""SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                WHERE i.inhparent = to_regclass(:parent) AND c.relname = ANY(:names)"""),
            {"parent": PARENT, "names": [name_of(m) for m in months]},
        ).scalars()
    )
    return {m for m in months if name_of(m) in found}


def ensure_for(conn: Connection, months: Iterable[date]) -> list[str]:
    """Create the partitions of ``months`` that do not exist yet (moving their rows out of the
    default partition); the names created. Afterwards each of ``months`` has its partition, so a
    caller may write into it directly (geo.safety.readings does). Cheap when none is missing: one
    catalogue query for the months named."""
    wanted = {month_of(m) for m in months}
    if not wanted or not wanted - _attached(conn, wanted):
        return []
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PARTITIONS_LOCK})
    missing = sorted(wanted - _months(conn))  # again, under the lock: another may have made them
    return [_create(conn, month) for month in missing]


def ensure_months(conn: Connection, ahead: int = 3, now: datetime | None = None) -> list[str]:
    """Create every missing monthly partition from the earliest month holding readings (or now)
    to ``ahead`` months past now; the names created."""
    now = now or datetime.now(UTC)
    last = add_months(month_of(now), ahead)
    have = _months(conn)
    in_default = conn.execute(text(f"SELECT min(observed_at) FROM {DEFAULT}")).scalar()
    first = min([month_of(now), *have, *([month_of(in_default)] if in_default else [])])
    months, month = [], first
    while month <= last:
        months.append(month)
        month = add_months(month, 1)
    return ensure_for(conn, months)


def _create(conn: Connection, month: date) -> str:
    """One month's partition; readings of that month already in the default partition are moved
    into it (PostgreSQL refuses a partition over rows the default holds)."""
    name, low, high = name_of(month), _bound(month), _bound(add_months(month, 1))
    held = conn.execute(
        text(f"SELECT count(*) FROM {DEFAULT} WHERE observed_at >= :low AND observed_at < :high"),
        {"low": low, "high": high},
    ).scalar_one()
    if held:
        conn.execute(
            text(f"""CREATE TEMP TABLE moving_readings ON COMMIT DROP AS
                     WITH gone AS (DELETE FROM {DEFAULT}
                                   WHERE observed_at >= :low AND observed_at < :high
                                   RETURNING sensor_id, observed_at, value)
                     SELECT * FROM gone"""),
            {"low": low, "high": high},
        )
    conn.execute(
        text(f"CREATE TABLE {name} PARTITION OF {PARENT} FOR VALUES FROM ('{low}') TO ('{high}')")
    )
    if held:
        conn.execute(
            text(
                f"INSERT INTO {name} (sensor_id, observed_at, value) "
                "SELECT sensor_id, observed_at, value FROM moving_readings"
            )
        )
        conn.execute(text("DROP TABLE moving_readings"))
    return name


def _bound(month: date) -> str:
    return f"{month:%Y-%m-%d} 00:00:00+00"


def start_of(month: date) -> datetime:
    """The first instant of a month (UTC): a partition's lower bound."""
    return datetime(month.year, month.month, 1, tzinfo=UTC)


def drop_older_than(conn: Connection, months: int, now: datetime | None = None) -> list[str]:
    """Retention: detach and drop every monthly partition that ends before the first day of the
    month ``months`` months back (``months`` = 0 keeps all); the names dropped. Whole partitions
    only: a month still partly inside the kept span stays whole, and the default partition stays."""
    if months <= 0:
        return []
    keep_from = add_months(month_of(now or datetime.now(UTC)), -months)
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PARTITIONS_LOCK})
    dropped = []
    for part in partitions(conn):
        if part.month is not None and add_months(part.month, 1) <= keep_from:
            conn.execute(text(f"ALTER TABLE {PARENT} DETACH PARTITION {part.name}"))
            conn.execute(text(f"DROP TABLE {part.name}"))
            dropped.append(part.name)
    return dropped
