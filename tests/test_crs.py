"""geo.crs: published control values, round trips, the GCJ-02/BD-09 offsets, parsing and zones.

Every expected number below is either copied from a published source named beside it or derived
from a definition independent of the code under test (the EPSG registry, a quadrature of the
CGCS2000 meridian arc). Nothing expected is computed with the function being tested.
"""

from __future__ import annotations

import math

import geopandas
import numpy as np
import pyproj
import pytest
import shapely
from shapely.geometry import LineString, Point, Polygon

from geo import crs
from geo.crs import (
    BD09,
    CGCS2000,
    GCJ02,
    WEB_MERCATOR,
    WGS84,
    CrsError,
    bd09_to_gcj02,
    bd09_to_wgs84,
    gauss_kruger_epsg,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    is_gauss_kruger,
    is_geographic,
    out_of_china,
    parse_crs,
    to_crs,
    transform,
    transform_geometry,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)

GK_120E = 4549  # CGCS2000 / 3-degree Gauss-Kruger CM 120E
GK_ZONE_40 = 4528  # CGCS2000 / 3-degree Gauss-Kruger zone 40 (easting prefixed with 40)

FULL_PRECISION = 1e-11  # degrees: for values published with all the digits of a double
INVERSE_BAR = 1e-9  # degrees: what the iterative inverses must reach
ROUND_TRIP_BAR = 1e-7  # degrees: the acceptance bar for inverse(forward(p))
MM = 1e-3  # metres


def dms(degrees: float, minutes: float, seconds: float) -> float:
    sign = -1.0 if degrees < 0 else 1.0
    return sign * (abs(degrees) + minutes / 60.0 + seconds / 3600.0)


def max_error(ax, ay, bx, by) -> float:
    return float(max(np.max(np.abs(np.asarray(ax) - bx)), np.max(np.abs(np.asarray(ay) - by))))


# --- samples -----------------------------------------------------------------------------------

DISTRICT = (118.834, 119.237, 31.380, 31.791)  # west, east, south, north (DOMAIN.md demo district)
CHINA = (73.6, 134.7, 18.2, 53.5)  # inside the offset rectangle, across GK zones 25 to 45


def district_grid() -> tuple[np.ndarray, np.ndarray]:
    """32 x 32 cells over the district, one seeded random point in each (1024 points)."""
    rng = np.random.default_rng(4549)
    west, east, south, north = DISTRICT
    col, row = np.meshgrid(np.arange(32), np.arange(32))
    lon = west + (col.ravel() + rng.uniform(size=1024)) * (east - west) / 32
    lat = south + (row.ravel() + rng.uniform(size=1024)) * (north - south) / 32
    return lon, lat


def china_sample() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2000)
    west, east, south, north = CHINA
    return rng.uniform(west, east, 1000), rng.uniform(south, north, 1000)


SAMPLES = {"district": district_grid(), "china": china_sample()}


# --- published control values: WGS 84 <-> GCJ-02 ---------------------------------------------

# googollee/eviltransform test suite, (WGS lon, lat) -> (GCJ lon, lat), full double precision:
# https://github.com/googollee/eviltransform go/transform_test.go (same table in python/test.py,
# javascript/test.js, csharp/EvilTransformUnitTest.cs).
EVILTRANSFORM = [
    ((121.5272106, 31.1774276), (121.531541859215, 31.17530398364597)),  # Shanghai
    ((113.912316, 22.543847), (113.9171764808363, 22.540796131694766)),  # Shenzhen
    ((116.377817, 39.911954), (116.38404722455657, 39.91334545536069)),  # Beijing
]
# wandergis/coordtransform README.md: wgs84togcj02(116.404, 39.915)
# https://github.com/wandergis/coordtransform (README "result" block; also asserted exactly in
# https://github.com/wyxloading/coordtransform-rs tests/tests.rs).
WANDERGIS_WGS_GCJ = ((116.404, 39.915), (116.41024449916938, 39.91640428150164))


@pytest.mark.parametrize("wgs, gcj", [*EVILTRANSFORM, WANDERGIS_WGS_GCJ])
def test_wgs84_to_gcj02_reproduces_published_values(wgs, gcj):
    lon, lat = wgs84_to_gcj02(*wgs)
    assert float(lon) == pytest.approx(gcj[0], abs=FULL_PRECISION)
    assert float(lat) == pytest.approx(gcj[1], abs=FULL_PRECISION)


def test_wgs84_to_gcj02_matches_gcoord_to_its_eight_published_decimals():
    # hujiulong/gcoord test/unit/crs/WGS84.spec.ts: WGS84 [123, 45] -> GCJ02 [123.00607541,
    # 45.00197815] (https://github.com/hujiulong/gcoord). gcoord truncates to eight decimals
    # rather than rounding, so allow one unit of the last place.
    lon, lat = wgs84_to_gcj02(123.0, 45.0)
    assert float(lon) == pytest.approx(123.00607541, abs=1e-8)
    assert float(lat) == pytest.approx(45.00197815, abs=1e-8)


@pytest.mark.parametrize("wgs, gcj", [*EVILTRANSFORM, WANDERGIS_WGS_GCJ])
def test_gcj02_to_wgs84_recovers_published_wgs84_inputs(wgs, gcj):
    # The published pairs read backwards: the exact inverse must give back the WGS 84 input.
    # (eviltransform's own exact inverse is only held to 0.5 m; ours to 1e-9 degrees.)
    lon, lat = gcj02_to_wgs84(*gcj)
    assert float(lon) == pytest.approx(wgs[0], abs=INVERSE_BAR)
    assert float(lat) == pytest.approx(wgs[1], abs=INVERSE_BAR)


def test_gcj02_to_wgs84_agrees_with_gcoord_within_its_stated_tolerance():
    # hujiulong/gcoord test/unit/crs/GCJ02.spec.js: GCJ02 [123, 45] -> WGS84 [122.99395597,
    # 44.99804071], asserted there with toBeCloseTo(..., 5), i.e. within 5e-6 (gcoord's inverse is
    # approximate, so its eight decimals are not all significant).
    lon, lat = gcj02_to_wgs84(123.0, 45.0)
    assert float(lon) == pytest.approx(122.99395597, abs=5e-6)
    assert float(lat) == pytest.approx(44.99804071, abs=5e-6)


# --- published control values: GCJ-02 <-> BD-09 ----------------------------------------------

# wandergis/coordtransform README.md: gcj02tobd09(116.404, 39.915), full precision.
WANDERGIS_GCJ_BD = ((116.404, 39.915), (116.41036949371029, 39.92133699351021))
# hujiulong/gcoord test/fixtures/china-cities.json, GCJ02 -> BD09 columns (seven decimals; the
# BD09 column is the formula applied to the GCJ02 column, rounded).
GCOORD_CITIES_GCJ_BD = [
    ((114.022306, 33.0115324), (114.0287781, 33.0176697)),  # 驻马店市
    ((111.4677938, 27.2388981), (111.4742271, 27.2451662)),  # 邵阳市
    ((119.9231242, 32.4557802), (119.9296902, 32.4615531)),  # 泰州市
    ((92.0512438, 31.4762063), (92.0576832, 31.4824421)),  # 那曲地区
]


def test_gcj02_to_bd09_reproduces_published_values():
    lon, lat = gcj02_to_bd09(*WANDERGIS_GCJ_BD[0])
    assert float(lon) == pytest.approx(WANDERGIS_GCJ_BD[1][0], abs=FULL_PRECISION)
    assert float(lat) == pytest.approx(WANDERGIS_GCJ_BD[1][1], abs=FULL_PRECISION)
    # hujiulong/gcoord test/unit/crs/GCJ02.spec.js: GCJ02 [123, 45] -> BD09 [123.00636499,
    # 45.00636899] (eight decimals, truncated: one unit of the last place).
    lon, lat = gcj02_to_bd09(123.0, 45.0)
    assert float(lon) == pytest.approx(123.00636499, abs=1e-8)
    assert float(lat) == pytest.approx(45.00636899, abs=1e-8)


@pytest.mark.parametrize("gcj, bd", GCOORD_CITIES_GCJ_BD)
def test_gcj02_to_bd09_matches_gcoord_cities_to_seven_decimals(gcj, bd):
    lon, lat = gcj02_to_bd09(*gcj)
    assert float(lon) == pytest.approx(bd[0], abs=5e-8)
    assert float(lat) == pytest.approx(bd[1], abs=5e-8)


def test_bd09_to_gcj02_recovers_published_gcj02_inputs():
    lon, lat = bd09_to_gcj02(*WANDERGIS_GCJ_BD[1])
    assert float(lon) == pytest.approx(WANDERGIS_GCJ_BD[0][0], abs=INVERSE_BAR)
    assert float(lat) == pytest.approx(WANDERGIS_GCJ_BD[0][1], abs=INVERSE_BAR)
    # The city BD09 values are rounded to 5e-8, so the recovered GCJ02 carries that rounding.
    for gcj, bd in GCOORD_CITIES_GCJ_BD:
        lon, lat = bd09_to_gcj02(*bd)
        assert float(lon) == pytest.approx(gcj[0], abs=1e-7)
        assert float(lat) == pytest.approx(gcj[1], abs=1e-7)


def test_bd09_to_gcj02_agrees_with_gcoord_within_its_stated_tolerance():
    # hujiulong/gcoord test/unit/crs/BD09.spec.js: BD09 [123, 45] -> GCJ02 [122.99363304,
    # 44.99365430], asserted with toBeCloseTo(..., 5).
    lon, lat = bd09_to_gcj02(123.0, 45.0)
    assert float(lon) == pytest.approx(122.99363304, abs=5e-6)
    assert float(lat) == pytest.approx(44.99365430, abs=5e-6)


# --- published control values: WGS 84 <-> BD-09 ----------------------------------------------

# wyxloading/coordtransform-rs tests/tests.rs: wgs84_to_bd09(116.404, 39.915), asserted exactly.
# https://github.com/wyxloading/coordtransform-rs
COORDTRANSFORM_RS_WGS_BD = ((116.404, 39.915), (116.41662724378733, 39.922699552216216))
# hujiulong/gcoord test/fixtures/china-cities.json, WGS84 and BD09 columns. gcoord asserts these
# with toBeCloseTo(..., 4), i.e. within 5e-5: the fixture comes from the map services, not the
# formula, and its WGS84 column reproduces its own GCJ02 column only to about 5e-6.
GCOORD_CITIES_WGS_BD = [
    ((114.0164322, 33.0133556), (114.0287781, 33.0176697)),  # 驻马店市
    ((111.4622119, 27.242124), (111.4742271, 27.2451662)),  # 邵阳市
    ((119.9183831, 32.4580023), (119.9296902, 32.4615531)),  # 泰州市
]


def test_wgs84_to_bd09_reproduces_published_values():
    lon, lat = wgs84_to_bd09(*COORDTRANSFORM_RS_WGS_BD[0])
    assert float(lon) == pytest.approx(COORDTRANSFORM_RS_WGS_BD[1][0], abs=FULL_PRECISION)
    assert float(lat) == pytest.approx(COORDTRANSFORM_RS_WGS_BD[1][1], abs=FULL_PRECISION)
    # hujiulong/gcoord test/unit/crs/WGS84.spec.ts: WGS84 [123, 45] -> BD09 [123.0124491,
    # 45.0083293]; the seven decimals there are truncated, not rounded, so allow one unit.
    lon, lat = wgs84_to_bd09(123.0, 45.0)
    assert float(lon) == pytest.approx(123.0124491, abs=1e-7)
    assert float(lat) == pytest.approx(45.0083293, abs=1e-7)


@pytest.mark.parametrize("wgs, bd", GCOORD_CITIES_WGS_BD)
def test_wgs84_bd09_match_gcoord_city_fixture_within_its_stated_tolerance(wgs, bd):
    lon, lat = wgs84_to_bd09(*wgs)
    assert max_error(lon, lat, *bd) < 5e-5
    lon, lat = bd09_to_wgs84(*bd)
    assert max_error(lon, lat, *wgs) < 5e-5


def test_bd09_to_wgs84_recovers_published_wgs84_input():
    lon, lat = bd09_to_wgs84(*COORDTRANSFORM_RS_WGS_BD[1])
    assert float(lon) == pytest.approx(COORDTRANSFORM_RS_WGS_BD[0][0], abs=INVERSE_BAR)
    assert float(lat) == pytest.approx(COORDTRANSFORM_RS_WGS_BD[0][1], abs=INVERSE_BAR)
    # hujiulong/gcoord test/unit/crs/BD09.spec.js: BD09 [123, 45] -> WGS84 [122.98762210,
    # 44.99171540], asserted with toBeCloseTo(..., 5).
    lon, lat = bd09_to_wgs84(123.0, 45.0)
    assert float(lon) == pytest.approx(122.98762210, abs=5e-6)
    assert float(lat) == pytest.approx(44.99171540, abs=5e-6)


# --- the iterative inverses are exact, the one-step ones are not -------------------------------

# The widespread one-step inverses, as published by wandergis/coordtransform README.md (and
# asserted exactly in wyxloading/coordtransform-rs tests/tests.rs):
#   gcj02towgs84(116.404, 39.915) = [116.39775550083061, 39.91359571849836]
#   bd09togcj02(116.404, 39.915)  = [116.39762729119315, 39.90865673957631]
ONE_STEP_GCJ_TO_WGS = (116.39775550083061, 39.91359571849836)
ONE_STEP_BD_TO_GCJ = (116.39762729119315, 39.90865673957631)


def test_gcj02_inverse_lands_where_the_published_one_step_inverse_misses():
    target = (116.404, 39.915)
    ours = gcj02_to_wgs84(*target)
    assert max_error(*wgs84_to_gcj02(*ours), *target) < 1e-10
    assert max_error(*wgs84_to_gcj02(*ONE_STEP_GCJ_TO_WGS), *target) > 1e-7
    assert max_error(*ours, *ONE_STEP_GCJ_TO_WGS) > 1e-7


def test_bd09_inverse_lands_where_the_published_one_step_inverse_misses():
    target = (116.404, 39.915)
    ours = bd09_to_gcj02(*target)
    assert max_error(*gcj02_to_bd09(*ours), *target) < 1e-10
    assert max_error(*gcj02_to_bd09(*ONE_STEP_BD_TO_GCJ), *target) > 1e-7
    assert max_error(*ours, *ONE_STEP_BD_TO_GCJ) > 1e-7


@pytest.mark.parametrize("sample", SAMPLES)
def test_gcj02_inverse_is_orders_better_than_the_one_step_inverse(sample):
    lon, lat = SAMPLES[sample]
    gcj_lon, gcj_lat = wgs84_to_gcj02(lon, lat)
    # One step: subtract the shift found at the GCJ-02 point, g - (F(g) - g).
    fwd_lon, fwd_lat = wgs84_to_gcj02(gcj_lon, gcj_lat)
    naive = max_error(2 * gcj_lon - fwd_lon, 2 * gcj_lat - fwd_lat, lon, lat)
    ours = max_error(*gcj02_to_wgs84(gcj_lon, gcj_lat), lon, lat)
    assert naive > 1e-6  # the approximation really is off by metres somewhere in the sample
    assert ours < 1e-8
    assert ours < naive / 1000


@pytest.mark.parametrize("sample", SAMPLES)
def test_iterative_inverses_reach_1e_9_degrees(sample):
    lon, lat = SAMPLES[sample]
    assert max_error(*gcj02_to_wgs84(*wgs84_to_gcj02(lon, lat)), lon, lat) < INVERSE_BAR
    assert max_error(*bd09_to_gcj02(*gcj02_to_bd09(lon, lat)), lon, lat) < INVERSE_BAR
    assert max_error(*bd09_to_wgs84(*wgs84_to_bd09(lon, lat)), lon, lat) < INVERSE_BAR
    # and they are right inverses too: arbitrary offset coordinates re-encode to themselves
    assert max_error(*wgs84_to_gcj02(*gcj02_to_wgs84(lon, lat)), lon, lat) < INVERSE_BAR
    assert max_error(*gcj02_to_bd09(*bd09_to_gcj02(lon, lat)), lon, lat) < INVERSE_BAR


def test_inverse_converges_at_the_nondifferentiable_meridian_105e():
    # The GCJ-02 shift contains sqrt(|lon - 105|): the iteration must still settle there.
    lon = 105.0 + np.array([0.0, 1e-15, -1e-13, 1e-12, -1e-10, 1e-8, -1e-6])
    lat = np.full(lon.shape, 30.0)
    assert max_error(*gcj02_to_wgs84(*wgs84_to_gcj02(lon, lat)), lon, lat) < INVERSE_BAR


def test_inverse_iteration_guard_raises_instead_of_returning_unconverged(monkeypatch):
    monkeypatch.setattr(crs, "_INVERSE_MAX_ITERATIONS", 1)
    with pytest.raises(CrsError, match="did not converge"):
        gcj02_to_wgs84(*SAMPLES["china"])


def test_inverse_passes_non_finite_input_through():
    lon, lat = gcj02_to_wgs84([np.nan, 120.0], [30.0, np.inf])
    assert np.isnan(lon[0]) and lat[0] == 30.0
    assert lon[1] == 120.0 and np.isinf(lat[1])


# --- outside China -----------------------------------------------------------------------------

OUTSIDE = [
    (0.0, 0.0),
    (-122.4194, 37.7749),  # San Francisco
    (139.6917, 35.6895),  # Tokyo: east of 137.8347
    (100.0, 60.0),  # north of 55.8271
    (110.0, 0.5),  # south of 0.8293
    (72.0039, 30.0),  # just west of 72.004
]
OFFSET_FUNCTIONS = [
    wgs84_to_gcj02,
    gcj02_to_wgs84,
    gcj02_to_bd09,
    bd09_to_gcj02,
    wgs84_to_bd09,
    bd09_to_wgs84,
]


def test_out_of_china_marks_the_published_rectangle():
    lon = np.array([p[0] for p in OUTSIDE] + [72.004, 137.8347, 119.0, 100.0, 100.0])
    lat = np.array([p[1] for p in OUTSIDE] + [30.0, 30.0, 31.5, 0.8293, 55.8271])
    expected = np.array([True] * len(OUTSIDE) + [False] * 5)
    np.testing.assert_array_equal(out_of_china(lon, lat), expected)


@pytest.mark.parametrize("offset", OFFSET_FUNCTIONS, ids=lambda f: f.__name__)
def test_points_outside_china_pass_through_unchanged(offset):
    lon = np.array([p[0] for p in OUTSIDE] + [119.0])
    lat = np.array([p[1] for p in OUTSIDE] + [31.5])
    out_lon, out_lat = offset(lon, lat)
    np.testing.assert_array_equal(out_lon[:-1], lon[:-1])
    np.testing.assert_array_equal(out_lat[:-1], lat[:-1])
    assert out_lon[-1] != lon[-1] and out_lat[-1] != lat[-1]  # the district point does move


def test_offset_functions_do_not_modify_their_input():
    lon, lat = district_grid()
    before = lon.copy(), lat.copy()
    for offset in OFFSET_FUNCTIONS:
        offset(lon, lat)
    np.testing.assert_array_equal(lon, before[0])
    np.testing.assert_array_equal(lat, before[1])


# --- published control values: CGCS2000 Gauss-Krüger --------------------------------------------


def test_gauss_kruger_reproduces_published_cgcs2000_worked_example():
    # MagicCrazyMan/GeodeticCalculation, test/club/magiccrazyman/geodetic/core/coordinatesystem/
    # projection/GaussKrugerProjectionCoordinateSystemTest.java (CGCS2000 3-degree CM 111E):
    # B = 30°45'25.4425", L = 111°17'58.3596" -> x (north) = 3404079.3582, y (east) = 528680.0889.
    # https://github.com/MagicCrazyMan/GeodeticCalculation
    lon, lat = dms(111, 17, 58.3596), dms(30, 45, 25.4425)
    east, north = transform(lon, lat, CGCS2000, 4546)  # CGCS2000 / 3-degree GK CM 111E
    assert float(east) == pytest.approx(528680.0889, abs=MM)
    assert float(north) == pytest.approx(3404079.3582, abs=MM)
    # the same point with the zone number prefixed (zone 37, EPSG:4525)
    east, north = transform(lon, lat, CGCS2000, 4525)
    assert float(east) == pytest.approx(37_528_680.0889, abs=MM)
    assert float(north) == pytest.approx(3404079.3582, abs=MM)


def test_gauss_kruger_inverse_reproduces_published_cgcs2000_worked_example():
    # Same source, the reverse case: x = 3404762.7444, y = 624430.6672 in CM 111E ->
    # L = 112°17'58.3596", B = 30°45'25.4425" (0.0001" = 2.8e-8°; the 0.1 mm of the input ~1e-9°).
    lon, lat = transform(624430.6672, 3404762.7444, 4546, CGCS2000)
    assert float(lon) == pytest.approx(dms(112, 17, 58.3596), abs=2e-8)
    assert float(lat) == pytest.approx(dms(30, 45, 25.4425), abs=2e-8)


# OSGeo/PROJ test/gie/builtins.gie, "Transverse Mercator", operation +proj=tmerc +ellps=GRS80:
# accept 2 1 -> expect 222650.796795778 110642.229411927 (tolerance 0.1 mm), and the mirrored
# cases. https://github.com/OSGeo/PROJ/blob/master/test/gie/builtins.gie
# The CGCS2000 ellipsoid has the GRS80 geometry (a = 6378137 m, 1/f = 298.257222101) and the GK
# zones are that TM with k0 = 1 about their CM, so 2° east of 120°E at 1°N is the same point.
PROJ_TMERC_GRS80 = [
    ((122.0, 1.0), (222650.796795778, 110642.229411927)),
    ((122.0, -1.0), (222650.796795778, -110642.229411927)),
    ((118.0, 1.0), (-222650.796795778, 110642.229411927)),
    ((118.0, -1.0), (-222650.796795778, -110642.229411927)),
]


@pytest.mark.parametrize("lonlat, xy", PROJ_TMERC_GRS80)
def test_gauss_kruger_120e_reproduces_proj_tmerc_test_data(lonlat, xy):
    east, north = transform(*lonlat, CGCS2000, GK_120E)
    assert float(east) == pytest.approx(500_000.0 + xy[0], abs=1e-4)
    assert float(north) == pytest.approx(xy[1], abs=1e-4)
    east, north = transform(*lonlat, CGCS2000, GK_ZONE_40)
    assert float(east) == pytest.approx(40_500_000.0 + xy[0], abs=1e-4)
    assert float(north) == pytest.approx(xy[1], abs=1e-4)
    lon, lat = transform(500_000.0 + xy[0], xy[1], GK_120E, CGCS2000)
    assert max_error(lon, lat, *lonlat) < 1e-9


def cgcs2000_meridian_arc(lat_deg: np.ndarray) -> np.ndarray:
    """Meridian arc from the equator, by 64-point Gauss-Legendre quadrature of M(φ) = a(1-e²)/W³.

    CGCS2000 defining constants (State Bureau of Surveying and Mapping, 2008 announcement of
    CGCS2000): a = 6378137 m, f = 1/298.257222101. Independent of PROJ and of its series.
    """
    a = 6378137.0
    f = 1.0 / 298.257222101
    e2 = f * (2.0 - f)
    nodes, weights = np.polynomial.legendre.leggauss(64)
    phi = np.radians(np.atleast_1d(lat_deg))[:, None]
    t = 0.5 * phi * (nodes + 1.0)
    radius = a * (1.0 - e2) / (1.0 - e2 * np.sin(t) ** 2) ** 1.5
    return (0.5 * phi[:, 0]) * (radius * weights).sum(axis=1)


def test_central_meridian_maps_to_false_easting_and_meridian_arc():
    # Independent property of Gauss-Krüger: on the CM, easting is the false easting exactly
    # (500 000 m, or zone*1e6 + 500 000 prefixed) and northing is the meridian arc length.
    lat = np.linspace(DISTRICT[2], DISTRICT[3], 25)
    arc = cgcs2000_meridian_arc(lat)
    east, north = transform(np.full(lat.shape, 120.0), lat, CGCS2000, GK_120E)
    assert np.max(np.abs(east - 500_000.0)) < 1e-6
    assert np.max(np.abs(north - arc)) < MM
    east, north = transform(np.full(lat.shape, 120.0), lat, CGCS2000, GK_ZONE_40)
    assert np.max(np.abs(east - 40_500_000.0)) < 1e-6
    assert np.max(np.abs(north - arc)) < MM


def test_meridian_arc_quadrature_matches_the_published_quarter_meridian():
    # Guards the helper above: the GRS80 quarter meridian is 10 001 965.7293 m (Moritz, "Geodetic
    # Reference System 1980", Bulletin Géodésique 54 (1980), table of derived constants: Q).
    assert float(cgcs2000_meridian_arc(np.array([90.0]))[0]) == pytest.approx(
        10_001_965.7293, abs=MM
    )


# --- published control values: other Transverse Mercator grids, through the same API -----------


def test_transverse_mercator_reproduces_iogp_guidance_note_example():
    # IOGP Geomatics Guidance Note 7-2 (373-07-02), Transverse Mercator worked example:
    # OSGB 1936 50°30'00"N 00°30'00"E -> British National Grid E 577 274.99 m, N 69 740.50 m.
    # The note computes it with the USGS series formulas and prints centimetres; PROJ's exact
    # Poder/Engsager TM lands 6-8 mm away, so the bar is the centimetre the note publishes.
    east, north = transform(0.5, 50.5, 4277, 27700)
    assert float(east) == pytest.approx(577_274.99, abs=0.01)
    assert float(north) == pytest.approx(69_740.50, abs=0.01)


def test_transverse_mercator_reproduces_ordnance_survey_example():
    # Ordnance Survey, "A guide to coordinate systems in Great Britain", Annex C worked example:
    # 52°39'27.2531"N 1°43'4.5177"E (OSGB 1936) -> E 651 409.903 m, N 313 177.270 m.
    east, north = transform(dms(1, 43, 4.5177), dms(52, 39, 27.2531), 4277, 27700)
    assert float(east) == pytest.approx(651_409.903, abs=MM)
    assert float(north) == pytest.approx(313_177.270, abs=MM)


# --- published control values: Web Mercator -----------------------------------------------------


def test_web_mercator_reproduces_iogp_pseudo_mercator_example():
    # IOGP Guidance Note 7-2, Popular Visualisation Pseudo Mercator (EPSG method 1024) example,
    # transcribed in the EPSG dataset (https://epsg.io/1024-method): 24°22'54.433"N
    # 100°20'00.000"W -> E -11 169 055.58 m, N 2 800 000.00 m (given to the centimetre).
    east, north = transform(dms(-100, 20, 0.0), dms(24, 22, 54.433), WGS84, WEB_MERCATOR)
    assert float(east) == pytest.approx(-11_169_055.58, abs=0.005)
    assert float(north) == pytest.approx(2_800_000.00, abs=0.005)


def test_web_mercator_inverse_reproduces_iogp_pseudo_mercator_example():
    # Same source, reverse case "for a point 10 km north on the grid": E -11 169 055.58 m,
    # N 2 810 000.00 m -> 24°27'48.889"N 100°20'00.000"W (0.001" = 2.8e-7°).
    lon, lat = transform(-11_169_055.58, 2_810_000.00, WEB_MERCATOR, WGS84)
    assert float(lon) == pytest.approx(dms(-100, 20, 0.0), abs=1.4e-7)
    assert float(lat) == pytest.approx(dms(24, 27, 48.889), abs=1.4e-7)


def test_web_mercator_reproduces_gcoord_value():
    # hujiulong/gcoord test/unit/crs/WGS84.spec.ts: WGS84 [123, 45] -> EPSG3857
    # [13692297.367572648, 5621521.486192066].
    east, north = transform(123.0, 45.0, CGCS2000, WEB_MERCATOR)
    assert float(east) == pytest.approx(13_692_297.367572648, abs=MM)
    assert float(north) == pytest.approx(5_621_521.486192066, abs=MM)
    # and the antimeridian is half the world width, π·6378137 = 20 037 508.342789244 m
    east, _ = transform(180.0, 0.0, CGCS2000, WEB_MERCATOR)
    assert float(east) == pytest.approx(20_037_508.342789244, abs=MM)


# --- CGCS2000 <-> WGS 84 ------------------------------------------------------------------------


@pytest.mark.parametrize("sample", SAMPLES)
def test_cgcs2000_and_wgs84_are_coincident(sample):
    # No published CGCS2000 -> WGS 84 control values exist for this: PROJ has no EPSG
    # transformation between them and uses a "ballpark" null transformation
    # (https://proj.org/en/stable/glossary.html, "Ballpark transformation"); the frames agree to
    # centimetres. The checkable property is that coordinates are carried over unchanged.
    lon, lat = SAMPLES[sample]
    out_lon, out_lat = transform(lon, lat, CGCS2000, WGS84)
    np.testing.assert_array_equal(out_lon, lon)
    np.testing.assert_array_equal(out_lat, lat)
    out_lon, out_lat = transform(lon, lat, WGS84, CGCS2000)
    np.testing.assert_array_equal(out_lon, lon)
    np.testing.assert_array_equal(out_lat, lat)


# --- offsets composed with PROJ -----------------------------------------------------------------


@pytest.mark.parametrize("wgs, gcj", EVILTRANSFORM)
def test_projected_to_gcj02_goes_through_wgs84(wgs, gcj):
    zone = gauss_kruger_epsg(wgs[0])
    east, north = transform(*wgs, WGS84, zone)
    lon, lat = transform(east, north, zone, GCJ02)
    assert max_error(lon, lat, *gcj) < INVERSE_BAR
    east2, north2 = transform(*gcj, GCJ02, zone)
    assert max_error(east2, north2, east, north) < MM


def test_transform_between_offsets_is_the_baidu_offset_alone():
    lon, lat = transform(*WANDERGIS_GCJ_BD[0], "GCJ-02", "BD-09")
    assert max_error(lon, lat, *WANDERGIS_GCJ_BD[1]) < FULL_PRECISION
    lon, lat = transform(*COORDTRANSFORM_RS_WGS_BD[0], "EPSG:4326", BD09)
    assert max_error(lon, lat, *COORDTRANSFORM_RS_WGS_BD[1]) < FULL_PRECISION


# --- round trips --------------------------------------------------------------------------------

PAIRS = [
    (CGCS2000, WGS84),
    (CGCS2000, GK_120E),
    (CGCS2000, GK_ZONE_40),
    (CGCS2000, WEB_MERCATOR),
    (WGS84, GCJ02),
    (GCJ02, BD09),
    (WGS84, BD09),
    (GK_120E, GCJ02),
]


def _start(sample: str, ref) -> tuple[np.ndarray, np.ndarray]:
    """The sample expressed in `ref`: degrees as drawn, or projected from CGCS2000 for metres."""
    lon, lat = SAMPLES[sample]
    return (lon, lat) if is_geographic(ref) else transform(lon, lat, CGCS2000, ref)


@pytest.mark.parametrize("sample", SAMPLES)
@pytest.mark.parametrize("a, b", PAIRS, ids=lambda r: str(r))
def test_round_trip_returns_the_start_point(sample, a, b):
    for src, dst in ((a, b), (b, a)):
        x, y = _start(sample, src)
        back_x, back_y = transform(*transform(x, y, src, dst), dst, src)
        tolerance = ROUND_TRIP_BAR if is_geographic(src) else MM
        assert max_error(back_x, back_y, x, y) < tolerance, (src, dst)


# --- API shape ----------------------------------------------------------------------------------


def test_transform_returns_arrays_shaped_like_the_input():
    lon, lat = transform(119.0, 31.5, CGCS2000, GK_120E)
    assert isinstance(lon, np.ndarray) and lon.shape == () and lon.dtype == np.float64
    lon, lat = transform([119.0, 119.1], [31.5, 31.6], CGCS2000, GCJ02)
    assert lon.shape == (2,) and lat.shape == (2,)
    grid = np.full((3, 4), 119.0), np.full((3, 4), 31.5)
    lon, lat = transform(*grid, GCJ02, GK_120E)
    assert lon.shape == (3, 4)


def test_transform_does_not_modify_its_input_and_copies_on_identity():
    lon, lat = district_grid()
    before = lon.copy()
    same_lon, _ = transform(lon, lat, CGCS2000, CGCS2000)
    assert same_lon is not lon
    transform(lon, lat, GCJ02, GK_120E)
    np.testing.assert_array_equal(lon, before)


def test_transform_rejects_unknown_crs():
    with pytest.raises(CrsError):
        transform(119.0, 31.5, CGCS2000, "wgs-1984-ish")
    with pytest.raises(CrsError):
        transform(119.0, 31.5, 999_999, CGCS2000)


# --- parse_crs and predicates -------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        (4490, 4490),
        ("4490", 4490),
        ("EPSG:4490", 4490),
        ("epsg:4490", 4490),
        (" EPSG:4549 ", 4549),
        ("urn:ogc:def:crs:EPSG::4490", 4490),
        ("http://www.opengis.net/def/crs/EPSG/0/4490", 4490),
        ("https://www.opengis.net/def/crs/EPSG/0/3857", 3857),
        ("http://www.opengis.net/def/crs/OGC/1.3/CRS84", 4326),
        ("CRS84", 4326),
        (np.int64(4528), 4528),
        ("gcj02", "gcj02"),
        ("GCJ-02", "gcj02"),
        ("gcj-02", "gcj02"),
        ("GCJ02", "gcj02"),
        ("bd09", "bd09"),
        ("BD-09", "bd09"),
    ],
)
def test_parse_crs_accepts_the_documented_forms(value, expected):
    assert parse_crs(value) == expected


@pytest.mark.parametrize(
    "value",
    ["EPSG:999999", 999_999, "foo", "", "EPSG:", "gcj", "wgs84", 0, -4326, True, 4490.0, None],
)
def test_parse_crs_rejects_other_values_and_says_what_is_accepted(value):
    with pytest.raises(CrsError) as raised:
        parse_crs(value)
    message = str(raised.value)
    assert "EPSG:4490" in message and "CRS84" in message and "gcj02" in message
    assert "bd09" in message
    assert isinstance(raised.value, ValueError)


@pytest.mark.parametrize(
    "ref, expected",
    [(4490, True), (4326, True), ("gcj02", True), ("bd09", True), ("CRS84", True)]
    + [(4549, False), (4528, False), (3857, False)],
)
def test_is_geographic(ref, expected):
    assert is_geographic(ref) is expected


@pytest.mark.parametrize(
    "ref, expected",
    [(4513, True), (4528, True), (4533, True), (4534, True), (4549, True), (4554, True)]
    + [("EPSG:4549", True), (4512, False), (4555, False), (4490, False), (3857, False)]
    + [("gcj02", False)],
)
def test_is_gauss_kruger_covers_exactly_the_3_degree_zones(ref, expected):
    # 4512 is the 6-degree "CGCS2000 / Gauss-Kruger CM 135E"; 4555 is "New Beijing".
    assert is_gauss_kruger(ref) is expected


# --- Gauss-Krüger zone lookup -------------------------------------------------------------------


@pytest.mark.parametrize(
    "lon, unprefixed, prefixed",
    [
        (75.0, 4534, 4513),
        (119.0, 4549, 4528),
        (135.0, 4554, 4533),
        (73.5, 4534, 4513),
        (136.5, 4554, 4533),
        (118.5, 4549, 4528),  # DOMAIN.md: west of 118.5°E is the CM 117°E zone
        (118.4999, 4548, 4527),
        (119.237, 4549, 4528),
    ],
)
def test_gauss_kruger_epsg_for_longitudes(lon, unprefixed, prefixed):
    assert gauss_kruger_epsg(lon) == unprefixed
    assert gauss_kruger_epsg(lon, prefixed=True) == prefixed


@pytest.mark.parametrize("zone", range(25, 46))
def test_gauss_kruger_epsg_agrees_with_the_epsg_registry(zone):
    # The registry (via PROJ's database) names each code and fixes its CM and false easting.
    cm = 3 * zone
    for code, name, false_easting in (
        (gauss_kruger_epsg(cm), f"CGCS2000 / 3-degree Gauss-Kruger CM {cm}E", 500_000.0),
        (
            gauss_kruger_epsg(cm, prefixed=True),
            f"CGCS2000 / 3-degree Gauss-Kruger zone {zone}",
            zone * 1_000_000.0 + 500_000.0,
        ),
    ):
        definition = pyproj.CRS.from_epsg(code)
        params = {p.name: p.value for p in definition.coordinate_operation.params}
        assert definition.name == name
        assert params["Longitude of natural origin"] == cm
        assert params["False easting"] == false_easting


@pytest.mark.parametrize("lon", [73.4, 136.6, -119.0, math.nan, math.inf])
def test_gauss_kruger_epsg_rejects_longitudes_outside_china(lon):
    with pytest.raises(CrsError, match="73.5"):
        gauss_kruger_epsg(lon)


# --- GeoDataFrames and geometries ---------------------------------------------------------------


def _gcj_frame(crs_label=4326) -> geopandas.GeoDataFrame:
    """Amap-style data: GCJ-02 coordinates, labelled EPSG:4326 as such files are."""
    (_, sh), (_, sz), (_, bj) = EVILTRANSFORM
    return geopandas.GeoDataFrame(
        {"name": ["shanghai", "route", "triangle", "beijing_3d"]},
        geometry=[
            Point(sh),
            LineString([sh, sz, bj]),
            Polygon([sh, sz, bj, sh]),
            Point(bj[0], bj[1], 12.5),
        ],
        crs=crs_label,
    )


def _published_wgs_frame_coordinates() -> list[np.ndarray]:
    (sh, _), (sz, _), (bj, _) = EVILTRANSFORM
    return [np.array([sh]), np.array([sh, sz, bj]), np.array([sh, sz, bj, sh]), np.array([bj])]


def test_to_crs_moves_gcj02_points_lines_and_polygons_to_cgcs2000():
    frame = _gcj_frame()
    out = to_crs(frame, CGCS2000, src=GCJ02)
    assert out.crs == pyproj.CRS.from_epsg(4490)
    assert list(out["name"]) == list(frame["name"])
    for geom, expected in zip(out.geometry, _published_wgs_frame_coordinates(), strict=True):
        coords = shapely.get_coordinates(geom)
        assert np.max(np.abs(coords - expected)) < INVERSE_BAR
    assert out.geometry.iloc[3].has_z and out.geometry.iloc[3].z == 12.5
    assert not out.geometry.iloc[2].has_z
    # the input frame is left alone
    assert shapely.get_coordinates(frame.geometry.iloc[0])[0, 0] == EVILTRANSFORM[0][1][0]


def test_to_crs_round_trip_back_to_gcj02_is_labelled_wgs84():
    frame = _gcj_frame()
    back = to_crs(to_crs(frame, "EPSG:4490", src="gcj02"), "gcj02")
    assert back.crs == pyproj.CRS.from_epsg(4326)
    assert shapely.equals_exact(back.geometry.values, frame.geometry.values, tolerance=1e-10).all()


def test_to_crs_uses_the_frame_label_when_src_is_not_given():
    frame = _gcj_frame(crs_label=4490)
    out = to_crs(frame, GK_120E)
    expected = frame.to_crs(epsg=GK_120E)  # geopandas' own PROJ path, independent of ours
    assert out.crs == pyproj.CRS.from_epsg(GK_120E)
    assert shapely.equals_exact(out.geometry.values, expected.geometry.values, tolerance=MM).all()


def test_to_crs_without_any_crs_asks_for_src():
    frame = _gcj_frame(crs_label=None)
    with pytest.raises(CrsError, match="src="):
        to_crs(frame, CGCS2000)
    assert to_crs(frame, CGCS2000, src=GCJ02).crs == pyproj.CRS.from_epsg(4490)


def test_transform_geometry_moves_every_vertex():
    (_, sh), (_, sz), (_, bj) = EVILTRANSFORM
    polygon = transform_geometry(Polygon([sh, sz, bj, sh]), "gcj02", 4490)
    expected = _published_wgs_frame_coordinates()[2]
    assert np.max(np.abs(shapely.get_coordinates(polygon) - expected)) < INVERSE_BAR
    point = transform_geometry(Point(119.0, 31.5, 3.0), CGCS2000, GK_120E)
    assert point.has_z and point.z == 3.0
    back = transform_geometry(point, GK_120E, CGCS2000)
    assert max_error(back.x, back.y, 119.0, 31.5) < ROUND_TRIP_BAR
