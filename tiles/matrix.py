"""The tile matrix set: OGC WebMercatorQuad (EPSG:3857, 256-pixel tiles, zoom 0–22), from
morecantile, so that tile coordinates, bounds and TileJSON agree with OGC API – Tiles clients."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import morecantile

from geo.errors import NotFound

MATRIX_SET = "WebMercatorQuad"
MIN_ZOOM, MAX_ZOOM = 0, 22


@lru_cache(maxsize=1)
def matrix_set() -> morecantile.TileMatrixSet:
    return morecantile.tms.get(MATRIX_SET)


@dataclass(frozen=True)
class Tile:
    z: int
    x: int
    y: int

    def __post_init__(self) -> None:
        if not MIN_ZOOM <= self.z <= MAX_ZOOM:
            raise NotFound(f"zoom {self.z} is outside {MIN_ZOOM}–{MAX_ZOOM}")
        side = 1 << self.z
        if not (0 <= self.x < side and 0 <= self.y < side):
            raise NotFound(
                f"tile {self.z}/{self.x}/{self.y} does not exist: x and y are 0–{side - 1}"
            )

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """West, south, east, north in EPSG:3857 metres."""
        b = matrix_set().xy_bounds(morecantile.Tile(self.x, self.y, self.z))
        return b.left, b.bottom, b.right, b.top

    @property
    def size_m(self) -> float:
        west, _, east, _ = self.bounds
        return east - west

    def __str__(self) -> str:
        return f"{self.z}/{self.x}/{self.y}"


def tiles_covering(west: float, south: float, east: float, north: float, zoom: int) -> list[Tile]:
    """The tiles of ``zoom`` that cover a lon/lat box."""
    return [Tile(t.z, t.x, t.y) for t in matrix_set().tiles(west, south, east, north, [zoom])]
