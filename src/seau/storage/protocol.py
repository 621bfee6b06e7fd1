"""The object-store verbs seau needs, as a small typed protocol.

Ranges are half-open: ``start`` is the first byte, ``end`` is one past the last
byte (``None`` means "to the end of the object"). HTTP's inclusive ranges are
converted only at the HTTP edge.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    last_modified: datetime | None = None
    etag: str | None = None


@runtime_checkable
class ByteStream(Protocol):
    """An opened read: iterate for chunks, ``aclose`` to release it early."""

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class Store(Protocol):
    async def put(
        self, key: str, data: AsyncIterable[bytes], *, content_type: str | None = None
    ) -> ObjectInfo:
        """Write all of ``data`` under ``key``; the object appears whole or not at all.

        Durable when it returns, with the object as the store holds it: its ``size``
        is what was stored (the local store's synced file, read back; on S3, the
        bytes of a PUT or a completed multipart upload, which S3 accepts only whole),
        so a caller need not ask `head` again. Raises ``StorageUnavailable`` on failure, after
        cleaning up anything partial. An exception raised by ``data`` itself
        propagates unchanged (after the same cleanup).
        """
        ...

    async def get(self, key: str, *, start: int = 0, end: int | None = None) -> ByteStream:
        """Open ``key`` for reading ``[start, end)``.

        The range is clamped to the object like a slice of ``bytes``: an ``end``
        past the size stops at the size, and a ``start`` at or past the size (or
        ``start == end``) gives an empty stream, though a missing object still
        raises ``ObjectNotFound``. ``start < 0`` or ``end < start`` is a
        ``ValueError``. Deciding that a range is unsatisfiable is the caller's job.

        The request is made before this returns, so ``ObjectNotFound`` and
        ``StorageUnavailable`` are raised here, before any byte is produced.
        A failure while iterating raises ``StorageUnavailable``.
        """
        ...

    async def head(self, key: str) -> ObjectInfo: ...

    async def delete(self, key: str) -> None:
        """Remove ``key``; deleting a missing object is not an error."""
        ...

    def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``, in no particular order."""
        ...

    async def close(self) -> None: ...


class DownloadLinks(Protocol):
    """A store's optional capability: URLs that fetch an object from the store itself."""

    async def presign_get(
        self,
        key: str,
        *,
        expires_in: timedelta,
        content_type: str,
        content_disposition: str,
    ) -> str | None:
        """A URL that answers a GET of ``key`` for ``expires_in`` with these
        ``Content-Type`` and ``Content-Disposition`` headers, whoever holds it.

        None when the store has no credentials to sign with. Raises
        ``StorageUnavailable`` when signing fails otherwise.
        """
        ...


async def probe(store: Store) -> None:
    """Raise unless the store answers. A listing, not a HEAD: on S3 a HEAD of a
    missing key and a HEAD in a missing bucket both answer a bare 404."""
    async for _ in store.list("health/"):
        break
