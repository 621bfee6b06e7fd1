"""The byte meter of every upload, plain (`POST /api/v1/files`) and resumable (tus).

Imported by `files.service` and `uploads.service`; it imports neither.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import TYPE_CHECKING

from seau.errors import PayloadTooLarge, SeauError

if TYPE_CHECKING:
    from hashlib import _Hash


def _file_too_large(limit: int) -> SeauError:
    return PayloadTooLarge(f"the file exceeds the limit of {limit} bytes")


class ByteMeter:
    """Passes a body's chunks through while counting and hashing them, and
    raises ``too_large(limit)`` as soon as more than ``limit`` bytes came.

    ``sha256`` is the state to continue: a fresh one, a resumable upload's
    bytes so far, or None to skip SHA-256 (the object is read back at
    completion instead). The options, all off for a plain upload, whose loop
    then does nothing else:

    - ``extra``: a second digest (the tus `Upload-Checksum` of this request);
    - ``stop``: called before each chunk is taken; raises to stop the body
      (a resumable upload whose lease was lost);
    - ``interruptions``: exceptions of the source that end the body early
      rather than fail it; ``interrupted`` tells afterwards.

    SHA-256 runs on the event loop, chunk by chunk: hashing 1 MiB batches on a
    worker thread took the loop's share of a 512 MiB upload from 63-65 % to
    40-45 % of a core but cost more CPU in all (2.2-2.3 vs 1.9 s/GiB: a copy per
    batch and a thread trip), 2 MiB more memory, and no throughput on two cores
    (docs/benchmarks.md, "Tried and dropped").
    """

    def __init__(
        self,
        source: AsyncIterable[bytes],
        *,
        limit: int,
        too_large: Callable[[int], SeauError] = _file_too_large,
        sha256: _Hash | None,
        extra: _Hash | None = None,
        stop: Callable[[], None] | None = None,
        interruptions: tuple[type[Exception], ...] = (),
    ) -> None:
        self._source = source
        self._limit = limit
        self._too_large = too_large
        self.sha256 = sha256
        self.extra = extra
        self._stop = stop
        self._interruptions = interruptions
        self.size = 0
        self.interrupted = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        if (
            self.sha256 is not None
            and self.extra is None
            and self._stop is None
            and not self._interruptions
        ):
            return self._plain(self.sha256)
        return self._with_options()

    async def _plain(self, sha256: _Hash) -> AsyncIterator[bytes]:
        async for chunk in self._source:
            self.size += len(chunk)
            if self.size > self._limit:
                raise self._too_large(self._limit)
            sha256.update(chunk)
            yield chunk

    async def _with_options(self) -> AsyncIterator[bytes]:
        iterator = aiter(self._source)
        while True:
            try:
                chunk = await anext(iterator)
            except StopAsyncIteration:
                return
            except self._interruptions:
                self.interrupted = True
                return
            if self._stop is not None:
                self._stop()
            self.size += len(chunk)
            if self.size > self._limit:
                raise self._too_large(self._limit)
            if self.extra is not None:
                self.extra.update(chunk)
            if self.sha256 is not None:
                self.sha256.update(chunk)
            yield chunk
