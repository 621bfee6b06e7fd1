"""Direct uploads: the optional capabilities a store offers for bytes that reach it
without passing through seau (`seau.direct`), and their protocols.

Two capabilities, each found once by `seau.storage.factory`:

- `DirectTarget` (the local store and S3): multipart uploads the client fills part
  by part, listed, completed and aborted by seau; and the full-object SHA-256 the
  store may keep.
- `UploadSigner` (S3 only): URLs that let whoever holds them send the bytes to the
  store itself: a presigned POST for one part (its policy fixes the key and the
  `Content-Type` and bounds the size), presigned PUTs for multipart parts. Without
  it, seau signs URLs to its own routes, which write through `ReceivesParts`.

seau chooses every key; nothing here takes a key from a client.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol, runtime_checkable

from seau.storage.errors import StorageError


@dataclass(frozen=True, slots=True)
class StoredPart:
    """A part the store holds for a multipart upload."""

    number: int
    etag: str
    size: int


@dataclass(frozen=True, slots=True)
class PresignedPost:
    """An HTML-form POST: send ``fields``, then the file as the last field, to ``url``."""

    url: str
    fields: dict[str, str] = field(default_factory=dict)


class PartsRejected(StorageError):
    """The store refused to complete a multipart upload from the parts given (a part
    missing or with another ETag, a part other than the last under the minimum)."""


@runtime_checkable
class DirectTarget(Protocol):
    async def start_multipart(self, key: str, *, content_type: str) -> str:
        """Start a multipart upload to ``key``; returns its handle, to record."""
        ...

    async def list_parts(self, key: str, *, handle: str) -> list[StoredPart]:
        """The parts stored so far, by number. ``ObjectNotFound`` when the multipart
        upload is gone (completed or aborted)."""
        ...

    async def complete_multipart(
        self, key: str, *, handle: str, parts: Sequence[tuple[int, str]]
    ) -> None:
        """Make the object at ``key`` from ``parts`` (number, ETag), in order.
        `PartsRejected` when they do not match what is stored."""
        ...

    async def abort_multipart(self, key: str, *, handle: str) -> None:
        """Drop the multipart upload and its parts; an unknown one is not an error."""
        ...

    async def stored_sha256(self, key: str) -> str | None:
        """The object's full-object SHA-256 (hex) as the store verified it on
        arrival, or None when it keeps none (then the caller reads the object)."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class ReceivesParts(Protocol):
    """The target's side of the URLs seau signs itself: parts written through seau."""

    async def write_part(
        self, key: str, *, handle: str, number: int, data: AsyncIterable[bytes]
    ) -> StoredPart:
        """Store ``data`` as part ``number``, replacing one of the same number.
        ``ObjectNotFound`` when the multipart upload is gone."""
        ...


@runtime_checkable
class UploadSigner(Protocol):
    async def presign_post(
        self,
        key: str,
        *,
        content_type: str,
        size: int,
        expires_in: timedelta,
        sha256: str | None,
    ) -> PresignedPost | None:
        """A POST that stores exactly ``size`` bytes of ``content_type`` at ``key``
        (and, with ``sha256``, only those bytes), for ``expires_in``. None when
        the store has no credentials to sign with."""
        ...

    async def presign_part(
        self, key: str, *, handle: str, number: int, expires_in: timedelta
    ) -> str | None:
        """A URL to PUT part ``number`` of the multipart upload ``handle``."""
        ...
