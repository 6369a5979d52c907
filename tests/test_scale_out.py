"""Issue 16's loopback acceptance: two API processes behind haproxy, pgbouncer in front of the
primary, a hot standby for reads — 1,000 mixed requests from four callers at once, the replica
killed as a crash would in the middle and started again later.

Each caller owns one facility and reports its own hazards, so what it must read back is known:
every read that follows a caller's write (whichever process answers it, replica or primary) shows
that write; the hazards tile at a new hazard, fetched (and so cached) just before the report, holds
the hazard just after it (no stale tile); no request fails while the replica is down; and at the
end the replica has caught up: the tables written are identical on both servers.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import threading
from collections import Counter
from pathlib import Path

import httpx
import mapbox_vector_tile
import morecantile
import pytest
from sqlalchemy import create_engine, pool, text

from tests.replicated_city import NAME, free_port, replicated_city

pytestmark = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("haproxy", "pgbouncer")),
    reason="haproxy and pgbouncer come from Debian (make system)",
)

CALLERS = 4
REQUESTS = 1_000
WRITE_SHARE = 0.2
KILL_AT, RESTART_AT = 400, 700
TMS = morecantile.tms.get("WebMercatorQuad")
CHECKSUM = """SELECT count(*), md5(string_agg(t::text, '|' ORDER BY t.id))
              FROM (SELECT id, version, capacity FROM facilities) t"""
HAZARDS = """SELECT count(*), md5(string_agg(t::text, '|' ORDER BY t.id))
             FROM (SELECT id, version, status, description FROM hazards) t"""


def _sql(url: str, sql: str, **params):
    eng = create_engine(url, poolclass=pool.NullPool)
    try:
        with eng.begin() as conn:
            return conn.execute(text(sql), params).all()
    finally:
        eng.dispose()


def _psycopg(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


class Run:
    """The shared tally: requests made, by whom answered, and what went wrong."""

    def __init__(self, city):
        self.city = city
        self.lock = threading.Lock()
        self.count = 0
        self.failures: list[str] = []
        self.processes: Counter = Counter()
        self.reads_on: Counter = Counter()
        self.writes = 0
        self.hazards: list[int] = []

    def tick(self, answer: httpx.Response, what: str, ok=(200, 201)) -> httpx.Response:
        with self.lock:
            self.count += 1
            self.processes[answer.headers.get("x-onemap-process")] += 1
            self.reads_on[answer.headers.get("x-onemap-read")] += 1
            if answer.status_code not in ok:
                self.failures.append(f"{what}: {answer.status_code} {answer.text[:200]}")
            count = self.count
        if count == KILL_AT:
            self.city.replica.down(echo=lambda *_: None, immediate=True)
        elif count == RESTART_AT:
            self.city.replica.up(echo=lambda *_: None)
        return answer

    def wrong(self, message: str) -> None:
        with self.lock:
            self.failures.append(message)

    def done(self) -> bool:
        with self.lock:
            return self.count >= REQUESTS


def _caller(run: Run, base: str, admin: dict, safety: dict, facility: int, seed: int) -> None:
    rng = random.Random(seed)
    lon, lat = facility_point(run.city, facility)
    with httpx.Client(base_url=base, timeout=60) as client:  # its own cookie jar: one caller
        item = run.tick(client.get(f"/records/facilities/{facility}", headers=admin), "read")
        etag, capacity = item.headers.get("etag"), item.json()["properties"]["capacity"]
        mine: list[int] = []
        while not run.done():
            if rng.random() < WRITE_SHARE:
                if rng.random() < 0.5:  # a record: the facility's capacity
                    capacity = (capacity or 0) + 1
                    answer = run.tick(
                        client.patch(
                            f"/records/facilities/{facility}",
                            headers=admin
                            | {"Content-Type": "application/geo+json", "If-Match": etag},
                            json={"properties": {"capacity": capacity}},
                        ),
                        "facility write",
                    )
                    etag = answer.headers.get("etag", etag)
                    with run.lock:
                        run.writes += 1
                    got = run.tick(
                        client.get(f"/records/facilities/{facility}", headers=admin), "read"
                    )
                    if got.status_code == 200 and got.json()["properties"]["capacity"] != capacity:
                        run.wrong(
                            f"facility {facility}: read {got.json()['properties']['capacity']}, wrote {capacity}"
                        )
                else:  # a hazard, with the tile at it fetched just before and just after
                    x, y = lon + rng.uniform(-2e-4, 2e-4), lat + rng.uniform(-2e-4, 2e-4)
                    tile = TMS.tile(x, y, 16)
                    path = f"/tiles/hazards/{tile.z}/{tile.x}/{tile.y}.mvt"
                    run.tick(client.get(path, headers=safety), "tile", ok=(200, 204))
                    made = run.tick(
                        client.post(
                            "/safety/hazards",
                            headers=safety,
                            json={
                                "category": "fire",
                                "level": 3,
                                "description": f"压测隐患 {seed}",
                                "lon": x,
                                "lat": y,
                            },  # fmt: skip
                        ),
                        "hazard write",
                    )
                    if made.status_code != 201:
                        continue
                    hazard = made.json()["id"]
                    mine.append(hazard)
                    with run.lock:
                        run.writes += 1
                        run.hazards.append(hazard)
                    after = run.tick(client.get(path, headers=safety), "tile", ok=(200, 204))
                    ids = {
                        f["id"]
                        for f in mapbox_vector_tile.decode(after.content or b"").get("hazards", {}).get("features", [])
                    }  # fmt: skip
                    if hazard not in ids:
                        run.wrong(f"stale tile {path}: hazard {hazard} missing after its report")
            elif mine and rng.random() < 0.3:
                got = run.tick(
                    client.get(f"/safety/hazards/{mine[-1]}", headers=safety), "hazard read"
                )
                if got.status_code == 200 and got.json()["id"] != mine[-1]:
                    run.wrong(f"hazard {mine[-1]}: read another")
            elif rng.random() < 0.5:
                got = run.tick(client.get(f"/records/facilities/{facility}", headers=admin), "read")
                if got.status_code == 200 and got.json()["properties"]["capacity"] != capacity:
                    run.wrong(
                        f"facility {facility}: read {got.json()['properties']['capacity']}, last wrote {capacity}"
                    )
            else:
                run.tick(client.get("/collections/facilities/items?limit=10"), "list")


def facility_point(city, facility: int) -> tuple[float, float]:
    (row,) = _sql(
        city.primary_url, "SELECT ST_X(geom), ST_Y(geom) FROM facilities WHERE id = :i", i=facility
    )
    return row[0], row[1]


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    with replicated_city(tmp_path_factory.mktemp("scale-home"), base_port=55700) as made:
        yield made


def test_two_processes_a_balancer_and_a_replica_lose_nothing(city, tmp_path):
    from api.balancer import Layout, Stack
    from geo.policy.users import create_user, issue_token

    eng = create_engine(city.primary_url, poolclass=pool.NullPool)
    with eng.begin() as conn:
        tokens = {}
        for name, role in (("scale_admin", "admin"), ("scale_safety", "safety")):
            create_user(conn, name, role)
            tokens[role] = {"Authorization": f"Bearer {issue_token(conn, name).token}"}
        facilities = conn.execute(
            text("SELECT id FROM facilities WHERE grid_code IS NOT NULL ORDER BY id LIMIT :n"),
            {"n": CALLERS},
        ).scalars().all()  # fmt: skip
    eng.dispose()
    city.replica.wait_caught_up()

    first = free_port(56100)
    layout = Layout(
        database_url=_psycopg(city.cluster.tcp_url(NAME)),
        api_ports=(first, first + 1),
        balancer_port=free_port(first + 4),
        pgbouncer_port=free_port(first + 10),
        extra_env={
            "DATABASE_READ_URL": _psycopg(
                city.cluster.tcp_url(NAME).replace(
                    f":{city.cluster.port}/", f":{city.replica.port}/"
                )
            ),
            "ONEMAP_TILE_CACHE": str(tmp_path / "tiles"),
            "ONEMAP_DEMO": "1",
        },
    )
    # pgbouncer runs as postgres when we are root: a folder it can reach, not pytest's 0700 one
    out = Path(tempfile.mkdtemp(prefix="onemap-scale-", dir="/tmp"))
    out.chmod(0o755)
    stack = Stack(layout, out)
    stack.start()
    run = Run(city)
    try:
        base = f"http://127.0.0.1:{layout.balancer_port}"
        threads = [
            threading.Thread(
                target=_caller,
                args=(run, base, tokens["admin"], tokens["safety"], facility, seed),
            )
            for seed, facility in enumerate(facilities)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(600)
    finally:
        stack.stop()
        shutil.rmtree(out, ignore_errors=True)
        if not city.replica.running():
            city.replica.up(echo=lambda *_: None)
    print(f"requests {run.count}, writes {run.writes}, processes {dict(run.processes)}, "
          f"answered from {dict(run.reads_on)}")  # fmt: skip
    assert run.failures == []
    assert run.count >= REQUESTS
    assert 0.12 * run.count < run.writes < 0.3 * run.count  # about a fifth are writes
    assert len([p for p in run.processes if p]) == 2  # both processes answered
    assert run.reads_on["replica"] > 0 and run.reads_on["primary"] > 0

    city.replica.wait_caught_up()  # the replica, killed mid-run, has caught up
    replica_url = city.cluster.tcp_url(NAME).replace(
        f":{city.cluster.port}/", f":{city.replica.port}/"
    )
    for sql in (CHECKSUM, HAZARDS):
        assert _sql(city.primary_url, sql) == _sql(_psycopg(replica_url), sql)
    stored = _sql(
        city.primary_url, "SELECT count(*) FROM hazards WHERE id = ANY(:ids)", ids=run.hazards
    )
    assert stored[0][0] == len(run.hazards)  # every reported hazard was kept
