"""``onemap layers``: departmental layers from the command line — ingest a file, list the declared
layers, show a quality report, drop a layer.

``onemap layers ingest FILE --layer ID --dept NAME [--crs EPSG:xxxx|gcj02|bd09]`` shows progress,
then the report's summary and its first rows; it exits 1 when the file fails as a whole (nothing
is changed then) and 0 when the layer is loaded, even with rows rejected (the report says which).
"""

from __future__ import annotations

import getpass
import json
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console(stderr=True)
out = Console()
layers_app = typer.Typer(
    help="Departmental layers: ingest files, list declarations, read reports.",
    no_args_is_help=True,
)

STAGE_ZH = {
    "read": "读取 read",
    "crs": "坐标系 CRS",
    "fields": "字段 fields",
    "geocode": "地址匹配/坐标转换 geocode/transform",
    "validate": "校验修复 validate",
    "load": "入库 load",
    "match": "标准数据匹配 match",
    "publish": "发布 publish",
}


def _fail(message: str, code: int = 1) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


def operator():
    from geo.policy.roles import Viewer

    try:
        user = getpass.getuser()
    except Exception:  # no login name (containers): still say it came from the command line
        user = "unknown"
    return Viewer(username=f"cli:{user}"[:50], role="admin")


@layers_app.command("ingest")
def ingest_file(
    file: Path = typer.Argument(..., help="GeoJSON, zipped Shapefile, GeoPackage or CSV."),
    layer: str = typer.Option(..., "--layer", help="A declared layer id (onemap layers list)."),
    dept: str = typer.Option(..., "--dept", help="The department handing the file over."),
    crs: str = typer.Option(
        None, "--crs", help="Override the file's CRS: EPSG:xxxx, gcj02 or bd09."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the whole report as JSON."),
) -> None:
    """Ingest a departmental file: read, to EPSG:4490, validate/repair, match, load, report."""
    from geo.database import connect
    from geo.errors import IngestError
    from geo.settings import SpatialSettings
    from layers.ingest import ingest

    if not file.is_file():
        _fail(f"no file at {file}")
    tasks: dict[str, int] = {}
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f}"),
        TimeElapsedColumn(),
    )
    try:
        with Progress(*columns, console=console, transient=False) as bar:

            def progress(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(STAGE_ZH.get(stage, stage), total=max(total, 1))
                bar.update(tasks[stage], completed=done, total=max(total, 1))

            with connect() as conn:
                report = ingest(
                    conn,
                    file,
                    layer,
                    dept,
                    crs,
                    viewer=operator(),
                    progress=progress,
                    metric_srid=SpatialSettings().metric_srid,
                )
    except IngestError as exc:
        _fail(f"{exc}\nnothing was changed")
    if as_json:
        typer.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
        return
    out.print(report.summary())
    if report.issues:
        table = Table(title=f"report #{report.id}: first rows of {len(report.issues)}")
        for column in ("row", "kind", "reason"):
            table.add_column(column, overflow="fold")
        for issue in report.issues[:20]:
            table.add_row(str(issue.row), issue.kind, issue.reason)
        out.print(table)
    out.print(
        f"report #{report.id}: /ingest/reports/{report.id}?f=html · "
        f"{report.timings.get('total', 0):.2f} s"
    )


@layers_app.command("declare")
def declare(
    file: Path = typer.Argument(..., help="The layer's declaration, a TOML file."),
) -> None:
    """Declare (or re-declare) a departmental layer from a TOML file: fields and their source
    columns, key, matching, personal fields, sharing and opening levels (see the README)."""
    from geo.database import connect
    from layers import departments
    from layers.declaration import SpecError

    if not file.is_file():
        _fail(f"no file at {file}")
    try:
        with connect() as conn:
            layer = departments.declare(
                conn, file.read_text(encoding="utf-8"), file.name, operator()
            )
    except SpecError as exc:
        _fail(f"{exc}\nnothing was changed")
    out.print(
        f"declared {layer.id} ({layer.title_zh}): {len(layer.fields)} fields; ingest files with "
        f"onemap layers ingest FILE --layer {layer.id} --dept '{layer.department}'"
    )


@layers_app.command("list")
def list_layers() -> None:
    """The declared departmental layers: id, titles, department, fields, matching, sharing."""
    from geo.database import connect
    from layers import departments

    table = Table(title="declared departmental layers · 部门图层")
    table.add_column("id", no_wrap=True)
    for column in ("title", "department", "fields", "match", "sharing / opening"):
        table.add_column(column, overflow="fold")
    with connect() as conn:
        every = departments.declared(conn)
    for spec in every:
        table.add_row(
            spec.id,
            f"{spec.title_zh} {spec.title_en}",
            spec.department,
            f"{len(spec.fields)} (personal: {', '.join(spec.personal) or 'none'})",
            ", ".join(spec.ingest.match) or "—",
            f"{spec.sharing_level} / {spec.opening_level}",
        )
    out.print(table)


@layers_app.command("report")
def show_report(report_id: int = typer.Argument(..., help="The report number.")) -> None:
    """Print one ingest report as JSON."""
    from geo.database import connect
    from layers import quality

    with connect() as conn:
        body = quality.get(conn, report_id)
    if body is None:
        _fail(f"no ingest report {report_id}")
    typer.echo(json.dumps(body, ensure_ascii=False, indent=2))


@layers_app.command("drop")
def drop(
    layer: str = typer.Argument(..., help="The departmental layer to remove."),
    yes: bool = typer.Option(False, "--yes", help="Really remove it."),
) -> None:
    """Remove a departmental layer's table and catalogue entry (its reports are kept)."""
    from geo.database import connect
    from layers.declaration import SpecError
    from layers.ingest import drop_layer

    if not yes:
        _fail(f"this removes layer '{layer}' and its features: add --yes to go ahead", 2)
    try:
        with connect() as conn:
            dropped = drop_layer(conn, layer, operator())
    except SpecError as exc:
        _fail(str(exc))
    console.print(f"layer {layer} {'removed' if dropped else 'was not loaded: nothing to remove'}")
