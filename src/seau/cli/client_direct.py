"""`seau upload --direct`: the client of direct uploads (`/api/v1/direct-uploads`).

The bytes go where the server says: on S3 straight to the bucket (a presigned form
POST, or presigned part PUTs for large files), on a local store to seau's own signed
URLs. The bearer token goes to seau only, never to the URLs it hands out. The file's
SHA-256 is computed first and declared, so the server refuses other bytes.

A multipart upload is remembered in the state file (`seau.cli.client_state`) from its
start until it completes. Interrupted (Ctrl-C, a killed process, a lost connection, a
store or a server that kept failing), it stays on the server, and uploading the same
file again asks which parts the store holds and sends only the others. Refused (the
bytes are not what was declared, the quota, the type), it is aborted: nothing would
ever complete it. A single-part upload is one request, so it is aborted on any failure,
and so is any upload sent without a state file to remember it in. What is never
continued, the server removes once it expires (`SEAU_DIRECT_UPLOAD_EXPIRY_SECONDS`,
then `seau gc`).

HTTP only, like the rest of the client: nothing here imports the server's modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx

from seau.cli.client_state import DIRECT_PREFIX, UploadStates, fingerprint

DIRECT_UPLOADS = "/api/v1/direct-uploads"
CHUNK = 1024 * 1024
URL_BATCH = 100
"""Part URLs asked for at once."""
PARTS_IN_FLIGHT = 2

PART_TRIES = 3
"""A part is sent again after a dropped connection or a 5xx: its URL stays valid, and
S3 keeps the last copy of a part number."""
RETRY_DELAY = 1.0
"""Seconds before a part's second try; twice that before its third."""
SMALLEST_MULTIPART = 5 * 1024 * 1024
"""The server sends nothing smaller in parts (its threshold is at least S3's smallest
part), so a smaller file never has anything to resume."""

_TRANSIENT = frozenset({401, 408, 425, 429})
"""Answers below 500 that are no refusal of the upload: the same step can succeed
later (401: once logged in again)."""
_RECORDED = re.compile(rf"{DIRECT_UPLOADS}/([0-9a-fA-F-]{{36}})")

OnProgress = Callable[[int], None]


class DirectUploadError(Exception):
    """A step failed; ``response`` is the server's (or the store's) answer, if any.

    ``transient``: no refusal, the same step may succeed later. ``kept``: the upload
    stays on the server, and uploading the same file again continues it.
    """

    def __init__(
        self, message: str, response: httpx.Response | None = None, *, transient: bool = False
    ) -> None:
        super().__init__(message)
        self.response = response
        self.transient = transient
        self.kept = False


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


def _check(
    response: httpx.Response, step: str, *, transient: frozenset[int] = _TRANSIENT
) -> dict[str, Any]:
    status = response.status_code
    if status >= 300:
        raise DirectUploadError(step, response, transient=status >= 500 or status in transient)
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
    state_file: Path | None = None,
) -> tuple[dict[str, Any], int]:
    """Send ``path`` as a direct upload and complete it; the file as the API shows it,
    and how many bytes an earlier, interrupted run had already sent.

    With a ``state_file``, a multipart upload that fails without being refused is
    kept for the next call with the same file (`DirectUploadError.kept`), which
    continues it; any other failure aborts the upload.
    """
    sha256 = await asyncio.to_thread(_hash, path, size)
    states = UploadStates(state_file)
    resolved = await asyncio.to_thread(path.resolve)
    info = await asyncio.to_thread(resolved.stat)
    key = DIRECT_PREFIX + fingerprint(
        str(client.base_url), resolved, size=size, mtime_ns=info.st_mtime_ns
    )
    recorded = await states.get(key)
    continued: tuple[dict[str, Any], dict[int, str]] | None = None
    if recorded is not None:
        # A failure here keeps the entry: nothing says the upload cannot go on.
        try:
            found = await _continue(client, recorded, headers=headers, size=size, sha256=sha256)
        except DirectUploadError as exc:
            exc.kept = True
            raise
        except httpx.TransportError as exc:
            raise _connection_lost() from exc
        if isinstance(found, dict):
            await states.drop(key)
            return found, size
        if found is None:
            await states.drop(key)
        continued = found
    if continued is None:
        made = _check(
            await client.post(
                DIRECT_UPLOADS,
                json={"name": name, "size": size, "content_type": content_type, "sha256": sha256},
                headers=headers,
            ),
            "starting the direct upload",
        )
        held: dict[int, str] = {}
        resumed = 0
    else:
        made, held = continued
        resumed = sum(_length(n, part_size=int(made["part_size"]), size=size) for n in held)
    upload_id = str(made["id"])
    keep = state_file is not None and bool(made["multipart"])
    if keep and continued is None:
        await states.put(key, f"{DIRECT_UPLOADS}/{upload_id}")
    try:
        body: dict[str, Any] = {}
        if made["multipart"]:
            parts = await _send_parts(
                client, path, made, held=held, headers=headers, size=size, on_progress=on_progress
            )
            body = {"parts": parts}
        else:
            await _send_form(client, path, made["upload"], size=size, on_progress=on_progress)
        file = _check(
            await client.post(f"{DIRECT_UPLOADS}/{upload_id}/complete", json=body, headers=headers),
            "completing the direct upload",
        )
    except BaseException as exc:
        if not (keep and _interrupted(exc)):
            await _abort(client, upload_id, headers=headers)
            await states.drop(key)
            raise
        if isinstance(exc, httpx.TransportError):
            raise _connection_lost() from exc
        if isinstance(exc, DirectUploadError):
            exc.kept = True
        raise
    await states.drop(key)
    return file, resumed


_Found = tuple[dict[str, Any], dict[int, str]] | dict[str, Any]
"""A remembered upload to continue and the parts its store holds (number to ETag), or
the file it already became."""


async def _continue(
    client: httpx.AsyncClient,
    recorded: str,
    *,
    headers: dict[str, str],
    size: int,
    sha256: str,
) -> _Found | None:
    """Where the remembered upload stands; None when there is nothing to continue:
    the server no longer has it (expired, aborted), it is another file's, or the store
    holds none of its parts."""
    match = _RECORDED.fullmatch(recorded)
    if match is None:
        return None
    upload_id = match[1]
    response = await client.get(f"{DIRECT_UPLOADS}/{upload_id}", headers=headers)
    if response.status_code == 404:
        return await _finished(client, upload_id, headers=headers, size=size, sha256=sha256)
    if 400 <= response.status_code < 500 and response.status_code not in _TRANSIENT:
        return None
    made = _check(response, "asking for the direct upload")
    part_size = made.get("part_size")
    if (
        not made.get("multipart")
        or made.get("size") != size
        or str(made.get("sha256")).lower() != sha256
        or not isinstance(part_size, int)
        or part_size <= 0
        or made.get("part_count") != -(-size // part_size)
    ):
        # Its reserved room comes back now rather than at its expiry.
        await _abort(client, upload_id, headers=headers)
        return None
    listed = await client.get(f"{DIRECT_UPLOADS}/{upload_id}/parts", headers=headers)
    if 400 <= listed.status_code < 500 and listed.status_code not in _TRANSIENT:
        return None
    held: dict[int, str] = {}
    for part in _check(listed, "listing the stored parts").get("parts", []):
        number, etag = part.get("number"), part.get("etag")
        if (
            isinstance(number, int)
            and 1 <= number <= made["part_count"]
            and isinstance(etag, str)
            and part.get("size") == _length(number, part_size=part_size, size=size)
        ):
            held[number] = etag
    if not held:
        # An empty listing may also mean the parts were already joined by a completion
        # whose answer was lost (S3 then forgets them): sending them again would fail.
        await _abort(client, upload_id, headers=headers)
        return None
    return made, held


async def _finished(
    client: httpx.AsyncClient,
    upload_id: str,
    *,
    headers: dict[str, str],
    size: int,
    sha256: str,
) -> dict[str, Any] | None:
    """The file the upload became, when a run completed it but stopped before it could
    forget it (a completion whose answer was lost): a direct upload's file has its id."""
    response = await client.get(f"/api/v1/files/{upload_id}", headers=headers)
    if response.status_code != 200:
        return None
    file = _check(response, "asking for the file")
    if file.get("size") != size or str(file.get("sha256")).lower() != sha256:
        return None
    return file


def _interrupted(exc: BaseException) -> bool:
    """Whether ``exc`` stopped the upload rather than refused it: a cancellation
    (Ctrl-C), a lost connection, or an answer that may be different later."""
    if isinstance(exc, DirectUploadError):
        return exc.transient
    return isinstance(exc, httpx.TransportError) or not isinstance(exc, Exception)


def _connection_lost() -> DirectUploadError:
    """The error of an upload left for the next run after a lost connection."""
    error = DirectUploadError("connection failed", transient=True)
    error.kept = True
    return error


async def _abort(client: httpx.AsyncClient, upload_id: str, *, headers: dict[str, str]) -> None:
    # Best effort, shielded: a cancelled run still gives back the reserved room.
    with contextlib.suppress(httpx.HTTPError, asyncio.CancelledError):
        await asyncio.shield(client.delete(f"{DIRECT_UPLOADS}/{upload_id}", headers=headers))


def _length(number: int, *, part_size: int, size: int) -> int:
    """Part ``number``'s length: ``part_size``, but the last is what is left."""
    return min(part_size, size - (number - 1) * part_size)


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
    held: dict[int, str],
    headers: dict[str, str],
    size: int,
    on_progress: OnProgress,
) -> list[dict[str, object]]:
    """Send the parts the store does not hold (``held``: number to ETag); every part's
    number and ETag, in order."""
    upload_id = str(made["id"])
    part_size = int(made["part_size"])
    count = int(made["part_count"])
    done = dict(held)
    sent = sum(_length(n, part_size=part_size, size=size) for n in held)
    on_progress(sent)
    slots = asyncio.Semaphore(PARTS_IN_FLIGHT)

    async def one(number: int, url: str) -> None:
        nonlocal sent
        async with slots:
            offset = (number - 1) * part_size
            length = _length(number, part_size=part_size, size=size)
            data = await asyncio.to_thread(_read, path, offset, length)
            response = await _put_part(client, url, data)
            # 403: the part's URL expired (a slow upload); the next run asks fresh ones.
            _check(response, f"sending part {number}", transient=_TRANSIENT | {403})
            done[number] = response.headers["etag"]
            sent += length
            on_progress(sent)

    missing = [n for n in range(1, count + 1) if n not in held]
    for first in range(0, len(missing), URL_BATCH):
        signed = _check(
            await client.post(
                f"{DIRECT_UPLOADS}/{upload_id}/parts",
                json={"numbers": missing[first : first + URL_BATCH]},
                headers=headers,
            ),
            "asking for part URLs",
        )
        try:
            async with asyncio.TaskGroup() as group:
                for part in signed["parts"]:
                    group.create_task(one(int(part["number"]), str(part["url"])))
        except BaseExceptionGroup as failed:
            # The first failure says why (with its own cause: the OS error under a
            # lost connection); the parts in flight beside it were cancelled.
            failure = failed.exceptions[0]
            raise failure from failure.__cause__
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
