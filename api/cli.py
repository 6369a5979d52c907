"""The ``onemap`` command: the database, the demo city, the service.

It sits in ``api/`` because it is the top of the house: it may call every room below.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import typer
from rich.console import Console
from sqlalchemy.engine import make_url

from api.cli_assets import assets_app
from api.cli_backup import register as register_backup_commands
from api.cli_checkup import checkup_app
from api.cli_city import city_app
from api.cli_deploy import deploy_app
from api.cli_layers import layers_app
from api.cli_replica import replica_app
from api.cli_tiles import map_app, maps_app, tiles_app
from api.cluster import Cluster, ClusterError
from geo.settings import Settings

console = Console(stderr=True)
app = typer.Typer(help="onemap: the one map (一张图) of a city district.", no_args_is_help=True)
db_app = typer.Typer(help="The PostGIS database: private cluster and schema.", no_args_is_help=True)
demo_app = typer.Typer(help="The synthetic demo city.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(demo_app, name="demo")
db_app.add_typer(replica_app, name="replica")
users_app = typer.Typer(help="Users, roles and bearer tokens.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(layers_app, name="layers")
app.add_typer(city_app, name="city")
app.add_typer(checkup_app, name="checkup")
app.add_typer(assets_app, name="assets")
app.add_typer(tiles_app, name="tiles")
app.add_typer(map_app, name="map")
app.add_typer(maps_app, name="maps")
app.add_typer(deploy_app, name="deploy")
register_backup_commands(db_app)  # db backup | backups | restore | restore-point


def _settings() -> Settings:
    """The settings, read from the environment where the command starts."""
    return Settings.from_env()


def _cluster() -> Cluster:
    return Cluster(_settings().database)


def _using_external() -> bool:
    return _settings().database.url is not None


def _fail(message: str, code: int = 1) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


# --- db -----------------------------------------------------------------------------------------
@db_app.command("up")
def db_up() -> None:
    """Start the private PostGIS cluster under .onemap/ (creating it, and installing PostGIS, if needed)."""
    if _using_external():
        from geo.database import connect, postgis_version

        with connect() as conn:
            from sqlalchemy import text

            conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
            console.print(f"DATABASE_URL is set: using that PostGIS {postgis_version(conn)}")
        return
    try:
        status = _cluster().up(echo=console.print)
    except ClusterError as exc:
        _fail(str(exc))
    console.print(f"PostGIS is up: pid {status.pid}, port {status.port}, {status.home}")


@db_app.command("down")
def db_down() -> None:
    """Stop the private cluster; no process of it is left behind."""
    if _using_external():
        console.print("DATABASE_URL is set: nothing to stop")
        return
    status = _cluster().down(echo=console.print)
    console.print("PostGIS is stopped" if not status.running else "[red]still running[/red]")


@db_app.command("status")
def db_status() -> None:
    """Whether the private cluster runs, and where."""
    if _using_external():
        typer.echo(json.dumps({"external": True}))
        return
    status = _cluster().status()
    typer.echo(
        json.dumps(
            {
                "running": status.running,
                "pid": status.pid,
                "port": status.port,
                "home": str(status.home),
            }
        )
    )
    raise typer.Exit(0 if status.running else 3)


@db_app.command("url")
def db_url(
    tcp: bool = typer.Option(False, help="The loopback TCP URL instead of the socket one."),
) -> None:
    """Print the database URL (for psql, QGIS, or DATABASE_URL elsewhere)."""
    from geo.database import database_url

    try:
        typer.echo(_cluster().tcp_url() if tcp and not _using_external() else database_url())
    except ClusterError as exc:
        _fail(str(exc))


@db_app.command("migrate")
def db_migrate(
    revision: str = typer.Argument("head", help="Target revision: head, base, or a revision id."),
) -> None:
    """Bring the schema to a revision (default: the newest). `migrate base` removes it."""
    from geo import migrate
    from geo.database import database_url

    url = database_url()
    current = migrate.current_revision(url)
    # revision ids are ordered numbers ("0018"): a later one than the current is an upgrade
    if (
        revision == "head"
        or (current is None and revision != "base")
        or (revision != "base" and current is not None and revision > current)
    ):
        migrate.upgrade(url, revision)
    else:
        migrate.downgrade(url, revision)
    console.print(f"schema at revision {migrate.current_revision(url) or 'base (empty)'}")


@db_app.command("partitions")
def db_partitions(
    drop_older: bool = typer.Option(
        False,
        "--drop-older",
        help="Also drop the monthly partitions older than ONEMAP_READINGS_RETENTION_MONTHS "
        "(whole partitions; 0 keeps all).",
    ),
    ahead: int = typer.Option(3, min=0, help="Months past now to have partitions for."),
    explain: bool = typer.Option(
        False,
        "--explain",
        help="Also print the plan of ingest's look-up of a batch's sensors (pruned to the "
        "partitions from this month on).",
    ),
) -> None:
    """Sensor readings' monthly partitions: create the missing ones (ahead of time) and list them."""
    from datetime import UTC, datetime

    from geo.database import database_url
    from geo.database import engine as make_engine
    from geo.safety import partitions
    from geo.safety.readings import lookup_plan

    settings = _settings()
    eng = make_engine(database_url())
    try:
        with eng.begin() as conn:
            created = partitions.ensure_months(conn, ahead=ahead)
            dropped = (
                partitions.drop_older_than(conn, settings.safety.readings_retention_months)
                if drop_older
                else []
            )
            listed = partitions.partitions(conn)
            month = partitions.start_of(partitions.month_of(datetime.now(UTC)))
            plan = lookup_plan(conn, month) if explain else []
    finally:
        eng.dispose()
    for part in listed:
        console.print(f"{part.name:<26} {part.rows:>12,} rows  {part.bound}", soft_wrap=True)
    if plan:
        console.print(f"ingest's look-up, a batch from {month:%Y-%m-%d} on:", soft_wrap=True)
        console.print("\n".join(plan), soft_wrap=True, markup=False, highlight=False)
    console.print(
        f"created {len(created)} ({', '.join(created) or 'none'}), "
        f"dropped {len(dropped)} ({', '.join(dropped) or 'none'})"
    )


# --- demo ---------------------------------------------------------------------------------------
@demo_app.command("load")
def demo_load(
    scale: str = typer.Option(
        "small", help="small (tests), lishui (the real district's size), large (5×)."
    ),
    seed: int = typer.Option(20260117, help="Random seed: the same seed gives the same city."),
    year: int = typer.Option(
        None,
        help="Load the city as it stood in this year: 2026 (now, the default) or 2025 (a year "
        "earlier: fewer facilities and parks, older hazards still open, fewer assets revitalised).",
    ),
    districts: str = typer.Option(
        "320117",
        help="Districts of Nanjing to load side by side, six-digit codes separated by commas "
        "(320117 溧水区, 320118 高淳区, …); the first loads as it would alone.",
    ),
) -> None:
    """Build the synthetic district inside the real Lishui boundary (or several districts of
    Nanjing in their real boundaries) and load it with COPY."""
    from api.bootstrap import prepare_demo
    from fixtures.democity import SCALES
    from fixtures.democity.boundary import district_feature
    from fixtures.democity.nanjing import parse_codes
    from fixtures.democity.years import YEARS
    from geo.database import database_url

    if scale not in SCALES:
        _fail(f"unknown scale {scale!r}: choose one of {', '.join(SCALES)}")
    if year is not None and year not in YEARS:
        _fail(f"the demo city holds the years {YEARS[0]} and {YEARS[1]}, not {year}")
    try:
        codes = parse_codes(districts)
        for code in codes:
            district_feature(code)
    except ValueError as exc:
        _fail(str(exc))
    started = time.perf_counter()
    report = prepare_demo(
        database_url(),
        _settings(),
        scale=scale,
        seed=seed,
        echo=console.print,
        year=year,
        districts=codes,
    )
    console.print(report.table())
    console.print(
        f"loaded in {time.perf_counter() - started:.1f} s "
        f"(build {report.seconds['build']:.1f} s, COPY {report.seconds['copy']:.1f} s); checksum {report.checksum}"
    )


# --- users -------------------------------------------------------------------------------------
def _users_call(fn):
    from geo.database import connect
    from geo.errors import OnemapError

    try:
        with connect() as conn:
            return fn(conn)
    except OnemapError as exc:  # UserError, a refused password, an unknown user
        _fail(str(exc))


def _new_password(username: str, from_stdin: bool) -> str:
    """The password from one line of standard input (scripts), or typed twice, hidden; checked
    before anything is written. Never an argument: it would show in the shell history and ps."""
    from geo.errors import OnemapError
    from geo.policy.passwords import check_rules

    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("密码 password", hide_input=True, confirmation_prompt=True)
    try:
        check_rules(username, password)
    except OnemapError as exc:
        _fail(str(exc))
    return password


@users_app.command("add")
def users_add(
    username: str,
    role: str = typer.Option(..., help="public, investment, planner, grid_worker, safety or admin"),
    name: str = typer.Option(None, help="Display name."),
    grid: list[str] = typer.Option([], help="Grid code (repeat) for a grid worker."),
    district: str = typer.Option(
        None, help="Bind the user to one district (6-digit code, e.g. 320118); default: the city."
    ),
    password: bool = typer.Option(
        False, "--password", help="Give the user a password to sign in with (typed twice, hidden)."
    ),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from one line of standard input."
    ),
) -> None:
    """Add a user (or change an existing user's role and grids), optionally with a password."""
    from api.cli_layers import operator
    from geo.policy.passwords import set_password
    from geo.policy.users import create_user

    secret = _new_password(username, password_stdin) if password or password_stdin else None

    def add(conn):
        user_id = create_user(conn, username, role, name, tuple(grid), district)
        if secret is not None:
            set_password(conn, username, secret, operator())
        return user_id

    user_id = _users_call(add)
    console.print(
        f"user {username} ({role}) is id {user_id}"
        + (f", in district {district}" if district else "")
        + (", with a password" if secret else "")
    )


@users_app.command("password")
def users_password(
    username: str,
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from one line of standard input."
    ),
) -> None:
    """Set or reset a user's password (重置密码): clears a lock, ends their signed-in sessions."""
    from api.cli_layers import operator
    from geo.policy.passwords import set_password

    secret = _new_password(username, password_stdin)
    ended = _users_call(lambda conn: set_password(conn, username, secret, operator()))
    console.print(f"password of {username} set; {ended} signed-in session(s) ended")


@users_app.command("unlock")
def users_unlock(username: str) -> None:
    """Unlock an account locked after failed sign-ins (解锁), and clear its failure count."""
    from api.cli_layers import operator
    from geo.policy.passwords import unlock

    was_locked = _users_call(lambda conn: unlock(conn, username, operator()))
    console.print(f"{username} {'unlocked' if was_locked else 'was not locked; failures cleared'}")


@users_app.command("token")
def users_token(
    username: str,
    days: int = typer.Option(90, help="Days until it expires (0: never)."),
    label: str = typer.Option(None, help="What the token is for."),
) -> None:
    """Issue a bearer token; it is printed once and stored only as a hash."""
    from datetime import timedelta

    from geo.policy.users import issue_token

    issued = _users_call(
        lambda conn: issue_token(conn, username, label, timedelta(days=days) if days else None)
    )
    typer.echo(issued.token)
    console.print(f"expires {issued.expires_at:%Y-%m-%d}" if issued.expires_at else "never expires")


@users_app.command("revoke")
def users_revoke(
    token: str = typer.Option(None, help="The token to revoke."),
    user: str = typer.Option(None, help="Revoke every token of this user."),
) -> None:
    """Revoke a token, or all of a user's tokens."""
    from geo.policy.users import revoke

    count = _users_call(lambda conn: revoke(conn, token=token, username=user))
    console.print(f"revoked {count} token(s)")


@users_app.command("demo")
def users_demo() -> None:
    """Create the demo city's users, one of each role, and print their tokens and their password."""
    from rich.table import Table

    from api.cli_layers import operator
    from geo.policy.passwords import DEMO_PASSWORD, give_demo_passwords
    from geo.policy.users import create_demo_users

    def make(conn):
        made = create_demo_users(conn)
        give_demo_passwords(conn, [r[0] for r in made], DEMO_PASSWORD, operator())
        return made

    rows = _users_call(make)
    table = Table(
        title="demo users · 演示用户 (Authorization: Bearer <token>)",
        caption=f"演示密码 demo password (POST /auth/login): {DEMO_PASSWORD}",
    )
    for column in ("user", "role", "grids", "token"):
        table.add_column(column, overflow="fold")
    for username, role, grids, token in rows:
        table.add_row(username, role, ", ".join(grids), token)
    Console().print(table)


# --- serve --------------------------------------------------------------------------------------
@app.command("serve")
def serve(
    host: str = typer.Option(
        None, help="Interface to listen on (default ONEMAP_HOST or 127.0.0.1)."
    ),
    port: int = typer.Option(None, help="Port (default ONEMAP_HTTP_PORT or 8000)."),
    workers: int = typer.Option(1, help="Worker processes."),
    demo: bool = typer.Option(
        False, "--demo", help="This is the synthetic demo city: the demo identity-hash key will do."
    ),
) -> None:
    """Serve the one map over HTTP."""
    import os

    import uvicorn

    settings = _settings()
    if demo:
        os.environ["ONEMAP_DEMO"] = "1"  # the workers read their settings from the environment
    elif not settings.secrets.demo and not settings.secrets.has_own_key:
        _fail(
            "ONEMAP_ID_HASH_KEY is not set: identity numbers would be joined under the public demo "
            "key. Set your own secret key (16+ characters), or pass --demo (ONEMAP_DEMO=1) to "
            "serve the synthetic demo city."
        )
    host = host or settings.service.host
    port = port or settings.service.http_port
    os.environ["ONEMAP_HOST"] = host  # the workers' settings: the address they answer to
    base = f"http://{host}:{port}"
    if os.geteuid() == 0:
        user = _drop_privileges(settings)
        console.print(f"started as root: serving as the unprivileged user '{user}'")
    console.print(f"Serving onemap at {base}/  ·  health {base}/health  ·  API docs {base}/docs")
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
    )


SERVICE_USER = "onemap"


def _passable(user: str, folder) -> bool:
    import subprocess

    check = ["runuser", "-u", user, "--", "test", "-x", str(folder)]
    return subprocess.run(check, capture_output=True).returncode == 0


def _grant_pass(user: str, folder) -> None:
    """Let ``user`` (only) pass through ``folder``: an ACL entry (``setfacl``, from Debian's
    ``acl``, installed if missing); where ACLs cannot be had, let everyone pass (not list)."""
    import shutil
    import subprocess

    if shutil.which("setfacl") is None:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "install", "-y", "-q", "acl"], env=env, capture_output=True)
    if shutil.which("setfacl"):
        subprocess.run(["setfacl", "-m", f"u:{user}:x", str(folder)], check=True)
    else:
        folder.chmod(folder.stat().st_mode | 0o001)


def _folders_to(target) -> list:
    """The folders from the root down to ``target`` (included), shortest first."""
    return sorted((f for f in (target, *target.parents) if f.is_dir()), key=lambda f: len(f.parts))


def _let_reach(user: str) -> list[str]:
    """Make the interpreter, the virtualenv and the code reachable by ``user``, folder by folder
    from the root down. Returns the folders changed."""
    import sys

    targets = (Path(sys.base_prefix), Path(sys.prefix), Path(__file__).resolve().parents[1])
    folders = sorted({f for t in targets for f in _folders_to(t)}, key=lambda f: len(f.parts))
    changed = []
    for folder in folders:
        if not _passable(user, folder):
            _grant_pass(user, folder)
            changed.append(str(folder))
    return changed


def _give_tile_cache(settings: Settings, account) -> None:
    """The shared tile cache belongs to the service user: its processes write tiles there."""
    folder = Path(settings.service.tile_cache)
    if str(folder).strip().lower() in ("off", "none", "false", "0"):
        return
    folder.mkdir(parents=True, exist_ok=True)
    for path in (folder, *folder.rglob("*")):
        try:
            os.chown(path, account.pw_uid, account.pw_gid)
        except OSError:
            continue
    for parent in _folders_to(folder.resolve()):
        if not _passable(account.pw_name, parent):
            _grant_pass(account.pw_name, parent)


def _drop_privileges(settings: Settings) -> str:
    """A web service started as root runs as an unprivileged system user (``onemap``, made if
    missing; ``ONEMAP_SERVICE_USER`` names another), as the database cluster runs as postgres.
    The database URL is resolved first, while the password file can still be read, and handed
    to the workers in the environment (the Unix socket, the user being let through to it)."""
    import pwd
    import subprocess

    name = os.environ.get("ONEMAP_SERVICE_USER", SERVICE_USER)
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=False,
            capture_output=True,
        )
    try:
        account = pwd.getpwnam(name)
    except KeyError:
        name, account = "nobody", pwd.getpwnam("nobody")
    for granted in _let_reach(name):
        console.print(f"  let '{name}' pass through {granted} (to reach Python and the code)")
    url = settings.database.url or _cluster().url()
    socket_dir = make_url(url).query.get("host")
    if isinstance(socket_dir, str) and socket_dir.startswith("/"):  # let the user reach the socket
        for folder in _folders_to(Path(socket_dir)):
            if not _passable(name, folder):
                _grant_pass(name, folder)
        if not _passable(name, Path(socket_dir)) and settings.database.url is None:
            url = _cluster().tcp_url()
    os.environ["DATABASE_URL"] = url
    _give_tile_cache(settings, account)
    os.setgroups([])
    os.setgid(account.pw_gid)
    os.setuid(account.pw_uid)
    os.environ["HOME"] = account.pw_dir if os.access(account.pw_dir, os.W_OK) else "/tmp"
    return name


def main() -> None:
    try:
        app()
    except ClusterError as exc:  # pragma: no cover - surfaced as a clean message
        console.print(f"[red]error:[/red] {exc}")
        sys.exit(1)


if __name__ == "__main__":
    main()
