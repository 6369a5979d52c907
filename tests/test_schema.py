"""The schema: migrations up and down, and the database refusing bad rows by itself."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import create_engine, inspect, pool, text
from sqlalchemy.exc import DBAPIError

from geo import migrate
from geo.models import EDITABLE_TABLES, Base


def _tables(url: str) -> set[str]:
    eng = create_engine(url, poolclass=pool.NullPool)
    try:
        return set(inspect(eng).get_table_names())
    finally:
        eng.dispose()


def test_migrations_up_down_up(scratch_url):
    migrate.upgrade(scratch_url)
    expected = set(Base.metadata.tables)
    assert expected <= _tables(scratch_url)
    assert migrate.current_revision(scratch_url) == migrate.head_revision()
    migrate.downgrade(scratch_url, "base")
    assert _tables(scratch_url) & expected == set()
    assert migrate.current_revision(scratch_url) is None
    migrate.upgrade(scratch_url)
    assert expected <= _tables(scratch_url)


def test_models_and_migrations_agree(scratch_url):
    """Autogenerate against a migrated database finds nothing to do: the migrations are complete."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    migrate.upgrade(scratch_url)
    eng = create_engine(scratch_url, poolclass=pool.NullPool)
    try:
        with eng.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"include_object": _ours})
            diff = compare_metadata(ctx, Base.metadata)
    finally:
        eng.dispose()
    assert diff == []


def _ours(obj, name, type_, reflected, compare_to):
    from geoalchemy2 import alembic_helpers

    from geo.migrate import derived_storage

    if type_ == "table" and name == "spatial_ref_sys":
        return False
    if derived_storage(obj, name, type_):
        return False
    return alembic_helpers.include_object(obj, name, type_, reflected, compare_to)


GRID_SQL = """INSERT INTO grids (code, name, community_code, geom) VALUES
    (:code, 'test grid', '320117001001', ST_GeomFromText(:wkt, :srid))"""
SQUARE = "MULTIPOLYGON(((119 31.6, 119.01 31.6, 119.01 31.61, 119 31.61, 119 31.6)))"
BOWTIE = "MULTIPOLYGON(((119 31.6, 119.01 31.61, 119.01 31.6, 119 31.61, 119 31.6)))"


def _insert(engine, sql, **params):
    with engine.begin() as conn:
        conn.execute(text(sql), params)


@pytest.mark.parametrize(
    ("code", "wkt", "srid", "refusal"),
    [
        ("320117001001999", BOWTIE, 4490, "ck_grids_geom_valid"),
        ("320117001001999", SQUARE, 4326, "SRID"),
        ("32011700100199X", SQUARE, 4490, "ck_grids_code_format"),
        ("320117002001999", SQUARE, 4490, "ck_grids_code_in_community"),
        ("320117001001999", "POINT(119 31.6)", 4490, "Geometry type"),
    ],
    ids=[
        "self-intersecting",
        "wrong-srid",
        "malformed-code",
        "code-outside-community",
        "wrong-type",
    ],
)
def test_database_refuses_bad_grids(engine, code, wkt, srid, refusal):
    with pytest.raises(DBAPIError) as caught:
        _insert(engine, GRID_SQL, code=code, wkt=wkt, srid=srid)
    assert refusal in str(caught.value)
    with engine.connect() as conn:
        assert (
            conn.execute(text("SELECT count(*) FROM grids WHERE name = 'test grid'")).scalar() == 0
        )


def test_a_good_grid_is_accepted_and_versioned(engine):
    with engine.begin() as conn:
        conn.execute(text(GRID_SQL), dict(code="320117001001998", wkt=SQUARE, srid=4490))
        first = conn.execute(
            text("SELECT version, updated_at FROM grids WHERE code = '320117001001998'")
        ).one()
        conn.execute(text("UPDATE grids SET name = 'renamed' WHERE code = '320117001001998'"))
        second = conn.execute(
            text("SELECT version FROM grids WHERE code = '320117001001998'")
        ).scalar()
        assert (first.version, second) == (1, 2)
        conn.execute(text("DELETE FROM grids WHERE code = '320117001001998'"))


@pytest.mark.parametrize(
    ("sql", "refusal"),
    [
        (
            "UPDATE residents SET id_number = '32011719800101123' WHERE id = 1",
            "ck_residents_id_number_format",
        ),
        ("UPDATE residents SET phone = '12345678901' WHERE id = 1", "ck_residents_phone_format"),
        (
            "UPDATE organisations SET credit_code = 'IOIOIOIOIOIOIOIOIO' WHERE id = 1",
            "ck_organisations_credit_code_format",
        ),
        (
            "UPDATE buildings SET code = '32011700100100100X1' WHERE id = 1",
            "ck_buildings_code_format",
        ),
        (
            "UPDATE addresses SET area_code = '320117009009' WHERE id = 1",
            "ck_addresses_code_in_area",
        ),
        ("UPDATE hazards SET level = 5 WHERE id = 1", "ck_hazards_level_range"),
        (
            "UPDATE houses SET building_id = 999999999 WHERE id = 1",
            "fk_houses_building_id_buildings",
        ),
        ("DELETE FROM audit_log", None),
    ],
)
def test_database_refuses_bad_records(engine, sql, refusal):
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_log (actor, role, action, target_type) VALUES ('t', 'admin', 'test', 'x')"
            )
        )
    with pytest.raises(DBAPIError) as caught, engine.begin() as conn:
        conn.execute(text(sql))
    assert (refusal or "append-only") in str(caught.value)


def test_every_editable_table_has_the_touch_trigger(engine):
    with engine.connect() as conn:
        triggers = {
            r[0]
            for r in conn.execute(
                text(
                    "SELECT event_object_table FROM information_schema.triggers WHERE trigger_name LIKE '%_touch'"
                )
            )
        }
    assert set(EDITABLE_TABLES) <= triggers


def test_every_geometry_has_a_gist_index(engine):
    with engine.connect() as conn:
        rows = conn.execute(
            text("""
            SELECT f_table_name, f_geometry_column,
                   EXISTS (SELECT 1 FROM pg_indexes i WHERE i.tablename = g.f_table_name
                           AND i.indexdef ILIKE '%USING gist%' AND i.indexdef LIKE '%' || g.f_geometry_column || '%')
            FROM geometry_columns g WHERE f_table_schema = 'public'""")
        ).all()
    assert rows and all(r[2] for r in rows), [r for r in rows if not r[2]]
    assert {r[0] for r in rows} >= {
        "grids",
        "buildings",
        "addresses",
        "residents",
        "hazards",
        "assets",
    }


def test_the_access_migrations_give_upgraded_databases_the_declared_rules(scratch_url):
    """0005 and 0006 wrote the base layers' rules into an existing catalogue: upgrading one
    registered before them must give exactly the rules declared now."""
    from sqlalchemy import create_engine, pool, text

    from geo import migrate
    from geo.policy.access import LayerAccess
    from layers.catalogue import BASE_LAYERS

    migrate.upgrade(scratch_url, "0004")
    eng = create_engine(scratch_url, poolclass=pool.NullPool)
    with eng.begin() as conn:  # a catalogue as 0004 knew it: personal and internal lists only
        for layer in BASE_LAYERS:
            conn.execute(
                text("""INSERT INTO layer_catalogue (id, table_name, title_zh, title_en, department,
                        sharing_level, opening_level, personal_fields, internal_fields, fields)
                        VALUES (:id, :id, 't', 't', 'd', 'unconditional', 'open', :p, :i,
                        CAST(:f AS jsonb))"""),
                {
                    "id": layer.id,
                    "p": list(layer.access.personal),
                    "i": sorted(layer.access.internal),
                    "f": json.dumps(
                        [{"name": n, "personal": k} for n, k in layer.access.personal.items()]
                    ),
                },
            )
    migrate.upgrade(scratch_url)
    with eng.connect() as conn:
        stored = dict(conn.execute(text("SELECT id, access FROM layer_catalogue")).all())
    eng.dispose()
    for layer in BASE_LAYERS:
        assert LayerAccess.from_json(stored[layer.id]) == layer.access, layer.id
