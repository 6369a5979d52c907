"""Refuse oversized request bodies before anyone reads them (413 problem+json), and addresses
with NUL bytes, which no text field can hold (400).

A pure ASGI middleware: it trusts neither Content-Length alone nor the client's good manners; it
counts the bytes as they arrive and stops at the limit. Uploads to ingest have their own, larger
limit; everything else takes ``ONEMAP_MAX_BODY_BYTES``.
"""

from __future__ import annotations

import orjson

from api.problems import PROBLEM, problem_body
from geo.settings import LimitSettings

UPLOAD_PREFIXES = ("/layers/",)


class _TooLarge(Exception):
    pass


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
