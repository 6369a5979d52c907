"""``onemap checkup``: the one-click city check-up (城市体检).

``run [--as-of DATE] [--area CODE] [--config FILE] [--label TEXT]`` computes every indicator for
the district, every street, community and grid (and H3 cells for the surface-like ones) and keeps
the run; ``list``; ``show RUN`` its summary; ``indicator RUN ID`` one indicator's areas;
``compare BASE RUN`` year on year; ``report RUN`` the HTML report; ``export RUN`` CSV or GeoPackage.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console(stderr=True)
out = Console()
checkup_app = typer.Typer(
    help="城市体检 the one-click city check-up: run it, read it, compare years, report.",
    no_args_is_help=True,
)
STATUS_ZH = {"passed": "[green]达标 passed[/green]", "failed": "[red]未达标 failed[/red]"}


def _fail(message: str, code: int = 1) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


def _shown(value, unit: str | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.1f} {unit or ''}".strip() if isinstance(value, float) else str(value)


def print_summary(summary: dict) -> None:
    table = Table(
        title=f"城市体检 run {summary['run']} · {summary.get('district') or ''} · "
        f"as of {summary['as_of']}"
    )
    for column in ("indicator", "指标", "value", "target", "status", "failing streets/communities"):
        table.add_column(column)
    for item in summary["indicators"]:
        failing = item["failing_areas"]
        target = (
            f"{item['direction']} {item['target']:g}" if item["target"] is not None else "report"
        )
        table.add_row(
            item["id"],
            item["name_zh"],
            _shown(item["value"], item["unit"]),
            target,
            STATUS_ZH.get(item["status"], "报告 report"),
            f"{failing.get('street', 0)} / {failing.get('community', 0)}" if failing else "",
        )
    out.print(table)


@checkup_app.command("run")
def run(
    as_of: str = typer.Option(
        None, "--as-of", help="The day the data stands for (default: its last recorded event)."
    ),
    area: str = typer.Option(None, "--area", help="A street, community or grid code."),
    config: Path = typer.Option(
        None,
        "--config",
        help="The city's targets and settings (TOML; default ONEMAP_CHECKUP_CONFIG).",
    ),
    label: str = typer.Option(None, "--label", help="A name for the run, e.g. 2026年度体检."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Run every indicator for every area and keep the run (one transaction)."""
    from api.cli_layers import operator
    from geo.checkup.engine import CheckupConfig, run_checkup
    from geo.database import engine
    from geo.errors import OnemapError
    from geo.settings import Settings

    settings = Settings.from_env()
    try:
        day = date.fromisoformat(as_of) if as_of else None
    except ValueError:
        _fail(f"--as-of {as_of!r} is not a date like 2026-11-01")
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    try:
        chosen = CheckupConfig.load(config or settings.spatial.checkup_config)
        with Progress(*columns, console=console) as bar:
            task = bar.add_task("体检 check-up", total=1)

            def progress(n: int, total: int, indicator: str) -> None:
                bar.update(task, completed=n - 1, total=total, description=f"体检 {indicator}")

            result = run_checkup(
                engine(),
                settings.spatial.metric_srid,
                as_of=day,
                area=area,
                config=chosen,
                label=label,
                user=operator().username,
                progress=progress,
            )
            bar.update(task, completed=bar.tasks[0].total, description="体检 done")
    except OnemapError as exc:
        _fail(str(exc))
    if as_json:
        out.print_json(json.dumps(result.summary, ensure_ascii=False, default=str))
        return
    print_summary(result.summary)
    slowest = sorted(result.timings.items(), key=lambda kv: -kv[1])[:3]
    console.print(
        f"run {result.id} in {result.seconds:.1f} s; slowest: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in slowest)
    )


@checkup_app.command("list")
def list_runs() -> None:
    """The runs kept, newest first."""
    from geo.checkup.results import list_runs as runs
    from geo.database import connect

    with connect() as conn:
        rows = runs(conn)
    table = Table(title="城市体检 runs")
    for column in ("run", "label", "as of", "area", "started", "seconds"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            str(r["run"]),
            r["label"] or "",
            r["as_of"],
            r["area"] or r["district"] or "",
            r["started_at"][:19],
            f"{r['seconds'] or 0:.1f}",
        )
    out.print(table)


@checkup_app.command("show")
def show(run_id: int = typer.Argument(..., metavar="RUN")) -> None:
    """A run's summary: each indicator against its target, and where it fails."""
    from geo.checkup.engine import summarise
    from geo.database import connect
    from geo.errors import OnemapError

    try:
        with connect() as conn:
            print_summary(summarise(conn, run_id))
    except OnemapError as exc:
        _fail(str(exc))


@checkup_app.command("compare")
def compare_runs(
    base: int = typer.Argument(..., help="The earlier run (e.g. last year's)."),
    run_id: int = typer.Argument(..., metavar="RUN", help="The later run."),
    level: str = typer.Option("district", help="district, street, community or grid."),
) -> None:
    """Year on year: each indicator in both runs, the change, better or worse."""
    from geo.checkup.compare import compare
    from geo.database import connect
    from geo.errors import OnemapError

    try:
        with connect() as conn:
            body = compare(conn, base, run_id, level)
    except OnemapError as exc:
        _fail(str(exc))
    table = Table(title=f"城市体检 {body['base']['as_of']} → {body['run']['as_of']} · {level}")
    for column in ("indicator", "area", "before", "now", "change", "trend"):
        table.add_column(column)
    colour = {"better": "green", "worse": "red"}
    for c in body["changes"]:
        trend = c["trend"] or ""
        table.add_row(
            c["name_zh"],
            c["area_name"] or c["area_code"],
            _shown(c["base"], c["unit"]),
            _shown(c["value"], c["unit"]),
            "" if c["change"] is None else f"{c['change']:+,.1f}",
            f"[{colour[trend]}]{trend}[/{colour[trend]}]" if trend in colour else trend,
        )
    out.print(table)


@checkup_app.command("export")
def export(
    run_id: int = typer.Argument(..., metavar="RUN"),
    path: Path = typer.Argument(..., help="A .csv or .gpkg file to write."),
    level: str = typer.Option(None, help="Only this level (default: all)."),
) -> None:
    """Write a run's results, with each area's shape, as CSV (WKT) or GeoPackage."""
    from geo.checkup.results import results_frame
    from geo.database import connect
    from geo.errors import OnemapError

    try:
        with connect() as conn:
            frame = results_frame(conn, run_id, level)
    except OnemapError as exc:
        _fail(str(exc))
    if path.suffix == ".gpkg":
        frame.to_file(path, layer=f"checkup_run_{run_id}", driver="GPKG")
    elif path.suffix == ".csv":
        frame.to_wkt().to_csv(path, index=False)
    else:
        _fail("write a .csv or a .gpkg file")
    console.print(f"wrote {len(frame):,} results to {path}")


@checkup_app.command("report")
def report(
    run_id: int = typer.Argument(..., metavar="RUN"),
    path: Path = typer.Argument(..., help="The HTML file to write."),
    base: int = typer.Option(None, help="An earlier run to set beside it (year on year)."),
) -> None:
    """The run's report as one HTML file that opens with no network."""
    from api.checkup_report import render_report
    from geo.database import connect
    from geo.errors import OnemapError

    try:
        with connect() as conn:
            page = render_report(conn, run_id, base)
    except OnemapError as exc:
        _fail(str(exc))
    path.write_text(page, encoding="utf-8")
    console.print(f"wrote {path}")
