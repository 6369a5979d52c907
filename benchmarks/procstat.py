"""CPU accounting from /proc: where the seconds of a benchmark run went.

pg_stat_statements is not preloaded in the private cluster (and restarting a shared cluster to add
it is not ours to do), so the database's share is read the way PERFORMANCE.md did it: CPU ticks of
the PostgreSQL processes against those of the server processes, sampled before and after each run.
Processes that exit inside a run leave their CPU in their parent's ``cutime``/``cstime``; the deltas
below add that back so a short-lived backend or worker is not lost.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcStat:
    pid: int
    ppid: int
    ticks: int  # utime + stime of the process itself
    child_ticks: int  # cutime + cstime: children it has waited for


def read_stat(pid: int) -> ProcStat | None:
    """One process's CPU ticks, or None if it has gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # the command name may hold spaces and parentheses: split after the last ')'
    fields = raw[raw.rindex(")") + 2 :].split()
    # fields[0] is state (field 3); utime is field 14 → index 11
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return ProcStat(pid, int(fields[1]), utime + stime, cutime + cstime)


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return ""


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return "?"


def all_stats() -> dict[int, ProcStat]:
    out = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat = read_stat(int(entry.name))
            if stat is not None:
                out[stat.pid] = stat
    return out


def descendants(root: int, stats: dict[int, ProcStat]) -> set[int]:
    """``root`` and every process below it (uvicorn's worker processes, its reloader)."""
    children: dict[int, list[int]] = {}
    for s in stats.values():
        children.setdefault(s.ppid, []).append(s.pid)
    seen, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in seen or pid not in stats:
            continue
        seen.add(pid)
        todo.extend(children.get(pid, []))
    return seen


def machine_ticks() -> tuple[int, int]:
    """(busy, total) ticks of all CPUs since boot, from the first line of /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already inside user
    return total - idle, total


def postgres_role(command: str, database: str) -> str:
    """Classify a postmaster child by its title: 'db' (a backend on the benchmarked database),
    'other_db' (a backend on another database, e.g. a colleague's test run) or 'background'."""
    title = command.removeprefix("postgres:").strip()
    parts = title.split()
    # backend titles: "user database client state..." where client is [local] or host(port)
    if len(parts) >= 3 and (parts[2] == "[local]" or "(" in parts[2]):
        return "db" if parts[1] == database else "other_db"
    return "background"


@dataclass
class Snapshot:
    """CPU ticks per group of processes at one instant."""

    groups: dict[str, dict[int, int]] = field(default_factory=dict)  # group → pid → ticks
    reaped: dict[str, int] = field(default_factory=dict)  # group root → cutime+cstime
    everyone: dict[int, tuple[int, str]] = field(default_factory=dict)  # pid → (ticks, comm)
    busy: int = 0
    total: int = 0


class CpuMeter:
    """Samples the postmaster's children and each server's process tree."""

    def __init__(self, postmaster: int | None, servers: dict[str, int], database: str):
        self.postmaster = postmaster
        self.servers = servers
        self.database = database

    def snapshot(self) -> Snapshot:
        stats = all_stats()
        snap = Snapshot()
        snap.busy, snap.total = machine_ticks()
        snap.everyone = {pid: (s.ticks, _comm(pid)) for pid, s in stats.items()}
        if self.postmaster is not None and self.postmaster in stats:
            pm = stats[self.postmaster]
            snap.reaped["postgres"] = pm.child_ticks
            for group in ("db", "other_db", "background"):
                snap.groups[group] = {}
            snap.groups["background"][pm.pid] = pm.ticks
            for s in stats.values():
                if s.ppid == pm.pid:
                    role = postgres_role(cmdline(s.pid), self.database)
                    snap.groups[role][s.pid] = s.ticks
        for name, root in self.servers.items():
            tree = descendants(root, stats)
            snap.groups[name] = {pid: stats[pid].ticks for pid in tree}
            snap.reaped[name] = sum(stats[pid].child_ticks for pid in tree)
        return snap

    @staticmethod
    def delta(start: Snapshot, end: Snapshot) -> dict[str, float]:
        """CPU seconds per group between two snapshots, plus the machine's busy seconds.

        Postgres processes that exited in between are reported as 'exited_backends' (their CPU is
        only visible, in aggregate, in the postmaster's cutime)."""
        out: dict[str, float] = {}
        gone_pg = 0
        for group, end_ticks in end.groups.items():
            start_ticks = start.groups.get(group, {})
            ticks = sum(t - start_ticks.get(pid, 0) for pid, t in end_ticks.items())
            gone = sum(t for pid, t in start_ticks.items() if pid not in end_ticks)
            if group in ("db", "other_db", "background"):
                gone_pg += gone
            else:
                ticks += end.reaped.get(group, 0) - start.reaped.get(group, 0) - gone
            out[group] = ticks / CLOCK_TICKS
        if "postgres" in end.reaped:
            reaped = end.reaped["postgres"] - start.reaped.get("postgres", 0)
            out["exited_backends"] = (reaped - gone_pg) / CLOCK_TICKS
        out["machine_busy"] = (end.busy - start.busy) / CLOCK_TICKS
        out["machine_total"] = (end.total - start.total) / CLOCK_TICKS
        return out

    @staticmethod
    def strangers(start: Snapshot, end: Snapshot, top: int = 3) -> list[tuple[str, float]]:
        """The busiest processes outside every group (a colleague's tests, an editor…), so that
        a noisy run can be recognised as such."""
        ours = {pid for ticks in end.groups.values() for pid in ticks}
        busy = []
        for pid, (ticks, comm) in end.everyone.items():
            if pid in ours or pid == os.getpid():
                continue
            spent = (ticks - start.everyone.get(pid, (0, ""))[0]) / CLOCK_TICKS
            if spent >= 0.05:
                busy.append((f"{comm}[{pid}]", spent))
        return sorted(busy, key=lambda item: -item[1])[:top]
