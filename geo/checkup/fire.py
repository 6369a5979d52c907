"""Fire-rescue reach (消防救援5分钟可达): by the road network, and by the radius approximation.

The network is the road layer itself, noded where roads cross and weighted by travel time at each
road class's speed (networkx, from the core stack: no routing extension to install; at a
district's 10⁴ road segments one Dijkstra from all stations at once takes a fraction of a
second). A station and a home join the network at their nearest node, at a walking-pace access
speed. The five minutes include the turnout (GB 51054-2014: at the edge of the station's district
within 5 minutes of the call, about one minute of it turnout), so the travel budget is four.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import shapely
from shapely.strtree import STRtree

from geo.checkup.coverage import homes_near
from geo.checkup.registry import indicator
from geo.checkup.staging import Context

SPEEDS_KMH = {"expressway": 60, "arterial": 45, "secondary": 35, "branch": 25, "rural": 30}


def road_graph(ctx: Context, speeds: dict[str, float], default_kmh: float):
    """The road network as a graph of travel seconds, and its nodes' coordinates."""
    key = ("roads", tuple(sorted(speeds.items())), default_kmh)
    if key in ctx.cache:
        return ctx.cache[key]
    rows = ctx.rows("SELECT class, ST_AsBinary(ST_Transform(geom, :srid)) FROM roads")
    graph = nx.Graph()
    if not rows:
        ctx.cache[key] = (graph, np.empty((0, 2)))
        return ctx.cache[key]
    lines = shapely.from_wkb([r[1] for r in rows])
    speed = np.array([float(speeds.get(r[0] or "", default_kmh)) / 3.6 for r in rows])
    segments = shapely.get_parts(shapely.node(shapely.multilinestrings(lines)))
    # each noded piece takes the fastest road it lies on
    mid = shapely.line_interpolate_point(segments, 0.5, normalized=True)
    piece, road = STRtree(lines).query(mid, predicate="dwithin", distance=0.05)
    fastest = np.zeros(len(segments))
    np.maximum.at(fastest, piece, speed[road])
    fastest[fastest == 0] = default_kmh / 3.6
    index: dict[tuple, int] = {}
    for segment, v in zip(segments, fastest, strict=True):
        coords = shapely.get_coordinates(segment)
        a, b = (tuple(np.round(coords[k], 1)) for k in (0, -1))
        ia, ib = (index.setdefault(p, len(index)) for p in (a, b))
        seconds = segment.length / v
        if ia != ib and seconds < graph.get_edge_data(ia, ib, {"t": np.inf})["t"]:
            graph.add_edge(ia, ib, t=seconds, m=segment.length)  # m: for the 119 answer
    nodes = np.array(list(index), dtype=float)
    ctx.cache[key] = (graph, nodes)
    return ctx.cache[key]


def seconds_from_stations(ctx: Context, s: dict, points: np.ndarray) -> np.ndarray:
    """Travel seconds from the nearest fire station (by road) to each point; inf beyond reach."""
    graph, nodes = road_graph(ctx, s["speeds_kmh"], float(s["default_kmh"]))
    stations = np.array(
        [
            (r[0], r[1])
            for r in ctx.rows(
                "SELECT ST_X(geom), ST_Y(geom) FROM ck_facilities WHERE kind = 'fire_station'"
            )
        ],
        dtype=float,
    )
    out = np.full(len(points), np.inf)
    if not len(nodes) or not len(stations) or not len(points):
        return out
    access = float(s["access_kmh"]) / 3.6
    budget = float(s["minutes"]) * 60 - float(s["turnout_s"])
    tree = STRtree(shapely.points(nodes))
    start = tree.nearest(shapely.points(stations))
    start_gap = np.hypot(*(nodes[start] - stations).T) / access
    source = -1
    graph = graph.copy()
    for node, gap in zip(start, start_gap, strict=True):
        if graph.has_node(int(node)):
            previous = graph.get_edge_data(source, int(node), {"t": np.inf})["t"]
            graph.add_edge(source, int(node), t=min(previous, gap))
    reached = nx.single_source_dijkstra_path_length(graph, source, cutoff=budget, weight="t")
    near = tree.nearest(shapely.points(points))
    gap = np.hypot(*(nodes[near] - points).T) / access
    along = np.array([reached.get(int(n), np.inf) for n in near])
    return along + gap


FIRE = dict(
    dimension="safety",
    level="block",
    unit="%",
    scale=100.0,
    surface=True,
    standard="GB 51054-2014 城市消防站设计规范; 城市体检指标体系",
)


@indicator(
    id="fire_5min_coverage",
    name_zh="消防救援5分钟可达覆盖率",
    name_en="Fire rescue within 5 minutes (road network)",
    definition="Dwellings a fire engine reaches by road within 5 minutes of the call (one minute "
    "turnout, then each road class at its speed) ÷ all dwellings.",
    target=90.0,
    direction=">=",
    settings={
        "minutes": 5,
        "turnout_s": 60,
        "speeds_kmh": SPEEDS_KMH,
        "default_kmh": 25,
        "access_kmh": 15,
    },
    **FIRE,
)
def fire_5min_coverage(ctx: Context, item) -> pd.DataFrame:
    rows = ctx.rows(
        """SELECT h.grid_code AS code, c.h3_9, h.dwellings AS den, h.dwellings_from AS source,
                  ST_X(h.at) AS x, ST_Y(h.at) AS y
           FROM ck_homes h LEFT JOIN ck_cells c USING (id)
           WHERE h.use = 'residential' AND h.dwellings > 0 AND h.grid_code IS NOT NULL"""
    )
    frame = pd.DataFrame(rows, columns=["code", "h3_9", "den", "source", "x", "y"])
    seconds = seconds_from_stations(ctx, ctx.of(item), frame[["x", "y"]].to_numpy(dtype=float))
    budget = float(ctx.of(item)["minutes"]) * 60 - float(ctx.of(item)["turnout_s"])
    frame["num"] = np.where(seconds <= budget, frame.den, 0)
    return frame.drop(columns=["x", "y"])


@indicator(
    id="fire_5min_radius_coverage",
    name_zh="消防救援5分钟覆盖率(半径估算)",
    name_en="Fire rescue within 5 minutes (radius approximation)",
    definition="Dwellings within 1,500 m of a fire station (a standard station's 7 km² district "
    "as a circle) ÷ all dwellings: the first approximation, beside the road-network figure.",
    settings={"radius_m": 1500},
    better="higher",
    **FIRE,
)
def fire_5min_radius_coverage(ctx: Context, item) -> pd.DataFrame:
    from geo.checkup.coverage import near_facility

    return homes_near(ctx, near_facility(["fire_station"]), radius=float(ctx.of(item)["radius_m"]))
