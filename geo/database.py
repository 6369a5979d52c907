"""The database: one engine per URL, and the URL resolution rule.

``DATABASE_URL`` wins; otherwise the private cluster's socket URL, read from the state file that
the cluster tooling (api/cluster.py) writes under ``ONEMAP_HOME``. Everything that talks to PostGIS
goes through :func:`engine` so that pool settings and connection set-up live in one place.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import create_engine, event, pool, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError

from geo.errors import BadRequest, OnemapError, Unavailable
from geo.settings import DatabaseSettings
from geo.sql import ident

#: the private cluster's superuser, made by the cluster tooling
CLUSTER_SUPERUSER = "onemap"


def cluster_url(settings: DatabaseSettings, database: str | None = None) -> str:
    """SQLAlchemy URL of the private cluster over its Unix socket (fastest)."""
    home = settings.home.resolve()
    state_file = home / "cluster.json"
    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    if state.get("port") is None:
        raise Unavailable("the private cluster has not been created yet: run `onemap db up`")
    run_dir = Path(state.get("server_home") or home) / "run"
    password = (home / "password").read_text().strip()
    return (
        f"postgresql+psycopg://{CLUSTER_SUPERUSER}:{quote(password, safe='')}@/"
        f"{database or settings.name}?host={quote(str(run_dir), safe='')}&port={state['port']}"
    )


def replica_url(settings: DatabaseSettings, database: str | None = None) -> str | None:
    """The private cluster's read replica over its socket, when one was made (``replica.json``
    written by ``onemap db replica up``); None otherwise. Whether it runs is the reader's to find."""
    home = settings.home.resolve()
    state_file = home / "replica.json"
    if not state_file.exists() or not (home / "password").exists():
        return None
    state = json.loads(state_file.read_text())
    password = (home / "password").read_text().strip()
    return (
        f"postgresql+psycopg://{CLUSTER_SUPERUSER}:{quote(password, safe='')}@/"
        f"{database or settings.name}?host={quote(state['run_dir'], safe='')}&port={state['port']}"
    )


def read_database_url(settings: DatabaseSettings | None = None) -> str | None:
    """Where reads may go: ``DATABASE_READ_URL`` if set; with ``DATABASE_URL`` and no read URL,
    nowhere but the primary (None); with the private cluster, its replica if one was made."""
    settings = settings or DatabaseSettings()
    if settings.read_url:
        return settings.read_url
    if settings.url:
        return None
    return replica_url(settings)


def database_url(database: str | None = None, settings: DatabaseSettings | None = None) -> str:
    """The SQLAlchemy URL to use: ``DATABASE_URL`` if set, else the private cluster's."""
    settings = settings or DatabaseSettings()
    if settings.url:
        if database is None:
            return settings.url
        base, _, query = settings.url.partition("?")
        base = base.rsplit("/", 1)[0] + "/" + database
        return base + ("?" + query if query else "")
    return cluster_url(settings, database)


@lru_cache(maxsize=8)
def engine(
    url: str | None = None,
    pool_size: int = 8,
    max_overflow: int = 8,
    quick: bool = False,
    timeout_ms: int | None = None,
    prepared: bool = True,
) -> Engine:
    """A pooled engine per URL; connections start with settings fit for short GIS queries.

    ``quick``: for reads on a hot path (tiles), each statement its own transaction (autocommit:
    no BEGIN or COMMIT round trips, and under READ COMMITTED a statement sees what a
    transaction's would) and no ping at checkout: a caller retries once when a pooled connection
    turns out dead (:func:`retrying_once`). ``timeout_ms`` bounds every statement of the
    session. ``prepared=False`` behind pgbouncer's transaction pooling (before 1.21; Debian 12
    has 1.18): psycopg never prepares a statement server-side, as the next transaction may run
    on another server connection. Session SETs then land on whichever server connection, which
    the app's engines share: the same planner settings, and at worst the read budget on a read."""
    eng = create_engine(
        url or database_url(),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=not quick,
        future=True,
        **({"isolation_level": "AUTOCOMMIT"} if quick else {}),
        **({} if prepared else {"connect_args": {"prepare_threshold": None}}),
    )

    @event.listens_for(eng, "connect")
    def _session_settings(dbapi_connection, _record):  # pragma: no cover - trivial
        with dbapi_connection.cursor() as cur:
            # parallel workers re-initialise PostGIS/PROJ per query: slower for our short queries
            cur.execute("SET max_parallel_workers_per_gather = 0; SET jit = off")
            if timeout_ms is not None:
                cur.execute(f"SET statement_timeout = {int(timeout_ms)}")
        dbapi_connection.commit()

    return eng


def retrying_once(engine_: Engine, work):
    """``work(conn)`` on a pooled connection; once more if that connection had died (a restart
    of PostgreSQL: the pool then drops all its connections, so the retry connects afresh)."""
    try:
        with engine_.connect() as conn:
            return work(conn)
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
    with engine_.connect() as conn:
        return work(conn)


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
    name = ident(make_url(url).database or "")
    admin = create_engine(_admin_url(url), poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if replace:
                conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :n"),
                {"n": make_url(url).database},
            ).first()
            if not exists:
                conn.execute(text(f"CREATE DATABASE {name}"))
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
    name = ident(make_url(url).database or "")
    engine(url).dispose()  # close our pooled connections first
    admin = create_engine(_admin_url(url), poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    finally:
        admin.dispose()


#: SQLSTATEs that mean "this request asked the impossible" (the caller's to fix), not a fault:
#: data exceptions (class 22: division by zero, overflow, a bad date or regular expression) and
#: geometry errors PostGIS reports as XX000. Type errors (class 42) are not here: filters are
#: type-checked before any SQL, so one reaching the database is our fault, and answers 500.
CALLER_STATES = ("22", "XX000")
CANCELLED = "57014"  # statement_timeout


def refusal_for(exc: DBAPIError) -> OnemapError | None:
    """The refusal a database error stands for, or None when it is a fault of ours (a 500)."""
    state = getattr(exc.orig, "sqlstate", None) or ""
    diag = getattr(exc.orig, "diag", None)
    reason = (getattr(diag, "message_primary", None) or "").strip()[:200]
    if state == CANCELLED:
        return Unavailable(
            "the query took longer than this service allows: narrow it (a smaller bbox, a "
            "filter, a smaller page) and try again"
        )
    if any(state.startswith(prefix) for prefix in CALLER_STATES):
        return BadRequest(f"the database cannot evaluate this request: {reason or state}")
    return None


@contextmanager
def refusing(conn: Connection | None = None) -> Iterator[None]:
    """Turn the database's refusals of a caller's request into the caller's errors (400, 503)."""
    try:
        yield
    except DBAPIError as exc:
        refusal = refusal_for(exc)
        if refusal is None:
            raise
        raise refusal from exc


@contextmanager
def transaction(engine_: Engine, timeout_ms: int | None = None) -> Iterator[Connection]:
    """A transaction whose statements are bounded by ``timeout_ms`` (a request class's budget)."""
    with engine_.begin() as conn:
        if timeout_ms is not None:
            set_timeout(conn, timeout_ms)
        yield conn


def set_timeout(conn: Connection, milliseconds: int) -> None:
    """Bound every statement of this transaction (``SET LOCAL``: it ends with the transaction)."""
    conn.execute(
        text("SELECT set_config('statement_timeout', :ms, true)"), {"ms": str(milliseconds)}
    )
