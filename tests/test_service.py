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
    from tests.conftest import settings_for

    url = "postgresql+psycopg://nobody:nothing@127.0.0.1:1/nowhere"
    with TestClient(create_app(settings_for(url))) as client:
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
        # the public sees only promoted assets: the count says what it may read, no more
        counts["assets"] = conn.execute(
            text("SELECT count(*) FROM assets WHERE status = 'promoted'")
        ).scalar()
    listed = {c["id"]: c for c in client.get("/collections").json()["collections"]}
    closed = {"residents"}  # 禁止开放: not listed to anonymous callers
    # working records with a place, served by their own routes to their own roles, not layers:
    # a 119 alarm's answer names people; a patrol is a worker's track
    working = {"fire_alarms", "patrols"}
    assert set(listed) == spatial - closed - working
    for name, c in listed.items():
        assert c["x-feature-count"] == counts[name]
        minx, miny, maxx, maxy = c["extent"]["spatial"]["bbox"][0]
        assert 118.8 < minx < maxx < 119.3 and 31.3 < miny < maxy < 31.8
    assert spatial <= set(Base.metadata.tables)


def test_openapi_and_docs_are_served(client):
    spec = client.get("/openapi.json").json()
    assert "/collections/{collectionId}/items" in spec["paths"]  # as OGC API names it
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


def test_logs_never_carry_personal_numbers(db_url, engine):
    """A real server's log: the access line of an address holding a phone and an identity number
    is written (uvicorn's formatting intact) and masked; a 500 whose traceback holds the SQL
    parameters of a personal filter is logged masked too."""
    import logging

    import httpx
    from sqlalchemy import text

    from api.logs import MaskingFormatter, redact
    from tests.conftest import running_server, vanished_layer

    with engine.connect() as conn:
        phone, id_number = conn.execute(
            text("SELECT phone, id_number FROM residents WHERE phone IS NOT NULL LIMIT 1")
        ).one()
    assert redact(f"id {id_number} phone {phone}") == (
        f"id {id_number[:6]}************ phone {phone[:3]}****{phone[-4:]}"
    )
    assert (
        redact("grid 320117001001002 building 3201170010010020014")
        == "grid 320117001001002 building 3201170010010020014"
    )
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, "", 0, "%s %s", ("GET", f"/?p=%27{phone}"), None
    )
    assert phone not in MaskingFormatter().format(record)

    # a layer whose table vanished: a 500 with a phone in its SQL parameters
    with (
        vanished_layer(engine, "vanished_phones", "phone"),
        running_server(db_url, log_level="info") as (base, proc),
    ):
        ok = httpx.get(
            f"{base}/collections/organisations/items",
            params={"filter": f"contact_phone = '{phone}' OR name = '{id_number}'"},
        )
        crash = httpx.get(
            f"{base}/collections/vanished_phones/items", params={"filter": f"phone = '{phone}'"}
        )
        proc.terminate()
        output = proc.communicate(timeout=15)[0]
    assert ok.status_code == 400 and crash.status_code == 500  # personal: no filtering on it
    assert "/collections/organisations/items" in output and '" 400' in output
    assert crash.json()["request_id"] in output and "Traceback" in output
    assert "Logging error" not in output
    assert phone not in output and id_number not in output
    assert f"{phone[:3]}****{phone[-4:]}" in output
