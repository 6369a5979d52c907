"""Sensor readings partitioned by month (issue 16): the table, the demo's months, partitions made
at ingest, retention by whole partitions, pruning, idempotent ingest across partitions, and the
sensor checks that stand in for the foreign key (refused unknown sensors, readings deleted with
their sensor).

Every test that changes something does it in a transaction it rolls back (DDL included)."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from geo.errors import BadRequest
from geo.safety import partitions
from geo.safety.readings import TOUCHED, ingest, store


@contextmanager
def rolled_back(engine):
    with engine.connect() as conn:
        tx = conn.begin()
        try:
            yield conn
        finally:
            tx.rollback()


def _sensor(conn) -> str:
    return conn.execute(text("SELECT code FROM sensors ORDER BY id LIMIT 1")).scalar_one()


def _csv(code: str, *stamps: str) -> bytes:
    return ("sensor_code,observed_at,value\n" + "".join(f"{code},{s},0\n" for s in stamps)).encode()


def _ingest(conn, body: bytes):
    """One batch, in the test's transaction; its temporary tables (dropped at commit) go now, so
    that the next batch can run in the same transaction."""
    report = ingest(conn, body, "text/csv")
    conn.execute(text("DROP TABLE IF EXISTS incoming, touched, batch, runs"))
    return report


def _holder(conn, code: str, stamp: str) -> str:
    return conn.execute(
        text("""SELECT r.tableoid::regclass::text FROM sensor_readings r
                JOIN sensors s ON s.id = r.sensor_id
                WHERE s.code = :code AND r.observed_at = :at"""),
        {"code": code, "at": datetime.fromisoformat(stamp)},
    ).scalar_one()


def test_readings_are_partitioned_by_range(engine):
    with engine.connect() as conn:
        strategy = conn.execute(
            text("""SELECT partstrat FROM pg_partitioned_table
                    WHERE partrelid = 'sensor_readings'::regclass""")
        ).scalar()
        names = [p.name for p in partitions.partitions(conn)]
    assert strategy == "r"
    assert partitions.DEFAULT in names
    assert names[-1] == partitions.DEFAULT
    this_month = partitions.month_of(datetime.now(UTC))
    for n in range(4):  # now and three months ahead
        assert partitions.name_of(partitions.add_months(this_month, n)) in names


def test_demo_readings_sit_in_monthly_partitions_not_the_default(engine):
    with engine.connect() as conn:
        held = dict(
            conn.execute(
                text("""SELECT tableoid::regclass::text, count(*) FROM sensor_readings
                        GROUP BY 1""")
            ).all()
        )
    assert held and sum(held.values()) > 0
    assert partitions.DEFAULT not in held
    assert all(re.fullmatch(r"sensor_readings_\d{6}", name) for name in held)


def test_ingest_into_a_month_without_a_partition_creates_it(engine):
    with rolled_back(engine) as conn:
        assert "sensor_readings_209703" not in {p.name for p in partitions.partitions(conn)}
        code = _sensor(conn)
        report = ingest(conn, _csv(code, "2097-03-10T08:00:00+08:00"), "text/csv")
        assert report.stored == 1
        assert _holder(conn, code, "2097-03-10T08:00:00+08:00") == "sensor_readings_209703"
        # a batch whose months all have partitions creates none
        assert partitions.ensure_for(conn, [date(2097, 3, 1)]) == []


def test_a_new_partition_takes_its_rows_out_of_the_default(engine):
    with rolled_back(engine) as conn:
        code = _sensor(conn)
        conn.execute(
            text("""INSERT INTO sensor_readings (sensor_id, observed_at, value)
                    SELECT id, '2098-05-31 23:59:59+00', 1 FROM sensors WHERE code = :code"""),
            {"code": code},
        )
        assert _holder(conn, code, "2098-05-31T23:59:59+00:00") == partitions.DEFAULT
        assert partitions.ensure_for(conn, [date(2098, 5, 1)]) == ["sensor_readings_209805"]
        assert _holder(conn, code, "2098-05-31T23:59:59+00:00") == "sensor_readings_209805"
        assert conn.execute(text("SELECT count(*) FROM sensor_readings_default")).scalar() == 0


def test_retention_drops_whole_old_partitions_and_nothing_else(engine):
    with rolled_back(engine) as conn:
        code = _sensor(conn)
        # two old months with partitions, an older reading left in the default partition
        _ingest(conn, _csv(code, "2001-01-15T00:00:00Z", "2001-02-15T00:00:00Z"))
        _ingest(conn, _csv(code, "2001-05-31T23:00:00Z"))
        conn.execute(
            text("""INSERT INTO sensor_readings (sensor_id, observed_at, value)
                    SELECT id, '1999-01-01 00:00:00+00', 1 FROM sensors WHERE code = :code"""),
            {"code": code},
        )
        before = {
            p.name: conn.execute(text(f"SELECT count(*) FROM {p.name}")).scalar()
            for p in partitions.partitions(conn)
        }
        assert partitions.drop_older_than(conn, 0) == []  # 0 keeps all
        dropped = partitions.drop_older_than(conn, 3, now=datetime(2001, 6, 15, tzinfo=UTC))
        assert dropped == ["sensor_readings_200101", "sensor_readings_200102"]
        after = {
            p.name: conn.execute(text(f"SELECT count(*) FROM {p.name}")).scalar()
            for p in partitions.partitions(conn)
        }
        assert after == {n: c for n, c in before.items() if n not in dropped}
        assert after["sensor_readings_200105"] == 1
        assert after[partitions.DEFAULT] == 1  # the default is never dropped nor trimmed
        assert conn.execute(text("SELECT to_regclass('sensor_readings_200101')")).scalar() is None


def _scanned(conn, low: str, high: str) -> set[str]:
    plan = "\n".join(
        conn.execute(
            text(f"""EXPLAIN SELECT sensor_id, avg(value) FROM sensor_readings
                     WHERE observed_at >= '{low}' AND observed_at < '{high}'
                     GROUP BY sensor_id""")
        ).scalars()
    )
    return set(re.findall(r"on (sensor_readings_\w+)", plan))


def test_a_week_of_readings_is_read_from_one_or_two_partitions(engine):
    with engine.connect() as conn:
        assert _scanned(conn, "2026-10-25 00:00+00", "2026-11-01 00:00+00") == {
            "sensor_readings_202610"
        }
        assert _scanned(conn, "2026-10-28 00:00+00", "2026-11-04 00:00+00") == {
            "sensor_readings_202610",
            "sensor_readings_202611",
        }


def test_the_same_batch_twice_stores_once_across_partitions(engine):
    with rolled_back(engine) as conn:
        code = _sensor(conn)
        body = _csv(code, "2096-01-31T23:30:00Z", "2096-02-01T00:30:00Z", "2096-02-01T08:30+08:00")
        first = _ingest(conn, body)
        again = _ingest(conn, body)
        assert (first.stored, first.duplicates) == (2, 1)  # the last line is the second's instant
        assert (again.stored, again.duplicates) == (0, 3)
        held = conn.execute(
            text("""SELECT r.tableoid::regclass::text FROM sensor_readings r
                    JOIN sensors s ON s.id = r.sensor_id
                    WHERE s.code = :code AND r.observed_at >= '2096-01-01'
                    ORDER BY r.observed_at"""),
            {"code": code},
        ).scalars()
        assert list(held) == ["sensor_readings_209601", "sensor_readings_209602"]


def _count(conn, where: str = "true", **params) -> int:
    return conn.execute(
        text(f"SELECT count(*) FROM sensor_readings WHERE {where}"), params
    ).scalar_one()


def test_a_batch_naming_an_unknown_sensor_stores_nothing(engine):
    """Past the line checks (a sensor deleted meanwhile): the batch is refused whole at store."""
    with rolled_back(engine) as conn:
        known, unknown = conn.execute(text("SELECT min(id), max(id) + 1000 FROM sensors")).one()
        before = _count(conn)
        copy_text = (
            f"2\t{known}\t2095-03-01T00:00:00+00:00\t1.0\n"
            f"3\t{unknown}\t2095-03-01T00:00:00+00:00\t1.0\n"
        )
        with pytest.raises(BadRequest, match="1 sensor"):
            store(conn, copy_text)
        assert _count(conn) == before
        assert _count(conn, "observed_at >= '2095-01-01'") == 0


def test_the_database_refuses_readings_of_no_sensor(engine):
    """Without a foreign key the parent's statement trigger checks every INSERT through it."""
    with rolled_back(engine) as conn:
        known, unknown = conn.execute(text("SELECT min(id), max(id) + 1000 FROM sensors")).one()
        before = _count(conn)
        with pytest.raises(DBAPIError) as refused, conn.begin_nested():
            conn.execute(
                text("""INSERT INTO sensor_readings (sensor_id, observed_at, value)
                        VALUES (:k, '2026-10-30 00:00:17+00', 1), (:u, '2026-10-30 00:00:17+00', 1)"""),
                {"k": known, "u": unknown},
            )
        assert refused.value.orig.sqlstate == "23503"  # foreign_key_violation, as the key gave
        assert _count(conn) == before
        # a known sensor's reading is taken
        conn.execute(
            text("""INSERT INTO sensor_readings (sensor_id, observed_at, value)
                    VALUES (:k, '2026-10-30 00:00:17+00', 1)"""),
            {"k": known},
        )
        assert _count(conn) == before + 1


def test_deleting_a_sensor_deletes_its_readings(engine):
    with rolled_back(engine) as conn:
        sensor, other = conn.execute(text("SELECT id FROM sensors ORDER BY id LIMIT 2")).scalars()
        mine, theirs = (
            _count(conn, "sensor_id = :s", s=sensor),
            _count(conn, "sensor_id = :s", s=other),
        )
        assert mine > 0 and theirs > 0
        conn.execute(text("DELETE FROM sensors WHERE id = :s"), {"s": sensor})
        assert _count(conn, "sensor_id = :s", s=sensor) == 0
        assert _count(conn, "sensor_id = :s", s=other) == theirs


def test_ingest_writes_each_month_into_its_partition_once(engine):
    """A batch over two months: straight into each month's partition, none into the default."""
    with rolled_back(engine) as conn:
        code = _sensor(conn)
        stamps = ("2094-06-30T23:59:59Z", "2094-07-01T00:00:00Z", "2094-07-01T08:00:00+08:00")
        report = _ingest(conn, _csv(code, *stamps))
        assert (report.received, report.stored, report.duplicates) == (3, 2, 1)
        held = conn.execute(
            text("""SELECT tableoid::regclass::text, count(*) FROM sensor_readings
                    WHERE observed_at >= '2094-01-01' GROUP BY 1 ORDER BY 1""")
        ).all()
        assert [tuple(h) for h in held] == [
            ("sensor_readings_209406", 1),
            ("sensor_readings_209407", 1),
        ]


def test_ingest_looks_up_each_sensors_latest_reading_in_the_batch_months_only(engine):
    """The look-up of what a batch's sensors already have (late or fresh) is pruned to the
    partitions from the batch's first instant on: not one index probe per month kept."""
    with rolled_back(engine) as conn:
        conn.execute(text("CREATE TEMP TABLE incoming (sensor_id bigint) ON COMMIT DROP"))
        conn.execute(text("INSERT INTO incoming SELECT id FROM sensors ORDER BY id LIMIT 5"))
        plan = "\n".join(
            conn.execute(
                text("EXPLAIN " + TOUCHED.format(readings="sensor_readings")),
                {"first": datetime(2026, 11, 5, tzinfo=UTC)},
            ).scalars()
        )
        scanned = set(re.findall(r"on (sensor_readings_\w+)", plan))
        assert "sensor_readings_202611" in scanned
        assert "sensor_readings_202610" not in scanned  # October ended before the batch began


def test_a_fresh_reading_stored_meanwhile_by_another_writer_is_not_stored_twice(engine):
    """A bulk writer (not ingest) stores one of the batch's readings after the batch judged it
    fresh: the batch's plain INSERT meets the key, is undone to its savepoint and made again
    with ON CONFLICT, so the batch succeeds and the reading is stored once, the writer's."""
    stamp = "2093-04-01T00:00:00+00:00"
    with engine.connect() as writer, engine.connect() as gateway:
        code, sensor = writer.execute(
            text("SELECT code, id FROM sensors ORDER BY id LIMIT 1")
        ).one()
        pid = gateway.execute(text("SELECT pg_backend_pid()")).scalar_one()
        gateway.commit()
        try:
            partitions.ensure_for(writer, [date(2093, 4, 1)])
            writer.commit()
            writer.execute(
                text("""INSERT INTO sensor_readings (sensor_id, observed_at, value)
                        VALUES (:s, :t, 7)"""),
                {"s": sensor, "t": datetime.fromisoformat(stamp)},
            )  # not committed yet: the batch cannot see it, and waits on its key
            body = _csv(code, stamp, "2093-04-01T00:01:00+00:00")
            with ThreadPoolExecutor(1) as pool:
                posted = pool.submit(lambda: (ingest(gateway, body, "text/csv"), gateway.commit()))
                for _ in range(600):
                    waiting = writer.execute(
                        text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :p"),
                        {"p": pid},
                    ).scalar()
                    if waiting == "Lock" or posted.done():
                        break
                    time.sleep(0.05)
                writer.commit()
                report, _ = posted.result(timeout=60)
            assert (report.received, report.stored, report.duplicates) == (2, 1, 1)
            rows = writer.execute(
                text("""SELECT observed_at, value FROM sensor_readings
                        WHERE sensor_id = :s AND observed_at >= '2093-01-01' ORDER BY 1"""),
                {"s": sensor},
            ).all()
            assert [r.value for r in rows] == [7.0, 0.0]
        finally:
            writer.rollback()
            writer.execute(
                text(
                    "DELETE FROM sensor_warnings WHERE sensor_id = :s AND started_at >= '2093-01-01'"
                ),
                {"s": sensor},
            )
            writer.execute(text("DROP TABLE IF EXISTS sensor_readings_209304"))
            writer.commit()
