"""传感器读数入库: readings posted in bulk (CSV or JSON lines), stored once each, and the sensors'
warnings brought up to date in the same transaction.

A batch is all or nothing: one bad line (unknown sensor, a time without its zone, a value that is
not a finite number) refuses the whole batch (400, with the line numbers) and writes nothing, so
a gateway can fix and resend it whole. Storing is idempotent: readings go through COPY into a
temporary table and then ``INSERT … ON CONFLICT (sensor_id, observed_at) DO NOTHING``; the same
batch posted twice stores each reading once (the first stored value stands) and changes no
warning the second time. ``sensor_readings`` is partitioned by month (geo.safety.partitions): a
batch holding a month without its partition creates it, then is inserted straight into each
month's partition. The readings have no foreign key (migration 0018): a batch's sensors are
checked once, under the row locks taken on them anyway, and a batch naming a sensor that does not
exist stores nothing.

Warnings (预警) follow each sensor's *present*:

* a reading is **over** when ``value > threshold`` (the sensor's current threshold); a reading at
  the threshold is not over;
* an over reading opens a warning when the sensor has none open (``started_at``/``first_value``
  are that reading's), or extends the open one (``peak_value``, ``last_value``/``last_at``,
  ``readings`` + 1): one warning per sensor while the condition lasts;
* a reading at or under the threshold clears the open warning (``cleared_at`` = its time);
* a *late* reading, one no later than the sensor's latest reading already stored before the
  batch, is stored as history but moves no warning: the past is not re-judged (a late over
  reading must not reopen a warning a newer reading has cleared).

The warning pass is set-based: the readings newly stored are cut, per sensor and in time order,
into runs of over readings each ended by the next reading under (gaps and islands), and the runs
become a few UPDATEs and INSERTs of ``sensor_warnings``.

Concurrent batches: each locks its sensors' rows (``FOR NO KEY UPDATE``, in id order) before it
reads what is stored, so two batches for one sensor are judged one after the other. Warning rows
are written under one transaction-scoped advisory lock held to commit, so warning ids become
visible in increasing order: the live feed (geo.safety.warnings) reads new warnings by id alone.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime

import orjson
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from geo.errors import BadRequest, Unsupported
from geo.safety.partitions import (
    PARENT,
    add_months,
    ensure_for,
    month_of,
    name_of,
    start_of,
)

CSV_TYPES = ("text/csv",)
JSON_LINES_TYPES = ("application/x-ndjson", "application/jsonl", "application/json-lines")
#: at most this many bad lines are named in a refusal (the count says how many there were)
NAMED_PROBLEMS = 50
#: the advisory lock key under which warning rows are written (ids visible in order)
WARNING_WRITES_LOCK = 140_014
UNIQUE_VIOLATION = "23505"


@dataclass
class IngestReport:
    """What a batch did: received = stored + duplicates; late readings are stored but judged no
    warning; warnings opened, extended (kept open or updated) and cleared."""

    received: int
    stored: int
    duplicates: int
    late: int
    sensors: int
    warnings_opened: int
    warnings_updated: int
    warnings_cleared: int

    def to_dict(self) -> dict:
        return asdict(self)


class _Lines:
    """The batch's bad lines, gathered so that one refusal names them all (up to a limit)."""

    def __init__(self):
        self.items: list[dict] = []
        self.count = 0

    def add(self, line: int, problem: str) -> None:
        self.count += 1
        if len(self.items) < NAMED_PROBLEMS:
            self.items.append({"line": line, "problem": problem})

    def refuse_if_any(self) -> None:
        if self.count:
            named = ", ".join(str(i["line"]) for i in self.items)
            more = (
                f" (and {self.count - len(self.items)} more)"
                if self.count > len(self.items)
                else ""
            )
            raise BadRequest(
                f"读数有误，整批未入库: {self.count} bad line(s), nothing was stored — "
                f"fix line(s) {named}{more} and send the batch again",
                lines=self.items,
                bad_lines=self.count,
            )


def parse(body: bytes, media_type: str) -> list[tuple[int, str | None, str | None, str, str]]:
    """The batch as (line, sensor_code, sensor_id, observed_at, value) texts, by media type."""
    kind = (media_type or "").split(";")[0].strip().lower()
    try:
        content = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"the body is not UTF-8 text: {exc}") from exc
    if kind in CSV_TYPES:
        return _parse_csv(content)
    if kind in JSON_LINES_TYPES:
        return _parse_json_lines(content)
    raise Unsupported(
        f"send readings as text/csv or application/x-ndjson, not {kind or 'no Content-Type'}"
    )


def _parse_csv(content: str) -> list[tuple]:
    reader = csv.reader(io.StringIO(content))
    header = next(reader, None)
    if not header:
        raise BadRequest("the CSV is empty: send a header (sensor_code,observed_at,value) and rows")
    names = [h.strip().lower() for h in header]
    if (
        "observed_at" not in names
        or "value" not in names
        or not ("sensor_code" in names or "sensor_id" in names)
    ):
        raise BadRequest(
            "the CSV header needs sensor_code (or sensor_id), observed_at and value; "
            f"it has {', '.join(names)}"
        )
    code_at = names.index("sensor_code") if "sensor_code" in names else None
    id_at = names.index("sensor_id") if "sensor_id" in names else None
    time_at, value_at, width = names.index("observed_at"), names.index("value"), len(names)
    rows, bad = [], _Lines()
    for row in reader:
        line = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != width:
            bad.add(line, f"{len(row)} fields where the header has {width}")
            continue
        rows.append(
            (
                line,
                row[code_at] if code_at is not None else None,
                row[id_at] if id_at is not None else None,
                row[time_at],
                row[value_at],
            )
        )
    bad.refuse_if_any()
    return rows


def _parse_json_lines(content: str) -> list[tuple]:
    rows, bad = [], _Lines()
    for line, raw in enumerate(content.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            item = orjson.loads(raw)
        except orjson.JSONDecodeError:
            bad.add(line, "not a JSON object")
            continue
        if not isinstance(item, dict):
            bad.add(line, "not a JSON object")
            continue
        code, sid = item.get("sensor_code"), item.get("sensor_id")
        value = item.get("value")
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            bad.add(line, "value must be a number")
            continue
        rows.append(
            (
                line,
                None if code is None else str(code),
                None if sid is None else str(sid),
                item.get("observed_at") if isinstance(item.get("observed_at"), str) else "",
                str(value),
            )
        )
    bad.refuse_if_any()
    return rows


def _sensor_ids(conn: Connection, rows: list[tuple]) -> tuple[dict[str, int], set[int]]:
    """The sensors the batch names: id by code, and the ids that exist."""
    codes = sorted({r[1].strip() for r in rows if r[1] and r[1].strip()})
    ids = set()
    for r in rows:
        if r[2] and r[2].strip().isdigit():
            ids.add(int(r[2].strip()))
    by_code = {}
    if codes:
        by_code = dict(
            conn.execute(
                text("SELECT code, id FROM sensors WHERE code = ANY(:codes)"), {"codes": codes}
            ).all()
        )
    known = set()
    if ids:
        known = set(
            conn.execute(
                text("SELECT id FROM sensors WHERE id = ANY(:ids)"), {"ids": sorted(ids)}
            ).scalars()
        )
    return by_code, known


def validate(conn: Connection, rows: list[tuple]) -> str:
    """The batch as COPY text (line, sensor_id, observed_at UTC, value), or a 400 naming every bad
    line: unknown sensor, a time that is not ISO 8601 with its zone, a value not finite."""
    by_code, known = _sensor_ids(conn, rows)
    times: dict[str, str | None] = {}  # a gateway sends many readings of one instant
    out, bad = [], _Lines()
    for line, code, sid, observed, value in rows:
        code = code.strip() if code else ""
        sid = sid.strip() if sid else ""
        if code:
            sensor = by_code.get(code)
            if sensor is None:
                bad.add(line, f"unknown sensor_code {code[:40]!r}")
                continue
            if sid and sid != str(sensor):
                bad.add(line, f"sensor_id {sid[:20]!r} is not the id of {code!r}")
                continue
        elif sid:
            sensor = int(sid) if sid.isdigit() else None
            if sensor not in known:
                bad.add(line, f"unknown sensor_id {sid[:20]!r}")
                continue
        else:
            bad.add(line, "no sensor_code or sensor_id")
            continue
        stamp = times.get(observed, "")
        if stamp == "":
            stamp = times[observed] = _utc(observed)
        if stamp is None:
            bad.add(line, f"observed_at {observed[:40]!r} is not ISO 8601 with a zone")
            continue
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number) or "_" in value:
            bad.add(line, f"value {value[:40]!r} is not a finite number")
            continue
        out.append(f"{line}\t{sensor}\t{stamp}\t{number!r}\n")
    bad.refuse_if_any()
    if not out:
        raise BadRequest("the batch holds no readings: send at least one line")
    return "".join(out)


def _utc(observed: str) -> str | None:
    """The time in UTC as PostgreSQL reads it, or None when it has no zone or is no time."""
    observed = observed.strip()
    if len(observed) < 16:
        return None
    try:
        moment = datetime.fromisoformat(observed)
    except ValueError:
        return None
    if moment.tzinfo is None or moment.utcoffset() is None:
        return None
    return moment.astimezone(UTC).isoformat()


#: the batch's sensors with their threshold, open warning and latest reading stored, looked for
#: from the batch's first instant on only: an older one would make no reading of the batch late
#: either (late: no later than what the sensor had), and the bound keeps the look-up to the
#: partitions of the batch's months and later instead of one index probe per partition
TOUCHED = """
SELECT s.id AS sensor_id, s.threshold,
       (SELECT max(r.observed_at) FROM {readings} r
         WHERE r.sensor_id = s.id AND r.observed_at >= :first) AS seen_until,
       (SELECT w.id FROM sensor_warnings w
         WHERE w.sensor_id = s.id AND w.cleared_at IS NULL) AS open_id
FROM sensors s WHERE s.id IN (SELECT DISTINCT sensor_id FROM incoming)
"""


def lookup_plan(conn: Connection, first: datetime, sensors: int = 5) -> list[str]:
    """EXPLAIN of ingest's look-up of what a batch's sensors already have (:data:`TOUCHED`), for
    a batch of a few sensors whose first reading is at ``first``: the partitions it reads (the
    ones from ``first``'s month on, and the default)."""
    conn.execute(text("CREATE TEMP TABLE incoming (sensor_id bigint) ON COMMIT DROP"))
    conn.execute(
        text("INSERT INTO incoming SELECT id FROM sensors ORDER BY id LIMIT :n"), {"n": sensors}
    )
    plan = conn.execute(
        text("EXPLAIN (COSTS OFF) " + TOUCHED.format(readings=PARENT)), {"first": first}
    ).scalars()
    lines = list(plan)
    conn.execute(text("DROP TABLE incoming"))
    return lines


def ingest(conn: Connection, body: bytes, media_type: str) -> IngestReport:
    """Store a batch of readings once each and bring its sensors' warnings up to date, in the
    caller's transaction; a batch with a bad line raises BadRequest and writes nothing."""
    return store(conn, validate(conn, parse(body, media_type)))


def store(conn: Connection, copy_text: str, readings: str = PARENT) -> IngestReport:
    """COPY validated readings in, insert the new ones, and run the warning pass. ``readings``
    names the table stored into: ``sensor_readings`` but for a benchmark's unpartitioned copy
    (benchmarks/safety_ingest.py --compare-unpartitioned)."""
    conn.execute(
        text("""CREATE TEMP TABLE incoming (line integer, sensor_id bigint,
                observed_at timestamptz, value double precision) ON COMMIT DROP""")
    )
    cursor = conn.connection.dbapi_connection.cursor()
    with cursor, cursor.copy("COPY incoming FROM STDIN") as copy:
        copy.write(copy_text)
    received = copy_text.count("\n")
    first, last = conn.execute(
        text("SELECT min(observed_at), max(observed_at) FROM incoming")
    ).one()
    months = _months(conn, first, last) if readings == PARENT and first is not None else []
    if months:  # a month without its own partition gets one first (months are made ahead)
        ensure_for(conn, months)
    # judged one batch at a time per sensor: what is stored is read after the lock, which also
    # keeps the sensors from being deleted until commit (the readings have no foreign key: this
    # is its check, once per batch; migration 0018)
    wanted, locked = conn.execute(
        text("""WITH wanted AS (SELECT DISTINCT sensor_id FROM incoming),
                locked AS (SELECT id FROM sensors WHERE id IN (SELECT sensor_id FROM wanted)
                           ORDER BY id FOR NO KEY UPDATE)
                SELECT (SELECT count(*) FROM wanted), (SELECT count(*) FROM locked)""")
    ).one()
    if locked < wanted:
        raise BadRequest(
            f"读数有误，整批未入库: {wanted - locked} sensor(s) of the batch were deleted while it "
            "was checked, nothing was stored — leave their readings out and send the batch again"
        )
    conn.execute(
        text("CREATE TEMP TABLE touched ON COMMIT DROP AS " + TOUCHED.format(readings=readings)),
        {"first": first},
    )
    # one reading per sensor and time (the first line stands), marked fresh when later than
    # anything the sensor had: only fresh readings move warnings, and none of them is stored yet
    conn.execute(
        text("""CREATE TEMP TABLE batch ON COMMIT DROP AS
                SELECT DISTINCT ON (i.sensor_id, i.observed_at)
                       i.sensor_id, i.observed_at, i.value,
                       t.seen_until IS NULL OR i.observed_at > t.seen_until AS fresh,
                       i.value > t.threshold AS over
                FROM incoming i JOIN touched t USING (sensor_id)
                ORDER BY i.sensor_id, i.observed_at, i.line""")
    )
    fresh, total, sensors = conn.execute(
        text("SELECT count(*) FILTER (WHERE fresh), count(*), count(DISTINCT sensor_id) FROM batch")
    ).one()
    stored = _insert(conn, readings, months, late=total - fresh)
    opened, updated, cleared = _warning_pass(conn) if fresh else (0, 0, 0)
    return IngestReport(
        received=received,
        stored=stored,
        duplicates=received - stored,
        late=stored - fresh,
        sensors=sensors,
        warnings_opened=opened,
        warnings_updated=updated,
        warnings_cleared=cleared,
    )


def _months(conn: Connection, first: datetime, last: datetime) -> list[date]:
    """The months (UTC) the batch's readings fall in: from its first and last instants when they
    share a month (a gateway's batch nearly always does), else asked of the batch."""
    if month_of(first) == month_of(last):
        return [month_of(first)]
    return list(
        conn.execute(
            text("""SELECT DISTINCT date_trunc('month', observed_at AT TIME ZONE 'UTC')::date
                    FROM incoming ORDER BY 1""")
        ).scalars()
    )


def _insert(conn: Connection, readings: str, months: list[date], late: int) -> int:
    """Insert the batch's readings, the ones already stored left alone; the number stored.

    Into the partitioned table, straight into each month's partition (one INSERT per month,
    usually one): no tuple routing, and the parent's statement trigger (the sensor check this
    batch has already made) is not run again. Fresh readings (later than anything their sensor
    had, read under the sensor's lock, so no other batch adds one meanwhile) cannot be stored
    already: a plain INSERT, half the cost of ``ON CONFLICT`` which checks and reserves each key
    first. Only the late ones (usually none; all of a batch posted again) go through
    ``ON CONFLICT DO NOTHING``. Should another writer have stored a fresh one meanwhile (a bulk
    load while gateways post), the plain INSERT is undone to its savepoint and made again with
    ``ON CONFLICT``: the key decides, nothing is stored twice."""
    if not months:
        targets = [(readings, "", {})]
    elif len(months) == 1:
        targets = [(name_of(months[0]), "", {})]
    else:
        targets = [
            (
                name_of(month),
                "AND observed_at >= :low AND observed_at < :high",
                {"low": start_of(month), "high": start_of(add_months(month, 1))},
            )
            for month in months
        ]
    stored = 0
    for table, within, params in targets:
        insert = f"""INSERT INTO {table} (sensor_id, observed_at, value)
                     SELECT sensor_id, observed_at, value FROM batch WHERE {{which}} {within}"""
        conflict = " ON CONFLICT (sensor_id, observed_at) DO NOTHING"
        try:
            with conn.begin_nested():
                stored += conn.execute(text(insert.format(which="fresh")), params).rowcount
        except IntegrityError as exc:
            if getattr(exc.orig, "sqlstate", None) != UNIQUE_VIOLATION:
                raise
            stored += conn.execute(text(insert.format(which="fresh") + conflict), params).rowcount
        if late:
            stored += conn.execute(
                text(insert.format(which="NOT fresh") + conflict), params
            ).rowcount
    return stored


#: the fresh readings of the sensors with something to judge (a warning open, or a reading over),
#: cut into runs: run g holds the over readings after the g-th reading under (in this batch) and
#: is ended by the next one under
_RUNS = """
CREATE TEMP TABLE runs ON COMMIT DROP AS
WITH judged AS (
    SELECT sensor_id FROM touched WHERE open_id IS NOT NULL
    UNION
    SELECT sensor_id FROM batch WHERE fresh AND over
), grouped AS (
    SELECT b.sensor_id, b.observed_at, b.value, b.over, t.threshold, t.open_id,
           coalesce(count(*) FILTER (WHERE NOT b.over) OVER (
               PARTITION BY b.sensor_id ORDER BY b.observed_at
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS run
    FROM batch b JOIN touched t USING (sensor_id)
    WHERE b.fresh AND b.sensor_id IN (SELECT sensor_id FROM judged)
)
SELECT sensor_id, run, min(threshold) AS threshold, min(open_id) AS open_id,
       min(observed_at) FILTER (WHERE over) AS started_at,
       (array_agg(value ORDER BY observed_at) FILTER (WHERE over))[1] AS first_value,
       max(value) FILTER (WHERE over) AS peak_value,
       (array_agg(value ORDER BY observed_at DESC) FILTER (WHERE over))[1] AS last_value,
       max(observed_at) FILTER (WHERE over) AS last_at,
       count(*) FILTER (WHERE over) AS readings,
       min(observed_at) FILTER (WHERE NOT over) AS cleared_at
FROM grouped GROUP BY sensor_id, run
"""

#: run 0 continues the warning open before the batch: extend it, and clear it if the run ended
_EXTEND = """
UPDATE sensor_warnings w SET
    peak_value = CASE WHEN r.readings > 0 THEN greatest(w.peak_value, r.peak_value)
                      ELSE w.peak_value END,
    last_value = coalesce(r.last_value, w.last_value),
    last_at = coalesce(r.last_at, w.last_at),
    readings = w.readings + r.readings,
    cleared_at = r.cleared_at
FROM runs r
WHERE r.run = 0 AND r.open_id IS NOT NULL AND w.id = r.open_id
  AND (r.readings > 0 OR r.cleared_at IS NOT NULL)
RETURNING r.readings > 0 AS extended, r.cleared_at IS NOT NULL AS cleared
"""

#: every other run with an over reading is a warning of its own (cleared if the run ended)
_OPEN = """
INSERT INTO sensor_warnings (sensor_id, threshold, started_at, first_value, peak_value,
                             last_value, last_at, readings, cleared_at)
SELECT sensor_id, threshold, started_at, first_value, peak_value, last_value, last_at,
       readings, cleared_at
FROM runs
WHERE readings > 0 AND (run > 0 OR open_id IS NULL)
ORDER BY started_at, sensor_id
RETURNING cleared_at IS NOT NULL AS cleared
"""


def _warning_pass(conn: Connection) -> tuple[int, int, int]:
    """Open, extend and clear warnings from the newly stored readings: (opened, updated, cleared)."""
    conn.execute(text(_RUNS))
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": WARNING_WRITES_LOCK})
    extended = conn.execute(text(_EXTEND)).all()
    opened = conn.execute(text(_OPEN)).all()
    updated = sum(1 for e in extended if e.extended)
    cleared = sum(1 for e in extended if e.cleared) + sum(1 for o in opened if o.cleared)
    return len(opened), updated, cleared


REBUILD_SQL = """
WITH marked AS (
    SELECT r.sensor_id, r.observed_at, r.value, s.threshold, r.value > s.threshold AS over,
           count(*) FILTER (WHERE r.value <= s.threshold)
               OVER (PARTITION BY r.sensor_id ORDER BY r.observed_at) AS run
    FROM sensor_readings r JOIN sensors s ON s.id = r.sensor_id
), runs AS (
    SELECT sensor_id, run, min(threshold) AS threshold,
           min(observed_at) FILTER (WHERE over) AS started_at,
           (array_agg(value ORDER BY observed_at) FILTER (WHERE over))[1] AS first_value,
           max(value) FILTER (WHERE over) AS peak_value,
           (array_agg(value ORDER BY observed_at DESC) FILTER (WHERE over))[1] AS last_value,
           max(observed_at) FILTER (WHERE over) AS last_at,
           count(*) FILTER (WHERE over) AS readings
    FROM marked GROUP BY sensor_id, run
)
INSERT INTO sensor_warnings (sensor_id, threshold, started_at, first_value, peak_value,
                             last_value, last_at, readings, cleared_at)
SELECT u.sensor_id, u.threshold, u.started_at, u.first_value, u.peak_value, u.last_value,
       u.last_at, u.readings,
       (SELECT min(observed_at) FROM sensor_readings n
        WHERE n.sensor_id = u.sensor_id AND n.observed_at > u.last_at)
FROM runs u WHERE u.readings > 0 ORDER BY u.started_at, u.sensor_id
"""


def rebuild_warnings(conn: Connection) -> int:
    """Every sensor's warnings worked out again from all its stored readings, by the same rules
    as ingest (over is ``value > threshold``; a warning lasts while readings stay over and is
    cleared by the next reading at or under): for readings loaded in bulk by other means (the
    demo city, a district's own history), never while gateways are posting."""
    conn.execute(text("DELETE FROM sensor_warnings"))
    return conn.execute(text(REBUILD_SQL)).rowcount
