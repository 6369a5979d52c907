"""Sensor readings partitioned by month (issue 16).

``sensor_readings`` becomes ``PARTITION BY RANGE (observed_at)``: the same columns, primary key
(sensor_id, observed_at) and foreign key to sensors (ON DELETE CASCADE), a DEFAULT partition, and
one partition per calendar month (UTC), ``sensor_readings_YYYYMM``, covering the readings present
and three months past now. The rows are moved and the old table dropped. Readings have no
touch or append-only trigger, so none is carried over.

Downgrade: back to one plain table with the same rows.

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
    CONSTRAINT pk_sensor_readings PRIMARY KEY (sensor_id, observed_at),
    CONSTRAINT fk_sensor_readings_sensor_id_sensors FOREIGN KEY (sensor_id)
        REFERENCES sensors (id) ON DELETE CASCADE"""


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
    op.execute(
        f"INSERT INTO sensor_readings (sensor_id, observed_at, value) "
        f"SELECT sensor_id, observed_at, value FROM {HOLDING}"
    )
    op.execute(f"DROP TABLE {HOLDING}")


def downgrade() -> None:
    op.execute(
        f"CREATE TABLE sensor_readings_plain ({COLUMNS.replace('sensor_readings', 'plain')})"
    )
    op.execute(
        "INSERT INTO sensor_readings_plain (sensor_id, observed_at, value) "
        "SELECT sensor_id, observed_at, value FROM sensor_readings"
    )
    op.execute("DROP TABLE sensor_readings")  # and its partitions
    op.execute("ALTER TABLE sensor_readings_plain RENAME TO sensor_readings")
    op.execute("ALTER TABLE sensor_readings RENAME CONSTRAINT pk_plain TO pk_sensor_readings")
    op.execute(
        "ALTER TABLE sensor_readings RENAME CONSTRAINT fk_plain_sensor_id_sensors "
        "TO fk_sensor_readings_sensor_id_sensors"
    )
