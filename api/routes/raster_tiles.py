"""Raster layers over HTTP: their list (also in the catalogue), TileJSON, and PNG tiles in
WebMercatorQuad. A raster is the same for every caller (no personal data), so its tiles are
public and cacheable by browsers for an hour; the ETag follows the bytes."""

from __future__ import annotations

import hashlib

import orjson
from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from sqlalchemy.engine import make_url

from api.html import base_url
from tiles.matrix import MAX_ZOOM, MIN_ZOOM, Tile
from tiles.raster import RASTERS, RasterLayer, bounds_lonlat, path_of, raster_layer, raster_tile

router = APIRouter(tags=["raster tiles 栅格瓦片"])


def raster_folder(request: Request):
    settings = request.app.state.settings
    database = make_url(request.app.state.engine.url).database or "onemap"
    return settings.service.rasters / database


def _hex(colour: tuple) -> str:
    return "#" + "".join(f"{c:02x}" for c in colour[:3])


def describe(request: Request, layer: RasterLayer) -> dict:
    root = base_url(request)
    entry = {
        "id": layer.id,
        "title_zh": layer.title_zh,
        "title_en": layer.title_en,
        "type": "raster",
        "tilejson": f"{root}/rasters/{layer.id}/tilejson.json",
        "tiles": f"{root}/rasters/{layer.id}/{{z}}/{{x}}/{{y}}.png",
    }
    if layer.kind == "classes":
        entry["legend"] = [
            {"value": v, "colour": _hex(c), "label": label} for v, c, label in layer.colours
        ]
    elif layer.kind == "ramp":
        entry["legend"] = [{"value": v, "colour": _hex(c)} for v, c in layer.colours]
    return entry


def available(request: Request) -> list[dict]:
    """The raster layers that have data in this database's raster folder."""
    folder = raster_folder(request)
    return [describe(request, r) for r in RASTERS.values() if (folder / f"{r.id}.tif").is_file()]


@router.get("/rasters", summary="The raster layers (DEM, land cover, hillshade)")
def rasters(request: Request):
    return Response(orjson.dumps({"rasters": available(request)}), media_type="application/json")


@router.get("/rasters/{raster_id}/tilejson.json", summary="TileJSON 3.0 of a raster layer")
def raster_tilejson(request: Request, raster_id: str):
    layer = raster_layer(raster_id)
    path = path_of(raster_folder(request), raster_id)
    body = {
        "tilejson": "3.0.0",
        "name": layer.title_zh,
        "scheme": "xyz",
        "tiles": [describe(request, layer)["tiles"]],
        "minzoom": MIN_ZOOM,
        "maxzoom": MAX_ZOOM,
        "bounds": bounds_lonlat(path),
        "tileSize": 256,
    }
    return Response(orjson.dumps(body), media_type="application/json")


@router.get(
    "/rasters/{raster_id}/{z}/{x}/{y}.png",
    summary="A raster layer's PNG tile (WebMercatorQuad), transparent where there is no data",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
)
async def raster_tile_route(
    request: Request,
    raster_id: str,
    z: int = Path(ge=MIN_ZOOM, le=MAX_ZOOM),
    x: int = Path(ge=0),
    y: int = Path(ge=0),
):
    tile = Tile(z, x, y)
    layer = raster_layer(raster_id)
    path = path_of(raster_folder(request), raster_id)
    data = await run_in_threadpool(raster_tile, path, layer, tile)
    etag = 'W/"' + hashlib.sha256(data).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": "public, max-age=3600"}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(data, media_type="image/png", headers=headers)
