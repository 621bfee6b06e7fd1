"""The media type of an upload, decided from its first bytes rather than its claims.

An uploader's `Content-Type`, tus `filetype` and file name are claims: kept as the
file's `declared_type`, never used to serve it. The stored `content_type` is what
libmagic (the engine of Debian's `file --mime-type`, through python-magic) makes of
the first `SNIFF_BYTES`, and `SEAU_ALLOWED_TYPES` is checked against it before the
upload stores a byte (docs/decisions.md, "Content types from the bytes").

libmagic is imported on the first detection, so that the commands and clients that
never detect anything do not need it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from seau.errors import ConfigurationError, TypeNotAllowed
from seau.files.names import OCTET_STREAM, sanitize_content_type

if TYPE_CHECKING:
    import magic

__all__ = [
    "EMPTY",
    "SNIFF_BYTES",
    "Sniffed",
    "TypePolicy",
    "detect",
    "sniff",
]

log = logging.getLogger("seau.files")

SNIFF_BYTES: Final = 16 * 1024
"""Bytes detection looks at, and an upload's bytes held back until it has: enough for
every format whose signature is not at the end (an OOXML document's first zip entries,
an MP4's `ftyp`, a tar header at 257, HTML and SVG after a long comment); less than
libmagic's own 1 MiB, because its text rules cost time in proportion to the bytes."""

EMPTY: Final = "application/x-empty"
"""libmagic's type for no bytes (`file` says `inode/x-empty` of an empty file)."""

_local = threading.local()


def _cookie() -> magic.Magic:
    """This thread's libmagic handle: one handle must not be used by two threads."""
    found: magic.Magic | None = getattr(_local, "magic", None)
    if found is None:
        # Imported here: libmagic is needed only where bytes are detected.
        try:
            import magic
        except ImportError as exc:  # python-magic raises ImportError without libmagic
            raise ConfigurationError(
                "content types are detected with libmagic: install it "
                "(Debian, Ubuntu: apt-get install libmagic1)"
            ) from exc
        found = magic.Magic(mime=True)
        _local.magic = found
    return found


def detect(head: bytes) -> str:
    """The media type of content starting with ``head`` (its first `SNIFF_BYTES` are
    looked at), lowercase ``type/subtype``; ``application/octet-stream`` when
    libmagic knows nothing better or fails."""
    if not head:
        return EMPTY
    cookie = _cookie()
    try:
        found = cookie.from_buffer(head[:SNIFF_BYTES])
    except Exception:
        log.warning("libmagic could not tell the type of %d bytes", len(head), exc_info=True)
        return OCTET_STREAM
    return sanitize_content_type(found)


@dataclass(frozen=True, slots=True)
class TypePolicy:
    """Which detected types may be stored: ``allowed`` holds `type/subtype` and
    `type/*` patterns (lowercase); empty allows every type."""

    allowed: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> TypePolicy:
        """From `SEAU_ALLOWED_TYPES` as the settings checked it (comma-separated)."""
        return cls(tuple(item for item in text.split(",") if item))

    def allows(self, media_type: str) -> bool:
        if not self.allowed:
            return True
        major = media_type.partition("/")[0]
        return any(
            pattern == media_type or pattern == "*/*" or pattern == f"{major}/*"
            for pattern in self.allowed
        )

    def check(self, media_type: str) -> None:
        """`TypeNotAllowed` naming ``media_type`` unless it may be stored."""
        if not self.allows(media_type):
            raise TypeNotAllowed(detected=media_type, allowed=self.allowed)

    async def detect(self, head: bytes) -> str:
        """`detect` on a worker thread (libmagic's text rules take milliseconds,
        which the event loop's other requests should not wait for), then `check`."""
        media_type = await asyncio.to_thread(detect, head) if head else EMPTY
        self.check(media_type)
        return media_type


class Sniffed:
    """An upload's byte stream whose first bytes were read ahead (`sniff`): iterating
    gives every chunk of the source, the first ones included, in order. An error the
    source raised while being read ahead is raised again where it happened, after
    the chunks that came before it."""

    def __init__(
        self, head: Sequence[bytes], rest: AsyncIterator[bytes], error: Exception | None
    ) -> None:
        self.head = b"".join(head)
        """The bytes read ahead: `SNIFF_BYTES` or more, or all there were."""
        self._chunks = list(head)
        self._rest = rest
        self._error = error
        self.error = error
        """What the source raised before `SNIFF_BYTES` came, if it did."""

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._replay()

    async def _replay(self) -> AsyncIterator[bytes]:
        chunks, self._chunks = self._chunks, []
        for chunk in chunks:
            yield chunk
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        async for chunk in self._rest:
            yield chunk


async def sniff(data: AsyncIterable[bytes], *, size: int = SNIFF_BYTES) -> Sniffed:
    """Read ``data`` until ``size`` bytes came (or it ended), holding them back."""
    iterator = aiter(data)
    chunks: list[bytes] = []
    count = 0
    error: Exception | None = None
    while count < size:
        try:
            chunk = await anext(iterator)
        except StopAsyncIteration:
            break
        except Exception as exc:
            # Raised again in order, where the consumer would have met it (a tus
            # body's interruption ends the bytes rather than failing them).
            error = exc
            break
        chunks.append(chunk)
        count += len(chunk)
    return Sniffed(chunks, iterator, error)
