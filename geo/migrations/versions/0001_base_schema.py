"""base schema: areas, grids, the four standards and four facts, base layers, safety, assets,
the catalogue, users and the audit log; the version trigger and the append-only audit rule.

Revision ID: 0001
Revises:
Create Date: 2026-11-23 09:25:01.227233
"""

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

#: frozen here, as a migration must be: the tables created above that carry a version
EDITABLE_TABLES = (
    "admin_areas",
    "grids",
    "addresses",
    "buildings",
    "houses",
    "residents",
    "organisations",
    "facilities",
    "landuse_parcels",
    "roads",
    "water",
    "parks",
    "hazards",
    "inspections",
    "sensors",
    "assets",
    "layer_catalogue",
    "users",
)

TOUCH_FUNCTION = """
CREATE OR REPLACE FUNCTION onemap_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- every write path moves the version on: optimistic concurrency cannot be bypassed
    NEW.version := OLD.version + 1;
    NEW.updated_at := now();
    NEW.created_at := OLD.created_at;
    RETURN NEW;
END $$
"""

APPEND_ONLY_FUNCTION = """
CREATE OR REPLACE FUNCTION onemap_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: rows may be added, never changed or removed', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$
"""


def upgrade() -> None:
    op.create_geospatial_table(
        "admin_areas",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("code", sa.CHAR(length=12), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("level", sa.SmallInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("parent_code", sa.CHAR(length=12), nullable=True),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4490,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("code ~ '^[0-9]{12}$'", name=op.f("ck_admin_areas_code_format")),
        sa.CheckConstraint(
            "kind IN ('district', 'street', 'town', 'community', 'village')",
            name=op.f("ck_admin_areas_kind_known"),
        ),
        sa.CheckConstraint(
            "(level = 1 AND parent_code IS NULL) OR (level > 1 AND parent_code IS NOT NULL)",
            name=op.f("ck_admin_areas_parent_by_level"),
        ),
        sa.CheckConstraint("NOT ST_IsEmpty(geom)", name=op.f("ck_admin_areas_geom_not_empty")),
        sa.CheckConstraint("ST_IsValid(geom)", name=op.f("ck_admin_areas_geom_valid")),
        sa.CheckConstraint("level BETWEEN 1 AND 3", name=op.f("ck_admin_areas_level_range")),
        sa.ForeignKeyConstraint(
            ["parent_code"],
            ["admin_areas.code"],
            name=op.f("fk_admin_areas_parent_code_admin_areas"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_areas")),
        sa.UniqueConstraint("code", name=op.f("uq_admin_areas_code")),
    )
    op.create_geospatial_index(
        "idx_admin_areas_geom",
        "admin_areas",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(
        op.f("ix_admin_areas_parent_code"), "admin_areas", ["parent_code"], unique=False
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("actor", sa.String(length=50), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("target_type", sa.String(length=63), nullable=False),
        sa.Column("target_id", sa.String(length=100), nullable=True),
        sa.Column("purpose", sa.Text(), nullable=True),
        sa.Column(
            "detail", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(op.f("ix_audit_log_actor"), "audit_log", ["actor"], unique=False)
    op.create_index(op.f("ix_audit_log_at"), "audit_log", ["at"], unique=False)
    op.create_geospatial_table(
        "landuse_parcels",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("class_code", sa.String(length=5), nullable=False),
        sa.Column("class_name", sa.String(length=50), nullable=False),
        sa.Column("area_m2", sa.Numeric(precision=14, scale=1), nullable=False),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4490,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "class_code ~ '^[0-9]{2}([0-9H][0-9])?$'",
            name=op.f("ck_landuse_parcels_class_code_format"),
        ),
        sa.CheckConstraint("NOT ST_IsEmpty(geom)", name=op.f("ck_landuse_parcels_geom_not_empty")),
        sa.CheckConstraint("ST_IsValid(geom)", name=op.f("ck_landuse_parcels_geom_valid")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_landuse_parcels")),
    )
    op.create_geospatial_index(
        "idx_landuse_parcels_geom",
        "landuse_parcels",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(
        op.f("ix_landuse_parcels_class_code"), "landuse_parcels", ["class_code"], unique=False
    )
    op.create_table(
        "layer_catalogue",
        sa.Column("id", sa.String(length=63), nullable=False),
        sa.Column("table_name", sa.String(length=63), nullable=False),
        sa.Column("title_zh", sa.String(length=100), nullable=False),
        sa.Column("title_en", sa.String(length=100), nullable=False),
        sa.Column("department", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("geometry_type", sa.String(length=32), nullable=True),
        sa.Column("source_crs", sa.String(length=64), nullable=True),
        sa.Column("update_frequency", sa.String(length=32), nullable=True),
        sa.Column("last_loaded", sa.DateTime(timezone=True), nullable=True),
        sa.Column("feature_count", sa.BigInteger(), nullable=True),
        sa.Column("extent", sa.ARRAY(sa.Double()), nullable=True),
        sa.Column(
            "fields", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False
        ),
        sa.Column("personal_fields", sa.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("internal_fields", sa.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("time_field", sa.String(length=63), nullable=True),
        sa.Column("sharing_level", sa.String(length=16), nullable=False),
        sa.Column("opening_level", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "id ~ '^[a-z][a-z0-9_]{1,62}$'", name=op.f("ck_layer_catalogue_id_format")
        ),
        sa.CheckConstraint(
            "opening_level IN ('open', 'restricted', 'closed')",
            name=op.f("ck_layer_catalogue_opening_known"),
        ),
        sa.CheckConstraint(
            "sharing_level IN ('unconditional', 'conditional', 'none')",
            name=op.f("ck_layer_catalogue_sharing_known"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_layer_catalogue")),
        sa.UniqueConstraint("table_name", name=op.f("uq_layer_catalogue_table_name")),
    )
    op.create_geospatial_table(
        "parks",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("area_m2", sa.Numeric(precision=14, scale=1), nullable=False),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4490,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "kind IN ('comprehensive', 'community', 'pocket', 'linear')",
            name=op.f("ck_parks_kind_known"),
        ),
        sa.CheckConstraint("NOT ST_IsEmpty(geom)", name=op.f("ck_parks_geom_not_empty")),
        sa.CheckConstraint("ST_IsValid(geom)", name=op.f("ck_parks_geom_valid")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_parks")),
    )
    op.create_geospatial_index(
        "idx_parks_geom",
        "parks",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_geospatial_table(
        "roads",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("class", sa.String(length=16), nullable=False),
        sa.Column("width_m", sa.Numeric(precision=5, scale=1), nullable=False),
        sa.Column("length_m", sa.Numeric(precision=12, scale=1), nullable=False),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="LINESTRING",
                srid=4490,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "class IN ('expressway', 'arterial', 'secondary', 'branch', 'rural')",
            name=op.f("ck_roads_class_known"),
        ),
        sa.CheckConstraint("NOT ST_IsEmpty(geom)", name=op.f("ck_roads_geom_not_empty")),
        sa.CheckConstraint("ST_IsValid(geom)", name=op.f("ck_roads_geom_valid")),
        sa.CheckConstraint("width_m > 0 AND width_m < 200", name=op.f("ck_roads_width_range")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_roads")),
    )
    op.create_geospatial_index(
        "idx_roads_geom",
        "roads",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_table(
        "users",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("username", sa.String(length=50), nullable=False),
        sa.Column("display_name", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("active", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "role IN ('public', 'investment', 'planner', 'grid_worker', 'safety', 'admin')",
            name=op.f("ck_users_role_known"),
        ),
        sa.CheckConstraint(
            "username ~ '^[a-z0-9_.-]{2,50}$'", name=op.f("ck_users_username_format")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_geospatial_table(
        "water",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("area_m2", sa.Numeric(precision=14, scale=1), nullable=False),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4490,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "kind IN ('river', 'lake', 'reservoir', 'pond', 'canal')",
            name=op.f("ck_water_kind_known"),
        ),
        sa.CheckConstraint("NOT ST_IsEmpty(geom)", name=op.f("ck_water_geom_not_empty")),
        sa.CheckConstraint("ST_IsValid(geom)", name=op.f("ck_water_geom_valid")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_water")),
    )
    op.create_geospatial_index(
        "idx_water_geom",
        "water",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("token_hash", sa.CHAR(length=64), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_tokens_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_index(op.f("ix_api_tokens_user_id"), "api_tokens", ["user_id"], unique=False)
    op.create_geospatial_table(
        "grids",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("code", sa.CHAR(length=15), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("community_code", sa.CHAR(length=12), nullable=False),
        sa.Column("households", sa.Integer(), nullable=True),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4490,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("code ~ '^[0-9]{15}$'", name=op.f("ck_grids_code_format")),
        sa.CheckConstraint("NOT ST_IsEmpty(geom)", name=op.f("ck_grids_geom_not_empty")),
        sa.CheckConstraint("ST_IsValid(geom)", name=op.f("ck_grids_geom_valid")),
        sa.CheckConstraint(
            "left(code, 12) = community_code", name=op.f("ck_grids_code_in_community")
        ),
        sa.ForeignKeyConstraint(
            ["community_code"],
            ["admin_areas.code"],
            name=op.f("fk_grids_community_code_admin_areas"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_grids")),
        sa.UniqueConstraint("code", name=op.f("uq_grids_code")),
    )
    op.create_geospatial_index(
        "idx_grids_geom",
        "grids",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(op.f("ix_grids_community_code"), "grids", ["community_code"], unique=False)
    op.create_geospatial_table(
        "assets",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("code", sa.String(length=12), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("category", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("land_area_m2", sa.Numeric(precision=12, scale=1), nullable=False),
        sa.Column("floor_area_m2", sa.Numeric(precision=12, scale=1), nullable=False),
        sa.Column("suggested_use", sa.String(length=100), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("reserve_price_wan", sa.Numeric(precision=12, scale=1), nullable=True),
        sa.Column("contact_name", sa.String(length=50), nullable=True),
        sa.Column("contact_phone", sa.CHAR(length=11), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("page_views", sa.Integer(), server_default="0", nullable=False),
        sa.Column("area_code", sa.CHAR(length=12), nullable=False),
        sa.Column("grid_code", sa.CHAR(length=15), nullable=True),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4490,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "category IN ('administrative', 'state_operating', 'rural_collective', 'inefficient_land')",
            name=op.f("ck_assets_category_known"),
        ),
        sa.CheckConstraint("code ~ '^ZC[0-9]{6}[0-9]{4}$'", name=op.f("ck_assets_code_format")),
        sa.CheckConstraint(
            "status IN ('entered', 'promoted', 'negotiating', 'revitalised', 'withdrawn')",
            name=op.f("ck_assets_status_known"),
        ),
        sa.CheckConstraint("NOT ST_IsEmpty(geom)", name=op.f("ck_assets_geom_not_empty")),
        sa.CheckConstraint("ST_IsValid(geom)", name=op.f("ck_assets_geom_valid")),
        sa.CheckConstraint(
            "land_area_m2 >= 0 AND floor_area_m2 >= 0", name=op.f("ck_assets_area_range")
        ),
        sa.ForeignKeyConstraint(
            ["area_code"], ["admin_areas.code"], name=op.f("fk_assets_area_code_admin_areas")
        ),
        sa.ForeignKeyConstraint(
            ["grid_code"], ["grids.code"], name=op.f("fk_assets_grid_code_grids")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assets")),
        sa.UniqueConstraint("code", name=op.f("uq_assets_code")),
    )
    op.create_geospatial_index(
        "idx_assets_geom",
        "assets",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(op.f("ix_assets_category"), "assets", ["category"], unique=False)
    op.create_index(op.f("ix_assets_status"), "assets", ["status"], unique=False)
    op.create_geospatial_table(
        "buildings",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("code", sa.CHAR(length=19), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("floors", sa.Integer(), nullable=False),
        sa.Column("height_m", sa.Numeric(precision=6, scale=1), nullable=False),
        sa.Column("use", sa.String(length=16), nullable=False),
        sa.Column("year_built", sa.Integer(), nullable=True),
        sa.Column("estate", sa.String(length=100), nullable=True),
        sa.Column("grid_code", sa.CHAR(length=15), nullable=False),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="POLYGON",
                srid=4490,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("code ~ '^[0-9]{19}$'", name=op.f("ck_buildings_code_format")),
        sa.CheckConstraint(
            "use IN ('residential', 'commercial', 'industrial', 'public', 'mixed', 'other')",
            name=op.f("ck_buildings_use_known"),
        ),
        sa.CheckConstraint("NOT ST_IsEmpty(geom)", name=op.f("ck_buildings_geom_not_empty")),
        sa.CheckConstraint("ST_IsValid(geom)", name=op.f("ck_buildings_geom_valid")),
        sa.CheckConstraint("floors BETWEEN 1 AND 200", name=op.f("ck_buildings_floors_range")),
        sa.CheckConstraint(
            "height_m > 0 AND height_m < 700", name=op.f("ck_buildings_height_range")
        ),
        sa.CheckConstraint("left(code, 15) = grid_code", name=op.f("ck_buildings_code_in_grid")),
        sa.CheckConstraint(
            "year_built BETWEEN 1800 AND 2100", name=op.f("ck_buildings_year_range")
        ),
        sa.ForeignKeyConstraint(
            ["grid_code"], ["grids.code"], name=op.f("fk_buildings_grid_code_grids")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_buildings")),
        sa.UniqueConstraint("code", name=op.f("uq_buildings_code")),
    )
    op.create_geospatial_index(
        "idx_buildings_geom",
        "buildings",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(op.f("ix_buildings_grid_code"), "buildings", ["grid_code"], unique=False)
    op.create_geospatial_table(
        "sensors",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("code", sa.String(length=14), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("unit", sa.String(length=16), nullable=False),
        sa.Column("threshold", sa.Double(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("installed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("grid_code", sa.CHAR(length=15), nullable=False),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="POINT",
                srid=4490,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("code ~ '^GZ[0-9]{6}[0-9]{6}$'", name=op.f("ck_sensors_code_format")),
        sa.CheckConstraint(
            "kind IN ('water_level', 'smoke', 'gas', 'temperature', 'structural', 'electrical')",
            name=op.f("ck_sensors_kind_known"),
        ),
        sa.CheckConstraint(
            "status IN ('online', 'offline', 'fault')", name=op.f("ck_sensors_status_known")
        ),
        sa.CheckConstraint("NOT ST_IsEmpty(geom)", name=op.f("ck_sensors_geom_not_empty")),
        sa.CheckConstraint("ST_IsValid(geom)", name=op.f("ck_sensors_geom_valid")),
        sa.ForeignKeyConstraint(
            ["grid_code"], ["grids.code"], name=op.f("fk_sensors_grid_code_grids")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sensors")),
        sa.UniqueConstraint("code", name=op.f("uq_sensors_code")),
    )
    op.create_geospatial_index(
        "idx_sensors_geom",
        "sensors",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(op.f("ix_sensors_grid_code"), "sensors", ["grid_code"], unique=False)
    op.create_index(op.f("ix_sensors_kind"), "sensors", ["kind"], unique=False)
    op.create_table(
        "user_grids",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("grid_code", sa.CHAR(length=15), nullable=False),
        sa.ForeignKeyConstraint(
            ["grid_code"],
            ["grids.code"],
            name=op.f("fk_user_grids_grid_code_grids"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_grids_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "grid_code", name=op.f("pk_user_grids")),
    )
    op.create_geospatial_table(
        "addresses",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("code", sa.CHAR(length=20), nullable=False),
        sa.Column("full_name", sa.Text(), nullable=False),
        sa.Column("aliases", sa.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("area_code", sa.CHAR(length=12), nullable=False),
        sa.Column("road", sa.String(length=100), nullable=True),
        sa.Column("estate", sa.String(length=100), nullable=True),
        sa.Column("door_number", sa.String(length=20), nullable=True),
        sa.Column("building_number", sa.String(length=20), nullable=True),
        sa.Column("unit_number", sa.String(length=20), nullable=True),
        sa.Column("room_number", sa.String(length=20), nullable=True),
        sa.Column("level", sa.String(length=10), nullable=False),
        sa.Column("is_dwelling", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("building_id", sa.BigInteger(), nullable=True),
        sa.Column("grid_code", sa.CHAR(length=15), nullable=True),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="POINT",
                srid=4490,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("code ~ '^[0-9]{20}$'", name=op.f("ck_addresses_code_format")),
        sa.CheckConstraint(
            "level IN ('road', 'door', 'building', 'unit', 'room')",
            name=op.f("ck_addresses_level_known"),
        ),
        sa.CheckConstraint("NOT ST_IsEmpty(geom)", name=op.f("ck_addresses_geom_not_empty")),
        sa.CheckConstraint("ST_IsValid(geom)", name=op.f("ck_addresses_geom_valid")),
        sa.CheckConstraint(
            "grid_code IS NULL OR left(grid_code, 12) = area_code",
            name=op.f("ck_addresses_grid_in_area"),
        ),
        sa.CheckConstraint("left(code, 12) = area_code", name=op.f("ck_addresses_code_in_area")),
        sa.CheckConstraint("length(full_name) >= 4", name=op.f("ck_addresses_full_name_length")),
        sa.ForeignKeyConstraint(
            ["area_code"], ["admin_areas.code"], name=op.f("fk_addresses_area_code_admin_areas")
        ),
        sa.ForeignKeyConstraint(
            ["building_id"],
            ["buildings.id"],
            name=op.f("fk_addresses_building_id_buildings"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["grid_code"], ["grids.code"], name=op.f("fk_addresses_grid_code_grids")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_addresses")),
        sa.UniqueConstraint("code", name=op.f("uq_addresses_code")),
    )
    op.create_geospatial_index(
        "idx_addresses_geom",
        "addresses",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(op.f("ix_addresses_area_code"), "addresses", ["area_code"], unique=False)
    op.create_index(op.f("ix_addresses_building_id"), "addresses", ["building_id"], unique=False)
    op.create_index(op.f("ix_addresses_full_name"), "addresses", ["full_name"], unique=False)
    op.create_index(op.f("ix_addresses_grid_code"), "addresses", ["grid_code"], unique=False)
    op.create_table(
        "asset_status_history",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("asset_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_by", sa.String(length=50), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('entered', 'promoted', 'negotiating', 'revitalised', 'withdrawn')",
            name=op.f("ck_asset_status_history_status_known"),
        ),
        sa.ForeignKeyConstraint(
            ["asset_id"],
            ["assets.id"],
            name=op.f("fk_asset_status_history_asset_id_assets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_asset_status_history")),
    )
    op.create_index(
        op.f("ix_asset_status_history_asset_id"), "asset_status_history", ["asset_id"], unique=False
    )
    op.create_table(
        "sensor_readings",
        sa.Column("sensor_id", sa.BigInteger(), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["sensor_id"],
            ["sensors.id"],
            name=op.f("fk_sensor_readings_sensor_id_sensors"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("sensor_id", "observed_at", name=op.f("pk_sensor_readings")),
    )
    op.create_geospatial_table(
        "facilities",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=True),
        sa.Column("area_m2", sa.Numeric(precision=12, scale=1), nullable=True),
        sa.Column("address_id", sa.BigInteger(), nullable=True),
        sa.Column("grid_code", sa.CHAR(length=15), nullable=False),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="POINT",
                srid=4490,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "kind IN ('kindergarten', 'primary_school', 'middle_school', 'clinic', 'hospital', 'elderly_care', 'park_entrance', 'fire_station', 'hydrant', 'shelter', 'sensor', 'camera', 'bus_stop', 'market', 'sports', 'toilet', 'waste_station', 'cultural_centre', 'street_office', 'community_station')",
            name=op.f("ck_facilities_kind_known"),
        ),
        sa.CheckConstraint("NOT ST_IsEmpty(geom)", name=op.f("ck_facilities_geom_not_empty")),
        sa.CheckConstraint("ST_IsValid(geom)", name=op.f("ck_facilities_geom_valid")),
        sa.CheckConstraint(
            "area_m2 IS NULL OR area_m2 >= 0", name=op.f("ck_facilities_area_range")
        ),
        sa.CheckConstraint(
            "capacity IS NULL OR capacity >= 0", name=op.f("ck_facilities_capacity_range")
        ),
        sa.ForeignKeyConstraint(
            ["address_id"],
            ["addresses.id"],
            name=op.f("fk_facilities_address_id_addresses"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["grid_code"], ["grids.code"], name=op.f("fk_facilities_grid_code_grids")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_facilities")),
    )
    op.create_geospatial_index(
        "idx_facilities_geom",
        "facilities",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(op.f("ix_facilities_address_id"), "facilities", ["address_id"], unique=False)
    op.create_index(op.f("ix_facilities_grid_code"), "facilities", ["grid_code"], unique=False)
    op.create_index(op.f("ix_facilities_kind"), "facilities", ["kind"], unique=False)
    op.create_geospatial_table(
        "houses",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("building_id", sa.BigInteger(), nullable=False),
        sa.Column("address_id", sa.BigInteger(), nullable=True),
        sa.Column("unit_number", sa.String(length=20), nullable=True),
        sa.Column("room_number", sa.String(length=20), nullable=False),
        sa.Column("floor", sa.SmallInteger(), nullable=False),
        sa.Column("area_m2", sa.Numeric(precision=8, scale=1), nullable=True),
        sa.Column("use", sa.String(length=16), nullable=False),
        sa.Column("tenure", sa.String(length=16), nullable=False),
        sa.Column("grid_code", sa.CHAR(length=15), nullable=False),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="POINT",
                srid=4490,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "tenure IN ('owner_occupied', 'rented', 'vacant', 'public', 'other')",
            name=op.f("ck_houses_tenure_known"),
        ),
        sa.CheckConstraint(
            "use IN ('dwelling', 'shop', 'office', 'factory', 'warehouse', 'other')",
            name=op.f("ck_houses_use_known"),
        ),
        sa.CheckConstraint("NOT ST_IsEmpty(geom)", name=op.f("ck_houses_geom_not_empty")),
        sa.CheckConstraint("ST_IsValid(geom)", name=op.f("ck_houses_geom_valid")),
        sa.CheckConstraint(
            "area_m2 IS NULL OR (area_m2 > 0 AND area_m2 < 100000)",
            name=op.f("ck_houses_area_range"),
        ),
        sa.CheckConstraint("floor BETWEEN -5 AND 200", name=op.f("ck_houses_floor_range")),
        sa.ForeignKeyConstraint(
            ["address_id"],
            ["addresses.id"],
            name=op.f("fk_houses_address_id_addresses"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["building_id"], ["buildings.id"], name=op.f("fk_houses_building_id_buildings")
        ),
        sa.ForeignKeyConstraint(
            ["grid_code"], ["grids.code"], name=op.f("fk_houses_grid_code_grids")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_houses")),
    )
    op.create_geospatial_index(
        "idx_houses_geom",
        "houses",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(op.f("ix_houses_address_id"), "houses", ["address_id"], unique=False)
    op.create_index(op.f("ix_houses_building_id"), "houses", ["building_id"], unique=False)
    op.create_index(op.f("ix_houses_grid_code"), "houses", ["grid_code"], unique=False)
    op.create_geospatial_table(
        "organisations",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("credit_code", sa.CHAR(length=18), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("industry", sa.String(length=50), nullable=True),
        sa.Column("employees", sa.Integer(), nullable=True),
        sa.Column("legal_person", sa.String(length=50), nullable=True),
        sa.Column("contact_phone", sa.CHAR(length=11), nullable=True),
        sa.Column("is_key_unit", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("address_id", sa.BigInteger(), nullable=True),
        sa.Column("building_id", sa.BigInteger(), nullable=True),
        sa.Column("grid_code", sa.CHAR(length=15), nullable=False),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="POINT",
                srid=4490,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "contact_phone IS NULL OR contact_phone ~ '^1[3-9][0-9]{9}$'",
            name=op.f("ck_organisations_phone_format"),
        ),
        sa.CheckConstraint(
            "credit_code ~ '^[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}$'",
            name=op.f("ck_organisations_credit_code_format"),
        ),
        sa.CheckConstraint(
            "kind IN ('enterprise', 'government', 'institution', 'school', 'hospital', 'shop', 'social', 'other')",
            name=op.f("ck_organisations_kind_known"),
        ),
        sa.CheckConstraint("NOT ST_IsEmpty(geom)", name=op.f("ck_organisations_geom_not_empty")),
        sa.CheckConstraint("ST_IsValid(geom)", name=op.f("ck_organisations_geom_valid")),
        sa.CheckConstraint(
            "employees IS NULL OR employees >= 0", name=op.f("ck_organisations_employees_range")
        ),
        sa.ForeignKeyConstraint(
            ["address_id"],
            ["addresses.id"],
            name=op.f("fk_organisations_address_id_addresses"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["building_id"],
            ["buildings.id"],
            name=op.f("fk_organisations_building_id_buildings"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["grid_code"], ["grids.code"], name=op.f("fk_organisations_grid_code_grids")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisations")),
        sa.UniqueConstraint("credit_code", name=op.f("uq_organisations_credit_code")),
    )
    op.create_geospatial_index(
        "idx_organisations_geom",
        "organisations",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(
        op.f("ix_organisations_address_id"), "organisations", ["address_id"], unique=False
    )
    op.create_index(
        op.f("ix_organisations_building_id"), "organisations", ["building_id"], unique=False
    )
    op.create_index(
        op.f("ix_organisations_grid_code"), "organisations", ["grid_code"], unique=False
    )
    op.create_geospatial_table(
        "hazards",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("code", sa.String(length=22), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("level", sa.SmallInteger(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("found_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("organisation_id", sa.BigInteger(), nullable=True),
        sa.Column("grid_code", sa.CHAR(length=15), nullable=False),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="POINT",
                srid=4490,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "(status = 'closed') = (closed_at IS NOT NULL)",
            name=op.f("ck_hazards_closed_when_closed_at"),
        ),
        sa.CheckConstraint(
            "category IN ('fire', 'gas', 'structural', 'flood', 'traffic', 'production', 'electrical')",
            name=op.f("ck_hazards_category_known"),
        ),
        sa.CheckConstraint("code ~ '^YH[0-9]{20}$'", name=op.f("ck_hazards_code_format")),
        sa.CheckConstraint(
            "status IN ('open', 'rectifying', 'closed')", name=op.f("ck_hazards_status_known")
        ),
        sa.CheckConstraint("NOT ST_IsEmpty(geom)", name=op.f("ck_hazards_geom_not_empty")),
        sa.CheckConstraint("ST_IsValid(geom)", name=op.f("ck_hazards_geom_valid")),
        sa.CheckConstraint("deadline >= found_at", name=op.f("ck_hazards_deadline_after_found")),
        sa.CheckConstraint("level BETWEEN 1 AND 4", name=op.f("ck_hazards_level_range")),
        sa.ForeignKeyConstraint(
            ["grid_code"], ["grids.code"], name=op.f("fk_hazards_grid_code_grids")
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_hazards_organisation_id_organisations"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hazards")),
        sa.UniqueConstraint("code", name=op.f("uq_hazards_code")),
    )
    op.create_geospatial_index(
        "idx_hazards_geom",
        "hazards",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(op.f("ix_hazards_category"), "hazards", ["category"], unique=False)
    op.create_index(op.f("ix_hazards_grid_code"), "hazards", ["grid_code"], unique=False)
    op.create_index(op.f("ix_hazards_status"), "hazards", ["status"], unique=False)
    op.create_geospatial_table(
        "residents",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("id_number", sa.CHAR(length=18), nullable=False),
        sa.Column("id_hash", sa.CHAR(length=64), nullable=False),
        sa.Column("phone", sa.CHAR(length=11), nullable=True),
        sa.Column("gender", sa.CHAR(length=1), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=False),
        sa.Column("residence_type", sa.String(length=16), nullable=False),
        sa.Column("relation", sa.String(length=16), nullable=True),
        sa.Column("house_id", sa.BigInteger(), nullable=False),
        sa.Column("grid_code", sa.CHAR(length=15), nullable=False),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="POINT",
                srid=4490,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("gender IN ('M', 'F')", name=op.f("ck_residents_gender_known")),
        sa.CheckConstraint(
            "id_number ~ '^[0-9]{17}[0-9X]$'", name=op.f("ck_residents_id_number_format")
        ),
        sa.CheckConstraint(
            "phone IS NULL OR phone ~ '^1[3-9][0-9]{9}$'", name=op.f("ck_residents_phone_format")
        ),
        sa.CheckConstraint(
            "residence_type IN ('registered', 'floating', 'overseas')",
            name=op.f("ck_residents_residence_type_known"),
        ),
        sa.CheckConstraint("NOT ST_IsEmpty(geom)", name=op.f("ck_residents_geom_not_empty")),
        sa.CheckConstraint("ST_IsValid(geom)", name=op.f("ck_residents_geom_valid")),
        sa.ForeignKeyConstraint(
            ["grid_code"], ["grids.code"], name=op.f("fk_residents_grid_code_grids")
        ),
        sa.ForeignKeyConstraint(
            ["house_id"], ["houses.id"], name=op.f("fk_residents_house_id_houses")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_residents")),
        sa.UniqueConstraint("id_number", name=op.f("uq_residents_id_number")),
    )
    op.create_geospatial_index(
        "idx_residents_geom",
        "residents",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(op.f("ix_residents_grid_code"), "residents", ["grid_code"], unique=False)
    op.create_index(op.f("ix_residents_house_id"), "residents", ["house_id"], unique=False)
    op.create_index(op.f("ix_residents_id_hash"), "residents", ["id_hash"], unique=False)
    op.create_geospatial_table(
        "inspections",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("hazard_id", sa.BigInteger(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("inspector", sa.String(length=50), nullable=False),
        sa.Column("inspected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("result", sa.String(length=16), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("grid_code", sa.CHAR(length=15), nullable=False),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="POINT",
                srid=4490,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "result IN ('passed', 'hazard_found', 'rectified')",
            name=op.f("ck_inspections_result_known"),
        ),
        sa.CheckConstraint(
            "source IN ('leader_night', 'department', 'grid_patrol')",
            name=op.f("ck_inspections_source_known"),
        ),
        sa.CheckConstraint("NOT ST_IsEmpty(geom)", name=op.f("ck_inspections_geom_not_empty")),
        sa.CheckConstraint("ST_IsValid(geom)", name=op.f("ck_inspections_geom_valid")),
        sa.ForeignKeyConstraint(
            ["grid_code"], ["grids.code"], name=op.f("fk_inspections_grid_code_grids")
        ),
        sa.ForeignKeyConstraint(
            ["hazard_id"],
            ["hazards.id"],
            name=op.f("fk_inspections_hazard_id_hazards"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inspections")),
    )
    op.create_geospatial_index(
        "idx_inspections_geom",
        "inspections",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(op.f("ix_inspections_grid_code"), "inspections", ["grid_code"], unique=False)
    op.create_index(op.f("ix_inspections_hazard_id"), "inspections", ["hazard_id"], unique=False)

    op.execute(TOUCH_FUNCTION)
    for table in EDITABLE_TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_touch BEFORE UPDATE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION onemap_touch()"
        )
    op.execute(APPEND_ONLY_FUNCTION)
    for table in ("audit_log", "asset_status_history"):
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION onemap_append_only()"
        )


def downgrade() -> None:
    op.drop_index(op.f("ix_inspections_hazard_id"), table_name="inspections")
    op.drop_index(op.f("ix_inspections_grid_code"), table_name="inspections")
    op.drop_geospatial_index(
        "idx_inspections_geom",
        table_name="inspections",
        postgresql_using="gist",
        column_name="geom",
    )
    op.drop_geospatial_table("inspections")
    op.drop_index(op.f("ix_residents_id_hash"), table_name="residents")
    op.drop_index(op.f("ix_residents_house_id"), table_name="residents")
    op.drop_index(op.f("ix_residents_grid_code"), table_name="residents")
    op.drop_geospatial_index(
        "idx_residents_geom", table_name="residents", postgresql_using="gist", column_name="geom"
    )
    op.drop_geospatial_table("residents")
    op.drop_index(op.f("ix_hazards_status"), table_name="hazards")
    op.drop_index(op.f("ix_hazards_grid_code"), table_name="hazards")
    op.drop_index(op.f("ix_hazards_category"), table_name="hazards")
    op.drop_geospatial_index(
        "idx_hazards_geom", table_name="hazards", postgresql_using="gist", column_name="geom"
    )
    op.drop_geospatial_table("hazards")
    op.drop_index(op.f("ix_organisations_grid_code"), table_name="organisations")
    op.drop_index(op.f("ix_organisations_building_id"), table_name="organisations")
    op.drop_index(op.f("ix_organisations_address_id"), table_name="organisations")
    op.drop_geospatial_index(
        "idx_organisations_geom",
        table_name="organisations",
        postgresql_using="gist",
        column_name="geom",
    )
    op.drop_geospatial_table("organisations")
    op.drop_index(op.f("ix_houses_grid_code"), table_name="houses")
    op.drop_index(op.f("ix_houses_building_id"), table_name="houses")
    op.drop_index(op.f("ix_houses_address_id"), table_name="houses")
    op.drop_geospatial_index(
        "idx_houses_geom", table_name="houses", postgresql_using="gist", column_name="geom"
    )
    op.drop_geospatial_table("houses")
    op.drop_index(op.f("ix_facilities_kind"), table_name="facilities")
    op.drop_index(op.f("ix_facilities_grid_code"), table_name="facilities")
    op.drop_index(op.f("ix_facilities_address_id"), table_name="facilities")
    op.drop_geospatial_index(
        "idx_facilities_geom", table_name="facilities", postgresql_using="gist", column_name="geom"
    )
    op.drop_geospatial_table("facilities")
    op.drop_table("sensor_readings")
    op.drop_index(op.f("ix_asset_status_history_asset_id"), table_name="asset_status_history")
    op.drop_table("asset_status_history")
    op.drop_index(op.f("ix_addresses_grid_code"), table_name="addresses")
    op.drop_index(op.f("ix_addresses_full_name"), table_name="addresses")
    op.drop_index(op.f("ix_addresses_building_id"), table_name="addresses")
    op.drop_index(op.f("ix_addresses_area_code"), table_name="addresses")
    op.drop_geospatial_index(
        "idx_addresses_geom", table_name="addresses", postgresql_using="gist", column_name="geom"
    )
    op.drop_geospatial_table("addresses")
    op.drop_table("user_grids")
    op.drop_index(op.f("ix_sensors_kind"), table_name="sensors")
    op.drop_index(op.f("ix_sensors_grid_code"), table_name="sensors")
    op.drop_geospatial_index(
        "idx_sensors_geom", table_name="sensors", postgresql_using="gist", column_name="geom"
    )
    op.drop_geospatial_table("sensors")
    op.drop_index(op.f("ix_buildings_grid_code"), table_name="buildings")
    op.drop_geospatial_index(
        "idx_buildings_geom", table_name="buildings", postgresql_using="gist", column_name="geom"
    )
    op.drop_geospatial_table("buildings")
    op.drop_index(op.f("ix_assets_status"), table_name="assets")
    op.drop_index(op.f("ix_assets_category"), table_name="assets")
    op.drop_geospatial_index(
        "idx_assets_geom", table_name="assets", postgresql_using="gist", column_name="geom"
    )
    op.drop_geospatial_table("assets")
    op.drop_index(op.f("ix_grids_community_code"), table_name="grids")
    op.drop_geospatial_index(
        "idx_grids_geom", table_name="grids", postgresql_using="gist", column_name="geom"
    )
    op.drop_geospatial_table("grids")
    op.drop_index(op.f("ix_api_tokens_user_id"), table_name="api_tokens")
    op.drop_table("api_tokens")
    op.drop_geospatial_index(
        "idx_water_geom", table_name="water", postgresql_using="gist", column_name="geom"
    )
    op.drop_geospatial_table("water")
    op.drop_table("users")
    op.drop_geospatial_index(
        "idx_roads_geom", table_name="roads", postgresql_using="gist", column_name="geom"
    )
    op.drop_geospatial_table("roads")
    op.drop_geospatial_index(
        "idx_parks_geom", table_name="parks", postgresql_using="gist", column_name="geom"
    )
    op.drop_geospatial_table("parks")
    op.drop_table("layer_catalogue")
    op.drop_index(op.f("ix_landuse_parcels_class_code"), table_name="landuse_parcels")
    op.drop_geospatial_index(
        "idx_landuse_parcels_geom",
        table_name="landuse_parcels",
        postgresql_using="gist",
        column_name="geom",
    )
    op.drop_geospatial_table("landuse_parcels")
    op.drop_index(op.f("ix_audit_log_at"), table_name="audit_log")
    op.drop_index(op.f("ix_audit_log_actor"), table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index(op.f("ix_admin_areas_parent_code"), table_name="admin_areas")
    op.drop_geospatial_index(
        "idx_admin_areas_geom",
        table_name="admin_areas",
        postgresql_using="gist",
        column_name="geom",
    )
    op.drop_geospatial_table("admin_areas")
    op.execute("DROP FUNCTION IF EXISTS onemap_touch()")
    op.execute("DROP FUNCTION IF EXISTS onemap_append_only()")
