"""Geocoding at Lishui scale: 1,000 seeded standard addresses written three ways, resolved one at
a time (p50, p99) and as one batch (addresses per second), with the share each form resolves to
the right address.

- exact: the standard full name as stored;
- abbreviated: without 南京市溧水区, half of them without the street/town name too, and
  building numbers written 号楼 instead of 幢;
- misspelt: one character of the name (not a digit) replaced by another.

    python benchmarks/geocode.py --count 1000

Targets (issue 10): p99 under 20 ms for one address, at least 2,000 addresses per second in a
batch. Results go to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import re
import statistics
import sys
import time
from pathlib import Path

from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from geo.addressing import geocode  # noqa: E402
from geo.database import database_url, engine  # noqa: E402

PREFIX = "南京市溧水区"
#: characters a hand may slip to (common, and never part of an area, road or estate name here)
SLIPS = "之乎者也东西南北甲乙丙丁春夏秋冬"


def forms(rng: random.Random, full_name: str, areas: list[str]) -> dict[str, str]:
    short = full_name.removeprefix(PREFIX)
    if rng.random() < 0.5:
        for area in areas:  # the street/town named first, dropped
            if short.startswith(area):
                short = short[len(area) :]
                break
    short = re.sub(r"(\d+)幢", r"\1号楼", short)
    letters = [i for i, ch in enumerate(full_name) if not ch.isdigit() and i >= len(PREFIX)]
    i = rng.choice(letters)
    slip = rng.choice([c for c in SLIPS if c != full_name[i]])
    return {
        "exact": full_name,
        "abbreviated": short,
        "misspelt": full_name[:i] + slip + full_name[i + 1 :],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=20260117)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    eng = engine(database_url())
    with eng.connect() as conn:
        total = conn.execute(text("SELECT count(*) FROM addresses")).scalar()
        ids = conn.execute(text("SELECT id, full_name FROM addresses ORDER BY id")).all()
        areas = sorted(
            conn.execute(text("SELECT name FROM admin_areas WHERE level = 2")).scalars(),
            key=len,
            reverse=True,
        )
    if total < 50_000:
        print(
            f"the database holds {total:,} addresses: load the Lishui city first", file=sys.stderr
        )
        return 2
    rng = random.Random(args.seed)
    sample = rng.sample(ids, args.count)
    cases = [(aid, forms(rng, name, areas)) for aid, name in sample]
    report: dict = {"addresses": total, "count": args.count, "seed": args.seed, "forms": {}}
    for form in ("exact", "abbreviated", "misspelt"):
        times, right, wrong = [], 0, 0
        for aid, written in cases:
            with eng.begin() as conn:
                started = time.perf_counter()
                (found,) = geocode(conn, [(1, written[form])])
                times.append((time.perf_counter() - started) * 1000)
            if found.address_id == aid:
                right += 1
            elif found.matched:
                wrong += 1
        times.sort()
        report["forms"][form] = {
            "resolved_right": round(right / args.count, 3),
            "resolved_wrong": round(wrong / args.count, 3),
            "p50_ms": round(statistics.median(times), 2),
            "p99_ms": round(times[int(len(times) * 0.99) - 1], 2),
        }
        print(form, report["forms"][form], flush=True)
    batch = [
        (i * 3 + k, written[form])
        for i, (_, written) in enumerate(cases)
        for k, form in enumerate(written)
    ]
    with eng.begin() as conn:
        started = time.perf_counter()
        results = geocode(conn, batch)
        seconds = time.perf_counter() - started
    report["batch"] = {
        "texts": len(batch),
        "seconds": round(seconds, 2),
        "per_second": round(len(batch) / seconds),
        "matched": sum(r.matched for r in results),
    }
    print("batch", report["batch"])
    out = args.out or ROOT / "benchmarks" / "results" / f"geocode-{dt.date.today().isoformat()}"
    out.with_suffix(".json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
