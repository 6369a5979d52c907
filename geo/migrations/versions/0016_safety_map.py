"""the city safety map: a hazard's closed loop (reported → assigned → rectifying → verified →
closed) with its steps and evidence, its department, source and reporter; inspections with a
route, the key unit checked and the hazards found or re-checked; sensor warnings (one open per
sensor); duty contacts of the five levels; 119 fire alarms and the response given

Existing hazards that were 'open' (found, handed to the unit, not yet being rectified) become
'assigned'.

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

BEFORE = ("open", "rectifying", "closed")
AFTER = ("reported", "assigned", "rectifying", "verified", "closed")
SOURCES = ("inspection", "tip", "sensor", "report")


def _point(nullable: bool = False) -> Geometry:
    return Geometry(
        geometry_type="POINT",
        srid=4490,
        dimension=2,
        spatial_index=False,
        from_text="ST_GeomFromEWKT",
        name="geometry",
        nullable=nullable,
    )


def upgrade() -> None:
    op.drop_constraint(op.f("ck_hazards_status_known"), "hazards", type_="check")
    op.execute("UPDATE hazards SET status = 'assigned' WHERE status = 'open'")
    op.create_check_constraint(op.f("ck_hazards_status_known"), "hazards", f"status IN {AFTER!r}")
    op.add_column("hazards", sa.Column("department", sa.String(length=50), nullable=True))
    op.add_column(
        "hazards",
        sa.Column("source", sa.String(length=16), server_default="inspection", nullable=False),
    )
    op.add_column("hazards", sa.Column("reported_by", sa.String(length=50), nullable=True))
    op.create_check_constraint(op.f("ck_hazards_source_known"), "hazards", f"source IN {SOURCES!r}")
    op.create_table(
        "hazard_steps",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("hazard_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_by", sa.String(length=50), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column(
            "evidence",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="[]",
            nullable=False,
        ),
        sa.CheckConstraint(f"status IN {AFTER!r}", name=op.f("ck_hazard_steps_status_known")),
        sa.ForeignKeyConstraint(
            ["hazard_id"],
            ["hazards.id"],
            name=op.f("fk_hazard_steps_hazard_id_hazards"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hazard_steps")),
    )
    op.create_index(op.f("ix_hazard_steps_hazard_id"), "hazard_steps", ["hazard_id"])

    op.add_column("inspections", sa.Column("organisation_id", sa.BigInteger(), nullable=True))
    op.create_foreign_key(
        op.f("fk_inspections_organisation_id_organisations"),
        "inspections",
        "organisations",
        ["organisation_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.add_column(
        "inspections",
        sa.Column(
            "route",
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
    )
    op.create_geospatial_index(
        "idx_inspections_route",
        "inspections",
        ["route"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_table(
        "inspection_hazards",
        sa.Column("inspection_id", sa.BigInteger(), nullable=False),
        sa.Column("hazard_id", sa.BigInteger(), nullable=False),
        sa.Column("relation", sa.String(length=12), nullable=False),
        sa.CheckConstraint(
            "relation IN ('found', 'rechecked')",
            name=op.f("ck_inspection_hazards_relation_known"),
        ),
        sa.ForeignKeyConstraint(
            ["hazard_id"],
            ["hazards.id"],
            name=op.f("fk_inspection_hazards_hazard_id_hazards"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["inspection_id"],
            ["inspections.id"],
            name=op.f("fk_inspection_hazards_inspection_id_inspections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("inspection_id", "hazard_id", name=op.f("pk_inspection_hazards")),
    )
    op.create_index(op.f("ix_inspection_hazards_hazard_id"), "inspection_hazards", ["hazard_id"])
    # what the inspections already say: the hazard each one found
    op.execute("""INSERT INTO inspection_hazards (inspection_id, hazard_id, relation)
                  SELECT id, hazard_id, CASE result WHEN 'hazard_found' THEN 'found'
                                                    ELSE 'rechecked' END
                  FROM inspections WHERE hazard_id IS NOT NULL""")

    op.create_table(
        "sensor_warnings",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("sensor_id", sa.BigInteger(), nullable=False),
        sa.Column("threshold", sa.Double(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_value", sa.Double(), nullable=False),
        sa.Column("peak_value", sa.Double(), nullable=False),
        sa.Column("last_value", sa.Double(), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("readings", sa.Integer(), server_default="1", nullable=False),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["sensor_id"],
            ["sensors.id"],
            name=op.f("fk_sensor_warnings_sensor_id_sensors"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sensor_warnings")),
    )
    op.create_index(op.f("ix_sensor_warnings_sensor_id"), "sensor_warnings", ["sensor_id"])
    op.create_index(
        "ux_sensor_warnings_open",
        "sensor_warnings",
        ["sensor_id"],
        unique=True,
        postgresql_where=sa.text("cleared_at IS NULL"),
    )
    op.create_table(
        "duty_contacts",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("level", sa.SmallInteger(), nullable=False),
        sa.Column("unit_code", sa.String(length=22), nullable=False),
        sa.Column("post", sa.String(length=50), nullable=False),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("phone", sa.CHAR(length=11), nullable=False),
        sa.CheckConstraint("level BETWEEN 1 AND 5", name=op.f("ck_duty_contacts_level_range")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_duty_contacts")),
    )
    op.create_index(op.f("ix_duty_contacts_unit_code"), "duty_contacts", ["unit_code"])
    op.create_table(
        "fire_alarms",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_by", sa.String(length=50), nullable=False),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("response", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("seconds", sa.Double(), nullable=False),
        sa.Column("geom", _point(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fire_alarms")),
    )
    op.create_geospatial_index(
        "idx_fire_alarms_geom",
        "fire_alarms",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )


def downgrade() -> None:
    op.drop_geospatial_index(
        "idx_fire_alarms_geom",
        table_name="fire_alarms",
        postgresql_using="gist",
        column_name="geom",
    )
    op.drop_table("fire_alarms")
    op.drop_index(op.f("ix_duty_contacts_unit_code"), table_name="duty_contacts")
    op.drop_table("duty_contacts")
    op.drop_index("ux_sensor_warnings_open", table_name="sensor_warnings")
    op.drop_index(op.f("ix_sensor_warnings_sensor_id"), table_name="sensor_warnings")
    op.drop_table("sensor_warnings")
    op.drop_index(op.f("ix_inspection_hazards_hazard_id"), table_name="inspection_hazards")
    op.drop_table("inspection_hazards")
    op.drop_geospatial_index(
        "idx_inspections_route",
        table_name="inspections",
        postgresql_using="gist",
        column_name="route",
    )
    op.drop_column("inspections", "route")
    op.drop_constraint(
        op.f("fk_inspections_organisation_id_organisations"), "inspections", type_="foreignkey"
    )
    op.drop_column("inspections", "organisation_id")
    op.drop_index(op.f("ix_hazard_steps_hazard_id"), table_name="hazard_steps")
    op.drop_table("hazard_steps")
    op.drop_constraint(op.f("ck_hazards_source_known"), "hazards", type_="check")
    op.drop_column("hazards", "reported_by")
    op.drop_column("hazards", "source")
    op.drop_column("hazards", "department")
    op.drop_constraint(op.f("ck_hazards_status_known"), "hazards", type_="check")
    op.execute("UPDATE hazards SET status = 'open' WHERE status IN ('reported', 'assigned')")
    op.execute("UPDATE hazards SET status = 'rectifying' WHERE status = 'verified'")
    op.create_check_constraint(op.f("ck_hazards_status_known"), "hazards", f"status IN {BEFORE!r}")
