"""Full-layer copy, side by side: onemap against tipg on the same table, each followed page by
page through its own ``next`` links (ours continue after the last id; tipg's by offset), and
GDAL's ``ogr2ogr`` copying the largest layers from ours. Reports the time of every page, the
first and the last, and their ratio: linear paging keeps the last page within 2x of the first.

    python benchmarks/paging.py --collection houses --page-size 1000

Needs the Lishui-scale city (onemap demo load --scale lishui). Results go to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import features as bench  # noqa: E402  (the servers and helpers of the features benchmark)


def copy_layer(base: str, first: str) -> dict:
    """Follow ``next`` links from the first page to the end; the time of each page."""
    url, times, count, matched = base + first, [], 0, None
    started = time.perf_counter()
    while url:
        status, _, body, seconds = bench.fetch(url, timeout=600)
        if status != 200:
            raise bench.BenchError(f"{url} answered {status}")
        page = json.loads(body)
        matched = page.get("numberMatched", matched)
        count += len(page["features"])
        times.append(seconds * 1000)
        url = next((link["href"] for link in page.get("links", []) if link["rel"] == "next"), None)
    return {
        "features": count,
        "number_matched": matched,
        "pages": len(times),
        "total_s": round(time.perf_counter() - started, 2),
        "first_page_ms": round(statistics.median(times[:3]), 1),
        "last_page_ms": round(statistics.median(times[-3:]), 1),
        "last_over_first": round(statistics.median(times[-3:]) / statistics.median(times[:3]), 2),
        "page_ms": [round(t, 1) for t in times],
    }


def ogr2ogr(base: str, layer: str, page_size: int) -> dict | None:
    """GDAL's own OAPIF client copying a whole layer from our service: wall time."""
    if shutil.which("ogr2ogr") is None:
        return None
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / f"{layer}.gpkg"
        started = time.perf_counter()
        done = subprocess.run(
            [
                "ogr2ogr",
                "-f",
                "GPKG",
                str(target),
                f"OAPIF:{base}/",
                layer,
                "-oo",
                f"PAGE_SIZE={page_size}",
            ],
            capture_output=True,
            text=True,
            timeout=3600,
        )
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            return {"layer": layer, "error": done.stderr[-500:]}
        import pyogrio

        return {
            "layer": layer,
            "features": pyogrio.read_info(target)["features"],
            "wall_s": round(seconds, 1),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collection", default="houses")
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument(
        "--ogr2ogr",
        nargs="*",
        default=["houses", "addresses"],
        help="layers GDAL copies from ours (none: skip)",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    url = bench.onemap_db_url(tcp=True)
    with bench.connect(url) as conn:
        rows = bench.scalar(conn, f"SELECT count(*) FROM {args.collection}")
    if rows < 50_000:
        raise bench.BenchError(f"{args.collection} holds {rows:,} rows: load the Lishui city first")
    tipg_python = bench.ensure_tipg_venv()
    workdir = Path(tempfile.mkdtemp(prefix="onemap-paging-"))
    servers = bench.make_servers(
        SimpleNamespace(workers=1, collection=args.collection, limit=args.page_size),
        url,
        tipg_python,
        workdir,
    )
    report: dict = {"collection": args.collection, "rows": rows, "page_size": args.page_size}
    try:
        for server in servers.values():
            server.start()
        for server in servers.values():
            server.wait_ready()
        first = {
            "ours": f"/collections/{args.collection}/items?limit={args.page_size}",
            "tipg": f"/collections/public.{args.collection}/items?limit={args.page_size}",
        }
        for name, server in servers.items():
            bench.log(f"copying {args.collection} from {name}")
            report[name] = copy_layer(server.base, first[name])
            bench.log(
                f"  {name}: {report[name]['pages']} pages in {report[name]['total_s']} s, first "
                f"{report[name]['first_page_ms']} ms, last {report[name]['last_page_ms']} ms"
            )
        report["ogr2ogr"] = [
            ogr2ogr(servers["ours"].base, layer, args.page_size) for layer in args.ogr2ogr
        ]
    finally:
        for server in servers.values():
            server.stop()
    report["machine"] = {"date": dt.date.today().isoformat()}
    out = args.out or bench.RESULTS / f"paging-{dt.date.today().isoformat()}"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    summary = {
        k: ({kk: vv for kk, vv in v.items() if kk != "page_ms"} if isinstance(v, dict) else v)
        for k, v in report.items()
    }
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
