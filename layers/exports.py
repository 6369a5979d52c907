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
