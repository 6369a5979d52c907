"""polygons wind as RFC 7946 says: exterior rings counter-clockwise, holes clockwise

Every polygon of the base tables is turned to that winding, and a trigger keeps every later write
(the demo city's COPY, a district import, a grid worker's edit) so, whichever path it takes: tiles
and exports read the stored geometry and inherit it. Turning a ring changes no shape, so the
existing rows are rewritten without bumping their versions (the touch trigger is held off).

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

#: the base tables whose geometry is a (multi)polygon
POLYGON_TABLES = (
    "admin_areas",
    "grids",
    "buildings",
    "landuse_parcels",
    "water",
    "parks",
    "assets",
)

FUNCTION = """
CREATE OR REPLACE FUNCTION onemap_wind_ccw() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.geom IS NOT NULL AND NOT ST_IsPolygonCCW(NEW.geom) THEN
        NEW.geom := ST_ForcePolygonCCW(NEW.geom);
    END IF;
    RETURN NEW;
END $$;
"""


def upgrade() -> None:
    op.execute(FUNCTION)
    for table in POLYGON_TABLES:
        op.execute(f"ALTER TABLE {table} DISABLE TRIGGER {table}_touch")
        op.execute(
            f"UPDATE {table} SET geom = ST_ForcePolygonCCW(geom) WHERE NOT ST_IsPolygonCCW(geom)"
        )
        op.execute(f"ALTER TABLE {table} ENABLE TRIGGER {table}_touch")
        op.execute(
            f"CREATE TRIGGER {table}_wind_ccw BEFORE INSERT OR UPDATE OF geom ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION onemap_wind_ccw()"
        )


def downgrade() -> None:
    for table in POLYGON_TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_wind_ccw ON {table}")
    op.execute("DROP FUNCTION IF EXISTS onemap_wind_ccw()")
