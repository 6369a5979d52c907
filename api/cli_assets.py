"""``onemap assets``: the idle-asset register (存量资产台账).

``onemap assets import FILE [--mapping TOML] [--update] [--report DIR] [--dry-run]`` loads the
register from a spreadsheet (.xlsx or .csv, Chinese column names) through the district import's
rules: the good rows are loaded, each bad one is reported with its spreadsheet row and why, and
the quality report is written as JSON and as one HTML page that needs nothing else.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from api.cli_layers import operator

console = Console(stderr=True)
out = Console()
assets_app = typer.Typer(
    help="The idle-asset register (存量资产台账): import it from a spreadsheet.",
    no_args_is_help=True,
)
OUTCOME = {"rejected": "拒绝 rejected", "repaired": "修复 repaired", "warning": "提示 warning"}
ADDRESS_HOW = {
    "building": "建筑的地址 the building's",
    "nearest": "100 米内最近 nearest within 100 m",
    "geocoded": "地址文本匹配 address text",
    "given": "表中给出 given",
}


def render(report: dict) -> str:
    """The report as one HTML page (``AssetImportReport.to_json()``); written to disk, so it
    stands alone like the district import's page rather than extending the served base.html."""
    from api.html import local_time, template
    from layers.vocabulary import field_title

    return template("asset_import_report.html").render(
        r=report,
        outcome=OUTCOME,
        address_how=ADDRESS_HOW,
        field_zh=field_title,
        started=local_time(report["started_at"]),
        finished=local_time(report["finished_at"]),
    )


def write_report(report: dict, folder: Path) -> tuple[Path, Path]:
    """The report as ``asset-import-report.json`` and ``asset-import-report.html`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    as_json = folder / "asset-import-report.json"
    as_html = folder / "asset-import-report.html"
    as_json.write_text(json.dumps(report, ensure_ascii=False, indent=2, default=str), "utf-8")
    as_html.write_text(render(report), "utf-8")
    return as_json, as_html


@assets_app.command("import")
def import_register(
    file: Path = typer.Argument(..., help="The register: an .xlsx or .csv, one asset a row."),
    mapping: Path = typer.Option(
        None, "--mapping", help="A TOML mapping (fields/values/defaults/crs) over the defaults."
    ),
    update: bool = typer.Option(
        False, "--update", help="Update assets whose code is already in the register."
    ),
    report_dir: Path = typer.Option(
        None, "--report", help="Where to write the report (default: beside the file)."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Validate and report, but write nothing (roll back)."
    ),
    district_code: str = typer.Option(
        None, "--district", help="Whose register it is, when several districts are loaded."
    ),
) -> None:
    """Import the idle-asset register: load the good rows, report each bad one."""
    from geo.database import engine
    from geo.errors import BadRequest
    from geo.settings import Settings
    from layers.basedata.asset_import import import_assets

    settings = Settings.from_env()
    with engine().connect() as conn:
        transaction = conn.begin()
        try:
            report = import_assets(
                conn,
                file,
                mapping=mapping,
                update=update,
                metric_srid=settings.spatial.metric_srid,
                viewer=operator(),
                dry_run=dry_run,
                district_code=district_code,
            )
        except BadRequest as exc:
            transaction.rollback()
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from exc
        except BaseException:
            transaction.rollback()
            raise
        if report.loaded and not dry_run:
            transaction.commit()
        else:
            transaction.rollback()
    body = report.to_json()
    folder = report_dir or file.resolve().parent / "asset-import-report"
    as_json, as_html = write_report(body, folder)
    t = report.tables["assets"]
    title = (
        "校验（未写入）dry run"
        if dry_run
        else ("已导入 loaded" if report.loaded else "未导入 refused")
    )
    table = Table(title=f"{report.district} 存量资产台账 · {title}")
    for column in ("读入 read", "入库 loaded", "新增 new", "更新 updated", "拒绝 rejected"):
        table.add_column(column, justify="right")
    table.add_column("匹配建筑 building", justify="right")
    table.add_column("匹配地址 address", justify="right")
    building = report.matching.get("building", {})
    address = report.matching.get("address", {})
    table.add_row(
        f"{t.rows_read:,}",
        f"{report.inserted + report.updated:,}" if report.loaded else "0",
        str(report.inserted),
        str(report.updated),
        str(t.rejected),
        f"{building.get('matched', 0)} / {building.get('unmatched', 0)} 未匹配 unmatched",
        f"{address.get('matched', 0)} / {address.get('unmatched', 0)} 未匹配 unmatched",
    )
    out.print(table)
    for issue in [i for i in t.issues if i.severity == "rejected"][:20]:
        console.print(f"[red]•[/red] 第 {issue.row} 行 row {issue.row}: {issue.reason}")
    for problem in report.problems[:5]:
        console.print(f"[red]•[/red] {problem}")
    out.print(f"report: {as_html} · {as_json}")
    if not report.loaded:
        console.print("[red]error:[/red] 没有可导入的行，台账未改动 — nothing could be loaded")
        raise typer.Exit(1)
