"""identity numbers masked to their region; birth dates to their year; residents by grid

The mask "first 6 + last 4" hid only the birth date, which was served beside it: any role that
saw masked data could rebuild every number. Masked identity numbers now keep only the region
(320117************), and birth dates are personal data masked to the year. Grid workers read
the residents of their own grids only, on every path. The catalogue's residents entry gets the
rules declared with the model at this revision.

Revision ID: 0006
Revises: 0005
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

MASKS = """
CREATE OR REPLACE FUNCTION onemap_mask_id_number(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN value IS NULL OR value = '' THEN value
                WHEN char_length(value) > 6
                THEN left(value, 6) || repeat('*', char_length(value) - 6)
                ELSE repeat('*', char_length(value)) END
$$;
CREATE OR REPLACE FUNCTION onemap_mask_birth_date(value date) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_char(value, 'YYYY')
$$;
"""
OLD_ID_MASK = """
CREATE OR REPLACE FUNCTION onemap_mask_id_number(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN value IS NULL OR value = '' THEN value
                WHEN char_length(value) > 10
                THEN left(value, 6) || repeat('*', char_length(value) - 10) || right(value, 4)
                ELSE repeat('*', char_length(value)) END
$$;
"""
#: the residents' rules as declared at this revision (geo.models.facts.Resident.__access__)
RESIDENTS = {
    "personal": {
        "name": "name",
        "id_number": "id_number",
        "phone": "phone",
        "birth_date": "birth_date",
    },
    "unmask": {"grid_worker": "own"},
    "rows": {"grid_worker": "own"},
}


def upgrade() -> None:
    op.execute(MASKS)
    op.get_bind().execute(
        sa.text(
            "UPDATE layer_catalogue SET access = access || CAST(:rules AS jsonb) "
            "WHERE id = 'residents'"
        ),
        {"rules": json.dumps(RESIDENTS)},
    )


def downgrade() -> None:
    op.execute(OLD_ID_MASK)
    op.execute("DROP FUNCTION IF EXISTS onemap_mask_birth_date(date)")
    op.get_bind().execute(
        sa.text(
            "UPDATE layer_catalogue SET access = (access - 'rows') || CAST(:rules AS jsonb) "
            "WHERE id = 'residents'"
        ),
        {
            "rules": json.dumps(
                {"personal": {"name": "name", "id_number": "id_number", "phone": "phone"}}
            )
        },
    )
