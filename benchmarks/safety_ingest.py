"""Sensor readings into PostGIS at scale (issue 14): batches of 50,000 readings posted as CSV to
``POST /safety/readings`` over real HTTP against ``onemap serve`` on the database named (the
Lishui-scale demo city, 10,000 sensors: ``onemap demo load --scale lishui``).

    python benchmarks/safety_ingest.py [--url URL] [--batch 50000] [--repeats 5]
                                       [--json results/safety-ingest-DATE.json]
                                       [--compare-unpartitioned]

Target: at least 50,000 readings/s end to end. Reported: readings/s end to end (the client's
time from sending the body to the answer; building the body is not timed), and the parts done
in-process on the same batches: parsing and checking the lines (geo.safety.readings.validate)
and the database part alone (COPY, INSERT … ON CONFLICT, the warning pass, commit:
geo.safety.readings.store). One batch is then posted a second time: it must store nothing, and
the window must hold each reading once (no loss, no duplicate) with the warnings unchanged.

With ``--compare-unpartitioned`` (issue 16) the database part (store and commit) is also
measured on the same batches into the month-partitioned ``sensor_readings`` and into two
unpartitioned copies of it with the same columns, primary key and rows, dropped at the end:
``bench_readings_unpartitioned`` with the foreign key to sensors (the table as it was before
migration 0018) and ``bench_readings_unpartitioned_no_fk`` without it (what dropping the key
alone gives). Each batch is committed into each table, in turns (the order rotating), and the
window's warnings are deleted after each (not timed), so every store starts from the same
warnings. The HTTP path stores into ``sensor_readings`` only; the comparison adds the same
batches' parse-and-check time to each table's store for an in-process end to end.

Every reading is dated in a marked window, 2100-01-01 onwards (later than anything the demo
holds), on sensors without an open warning (their warnings start in the window too); both are
deleted at the end, also after an error, so the demo data stay as they were. Sensor values are
drawn from a seeded RNG, about 2 % over the threshold, so the warning pass has work to do.
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from geo.database import database_url  # noqa: E402
from geo.database import engine as make_engine  # noqa: E402
from geo.policy.users import create_user, issue_token  # noqa: E402
from geo.safety import partitions  # noqa: E402
from geo.safety.readings import parse, store, validate  # noqa: E402

TARGET = 50_000  # readings/s, end to end
WINDOW = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
OVER_SHARE = 0.02


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_batch(sensors, first_minute: int, size: int, rng: random.Random) -> bytes:
    """``size`` readings: every sensor once a minute from ``first_minute`` of the window on."""
    lines = ["sensor_code,observed_at,value"]
    minute = first_minute
    while len(lines) <= size:
        stamp = (WINDOW + dt.timedelta(minutes=minute)).isoformat()
        for code, threshold in sensors:
            if len(lines) > size:
                break
            share = 1.2 if rng.random() < OVER_SHARE else rng.uniform(0.2, 0.95)
            lines.append(f"{code},{stamp},{threshold * share:.3f}")
        minute += 1
    return ("\n".join(lines) + "\n").encode(), minute


def window_state(conn) -> tuple[int, int, str]:
    """Readings in the window, distinct keys among them, and a checksum of the window's warnings."""
    count, distinct = conn.execute(
        text("""SELECT count(*), count(DISTINCT (sensor_id, observed_at)) FROM sensor_readings
                WHERE observed_at >= :w"""),
        {"w": WINDOW},
    ).one()
    digest = conn.execute(
        text("""SELECT coalesce(md5(string_agg(md5(w::text), '' ORDER BY w.id)), '')
                FROM sensor_warnings w WHERE started_at >= :w"""),
        {"w": WINDOW},
    ).scalar_one()
    return int(count), int(distinct), digest


def clean_up(eng) -> tuple[int, int]:
    """Delete the window's readings and warnings, and vacuum: the dead rows would otherwise slow
    the next run's look-ups of each sensor's latest reading."""
    with eng.begin() as conn:
        warnings = conn.execute(
            text("DELETE FROM sensor_warnings WHERE started_at >= :w"), {"w": WINDOW}
        ).rowcount
        readings = conn.execute(
            text("DELETE FROM sensor_readings WHERE observed_at >= :w"), {"w": WINDOW}
        ).rowcount
        for part in partitions.partitions(conn):  # the window's months' partitions, now empty
            if part.month and part.month >= WINDOW.date():
                conn.execute(text(f"DROP TABLE {part.name}"))
    with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM (ANALYZE) sensor_readings, sensor_warnings"))
    return readings, warnings


FLAT = "bench_readings_unpartitioned"
FLAT_NO_KEY = "bench_readings_unpartitioned_no_fk"
#: the tables compared: the partitioned one as migrated, the plain one as before migration 0018
#: (with its foreign key), and the plain one without the key (what dropping the key alone gives)
COMPARED = {
    "partitioned": "sensor_readings",
    "unpartitioned": FLAT,
    "unpartitioned_without_foreign_key": FLAT_NO_KEY,
}


def compare_unpartitioned(eng, sensors, minute, args, rng) -> dict:
    """The database part (geo.safety.readings.store, then commit) on the same batches into the
    partitioned table and into unpartitioned copies with the same key and rows, in turns (the
    order rotating). Each batch is committed into each table; the window's warnings are deleted
    after each store (not timed), so every store starts from the same warnings."""
    with eng.begin() as conn:
        for name in (FLAT, FLAT_NO_KEY):
            key = " REFERENCES sensors (id) ON DELETE CASCADE" if name == FLAT else ""
            conn.execute(text(f"DROP TABLE IF EXISTS {name}"))
            conn.execute(
                text(f"""CREATE TABLE {name} (sensor_id bigint NOT NULL{key},
                         observed_at timestamptz NOT NULL, value double precision NOT NULL,
                         PRIMARY KEY (sensor_id, observed_at))""")
            )
            conn.execute(text(f"INSERT INTO {name} SELECT * FROM sensor_readings"))
        partitions.ensure_for(conn, [WINDOW.date()])  # the window's month, made ahead
        conn.execute(text("DELETE FROM sensor_warnings WHERE started_at >= :w"), {"w": WINDOW})
    with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"VACUUM (ANALYZE) {FLAT}, {FLAT_NO_KEY}, sensor_readings"))
        conn.execute(text("VACUUM (ANALYZE) sensor_warnings"))
    times: dict[str, list[float]] = {key: [] for key in COMPARED}
    check_times: list[float] = []
    try:
        for turn in range(args.repeats):
            body, minute = make_batch(sensors, minute, args.batch, rng)
            with eng.connect() as conn:
                started = time.perf_counter()
                copy_text = validate(conn, parse(body, "text/csv"))
                check_times.append(time.perf_counter() - started)
            order = [*COMPARED]
            order = order[turn % len(order) :] + order[: turn % len(order)]
            for key in order:
                with eng.connect() as conn:
                    started = time.perf_counter()
                    with conn.begin():
                        report = store(conn, copy_text, readings=COMPARED[key])
                    times[key].append(time.perf_counter() - started)
                assert report.stored == args.batch, (key, report)
                with eng.begin() as conn:
                    conn.execute(
                        text("DELETE FROM sensor_warnings WHERE started_at >= :w"), {"w": WINDOW}
                    )
    finally:
        with eng.begin() as conn:
            conn.execute(text(f"DROP TABLE IF EXISTS {FLAT}, {FLAT_NO_KEY}"))
    check = statistics.median(check_times)
    out = {}
    for key, seconds in times.items():
        db = statistics.median(seconds)
        out[key] = {
            "seconds": [round(t, 4) for t in seconds],
            "median_readings_per_s": rate(args.batch, db),
            # the same batches parsed and checked (the same work whatever the table) plus this
            # table's store and commit: in process, end to end but for HTTP
            "with_parse_and_check_readings_per_s": rate(args.batch, check + db),
        }
    out["parse_and_check_seconds"] = [round(t, 4) for t in check_times]
    with eng.connect() as conn:
        out["partitions"] = len(partitions.partitions(conn))
    return out


def post_together(base, headers, sensors, minute, args, rng) -> tuple[dict, int]:
    """``--clients`` gateways at once, each posting ``--repeats`` batches for its own share of the
    sensors (as gateways own theirs): the readings stored per second of wall time, together."""
    shares = [sensors[i :: args.clients] for i in range(args.clients)]
    bodies, last = [], minute
    for share in shares:
        mine, at = [], minute
        for _ in range(args.repeats):
            body, at = make_batch(share, at, args.batch, rng)
            mine.append(body)
        bodies.append(mine)
        last = max(last, at)

    def gateway(mine: list[bytes]) -> int:
        with httpx.Client(base_url=base, headers=headers, timeout=300) as client:
            stored = 0
            for body in mine:
                answer = client.post("/safety/readings", content=body)
                answer.raise_for_status()
                stored += answer.json()["stored"]
            return stored

    started = time.perf_counter()
    with ThreadPoolExecutor(args.clients) as pool:
        stored = sum(pool.map(gateway, bodies))
    seconds = time.perf_counter() - started
    readings = args.clients * args.repeats * args.batch
    assert stored == readings, (stored, readings)
    return {
        "clients": args.clients,
        "readings": readings,
        "seconds": round(seconds, 3),
        "readings_per_s": rate(readings, seconds),
    }, last


def rate(n: int, seconds: float) -> float:
    return round(n / seconds) if seconds else 0.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--url", help="database URL (default: the one `onemap db url` names)")
    parser.add_argument("--batch", type=int, default=50_000, help="readings per request")
    parser.add_argument("--repeats", type=int, default=5, help="timed batches of each kind")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers of the server")
    parser.add_argument(
        "--clients",
        type=int,
        default=1,
        help="also post from this many gateways at once, each its own share of the sensors",
    )
    parser.add_argument("--seed", type=int, default=20261206)
    parser.add_argument(
        "--compare-unpartitioned",
        action="store_true",
        help="also time the database part into the partitioned table and an unpartitioned copy",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    url = args.url or database_url()
    eng = make_engine(url)
    rng = random.Random(args.seed)
    with eng.begin() as conn:
        sensors = conn.execute(
            text("""SELECT code, threshold FROM sensors s WHERE NOT EXISTS (
                        SELECT 1 FROM sensor_warnings w
                        WHERE w.sensor_id = s.id AND w.cleared_at IS NULL)
                    ORDER BY id""")
        ).all()
        if not sensors:
            print("no sensors: load the demo city first (onemap demo load --scale lishui)")
            return 2
        stored_before = conn.execute(text("SELECT count(*) FROM sensor_readings")).scalar_one()
        if not conn.execute(text("SELECT 1 FROM users WHERE username = 'bench_safety'")).first():
            create_user(conn, "bench_safety", "safety", "benchmark")
        token = issue_token(conn, "bench_safety", "safety ingest benchmark").token
    leftovers = clean_up(eng)  # of a run stopped half-way
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--demo", "--host", "127.0.0.1"]
        + ["--port", str(port), "--workers", str(args.workers)],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "text/csv"}
    minute = 0
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
            for _ in range(200):
                try:
                    client.get("/health")
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            body, minute = make_batch(sensors, minute, args.batch, rng)
            client.post("/safety/readings", content=body).raise_for_status()  # warm-up
            http_times, answers, last = [], [], body
            for _ in range(args.repeats):
                body, minute = make_batch(sensors, minute, args.batch, rng)
                started = time.perf_counter()
                answer = client.post("/safety/readings", content=body)
                http_times.append(time.perf_counter() - started)
                answer.raise_for_status()
                answers.append(answer.json())
                last = body
            concurrent = None
            if args.clients > 1:
                concurrent, minute = post_together(base, headers, sensors, minute, args, rng)
            with eng.connect() as conn:
                before = window_state(conn)
            started = time.perf_counter()
            again = client.post("/safety/readings", content=last)
            again_seconds = time.perf_counter() - started
            again.raise_for_status()
            with eng.connect() as conn:
                after = window_state(conn)
        parse_times, db_times = [], []
        for _ in range(args.repeats):
            body, minute = make_batch(sensors, minute, args.batch, rng)
            with eng.begin() as conn:
                started = time.perf_counter()
                copy_text = validate(conn, parse(body, "text/csv"))
                parsed = time.perf_counter()
            with eng.begin() as conn:
                report = store(conn, copy_text)
            db_times.append(time.perf_counter() - parsed)
            parse_times.append(parsed - started)
            assert report.stored == args.batch, report
        compared = (
            compare_unpartitioned(eng, sensors, minute, args, rng)
            if args.compare_unpartitioned
            else None
        )
    finally:
        server.terminate()
        server.wait(timeout=20)
        removed = clean_up(eng)
    with eng.connect() as conn:
        stored_after = conn.execute(text("SELECT count(*) FROM sensor_readings")).scalar_one()
    posted = (1 + args.repeats) * args.batch + (concurrent["readings"] if concurrent else 0)
    again_body = again.json()
    checks = {
        "second_post_stored": again_body["stored"],
        "second_post_duplicates": again_body["duplicates"],
        "readings_in_window": after[0],
        "distinct_in_window": after[1],
        "expected_in_window": posted,
        "window_unchanged_by_second_post": before == after,
        "no_loss_no_duplicate": after[0] == after[1] == posted and again_body["stored"] == 0,
        "demo_readings_restored": stored_after == stored_before,
    }
    http_median = statistics.median(http_times)
    report = {
        "date": dt.date.today().isoformat(),
        "sensors": len(sensors),
        "batch": args.batch,
        "repeats": args.repeats,
        "workers": args.workers,
        "cpus": os.cpu_count(),
        "readings_in_table_before": stored_before,
        "target_readings_per_s": TARGET,
        "http": {
            "seconds": [round(t, 3) for t in http_times],
            "median_readings_per_s": rate(args.batch, http_median),
            "best_readings_per_s": rate(args.batch, min(http_times)),
            "warnings_opened_per_batch": [a["warnings_opened"] for a in answers],
            "warnings_cleared_per_batch": [a["warnings_cleared"] for a in answers],
        },
        "concurrent_gateways": concurrent,
        "same_batch_again": {
            "seconds": round(again_seconds, 3),
            "readings_per_s": rate(args.batch, again_seconds),
        },
        "parse_and_check": {
            "seconds": [round(t, 3) for t in parse_times],
            "median_readings_per_s": rate(args.batch, statistics.median(parse_times)),
        },
        "database_alone": {
            "seconds": [round(t, 3) for t in db_times],
            "median_readings_per_s": rate(args.batch, statistics.median(db_times)),
        },
        "partitioned_vs_unpartitioned": compared,
        "checks": checks,
        "cleaned_up": {"readings": removed[0], "warnings": removed[1], "leftovers": leftovers},
    }
    verdict = "meets" if report["http"]["median_readings_per_s"] >= TARGET else "MISSES"
    print(
        f"end to end: {report['http']['median_readings_per_s']:,} readings/s median "
        f"({args.batch:,} per request, {http_median * 1000:.0f} ms; {verdict} {TARGET:,}/s)"
    )
    print(
        f"parse+check {report['parse_and_check']['median_readings_per_s']:,}/s, "
        f"database alone {report['database_alone']['median_readings_per_s']:,}/s, "
        f"same batch again {report['same_batch_again']['readings_per_s']:,}/s"
    )
    if concurrent:
        print(
            f"{concurrent['clients']} gateways at once ({args.workers} workers): "
            f"{concurrent['readings_per_s']:,} readings/s together"
        )
    if compared:
        print(f"same batches, store + commit ({compared['partitions']} partitions):")
        for key in COMPARED:
            print(
                f"  {key:<34} {compared[key]['median_readings_per_s']:>8,}/s, with parse and "
                f"check {compared[key]['with_parse_and_check_readings_per_s']:>8,}/s"
            )
    print("checks:", json.dumps(checks))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, ensure_ascii=False, indent=2))
    return 0 if checks["no_loss_no_duplicate"] and checks["window_unchanged_by_second_post"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
