"""The tile cache every API process shares, and the rule that keeps it from ever going stale.

A tile is stored with the database snapshot it was drawn in (``pg_current_snapshot()`` of the
statement that drew it; a cap's redraw comes later, so it can only make a tile look stale). Every write to a mapped table notes, in its own transaction, where it changed
(``tiles.invalidations``, migration 0011: the old and the new extent). A cached tile is served
only if no noted change meets the tile (with its buffer) that its snapshot did not see — one
indexed query — so a tile drawn before a write is never served after the write has returned,
by this process or any other, and a tile nowhere near the change stays cached.

A tile is kept gzip-compressed, as browsers take it, with its ETag; a process that remembers
the layers' catalogue entries (:class:`layers.catalogue.LayerMemo`) serves a held tile with
one query (:func:`held`), which checks both the tile's freshness and that the entries it used
for the audience key are still the catalogue's.

Stores are pluggable (:class:`TileStore`); the default is a directory every process on the
machine shares, written atomically (write, then rename). Tiles are keyed by what they show (a
layer or a map), the caller's audience key from the read plan (two callers who may see
different things never share a tile), and z/x/y.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.engine import Connection

from layers.catalogue import VERSIONS_SQL
from tiles.matrix import Tile
from tiles.vector import BUFFER, EXTENT

log = logging.getLogger("onemap.tiles")
#: cached tiles older than this are drawn again, and notes older than this are pruned
MAX_AGE_S = 24 * 3600
_PRUNE_CHANCE = 0.001


@dataclass(frozen=True)
class Cached:
    body: bytes  # the tile, gzip-compressed if ``compressed`` (as it is kept in a store)
    etag: str  # over the uncompressed tile
    snapshot: str
    features: int
    truncated: bool
    compressed: bool = True

    def plain(self) -> bytes:
        return gzip.decompress(self.body) if self.compressed and self.body else self.body

    def gzipped(self) -> bytes:
        return self.body if self.compressed or not self.body else gzip.compress(self.body, 1)


class TileStore(Protocol):
    def get(self, key: str) -> Cached | None: ...
    def put(self, key: str, tile: Cached) -> None: ...
    def clear(self) -> None: ...


class DiskStore:
    """Tiles as files under ``root``: a header line (snapshot, features, truncated, ETag), then
    the tile's gzipped bytes. Readers never see a half-written file (write to a temporary file, rename)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._warned = False

    def _path(self, key: str) -> Path:
        return self.root / key

    def get(self, key: str) -> Cached | None:
        path = self._path(key)
        try:
            if time.time() - path.stat().st_mtime > MAX_AGE_S:
                return None
            raw = path.read_bytes()
        except OSError:
            return None
        header, _, data = raw.partition(b"\n")
        try:
            snapshot, features, truncated, etag = header.decode().split(" ")
            return Cached(data, etag, snapshot, int(features), truncated == "1", compressed=True)
        except ValueError:  # not ours, or an older format: drawn again
            return None

    def put(self, key: str, tile: Cached) -> None:
        """Keep the tile; a cache that cannot be written (disk full, no permission) is logged
        once and the tile is still served — the cache speeds things up, it is never needed."""
        path = self._path(key)
        header = f"{tile.snapshot} {tile.features} {int(tile.truncated)} {tile.etag}\n".encode()
        temporary = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tile-")
            with os.fdopen(handle, "wb") as out:
                out.write(header + tile.gzipped())
            os.replace(temporary, path)
        except OSError as exc:
            if temporary:
                Path(temporary).unlink(missing_ok=True)
            if not self._warned:
                self._warned = True
                log.warning(
                    "tile cache %s cannot be written (%s): tiles are drawn each time",
                    self.root,
                    exc.strerror,
                )

    def clear(self) -> None:
        import shutil

        shutil.rmtree(self.root, ignore_errors=True)


class NullStore:
    """No cache (``ONEMAP_TILE_CACHE=off``): every tile is drawn. For measuring, and for a
    service that must never write to disk."""

    def get(self, key: str) -> Cached | None:
        return None

    def put(self, key: str, tile: Cached) -> None:
        return None

    def clear(self) -> None:
        return None


def store_for(folder: Path, database: str) -> TileStore:
    """The store the settings ask for: ``off`` for none, else a directory per database."""
    if str(folder).strip().lower() in ("off", "none", "false", "0"):
        return NullStore()
    return DiskStore(Path(folder) / database)


def key(kind: str, name: str, audience: str, tile: Tile) -> str:
    """Where a tile is kept: what it shows, for whom (hashed: an audience key may name a user's
    grids), and z/x/y."""
    who = hashlib.sha256(audience.encode()).hexdigest()[:16]
    return f"{kind}/{name}/{who}/{tile.z}/{tile.x}/{tile.y}.mvt"


_STALE_SQL = """
    EXISTS (
        SELECT 1 FROM tiles.invalidations
        WHERE xid >= pg_snapshot_xmin(CAST(:snap AS pg_snapshot))
          AND layer = ANY(:layers)
          AND envelope && ST_TileEnvelope(:z, :x, :y, margin => :margin)
          AND NOT pg_visible_in_snapshot(xid, CAST(:snap AS pg_snapshot)))
"""
_FRESH = text(f"SELECT NOT {_STALE_SQL}")
_HELD = text(f"SELECT NOT {_STALE_SQL}, ({VERSIONS_SQL})")


def _stale_args(layers: list[str], tile: Tile, drawn_in: str) -> dict:
    return {
        "snap": drawn_in,
        "layers": layers,
        "z": tile.z,
        "x": tile.x,
        "y": tile.y,
        "margin": BUFFER / EXTENT,
    }


def fresh(conn: Connection, layers: list[str], tile: Tile, drawn_in: str) -> bool:
    """No change to ``layers`` meeting the tile that the snapshot ``drawn_in`` did not see."""
    return conn.execute(_FRESH, _stale_args(layers, tile, drawn_in)).scalar_one()


def audience_key(layers: list, who) -> str:
    """Whom the tile is for: each shown layer's audience under the caller's read plan."""
    return "|".join(f"{layer.id}:{layer.plan(who).audience}" for layer in layers)


def held(
    conn: Connection,
    store: TileStore,
    kind: str,
    name: str,
    shown: list,
    versions: list[str],
    catalogue_ids: list[str],
    who,
    tile: Tile,
) -> Cached | None:
    """The held tile, if it is fresh and the remembered catalogue entries it was keyed under
    (``versions`` of ``catalogue_ids``: :func:`layers.catalogue.version_list`) still hold; one
    query. ``shown`` are the layers the caller sees, as remembered."""
    got = store.get(key(kind, name, audience_key(shown, who), tile))
    if got is None:
        return None
    layer_ids = [layer.id for layer in shown]
    args = _stale_args(layer_ids, tile, got.snapshot) | {"ids": catalogue_ids}
    is_fresh, now = conn.execute(_HELD, args).one()
    return got if is_fresh and sorted(now) == versions else None


def prune(conn: Connection) -> None:
    """Drop notes older than any tile that may still be served."""
    conn.execute(
        text("DELETE FROM tiles.invalidations WHERE noted_at < now() - make_interval(secs => :s)"),
        {"s": MAX_AGE_S + 3600},
    )


def maybe_prune(conn: Connection) -> None:
    """Now and then, on the primary (a read replica cannot delete; its primary prunes for both)."""
    if (
        random.random() < _PRUNE_CHANCE
        and not conn.execute(text("SELECT pg_is_in_recovery()")).scalar()
    ):
        prune(conn)


def through(
    conn: Connection,
    store: TileStore,
    kind: str,
    name: str,
    layers: list,
    who,
    tile: Tile,
    draw,
) -> tuple[Cached, bool]:
    """The tile from ``store`` if it is fresh, else drawn by ``draw()`` (a
    :class:`tiles.vector.Drawn`, which says the snapshot it was drawn in) and kept. Returns the
    tile and whether it came from the store."""
    if isinstance(store, NullStore):
        return _joined(draw(), compress=False), False
    where = key(kind, name, audience_key(layers, who), tile)
    got = store.get(where)
    if got is not None and fresh(conn, [layer.id for layer in layers], tile, got.snapshot):
        return got, True
    made = _joined(draw(), compress=True)
    store.put(where, made)
    maybe_prune(conn)
    return made, False


def _joined(drawn, compress: bool) -> Cached:
    data = b"".join(d.data for d in drawn.layers)
    return Cached(
        # level 1: most of the saving at a fifth of the CPU; a tile not kept is compressed only
        # for a client that takes gzip
        gzip.compress(data, 1) if compress and data else data,
        'W/"' + hashlib.sha256(data).hexdigest()[:32] + '"',
        drawn.snapshot,
        sum(d.features for d in drawn.layers),
        any(d.truncated for d in drawn.layers),
        compressed=compress,
    )
