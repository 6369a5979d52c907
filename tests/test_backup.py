"""Backup during writes, and point-in-time restore, rehearsed on a cluster of the test's own.

A writer thread commits a serial sequence of transactions (a journal row, an account's balance,
a place's PostGIS point) while ``onemap db backup`` runs. The restores must hold a consistent
prefix 1..k of those commits, with checksums equal to the primary's for that same prefix (the
mutable tables rebuilt from the primary's journal up to k); a restore to an LSN or a restore
point taken while the writer was paused must equal the primary's checksums at that pause.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from api.cluster import Cluster
from api.cluster_backup import (
    BackupError,
    find_backup,
    lsn_value,
    make_target,
    restore,
    restores_root,
    stop_restored,
)
from geo.settings import PROJECT_ROOT, DatabaseSettings

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("DATABASE_URL")), reason="an external PostGIS is in use"
)

DB = "backup_city"
ACCOUNTS, PLACES = 10, 20
SCHEMA = f"""
CREATE TABLE journal (seq int PRIMARY KEY, account int NOT NULL, amount int NOT NULL,
                      place int NOT NULL, geom geometry(Point, 4490) NOT NULL);
CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL, last_seq int NOT NULL);
CREATE TABLE places (id int PRIMARY KEY, geom geometry(Point, 4490) NOT NULL,
                     last_seq int NOT NULL);
INSERT INTO accounts SELECT g, 1000, 0 FROM generate_series(0, {ACCOUNTS - 1}) g;
INSERT INTO places SELECT g, ST_SetSRID(ST_Point(118.9, 31.6), 4490), 0
  FROM generate_series(0, {PLACES - 1}) g;
"""
#: the tables as they are (direct) …
DIRECT = {
    "journal": "SELECT count(*) || ':' || md5(coalesce(string_agg(format('%s|%s|%s|%s|%s', seq, "
    "account, amount, place, ST_AsText(geom)), ',' ORDER BY seq), '')) FROM journal",
    "accounts": "SELECT count(*) || ':' || md5(string_agg(format('%s|%s|%s', id, balance, "
    "last_seq), ',' ORDER BY id)) FROM accounts",
    "places": "SELECT count(*) || ':' || md5(string_agg(format('%s|%s|%s', id, ST_AsText(geom), "
    "last_seq), ',' ORDER BY id)) FROM places",
}
#: … and as they were after commit k, rebuilt on the primary from its journal
AT_PREFIX = {
    "journal": "SELECT count(*) || ':' || md5(coalesce(string_agg(format('%s|%s|%s|%s|%s', seq, "
    "account, amount, place, ST_AsText(geom)), ',' ORDER BY seq), '')) FROM journal "
    "WHERE seq <= @K@",
    "accounts": "SELECT count(*) || ':' || md5(string_agg(format('%s|%s|%s', a.id, "
    "1000 + coalesce(j.total, 0), coalesce(j.last, 0)), ',' ORDER BY a.id)) "
    f"FROM generate_series(0, {ACCOUNTS - 1}) a(id) LEFT JOIN (SELECT account, sum(amount) "
    "total, max(seq) last FROM journal WHERE seq <= @K@ GROUP BY account) j "
    "ON j.account = a.id",
    "places": "SELECT count(*) || ':' || md5(string_agg(format('%s|%s|%s', p.id, "
    "coalesce(ST_AsText(j.geom), 'POINT(118.9 31.6)'), coalesce(j.seq, 0)), ',' ORDER BY p.id)) "
    f"FROM generate_series(0, {PLACES - 1}) p(id) LEFT JOIN (SELECT DISTINCT ON (place) place, "
    "seq, geom FROM journal WHERE seq <= @K@ ORDER BY place, seq DESC) j ON j.place = p.id",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _quiet(*_args) -> None:
    pass


def checksums(url: str, queries: dict[str, str], k: int | None = None) -> dict[str, str]:
    with psycopg.connect(url, autocommit=True) as conn:
        return {
            table: conn.execute(sql.replace("@K@", str(int(k or 0)))).fetchone()[0]
            for table, sql in queries.items()
        }


def prefix_of(url: str) -> int:
    """k, after checking the journal holds exactly the commits 1..k (a prefix, no gap)."""
    with psycopg.connect(url, autocommit=True) as conn:
        count, low, high = conn.execute(
            "SELECT count(*), min(seq), max(seq) FROM journal"
        ).fetchone()
    assert count == 0 or (low == 1 and high == count), (count, low, high)
    return count


class Writer(threading.Thread):
    """Commits transaction 1, 2, 3, … one after another; can be paused between commits."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url = url
        self.committed = 0
        self.go = threading.Event()
        self.idle = threading.Event()
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.go.set()

    def run(self) -> None:
        try:
            with psycopg.connect(self.url) as conn:
                while not self.stop.is_set():
                    if not self.go.is_set():
                        self.idle.set()
                        self.go.wait(0.05)
                        continue
                    self.idle.clear()
                    self.commit(conn, self.committed + 1)
                    self.committed += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    @staticmethod
    def commit(conn, i: int) -> None:
        account, place, amount = i % ACCOUNTS, i % PLACES, (i * 7919) % 1000 - 500
        lon, lat = 118.8 + (i % 997) / 2000, 31.5 + (i % 991) / 2000
        point = "ST_SetSRID(ST_Point(%(lon)s, %(lat)s), 4490)"
        values = {"i": i, "a": account, "p": place, "amt": amount, "lon": lon, "lat": lat}
        conn.execute(f"INSERT INTO journal VALUES (%(i)s, %(a)s, %(amt)s, %(p)s, {point})", values)
        conn.execute(
            "UPDATE accounts SET balance = balance + %(amt)s, last_seq = %(i)s WHERE id = %(a)s",
            values,
        )
        conn.execute(f"UPDATE places SET geom = {point}, last_seq = %(i)s WHERE id = %(p)s", values)
        conn.commit()

    def wait_for(self, count: int) -> None:
        while self.committed < count:
            assert self.error is None, self.error
            assert self.is_alive()
            self.stop.wait(0.01)

    def pause(self) -> None:
        self.go.clear()
        while not self.idle.wait(0.05):
            assert self.error is None, self.error

    def resume(self) -> None:
        self.idle.clear()
        self.go.set()


@pytest.fixture(scope="module")
def primary():
    """A primary of the test's own (under .onemap/, where the postgres OS user reaches it),
    with the tables and a running writer; everything is stopped and removed afterwards."""
    home = PROJECT_ROOT / ".onemap" / f"test-backup-{uuid.uuid4().hex[:8]}"
    home.parent.mkdir(exist_ok=True)
    cluster = Cluster(DatabaseSettings(home=home, port=_free_port(), name=DB, url=None))
    writer = None
    try:
        cluster.up(echo=_quiet)
        cluster.psql("ALTER SYSTEM SET shared_buffers = '64MB'")  # taken at the restart:
        cluster.ensure_replication(echo=_quiet)  # WAL archiving on before the writer connects
        cluster.psql(SCHEMA, database=DB)
        writer = Writer(cluster.tcp_url(DB))
        writer.start()
        yield cluster, writer
    finally:
        if writer is not None:
            writer.stop.set()
            writer.go.set()
            writer.join(30)
        restores = restores_root(cluster)
        for restored in restores.iterdir() if restores.is_dir() else []:
            stop_restored(restored)
        cluster.down(echo=_quiet)
        server_home = cluster.data.parent
        shutil.rmtree(home, ignore_errors=True)
        if server_home != home:
            shutil.rmtree(server_home, ignore_errors=True)


def onemap_command(cluster: Cluster, *args: str) -> list[str]:
    return [sys.executable, "-m", "api.cli", "db", *args]


def onemap_options(cluster: Cluster) -> dict:
    """`onemap db …` speaking to this cluster, never to DATABASE_URL's server."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "ONEMAP_DB_URL")}
    env.update(ONEMAP_HOME=str(cluster.home), ONEMAP_DB_PORT=str(cluster.port), ONEMAP_DB_NAME=DB)
    return {
        "stdout": subprocess.PIPE,
        "stderr": subprocess.PIPE,
        "text": True,
        "env": env,
        "cwd": PROJECT_ROOT,
    }


def onemap(cluster: Cluster, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(onemap_command(cluster, *args), timeout=300, **onemap_options(cluster))


def ok(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def backed_up(primary):
    """`onemap db backup --verify` taken while the writer commits."""
    cluster, writer = primary
    writer.wait_for(200)
    before = writer.committed
    made = ok(onemap(cluster, "backup", "--verify"))
    after = writer.committed
    return made, before, after


def test_backup_during_writes_restores_a_consistent_prefix(primary, backed_up):
    cluster, writer = primary
    made, before, after = backed_up
    assert made["verified"] is True
    assert lsn_value(made["start_lsn"]) < lsn_value(made["end_lsn"])
    backup = find_backup(cluster, made["backup"])
    assert (backup.base / "backup_manifest").exists()

    restored = restore(cluster, make_target(immediate=True), name="immediate", echo=_quiet)
    url = restored.cluster.tcp_url(DB)
    k = prefix_of(url)
    # everything committed before pg_basebackup began is in; after it returned, at most the
    # one transaction whose commit was under way (a serial writer has one in flight)
    assert before <= k <= after + 1, (before, k, after)
    writer.wait_for(k + 50)  # the primary has moved on: its own tables no longer say k
    primary_url = cluster.tcp_url(DB)
    assert checksums(url, DIRECT) == checksums(primary_url, AT_PREFIX, k)
    assert checksums(primary_url, AT_PREFIX, k) != checksums(primary_url, AT_PREFIX, k + 50)
    # it replayed exactly to the backup's consistent point and was promoted (writable)
    assert lsn_value(restored.replayed_to) >= lsn_value(made["end_lsn"])
    assert restored.cluster.psql("SELECT pg_is_in_recovery()", DB) == "f"
    stop_restored(restored.home)


def test_point_in_time_restore_to_an_lsn_a_time_and_a_restore_point(primary, backed_up):
    cluster, writer = primary
    made, _, after = backed_up
    primary_url = cluster.tcp_url(DB)
    writer.wait_for(after + 100)
    writer.pause()
    lsn = cluster.psql("SELECT pg_current_wal_insert_lsn()")
    moment = cluster.psql(
        "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US')"
    )
    point = ok(onemap(cluster, "restore-point", "paused-here"))
    paused = checksums(primary_url, DIRECT)
    k = prefix_of(primary_url)
    # the rebuild from the journal is what the tables say (so the first test's check is sound)
    assert checksums(primary_url, AT_PREFIX, k) == paused
    writer.resume()
    writer.wait_for(k + 200)
    assert lsn_value(point["lsn"]) > lsn_value(lsn)

    # the three restores run side by side (each its own folder and port), as an operator may
    by_name_cli = subprocess.Popen(
        onemap_command(cluster, "restore", made["backup"], "--to-name", "paused-here"),
        **onemap_options(cluster),
    )
    targets = {"to-lsn": make_target(to_lsn=lsn), "to-time": make_target(to_time=moment + "+00:00")}
    try:
        with ThreadPoolExecutor(2) as pool:
            runs = {
                name: pool.submit(
                    restore, cluster, target, name=name, port=_free_port(), echo=_quiet
                )
                for name, target in targets.items()
            }
            restored = {name: run.result().cluster for name, run in runs.items()}
    finally:
        out, err = by_name_cli.communicate(timeout=300)
    by_name = ok(subprocess.CompletedProcess([], by_name_cli.returncode, out, err))
    restored["to-name"] = Cluster(DatabaseSettings(home=Path(by_name["home"]), name=DB, url=None))
    for name, copy in restored.items():
        assert checksums(copy.tcp_url(DB), DIRECT) == paused, name
        stop_restored(copy.home)
    assert checksums(primary_url, DIRECT) != paused  # the primary went on writing


def _restore_processes(cluster: Cluster) -> list[str]:
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if str(restores_root(cluster)) in line]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--to-lsn", "12/xyz"], "is not an LSN"),
        (["--to-lsn", "START"], "is before the end of backup"),
        (["--to-name", "never-made"], "no restore point named 'never-made'"),
    ],
)
def test_a_bad_target_is_refused_and_nothing_starts(primary, backed_up, args, message):
    cluster, _ = primary
    made, _, _ = backed_up
    args = [made["start_lsn"] if a == "START" else a for a in args]
    before = sorted(p.name for p in restores_root(cluster).glob("*"))
    result = onemap(cluster, "restore", *args)
    assert result.returncode == 1
    assert message in " ".join(result.stderr.split()), result.stderr
    assert sorted(p.name for p in restores_root(cluster).glob("*")) == before
    assert _restore_processes(cluster) == []


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ({"to_lsn": "START"}, "before the end of backup"),
        ({"to_lsn": "0/"}, "is not an LSN"),
        ({"to_time": "2020-01-01T00:00:00+08:00"}, "is before backup"),
        ({"to_time": "2026-12-01 08:00"}, "has no time zone"),
        ({"to_time": "2999-01-01T00:00:00+08:00"}, "is in the future"),
        ({"to_lsn": "0/FFFFFFF", "immediate": True}, "give one recovery target"),
        ({"to_lsn": "FF/0"}, "has not been written yet"),
        ({"to_name": "it's"}, "is not a restore point name"),
    ],
)
def test_the_api_refuses_the_same_before_making_anything(primary, backed_up, target, message):
    cluster, _ = primary
    made, _, _ = backed_up
    target = {k: made["start_lsn"] if v == "START" else v for k, v in target.items()}
    before = sorted(p.name for p in restores_root(cluster).glob("*"))
    with pytest.raises(BackupError, match=message):
        restore(cluster, make_target(**target), echo=_quiet)
    assert sorted(p.name for p in restores_root(cluster).glob("*")) == before
    assert _restore_processes(cluster) == []
