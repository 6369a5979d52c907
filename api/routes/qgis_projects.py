"""``/maps/{id}/project.qgs``: a QGIS project per map, to open the map in QGIS as its users see
it (the XML is written by ``tiles.qgis_project``; no QGIS runs on the server). The project holds
the layers the caller may see and no token: QGIS's authentication manager supplies one."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from api.deps import Read
from api.html import base_url
from tiles.maps import extent, map_spec, visible_layers
from tiles.qgis_project import project_xml

router = APIRouter(tags=["vector tiles 矢量瓦片"])
QGS = "application/x-qgis-project"


@router.get(
    "/maps/{map_id}/project.qgs",
    summary="The map as a QGIS project (在QGIS中打开): vector tiles and OGC API – Features layers",
    response_class=Response,
    responses={200: {"content": {QGS: {}}}},
)
def map_project(map_id: str, r: Read):
    spec = map_spec(map_id)
    layers = visible_layers(r.conn, spec, r.who)
    body = project_xml(
        spec,
        base_url(r.request),
        {layer.id: layer.geometry_type or "" for layer in layers},
        {layer.id: layer.title_zh for layer in layers},
        extent(layers),
    )
    return Response(
        body,
        media_type=QGS,
        headers={
            "Content-Disposition": f'attachment; filename="{spec.id}.qgs"',
            "Cache-Control": "private, no-cache",
        },
    )
