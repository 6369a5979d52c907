"""The 119 linkage at scale: p50/p99 of ``POST /safety/alarms`` (the five-level answer to one
fire alarm, kept) over real HTTP against ``onemap serve`` on the database named (a Lishui-scale
demo city: ``onemap demo load --scale lishui``), at seeded random points inside the district.

    python benchmarks/safety.py [--url URL] [--alarms 400] [--seed 119] [--json results/safety-DATE.json]

Target (issue 14): p99 < 300 ms. One client, one alarm at a time: latencies, not throughput. The
first alarm of the process builds the road graph (once); it is timed apart, as ``warm_up_ms``.
The alarms made here are deleted afterwards (their audit entries stay: the log is append-only).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import shapely
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from geo.database import database_url  # noqa: E402
from geo.database import engine as make_engine  # noqa: E402
from geo.policy.users import create_user, issue_token  # noqa: E402

TARGET_MS = 300.0
USER = "bench_safety"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def post(url: str, body: dict, token: str) -> float:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as answer:
        answer.read()
        if answer.status != 201:
            raise RuntimeError(f"{url}: {answer.status}")
    return (time.perf_counter() - started) * 1000


def points_inside(district, n: int, seed: int) -> list[tuple[float, float]]:
    """``n`` seeded random points inside the district's boundary."""
    rng = random.Random(seed)
    x0, y0, x1, y1 = district.bounds
    shapely.prepare(district)
    out: list[tuple[float, float]] = []
    while len(out) < n:
        x, y = rng.uniform(x0, x1), rng.uniform(y0, y1)
        if district.contains(shapely.Point(x, y)):
            out.append((round(x, 7), round(y, 7)))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--url", help="database URL (default: the one `onemap db url` names)")
    parser.add_argument("--alarms", type=int, default=400, help="alarms to time")
    parser.add_argument("--seed", type=int, default=119)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    url = args.url or database_url()
    eng = make_engine(url)
    with eng.begin() as conn:
        counts = {
            t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar()
            for t in ("roads", "facilities", "organisations", "hazards", "buildings", "residents")
        }
        counts["duty_contacts"] = conn.execute(text("SELECT count(*) FROM duty_contacts")).scalar()
        wkb = conn.execute(
            text("SELECT ST_AsBinary(ST_Union(geom)) FROM admin_areas WHERE level = 1")
        ).scalar()
        if wkb is None:
            print("no district: load the demo city first (onemap demo load --scale lishui)")
            return 2
        if not conn.execute(text("SELECT 1 FROM users WHERE username = :u"), {"u": USER}).first():
            create_user(conn, USER, "safety", "benchmark")
        token = issue_token(conn, USER, "safety benchmark").token
        last_id = conn.execute(text("SELECT coalesce(max(id), 0) FROM fire_alarms")).scalar()
    points = points_inside(shapely.from_wkb(bytes(wkb)), args.alarms + 1, args.seed)
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
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{base}/health", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        warm_up = post(f"{base}/safety/alarms", {"lon": points[0][0], "lat": points[0][1]}, token)
        times = [post(f"{base}/safety/alarms", {"lon": x, "lat": y}, token) for x, y in points[1:]]
    finally:
        server.terminate()
        server.wait(timeout=20)
        with eng.begin() as conn:
            made = conn.execute(
                text("DELETE FROM fire_alarms WHERE id > :last AND received_by = :u"),
                {"last": last_id, "u": USER},
            ).rowcount
    report = {
        "date": dt.date.today().isoformat(),
        "counts": counts,
        "alarms": len(times),
        "seed": args.seed,
        "warm_up_ms": round(warm_up, 1),
        "target_p99_ms": TARGET_MS,
        "p50_ms": round(statistics.median(times), 1),
        "p90_ms": round(percentile(times, 0.90), 1),
        "p99_ms": round(percentile(times, 0.99), 1),
        "max_ms": round(max(times), 1),
        "alarms_deleted_after": made,
    }
    verdict = "meets" if report["p99_ms"] < TARGET_MS else "MISSES"
    print(
        f"alarms {len(times)}  p50 {report['p50_ms']:.1f} ms  p99 {report['p99_ms']:.1f} ms  "
        f"max {report['max_ms']:.1f} ms  ({verdict} p99 < {TARGET_MS:.0f} ms)"
    )
    print(f"first alarm (road graph built): {warm_up:.0f} ms; {made} alarms deleted after")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
