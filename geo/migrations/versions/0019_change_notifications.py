"""change notifications: every write to a table some process caches something about says so on
``NOTIFY``, so that every API process hears of it without a broker (issue 16)

Statement-level triggers with transition tables (one notification per statement, not per row; a
statement that touched no row says nothing) send, after the writer commits:

- on channel ``onemap_changes``: ``{"table": <name>, "op": "INSERT"|"UPDATE"|"DELETE"|"TRUNCATE"}``
  for the base tables drawn in tiles (migration 0011's MAPPED), the layer catalogue and the
  departmental layer declarations (``ingest.declarations``, named with its schema). Identical
  payloads of one transaction are folded into one by PostgreSQL, so a COPY in many batches
  is one notification.
- on channel ``onemap_warnings``: ``{"warnings": [{"id", "sensor_id", "state"}, ...]}`` for the
  sensor warnings a statement opened, cleared or updated (state ``opened``, ``cleared`` or
  ``updated``); when that would not fit under 8000 bytes (NOTIFY's limit), ``{"many": true,
  "count": n}`` instead, and the listener reads the warnings itself.

A notification is a hint that arrives after the commit: the per-query version checks stay what
guarantees freshness. A table re-created later (partitioned, say) needs :data:`CHANGED`'s triggers
again: ``SELECT onemap_notify_attach('<table>')`` makes them.

Revision ID: 0019
Revises: 0018
"""

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

#: migration 0011's tables drawn in tiles, plus the catalogue and the declarations
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
CHANGED = (*MAPPED, "layer_catalogue", "ingest.declarations")
TRIGGERS = ("notify_inserted", "notify_updated", "notify_deleted", "notify_truncated")
#: NOTIFY refuses payloads of 8000 bytes or more
PAYLOAD_LIMIT = 8000


def upgrade() -> None:
    op.execute("""
        CREATE OR REPLACE FUNCTION onemap_notify_new() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF EXISTS (SELECT FROM new_rows) THEN
                PERFORM pg_notify('onemap_changes', json_build_object(
                    'table', CASE WHEN TG_TABLE_SCHEMA = 'public' THEN TG_TABLE_NAME
                                  ELSE TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME END,
                    'op', TG_OP)::text);
            END IF;
            RETURN NULL;
        END $$;
        CREATE OR REPLACE FUNCTION onemap_notify_old() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF EXISTS (SELECT FROM old_rows) THEN
                PERFORM pg_notify('onemap_changes', json_build_object(
                    'table', CASE WHEN TG_TABLE_SCHEMA = 'public' THEN TG_TABLE_NAME
                                  ELSE TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME END,
                    'op', TG_OP)::text);
            END IF;
            RETURN NULL;
        END $$;
        CREATE OR REPLACE FUNCTION onemap_notify_all() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('onemap_changes', json_build_object(
                'table', CASE WHEN TG_TABLE_SCHEMA = 'public' THEN TG_TABLE_NAME
                              ELSE TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME END,
                'op', TG_OP)::text);
            RETURN NULL;
        END $$;
    """)
    triggers = "; ".join(
        [
            "CREATE TRIGGER notify_inserted AFTER INSERT ON %1$s REFERENCING NEW TABLE AS "
            "new_rows FOR EACH STATEMENT EXECUTE FUNCTION onemap_notify_new()",
            "CREATE TRIGGER notify_updated AFTER UPDATE ON %1$s REFERENCING NEW TABLE AS "
            "new_rows FOR EACH STATEMENT EXECUTE FUNCTION onemap_notify_new()",
            "CREATE TRIGGER notify_deleted AFTER DELETE ON %1$s REFERENCING OLD TABLE AS "
            "old_rows FOR EACH STATEMENT EXECUTE FUNCTION onemap_notify_old()",
            "CREATE TRIGGER notify_truncated AFTER TRUNCATE ON %1$s "
            "FOR EACH STATEMENT EXECUTE FUNCTION onemap_notify_all()",
        ]
    )
    op.execute(f"""
        CREATE OR REPLACE FUNCTION onemap_notify_attach(target text) RETURNS void
        LANGUAGE plpgsql AS $$
        BEGIN
            EXECUTE format('{triggers.replace("'", "''")}', target::regclass);
        END $$;
    """)
    for table in CHANGED:
        op.execute(f"SELECT onemap_notify_attach('{table}')")
    op.execute(f"""
        CREATE OR REPLACE FUNCTION onemap_notify_warnings() RETURNS trigger
        LANGUAGE plpgsql AS $$
        DECLARE
            payload text;
            n bigint;
        BEGIN
            IF TG_OP = 'INSERT' THEN
                SELECT count(*), json_build_object('warnings', json_agg(json_build_object(
                           'id', w.id, 'sensor_id', w.sensor_id,
                           'state', CASE WHEN w.cleared_at IS NULL THEN 'opened' ELSE 'cleared' END)
                           ORDER BY w.id))::text
                INTO n, payload FROM new_rows w;
            ELSE
                SELECT count(*), json_build_object('warnings', json_agg(json_build_object(
                           'id', w.id, 'sensor_id', w.sensor_id,
                           'state', CASE
                               WHEN w.cleared_at IS NOT NULL AND o.cleared_at IS NULL THEN 'cleared'
                               WHEN w.cleared_at IS NULL AND o.cleared_at IS NOT NULL THEN 'opened'
                               ELSE 'updated' END)
                           ORDER BY w.id))::text
                INTO n, payload FROM new_rows w LEFT JOIN old_rows o ON o.id = w.id;
            END IF;
            IF n = 0 THEN
                RETURN NULL;
            END IF;
            IF octet_length(payload) >= {PAYLOAD_LIMIT} THEN
                payload := json_build_object('many', true, 'count', n)::text;
            END IF;
            PERFORM pg_notify('onemap_warnings', payload);
            RETURN NULL;
        END $$;
        CREATE TRIGGER notify_warnings_inserted AFTER INSERT ON sensor_warnings
            REFERENCING NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION onemap_notify_warnings();
        CREATE TRIGGER notify_warnings_updated AFTER UPDATE ON sensor_warnings
            REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION onemap_notify_warnings();
    """)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS notify_warnings_inserted ON sensor_warnings")
    op.execute("DROP TRIGGER IF EXISTS notify_warnings_updated ON sensor_warnings")
    for table in CHANGED:
        for name in TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
    for function in (
        "onemap_notify_warnings()",
        "onemap_notify_attach(text)",
        "onemap_notify_new()",
        "onemap_notify_old()",
        "onemap_notify_all()",
    ):
        op.execute(f"DROP FUNCTION IF EXISTS {function}")
