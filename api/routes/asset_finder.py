"""存量资产 over HTTP, for finding and judging sites: the register searched and filtered
(``GET /assets``), one asset (``/assets/{id}``), what lies around it
(``/assets/{id}/surroundings``) and two to five side by side (``/assets/compare``), as JSON or as
pages. Every answer goes through the assets layer's read plan: the public finds promoted assets
only, without internal fields, and cannot learn through the surroundings or the comparison that an
unpromoted asset exists."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy import text

from api.deps import Caller, DbConnection, Format
from api.html import base_url, render, wants_html
from geo.assets.promotion import count_view
from geo.assets.surroundings import surroundings
from geo.errors import BadRequest
from geo.policy.district_scope import narrowed
from geo.policy.roles import Viewer
from layers import asset_search
from layers import features as F
from layers.catalogue import get_layer
from layers.vocabulary import FIELD_ZH, VALUE_ZH

router = APIRouter(tags=["idle assets 存量资产"])
GEOJSON = "application/geo+json"
LAYER = "assets"
DEFAULT_LIMIT = 20
MAX_LIMIT = 500
MAX_COMPARED = 5
STAFF_ROLES = ("investment", "admin")
#: figures of the comparison, in rows: (key, Chinese, English)
COMPARED = (
    ("land_area_m2", "土地面积(㎡)", "land area"),
    ("floor_area_m2", "建筑面积(㎡)", "floor area"),
    ("residents_1km", "1公里内居民", "residents within 1 km"),
    ("residents_3km", "3公里内居民", "residents within 3 km"),
    ("main_road_m", "距主干路(米)", "to the nearest main road (m)"),
    ("facilities_1km", "1公里内设施", "facilities within 1 km"),
    ("organisations_1km", "1公里内单位", "organisations within 1 km"),
    ("hazards_500m", "500米内隐患", "hazards within 500 m"),
    ("open_hazards_500m", "500米内未销号隐患", "open hazards within 500 m"),
)


def _json(body, status: int = 200, media_type: str = "application/json") -> Response:
    return Response(orjson.dumps(body), status, media_type=media_type)


def _vocabulary() -> dict:
    return {
        "titles": FIELD_ZH,
        "values": {k: VALUE_ZH[k] for k in ("category", "status", "condition", "landuse_code")},
    }


def _feature(conn, who: Viewer, asset_id: int) -> dict:
    """The asset as the caller may see it; a hidden asset is missing (404), as one that is not."""
    layer = get_layer(conn, LAYER, who)
    plan = layer.plan(who)
    raw = F.get_item(conn, layer, str(asset_id), F.ItemQuery(), plan)
    return orjson.loads(raw)


def _staff(who: Viewer) -> bool:
    return who.role in STAFF_ROLES


def _count_public_view(conn, who: Viewer, asset_id: int, page: str) -> None:
    """A public page view counted (who looked is never stored); staff views are not counted."""
    if _staff(who):
        return
    count_view(conn, asset_id, page)


@router.get(
    "/assets",
    summary="Search the idle-asset register: filters, Chinese text, area, distance; GeoJSON or a page",
    response_class=Response,
    responses={200: {"content": {GEOJSON: {}, "text/html": {}}}},
)
def list_assets(
    request: Request,
    conn: DbConnection,
    who: Caller,
    q: Annotated[
        str | None, Query(max_length=300, description="words, all required: 厂房 仓库")
    ] = None,
    category: Annotated[list[str] | None, Query(description="category (several allowed)")] = None,
    status: Annotated[list[str] | None, Query(description="status (staff: any)")] = None,
    street: Annotated[str | None, Query(description="a street's or town's code or name")] = None,
    land_min: Annotated[str | None, Query(description="least land area, m²")] = None,
    land_max: Annotated[str | None, Query(description="most land area, m²")] = None,
    floor_min: Annotated[str | None, Query(description="least floor area, m²")] = None,
    floor_max: Annotated[str | None, Query(description="most floor area, m²")] = None,
    landuse: Annotated[list[str] | None, Query(description="GB/T 21010 class, e.g. 0601")] = None,
    available_by: Annotated[
        str | None, Query(description="available on or before, YYYY-MM-DD")
    ] = None,
    within: Annotated[
        str | None,
        Query(max_length=100_000, description="a drawn polygon: WKT or GeoJSON, lon/lat"),
    ] = None,
    near: Annotated[str | None, Query(description="lon,lat to measure from")] = None,
    distance: Annotated[str | None, Query(description="metres from near (default 1000)")] = None,
    sort: Annotated[
        str | None,
        Query(description=f"{', '.join(asset_search.SORTS)}; '-' first for descending"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
    district: Annotated[str | None, Query(description="only this district's (6 digits)")] = None,
    f: Format = None,
):
    who = narrowed(conn, who, district)
    search = asset_search.parse(
        q, category, status, street, land_min, land_max, floor_min, floor_max, landuse,
        available_by, within, near, distance, sort,
    )  # fmt: skip
    clauses, order, sorts = asset_search.conditions(search)
    layer = get_layer(conn, LAYER, who)
    plan = layer.plan(who)
    query = F.ItemQuery(
        limit=limit, offset=offset, clauses=clauses, order_first=order, sortby=sorts
    )
    page = F.query_items(conn, layer, query, plan)
    keep = [(k, v) for k, v in request.query_params.multi_items() if k not in ("offset", "f")]
    here = f"{base_url(request)}/assets"

    def link(rel: str, kind: str, title: str, at: int, fmt: str) -> dict:
        params = keep + ([("offset", str(at))] if at else []) + [("f", fmt)]
        return {"rel": rel, "type": kind, "title": title, "href": f"{here}?{urlencode(params)}"}

    links = [
        link("self", GEOJSON, "本页 this page", offset, "json"),
        link("alternate", "text/html", "网页 HTML", offset, "html"),
    ]
    if page.has_next:
        links.append(link("next", GEOJSON, "下一页 next page", offset + limit, "json"))
    if offset:
        links.append(link("prev", GEOJSON, "上一页 previous page", max(0, offset - limit), "json"))
    body = (
        b'{"type":"FeatureCollection","features":['
        + b",".join(page.features)
        + b"],"
        + orjson.dumps(
            {
                "numberMatched": page.number_matched,
                "numberReturned": page.number_returned,
                "timeStamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "links": links,
            }
        )[1:]
    )
    if not wants_html(request, f):
        return Response(body, media_type=GEOJSON)
    streets = conn.execute(
        text("SELECT code, name FROM admin_areas WHERE level = 2 ORDER BY code")
    ).all()
    return render(
        "assets.html",
        request,
        collection=orjson.loads(body),
        search=search,
        params=dict(request.query_params),
        chosen={k: request.query_params.getlist(k) for k in ("category", "status", "landuse")},
        streets=streets,
        staff=_staff(who),
        vocabulary=_vocabulary(),
        sorts=list(asset_search.SORTS),
        limit=limit,
    )


def _ids(ids: str) -> list[int]:
    try:
        out = [int(v) for v in ids.split(",") if v.strip()]
    except ValueError as exc:
        raise BadRequest("ids is a list of asset ids: ids=12,31,40") from exc
    out = list(dict.fromkeys(out))
    if not 2 <= len(out) <= MAX_COMPARED:
        raise BadRequest(f"compare 2 to {MAX_COMPARED} different assets: ids=12,31,40")
    return out


def _summary(feature: dict, around: dict) -> dict:
    """The comparison's figures of one asset."""
    rings = {r["radius_m"]: r["residents"] for r in around["residents"]["rings"]}
    main = around["roads"]["main_road"]
    props = feature["properties"]
    return {
        "id": feature["id"],
        "code": props.get("code"),
        "name": props.get("name"),
        "category": props.get("category"),
        "status": props.get("status"),
        "land_area_m2": props.get("land_area_m2"),
        "floor_area_m2": props.get("floor_area_m2"),
        "landuse_code": props.get("landuse_code"),
        "available_from": props.get("available_from"),
        "residents_1km": rings.get(1000),
        "residents_3km": rings.get(3000),
        "main_road_m": main["distance_m"] if main else None,
        "main_road": main["name"] if main else None,
        "facilities_1km": around["facilities"]["total"],
        "organisations_1km": around["organisations"]["total"],
        "hazards_500m": around["hazards"]["total"],
        "open_hazards_500m": around["hazards"]["open"],
    }


@router.get(
    "/assets/compare",
    summary="Two to five assets side by side on the figures that judge a site",
    response_class=Response,
)
def compare_assets(
    request: Request,
    conn: DbConnection,
    who: Caller,
    ids: Annotated[str, Query(max_length=200, description="2–5 asset ids: ids=12,31,40")],
    f: Format = None,
):
    chosen = _ids(ids)
    srid = request.app.state.settings.spatial.metric_srid
    features = [_feature(conn, who, i) for i in chosen]
    rows = [
        _summary(feat, surroundings(conn, i, srid, who.district))
        for feat, i in zip(features, chosen, strict=True)
    ]
    body = {"assets": rows, "figures": [{"key": k, "zh": zh, "en": en} for k, zh, en in COMPARED]}
    if not wants_html(request, f):
        return _json(body)
    collection = {"type": "FeatureCollection", "features": features}
    return render(
        "assets_compare.html",
        request,
        compared=body,
        collection=collection,
        vocabulary=_vocabulary(),
    )


@router.get(
    "/assets/{asset_id}",
    summary="One asset, as the caller may see it (a page with its surroundings: ?f=html)",
    response_class=Response,
)
def asset(request: Request, conn: DbConnection, who: Caller, asset_id: int, f: Format = None):
    feature = _feature(conn, who, asset_id)
    if not wants_html(request, f):
        return Response(orjson.dumps(feature), media_type=GEOJSON)
    return _asset_page(request, conn, who, feature)


def _asset_page(request: Request, conn, who: Viewer, feature: dict) -> Response:
    srid = request.app.state.settings.spatial.metric_srid
    around = surroundings(conn, feature["id"], srid, who.district)
    rings = _rings(conn, feature["id"], srid)
    _count_public_view(conn, who, feature["id"], "item")
    return render(
        "asset.html",
        request,
        feature=feature,
        around=around,
        collection={"type": "FeatureCollection", "features": [feature, *rings]},
        vocabulary=_vocabulary(),
        staff=_staff(who),
    )


def _rings(conn, asset_id: int, srid: int) -> list[dict]:
    """The 500 m, 1 km and 3 km reaches around the footprint, for the page's map."""
    rows = conn.execute(
        text(
            f"""SELECT r, ST_AsGeoJSON(ST_Transform(ST_Buffer(ST_Transform(geom, {srid}), r, 8),
                                                   4490), 6)
                FROM assets, unnest(ARRAY[500, 1000, 3000]) AS r WHERE id = :id"""
        ),
        {"id": asset_id},
    ).all()
    return [
        {
            "type": "Feature",
            "id": f"ring-{r}",
            "geometry": orjson.loads(geom),
            "properties": {"ring_m": r},
        }
        for r, geom in rows
    ]


@router.get(
    "/assets/{asset_id}/surroundings",
    summary="What lies around an asset: residents, roads, facilities, organisations, hazards, land use",
    response_class=Response,
)
def asset_surroundings(
    request: Request, conn: DbConnection, who: Caller, asset_id: int, f: Format = None
):
    feature = _feature(conn, who, asset_id)  # a hidden asset is a 404 here too
    if wants_html(request, f):
        return _asset_page(request, conn, who, feature)
    srid = request.app.state.settings.spatial.metric_srid
    return _json(surroundings(conn, asset_id, srid, who.district))
