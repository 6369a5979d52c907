"""``onemap db up|down|status|url`` on a private cluster of the test's own: idempotent, and
nothing left running after ``down``."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, pool, text

from geo.settings import PROJECT_ROOT

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("DATABASE_URL")), reason="an external PostGIS is in use"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def home():
    # under the project: the postgres OS user must be able to reach it when we run as root
    path = PROJECT_ROOT / ".onemap" / f"test-cluster-{uuid.uuid4().hex[:8]}"
    path.parent.mkdir(exist_ok=True)
    yield path
    _onemap(path, "db", "down", check=False)
    state = path / "cluster.json"
    server_home = json.loads(state.read_text()).get("server_home") if state.exists() else None
    shutil.rmtree(path, ignore_errors=True)
    if server_home and Path(server_home) != path:  # the /var/tmp fallback of a private checkout
        shutil.rmtree(server_home, ignore_errors=True)


def _onemap(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "ONEMAP_DB_URL")}
    env.update(ONEMAP_HOME=str(home), ONEMAP_DB_PORT=str(_onemap.port))
    result = subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
        timeout=180,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"onemap {' '.join(args)} failed: {result.stdout}\n{result.stderr}")
    return result


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _cluster_processes(home: Path) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if str(home / "pgdata") in line]


def test_db_up_twice_then_down_twice_leaves_nothing(home):
    _onemap.port = _free_port()
    _onemap(home, "db", "up")
    first = json.loads(_onemap(home, "db", "status").stdout)
    assert first["running"] and first["port"] == _onemap.port
    _onemap(home, "db", "up")  # harmless when running
    second = json.loads(_onemap(home, "db", "status").stdout)
    assert second["pid"] == first["pid"]

    url = _onemap(home, "db", "url").stdout.strip()
    eng = create_engine(url, poolclass=pool.NullPool)
    with eng.connect() as conn:
        assert conn.execute(text("SELECT postgis_lib_version()")).scalar().startswith("3.")
    eng.dispose()

    _onemap(home, "db", "down")
    _onemap(home, "db", "down")  # harmless when stopped
    stopped = _onemap(home, "db", "status", check=False)
    assert stopped.returncode == 3 and not json.loads(stopped.stdout)["running"]
    assert not _alive(first["pid"])
    assert _cluster_processes(home) == []
