"""Side-by-side benchmark of OGC API – Features items: onemap against tipg, on the same data.

Both servers read the same PostGIS table with the same seeded list of bbox requests (each
matching at least ``limit`` features, so every answer is a full page), the same number of uvicorn
workers, and the same closed-loop load from a separate process (wrk, or ``loadgen.py``). Runs are
interleaved (ours, tipg, ours, tipg, …) so that drift on a shared machine hits both alike, and
the report gives medians and the ratios ours/tipg, as shared/design/PERFORMANCE.md did for tiles.
Each run also records where CPU went (PostgreSQL backends vs the server's Python), because a
server can only be faster by making one of the two do less per request.

    python benchmarks/features.py --seconds 20 --repeats 3 --concurrency 8 --workers 1

See benchmarks/README.md for how to read the results.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import platform
import random
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
OURS_VENV = ROOT / ".venv"
TIPG_VENV = ROOT / ".venv-tipg"
TIPG_REQUIREMENT = "tipg>=1.6,<1.7"
MIN_BUILDINGS = 50_000
#: Lishui district (EPSG:4490 lon/lat); the bboxes stay inside it
DISTRICT = (118.834, 31.380, 119.237, 31.791)
#: tables the benchmark knows how to calibrate against (all have id + geom in EPSG:4490)
COLLECTIONS = ("buildings", "addresses", "organisations", "facilities")

sys.path.insert(0, str(HERE))
from procstat import CpuMeter, read_stat  # noqa: E402


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class BenchError(RuntimeError):
    """A precondition failed: the message says what to do."""


# --- the database ----------------------------------------------------------------------------


def onemap_db_url(tcp: bool = False) -> str:
    """The URL ``onemap db url`` prints (it honours DATABASE_URL like the service does)."""
    cmd = [str(OURS_VENV / "bin" / "onemap"), "db", "url"] + (["--tcp"] if tcp else [])
    try:
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True, timeout=60)
    except FileNotFoundError as exc:
        raise BenchError(f"{cmd[0]} is missing: run `make venv` first") from exc
    except subprocess.CalledProcessError as exc:
        raise BenchError(
            f"`onemap db url` failed ({exc.stderr.strip()}): run `make db` first"
        ) from exc
    return out.stdout.strip().splitlines()[-1]


def libpq_url(url: str) -> str:
    """SQLAlchemy's ``postgresql+psycopg://`` → the plain URI libpq and asyncpg read."""
    for prefix in ("postgresql+psycopg://", "postgresql+psycopg2://", "postgresql+asyncpg://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


def connect(url: str):
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - run with the project venv
        raise BenchError("psycopg is missing: run this with .venv/bin/python (make bench)") from exc
    conn = psycopg.connect(libpq_url(url), autocommit=True)
    with conn.cursor() as cur:  # the same settings our service's connections use
        cur.execute("SET max_parallel_workers_per_gather = 0")
    return conn


def scalar(conn, sql: str, params: tuple = ()) -> Any:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        row = cur.fetchone()
    return row[0] if row else None


def check_database(conn, collection: str) -> dict[str, Any]:
    """Refuse a database that is not at Lishui scale; return facts for the report."""
    buildings = scalar(conn, "SELECT to_regclass('public.buildings') IS NOT NULL")
    count = scalar(conn, "SELECT count(*) FROM public.buildings") if buildings else 0
    if count < MIN_BUILDINGS:
        raise BenchError(
            f"the database holds {count:,} buildings (fewer than {MIN_BUILDINGS:,}): "
            "load the Lishui city first: onemap demo load --scale lishui"
        )
    if collection not in COLLECTIONS:
        raise BenchError(f"--collection must be one of {', '.join(COLLECTIONS)}")
    table = scalar(conn, "SELECT table_name FROM layer_catalogue WHERE id = %s", (collection,))
    if table != collection:
        raise BenchError(f"collection {collection!r} is not catalogued as table {collection!r}")
    settings = {
        name: scalar(conn, f"SHOW {name}")
        for name in (
            "shared_buffers",
            "work_mem",
            "max_parallel_workers_per_gather",
            "jit",
            "max_connections",
        )
    }
    return {
        "postgresql": scalar(conn, "SHOW server_version"),
        "postgis": scalar(conn, "SELECT postgis_lib_version()"),
        "geos": scalar(conn, "SELECT postgis_geos_version()"),
        "proj": scalar(conn, "SELECT postgis_proj_version()"),
        "buildings": count,
        "rows": scalar(conn, f"SELECT count(*) FROM public.{collection}"),
        "table_size": scalar(
            conn, "SELECT pg_size_pretty(pg_total_relation_size(%s::regclass))", (collection,)
        ),
        "pg_stat_statements": bool(
            scalar(conn, "SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'")
        ),
        "settings": settings,
    }


def postmaster_pid(conn) -> int | None:
    """The postmaster, as the parent of our own backend (None when PostgreSQL is not local)."""
    stat = read_stat(int(scalar(conn, "SELECT pg_backend_pid()")))
    if stat is None or "postgres" not in Path(f"/proc/{stat.ppid}/comm").read_text():
        return None
    return stat.ppid


def db_activity(conn) -> dict[str, float]:
    """Cumulative counters of the benchmarked database (PG ≥ 14 has active_time and sessions)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT xact_commit, sessions, active_time, tup_returned, tup_fetched, blks_read "
            "FROM pg_stat_database WHERE datname = current_database()"
        )
        names = [d.name for d in cur.description]
        return dict(zip(names, (float(v or 0) for v in cur.fetchone()), strict=True))


# --- the request list ------------------------------------------------------------------------


@dataclass(frozen=True)
class Box:
    minx: float
    miny: float
    maxx: float
    maxy: float
    matched: int

    @property
    def param(self) -> str:
        return f"{self.minx:.5f},{self.miny:.5f},{self.maxx:.5f},{self.maxy:.5f}"


def calibrate(conn, table: str, count: int, limit: int, seed: int, target: float) -> list[Box]:
    """Seeded bboxes around dense parts of the district, each matching ≥ ``limit`` features.

    Centres are features drawn at random (so dense areas come up more often), kept only if their
    neighbourhood is at least as dense as the median candidate's; each square (in metres on the
    ground) is sized so that ``target × limit`` representative points fall in it, then checked
    with the servers' own predicate (ST_Intersects) and grown until at least ``limit`` match."""
    import numpy as np

    with conn.cursor() as cur:
        cur.execute(
            f"SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) AS p "
            f"FROM public.{table} WHERE geom IS NOT NULL) s ORDER BY 1, 2"
        )
        xy = np.array(cur.fetchall(), dtype=float)
    if len(xy) < limit:
        raise BenchError(f"{table} has {len(xy):,} features, fewer than one page of {limit}")
    rng = random.Random(seed)
    k = min(len(xy) - 1, int(limit * target))
    candidates = []
    for index in rng.sample(range(len(xy)), min(len(xy), count * 3)):
        cx, cy = xy[index]
        scale = math.cos(math.radians(cy))
        far = np.maximum(np.abs(xy[:, 0] - cx) * scale, np.abs(xy[:, 1] - cy))
        half = float(np.partition(far, k)[k])  # half-side in degrees of latitude
        candidates.append((half, cx, cy, scale))
    cutoff = statistics.median(c[0] for c in candidates)
    dense = [c for c in candidates if c[0] <= cutoff]
    rng.shuffle(dense)
    boxes: list[Box] = []
    for half, cx, cy, scale in dense[:count]:
        for _ in range(20):
            minx = max(DISTRICT[0], cx - half / scale)
            maxx = min(DISTRICT[2], cx + half / scale)
            miny, maxy = max(DISTRICT[1], cy - half), min(DISTRICT[3], cy + half)
            box = Box(round(minx, 5), round(miny, 5), round(maxx, 5), round(maxy, 5), 0)
            matched = scalar(
                conn,
                f"SELECT count(*) FROM public.{table} "
                "WHERE ST_Intersects(geom, ST_MakeEnvelope(%s, %s, %s, %s, 4490))",
                (box.minx, box.miny, box.maxx, box.maxy),
            )
            if matched >= limit:
                boxes.append(Box(box.minx, box.miny, box.maxx, box.maxy, int(matched)))
                break
            half *= 1.1
    if len(boxes) < count:
        raise BenchError(f"could only build {len(boxes)} of {count} bboxes with ≥ {limit} features")
    return boxes


# --- the servers -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def venv_versions(python: Path, packages: list[str]) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for p in sys.argv[1:]:\n"
        "    try: out[p] = m.version(p)\n"
        "    except m.PackageNotFoundError: out[p] = None\n"
        "print(json.dumps(out))"
    )
    done = subprocess.run([str(python), "-c", code, *packages], capture_output=True, text=True)
    return json.loads(done.stdout) if done.returncode == 0 else {}


def ensure_tipg_venv() -> Path:
    """tipg pins its own FastAPI/Starlette, so it lives in .venv-tipg, never in .venv."""
    python = TIPG_VENV / "bin" / "python"
    if python.exists():
        check = subprocess.run([str(python), "-c", "import tipg, uvicorn"], capture_output=True)
        if check.returncode == 0:
            return python
    log(f"creating {TIPG_VENV.relative_to(ROOT)} with {TIPG_REQUIREMENT} (once)")
    base = shutil.which("python3") or sys.executable
    subprocess.run([base, "-m", "venv", str(TIPG_VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    # uvicorn[standard] gives tipg uvloop and httptools, as our service has
    subprocess.run([*pip, TIPG_REQUIREMENT, "uvicorn[standard]"], check=True)
    return python


def ensure_wrk() -> str | None:
    """wrk if present (installed from Debian when we are root), else None (use loadgen.py)."""
    found = shutil.which("wrk")
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    log("installing wrk from Debian")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "wrk"]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        subprocess.run(install, env=env, capture_output=True)
    return shutil.which("wrk")


@dataclass
class Server:
    """One HTTP server under test, in its own session so that stopping it stops its workers."""

    name: str
    command: list[str]
    env: dict[str, str]
    cwd: Path
    port: int
    ready_path: str
    items_path: str
    logfile: Path
    proc: subprocess.Popen | None = None
    log_handle: Any = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.log_handle = open(self.logfile, "wb")  # noqa: SIM115 - outlives this call
        self.proc = subprocess.Popen(
            self.command,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self.log_handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(self.base + self.ready_path, timeout=5) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        raise BenchError(f"{self.name} was not ready after {timeout:.0f} s:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.logfile.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM to the server's process group, SIGKILL after 15 s: nothing is left behind."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        # uvicorn's worker processes share the group: make sure none outlived the parent
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.log_handle is not None:
            self.log_handle.close()


def make_servers(args, tcp_url: str, tipg_python: Path, workdir: Path) -> dict[str, Server]:
    ours_port, tipg_port = free_port(), free_port()
    while tipg_port == ours_port:
        tipg_port = free_port()
    base_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    tipg_env = {
        **base_env,
        "DATABASE_URL": libpq_url(tcp_url),
        "TIPG_DB_SCHEMAS": '["public"]',
    }
    tipg_cwd = workdir / "tipg"  # tipg reads a .env from its working directory: give it none
    tipg_cwd.mkdir(exist_ok=True)
    limit = f"&limit={args.limit}"
    return {
        "ours": Server(
            name="ours",
            command=[
                str(OURS_VENV / "bin" / "onemap"),
                "serve",
                "--demo",
                "--host",
                "127.0.0.1",
                "--port",
                str(ours_port),
                "--workers",
                str(args.workers),
            ],
            env=base_env,
            cwd=ROOT,
            port=ours_port,
            ready_path=f"/collections/{args.collection}?f=json",
            items_path=f"/collections/{args.collection}/items?bbox={{bbox}}{limit}",
            logfile=workdir / "ours.log",
        ),
        "tipg": Server(
            name="tipg",
            command=[
                str(tipg_python.parent / "uvicorn"),
                "tipg.main:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(tipg_port),
                "--workers",
                str(args.workers),
            ],
            env=tipg_env,
            cwd=tipg_cwd,
            port=tipg_port,
            ready_path=f"/collections/public.{args.collection}?f=json",
            items_path=f"/collections/public.{args.collection}/items?bbox={{bbox}}{limit}",
            logfile=workdir / "tipg.log",
        ),
    }


# --- checking both answer the same -----------------------------------------------------------


def fetch(url: str, timeout: float = 60) -> tuple[int, str, bytes, float]:
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            body = r.read()
            status, ctype = r.status, r.headers.get("content-type", "")
    except urllib.error.HTTPError as exc:
        body, status, ctype = exc.read(), exc.code, exc.headers.get("content-type", "")
    return status, ctype, body, time.perf_counter() - started


def _coords(geometry: dict | None) -> Iterator[tuple[float, float]]:
    def walk(c):
        if c and isinstance(c[0], (int, float)):
            yield (c[0], c[1])
        else:
            for part in c or []:
                yield from walk(part)

    if geometry:
        yield from walk(geometry.get("coordinates"))


def _decimals(value: float) -> int:
    text = repr(value)
    return len(text.split(".")[1]) if "." in text and "e" not in text else 0


@dataclass
class Comparison:
    """What differs between the two answers to the same request, over the whole list."""

    requests: int = 0
    errors: dict[str, list[str]] = field(default_factory=lambda: {"ours": [], "tipg": []})
    count_mismatches: list[dict] = field(default_factory=list)
    matched_mismatches: list[dict] = field(default_factory=list)
    id_set_mismatches: int = 0
    order_mismatches: int = 0
    only_ours: set[str] = field(default_factory=set)
    only_tipg: set[str] = field(default_factory=set)
    value_diffs: dict[str, dict] = field(default_factory=dict)
    max_coord_diff: float = 0.0
    decimals: dict[str, int] = field(default_factory=lambda: {"ours": 0, "tipg": 0})
    content_types: dict[str, set[str]] = field(
        default_factory=lambda: {"ours": set(), "tipg": set()}
    )
    top_level: dict[str, list[str]] = field(default_factory=dict)
    body_bytes: dict[str, list[int]] = field(default_factory=lambda: {"ours": [], "tipg": []})
    serial_ms: dict[str, list[float]] = field(default_factory=lambda: {"ours": [], "tipg": []})
    returned: list[int] = field(default_factory=list)
    matched: list[int] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        def stats(values: list[float]) -> dict[str, float]:
            if not values:
                return {}
            ordered = sorted(values)
            return {
                "median": statistics.median(ordered),
                "p90": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
                "max": ordered[-1],
            }

        return {
            "requests": self.requests,
            "errors": self.errors,
            "count_mismatches": self.count_mismatches,
            "number_matched_mismatches": self.matched_mismatches,
            "id_set_mismatches": self.id_set_mismatches,
            "order_mismatches": self.order_mismatches,
            "properties_only_ours": sorted(self.only_ours),
            "properties_only_tipg": sorted(self.only_tipg),
            "property_value_differences": self.value_diffs,
            "max_coordinate_difference_deg": self.max_coord_diff,
            "coordinate_decimals": self.decimals,
            "content_types": {k: sorted(v) for k, v in self.content_types.items()},
            "top_level_members": self.top_level,
            "body_bytes_mean": {
                k: statistics.fmean(v) if v else None for k, v in self.body_bytes.items()
            },
            "serial_latency_ms": {k: stats(v) for k, v in self.serial_ms.items()},
            "returned": stats(self.returned),
            "matched": stats(self.matched),
        }


def compare(servers: dict[str, Server], boxes: list[Box]) -> Comparison:
    """Ask both servers every request of the list, one at a time, and compare the answers.

    This doubles as the warm-up that fills both connection pools' caches and as a measure of
    latency without load (each request alone on the machine)."""
    result = Comparison()
    for n, box in enumerate(boxes):
        answers: dict[str, dict | None] = {}
        for name, server in servers.items():
            url = server.base + server.items_path.format(bbox=box.param)
            status, ctype, body, seconds = fetch(url)
            result.content_types[name].add(ctype.split(";")[0])
            if status != 200:
                result.errors[name].append(f"{box.param}: HTTP {status} {body[:200]!r}")
                answers[name] = None
                continue
            result.serial_ms[name].append(seconds * 1000)
            result.body_bytes[name].append(len(body))
            answers[name] = json.loads(body)
        result.requests += 1
        ours, tipg = answers["ours"], answers["tipg"]
        if ours is None or tipg is None:
            continue
        if not result.top_level:
            result.top_level = {"ours": sorted(ours), "tipg": sorted(tipg)}
        fo, ft = ours["features"], tipg["features"]
        counts = {
            "bbox": box.param,
            "ours_numberReturned": ours.get("numberReturned"),
            "ours_features": len(fo),
            "tipg_numberReturned": tipg.get("numberReturned"),
            "tipg_features": len(ft),
        }
        if len({counts[k] for k in counts if k != "bbox"}) != 1:
            result.count_mismatches.append(counts)
        if (
            ours.get("numberMatched") != tipg.get("numberMatched")
            or ours.get("numberMatched") != box.matched
        ):
            result.matched_mismatches.append(
                {
                    "bbox": box.param,
                    "sql": box.matched,
                    "ours": ours.get("numberMatched"),
                    "tipg": tipg.get("numberMatched"),
                }
            )
        result.returned.append(len(fo))
        result.matched.append(box.matched)
        ids_o, ids_t = [f.get("id") for f in fo], [f.get("id") for f in ft]
        if set(ids_o) != set(ids_t):
            result.id_set_mismatches += 1
        elif ids_o != ids_t:
            result.order_mismatches += 1
        by_id = {f.get("id"): f for f in ft}
        for f in fo:
            other = by_id.get(f.get("id"))
            if other is None:
                continue
            po, pt = f.get("properties") or {}, other.get("properties") or {}
            result.only_ours |= set(po) - set(pt)
            result.only_tipg |= set(pt) - set(po)
            for key in set(po) & set(pt):
                if po[key] != pt[key]:
                    entry = result.value_diffs.setdefault(
                        key, {"features": 0, "example": {"ours": po[key], "tipg": pt[key]}}
                    )
                    entry["features"] += 1
            for (xo, yo), (xt, yt) in zip(
                _coords(f.get("geometry")), _coords(other.get("geometry")), strict=False
            ):
                result.max_coord_diff = max(result.max_coord_diff, abs(xo - xt), abs(yo - yt))
                if n < 3:
                    result.decimals["ours"] = max(result.decimals["ours"], _decimals(xo))
                    result.decimals["tipg"] = max(result.decimals["tipg"], _decimals(xt))
    return result


# --- load ------------------------------------------------------------------------------------


def load_command(args, wrk: str | None, base: str, paths_file: Path, seconds: float) -> list[str]:
    headers = [f"-H{h}" for h in getattr(args, "headers", ())]  # wrk only
    if wrk:
        return [
            wrk,
            *headers,
            f"-t{args.threads}",
            f"-c{args.concurrency}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "60s",
            "-s",
            str(HERE / "wrk_cycle.lua"),
            base,
            "--",
            str(paths_file),
            str(args.threads),
        ]
    return [
        sys.executable,
        str(HERE / "loadgen.py"),
        base,
        str(paths_file),
        "--concurrency",
        str(args.concurrency),
        "--seconds",
        str(seconds),
    ]


def run_load(command: list[str]) -> tuple[dict[str, Any], float]:
    """Run the load generator to completion; its summary and its own CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    for line in out.splitlines():
        if line.startswith("WRK_JSON "):
            return json.loads(line[len("WRK_JSON ") :]), cpu
    raise BenchError(f"the load generator printed no summary:\n{out}\n{err}")


def measure(
    server: Server,
    command: list[str],
    meter: CpuMeter,
    conn,
    settle: float,
) -> dict[str, Any]:
    """One timed run against one server, with CPU and database counters around it."""
    db_before = db_activity(conn)
    cpu_before = meter.snapshot()
    started = time.perf_counter()
    summary, loadgen_cpu = run_load(command)
    wall = time.perf_counter() - started
    cpu_after = meter.snapshot()
    # backends flush their session counters when idle (up to ~10 s later): let them
    time.sleep(settle)
    db_after = db_activity(conn)
    cpu = CpuMeter.delta(cpu_before, cpu_after)
    strangers = CpuMeter.strangers(cpu_before, cpu_after)
    duration = summary["duration_us"] / 1e6
    requests = summary["requests"]
    errors = sum(summary[k] for k in ("connect", "read", "write", "status", "timeout"))
    db = {k: db_after[k] - db_before[k] for k in db_before}
    cores = os.cpu_count() or 1
    per_req = 1000 / requests if requests else float("nan")
    postgres = cpu.get("db", 0.0) + cpu.get("exited_backends", 0.0)
    peer = sum(cpu.get(n, 0.0) for n in meter.servers if n != server.name)
    accounted = (
        postgres
        + cpu.get(server.name, 0.0)
        + cpu.get("background", 0.0)
        + cpu.get("other_db", 0.0)
        + peer
        + loadgen_cpu
    )
    return {
        "system": server.name,
        "requests": requests,
        "seconds": duration,
        "rps": requests / duration if duration else 0.0,
        "p50_ms": summary["p50_us"] / 1000,
        "p90_ms": summary["p90_us"] / 1000,
        "p99_ms": summary["p99_us"] / 1000,
        "mean_ms": summary["mean_us"] / 1000,
        "max_ms": summary["max_us"] / 1000,
        "errors": errors,
        "non_2xx": summary["status"],
        "timeouts": summary["timeout"],
        "socket_errors": summary["connect"] + summary["read"] + summary["write"],
        "bytes_per_response": summary["bytes"] / requests if requests else 0.0,
        "cpu_s": {
            "postgres_backends": postgres,
            "postgres_background": cpu.get("background", 0.0),
            "postgres_other_databases": cpu.get("other_db", 0.0),
            "server": cpu.get(server.name, 0.0),
            "idle_peer_server": peer,
            "load_generator": loadgen_cpu,
            "machine_busy": cpu["machine_busy"],
            "other_processes": sum(spent for _, spent in strangers),
            "unaccounted": cpu["machine_busy"] - accounted - sum(t for _, t in strangers),
            "wall": wall,
        },
        "busiest_other_processes": strangers,
        "cpu_ms_per_request": {
            "postgres": postgres * per_req,
            "server": cpu.get(server.name, 0.0) * per_req,
            "load_generator": loadgen_cpu * per_req,
        },
        "core_share": {
            "postgres": postgres / (wall * cores),
            "server": cpu.get(server.name, 0.0) / (wall * cores),
            "load_generator": loadgen_cpu / (wall * cores),
            "machine_busy": cpu["machine_busy"] / (cpu["machine_total"] or 1),
        },
        "database": {
            "active_ms_per_request": db["active_time"] / requests if requests else None,
            "transactions_per_request": db["xact_commit"] / requests if requests else None,
            "new_sessions": db["sessions"],
            "backends_started": len(
                set(cpu_after.groups.get("db", {})) - set(cpu_before.groups.get("db", {}))
            ),
            "backends_exited": len(
                set(cpu_before.groups.get("db", {})) - set(cpu_after.groups.get("db", {}))
            ),
            "rows_returned_per_request": db["tup_returned"] / requests if requests else None,
            "blocks_read": db["blks_read"],
        },
    }


# --- the report ------------------------------------------------------------------------------


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of every numeric leaf over the repetitions."""

    def merge(values: list[Any]) -> Any:
        first = values[0]
        if isinstance(first, dict):
            return {k: merge([v[k] for v in values]) for k in first}
        if isinstance(first, (int, float)) and not isinstance(first, bool):
            clean = [v for v in values if v is not None and not math.isnan(v)]
            return statistics.median(clean) if clean else None
        return first

    return merge(runs)


def fmt(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:,.{digits}f}"


def render(report: dict[str, Any]) -> str:
    p, m, r, c = report["params"], report["medians"], report["ratios"], report["comparison"]
    facts = report["machine"]
    lines = [
        f"# Features benchmark: onemap vs tipg — {report['date']}",
        "",
        f"`GET /collections/{{id}}/items?bbox=…&limit={p['limit']}` on **{p['collection']}** "
        f"({facts['database']['rows']:,} rows), {p['bboxes']} seeded bboxes (seed {p['seed']}) each "
        f"matching ≥ {p['limit']} features (median {fmt(c['matched'].get('median'), 0)}), "
        f"{p['workers']} uvicorn worker(s) each, concurrency {p['concurrency']}, "
        f"{p['seconds']} s × {p['repeats']} interleaved repetitions, load from "
        f"{p['load_generator']}. Medians over the repetitions.",
        "",
        "| system | req/s | p50 ms | p90 ms | p99 ms | errors | bytes/response | "
        "PG CPU ms/req | server CPU ms/req | PG share of cores | server share | machine busy |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in ("ours", "tipg"):
        s = m[name]
        lines.append(
            f"| {name} | {fmt(s['rps'])} | {fmt(s['p50_ms'])} | {fmt(s['p90_ms'])} | "
            f"{fmt(s['p99_ms'])} | {s['errors']:.0f} | {fmt(s['bytes_per_response'], 0)} | "
            f"{fmt(s['cpu_ms_per_request']['postgres'])} | {fmt(s['cpu_ms_per_request']['server'])} | "
            f"{s['core_share']['postgres']:.0%} | {s['core_share']['server']:.0%} | "
            f"{s['core_share']['machine_busy']:.0%} |"
        )
    lines += [
        "",
        "**Ratios ours/tipg** (throughput > 1 and latency < 1 mean ours is better): "
        f"throughput **{r['rps']:.2f}×**, p50 **{r['p50_ms']:.2f}×**, p99 **{r['p99_ms']:.2f}×**, "
        f"PostgreSQL CPU per request {r['postgres_cpu_per_request']:.2f}×, "
        f"server CPU per request {r['server_cpu_per_request']:.2f}×.",
        "",
        "## Where the time goes",
        "",
        "| system | PG backends | PG background | server | load generator | idle peer server | "
        "other DBs + processes | unaccounted | machine busy | DB active ms/req | "
        "transactions/req | backends started/exited |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in ("ours", "tipg"):
        s = m[name]
        cpu, db = s["cpu_s"], s["database"]
        lines.append(
            f"| {name} | {fmt(cpu['postgres_backends'])} | {fmt(cpu['postgres_background'])} | "
            f"{fmt(cpu['server'])} | {fmt(cpu['load_generator'])} | "
            f"{fmt(cpu['idle_peer_server'])} | "
            f"{fmt(cpu['postgres_other_databases'] + cpu['other_processes'])} | "
            f"{fmt(cpu['unaccounted'])} | {fmt(cpu['machine_busy'])} | "
            f"{fmt(db['active_ms_per_request'])} | {fmt(db['transactions_per_request'], 2)} | "
            f"{fmt(db['backends_started'], 0)}/{fmt(db['backends_exited'], 0)} |"
        )
    lines += [
        "",
        f"CPU seconds per {p['seconds']:.0f} s run on {facts['cores']} cores (medians). "
        "*PG backends* are the PostgreSQL processes serving the benchmarked database (including "
        "any that exited during the run); *unaccounted* is machine busy time outside every listed "
        "process (kernel, loopback networking, this script). "
        "*DB active ms/req* is PostgreSQL's own "
        "`pg_stat_database.active_time` (time backends spent executing statements) per request — "
        "compare it with p50 to see how much of a request's latency is spent inside the database. "
        + (
            "pg_stat_statements is available."
            if facts["database"]["pg_stat_statements"]
            else "pg_stat_statements is not installed, so per-statement times are not sampled."
        ),
        "",
        "## Same answers?",
        "",
        f"Every request of the list was sent to both servers one at a time before the load "
        f"({c['requests']} pairs).",
        "",
    ]
    lines += [f"- {line}" for line in report["differences"]]
    lines += [
        "",
        "Latency of a request alone (no load): "
        + ", ".join(
            f"{name} median {fmt(c['serial_latency_ms'][name].get('median'))} ms, "
            f"p90 {fmt(c['serial_latency_ms'][name].get('p90'))} ms"
            for name in ("ours", "tipg")
        )
        + ".",
        "",
        "## Every repetition",
        "",
        "| # | system | req/s | p50 ms | p99 ms | errors | PG CPU ms/req | server CPU ms/req | "
        "busiest other processes (CPU s) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for run in report["runs"]:
        lines.append(
            f"| {run['repetition']} | {run['system']} | {fmt(run['rps'])} | {fmt(run['p50_ms'])} | "
            f"{fmt(run['p99_ms'])} | {run['errors']} | "
            f"{fmt(run['cpu_ms_per_request']['postgres'])} | "
            f"{fmt(run['cpu_ms_per_request']['server'])} | "
            + (", ".join(f"{n} {t:.1f}" for n, t in run["busiest_other_processes"]) or "–")
            + " |"
        )
    db = facts["database"]
    lines += [
        "",
        "## Machine and versions",
        "",
        f"- {facts['cores']} cores ({facts['cpu_model']}), {facts['memory_gib']:.0f} GiB, "
        f"{facts['kernel']}, Python {facts['python']}",
        f"- PostgreSQL {db['postgresql']}, PostGIS {db['postgis']} (GEOS {db['geos']}, "
        f"PROJ {db['proj']}); settings " + ", ".join(f"{k}={v}" for k, v in db["settings"].items()),
        f"- `{p['collection']}`: {db['rows']:,} rows, {db['table_size']} with indexes; "
        f"buildings {db['buildings']:,}",
        "- ours: " + ", ".join(f"{k} {v}" for k, v in facts["ours_versions"].items() if v),
        "- tipg: " + ", ".join(f"{k} {v}" for k, v in facts["tipg_versions"].items() if v),
        f"- load generator: {facts['load_generator']}",
        "",
        "## Commands",
        "",
        "```",
        report["commands"]["benchmark"],
        report["commands"]["ours"],
        report["commands"]["tipg"],
        report["commands"]["load"],
        "```",
        "",
    ]
    return "\n".join(lines)


def differences(c: dict[str, Any]) -> list[str]:
    """Plain sentences on every way the two answers differed (nothing is hidden)."""
    out = []
    for name in ("ours", "tipg"):
        if c["errors"][name]:
            out.append(
                f"**{name} failed {len(c['errors'][name])} request(s)**, e.g. {c['errors'][name][0]}"
            )
    if c["count_mismatches"]:
        first = c["count_mismatches"][0]
        out.append(
            f"**Feature counts differ in {len(c['count_mismatches'])} of {c['requests']} requests**, "
            f"e.g. {json.dumps(first)}"
        )
    else:
        out.append(
            f"numberReturned and the number of features are equal in all {c['requests']} requests "
            f"(median {fmt(c['returned'].get('median'), 0)} features per page)."
        )
    if c["number_matched_mismatches"]:
        first = c["number_matched_mismatches"][0]
        out.append(
            f"**numberMatched differs** (from each other or from SQL's count) in "
            f"{len(c['number_matched_mismatches'])} requests, e.g. {json.dumps(first)}"
        )
    else:
        out.append("numberMatched is equal on both and to SQL's ST_Intersects count everywhere.")
    if c["id_set_mismatches"]:
        out.append(f"**Different feature ids** in {c['id_set_mismatches']} requests.")
    if c["order_mismatches"]:
        out.append(f"Same ids in a different order in {c['order_mismatches']} requests.")
    if not c["id_set_mismatches"] and not c["order_mismatches"]:
        out.append("Same feature ids in the same order (both page by `ORDER BY id`).")
    if c["properties_only_ours"] or c["properties_only_tipg"]:
        out.append(
            "Properties only ours sends: "
            + (", ".join(c["properties_only_ours"]) or "none")
            + "; only tipg sends: "
            + (", ".join(c["properties_only_tipg"]) or "none")
            + "."
        )
    for key, diff in sorted(c["property_value_differences"].items()):
        out.append(
            f"Property `{key}` differs in {diff['features']} features, e.g. ours "
            f"{json.dumps(diff['example']['ours'], ensure_ascii=False)} vs tipg "
            f"{json.dumps(diff['example']['tipg'], ensure_ascii=False)}."
        )
    dec = c["coordinate_decimals"]
    out.append(
        f"Coordinates: ours up to {dec['ours']} decimals, tipg up to {dec['tipg']}; largest "
        f"difference {c['max_coordinate_difference_deg']:.2e}° over all features."
    )
    sizes = c["body_bytes_mean"]
    if sizes["ours"] and sizes["tipg"]:
        out.append(
            f"Mean body: ours {sizes['ours'] / 1024:,.0f} KiB, tipg {sizes['tipg'] / 1024:,.0f} KiB "
            f"(uncompressed: the load generator sends no Accept-Encoding)."
        )
    tl = c["top_level_members"]
    if tl and tl["ours"] != tl["tipg"]:
        out.append(
            "Top-level members: ours "
            + ", ".join(tl["ours"])
            + "; tipg "
            + ", ".join(tl["tipg"])
            + "."
        )
    types = c["content_types"]
    out.append(f"Content-Type: ours {', '.join(types['ours'])}; tipg {', '.join(types['tipg'])}.")
    return out


def machine_facts(db_facts: dict[str, Any], load_generator: str) -> dict[str, Any]:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = 0.0
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = int(line.split()[1]) / 1024 / 1024
    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": memory,
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "database": db_facts,
        "load_generator": load_generator,
        "ours_versions": venv_versions(
            OURS_VENV / "bin" / "python",
            ["fastapi", "starlette", "uvicorn", "uvloop", "httptools", "sqlalchemy", "psycopg"],
        ),
        "tipg_versions": venv_versions(
            TIPG_VENV / "bin" / "python",
            ["tipg", "fastapi", "starlette", "uvicorn", "uvloop", "httptools", "asyncpg"],
        ),
    }


# --- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="OGC API – Features items: onemap vs tipg, side by side.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--seconds", type=float, default=30, help="length of each timed run")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs per system")
    parser.add_argument("--concurrency", type=int, default=8, help="connections kept busy")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers of each server")
    parser.add_argument("--collection", default="buildings", choices=COLLECTIONS)
    parser.add_argument("--limit", type=int, default=1000, help="features per page")
    parser.add_argument("--bboxes", type=int, default=200, help="distinct requests in the list")
    parser.add_argument("--seed", type=int, default=20260117, help="seed of the bbox list")
    parser.add_argument(
        "--target", type=float, default=1.15, help="bbox size: about target × limit features match"
    )
    parser.add_argument("--warmup", type=float, default=5, help="seconds of load before timing")
    parser.add_argument(
        "--settle", type=float, default=11, help="pause after each run (stats flush, cool-down)"
    )
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument(
        "--loadgen", choices=("auto", "wrk", "python"), default="auto", help="load generator"
    )
    parser.add_argument("--out", type=Path, default=None, help="result file stem")
    parser.add_argument("--keep-logs", action="store_true", help="keep the servers' logs")
    args = parser.parse_args(argv)
    if args.threads > args.concurrency:
        parser.error("--threads must not exceed --concurrency")
    return args


def result_stem(args: argparse.Namespace, today: str) -> Path:
    if args.out:
        return args.out
    stem = f"features-{today}"
    if args.collection != "buildings":
        stem += f"-{args.collection}"
    if args.workers != 1:
        stem += f"-w{args.workers}"
    if args.concurrency != 8:
        stem += f"-c{args.concurrency}"
    return RESULTS / stem


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM (CI, a parent make) unwinds like Ctrl-C so that the finally below stops the servers
    signal.signal(signal.SIGTERM, _interrupt)
    workdir = Path(tempfile.mkdtemp(prefix="onemap-bench-"))
    servers: dict[str, Server] = {}
    conn = None
    try:
        socket_url = onemap_db_url()
        conn = connect(socket_url)
        db_facts = check_database(conn, args.collection)
        tcp_url = onemap_db_url(tcp=True)
        tipg_python = ensure_tipg_venv()
        wrk = ensure_wrk() if args.loadgen in ("auto", "wrk") else None
        if args.loadgen == "wrk" and not wrk:
            raise BenchError("wrk is not installed: apt-get install wrk, or use --loadgen python")
        load_name = "wrk " + _wrk_version(wrk) if wrk else "benchmarks/loadgen.py (Python threads)"

        log(f"calibrating {args.bboxes} bboxes on {args.collection} (seed {args.seed})")
        boxes = calibrate(conn, args.collection, args.bboxes, args.limit, args.seed, args.target)

        servers = make_servers(args, tcp_url, tipg_python, workdir)
        for server in servers.values():
            log(f"starting {server.name}: {shlex.join(server.command)}")
            server.start()
        for server in servers.values():
            server.wait_ready()
        log("both servers are ready; comparing their answers to every request")
        comparison = compare(servers, boxes).summary()

        paths_files = {}
        for name, server in servers.items():
            paths_files[name] = workdir / f"{name}-paths.txt"
            paths_files[name].write_text(
                "\n".join(server.items_path.format(bbox=b.param) for b in boxes) + "\n"
            )
        meter = CpuMeter(
            postmaster_pid(conn),
            {n: s.proc.pid for n, s in servers.items() if s.proc},
            scalar(conn, "SELECT current_database()"),
        )
        if meter.postmaster is None:
            log("PostgreSQL is not a local process: its CPU share will be missing")

        for name, server in servers.items():
            log(f"warming up {name} for {args.warmup:.0f} s")
            run_load(load_command(args, wrk, server.base, paths_files[name], args.warmup))
        time.sleep(args.settle)  # let the last queued warm-up requests drain
        runs = []
        for rep in range(1, args.repeats + 1):
            for name, server in servers.items():
                log(
                    f"run {rep}/{args.repeats}: {name}, {args.seconds:.0f} s at c={args.concurrency}"
                )
                command = load_command(args, wrk, server.base, paths_files[name], args.seconds)
                run = measure(server, command, meter, conn, args.settle)
                run["repetition"] = rep
                runs.append(run)
                log(
                    f"  {name}: {run['rps']:.1f} req/s, p50 {run['p50_ms']:.0f} ms, "
                    f"p99 {run['p99_ms']:.0f} ms, errors {run['errors']}, "
                    f"PG {run['cpu_ms_per_request']['postgres']:.1f} ms CPU/req, "
                    f"server {run['cpu_ms_per_request']['server']:.1f} ms CPU/req"
                )

        med = {name: medians([r for r in runs if r["system"] == name]) for name in servers}
        ratios = {
            "rps": ratio(med["ours"]["rps"], med["tipg"]["rps"]),
            "p50_ms": ratio(med["ours"]["p50_ms"], med["tipg"]["p50_ms"]),
            "p99_ms": ratio(med["ours"]["p99_ms"], med["tipg"]["p99_ms"]),
            "postgres_cpu_per_request": ratio(
                med["ours"]["cpu_ms_per_request"]["postgres"],
                med["tipg"]["cpu_ms_per_request"]["postgres"],
            ),
            "server_cpu_per_request": ratio(
                med["ours"]["cpu_ms_per_request"]["server"],
                med["tipg"]["cpu_ms_per_request"]["server"],
            ),
        }
        server_logs = {name: _log_problems(s.logfile) for name, s in servers.items()}
        today = dt.date.today().isoformat()
        example = load_command(args, wrk, "http://127.0.0.1:PORT", Path("PATHS.txt"), args.seconds)
        report = {
            "date": today,
            "params": {
                **{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                "load_generator": load_name,
            },
            "machine": machine_facts(db_facts, load_name),
            "commands": {
                "benchmark": "python benchmarks/features.py " + shlex.join(argv or sys.argv[1:]),
                "ours": shlex.join(_relative(servers["ours"].command)),
                "tipg": "DATABASE_URL=postgresql://…@127.0.0.1:PORT/onemap "
                "TIPG_DB_SCHEMAS='[\"public\"]' " + shlex.join(_relative(servers["tipg"].command)),
                "load": shlex.join(_relative(example)),
            },
            "comparison": comparison,
            "differences": differences(comparison),
            "server_log_problems": server_logs,
            "runs": runs,
            "medians": med,
            "ratios": ratios,
            "bboxes": [b.param for b in boxes],
            "bbox_matched": [b.matched for b in boxes],
        }
        for name, problems in server_logs.items():
            if problems:
                report["differences"].append(
                    f"**{name}'s log has {problems['count']} error line(s)**, e.g. "
                    f"`{problems['first']}`"
                )
        markdown = render(report)
        stem = result_stem(args, today)
        stem.parent.mkdir(parents=True, exist_ok=True)
        stem.with_suffix(".md").write_text(markdown)
        stem.with_suffix(".json").write_text(
            json.dumps(report, indent=1, ensure_ascii=False, default=str) + "\n"
        )
        print(markdown)
        log(f"wrote {stem.with_suffix('.md')} and {stem.with_suffix('.json')}")
        return 0
    except BenchError as exc:
        print(f"benchmark refused: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        log("interrupted: stopping the servers")
        return 130
    finally:
        for server in servers.values():
            server.stop()
        if conn is not None:
            conn.close()
        if args.keep_logs:
            log(f"server logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _relative(command: list[str]) -> list[str]:
    return [c.replace(str(ROOT) + "/", "") for c in command]


def _wrk_version(wrk: str) -> str:
    done = subprocess.run([wrk, "--version"], capture_output=True, text=True)
    first = (done.stdout or done.stderr).splitlines()
    return first[0].split()[1] if first and len(first[0].split()) > 1 else ""


def _log_problems(logfile: Path) -> dict[str, Any] | None:
    """Tracebacks and 5xx lines in a server's log: reported, never hidden."""
    try:
        lines = logfile.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return None
    bad = [
        line
        for line in lines
        if "Traceback" in line or "ERROR" in line or '" 50' in line or "Exception" in line
    ]
    return {"count": len(bad), "first": bad[0][:300]} if bad else None


if __name__ == "__main__":
    sys.exit(main())
