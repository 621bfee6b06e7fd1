"""Direct uploads on the local store: multipart parts as files under
``ROOT/.tmp/direct/<handle>/``, joined into the object on completion.

The bytes come through seau here (the URLs seau signs point at its own routes),
but the client sees S3's flow: parts answered with an ETag (the MD5 of the part,
as S3 gives for a part sent without encryption), listed, then completed by number
and ETag. A part file is named ``<number>.<etag>``, so listing needs no index,
and a part sent again replaces the one before by a rename.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import secrets
import shutil
import threading
from collections.abc import AsyncIterable, AsyncIterator, Sequence
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
from seau.storage.direct import PartsRejected, StoredPart
from seau.storage.errors import InvalidKey, ObjectNotFound, StorageError, StorageUnavailable
from seau.storage.keys import validate_key

DIRECT_DIR_NAME = "direct"
_HANDLE = re.compile(r"[0-9a-f]{32}")
_PART_FILE = re.compile(r"([0-9]{1,5})\.([0-9a-f]{32})")


class LocalDirectUploads:
    """`DirectTarget` and `ReceivesParts` of the local store."""

    def __init__(self, root: RootDirectory, *, write_buffer_size: int = MiB) -> None:
        self._root = root
        self._directory = root.temp / DIRECT_DIR_NAME
        self._write_buffer_size = write_buffer_size

    def _parts_dir(self, handle: str) -> Path:
        if not _HANDLE.fullmatch(handle):
            raise InvalidKey(f"not a direct upload handle: {handle!r}")
        return self._directory / handle

    async def start_multipart(self, key: str, *, content_type: str) -> str:
        validate_key(key)
        handle = secrets.token_hex(16)
        await run_in_thread(self._create, self._parts_dir(handle))
        return handle

    @staticmethod
    def _create(path: Path) -> None:
        created = make_parents(path)
        for directory in dict.fromkeys([path.parent, *(d.parent for d in created)]):
            fsync_directory(directory)

    async def list_parts(self, key: str, *, handle: str) -> list[StoredPart]:
        return await run_in_thread(self._list, self._parts_dir(handle), key)

    @staticmethod
    def _list(directory: Path, key: str) -> list[StoredPart]:
        try:
            entries = list(os.scandir(directory))
        except FileNotFoundError:
            raise ObjectNotFound(key) from None
        found = []
        for entry in entries:
            match = _PART_FILE.fullmatch(entry.name)
            if match is None:
                continue
            with contextlib.suppress(FileNotFoundError):
                found.append(
                    StoredPart(
                        number=int(match[1]), etag=f'"{match[2]}"', size=entry.stat().st_size
                    )
                )
        return sorted(found, key=lambda p: p.number)

    async def write_part(
        self, key: str, *, handle: str, number: int, data: AsyncIterable[bytes]
    ) -> StoredPart:
        directory = self._parts_dir(handle)
        if not 1 <= number <= 10_000:
            raise ValueError(f"part number {number} is not between 1 and 10000")
        md5 = hashlib.md5(usedforsecurity=False)
        size = 0

        async def hashed() -> AsyncIterator[bytes]:
            nonlocal size
            async for chunk in data:
                md5.update(chunk)
                size += len(chunk)
                yield chunk

        copy = BufferedCopy(hashed())
        try:
            part = await run_owning(_PartFile.create, _PartFile.discard, directory)
        except StorageUnavailable as exc:
            await copy.close_after_failure()
            raise _gone_or(exc, key) from None
        try:
            await copy.into(part.write, buffer_size=self._write_buffer_size)
            await run_in_thread(part.place, number, md5.hexdigest())
        except BaseException as exc:
            with contextlib.suppress(OSError, StorageError):
                await asyncio.shield(run_in_thread(part.discard))
            await copy.close_after_failure()
            if isinstance(exc, StorageUnavailable):
                raise _gone_or(exc, key) from None
            raise
        return StoredPart(number=number, etag=f'"{md5.hexdigest()}"', size=size)

    async def complete_multipart(
        self, key: str, *, handle: str, parts: Sequence[tuple[int, str]]
    ) -> None:
        await run_in_thread(self._complete, key, self._parts_dir(handle), list(parts))

    def _complete(self, key: str, directory: Path, parts: list[tuple[int, str]]) -> None:
        final = self._root.file_for(validate_key(key))
        if not directory.is_dir():
            raise ObjectNotFound(key)
        files = []
        for number, etag in parts:
            bare = etag.strip('"').lower()
            path = directory / f"{number}.{bare}"
            if not _PART_FILE.fullmatch(path.name) or not path.is_file():
                raise PartsRejected(f"part {number} with ETag {etag} is not stored")
            files.append(path)
        make_parents(self._root.temp)
        temp = self._root.temp / f"direct-{secrets.token_hex(8)}.part"
        with open(temp, "wb", opener=_private) as out:
            try:
                for path in files:
                    with open(path, "rb") as source:
                        shutil.copyfileobj(source, out, 4 * MiB)
                out.flush()
                os.fsync(out.fileno())
            except BaseException:
                temp.unlink(missing_ok=True)
                raise
        created = make_parents(final.parent)
        os.replace(temp, final)
        for parent in dict.fromkeys([final.parent, *(d.parent for d in created)]):
            fsync_directory(parent)
        shutil.rmtree(directory, ignore_errors=True)

    async def abort_multipart(self, key: str, *, handle: str) -> None:
        await run_in_thread(shutil.rmtree, self._parts_dir(handle), ignore_errors=True)

    async def stored_sha256(self, key: str) -> str | None:
        return None

    async def close(self) -> None:
        """Nothing to release: every file is closed when its operation ends."""


class _PartFile:
    """A part being written in its upload's directory, its descriptor under a lock (a
    cancelled ``await`` leaves its thread running; see `seau.storage.local`). Never
    creates the directory: an aborted upload's stays gone."""

    def __init__(self, directory: Path, fd: int, path: Path) -> None:
        self._directory = directory
        self._fd = fd
        self._path = path
        self._lock = threading.Lock()

    @classmethod
    def create(cls, directory: Path) -> _PartFile:
        path = directory / f"tmp-{secrets.token_hex(8)}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
        return cls(directory, fd, path)

    def write(self, data: bytes | bytearray) -> None:
        with self._lock:
            if self._fd < 0:
                raise StorageUnavailable("local store: write after close")
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]

    def place(self, number: int, etag: str) -> None:
        """Sync and close the part, then put it in place of any earlier one."""
        with self._lock:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
            for entry in os.scandir(self._directory):
                match = _PART_FILE.fullmatch(entry.name)
                if match is not None and int(match[1]) == number and match[2] != etag:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
            os.replace(self._path, self._directory / f"{number}.{etag}")
            fsync_directory(self._directory)

    def discard(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            self._path.unlink(missing_ok=True)


def _gone_or(exc: StorageUnavailable, key: str) -> StorageError:
    """A part's upload aborted meanwhile (its directory gone) is `ObjectNotFound`."""
    if isinstance(exc.__cause__, FileNotFoundError):
        return ObjectNotFound(key)
    return exc


def _private(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_CLOEXEC, FILE_MODE)
