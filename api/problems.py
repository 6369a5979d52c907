"""Errors as RFC 9457 problem details (``application/problem+json``), from one handler table.

:func:`install` registers, once, in the app factory: the domain's :class:`~geo.errors.OnemapError`
(its status, problem type and message), the framework's HTTP and validation errors, and a last
guard (:class:`CrashGuard`) that turns any other exception into a 500 problem with a request id,
logs its traceback (masked, by api.logs) and never shows a traceback or SQL to the caller. Routes
raise; they do not catch.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.html import prefers_html, render
from api.read_routing import ReplicaFailed, replica_cannot_answer
from geo.database import refusal_for
from geo.errors import KINDS, OnemapError

PROBLEM = "application/problem+json"
REQUEST_ID = "X-Request-Id"
TITLES = {cls.status: cls.title for cls in KINDS.values()} | {
    405: "Method not allowed",
    406: "Not acceptable",
    500: "Internal server error",
}
log = logging.getLogger("onemap")


def problem_type(kind: str) -> str:
    """The problem type URI: a page of this service that says what the problem means."""
    return f"/problems/{kind}"


def problem_body(
    status: int,
    detail: str,
    *,
    kind: str | None = None,
    title: str | None = None,
    instance: str | None = None,
    request_id: str | None = None,
    **extra: Any,
) -> dict:
    body = {
        "type": problem_type(kind) if kind else "about:blank",
        "title": title or TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if request_id:
        body["request_id"] = request_id
    body.update(extra)
    return body


#: what a person reading an error page should do, by status (Chinese first)
ADVICE = {
    400: "请求中的参数有误：请按下方说明修改后重试。",
    401: "需要登录：请携带令牌（Authorization: Bearer …）访问，或向管理员申请。",
    403: "您的角色无权进行此操作：如确需访问，请联系管理员。",
    404: "找不到该内容：请从图层列表或资源目录重新进入。",
    409: "与现有数据冲突：请刷新后核对再提交。",
    412: "数据已被他人修改：请重新读取后再提交您的修改。",
    413: "内容过大：请缩小范围或拆分后再提交。",
    415: "格式不支持：请按说明的格式提交。",
    422: "数据不符合规范：请按下方说明修改。",
    428: "缺少版本号：请先读取记录，再带上 If-Match 提交。",
    429: "尝试过于频繁：请按提示的时间（Retry-After）之后再试，或请管理员解锁。",
    500: "服务出错：请将下方的请求编号告知管理员。",
    503: "服务繁忙或查询过大：请缩小范围后重试。",
}


def problem_response(
    status: int,
    detail: str,
    headers: dict | None = None,
    request: Request | None = None,
    **kw: Any,
) -> Response:
    """The problem as problem+json, or, to a browser, as a page in Chinese that says what to do."""
    body = problem_body(status, detail, **kw)
    if request is not None and prefers_html(
        request.headers.get("accept", ""), request.query_params.get("f")
    ):
        page = render("error.html", request, status=status, problem=body, advice=ADVICE.get(status))
        page.headers.update(headers or {})
        return page
    return Response(orjson.dumps(body), status_code=status, media_type=PROBLEM, headers=headers)


def request_id(request: Request) -> str | None:
    return request.scope.get("state", {}).get("request_id")


async def _domain(request: Request, exc: OnemapError) -> Response:
    return problem_response(
        exc.status,
        exc.detail,
        exc.headers,
        request,
        kind=exc.kind,
        title=exc.title,
        instance=request.url.path,
        request_id=request_id(request),
        **exc.extra,
    )


async def _http(request: Request, exc: StarletteHTTPException) -> Response:
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    return problem_response(
        exc.status_code,
        detail,
        getattr(exc, "headers", None),
        request,
        instance=request.url.path,
        request_id=request_id(request),
    )


async def _validation(request: Request, exc: RequestValidationError) -> Response:
    errors = [
        {"where": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg", "")}
        for e in exc.errors()
    ]
    first = errors[0] if errors else {"where": "request", "problem": "invalid"}
    status = 400 if any(e["where"].startswith(("query", "path", "header")) for e in errors) else 422
    return problem_response(
        status,
        f"{first['where']}: {first['problem']}",
        None,
        request,
        kind="bad_request" if status == 400 else "invalid",
        instance=request.url.path,
        request_id=request_id(request),
        errors=errors,
    )


async def _database(request: Request, exc: DBAPIError) -> Response:
    """A database error: the caller's refusal when it is one (a bad value, a timeout), else ours."""
    if request.scope.get("state", {}).get("reads_on") == "replica" and replica_cannot_answer(exc):
        raise ReplicaFailed(str(exc.orig)) from exc  # run again on the primary (api.read_routing)
    refusal = refusal_for(exc)
    if refusal is not None:
        return await _domain(request, refusal)
    rid = request_id(request)
    log.error("request %s failed: %s %s", rid, request.method, request.url.path, exc_info=exc)
    return problem_response(
        500,
        crash_detail(rid),
        None,
        request,
        kind="internal",
        instance=request.url.path,
        request_id=rid,
    )


def crash_detail(rid: str | None) -> str:
    return (
        "the service failed to answer this request; the failure is logged under request id "
        f"{rid}: quote it when you report the problem"
    )


#: the handler table: exception type → handler, registered once by :func:`install`
HANDLERS = {
    OnemapError: _domain,
    DBAPIError: _database,
    StarletteHTTPException: _http,
    RequestValidationError: _validation,
}


class CrashGuard:
    """The outermost ASGI layer: a request id for every request (header and problem body), and
    for an exception nobody handled, a 500 problem+json, the traceback in the log, and nothing of
    it to the caller. It does not re-raise, so no server prints the traceback again unmasked."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        rid = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        started = False

        async def send_with_id(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = dict(message)
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("request %s failed: %s %s", rid, scope.get("method"), scope.get("path"))
            if started:
                return  # the answer is under way: nothing honest can be added to it
            request = Request(scope)
            if "app" in scope and prefers_html(
                request.headers.get("accept", ""), request.query_params.get("f")
            ):
                page = problem_response(
                    500,
                    crash_detail(rid),
                    {"x-request-id": rid},
                    request,
                    kind="internal",
                    instance=scope.get("path"),
                    request_id=rid,
                )
                return await page(scope, receive, send)
            body = orjson.dumps(
                problem_body(
                    500,
                    crash_detail(rid),
                    kind="internal",
                    instance=scope.get("path"),
                    request_id=rid,
                )
            )
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", PROBLEM.encode()),
                        (b"content-length", str(len(body)).encode()),
                        (b"x-request-id", rid.encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})


def install(app: FastAPI) -> None:
    """Register the handler table (once, in the app factory)."""
    for exc_type, handler in HANDLERS.items():
        app.add_exception_handler(exc_type, handler)
