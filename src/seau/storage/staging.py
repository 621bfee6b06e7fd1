"""Staging for resumable uploads: an optional capability of a store, and its protocol.

A resumable (tus) upload arrives as many requests, possibly through different
instances, with restarts in between. Nothing about it may live in one process:
the caller records a `Staged` value in its database after every request, and
the staging area keeps the bytes. Only `seau.storage.factory.open_staging` knows
which stores have the capability; it is detected once, at startup.

Writes are two-phase. `append` writes after the recorded size and returns the
new state, which counts only once the caller has recorded it: until then,
`discard` drops it and a later `append` from the old state overwrites it. So a
request whose bytes must not count (a checksum mismatch, a lost lock) leaves
the upload exactly as it was.

- Local store: one staging file per upload under ``ROOT/.tmp/uploads/``,
  appended to and fsynced, renamed onto the final key when complete
  (`local_staging`).
- S3: an S3 multipart upload on the final key; bytes after the last whole part
  wait in a tail object until the next request (`s3_staging`).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

NAME_PATTERN = re.compile(r"[0-9A-Za-z_-]{1,64}")
"""What a staging name is made of: safe as a file name and in an object key."""


@dataclass(frozen=True, slots=True)
class Part:
    number: int
    etag: str
    size: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Staged:
    """An upload in progress, as the caller records it between requests."""

    name: str
    """Unique per upload, made by the server (letters, digits, ``_``, ``-``)."""
    key: str
    """Where the finished object goes."""
    part_size: int
    handle: str | None = None
    """The store's id of the staging area, from `UploadStaging.begin`."""
    size: int = 0
    """Bytes kept so far."""
    parts: tuple[Part, ...] = ()
    tail_key: str | None = None


@dataclass(frozen=True, slots=True)
class StaleStaging:
    """Staging data older than a cutoff, for the reconciler to match against records.

    Exactly one of ``handle`` (a staging area, as `begin` returned it) and
    ``tail_key`` (a tail object) is set.
    """

    handle: str | None = None
    key: str | None = None
    tail_key: str | None = None


@runtime_checkable
class UploadStaging(Protocol):
    async def begin(self, staged: Staged, *, content_type: str | None) -> str:
        """Open a staging area for ``staged.key``; returns its handle, to record."""
        ...

    async def append(self, staged: Staged, data: AsyncIterable[bytes]) -> Staged:
        """Write ``data`` after ``staged.size``; returns the state to record.

        Memory stays bounded (a buffer, or one S3 part) whatever ``data`` holds.
        An exception from ``data`` propagates unchanged once what this call
        wrote is dropped. Raises `StagingLost` when the recorded data is gone.
        """
        ...

    async def discard(self, *, old: Staged, new: Staged) -> None:
        """Drop what the `append` that made ``new`` from ``old`` wrote."""
        ...

    async def settle(self, *, old: Staged, new: Staged) -> None:
        """``new`` is recorded: free what only ``old`` needed."""
        ...

    async def finish(self, staged: Staged, *, content_type: str | None) -> None:
        """Make the object at ``staged.key`` from everything staged, durably.

        Idempotent: finishing again after a crash finds the object made.
        """
        ...

    async def abort(self, staged: Staged) -> None:
        """Remove every staged byte of an upload that will never finish."""
        ...

    def stale(self, *, older_than: datetime) -> AsyncIterator[StaleStaging]:
        """Staging data last written before ``older_than``, whoever owns it."""
        ...

    async def remove_stale(self, item: StaleStaging) -> None: ...

    async def close(self) -> None: ...


def check_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise ValueError(f"invalid staging name: {name!r}")
    return name
