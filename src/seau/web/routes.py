"""Serve the web page at `/` and its assets under `/static/`, and tell it (and any
client) how to sign in at `/api/v1/auth/options`.

The page is a client of the JSON API like any other: it holds a bearer token and
calls `/api/v1/...`. Nothing here reads the database or the store. The assets are a
fixed allowlist read from the package, so no request path ever reaches the disk.
With an identity provider's public client configured, the page signs in there
(Authorization Code with PKCE) and its CSP lets it reach the provider's origin, and
no other. On S3 the page sends large files straight to the bucket (direct uploads),
so the bucket's origins join its `connect-src`; on the local store nothing does.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from importlib import resources
from typing import Final
from urllib.parse import urlsplit

from fastapi import APIRouter, Request, Response

from seau.deps import SettingsDep
from seau.errors import NotFound
from seau.settings import Settings, provider_origin
from seau.web.schemas import DirectUploadOptions, OidcClient, SignInOptions

router = APIRouter()


@functools.cache
def page_csp(issuer: str | None, bucket: tuple[str, ...] = ()) -> str:
    """The page's CSP; with a provider, its origin joins `connect-src` (discovery, the
    token endpoint). The page reaches the provider's sign-in and sign-out pages by
    navigating there, which no CSP directive governs, so `form-action` stays `'none'`.
    ``bucket``: the origins the page PUTs direct uploads' parts to (`bucket_origins`)."""
    sources = ["'self'"]
    if issuer is not None:
        sources.append(provider_origin(issuer))
    sources.extend(bucket)
    connect = "connect-src " + " ".join(sources)
    # Scripts and styles come only from our origin, never inline, and Trusted Types with
    # no policy forbids every string-to-DOM sink (innerHTML, eval): file names are
    # written by uploaders and must only ever reach the page as text.
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            connect,
            "object-src 'none'",
            "base-uri 'none'",
            # Forms are sent by the script; without it they must not submit passwords
            # anywhere.
            "form-action 'none'",
            "frame-ancestors 'none'",
            "require-trusted-types-for 'script'",
            "trusted-types 'none'",
        ]
    )


PAGE_CSP: Final = page_csp(None)
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


def _page_issuer(settings: Settings) -> str | None:
    return settings.oidc_issuer if settings.oidc_client_id is not None else None


def bucket_origins(settings: Settings) -> tuple[str, ...]:
    """Where the URLs S3 presigns for a direct upload point, from the settings alone
    (the page is served without touching the store): the endpoint's host, and the
    bucket's own host under it. The SDK addresses the bucket either way (path style
    for an IP address or a dotted name over HTTPS, or when asked), so both are named;
    both are the provider's. Empty on the local store, and when the endpoint is no
    origin a CSP can name: the page then uploads through seau."""
    storage = urlsplit(settings.effective_storage_url)
    if storage.scheme != "s3" or not storage.netloc:
        return ()
    bucket = storage.netloc.lower()
    if settings.aws_endpoint_url is not None:
        try:
            endpoint = provider_origin(settings.aws_endpoint_url)
        except ValueError:
            return ()
        scheme, host = endpoint.split("://", 1)
        hosts = [host]
    else:
        region = (settings.aws_region or "us-east-1").lower()
        suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
        hosts = [f"s3.{region}.{suffix}"]
        if region == "us-east-1":
            hosts.insert(0, f"s3.{suffix}")
        scheme = "https"
    origins = [f"{scheme}://{h}" for h in hosts]
    if not settings.s3_path_style:
        origins.extend(f"{scheme}://{bucket}.{h}" for h in hosts)
    return tuple(origins)


def _direct_options(settings: Settings) -> DirectUploadOptions | None:
    if not bucket_origins(settings):
        return None
    return DirectUploadOptions(multipart_threshold_bytes=settings.direct_multipart_threshold_bytes)


@router.get("/", include_in_schema=False)
async def page(request: Request, settings: SettingsDep) -> Response:
    csp = page_csp(_page_issuer(settings), bucket_origins(settings))
    return _serve(request, "index.html", csp=csp)


@router.get(
    "/api/v1/auth/options",
    response_model=SignInOptions,
    tags=["users"],
    summary="How to sign in",
    description="Public: whether seau's own accounts are on, the identity "
    "provider's public client (issuer, client id, scopes) when one is configured, and, "
    "on S3, from what size the page sends files straight to the bucket. The web page "
    "reads it before showing its sign-in.",
)
async def sign_in_options(settings: SettingsDep, response: Response) -> SignInOptions:
    response.headers["Cache-Control"] = "no-cache"
    oidc = None
    issuer = _page_issuer(settings)
    if issuer is not None and settings.oidc_client_id is not None:
        oidc = OidcClient(
            issuer=issuer, client_id=settings.oidc_client_id, scopes=settings.oidc_scopes
        )
    return SignInOptions(
        local_accounts=settings.local_accounts,
        oidc=oidc,
        direct_uploads=_direct_options(settings),
    )


@router.get("/static/{name}", include_in_schema=False)
async def asset(request: Request, name: str) -> Response:
    if name not in ASSETS:
        raise NotFound()
    return _serve(request, name, csp=ASSET_CSP)
