"""Dependencies shared by routes: the connection, the caller, the roles a route needs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.engine import Connection

from api.errors import Problem
from geo.access import ANONYMOUS, Viewer
from geo.users import viewer_for_token


def connection(request: Request) -> Iterator[Connection]:
    """A pooled connection for the request, in a transaction committed at the end."""
    with request.app.state.engine.begin() as conn:
        yield conn


#: The request's connection, released (and committed) when the route returns, before the response
#: is sent: a slow client reading a large page must not hold a pooled connection.
DbConnection = Annotated[Connection, Depends(connection, scope="function")]


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
            raise Problem(
                401,
                "send the token as 'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        with request.app.state.engine.connect() as conn:
            found = viewer_for_token(conn, token.strip())
        if found is None:
            raise Problem(
                401,
                "the token is unknown, expired or revoked: ask an administrator for a new one",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        who = found
    request.state.viewer = who
    return who


def require_role(*roles: str) -> Callable[..., Viewer]:
    """A dependency admitting only the given roles (401 when anonymous, 403 otherwise)."""

    def check(who: Viewer = Depends(viewer)) -> Viewer:
        if who.role in roles:
            return who
        if who.anonymous:
            raise Problem(
                401,
                f"sign in: this needs the role {' or '.join(roles)}",
                headers={"WWW-Authenticate": "Bearer"},
            )
        raise Problem(403, f"your role '{who.role}' may not do this; it needs {' or '.join(roles)}")

    return check
