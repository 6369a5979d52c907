"""A hot standby of the private cluster, fed by streaming replication on loopback.

``onemap db replica up`` copies the running primary with ``pg_basebackup`` into a data directory
of its own (beside the primary's), through a physical replication slot (``onemap_replica``: the
primary keeps every WAL segment the standby has not received, so a standby stopped for a while
catches up on restart), and starts it read-only on the next free port with a socket folder of its
own. The app finds it through ``replica.json`` under ``ONEMAP_HOME`` (geo.database.replica_url),
as it finds the primary through ``cluster.json``. Tooling the command line drives, not domain code.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from dataclasses import asdict, dataclass

from api.cluster import SUPERUSER, Cluster, ClusterError, ensure_postgis, find_binaries
from geo.settings import DatabaseSettings

SLOT = "onemap_replica"


@dataclass(frozen=True)
class ReplicaStatus:
    running: bool
    port: int | None
    data: str
    #: WAL the standby has replayed, the primary's current WAL position, and the bytes between
    replay_lsn: str | None = None
    primary_lsn: str | None = None
    lag_bytes: int | None = None
    #: the primary's view of the stream (pg_stat_replication.state): streaming, catchup, …
    stream: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


class Replica:
    """The standby of one private cluster: its folders, its port, and how it starts and stops."""

    def __init__(self, settings: DatabaseSettings):
        self.primary = Cluster(settings)
        self.state_file = self.primary.home / "replica.json"
        server = self.primary.data.parent
        self.data = server / "replica" / "pgdata"
        self.run_dir = server / "replica" / "run"
        self.log = server / "replica" / "postgres.log"
        self.passfile = server / "replica" / "pgpass"

    # --- state -------------------------------------------------------------------------------
    def state(self) -> dict:
        return json.loads(self.state_file.read_text()) if self.state_file.exists() else {}

    @property
    def port(self) -> int | None:
        return self.state().get("port")

    def initialised(self) -> bool:
        return (self.data / "PG_VERSION").exists()

    def _pg_ctl(self, *args, check: bool = True):
        if getattr(self.primary, "binaries", None) is None:  # a fresh process: down, status
            self.primary.binaries = find_binaries() or ensure_postgis()
        return self.primary._run([self.primary._bin("pg_ctl"), *args], check=check)

    def running(self) -> bool:
        if not self.initialised():
            return False
        return self._pg_ctl("status", "-D", self.data, check=False).returncode == 0

    # --- lifecycle ---------------------------------------------------------------------------
    def up(self, echo=print) -> ReplicaStatus:
        """Start the standby, first copying the primary when there is none yet. Harmless when
        it runs. The primary is started, and switched to ``wal_level = replica``, if needed."""
        self.primary.up(echo)
        self.primary.ensure_replication(echo)
        if not self.initialised():
            self._copy_primary(echo)
        if not self.running():
            port = self.port or self._free_port()
            (self.data / "postmaster.pid").unlink(missing_ok=True)
            self.log.touch(exist_ok=True)
            self.primary._own(self.log)
            echo(f"Starting the read replica on 127.0.0.1:{port} and {self.run_dir}")
            result = self._pg_ctl(
                "start", "-w", "-t", "120", "-D", self.data, "-l", self.log,
                "-o", f"-p {port}", check=False,
            )  # fmt: skip
            if result.returncode != 0:
                tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
                raise ClusterError(f"the replica did not start:\n{result.stderr}\n{tail}")
            self.state_file.write_text(json.dumps({"port": port, "run_dir": str(self.run_dir)}))
        return self.status()

    def _copy_primary(self, echo) -> None:
        """``pg_basebackup -R`` through the slot: the standby starts where the copy ended."""
        self.primary.binaries = ensure_postgis(echo)
        folder = self.data.parent
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.primary._own(folder, self.run_dir)
        # the password goes in a passfile, never on a command line (ps shows those)
        self.passfile.write_text(f"*:*:*:{SUPERUSER}:{self.primary.password()}\n")
        os.chmod(self.passfile, 0o600)
        self.primary._own(self.passfile)
        self.primary.psql(
            f"SELECT pg_drop_replication_slot('{SLOT}') FROM pg_replication_slots "
            f"WHERE slot_name = '{SLOT}' AND NOT active"
        )
        echo(f"Copying the primary into {self.data} (pg_basebackup)")
        conninfo = (
            f"host={self.primary.run_dir} port={self.primary.port} user={SUPERUSER} "
            f"passfile={self.passfile} application_name=onemap_replica"
        )
        result = self.primary._run(
            [
                self.primary._bin("pg_basebackup"),
                "-D",
                self.data,
                "-X",
                "stream",
                "-R",
                "-C",
                "-S",
                SLOT,
                "-c",
                "fast",
                "-d",
                conninfo,
            ],  # fmt: skip
            check=False,
        )
        if result.returncode != 0:
            shutil.rmtree(folder, ignore_errors=True)
            raise ClusterError(f"pg_basebackup failed: {result.stderr.strip()}")
        # the standby's own: where its socket is, which slot it reads; hot_standby_feedback keeps
        # the primary's vacuum from removing rows a long read on the standby still needs
        with (self.data / "postgresql.auto.conf").open("a") as conf:
            conf.write(
                f"unix_socket_directories = '{self.run_dir}'\n"
                "hot_standby = on\nhot_standby_feedback = on\narchive_mode = off\n"
                f"primary_slot_name = '{SLOT}'\n"
                f"primary_conninfo = '{conninfo}'\n"
            )

    def _free_port(self) -> int:
        start = (self.primary.port or self.primary.settings.port) + 1
        for port in range(start, start + 50):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) != 0:
                    return port
        raise ClusterError(f"no free loopback port in {start}–{start + 49} for the replica")

    def down(self, echo=print, remove: bool = False, immediate: bool = False) -> ReplicaStatus:
        """Stop the standby (``immediate``: as a crash would, for drills). ``remove`` also
        deletes its copy and the primary's slot, so the primary stops keeping WAL for it."""
        if self.initialised() and self.running():
            echo("Stopping the read replica")
            self._pg_ctl("stop", "-w", "-t", "60", "-m", "immediate" if immediate else "fast",
                         "-D", self.data)  # fmt: skip
        if remove:
            shutil.rmtree(self.data.parent, ignore_errors=True)
            self.state_file.unlink(missing_ok=True)
            if self.primary.status().running:
                self.primary.psql(
                    f"SELECT pg_drop_replication_slot('{SLOT}') FROM pg_replication_slots "
                    f"WHERE slot_name = '{SLOT}'"
                )
        return self.status()

    def wait_caught_up(self, timeout_s: float = 60) -> ReplicaStatus:
        """Wait until the standby has replayed everything the primary had written when asked: up
        to the insert position, not the write position, which under synchronous_commit = off
        (the private cluster's setting) can still lie before a commit already answered."""
        target = self.primary.psql("SELECT pg_current_wal_insert_lsn()")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.running():
                done = self._psql(f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn")
                if done == "t":
                    return self.status()
            time.sleep(0.1)
        raise ClusterError(f"the replica did not reach {target} within {timeout_s:.0f} s")

    def _psql(self, sql: str) -> str:
        clone = Cluster(self.primary.settings)
        clone.run_dir, clone.state_file = self.run_dir, self.state_file
        clone.binaries = self.primary.binaries
        return clone.psql(sql)

    def status(self) -> ReplicaStatus:
        if self.primary.initialised():
            self.primary.binaries = getattr(self.primary, "binaries", None) or ensure_postgis()
        running = self.running() if self.primary.initialised() else False
        replay = primary_lsn = stream = None
        lag = None
        if running:
            try:
                replay = self._psql("SELECT pg_last_wal_replay_lsn()") or None
            except ClusterError:
                replay = None
        if self.primary.status().running:
            row = self.primary.psql(
                "SELECT pg_current_wal_lsn(), (SELECT state FROM pg_stat_replication "
                "WHERE application_name = 'onemap_replica' LIMIT 1)"
            ).split("|")
            primary_lsn, stream = row[0], (row[1] or None)
            if replay:
                lag = int(self.primary.psql(f"SELECT pg_wal_lsn_diff('{primary_lsn}', '{replay}')"))
        return ReplicaStatus(running, self.port, str(self.data), replay, primary_lsn, lag, stream)
