"""The maps, defined in one place: which layers each map's multi-layer tile holds (bottom to top)
and how its style draws them. The check-up, asset and safety maps lay their own layers over the
base map of our natural-resource layers."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Connection

from geo.errors import NotFound
from geo.policy.roles import Viewer
from layers.catalogue import Layer, layers_by_id, listed
from tiles.matrix import Tile
from tiles.vector import Drawn, layer_tiles

BASE = ("landuse_parcels", "water", "parks", "roads", "buildings")
#: the zoom from which a map's tile carries a layer (and its style draws it): below it a
#: district's 60,000 buildings are a grey wash nobody reads, and the base map's low-zoom tiles
#: stay light (OpenMapTiles starts its buildings at 13 too). A layer's own tiles
#: (/tiles/{layer}) carry it at every zoom.
MINZOOM = {"buildings": 13}


@dataclass(frozen=True)
class MapSpec:
    id: str
    title_zh: str
    title_en: str
    layers: tuple[str, ...]  # bottom to top


MAPS: dict[str, MapSpec] = {
    m.id: m
    for m in (
        MapSpec("base", "自然资源底图", "Base map", BASE),
        MapSpec(
            "checkup",
            "城市体检一张图",
            "City check-up map",
            (*BASE, "admin_areas", "facilities"),
        ),
        MapSpec("assets", "存量资产招商一张图", "Idle-asset investment map", (*BASE, "assets")),
        MapSpec(
            "safety",
            "城市安全一张图",
            "City safety map",
            (*BASE, "grids", "hazards", "sensors", "emergency_shelters"),
        ),
    )
}


def map_spec(map_id: str) -> MapSpec:
    spec = MAPS.get(map_id)
    if spec is None:
        raise NotFound(f"no map '{map_id}': the maps are {', '.join(MAPS)}")
    return spec


def visible_layers(conn: Connection, spec: MapSpec, who: Viewer) -> list[Layer]:
    """The map's layers this caller may see (a layer withheld from them is left out, never an
    error: the map still draws what they may see)."""
    return shown_on(spec, layers_by_id(conn, spec.layers), who)


def shown_on(
    spec: MapSpec, found: dict[str, Layer | None], who: Viewer, z: int | None = None
) -> list[Layer]:
    """Of the catalogue entries ``found`` for the map's layers, those ``who`` may see, in order
    (and, given a zoom ``z``, those the map's tile carries at that zoom: :data:`MINZOOM`)."""
    return [
        found[i]
        for i in spec.layers
        if listed(found.get(i), who) and (z is None or z >= MINZOOM.get(i, 0))
    ]


def map_tile(conn: Connection, layers: list[Layer], who: Viewer, tile: Tile) -> Drawn:
    """One tile of each of the map's layers the caller may see (``visible_layers``), in one
    statement; their bytes joined are the map's multi-layer tile (an MVT is a sequence of
    layers, so tiles concatenate)."""
    return layer_tiles(conn, [(layer, layer.plan(who)) for layer in layers], tile)


def extent(layers: list[Layer]) -> tuple[float, float, float, float] | None:
    """West, south, east, north (lon/lat) around the layers' extents; None if none has one."""
    boxes = [layer.extent for layer in layers if layer.extent]
    if not boxes:
        return None
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )
