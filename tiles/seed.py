"""Drawing a map's tiles ahead of its users (``onemap tiles seed``): every tile of the chosen
zooms over the map's extent, for the public audience (what anyone may see), into the shared
cache, with progress."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.engine import Engine

from geo.policy.roles import ANONYMOUS, Viewer
from layers.catalogue import layers_by_id
from tiles import cache
from tiles.maps import MapSpec, extent, map_tile, shown_on
from tiles.matrix import tiles_covering


def seed(
    engine: Engine,
    store: cache.TileStore,
    spec: MapSpec,
    zooms: range,
    who: Viewer = ANONYMOUS,
    progress: Callable[[int, int, bool], None] | None = None,
) -> dict[str, int]:
    """Draw (or confirm fresh) every tile; returns how many were drawn and how many were held."""
    with engine.connect() as conn:
        found = layers_by_id(conn, spec.layers)
    box = extent(shown_on(spec, found, who))
    if box is None:
        return {"drawn": 0, "held": 0}
    todo = [t for z in zooms for t in tiles_covering(*box, z)]
    drawn = held = 0
    for n, tile in enumerate(todo, start=1):
        layers = shown_on(spec, found, who, tile.z)  # as the map's tile route draws it
        with engine.begin() as conn:
            _, was_held = cache.through(
                conn,
                store,
                "map",
                spec.id,
                layers,
                who,
                tile,
                lambda conn=conn, tile=tile, layers=layers: map_tile(conn, layers, who, tile),
            )
        held += was_held
        drawn += not was_held
        if progress:
            progress(n, len(todo), was_held)
    return {"drawn": drawn, "held": held}
