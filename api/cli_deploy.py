"""``onemap deploy balancer``: haproxy in front of N API processes, pgbouncer in front of
PostgreSQL (api.balancer), written as files, checked, or run in the foreground."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import typer
from rich.console import Console

from api import balancer
from geo.database import database_url
from geo.settings import DatabaseSettings

console = Console(stderr=True)
deploy_app = typer.Typer(help="Deployment: balancer, connection pooler.", no_args_is_help=True)


@deploy_app.command("balancer")
def balancer_command(
    out: Path = typer.Option(
        Path(".onemap/balancer"),
        help="Folder the configuration files go into (userlist.txt holds the database password).",
    ),
    processes: int = typer.Option(2, "--processes", "-n", min=1, help="API processes."),
    port: int = typer.Option(8080, help="Port of the balancer (haproxy's frontend)."),
    api_port: int = typer.Option(8001, help="Port of the first API process (then +1 each)."),
    pgbouncer_port: int = typer.Option(6432, help="Port of pgbouncer."),
    host: str = typer.Option("127.0.0.1", help="Address everything listens on."),
    balance: str = typer.Option("roundrobin", help="roundrobin or leastconn."),
    check: bool = typer.Option(False, "--check", help="Validate haproxy.cfg with haproxy -c."),
    run: bool = typer.Option(
        False, "--run", help="Start pgbouncer, the API processes and haproxy; Ctrl-C stops all."
    ),
    demo: bool = typer.Option(False, "--demo", help="The API processes serve the demo city."),
) -> None:
    """Write haproxy.cfg, pgbouncer.ini and userlist.txt into --out (ports: balancer 8080, API
    8001..800N, pgbouncer 6432); --check them; --run them."""
    try:
        layout = balancer.Layout(
            database_url(settings=DatabaseSettings()),
            api_ports=tuple(range(api_port, api_port + processes)),
            balancer_port=port,
            pgbouncer_port=pgbouncer_port,
            host=host,
            balance=balance,
            extra_env={"ONEMAP_DEMO": "1"} if demo else {},
        )
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    files = balancer.write(layout, out)
    for name, path in files.items():
        console.print(f"{name}: {path}")
    console.print(
        f"API processes: DATABASE_URL through pgbouncer ({host}:{pgbouncer_port}), "
        "ONEMAP_DB_PGBOUNCER=1, ONEMAP_DB_LISTEN_URL the primary"
    )
    if check:
        ok, said = balancer.check(files["haproxy"])
        console.print(said)
        if not ok:
            raise typer.Exit(1)
    if not run:
        return
    stack = balancer.Stack(layout, out)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    try:
        stack.start()
        console.print(
            f"onemap at http://{host}:{port}/ over {processes} processes "
            f"({', '.join(map(str, layout.api_ports))}); Ctrl-C stops them all"
        )
        gone: set[int] = set()
        while not stopping and stack.serving():
            for api, proc in stack.apis.items():
                if proc.poll() is not None and api not in gone:  # haproxy routes around it
                    gone.add(api)
                    console.print(f"[red]the API process on {api} stopped: see {out}[/red]")
            time.sleep(0.5)
        if not stopping:
            console.print(f"[red]haproxy or pgbouncer stopped: see the logs in {out}[/red]")
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()
        console.print("stopped")
