"""Several API processes behind haproxy, with pgbouncer in front of PostgreSQL (issue 16): the
configuration files, their check, and a foreground-managed stack of all of them.

- **haproxy** (Debian's) balances the API processes (``roundrobin`` or ``leastconn``), checks each
  with ``GET /health``, and on a connection refused retries on another (``option redispatch``);
  only requests that never reached a process are retried for writes (``disable-l7-retry`` unless
  GET/HEAD/OPTIONS: a POST is never sent twice). ``timeout server`` outlasts the warnings
  stream's 15 s heartbeat and ``timeout tunnel`` keeps long-lived streams open.
- **pgbouncer** pools the API's connections in ``pool_mode = transaction``: many processes share
  few server connections. Transaction pooling carries no session state between transactions:
  the app keeps to transaction-scoped settings (``SET LOCAL``) and advisory locks
  (``pg_advisory_xact_lock``), and must not let psycopg prepare statements server-side:
  pgbouncer >= 1.21 can carry prepared statements, Debian 12 ships 1.18, so the API behind it
  connects with ``prepare_threshold=None`` (``ONEMAP_DB_PGBOUNCER=1``, geo.database.engine).
- **LISTEN/NOTIFY** does not pass through transaction pooling (nor work on a hot standby): each
  API process's change listener connects to the primary itself (``ONEMAP_DB_LISTEN_URL``).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from sqlalchemy.engine import make_url

BALANCES = ("roundrobin", "leastconn")


@dataclass(frozen=True)
class Layout:
    """Where everything listens. ``database_url`` is the primary itself (SQLAlchemy URL, socket
    or TCP), which pgbouncer and the change listeners connect to."""

    database_url: str
    api_ports: tuple[int, ...] = (8001, 8002)
    balancer_port: int = 8080
    pgbouncer_port: int = 6432
    host: str = "127.0.0.1"
    balance: str = "roundrobin"
    pool_size: int = 20
    max_client_conn: int = 1000
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.balance not in BALANCES:
            raise ValueError(f"balance {self.balance!r}: give one of {', '.join(BALANCES)}")
        if not self.api_ports:
            raise ValueError("give at least one API port")
        ports = [*self.api_ports, self.balancer_port, self.pgbouncer_port]
        if len(set(ports)) != len(ports):
            raise ValueError(f"ports must differ: {ports}")

    @property
    def _db(self):
        return make_url(self.database_url)

    def pooled_url(self) -> str:
        """The URL the API processes use: the same database and user, through pgbouncer."""
        db = self._db
        return (
            f"postgresql+psycopg://{quote(db.username or '', safe='')}:"
            f"{quote(db.password or '', safe='')}@{self.host}:{self.pgbouncer_port}/{db.database}"
        )

    def api_env(self) -> dict[str, str]:
        """What each API process is told: connect through pgbouncer, listen on the primary."""
        return {
            "DATABASE_URL": self.pooled_url(),
            "ONEMAP_DB_PGBOUNCER": "1",
            "ONEMAP_DB_LISTEN_URL": self.database_url,
            **self.extra_env,
        }


def haproxy_cfg(layout: Layout) -> str:
    servers = "\n".join(
        f"    server api{n} {layout.host}:{port} check"
        for n, port in enumerate(layout.api_ports, start=1)
    )
    return f"""# onemap: {len(layout.api_ports)} API processes behind one address (onemap deploy balancer)
global
    maxconn 4096

defaults
    mode http
    option forwardfor
    timeout connect 5s
    timeout client 60s
    # longer than the warnings stream's 15 s heartbeat
    timeout server 60s
    # long-lived streams (SSE, upgraded connections)
    timeout tunnel 1h
    timeout http-keep-alive 10s
    timeout queue 30s
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response response-timeout

frontend onemap
    bind {layout.host}:{layout.balancer_port}
    default_backend api

backend api
    balance {layout.balance}
    # a request that reached a process is retried only when repeating it changes nothing
    http-request disable-l7-retry unless METH_GET || METH_HEAD || METH_OPTIONS
    option httpchk
    http-check send meth GET uri /health ver HTTP/1.1 hdr Host {layout.host}
    http-check expect status 200
    default-server inter 2s fall 2 rise 1
{servers}
"""


def pgbouncer_ini(layout: Layout, folder: Path) -> str:
    db = layout._db
    host = db.host or db.query.get("host") or "127.0.0.1"
    port = db.port or db.query.get("port") or 5432
    return f"""; onemap: the API's connections pooled per transaction (onemap deploy balancer)
[databases]
; any database name: the same name on the primary
* = host={host} port={port}

[pgbouncer]
listen_addr = {layout.host}
listen_port = {layout.pgbouncer_port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {folder / "userlist.txt"}
admin_users = {db.username}
pool_mode = transaction
default_pool_size = {layout.pool_size}
max_client_conn = {layout.max_client_conn}
; pgbouncer < 1.21 carries no prepared statement: the API prepares none (ONEMAP_DB_PGBOUNCER=1)
server_reset_query = DISCARD ALL
ignore_startup_parameters = extra_float_digits
logfile = {folder / "pgbouncer.log"}
pidfile = {folder / "pgbouncer.pid"}
"""


def userlist(layout: Layout) -> str:
    db = layout._db
    return f'"{db.username}" "{db.password}"\n'


def write(layout: Layout, out: Path) -> dict[str, Path]:
    """The three files in ``out``: haproxy.cfg, pgbouncer.ini, userlist.txt (mode 600)."""
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "haproxy": out / "haproxy.cfg",
        "pgbouncer": out / "pgbouncer.ini",
        "userlist": out / "userlist.txt",
    }
    files["haproxy"].write_text(haproxy_cfg(layout))
    files["pgbouncer"].write_text(pgbouncer_ini(layout, out.resolve()))
    files["userlist"].write_text(userlist(layout))
    files["userlist"].chmod(0o600)
    return files


def check(haproxy_file: Path) -> tuple[bool, str]:
    """``haproxy -c -f``: whether haproxy accepts the file, and what it said."""
    done = subprocess.run(
        [_binary("haproxy"), "-c", "-f", str(haproxy_file)], capture_output=True, text=True
    )
    return done.returncode == 0, (done.stdout + done.stderr).strip()


def _binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        raise FileNotFoundError(f"{name} is not installed: apt-get install -y {name}")
    return found


class Stack:
    """pgbouncer, the API processes and haproxy, started in that order and stopped in reverse.
    pgbouncer refuses to run as root: as root it runs as ``postgres`` (which must own ``out``)."""

    def __init__(self, layout: Layout, out: Path, serve: list[str] | None = None):
        self.layout = layout
        self.out = out.resolve()
        self.files = write(layout, self.out)
        self.serve = serve or [str(Path(sys.executable).with_name("onemap")), "serve"]
        self.pgbouncer: subprocess.Popen | None = None
        self.haproxy: subprocess.Popen | None = None
        self.apis: dict[int, subprocess.Popen] = {}

    def start(self, wait_seconds: float = 60.0) -> None:
        try:
            self._start_pgbouncer()
            for port in self.layout.api_ports:
                self.start_api(port)
            for port in self.layout.api_ports:
                self._await_http(f"http://{self.layout.host}:{port}/health", wait_seconds)
            self.haproxy = self._spawn(
                [_binary("haproxy"), "-db", "-f", str(self.files["haproxy"])], "haproxy"
            )
            self._await_http(
                f"http://{self.layout.host}:{self.layout.balancer_port}/health", wait_seconds
            )
        except BaseException:
            self.stop()
            raise

    def _start_pgbouncer(self) -> None:
        command = [_binary("pgbouncer"), str(self.files["pgbouncer"])]
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            for path in (self.out, *self.files.values()):
                os.chown(path, owner.pw_uid, owner.pw_gid)
            command = ["runuser", "-u", "postgres", "--", *command]
        self.pgbouncer = self._spawn(command, "pgbouncer-stdout")
        self._await_port(self.layout.pgbouncer_port, self.pgbouncer, "pgbouncer")

    def start_api(self, port: int) -> subprocess.Popen:
        env = {**os.environ, **self.layout.api_env()}
        command = [*self.serve, "--host", self.layout.host, "--port", str(port)]
        proc = self._spawn(command, f"api-{port}", env)
        self.apis[port] = proc
        return proc

    def stop(self) -> None:
        """Everything started, in reverse: haproxy, the API processes, pgbouncer."""
        procs = [self.haproxy, *self.apis.values(), self.pgbouncer]
        for proc in procs:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            if proc is None:
                continue
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def serving(self) -> bool:
        """haproxy and pgbouncer run (an API process may have stopped: haproxy goes around it)."""
        return all(p is not None and p.poll() is None for p in (self.haproxy, self.pgbouncer))

    def _spawn(self, command: list[str], log: str, env: dict | None = None) -> subprocess.Popen:
        """``command`` with its output appended to ``<out>/<log>.log``."""
        with (self.out / f"{log}.log").open("ab") as output:
            return subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)

    def _await_port(self, port: int, proc: subprocess.Popen, name: str) -> None:
        import socket

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} stopped at start: see {self.out}/{name}*.log")
            with socket.socket() as s:
                if s.connect_ex((self.layout.host, port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"{name} does not listen on {port}")

    @staticmethod
    def _await_http(url: str, seconds: float) -> None:
        import httpx

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{url} did not answer 200 within {seconds:.0f} s")
