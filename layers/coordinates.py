"""The CRS of a departmental file: found, given or assumed; checked; and the move to EPSG:4490.

Departments send CGCS2000 Gauss-Krüger metres (with or without the zone prefix), Web Mercator,
WGS 84, CGCS2000 lon/lat, and consumer-map picks in GCJ-02 or BD-09 that PROJ does not know.
``--crs`` always wins; otherwise the file's own declaration (.prj, GeoPackage, a GeoJSON crs
member), otherwise the format's rule (RFC 7946 GeoJSON: WGS 84) or, for a CSV, CGCS2000 lon/lat.

Before anything moves, the coordinates are checked against the CRS: metres read as degrees (or
degrees read as metres) fail the file as a whole with a message naming the CRS they most likely
are in, because loading them would put every feature in the sea. All transforms go through
:mod:`geo.crs`, which knows GCJ-02 and BD-09 and inverts them exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas
import numpy as np
import shapely

from geo.crs import (
    BD09,
    CGCS2000,
    GCJ02,
    WEB_MERCATOR,
    WGS84,
    CrsError,
    CrsRef,
    gauss_kruger_epsg,
    is_geographic,
    parse_crs,
    to_crs,
)
from geo.errors import IngestError
from layers.readers import Source

#: the share of features whose coordinates must look wrong before the whole file is refused
WRONG_UNITS_SHARE = 0.5


@dataclass(frozen=True)
class SourceCrs:
    """The CRS the file's coordinates are read in, and why."""

    ref: CrsRef
    origin: str

    @property
    def label(self) -> str:
        if self.ref == GCJ02:
            return "GCJ-02"
        if self.ref == BD09:
            return "BD-09"
        return f"EPSG:{int(self.ref)}"

    @property
    def geographic(self) -> bool:
        return is_geographic(self.ref)


def decide(source: Source, given: str | None) -> SourceCrs:
    """The CRS to read the file in: ``given`` (``--crs``), else the file's, else the format's rule."""
    if given is not None and str(given).strip():
        try:
            return SourceCrs(parse_crs(str(given)), "given (--crs)")
        except CrsError as exc:
            raise IngestError(f"--crs {given!r} is not usable: {exc}") from exc
    if source.crs is not None:
        epsg = source.crs.to_epsg(min_confidence=25)
        if epsg is None:
            raise IngestError(
                f"the CRS declared in the file ({source.crs_found_in}: '{source.crs.name}') has "
                "no EPSG code this service recognises: pass --crs EPSG:xxxx"
            )
        try:
            return SourceCrs(parse_crs(epsg), f"file ({source.crs_found_in})")
        except CrsError as exc:
            raise IngestError(f"the file's CRS is not usable: {exc}; pass --crs") from exc
    if source.format == "GeoJSON":
        return SourceCrs(WGS84, "format default (RFC 7946 GeoJSON: WGS 84 lon/lat)")
    if source.format.startswith("CSV"):
        return SourceCrs(CGCS2000, "assumed (a CSV declares no CRS: CGCS2000 lon/lat, EPSG:4490)")
    raise IngestError(
        f"'{source.file_name}' declares no CRS (a Shapefile needs its .prj): pass --crs EPSG:xxxx, "
        "gcj02 or bd09"
    )


def _representative_xy(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One coordinate per geometry (its first vertex), NaN where there is none."""
    xs = np.full(len(geoms), np.nan)
    ys = np.full(len(geoms), np.nan)
    coords, owner = shapely.get_coordinates(geoms, return_index=True)
    if len(owner):
        owners, first = np.unique(owner, return_index=True)
        xs[owners], ys[owners] = coords[first, 0], coords[first, 1]
    return xs, ys


def likely_crs(x: float, y: float, district_lon: float) -> str:
    """A guess at the CRS of metre coordinates, for the message that refuses them as degrees."""
    zone_unprefixed = gauss_kruger_epsg(district_lon)
    zone_prefixed = gauss_kruger_epsg(district_lon, prefixed=True)
    if 25e6 <= x < 46e6 and 0 < y < 6.5e6:
        zone = int(x // 1e6)
        code = 4513 + zone - 25
        return (
            f"a CGCS2000 3-degree Gauss-Krüger easting with zone prefix {zone}: --crs EPSG:{code}"
        )
    if 1e5 <= x <= 9e5 and 0 < y < 6.5e6:
        return (
            "CGCS2000 3-degree Gauss-Krüger metres without zone prefix: the district's zone is "
            f"--crs EPSG:{zone_unprefixed} (EPSG:{zone_prefixed} when the easting carries the "
            "zone number)"
        )
    if 8e6 <= x <= 15.4e6 and 0 < y < 7.5e6:
        return f"Web Mercator metres: --crs EPSG:{WEB_MERCATOR}"
    return (
        f"metres in a CRS that cannot be guessed: pass --crs (e.g. EPSG:{zone_unprefixed} for "
        "Gauss-Krüger, EPSG:3857 for Web Mercator)"
    )


def check_units(geoms: np.ndarray, crs: SourceCrs, district_lon: float) -> dict[int, str]:
    """Refuse a file whose coordinates do not fit its CRS's units; name the rows that do not fit.

    Returns row number → reason for a minority of misfits (each is rejected); raises IngestError
    when most features misfit (the CRS, not a few rows, is wrong).
    """
    xs, ys = _representative_xy(geoms)
    present = np.isfinite(xs) & np.isfinite(ys)
    if not present.any():
        return {}
    degrees_like = (np.abs(xs) <= 180) & (np.abs(ys) <= 90)
    misfit = present & (~degrees_like if crs.geographic else degrees_like)
    share = misfit.sum() / present.sum()
    if share > WRONG_UNITS_SHARE:
        i = int(np.flatnonzero(misfit)[0])
        x, y = float(xs[i]), float(ys[i])
        if crs.geographic and abs(x) <= 90 and abs(y) <= 180:
            raise IngestError(
                f"longitude and latitude look swapped (x={x}, y={y} at row {i + 1}): put the "
                "longitude (经度) in the x/lon column and the latitude (纬度) in the y/lat column"
            )
        if crs.geographic:
            raise IngestError(
                f"the coordinates look like metres (e.g. x={x:,.1f}, y={y:,.1f} at row {i + 1}) but "
                f"are being read as degrees in {crs.label} ({crs.origin}): they are most likely "
                f"{likely_crs(x, y, district_lon)}"
            )
        raise IngestError(
            f"the coordinates look like degrees (e.g. {x}, {y} at row {i + 1}) but are being read "
            f"as metres in {crs.label} ({crs.origin}): pass --crs EPSG:4490 (CGCS2000 lon/lat), "
            "EPSG:4326, gcj02 or bd09"
        )
    unit = "metres, not degrees" if crs.geographic else "degrees, not metres"
    return {
        int(i) + 1: f"coordinates ({xs[i]}, {ys[i]}) look like {unit} in {crs.label}"
        for i in np.flatnonzero(misfit)
    }


def to_storage(geoms: np.ndarray, crs: SourceCrs) -> np.ndarray:
    """The geometries in EPSG:4490 (None stays None), through geo.crs."""
    frame = geopandas.GeoDataFrame(geometry=geopandas.GeoSeries(list(geoms)))
    with np.errstate(invalid="ignore", over="ignore"):
        moved = to_crs(frame, CGCS2000, src=crs.ref)
    return np.asarray(moved.geometry.array, dtype=object)


def to_metric(geoms: np.ndarray, metric_srid: int) -> np.ndarray:
    """EPSG:4490 geometries in the metric CRS (Gauss-Krüger metres), for distances and areas."""
    frame = geopandas.GeoDataFrame(geometry=geopandas.GeoSeries(list(geoms)), crs=CGCS2000)
    with np.errstate(invalid="ignore", over="ignore"):
        moved = to_crs(frame, metric_srid)
    return np.asarray(moved.geometry.array, dtype=object)
