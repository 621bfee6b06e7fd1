"""Behind a reverse proxy: who the client is, and the URLs seau gives out.

The client's address and scheme come from forwarded headers only when the direct
peer is one of ``SEAU_TRUSTED_PROXIES``: uvicorn's `ProxyHeadersMiddleware` does
that (addresses and CIDR networks; ``X-Forwarded-For`` walked from the right,
skipping trusted hops). RFC 7239 ``Forwarded`` is read when a request has no
``X-Forwarded-For``, by rewriting it into the ``X-Forwarded-*`` pair that
middleware reads, so the trust rule is the same one. A proxy that sets
``Forwarded`` must therefore drop any ``X-Forwarded-For`` a client sent.

Absolute URLs start with ``SEAU_PUBLIC_URL``; without it seau answers paths
(resolved by the client against the URL it used), never a URL built from ``Host``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware


def public_url(request: HTTPConnection, path: str) -> str:
    """``path`` (absolute, starting with ``/``) as the URL a client should use."""
    settings: Any = request.app.state.seau.settings
    base: str | None = settings.public_url
    return f"{base}{path}" if base else path


def behind_proxies(app: ASGIApp, trusted: list[str]) -> ASGIApp:
    """``app`` reading forwarded headers from the ``trusted`` peers; ``app`` itself
    when none is trusted."""
    if not trusted:
        return app
    return ForwardedHeader(ProxyHeadersMiddleware(app, trusted_hosts=trusted))  # type: ignore[arg-type]


class ForwardedHeader:
    """Rewrite an RFC 7239 ``Forwarded`` header as ``X-Forwarded-For`` and
    ``X-Forwarded-Proto`` when the request has no ``X-Forwarded-For``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            headers: list[tuple[bytes, bytes]] = scope["headers"]
            names = {name for name, _ in headers}
            if b"forwarded" in names and b"x-forwarded-for" not in names:
                value = b", ".join(v for n, v in headers if n == b"forwarded")
                hops, proto = parse_forwarded(value.decode("latin-1"))
                extra = []
                if hops:
                    extra.append((b"x-forwarded-for", ", ".join(hops).encode("latin-1")))
                if proto is not None:
                    extra.append((b"x-forwarded-proto", proto.encode("latin-1")))
                if extra:
                    kept = [(n, v) for n, v in headers if n != b"x-forwarded-proto"]
                    scope = {**scope, "headers": kept + extra}
        await self.app(scope, receive, send)


def parse_forwarded(value: str) -> tuple[list[str], str | None]:
    """The ``for`` of each element, first to last (as ``X-Forwarded-For`` lists
    them), and the ``proto`` of the last element that has one (the nearest proxy's)."""
    hops: list[str] = []
    proto: str | None = None
    for element in _split(value, ","):
        for pair in _split(element, ";"):
            name, _, raw = pair.partition("=")
            name = name.strip().lower()
            text = raw.strip()
            if len(text) >= 2 and text[0] == text[-1] == '"':
                text = text[1:-1].replace('\\"', '"')
            if name == "for" and text:
                hops.append(text)
            elif name == "proto" and text:
                proto = text.lower()
    return hops, proto


def _split(value: str, separator: str) -> list[str]:
    """``value`` split at ``separator`` outside quoted strings."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for character in value:
        if character == '"':
            quoted = not quoted
        if character == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(character)
    parts.append("".join(current))
    return [part for part in parts if part.strip()]
