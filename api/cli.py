"""The ``onemap`` command: the database, the demo city, the service.

It sits in ``api/`` because it is the top of the house: it may call every room below.
"""

from __future__ import annotations

import json
import sys
import time

import typer
from rich.console import Console

from geo.cluster import Cluster, ClusterError
from geo.settings import database_settings, service_settings

console = Console(stderr=True)
app = typer.Typer(help="onemap: the one map (一张图) of a city district.", no_args_is_help=True)
db_app = typer.Typer(help="The PostGIS database: private cluster and schema.", no_args_is_help=True)
demo_app = typer.Typer(help="The synthetic demo city.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(demo_app, name="demo")


def _cluster() -> Cluster:
    return Cluster(database_settings())


def _using_external() -> bool:
    return database_settings().url is not None


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
    if revision == "head" or (current is None and revision != "base"):
        migrate.upgrade(url, revision)
    else:
        migrate.downgrade(url, revision)
    console.print(f"schema at revision {migrate.current_revision(url) or 'base (empty)'}")


# --- demo ---------------------------------------------------------------------------------------
@demo_app.command("load")
def demo_load(
    scale: str = typer.Option(
        "small", help="small (tests), lishui (the real district's size), large (5×)."
    ),
    seed: int = typer.Option(20260117, help="Random seed: the same seed gives the same city."),
) -> None:
    """Build the synthetic district inside the real Lishui boundary and load it with COPY."""
    from api.bootstrap import prepare_demo
    from fixtures.democity import SCALES
    from geo.database import database_url

    if scale not in SCALES:
        _fail(f"unknown scale {scale!r}: choose one of {', '.join(SCALES)}")
    started = time.perf_counter()
    report = prepare_demo(database_url(), scale=scale, seed=seed, echo=console.print)
    console.print(report.table())
    console.print(
        f"loaded in {time.perf_counter() - started:.1f} s "
        f"(build {report.seconds['build']:.1f} s, COPY {report.seconds['copy']:.1f} s); checksum {report.checksum}"
    )


# --- serve --------------------------------------------------------------------------------------
@app.command("serve")
def serve(
    host: str = typer.Option(
        None, help="Interface to listen on (default ONEMAP_HOST or 127.0.0.1)."
    ),
    port: int = typer.Option(None, help="Port (default ONEMAP_HTTP_PORT or 8000)."),
    workers: int = typer.Option(1, help="Worker processes."),
) -> None:
    """Serve the one map over HTTP."""
    import uvicorn

    settings = service_settings()
    host = host or settings.host
    port = port or settings.http_port
    base = f"http://{host}:{port}"
    console.print(f"Serving onemap at {base}/  ·  health {base}/health  ·  API docs {base}/docs")
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
    )


def main() -> None:
    try:
        app()
    except ClusterError as exc:  # pragma: no cover - surfaced as a clean message
        console.print(f"[red]error:[/red] {exc}")
        sys.exit(1)


if __name__ == "__main__":
    main()
