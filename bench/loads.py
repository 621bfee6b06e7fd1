"""The clients that move the bytes: seau over HTTP (aiohttp), and direct clients of the store.

Every target implements the same four verbs on files named by an index, so one
runner drives them all with the same sizes and concurrency:

- `SeauTarget`: seau's HTTP API through aiohttp, multipart/form-data (or raw
  ``?name=``) uploads streamed from pre-made blocks, with Content-Length.
- `ObstoreTarget`: obstore on the same store (``LocalStore`` on the same disk,
  ``S3Store`` on the same moto server).
- `DurableFilesTarget`: plain file writes + fsync of file and directory, i.e. the
  durability seau's local store gives, without HTTP.
- `PeerTarget`: the peers of ``../shared/peers/`` (the course's design ``seed-node``,
  ``null-node``, ``lean-python``) through their common files API, with the same
  client as seau's.

Downloads are hashed as they arrive and checked against the SHA-256 of what was
uploaded, for every target.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import random
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import obstore
from obstore.store import LocalStore, S3Store

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

# Matches seau's S3 store: 8 MiB parts, two in flight (src/seau/storage/s3.py).
S3_PART_SIZE = 8 * MiB
S3_PART_CONCURRENCY = 2
READ_CHUNK = MiB


class Corpus:
    """File contents made of slices of one random pool: no file body is ever built whole.

    File ``index`` starts at its own offset in a 32 MiB pool of random bytes and
    wraps around it, so files differ from one another without generating new data.
    """

    POOL = 32 * MiB
    BLOCK = MiB

    def __init__(self, seed: int = 20240601) -> None:
        self._pool = random.Random(seed).randbytes(self.POOL + self.BLOCK)
        self._view = memoryview(self._pool)
        self._hashes: dict[tuple[int, int], str] = {}

    def blocks(self, index: int, size: int) -> Iterator[memoryview]:
        offset = (index * 1_000_003) % self.POOL
        remaining = size
        while remaining > 0:
            n = min(self.BLOCK, remaining)
            yield self._view[offset : offset + n]
            remaining -= n
            offset = (offset + n) % self.POOL

    def data(self, index: int, size: int) -> bytes:
        return b"".join(self.blocks(index, size))

    def sha256(self, index: int, size: int) -> str:
        key = (index, size)
        if key not in self._hashes:
            digest = hashlib.sha256()
            for block in self.blocks(index, size):
                digest.update(block)
            self._hashes[key] = digest.hexdigest()
        return self._hashes[key]


class StreamHash:
    """SHA-256 of a download, computed in a worker thread for large bodies.

    Hashing costs ~0.6 CPU-seconds per GiB here; done on the event loop it made the
    load client the bottleneck of large downloads (a full core at ~800 MiB/s). Chunks
    are batched to 4 MiB and hashed in order, one batch in flight, while the loop
    keeps reading; hashlib releases the GIL. Small bodies are hashed inline.
    """

    BATCH = 4 * MiB

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self._batch: list[bytes | memoryview] = []
        self._batched = 0
        self._pending: asyncio.Future[None] | None = None
        self.size = 0

    async def update(self, chunk: bytes | memoryview) -> None:
        self.size += len(chunk)
        self._batch.append(chunk)
        self._batched += len(chunk)
        if self._batched >= self.BATCH:
            if self._pending is not None:
                await self._pending
            batch, self._batch, self._batched = self._batch, [], 0
            loop = asyncio.get_running_loop()
            self._pending = loop.run_in_executor(None, _hash_all, self._digest, batch)

    async def hexdigest(self) -> str:
        if self._pending is not None:
            await self._pending
        _hash_all(self._digest, self._batch)
        return self._digest.hexdigest()


def _hash_all(digest: Any, chunks: list[bytes | memoryview]) -> None:
    for chunk in chunks:
        digest.update(chunk)


class BenchError(RuntimeError):
    """A request failed or returned the wrong bytes: the run is invalid."""


class Target(Protocol):
    label: str
    """Short name in tables: "seau", "seau raw", "obstore", "files+fsync"."""

    async def upload(self, index: int, size: int) -> str:
        """Store file ``index`` of ``size`` bytes; returns its handle (id or key)."""
        ...

    async def list_all(self) -> int:
        """List every file (all pages); returns how many."""
        ...

    async def download(self, handle: str) -> tuple[str, int]:
        """Read the whole file; returns (SHA-256 hex, bytes)."""
        ...

    async def delete(self, handle: str) -> None: ...

    async def close(self) -> None: ...


# -- seau over HTTP ---------------------------------------------------------------------


class SeauTarget:
    """seau's public API through aiohttp (lighter than httpx on the client's CPU)."""

    def __init__(
        self,
        *,
        url: str,
        corpus: Corpus,
        concurrency: int,
        raw: bool = False,
    ) -> None:
        self.label = "seau raw" if raw else "seau"
        self._url = url
        self._corpus = corpus
        self._raw = raw
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max(concurrency, 1)),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=300),
            auto_decompress=False,
            # aiohttp's default 64 KiB read buffer costs many more wake-ups per MiB.
            read_bufsize=MiB,
        )
        self._headers: dict[str, str] = {}

    async def sign_in(self) -> None:
        email = f"bench-{secrets.token_hex(4)}@example.com"
        password = secrets.token_urlsafe(16)
        async with self._session.post(
            f"{self._url}/api/v1/users", json={"email": email, "password": password}
        ) as response:
            await _expect(response, 201)
        async with self._session.post(
            f"{self._url}/api/v1/auth/token", data={"username": email, "password": password}
        ) as response:
            await _expect(response, 200)
            token = (await response.json())["access_token"]
        self._headers = {"Authorization": f"Bearer {token}"}

    def share_auth(self, other: SeauTarget) -> None:
        self._headers = dict(other._headers)

    async def upload(self, index: int, size: int) -> str:
        name = f"f{index:06d}.bin"
        expected = self._corpus.sha256(index, size)
        if self._raw:
            headers = {
                **self._headers,
                "Content-Type": "application/octet-stream",
                "Content-Length": str(size),
            }
            body = self._body(b"", index, size, b"")
            async with self._session.post(
                f"{self._url}/api/v1/files", params={"name": name}, data=body, headers=headers
            ) as response:
                await _expect(response, 201)
                created = await response.json()
        else:
            boundary = secrets.token_hex(16)
            head = (
                f"--{boundary}\r\n"
                f'Content-Disposition: form-data; name="file"; filename="{name}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            tail = f"\r\n--{boundary}--\r\n".encode()
            headers = {
                **self._headers,
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                "Content-Length": str(len(head) + size + len(tail)),
            }
            body = self._body(head, index, size, tail)
            async with self._session.post(
                f"{self._url}/api/v1/files", data=body, headers=headers
            ) as response:
                await _expect(response, 201)
                (created,) = (await response.json())["files"]
        if created["size"] != size or created["sha256"] != expected:
            raise BenchError(f"seau stored {created!r}, expected {size} bytes {expected}")
        file_id: str = created["id"]
        return file_id

    def _body(
        self, head: bytes, index: int, size: int, tail: bytes
    ) -> bytes | AsyncIterator[bytes]:
        if size <= MiB:
            # Small bodies in one write, as any client would send them.
            return head + self._corpus.data(index, size) + tail
        return self._stream(head, index, size, tail)

    async def _stream(
        self, head: bytes, index: int, size: int, tail: bytes
    ) -> AsyncIterator[bytes]:
        if head:
            yield head
        for block in self._corpus.blocks(index, size):
            yield block  # type: ignore[misc]  # aiohttp writes any buffer
        if tail:
            yield tail

    async def list_all(self) -> int:
        count, cursor = 0, None
        while True:
            params = {"limit": "1000"}
            if cursor:
                params["cursor"] = cursor
            async with self._session.get(
                f"{self._url}/api/v1/files", params=params, headers=self._headers
            ) as response:
                await _expect(response, 200)
                page = await response.json()
            count += len(page["items"])
            cursor = page["next_cursor"]
            if not cursor:
                return count

    async def list_page(self, limit: int) -> int:
        """The first page of ``limit`` files; returns how many it held."""
        async with self._session.get(
            f"{self._url}/api/v1/files", params={"limit": str(limit)}, headers=self._headers
        ) as response:
            await _expect(response, 200)
            return len((await response.json())["items"])

    async def download(self, handle: str) -> tuple[str, int]:
        digest = StreamHash()
        async with self._session.get(
            f"{self._url}/api/v1/files/{handle}/content", headers=self._headers
        ) as response:
            await _expect(response, 200)
            async for chunk in response.content.iter_any():
                await digest.update(chunk)
        return await digest.hexdigest(), digest.size

    async def delete(self, handle: str) -> None:
        async with self._session.delete(
            f"{self._url}/api/v1/files/{handle}", headers=self._headers
        ) as response:
            await _expect(response, 204)

    async def close(self) -> None:
        await self._session.close()


async def _expect(response: aiohttp.ClientResponse, status: int) -> None:
    if response.status != status:
        text = await response.text()
        raise BenchError(
            f"{response.method} {response.url} answered {response.status}: {text[:500]}"
        )


# -- peers over HTTP --------------------------------------------------------------------


class PeerTarget:
    """A peer server's files API (``POST /files`` multipart field ``file``, ``GET /files``,
    ``GET /files/:id``, ``DELETE /files/:id``), driven exactly like `SeauTarget`.

    The peers answer only the size (not every one computes a SHA-256), so uploads
    are checked by size and every download by its hash, as for seau.
    """

    def __init__(
        self, *, label: str, url: str, token: str, corpus: Corpus, concurrency: int
    ) -> None:
        self.label = label
        self._url = url
        self._corpus = corpus
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max(concurrency, 1)),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=300),
            auto_decompress=False,
            read_bufsize=MiB,
        )
        self._headers = {"Authorization": f"Bearer {token}"}

    async def upload(self, index: int, size: int) -> str:
        boundary = secrets.token_hex(16)
        head = (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="f{index:06d}.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        headers = {
            **self._headers,
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(len(head) + size + len(tail)),
        }
        body: bytes | AsyncIterator[bytes]
        if size <= MiB:
            body = head + self._corpus.data(index, size) + tail
        else:
            body = _stream_parts(head, self._corpus.blocks(index, size), tail)
        async with self._session.post(f"{self._url}/files", data=body, headers=headers) as response:
            await _expect(response, 201)
            created = await response.json()
        if created["size"] != size:
            raise BenchError(f"{self.label} stored {created!r}, expected {size} bytes")
        return str(created["id"])

    async def list_all(self) -> int:
        async with self._session.get(f"{self._url}/files", headers=self._headers) as response:
            await _expect(response, 200)
            return len(await response.json())

    async def download(self, handle: str) -> tuple[str, int]:
        digest = StreamHash()
        async with self._session.get(
            f"{self._url}/files/{handle}", headers=self._headers
        ) as response:
            await _expect(response, 200)
            async for chunk in response.content.iter_any():
                await digest.update(chunk)
        return await digest.hexdigest(), digest.size

    async def delete(self, handle: str) -> None:
        async with self._session.delete(
            f"{self._url}/files/{handle}", headers=self._headers
        ) as response:
            await _expect(response, 204)

    async def close(self) -> None:
        await self._session.close()


async def _stream_parts(
    head: bytes, blocks: Iterator[memoryview], tail: bytes
) -> AsyncIterator[bytes]:
    yield head
    for block in blocks:
        yield block  # type: ignore[misc]  # aiohttp writes any buffer
    yield tail


# -- direct clients ---------------------------------------------------------------------


class ObstoreTarget:
    """obstore on the store seau uses, called the way a direct client naturally would.

    A small file (at most one S3 part) goes up as bytes in one PUT, a larger one is
    streamed from the same blocks as seau's uploads with seau's part size and part
    concurrency, so the data path is the same and only seau's own work differs.
    """

    def __init__(self, store: LocalStore | S3Store, *, corpus: Corpus, label: str) -> None:
        self.label = label
        self._store = store
        self._corpus = corpus
        self._prefix = f"direct-{secrets.token_hex(4)}"

    async def upload(self, index: int, size: int) -> str:
        key = f"{self._prefix}/f{index:06d}.bin"
        if size <= S3_PART_SIZE:
            await obstore.put_async(self._store, key, self._corpus.data(index, size))
        else:
            await obstore.put_async(
                self._store,
                key,
                _async_blocks(self._corpus.blocks(index, size)),
                chunk_size=S3_PART_SIZE,
                max_concurrency=S3_PART_CONCURRENCY,
            )
        return key

    async def list_all(self) -> int:
        count = 0
        async for batch in obstore.list(self._store, self._prefix, chunk_size=1000):
            count += len(batch)
        return count

    async def download(self, handle: str) -> tuple[str, int]:
        digest = StreamHash()
        result = await obstore.get_async(self._store, handle)
        async for chunk in result.stream(min_chunk_size=READ_CHUNK):
            await digest.update(memoryview(chunk))
        return await digest.hexdigest(), digest.size

    async def delete(self, handle: str) -> None:
        await obstore.delete_async(self._store, handle)

    async def close(self) -> None:
        return


async def _async_blocks(blocks: Iterator[memoryview]) -> AsyncIterator[memoryview]:
    for block in blocks:
        yield block


class DurableFilesTarget:
    """Plain files with seau's durability (fsync file, rename, fsync directory), no HTTP.

    Each file is written or read whole by one worker thread in 1 MiB calls, which
    is what a careful Python program writing to local disk would do.
    """

    label = "files+fsync"

    def __init__(self, root: Path, *, corpus: Corpus) -> None:
        self._root = root
        self._temp = root / ".tmp"
        self._temp.mkdir(parents=True, exist_ok=True)
        self._corpus = corpus

    async def upload(self, index: int, size: int) -> str:
        return await asyncio.to_thread(self._write, index, size)

    def _write(self, index: int, size: int) -> str:
        name = f"f{index:06d}.bin"
        # Sharded like seau's keys (files/ab/<id>), so directory sizes match.
        directory = self._root / secrets.token_hex(1)
        temp = self._temp / f"{secrets.token_hex(8)}.part"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            for block in self._corpus.blocks(index, size):
                view = block
                while view:
                    view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        directory.mkdir(exist_ok=True)
        final = directory / name
        os.replace(temp, final)
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return str(final)

    async def list_all(self) -> int:
        def count() -> int:
            total = 0
            for entry in os.scandir(self._root):
                if entry.is_dir() and entry.name != ".tmp":
                    total += sum(1 for _ in os.scandir(entry.path))
            return total

        return await asyncio.to_thread(count)

    async def download(self, handle: str) -> tuple[str, int]:
        def read() -> tuple[str, int]:
            digest = hashlib.sha256()
            size = 0
            fd = os.open(handle, os.O_RDONLY | os.O_CLOEXEC)
            try:
                while chunk := os.pread(fd, READ_CHUNK, size):
                    digest.update(chunk)
                    size += len(chunk)
            finally:
                os.close(fd)
            return digest.hexdigest(), size

        return await asyncio.to_thread(read)

    async def delete(self, handle: str) -> None:
        await asyncio.to_thread(os.unlink, handle)

    async def close(self) -> None:
        return


# -- running a phase ------------------------------------------------------------------


@dataclass
class Timing:
    ops: int = 0
    bytes: int = 0
    latencies: list[float] = field(default_factory=list)


async def run_many(
    operation: Callable[[int], Awaitable[int]], *, count: int, concurrency: int
) -> Timing:
    """Run ``operation(i)`` for i in range(count), ``concurrency`` at a time.

    Each call returns the bytes it moved. The first failure stops the phase.
    """
    timing = Timing()
    next_index = iter(range(count))

    async def worker() -> None:
        for i in next_index:
            start = time.perf_counter()
            moved = await operation(i)
            timing.latencies.append(time.perf_counter() - start)
            timing.ops += 1
            timing.bytes += moved

    async with asyncio.TaskGroup() as group:
        for _ in range(min(concurrency, count)):
            group.create_task(worker())
    return timing


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (p99 of 4 samples is the largest)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(len(ordered) * fraction))
    return ordered[rank - 1]
