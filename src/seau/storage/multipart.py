"""Staging areas for resumable uploads: an optional capability of a store.

A resumable (tus) upload arrives as many requests, possibly through different
instances, with restarts in between. Nothing about it may live in one process:
the caller records a `Staged` value in its database after every request, and
the staging area keeps the bytes. Only `open_upload_staging` knows which stores
have the capability; it is detected once, at startup.

Writes are two-phase. `append` writes after the recorded size and returns the
new state, which counts only once the caller has recorded it: until then,
`discard` drops it and a later `append` from the old state overwrites it. So a
request whose bytes must not count (a checksum mismatch, a lost lock) leaves
the upload exactly as it was.

- Local store: one staging file per upload under ``ROOT/.tmp/uploads/``,
  appended to and fsynced, renamed onto the final key when complete.
- S3: an S3 multipart upload on the final key; bytes after the last whole part
  wait in a tail object until the next request (see `s3_multipart`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import threading
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

from seau.storage.errors import StorageError, StorageUnavailable
from seau.storage.keys import validate_key
from seau.storage.local import (
    TEMP_DIR_NAME,
    BufferedCopy,
    LocalFileStore,
    _fsync_directory,
    _make_parents,
    _run,
    _run_owning,
)
from seau.storage.protocol import Store
from seau.storage.s3 import ObstoreS3Store

MiB = 1024 * 1024
MIN_PART_SIZE = 5 * MiB
MAX_PART_SIZE = 5 * 1024 * MiB
MAX_PARTS = 10_000
STAGING_DIR_NAME = "uploads"

_NAME = re.compile(r"[0-9A-Za-z_-]{1,64}")


class StagingLost(StorageError):
    """The staging data of an upload is gone or shorter than recorded; it cannot continue."""


def part_size_for(max_size: int, configured: int | None = None) -> int:
    """The S3 part size: ``configured``, or the smallest whole MiB of at least
    5 MiB with which 10,000 parts reach ``max_size``."""
    if configured is not None:
        if not MIN_PART_SIZE <= configured <= MAX_PART_SIZE:
            raise ValueError("the part size must be between 5 MiB and 5 GiB")
        if configured * MAX_PARTS < max_size:
            raise ValueError(f"{MAX_PARTS} parts of {configured} bytes cannot reach {max_size}")
        return configured
    needed = -(-max_size // MAX_PARTS)
    return max(MIN_PART_SIZE, -(-needed // MiB) * MiB)


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


def open_upload_staging(store: Store) -> UploadStaging | None:
    """The staging capability of ``store``, or None when it has none (memory store)."""
    if isinstance(store, LocalFileStore):
        return LocalUploadStaging(store)
    if isinstance(store, ObstoreS3Store):
        from seau.storage.s3_multipart import S3UploadStaging

        return S3UploadStaging(store.options)
    return None


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"invalid staging name: {name!r}")
    return name


class LocalUploadStaging:
    """Staging files under ``ROOT/.tmp/uploads/``: on the store's filesystem, so
    finishing is a rename, and outside its keys, so listings never see them."""

    def __init__(self, store: LocalFileStore, *, write_buffer_size: int = MiB) -> None:
        self._store = store
        self._directory = store.root / TEMP_DIR_NAME / STAGING_DIR_NAME
        self._write_buffer_size = write_buffer_size

    def _path(self, name: str) -> Path:
        return self._directory / check_name(name)

    async def begin(self, staged: Staged, *, content_type: str | None) -> str:
        await _run(self._create, self._path(staged.name))
        return staged.name

    def _create(self, path: Path) -> None:
        created = _make_parents(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        os.close(fd)
        for directory in dict.fromkeys([path.parent, *(d.parent for d in created)]):
            _fsync_directory(directory)

    async def append(self, staged: Staged, data: AsyncIterable[bytes]) -> Staged:
        path = self._path(staged.name)
        appender = await _run_owning(_Appender.open, _Appender.close, path, staged.size)
        copy = BufferedCopy(data)
        try:
            await copy.into(appender.write, buffer_size=self._write_buffer_size)
            size = await _run(appender.sync)
        except BaseException:
            with contextlib.suppress(OSError, StorageError):
                await asyncio.shield(_run(appender.truncate, staged.size))
            await copy.close_after_failure()
            raise
        finally:
            await asyncio.shield(_run(appender.close))
        return replace(staged, size=size)

    async def discard(self, *, old: Staged, new: Staged) -> None:
        await _run(_truncate_existing, self._path(old.name), old.size)

    async def settle(self, *, old: Staged, new: Staged) -> None:
        """Nothing to free: the file only grew."""

    async def finish(self, staged: Staged, *, content_type: str | None) -> None:
        await _run(self._finish, staged)

    def _finish(self, staged: Staged) -> None:
        path = self._path(staged.name)
        # Private, but the one definition of where a key lives (and of the
        # checks that keep it under the root) must not be duplicated here.
        final = self._store._resolve(validate_key(staged.key))
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            # Finished already, by a request that crashed before recording it?
            if final.is_file() and final.stat().st_size == staged.size:
                return
            raise StagingLost(f"staging file of {staged.name} is gone") from None
        try:
            size = os.fstat(fd).st_size
            if size < staged.size:
                raise StagingLost(f"staging file of {staged.name} has {size} of {staged.size}")
            # Beyond the recorded size is what an unrecorded request left.
            os.ftruncate(fd, staged.size)
            os.fsync(fd)
        finally:
            os.close(fd)
        created = _make_parents(final.parent)
        os.replace(path, final)
        for directory in dict.fromkeys([final.parent, path.parent, *(d.parent for d in created)]):
            _fsync_directory(directory)

    async def abort(self, staged: Staged) -> None:
        await _run(self._unlink, self._path(staged.name))

    @staticmethod
    def _unlink(path: Path) -> None:
        path.unlink(missing_ok=True)

    async def stale(self, *, older_than: datetime) -> AsyncIterator[StaleStaging]:
        for name in await _run(self._stale_names, older_than.timestamp()):
            yield StaleStaging(handle=name)

    def _stale_names(self, cutoff: float) -> list[str]:
        try:
            scan = os.scandir(self._directory)
        except FileNotFoundError:
            return []
        names = []
        with scan:
            for entry in scan:
                try:
                    if _NAME.fullmatch(entry.name) and entry.stat().st_mtime < cutoff:
                        names.append(entry.name)
                except FileNotFoundError:
                    continue
        return names

    async def remove_stale(self, item: StaleStaging) -> None:
        if item.handle is not None:
            await _run(self._unlink, self._path(item.handle))

    async def close(self) -> None:
        """Nothing to release: every file is closed when its operation ends."""


def _truncate_existing(path: Path, size: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.truncate(path, size)


class _Appender:
    """An open staging file written at explicit offsets, its descriptor under a lock
    (a cancelled ``await`` leaves its thread running; see `seau.storage.local`)."""

    def __init__(self, fd: int, position: int) -> None:
        self._fd = fd
        self.position = position
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path, size: int) -> _Appender:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise StagingLost(f"staging file {path.name} is gone") from None
        try:
            found = os.fstat(fd).st_size
            if found < size:
                raise StagingLost(f"staging file {path.name} has {found} of {size} bytes")
            if found > size:
                # What a request that was never recorded wrote: not part of the upload.
                os.ftruncate(fd, size)
        except BaseException:
            os.close(fd)
            raise
        return cls(fd, size)

    def write(self, data: bytes | bytearray) -> None:
        with self._lock:
            self._check_open()
            view = memoryview(data)
            while view:
                written = os.pwrite(self._fd, view, self.position)
                self.position += written
                view = view[written:]

    def sync(self) -> int:
        with self._lock:
            self._check_open()
            os.fsync(self._fd)
            return self.position

    def truncate(self, size: int) -> None:
        with self._lock:
            if self._fd >= 0:
                os.ftruncate(self._fd, size)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def _check_open(self) -> None:
        if self._fd < 0:
            raise StorageUnavailable("local store: write after close")
