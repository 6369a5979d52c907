"""Vector tiles over HTTP: one layer's tile, a map's multi-layer tile, their TileJSON 3.0, and a
MapLibre style per map. The tiles are drawn by ``tiles/`` under the caller's read plan (the
same as the features'); here they are only answered: gzip when the client takes it, an ETag over
the bytes, ``private, no-cache`` (a tile depends on who asks), and the tile's feature count and
truncation in headers."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import orjson
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy.exc import DBAPIError

from api.deps import Caller, Read, read_tile_engine
from api.html import base_url, render
from api.routes.raster_tiles import raster_folder
from geo.database import retrying_once
from geo.policy.district_scope import districts_with_extent, narrowed
from geo.policy.roles import Viewer
from layers.catalogue import Layer, get_layer, layers_by_id, listed, no_such_layer, version_list
from tiles import cache
from tiles.maps import MAPS, MINZOOM, extent, map_spec, map_tile, shown_on, visible_layers
from tiles.matrix import MATRIX_SET, MAX_ZOOM, MIN_ZOOM, Tile
from tiles.styles import COLOURS, TITLES_ZH, style
from tiles.vector import describe

router = APIRouter(tags=["vector tiles 矢量瓦片"])
MVT = "application/vnd.mapbox-vector-tile"


def _z():
    return Path(ge=MIN_ZOOM, le=MAX_ZOOM, description="zoom")


def _xy(what: str):
    # a fresh Path per parameter: FastAPI keeps each parameter's name on its own FieldInfo
    return Path(ge=0, description=f"the tile's {what}")


def _district():
    return Query(
        None,
        description="Draw only this district's features (6-digit code): the map's layers are "
        "filtered as the features are, and the tile is cached for that district's audience",
    )


def _in_district(request: Request, who: Viewer, district: str | None) -> Viewer:
    """The caller confined to ``?district=`` (checked: a known district, and theirs if bound)."""
    if district is None:
        return who
    with read_tile_engine(request).connect() as conn:
        return narrowed(conn, who, district)


def _tile_response(request: Request, made: cache.Cached, held: bool) -> Response:
    headers = {
        "ETag": made.etag,
        "Cache-Control": "private, no-cache",
        "Vary": "Authorization, Accept-Encoding",
        "X-Tile-Features": str(made.features),
        "X-Tile-Truncated": "true" if made.truncated else "false",
        "X-Tile-Cache": "hit" if held else "miss",
    }
    if made.etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    if made.body and "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(made.gzipped(), media_type=MVT, headers=headers)
    return Response(made.plain(), media_type=MVT, headers=headers)


#: which of a tile's catalogue entries (by id; None: not catalogued) the caller sees, or None
#: when the tile itself does not exist for them
Shown = Callable[[dict[str, Layer | None], Viewer], list[Layer] | None]


def serve_tile(
    request: Request,
    who: Viewer,
    kind: str,
    name: str,
    catalogue_ids: list[str],
    shown_of: Shown,
    tile: Tile,
) -> Response:
    """A tile of the layers ``shown_of`` picks for the caller: held and fresh, in one query
    under this process's remembered catalogue entries; else drawn (the entries read afresh and
    remembered, the layers in one statement) and kept. ``X-Tile-Cache`` says which. Tiles use
    the app's quick pool: autocommit, the read budget per statement."""
    state = request.app.state
    remembered = state.layer_memo.recall(catalogue_ids)
    shown = shown_of(remembered, who) if remembered is not None else None
    if shown is not None and not isinstance(state.tile_store, cache.NullStore):
        versions = version_list(remembered)
        try:
            with read_tile_engine(request).connect() as conn:
                got = cache.held(
                    conn, state.tile_store, kind, name, shown, versions, catalogue_ids, who, tile
                )
        except DBAPIError:  # a dead pooled connection: the long way retries on a fresh one
            got = None
        if got is not None:
            return _tile_response(request, got, True)

    def drawn(conn):
        found = layers_by_id(conn, catalogue_ids)
        state.layer_memo.remember(found)
        shown = shown_of(found, who)
        if shown is None:
            raise no_such_layer(name)
        draw = lambda: map_tile(conn, shown, who, tile)  # noqa: E731
        return cache.through(conn, state.tile_store, kind, name, shown, who, tile, draw)

    made, held = retrying_once(read_tile_engine(request), drawn)
    return _tile_response(request, made, held)


@router.get(
    "/tiles/{layer_id}/{z}/{x}/{y}.mvt",
    summary="One layer's vector tile (WebMercatorQuad), as the caller may see it",
    response_class=Response,
    responses={200: {"content": {MVT: {}}}},
)
def layer_tile_route(
    request: Request,
    who: Caller,
    layer_id: str,
    z: int = _z(),
    x: int = _xy("column"),
    y: int = _xy("row"),
    district: str | None = _district(),
):
    return one_layer_tile(request, _in_district(request, who, district), layer_id, Tile(z, x, y))


def one_layer_tile(request: Request, who: Viewer, layer_id: str, tile: Tile) -> Response:
    """One layer's tile as the caller may see it, through the cache (XYZ and OGC paths alike)."""

    def shown_of(found, who):
        layer = found.get(layer_id)
        return [layer] if listed(layer, who) else None

    return serve_tile(request, who, "layer", layer_id, [layer_id], shown_of, tile)


@router.get(
    "/maps/{map_id}/tiles/{z}/{x}/{y}.mvt",
    summary="A map's multi-layer vector tile: each of its layers the caller may see",
    response_class=Response,
    responses={200: {"content": {MVT: {}}}},
)
def map_tile_route(
    request: Request,
    who: Caller,
    map_id: str,
    z: int = _z(),
    x: int = _xy("column"),
    y: int = _xy("row"),
    district: str | None = _district(),
):
    who = _in_district(request, who, district)
    spec = map_spec(map_id)
    shown_of = partial(shown_on, spec, z=z)  # a layer below its zoom (MINZOOM) is left out
    return serve_tile(request, who, "map", spec.id, list(spec.layers), shown_of, Tile(z, x, y))


#: the whole of Web Mercator, for a map none of whose layers has an extent yet
WORLD = (-180.0, -85.0511, 180.0, 85.0511)


def _bounds(layers: list[Layer]) -> tuple[float, float, float, float]:
    return extent(layers) or WORLD


def _tilejson(
    request: Request, name: str, path: str, layers: list[Layer], r: Read, is_map: bool = False
) -> dict:
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
        "vector_layers": [
            describe(layer.plan(r.who), layer)
            | {"minzoom": MINZOOM.get(layer.id, MIN_ZOOM) if is_map else MIN_ZOOM}
            | {"maxzoom": MAX_ZOOM}
            for layer in layers
        ],
        "tileMatrixSet": MATRIX_SET,
    }


@router.get("/tiles/{layer_id}/tilejson.json", summary="TileJSON 3.0 of one layer's tiles")
@router.get(
    "/tiles/{layer_id}/metadata.json",
    summary="The same TileJSON where GDAL's MVT driver looks for it",
    description="`ogrinfo MVT:http://HOST/tiles/buildings/14 -oo TILE_EXTENSION=mvt` reads "
    "zoom 14 of a layer (GDAL 3.6's OGC API driver, in Debian 12, is built without vector tiles).",
)
def layer_tilejson(layer_id: str, r: Read):
    layer = get_layer(r.conn, layer_id, r.who)
    body = _tilejson(r.request, layer.title_zh, f"/tiles/{layer.id}", [layer], r)
    return Response(orjson.dumps(body), media_type="application/json")


@router.get("/maps/{map_id}/tilejson.json", summary="TileJSON 3.0 of a map's multi-layer tiles")
@router.get(
    "/maps/{map_id}/tiles/metadata.json",
    summary="The same TileJSON where GDAL's MVT driver looks for it",
)
def map_tilejson(map_id: str, r: Read):
    spec = map_spec(map_id)
    layers = visible_layers(r.conn, spec, r.who)
    body = _tilejson(r.request, spec.title_zh, f"/maps/{spec.id}/tiles", layers, r, is_map=True)
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
    if r.who.district is not None:  # the page, given a token in the browser, hides its 区 picker
        body["metadata"]["onemap:district"] = r.who.district
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
def map_page(
    map_id: str,
    r: Read,
    district: str | None = Query(
        None, description="Open on this district (6-digit code): its tiles and lists, fitted"
    ),
):
    spec = map_spec(map_id)
    chosen = narrowed(r.conn, r.who, district).district if district is not None else None
    # a whole-city caller picks a district when several are loaded; a bound one has theirs
    districts = districts_with_extent(r.conn) if r.who.district is None else []
    layers = visible_layers(r.conn, spec, r.who)
    legend = [
        {
            "id": layer.id,
            "title": TITLES_ZH.get(layer.id, layer.title_zh),
            "colour": COLOURS.get(layer.id, "#555"),
            "minzoom": MINZOOM.get(layer.id),
        }
        for layer in layers
    ]
    indicators = []
    if spec.id == "checkup":
        from geo.checkup.registry import indicators as registered

        indicators = [(i.id, i.name_zh, i.unit) for i in registered().values()]
    return render(
        "map.html",
        r.request,
        spec=spec,
        legend=legend,
        maps=list(MAPS.values()),
        indicators=indicators,
        districts=districts if len(districts) > 1 else [],
        chosen=chosen,
    )
