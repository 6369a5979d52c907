"""ingest quality reports and the address normaliser in SQL

Every departmental ingest leaves a quality report: counts in / loaded / repaired / rejected, each
repaired or rejected row with its reason, the CRS found, timings. Reports live in their own schema
``ingest`` (``ingest.reports``): the tables of schema ``public`` are the models' (and the models
and migrations must agree), and schema ``layers`` holds one table per departmental layer.

``onemap_normalise_address`` is the SQL twin of geo.addressing.normalise, so that the standard
addresses are normalised inside the database when a batch of texts is geocoded. Its text is frozen
here as it was when this migration was written.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

FULL_WIDTH = "".join(chr(c) for c in range(0xFF01, 0xFF5F))
HALF_WIDTH = "".join(chr(c) for c in range(0x21, 0x7F))
SPACES = " \t\r\n\u00a0\u3000"
PREFIX = r"^(中国)?(江苏省|江苏(?=南京))?(南京市|南京(?=溧水))?(溧水区|溧水县)?"
BUILDING = r"([0-9a-z]+)(栋|号楼|号幢|座)"


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


NORMALISE = f"""
CREATE OR REPLACE FUNCTION onemap_normalise_address(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT regexp_replace(
               regexp_replace(
                   lower(translate(coalesce(value, ''), {_literal(FULL_WIDTH + SPACES)},
                                   {_literal(HALF_WIDTH)})),
                   {_literal(PREFIX)}, ''),
               {_literal(BUILDING)}, '\\1幢', 'g')
$$;
"""

REPORTS = """
CREATE SCHEMA IF NOT EXISTS ingest;
CREATE TABLE ingest.reports (
    id bigserial PRIMARY KEY,
    layer_id varchar(63) NOT NULL CHECK (layer_id ~ '^[a-z][a-z0-9_]{1,62}$'),
    department text NOT NULL,
    actor varchar(50) NOT NULL,
    status varchar(16) NOT NULL CHECK (status IN ('loaded')),
    file_name text NOT NULL,
    file_format varchar(32) NOT NULL,
    file_bytes bigint NOT NULL CHECK (file_bytes >= 0),
    file_sha256 char(64) NOT NULL,
    encoding varchar(32),
    source_crs varchar(64) NOT NULL,
    crs_origin text NOT NULL,
    geometry_type varchar(32),
    rows_in integer NOT NULL CHECK (rows_in >= 0),
    loaded integer NOT NULL CHECK (loaded >= 0),
    repaired integer NOT NULL CHECK (repaired >= 0),
    rejected integer NOT NULL CHECK (rejected >= 0),
    warnings integer NOT NULL DEFAULT 0 CHECK (warnings >= 0),
    replaced integer,
    matched jsonb NOT NULL DEFAULT '{}',
    timings jsonb NOT NULL DEFAULT '{}',
    issues jsonb NOT NULL DEFAULT '[]',
    notes jsonb NOT NULL DEFAULT '[]',
    started_at timestamptz NOT NULL,
    finished_at timestamptz NOT NULL,
    CONSTRAINT counts_add_up CHECK (rows_in = loaded + rejected AND repaired <= loaded)
);
CREATE INDEX ix_ingest_reports_layer ON ingest.reports (layer_id, id DESC);
"""


def upgrade() -> None:
    op.execute(NORMALISE)
    op.execute(REPORTS)


def downgrade() -> None:
    op.execute("DROP SCHEMA IF EXISTS ingest CASCADE")
    op.execute("DROP FUNCTION IF EXISTS onemap_normalise_address(text)")
