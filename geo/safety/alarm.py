"""The 119 five-level linkage (119 五级联动): one fire alarm, one answer for everyone who must move.

For a point (given, or an address found by the indexed geocoder) the answer names, for the five
levels — district, street/town (街道/园区), community/village, grid, key unit — the area
containing the point, its duty contacts (值班) and, for the grid, its grid workers; then what the
first crews need: the nearest fire stations by road, the hydrants within 200 m, the key units and
open hazards within 500 m, and the residents to alert in the buildings within 100 m.

Every distance is metric, in the district's projected CRS (``spatial.metric_srid``), after an
index prefilter on a degree box (the pattern of geo.assets.surroundings). Travel times come from
the check-up's road graph (geo.checkup.fire.road_graph: each road class at its speed, the alarm and
the stations joining the network at their nearest node at a walking-pace access speed); the graph
is built once per process and built again when the roads change. Names and phones are raw to
safety officers and administrators, masked (李**, 138****1234) to everyone else. Every alarm is
kept in ``fire_alarms`` with its answer and the seconds it took.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import networkx as nx
import numpy as np
import orjson
import shapely
from pyproj import Transformer
from shapely.strtree import STRtree
from sqlalchemy import text
from sqlalchemy.engine import Connection

from geo.addressing import FUZZY_AT_LEAST, geocode, normalise
from geo.checkup.fire import SPEEDS_KMH, road_graph
from geo.crs import CGCS2000, margin_degrees
from geo.errors import BadRequest, Forbidden, Invalid
from geo.models.facts import Organisation
from geo.models.hazards import DutyContact
from geo.policy import audit
from geo.policy.plan import ReadPlan, plan_read
from geo.policy.roles import Viewer
from geo.settings import STORAGE_SRID

STATIONS = 3
HYDRANT_RADIUS_M = 200
NEARBY_RADIUS_M = 500  # key units and hazards
RESIDENT_RADIUS_M = 100
KEY_UNIT_RADIUS_M = 100  # the fifth level: the key unit at (or nearest within this of) the point
DEFAULT_KMH = 25.0  # a road of no known class
ACCESS_KMH = 15.0  # from a point to its nearest road node, at a walking-pace access speed
ELDERLY_AGE = 60
CANDIDATES = 5  # addresses offered back when an address matches none
PURPOSE = "119 五级联动 fire alarm response"
LEVELS = (
    (1, "district", "区"),
    (2, "street", "街道/园区"),
    (3, "community", "社区/村"),
    (4, "grid", "网格"),
    (5, "key_unit", "重点单位"),
)
ASSUMPTIONS = {
    "speeds_kmh": SPEEDS_KMH,
    "default_kmh": DEFAULT_KMH,
    "access_kmh": ACCESS_KMH,
    "note_zh": "按道路等级限速估算行车时间(不含出动时间);报警点与消防站以步行速度接入最近路网节点",
    "note": "travel time by road class speed (turnout not included); the alarm and each station "
    "join the network at their nearest node at the access speed",
}


# --- the road graph, once per process -------------------------------------------------------


@dataclass
class _RoadRows:
    """What geo.checkup.fire.road_graph reads from: rows in the metric CRS, and a cache."""

    conn: Connection
    srid: int
    cache: dict = field(default_factory=dict)

    def rows(self, sql: str, **params) -> list:
        return self.conn.execute(text(sql), {"srid": self.srid, **params}).all()


@dataclass
class _Network:
    signature: tuple
    graph: nx.Graph
    nodes: np.ndarray
    tree: STRtree | None


_NETWORKS: dict[tuple, _Network] = {}
_LOCK = threading.Lock()


def forget_networks() -> None:
    """Drop the road graphs held (another process changed the roads); built again when needed."""
    with _LOCK:
        _NETWORKS.clear()


def networks_held() -> int:
    """How many road graphs this process holds (what ``forget_networks`` would drop)."""
    with _LOCK:
        return len(_NETWORKS)


def network(conn: Connection, srid: int) -> _Network:
    """The road graph of the district, built again when a road is added, changed or removed."""
    key = (str(conn.engine.url), srid)
    signature = tuple(
        conn.execute(text("SELECT count(*), max(updated_at), sum(version) FROM roads")).one()
    )
    with _LOCK:
        held = _NETWORKS.get(key)
    if held is not None and held.signature == signature:
        return held
    graph, nodes = road_graph(_RoadRows(conn, srid), SPEEDS_KMH, DEFAULT_KMH)
    built = _Network(
        signature, graph, nodes, STRtree(shapely.points(nodes)) if len(nodes) else None
    )
    with _LOCK:
        _NETWORKS[key] = built
    return built


def _transformer(srid: int) -> Transformer:
    return _TRANSFORMERS.setdefault(srid, Transformer.from_crs(CGCS2000, srid, always_xy=True))


_TRANSFORMERS: dict[int, Transformer] = {}


def nearest_stations(
    conn: Connection, x: float, y: float, srid: int, count: int = STATIONS
) -> list[dict]:
    """The ``count`` fire stations nearest by travel time to the metric point (x, y)."""
    net = network(conn, srid)
    stations = conn.execute(
        text(f"""SELECT id, name, ST_X(m), ST_Y(m), ST_X(geom), ST_Y(geom) FROM (
                     SELECT id, name, geom, ST_Transform(geom, {int(srid)}) AS m FROM facilities
                     WHERE kind = 'fire_station') s ORDER BY id""")
    ).all()
    if net.tree is None or not stations:
        return []
    access = ACCESS_KMH / 3.6
    start = int(net.tree.nearest(shapely.Point(x, y)))
    start_gap = math.dist(net.nodes[start], (x, y))
    pred, seconds = nx.dijkstra_predecessor_and_distance(net.graph, start, weight="t")
    xy = np.array([(s[2], s[3]) for s in stations], dtype=float)
    snapped = net.tree.nearest(shapely.points(xy))
    found = []
    for (sid, name, *_), node, point in zip(stations, snapped, xy, strict=True):
        node = int(node)
        if node not in seconds:
            continue  # on a piece of road not joined to the alarm's
        gap = float(np.hypot(*(net.nodes[node] - point)))
        found.append((seconds[node] + (start_gap + gap) / access, sid, name, node, gap))
    found.sort()
    where = {s[0]: (s[4], s[5]) for s in stations}  # each station's lon, lat: for the map
    out = []
    for total, sid, name, node, gap in found[:count]:
        metres, at = start_gap + gap, node
        while at != start:
            before = pred[at][0]
            metres += net.graph[before][at]["m"]
            at = before
        out.append(
            {
                "id": int(sid),
                "name": name,
                "distance_m": round(float(metres), 1),
                "minutes": round(float(total) / 60, 2),
                "lon": float(where[sid][0]),
                "lat": float(where[sid][1]),
            }
        )
    return out


# --- finding the point ------------------------------------------------------------------------


def _geocoded(conn: Connection, address: str) -> tuple[float, float, dict]:
    """The address's point and how it was found; 422 with the nearest candidates if none."""
    [hit] = geocode(conn, [(1, address)])
    if not hit.matched:
        raise Invalid(
            f"地址未匹配 / no standard address matches '{address}': give the point (lon, lat) or a "
            "fuller address",
            candidates=_candidates(conn, address),
            reason=hit.reason,
        )
    score = 1.0
    if hit.tier == "fuzzy":
        score = float(
            conn.execute(
                text("SELECT similarity(onemap_normalise_address(:a), :q)"),
                {"a": hit.full_name, "q": normalise(address)},
            ).scalar()
        )
    found = {
        "how": "geocoded",
        "address": address,
        "matched": {"code": hit.code, "full_name": hit.full_name, "tier": hit.tier},
        "score": round(score, 3),
    }
    return float(hit.lon), float(hit.lat), found


def _candidates(conn: Connection, address: str) -> list[dict]:
    """The standard addresses most like the text (trigram similarity), for the caller to pick."""
    norm = normalise(address)
    if not norm:
        return []
    conn.execute(
        text("SELECT set_config('pg_trgm.similarity_threshold', '0.3', true)"),
    )
    rows = conn.execute(
        text("""SELECT code, full_name, similarity(onemap_normalise_address(full_name), :q) AS s
                FROM addresses WHERE onemap_normalise_address(full_name) % :q
                ORDER BY s DESC, code LIMIT :n"""),
        {"q": norm, "n": CANDIDATES},
    ).all()
    conn.execute(
        text("SELECT set_config('pg_trgm.similarity_threshold', :t, true)"),
        {"t": str(FUZZY_AT_LEAST)},
    )
    return [{"code": c, "full_name": n, "score": round(float(s), 3)} for c, n, s in rows]


# --- the answer -------------------------------------------------------------------------------


def _plans(viewer: Viewer) -> tuple[ReadPlan, ReadPlan]:
    """How contacts and key units' legal persons are shown: raw to safety and admin only."""
    raw = viewer.role in ("safety", "admin")
    contacts = plan_read(
        "duty_contacts",
        DutyContact.__access__,
        ("name", "phone"),
        viewer,
        PURPOSE if raw else None,
    )
    units = plan_read(
        "organisations",
        Organisation.__access__,
        ("legal_person", "contact_phone"),
        viewer,
        PURPOSE if raw else None,
    )
    return contacts, units


#: a row (``t``) in the responder's district, or any when they are not bound to one
_MINE = "(CAST(:district AS text) IS NULL OR t.district_code = :district)"


def _near(table: str, srid: int, columns: str, where: str, radius: float) -> str:
    return f"""SELECT {columns}, ST_Distance(ST_Transform(t.geom, {srid}), p.m) AS d,
                      ST_X(t.geom) AS lon, ST_Y(t.geom) AS lat
               FROM {table} t, p
               WHERE t.geom && ST_Expand(p.g, :margin_{radius}) AND {where}
                 AND ST_DWithin(ST_Transform(t.geom, {srid}), p.m, {radius})"""


def respond(
    conn: Connection,
    viewer: Viewer,
    srid: int,
    lon: float | None = None,
    lat: float | None = None,
    address: str | None = None,
    now: datetime | None = None,
    keep: bool = True,
) -> dict:
    """The five-level answer to one alarm at (lon, lat) CGCS2000, or at ``address``; kept in
    ``fire_alarms`` (with its id in the answer) unless ``keep`` is false."""
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    srid = int(srid)
    if lon is not None and lat is not None:
        if not (math.isfinite(lon) and math.isfinite(lat)):
            raise BadRequest("lon and lat must be numbers / 坐标须为数字")
        found = {"how": "given"}
    elif address and address.strip():
        lon, lat, found = _geocoded(conn, address.strip())
    else:
        raise BadRequest("报警须给出位置 / give the alarm's point (lon and lat) or its address")
    point = "SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), :storage) AS g"
    params = {"lon": float(lon), "lat": float(lat), "storage": STORAGE_SRID}
    areas = conn.execute(
        text(f"""WITH p AS ({point})
                 SELECT a.level, a.code::text, a.name FROM admin_areas a, p
                 WHERE ST_Intersects(a.geom, p.g)
                 UNION ALL
                 SELECT 4, g.code::text, g.name FROM grids g, p WHERE ST_Intersects(g.geom, p.g)
                 ORDER BY 1, 2"""),
        params,
    ).all()
    containing: dict[int, tuple[str, str]] = {}
    for level, code, name in areas:
        containing.setdefault(int(level), (code, name))
    if 1 not in containing:
        raise BadRequest(
            f"报警点不在本区内 / the point ({lon}, {lat}) lies outside the district: check the "
            "coordinates and their CRS (CGCS2000/WGS 84 lon, lat; or crs GCJ-02)"
        )
    theirs = containing[1][0][:6]
    if viewer.district is not None and theirs != viewer.district:
        raise Forbidden(
            f"报警点在 {containing[1][1]} ({theirs}), 不在你的辖区 {viewer.district} / the point "
            f"lies in district {theirs}, not yours ({viewer.district}): it is answered by that "
            "district's command centre or the city's 119 centre"
        )
    x, y = (float(v) for v in _transformer(srid).transform(lon, lat))
    margins = {
        f"margin_{r}": margin_degrees(r, lat)
        for r in {KEY_UNIT_RADIUS_M, HYDRANT_RADIUS_M, NEARBY_RADIUS_M, RESIDENT_RADIUS_M}
    }
    # a district-bound responder's answer holds their district's units, hydrants, hazards and
    # buildings only, also within the radius across the boundary (those are the other's to list)
    near = {**params, **margins, "now": now, "district": viewer.district}
    with_p = f"WITH p AS (SELECT g, ST_Transform(g, {srid}) AS m FROM ({point}) q) "
    key_units = conn.execute(
        text(
            with_p
            + _near(
                "organisations",
                srid,
                "t.id, t.name, t.credit_code::text, t.kind, t.legal_person, "
                "t.contact_phone::text, t.grid_code::text",
                f"t.is_key_unit AND {_MINE}",
                NEARBY_RADIUS_M,
            )
            + " ORDER BY d, t.id"
        ),
        near,
    ).all()
    unit = key_units[0] if key_units and key_units[0].d <= KEY_UNIT_RADIUS_M else None
    if unit is not None:
        containing[5] = (unit.credit_code, unit.name)
    codes = [code for code, _ in containing.values()]
    contacts: dict[str, list] = {}
    for level, code, post, name, phone in conn.execute(
        text("""SELECT level, unit_code, post, name, phone::text FROM duty_contacts
                WHERE unit_code = ANY(:codes) ORDER BY level, id"""),
        {"codes": codes},
    ):
        contacts.setdefault(code, []).append((level, post, name, phone))
    workers = []
    if 4 in containing:
        workers = conn.execute(
            text("""SELECT u.username, u.display_name FROM users u
                    JOIN user_grids ug ON ug.user_id = u.id
                    WHERE ug.grid_code = :g AND u.active ORDER BY u.username"""),
            {"g": containing[4][0]},
        ).all()
    contact_plan, unit_plan = _plans(viewer)

    levels = []
    for level, key, zh in LEVELS:
        code, name = containing.get(level, (None, None))
        entry = {
            "level": level,
            "kind": key,
            "kind_zh": zh,
            "code": code,
            "name": name,
            "contacts": [
                {
                    "post": post,
                    "name": contact_plan.mask_value("name", person),
                    "phone": contact_plan.mask_value("phone", phone),
                }
                for lv, post, person, phone in contacts.get(code, [])
                if lv == level
            ],
        }
        if level == 4:
            entry["grid_workers"] = [
                {"username": u, "name": contact_plan.mask_value("name", n)} for u, n in workers
            ]
        if level == 5:
            if unit is None:
                entry["none"] = f"{KEY_UNIT_RADIUS_M} 米内无消防重点单位 / no key unit within "
                entry["none"] += f"{KEY_UNIT_RADIUS_M} m"
            else:
                entry.update(
                    id=int(unit.id),
                    distance_m=round(float(unit.d), 1),
                    legal_person=unit_plan.mask_value("legal_person", unit.legal_person),
                    contact_phone=unit_plan.mask_value("contact_phone", unit.contact_phone),
                )
        levels.append(entry)

    hydrants = conn.execute(
        text(
            with_p
            + _near(
                "facilities",
                srid,
                "t.id, t.name",
                f"t.kind = 'hydrant' AND {_MINE}",
                HYDRANT_RADIUS_M,
            )
            + " ORDER BY d, t.id"
        ),
        near,
    ).all()
    hazards = conn.execute(
        text(
            with_p
            + _near(
                "hazards",
                srid,
                "t.id, t.code, t.category, t.level, t.status, t.deadline, "
                "t.deadline < :now AS overdue",
                f"t.status <> 'closed' AND {_MINE}",
                NEARBY_RADIUS_M,
            )
            + " ORDER BY t.level, d, t.id"
        ),
        near,
    ).all()
    safety = viewer.role in ("safety", "admin")
    buildings = conn.execute(
        text(
            with_p
            + f"""SELECT b.id, b.code, b.name, b.use, ST_Distance(ST_Transform(b.geom, {srid}), p.m) AS d,
                         b.residents AS counted, r.n, r.elderly
                  FROM buildings b CROSS JOIN p
                  LEFT JOIN LATERAL (
                      SELECT count(*) AS n,
                             count(*) FILTER (WHERE x.birth_date <= CAST(:elderly_born AS date))
                                 AS elderly
                      FROM houses h JOIN residents x ON x.house_id = h.id
                      WHERE h.building_id = b.id) r ON true
                  WHERE b.geom && ST_Expand(p.g, :margin_{RESIDENT_RADIUS_M})
                    AND ST_DWithin(ST_Transform(b.geom, {srid}), p.m, {RESIDENT_RADIUS_M})
                    AND {_MINE.replace("t.", "b.")}
                  ORDER BY d, b.id"""
        ),
        {**near, "elderly_born": now.date().replace(year=now.year - ELDERLY_AGE)},
    ).all()
    residents = []
    for b in buildings:
        from_records = bool(b.n)
        entry = {
            "id": int(b.id),
            "code": b.code,
            "name": b.name,
            "use": b.use,
            "distance_m": round(float(b.d), 1),
            "residents": int(b.n) if from_records else int(b.counted or 0),
            "source": "records"
            if from_records
            else ("building counts" if b.counted is not None else "none"),
        }
        if safety and from_records:
            entry["elderly"] = int(b.elderly)
        residents.append(entry)

    answer = {
        "received_at": now.isoformat(),
        "point": {"lon": float(lon), "lat": float(lat), "crs": "CGCS2000", **found},
        "levels": levels,
        "fire_stations": {
            "by": "road network travel time / 路网行车时间",
            "assumptions": ASSUMPTIONS,
            "nearest": nearest_stations(conn, x, y, srid),
        },
        "hydrants": {
            "radius_m": HYDRANT_RADIUS_M,
            "count": len(hydrants),
            "items": [
                {
                    "id": int(h.id),
                    "name": h.name,
                    "distance_m": round(float(h.d), 1),
                    "lon": h.lon,
                    "lat": h.lat,
                }
                for h in hydrants
            ],
        },
        "key_units": {
            "radius_m": NEARBY_RADIUS_M,
            "count": len(key_units),
            "items": [
                {
                    "id": int(k.id),
                    "name": k.name,
                    "credit_code": k.credit_code,
                    "kind": k.kind,
                    "distance_m": round(float(k.d), 1),
                    "lon": k.lon,
                    "lat": k.lat,
                    "legal_person": unit_plan.mask_value("legal_person", k.legal_person),
                    "contact_phone": unit_plan.mask_value("contact_phone", k.contact_phone),
                }
                for k in key_units
            ],
        },
        "hazards": {
            "radius_m": NEARBY_RADIUS_M,
            "open": len(hazards),
            "overdue": sum(bool(h.overdue) for h in hazards),
            "items": [
                {
                    "id": int(h.id),
                    "code": h.code,
                    "category": h.category,
                    "level": int(h.level),
                    "status": h.status,
                    "deadline": h.deadline.isoformat(),
                    "overdue": bool(h.overdue),
                    "distance_m": round(float(h.d), 1),
                    "lon": h.lon,
                    "lat": h.lat,
                }
                for h in hazards
            ],
        },
        "residents": {
            "radius_m": RESIDENT_RADIUS_M,
            "total": sum(r["residents"] for r in residents),
            "buildings": residents,
            "names": "不提供住户姓名 / counts only: no names are given",
        },
        "masked": not safety,
        "crs": f"EPSG:{srid}",
    }
    answer["seconds"] = round(time.perf_counter() - started, 4)
    if keep:
        answer["alarm_id"] = conn.execute(
            text("""INSERT INTO fire_alarms (received_at, received_by, address, response, seconds,
                                             geom)
                    VALUES (:at, :by, :address, CAST(:response AS jsonb), :seconds,
                            ST_SetSRID(ST_MakePoint(:lon, :lat), :storage))
                    RETURNING id"""),
            {
                "at": now,
                "by": viewer.username,
                "address": address,
                "response": orjson.dumps(answer).decode(),
                "seconds": answer["seconds"],
                **params,
            },
        ).scalar_one()
        if safety:  # names and phones were served raw: the read is audited with the alarm
            audit.record(
                conn,
                viewer,
                "fire_alarm",
                "fire_alarms",
                answer["alarm_id"],
                purpose=PURPOSE,
                detail={"raw": ["duty_contacts", "organisations"]},
            )
    return answer


def recent(conn: Connection, limit: int = 50, district: str | None = None) -> list[dict]:
    """The latest alarms, newest first: when, who took it, where, and how long the answer took
    (``district``: the alarms whose point lay in it, by the district level of their answer)."""
    rows = conn.execute(
        text("""SELECT id, received_at, received_by, address, seconds, ST_X(geom), ST_Y(geom),
                       response #>> '{levels,3,code}', response #>> '{levels,1,name}'
                FROM fire_alarms
                WHERE CAST(:district AS text) IS NULL
                   OR left(response #>> '{levels,0,code}', 6) = :district
                ORDER BY received_at DESC, id DESC LIMIT :n"""),
        {"n": int(limit), "district": district},
    ).all()
    return [
        {
            "id": int(r[0]),
            "received_at": r[1].isoformat(),
            "received_by": r[2],
            "address": r[3],
            "seconds": float(r[4]),
            "lon": r[5],
            "lat": r[6],
            "grid_code": r[7],
            "street": r[8],
        }
        for r in rows
    ]


def kept(conn: Connection, alarm_id: int) -> dict | None:
    """One alarm as kept: its answer exactly as given."""
    row = conn.execute(
        text("""SELECT id, received_at, received_by, address, seconds, response
                FROM fire_alarms WHERE id = :id"""),
        {"id": int(alarm_id)},
    ).one_or_none()
    if row is None:
        return None
    return {
        "id": int(row.id),
        "received_at": row.received_at.isoformat(),
        "received_by": row.received_by,
        "address": row.address,
        "seconds": float(row.seconds),
        "response": row.response,
    }
