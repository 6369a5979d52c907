"""the catalogue keeps each layer's access rules whole

A layer's access rules (personal fields and their masks, who may see them raw and where, internal
fields and who sees them, which rows each role sees) are one JSON document, ``access``, written
from the layer's declaration; the two lists it replaces (personal_fields, internal_fields) could
not say who may unmask, or which rows. Existing entries are carried over, and the base layers get
the rules declared with their models at this revision (frozen below), so that an upgraded
database never serves with fewer rules than a new one: before 0005 these rules lived in code.

Revision ID: 0005
Revises: 0004
"""

import json

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

#: the base layers' rules as declared at this revision (geo.models: ``__access__``)
BASE_RULES = {
    "residents": {"unmask": {"grid_worker": "own"}},
    "organisations": {"unmask": {"grid_worker": "own", "safety": "all"}},
    "inspections": {"unmask": {"safety": "all"}},
    "assets": {
        "unmask": {"investment": "all"},
        "internal_roles": ["investment"],
        "rows": {"investment": "all", "planner": "all"},
        "other_rows": "status IN ('promoted', 'negotiating', 'revitalised')",
    },
}

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "layer_catalogue",
        sa.Column("access", JSONB, nullable=False, server_default="{}"),
    )
    op.execute("""
        UPDATE layer_catalogue c SET access = jsonb_build_object(
            'personal', coalesce((SELECT jsonb_object_agg(p, coalesce(
                    (SELECT f->>'personal' FROM jsonb_array_elements(c.fields) f WHERE f->>'name' = p),
                    'name')) FROM unnest(c.personal_fields) p), '{}'::jsonb),
            'internal', to_jsonb(c.internal_fields))
    """)
    for layer_id, rules in BASE_RULES.items():
        op.get_bind().execute(
            sa.text(
                "UPDATE layer_catalogue SET access = access || CAST(:rules AS jsonb) WHERE id = :id"
            ),
            {"rules": json.dumps(rules), "id": layer_id},
        )
    op.drop_column("layer_catalogue", "personal_fields")
    op.drop_column("layer_catalogue", "internal_fields")


def downgrade() -> None:
    op.add_column(
        "layer_catalogue",
        sa.Column("personal_fields", ARRAY(sa.Text), nullable=False, server_default="{}"),
    )
    op.add_column(
        "layer_catalogue",
        sa.Column("internal_fields", ARRAY(sa.Text), nullable=False, server_default="{}"),
    )
    op.execute("""
        UPDATE layer_catalogue SET
            personal_fields = ARRAY(SELECT jsonb_object_keys(coalesce(access->'personal', '{}'))),
            internal_fields = ARRAY(SELECT jsonb_array_elements_text(coalesce(access->'internal', '[]')))
    """)
    op.drop_column("layer_catalogue", "access")
