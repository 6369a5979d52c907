"""Sensor readings partitioned by month (issue 16).

``sensor_readings`` becomes ``PARTITION BY RANGE (observed_at)``: the same columns and primary
key (sensor_id, observed_at), a DEFAULT partition, and one partition per calendar month (UTC),
``sensor_readings_YYYYMM``, covering the readings present and three months past now. The rows are
moved and the old table dropped. Readings have no touch or append-only trigger, so none is
carried over.

No foreign key to sensors any more: PostgreSQL checks one row by row (a query and a row lock per
reading), and at Lishui scale that check was the largest single cost of ingest, more than half
the insert. Its three duties are kept, each once per statement instead of once per row:

* ingest (geo.safety.readings.store) checks a batch's sensors once, under the row locks it takes
  on them anyway (``FOR NO KEY UPDATE``, which a DELETE of the sensor waits for): a batch naming
  a sensor that does not exist (or no longer) is refused whole, nothing stored;
* any other INSERT or COPY through the parent table is checked by the statement trigger
  ``sensor_readings_known_sensors``: the distinct sensors of the rows added are locked
  ``FOR KEY SHARE`` (as the foreign key did) and the statement fails with SQLSTATE 23503 if one
  is missing. Ingest writes straight into the month's partition, which this trigger does not see
  (statement triggers of a partitioned table fire only for statements on the parent): it has
  checked its sensors itself;
* deleting sensors deletes their readings (was ON DELETE CASCADE): statement trigger
  ``sensors_readings_cascade`` on sensors. TRUNCATE of sensors names sensor_readings itself
  (geo.district lists both).

Downgrade: back to one plain table with the same rows and the foreign key.

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

AHEAD = 3
HOLDING = "sensor_readings_before_0018"

COLUMNS = """sensor_id bigint NOT NULL,
    observed_at timestamp with time zone NOT NULL,
    value double precision NOT NULL,
    CONSTRAINT pk_sensor_readings PRIMARY KEY (sensor_id, observed_at)"""
FOREIGN_KEY = """,
    CONSTRAINT fk_sensor_readings_sensor_id_sensors FOREIGN KEY (sensor_id)
        REFERENCES sensors (id) ON DELETE CASCADE"""

KNOWN_SENSORS = """
CREATE OR REPLACE FUNCTION onemap_readings_known_sensors() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    wanted bigint;
    found bigint;
BEGIN
    -- the foreign key's check, once per statement: the sensors locked as the key would lock them
    SELECT count(DISTINCT sensor_id) INTO wanted FROM added;
    SELECT count(*) INTO found FROM (
        SELECT id FROM sensors WHERE id IN (SELECT sensor_id FROM added) FOR KEY SHARE) s;
    IF found < wanted THEN
        RAISE foreign_key_violation USING
            MESSAGE = format('%s sensor(s) of these readings do not exist', wanted - found),
            HINT = 'readings need a sensor: add the sensor first, or leave its readings out',
            TABLE = 'sensor_readings';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER sensor_readings_known_sensors AFTER INSERT ON sensor_readings
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT
    EXECUTE FUNCTION onemap_readings_known_sensors();
"""

CASCADE = """
CREATE OR REPLACE FUNCTION onemap_sensors_readings_cascade() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM sensor_readings WHERE sensor_id IN (SELECT id FROM gone);
    RETURN NULL;
END $$;
CREATE TRIGGER sensors_readings_cascade AFTER DELETE ON sensors
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT
    EXECUTE FUNCTION onemap_sensors_readings_cascade();
"""


def _add_months(month: date, n: int) -> date:
    index = month.year * 12 + month.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


def _set_aside(table: str) -> None:
    op.execute(f"ALTER TABLE sensor_readings RENAME TO {table}")
    op.execute(f"ALTER TABLE {table} RENAME CONSTRAINT pk_sensor_readings TO pk_{table}")
    op.execute(
        f"ALTER TABLE {table} RENAME CONSTRAINT fk_sensor_readings_sensor_id_sensors TO fk_{table}"
    )


def upgrade() -> None:
    conn = op.get_bind()
    _set_aside(HOLDING)
    op.execute(f"CREATE TABLE sensor_readings ({COLUMNS}) PARTITION BY RANGE (observed_at)")
    op.execute("CREATE TABLE sensor_readings_default PARTITION OF sensor_readings DEFAULT")
    first, now = conn.execute(
        sa.text(
            f"SELECT date_trunc('month', min(observed_at) AT TIME ZONE 'UTC')::date, "
            f"date_trunc('month', now() AT TIME ZONE 'UTC')::date FROM {HOLDING}"
        )
    ).one()
    month, last = min(first or now, now), _add_months(now, AHEAD)
    while month <= last:
        after = _add_months(month, 1)
        op.execute(
            f"CREATE TABLE sensor_readings_{month:%Y%m} PARTITION OF sensor_readings "
            f"FOR VALUES FROM ('{month:%Y-%m-%d} 00:00:00+00') TO ('{after:%Y-%m-%d} 00:00:00+00')"
        )
        month = after
    # the rows held had the foreign key: moved before the check trigger exists
    op.execute(
        f"INSERT INTO sensor_readings (sensor_id, observed_at, value) "
        f"SELECT sensor_id, observed_at, value FROM {HOLDING}"
    )
    op.execute(f"DROP TABLE {HOLDING}")
    op.execute(KNOWN_SENSORS)
    op.execute(CASCADE)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS sensors_readings_cascade ON sensors")
    op.execute("DROP FUNCTION IF EXISTS onemap_sensors_readings_cascade()")
    plain = (COLUMNS + FOREIGN_KEY).replace("sensor_readings", "plain")
    op.execute(f"CREATE TABLE sensor_readings_plain ({plain})")
    op.execute(
        "INSERT INTO sensor_readings_plain (sensor_id, observed_at, value) "
        "SELECT sensor_id, observed_at, value FROM sensor_readings"
    )
    op.execute("DROP TABLE sensor_readings")  # its partitions and its trigger
    op.execute("DROP FUNCTION IF EXISTS onemap_readings_known_sensors()")
    op.execute("ALTER TABLE sensor_readings_plain RENAME TO sensor_readings")
    op.execute("ALTER TABLE sensor_readings RENAME CONSTRAINT pk_plain TO pk_sensor_readings")
    op.execute(
        "ALTER TABLE sensor_readings RENAME CONSTRAINT fk_plain_sensor_id_sensors "
        "TO fk_sensor_readings_sensor_id_sensors"
    )
