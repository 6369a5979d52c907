"""A QGIS project (.qgs) per map, written as plain XML so that the server needs no QGIS.

The project opens the map as its users see it: the map's vector tiles (QGIS's ``vectortile``
provider over ``/maps/{id}/tiles``) drawn with a renderer translated here from the map's own
MapLibre style (so it draws offline, with no style fetched at load and no converter needed), and
one OGC API – Features layer per thematic layer (``OAPIF`` provider) for querying and editing.
Every OAPIF URI carries ``restrictToRequestBBOX='1'``: without it QGIS downloads the whole
layer for any view (510,000 addresses for a street). Layer names are Chinese; the project is in
EPSG:3857, the tiles' own CRS. No token is ever written: a user who needs one attaches their
own authentication configuration (``authcfg``) in QGIS, so the file can be shared.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

from tiles.maps import BASE, MapSpec
from tiles.matrix import MAX_ZOOM, MIN_ZOOM
from tiles.styles import COLOURS, TITLES_ZH, style

#: QGIS's geometry types (QgsWkbTypes::GeometryType) and symbol types by our geometry kind
POINT, LINE, POLYGON = 0, 1, 2
SYMBOL_OF = {POINT: "marker", LINE: "line", POLYGON: "fill"}
GEOMETRY_NAME = {POINT: "Point", LINE: "Line", POLYGON: "Polygon"}
WEB_MERCATOR_RADIUS = 6378137.0
#: the zoom at which a zoom-dependent width or radius of the style is read (a street's view)
READ_AT_ZOOM = 14
#: what the project's header says about tokens (an XML comment, read by whoever opens the file)
NO_TOKEN = (
    " 本文件不含任何令牌。需要令牌的图层：在 QGIS 认证管理器中建立认证配置，再在图层属性"
    "“源”中选用（authcfg）。 No token is written here: attach your own QGIS authentication "
    "configuration (authcfg) to the layers that need one. "
)


def geometry_of(kind: str | None) -> int | None:
    """QGIS's geometry type for a catalogue geometry type (None: no geometry)."""
    kind = (kind or "").upper()
    if not kind:
        return None
    if "POLYGON" in kind:
        return POLYGON
    if "LINE" in kind:
        return LINE
    return POINT


def thematic(spec: MapSpec) -> tuple[str, ...]:
    """The map's own layers, offered as OAPIF layers; the base map's are its base layers."""
    return tuple(i for i in spec.layers if i not in BASE) or spec.layers


def oapif_uri(root: str, layer_id: str) -> str:
    """The OAPIF data source of one collection, limited to the requested view's box."""
    return f"url='{root}' typename='{layer_id}' restrictToRequestBBOX='1'"


def tiles_uri(root: str, map_id: str) -> str:
    """The vector-tile data source of a map's multi-layer tiles (XYZ, WebMercatorQuad)."""
    return (
        f"type=xyz&url={root}/maps/{map_id}/tiles/{{z}}/{{x}}/{{y}}.mvt"
        f"&zmax={MAX_ZOOM}&zmin={MIN_ZOOM}"
    )


def project_xml(
    spec: MapSpec,
    root: str,
    kinds: dict[str, str],
    titles: dict[str, str],
    bounds: tuple[float, float, float, float] | None,
) -> bytes:
    """The .qgs of ``spec``'s map served at ``root``: ``kinds`` maps each layer the reader may
    see to its geometry type, ``titles`` to its Chinese title; ``bounds`` (lon/lat) is where the
    project opens."""
    root = root.rstrip("/")
    centre = [(bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2] if bounds else [0, 0]
    drawn = style(spec, root, kinds, centre)
    qgis = ET.Element("qgis", version="3.22.0", projectname=spec.title_zh)
    ET.SubElement(qgis, "title").text = f"{spec.title_zh} {spec.title_en}"
    ET.SubElement(ET.SubElement(qgis, "projectCrs"), "spatialrefsys").extend(_crs("EPSG:3857"))

    tile_id = f"onemap_{spec.id}_tiles"
    tile_name = f"{spec.title_zh}（矢量瓦片）"
    features = [
        (f"onemap_{i}", i, TITLES_ZH.get(i) or titles.get(i, i), geometry_of(kinds.get(i)))
        for i in thematic(spec)
        if i in kinds
    ]
    tree = ET.SubElement(qgis, "layer-tree-group")
    if features:
        group = ET.SubElement(
            tree,
            "layer-tree-group",
            name="专题图层（查询与编辑）OGC API – Features",
            checked="Qt::Checked",
            expanded="1",
        )
        shown = spec.id != "base"  # the base map's layers are heavy: there, off until asked for
        for layer_key, layer_id, name, _ in reversed(features):  # top of the map first
            ET.SubElement(
                group,
                "layer-tree-layer",
                id=layer_key,
                name=name,
                source=oapif_uri(root, layer_id),
                providerKey="OAPIF",
                checked="Qt::Checked" if shown else "Qt::Unchecked",
                expanded="0",
            )
    ET.SubElement(
        tree,
        "layer-tree-layer",
        id=tile_id,
        name=tile_name,
        source=tiles_uri(root, spec.id),
        providerKey="vectortile",
        checked="Qt::Checked",
        expanded="1",
    )

    layers = ET.SubElement(qgis, "projectlayers")
    tiles = _maplayer(layers, "vector-tile", tile_id, tile_name, tiles_uri(root, spec.id))
    tiles.append(_tile_renderer(drawn, kinds))
    for layer_key, layer_id, name, geometry in features:
        layer = _maplayer(layers, "vector", layer_key, name, oapif_uri(root, layer_id), "OAPIF")
        if geometry is not None:
            layer.set("geometry", GEOMETRY_NAME[geometry])
            layer.append(_single_symbol(geometry, COLOURS.get(layer_id, "#555555")))

    properties = ET.SubElement(qgis, "properties")
    # without it QGIS 3.22 ignores <projectCrs> and opens the project with no CRS
    projection = ET.SubElement(ET.SubElement(properties, "SpatialRefSys"), "ProjectionsEnabled")
    projection.set("type", "int")
    projection.text = "1"
    gui = ET.SubElement(properties, "Gui")
    background = _rgb(drawn["layers"][0]["paint"]["background-color"])
    for part, value in zip(("Red", "Green", "Blue"), background, strict=True):
        ET.SubElement(gui, f"CanvasColor{part}Part", type="int").text = str(value)
    if bounds:
        view = ET.SubElement(qgis, "ProjectViewSettings", UseProjectScales="0", rotation="0")
        x0, y0 = mercator(bounds[0], bounds[1])
        x1, y1 = mercator(bounds[2], bounds[3])
        extent = ET.SubElement(
            view, "DefaultViewExtent", xmin=_num(x0), ymin=_num(y0), xmax=_num(x1), ymax=_num(y1)
        )
        ET.SubElement(extent, "spatialrefsys").extend(_crs("EPSG:3857"))
    ET.indent(qgis)
    body = ET.tostring(qgis, encoding="unicode")
    head = f"<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n<!--{NO_TOKEN}-->\n"
    return (head + body + "\n").encode("utf-8")


def mercator(lon: float, lat: float) -> tuple[float, float]:
    """EPSG:3857 metres of a lon/lat (the tiles' own projection)."""
    lat = max(min(lat, 85.0511), -85.0511)
    x = math.radians(lon) * WEB_MERCATOR_RADIUS
    y = math.log(math.tan(math.pi / 4 + math.radians(lat) / 2)) * WEB_MERCATOR_RADIUS
    return x, y


def _num(value: float) -> str:
    return f"{value:.3f}"


#: QGIS's own ids of the CRSs written (its srs.db), which it resolves without a lookup
QGIS_SRSID = {"EPSG:3857": 3857, "EPSG:4326": 3452}


def _crs(authid: str) -> list[ET.Element]:
    """A spatialrefsys QGIS resolves: its WKT, QGIS's id and the authority id (the authority
    id alone leaves QGIS 3.22 with an invalid CRS)."""
    from pyproj import CRS

    out = []
    for tag, value in (
        ("wkt", CRS.from_user_input(authid).to_wkt()),
        ("srsid", str(QGIS_SRSID[authid])),
        ("srid", authid.split(":")[1]),
        ("authid", authid),
    ):
        element = ET.Element(tag)
        element.text = value
        out.append(element)
    return out


def _maplayer(
    parent: ET.Element, kind: str, key: str, name: str, source: str, provider: str | None = None
) -> ET.Element:
    layer = ET.SubElement(parent, "maplayer", type=kind)
    ET.SubElement(layer, "id").text = key
    ET.SubElement(layer, "datasource").text = source
    ET.SubElement(layer, "layername").text = name
    srs = "EPSG:3857" if kind == "vector-tile" else "EPSG:4326"  # OAPIF reads CRS84
    ET.SubElement(ET.SubElement(layer, "srs"), "spatialrefsys").extend(_crs(srs))
    ET.SubElement(layer, "provider", encoding="UTF-8").text = provider or "vectortile"
    return layer


# --- the MapLibre style, translated ------------------------------------------------------------


def _tile_renderer(drawn: dict, kinds: dict[str, str]) -> ET.Element:
    """QGIS's basic vector-tile renderer for the fill, line and circle layers of a MapLibre
    style (labels and the relief raster are left to the web map)."""
    renderer = ET.Element("renderer", type="basic")
    styles = ET.SubElement(renderer, "styles")
    for layer in drawn["layers"]:
        source_layer = layer.get("source-layer")
        geometry = geometry_of(kinds.get(source_layer or ""))
        if source_layer is None or geometry is None or layer["type"] not in SYMBOL_OF_STYLE:
            continue
        symbol = _symbol_for(layer, geometry)
        if symbol is None:
            continue
        entry = ET.SubElement(
            styles,
            "style",
            name=layer["id"],
            layer=source_layer,
            geometry=str(geometry),
            enabled="1",
            expression="",
            **{
                "min-zoom": str(layer.get("minzoom", -1)),
                "max-zoom": str(layer.get("maxzoom", -1)),
            },
        )
        ET.SubElement(entry, "symbols").append(symbol)
    return renderer


SYMBOL_OF_STYLE = ("fill", "line", "circle")


def _symbol_for(layer: dict, geometry: int) -> ET.Element | None:
    """One QGIS symbol drawing a MapLibre fill, line or circle layer on ``geometry``."""
    paint = layer.get("paint", {})
    fallback = layer.get("metadata", {}).get("onemap:colour", "#555555")
    if layer["type"] == "fill" and geometry == POLYGON:
        colour = _colour(paint.get("fill-color"), fallback, paint.get("fill-opacity", 1))
        return _symbol("fill", "SimpleFill", color=colour, outline_style="no", style="solid")
    if layer["type"] == "line" and geometry == POLYGON:  # an outline: a fill with no brush
        return _symbol(
            "fill",
            "SimpleFill",
            style="no",
            color=_colour(paint.get("line-color"), fallback, 0),
            outline_color=_colour(paint.get("line-color"), fallback),
            outline_width=_num(_at_zoom(paint.get("line-width", 1))),
            outline_width_unit="Pixel",
        )
    if layer["type"] == "line" and geometry == LINE:
        return _symbol(
            "line",
            "SimpleLine",
            line_color=_colour(paint.get("line-color"), fallback),
            line_width=_num(_at_zoom(paint.get("line-width", 1))),
            line_width_unit="Pixel",
            capstyle="round",
            joinstyle="round",
        )
    if layer["type"] == "circle" and geometry == POINT:
        return _point_symbol(
            _colour(paint.get("circle-color"), fallback),
            2 * _at_zoom(paint.get("circle-radius", 3)),
            _colour(paint.get("circle-stroke-color"), "#ffffff"),
            _at_zoom(paint.get("circle-stroke-width", 0)),
        )
    return None


def _single_symbol(geometry: int, colour: str) -> ET.Element:
    """An OAPIF layer's renderer: the layer's colour on the map, so it draws as the map does."""
    renderer = ET.Element(
        "renderer-v2", type="singleSymbol", symbollevels="0", enableorderby="0", forceraster="0"
    )
    if geometry == POLYGON:
        symbol = _symbol(
            "fill",
            "SimpleFill",
            style="no",
            color=_colour(colour, colour, 0),
            outline_color=_colour(colour, colour),
            outline_width="1",
            outline_width_unit="Pixel",
        )
    elif geometry == LINE:
        symbol = _symbol(
            "line", "SimpleLine", line_color=_colour(colour, colour), line_width="1.5",
            line_width_unit="Pixel",
        )  # fmt: skip
    else:
        symbol = _point_symbol(_colour(colour, colour), 7, "255,255,255,255", 0.8)
    ET.SubElement(renderer, "symbols").append(symbol)
    return renderer


def _point_symbol(fill: str, size: float, stroke: str, stroke_width: float) -> ET.Element:
    return _symbol(
        "marker",
        "SimpleMarker",
        name="circle",
        color=fill,
        size=_num(size),
        size_unit="Pixel",
        outline_color=stroke,
        outline_width=_num(stroke_width),
        outline_width_unit="Pixel",
        outline_style="solid" if stroke_width else "no",
    )


def _symbol(kind: str, layer_class: str, **props: str) -> ET.Element:
    symbol = ET.Element("symbol", type=kind, name="0", alpha="1", clip_to_extent="1", force_rhr="0")
    layer = ET.SubElement(symbol, "layer", **{"class": layer_class}, enabled="1", locked="0")
    layer.set("pass", "0")
    options = ET.SubElement(layer, "Option", type="Map")
    for key, value in props.items():
        ET.SubElement(options, "Option", name=key, value=str(value), type="QString")
    return symbol


def _colour(value, fallback: str, opacity: float = 1) -> str:
    """QGIS's "r,g,b,a" for a style colour; an expression (e.g. hazards by level) falls back to
    the layer's one colour."""
    text = value if isinstance(value, str) and value.startswith("#") else fallback
    r, g, b = _rgb(text)
    alpha = opacity if isinstance(opacity, int | float) else 1
    return f"{r},{g},{b},{round(255 * alpha)}"


def _rgb(text: str) -> tuple[int, int, int]:
    digits = text.lstrip("#")
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)


def _at_zoom(value) -> float:
    """A width or radius of the style: a number, or a linear ``interpolate`` over the zoom read
    at :data:`READ_AT_ZOOM`."""
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list) and value and value[0] == "interpolate":
        stops = list(zip(value[3::2], value[4::2], strict=False))
        for (z0, v0), (z1, v1) in zip(stops, stops[1:], strict=False):
            if z0 <= READ_AT_ZOOM <= z1:
                return v0 + (v1 - v0) * (READ_AT_ZOOM - z0) / (z1 - z0)
        return float(stops[-1][1] if stops[-1][0] < READ_AT_ZOOM else stops[0][1])
    return 1.0
