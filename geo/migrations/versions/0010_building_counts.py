"""buildings carry dwelling and resident counts, for districts without person-level records

A district that hands over buildings with 户数/人数 but no residents must still load and be
counted: ``dwellings`` and ``residents`` are optional, never negative, and every figure that needs
people uses the person-level records where they exist and these counts otherwise
(``geo.population``).

Revision ID: 0010
Revises: 0009
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        ALTER TABLE buildings
            ADD COLUMN IF NOT EXISTS dwellings integer,
            ADD COLUMN IF NOT EXISTS residents integer,
            ADD CONSTRAINT ck_buildings_counts_range
                CHECK ((dwellings IS NULL OR dwellings >= 0) AND (residents IS NULL OR residents >= 0))
    """)


def downgrade() -> None:
    op.execute("""
        ALTER TABLE buildings DROP CONSTRAINT IF EXISTS ck_buildings_counts_range,
            DROP COLUMN IF EXISTS dwellings, DROP COLUMN IF EXISTS residents
    """)
