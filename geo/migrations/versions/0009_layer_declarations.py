"""departmental layers declared as data: their TOML kept in the database

A layer declared at run time (``onemap layers declare FILE``, ``POST /layers``) is kept as the
text it was declared in, so that every process reads the same declarations; the layers shipped
with the code are TOML files under layers/departments/. Schema ``ingest``, beside the reports.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE IF NOT EXISTS ingest.declarations (
            id text PRIMARY KEY CHECK (id ~ '^[a-z][a-z0-9_]{1,62}$'),
            source text NOT NULL,
            declared_by text NOT NULL,
            declared_at timestamptz NOT NULL DEFAULT now()
        )
    """)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS ingest.declarations")
