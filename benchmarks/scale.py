"""Scale-out measured (issue 16): reads with and without the replica through 1, 2 and 4 API
processes behind haproxy and pgbouncer; each district's check-up against the whole city's; and
readings ingest into the partitioned table against an unpartitioned one.

    python benchmarks/scale.py --scale lishui --districts 320117,320118 --json out.json

A cluster of its own (``--home``, default /var/tmp/onemap-scale) is made once and loaded with the
demo city of the named districts; later runs reuse it (``--reload`` loads again). Its read replica
is started beside it. The tile cache is off, so every read reaches a database. The load generator
is benchmarks/loadgen.py in its own process (wrk when installed): on a 2-core machine it shares the
cores with the servers, so what the figures show is whether anything serialises (throughput must not
fall as processes are added, and reads must move to the replica), not a speed-up.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, pool, text  # noqa: E402

from api.balancer import Layout, Stack  # noqa: E402
from api.cluster import Cluster  # noqa: E402
from api.cluster_replica import Replica  # noqa: E402
from geo.settings import DatabaseSettings  # noqa: E402

NAME = "onemap_scale"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def psycopg(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def prepare(args) -> tuple[Cluster, Replica, dict]:
    """The cluster, loaded with the districts (once), and its replica running."""
    settings = DatabaseSettings(home=args.home, port=args.port, name=NAME, url=None)
    cluster, replica = Cluster(settings), Replica(settings)
    cluster.up(echo=log)
    url = cluster.url(NAME)
    eng = create_engine(url, poolclass=pool.NullPool)
    with eng.connect() as conn:
        loaded = conn.execute(text("SELECT to_regclass('residents') IS NOT NULL")).scalar()
        counts = conn.execute(text("SELECT count(*) FROM residents")).scalar() if loaded else 0
    facts: dict = {}
    if args.reload or not counts:
        from api.bootstrap import prepare_demo

        replica.down(echo=log, remove=True)
        log(f"loading districts {args.districts} at scale {args.scale}")
        started = time.perf_counter()
        prepare_demo(url, scale=args.scale, districts=args.districts.split(","))
        facts["load_seconds"] = round(time.perf_counter() - started, 1)
    replica.up(echo=log)
    replica.wait_caught_up(600)
    with eng.connect() as conn:
        for table in ("addresses", "buildings", "residents", "houses", "sensor_readings"):
            facts[f"{table}_rows"] = conn.execute(text(f"SELECT count(*) FROM {table}")).scalar()
        facts["database_bytes"] = conn.execute(
            text("SELECT pg_database_size(current_database())")
        ).scalar()
        facts["districts"] = (
            conn.execute(
                text("SELECT code, name FROM admin_areas WHERE kind = 'district' ORDER BY code")
            )
            .mappings()
            .all()
        )
    eng.dispose()
    facts["districts"] = [dict(d) for d in facts["districts"]]
    return cluster, replica, facts


def read_paths(url: str, count: int, seed: int) -> list[str]:
    """A mix of what users read: pages of features in a box, single features, vector tiles."""
    import morecantile

    tms = morecantile.tms.get("WebMercatorQuad")
    rng = random.Random(seed)
    eng = create_engine(url, poolclass=pool.NullPool)
    with eng.connect() as conn:
        points = conn.execute(
            text("""SELECT id, ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) FROM buildings
                    TABLESAMPLE SYSTEM (5) REPEATABLE (:seed) LIMIT :n"""),
            {"seed": seed, "n": count},
        ).all()
    eng.dispose()
    paths = []
    for building, lon, lat in points:
        kind = rng.random()
        if kind < 0.35:
            tile = tms.tile(lon, lat, rng.choice((14, 15, 16)))
            layer = rng.choice(("buildings", "addresses"))
            paths.append(f"/tiles/{layer}/{tile.z}/{tile.x}/{tile.y}.mvt")
        elif kind < 0.7:
            d = 0.004
            bbox = f"{lon - d:.5f},{lat - d:.5f},{lon + d:.5f},{lat + d:.5f}"
            layer = rng.choice(("buildings", "addresses"))
            paths.append(f"/collections/{layer}/items?bbox={bbox}&limit=50")
        else:
            paths.append(f"/collections/buildings/items/{building}")
    return paths


def db_transactions(url: str) -> int:
    eng = create_engine(url, poolclass=pool.NullPool)
    with eng.connect() as conn:
        found = conn.execute(
            text("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = :d"),
            {"d": NAME},
        ).scalar()
    eng.dispose()
    return int(found or 0)


def load(base: str, paths_file: Path, args) -> dict:
    wrk = shutil.which("wrk")
    if wrk:
        command = [wrk, "-t2", f"-c{args.concurrency}", f"-d{int(args.seconds)}s",
                   "-s", str(ROOT / "benchmarks" / "wrk_cycle.lua"), base, "--", str(paths_file)]  # fmt: skip
    else:
        command = [sys.executable, str(ROOT / "benchmarks" / "loadgen.py"), base, str(paths_file),
                   "--concurrency", str(args.concurrency), "--seconds", str(args.seconds)]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRK_JSON "))
    return json.loads(line[len("WRK_JSON ") :])


def reads(cluster: Cluster, replica: Replica, args) -> list[dict]:
    """Read throughput by processes × replica, through haproxy and pgbouncer."""
    primary_tcp = psycopg(cluster.tcp_url(NAME))
    replica_tcp = primary_tcp.replace(f":{cluster.port}/", f":{replica.port}/")
    paths = read_paths(cluster.url(NAME), 2_000, args.seed)
    folder = Path(tempfile.mkdtemp(prefix="onemap-scale-bench-", dir="/tmp"))
    folder.chmod(0o755)  # pgbouncer runs as postgres when we are root: it must reach its folder
    paths_file = folder / "paths.txt"
    paths_file.write_text("\n".join(paths) + "\n")
    rows = []
    try:
        for with_replica in (False, True):
            for processes in args.processes:
                env = {"ONEMAP_TILE_CACHE": "off", "ONEMAP_DEMO": "1"}
                if with_replica:
                    env["DATABASE_READ_URL"] = replica_tcp
                layout = Layout(
                    database_url=primary_tcp,
                    api_ports=tuple(range(args.api_port, args.api_port + processes)),
                    balancer_port=args.api_port - 2,
                    pgbouncer_port=args.api_port - 1,
                    extra_env=env,
                )
                out = folder / f"stack-{processes}-{int(with_replica)}"
                stack = Stack(layout, out)
                stack.start()
                try:
                    base = f"http://127.0.0.1:{layout.balancer_port}"
                    time.sleep(2)  # the replica watch has looked once
                    load(base, paths_file, argparse.Namespace(**{**vars(args), "seconds": 3}))
                    before = db_transactions(cluster.url(NAME)), db_transactions(replica_tcp)
                    result = load(base, paths_file, args)
                    after = db_transactions(cluster.url(NAME)), db_transactions(replica_tcp)
                finally:
                    stack.stop()
                seconds = result["duration_us"] / 1e6
                row = {
                    "processes": processes,
                    "replica": with_replica,
                    "requests_per_s": round(result["requests"] / seconds, 1),
                    "p50_ms": round(result["p50_us"] / 1000, 1),
                    "p99_ms": round(result["p99_us"] / 1000, 1),
                    "errors": result["status"]
                    + result["connect"]
                    + result["read"]
                    + result["timeout"],
                    "primary_transactions": after[0] - before[0],
                    "replica_transactions": after[1] - before[1],
                }
                log(f"reads: {row}")
                rows.append(row)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return rows


def checkups(cluster: Cluster, facts: dict, args) -> list[dict]:
    """Each district's check-up, then the whole city's, timed (best of ``--repeats``)."""
    from geo.checkup.engine import run_checkup
    from geo.database import engine as make_engine

    eng = make_engine(cluster.url(NAME))
    rows = []
    targets = [(d["code"], d["name"]) for d in facts["districts"]] + [(None, "whole city 全市")]
    if args.checkup_areas:  # some of them only: district codes, and "city"
        wanted = set(args.checkup_areas.split(","))
        targets = [(a, n) for a, n in targets if (a or "city") in wanted or (a or "")[:6] in wanted]
    for area, name in targets:
        times = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            run_checkup(eng, 4549, area=area, label=f"scale benchmark {name}")
            times.append(time.perf_counter() - started)
        rows.append({"area": area, "name": name, "seconds": round(min(times), 2)})
        log(f"check-up {name}: {min(times):.2f} s")
    return rows


def ingest(cluster: Cluster, args) -> dict:
    """benchmarks/safety_ingest.py --compare-unpartitioned on this cluster."""
    out = Path(tempfile.mkstemp(suffix=".json")[1])
    subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "safety_ingest.py"), "--url", cluster.url(NAME),
         "--compare-unpartitioned", "--repeats", str(args.repeats), "--json", str(out)],
        check=True,
    )  # fmt: skip
    found = json.loads(out.read_text())
    out.unlink()
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--scale", default="lishui", help="demo scale of each district")
    parser.add_argument("--districts", default="320117,320118")
    parser.add_argument("--home", type=Path, default=Path("/var/tmp/onemap-scale"))
    parser.add_argument("--port", type=int, default=55900, help="the cluster's port (replica: +1)")
    parser.add_argument("--api-port", type=int, default=56300)
    parser.add_argument("--reload", action="store_true", help="load the districts again")
    parser.add_argument(
        "--processes", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 4]
    )
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20261207)
    parser.add_argument("--skip", default="", help="parts to leave out: reads,checkup,ingest")
    parser.add_argument(
        "--checkup-areas", default="", help="time these only: district codes and/or 'city'"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))

    cluster, replica, facts = prepare(args)
    figures: dict = {"scale": args.scale, "districts": args.districts, "facts": facts}
    if "reads" not in skip:
        figures["reads"] = reads(cluster, replica, args)
    if "checkup" not in skip:
        figures["checkup"] = checkups(cluster, facts, args)
    if "ingest" not in skip:
        figures["ingest"] = ingest(cluster, args)
    print(json.dumps(figures, ensure_ascii=False, indent=1, default=str))
    if args.json:
        args.json.write_text(json.dumps(figures, ensure_ascii=False, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
