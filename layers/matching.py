"""Matching departmental features to the standard data: grid, building, address (四标).

Run on the freshly built table inside the ingest's transaction, set-based (one statement per rule
for the whole layer):

- grid: the standard grid containing the feature's point on surface (a point on a shared edge
  takes the lowest grid code, so the answer does not depend on the plan);
- building: the nearest standard building within N metres, measured in the metric CRS;
- address: the address text (if the layer has one) matched to the standard address library
  (geo.addressing), else the nearest standard address within N metres. A text match far from the
  feature is kept but warned about: one of the two is wrong, and a person should look.

Distances are computed in the metric CRS (Gauss-Krüger metres); candidates are first narrowed with
the GiST index by a box in degrees that is never smaller than the distance asked for.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

from geo.addressing import geocode
from layers.catalogue import Layer

#: metres per degree of longitude is at most ~111 km: a box of d/90,000° holds every point
#: within d metres anywhere south of 35.7°N (Lishui is at 31.6°N)
METRES_PER_DEGREE_FLOOR = 90_000.0


def match_grid(conn: Connection, table: str) -> int:
    """Set ``grid_code``; returns how many features found a grid."""
    return conn.execute(
        text(f"""
        UPDATE {table} t SET grid_code = m.code
        FROM (SELECT DISTINCT ON (s.id) s.id, g.code
              FROM grids g JOIN {table} s
                ON g.geom && s.geom AND ST_Intersects(g.geom, ST_PointOnSurface(s.geom))
              ORDER BY s.id, g.code) m
        WHERE t.id = m.id
        """)
    ).rowcount


def match_building(conn: Connection, table: str, within_m: float, metric_srid: int) -> int:
    """Set ``building_code``/``building_distance_m`` to the nearest building within ``within_m``."""
    return conn.execute(
        text(f"""
        UPDATE {table} t SET building_code = m.code, building_distance_m = m.d
        FROM (SELECT s.id, c.code, c.d FROM {table} s
              CROSS JOIN LATERAL (
                  SELECT b.code, ST_Distance(ST_Transform(b.geom, :srid),
                                             ST_Transform(s.geom, :srid)) AS d
                  FROM buildings b WHERE b.geom && ST_Expand(s.geom, :deg)
                  ORDER BY d, b.code LIMIT 1) c
              WHERE c.d <= :within) m
        WHERE t.id = m.id
        """),
        {"srid": metric_srid, "deg": within_m / METRES_PER_DEGREE_FLOOR, "within": within_m},
    ).rowcount


def match_address(
    conn: Connection,
    table: str,
    spec: Layer,
    address_texts: dict[int, str],
    metric_srid: int,
) -> tuple[dict[str, int], list[tuple[int, str]]]:
    """Set the address columns: by text first, then nearest within the layer's distance.

    Returns counts (``address_text``, ``address_nearest``, ``address_none``) and warnings
    (row, reason) for text matches lying farther than the layer's distance from the feature.
    """
    within = spec.ingest.address_within_m
    by_text = 0
    warnings: list[tuple[int, str]] = []
    pairs = [(row, t) for row, t in address_texts.items() if t and t.strip()]
    if pairs:
        found = [g for g in geocode(conn, pairs) if g.matched]
        if found:
            conn.execute(
                text(
                    f"UPDATE {table} SET address_code = :code, address_match = :how WHERE id = :id"
                ),
                [{"code": g.code, "how": f"text ({g.tier})", "id": g.key} for g in found],
            )
            by_text = len(found)
            far = conn.execute(
                text(f"""
                UPDATE {table} t SET address_distance_m = ST_Distance(
                    ST_Transform(a.geom, :srid), ST_Transform(t.geom, :srid))
                FROM addresses a WHERE a.code = t.address_code
                RETURNING t.id, t.address_code, t.address_distance_m
                """),
                {"srid": metric_srid},
            ).all()
            for row_id, code, distance in far:
                if distance > within:
                    warnings.append(
                        (
                            int(row_id),
                            f"the address text matches standard address {code}, which lies "
                            f"{distance:,.0f} m from the feature (more than {within:g} m)",
                        )
                    )
    nearest = conn.execute(
        text(f"""
        UPDATE {table} t SET address_code = m.code, address_match = 'nearest',
               address_distance_m = m.d
        FROM (SELECT s.id, c.code, c.d FROM {table} s
              CROSS JOIN LATERAL (
                  SELECT a.code, ST_Distance(ST_Transform(a.geom, :srid),
                                             ST_Transform(ST_PointOnSurface(s.geom), :srid)) AS d
                  FROM addresses a WHERE a.geom && ST_Expand(s.geom, :deg)
                  ORDER BY d, a.code LIMIT 1) c
              WHERE s.address_code IS NULL AND c.d <= :within) m
        WHERE t.id = m.id
        """),
        {"srid": metric_srid, "deg": within / METRES_PER_DEGREE_FLOOR, "within": within},
    ).rowcount
    total = conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
    counts = {
        "address_text": by_text,
        "address_nearest": nearest,
        "address_none": total - by_text - nearest,
    }
    return counts, sorted(warnings)
