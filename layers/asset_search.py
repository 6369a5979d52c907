"""Finding idle assets (存量资产检索): the investment staff's filters and the Chinese text search,
turned into conditions on the ``assets`` layer that the read plan then narrows further.

The search never decides who sees what: :mod:`layers.features` serves the rows and fields the
caller's read plan allows (the public: promoted assets, no internal field) and this module only
adds conditions and an order. Text search is a substring match on the asset's public text (name,
description, suggested use — the trigram index of migration 0015 serves it), on the Chinese of its
category and land-use class, and on the names of its community and street, every term required;
so 厂房 finds 闲置厂房 and 标准厂房, and 东屏 厂房 finds the workshops in 东屏. Hits are ranked by
trigram similarity to the whole query.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

import shapely
from shapely import wkt as shapely_wkt
from sqlalchemy import bindparam, text

from geo.crs import CGCS2000
from geo.errors import BadRequest
from geo.models.idle_assets import ASSET_CATEGORIES, ASSET_STATUSES, SEARCH_TEXT
from layers.vocabulary import VALUE_ZH

#: the sort keys a caller may ask for, and the column each sorts on ("-" first: descending)
SORTS = {
    "relevance": None,
    "distance": None,
    "code": "code",
    "land_area": "land_area_m2",
    "floor_area": "floor_area_m2",
    "available": "available_from",
    "views": "page_views",
    "name": "name",
}
MAX_TERMS = 8
MAX_TERM = 40
MAX_VERTICES = 2000
MAX_DISTANCE_M = 50_000


@dataclass
class AssetSearch:
    """What a caller asked of the register, as plain values (checked by :func:`parse`)."""

    q: str | None = None
    category: list[str] = field(default_factory=list)
    status: list[str] = field(default_factory=list)
    street: str | None = None  # a street's (or town's) code or name
    land_min: float | None = None
    land_max: float | None = None
    floor_min: float | None = None
    floor_max: float | None = None
    landuse: list[str] = field(default_factory=list)
    available_by: date | None = None
    within: object | None = None  # a shapely polygon in lon/lat (CGCS2000 / CRS84)
    near: tuple[float, float] | None = None  # lon, lat
    distance_m: float | None = None
    sort: str = "code"
    descending: bool = False


def _many(values: list[str] | None, allowed: tuple[str, ...], what: str) -> list[str]:
    out: list[str] = []
    for value in values or []:
        for one in value.split(","):
            one = one.strip()
            if not one:
                continue
            if one not in allowed:
                zh = {v: k for k, v in VALUE_ZH.get(what, {}).items()}
                if one in zh and zh[one] in allowed:
                    one = zh[one]
                else:
                    raise BadRequest(f"{what}={one!r} is not one of {', '.join(allowed)}")
            out.append(one)
    return out


def _polygon(value: str):
    """A drawn area as WKT or GeoJSON, in lon/lat: one valid polygon (or multipolygon)."""
    value = value.strip()
    try:
        read = shapely.from_geojson if value.startswith("{") else shapely_wkt.loads
        geom = read(value)
    except Exception as exc:  # shapely raises several kinds for bad text
        raise BadRequest(
            "within must be a polygon as WKT (POLYGON((lon lat, …))) or GeoJSON, in lon/lat"
        ) from exc
    if geom.geom_type not in ("Polygon", "MultiPolygon") or geom.is_empty:
        raise BadRequest(f"within must be a polygon, not a {geom.geom_type}")
    if shapely.get_num_coordinates(geom) > MAX_VERTICES:
        raise BadRequest(f"within has more than {MAX_VERTICES} vertices: simplify the area")
    minx, miny, maxx, maxy = geom.bounds
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise BadRequest("within must be in longitude/latitude degrees (CRS84 / CGCS2000)")
    if not geom.is_valid:
        raise BadRequest(f"within is not a valid polygon: {shapely.is_valid_reason(geom)}")
    return geom


def _number(value: str | None, what: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except ValueError as exc:
        raise BadRequest(f"{what} must be a number of square metres") from exc
    if not 0 <= number < 1e12:
        raise BadRequest(f"{what} must lie between 0 and 10¹²")
    return number


def parse(
    q: str | None = None,
    category: list[str] | None = None,
    status: list[str] | None = None,
    street: str | None = None,
    land_min: str | None = None,
    land_max: str | None = None,
    floor_min: str | None = None,
    floor_max: str | None = None,
    landuse: list[str] | None = None,
    available_by: str | None = None,
    within: str | None = None,
    near: str | None = None,
    distance: str | None = None,
    sort: str | None = None,
) -> AssetSearch:
    """The query parameters checked one by one; a bad one is a 400 that says what to give."""
    s = AssetSearch()
    if q:
        terms = q.split()
        if len(terms) > MAX_TERMS or any(len(t) > MAX_TERM for t in terms):
            raise BadRequest(f"q holds at most {MAX_TERMS} words of {MAX_TERM} characters")
        if any(ord(c) < 32 for c in q):
            raise BadRequest("q holds control characters")
        s.q = " ".join(terms) or None
    s.category = _many(category, ASSET_CATEGORIES, "category")
    s.status = _many(status, ASSET_STATUSES, "status")
    s.landuse = [v.strip() for one in landuse or [] for v in one.split(",") if v.strip()]
    for code in s.landuse:
        if not re.fullmatch(r"[0-9]{2}([0-9H][0-9])?", code):
            raise BadRequest(f"landuse={code!r} is not a GB/T 21010 class code such as 0601")
    if street:
        if len(street) > 50 or any(ord(c) < 32 for c in street):
            raise BadRequest("street is a street's code or name")
        s.street = street.strip()
    s.land_min, s.land_max = _number(land_min, "land_min"), _number(land_max, "land_max")
    s.floor_min, s.floor_max = _number(floor_min, "floor_min"), _number(floor_max, "floor_max")
    for low, high, what in ((s.land_min, s.land_max, "land"), (s.floor_min, s.floor_max, "floor")):
        if low is not None and high is not None and low > high:
            raise BadRequest(f"{what}_min exceeds {what}_max")
    if available_by:
        try:
            s.available_by = date.fromisoformat(available_by)
        except ValueError as exc:
            raise BadRequest("available_by is a date: YYYY-MM-DD") from exc
    if within:
        s.within = _polygon(within)
    if near:
        try:
            lon, lat = (float(v) for v in near.split(","))
        except ValueError as exc:
            raise BadRequest("near is a point: lon,lat") from exc
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise BadRequest("near is lon,lat in degrees")
        s.near = (lon, lat)
        s.distance_m = _number(distance, "distance") if distance else 1000.0
        if not 0 < s.distance_m <= MAX_DISTANCE_M:
            raise BadRequest(f"distance is in metres, above 0 and at most {MAX_DISTANCE_M:,}")
    elif distance:
        raise BadRequest("distance needs near=lon,lat: the point to measure from")
    sort = (sort or ("relevance" if s.q else "distance" if s.near else "code")).strip()
    s.descending = sort.startswith("-")
    s.sort = sort.lstrip("-+")
    if s.sort not in SORTS:
        raise BadRequest(f"sort is one of {', '.join(SORTS)} (with - first: descending)")
    if s.sort == "relevance" and not s.q:
        raise BadRequest("sort=relevance needs q: the words to rank by")
    if s.sort == "distance" and not s.near:
        raise BadRequest("sort=distance needs near=lon,lat")
    return s


def _point():
    return text(f"ST_SetSRID(ST_MakePoint(:near_lon, :near_lat), {CGCS2000})")


def conditions(s: AssetSearch) -> tuple[list, list, list[tuple[str, bool]]]:
    """The search as SQL conditions, leading order terms, and plain column sorts."""
    where: list = []
    if s.category:
        where.append(
            text("category IN :categories").bindparams(
                bindparam("categories", s.category, expanding=True)
            )
        )
    if s.status:
        where.append(
            text("status IN :statuses").bindparams(bindparam("statuses", s.status, expanding=True))
        )
    if s.landuse:
        where.append(
            text("landuse_code IN :landuse").bindparams(
                bindparam("landuse", s.landuse, expanding=True)
            )
        )
    if s.street:
        where.append(
            text("""left(area_code, 9) IN (
                        SELECT left(code, 9) FROM admin_areas WHERE level = 2
                        AND (code = :street OR name = :street OR left(code, 9) = :street))""").bindparams(
                street=s.street
            )
        )
    bounds = (
        ("land_area_m2 >= :land_min", "land_min", s.land_min),
        ("land_area_m2 <= :land_max", "land_max", s.land_max),
        ("floor_area_m2 >= :floor_min", "floor_min", s.floor_min),
        ("floor_area_m2 <= :floor_max", "floor_max", s.floor_max),
    )
    for sql, name, value in bounds:
        if value is not None:
            where.append(text(sql).bindparams(**{name: value}))
    if s.available_by:
        where.append(
            text("available_from IS NOT NULL AND available_from <= :available_by").bindparams(
                available_by=s.available_by
            )
        )
    if s.within is not None:
        where.append(
            text(f"ST_Intersects(geom, ST_GeomFromText(:within, {CGCS2000}))").bindparams(
                within=s.within.wkt
            )
        )
    if s.near:
        lon, lat = s.near
        where.append(
            text(f"ST_DWithin(geom::geography, ({_point().text})::geography, :near_m)").bindparams(
                near_lon=lon, near_lat=lat, near_m=s.distance_m
            )
        )
    if s.q:
        for i, term in enumerate(s.q.split()):
            where.append(_term(term, i))
    order: list = []
    sorts: list[tuple[str, bool]] = []
    direction = "DESC" if s.descending else "ASC"
    if s.sort == "relevance":
        flipped = "ASC" if s.descending else "DESC"
        order.append(text(f"similarity({SEARCH_TEXT}, :rank_q) {flipped}").bindparams(rank_q=s.q))
    elif s.sort == "distance":
        lon, lat = s.near
        order.append(
            text(
                f"ST_Distance(geom::geography, ({_point().text})::geography) {direction}"
            ).bindparams(near_lon=lon, near_lat=lat)
        )
    else:
        sorts.append((SORTS[s.sort], not s.descending))
    return where, order, sorts


def _like(term: str) -> str:
    return "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _term(term: str, i: int):
    """One search word: in the asset's text, its category's or land use's Chinese, or the name
    of its community or street."""
    categories = [
        k for k, zh in VALUE_ZH["category"].items() if k in ASSET_CATEGORIES and term in zh
    ]
    landuses = [k for k, zh in VALUE_ZH["landuse_code"].items() if term in zh]
    return text(
        f"""({SEARCH_TEXT} ILIKE :t{i}
             OR category = ANY(:c{i}) OR landuse_code = ANY(:u{i})
             OR area_code IN (SELECT c.code FROM admin_areas c
                              LEFT JOIN admin_areas s ON s.code = c.parent_code
                              WHERE c.level = 3 AND (c.name ILIKE :t{i} OR s.name ILIKE :t{i})))"""
    ).bindparams(**{f"t{i}": _like(term), f"c{i}": categories, f"u{i}": landuses})
