"""``onemap city``: bring your own district.

``onemap city import MANIFEST [--replace | --beside] [--allow-rejects] [--report DIR]`` validates every file
the manifest names, then loads the district in one transaction (or refuses, changing nothing), and
writes the quality report as JSON and as an HTML page with a map of the problem rows.
``onemap city export DIR`` writes the current district out as a GeoPackage and its manifest.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from api.cli_layers import operator

console = Console(stderr=True)
out = Console()
city_app = typer.Typer(
    help="Bring your own district: import its base data through a manifest, or export it.",
    no_args_is_help=True,
)
STAGE_ZH = {"read": "校验 validate", "load": "入库 load"}


def _fail(message: str, code: int = 1) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


def write_report(report: dict, folder: Path) -> tuple[Path, Path]:
    """The report as ``import-report.json`` and ``import-report.html`` in ``folder``."""
    from api.city_report import render

    folder.mkdir(parents=True, exist_ok=True)
    as_json = folder / "import-report.json"
    as_html = folder / "import-report.html"
    as_json.write_text(json.dumps(report, ensure_ascii=False, indent=2, default=str), "utf-8")
    as_html.write_text(render(report), "utf-8")
    return as_json, as_html


@city_app.command("import")
def import_city(
    manifest: Path = typer.Argument(..., help="The district manifest (TOML); files beside it."),
    replace: bool = typer.Option(
        False,
        "--replace",
        help="Swap out the district of the same code (only it, when others are loaded beside "
        "it), or, for another code, everything loaded (the demo city too).",
    ),
    beside: bool = typer.Option(
        False, "--beside", help="Load this district next to the districts loaded (a city)."
    ),
    allow_rejects: bool = typer.Option(
        False, "--allow-rejects", help="Load the good rows even when some rows are rejected."
    ),
    report_dir: Path = typer.Option(
        None, "--report", help="Where to write the report (default: beside the manifest)."
    ),
) -> None:
    """Import a district: validate everything, then load it in one transaction, and report."""
    from geo.database import engine
    from geo.settings import Settings
    from layers.basedata import manifest as manifests
    from layers.basedata.importer import import_district
    from layers.basedata.manifest import ManifestError

    try:
        parsed = manifests.load(manifest)
    except ManifestError as exc:
        _fail(f"{exc}\nnothing was changed")
    settings = Settings.from_env()
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f}"),
        TimeElapsedColumn(),
    )
    tasks: dict[str, int] = {}
    with Progress(*columns, console=console) as bar:

        def progress(stage: str, table: str, done: int, total: int) -> None:
            label = f"{STAGE_ZH.get(stage, stage)} {table}"
            if label not in tasks:
                tasks[label] = bar.add_task(label, total=max(total, 1))
            bar.update(tasks[label], completed=done, total=max(total, 1))

        with engine().connect() as conn:
            transaction = conn.begin()
            try:
                report = import_district(
                    conn,
                    parsed,
                    replace=replace,
                    beside=beside,
                    allow_rejects=allow_rejects,
                    metric_srid=settings.spatial.metric_srid,
                    hash_key=settings.secrets.id_hash_key,
                    viewer=operator(),
                    progress=progress,
                )
            except BaseException:
                transaction.rollback()
                raise
            if report.loaded:
                transaction.commit()
            else:
                transaction.rollback()
    body = report.to_json()
    as_json, as_html = write_report(body, report_dir or manifest.parent / "import-report")
    table = Table(
        title=f"{report.district} · {'已导入 loaded' if report.loaded else '已拒绝 refused'}"
    )
    for column in ("table", "read", "loaded", "repaired", "rejected", "codes made"):
        table.add_column(column, justify="left" if column == "table" else "right")
    for name, t in report.tables.items():
        table.add_row(
            name,
            f"{t.rows_read:,}",
            f"{t.loaded:,}",
            str(t.repaired),
            str(t.rejected),
            str(t.generated_codes),
        )
    out.print(table)
    for problem in report.problems[:10]:
        console.print(f"[red]•[/red] {problem}")
    out.print(f"report: {as_html} · {as_json}")
    if not report.loaded:
        _fail("the import was refused: nothing was changed (the report says why)")


@city_app.command("export")
def export_city(
    folder: Path = typer.Argument(
        ..., help="The folder to write district.gpkg and manifest.toml to."
    ),
    district_code: str = typer.Option(
        None, "--district", help="The district to write, when several are loaded (e.g. 320118)."
    ),
) -> None:
    """Write the current district out as a GeoPackage and the manifest that imports it again."""
    from geo.database import connect
    from geo.errors import BadRequest
    from geo.settings import Settings
    from layers.basedata.export import export_district

    try:
        with connect() as conn:
            counts = export_district(
                conn,
                folder,
                operator(),
                metric_srid=Settings.from_env().spatial.metric_srid,
                progress=lambda table, n: console.print(f"  wrote {table:<22} {n:>10,} rows"),
                district_code=district_code,
            )
    except BadRequest as exc:
        _fail(str(exc))
    out.print(
        f"wrote {sum(counts.values()):,} rows of {len(counts)} tables to {folder}; import with "
        f"onemap city import {folder / 'manifest.toml'} --replace"
    )
