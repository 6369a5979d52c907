"""``onemap tiles``: the tile cache from the command line.

``onemap tiles seed --map safety --zoom 10-15`` draws every public tile of a map over its extent
into the cache the service reads (with progress); ``onemap tiles clear`` empties it.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console(stderr=True)
tiles_app = typer.Typer(help="Vector tiles: seed or clear the shared cache.", no_args_is_help=True)


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(1)


def _zooms(text: str) -> range:
    try:
        first, _, last = text.partition("-")
        low, high = int(first), int(last or first)
    except ValueError:
        _fail(f"--zoom {text!r}: give one zoom (14) or a range (10-15)")
    if not 0 <= low <= high <= 22:
        _fail(f"--zoom {text!r}: zooms run from 0 to 22, low to high")
    return range(low, high + 1)


def _store():
    from sqlalchemy.engine import make_url

    from geo.database import database_url
    from geo.settings import Settings
    from tiles.cache import store_for

    settings = Settings.from_env()
    return store_for(settings.service.tile_cache, make_url(database_url()).database or "onemap")


@tiles_app.command("seed")
def seed_map(
    map_id: str = typer.Option(..., "--map", help="base, checkup, assets or safety."),
    zoom: str = typer.Option("10-14", "--zoom", help="A zoom or a range, e.g. 10-15."),
) -> None:
    """Draw every public tile of a map at the given zooms into the shared cache."""
    from geo.database import engine
    from geo.errors import NotFound
    from tiles.maps import map_spec
    from tiles.seed import seed

    zooms = _zooms(zoom)
    try:
        spec = map_spec(map_id)
    except NotFound as exc:
        _fail(str(exc))
    columns = (
        TextColumn(f"切片 seeding {spec.title_zh} z{zooms.start}–{zooms.stop - 1}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("seed", total=None)

        def progress(done: int, total: int, held: bool) -> None:
            bar.update(task, completed=done, total=total)

        counts = seed(engine(), _store(), spec, zooms, progress=progress)
    console.print(f"{counts['drawn']:,} tiles drawn, {counts['held']:,} already fresh in the cache")


@tiles_app.command("clear")
def clear() -> None:
    """Empty this database's tile cache (the service draws tiles again as they are asked for)."""
    _store().clear()
    console.print("tile cache cleared")


map_app = typer.Typer(help="Maps as files: a layer or a query as a self-contained HTML map.")


@map_app.command("export")
def export_map(
    layer_id: str = typer.Argument(..., help="A layer id (onemap layers list, /collections)."),
    out: Path = typer.Option(..., "--out", help="The HTML file to write."),
    filter_: str = typer.Option(None, "--filter", help="A CQL2-text filter, e.g. kind='clinic'."),
    limit: int = typer.Option(5000, "--limit", min=1, max=10000, help="At most this many."),
) -> None:
    """Write a layer (or a filtered part of it) as a folium map in one HTML file that opens
    anywhere, with no network: personal fields masked, as for any caller without a purpose."""
    import orjson

    from api.routes.ogc import leaflet_assets, titles_of
    from geo.database import connect
    from geo.errors import OnemapError
    from geo.policy.roles import Viewer
    from layers import exports
    from layers import features as F
    from layers.catalogue import get_layer

    who = Viewer(username="cli:map-export", role="admin")
    try:
        with connect() as conn:
            layer = get_layer(conn, layer_id, who)
            plan = layer.plan(who)
            page = F.query_items(conn, layer, F.ItemQuery(limit=limit, filter=filter_), plan)
            features = [orjson.loads(one) for one in page.features]
            columns = [c["name"] for c in layer.property_columns(plan)]
            content = exports.to_folium(
                features, layer.title_zh, columns, titles_of(layer, conn), leaflet_assets()
            )
    except OnemapError as exc:
        _fail(str(exc))
    out.write_bytes(content)
    console.print(f"wrote {len(features):,} features of {layer.title_zh} to {out}")


maps_app = typer.Typer(help="The maps: each as a QGIS project.", no_args_is_help=True)


@maps_app.command("qgis")
def qgis_project(
    map_id: str = typer.Argument(..., help="base, checkup, assets or safety."),
    out: Path = typer.Option(None, "--out", help="The .qgs to write (default: MAP.qgs)."),
    url: str = typer.Option(
        None, "--url", help="The service's address as QGIS reaches it (default: ONEMAP_PUBLIC_URL)."
    ),
) -> None:
    """Write the map as a QGIS project (the same file as GET /maps/MAP/project.qgs): its
    vector tiles styled as on the web and its layers as OGC API – Features. No token is written:
    QGIS users attach their own authentication configuration."""
    from geo.database import connect
    from geo.errors import NotFound
    from geo.policy.roles import Viewer
    from geo.settings import Settings
    from tiles.maps import extent, map_spec, visible_layers
    from tiles.qgis_project import project_xml

    root = url or Settings.from_env().service.public_url or "http://127.0.0.1:8000"
    who = Viewer(username="cli:qgis-project", role="admin")  # the server still checks each read
    try:
        spec = map_spec(map_id)
        with connect() as conn:
            layers = visible_layers(conn, spec, who)
    except NotFound as exc:
        _fail(str(exc))
    kinds = {layer.id: layer.geometry_type or "" for layer in layers}
    titles = {layer.id: layer.title_zh for layer in layers}
    out = out or Path(f"{spec.id}.qgs")
    out.write_bytes(project_xml(spec, root, kinds, titles, extent(layers)))
    console.print(f"wrote {spec.title_zh} ({len(layers)} layers) to {out}: open it in QGIS")
