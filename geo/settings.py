"""Settings, read once from the environment (``ONEMAP_…`` and ``DATABASE_URL``).

One pydantic-settings class per concern, as tipg does, so that each part of the service reads only
what it needs and a wrong value fails at start-up with the variable's name in the message.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[1]

#: Stored geometries: CGCS2000 geographic (the national datum, GB 50xx surveying standards).
STORAGE_SRID = 4490


class DatabaseSettings(BaseSettings):
    """Where PostGIS is: an existing one (``DATABASE_URL``) or the private cluster under ``.onemap/``."""

    model_config = SettingsConfigDict(env_prefix="ONEMAP_DB_", extra="ignore")

    url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "ONEMAP_DB_URL"),
        description="SQLAlchemy URL of an existing PostGIS; when set, the private cluster is not used.",
    )
    name: str = Field(default="onemap", description="Database name inside the private cluster.")
    port: int = Field(default=54329, ge=1024, le=65535, description="Preferred loopback port.")
    home: Path = Field(
        default=PROJECT_ROOT / ".onemap",
        validation_alias=AliasChoices("ONEMAP_HOME", "ONEMAP_DB_HOME"),
        description="Folder holding the private cluster's data, socket, log and password.",
    )
    pool_size: int = Field(default=8, ge=1)
    max_overflow: int = Field(default=8, ge=0)

    @field_validator("url")
    @classmethod
    def _psycopg_driver(cls, value: str | None) -> str | None:
        """Accept plain ``postgresql://`` URLs and use psycopg 3 for them."""
        if value is None or value == "":
            return None
        for prefix in ("postgresql://", "postgres://"):
            if value.startswith(prefix):
                return "postgresql+psycopg://" + value[len(prefix) :]
        if not value.startswith("postgresql+"):
            raise ValueError("DATABASE_URL must be a postgresql:// URL")
        return value


class SpatialSettings(BaseSettings):
    """The district's coordinate systems."""

    model_config = SettingsConfigDict(env_prefix="ONEMAP_", extra="ignore")

    metric_srid: int = Field(
        default=4549,
        description="Projected CRS in metres for lengths and areas: CGCS2000 3-degree "
        "Gauss-Krüger CM 120°E covers Lishui (118.8–119.3°E).",
    )
    district_code: str = Field(default="320117", pattern=r"^\d{6}$")


class ServiceSettings(BaseSettings):
    """How the web service runs."""

    model_config = SettingsConfigDict(env_prefix="ONEMAP_", extra="ignore")

    host: str = "127.0.0.1"
    http_port: int = Field(default=8000, validation_alias=AliasChoices("ONEMAP_HTTP_PORT"))
    max_body_bytes: int = Field(
        default=10 * 1024 * 1024, description="Largest request body accepted."
    )
    max_upload_bytes: int = Field(
        default=200 * 1024 * 1024,
        ge=1,
        description="Largest departmental file accepted by POST /layers/{id}/ingest (413 above).",
    )
    review_types: str = Field(
        default="residents,houses",
        description="Record types whose changes by grid workers wait for a reviewer (comma-separated).",
    )
    max_sync_edits: int = Field(
        default=5_000, ge=1, description="Most edits one offline-sync batch may carry."
    )
    id_hash_key: str = Field(
        default="onemap-demo-key-change-me",
        description="Key of the keyed hash (HMAC-SHA256) under which identity numbers are joined.",
    )

    @property
    def review_type_list(self) -> frozenset[str]:
        return frozenset(v.strip() for v in self.review_types.split(",") if v.strip())


@lru_cache
def database_settings() -> DatabaseSettings:
    return DatabaseSettings()


@lru_cache
def spatial_settings() -> SpatialSettings:
    return SpatialSettings()


@lru_cache
def service_settings() -> ServiceSettings:
    return ServiceSettings()
