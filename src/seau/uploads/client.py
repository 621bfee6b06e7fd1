"""A resumable upload client over HTTP (httpx), for `seau upload` and scripts.

It speaks tus 1.0.0 to `/api/v1/uploads`: creates the upload, sends the file in
chunks, each with an `Upload-Checksum` (sha256), and recovers from dropped
connections, restarts and 409/423/460 answers by asking the server (HEAD) where
the upload stands. With a ``state_file`` it remembers the upload's URL, so that
running the same upload again after an interruption (Ctrl-C, a crash, a lost
network) continues it instead of starting over.

Memory stays flat: each chunk is read from the file twice (once to hash, once
to send), 1 MiB at a time.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from seau.uploads.tus import OFFSET_CONTENT_TYPE, TUS_VERSION

MiB = 1024 * 1024
# Twice the default S3 part size (5 MiB): requests that end on part boundaries
# leave no tail object for the server to write and read back.
DEFAULT_CHUNK_SIZE = 10 * MiB
# Below this a plain POST is as good: one request, and a failure costs little to redo.
RESUMABLE_THRESHOLD = 32 * MiB
UPLOADS_PATH = "/api/v1/uploads"
_READ = MiB
_TUS = {"Tus-Resumable": TUS_VERSION}

Progress = Callable[[int, int], None]
"""Called with (bytes the server holds, total) after every chunk."""


class ResumableUploadError(Exception):
    """The server refused the upload; the message says why."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ResumableUploadsUnsupported(ResumableUploadError):
    """The server has no resumable uploads (an older seau, or a store without them)."""


def upload_file(
    client: httpx.Client,
    path: Path,
    *,
    name: str | None = None,
    content_type: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    state_file: Path | None = None,
    progress: Progress | None = None,
    retries: int = 5,
    retry_delay: float = 1.0,
) -> dict[str, object]:
    """Upload ``path``; returns the new file's metadata (as `GET /api/v1/files/{id}`).

    ``client`` has the server as ``base_url`` and the `Authorization` header set.
    ``retries`` bounds consecutive failed attempts (network errors, 5xx, 423,
    checksum mismatches); every attempt that moves the upload forward resets it.
    """
    if chunk_size <= 0:
        raise ValueError("chunk_size must be positive")
    size = path.stat().st_size
    states = _States(state_file)
    fingerprint = _fingerprint(client, path)
    location = states.get(fingerprint)
    offset = _offset_of(client, location) if location is not None else None
    if location is None or offset is None:
        location = _create(client, path, name=name, content_type=content_type, size=size)
        states.put(fingerprint, location)
        offset = 0
    failures = 0
    while offset < size:
        if progress is not None:
            progress(offset, size)
        length = min(chunk_size, size - offset)
        try:
            response = _patch(client, location, path, offset=offset, length=length)
        except httpx.TransportError as exc:
            failures = _failed(failures, retries, retry_delay, f"connection failed: {exc}")
            offset = _current_offset(client, location, fallback=offset)
            continue
        if response.status_code == 204:
            offset = int(response.headers["upload-offset"])
            failures = 0
        elif response.status_code in (409, 423, 460) or response.status_code >= 500:
            failures = _failed(failures, retries, retry_delay, _problem(response))
            offset = _current_offset(client, location, fallback=offset)
        else:
            if response.status_code in (404, 410):
                states.drop(fingerprint)
            raise ResumableUploadError(_problem(response), status=response.status_code)
    if progress is not None:
        progress(size, size)
    states.drop(fingerprint)
    file_id = location.rstrip("/").rsplit("/", 1)[-1]
    answer = client.get(f"/api/v1/files/{file_id}")
    if answer.status_code != 200:
        raise ResumableUploadError(_problem(answer), status=answer.status_code)
    file: dict[str, object] = answer.json()
    return file


def _create(
    client: httpx.Client, path: Path, *, name: str | None, content_type: str | None, size: int
) -> str:
    metadata = {"filename": name or path.name}
    if content_type:
        metadata["filetype"] = content_type
    response = client.post(
        UPLOADS_PATH,
        headers={
            **_TUS,
            "Upload-Length": str(size),
            "Upload-Metadata": ",".join(
                f"{key} {base64.b64encode(value.encode()).decode()}"
                for key, value in metadata.items()
            ),
        },
    )
    if response.status_code in (404, 405, 501):
        raise ResumableUploadsUnsupported(_problem(response), status=response.status_code)
    if response.status_code != 201 or "location" not in response.headers:
        raise ResumableUploadError(_problem(response), status=response.status_code)
    return response.headers["location"]


def _patch(
    client: httpx.Client, location: str, path: Path, *, offset: int, length: int
) -> httpx.Response:
    digest = hashlib.sha256()
    for piece in _read(path, offset=offset, length=length):
        digest.update(piece)
    return client.patch(
        location,
        headers={
            **_TUS,
            "Content-Type": OFFSET_CONTENT_TYPE,
            "Content-Length": str(length),
            "Upload-Offset": str(offset),
            "Upload-Checksum": f"sha256 {base64.b64encode(digest.digest()).decode()}",
        },
        content=_read(path, offset=offset, length=length),
    )


def _read(path: Path, *, offset: int, length: int) -> Iterator[bytes]:
    with path.open("rb") as source:
        source.seek(offset)
        left = length
        while left:
            piece = source.read(min(_READ, left))
            if not piece:
                raise ResumableUploadError(f"{path} shrank while it was being uploaded")
            left -= len(piece)
            yield piece


def _offset_of(client: httpx.Client, location: str) -> int | None:
    """Where a remembered upload stands, or None if the server no longer has it."""
    try:
        response = client.head(location, headers=_TUS)
    except httpx.TransportError:
        return None
    if response.status_code != 200 or "upload-offset" not in response.headers:
        return None
    return int(response.headers["upload-offset"])


def _current_offset(client: httpx.Client, location: str, *, fallback: int) -> int:
    found = _offset_of(client, location)
    return fallback if found is None else found


def _failed(failures: int, retries: int, delay: float, reason: str) -> int:
    failures += 1
    if failures > retries:
        raise ResumableUploadError(f"giving up after {retries} retries: {reason}")
    time.sleep(delay * failures)
    return failures


def _problem(response: httpx.Response) -> str:
    with contextlib.suppress(ValueError):
        body = response.json()
        if isinstance(body, dict) and body.get("detail"):
            return f"{response.status_code} {body.get('code', '')}: {body['detail']}"
    return f"{response.status_code} {response.reason_phrase}"


def _fingerprint(client: httpx.Client, path: Path) -> str:
    info = path.stat()
    return "|".join(
        [str(client.base_url), str(path.resolve()), str(info.st_size), str(info.st_mtime_ns)]
    )


class _States:
    """Upload URLs by file fingerprint, in a small JSON file (or nowhere)."""

    def __init__(self, path: Path | None) -> None:
        self._path = path

    def _load(self) -> dict[str, str]:
        if self._path is None:
            return {}
        try:
            data = json.loads(self._path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def _save(self, states: dict[str, str]) -> None:
        if self._path is None:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        temp = self._path.with_name(f".{self._path.name}.{os.getpid()}")
        temp.write_text(json.dumps(states, indent=1), encoding="utf-8")
        os.replace(temp, self._path)

    def get(self, fingerprint: str) -> str | None:
        return self._load().get(fingerprint)

    def put(self, fingerprint: str, location: str) -> None:
        states = self._load()
        states[fingerprint] = location
        self._save(states)

    def drop(self, fingerprint: str) -> None:
        states = self._load()
        if states.pop(fingerprint, None) is not None:
            self._save(states)
