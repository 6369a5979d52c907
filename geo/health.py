"""The service's health: reachable database, PostGIS version, schema at the newest revision."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from geo.migrate import head_revision


def check(engine: Engine) -> dict:
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
