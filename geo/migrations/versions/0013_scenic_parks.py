"""scenic parks: the parks table also holds scenic areas (风景游憩绿地, CJJ/T 85-2017 class EG1),
such as 无想山 and 天生桥, which the map shows but the park indicators leave out

Revision ID: 0013
Revises: 0012
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

BEFORE = ("comprehensive", "community", "pocket", "linear")
AFTER = (*BEFORE, "scenic")


def _kinds(kinds: tuple[str, ...]) -> None:
    op.drop_constraint(op.f("ck_parks_kind_known"), "parks", type_="check")
    op.create_check_constraint(op.f("ck_parks_kind_known"), "parks", f"kind IN {kinds!r}")


def upgrade() -> None:
    _kinds(AFTER)


def downgrade() -> None:
    op.execute("DELETE FROM parks WHERE kind = 'scenic'")
    _kinds(BEFORE)
