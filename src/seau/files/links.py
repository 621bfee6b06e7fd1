"""Download links: short-lived URLs that fetch one file without a bearer token.

On a store that signs its own URLs (S3), a link is a presigned GET: the bytes go
from the bucket to the client, never through seau. On any other store (the local
one), a link is a seau URL carrying the file, its owner, the expiry and the
disposition, signed with HMAC-SHA256 under a key derived from seau's secret key;
seau serves it like the owner's own download. No table: a link lives exactly
until it expires, and deleting its file ends it (docs/decisions.md, "Download
links").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from seau.errors import InvalidLink, LinkExpired, LinkNotFound, storage_call
from seau.files.http import content_disposition
from seau.files.service import StoredFile
from seau.storage import DownloadLinks as StoreLinks

__all__ = ["LINKS_PATH", "DownloadLinks", "Link", "LinkClaims", "sign_token"]

LINKS_PATH: Final = "/api/v1/links/"
"""Where seau serves the links it signs itself: ``LINKS_PATH + token``."""

_VERSION: Final = "1"
_KEY_CONTEXT: Final = b"seau download link v1"
_DISPOSITIONS: Final = {"a": False, "i": True}


@dataclass(frozen=True, slots=True)
class Link:
    url: str
    """Absolute (presigned by the store), or a seau path starting with ``/``."""
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class LinkClaims:
    """What a seau-signed link stands for."""

    file_id: uuid.UUID
    owner_id: uuid.UUID
    expires: int
    """Unix time, in seconds, after which the link is refused."""
    inline: bool


def _link_key(secret: str) -> bytes:
    # Derived, so that a link can never pass for anything else signed with the
    # secret key (access tokens), nor the other way round.
    return hmac.new(secret.encode("utf-8"), _KEY_CONTEXT, hashlib.sha256).digest()


def _mac(key: bytes, payload: str) -> str:
    digest = hmac.new(key, payload.encode("utf-8", "replace"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _payload(claims: LinkClaims) -> str:
    disposition = "i" if claims.inline else "a"
    return ".".join(
        (_VERSION, claims.file_id.hex, claims.owner_id.hex, str(claims.expires), disposition)
    )


def sign_token(secret: str, claims: LinkClaims) -> str:
    """The token of a seau-signed link: the claims in the clear, then their HMAC."""
    payload = _payload(claims)
    return f"{payload}.{_mac(_link_key(secret), payload)}"


class DownloadLinks:
    """Makes download links and checks the ones seau signed itself."""

    def __init__(
        self,
        *,
        secret: str,
        max_ttl: timedelta,
        store_links: StoreLinks | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = _link_key(secret)
        self._max_ttl = max_ttl
        self._store_links = store_links
        self._clock = clock

    @property
    def max_ttl(self) -> timedelta:
        return self._max_ttl

    def lifetime(self, expires_in: int | None) -> timedelta:
        """``expires_in`` seconds as a lifetime (the longest allowed when None);
        raises `InvalidLink` past `SEAU_LINK_MAX_TTL_SECONDS`."""
        if expires_in is None:
            return self._max_ttl
        if expires_in < 1:
            raise InvalidLink("`expires_in` must be at least 1 second")
        if expires_in > self._max_ttl.total_seconds():
            raise InvalidLink(
                f"`expires_in` may be at most {int(self._max_ttl.total_seconds())} seconds"
            )
        return timedelta(seconds=expires_in)

    async def issue(self, row: StoredFile, *, lifetime: timedelta, inline: bool) -> Link:
        """A link to ``row``'s bytes for ``lifetime``; ``inline`` must already be
        decided by `disposition_for` (never inline for an active type)."""
        now = self._clock()
        if self._store_links is not None:
            url = await storage_call(
                self._store_links.presign_get(
                    row.object_key,
                    expires_in=lifetime,
                    content_type=row.content_type,
                    content_disposition=content_disposition(row.name, inline=inline),
                )
            )
            if url is not None:
                return Link(url=url, expires_at=_at(now + lifetime.total_seconds()))
        expires = math.ceil(now + lifetime.total_seconds())
        claims = LinkClaims(file_id=row.id, owner_id=row.owner_id, expires=expires, inline=inline)
        payload = _payload(claims)
        token = f"{payload}.{_mac(self._key, payload)}"
        return Link(url=LINKS_PATH + token, expires_at=_at(expires))

    def verify(self, token: str) -> LinkClaims:
        """The claims of a link seau signed; `LinkNotFound` for anything it did not
        sign, `LinkExpired` for one whose time is up (checked after the signature,
        so a forger learns nothing)."""
        payload, _, mac = token.rpartition(".")
        expected = _mac(self._key, payload).encode("ascii")
        if not payload or not hmac.compare_digest(mac.encode("utf-8", "replace"), expected):
            raise LinkNotFound()
        claims = _parse(payload)
        if self._clock() >= claims.expires:
            raise LinkExpired()
        return claims


def _parse(payload: str) -> LinkClaims:
    parts = payload.split(".")
    # Signed by seau, so well formed unless another version of seau made it.
    if len(parts) != 5 or parts[0] != _VERSION or parts[4] not in _DISPOSITIONS:
        raise LinkNotFound()
    try:
        return LinkClaims(
            file_id=uuid.UUID(hex=parts[1]),
            owner_id=uuid.UUID(hex=parts[2]),
            expires=int(parts[3]),
            inline=_DISPOSITIONS[parts[4]],
        )
    except ValueError:
        raise LinkNotFound() from None


def _at(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)
