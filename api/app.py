"""The FastAPI application factory: ``create_app(settings)`` builds the whole service from
explicit settings (tests build theirs; ``onemap serve`` and uvicorn's ``--factory`` read the
environment). The app keeps its settings, engine and edit rules on ``app.state``; routers do the
rest, and one handler table (api.problems) turns every refusal into problem+json."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles
from sqlalchemy.engine import make_url

from api import change_listener, logs, problems
from api.html import STATIC
from api.limits import BodyLimit, KnownHosts
from api.read_routing import ReadRouter, ReadRouting
from api.routes import (
    asset_finder,
    asset_promotion,
    asset_status,
    audit_log,
    catalog,
    city_checkup,
    city_imports,
    docs,
    field_app,
    field_patrols,
    health,
    ogc,
    ogc_tiles,
    qgis_projects,
    raster_tiles,
    record_editing,
    safety_alarms,
    safety_hazards,
    safety_sensors,
    sign_in,
    uploads,
    vector_tiles,
)
from geo.database import database_url, read_database_url
from geo.database import engine as make_engine
from geo.records.types import EditRules
from geo.settings import Settings
from layers.catalogue import LayerMemo
from tiles.cache import store_for


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        change_listener.ensure_started(app)
        yield
        if app.state.change_listener is not None:
            app.state.listener_stopped = True
            app.state.change_listener.stop()
        if app.state.read_router is not None:
            app.state.read_router.stop()
            app.state.read_router.replica.dispose()
            app.state.read_router.replica_tiles.dispose()
        app.state.engine.dispose()
        app.state.tile_engine.dispose()

    app = FastAPI(
        title="onemap 一张图",
        description="The one map of a city district: standard addresses, grids, buildings, the four "
        "facts, the natural-resource base map, the city check-up, idle assets and the safety map. "
        "OGC API – Features for every catalogued layer.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.edit_rules = EditRules.from_settings(settings)
    # made here, not in the lifespan, so that every ASGI host (test clients, fuzzers) has it; the
    # engine connects lazily, on first use
    app.state.engine = make_engine(
        database_url(settings=settings.database),
        settings.database.pool_size,
        settings.database.max_overflow,
        prepared=not settings.database.pgbouncer,  # no server-side prepares through pgbouncer
    )
    # tiles are read on a pool of their own: autocommit, no ping, the read budget per statement
    app.state.tile_engine = make_engine(
        database_url(settings=settings.database),
        settings.database.pool_size,
        settings.database.max_overflow,
        quick=True,
        timeout_ms=settings.limits.read_timeout_ms,
        prepared=not settings.database.pgbouncer,
    )
    app.state.read_router = _read_router(settings, app.state.engine)
    app.state.layer_memo = LayerMemo()
    # other processes' writes heard through LISTEN/NOTIFY: caches dropped, warning streams woken
    app.state.warning_bell = change_listener.WarningBell()
    app.state.change_listener = change_listener.wire(app) if settings.database.listen else None
    app.state.tile_store = store_for(
        settings.service.tile_cache, make_url(app.state.engine.url).database or "onemap"
    )
    app.openapi = lambda: _openapi(app)
    problems.install(app)
    logs.install()
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for area in (
        docs,
        health,
        sign_in,
        ogc,
        record_editing,
        audit_log,
        asset_promotion,  # before any /assets/{asset_id} route: /assets/statistics first
        asset_status,
        asset_finder,
        catalog,
        uploads,
        city_imports,
        city_checkup,
        qgis_projects,  # /maps/{map_id}/project.qgs, beside the map's own routes
        vector_tiles,
        ogc_tiles,
        raster_tiles,
        safety_sensors,
        safety_alarms,
        safety_hazards,
        field_patrols,
        field_app,  # /field, /field/sw.js, /field/manifest.webmanifest only
    ):
        app.include_router(area.router)
    if app.state.read_router is not None:  # the innermost of ours: it may run a read twice
        app.add_middleware(ReadRouting, router=app.state.read_router)
    if settings.service.cors_origin_list:  # other origins only when configured
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.service.cors_origin_list,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "If-Match", "If-None-Match"],
            expose_headers=["ETag", "Location", "X-Request-Id", "Content-Crs"],
            max_age=600,
        )
    app.add_middleware(BodyLimit, limits=settings.limits)
    app.add_middleware(KnownHosts, names=settings.service.host_names())
    app.add_middleware(change_listener.ProcessMark)  # X-Onemap-Process; starts the listener
    app.add_middleware(problems.CrashGuard)  # added last: the outermost of ours
    return app


def _read_router(settings: Settings, primary) -> ReadRouter | None:
    """Reads on a replica when one is configured (DATABASE_READ_URL, or the private cluster's)."""
    read_url = read_database_url(settings.database)
    if read_url is None:  # DATABASE_URL without DATABASE_READ_URL, or no private replica
        return None
    if not settings.database.url:  # the private cluster's replica: the same database name
        database = make_url(primary.url).database
        read_url = make_url(read_url).set(database=database).render_as_string(hide_password=False)
    pool = settings.database.pool_size, settings.database.max_overflow
    return ReadRouter(
        primary,
        make_engine(read_url, *pool),
        make_engine(read_url, *pool, quick=True, timeout_ms=settings.limits.read_timeout_ms),
        settings.database,
    )


def _openapi(app: FastAPI) -> dict:
    """FastAPI's OpenAPI 3.1 document, with the bearer token declared: /docs has Authorize."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        schema.setdefault("components", {})["securitySchemes"] = {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "A token from `onemap users token NAME` (anonymous: none)",
            }
        }
        schema["security"] = [{}, {"bearer": []}]  # anonymous, or a bearer token
        for path in schema.get("paths", {}).values():  # enums stated plainly: GDAL reads them so
            for parameter in path.get("get", {}).get("parameters", []):
                options = parameter.get("schema", {}).get("anyOf", [])
                enums = [v for o in options for v in o.get("enum", [])]
                if enums:
                    parameter["schema"] = {"type": "string", "enum": enums}
        app.openapi_schema = schema
    return app.openapi_schema
