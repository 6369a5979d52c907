"""HTML renderings beside the JSON: chosen by ``f=html`` or a browser's ``Accept``.

Pages speak Chinese first with English beside; every script and stylesheet is served by the app
from ``api/static`` (intranets have no internet).
"""

from __future__ import annotations

import json
from pathlib import Path

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from geo.errors import BadRequest

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = Path(__file__).resolve().parent / "static"

_env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
_env.filters["tojson_pretty"] = lambda v: json.dumps(v, ensure_ascii=False, indent=2, default=str)


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
    page = _env.get_template(template).render(request=request, root=base_url(request), **context)
    return HTMLResponse(page, status_code=status)
