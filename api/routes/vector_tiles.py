"""Vector tiles over HTTP: one layer's tile, a map's multi-layer tile, their TileJSON 3.0, and a
MapLibre style per map. The tiles are drawn by ``tiles/`` under the caller's read plan (the
same as the features'); here they are only answered: gzip when the client takes it, an ETag over
the bytes, ``private, no-cache`` (a tile depends on who asks), and the tile's feature count and
truncation in headers."""

from __future__ import annotations

import gzip
import hashlib

import orjson
from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from api.deps import Read
from api.html import base_url, render
from api.routes.raster_tiles import raster_folder
from layers.catalogue import Layer, get_layer
from tiles import cache
from tiles.maps import MAPS, extent, map_spec, map_tile, visible_layers
from tiles.matrix import MATRIX_SET, MAX_ZOOM, MIN_ZOOM, Tile
from tiles.styles import COLOURS, TITLES_ZH, style
from tiles.vector import describe, layer_tile

router = APIRouter(tags=["vector tiles 矢量瓦片"])
MVT = "application/vnd.mapbox-vector-tile"


def _z():
    return Path(ge=MIN_ZOOM, le=MAX_ZOOM, description="zoom")


def _xy(what: str):
    # a fresh Path per parameter: FastAPI keeps each parameter's name on its own FieldInfo
    return Path(ge=0, description=f"the tile's {what}")


def _tile_response(request: Request, data: bytes, features: int, truncated: bool) -> Response:
    etag = 'W/"' + hashlib.sha256(data).hexdigest()[:32] + '"'
    headers = {
        "ETag": etag,
        "Cache-Control": "private, no-cache",
        "Vary": "Authorization, Accept-Encoding",
        "X-Tile-Features": str(features),
        "X-Tile-Truncated": "true" if truncated else "false",
    }
    if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    if data and "gzip" in request.headers.get("accept-encoding", ""):
        data = gzip.compress(data, 1)  # level 1: most of the saving at a fifth of the CPU
        headers["Content-Encoding"] = "gzip"
    return Response(data, media_type=MVT, headers=headers)


def cached_tile(r: Read, kind: str, name: str, layers: list[Layer], tile: Tile, draw) -> Response:
    """The tile through the shared cache; ``X-Tile-Cache`` says whether it was held."""
    store = r.request.app.state.tile_store
    made, held = cache.through(r.conn, store, kind, name, layers, r.who, tile, draw)
    answer = _tile_response(r.request, made.data, made.features, made.truncated)
    answer.headers["X-Tile-Cache"] = "hit" if held else "miss"
    return answer


@router.get(
    "/tiles/{layer_id}/{z}/{x}/{y}.mvt",
    summary="One layer's vector tile (WebMercatorQuad), as the caller may see it",
    response_class=Response,
    responses={200: {"content": {MVT: {}}}},
)
def layer_tile_route(
    layer_id: str, r: Read, z: int = _z(), x: int = _xy("column"), y: int = _xy("row")
):
    return one_layer_tile(r, layer_id, Tile(z, x, y))


def one_layer_tile(r: Read, layer_id: str, tile: Tile) -> Response:
    """One layer's tile as the caller may see it, through the cache (XYZ and OGC paths alike)."""
    layer = get_layer(r.conn, layer_id, r.who)
    draw = lambda: [layer_tile(r.conn, layer, layer.plan(r.who), tile)]  # noqa: E731
    return cached_tile(r, "layer", layer.id, [layer], tile, draw)


@router.get(
    "/maps/{map_id}/tiles/{z}/{x}/{y}.mvt",
    summary="A map's multi-layer vector tile: each of its layers the caller may see",
    response_class=Response,
    responses={200: {"content": {MVT: {}}}},
)
def map_tile_route(
    map_id: str, r: Read, z: int = _z(), x: int = _xy("column"), y: int = _xy("row")
):
    tile = Tile(z, x, y)
    spec = map_spec(map_id)
    layers = visible_layers(r.conn, spec, r.who)
    return cached_tile(
        r, "map", spec.id, layers, tile, lambda: map_tile(r.conn, layers, r.who, tile)
    )


#: the whole of Web Mercator, for a map none of whose layers has an extent yet
WORLD = (-180.0, -85.0511, 180.0, 85.0511)


def _bounds(layers: list[Layer]) -> tuple[float, float, float, float]:
    return extent(layers) or WORLD


def _tilejson(request: Request, name: str, path: str, layers: list[Layer], r: Read) -> dict:
    root = base_url(request)
    west, south, east, north = _bounds(layers)
    return {
        "tilejson": "3.0.0",
        "name": name,
        "scheme": "xyz",
        "tiles": [f"{root}{path}/{{z}}/{{x}}/{{y}}.mvt"],
        "minzoom": MIN_ZOOM,
        "maxzoom": MAX_ZOOM,
        "bounds": [west, south, east, north],
        "center": [(west + east) / 2, (south + north) / 2, 12],
        "vector_layers": [describe(layer.plan(r.who), layer) for layer in layers],
        "tileMatrixSet": MATRIX_SET,
    }


@router.get("/tiles/{layer_id}/tilejson.json", summary="TileJSON 3.0 of one layer's tiles")
def layer_tilejson(layer_id: str, r: Read):
    layer = get_layer(r.conn, layer_id, r.who)
    body = _tilejson(r.request, layer.title_zh, f"/tiles/{layer.id}", [layer], r)
    return Response(orjson.dumps(body), media_type="application/json")


@router.get("/maps/{map_id}/tilejson.json", summary="TileJSON 3.0 of a map's multi-layer tiles")
def map_tilejson(map_id: str, r: Read):
    spec = map_spec(map_id)
    layers = visible_layers(r.conn, spec, r.who)
    body = _tilejson(r.request, spec.title_zh, f"/maps/{spec.id}/tiles", layers, r)
    return Response(orjson.dumps(body), media_type="application/json")


@router.get("/maps", summary="The maps and their layers")
def maps_index(r: Read):
    root = base_url(r.request)
    body = [
        {
            "id": m.id,
            "title_zh": m.title_zh,
            "title_en": m.title_en,
            "layers": list(m.layers),
            "tilejson": f"{root}/maps/{m.id}/tilejson.json",
        }
        for m in MAPS.values()
    ]
    return Response(orjson.dumps({"maps": body}), media_type="application/json")


@router.get("/maps/{map_id}/style.json", summary="A map's MapLibre style (version 8)")
def map_style(map_id: str, r: Read):
    spec = map_spec(map_id)
    layers = visible_layers(r.conn, spec, r.who)
    west, south, east, north = _bounds(layers)
    kinds = {layer.id: layer.geometry_type or "" for layer in layers}
    relief = (raster_folder(r.request) / "hillshade.tif").is_file()
    body = style(spec, base_url(r.request), kinds, [(west + east) / 2, (south + north) / 2], relief)
    return Response(orjson.dumps(body), media_type="application/json")


@router.get(
    "/fonts/{fontstack}/{glyph_range}.pbf",
    summary="Glyph ranges for map labels: empty (CJK is drawn by the browser's own font)",
    response_class=Response,
)
def glyphs(fontstack: str, glyph_range: str):
    # an empty protobuf is a valid glyph set with no glyphs: MapLibre draws Chinese with the
    # browser's local font (localIdeographFontFamily) and needs nothing from elsewhere
    return Response(
        b"", media_type="application/x-protobuf", headers={"Cache-Control": "public, max-age=86400"}
    )


@router.get(
    "/maps/{map_id}", summary="The map's page: MapLibre over our own tiles", response_class=Response
)
def map_page(map_id: str, r: Read):
    spec = map_spec(map_id)
    layers = visible_layers(r.conn, spec, r.who)
    legend = [
        {
            "id": layer.id,
            "title": TITLES_ZH.get(layer.id, layer.title_zh),
            "colour": COLOURS.get(layer.id, "#555"),
        }
        for layer in layers
    ]
    return render("map.html", r.request, spec=spec, legend=legend, maps=list(MAPS.values()))
