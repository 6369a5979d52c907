"""The FastAPI application factory: lifespan owns the database engine; routers do the rest."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from api import errors, logs
from api.html import STATIC
from api.limits import BodyLimit
from api.routes import audit, catalog, docs, health, ingest, ogc, records
from geo.database import engine as make_engine


def create_app(database_url: str | None = None) -> FastAPI:
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
    # made here, not in the lifespan, so that every ASGI host (test clients, fuzzers) has it; the
    # engine connects lazily, on first use
    app.state.engine = make_engine(database_url)
    errors.install(app)
    logs.install()
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(docs.router)
    app.include_router(health.router)
    app.include_router(ogc.router)
    app.include_router(records.router)
    app.include_router(audit.router)
    app.include_router(catalog.router)
    app.include_router(ingest.router)
    app.add_middleware(BodyLimit)
    return app
