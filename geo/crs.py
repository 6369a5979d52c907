"""Coordinate reference systems of the district: naming, EPSG transforms, GCJ-02/BD-09 offsets.

Stored geometries are CGCS2000 lon/lat (EPSG:4490); distances and areas are measured in the
CGCS2000 3-degree Gauss-Krüger zone of the district (EPSG:4549, CM 120°E); tiles are Web
Mercator (EPSG:3857). Departmental and consumer data arrive in other systems, among them two that
PROJ does not know: GCJ-02, the offset every map published in China must apply (Amap, Tencent),
and BD-09, Baidu's further offset on top of GCJ-02. This module is the one place that knows how to
move coordinates between all of them; everything else calls :func:`transform`, :func:`to_crs` or
:func:`transform_geometry`.

Coordinates are always (x, y) = (longitude, latitude) or (easting, northing), whatever the axis
order an EPSG definition declares (PROJ's ``always_xy``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Literal, TypeAlias

import geopandas
import numpy as np
import pyproj
import shapely
from numpy.typing import ArrayLike, NDArray

CGCS2000 = 4490
WGS84 = 4326
WEB_MERCATOR = 3857
GCJ02: Literal["gcj02"] = "gcj02"
BD09: Literal["bd09"] = "bd09"

CrsRef: TypeAlias = int | Literal["gcj02", "bd09"]
"""An EPSG code PROJ knows, or one of the two offsets PROJ does not: ``"gcj02"``, ``"bd09"``."""

FloatArray: TypeAlias = NDArray[np.float64]
Transform2D: TypeAlias = Callable[[ArrayLike, ArrayLike], tuple[FloatArray, FloatArray]]


class CrsError(ValueError):
    """A coordinate reference system was not understood or a transform cannot be made."""


# --- naming a CRS ------------------------------------------------------------------------------

_ACCEPTED = (
    "an EPSG code PROJ knows, written 4490, '4490', 'EPSG:4490', 'urn:ogc:def:crs:EPSG::4490' or "
    "'http://www.opengis.net/def/crs/EPSG/0/4490'; 'CRS84' or "
    "'http://www.opengis.net/def/crs/OGC/1.3/CRS84' (lon/lat WGS 84, taken as EPSG:4326); "
    "'gcj02' / 'GCJ-02'; 'bd09' / 'BD-09'"
)
_OFFSET_NAMES: dict[str, CrsRef] = {"gcj02": GCJ02, "gcj-02": GCJ02, "bd09": BD09, "bd-09": BD09}
_CRS84_NAMES = {
    "crs84",
    "ogc:crs84",
    "urn:ogc:def:crs:ogc:1.3:crs84",
    "urn:ogc:def:crs:ogc::crs84",
    "http://www.opengis.net/def/crs/ogc/1.3/crs84",
    "https://www.opengis.net/def/crs/ogc/1.3/crs84",
}
_EPSG_PATTERNS = (
    re.compile(r"(\d+)"),
    re.compile(r"epsg:(\d+)"),
    re.compile(r"urn:ogc:def:crs:epsg:[\d.]*:(\d+)"),
    re.compile(r"https?://www\.opengis\.net/def/crs/epsg/[\d.]+/(\d+)"),
)


@lru_cache(maxsize=256)
def _pyproj_crs(epsg: int) -> pyproj.CRS:
    """The PROJ definition of an EPSG code, or CrsError if PROJ does not know it."""
    try:
        return pyproj.CRS.from_epsg(epsg)
    except pyproj.exceptions.CRSError as exc:
        raise CrsError(f"EPSG:{epsg} is not a CRS PROJ knows. Accepted: {_ACCEPTED}.") from exc


def parse_crs(value: str | int) -> CrsRef:
    """Read a CRS as users, OGC API clients and departmental files write it.

    OGC API - Features Part 2 names CRSs by URI (``http://www.opengis.net/def/crs/EPSG/0/4490``,
    ``.../OGC/1.3/CRS84``); files and people write ``EPSG:4490`` or ``4490``; consumer data is
    ``GCJ-02`` or ``BD-09``. CRS84 is WGS 84 with lon/lat axis order; since every transform here
    is lon/lat (``always_xy``) it is the same as EPSG:4326. Anything else raises CrsError naming
    the accepted forms.
    """
    if isinstance(value, bool):
        raise CrsError(f"{value!r} is not a CRS. Accepted: {_ACCEPTED}.")
    if isinstance(value, int | np.integer):
        code = int(value)
        if code <= 0:
            raise CrsError(f"{value!r} is not an EPSG code. Accepted: {_ACCEPTED}.")
        _pyproj_crs(code)
        return code
    if not isinstance(value, str):
        raise CrsError(f"{value!r} is not a CRS. Accepted: {_ACCEPTED}.")
    text = value.strip().lower()
    if text in _OFFSET_NAMES:
        return _OFFSET_NAMES[text]
    if text in _CRS84_NAMES:
        return WGS84
    for pattern in _EPSG_PATTERNS:
        match = pattern.fullmatch(text)
        if match:
            return parse_crs(int(match.group(1)))
    raise CrsError(f"{value!r} is not a CRS this service understands. Accepted: {_ACCEPTED}.")


def _is_offset(crs: CrsRef) -> bool:
    return crs in (GCJ02, BD09)


def is_geographic(crs: CrsRef | str) -> bool:
    """True for lon/lat systems (degrees), including GCJ-02 and BD-09, False for projected ones."""
    ref = parse_crs(crs)
    if _is_offset(ref):
        return True
    return bool(_pyproj_crs(int(ref)).is_geographic)


# --- CGCS2000 3-degree Gauss-Krüger zones ------------------------------------------------------

_GK_FIRST_ZONE = 25  # CM 75°E
_GK_LAST_ZONE = 45  # CM 135°E
_GK_EPSG_PREFIXED = 4513  # "CGCS2000 / 3-degree Gauss-Kruger zone 25", easting 25 500 000 at the CM
_GK_EPSG_UNPREFIXED = 4534  # "CGCS2000 / 3-degree Gauss-Kruger CM 75E", easting 500 000 at the CM
_GK_ZONES = _GK_LAST_ZONE - _GK_FIRST_ZONE + 1


def gauss_kruger_epsg(lon: float, prefixed: bool = False) -> int:
    """EPSG code of the CGCS2000 3-degree Gauss-Krüger zone containing a longitude.

    GB/T 20257 3-degree zones: zone n has central meridian 3n°E and spans 3n ± 1.5°; a longitude on
    a zone boundary belongs to the eastern zone (118.5°E is in the CM 120°E zone). China's zones
    run from 25 (CM 75°E) to 45 (CM 135°E): EPSG:4534..4554 write the easting as 500 000 m at the
    CM, EPSG:4513..4533 prefix the zone number (40 500 000 m in zone 40). The demo district
    (about 119°E) is EPSG:4549, or EPSG:4528 prefixed.
    """
    if not math.isfinite(lon) or not 73.5 <= lon <= 136.5:
        raise CrsError(
            f"longitude {lon!r} is outside China's CGCS2000 3-degree Gauss-Krüger zones "
            "(73.5°E to 136.5°E, zones 25 to 45)"
        )
    zone = min(math.floor(lon / 3.0 + 0.5), _GK_LAST_ZONE)
    first = _GK_EPSG_PREFIXED if prefixed else _GK_EPSG_UNPREFIXED
    return first + zone - _GK_FIRST_ZONE


def is_gauss_kruger(epsg: CrsRef | str) -> bool:
    """True for the CGCS2000 3-degree Gauss-Krüger zones, prefixed (4513-4533) or not (4534-4554).

    Metric work (buffers, areas, snapping tolerances) belongs in one of these; anything that
    :func:`parse_crs` reads is accepted, and what it rejects raises CrsError.
    """
    ref = parse_crs(epsg)
    return not _is_offset(ref) and _GK_EPSG_PREFIXED <= int(ref) < _GK_EPSG_UNPREFIXED + _GK_ZONES


# --- GCJ-02 and BD-09 --------------------------------------------------------------------------

# The public GCJ-02 algorithm: a polynomial-plus-sine displacement around (105°E, 35°N), in metres
# on the Krasovsky 1940 ellipsoid, converted to degrees with that ellipsoid's radii of curvature.
_KRASOVSKY_A = 6378245.0
_KRASOVSKY_EE = 0.00669342162296594323
# BD-09 rotates and scales GCJ-02 slightly about the origin and shifts it by (0.0065°, 0.006°).
_BD_X_PI = math.pi * 3000.0 / 180.0
_BD_DX = 0.0065
_BD_DY = 0.006
# The rectangle within which the offsets are applied; outside it coordinates pass unchanged.
_CHINA_BBOX = (72.004, 0.8293, 137.8347, 55.8271)

_INVERSE_TOLERANCE = 1e-11  # degrees (about a micrometre): the forward of the answer hits its input
_INVERSE_MAX_ITERATIONS = 50
_INVERSE_GUARD = 1e-9  # degrees: anything worse after the last iteration is an error, not an answer


def _as_float_arrays(x: ArrayLike, y: ArrayLike) -> tuple[FloatArray, FloatArray]:
    xa, ya = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    return xa.copy(), ya.copy()


def out_of_china(lon: ArrayLike, lat: ArrayLike) -> NDArray[np.bool_]:
    """True where a point lies outside the rectangle in which GCJ-02 and BD-09 are applied.

    The conventional rectangle 72.004-137.8347°E, 0.8293-55.8271°N of the public algorithm: all
    six offset functions here leave points outside it unchanged (not-a-number counts as out). The
    test is made on each function's input, so within a few hundred metres of the rectangle's edge
    a point and its offset image can fall on different sides and will not round-trip.
    """
    lon_a, lat_a = _as_float_arrays(lon, lat)
    west, south, east, north = _CHINA_BBOX
    inside = (lon_a >= west) & (lon_a <= east) & (lat_a >= south) & (lat_a <= north)
    return ~inside


def _gcj02_shift(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    """GCJ-02 displacement (dlon, dlat) in degrees at a WGS 84 position, everywhere unmasked."""
    x = lon - 105.0
    y = lat - 35.0
    pi = math.pi
    waves = (20.0 * np.sin(6.0 * x * pi) + 20.0 * np.sin(2.0 * x * pi)) * 2.0 / 3.0
    sqrt_abs_x = np.sqrt(np.abs(x))
    north = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sqrt_abs_x + waves
    north += (20.0 * np.sin(y * pi) + 40.0 * np.sin(y / 3.0 * pi)) * 2.0 / 3.0
    north += (160.0 * np.sin(y / 12.0 * pi) + 320.0 * np.sin(y * pi / 30.0)) * 2.0 / 3.0
    east = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sqrt_abs_x + waves
    east += (20.0 * np.sin(x * pi) + 40.0 * np.sin(x / 3.0 * pi)) * 2.0 / 3.0
    east += (150.0 * np.sin(x / 12.0 * pi) + 300.0 * np.sin(x / 30.0 * pi)) * 2.0 / 3.0
    phi = lat / 180.0 * pi
    magic = 1.0 - _KRASOVSKY_EE * np.sin(phi) ** 2
    sqrt_magic = np.sqrt(magic)
    meridian_radius = _KRASOVSKY_A * (1.0 - _KRASOVSKY_EE) / (magic * sqrt_magic)
    parallel_radius = _KRASOVSKY_A / sqrt_magic * np.cos(phi)
    return east * 180.0 / (parallel_radius * pi), north * 180.0 / (meridian_radius * pi)


def _gcj02_forward(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    dlon, dlat = _gcj02_shift(lon, lat)
    return lon + dlon, lat + dlat


def _bd09_forward(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    z = np.hypot(lon, lat) + 0.00002 * np.sin(lat * _BD_X_PI)
    theta = np.arctan2(lat, lon) + 0.000003 * np.cos(lon * _BD_X_PI)
    return z * np.cos(theta) + _BD_DX, z * np.sin(theta) + _BD_DY


def _bd09_one_step_inverse(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Baidu's published approximate inverse, used only as the starting guess (off by ~2e-6°)."""
    x = lon - _BD_DX
    y = lat - _BD_DY
    z = np.hypot(x, y) - 0.00002 * np.sin(y * _BD_X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _BD_X_PI)
    return z * np.cos(theta), z * np.sin(theta)


def _gcj02_one_step_inverse(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The common inverse: subtract the shift found at the GCJ-02 point (off by up to ~5e-5°)."""
    dlon, dlat = _gcj02_shift(lon, lat)
    return lon - dlon, lat - dlat


def _invert(
    forward: Callable[[FloatArray, FloatArray], tuple[FloatArray, FloatArray]],
    first_guess: Callable[[FloatArray, FloatArray], tuple[FloatArray, FloatArray]],
    lon: FloatArray,
    lat: FloatArray,
) -> tuple[FloatArray, FloatArray]:
    """Solve forward(p) = (lon, lat) by fixed-point iteration p <- p - (forward(p) - target).

    The offsets are the identity plus a displacement whose derivative is of order 1e-3 (GCJ-02)
    to 2e-2 (BD-09), so the iteration is a contraction: each step gains two to three digits.
    Points iterate until the forward of the estimate is within _INVERSE_TOLERANCE of the target,
    each independently (vectorised; converged points drop out). Non-finite input is returned as
    is. A point still off by more than _INVERSE_GUARD after _INVERSE_MAX_ITERATIONS is an error.
    """
    est_lon, est_lat = first_guess(lon, lat)
    active = np.flatnonzero(np.isfinite(lon) & np.isfinite(lat))
    for _ in range(_INVERSE_MAX_ITERATIONS):
        if active.size == 0:
            break
        f_lon, f_lat = forward(est_lon[active], est_lat[active])
        r_lon = f_lon - lon[active]
        r_lat = f_lat - lat[active]
        est_lon[active] -= r_lon
        est_lat[active] -= r_lat
        active = active[np.maximum(np.abs(r_lon), np.abs(r_lat)) > _INVERSE_TOLERANCE]
    if active.size:
        f_lon, f_lat = forward(est_lon[active], est_lat[active])
        miss = np.maximum(np.abs(f_lon - lon[active]), np.abs(f_lat - lat[active]))
        if np.any(miss > _INVERSE_GUARD):
            raise CrsError(
                f"the inverse offset did not converge for {int(np.sum(miss > _INVERSE_GUARD))} "
                f"point(s) within {_INVERSE_MAX_ITERATIONS} iterations"
            )
    return est_lon, est_lat


def _inside_only(
    offset: Callable[[FloatArray, FloatArray], tuple[FloatArray, FloatArray]],
    lon: ArrayLike,
    lat: ArrayLike,
) -> tuple[FloatArray, FloatArray]:
    """Apply an offset to the points inside China's rectangle; leave the rest as they are."""
    lon_a, lat_a = _as_float_arrays(lon, lat)
    inside = ~out_of_china(lon_a, lat_a)
    if np.any(inside):
        new_lon, new_lat = offset(lon_a[inside], lat_a[inside])
        lon_a[inside] = new_lon
        lat_a[inside] = new_lat
    return lon_a, lat_a


def wgs84_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """WGS 84 lon/lat to GCJ-02, the public forward algorithm (Krasovsky a, ee; origin 105°E 35°N)."""
    return _inside_only(_gcj02_forward, lon, lat)


def gcj02_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """GCJ-02 lon/lat to WGS 84: the exact inverse of :func:`wgs84_to_gcj02`, found iteratively.

    GCJ-02 has no closed-form inverse. The widespread one-step inverse (subtract the shift found
    at the GCJ-02 point) is off by up to ~5e-5° (metres); here the one-step result only
    seeds a fixed-point iteration that runs until the forward of the answer reproduces the input
    to 1e-11°. Points outside China's rectangle are returned unchanged.
    """
    return _inside_only(
        lambda a, b: _invert(_gcj02_forward, _gcj02_one_step_inverse, a, b), lon, lat
    )


def gcj02_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """GCJ-02 to BD-09, Baidu's public forward formula (x_pi = π·3000/180, shift 0.0065°/0.006°)."""
    return _inside_only(_bd09_forward, lon, lat)


def bd09_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """BD-09 to GCJ-02: the exact inverse of :func:`gcj02_to_bd09`, found iteratively.

    Baidu's published reverse formula is itself an approximation (off by ~2e-6°); it seeds the
    same fixed-point iteration as :func:`gcj02_to_wgs84`.
    """
    return _inside_only(lambda a, b: _invert(_bd09_forward, _bd09_one_step_inverse, a, b), lon, lat)


def wgs84_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """WGS 84 to BD-09: GCJ-02 first, then Baidu's offset on top."""
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def bd09_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """BD-09 to WGS 84: both exact inverses, BD-09 to GCJ-02 then GCJ-02 to WGS 84."""
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))


_OFFSET_STEPS: dict[tuple[CrsRef, CrsRef], Transform2D] = {
    (WGS84, GCJ02): wgs84_to_gcj02,
    (GCJ02, WGS84): gcj02_to_wgs84,
    (GCJ02, BD09): gcj02_to_bd09,
    (BD09, GCJ02): bd09_to_gcj02,
    (WGS84, BD09): wgs84_to_bd09,
    (BD09, WGS84): bd09_to_wgs84,
}


# --- transforms --------------------------------------------------------------------------------


@lru_cache(maxsize=128)
def _transformer(src: int, dst: int) -> pyproj.Transformer:
    """PROJ's best transformation between two EPSG codes, lon/lat and easting/northing order."""
    return pyproj.Transformer.from_crs(_pyproj_crs(src), _pyproj_crs(dst), always_xy=True)


def transform(
    x: ArrayLike, y: ArrayLike, src: CrsRef | str, dst: CrsRef | str
) -> tuple[FloatArray, FloatArray]:
    """Transform coordinates between any two CRSs of the district, vectorised.

    ``x``/``y`` are scalars, sequences or numpy arrays in (lon, lat) or (easting, northing) order;
    the result is always a pair of float64 arrays of their broadcast shape (0-d for scalars; use
    ``float()`` to unwrap). Input arrays are never modified.

    EPSG to EPSG goes through PROJ (``Transformer.from_crs(..., always_xy=True)``, cached).
    GCJ-02 and BD-09 are defined on WGS 84, so a path touching them goes through EPSG:4326:
    EPSG:src → 4326 by PROJ, then the forward offset; or the exact inverse offset, then 4326 →
    EPSG:dst. GCJ-02 ↔ BD-09 is the Baidu offset alone. CGCS2000 (4490) and WGS 84 (4326) are
    taken as coincident, as PROJ's null "ballpark" transformation between them does: the frames
    differ by centimetres, well below what the offsets or consumer positioning resolve.
    """
    src_ref = parse_crs(src)
    dst_ref = parse_crs(dst)
    xs, ys = _as_float_arrays(x, y)
    if src_ref == dst_ref:
        return xs, ys
    direct = _OFFSET_STEPS.get((src_ref, dst_ref))
    if direct is not None:
        return direct(xs, ys)
    if _is_offset(src_ref):
        xs, ys = _OFFSET_STEPS[(src_ref, WGS84)](xs, ys)
        src_ref = WGS84
    proj_dst = WGS84 if _is_offset(dst_ref) else dst_ref
    if src_ref != proj_dst:
        xs, ys = _transformer(int(src_ref), int(proj_dst)).transform(xs, ys)
        xs, ys = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    if _is_offset(dst_ref):
        xs, ys = _OFFSET_STEPS[(WGS84, dst_ref)](xs, ys)
    return xs, ys


def _coordinate_function(src: CrsRef, dst: CrsRef) -> Callable[[FloatArray], FloatArray]:
    """A shapely.transform callback: move x and y, keep any z as it is."""

    def move(coords: FloatArray) -> FloatArray:
        out = np.array(coords, dtype=np.float64, copy=True)
        out[:, 0], out[:, 1] = transform(coords[:, 0], coords[:, 1], src, dst)
        return out

    return move


def transform_geometry(
    geom: shapely.Geometry, src: CrsRef | str, dst: CrsRef | str
) -> shapely.Geometry:
    """Transform one shapely geometry (any type, z kept unchanged) with :func:`transform`."""
    move = _coordinate_function(parse_crs(src), parse_crs(dst))
    return shapely.transform(geom, move, include_z=True)


def _output_crs(ref: CrsRef) -> pyproj.CRS:
    """The CRS label a GeoDataFrame can carry: EPSG:4326 stands in for GCJ-02 and BD-09."""
    return _pyproj_crs(WGS84 if _is_offset(ref) else int(ref))


def _input_crs(gdf: geopandas.GeoDataFrame, src: CrsRef | str | None) -> CrsRef:
    if src is not None:
        return parse_crs(src)
    if gdf.crs is None:
        raise CrsError(
            "the GeoDataFrame has no CRS: pass src= (e.g. 'gcj02' for Amap/Tencent picks, "
            "'bd09' for Baidu, 4490 for stored data)"
        )
    epsg = gdf.crs.to_epsg()
    if epsg is None:
        raise CrsError(
            f"the GeoDataFrame's CRS {gdf.crs.name!r} has no EPSG code: pass src= explicitly"
        )
    return parse_crs(epsg)


def to_crs(
    gdf: geopandas.GeoDataFrame, dst: CrsRef | str, src: CrsRef | str | None = None
) -> geopandas.GeoDataFrame:
    """Reproject a GeoDataFrame's active geometry, like ``GeoDataFrame.to_crs`` but offset-aware.

    A GeoDataFrame cannot be labelled GCJ-02 or BD-09, so such data typically arrives labelled
    EPSG:4326 or not labelled at all: ``src`` says what the coordinates really are and overrides
    the frame's label. Without ``src`` the frame's own EPSG code is used. The result is a new
    frame; its CRS is ``dst`` for EPSG outputs and EPSG:4326 for GCJ-02/BD-09 outputs (the closest
    label PROJ has; the coordinates are offset, so keep track of that yourself).
    """
    src_ref = _input_crs(gdf, src)
    dst_ref = parse_crs(dst)
    move = _coordinate_function(src_ref, dst_ref)
    geometry = shapely.transform(np.asarray(gdf.geometry.array), move, include_z=True)
    out = gdf.copy()
    out[gdf.geometry.name] = geopandas.GeoSeries(geometry, index=gdf.index)
    return out.set_crs(_output_crs(dst_ref), allow_override=True)


def margin_degrees(radius_m: float, lat: float) -> float:
    """A box margin in degrees that holds ``radius_m`` in every direction at latitude ``lat``:
    the index prefilter (``geom && ST_Expand(point, margin)``) before an exact metric distance."""
    return radius_m / (111_320.0 * max(math.cos(math.radians(abs(lat) + 1)), 0.05)) * 1.05
