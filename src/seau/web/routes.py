"""Serve the web page at `/` and its assets under `/static/`.

The page is a client of the JSON API like any other: it holds a bearer token and
calls `/api/v1/...`. Nothing here reads the database or the store. The assets are a
fixed allowlist read from the package, so no request path ever reaches the disk.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from typing import Final

from fastapi import APIRouter, Request, Response

from seau.errors import NotFound

router = APIRouter(include_in_schema=False)

# Scripts and styles come only from our origin, never inline, and Trusted Types with no
# policy forbids every string-to-DOM sink (innerHTML, eval): file names are written by
# uploaders and must only ever reach the page as text.
PAGE_CSP: Final = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        # Forms are sent by the script; without it they must not submit passwords anywhere.
        "form-action 'none'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    ]
)
# An asset opened directly (the SVG icon) must not run anything either.
ASSET_CSP: Final = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"

_COMMON_HEADERS: Final = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Revalidate every time (cheap: 304 on a matching ETag) so an upgrade is seen at once.
    "Cache-Control": "no-cache",
}

_MEDIA_TYPES: Final = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
    # tus-js-client 4.3.1 (MIT; https://github.com/tus/tus-js-client): its dist/tus.min.js
    # byte for byte, the version tests/uploads/js/package-lock.json pins. That file has no
    # licence header, so the licences (its own and its bundled modules') ship beside it
    # in tus.min.js.LICENSE.txt, served too. The page uploads large files with it, resumably.
    "tus.min.js": "text/javascript; charset=utf-8",
    "tus.min.js.LICENSE.txt": "text/plain; charset=utf-8",
}
ASSETS: Final = frozenset(_MEDIA_TYPES) - {"index.html"}


@dataclass(frozen=True, slots=True)
class _Asset:
    body: bytes
    media_type: str
    etag: str


def _read(name: str) -> _Asset:
    body = resources.files("seau.web").joinpath("static", name).read_bytes()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return _Asset(body=body, media_type=_MEDIA_TYPES[name], etag=etag)


def _serve(request: Request, name: str, *, csp: str) -> Response:
    asset = _read(name)
    headers = {**_COMMON_HEADERS, "ETag": asset.etag, "Content-Security-Policy": csp}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


@router.get("/")
async def page(request: Request) -> Response:
    return _serve(request, "index.html", csp=PAGE_CSP)


@router.get("/static/{name}")
async def asset(request: Request, name: str) -> Response:
    if name not in ASSETS:
        raise NotFound()
    return _serve(request, name, csp=ASSET_CSP)
