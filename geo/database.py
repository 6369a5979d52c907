"""The database: one engine per URL, one session factory, and the URL resolution rule.

``DATABASE_URL`` wins; otherwise the private cluster's socket URL. Everything that talks to PostGIS
goes through :func:`engine` so that pool settings and connection set-up live in one place.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import create_engine, event, pool, text
from sqlalchemy.engine import Connection, Engine, make_url

from geo.cluster import Cluster
from geo.settings import database_settings


def database_url(database: str | None = None) -> str:
    """The SQLAlchemy URL to use: ``DATABASE_URL`` if set, else the private cluster's."""
    settings = database_settings()
    if settings.url:
        if database is None:
            return settings.url
        base, _, query = settings.url.partition("?")
        base = base.rsplit("/", 1)[0] + "/" + database
        return base + ("?" + query if query else "")
    return Cluster(settings).url(database)


@lru_cache(maxsize=8)
def engine(url: str | None = None) -> Engine:
    """A pooled engine; connections start with settings fit for short GIS queries."""
    settings = database_settings()
    eng = create_engine(
        url or database_url(),
        pool_size=settings.pool_size,
        max_overflow=settings.max_overflow,
        pool_pre_ping=True,
        future=True,
    )

    @event.listens_for(eng, "connect")
    def _session_settings(dbapi_connection, _record):  # pragma: no cover - trivial
        with dbapi_connection.cursor() as cur:
            # parallel workers re-initialise PostGIS/PROJ per query: slower for our short queries
            cur.execute("SET max_parallel_workers_per_gather = 0; SET jit = off")
        dbapi_connection.commit()

    return eng


@contextmanager
def connect(url: str | None = None) -> Iterator[Connection]:
    """A connection in a transaction that commits on success and rolls back on error."""
    with engine(url).begin() as conn:
        yield conn


def postgis_version(conn: Connection) -> str:
    return conn.execute(text("SELECT postgis_lib_version()")).scalar_one()


def _admin_url(url: str) -> str:
    """The same server's maintenance database, for CREATE/DROP DATABASE."""
    return make_url(url).set(database="postgres").render_as_string(hide_password=False)


def create_database(url: str, with_postgis: bool = True, replace: bool = False) -> None:
    """Create the database ``url`` names (dropping it first if ``replace``), with PostGIS."""
    name = make_url(url).database
    if not name or not name.replace("_", "").isalnum():
        raise ValueError(f"database name {name!r} must be letters, digits and underscores")
    admin = create_engine(_admin_url(url), poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if replace:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
            ).first()
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    if with_postgis:
        eng = create_engine(url, poolclass=pool.NullPool)
        try:
            with eng.begin() as conn:
                conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
        finally:
            eng.dispose()


def drop_database(url: str) -> None:
    name = make_url(url).database
    engine(url).dispose()  # close our pooled connections first
    admin = create_engine(_admin_url(url), poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
