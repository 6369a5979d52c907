"""Fallback closed-loop load generator, for machines without ``wrk``.

Run as its own process (``python loadgen.py BASE PATHS_FILE --concurrency 8 --seconds 20``) so
that its CPU is not the server's; prints the same ``WRK_JSON {...}`` line as ``wrk_cycle.lua``.
Threads with keep-alive ``http.client`` connections: each thread sends its next request as soon as
the previous response is read in full. Python's GIL makes this client costlier than wrk, so prefer
wrk (``apt-get install wrk``) for numbers worth comparing.
"""

from __future__ import annotations

import argparse
import http.client
import json
import threading
import time
from urllib.parse import urlsplit


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


def run(base: str, paths: list[str], concurrency: int, seconds: float, timeout: float) -> dict:
    parts = urlsplit(base)
    deadline = time.perf_counter() + seconds
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    counts = [
        {"bytes": 0, "status": 0, "read": 0, "connect": 0, "timeout": 0} for _ in range(concurrency)
    ]

    def worker(n: int) -> None:
        conn: http.client.HTTPConnection | None = None
        i = n * len(paths) // concurrency
        while time.perf_counter() < deadline:
            path = paths[i % len(paths)]
            i += 1
            started = time.perf_counter()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
                conn.request("GET", path)
                response = conn.getresponse()
                body = response.read()
            except TimeoutError:
                counts[n]["timeout"] += 1
                conn = None
                continue
            except OSError:
                counts[n]["read" if conn is not None else "connect"] += 1
                conn = None
                continue
            latencies[n].append(time.perf_counter() - started)
            counts[n]["bytes"] += len(body)
            if not 200 <= response.status < 400:
                counts[n]["status"] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    duration = time.perf_counter() - started
    values = sorted(v for per in latencies for v in per)
    total = {k: sum(c[k] for c in counts) for k in counts[0]}
    return {
        "requests": len(values),
        "duration_us": int(duration * 1e6),
        "bytes": total["bytes"],
        "connect": total["connect"],
        "read": total["read"],
        "write": 0,
        "status": total["status"],
        "timeout": total["timeout"],
        "p50_us": int(_percentile(values, 50) * 1e6),
        "p90_us": int(_percentile(values, 90) * 1e6),
        "p99_us": int(_percentile(values, 99) * 1e6),
        "mean_us": sum(values) / len(values) * 1e6 if values else 0.0,
        "max_us": int(values[-1] * 1e6) if values else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", help="http://127.0.0.1:PORT")
    parser.add_argument("paths_file", help="request paths, one a line")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--timeout", type=float, default=30)
    args = parser.parse_args()
    with open(args.paths_file) as fh:
        paths = [line.strip() for line in fh if line.strip()]
    result = run(args.base, paths, args.concurrency, args.seconds, args.timeout)
    print("WRK_JSON " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
