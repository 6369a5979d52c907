"""GDAL's own OGC API – Features client (Debian's gdal-bin) reads the service on a real port."""

from __future__ import annotations

import shutil
import subprocess

import geopandas as gpd
import pyogrio
import pytest
import shapely

pytestmark = pytest.mark.skipif(shutil.which("ogrinfo") is None, reason="gdal-bin is not installed")


def test_ogrinfo_lists_the_layers(served, client):
    out = subprocess.run(
        ["ogrinfo", "-ro", "-q", f"OAPIF:{served}/"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    listed = {c["id"] for c in client.get("/collections").json()["collections"]}
    for layer in listed:
        assert f": {layer} " in out.stdout, layer


def test_ogr2ogr_copies_a_layer_intact(served, engine, tmp_path):
    target = tmp_path / "facilities.gpkg"
    out = subprocess.run(
        [
            "ogr2ogr",
            "-f",
            "GPKG",
            str(target),
            f"OAPIF:{served}/",
            "facilities",
            "-oo",
            "PAGE_SIZE=1000",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    # GDAL numbers features 1..N in the order it read them; we page in id order, so the n-th
    # copied feature is the n-th feature by id
    copied = pyogrio.read_dataframe(target, fid_as_index=True).sort_index()
    with engine.connect() as conn:
        source = gpd.read_postgis(
            "SELECT id, kind, name, capacity, geom FROM facilities ORDER BY id", conn
        )
    assert len(copied) == len(source)
    copied = copied.reset_index(drop=True)
    assert (copied["kind"] == source["kind"]).all()
    assert (copied["name"] == source["name"]).all()
    assert (
        copied["capacity"].fillna(-1).astype(int).tolist()
        == source["capacity"].fillna(-1).astype(int).tolist()
    )
    assert shapely.distance(copied.geometry.values, source.geometry.values).max() < 1e-7


GDAL_TYPES = {
    "integer": {"int32", "int64", "int16", "bool"},
    "number": {"float64", "float32"},
    "string": {"object"},
    "boolean": {"bool", "int32", "int16"},
    "date": {"datetime64[ms]", "datetime64[D]", "object"},
    "date-time": {"datetime64[ms]", "datetime64[ms, UTC]", "object"},
}


def _schema_kind(entry: dict) -> str:
    kind = entry.get("type")
    kind = next(k for k in kind if k != "null") if isinstance(kind, list) else kind
    return entry.get("format") if entry.get("format") in ("date", "date-time") else kind


def test_ogr2ogr_copies_every_layer_with_the_types_of_its_schema(served, client, people, tmp_path):
    """As an administrator (every layer), through GDAL's own OAPIF client: counts equal
    numberMatched, and each copied field's type is the one /collections/{id}/schema states."""
    import os

    admin = people.headers("gdal_admin", "admin")
    target = tmp_path / "everything.gpkg"
    env = dict(os.environ, GDAL_HTTP_HEADERS=f"Authorization: {admin['Authorization']}")
    out = subprocess.run(
        ["ogr2ogr", "-f", "GPKG", str(target), f"OAPIF:{served}/", "-oo", "PAGE_SIZE=5000"],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    copied = {name for name, _ in pyogrio.list_layers(target)}
    listed = client.get("/collections", headers=admin).json()["collections"]
    assert {c["id"] for c in listed} <= copied
    for c in listed:
        matched = client.get(f"/collections/{c['id']}/items?limit=1", headers=admin).json()[
            "numberMatched"
        ]
        info = pyogrio.read_info(target, layer=c["id"])
        assert info["features"] == matched, c["id"]
        schema = client.get(f"/collections/{c['id']}/schema", headers=admin).json()
        types = dict(zip(info["fields"], info["dtypes"], strict=True))
        for name, entry in schema["properties"].items():
            if name in types and "x-ogc-role" not in entry:
                kind = _schema_kind(entry)
                assert types[name] in GDAL_TYPES.get(kind, {types[name]}), (c["id"], name, kind)
    facilities = pyogrio.read_info(target, layer="facilities")
    dtypes = dict(zip(facilities["fields"], facilities["dtypes"], strict=True))
    assert dtypes["area_m2"] == "float64"  # the first page's nulls no longer make it a string


def test_a_gdal_where_is_evaluated_by_the_server(db_url, engine, tmp_path):
    """GDAL 3.6 sends its -where as filter-lang=cql-text: the server filters, GDAL does not."""
    from sqlalchemy import text

    from tests.conftest import running_server

    target = tmp_path / "kindergartens.gpkg"
    with running_server(db_url, log_level="info") as (base, proc):
        out = subprocess.run(
            [
                "ogr2ogr",
                "-f",
                "GPKG",
                str(target),
                f"OAPIF:{base}/",
                "facilities",
                "-where",
                "kind = 'kindergarten'",
                "-oo",
                "PAGE_SIZE=1000",
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        proc.terminate()
        log = proc.communicate(timeout=15)[0]
    assert out.returncode == 0, out.stderr
    with engine.connect() as conn:
        expected = conn.execute(
            text("SELECT count(*) FROM facilities WHERE kind = 'kindergarten'")
        ).scalar()
    assert pyogrio.read_info(target)["features"] == expected > 0
    items = [line for line in log.splitlines() if "/collections/facilities/items" in line]
    filtered = [line for line in items if "filter=" in line and "filter-lang=cql-text" in line]
    assert filtered  # GDAL sent its -where to the server, as cql-text
    # GDAL reads one page to learn the fields; the rest came filtered: no full copy to filter
    assert len(items) - len(filtered) <= 1


def test_gdal_reads_a_layers_vector_tiles_through_its_mvt_driver(served, engine):
    """Debian 12's GDAL 3.6 builds its OGC API driver without vector tiles, so GDAL reads our
    tiles with its MVT driver: a zoom level as a directory, described by ``metadata.json``
    (our TileJSON). Every water feature comes back, with the TileJSON's fields."""
    import re

    from sqlalchemy import text

    out = subprocess.run(
        ["ogrinfo", "-ro", "-al", "-geom=NO", f"MVT:{served}/tiles/water/12"]
        + ["-oo", "TILE_EXTENSION=mvt"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "name: String" in out.stdout and "area_m2: Real" in out.stdout
    seen = {int(n) for n in re.findall(r"mvt_id \(Integer64\) = (\d+)", out.stdout)}
    with engine.connect() as conn:
        ids = set(conn.execute(text("SELECT id FROM water")).scalars())
    assert seen == ids
