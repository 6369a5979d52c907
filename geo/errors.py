"""The one error hierarchy: every refusal the domain makes, with its HTTP status and problem type.

Domain code (geo, layers, tiles) raises these and knows nothing of HTTP; the API registers one
handler for :class:`OnemapError` that writes RFC 9457 ``application/problem+json`` from ``status``,
``kind`` (the problem type, served at ``/problems/{kind}``), ``title`` and the message. A message
always says what to fix. Anything else that escapes is a bug: the API answers 500 with a request id.
"""

from __future__ import annotations

from typing import Any, ClassVar


class OnemapError(Exception):
    """A refusal with a status, a problem type and a message a person can act on."""

    status: ClassVar[int] = 500
    kind: ClassVar[str] = "error"
    title: ClassVar[str] = "Error"
    title_zh: ClassVar[str] = "错误"

    def __init__(
        self,
        detail: str,
        *,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ):
        super().__init__(detail)
        self.detail = detail
        self.headers = headers
        self.extra = extra
        if title is not None:
            self.title = title

    @staticmethod
    def of_kind(kind: str) -> type[OnemapError]:
        """The class whose problem type is ``kind`` (to re-raise a refusal kept as data)."""
        return KINDS.get(kind, BadRequest)


class BadRequest(OnemapError):
    status, kind, title, title_zh = 400, "bad_request", "Bad request", "请求有误"


class Unauthorised(OnemapError):
    status, kind, title, title_zh = 401, "unauthorised", "Unauthorised", "需要登录"

    def __init__(self, detail: str, **kw: Any):
        kw.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(detail, **kw)


class Forbidden(OnemapError):
    status, kind, title, title_zh = 403, "forbidden", "Forbidden", "无权操作"


class NotFound(OnemapError):
    status, kind, title, title_zh = 404, "not_found", "Not found", "未找到"


class Conflict(OnemapError):
    status, kind, title, title_zh = 409, "conflict", "Conflict", "冲突"


class Stale(OnemapError):
    """An edit based on a version that is no longer current (optimistic concurrency)."""

    status, kind, title, title_zh = 412, "stale", "Precondition failed", "版本已过期"


class TooLarge(OnemapError):
    status, kind, title, title_zh = 413, "too_large", "Payload too large", "内容过大"


class Unsupported(OnemapError):
    status, kind, title, title_zh = 415, "unsupported", "Unsupported media type", "格式不支持"


class Invalid(OnemapError):
    """Well-formed, but it breaks a rule of the data (a code, a geometry, a reference)."""

    status, kind, title, title_zh = 422, "invalid", "Unprocessable content", "数据不合规"


class PreconditionRequired(OnemapError):
    status, kind, title, title_zh = (
        428,
        "precondition_required",
        "Precondition required",
        "缺少版本",
    )


class TooManyRequests(OnemapError):
    """Too many attempts (sign-in): ``Retry-After`` says when to try again."""

    status, kind, title, title_zh = 429, "too_many_requests", "Too many requests", "尝试过于频繁"

    def __init__(self, detail: str, *, retry_after: int = 60, **kw: Any):
        kw.setdefault("headers", {"Retry-After": str(max(1, retry_after))})
        super().__init__(detail, retry_after=max(1, retry_after), **kw)


class Unavailable(OnemapError):
    status, kind, title, title_zh = 503, "unavailable", "Service unavailable", "服务暂不可用"


KINDS: dict[str, type[OnemapError]] = {
    cls.kind: cls
    for cls in (
        BadRequest,
        Unauthorised,
        Forbidden,
        NotFound,
        Conflict,
        Stale,
        TooLarge,
        Unsupported,
        Invalid,
        PreconditionRequired,
        TooManyRequests,
        Unavailable,
    )
}


class IngestError(BadRequest):
    """A departmental file that cannot be ingested as a whole; the database is left as it was.

    Per-feature problems are not errors: they are rejections or repairs in the quality report. An
    IngestError is for what makes the whole file unusable (unreadable, no geometry, unknown or wrong
    CRS, an undeclared layer); its message says what to fix."""

    title, title_zh = "File not ingested", "文件未入库"
