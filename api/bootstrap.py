"""Bring a database to a ready demo state: schema, demo city, catalogue. Used by the command line
(``onemap demo load``) and by the tests, so both prepare the database the same way. With several
districts, one load fills them all; the catalogue and the rasters are one for the whole city."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy.engine import make_url

from fixtures.democity import LoadReport, load_demo_city
from fixtures.democity.rasters import write_rasters
from geo import migrate
from geo.database import engine
from geo.settings import Settings
from layers.catalogue import register_base_layers


def prepare_demo(
    url: str,
    settings: Settings | None = None,
    scale: str = "small",
    seed: int = 20260117,
    echo: Callable[[str], None] | None = None,
    year: int | None = None,
    districts: Sequence[str] | None = None,
) -> LoadReport:
    """``districts``: six-digit codes of Nanjing's districts, loaded side by side in that order
    (default: Lishui, 320117, alone)."""
    settings = settings or Settings.from_env()
    migrate.upgrade(url)
    eng = engine(url)
    report = load_demo_city(
        eng,
        scale=scale,
        seed=seed,
        metric_srid=settings.spatial.metric_srid,
        hash_key=settings.secrets.id_hash_key,
        echo=echo,
        districts=districts,
        **({"year": year} if year else {}),
    )
    with eng.begin() as conn:
        register_base_layers(conn)
    with eng.connect() as conn:
        database = make_url(url).database or "onemap"
        write_rasters(conn, settings.service.rasters / database, settings.spatial.metric_srid, seed)
    return report
