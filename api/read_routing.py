"""Reads on the replica, writes on the primary, and every caller reads its own writes.

With a read replica (``DATABASE_READ_URL``, or the private cluster's ``onemap db replica``), a
``GET``/``HEAD`` is answered from the hot standby and everything else from the primary. A write's
answer carries the primary's WAL position after its commit (``X-Onemap-LSN`` header and the
``onemap_lsn`` cookie); a read that brings one back is answered by the replica only once the
replica has replayed that far (waiting up to ``ONEMAP_READ_WAIT_MS``), else by the primary, so a
caller never misses its own write, whichever process answers.

The replica is watched (a thread per process, once a second): when it is unreachable, not in
recovery, or more than ``ONEMAP_READ_MAX_LAG_BYTES`` behind, every read goes to the primary and
``/health`` says why. A read the replica fails mid-way (the standby was killed, or the route
turned out to write) is run again on the primary before anything was sent, so no request is lost.
Reads with a stated ``purpose`` go to the primary: they write an audit entry.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from http.cookies import SimpleCookie

import anyio
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from geo.settings import DatabaseSettings

log = logging.getLogger("onemap.replica")

LSN_HEADER = "x-onemap-lsn"
LSN_COOKIE = "onemap_lsn"
READ_HEADER = b"x-onemap-read"
READ_METHODS = frozenset({"GET", "HEAD"})
#: SQLSTATEs that mean "the replica cannot answer this": a write on a standby, a lost or refused
#: connection (class 08), a shutting-down or recovering server, a query cancelled by recovery
REPLICA_STATES = ("25006", "08", "57P01", "57P02", "57P03", "40001")
CHECK_SECONDS = 1.0


class ReplicaFailed(Exception):
    """The replica could not answer a read; the router runs it again on the primary."""


def parse_lsn(value: str | None) -> int | None:
    """``16/B374D848`` as one integer (WAL bytes), or None if it is not an LSN."""
    if not value:
        return None
    high, sep, low = value.strip().partition("/")
    if not sep or len(high) > 8 or len(low) > 8:
        return None
    try:
        return (int(high, 16) << 32) | int(low, 16)
    except ValueError:
        return None


def format_lsn(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


def replica_cannot_answer(exc: BaseException) -> bool:
    """Whether a database error is the replica's failing (not the request's)."""
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        state = getattr(exc.orig, "sqlstate", None) or ""
        if not state:  # no SQLSTATE: the connection itself failed (refused, reset)
            return True
        return any(state.startswith(prefix) for prefix in REPLICA_STATES)
    return False


@dataclass
class ReplicaHealth:
    serving: bool = False
    reason: str = "not checked yet"
    replay_lsn: int | None = None
    lag_bytes: int | None = None
    checked_at: float = 0.0

    def report(self) -> dict:
        return {
            "configured": True,
            "reads_on": "replica" if self.serving else "primary",
            "status": "ok" if self.serving else "fallback",
            "reason": self.reason,
            "replay_lsn": None if self.replay_lsn is None else format_lsn(self.replay_lsn),
            "lag_bytes": self.lag_bytes,
            "checked_seconds_ago": round(time.monotonic() - self.checked_at, 1)
            if self.checked_at
            else None,
        }


class ReadRouter:
    """Chooses, per request, the engines it reads on; watches the replica."""

    def __init__(
        self,
        primary: Engine,
        replica: Engine,
        replica_tiles: Engine,
        settings: DatabaseSettings,
    ):
        self.primary = primary
        self.replica = replica
        self.replica_tiles = replica_tiles
        self.wait_s = settings.read_wait_ms / 1000
        self.max_lag = settings.read_max_lag_bytes
        self.health = ReplicaHealth()
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None
        self._stop = threading.Event()

    # --- watching ----------------------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            if self._watcher is None:
                self.check()
                self._watcher = threading.Thread(
                    target=self._watch, name="onemap-replica-watch", daemon=True
                )
                self._watcher.start()

    def stop(self) -> None:
        """Stop watching (the app's shutdown); a later request starts the watch again."""
        with self._lock:
            watcher, self._watcher = self._watcher, None
            self._stop.set()
        if watcher is not None:
            watcher.join(timeout=5)
        self._stop = threading.Event()

    def _watch(self) -> None:
        stop = self._stop
        while not stop.wait(CHECK_SECONDS):
            try:
                self.check()
            except Exception as exc:  # never let the watch die: reads stay on the primary
                self._set(False, f"replica check failed: {_short(exc)}")

    def check(self) -> ReplicaHealth:
        """Ask both servers where they are; serve from the replica only if it is close enough."""
        try:
            with self.replica.connect() as conn:
                recovering, replay = conn.execute(
                    text("SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text")
                ).one()
        except SQLAlchemyError as exc:
            return self._set(False, f"replica unreachable: {_short(exc)}")
        if not recovering:
            return self._set(False, "the read URL is not a standby (pg_is_in_recovery() is false)")
        try:
            with self.primary.connect() as conn:
                current = conn.execute(text("SELECT pg_current_wal_lsn()::text")).scalar_one()
        except SQLAlchemyError as exc:
            return self._set(False, f"primary unreachable: {_short(exc)}", parse_lsn(replay))
        replay_at, primary_at = parse_lsn(replay), parse_lsn(current)
        lag = max(0, primary_at - replay_at) if replay_at is not None else None
        if lag is None or lag > self.max_lag:
            return self._set(
                False, f"replica {lag} bytes behind (bound {self.max_lag})", replay_at, lag
            )
        return self._set(True, "streaming", replay_at, lag)

    def _set(self, serving: bool, reason: str, replay=None, lag=None) -> ReplicaHealth:
        was = self.health.serving
        self.health = ReplicaHealth(serving, reason, replay, lag, time.monotonic())
        if was != serving:
            log.warning("reads now on the %s: %s", "replica" if serving else "primary", reason)
        return self.health

    def failed(self, exc: BaseException) -> None:
        """A read failed on the replica: primary only until the next check finds it well."""
        self._set(False, f"a read failed on the replica: {_short(exc)}")

    # --- choosing ----------------------------------------------------------------------------
    def replica_may_serve(self, wanted: int | None) -> bool:
        """Whether the replica may answer a read that must see WAL up to ``wanted`` (blocking:
        waits for the replay up to the bound)."""
        health = self.health
        if not health.serving:
            return False
        if wanted is None or (health.replay_lsn is not None and health.replay_lsn >= wanted):
            return True
        deadline = time.monotonic() + self.wait_s
        try:
            with self.replica.connect() as conn:
                while True:
                    replay = parse_lsn(
                        conn.execute(text("SELECT pg_last_wal_replay_lsn()::text")).scalar()
                    )
                    if replay is not None and replay >= wanted:
                        self._seen(replay)
                        return True
                    if time.monotonic() >= deadline:
                        return False
                    time.sleep(0.005)
        except SQLAlchemyError as exc:
            self.failed(exc)
            return False

    def _seen(self, replay: int) -> None:
        health = self.health
        if health.serving and (health.replay_lsn is None or replay > health.replay_lsn):
            health.replay_lsn = replay

    def written_lsn(self) -> str | None:
        """The primary's WAL insert position: past the commit of every write answered so far."""
        try:
            with self.primary.connect() as conn:
                return conn.execute(text("SELECT pg_current_wal_insert_lsn()::text")).scalar()
        except SQLAlchemyError:
            return None


def _short(exc: BaseException) -> str:
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:200]


def _wanted_lsn(scope) -> int | None:
    """The LSN a read must see: the header, else the cookie (the larger if both)."""
    found = []
    for name, value in scope.get("headers", []):
        if name == LSN_HEADER.encode():
            found.append(parse_lsn(value.decode("latin-1")))
        elif name == b"cookie":
            cookie = SimpleCookie()
            try:
                cookie.load(value.decode("latin-1"))
            except Exception:  # a malformed cookie header: no LSN from it
                continue
            if LSN_COOKIE in cookie:
                found.append(parse_lsn(cookie[LSN_COOKIE].value))
    known = [lsn for lsn in found if lsn is not None]
    return max(known) if known else None


def _states_purpose(scope) -> bool:
    query = scope.get("query_string", b"")
    return b"purpose=" in query


class ReadRouting:
    """ASGI middleware: reads to the replica (when it may serve them), writes tagged with LSN."""

    def __init__(self, app, router: ReadRouter):
        self.app = app
        self.router = router

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        router = self.router
        if router._watcher is None:
            await anyio.to_thread.run_sync(router.start)
        state = scope.setdefault("state", {})
        if scope["method"] not in READ_METHODS:
            state["reads_on"] = "primary"
            return await self.app(scope, receive, self._tagging(send))
        if not _states_purpose(scope) and await anyio.to_thread.run_sync(
            router.replica_may_serve, _wanted_lsn(scope)
        ):
            state.update(reads_on="replica", read_engine=router.replica)
            state["read_tile_engine"] = router.replica_tiles
            started = False

            async def watching(message):
                nonlocal started
                if message["type"] == "http.response.start":
                    started = True
                    message = _saying_where(message, "replica")
                await send(message)

            try:
                return await self.app(scope, receive, watching)
            except ReplicaFailed as exc:
                if started:
                    raise
                router.failed(exc.__cause__ or exc)
                log.warning("read %s %s failed on the replica; answered by the primary",
                            scope["method"], scope["path"])  # fmt: skip
            for name in ("read_engine", "read_tile_engine"):
                state.pop(name, None)
            receive = _replayed(receive)
        state["reads_on"] = "primary"

        async def from_primary(message):
            if message["type"] == "http.response.start":
                message = _saying_where(message, "primary")
            await send(message)

        return await self.app(scope, receive, from_primary)

    def _tagging(self, send):
        """Add the primary's WAL position to a write's answer (after its commit)."""

        async def tagged(message):
            if message["type"] == "http.response.start":
                message = _saying_where(message, "primary")
                lsn = await anyio.to_thread.run_sync(self.router.written_lsn)
                if lsn:
                    message = dict(message)
                    message["headers"] = [
                        *message.get("headers", []),
                        (LSN_HEADER.encode(), lsn.encode()),
                        (
                            b"set-cookie",
                            f"{LSN_COOKIE}={lsn}; Path=/; Max-Age=600; HttpOnly; SameSite=Lax".encode(),
                        ),
                    ]
            await send(message)

        return tagged


def _saying_where(message: dict, server: str) -> dict:
    """``X-Onemap-Read``: which server answered (for operators, tests and curious callers)."""
    message = dict(message)
    message["headers"] = [*message.get("headers", []), (READ_HEADER, server.encode())]
    return message


def _replayed(receive):
    """A read run again: its (empty) body once more, then the real channel."""
    given = False

    async def again():
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": b"", "more_body": False}
        return await receive()

    return again
