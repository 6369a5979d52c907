"""Documentation: the interactive API documentation, served with the app's own Swagger UI (no CDN
on an intranet), and a page for each problem type the service answers with."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from api.html import STATIC, render, wants_html
from geo.errors import KINDS, NotFound

router = APIRouter(include_in_schema=False)
CACHE_A_DAY = {"Cache-Control": "public, max-age=86400"}


@router.get("/docs")
def swagger(request: Request):
    """The interactive API documentation (Swagger UI, served by the app; Authorize takes a token)."""
    return render("docs.html", request)


@router.get("/favicon.ico")
def favicon():
    """The service's icon (a map pin), so browsers find one without asking anyone else."""
    return FileResponse(STATIC / "favicon.png", media_type="image/png", headers=CACHE_A_DAY)


@router.get("/problems/{kind}")
def problem_type(kind: str, request: Request, f: str | None = None):
    """What a problem type means (the ``type`` of every problem+json answer points here)."""
    cls = KINDS.get(kind)
    if cls is None:
        raise NotFound(f"no problem type '{kind}': the types are {', '.join(sorted(KINDS))}")
    body = {
        "type": f"/problems/{kind}",
        "status": cls.status,
        "title": cls.title,
        "title_zh": cls.title_zh,
        "description": (cls.__doc__ or cls.title).strip(),
    }
    if wants_html(request, f):
        return render("problem.html", request, problem=body, status=200)
    return body
