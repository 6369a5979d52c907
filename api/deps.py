"""Dependencies shared by routes: the connection, the caller, the common query parameters."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import Request
from sqlalchemy.engine import Connection

from geo.access import ANONYMOUS, Viewer


def connection(request: Request) -> Iterator[Connection]:
    """A pooled connection for the request, in a transaction committed at the end."""
    with request.app.state.engine.begin() as conn:
        yield conn


def viewer(request: Request) -> Viewer:
    """The caller. Until tokens are read (records issue), everyone is anonymous."""
    return getattr(request.state, "viewer", ANONYMOUS)
