"""`/docs` (Swagger UI) and `/redoc` (ReDoc) with assets from the package, not a CDN.

FastAPI's own pages load unpinned scripts from cdn.jsdelivr.net (and fonts from Google)
into seau's origin, where a changed or hijacked script could read a signed-in user's
token. Here every script and style is a file of this package at a pinned version, and
the pages' CSP allows nothing else. The assets are a fixed allowlist: no request path
reaches the disk.
"""

from __future__ import annotations

import functools
import hashlib
import html
from dataclasses import dataclass
from importlib import resources
from typing import Final

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.openapi.docs import get_redoc_html

from seau.errors import NotFound

router = APIRouter(include_in_schema=False)

ASSET_PREFIX: Final = "/docs/assets"

_CSP_COMMON: Final = [
    "default-src 'none'",
    # Only the scripts below: Swagger UI's start-up is a file too (swagger-init.js).
    "script-src 'self'",
    "img-src 'self' data:",
    # "Try it out" and ReDoc fetch the schema and call the API: this origin only.
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
]
# Swagger UI and ReDoc set styles from their scripts (and ReDoc's page has a <style>):
# inline styles cannot run code, so they are allowed; inline scripts are not.
SWAGGER_CSP: Final = "; ".join([*_CSP_COMMON, "style-src 'self' 'unsafe-inline'"])
# ReDoc's search index runs in a worker it starts from a blob: URL.
REDOC_CSP: Final = "; ".join([*_CSP_COMMON, "style-src 'self' 'unsafe-inline'", "worker-src blob:"])
# An asset opened directly runs nothing.
ASSET_CSP: Final = "default-src 'none'; frame-ancestors 'none'"

_COMMON_HEADERS: Final = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Revalidate every time (cheap: 304 on a matching ETag) so an upgrade is seen at once.
    "Cache-Control": "no-cache",
}

_JS: Final = "text/javascript; charset=utf-8"
_TEXT: Final = "text/plain; charset=utf-8"
# Byte for byte from npm, each beside its licences:
# - swagger-ui-dist 5.35.0 (Apache-2.0; npm integrity sha512-U06rpMtW9V3XPGOBeamTUSr0Z09j
#   MX4IJuANpE/EZbAhw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ==): swagger-ui-bundle.js,
#   swagger-ui.css, its LICENSE and NOTICE;
# - redoc 2.5.4 (MIT; npm integrity sha512-M6jWhG1qoBnH6TFmzJnstyCZ87HmOY/UzDm78mHiYihEdl
#   V/YcS9ogOo1NlElnJMeLsyxHFe2yFc4sNjHTrABQ==): bundles/redoc.standalone.js and LICENSE.
# The major versions FastAPI's pages name (swagger-ui-dist@5, redoc@2).
_MEDIA_TYPES: Final = {
    "swagger-ui-bundle.js": _JS,
    "swagger-ui-bundle.js.LICENSE.txt": _TEXT,
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-dist.LICENSE.txt": _TEXT,
    "swagger-ui-dist.NOTICE.txt": _TEXT,
    "swagger-init.js": _JS,
    "redoc.standalone.js": _JS,
    "redoc.standalone.js.LICENSE.txt": _TEXT,
    "redoc.LICENSE.txt": _TEXT,
}
ASSETS: Final = frozenset(_MEDIA_TYPES)

_SWAGGER_PAGE: Final = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="{assets}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="{assets}/swagger-init.js" data-openapi-url="{openapi_url}"></script>
</body>
</html>
"""


@dataclass(frozen=True, slots=True)
class _Asset:
    body: bytes
    media_type: str
    etag: str


@functools.cache
def _read(name: str) -> _Asset:
    # Kept once read: the two bundles are 1.7 and 1.1 MB, hashed for their ETag.
    body = resources.files("seau.apidocs").joinpath("static", name).read_bytes()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return _Asset(body=body, media_type=_MEDIA_TYPES[name], etag=etag)


def _page(body: str, *, csp: str) -> Response:
    headers = {**_COMMON_HEADERS, "Content-Security-Policy": csp}
    return Response(body, media_type="text/html; charset=utf-8", headers=headers)


def _schema_url(request: Request) -> str:
    app: FastAPI = request.app
    return app.openapi_url or "/openapi.json"


@router.get("/docs")
async def swagger_ui(request: Request) -> Response:
    app: FastAPI = request.app
    page = _SWAGGER_PAGE.format(
        title=html.escape(f"{app.title} - Swagger UI"),
        assets=ASSET_PREFIX,
        openapi_url=html.escape(_schema_url(request)),
    )
    return _page(page, csp=SWAGGER_CSP)


@router.get("/redoc")
async def redoc(request: Request) -> Response:
    app: FastAPI = request.app
    page = get_redoc_html(
        openapi_url=_schema_url(request),
        title=f"{app.title} - ReDoc",
        redoc_js_url=f"{ASSET_PREFIX}/redoc.standalone.js",
        redoc_favicon_url="/static/favicon.svg",
        with_google_fonts=False,
    )
    return _page(bytes(page.body).decode(), csp=REDOC_CSP)


@router.get(ASSET_PREFIX + "/{name}")
async def asset(request: Request, name: str) -> Response:
    if name not in ASSETS:
        raise NotFound()
    found = _read(name)
    headers = {**_COMMON_HEADERS, "ETag": found.etag, "Content-Security-Policy": ASSET_CSP}
    if request.headers.get("if-none-match") == found.etag:
        return Response(status_code=304, headers=headers)
    return Response(found.body, media_type=found.media_type, headers=headers)
