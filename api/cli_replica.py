"""``onemap db replica up|down|status``: the private cluster's hot standby, for reads."""

from __future__ import annotations

import json

import typer
from rich.console import Console

from api.cluster import ClusterError
from api.cluster_replica import Replica
from geo.settings import DatabaseSettings

replica_app = typer.Typer(
    help="The read replica: a hot standby of the private cluster (streaming replication).",
    no_args_is_help=True,
)
console = Console()


def _replica() -> Replica:
    settings = DatabaseSettings()
    if settings.url:
        console.print(
            "[red]error:[/red] DATABASE_URL is set: make the standby with your server's own "
            "tools, and give its URL as DATABASE_READ_URL (see the deployment guide)"
        )
        raise typer.Exit(2)
    return Replica(settings)


@replica_app.command("up")
def replica_up() -> None:
    """Start the replica, copying the primary first if there is none (the primary is switched
    to wal_level=replica once, with a restart). The service reads from it from then on."""
    try:
        status = _replica().up(echo=console.print)
    except ClusterError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    console.print(
        f"replica up on port {status.port}: replayed {status.replay_lsn}, "
        f"{status.lag_bytes} bytes behind, stream {status.stream}"
    )


@replica_app.command("down")
def replica_down(
    remove: bool = typer.Option(
        False, help="Also delete its copy and the primary's replication slot."
    ),
) -> None:
    """Stop the replica; reads fall back to the primary (within a second, per process)."""
    status = _replica().down(echo=console.print, remove=remove)
    console.print("replica removed" if remove else f"replica stopped (running: {status.running})")


@replica_app.command("status")
def replica_status() -> None:
    """Whether the replica runs, what it has replayed, and how far behind the primary it is."""
    status = _replica().status()
    typer.echo(json.dumps(status.as_dict()))
    raise typer.Exit(0 if status.running else 3)
