"""The URLs seau signs for direct uploads on a store that cannot sign its own (the
local store): they point at seau's routes, which stream the bytes into the store,
so a client written for S3's presigned POST and part PUTs works unchanged.

Like the download links (`seau.files.links`), no table: the URL carries what it is
for (the upload, the single object or one part, the expiry) and an HMAC-SHA256 of
that under a key derived from seau's secret key for this purpose alone.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Final

from seau.direct.errors import BadSignature, UrlExpired

DIRECT_PATH: Final = "/api/v1/direct-uploads"
_KEY_CONTEXT: Final = b"seau direct upload url v1"
OBJECT: Final = "object"
"""What a single-part URL is for; a part's is ``part<number>``."""


def part_target(number: int) -> str:
    return f"part{number}"


class UrlSigner:
    def __init__(self, *, secret: str, clock: Callable[[], float] = time.time) -> None:
        self._key = hmac.new(secret.encode("utf-8"), _KEY_CONTEXT, hashlib.sha256).digest()
        self._clock = clock

    def _mac(self, upload_id: uuid.UUID, target: str, expires: int) -> str:
        payload = f"{upload_id.hex}.{target}.{expires}".encode("ascii")
        digest = hmac.new(self._key, payload, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def sign(self, upload_id: uuid.UUID, target: str, *, lifetime: timedelta) -> tuple[str, int]:
        """The query string of a URL for ``target`` of ``upload_id``, and its expiry
        (Unix seconds)."""
        expires = math.ceil(self._clock() + lifetime.total_seconds())
        return f"expires={expires}&signature={self._mac(upload_id, target, expires)}", expires

    def verify(self, upload_id: uuid.UUID, target: str, *, expires: str, signature: str) -> None:
        """`BadSignature` unless seau signed exactly this; `UrlExpired` once its time
        is up (checked after the signature, so a forger learns nothing)."""
        if not expires.isdigit() or len(expires) > 12:
            raise BadSignature()
        expected = self._mac(upload_id, target, int(expires)).encode("ascii")
        if not hmac.compare_digest(signature.encode("utf-8", "replace"), expected):
            raise BadSignature()
        if self._clock() >= int(expires):
            raise UrlExpired()
