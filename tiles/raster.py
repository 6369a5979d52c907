"""Raster tiles: a GeoTIFF read through a warped view in Web Mercator for exactly one tile
(rasterio), coloured by the layer's colour map, written as PNG with transparency where there is
no data. The raster layers (the demo city's DEM, land cover and hillshade, or a district's own
GeoTIFFs put in the raster folder under those names) are listed here."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import MemoryFile
from rasterio.transform import from_bounds as transform_from_bounds
from rasterio.vrt import WarpedVRT

from geo.errors import NotFound
from tiles.matrix import Tile

SIZE = 256


@dataclass(frozen=True)
class RasterLayer:
    id: str
    title_zh: str
    title_en: str
    kind: str  # ramp (continuous), classes (palette), grey
    resampling: Resampling
    #: ramp: (value, (r, g, b)) stops; classes: value → (r, g, b, label)
    colours: tuple


RASTERS: dict[str, RasterLayer] = {
    r.id: r
    for r in (
        RasterLayer(
            "dem",
            "数字高程模型",
            "Digital elevation model",
            "ramp",
            Resampling.bilinear,
            (
                (0, (36, 110, 70)),
                (30, (120, 170, 90)),
                (80, (220, 210, 130)),
                (160, (190, 140, 80)),
                (260, (150, 110, 90)),
                (400, (240, 240, 240)),
            ),
        ),
        RasterLayer(
            "landcover",
            "土地覆盖",
            "Land cover",
            "classes",
            Resampling.nearest,
            (
                (1, (246, 232, 160), "耕地 farmland"),
                (2, (214, 224, 128), "园地 orchard"),
                (3, (72, 140, 72), "林地 forest"),
                (4, (176, 214, 128), "草地 grassland"),
                (5, (232, 140, 120), "商服用地 commercial"),
                (6, (170, 150, 200), "工矿用地 industrial"),
                (7, (240, 190, 150), "住宅用地 residential"),
                (8, (130, 200, 160), "公共服务与绿地 public, parks"),
                (9, (120, 170, 230), "水域 water"),
            ),
        ),
        RasterLayer("hillshade", "山体阴影", "Hillshade", "grey", Resampling.bilinear, ()),
    )
}


def raster_layer(raster_id: str) -> RasterLayer:
    layer = RASTERS.get(raster_id)
    if layer is None:
        raise NotFound(f"no raster layer '{raster_id}': the rasters are {', '.join(RASTERS)}")
    return layer


def path_of(folder: Path, raster_id: str) -> Path:
    path = Path(folder) / f"{raster_id}.tif"
    if not path.is_file():
        raise NotFound(f"raster layer '{raster_id}' has no data here (no {path.name})")
    return path


def bounds_lonlat(path: Path) -> list[float]:
    with rasterio.open(path) as src, WarpedVRT(src, crs="EPSG:4326") as vrt:
        return list(vrt.bounds)


def raster_tile(path: Path, layer: RasterLayer, tile: Tile) -> bytes:
    """The tile as a 256 × 256 RGBA PNG."""
    west, south, east, north = tile.bounds
    with rasterio.open(path) as src:
        nodata = src.nodata
        with WarpedVRT(
            src,
            crs="EPSG:3857",
            transform=transform_from_bounds(west, south, east, north, SIZE, SIZE),
            width=SIZE,
            height=SIZE,
            resampling=layer.resampling,
            nodata=nodata,
        ) as vrt:
            data = vrt.read(1)
    valid = np.ones(data.shape, dtype=bool) if nodata is None else data != nodata
    rgba = np.zeros((4, SIZE, SIZE), dtype="uint8")
    if layer.kind == "ramp":
        stops = np.array([v for v, _ in layer.colours], dtype=float)
        for band in range(3):
            channel = np.array([c[band] for _, c in layer.colours], dtype=float)
            rgba[band] = np.interp(data, stops, channel).astype("uint8")
    elif layer.kind == "classes":
        for value, colour, _ in layer.colours:
            hit = data == value
            for band in range(3):
                rgba[band][hit] = colour[band]
        valid &= np.isin(data, [v for v, _, _ in layer.colours])
    else:
        for band in range(3):
            rgba[band] = data.astype("uint8")
    rgba[3] = np.where(valid, 255, 0)
    with warnings.catch_warnings():  # a tile image carries no georeferencing, by design
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with MemoryFile(ext=".png") as memory:
            with memory.open(driver="PNG", width=SIZE, height=SIZE, count=4, dtype="uint8") as png:
                png.write(rgba)
            return memory.read()
