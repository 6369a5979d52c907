"""The idle-asset map at scale: p50/p99 of the register's list (``GET /assets``, the searches an
investment officer and the public make) and of a site's surroundings
(``GET /assets/{id}/surroundings``, every asset in turn), over real HTTP against ``onemap serve``
on the database named (a Lishui-scale demo city: ``onemap demo load --scale lishui``).

    python benchmarks/assets.py [--url URL] [--rounds 5] [--json results/assets-DATE.json]

Targets (issue 13): list p99 < 50 ms, surroundings p99 < 200 ms. One client, one request at a
time: these are latencies, not throughput. The first surroundings request of the process counts
the district's residents into H3 cells (once); it is timed apart, as ``warm_up_ms``.

No peer serves a site's surroundings or a Chinese search of an asset register; the list's
nearest peer would be an OGC items request with a CQL2 filter, which the features benchmark
already compares with tipg (benchmarks/features.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from geo.database import database_url  # noqa: E402
from geo.database import engine as make_engine  # noqa: E402
from geo.policy.users import create_user, issue_token  # noqa: E402

TARGETS_MS = {"list": 50.0, "surroundings": 200.0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def fetch(url: str, token: str | None) -> float:
    request = urllib.request.Request(
        url, headers={"Authorization": f"Bearer {token}"} if token else {}
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as answer:
        answer.read()
        if answer.status != 200:
            raise RuntimeError(f"{url}: {answer.status}")
    return (time.perf_counter() - started) * 1000


def list_queries(conn) -> list[str]:
    lon, lat = conn.execute(
        text("SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_Centroid(ST_Collect(geom)) c FROM assets) a")
    ).one()
    street = conn.execute(
        text("SELECT code FROM admin_areas WHERE level = 2 ORDER BY code LIMIT 1")
    ).scalar()
    box = f"POLYGON(({lon - 0.05} {lat - 0.05}, {lon + 0.05} {lat - 0.05}, {lon + 0.05} {lat + 0.05}, {lon - 0.05} {lat + 0.05}, {lon - 0.05} {lat - 0.05}))"  # noqa: E501
    params = [
        {},
        {"q": "厂房"},
        {"q": "闲置 仓库"},
        {"category": "inefficient_land", "land_min": "5000", "sort": "-land_area"},
        {"landuse": "0601", "available_by": "2027-06-30"},
        {"street": street},
        {"near": f"{lon},{lat}", "distance": "3000"},
        {"within": box},
        {"limit": "100", "offset": "100", "sort": "code"},
    ]
    return ["/assets?" + urllib.parse.urlencode(p) for p in params]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--url", help="database URL (default: the one `onemap db url` names)")
    parser.add_argument("--rounds", type=int, default=5, help="times each request is repeated")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    url = args.url or database_url()
    eng = make_engine(url)
    with eng.begin() as conn:
        counts = {
            t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar()
            for t in ("assets", "residents", "buildings", "facilities", "organisations", "roads")
        }
        if not counts["assets"]:
            print("no assets: load the demo city first (onemap demo load --scale lishui)")
            return 2
        if not conn.execute(
            text("SELECT 1 FROM users WHERE username = 'bench_investment'")
        ).first():
            create_user(conn, "bench_investment", "investment", "benchmark")
        token = issue_token(conn, "bench_investment", "assets benchmark").token
        ids = conn.execute(text("SELECT id FROM assets ORDER BY id")).scalars().all()
        queries = list_queries(conn)
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "api.cli",
            "serve",
            "--demo",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{base}/health", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        warm_up = fetch(f"{base}/assets/{ids[0]}/surroundings", token)
        figures: dict[str, dict] = {}
        for who, key in ((token, "list_staff"), (None, "list_public")):
            for q in queries:
                fetch(base + q, who)  # the first of each is a warm-up
            times = [fetch(base + q, who) for _ in range(args.rounds) for q in queries]
            figures[key] = {
                "requests": len(times),
                "p50_ms": statistics.median(times),
                "p99_ms": percentile(times, 0.99),
            }
        times = [
            fetch(f"{base}/assets/{i}/surroundings", token)
            for _ in range(max(1, args.rounds // 2))
            for i in ids
        ]
        figures["surroundings"] = {
            "requests": len(times),
            "p50_ms": statistics.median(times),
            "p99_ms": percentile(times, 0.99),
        }
    finally:
        server.terminate()
        server.wait(timeout=20)
    report = {
        "date": dt.date.today().isoformat(),
        "counts": counts,
        "warm_up_ms": round(warm_up, 1),
        "targets_ms": TARGETS_MS,
        **{
            k: {m: round(v, 1) if isinstance(v, float) else v for m, v in f.items()}
            for k, f in figures.items()
        },
    }
    for key, f in figures.items():
        target = TARGETS_MS["surroundings" if key == "surroundings" else "list"]
        verdict = "meets" if f["p99_ms"] < target else "MISSES"
        print(
            f"{key:14} {f['requests']:5} requests  p50 {f['p50_ms']:6.1f} ms  p99 {f['p99_ms']:6.1f} ms  ({verdict} p99 < {target:.0f} ms)"
        )
    print(f"first surroundings (residents counted into H3 cells): {warm_up:.0f} ms")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
