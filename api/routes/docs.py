"""Interactive API documentation served with the app's own Swagger UI (no CDN on an intranet)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html

router = APIRouter(include_in_schema=False)


@router.get("/docs")
def swagger(request: Request):
    root = str(request.base_url).rstrip("/")
    return get_swagger_ui_html(
        openapi_url=f"{root}/openapi.json",
        title="onemap 一张图 · API",
        swagger_js_url=f"{root}/static/vendor/swagger-ui/swagger-ui-bundle.js",
        swagger_css_url=f"{root}/static/vendor/swagger-ui/swagger-ui.css",
        swagger_favicon_url=f"{root}/static/vendor/swagger-ui/favicon-32x32.png",
    )
