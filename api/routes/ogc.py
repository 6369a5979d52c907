"""OGC API – Features: landing page, conformance, collections, items, one item, queryables.

Thin: parse the request into an :class:`~layers.features.ItemQuery`, call ``layers.features``,
write JSON/GeoJSON or the HTML page. Personal data is masked there, by role.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from api.deps import Caller, DbConnection, Format, Read, Reading
from api.html import STATIC, base_url, render, wants_html
from geo.errors import BadRequest
from geo.policy import audit
from geo.policy.district_scope import narrowed
from geo.settings import STORAGE_SRID
from layers import departments, exports
from layers import features as F
from layers.catalogue import OPENING_ZH, SHARING_ZH, Layer, get_layer, list_layers
from layers.vocabulary import VALUE_ZH, field_title

router = APIRouter(tags=["OGC API – Features"])
GEOJSON = "application/geo+json"

CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
    "http://www.opengis.net/spec/ogcapi-features-5/1.0/conf/schemas",
    "http://www.opengis.net/spec/ogcapi-features-5/1.0/conf/sortables",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tileset",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tilesets-list",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/geodata-tilesets",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt",
    "http://www.opengis.net/spec/tms/2.0/conf/json-tilematrixset",
]

PURPOSE = "Why you need personal data unmasked; the read is written to the audit log"
DISTRICT = "Only this district's features (6-digit code, e.g. 320118); default: every district you may read"
#: the path parameter as OGC API – Features names it (GDAL looks the items path up by this name)
CollectionId = Annotated[str, Path(alias="collectionId", description="A layer's id")]


def _url(request: Request, path: str = "", **params) -> str:
    base = base_url(request) + path
    params = {k: v for k, v in params.items() if v is not None}
    return base + ("?" + urlencode(params, doseq=True) if params else "")


def _link(request: Request, rel: str, type_: str, title: str, path: str, **params) -> dict:
    return {"rel": rel, "type": type_, "title": title, "href": _url(request, path, **params)}


JSON = "application/json"
HTML = "text/html"
#: the landing page's links: rel, media type, title, path, f
LANDING_LINKS = (
    ("self", JSON, "本页 This document", "/", "json"),
    ("alternate", HTML, "网页 This page as HTML", "/", "html"),
    (
        "service-desc",
        "application/vnd.oai.openapi+json;version=3.1",
        "接口定义 OpenAPI definition",
        "/openapi.json",
        None,
    ),
    ("service-doc", HTML, "接口文档 API documentation", "/docs", None),
    ("conformance", JSON, "符合的标准 Conformance", "/conformance", "json"),
    ("data", JSON, "图层 Collections", "/collections", "json"),
    (
        "http://www.opengis.net/def/rel/ogc/1.0/data",
        JSON,
        "图层 Collections",
        "/collections",
        "json",
    ),
    ("describedby", JSON, "资源目录 Layer catalogue", "/catalog", "json"),
    ("status", JSON, "运行状态 Health", "/health", None),
)


#: answers depend on the caller (masks, rows): caches keep them per user and revalidate each time
REVALIDATE = "private, no-cache"


def conditional(
    request: Request, body: bytes, media_type: str, validator: bytes | None = None, headers=None
) -> Response:
    """The answer with an ETag (over ``validator``, by default the body) and Cache-Control;
    304 Not Modified when the caller already holds it (If-None-Match)."""
    etag = (
        'W/"' + hashlib.sha256(validator if validator is not None else body).hexdigest()[:32] + '"'
    )
    cache = {"ETag": etag, "Cache-Control": REVALIDATE, "Vary": "Authorization, Accept"}
    held = request.headers.get("if-none-match", "")
    if etag in [tag.strip() for tag in held.split(",")] or held.strip() == "*":
        return Response(status_code=304, headers=cache)
    return Response(body, media_type=media_type, headers=(headers or {}) | cache)


def _schema_type(request: Request) -> str:
    """JSON Schema documents as application/schema+json, or as plain JSON to a client that asks
    only for that (GDAL 3.6 refuses any other type for the queryables)."""
    accept = request.headers.get("accept", "")
    return (
        "application/schema+json"
        if "schema+json" in accept or "*/*" in accept or not accept
        else "application/json"
    )


def _json(body, status: int = 200, media_type: str = "application/json") -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=media_type)


# --- landing and conformance -------------------------------------------------------------------


@router.get("/", summary="Landing page")
def landing(request: Request, conn: DbConnection, who: Caller, f: Format = None):
    body = {
        "title": "一张图 onemap · 溧水区",
        "description": "城市一张图空间服务：标准地址、网格、建筑、四实数据、自然资源底图、城市体检、存量资产与城市安全。"
        " The one map of a city district, served as OGC API – Features.",
        "links": [
            _link(request, rel, type_, title, path, f=f_)
            for rel, type_, title, path, f_ in LANDING_LINKS
        ],
    }
    if wants_html(request, f):
        layers = [F.as_seen_by(conn, layer, layer.plan(who)) for layer in list_layers(conn, who)]
        total = sum(layer.feature_count or 0 for layer in layers)
        return render("landing.html", request, landing=body, layers=layers, total=total)
    return _json(body)


@router.get("/conformance", summary="Conformance classes")
def conformance(request: Request, f: Format = None):
    if wants_html(request, f):
        return render("conformance.html", request, conformsTo=CONFORMANCE)
    return _json({"conformsTo": CONFORMANCE})


# --- collections -------------------------------------------------------------------------------


def _collection(request: Request, layer: Layer, temporal: list | None = None) -> dict:
    path = f"/collections/{layer.id}"
    body = {
        "id": layer.id,
        "title": layer.title_zh,
        "description": f"{layer.title_en}. {layer.description or ''}".strip(),
        "itemType": "feature",
        "crs": list(F.OUTPUT_CRS),
        "storageCrs": F.EPSG_URI.format(STORAGE_SRID),
        "links": [
            _link(request, "self", JSON, layer.title_zh, path, f="json"),
            _link(request, "alternate", HTML, "网页 HTML", path, f="html"),
            _link(request, "items", GEOJSON, "要素 Features", path + "/items", f="json"),
            _link(request, "items", HTML, "要素 Features (HTML)", path + "/items", f="html"),
            _link(
                request,
                "http://www.opengis.net/def/rel/ogc/1.0/queryables",
                "application/schema+json",
                "可查询字段 Queryables",
                path + "/queryables",
                f="json",
            ),
            _link(
                request,
                "http://www.opengis.net/def/rel/ogc/1.0/schema",
                "application/schema+json",
                "字段结构 Schema",
                path + "/schema",
                f="json",
            ),
            _link(
                request,
                "describedby",
                "application/schema+json",
                "字段结构 Schema",
                path + "/schema",
            ),
            # the Part 3 drafts' name for the queryables link, which GDAL 3.6 follows
            _link(request, "queryables", JSON, "可查询字段 Queryables", path + "/queryables"),
            _link(
                request,
                "http://www.opengis.net/def/rel/ogc/1.0/sortables",
                "application/schema+json",
                "可排序字段 Sortables",
                path + "/sortables",
                f="json",
            ),
            _link(
                request,
                "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector",
                JSON,
                "矢量瓦片 Vector tiles",
                path + "/tiles",
            ),
        ],
        "x-title-en": layer.title_en,
        "x-department": layer.department,
        "x-feature-count": layer.feature_count,
        "x-geometry-type": layer.geometry_type,
        "x-sharing-level": layer.sharing_level,
        "x-sharing-level-zh": SHARING_ZH.get(layer.sharing_level),
        "x-opening-level": layer.opening_level,
        "x-opening-level-zh": OPENING_ZH.get(layer.opening_level),
        "x-last-loaded": layer.last_loaded.isoformat() if layer.last_loaded else None,
    }
    if layer.time_field:
        # which property ``datetime`` filters on: OGC names it only in the schema and queryables
        # (x-ogc-role primary-instant, Part 5), which a client reads after the collection
        body["x-onemap-datetime-property"] = layer.time_field
    if layer.extent:
        body["extent"] = {"spatial": {"bbox": [layer.extent], "crs": F.CRS84}}
        if temporal:
            body["extent"]["temporal"] = {"interval": [temporal]}
    return body


@router.get("/collections", summary="Every layer you may read, with extent and count")
def collections(r: Read):
    layers = [
        F.as_seen_by(r.conn, layer, layer.plan(r.who)) for layer in list_layers(r.conn, r.who)
    ]
    body = {
        "collections": [_collection(r.request, layer) for layer in layers],
        "links": [
            _link(r.request, "self", JSON, "图层 Collections", "/collections", f="json"),
            _link(r.request, "alternate", HTML, "网页 HTML", "/collections", f="html"),
        ],
    }
    if r.html:
        return render("collections.html", r.request, collections=body["collections"])
    return conditional(r.request, orjson.dumps(body), "application/json")


@router.get("/collections/{collectionId}", summary="One layer: extent, CRSs, links")
def collection(collection_id: CollectionId, r: Read):
    layer = get_layer(r.conn, collection_id, r.who)
    layer = F.as_seen_by(r.conn, layer, layer.plan(r.who))
    body = _collection(r.request, layer, F.time_extent(r.conn, layer))
    if r.html:
        return render("collection.html", r.request, c=body)
    return conditional(r.request, orjson.dumps(body), "application/json")


@router.get(
    "/collections/{collectionId}/queryables", summary="Properties you may filter on (JSON Schema)"
)
def queryables(collection_id: CollectionId, r: Read):
    layer = get_layer(r.conn, collection_id, r.who)
    body = F.queryables(layer, layer.plan(r.who), titles_of(layer, r.conn))
    body["$id"] = _url(r.request, f"/collections/{collection_id}/queryables")
    if r.html:
        first = next((k for k, v in body["properties"].items() if v.get("type") == "string"), "id")
        return render("queryables.html", r.request, schema=body, example=f"{first} LIKE '%溧水%'")
    return _json(body, media_type=_schema_type(r.request))


def titles_of(layer: Layer, conn=None) -> dict[str, str]:
    """Each column's Chinese title: the layer's declaration, else the base vocabulary."""
    declared = departments.field_titles(layer.id, conn)
    return {c["name"]: field_title(c["name"], declared) for c in layer.columns}


@router.get(
    "/collections/{collectionId}/schema",
    summary="The features' schema: every property with its type (Part 5)",
)
def schema(collection_id: CollectionId, r: Read):
    return _schema_document(collection_id, r, "schema", F.schema)


@router.get(
    "/collections/{collectionId}/sortables",
    summary="Properties you may sort by (Part 5)",
)
def sortables(collection_id: CollectionId, r: Read):
    return _schema_document(collection_id, r, "sortables", F.sortables)


def _schema_document(collection_id: str, r: Reading, name: str, build) -> Response:
    """A layer's JSON Schema document (schema, sortables), as the caller's plan shows it."""
    layer = get_layer(r.conn, collection_id, r.who)
    body = build(layer, layer.plan(r.who), titles_of(layer, r.conn))
    body["$id"] = _url(r.request, f"/collections/{collection_id}/{name}")
    if r.html:
        return render("queryables.html", r.request, schema=body, example=None)
    return _json(body, media_type=_schema_type(r.request))


# --- items -------------------------------------------------------------------------------------

#: downloads of a page: format → (media type, file suffix)
DOWNLOADS = {
    "csv": ("text/csv; charset=utf-8", "csv"),
    "gpkg": ("application/geopackage+sqlite3", "gpkg"),
    "folium": ("text/html; charset=utf-8", "html"),
}


def leaflet_assets() -> dict[str, str]:
    """The Leaflet the service serves, for pages that must carry it inside themselves."""
    folder = STATIC / "vendor" / "leaflet"
    return {
        "leaflet.js": (folder / "leaflet.js").read_text(encoding="utf-8"),
        "leaflet.css": (folder / "leaflet.css").read_text(encoding="utf-8"),
    }


def _download(
    layer: Layer, features: list[dict], q: F.ItemQuery, plan, fmt: str, titles: dict[str, str]
) -> Response:
    """The page as a file, written from the features served (masked as the caller sees them)."""
    columns = [c["name"] for c in layer.property_columns(plan)]
    if q.properties is not None:
        columns = [c for c in columns if c in q.properties]
    if fmt == "csv":
        content = exports.to_csv(features, columns, titles)
    elif fmt == "folium":
        content = exports.to_folium(features, layer.title_zh, columns, titles, leaflet_assets())
    else:
        content = exports.to_gpkg(features, layer.id, F.OUTPUT_CRS[q.crs][0])
    media, suffix = DOWNLOADS[fmt]
    disposition = f'attachment; filename="{layer.id}.{suffix}"'
    return Response(content, media_type=media, headers={"Content-Disposition": disposition})


def _items_page(
    request: Request, layer: Layer, fc: dict, q: F.ItemQuery, plan, titles: dict[str, str]
) -> Response:
    """The items as a page: the queryables as a form (Chinese labels, enumerations as choices),
    the box from the map, a page size, the count, downloads; values in Chinese, times local."""
    columns = [
        c["name"]
        for c in layer.property_columns(plan)
        if q.properties is None or c["name"] in q.properties
    ]
    kinds = F.kinds(layer)
    times = {name for name, kind in kinds.items() if kind in ("date", "datetime")}
    form_fields = [
        {
            "name": name,
            "title": titles.get(name, name),
            "choices": sorted(VALUE_ZH.get(name, {}).items()) if name in VALUE_ZH else None,
            "value": (q.equals.get(name) or [None])[0],
        }
        for name in plan.columns
        if name not in plan.masked
        and kinds.get(name) in ("string", "integer", "boolean")
        and (name in VALUE_ZH or name in ("name", "code", "grid_code"))
    ][:8]
    vocabulary = {
        "titles": titles,
        "values": {name: VALUE_ZH[name] for name in columns if name in VALUE_ZH},
    }

    def download_url(fmt: str) -> str:
        query = [(k, v) for k, v in request.query_params.multi_items() if k != "f"]
        return f"{base_url(request)}{request.url.path}?{urlencode(query + [('f', fmt)])}"

    return render(
        "items.html",
        request,
        layer=layer,
        collection=fc,
        columns=columns,
        titles=titles,
        times=times,
        form_fields=form_fields,
        vocabulary=vocabulary,
        limit=q.limit,
        download_url=download_url,
    )


def _bbox(value: str | None) -> tuple[float, float, float, float] | None:
    if value is None:
        return None
    try:
        parts = [float(p) for p in value.split(",")]
    except ValueError as exc:
        raise BadRequest("bbox must be four numbers: minx,miny,maxx,maxy") from exc
    if len(parts) != 4 or any(p != p or p in (float("inf"), float("-inf")) for p in parts):
        raise BadRequest("bbox must be four finite numbers: minx,miny,maxx,maxy")
    return parts[0], parts[1], parts[2], parts[3]


#: an RFC 3339 date-time or full-date; leniently also no offset (UTC), no seconds, a space for T
RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?([Zz]|[+-]\d{2}:\d{2})?)?",
    re.ASCII,
)
#: instants Python cannot hold (year 0000, or 9999-12-31 west of UTC) become its first or last
#: one: no stored time lies before year 1 or after 9999, so the answer is the same
EARLIEST = datetime.min.replace(tzinfo=UTC)
LATEST = datetime.max.replace(tzinfo=UTC)


def _moment(value: str, parts: tuple) -> datetime:
    """The matched parts as a UTC datetime, by hand: ``fromisoformat`` refuses year 0000."""
    year, month, day, hour, minute, second, fraction, zone = parts
    second = int(second or 0)
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    if second == 60:  # a leap second (RFC 3339 allows 60): its last microsecond before it
        second, micro = 59, 999_999
    offset = timedelta(0)
    if zone and zone not in "Zz":
        sign = -1 if zone[0] == "-" else 1
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        if hours > 23 or minutes > 59:
            raise ValueError(value)
        offset = sign * timedelta(hours=hours, minutes=minutes)
    year = int(year)
    shift = 400 if year == 0 else 0  # the Gregorian calendar repeats every 400 years
    local = datetime(
        year + shift, int(month), int(day), int(hour or 0), int(minute or 0), second, micro
    )
    try:
        utc = local - offset
    except OverflowError:  # beyond 9999-12-31T23:59:59.999999Z
        return LATEST
    if utc.year - shift < 1:
        return EARLIEST
    return utc.replace(year=utc.year - shift, tzinfo=UTC)


def _instant(value: str) -> tuple[datetime, datetime] | None:
    """An RFC 3339 date-time, or a date (the whole day, UTC), as its first and last moment;
    ``..`` or nothing is an open end (None)."""
    value = value.strip()
    if value in ("..", ""):
        return None
    found = RFC3339.fullmatch(value)
    try:
        if found is None:
            raise ValueError(value)
        first = _moment(value, found.groups())
    except ValueError as exc:
        raise BadRequest(
            f"datetime '{value}' is not RFC 3339: give 2026-01-01T00:00:00Z, 2026-01-01, "
            "or an interval a/b with .. (or nothing) for an open end"
        ) from exc
    if found.group(4) is not None:
        return first, first
    return first, _moment(value, (*found.groups()[:3], "23", "59", "59", "999999", None))


def _datetime(value: str | None):
    if value is None:
        return None
    if "/" in value:
        start, _, end = value.partition("/")
        low, high = _instant(start), _instant(end)
        low_at, high_at = low and low[0], high and high[1]
        if low_at and high_at and low_at > high_at:
            raise BadRequest("datetime interval starts after it ends")
        return low_at, high_at
    return _instant(value)  # None (no condition) for a bare .. or nothing


def _sortby(value: str | None) -> list[tuple[str, bool]]:
    if not value:
        return []
    out = []
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        ascending = not part.startswith("-")
        out.append((part.lstrip("+-").strip(), ascending))
    return out


class ItemParams:
    """The items query parameters, as OGC API – Features Parts 1–3 name them."""

    def __init__(
        self,
        request: Request,
        limit: Annotated[
            int, Query(ge=1, le=F.MAX_LIMIT, description="Features per page")
        ] = F.DEFAULT_LIMIT,
        offset: Annotated[int, Query(ge=0, le=F.MAX_OFFSET, description="Features to skip")] = 0,
        bbox: Annotated[
            str | None, Query(description="minx,miny,maxx,maxy in bbox-crs (default CRS84)")
        ] = None,
        bbox_crs: Annotated[str | None, Query(alias="bbox-crs")] = None,
        filter: Annotated[
            str | None, Query(description="CQL2 filter, e.g. kind = 'kindergarten'")
        ] = None,
        filter_lang: Annotated[
            Literal["cql2-text", "cql2-json", "cql-text", "cql-json"] | None,
            Query(alias="filter-lang", description="cql2-text (default) or cql2-json"),
        ] = None,
        filter_crs: Annotated[str | None, Query(alias="filter-crs")] = None,
        properties: Annotated[
            str | None, Query(description="Comma-separated properties to return")
        ] = None,
        sortby: Annotated[str | None, Query(description="e.g. -level,found_at")] = None,
        datetime_: Annotated[
            str | None, Query(alias="datetime", description="Instant or interval a/b, .. for open")
        ] = None,
        crs: Annotated[
            str | None, Query(description="Output CRS URI: CRS84 (default), EPSG 4490, 4326, 3857")
        ] = None,
        purpose: Annotated[str | None, Query(max_length=500, description=PURPOSE)] = None,
        after: Annotated[
            int | None,
            Query(ge=0, le=2**62, description="Continue after this feature id (next links use it)"),
        ] = None,
        district: Annotated[str | None, Query(description=DISTRICT)] = None,
    ):
        self.purpose = purpose
        self.district = district
        self.raw = {
            "limit": limit,
            "offset": offset,
            "bbox": bbox,
            "bbox-crs": bbox_crs,
            "filter": filter,
            "filter-lang": filter_lang,
            "filter-crs": filter_crs,
            "properties": properties,
            "sortby": sortby,
            "datetime": datetime_,
            "crs": crs,
            "district": district,
        }
        lang = FILTER_LANGS.get((filter_lang or "cql2-text").lower(), filter_lang or "")
        if lang not in ("cql2-text", "cql2-json"):
            raise BadRequest(
                f"filter-lang '{filter_lang}' is not offered: use cql2-text or cql2-json"
            )
        if filter_crs and F.parse_crs_uri(filter_crs, "filter-crs") != F.CRS84:
            raise BadRequest("filter-crs: only CRS84 (lon/lat) geometry literals are accepted")
        self.query = F.ItemQuery(
            limit=limit,
            offset=offset,
            bbox=_bbox(bbox),
            bbox_crs=F.parse_crs_uri(bbox_crs, "bbox-crs") if bbox_crs else F.CRS84,
            filter=filter,
            filter_lang=lang,
            properties=[p.strip() for p in properties.split(",") if p.strip()]
            if properties is not None
            else None,
            sortby=_sortby(sortby),
            datetime=_datetime(datetime_),
            crs=F.parse_crs_uri(crs) if crs else F.CRS84,
            equals=_queryable_parameters(request),
            after=after,
        )


#: the parameters this service names itself; any other is a queryable (or a 400)
OWN_PARAMETERS = frozenset(
    {
        "f",
        "limit",
        "offset",
        "bbox",
        "bbox-crs",
        "filter",
        "filter-lang",
        "filter-crs",
        "properties",
        "sortby",
        "datetime",
        "crs",
        "purpose",
        "after",
        "district",
    }
)
#: the filter languages' older names (GDAL 3.6 sends cql-text) as aliases of CQL2's
FILTER_LANGS = {
    "cql2-text": "cql2-text",
    "cql-text": "cql2-text",
    "cql2-json": "cql2-json",
    "cql-json": "cql2-json",
}


def _queryable_parameters(request: Request) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in request.query_params.multi_items():
        if name not in OWN_PARAMETERS:
            out.setdefault(name, []).append(value)
    return out


def _crs_header(q: F.ItemQuery) -> dict[str, str]:
    return {"Content-Crs": f"<{q.crs}>"}


@router.get(
    "/collections/{collectionId}/items",
    summary="Features of a layer, filtered and paged",
    response_class=Response,
    responses={200: {"content": {GEOJSON: {}}}},
)
def items(
    collection_id: CollectionId,
    request: Request,
    conn: DbConnection,
    who: Caller,
    params: ItemParams = Depends(),
    f: Annotated[
        str | None,
        Query(
            alias="f",
            description="json (default), html, or a download: csv, gpkg, folium (a "
            "self-contained HTML map)",
        ),
    ] = None,
):
    download = (f or "").lower() if (f or "").lower() in DOWNLOADS else None
    html = False if download else wants_html(request, f)
    layer = get_layer(conn, collection_id, who)
    who = narrowed(conn, who, params.district)
    q = params.query
    plan = layer.plan(who, params.purpose)
    page = F.query_items(conn, layer, q, plan)
    # parsed back only where the features are needed as values (the audit's ids, a download)
    parsed = [orjson.loads(one) for one in page.features] if plan.audited or download else []
    if plan.audited:
        ids = [one["id"] for one in parsed]
        detail = {"fields": sorted(plan.raw), "count": len(ids), "ids": ids[:1000]}
        audit.record(conn, who, "read_personal", layer.id, None, plan.purpose, detail)
    if download:  # a file of this page's features: no links, no collection around them
        return _download(layer, parsed, q, plan, download, titles_of(layer, conn))
    path = f"/collections/{collection_id}/items"
    keep = {k: v for k, v in params.raw.items() if v is not None and k not in ("offset", "after")}
    keep |= q.equals  # queryable parameters, repeated as they came
    here = q.offset or None
    links = [
        _link(request, "self", GEOJSON, "本页 this page", path, **keep, offset=here, f="json"),
        _link(request, "alternate", HTML, "网页 HTML", path, **keep, offset=here, f="html"),
        _link(
            request, "collection", JSON, layer.title_zh, f"/collections/{collection_id}", f="json"
        ),
    ]
    if page.has_next:
        # id order: continue after the last key (a deep page costs what the first does);
        # another order: by offset
        onward = {"offset": q.offset + q.limit} if q.sortby else {"after": page.last_id}
        links.append(
            _link(request, "next", GEOJSON, "下一页 next page", path, **keep, **onward, f="json")
        )
    if q.offset > 0 and q.after is None:
        before = max(0, q.offset - q.limit) or None
        links.append(
            _link(
                request,
                "prev",
                GEOJSON,
                "上一页 previous page",
                path,
                **keep,
                offset=before,
                f="json",
            )
        )
    tail = {
        "numberMatched": page.number_matched,
        "numberReturned": page.number_returned,
        "timeStamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "links": links,
    }
    body = (
        b'{"type":"FeatureCollection","features":['
        + b",".join(page.features)
        + b"],"
        + orjson.dumps(tail)[1:]
    )
    if html:
        return _items_page(request, layer, orjson.loads(body), q, plan, titles_of(layer, conn))
    # the validator leaves out timeStamp: the same features are the same answer
    validator = b",".join(page.features) + orjson.dumps({**tail, "timeStamp": None})
    return conditional(request, body, GEOJSON, validator, _crs_header(q))


@router.get(
    "/collections/{collectionId}/items/{feature_id}",
    summary="One feature",
    response_class=Response,
    responses={200: {"content": {GEOJSON: {}}}},
)
def item(
    collection_id: CollectionId,
    feature_id: str,
    r: Read,
    crs: Annotated[str | None, Query(description="Output CRS URI")] = None,
    purpose: Annotated[str | None, Query(max_length=500, description=PURPOSE)] = None,
):
    request, conn, who, html = r.request, r.conn, r.who, r.html
    layer = get_layer(conn, collection_id, who)
    q = F.ItemQuery(crs=F.parse_crs_uri(crs) if crs else F.CRS84)
    plan = layer.plan(who, purpose)
    feature = F.get_item(conn, layer, feature_id, q, plan)
    if plan.audited:
        detail = {"fields": sorted(plan.raw)}
        audit.record(conn, who, "read_personal", layer.id, feature_id, plan.purpose, detail)
    path = f"/collections/{collection_id}/items/{feature_id}"
    links = [
        _link(request, "self", GEOJSON, "本要素 this feature", path, f="json"),
        _link(request, "alternate", HTML, "网页 HTML", path, f="html"),
        _link(
            request, "collection", JSON, layer.title_zh, f"/collections/{collection_id}", f="json"
        ),
    ]
    body = feature[:-1] + b',"links":' + orjson.dumps(links) + b"}"
    if html:
        titles = titles_of(layer, conn)
        times = {name for name, kind in F.kinds(layer).items() if kind in ("date", "datetime")}
        vocabulary = {"titles": titles, "values": VALUE_ZH}
        feature = orjson.loads(body)
        return render(
            "item.html",
            request,
            layer=layer,
            feature=feature,
            titles=titles,
            times=times,
            vocabulary=vocabulary,
        )
    return conditional(request, body, GEOJSON, headers=_crs_header(q))
