"""check-up runs: each run of the city check-up and every indicator's value for every area in it

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

LEVELS = ("district", "street", "community", "grid", "h3_8", "h3_9")


def upgrade() -> None:
    op.create_table(
        "checkup_runs",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("label", sa.String(length=200), nullable=True),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("area_code", sa.String(length=12), nullable=True),
        sa.Column("district_code", sa.String(length=12), nullable=True),
        sa.Column("district_name", sa.String(length=100), nullable=True),
        sa.Column(
            "started_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("seconds", sa.Double(), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=True),
        sa.Column(
            "settings", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column(
            "timings", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column("indicators", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkup_runs")),
    )
    op.create_table(
        "checkup_results",
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("indicator", sa.String(length=64), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("area_code", sa.String(length=32), nullable=False),
        sa.Column("area_name", sa.String(length=100), nullable=True),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("numerator", sa.Double(), nullable=True),
        sa.Column("denominator", sa.Double(), nullable=True),
        sa.Column("passed", sa.Boolean(), nullable=True),
        sa.Column("basis", sa.Text(), nullable=True),
        sa.CheckConstraint(f"level IN {LEVELS!r}", name=op.f("ck_checkup_results_level_known")),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["checkup_runs.id"],
            name=op.f("fk_checkup_results_run_id_checkup_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "run_id", "indicator", "level", "area_code", name=op.f("pk_checkup_results")
        ),
    )


def downgrade() -> None:
    op.drop_table("checkup_results")
    op.drop_table("checkup_runs")
