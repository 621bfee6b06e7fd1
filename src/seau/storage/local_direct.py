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
)
from seau.storage.direct import PartsRejected, StoredPart
from seau.storage.errors import InvalidKey, ObjectNotFound
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
        if not await run_in_thread(directory.is_dir):
            raise ObjectNotFound(key)
        temp = directory / f"tmp-{secrets.token_hex(8)}"
        fd = await run_in_thread(
            os.open, temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE
        )
        md5 = hashlib.md5(usedforsecurity=False)
        size = 0

        def write(buffer: bytes | bytearray) -> None:
            view = memoryview(buffer)
            while view:
                view = view[os.write(fd, view) :]

        async def hashed() -> AsyncIterator[bytes]:
            nonlocal size
            async for chunk in data:
                md5.update(chunk)
                size += len(chunk)
                yield chunk

        copy = BufferedCopy(hashed())
        try:
            await copy.into(write, buffer_size=self._write_buffer_size)
            await run_in_thread(os.fsync, fd)
        except BaseException:
            with contextlib.suppress(OSError):
                await asyncio.shield(run_in_thread(_close_and_unlink, fd, temp))
            fd = -1
            await copy.close_after_failure()
            raise
        finally:
            if fd >= 0:
                await run_in_thread(os.close, fd)
        etag = md5.hexdigest()
        await run_in_thread(self._place, directory, temp, number, etag)
        return StoredPart(number=number, etag=f'"{etag}"', size=size)

    @staticmethod
    def _place(directory: Path, temp: Path, number: int, etag: str) -> None:
        for entry in os.scandir(directory):
            match = _PART_FILE.fullmatch(entry.name)
            if match is not None and int(match[1]) == number and match[2] != etag:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
        os.replace(temp, directory / f"{number}.{etag}")
        fsync_directory(directory)

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


def _private(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_CLOEXEC, FILE_MODE)


def _close_and_unlink(fd: int, path: Path) -> None:
    os.close(fd)
    path.unlink(missing_ok=True)
