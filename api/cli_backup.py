"""``onemap db backup | backups | restore | restore-point``: base backups of the private cluster
and point-in-time restores from them (the work is in api.cluster_backup).

Results (names, LSNs, where a restore runs) go to standard output as JSON, for scripts and the
backup timer's journal; progress and advice go to standard error.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console

console = Console(stderr=True)


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}", soft_wrap=True)
    raise typer.Exit(1)


def _primary():
    """The private cluster named by the environment; an external DATABASE_URL is refused."""
    from api.cluster import Cluster
    from geo.settings import Settings

    settings = Settings.from_env()
    if settings.database.url is not None:
        _fail(
            "DATABASE_URL is set: that server is not ours to back up; use its own tools "
            "(pg_basebackup -h <host> -D <folder> -X stream) and its WAL archive"
        )
    return Cluster(settings.database)


def db_backup(
    into: Path = typer.Option(
        None, help="Folder to put the backup in (default: <server home>/backups)."
    ),
    fmt: str = typer.Option("plain", "--format", help="plain (a data directory) or tar (gzip)."),
    check: bool = typer.Option(False, "--verify", help="Check it with pg_verifybackup afterwards."),
    keep: int = typer.Option(
        0,
        min=0,
        help="Keep only the newest N backups and the archived WAL they need (0: keep all).",
    ),
    quiet: bool = typer.Option(False, "--quiet", help="No progress lines."),
) -> None:
    """Base backup of the running cluster, printing its start and end LSN.

    pg_basebackup with the WAL streamed alongside; switches WAL archiving on first (one
    restart, once)."""
    from api.cluster import ClusterError
    from api.cluster_backup import backup, prune, verify

    cluster = _primary()
    try:
        made = backup(
            cluster,
            into=into,
            fmt=fmt,
            progress=None if quiet else sys.stderr,
            echo=console.print,
        )
        checked = verify(cluster, made) if check else None
        removed, wal_files = prune(cluster, keep, into) if keep else ([], 0)
    except ClusterError as exc:
        _fail(str(exc))
    console.print(
        f"backup {made.name}: start LSN {made.start_lsn}, end LSN {made.end_lsn} "
        f"(timeline {made.timeline}) in {made.folder}",
        soft_wrap=True,
    )
    if checked:
        console.print(f"pg_verifybackup: {checked}")
    if removed or wal_files:
        console.print(f"removed {len(removed)} old backup(s) and {wal_files} archived WAL file(s)")
    typer.echo(
        json.dumps(
            {
                "backup": made.name,
                "folder": str(made.folder),
                "start_lsn": made.start_lsn,
                "end_lsn": made.end_lsn,
                "timeline": made.timeline,
                "verified": bool(checked),
                "removed": removed,
            }
        )
    )


def db_backups(
    into: Path = typer.Option(None, help="Folder the backups are in (default: the cluster's)."),
) -> None:
    """List the backups, oldest first, with their LSNs and the WAL archive's size."""
    from api.cluster_backup import list_backups

    cluster = _primary()
    for made in list_backups(cluster, into):
        size = sum(f.stat().st_size for f in made.folder.rglob("*") if f.is_file())
        typer.echo(
            f"{made.name}  {made.format:<5}  start {made.start_lsn:<12} end {made.end_lsn:<12} "
            f"{size / 2**20:,.0f} MB"
        )
    archive = cluster.wal_archive()
    files = list(archive.glob("*")) if archive.is_dir() else []
    size = sum(f.stat().st_size for f in files)
    console.print(f"WAL archive {archive}: {len(files)} files, {size / 2**20:,.0f} MB")


def db_restore(
    backup_name: str = typer.Argument(
        None, metavar="BACKUP", help="Backup name or folder (default: the newest)."
    ),
    to_lsn: str = typer.Option(None, "--to-lsn", help="Stop just before this WAL position."),
    to_time: str = typer.Option(
        None, "--to-time", help="Stop at this time (ISO 8601 with a zone, e.g. …T02:30:00+08:00)."
    ),
    to_name: str = typer.Option(
        None, "--to-name", help="Stop at this restore point (`onemap db restore-point`)."
    ),
    immediate: bool = typer.Option(
        False, "--immediate", help="Stop at the backup's own consistent end (the default)."
    ),
    name: str = typer.Option(
        None, help="Folder name under <server home>/restores (default: backup and target)."
    ),
    port: int = typer.Option(None, help="Port of the restored cluster (default: a free one)."),
    into: Path = typer.Option(None, help="Folder the backups are in (default: the cluster's)."),
) -> None:
    """Restore a backup to a point in time, as a new cluster on its own port.

    The backup is copied into a NEW cluster folder and recovered from the WAL archive; the
    running primary is never touched. (Restoring over the primary's own data directory is not
    offered: stop the service, then point it at the restored cluster, or copy back the rows
    you need.)"""
    from api.cluster import ClusterError
    from api.cluster_backup import make_target, restore

    cluster = _primary()
    try:
        target = make_target(to_lsn, to_time, to_name, immediate)
        restored = restore(
            cluster, target, which=backup_name, name=name, port=port, root=into, echo=console.print
        )
    except ClusterError as exc:
        _fail(str(exc))
    console.print(
        f"restored {restored.backup.name} to {target.describe()} (replayed to "
        f"{restored.replayed_to}); running on 127.0.0.1:{restored.port}.\n"
        f"  look:  ONEMAP_HOME={restored.home} onemap db url --tcp\n"
        f"  stop:  ONEMAP_HOME={restored.home} onemap db down && rm -r {restored.home}",
        soft_wrap=True,
    )
    typer.echo(
        json.dumps(
            {
                "backup": restored.backup.name,
                "target": {"kind": target.kind, "value": target.value},
                "home": str(restored.home),
                "port": restored.port,
                "replayed_to": restored.replayed_to,
            }
        )
    )


def db_restore_point(
    name: str = typer.Argument(..., help="A name to restore to later (at most 63 characters)."),
) -> None:
    """Mark this moment by name, to restore to later (e.g. before a risky import).

    pg_create_restore_point, then the WAL is switched out and archived, so
    `onemap db restore --to-name NAME` can reach it at once."""
    from api.cluster import ClusterError
    from api.cluster_backup import restore_point

    try:
        lsn = restore_point(_primary(), name)
    except ClusterError as exc:
        _fail(str(exc))
    console.print(f"restore point {name!r} at {lsn}, archived")
    typer.echo(json.dumps({"restore_point": name, "lsn": lsn}))


def register(db_app: typer.Typer) -> None:
    """Add the backup commands to ``onemap db``."""
    db_app.command("backup")(db_backup)
    db_app.command("backups")(db_backups)
    db_app.command("restore")(db_restore)
    db_app.command("restore-point")(db_restore_point)
