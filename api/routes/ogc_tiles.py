"""OGC API – Tiles over the same vector tiles: the tile matrix sets (from morecantile), each
collection's tileset list and tileset, and its tiles at
``/collections/{id}/tiles/WebMercatorQuad/{tileMatrix}/{tileRow}/{tileCol}`` — so that GDAL's
OGCAPI driver and QGIS read them as they read any OGC API."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from api.deps import Caller, Read
from api.html import base_url
from api.routes.vector_tiles import MVT, one_layer_tile
from geo.errors import NotFound
from layers.catalogue import get_layer
from tiles.matrix import MATRIX_SET, MAX_ZOOM, MIN_ZOOM, Tile, matrix_set
from tiles.vector import describe

router = APIRouter(tags=["OGC API – Tiles 瓦片服务"])
TMS_URI = "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
CRS_3857 = "http://www.opengis.net/def/crs/EPSG/0/3857"
TILING_SCHEME = "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme"


def _json(body) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


def _known(tms_id: str) -> None:
    if tms_id != MATRIX_SET:
        raise NotFound(f"no tile matrix set '{tms_id}': this service tiles in {MATRIX_SET}")


@router.get("/tileMatrixSets", summary="The tile matrix sets tiles are served in")
def tile_matrix_sets(r: Read):
    root = base_url(r.request)
    return _json(
        {
            "tileMatrixSets": [
                {
                    "id": MATRIX_SET,
                    "title": "Google Maps Compatible for the World",
                    "uri": TMS_URI,
                    "links": [
                        {
                            "rel": "self",
                            "type": "application/json",
                            "href": f"{root}/tileMatrixSets/{MATRIX_SET}",
                        }
                    ],
                }
            ]
        }
    )


@router.get("/tileMatrixSets/{tms_id}", summary="One tile matrix set (OGC TMS 2.0 JSON)")
def tile_matrix_set(tms_id: str):
    _known(tms_id)
    return _json(tms_document())


def tms_document() -> dict:
    """The TMS 2.0 JSON (morecantile), with the TMS 1.0 members beside it: GDAL 3.6 (Debian 12's)
    reads only the 1.0 form (``identifier``, ``supportedCRS``, ``tileMatrix``), newer clients
    the 2.0 one; neither is disturbed by the other's members."""
    tms = matrix_set()
    body = orjson.loads(tms.model_dump_json(exclude_none=True, by_alias=True))
    west, south, east, north = tms.xy_bbox
    body |= {
        "type": "TileMatrixSetType",
        "identifier": body["id"],
        "supportedCRS": body["crs"],
        "boundingBox": {
            "type": "BoundingBoxType",
            "crs": body["crs"],
            "lowerCorner": [west, south],
            "upperCorner": [east, north],
        },
        "tileMatrix": [
            {
                "type": "TileMatrixType",
                "identifier": m["id"],
                "scaleDenominator": m["scaleDenominator"],
                "topLeftCorner": m["pointOfOrigin"],
                "tileWidth": m["tileWidth"],
                "tileHeight": m["tileHeight"],
                "matrixWidth": m["matrixWidth"],
                "matrixHeight": m["matrixHeight"],
            }
            for m in body["tileMatrices"]
        ],
    }
    return body


def _tileset(root: str, collection: str, title: str) -> dict:
    base = f"{root}/collections/{collection}/tiles/{MATRIX_SET}"
    return {
        "title": title,
        "dataType": "vector",
        "crs": CRS_3857,
        "tileMatrixSetURI": TMS_URI,
        # the draft name of the TMS link, which GDAL 3.6 still reads
        "tileMatrixSetDefinition": f"{root}/tileMatrixSets/{MATRIX_SET}",
        "links": [
            {"rel": "self", "type": "application/json", "href": base},
            {
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/tileset",
                "type": "application/json",
                "href": base,
            },
            {
                "rel": TILING_SCHEME,
                "type": "application/json",
                "href": f"{root}/tileMatrixSets/{MATRIX_SET}",
            },
        ],
    }


@router.get("/collections/{collection_id}/tiles", summary="A collection's tilesets")
def tilesets(collection_id: str, r: Read):
    layer = get_layer(r.conn, collection_id, r.who)
    root = base_url(r.request)
    return _json(
        {
            "links": [
                {
                    "rel": "self",
                    "type": "application/json",
                    "href": f"{root}/collections/{layer.id}/tiles",
                }
            ],
            "tilesets": [_tileset(root, layer.id, layer.title_zh)],
        }
    )


@router.get("/collections/{collection_id}/tiles/{tms_id}", summary="A collection's tileset")
def tileset(collection_id: str, tms_id: str, r: Read):
    _known(tms_id)
    layer = get_layer(r.conn, collection_id, r.who)
    root = base_url(r.request)
    body = _tileset(root, layer.id, layer.title_zh)
    body["links"].append(
        {
            "rel": "item",
            "type": MVT,
            "title": "矢量瓦片 Mapbox vector tile",
            "templated": True,
            "href": f"{root}/collections/{layer.id}/tiles/{MATRIX_SET}"
            "/{tileMatrix}/{tileRow}/{tileCol}",
        }
    )
    vector = describe(layer.plan(r.who), layer)
    body["layers"] = [
        {
            "id": layer.id,
            "title": layer.title_zh,
            "dataType": "vector",
            "geometryDimension": _dimension(layer.geometry_type),
            "minTileMatrix": str(MIN_ZOOM),
            "maxTileMatrix": str(MAX_ZOOM),
            "propertiesSchema": {
                "type": "object",
                "properties": {
                    name: {"type": kind.lower() if kind != "Number" else "number"}
                    for name, kind in vector["fields"].items()
                },
            },
        }
    ]
    if layer.extent:
        west, south, east, north = layer.extent
        body["boundingBox"] = {
            "lowerLeft": [west, south],
            "upperRight": [east, north],
            "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
        }
    return _json(body)


def _dimension(geometry_type: str | None) -> int:
    kind = (geometry_type or "").upper()
    return 2 if "POLYGON" in kind else 1 if "LINE" in kind else 0


@router.get(
    "/collections/{collection_id}/tiles/{tms_id}/{tile_matrix}/{tile_row}/{tile_col}",
    summary="One vector tile of a collection (OGC API – Tiles)",
    response_class=Response,
    responses={200: {"content": {MVT: {}}}},
)
def ogc_tile(
    collection_id: str,
    tms_id: str,
    request: Request,
    who: Caller,
    tile_matrix: int = Path(ge=MIN_ZOOM, le=MAX_ZOOM, description="zoom"),
    tile_row: int = Path(ge=0, description="the tile's row (y)"),
    tile_col: int = Path(ge=0, description="the tile's column (x)"),
):
    _known(tms_id)
    return one_layer_tile(request, who, collection_id, Tile(tile_matrix, tile_col, tile_row))
