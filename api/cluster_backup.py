"""Backup and point-in-time restore of the private cluster: ``pg_basebackup`` plus the WAL archive
that ``Cluster.ensure_replication`` keeps, restored into a cluster folder of its own.

Why this shape: a base backup alone only brings back the moment it ended; with every WAL segment
archived since, recovery can stop at any later point (an LSN, a time, a named restore point).
A restore never touches the running primary: it builds a new data directory under
``<server home>/restores/<name>`` and starts it on its own port, so the two can be compared and
the good rows copied back (or the service pointed at it). Targets are checked before anything is
made or started, because PostgreSQL only finds a bad one after replaying WAL for minutes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from api.cluster import Cluster, ClusterError, _alive, find_binaries
from geo.database import CLUSTER_SUPERUSER as SUPERUSER
from geo.settings import DatabaseSettings

LSN = re.compile(r"^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$")
RESTORE_POINT = re.compile(r"lsn: ([0-9A-F]+/[0-9A-F]+),.*desc: RESTORE_POINT (.*)$")
#: names we give backup and restore folders (and accept from the command line)
FOLDER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


class BackupError(ClusterError):
    """A backup or restore cannot go ahead; the message says why and what to give instead."""


def lsn_value(text: str) -> int:
    """``'16/B374D848'`` as a number (WAL position); a malformed LSN is refused."""
    if not LSN.match(text or ""):
        raise BackupError(
            f"{text!r} is not an LSN: give two hexadecimal numbers with a slash, e.g. 0/3000060 "
            "(as pg_current_wal_lsn() or `onemap db backup` print them)"
        )
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def lsn_text(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


@dataclass(frozen=True)
class Backup:
    """One base backup: its folder (``base/`` holds what pg_basebackup wrote) and its WAL range."""

    name: str
    folder: Path
    format: str
    timeline: int
    start_lsn: str
    end_lsn: str
    started: str
    ended: str
    wal_segment_size: int

    @property
    def base(self) -> Path:
        return self.folder / "base"

    def start_segment(self) -> str:
        """The WAL file the backup starts in: older archived files are not needed by it."""
        return wal_file_name(self.timeline, lsn_value(self.start_lsn), self.wal_segment_size)


def wal_file_name(timeline: int, lsn: int, segment_size: int) -> str:
    per_xlogid = 0x100000000 // segment_size
    segno = lsn // segment_size
    return f"{timeline:08X}{segno // per_xlogid:08X}{segno % per_xlogid:08X}"


@dataclass(frozen=True)
class Target:
    """Where recovery stops: ``immediate`` (the backup's consistent end), an LSN, a time or the
    name of a restore point."""

    kind: str
    value: str = ""

    def settings(self) -> dict[str, str]:
        if self.kind == "immediate":
            return {"recovery_target": "immediate"}
        if self.kind == "lsn":
            # not inclusive: the state just before the first record at or past the LSN, i.e.
            # exactly what a reader at pg_current_wal_insert_lsn() saw
            return {"recovery_target_lsn": self.value, "recovery_target_inclusive": "off"}
        if self.kind == "time":
            return {"recovery_target_time": self.value}
        return {"recovery_target_name": self.value}

    def describe(self) -> str:
        return (
            "the backup's end (immediate)"
            if self.kind == "immediate"
            else f"{self.kind} {self.value}"
        )


def make_target(
    to_lsn: str | None = None,
    to_time: str | None = None,
    to_name: str | None = None,
    immediate: bool = False,
) -> Target:
    """Exactly one target, well formed; nothing given means the backup's own consistent point."""
    given = [
        (k, v)
        for k, v in (("lsn", to_lsn), ("time", to_time), ("name", to_name))
        if v not in (None, "")
    ]
    if immediate:
        given.append(("immediate", ""))
    if len(given) > 1:
        raise BackupError(
            "give one recovery target: --to-lsn, --to-time, --to-name or --immediate, not "
            + " and ".join(k for k, _ in given)
        )
    if not given:
        return Target("immediate")
    kind, value = given[0]
    if kind == "lsn":
        return Target("lsn", lsn_text(lsn_value(value)))
    if kind == "time":
        return Target("time", _parse_time(value).isoformat())
    if kind == "name" and (len(value) > 63 or "'" in value or "\n" in value):
        raise BackupError(
            f"{value!r} is not a restore point name (at most 63 characters, no quotes)"
        )
    return Target(kind, value)


def _parse_time(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise BackupError(
            f"{value!r} is not a time: give ISO 8601 with a zone, e.g. 2026-12-07T02:30:00+08:00"
        ) from None
    if moment.tzinfo is None:
        raise BackupError(
            f"{value!r} has no time zone: add one (e.g. +08:00), so the target is not guessed"
        )
    return moment


# --- who runs the binaries ------------------------------------------------------------------
def _as_cluster_user(cluster: Cluster, args: list) -> list[str]:
    """Run as the postgres OS user when we are root (as Cluster._run does): the files the
    tools write then belong to the user the server runs as."""
    args = [str(a) for a in args]
    return ["runuser", "-u", "postgres", "--", *args] if cluster.as_postgres else args


def _bin(name: str) -> Path:
    binaries = find_binaries()
    if binaries is None:
        raise BackupError("PostgreSQL is not installed: run `onemap db up` first")
    return binaries.bindir / name


def _make_folder(cluster: Cluster, path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    cluster._own(path)


def backups_root(cluster: Cluster) -> Path:
    """Backups live beside the data directory and the WAL archive (reachable by postgres)."""
    return cluster.data.parent / "backups"


def restores_root(cluster: Cluster) -> Path:
    return cluster.data.parent / "restores"


def _binaries(cluster: Cluster) -> Cluster:
    """Cluster's commands need its binaries found first (``up`` and ``status`` do it)."""
    if getattr(cluster, "binaries", None) is None:
        cluster.binaries = find_binaries()
        if cluster.binaries is None:
            raise BackupError("PostgreSQL is not installed: run `onemap db up` first")
    return cluster


def _running(cluster: Cluster) -> None:
    if _binaries(cluster).running_pid() is None:
        raise BackupError(
            f"the cluster in {cluster.home} is not running: start it with `onemap db up`"
        )


# --- backup -------------------------------------------------------------------------------------
def backup(
    cluster: Cluster,
    into: Path | None = None,
    fmt: str = "plain",
    progress: IO[str] | None = None,
    label: str | None = None,
    echo=print,
) -> Backup:
    """A base backup of the running cluster, WAL streamed alongside (``-X stream``) so it is
    complete on its own, with a ``backup_manifest`` for ``pg_verifybackup``. Switches WAL
    archiving on first (one restart, once). ``progress`` receives pg_basebackup's ``-P`` lines."""
    if fmt not in ("plain", "tar"):
        raise BackupError(f"format {fmt!r}: choose plain or tar")
    _running(cluster)
    if cluster.ensure_replication(echo):
        echo("WAL archiving is now on: from here on every change can be restored to a point")
    root = Path(into) if into else backups_root(cluster)
    _make_folder(cluster, root)
    started = datetime.now(UTC)
    name = started.strftime("%Y%m%dT%H%M%S") + f"-{started.microsecond // 1000:03d}Z"
    folder = root / name
    _make_folder(cluster, folder)
    segment_size = int(
        cluster.psql("SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'")
    )
    command = [
        _bin("pg_basebackup"),
        "-h",
        cluster.run_dir,
        "-p",
        str(cluster.port),
        "-U",
        SUPERUSER,
        "-D",
        folder / "base",
        "-F",
        fmt[0],
        "-X",
        "stream",
        "-c",
        "fast",
        "-P",
        "-l",
        label or f"onemap {name}",
        "--no-password",
    ]
    if fmt == "tar":
        command.append("-z")
    env = dict(os.environ, PGPASSWORD=cluster.password())
    tail = _run_with_progress(_as_cluster_user(cluster, command), env, progress)
    if tail is not None:
        shutil.rmtree(folder, ignore_errors=True)
        raise BackupError(f"pg_basebackup failed:\n{tail}")
    manifest = json.loads((folder / "base" / "backup_manifest").read_text())
    wal = manifest["WAL-Ranges"][0]
    made = Backup(
        name=name,
        folder=folder,
        format=fmt,
        timeline=int(wal["Timeline"]),
        start_lsn=wal["Start-LSN"],
        end_lsn=wal["End-LSN"],
        started=started.isoformat(),
        ended=datetime.now(UTC).isoformat(),
        wal_segment_size=segment_size,
    )
    record = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(made).items()}
    (folder / "backup.json").write_text(json.dumps(record, indent=2) + "\n")
    cluster._own(folder / "backup.json")
    return made


def _run_with_progress(command: list[str], env: dict, progress: IO[str] | None) -> str | None:
    """Run, copying stderr (pg_basebackup's progress) to ``progress`` as it comes; the last
    lines are returned when the command fails, None when it succeeds."""
    proc = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
    )
    kept: list[str] = []
    assert proc.stderr is not None
    for line in proc.stderr:
        kept = [*kept[-30:], line]
        if progress is not None:
            progress.write(line)
            progress.flush()
    return None if proc.wait() == 0 else "".join(kept).strip()


def load_backup(folder: Path) -> Backup:
    record = folder / "backup.json"
    if not record.exists():
        raise BackupError(f"{folder} is not a backup made by `onemap db backup` (no backup.json)")
    data = json.loads(record.read_text())
    data["folder"] = folder
    return Backup(**data)


def list_backups(cluster: Cluster, root: Path | None = None) -> list[Backup]:
    """The backups in ``root`` (default: the cluster's), oldest first."""
    root = Path(root) if root else backups_root(cluster)
    if not root.is_dir():
        return []
    return [load_backup(f) for f in sorted(root.iterdir()) if (f / "backup.json").exists()]


def find_backup(cluster: Cluster, which: str | None, root: Path | None = None) -> Backup:
    """A backup by folder name or path; none given: the newest."""
    if which and Path(which).is_dir() and (Path(which) / "backup.json").exists():
        return load_backup(Path(which))
    made = list_backups(cluster, root)
    if not made:
        raise BackupError(
            f"no backups in {Path(root) if root else backups_root(cluster)}: "
            "make one with `onemap db backup`"
        )
    if which is None:
        return made[-1]
    for candidate in made:
        if candidate.name == which:
            return candidate
    raise BackupError(f"no backup named {which!r}; there are: " + ", ".join(b.name for b in made))


def verify(cluster: Cluster, made: Backup) -> str:
    """``pg_verifybackup``: every file against the manifest's checksums, and the WAL parsed.
    A tar backup is unpacked to a scratch folder first (PostgreSQL 15 verifies plain ones)."""
    target = made.base
    scratch = None
    if made.format == "tar":
        scratch = made.folder / "verify-scratch"
        shutil.rmtree(scratch, ignore_errors=True)
        _unpack(cluster, made, scratch)
        subprocess.run(
            _as_cluster_user(cluster, ["cp", made.base / "backup_manifest", scratch]), check=True
        )
        target = scratch
    try:
        result = subprocess.run(
            _as_cluster_user(cluster, [_bin("pg_verifybackup"), target]),
            capture_output=True,
            text=True,
        )
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    if result.returncode != 0:
        raise BackupError(f"pg_verifybackup found a damaged backup {made.name}:\n{result.stderr}")
    return (result.stdout + result.stderr).strip()


def prune(cluster: Cluster, keep: int, root: Path | None = None) -> tuple[list[str], int]:
    """Keep the newest ``keep`` backups; drop older ones and the archived WAL only they need
    (``pg_archivecleanup`` up to the oldest kept backup's first segment). Returns the removed
    backups' names and how many WAL files went."""
    if keep < 1:
        raise BackupError("--keep must be at least 1: the newest backup is never removed")
    made = list_backups(cluster, root)
    old, kept = made[:-keep], made[-keep:]
    for backup_ in old:
        shutil.rmtree(backup_.folder)
    archive = cluster.wal_archive()
    before = len(list(archive.iterdir())) if archive.is_dir() else 0
    if kept and archive.is_dir():
        subprocess.run(
            _as_cluster_user(
                cluster, [_bin("pg_archivecleanup"), archive, kept[0].start_segment()]
            ),
            check=True,
            capture_output=True,
        )
    after = len(list(archive.iterdir())) if archive.is_dir() else 0
    return [b.name for b in old], before - after


# --- restore points -----------------------------------------------------------------------------
def restore_point(cluster: Cluster, name: str, timeout: float = 60) -> str:
    """A named restore point, its WAL switched out and archived so a restore can reach it now.
    Returns its LSN."""
    make_target(to_name=name)  # the name's rules
    _running(cluster)
    if cluster.psql("SHOW archive_mode") != "on":
        raise BackupError(
            "WAL archiving is off, so no restore could reach a restore point: make a base "
            "backup first (`onemap db backup` switches archiving on)"
        )
    quoted = name.replace("'", "''")
    lsn = cluster.psql(f"SELECT pg_create_restore_point('{quoted}')")
    archive_now(cluster, timeout)
    return lsn


def archive_now(cluster: Cluster, timeout: float = 60) -> str:
    """Close the current WAL segment and wait until the archiver has copied it: everything
    committed so far is then in the archive. Returns the switched segment's file name."""
    switched = cluster.psql("SELECT pg_walfile_name(pg_switch_wal())")
    archived = cluster.wal_archive() / switched
    deadline = time.monotonic() + timeout
    while not archived.exists():
        if time.monotonic() > deadline:
            failed = cluster.psql("SELECT last_failed_wal, last_failed_time FROM pg_stat_archiver")
            raise BackupError(
                f"WAL file {switched} was not archived within {timeout:.0f} s "
                f"(last failure: {failed or 'none'}); see {cluster.log}"
            )
        time.sleep(0.05)
    return switched


def restore_points_in_archive(cluster: Cluster, made: Backup) -> dict[str, str]:
    """The restore points written since the backup started (name → LSN), read from the WAL
    (the backup's own, then the archive) with pg_waldump."""
    found: dict[str, str] = {}
    for folder in (made.base / "pg_wal", cluster.wal_archive()):
        end = _wal_end(folder, made)
        if end is None:
            continue
        result = subprocess.run(
            _as_cluster_user(
                cluster,
                [
                    _bin("pg_waldump"),
                    "-p",
                    folder,
                    "-t",
                    str(made.timeline),
                    "-s",
                    made.start_lsn,
                    "-e",  # without an end it waits 5 s for a segment that is not there
                    lsn_text(end),
                    "-r",
                    "XLOG",
                ],
            ),
            capture_output=True,
            text=True,
        )  # it ends with an error where the WAL ends: the output up to there is what we want
        for line in result.stdout.splitlines():
            hit = RESTORE_POINT.search(line)
            if hit:
                found.setdefault(hit.group(2).strip(), hit.group(1))
    return found


def _wal_end(folder: Path, made: Backup) -> int | None:
    """The end of the newest whole WAL segment of the backup's timeline in ``folder``."""
    if not folder.is_dir():
        return None
    prefix = f"{made.timeline:08X}"
    names = [
        p.name
        for p in folder.iterdir()
        if len(p.name) == 24 and p.name.startswith(prefix) and p.name[8:].isalnum()
    ]
    if not names:
        return None
    newest = max(names)
    per_xlogid = 0x100000000 // made.wal_segment_size
    segno = int(newest[8:16], 16) * per_xlogid + int(newest[16:24], 16)
    end = (segno + 1) * made.wal_segment_size
    return end if end > lsn_value(made.start_lsn) else None


# --- restore ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Restored:
    """A restored cluster, running on its own port: a Cluster of its own (``ONEMAP_HOME=home``
    makes every ``onemap db`` command speak to it)."""

    cluster: Cluster
    home: Path
    port: int
    backup: Backup
    target: Target
    replayed_to: str


def check_target(cluster: Cluster, made: Backup, target: Target) -> Target:
    """Refuse a target recovery could not reach, before anything is made or started."""
    _binaries(cluster)
    end = lsn_value(made.end_lsn)
    if target.kind == "lsn" and lsn_value(target.value) < end:
        raise BackupError(
            f"LSN {target.value} is before the end of backup {made.name} ({made.end_lsn}): "
            "the backup is only consistent from there; give a later LSN or an older backup"
        )
    if target.kind == "time":
        moment = datetime.fromisoformat(target.value)
        if moment < datetime.fromisoformat(made.ended):
            raise BackupError(
                f"time {target.value} is before backup {made.name} ended ({made.ended}): "
                "give a later time or an older backup"
            )
        if moment > datetime.now(UTC):
            raise BackupError(f"time {target.value} is in the future")
    if target.kind == "name":
        if cluster.running_pid() is not None and cluster.psql("SHOW archive_mode") == "on":
            archive_now(cluster)
        points = restore_points_in_archive(cluster, made)
        if target.value not in points:
            raise BackupError(
                f"no restore point named {target.value!r} after backup {made.name} began; "
                f"there are: {', '.join(sorted(points)) or 'none'}"
            )
        if lsn_value(points[target.value]) < end:
            raise BackupError(
                f"restore point {target.value!r} ({points[target.value]}) lies inside backup "
                f"{made.name} (it ends at {made.end_lsn}): give a later point or an older backup"
            )
    if target.kind in ("lsn", "time"):
        _reachable(cluster, made, target)
    return target


def _reachable(cluster: Cluster, made: Backup, target: Target) -> None:
    """Recovery stops at the first record past an LSN, or the first commit past a time: one
    must exist in the archive, or PostgreSQL replays everything and then gives up."""
    if cluster.running_pid() is not None:
        now = cluster.psql("SELECT pg_current_wal_insert_lsn()")
        if target.kind == "lsn" and lsn_value(target.value) > lsn_value(now):
            raise BackupError(
                f"LSN {target.value} has not been written yet (the primary is at {now})"
            )
        if target.kind == "time":
            cluster.psql("SELECT pg_current_xact_id()")  # a commit stamped now, past the target
        archive_now(cluster)  # the WAL up to now, so a target just written can be reached
        return
    end = _wal_end(cluster.wal_archive(), made)
    if target.kind == "lsn" and (end is None or lsn_value(target.value) >= end):
        raise BackupError(
            f"LSN {target.value} is past the WAL archive's end "
            f"({lsn_text(end) if end else 'nothing archived'}); the primary is stopped, so "
            "nothing newer can be archived"
        )


def _free_port(preferred: int) -> int:
    for port in range(preferred, preferred + 100):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise BackupError(f"no free loopback port in {preferred}–{preferred + 99}")


def restore(
    cluster: Cluster,
    target: Target,
    which: str | None = None,
    name: str | None = None,
    port: int | None = None,
    root: Path | None = None,
    timeout: float = 3600,
    echo=print,
) -> Restored:
    """Restore a backup into ``<server home>/restores/<name>`` and recover to ``target`` from
    the WAL archive, on a port of its own; it is promoted (writable) when it gets there. The
    primary is never touched (beyond switching its WAL out so the newest changes are archived)."""
    _binaries(cluster)
    made = find_backup(cluster, which, root)
    check_target(cluster, made, target)
    name = name or f"{made.name}-to-{target.kind}"
    if not FOLDER_NAME.match(name):
        raise BackupError(f"{name!r} is not a folder name: letters, digits, '.', '_' and '-'")
    home = restores_root(cluster) / name
    if home.exists():
        raise BackupError(
            f"{home} exists already: stop it (ONEMAP_HOME={home} onemap db down) and remove "
            "it, or give another --name"
        )
    port = port or _free_port((cluster.port or cluster.settings.port) + 10)
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            raise BackupError(f"port {port} is taken: give another --port")
    _make_folder(cluster, restores_root(cluster))
    _make_folder(cluster, home)
    settings = DatabaseSettings(home=home, port=port, name=cluster.settings.name)
    restored = Cluster(settings)
    restored.binaries = find_binaries()
    try:
        for folder in (restored.data, restored.run_dir):
            _make_folder(cluster, folder)
        echo(f"Copying backup {made.name} into {restored.data}")
        if made.format == "tar":
            _unpack(cluster, made, restored.data)
        else:
            subprocess.run(
                _as_cluster_user(cluster, ["cp", "-a", f"{made.base}/.", restored.data]),
                check=True,
                capture_output=True,
            )
        _write_recovery(cluster, restored, target, port)
        shutil.copy(cluster.password_file, restored.password_file)
        os.chmod(restored.password_file, 0o600)
        restored.state_file.write_text(json.dumps({"port": port, "server_home": str(home)}))
        echo(f"Recovering to {target.describe()} on 127.0.0.1:{port}")
        replayed = _start_and_wait(restored, timeout, echo)
    except BaseException:
        restored.down(echo=lambda *_: None)
        shutil.rmtree(home, ignore_errors=True)
        raise
    return Restored(restored, home, port, made, target, replayed)


def _unpack(cluster: Cluster, made: Backup, data: Path) -> None:
    _make_folder(cluster, data)
    base = next(made.base.glob("base.tar*"))
    wal = next(made.base.glob("pg_wal.tar*"))
    subprocess.run(_as_cluster_user(cluster, ["tar", "-xf", base, "-C", data]), check=True)
    _make_folder(cluster, data / "pg_wal")
    subprocess.run(
        _as_cluster_user(cluster, ["tar", "-xf", wal, "-C", data / "pg_wal"]), check=True
    )


def _write_recovery(cluster: Cluster, restored: Cluster, target: Target, port: int) -> None:
    """Recovery settings, appended to postgresql.auto.conf (the last line of a name wins):
    its own socket and port, WAL read from the primary's archive, archiving off (a promoted
    restore must never write its new timeline into the primary's archive)."""
    archive = cluster.wal_archive()
    lines = {
        "port": str(port),
        "unix_socket_directories": str(restored.run_dir),
        "listen_addresses": "127.0.0.1",
        "archive_mode": "off",
        "restore_command": f"cp {archive}/%f %p",
        "recovery_target_timeline": "current",
        "recovery_target_action": "promote",
        **target.settings(),
    }
    auto = restored.data / "postgresql.auto.conf"
    with auto.open("a") as handle:
        handle.write("# --- onemap restore ---\n")
        for key, value in lines.items():
            handle.write(f"{key} = '{value}'\n")
    (restored.data / "recovery.signal").touch()
    cluster._own(restored.data / "recovery.signal")
    for leftover in ("postmaster.pid", "standby.signal"):
        (restored.data / leftover).unlink(missing_ok=True)


def _start_and_wait(restored: Cluster, timeout: float, echo) -> str:
    """Start the restored cluster and wait until recovery has reached its target and the
    server is promoted; a server that stops on the way (target unreachable) is reported with
    its log. Returns the LSN replayed to."""
    restored.log.touch(exist_ok=True)
    restored._own(restored.log)
    result = restored._run(
        [restored._bin("pg_ctl"), "start", "-W", "-D", restored.data, "-l", restored.log],
        check=False,
    )
    if result.returncode != 0:
        raise BackupError(f"the restored cluster did not start:\n{result.stderr}")
    deadline = time.monotonic() + timeout
    last_said = time.monotonic()
    while True:
        time.sleep(0.2)
        log = restored.log.read_text(errors="replace")
        if "FATAL" in log and restored.running_pid() is None:
            raise BackupError(f"recovery stopped without reaching its target:\n{log[-3000:]}")
        try:
            state = restored.psql("SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()")
        except ClusterError:
            state = ""
        if state.startswith("f|"):
            return state.split("|", 1)[1] or _replay_end(log)
        if time.monotonic() > deadline:
            raise BackupError(f"recovery did not finish within {timeout:.0f} s:\n{log[-3000:]}")
        if time.monotonic() - last_said > 10:
            echo(f"  replaying WAL… at {state.split('|')[-1] or 'start'}")
            last_said = time.monotonic()


def _replay_end(log: str) -> str:
    """Where recovery stopped, from the server's log (after promotion the function is NULL)."""
    hits = re.findall(r"(?:redo done at|recovery stopping .*?) ([0-9A-F]+/[0-9A-F]+)", log)
    return hits[-1] if hits else ""


def stop_restored(home: Path) -> None:
    """Stop a restored cluster (by its folder) and remove it: an immediate stop, since its
    files are thrown away (no shutdown checkpoint to wait for)."""
    restored = _binaries(Cluster(DatabaseSettings(home=home, url=None)))
    pid = restored.running_pid()
    if pid is not None:
        restored._run(
            [restored._bin("pg_ctl"), "stop", "-w", "-m", "immediate", "-D", restored.data],
            check=False,
        )
        deadline = time.monotonic() + 30
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    shutil.rmtree(home, ignore_errors=True)
