"""Downloads of a page of features: CSV (UTF-8 with a byte-order mark, so that a spreadsheet
opens Chinese text right; geometry as WKT) and GeoPackage. They are written from the features the
read path served, so they carry exactly what the caller's read plan shows: masks included."""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

import geopandas
import shapely


def to_csv(features: list[dict], columns: list[str], titles: dict[str, str]) -> bytes:
    """One row a feature: id, the columns (headed by their Chinese titles), WKT geometry."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["编号 id", *(f"{titles.get(c, c)} {c}" for c in columns), "几何 WKT"])
    for f in features:
        geometry = shapely.geometry.shape(f["geometry"]).wkt if f.get("geometry") else ""
        props = f.get("properties") or {}
        writer.writerow([f.get("id"), *(_cell(props.get(c)) for c in columns), geometry])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


#: a cell a spreadsheet would read as a formula (CSV injection): shown as text, with a quote
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value) -> str:
    if value is None:
        return ""
    text = str(value)
    if isinstance(value, str) and text.startswith(FORMULA_START):
        return "'" + text
    return text


def to_gpkg(features: list[dict], layer: str, epsg: int) -> bytes:
    """A GeoPackage holding one layer of the features, in the CRS they were served in."""
    frame = geopandas.GeoDataFrame.from_features(
        [
            f | {"properties": (f.get("properties") or {}) | {"fid_source": f.get("id")}}
            for f in features
        ],
        crs=f"EPSG:{epsg}",
    )
    with tempfile.TemporaryDirectory(prefix="onemap-export-") as folder:
        path = Path(folder) / f"{layer}.gpkg"
        frame.to_file(path, layer=layer, driver="GPKG")
        return path.read_bytes()


def to_folium(
    features: list[dict],
    title: str,
    columns: list[str],
    titles: dict[str, str],
    assets: dict[str, str],
) -> bytes:
    """The features on a folium (Leaflet) map in one self-contained HTML file: Leaflet's script
    and style are written into the page (``assets``: ``leaflet.js``, ``leaflet.css``, the files
    the service itself serves), so that it opens with no network at all; points are drawn as
    circles (no marker images to fetch), and there is no base-map tile layer to call out to."""
    import html

    import folium

    collection = {"type": "FeatureCollection", "features": features}
    shapes = [shapely.geometry.shape(f["geometry"]) for f in features if f.get("geometry")]
    west, south, east, north = (
        shapely.GeometryCollection(shapes).bounds if shapes else (118.8, 31.4, 119.3, 31.8)
    )
    page = folium.Map(location=[(south + north) / 2, (west + east) / 2], zoom_start=12, tiles=None)
    page.default_js, page.default_css = [], []  # no CDN: the assets go inline below
    shown = columns[:8]
    layer = folium.GeoJson(
        collection,
        name=title,
        marker=folium.CircleMarker(radius=4, weight=1, fill=True, fill_opacity=0.8),
        style_function=lambda _: {"color": "#c2410c", "weight": 1, "fillOpacity": 0.4},
        tooltip=folium.GeoJsonTooltip(
            fields=shown, aliases=[f"{titles.get(c, c)} {c}" for c in shown], localize=False
        )
        if shown and features
        else None,
    )
    layer.add_to(page)
    if shapes:
        page.fit_bounds([[south, west], [north, east]])
    rendered = page.get_root().render()
    inline = (
        f"<title>{html.escape(title)} · 一张图</title>"
        f"<style>{assets['leaflet.css']}</style>"
        f"<script>{assets['leaflet.js']}</script>"
    )
    return rendered.replace("<head>", "<head>" + inline, 1).encode("utf-8")
