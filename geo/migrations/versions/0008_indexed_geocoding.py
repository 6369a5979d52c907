"""address matching by index: one text resolves in milliseconds, not by scanning the library

Each tier of the geocoder (geo.addressing) gets an index: names and aliases as written (btree,
GIN), their normalised forms (a GIN index on ``onemap_address_keys``), the road-to-unit tail
(btree on ``onemap_address_tail``) and, for misspelt texts, trigrams of the normalised full name
(pg_trgm, which hashes Chinese characters into trigrams like any other).

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

UP = """
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE OR REPLACE FUNCTION onemap_address_keys(full_name text, aliases text[]) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT array_agg(DISTINCT onemap_normalise_address(n))
    FROM unnest(array_prepend(full_name, coalesce(aliases, '{}'::text[]))) AS n
    WHERE n IS NOT NULL
$$;
CREATE OR REPLACE FUNCTION onemap_address_tail(
    road text, door_number text, estate text, building_number text, unit_number text
) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT onemap_normalise_address(coalesce(road, '') || coalesce(door_number, '')
        || coalesce(estate, '') || coalesce(building_number, '') || coalesce(unit_number, ''))
$$;
CREATE INDEX IF NOT EXISTS ix_addresses_aliases ON addresses USING gin (aliases);
CREATE INDEX IF NOT EXISTS ix_addresses_keys ON addresses
    USING gin (onemap_address_keys(full_name, aliases));
CREATE INDEX IF NOT EXISTS ix_addresses_tail ON addresses
    (onemap_address_tail(road, door_number, estate, building_number, unit_number));
CREATE INDEX IF NOT EXISTS ix_addresses_trigrams ON addresses
    USING gin (onemap_normalise_address(full_name) gin_trgm_ops);
"""
DOWN = """
DROP INDEX IF EXISTS ix_addresses_trigrams;
DROP INDEX IF EXISTS ix_addresses_tail;
DROP INDEX IF EXISTS ix_addresses_keys;
DROP INDEX IF EXISTS ix_addresses_aliases;
DROP FUNCTION IF EXISTS onemap_address_tail(text, text, text, text, text);
DROP FUNCTION IF EXISTS onemap_address_keys(text, text[]);
"""


def upgrade() -> None:
    op.execute(UP)


def downgrade() -> None:
    op.execute(DOWN)
