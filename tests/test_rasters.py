"""Raster layers: the demo city's DEM, land cover and hillshade, listed and tiled as PNG."""

from __future__ import annotations

import morecantile
import numpy as np
from rasterio.io import MemoryFile

from tiles.raster import RASTERS

TMS = morecantile.tms.get("WebMercatorQuad")


def png(body: bytes) -> np.ndarray:
    with MemoryFile(body) as memory, memory.open() as image:
        assert (image.width, image.height, image.count) == (256, 256, 4)
        return image.read()


def centre(client) -> tuple[float, float]:
    west, south, east, north = client.get("/rasters/dem/tilejson.json").json()["bounds"]
    assert 118.5 < west < east < 119.5 and 31.2 < south < north < 32.0  # around Lishui
    return (west + east) / 2, (south + north) / 2


def test_the_rasters_are_listed_here_and_in_the_catalogue(client):
    listed = {r["id"] for r in client.get("/rasters").json()["rasters"]}
    assert listed == set(RASTERS)
    catalogue = client.get("/catalog").json()
    assert {r["id"] for r in catalogue["rasters"]} == set(RASTERS)
    landcover = next(r for r in catalogue["rasters"] if r["id"] == "landcover")
    assert any("水域" in item["label"] for item in landcover["legend"])
    assert "栅格图层" in client.get("/catalog?f=html").text


def test_a_dem_tile_is_coloured_inside_the_district_and_clear_outside(client):
    lon, lat = centre(client)
    t = TMS.tile(lon, lat, 12)
    answer = client.get(f"/rasters/dem/{t.z}/{t.x}/{t.y}.png")
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    image = png(answer.content)
    assert (image[3] == 255).mean() > 0.9  # inside the district
    assert np.unique(image[:3].reshape(3, -1), axis=1).shape[1] > 20  # a varied surface
    far = TMS.tile(lon + 3, lat, 12)  # the Yellow Sea's coast, far outside
    assert (png(client.get(f"/rasters/dem/{far.z}/{far.x}/{far.y}.png").content)[3] == 0).all()
    again = client.get(
        f"/rasters/dem/{t.z}/{t.x}/{t.y}.png", headers={"If-None-Match": answer.headers["etag"]}
    )
    assert again.status_code == 304


def test_land_cover_uses_its_palette_and_hillshade_is_grey(client):
    lon, lat = centre(client)
    t = TMS.tile(lon, lat, 11)
    image = png(client.get(f"/rasters/landcover/{t.z}/{t.x}/{t.y}.png").content)
    opaque = image[3] == 255
    colours = {tuple(c) for c in image[:3][:, opaque].T}
    palette = {c for _, c, _ in RASTERS["landcover"].colours}
    assert colours and colours <= palette and len(colours) >= 3
    shade = png(client.get(f"/rasters/hillshade/{t.z}/{t.x}/{t.y}.png").content)
    lit = shade[3] == 255
    assert (shade[0][lit] == shade[1][lit]).all() and (shade[1][lit] == shade[2][lit]).all()
    assert shade[0][lit].std() > 5  # hills cast light and shade


def test_unknown_rasters_and_tiles_are_refused(client):
    assert client.get("/rasters/nowhere/10/0/0.png").status_code == 404
    assert client.get("/rasters/dem/3/9/0.png").status_code == 404
