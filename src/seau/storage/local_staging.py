"""Local upload staging: one file per upload under ``ROOT/.tmp/uploads/``.

On the store's filesystem, so finishing is a rename, and outside its keys, so
listings never see staging files. See `seau.storage.staging` for the contract.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from seau.storage._disk import (
    FILE_MODE,
    BufferedCopy,
    MiB,
    RootDirectory,
    fsync_directory,
    make_parents,
    run_in_thread,
    run_owning,
)
from seau.storage.errors import StagingLost, StorageError, StorageUnavailable
from seau.storage.keys import validate_key
from seau.storage.staging import NAME_PATTERN, Staged, StaleStaging, check_name

STAGING_DIR_NAME = "uploads"


class LocalUploadStaging:
    """Staging files under ``ROOT/.tmp/uploads/``: on the store's filesystem, so
    finishing is a rename, and outside its keys, so listings never see them."""

    def __init__(self, root: RootDirectory, *, write_buffer_size: int = MiB) -> None:
        self._root = root
        self._directory = root.temp / STAGING_DIR_NAME
        self._write_buffer_size = write_buffer_size

    def _path(self, name: str) -> Path:
        return self._directory / check_name(name)

    async def begin(self, staged: Staged, *, content_type: str | None) -> str:
        await run_in_thread(self._create, self._path(staged.name))
        return staged.name

    def _create(self, path: Path) -> None:
        created = make_parents(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        os.close(fd)
        for directory in dict.fromkeys([path.parent, *(d.parent for d in created)]):
            fsync_directory(directory)

    async def append(self, staged: Staged, data: AsyncIterable[bytes]) -> Staged:
        path = self._path(staged.name)
        appender = await run_owning(_Appender.open, _Appender.close, path, staged.size)
        copy = BufferedCopy(data)
        try:
            await copy.into(appender.write, buffer_size=self._write_buffer_size)
            size = await run_in_thread(appender.sync)
        except BaseException:
            with contextlib.suppress(OSError, StorageError):
                await asyncio.shield(run_in_thread(appender.truncate, staged.size))
            await copy.close_after_failure()
            raise
        finally:
            await asyncio.shield(run_in_thread(appender.close))
        return replace(staged, size=size)

    async def discard(self, *, old: Staged, new: Staged) -> None:
        await run_in_thread(_truncate_existing, self._path(old.name), old.size)

    async def settle(self, *, old: Staged, new: Staged) -> None:
        """Nothing to free: the file only grew."""

    async def finish(self, staged: Staged, *, content_type: str | None) -> None:
        await run_in_thread(self._finish, staged)

    def _finish(self, staged: Staged) -> None:
        path = self._path(staged.name)
        final = self._root.file_for(validate_key(staged.key))
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
        created = make_parents(final.parent)
        os.replace(path, final)
        for directory in dict.fromkeys([final.parent, path.parent, *(d.parent for d in created)]):
            fsync_directory(directory)

    async def abort(self, staged: Staged) -> None:
        await run_in_thread(self._unlink, self._path(staged.name))

    @staticmethod
    def _unlink(path: Path) -> None:
        path.unlink(missing_ok=True)

    async def stale(self, *, older_than: datetime) -> AsyncIterator[StaleStaging]:
        for name in await run_in_thread(self._stale_names, older_than.timestamp()):
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
                    if NAME_PATTERN.fullmatch(entry.name) and entry.stat().st_mtime < cutoff:
                        names.append(entry.name)
                except FileNotFoundError:
                    continue
        return names

    async def remove_stale(self, item: StaleStaging) -> None:
        if item.handle is not None:
            await run_in_thread(self._unlink, self._path(item.handle))

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
