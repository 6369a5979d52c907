"""预警的读取: the live list of open warnings (for the safety map), a sensor's history, and the
change feed behind the live stream.

The feed is polled, not pushed: a stream asks every second or two for what changed since its
cursor, on a pooled connection it gives back at once. Its cursor is the highest warning id it has
told of. New warnings are read by id alone, which is sound because geo.safety.readings writes
warning rows under one advisory lock held to commit (ids become visible in increasing order).
A warning's clearing changes no id, so the stream remembers which of the warnings it told of are
still open and asks after those; a stream resumed from a cursor (``Last-Event-ID``) is told again
of the clearings of the last :data:`RESUME_CLEARED_HOURS` hours — a clearing heard twice is
harmless, one missed would leave a marker on the map.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.engine import Connection

from geo.errors import NotFound

#: how far back (by ``cleared_at``) a resumed stream is told of clearings again
RESUME_CLEARED_HOURS = 24
#: most warnings one poll of the feed hands over (the rest come with the next poll)
FEED_BATCH = 1_000

_COLUMNS = """
    w.id, w.sensor_id, s.code AS sensor_code, s.kind, s.unit, w.threshold,
    s.threshold AS sensor_threshold, s.status AS sensor_status, s.grid_code,
    w.started_at, w.first_value, w.peak_value, w.last_value, w.last_at, w.readings, w.cleared_at,
    ST_X(s.geom) AS lon, ST_Y(s.geom) AS lat
"""


def _row(row) -> dict:
    item = dict(row._mapping)
    for key in ("started_at", "last_at", "cleared_at"):
        if item[key] is not None:
            item[key] = item[key].isoformat()
    item["open"] = item["cleared_at"] is None
    return item


#: a sensor in the feed's district (None: every district); the sensor is ``s``
_IN_DISTRICT = "(CAST(:district AS text) IS NULL OR s.district_code = :district)"


def live(
    conn: Connection,
    kind: str | None = None,
    grid: str | None = None,
    limit: int = 5_000,
    district: str | None = None,
) -> list[dict]:
    """The open warnings, newest first, with their sensors' code, kind, unit, grid and place
    (``district``: only that district's sensors, filtered before the limit)."""
    rows = conn.execute(
        text(f"""SELECT {_COLUMNS} FROM sensor_warnings w JOIN sensors s ON s.id = w.sensor_id
                 WHERE w.cleared_at IS NULL
                   AND (CAST(:kind AS text) IS NULL OR s.kind = :kind)
                   AND (CAST(:grid AS text) IS NULL OR s.grid_code = :grid)
                   AND {_IN_DISTRICT}
                 ORDER BY w.started_at DESC, w.id DESC LIMIT :limit"""),
        {"kind": kind, "grid": grid, "limit": limit, "district": district},
    )
    return [_row(r) for r in rows]


def latest_id(conn: Connection) -> int:
    """The highest warning id: a stream started from it misses nothing the list did not show."""
    return int(conn.execute(text("SELECT coalesce(max(id), 0) FROM sensor_warnings")).scalar_one())


def as_features(warnings: list[dict]) -> dict:
    """The warnings as a GeoJSON FeatureCollection of the sensors' points (the map's layer)."""
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": w["id"],
                "geometry": None
                if w["lon"] is None
                else {"type": "Point", "coordinates": [w["lon"], w["lat"]]},
                "properties": {k: v for k, v in w.items() if k not in ("lon", "lat")},
            }
            for w in warnings
        ],
    }


def history(conn: Connection, sensor_id: int, limit: int = 200) -> dict:
    """A sensor and its warnings, newest first (404 when there is no such sensor)."""
    sensor = conn.execute(
        text("""SELECT id, code, kind, unit, threshold, status, grid_code,
                       ST_X(geom) AS lon, ST_Y(geom) AS lat
                FROM sensors WHERE id = :id"""),
        {"id": sensor_id},
    ).first()
    if sensor is None:
        raise NotFound(f"no sensor {sensor_id}: take the id from GET /safety/warnings")
    rows = conn.execute(
        text(f"""SELECT {_COLUMNS} FROM sensor_warnings w JOIN sensors s ON s.id = w.sensor_id
                 WHERE w.sensor_id = :id ORDER BY w.started_at DESC, w.id DESC LIMIT :limit"""),
        {"id": sensor_id, "limit": limit},
    )
    return {"sensor": dict(sensor._mapping), "warnings": [_row(r) for r in rows]}


@dataclass
class Feed:
    """One stream's place in the feed: the highest warning id told of, and the open ones it told
    of (whose clearing it still owes); ``district``: only that district's sensors are told of (a
    district-bound reader's stream, or ``?district=``), None: the whole city's."""

    cursor: int
    watching: set[int] = field(default_factory=set)
    district: str | None = None


def start(
    conn: Connection, after: int | None, district: str | None = None
) -> tuple[Feed, list[tuple[str, dict, int]]]:
    """A feed from now (``after`` None), or resumed after warning id ``after``: the clearings of
    the last hours are told again, then what is newer comes with the polls. ``district``: the
    feed tells only of that district's sensors."""
    if after is None:
        feed = Feed(latest_id(conn), district=district)
        feed.watching = _open_ids(conn, feed.cursor, district)
        return feed, []
    feed = Feed(after, _open_ids(conn, after, district), district)
    rows = conn.execute(
        text(f"""SELECT {_COLUMNS} FROM sensor_warnings w JOIN sensors s ON s.id = w.sensor_id
                 WHERE w.id <= :after AND w.cleared_at IS NOT NULL
                   AND w.cleared_at >= now() - make_interval(hours => :hours) AND {_IN_DISTRICT}
                 ORDER BY w.cleared_at, w.id LIMIT :limit"""),
        {"after": after, "hours": RESUME_CLEARED_HOURS, "limit": FEED_BATCH, "district": district},
    )
    return feed, [("cleared", _row(r), after) for r in rows]


def _open_ids(conn: Connection, upto: int, district: str | None = None) -> set[int]:
    return set(
        conn.execute(
            text(f"""SELECT w.id FROM sensor_warnings w JOIN sensors s ON s.id = w.sensor_id
                     WHERE w.cleared_at IS NULL AND w.id <= :upto AND {_IN_DISTRICT}"""),
            {"upto": upto, "district": district},
        ).scalars()
    )


def poll(conn: Connection, feed: Feed) -> list[tuple[str, dict, int]]:
    """What changed since the feed's cursor, oldest first, as (event, warning, cursor after it):
    ``warning`` for each new warning (followed by ``cleared`` if it has ended already),
    ``cleared`` for each watched one that has ended. Moves the feed on."""
    events: list[tuple[str, dict, int]] = []
    if feed.watching:
        ended = conn.execute(
            text(f"""SELECT {_COLUMNS} FROM sensor_warnings w JOIN sensors s ON s.id = w.sensor_id
                     WHERE w.id = ANY(:ids) AND w.cleared_at IS NOT NULL
                     ORDER BY w.cleared_at, w.id"""),
            {"ids": sorted(feed.watching)},
        )
        for r in ended:
            events.append(("cleared", _row(r), feed.cursor))
            feed.watching.discard(r.id)
    # another district's warnings are skipped by the query, not read and dropped: the cursor
    # moves past the ids it is told of, and a later poll never meets the skipped ones
    fresh = conn.execute(
        text(f"""SELECT {_COLUMNS} FROM sensor_warnings w JOIN sensors s ON s.id = w.sensor_id
                 WHERE w.id > :cursor AND {_IN_DISTRICT} ORDER BY w.id LIMIT :limit"""),
        {"cursor": feed.cursor, "limit": FEED_BATCH, "district": feed.district},
    )
    for r in fresh:
        item = _row(r)
        feed.cursor = max(feed.cursor, r.id)
        events.append(("warning", item, feed.cursor))
        if item["open"]:
            feed.watching.add(r.id)
        else:
            events.append(("cleared", item, feed.cursor))
    return events
