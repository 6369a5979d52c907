"""the idle-asset register in full: land-use class, building condition, available date, the
standard address and building matched, photos kept on disk, public page views counted per day
(never who looked), a trigram index for Chinese search, and the public seeing assets on public
offer (promoted) only

Revision ID: 0015
Revises: 0014
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

CONDITIONS = ("intact", "sound", "damaged", "severely_damaged", "dangerous")
SEARCH_TEXT = "onemap_asset_text(name, description, suggested_use)"
SEARCH_FUNCTION = """
CREATE OR REPLACE FUNCTION onemap_asset_text(name text, description text, suggested_use text)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN name || ' ' || coalesce(description, '') || ' ' || coalesce(suggested_use, '')
"""
PUBLIC_BEFORE = "status IN ('promoted', 'negotiating', 'revitalised')"
PUBLIC_AFTER = "status = 'promoted'"


def _public_rows(rule: str) -> None:
    op.get_bind().execute(
        sa.text(
            "UPDATE layer_catalogue SET access = access || CAST(:rules AS jsonb) WHERE id = 'assets'"
        ),
        {"rules": json.dumps({"other_rows": rule})},
    )


def upgrade() -> None:
    op.add_column("assets", sa.Column("landuse_code", sa.String(length=5), nullable=True))
    op.add_column("assets", sa.Column("condition", sa.String(length=16), nullable=True))
    op.add_column("assets", sa.Column("available_from", sa.Date(), nullable=True))
    op.add_column("assets", sa.Column("address_code", sa.CHAR(length=20), nullable=True))
    op.add_column("assets", sa.Column("building_code", sa.CHAR(length=19), nullable=True))
    op.create_index(op.f("ix_assets_landuse_code"), "assets", ["landuse_code"])
    op.create_check_constraint(
        op.f("ck_assets_landuse_code_format"),
        "assets",
        "landuse_code IS NULL OR landuse_code ~ '^[0-9]{2}([0-9H][0-9])?$'",
    )
    op.create_check_constraint(
        op.f("ck_assets_condition_known"),
        "assets",
        f"condition IS NULL OR condition IN {CONDITIONS!r}",
    )
    op.create_foreign_key(
        op.f("fk_assets_address_code_addresses"),
        "assets",
        "addresses",
        ["address_code"],
        ["code"],
        ondelete="SET NULL",
    )
    op.create_foreign_key(
        op.f("fk_assets_building_code_buildings"),
        "assets",
        "buildings",
        ["building_code"],
        ["code"],
        ondelete="SET NULL",
    )
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute(SEARCH_FUNCTION)
    op.execute(f"CREATE INDEX ix_assets_search ON assets USING gin ({SEARCH_TEXT} gin_trgm_ops)")
    op.create_table(
        "asset_photos",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("asset_id", sa.BigInteger(), nullable=False),
        sa.Column("file_name", sa.String(length=200), nullable=False),
        sa.Column("stored_as", sa.String(length=80), nullable=False),
        sa.Column("media_type", sa.String(length=40), nullable=False),
        sa.Column("bytes", sa.Integer(), nullable=False),
        sa.Column("caption", sa.String(length=200), nullable=True),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("uploaded_by", sa.String(length=50), nullable=False),
        sa.ForeignKeyConstraint(
            ["asset_id"],
            ["assets.id"],
            name=op.f("fk_asset_photos_asset_id_assets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_asset_photos")),
        sa.UniqueConstraint("stored_as", name=op.f("uq_asset_photos_stored_as")),
    )
    op.create_index(op.f("ix_asset_photos_asset_id"), "asset_photos", ["asset_id"])
    op.create_table(
        "asset_views",
        sa.Column("asset_id", sa.BigInteger(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("page", sa.String(length=16), nullable=False),
        sa.Column("views", sa.Integer(), nullable=False),
        sa.CheckConstraint("views > 0", name=op.f("ck_asset_views_views_positive")),
        sa.ForeignKeyConstraint(
            ["asset_id"],
            ["assets.id"],
            name=op.f("fk_asset_views_asset_id_assets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("asset_id", "day", "page", name=op.f("pk_asset_views")),
    )
    _public_rows(PUBLIC_AFTER)


def downgrade() -> None:
    _public_rows(PUBLIC_BEFORE)
    op.drop_table("asset_views")
    op.drop_index(op.f("ix_asset_photos_asset_id"), table_name="asset_photos")
    op.drop_table("asset_photos")
    op.execute("DROP INDEX IF EXISTS ix_assets_search")
    op.execute("DROP FUNCTION IF EXISTS onemap_asset_text(text, text, text)")
    op.drop_constraint(op.f("fk_assets_building_code_buildings"), "assets", type_="foreignkey")
    op.drop_constraint(op.f("fk_assets_address_code_addresses"), "assets", type_="foreignkey")
    op.drop_constraint(op.f("ck_assets_condition_known"), "assets", type_="check")
    op.drop_constraint(op.f("ck_assets_landuse_code_format"), "assets", type_="check")
    op.drop_index(op.f("ix_assets_landuse_code"), table_name="assets")
    for column in ("building_code", "address_code", "available_from", "condition", "landuse_code"):
        op.drop_column("assets", column)
