"""The city check-up at scale: a full run (every indicator, every area, every level), timed per
indicator, repeated, on the database named (a Lishui-scale demo city: `onemap demo load --scale
lishui`). Each run is stored like any other; ``--keep`` leaves them, else they are deleted after.

    python benchmarks/checkup.py [--url URL] [--runs 3] [--json results/checkup-DATE.json]

Prints the median time of each indicator over the runs, the staging, and the slowest three.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from geo.checkup.engine import run_checkup  # noqa: E402
from geo.database import engine  # noqa: E402
from geo.settings import Settings  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--url", help="database URL (default: the one `onemap db url` names)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the runs in checkup_runs")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    eng = engine(args.url)
    srid = Settings.from_env().spatial.metric_srid
    with eng.connect() as conn:
        counts = {
            t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar()
            for t in ("buildings", "houses", "residents", "grids", "facilities", "roads")
        }
    totals: list[float] = []
    per: dict[str, list[float]] = {}
    made = []
    for n in range(args.runs):
        started = time.perf_counter()
        result = run_checkup(eng, srid, label=f"benchmark {n + 1}")
        totals.append(time.perf_counter() - started)
        made.append(result.id)
        for key, seconds in result.timings.items():
            per.setdefault(key, []).append(seconds)
        print(f"run {n + 1}: {totals[-1]:.1f} s", flush=True)
    if not args.keep:
        with eng.begin() as conn:
            conn.execute(text("DELETE FROM checkup_runs WHERE id = ANY(:ids)"), {"ids": made})
    median = {k: statistics.median(v) for k, v in per.items()}
    with eng.connect() as conn:
        areas = (
            conn.execute(
                text("SELECT count(*) FROM checkup_results WHERE run_id = :r"), {"r": made[-1]}
            ).scalar()
            if args.keep
            else None
        )
    print(f"\ncity: {', '.join(f'{k} {v:,}' for k, v in counts.items())}")
    print(f"full run (median of {args.runs}): {statistics.median(totals):.1f} s")
    for key, seconds in sorted(median.items(), key=lambda kv: -kv[1]):
        print(f"  {key:<28} {seconds:6.2f} s")
    slowest = sorted((k for k in median if k != "staging"), key=lambda k: -median[k])[:3]
    print("slowest three:", ", ".join(f"{k} ({median[k]:.2f} s)" for k in slowest))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "city": counts,
                    "runs": totals,
                    "median_s": statistics.median(totals),
                    "per_indicator_median_s": median,
                    "results_rows": areas,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
