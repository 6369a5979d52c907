"""The change listener: every API process hears of every other's writes through PostgreSQL's
``LISTEN/NOTIFY`` (migration 0019's triggers), with no broker.

One daemon thread per process holds its own psycopg connection to the primary itself (LISTEN
needs a session: not through pgbouncer's transaction pooling, not on a hot standby) and calls the
callbacks registered for a table (``onemap_changes``) or for the warnings (``onemap_warnings``).
A notification is a hint that arrives asynchronously, after the writer's commit: the per-query
signature and version checks of each cache stay what guarantees freshness; the hint makes a
process drop what it holds at once instead of at its next check (the H3 resident counts, for
one, are trusted for a minute between checks). A dropped connection may have lost notifications,
so the listener then calls every "drop everything" callback, reconnects with backoff, and drops
again once it listens anew: a process that may have missed a change forgets rather than serve it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

import orjson
import psycopg
from psycopg.conninfo import make_conninfo
from sqlalchemy.engine import make_url

from geo.database import database_url
from layers.catalogue import LayerMemo

log = logging.getLogger("onemap.listener")

CHANNELS = ("onemap_changes", "onemap_warnings")
_NUMBERS = itertools.count(1)
#: first and longest wait between reconnection attempts (doubled each failure)
BACKOFF_SECONDS = (0.2, 5.0)
#: a quiet connection is asked ``SELECT 1`` this often, so a dead one is noticed
PING_SECONDS = 10.0


def libpq_conninfo(sqlalchemy_url: str, application_name: str) -> str:
    """The libpq connection string of a SQLAlchemy ``postgresql+psycopg://`` URL (socket or TCP)."""
    url = make_url(sqlalchemy_url)
    params: dict[str, object] = {k: v for k, v in url.query.items() if isinstance(v, str)}
    params.update(url.translate_connect_args(username="user", database="dbname"))
    params["application_name"] = application_name
    if not str(params.get("host", "")).startswith("/"):
        params.setdefault("keepalives", 1)
        params.setdefault("keepalives_idle", 10)
    return make_conninfo(**{k: str(v) for k, v in params.items()})


class WarningBell:
    """Wakes every open warnings stream of this process at once (rung from the listener thread;
    each stream waits on its own asyncio.Event in its own loop)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self.rung = 0

    def subscribe(self) -> tuple[asyncio.AbstractEventLoop, asyncio.Event]:
        waiter = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiting.add(waiter)
        return waiter

    def unsubscribe(self, waiter) -> None:
        with self._lock:
            self._waiting.discard(waiter)

    def ring(self, _payload: dict | None = None) -> None:
        with self._lock:
            waiting = list(self._waiting)
            self.rung += 1
        for loop, event in waiting:
            with contextlib.suppress(RuntimeError):  # a loop closed meanwhile
                loop.call_soon_threadsafe(event.set)

    @staticmethod
    async def wait(waiter, seconds: float) -> bool:
        """Until rung or ``seconds`` pass (the fallback poll); True if rung."""
        event = waiter[1]
        try:
            await asyncio.wait_for(event.wait(), seconds)
        except TimeoutError:
            return False
        event.clear()
        return True


class ChangeListener:
    """``LISTEN onemap_changes; LISTEN onemap_warnings`` on a thread of its own.

    ``on_change(tables, callback)`` calls ``callback(payload)`` for a change of one of
    ``tables``; ``on_warning(callback)`` for every warnings notification; ``on_drop(callback)``
    when notifications may have been missed. Callbacks run on the listener thread: keep them
    short (clear a dict, set an event)."""

    def __init__(
        self, url: str, name: str | None = None, alive: Callable[[], bool] = lambda: True
    ) -> None:
        # unique per listener: found (and killed, in the tests) by name in pg_stat_activity
        self.application_name = name or f"onemap-listener-{os.getpid()}-{next(_NUMBERS)}"
        self._alive = alive  # False once the app it serves is gone (a test client never closed)
        self._conninfo = libpq_conninfo(url, self.application_name)
        self._changes: list[tuple[frozenset[str], Callable[[dict], None]]] = []
        self._warnings: list[Callable[[dict], None]] = []
        self._drops: list[Callable[[], None]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.connected = threading.Event()
        self.backend_pid: int | None = None
        self.notifications = 0
        self.last_notification: datetime | None = None
        self.reconnects = 0
        self.drops = 0
        self.last_error: str | None = None

    # --- registration -------------------------------------------------------------------------
    def on_change(self, tables: Iterable[str], callback: Callable[[dict], None]) -> None:
        self._changes.append((frozenset(tables), callback))

    def on_warning(self, callback: Callable[[dict], None]) -> None:
        self._warnings.append(callback)

    def on_drop(self, callback: Callable[[], None]) -> None:
        self._drops.append(callback)

    # --- life ---------------------------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="onemap-listener", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None

    def state(self) -> dict:
        """For /health: is it listening, since when did it hear, how often did it reconnect."""
        last = self.last_notification
        return {
            "running": self.running,
            "connected": self.connected.is_set(),
            "channels": list(CHANNELS),
            "notifications": self.notifications,
            "last_notification": last.isoformat().replace("+00:00", "Z") if last else None,
            "reconnects": self.reconnects,
            "caches_dropped": self.drops,
            "last_error": self.last_error,
        }

    # --- the thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        wait = BACKOFF_SECONDS[0]
        first = True
        while not self._stop.is_set() and self._alive():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5) as conn:
                    for channel in CHANNELS:
                        conn.execute(f"LISTEN {channel}")
                    self.backend_pid = conn.info.backend_pid
                    if not first:
                        self.reconnects += 1
                    # what changed before LISTEN took effect was not heard: forget it
                    self._drop_everything()
                    self.connected.set()
                    first, wait = False, BACKOFF_SECONDS[0]
                    self._listen(conn)
            except psycopg.Error as exc:
                self.last_error = f"{type(exc).__name__}: {str(exc).strip()[:200]}"
                log.warning("change listener lost its connection: %s", self.last_error)
            finally:
                if self.connected.is_set():
                    self.connected.clear()
                    self._drop_everything()
            if self._stop.wait(wait):
                break
            wait = min(wait * 2, BACKOFF_SECONDS[1])
        self.connected.clear()

    def _listen(self, conn: psycopg.Connection) -> None:
        quiet_since = time.monotonic()
        while not self._stop.is_set() and self._alive():
            heard = False
            for note in conn.notifies(timeout=0.5):
                heard = True
                self._dispatch(note.channel, note.payload)
            if heard:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > PING_SECONDS:
                conn.execute("SELECT 1")
                quiet_since = time.monotonic()

    def _dispatch(self, channel: str, payload: str) -> None:
        self.notifications += 1
        self.last_notification = datetime.now(UTC)
        try:
            body = orjson.loads(payload)
        except orjson.JSONDecodeError:
            body = {}
        if channel == "onemap_warnings":
            callbacks = list(self._warnings)
        else:
            table = body.get("table")
            callbacks = [cb for tables, cb in self._changes if table in tables]
        for callback in callbacks:
            try:
                callback(body)
            except Exception:  # a failing callback must not stop the listening
                log.exception("change listener callback failed on %s %s", channel, payload)

    def _drop_everything(self) -> None:
        self.drops += 1
        for callback in list(self._drops):
            try:
                callback()
            except Exception:
                log.exception("change listener drop callback failed")


# --- what this service's processes cache, and when each is dropped ------------------------------


def forget_road_networks(_payload: dict | None = None) -> None:
    """The alarm's road graphs (geo.safety.alarm): built again at the next alarm."""
    from geo.safety import alarm

    alarm.forget_networks()


def forget_resident_cells(_payload: dict | None = None) -> None:
    """The asset surroundings' residents per H3 cell (geo.assets.surroundings): trusted for a
    minute between signature checks, so without this hint a process could serve counts up to a
    minute old after another process's edit."""
    from geo.assets import surroundings

    surroundings.forget_cells()


#: tables whose change drops what, in every process
ROAD_TABLES = ("roads",)
PEOPLE_TABLES = ("residents", "houses", "buildings")
CATALOGUE_TABLES = ("layer_catalogue", "ingest.declarations")


def wire(app) -> ChangeListener:
    """A listener for ``app``: its layer memo, the alarm's road graphs, the H3 resident counts,
    and the warnings streams' bell (``app.state.warning_bell``). The tile cache on disk needs no
    hint: every fetch checks the database's notes (tiles.cache.fresh)."""
    settings = app.state.settings.database
    url = settings.listen_url or database_url(settings=settings)
    owner = weakref.ref(app)  # the thread must not keep an abandoned app alive
    listener = ChangeListener(url, alive=lambda: owner() is not None)

    def forget_catalogue(_payload: dict | None = None) -> None:
        held = owner()
        if held is not None:  # readers take the attribute afresh per request
            held.state.layer_memo = LayerMemo()

    listener.on_change(CATALOGUE_TABLES, forget_catalogue)
    listener.on_change(ROAD_TABLES, forget_road_networks)
    listener.on_change(PEOPLE_TABLES, forget_resident_cells)
    listener.on_warning(app.state.warning_bell.ring)
    for forget in (forget_catalogue, forget_road_networks, forget_resident_cells):
        listener.on_drop(forget)
    listener.on_drop(app.state.warning_bell.ring)  # streams look for what they missed
    return listener


def ensure_started(app) -> ChangeListener | None:
    """Start ``app``'s listener if the settings want one (at start-up, or at the first request
    of a host that runs no lifespan); None when switched off."""
    listener = getattr(app.state, "change_listener", None)
    if listener is None:
        return None
    if not listener.running and not getattr(app.state, "listener_stopped", False):
        listener.start()
    return listener


class ProcessMark:
    """Marks every response with the process that answered (``X-Onemap-Process: <pid>``: which
    backend of the balancer), and starts the app's listener at the first request of a host that
    runs no lifespan (a test client used without ``with``)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        owner = scope.get("app")
        if owner is not None:
            ensure_started(owner)

        async def marked(message):
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                mark = (b"x-onemap-process", str(os.getpid()).encode())  # after any fork
                message["headers"] = [*message["headers"], mark]
            await send(message)

        await self.app(scope, receive, marked)
