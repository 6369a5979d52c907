"""HTML renderings beside the JSON: chosen by ``f=html`` or a browser's ``Accept``.

Pages speak Chinese first with English beside; every script and stylesheet is served by the app
from ``api/static`` (intranets have no internet).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from geo.errors import BadRequest
from layers.vocabulary import field_title, value_zh

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = Path(__file__).resolve().parent / "static"

_env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
_env.filters["tojson_pretty"] = lambda v: json.dumps(v, ensure_ascii=False, indent=2, default=str)
#: every page: scripts only from this service (no inline script: a value that slips into a page
#: cannot run), styles and images from here, MapLibre's workers from blob:
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; worker-src 'self' blob:; "
    "child-src 'self' blob:; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'self'"
)
ZONE_NAMES = {"Asia/Shanghai": "北京时间"}


def local_time(value, zone: str = "Asia/Shanghai") -> str:
    """An instant (RFC 3339 text or datetime) in the pages' zone, saying which zone it is."""
    if value in (None, ""):
        return ""
    moment = value
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if not isinstance(moment, datetime):
        return str(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    shown = moment.astimezone(ZoneInfo(zone))
    offset = shown.strftime("%z")
    label = ZONE_NAMES.get(zone, zone)
    return f"{shown:%Y-%m-%d %H:%M:%S} {label} (UTC{offset[:3]}:{offset[3:]})"


def shown_value(value, name: str):
    """A property's value for a page: enumerations in Chinese (the code beside it)."""
    if value is None:
        return ""
    zh = value_zh(name, value)
    return f"{zh} ({value})" if zh else value


_env.filters["local_time"] = local_time
_env.filters["shown"] = shown_value
_env.globals["field_title"] = field_title


def base_url(request: Request) -> str:
    """Where links point: the configured public URL, else the (checked) address of the request."""
    public = request.app.state.settings.service.public_url
    return (public or str(request.base_url)).rstrip("/")


def wants_html(request: Request, f: str | None) -> bool:
    """``f`` wins; otherwise HTML when the client prefers it over JSON (a browser)."""
    if f is not None:
        f = f.lower()
        if f in ("html", "text/html"):
            return True
        if f in ("json", "geojson", "application/json", "application/geo+json"):
            return False
        raise BadRequest(f"f={f!r} is not offered: use f=json or f=html")
    accept = request.headers.get("accept", "").lower()
    if "text/html" not in accept:
        return False
    return "json" not in accept or accept.index("text/html") < accept.index("json")


def render(template: str, request: Request, status: int = 200, **context) -> HTMLResponse:
    zone = request.app.state.settings.service.timezone
    page = _env.get_template(template).render(
        request=request, root=base_url(request), zone=zone, **context
    )
    return HTMLResponse(page, status_code=status, headers={"Content-Security-Policy": CSP})


def prefers_html(accept: str, f: str | None) -> bool:
    """Whether a caller (a browser) would rather read a page than JSON."""
    if f is not None:
        return f.lower() in ("html", "text/html")
    accept = accept.lower()
    if "text/html" not in accept:
        return False
    return "json" not in accept or accept.index("text/html") < accept.index("json")


def template(name: str):
    """A page template, for renderings that are not a route's answer (a report written to disk)."""
    return _env.get_template(name)
