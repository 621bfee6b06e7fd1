"""Resumable uploads on S3: one multipart upload per upload, parts across requests.

obstore writes a multipart upload within one call and exposes neither its id
nor its parts, so an upload that continues in another request (or on another
instance) needs the S3 calls themselves: this narrow adapter makes them with
aiobotocore, reaching the same bucket, prefix and endpoint as the store.

Every part but the last must hold at least 5 MiB, so a request that does not
end on a part boundary leaves its last bytes in a tail object
(``uploads/<name>/<random>``); the next request, on any instance, reads the
tail back ahead of its own bytes. A new tail always gets a new key, so the
recorded one stays intact until the caller has recorded its successor.
Memory per request: one part being filled and one being sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import secrets
from collections.abc import AsyncIterable, AsyncIterator, Awaitable
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar

from seau.storage._sources import close_source
from seau.storage.errors import StagingLost, StorageError, StorageUnavailable
from seau.storage.keys import prefix_directory, validate_key
from seau.storage.s3 import S3Options
from seau.storage.staging import Part, Staged, StaleStaging, check_name

MiB = 1024 * 1024
TAIL_PREFIX = "uploads/"
_LIST_PAGE = 1000

T = TypeVar("T")
# botocore ships no types: its answers are JSON-like dicts, read with care.
_Answer = dict[str, Any]

_GONE_CODES = frozenset({"NoSuchUpload", "NoSuchKey", "404"})


@dataclass(frozen=True, slots=True)
class _Sdk:
    get_session: Any
    config: Any
    client_error: type[Exception]
    errors: tuple[type[BaseException], ...]
    """botocore's own failures, and what its aiohttp transport raises while a body streams."""


@functools.cache
def _sdk() -> _Sdk:
    """aiobotocore, imported when the first resumable upload reaches S3: with
    botocore and aiohttp it is 15 MiB resident (and 278 modules) that a server
    taking only plain uploads never needs."""
    import aiohttp
    from aiobotocore.session import get_session
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    return _Sdk(
        get_session=get_session,
        config=Config,
        client_error=ClientError,
        errors=(BotoCoreError, ClientError, aiohttp.ClientError, asyncio.TimeoutError, OSError),
    )


class _Gone(Exception):
    """S3 answered that the multipart upload or the object does not exist."""


class S3UploadStaging:
    """`UploadStaging` on one bucket (and prefix) of an S3-compatible server."""

    def __init__(self, options: S3Options, *, read_chunk_size: int = MiB) -> None:
        if not options.bucket:
            raise ValueError("S3 bucket name is empty")
        self._options = options
        self._bucket = options.bucket
        self._prefix = options.prefix.strip("/")
        self._read_chunk_size = read_chunk_size
        self._stack = AsyncExitStack()
        # An aiobotocore client (untyped), made on first use.
        self._client: Any = None
        self._lock = asyncio.Lock()

    # -- the capability ----------------------------------------------------

    async def begin(self, staged: Staged, *, content_type: str | None) -> str:
        extra = {"ContentType": content_type} if content_type else {}
        answer = await self._call(
            "create multipart upload",
            staged.key,
            "create_multipart_upload",
            {"Bucket": self._bucket, "Key": self._full(staged.key), **extra},
        )
        return str(answer["UploadId"])

    async def append(self, staged: Staged, data: AsyncIterable[bytes]) -> Staged:
        handle = _handle(staged)
        parts = list(staged.parts)
        tail_size = staged.size - sum(p.size for p in parts)
        source = self._after_tail(staged, tail_size, data)
        buffer = bytearray()
        new_tail: str | None = None
        number = len(parts) + 1
        # One part on its way to S3 while the next one fills: the request keeps
        # flowing, and memory stays at two parts.
        sending: asyncio.Task[Part] | None = None
        try:
            async for chunk in source:
                buffer += chunk
                while len(buffer) >= staged.part_size:
                    with memoryview(buffer) as view:
                        body = bytes(view[: staged.part_size])
                    del buffer[: staged.part_size]
                    if sending is not None:
                        parts.append(await sending)
                    sending = asyncio.create_task(self._send_part(staged, handle, number, body))
                    number += 1
            if sending is not None:
                parts.append(await sending)
                sending = None
            if buffer:
                new_tail = self._new_tail_key(staged.name)
                await self._put(new_tail, bytes(buffer))
        except BaseException:
            if sending is not None:
                sending.cancel()
                with contextlib.suppress(BaseException):
                    await sending
            if new_tail is not None:
                await asyncio.shield(self._delete_quietly(new_tail))
            raise
        finally:
            await close_source(source)
        # Parts this call sent but nobody records are overwritten by the next
        # request, or left out of the completed object: S3 keeps only listed parts.
        return replace(
            staged,
            parts=tuple(parts),
            tail_key=new_tail,
            size=sum(p.size for p in parts) + len(buffer),
        )

    async def discard(self, *, old: Staged, new: Staged) -> None:
        if new.tail_key is not None and new.tail_key != old.tail_key:
            await self._delete(new.tail_key)

    async def settle(self, *, old: Staged, new: Staged) -> None:
        if old.tail_key is not None and old.tail_key != new.tail_key:
            await self._delete_quietly(old.tail_key)

    async def finish(self, staged: Staged, *, content_type: str | None) -> None:
        try:
            await self._complete(staged, content_type=content_type)
        except _Gone:
            # Completed by an earlier attempt that was cut before it was recorded
            # (the tail read back or its part refused, the completion answered
            # NoSuchUpload): the object is there, whole, or the bytes are gone.
            if await self._size_of(staged.key) != staged.size:
                raise StagingLost(f"the multipart upload of {staged.key!r} is gone") from None
        if staged.tail_key is not None:
            await self._delete_quietly(staged.tail_key)

    async def _complete(self, staged: Staged, *, content_type: str | None) -> None:
        handle = _handle(staged)
        parts = list(staged.parts)
        if staged.size == 0:
            # S3 refuses a multipart upload without parts; an empty object is a plain PUT.
            await self._put(staged.key, b"", content_type=content_type)
            await self._abort_quietly(staged.key, handle)
            return
        if staged.tail_key is not None:
            tail = bytearray()
            stream = self._read(staged.tail_key)
            try:
                async for chunk in stream:
                    tail += chunk
            finally:
                await close_source(stream)
            number = len(parts) + 1
            etag = await self._if_not_gone(
                staged.key, handle, self._upload_part(staged, handle, number, bytes(tail))
            )
            parts.append(Part(number=number, etag=etag, size=len(tail)))
        if sum(p.size for p in parts) != staged.size:
            raise StagingLost(f"the staged parts of {staged.key!r} do not add up")
        await self._if_not_gone(
            staged.key,
            handle,
            self._call(
                "complete multipart upload",
                staged.key,
                "complete_multipart_upload",
                {
                    "Bucket": self._bucket,
                    "Key": self._full(staged.key),
                    "UploadId": handle,
                    "MultipartUpload": {
                        "Parts": [{"ETag": p.etag, "PartNumber": p.number} for p in parts]
                    },
                },
            ),
        )

    async def _if_not_gone(self, key: str, handle: str, operation: Awaitable[T]) -> T:
        """A call on the multipart upload ``handle``; `_Gone` once it no longer exists.

        After a completion cut before it was recorded, the upload is gone and the
        tail still there: its part then meets 404 NoSuchUpload on AWS and Ceph's
        RGW 16.2, 500 on moto; a completion of an upload that is gone, 404
        NoSuchUpload on AWS, 500 InternalError on moto and RGW (a repeated
        completion of one that was completed answers 200 on all three). A 500
        would make the client retry for ever: the upload's parts tell the cases apart.
        """
        try:
            return await operation
        except StagingLost:
            raise _Gone("NoSuchUpload") from None
        except StorageUnavailable:
            if await self._is_gone(key, handle):
                raise _Gone("NoSuchUpload") from None
            raise

    async def abort(self, staged: Staged) -> None:
        if staged.handle is not None:
            await self._abort_quietly(staged.key, staged.handle)
        # With the recorded tail go those of requests that died before recording theirs.
        prefix = f"{TAIL_PREFIX}{check_name(staged.name)}/"
        async for key, _ in self._list_objects(prefix):
            await self._delete(key)

    async def stale(self, *, older_than: datetime) -> AsyncIterator[StaleStaging]:
        async for key, handle, initiated in self._list_multipart_uploads():
            if initiated < older_than:
                yield StaleStaging(handle=handle, key=key)
        async for key, modified in self._list_objects(TAIL_PREFIX):
            if modified < older_than:
                yield StaleStaging(tail_key=key)

    async def remove_stale(self, item: StaleStaging) -> None:
        if item.handle is not None and item.key is not None:
            await self._abort_quietly(item.key, item.handle)
        if item.tail_key is not None:
            await self._delete(item.tail_key)

    async def close(self) -> None:
        await self._stack.aclose()
        self._client = None

    # -- S3 calls ------------------------------------------------------------

    async def _send_part(self, staged: Staged, handle: str, number: int, body: bytes) -> Part:
        etag = await self._upload_part(staged, handle, number, body)
        return Part(number=number, etag=etag, size=len(body))

    async def _upload_part(self, staged: Staged, handle: str, number: int, body: bytes) -> str:
        answer = await self._call(
            "upload part",
            staged.key,
            "upload_part",
            {
                "Bucket": self._bucket,
                "Key": self._full(staged.key),
                "UploadId": handle,
                "PartNumber": number,
                "Body": body,
                "ContentLength": len(body),
            },
            gone_ok=False,
        )
        return str(answer["ETag"])

    async def _put(self, key: str, body: bytes, *, content_type: str | None = None) -> None:
        extra = {"ContentType": content_type} if content_type else {}
        await self._call(
            "put",
            key,
            "put_object",
            {
                "Bucket": self._bucket,
                "Key": self._full(key),
                "Body": body,
                "ContentLength": len(body),
                **extra,
            },
        )

    async def _read(self, key: str) -> AsyncIterator[bytes]:
        answer = await self._call(
            "get", key, "get_object", {"Bucket": self._bucket, "Key": self._full(key)}
        )
        try:
            async with answer["Body"] as body:
                while True:
                    chunk = await self._guard("read", key, body.read(self._read_chunk_size))
                    if not chunk:
                        return
                    yield bytes(chunk)
        except _sdk().errors as exc:
            raise StorageUnavailable(f"reading {key!r} failed: {_describe(exc)}") from None

    async def _after_tail(
        self, staged: Staged, tail_size: int, data: AsyncIterable[bytes]
    ) -> AsyncIterator[bytes]:
        if staged.tail_key is not None:
            read = 0
            stream = self._read(staged.tail_key)
            try:
                async for chunk in stream:
                    read += len(chunk)
                    yield chunk
            except _Gone:
                raise StagingLost(f"the tail of {staged.key!r} is gone") from None
            finally:
                await close_source(stream)
            if read != tail_size:
                raise StagingLost(f"the tail of {staged.key!r} has {read} of {tail_size} bytes")
        elif tail_size:
            raise StagingLost(f"{tail_size} bytes of {staged.key!r} have no tail")
        async for chunk in data:
            yield chunk

    async def _size_of(self, key: str) -> int | None:
        try:
            answer = await self._call(
                "head", key, "head_object", {"Bucket": self._bucket, "Key": self._full(key)}
            )
        except _Gone:
            return None
        return int(answer["ContentLength"])

    async def _delete(self, key: str) -> None:
        with contextlib.suppress(_Gone):
            await self._call(
                "delete", key, "delete_object", {"Bucket": self._bucket, "Key": self._full(key)}
            )

    async def _delete_quietly(self, key: str) -> None:
        # A tail left behind is the reconciler's to remove.
        with contextlib.suppress(StorageError):
            await self._delete(key)

    async def _is_gone(self, key: str, handle: str) -> bool:
        """Whether the multipart upload no longer exists (completed or aborted)."""
        try:
            await self._call(
                "list parts",
                key,
                "list_parts",
                {"Bucket": self._bucket, "Key": self._full(key), "UploadId": handle, "MaxParts": 1},
            )
        except _Gone:
            return True
        return False

    async def _abort_quietly(self, key: str, handle: str) -> None:
        with contextlib.suppress(_Gone):
            await self._call(
                "abort multipart upload",
                key,
                "abort_multipart_upload",
                {"Bucket": self._bucket, "Key": self._full(key), "UploadId": handle},
            )

    async def _list_multipart_uploads(self) -> AsyncIterator[tuple[str, str, datetime]]:
        markers: dict[str, object] = {}
        while True:
            page = await self._call(
                "list multipart uploads",
                self._prefix,
                "list_multipart_uploads",
                {
                    "Bucket": self._bucket,
                    "Prefix": self._full("", is_prefix=True),
                    "MaxUploads": _LIST_PAGE,
                    **markers,
                },
            )
            for upload in page.get("Uploads", []):
                key = self._relative(str(upload["Key"]))
                if key is not None:
                    yield key, str(upload["UploadId"]), upload["Initiated"]
            if not page.get("IsTruncated"):
                return
            markers = {
                "KeyMarker": page["NextKeyMarker"],
                "UploadIdMarker": page["NextUploadIdMarker"],
            }

    async def _list_objects(self, prefix: str) -> AsyncIterator[tuple[str, datetime]]:
        token: dict[str, object] = {}
        while True:
            page = await self._call(
                "list",
                prefix,
                "list_objects_v2",
                {
                    "Bucket": self._bucket,
                    "Prefix": self._full(prefix, is_prefix=True),
                    "MaxKeys": _LIST_PAGE,
                    **token,
                },
            )
            for item in page.get("Contents", []):
                key = self._relative(str(item["Key"]))
                if key is not None:
                    yield key, item["LastModified"]
            if not page.get("IsTruncated"):
                return
            token = {"ContinuationToken": page["NextContinuationToken"]}

    async def _call(
        self,
        verb: str,
        key: str,
        operation: str,
        arguments: dict[str, object],
        *,
        gone_ok: bool = True,
    ) -> _Answer:
        """One S3 operation, its failures translated: `_Gone` for a missing upload
        or object (unless ``gone_ok`` is false, when that is `StagingLost`), else
        `StorageUnavailable`."""
        await self._connect()
        sdk = _sdk()
        try:
            answer: _Answer = await getattr(self._client, operation)(**arguments)
        except sdk.client_error as exc:
            code = str(_error_of(exc).get("Code", ""))
            if code in _GONE_CODES:
                if gone_ok:
                    raise _Gone(code) from None
                raise StagingLost(f"{verb} {key!r}: {code}") from None
            raise StorageUnavailable(f"{verb} {key!r} failed: {_describe(exc)}") from None
        except sdk.errors as exc:
            raise StorageUnavailable(f"{verb} {key!r} failed: {_describe(exc)}") from None
        return answer

    @staticmethod
    async def _guard(verb: str, key: str, operation: Awaitable[T]) -> T:
        try:
            return await operation
        except _sdk().errors as exc:
            raise StorageUnavailable(f"{verb} {key!r} failed: {_describe(exc)}") from None

    async def _connect(self) -> None:
        # Made on first use, so that starting the server needs no network.
        async with self._lock:
            if self._client is None:
                # In a thread: importing takes the loop's time otherwise.
                sdk = await asyncio.to_thread(_sdk)
                options = self._options
                config = sdk.config(
                    region_name=options.region or "us-east-1",
                    connect_timeout=options.connect_timeout_seconds,
                    read_timeout=options.timeout_seconds,
                    retries={"max_attempts": 3, "mode": "standard"},
                    s3={"addressing_style": "path" if options.path_style else "virtual"},
                    # botocore presigns S3 URLs (direct uploads' parts and POST forms)
                    # with Signature Version 2 unless told: AWS regions opened since
                    # 2014 refuse it, and it signs the Content-Type a browser sends.
                    signature_version="s3v4",
                    # Checksums only where S3 requires them: several S3-compatible
                    # servers reject the CRC headers newer botocore sends by default.
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                )
                self._client = await self._stack.enter_async_context(
                    sdk.get_session().create_client(
                        "s3",
                        endpoint_url=options.endpoint_url,
                        aws_access_key_id=options.access_key_id,
                        aws_secret_access_key=options.secret_access_key,
                        aws_session_token=options.session_token,
                        config=config,
                    )
                )

    def _full(self, key: str, *, is_prefix: bool = False) -> str:
        if is_prefix:
            prefix_directory(key)
        else:
            validate_key(key)
        return f"{self._prefix}/{key}" if self._prefix else key

    def _relative(self, full: str) -> str | None:
        if not self._prefix:
            return full
        head = f"{self._prefix}/"
        return full[len(head) :] if full.startswith(head) else None

    @staticmethod
    def _new_tail_key(name: str) -> str:
        return f"{TAIL_PREFIX}{check_name(name)}/{secrets.token_hex(8)}"


def _handle(staged: Staged) -> str:
    if staged.handle is None:
        raise ValueError(f"upload {staged.name} was never begun")
    return staged.handle


def _error_of(exc: BaseException) -> dict[str, Any]:
    """The ``Error`` member of a botocore `ClientError`'s parsed response."""
    error: dict[str, Any] = getattr(exc, "response", {}).get("Error", {})
    return error


def _describe(exc: BaseException) -> str:
    if isinstance(exc, _sdk().client_error):
        error = _error_of(exc)
        return f"{error.get('Code', '?')}: {error.get('Message', '')}".strip()
    return str(exc) or type(exc).__name__
