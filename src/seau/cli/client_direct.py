"""`seau upload --direct`: the client of direct uploads (`/api/v1/direct-uploads`).

The bytes go where the server says: on S3 straight to the bucket (a presigned form
POST, or presigned part PUTs for large files), on a local store to seau's own signed
URLs. The bearer token goes to seau only, never to the URLs it hands out. The file's
SHA-256 is computed first and declared, so the server refuses other bytes.

HTTP only, like the rest of the client: nothing here imports the server's modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx

CHUNK = 1024 * 1024
URL_BATCH = 100
"""Part URLs asked for at once."""
PARTS_IN_FLIGHT = 2

PART_TRIES = 3
"""A part is sent again after a dropped connection or a 5xx: its URL stays valid, and
S3 keeps the last copy of a part number."""
RETRY_DELAY = 1.0
"""Seconds before a part's second try; twice that before its third."""

OnProgress = Callable[[int], None]


class DirectUploadError(Exception):
    """A step failed; ``response`` is the server's (or the store's) answer, if any."""

    def __init__(self, message: str, response: httpx.Response | None = None) -> None:
        super().__init__(message)
        self.response = response


def _hash(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        left = size
        while left > 0:
            chunk = source.read(min(4 * CHUNK, left))
            if not chunk:
                raise DirectUploadError(f"the file shrank while hashing ({size - left} of {size})")
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def _read(path: Path, offset: int, length: int) -> bytes:
    with path.open("rb") as source:
        source.seek(offset)
        data = source.read(length)
    if len(data) != length:
        raise DirectUploadError(f"the file shrank while uploading (at byte {offset})")
    return data


def _check(response: httpx.Response, step: str) -> dict[str, Any]:
    if response.status_code >= 300:
        raise DirectUploadError(step, response)
    if not response.content:
        return {}
    body: dict[str, Any] = response.json()
    return body


async def upload_direct(
    client: httpx.AsyncClient,
    path: Path,
    *,
    headers: dict[str, str],
    name: str,
    size: int,
    content_type: str,
    on_progress: OnProgress,
) -> dict[str, Any]:
    """Send ``path`` as a direct upload and complete it; the file as the API shows it.
    The upload is aborted if any step fails."""
    sha256 = await asyncio.to_thread(_hash, path, size)
    made = _check(
        await client.post(
            "/api/v1/direct-uploads",
            json={"name": name, "size": size, "content_type": content_type, "sha256": sha256},
            headers=headers,
        ),
        "starting the direct upload",
    )
    upload_id = str(made["id"])
    try:
        body: dict[str, Any] = {}
        if made["multipart"]:
            parts = await _send_parts(
                client, path, made, headers=headers, size=size, on_progress=on_progress
            )
            body = {"parts": parts}
        else:
            await _send_form(client, path, made["upload"], size=size, on_progress=on_progress)
        return _check(
            await client.post(
                f"/api/v1/direct-uploads/{upload_id}/complete", json=body, headers=headers
            ),
            "completing the direct upload",
        )
    except BaseException:
        # Best effort, shielded: a cancelled run still gives back the reserved room.
        with contextlib.suppress(httpx.HTTPError, asyncio.CancelledError):
            await asyncio.shield(
                client.delete(f"/api/v1/direct-uploads/{upload_id}", headers=headers)
            )
        raise


async def _send_form(
    client: httpx.AsyncClient,
    path: Path,
    form: dict[str, Any],
    *,
    size: int,
    on_progress: OnProgress,
) -> None:
    # A form POST needs its length up front (S3 refuses a chunked one): the parts are
    # built around the file, which is streamed.
    boundary = secrets.token_hex(16)
    head = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        for key, value in form["fields"].items()
    )
    content_type = form["fields"].get("Content-Type", "application/octet-stream")
    head += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="file"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    async def body() -> AsyncIterator[bytes]:
        yield head
        sent = 0
        while sent < size:
            chunk = await asyncio.to_thread(_read, path, sent, min(CHUNK, size - sent))
            sent += len(chunk)
            on_progress(sent)
            yield chunk
        yield tail

    response = await client.post(
        form["url"],
        content=body(),
        headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(len(head) + size + len(tail)),
        },
    )
    _check(response, "sending the bytes")


async def _send_parts(
    client: httpx.AsyncClient,
    path: Path,
    made: dict[str, Any],
    *,
    headers: dict[str, str],
    size: int,
    on_progress: OnProgress,
) -> list[dict[str, object]]:
    upload_id = str(made["id"])
    part_size = int(made["part_size"])
    count = int(made["part_count"])
    done: dict[int, str] = {}
    sent = 0
    slots = asyncio.Semaphore(PARTS_IN_FLIGHT)

    async def one(number: int, url: str) -> None:
        nonlocal sent
        async with slots:
            offset = (number - 1) * part_size
            length = min(part_size, size - offset)
            data = await asyncio.to_thread(_read, path, offset, length)
            response = await _put_part(client, url, data)
            _check(response, f"sending part {number}")
            done[number] = response.headers["etag"]
            sent += length
            on_progress(sent)

    for first in range(1, count + 1, URL_BATCH):
        numbers = list(range(first, min(first + URL_BATCH, count + 1)))
        signed = _check(
            await client.post(
                f"/api/v1/direct-uploads/{upload_id}/parts",
                json={"numbers": numbers},
                headers=headers,
            ),
            "asking for part URLs",
        )
        async with asyncio.TaskGroup() as group:
            for part in signed["parts"]:
                group.create_task(one(int(part["number"]), str(part["url"])))
    return [{"number": n, "etag": done[n]} for n in sorted(done)]


async def _put_part(client: httpx.AsyncClient, url: str, data: bytes) -> httpx.Response:
    for attempt in range(1, PART_TRIES + 1):
        try:
            response = await client.put(url, content=data)
        except httpx.TransportError:
            if attempt == PART_TRIES:
                raise
        else:
            if response.status_code < 500 or attempt == PART_TRIES:
                return response
        await asyncio.sleep(RETRY_DELAY * attempt)
    raise AssertionError("unreachable")
