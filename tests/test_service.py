"""The service skeleton: health, the collections list, OpenAPI."""

from __future__ import annotations

from geo.migrate import head_revision
from geo.models import Base


def test_health_reports_database_postgis_and_revision(client):
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["database"] == "reachable"
    assert body["postgis"].startswith("3.")
    assert body["schema_revision"] == head_revision()


def test_health_says_unreachable_when_the_database_is_gone():
    from fastapi.testclient import TestClient

    from api.app import create_app

    url = "postgresql+psycopg://nobody:nothing@127.0.0.1:1/nowhere"
    with TestClient(create_app(url)) as client:
        response = client.get("/health")
    assert response.status_code == 503 and response.json()["database"] == "unreachable"


def test_every_spatial_table_is_a_collection_with_extent_and_count(client, engine):
    from sqlalchemy import text

    with engine.connect() as conn:
        spatial = {
            r[0]
            for r in conn.execute(
                text("SELECT f_table_name FROM geometry_columns WHERE f_table_schema = 'public'")
            )
        }
        counts = {t: conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar() for t in spatial}
    listed = {c["id"]: c for c in client.get("/collections").json()["collections"]}
    closed = {"residents"}  # 禁止开放: not listed to anonymous callers
    assert set(listed) == spatial - closed
    for name, c in listed.items():
        assert c["x-feature-count"] == counts[name]
        minx, miny, maxx, maxy = c["extent"]["spatial"]["bbox"][0]
        assert 118.8 < minx < maxx < 119.3 and 31.3 < miny < maxy < 31.8
    assert spatial <= set(Base.metadata.tables)


def test_openapi_and_docs_are_served(client):
    spec = client.get("/openapi.json").json()
    assert "/collections/{collection_id}/items" in spec["paths"]
    assert "/health" in spec["paths"]
    assert client.get("/docs").status_code == 200


def test_pages_load_nothing_from_the_internet(client):
    """Every script and stylesheet a page names is served by the app itself."""
    import re

    for path in (
        "/docs",
        "/?f=html",
        "/collections?f=html",
        "/collections/buildings/items?f=html&limit=3",
    ):
        page = client.get(path).text
        assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', page)
        assert assets, path
        for asset in assets:
            assert asset.startswith("http://testserver/"), asset
            assert client.get(asset).status_code == 200, asset
