"""Vector tiles: what a tile holds is what PostGIS says meets it, a zoom's tiles together lose no
feature at their edges, a caller's tile carries only what the read plan lets them see, and the
map tiles hold their layers."""

from __future__ import annotations

import mapbox_vector_tile
import morecantile
import pytest
from sqlalchemy import text

from tests.conftest import auth

TMS = morecantile.tms.get("WebMercatorQuad")


def decode(data: bytes) -> dict:
    return mapbox_vector_tile.decode(data) if data else {}


def ids_in(tile: dict, layer: str) -> set[int]:
    return {f["id"] for f in tile.get(layer, {}).get("features", [])}


def busiest_tile(engine, table: str, z: int) -> morecantile.Tile:
    """The tile at zoom ``z`` around the densest spot of ``table`` (its median feature)."""
    with engine.connect() as conn:
        lon, lat = conn.execute(
            text(
                f"SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM {table} "
                "ORDER BY id OFFSET (SELECT count(*) / 2 FROM " + table + ") LIMIT 1) s"
            )
        ).one()
    return TMS.tile(lon, lat, z)


def postgis_ids(engine, table: str, t: morecantile.Tile, buffer: float = 64 / 4096) -> set[int]:
    """The ids PostGIS finds meeting the tile (with the tile's buffer), computed independently
    with ST_TileEnvelope."""
    with engine.connect() as conn:
        return set(
            conn.execute(
                text(
                    f"SELECT id FROM {table} WHERE ST_Intersects(ST_Transform(geom, 3857), "
                    "ST_TileEnvelope(:z, :x, :y, margin => :m))"
                ),
                {"z": t.z, "x": t.x, "y": t.y, "m": buffer},
            ).scalars()
        )


@pytest.mark.parametrize("z", [14, 16])
@pytest.mark.parametrize("table", ["buildings", "facilities", "roads"])
def test_a_tile_holds_exactly_the_features_that_meet_it(client, engine, tokens, table, z):
    t = busiest_tile(engine, table, z)
    answer = client.get(f"/tiles/{table}/{t.z}/{t.x}/{t.y}.mvt", headers=auth(tokens, "admin"))
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    got = ids_in(decode(answer.content), table)
    assert got == postgis_ids(engine, table, t)
    assert int(answer.headers["x-tile-features"]) == len(got) > 0


def test_the_tiles_of_a_zoom_together_lose_no_feature_at_their_edges(client, engine, tokens):
    with engine.connect() as conn:
        west, south, east, north = conn.execute(
            text(
                "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
                "(SELECT ST_Extent(geom) e FROM buildings WHERE grid_code = "
                "(SELECT grid_code FROM buildings GROUP BY 1 ORDER BY count(*) DESC LIMIT 1)) s"
            )
        ).one()
        expected = set(
            conn.execute(
                text(
                    "SELECT id FROM buildings WHERE geom && ST_MakeEnvelope(:w, :s, :e, :n, 4490)"
                ),
                {"w": west, "s": south, "e": east, "n": north},
            ).scalars()
        )
    seen: set[int] = set()
    tiles = list(TMS.tiles(west, south, east, north, [15]))
    assert len(tiles) > 1  # the grid's buildings straddle tile edges
    for t in tiles:
        answer = client.get(
            f"/tiles/buildings/{t.z}/{t.x}/{t.y}.mvt", headers=auth(tokens, "admin")
        )
        seen |= ids_in(decode(answer.content), "buildings")
    assert expected <= seen


def test_a_public_tile_carries_no_personal_or_internal_field_and_no_withheld_row(client, engine):
    t = busiest_tile(engine, "organisations", 14)
    tile = decode(client.get(f"/tiles/organisations/{t.z}/{t.x}/{t.y}.mvt").content)
    properties = {k for f in tile["organisations"]["features"] for k in f["properties"]}
    assert properties and not properties & {"legal_person", "contact_phone"}
    with engine.connect() as conn:
        lon, lat = conn.execute(
            text(
                "SELECT ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) FROM assets "
                "WHERE status = 'entered' ORDER BY id LIMIT 1"
            )
        ).one()
    t = TMS.tile(lon, lat, 15)
    tile = decode(client.get(f"/tiles/assets/{t.z}/{t.x}/{t.y}.mvt").content)
    for feature in tile.get("assets", {}).get("features", []):
        props = feature["properties"]
        assert props["status"] == "promoted"
        assert not set(props) & {"reserve_price_wan", "contact_name", "contact_phone", "notes"}


def test_tiles_carry_no_personal_field_even_for_those_who_may_read_it(client, engine, tokens):
    """Personal data is read through the features, with a purpose and an audit entry, never
    through a map tile: a safety officer's organisation tile has no legal person either."""
    t = busiest_tile(engine, "organisations", 14)
    answer = client.get(
        f"/tiles/organisations/{t.z}/{t.x}/{t.y}.mvt", headers=auth(tokens, "safety")
    )
    properties = {
        k for f in decode(answer.content)["organisations"]["features"] for k in f["properties"]
    }
    assert "legal_person" not in properties and "name" in properties


def test_a_grid_worker_sees_only_their_own_grid_in_a_residents_tile(client, engine, tokens, grids):
    with engine.connect() as conn:
        lon, lat = conn.execute(
            text("SELECT ST_X(geom), ST_Y(geom) FROM residents WHERE grid_code = :g LIMIT 1"),
            {"g": grids["A"]},
        ).one()
    t = TMS.tile(lon, lat, 13)
    answer = client.get(f"/tiles/residents/{t.z}/{t.x}/{t.y}.mvt", headers=auth(tokens, "worker_a"))
    features = decode(answer.content)["residents"]["features"]
    assert features and {f["properties"]["grid_code"] for f in features} == {grids["A"]}
    assert client.get(f"/tiles/residents/{t.z}/{t.x}/{t.y}.mvt").status_code == 404


def test_a_map_tile_holds_its_layers_and_tilejson_describes_them(client, engine, tokens):
    t = busiest_tile(engine, "hazards", 13)
    answer = client.get(f"/maps/safety/tiles/{t.z}/{t.x}/{t.y}.mvt", headers=auth(tokens, "safety"))
    assert answer.status_code == 200
    tile = decode(answer.content)
    assert {"buildings", "hazards", "roads"} <= set(tile)
    tilejson = client.get("/maps/safety/tilejson.json", headers=auth(tokens, "safety")).json()
    assert tilejson["tilejson"] == "3.0.0"
    assert tilejson["tiles"][0].endswith("/maps/safety/tiles/{z}/{x}/{y}.mvt")
    layers = {v["id"]: v for v in tilejson["vector_layers"]}
    assert {"buildings", "hazards"} <= set(layers) and "floors" in layers["buildings"]["fields"]
    assert client.get("/maps/nowhere/tilejson.json").status_code == 404


def test_a_map_tile_leaves_a_layer_out_below_its_zoom_and_the_style_agrees(client, engine):
    from tiles.maps import MINZOOM

    start = MINZOOM["buildings"]
    for z, carried in ((start - 1, False), (start, True)):
        t = busiest_tile(engine, "buildings", z)
        tile = decode(client.get(f"/maps/base/tiles/{t.z}/{t.x}/{t.y}.mvt").content)
        assert ("buildings" in tile) is carried
        assert "roads" in tile or "landuse_parcels" in tile
    style = client.get("/maps/base/style.json").json()
    drawn = [s for s in style["layers"] if s.get("source-layer") == "buildings"]
    assert drawn and all(s["minzoom"] == start for s in drawn)
    assert f"{start}级起显示" in client.get("/maps/base").text  # the legend says so too


def test_a_tile_fuller_than_the_cap_holds_the_first_features_by_id_and_says_so(engine):
    from geo.policy.roles import ANONYMOUS
    from layers.catalogue import get_layer
    from tiles.matrix import Tile
    from tiles.vector import layer_tiles

    t = busiest_tile(engine, "buildings", 14)
    meeting = sorted(postgis_ids(engine, "buildings", t))
    assert len(meeting) > 7
    with engine.connect() as conn:
        layer = get_layer(conn, "buildings", ANONYMOUS)
        drawn = layer_tiles(conn, [(layer, layer.plan(ANONYMOUS))], Tile(t.z, t.x, t.y), 7)
        whole = layer_tiles(conn, [(layer, layer.plan(ANONYMOUS))], Tile(t.z, t.x, t.y))
    capped = drawn.layers[0]
    assert capped.truncated and capped.features == 7
    assert ids_in(decode(capped.data), "buildings") == set(meeting[:7])
    assert not whole.layers[0].truncated and whole.layers[0].features == len(meeting)


def test_a_held_tile_is_not_served_once_its_layer_is_closed_or_changed(client, engine):
    """A held tile is answered on a short path, under the catalogue entry this process
    remembers; a change to that entry (here: the layer closed to the public) is seen at once."""
    t = busiest_tile(engine, "water", 12)
    path = f"/tiles/water/{t.z}/{t.x}/{t.y}.mvt"
    first = client.get(path)
    again = client.get(path)
    assert first.status_code == again.status_code == 200
    assert again.headers["x-tile-cache"] == "hit" and again.content == first.content
    try:
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE layer_catalogue SET opening_level = 'closed' WHERE id = 'water'")
            )
        assert client.get(path).status_code == 404
        on_map = client.get(f"/maps/base/tiles/{t.z}/{t.x}/{t.y}.mvt")
        assert on_map.status_code == 200 and "water" not in decode(on_map.content)
    finally:
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE layer_catalogue SET opening_level = 'open' WHERE id = 'water'")
            )
    back = client.get(path)
    assert back.status_code == 200 and back.content == first.content


def test_low_zoom_points_are_thinned_and_say_how_many_they_stand_for(client, engine, tokens):
    t = busiest_tile(engine, "sensors", 10)
    tile = decode(
        client.get(f"/tiles/sensors/{t.z}/{t.x}/{t.y}.mvt", headers=auth(tokens, "admin")).content
    )
    features = tile["sensors"]["features"]
    counts = [f["properties"]["point_count"] for f in features]
    assert sum(counts) == len(postgis_ids(engine, "sensors", t))
    assert len(features) < sum(counts)  # thinned: some stand for several


def test_tiles_are_compressed_revalidated_and_bounded(client, engine, tokens):
    t = busiest_tile(engine, "buildings", 14)
    path = f"/tiles/buildings/{t.z}/{t.x}/{t.y}.mvt"
    raw = client.get(path, headers={"Accept-Encoding": "gzip"})
    assert raw.headers["content-encoding"] == "gzip"
    assert "private" in raw.headers["cache-control"] and "Authorization" in raw.headers["vary"]
    again = client.get(path, headers={"If-None-Match": raw.headers["etag"]})
    assert again.status_code == 304
    assert client.get("/tiles/buildings/23/0/0.mvt").status_code == 400  # zoom 0–22
    assert client.get("/tiles/buildings/3/8/0.mvt").status_code == 404
    assert client.get("/tiles/no_such_layer/3/0/0.mvt").status_code == 404


# --- the cache never goes stale ------------------------------------------------------------------

GEOJSON = {"Content-Type": "application/geo+json"}
ZOOMS = (12, 14, 16)


def _fetch(client, path: str, headers: dict) -> tuple[dict, str]:
    answer = client.get(path, headers=headers)
    assert answer.status_code == 200, answer.text
    return decode(answer.content), answer.headers["x-tile-cache"]


def _patch(client, tokens, rtype: str, rid: int, geometry: dict) -> None:
    import json

    admin = auth(tokens, "admin")
    tag = client.get(f"/records/{rtype}/{rid}", headers=admin).headers["etag"]
    answer = client.patch(
        f"/records/{rtype}/{rid}",
        headers=admin | GEOJSON | {"If-Match": tag},
        content=json.dumps({"geometry": geometry}),
    )
    assert answer.status_code == 200, answer.text


def _in_tile(t: morecantile.Tile, lon: float, lat: float) -> tuple[int, int]:
    """Where a lon/lat falls on the tile's 4096 grid (y up, as the decoder gives it)."""
    west, south, east, north = TMS.xy_bounds(t)
    x, y = TMS.xy(lon, lat)
    return round((x - west) / (east - west) * 4096), round((y - south) / (north - south) * 4096)


def _close(a, b) -> bool:
    return abs(a[0] - b[0]) <= 1 and abs(a[1] - b[1]) <= 1


def _feature(tile: dict, layer: str, fid: int) -> dict | None:
    return next((f for f in tile.get(layer, {}).get("features", []) if f["id"] == fid), None)


def test_a_moved_point_shows_where_it_is_now_in_every_cached_tile(client, engine, tokens):
    """Tiles of the old and the new position, cached before the edit at three zooms (a layer's
    and a map's), show the new state as soon as the edit returns; a tile far away stays cached."""
    with engine.connect() as conn:
        fid, lon, lat, grid = conn.execute(
            text(
                "SELECT f.id, ST_X(f.geom), ST_Y(f.geom), f.grid_code FROM facilities f "
                "ORDER BY f.id LIMIT 1"
            )
        ).one()
        new_lon, new_lat = conn.execute(  # elsewhere in the same grid
            text(
                "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM grids "
                "WHERE code = :g) s"
            ),
            {"g": grid},
        ).one()
    headers = auth(tokens, "admin")
    paths = set()
    for z in ZOOMS:
        for x_, y_ in ((lon, lat), (new_lon, new_lat)):
            t = TMS.tile(x_, y_, z)
            paths.add(f"/tiles/facilities/{t.z}/{t.x}/{t.y}.mvt")
            paths.add(f"/maps/checkup/tiles/{t.z}/{t.x}/{t.y}.mvt")
    far = TMS.tile(lon + 0.3, lat + 0.3, 12)
    far_path = f"/tiles/facilities/{far.z}/{far.x}/{far.y}.mvt"
    for path in (*paths, far_path):
        _fetch(client, path, headers)
        assert _fetch(client, path, headers)[1] == "hit"
    _patch(client, tokens, "facilities", fid, {"type": "Point", "coordinates": [new_lon, new_lat]})
    for z in ZOOMS:
        old, new = TMS.tile(lon, lat, z), TMS.tile(new_lon, new_lat, z)
        for kind in ("/tiles/facilities", "/maps/checkup/tiles"):
            at_new, _ = _fetch(client, f"{kind}/{new.z}/{new.x}/{new.y}.mvt", headers)
            drawn = _feature(at_new, "facilities", fid)["geometry"]["coordinates"]
            assert _close(drawn, _in_tile(new, new_lon, new_lat)), (kind, z, drawn)
            if (old.x, old.y) != (new.x, new.y):
                at_old, _ = _fetch(client, f"{kind}/{old.z}/{old.x}/{old.y}.mvt", headers)
                assert _feature(at_old, "facilities", fid) is None, (kind, z)
    assert _fetch(client, far_path, headers)[1] == "hit"


def test_a_reshaped_polygon_is_drawn_in_its_new_shape(client, engine, tokens):
    with engine.connect() as conn:
        bid, lon, lat = conn.execute(
            text(
                "SELECT id, ST_X(ST_Centroid(geom)), ST_Y(ST_Centroid(geom)) FROM buildings "
                "ORDER BY id LIMIT 1"
            )
        ).one()
    headers = auth(tokens, "admin")
    before = {}
    for z in ZOOMS:
        t = TMS.tile(lon, lat, z)
        path = f"/tiles/buildings/{t.z}/{t.x}/{t.y}.mvt"
        _fetch(client, path, headers)
        tile, state = _fetch(client, path, headers)
        assert state == "hit"
        before[z] = _feature(tile, "buildings", bid)["geometry"]
    d = 0.0002  # a square of about 38 × 43 m around the old centre
    square = [[lon - d, lat - d], [lon + d, lat - d], [lon + d, lat + d], [lon - d, lat + d]]
    _patch(
        client, tokens, "buildings", bid, {"type": "Polygon", "coordinates": [square + [square[0]]]}
    )
    for z in ZOOMS:
        t = TMS.tile(lon, lat, z)
        tile, state = _fetch(client, f"/tiles/buildings/{t.z}/{t.x}/{t.y}.mvt", headers)
        assert state == "miss"
        after = _feature(tile, "buildings", bid)["geometry"]
        assert after != before[z]
        corners = {tuple(p) for p in after["coordinates"][0]}
        assert any(_close(c, _in_tile(t, lon + d, lat + d)) for c in corners), (z, corners)


def test_an_edit_through_one_worker_is_never_answered_stale_by_another(db_url, engine, tokens):
    from tests.conftest import running_server

    with engine.connect() as conn:
        fid, lon, lat = conn.execute(
            text("SELECT id, ST_X(geom), ST_Y(geom) FROM facilities ORDER BY id OFFSET 5 LIMIT 1")
        ).one()
    t = TMS.tile(lon, lat, 15)
    with running_server(db_url, workers=2) as (base, _):
        _edit_and_read_back(base, auth(tokens, "admin"), fid, lon, lat, t)


def _edit_and_read_back(base: str, headers: dict, fid: int, lon: float, lat: float, t) -> None:
    import json

    import httpx

    path = f"/tiles/facilities/{t.z}/{t.x}/{t.y}.mvt"
    # no kept-alive connection: each request may land on either worker
    fresh_connections = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(base_url=base, timeout=30, limits=fresh_connections) as http:
        for _ in range(8):  # both workers draw and cache it
            assert http.get(path, headers=headers).status_code == 200
        for step in range(1, 4):
            moved = (lon + step * 0.0001, lat)
            tag = http.get(f"/records/facilities/{fid}", headers=headers).headers["etag"]
            edit = http.patch(
                f"/records/facilities/{fid}",
                headers=headers | GEOJSON | {"If-Match": tag},
                content=json.dumps({"geometry": {"type": "Point", "coordinates": list(moved)}}),
            )
            assert edit.status_code == 200, edit.text
            for _ in range(8):  # answered by either worker: always the new position
                tile = decode(http.get(path, headers=headers).content)
                drawn = _feature(tile, "facilities", fid)["geometry"]["coordinates"]
                assert _close(drawn, _in_tile(t, *moved)), (step, drawn)


def test_seeding_fills_the_cache_the_service_reads(db_url, tmp_path):
    """``onemap tiles seed`` draws every public tile of a map, with progress; the service then
    answers those tiles from the cache."""
    import os
    import subprocess
    import sys

    from fastapi.testclient import TestClient

    from api.app import create_app
    from geo.settings import ServiceSettings
    from tests.conftest import settings_for

    env = os.environ | {"DATABASE_URL": db_url, "ONEMAP_TILE_CACHE": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", "tiles", "seed", "--map", "base", "--zoom", "9-10"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "tiles drawn" in done.stderr
    settings = settings_for(
        db_url, service=ServiceSettings(allowed_hosts="testserver", tile_cache=tmp_path)
    )
    with TestClient(create_app(settings)) as fresh:
        tilejson = fresh.get("/maps/base/tilejson.json").json()
        west, south, east, north = tilejson["bounds"]
        t = TMS.tile((west + east) / 2, (south + north) / 2, 10)
        answer = fresh.get(f"/maps/base/tiles/{t.z}/{t.x}/{t.y}.mvt")
        assert answer.headers["x-tile-cache"] == "hit"
        held = decode(answer.content)
        assert {"landuse_parcels", "roads"} <= set(held) and "buildings" not in held  # z10 < 13


# --- OGC API – Tiles -----------------------------------------------------------------------------


def test_ogc_api_tiles_lead_from_a_collection_to_its_tiles(client, engine, tokens):
    """collection → tilesets → tileset → tile matrix set and the templated tile link, whose tile
    is the same as /tiles' (row = y, column = x)."""
    headers = auth(tokens, "admin")
    collection = client.get("/collections/buildings", headers=headers).json()
    rel = "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector"
    tilesets_url = next(link["href"] for link in collection["links"] if link["rel"] == rel)
    tilesets = client.get(tilesets_url, headers=headers).json()["tilesets"]
    assert tilesets[0]["dataType"] == "vector"
    tileset_url = next(link["href"] for link in tilesets[0]["links"] if link["rel"] == "self")
    tileset = client.get(tileset_url, headers=headers).json()
    scheme = next(
        link["href"]
        for link in tileset["links"]
        if link["rel"] == "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme"
    )
    tms = client.get(scheme).json()
    assert tms["id"] == "WebMercatorQuad" and len(tms["tileMatrices"]) == 25
    assert tms["tileMatrices"][14]["matrixWidth"] == 2**14
    template = next(link["href"] for link in tileset["links"] if link["rel"] == "item")
    t = busiest_tile(engine, "buildings", 15)
    url = (
        template.replace("{tileMatrix}", str(t.z))
        .replace("{tileRow}", str(t.y))
        .replace("{tileCol}", str(t.x))
    )
    via_ogc = client.get(url, headers=headers)
    via_xyz = client.get(f"/tiles/buildings/{t.z}/{t.x}/{t.y}.mvt", headers=headers)
    assert via_ogc.status_code == 200 and via_ogc.content == via_xyz.content
    assert ids_in(decode(via_ogc.content), "buildings")
    conformance = client.get("/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt" in conformance
    assert client.get("/tileMatrixSets/NoSuchSet").status_code == 404


def test_an_ingest_makes_every_cached_tile_of_its_layer_stale(client, engine, tokens, tmp_path):
    """A departmental layer replaced by ingest is drawn anew: its cached tiles are stale the
    moment the ingest commits (the swap notes the whole layer)."""
    import csv

    from layers.ingest import ingest

    def shelters(lon: float) -> None:
        path = tmp_path / f"shelters-{lon}.csv"
        with path.open("w", encoding="utf-8-sig", newline="") as handle:
            writer = csv.writer(handle)
            # every declared number filled, so that the layer leaves no all-empty column behind
            writer.writerow(["编号", "名称", "经度", "纬度", "可容纳人数", "有效避难面积"])
            writer.writerow(["T1", "瓦片测试避难所", f"{lon:.6f}", "31.650000", "100", "2500"])
        with engine.begin() as conn:
            ingest(conn, path, "emergency_shelters", "区应急管理局", "EPSG:4490")

    shelters(119.0300)
    t = TMS.tile(119.0300, 31.65, 16)
    path = f"/tiles/emergency_shelters/{t.z}/{t.x}/{t.y}.mvt"
    headers = auth(tokens, "admin")
    first, _ = _fetch(client, path, headers)
    assert _fetch(client, path, headers)[1] == "hit"
    shelters(119.0302)  # about 19 m east, the same z16 tile
    after, state = _fetch(client, path, headers)
    assert state == "miss"
    drawn = after["emergency_shelters"]["features"][0]["geometry"]["coordinates"]
    assert _close(drawn, _in_tile(t, 119.0302, 31.65))
    assert drawn != first["emergency_shelters"]["features"][0]["geometry"]["coordinates"]


def test_onemap_map_export_writes_a_self_contained_map(db_url, tmp_path):
    import os
    import re
    import subprocess
    import sys

    out = tmp_path / "clinics.html"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "api.cli",
            "map",
            "export",
            "facilities",
            "--out",
            str(out),
            "--filter",
            "kind='clinic'",
        ],
        env=os.environ | {"DATABASE_URL": db_url},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    page = out.read_text(encoding="utf-8")
    assert "L.map" in page
    assert '"kind": "clinic"' in page and '"kind": "kindergarten"' not in page  # the filter
    assert re.findall(r'<(?:script|link)[^>]+(?:src|href)="https?://', page) == []
