"""Vector tiles, onemap against tipg, on the same database and the same list of tiles.

The method is `features.py`'s (both servers started the same way, a seeded request list, the same
answers checked first, closed-loop load with wrk, interleaved repetitions, medians, CPU split
between PostgreSQL, the servers and the load generator), applied to vector tiles of one layer:

- the request list: ``--tiles`` distinct tiles at zooms 12–16, each around a seeded random
  feature of the layer (so dense places come up as often as they are dense);
- same answers: every tile from both servers, decoded, must hold the same number of features;
- three systems under load: onemap with its cache off (``ONEMAP_TILE_CACHE=off``: every tile
  drawn), onemap with its cache warmed (every tile already drawn once), and tipg (no cache);
- the base map's multi-layer tile (land use, water, parks, roads, buildings) from onemap, uncached,
  on the same tile list, against tipg's single buildings tile.

    python benchmarks/tiles.py --seconds 20 --repeats 2

Targets (issue 11): uncached at least 2× tipg's throughput at equal or better p99, cached at
least 10×; the map tile no slower than tipg's buildings tile. Results go to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

import mapbox_vector_tile
import morecantile

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import features as F  # noqa: E402  (the features benchmark's machinery)
from procstat import CpuMeter  # noqa: E402

TMS = morecantile.tms.get("WebMercatorQuad")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--collection", default="buildings")
    p.add_argument("--tiles", type=int, default=300, help="distinct tiles in the request list")
    p.add_argument("--zooms", default="12-16")
    p.add_argument("--seed", type=int, default=20261123)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--warmup", type=float, default=5)
    p.add_argument("--settle", type=float, default=11)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto")
    p.add_argument(
        "--gzip",
        action="store_true",
        help="send Accept-Encoding: gzip, as every browser does (wrk only)",
    )
    p.add_argument(
        "--systems",
        default="onemap_uncached,onemap_cached,tipg,onemap_map",
        help="which systems to load (tipg always answers the same-answers check)",
    )
    return p.parse_args(argv)


def tile_list(conn, table: str, count: int, zooms: range, seed: int) -> list[morecantile.Tile]:
    rng = random.Random(seed)
    total = F.scalar(conn, f"SELECT count(*) FROM {table}")
    seen: dict[tuple, morecantile.Tile] = {}
    while len(seen) < count:
        offset = rng.randrange(total)
        with conn.cursor() as cur:
            cur.execute(
                f"SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM {table} "
                "ORDER BY id OFFSET %s LIMIT 1) s",
                (offset,),
            )
            lon, lat = cur.fetchone()
        t = TMS.tile(lon, lat, rng.choice(list(zooms)))
        seen[(t.z, t.x, t.y)] = t
    return list(seen.values())


def servers(args, tcp_url: str, tipg_python: Path, workdir: Path) -> dict[str, F.Server]:
    """onemap uncached, onemap cached, tipg: started as features.py starts its two."""
    made = F.make_servers(
        argparse.Namespace(collection=args.collection, limit=1, workers=args.workers),
        tcp_url,
        tipg_python,
        workdir,
    )
    ours, tipg = made["ours"], made["tipg"]
    uncached = F.Server(
        name="onemap_uncached",
        command=ours.command,
        env=ours.env | {"ONEMAP_TILE_CACHE": "off"},
        cwd=ours.cwd,
        port=ours.port,
        ready_path=ours.ready_path,
        items_path=f"/tiles/{args.collection}/{{z}}/{{x}}/{{y}}.mvt",
        logfile=workdir / "onemap-uncached.log",
    )
    port = F.free_port()
    cached = F.Server(
        name="onemap_cached",
        command=[*ours.command[:-4], "--port", str(port), *ours.command[-2:]],
        env=ours.env | {"ONEMAP_TILE_CACHE": str(workdir / "tile-cache")},
        cwd=ours.cwd,
        port=port,
        ready_path=ours.ready_path,
        items_path=f"/tiles/{args.collection}/{{z}}/{{x}}/{{y}}.mvt",
        logfile=workdir / "onemap-cached.log",
    )
    tipg.items_path = (
        f"/collections/public.{args.collection}/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}"
    )
    return {"onemap_uncached": uncached, "onemap_cached": cached, "tipg": tipg}


def count_features(body: bytes) -> int:
    if not body:
        return 0
    return sum(len(layer["features"]) for layer in mapbox_vector_tile.decode(body).values())


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, F._interrupt)
    low, _, high = args.zooms.partition("-")
    zooms = range(int(low), int(high or low) + 1)
    workdir = Path(tempfile.mkdtemp(prefix="onemap-bench-tiles-"))
    running: dict[str, F.Server] = {}
    conn = F.connect(F.onemap_db_url())
    try:
        facts = F.check_database(conn, args.collection)
        tiles = tile_list(conn, args.collection, args.tiles, zooms, args.seed)
        F.log(f"{len(tiles)} tiles at zooms {args.zooms} around {args.collection}")
        tipg_python = F.ensure_tipg_venv()
        wrk = F.ensure_wrk() if args.loadgen in ("auto", "wrk") else None
        running = servers(args, F.onemap_db_url(tcp=True), tipg_python, workdir)
        for server in running.values():
            server.start()
        for server in running.values():
            server.wait_ready()

        def path(server: F.Server, t) -> str:
            return server.items_path.format(z=t.z, x=t.x, y=t.y)

        differ, features = [], 0
        for t in tiles:  # same answers (and the cached server drawing every tile once)
            counts = {}
            for name, server in running.items():
                status, _, body, _ = F.fetch(server.base + path(server, t))
                counts[name] = count_features(body) if status == 200 else f"HTTP {status}"
            features += counts["tipg"] if isinstance(counts["tipg"], int) else 0
            if len(set(counts.values())) > 1:
                differ.append({"tile": f"{t.z}/{t.x}/{t.y}", **counts})
        F.log(f"same answers: {len(tiles) - len(differ)}/{len(tiles)} tiles agree")
        meter = CpuMeter(
            F.postmaster_pid(conn),
            {n: s.proc.pid for n, s in running.items() if s.proc},
            F.scalar(conn, "SELECT current_database()"),
        )
        lists = {}
        for name, server in running.items():
            lists[name] = workdir / f"{name}.txt"
            lists[name].write_text("\n".join(path(server, t) for t in tiles) + "\n")
        # the base map's tile from the uncached server (its CPU is counted under that name)
        map_server = F.Server(**running["onemap_uncached"].__dict__)
        map_server.items_path = "/maps/base/tiles/{z}/{x}/{y}.mvt"
        lists["onemap_map"] = workdir / "map.txt"
        lists["onemap_map"].write_text("\n".join(path(map_server, t) for t in tiles) + "\n")
        wanted = set(args.systems.split(",")) | {"tipg"}
        plan = [(n, s) for n, s in [*running.items(), ("onemap_map", map_server)] if n in wanted]
        load_args = argparse.Namespace(
            threads=args.threads,
            concurrency=args.concurrency,
            headers=("Accept-Encoding: gzip",) if args.gzip else (),
        )
        for name, server in plan:
            F.run_load(F.load_command(load_args, wrk, server.base, lists[name], args.warmup))
        time.sleep(args.settle)
        runs = []
        for rep in range(1, args.repeats + 1):
            for name, server in plan:
                command = F.load_command(load_args, wrk, server.base, lists[name], args.seconds)
                run = F.measure(server, command, meter, conn, args.settle)
                run["system"], run["repetition"] = name, rep
                runs.append(run)
                F.log(
                    f"run {rep}: {name}: {run['rps']:.0f} tiles/s, p50 {run['p50_ms']:.1f} ms, "
                    f"p99 {run['p99_ms']:.1f} ms, errors {run['errors']}, "
                    f"PG {run['cpu_ms_per_request']['postgres']:.2f} / server "
                    f"{run['cpu_ms_per_request']['server']:.2f} ms CPU per tile"
                )
        names = [n for n, _ in plan]
        med = {n: F.medians([r for r in runs if r["system"] == n]) for n in names}
        tipg = med["tipg"]
        result = {
            "date": dt.date.today().isoformat(),
            "collection": args.collection,
            "database": facts,
            "tiles": len(tiles),
            "zooms": args.zooms,
            "features_in_list": features,
            "tiles_differing": differ[:20],
            "tiles_differing_count": len(differ),
            "load": {
                "concurrency": args.concurrency,
                "seconds": args.seconds,
                "repeats": args.repeats,
                "workers": args.workers,
                "generator": "wrk" if wrk else "loadgen.py",
                "accept_gzip": args.gzip,
            },
            "medians": {
                n: {
                    k: med[n][k]
                    for k in ("rps", "p50_ms", "p99_ms", "errors", "cpu_ms_per_request")
                }
                for n in names
            },
            "ratios_vs_tipg": {
                n: {
                    "rps": F.ratio(med[n]["rps"], tipg["rps"]),
                    "p99_ms": F.ratio(med[n]["p99_ms"], tipg["p99_ms"]),
                }
                for n in names
                if n != "tipg"
            },
        }
        print(json.dumps(result, ensure_ascii=False, indent=2))
        out = HERE / "results" / f"tiles-{result['date']}{'-gzip' if args.gzip else ''}.json"
        out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        return 0
    finally:
        for server in running.values():
            server.stop()
        conn.close()


if __name__ == "__main__":
    raise SystemExit(main())
