"""tile invalidations: every write to a mapped table notes where it changed, in the writer's
transaction, so that no process serves a cached tile drawn before that change

Statement-level triggers with transition tables (one row per statement, not per row, so that a
COPY of millions of rows notes two extents, not millions) record the extent of the rows as they
were (``OLD``) and as they are (``NEW``) in Web Mercator, with the writing transaction's id. A
cached tile records the snapshot it was drawn in; it is stale exactly when a noted change meets
it that its snapshot did not see (``pg_visible_in_snapshot``), whichever process drew it. A
TRUNCATE notes the whole world. Departmental layers note theirs when ingest swaps a new table in.

Revision ID: 0011
Revises: 0010
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

#: the base tables drawn in tiles (every table with a geometry)
MAPPED = (
    "admin_areas",
    "grids",
    "buildings",
    "addresses",
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
)
WORLD = "ST_MakeEnvelope(-20037508.34, -20037508.34, 20037508.34, 20037508.34, 3857)"


def upgrade() -> None:
    op.execute("CREATE SCHEMA IF NOT EXISTS tiles")
    op.execute("""
        CREATE TABLE IF NOT EXISTS tiles.invalidations (
            id bigserial PRIMARY KEY,
            layer text NOT NULL,
            envelope geometry(Polygon, 3857) NOT NULL,
            xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
            noted_at timestamptz NOT NULL DEFAULT clock_timestamp()
        )
    """)
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_invalidations_envelope ON tiles.invalidations USING gist (envelope)"
    )
    op.execute("CREATE INDEX IF NOT EXISTS ix_invalidations_xid ON tiles.invalidations (xid)")
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_invalidations_noted_at ON tiles.invalidations (noted_at)"
    )
    op.execute(f"""
        CREATE OR REPLACE FUNCTION tiles.note(layer text, extent box2d) RETURNS void
        LANGUAGE sql AS $$
            INSERT INTO tiles.invalidations (layer, envelope)
            SELECT layer, ST_Envelope(ST_Expand(ST_Transform(
                       ST_SetSRID(extent::geometry, 4490), 3857), 1.0))
            WHERE extent IS NOT NULL
        $$;
        CREATE OR REPLACE FUNCTION tiles.note_new() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM tiles.note(TG_TABLE_NAME, (SELECT ST_Extent(geom) FROM new_rows));
            RETURN NULL;
        END $$;
        CREATE OR REPLACE FUNCTION tiles.note_old() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM tiles.note(TG_TABLE_NAME, (SELECT ST_Extent(geom) FROM old_rows));
            RETURN NULL;
        END $$;
        CREATE OR REPLACE FUNCTION tiles.note_both() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            -- old and new apart: a moved point invalidates where it was and where it is,
            -- not everything between
            PERFORM tiles.note(TG_TABLE_NAME, (SELECT ST_Extent(geom) FROM old_rows));
            PERFORM tiles.note(TG_TABLE_NAME, (SELECT ST_Extent(geom) FROM new_rows));
            RETURN NULL;
        END $$;
        CREATE OR REPLACE FUNCTION tiles.note_all() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO tiles.invalidations (layer, envelope) VALUES (TG_TABLE_NAME, {WORLD});
            RETURN NULL;
        END $$;
    """)
    for table in MAPPED:
        op.execute(f"""
            CREATE TRIGGER tiles_inserted AFTER INSERT ON {table}
                REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tiles.note_new();
            CREATE TRIGGER tiles_updated AFTER UPDATE ON {table}
                REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
                FOR EACH STATEMENT EXECUTE FUNCTION tiles.note_both();
            CREATE TRIGGER tiles_deleted AFTER DELETE ON {table}
                REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION tiles.note_old();
            CREATE TRIGGER tiles_truncated AFTER TRUNCATE ON {table}
                FOR EACH STATEMENT EXECUTE FUNCTION tiles.note_all();
        """)


def downgrade() -> None:
    for table in MAPPED:
        for name in ("tiles_inserted", "tiles_updated", "tiles_deleted", "tiles_truncated"):
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
    op.execute("DROP SCHEMA IF EXISTS tiles CASCADE")
