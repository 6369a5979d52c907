"""The FastAPI application factory: ``create_app(settings)`` builds the whole service from
explicit settings (tests build theirs; ``onemap serve`` and uvicorn's ``--factory`` read the
environment). The app keeps its settings, engine and edit rules on ``app.state``; routers do the
rest, and one handler table (api.problems) turns every refusal into problem+json."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from api import logs, problems
from api.html import STATIC
from api.limits import BodyLimit, KnownHosts
from api.routes import audit_log, catalog, docs, health, ogc, record_editing, uploads
from geo.database import database_url
from geo.database import engine as make_engine
from geo.records.types import EditRules
from geo.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        app.state.engine.dispose()

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
    )
    problems.install(app)
    logs.install()
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for area in (docs, health, ogc, record_editing, audit_log, catalog, uploads):
        app.include_router(area.router)
    app.add_middleware(BodyLimit, limits=settings.limits)
    app.add_middleware(KnownHosts, names=settings.service.host_names())
    app.add_middleware(problems.CrashGuard)  # added last: the outermost of ours
    return app
