"""departmental layers schema and the personal-data masks in SQL

Departmental layers are created by ingest in schema ``layers`` (one table each), apart from the
base schema that migrations own. The mask functions are the SQL twins of geo.policy.masks, so that
features, tiles and exports all mask the same way inside the database.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

MASKS = """
CREATE OR REPLACE FUNCTION onemap_mask_phone(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN value IS NULL OR value = '' THEN value
                WHEN char_length(value) > 7
                THEN left(value, 3) || repeat('*', char_length(value) - 7) || right(value, 4)
                ELSE repeat('*', char_length(value)) END
$$;
CREATE OR REPLACE FUNCTION onemap_mask_id_number(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN value IS NULL OR value = '' THEN value
                WHEN char_length(value) > 10
                THEN left(value, 6) || repeat('*', char_length(value) - 10) || right(value, 4)
                ELSE repeat('*', char_length(value)) END
$$;
CREATE OR REPLACE FUNCTION onemap_mask_name(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN value IS NULL OR value = '' THEN value
                ELSE left(value, 1) || repeat('*', char_length(value) - 1) END
$$;
"""


def upgrade() -> None:
    op.execute("CREATE SCHEMA IF NOT EXISTS layers")
    op.execute(MASKS)


def downgrade() -> None:
    op.execute("DROP SCHEMA IF EXISTS layers CASCADE")
    for kind in ("phone", "id_number", "name"):
        op.execute(f"DROP FUNCTION IF EXISTS onemap_mask_{kind}(text)")
