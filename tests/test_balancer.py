"""Several API processes behind haproxy, pgbouncer in front of PostgreSQL (issue 16): the files
``onemap deploy balancer`` writes are accepted, requests reach every process, a write through
one is read back through the balancer, a tile is never stale after an edit, and a killed process
loses no request. Everything started here is stopped, even on failure."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import tempfile
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import httpx
import morecantile
import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from api import balancer
from tests.conftest import TILE_CACHE, auth
from tests.test_tiles import GEOJSON, _close, _feature, _in_tile, decode

TMS = morecantile.tms.get("WebMercatorQuad")


def free_ports(n: int) -> list[int]:
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


@pytest.fixture(scope="module")
def stack(db_url):
    """pgbouncer over the test database, two ``onemap serve`` processes through it, haproxy in
    front: a folder of its own under /tmp (pgbouncer runs as postgres when we are root)."""
    api_a, api_b, front, pooler = free_ports(4)
    layout = balancer.Layout(
        db_url,
        api_ports=(api_a, api_b),
        balancer_port=front,
        pgbouncer_port=pooler,
        extra_env={"ONEMAP_DEMO": "1", "ONEMAP_TILE_CACHE": str(TILE_CACHE)},
    )
    out = Path(tempfile.mkdtemp(prefix="onemap-balancer-", dir="/tmp"))
    running = balancer.Stack(layout, out)
    try:
        running.start()
        yield running
    finally:
        running.stop()
        shutil.rmtree(out, ignore_errors=True)


def test_the_written_files_are_accepted_and_say_what_matters(tmp_path, db_url):
    layout = balancer.Layout(db_url, api_ports=(8001, 8002, 8003))
    files = balancer.write(layout, tmp_path / "deploy")
    ok, said = balancer.check(files["haproxy"])
    assert ok, said
    cfg = files["haproxy"].read_text()
    assert "bind 127.0.0.1:8080" in cfg
    assert [line.split()[2] for line in cfg.splitlines() if line.strip().startswith("server ")] == [
        "127.0.0.1:8001",
        "127.0.0.1:8002",
        "127.0.0.1:8003",
    ]
    for needed in ("option redispatch", "timeout tunnel", "uri /health", "balance roundrobin"):
        assert needed in cfg
    ini = files["pgbouncer"].read_text()
    assert "pool_mode = transaction" in ini and "listen_port = 6432" in ini
    assert oct(files["userlist"].stat().st_mode & 0o777) == "0o600"
    assert layout.api_env()["DATABASE_URL"].endswith(
        "@127.0.0.1:6432/" + db_url.split("/")[-1].split("?")[0]
    )
    assert layout.api_env()["ONEMAP_DB_PGBOUNCER"] == "1"
    # a broken file is refused by haproxy, not by us
    files["haproxy"].write_text(cfg.replace("balance roundrobin", "balance nowhere"))
    assert balancer.check(files["haproxy"])[0] is False
    with pytest.raises(ValueError, match="ports must differ"):
        balancer.Layout(db_url, api_ports=(8080,))


def test_requests_through_the_balancer_reach_both_processes(stack):
    front = f"http://127.0.0.1:{stack.layout.balancer_port}"
    pids = {str(p.pid) for p in stack.apis.values()}
    answered: Counter[str] = Counter()
    with httpx.Client(base_url=front, timeout=30) as http:
        for _ in range(200):
            answer = http.get("/health")
            assert answer.status_code == 200, answer.text
            answered[answer.headers["x-onemap-process"]] += 1
    assert set(answered) == pids
    assert min(answered.values()) >= 50, answered  # round robin: about half each
    # the processes connect through pgbouncer (its console lists them), listen on the primary
    report = httpx.get(front + "/health").json()
    assert report["listener"]["connected"] is True
    db = make_url(stack.layout.database_url)
    with psycopg.connect(
        host="127.0.0.1",
        port=stack.layout.pgbouncer_port,
        dbname="pgbouncer",
        user=db.username,
        password=db.password,
        autocommit=True,
        cursor_factory=psycopg.ClientCursor,
    ) as console:
        clients = console.execute("SHOW CLIENTS").fetchall()
        names = [c.name for c in console.execute("SHOW CLIENTS").description]
    databases = Counter(row[names.index("database")] for row in clients)
    assert databases[db.database] >= 2, databases
    logs = "".join(p.read_text() for p in stack.out.glob("api-*.log"))
    assert "prepared statement" not in logs


def test_a_write_is_read_back_and_no_tile_is_stale(stack, engine, tokens):
    """An edit through process A, then the same record and tile through the balancer (either
    process): always the new state."""
    front = f"http://127.0.0.1:{stack.layout.balancer_port}"
    first = f"http://127.0.0.1:{stack.layout.api_ports[0]}"
    headers = auth(tokens, "admin")
    with engine.connect() as conn:
        fid, lon, lat = conn.execute(
            text("SELECT id, ST_X(geom), ST_Y(geom) FROM facilities ORDER BY id OFFSET 9 LIMIT 1")
        ).one()
    t = TMS.tile(lon, lat, 15)
    path = f"/tiles/facilities/{t.z}/{t.x}/{t.y}.mvt"
    fresh = httpx.Limits(max_keepalive_connections=0)  # each request may land on either process
    with (
        httpx.Client(base_url=front, timeout=30, limits=fresh) as via_balancer,
        httpx.Client(base_url=first, timeout=30) as via_a,
    ):
        for _ in range(4):  # both processes draw and cache it
            assert via_balancer.get(path, headers=headers).status_code == 200
        try:
            for step in (1, 2):
                moved = [lon + step * 0.0001, lat]
                tag = via_a.get(f"/records/facilities/{fid}", headers=headers).headers["etag"]
                edit = via_a.patch(
                    f"/records/facilities/{fid}",
                    headers=headers | GEOJSON | {"If-Match": tag},
                    content=json.dumps({"geometry": {"type": "Point", "coordinates": moved}}),
                )
                assert edit.status_code == 200, edit.text
                for _ in range(4):
                    record = via_balancer.get(f"/records/facilities/{fid}", headers=headers)
                    assert record.status_code == 200
                    got = record.json()["geometry"]["coordinates"]
                    assert abs(got[0] - moved[0]) < 1e-9 and abs(got[1] - moved[1]) < 1e-9
                    tile = decode(via_balancer.get(path, headers=headers).content)
                    drawn = _feature(tile, "facilities", fid)["geometry"]["coordinates"]
                    assert _close(drawn, _in_tile(t, *moved)), (step, drawn)
        finally:
            tag = via_a.get(f"/records/facilities/{fid}", headers=headers).headers["etag"]
            via_a.patch(
                f"/records/facilities/{fid}",
                headers=headers | GEOJSON | {"If-Match": tag},
                content=json.dumps({"geometry": {"type": "Point", "coordinates": [lon, lat]}}),
            )


def test_a_killed_process_loses_no_request(stack):
    """Run last in this module: one API process killed, haproxy sends everything to the other."""
    front = f"http://127.0.0.1:{stack.layout.balancer_port}"
    killed_port, survivor_port = stack.layout.api_ports
    killed, survivor = stack.apis[killed_port], stack.apis[survivor_port]
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait(10)
    answered: Counter[str] = Counter()
    with httpx.Client(base_url=front, timeout=30) as http:
        for _ in range(60):
            answer = http.get("/health")
            assert answer.status_code == 200, answer.text
            answered[answer.headers["x-onemap-process"]] += 1
    assert set(answered) == {str(survivor.pid)}
