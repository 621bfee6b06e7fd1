"""Disk helpers shared by the local store and local upload staging.

Private to `seau.storage`: both write under one root directory, with the same
rules for where a key lives, the same durable-rename dance (fsync the file, then
each directory whose entries changed) and the same worker-thread discipline
(every blocking call in a thread, failures as `StorageUnavailable`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import stat
from collections.abc import AsyncIterable, Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

from seau.storage._sources import close_source
from seau.storage.errors import InvalidKey, StorageUnavailable
from seau.storage.keys import validate_key

MiB = 1024 * 1024
TEMP_DIR_NAME = ".tmp"
"""Under the root, outside every key: uploads in progress and staging files."""

# What the store creates is its owner's alone: objects are users' files, staging
# files their unfinished uploads. The umask can only narrow these modes.
FILE_MODE = 0o600
DIRECTORY_MODE = 0o700

_P = ParamSpec("_P")
_T = TypeVar("_T")


class RootDirectory:
    """The directory a local store keeps its objects in, and where each key's file is.

    Resolving a key is the one definition of the checks that keep files under the
    root; the store and its upload staging both use it.
    """

    def __init__(self, root: Path) -> None:
        # Absolute without touching the disk: resolving symlinks in the root
        # itself happens in `resolved`, off the event loop.
        self.path = Path(os.path.abspath(root))
        self.temp = self.path / TEMP_DIR_NAME
        self._resolved: Path | None = None

    def resolved(self) -> Path:
        # Resolved once: realpath of the root on every operation was most of a
        # small upload's worker-thread time. Keys are still resolved each time.
        if self._resolved is None:
            self._resolved = self.path.resolve()
        return self._resolved

    def file_for(self, key: str) -> Path:
        """The file for ``key``, refusing any path that leaves the root.

        Keys are validated already; resolving again catches a symlink inside the
        root that points outside it. Blocking (an `lstat` per component of the
        key): a worker thread's, or part of a small read on the event loop.
        """
        root = self.resolved()
        path = _plain_path(root, key) or (root / key).resolve()
        if path == root or not path.is_relative_to(root):
            raise InvalidKey(f"key resolves outside the store root: {key!r}")
        if path.relative_to(root).parts[0] == TEMP_DIR_NAME:
            raise InvalidKey(f"key resolves into the temp directory: {key!r}")
        return path


def _plain_path(root: Path, key: str) -> Path | None:
    """``root/key`` when none of the key's existing components is a symbolic link
    (nothing to resolve: `Path.resolve` would return it unchanged), else None.

    One `lstat` per component of the key, against `Path.resolve`'s one per
    component of the whole path and its pure-Python walk: 8 against 32 us per key
    here, for every read and write of the local store."""
    path = str(root)
    for part in key.split("/"):
        if part in ("", ".", ".."):
            return None
        path = os.path.join(path, part)
        try:
            mode = os.lstat(path).st_mode
        except (FileNotFoundError, NotADirectoryError):
            break  # what does not exist links nowhere
        if stat.S_ISLNK(mode):
            return None
    return root / key


def check_key(key: str) -> None:
    """A valid key that is not under the reserved temp directory."""
    validate_key(key)
    if key.split("/", 1)[0] == TEMP_DIR_NAME:
        raise InvalidKey(f"{TEMP_DIR_NAME!r} is reserved for uploads in progress: {key!r}")


async def run_in_thread(function: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
    try:
        return await asyncio.to_thread(function, *args, **kwargs)
    except OSError as exc:
        raise StorageUnavailable(f"local store: {exc}") from exc


async def run_owning(
    function: Callable[_P, _T],
    release: Callable[[_T], object],
    *args: _P.args,
    **kwargs: _P.kwargs,
) -> _T:
    """`run_in_thread` for a call that acquires something (an fd, a temp file).

    If the caller is cancelled while the thread is still working, the thread's
    result would be lost and leak, so it is handed to ``release`` once it exists.
    """
    future = asyncio.ensure_future(run_in_thread(function, *args, **kwargs))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        future.add_done_callback(functools.partial(_release_result, release=release))
        raise


def _release_result(future: asyncio.Future[_T], *, release: Callable[[_T], object]) -> None:
    if not future.cancelled() and future.exception() is None:
        with contextlib.suppress(OSError):
            release(future.result())


def make_parents(directory: Path) -> list[Path]:
    """Create ``directory`` and its missing ancestors (mode `DIRECTORY_MODE`); return
    those created, outermost first."""
    missing: list[Path] = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    created: list[Path] = []
    for path in reversed(missing):
        try:
            path.mkdir(mode=DIRECTORY_MODE)
        except FileExistsError:
            # Another put made it first; syncing it is that put's job.
            if not path.is_dir():
                raise
            continue
        created.append(path)
    return created


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BufferedCopy:
    """Copies an async byte source to a blocking writer in large batches.

    Chunks are gathered into ``buffer_size`` buffers, each written from a worker
    thread so the event loop never blocks on the disk. Whether a failure came
    from the source is remembered: a source that failed is not closed again.
    """

    def __init__(self, data: AsyncIterable[bytes]) -> None:
        self._iterator = aiter(data)
        self._source_failed = False

    async def gather(self, size: int) -> tuple[bytes | bytearray, bool]:
        """At least ``size`` bytes from the source (less if it ends first: then
        the flag is true). A first chunk of ``size`` bytes or more is taken as
        it is, without a copy."""
        buffer = bytearray()
        while len(buffer) < size:
            try:
                chunk = await anext(self._iterator)
            except StopAsyncIteration:
                return buffer, True
            except BaseException:
                self._source_failed = True
                raise
            if not buffer and len(chunk) >= size:
                return chunk, False
            buffer += chunk
        return buffer, False

    async def into(self, write: Callable[[bytes | bytearray], object], *, buffer_size: int) -> None:
        while True:
            # Each buffer goes to the thread and a fresh one is gathered: no copy back.
            buffer, ended = await self.gather(buffer_size)
            if buffer:
                await run_in_thread(write, buffer)
            if ended:
                return

    async def close_after_failure(self) -> None:
        if not self._source_failed:
            await close_source(self._iterator)
