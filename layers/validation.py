"""Per-feature geometry checks: empty ones rejected, invalid ones repaired, outsiders rejected.

Departmental drawings are often invalid (bow-tie parcels, rings touching themselves): such a
geometry is repaired with GEOS ``make_valid`` and the repair is reported with the reason GEOS gave
(``is_valid_reason``), keeping the parts of the original's dimension (a repaired parcel stays a
polygon). Missing or empty geometry, geometry that cannot be repaired, and geometry outside the
district (beyond a tolerance in metres, measured in the metric CRS) are rejected one by one, each
with its reason. The checks run on the EPSG:4490 geometry that will be stored, so that what is
valid here is valid for the database's own CHECK.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely

from layers.coordinates import to_metric

_DIMENSION = {
    "Point": 0,
    "MultiPoint": 0,
    "LineString": 1,
    "LinearRing": 1,
    "MultiLineString": 1,
    "Polygon": 2,
    "MultiPolygon": 2,
}
_MULTI = {"Point": "MultiPoint", "LineString": "MultiLineString", "Polygon": "MultiPolygon"}


@dataclass
class Checked:
    """Geometries fit to store (None where rejected) and what was done to them, by row."""

    geometry: np.ndarray
    rejected: dict[int, str] = field(default_factory=dict)
    repaired: dict[int, str] = field(default_factory=dict)
    where: dict[int, tuple[float, float]] = field(default_factory=dict)  # row → lon, lat


def _point_of(geom) -> tuple[float, float] | None:
    try:
        p = shapely.point_on_surface(geom)
    except shapely.errors.GEOSException:
        return None
    if p is None or p.is_empty or not np.isfinite([p.x, p.y]).all():
        return None
    return (round(p.x, 7), round(p.y, 7))


def _repair(geom) -> tuple[object | None, str]:
    """make_valid, keeping the parts of the original's dimension; (None, why) if nothing is left."""
    reason = shapely.is_valid_reason(geom)
    fixed = shapely.make_valid(geom)
    dim = _DIMENSION.get(geom.geom_type)
    if dim is not None:
        parts = [p for p in shapely.get_parts(fixed) if _DIMENSION.get(p.geom_type) == dim]
        if not parts:
            return None, f"invalid geometry ({reason}) that no repair keeps as a {geom.geom_type}"
        if len(parts) == 1:
            fixed = parts[0]
        else:
            fixed = {
                0: shapely.multipoints,
                1: shapely.multilinestrings,
                2: shapely.multipolygons,
            }[dim]([q for p in parts for q in shapely.get_parts(p)])
            if not fixed.is_valid:
                fixed = shapely.make_valid(fixed)
    if fixed.is_empty or not fixed.is_valid:
        return None, f"invalid geometry ({reason}) that make_valid could not repair"
    return fixed, f"repaired invalid geometry ({reason}) with make_valid: now a {fixed.geom_type}"


def check(
    geoms: np.ndarray,
    skip: set[int],
    district_metric,
    metric_srid: int,
    tolerance_m: float,
) -> Checked:
    """Check every geometry not in ``skip`` (rows already rejected); see the module docstring.

    ``district_metric`` is the district in the metric CRS; a feature is kept when it lies within
    ``tolerance_m`` of it (covered by the district buffered by the tolerance).
    """
    out = Checked(geometry=np.array(geoms, dtype=object, copy=True))
    g = out.geometry
    for row in skip:
        g[row - 1] = None
    missing = np.array([x is None for x in g], dtype=bool)
    for i in np.flatnonzero(missing):
        if (i + 1) not in skip:
            out.rejected[int(i) + 1] = "missing geometry"
    empty = ~missing & shapely.is_empty(g)
    coords, owner = shapely.get_coordinates(np.where(missing, None, g), return_index=True)
    not_finite = np.zeros(len(g), dtype=bool)
    not_finite[np.unique(owner[~np.isfinite(coords).all(axis=1)])] = True
    invalid = ~missing & ~empty & ~not_finite & ~shapely.is_valid(g)
    for i in np.flatnonzero(empty):
        out.rejected[int(i) + 1] = "empty geometry"
        g[i] = None
    for i in np.flatnonzero(not_finite & ~empty):
        out.rejected[int(i) + 1] = "coordinates that cannot be transformed to EPSG:4490"
        g[i] = None
    for i in np.flatnonzero(invalid):
        row = int(i) + 1
        fixed, reason = _repair(g[i])
        if fixed is None:
            out.rejected[row] = reason
            where = _point_of(g[i])
            if where:
                out.where[row] = where
            g[i] = None
        else:
            out.repaired[row] = reason
            g[i] = fixed
    _reject_outside(out, district_metric, metric_srid, tolerance_m)
    return out


def _reject_outside(out: Checked, district_metric, metric_srid: int, tolerance_m: float) -> None:
    g = out.geometry
    kept = np.flatnonzero([x is not None for x in g])
    if kept.size == 0 or district_metric is None:  # no district yet: the areas that make it
        return
    metric = to_metric(g[kept], metric_srid)
    zone = shapely.buffer(district_metric, tolerance_m)
    shapely.prepare(zone)  # GEOS uses the preparation of the predicate's first argument
    inside = shapely.covers(zone, metric)
    for j in np.flatnonzero(~inside):
        i = int(kept[j])
        row = i + 1
        geom_m = metric[j]
        if shapely.intersects(geom_m, zone):
            beyond = shapely.area(shapely.difference(geom_m, zone))
            total = shapely.area(geom_m)
            share = f"{100 * beyond / total:.0f} % of its area" if total > 0 else "part of it"
            reason = (
                f"partly outside the district: {share} lies more than {tolerance_m:g} m "
                "beyond the boundary"
            )
        else:
            distance = shapely.distance(geom_m, district_metric)
            reason = f"outside the district: {distance / 1000:.2f} km beyond its boundary"
        out.rejected[row] = reason
        out.repaired.pop(row, None)
        where = _point_of(g[i])
        if where:
            out.where[row] = where
        g[i] = None


def storage_type(geoms: np.ndarray) -> str:
    """The PostGIS type of a column holding these geometries: the one type if all share it,
    the Multi* type where single and multi parts are mixed, GEOMETRY where dimensions mix."""
    kinds = {x.geom_type for x in geoms if x is not None}
    if not kinds:
        raise ValueError("no geometry to type")
    if len(kinds) == 1:
        return _postgis_name(kinds.pop())
    dims = {_DIMENSION.get(k) for k in kinds}
    if len(dims) == 1 and None not in dims:
        single = next(k for k in kinds if k in _MULTI)
        return _postgis_name(_MULTI[single])
    return "GEOMETRY"


def promote(geoms: np.ndarray, postgis_type: str) -> np.ndarray:
    """Single parts wrapped as Multi* where the column is Multi*."""
    if not postgis_type.startswith("MULTI"):
        return geoms
    make = {
        "MULTIPOINT": shapely.multipoints,
        "MULTILINESTRING": shapely.multilinestrings,
        "MULTIPOLYGON": shapely.multipolygons,
    }[postgis_type]
    out = np.array(geoms, dtype=object, copy=True)
    for i, x in enumerate(out):
        if x is not None and not x.geom_type.startswith("Multi"):
            out[i] = make([x])
    return out


def _postgis_name(kind: str) -> str:
    return {
        "Point": "POINT",
        "MultiPoint": "MULTIPOINT",
        "LineString": "LINESTRING",
        "LinearRing": "LINESTRING",
        "MultiLineString": "MULTILINESTRING",
        "Polygon": "POLYGON",
        "MultiPolygon": "MULTIPOLYGON",
        "GeometryCollection": "GEOMETRYCOLLECTION",
    }[kind]
