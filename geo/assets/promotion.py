"""Promoting idle assets (招商推介): a public page view counted per asset, day and page, and the
internal statistics read from those counts and the status history (views, the status funnel,
the revitalisation rate by category and by street).

A view is a count and nothing more: no address, user agent, cookie or account of the viewer is
read or kept, so the counts can be published without a privacy review."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import text
from sqlalchemy.engine import Connection

from geo.assets.lifecycle import STATUS_ZH
from geo.errors import NotFound
from geo.models.idle_assets import ASSET_STATUSES, PUBLIC_STATUS

#: the pages a public view is counted on: the brochure, an asset opened on the public map, and
#: the asset's own page
PAGES = ("brochure", "map", "item")
#: the path an asset takes to revitalised, in order: the funnel's steps
FUNNEL = ("entered", "promoted", "negotiating", "revitalised")
CATEGORY_ZH = {
    "administrative": "行政事业单位闲置资产",
    "state_operating": "国有经营性资产",
    "rural_collective": "农村集体闲置资产",
    "inefficient_land": "低效用地再开发",
}
#: the housing-condition grades (房屋完损等级)
CONDITION_ZH = {
    "intact": "完好",
    "sound": "基本完好",
    "damaged": "一般损坏",
    "severely_damaged": "严重损坏",
    "dangerous": "危险",
}
#: GB/T 21010-2017 names of the classes assets are on, where no land-use parcel names the class
LANDUSE_ZH = {
    "0508": "物流仓储用地",
    "05H1": "商业服务业设施用地",
    "0601": "工业用地",
    "0701": "城镇住宅用地",
    "0702": "农村宅基地",
    "08H1": "机关团体新闻出版用地",
    "08H2": "科教文卫用地",
}
#: how many assets the statistics list by views
TOP = 20
#: the days of views per day the statistics show
DAYS = 30


def today(conn: Connection, zone: str = "Asia/Shanghai") -> date:
    """The day it is now in the district's zone: views are counted by the local day."""
    return conn.execute(
        text("SELECT (now() AT TIME ZONE :zone)::date"), {"zone": zone}
    ).scalar_one()


def count_view(conn: Connection, asset_id: int, page: str, zone: str = "Asia/Shanghai") -> bool:
    """Count one public view of an asset on ``page`` (today's row in ``asset_views`` + 1); False,
    counting nothing, unless the asset is promoted. An asset's views are its ``page_views`` (the
    register's figure from before daily counts, as imported) plus its ``asset_views``.

    Only the asset, the day and the page are written: nothing about the viewer (no IP address,
    no user agent, no cookie, no account), so a count can never be traced back to a person."""
    if page not in PAGES:
        raise ValueError(f"page is one of {', '.join(PAGES)}, not {page!r}")
    # the asset's row is read, never written: a view must not move its version on (a staff
    # member's edit read before it would then be refused as stale) nor expire its tiles
    counted = conn.execute(
        text("SELECT id FROM assets WHERE id = :id AND status = :public"),
        {"id": asset_id, "public": PUBLIC_STATUS},
    ).first()
    if counted is None:
        return False
    conn.execute(
        text("""INSERT INTO asset_views (asset_id, day, page, views)
                VALUES (:id, (now() AT TIME ZONE :zone)::date, :page, 1)
                ON CONFLICT (asset_id, day, page) DO UPDATE SET views = asset_views.views + 1"""),
        {"id": asset_id, "zone": zone, "page": page},
    )
    return True


# the status of each asset on the day (the last change by its end), and its street: the level-2
# area holding its community (an asset placed on a street directly is on that street)
_STATUS_ON = """
WITH status_on AS (
    SELECT a.id, a.code, a.name, a.category,
           a.page_views + coalesce((SELECT sum(v.views) FROM asset_views v
                                    WHERE v.asset_id = a.id), 0) AS page_views,
           CASE WHEN CAST(:as_of AS date) IS NULL THEN a.status ELSE (
               SELECT h.status FROM asset_status_history h
               WHERE h.asset_id = a.id AND (h.changed_at AT TIME ZONE :zone)::date <= :as_of
               ORDER BY h.changed_at DESC, h.id DESC LIMIT 1) END AS status,
           s.code AS street_code, s.name AS street_name
    FROM assets a
    JOIN admin_areas ar ON ar.code = a.area_code
    LEFT JOIN admin_areas s ON s.level = 2
         AND s.code = CASE ar.level WHEN 2 THEN ar.code WHEN 3 THEN ar.parent_code END
    WHERE CAST(:district AS text) IS NULL OR a.district_code = :district
), registered AS (SELECT * FROM status_on WHERE status IS NOT NULL)
"""


def _rates(conn: Connection, by: str, label: str, params: dict) -> list[dict]:
    """Revitalised ÷ registered, grouped by one column of ``registered``."""
    rows = conn.execute(
        text(f"""{_STATUS_ON}
                 SELECT {by} AS key, {label} AS label, count(*) AS registered,
                        count(*) FILTER (WHERE status = 'revitalised') AS revitalised
                 FROM registered GROUP BY {by}, {label} ORDER BY {by} NULLS LAST"""),
        params,
    ).all()
    return [
        {
            "key": r.key,
            "name_zh": r.label,
            "registered": r.registered,
            "revitalised": r.revitalised,
            "rate": round(r.revitalised / r.registered, 4) if r.registered else None,
        }
        for r in rows
    ]


#: an asset id column confined to the district asked for (all, when none is)
THEIRS = (
    "(CAST(:district AS text) IS NULL "
    "OR {} IN (SELECT id FROM assets WHERE district_code = :district))"
)


def statistics(
    conn: Connection,
    as_of: date | None = None,
    zone: str = "Asia/Shanghai",
    top: int = TOP,
    district: str | None = None,
) -> dict:
    """The promotion's numbers for investment staff: totals, the most viewed assets, the status
    funnel, the revitalisation rate by category and by street, and views per day.

    ``as_of`` (a day) reads each asset's status from its history as of that day's end, so that
    last year's numbers can be read again; without it, the current status. ``district``: that
    district's assets only (six digits)."""
    params = {"as_of": as_of, "zone": zone, "district": district}
    last_day = as_of or today(conn, zone)
    first_day = last_day - timedelta(days=DAYS - 1)
    current = dict(
        conn.execute(
            text(f"{_STATUS_ON} SELECT status, count(*) FROM registered GROUP BY status"), params
        ).all()
    )
    reached = dict(
        conn.execute(
            text(f"""SELECT status, count(DISTINCT asset_id) FROM asset_status_history
                     WHERE (CAST(:as_of AS date) IS NULL
                            OR (changed_at AT TIME ZONE :zone)::date <= :as_of)
                       AND {THEIRS.format("asset_id")}
                     GROUP BY status"""),
            params,
        ).all()
    )
    totals = conn.execute(
        text(f"""{_STATUS_ON} SELECT count(*) AS assets,
                 coalesce(sum(page_views), 0) AS views,
                 count(*) FILTER (WHERE status = 'revitalised') AS revitalised FROM registered"""),
        params,
    ).one()
    recent = conn.execute(
        text(f"""SELECT day, page, sum(views) AS views FROM asset_views
                 WHERE day BETWEEN :first AND :last AND {THEIRS.format("asset_id")}
                 GROUP BY day, page"""),
        {"first": first_day, "last": last_day, "district": district},
    ).all()
    per_day = {first_day + timedelta(days=k): dict.fromkeys(PAGES, 0) for k in range(DAYS)}
    for r in recent:
        per_day[r.day][r.page] = int(r.views)
    most = conn.execute(
        text(f"""{_STATUS_ON}
                 SELECT r.id, r.code, r.name, r.category, r.status, r.street_name,
                        r.page_views AS views, coalesce(v.views, 0) AS recent_views
                 FROM registered r
                 LEFT JOIN (SELECT asset_id, sum(views) AS views FROM asset_views
                            WHERE day BETWEEN :first AND :last GROUP BY asset_id) v
                        ON v.asset_id = r.id
                 ORDER BY r.page_views DESC, r.id LIMIT :top"""),
        params | {"first": first_day, "last": last_day, "top": top},
    ).all()
    return {
        "as_of": last_day.isoformat(),
        "totals": {
            "assets": totals.assets,
            "views": int(totals.views),
            "recent_views": sum(sum(d.values()) for d in per_day.values()),
            "revitalised": totals.revitalised,
            "rate": round(totals.revitalised / totals.assets, 4) if totals.assets else None,
        },
        "most_viewed": [
            {
                "id": r.id,
                "code": r.code,
                "name": r.name,
                "category": r.category,
                "category_zh": CATEGORY_ZH.get(r.category, r.category),
                "status": r.status,
                "status_zh": STATUS_ZH.get(r.status, r.status),
                "street": r.street_name,
                "views": r.views,
                "recent_views": int(r.recent_views),
            }
            for r in most
        ],
        "funnel": [
            {"status": s, "status_zh": STATUS_ZH[s], "reached": reached.get(s, 0)} for s in FUNNEL
        ],
        "current": [
            {"status": s, "status_zh": STATUS_ZH[s], "assets": current.get(s, 0)}
            for s in ASSET_STATUSES
        ],
        "by_category": [
            r | {"name_zh": CATEGORY_ZH.get(r["key"], r["key"])}
            for r in _rates(conn, "category", "category", params)
        ],
        "by_street": _rates(conn, "street_code", "street_name", params),
        "views_per_day": [
            {"day": d.isoformat(), "views": sum(pages.values()), **pages}
            for d, pages in per_day.items()
        ],
    }


def brochure_facts(conn: Connection, asset_id: int, everything: bool = False) -> dict:
    """What an asset's public brochure shows: its public fields, where it is, its footprint as
    GeoJSON; never the internal ones (reserve price, the owner's contact, notes). An asset not
    promoted is not found, as a missing one is, unless ``everything`` (staff)."""
    row = (
        conn.execute(
            text("""SELECT a.id, a.code, a.name, a.category, a.status, a.owner, a.land_area_m2,
                       a.floor_area_m2, a.landuse_code, a.condition, a.available_from,
                       a.suggested_use, a.description,
                       (SELECT l.class_name FROM landuse_parcels l
                        WHERE l.class_code = a.landuse_code LIMIT 1) AS landuse_name,
                       c.name AS community, s.name AS street, ad.full_name AS address,
                       ST_AsGeoJSON(a.geom, 6, 0) AS footprint
                FROM assets a
                JOIN admin_areas c ON c.code = a.area_code
                LEFT JOIN admin_areas s ON s.level = 2
                     AND s.code = CASE c.level WHEN 2 THEN c.code WHEN 3 THEN c.parent_code END
                LEFT JOIN addresses ad ON ad.code = a.address_code
                WHERE a.id = :id"""),
            {"id": asset_id},
        )
        .mappings()
        .first()
    )
    if row is None or (not everything and row["status"] != PUBLIC_STATUS):
        raise NotFound(f"no asset {asset_id} on public offer")
    facts = dict(row)
    facts["category_zh"] = CATEGORY_ZH.get(facts["category"], facts["category"])
    facts["status_zh"] = STATUS_ZH.get(facts["status"], facts["status"])
    facts["condition_zh"] = CONDITION_ZH.get(facts["condition"] or "", facts["condition"])
    facts["landuse_name"] = facts["landuse_name"] or LANDUSE_ZH.get(facts["landuse_code"] or "")
    facts["public"] = facts["status"] == PUBLIC_STATUS
    for area in ("land_area_m2", "floor_area_m2"):
        facts[area] = float(facts[area]) if facts[area] is not None else None
    return facts
