"""Objects as files under one directory: the embedded default store.

Written by hand rather than with obstore's ``LocalStore`` because that one never
fsyncs (a crash can lose an upload the database already calls ``ready``) and
reads in 8 KiB pieces; see docs/decisions.md, "Local store".

Every blocking call runs in a worker thread. A file descriptor is only touched
under its lock, because a cancelled ``await`` leaves its thread running, and
closing the descriptor under it could make the thread write into whatever file
reuses that number.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import secrets
import stat
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Self

from seau.storage._disk import (
    FILE_MODE,
    TEMP_DIR_NAME,
    BufferedCopy,
    MiB,
    RootDirectory,
    check_key,
    fsync_directory,
    make_parents,
    run_in_thread,
    run_owning,
)
from seau.storage.errors import InvalidKey, ObjectNotFound, StorageUnavailable
from seau.storage.keys import check_range, prefix_directory
from seau.storage.protocol import ByteStream, ObjectInfo

READ_ON_LOOP_BYTES = 64 * 1024
"""The default of `LocalFileStore`'s ``read_on_loop_bytes``."""
_TEMP_SUFFIX = ".part"
_LIST_BATCH = 1000
_MISSING = (FileNotFoundError, NotADirectoryError)


class LocalFileStore:
    """A `Store` keeping each object as a file at ``root/<key>``.

    Writes go to ``root/.tmp/`` and are renamed into place after an fsync of the
    file, then the directory is fsynced, so an object is either absent or whole
    and durable. ``root/.tmp`` must stay on the same filesystem as ``root``.
    """

    def __init__(
        self,
        root: Path,
        *,
        write_buffer_size: int = MiB,
        read_chunk_size: int = MiB,
        read_on_loop_bytes: int = READ_ON_LOOP_BYTES,
    ) -> None:
        """``read_on_loop_bytes``: a read of at most this many bytes is made on the
        event loop's thread (the file's open and `fstat` too, for every read); 0
        makes every read in a worker thread (docs/decisions.md, "Small reads of the
        local store on the event loop")."""
        if write_buffer_size <= 0 or read_chunk_size <= 0:
            raise ValueError("buffer sizes must be positive")
        if read_on_loop_bytes < 0:
            raise ValueError("read_on_loop_bytes must not be negative")
        self._directory = RootDirectory(root)
        self._write_buffer_size = write_buffer_size
        self._read_chunk_size = read_chunk_size
        self._read_on_loop_bytes = read_on_loop_bytes

    @property
    def root(self) -> Path:
        return self._directory.path

    @property
    def directory(self) -> RootDirectory:
        """Where keys live: for the factory to hand to this store's upload staging."""
        return self._directory

    async def put(
        self, key: str, data: AsyncIterable[bytes], *, content_type: str | None = None
    ) -> ObjectInfo:
        """Write ``data`` durably under ``key``. ``content_type`` is not stored on disk."""
        check_key(key)
        copy = BufferedCopy(data)
        try:
            first, ended = await copy.gather(self._write_buffer_size)
        except BaseException:
            await copy.close_after_failure()
            raise
        if ended:
            return await self._put_whole(key, first)
        temp = await run_owning(_TempFile.create, _TempFile.discard, self._directory.temp)
        try:
            await run_in_thread(temp.write, first)
            await copy.into(temp.write, buffer_size=self._write_buffer_size)
            return await run_in_thread(self._commit, temp, key)
        except BaseException:
            # Shielded so a second cancellation cannot leave the temp file behind;
            # a failing cleanup must not hide the error that caused it.
            with contextlib.suppress(OSError):
                await asyncio.shield(asyncio.to_thread(temp.discard))
            await copy.close_after_failure()
            raise

    async def _put_whole(self, key: str, data: bytes | bytearray) -> ObjectInfo:
        """An object that fits one buffer: create, write, sync and rename in one
        worker-thread call instead of four (small uploads are bound by the hops).

        A cancellation waits for the call, which is short, and removes what it
        made, so a cancelled put leaves nothing behind.
        """
        future = asyncio.ensure_future(run_in_thread(self._write_whole, key, data))
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(future)
                await asyncio.shield(run_in_thread(self._delete, key))
            raise

    def _write_whole(self, key: str, data: bytes | bytearray) -> ObjectInfo:
        temp = _TempFile.create(self._directory.temp)
        try:
            temp.write(data)
            return self._commit(temp, key)
        except BaseException:
            with contextlib.suppress(OSError):
                temp.discard()
            raise

    def _commit(self, temp: _TempFile, key: str) -> ObjectInfo:
        path = self._directory.file_for(key)
        try:
            created = make_parents(path.parent)
            written = temp.commit(path)
        except (IsADirectoryError, NotADirectoryError, FileExistsError) as exc:
            raise InvalidKey(f"key collides with a directory or file: {key!r}") from exc
        # The rename is durable only once the directory holding the new entry is
        # synced, and a new directory only once its own parent is.
        for directory in dict.fromkeys([path.parent, *(d.parent for d in created)]):
            fsync_directory(directory)
        return _info(key, written)

    async def get(self, key: str, *, start: int = 0, end: int | None = None) -> ByteStream:
        check_key(key)
        check_range(start, end)
        if self._read_on_loop_bytes:
            # A trip to a worker thread and back cost more CPU than the whole rest
            # of a small download (docs/benchmarks.md, change 17). Opening a file
            # and reading a few pages of it are what nginx does on its event loop
            # by default; a longer range is read in worker threads from its first
            # byte, and no await comes between the open and the stream that owns it.
            try:
                opened = self._open_for_reading(
                    key, start, end, first=self._read_on_loop_bytes, whole_only=True
                )
            except OSError as exc:
                raise StorageUnavailable(f"local store: {exc}") from exc
        else:
            opened = await run_owning(
                self._open_for_reading,
                _close_opened,
                key,
                start,
                end,
                first=self._read_chunk_size,
                whole_only=False,
            )
        return _FileByteStream(opened, chunk=self._read_chunk_size)

    def _open_for_reading(
        self, key: str, start: int, end: int | None, *, first: int, whole_only: bool
    ) -> _Opened:
        """Open ``key`` and read the first ``first`` bytes of the range (with
        ``whole_only``, all of it if it fits in ``first``, else none); a range read
        whole is closed again at once."""
        path = self._directory.file_for(key)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except _MISSING:
            raise ObjectNotFound(key) from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise ObjectNotFound(key)
            stop = info.st_size if end is None else min(end, info.st_size)
            start = min(start, stop)
            size = stop - start
            read = 0 if whole_only and size > first else min(first, size)
            data = _pread_exactly(fd, read, start)
            position = start + len(data)
            if position >= stop:
                os.close(fd)
                fd = -1
        except BaseException:
            if fd >= 0:
                os.close(fd)
            raise
        return _Opened(fd=fd, first=data, position=position, stop=stop)

    async def head(self, key: str) -> ObjectInfo:
        check_key(key)
        return await run_in_thread(self._head, key)

    def _head(self, key: str) -> ObjectInfo:
        try:
            info = self._directory.file_for(key).stat()
        except _MISSING:
            raise ObjectNotFound(key) from None
        if not stat.S_ISREG(info.st_mode):
            raise ObjectNotFound(key)
        return _info(key, info)

    async def delete(self, key: str) -> None:
        check_key(key)
        await run_in_thread(self._delete, key)

    def _delete(self, key: str) -> None:
        # Empty parent directories are left in place: removing them would race
        # with a concurrent put that has just created them.
        try:
            os.unlink(self._directory.file_for(key))
        except (*_MISSING, IsADirectoryError):
            return

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        directory = prefix_directory(prefix)
        entries = self._walk(directory, prefix)
        try:
            while batch := await run_in_thread(_take, entries, _LIST_BATCH):
                for info in batch:
                    yield info
        finally:
            entries.close()

    def _walk(self, directory: str, prefix: str) -> Generator[ObjectInfo, None, None]:
        start = self._directory.file_for(directory) if directory else self._directory.resolved()
        pending = [(start, directory)]
        while pending:
            path, relative = pending.pop()
            try:
                with os.scandir(path) as scan:
                    children = [*scan]
            except _MISSING:
                continue
            for entry in children:
                key = f"{relative}/{entry.name}" if relative else entry.name
                if not relative and entry.name == TEMP_DIR_NAME:
                    continue
                # Symlinks are never followed, so a listing cannot leave the root.
                if entry.is_dir(follow_symlinks=False):
                    if key.startswith(prefix) or prefix.startswith(f"{key}/"):
                        pending.append((Path(entry.path), key))
                elif entry.is_file(follow_symlinks=False) and key.startswith(prefix):
                    try:
                        yield _info(key, entry.stat(follow_symlinks=False))
                    except FileNotFoundError:
                        continue

    async def close(self) -> None:
        """Nothing to release: every file is closed when its operation ends."""

    async def sweep_temp_files(self, *, older_than: timedelta) -> int:
        """Remove temp files left by a crash mid-upload; returns how many went.

        Only files older than ``older_than`` go, so uploads in progress survive.
        """
        return await run_in_thread(self._sweep, older_than.total_seconds())

    def _sweep(self, age_seconds: float) -> int:
        cutoff = time.time() - age_seconds
        removed = 0
        try:
            scan = os.scandir(self._directory.temp)
        except FileNotFoundError:
            return 0
        with scan:
            for entry in scan:
                if not entry.name.endswith(_TEMP_SUFFIX):
                    continue
                try:
                    if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                        os.unlink(entry.path)
                        removed += 1
                except FileNotFoundError:
                    continue
        return removed


def _close_opened(opened: _Opened) -> None:
    if opened.fd >= 0:
        os.close(opened.fd)


def _pread_exactly(fd: int, size: int, offset: int) -> bytes:
    data = os.pread(fd, size, offset) if size else b""
    if len(data) != size:
        # Objects are replaced, never truncated, so a short read means someone
        # edited the store by hand.
        raise StorageUnavailable("local store: object ended before its recorded size")
    return data


def _take(entries: Iterator[ObjectInfo], count: int) -> list[ObjectInfo]:
    return [*itertools.islice(entries, count)]


def _info(key: str, info: os.stat_result) -> ObjectInfo:
    return ObjectInfo(
        key=key,
        size=info.st_size,
        last_modified=datetime.fromtimestamp(info.st_mtime, tz=UTC),
    )


class _TempFile:
    """An upload in progress under ``.tmp/``, with its descriptor guarded by a lock."""

    def __init__(self, path: Path, fd: int) -> None:
        self._path = path
        self._fd = fd
        self._lock = threading.Lock()

    @classmethod
    def create(cls, temp_dir: Path) -> _TempFile:
        make_parents(temp_dir)
        path = temp_dir / f"{secrets.token_hex(16)}{_TEMP_SUFFIX}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        return cls(path, os.open(path, flags, FILE_MODE))

    def write(self, data: bytes | bytearray) -> None:
        with self._lock:
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]

    def commit(self, destination: Path) -> os.stat_result:
        """Sync, close and move the file to ``destination``; returns its final stat."""
        with self._lock:
            os.fsync(self._fd)
            written = os.fstat(self._fd)
            os.close(self._fd)
            self._fd = -1
            os.replace(self._path, destination)
            return written

    def discard(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            # After a commit that raced a cancellation the file has already moved.
            self._path.unlink(missing_ok=True)


@dataclass(frozen=True, slots=True)
class _Opened:
    fd: int  # -1 once the whole range is in ``first``
    first: bytes
    position: int  # the offset after ``first``
    stop: int


class _FileByteStream:
    """Reads a range of an open file in large chunks, each in a worker thread.

    One chunk is read ahead: while the caller sends a chunk (and waits for the
    socket to drain), the next one is already being read, so a download is not
    a strict read-send-read sequence.
    """

    def __init__(self, opened: _Opened, *, chunk: int) -> None:
        self._fd = opened.fd
        self._first = opened.first
        self._position = opened.position
        self._stop = opened.stop
        self._chunk = chunk
        self._lock = threading.Lock()
        self._ahead: asyncio.Task[bytes] | None = None

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> bytes:
        if self._first:
            data, self._first = self._first, b""
            self._read_ahead()
            return data
        if self._ahead is None:
            # Opened with nothing read yet (a long range opened on the event loop):
            # its first chunk is read now. Nothing is started when done or closed.
            self._read_ahead()
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            # Done, or closed early: like an async generator after `aclose`.
            await self.aclose()
            raise StopAsyncIteration
        try:
            data = await ahead
        except BaseException:
            await self.aclose()
            raise
        self._read_ahead()
        return data

    def _read_ahead(self) -> None:
        if self._fd < 0 or self._position >= self._stop:
            return
        size = min(self._chunk, self._stop - self._position)
        self._ahead = asyncio.ensure_future(run_in_thread(self._read, size, self._position))
        self._position += size

    def _read(self, size: int, offset: int) -> bytes:
        with self._lock:
            if self._fd < 0:
                raise StorageUnavailable("local store: read after close")
            data = _pread_exactly(self._fd, size, offset)
            if offset + size >= self._stop:
                # The last chunk: closed in the same thread call, not in another.
                os.close(self._fd)
                self._fd = -1
            return data

    async def aclose(self) -> None:
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            # Its thread finishes under the lock; the chunk is dropped.
            ahead.cancel()
            if ahead.done() and not ahead.cancelled():
                ahead.exception()  # retrieved: nobody wants this chunk any more
        if self._fd >= 0:
            await asyncio.shield(asyncio.to_thread(self._close))

    def _close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def __del__(self) -> None:
        # A stream dropped without aclose (a bug upstream) must not leak its fd;
        # no read can be in flight, since a reading thread holds a reference.
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
