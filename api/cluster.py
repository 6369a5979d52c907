"""The private PostgreSQL + PostGIS cluster under ``.onemap/``: tooling the command line drives
(pg_ctl, initdb, apt), not domain code. The domain only reads the state file it writes
(geo.database.cluster_url).

Why a private cluster: the demo and the tests must run on a fresh machine with no database service
configured, and must never touch a database someone else owns. We start the system's own PostgreSQL
binaries on a data directory of ours, listening on a Unix socket in ``.onemap/run`` and on one
loopback port. PostgreSQL refuses to run as root, so when we are root the cluster runs as the
``postgres`` OS user (``runuser``) and owns its folders.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from geo.database import CLUSTER_SUPERUSER as SUPERUSER
from geo.database import cluster_url
from geo.settings import DatabaseSettings
from geo.sql import BadIdentifier, ident

#: Settings for a single-machine GIS workload; the tile path notes in PERFORMANCE.md explain the
#: parallel-query and JIT lines (worker start-up costs more than a tile query).
POSTGRESQL_CONF = """
# --- onemap private cluster ---
listen_addresses = '127.0.0.1'
max_connections = 100
shared_buffers = 1GB
effective_cache_size = 8GB
work_mem = 32MB
maintenance_work_mem = 512MB
max_parallel_workers_per_gather = 0
jit = off
synchronous_commit = off
wal_level = minimal
max_wal_senders = 0
checkpoint_timeout = 15min
max_wal_size = 4GB
random_page_cost = 1.1
log_min_duration_statement = -1
"""


class ClusterError(RuntimeError):
    """The private cluster cannot be set up or started; the message says what to do."""


@dataclass(frozen=True)
class Binaries:
    bindir: Path
    version: int


@dataclass(frozen=True)
class ClusterStatus:
    running: bool
    pid: int | None
    port: int | None
    home: Path
    url: str | None


def find_binaries() -> Binaries | None:
    """The newest PostgreSQL server installed from Debian's packages (or on PATH)."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), reverse=True)
    for pg_ctl in candidates:
        try:
            version = int(pg_ctl.parent.parent.name)
        except ValueError:
            continue
        return Binaries(pg_ctl.parent, version)
    on_path = shutil.which("pg_ctl")
    if on_path:
        bindir = Path(os.path.realpath(on_path)).parent
        out = subprocess.run([bindir / "postgres", "--version"], capture_output=True, text=True)
        version = int(out.stdout.split()[-1].split(".")[0])
        return Binaries(bindir, version)
    return None


def postgis_installed(binaries: Binaries) -> bool:
    sharedir = (
        subprocess.run(
            [binaries.bindir / "pg_config", "--sharedir"], capture_output=True, text=True
        ).stdout.strip()
        or f"/usr/share/postgresql/{binaries.version}"
    )
    return Path(sharedir, "extension", "postgis.control").exists()


def install_command(binaries: Binaries | None) -> list[str]:
    """The apt command that gets PostgreSQL with PostGIS on Debian/Ubuntu."""
    if binaries is None:
        return ["apt-get", "install", "-y", "postgresql", "postgis"]
    return ["apt-get", "install", "-y", f"postgresql-{binaries.version}-postgis-3"]


def ensure_postgis(echo=print) -> Binaries:
    """Find PostgreSQL and PostGIS, installing them with apt when we are root."""
    binaries = find_binaries()
    if binaries is not None and postgis_installed(binaries):
        return binaries
    command = install_command(binaries)
    if os.geteuid() != 0:
        raise ClusterError(
            "PostgreSQL with PostGIS is not installed. Install it, then run this again:\n"
            f"    sudo apt-get update && sudo {' '.join(command)}"
        )
    echo(f"PostGIS is missing; installing it: {' '.join(command)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
    subprocess.run(command, check=True, env=env)
    binaries = find_binaries()
    if binaries is None:
        raise ClusterError(
            "apt installed PostgreSQL but no pg_ctl was found under /usr/lib/postgresql"
        )
    if not postgis_installed(binaries):
        subprocess.run(install_command(binaries), check=True, env=env)
    return binaries


class Cluster:
    """One private cluster: its folders, its port, and the commands that start and stop it."""

    def __init__(self, settings: DatabaseSettings):
        self.settings = settings
        self.home = settings.home.resolve()
        self.state_file = self.home / "cluster.json"
        self.password_file = self.home / "password"
        self._place()

    def _place(self) -> None:
        server = self._server_home()
        self.data = server / "pgdata"
        self.run_dir = server / "run"
        self.log = server / "postgres.log"

    def _server_home(self) -> Path:
        """Where the server's own files go: ``.onemap/`` itself, unless we are root and the
        ``postgres`` OS user cannot reach it (a checkout inside a private folder); then a folder
        of the cluster's own under /var/tmp, named after this checkout, recorded in the state."""
        recorded = self.state().get("server_home")
        if recorded:
            return Path(recorded)
        if os.geteuid() != 0 or _reachable_by_postgres(self.home):
            return self.home
        digest = hashlib.sha1(str(self.home).encode()).hexdigest()[:12]
        return Path("/var/tmp") / f"onemap-{digest}"

    # --- who runs it -----------------------------------------------------------------------
    @property
    def as_postgres(self) -> bool:
        return os.geteuid() == 0

    def _run(self, args: list, check: bool = True, **kw) -> subprocess.CompletedProcess:
        args = [str(a) for a in args]
        if self.as_postgres:
            args = ["runuser", "-u", "postgres", "--", *args]
        return subprocess.run(args, check=check, capture_output=True, text=True, **kw)

    def _own(self, *paths: Path) -> None:
        if self.as_postgres:
            pw = pwd.getpwnam("postgres")
            for path in paths:
                os.chown(path, pw.pw_uid, pw.pw_gid)

    # --- state -------------------------------------------------------------------------------
    def state(self) -> dict:
        if self.state_file.exists():
            return json.loads(self.state_file.read_text())
        return {}

    @property
    def port(self) -> int | None:
        return self.state().get("port")

    def password(self) -> str:
        return self.password_file.read_text().strip()

    def url(self, database: str | None = None) -> str:
        """SQLAlchemy URL over the Unix socket (fastest)."""
        try:
            return cluster_url(self.settings, database)
        except Exception as exc:
            raise ClusterError(str(exc)) from exc

    def tcp_url(self, database: str | None = None) -> str:
        db = database or self.settings.name
        return (
            f"postgresql://{SUPERUSER}:{quote(self.password(), safe='')}@127.0.0.1:{self.port}/{db}"
        )

    # --- lifecycle ---------------------------------------------------------------------------
    def initialised(self) -> bool:
        return (self.data / "PG_VERSION").exists()

    def running_pid(self) -> int | None:
        if not self.initialised():
            return None
        result = self._run([self._bin("pg_ctl"), "status", "-D", self.data], check=False)
        if result.returncode != 0:
            return None
        pidfile = self.data / "postmaster.pid"
        try:
            return int(pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _bin(self, name: str) -> Path:
        return self.binaries.bindir / name

    def init(self, echo=print) -> None:
        """Create the data directory once: superuser ``onemap`` with a random password."""
        self.binaries = ensure_postgis(echo)
        if self.initialised():
            return
        self._place()  # the postgres OS user may only now exist (PostGIS was just installed)
        self.home.mkdir(parents=True, exist_ok=True)
        if self.data.parent != self.home:
            self.data.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._own(self.data.parent)
            echo(f"postgres cannot reach {self.home}; the cluster's files go to {self.data.parent}")
        for folder in (self.data, self.run_dir):
            folder.mkdir(parents=True, exist_ok=True)
            os.chmod(folder, 0o700)
            self._own(folder)
        if not self.password_file.exists():
            self.password_file.write_text(secrets.token_urlsafe(24) + "\n")
            os.chmod(self.password_file, 0o600)
        pwfile = self.run_dir / "initdb.pw"
        pwfile.write_text(self.password() + "\n")
        self._own(pwfile)
        try:
            echo(f"Creating the private PostgreSQL {self.binaries.version} cluster in {self.data}")
            self._run(
                [
                    self._bin("initdb"),
                    "-D",
                    self.data,
                    "-U",
                    SUPERUSER,
                    "--pwfile",
                    pwfile,
                    "--auth-local=scram-sha-256",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ]
            )
        except subprocess.CalledProcessError as exc:
            raise ClusterError(f"initdb failed:\n{exc.stdout}\n{exc.stderr}") from exc
        finally:
            pwfile.unlink(missing_ok=True)
        conf = self.data / "postgresql.conf"
        with conf.open("a") as handle:
            handle.write(POSTGRESQL_CONF)
            handle.write(f"unix_socket_directories = '{self.run_dir}'\n")

    def _choose_port(self) -> int:
        """Keep the port chosen before; otherwise the preferred port, or the next free one."""
        if self.port is not None:
            return self.port
        for port in range(self.settings.port, self.settings.port + 50):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) != 0:
                    return port
        raise ClusterError(
            f"no free loopback port in {self.settings.port}–{self.settings.port + 49}"
        )

    def up(self, echo=print) -> ClusterStatus:
        """Start the cluster (creating it first if needed) and make sure the database has PostGIS.

        Harmless when it is already running.
        """
        self.init(echo)
        if self.running_pid() is None:
            port = self._choose_port()
            self.log.touch(exist_ok=True)
            self._own(self.log)
            # a stale pid file from a killed postmaster would make pg_ctl refuse to start
            pidfile = self.data / "postmaster.pid"
            if pidfile.exists():
                pidfile.unlink()
            echo(f"Starting PostgreSQL on 127.0.0.1:{port} and {self.run_dir}")
            result = self._run(
                [
                    self._bin("pg_ctl"),
                    "start",
                    "-w",
                    "-t",
                    "60",
                    "-D",
                    self.data,
                    "-l",
                    self.log,
                    "-o",
                    f"-p {port}",
                ],
                check=False,
            )
            if result.returncode != 0:
                tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
                raise ClusterError(f"PostgreSQL did not start:\n{result.stderr}\n{tail}")
            self.state_file.write_text(
                json.dumps({"port": port, "server_home": str(self.data.parent)})
            )
        self.ensure_database(self.settings.name)
        return self.status()

    def psql(self, sql: str, database: str = "postgres") -> str:
        env = dict(os.environ, PGPASSWORD=self.password())
        result = subprocess.run(
            [
                self._bin("psql"),
                "-X",
                "-q",
                "-t",
                "-A",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                self.run_dir,
                "-p",
                str(self.port),
                "-U",
                SUPERUSER,
                "-d",
                database,
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            env=env,
        )
        if result.returncode != 0:
            raise ClusterError(f"psql failed: {result.stderr.strip()}")
        return result.stdout.strip()

    def ensure_database(self, name: str) -> None:
        """Create database ``name`` with PostGIS unless it exists."""
        quoted = _ident(name)  # "name": a plain identifier, so also a safe string literal inside
        if not self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{quoted[1:-1]}'"):
            self.psql(f"CREATE DATABASE {quoted}")
        self.psql("CREATE EXTENSION IF NOT EXISTS postgis", database=name)

    def drop_database(self, name: str) -> None:
        self.psql(f"DROP DATABASE IF EXISTS {_ident(name)} WITH (FORCE)")

    def down(self, echo=print) -> ClusterStatus:
        """Stop the cluster and wait until no process of it is left. Harmless when stopped."""
        if not self.initialised():
            return self.status()
        self.binaries = find_binaries() or ensure_postgis(echo)
        pid = self.running_pid()
        if pid is not None:
            echo("Stopping PostgreSQL")
            self._run(
                [self._bin("pg_ctl"), "stop", "-w", "-t", "60", "-m", "fast", "-D", self.data]
            )
            deadline = time.monotonic() + 30
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
        return self.status()

    def restart(self, echo=print) -> ClusterStatus:
        """Stop and start again (a setting that needs a restart, e.g. ``wal_level``)."""
        self.down(echo)
        return self.up(echo)

    def ensure_replication(self, echo=print) -> bool:
        """Make the running cluster able to feed a standby and a base backup: ``wal_level =
        replica``, WAL senders, and WAL archiving into ``<server home>/wal_archive`` (point-in-time
        recovery replays from there). Off by default (``wal_level = minimal`` skips WAL for bulk
        loads); switched on once, by the first replica or backup, with one restart. Returns
        whether it restarted the cluster."""
        archive = self.data.parent / "wal_archive"
        archive.mkdir(mode=0o700, exist_ok=True)
        self._own(archive)
        wanted = {
            "wal_level": "replica",
            "max_wal_senders": "10",
            "max_replication_slots": "10",
            "hot_standby": "on",
            "archive_mode": "on",
            # test ! -f: never overwrite a segment already archived (the PostgreSQL docs' rule)
            "archive_command": f"test ! -f {archive}/%f && cp %p {archive}/%f",
            "wal_keep_size": "256MB",
        }
        current = dict(
            line.split("|", 1)
            for line in self.psql(
                "SELECT name, setting FROM pg_settings WHERE name IN ("
                + ",".join(f"'{n}'" for n in wanted)
                + ")"
            ).splitlines()
        )
        needs_restart = current.get("wal_level") != "replica" or current.get("archive_mode") != "on"
        for name, value in wanted.items():
            if current.get(name) != value and not (
                name == "wal_keep_size" and current.get(name) == "256"
            ):
                quoted = value.replace("'", "''")
                self.psql(f"ALTER SYSTEM SET {name} = '{quoted}'")
        if needs_restart:
            echo("Restarting PostgreSQL with wal_level = replica and WAL archiving")
            self.restart(echo)
        else:
            self.psql("SELECT pg_reload_conf()")
        return needs_restart

    def wal_archive(self) -> Path:
        return self.data.parent / "wal_archive"

    def status(self) -> ClusterStatus:
        if self.initialised():
            self.binaries = getattr(self, "binaries", None) or find_binaries()
        pid = self.running_pid() if self.initialised() and self.binaries else None
        url = self.url() if self.port is not None and self.password_file.exists() else None
        return ClusterStatus(
            running=pid is not None, pid=pid, port=self.port, home=self.home, url=url
        )


def _reachable_by_postgres(path: Path) -> bool:
    """Can the postgres OS user enter every folder down to ``path`` (or its nearest parent)?"""
    probe = path
    while not probe.exists():
        probe = probe.parent
    try:
        pw = pwd.getpwnam("postgres")
    except KeyError:
        return True  # no such user yet: PostgreSQL is about to be installed; checked again later
    for folder in [probe, *probe.parents]:
        st = folder.stat()
        if st.st_uid == pw.pw_uid:
            mode = st.st_mode >> 6
        elif st.st_gid == pw.pw_gid:
            mode = st.st_mode >> 3
        else:
            mode = st.st_mode
        if not mode & 0o1:
            return False
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ident(name: str) -> str:
    """Database names come from settings, not users; still, refuse anything but plain names."""
    try:
        return ident(name)
    except BadIdentifier as exc:
        raise ClusterError(str(exc)) from exc
