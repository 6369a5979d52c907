"""What clients rely on: OWSLib reads everything as a user would; query parameters, paging,
caching, other origins and the API description behave as the standards say."""

from __future__ import annotations

import pytest
from sqlalchemy import text


def _count(engine, sql: str) -> int:
    with engine.connect() as conn:
        return conn.execute(text(sql)).scalar()


def test_owslib_reads_the_service_as_a_user_would(served, engine):
    from owslib.ogcapi.features import Features

    api = Features(served + "/")
    assert (
        "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core"
        in (api.conformance()["conformsTo"])
    )
    ids = {c["id"] for c in api.collections()["collections"]}
    assert {"buildings", "facilities", "grids"} <= ids and "residents" not in ids
    assert "floors" in api.collection_queryables("buildings")["properties"]
    schema = api.collection_schema("facilities")["properties"]
    assert schema["area_m2"]["type"] == ["number", "null"]
    page = api.collection_items(
        "facilities", bbox=[118.8, 31.3, 119.3, 31.8], filter="kind = 'kindergarten'", limit=5
    )
    expected = _count(engine, "SELECT count(*) FROM facilities WHERE kind = 'kindergarten'")
    assert page["numberMatched"] == expected and page["numberReturned"] == 5
    onward = next(link["href"] for link in page["links"] if link["rel"] == "next")
    assert "filter=" in onward and "after=" in onward


def test_queryables_are_query_parameters_typed_by_their_queryables(client, engine):
    residential = _count(engine, "SELECT count(*) FROM buildings WHERE use = 'residential'")
    one_floor = _count(engine, "SELECT count(*) FROM buildings WHERE floors = 1")
    either = _count(engine, "SELECT count(*) FROM buildings WHERE floors IN (1, 2)")
    assert (
        client.get("/collections/buildings/items?use=residential").json()["numberMatched"]
        == residential
    )
    assert client.get("/collections/buildings/items?floors=1").json()["numberMatched"] == one_floor
    assert (
        client.get("/collections/buildings/items?floors=1&floors=2").json()["numberMatched"]
        == either
    )
    for bad in ("floors=one", "nonsense=1", "geom=POINT(1 2)", "id_hash=abc"):
        r = client.get(f"/collections/buildings/items?{bad}")
        assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"


def test_paging_by_key_is_exact_and_linear(client):
    """Next links continue after the last id: every feature once, whatever the depth."""
    seen = []
    url = "/collections/houses/items?limit=500"
    while url:
        page = client.get(url).json()
        seen.extend(f["id"] for f in page["features"])
        url = next((x["href"] for x in page["links"] if x["rel"] == "next"), None)
        if url:
            assert "after=" in url and "offset=" not in url
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == page["numberMatched"]
    r = client.get("/collections/houses/items?after=10&sortby=-floor")
    assert r.status_code == 400


def test_gdal_36s_older_filter_language_names_are_accepted(client, engine):
    expected = _count(engine, "SELECT count(*) FROM facilities WHERE kind = 'clinic'")
    for lang, value in (
        ("cql-text", "kind = 'clinic'"),
        ("cql-json", '{"op": "=", "args": [{"property": "kind"}, "clinic"]}'),
    ):
        r = client.get(
            "/collections/facilities/items", params={"filter": value, "filter-lang": lang}
        )
        assert r.json()["numberMatched"] == expected, lang


def test_features_and_collections_are_validated_by_etag(client):
    for url in (
        "/collections",
        "/collections/buildings",
        "/collections/buildings/items?limit=3",
        "/collections/buildings/items/1",
    ):
        first = client.get(url)
        etag = first.headers["etag"]
        assert first.headers["cache-control"] == "private, no-cache"
        again = client.get(url, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
        other = client.get(url, headers={"If-None-Match": 'W/"something-else"'})
        assert other.status_code == 200


def test_other_origins_only_when_configured(client, db_url):
    from fastapi.testclient import TestClient

    from api.app import create_app
    from geo.settings import ServiceSettings
    from tests.conftest import settings_for

    preflight = {"Origin": "https://gis.example", "Access-Control-Request-Method": "GET"}
    assert (
        "access-control-allow-origin"
        not in client.options("/collections", headers=preflight).headers
    )
    opened = settings_for(
        db_url,
        service=ServiceSettings(allowed_hosts="testserver", cors_origins="https://gis.example"),
    )
    with TestClient(create_app(opened)) as other:
        allowed = other.options("/collections", headers=preflight)
        refused = other.options(
            "/collections", headers=preflight | {"Origin": "https://evil.example"}
        )
        simple = other.get("/collections", headers={"Origin": "https://gis.example"})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://gis.example"
    assert "access-control-allow-origin" not in refused.headers
    assert simple.headers["access-control-allow-origin"] == "https://gis.example"


def test_the_api_description_agrees_with_itself(client):
    document = client.get("/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    desc = next(link for link in client.get("/").json()["links"] if link["rel"] == "service-desc")
    assert desc["type"].endswith("version=3.1")
    conforms = client.get("/conformance").json()["conformsTo"]
    assert not any(c.endswith("/oas30") for c in conforms)
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert client.get("/docs").status_code == 200


@pytest.mark.parametrize("path", ["/favicon.ico"])
def test_a_favicon_is_served(client, path):
    r = client.get(path)
    assert r.status_code == 200 and r.content.startswith(b"\x89PNG")
