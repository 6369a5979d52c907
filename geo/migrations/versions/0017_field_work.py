"""field work: passwords (an argon2 hash, failed sign-ins, a lock), patrols with their tracks,
records verified on patrol (verified_at / verified_by, and a log of every verification) without a
new version of their content

``onemap_touch`` moves a record's version on for every change except one that only stamps
``verified_at``/``verified_by``: "checked, still true" is not an edit.

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

RECORDS = ("buildings", "addresses", "houses", "residents", "organisations", "facilities")
#: what a verification may change, and what the database fills itself (geom_3857 is a generated
#: column, not yet computed in NEW when a BEFORE trigger runs)
STAMP = "ARRAY['verified_at', 'verified_by', 'version', 'updated_at', 'created_at', 'geom_3857']"

TOUCH = f"""
CREATE OR REPLACE FUNCTION onemap_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- a verification stamp alone ("checked, still true") is not a new version of the content
    IF (to_jsonb(NEW) ? 'verified_at')
       AND ((to_jsonb(NEW) -> 'verified_at') IS DISTINCT FROM (to_jsonb(OLD) -> 'verified_at')
            OR (to_jsonb(NEW) -> 'verified_by') IS DISTINCT FROM (to_jsonb(OLD) -> 'verified_by'))
       AND (to_jsonb(NEW) - {STAMP}) = (to_jsonb(OLD) - {STAMP}) THEN
        NEW.version := OLD.version;
        NEW.updated_at := OLD.updated_at;
        NEW.created_at := OLD.created_at;
        RETURN NEW;
    END IF;
    -- every write path moves the version on: optimistic concurrency cannot be bypassed
    NEW.version := OLD.version + 1;
    NEW.updated_at := now();
    NEW.created_at := OLD.created_at;
    RETURN NEW;
END $$
"""
TOUCH_BEFORE = """
CREATE OR REPLACE FUNCTION onemap_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- every write path moves the version on: optimistic concurrency cannot be bypassed
    NEW.version := OLD.version + 1;
    NEW.updated_at := now();
    NEW.created_at := OLD.created_at;
    RETURN NEW;
END $$
"""


def upgrade() -> None:
    op.add_column("users", sa.Column("password_hash", sa.Text(), nullable=True))
    op.add_column(
        "users", sa.Column("password_changed_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "users", sa.Column("failed_logins", sa.Integer(), server_default="0", nullable=False)
    )
    op.add_column("users", sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True))
    for table in RECORDS:
        op.add_column(table, sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True))
        op.add_column(table, sa.Column("verified_by", sa.String(length=50), nullable=True))
    op.execute(TOUCH)
    op.create_table(
        "patrols",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("username", sa.String(length=50), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "grid_codes",
            postgresql.ARRAY(sa.String(length=15)),
            server_default="{}",
            nullable=False,
        ),
        sa.Column(
            "buildings", postgresql.ARRAY(sa.BigInteger()), server_default="{}", nullable=False
        ),
        sa.Column(
            "verified", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False
        ),
        sa.Column(
            "changed", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False
        ),
        sa.Column(
            "hazards", postgresql.ARRAY(sa.BigInteger()), server_default="{}", nullable=False
        ),
        sa.Column(
            "track",
            Geometry(
                geometry_type="LINESTRING",
                srid=4490,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            nullable=True,
        ),
        sa.CheckConstraint(
            "ended_at IS NULL OR ended_at >= started_at", name=op.f("ck_patrols_ends_after")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patrols")),
    )
    op.create_index(op.f("ix_patrols_username"), "patrols", ["username"])
    op.create_geospatial_index(
        "idx_patrols_track",
        "patrols",
        ["track"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_table(
        "verifications",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("record_type", sa.String(length=20), nullable=False),
        sa.Column("record_id", sa.BigInteger(), nullable=False),
        sa.Column("grid_code", sa.CHAR(length=15), nullable=True),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("verified_by", sa.String(length=50), nullable=False),
        sa.Column("patrol_id", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["patrol_id"],
            ["patrols.id"],
            name=op.f("fk_verifications_patrol_id_patrols"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_verifications")),
    )
    op.create_index(op.f("ix_verifications_grid_code"), "verifications", ["grid_code"])
    op.create_index(op.f("ix_verifications_patrol_id"), "verifications", ["patrol_id"])
    op.create_index(op.f("ix_verifications_verified_at"), "verifications", ["verified_at"])


def downgrade() -> None:
    op.drop_table("verifications")
    op.drop_geospatial_index(
        "idx_patrols_track", table_name="patrols", postgresql_using="gist", column_name="track"
    )
    op.drop_index(op.f("ix_patrols_username"), table_name="patrols")
    op.drop_table("patrols")
    op.execute(TOUCH_BEFORE)
    for table in RECORDS:
        op.drop_column(table, "verified_by")
        op.drop_column(table, "verified_at")
    for column in ("locked_until", "failed_logins", "password_changed_at", "password_hash"):
        op.drop_column("users", column)
