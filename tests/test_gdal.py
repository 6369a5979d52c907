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
