"""Dependencies shared by routes: the connection, the caller, the roles a route needs, and what
the app was built with (settings, edit rules)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request
from sqlalchemy.engine import Connection, Engine

from api.html import wants_html
from geo.database import transaction
from geo.errors import Forbidden, Unauthorised
from geo.policy.roles import ANONYMOUS, Viewer
from geo.policy.users import viewer_for_token
from geo.records.types import EditRules
from geo.settings import Settings


def read_engine(request: Request) -> Engine:
    """Where this request reads: the replica when api.read_routing chose it (a GET it may
    serve), else the primary. A write's request always gets the primary."""
    return request.scope.get("state", {}).get("read_engine") or request.app.state.engine


def read_tile_engine(request: Request) -> Engine:
    """The tile pool (autocommit, no ping) on the server this request reads from."""
    return request.scope.get("state", {}).get("read_tile_engine") or request.app.state.tile_engine


def connection(request: Request) -> Iterator[Connection]:
    """A pooled connection for the request, in a transaction committed at the end, its
    statements bounded by the read budget (``ONEMAP_READ_TIMEOUT_MS``)."""
    limits = request.app.state.settings.limits
    with transaction(read_engine(request), limits.read_timeout_ms) as conn:
        yield conn


def reading_transaction(request: Request):
    """A read's transaction, for routes that open their own."""
    return transaction(read_engine(request), request.app.state.settings.limits.read_timeout_ms)


def writing_transaction(request: Request):
    """An edit's transaction, bounded by the write budget."""
    return transaction(request.app.state.engine, request.app.state.settings.limits.write_timeout_ms)


#: The request's connection, released (and committed) when the route returns, before the response
#: is sent: a slow client reading a large page must not hold a pooled connection.
DbConnection = Annotated[Connection, Depends(connection, scope="function")]


def engine(request: Request) -> Engine:
    return request.app.state.engine


def settings(request: Request) -> Settings:
    return request.app.state.settings


def edit_rules(request: Request) -> EditRules:
    return request.app.state.edit_rules


def viewer(request: Request) -> Viewer:
    """The caller: anonymous without an Authorization header, else the token's user (401 if bad)."""
    cached = getattr(request.state, "viewer", None)
    if cached is not None:
        return cached
    header = request.headers.get("authorization")
    if not header:
        who = ANONYMOUS
    else:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorised("send the token as 'Authorization: Bearer <token>'")
        with read_engine(request).connect() as conn:
            found = viewer_for_token(conn, token.strip())
        if found is None and read_engine(request) is not request.app.state.engine:
            with request.app.state.engine.connect() as conn:  # a token made a moment ago
                found = viewer_for_token(conn, token.strip())
        if found is None:
            raise Unauthorised(
                "the token is unknown, expired or revoked: ask an administrator for a new one",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        who = found
    request.state.viewer = who
    return who


Caller = Annotated[Viewer, Depends(viewer)]
Rules = Annotated[EditRules, Depends(edit_rules)]
DbEngine = Annotated[Engine, Depends(engine)]


def require_role(*roles: str) -> Callable[..., Viewer]:
    """A dependency admitting only the given roles (401 when anonymous, 403 otherwise)."""

    def check(who: Viewer = Depends(viewer)) -> Viewer:
        if who.role in roles:
            return who
        if who.anonymous:
            raise Unauthorised(f"sign in: this needs the role {' or '.join(roles)}")
        raise Forbidden(f"your role '{who.role}' may not do this; it needs {' or '.join(roles)}")

    return check


def require_city_role(*roles: str) -> Callable[..., Viewer]:
    """:func:`require_role`, and not bound to one district: for what is the whole city's (a
    departmental layer covers every district; a district's administrator may not replace it)."""
    admitted = require_role(*roles)

    def check(who: Viewer = Depends(admitted)) -> Viewer:
        if who.district is not None:
            raise Forbidden(
                f"全市数据 — this is the whole city's: you administer district {who.district} "
                "only; an administrator of the whole city does it"
            )
        return who

    return check


#: ``f=json|html``: which rendering the caller wants (a browser gets HTML without asking)
Format = Annotated[str | None, Query(alias="f", description="json (default) or html")]


@dataclass
class Reading:
    """A read: the request, its connection, the caller, and whether they want a page."""

    request: Request
    conn: Connection
    who: Viewer
    html: bool


def reading(request: Request, conn: DbConnection, who: Caller, f: Format = None) -> Reading:
    return Reading(request, conn, who, wants_html(request, f))


Read = Annotated[Reading, Depends(reading)]
