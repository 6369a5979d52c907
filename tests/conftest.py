"""Test fixtures: a real PostGIS (the private cluster, or DATABASE_URL), a fresh test database
loaded with the small demo city once per session, and the app over it.

``ONEMAP_TEST_DB`` names the test database (default ``onemap_test``), so that parallel runs on
one cluster do not meet.
"""

from __future__ import annotations

import os
import uuid
import warnings

import pytest
from sqlalchemy.engine import make_url

warnings.filterwarnings("ignore", message=".*httpx.*", category=DeprecationWarning)

TEST_DB = os.environ.get("ONEMAP_TEST_DB", "onemap_test")


def _base_url() -> str:
    from geo.cluster import Cluster
    from geo.database import database_url
    from geo.settings import database_settings

    settings = database_settings()
    if settings.url is None:
        Cluster(settings).up(echo=lambda *_: None)
    return database_url()


def url_for(database: str) -> str:
    return make_url(_base_url()).set(database=database).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def db_url() -> str:
    """A fresh database with the schema, the small demo city and the catalogue."""
    from api.bootstrap import prepare_demo
    from geo.database import create_database

    url = url_for(TEST_DB)
    create_database(url, replace=True)
    prepare_demo(url, scale="small")
    return url


@pytest.fixture(scope="session")
def engine(db_url):
    from geo.database import engine as make_engine

    return make_engine(db_url)


@pytest.fixture(scope="session")
def client(db_url):
    from fastapi.testclient import TestClient

    from api.app import create_app

    with TestClient(create_app(db_url)) as test_client:
        yield test_client


@pytest.fixture
def scratch_url():
    """An empty PostGIS database of its own, dropped afterwards."""
    from geo.database import create_database, drop_database

    url = url_for(f"{TEST_DB}_scratch_{uuid.uuid4().hex[:8]}")
    create_database(url, replace=True)
    yield url
    drop_database(url)
