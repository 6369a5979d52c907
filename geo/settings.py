"""Settings from the environment (``ONEMAP_…`` and ``DATABASE_URL``), split by concern.

One pydantic-settings class per concern, as tipg does, gathered in :class:`Settings`. They are
read once, where the program starts (``create_app(settings)``, the command line), and handed to
what needs them: domain code never reads the environment itself, and tests build their own.
A wrong value fails at start-up with the variable's name in the message.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _psycopg(value: str) -> str:
    for prefix in ("postgresql://", "postgres://"):
        if value.startswith(prefix):
            return "postgresql+psycopg://" + value[len(prefix) :]
    if not value.startswith("postgresql+"):
        raise ValueError("DATABASE_URL must be a postgresql:// URL")
    return value


class DatabaseSettings(BaseSettings):
    """Where PostGIS is: an existing one (``DATABASE_URL``) or the private cluster under ``.onemap/``."""

    # populate_by_name: DatabaseSettings(home=..., url=None) must mean that folder, not the
    # environment's ONEMAP_HOME / DATABASE_URL (a temporary cluster would be the shared one)
    model_config = SettingsConfigDict(
        env_prefix="ONEMAP_DB_", extra="ignore", populate_by_name=True
    )

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
    pgbouncer: bool = Field(
        default=False,
        description="DATABASE_URL goes through pgbouncer's transaction pooling: no server-side "
        "prepared statements (pgbouncer before 1.21 cannot carry them between clients).",
    )
    listen: bool = Field(
        default=True,
        description="Run the change listener (LISTEN onemap_changes, onemap_warnings): caches "
        "dropped and live warnings woken when another process writes.",
    )
    listen_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the primary itself for the change listener, when "
        "DATABASE_URL goes through pgbouncer (LISTEN needs a session of its own); unset: "
        "DATABASE_URL, or the private cluster.",
    )
    read_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_READ_URL", "ONEMAP_DB_READ_URL"),
        description="SQLAlchemy URL of a hot standby of DATABASE_URL's server: reads go there, "
        "writes to the primary. Unset with the private cluster: its replica, if one was made "
        "(onemap db replica up).",
    )
    read_wait_ms: int = Field(
        default=1_000,
        ge=0,
        validation_alias=AliasChoices("ONEMAP_READ_WAIT_MS", "ONEMAP_DB_READ_WAIT_MS"),
        description="How long a read that must see the caller's own write waits for the "
        "replica to replay it before it is answered by the primary instead.",
    )
    read_max_lag_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=0,
        validation_alias=AliasChoices("ONEMAP_READ_MAX_LAG_BYTES", "ONEMAP_DB_READ_MAX_LAG_BYTES"),
        description="WAL the replica may be behind the primary and still take reads; past it "
        "(or when it is down) every read goes to the primary, and /health says so.",
    )

    @field_validator("url", "read_url", "listen_url")
    @classmethod
    def _psycopg_driver(cls, value: str | None) -> str | None:
        """Accept plain ``postgresql://`` URLs and use psycopg 3 for them."""
        if value is None or value == "":
            return None
        return _psycopg(value)


class SpatialSettings(BaseSettings):
    """The district's coordinate systems."""

    model_config = SettingsConfigDict(env_prefix="ONEMAP_", extra="ignore")

    metric_srid: int = Field(
        default=4549,
        description="Projected CRS in metres for lengths and areas: CGCS2000 3-degree "
        "Gauss-Krüger CM 120°E covers Lishui (118.8–119.3°E).",
    )
    storage_srid: int = Field(
        default=4490,
        description="SRID of stored geometries: CGCS2000 lon/lat, the national datum. Fixed when "
        "the schema is made.",
    )
    district_code: str = Field(default="320117", pattern=r"^\d{6}$")
    checkup_config: Path | None = Field(
        default=None,
        description="The city's own check-up targets and settings (TOML, one table per "
        "indicator); unset: DOMAIN.md's defaults.",
    )


def _own_addresses() -> set[str]:
    """This machine's name and the addresses it resolves to (for a service listening on all)."""
    import socket

    hostname = socket.gethostname()
    names = {hostname.lower(), socket.getfqdn().lower()}
    with contextlib.suppress(OSError):
        names |= {info[4][0] for info in socket.getaddrinfo(hostname, None)}
    return names


class ServiceSettings(BaseSettings):
    """Where the web service listens."""

    model_config = SettingsConfigDict(env_prefix="ONEMAP_", extra="ignore")

    host: str = "127.0.0.1"
    http_port: int = Field(default=8000, validation_alias=AliasChoices("ONEMAP_HTTP_PORT"))
    public_url: str | None = Field(
        default=None,
        description="The address users reach the service at (e.g. https://onemap.example.gov.cn); "
        "every link is built on it. Unset: links follow the request, whose Host must be allowed.",
    )
    allowed_hosts: str = Field(
        default="127.0.0.1,localhost,::1",
        description="Host names a request may address (comma-separated; the public URL's and "
        "ONEMAP_HOST are added). Others are refused: links never follow a forged Host header.",
    )

    timezone: str = Field(
        default="Asia/Shanghai",
        description="The zone pages show times in (JSON keeps RFC 3339 UTC).",
    )
    tile_cache: Path = Field(
        default=Path(".onemap/tiles"),
        description="The tile cache every service process on this machine shares (a directory; "
        "one folder per database inside).",
    )
    rasters: Path = Field(
        default=Path(".onemap/rasters"),
        description="Where raster layers (GeoTIFF) are kept: one folder per database inside.",
    )
    photos: Path = Field(
        default=Path(".onemap/photos"),
        description="Where asset photos are kept: one folder per database, one per asset inside.",
    )
    cors_origins: str = Field(
        default="",
        description="Other origins whose pages may call this service (comma-separated; none by "
        "default), e.g. https://gis.lishui.example",
    )

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    def host_names(self) -> frozenset[str]:
        names = {h.strip().lower().strip("[]") for h in self.allowed_hosts.split(",") if h.strip()}
        names.add(self.host.lower())
        if self.host in ("0.0.0.0", "::"):  # listening everywhere: this machine's own names too
            names |= _own_addresses()
        if self.public_url:
            names.add((urlsplit(self.public_url).hostname or "").lower())
        return frozenset(n for n in names if n)


class LimitSettings(BaseSettings):
    """How much one request may ask of the service."""

    model_config = SettingsConfigDict(env_prefix="ONEMAP_", extra="ignore")

    max_body_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1, description="Largest request body accepted."
    )
    max_upload_bytes: int = Field(
        default=200 * 1024 * 1024,
        ge=1,
        description="Largest departmental file accepted by POST /layers/{id}/ingest (413 above).",
    )
    max_sync_edits: int = Field(
        default=5_000, ge=1, description="Most edits one offline-sync batch may carry."
    )
    read_timeout_ms: int = Field(
        default=15_000, ge=1, description="statement_timeout of a read request's queries."
    )
    write_timeout_ms: int = Field(
        default=30_000,
        ge=1,
        description="statement_timeout of an edit's (or a sync edit's) queries.",
    )
    ingest_timeout_ms: int = Field(
        default=600_000, ge=1, description="statement_timeout of a departmental ingest."
    )


class ReviewSettings(BaseSettings):
    """Which grid workers' changes wait for a community reviewer."""

    model_config = SettingsConfigDict(env_prefix="ONEMAP_", extra="ignore")

    review_types: str = Field(
        default="residents,houses",
        description="Record types whose changes by grid workers wait for a reviewer (comma-separated).",
    )

    @property
    def review_type_list(self) -> frozenset[str]:
        return frozenset(v.strip() for v in self.review_types.split(",") if v.strip())


class SafetySettings(BaseSettings):
    """The safety map's rules: how long a hazard of each level has to be rectified and closed."""

    model_config = SettingsConfigDict(env_prefix="ONEMAP_", extra="ignore")

    hazard_deadline_days: str = Field(
        default="1:3,2:7,3:15,4:30",
        description="Days from a hazard's finding to its deadline, by level (1 the most severe): "
        "'level:days' pairs, comma-separated, all four levels.",
    )
    hazard_clock: datetime | None = Field(
        default=None,
        description="The time the safety map takes as now for overdue hazards (drills and tests "
        "only, RFC 3339 with a zone); unset: the real clock.",
    )
    risk_weights: str = Field(
        default="hazards=0.30,overdue=0.20,warnings=0.20,key_units=0.15,density=0.15",
        description="Weights of the risk score's terms (geo.safety.risk): 'name=value,…' or a "
        "JSON object; names left out keep their default.",
    )
    stream_poll_seconds: float = Field(
        default=1.5,
        gt=0,
        description="How often an open warnings stream asks the database when no notification "
        "woke it (the fallback should a notification be missed).",
    )
    readings_retention_months: int = Field(
        default=0,
        ge=0,
        description="Months of sensor readings kept: monthly partitions that ended before the "
        "first day of the month this many months back are dropped whole by `onemap db "
        "partitions --drop-older`; 0 keeps all.",
    )

    @field_validator("hazard_deadline_days")
    @classmethod
    def _four_levels(cls, value: str) -> str:
        """Refuse at start-up what would leave a level without a deadline."""
        days = _deadline_days(value)
        if sorted(days) != [1, 2, 3, 4] or min(days.values()) < 0:
            raise ValueError("give days >= 0 for each level 1-4, e.g. '1:3,2:7,3:15,4:30'")
        return value

    @property
    def deadline_days(self) -> dict[int, int]:
        return _deadline_days(self.hazard_deadline_days)


def _deadline_days(value: str) -> dict[int, int]:
    try:
        pairs = [p.split(":") for p in value.split(",") if p.strip()]
        return {int(level): int(days) for level, days in pairs}
    except ValueError as exc:
        raise ValueError(f"{value!r} is not 'level:days' pairs, e.g. '1:3,2:7,3:15,4:30'") from exc


class SignInSettings(BaseSettings):
    """How sign-in with a password is guarded: the lock-out after failures in a row, and how
    often one client address may try at all (guessing is slowed both per account and per address)."""

    model_config = SettingsConfigDict(env_prefix="ONEMAP_", extra="ignore")

    login_max_failures: int = Field(
        default=5, ge=1, description="Wrong passwords in a row that lock an account."
    )
    login_lockout_minutes: int = Field(
        default=15,
        ge=1,
        description="How long a locked account stays locked (an admin may unlock).",
    )
    login_attempts_per_minute: int = Field(
        default=10,
        ge=1,
        description="Sign-in attempts one client address may make in a sliding minute (429 above).",
    )
    login_token_days: int = Field(
        default=7, ge=1, description="Days until a token issued by signing in expires."
    )


#: The demo key: fine for the synthetic city, never for real people's identity numbers.
DEMO_ID_HASH_KEY = "onemap-demo-key-change-me"


class SecretSettings(BaseSettings):
    """Secrets. ``id_hash_key`` keys the HMAC under which identity numbers are joined; a service
    holding real people's data must set its own (``onemap serve`` refuses the demo key unless
    ``ONEMAP_DEMO=1`` or ``--demo`` says this is the demo city)."""

    model_config = SettingsConfigDict(env_prefix="ONEMAP_", extra="ignore")

    id_hash_key: str = Field(
        default=DEMO_ID_HASH_KEY,
        min_length=16,
        description="Key of the keyed hash (HMAC-SHA256) under which identity numbers are joined.",
    )
    demo: bool = Field(default=False, description="This is the synthetic demo city.")

    @property
    def has_own_key(self) -> bool:
        return self.id_hash_key != DEMO_ID_HASH_KEY


@dataclass(frozen=True)
class Settings:
    """Everything the service is told, split by concern; built once and handed down."""

    database: DatabaseSettings
    spatial: SpatialSettings
    service: ServiceSettings
    limits: LimitSettings
    review: ReviewSettings
    secrets: SecretSettings
    safety: SafetySettings = field(default_factory=SafetySettings)
    sign_in: SignInSettings = field(default_factory=SignInSettings)

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """Read the environment; ``overrides`` replace whole parts (e.g. ``limits=LimitSettings(...)``)."""
        parts = {
            "database": DatabaseSettings,
            "spatial": SpatialSettings,
            "service": ServiceSettings,
            "limits": LimitSettings,
            "review": ReviewSettings,
            "secrets": SecretSettings,
            "safety": SafetySettings,
            "sign_in": SignInSettings,
        }
        return cls(**{name: overrides.get(name) or make() for name, make in parts.items()})

    def with_database(self, url: str) -> Settings:
        return replace(self, database=self.database.model_copy(update={"url": _psycopg(url)}))


#: Stored geometries: CGCS2000 geographic (the national datum). The schema is made in this SRID
#: (``ONEMAP_STORAGE_SRID``), so it is read once, when the models are defined; every query takes it
#: from here, never from a literal.
STORAGE_SRID = SpatialSettings().storage_srid
#: the Web Mercator copy of ``geom`` that mapped base tables keep for tiles (migration 0012: a
#: stored generated column, derived storage that no model declares and no read shows)
TILE_GEOMETRY = "geom_3857"
#: the district (first six digits of the division code) that base tables with a division code keep
#: (migration 0020: a stored generated column, derived storage like the tile geometry)
DISTRICT_COLUMN = "district_code"
