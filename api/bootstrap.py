"""Bring a database to a ready demo state: schema, demo city, catalogue. Used by the command line
(``onemap demo load``) and by the tests, so both prepare the database the same way."""

from __future__ import annotations

from collections.abc import Callable

from fixtures.democity import LoadReport, load_demo_city
from geo import migrate
from geo.database import engine
from geo.settings import service_settings, spatial_settings
from layers.catalogue import register_base_layers


def prepare_demo(
    url: str, scale: str = "small", seed: int = 20260117, echo: Callable[[str], None] | None = None
) -> LoadReport:
    migrate.upgrade(url)
    eng = engine(url)
    report = load_demo_city(
        eng,
        scale=scale,
        seed=seed,
        metric_srid=spatial_settings().metric_srid,
        hash_key=service_settings().id_hash_key,
        echo=echo,
    )
    with eng.begin() as conn:
        register_base_layers(conn)
    return report
