"""OGC API – Features over the demo city: paging, bbox and CQL2 against independent shapely
counts, CRS output, refusals as problem+json, and personal data never shown to anonymous callers."""

from __future__ import annotations

import geopandas as gpd
import pytest
import shapely
from shapely.geometry import box
from sqlalchemy import text

from layers.catalogue import Layer, refresh, register

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def ten_thousand(engine):
    """A 10,000-point departmental layer, registered in the catalogue like any other."""
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS layers.paging_points"))
        conn.execute(
            text("""
            CREATE TABLE layers.paging_points AS
            SELECT i::bigint AS id, 'p' || i AS label,
                   ST_SetSRID(ST_MakePoint(118.9 + (i % 100) * 0.003, 31.45 + (i / 100) * 0.003), 4490)::geometry(Point, 4490) AS geom
            FROM generate_series(1, 10000) i""")
        )
        conn.execute(text("ALTER TABLE layers.paging_points ADD PRIMARY KEY (id)"))
        register(
            conn,
            Layer(
                "paging_points",
                "layers.paging_points",
                "分页测试点",
                "Paging points",
                "test",
                "10,000 points for the paging test",
            ),
        )
        refresh(conn, "paging_points")
    yield "paging_points"
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM layer_catalogue WHERE id = 'paging_points'"))
        conn.execute(text("DROP TABLE layers.paging_points"))


@pytest.mark.parametrize("limit", [1000, 777])
def test_paging_returns_every_feature_exactly_once(client, ten_thousand, limit):
    url = f"/collections/{ten_thousand}/items?limit={limit}"
    seen: list[int] = []
    pages = 0
    while url:
        body = client.get(url).json()
        assert body["numberMatched"] == 10_000
        assert body["numberReturned"] == len(body["features"])
        seen.extend(f["id"] for f in body["features"])
        url = next((link["href"] for link in body["links"] if link["rel"] == "next"), None)
        pages += 1
    assert sorted(seen) == list(range(1, 10_001))
    assert pages == -(-10_000 // limit)


def test_prev_link_goes_back_one_page(client, ten_thousand):
    body = client.get(f"/collections/{ten_thousand}/items?limit=100&offset=300").json()
    prev = next(link["href"] for link in body["links"] if link["rel"] == "prev")
    back = client.get(prev).json()
    assert [f["id"] for f in back["features"]] == list(range(201, 301))


@pytest.fixture(scope="module")
def buildings(engine):
    with engine.connect() as conn:
        return gpd.read_postgis(
            "SELECT id, use, floors, height_m, year_built, geom FROM buildings", conn
        )


BOXES = [
    (119.0, 31.6, 119.05, 31.66),
    (118.85, 31.38, 119.24, 31.8),
    (119.03, 31.64, 119.04, 31.65),
    (118.0, 30.0, 118.1, 30.1),
]


@pytest.mark.parametrize("bbox", BOXES)
def test_bbox_counts_match_shapely(client, buildings, bbox):
    expected = int(shapely.intersects(buildings.geometry.values, box(*bbox)).sum())
    body = client.get(
        "/collections/buildings/items", params={"bbox": ",".join(map(str, bbox)), "limit": 1}
    ).json()
    assert body["numberMatched"] == expected


POLYGON = "POLYGON((119 31.6, 119.1 31.6, 119.1 31.7, 119 31.7, 119 31.6))"


@pytest.mark.parametrize(
    ("cql", "expected"),
    [
        ("use = 'industrial'", lambda b: b.use == "industrial"),
        (
            "floors > 10 AND height_m <= 100",
            lambda b: (b.floors > 10) & (b.height_m.astype(float) <= 100),
        ),
        ("use IN ('commercial', 'public')", lambda b: b.use.isin(["commercial", "public"])),
        ("year_built BETWEEN 1990 AND 1999", lambda b: b.year_built.between(1990, 1999)),
        (
            "NOT (use = 'residential') OR floors >= 30",
            lambda b: (b.use != "residential") | (b.floors >= 30),
        ),
        (
            f"S_INTERSECTS(geom, {POLYGON})",
            lambda b: shapely.intersects(b.geometry.values, shapely.from_wkt(POLYGON)),
        ),
        (
            f"S_WITHIN(geom, {POLYGON}) AND use = 'residential'",
            lambda b: (
                shapely.within(b.geometry.values, shapely.from_wkt(POLYGON))
                & (b.use == "residential")
            ),
        ),
    ],
)
def test_cql2_counts_match_shapely(client, buildings, cql, expected):
    body = client.get("/collections/buildings/items", params={"filter": cql, "limit": 1}).json()
    assert body["numberMatched"] == int(expected(buildings).sum()), body


def test_like_filter_on_names(client, engine):
    with engine.connect() as conn:
        expected = conn.execute(
            text("SELECT count(*) FROM facilities WHERE name LIKE '%幼儿园%'")
        ).scalar()
    body = client.get(
        "/collections/facilities/items", params={"filter": "name LIKE '%幼儿园%'", "limit": 1}
    ).json()
    assert body["numberMatched"] == expected > 0


def test_datetime_interval(client, engine):
    with engine.connect() as conn:
        expected = conn.execute(
            text("SELECT count(*) FROM hazards WHERE found_at >= '2026-09-01T00:00:00Z'")
        ).scalar()
    body = client.get(
        "/collections/hazards/items", params={"datetime": "2026-09-01T00:00:00Z/..", "limit": 1}
    ).json()
    assert body["numberMatched"] == expected > 0


def test_sortby_and_properties(client, buildings):
    body = client.get(
        "/collections/buildings/items",
        params={"sortby": "-height_m", "properties": "height_m,use", "limit": 3},
    ).json()
    heights = [f["properties"]["height_m"] for f in body["features"]]
    assert heights == sorted(buildings.height_m.astype(float), reverse=True)[:3]
    assert set(body["features"][0]["properties"]) == {"height_m", "use"}


@pytest.mark.parametrize(
    ("crs", "expected_xy"),
    [
        ("http://www.opengis.net/def/crs/OGC/1.3/CRS84", lambda lon, lat: (lon, lat)),
        (
            "http://www.opengis.net/def/crs/EPSG/0/4490",
            lambda lon, lat: (lat, lon),
        ),  # CGCS2000 axis order
        ("http://www.opengis.net/def/crs/EPSG/0/3857", None),
    ],
)
def test_output_crs(client, engine, crs, expected_xy):
    from pyproj import Transformer

    with engine.connect() as conn:
        lon, lat = conn.execute(
            text("SELECT ST_X(geom), ST_Y(geom) FROM facilities WHERE id = 1")
        ).one()
    response = client.get("/collections/facilities/items/1", params={"crs": crs})
    assert response.headers["content-crs"] == f"<{crs}>"
    x, y = response.json()["geometry"]["coordinates"]
    if expected_xy is None:
        ex, ey = Transformer.from_crs(4326, 3857, always_xy=True).transform(lon, lat)
        assert (x, y) == pytest.approx((ex, ey), abs=0.01)
    else:
        assert (x, y) == pytest.approx(expected_xy(lon, lat), abs=1e-7)


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/collections/buildings/items?filter=height_m >> 3", 400),
        ("/collections/buildings/items?filter=heigth_m > 3", 400),
        ("/collections/buildings/items?filter=S_INTERSECTS(geom, POLYGON((1 2, 3", 400),
        ("/collections/buildings/items?bbox=200,0,210,10", 400),
        ("/collections/buildings/items?bbox=119,31,118,32", 400),
        ("/collections/buildings/items?bbox=119,31,120", 400),
        ("/collections/buildings/items?bbox=a,b,c,d", 400),
        ("/collections/buildings/items?limit=0", 400),
        ("/collections/buildings/items?limit=100000", 400),
        ("/collections/buildings/items?sortby=nosuchfield", 400),
        ("/collections/buildings/items?properties=nosuchfield", 400),
        ("/collections/buildings/items?crs=EPSG:9999", 400),
        ("/collections/buildings/items?datetime=yesterday", 400),
        ("/collections/buildings/items?filter-lang=sql&filter=1=1", 400),
        ("/collections/nosuchlayer/items", 404),
        ("/collections/buildings/items/999999999", 404),
    ],
)
def test_bad_requests_are_problems(client, path, status):
    response = client.get(path)
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status and len(body["detail"]) > 10


def test_personal_fields_never_reach_anonymous_callers(client, engine):
    with engine.connect() as conn:
        phones = {
            r[0]
            for r in conn.execute(
                text("SELECT contact_phone FROM organisations WHERE contact_phone IS NOT NULL")
            )
        }
        people = {r[0] for r in conn.execute(text("SELECT legal_person FROM organisations"))}
        asset_phones = {r[0] for r in conn.execute(text("SELECT contact_phone FROM assets"))}
    body = client.get("/collections/organisations/items", params={"limit": 10_000}).json()
    assert len(body["features"]) == len(phones)
    for f in body["features"]:
        p = f["properties"]
        assert p["contact_phone"] not in phones and p["contact_phone"][3:7] == "****"
        assert p["legal_person"] not in people or len(p["legal_person"]) == 1
        assert set(p["legal_person"][1:]) <= {"*"}
    html = client.get("/collections/organisations/items", params={"limit": 500, "f": "html"}).text
    assert not any(phone in html for phone in phones)
    assets = client.get("/collections/assets/items", params={"limit": 1000}).text
    assert not any(phone in assets for phone in asset_phones)
    assert "reserve_price_wan" not in assets and "contact_name" not in assets
    # closed layer: not listed, not readable, not filterable by personal fields
    assert "residents" not in [c["id"] for c in client.get("/collections").json()["collections"]]
    assert client.get("/collections/residents/items").status_code == 404
    assert (
        client.get(
            "/collections/organisations/items", params={"filter": "contact_phone LIKE '13%'"}
        ).status_code
        == 400
    )


def test_public_sees_only_promoted_assets(client, engine):
    with engine.connect() as conn:
        promoted = conn.execute(
            text("SELECT count(*) FROM assets WHERE status = 'promoted'")
        ).scalar()
    body = client.get("/collections/assets/items", params={"limit": 1000}).json()
    assert body["numberMatched"] == promoted == 50
    assert (
        client.get("/collections/assets/items", params={"filter": "status = 'entered'"}).json()[
            "numberMatched"
        ]
        == 0
    )


def test_html_renderings(client):
    for path in (
        "/",
        "/conformance",
        "/collections",
        "/collections/buildings",
        "/collections/buildings/items",
        "/collections/buildings/items/1",
        "/collections/buildings/queryables",
    ):
        page = client.get(path, headers={"Accept": "text/html"})
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html"), (
            path
        )
        assert "一张图" in page.text


def test_queryables_hide_what_may_not_be_filtered(client):
    props = client.get("/collections/organisations/queryables").json()["properties"]
    assert "kind" in props and "contact_phone" not in props and "legal_person" not in props


def _signed_area(ring) -> float:
    pairs = zip(ring[:-1], ring[1:], strict=True)
    return sum(x0 * y1 - x1 * y0 for (x0, y0, *_), (x1, y1, *_) in pairs) / 2


def test_every_served_polygon_winds_as_rfc_7946_says(client, people):
    """Exterior rings counter-clockwise, holes clockwise, in every polygon of every layer served."""
    admin = people.headers("winding_admin", "admin")
    layers = client.get("/collections", headers=admin).json()["collections"]
    polygonal = [c["id"] for c in layers if "POLYGON" in (c.get("x-geometry-type") or "")]
    assert {"admin_areas", "grids", "buildings", "landuse_parcels", "water", "parks"} <= set(
        polygonal
    )
    checked = 0
    for layer in polygonal:
        url = f"/collections/{layer}/items?limit=10000"
        while url:
            page = client.get(url, headers=admin).json()
            for feature in page["features"]:
                geometry = feature["geometry"]
                polygons = (
                    [geometry["coordinates"]]
                    if geometry["type"] == "Polygon"
                    else geometry["coordinates"]
                )
                for rings in polygons:
                    # a sliver (under ~1 m², its winding lost to 7-decimal output) has none to check
                    outer = _signed_area(rings[0])
                    assert outer > 0 or abs(outer) < 1e-10, (layer, feature["id"], "exterior")
                    for hole in rings[1:]:
                        inner = _signed_area(hole)
                        assert inner < 0 or abs(inner) < 1e-10, (layer, feature["id"], "hole")
                    checked += 1
            url = next((x["href"] for x in page["links"] if x["rel"] == "next"), None)
    assert checked > 1000


def test_a_clockwise_polygon_written_anywhere_is_stored_counter_clockwise(engine):
    from sqlalchemy import text

    with engine.begin() as conn:
        stored = conn.execute(
            text("""UPDATE parks SET geom = ST_ForcePolygonCW(geom)
                    WHERE id = (SELECT min(id) FROM parks) RETURNING ST_IsPolygonCCW(geom)""")
        ).scalar()
    assert stored is True
