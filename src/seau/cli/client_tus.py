"""A resumable upload client (tus 1.0.0) over httpx, for `seau upload` and scripts.

It creates the upload at `/api/v1/uploads`, sends the file in chunks, each with
an `Upload-Checksum` (sha256), and recovers from dropped connections, server
restarts and 409/423/460 answers by asking the server (HEAD) where the upload
stands. With a ``state_file`` it remembers the upload's URL (in
`seau.cli.client_state`, with the direct uploads of `--direct`), so that uploading
the same file again after an interruption (Ctrl-C, a killed process, a lost
network) continues it instead of starting over. At the end the SHA-256 the
server computed is compared with the local file's.

HTTP only, like the rest of the client: it works against any tus 1.0.0 server
that answers with seau's file metadata, and imports nothing of the server.
Memory stays flat: each chunk is read twice (to hash it, then to send it), 1 MiB
at a time.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import BinaryIO

import httpx

from seau.cli.client_errors import ResumableUploadError, ResumableUploadsUnsupported
from seau.cli.client_state import UploadStates, fingerprint

MiB = 1024 * 1024
# Twice the default S3 part size (5 MiB): requests that end on part boundaries
# leave no tail object for the server to write and read back.
DEFAULT_CHUNK_SIZE = 10 * MiB
# Below this a plain POST is as good: one request, and a failure costs little to redo.
RESUMABLE_THRESHOLD = 32 * MiB
UPLOADS_PATH = "/api/v1/uploads"
# The protocol's own constants (the server has them in `seau.uploads.tus`, which
# the client does not import).
TUS_VERSION = "1.0.0"
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
_READ = MiB

Progress = Callable[[int, int], None]
"""Called with (bytes done, total) as bytes go out; it goes back when the server
lost a chunk (a cut connection), to what the server holds."""


async def upload_file(
    client: httpx.AsyncClient,
    path: Path,
    *,
    headers: Mapping[str, str] | None = None,
    name: str | None = None,
    content_type: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    state_file: Path | None = None,
    progress: Progress | None = None,
    retries: int = 5,
    retry_delay: float = 1.0,
) -> tuple[dict[str, object], int]:
    """Upload ``path``; the new file's metadata (as `GET /api/v1/files/{id}`) and
    the number of bytes an earlier, interrupted run had already sent.

    ``client`` has the server as ``base_url``; ``headers`` go with every request
    (`Authorization`). ``retries`` bounds consecutive failed attempts (network
    errors, 5xx, 423, checksum mismatches); every attempt that moves the upload
    forward resets it. `httpx.TransportError` escapes only from the first request
    (creating the upload, or asking where a remembered one stands); later ones
    become `ResumableUploadError`.
    """
    if chunk_size <= 0:
        raise ValueError("chunk_size must be positive")
    handle = await asyncio.to_thread(path.open, "rb")
    with handle:
        info = os.fstat(handle.fileno())
        transfer = _Transfer(
            client,
            handle,
            headers={**(headers or {}), "Tus-Resumable": TUS_VERSION},
            size=info.st_size,
            chunk_size=chunk_size,
            progress=progress,
        )
        states = UploadStates(state_file)
        resolved = await asyncio.to_thread(path.resolve)
        key = fingerprint(
            str(client.base_url), resolved, size=info.st_size, mtime_ns=info.st_mtime_ns
        )
        location = await states.get(key)
        offset = await transfer.probe(location) if location is not None else None
        if location is None or offset is None:
            location = await transfer.create(name=name or path.name, content_type=content_type)
            await states.put(key, location)
            offset = 0
        resumed = offset
        try:
            file = await transfer.send(location, offset=offset, retries=retries, delay=retry_delay)
        except ResumableUploadError as exc:
            if not exc.resumable:
                # Nothing to continue: the next run starts over.
                await states.drop(key)
            raise
        except httpx.TransportError as exc:
            raise ResumableUploadError(f"connection failed: {exc}", resumable=True) from exc
        await states.drop(key)
    return file, resumed


class _Transfer:
    """One file going to one server: the requests, and the running SHA-256."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        handle: BinaryIO,
        *,
        headers: dict[str, str],
        size: int,
        chunk_size: int,
        progress: Progress | None,
    ) -> None:
        self._client = client
        self._handle = handle
        self._headers = headers
        self._size = size
        self._chunk_size = chunk_size
        self._progress = progress or (lambda done, total: None)
        # The digest of the file's first `_hashed` bytes, which the server holds.
        self._whole = hashlib.sha256()
        self._hashed = 0

    async def create(self, *, name: str, content_type: str | None) -> str:
        metadata = {"filename": name}
        if content_type:
            metadata["filetype"] = content_type
        response = await self._client.post(
            UPLOADS_PATH,
            headers={
                **self._headers,
                "Upload-Length": str(self._size),
                "Upload-Metadata": ",".join(
                    f"{key} {base64.b64encode(value.encode()).decode()}"
                    for key, value in metadata.items()
                ),
            },
        )
        # 412: a tus server of another version; a plain upload still works.
        if response.status_code in (404, 405, 412, 501):
            raise ResumableUploadsUnsupported(_problem(response), response=response)
        location = str(response.headers.get("location", ""))
        if response.status_code != 201 or not location:
            raise ResumableUploadError(_problem(response), response=response)
        url = self._client.base_url.join(location)
        if (url.scheme, url.host, url.port) != (
            self._client.base_url.scheme,
            self._client.base_url.host,
            self._client.base_url.port,
        ):
            # The token goes with every request to that URL.
            raise ResumableUploadError(f"the server sent the upload elsewhere: {location}")
        return location

    async def probe(self, location: str) -> int | None:
        """Where a remembered upload stands, or None if the server no longer has it."""
        response = await self._client.head(location, headers=self._headers)
        if response.status_code in (403, 404, 410):
            return None
        offset = _offset_header(response)
        if response.status_code != 200 or offset is None:
            raise ResumableUploadError(_problem(response), response=response, resumable=True)
        return offset

    async def send(
        self, location: str, *, offset: int, retries: int, delay: float
    ) -> dict[str, object]:
        failures = 0
        while offset < self._size:
            self._progress(offset, self._size)
            length = min(self._chunk_size, self._size - offset)
            if self._hashed != offset:
                await self._hash_prefix(offset)
            checksum, whole = await asyncio.to_thread(
                self._hash_chunk, offset, length, self._whole.copy()
            )
            try:
                response = await self._client.patch(
                    location,
                    headers={
                        **self._headers,
                        "Content-Type": OFFSET_CONTENT_TYPE,
                        "Content-Length": str(length),
                        "Upload-Offset": str(offset),
                        "Upload-Checksum": f"sha256 {base64.b64encode(checksum).decode()}",
                    },
                    content=self._body(offset, length),
                )
            except httpx.TransportError as exc:
                failures = await _failed(failures, retries, delay, cause=exc)
                offset = await self._where(location, fallback=offset)
                continue
            status = response.status_code
            reported = _offset_header(response)
            if status == 204 and reported is not None:
                if reported == offset + length:
                    self._whole, self._hashed = whole, reported
                offset = reported
                failures = 0
            elif status == 409 and reported is not None:
                # Another run (or a request we thought lost) got further, or not as far.
                offset = reported
                failures = await _failed(failures, retries, 0.0, cause=response)
            elif status in (409, 423, 460) or status >= 500:
                failures = await _failed(failures, retries, delay, cause=response)
                offset = await self._where(location, fallback=offset)
            else:
                # After a 401 (an expired token) the upload continues once logged in again.
                raise ResumableUploadError(
                    _problem(response), response=response, resumable=status == 401
                )
        self._progress(self._size, self._size)
        if self._hashed != self._size:
            await self._hash_prefix(self._size)
        return await self._finished(location)

    async def _hash_prefix(self, end: int) -> None:
        """Hash what the server holds, from the start: a resumed upload checks it all."""
        self._whole, self._hashed = hashlib.sha256(), 0
        while self._hashed < end:
            # A chunk per thread call: Ctrl-C waits for one chunk, not the whole prefix.
            length = min(self._chunk_size, end - self._hashed)
            _, self._whole = await asyncio.to_thread(
                self._hash_chunk, self._hashed, length, self._whole
            )
            self._hashed += length

    async def _finished(self, location: str) -> dict[str, object]:
        file_id = location.rstrip("/").rsplit("/", 1)[-1]
        response = await self._client.get(f"/api/v1/files/{file_id}", headers=self._headers)
        if response.status_code != 200:
            raise ResumableUploadError(_problem(response), response=response, resumable=True)
        try:
            file: object = response.json()
        except ValueError:
            file = None
        if not isinstance(file, dict):
            raise ResumableUploadError("unexpected answer from the server: a file is not an object")
        expected = self._whole.hexdigest()
        if str(file.get("sha256", "")).lower() != expected:
            # The local file changed while it was uploaded (or between runs): what
            # the server holds is neither version. It goes, rather than pass for one.
            with contextlib.suppress(httpx.HTTPError):
                await self._client.delete(f"/api/v1/files/{file_id}", headers=self._headers)
            raise ResumableUploadError(
                f"the file changed while it was uploaded (SHA-256 {expected} here, "
                f"{file.get('sha256')} on the server); the uploaded copy was deleted"
            )
        return {str(key): value for key, value in file.items()}

    async def _where(self, location: str, *, fallback: int) -> int:
        """The server's offset after a failure; ``fallback`` if it cannot say
        (the next PATCH then learns it from a 409)."""
        with contextlib.suppress(httpx.TransportError, ResumableUploadError):
            found = await self.probe(location)
            if found is not None:
                return found
        return fallback

    async def _body(self, offset: int, length: int) -> AsyncIterator[bytes]:
        sent = 0
        await asyncio.to_thread(self._handle.seek, offset)
        while sent < length:
            piece = await asyncio.to_thread(self._handle.read, min(_READ, length - sent))
            if not piece:
                raise ResumableUploadError("the file shrank while it was being uploaded")
            sent += len(piece)
            self._progress(offset + sent, self._size)
            yield piece

    def _hash_chunk(
        self, offset: int, length: int, whole: hashlib._Hash
    ) -> tuple[bytes, hashlib._Hash]:
        """The chunk's own digest, and ``whole`` carried over the chunk."""
        chunk = hashlib.sha256()
        self._handle.seek(offset)
        left = length
        while left:
            piece = self._handle.read(min(_READ, left))
            if not piece:
                raise ResumableUploadError("the file shrank while it was being uploaded")
            left -= len(piece)
            chunk.update(piece)
            whole.update(piece)
        return chunk.digest(), whole


def _offset_header(response: httpx.Response) -> int | None:
    value = response.headers.get("upload-offset", "")
    return int(value) if value.isdigit() else None


async def _failed(
    failures: int, retries: int, delay: float, *, cause: httpx.Response | httpx.TransportError
) -> int:
    failures += 1
    if failures > retries:
        if isinstance(cause, httpx.Response):
            raise ResumableUploadError(
                f"giving up after {retries} retries: {_problem(cause)}",
                response=cause,
                resumable=True,
            )
        raise ResumableUploadError(
            f"giving up after {retries} retries: connection failed: {cause}", resumable=True
        ) from cause
    await asyncio.sleep(delay * failures)
    return failures


def _problem(response: httpx.Response) -> str:
    with contextlib.suppress(ValueError):
        body = response.json()
        if isinstance(body, dict) and body.get("detail"):
            return f"{response.status_code} {body.get('code', '')}: {body['detail']}"
    return f"{response.status_code} {response.reason_phrase}"
