"""The seau HTTP API as the command line uses it.

HTTP only: nothing here imports the server's modules, so the client works against
any seau server, of any version that speaks `/api/v1`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import mimetypes
import os
import re
import unicodedata
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self

import httpx

from seau import __version__
from seau.cli.client_config import Connection
from seau.cli.client_direct import DirectUploadError, upload_direct
from seau.cli.client_errors import (
    ApiError,
    ClientError,
    ConnectionFailed,
    ResumableUploadError,
    ResumableUploadsUnsupported,
)
from seau.cli.client_tus import RESUMABLE_THRESHOLD, upload_file

CHUNK = 1024 * 1024
UPLOAD_TRIES = 3
"""A plain upload is sent again, with its `Idempotency-Key`, after a dropped
connection or a server that was briefly unavailable: never stored twice."""
RETRYABLE_STATUSES = frozenset({502, 503, 504})
PAGE_SIZE = 1000
# Uploads and downloads can sit idle while the server talks to object storage
# (finishing a multipart upload on S3), so reads wait longer than connects.
TIMEOUT = httpx.Timeout(300.0, connect=15.0, pool=None)

# Called with the number of bytes done so far (not an increment).
OnProgress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class RemoteFile:
    id: str
    name: str
    size: int
    content_type: str
    """Detected by the server from the first bytes."""
    declared_type: str | None
    """What the uploader claimed (None from a server older than the field)."""
    sha256: str
    created_at: datetime
    updated_at: datetime
    # As the server sent it, for `--json`: fields added later pass through.
    data: dict[str, object]

    @classmethod
    def parse(cls, data: object) -> RemoteFile:
        if not isinstance(data, dict):
            raise ClientError("unexpected answer from the server: a file is not a JSON object")
        try:
            size = data["size"]
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise ValueError("size")
            return cls(
                id=str(uuid.UUID(str(data["id"]))),
                name=str(data["name"]),
                size=size,
                content_type=str(data["content_type"]),
                declared_type=(
                    None if data.get("declared_type") is None else str(data["declared_type"])
                ),
                sha256=str(data["sha256"]).lower(),
                created_at=datetime.fromisoformat(str(data["created_at"])),
                updated_at=datetime.fromisoformat(str(data["updated_at"])),
                data={str(k): v for k, v in data.items()},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ClientError(f"unexpected answer from the server: bad file field {exc}") from None


def one_line(text: str) -> str:
    """Whatever the server sent, as one line without terminal control characters."""
    cleaned = "".join(" " if unicodedata.category(c)[0] == "C" else c for c in text)
    return " ".join(cleaned.split())


def problem_message(response: httpx.Response) -> tuple[str, str | None]:
    """`title: detail (code)` from RFC 9457 problem details, else the HTTP status."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("title"), str):
        return f"HTTP {response.status_code} {response.reason_phrase}".strip(), None
    title: str = body["title"]
    parts = [title]
    detail = body.get("detail")
    if isinstance(detail, str) and detail and detail != title:
        parts.append(detail)
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        where = ".".join(str(p) for p in first.get("loc", []) if p not in ("body", "query"))
        parts.append(f"{where}: {first.get('msg', '')}" if where else str(first.get("msg", "")))
    code = body.get("code")
    code = code if isinstance(code, str) else None
    notes = [code] if code else []
    request_id = body.get("request_id")
    if response.status_code >= 500 and isinstance(request_id, str):
        # What an operator needs to find the server's log lines.
        notes.append(f"request {request_id}")
    message = ": ".join(parts) + (f" ({', '.join(notes)})" if notes else "")
    retry_after = response.headers.get("retry-after", "")
    if retry_after.isdigit():
        message += f"; retry in {retry_after} s"
    return one_line(message), code


def as_file_id(ref: str) -> str | None:
    """The canonical id when ``ref`` is one, else None (then it is a name)."""
    try:
        return str(uuid.UUID(ref.strip()))
    except ValueError:
        return None


def _reason(exc: Exception) -> str:
    # httpx says "All connection attempts failed"; the OS error beneath says why.
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno is not None:
            return os.strerror(cause.errno) if cause.errno > 0 else str(cause.strerror)
        cause = cause.__cause__ or cause.__context__
    text = one_line(str(exc)) or exc.__class__.__name__
    return re.sub(r"^\[Errno -?\d+\]\s*", "", text)


class Api:
    """One server, one token; use as ``async with Api(connection) as api``.

    Uploads of ``resumable_threshold`` bytes or more go in resumable chunks (tus),
    remembered in ``upload_state`` so that a later run continues them; None
    means never.
    """

    def __init__(
        self,
        connection: Connection,
        *,
        max_connections: int = 4,
        resumable_threshold: int | None = RESUMABLE_THRESHOLD,
        upload_state: Path | None = None,
        retry_delay: float = 1.0,
    ) -> None:
        self.server = connection.server
        self.token = connection.token
        self._retry_delay = retry_delay
        self._resumable_threshold = resumable_threshold
        self._upload_state = upload_state
        self._client = httpx.AsyncClient(
            base_url=connection.server,
            timeout=TIMEOUT,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            headers={"User-Agent": f"seau-cli/{__version__}"},
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._client.aclose()

    # -- accounts ------------------------------------------------------------

    async def issue_token(self, *, email: str, password: str) -> tuple[str, int | None]:
        response = await self._request(
            "POST",
            "/api/v1/auth/token",
            authenticated=False,
            data={"username": email, "password": password},
        )
        body = self._json(response)
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise ClientError(f"unexpected answer from {self.server}: no access token")
        expires_in = body.get("expires_in") if isinstance(body, dict) else None
        return token, expires_in if isinstance(expires_in, int) else None

    async def me(self) -> dict[str, object]:
        body = self._json(await self._request("GET", "/api/v1/users/me"))
        if not isinstance(body, dict):
            raise ClientError(f"unexpected answer from {self.server}: no user")
        return {str(k): v for k, v in body.items()}

    async def logout_everywhere(self) -> None:
        await self._request("POST", "/api/v1/auth/logout")

    # -- files ---------------------------------------------------------------

    async def files(
        self, *, sort: str = "-created", query: str | None = None
    ) -> AsyncIterator[RemoteFile]:
        """Every file, following the server's cursors page after page."""
        cursor: str | None = None
        while True:
            params = {"limit": str(PAGE_SIZE), "sort": sort}
            if query:
                params["q"] = query
            if cursor:
                params["cursor"] = cursor
            body = self._json(await self._request("GET", "/api/v1/files", params=params))
            if not isinstance(body, dict) or not isinstance(body.get("items"), list):
                raise ClientError(f"unexpected answer from {self.server}: no file list")
            for item in body["items"]:
                yield RemoteFile.parse(item)
            next_cursor = body.get("next_cursor")
            if not isinstance(next_cursor, str) or not next_cursor:
                return
            cursor = next_cursor

    async def get(self, file_id: str) -> RemoteFile:
        return RemoteFile.parse(self._json(await self._request("GET", f"/api/v1/files/{file_id}")))

    async def rename(self, file_id: str, name: str) -> RemoteFile:
        response = await self._request("PATCH", f"/api/v1/files/{file_id}", json={"name": name})
        return RemoteFile.parse(self._json(response))

    async def delete(self, file_id: str) -> None:
        await self._request("DELETE", f"/api/v1/files/{file_id}")

    async def resolve(self, ref: str) -> RemoteFile:
        """The file ``ref`` names: an id, else the one file with exactly that name."""
        file_id = as_file_id(ref)
        not_found: ApiError | None = None
        if file_id is not None:
            try:
                return await self.get(file_id)
            except ApiError as exc:
                # Names are free text: a file may be named like an id.
                if exc.status != 404:
                    raise
                not_found = exc
        # The server stores names in NFC; a name typed on macOS may arrive in NFD.
        name = unicodedata.normalize("NFC", ref)
        matches = [f async for f in self.files(sort="name", query=name) if f.name == name]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            if not_found is not None:
                raise not_found
            raise ClientError(f"no file named {ref!r} (and it is not an id)")
        ids = ", ".join(f.id for f in matches)
        raise ClientError(f"{len(matches)} files are named {ref!r}; give one id: {ids}")

    async def upload(
        self, path: Path, *, name: str, size: int, on_progress: OnProgress
    ) -> tuple[RemoteFile, int]:
        """Send the file at ``path`` (``size`` bytes) as a file named ``name``; the new
        file, and how many bytes an earlier, interrupted run had already sent.

        The one place an upload crosses the network: one streamed POST, or resumable
        chunks (tus) from ``resumable_threshold`` bytes on, when the server has them.
        `OSError` when the file cannot be read.
        """
        threshold = self._resumable_threshold
        if threshold is not None and size >= threshold:
            try:
                return await self._upload_resumable(path, name=name, on_progress=on_progress)
            except ResumableUploadsUnsupported:
                # Asked once: the other files go straight to the plain upload.
                self._resumable_threshold = None
        handle = await asyncio.to_thread(path.open, "rb")
        with handle:
            return await self._upload_raw(handle, name=name, size=size, on_progress=on_progress), 0

    async def _upload_resumable(
        self, path: Path, *, name: str, on_progress: OnProgress
    ) -> tuple[RemoteFile, int]:
        try:
            file, resumed = await upload_file(
                self._client,
                path,
                headers=self._auth_headers(),
                name=name,
                content_type=_content_type(name),
                state_file=self._upload_state,
                progress=lambda done, _total: on_progress(done),
            )
        except ResumableUploadsUnsupported:
            raise
        except ResumableUploadError as exc:
            raise self._resumable_error(exc) from None
        except httpx.TransportError as exc:
            raise ClientError(self._transport_message(exc)) from None
        return RemoteFile.parse(file), resumed

    def _resumable_error(self, exc: ResumableUploadError) -> ClientError:
        hint = ""
        if exc.resumable and self._upload_state is not None:
            hint = "; run the same command again to resume"
        if exc.response is not None:
            error = self._api_error(exc.response, authenticated=True)
            return ApiError(f"{error}{hint}", status=error.status, code=error.code)
        cause = exc.__cause__
        if isinstance(cause, httpx.TransportError):
            return ClientError(self._transport_message(cause) + hint)
        return ClientError(f"{exc}{hint}")

    async def upload_direct(
        self, path: Path, *, name: str, size: int, on_progress: OnProgress
    ) -> tuple[RemoteFile, int]:
        """Send the file at ``path`` as a direct upload (`seau.cli.client_direct`): the
        bytes go where the server says (on S3, the bucket), and it verifies them. The
        new file, and how many bytes an earlier, interrupted run had already sent (a
        multipart upload is remembered in ``upload_state`` until it completes)."""
        try:
            file, resumed = await upload_direct(
                self._client,
                path,
                headers=self._auth_headers(),
                name=name,
                size=size,
                content_type=_content_type(name),
                on_progress=on_progress,
                state_file=self._upload_state,
            )
        except DirectUploadError as exc:
            hint = "; run the same command again to resume" if exc.kept else ""
            if exc.response is None:
                cause = exc.__cause__
                if isinstance(cause, httpx.TransportError):
                    raise ClientError(self._transport_message(cause) + hint) from None
                raise ClientError(f"{exc}{hint}") from None
            message, code = problem_message(exc.response)
            if code is None:
                # Not seau's answer (S3's XML error): say which step it was.
                message = f"{exc}: {message}"
            raise ApiError(message + hint, status=exc.response.status_code, code=code) from None
        except httpx.TransportError as exc:
            raise ClientError(self._transport_message(exc)) from None
        return RemoteFile.parse(file), resumed

    async def _upload_raw(
        self, source: BinaryIO, *, name: str, size: int, on_progress: OnProgress
    ) -> RemoteFile:
        async def body() -> AsyncIterator[bytes]:
            sent = 0
            while sent < size:
                chunk = await asyncio.to_thread(source.read, min(CHUNK, size - sent))
                if not chunk:
                    raise ClientError(f"the file shrank while uploading ({sent} of {size} bytes)")
                sent += len(chunk)
                on_progress(sent)
                yield chunk

        # One key for every try: a retry of an upload the server did store (the
        # answer was lost) answers that file instead of storing it again.
        key = str(uuid.uuid4())
        for attempt in range(1, UPLOAD_TRIES + 1):
            await asyncio.to_thread(source.seek, 0)
            try:
                response = await self._request(
                    "POST",
                    "/api/v1/files",
                    params={"name": name},
                    content=body(),
                    headers={
                        # A declared length lets the server refuse a file over its
                        # limit at once.
                        "Content-Length": str(size),
                        "Content-Type": _content_type(name),
                        "Idempotency-Key": key,
                    },
                )
            except (ConnectionFailed, ApiError) as exc:
                if attempt == UPLOAD_TRIES or not _worth_retrying(exc):
                    raise
                on_progress(0)
                await asyncio.sleep(attempt * self._retry_delay)
                continue
            return RemoteFile.parse(self._json(response))
        raise AssertionError("unreachable")

    async def download(self, file: RemoteFile, *, dest: Path, on_progress: OnProgress) -> int:
        """Write ``file`` to ``dest`` through ``dest.part``, resuming that partial file.

        The SHA-256 of the whole is checked before ``dest`` appears; on a mismatch the
        partial file is removed and nothing is left at ``dest``. Returns the number
        of bytes the partial file already held.
        """
        part = dest.with_name(dest.name + ".part")
        kept, digest = await asyncio.to_thread(_hash_partial, part, file.size)
        on_progress(kept)
        if kept < file.size:
            digest = await self._fetch(
                file, part=part, kept=kept, digest=digest, on_progress=on_progress
            )
        got = digest.hexdigest()
        if got != file.sha256:
            await asyncio.to_thread(part.unlink, missing_ok=True)
            raise ClientError(
                f"SHA-256 mismatch for {file.name!r}: expected {file.sha256}, got {got}; "
                f"the partial download was removed, run the command again"
            )
        await asyncio.to_thread(os.replace, part, dest)
        return kept

    async def _fetch(
        self,
        file: RemoteFile,
        *,
        part: Path,
        kept: int,
        digest: hashlib._Hash,
        on_progress: OnProgress,
    ) -> hashlib._Hash:
        """Append the rest of the file to ``part``; the digest of the whole file."""
        headers = self._auth_headers()
        if kept:
            # If-Range binds the range to the SHA-256 checked at the end: should the
            # content not be that one, the server sends all of it (200), not a range.
            headers |= {"Range": f"bytes={kept}-", "If-Range": f'"{file.sha256}"'}
        url = f"/api/v1/files/{file.id}/content"
        try:
            # A server that redirects downloads (SEAU_DOWNLOAD_REDIRECT) answers 307 to
            # a download link, on S3 a presigned URL: followed with the same Range and
            # If-Range, and without the token when the link is on another host.
            async with self._client.stream(
                "GET", url, headers=headers, follow_redirects=True
            ) as response:
                if not response.is_success:
                    await response.aread()
                    raise self._api_error(response, authenticated=True)
                start = 0
                if response.status_code == 206:
                    content_range = response.headers.get("content-range", "")
                    if not content_range.startswith(f"bytes {kept}-"):
                        raise ClientError(f"the server answered the wrong range: {content_range}")
                    start = kept
                else:
                    digest = hashlib.sha256()
                done = await _write_body(
                    response, part=part, start=start, digest=digest, on_progress=on_progress
                )
        except httpx.TransportError as exc:
            raise ClientError(
                f"{self._transport_message(exc)}; run the same command again to resume"
            ) from None
        if done != file.size:
            raise ClientError(
                f"the download stopped at {done} of {file.size} bytes; "
                "run the same command again to resume"
            )
        return digest

    # -- plumbing ------------------------------------------------------------

    def _auth_headers(self) -> dict[str, str]:
        if not self.token:
            raise ClientError(
                f"not logged in to {self.server}; run `seau login` (or set SEAU_TOKEN)"
            )
        return {"Authorization": f"Bearer {self.token}"}

    async def _request(
        self,
        method: str,
        url: str,
        *,
        authenticated: bool = True,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        data: dict[str, str] | None = None,
        json: dict[str, str] | None = None,
        content: AsyncIterator[bytes] | None = None,
    ) -> httpx.Response:
        all_headers = {**(self._auth_headers() if authenticated else {}), **(headers or {})}
        try:
            response = await self._client.request(
                method,
                url,
                headers=all_headers,
                params=params,
                data=data,
                json=json,
                content=content,
            )
        except httpx.TransportError as exc:
            raise ConnectionFailed(self._transport_message(exc)) from None
        if not response.is_success:
            raise self._api_error(response, authenticated=authenticated)
        return response

    def _api_error(self, response: httpx.Response, *, authenticated: bool) -> ApiError:
        message, code = problem_message(response)
        if response.status_code == 401 and authenticated:
            message += "; run `seau login`"
        return ApiError(message, status=response.status_code, code=code)

    def _transport_message(self, exc: httpx.TransportError) -> str:
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return f"cannot reach {self.server}: {_reason(exc)}"
        if isinstance(exc, httpx.TimeoutException):
            return f"{self.server} did not answer in time"
        return f"the connection to {self.server} failed: {_reason(exc)}"

    def _json(self, response: httpx.Response) -> object:
        try:
            body: object = response.json()
        except ValueError:
            raise ClientError(f"unexpected answer from {self.server}: not JSON") from None
        return body


def _content_type(name: str) -> str:
    guessed, _ = mimetypes.guess_type(name, strict=False)
    # The server reads a multipart type as a form upload, whatever the name says.
    if guessed is None or guessed.startswith("multipart/"):
        return "application/octet-stream"
    return guessed


def _hash_partial(part: Path, size: int) -> tuple[int, hashlib._Hash]:
    """The partial file's length and digest; 0 when it cannot be a prefix of the file.

    The partial file exists afterwards, if only empty.
    """
    digest = hashlib.sha256()
    try:
        kept = part.stat().st_size
    except FileNotFoundError:
        part.touch()
        return 0, digest
    if kept > size:
        os.truncate(part, 0)
        return 0, digest
    with part.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return kept, digest


async def _write_body(
    response: httpx.Response,
    *,
    part: Path,
    start: int,
    digest: hashlib._Hash,
    on_progress: OnProgress,
) -> int:
    """Append the body to ``part`` from ``start``; returns the partial file's length."""
    done = start
    buffer = bytearray()
    handle = await asyncio.to_thread(part.open, "r+b")
    with handle:
        handle.seek(start)
        handle.truncate()
        try:
            async for chunk in response.aiter_bytes():
                digest.update(chunk)
                buffer += chunk
                done += len(chunk)
                on_progress(done)
                if len(buffer) >= CHUNK:
                    # Cleared before the await: if cancelled there, the thread still
                    # writes these bytes and the `finally` must not write them again.
                    data = bytes(buffer)
                    buffer.clear()
                    await asyncio.to_thread(handle.write, data)
        finally:
            # Whatever arrived is kept, even when interrupted: the next run resumes after it.
            with contextlib.suppress(OSError):
                handle.write(buffer)
                handle.flush()
                os.fsync(handle.fileno())
    return done


def _worth_retrying(exc: ClientError) -> bool:
    """A dropped connection, a server briefly unavailable, or the first try of the
    same upload still running on the server (its answer then comes to the retry)."""
    if isinstance(exc, ConnectionFailed):
        return True
    return isinstance(exc, ApiError) and (
        exc.status in RETRYABLE_STATUSES or exc.code == "idempotency_key_in_use"
    )
