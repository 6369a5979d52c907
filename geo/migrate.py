"""Schema migrations: Alembic driven from code, so the command line and the tests share one path."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from geo.safety.partitions import is_partition
from geo.settings import DISTRICT_COLUMN, TILE_GEOMETRY

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def derived_storage(obj, name, type_) -> bool:
    """Whether a schema object is derived storage the models do not declare (the tile geometry
    of migration 0012 and its index, the monthly partitions of sensor_readings of migration
    0018, the generated district codes of migration 0020 and their indexes): left out when
    models and database are compared."""
    if type_ == "table":
        return is_partition(name)
    if type_ == "column":
        return name == TILE_GEOMETRY or _generated_district(obj)
    if type_ == "index":
        return any(
            c.name == TILE_GEOMETRY or _generated_district(c) for c in getattr(obj, "columns", ())
        )
    return False


def _generated_district(column) -> bool:
    """A base table's generated district code (not ``users.district_code``, which is content)."""
    return column.name == DISTRICT_COLUMN and getattr(column.table, "name", None) != "users"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["url"] = url
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config("")).get_current_head()


def current_revision(url: str) -> str | None:
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def health(engine: Engine) -> dict:
    """Reachable database, PostGIS version, schema at the newest revision."""
    head = head_revision()
    try:
        with engine.connect() as conn:
            postgis = conn.execute(text("SELECT postgis_lib_version()")).scalar_one()
            postgres = conn.execute(text("SHOW server_version")).scalar_one()
            has_table = conn.execute(
                text("SELECT to_regclass('alembic_version') IS NOT NULL")
            ).scalar_one()
            revision = (
                conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
                if has_table
                else None
            )
    except SQLAlchemyError as exc:
        return {
            "status": "error",
            "database": "unreachable",
            "detail": str(exc.__cause__ or exc).strip(),
        }
    ok = revision == head
    return {
        "status": "ok" if ok else "degraded",
        "database": "reachable",
        "postgresql": postgres,
        "postgis": postgis,
        "schema_revision": revision,
        "schema_head": head,
        **(
            {}
            if ok
            else {"detail": "schema is not at the newest revision: run `onemap db migrate`"}
        ),
    }
