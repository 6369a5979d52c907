"""A MapLibre style per map: our own natural-resource layers as the base map, the map's layers
over it, each drawn by its geometry with one colour, in the order the map lists them.

Chinese names are drawn by the browser's own CJK font (``localIdeographFontFamily`` in the
viewer): MapLibre then asks the glyph endpoint only for non-CJK ranges, which the service answers
itself (``/fonts``), so no label ever needs a request leaving the host and no font files of
several megabytes are shipped. Digits and Latin letters in names are not drawn by that font
(an empty glyph range): the names the maps label (roads, communities) are Chinese.
"""

from __future__ import annotations

from tiles.maps import MINZOOM, MapSpec

#: fill / line / circle colours by layer (the base map's after the 三调 colour conventions)
COLOURS = {
    "landuse_parcels": "#e8e4d8",
    "water": "#a6cee3",
    "parks": "#b2df8a",
    "roads": "#9e9e9e",
    "buildings": "#d4b89a",
    "admin_areas": "#6a3d9a",
    "grids": "#1f78b4",
    "facilities": "#33a02c",
    "hazards": "#e31a1c",
    "sensors": "#ff7f00",
    "emergency_shelters": "#1b9e77",
    "assets": "#f0027f",
}
TITLES_ZH = {
    "landuse_parcels": "地类图斑",
    "water": "水系",
    "parks": "公园绿地",
    "roads": "道路",
    "buildings": "建筑物",
    "admin_areas": "行政区划",
    "grids": "网格",
    "facilities": "设施",
    "hazards": "安全隐患",
    "sensors": "感知设备",
    "emergency_shelters": "应急避难场所",
    "assets": "存量资产",
}
FONT = "Noto Sans Regular"


#: hazards by level (1 most severe), a closed one grey: the safety map's "hazards by level"
HAZARD_COLOURS = [
    "case",
    ["==", ["get", "status"], "closed"],
    "#9ca3af",
    ["match", ["get", "level"], 1, "#7f0000", 2, "#d7301f", 3, "#fc8d59", "#fdd49e"],
]


def style(
    spec: MapSpec,
    root: str,
    kinds: dict[str, str],
    centre: list[float],
    hillshade: bool = False,
) -> dict:
    """The style of ``spec``'s map; ``kinds`` maps each visible layer to its geometry type;
    ``hillshade`` lays the district's relief under the land use (when it has a DEM)."""
    layers: list[dict] = [
        {"id": "background", "type": "background", "paint": {"background-color": "#f8f7f2"}}
    ]
    sources: dict = {"onemap": {"type": "vector", "url": f"{root}/maps/{spec.id}/tilejson.json"}}
    if hillshade:
        sources["hillshade"] = {
            "type": "raster",
            "tiles": [f"{root}/rasters/hillshade/{{z}}/{{x}}/{{y}}.png"],
            "tileSize": 256,
        }
    for layer_id in spec.layers:
        kind = (kinds.get(layer_id) or "").upper()
        if not kind:
            continue
        colour = COLOURS.get(layer_id, "#555555")
        common = {"source": "onemap", "source-layer": layer_id, "metadata": _meta(layer_id)}
        if layer_id in MINZOOM:  # the map's tiles carry it from there on
            common["minzoom"] = MINZOOM[layer_id]
        if "POLYGON" in kind:
            outline_only = layer_id in ("admin_areas", "grids")
            if not outline_only:
                layers.append(
                    common
                    | {
                        "id": layer_id,
                        "type": "fill",
                        "paint": {"fill-color": colour, "fill-opacity": 0.7},
                    }
                )
                if layer_id == "landuse_parcels" and hillshade:  # relief over the land use
                    layers.append(
                        {
                            "id": "hillshade",
                            "type": "raster",
                            "source": "hillshade",
                            "paint": {"raster-opacity": 0.35},
                            "metadata": {"onemap:title": "山体阴影"},
                        }
                    )
            layers.append(
                common
                | {
                    "id": f"{layer_id}-outline" if not outline_only else layer_id,
                    "type": "line",
                    "paint": {
                        "line-color": colour,
                        "line-width": 1.5 if outline_only else 0.5,
                    },
                }
            )
        elif "LINE" in kind:
            layers.append(
                common
                | {
                    "id": layer_id,
                    "type": "line",
                    "paint": {
                        "line-color": colour,
                        "line-width": ["interpolate", ["linear"], ["zoom"], 10, 0.8, 16, 4],
                    },
                }
            )
            if layer_id == "roads":
                layers.append(
                    common
                    | {
                        "id": "roads-labels",
                        "type": "symbol",
                        "minzoom": 13,
                        "layout": {
                            "symbol-placement": "line",
                            "text-field": ["get", "name"],
                            "text-font": [FONT],
                            "text-size": 12,
                        },
                        "paint": {
                            "text-color": "#333",
                            "text-halo-color": "#fff",
                            "text-halo-width": 1,
                        },
                    }
                )
        else:
            layers.append(
                common
                | {
                    "id": layer_id,
                    "type": "circle",
                    "paint": {
                        "circle-color": HAZARD_COLOURS if layer_id == "hazards" else colour,
                        "circle-radius": ["interpolate", ["linear"], ["zoom"], 10, 2.5, 16, 6],
                        "circle-stroke-color": "#fff",
                        "circle-stroke-width": 0.8,
                    },
                }
            )
    return {
        "version": 8,
        "name": spec.title_zh,
        "metadata": {"onemap:map": spec.id, "onemap:title_en": spec.title_en},
        "center": centre,
        "zoom": 11,
        "sources": sources,
        "glyphs": f"{root}/fonts/{{fontstack}}/{{range}}.pbf",
        "layers": layers,
    }


def _meta(layer_id: str) -> dict:
    return {
        "onemap:title": TITLES_ZH.get(layer_id, layer_id),
        "onemap:colour": COLOURS.get(layer_id, "#555555"),
    }
