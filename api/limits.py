"""Refuse oversized request bodies before anyone reads them (413 problem+json), and addresses
with NUL bytes, which no text field can hold (400).

A pure ASGI middleware: it trusts neither Content-Length alone nor the client's good manners; it
counts the bytes as they arrive and stops at the limit. Uploads to ingest have their own, larger
limit; everything else takes ``ONEMAP_MAX_BODY_BYTES``.
"""

from __future__ import annotations

import json
import math

import orjson

from api.problems import PROBLEM, problem_body
from geo.errors import BadRequest
from geo.settings import LimitSettings
from geo.text import first_problem

UPLOAD_PREFIXES = ("/layers/", "/city/")


class _TooLarge(Exception):
    pass


class KnownHosts:
    """Refuse a request whose Host header names none of this service's addresses (400): links are
    built from it, and a forged one would send users elsewhere."""

    def __init__(self, app, names: frozenset[str]):
        self.app = app
        self.names = names

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            name = name.strip("[]").lower()
            if host and name not in self.names:
                return await _refuse(
                    send, 400, "the Host header names no address of this service: use its address"
                )
        return await self.app(scope, receive, send)


class BodyLimit:
    def __init__(self, app, limits: LimitSettings):
        self.app = app
        self.limits = limits

    def _limit(self, path: str) -> int:
        if path.startswith(UPLOAD_PREFIXES):
            return self.limits.max_upload_bytes
        return self.limits.max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b"").lower():
            return await _refuse(send, 400, "the address contains a NUL character (%00): remove it")
        limit = self._limit(scope["path"])
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await _refuse(send, 413, _too_large(limit))
        seen = 0
        started = False

        async def counting_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await _refuse(send, 413, _too_large(limit))


def _too_large(limit: int) -> str:
    return f"the request body is larger than {limit:,} bytes: send less, or split it"


async def _refuse(send, status: int, detail: str) -> None:
    kind = {400: "bad_request", 413: "too_large"}[status]
    body = orjson.dumps(problem_body(status, detail, kind=kind))
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


#: how deep a JSON body may nest (a GeoJSON polygon needs 4 levels below its feature)
MAX_JSON_DEPTH = 32


def _no_constant(name: str):
    raise BadRequest(f"the body holds {name}: JSON numbers must be finite")


def parse_json(raw: bytes) -> object:
    """A request body as JSON, refused (400) when it is not JSON, nests too deep, holds
    non-finite numbers, or holds text no field may store (geo.text)."""
    try:
        value = json.loads(raw, parse_constant=_no_constant)
    except RecursionError as exc:
        raise BadRequest(f"the body nests deeper than {MAX_JSON_DEPTH} levels") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from exc
    problem = first_problem(value, MAX_JSON_DEPTH)
    if problem:
        raise BadRequest(f"the body {problem}")
    return _finite(value)


def _finite(value):
    """Refuse numbers JSON can spell but no field holds: 1e999 (inf) and integers past 2^63."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise BadRequest("the body holds a number too large to be finite")
        if isinstance(item, int) and not isinstance(item, bool) and abs(item) >= 2**63:
            raise BadRequest("the body holds a whole number too large for any field")
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return value
